/* The CUDA generator's host side and arithmetic, without a GPU: driver.c's
 * launch sequence runs here over host implementations of the device
 * operations (a column-major GEMM with BLAS semantics and float
 * accumulation, as SGEMM; the kernels' per-element and per-thread
 * functions from gen_math.h, called for every index the kernels would
 * cover). Checks:
 *  - the noise is cx_normals bit for bit;
 *  - every sampler, with and without guidance, on ref-cxr-v0 and on a
 *    mixture with several components per class and unequal residual
 *    variances, matches the CPU twin within the stated tolerance;
 *  - an image's bytes do not depend on its batch (padding, position).
 * What it cannot check is the CUDA launch geometry and cuBLAS itself:
 * test_cuda_parity (label gpu) does, where a GPU is present. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cpu/model_impl.h"
#include "../driver.h"

/* Tolerance of the emulated GPU path against the CPU twin, in units of the
 * 16-bit output: the two differ only in float summation order (GEMM vs the
 * CPU's 16-lane dots), a relative 1e-6 per evaluation. */
#define TOL_MAX_LSB 16
#define TOL_MEAN_LSB 0.5

/* ---- host "device" ------------------------------------------------------ */

static int h_alloc(void *ctx, void **p, size_t n) {
    (void)ctx;
    *p = malloc(n);
    return *p ? 0 : -1;
}
static void h_release(void *ctx, void *p) {
    (void)ctx;
    free(p);
}
static int h_copy(void *ctx, void *dst, const void *src, size_t n) {
    (void)ctx;
    memcpy(dst, src, n);
    return 0;
}

static int h_gemm(void *ctx, const cxg_gemm_t *g) {
    (void)ctx;
    for (int q = 0; q < g->batch; q++) {
        const float *A = g->a + q * g->sa, *B = g->b + q * g->sb;
        float *C = g->c + q * g->sc;
        for (int j = 0; j < g->n; j++)
            for (int i = 0; i < g->m; i++) {
                float s = 0.0f;
                for (int l = 0; l < g->k; l++) {
                    float av = g->ta ? A[l + (size_t)i * g->lda]
                                     : A[i + (size_t)l * g->lda];
                    float bv = g->tb ? B[j + (size_t)l * g->ldb]
                                     : B[l + (size_t)j * g->ldb];
                    s += av * bv;
                }
                C[i + (size_t)j * g->ldc] = s;
            }
    }
    return 0;
}

static int h_sumsq(void *ctx, const float *x, uint32_t B, uint32_t npix,
                   uint32_t nchunk, double *xx) {
    (void)ctx;
    for (uint32_t b = 0; b < B; b++)
        for (uint32_t q = 0; q < nchunk; q++) {
            size_t lo = (size_t)q * CXG_CHUNK, hi = lo + CXG_CHUNK;
            hi = hi < npix ? hi : npix;
            double s = 0.0;
            for (size_t i = lo; i < hi; i++) {
                float v = x[(size_t)b * npix + i];
                s += (double)(v * v);
            }
            xx[b * nchunk + q] = s;
        }
    return 0;
}

static int h_combine(void *ctx, const cxg_eval_t *E) {
    (void)ctx;
    cxg_smem_t sh;
    for (uint32_t b = 0; b < E->B; b++) {
        for (uint32_t t = 0; t < CXG_COMBINE_T; t++)
            cxg_combine_sum(E, b, t, &sh);
        cxg_combine_perp(E, b, &sh);
        for (uint32_t t = 0; t < CXG_COMBINE_T; t++)
            cxg_combine_ll(E, b, t, &sh);
        cxg_combine_resp(E, b, &sh);
        for (uint32_t t = 0; t < CXG_COMBINE_T; t++)
            cxg_combine_coef(E, b, t);
        for (uint32_t t = 0; t < CXG_COMBINE_T; t++)
            cxg_combine_e(E, b, t, &sh);
    }
    return 0;
}

static int h_update(void *ctx, const cxg_upd_t *u, uint32_t B) {
    (void)ctx;
    for (uint32_t b = 0; b < B; b++)
        for (uint64_t q = 0; 4 * q < u->npix; q++)
            cxg_update4(u, b, q);
    return 0;
}

static int h_quantise(void *ctx, const float *x, size_t n, float maxv,
                      uint16_t *out) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) out[i] = cxg_quantise1(x[i], maxv);
    return 0;
}

static const char *h_error(void *ctx) {
    (void)ctx;
    return "host emulator";
}

static const cxg_ops_t host_ops = {
    .alloc = h_alloc, .release = h_release, .put = h_copy, .get = h_copy,
    .gemm = h_gemm, .sumsq = h_sumsq, .combine = h_combine,
    .update = h_update, .quantise = h_quantise, .error = h_error};

/* ---- models ------------------------------------------------------------- */

