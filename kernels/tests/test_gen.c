/* Tests for the CPU generator: Philox known answers, the normals, the
 * reference model, determinism, and the sampler's output distribution
 * against the exact one of the model. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../cpu/model_impl.h"
#include "cascade/gen.h"

#define CKPT "ref-cxr-v0"
#define MAXR 16 /* ref-cxr-v0's rank is 14 */

/* ---- Philox and normals -------------------------------------------- */

START_TEST(test_philox_kat)
{
    /* Random123 kat_vectors, philox4x32 10 rounds */
    static const uint32_t cases[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822,
         0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        cx_philox4x32(cases[i], cases[i] + 4, out);
        for (int j = 0; j < 4; j++)
            ck_assert_msg(out[j] == cases[i][6 + j],
                          "case %d word %d: %08x want %08x", i, j, out[j],
                          cases[i][6 + j]);
    }
}
END_TEST

START_TEST(test_normals_moments)
{
    size_t n = 1000000;
    float *z = malloc(n * sizeof *z);
    ck_assert_ptr_nonnull(z);
    cx_normals(12345, 7, 0, 0, n, z);
    double s1 = 0, s2 = 0, s4 = 0, mx = 0;
    size_t tail = 0, nonfinite = 0;
    /* One assertion after the loop, not one per value: every ck_assert
     * records its location with a write(2), a million of them under
     * valgrind took minutes. */
    for (size_t i = 0; i < n; i++) {
        double v = z[i];
        nonfinite += !isfinite(v);
        s1 += v;
        s2 += v * v;
        s4 += v * v * v * v;
        mx = fabs(v) > mx ? fabs(v) : mx;
        tail += fabs(v) > 1.959964;
    }
    ck_assert_msg(nonfinite == 0, "%zu non-finite normals", nonfinite);
    double mean = s1 / n, var = s2 / n - mean * mean;
    ck_assert_msg(fabs(mean) < 0.005, "mean %g", mean);
    ck_assert_msg(fabs(var - 1.0) < 0.006, "var %g", var);
    ck_assert_msg(fabs(s4 / n - 3.0) < 0.05, "4th moment %g", s4 / n);
    /* 5% outside +-1.96 for a normal */
    ck_assert_msg(fabs((double)tail / n - 0.05) < 0.002, "tail %g",
                  (double)tail / n);
    ck_assert(mx > 4.0 && mx < 6.0);
    free(z);
}
END_TEST

START_TEST(test_normals_slices)
{
    float whole[1037], part[1037];
    cx_normals(99, 3, 5, 0, 1037, whole);
    /* every offset mod 4, short and long slices */
    static const size_t firsts[] = {0, 1, 2, 3, 37, 400, 1033};
    for (size_t f = 0; f < sizeof firsts / sizeof *firsts; f++)
        for (size_t n = 0; firsts[f] + n <= 1037; n += 1 + n / 2) {
            cx_normals(99, 3, 5, firsts[f], n, part);
            ck_assert_msg(memcmp(part, whole + firsts[f], n * sizeof *part) ==
                              0,
                          "slice first=%zu n=%zu", firsts[f], n);
        }
    float other[64];
    cx_normals(99, 3, 6, 0, 64, other); /* other stream */
    ck_assert(memcmp(other, whole, sizeof other) != 0);
    cx_normals(99, 4, 5, 0, 64, other); /* other index */
    ck_assert(memcmp(other, whole, sizeof other) != 0);
    cx_normals(100, 3, 5, 0, 64, other); /* other seed */
    ck_assert(memcmp(other, whole, sizeof other) != 0);
}
END_TEST

/* ---- model ----------------------------------------------------------- */

