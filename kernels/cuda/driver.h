/* The batched sampler's host side: model upload and the launch sequence of
 * one batch, written against a table of device operations so that the
 * same sequence drives the CUDA kernels (gen_cuda.cu) and the host
 * emulator of the tests (tests/test_cuda_emu.c).
 *
 * One denoiser evaluation of a batch of B images is five operations:
 *   sumsq    |x|^2 in chunk partials                       (kernel)
 *   gemm     W x, split-K into the same chunks: one strided-batched SGEMM
 *            (plus one for a short last chunk)              (cuBLAS)
 *   combine  responsibilities and the coefficients e, g     (kernel)
 *   gemm     W^T e                                          (cuBLAS)
 *   update   E = g x + W^T e, the sampler's step, its noise (kernel)
 * and a batch is init (gemm + update), steps x those, and quantise.
 * Batches always have the full width B (short ones padded), so an image's
 * bytes never depend on which other images shared its batch. */
#ifndef CASCADE_KERNELS_CUDA_DRIVER_H
#define CASCADE_KERNELS_CUDA_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/gen.h"
#include "gen_math.h"

#define CXG_CHUNK 4096u /* split-K chunk of the projection */

/* C = op(A) op(B) for `batch` matrices, column-major (BLAS semantics,
 * alpha 1, beta 0); X_i = X + i * sX. */
typedef struct cxg_gemm {
    int ta, tb; /* 1: transposed */
    int m, n, k;
    const float *a;
    int lda;
    long long sa;
    const float *b;
    int ldb;
    long long sb;
    float *c;
    int ldc;
    long long sc;
    int batch;
} cxg_gemm_t;

/* Device operations; each returns 0 or -1 (error() then says why). */
typedef struct cxg_ops {
    void *ctx;
    int (*alloc)(void *ctx, void **p, size_t bytes);
    void (*release)(void *ctx, void *p);
    int (*put)(void *ctx, void *dst, const void *src, size_t bytes);
    int (*get)(void *ctx, void *dst, const void *src, size_t bytes);
    int (*gemm)(void *ctx, const cxg_gemm_t *g);
    /* xx[b * nchunk + q] = sum of x_b^2 over chunk q, b < B */
    int (*sumsq)(void *ctx, const float *x, uint32_t B, uint32_t npix,
                 uint32_t nchunk, double *xx);
    int (*combine)(void *ctx, const cxg_eval_t *e);
    int (*update)(void *ctx, const cxg_upd_t *u, uint32_t B);
    int (*quantise)(void *ctx, const float *x, size_t n, float maxv,
                    uint16_t *out);
    const char *(*error)(void *ctx);
} cxg_ops_t;

typedef struct cxg_gen cxg_gen_t;

/* Device bytes cxg_new would allocate for a model with m subspace rows
 * (an upper bound is fine), ncomp components and rank sum rsum. */
uint64_t cxg_bytes(uint32_t npix, uint32_t m, uint32_t ncomp, uint32_t rsum,
                   uint32_t nclasses, uint32_t batch);

/* Uploads `model` through ops (which it keeps) for batches of `batch`
 * images. The model may be destroyed afterwards. NULL with err. */
cxg_gen_t *cxg_new(const cxg_ops_t *ops, const cx_model_t *model,
                   uint32_t batch, cx_err_t *err);
void cxg_destroy(cxg_gen_t *g); /* NULL is fine; frees through ops */
uint64_t cxg_memory_bytes(const cxg_gen_t *g);
uint32_t cxg_batch(const cxg_gen_t *g);
uint32_t cxg_npix(const cxg_gen_t *g);

/* n images, image i from (seeds[i], indices[i]), into out (n x npix). */
int cxg_generate(cxg_gen_t *g, size_t class_idx, const cx_sample_params_t *p,
                 const uint64_t *seeds, const uint32_t *indices, size_t n,
                 uint16_t *out, cx_err_t *err);

/* Device bytes read and written by one batch of `p` (for bandwidth
 * figures): an estimate from the operations' traffic. */
double cxg_batch_traffic(const cxg_gen_t *g, size_t class_idx,
                         const cx_sample_params_t *p);

#endif
