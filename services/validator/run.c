/* The validator's consume loop with grouped validation (run.h). */
#include "run.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/log.h"

#define CX__VALIDATOR_FLUSH_MS 30000
#define CX__MAX_QUALITY 64

static void cx__count(cx_service_t *svc, const char *name, const char *help,
                      const char *label, const char *value, double n) {
    cx_metric_add(cx_metrics_counter(svc->metrics, name, help, label, value),
                  n);
}

static int cx__send_event(cx_service_t *svc, const char *job_id, int type,
                          const char *message, const char *unit_id,
                          cx_err_t *err) {
    Cascade__V1__JobEvent ev = CASCADE__V1__JOB_EVENT__INIT;
    size_t len;
    ev.job_id = (char *)job_id;
    ev.type = (Cascade__V1__JobEventType)type;
    ev.message = (char *)message;
    ev.unit_id = (char *)(unit_id ? unit_id : "");
    ev.unix_ms = cx_now_ms();
    uint8_t *buf = cx_pack(&ev.base, &len, err);
    if (!buf) return -1;
    int rc = cx_producer_send(svc->producer, CX_TOPIC_JOB_EVENTS, -1, job_id,
                              strlen(job_id), buf, len, err);
    free(buf);
    return rc;
}

/* Redis side of one validated unit, and what it makes us announce. */
static int cx__account(cx_service_t *svc, const cx_vrun_conf_t *conf,
                       const cx_vitem_t *it, cx_err_t *err) {
    const cx_unit_t *u = it->b->unit;
    cx_account_result_t a;
    if (cx_account_unit(svc->redis, it->b, &it->tally, &conf->quar, &a,
                        err) < 0)
        return -1;
    char rate[32];
    snprintf(rate, sizeof rate, "%.4g",
             a.w_samples > 0 ? a.w_failed / a.w_samples : 0);
    cx_metric_set(cx_metrics_gauge(svc->metrics,
                                   "cascade_validator_worker_failure_rate",
                                   "Gate failure rate per worker (decayed "
                                   "window)",
                                   "worker", it->b->worker_id),
                  a.w_samples > 0 ? a.w_failed / a.w_samples : 0);
    if (a.quarantined) {
        CX_WARN("worker quarantined job_id=%s unit_id=%s worker=%s "
                "failure_rate=%s samples=%.0f pool_rate=%.4g p_value=%.3g",
                u->job_id, u->unit_id, it->b->worker_id, rate, a.w_samples,
                a.p_samples > 0 ? a.p_failed / a.p_samples : 0, a.p_value);
        cx__count(svc, "cascade_validator_quarantines_total",
                  "Workers quarantined for their gate failure rate", "worker",
                  it->b->worker_id, 1);
        if (cx__send_event(svc, u->job_id,
                           CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_WORKER_QUARANTINED,
                           a.quarantine_reason, u->unit_id, err) < 0)
            return -1;
    }
    if (a.privacy_halted) {
        CX_WARN("privacy budget exceeded, job halted job_id=%s unit_id=%s "
                "reason=\"%s\"",
                u->job_id, u->unit_id, a.privacy_reason);
        cx__count(svc, "cascade_validator_privacy_halts_total",
                  "Jobs stopped for exceeding their privacy budget", NULL,
                  NULL, 1);
    }
    if (a.frechet_alert) {
        CX_WARN("distribution alert job_id=%s reason=\"%s\"", u->job_id,
                a.frechet_reason);
        if (cx__send_event(svc, u->job_id,
                           CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_DISTRIBUTION_ALERT,
                           a.frechet_reason, NULL, err) < 0)
            return -1;
    }
    if (it->tally.profile && a.counted)
        CX_DEBUG("alignment job_id=%s class=%s n=%zu frechet=%.4g "
                 "precision=%.3f recall=%.3f near=%.0f checked=%.0f",
                 u->job_id, u->class_name, a.q_n, a.q_fd, a.q_precision,
                 a.q_recall, a.near, a.checked);
    return 0;
}

