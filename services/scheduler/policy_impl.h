/* Internals of the policy library shared by policy.c (the index), place.c
 * (placement) and eta.c (estimates). Not for callers. */
#ifndef CX_SCHED_POLICY_IMPL_H
#define CX_SCHED_POLICY_IMPL_H

#include <stdint.h>

#include "policy.h"
#include "strmap.h"

/* A deque entry: a unit and the enqueue generation it was pushed with
 * (an entry whose generation is not the unit's current one is stale). */
typedef struct qent {
    int u;
    uint32_t gen;
} qent_t;

typedef struct pqueue {
    int job, cls, ut, ckpt;
    qent_t *ring;
    size_t cap, head, len; /* ring buffer */
    uint64_t pending_samples;
    uint32_t pending_units;
    uint64_t blocked; /* == round stamp: nothing placeable this round */
} pqueue_t;

typedef struct pclass {
    char name[CX_POL_ID_MAX];
    uint32_t index;
    uint64_t quota, committed, generated, passed;
    double placed;
    uint64_t pending_samples, inflight_samples;
    uint32_t pending_units, inflight_units;
    int *queues;
    size_t nqueues, capq;
    uint64_t blocked;
} pclass_t;

typedef struct pjob {
    char id[CX_POL_ID_MAX];
    int live;
    int tenant;
    int priority;
    int64_t deadline_ms;
    uint64_t seq;
    pclass_t *classes;
    size_t nclasses, capc;
    uint64_t pending_samples, inflight_samples;
    uint32_t pending_units, inflight_units;
    /* ranking, recomputed by cx_pol_round */
    double work_s;     /* pool-seconds of remaining work */
    double slack_s;    /* deadline - now - work_s (+inf without deadline) */
    int urgent;
    uint64_t blocked;
} pjob_t;

typedef struct punit {
    char id[CX_POL_ID_MAX];
    cx_pol_state_t state;
    int job, cls, q, ut, ckpt;
    uint32_t samples, attempt, gen;
    uint64_t order, tag;
    int worker;
    double dur_s; /* expected run (incl. load) where it is in flight */
    int excl[CX_POL_MAX_EXCL];
    uint8_t nexcl;
    int next_free;
} punit_t;

typedef struct pworker {
    char id[CX_POL_ID_MAX];
    int gtype;
    uint64_t mem_budget;
    int slots;
    int alive, draining, quarantined, placeable;
    int eligible;
    int units[CX_POL_MAX_SLOTS];
    int ninflight;
    double busy_until;
    int warm[CX_POL_MAX_WARM];
    double warm_used[CX_POL_MAX_WARM];
    int nwarm;
    int free_pos; /* index in the ready list, -1 when not there */
    int heap_pos; /* index in the waiting heap, -1 when not there */
} pworker_t;

typedef struct ptenant {
    char id[CX_POL_ID_MAX];
    uint32_t inflight_units;
    uint64_t active_stamp; /* round in which it had pending work */
} ptenant_t;

/* Per checkpoint: pending demand and how many eligible workers hold it. */
typedef struct pckpt {
    uint64_t pending_samples;
    uint32_t warm_workers;
} pckpt_t;

struct cx_pol {
    cx_pol_conf_t conf;
    cx_tput_t *model;
    cx_smap_t *jmap, *umap, *wmap, *tmap;
    pjob_t *jobs;
    size_t njobs, capj;
    punit_t *units;
    size_t nunits, capu;
    int free_unit;
    pworker_t *workers;
    size_t nworkers, capw;
    pqueue_t *queues;
    size_t nqueues, capqs;
    ptenant_t *tenants;
    size_t ntenants, capt;
    pckpt_t *ckpts;
    size_t nckpts;
    /* Eligible workers with a free slot: idle ones, and busy ones within
     * prefetch_s of their expected start, are `ready` (what a decision
     * scans); busy ones further out wait in a min-heap keyed by
     * busy_until - prefetch_s and are promoted as the clock passes it. */
    int *free_list; /* the ready list */
    size_t nfree;
    int *wait_heap;
    size_t nwait;
    uint32_t eligible_by_g[CX_TPUT_MAX_GPU];
    size_t eligible;
    uint64_t pending_units, inflight_units, pending_samples,
        inflight_samples;
    uint64_t stamp;      /* placement round */
    uint64_t rank_stamp; /* job ranking pass */
    size_t active_tenants;
};

/* Grows an array so that index n fits (zeroing new space). */
int cx__pol_grow(void **arr, size_t *cap, size_t n, size_t elem);
/* The checkpoint counters for k (grown on demand); NULL out of memory. */
pckpt_t *cx__pol_ckpt(cx_pol_t *p, int k);
/* Worker slot cap. */
int cx__pol_cap(const cx_pol_t *p, const pworker_t *w);
/* Re-evaluates w's eligibility and ready/waiting membership. */
void cx__pol_worker_refresh(cx_pol_t *p, int w);
/* Moves waiting workers whose time has come to the ready list. */
void cx__pol_promote(cx_pol_t *p, double now);
/* Marks unit u in flight on w (counters, worker queue, warm prediction). */
void cx__pol_inflight(cx_pol_t *p, int u, int w, double now, double dur);
/* Takes a pending unit out of the pending counters (its entry goes stale). */
void cx__pol_unpend(cx_pol_t *p, int u);
/* Ranks jobs at now: remaining work in pool-seconds, slack, urgency. */
void cx__pol_rank(cx_pol_t *p, double now);
/* The class's believed pass rate. */
double cx__pol_pass(const cx_pol_t *p, const pclass_t *c);
/* Adds k to w's warm set as used at `now`, evicting least recently used
 * checkpoints to fit its memory budget (or the slot count). */
void cx__pol_warm_add(cx_pol_t *p, pworker_t *w, int k, double now);
/* Samples the job still has to generate: pending + in flight, or what its
 * quotas still need at the believed pass rates when that is more. */
double cx__pol_job_remaining(const cx_pol_t *p, const pjob_t *j);
/* A job's main unit type (its first queue's), -1 when none. */
int cx__pol_job_utype(const cx_pol_t *p, const pjob_t *j);

#endif
