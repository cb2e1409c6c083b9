/* cx_knn: EXACT nearest-neighbour search over a fixed set of float vectors
 * (the privacy gate's training feature matrix).
 *
 * A missed neighbour would make a copy look safe, so the answer is exact:
 * the nearest vector by Euclidean distance computed in double, the lowest
 * index on ties -- the same answer as cx_knn_brute.
 *
 * How: queries are processed in tiles of 12 against panels of 16 training
 * vectors (stored transposed, so one 64-byte load feeds 12 FMAs). Pass 1
 * computes t = ||y||^2 - 2 q.y in single precision with a GEMM-style
 * register-blocked kernel (AVX-512 or AVX2 FMA, chosen at run time, or
 * portable C), keeping, per query, every vector whose approximate squared
 * distance is within 2E of the running minimum, where E is a rigorous
 * bound on the float error (Higham's gamma_{2D+8} over the norms, plus the
 * rounding of the query to float). Pass 2 recomputes those candidates'
 * distances in double and takes the minimum. The true nearest vector is
 * always among the candidates: its approximate distance is at most
 * E above its exact one, which is at most the exact distance of the
 * approximate minimum, which is at most E above that. Typically one to a
 * few candidates are verified per query.
 *
 * Blocking: the training set is walked in blocks of 2048 vectors (512 KiB
 * at dim 64, resident in L2) and each block is applied to a group of 4
 * query tiles before moving on, so training data are read from memory once
 * per 48 queries; groups run in parallel on a cx_pool. */
#ifndef CX_VALIDATOR_KNN_H
#define CX_VALIDATOR_KNN_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/pool.h"

typedef struct cx_knn cx_knn_t;

/* Indexes n vectors of dim floats (dim 1..1024), row i at rows + i*stride.
 * The data are copied (into the panel layout, about n*dim*4 bytes); rows
 * may be freed afterwards. Non-finite values are refused (CX_EINVAL). */
cx_knn_t *cx_knn_new(const float *rows, size_t n, unsigned dim,
                     size_t stride, cx_err_t *err);
void cx_knn_destroy(cx_knn_t *k); /* NULL is fine */
size_t cx_knn_size(const cx_knn_t *k);
unsigned cx_knn_dim(const cx_knn_t *k);
/* Row i of the index as stored (dim floats into out). */
void cx_knn_row(const cx_knn_t *k, size_t i, float *out);

typedef struct cx_knn_hit {
    double dist;         /* Euclidean distance, in double */
    int64_t index;       /* nearest row, lowest on ties; -1 when none */
    uint32_t candidates; /* rows verified in double for this query */
} cx_knn_hit_t;

/* The nearest indexed row of each of m queries (query i: dim doubles at
 * q + i*qstride). exclude, if not NULL, names per query one row to ignore
 * (or -1), for leave-one-out distances within the training set. pool may
 * be NULL (calling thread only). Returns 0, or -1 with CX_ENOMEM, or
 * CX_EINVAL for a non-finite query. */
int cx_knn_search(const cx_knn_t *k, const double *q, size_t m,
                  size_t qstride, const int64_t *exclude, cx_pool_t *pool,
                  cx_knn_hit_t *out, cx_err_t *err);

/* The same answer by brute force in double (for tests): every row's
 * sum_k (q[k] - y[k])^2 in k order, the smallest, lowest index on ties. */
cx_knn_hit_t cx_knn_brute(const cx_knn_t *k, const double *q,
                          int64_t exclude);

/* Instruction set of pass 1. AUTO: the best the CPU has. Process-wide;
 * for tests and benchmarks. Returns -1 when the CPU lacks it. */
typedef enum {
    CX_KNN_AUTO = 0,
    CX_KNN_PORTABLE,
    CX_KNN_AVX2,
    CX_KNN_AVX512
} cx_knn_isa_t;
int cx_knn_set_isa(cx_knn_isa_t isa);
cx_knn_isa_t cx_knn_get_isa(void); /* resolved: never AUTO */
const char *cx_knn_isa_name(cx_knn_isa_t isa);

#endif
