/* Batch validation against a real file:// store: per-sample verdicts, the
 * packed Verdict, missing samples and skipped batches. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/png16.h"
#include "cascade/sha256.h"
#include "cx_testenv.h"
#include "validate.h"

#define W 128
#define H 96
#define JOB "job-val"
#define UNIT "0123456789abcdef0123456789abcdef"

static cx_store_t *store;
static char *root;
static cx_validator_t *val;
static const cx_gate_thresholds_t defaults = {
    CX_GATE_DEFAULT_MIN_RANGE, CX_GATE_DEFAULT_MAX_CLIP,
    CX_GATE_DEFAULT_MAX_HF};

typedef enum { IMG_GOOD, IMG_NOISE, IMG_SMALL, IMG_CORRUPT, IMG_NONE } img_t;

/* The batch under test: storage for the protobuf structs. */
typedef struct fixture {
    cx_unit_t unit;
    Cascade__V1__GenerationParams params;
    Cascade__V1__ValidationCriteria crit;
    Cascade__V1__Threshold th;
    Cascade__V1__Threshold *ths[1];
    Cascade__V1__StageTiming timing;
    cx_staged_t b;
    Cascade__V1__StagedSample s[8];
    Cascade__V1__StagedSample *sp[8];
    char keys[8][128];
    char sha[8][65];
} fixture_t;

static uint64_t rs = 88172645463325252ULL;
static uint32_t xr(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)rs;
}

static void put_image(fixture_t *f, int i, img_t kind) {
    uint32_t w = kind == IMG_SMALL ? W / 2 : W, h = H;
    uint16_t *px = malloc((size_t)w * h * sizeof *px);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            double v = 8000 + 40000.0 * x / w + 10000.0 * y / h;
            px[y * w + x] = kind == IMG_NOISE ? (uint16_t)xr()
                                              : (uint16_t)(v + (xr() % 64));
        }
    cx_buf_t png = {0};
    ck_assert_int_eq(cx_png_encode(px, w, h, 16, 1, &png, NULL), 0);
    if (kind == IMG_CORRUPT) png.len /= 2;
    if (kind != IMG_NONE) {
        ck_assert_int_eq(
            cx_store_put(store, f->keys[i], png.data, png.len, NULL), 0);
        cx_sha256_hex(png.data, png.len, f->sha[i]);
    }
    cx_buf_free(&png);
    free(px);
}

static fixture_t *make_batch(const img_t *kinds, int n, const char *unit_id) {
    fixture_t *f = calloc(1, sizeof *f);
    cascade__v1__work_unit__init(&f->unit);
    cascade__v1__generation_params__init(&f->params);
    cascade__v1__validation_criteria__init(&f->crit);
    cascade__v1__stage_timing__init(&f->timing);
    cascade__v1__staged_batch__init(&f->b);
    f->params.width = W;
    f->params.height = H;
    f->params.bit_depth = 16;
    f->unit.job_id = JOB;
    f->unit.unit_id = (char *)unit_id;
    f->unit.class_name = "normal";
    f->unit.sample_count = (uint32_t)n;
    f->unit.params = &f->params;
    f->unit.validation = &f->crit;
    f->timing.generate_ms = 12.5;
    f->b.unit = &f->unit;
    f->b.worker_id = "w1";
    f->b.attempt = 2;
    f->b.epoch = 77;
    f->b.timing = &f->timing;
    for (int i = 0; i < n; i++) {
        cascade__v1__staged_sample__init(&f->s[i]);
        snprintf(f->keys[i], sizeof f->keys[i], "%s/staging/%s/2/%d.png", JOB,
                 unit_id, i);
        f->s[i].index = (uint32_t)i;
        f->s[i].key = f->keys[i];
        f->sp[i] = &f->s[i];
        put_image(f, i, kinds[i]);
    }
    f->b.n_samples = (size_t)n;
    f->b.samples = f->sp;
    return f;
}

static Cascade__V1__Verdict *run(fixture_t *f, cx_validate_outcome_t want) {
    cx_buf_t out = {0};
    cx_validate_outcome_t oc;
    cx_validate_stats_t st;
    cx_err_t e;
    int rc = cx_validate_batch(val, store, &f->b, &out, &oc, &st, &e);
    ck_assert_msg(rc == 0, "validate: %s", e.msg);
    ck_assert_int_eq(oc, want);
    if (oc != CX_VALIDATE_VERDICT) {
        ck_assert_uint_eq(out.len, 0);
        return NULL;
    }
    ck_assert_uint_eq(st.samples, f->b.n_samples);
    Cascade__V1__Verdict *v =
        cascade__v1__verdict__unpack(NULL, out.len, out.data);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(st.passed, v->passed);
    cx_buf_free(&out);
    return v;
}

static void setup(void) {
    root = cx_testenv_tmpdir("validator");
    ck_assert_ptr_nonnull(root);
    store = cx_store_open(root, NULL);
    ck_assert_ptr_nonnull(store);
    val = cx_validator_new(&defaults, 2, NULL);
    ck_assert_ptr_nonnull(val);
}

static void teardown(void) {
    cx_validator_destroy(val);
    cx_store_delete_prefix(store, JOB, NULL);
    cx_store_destroy(store);
    remove(root);
    free(root);
}

