/* Validation of staged batches: read every sample from the store, hash it,
 * decode it, check its geometry and run the gates of the job's profile, on
 * a thread pool; then one Verdict per batch. No Kafka or Redis here (see
 * run.c and account.c).
 *
 * Batches are validated in groups (cx_validate_group): all samples of all
 * batches of a group go through the pool together, and the privacy gate's
 * exact search runs once per group and profile, which is what makes it
 * cheap (training vectors are streamed once per 48 queries, knn.h). A job
 * that names no profile (or "default") gets the three legacy gates with the
 * service's defaults, exactly as before profiles existed. */
#ifndef CX_VALIDATOR_VALIDATE_H
#define CX_VALIDATOR_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/codec.h"
#include "cascade/store.h"
#include "cascade/util.h"
#include "gates.h"
#include "judge.h"

typedef struct cx_validator cx_validator_t;

/* threads 0: one per online CPU. defaults is copied. */
cx_validator_t *cx_validator_new(const cx_gate_thresholds_t *defaults,
                                 unsigned threads, cx_err_t *err);
void cx_validator_destroy(cx_validator_t *v); /* NULL is fine */
/* Threads validating a group (the pool's and the caller's). */
unsigned cx_validator_threads(const cx_validator_t *v);

/* Where named gate profiles live (copied; NULL or "": none, so only the
 * built-in profile works). Profiles load on first use and stay cached;
 * a profile that failed to load is retried after retry_ms. */
int cx_validator_set_profile_dir(cx_validator_t *v, const char *dir,
                                 int retry_ms, cx_err_t *err);

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
    int profiled;         /* decoded and judged under a gate profile: feat
                             and gv are meaningful */
    cx_feat_t feat;
    cx_gate_verdict_t gv;
    uint8_t *covered;     /* references of the class it covers (profiled) */
    cx_err_t err;         /* err.code != CX_OK: a store error (see retriable) */
} cx_sample_result_t;

/* Timings of one sample's phases (ms), for benchmarks. */
typedef struct cx_sample_timing {
    double read_ms, decode_ms, sha_ms, gates_ms;
} cx_sample_timing_t;

/* Validates the PNG bytes of one sample under the legacy gates: decodes,
 * checks width x height and bit depth, hashes, scores and judges. Fills r
 * (not key, index, missing, err); t may be NULL. Thread-safe. */
void cx_validate_png(const void *png, size_t len, uint32_t width,
                     uint32_t height, int bit_depth,
                     const cx_gate_thresholds_t *th, cx_sample_result_t *r,
                     cx_sample_timing_t *t);

typedef enum {
    CX_VALIDATE_VERDICT = 0,   /* out holds a packed Verdict to produce */
    CX_VALIDATE_SKIP_FAILED,   /* the attempt reported a failure */
    CX_VALIDATE_SKIP_COMMITTED,/* samples are gone and the unit's manifest
                                  exists: another attempt committed it */
    CX_VALIDATE_HALT           /* the job cannot be validated as specified
                                  (unusable profile, class or thresholds):
                                  halt_reason says why; no verdict */
} cx_validate_outcome_t;

typedef struct cx_validate_stats {
    size_t samples, passed;
    double ms;
} cx_validate_stats_t;

/* What one unit's validation contributes to the per-worker, privacy and
 * alignment accounting (account.h). */
typedef struct cx_unit_tally {
    size_t scored;        /* samples that reached the gates */
    size_t failed;        /* samples that did not pass (any reason) */
    uint32_t gate_fail[CX_GATE__COUNT]; /* per gate (a sample may fail
                                           several) */
    uint32_t unreadable;  /* missing, undecodable or wrong geometry */
    const void *profile;  /* the cx_profile_t, or NULL (built-in) */
    int class_index;      /* in the profile; -1 without one */
    cx_gate_limits_t limits;
    size_t checked;       /* privacy: samples searched */
    size_t near_copies;   /* privacy: below min_privacy_distance */
    size_t n_pass;        /* passing profiled samples (alignment) */
    size_t in_manifold;   /* of those, inside the class's manifold */
    cx_dist_acc_t *acc;   /* their projections (malloc'd; NULL: none) */
    uint8_t *covered;     /* OR of their reference bitmaps (malloc'd) */
    size_t nref;          /* bits in covered */
} cx_unit_tally_t;

/* One staged batch of a group. */
typedef struct cx_vitem {
    const cx_staged_t *b;  /* in */
    cx_store_t *store;     /* in: the store of the unit's output_uri */
    /* out */
    int rc;                /* 0, or -1 with err (retriable: try the group
                              again; else this batch cannot be validated) */
    cx_err_t err;
    cx_validate_outcome_t outcome;
    char halt_reason[512];
    cx_buf_t verdict;      /* CX_VALIDATE_VERDICT: the packed Verdict */
    cx_validate_stats_t st;
    cx_unit_tally_t tally;
} cx_vitem_t;

/* Batch-level alignment of the samples of one (job, class) in a group. */
typedef struct cx_vquality {
    const char *job_id, *class_name; /* borrowed from the group's batches */
    size_t n;                        /* passing profiled samples */
    double frechet;                  /* -1 when n < 2 */
    double precision, recall;        /* recall: the coverage of the class's
                                        references, see dist.h */
} cx_vquality_t;

/* Validates n batches together. Every item gets its own outcome in
 * items[i] (rc/err per item); the call itself fails (-1) only when out of
 * memory. quality, if not NULL, receives up to max_quality (job, class)
 * figures and *nquality their count. Release the items with
 * cx_vitem_release. */
int cx_validate_group(cx_validator_t *v, cx_vitem_t *items, size_t n,
                      cx_vquality_t *quality, size_t max_quality,
                      size_t *nquality, cx_err_t *err);
void cx_vitem_release(cx_vitem_t *it);

/* One batch alone (cx_validate_group of one): returns 0 with *outcome set
 * (and the packed Verdict appended to out for CX_VALIDATE_VERDICT; st, if
 * not NULL, filled), or -1 with err: retriable when a store read failed
 * for a reason that may pass. CX_VALIDATE_HALT is returned as -1 with
 * CX_EINVAL and the reason. */
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

/* The profile a unit's criteria name: NULL for the built-in one. Loads and
 * caches it; -1 with err (CX_ENOENT / CX_EINVAL: the job cannot run with
 * it) when it cannot be had. Not thread-safe (the service loop's thread). */
int cx_validator_profile(cx_validator_t *v, const char *name,
                         const cx_profile_t **out, cx_err_t *err);

#endif
