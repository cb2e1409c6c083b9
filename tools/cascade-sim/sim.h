/* cascade-sim: the scheduling policy (services/scheduler/policy.c, the
 * same code the live scheduler runs) driven by a simulated clock against a
 * simulated pool (simpool.h), and the naive baselines beside it.
 *
 * The simulated world: each worker runs its queued units one after
 * another (the first on a checkpoint it does not hold pays the cold load;
 * it keeps `models` checkpoints warm within its memory), batches fail at
 * the pool's rate at a random point of their run (the unit is retried
 * elsewhere, and dead after max_attempts: the planner then issues a
 * replacement), spot nodes are preempted (goodbye or silent) and crashed
 * nodes go silent, both replaced after replace_s by a cold node, and each
 * finished unit commits the samples that pass (capped at the quota, as
 * the committer does). The planner is emulated with the same over-issue
 * arithmetic as services/planner (cx_pol_issue_shortfall).
 *
 * Modes:
 *  - policy: the Cascade scheduler (cx_pol_*), learning rates online from
 *    the simulated timings, told of losses as the live one would be
 *    (goodbye at once, silence after the alive TTL).
 *  - naive (static): FIFO, GPU-type-blind, independent workers: the queue
 *    is dealt out evenly, each worker runs its share in order and retries
 *    its own failures; a lost node's share waits for its replacement.
 *  - naive-pull: one shared FIFO that idle workers pull from one unit at a
 *    time; lost units come back only when their lease expires.
 * Deterministic for a seed: one random stream, consumed in event order,
 * ties broken by insertion order. */
#ifndef CX_SIM_SIM_H
#define CX_SIM_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/codec.h"
#include "cascade/err.h"
#include "simpool.h"

#define CX_SIM_MAX_JOBS 16
#define CX_SIM_MAX_CLASSES 64

typedef struct cx_simjob {
    char id[64];
    char tenant[64];
    int priority;
    double deadline_s; /* seconds after the start; 0: none */
    char checkpoint[128];
    uint32_t width, height, steps, unit_size;
    size_t nclasses;
    char names[CX_SIM_MAX_CLASSES][64];
    uint64_t quota[CX_SIM_MAX_CLASSES];
} cx_simjob_t;

/* From a (defaulted, validated) JobSpec; deadline relative to start_ms. */
int cx_simjob_from_spec(const cx_jobspec_t *spec, int64_t start_ms,
                        cx_simjob_t *out, cx_err_t *err);
/* Reads a YAML/JSON job file (checked as `cascadectl submit` does, except
 * that class names are not checked against a local checkpoint). */
int cx_simjob_load(const char *path, int64_t start_ms, cx_simjob_t *out,
                   cx_err_t *err);

typedef enum {
    CX_SIM_POLICY = 0,
    CX_SIM_NAIVE = 1,
    CX_SIM_NAIVE_PULL = 2
} cx_sim_mode_t;
const char *cx_sim_mode_name(cx_sim_mode_t m);

typedef struct cx_sim_conf {
    uint64_t seed;
    cx_sim_mode_t mode;
    double drift_from;  /* share of a job committed before drift counts */
    double max_sim_s;   /* give up after this much simulated time */
    double urgent_margin_s; /* policy: cx_pol_conf urgent_margin_s */
} cx_sim_conf_t;
void cx_sim_conf_default(cx_sim_conf_t *c); /* seed 1, 0.01, 60 days */

typedef struct cx_sim_type_report {
    char type[64];
    uint32_t count;
    double busy;   /* share of node time loading or running units */
    double useful; /* share running units that succeeded */
} cx_sim_type_report_t;

typedef struct cx_sim_report {
    cx_sim_mode_t mode;
    int finished;       /* every job met its quota */
    double makespan_s;  /* until the last job completed */
    double lower_bound_s, lb_work_s, lb_warm_s;
    double job_done_s[CX_SIM_MAX_JOBS];
    int job_late[CX_SIM_MAX_JOBS];
    double drift_from;      /* the share of the job committed before... */
    double worst_drift;     /* ...the max class share error counts */
    double worst_drift_early; /* the same from 0.1 % committed */
    double drift_at_s;      /* when the worst drift was seen */
    uint64_t units_issued, attempts, units_ok, retries, dead, lost,
        preemptions, crashes, cold_loads, decisions;
    uint64_t samples_generated, samples_committed;
    double cost;
    cx_sim_type_report_t types[CX_SIM_MAX_TYPES];
    size_t ntypes;
} cx_sim_report_t;

/* Runs jobs on the pool. 0 (report filled; check `finished`), or -1 with
 * err (bad input, out of memory). */
int cx_sim_run(const cx_simpool_t *pool, const cx_simjob_t *jobs,
               size_t njobs, const cx_sim_conf_t *conf,
               cx_sim_report_t *out, cx_err_t *err);

/* The lower bound: total work (quotas / pass rates) over the pool's total
 * throughput, plus the one cold load every node needs at the start. */
double cx_sim_lower_bound(const cx_simpool_t *pool, const cx_simjob_t *jobs,
                          size_t njobs, double *work_s, double *warm_s);

#endif
