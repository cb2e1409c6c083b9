/* The scheduler: admits units, places pending units on free worker slots,
 * ends leases on StagedBatch, re-issues or dead-letters failed ones, and
 * publishes estimates.
 *
 * It keeps an in-memory index of the pending and in-flight units (the
 * scheduling policy, policy.h) with Redis as the durable record: every
 * state change is written to Redis first (the lease scripts), then applied
 * to the index; cx_sched_rebuild reads the index back after a restart
 * (kill -9 loses nothing), and the periodic tick refreshes what others
 * change (workers, jobs, units a draining worker released).
 * Single-threaded: every call runs on the service loop's thread and uses
 * svc->redis, svc->producer and svc->metrics. */
#ifndef CX_SCHED_SCHEDULER_H
#define CX_SCHED_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/kafka.h"
#include "cascade/service.h"
#include "policy.h"

typedef struct cx_sched_conf {
    int max_inflight;      /* units in flight per worker */
    int64_t lease_ms;      /* lease length */
    uint32_t max_attempts; /* attempts before a unit is dead */
    size_t batch;          /* placements per round at most (one script) */
    int64_t prune_ms;      /* forget dead workers silent this long */
    int64_t registry_ms;   /* worker registry refresh period */
    int64_t jobs_ms;       /* job info refresh period */
    int64_t eta_ms;        /* estimate publication period */
    int64_t reconcile_ms;  /* cx:pending vs index check period */
    double prefetch_s;     /* policy: queue a unit this close to its start */
    double urgent_margin_s; /* policy: fair-share slack below this: urgent */
    const char *model_file; /* throughput priors (JSON); NULL or "": none */
} cx_sched_conf_t;

/* Defaults: 2, 120 s, 3, 4096, 10 min, 1 s, 2 s, 5 s, 10 s, 10 s, 0. */
void cx_sched_conf_default(cx_sched_conf_t *c);

typedef struct cx_sched cx_sched_t;

typedef struct cx_sched_stats {
    uint64_t placements, decisions, rounds;
    double decide_s; /* time spent deciding */
    double round_s;  /* time in placement rounds (decide + Redis + Kafka) */
    double lease_s;  /* of which in the batch lease script */
    double send_s;   /* of which packing, producing and flushing */
    double p50_s, p99_s, max_s; /* one decision, over the last 2^18 */
} cx_sched_stats_t;

/* svc must outlive the scheduler and have a producer and Redis. Reads the
 * model file when set. */
cx_sched_t *cx_sched_new(cx_service_t *svc, const cx_sched_conf_t *conf,
                         cx_err_t *err);
void cx_sched_destroy(cx_sched_t *s);

/* Builds the index from Redis: workers, learned rates, every pending and
 * leased unit, their jobs. Call once before the loop. */
int cx_sched_rebuild(cx_sched_t *s, cx_err_t *err);

/* One message of cascade.units or cascade.staged. Returns 0 when its
 * effect is durable (the caller stores the offset; malformed messages are
 * dead-lettered first), -1 with err otherwise (retriable: try again). */
int cx_sched_on_message(cx_sched_t *s, const cx_msg_t *m, cx_err_t *err);

/* One placement round: decisions for the free slots, one lease script for
 * the batch, the Assignments produced and flushed. Returns the number of
 * units placed, -1 with err (the batch was released). */
int cx_sched_place(cx_sched_t *s, cx_err_t *err);

/* One expiry sweep: expired leases and leases of lost workers are failed
 * (requeued or dead), leases of workers that said goodbye released,
 * orphans dropped, in-flight units others released brought back. Returns
 * the number of leases failed or released, -1 with err. */
int cx_sched_sweep(cx_sched_t *s, cx_err_t *err);

/* The periodic refreshes that are due: worker registry (and pruning), job
 * info (cancelled and done jobs leave the index), estimates and deadline
 * events, the pending-count check. 0, or -1 with err. */
int cx_sched_tick(cx_sched_t *s, cx_err_t *err);

void cx_sched_stats(const cx_sched_t *s, cx_sched_stats_t *out);
cx_pol_t *cx_sched_policy(cx_sched_t *s);

#endif
