/* cascadectl quarantine: the workers the quality gates quarantined
 * (cx:quarantined, cx:quarantine:<w>; see services/validator/account.h)
 * and releasing one. The formatting is pure, so tests check it. */
#ifndef CASCADECTL_QUARANTINE_H
#define CASCADECTL_QUARANTINE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ctl.h"

typedef struct cx_ctl_quar {
    const char *worker, *reason, *gpu_type, *job_id;
    int64_t since_ms;
    double failure_rate, pool_rate, samples;
} cx_ctl_quar_t;

/* action "list": the table (or --json); "release": deletes the worker's
 * quarantine and its gate statistics (it starts afresh). Exit statuses as
 * ctl.h; releasing a worker that is not quarantined is CX_CTL_FAILED. */
int cx_ctl_quarantine(cx_ctl_t *c, const char *action, const char *worker);

void cx_ctl_print_quarantine(FILE *out, const cx_ctl_quar_t *q, size_t n,
                             int64_t now_ms);
char *cx_ctl_quarantine_json(const cx_ctl_quar_t *q, size_t n);

#endif
