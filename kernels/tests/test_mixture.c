/* The sampler on low-rank Gaussian mixtures, against the maths:
 *   - one component: every deterministic sampler is an affine map of the
 *     initial noise; the map probed column by column equals the closed form;
 *   - the CPU sampler equals an independent double-precision reference
 *     written from the formulas (guided, unconditional, stochastic, Heun);
 *   - mixtures: sample statistics (responsibility-weighted mixture weights,
 *     per-component mean and variance along each basis direction, residual
 *     variance, class priors) within tolerances that depend on step count;
 *   - guidance moves samples toward the class mean;
 *   - bytes identical for any batch split and thread count. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/gen.h"
#include "testmodel.h"

/* ---- one component: the affine map ----------------------------------- */

static void check_affine(const cx_sample_params_t *p)
{
    tm_spec_t s = {.width = 16, .height = 16, .nclasses = 1, .ncomp = 1,
                   .rank = 3, .sep = 0.05, .var0 = 2.0, .s2 = 1e-3,
                   .seed = 11};
    cx_model_t *m = tm_model(&s);
    const cx__comp_t *c = &m->comp[0];
    size_t d = m->npix;
    tm_gain_t gs2, gi[3];
    tm_direction_gain(p, s.s2, &gs2);
    for (uint32_t i = 0; i < 3; i++)
        tm_direction_gain(p, c->var[i] + s.s2, &gi[i]);
    /* F(z): the sampler from x = a0 mu + b0 z */
    float *z0 = malloc(d * sizeof *z0), *x = malloc(d * sizeof *x);
    float *base = malloc(d * sizeof *base);
    cx_err_t err;
    cx_normals(5, 0, 0, 0, d, z0);
    for (size_t q = 0; q < d; q++)
        base[q] = (float)(gs2.a0 * c->mean[q] + gs2.b0 * z0[q]);
    ck_assert_int_eq(cx__sample_from(m, 0, p, 1, 0, base, &err), 0);
    double worst = 0, scale = 0;
    for (size_t j = 0; j < d; j++) {
        for (size_t q = 0; q < d; q++)
            x[q] = (float)(gs2.a0 * c->mean[q] +
                           gs2.b0 * (z0[q] + (q == j ? 1.0f : 0.0f)));
        ck_assert_int_eq(cx__sample_from(m, 0, p, 1, 0, x, &err), 0);
        /* closed form column j: b0 [K(s2) e_j + sum_i (K_i - K(s2)) u_i
         * u_ij] */
        for (size_t q = 0; q < d; q++) {
            double want = q == j ? gs2.gain : 0.0;
            for (uint32_t i = 0; i < 3; i++)
                want += (gi[i].gain - gs2.gain) * c->basis[i * d + q] *
                        c->basis[i * d + j];
            want *= gs2.b0;
            double got = (double)x[q] - base[q];
            worst = fmax(worst, fabs(got - want));
            scale = fmax(scale, fabs(want));
        }
    }
    ck_assert_msg(worst < 2e-6 + 2e-5 * scale,
                  "sampler %d: affine map off by %g (scale %g)", p->sampler,
                  worst, scale);
    /* the offset: noise-free start lands exactly on the mean */
    for (size_t q = 0; q < d; q++)
        x[q] = (float)(gs2.a0 * c->mean[q]);
    ck_assert_int_eq(cx__sample_from(m, 0, p, 1, 0, x, &err), 0);
    for (size_t q = 0; q < d; q++)
        ck_assert_msg(fabs(x[q] - c->mean[q]) < 1e-5, "offset %g at %zu",
                      x[q] - c->mean[q], q);
    free(z0);
    free(x);
    free(base);
    cx_model_destroy(m);
}

START_TEST(test_affine_ddim)
{
    cx_sample_params_t p = {CX_SAMPLER_DDIM, 20, 1.0, 0.0, 16};
    check_affine(&p);
}
END_TEST

START_TEST(test_affine_heun)
{
    cx_sample_params_t p = {CX_SAMPLER_HEUN, 12, 1.0, 0.0, 16};
    check_affine(&p);
}
END_TEST

/* ---- against the reference sampler ------------------------------------ */

