/* cx_index_*: exactly-once counting of commits and Progress publishing. */
#include "index.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/codec.h"
#include "cascade/jobstate.h"
#include "cascade/log.h"
#include "cascade/util.h"
#include "quality.h"

#define CX__FLUSH_MS 15000

/* One field of the scheduler's estimate (cx:job:<job>:eta) into p. */
static void eta_field(cx_progress_t *p, const char *f, const char *v) {
    if (!strcmp(f, "eta_ms")) p->eta_unix_ms = strtoll(v, NULL, 10);
    else if (!strcmp(f, "lo_ms")) p->eta_low_unix_ms = strtoll(v, NULL, 10);
    else if (!strcmp(f, "hi_ms")) p->eta_high_unix_ms = strtoll(v, NULL, 10);
    else if (!strcmp(f, "late")) p->deadline_at_risk = atoi(v) != 0;
    else if (!strcmp(f, "rate")) p->pool_samples_per_s = strtod(v, NULL);
    else if (!strcmp(f, "updated_ms"))
        p->eta_updated_unix_ms = strtoll(v, NULL, 10);
    else if (!strncmp(f, "class:", 6))
        for (size_t c = 0; c < p->n_classes; c++)
            if (!strcmp(p->classes[c]->name, f + 6))
                sscanf(v, "%" SCNd64 " %" SCNd64 " %" SCNd64,
                       &p->classes[c]->eta_unix_ms,
                       &p->classes[c]->eta_low_unix_ms,
                       &p->classes[c]->eta_high_unix_ms);
}

/* The packed Progress with the scheduler's estimate added, when there is
 * one (NULL with err when Redis failed; buf is consumed). */
static uint8_t *with_eta(cx_service_t *svc, const char *job_id, uint8_t *buf,
                         size_t *len, cx_err_t *err) {
    redisReply *r = cx_redis_cmd(svc->redis, err, "HGETALL cx:job:%s:eta",
                                 job_id);
    cx_progress_t *p = r && r->type == REDIS_REPLY_ARRAY && r->elements
                           ? cx_decode_progress(buf, *len, NULL)
                           : NULL;
    uint8_t *out = r ? buf : NULL;
    for (size_t i = 0; p && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            eta_field(p, r->element[i]->str, r->element[i + 1]->str);
    if (p) {
        out = cx_pack(&p->base, len, err);
        free(buf);
        cascade__v1__progress__free_unpacked(p, NULL);
    } else if (!r) {
        free(buf);
    }
    if (r) freeReplyObject(r);
    return out;
}

int cx_index_publish_progress(cx_service_t *svc, const char *job_id,
                              cx_err_t *err) {
    cx_jobstate_t *st = NULL;
    size_t len;
    int rc = cx_jobstate_load(svc->redis, job_id, &st, err);
    if (rc < 0) return -1;
    if (rc == 0) return 0; /* nothing known: nothing to report */
    uint8_t *buf = cx_jobstate_progress_pack(st, cx_now_ms(), &len, err);
    cx_jobstate_free(st);
    if (buf) buf = with_eta(svc, job_id, buf, &len, err);
    if (buf) buf = cx_index_with_quality(svc, job_id, buf, &len, err);
    if (!buf) return -1;
    rc = cx_producer_send(svc->producer, CX_TOPIC_PROGRESS, -1, job_id,
                          strlen(job_id), buf, len, err);
    free(buf);
    if (rc < 0) return -1;
    return cx_producer_flush(svc->producer, CX__FLUSH_MS, err);
}

int cx_index_handle_commit(cx_service_t *svc, const cx_msg_t *m, int *counted,
                           cx_err_t *err) {
    cx_err_t derr = {0};
    if (counted) *counted = 0;
    cx_commit_t *c = cx_decode_commit(m->payload, m->len, &derr);
    if (!c) {
        CX_WARN("malformed commit record offset=%" PRId64 " reason=\"%s\"",
                m->offset, derr.msg);
        return cx_deadletter(svc->producer, "indexer", m, derr.msg, NULL, NULL,
                             err);
    }
    int rc = cx_jobstate_count_commit(svc->redis, c, err);
    if (rc < 0 && err && !err->retriable && err->code == CX_EINVAL) {
        /* The record itself is wrong (bad names): nothing to retry. */
        rc = cx_deadletter(svc->producer, "indexer", m, err->msg, c->job_id,
                           c->unit_id, err);
        goto done;
    }
    if (rc < 0) goto done;
    if (counted) *counted = rc;
    if (rc == 1)
        CX_INFO("unit counted job_id=%s unit_id=%s class=%s committed=%" PRIu32,
                c->job_id, c->unit_id, c->class_name, c->committed);
    else
        CX_DEBUG("unit already counted job_id=%s unit_id=%s", c->job_id,
                 c->unit_id);
    /* Published on a duplicate too: the first publication may be what a
     * crash lost. */
    rc = cx_index_publish_progress(svc, c->job_id, err);
done:
    cascade__v1__commit_record__free_unpacked(c, NULL);
    return rc < 0 ? -1 : 0;
}