START_TEST(test_checkpoint_lookup)
{
    ck_assert_int_eq(cx_checkpoint_has_class(CKPT, "effusion"), 1);
    ck_assert_int_eq(cx_checkpoint_has_class(CKPT, "cardiomegaly"), 1);
    ck_assert_int_eq(cx_checkpoint_has_class(CKPT, "fracture"), 0);
    ck_assert_int_eq(cx_checkpoint_has_class("ref-cxr-v9", "normal"), 0);
    ck_assert_int_eq(cx_checkpoint_has_class(NULL, "normal"), 0);

    cx_err_t err;
    ck_assert_ptr_null(cx_model_open_named("/nonexistent", "nope", 32, 32,
                                           &err));
    ck_assert_int_eq(err.code, CX_ENOENT);
    ck_assert_msg(strstr(err.msg, "unknown checkpoint 'nope'") == err.msg,
                  "%s", err.msg);
    ck_assert_ptr_null(cx_model_open_named(NULL, "../etc/x", 32, 32, &err));
    ck_assert_int_eq(err.code, CX_EINVAL);
    ck_assert_ptr_null(cx_model_open(CKPT, 4, 32, &err));
    ck_assert_int_eq(err.code, CX_EINVAL);
    cx_model_destroy(NULL);

    cx_model_t *m = cx_model_open(CKPT, 48, 32, &err);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(cx_model_width(m), 48);
    ck_assert_uint_eq(cx_model_height(m), 32);
    ck_assert_uint_eq(cx_model_class_count(m), 4);
    ck_assert_str_eq(cx_model_class_name(m, 2), "nodule");
    ck_assert_ptr_null(cx_model_class_name(m, 4));
    ck_assert_int_eq(cx_model_class_index(m, "cardiomegaly"), 3);
    ck_assert_int_eq(cx_model_class_index(m, "fracture"), -1);
    ck_assert_str_eq(cx_model_name(m), CKPT);
    ck_assert_uint_ge(cx_model_memory_bytes(m),
                      (4 * 15 + m->m) * 48 * 32 * sizeof(float));
    cx_checkpoint_info_t info;
    ck_assert_int_eq(cx_checkpoint_probe(NULL, CKPT, 48, 32, &info, &err), 0);
    ck_assert_uint_ge(info.memory_bytes, cx_model_memory_bytes(m));
    ck_assert_uint_le(info.memory_bytes, 2 * cx_model_memory_bytes(m));
    cx_model_destroy(m);
}
END_TEST

START_TEST(test_model_structure)
{
    cx_err_t err;
    cx_model_t *m = cx_model_open(CKPT, 64, 64, &err);
    ck_assert_ptr_nonnull(m);
    size_t d = m->npix;
    for (size_t k = 0; k < m->nclasses; k++) {
        const cx__comp_t *c = &m->comp[k];
        /* visible variation: the largest mode moves pixels by a few % */
        double sd = sqrt(c->var[0] / (double)d) * 4; /* per-pixel-ish */
        ck_assert_msg(sd > 0.01 && sd < 0.5, "class %zu var0 %g", k,
                      c->var[0]);
        size_t outside = 0; /* one ck_assert per class, not per pixel */
        for (size_t p = 0; p < d; p++)
            outside += !(c->mean[p] > 0.0f && c->mean[p] < 1.0f);
        ck_assert_msg(outside == 0, "class %zu: %zu means outside (0, 1)", k,
                      outside);
    }
    /* class means differ where the findings are: effusion at the bases */
    const float *n0 = m->comp[0].mean, *ef = m->comp[1].mean;
    double top = 0, bottom = 0;
    for (size_t y = 0; y < 64; y++)
        for (size_t x = 0; x < 64; x++) {
            double diff = ef[y * 64 + x] - n0[y * 64 + x];
            if (y < 28)
                top += fabs(diff);
            else
                bottom += diff;
        }
    ck_assert_msg(top < 0.05 && bottom > 5.0, "top %g bottom %g", top,
                  bottom);
    cx_model_destroy(m);
}
END_TEST

/* The subspace form: W orthonormal, the classes' shared basis stored once
 * (14 directions + 4 means), every mean and basis row inside span(W) and
 * its coordinates right. */
