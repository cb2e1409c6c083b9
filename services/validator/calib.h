/* cx_calib: builds a gate profile from a training set's features
 * (cxcalibrate is the command-line front end; tests call it directly).
 *
 * Every default threshold comes from the training set itself
 * (docs/GATES.md, "Calibration"):
 *   - artifacts, pooled over classes (they do not depend on anatomy):
 *     min/max of hf_ratio and lap_var at [P0.1 / 2, P99.9 * 2]; max_repeat
 *     halfway from P99.9 to 1; max_clip max(0.01, 2 P99.9); min_range
 *     P0.1 / 2; max_hf 2 P99.9; min_std P0.1 / 4;
 *   - structural envelopes per class: median and robust sigma
 *     (max(1.4826 MAD, IQR / 1.349)) of each structural measure, widened
 *     so that the default envelope, median +- structure_k sigma, holds at
 *     least 1.25 times the class's own 0.1-99.9 % range;
 *   - Mahalanobis: the distances of held-out rows in k-fold cross-
 *     validation (the training rows' own distances are biased low), the
 *     max_mahalanobis default is margin x their quantile; the same held-
 *     out rows give the class log-likelihood ratios (best other class's
 *     Gaussian log-likelihood minus their own class's): max_class_llr is
 *     max(0, their quantile) + llr_margin nats;
 *   - privacy: the exact leave-one-out nearest-neighbour distance of up to
 *     privacy_queries training rows; min_privacy_distance is factor x its
 *     quantile (exact duplicates inside the training set are counted and
 *     left out of the quantile).
 * Pure computation apart from cx_calib_write, which writes the two files
 * (each to a temporary name, then renamed: a reader never sees half). */
#ifndef CX_VALIDATOR_CALIB_H
#define CX_VALIDATOR_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/pool.h"
#include "cascade/util.h"
#include "imgfeat.h"

typedef struct cx_calib_opts {
    double ridge;            /* Mahalanobis ridge (relative), 0.01 */
    unsigned pr_k;           /* k of the k-NN radii, 5 */
    size_t ref_per_class;    /* references per class, 1024 */
    unsigned folds;          /* cross-validation folds, 5 */
    double maha_quantile;    /* 0.999 */
    double maha_margin;      /* 1.5 */
    double llr_margin;       /* nats above the class-LLR quantile, 5 */
    size_t privacy_queries;  /* 2000 */
    double privacy_quantile; /* 0.01 */
    double privacy_factor;   /* 0.5 */
    double privacy_budget;   /* 0.01 */
    double privacy_min_samples; /* 100 */
    double structure_k;      /* 6 */
} cx_calib_opts_t;

void cx_calib_opts_default(cx_calib_opts_t *o);

typedef struct cx_calib cx_calib_t;

/* A calibration for images of width x height at depth (8 or 16). */
cx_calib_t *cx_calib_new(uint32_t width, uint32_t height, int depth,
                         cx_err_t *err);
void cx_calib_destroy(cx_calib_t *c); /* NULL is fine */

/* Adds one training image's features to class_name (classes keep the
 * order in which they first appear). */
int cx_calib_add(cx_calib_t *c, const char *class_name, const cx_feat_t *f,
                 cx_err_t *err);

/* Adds n training rows given only as feature vectors (CX_FEAT_DIM floats
 * each, e.g. a training set's precomputed features): they join the
 * feature matrix (privacy, Mahalanobis, precision/recall, Frechet) but not
 * the envelopes or artifact thresholds, which need images. */
int cx_calib_add_rows(cx_calib_t *c, const char *class_name,
                      const float *rows, size_t n, cx_err_t *err);

/* Computes everything and writes <dir>/<name>.json and <dir>/<name>.feat.
 * source: where the training set came from (recorded). report, if not
 * NULL, gets a human-readable summary. pool may be NULL. */
int cx_calib_write(cx_calib_t *c, const cx_calib_opts_t *o, const char *dir,
                   const char *name, const char *source, cx_pool_t *pool,
                   cx_buf_t *report, cx_err_t *err);

#endif
