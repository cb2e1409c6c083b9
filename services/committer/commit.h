/* Committing a unit's verdict: cancellation and fencing checks, the
 * reservation, promotion of the granted samples to their content-hash keys,
 * and the manifest as the single commit point (put-if-absent). No Kafka
 * here (see run.c): the result is the packed CommitRecord to produce. */
#ifndef CX_COMMITTER_COMMIT_H
#define CX_COMMITTER_COMMIT_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/codec.h"
#include "cascade/manifest.h"
#include "cascade/redis.h"
#include "cascade/store.h"
#include "cascade/util.h"

typedef enum {
    CX_COMMIT_COMMITTED = 0, /* this attempt's manifest is the commit point */
    CX_COMMIT_EXISTING,      /* another delivery or attempt committed the
                                unit; the record is rebuilt from its
                                manifest and anything we promoted that it
                                does not list is removed */
    CX_COMMIT_CANCELLED,     /* the job is cancelled: nothing to commit */
    CX_COMMIT_FENCED         /* the unit is resolved dead: nothing to commit */
} cx_commit_outcome_t;

typedef struct cx_commit_result {
    cx_commit_outcome_t outcome;
    uint32_t passed;    /* passing samples in the verdict */
    uint32_t grant;     /* reserved for the unit */
    uint32_t committed; /* in the manifest that counts */
    size_t removed;     /* promoted files removed after losing the race */
    double commit_ms;
} cx_commit_result_t;

/* Commits verdict v. On CX_COMMIT_COMMITTED and CX_COMMIT_EXISTING the
 * packed CommitRecord is appended to record. The staging of the attempt is
 * left in place (cx_commit_cleanup, once the record is acknowledged).
 * Returns 0, or -1 with err (retriable for store and Redis failures that may
 * pass: the caller retries the same verdict; every step is idempotent). */
int cx_commit_verdict(cx_redis_t *r, cx_store_t *s, const cx_verdict_t *v,
                      cx_buf_t *record, cx_commit_result_t *res,
                      cx_err_t *err);

/* Deletes <job>/staging/<unit>/<attempt> of v. */
int cx_commit_cleanup(cx_store_t *s, const cx_verdict_t *v, cx_err_t *err);

/* <job>/data/<class>[/<condition>]/<hh>/<sha256>.png into out (size cap).
 * -1 with CX_EINVAL on a name that must not reach a path or a sha256 that
 * is not 64 lowercase hex characters. */
int cx_commit_data_key(const char *job_id, const char *class_name,
                       const char *condition, const char *sha256, char *out,
                       size_t cap, cx_err_t *err);

/* Builds the packed CommitRecord for manifest m (timing and validate_ms
 * from v, commit_ms given). */
int cx_commit_record(const cx_manifest_t *m, const cx_verdict_t *v,
                     double commit_ms, cx_buf_t *out, cx_err_t *err);

#endif
