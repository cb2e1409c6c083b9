#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/manifest.h"
#include "cx_testenv.h"

#define UID "0123456789abcdef0123456789abcdef"
#define SHA1 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA2 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static cx_manifest_score_t sc0[2] = {{"clip_fraction", 0.001}, {"snr", 12.5}};
static cx_manifest_sample_t smp[2];
static cx_manifest_t man;

static void init_manifest(void) {
    memset(&man, 0, sizeof man);
    memset(smp, 0, sizeof smp);
    man.job_id = "cxr-demo";
    man.unit_id = UID;
    man.class_name = "effusion";
    man.condition = "left";
    man.attempt = 2;
    man.worker_id = "gpu-worker-0";
    man.seed = 18446744073709551557ULL; /* above 2^53: must survive exactly */
    man.ordinal = 17;
    man.generation = 1;
    man.params.checkpoint = "ref-cxr-v0";
    man.params.sampler = 3;
    man.params.steps = 50;
    man.params.guidance_scale = 1.5;
    man.params.eta = 0.25;
    man.params.width = 512;
    man.params.height = 256;
    man.params.bit_depth = 16;
    man.planned = 4;
    man.generated = 4;
    man.passed = 3;
    man.committed = 2;
    man.committed_unix_ms = 1796148000123LL;
    smp[0].index = 0;
    memcpy(smp[0].sha256, SHA1, 65);
    smp[0].key = "cxr-demo/data/effusion/left/e3/" SHA1 ".png";
    smp[0].n_scores = 2;
    smp[0].scores = sc0;
    smp[1].index = 3;
    memcpy(smp[1].sha256, SHA2, 65);
    smp[1].key = "cxr-demo/data/effusion/left/ba/" SHA2 ".png";
    man.n_samples = 2;
    man.samples = smp;
}

START_TEST(test_manifest_roundtrip) {
    init_manifest();
    cx_buf_t b = {0};
    cx_err_t err = {0};
    ck_assert_msg(cx_manifest_to_json(&man, &b, &err) == 0, "%s", err.msg);
    ck_assert_ptr_nonnull(strstr((char *)b.data, "\"seed\":\"18446744073709551557\""));
    ck_assert_ptr_nonnull(strstr((char *)b.data, "\"class\":\"effusion\""));
    ck_assert_ptr_nonnull(strstr((char *)b.data, "\"sampler\":\"heun\""));
    cx_manifest_t *m = NULL;
    ck_assert_msg(cx_manifest_parse((char *)b.data, b.len, &m, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(m->job_id, "cxr-demo");
    ck_assert_str_eq(m->unit_id, UID);
    ck_assert_str_eq(m->class_name, "effusion");
    ck_assert_str_eq(m->condition, "left");
    ck_assert_uint_eq(m->attempt, 2);
    ck_assert_str_eq(m->worker_id, "gpu-worker-0");
    ck_assert_uint_eq(m->seed, 18446744073709551557ULL);
    ck_assert_uint_eq(m->ordinal, 17);
    ck_assert_uint_eq(m->generation, 1);
    ck_assert_str_eq(m->params.checkpoint, "ref-cxr-v0");
    ck_assert_int_eq(m->params.sampler, 3);
    ck_assert_uint_eq(m->params.steps, 50);
    ck_assert(m->params.guidance_scale == 1.5);
    ck_assert(m->params.eta == 0.25);
    ck_assert_uint_eq(m->params.height, 256);
    ck_assert_uint_eq(m->planned, 4);
    ck_assert_uint_eq(m->passed, 3);
    ck_assert_uint_eq(m->committed, 2);
    ck_assert_int_eq(m->committed_unix_ms, 1796148000123LL);
    ck_assert_uint_eq(m->n_samples, 2);
    ck_assert_uint_eq(m->samples[1].index, 3);
    ck_assert_str_eq(m->samples[1].sha256, SHA2);
    ck_assert_str_eq(m->samples[0].key, smp[0].key);
    ck_assert_uint_eq(m->samples[0].n_scores, 2);
    ck_assert_str_eq(m->samples[0].scores[1].name, "snr");
    ck_assert(m->samples[0].scores[1].value == 12.5);
    ck_assert_uint_eq(m->samples[1].n_scores, 0);
    /* Writing the parsed manifest gives the same document. */
    cx_buf_t b2 = {0};
    ck_assert_int_eq(cx_manifest_to_json(m, &b2, &err), 0);
    ck_assert_str_eq((char *)b2.data, (char *)b.data);
    cx_buf_free(&b2);
    cx_manifest_free(m);
    cx_manifest_free(NULL);
    cx_buf_free(&b);

    /* No condition, zero samples, a NaN score written as null. */
    init_manifest();
    man.condition = NULL;
    man.passed = 0;
    man.committed = 0;
    man.n_samples = 0;
    ck_assert_int_eq(cx_manifest_to_json(&man, &b, &err), 0);
    ck_assert_int_eq(cx_manifest_parse((char *)b.data, b.len, &m, &err), 0);
    ck_assert_str_eq(m->condition, "");
    ck_assert_uint_eq(m->n_samples, 0);
    cx_manifest_free(m);
    cx_buf_free(&b);
    init_manifest();
    sc0[0].value = NAN;
    ck_assert_int_eq(cx_manifest_to_json(&man, &b, &err), 0);
    sc0[0].value = 0.001;
    ck_assert_ptr_nonnull(strstr((char *)b.data, "\"clip_fraction\":null"));
    ck_assert_int_eq(cx_manifest_parse((char *)b.data, b.len, &m, &err), 0);
    ck_assert(isnan(m->samples[0].scores[0].value));
    cx_manifest_free(m);
    cx_buf_free(&b);
}
END_TEST

static void writer_rejects(const char *expect) {
    cx_buf_t b = {0};
    cx_err_t err = {0};
    ck_assert_int_eq(cx_manifest_to_json(&man, &b, &err), -1);
    ck_assert_int_eq(err.code, CX_EINVAL);
    ck_assert_msg(strstr(err.msg, expect), "'%s' lacks '%s'", err.msg, expect);
    ck_assert_uint_eq(b.len, 0);
    cx_buf_free(&b);
}

START_TEST(test_manifest_writer_checks) {
    init_manifest(); man.unit_id = "XYZ";
    writer_rejects("unit_id is not 32 lowercase hex");
    init_manifest(); man.class_name = "a/b";
    writer_rejects("class 'a/b' contains '/'");
    init_manifest(); man.committed = 3;
    writer_rejects("2 samples listed but committed is 3");
    init_manifest(); man.passed = 5;
    writer_rejects("counts out of order");
    init_manifest(); smp[1].index = 0;
    writer_rejects("samples[1].index 0 is listed twice");
    init_manifest(); smp[1].sha256[0] = 'G';
    writer_rejects("samples[1].sha256");
    init_manifest(); man.params.sampler = 0;
    writer_rejects("params.sampler 0 is unknown");
    init_manifest(); man.worker_id = NULL;
    writer_rejects("missing worker_id");
}
END_TEST

/* Replaces the first occurrence of from with to in the good document. */
static void parse_rejects(const char *from, const char *to, const char *expect) {
    init_manifest();
    cx_buf_t b = {0};
    ck_assert_int_eq(cx_manifest_to_json(&man, &b, NULL), 0);
    char *doc = (char *)b.data, *at = strstr(doc, from);
    ck_assert_msg(at != NULL, "'%s' not in %s", from, doc);
    size_t n = strlen(doc) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - doc), doc, to, at + strlen(from));
    cx_manifest_t *m = (cx_manifest_t *)0x1;
    cx_err_t err = {0};
    ck_assert_int_eq(cx_manifest_parse(out, strlen(out), &m, &err), -1);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(err.code, CX_EDECODE);
    ck_assert_msg(strstr(err.msg, expect), "'%s' lacks '%s'", err.msg, expect);
    free(out);
    cx_buf_free(&b);
}

