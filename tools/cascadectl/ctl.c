/* cx_ctl_*: cascadectl's commands (see ctl.h). */
#include "ctl.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cascade/gen.h"
#include "cascade/jobfile.h"
#include "cascade/util.h"
#include "gates.h"
#include "sched.h"

#define CX__CTL_FLUSH_MS 15000
#define CX__CTL_REDIS_RETRY_MS 3000

static int class_known(void *ctx, const char *checkpoint, const char *name) {
    (void)ctx;
    return cx_checkpoint_has_class(checkpoint, name);
}

cx_jobspec_t *cx_ctl_load_jobfile(const char *path, int64_t now_ms,
                                  cx_err_t *err) {
    char *text = NULL;
    size_t len = 0;
    if (cx_read_file(path, &text, &len, err) < 0) return NULL;
    cx_jobspec_t *spec = cx_jobfile_parse(text, len, err);
    free(text);
    if (!spec) return NULL;
    if (cx_jobspec_apply_defaults(spec, err) < 0 ||
        cx_jobspec_validate(spec, class_known, NULL, err) < 0 ||
        cx_gate_criteria_check(spec->validation, err) < 0) {
        cx_jobfile_free(spec);
        return NULL;
    }
    spec->submitted_unix_ms = now_ms;
    return spec;
}

static int send_spec(cx_ctl_t *c, const cx_jobspec_t *spec) {
    cx_err_t err = {0};
    size_t len;
    int rc = CX_CTL_INFRA;
    uint8_t *buf = cx_pack(&spec->base, &len, &err);
    cx_producer_t *p = buf ? cx_producer_new(c->brokers, "cascadectl", &err) : NULL;
    if (p && cx_producer_send(p, CX_TOPIC_JOBS, -1, spec->job_id,
                              strlen(spec->job_id), buf, len, &err) == 0 &&
        cx_producer_flush(p, CX__CTL_FLUSH_MS, &err) == 0)
        rc = CX_CTL_OK;
    if (rc != CX_CTL_OK)
        fprintf(c->errout, "cascadectl: cannot send to %s at %s: %s\n",
                CX_TOPIC_JOBS, c->brokers, err.msg);
    cx_producer_destroy(p);
    free(buf);
    return rc;
}

int cx_ctl_submit(cx_ctl_t *c, const char *path) {
    cx_err_t err = {0};
    cx_jobspec_t *spec = cx_ctl_load_jobfile(path, cx_now_ms(), &err);
    if (!spec) {
        fprintf(c->errout, "cascadectl: invalid job file %s: %s\n", path, err.msg);
        return CX_CTL_USAGE;
    }
    int rc = send_spec(c, spec);
    if (rc == CX_CTL_OK) fprintf(c->out, "%s\n", spec->job_id);
    cx_jobfile_free(spec);
    return rc;
}

int cx_ctl_cancel(cx_ctl_t *c, const char *job) {
    cx_jobspec_t spec = CASCADE__V1__JOB_SPEC__INIT;
    cx_err_t err = {0};
    if (cx_name_check("job id", job, &err) < 0) {
        fprintf(c->errout, "cascadectl: %s\n", err.msg);
        return CX_CTL_USAGE;
    }
    spec.job_id = (char *)job;
    spec.action = CASCADE__V1__JOB_ACTION__JOB_ACTION_CANCEL;
    spec.submitted_unix_ms = cx_now_ms();
    int rc = send_spec(c, &spec);
    if (rc == CX_CTL_OK) fprintf(c->out, "cancel requested for %s\n", job);
    return rc;
}

