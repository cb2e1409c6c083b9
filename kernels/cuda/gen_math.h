/* The arithmetic of the CUDA generator, written once in the common subset
 * of C11 and CUDA C++ so that the same functions run in the CUDA kernels
 * (gen_cuda.cu) and on the host in the emulator test (tests/
 * test_cuda_emu.c), which checks them against the CPU twin on machines
 * without a GPU.
 *
 * Every function here is per element, per group of four elements (one
 * Philox block) or per (sample, thread) of the combine kernel; none
 * launches anything. Compiled with --fmad=false (nvcc) and
 * -ffp-contract=off (gcc) so that no multiply-add is fused: the noise is
 * then bit-identical to cx_normals and the step arithmetic to the CPU's
 * step_chunk (kernels/cpu/sampler.c), operation for operation.
 *
 * Layouts (column-major, as cuBLAS sees them): an image batch is B columns
 * of npix floats (sample b at b * npix); W is m rows of npix floats (as a
 * column-major npix x m matrix, ld npix); projections and coefficients are
 * rows x B (sample b at b * rows). */
#ifndef CASCADE_KERNELS_CUDA_GEN_MATH_H
#define CASCADE_KERNELS_CUDA_GEN_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../cpu/noise_math.h"

#define CXG_COMBINE_T 128 /* threads of the combine kernel per sample */

CXG_HD void cxg_normals4(uint64_t seed, uint32_t index, uint32_t stream,
                         uint64_t blk, float out[4])
{
    uint32_t c[4] = {(uint32_t)blk, (uint32_t)(blk >> 32), index, stream};
    cxg_philox(c, (uint32_t)seed, (uint32_t)(seed >> 32));
    cxg_box_muller(c[0], c[1], &out[0], &out[1]);
    cxg_box_muller(c[2], c[3], &out[2], &out[3]);
}

/* ---- the model as the kernels see it ------------------------------------ */

/* The subspace form of kernels/cpu/model_impl.h, flattened into arrays
 * (device memory in the kernels, host memory in the emulator). Component
 * k's alpha is coef + coff[k] (m doubles), its basis coordinates the
 * rank[k] rows of m doubles that follow; its variances var + poff[k]. */
typedef struct cxg_model {
    uint32_t npix, m, ncomp, nclasses, rsum;
    const float *w;          /* m x npix */
    const double *coef;      /* sum_k (1 + rank_k) m */
    const uint64_t *coff;    /* ncomp */
    const uint32_t *cls;     /* ncomp */
    const uint32_t *rank;    /* ncomp */
    const uint32_t *poff;    /* ncomp: prefix sums of rank */
    const double *s2;        /* ncomp */
    const double *logw;      /* ncomp: log weight within the class */
    const double *logw_all;  /* ncomp: log(prior * weight) */
    const double *var;       /* rsum */
    const uint32_t *first;   /* nclasses + 1 */
} cxg_model_t;

/* One denoiser evaluation of a batch: inputs (partial projections from
 * the split-K GEMM and partial |x|^2), scratch, and outputs e (rows x B)
 * and g (B) such that E[x0 | x_b] = g_b x_b + W^T e_b. */
typedef struct cxg_eval {
    cxg_model_t M;
    uint32_t B, rows, nchunk;
    uint32_t cls;
    int cond, uncond;
    double w, a, b;
    const float *cpart;   /* nchunk x rows x B */
    const double *xxpart; /* B x nchunk */
    double *c;            /* B x rows */
    double *p;            /* B x rsum: U_k d */
    double *q;            /* B x rsum: beta h p */
    double *ll, *beta, *cm; /* B x ncomp */
    float *e;             /* rows x B */
    float *g;             /* B */
} cxg_eval_t;

/* Per-sample shared state of the combine kernel. */
typedef struct cxg_smem {
    double red[CXG_COMBINE_T];
    double perp, g;
} cxg_smem_t;

CXG_HD void cxg_comp_range(const cxg_eval_t *E, uint32_t *k0, uint32_t *k1)
{
    *k0 = E->uncond ? 0 : E->M.first[E->cls];
    *k1 = E->uncond ? E->M.ncomp : E->M.first[E->cls + 1];
}

/* Phase 1 (all threads): c = the chunk partials summed in double, in chunk
 * order; each thread's share of |c|^2 into red[t]. */
CXG_HD void cxg_combine_sum(const cxg_eval_t *E, uint32_t b, uint32_t t,
                            cxg_smem_t *sh)
{
    size_t rows = E->rows, stride = rows * E->B;
    double cc = 0.0;
    for (size_t j = t; j < rows; j += CXG_COMBINE_T) {
        double s = 0.0;
        for (uint32_t q = 0; q < E->nchunk; q++)
            s += (double)E->cpart[q * stride + b * rows + j];
        E->c[b * rows + j] = s;
        cc += s * s;
    }
    sh->red[t] = cc;
}

