/* Generation: a diffusion sampler over a class-conditional low-rank Gaussian
 * mixture image model whose denoiser is exact (closed form), CPU
 * implementation (the twin of kernels/cuda). kernels/README.md has the maths.
 *
 * A model has classes; each class is a mixture of components, each a mean
 * image, an orthonormal basis of r directions with their variances, and an
 * isotropic residual variance. Checkpoint "ref-cxr-v0" is the built-in
 * reference (one component per class around a procedural radiograph-like
 * phantom, built at any resolution; classes normal, effusion, nodule,
 * cardiomegaly); others are fitted (tools/cxfit) and loaded from .cxck
 * files. */
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

/* Checkpoints. The built-in "ref-cxr-v0" is built procedurally at any size
 * and needs no file; any other name N is the file <dir>/N.cxck (format in
 * docs/CHECKPOINT.md), N made of [A-Za-z0-9._-], not starting with '.'.
 * Where a call takes `dir`, NULL means $CASCADE_CHECKPOINT_DIR (unset: no
 * file checkpoints). */
#define CX_CHECKPOINT_BUILTIN "ref-cxr-v0"
#define CX_CHECKPOINT_EXT ".cxck"

/* 1 if `checkpoint` names a model that can be loaded from `dir` (or is
 * built in) and it has the class; 0 otherwise. Cheap: for a file only the
 * header is read and checked (magic, version, header checksum). Used to
 * validate job specs. */
int cx_checkpoint_has_class_in(const char *dir, const char *checkpoint,
                               const char *class_name);
/* cx_checkpoint_has_class_in(NULL, ...) */
int cx_checkpoint_has_class(const char *checkpoint, const char *class_name);

/* What a checkpoint needs, from its header alone (no data read). */
typedef struct cx_checkpoint_info {
    uint32_t width, height;   /* the file's; the requested size if built in */
    uint32_t nclasses, ncomponents;
    uint64_t rows;            /* sum over components of 1 + rank */
    uint64_t file_bytes;      /* 0 if built in */
    uint64_t memory_bytes;    /* upper bound of cx_model_memory_bytes */
} cx_checkpoint_info_t;
int cx_checkpoint_probe(const char *dir, const char *name, uint32_t width,
                        uint32_t height, cx_checkpoint_info_t *info,
                        cx_err_t *err);

/* Opens checkpoint `name` at width x height (see above). A file checkpoint
 * must have exactly that size (0 x 0: take the file's). Errors: CX_ENOENT
 * unknown name or missing file; CX_EINVAL bad name or wrong dimensions;
 * CX_EMODEL corrupt, truncated, wrong version or invalid content (the
 * message names the file and what is wrong); CX_EIO read failure;
 * CX_ENOMEM. The model is immutable and thread-safe once open. */
cx_model_t *cx_model_open_named(const char *dir, const char *name,
                                uint32_t width, uint32_t height,
                                cx_err_t *err);
/* Loads a .cxck file by path, at its own size. */
cx_model_t *cx_model_open_file(const char *path, cx_err_t *err);
/* cx_model_open_named(NULL, checkpoint, width, height, err) */
cx_model_t *cx_model_open(const char *checkpoint, uint32_t width,
                          uint32_t height, cx_err_t *err);
/* Writes m as a .cxck file (through path.tmp and a rename, so readers never
 * see half a file). */
int cx_model_save(const cx_model_t *m, const char *path, cx_err_t *err);
const char *cx_model_name(const cx_model_t *m);
void cx_model_destroy(cx_model_t *m); /* NULL is fine */
size_t cx_model_class_count(const cx_model_t *m);
const char *cx_model_class_name(const cx_model_t *m, size_t i);
int cx_model_class_index(const cx_model_t *m, const char *name); /* -1 */
size_t cx_model_memory_bytes(const cx_model_t *m);
uint32_t cx_model_width(const cx_model_t *m);
uint32_t cx_model_height(const cx_model_t *m);

/* Read-only view of one mixture component: x0 ~ N(mean, basis^T diag(var)
 * basis + resid_var I). Class c's model is the mixture of its components
 * with `weight`; the unconditional model is the mixture over all classes'
 * components with weight cx_model_class_prior(c) * weight. */
typedef struct cx_component_view {
    double weight;      /* mixture weight within its class; sums to 1 */
    uint32_t rank;      /* r >= 0 */
    const float *mean;  /* D = width*height floats, pixel units [0,1] */
    const float *basis; /* r rows of D floats, orthonormal rows */
    const float *var;   /* r variances along the rows, >= 0 */
    double resid_var;   /* isotropic residual variance s2 > 0 */
} cx_component_view_t;

/* Components of class `class_idx`; *n set to their count. The array and
 * everything it points to are owned by the model and live as long as it.
 * Returns 0, or -1 with err for a bad class. */
int cx_model_components(const cx_model_t *m, size_t class_idx,
                        const cx_component_view_t **out, size_t *n,
                        cx_err_t *err);
/* Prior probability of class class_idx in the unconditional model (the
 * priors sum to 1); 0 for a bad class. */
double cx_model_class_prior(const cx_model_t *m, size_t class_idx);

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

/* cx_generate for `count` samples, indices first_index .. first_index +
 * count - 1, into out (count images of width*height, in index order), on
 * `threads` threads (0: one per online CPU; the caller's thread is one of
 * them). Image i is byte-identical to what cx_generate writes for index
 * first_index + i: batching and threads never change a result, they let the
 * model's weights stream from memory once per group of images. timing may
 * be NULL; else the phases' thread-seconds are added. */
int cx_generate_batch(const cx_model_t *m, size_t class_idx,
                      const cx_sample_params_t *p, uint64_t seed,
                      uint32_t first_index, uint32_t count, unsigned threads,
                      uint16_t *out, cx_gen_timing_t *timing, cx_err_t *err);

/* cx_generate without the quantisation: the sampler's final state, D
 * floats (nominally [0,1], not clamped), for comparisons between
 * implementations (CPU vs CUDA) and for gates that measure float output. */
int cx_generate_float(const cx_model_t *m, size_t class_idx,
                      const cx_sample_params_t *p, uint64_t seed,
                      uint32_t index, float *out, cx_err_t *err);

/* Philox4x32-10 counter-based generator (Salmon et al., SC'11). */
void cx_philox4x32(const uint32_t ctr[4], const uint32_t key[2],
                   uint32_t out[4]);
/* n standard normals for (seed, index, stream) starting at element offset
 * `first`: element i depends only on its coordinates, so any slice can be
 * regenerated alone. */
void cx_normals(uint64_t seed, uint32_t index, uint32_t stream,
                uint64_t first, size_t n, float *out);

#endif
