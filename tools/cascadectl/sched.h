/* cascadectl's scheduling commands: `plan` (a simulated run of a job file
 * on a pool file before submission: makespan, bound and cost, through
 * cascade-sim's library and the scheduler's policy code), `model` (the
 * throughput the scheduler learned, cx:tput), and the estimate line that
 * `watch` shows (cx:job:<job>:eta). */
#ifndef CASCADECTL_SCHED_H
#define CASCADECTL_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/redis.h"
#include "ctl.h"

int cx_ctl_plan(cx_ctl_t *c, const char *job_file, const char *pool_file,
                uint64_t seed);
int cx_ctl_model(cx_ctl_t *c);

/* The estimate of job as one line ("ETA 2026-11-26 14:05:10Z (14:01:20 ..
 * 14:09:05), pool 812.4 samples/s" plus ", DEADLINE AT RISK"), or "" when
 * the scheduler published none. Returns 1 when it wrote an estimate. */
int cx_ctl_eta_line(cx_redis_t *r, const char *job, int64_t now_ms,
                    char *buf, size_t size);

/* The same from a cx:job:<job>:eta hash's fields, pure: n pairs. */
int cx_ctl_eta_format(const char *const *fields, const char *const *values,
                      size_t n, int64_t now_ms, char *buf, size_t size);

#endif
