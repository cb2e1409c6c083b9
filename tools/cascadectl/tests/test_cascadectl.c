/* Check suite for cascadectl: argument handling, job files (the examples
 * included) and the text a user reads. No broker or Redis needed. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cascade/gen.h"
#include "cascade/jobfile.h"
#include "ctl.h"
#include "sched.h"

typedef struct {
    int json;
    double timeout;
    char *brokers;
} conf_t;

static const cx_conf_entry_t table[] = {
    {"json", CX_CONF_BOOL, "false", 0, 0, "", offsetof(conf_t, json)},
    {"timeout", CX_CONF_DOUBLE, "0", 0, 1e9, "", offsetof(conf_t, timeout)},
    {"kafka.brokers", CX_CONF_STR, "x:1", 0, 0, "", offsetof(conf_t, brokers)},
    CX_CONF_END};

START_TEST(test_args_split) {
    char *argv[] = {"cascadectl", "--kafka.brokers", "h:9", "watch", "job-1",
                    "--timeout", "5", "--json", NULL};
    cx_ctl_args_t a;
    cx_err_t err;
    ck_assert_int_eq(cx_ctl_args_split(table, 8, argv, &a, &err), 0);
    ck_assert_str_eq(a.command, "watch");
    ck_assert_int_eq(a.npos, 1);
    ck_assert_str_eq(a.pos[0], "job-1");
    ck_assert_int_eq(a.conf_argc, 6);
    ck_assert_str_eq(a.conf_argv[2], "h:9");
    ck_assert_str_eq(a.conf_argv[4], "5");
    ck_assert_int_eq(cx_ctl_args_check(&a, &err), 0);
    conf_t cfg;
    ck_assert_int_eq(cx_conf_load(table, &cfg, "t", a.conf_argc, a.conf_argv, &err), 0);
    ck_assert_int_eq(cfg.json, 1);
    ck_assert_double_eq(cfg.timeout, 5);
    ck_assert_str_eq(cfg.brokers, "h:9");
    cx_conf_free(table, &cfg);
    cx_ctl_args_release(&a);

    /* a BOOL flag does not swallow the next word unless it is a boolean */
    char *argv2[] = {"cascadectl", "status", "--json", "job-2", NULL};
    ck_assert_int_eq(cx_ctl_args_split(table, 4, argv2, &a, &err), 0);
    ck_assert_str_eq(a.pos[0], "job-2");
    ck_assert_int_eq(a.conf_argc, 2);
    cx_ctl_args_release(&a);
}
END_TEST

static const char *check_msg(int argc, char **argv) {
    static cx_err_t err;
    cx_ctl_args_t a;
    ck_assert_int_eq(cx_ctl_args_split(table, argc, argv, &a, &err), 0);
    int rc = cx_ctl_args_check(&a, &err);
    cx_ctl_args_release(&a);
    return rc == 0 ? NULL : err.msg;
}

START_TEST(test_args_errors) {
    char *none[] = {"cascadectl", NULL};
    ck_assert_ptr_nonnull(strstr(check_msg(1, none), "no command"));
    char *unknown[] = {"cascadectl", "frobnicate", NULL};
    ck_assert_str_eq(check_msg(2, unknown), "unknown command \"frobnicate\"");
    char *missing[] = {"cascadectl", "submit", NULL};
    ck_assert_str_eq(check_msg(2, missing), "submit needs FILE");
    char *missing2[] = {"cascadectl", "status", NULL};
    ck_assert_str_eq(check_msg(2, missing2), "status needs JOB");
    char *extra[] = {"cascadectl", "list", "x", NULL};
    ck_assert_str_eq(check_msg(3, extra), "list: unexpected argument \"x\"");
    char *ok[] = {"cascadectl", "list", NULL};
    ck_assert_ptr_null(check_msg(2, ok));
    ck_assert_int_eq(cx_ctl_command_arity("cancel"), 1);
    ck_assert_int_eq(cx_ctl_command_arity("nope"), -1);
}
END_TEST

/* demo.yaml names ref-cxr-v1, a file checkpoint (make checkpoint fits it);
 * a small one with the same classes, saved from the built-in model, lets
 * the class check run without fitting. */
