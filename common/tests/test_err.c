#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/err.h"

START_TEST(test_set_and_wrap) {
    cx_err_t e = {0};
    ck_assert_int_eq(cx_err_set(&e, CX_EIO, 1, "disk %s", "full"), -1);
    ck_assert_int_eq(e.code, CX_EIO);
    ck_assert_int_eq(e.retriable, 1);
    ck_assert_str_eq(e.msg, "disk full");
    ck_assert_int_eq(cx_err_wrap(&e, "write %s", "a.png"), -1);
    ck_assert_str_eq(e.msg, "write a.png: disk full");
    ck_assert_int_eq(e.code, CX_EIO);
    cx_err_clear(&e);
    ck_assert_int_eq(e.code, CX_OK);
    ck_assert_int_eq(e.retriable, 0);
    ck_assert_str_eq(e.msg, "");
}
END_TEST

START_TEST(test_null_and_truncation) {
    ck_assert_int_eq(cx_err_set(NULL, CX_EINVAL, 0, "x"), -1);
    ck_assert_int_eq(cx_err_wrap(NULL, "x"), -1);
    cx_err_clear(NULL);

    cx_err_t e;
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cx_err_set(&e, CX_EINVAL, 0, "%s", big);
    ck_assert_uint_eq(strlen(e.msg), sizeof e.msg - 1);
    cx_err_wrap(&e, "%s", big); /* prefix longer than the buffer */
    ck_assert_uint_eq(strlen(e.msg), sizeof e.msg - 1);
    cx_err_set(&e, CX_EINVAL, 0, "cause");
    cx_err_wrap(&e, "ctx");
    cx_err_wrap(&e, "outer");
    ck_assert_str_eq(e.msg, "outer: ctx: cause");
}
END_TEST

START_TEST(test_names) {
    ck_assert_str_eq(cx_errcode_name(CX_OK), "ok");
    ck_assert_str_eq(cx_errcode_name(CX_EFENCED), "fenced by a newer attempt");
    ck_assert_str_eq(cx_errcode_name((cx_errcode_t)999), "unknown error");
}
END_TEST

int main(void) {
    Suite *s = suite_create("err");
    TCase *tc = tcase_create("err");
    tcase_add_test(tc, test_set_and_wrap);
    tcase_add_test(tc, test_null_and_truncation);
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