START_TEST(test_model_subspace)
{
    cx_err_t err;
    cx_model_t *m = cx_model_open(CKPT, 40, 36, &err);
    ck_assert_ptr_nonnull(m);
    size_t d = m->npix, mm = m->m;
    /* 14 + 4 means, less any mean that is already in the span (the
     * nodule mean is the normal one plus a blob, and the nodule-intensity
     * mode is that blob: numerically inside, or just outside) */
    ck_assert_msg(mm >= 17 && mm <= 18, "m = %zu", mm);
    ck_assert_uint_eq(m->mdim[0], 15);
    for (size_t c = 1; c < 4; c++)
        ck_assert(m->mdim[c] >= m->mdim[c - 1] && m->mdim[c] <= 15 + c);
    for (size_t i = 0; i < mm; i++)
        for (size_t j = 0; j <= i; j++) {
            double s = 0;
            for (size_t p = 0; p < d; p++)
                s += (double)m->w[i * d + p] * m->w[j * d + p];
            ck_assert_msg(fabs(s - (i == j)) < 1e-5, "w%zu.w%zu = %g", i, j,
                          s);
        }
    for (size_t k = 0; k < m->ncomp; k++) {
        const cx__comp_t *c = &m->comp[k];
        for (uint32_t q = 0; q <= c->rank; q++) {
            const float *row = q ? c->basis + (q - 1) * d : c->mean;
            const double *co = q ? c->b + (q - 1) * mm : c->alpha;
            double err2 = 0, n2 = 0;
            for (size_t p = 0; p < d; p++) {
                double r = 0;
                for (size_t j = 0; j < mm; j++)
                    r += co[j] * m->w[j * d + p];
                err2 += (r - row[p]) * (r - row[p]);
                n2 += (double)row[p] * row[p];
            }
            ck_assert_msg(err2 <= 1e-10 * n2, "comp %zu row %u: %g of %g", k,
                          q, err2, n2);
        }
    }
    cx_model_destroy(m);
}
END_TEST

START_TEST(test_component_views)
{
    cx_err_t err;
    cx_model_t *m = cx_model_open(CKPT, 24, 20, &err);
    ck_assert_ptr_nonnull(m);
    size_t d = 24 * 20, K = cx_model_class_count(m);
    const cx_component_view_t *cv;
    size_t n;
    double psum = 0;
    for (size_t c = 0; c < K; c++) {
        ck_assert_int_eq(cx_model_components(m, c, &cv, &n, &err), 0);
        ck_assert_uint_ge(n, 1);
        double wsum = 0;
        for (size_t k = 0; k < n; k++) {
            const cx_component_view_t *v = &cv[k];
            wsum += v->weight;
            ck_assert(v->resid_var > 0);
            for (uint32_t i = 0; i < v->rank; i++) {
                ck_assert(v->var[i] >= 0.0f);
                for (uint32_t j = 0; j <= i; j++) {
                    double s = 0;
                    for (size_t p = 0; p < d; p++)
                        s += (double)v->basis[i * d + p] * v->basis[j * d + p];
                    ck_assert_msg(fabs(s - (i == j)) < 1e-5,
                                  "class %zu u%u.u%u = %g", c, i, j, s);
                }
            }
            /* the view points at the model's own component */
            const cx__comp_t *mc = &m->comp[m->first[c] + k];
            ck_assert_ptr_eq(v->mean, mc->mean);
            ck_assert_ptr_eq(v->basis, mc->basis);
            ck_assert(v->resid_var == mc->s2 && v->weight == mc->weight);
        }
        ck_assert(fabs(wsum - 1.0) < 1e-12);
        psum += cx_model_class_prior(m, c);
    }
    ck_assert(fabs(psum - 1.0) < 1e-12);
    ck_assert(cx_model_class_prior(m, K) == 0.0);
    ck_assert_int_eq(cx_model_components(m, K, &cv, &n, &err), -1);
    ck_assert_int_eq(err.code, CX_EINVAL);
    cx_model_destroy(m);
}
END_TEST

START_TEST(test_sym_eigen)
{
    double a[9] = {4, 1, 2, 1, 3, 0, 2, 0, 5}, a0[9], w[3], v[9];
    memcpy(a0, a, sizeof a);
    cx__sym_eigen(3, a, w, v);
    ck_assert(w[0] >= w[1] && w[1] >= w[2]);
    for (int i = 0; i < 3; i++) /* A v_i = w_i v_i */
        for (int r = 0; r < 3; r++) {
            double s = 0;
            for (int c = 0; c < 3; c++)
                s += a0[r * 3 + c] * v[i * 3 + c];
            ck_assert(fabs(s - w[i] * v[i * 3 + r]) < 1e-10);
        }
}
END_TEST

