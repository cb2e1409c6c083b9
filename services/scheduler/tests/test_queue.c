/* Pure logic of the pending queue: order, exclusion, placement plan. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

START_TEST(test_score_interleaves_classes) {
    /* Ordinal 0 of every class comes before ordinal 1 of any class. */
    ck_assert_uint_lt(cx_queue_score(1, 0, 0), cx_queue_score(1, 0, 1));
    ck_assert_uint_lt(cx_queue_score(1, 0, 3), cx_queue_score(1, 1, 0));
    ck_assert_uint_lt(cx_queue_score(1, 1, 0), cx_queue_score(1, 1, 2));
}
END_TEST

START_TEST(test_score_job_order_first) {
    /* A later job's first unit waits for every unit of an earlier job,
     * replacements (high ordinals) included. */
    ck_assert_uint_lt(cx_queue_score(1, 5000000, 63), cx_queue_score(2, 0, 0));
    ck_assert_uint_lt(cx_queue_score(7, 0, 0), cx_queue_score(8, 0, 0));
}
END_TEST

START_TEST(test_score_exact_in_double) {
    uint64_t s = cx_queue_score((1u << 21) - 1, 0xffffffffu, 1000);
    ck_assert_uint_lt(s, (uint64_t)1 << 53);
    ck_assert_uint_eq((uint64_t)(double)s, s);
    /* Out-of-range ordinal/class are clamped, not wrapped into the rank. */
    ck_assert_uint_lt(s, cx_queue_score(1u << 21, 0, 0));
}
END_TEST

START_TEST(test_csv_has) {
    ck_assert_int_eq(cx_queue_csv_has("a,bb,c", "bb"), 1);
    ck_assert_int_eq(cx_queue_csv_has("a,bb,c", "b"), 0);
    ck_assert_int_eq(cx_queue_csv_has("a,bb,c", "c"), 1);
    ck_assert_int_eq(cx_queue_csv_has("", "a"), 0);
    ck_assert_int_eq(cx_queue_csv_has("w1", "w1"), 1);
}
END_TEST

START_TEST(test_exclusion_rule) {
    const char *live[] = {"w1", "w2", "w3"};
    /* Not excluded. */
    ck_assert_int_eq(cx_queue_excluded("", "w1", live, 3), 0);
    ck_assert_int_eq(cx_queue_excluded("w2", "w1", live, 3), 0);
    /* Excluded while another live worker has not failed it. */
    ck_assert_int_eq(cx_queue_excluded("w1", "w1", live, 3), 1);
    ck_assert_int_eq(cx_queue_excluded("w1,w2", "w1", live, 3), 1);
    /* Every live worker failed it: exclusion is ignored. */
    ck_assert_int_eq(cx_queue_excluded("w1,w2,w3", "w1", live, 3), 0);
    /* Failed workers that are gone do not count as alternatives. */
    ck_assert_int_eq(cx_queue_excluded("w1,w9", "w1", live, 1), 0);
}
END_TEST

static cx_cand_t cand(const char *u, const char *excl, int cancelled) {
    cx_cand_t c = {(char *)u, (char *)"job", (char *)excl, cancelled};
    return c;
}

START_TEST(test_plan_round_robin_fifo) {
    cx_cand_t c[] = {cand("u0", "", 0), cand("u1", "", 0), cand("u2", "", 0),
                     cand("u3", "", 0), cand("u4", "", 0)};
    const char *w[] = {"w1", "w2"};
    int free_slots[] = {2, 2};
    cx_pair_t p[8];
    size_t n = cx_queue_plan(c, 5, w, free_slots, 2, p, 8);
    ck_assert_uint_eq(n, 4);
    /* Turns: w1 u0, w2 u1, w1 u2, w2 u3; u4 waits. */
    size_t want_c[] = {0, 1, 2, 3}, want_w[] = {0, 1, 0, 1};
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(p[i].cand, want_c[i]);
        ck_assert_uint_eq(p[i].worker, want_w[i]);
    }
}
END_TEST

START_TEST(test_plan_skips_excluded_and_cancelled) {
    cx_cand_t c[] = {cand("u0", "w1", 0), cand("u1", "", 1),
                     cand("u2", "", 0)};
    const char *w[] = {"w1", "w2"};
    int free_slots[] = {1, 0};
    cx_pair_t p[4];
    /* w1 failed u0 and w2 is eligible (just full): u0 waits for w2, w1
     * takes u2; the cancelled u1 is never placed. */
    size_t n = cx_queue_plan(c, 3, w, free_slots, 2, p, 4);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(p[0].cand, 2);
    ck_assert_uint_eq(p[0].worker, 0);
}
END_TEST

START_TEST(test_plan_all_excluded_runs_anyway) {
    cx_cand_t c[] = {cand("u0", "w1,w2", 0)};
    const char *w[] = {"w1", "w2"};
    int free_slots[] = {1, 1};
    cx_pair_t p[4];
    size_t n = cx_queue_plan(c, 1, w, free_slots, 2, p, 4);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(p[0].worker, 0);
}
END_TEST

START_TEST(test_plan_respects_max_and_no_slots) {
    cx_cand_t c[] = {cand("u0", "", 0), cand("u1", "", 0)};
    const char *w[] = {"w1"};
    int none[] = {0}, two[] = {2};
    cx_pair_t p[4];
    ck_assert_uint_eq(cx_queue_plan(c, 2, w, none, 1, p, 4), 0);
    ck_assert_uint_eq(cx_queue_plan(c, 2, w, two, 1, p, 1), 1);
    ck_assert_uint_eq(cx_queue_plan(c, 0, w, two, 1, p, 4), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("scheduler_queue");
    TCase *tc = tcase_create("score");
    tcase_add_test(tc, test_score_interleaves_classes);
    tcase_add_test(tc, test_score_job_order_first);
    tcase_add_test(tc, test_score_exact_in_double);
    suite_add_tcase(s, tc);
    tc = tcase_create("exclusion");
    tcase_add_test(tc, test_csv_has);
    tcase_add_test(tc, test_exclusion_rule);
    suite_add_tcase(s, tc);
    tc = tcase_create("plan");
    tcase_add_test(tc, test_plan_round_robin_fifo);
    tcase_add_test(tc, test_plan_skips_excluded_and_cancelled);
    tcase_add_test(tc, test_plan_all_excluded_runs_anyway);
    tcase_add_test(tc, test_plan_respects_max_and_no_slots);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
