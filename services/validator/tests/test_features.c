/* cx_feat: each measurement on images whose answer is known. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gates.h"
#include "imgfeat.h"

#define W 256
#define H 256

static uint64_t rs;
static double ur(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) / 9007199254740992.0;
}

static cx_feat_ws_t *ws;
static void setup(void) { ws = cx_feat_ws_new(NULL); }
static void teardown(void) { cx_feat_ws_destroy(ws); }

static uint16_t q16(double v) {
    return (uint16_t)(v < 0 ? 0 : v > 1 ? 65535 : lround(v * 65535));
}

/* A smooth dome with a little grain. */
static uint16_t *dome(double grain) {
    uint16_t *px = malloc(W * H * sizeof *px);
    rs = 42;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double dx = (x - W / 2.0) / W, dy = (y - H / 2.0) / H;
            double v = 0.15 + 0.6 * exp(-(dx * dx + dy * dy) * 6) +
                       grain * (ur() - 0.5);
            px[y * W + x] = q16(v);
        }
    return px;
}

static cx_feat_t measure(const uint16_t *px, int depth) {
    cx_feat_t f;
    cx_err_t e;
    ck_assert_msg(cx_feat_compute(ws, px, W, H, depth, &f, &e) == 0, "%s",
                  e.msg);
    return f;
}

START_TEST(test_constant) {
    uint16_t *px = malloc(W * H * sizeof *px);
    for (int i = 0; i < W * H; i++) px[i] = 30000;
    cx_feat_t f = measure(px, 16);
    ck_assert_double_eq(f.std, 0);
    ck_assert_double_eq(f.range, 0);
    ck_assert_double_eq(f.hf, 0);
    ck_assert_double_eq(f.lap_var, 0);
    ck_assert_double_eq(f.repeat, 0);
    ck_assert_double_eq(f.hf_ratio, 0);
    ck_assert_double_eq(f.fg_area, 1);
    ck_assert_double_eq_tol(f.mean, 30000.0 / 65535, 1e-12);
    for (int i = 0; i < CX_FEAT_PRIV_DIM; i++) ck_assert(f.vec[i] == 0.0f);
    free(px);
}
END_TEST

/* The legacy three scores are the ones cx_gates_score computes. */
START_TEST(test_legacy_agree) {
    uint16_t *px = dome(0.02);
    cx_gate_scores_t s;
    ck_assert_int_eq(cx_gates_score(px, W, H, 16, &s, NULL), 0);
    cx_feat_t f = measure(px, 16);
    ck_assert_double_eq_tol(f.range, s.range, 1e-12);
    ck_assert_double_eq_tol(f.clip, s.clip, 1e-12);
    ck_assert_double_eq_tol(f.hf, s.hf, 1e-9 * s.hf);
    free(px);
}
END_TEST

/* Full-scale units: the same picture at 8 and 16 bits measures the same. */
START_TEST(test_depth_invariant) {
    uint16_t *p8 = dome(0.02), *p16 = malloc(W * H * sizeof *p16);
    for (int i = 0; i < W * H; i++) {
        p8[i] = (uint16_t)(p8[i] >> 8);
        p16[i] = (uint16_t)(p8[i] * 257);
    }
    cx_feat_t a = measure(p8, 8), b = measure(p16, 16);
    ck_assert_double_eq_tol(a.mean, b.mean, 1e-12);
    ck_assert_double_eq_tol(a.std, b.std, 1e-12);
    ck_assert_double_eq_tol(a.skew, b.skew, 1e-9);
    ck_assert_double_eq_tol(a.lap_var, b.lap_var, 1e-12);
    ck_assert_double_eq_tol(a.hf_ratio, b.hf_ratio, 1e-6);
    ck_assert_double_eq_tol(a.fg_area, b.fg_area, 1e-12);
    ck_assert_double_eq_tol(a.symmetry, b.symmetry, 1e-9);
    for (int i = 0; i < CX_FEAT_PRIV_DIM; i++)
        ck_assert_float_eq_tol(a.vec[i], b.vec[i], 1e-5);
    free(p8);
    free(p16);
}
END_TEST