START_TEST(test_reference)
{
    static const double wts[6] = {0.3, 0.7, 0.6, 0.4, 0.5, 0.5};
    static const double pri[3] = {0.35, 0.45, 0.2};
    /* 17x19: D not a multiple of the 16 lanes, so the tails are tested;
     * three classes: the class-local bases are built, so w = 1 runs on
     * them and w != 1 on the global W */
    tm_spec_t s = {.width = 17, .height = 19, .nclasses = 3, .ncomp = 2,
                   .rank = 3, .sep = 0.03, .var0 = 0.5, .s2 = 2e-4,
                   .weights = wts, .priors = pri, .seed = 3};
    cx_model_t *m = tm_model(&s);
    ck_assert_ptr_nonnull(m->wc);
    size_t d = m->npix;
    static const cx_sample_params_t ps[] = {
        {CX_SAMPLER_DDIM, 25, 1.0, 0.0, 16},
        {CX_SAMPLER_DDIM, 25, 0.0, 0.0, 16},
        {CX_SAMPLER_DDIM, 25, 2.5, 0.0, 16},
        {CX_SAMPLER_DDIM, 25, 2.0, 0.7, 16},
        {CX_SAMPLER_EULER, 30, 1.5, 0.0, 16},
        {CX_SAMPLER_HEUN, 15, 3.0, 0.0, 16}};
    float *x = malloc(d * sizeof *x);
    double *ref = malloc(d * sizeof *ref);
    cx_err_t err;
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++)
        for (uint32_t idx = 0; idx < 4; idx++) {
            size_t cls = idx % 3;
            ck_assert_int_eq(
                cx_generate_float(m, cls, &ps[i], 77, idx, x, &err), 0);
            tm_reference_sample(m, cls, &ps[i], 77, idx, ref);
            double worst = 0;
            for (size_t q = 0; q < d; q++)
                worst = fmax(worst, fabs(x[q] - ref[q]));
            ck_assert_msg(worst < 1e-5,
                          "case %zu index %u: CPU vs reference %g", i, idx,
                          worst);
        }
    free(x);
    free(ref);
    cx_model_destroy(m);
}
END_TEST

/* The class-local bases: orthonormal within each class, and every mean and
 * basis row of the class rebuilt from its local coordinates. */
START_TEST(test_local_bases)
{
    tm_spec_t s = {.width = 16, .height = 16, .nclasses = 3, .ncomp = 2,
                   .rank = 3, .sep = 0.03, .var0 = 0.5, .s2 = 2e-4,
                   .seed = 4};
    cx_model_t *m = tm_model(&s);
    size_t d = m->npix;
    ck_assert_ptr_nonnull(m->wc);
    ck_assert_uint_eq(m->m, 24);
    ck_assert_uint_eq(m->wc_rows, 24);
    for (size_t c = 0; c < 3; c++) {
        ck_assert_uint_eq(m->cdim[c], 8);
        const float *wc = m->wc + m->coff[c] * d;
        for (size_t i = 0; i < 8; i++)
            for (size_t j = 0; j <= i; j++) {
                double t = 0;
                for (size_t q = 0; q < d; q++)
                    t += (double)wc[i * d + q] * wc[j * d + q];
                ck_assert(fabs(t - (i == j)) < 1e-5);
            }
        for (size_t k = m->first[c]; k < m->first[c + 1]; k++) {
            const cx__comp_t *cp = &m->comp[k];
            for (uint32_t r = 0; r <= cp->rank; r++) {
                const float *row = r ? cp->basis + (r - 1) * d : cp->mean;
                const double *co = r ? cp->b_l + (r - 1) * 8 : cp->alpha_l;
                double e2 = 0, n2 = 0;
                for (size_t q = 0; q < d; q++) {
                    double v = 0;
                    for (size_t j = 0; j < 8; j++)
                        v += co[j] * wc[j * d + q];
                    e2 += (v - row[q]) * (v - row[q]);
                    n2 += (double)row[q] * row[q];
                }
                ck_assert_msg(e2 < 1e-10 * n2, "class %zu comp %zu row %u",
                              c, k, r);
            }
        }
    }
    /* two classes of the same shape: the prefixes are short, no copy */
    s.nclasses = 2;
    cx_model_t *m2 = tm_model(&s);
    ck_assert_ptr_null(m2->wc);
    cx_model_destroy(m2);
    size_t rows3[3] = {8, 8, 8}, rows2[2] = {8, 8}, skew[3] = {2, 2, 20};
    ck_assert(cx__model_wants_local(3, rows3));
    ck_assert(!cx__model_wants_local(2, rows2));
    ck_assert(!cx__model_wants_local(3, skew));
    ck_assert(!cx__model_wants_local(1, rows2));
    cx_model_destroy(m);
}
END_TEST

/* ---- mixture statistics ------------------------------------------------ */