/* Phase 2 (thread 0): |x|^2 outside the subspace. */
CXG_HD void cxg_combine_perp(const cxg_eval_t *E, uint32_t b, cxg_smem_t *sh)
{
    double xx = 0.0, cc = 0.0;
    for (uint32_t q = 0; q < E->nchunk; q++)
        xx += E->xxpart[(size_t)b * E->nchunk + q];
    for (int t = 0; t < CXG_COMBINE_T; t++)
        cc += sh->red[t];
    double perp = xx - cc;
    sh->perp = perp > 0.0 ? perp : 0.0;
}

/* log N(x; a mu_k, a^2 C_k + b^2 I) + const, and p = U_k d: the CPU's
 * comp_loglik, summation for summation. */
CXG_HD double cxg_loglik(const cxg_eval_t *E, uint32_t b, uint32_t k,
                         double perp)
{
    const cxg_model_t *M = &E->M;
    size_t rows = E->rows, mm = M->m;
    const double *c = E->c + b * rows;
    const double *alpha = M->coef + M->coff[k];
    double *p = E->p + (size_t)b * M->rsum + M->poff[k];
    double a = E->a, a2 = a * a, b2 = E->b * E->b, s2 = M->s2[k];
    double sig0 = a2 * s2 + b2;
    double dd = 0.0, pp = 0.0, quad = 0.0;
    double logdet = ((double)M->npix - M->rank[k]) * log(sig0);
    for (size_t j = 0; j < rows; j++) {
        double dc = c[j] - a * alpha[j];
        dd += dc * dc;
    }
    for (uint32_t i = 0; i < M->rank[k]; i++) {
        const double *bi = alpha + mm + i * mm;
        double s = 0.0;
        for (size_t j = 0; j < rows; j++)
            s += bi[j] * (c[j] - a * alpha[j]);
        p[i] = s;
        double e = a2 * (M->var[M->poff[k] + i] + s2) + b2;
        quad += s * s / e;
        pp += s * s;
        logdet += log(e);
    }
    double res = perp + dd - pp;
    return -0.5 * (quad + (res > 0.0 ? res : 0.0) / sig0 + logdet);
}

/* Phase 3 (all threads): ll and p, one component per thread. */
CXG_HD void cxg_combine_ll(const cxg_eval_t *E, uint32_t b, uint32_t t,
                           const cxg_smem_t *sh)
{
    uint32_t k0, k1;
    cxg_comp_range(E, &k0, &k1);
    for (uint32_t k = k0 + t; k < k1; k += CXG_COMBINE_T)
        E->ll[(size_t)b * E->M.ncomp + k] = cxg_loglik(E, b, k, sh->perp);
}

/* beta[k] += scale * softmax over [k0, k1) of ll[k] + log weight. */
CXG_HD void cxg_softmax(const cxg_eval_t *E, const double *ll, double *beta,
                        uint32_t k0, uint32_t k1, int all, double scale)
{
    const double *lw = all ? E->M.logw_all : E->M.logw;
    double mx = -INFINITY, z = 0.0;
    for (uint32_t k = k0; k < k1; k++)
        mx = ll[k] + lw[k] > mx ? ll[k] + lw[k] : mx;
    for (uint32_t k = k0; k < k1; k++)
        z += exp(ll[k] + lw[k] - mx);
    for (uint32_t k = k0; k < k1; k++)
        beta[k] += scale * exp(ll[k] + lw[k] - mx) / z;
}

/* Phase 4 (thread 0): responsibilities, g, and the mean coefficients. */
CXG_HD void cxg_combine_resp(const cxg_eval_t *E, uint32_t b, cxg_smem_t *sh)
{
    const cxg_model_t *M = &E->M;
    uint32_t k0, k1;
    cxg_comp_range(E, &k0, &k1);
    const double *ll = E->ll + (size_t)b * M->ncomp;
    double *beta = E->beta + (size_t)b * M->ncomp;
    double *cm = E->cm + (size_t)b * M->ncomp;
    for (uint32_t k = k0; k < k1; k++)
        beta[k] = 0.0;
    if (E->uncond)
        cxg_softmax(E, ll, beta, 0, M->ncomp, 1, 1.0 - E->w);
    if (E->cond)
        cxg_softmax(E, ll, beta, M->first[E->cls], M->first[E->cls + 1], 0,
                    E->w);
    double a = E->a, a2 = a * a, b2 = E->b * E->b, g = 0.0;
    for (uint32_t k = k0; k < k1; k++) {
        double be = beta[k];
        cm[k] = 0.0;
        if (be == 0.0)
            continue;
        double g0 = a * M->s2[k] / (a2 * M->s2[k] + b2);
        g += be * g0;
        cm[k] = be * (1.0 - a * g0);
    }
    sh->g = g;
}