START_TEST(test_batch_mixed) {
    img_t kinds[] = {IMG_GOOD, IMG_NOISE, IMG_GOOD, IMG_SMALL, IMG_CORRUPT};
    fixture_t *f = make_batch(kinds, 5, UNIT);
    Cascade__V1__Verdict *v = run(f, CX_VALIDATE_VERDICT);

    ck_assert_str_eq(v->unit->unit_id, UNIT);
    ck_assert_str_eq(v->worker_id, "w1");
    ck_assert_uint_eq(v->attempt, 2);
    ck_assert_uint_eq(v->epoch, 77);
    ck_assert_ptr_nonnull(v->timing);
    ck_assert_double_eq(v->timing->generate_ms, 12.5);
    ck_assert(v->validate_ms > 0);
    ck_assert(v->verdict_unix_ms > 0);
    ck_assert_uint_eq(v->n_samples, 5);
    ck_assert_uint_eq(v->passed, 2);

    for (size_t i = 0; i < 5; i++) {
        const Cascade__V1__SampleVerdict *s = v->samples[i];
        ck_assert_uint_eq(s->index, i);
        ck_assert_str_eq(s->key, f->keys[i]);
        /* The hash is of the staged PNG bytes, pass or fail. */
        ck_assert_str_eq(s->sha256, f->sha[i]);
    }
    ck_assert(v->samples[0]->pass);
    ck_assert_str_eq(v->samples[0]->reason, "");
    ck_assert_uint_eq(v->samples[0]->n_scores, 3);
    ck_assert_str_eq(v->samples[0]->scores[0]->name, "range");
    ck_assert(v->samples[0]->scores[0]->value > 0.5);
    ck_assert(!v->samples[1]->pass);
    ck_assert_msg(strncmp(v->samples[1]->reason, "hf ", 3) == 0, "%s",
                  v->samples[1]->reason);
    ck_assert(v->samples[2]->pass);
    ck_assert(!v->samples[3]->pass);
    ck_assert_msg(strstr(v->samples[3]->reason, "size 64x96") != NULL, "%s",
                  v->samples[3]->reason);
    ck_assert(!v->samples[4]->pass);
    ck_assert_msg(strncmp(v->samples[4]->reason, "decode", 6) == 0, "%s",
                  v->samples[4]->reason);
    ck_assert_uint_eq(v->samples[4]->n_scores, 0);

    cascade__v1__verdict__free_unpacked(v, NULL);
    free(f);
}
END_TEST

START_TEST(test_batch_job_thresholds) {
    img_t kinds[] = {IMG_GOOD, IMG_GOOD};
    fixture_t *f = make_batch(kinds, 2, UNIT);
    cascade__v1__threshold__init(&f->th);
    f->th.gate = "min_range";
    f->th.value = 0.99;
    f->ths[0] = &f->th;
    f->crit.n_thresholds = 1;
    f->crit.thresholds = f->ths;
    Cascade__V1__Verdict *v = run(f, CX_VALIDATE_VERDICT);
    ck_assert_uint_eq(v->passed, 0);
    ck_assert_ptr_nonnull(strstr(v->samples[0]->reason, "min_range 0.99"));
    cascade__v1__verdict__free_unpacked(v, NULL);
    free(f);
}
END_TEST

START_TEST(test_batch_missing_uncommitted) {
    img_t kinds[] = {IMG_GOOD, IMG_NONE};
    fixture_t *f = make_batch(kinds, 2, UNIT);
    Cascade__V1__Verdict *v = run(f, CX_VALIDATE_VERDICT);
    ck_assert_uint_eq(v->passed, 1);
    ck_assert(!v->samples[1]->pass);
    ck_assert_str_eq(v->samples[1]->reason, "staged sample missing");
    cascade__v1__verdict__free_unpacked(v, NULL);
    free(f);
}
END_TEST

START_TEST(test_batch_missing_committed) {
    img_t kinds[] = {IMG_NONE, IMG_NONE};
    fixture_t *f = make_batch(kinds, 2, UNIT);
    char mkey[256];
    ck_assert_int_eq(cx_validate_manifest_key(JOB, UNIT, mkey, sizeof mkey), 0);
    ck_assert_str_eq(mkey, JOB "/manifests/" UNIT ".json");
    ck_assert_int_eq(cx_store_put(store, mkey, "{}", 2, NULL), 0);
    run(f, CX_VALIDATE_SKIP_COMMITTED);
    free(f);
}
END_TEST

START_TEST(test_batch_failed_attempt) {
    img_t kinds[] = {IMG_GOOD};
    fixture_t *f = make_batch(kinds, 1, UNIT);
    f->b.failure = "model load failed";
    run(f, CX_VALIDATE_SKIP_FAILED);
    free(f);
}
END_TEST

START_TEST(test_batch_empty) {
    fixture_t *f = make_batch(NULL, 0, UNIT);
    Cascade__V1__Verdict *v = run(f, CX_VALIDATE_VERDICT);
    ck_assert_uint_eq(v->n_samples, 0);
    ck_assert_uint_eq(v->passed, 0);
    cascade__v1__verdict__free_unpacked(v, NULL);
    free(f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("validator_validate");
    TCase *tc = tcase_create("batch");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_batch_mixed);
    tcase_add_test(tc, test_batch_job_thresholds);
    tcase_add_test(tc, test_batch_missing_uncommitted);
    tcase_add_test(tc, test_batch_missing_committed);
    tcase_add_test(tc, test_batch_failed_attempt);
    tcase_add_test(tc, test_batch_empty);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
