/* The unit manifest: <root>/<job>/manifests/<unit>.json, written once
 * (put-if-absent) by the committer as a unit's commit point, read by the
 * indexer (rebuilds) and tools. It lists every committed sample with its
 * content hash, gate scores and the generation parameters, so any sample can
 * be regenerated and checked. JSON layout (docs/ARCHITECTURE.md):
 *
 *   {"job_id": "...", "unit_id": "<32 hex>", "class": "...",
 *    "condition": "", "attempt": 1, "worker_id": "...",
 *    "seed": "<decimal uint64>", "ordinal": 0, "generation": 0,
 *    "params": {"checkpoint": "...", "sampler": "ddim", "steps": 50,
 *               "guidance_scale": 1.0, "eta": 0.0, "width": 512,
 *               "height": 512, "bit_depth": 16},
 *    "planned": 32, "generated": 32, "passed": 31, "committed": 31,
 *    "committed_unix_ms": 1764096000000,
 *    "samples": [{"index": 0, "sha256": "<64 hex>", "key": "...",
 *                 "scores": {"clip_fraction": 0.0}}, ...]}
 *
 * The seed is a decimal string because JSON numbers are doubles in most
 * readers and a 64-bit seed must survive exactly (the parser also accepts a
 * number up to 2^53). A non-finite score is written as null and read back
 * as NaN. */
#ifndef CASCADE_MANIFEST_H
#define CASCADE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/util.h"

typedef struct cx_manifest_score {
    char *name;
    double value;
} cx_manifest_score_t;

typedef struct cx_manifest_sample {
    uint32_t index;    /* sample index within the unit (the Philox counter) */
    char sha256[65];   /* content hash of the PNG, lowercase hex */
    char *key;         /* store key of the committed PNG */
    size_t n_scores;
    cx_manifest_score_t *scores;
} cx_manifest_sample_t;

typedef struct cx_manifest_params {
    char *checkpoint;
    int sampler; /* Cascade__V1__Sampler: 1 ddim, 2 euler, 3 heun */
    uint32_t steps;
    double guidance_scale;
    double eta;
    uint32_t width, height, bit_depth;
} cx_manifest_params_t;

typedef struct cx_manifest {
    char *job_id;
    char *unit_id;
    char *class_name; /* "class" in JSON */
    char *condition;  /* may be NULL or "" */
    uint32_t attempt;
    char *worker_id;
    uint64_t seed;
    uint32_t ordinal, generation;
    cx_manifest_params_t params;
    uint32_t planned, generated, passed, committed;
    int64_t committed_unix_ms;
    size_t n_samples;
    cx_manifest_sample_t *samples;
} cx_manifest_t;

/* Appends the manifest's JSON to out. The manifest is only read: a writer
 * may point its strings at anything it owns. Fails with CX_EINVAL when a
 * required field is missing or invalid (the same rules the parser applies),
 * so a bad manifest is never committed. */
int cx_manifest_to_json(const cx_manifest_t *m, cx_buf_t *out, cx_err_t *err);

/* Parses and validates a manifest; *out is owned by the caller (free with
 * cx_manifest_free). Malformed JSON, missing or mistyped fields, a unit_id
 * or sha256 that is not lowercase hex, names that fail cx_name_check,
 * counts out of order (committed <= passed <= generated) or a sample list
 * whose length is not `committed` are CX_EDECODE naming the field. Unknown
 * keys are ignored (newer writers may add some). */
int cx_manifest_parse(const char *json, size_t len, cx_manifest_t **out,
                      cx_err_t *err);

/* Frees a manifest returned by cx_manifest_parse. NULL is a no-op. */
void cx_manifest_free(cx_manifest_t *m);

/* Checks the fields of m (as cx_manifest_to_json does). */
int cx_manifest_check(const cx_manifest_t *m, cx_errcode_t code,
                      cx_err_t *err);

#endif
