/* A simulated GPU pool, read from a JSON pool file (examples/pools/):
 *
 *   {"name": "headline",
 *    "reference": {"width": 512, "height": 512, "steps": 50, "samples": 50},
 *    "gpus": [{"type": "H100", "count": 200, "unit_s": 38, "mem_gb": 80,
 *              "cost_per_hour": 4.0},
 *             {"type": "L40S", "count": 60, "unit_s": 70, "mem_gb": 48,
 *              "spot": true, "preempt_per_hour": 0.2, "replace_s": 300,
 *              "notice_s": 30}],
 *    "checkpoints": {"ref-cxr-v0": {"load_s": 90, "mem_gb": 12}},
 *    "default_load_s": 90, "batch_failure_rate": 0.03,
 *    "crash_per_hour": 0.0, "goodbye_fraction": 0.9, "detect_s": 10,
 *    "lease_s": 120, "max_attempts": 3, "slots": 2, "models": 2,
 *    "time_jitter": 0.05, "pass_rate": 1.0,
 *    "model": { ...priors, as the scheduler's model_file... }}
 *
 * unit_s: seconds one GPU of the type takes for a reference unit
 * (`samples` samples of the reference size and steps); other unit types
 * scale with steps x pixels. A spot type is preempted at preempt_per_hour
 * per node; a preempted node says goodbye (SIGTERM drain: its running unit
 * finishes if it can within notice_s, its queued ones are released at
 * once) with probability goodbye_fraction, else it goes silent and its
 * units are recovered after detect_s (the alive TTL). Any node crashes
 * silently at crash_per_hour. A lost node is replaced by a fresh, cold one
 * of its type after replace_s. A batch fails with batch_failure_rate at a
 * uniformly random point of its run. Without "model", the policy starts
 * from a flat prior and learns the per-type rates. pass_rate (a number or
 * {class: rate}) is the fraction of generated samples that pass the gates.
 */
#ifndef CX_SIM_POOL_H
#define CX_SIM_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"

#define CX_SIM_MAX_TYPES 16
#define CX_SIM_MAX_CKPTS 32
#define CX_SIM_MAX_PASS 64

typedef struct cx_simgpu {
    char type[64];
    uint32_t count;
    double unit_s;     /* per reference unit */
    double mem_gb;     /* 0: unknown (everything fits) */
    double cost_per_hour;
    int spot;
    double preempt_per_hour, replace_s, notice_s;
} cx_simgpu_t;

typedef struct cx_simckpt {
    char name[128];
    double load_s;
    double mem_gb;
} cx_simckpt_t;

typedef struct cx_simpool {
    char name[64];
    uint32_t ref_width, ref_height, ref_steps, ref_samples;
    cx_simgpu_t gpus[CX_SIM_MAX_TYPES];
    size_t ngpus;
    cx_simckpt_t ckpts[CX_SIM_MAX_CKPTS];
    size_t nckpts;
    double default_load_s, batch_failure_rate, crash_per_hour,
        goodbye_fraction, detect_s, lease_s, time_jitter;
    uint32_t max_attempts, slots, models;
    double pass_rate; /* default for classes not named */
    struct {
        char name[64];
        double rate;
    } pass[CX_SIM_MAX_PASS];
    size_t npass;
    char *model_json; /* the "model" object, printed; NULL when absent */
} cx_simpool_t;

/* Parses a pool file's text. Unknown keys and bad values are errors naming
 * the path ("gpus[1].count: must be a positive integer"). Release with
 * cx_simpool_release. */
int cx_simpool_parse(const char *text, size_t len, cx_simpool_t *out,
                     cx_err_t *err);
void cx_simpool_release(cx_simpool_t *p);

/* Seconds per sample of type g for a unit type (scaled from unit_s). */
double cx_simpool_sps(const cx_simpool_t *p, size_t g, uint32_t width,
                      uint32_t height, uint32_t steps);
/* Load seconds and memory (GB) of a checkpoint (defaults when unnamed). */
double cx_simpool_load_s(const cx_simpool_t *p, const char *ckpt);
double cx_simpool_mem_gb(const cx_simpool_t *p, const char *ckpt);
/* The pass rate of a class. */
double cx_simpool_pass(const cx_simpool_t *p, const char *class_name);

#endif