static void cx__metrics(cx_service_t *svc, const cx_vitem_t *it) {
    cx__count(svc, "cascade_validator_samples_total", "Samples validated",
              "result", "pass", (double)it->st.passed);
    cx__count(svc, "cascade_validator_samples_total", "Samples validated",
              "result", "fail", (double)(it->st.samples - it->st.passed));
    cx__count(svc, "cascade_validator_batches_total", "Batches validated",
              NULL, NULL, 1);
    for (int g = 0; g < CX_GATE__COUNT; g++)
        if (it->tally.gate_fail[g])
            cx__count(svc, "cascade_validator_gate_failures_total",
                      "Samples failing each gate", "gate",
                      cx_gate_name((cx_gate_id_t)g), it->tally.gate_fail[g]);
    if (it->tally.near_copies)
        cx__count(svc, "cascade_validator_near_copies_total",
                  "Samples closer to a training record than the privacy "
                  "threshold",
                  NULL, NULL, (double)it->tally.near_copies);
}

/* A batch the job cannot be validated for: stop the job, dead-letter the
 * batch with the reason. */
static int cx__halt(cx_service_t *svc, const cx_msg_t *m, cx_vitem_t *it,
                    cx_err_t *err) {
    const cx_unit_t *u = it->b->unit;
    int newly = 0;
    if (cx_account_halt(svc->redis, u->job_id,
                        CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_GATES_HALTED,
                        it->halt_reason, &newly, err) < 0)
        return -1;
    if (newly)
        CX_ERROR("job halted: its gates cannot run job_id=%s reason=\"%s\"",
                 u->job_id, it->halt_reason);
    cx__count(svc, "cascade_validator_deadletters_total",
              "Messages sent to cascade.deadletter", NULL, NULL, 1);
    return cx_deadletter(svc->producer, "validator", m, it->halt_reason,
                         u->job_id, u->unit_id, err);
}

/* Decodes the group's messages into items; malformed ones are dead-
 * lettered at once (done). Returns how many items. */
static size_t cx__decode(cx_service_t *svc, cx_msg_t **msgs, size_t n,
                         int *done, cx_staged_t **batches, cx_vitem_t *items,
                         size_t *item_msg, int *failed) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        cx_err_t e;
        batches[i] = NULL;
        if (done[i]) continue;
        cx_staged_t *b = cx_decode_staged(msgs[i]->payload, msgs[i]->len, &e);
        if (!b) {
            CX_WARN("malformed staged batch dead-lettered partition=%d "
                    "offset=%lld reason=\"%s\"",
                    (int)msgs[i]->partition, (long long)msgs[i]->offset,
                    e.msg);
            cx__count(svc, "cascade_validator_deadletters_total",
                      "Messages sent to cascade.deadletter", NULL, NULL, 1);
            cx_err_t de;
            if (cx_deadletter(svc->producer, "validator", msgs[i], e.msg, NULL,
                              NULL, &de) == 0)
                done[i] = 1;
            else
                *failed = 1;
            continue;
        }
        batches[i] = b;
        memset(&items[k], 0, sizeof items[k]);
        items[k].b = b;
        cx_err_t se;
        items[k].store = cx_service_store(svc, b->unit->output_uri, &se);
        if (!items[k].store) {
            CX_WARN("store unavailable job_id=%s reason=\"%s\"",
                    b->unit->job_id, se.msg);
            *failed = 1;
            continue;
        }
        item_msg[k++] = i;
    }
    return k;
}

