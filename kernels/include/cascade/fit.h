/* Fitting a checkpoint from training images (the library behind cxfit).
 *
 * Per class: k-means (k-means++ seeding, Lloyd iterations) splits the images
 * into K clusters; each cluster becomes one component: its mean, the top r
 * principal directions by randomised SVD (Halko, Martinsson & Tropp 2011:
 * Gaussian sketch, power iterations, Rayleigh-Ritz), and the probabilistic
 * PCA maximum-likelihood variances (Tipping & Bishop 1999): residual
 * variance s2 = the variance the r directions leave, spread over the other
 * D - r dimensions, and var_j = lambda_j - s2 along direction j. Component
 * weights are cluster sizes over the class size; class priors are class
 * sizes over the total. Deterministic for a given seed, whatever the thread
 * count. */
#ifndef CASCADE_FIT_H
#define CASCADE_FIT_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/gen.h"

typedef struct cx_fit_opts {
    uint32_t components;  /* K per class (fewer if a class has fewer images) */
    uint32_t rank;        /* r per component (at most cluster size - 1) */
    uint32_t kmeans_iters;/* Lloyd iterations at most (stops when stable) */
    uint32_t power_iters; /* randomised SVD power iterations */
    uint32_t oversample;  /* extra sketch dimensions */
    unsigned threads;     /* 0: one per online CPU */
    uint64_t seed;
} cx_fit_opts_t;

/* K 2, r 8, 25 Lloyd iterations, 2 power iterations, oversampling 8. */
void cx_fit_opts_default(cx_fit_opts_t *o);

typedef struct cx_fit cx_fit_t;

cx_fit_t *cx_fit_new(const char *name, uint32_t width, uint32_t height,
                     const cx_fit_opts_t *opts, cx_err_t *err);
void cx_fit_destroy(cx_fit_t *f); /* NULL is fine */

/* Fits class `class_name` from n images (n x width*height floats in [0,1],
 * row-major; not kept after the call) and keeps its components. Classes
 * are added one at a time, so only one class's images need be in memory. */
int cx_fit_class(cx_fit_t *f, const char *class_name, const float *x,
                 size_t n, cx_err_t *err);

/* The fitted model (validated, ready to sample or cx_model_save). The fit
 * can be destroyed afterwards. */
cx_model_t *cx_fit_finish(cx_fit_t *f, cx_err_t *err);

#endif