/* Uniform white noise: 3/4 of the disc's area is at >= 0.5 Nyquist, the
 * spectrum is flat, the Laplacian variance is 20 times the pixel variance,
 * nothing repeats, nothing is symmetric. */
START_TEST(test_white_noise) {
    uint16_t *px = malloc(W * H * sizeof *px);
    rs = 7;
    for (int i = 0; i < W * H; i++) px[i] = (uint16_t)(ur() * 65536);
    cx_feat_t f = measure(px, 16);
    ck_assert_msg(fabs(f.hf_ratio - 0.75) < 0.03, "hf_ratio %g", f.hf_ratio);
    ck_assert_msg(fabs(f.lap_var / (20.0 / 12) - 1) < 0.03, "lap_var %g",
                  f.lap_var);
    ck_assert_msg(fabs(f.hf - 20) < 1, "hf %g", f.hf);
    for (int b = 1; b < CX_FEAT_NSPEC; b++)
        ck_assert_msg(fabs(f.spec[b] - log10(1.0 / 12)) < 0.15,
                      "band %d: %g", b, f.spec[b]);
    ck_assert_msg(f.repeat < 0.2, "repeat %g", f.repeat);
    ck_assert_msg(fabs(f.symmetry) < 0.1, "symmetry %g", f.symmetry);
    ck_assert_msg(fabs(f.skew) < 0.05 && fabs(f.kurt + 1.2) < 0.05,
                  "skew %g kurt %g", f.skew, f.kurt);
    free(px);
}
END_TEST

/* Smoothing removes high frequencies: both spectral and Laplacian
 * measures drop by orders of magnitude. */
START_TEST(test_smoothing) {
    uint16_t *px = dome(0.05), *bl = malloc(W * H * sizeof *bl);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double s = 0;
            int n = 0;
            for (int dy = -2; dy <= 2; dy++)
                for (int dx = -2; dx <= 2; dx++) {
                    int yy = y + dy, xx = x + dx;
                    if (yy < 0 || xx < 0 || yy >= H || xx >= W) continue;
                    s += px[yy * W + xx];
                    n++;
                }
            bl[y * W + x] = (uint16_t)lround(s / n);
        }
    cx_feat_t a = measure(px, 16), b = measure(bl, 16);
    ck_assert_msg(b.hf_ratio < a.hf_ratio / 20, "%g vs %g", b.hf_ratio,
                  a.hf_ratio);
    ck_assert_msg(b.lap_var < a.lap_var / 20, "%g vs %g", b.lap_var,
                  a.lap_var);
    free(px);
    free(bl);
}
END_TEST

/* A 64x64 patch tiled 4x4 repeats exactly; the dome does not. */
START_TEST(test_repeat) {
    uint16_t *px = malloc(W * H * sizeof *px);
    rs = 3;
    for (int i = 0; i < W * H; i++) px[i] = q16(0.3 + 0.4 * ur());
    uint16_t *t = malloc(W * H * sizeof *t);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            t[y * W + x] = px[(y % 64 + 17) * W + x % 64 + 33];
    cx_feat_t a = measure(t, 16);
    ck_assert_msg(a.repeat > 0.95, "tiled: repeat %g", a.repeat);
    uint16_t *d = dome(0.05);
    cx_feat_t b = measure(d, 16);
    ck_assert_msg(b.repeat < 0.6, "dome: repeat %g", b.repeat);
    free(px);
    free(t);
    free(d);
}
END_TEST

/* A bright square in the top-left quadrant: Otsu finds it, its area and
 * centroid come out; its mirror image is perfectly symmetric. */