/* ---- determinism and errors ----------------------------------------- */

typedef struct job {
    const cx_model_t *m;
    cx_sample_params_t p;
    uint64_t seed;
    uint32_t first, n;
    uint16_t *out; /* n images */
    int rc;
} job_t;

static void *run_job(void *arg)
{
    job_t *j = arg;
    size_t d = j->m->npix;
    j->rc = 0;
    for (uint32_t i = 0; i < j->n; i++)
        j->rc |= cx_generate(j->m, 1, &j->p, j->seed, j->first + i,
                             j->out + i * d, NULL);
    return NULL;
}

START_TEST(test_determinism)
{
    cx_err_t err;
    cx_model_t *m = cx_model_open(CKPT, 64, 64, &err);
    ck_assert_ptr_nonnull(m);
    size_t d = m->npix;
    cx_sample_params_t ps[3] = {{CX_SAMPLER_DDIM, 12, 3.0, 0.5, 16},
                                {CX_SAMPLER_HEUN, 6, 2.0, 0.0, 16},
                                {CX_SAMPLER_EULER, 8, 1.0, 0.0, 8}};
    uint16_t *seq = malloc(4 * d * sizeof *seq);
    uint16_t *par = malloc(4 * d * sizeof *par);
    uint16_t *one = malloc(d * sizeof *one);
    for (int s = 0; s < 3; s++) {
        job_t all = {m, ps[s], 77, 0, 4, seq, -1};
        run_job(&all);
        ck_assert_int_eq(all.rc, 0);
        /* two threads, each half, running at once */
        job_t a = {m, ps[s], 77, 0, 2, par, -1};
        job_t b = {m, ps[s], 77, 2, 2, par + 2 * d, -1};
        pthread_t ta, tb;
        ck_assert_int_eq(pthread_create(&ta, NULL, run_job, &a), 0);
        ck_assert_int_eq(pthread_create(&tb, NULL, run_job, &b), 0);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        ck_assert_int_eq(a.rc | b.rc, 0);
        ck_assert_msg(memcmp(seq, par, 4 * d * sizeof *seq) == 0,
                      "sampler %d differs across threads", s);
        /* index 1 alone regenerates the same bytes */
        ck_assert_int_eq(cx_generate(m, 1, &ps[s], 77, 1, one, &err), 0);
        ck_assert(memcmp(one, seq + d, d * sizeof *one) == 0);
        /* other index, other seed: other image */
        ck_assert(memcmp(seq, seq + d, d * sizeof *seq) != 0);
        ck_assert_int_eq(cx_generate(m, 1, &ps[s], 78, 0, one, &err), 0);
        ck_assert(memcmp(one, seq, d * sizeof *one) != 0);
    }
    free(seq);
    free(par);
    free(one);
    cx_model_destroy(m);
}
END_TEST

START_TEST(test_params_and_bit_depth)
{
    cx_err_t err;
    cx_model_t *m = cx_model_open(CKPT, 32, 32, &err);
    ck_assert_ptr_nonnull(m);
    uint16_t out[32 * 32];
    cx_sample_params_t p = {CX_SAMPLER_DDIM, 20, 1.0, 0.0, 8};
    ck_assert_int_eq(cx_generate(m, 0, &p, 1, 0, out, &err), 0);
    int max8 = 0;
    for (int i = 0; i < 32 * 32; i++)
        max8 = out[i] > max8 ? out[i] : max8;
    ck_assert_int_le(max8, 255);
    ck_assert_int_gt(max8, 100);
    p.bit_depth = 16;
    ck_assert_int_eq(cx_generate(m, 0, &p, 1, 0, out, &err), 0);
    int max16 = 0;
    for (int i = 0; i < 32 * 32; i++)
        max16 = out[i] > max16 ? out[i] : max16;
    ck_assert_int_gt(max16, 255 * 100);
    /* extreme guidance saturates: clamped, no wrap-around */
    p.guidance_scale = 400.0;
    p.bit_depth = 8;
    ck_assert_int_eq(cx_generate(m, 1, &p, 1, 0, out, &err), 0);
    int lo = 0, hi = 0;
    for (int i = 0; i < 32 * 32; i++) {
        ck_assert_int_le(out[i], 255);
        lo += out[i] == 0;
        hi += out[i] == 255;
    }
    ck_assert(lo + hi > 0);

    cx_sample_params_t bad[] = {
        {CX_SAMPLER_DDIM, 20, 1.0, 0.0, 12}, {CX_SAMPLER_DDIM, 0, 1.0, 0.0, 8},
        {CX_SAMPLER_DDIM, 1001, 1.0, 0.0, 8}, {7, 20, 1.0, 0.0, 8},
        {CX_SAMPLER_DDIM, 20, NAN, 0.0, 8}, {CX_SAMPLER_DDIM, 20, 1.0, 1.5, 8}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err.code = CX_OK;
        ck_assert_int_eq(cx_generate(m, 0, &bad[i], 1, 0, out, &err), -1);
        ck_assert_int_eq(err.code, CX_EINVAL);
    }
    ck_assert_int_eq(cx_generate(m, 4, &p, 1, 0, out, &err), -1);
    ck_assert_int_eq(err.code, CX_EINVAL);
    cx_model_destroy(m);
}
END_TEST

