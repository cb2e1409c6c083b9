// The CUDA generator: device operations for driver.c (kernels and cuBLAS
// on one stream) and the public API of cascade/gen_cuda.h.
//
// Per denoiser evaluation of a batch the stream sees: k_sumsq, one
// strided-batched SGEMM (the split-K projection; a second for a short last
// chunk), k_combine, one SGEMM (reconstruction), k_update. The arithmetic
// inside the kernels is gen_math.h's, shared with the host emulator test.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "cascade/err.h"
#include "cascade/gen.h"
}
#include "gen_math.h"
extern "C" {
#include "driver.h"
#include "cascade/gen_cuda.h"
}

// cuBLAS workspace and handle state on the device, beyond our buffers.
#define CX_CUDA_OVERHEAD (64ull << 20)
#define SUMSQ_T 256
#define UPDATE_T 256

struct cx_cuda_gen {
    int dev;
    cudaStream_t st;
    cublasHandle_t blas;
    char err[256];
    cxg_gen_t *g;
};

// ---- kernels ---------------------------------------------------------------

// xx[b * nchunk + q] = sum of x_b^2 over chunk q: float per thread, the
// block's partials added in double in a fixed tree.
__global__ void k_sumsq(const float *x, uint32_t npix, uint32_t nchunk,
                        double *xx)
{
    __shared__ double red[SUMSQ_T];
    uint32_t q = blockIdx.x, b = blockIdx.y, t = threadIdx.x;
    size_t lo = (size_t)q * CXG_CHUNK, hi = lo + CXG_CHUNK;
    hi = hi < npix ? hi : npix;
    const float *xb = x + (size_t)b * npix;
    float s = 0.0f;
    for (size_t i = lo + t; i < hi; i += SUMSQ_T)
        s += xb[i] * xb[i];
    red[t] = s;
    __syncthreads();
    for (uint32_t k = SUMSQ_T / 2; k > 0; k >>= 1) {
        if (t < k)
            red[t] += red[t + k];
        __syncthreads();
    }
    if (t == 0)
        xx[(size_t)b * nchunk + q] = red[0];
}

// One block per image: the six phases of gen_math.h's combine.
__global__ void k_combine(cxg_eval_t E)
{
    __shared__ cxg_smem_t sh;
    uint32_t b = blockIdx.x, t = threadIdx.x;
    cxg_combine_sum(&E, b, t, &sh);
    __syncthreads();
    if (t == 0)
        cxg_combine_perp(&E, b, &sh);
    __syncthreads();
    cxg_combine_ll(&E, b, t, &sh);
    __syncthreads();
    if (t == 0)
        cxg_combine_resp(&E, b, &sh);
    __syncthreads();
    cxg_combine_coef(&E, b, t);
    __syncthreads();
    cxg_combine_e(&E, b, t, &sh);
}

// One thread per group of four pixels (one Philox block) of image y.
__global__ void k_update(cxg_upd_t u)
{
    uint64_t q = (uint64_t)blockIdx.x * UPDATE_T + threadIdx.x;
    if (4 * q < u.npix)
        cxg_update4(&u, blockIdx.y, q);
}

__global__ void k_quantise(const float *x, size_t n, float maxv,
                           uint16_t *out)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = cxg_quantise1(x[i], maxv);
}

// ---- device operations -----------------------------------------------------

static int cu_fail(cx_cuda_gen_t *c, const char *what, cudaError_t e)
{
    snprintf(c->err, sizeof c->err, "%s: %s", what, cudaGetErrorString(e));
    return -1;
}

static int launched(cx_cuda_gen_t *c, const char *what)
{
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? 0 : cu_fail(c, what, e);
}

static int op_alloc(void *ctx, void **p, size_t n)
{
    cx_cuda_gen_t *c = (cx_cuda_gen_t *)ctx;
    cudaError_t e = cudaMalloc(p, n);
    return e == cudaSuccess ? 0 : cu_fail(c, "cudaMalloc", e);
}

static void op_release(void *ctx, void *p)
{
    (void)ctx;
    cudaFree(p);
}

static int op_put(void *ctx, void *dst, const void *src, size_t n)
{
    cx_cuda_gen_t *c = (cx_cuda_gen_t *)ctx;
    cudaError_t e = cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice,
                                    c->st);
    return e == cudaSuccess ? 0 : cu_fail(c, "copy to device", e);
}

