/* Test helpers for the kernels suites: synthetic mixture models built
 * through the internal API, exact log-densities from the component views,
 * the samplers' closed-form per-direction gain, and an independent
 * double-precision reference sampler written straight from the maths in
 * kernels/README.md (no subspace, no float). */
#ifndef CX_KERNELS_TESTMODEL_H
#define CX_KERNELS_TESTMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../cpu/model_impl.h"

typedef struct tm_spec {
    uint32_t width, height;
    size_t nclasses, ncomp;   /* components per class */
    uint32_t rank;
    double sep;               /* per-pixel sd of the mean offsets */
    double var0;              /* variance of basis direction 0; i-th is
                                 var0 / (1 + i) */
    double s2;
    const double *weights;    /* nclasses x ncomp, NULL: equal */
    const double *priors;     /* nclasses, NULL: equal */
    uint64_t seed;
} tm_spec_t;

/* Builds the model (aborts the test on failure). */
cx_model_t *tm_model(const tm_spec_t *s);

/* log N(x; mu, C) of one component (x of D doubles), up to the shared
 * -D/2 log 2 pi, and its coordinates along the basis (may be NULL). */
double tm_comp_logpdf(const cx_model_t *m, const cx_component_view_t *v,
                      const double *x, double *coords);

/* Along a direction of variance e, one step of the sampler multiplies the
 * deviation from the (scaled) mean by gain(step) and, for stochastic DDIM,
 * adds noise of variance noise(step). Over the whole run: total gain and
 * final variance from an initial deviation variance b0^2. */
typedef struct tm_gain {
    double gain;   /* product of the per-step gains */
    double var;    /* variance of the final deviation */
    double b0;     /* initial noise scale */
    double a0;     /* initial signal scale */
} tm_gain_t;
void tm_direction_gain(const cx_sample_params_t *p, double e, tm_gain_t *g);

/* The reference sampler: the same image cx_generate_float computes, in
 * double, from the views only. out: D doubles. */
void tm_reference_sample(const cx_model_t *m, size_t cls,
                         const cx_sample_params_t *p, uint64_t seed,
                         uint32_t index, double *out);

#endif