typedef struct stats {
    double resp[4];         /* sum of responsibilities */
    size_t n[4];            /* samples assigned (argmax) */
    double c1[4][3], c2[4][3]; /* coordinate sums and squares */
    double res[4];          /* residual squared norms */
} stats_t;

static void accumulate(const cx_model_t *m, size_t cls, const double *x,
                       stats_t *st)
{
    const cx_component_view_t *v;
    size_t n, d = m->npix;
    cx_err_t err;
    ck_assert_int_eq(cx_model_components(m, cls, &v, &n, &err), 0);
    double ll[4], co[4][3], mx = -INFINITY, z = 0;
    size_t best = 0;
    for (size_t k = 0; k < n; k++) {
        ll[k] = log(v[k].weight) + tm_comp_logpdf(m, &v[k], x, co[k]);
        if (ll[k] > mx) {
            mx = ll[k];
            best = k;
        }
    }
    for (size_t k = 0; k < n; k++)
        z += exp(ll[k] - mx);
    for (size_t k = 0; k < n; k++)
        st->resp[k] += exp(ll[k] - mx) / z;
    st->n[best]++;
    double pp = 0, dd = 0;
    for (uint32_t i = 0; i < v[best].rank; i++) {
        st->c1[best][i] += co[best][i];
        st->c2[best][i] += co[best][i] * co[best][i];
        pp += co[best][i] * co[best][i];
    }
    for (size_t q = 0; q < d; q++)
        dd += (x[q] - v[best].mean[q]) * (x[q] - v[best].mean[q]);
    st->res[best] += dd - pp;
}

/* N samples of class 0 against the model; slack: the step-count-dependent
 * allowance for the discretisation beyond what the closed form predicts
 * (the mixture's early steps are not a single Gaussian's). */
static void check_mixture(const cx_sample_params_t *p, size_t nsamp,
                          double slack)
{
    static const double wts[4] = {0.3, 0.7, 0.55, 0.45};
    tm_spec_t s = {.width = 16, .height = 16, .nclasses = 2, .ncomp = 2,
                   .rank = 2, .sep = 0.04, .var0 = 0.8, .s2 = 4e-4,
                   .weights = wts, .seed = 21};
    cx_model_t *m = tm_model(&s);
    size_t d = m->npix;
    float *x = malloc(d * sizeof *x);
    double *xd = malloc(d * sizeof *xd);
    stats_t st = {0};
    cx_err_t err;
    for (uint32_t i = 0; i < nsamp; i++) {
        ck_assert_int_eq(cx_generate_float(m, 0, p, 9, i, x, &err), 0);
        for (size_t q = 0; q < d; q++)
            xd[q] = x[q];
        accumulate(m, 0, xd, &st);
    }
    tm_gain_t gr;
    tm_direction_gain(p, s.s2, &gr);
    for (size_t k = 0; k < 2; k++) {
        const cx__comp_t *c = &m->comp[k];
        double w = c->weight, nk = (double)st.n[k];
        double mw = st.resp[k] / nsamp;
        ck_assert_msg(fabs(mw - w) < 4 * sqrt(w * (1 - w) / nsamp) + 0.02,
                      "sampler %d: component %zu weight %g want %g",
                      p->sampler, k, mw, w);
        ck_assert(nk > 50);
        for (uint32_t i = 0; i < c->rank; i++) {
            tm_gain_t g;
            tm_direction_gain(p, c->var[i] + s.s2, &g);
            double mean = st.c1[k][i] / nk;
            double var = st.c2[k][i] / nk - mean * mean;
            ck_assert_msg(fabs(mean) < 4.5 * sqrt(g.var / nk) + 0.02,
                          "sampler %d comp %zu dir %u mean %g (sd %g)",
                          p->sampler, k, i, mean, sqrt(g.var));
            ck_assert_msg(fabs(var / g.var - 1) < 4.5 * sqrt(2 / nk) + slack,
                          "sampler %d comp %zu dir %u var %g want %g "
                          "(model %g)",
                          p->sampler, k, i, var, g.var, c->var[i] + s.s2);
            /* and the discrete prediction is the model's, up to slack */
            ck_assert(fabs(g.var / (c->var[i] + s.s2) - 1) < slack);
        }
        double rv = st.res[k] / nk / (double)(d - c->rank);
        ck_assert_msg(fabs(rv / gr.var - 1) < 0.08,
                      "sampler %d comp %zu residual var %g want %g",
                      p->sampler, k, rv, gr.var);
    }
    free(x);
    free(xd);
    cx_model_destroy(m);
}