// Blocks until the copy (and so everything before it) is done.
static int op_get(void *ctx, void *dst, const void *src, size_t n)
{
    cx_cuda_gen_t *c = (cx_cuda_gen_t *)ctx;
    cudaError_t e = cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost,
                                    c->st);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(c->st);
    return e == cudaSuccess ? 0 : cu_fail(c, "copy from device", e);
}

static int op_gemm(void *ctx, const cxg_gemm_t *g)
{
    cx_cuda_gen_t *c = (cx_cuda_gen_t *)ctx;
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t s = cublasSgemmStridedBatched(
        c->blas, g->ta ? CUBLAS_OP_T : CUBLAS_OP_N,
        g->tb ? CUBLAS_OP_T : CUBLAS_OP_N, g->m, g->n, g->k, &one, g->a,
        g->lda, g->sa, g->b, g->ldb, g->sb, &zero, g->c, g->ldc, g->sc,
        g->batch);
    if (s != CUBLAS_STATUS_SUCCESS) {
        snprintf(c->err, sizeof c->err, "cublasSgemmStridedBatched: %s",
                 cublasGetStatusString(s));
        return -1;
    }
    return 0;
}

static int op_sumsq(void *ctx, const float *x, uint32_t B, uint32_t npix,
                    uint32_t nchunk, double *xx)
{
    cx_cuda_gen_t *c = (cx_cuda_gen_t *)ctx;
    k_sumsq<<<dim3(nchunk, B), SUMSQ_T, 0, c->st>>>(x, npix, nchunk, xx);
    return launched(c, "k_sumsq");
}

static int op_combine(void *ctx, const cxg_eval_t *E)
{
    cx_cuda_gen_t *c = (cx_cuda_gen_t *)ctx;
    k_combine<<<E->B, CXG_COMBINE_T, 0, c->st>>>(*E);
    return launched(c, "k_combine");
}

static int op_update(void *ctx, const cxg_upd_t *u, uint32_t B)
{
    cx_cuda_gen_t *c = (cx_cuda_gen_t *)ctx;
    uint64_t groups = ((uint64_t)u->npix + 3) / 4;
    uint32_t blocks = (uint32_t)((groups + UPDATE_T - 1) / UPDATE_T);
    k_update<<<dim3(blocks, B), UPDATE_T, 0, c->st>>>(*u);
    return launched(c, "k_update");
}

static int op_quantise(void *ctx, const float *x, size_t n, float maxv,
                       uint16_t *out)
{
    cx_cuda_gen_t *c = (cx_cuda_gen_t *)ctx;
    unsigned blocks = (unsigned)((n + 255) / 256);
    k_quantise<<<blocks, 256, 0, c->st>>>(x, n, maxv, out);
    return launched(c, "k_quantise");
}

static const char *op_error(void *ctx)
{
    return ((cx_cuda_gen_t *)ctx)->err;
}

// ---- public API ----------------------------------------------------------

extern "C" int cx_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear: "no device" is an answer, not an error
        return 0;
    }
    return n;
}

static int use_device(int dev, cx_err_t *err)
{
    int n = cx_cuda_device_count();
    if (dev < 0 || dev >= n)
        return cx_err_set(err, CX_EMODEL, 0, "cuda:%d: no such GPU (%d "
                          "present)", dev, n);
    cudaError_t e = cudaSetDevice(dev);
    if (e != cudaSuccess)
        return cx_err_set(err, CX_EMODEL, 0, "cuda:%d: %s", dev,
                          cudaGetErrorString(e));
    return 0;
}

extern "C" int cx_cuda_device_memory(int dev, uint64_t *total,
                                     uint64_t *free_bytes, cx_err_t *err)
{
    if (use_device(dev, err) != 0)
        return -1;
    size_t f = 0, t = 0;
    cudaError_t e = cudaMemGetInfo(&f, &t);
    if (e != cudaSuccess)
        return cx_err_set(err, CX_EMODEL, 0, "cuda:%d: %s", dev,
                          cudaGetErrorString(e));
    *total = t;
    *free_bytes = f;
    return 0;
}

extern "C" int cx_cuda_device_info(int dev, char *name, size_t name_len,
                                   double *peak_bw, cx_err_t *err)
{
    if (use_device(dev, err) != 0)
        return -1;
    cudaDeviceProp prop;
    int clock_khz = 0, bus_bits = 0;
    cudaError_t e = cudaGetDeviceProperties(&prop, dev);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate,
                                   dev);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth,
                                   dev);
    if (e != cudaSuccess)
        return cx_err_set(err, CX_EMODEL, 0, "cuda:%d: %s", dev,
                          cudaGetErrorString(e));
    if (name && name_len)
        snprintf(name, name_len, "%s", prop.name);
    if (peak_bw) // double data rate
        *peak_bw = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0);
    return 0;
}