/* Phase 5 (all threads): q = beta h p, one component per thread. */
CXG_HD void cxg_combine_coef(const cxg_eval_t *E, uint32_t b, uint32_t t)
{
    const cxg_model_t *M = &E->M;
    uint32_t k0, k1;
    cxg_comp_range(E, &k0, &k1);
    double a = E->a, a2 = a * a, b2 = E->b * E->b;
    for (uint32_t k = k0 + t; k < k1; k += CXG_COMBINE_T) {
        double be = E->beta[(size_t)b * M->ncomp + k];
        if (be == 0.0)
            continue;
        double s2 = M->s2[k], g0 = a * s2 / (a2 * s2 + b2);
        size_t o = (size_t)b * M->rsum + M->poff[k];
        for (uint32_t i = 0; i < M->rank[k]; i++) {
            double ei = M->var[M->poff[k] + i] + s2;
            double h = a * ei / (a2 * ei + b2) - g0;
            E->q[o + i] = be * h * E->p[o + i];
        }
    }
}

/* Phase 6 (all threads): e_j = sum_k cm_k alpha_k[j] + sum_i q_ki b_ki[j],
 * in the CPU's order (k, then its mean, then its basis rows). */
CXG_HD void cxg_combine_e(const cxg_eval_t *E, uint32_t b, uint32_t t,
                          const cxg_smem_t *sh)
{
    const cxg_model_t *M = &E->M;
    uint32_t k0, k1;
    cxg_comp_range(E, &k0, &k1);
    size_t rows = E->rows, mm = M->m;
    const double *beta = E->beta + (size_t)b * M->ncomp;
    const double *cm = E->cm + (size_t)b * M->ncomp;
    for (size_t j = t; j < rows; j += CXG_COMBINE_T) {
        double e = 0.0;
        for (uint32_t k = k0; k < k1; k++) {
            if (beta[k] == 0.0)
                continue;
            const double *alpha = M->coef + M->coff[k];
            const double *q = E->q + (size_t)b * M->rsum + M->poff[k];
            e += cm[k] * alpha[j];
            for (uint32_t i = 0; i < M->rank[k]; i++)
                e += q[i] * alpha[mm + i * mm + j];
        }
        E->e[b * rows + j] = (float)e;
    }
    if (t == 0)
        E->g[b] = (float)sh->g;
}

/* ---- the step ------------------------------------------------------------ */

/* out = a_den E + a_x in + a_y y + a_w w + a_z z with E = g in + recon, for
 * the whole batch (each pointer B x npix; out may be in or y). init: the
 * initial state, in and g taken as 0, so out = recon + a_z z. */
typedef struct cxg_upd {
    float a_den, a_x, a_y, a_w, a_z;
    uint32_t zstream;
    int init;
    uint32_t npix;
    const float *in, *y, *w, *recon, *g;
    float *out, *den_out;
    const uint64_t *seeds;
    const uint32_t *indices;
} cxg_upd_t;

/* Elements 4 q .. 4 q + 3 of sample b. */
CXG_HD void cxg_update4(const cxg_upd_t *u, uint32_t b, uint64_t q)
{
    float z[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (u->a_z != 0.0f)
        cxg_normals4(u->seeds[b], u->indices[b], u->zstream, q, z);
    float gb = u->init ? 0.0f : u->g[b];
    for (int l = 0; l < 4; l++) {
        uint64_t i = 4 * q + (uint64_t)l;
        if (i >= u->npix)
            break;
        size_t off = (size_t)b * u->npix + (size_t)i;
        float x = u->init ? 0.0f : u->in[off];
        float den = gb * x + u->recon[off];
        if (u->den_out)
            u->den_out[off] = den;
        float o = u->a_den * den + u->a_x * x;
        if (u->y)
            o += u->a_y * u->y[off];
        if (u->w)
            o += u->a_w * u->w[off];
        if (u->a_z != 0.0f)
            o += u->a_z * z[l];
        u->out[off] = o;
    }
}

CXG_HD uint16_t cxg_quantise1(float x, float maxv)
{
    float v = x > 0.0f ? x : 0.0f; /* NaN -> 0 */
    v = v < 1.0f ? v : 1.0f;
    return (uint16_t)(int32_t)(v * maxv + 0.5f);
}

#endif