/* Two classes, three components (ranks 2, 3 | 1), unequal weights, priors
 * and residual variances: smooth means and sinusoidal bases made
 * orthonormal. */
static cx_model_t *mixture(uint32_t w, uint32_t h) {
    uint32_t cls[3] = {0, 0, 1}, rank[3] = {2, 3, 1};
    cx_err_t err = {0};
    cx_model_t *m = cx__model_alloc("mix", w, h, 2, 3, cls, rank, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    snprintf(m->names[0], sizeof m->names[0], "left");
    snprintf(m->names[1], sizeof m->names[1], "right");
    m->prior[0] = 0.4;
    m->prior[1] = 0.6;
    double wt[3] = {0.3, 0.7, 1.0}, s2[3] = {0.001, 0.002, 0.0015};
    size_t d = m->npix;
    double *row = malloc(d * sizeof *row);
    double *q = malloc(4 * d * sizeof *q);
    for (size_t k = 0; k < 3; k++) {
        cx__comp_t *c = &m->comp[k];
        c->weight = wt[k];
        c->s2 = s2[k];
        for (size_t i = 0; i < d; i++) {
            double x = (double)(i % w) / w, y = (double)(i / w) / h;
            c->mean[i] = (float)(0.3 + 0.2 * k + 0.2 * sin(3 * x + k) * y);
        }
        for (uint32_t r = 0; r < c->rank; r++) {
            for (size_t i = 0; i < d; i++) {
                double x = (double)(i % w) / w, y = (double)(i / w) / h;
                row[i] = cos((r + 1) * 2.1 * x + k) * sin((r + 2) * 1.3 * y +
                                                          0.5 * k);
            }
            for (uint32_t p = 0; p < r; p++) { /* Gram-Schmidt, twice */
                for (int rep = 0; rep < 2; rep++) {
                    double dot = 0;
                    for (size_t i = 0; i < d; i++) dot += row[i] * q[p * d + i];
                    for (size_t i = 0; i < d; i++) row[i] -= dot * q[p * d + i];
                }
            }
            double nn = 0;
            for (size_t i = 0; i < d; i++) nn += row[i] * row[i];
            for (size_t i = 0; i < d; i++) {
                q[r * d + i] = row[i] / sqrt(nn);
                c->basis[r * d + i] = (float)q[r * d + i];
            }
            c->var[r] = (float)(0.02 / (r + 1) + 0.005 * k);
        }
    }
    free(row);
    free(q);
    ck_assert_msg(cx__model_finish(m, &err) == 0, "%s", err.msg);
    return m;
}

/* ---- tests -------------------------------------------------------------- */

START_TEST(test_noise_bit_exact) {
    uint64_t seeds[] = {0, 1, 0x123456789abcdefull, ~0ull};
    for (int s = 0; s < 4; s++)
        for (uint32_t stream = 0; stream < 3; stream++) {
            float want[64];
            cx_normals(seeds[s], 17 * s, stream, 8, 64, want);
            for (uint64_t q = 0; q < 16; q++) {
                float got[4];
                cxg_normals4(seeds[s], 17 * s, stream, 2 + q, got);
                ck_assert_int_eq(memcmp(got, want + 4 * q, sizeof got), 0);
            }
        }
}
END_TEST

typedef struct cmp {
    int max;
    double mean;
} cmp_t;

static cmp_t compare(const uint16_t *a, const uint16_t *b, size_t n) {
    cmp_t c = {0, 0};
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        c.max = d > c.max ? d : c.max;
        c.mean += d;
    }
    c.mean /= (double)n;
    return c;
}

/* Emulated GPU vs the CPU twin for n images of class cls. */
static void check_parity(const cx_model_t *m, size_t cls,
                         const cx_sample_params_t *p, uint32_t batch,
                         const char *what) {
    enum { N = 5 };
    size_t d = m->npix;
    uint16_t *cpu = calloc(N * d, 2), *emu = calloc(N * d, 2);
    uint64_t seeds[N];
    uint32_t idx[N];
    cx_err_t err = {0};
    for (int i = 0; i < N; i++) {
        seeds[i] = 99;
        idx[i] = 10 + (uint32_t)i;
    }
    ck_assert_msg(cx_generate_batch(m, cls, p, 99, 10, N, 1, cpu, NULL,
                                    &err) == 0,
                  "%s", err.msg);
    cxg_gen_t *g = cxg_new(&host_ops, m, batch, &err);
    ck_assert_msg(g != NULL, "%s", err.msg);
    uint32_t rsum = 0;
    for (size_t k = 0; k < m->ncomp; k++) rsum += m->comp[k].rank;
    ck_assert_uint_eq(cxg_memory_bytes(g),
                      cxg_bytes((uint32_t)d, (uint32_t)m->m,
                                (uint32_t)m->ncomp, rsum,
                                (uint32_t)m->nclasses, batch));
    ck_assert_msg(cxg_generate(g, cls, p, seeds, idx, N, emu, &err) == 0,
                  "%s", err.msg);
    cmp_t c = compare(cpu, emu, N * d);
    fprintf(stderr, "parity %-28s max %3d LSB, mean %.4f LSB\n", what, c.max,
            c.mean);
    ck_assert_msg(c.max <= TOL_MAX_LSB && c.mean <= TOL_MEAN_LSB,
                  "%s: max %d mean %g LSB", what, c.max, c.mean);
    /* the images are not trivial */
    int varied = 0;
    for (size_t i = 1; i < d; i++) varied |= emu[i] != emu[0];
    ck_assert(varied);
    cxg_destroy(g);
    free(cpu);
    free(emu);
}

