/* The scheduling policy: an in-memory index of pending and in-flight units
 * (per job, class and unit-type queues) and the placement decision, shared
 * by the live scheduler (services/scheduler/scheduler.c), cascade-sim and
 * `cascadectl plan`. No I/O: callers feed it what Redis (or the simulated
 * pool) says and apply its decisions; time is a double in seconds on the
 * caller's clock (Unix seconds live, simulated seconds in the sim).
 *
 * A decision, for the free worker slots, takes units in this order:
 *  1. the job: jobs whose deadline is at risk under a fair share of the
 *     pool ("urgent": deadline - now - remaining work x tenants / pool rate
 *     < urgent_margin_s) first, least slack first; then by priority; then
 *     the tenant with the fewest units in flight (fair share); then least
 *     slack (earliest deadline) and arrival;
 *  2. the class: the one whose expected committed share (samples placed x
 *     pass rate / quota) is furthest behind, so the committed distribution
 *     tracks the target at every moment;
 *  3. the unit: the head of the class's queue (FIFO; failed units go back
 *     to the front), skipping units the worker failed;
 *  4. the worker: among workers with a free slot that are eligible (alive,
 *     not draining, not quarantined, with a dispatch partition), that are
 *     idle or within prefetch_s of finishing what they hold, and where
 *     the checkpoint fits in memory, the least expected completion time:
 *     start (after the units already queued there) + cold load when the
 *     checkpoint is not warm there + seconds per sample x samples, plus,
 *     when the load would evict a checkpoint that other pending work needs
 *     and that is not over-provisioned, that checkpoint's reload cost
 *     (waived for urgent jobs: eviction weighed against deadline slack).
 *     A unit whose best worker is cold is held back while the workers that
 *     have its checkpoint warm would reach it sooner than a cold load
 *     would finish (pending work of the checkpoint / its warm workers <
 *     load time).
 * Single-threaded. Handles (job, unit, worker) are small ints, stable while
 * the object lives; a unit's handle is reused after it is dropped or done. */
#ifndef CX_SCHED_POLICY_H
#define CX_SCHED_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define CX_POL_MAX_SLOTS 16 /* in-flight units per worker, at most */
#define CX_POL_MAX_WARM 8   /* checkpoints tracked warm per worker */
#define CX_POL_MAX_EXCL 8   /* failed workers remembered per unit */
#define CX_POL_ID_MAX 64    /* unit, job, worker, tenant, class ids */

typedef struct cx_pol_conf {
    int max_inflight;       /* units in flight per worker (2) */
    double urgent_margin_s; /* fair-share slack below this: urgent (0) */
    double evict_weight;    /* weight of an eviction's reload cost (1) */
    size_t exclusion_scan;  /* units looked at past an excluded head (16) */
    int hold_for_warm;      /* hold units for warm workers (1) */
    double prefetch_s;      /* a busy worker takes its next unit only this
                               close to its expected start (10 s): queued
                               units stay movable until then */
    double pass_floor;      /* lowest pass rate believed (0.05) */
    uint64_t pass_min_samples; /* generated samples before a pass rate
                                  counts (50) */
} cx_pol_conf_t;

void cx_pol_conf_default(cx_pol_conf_t *c);

typedef struct cx_pol cx_pol_t;

/* model is borrowed and must outlive the policy (it is also where the
 * caller records timings). NULL when out of memory. */
cx_pol_t *cx_pol_new(const cx_pol_conf_t *conf, cx_tput_t *model);
void cx_pol_destroy(cx_pol_t *p);
cx_tput_t *cx_pol_model(cx_pol_t *p);

/* ---- jobs and classes ---- */

/* The job's handle, created (priority 0, no deadline, tenant "") on first
 * use; -1 when out of memory or the id is too long. */
int cx_pol_job(cx_pol_t *p, const char *job_id);
int cx_pol_job_find(const cx_pol_t *p, const char *job_id);
/* deadline_ms 0: none. seq orders jobs of equal rank (arrival). */
void cx_pol_job_set(cx_pol_t *p, int j, const char *tenant, int priority,
                    int64_t deadline_ms, uint64_t seq);
const char *cx_pol_job_id(const cx_pol_t *p, int j);
int64_t cx_pol_job_deadline(const cx_pol_t *p, int j); /* ms, 0 none */
/* Forgets the job once nothing of it is pending or in flight (returns 1),
 * else 0. */