START_TEST(test_mixture_ddim)
{
    cx_sample_params_t p = {CX_SAMPLER_DDIM, 60, 1.0, 0.0, 16};
    check_mixture(&p, 1200, 0.12);
}
END_TEST

START_TEST(test_mixture_ddim_stochastic)
{
    cx_sample_params_t p = {CX_SAMPLER_DDIM, 60, 1.0, 1.0, 16};
    check_mixture(&p, 1200, 0.12);
}
END_TEST

START_TEST(test_mixture_heun)
{
    cx_sample_params_t p = {CX_SAMPLER_HEUN, 30, 1.0, 0.0, 16};
    check_mixture(&p, 1200, 0.08);
}
END_TEST

/* Guidance 0 samples the unconditional model: classes in the proportions
 * of the priors (assigned by the exact class posterior). */
START_TEST(test_unconditional_priors)
{
    static const double pri[2] = {0.25, 0.75};
    tm_spec_t s = {.width = 16, .height = 16, .nclasses = 2, .ncomp = 2,
                   .rank = 2, .sep = 0.04, .var0 = 0.8, .s2 = 4e-4,
                   .priors = pri, .seed = 5};
    cx_model_t *m = tm_model(&s);
    size_t d = m->npix, n = 800, count0 = 0;
    float *x = malloc(d * sizeof *x);
    double *xd = malloc(d * sizeof *xd);
    cx_sample_params_t p = {CX_SAMPLER_DDIM, 40, 0.0, 0.0, 16};
    cx_err_t err;
    for (uint32_t i = 0; i < n; i++) {
        ck_assert_int_eq(cx_generate_float(m, 1, &p, 4, i, x, &err), 0);
        for (size_t q = 0; q < d; q++)
            xd[q] = x[q];
        double best = -INFINITY;
        size_t bc = 0;
        for (size_t k = 0; k < m->ncomp; k++) {
            double l = log(m->prior[m->comp[k].cls] * m->views[k].weight) +
                       tm_comp_logpdf(m, &m->views[k], xd, NULL);
            if (l > best) {
                best = l;
                bc = m->comp[k].cls;
            }
        }
        count0 += bc == 0;
    }
    double f = (double)count0 / n;
    ck_assert_msg(fabs(f - 0.25) < 4 * sqrt(0.25 * 0.75 / n) + 0.02,
                  "class 0 drawn %g of the time, prior 0.25", f);
    free(x);
    free(xd);
    cx_model_destroy(m);
}
END_TEST

/* A larger guidance scale moves samples along the other class -> own
 * class direction: position 1 at w = 1 (the class itself), beyond it for
 * w > 1, between the classes for w = 0 (the unconditional mixture, at the
 * prior-weighted position). The classes overlap (mean distance under one
 * residual sd), so the guidance term stays active to the end. */
START_TEST(test_guidance_direction)
{
    tm_spec_t s = {.width = 16, .height = 16, .nclasses = 2, .ncomp = 1,
                   .rank = 2, .sep = 0.002, .var0 = 0.05, .s2 = 4e-3,
                   .seed = 8};
    cx_model_t *m = tm_model(&s);
    size_t d = m->npix, n = 200;
    const float *mc = m->comp[0].mean, *mo = m->comp[1].mean;
    double dd = 0, pos[4], sd1 = 0, w[4] = {0.0, 1.0, 2.0, 4.0};
    for (size_t q = 0; q < d; q++)
        dd += (double)(mc[q] - mo[q]) * (mc[q] - mo[q]);
    float *x = malloc(d * sizeof *x);
    cx_err_t err;
    for (int k = 0; k < 4; k++) {
        cx_sample_params_t p = {CX_SAMPLER_DDIM, 30, w[k], 0.0, 16};
        double t = 0, t2 = 0;
        for (uint32_t i = 0; i < n; i++) {
            ck_assert_int_eq(cx_generate_float(m, 0, &p, 2, i, x, &err), 0);
            double ti = 0;
            for (size_t q = 0; q < d; q++)
                ti += (x[q] - mo[q]) * (double)(mc[q] - mo[q]);
            t += ti / dd;
            t2 += ti / dd * ti / dd;
        }
        pos[k] = t / n;
        if (k == 1)
            sd1 = sqrt(t2 / n - pos[k] * pos[k]);
    }
    /* the same noise for every w: the differences are paired */
    ck_assert_msg(fabs(pos[1] - 1) < 4 * sd1 / sqrt(n), "w=1 at %g (sd %g)",
                  pos[1], sd1);
    ck_assert_msg(pos[0] > 0.2 && pos[0] < 0.8, "w=0 at %g", pos[0]);
    ck_assert_msg(pos[2] > pos[1] + 0.1 && pos[3] > pos[2] + 0.1,
                  "positions %g %g %g %g", pos[0], pos[1], pos[2], pos[3]);
    free(x);
    cx_model_destroy(m);
}
END_TEST

