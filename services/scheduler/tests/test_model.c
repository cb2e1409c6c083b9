/* The throughput model: priors, robust learning, borrowing, config. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static cx_tput_t *model(void) {
    cx_tput_t *m = cx_tput_new(NULL);
    ck_assert_ptr_nonnull(m);
    return m;
}

START_TEST(test_prior_scales_with_steps_and_pixels) {
    cx_tput_t *m = model();
    int g = cx_tput_gtype(m, "H100");
    cx_tput_prior_gpu(m, g, 0.76);
    int ref = cx_tput_utype(m, "ck", 512, 512, 50);
    int big = cx_tput_utype(m, "ck", 1024, 512, 100);
    ck_assert_double_eq_tol(cx_tput_sps(m, ref, g), 0.76, 1e-12);
    ck_assert_double_eq_tol(cx_tput_sps(m, big, g), 0.76 * 4, 1e-12);
    /* Interning is stable. */
    ck_assert_int_eq(cx_tput_utype(m, "ck", 512, 512, 50), ref);
    ck_assert_int_eq(cx_tput_gtype(m, "H100"), g);
    ck_assert_str_eq(cx_tput_utype_key(m, big), "ck|1024x512|100");
    /* An unknown GPU type gets the default. */
    int cpu = cx_tput_gtype(m, "cpu");
    ck_assert_double_eq_tol(cx_tput_sps(m, ref, cpu), 1.0, 1e-12);
    cx_tput_destroy(m);
}
END_TEST

START_TEST(test_learns_and_clips_outliers) {
    cx_tput_t *m = model();
    int g = cx_tput_gtype(m, "A100"), ut = cx_tput_utype(m, "ck", 512, 512, 50);
    for (int i = 0; i < 200; i++)
        cx_tput_observe(m, ut, g, 50, 52.0 * (1 + 0.02 * ((i % 5) - 2)));
    double est = cx_tput_sps(m, ut, g);
    ck_assert_double_eq_tol(est, 52.0 / 50, 0.02);
    ck_assert(cx_tput_rel_se(m, ut, g) < 0.05);
    /* One stalled batch (100x) moves it by a few per cent at most. */
    cx_tput_observe(m, ut, g, 50, 5200.0);
    ck_assert(cx_tput_sps(m, ut, g) < est * 1.1);
    /* A real change is followed. */
    for (int i = 0; i < 200; i++) cx_tput_observe(m, ut, g, 50, 26.0);
    ck_assert_double_eq_tol(cx_tput_sps(m, ut, g), 26.0 / 50, 0.03);
    /* Nonsense is ignored. */
    cx_tput_observe(m, ut, g, 0, 10);
    cx_tput_observe(m, ut, g, 10, -1);
    cx_tput_observe(m, ut, g, 10, NAN);
    ck_assert_double_eq_tol(cx_tput_sps(m, ut, g), 26.0 / 50, 0.03);
    cx_tput_destroy(m);
}
END_TEST

START_TEST(test_borrows_through_prior_ratio) {
    cx_tput_t *m = model();
    int h = cx_tput_gtype(m, "H100"), a = cx_tput_gtype(m, "A100");
    cx_tput_prior_gpu(m, h, 1.0);
    cx_tput_prior_gpu(m, a, 2.0);
    int ut = cx_tput_utype(m, "ck", 512, 512, 50);
    for (int i = 0; i < 20; i++) cx_tput_observe(m, ut, h, 10, 5.0);
    /* H100 measured at 0.5 s/sample; A100 twice as slow by the priors. */
    ck_assert_double_eq_tol(cx_tput_sps(m, ut, h), 0.5, 1e-9);
    ck_assert_double_eq_tol(cx_tput_sps(m, ut, a), 1.0, 1e-9);
    /* Another unit type on H100 borrows the GPU's measurement. */
    int ut2 = cx_tput_utype(m, "ck", 512, 512, 100);
    ck_assert_double_eq_tol(cx_tput_sps(m, ut2, h), 1.0, 1e-9);
    cx_tput_destroy(m);
}
END_TEST

START_TEST(test_checkpoint_costs) {
    cx_tput_t *m = model();
    int k = cx_tput_ckpt(m, "big");
    ck_assert_double_eq_tol(cx_tput_load_s(m, k), 30, 1e-12);
    cx_tput_set_ckpt(m, k, 90, 40ull << 30);
    ck_assert_double_eq_tol(cx_tput_load_s(m, k), 90, 1e-12);
    ck_assert_uint_eq(cx_tput_mem(m, k), 40ull << 30);
    cx_tput_observe_load(m, k, 60);
    ck_assert_double_eq_tol(cx_tput_load_s(m, k), 60, 1e-9);
    cx_tput_destroy(m);
}
END_TEST

