/* Scheduler engine: messages, placement rounds, expiry sweeps (the index
 * is in sched_index.c, estimates in sched_eta.c). */
#include "sched_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "assign.h"
#include "cascade/codec.h"
#include "cascade/log.h"
#include "cascade/util.h"
#include "lease.h"
#include "queue.h"
#include "strmap.h"
#include "sync.h"

#define CX_SCHED_FLUSH_MS 10000

void cx_sched_conf_default(cx_sched_conf_t *c) {
    memset(c, 0, sizeof *c);
    c->max_inflight = 2;
    c->lease_ms = 120000;
    c->max_attempts = 3;
    c->batch = 4096;
    c->prune_ms = 600000;
    c->registry_ms = 1000;
    c->jobs_ms = 2000;
    c->eta_ms = 5000;
    c->reconcile_ms = 10000;
    c->prefetch_s = 10;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem, int fill) {
    if (need < *cap) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc <= need) nc *= 2;
    void *p = realloc(*arr, nc * elem);
    if (!p) return -1;
    memset((char *)p + *cap * elem, fill, (nc - *cap) * elem);
    *arr = p;
    *cap = nc;
    return 0;
}

int cx__sched_track_worker(cx_sched_t *s, int w) {
    if (w < 0) return -1;
    size_t cap = s->capw;
    if (grow((void **)&s->wpart, &cap, (size_t)w, sizeof *s->wpart, 0xff) < 0)
        return -1;
    size_t cap2 = s->capw;
    if (grow((void **)&s->wlast, &cap2, (size_t)w, sizeof *s->wlast, 0) < 0)
        return -1;
    s->capw = cap < cap2 ? cap : cap2;
    return 0;
}

int cx__sched_worker(cx_sched_t *s, const char *id) {
    int w = cx_pol_worker(s->pol, id);
    return w >= 0 && cx__sched_track_worker(s, w) == 0 ? w : -1;
}

int cx__sched_track_unit(cx_sched_t *s, int u) {
    return u < 0 ? -1
                 : grow((void **)&s->uleased, &s->capu, (size_t)u,
                        sizeof *s->uleased, 0);
}

int cx__sched_track_job(cx_sched_t *s, int j) {
    return j < 0 ? -1
                 : grow((void **)&s->jobs, &s->capj, (size_t)j,
                        sizeof *s->jobs, 0);
}

static void metrics_init(cx_sched_t *s) {
    cx_metrics_t *m = s->svc->metrics;
    if (!m) return;
    s->m_pending = cx_metrics_gauge(m, "cascade_scheduler_pending",
                                    "Units waiting for a worker", NULL, NULL);
    s->m_leased = cx_metrics_gauge(m, "cascade_scheduler_leased",
                                   "Units leased to workers", NULL, NULL);
    s->m_eligible = cx_metrics_gauge(m, "cascade_scheduler_workers_eligible",
                                     "Workers that can take work", NULL, NULL);
    s->m_placements = cx_metrics_counter(
        m, "cascade_scheduler_placements_total", "Assignments sent to workers",
        NULL, NULL);
    s->m_expiries = cx_metrics_counter(
        m, "cascade_scheduler_expiries_total",
        "Leases failed by expiry or a lost worker", NULL, NULL);
    s->m_released = cx_metrics_counter(
        m, "cascade_scheduler_released_total",
        "Leases released without penalty (worker drained)", NULL, NULL);
    s->m_dead = cx_metrics_counter(m, "cascade_scheduler_dead_units_total",
                                   "Units dead after max attempts", NULL, NULL);
    s->m_malformed = cx_metrics_counter(
        m, "cascade_scheduler_malformed_total",
        "Messages dead-lettered as malformed", NULL, NULL);
    s->m_admitted = cx_metrics_counter(m, "cascade_scheduler_units_admitted_total",
                                       "New units queued", NULL, NULL);
    s->m_staged = cx_metrics_counter(m, "cascade_scheduler_staged_total",
                                     "Leases ended by a staged batch", NULL,
                                     NULL);
    s->m_p50 = cx_metrics_gauge(m, "cascade_scheduler_decision_p50_seconds",
                                "Placement decision latency, median", NULL,
                                NULL);
    s->m_p99 = cx_metrics_gauge(m, "cascade_scheduler_decision_p99_seconds",
                                "Placement decision latency, 99th percentile",
                                NULL, NULL);
    s->m_round = cx_metrics_gauge(m, "cascade_scheduler_round_seconds",
                                  "Last placement round (decide, lease, send)",
                                  NULL, NULL);
}

