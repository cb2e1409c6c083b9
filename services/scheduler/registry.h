/* The worker registry as the scheduler sees it: cx:workers, each worker's
 * hash, alive key and inflight set (workers write them, see gpu-worker's
 * heartbeat.c). */
#ifndef CX_SCHED_REGISTRY_H
#define CX_SCHED_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/redis.h"

typedef struct cx_wview {
    char *id;
    int64_t last_hb_ms; /* cx:workers score */
    int alive;
    int draining;
    int partition;      /* -1 when the hash has none */
    int slots;          /* 0 when the hash has none */
    int inflight;
} cx_wview_t;

/* Every registered worker. *out malloc'd; free with cx_registry_free. */
int cx_registry_list(cx_redis_t *r, cx_wview_t **out, size_t *n,
                     cx_err_t *err);
void cx_registry_free(cx_wview_t *w, size_t n);

/* Parses a partition field ("0".."n-1" when n > 0). -1 if bad. Pure. */
int cx_registry_parse_partition(const char *s, int nparts);

/* Free slots of a worker that can take work now: 0 unless alive, not
 * draining and with a partition; else min(slots or max_inflight,
 * max_inflight) - inflight, never below 0. Pure. */
int cx_registry_free_slots(const cx_wview_t *w, int max_inflight);

/* Forgets a worker that is not alive, has nothing in flight and has not
 * heart-beaten since before `older_than_ms` (a killed worker's leftovers).
 * Returns 1 if removed, 0 if kept, -1 with err. */
int cx_registry_prune(cx_redis_t *r, const char *worker,
                      int64_t older_than_ms, cx_err_t *err);

#endif
