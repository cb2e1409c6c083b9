/* Gates on synthetic images: what passes and what fails, and why. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gates.h"

#define W 256
#define H 256

static uint64_t rng_state;
static double urand(void) { /* xorshift64*, uniform in [0, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}
static double nrand(void) {
    double u1 = urand() + 1e-300, u2 = urand();
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

static const cx_gate_thresholds_t defaults = {
    CX_GATE_DEFAULT_MIN_RANGE, CX_GATE_DEFAULT_MAX_CLIP,
    CX_GATE_DEFAULT_MAX_HF};

static uint16_t clampv(double v, double fs) {
    return (uint16_t)(v < 0 ? 0 : v > fs ? fs : lround(v));
}

/* A smooth radiograph-like field: a broad dome and a gradient, plus mild
 * Gaussian pixel noise of sigma (in full-scale units). */
static uint16_t *smooth_image(double sigma, int depth) {
    double fs = depth == 16 ? 65535.0 : 255.0;
    uint16_t *px = malloc(W * H * sizeof *px);
    rng_state = 0x9e3779b97f4a7c15ULL;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double dx = (x - W / 2.0) / W, dy = (y - H / 2.0) / H;
            double v = 0.15 + 0.6 * exp(-(dx * dx + dy * dy) * 6) +
                       0.1 * (double)y / H;
            px[y * W + x] = clampv((v + sigma * nrand()) * fs, fs);
        }
    return px;
}

START_TEST(test_score_constant) {
    uint16_t *px = malloc(W * H * sizeof *px);
    for (int i = 0; i < W * H; i++) px[i] = 30000;
    cx_gate_scores_t s;
    ck_assert_int_eq(cx_gates_score(px, W, H, 16, &s, NULL), 0);
    ck_assert_double_eq(s.range, 0.0);
    ck_assert_double_eq(s.clip, 0.0);
    ck_assert_double_eq(s.hf, 0.0);
    char reason[128];
    ck_assert_int_eq(cx_gates_judge(&s, &defaults, reason, sizeof reason), 0);
    ck_assert_msg(strncmp(reason, "range ", 6) == 0, "reason: %s", reason);
    ck_assert_ptr_nonnull(strstr(reason, "min_range 0.2"));
    free(px);
}
END_TEST

START_TEST(test_score_uniform_noise_fails_hf) {
    uint16_t *px = malloc(W * H * sizeof *px);
    rng_state = 12345;
    for (int i = 0; i < W * H; i++) px[i] = (uint16_t)(urand() * 65536.0);
    cx_gate_scores_t s;
    ck_assert_int_eq(cx_gates_score(px, W, H, 16, &s, NULL), 0);
    /* i.i.d. pixels: E[L^2] = 20 var. */
    ck_assert_msg(fabs(s.hf - 20.0) < 1.0, "hf %g", s.hf);
    ck_assert_msg(s.range > 0.95, "range %g", s.range);
    ck_assert_msg(s.clip < 0.001, "clip %g", s.clip);
    char reason[128];
    ck_assert_int_eq(cx_gates_judge(&s, &defaults, reason, sizeof reason), 0);
    ck_assert_msg(strncmp(reason, "hf ", 3) == 0, "reason: %s", reason);
    free(px);
}
END_TEST

START_TEST(test_score_smooth_passes) {
    uint16_t *px = smooth_image(0.002, 16);
    cx_gate_scores_t s;
    ck_assert_int_eq(cx_gates_score(px, W, H, 16, &s, NULL), 0);
    ck_assert_msg(s.range > 0.4 && s.range < 0.8, "range %g", s.range);
    ck_assert_double_eq(s.clip, 0.0);
    ck_assert_msg(s.hf < 0.05 * CX_GATE_DEFAULT_MAX_HF, "hf %g", s.hf);
    char reason[128] = "x";
    ck_assert_int_eq(cx_gates_judge(&s, &defaults, reason, sizeof reason), 1);
    ck_assert_str_eq(reason, "");
    free(px);
}
END_TEST

START_TEST(test_score_8bit) {
    uint16_t *px = smooth_image(0.002, 8);
    cx_gate_scores_t s;
    ck_assert_int_eq(cx_gates_score(px, W, H, 8, &s, NULL), 0);
    ck_assert_msg(s.range > 0.4 && s.range < 0.8, "range %g", s.range);
    ck_assert_int_eq(cx_gates_judge(&s, &defaults, NULL, 0), 1);
    free(px);
}
END_TEST

