/* Check suite for the planner's pure logic: shortfall, unit plans with
 * replacement rounds, WorkUnit contents and dataset.json. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/jobfile.h"
#include "cascade/names.h"
#include "dataset.h"
#include "plan.h"

static cx_classstate_t cls(uint64_t committed, uint64_t issued,
                           uint64_t resolved_n, uint64_t next, uint64_t round) {
    cx_classstate_t c;
    memset(&c, 0, sizeof c);
    c.committed = committed;
    c.issued = issued;
    c.resolved_n = resolved_n;
    c.next_ordinal = next;
    c.round = round;
    return c;
}

START_TEST(test_shortfall) {
    cx_classstate_t c = cls(0, 0, 0, 0, 0);
    ck_assert_uint_eq(cx_plan_shortfall(NULL, 100), 100);
    ck_assert_uint_eq(cx_plan_shortfall(&c, 100), 100);
    /* everything issued, nothing back yet: on track */
    c = cls(0, 100, 0, 4, 0);
    ck_assert_uint_eq(cx_plan_shortfall(&c, 100), 0);
    /* 3 units of 32 planned came back with 90 committed: 6 short + 4 out */
    c = cls(90, 100, 96, 4, 0);
    ck_assert_uint_eq(cx_plan_shortfall(&c, 100), 6);
    /* a dead unit (resolved, nothing committed) */
    c = cls(64, 100, 96, 4, 0);
    ck_assert_uint_eq(cx_plan_shortfall(&c, 100), 32);
    /* done */
    c = cls(100, 106, 106, 5, 1);
    ck_assert_uint_eq(cx_plan_shortfall(&c, 100), 0);
    /* resolved_n ahead of issued (issued lost): nothing is outstanding */
    c = cls(10, 0, 32, 0, 0);
    ck_assert_uint_eq(cx_plan_shortfall(&c, 100), 90);
}
END_TEST

START_TEST(test_first_plan_split_and_interleave) {
    const cx_classstate_t *states[3] = {NULL, NULL, NULL};
    uint64_t quotas[3] = {100, 70, 10};
    cx_plan_t plan;
    cx_err_t err;
    ck_assert_int_eq(cx_plan_make(states, quotas, 3, 32, &plan, &err), 0);
    /* 100 = 32+32+32+4, 70 = 32+32+6, 10 = 10 */
    ck_assert_uint_eq(plan.nunits, 8);
    ck_assert_uint_eq(plan.replacement_units, 0);
    uint32_t want_class[] = {0, 1, 2, 0, 1, 0, 1, 0};
    uint32_t want_ord[] = {0, 0, 0, 1, 1, 2, 2, 3};
    uint32_t want_n[] = {32, 32, 10, 32, 32, 32, 6, 4};
    uint64_t sum[3] = {0};
    for (size_t i = 0; i < plan.nunits; i++) {
        ck_assert_uint_eq(plan.units[i].class_index, want_class[i]);
        ck_assert_uint_eq(plan.units[i].ordinal, want_ord[i]);
        ck_assert_uint_eq(plan.units[i].n, want_n[i]);
        ck_assert_uint_eq(plan.units[i].generation, 0);
        sum[plan.units[i].class_index] += plan.units[i].n;
    }
    for (int c = 0; c < 3; c++) ck_assert_uint_eq(sum[c], quotas[c]);
    ck_assert_uint_eq(plan.classes[0].next_ordinal, 4);
    ck_assert_uint_eq(plan.classes[1].next_ordinal, 3);
    ck_assert_uint_eq(plan.classes[2].next_ordinal, 1);
    ck_assert_uint_eq(plan.classes[0].round, 0);
    ck_assert_int_eq(plan.classes[0].replacement, 0);
    cx_plan_release(&plan);
}
END_TEST