static char *save_small_checkpoint(void) {
    char *dir = strdup("/tmp/cx-ctl-ckpt-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    cx_err_t err;
    cx_model_t *m = cx_model_open(CX_CHECKPOINT_BUILTIN, 16, 16, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    char path[256];
    snprintf(path, sizeof path, "%s/ref-cxr-v1" CX_CHECKPOINT_EXT, dir);
    ck_assert_msg(cx_model_save(m, path, &err) == 0, "%s", err.msg);
    cx_model_destroy(m);
    setenv("CASCADE_CHECKPOINT_DIR", dir, 1);
    return dir;
}

START_TEST(test_examples_validate) {
    cx_err_t err;
    char *ckdir = save_small_checkpoint();
    cx_jobspec_t *s = cx_ctl_load_jobfile(CX_EXAMPLES_DIR "/demo.yaml", 99, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    ck_assert_uint_eq(s->total_count, 3000);
    ck_assert_uint_eq(s->n_classes, 3);
    ck_assert_str_eq(s->classes[1]->name, "effusion");
    ck_assert_uint_eq(s->generation->steps, 50);
    ck_assert_uint_eq(s->generation->width, 512);
    ck_assert_uint_eq(s->generation->bit_depth, 16);
    ck_assert_int_eq(s->submitted_unix_ms, 99);
    ck_assert_uint_gt(strlen(s->job_id), 0); /* assigned */
    uint64_t q[3];
    ck_assert_uint_eq(cx_jobspec_quotas(s, q), 3000);
    ck_assert_uint_eq(q[0], 1200);
    ck_assert_uint_eq(q[1], 1050);
    ck_assert_uint_eq(q[2], 750);
    cx_jobfile_free(s);
    s = cx_ctl_load_jobfile(CX_EXAMPLES_DIR "/small.yaml", 0, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    ck_assert_uint_eq(s->total_count, 300);
    ck_assert_uint_eq(s->generation->steps, 20);
    cx_jobfile_free(s);
    char path[256];
    snprintf(path, sizeof path, "%s/ref-cxr-v1" CX_CHECKPOINT_EXT, ckdir);
    unlink(path);
    rmdir(ckdir);
    unsetenv("CASCADE_CHECKPOINT_DIR");
    free(ckdir);
}
END_TEST

static char *write_tmp(const char *text) {
    char *path = strdup("/tmp/cx-ctl-test-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

START_TEST(test_submit_invalid_file) {
    /* an unknown class of the checkpoint: exit 2, reason on stderr, nothing
     * sent (the brokers are unreachable, which would be exit 3) */
    char *path = write_tmp(
        "total: 10\nclasses:\n  - {name: pneumothorax, proportion: 1.0}\n"
        "generation: {checkpoint: ref-cxr-v0}\n");
    char errbuf[1024] = {0}, outbuf[256] = {0};
    FILE *eo = fmemopen(errbuf, sizeof errbuf - 1, "w");
    FILE *so = fmemopen(outbuf, sizeof outbuf - 1, "w");
    cx_ctl_t c = {"127.0.0.1:1", "redis://127.0.0.1:1", 0, 0, 1, so, eo};
    ck_assert_int_eq(cx_ctl_submit(&c, path), CX_CTL_USAGE);
    fclose(eo);
    fclose(so);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "cascadectl: invalid job file %s: ", path);
    ck_assert_msg(strncmp(errbuf, prefix, strlen(prefix)) == 0, "%s", errbuf);
    ck_assert_msg(strstr(errbuf, "pneumothorax") != NULL, "%s", errbuf);
    ck_assert_str_eq(outbuf, "");
    unlink(path);
    free(path);

    /* a missing file is a usage error too */
    errbuf[0] = '\0';
    eo = fmemopen(errbuf, sizeof errbuf - 1, "w");
    c.errout = eo;
    ck_assert_int_eq(cx_ctl_submit(&c, "/nonexistent/job.yaml"), CX_CTL_USAGE);
    fclose(eo);
    ck_assert_ptr_nonnull(strstr(errbuf, "invalid job file /nonexistent/job.yaml"));
}
END_TEST

static cx_jobstate_t *state(void) {
    cx_jobstate_t *st = cx_jobstate_new("job-x");
#define S(h, f, v) cx_jobstate_set(st, h, f, v, strlen(v), NULL)
    S(NULL, "state", "ACCEPTED");
    S(NULL, "classes", "normal,nodule");
    S("quota", "normal", "200");
    S("quota", "nodule", "100");
    S("committed", "normal", "100");
    S("committed", "nodule", "100");
    S("generated", "normal", "128");
    S("passed", "normal", "96");
#undef S
    return st;
}

START_TEST(test_status_text) {
    cx_jobstate_t *st = state();
    char buf[4096] = {0};
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    cx_ctl_print_status(f, st);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "job job-x  ACCEPTED"));
    ck_assert_ptr_nonnull(strstr(buf, "normal                    100          200   50.0%      75.0%"));
    ck_assert_ptr_nonnull(strstr(buf, "total                     200          300"));
    char *js = cx_ctl_status_json(st);
    cJSON *j = cJSON_Parse(js);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "state")->valuestring, "ACCEPTED");
    ck_assert_int_eq(cJSON_GetObjectItem(j, "total_committed")->valueint, 200);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "complete")));
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "classes"), 0);
    ck_assert_double_eq_tol(cJSON_GetObjectItem(c0, "pass_rate")->valuedouble, 0.75, 1e-9);
    cJSON_Delete(j);
    free(js);

    memset(buf, 0, sizeof buf);
    f = fmemopen(buf, sizeof buf - 1, "w");
    cx_ctl_print_watch(f, st, 10.0, 65);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "normal         [###############...............]   50.0%  100/200"));
    ck_assert_ptr_nonnull(strstr(buf, "10.0 samples/s  pass rate 75.0%  elapsed 1m05s  ETA 10s"));
    cx_jobstate_free(st);
}
END_TEST

