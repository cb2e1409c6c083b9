/* cxphantom's renderer: deterministic per (seed, class, index), images
 * differ between indices and seeds, and each class shows its finding
 * against the normal anatomy. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"

#define S 64

static uint16_t *render(uint64_t seed, int cls, uint32_t idx, cxp_params_t *p)
{
    uint16_t *px = malloc(S * S * sizeof *px);
    cxp_params_t q;
    cxp_draw(seed, cls, idx, p ? p : &q);
    ck_assert_int_eq(cxp_render(p ? p : &q, seed, cls, idx, S, S, px), 0);
    return px;
}

START_TEST(test_deterministic)
{
    uint16_t *a = render(7, 1, 3, NULL), *b = render(7, 1, 3, NULL);
    uint16_t *c = render(7, 1, 4, NULL), *d = render(8, 1, 3, NULL);
    ck_assert(memcmp(a, b, S * S * sizeof *a) == 0);
    ck_assert(memcmp(a, c, S * S * sizeof *a) != 0);
    ck_assert(memcmp(a, d, S * S * sizeof *a) != 0);
    int lo = 65535, hi = 0;
    for (int i = 0; i < S * S; i++) {
        lo = a[i] < lo ? a[i] : lo;
        hi = a[i] > hi ? a[i] : hi;
    }
    ck_assert_msg(lo < 12000 && hi > 25000, "range %d..%d", lo, hi);
    free(a);
    free(b);
    free(c);
    free(d);
}
END_TEST

/* Mean of the noise-free phantom over a box of the normalised plane. */
static double box_mean(const cx_phantom_t *a, double u0, double u1,
                       double v0, double v1)
{
    double s = 0;
    int n = 0;
    for (double v = v0; v < v1; v += 0.01)
        for (double u = u0; u < u1; u += 0.01, n++)
            s += cx_phantom_eval(a, u, v);
    return s / n;
}

START_TEST(test_findings)
{
    int fluid = 0, nodule = 0, heart = 0;
    for (uint32_t i = 0; i < 20; i++) {
        cxp_params_t n, e, q, c;
        cxp_draw(1, 0, i, &n);
        cxp_draw(1, 1, i, &e);
        cxp_draw(1, 2, i, &q);
        cxp_draw(1, 3, i, &c);
        ck_assert(n.anat.fluid_level >= 1.0 && n.anat.nodule_int == 0.0);
        ck_assert(n.grain_sd > 0.005 && n.grain_sd < 0.015);
        /* effusion: the base of at least one lung is filled */
        double left = box_mean(&e.anat, 0.25, 0.4, 0.68, 0.74);
        double right = box_mean(&e.anat, 0.6, 0.75, 0.68, 0.74);
        e.anat.fluid_level = 2.0;
        e.anat.fluid_skew = 0.0;
        double l0 = box_mean(&e.anat, 0.25, 0.4, 0.68, 0.74);
        double r0 = box_mean(&e.anat, 0.6, 0.75, 0.68, 0.74);
        fluid += left > l0 + 0.05 || right > r0 + 0.05;
        /* nodule: brighter than the same anatomy without it */
        double at = cx_phantom_eval(&q.anat, q.anat.nodule_u, q.anat.nodule_v);
        double nu = q.anat.nodule_int;
        q.anat.nodule_int = 0.0;
        nodule += at > cx_phantom_eval(&q.anat, q.anat.nodule_u,
                                       q.anat.nodule_v) + 0.5 * nu;
        heart += c.anat.heart_scale >= 1.25 && n.anat.heart_scale < 1.2;
    }
    ck_assert_int_eq(fluid, 20);
    ck_assert_int_eq(nodule, 20);
    ck_assert_int_eq(heart, 20);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cxphantom");
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_findings);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
