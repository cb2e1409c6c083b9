#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/util.h"
#include "cx_testenv.h"

START_TEST(test_buf) {
    cx_buf_t b = {0};
    for (int i = 0; i < 1000; i++) ck_assert_int_eq(cx_buf_printf(&b, "%d,", i), 0);
    ck_assert_ptr_nonnull(strstr((char *)b.data, "998,999,"));
    ck_assert_uint_eq(b.len, strlen((char *)b.data));
    ck_assert_int_eq(cx_buf_append(&b, "\0z", 2), 0);
    ck_assert_int_eq(b.data[b.len - 1], 'z');
    cx_buf_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_int_eq(cx_buf_append(&b, NULL, 0), 0);
    ck_assert_str_eq((char *)b.data, "");
    cx_buf_free(&b);
}
END_TEST

START_TEST(test_strlist) {
    cx_strlist_t l = {0};
    const char *in[] = {"pear", "apple", "fig", "banana", "apple"};
    char buf[8];
    for (size_t i = 0; i < 5; i++) {
        snprintf(buf, sizeof buf, "%s", in[i]);
        ck_assert_int_eq(cx_strlist_push(&l, buf), 0);
        buf[0] = '#'; /* the list keeps its own copy */
    }
    for (int i = 0; i < 20; i++) cx_strlist_push(&l, "zz");
    cx_strlist_sort(&l);
    ck_assert_uint_eq(l.len, 25);
    ck_assert_str_eq(l.items[0], "apple");
    ck_assert_str_eq(l.items[1], "apple");
    ck_assert_str_eq(l.items[2], "banana");
    ck_assert_str_eq(l.items[4], "pear");
    cx_strlist_free(&l);
    ck_assert_uint_eq(l.len, 0);
    ck_assert_ptr_null(l.items);
}
END_TEST

START_TEST(test_clocks_and_backoff) {
    int64_t now = cx_now_ms();
    ck_assert(now > 1700000000000LL);
    double t0 = cx_mono_ms();
    ck_assert_int_eq(cx_backoff_sleep(2, 20, 1000, NULL), 0); /* 80 ms +-25% */
    double dt = cx_mono_ms() - t0;
    ck_assert_msg(dt >= 59 && dt < 400, "slept %.1f ms", dt);

    t0 = cx_mono_ms();
    ck_assert_int_eq(cx_backoff_sleep(30, 100, 150, NULL), 0); /* capped */
    dt = cx_mono_ms() - t0;
    ck_assert_msg(dt >= 111 && dt < 500, "slept %.1f ms", dt);

    volatile int stop = 1;
    t0 = cx_mono_ms();
    ck_assert_int_eq(cx_backoff_sleep(10, 1000, 60000, &stop), 1);
    ck_assert(cx_mono_ms() - t0 < 50);
}
END_TEST

START_TEST(test_read_file) {
    char *dir = cx_testenv_tmpdir("util");
    char path[600];
    cx_err_t err;
    char *data;
    size_t len;
    snprintf(path, sizeof path, "%s/f.bin", dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 100000; i++) fputc('a' + i % 26, f);
    fclose(f);
    ck_assert_int_eq(cx_read_file(path, &data, &len, &err), 0);
    ck_assert_uint_eq(len, 100000);
    ck_assert_int_eq(data[99999], 'a' + 99999 % 26);
    ck_assert_int_eq(data[100000], '\0');
    free(data);
    remove(path);
    ck_assert_int_eq(cx_read_file(path, &data, &len, &err), -1);
    ck_assert_int_eq(err.code, CX_ENOENT);
    ck_assert_ptr_nonnull(strstr(err.msg, "f.bin"));
    remove(dir);
    free(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("util");
    tcase_add_test(tc, test_buf);
    tcase_add_test(tc, test_strlist);
    tcase_add_test(tc, test_clocks_and_backoff);
    tcase_add_test(tc, test_read_file);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
