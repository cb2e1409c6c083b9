#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/sha256.h"
#include "cx_testenv.h"

START_TEST(test_sha256_vectors) {
    char hex[65];
    cx_sha256_hex("", 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cx_sha256_hex(NULL, 0, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cx_sha256_hex("abc", 3, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    cx_sha256_hex(m, strlen(m), hex);
    ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    size_t n = 1000000;
    char *a = malloc(n);
    ck_assert_ptr_nonnull(a);
    memset(a, 'a', n);
    cx_sha256_hex(a, n, hex);
    free(a);
    ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
END_TEST

START_TEST(test_sha256_raw_and_hex) {
    uint8_t d[32];
    char hex[65];
    cx_sha256("abc", 3, d);
    ck_assert_uint_eq(d[0], 0xba);
    ck_assert_uint_eq(d[31], 0xad);
    cx_hex(d, 4, hex);
    ck_assert_str_eq(hex, "ba7816bf");
    const uint8_t b[] = {0x00, 0x0f, 0xf0, 0xff};
    cx_hex(b, 4, hex);
    ck_assert_str_eq(hex, "000ff0ff");
    cx_hex(b, 0, hex);
    ck_assert_str_eq(hex, "");
}
END_TEST

int main(void) {
    Suite *s = suite_create("sha256");
    TCase *tc = tcase_create("sha256");
    tcase_add_test(tc, test_sha256_vectors);
    tcase_add_test(tc, test_sha256_raw_and_hex);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