static const struct {
    int sampler;
    uint32_t steps;
    double w, eta;
    const char *name;
} cases[] = {
    {CX_SAMPLER_DDIM, 12, 1.0, 0.0, "ddim eta 0"},
    {CX_SAMPLER_DDIM, 12, 3.0, 0.0, "ddim eta 0 guidance 3"},
    {CX_SAMPLER_DDIM, 12, 1.0, 0.7, "ddim eta 0.7"},
    {CX_SAMPLER_DDIM, 10, 0.0, 1.0, "ddim eta 1 unconditional"},
    {CX_SAMPLER_EULER, 12, 2.0, 0.0, "euler guidance 2"},
    {CX_SAMPLER_HEUN, 8, 1.0, 0.0, "heun"},
    {CX_SAMPLER_HEUN, 6, 4.0, 0.0, "heun guidance 4"},
};

START_TEST(test_parity_ref) {
    cx_err_t err = {0};
    /* 80 x 64 = 5120 pixels: one full projection chunk and a short one */
    cx_model_t *m = cx_model_open(CX_CHECKPOINT_BUILTIN, 80, 64, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    cx_sample_params_t p = {.sampler = cases[_i].sampler,
                            .steps = cases[_i].steps,
                            .guidance_scale = cases[_i].w,
                            .eta = cases[_i].eta,
                            .bit_depth = 16};
    check_parity(m, 2, &p, 3, cases[_i].name);
    cx_model_destroy(m);
}
END_TEST

START_TEST(test_parity_mixture) {
    cx_model_t *m = mixture(48, 40);
    cx_sample_params_t p = {.sampler = cases[_i].sampler,
                            .steps = cases[_i].steps,
                            .guidance_scale = cases[_i].w,
                            .eta = cases[_i].eta,
                            .bit_depth = 16};
    check_parity(m, _i % 2, &p, 4, cases[_i].name);
    cx_model_destroy(m);
}
END_TEST

/* An image's bytes are the same alone, padded, or anywhere in a batch. */
START_TEST(test_batch_independent) {
    cx_err_t err = {0};
    cx_model_t *m = cx_model_open(CX_CHECKPOINT_BUILTIN, 32, 32, &err);
    ck_assert_ptr_nonnull(m);
    cx_sample_params_t p = {.sampler = CX_SAMPLER_DDIM, .steps = 6,
                            .guidance_scale = 2.0, .eta = 0.5,
                            .bit_depth = 16};
    cxg_gen_t *g = cxg_new(&host_ops, m, 4, &err);
    ck_assert_ptr_nonnull(g);
    size_t d = m->npix;
    uint64_t seeds[6] = {5, 5, 5, 7, 7, 5};
    uint32_t idx[6] = {0, 1, 2, 0, 1, 3};
    uint16_t *all = calloc(6 * d, 2), *one = calloc(d, 2);
    ck_assert_int_eq(cxg_generate(g, 1, &p, seeds, idx, 6, all, &err), 0);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(cxg_generate(g, 1, &p, &seeds[i], &idx[i], 1, one,
                                      &err),
                         0);
        ck_assert_int_eq(memcmp(one, all + i * d, d * 2), 0);
    }
    ck_assert_int_ne(memcmp(all, all + d, d * 2), 0); /* index differs */
    ck_assert_int_ne(memcmp(all, all + 3 * d, d * 2), 0); /* seed differs */
    /* Bad parameters come back as errors. */
    p.bit_depth = 12;
    ck_assert_int_eq(cxg_generate(g, 1, &p, seeds, idx, 1, one, &err), -1);
    p.bit_depth = 8;
    ck_assert_int_eq(cxg_generate(g, 9, &p, seeds, idx, 1, one, &err), -1);
    ck_assert_int_eq(err.code, CX_EINVAL);
    cxg_destroy(g);
    free(all);
    free(one);
    cx_model_destroy(m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("kernels_cuda_emu");
    TCase *tc = tcase_create("emu");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_noise_bit_exact);
    tcase_add_loop_test(tc, test_parity_ref, 0,
                        (int)(sizeof cases / sizeof cases[0]));
    tcase_add_loop_test(tc, test_parity_mixture, 0,
                        (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(tc, test_batch_independent);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
