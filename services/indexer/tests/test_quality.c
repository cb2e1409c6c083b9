/* Gate figures into Progress: class fields by name, job-level aggregates,
 * privacy counters (cx_index_quality_apply, pure). */
#include <check.h>

#include "quality.h"

START_TEST(test_apply) {
    Cascade__V1__ClassProgress a = CASCADE__V1__CLASS_PROGRESS__INIT,
                               b = CASCADE__V1__CLASS_PROGRESS__INIT;
    Cascade__V1__ClassProgress *cls[2] = {&a, &b};
    cx_progress_t p = CASCADE__V1__PROGRESS__INIT;
    a.name = "normal";
    b.name = "nodule";
    p.classes = cls;
    p.n_classes = 2;
    const char *q[] = {"n:normal",         "300",  "fd:normal",      "2.5",
                       "precision:normal", "0.9",  "recall:normal",  "0.4",
                       "n:nodule",         "100",  "fd:nodule",      "7.25",
                       "precision:nodule", "0.5",  "recall:nodule",  "0.8",
                       "a:normal:1",       "3",    "n:unknown",      "5",
                       "batch_fd",         "11",   "batch_precision", "0.75",
                       "batch_recall",     "0.125", "batch_class",   "normal"};
    cx_index_quality_apply(&p, q, sizeof q / sizeof q[0], "400", "3", "0.01");
    ck_assert_double_eq(a.frechet_distance, 2.5);
    ck_assert_double_eq(a.precision, 0.9);
    ck_assert_double_eq(a.recall, 0.4);
    ck_assert_uint_eq(a.quality_samples, 300);
    ck_assert_double_eq(b.frechet_distance, 7.25);
    ck_assert_uint_eq(b.quality_samples, 100);
    /* job level: the worst class's distance, sample-weighted P and R */
    ck_assert_double_eq(p.frechet_distance, 7.25);
    ck_assert_double_eq_tol(p.precision, (300 * 0.9 + 100 * 0.5) / 400, 1e-12);
    ck_assert_double_eq_tol(p.recall, (300 * 0.4 + 100 * 0.8) / 400, 1e-12);
    ck_assert_uint_eq(p.quality_samples, 400);
    ck_assert_double_eq(p.batch_frechet_distance, 11);
    ck_assert_double_eq(p.batch_precision, 0.75);
    ck_assert_double_eq(p.batch_recall, 0.125);
    ck_assert_uint_eq(p.privacy_checked, 400);
    ck_assert_uint_eq(p.near_copies, 3);
    ck_assert_double_eq(p.privacy_budget, 0.01);
    /* nothing known: zeros, no crash */
    cx_progress_t e = CASCADE__V1__PROGRESS__INIT;
    cx_index_quality_apply(&e, NULL, 0, NULL, NULL, NULL);
    ck_assert_double_eq(e.precision, 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("indexer_quality");
    TCase *tc = tcase_create("quality");
    tcase_add_test(tc, test_apply);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