static int load_model_file(cx_sched_t *s, cx_err_t *err) {
    const char *path = s->conf.model_file;
    if (!path || !*path) return 0;
    char *text = NULL;
    size_t len = 0;
    if (cx_read_file(path, &text, &len, err) < 0)
        return cx_err_wrap(err, "model_file");
    int rc = cx_tput_configure_json(s->model, text, len, err);
    free(text);
    return rc < 0 ? cx_err_wrap(err, "model_file %s", path) : 0;
}

cx_sched_t *cx_sched_new(cx_service_t *svc, const cx_sched_conf_t *conf,
                         cx_err_t *err) {
    if (!svc->redis || !svc->producer) {
        cx_err_set(err, CX_EINVAL, 0, "scheduler needs Redis and a producer");
        return NULL;
    }
    cx_sched_t *s = calloc(1, sizeof *s);
    if (!s) goto fail_nomem;
    s->svc = svc;
    s->conf = *conf;
    if (!s->conf.batch) s->conf.batch = 1;
    s->model = cx_tput_new(NULL);
    s->lat = malloc(CX_SCHED_LAT_RING * sizeof *s->lat);
    if (!s->model || !s->lat) goto fail_nomem;
    if (load_model_file(s, err) < 0) goto fail;
    cx_pol_conf_t pc;
    cx_pol_conf_default(&pc);
    pc.max_inflight = conf->max_inflight;
    pc.prefetch_s = conf->prefetch_s;
    pc.urgent_margin_s = conf->urgent_margin_s;
    s->pol = cx_pol_new(&pc, s->model);
    if (!s->pol) goto fail_nomem;
    metrics_init(s);
    return s;
fail_nomem:
    cx_err_set(err, CX_ENOMEM, 0, "scheduler: out of memory");
fail:
    cx_sched_destroy(s);
    return NULL;
}

void cx_sched_destroy(cx_sched_t *s) {
    if (!s) return;
    cx_pol_destroy(s->pol);
    cx_tput_destroy(s->model);
    free(s->wpart);
    free(s->wlast);
    free(s->uleased);
    free(s->jobs);
    free(s->lat);
    free(s->unsettled);
    free(s);
}

cx_pol_t *cx_sched_policy(cx_sched_t *s) { return s->pol; }

/* ---- messages ---- */

/* Sends a packed message and flushes. */
static int send_flush(cx_sched_t *s, const char *topic, int32_t partition,
                      const char *key, const ProtobufCMessage *msg,
                      cx_err_t *err) {
    if (cx__sched_settle(s, err) < 0) return -1;
    size_t len;
    uint8_t *buf = cx_pack(msg, &len, err);
    if (!buf) return -1;
    int rc = cx_producer_send(s->svc->producer, topic, partition, key,
                              strlen(key), buf, len, err);
    free(buf);
    if (rc < 0) return -1;
    return cx_producer_flush(s->svc->producer, CX_SCHED_FLUSH_MS, err);
}

/* DeadLetter (as if the unit's cascade.units message were rejected) and
 * the UNIT_DEADLETTERED JobEvent. The unit is already dead in Redis, so a
 * failure here is only logged. */