/* ---- distribution ---------------------------------------------------- */

/* Output variance along an eigen-direction of variance e (lam + s2), from
 * the same step rules applied to one scalar: the deterministic samplers are
 * affine maps, so this is exact for the model. */
static double predicted_var(const cx_sample_params_t *p, double e)
{
    uint32_t n = p->steps;
    if (p->sampler == CX_SAMPLER_DDIM) {
        double ab = cx__ddim_alphabar(cx__ddim_timestep(0, n));
        double var = 1.0 - ab; /* x_T - a mu = b z */
        for (uint32_t i = 0; i < n; i++) {
            double abn = i + 1 < n ? cx__ddim_alphabar(
                                         cx__ddim_timestep(i + 1, n))
                                   : 1.0;
            double a = sqrt(ab), b = sqrt(1 - ab), an = sqrt(abn);
            double c1 = sqrt(1 - abn), g = a * e / (ab * e + 1 - ab);
            double k = (an - c1 * a / b) * g + c1 / b;
            var *= k * k;
            ab = abn;
        }
        return var;
    }
    double s = cx__karras_sigma(0, n), var = s * s;
    for (uint32_t i = 0; i < n; i++) {
        s = cx__karras_sigma(i, n);
        double sn = cx__karras_sigma(i + 1, n), h = sn - s;
        double g = e / (e + s * s);
        double k1 = 1 + h / s * (1 - g); /* y1 = k1 y */
        double k = k1;
        if (p->sampler == CX_SAMPLER_HEUN && sn > 0) {
            double g2 = e / (e + sn * sn);
            k = 1 + h / 2 * ((1 - g) / s + k1 * (1 - g2) / sn);
        }
        var *= k * k;
    }
    return var;
}

/* n samples of class c as floats in [0,1] */
static float *draw(const cx_model_t *m, size_t c, const cx_sample_params_t *p,
                   size_t n)
{
    size_t d = m->npix;
    float *x = malloc(n * d * sizeof *x);
    uint16_t *o = malloc(d * sizeof *o);
    double maxv = (1 << p->bit_depth) - 1;
    for (size_t i = 0; i < n; i++) {
        cx_err_t err;
        ck_assert_int_eq(cx_generate(m, c, p, 2024, (uint32_t)i, o, &err), 0);
        for (size_t q = 0; q < d; q++)
            x[i * d + q] = (float)(o[q] / maxv);
    }
    free(o);
    return x;
}

/* Coordinates of x - mu_c along class c's basis (its one component) and
 * the squared norm of the part outside it. */
static void coords(const cx_model_t *m, size_t c, const float *x, double *cc,
                   double *res2, float *res)
{
    const cx__comp_t *k = &m->comp[c];
    size_t d = m->npix;
    double y2 = 0, pp = 0;
    for (size_t q = 0; q < d; q++) {
        double y = x[q] - k->mean[q];
        res[q] = (float)y;
        y2 += y * y;
    }
    for (uint32_t i = 0; i < k->rank; i++) {
        const float *u = k->basis + i * d;
        double s = 0;
        for (size_t q = 0; q < d; q++)
            s += (double)u[q] * res[q];
        cc[i] = s;
        pp += s * s;
        for (size_t q = 0; q < d; q++)
            res[q] -= (float)(s * u[q]);
    }
    *res2 = y2 - pp;
}