START_TEST(test_structure) {
    uint16_t *px = malloc(W * H * sizeof *px);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            px[y * W + x] = (x < W / 2 && y < H / 2) ? 50000 : 10000;
    cx_feat_t f = measure(px, 16);
    ck_assert_double_eq_tol(f.fg_area, 0.25, 1e-12);
    ck_assert_double_eq_tol(f.fg_cx, 0.25, 1e-12);
    ck_assert_double_eq_tol(f.fg_cy, 0.25, 1e-12);
    ck_assert_msg(f.otsu > 10000.0 / 65535 && f.otsu <= 50000.0 / 65535,
                  "otsu %g", f.otsu);
    ck_assert_double_eq_tol(f.body_mean, 50000.0 / 65535, 1e-12);
    ck_assert_double_eq(f.body_std, 0);
    /* mirrored, the top half anti-correlates and the bottom matches */
    ck_assert_double_eq_tol(f.symmetry, -1.0 / 3, 1e-9);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            px[y * W + x] = (y < H / 2) ? 50000 : 10000;
    f = measure(px, 16);
    ck_assert_double_eq_tol(f.symmetry, 1, 1e-12);
    ck_assert_double_eq_tol(f.fg_cx, 0.5, 1e-12);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            px[y * W + x] = (x < W / 2) ? 50000 : 10000;
    f = measure(px, 16);
    ck_assert_double_eq_tol(f.symmetry, -1, 1e-12);
    free(px);
}
END_TEST

/* Clipping: pixels at 0 or full scale. */
START_TEST(test_clip) {
    uint16_t *px = dome(0.02);
    for (int i = 0; i < W * H; i++) px[i] = px[i] > 30000 ? 65535 : px[i];
    cx_feat_t f = measure(px, 16);
    ck_assert_msg(f.clip > 0.05, "clip %g", f.clip);
    free(px);
}
END_TEST

START_TEST(test_float_and_errors) {
    float *fp = malloc(W * H * sizeof *fp);
    for (int i = 0; i < W * H; i++) fp[i] = (float)(i % 97) / 97.0f;
    fp[5] = NAN;
    fp[6] = INFINITY;
    cx_feat_t f;
    cx_err_t e;
    ck_assert_int_eq(cx_feat_compute_float(ws, fp, W, H, &f, &e), 0);
    ck_assert_double_eq_tol(f.nonfinite, 2.0 / (W * H), 1e-15);
    uint16_t px[64] = {0};
    ck_assert_int_eq(cx_feat_compute(ws, px, 4, 16, 16, &f, &e), -1);
    ck_assert_int_eq(e.code, CX_EINVAL);
    ck_assert_int_eq(cx_feat_compute(ws, px, 8, 8, 12, &f, &e), -1);
    ck_assert_int_eq(cx_feat_compute(ws, px, 8, 8, 16, &f, &e), 0);
    ck_assert_int_ge(cx_feat_measure_index("repeat"), 0);
    ck_assert_int_eq(cx_feat_measure_index("nope"), -1);
    free(fp);
}
END_TEST

/* Same input, same bytes: the measures do not depend on scratch state. */
START_TEST(test_deterministic) {
    uint16_t *px = dome(0.05);
    cx_feat_t a = measure(px, 16);
    uint16_t junk[W * 16];
    memset(junk, 0xff, sizeof junk);
    cx_feat_t tmp;
    cx_feat_compute(ws, junk, W, 16, 16, &tmp, NULL);
    cx_feat_t b = measure(px, 16);
    ck_assert(memcmp(&a, &b, sizeof a) == 0);
    free(px);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gates_features");
    TCase *tc = tcase_create("features");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_constant);
    tcase_add_test(tc, test_legacy_agree);
    tcase_add_test(tc, test_depth_invariant);
    tcase_add_test(tc, test_white_noise);
    tcase_add_test(tc, test_smoothing);
    tcase_add_test(tc, test_repeat);
    tcase_add_test(tc, test_structure);
    tcase_add_test(tc, test_clip);
    tcase_add_test(tc, test_float_and_errors);
    tcase_add_test(tc, test_deterministic);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