static void announce_dead(cx_sched_t *s, const char *unit,
                          const cx_dead_t *d, const char *reason) {
    cx_err_t err = {0};
    int64_t now = cx_now_ms();
    cx_metric_add(s->m_dead, 1);
    CX_WARN("unit dead job_id=%s unit_id=%s class=%s samples=%" PRIu32
            " reason=\"%s\"",
            d->job, unit, d->class_name, d->samples, reason);

    Cascade__V1__DeadLetter dl = CASCADE__V1__DEAD_LETTER__INIT;
    dl.source_topic = (char *)CX_TOPIC_UNITS;
    dl.partition = -1;
    dl.offset = -1;
    dl.reason = (char *)reason;
    dl.payload.data = d->payload;
    dl.payload.len = d->payload_len;
    dl.key.data = (uint8_t *)d->job;
    dl.key.len = strlen(d->job);
    dl.service = (char *)"scheduler";
    dl.unix_ms = now;
    dl.job_id = d->job;
    dl.unit_id = (char *)unit;
    if (send_flush(s, CX_TOPIC_DEADLETTER, -1, d->job, &dl.base, &err) < 0)
        CX_ERROR("deadletter not sent job_id=%s unit_id=%s err=\"%s\"",
                 d->job, unit, err.msg);

    char msg[600];
    snprintf(msg, sizeof msg, "unit dead-lettered: %s", reason);
    Cascade__V1__JobEvent ev = CASCADE__V1__JOB_EVENT__INIT;
    ev.job_id = d->job;
    ev.type = CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_UNIT_DEADLETTERED;
    ev.message = msg;
    ev.unit_id = (char *)unit;
    ev.unix_ms = now;
    if (send_flush(s, CX_TOPIC_JOB_EVENTS, -1, d->job, &ev.base, &err) < 0)
        CX_ERROR("job event not sent job_id=%s unit_id=%s err=\"%s\"",
                 d->job, unit, err.msg);
}

static int malformed(cx_sched_t *s, const cx_msg_t *m, const char *reason,
                     cx_err_t *err) {
    CX_WARN("malformed message topic=%s partition=%d offset=%" PRId64
            " reason=\"%s\"",
            m->topic, (int)m->partition, m->offset, reason);
    cx_metric_add(s->m_malformed, 1);
    return cx_deadletter(s->svc->producer, "scheduler", m, reason, NULL, NULL,
                         err);
}

/* A new unit, just admitted, into the index. */
static int index_new(cx_sched_t *s, const cx_unit_t *u, cx_err_t *err) {
    const Cascade__V1__GenerationParams *gp = u->params;
    int j = cx_pol_job(s->pol, u->job_id);
    if (j < 0 || cx__sched_track_job(s, j) < 0)
        return cx_err_set(err, CX_ENOMEM, 0, "index: out of memory");
    if (!s->jobs[j].loaded && cx__sched_load_job(s, j, err) < 0) return -1;
    int ut = cx__sched_utype(s, gp && gp->checkpoint ? gp->checkpoint : "",
                             gp ? gp->width : 0, gp ? gp->height : 0,
                             gp ? gp->steps : 0);
    cx_pol_unit_spec_t sp = {.id = u->unit_id, .job = j,
                             .class_index = u->class_index,
                             .class_name = u->class_name, .utype = ut,
                             .samples = u->sample_count,
                             .order = ++s->order};
    int h = ut < 0 ? -1 : cx_pol_unit_add(s->pol, &sp);
    if (h == -1 || (h >= 0 && cx__sched_track_unit(s, h) < 0))
        return cx_err_set(err, CX_ENOMEM, 0, "index: out of memory");
    if (h >= 0) s->uleased[h] = 0;
    return 0;
}