START_TEST(test_bar_duration) {
    char b[64];
    cx_ctl_bar(b, 4, 0, 0);
    ck_assert_str_eq(b, "[....]");
    cx_ctl_bar(b, 4, 5, 4);
    ck_assert_str_eq(b, "[####]");
    cx_ctl_duration(b, sizeof b, -1);
    ck_assert_str_eq(b, "-");
    cx_ctl_duration(b, sizeof b, 3725);
    ck_assert_str_eq(b, "1h02m");
}
END_TEST

START_TEST(test_eta_line_and_plan) {
    /* The scheduler's cx:job:<job>:eta fields as watch prints them. */
    const char *f[] = {"known", "eta_ms", "lo_ms", "hi_ms", "late", "rate"};
    const char *v[] = {"1", "1795660200000", "1795660100000", "1795660300000",
                       "1", "812.5"};
    char buf[200];
    ck_assert_int_eq(cx_ctl_eta_format(f, v, 6, 1795660000000, buf, sizeof buf),
                     1);
    ck_assert_str_eq(buf, "ETA 2026-11-26 02:30:00Z (in 3m20s; 02:28:20 .. "
                          "02:31:40), pool 812.5 samples/s, DEADLINE AT RISK");
    v[4] = "0";
    cx_ctl_eta_format(f, v, 6, 1795660000000, buf, sizeof buf);
    ck_assert_ptr_null(strstr(buf, "RISK"));
    v[0] = "0";
    ck_assert_int_eq(cx_ctl_eta_format(f, v, 6, 0, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "");
    /* plan: a job file on a pool file, simulated. */
    ck_assert_int_eq(cx_ctl_command_arity("plan"), 1);
    ck_assert_int_eq(cx_ctl_command_arity("model"), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/demo.yaml", CX_EXAMPLES_DIR);
    char pool[512];
    snprintf(pool, sizeof pool, "%s/../pools/small.json", CX_EXAMPLES_DIR);
    FILE *out = tmpfile(), *errout = tmpfile();
    cx_ctl_t c = {"x:1", "redis://127.0.0.1:1/0", 0, 0, 1, out, errout};
    ck_assert_int_eq(cx_ctl_plan(&c, path, pool, 3), CX_CTL_OK);
    ck_assert_int_eq(cx_ctl_plan(&c, path, "/nonexistent.json", 3),
                     CX_CTL_USAGE);
    rewind(out);
    char text[4096] = "";
    size_t n = fread(text, 1, sizeof text - 1, out);
    text[n] = '\0';
    ck_assert_ptr_nonnull(strstr(text, "makespan"));
    ck_assert_ptr_nonnull(strstr(text, "lower bound"));
    ck_assert_ptr_nonnull(strstr(text, "cost"));
    fclose(out);
    fclose(errout);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cascadectl");
    TCase *tc = tcase_create("cascadectl");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_args_split);
    tcase_add_test(tc, test_args_errors);
    tcase_add_test(tc, test_examples_validate);
    tcase_add_test(tc, test_submit_invalid_file);
    tcase_add_test(tc, test_status_text);
    tcase_add_test(tc, test_bar_duration);
    tcase_add_test(tc, test_eta_line_and_plan);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
