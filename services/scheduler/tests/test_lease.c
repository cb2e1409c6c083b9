/* Pure logic of leases and the registry: the sweep's decision, free slots,
 * partition fields. */
#include <check.h>
#include <stdlib.h>

#include "lease.h"
#include "registry.h"

static cx_lease_view_t view(int64_t expiry, int alive, int leased) {
    cx_lease_view_t v = {(char *)"u", (char *)"w", 7, expiry, alive, leased,
                         1};
    return v;
}

START_TEST(test_check_holds) {
    cx_lease_view_t v = view(1000, 1, 1);
    ck_assert_int_eq(cx_lease_check(&v, 999), CX_CHECK_OK);
}
END_TEST

START_TEST(test_check_expired) {
    cx_lease_view_t v = view(1000, 1, 1);
    ck_assert_int_eq(cx_lease_check(&v, 1000), CX_CHECK_EXPIRED);
    ck_assert_int_eq(cx_lease_check(&v, 5000), CX_CHECK_EXPIRED);
}
END_TEST

START_TEST(test_check_lost_worker_before_expiry) {
    /* A killed worker is caught by its alive key, long before the lease
     * would expire. */
    cx_lease_view_t v = view(120000, 0, 1);
    ck_assert_int_eq(cx_lease_check(&v, 10), CX_CHECK_LOST);
    ck_assert_str_ne(cx_lease_check_reason(CX_CHECK_LOST), "ok");
}
END_TEST

START_TEST(test_check_goodbye) {
    /* A deregistered worker drained: its leases are released at once,
     * expired or not, and not counted as failures. */
    cx_lease_view_t v = view(120000, 0, 1);
    v.registered = 0;
    ck_assert_int_eq(cx_lease_check(&v, 10), CX_CHECK_GOODBYE);
    ck_assert_int_eq(cx_lease_check(&v, 200000), CX_CHECK_GOODBYE);
    ck_assert_str_ne(cx_lease_check_reason(CX_CHECK_GOODBYE), "ok");
}
END_TEST

START_TEST(test_check_orphan) {
    cx_lease_view_t v = view(1000, 1, 0);
    ck_assert_int_eq(cx_lease_check(&v, 0), CX_CHECK_ORPHAN);
}
END_TEST

static cx_wview_t wv(int alive, int draining, int part, int slots,
                     int inflight) {
    cx_wview_t w = {(char *)"w", 0, alive, draining, part, slots, inflight};
    return w;
}

START_TEST(test_free_slots) {
    cx_wview_t w = wv(1, 0, 0, 0, 0);
    ck_assert_int_eq(cx_registry_free_slots(&w, 2), 2);
    w = wv(1, 0, 0, 0, 1);
    ck_assert_int_eq(cx_registry_free_slots(&w, 2), 1);
    w = wv(1, 0, 0, 1, 0); /* worker asks for fewer */
    ck_assert_int_eq(cx_registry_free_slots(&w, 2), 1);
    w = wv(1, 0, 0, 8, 0); /* capped by max_inflight */
    ck_assert_int_eq(cx_registry_free_slots(&w, 2), 2);
    w = wv(1, 0, 0, 2, 5); /* over-full never negative */
    ck_assert_int_eq(cx_registry_free_slots(&w, 2), 0);
}
END_TEST

START_TEST(test_free_slots_unavailable) {
    cx_wview_t w = wv(0, 0, 0, 2, 0);
    ck_assert_int_eq(cx_registry_free_slots(&w, 2), 0);
    w = wv(1, 1, 0, 2, 0);
    ck_assert_int_eq(cx_registry_free_slots(&w, 2), 0);
    w = wv(1, 0, -1, 2, 0);
    ck_assert_int_eq(cx_registry_free_slots(&w, 2), 0);
}
END_TEST

START_TEST(test_parse_partition) {
    ck_assert_int_eq(cx_registry_parse_partition("0", 4), 0);
    ck_assert_int_eq(cx_registry_parse_partition("3", 4), 3);
    ck_assert_int_eq(cx_registry_parse_partition("4", 4), -1);
    ck_assert_int_eq(cx_registry_parse_partition("12", 0), 12);
    ck_assert_int_eq(cx_registry_parse_partition("", 4), -1);
    ck_assert_int_eq(cx_registry_parse_partition("-1", 4), -1);
    ck_assert_int_eq(cx_registry_parse_partition("2x", 4), -1);
    ck_assert_int_eq(cx_registry_parse_partition(NULL, 4), -1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("scheduler_lease");
    TCase *tc = tcase_create("check");
    tcase_add_test(tc, test_check_holds);
    tcase_add_test(tc, test_check_expired);
    tcase_add_test(tc, test_check_lost_worker_before_expiry);
    tcase_add_test(tc, test_check_orphan);
    tcase_add_test(tc, test_check_goodbye);
    suite_add_tcase(s, tc);
    tc = tcase_create("registry");
    tcase_add_test(tc, test_free_slots);
    tcase_add_test(tc, test_free_slots_unavailable);
    tcase_add_test(tc, test_parse_partition);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