static int on_unit(cx_sched_t *s, const cx_msg_t *m, cx_err_t *err) {
    cx_err_t derr = {0};
    cx_unit_t *u = cx_decode_unit(m->payload, m->len, &derr);
    if (!u) return malformed(s, m, derr.msg, err);
    int rc = cx_queue_admit(s->svc->redis, u, m->payload, m->len, err);
    if (rc == CX_ADMIT_NEW) {
        cx_metric_add(s->m_admitted, 1);
        CX_DEBUG("unit queued job_id=%s unit_id=%s class=%s ordinal=%" PRIu32,
                 u->job_id, u->unit_id, u->class_name, u->ordinal);
        rc = index_new(s, u, err);
    } else if (rc == CX_ADMIT_DUPLICATE &&
               cx_pol_unit_find(s->pol, u->unit_id) < 0) {
        /* Admitted before (a redelivery after a crash, or a planner
         * retry): the index learns it from Redis if it is still live. */
        const char *id = u->unit_id;
        rc = cx__sched_add_units(s, &id, 1, err);
    } else if (rc == CX_ADMIT_CANCELLED) {
        CX_INFO("unit dropped, job cancelled job_id=%s unit_id=%s",
                u->job_id, u->unit_id);
    }
    cascade__v1__work_unit__free_unpacked(u, NULL);
    return rc < 0 ? -1 : 0;
}

/* The unit's run time on its worker: it started when it was leased or
 * when the worker staged the unit before it, whichever is later (a worker
 * runs its units one after another); the load is not part of it. */
static void observe(cx_sched_t *s, int u, int w, const cx_staged_t *b) {
    if (u < 0 || w < 0 || (size_t)u >= s->capu || !s->uleased[u]) return;
    int64_t start = s->uleased[u];
    if ((size_t)w < s->capw && s->wlast[w] > start) start = s->wlast[w];
    double load = b->timing ? b->timing->load_ms / 1000.0 : 0;
    double secs = (double)(b->staged_unix_ms - start) / 1000.0 - load;
    int g = cx_pol_worker_gtype(s->pol, w);
    if (g < 0 || !(secs > 0) || secs > 86400) return;
    cx_tput_observe(s->model, cx_pol_unit_utype(s->pol, u), g,
                    cx_pol_unit_samples(s->pol, u), secs);
    if (load > 0)
        cx_tput_observe_load(
            s->model, cx_tput_utype_ckpt(s->model, cx_pol_unit_utype(s->pol, u)),
            load);
    s->tput_dirty = 1;
}

static int on_staged(cx_sched_t *s, const cx_msg_t *m, cx_err_t *err) {
    cx_err_t derr = {0};
    cx_staged_t *b = cx_decode_staged(m->payload, m->len, &derr);
    if (!b) return malformed(s, m, derr.msg, err);
    cx_dead_t dead = {0};
    const char *unit = b->unit->unit_id;
    int rc = cx_lease_staged(s->svc->redis, unit, b->epoch, b->worker_id,
                             b->failure, s->conf.max_attempts, &dead, err);
    int u = cx_pol_unit_find(s->pol, unit);
    int w = cx__sched_worker(s, b->worker_id);
    double now = (double)cx_now_ms() / 1000.0;
    if (rc == CX_END_STAGED) {
        cx_metric_add(s->m_staged, 1);
        observe(s, u, w, b);
        if (w >= 0 && (size_t)w < s->capw) s->wlast[w] = b->staged_unix_ms;
        cx_pol_unit_done(s->pol, u, now);
        CX_DEBUG("lease ended job_id=%s unit_id=%s worker=%s epoch=%" PRIu64,
                 b->unit->job_id, unit, b->worker_id, b->epoch);
    } else if (rc == CX_END_STALE) {
        CX_INFO("stale staged batch ignored job_id=%s unit_id=%s worker=%s "
                "epoch=%" PRIu64,
                b->unit->job_id, unit, b->worker_id, b->epoch);
    } else if (rc >= 0) {
        CX_WARN("attempt failed job_id=%s unit_id=%s worker=%s attempt=%" PRIu32
                " reason=\"%s\"",
                b->unit->job_id, unit, b->worker_id, b->attempt, b->failure);
        if (w >= 0 && (size_t)w < s->capw) s->wlast[w] = b->staged_unix_ms;
        if (rc == CX_END_REQUEUED && u >= 0) {
            cx_pol_unit_exclude(s->pol, u, w);
            cx_pol_unit_requeue(s->pol, u, b->attempt, now);
        } else if (rc == CX_END_REQUEUED) {
            rc = cx__sched_add_units(s, &unit, 1, err);
        } else {
            cx_pol_unit_drop(s->pol, u, now);
        }
        if (rc == CX_END_DEAD) announce_dead(s, unit, &dead, b->failure);
    }
    cx_dead_free(&dead);
    cascade__v1__staged_batch__free_unpacked(b, NULL);
    return rc < 0 ? -1 : 0;
}

