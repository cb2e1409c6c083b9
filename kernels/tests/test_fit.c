/* The fitter recovers a known mixture from exact samples of it: component
 * weights, means, subspaces, variances and residual variance; and it is
 * deterministic whatever the thread count. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/fit.h"
#include "testmodel.h"

#define N_PER_CLASS 300

/* Exact samples of class c: component k for the first weight_k share of
 * the images, x = mean + sum_i sqrt(var_i) z_i u_i + sqrt(s2) z'. */
static float *exact_samples(const cx_model_t *m, size_t c, size_t n)
{
    size_t d = m->npix;
    float *x = malloc(n * d * sizeof *x), *z = malloc(d * sizeof *z);
    const cx_component_view_t *v;
    size_t nk;
    cx_err_t err;
    ck_assert_int_eq(cx_model_components(m, c, &v, &nk, &err), 0);
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        double acc = v[0].weight;
        while (k + 1 < nk && (double)i >= acc * n)
            acc += v[++k].weight;
        float *xi = x + i * d;
        cx_normals(77, (uint32_t)(c * n + i), 0, 0, d, z);
        for (size_t q = 0; q < d; q++)
            xi[q] = v[k].mean[q] + (float)sqrt(v[k].resid_var) * z[q];
        cx_normals(77, (uint32_t)(c * n + i), 1, 0, v[k].rank, z);
        for (uint32_t r = 0; r < v[k].rank; r++)
            for (size_t q = 0; q < d; q++)
                xi[q] += (float)sqrt(v[k].var[r]) * z[r] *
                         v[k].basis[r * d + q];
    }
    free(z);
    return x;
}

static cx_model_t *fit(const cx_model_t *truth, unsigned threads)
{
    cx_fit_opts_t o;
    cx_fit_opts_default(&o);
    o.components = 2;
    o.rank = 2;
    o.threads = threads;
    cx_err_t err;
    cx_fit_t *f = cx_fit_new("fitted", truth->width, truth->height, &o, &err);
    ck_assert_ptr_nonnull(f);
    for (size_t c = 0; c < truth->nclasses; c++) {
        size_t n = N_PER_CLASS - 100 * c; /* unequal classes: priors */
        float *x = exact_samples(truth, c, n);
        ck_assert_int_eq(cx_fit_class(f, truth->names[c], x, n, &err), 0);
        free(x);
    }
    ck_assert_int_eq(cx_fit_class(f, "c0", (float[256]){0}, 1, &err), -1);
    cx_model_t *m = cx_fit_finish(f, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    cx_fit_destroy(f);
    return m;
}

START_TEST(test_fit_recovers)
{
    static const double wts[4] = {0.3, 0.7, 0.5, 0.5};
    tm_spec_t s = {.width = 16, .height = 16, .nclasses = 2, .ncomp = 2,
                   .rank = 2, .sep = 0.15, .var0 = 0.4, .s2 = 1e-4,
                   .weights = wts, .seed = 17};
    cx_model_t *t = tm_model(&s);
    cx_model_t *m = fit(t, 1);
    size_t d = m->npix;
    ck_assert_uint_eq(m->nclasses, 2);
    ck_assert_str_eq(m->names[1], "c1");
    ck_assert(fabs(m->prior[0] - 300.0 / 500) < 1e-12);
    for (size_t k = 0; k < 4; k++) {
        const cx__comp_t *f = &m->comp[k];
        /* the true component it found: nearest mean in its class */
        size_t best = 0;
        double bd = INFINITY;
        for (size_t j = t->first[f->cls]; j < t->first[f->cls + 1]; j++) {
            double dd = 0;
            for (size_t q = 0; q < d; q++)
                dd += pow(f->mean[q] - t->comp[j].mean[q], 2);
            if (dd < bd) {
                bd = dd;
                best = j;
            }
        }
        const cx__comp_t *g = &m->comp[k], *tc = &t->comp[best];
        ck_assert_msg(fabs(g->weight - tc->weight) < 1e-9,
                      "comp %zu weight %g want %g (clusters wrong)", k,
                      g->weight, tc->weight);
        double n = N_PER_CLASS - 100.0 * f->cls;
        double tr = s.var0 * 1.5 + d * s.s2; /* trace of C */
        ck_assert_msg(bd < 20 * tr / (n * tc->weight), "comp %zu mean off %g",
                      k, bd);
        /* subspace: sum of squared cosines between the bases ~ rank */
        double cos2 = 0;
        for (uint32_t a = 0; a < 2; a++)
            for (uint32_t b = 0; b < 2; b++) {
                double dot = 0;
                for (size_t q = 0; q < d; q++)
                    dot += (double)g->basis[a * d + q] * tc->basis[b * d + q];
                cos2 += dot * dot;
            }
        ck_assert_msg(cos2 > 1.97, "comp %zu subspace overlap %g of 2", k,
                      cos2);
        for (uint32_t a = 0; a < 2; a++)
            ck_assert_msg(fabs(g->var[a] / tc->var[a] - 1) <
                              5 * sqrt(2 / (n * tc->weight)),
                          "comp %zu var %u %g want %g", k, a, g->var[a],
                          tc->var[a]);
        ck_assert_msg(fabs(g->s2 / tc->s2 - 1) < 0.05, "comp %zu s2 %g want %g",
                      k, g->s2, tc->s2);
    }
    /* the same fit on three threads: the same bytes */
    cx_model_t *m3 = fit(t, 3);
    ck_assert_uint_eq(m3->data_bytes, m->data_bytes);
    ck_assert(memcmp(m3->data, m->data, m->data_bytes) == 0);
    for (size_t k = 0; k < 4; k++)
        ck_assert(m3->comp[k].s2 == m->comp[k].s2 &&
                  m3->comp[k].weight == m->comp[k].weight);
    cx_model_destroy(m3);
    cx_model_destroy(m);
    cx_model_destroy(t);
}
END_TEST

/* Fewer images than components or ranks: components shrink to fit. */
START_TEST(test_fit_small_classes)
{
    cx_fit_opts_t o;
    cx_fit_opts_default(&o);
    o.components = 3;
    o.rank = 4;
    o.threads = 1;
    cx_err_t err;
    cx_fit_t *f = cx_fit_new("tiny", 16, 16, &o, &err);
    ck_assert_ptr_nonnull(f);
    float x[3 * 256];
    for (size_t i = 0; i < 3 * 256; i++)
        x[i] = 0.3f + 0.1f * (float)((i * 7919) % 13) / 13.0f;
    ck_assert_int_eq(cx_fit_class(f, "one", x, 1, &err), 0);
    ck_assert_int_eq(cx_fit_class(f, "three", x, 3, &err), 0);
    cx_model_t *m = cx_fit_finish(f, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    ck_assert_uint_eq(m->first[1] - m->first[0], 1);
    ck_assert_uint_eq(m->comp[0].rank, 0);
    ck_assert_uint_le(m->first[2] - m->first[1], 3);
    uint16_t out[256];
    cx_sample_params_t p = {CX_SAMPLER_DDIM, 10, 1.5, 0.0, 16};
    ck_assert_int_eq(cx_generate(m, 1, &p, 1, 0, out, &err), 0);
    cx_model_destroy(m);
    cx_fit_destroy(f);
    ck_assert_ptr_null(cx_fit_new("x", 8, 8, &o, &err));
    ck_assert_int_eq(err.code, CX_EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kernels_fit");
    TCase *tc = tcase_create("fit");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fit_recovers);
    tcase_add_test(tc, test_fit_small_classes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