START_TEST(test_replacement_rounds) {
    /* class 0 lost 6 samples to the gates, class 1 is fine, class 2 had a
     * dead unit of 10 in its second round already */
    cx_classstate_t a = cls(94, 100, 100, 4, 0), b = cls(70, 70, 70, 3, 0),
                    c = cls(0, 20, 10, 2, 1);
    const cx_classstate_t *states[3] = {&a, &b, &c};
    uint64_t quotas[3] = {100, 70, 10};
    cx_plan_t plan;
    ck_assert_int_eq(cx_plan_make(states, quotas, 3, 32, &plan, NULL), 0);
    ck_assert_uint_eq(plan.nunits, 1);
    ck_assert_uint_eq(plan.units[0].class_index, 0);
    ck_assert_uint_eq(plan.units[0].ordinal, 4);
    ck_assert_uint_eq(plan.units[0].generation, 1);
    ck_assert_uint_eq(plan.units[0].n, 6);
    ck_assert_uint_eq(plan.replacement_units, 1);
    ck_assert_uint_eq(plan.replacement_samples, 6);
    ck_assert_uint_eq(plan.classes[0].old_next_ordinal, 4);
    ck_assert_uint_eq(plan.classes[0].next_ordinal, 5);
    ck_assert_uint_eq(plan.classes[0].round, 1);
    ck_assert_uint_eq(plan.classes[1].units, 0);
    ck_assert_uint_eq(plan.classes[2].units, 0); /* 10 still outstanding */
    cx_plan_release(&plan);

    /* the outstanding unit of class 2 dies: round 2, fresh ordinal */
    c = cls(0, 20, 20, 2, 1);
    ck_assert_int_eq(cx_plan_make(states, quotas, 3, 32, &plan, NULL), 0);
    ck_assert_uint_eq(plan.nunits, 2);
    ck_assert_uint_eq(plan.units[1].class_index, 2);
    ck_assert_uint_eq(plan.units[1].ordinal, 2);
    ck_assert_uint_eq(plan.units[1].generation, 2);
    ck_assert_uint_eq(plan.units[1].n, 10);
    ck_assert_uint_eq(plan.replacement_samples, 16);
    cx_plan_release(&plan);
}
END_TEST

START_TEST(test_replan_same_snapshot_same_units) {
    cx_classstate_t a = cls(50, 64, 64, 2, 0);
    const cx_classstate_t *states[1] = {&a};
    uint64_t q[1] = {100};
    cx_plan_t p1, p2;
    ck_assert_int_eq(cx_plan_make(states, q, 1, 16, &p1, NULL), 0);
    ck_assert_int_eq(cx_plan_make(states, q, 1, 16, &p2, NULL), 0);
    ck_assert_uint_eq(p1.nunits, 4); /* 50 short: 16+16+16+2 */
    ck_assert_uint_eq(p1.nunits, p2.nunits);
    ck_assert_mem_eq(p1.units, p2.units, p1.nunits * sizeof *p1.units);
    cx_plan_release(&p1);
    cx_plan_release(&p2);
}
END_TEST

START_TEST(test_plan_errors) {
    const cx_classstate_t *states[1] = {NULL};
    uint64_t q[1] = {10};
    cx_plan_t plan;
    cx_err_t err;
    ck_assert_int_eq(cx_plan_make(states, q, 1, 0, &plan, &err), -1);
    ck_assert_int_eq(err.code, CX_EINVAL);
    cx_classstate_t a = cls(0, 0, 0, UINT32_MAX, 0);
    states[0] = &a;
    ck_assert_int_eq(cx_plan_make(states, q, 1, 4, &plan, &err), -1);
    cx_plan_release(NULL);
}
END_TEST

static const char small_yaml[] =
    "job_id: t-plan\n"
    "tenant: acme\n"
    "total: 100\n"
    "classes:\n"
    "  - {name: normal, proportion: 0.5}\n"
    "  - {name: nodule, proportion: 0.5, condition: upper}\n"
    "generation: {checkpoint: ref-cxr-v0, sampler: ddim, steps: 20, seed: 7,"
    " width: 64, height: 64}\n"
    "unit_size: 16\n";