START_TEST(test_cells_and_restore) {
    cx_tput_t *m = model(), *m2 = model();
    int g = cx_tput_gtype(m, "L40S"), ut = cx_tput_utype(m, "ck", 256, 256, 20);
    cx_tput_observe(m, ut, g, 10, 7);
    cx_tput_observe(m, ut, g, 10, 8);
    cx_tput_cell_t cells[4];
    ck_assert_uint_eq(cx_tput_cells(m, cells, 4), 1);
    ck_assert_uint_eq(cells[0].n, 2);
    int g2 = cx_tput_gtype(m2, "L40S"), ut2 = cx_tput_utype(m2, "ck", 256, 256, 20);
    cx_tput_restore(m2, ut2, g2, cells[0].mean_log, cells[0].var_log,
                    cells[0].n);
    ck_assert_double_eq_tol(cx_tput_sps(m2, ut2, g2), cx_tput_sps(m, ut, g),
                            1e-12);
    cx_tput_destroy(m);
    cx_tput_destroy(m2);
}
END_TEST

START_TEST(test_configure_json) {
    cx_tput_t *m = model();
    const char *doc =
        "{\"reference\": {\"width\": 256, \"height\": 256, \"steps\": 10},"
        " \"default_sec_per_sample\": 2, \"default_load_s\": 5,"
        " \"gpu_types\": {\"H100\": {\"sec_per_sample\": 0.5}},"
        " \"cells\": [{\"checkpoint\": \"c\", \"width\": 64, \"height\": 64,"
        "   \"steps\": 4, \"gpu_type\": \"cpu\", \"sec_per_sample\": 0.01}],"
        " \"checkpoints\": {\"c\": {\"load_s\": 1.5, \"mem_bytes\": 1000}},"
        " \"learn\": {\"alpha_min\": 0.1, \"clip\": 2.5}}";
    cx_err_t err = {0};
    ck_assert_int_eq(cx_tput_configure_json(m, doc, strlen(doc), &err), 0);
    int h = cx_tput_gtype(m, "H100"), cpu = cx_tput_gtype(m, "cpu");
    int ref = cx_tput_utype(m, "x", 256, 256, 10);
    int c = cx_tput_utype(m, "c", 64, 64, 4);
    ck_assert_double_eq_tol(cx_tput_sps(m, ref, h), 0.5, 1e-12);
    ck_assert_double_eq_tol(cx_tput_sps(m, ref, cpu), 2.0, 1e-12);
    ck_assert_double_eq_tol(cx_tput_sps(m, c, cpu), 0.01, 1e-12);
    ck_assert_double_eq_tol(cx_tput_load_s(m, cx_tput_ckpt(m, "c")), 1.5, 1e-12);
    ck_assert_uint_eq(cx_tput_mem(m, cx_tput_ckpt(m, "c")), 1000);
    ck_assert_double_eq_tol(cx_tput_conf(m)->clip, 2.5, 1e-12);

    const char *bad = "{\"gpu_types\": {\"H100\": {\"speed\": 1}}}";
    ck_assert_int_eq(cx_tput_configure_json(m, bad, strlen(bad), &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "gpu_types.H100.speed"));
    const char *neg = "{\"default_load_s\": -1}";
    ck_assert_int_eq(cx_tput_configure_json(m, neg, strlen(neg), &err), -1);
    ck_assert_int_eq(cx_tput_configure_json(m, "{", 1, &err), -1);
    cx_tput_destroy(m);
}
END_TEST

START_TEST(test_key_roundtrip) {
    char buf[200], ck[64];
    uint32_t w, h, s;
    cx_tput_key_format(buf, sizeof buf, "ref-cxr-v0", 512, 256, 50);
    ck_assert_str_eq(buf, "ref-cxr-v0|512x256|50");
    ck_assert_int_eq(cx_tput_key_parse(buf, ck, sizeof ck, &w, &h, &s), 0);
    ck_assert_str_eq(ck, "ref-cxr-v0");
    ck_assert_uint_eq(w, 512);
    ck_assert_uint_eq(h, 256);
    ck_assert_uint_eq(s, 50);
    ck_assert_int_eq(cx_tput_key_parse("nobar", ck, sizeof ck, &w, &h, &s), -1);
    ck_assert_int_eq(cx_tput_key_parse("a|1x2|3x", ck, sizeof ck, &w, &h, &s), -1);
    ck_assert_int_eq(cx_tput_key_parse("|1x2|3", ck, sizeof ck, &w, &h, &s), -1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("sched_model");
    TCase *tc = tcase_create("model");
    tcase_add_test(tc, test_prior_scales_with_steps_and_pixels);
    tcase_add_test(tc, test_learns_and_clips_outliers);
    tcase_add_test(tc, test_borrows_through_prior_ratio);
    tcase_add_test(tc, test_checkpoint_costs);
    tcase_add_test(tc, test_cells_and_restore);
    tcase_add_test(tc, test_configure_json);
    tcase_add_test(tc, test_key_roundtrip);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
