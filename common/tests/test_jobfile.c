#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/jobfile.h"
#include "cx_testenv.h"

static int known(void *ctx, const char *ckpt, const char *cls) {
    (void)ctx;
    static const char *names[] = {"normal", "effusion", "nodule", "cardiomegaly"};
    if (strcmp(ckpt, "ref-cxr-v0") != 0) return 0;
    for (size_t i = 0; i < 4; i++)
        if (strcmp(cls, names[i]) == 0) return 1;
    return 0;
}

static const char *yaml_good =
    "job_id: cxr-demo            # optional\n"
    "tenant: acme\n"
    "priority: 5\n"
    "deadline: 2026-12-01T18:00:00Z\n"
    "output: file:///data/cascade\n"
    "total: 3000\n"
    "classes:\n"
    "  - {name: normal, proportion: 0.4}\n"
    "  - {name: effusion, proportion: 0.35}\n"
    "  - name: nodule\n"
    "    count: 750\n"
    "    condition: left-lung\n"
    "generation: {checkpoint: ref-cxr-v0, sampler: heun, steps: 40,\n"
    "             guidance_scale: 2.5, seed: 18446744073709551615, width: 256, height: 128,\n"
    "             bit_depth: 8, eta: 0, conditioning: {view: PA}}\n"
    "validation: {gate_profile: strict, thresholds: {clip_fraction: 0.01, snr: 3},\n"
    "             privacy_budget: 0.5}\n"
    "unit_size: 16\n";

static const char *json_good =
    "{\"job_id\": \"cxr-json\", \"tenant\": \"acme\", \"priority\": -2,\n"
    " \"deadline\": 1796148000000, \"total\": 100,\n"
    " \"classes\": [{\"name\": \"normal\", \"count\": 60}, {\"name\": \"cardiomegaly\", \"count\": 40}],\n"
    " \"generation\": {\"sampler\": \"euler\", \"seed\": 42},\n"
    " \"validation\": {\"thresholds\": {\"clip_fraction\": 0.02}}}";

