/* Scheduler engine: message handling, placement rounds, expiry sweeps. */
#include "scheduler.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/codec.h"
#include "cascade/log.h"
#include "cascade/util.h"
#include "lease.h"
#include "queue.h"
#include "registry.h"

#define CX_SCHED_FLUSH_MS 10000

struct cx_sched {
    cx_service_t *svc;
    cx_sched_conf_t conf;
    cx_metric_t *m_pending, *m_leased, *m_placements, *m_expiries,
        *m_dead, *m_malformed, *m_admitted, *m_staged;
};

cx_sched_t *cx_sched_new(cx_service_t *svc, const cx_sched_conf_t *conf,
                         cx_err_t *err) {
    if (!svc->redis || !svc->producer) {
        cx_err_set(err, CX_EINVAL, 0, "scheduler needs Redis and a producer");
        return NULL;
    }
    cx_sched_t *s = calloc(1, sizeof *s);
    if (!s) {
        cx_err_set(err, CX_ENOMEM, 0, "scheduler: out of memory");
        return NULL;
    }
    s->svc = svc;
    s->conf = *conf;
    cx_metrics_t *m = svc->metrics;
    if (m) {
        s->m_pending = cx_metrics_gauge(m, "cascade_scheduler_pending",
                                        "Units waiting for a worker", NULL,
                                        NULL);
        s->m_leased = cx_metrics_gauge(m, "cascade_scheduler_leased",
                                       "Units leased to workers", NULL, NULL);
        s->m_placements = cx_metrics_counter(
            m, "cascade_scheduler_placements_total",
            "Assignments sent to workers", NULL, NULL);
        s->m_expiries = cx_metrics_counter(
            m, "cascade_scheduler_expiries_total",
            "Leases failed by expiry or a lost worker", NULL, NULL);
        s->m_dead = cx_metrics_counter(m, "cascade_scheduler_dead_units_total",
                                       "Units dead after max attempts", NULL,
                                       NULL);
        s->m_malformed = cx_metrics_counter(
            m, "cascade_scheduler_malformed_total",
            "Messages dead-lettered as malformed", NULL, NULL);
        s->m_admitted = cx_metrics_counter(
            m, "cascade_scheduler_units_admitted_total",
            "New units queued", NULL, NULL);
        s->m_staged = cx_metrics_counter(
            m, "cascade_scheduler_staged_total",
            "Leases ended by a staged batch", NULL, NULL);
    }
    return s;
}

void cx_sched_destroy(cx_sched_t *s) { free(s); }

