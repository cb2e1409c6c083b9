#include <check.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/names.h"
#include "cx_testenv.h"

static void bad(const char *name, const char *expect) {
    cx_err_t err = {0};
    ck_assert_int_eq(cx_name_check("class name", name, &err), -1);
    ck_assert_int_eq(err.code, CX_EINVAL);
    ck_assert_msg(strstr(err.msg, expect), "'%s' for expectation '%s'", err.msg,
                  expect);
    ck_assert_msg(strstr(err.msg, "class name"), "field not named: %s", err.msg);
}

START_TEST(test_name_check_accepts) {
    const char *good[] = {"normal", "effusion", "a", "A.b_c-9", "x..y",
                          "cxr-demo", "ref-cxr-v0"};
    cx_err_t err = {0};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        ck_assert_msg(cx_name_check("class name", good[i], &err) == 0, "%s: %s",
                      good[i], err.msg);
    char max[CX_NAME_MAX + 1];
    memset(max, 'a', CX_NAME_MAX);
    max[CX_NAME_MAX] = 0;
    ck_assert_int_eq(cx_name_check("class name", max, &err), 0);
}
END_TEST

START_TEST(test_name_check_rules) {
    bad("a/b", "class name 'a/b' contains '/'");
    bad("..", "class name '..' is '..'");
    bad(".", "is '.'");
    bad("", "class name is empty");
    bad("a\tb", "contains a control character");
    bad("a\x7f", "contains a control character");
    bad("\n", "contains a control character");
    char longname[CX_NAME_MAX + 2];
    memset(longname, 'b', CX_NAME_MAX + 1);
    longname[CX_NAME_MAX + 1] = 0;
    bad(longname, "is longer than 64 characters");
    bad(".hidden", "starts with '.'");
    bad("-flag", "starts with '-'");
    bad("a b", "contains ' '");
    bad("caf\xc3\xa9", "contains");
    bad("a*", "contains '*'");
    cx_err_t err = {0};
    ck_assert_int_eq(cx_name_check("class name", NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "is empty"));
    /* err may be NULL */
    ck_assert_int_eq(cx_name_check("x", "../etc", NULL), -1);
}
END_TEST

START_TEST(test_unit_id) {
    char a[33], b[33];
    /* Independent reference: python hashlib over "job-1\0normal\0" "3\0" "1". */
    cx_unit_id("job-1", "normal", 3, 1, a);
    ck_assert_str_eq(a, "875d941232e9bcb60a54b2958c3df923");
    cx_unit_id("cxr-demo", "effusion", 0, 0, a);
    ck_assert_str_eq(a, "c5c0d6102a5087c808692b4ab44ae567");
    cx_unit_id("cxr-demo", "effusion", 0, 0, b);
    ck_assert_str_eq(a, b);
    cx_unit_id("cxr-demo", "effusion", 0, 1, b);
    ck_assert_str_ne(a, b);
    cx_unit_id("cxr-demo", "effusion", 1, 0, b);
    ck_assert_str_ne(a, b);
    /* The separators keep ("ab","c") and ("a","bc") apart; so for numbers. */
    cx_unit_id("ab", "c", 1, 11, a);
    cx_unit_id("a", "bc", 1, 11, b);
    ck_assert_str_ne(a, b);
    cx_unit_id("j", "c", 11, 1, a);
    cx_unit_id("j", "c", 1, 11, b);
    ck_assert_str_ne(a, b);
    ck_assert_uint_eq(strlen(a), 32);
    ck_assert_uint_eq(strspn(a, "0123456789abcdef"), 32);
}
END_TEST

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

START_TEST(test_unit_seed) {
    enum { NC = 16, NO = 2000, NG = 4 };
    size_t n = (size_t)NC * NO * NG * 2, k = 0;
    uint64_t *all = malloc(n * sizeof *all);
    ck_assert_ptr_nonnull(all);
    for (uint64_t base = 42; base <= 43; base++)
        for (uint32_t c = 0; c < NC; c++)
            for (uint32_t o = 0; o < NO; o++)
                for (uint32_t g = 0; g < NG; g++)
                    all[k++] = cx_unit_seed(base, c, o, g);
    qsort(all, n, sizeof *all, cmp_u64);
    for (size_t i = 1; i < n; i++)
        ck_assert_msg(all[i] != all[i - 1], "seed collision %llu",
                      (unsigned long long)all[i]);
    free(all);
    ck_assert_uint_eq(cx_unit_seed(7, 1, 2, 3), cx_unit_seed(7, 1, 2, 3));
    /* Neighbouring inputs differ in about half the bits (a real mixer). */
    int bits = __builtin_popcountll(cx_unit_seed(0, 0, 0, 0) ^ cx_unit_seed(0, 0, 1, 0));
    ck_assert_int_gt(bits, 12);
    ck_assert_int_lt(bits, 52);
}
END_TEST

START_TEST(test_job_id_new) {
    char a[CX_NAME_MAX + 1], b[CX_NAME_MAX + 1];
    cx_job_id_new(a);
    cx_job_id_new(b);
    regex_t re;
    ck_assert_int_eq(regcomp(&re, "^job-[0-9]{8}-[0-9a-f]{8}$", REG_EXTENDED), 0);
    ck_assert_msg(regexec(&re, a, 0, NULL, 0) == 0, "bad job id %s", a);
    regfree(&re);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(cx_name_check("job_id", a, NULL), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("names");
    TCase *tc = tcase_create("names");
    tcase_add_test(tc, test_name_check_accepts);
    tcase_add_test(tc, test_name_check_rules);
    tcase_add_test(tc, test_unit_id);
    tcase_add_test(tc, test_unit_seed);
    tcase_add_test(tc, test_job_id_new);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
