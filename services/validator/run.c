#include "run.h"

#include <stdlib.h>
#include <string.h>

#include "cascade/log.h"

#define CX__VALIDATOR_FLUSH_MS 30000

int cx_validator_handle(cx_service_t *svc, cx_validator_t *v,
                        const cx_msg_t *m, cx_err_t *err) {
    cx_err_t e;
    cx_staged_t *b = cx_decode_staged(m->payload, m->len, &e);
    if (!b) {
        CX_WARN("malformed staged batch dead-lettered partition=%d "
                "offset=%lld reason=\"%s\"",
                (int)m->partition, (long long)m->offset, e.msg);
        cx_metric_add(cx_metrics_counter(svc->metrics,
                                         "cascade_validator_deadletters_total",
                                         "Messages sent to cascade.deadletter",
                                         NULL, NULL),
                      1);
        return cx_deadletter(svc->producer, "validator", m, e.msg, NULL, NULL,
                             err);
    }

    const cx_unit_t *u = b->unit;
    cx_buf_t out = {0};
    cx_validate_stats_t st = {0};
    cx_validate_outcome_t oc;
    int rc = -1;
    cx_store_t *store = cx_service_store(svc, u->output_uri, err);
    if (!store) goto done;
    if (cx_validate_batch(v, store, b, &out, &oc, &st, err) < 0) {
        cx_err_wrap(err, "job_id=%s unit_id=%s", u->job_id, u->unit_id);
        goto done;
    }
    switch (oc) {
    case CX_VALIDATE_SKIP_FAILED:
        CX_INFO("failed attempt skipped job_id=%s unit_id=%s attempt=%u "
                "failure=\"%s\"",
                u->job_id, u->unit_id, b->attempt, b->failure);
        rc = 0;
        goto done;
    case CX_VALIDATE_SKIP_COMMITTED:
        CX_INFO("batch already committed job_id=%s unit_id=%s attempt=%u",
                u->job_id, u->unit_id, b->attempt);
        rc = 0;
        goto done;
    case CX_VALIDATE_VERDICT:
        break;
    }
    if (cx_producer_send(svc->producer, CX_TOPIC_VERDICTS, -1, u->job_id,
                         strlen(u->job_id), out.data, out.len, err) < 0 ||
        cx_producer_flush(svc->producer, CX__VALIDATOR_FLUSH_MS, err) < 0)
        goto done;
    cx_metric_add(cx_metrics_counter(svc->metrics,
                                     "cascade_validator_samples_total",
                                     "Samples validated", "result", "pass"),
                  (double)st.passed);
    cx_metric_add(cx_metrics_counter(svc->metrics,
                                     "cascade_validator_samples_total",
                                     "Samples validated", "result", "fail"),
                  (double)(st.samples - st.passed));
    cx_metric_add(cx_metrics_counter(svc->metrics,
                                     "cascade_validator_batches_total",
                                     "Batches validated", NULL, NULL),
                  1);
    CX_INFO("batch validated job_id=%s unit_id=%s attempt=%u passed=%zu "
            "samples=%zu validate_ms=%.1f",
            u->job_id, u->unit_id, b->attempt, st.passed, st.samples, st.ms);
    rc = 0;

done:
    cx_buf_free(&out);
    cascade__v1__staged_batch__free_unpacked(b, NULL);
    return rc;
}

static int cx__handle(cx_service_t *svc, void *ctx, const cx_msg_t *m,
                      cx_err_t *err) {
    return cx_validator_handle(svc, ctx, m, err);
}

int cx_validator_run(cx_service_t *svc, cx_validator_t *v, cx_consumer_t *c) {
    return cx_service_consume(svc, c, cx__handle, v);
}