/* Sends a packed message and flushes. */
static int send_flush(cx_sched_t *s, const char *topic, int32_t partition,
                      const char *key, const ProtobufCMessage *msg,
                      cx_err_t *err) {
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

static int on_unit(cx_sched_t *s, const cx_msg_t *m, cx_err_t *err) {
    cx_err_t derr = {0};
    cx_unit_t *u = cx_decode_unit(m->payload, m->len, &derr);
    if (!u) return malformed(s, m, derr.msg, err);
    int rc = cx_queue_admit(s->svc->redis, u, m->payload, m->len, err);
    if (rc == CX_ADMIT_NEW) {
        cx_metric_add(s->m_admitted, 1);
        CX_DEBUG("unit queued job_id=%s unit_id=%s class=%s ordinal=%" PRIu32,
                 u->job_id, u->unit_id, u->class_name, u->ordinal);
    } else if (rc == CX_ADMIT_CANCELLED) {
        CX_INFO("unit dropped, job cancelled job_id=%s unit_id=%s",
                u->job_id, u->unit_id);
    }
    cascade__v1__work_unit__free_unpacked(u, NULL);
    return rc < 0 ? -1 : 0;
}

static int on_staged(cx_sched_t *s, const cx_msg_t *m, cx_err_t *err) {
    cx_err_t derr = {0};
    cx_staged_t *b = cx_decode_staged(m->payload, m->len, &derr);
    if (!b) return malformed(s, m, derr.msg, err);
    cx_dead_t dead = {0};
    const char *unit = b->unit->unit_id;
    int rc = cx_lease_staged(s->svc->redis, unit, b->epoch, b->worker_id,
                             b->failure, s->conf.max_attempts, &dead, err);
    if (rc == CX_END_STAGED) {
        cx_metric_add(s->m_staged, 1);
        CX_DEBUG("lease ended job_id=%s unit_id=%s worker=%s epoch=%" PRIu64,
                 b->unit->job_id, unit, b->worker_id, b->epoch);
    } else if (rc == CX_END_STALE) {
        CX_INFO("stale staged batch ignored job_id=%s unit_id=%s worker=%s "
                "epoch=%" PRIu64,
                b->unit->job_id, unit, b->worker_id, b->epoch);
    } else if (rc >= 0 && b->failure && *b->failure) {
        CX_WARN("attempt failed job_id=%s unit_id=%s worker=%s attempt=%" PRIu32
                " reason=\"%s\"",
                b->unit->job_id, unit, b->worker_id, b->attempt, b->failure);
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

/* A leased unit whose Assignment is queued but not yet flushed. */
typedef struct sent {
    const char *unit;
    uint64_t epoch;
} sent_t;

/* Leases cand to worker w and queues its Assignment. 1 sent, 0 skipped. */
static int place_one(cx_sched_t *s, const cx_cand_t *c, const cx_wview_t *w,
                     sent_t *sent, cx_err_t *err) {
    cx_lease_t l;
    int64_t now = cx_now_ms();
    int rc = cx_lease_acquire(s->svc->redis, c->unit, w->id, now,
                              s->conf.lease_ms, &l, err);
    if (rc < -2) return -1;
    if (rc != CX_LEASE_OK) return 0;

    cx_err_t derr = {0};
    cx_unit_t *u = cx_decode_unit(l.payload, l.payload_len, &derr);
    if (!u) {
        /* Admitted bytes always decode; a corrupt hash cannot run. */
        cx_dead_t dead = {0};
        if (cx_lease_fail(s->svc->redis, c->unit, l.epoch, derr.msg, 0, &dead,
                          err) == CX_END_DEAD)
            announce_dead(s, c->unit, &dead, derr.msg);
        cx_dead_free(&dead);
        free(l.payload);
        return 0;
    }
    Cascade__V1__Assignment a = CASCADE__V1__ASSIGNMENT__INIT;
    a.unit = u;
    a.worker_id = w->id;
    a.attempt = l.attempt;
    a.epoch = l.epoch;
    a.lease_expiry_unix_ms = l.expiry_ms;
    a.dispatched_unix_ms = now;
    size_t len;
    uint8_t *buf = cx_pack(&a.base, &len, err);
    rc = buf ? cx_producer_send(s->svc->producer, CX_TOPIC_DISPATCH,
                                w->partition, u->job_id, strlen(u->job_id),
                                buf, len, err)
             : -1;
    free(buf);
    if (rc == 0)
        CX_INFO("unit leased job_id=%s unit_id=%s worker=%s partition=%d "
                "attempt=%" PRIu32 " epoch=%" PRIu64,
                u->job_id, c->unit, w->id, w->partition, l.attempt, l.epoch);
    cascade__v1__work_unit__free_unpacked(u, NULL);
    free(l.payload);
    sent->unit = c->unit;
    sent->epoch = l.epoch;
    if (rc < 0) {
        cx_err_t rerr = {0};
        cx_lease_release(s->svc->redis, c->unit, l.epoch, &rerr);
        return -1;
    }
    return 1;
}

int cx_sched_place(cx_sched_t *s, cx_err_t *err) {
    cx_wview_t *ws = NULL;
    size_t nw = 0, nc = 0, ready = 0;
    cx_cand_t *cands = NULL;
    int placed = 0, rc = 0, total_free = 0;
    if (cx_registry_list(s->svc->redis, &ws, &nw, err) < 0) return -1;

    const char **ids = calloc(nw ? nw : 1, sizeof *ids);
    int *free_slots = calloc(nw ? nw : 1, sizeof *free_slots);
    size_t *widx = calloc(nw ? nw : 1, sizeof *widx);
    cx_pair_t *pairs = NULL;
    sent_t *sent = NULL;
    if (!ids || !free_slots || !widx) goto fail_nomem;
    for (size_t i = 0; i < nw; i++) {
        int f = cx_registry_free_slots(&ws[i], s->conf.max_inflight);
        /* Eligible workers (for the exclusion rule) are the ones that can
         * take work at all, full or not. */
        if (!ws[i].alive || ws[i].draining || ws[i].partition < 0) continue;
        ids[ready] = ws[i].id;
        free_slots[ready] = f;
        widx[ready] = i;
        total_free += f;
        ready++;
    }
    if (total_free == 0) goto done;

    if (cx_queue_peek(s->svc->redis, s->conf.scan, &cands, &nc, err) < 0)
        goto fail;
    for (size_t c = 0; c < nc; c++)
        if (cands[c].cancelled &&
            cx_queue_cancel(s->svc->redis, cands[c].unit, err) < 0)
            goto fail;
    pairs = calloc((size_t)total_free, sizeof *pairs);
    sent = calloc((size_t)total_free, sizeof *sent);
    if (!pairs || !sent) goto fail_nomem;
    size_t np = cx_queue_plan(cands, nc, ids, free_slots, ready, pairs,
                              (size_t)total_free);
    for (size_t i = 0; i < np; i++) {
        int r = place_one(s, &cands[pairs[i].cand], &ws[widx[pairs[i].worker]],
                          &sent[placed], err);
        if (r < 0) goto fail_release;
        placed += r;
    }
    if (placed &&
        cx_producer_flush(s->svc->producer, CX_SCHED_FLUSH_MS, err) < 0)
        goto fail_release;
    cx_metric_add(s->m_placements, placed);
    goto done;

fail_release:
    /* Assignments that may not have reached the broker go back to pending;
     * one that did arrive is then stale and its worker ignores it. */
    for (int i = 0; i < placed; i++) {
        cx_err_t rerr = {0};
        cx_lease_release(s->svc->redis, sent[i].unit, sent[i].epoch, &rerr);
    }
    goto fail;
fail_nomem:
    cx_err_set(err, CX_ENOMEM, 0, "placement: out of memory");
fail:
    rc = -1;
done:
    free(sent);
    free(pairs);
    cx_queue_cands_free(cands, nc);
    free(widx);
    free(free_slots);
    free(ids);
    cx_registry_free(ws, nw);
    return rc < 0 ? -1 : placed;
}

static void update_gauges(cx_sched_t *s) {
    cx_err_t err = {0};
    redisReply *r = cx_redis_cmd(s->svc->redis, &err, "ZCARD cx:pending");
    if (r && r->type == REDIS_REPLY_INTEGER)
        cx_metric_set(s->m_pending, (double)r->integer);
    if (r) freeReplyObject(r);
    r = cx_redis_cmd(s->svc->redis, &err, "ZCARD cx:leases");
    if (r && r->type == REDIS_REPLY_INTEGER)
        cx_metric_set(s->m_leased, (double)r->integer);
    if (r) freeReplyObject(r);
}

int cx_sched_sweep(cx_sched_t *s, cx_err_t *err) {
    cx_lease_view_t *v = NULL;
    size_t n = 0;
    int failed = 0;
    if (cx_lease_list(s->svc->redis, 100000, &v, &n, err) < 0) return -1;
    int64_t now = cx_now_ms();
    for (size_t i = 0; i < n; i++) {
        cx_check_t c = cx_lease_check(&v[i], now);
        if (c == CX_CHECK_OK) continue;
        if (c == CX_CHECK_ORPHAN) {
            if (cx_lease_drop_orphan(s->svc->redis, v[i].unit, err) < 0)
                goto fail;
            continue;
        }
        const char *reason = cx_lease_check_reason(c);
        cx_dead_t dead = {0};
        int rc = cx_lease_fail(s->svc->redis, v[i].unit, v[i].epoch, reason,
                               s->conf.max_attempts, &dead, err);
        if (rc < 0) goto fail;
        if (rc != CX_END_STALE) {
            failed++;
            cx_metric_add(s->m_expiries, 1);
            CX_WARN("lease failed unit_id=%s worker=%s epoch=%" PRIu64
                    " reason=\"%s\" outcome=%d",
                    v[i].unit, v[i].worker, v[i].epoch, reason, rc);
        }
        if (rc == CX_END_DEAD) announce_dead(s, v[i].unit, &dead, reason);
        cx_dead_free(&dead);
    }
    cx_lease_views_free(v, n);

    cx_wview_t *ws = NULL;
    size_t nw = 0;
    if (cx_registry_list(s->svc->redis, &ws, &nw, err) < 0) return -1;
    for (size_t i = 0; i < nw; i++)
        if (!ws[i].alive && ws[i].inflight == 0 &&
            ws[i].last_hb_ms < now - s->conf.prune_ms &&
            cx_registry_prune(s->svc->redis, ws[i].id, now - s->conf.prune_ms,
                              err) == 1)
            CX_INFO("worker forgotten worker=%s", ws[i].id);
    cx_registry_free(ws, nw);
    update_gauges(s);
    return failed;

fail:
    cx_lease_views_free(v, n);
    return -1;
}