/* tol: how far below the model's variance the sampler may land on the
 * basis modes (first-order samplers lose some variance at 50 steps). */
static void check_distribution(const cx_sample_params_t *p, double tol)
{
    cx_err_t err;
    cx_model_t *m = cx_model_open(CKPT, 32, 32, &err);
    ck_assert_ptr_nonnull(m);
    size_t n = 400, d = m->npix, c = 3, r = m->comp[c].rank;
    double s2 = m->comp[c].s2;
    float *x = draw(m, c, p, n);
    float *res = malloc(d * sizeof *res);
    double *rmean = calloc(d, sizeof *rmean);
    double cs[MAXR] = {0}, css[MAXR] = {0}, rv = 0;
    for (size_t i = 0; i < n; i++) {
        double cc[MAXR], r2;
        coords(m, c, x + i * d, cc, &r2, res);
        for (size_t j = 0; j < r; j++) {
            cs[j] += cc[j];
            css[j] += cc[j] * cc[j];
        }
        rv += r2;
        for (size_t q = 0; q < d; q++)
            rmean[q] += res[q];
    }
    for (size_t j = 0; j < r; j++) {
        double lam = m->comp[c].var[j], e = lam + s2;
        double pred = predicted_var(p, e);
        double mean = cs[j] / n, var = css[j] / n - mean * mean;
        if (lam > 10 * s2) {
            /* the sampler is a good one: close to the model's variance on
             * the large modes (small ones resolve late, at coarse steps) */
            ck_assert_msg(lam < 0.05 || fabs(pred / e - 1) < tol,
                          "mode %zu pred %g e %g", j, pred, e);
            ck_assert_msg(fabs(var / pred - 1) < 0.25,
                          "sampler %d mode %zu var %g pred %g (lam %g)",
                          p->sampler, j, var, pred, lam);
        }
        ck_assert_msg(fabs(mean) < 4.5 * sqrt(pred / n) + 1e-4,
                      "sampler %d mode %zu mean %g sd %g", p->sampler, j,
                      mean, sqrt(pred));
    }
    double pres = predicted_var(p, s2);
    double resv = rv / n / (double)(d - r);
    ck_assert_msg(fabs(resv / pres - 1) < 0.1,
                  "sampler %d residual var %g pred %g (s2 %g)", p->sampler,
                  resv, pres, s2);
    double rm2 = 0;
    for (size_t q = 0; q < d; q++)
        rm2 += (rmean[q] / n) * (rmean[q] / n);
    ck_assert_msg(rm2 / (d - r) < 2.0 * pres / n, "residual mean %g",
                  rm2 / (d - r));
    free(rmean);
    free(res);
    free(x);
    cx_model_destroy(m);
}

START_TEST(test_ddim_distribution)
{
    cx_sample_params_t p = {CX_SAMPLER_DDIM, 50, 1.0, 0.0, 16};
    check_distribution(&p, 0.15);
    /* much of the fine grain survives the last, coarse steps */
    ck_assert(predicted_var(&p, 1e-4) > 0.3e-4);
}
END_TEST

START_TEST(test_euler_distribution)
{
    cx_sample_params_t p = {CX_SAMPLER_EULER, 60, 1.0, 0.0, 16};
    check_distribution(&p, 0.15);
}
END_TEST

START_TEST(test_heun_distribution)
{
    cx_sample_params_t p = {CX_SAMPLER_HEUN, 25, 1.0, 0.0, 16};
    check_distribution(&p, 0.08);
}
END_TEST

/* log-likelihood of clean x under class k's Gaussian (up to a constant) */
static double class_ll(const cx_model_t *m, size_t k, const float *x,
                       float *scratch)
{
    double cc[MAXR], r2, q = 0, logdet = 0, s2 = m->comp[k].s2;
    coords(m, k, x, cc, &r2, scratch);
    for (size_t i = 0; i < m->comp[k].rank; i++) {
        double e = m->comp[k].var[i] + s2;
        q += cc[i] * cc[i] / e;
        logdet += log(e);
    }
    return -0.5 * (q + r2 / s2 + logdet);
}