/* Loads job; prints the error and returns an exit status when it fails. */
static int load(cx_ctl_t *c, cx_redis_t **r, const char *job,
                cx_jobstate_t **st, int quiet_unknown) {
    cx_err_t err = {0};
    if (cx_name_check("job id", job, &err) < 0) {
        fprintf(c->errout, "cascadectl: %s\n", err.msg);
        return CX_CTL_USAGE;
    }
    if (!*r && !(*r = cx_redis_new(c->redis_url, CX__CTL_REDIS_RETRY_MS, &err))) {
        fprintf(c->errout, "cascadectl: redis %s: %s\n", c->redis_url, err.msg);
        return CX_CTL_INFRA;
    }
    int rc = cx_jobstate_load(*r, job, st, &err);
    if (rc < 0) {
        fprintf(c->errout, "cascadectl: redis %s: %s\n", c->redis_url, err.msg);
        return CX_CTL_INFRA;
    }
    if (rc == 0 || !(*st)->state[0]) {
        cx_jobstate_free(*st);
        *st = NULL;
        if (!quiet_unknown) fprintf(c->errout, "cascadectl: unknown job %s\n", job);
        return CX_CTL_FAILED;
    }
    return CX_CTL_OK;
}

void cx_ctl_bar(char *buf, size_t width, uint64_t done, uint64_t total) {
    size_t fill = total ? (size_t)((double)width * (double)(done > total ? total : done) / (double)total) : 0;
    size_t i = 0;
    buf[i++] = '[';
    for (size_t k = 0; k < width; k++) buf[i++] = k < fill ? '#' : '.';
    buf[i++] = ']';
    buf[i] = '\0';
}

void cx_ctl_duration(char *buf, size_t size, double s) {
    if (!(s >= 0) || s > 1e9) {
        snprintf(buf, size, "-");
        return;
    }
    long long t = (long long)(s + 0.5);
    if (t < 60) snprintf(buf, size, "%llds", t);
    else if (t < 3600) snprintf(buf, size, "%lldm%02llds", t / 60, t % 60);
    else snprintf(buf, size, "%lldh%02lldm", t / 3600, (t % 3600) / 60);
}