/* ---- determinism -------------------------------------------------------- */

START_TEST(test_batch_determinism)
{
    tm_spec_t s = {.width = 19, .height = 17, .nclasses = 3, .ncomp = 2,
                   .rank = 3, .sep = 0.03, .var0 = 0.5, .s2 = 2e-4,
                   .seed = 13};
    cx_model_t *m = tm_model(&s);
    size_t d = m->npix;
    const uint32_t n = 11;
    uint16_t *a = malloc(n * d * sizeof *a), *b = malloc(n * d * sizeof *b);
    uint16_t *one = malloc(d * sizeof *one);
    cx_sample_params_t ps[3] = {{CX_SAMPLER_DDIM, 15, 2.0, 0.6, 16},
                                {CX_SAMPLER_HEUN, 8, 1.0, 0.0, 16},
                                {CX_SAMPLER_EULER, 10, 0.5, 0.0, 8}};
    cx_err_t err;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(cx_generate_batch(m, 2, &ps[i], 99, 5, n, 1, a,
                                           NULL, &err), 0);
        for (unsigned t = 2; t <= 4; t++) {
            memset(b, 0, n * d * sizeof *b);
            ck_assert_int_eq(cx_generate_batch(m, 2, &ps[i], 99, 5, n, t, b,
                                               NULL, &err), 0);
            ck_assert_msg(memcmp(a, b, n * d * sizeof *a) == 0,
                          "sampler %d: %u threads differ", ps[i].sampler, t);
        }
        /* split into uneven batches: same bytes */
        ck_assert_int_eq(cx_generate_batch(m, 2, &ps[i], 99, 5, 3, 2, b,
                                           NULL, &err), 0);
        ck_assert_int_eq(cx_generate_batch(m, 2, &ps[i], 99, 8, n - 3, 3,
                                           b + 3 * d, NULL, &err), 0);
        ck_assert(memcmp(a, b, n * d * sizeof *a) == 0);
        for (uint32_t k = 0; k < n; k += 5) {
            ck_assert_int_eq(cx_generate(m, 2, &ps[i], 99, 5 + k, one, &err),
                             0);
            ck_assert(memcmp(one, a + k * d, d * sizeof *one) == 0);
        }
        /* another seed, another image */
        ck_assert_int_eq(cx_generate(m, 2, &ps[i], 100, 5, one, &err), 0);
        ck_assert(memcmp(one, a, d * sizeof *one) != 0);
        ck_assert(memcmp(a, a + d, d * sizeof *a) != 0);
    }
    /* timing adds up and does not change the bytes */
    cx_gen_timing_t tm = {0};
    ck_assert_int_eq(cx_generate_batch(m, 2, &ps[0], 99, 5, n, 2, b, &tm,
                                       &err), 0);
    ck_assert_uint_eq(tm.evals, (uint64_t)n * 15);
    ck_assert(tm.denoise_s > 0 && tm.update_s > 0);
    ck_assert_int_eq(cx_generate_batch(m, 9, &ps[0], 99, 5, n, 2, b, NULL,
                                       &err), -1);
    ck_assert_int_eq(err.code, CX_EINVAL);
    ck_assert_int_eq(cx_generate_batch(m, 0, &ps[0], 99, 5, 0, 2, b, NULL,
                                       &err), 0);
    free(a);
    free(b);
    free(one);
    cx_model_destroy(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kernels_mixture");
    TCase *tc = tcase_create("exact");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_affine_ddim);
    tcase_add_test(tc, test_affine_heun);
    tcase_add_test(tc, test_reference);
    tcase_add_test(tc, test_local_bases);
    suite_add_tcase(s, tc);
    tc = tcase_create("statistics");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_mixture_ddim);
    tcase_add_test(tc, test_mixture_ddim_stochastic);
    tcase_add_test(tc, test_mixture_heun);
    tcase_add_test(tc, test_unconditional_priors);
    tcase_add_test(tc, test_guidance_direction);
    suite_add_tcase(s, tc);
    tc = tcase_create("determinism");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_batch_determinism);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