START_TEST(test_unconditional_mixture)
{
    /* guidance 0 is the unconditional model: an equal mixture */
    cx_err_t err;
    cx_model_t *m = cx_model_open(CKPT, 32, 32, &err);
    ck_assert_ptr_nonnull(m);
    size_t n = 400, d = m->npix, K = m->nclasses, count[4] = {0};
    cx_sample_params_t p = {CX_SAMPLER_DDIM, 40, 0.0, 0.0, 16};
    float *x = draw(m, 0, &p, n), *tmp = malloc(d * sizeof *tmp);
    for (size_t i = 0; i < n; i++) {
        size_t best = 0;
        double bl = -INFINITY;
        for (size_t k = 0; k < K; k++) {
            double ll = class_ll(m, k, x + i * d, tmp);
            if (ll > bl) {
                bl = ll;
                best = k;
            }
        }
        count[best]++;
    }
    for (size_t k = 0; k < K; k++)
        ck_assert_msg(fabs(count[k] / (double)n - 0.25) < 0.09,
                      "class %zu drawn %zu of %zu", k, count[k], n);
    free(tmp);
    free(x);
    cx_model_destroy(m);
}
END_TEST

/* Mean position of samples along mu_k -> mu_c, over the other classes k:
 * 0 at another class's mean, 1 at the own mean. */
static double class_position(const cx_model_t *m, size_t c, const float *x,
                             size_t n)
{
    size_t d = m->npix;
    double tot = 0;
    for (size_t k = 0; k < m->nclasses; k++) {
        if (k == c)
            continue;
        const float *mc = m->comp[c].mean, *mk = m->comp[k].mean;
        double dd = 0;
        for (size_t q = 0; q < d; q++)
            dd += (double)(mc[q] - mk[q]) * (mc[q] - mk[q]);
        for (size_t i = 0; i < n; i++) {
            double t = 0;
            for (size_t q = 0; q < d; q++)
                t += (double)(x[i * d + q] - mk[q]) * (mc[q] - mk[q]);
            tot += t / dd;
        }
    }
    return tot / (n * (m->nclasses - 1));
}

START_TEST(test_guidance)
{
    cx_err_t err;
    cx_model_t *m = cx_model_open(CKPT, 32, 32, &err);
    ck_assert_ptr_nonnull(m);
    size_t n = 100, c = 1;
    double w[3] = {1.0, 2.0, 4.0}, pos[3];
    for (int i = 0; i < 3; i++) {
        cx_sample_params_t p = {CX_SAMPLER_DDIM, 30, w[i], 0.0, 16};
        float *x = draw(m, c, &p, n);
        pos[i] = class_position(m, c, x, n);
        free(x);
    }
    ck_assert_msg(fabs(pos[0] - 1.0) < 0.1, "w=1 position %g", pos[0]);
    ck_assert_msg(pos[1] > pos[0] + 0.05 && pos[2] > pos[1] + 0.1,
                  "positions %g %g %g", pos[0], pos[1], pos[2]);
    cx_model_destroy(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kernels_gen");
    TCase *tc = tcase_create("philox");
    tcase_add_test(tc, test_philox_kat);
    tcase_add_test(tc, test_normals_moments);
    tcase_add_test(tc, test_normals_slices);
    suite_add_tcase(s, tc);
    tc = tcase_create("model");
    tcase_add_test(tc, test_checkpoint_lookup);
    tcase_add_test(tc, test_model_structure);
    tcase_add_test(tc, test_component_views);
    tcase_add_test(tc, test_model_subspace);
    tcase_add_test(tc, test_sym_eigen);
    suite_add_tcase(s, tc);
    tc = tcase_create("sampler");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_params_and_bit_depth);
    tcase_add_test(tc, test_ddim_distribution);
    tcase_add_test(tc, test_euler_distribution);
    tcase_add_test(tc, test_heun_distribution);
    tcase_add_test(tc, test_unconditional_mixture);
    tcase_add_test(tc, test_guidance);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
