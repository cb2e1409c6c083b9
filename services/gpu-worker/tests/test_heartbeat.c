/* Pure logic of the partition claim. */
#include <check.h>
#include <stdlib.h>

#include "heartbeat.h"

START_TEST(test_pick_first_free) {
    const char *owners[] = {"w1", NULL, "", "w2"};
    ck_assert_int_eq(cx_hb_claim_pick(owners, 4, "w9"), 1);
}
END_TEST

START_TEST(test_pick_own_claim_first) {
    /* A worker restarted within the TTL gets its partition back rather
     * than taking a second one. */
    const char *owners[] = {NULL, "w1", "w9", NULL};
    ck_assert_int_eq(cx_hb_claim_pick(owners, 4, "w9"), 2);
}
END_TEST

START_TEST(test_pick_all_taken) {
    const char *owners[] = {"w1", "w2"};
    ck_assert_int_eq(cx_hb_claim_pick(owners, 2, "w3"), -1);
    ck_assert_int_eq(cx_hb_claim_pick(owners, 0, "w3"), -1);
}
END_TEST

START_TEST(test_pick_name_prefix_is_not_own) {
    const char *owners[] = {"w1x", NULL};
    ck_assert_int_eq(cx_hb_claim_pick(owners, 2, "w1"), 1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gpu_worker_heartbeat");
    TCase *tc = tcase_create("claim_pick");
    tcase_add_test(tc, test_pick_first_free);
    tcase_add_test(tc, test_pick_own_claim_first);
    tcase_add_test(tc, test_pick_all_taken);
    tcase_add_test(tc, test_pick_name_prefix_is_not_own);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
