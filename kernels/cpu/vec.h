/* Vector kernels shared by the sampler, the model build and the fitter.
 *
 * Every reduction has one fixed summation order: 16 float lanes (element i
 * goes to lane i % 16), the lanes then added in order into a double. The
 * kernels are compiled for AVX-512, AVX2 and baseline x86-64 (picked at load
 * time) or plain C elsewhere; the lane-wise arithmetic is the same IEEE
 * single-precision operations in each (no FMA: -ffp-contract=off), so the
 * bytes do not depend on the machine's vector width. Blocked variants
 * (4 rows at once) perform per row exactly the operations of the 1-row
 * variant, in the same order, so blocking never changes a result. */
#ifndef CASCADE_KERNELS_VEC_H
#define CASCADE_KERNELS_VEC_H

#include <stddef.h>

#define CX__LANES 16

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && !defined(CX_NO_CLONES)
#define CX__CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", \
                                 "default")))
#else
#define CX__CLONES
#endif

/* sum_i a[i] b[i] in the fixed lane order */
double cx__dot(const float *a, const float *b, size_t n);
/* out[k] = cx__dot(r[k], x, n) for k < 4 */
void cx__dot4(const float *const r[4], const float *x, size_t n,
              double out[4]);
/* cx__dot4 of the same rows against two vectors x and y at once */
void cx__dot4x2(const float *const r[4], const float *x, const float *y,
                size_t n, double ox[4], double oy[4]);
/* sum_i a[i] b[i] accumulated in double (8 double lanes, then in order):
 * for Gram matrices, where float lanes would lose too much */
double cx__dotd(const float *a, const float *b, size_t n);
/* y[i] += c * r[i] */
void cx__axpy(float *y, float c, const float *r, size_t n);
/* y[i] = (((y[i] + c0 r0[i]) + c1 r1[i]) + c2 r2[i]) + c3 r3[i]: the same
 * bytes as four cx__axpy calls */
void cx__axpy4(float *y, const float c[4], const float *const r[4],
               size_t n);
/* y[i] += c * x[i] in double */
void cx__axpyd(double *y, double c, const float *x, size_t n);
/* y[i] = c * x[i] */
void cx__scale(float *y, float c, const float *x, size_t n);

#endif
