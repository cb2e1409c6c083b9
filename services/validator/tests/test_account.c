/* The quarantine test's statistics, without Redis: binomial tails against
 * closed forms and the decision's conditions one at a time. */
#include <check.h>
#include <math.h>

#include "account.h"

START_TEST(test_binom_upper) {
    ck_assert_double_eq(cx_binom_upper(10, 0, 0.3), 1);
    ck_assert_double_eq(cx_binom_upper(10, 11, 0.3), 0);
    ck_assert_double_eq_tol(cx_binom_upper(10, 10, 0.5), pow(0.5, 10), 1e-15);
    /* P(X >= 1) = 1 - (1 - p)^n */
    ck_assert_double_eq_tol(cx_binom_upper(20, 1, 0.1), 1 - pow(0.9, 20),
                            1e-12);
    /* P(X >= 5), X ~ B(20, 0.1) = 0.0431745... */
    ck_assert_double_eq_tol(cx_binom_upper(20, 5, 0.1), 0.04317450, 1e-7);
    /* tiny tails stay representable */
    double t = cx_binom_upper(200, 190, 0.05);
    ck_assert(t > 0 && t < 1e-200);
}
END_TEST

START_TEST(test_quarantine_decision) {
    cx_quar_conf_t c = {.enabled = 1, .min_samples = 64,
                        .min_pool_samples = 64, .min_excess = 0.25,
                        .alpha = 1e-6, .window = 2000};
    double pv;
    /* a noisy worker against a healthy pool */
    ck_assert_int_eq(cx_quar_test(&c, 100, 95, 500, 10, &pv), 1);
    ck_assert(pv < 1e-6);
    /* too few samples of its own, or of the pool's */
    ck_assert_int_eq(cx_quar_test(&c, 40, 40, 500, 10, &pv), 0);
    ck_assert_int_eq(cx_quar_test(&c, 100, 95, 30, 0, &pv), 0);
    /* far enough above, but not significant at this level */
    c.alpha = 1e-30;
    ck_assert_int_eq(cx_quar_test(&c, 64, 30, 500, 50, &pv), 0);
    c.alpha = 1e-6;
    /* significant but a small excess: a slightly worse GPU is not blamed */
    ck_assert_int_eq(cx_quar_test(&c, 2000, 300, 20000, 2000, &pv), 0);
    /* a whole pool failing (bad profile, not bad hardware): nobody stands
     * out */
    ck_assert_int_eq(cx_quar_test(&c, 200, 190, 800, 760, &pv), 0);
    /* a spotless pool does not make one failure damning */
    ck_assert_int_eq(cx_quar_test(&c, 100, 1, 1000, 0, &pv), 0);
    c.enabled = 0;
    ck_assert_int_eq(cx_quar_test(&c, 100, 95, 500, 10, &pv), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("validator_account");
    TCase *tc = tcase_create("stats");
    tcase_add_test(tc, test_binom_upper);
    tcase_add_test(tc, test_quarantine_decision);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
