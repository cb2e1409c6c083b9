/* Quality gates on one decoded grayscale image, without I/O.
 *
 * Two levels. Without a gate profile (the built-in profile "default", what
 * every job had before profiles existed) three legacy scores, each a pure
 * function of the pixels:
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

/* ---- profile gates (docs/GATES.md) -------------------------------------
 *
 * With a calibrated gate profile (profile.h) every sample goes through four
 * families of gates; each gate below has an id, a name (in reasons, worker
 * statistics and metrics) and a family. A sample's reason names its first
 * failed gate in id order, most specific diagnosis first. */
typedef enum cx_gate_id {
    CX_GATE_NONFINITE = 0, /* artifact: non-finite pixels */
    CX_GATE_CONSTANT,      /* artifact: std < min_std */
    CX_GATE_REPEAT,        /* artifact: repeat > max_repeat (before the
                              spectral gates: tile seams also add edges) */
    CX_GATE_CLIP,          /* artifact: clip > max_clip */
    CX_GATE_RANGE,         /* artifact: range < min_range */
    CX_GATE_HF,            /* artifact: hf > max_hf */
    CX_GATE_HF_RATIO,      /* artifact: hf_ratio outside [min, max] */
    CX_GATE_LAP_VAR,       /* artifact: lap_var outside [min, max] */
    CX_GATE_STRUCTURE,     /* structural: a measure outside the envelope */
    CX_GATE_MAHALANOBIS,   /* distributional: mahalanobis > max */
    CX_GATE_CLASS,         /* distributional: another class more likely
                              by more than max_class_llr nats */
    CX_GATE_PRIVACY,       /* privacy: dcr < min_privacy_distance */
    CX_GATE__COUNT
} cx_gate_id_t;

const char *cx_gate_name(cx_gate_id_t g);   /* "clip", ...; "?" if bad */
const char *cx_gate_family(cx_gate_id_t g); /* "artifact", "structural",
                                               "distributional", "privacy" */
/* The id of a gate name, or -1. */
int cx_gate_by_name(const char *name);

/* Every threshold a profile carries and a job may override by name
 * (JobSpec validation.thresholds). Ranges are in cx_gate_limit_defs. */
typedef struct cx_gate_limits {
    double min_range, max_clip, max_hf;
    double min_std;
    double min_hf_ratio, max_hf_ratio;
    double min_lap_var, max_lap_var;
    double max_repeat;
    double structure_k;          /* envelope half-width, robust sigmas */
    double max_mahalanobis;
    double max_class_llr;        /* nats */
    double min_privacy_distance; /* dcr below this: a near-copy */
    double privacy_budget;       /* tolerated fraction of near-copies */
    double privacy_min_samples;  /* budget denominator floor */
    double max_frechet;          /* job-level alert; 0: off */
} cx_gate_limits_t;

typedef struct cx_gate_limit_def {
    const char *name;
    size_t offset; /* of a double in cx_gate_limits_t */
    double lo, hi; /* accepted range, inclusive */
    const char *help;
} cx_gate_limit_def_t;
extern const cx_gate_limit_def_t cx_gate_limit_defs[];
extern const size_t cx_gate_nlimits;

static inline double *cx_gate_limit_ref(cx_gate_limits_t *l, size_t i) {
    return (double *)(void *)((char *)l + cx_gate_limit_defs[i].offset);
}
static inline double cx_gate_limit_get(const cx_gate_limits_t *l, size_t i) {
    return *(const double *)(const void *)((const char *)l +
                                           cx_gate_limit_defs[i].offset);
}
/* The index of a threshold name in cx_gate_limit_defs, or -1. */
int cx_gate_limit_index(const char *name);

/* Sets one threshold by name. -1 with CX_EINVAL naming the threshold and
 * its range for an unknown name or a value outside the range. */
int cx_gate_limit_set(cx_gate_limits_t *l, const char *name, double v,
                      cx_err_t *err);

/* Every value in range, and each min_* <= its max_*. */
int cx_gate_limits_check(const cx_gate_limits_t *l, cx_err_t *err);

/* A job's thresholds: l (the profile's defaults) overridden by crit's
 * thresholds, privacy_budget and max_frechet_distance (when non-zero),
 * then checked as a whole. crit may be NULL. */
int cx_gate_limits_apply(cx_gate_limits_t *l,
                         const Cascade__V1__ValidationCriteria *crit,
                         cx_err_t *err);

/* What a submission may say, without the profile at hand (planner,
 * cascadectl): every threshold name known, every value in its range, a
 * min_X/max_X pair given together ordered, privacy_budget in [0, 1].
 * crit may be NULL. */
int cx_gate_criteria_check(const Cascade__V1__ValidationCriteria *crit,
                           cx_err_t *err);

#endif