START_TEST(test_score_clipped_fails) {
    /* The same smooth image, overexposed: the dome saturates. */
    uint16_t *px = smooth_image(0.002, 16);
    for (int i = 0; i < W * H; i++)
        px[i] = clampv(px[i] * 1.6, 65535.0);
    cx_gate_scores_t s;
    ck_assert_int_eq(cx_gates_score(px, W, H, 16, &s, NULL), 0);
    ck_assert_msg(s.clip > 0.05, "clip %g", s.clip);
    char reason[128];
    ck_assert_int_eq(cx_gates_judge(&s, &defaults, reason, sizeof reason), 0);
    ck_assert_msg(strncmp(reason, "clip ", 5) == 0, "reason: %s", reason);
    free(px);
}
END_TEST

START_TEST(test_score_bad_input) {
    uint16_t px[4] = {0};
    cx_gate_scores_t s;
    cx_err_t e;
    ck_assert_int_eq(cx_gates_score(px, 2, 2, 12, &s, &e), -1);
    ck_assert_int_eq(e.code, CX_EINVAL);
    ck_assert_int_eq(cx_gates_score(px, 0, 2, 16, &s, &e), -1);
}
END_TEST

START_TEST(test_thresholds_override) {
    Cascade__V1__Threshold t1 = CASCADE__V1__THRESHOLD__INIT;
    Cascade__V1__Threshold t2 = CASCADE__V1__THRESHOLD__INIT;
    Cascade__V1__Threshold t3 = CASCADE__V1__THRESHOLD__INIT;
    t1.gate = "max_hf";
    t1.value = 0.5;
    t2.gate = "not_a_gate";
    t2.value = 99;
    t3.gate = "min_range";
    t3.value = 0.7;
    Cascade__V1__Threshold *ts[] = {&t1, &t2, &t3};
    Cascade__V1__ValidationCriteria crit =
        CASCADE__V1__VALIDATION_CRITERIA__INIT;
    crit.n_thresholds = 3;
    crit.thresholds = ts;
    cx_gate_thresholds_t out;
    cx_gates_thresholds_for(&defaults, &crit, &out);
    ck_assert_double_eq(out.max_hf, 0.5);
    ck_assert_double_eq(out.min_range, 0.7);
    ck_assert_double_eq(out.max_clip, CX_GATE_DEFAULT_MAX_CLIP);
    cx_gates_thresholds_for(&defaults, NULL, &out);
    ck_assert_double_eq(out.max_hf, CX_GATE_DEFAULT_MAX_HF);

    /* A stricter job threshold fails an image the defaults pass. */
    uint16_t *px = smooth_image(0.002, 16);
    cx_gate_scores_t s;
    ck_assert_int_eq(cx_gates_score(px, W, H, 16, &s, NULL), 0);
    cx_gates_thresholds_for(&defaults, &crit, &out);
    char reason[128];
    ck_assert_int_eq(cx_gates_judge(&s, &out, reason, sizeof reason), 0);
    ck_assert_ptr_nonnull(strstr(reason, "min_range 0.7"));
    free(px);
}
END_TEST

START_TEST(test_judge_boundaries) {
    cx_gate_thresholds_t t = {0.2, 0.01, 2.0};
    cx_gate_scores_t s = {0.2, 0.01, 2.0}; /* exactly at the bounds: pass */
    ck_assert_int_eq(cx_gates_judge(&s, &t, NULL, 0), 1);
    s.hf = 2.0001;
    char reason[128];
    ck_assert_int_eq(cx_gates_judge(&s, &t, reason, sizeof reason), 0);
    ck_assert_msg(strstr(reason, "max_hf 2") != NULL, "reason: %s", reason);
}
END_TEST

int main(void) {
    Suite *s = suite_create("validator_gates");
    TCase *tc = tcase_create("gates");
    tcase_add_test(tc, test_score_constant);
    tcase_add_test(tc, test_score_uniform_noise_fails_hf);
    tcase_add_test(tc, test_score_smooth_passes);
    tcase_add_test(tc, test_score_8bit);
    tcase_add_test(tc, test_score_clipped_fails);
    tcase_add_test(tc, test_score_bad_input);
    tcase_add_test(tc, test_thresholds_override);
    tcase_add_test(tc, test_judge_boundaries);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
