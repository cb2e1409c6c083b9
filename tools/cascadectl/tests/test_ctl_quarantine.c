/* cascadectl quarantine: the table and the JSON an operator sees, and the
 * command line it accepts. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "quarantine.h"

START_TEST(test_print) {
    cx_ctl_quar_t q = {.worker = "gpu-worker-2", .reason = "worker gpu-worker-2 quarantined: x",
                       .gpu_type = "a100", .job_id = "j1", .since_ms = 1000,
                       .failure_rate = 0.97, .pool_rate = 0.01, .samples = 96};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cx_ctl_print_quarantine(f, &q, 1, 1000 + 125000);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "WORKER"));
    ck_assert_ptr_nonnull(strstr(buf, "gpu-worker-2"));
    ck_assert_ptr_nonnull(strstr(buf, "0.970"));
    ck_assert_ptr_nonnull(strstr(buf, "0.010"));
    ck_assert_ptr_nonnull(strstr(buf, "2m05s"));
    free(buf);
    f = open_memstream(&buf, &len);
    cx_ctl_print_quarantine(f, NULL, 0, 0);
    fclose(f);
    ck_assert_str_eq(buf, "no worker is quarantined\n");
    free(buf);
    char *js = cx_ctl_quarantine_json(&q, 1);
    cJSON *j = cJSON_Parse(js);
    ck_assert_int_eq(cJSON_GetArraySize(j), 1);
    cJSON *o = cJSON_GetArrayItem(j, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "worker")->valuestring,
                     "gpu-worker-2");
    ck_assert_double_eq(cJSON_GetObjectItem(o, "samples")->valuedouble, 96);
    cJSON_Delete(j);
    free(js);
}
END_TEST

START_TEST(test_args) {
    static const cx_conf_entry_t table[] = {CX_CONF_END};
    char *ok1[] = {"cascadectl", "quarantine", "list"};
    char *ok2[] = {"cascadectl", "quarantine", "release", "w1"};
    char *bad1[] = {"cascadectl", "quarantine"};
    char *bad2[] = {"cascadectl", "quarantine", "release"};
    char *bad3[] = {"cascadectl", "quarantine", "list", "extra"};
    cx_ctl_args_t a;
    cx_err_t e;
    ck_assert_int_eq(cx_ctl_args_split(table, 3, ok1, &a, &e), 0);
    ck_assert_int_eq(cx_ctl_args_check(&a, &e), 0);
    cx_ctl_args_release(&a);
    ck_assert_int_eq(cx_ctl_args_split(table, 4, ok2, &a, &e), 0);
    ck_assert_int_eq(cx_ctl_args_check(&a, &e), 0);
    ck_assert_str_eq(a.pos[1], "w1");
    cx_ctl_args_release(&a);
    char **bad[] = {bad1, bad2, bad3};
    int n[] = {2, 3, 4};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(cx_ctl_args_split(table, n[i], bad[i], &a, &e), 0);
        ck_assert_int_eq(cx_ctl_args_check(&a, &e), -1);
        cx_ctl_args_release(&a);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("cascadectl_quarantine");
    TCase *tc = tcase_create("quarantine");
    tcase_add_test(tc, test_print);
    tcase_add_test(tc, test_args);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
