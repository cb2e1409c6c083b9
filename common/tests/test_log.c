#include <check.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/log.h"

static int evaluated;
static int side_effect(void) { return ++evaluated; }

/* Runs fn with stderr redirected to a temporary file; returns its text. */
static char *capture(void (*fn)(void)) {
    static char text[65536];
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(f), STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static void emit_info(void) {
    cx_log_init("planner", CX_LOG_INFO);
    CX_INFO("unit committed job_id=%s n=%d", "j1", 3);
    CX_DEBUG("hidden n=%d", side_effect());
    CX_ERROR("boom");
}

START_TEST(test_format_and_level) {
    evaluated = 0;
    char *out = capture(emit_info);
    regex_t re;
    ck_assert_int_eq(
        regcomp(&re,
                "^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                "\\.[0-9]{3}Z level=info svc=planner unit committed "
                "job_id=j1 n=3\n"
                "ts=[^ ]+ level=error svc=planner boom\n$",
                REG_EXTENDED),
        0);
    ck_assert_msg(regexec(&re, out, 0, NULL, 0) == 0, "got: %s", out);
    regfree(&re);
    ck_assert_int_eq(evaluated, 0); /* debug arguments not evaluated */
}
END_TEST

static void emit_long(void) {
    char big[10000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cx_log_init("svc", CX_LOG_DEBUG);
    CX_DEBUG("long %s", big);
    CX_DEBUG("after n=%d", side_effect());
}

START_TEST(test_long_line_truncated) {
    evaluated = 0;
    char *out = capture(emit_long);
    char *nl = strchr(out, '\n');
    ck_assert_ptr_nonnull(nl);
    ck_assert_ptr_nonnull(strstr(nl + 1, "level=debug svc=svc after n=1\n"));
    ck_assert_int_eq(evaluated, 1);
}
END_TEST

START_TEST(test_level_parse) {
    cx_log_level_t l;
    ck_assert_int_eq(cx_log_level_parse("warn", &l), 0);
    ck_assert_int_eq(l, CX_LOG_WARN);
    ck_assert_int_eq(cx_log_level_parse("debug", &l), 0);
    ck_assert_int_eq(l, CX_LOG_DEBUG);
    ck_assert_int_eq(cx_log_level_parse("verbose", &l), -1);
    ck_assert_int_eq(cx_log_level_parse(NULL, &l), -1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, test_format_and_level);
    tcase_add_test(tc, test_long_line_truncated);
    tcase_add_test(tc, test_level_parse);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
