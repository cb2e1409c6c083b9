/* Estimates: cx:job:<job>:eta, deadline JobEvents, and the learned
 * throughput model's persistence and metrics (sched_impl.h). */
#include "sched_impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/codec.h"
#include "cascade/log.h"
#include "cascade/util.h"
#include "sync.h"

#define CX__ETA_FLUSH_MS 10000

void cx__sched_save_model(cx_sched_t *s) {
    if (!s->tput_dirty) return;
    cx_err_t err = {0};
    if (cx_sync_tput_save(s->svc->redis, s->model, &err) < 0) {
        CX_WARN("throughput model not saved err=\"%s\"", err.msg);
        return;
    }
    s->tput_dirty = 0;
    cx_metrics_t *m = s->svc->metrics;
    size_t n = cx_tput_cells(s->model, NULL, 0);
    cx_tput_cell_t *c = m && n ? malloc(n * sizeof *c) : NULL;
    if (!c) return;
    cx_tput_cells(s->model, c, n);
    for (size_t i = 0; i < n; i++) {
        char cell[CX_TPUT_NAME_MAX * 2 + 40];
        snprintf(cell, sizeof cell, "%s|%s", cx_tput_utype_key(s->model, c[i].ut),
                 cx_tput_gtype_name(s->model, c[i].g));
        cx_metric_set(cx_metrics_gauge(m, "cascade_scheduler_sec_per_sample",
                                       "Learned seconds per sample per unit "
                                       "type and GPU type",
                                       "cell", cell),
                      exp(c[i].mean_log));
    }
    free(c);
}

static int64_t ms(double s) { return s > 0 ? (int64_t)llround(s * 1000) : 0; }

