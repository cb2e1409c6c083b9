#include "run.h"

#include <string.h>

#include "cascade/log.h"

#define CX__COMMITTER_FLUSH_MS 30000

static void cx__count(cx_service_t *svc, const char *name, const char *help,
                      const char *label, const char *value, double n) {
    cx_metric_add(cx_metrics_counter(svc->metrics, name, help,
                                     label, value),
                  n);
}

int cx_committer_handle(cx_service_t *svc, const cx_msg_t *m, cx_err_t *err) {
    cx_err_t e;
    cx_verdict_t *v = cx_decode_verdict(m->payload, m->len, &e);
    if (!v) {
        CX_WARN("malformed verdict dead-lettered partition=%d offset=%lld "
                "reason=\"%s\"",
                (int)m->partition, (long long)m->offset, e.msg);
        cx__count(svc, "cascade_committer_deadletters_total",
                  "Messages sent to cascade.deadletter", NULL, NULL, 1);
        return cx_deadletter(svc->producer, "committer", m, e.msg, NULL, NULL,
                             err);
    }

    const cx_unit_t *u = v->unit;
    cx_buf_t rec = {0};
    cx_commit_result_t res;
    int rc = -1;
    cx_store_t *store = cx_service_store(svc, u->output_uri, err);
    if (!store) goto done;
    if (cx_commit_verdict(svc->redis, store, v, &rec, &res, err) < 0) {
        cx_err_wrap(err, "job_id=%s unit_id=%s", u->job_id, u->unit_id);
        goto done;
    }
    if (rec.len &&
        (cx_producer_send(svc->producer, CX_TOPIC_COMMITS, -1, u->job_id,
                          strlen(u->job_id), rec.data, rec.len, err) < 0 ||
         cx_producer_flush(svc->producer, CX__COMMITTER_FLUSH_MS, err) < 0))
        goto done;
    /* Staging goes last: until the record is out, a retry still has it. */
    if (cx_commit_cleanup(store, v, err) < 0) goto done;

    switch (res.outcome) {
    case CX_COMMIT_COMMITTED:
        CX_INFO("unit committed job_id=%s unit_id=%s attempt=%u passed=%u "
                "grant=%u committed=%u commit_ms=%.1f",
                u->job_id, u->unit_id, v->attempt, res.passed, res.grant,
                res.committed, res.commit_ms);
        cx__count(svc, "cascade_committer_samples_total",
                  "Samples promoted to the dataset", NULL, NULL,
                  res.committed);
        cx__count(svc, "cascade_committer_units_total", "Verdicts handled",
                  "outcome", "committed", 1);
        break;
    case CX_COMMIT_EXISTING:
        CX_INFO("unit already committed job_id=%s unit_id=%s attempt=%u "
                "committed=%u removed=%zu",
                u->job_id, u->unit_id, v->attempt, res.committed,
                res.removed);
        cx__count(svc, "cascade_committer_units_total", "Verdicts handled",
                  "outcome", "existing", 1);
        break;
    case CX_COMMIT_CANCELLED:
        CX_INFO("job cancelled, verdict discarded job_id=%s unit_id=%s "
                "attempt=%u",
                u->job_id, u->unit_id, v->attempt);
        cx__count(svc, "cascade_committer_units_total", "Verdicts handled",
                  "outcome", "cancelled", 1);
        break;
    case CX_COMMIT_FENCED:
        CX_WARN("dead unit fenced, verdict discarded job_id=%s unit_id=%s "
                "attempt=%u",
                u->job_id, u->unit_id, v->attempt);
        cx__count(svc, "cascade_committer_units_total", "Verdicts handled",
                  "outcome", "fenced", 1);
        break;
    }
    rc = 0;

done:
    cx_buf_free(&rec);
    cascade__v1__verdict__free_unpacked(v, NULL);
    return rc;
}

static int cx__handle(cx_service_t *svc, void *ctx, const cx_msg_t *m,
                      cx_err_t *err) {
    (void)ctx;
    return cx_committer_handle(svc, m, err);
}

int cx_committer_run(cx_service_t *svc, cx_consumer_t *c) {
    return cx_service_consume(svc, c, cx__handle, NULL);
}
