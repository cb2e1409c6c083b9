/* Reservations against a real Redis: exact quota under concurrency,
 * idempotence per unit, fencing of dead units, settling. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redis_fixture.h"
#include "reserve.h"

static cx_redis_t *r;
static char job[64];
static int jobn;

static void cmd(const char *fmt, const char *a, const char *b,
                const char *c) {
    cx_err_t e;
    redisReply *rep = cx_redis_cmd(r, &e, fmt, a, b, c);
    ck_assert_msg(rep != NULL, "redis: %s", e.msg);
    freeReplyObject(rep);
}

static long long hget_int(const char *suffix, const char *field) {
    char key[128];
    snprintf(key, sizeof key, "cx:job:%s:%s", job, suffix);
    redisReply *rep = cx_redis_cmd(r, NULL, "HGET %s %s", key, field);
    ck_assert_ptr_nonnull(rep);
    long long v = rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : -1;
    freeReplyObject(rep);
    return v;
}

static void set_quota(const char *cls, const char *q) {
    char key[128];
    snprintf(key, sizeof key, "cx:job:%s:quota", job);
    cmd("HSET %s %s %s", key, cls, q);
}

static void setup(void) {
    const char *url = cx_fixture_redis_url();
    ck_assert_msg(url != NULL, "no redis");
    r = cx_redis_new(url, 5000, NULL);
    ck_assert_ptr_nonnull(r);
    snprintf(job, sizeof job, "job-rsv-%d-%d", (int)getpid(), jobn++);
}

static void teardown(void) { cx_redis_destroy(r); }

START_TEST(test_reserve_grants_and_caps) {
    set_quota("normal", "10");
    cx_reserve_result_t res;
    uint32_t g;
    cx_err_t e;
    ck_assert_int_eq(cx_reserve(r, job, "u1", "normal", 4, &res, &g, &e), 0);
    ck_assert_int_eq(res, CX_RESERVE_GRANTED);
    ck_assert_uint_eq(g, 4);
    ck_assert_int_eq(cx_reserve(r, job, "u2", "normal", 5, &res, &g, &e), 0);
    ck_assert_uint_eq(g, 5);
    /* Only one left in the class. */
    ck_assert_int_eq(cx_reserve(r, job, "u3", "normal", 5, &res, &g, &e), 0);
    ck_assert_uint_eq(g, 1);
    /* Full: a grant of 0, still recorded. */
    ck_assert_int_eq(cx_reserve(r, job, "u4", "normal", 5, &res, &g, &e), 0);
    ck_assert_int_eq(res, CX_RESERVE_GRANTED);
    ck_assert_uint_eq(g, 0);
    ck_assert_int_eq(hget_int("granted", "normal"), 10);
    ck_assert_int_eq(hget_int("resv", "u4"), 0);
}
END_TEST

START_TEST(test_reserve_idempotent) {
    set_quota("normal", "10");
    cx_reserve_result_t res;
    uint32_t g1, g2;
    ck_assert_int_eq(cx_reserve(r, job, "u1", "normal", 6, &res, &g1, NULL), 0);
    ck_assert_int_eq(cx_reserve(r, job, "u1", "normal", 6, &res, &g2, NULL), 0);
    ck_assert_uint_eq(g1, 6);
    ck_assert_uint_eq(g2, 6);
    ck_assert_int_eq(hget_int("granted", "normal"), 6);
    /* Another attempt that passed fewer never promotes more than it has,
     * and the recorded grant does not move. */
    ck_assert_int_eq(cx_reserve(r, job, "u1", "normal", 2, &res, &g2, NULL), 0);
    ck_assert_uint_eq(g2, 2);
    ck_assert_int_eq(hget_int("resv", "u1"), 6);
    ck_assert_int_eq(hget_int("granted", "normal"), 6);
}
END_TEST

START_TEST(test_reserve_dead_unit_fenced) {
    set_quota("normal", "10");
    char key[128];
    snprintf(key, sizeof key, "cx:job:%s:resolved", job);
    cmd("HSET %s %s %s", key, "u9", "d");
    cx_reserve_result_t res = CX_RESERVE_GRANTED;
    uint32_t g = 99;
    ck_assert_int_eq(cx_reserve(r, job, "u9", "normal", 3, &res, &g, NULL), 0);
    ck_assert_int_eq(res, CX_RESERVE_FENCED);
    ck_assert_uint_eq(g, 0);
    ck_assert_int_eq(hget_int("resv", "u9"), -1);
    ck_assert_int_eq(hget_int("granted", "normal"), -1);
    /* A committed ('c') unit is not fenced. */
    cmd("HSET %s %s %s", key, "u8", "c");
    ck_assert_int_eq(cx_reserve(r, job, "u8", "normal", 3, &res, &g, NULL), 0);
    ck_assert_int_eq(res, CX_RESERVE_GRANTED);
    ck_assert_uint_eq(g, 3);
}
END_TEST

START_TEST(test_reserve_no_quota) {
    cx_reserve_result_t res;
    uint32_t g;
    cx_err_t e;
    ck_assert_int_eq(cx_reserve(r, job, "u1", "ghost", 3, &res, &g, &e), -1);
    ck_assert_int_eq(e.code, CX_ENOENT);
    ck_assert_int_eq(e.retriable, 0);
    ck_assert_int_eq(hget_int("resv", "u1"), -1);
}
END_TEST