int cx_sched_on_message(cx_sched_t *s, const cx_msg_t *m, cx_err_t *err) {
    if (strcmp(m->topic, CX_TOPIC_UNITS) == 0) return on_unit(s, m, err);
    if (strcmp(m->topic, CX_TOPIC_STAGED) == 0) return on_staged(s, m, err);
    return 0;
}

/* ---- placement ---- */

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Marks w not alive in the index until the registry says otherwise. */
static void worker_lost(cx_sched_t *s, int w) {
    cx_pol_wspec_t ws = {.gtype = cx_pol_worker_gtype(s->pol, w)};
    cx_pol_worker_set(s->pol, w, &ws);
}

static void requeue_picks(cx_sched_t *s, const cx_pol_pick_t *picks,
                          size_t n, double now) {
    for (size_t i = 0; i < n; i++)
        if (cx_pol_unit_state(s->pol, picks[i].unit) == CX_POL_INFLIGHT)
            cx_pol_unit_requeue(s->pol, picks[i].unit,
                                cx_pol_unit_attempt(s->pol, picks[i].unit),
                                now);
}

int cx__sched_settle(cx_sched_t *s, cx_err_t *err) {
    if (!s->nunsettled) return 0;
    size_t n = s->nunsettled;
    s->nunsettled = 0;
    cx_err_t ferr = {0};
    if (cx_producer_flush(s->svc->producer, CX_SCHED_FLUSH_MS, &ferr) == 0)
        return 0;
    /* Some Assignment may not have reached the broker: the whole round
     * goes back (one that did arrive is then stale, and skipped). */
    const char **units = malloc(n * sizeof *units);
    uint64_t *epochs = malloc(n * sizeof *epochs);
    cx_err_t rerr = {0};
    for (size_t i = 0; units && epochs && i < n; i++) {
        units[i] = s->unsettled[i].unit;
        epochs[i] = s->unsettled[i].epoch;
    }
    if (!units || !epochs ||
        cx_lease_release_batch(s->svc->redis, units, epochs, n, &rerr) < 0)
        CX_WARN("release after a failed send err=\"%s\" (the leases expire)",
                rerr.msg);
    double now = (double)cx_now_ms() / 1000.0;
    for (size_t i = 0; i < n; i++) {
        int u = cx_pol_unit_find(s->pol, s->unsettled[i].unit);
        if (cx_pol_unit_state(s->pol, u) == CX_POL_INFLIGHT)
            cx_pol_unit_requeue(s->pol, u, cx_pol_unit_attempt(s->pol, u), now);
    }
    free(units);
    free(epochs);
    if (err) *err = ferr;
    return -1;
}

/* Leases the picks in one script, then sends their Assignments and
 * flushes once. Picks that could not be leased are dropped or requeued
 * in the index. Returns how many were sent, or -1: then everything this
 * round leased is released again (an Assignment that did reach the broker
 * is stale and its worker skips it). */