int cx_pol_job_forget(cx_pol_t *p, int j);
size_t cx_pol_njobs(const cx_pol_t *p); /* handles are 0..n-1 */
int cx_pol_job_live(const cx_pol_t *p, int j);

/* The job's class with spec index class_index (created, named name, with
 * no quota, when new). Returns its position in the job, -1 out of memory. */
int cx_pol_class(cx_pol_t *p, int j, uint32_t class_index, const char *name);
size_t cx_pol_nclasses(const cx_pol_t *p, int j);
/* What the index knows of the class: quota (0: unknown, classes weigh the
 * same), committed samples, and generated/passed for its pass rate. */
void cx_pol_class_set(cx_pol_t *p, int j, int c, uint64_t quota,
                      uint64_t committed, uint64_t generated,
                      uint64_t passed);
/* Adds to the samples counted as placed (a restart counts what was placed
 * before it: issued - pending). */
void cx_pol_class_add_placed(cx_pol_t *p, int j, int c, double samples);

typedef struct cx_pol_class_view {
    const char *name;
    uint32_t class_index;
    uint64_t quota, committed;
    double pass;      /* believed pass rate */
    double placed;    /* samples placed, not failed */
    uint64_t pending_samples, inflight_samples;
    uint32_t pending_units, inflight_units;
} cx_pol_class_view_t;
void cx_pol_class_view(const cx_pol_t *p, int j, int c,
                       cx_pol_class_view_t *out);

/* ---- units ---- */

typedef struct cx_pol_unit_spec {
    const char *id;
    int job;
    uint32_t class_index;
    const char *class_name;
    int utype;        /* cx_tput_utype of the model */
    uint32_t samples;
    uint64_t order;   /* FIFO key within its queue (admission order) */
    uint32_t attempt; /* attempts so far */
    uint64_t tag;     /* the caller's, returned by cx_pol_unit_tag */
} cx_pol_unit_spec_t;

/* Adds a pending unit at the back of its queue. Returns its handle; -2 if
 * the id is already known; -1 out of memory or bad arguments. */
int cx_pol_unit_add(cx_pol_t *p, const cx_pol_unit_spec_t *s);
int cx_pol_unit_find(const cx_pol_t *p, const char *unit_id);
const char *cx_pol_unit_id(const cx_pol_t *p, int u);
int cx_pol_unit_job(const cx_pol_t *p, int u);
uint32_t cx_pol_unit_samples(const cx_pol_t *p, int u);
int cx_pol_unit_utype(const cx_pol_t *p, int u);
uint32_t cx_pol_unit_attempt(const cx_pol_t *p, int u);
uint64_t cx_pol_unit_tag(const cx_pol_t *p, int u);
/* The unit's class position in its job. */
int cx_pol_unit_class(const cx_pol_t *p, int u);

typedef enum {
    CX_POL_NONE = 0,
    CX_POL_PENDING = 1,
    CX_POL_INFLIGHT = 2
} cx_pol_state_t;
cx_pol_state_t cx_pol_unit_state(const cx_pol_t *p, int u);
int cx_pol_unit_worker(const cx_pol_t *p, int u); /* -1 unless in flight */

/* Live unit handles (pending or in flight): all of them, or the pending
 * ones of job j. Fill up to max; return how many there are. */
size_t cx_pol_units(const cx_pol_t *p, int *out, size_t max);
size_t cx_pol_job_pending(const cx_pol_t *p, int j, int *out, size_t max);

/* Remembers that worker w failed the unit: it is not placed there again
 * while another eligible worker has not failed it. */
void cx_pol_unit_exclude(cx_pol_t *p, int u, int w);
/* A pending unit found in flight on w (rebuild after a restart). */
void cx_pol_unit_leased(cx_pol_t *p, int u, int w, double now);
/* The in-flight unit's lease ended with its samples staged: the unit
 * leaves the index and w's slot frees. */
void cx_pol_unit_done(cx_pol_t *p, int u, double now);
/* Back to the front of its queue (failed attempt, released or lost
 * lease); the placement no longer counts for its class. attempt is the
 * unit's attempts so far. */
void cx_pol_unit_requeue(cx_pol_t *p, int u, uint32_t attempt, double now);
/* Leaves the index whatever its state (dead, cancelled, leased by
 * another scheduler). */
void cx_pol_unit_drop(cx_pol_t *p, int u, double now);