START_TEST(test_reserve_settle) {
    set_quota("normal", "10");
    cx_reserve_result_t res;
    uint32_t g;
    ck_assert_int_eq(cx_reserve(r, job, "u1", "normal", 8, &res, &g, NULL), 0);
    /* The manifest that won committed 5: 3 go back to the class. */
    ck_assert_int_eq(cx_reserve_settle(r, job, "u1", "normal", 5, NULL), 0);
    ck_assert_int_eq(hget_int("resv", "u1"), 5);
    ck_assert_int_eq(hget_int("granted", "normal"), 5);
    ck_assert_int_eq(cx_reserve_settle(r, job, "u1", "normal", 5, NULL), 0);
    ck_assert_int_eq(hget_int("granted", "normal"), 5);
    ck_assert_int_eq(cx_reserve(r, job, "u2", "normal", 8, &res, &g, NULL), 0);
    ck_assert_uint_eq(g, 5);
    /* No grant recorded: nothing to settle. */
    ck_assert_int_eq(cx_reserve_settle(r, job, "u7", "normal", 0, NULL), 0);
    ck_assert_int_eq(hget_int("resv", "u7"), -1);
}
END_TEST

#define NTHREADS 8
#define UNITS_PER_THREAD 40

typedef struct racer {
    const char *url;
    int t;
    uint32_t granted;
    uint32_t again_mismatch;
    int failures;
    uint32_t got[UNITS_PER_THREAD];
} racer_t;

static void *race(void *arg) {
    racer_t *rc = arg;
    cx_redis_t *c = cx_redis_new(rc->url, 5000, NULL);
    if (!c) {
        rc->failures++;
        return NULL;
    }
    for (int i = 0; i < UNITS_PER_THREAD; i++) {
        char unit[32];
        /* Units overlap between neighbouring threads: the same unit is
         * reserved concurrently by two of them. */
        snprintf(unit, sizeof unit, "u%d", (rc->t * UNITS_PER_THREAD / 2) + i);
        cx_reserve_result_t res;
        uint32_t g, g2;
        /* All racers agree on a unit's passed count (same verdict). */
        uint32_t passed =
            1 + (uint32_t)(((rc->t * UNITS_PER_THREAD / 2) + i) % 5);
        if (cx_reserve(c, job, unit, "normal", passed, &res, &g, NULL) < 0 ||
            cx_reserve(c, job, unit, "normal", passed, &res, &g2, NULL) < 0) {
            rc->failures++;
            continue;
        }
        if (g != g2 || g > passed) rc->again_mismatch++;
        rc->got[i] = g;
    }
    cx_redis_destroy(c);
    return NULL;
}

START_TEST(test_reserve_concurrent_never_exceeds_quota) {
    set_quota("normal", "250");
    racer_t rs[NTHREADS];
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        rs[t] = (racer_t){.url = cx_fixture_redis_url(), .t = t};
        ck_assert_int_eq(pthread_create(&th[t], NULL, race, &rs[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < NTHREADS; t++) {
        ck_assert_int_eq(rs[t].failures, 0);
        ck_assert_int_eq(rs[t].again_mismatch, 0);
    }
    /* Distinct units: NTHREADS/2 * UNITS + UNITS/2 = 180, passed 1..5
     * cycling (sum 540 > 250): the class fills exactly. */
    char key[128];
    snprintf(key, sizeof key, "cx:job:%s:resv", job);
    redisReply *rep = cx_redis_cmd(r, NULL, "HGETALL %s", key);
    ck_assert_ptr_nonnull(rep);
    long long sum = 0;
    for (size_t i = 1; i < rep->elements; i += 2) {
        long long g = atoll(rep->element[i]->str);
        const char *u = rep->element[i - 1]->str;
        ck_assert_int_le(g, 1 + (atoi(u + 1) % 5));
        sum += g;
    }
    ck_assert_uint_eq(rep->elements / 2,
                      (NTHREADS + 1) * UNITS_PER_THREAD / 2);
    freeReplyObject(rep);
    ck_assert_int_eq(sum, 250);
    /* Two racers on one unit saw the one recorded grant. */
    for (int t = 0; t < NTHREADS; t++)
        for (int i = 0; i < UNITS_PER_THREAD; i++) {
            char unit[32];
            snprintf(unit, sizeof unit, "u%d",
                     (t * UNITS_PER_THREAD / 2) + i);
            ck_assert_int_eq(rs[t].got[i], hget_int("resv", unit));
        }
    ck_assert_int_eq(hget_int("granted", "normal"), 250);
}
END_TEST

int main(void) {
    Suite *s = suite_create("committer_reserve");
    TCase *tc = tcase_create("reserve");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reserve_grants_and_caps);
    tcase_add_test(tc, test_reserve_idempotent);
    tcase_add_test(tc, test_reserve_dead_unit_fenced);
    tcase_add_test(tc, test_reserve_no_quota);
    tcase_add_test(tc, test_reserve_settle);
    tcase_add_test(tc, test_reserve_concurrent_never_exceeds_quota);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    cx_fixture_redis_stop();
    return failed ? 1 : 0;
}
