/* The warm pool: the checkpoints a gpu-worker keeps loaded, within a memory
 * budget (device memory on a GPU, RAM on the CPU).
 *
 * A model is a checkpoint loaded by its plug-in at one output size. An
 * acquire that finds it is a hit; otherwise (a miss) the pool asks the
 * plug-in how much memory the model needs, evicts the least recently used
 * models that are not in use until it fits, loads it and measures the cold
 * load. A model whose need exceeds the whole budget, or what is left once
 * every idle model is gone, is refused with an error that says so (the
 * unit then fails with that reason; nothing is loaded, nothing crashes).
 * The memory actually held after the load (the plug-in's memory_bytes) is
 * what the pool accounts.
 *
 * What is loaded is published to Redis (docs/ARCHITECTURE.md):
 *   cx:worker:<w>:warm  HASH checkpoint -> resident bytes (replaced whole)
 *   cx:worker:<w>       HSET mem_budget_bytes, mem_used_bytes, device
 *   cx:ckpt:<name>      HASH mem_bytes, load_ms, load_ms_ewma
 * Metrics: cascade_pool_hits_total, cascade_pool_misses_total,
 * cascade_pool_evictions_total, cascade_pool_refused_total,
 * cascade_pool_load_failures_total, cascade_pool_mem_used_bytes,
 * cascade_pool_mem_budget_bytes, cascade_pool_models,
 * cascade_pool_load_ms (the last cold load).
 *
 * Single-threaded: call from the worker's loop. A model stays valid from
 * acquire to release; its generator may be used from other threads in
 * between. */
#ifndef CX_WORKER_POOL_H
#define CX_WORKER_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/metrics.h"
#include "cascade/redis.h"
#include "plugin.h"

typedef struct cx_warm_conf {
    const char *device;         /* "cpu" or "cuda:N" */
    const char *checkpoint_dir; /* where <name>.<ext> files live; may be "" */
    uint64_t budget_bytes;      /* 0: from the device (see cx_warm_new) */
    size_t max_models;          /* 0: as many as the budget holds */
    uint32_t threads;           /* passed to the plug-ins' create */
    uint32_t max_batch;         /* samples per generate call */
} cx_warm_conf_t;

typedef struct cx_warm cx_warm_t;
typedef struct cx_warm_model cx_warm_model_t;

/* The strings in conf, plugins and metrics (may be NULL) must outlive the
 * pool. A budget of 0 becomes half the RAM for "cpu", 90 % of the device's
 * memory as its plug-in reports it otherwise (an error when none knows the
 * device). */
cx_warm_t *cx_warm_new(const cx_warm_conf_t *conf,
                       const cx_plugins_t *plugins, cx_metrics_t *metrics,
                       cx_err_t *err);
void cx_warm_destroy(cx_warm_t *w); /* NULL is fine */

typedef struct cx_warm_info {
    int hit;            /* 1: was loaded already */
    double load_ms;     /* the cold load's time (0 on a hit) */
    uint64_t mem_bytes; /* what the model holds */
    size_t evicted;     /* models evicted to make room */
} cx_warm_info_t;

/* The model for (checkpoint, width, height), loaded now if needed; held
 * (never evicted) until cx_warm_release. info may be NULL. NULL with err:
 * the plug-in's error (unknown checkpoint, corrupt file, wrong size), or
 * CX_ENOMEM (not retriable) when it cannot fit the budget. */
cx_warm_model_t *cx_warm_acquire(cx_warm_t *w, const char *checkpoint,
                                 uint32_t width, uint32_t height,
                                 cx_warm_info_t *info, cx_err_t *err);
void cx_warm_release(cx_warm_t *w, cx_warm_model_t *m);
cx_plugin_gen_t *cx_warm_gen(const cx_warm_model_t *m);

uint64_t cx_warm_budget(const cx_warm_t *w);
uint64_t cx_warm_used(const cx_warm_t *w);
size_t cx_warm_count(const cx_warm_t *w);
/* 1 when (checkpoint, width, height) is loaded. */
int cx_warm_has(const cx_warm_t *w, const char *checkpoint, uint32_t width,
                uint32_t height);
uint64_t cx_warm_hits(const cx_warm_t *w);
uint64_t cx_warm_misses(const cx_warm_t *w);

/* Writes the keys above for worker `worker` when something changed since
 * the last successful publish (or always when force). -1 with err (the
 * next call tries again). */
int cx_warm_publish(cx_warm_t *w, cx_redis_t *r, const char *worker,
                    int force, cx_err_t *err);

#endif