static void fmt_time(char *buf, size_t size, int64_t ms) {
    if (ms <= 0) {
        snprintf(buf, size, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static double pct(uint64_t a, uint64_t b) { return b ? 100.0 * (double)a / (double)b : 0; }

/* Where a committed sample's time went: per sample, the worker's batch
 * generation (wall time of a batch over its samples; the plug-in spreads
 * it over its threads) and its encode/write (thread-ms on the pool); wall
 * ms per unit for the later stages. */
static void print_timing(FILE *out, const cx_jobtiming_t *t) {
    if (!t->units || !t->samples) return;
    double n = (double)t->samples, u = (double)t->units;
    fprintf(out,
            "time per sample (ms): generate %.1f wall  encode %.1f  "
            "write %.1f thread-ms\n",
            t->generate_ms / n, t->encode_ms / n, t->write_ms / n);
    fprintf(out,
            "time per unit (ms): load %.1f  validate %.1f  commit %.1f  "
            "staged->verdict %.1f  verdict->commit %.1f\n",
            t->load_ms / u, t->validate_ms / u, t->commit_ms / u,
            t->to_verdict_ms / u, t->to_commit_ms / u);
}

static void timing_json(cJSON *o, const cx_jobtiming_t *t) {
    cJSON *j = cJSON_AddObjectToObject(o, "timing");
    if (!j) return;
    cJSON_AddNumberToObject(j, "units", (double)t->units);
    cJSON_AddNumberToObject(j, "samples", (double)t->samples);
    cJSON_AddNumberToObject(j, "generate_ms", t->generate_ms);
    cJSON_AddNumberToObject(j, "encode_ms", t->encode_ms);
    cJSON_AddNumberToObject(j, "write_ms", t->write_ms);
    cJSON_AddNumberToObject(j, "load_ms", t->load_ms);
    cJSON_AddNumberToObject(j, "validate_ms", t->validate_ms);
    cJSON_AddNumberToObject(j, "commit_ms", t->commit_ms);
    cJSON_AddNumberToObject(j, "staged_to_verdict_ms", t->to_verdict_ms);
    cJSON_AddNumberToObject(j, "verdict_to_commit_ms", t->to_commit_ms);
}

void cx_ctl_print_status(FILE *out, const cx_jobstate_t *st) {
    char sub[32], done[32], dl[32];
    cx_jobtotals_t t;
    cx_jobstate_totals(st, &t);
    fmt_time(sub, sizeof sub, st->submitted_ms);
    fmt_time(done, sizeof done, st->done_ms);
    fmt_time(dl, sizeof dl, st->deadline_ms);
    fprintf(out, "job %s  %s", st->job_id, st->state);
    if (st->tenant[0]) fprintf(out, "  tenant=%s", st->tenant);
    fprintf(out, "  priority=%d\n", st->priority);
    fprintf(out, "submitted %s", sub);
    if (st->deadline_ms > 0) fprintf(out, "  deadline %s", dl);
    if (st->done_ms > 0) fprintf(out, "  ended %s", done);
    fprintf(out, "\n");
    if (st->reason[0]) fprintf(out, "reason: %s\n", st->reason);
    if (st->nclasses == 0) return;
    fprintf(out, "%-16s %12s %12s %7s %10s %7s\n", "class", "committed", "quota",
            "done", "pass rate", "units");
    for (size_t i = 0; i < st->nclasses; i++) {
        const cx_classstate_t *c = &st->classes[i];
        char pr[16] = "-";
        if (c->generated) snprintf(pr, sizeof pr, "%.1f%%", pct(c->passed, c->generated));
        fprintf(out, "%-16s %12" PRIu64 " %12" PRIu64 " %6.1f%% %10s %7" PRIu64 "\n",
                c->name, c->committed, c->quota, pct(c->committed, c->quota), pr,
                c->units);
    }
    char pr[16] = "-";
    if (t.generated) snprintf(pr, sizeof pr, "%.1f%%", pct(t.passed, t.generated));
    fprintf(out, "%-16s %12" PRIu64 " %12" PRIu64 " %6.1f%% %10s %7" PRIu64 "\n",
            "total", t.committed, t.quota, pct(t.committed, t.quota), pr, t.units);
    if (st->done_ms > st->submitted_ms && st->submitted_ms > 0) {
        double secs = (double)(st->done_ms - st->submitted_ms) / 1000.0;
        fprintf(out, "throughput %.2f samples/s over %.1f s\n",
                (double)t.committed / secs, secs);
    }
    print_timing(out, &st->timing);
}

char *cx_ctl_status_json(const cx_jobstate_t *st) {
    cx_jobtotals_t t;
    cJSON *o = cJSON_CreateObject(), *arr;
    char *s = NULL;
    if (!o) return NULL;
    cx_jobstate_totals(st, &t);
    cJSON_AddStringToObject(o, "job_id", st->job_id);
    cJSON_AddStringToObject(o, "state", st->state);
    cJSON_AddStringToObject(o, "reason", st->reason);
    cJSON_AddStringToObject(o, "tenant", st->tenant);
    cJSON_AddNumberToObject(o, "priority", st->priority);
    cJSON_AddNumberToObject(o, "submitted_unix_ms", (double)st->submitted_ms);
    cJSON_AddNumberToObject(o, "deadline_unix_ms", (double)st->deadline_ms);
    cJSON_AddNumberToObject(o, "done_unix_ms", (double)st->done_ms);
    cJSON_AddNumberToObject(o, "total_quota", (double)t.quota);
    cJSON_AddNumberToObject(o, "total_committed", (double)t.committed);
    cJSON_AddNumberToObject(o, "generated", (double)t.generated);
    cJSON_AddNumberToObject(o, "passed", (double)t.passed);
    cJSON_AddNumberToObject(o, "pass_rate",
                            t.generated ? (double)t.passed / (double)t.generated : 0);
    cJSON_AddBoolToObject(o, "complete", cx_jobstate_complete(st));
    timing_json(o, &st->timing);
    if (!(arr = cJSON_AddArrayToObject(o, "classes"))) goto done;
    for (size_t i = 0; i < st->nclasses; i++) {
        const cx_classstate_t *c = &st->classes[i];
        cJSON *k = cJSON_CreateObject();
        if (!k) goto done;
        cJSON_AddItemToArray(arr, k);
        cJSON_AddStringToObject(k, "name", c->name);
        cJSON_AddNumberToObject(k, "quota", (double)c->quota);
        cJSON_AddNumberToObject(k, "committed", (double)c->committed);
        cJSON_AddNumberToObject(k, "units", (double)c->units);
        cJSON_AddNumberToObject(k, "generated", (double)c->generated);
        cJSON_AddNumberToObject(k, "passed", (double)c->passed);
        cJSON_AddNumberToObject(k, "issued", (double)c->issued);
        cJSON_AddNumberToObject(k, "pass_rate",
                                c->generated ? (double)c->passed / (double)c->generated : 0);
    }
    s = cJSON_Print(o);
done:
    cJSON_Delete(o);
    return s;
}

int cx_ctl_status(cx_ctl_t *c, const char *job) {
    cx_redis_t *r = NULL;
    cx_jobstate_t *st = NULL;
    int rc = load(c, &r, job, &st, 0);
    if (rc == CX_CTL_OK) {
        if (c->json) {
            char *s = cx_ctl_status_json(st);
            if (s) fprintf(c->out, "%s\n", s);
            free(s);
        } else {
            cx_ctl_print_status(c->out, st);
        }
    }
    cx_jobstate_free(st);
    cx_redis_destroy(r);
    return rc;
}

void cx_ctl_print_watch(FILE *out, const cx_jobstate_t *st, double rate,
                        double elapsed_s) {
    char bar[64], eta[32], el[32];
    cx_jobtotals_t t;
    cx_jobstate_totals(st, &t);
    fprintf(out, "job %s  %s\n", st->job_id, st->state);
    for (size_t i = 0; i < st->nclasses; i++) {
        const cx_classstate_t *c = &st->classes[i];
        cx_ctl_bar(bar, 30, c->committed, c->quota);
        fprintf(out, "  %-14s %s %6.1f%%  %" PRIu64 "/%" PRIu64 "\n", c->name,
                bar, pct(c->committed, c->quota), c->committed, c->quota);
    }
    cx_ctl_bar(bar, 30, t.committed, t.quota);
    uint64_t left = t.quota > t.committed ? t.quota - t.committed : 0;
    cx_ctl_duration(eta, sizeof eta, rate > 0 ? (double)left / rate : -1);
    cx_ctl_duration(el, sizeof el, elapsed_s);
    fprintf(out, "  %-14s %s %6.1f%%  %" PRIu64 "/%" PRIu64 "\n", "total", bar,
            pct(t.committed, t.quota), t.committed, t.quota);
    char pr[16] = "-";
    if (t.generated) snprintf(pr, sizeof pr, "%.1f%%", pct(t.passed, t.generated));
    fprintf(out, "  %.1f samples/s  pass rate %s  elapsed %s  ETA %s\n", rate, pr,
            el, eta);
}

static int ended(const cx_jobstate_t *st) {
    return strcmp(st->state, CX_JOB_DONE) == 0 ||
           strcmp(st->state, CX_JOB_CANCELLED) == 0 ||
           strcmp(st->state, CX_JOB_REJECTED) == 0;
}

int cx_ctl_watch(cx_ctl_t *c, const char *job) {
    cx_redis_t *r = NULL;
    cx_jobstate_t *st = NULL;
    int tty = isatty(fileno(c->out));
    double start = cx_mono_ms(), last_ms = start;
    uint64_t last_committed = 0;
    int have_last = 0, lines = 0, rc;
    double rate = 0;

    for (;;) {
        rc = load(c, &r, job, &st, 1);
        if (rc != CX_CTL_OK && rc != CX_CTL_FAILED) break;
        double now = cx_mono_ms();
        if (st) {
            cx_jobtotals_t t;
            cx_jobstate_totals(st, &t);
            if (!have_last) {
                last_committed = t.committed;
                last_ms = now;
                have_last = 1;
            } else if (now - last_ms >= 1000) {
                /* Smoothed over refreshes so one burst of commits does not
                 * swing the ETA. */
                double inst = (double)(t.committed - last_committed) * 1000.0 / (now - last_ms);
                rate = rate > 0 ? 0.7 * rate + 0.3 * inst : inst;
                last_committed = t.committed;
                last_ms = now;
            }
            if (ended(st)) {
                if (tty && lines) fprintf(c->out, "\033[%dA\033[J", lines);
                cx_ctl_print_status(c->out, st);
                rc = strcmp(st->state, CX_JOB_DONE) == 0 ? CX_CTL_OK : CX_CTL_FAILED;
                break;
            }
            char eta[160];
            int has_eta = cx_ctl_eta_line(r, job, cx_now_ms(), eta, sizeof eta);
            if (tty) {
                if (lines) fprintf(c->out, "\033[%dA\033[J", lines);
                cx_ctl_print_watch(c->out, st, rate, (now - start) / 1000.0);
                if (has_eta) fprintf(c->out, "  %s\n", eta);
                lines = (int)st->nclasses + 3 + has_eta;
            } else {
                fprintf(c->out, "%s %s %" PRIu64 "/%" PRIu64 " %.1f samples/s%s%s\n",
                        st->job_id, st->state, t.committed, t.quota, rate,
                        has_eta ? " " : "", eta);
            }
            fflush(c->out);
            cx_jobstate_free(st);
            st = NULL;
        }
        if (c->timeout_s > 0 && now - start >= c->timeout_s * 1000.0) {
            fprintf(c->errout, "cascadectl: watch %s: timed out after %.0f s\n",
                    job, c->timeout_s);
            rc = CX_CTL_TIMEOUT;
            break;
        }
        double wait = c->interval_s * 1000.0;
        if (c->timeout_s > 0 && start + c->timeout_s * 1000.0 - now < wait)
            wait = start + c->timeout_s * 1000.0 - now;
        if (wait > 0) usleep((useconds_t)(wait * 1000.0));
    }
    cx_jobstate_free(st);
    cx_redis_destroy(r);
    return rc;
}

int cx_ctl_list(cx_ctl_t *c) {
    cx_err_t err = {0};
    cx_strlist_t jobs = {0};
    cx_redis_t *r = cx_redis_new(c->redis_url, CX__CTL_REDIS_RETRY_MS, &err);
    int rc = CX_CTL_OK;
    if (!r || cx_jobstate_list(r, 0, &jobs, &err) < 0) {
        fprintf(c->errout, "cascadectl: redis %s: %s\n", c->redis_url, err.msg);
        cx_redis_destroy(r);
        return CX_CTL_INFRA;
    }
    cJSON *arr = c->json ? cJSON_CreateArray() : NULL;
    if (!c->json)
        fprintf(c->out, "%-28s %-10s %12s %12s %7s  %s\n", "job", "state",
                "committed", "quota", "done", "submitted");
    for (size_t i = 0; i < jobs.len; i++) {
        cx_jobstate_t *st = NULL;
        if (cx_jobstate_load(r, jobs.items[i], &st, &err) < 0) {
            fprintf(c->errout, "cascadectl: redis %s: %s\n", c->redis_url, err.msg);
            rc = CX_CTL_INFRA;
            break;
        }
        if (!st) continue;
        cx_jobtotals_t t;
        cx_jobstate_totals(st, &t);
        if (arr) {
            char *s = cx_ctl_status_json(st);
            cJSON *o = s ? cJSON_Parse(s) : NULL;
            if (o) cJSON_AddItemToArray(arr, o);
            free(s);
        } else {
            char sub[32];
            fmt_time(sub, sizeof sub, st->submitted_ms);
            fprintf(c->out, "%-28s %-10s %12" PRIu64 " %12" PRIu64 " %6.1f%%  %s\n",
                    st->job_id, st->state[0] ? st->state : "?", t.committed,
                    t.quota, pct(t.committed, t.quota), sub);
        }
        cx_jobstate_free(st);
    }
    if (arr) {
        char *s = cJSON_Print(arr);
        if (s) fprintf(c->out, "%s\n", s);
        free(s);
        cJSON_Delete(arr);
    }
    cx_strlist_free(&jobs);
    cx_redis_destroy(r);
    return rc;
}
