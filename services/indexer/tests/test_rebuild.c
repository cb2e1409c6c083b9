/* Check suite for the rebuild aggregation (no Redis: the pure part). */
#include <check.h>
#include <string.h>

#include "rebuild.h"

static cx_manifest_t manifest(const char *job, const char *unit,
                              const char *cls, uint32_t planned,
                              uint32_t generated, uint32_t passed,
                              uint32_t committed) {
    cx_manifest_t m;
    memset(&m, 0, sizeof m);
    m.job_id = (char *)job;
    m.unit_id = (char *)unit;
    m.class_name = (char *)cls;
    m.planned = planned;
    m.generated = generated;
    m.passed = passed;
    m.committed = committed;
    return m;
}

START_TEST(test_aggregate) {
    cx_rebuild_t rb;
    cx_err_t err;
    cx_rebuild_init(&rb, "j1");
    cx_manifest_t a = manifest("j1", "u1", "normal", 32, 32, 30, 30);
    cx_manifest_t b = manifest("j1", "u2", "normal", 32, 32, 32, 20);
    cx_manifest_t c = manifest("j1", "u3", "nodule", 10, 10, 9, 9);
    cx_manifest_t other = manifest("j2", "u9", "normal", 32, 32, 32, 32);
    ck_assert_int_eq(cx_rebuild_add_manifest(&rb, &a, &err), 0);
    ck_assert_int_eq(cx_rebuild_add_manifest(&rb, &b, &err), 0);
    ck_assert_int_eq(cx_rebuild_add_manifest(&rb, &c, &err), 0);
    ck_assert_int_eq(cx_rebuild_add_manifest(&rb, &other, &err), 0);
    ck_assert_int_eq(cx_rebuild_add_dead(&rb, "nodule", 16, &err), 0);
    ck_assert_uint_eq(rb.manifests, 3);
    ck_assert_uint_eq(rb.skipped, 1);
    ck_assert_uint_eq(rb.dead, 1);
    ck_assert_uint_eq(rb.nclasses, 2);
    cx_rebuild_class_t *n = cx_rebuild_class(&rb, "normal", &err);
    ck_assert_uint_eq(n->committed, 50);
    ck_assert_uint_eq(n->units, 2);
    ck_assert_uint_eq(n->generated, 64);
    ck_assert_uint_eq(n->passed, 62);
    ck_assert_uint_eq(n->resolved_n, 64);
    cx_rebuild_class_t *d = cx_rebuild_class(&rb, "nodule", &err);
    ck_assert_uint_eq(d->committed, 9);
    ck_assert_uint_eq(d->units, 1);
    ck_assert_uint_eq(d->resolved_n, 26);
    ck_assert_uint_eq(rb.committed_units.len, 3);
    /* class names that could reach a path are refused */
    cx_manifest_t bad = manifest("j1", "u4", "../x", 1, 1, 1, 1);
    ck_assert_int_eq(cx_rebuild_add_manifest(&rb, &bad, &err), -1);
    cx_rebuild_release(&rb);
    cx_rebuild_release(&rb);
}
END_TEST

int main(void) {
    Suite *s = suite_create("indexer_rebuild");
    TCase *tc = tcase_create("rebuild");
    tcase_add_test(tc, test_aggregate);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