extern "C" uint64_t cx_cuda_estimate(const cx_checkpoint_info_t *info,
                                     uint32_t batch)
{
    uint64_t rows = info->rows, ncomp = info->ncomponents;
    uint64_t rsum = rows > ncomp ? rows - ncomp : 0;
    uint64_t npix = (uint64_t)info->width * info->height;
    return cxg_bytes((uint32_t)npix, (uint32_t)rows, (uint32_t)ncomp,
                     (uint32_t)rsum, info->nclasses, batch ? batch : 1) +
           CX_CUDA_OVERHEAD;
}

extern "C" void cx_cuda_gen_destroy(cx_cuda_gen_t *c)
{
    if (!c)
        return;
    cudaSetDevice(c->dev);
    if (c->st)
        cudaStreamSynchronize(c->st);
    cxg_destroy(c->g);
    if (c->blas)
        cublasDestroy(c->blas);
    if (c->st)
        cudaStreamDestroy(c->st);
    free(c);
}

extern "C" cx_cuda_gen_t *cx_cuda_gen_new(const cx_model_t *m, int dev,
                                          uint32_t batch, cx_err_t *err)
{
    if (use_device(dev, err) != 0)
        return NULL;
    cx_cuda_gen_t *c = (cx_cuda_gen_t *)calloc(1, sizeof *c);
    if (!c) {
        cx_err_set(err, CX_ENOMEM, 0, "cuda: out of host memory");
        return NULL;
    }
    c->dev = dev;
    cudaError_t e = cudaStreamCreateWithFlags(&c->st, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        cx_err_set(err, CX_EMODEL, 0, "cuda:%d: stream: %s", dev,
                   cudaGetErrorString(e));
        goto fail;
    }
    if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS ||
        cublasSetStream(c->blas, c->st) != CUBLAS_STATUS_SUCCESS ||
        // plain FP32: no TF32 tensor-core rounding of the inputs
        cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH) !=
            CUBLAS_STATUS_SUCCESS) {
        cx_err_set(err, CX_EMODEL, 0, "cuda:%d: cannot start cuBLAS", dev);
        goto fail;
    }
    {
        cxg_ops_t ops;
        memset(&ops, 0, sizeof ops);
        ops.ctx = c;
        ops.alloc = op_alloc;
        ops.release = op_release;
        ops.put = op_put;
        ops.get = op_get;
        ops.gemm = op_gemm;
        ops.sumsq = op_sumsq;
        ops.combine = op_combine;
        ops.update = op_update;
        ops.quantise = op_quantise;
        ops.error = op_error;
        c->g = cxg_new(&ops, m, batch, err);
        if (!c->g)
            goto fail;
        e = cudaStreamSynchronize(c->st); // the uploads are done
        if (e != cudaSuccess) {
            cx_err_set(err, CX_EMODEL, 0, "cuda:%d: upload: %s", dev,
                       cudaGetErrorString(e));
            goto fail;
        }
    }
    return c;
fail:
    cx_cuda_gen_destroy(c);
    return NULL;
}

extern "C" uint64_t cx_cuda_gen_memory_bytes(const cx_cuda_gen_t *c)
{
    return cxg_memory_bytes(c->g) + CX_CUDA_OVERHEAD;
}

extern "C" uint32_t cx_cuda_gen_batch(const cx_cuda_gen_t *c)
{
    return cxg_batch(c->g);
}

extern "C" int cx_cuda_generate(cx_cuda_gen_t *c, size_t class_idx,
                                const cx_sample_params_t *p,
                                const uint64_t *seeds,
                                const uint32_t *indices, size_t n,
                                uint16_t *out, cx_err_t *err)
{
    cudaError_t e = cudaSetDevice(c->dev);
    if (e != cudaSuccess)
        return cx_err_set(err, CX_EMODEL, 0, "cuda:%d: %s", c->dev,
                          cudaGetErrorString(e));
    return cxg_generate(c->g, class_idx, p, seeds, indices, n, out, err);
}

extern "C" double cx_cuda_batch_traffic(const cx_cuda_gen_t *c,
                                        size_t class_idx,
                                        const cx_sample_params_t *p)
{
    return cxg_batch_traffic(c->g, class_idx, p);
}
