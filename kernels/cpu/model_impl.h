/* Internal layout of a model, shared by the kernels' sources and the unit
 * tests. Not a public interface: the public one is cascade/gen.h (and the
 * component views there).
 *
 * A model is a class-conditional mixture of low-rank Gaussians: component k
 * of class c is N(mean_k, U_k^T diag(var_k) U_k + s2_k I). For sampling the
 * model is also held in "subspace form": W (m x D, orthonormal rows) spans
 * every mean and basis row of every component, and each component is stored
 * in W's coordinates (alpha_k = W mean_k, B_k = U_k W^T). Then one pass over
 * W projects x for all components at once and one pass rebuilds E[x0 | x],
 * whatever the number of components (m is at most the sum of (1 + r_k) and
 * smaller where components share directions, as ref-cxr-v0's do). W's rows
 * are ordered class by class: class c's components live in rows
 * [0, mdim[c]), so a conditional-only evaluation needs only those (or,
 * for fitted checkpoints, the class's own local basis, see wc). */
#ifndef CASCADE_KERNELS_MODEL_IMPL_H
#define CASCADE_KERNELS_MODEL_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/gen.h"

#define CX__NAME_MAX 64       /* checkpoint name, with its NUL */
#define CX__CLASS_NAME_MAX 32 /* class name, with its NUL */
#define CX__MAX_CLASSES 256
#define CX__MAX_COMPONENTS 4096 /* all classes together */
#define CX__MAX_RANK 1024       /* per component */
#define CX__MAX_ROWS 8192       /* sum over components of 1 + rank */
#define CX__MIN_SIDE 16u
#define CX__MAX_SIDE 4096u

typedef struct cx__comp {
    size_t cls;
    uint32_t rank;
    double weight;  /* within its class */
    double s2;      /* residual variance */
    float *mean;    /* D */
    float *basis;   /* rank x D */
    float *var;     /* rank */
    /* subspace form (cx__model_finish) */
    double logw;     /* log weight */
    double logw_all; /* log(prior of its class * weight) */
    double *alpha;   /* m: W mean (0 beyond mdim[cls]) */
    double *b;       /* rank x m: U W^T, row-major */
    double *alpha_l; /* cdim[cls]: Wc mean (when wc) */
    double *b_l;     /* rank x cdim[cls]: U Wc^T (when wc) */
} cx__comp_t;

struct cx_model {
    char name[CX__NAME_MAX];
    uint32_t width, height;
    size_t npix; /* D */
    size_t nclasses;
    char (*names)[CX__CLASS_NAME_MAX];
    double *prior;     /* nclasses, sums to 1 */
    size_t ncomp;
    size_t *first;     /* nclasses + 1: class c owns [first[c], first[c+1]) */
    cx__comp_t *comp;
    cx_component_view_t *views; /* ncomp, class-ordered like comp */
    float *data;       /* every component's section (see cx__section_*) */
    size_t data_bytes;
    size_t m;          /* rows of W */
    size_t *mdim;      /* nclasses */
    float *w;          /* m x D */
    double *coef;      /* alpha and b storage */
    /* Class-local bases, for conditional-only evaluations (w = 1), which
     * need only the class's own span: W's prefix for the last classes of a
     * fitted checkpoint is several times that. Built when local_ok and
     * cx__model_wants_local (decided on the row counts alone, so a header
     * tells the memory a model needs); NULL wc: use the prefix. Class c's
     * orthonormal basis is Wc rows [coff[c], coff[c] + cdim[c])
     * (orthogonal within the class only); components carry alpha_l, b_l
     * in it. */
    int local_ok;      /* 0: never (ref-cxr-v0: its prefixes are short) */
    float *wc;         /* wc_rows x D */
    size_t wc_rows;
    size_t *cdim, *coff; /* nclasses, with wc */
    double *coef_l;    /* alpha_l and b_l storage */
};

/* Whether class-local bases pay: the classes' prefixes of W, bounded by
 * their cumulative row counts, add up to more than 1.5 times all rows
 * (three or more classes of similar size). class_rows[c] = sum over the
 * class's components of 1 + rank. */
int cx__model_wants_local(size_t nclasses, const size_t *class_rows);

/* A component's data section: mean (D floats), basis (r x D), var (r),
 * zero-padded to a multiple of 64 bytes. The same layout on disk (.cxck) and
 * in memory, so a checkpoint's data region is read straight into place. */
size_t cx__section_bytes(size_t npix, uint32_t rank);

/* Allocates a model with `ncomp` components of the given classes (class
 * ascending) and ranks, zeroed data, names empty, priors equal, weights
 * equal. The caller fills names, priors, weights, s2 and the data, then
 * calls cx__model_finish. NULL with err on bad sizes or no memory. */
cx_model_t *cx__model_alloc(const char *name, uint32_t width, uint32_t height,
                            size_t nclasses, size_t ncomp,
                            const uint32_t *comp_class,
                            const uint32_t *comp_rank, cx_err_t *err);
/* Validates the filled model (finite data, weights and priors summing to 1,
 * s2 > 0, var >= 0, orthonormal bases, unique class names) and builds the
 * subspace form. -1 with CX_EMODEL on bad content. */
int cx__model_finish(cx_model_t *m, cx_err_t *err);

/* The built-in ref-cxr-v0 at width x height. */
cx_model_t *cx__refmodel_build(uint32_t width, uint32_t height,
                               cx_err_t *err);
#define CX__REF_V0 "ref-cxr-v0"
int cx__refmodel_has_class(const char *class_name);

/* Runs the sampler for one image from the given state x (D floats; the
 * state the schedule's first step expects: a_0 x0 + b_0 eps) instead of
 * the seeded initial state, and leaves the final, unquantised state in x.
 * Stochastic DDIM's noise still comes from (seed, index). The sampler is
 * then a map of x alone, which the tests probe. */
int cx__sample_from(const cx_model_t *m, size_t class_idx,
                    const cx_sample_params_t *p, uint64_t seed,
                    uint32_t index, float *x, cx_err_t *err);

/* The discrete VP schedule used by DDIM (cosine, T steps): alpha-bar at
 * timestep t in [0, T). */
#define CX__DDIM_T 1000
double cx__ddim_alphabar(uint32_t t);
/* The DDIM timestep visited at step i of n (T-1 down to 0). */
uint32_t cx__ddim_timestep(uint32_t i, uint32_t n);
/* Validates sampling parameters for a model of nclasses classes (class,
 * sampler, steps, guidance, eta, bit depth): 0, or -1 with err. Shared by
 * the CPU sampler and the CUDA driver so both refuse the same input. */
int cx__check_sample_params(size_t nclasses, size_t class_idx,
                            const cx_sample_params_t *p, cx_err_t *err);
/* Karras et al. sigma at step i of n (sigma_n = 0). */
double cx__karras_sigma(uint32_t i, uint32_t n);
#define CX__SIGMA_MAX 80.0
#define CX__SIGMA_MIN 0.002
#define CX__KARRAS_RHO 7.0

/* Symmetric eigen-decomposition (cyclic Jacobi) of the n x n row-major
 * matrix a (destroyed): eigenvalues into w, eigenvectors as rows of v
 * (v[i * n + j] = component j of eigenvector i). Sorted by decreasing
 * eigenvalue. */
void cx__sym_eigen(size_t n, double *a, double *w, double *v);

#endif
