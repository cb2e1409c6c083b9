/* Internals shared by the scheduler's files: scheduler.c (messages,
 * placement rounds, sweeps), sched_index.c (the index: rebuild and
 * refresh from Redis) and sched_eta.c (estimates, deadline events, model
 * persistence). Not for callers. */
#ifndef CX_SCHED_IMPL_H
#define CX_SCHED_IMPL_H

#include <stdint.h>

#include "cascade/metrics.h"
#include "policy.h"
#include "scheduler.h"

/* What the scheduler keeps per policy job handle. */
typedef struct sjob {
    int loaded;        /* job info read from Redis at least once */
    int ended;         /* DONE, CANCELLED or REJECTED */
    int risk;          /* announced deadline state (cx_sched_risk) */
    double refreshed;  /* mono ms of the last refresh */
} sjob_t;

/* A lease whose Assignment is produced but not yet known delivered. */
typedef struct unsettled {
    char unit[CX_POL_ID_MAX];
    uint64_t epoch;
} unsettled_t;

/* Announced deadline states (cx:job:<job>:eta field `risk`). */
enum { CX_RISK_NONE = 0, CX_RISK_OK, CX_RISK_AT_RISK, CX_RISK_MISSED };

#define CX_SCHED_LAT_RING (1u << 18)

struct cx_sched {
    cx_service_t *svc;
    cx_sched_conf_t conf;
    cx_tput_t *model;
    cx_pol_t *pol;
    /* per policy worker handle */
    int *wpart;        /* dispatch partition, -1 unknown */
    int64_t *wlast;    /* Unix ms of its last staged batch */
    size_t capw;
    /* per policy unit handle: Unix ms it was leased (0 unknown) */
    int64_t *uleased;
    size_t capu;
    sjob_t *jobs;
    size_t capj;
    double next_registry, next_jobs, next_eta, next_reconcile;
    int tput_dirty;
    uint64_t order; /* admission order of units */
    /* the last round's Assignments, flushed lazily (cx__sched_settle) */
    unsettled_t *unsettled;
    size_t nunsettled, capunsettled;
    /* decision latencies (seconds), a ring */
    float *lat;
    uint64_t nlat;
    cx_sched_stats_t stats;
    cx_metric_t *m_pending, *m_leased, *m_placements, *m_expiries, *m_dead,
        *m_malformed, *m_admitted, *m_staged, *m_released, *m_eligible,
        *m_p50, *m_p99, *m_round;
};

/* The index's handle for a worker id (created and tracked), -1 OOM. */
int cx__sched_worker(cx_sched_t *s, const char *id);
/* Grows the per-handle arrays to hold handle h. -1 out of memory. */
int cx__sched_track_worker(cx_sched_t *s, int w);
int cx__sched_track_unit(cx_sched_t *s, int u);
int cx__sched_track_job(cx_sched_t *s, int j);

/* The last placement round's Assignments are not flushed at its end: the
 * broker's acknowledgements overlap what the loop does next. This waits
 * for them (before any other flush, and at the start of the next round);
 * if a delivery failed, that round's leases are released and its units
 * placed again. 0, or -1 with err after releasing. */
int cx__sched_settle(cx_sched_t *s, cx_err_t *err);

/* The index side (sched_index.c). */
int cx__sched_refresh_workers(cx_sched_t *s, cx_err_t *err);
int cx__sched_refresh_jobs(cx_sched_t *s, int force, cx_err_t *err);
/* Loads job j's info now (first sight). */
int cx__sched_load_job(cx_sched_t *s, int j, cx_err_t *err);
/* Adds units read from Redis (pending or leased) to the index. */
int cx__sched_add_units(cx_sched_t *s, const char *const *ids, size_t n,
                        cx_err_t *err);
/* In-flight units the index holds that cx:leases no longer has: re-read
 * and applied (released by a draining worker, or another replica). */
int cx__sched_reconcile_inflight(cx_sched_t *s, const cx_strlist_t *leases,
                                 cx_err_t *err);
/* When cx:pending and the index disagree on the count: rescan. */
int cx__sched_reconcile_pending(cx_sched_t *s, cx_err_t *err);
/* The policy's unit type of a WorkUnit's params (-1 out of memory). */
int cx__sched_utype(cx_sched_t *s, const char *ckpt, uint32_t width,
                    uint32_t height, uint32_t steps);

/* Estimates and persistence (sched_eta.c). */
int cx__sched_publish_eta(cx_sched_t *s, cx_err_t *err);
void cx__sched_save_model(cx_sched_t *s);

#endif