/* HSET cx:job:<job>:eta with the estimate. */
static int write_eta(cx_sched_t *s, int j, const cx_pol_eta_t *e,
                     int64_t now_ms, cx_err_t *err) {
    const char *job = cx_pol_job_id(s->pol, j);
    size_t nc = e->nclasses, argc = 0;
    const char **argv = calloc(2 + 2 * (9 + nc), sizeof *argv);
    char (*vals)[96] = calloc(9 + nc, sizeof *vals);
    char (*names)[CX_POL_ID_MAX + 8] = calloc(nc ? nc : 1, sizeof *names);
    char key[CX_POL_ID_MAX + 16];
    int rc = -1;
    if (!argv || !vals || !names) {
        cx_err_set(err, CX_ENOMEM, 0, "eta: out of memory");
        goto done;
    }
    snprintf(key, sizeof key, "cx:job:%s:eta", job);
    argv[argc++] = "HSET";
    argv[argc++] = key;
    static const char *const fields[] = {"updated_ms", "known", "eta_ms",
                                         "lo_ms", "hi_ms", "late", "urgent",
                                         "rate", "remaining"};
    snprintf(vals[0], 96, "%" PRId64, now_ms);
    snprintf(vals[1], 96, "%d", e->known);
    snprintf(vals[2], 96, "%" PRId64, e->known ? ms(e->eta_s) : 0);
    snprintf(vals[3], 96, "%" PRId64, e->known ? ms(e->lo_s) : 0);
    snprintf(vals[4], 96, "%" PRId64, e->known ? ms(e->hi_s) : 0);
    snprintf(vals[5], 96, "%d", e->late);
    snprintf(vals[6], 96, "%d", e->urgent);
    snprintf(vals[7], 96, "%.6g", e->rate);
    snprintf(vals[8], 96, "%.0f", e->remaining);
    for (size_t i = 0; i < 9; i++) {
        argv[argc++] = fields[i];
        argv[argc++] = vals[i];
    }
    for (size_t c = 0; c < nc; c++) {
        cx_pol_class_view_t v;
        cx_pol_class_view(s->pol, j, (int)c, &v);
        snprintf(names[c], sizeof names[c], "class:%s", v.name);
        snprintf(vals[9 + c], 96, "%" PRId64 " %" PRId64 " %" PRId64,
                 e->known ? ms(e->cls[c].eta_s) : 0,
                 e->known ? ms(e->cls[c].lo_s) : 0,
                 e->known ? ms(e->cls[c].hi_s) : 0);
        argv[argc++] = names[c];
        argv[argc++] = vals[9 + c];
    }
    size_t *lens = calloc(argc, sizeof *lens);
    if (!lens) {
        cx_err_set(err, CX_ENOMEM, 0, "eta: out of memory");
        goto done;
    }
    for (size_t i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    redisReply *rep = cx_redis_cmdargv(s->svc->redis, (int)argc, argv, lens,
                                       err);
    free(lens);
    if (!rep) {
        cx_err_wrap(err, "write %s", key);
        goto done;
    }
    freeReplyObject(rep);
    rc = 0;
done:
    free(argv);
    free(vals);
    free(names);
    return rc;
}

static const char *risk_name(int r) {
    switch (r) {
    case CX_RISK_OK: return "ok";
    case CX_RISK_AT_RISK: return "at_risk";
    case CX_RISK_MISSED: return "missed";
    default: return "";
    }
}

static int risk_parse(const char *s) {
    for (int r = CX_RISK_OK; r <= CX_RISK_MISSED; r++)
        if (!strcmp(s, risk_name(r))) return r;
    return CX_RISK_NONE;
}

/* The deadline state the estimate says, with hysteresis: once at risk, a
 * job is back on time only when the estimate clears the deadline by 2 %
 * of the time left. */
static int risk_of(int cur, const cx_pol_eta_t *e, double now, double dl) {
    if (now > dl) return CX_RISK_MISSED;
    if (!e->known) return cur;
    if (e->late) return CX_RISK_AT_RISK;
    if (cur == CX_RISK_AT_RISK && e->eta_s > dl - 0.02 * (dl - now))
        return CX_RISK_AT_RISK;
    return CX_RISK_OK;
}

/* Announces a deadline state change (JobEvent first, then the state, so
 * a crash between repeats the event rather than losing it). */
static int announce_risk(cx_sched_t *s, int j, int risk,
                         const cx_pol_eta_t *e, cx_err_t *err) {
    const char *job = cx_pol_job_id(s->pol, j);
    int64_t dl = cx_pol_job_deadline(s->pol, j), now = cx_now_ms();
    char msg[256], eta[40] = "unknown";
    if (e->known)
        snprintf(eta, sizeof eta, "in %.0f s (%.0f-%.0f)",
                 e->eta_s - (double)now / 1000, e->lo_s - (double)now / 1000,
                 e->hi_s - (double)now / 1000);
    Cascade__V1__JobEvent ev = CASCADE__V1__JOB_EVENT__INIT;
    ev.job_id = (char *)job;
    ev.unix_ms = now;
    ev.deadline_unix_ms = dl;
    ev.eta_unix_ms = e->known ? ms(e->eta_s) : 0;
    ev.eta_low_unix_ms = e->known ? ms(e->lo_s) : 0;
    ev.eta_high_unix_ms = e->known ? ms(e->hi_s) : 0;
    switch (risk) {
    case CX_RISK_AT_RISK:
        ev.type = CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_DEADLINE_AT_RISK;
        snprintf(msg, sizeof msg,
                 "will miss its deadline by %.0f s: estimated completion %s",
                 -e->slack_s, eta);
        break;
    case CX_RISK_MISSED:
        ev.type = CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_DEADLINE_MISSED;
        snprintf(msg, sizeof msg, "deadline passed, not complete: "
                                  "estimated completion %s", eta);
        break;
    default:
        ev.type = CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_DEADLINE_RECOVERED;
        snprintf(msg, sizeof msg, "back on time: estimated completion %s, "
                                  "%.0f s before the deadline", eta,
                 e->slack_s);
    }
    ev.message = msg;
    size_t len;
    uint8_t *buf = cx_pack(&ev.base, &len, err);
    if (!buf) return -1;
    int rc = cx_producer_send(s->svc->producer, CX_TOPIC_JOB_EVENTS, -1, job,
                              strlen(job), buf, len, err);
    free(buf);
    if (rc == 0)
        rc = cx_producer_flush(s->svc->producer, CX__ETA_FLUSH_MS, err);
    if (rc < 0) return -1;
    CX_WARN("deadline %s job_id=%s message=\"%s\"", risk_name(risk), job, msg);
    redisReply *rep = cx_redis_cmd(s->svc->redis, err,
                                   "HSET cx:job:%s:eta risk %s", job,
                                   risk_name(risk));
    if (!rep) return cx_err_wrap(err, "job %s risk", job);
    freeReplyObject(rep);
    return 0;
}

/* The deadline state last announced (from Redis after a restart). */
static int risk_load(cx_sched_t *s, int j, cx_err_t *err) {
    sjob_t *sj = &s->jobs[j];
    if (sj->risk != CX_RISK_NONE) return 0;
    redisReply *rep = cx_redis_cmd(s->svc->redis, err,
                                   "HGET cx:job:%s:eta risk",
                                   cx_pol_job_id(s->pol, j));
    if (!rep) return -1;
    if (rep->type == REDIS_REPLY_STRING) sj->risk = risk_parse(rep->str);
    freeReplyObject(rep);
    if (sj->risk == CX_RISK_NONE) sj->risk = CX_RISK_OK;
    return 0;
}

int cx__sched_publish_eta(cx_sched_t *s, cx_err_t *err) {
    int64_t now_ms = cx_now_ms();
    double now = (double)now_ms / 1000.0;
    for (size_t j = 0; j < cx_pol_njobs(s->pol); j++) {
        if (!cx_pol_job_live(s->pol, (int)j) ||
            cx__sched_track_job(s, (int)j) < 0 || !s->jobs[j].loaded ||
            s->jobs[j].ended)
            continue;
        cx_pol_eta_t e;
        cx_pol_job_eta(s->pol, (int)j, now, &e);
        if (write_eta(s, (int)j, &e, now_ms, err) < 0) return -1;
        int64_t dl = cx_pol_job_deadline(s->pol, (int)j);
        if (!dl) continue;
        if (risk_load(s, (int)j, err) < 0) return -1;
        int cur = s->jobs[j].risk, next = risk_of(cur, &e, now, (double)dl / 1000);
        if (next == cur) continue;
        if (announce_risk(s, (int)j, next, &e, err) < 0) return -1;
        s->jobs[j].risk = next;
    }
    return 0;
}
