/* cascadectl's commands and their output. The formatting functions are
 * pure (a state in, text out) so tests check exactly what a user sees. */
#ifndef CASCADECTL_CTL_H
#define CASCADECTL_CTL_H

#include <stdint.h>
#include <stdio.h>

#include "cascade/codec.h"
#include "cascade/err.h"
#include "cascade/jobstate.h"
#include "cascade/kafka.h"
#include "cascade/redis.h"

/* Exit statuses. */
enum {
    CX_CTL_OK = 0,
    CX_CTL_FAILED = 1,  /* unknown job; watch: job ended CANCELLED/REJECTED */
    CX_CTL_USAGE = 2,   /* bad arguments or an invalid job file */
    CX_CTL_INFRA = 3,   /* Kafka or Redis unreachable or failing */
    CX_CTL_TIMEOUT = 4  /* watch --timeout ran out */
};

typedef struct cx_ctl {
    const char *brokers;
    const char *redis_url;
    int json;
    double timeout_s;  /* watch: 0 = none */
    double interval_s; /* watch refresh */
    FILE *out, *errout;
} cx_ctl_t;

/* Reads, parses, defaults and validates a job file into a spec ready to
 * send (job id assigned when absent, submitted time set). NULL with err
 * naming the problem. Free with cx_jobfile_free. */
cx_jobspec_t *cx_ctl_load_jobfile(const char *path, int64_t now_ms,
                                  cx_err_t *err);

int cx_ctl_submit(cx_ctl_t *c, const char *path);
int cx_ctl_status(cx_ctl_t *c, const char *job);
int cx_ctl_watch(cx_ctl_t *c, const char *job);
int cx_ctl_list(cx_ctl_t *c);
int cx_ctl_cancel(cx_ctl_t *c, const char *job);

/* "[#######.......]" of width cells (plus brackets) for done/total. */
void cx_ctl_bar(char *buf, size_t width, uint64_t done, uint64_t total);
/* "3m12s", "1h04m", "-" when unknown (rate <= 0). */
void cx_ctl_duration(char *buf, size_t size, double seconds);
/* The human status block. */
void cx_ctl_print_status(FILE *out, const cx_jobstate_t *st);
/* The --json status document (malloc'd). */
char *cx_ctl_status_json(const cx_jobstate_t *st);
/* One watch frame: a bar per class, rate, pass rate, ETA. */
void cx_ctl_print_watch(FILE *out, const cx_jobstate_t *st, double rate,
                        double elapsed_s);

#endif
