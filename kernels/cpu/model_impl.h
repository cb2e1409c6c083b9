/* Internal layout of the reference model, shared by model.c, sampler.c and
 * the unit tests (which check the sampler's statistics against it). Not a
 * public interface: the public one is cascade/gen.h. */
#ifndef CASCADE_KERNELS_MODEL_IMPL_H
#define CASCADE_KERNELS_MODEL_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/gen.h"

#define CX__MAX_CLASSES 4
#define CX__MAX_RANK 16

/* All classes share one orthonormal basis Q (rank r) and one residual
 * variance s2; class k has its own mean mu_k and its own covariance inside
 * span(Q), diagonalised as V_k diag(lam_k) V_k^T. So class k's covariance is
 * C_k = U_k diag(lam_k) U_k^T + s2 I with U_k = Q V_k (orthonormal D x r).
 * Sharing Q means one pass over memory projects x onto every class's basis
 * at once, which is what keeps guidance (a mixture over all classes) as
 * cheap as a single class. */
struct cx_model {
    uint32_t width, height;
    size_t npix;                  /* D = width * height */
    size_t nclasses;              /* K */
    size_t rank;                  /* r */
    const char *const *names;     /* K static strings */
    double s2;                    /* residual variance (pixel units^2) */
    float *q;                     /* r rows of D: the shared basis */
    float *mu;                    /* K rows of D: class means */
    double qmu[CX__MAX_CLASSES][CX__MAX_RANK]; /* q_j . mu_k (float data) */
    double mumu[CX__MAX_CLASSES];              /* |mu_k|^2 */
    double v[CX__MAX_CLASSES][CX__MAX_RANK * CX__MAX_RANK]; /* V_k, col-major:
                                                 column i = eigenvector i */
    double lam[CX__MAX_CLASSES][CX__MAX_RANK]; /* eigenvalues, >= 0 */
};

/* The discrete VP schedule used by DDIM (cosine, T steps): alpha-bar at
 * timestep t in [0, T). */
#define CX__DDIM_T 1000
double cx__ddim_alphabar(uint32_t t);
/* The DDIM timestep visited at step i of n (T-1 down to 0). */
uint32_t cx__ddim_timestep(uint32_t i, uint32_t n);
/* Karras et al. sigma at step i of n (sigma_n = 0). */
double cx__karras_sigma(uint32_t i, uint32_t n);
#define CX__SIGMA_MAX 80.0
#define CX__SIGMA_MIN 0.002
#define CX__KARRAS_RHO 7.0

/* Symmetric eigen-decomposition (cyclic Jacobi) of the n x n row-major
 * matrix a (destroyed): eigenvalues into w, eigenvectors as columns of
 * v (col-major, n*n). Sorted by decreasing eigenvalue. */
void cx__sym_eigen(size_t n, double *a, double *w, double *v);

#endif
