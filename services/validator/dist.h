/* cx_dist: the distributional-alignment statistics of libcxgates, pure
 * computation on small dense matrices (row-major doubles).
 *
 * - Mahalanobis distance of a feature vector to a class: the class's mean
 *   and the Cholesky factor of its ridge-regularised covariance
 *   (Sigma + lambda I, lambda = ridge * trace(Sigma) / d), so the distance
 *   stays finite along directions the training set never varied in and
 *   still grows fast there.
 * - Frechet distance between two Gaussians (the FID formula)
 *   |m1 - m2|^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2), by symmetric
 *   eigendecompositions (cyclic Jacobi), on a low-dimensional projection.
 * - k-NN precision and recall (Kynkaenniemi et al., 2019): a sample is
 *   inside the training manifold when it lies within the k-th nearest-
 *   neighbour radius of some reference (training) point, and a reference
 *   point is covered when a sample lies within the reference point's own
 *   radius (the coverage form of recall, Naeem et al., 2020: it adds up
 *   exactly over batches, as a job-level figure must). */
#ifndef CX_VALIDATOR_DIST_H
#define CX_VALIDATOR_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"

/* In-place Cholesky factorisation of the symmetric n x n matrix a (lower
 * triangle used and overwritten with L; the upper triangle is zeroed).
 * Returns -1 if a is not positive definite. */
int cx_dist_cholesky(double *a, size_t n);

/* sqrt(x^T A^-1 x) for A = L L^T, x of n values (tmp: n doubles). */
double cx_dist_chol_norm(const double *l, size_t n, const double *x,
                         double *tmp);

/* Eigen-decomposition of the symmetric n x n matrix a (destroyed):
 * eigenvalues into w in descending order, eigenvector i into row i of v.
 * Returns -1 when out of memory. */
int cx_dist_eigsym(double *a, size_t n, double *w, double *v);

/* Mean and covariance (divisor count - 1, or 1 when count < 2) of count
 * vectors of n doubles, row i at x + i*stride. cov is n x n. */
void cx_dist_meancov(const double *x, size_t count, size_t stride, size_t n,
                     double *mean, double *cov);

/* The Frechet distance between N(m1, c1) and N(m2, c2), n dimensions
 * (n <= 64). Returns -1 with err when out of memory. */
int cx_dist_frechet(const double *m1, const double *c1, const double *m2,
                    const double *c2, size_t n, double *out, cx_err_t *err);

/* Sufficient statistics of a sample in n dimensions (n <= 64), additive
 * over batches: count, sums, and the upper triangle of sum x x^T (row-
 * major, n (n + 1) / 2 values). */
typedef struct cx_dist_acc {
    double count;
    double sum[64];
    double sxx[64 * 65 / 2];
} cx_dist_acc_t;
void cx_dist_acc_add(cx_dist_acc_t *a, const double *x, size_t n);
/* dst += src (both in n dimensions). */
void cx_dist_acc_merge(cx_dist_acc_t *dst, const cx_dist_acc_t *src,
                       size_t n);
/* Mean and covariance (divisor count - 1) of the accumulated sample. */
void cx_dist_acc_meancov(const cx_dist_acc_t *a, size_t n, double *mean,
                         double *cov);
static inline size_t cx_dist_acc_nvalues(size_t n) {
    return 1 + n + n * (n + 1) / 2;
}

/* k-NN radii: for each of m points (dim doubles at x + i*stride) the
 * distance to its k-th nearest other point (k >= 1; +inf when m <= k).
 * O(m^2 dim). Returns -1 when out of memory. */
int cx_dist_knn_radii(const double *x, size_t m, size_t stride, size_t dim,
                      unsigned k, double *radius, cx_err_t *err);

/* For one sample s: whether it lies in the reference manifold (within
 * radius[j] of some reference j), and which references it covers (bit j of
 * covered set when within radius[j]; covered may be NULL). */
int cx_dist_pr_sample(const double *s, const double *ref, size_t nref,
                      size_t dim, const double *radius, uint8_t *covered);

#endif
