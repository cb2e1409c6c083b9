/* The scheduler: admits units, places pending units on free worker slots,
 * ends leases on StagedBatch, and re-issues or dead-letters failed ones.
 * Single-threaded: every call runs on the service loop's thread and uses
 * svc->redis, svc->producer and svc->metrics. */
#ifndef CX_SCHED_SCHEDULER_H
#define CX_SCHED_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/kafka.h"
#include "cascade/service.h"

typedef struct cx_sched_conf {
    int max_inflight;      /* units in flight per worker */
    int64_t lease_ms;      /* lease length */
    uint32_t max_attempts; /* attempts before a unit is dead */
    size_t scan;           /* pending units looked at per placement round */
    int64_t prune_ms;      /* forget dead workers silent this long */
} cx_sched_conf_t;

typedef struct cx_sched cx_sched_t;

/* svc must outlive the scheduler and have a producer and Redis. */
cx_sched_t *cx_sched_new(cx_service_t *svc, const cx_sched_conf_t *conf,
                         cx_err_t *err);
void cx_sched_destroy(cx_sched_t *s);

/* One message of cascade.units or cascade.staged. Returns 0 when its
 * effect is durable (the caller stores the offset; malformed messages are
 * dead-lettered first), -1 with err otherwise (retriable: try again). */
int cx_sched_on_message(cx_sched_t *s, const cx_msg_t *m, cx_err_t *err);

/* One placement round. Returns the number of units placed, -1 with err. */
int cx_sched_place(cx_sched_t *s, cx_err_t *err);

/* One expiry sweep: expired leases and leases of lost workers are failed
 * (requeued or dead), orphans dropped, silent dead workers pruned, gauges
 * updated. Returns the number of leases failed, -1 with err. */
int cx_sched_sweep(cx_sched_t *s, cx_err_t *err);

#endif