START_TEST(test_jobfile_yaml_good) {
    cx_err_t err = {0};
    cx_jobspec_t *s = cx_jobfile_parse(yaml_good, strlen(yaml_good), &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    ck_assert_str_eq(s->job_id, "cxr-demo");
    ck_assert_str_eq(s->tenant, "acme");
    ck_assert_int_eq(s->priority, 5);
    ck_assert_int_eq(s->deadline_unix_ms, 1796148000000LL);
    ck_assert_str_eq(s->output_uri, "file:///data/cascade");
    ck_assert_uint_eq(s->total_count, 3000);
    ck_assert_uint_eq(s->n_classes, 3);
    ck_assert_str_eq(s->classes[1]->name, "effusion");
    ck_assert(s->classes[1]->proportion == 0.35);
    ck_assert_uint_eq(s->classes[2]->count, 750);
    ck_assert_str_eq(s->classes[2]->condition, "left-lung");
    ck_assert_int_eq(s->generation->sampler, CASCADE__V1__SAMPLER__SAMPLER_HEUN);
    ck_assert_uint_eq(s->generation->steps, 40);
    ck_assert(s->generation->guidance_scale == 2.5);
    ck_assert_uint_eq(s->generation->seed_base, UINT64_MAX);
    ck_assert_uint_eq(s->generation->width, 256);
    ck_assert_uint_eq(s->generation->height, 128);
    ck_assert_uint_eq(s->generation->bit_depth, 8);
    ck_assert_uint_eq(s->generation->n_conditioning, 1);
    ck_assert_str_eq(s->generation->conditioning[0]->key, "view");
    ck_assert_str_eq(s->generation->conditioning[0]->value, "PA");
    ck_assert_str_eq(s->validation->gate_profile, "strict");
    ck_assert_uint_eq(s->validation->n_thresholds, 2);
    ck_assert_str_eq(s->validation->thresholds[1]->gate, "snr");
    ck_assert(s->validation->thresholds[1]->value == 3.0);
    ck_assert(s->validation->privacy_budget == 0.5);
    ck_assert_uint_eq(s->unit_size, 16);
    ck_assert_int_eq(cx_jobspec_apply_defaults(s, &err), 0);
    ck_assert_msg(cx_jobspec_validate(s, known, NULL, &err) == 0, "%s", err.msg);
    uint64_t q[3];
    ck_assert_uint_eq(cx_jobspec_quotas(s, q), 3000);
    ck_assert_uint_eq(q[0], 1200);
    /* It packs, and the packed spec decodes as a JobSpec. */
    size_t n;
    uint8_t *buf = cx_pack(&s->base, &n, &err);
    cx_jobspec_t *d = cx_decode_jobspec(buf, n, &err);
    ck_assert_msg(d != NULL, "%s", err.msg);
    ck_assert_str_eq(d->classes[2]->condition, "left-lung");
    cascade__v1__job_spec__free_unpacked(d, NULL);
    free(buf);
    cx_jobfile_free(s);
    cx_jobfile_free(NULL);
}
END_TEST

START_TEST(test_jobfile_json_good) {
    cx_err_t err = {0};
    cx_jobspec_t *s = cx_jobfile_parse(json_good, strlen(json_good), &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    ck_assert_str_eq(s->job_id, "cxr-json");
    ck_assert_int_eq(s->priority, -2);
    ck_assert_int_eq(s->deadline_unix_ms, 1796148000000LL);
    ck_assert_uint_eq(s->classes[1]->count, 40);
    ck_assert_int_eq(s->generation->sampler, CASCADE__V1__SAMPLER__SAMPLER_EULER);
    ck_assert_uint_eq(s->generation->seed_base, 42);
    ck_assert_int_eq(cx_jobspec_apply_defaults(s, &err), 0);
    ck_assert_str_eq(s->generation->checkpoint, "ref-cxr-v0");
    ck_assert_uint_eq(s->generation->width, 512);
    ck_assert_msg(cx_jobspec_validate(s, known, NULL, &err) == 0, "%s", err.msg);
    cx_jobfile_free(s);
    /* Minimal file: everything else defaulted, total from counts, id assigned. */
    const char *min = "classes:\n  - {name: normal, count: 5}\n  - {name: nodule, count: 5}\n";
    s = cx_jobfile_parse(min, strlen(min), &err);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(cx_jobspec_apply_defaults(s, &err), 0);
    ck_assert_uint_eq(s->total_count, 10);
    ck_assert_msg(cx_jobspec_validate(s, known, NULL, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(strncmp(s->job_id, "job-", 4), 0);
    cx_jobfile_free(s);
    /* Deadline with an offset and fraction. */
    const char *dl = "deadline: \"2026-12-01T19:00:00.250+01:00\"\nclasses: [{name: normal, count: 1}]\n";
    s = cx_jobfile_parse(dl, strlen(dl), &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    ck_assert_int_eq(s->deadline_unix_ms, 1796148000250LL);
    cx_jobfile_free(s);
}
END_TEST

/* Parses, applies defaults and validates; expects failure naming `expect`. */
static void rejected(const char *text, const char *expect) {
    cx_err_t err = {0};
    cx_jobspec_t *s = cx_jobfile_parse(text, strlen(text), &err);
    int rc = -1;
    if (s) {
        rc = cx_jobspec_apply_defaults(s, &err);
        if (rc == 0) rc = cx_jobspec_validate(s, known, NULL, &err);
        cx_jobfile_free(s);
    }
    ck_assert_msg(rc == -1, "accepted:\n%s", text);
    ck_assert_int_eq(err.code, CX_EINVAL);
    ck_assert_msg(strstr(err.msg, expect), "'%s' lacks '%s' for:\n%s", err.msg, expect, text);
}

#define CLASSES3 "classes:\n  - {name: normal, count: 5}\n  - {name: nodule, count: 5}\n"

START_TEST(test_jobfile_bad_counts) {
    rejected("classes:\n  - {name: normal, count: -5}\n", "classes[0].count: must be a positive integer, not -5");
    rejected("classes:\n  - {name: normal, count: 0}\n", "classes[0].count: must be a positive integer, not 0");
    rejected("classes:\n  - {name: normal, count: 2.5}\n", "classes[0].count: must be a positive integer, not 2.5");
    rejected("classes:\n  - {name: normal, count: '5'}\n", "classes[0].count: must be a positive integer, not a string");
    rejected("{\"classes\": [{\"name\": \"normal\", \"count\": -1}]}", "classes[0].count: must be a positive integer");
    rejected("{\"classes\": [{\"name\": \"normal\", \"count\": 1.5}]}", "classes[0].count");
    rejected("total: -3000\n" CLASSES3, "total: must be a non-negative integer, not -3000");
    rejected("total: 9007199254740993\n" CLASSES3, "total: 9007199254740993 exceeds 9007199254740992");
    rejected("{\"total\": 1e300, \"classes\": []}", "total: 1.0000000000000001e+300 exceeds");
    rejected("classes:\n  - {name: normal, count: 99999999999999999999}\n", "classes[0].count: 99999999999999999999 exceeds");
    rejected("total: 2000000000\nclasses: [{name: normal, count: 2000000000}]\n", "total_count 2000000000 exceeds 1000000000");
    rejected("unit_size: -1\n" CLASSES3, "unit_size: must be a non-negative integer, not -1");
    rejected("unit_size: 4294967296\n" CLASSES3, "unit_size: 4294967296 exceeds 4294967295");
    rejected("unit_size: 5000\n" CLASSES3, "unit_size 5000 is outside [1, 1024]");
    rejected("generation: {steps: -50}\n" CLASSES3, "generation.steps: must be a non-negative integer, not -50");
    rejected("generation: {width: 100000}\n" CLASSES3, "width 100000 is outside [8, 4096]");
    rejected("generation: {width: 512.5}\n" CLASSES3, "generation.width: must be a non-negative integer, not 512.5");
    rejected("generation: {bit_depth: 32}\n" CLASSES3, "bit_depth 32 is not 8 or 16");
    rejected("priority: 3000000000\n" CLASSES3, "priority: 3000000000 is outside");
    rejected("total: 10\nclasses: [{name: normal, count: 3}, {name: nodule, count: 3}]\n",
             "class counts sum to 6, not total_count 10");
}
END_TEST

START_TEST(test_jobfile_bad_proportions) {
    rejected("total: 100\nclasses: [{name: normal, proportion: 0.5}, {name: nodule, proportion: 0.4}]\n",
             "proportions sum to 0.9, not 1");
    rejected("total: 100\nclasses: [{name: normal, proportion: 1.2}]\n",
             "classes[0] 'normal': proportion 1.2 is outside (0, 1]");
    rejected("total: 100\nclasses: [{name: normal, proportion: -0.5}, {name: nodule, proportion: 1.5}]\n",
             "proportion -0.5 is outside (0, 1]");
    rejected("classes: [{name: normal, proportion: 1.0}]\n", "total_count is 0: proportions need a total");
    rejected("total: 100\nclasses: [{name: normal, proportion: .nan}]\n", "classes[0].proportion: must be a finite number");
    rejected("total: 100\nclasses: [{name: normal, proportion: 0.5, count: 50}, {name: nodule, proportion: 0.5}]\n",
             "give a count or a proportion, not both");
    rejected("total: 100\nclasses: [{name: normal}]\n", "needs a count > 0 or a proportion in (0, 1]");
}
END_TEST

START_TEST(test_jobfile_bad_names_and_keys) {
    rejected("colour: red\n" CLASSES3, "colour: unknown key");
    rejected("classes:\n  - {name: normal, count: 5, weight: 2}\n", "classes[0].weight: unknown key");
    rejected("generation: {sampler: ddim, stepz: 5}\n" CLASSES3, "generation.stepz: unknown key");
    rejected("validation: {gate: x}\n" CLASSES3, "validation.gate: unknown key");
    rejected("{\"classes\": [{\"name\": \"normal\", \"count\": 1}], \"extra\": 1}", "extra: unknown key");
    rejected("classes:\n  - {name: a/b, count: 5}\n", "classes[0].name 'a/b' contains '/'");
    rejected("classes:\n  - {name: '..', count: 5}\n", "classes[0].name '..' is '..'");
    rejected("classes:\n  - {name: \"nor\\tmal\", count: 5}\n", "classes[0].name 'nor' contains a control character");
    rejected("{\"classes\": [{\"name\": \"x\\u0001\", \"count\": 1}]}", "contains a control character");
    rejected("job_id: ../../etc\n" CLASSES3, "job_id '../../etc' contains '/'");
    rejected("tenant: \"a\\nb\"\n" CLASSES3, "tenant 'a' contains a control character");
    rejected("classes:\n  - {name: foo, count: 5}\n", "unknown class 'foo' for checkpoint 'ref-cxr-v0'");
    rejected("classes:\n  - {name: normal, count: 5}\n  - {name: normal, count: 5}\n", "duplicate class 'normal'");
    rejected("classes:\n  - {name: normal, count: 5, condition: a/b}\n", "classes[0].condition 'a/b' contains '/'");
    rejected("generation: {sampler: plms}\n" CLASSES3, "generation.sampler: 'plms' is not ddim, euler or heun");
    rejected("deadline: tomorrow\n" CLASSES3, "deadline: 'tomorrow' is not an RFC 3339 time");
    rejected("deadline: 2026-02-30T00:00:00Z\n" CLASSES3, "is not an RFC 3339 time");
    rejected("deadline: -5\n" CLASSES3, "deadline: must be a non-negative integer");
    rejected("classes: {name: normal}\n", "classes: must be a list, not a mapping");
    rejected("generation: 5\n" CLASSES3, "generation: must be a mapping");
    rejected("total: 5\ntotal: 6\n" CLASSES3, "duplicate key 'total'");
    rejected("{\"total\": 5, \"total\": 6}", "duplicate key 'total'");
    rejected("- just\n- a list\n", "job file: must be a mapping, not a list");
    rejected("classes: [unclosed\n", "YAML syntax error at line");
    rejected("{\"classes\": [", "JSON syntax error");
    rejected("   \n", "job file is empty");
    rejected("validation: {thresholds: {clip_fraction: high}}\n" CLASSES3,
             "validation.thresholds.clip_fraction: must be a number, not a string");
    char longname[200];
    snprintf(longname, sizeof longname, "classes:\n  - {name: %065d, count: 5}\n", 7);
    rejected(longname, "is longer than 64 characters");
}
END_TEST

START_TEST(test_jobfile_alias_bomb) {
    /* Aliases expand; a "billion laughs" file stops at the node budget. */
    const char *bomb =
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
        "f: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
    cx_err_t err = {0};
    ck_assert_ptr_null(cx_jobfile_parse(bomb, strlen(bomb), &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "more than 100000 values"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("jobfile");
    TCase *tc = tcase_create("jobfile");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_jobfile_yaml_good);
    tcase_add_test(tc, test_jobfile_json_good);
    tcase_add_test(tc, test_jobfile_bad_counts);
    tcase_add_test(tc, test_jobfile_bad_proportions);
    tcase_add_test(tc, test_jobfile_bad_names_and_keys);
    tcase_add_test(tc, test_jobfile_alias_bomb);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
