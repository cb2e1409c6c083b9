/* Reads of the scheduler's Redis state for its in-memory index, in few
 * round trips: the worker registry with what placement needs (GPU type,
 * memory budget, warm checkpoints, quarantine), unit hashes by id, the
 * ids in cx:pending and cx:leases, checkpoint costs, and the learned
 * throughput cells (cx:tput). Redis is the durable record; these rebuild
 * and refresh the index after a restart and as workers change. */
#ifndef CX_SCHED_SYNC_H
#define CX_SCHED_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/redis.h"
#include "cascade/util.h"
#include "model.h"

typedef struct cx_sync_worker {
    char *id;
    int64_t last_hb_ms;
    int alive;       /* cx:worker:<w>:alive exists */
    int registered;  /* cx:worker:<w> exists */
    int draining;
    int quarantined; /* cx:quarantine:<w> exists */
    int partition;   /* -1 when none */
    int slots;
    char *gpu_type;  /* "" when unset */
    uint64_t mem_budget; /* mem_budget_bytes, 0 when unset */
    char *warm;      /* checkpoint names of cx:worker:<w>:warm, '\n'-joined */
} cx_sync_worker_t;

/* Every worker in cx:workers. Free with cx_sync_workers_free. */
int cx_sync_workers(cx_redis_t *r, cx_sync_worker_t **out, size_t *n,
                    cx_err_t *err);
void cx_sync_workers_free(cx_sync_worker_t *w, size_t n);

typedef struct cx_sync_unit {
    char *id, *state, *job, *class_name, *excluded, *ckpt, *worker;
    uint32_t class_index, samples, attempt, width, height, steps;
    uint64_t epoch;
    double seq;
} cx_sync_unit_t;

/* The hashes of n units (state "" when a unit does not exist). out has
 * room for n; release with cx_sync_units_release. */
int cx_sync_units(cx_redis_t *r, const char *const *ids, size_t n,
                  cx_sync_unit_t *out, cx_err_t *err);
void cx_sync_units_release(cx_sync_unit_t *u, size_t n);

/* Ids of cx:pending from rank `start` (count of them, score order), or
 * all of cx:leases (count 0: all). Appended to out. */
int cx_sync_pending_ids(cx_redis_t *r, size_t start, size_t count,
                        cx_strlist_t *out, cx_err_t *err);
int cx_sync_lease_ids(cx_redis_t *r, cx_strlist_t *out, cx_err_t *err);
/* ZCARD cx:pending. */
long long cx_sync_pending_count(cx_redis_t *r, cx_err_t *err);

/* The unit type of a unit admitted before its hash carried one, from its
 * payload. 0, or -1 with err. */
int cx_sync_unit_type(cx_redis_t *r, const char *unit, char *ckpt,
                      size_t size, uint32_t *width, uint32_t *height,
                      uint32_t *steps, cx_err_t *err);

/* cx:ckpt:<name> (mem_bytes, load_ms_ewma or load_ms) into the model, for
 * every checkpoint it knows. */
int cx_sync_ckpts(cx_redis_t *r, cx_tput_t *m, cx_err_t *err);

/* The learned cells: HASH cx:tput, field "<ckpt>|<W>x<H>|<steps>|<gpu>",
 * value "<mean_log> <var_log> <n>". Load restores them into m; save
 * writes every learned cell. */
int cx_sync_tput_load(cx_redis_t *r, cx_tput_t *m, cx_err_t *err);
int cx_sync_tput_save(cx_redis_t *r, const cx_tput_t *m, cx_err_t *err);
/* Splits a cx:tput field into unit-type key and GPU type (last '|'). */
int cx_sync_tput_field(const char *field, char *utype, size_t usize,
                       char *gpu, size_t gsize);

#endif