START_TEST(test_manifest_malformed) {
    cx_manifest_t *m = NULL;
    cx_err_t err = {0};
    ck_assert_int_eq(cx_manifest_parse("", 0, &m, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "empty"));
    ck_assert_int_eq(cx_manifest_parse("{\"job_id\":", 10, &m, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "not valid JSON"));
    ck_assert_int_eq(cx_manifest_parse("[1,2]", 5, &m, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "not a JSON object"));
    ck_assert_int_eq(cx_manifest_parse("{}", 2, &m, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "missing job_id"));
    parse_rejects("\"unit_id\":\"" UID "\"", "\"unit_id\":\"abc\"", "unit_id is not 32 lowercase hex");
    parse_rejects("\"job_id\":\"cxr-demo\"", "\"job_id\":\"../x\"", "job_id '../x' contains '/'");
    parse_rejects("\"attempt\":2", "\"attempt\":-2", "attempt is not an integer");
    parse_rejects("\"attempt\":2", "\"attempt\":2.5", "attempt is not an integer");
    parse_rejects("\"attempt\":2", "\"attempt\":\"2\"", "attempt is not an integer");
    parse_rejects("\"seed\":\"18446744073709551557\"", "\"seed\":\"18446744073709551616\"", "seed '18446744073709551616' is not a 64-bit decimal");
    parse_rejects("\"seed\":\"18446744073709551557\"", "\"seed\":\"-1\"", "seed is not a decimal");
    parse_rejects("\"class\":\"effusion\",", "", "missing class");
    parse_rejects("\"committed\":2", "\"committed\":1", "2 samples listed but committed is 1");
    parse_rejects("\"sampler\":\"heun\"", "\"sampler\":\"plms\"", "params.sampler 0 is unknown");
    parse_rejects("\"sha256\":\"" SHA2 "\"", "\"sha256\":\"abc\"", "samples[1].sha256 is not 64");
    parse_rejects("\"index\":3", "\"index\":0", "samples[1].index 0 is listed twice");
    parse_rejects("\"snr\":12.5", "\"snr\":\"high\"", "samples[0].scores.snr is not a number");
    parse_rejects("\"samples\":[", "\"samplez\":[", "missing samples list");
    parse_rejects("\"params\":{", "\"paramz\":{", "missing params");
    parse_rejects("\"committed_unix_ms\":1796148000123", "\"committed_unix_ms\":-1", "committed_unix_ms is not an integer");
    /* Unknown keys are ignored. */
    init_manifest();
    cx_buf_t b = {0};
    cx_buf_append(&b, "{\"future_field\":[1,2],", 22);
    ck_assert_int_eq(cx_manifest_to_json(&man, &b, NULL), 0);
    memmove(b.data + 22, b.data + 23, b.len - 23 + 1); /* drop the second '{' */
    b.len--;
    ck_assert_msg(cx_manifest_parse((char *)b.data, b.len, &m, &err) == 0, "%s", err.msg);
    cx_manifest_free(m);
    cx_buf_free(&b);
}
END_TEST

int main(void) {
    Suite *s = suite_create("manifest");
    TCase *tc = tcase_create("manifest");
    tcase_add_test(tc, test_manifest_roundtrip);
    tcase_add_test(tc, test_manifest_writer_checks);
    tcase_add_test(tc, test_manifest_malformed);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
