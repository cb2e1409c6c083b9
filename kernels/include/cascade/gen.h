/* Generation: a diffusion sampler over a class-conditional Gaussian image
 * model whose denoiser is exact (closed form), CPU implementation.
 *
 * Checkpoint "ref-cxr-v0" is the built-in reference: per class a mean image
 * (procedural radiograph-like phantom: body outline, lung fields, ribs, heart
 * shadow, class effects), an orthonormal low-rank basis of smooth anatomical
 * variations with their variances, and an isotropic residual variance, built
 * deterministically at the requested resolution. Classes: normal, effusion,
 * nodule, cardiomegaly. */
#ifndef CASCADE_GEN_H
#define CASCADE_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"

typedef struct cx_model cx_model_t;

enum { CX_SAMPLER_DDIM = 1, CX_SAMPLER_EULER = 2, CX_SAMPLER_HEUN = 3 };

typedef struct cx_sample_params {
    int sampler;           /* CX_SAMPLER_* */
    uint32_t steps;        /* >= 1 */
    double guidance_scale; /* classifier-free guidance; 1 = conditional only */
    double eta;            /* DDIM stochasticity, 0 = deterministic */
    int bit_depth;         /* 8 or 16: quantisation of the output */
} cx_sample_params_t;

/* 1 if `checkpoint` names a model the worker can load and it has the class;
 * 0 otherwise. Cheap (no model is built): used to validate job specs. */
int cx_checkpoint_has_class(const char *checkpoint, const char *class_name);

/* Builds or loads the model at width x height. Thread-safe to use from many
 * threads at once once built. */
cx_model_t *cx_model_open(const char *checkpoint, uint32_t width,
                          uint32_t height, cx_err_t *err);
void cx_model_destroy(cx_model_t *m); /* NULL is fine */
size_t cx_model_class_count(const cx_model_t *m);
const char *cx_model_class_name(const cx_model_t *m, size_t i);
int cx_model_class_index(const cx_model_t *m, const char *name); /* -1 */
size_t cx_model_memory_bytes(const cx_model_t *m);
uint32_t cx_model_width(const cx_model_t *m);
uint32_t cx_model_height(const cx_model_t *m);

/* Generates sample `index` of a unit with `seed` for class class_idx into
 * out (width*height pixels, row-major, quantised to bit_depth). Output is a
 * pure function of (model, class, params, seed, index): identical bytes on
 * every run and thread count. */
int cx_generate(const cx_model_t *m, size_t class_idx,
                const cx_sample_params_t *p, uint64_t seed, uint32_t index,
                uint16_t *out, cx_err_t *err);

/* Where cx_generate_timed's time went, accumulated (+=) over calls:
 * denoise = projections onto the basis and class means plus the low-rank
 * reconstruction of E[x0 | x]; update = the sampler's step arithmetic and
 * its noise (initial and DDIM eta); quantise = clamping and rounding. */
typedef struct cx_gen_timing {
    double denoise_s;
    double update_s;
    double quantise_s;
    uint64_t evals; /* denoiser evaluations */
} cx_gen_timing_t;

/* cx_generate that also adds its phase timings into *timing (not NULL).
 * Same output bytes as cx_generate. */
int cx_generate_timed(const cx_model_t *m, size_t class_idx,
                      const cx_sample_params_t *p, uint64_t seed,
                      uint32_t index, uint16_t *out, cx_gen_timing_t *timing,
                      cx_err_t *err);

/* Philox4x32-10 counter-based generator (Salmon et al., SC'11). */
void cx_philox4x32(const uint32_t ctr[4], const uint32_t key[2],
                   uint32_t out[4]);
/* n standard normals for (seed, index, stream) starting at element offset
 * `first`: element i depends only on its coordinates, so any slice can be
 * regenerated alone. */
void cx_normals(uint64_t seed, uint32_t index, uint32_t stream,
                uint64_t first, size_t n, float *out);

#endif