static int lease_and_send(cx_sched_t *s, const cx_pol_pick_t *picks,
                          size_t n, cx_err_t *err) {
    cx_lease_req_t *reqs = calloc(n, sizeof *reqs);
    const char **rel = calloc(n, sizeof *rel);
    uint64_t *rel_epochs = calloc(n, sizeof *rel_epochs);
    cx_buf_t buf = {0};
    int64_t now = cx_now_ms();
    double nows = (double)now / 1000.0;
    size_t ok = 0;
    int rc = -1;
    if (!reqs || !rel || !rel_epochs) {
        cx_err_set(err, CX_ENOMEM, 0, "placement: out of memory");
        requeue_picks(s, picks, n, nows);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        reqs[i].unit = cx_pol_unit_id(s->pol, picks[i].unit);
        reqs[i].worker = cx_pol_worker_id(s->pol, picks[i].worker);
    }
    cx_err_t lerr = {0};
    double t0 = mono_s();
    int lrc = cx_lease_acquire_batch(s->svc->redis, reqs, n, now,
                                     s->conf.lease_ms, &lerr);
    double t1 = mono_s();
    s->stats.lease_s += t1 - t0;
    if (lrc < 0 && lerr.code != CX_ENOMEM) {
        if (err) *err = lerr;
        requeue_picks(s, picks, n, nows);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        int u = picks[i].unit;
        if (reqs[i].rc == CX_LEASE_OK) {
            rel[ok] = reqs[i].unit;
            rel_epochs[ok++] = reqs[i].lease.epoch;
        } else if (reqs[i].rc == CX_LEASE_NO_WORKER) {
            cx_pol_unit_requeue(s->pol, u, cx_pol_unit_attempt(s->pol, u),
                                nows);
            worker_lost(s, picks[i].worker);
        } else {
            cx_pol_unit_drop(s->pol, u, nows); /* gone or cancelled */
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (reqs[i].rc != CX_LEASE_OK) continue;
        int u = picks[i].unit, w = picks[i].worker;
        const cx_lease_t *l = &reqs[i].lease;
        const char *job = cx_pol_job_id(s->pol, cx_pol_unit_job(s->pol, u));
        if (cx_assign_pack(l->payload, l->payload_len, reqs[i].worker,
                           l->attempt, l->epoch, l->expiry_ms, now, &buf,
                           err) < 0 ||
            cx_producer_send(s->svc->producer, CX_TOPIC_DISPATCH,
                             s->wpart[w], job, strlen(job), buf.data, buf.len,
                             err) < 0)
            goto fail_release;
        s->uleased[u] = now;
        CX_DEBUG("unit leased job_id=%s unit_id=%s worker=%s partition=%d "
                 "attempt=%" PRIu32 " epoch=%" PRIu64 " cold=%d",
                 job, reqs[i].unit, reqs[i].worker, s->wpart[w], l->attempt,
                 l->epoch, picks[i].cold);
    }
    /* Settled at the next round (or flush) instead of waiting here. */
    if (ok > s->capunsettled) {
        unsettled_t *nu = realloc(s->unsettled, ok * sizeof *nu);
        if (!nu) {
            cx_err_set(err, CX_ENOMEM, 0, "placement: out of memory");
            goto fail_release;
        }
        s->unsettled = nu;
        s->capunsettled = ok;
    }
    for (size_t i = 0; i < ok; i++) {
        snprintf(s->unsettled[i].unit, sizeof s->unsettled[i].unit, "%s",
                 rel[i]);
        s->unsettled[i].epoch = rel_epochs[i];
    }
    s->nunsettled = ok;
    s->stats.send_s += mono_s() - t1;
    rc = (int)ok;
    goto done;

fail_release: {
    cx_err_t rerr = {0};
    if (cx_lease_release_batch(s->svc->redis, rel, rel_epochs, ok, &rerr) < 0)
        CX_WARN("release after a failed send err=\"%s\" (the leases expire)",
                rerr.msg);
    requeue_picks(s, picks, n, nows);
}
done:
    for (size_t i = 0; reqs && i < n; i++) free(reqs[i].lease.payload);
    free(reqs);
    free(rel);
    free(rel_epochs);
    cx_buf_free(&buf);
    return rc;
}

static void record_latency(cx_sched_t *s, double secs) {
    s->lat[s->nlat++ % CX_SCHED_LAT_RING] = (float)secs;
    s->stats.decisions++;
    s->stats.decide_s += secs;
}

int cx_sched_place(cx_sched_t *s, cx_err_t *err) {
    double t0 = mono_s();
    if (cx__sched_settle(s, err) < 0) return -1;
    size_t cap = s->conf.batch, n = 0;
    cx_pol_pick_t *picks = malloc(cap * sizeof *picks);
    if (!picks) return cx_err_set(err, CX_ENOMEM, 0, "placement: out of memory");
    double now = (double)cx_now_ms() / 1000.0;
    cx_pol_round(s->pol, now);
    while (n < cap) {
        double d0 = mono_s();
        int got = cx_pol_next(s->pol, now, &picks[n]);
        record_latency(s, mono_s() - d0);
        if (!got) break;
        if (cx__sched_track_unit(s, picks[n].unit) < 0 ||
            (size_t)picks[n].worker >= s->capw ||
            s->wpart[picks[n].worker] < 0) {
            /* No partition known for it (cannot happen for an eligible
             * worker): back to pending. */
            cx_pol_unit_requeue(s->pol, picks[n].unit,
                                cx_pol_unit_attempt(s->pol, picks[n].unit),
                                now);
            break;
        }
        n++;
    }
    int rc = n ? lease_and_send(s, picks, n, err) : 0;
    free(picks);
    if (rc > 0) {
        cx_metric_add(s->m_placements, rc);
        s->stats.placements += (uint64_t)rc;
    }
    if (n) {
        s->stats.rounds++;
        double dt = mono_s() - t0;
        s->stats.round_s += dt;
        cx_metric_set(s->m_round, dt);
    }
    return rc;
}

/* ---- sweep ---- */

/* Applies a failed lease's outcome to the index. */
static void apply_fail(cx_sched_t *s, const cx_lease_view_t *v, int rc,
                       cx_dead_t *dead, const char *reason) {
    int u = cx_pol_unit_find(s->pol, v->unit);
    int w = cx__sched_worker(s, v->worker);
    double now = (double)cx_now_ms() / 1000.0;
    if (rc == CX_END_REQUEUED && u >= 0) {
        cx_pol_unit_exclude(s->pol, u, w);
        cx_pol_unit_requeue(s->pol, u, cx_pol_unit_attempt(s->pol, u), now);
    } else if (rc != CX_END_STALE && rc != CX_END_REQUEUED) {
        cx_pol_unit_drop(s->pol, u, now);
    }
    if (rc == CX_END_DEAD) announce_dead(s, v->unit, dead, reason);
}

int cx_sched_sweep(cx_sched_t *s, cx_err_t *err) {
    cx_lease_view_t *v = NULL;
    size_t n = 0;
    int changed = 0;
    cx_strlist_t ids = {0};
    if (cx_lease_list(s->svc->redis, 1000000, &v, &n, err) < 0) return -1;
    int64_t now = cx_now_ms();
    for (size_t i = 0; i < n; i++) {
        cx_check_t c = cx_lease_check(&v[i], now);
        if (c == CX_CHECK_OK) {
            if (cx_strlist_push(&ids, v[i].unit) < 0) goto fail_nomem;
            continue;
        }
        if (c == CX_CHECK_ORPHAN) {
            if (cx_lease_drop_orphan(s->svc->redis, v[i].unit, err) < 0)
                goto fail;
            continue;
        }
        const char *reason = cx_lease_check_reason(c);
        if (c == CX_CHECK_GOODBYE) {
            if (cx_lease_release(s->svc->redis, v[i].unit, v[i].epoch, err) < 0)
                goto fail;
            int u = cx_pol_unit_find(s->pol, v[i].unit);
            if (u >= 0)
                cx_pol_unit_requeue(s->pol, u, cx_pol_unit_attempt(s->pol, u),
                                    (double)now / 1000.0);
            cx_metric_add(s->m_released, 1);
            CX_INFO("lease released unit_id=%s worker=%s reason=\"%s\"",
                    v[i].unit, v[i].worker, reason);
            changed++;
            continue;
        }
        cx_dead_t dead = {0};
        int rc = cx_lease_fail(s->svc->redis, v[i].unit, v[i].epoch, reason,
                               s->conf.max_attempts, &dead, err);
        if (rc < 0) goto fail;
        if (rc != CX_END_STALE) {
            changed++;
            cx_metric_add(s->m_expiries, 1);
            CX_WARN("lease failed unit_id=%s worker=%s epoch=%" PRIu64
                    " reason=\"%s\" outcome=%d",
                    v[i].unit, v[i].worker, v[i].epoch, reason, rc);
        }
        apply_fail(s, &v[i], rc, &dead, reason);
        cx_dead_free(&dead);
    }
    cx_lease_views_free(v, n);
    v = NULL;
    if (cx__sched_reconcile_inflight(s, &ids, err) < 0) goto fail;
    cx_strlist_free(&ids);
    cx_pol_stats_t st;
    cx_pol_stats(s->pol, &st);
    cx_metric_set(s->m_pending, (double)st.pending_units);
    cx_metric_set(s->m_leased, (double)st.inflight_units);
    cx_metric_set(s->m_eligible, (double)st.workers_eligible);
    return changed;

fail_nomem:
    cx_err_set(err, CX_ENOMEM, 0, "sweep: out of memory");
fail:
    cx_lease_views_free(v, n);
    cx_strlist_free(&ids);
    return -1;
}

/* ---- periodic work and stats ---- */

int cx_sched_tick(cx_sched_t *s, cx_err_t *err) {
    double now = cx_mono_ms();
    if (cx__sched_settle(s, err) < 0) return -1;
    if (now >= s->next_registry) {
        s->next_registry = now + (double)s->conf.registry_ms;
        if (cx__sched_refresh_workers(s, err) < 0) return -1;
    }
    if (now >= s->next_jobs) {
        s->next_jobs = now + (double)s->conf.jobs_ms;
        if (cx__sched_refresh_jobs(s, 0, err) < 0) return -1;
    }
    if (now >= s->next_eta) {
        s->next_eta = now + (double)s->conf.eta_ms;
        cx__sched_save_model(s);
        if (cx__sched_publish_eta(s, err) < 0) return -1;
        cx_sched_stats_t st;
        cx_sched_stats(s, &st);
        cx_metric_set(s->m_p50, st.p50_s);
        cx_metric_set(s->m_p99, st.p99_s);
    }
    if (now >= s->next_reconcile) {
        s->next_reconcile = now + (double)s->conf.reconcile_ms;
        if (cx__sched_reconcile_pending(s, err) < 0) return -1;
    }
    return 0;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void cx_sched_stats(const cx_sched_t *s, cx_sched_stats_t *out) {
    *out = s->stats;
    size_t n = s->nlat < CX_SCHED_LAT_RING ? (size_t)s->nlat
                                           : CX_SCHED_LAT_RING;
    out->p50_s = out->p99_s = out->max_s = 0;
    if (!n) return;
    float *c = malloc(n * sizeof *c);
    if (!c) return;
    memcpy(c, s->lat, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_float);
    out->p50_s = c[n / 2];
    out->p99_s = c[(size_t)((double)(n - 1) * 0.99)];
    out->max_s = c[n - 1];
    free(c);
}
