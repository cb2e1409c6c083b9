/* Check suite for cx_jobstate's pure parts: building a state from hash
 * fields, completion, totals and the Progress it publishes. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/jobstate.h"

#define SET(st, h, f, v) \
    ck_assert_int_eq(cx_jobstate_set(st, h, f, v, strlen(v), NULL), 0)

static cx_jobstate_t *demo(void) {
    cx_jobstate_t *st = cx_jobstate_new("job-a");
    ck_assert_ptr_nonnull(st);
    SET(st, NULL, "state", "ACCEPTED");
    SET(st, NULL, "classes", "normal,effusion,nodule");
    SET(st, NULL, "tenant", "acme");
    SET(st, NULL, "priority", "-3");
    SET(st, NULL, "submitted_ms", "1700000000000");
    SET(st, NULL, "total_quota", "300");
    SET(st, "quota", "normal", "120");
    SET(st, "quota", "effusion", "105");
    SET(st, "quota", "nodule", "75");
    SET(st, "committed", "normal", "120");
    SET(st, "committed", "nodule", "40");
    SET(st, "units", "normal", "4");
    SET(st, "generated", "normal", "128");
    SET(st, "passed", "normal", "124");
    SET(st, "issued", "effusion", "105");
    SET(st, "next_ordinal", "effusion", "4");
    SET(st, "round", "effusion", "0");
    return st;
}

START_TEST(test_key) {
    char buf[64];
    ck_assert_int_eq(cx_jobstate_key(buf, sizeof buf, "j", NULL), 0);
    ck_assert_str_eq(buf, "cx:job:j");
    ck_assert_int_eq(cx_jobstate_key(buf, sizeof buf, "j", "quota"), 0);
    ck_assert_str_eq(buf, "cx:job:j:quota");
    ck_assert_int_eq(cx_jobstate_key(buf, 8, "j", "quota"), -1);
}
END_TEST

START_TEST(test_set_fields) {
    cx_jobstate_t *st = demo();
    ck_assert_str_eq(st->state, "ACCEPTED");
    ck_assert_str_eq(st->tenant, "acme");
    ck_assert_str_eq(st->reason, "");
    ck_assert_int_eq(st->priority, -3);
    ck_assert_int_eq(st->submitted_ms, 1700000000000LL);
    ck_assert_uint_eq(st->nclasses, 3);
    /* spec order from `classes`, whatever order the counters arrive in */
    ck_assert_str_eq(st->classes[0].name, "normal");
    ck_assert_str_eq(st->classes[2].name, "nodule");
    ck_assert_uint_eq(cx_jobstate_class(st, "normal")->generated, 128);
    ck_assert_uint_eq(cx_jobstate_class(st, "effusion")->issued, 105);
    ck_assert_uint_eq(cx_jobstate_class(st, "effusion")->next_ordinal, 4);
    ck_assert_ptr_null(cx_jobstate_class(st, "cardiomegaly"));
    /* a counter of a class not in `classes` is kept, after them */
    SET(st, "committed", "extra", "5");
    ck_assert_uint_eq(st->nclasses, 4);
    ck_assert_str_eq(st->classes[3].name, "extra");
    /* binary spec bytes survive */
    const char spec[4] = {0x0a, 0x00, 0x01, 0x02};
    ck_assert_int_eq(cx_jobstate_set(st, NULL, "spec", spec, 4, NULL), 0);
    ck_assert_uint_eq(st->spec_len, 4);
    ck_assert_mem_eq(st->spec, spec, 4);
    /* negative counters read as 0; unknown hashes are ignored */
    SET(st, "passed", "nodule", "-7");
    ck_assert_uint_eq(cx_jobstate_class(st, "nodule")->passed, 0);
    SET(st, "grants", "nodule", "7");
    cx_jobstate_free(st);
    cx_jobstate_free(NULL);
}
END_TEST

START_TEST(test_timing) {
    cx_jobstate_t *st = cx_jobstate_new("j1");
    cx_err_t e;
    ck_assert_int_eq(cx_jobstate_set(st, "timing", "units", "3", 1, &e), 0);
    ck_assert_int_eq(cx_jobstate_set(st, "timing", "samples", "96", 2, &e), 0);
    ck_assert_int_eq(
        cx_jobstate_set(st, "timing", "generate_ms", "1234.5", 6, &e), 0);
    ck_assert_int_eq(
        cx_jobstate_set(st, "timing", "to_verdict_ms", "40", 2, &e), 0);
    ck_assert_int_eq(cx_jobstate_set(st, "timing", "bogus", "7", 1, &e), 0);
    ck_assert_uint_eq(st->timing.units, 3);
    ck_assert_uint_eq(st->timing.samples, 96);
    ck_assert_double_eq_tol(st->timing.generate_ms, 1234.5, 1e-9);
    ck_assert_double_eq_tol(st->timing.to_verdict_ms, 40, 1e-9);
    ck_assert_double_eq(st->timing.encode_ms, 0);
    ck_assert_uint_eq(st->nclasses, 0); /* timing names no class */
    cx_jobstate_free(st);
}
END_TEST

START_TEST(test_complete_and_totals) {
    cx_jobstate_t *st = demo();
    ck_assert_int_eq(cx_jobstate_complete(st), 0);
    cx_jobtotals_t t;
    cx_jobstate_totals(st, &t);
    ck_assert_uint_eq(t.quota, 300);
    ck_assert_uint_eq(t.committed, 160);
    ck_assert_uint_eq(t.issued, 105);
    SET(st, "committed", "effusion", "105");
    SET(st, "committed", "nodule", "75");
    ck_assert_int_eq(cx_jobstate_complete(st), 1);
    cx_jobstate_free(st);
    cx_jobstate_t *empty = cx_jobstate_new("job-b");
    ck_assert_int_eq(cx_jobstate_complete(empty), 0);
    cx_jobstate_free(empty);
    ck_assert_ptr_null(cx_jobstate_new(
        "an-id-that-is-far-too-long-to-be-a-job-id-because-it-has-more-than-64-chars"));
}
END_TEST

START_TEST(test_progress) {
    cx_jobstate_t *st = demo();
    size_t len;
    cx_err_t err;
    uint8_t *buf = cx_jobstate_progress_pack(st, 42, &len, &err);
    ck_assert_ptr_nonnull(buf);
    cx_progress_t *p = cascade__v1__progress__unpack(NULL, len, buf);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->job_id, "job-a");
    ck_assert_uint_eq(p->n_classes, 3);
    ck_assert_str_eq(p->classes[0]->name, "normal");
    ck_assert_uint_eq(p->classes[0]->quota, 120);
    ck_assert_uint_eq(p->classes[0]->committed, 120);
    ck_assert_uint_eq(p->classes[0]->units_committed, 4);
    ck_assert_uint_eq(p->classes[2]->committed, 40);
    ck_assert_uint_eq(p->total_quota, 300);
    ck_assert_uint_eq(p->total_committed, 160);
    ck_assert_uint_eq(p->generated, 128);
    ck_assert_uint_eq(p->passed, 124);
    ck_assert_int_eq(p->complete, 0);
    ck_assert_int_eq(p->updated_unix_ms, 42);
    cascade__v1__progress__free_unpacked(p, NULL);
    free(buf);
    cx_jobstate_free(st);
}
END_TEST

int main(void) {
    Suite *s = suite_create("jobstate");
    TCase *tc = tcase_create("jobstate");
    tcase_add_test(tc, test_key);
    tcase_add_test(tc, test_set_fields);
    tcase_add_test(tc, test_complete_and_totals);
    tcase_add_test(tc, test_timing);
    tcase_add_test(tc, test_progress);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
