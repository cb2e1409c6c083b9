/* cx_profile: a calibrated gate profile (docs/GATES.md), loaded read-only.
 *
 * On disk, in the validator's profile_dir:
 *   <name>.json   format "cascade-gate-profile", version 1: thresholds,
 *                 per-class envelopes, the standardisation of the feature
 *                 vector, calibration figures, and the features file's
 *                 name, row count and SHA-256;
 *   <name>.feat   the training feature matrix (binary, little-endian, see
 *                 profile.c), rows grouped by class.
 * Both are written by cxcalibrate. Loading checks everything (format,
 * version, feature layout, every field's presence, type and range, the
 * file's size and checksum, finite values) and says precisely what is
 * wrong; nothing half-loaded is ever used.
 *
 * From the rows the loader builds what the gates need: the exact privacy
 * index (cx_knn over the privacy view), per class the Mahalanobis mean and
 * Cholesky factor, a reference subset with k-NN radii for precision and
 * recall, and the class's Gaussian in a 16-dimensional principal-component
 * projection for Frechet distances.
 *
 * A loaded profile is immutable: any number of threads may use it. */
#ifndef CX_VALIDATOR_PROFILE_H
#define CX_VALIDATOR_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "dist.h"
#include "gates.h"
#include "imgfeat.h"
#include "knn.h"

#define CX_PROFILE_FORMAT "cascade-gate-profile"
#define CX_PROFILE_VERSION 1
/* The built-in profile: the three legacy gates with the service's
 * defaults, no file. Jobs that name no profile get it. */
#define CX_PROFILE_BUILTIN "default"
#define CX_PROFILE_FD_DIM 16
#define CX_PROFILE_NSTRUCT 8 /* structural measures with an envelope */

/* Index into cx_feat_measures of structural measure i (< NSTRUCT). */
int cx_profile_struct_measure(size_t i);

typedef struct cx_profile cx_profile_t;

/* Loads <dir>/<name>.json and the features file it names (in dir). name
 * must pass cx_name_check and not be CX_PROFILE_BUILTIN. pool (may be NULL)
 * parallelises the build. Errors are CX_ENOENT (no such profile), CX_EINVAL
 * (malformed; the message names the field or the check that failed),
 * CX_EIO or CX_ENOMEM. */
cx_profile_t *cx_profile_load(const char *dir, const char *name,
                              cx_err_t *err);
void cx_profile_destroy(cx_profile_t *p); /* NULL is fine */

const char *cx_profile_name(const cx_profile_t *p);
/* The calibration's default thresholds. */
const cx_gate_limits_t *cx_profile_limits(const cx_profile_t *p);
/* Image geometry the profile was calibrated on. */
void cx_profile_geometry(const cx_profile_t *p, uint32_t *width,
                         uint32_t *height, int *depth);
size_t cx_profile_nclasses(const cx_profile_t *p);
const char *cx_profile_class_name(const cx_profile_t *p, size_t c);
int cx_profile_class(const cx_profile_t *p, const char *name); /* -1 */
size_t cx_profile_rows(const cx_profile_t *p);
/* The exact search over every training row's privacy view. */
const cx_knn_t *cx_profile_knn(const cx_profile_t *p);
/* Reference points of class c (for recall: bitmaps of this many bits). */
size_t cx_profile_nref(const cx_profile_t *p, size_t c);

/* Per-sample distributional and structural scores against class c. */
typedef struct cx_profile_scores {
    double mahalanobis;
    /* Gaussian log-likelihood of the best other class minus the claimed
     * class's (nats; -inf with one class): > 0 means the sample looks
     * more like class `class_best` than like the class it claims. */
    double class_llr;
    int class_best;
    double structure_z;  /* largest |x - median| / sigma of the envelope */
    int structure_worst; /* which measure (index into cx_feat_measures) */
    int in_manifold;     /* within some reference's k-NN radius */
    double proj[CX_PROFILE_FD_DIM]; /* for Frechet statistics */
} cx_profile_scores_t;

/* Scores f against class c. covered, if not NULL, is a bitmap of
 * cx_profile_nref(p, c) bits: the references f covers are set in it. */
void cx_profile_score(const cx_profile_t *p, size_t c, const cx_feat_t *f,
                      uint8_t *covered, cx_profile_scores_t *out);

/* Where cx_profile_score's time goes (ms), for benchmarks: the
 * Mahalanobis distance and class likelihood ratios, the structural
 * envelope, the k-NN manifold (precision and coverage), the projection. */
typedef struct cx_profile_timing {
    double mahalanobis, structure, manifold, projection;
} cx_profile_timing_t;
void cx_profile_score_timed(const cx_profile_t *p, size_t c,
                            const cx_feat_t *f, uint8_t *covered,
                            cx_profile_scores_t *out, cx_profile_timing_t *t);

/* The Frechet distance between the accumulated projections in acc and
 * class c's training distribution (both in the profile's projection). */
int cx_profile_frechet(const cx_profile_t *p, size_t c,
                       const cx_dist_acc_t *acc, double *out, cx_err_t *err);

#endif
