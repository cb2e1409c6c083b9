/* Quality gates on one decoded grayscale image, without I/O.
 *
 * Three scores, each a pure function of the pixels:
 *   range  (p99.5 - p0.5) / full scale        must be >= min_range
 *   clip   fraction of pixels at 0 or at full scale   must be <= max_clip
 *   hf     mean squared 4-neighbour Laplacian over the intensity variance
 *          (interior pixels)                  must be <= max_hf
 * The hf ratio is scale-free: smooth anatomy gives well under 1, white noise
 * about 20 (a Laplacian of i.i.d. pixels has 20x their variance). A constant
 * image has zero variance and scores hf 0 (it fails range instead). */
#ifndef CX_VALIDATOR_GATES_H
#define CX_VALIDATOR_GATES_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/codec.h"

typedef struct cx_gate_thresholds {
    double min_range;
    double max_clip;
    double max_hf;
} cx_gate_thresholds_t;

/* Defaults of the service config (see main.c); calibrated on ref-cxr-v0. */
#define CX_GATE_DEFAULT_MIN_RANGE 0.2
#define CX_GATE_DEFAULT_MAX_CLIP 0.01
#define CX_GATE_DEFAULT_MAX_HF 2.0

typedef struct cx_gate_scores {
    double range;
    double clip;
    double hf;
} cx_gate_scores_t;

/* Names of the scores as they appear in verdicts and manifests. */
#define CX_GATE_SCORE_RANGE "range"
#define CX_GATE_SCORE_CLIP "clip"
#define CX_GATE_SCORE_HF "hf"

/* Computes the scores of px (width*height pixels of bit_depth 8 or 16).
 * Returns -1 with CX_EINVAL on an empty image or another depth, or
 * CX_ENOMEM. Thread-safe. */
int cx_gates_score(const uint16_t *px, uint32_t width, uint32_t height,
                   int bit_depth, cx_gate_scores_t *out, cx_err_t *err);

/* Applies thresholds to scores: returns 1 when every gate passes, else 0
 * with reason (if not NULL, size cap) naming the first failed gate, its
 * value and its bound, e.g. "range 0.012 < min_range 0.2". */
int cx_gates_judge(const cx_gate_scores_t *s, const cx_gate_thresholds_t *t,
                   char *reason, size_t cap);

/* The thresholds for a job: defaults overridden by the criteria's entries
 * named min_range, max_clip, max_hf (other names are ignored here: the
 * planner rejects them). crit may be NULL. */
void cx_gates_thresholds_for(const cx_gate_thresholds_t *defaults,
                             const Cascade__V1__ValidationCriteria *crit,
                             cx_gate_thresholds_t *out);

#endif
