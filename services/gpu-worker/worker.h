/* A gpu-worker's unit of work: fence an Assignment against Redis, generate
 * the unit's samples (in parallel on a cx_pool), encode them as PNG, write
 * them to staging and report a StagedBatch.
 *
 * Staging keys: <job>/staging/<unit>/<attempt>/<index>.png in the unit's
 * store (cx_service_store(svc, unit->output_uri)). A generation error (bad
 * checkpoint, class, parameters) is reported as a StagedBatch with
 * `failure` set; a retriable store error (disk full, I/O) is retried with
 * backoff until it passes or the service stops. Single-threaded API: call
 * from the service loop (it uses svc->redis and svc->producer). */
#ifndef CX_WORKER_WORKER_H
#define CX_WORKER_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/codec.h"
#include "cascade/err.h"
#include "cascade/kafka.h"
#include "cascade/png16.h"
#include "cascade/service.h"
#include "cascade/util.h"

typedef struct cx_worker_conf {
    const char *id;       /* this worker's name (cx:worker:<id>) */
    const char *gpu_type; /* reported in StagedBatch */
    cx_png_opts_t png;    /* staged PNG encoding (level, filter, strategy) */
    unsigned threads;     /* 0: one per CPU */
    size_t models;        /* checkpoints kept warm (0: as the budget holds) */
    /* Generation (plugin.h, pool.h): plug-ins are every *.so of
     * plugin_dir (NULL or "": <executable's dir>/../plugins) plus the
     * comma-separated paths in `plugins`; checkpoints <name>.<ext> live in
     * checkpoint_dir (may be NULL); models run on `device` ("cpu" when
     * NULL) within mem_budget_bytes (0: from the device); a plug-in that
     * is not concurrent gets max_batch samples per call (0: 32). */
    const char *device;
    const char *checkpoint_dir;
    const char *plugin_dir;
    const char *plugins;
    uint64_t mem_budget_bytes;
    unsigned max_batch;
} cx_worker_conf_t;

typedef struct cx_worker cx_worker_t;

/* svc must outlive the worker; conf strings too. */
cx_worker_t *cx_worker_new(cx_service_t *svc, const cx_worker_conf_t *conf,
                           cx_err_t *err);
void cx_worker_destroy(cx_worker_t *w);

/* The warm pool's budget, and its state written to Redis now (pool.h's
 * keys; call once registered, then cx_worker_run keeps it current). */
uint64_t cx_worker_mem_budget(const cx_worker_t *w);
int cx_worker_publish_pool(cx_worker_t *w, cx_err_t *err);

/* 1 if cx:unit:<unit> still says state=leased, worker=me and the
 * Assignment's epoch, and the job is not CANCELLED; 0 if the Assignment is
 * stale or foreign, or its job cancelled (its lease is then ended at once);
 * -1 with err. */
int cx_worker_check(cx_worker_t *w, const cx_assignment_t *a, cx_err_t *err);

/* Runs the unit and appends the packed StagedBatch to out (samples with
 * keys and sizes, timing, gpu_type; or `failure`). -1 with err when a
 * store error outlasted the service (retriable: the Assignment will be
 * redelivered) or out of memory. */
int cx_worker_run(cx_worker_t *w, const cx_assignment_t *a, cx_buf_t *out,
                  cx_err_t *err);

/* One message of the worker's dispatch partition: decode (malformed:
 * dead-lettered), skip foreign or stale ones, generate the unit; its
 * staging and its StagedBatch (produced to cascade.staged and flushed)
 * follow on the worker's stager thread while the caller polls the next
 * message. 0: m now belongs to the worker, which passes it to the done
 * callback once its effect is complete, in arrival order (or frees it when
 * stopping first); -1 with err: m is still the caller's. */
int cx_worker_handle(cx_worker_t *w, cx_msg_t *m, cx_err_t *err);

/* Where finished messages go (the consumer's offset store). */
typedef void (*cx_worker_done_fn)(void *ctx, cx_msg_t *m);
void cx_worker_set_done(cx_worker_t *w, cx_worker_done_fn fn, void *ctx);
/* 1 once the stager met an error that retrying cannot fix. */
int cx_worker_failed(const cx_worker_t *w);
/* Waits until every handled message is finished (or given up). */
void cx_worker_drain(cx_worker_t *w);

/* After a drain: waits up to timeout_ms until the scheduler has ended the
 * lease of the last unit this worker staged (it left the inflight set), so
 * deregistering does not make the scheduler re-issue finished work. */
void cx_worker_wait_acked(cx_worker_t *w, int timeout_ms);

#endif