/* After validation: dead letters, halts and the verdicts to send. */
static void cx__settle(cx_service_t *svc, cx_msg_t **msgs, cx_vitem_t *items,
                       size_t k, const size_t *item_msg, int *done,
                       int *sent, int *failed, cx_err_t *err) {
    for (size_t j = 0; j < k; j++) {
        cx_vitem_t *it = &items[j];
        const cx_unit_t *u = it->b->unit;
        cx_msg_t *m = msgs[item_msg[j]];
        sent[j] = 0;
        if (it->rc < 0 && it->err.retriable) {
            CX_WARN("batch retry job_id=%s unit_id=%s reason=\"%s\"",
                    u->job_id, u->unit_id, it->err.msg);
            *err = it->err;
            *failed = 1;
        } else if (it->rc < 0) {
            CX_ERROR("batch dead-lettered job_id=%s unit_id=%s reason=\"%s\"",
                     u->job_id, u->unit_id, it->err.msg);
            if (cx_deadletter(svc->producer, "validator", m, it->err.msg,
                              u->job_id, u->unit_id, err) == 0)
                done[item_msg[j]] = 1;
            else
                *failed = 1;
        } else if (it->outcome == CX_VALIDATE_HALT) {
            if (cx__halt(svc, m, it, err) == 0)
                done[item_msg[j]] = 1;
            else
                *failed = 1;
        } else if (it->outcome != CX_VALIDATE_VERDICT) {
            CX_INFO("batch skipped job_id=%s unit_id=%s attempt=%u "
                    "outcome=%s",
                    u->job_id, u->unit_id, it->b->attempt,
                    it->outcome == CX_VALIDATE_SKIP_FAILED ? "failed-attempt"
                                                           : "committed");
            done[item_msg[j]] = 1;
        } else if (cx_producer_send(svc->producer, CX_TOPIC_VERDICTS, -1,
                                    u->job_id, strlen(u->job_id),
                                    it->verdict.data, it->verdict.len,
                                    err) == 0) {
            sent[j] = 1;
        } else {
            *failed = 1;
        }
    }
}

int cx_validator_handle_group(cx_service_t *svc, cx_validator_t *v,
                              const cx_vrun_conf_t *conf, cx_msg_t **msgs,
                              size_t n, int *done, cx_err_t *err) {
    cx_staged_t **batches = calloc(n, sizeof *batches);
    cx_vitem_t *items = calloc(n, sizeof *items);
    size_t *item_msg = calloc(n, sizeof *item_msg);
    int *sent = calloc(n, sizeof *sent);
    cx_vquality_t q[CX__MAX_QUALITY];
    size_t nq = 0, k = 0;
    int failed = 0;
    cx_err_set(err, CX_EIO, 1, "validation group incomplete");
    if (!batches || !items || !item_msg || !sent) {
        cx_err_set(err, CX_ENOMEM, 1, "validation group");
        failed = 1;
        goto done;
    }
    k = cx__decode(svc, msgs, n, done, batches, items, item_msg, &failed);
    double t0 = cx_mono_ms();
    if (cx_validate_group(v, items, k, q, CX__MAX_QUALITY, &nq, err) < 0) {
        failed = 1;
        goto done;
    }
    double ms = cx_mono_ms() - t0;
    cx__settle(svc, msgs, items, k, item_msg, done, sent, &failed, err);
    /* Verdicts first (the committer's effect), then the accounting, which
     * is idempotent per attempt, so a retry after a crash between the two
     * counts nothing twice. */
    if (cx_producer_flush(svc->producer, CX__VALIDATOR_FLUSH_MS, err) < 0) {
        failed = 1;
        goto done;
    }
    for (size_t j = 0; j < k; j++) {
        if (!sent[j]) continue;
        const cx_vitem_t *it = &items[j];
        const cx_unit_t *u = it->b->unit;
        if (cx__account(svc, conf, it, err) < 0) {
            CX_WARN("accounting failed job_id=%s unit_id=%s reason=\"%s\"",
                    u->job_id, u->unit_id, err->msg);
            failed = 1;
            continue;
        }
        cx__metrics(svc, it);
        CX_INFO("batch validated job_id=%s unit_id=%s attempt=%u passed=%zu "
                "samples=%zu group_batches=%zu group_ms=%.1f",
                u->job_id, u->unit_id, it->b->attempt, it->st.passed,
                it->st.samples, k, ms);
        done[item_msg[j]] = 1;
    }
    for (size_t j = 0; j < nq; j++)
        if (cx_account_batch_quality(svc->redis, &q[j], err) < 0) failed = 1;
    /* Events produced by the accounting. */
    if (cx_producer_flush(svc->producer, CX__VALIDATOR_FLUSH_MS, err) < 0)
        failed = 1;
    cx_metric_set(cx_metrics_gauge(svc->metrics,
                                   "cascade_validator_group_batches",
                                   "Batches in the latest validation group",
                                   NULL, NULL),
                  (double)k);
    cx_metric_set(cx_metrics_gauge(svc->metrics,
                                   "cascade_validator_group_ms",
                                   "Wall time of the latest validation group",
                                   NULL, NULL),
                  ms);
done:
    for (size_t j = 0; items && j < k; j++) cx_vitem_release(&items[j]);
    for (size_t i = 0; batches && i < n; i++)
        if (batches[i]) cascade__v1__staged_batch__free_unpacked(batches[i], NULL);
    free(batches);
    free(items);
    free(item_msg);
    free(sent);
    if (!failed) cx_err_clear(err);
    return failed ? -1 : 0;
}