static cx_jobspec_t *small_spec(void) {
    cx_err_t err;
    cx_jobspec_t *s = cx_jobfile_parse(small_yaml, strlen(small_yaml), &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    ck_assert_int_eq(cx_jobspec_apply_defaults(s, &err), 0);
    ck_assert_msg(cx_jobspec_validate(s, NULL, NULL, &err) == 0, "%s", err.msg);
    return s;
}

START_TEST(test_unit_pack) {
    cx_jobspec_t *spec = small_spec();
    cx_plan_unit_t u = {1, 3, 2, 9};
    char id[33], want[33];
    size_t len;
    cx_err_t err;
    uint8_t *buf = cx_plan_unit_pack(spec, &u, 1234, id, &len, &err);
    ck_assert_ptr_nonnull(buf);
    cx_unit_id("t-plan", "nodule", 3, 2, want);
    ck_assert_str_eq(id, want);
    cx_unit_t *w = cx_decode_unit(buf, len, &err);
    ck_assert_msg(w != NULL, "%s", err.msg);
    ck_assert_str_eq(w->job_id, "t-plan");
    ck_assert_str_eq(w->unit_id, want);
    ck_assert_str_eq(w->class_name, "nodule");
    ck_assert_str_eq(w->condition, "upper");
    ck_assert_str_eq(w->tenant, "acme");
    ck_assert_uint_eq(w->class_index, 1);
    ck_assert_uint_eq(w->ordinal, 3);
    ck_assert_uint_eq(w->generation, 2);
    ck_assert_uint_eq(w->sample_count, 9);
    ck_assert_uint_eq(w->seed, cx_unit_seed(7, 1, 3, 2));
    ck_assert_uint_eq(w->params->steps, 20);
    ck_assert_int_eq(w->issued_unix_ms, 1234);
    cascade__v1__work_unit__free_unpacked(w, NULL);
    free(buf);
    u.class_index = 5;
    ck_assert_ptr_null(cx_plan_unit_pack(spec, &u, 0, id, &len, &err));
    cx_jobfile_free(spec);
}
END_TEST

START_TEST(test_dataset_json) {
    cx_jobspec_t *spec = small_spec();
    cx_jobstate_t *st = cx_jobstate_new("t-plan");
    ck_assert_int_eq(cx_jobstate_set(st, NULL, "classes", "normal,nodule", 13, NULL), 0);
    ck_assert_int_eq(cx_jobstate_set(st, "quota", "normal", "50", 2, NULL), 0);
    ck_assert_int_eq(cx_jobstate_set(st, "quota", "nodule", "50", 2, NULL), 0);
    ck_assert_int_eq(cx_jobstate_set(st, "committed", "normal", "50", 2, NULL), 0);
    ck_assert_int_eq(cx_jobstate_set(st, "committed", "nodule", "50", 2, NULL), 0);
    ck_assert_int_eq(cx_jobstate_set(st, "generated", "nodule", "64", 2, NULL), 0);
    ck_assert_int_eq(cx_jobstate_set(st, "passed", "nodule", "48", 2, NULL), 0);
    cx_strlist_t m = {0};
    cx_strlist_push(&m, "t-plan/manifests/aa.json");
    cx_strlist_push(&m, "t-plan/manifests/bb.json");
    cx_strlist_push(&m, "t-plan/manifests/README");
    cx_err_t err;
    char *text = cx_dataset_json(spec, st, &m, 777, &err);
    ck_assert_ptr_nonnull(text);
    cJSON *j = cJSON_Parse(text);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "job_id")->valuestring, "t-plan");
    ck_assert_int_eq(cJSON_GetObjectItem(j, "total")->valueint, 100);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "done_unix_ms")->valueint, 777);
    cJSON *classes = cJSON_GetObjectItem(j, "classes");
    ck_assert_int_eq(cJSON_GetArraySize(classes), 2);
    cJSON *c1 = cJSON_GetArrayItem(classes, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(c1, "name")->valuestring, "nodule");
    ck_assert_str_eq(cJSON_GetObjectItem(c1, "condition")->valuestring, "upper");
    ck_assert_int_eq(cJSON_GetObjectItem(c1, "committed")->valueint, 50);
    ck_assert_double_eq_tol(cJSON_GetObjectItem(c1, "pass_rate")->valuedouble, 0.75, 1e-9);
    cJSON *ml = cJSON_GetObjectItem(j, "manifests");
    ck_assert_int_eq(cJSON_GetArraySize(ml), 2);
    ck_assert_str_eq(cJSON_GetArrayItem(ml, 1)->valuestring, "t-plan/manifests/bb.json");
    cJSON *s = cJSON_GetObjectItem(j, "spec");
    ck_assert_str_eq(cJSON_GetObjectItem(s, "checkpoint")->valuestring, "ref-cxr-v0");
    ck_assert_str_eq(cJSON_GetObjectItem(s, "seed_base")->valuestring, "7");
    ck_assert_int_eq(cJSON_GetObjectItem(s, "steps")->valueint, 20);
    cJSON_Delete(j);
    free(text);
    cx_strlist_free(&m);
    cx_jobstate_free(st);
    cx_jobfile_free(spec);
}
END_TEST

int main(void) {
    Suite *s = suite_create("planner_plan");
    TCase *tc = tcase_create("plan");
    tcase_add_test(tc, test_shortfall);
    tcase_add_test(tc, test_first_plan_split_and_interleave);
    tcase_add_test(tc, test_replacement_rounds);
    tcase_add_test(tc, test_replan_same_snapshot_same_units);
    tcase_add_test(tc, test_plan_errors);
    tcase_add_test(tc, test_unit_pack);
    tcase_add_test(tc, test_dataset_json);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
