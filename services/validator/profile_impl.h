/* Internal to libcxgates: the layout of a loaded profile, shared by
 * profile.c (load, scores) and calib.c (which builds one in memory to
 * calibrate its thresholds, then writes it). */
#ifndef CX_VALIDATOR_PROFILE_IMPL_H
#define CX_VALIDATOR_PROFILE_IMPL_H

#include "cascade/names.h"
#include "profile.h"

#define CX__FEAT_MAGIC "CXGFEAT1"
#define CX__FEAT_VERSION 1u
#define CX__FEAT_HEADER 32 /* bytes before the class table */

typedef struct cx__pclass {
    char name[CX_NAME_MAX + 1];
    size_t row0, nrows;
    double med[CX_PROFILE_NSTRUCT], sig[CX_PROFILE_NSTRUCT]; /* envelope */
    double mean[CX_FEAT_DIM]; /* standardised units */
    double *chol;             /* CX_FEAT_DIM^2: (Sigma + lambda I) = L L^T */
    double logdet;            /* log det (Sigma + lambda I) */
    size_t nref;
    double *ref;              /* nref x CX_FEAT_DIM, standardised */
    double *radius;           /* nref k-NN radii */
    double fd_mean[CX_PROFILE_FD_DIM];
    double fd_cov[CX_PROFILE_FD_DIM * CX_PROFILE_FD_DIM];
} cx__pclass_t;

struct cx_profile {
    char name[CX_NAME_MAX + 1];
    uint32_t width, height;
    int depth;
    cx_gate_limits_t limits;
    double smean[CX_FEAT_DIM], sstd[CX_FEAT_DIM]; /* standardisation */
    double ridge;            /* Mahalanobis ridge, relative to trace/d */
    unsigned pr_k;           /* k of the k-NN radii */
    size_t ref_per_class;
    double fd_basis[CX_PROFILE_FD_DIM * CX_FEAT_DIM];
    size_t nclasses;
    cx__pclass_t *cls;
    size_t nrows;
    float *rows;             /* nrows x CX_FEAT_DIM, class-grouped */
    cx_knn_t *knn;
};

/* An empty profile with nclasses classes (names and row ranges to be
 * filled) or NULL when out of memory. */
cx_profile_t *cx__profile_alloc(size_t nclasses);

/* Builds what the gates need from p->rows, the class ranges, the
 * standardisation, ridge, pr_k and ref_per_class: the knn index, per-class
 * Mahalanobis factors, references and radii, the projection and the
 * classes' Gaussians in it. */
int cx__profile_build(cx_profile_t *p, cx_err_t *err);

/* Standardised row i into z (CX_FEAT_DIM doubles). */
void cx__profile_z(const cx_profile_t *p, const float *row, double *z);

/* Mean and Cholesky factor of the ridge-regularised covariance of the
 * standardised rows [row0, row0 + n) except [skip0, skip1). chol:
 * CX_FEAT_DIM^2 doubles. */
int cx__profile_maha_fit(const cx_profile_t *p, size_t row0, size_t n,
                         size_t skip0, size_t skip1, double *mean,
                         double *chol, cx_err_t *err);

/* log det of L L^T for a CX_FEAT_DIM Cholesky factor. */
double cx__profile_logdet(const double *chol);

/* The class log-likelihood ratio of standardised z claimed as class c
 * whose Gaussian is (own_mean, own_chol, own_logdet) -- the class's own,
 * or a cross-validation fit -- against every other class of p. *best: the
 * most likely other class. */
double cx__profile_class_llr(const cx_profile_t *p, size_t c, const double *z,
                             const double *own_mean, const double *own_chol,
                             double own_logdet, int *best);

/* The features file's bytes for p (malloc'd, *len set). */
uint8_t *cx__profile_feat_bytes(const cx_profile_t *p, size_t *len,
                                cx_err_t *err);

#endif