/* Collects a group: blocks up to 500 ms for its first message, then takes
 * what arrives until it is full or its window has passed. Once it holds
 * enough samples to keep the pool busy it takes only what has already
 * arrived: waiting longer would add latency, not throughput. */
static size_t cx__collect(cx_service_t *svc, cx_consumer_t *c,
                          const cx_vrun_conf_t *conf, cx_msg_t **msgs,
                          size_t have) {
    size_t n = have, samples = 0;
    double first = have ? cx_mono_ms() : 0;
    unsigned poll_fail = 0;
    while (n < conf->max_messages && samples < conf->batch_samples &&
           !cx_service_stopping()) {
        cx_service_ready_when_assigned(svc, c);
        int wait = 500;
        if (n) {
            wait = (int)(first + conf->window_ms - cx_mono_ms());
            if (wait < 0 || samples >= conf->busy_samples) wait = 0;
        }
        cx_msg_t *m = NULL;
        cx_err_t e;
        int rc = cx_consumer_poll(c, wait, &m, &e);
        if (rc == 0) {
            if (n) break;
            continue;
        }
        if (rc < 0) {
            CX_WARN("consume failed reason=\"%s\"", e.msg);
            cx_backoff_sleep(poll_fail++, 100, 5000, cx_service_stop_flag());
            if (n) break;
            continue;
        }
        if (!n) first = cx_mono_ms();
        msgs[n++] = m;
        /* Sample count without decoding twice: the payload size is a
         * proxy; the exact count matters little, the window bounds it. */
        cx_staged_t *b = cx_decode_staged(m->payload, m->len, NULL);
        samples += b ? b->n_samples : 1;
        if (b) cascade__v1__staged_batch__free_unpacked(b, NULL);
    }
    return n;
}

int cx_validator_run(cx_service_t *svc, cx_validator_t *v,
                     const cx_vrun_conf_t *conf, cx_consumer_t *c) {
    size_t cap = conf->max_messages ? conf->max_messages : 1;
    cx_msg_t **msgs = calloc(cap, sizeof *msgs);
    int *done = calloc(cap, sizeof *done);
    if (!msgs || !done) {
        free(msgs);
        free(done);
        CX_ERROR("validator: out of memory");
        return -1;
    }
    while (!cx_service_stopping()) {
        size_t n = cx__collect(svc, c, conf, msgs, 0);
        if (!n) continue;
        memset(done, 0, n * sizeof *done);
        for (unsigned attempt = 0;; attempt++) {
            cx_err_t e;
            int rc = cx_validator_handle_group(svc, v, conf, msgs, n, done, &e);
            /* Store offsets only up to the first unfinished message of
             * each partition: storing a later one would commit past it. */
            size_t w = 0;
            for (size_t i = 0; i < n; i++) {
                int blocked = 0;
                for (size_t j = 0; j < i && !blocked; j++)
                    blocked = msgs[j] && !done[j] &&
                              msgs[j]->partition == msgs[i]->partition &&
                              strcmp(msgs[j]->topic, msgs[i]->topic) == 0;
                if (done[i] && !blocked) {
                    cx_consumer_done(c, msgs[i]);
                    msgs[i] = NULL;
                }
            }
            for (size_t i = 0; i < n; i++)
                if (msgs[i]) {
                    msgs[w] = msgs[i];
                    done[w++] = done[i];
                }
            n = w;
            if (rc == 0 || n == 0) break;
            CX_WARN("validation group retry messages=%zu attempt=%u "
                    "reason=\"%s\"",
                    n, attempt, e.msg);
            if (cx_backoff_sleep(attempt, 100, 10000, cx_service_stop_flag()))
                break;
        }
        /* Stopping with messages in hand: not stored, redelivered. */
        for (size_t i = 0; i < n; i++) cx_msg_free(msgs[i]);
    }
    free(msgs);
    free(done);
    return 0;
}