/* ---- workers ---- */

/* The worker's handle, created (not alive) on first use. */
int cx_pol_worker(cx_pol_t *p, const char *worker_id);
int cx_pol_worker_find(const cx_pol_t *p, const char *worker_id);
const char *cx_pol_worker_id(const cx_pol_t *p, int w);
size_t cx_pol_nworkers(const cx_pol_t *p);

typedef struct cx_pol_wspec {
    int gtype;           /* cx_tput_gtype of the model */
    uint64_t mem_budget; /* bytes for checkpoints (0: unknown, all fit) */
    int slots;           /* the worker's own cap (0: max_inflight) */
    int alive, draining, quarantined;
    int placeable;       /* has a dispatch partition */
} cx_pol_wspec_t;
void cx_pol_worker_set(cx_pol_t *p, int w, const cx_pol_wspec_t *s);
/* Replaces the worker's warm set (checkpoint ids) with what it reported. */
void cx_pol_worker_warm(cx_pol_t *p, int w, const int *ckpts, size_t n);
int cx_pol_worker_is_warm(const cx_pol_t *p, int w, int ckpt);
int cx_pol_worker_eligible(const cx_pol_t *p, int w);
/* The units in flight on w (up to max; returns how many). */
size_t cx_pol_worker_units(const cx_pol_t *p, int w, int *out, size_t max);
int cx_pol_worker_gtype(const cx_pol_t *p, int w);

/* ---- placement ---- */

typedef struct cx_pol_pick {
    int unit, worker;
    double start_s;  /* expected start (after the worker's queue) */
    double finish_s; /* expected finish */
    int cold;        /* the checkpoint is loaded for it */
} cx_pol_pick_t;

/* Starts a placement round at now: ranks jobs (slack, urgency). */
void cx_pol_round(cx_pol_t *p, double now);
/* The next placement of the round, applied to the index (the unit is in
 * flight on the worker; undo with cx_pol_unit_requeue or _drop). Returns
 * 1, or 0 when no free slot can take any pending unit now. */
int cx_pol_next(cx_pol_t *p, double now, cx_pol_pick_t *out);

/* ---- pool and job estimates ---- */

typedef struct cx_pol_stats {
    uint64_t pending_units, inflight_units;
    uint64_t pending_samples, inflight_samples;
    size_t workers_eligible, free_slots;
} cx_pol_stats_t;
void cx_pol_stats(const cx_pol_t *p, cx_pol_stats_t *out);

/* Samples per second the eligible pool generates of unit type ut. */
double cx_pol_pool_rate(const cx_pol_t *p, int ut);

#define CX_POL_MAX_CLASSES 64

typedef struct cx_pol_eta {
    int known;              /* 0: no capacity or no work known */
    double eta_s, lo_s, hi_s; /* completion (caller's clock) and interval */
    double slack_s;         /* deadline - eta (0 without deadline) */
    int late;               /* deadline set and eta beyond it */
    int urgent;             /* ranked ahead for its deadline */
    double rate;            /* samples/s of the pool for its unit type */
    double remaining;       /* samples still to generate (pass-adjusted) */
    size_t nclasses;
    struct {
        double eta_s, lo_s, hi_s;
    } cls[CX_POL_MAX_CLASSES];
} cx_pol_eta_t;

/* The job's estimated completion from measured rates, the eligible pool,
 * the jobs ranked ahead of it (and those sharing with it) and its classes'
 * pass rates, with an interval of about two standard errors. */
void cx_pol_job_eta(cx_pol_t *p, int j, double now, cx_pol_eta_t *out);

/* The planner's over-issue: samples to issue for a class so that it
 * reaches quota when a fraction `pass` of what is generated passes, with
 * a margin of two binomial standard deviations (so it rarely ends short
 * and needs another round of replacements). Given committed and
 * outstanding (issued, not resolved) samples, returns how many more to
 * issue (0 when on track). pass <= 0 or > 1 is read as 1, which is the
 * plain shortfall quota - committed - outstanding. */
uint64_t cx_pol_issue_shortfall(uint64_t quota, uint64_t committed,
                                uint64_t outstanding, double pass);
/* The pass rate to plan with from generated/passed counts: 1 until
 * min_samples were generated, never below floor. */
double cx_pol_pass_rate(uint64_t generated, uint64_t passed,
                        uint64_t min_samples, double floor);

#endif
