#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/metrics.h"

START_TEST(test_render) {
    cx_metrics_t *m = cx_metrics_new();
    cx_metric_t *c = cx_metrics_counter(m, "cascade_t_units_total",
                                        "Units done", "class", "normal");
    cx_metric_t *c2 = cx_metrics_counter(m, "cascade_t_units_total",
                                         "Units done", "class", "a\"b\\c\nd");
    cx_metric_t *g = cx_metrics_gauge(m, "cascade_t_queue", "Queue\\depth\nnow",
                                      NULL, NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(c2);
    ck_assert_ptr_ne(c, c2);
    /* same name and label: the same handle */
    ck_assert_ptr_eq(cx_metrics_counter(m, "cascade_t_units_total", "x",
                                        "class", "normal"),
                     c);
    cx_metric_add(c, 2);
    cx_metric_add(c, 1.5);
    cx_metric_add(c2, 1);
    cx_metric_set(g, 7);
    cx_metric_set(g, -3);
    cx_metric_add(NULL, 1);
    cx_metric_set(NULL, 1);
    ck_assert_double_eq(cx_metric_value(c), 3.5);
    ck_assert_double_eq(cx_metric_value(g), -3);

    cx_buf_t out = {0};
    ck_assert_int_eq(cx_metrics_render(m, &out), 0);
    ck_assert_str_eq((char *)out.data,
                     "# HELP cascade_t_units_total Units done\n"
                     "# TYPE cascade_t_units_total counter\n"
                     "cascade_t_units_total{class=\"normal\"} 3.5\n"
                     "cascade_t_units_total{class=\"a\\\"b\\\\c\\nd\"} 1\n"
                     "# HELP cascade_t_queue Queue\\\\depth\\nnow\n"
                     "# TYPE cascade_t_queue gauge\n"
                     "cascade_t_queue -3\n");
    cx_buf_free(&out);
    /* a name registered as a counter is not also a gauge */
    ck_assert_ptr_null(cx_metrics_gauge(m, "cascade_t_units_total", "", NULL,
                                        NULL));
    cx_metrics_destroy(m);
    cx_metrics_destroy(NULL);
}
END_TEST

static void *bump(void *arg) {
    for (int i = 0; i < 10000; i++) cx_metric_add(arg, 1);
    return NULL;
}

START_TEST(test_threads) {
    cx_metrics_t *m = cx_metrics_new();
    cx_metric_t *c = cx_metrics_counter(m, "n_total", "n", NULL, NULL);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, bump, c);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    ck_assert_double_eq(cx_metric_value(c), 40000);
    cx_metrics_destroy(m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, test_render);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
