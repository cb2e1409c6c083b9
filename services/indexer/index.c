/* cx_index_*: exactly-once counting of commits and Progress publishing. */
#include "index.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/codec.h"
#include "cascade/jobstate.h"
#include "cascade/log.h"
#include "cascade/util.h"

#define CX__FLUSH_MS 15000

int cx_index_publish_progress(cx_service_t *svc, const char *job_id,
                              cx_err_t *err) {
    cx_jobstate_t *st = NULL;
    size_t len;
    int rc = cx_jobstate_load(svc->redis, job_id, &st, err);
    if (rc < 0) return -1;
    if (rc == 0) return 0; /* nothing known: nothing to report */
    uint8_t *buf = cx_jobstate_progress_pack(st, cx_now_ms(), &len, err);
    cx_jobstate_free(st);
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
