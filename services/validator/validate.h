/* Validation of a staged batch: read every sample from the store, decode it,
 * check its geometry, hash it and run the gates, on a thread pool; then the
 * Verdict for the batch. No Kafka here (see run.c). */
#ifndef CX_VALIDATOR_VALIDATE_H
#define CX_VALIDATOR_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/codec.h"
#include "cascade/store.h"
#include "cascade/util.h"
#include "gates.h"

typedef struct cx_validator cx_validator_t;

/* threads 0: one per online CPU. defaults is copied. */
cx_validator_t *cx_validator_new(const cx_gate_thresholds_t *defaults,
                                 unsigned threads, cx_err_t *err);
void cx_validator_destroy(cx_validator_t *v); /* NULL is fine */

/* The result for one staged sample. */
typedef struct cx_sample_result {
    uint32_t index;
    const char *key;      /* borrowed from the batch */
    int pass;
    int missing;          /* the staged file does not exist */
    char reason[192];     /* why it failed; "" when it passed */
    char sha256[65];      /* of the PNG bytes; "" when unreadable */
    int scored;           /* scores below are meaningful */
    cx_gate_scores_t scores;
    cx_err_t err;         /* err.code != CX_OK: a store error (see retriable) */
} cx_sample_result_t;

/* Timings of one sample's phases (ms), for benchmarks. */
typedef struct cx_sample_timing {
    double read_ms, decode_ms, sha_ms, gates_ms;
} cx_sample_timing_t;

/* Validates the PNG bytes of one sample: decodes, checks width x height and
 * bit depth, hashes, scores and judges. Fills r (not key, index, missing,
 * err); t may be NULL. Thread-safe. */
void cx_validate_png(const void *png, size_t len, uint32_t width,
                     uint32_t height, int bit_depth,
                     const cx_gate_thresholds_t *th, cx_sample_result_t *r,
                     cx_sample_timing_t *t);

typedef enum {
    CX_VALIDATE_VERDICT = 0,   /* out holds a packed Verdict to produce */
    CX_VALIDATE_SKIP_FAILED,   /* the attempt reported a failure */
    CX_VALIDATE_SKIP_COMMITTED /* samples are gone and the unit's manifest
                                  exists: another attempt committed it */
} cx_validate_outcome_t;

typedef struct cx_validate_stats {
    size_t samples, passed;
    double ms;
} cx_validate_stats_t;

/* Validates batch b against store (the store of the unit's output_uri).
 * Returns 0 with *outcome set (and the packed Verdict appended to out for
 * CX_VALIDATE_VERDICT; st, if not NULL, filled), or -1 with err: retriable
 * when a store read failed for a reason that may pass, so the caller retries
 * the whole batch. */
int cx_validate_batch(cx_validator_t *v, cx_store_t *store,
                      const cx_staged_t *b, cx_buf_t *out,
                      cx_validate_outcome_t *outcome,
                      cx_validate_stats_t *st, cx_err_t *err);

/* Builds and packs the Verdict for b from n per-sample results (in the
 * batch's order), appending it to out. */
int cx_verdict_build(const cx_staged_t *b, const cx_sample_result_t *res,
                     size_t n, double validate_ms, cx_buf_t *out,
                     cx_err_t *err);

/* <job>/manifests/<unit>.json into out (size cap). -1 if it does not fit. */
int cx_validate_manifest_key(const char *job_id, const char *unit_id,
                             char *out, size_t cap);

#endif
