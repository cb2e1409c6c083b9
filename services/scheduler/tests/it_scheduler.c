/* Scheduler state machine against a real Redis (database 13 of the stack's
 * server, flushed per test): admission, lease, expiry, re-lease, death,
 * staged fencing, lost workers. Skipped (77) without a stack. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/codec.h"
#include "cascade/names.h"
#include "cascade/redis.h"
#include "cascade/util.h"
#include "cx_testenv.h"
#include "lease.h"
#include "queue.h"
#include "registry.h"

static char url[512];
static cx_redis_t *r;

#define R(...) cx_redis_cmd(r, NULL, __VA_ARGS__)

static void setup(void) {
    cx_err_t err = {0};
    r = cx_redis_new(url, 2000, &err);
    ck_assert_msg(r != NULL, "redis: %s", err.msg);
    redisReply *rep = R("FLUSHDB");
    ck_assert_ptr_nonnull(rep);
    freeReplyObject(rep);
}

static void teardown(void) {
    cx_redis_destroy(r);
    r = NULL;
}

static char *hget(const char *key, const char *field) {
    redisReply *rep = R("HGET %s %s", key, field);
    ck_assert_ptr_nonnull(rep);
    char *v = strdup(rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
    return v;
}

static long long num(const char *fmt, const char *a, const char *b) {
    redisReply *rep = R(fmt, a, b);
    ck_assert_ptr_nonnull(rep);
    /* A missing field or key counts as 0. */
    long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer
                  : rep->type == REDIS_REPLY_STRING
                      ? strtoll(rep->str, NULL, 10)
                      : 0;
    freeReplyObject(rep);
    return v;
}

static void alive(const char *w, int ttl_ms) {
    redisReply *rep = R("SET cx:worker:%s:alive 1 PX %d", w, ttl_ms);
    freeReplyObject(rep);
    rep = R("HSET cx:worker:%s partition 0 slots 2", w);
    freeReplyObject(rep);
    rep = R("ZADD cx:workers %lld %s", (long long)cx_now_ms(), w);
    freeReplyObject(rep);
}

/* Admits unit (job, class, ordinal) and returns its id in out. */
static int admit(const char *job, const char *cls, uint32_t ci, uint32_t ord,
                 char out[33]) {
    Cascade__V1__GenerationParams gp = CASCADE__V1__GENERATION_PARAMS__INIT;
    gp.checkpoint = (char *)"ref-cxr-v0";
    gp.sampler = CASCADE__V1__SAMPLER__SAMPLER_DDIM;
    gp.steps = 4;
    gp.width = gp.height = 32;
    gp.bit_depth = 16;
    cx_unit_t u = CASCADE__V1__WORK_UNIT__INIT;
    u.params = &gp;
    cx_unit_id(job, cls, ord, 0, out);
    u.job_id = (char *)job;
    u.unit_id = out;
    u.class_name = (char *)cls;
    u.class_index = ci;
    u.ordinal = ord;
    u.sample_count = 4;
    size_t len;
    uint8_t *buf = cx_pack(&u.base, &len, NULL);
    ck_assert_ptr_nonnull(buf);
    cx_err_t err = {0};
    int rc = cx_queue_admit(r, &u, buf, len, &err);
    free(buf);
    ck_assert_msg(rc >= 0, "admit: %s", err.msg);
    return rc;
}

static void acquire(const char *unit, const char *w, int64_t lease_ms,
                    cx_lease_t *l) {
    cx_err_t err = {0};
    int rc = cx_lease_acquire(r, unit, w, cx_now_ms(), lease_ms, l, &err);
    ck_assert_msg(rc == CX_LEASE_OK, "acquire rc=%d %s", rc, err.msg);
}

START_TEST(test_admit_dedup_order_cancel) {
    char a0[33], a1[33], b0[33], x[33], dup[33];
    ck_assert_int_eq(admit("jobA", "normal", 0, 0, a0), CX_ADMIT_NEW);
    ck_assert_int_eq(admit("jobB", "normal", 0, 0, b0), CX_ADMIT_NEW);
    ck_assert_int_eq(admit("jobA", "nodule", 1, 0, a1), CX_ADMIT_NEW);
    ck_assert_int_eq(admit("jobA", "normal", 0, 0, dup), CX_ADMIT_DUPLICATE);
    redisReply *rep = R("HSET cx:job:jobC state CANCELLED");
    freeReplyObject(rep);
    ck_assert_int_eq(admit("jobC", "normal", 0, 0, x), CX_ADMIT_CANCELLED);

    cx_cand_t *c;
    size_t n;
    ck_assert_int_eq(cx_queue_peek(r, 10, &c, &n, NULL), 0);
    ck_assert_uint_eq(n, 3);
    /* jobA first (seen first), class-interleaved; jobB after. */
    ck_assert_str_eq(c[0].unit, a0);
    ck_assert_str_eq(c[1].unit, a1);
    ck_assert_str_eq(c[2].unit, b0);
    cx_queue_cands_free(c, n);
    char key[64];
    snprintf(key, sizeof key, "cx:unit:%s", a0);
    char *st = hget(key, "state");
    ck_assert_str_eq(st, "pending");
    free(st);
}
END_TEST

START_TEST(test_cancelled_job_pending_dropped) {
    char u[33];
    ck_assert_int_eq(admit("jobK", "normal", 0, 0, u), CX_ADMIT_NEW);
    redisReply *rep = R("HSET cx:job:jobK state CANCELLED");
    freeReplyObject(rep);
    alive("w1", 5000);
    cx_lease_t l;
    ck_assert_int_eq(cx_lease_acquire(r, u, "w1", cx_now_ms(), 1000, &l, NULL),
                     CX_LEASE_CANCELLED);
    char key[64];
    snprintf(key, sizeof key, "cx:unit:%s", u);
    char *st = hget(key, "state");
    ck_assert_str_eq(st, "cancelled");
    free(st);
    ck_assert_int_eq(num("ZCARD %s%s", "cx:pending", ""), 0);
}
END_TEST

START_TEST(test_expire_then_relet_elsewhere) {
    char u[33], key[64];
    admit("jobE", "normal", 0, 0, u);
    snprintf(key, sizeof key, "cx:unit:%s", u);
    alive("w1", 5000);
    alive("w2", 5000);
    cx_lease_t l1, l2;
    acquire(u, "w1", 50, &l1);
    ck_assert_uint_eq(l1.attempt, 1);
    ck_assert_int_eq(num("SISMEMBER cx:worker:w1:inflight %s%s", u, ""), 1);

    /* Poll the sweep's view until the lease is past its expiry. */
    cx_lease_view_t *v = NULL;
    size_t n = 0;
    cx_check_t c = CX_CHECK_OK;
    double deadline = cx_mono_ms() + 2000;
    while (c == CX_CHECK_OK && cx_mono_ms() < deadline) {
        cx_lease_views_free(v, n);
        ck_assert_int_eq(cx_lease_list(r, 100, &v, &n, NULL), 0);
        ck_assert_uint_eq(n, 1);
        c = cx_lease_check(&v[0], cx_now_ms());
    }
    ck_assert_int_eq(c, CX_CHECK_EXPIRED);
    ck_assert_str_eq(v[0].worker, "w1");
    ck_assert_uint_eq(v[0].epoch, l1.epoch);
    ck_assert_int_eq(cx_lease_fail(r, u, v[0].epoch, "lease expired", 3, NULL,
                                   NULL),
                     CX_END_REQUEUED);
    /* A second sweep of the same view is fenced by the epoch. */
    ck_assert_int_eq(cx_lease_fail(r, u, v[0].epoch, "lease expired", 3, NULL,
                                   NULL),
                     CX_END_STALE);
    cx_lease_views_free(v, n);
    ck_assert_int_eq(num("SISMEMBER cx:worker:w1:inflight %s%s", u, ""), 0);
    ck_assert_int_eq(num("ZCARD cx:leases%s%s", "", ""), 0);

    /* The planner now keeps it from w1 while w2 is there. */
    cx_cand_t *cands;
    size_t nc;
    ck_assert_int_eq(cx_queue_peek(r, 10, &cands, &nc, NULL), 0);
    ck_assert_uint_eq(nc, 1);
    const char *ws[] = {"w1", "w2"};
    int free_slots[] = {2, 2};
    cx_pair_t p[4];
    ck_assert_uint_eq(cx_queue_plan(cands, nc, ws, free_slots, 2, p, 4), 1);
    ck_assert_uint_eq(p[0].worker, 1);
    cx_queue_cands_free(cands, nc);

    acquire(u, "w2", 60000, &l2);
    ck_assert_uint_eq(l2.attempt, 2);
    ck_assert_uint_gt(l2.epoch, l1.epoch);
    char *w = hget(key, "worker"), *ex = hget(key, "excluded");
    ck_assert_str_eq(w, "w2");
    ck_assert_str_eq(ex, "w1");
    free(w);
    free(ex);
    free(l1.payload);
    free(l2.payload);
}
END_TEST

START_TEST(test_dead_after_max_attempts) {
    char u[33], key[64];
    admit("jobD", "effusion", 1, 3, u);
    snprintf(key, sizeof key, "cx:unit:%s", u);
    const char *ws[] = {"w1", "w2", "w3"};
    for (int i = 0; i < 3; i++) alive(ws[i], 5000);
    for (int i = 0; i < 3; i++) {
        cx_lease_t l;
        cx_dead_t d = {0};
        acquire(u, ws[i], 60000, &l);
        ck_assert_uint_eq(l.attempt, (uint32_t)i + 1);
        int rc = cx_lease_staged(r, u, l.epoch, ws[i], "bad checkpoint", 3, &d,
                                 NULL);
        ck_assert_int_eq(rc, i < 2 ? CX_END_REQUEUED : CX_END_DEAD);
        if (i == 2) {
            ck_assert_str_eq(d.job, "jobD");
            ck_assert_str_eq(d.class_name, "effusion");
            ck_assert_uint_eq(d.samples, 4);
            cx_unit_t *wu = cx_decode_unit(d.payload, d.payload_len, NULL);
            ck_assert_ptr_nonnull(wu);
            ck_assert_str_eq(wu->unit_id, u);
            cascade__v1__work_unit__free_unpacked(wu, NULL);
        }
        cx_dead_free(&d);
        free(l.payload);
    }
    char *st = hget(key, "state"), *res = hget("cx:job:jobD:resolved", u);
    ck_assert_str_eq(st, "dead");
    ck_assert_str_eq(res, "d");
    free(st);
    free(res);
    ck_assert_int_eq(num("HGET cx:job:jobD:resolved_n %s%s", "effusion", ""),
                     4);
    ck_assert_int_eq(num("ZCARD cx:pending%s%s", "", ""), 0);
    ck_assert_int_eq(num("ZCARD cx:leases%s%s", "", ""), 0);
}
END_TEST

START_TEST(test_reserved_unit_never_dead) {
    char u[33];
    admit("jobR", "normal", 0, 0, u);
    alive("w1", 5000);
    redisReply *rep = R("HSET cx:job:jobR:resv %s 4", u);
    freeReplyObject(rep);
    cx_lease_t l;
    acquire(u, "w1", 60000, &l);
    ck_assert_int_eq(cx_lease_fail(r, u, l.epoch, "lease expired", 1, NULL,
                                   NULL),
                     CX_END_RESOLVED);
    ck_assert_int_eq(num("HEXISTS cx:job:jobR:resolved %s%s", u, ""), 0);
    ck_assert_int_eq(num("HGET cx:job:jobR:resolved_n %s%s", "normal", ""),
                     0);
    free(l.payload);
}
END_TEST

START_TEST(test_stale_staged_ignored) {
    char u[33], key[64];
    admit("jobS", "normal", 0, 0, u);
    snprintf(key, sizeof key, "cx:unit:%s", u);
    alive("w1", 5000);
    alive("w2", 5000);
    cx_lease_t l1, l2;
    acquire(u, "w1", 60000, &l1);
    ck_assert_int_eq(cx_lease_fail(r, u, l1.epoch, "lease expired", 3, NULL,
                                   NULL),
                     CX_END_REQUEUED);
    acquire(u, "w2", 60000, &l2);
    /* w1's late batch: ignored, w2's lease stands. */
    ck_assert_int_eq(cx_lease_staged(r, u, l1.epoch, "w1", "", 3, NULL, NULL),
                     CX_END_STALE);
    char *st = hget(key, "state");
    ck_assert_str_eq(st, "leased");
    free(st);
    ck_assert_int_eq(num("SISMEMBER cx:worker:w2:inflight %s%s", u, ""), 1);
    /* A stale failure does not count as an attempt either. */
    ck_assert_int_eq(cx_lease_staged(r, u, l1.epoch, "w1", "boom", 3, NULL,
                                     NULL),
                     CX_END_STALE);
    ck_assert_int_eq(num("HGET %s %s", key, "attempt"), 2);
    /* The current epoch ends the lease. */
    ck_assert_int_eq(cx_lease_staged(r, u, l2.epoch, "w2", "", 3, NULL, NULL),
                     CX_END_STAGED);
    st = hget(key, "state");
    ck_assert_str_eq(st, "staged");
    free(st);
    ck_assert_int_eq(num("SISMEMBER cx:worker:w2:inflight %s%s", u, ""), 0);
    ck_assert_int_eq(num("ZCARD cx:leases%s%s", "", ""), 0);
    /* Redelivered: harmless. */
    ck_assert_int_eq(cx_lease_staged(r, u, l2.epoch, "w2", "", 3, NULL, NULL),
                     CX_END_STALE);
    free(l1.payload);
    free(l2.payload);
}
END_TEST

START_TEST(test_lost_worker_within_alive_ttl) {
    char u[33];
    admit("jobL", "normal", 0, 0, u);
    alive("w1", 300); /* stops heart-beating now */
    alive("w2", 60000);
    cx_lease_t l;
    acquire(u, "w1", 120000, &l); /* the lease itself would last 2 min */
    double t0 = cx_mono_ms();
    cx_lease_view_t *v = NULL;
    size_t n = 0;
    cx_check_t c = CX_CHECK_OK;
    while (c == CX_CHECK_OK && cx_mono_ms() < t0 + 3000) {
        cx_lease_views_free(v, n);
        ck_assert_int_eq(cx_lease_list(r, 100, &v, &n, NULL), 0);
        c = cx_lease_check(&v[0], cx_now_ms());
    }
    ck_assert_int_eq(c, CX_CHECK_LOST);
    ck_assert_double_lt(cx_mono_ms() - t0, 1500);
    ck_assert_int_eq(cx_lease_fail(r, u, v[0].epoch, "worker lost", 3, NULL,
                                   NULL),
                     CX_END_REQUEUED);
    cx_lease_views_free(v, n);
    free(l.payload);

    /* The registry says w1 is gone and w2 takes the unit. */
    cx_wview_t *ws;
    size_t nw;
    ck_assert_int_eq(cx_registry_list(r, &ws, &nw, NULL), 0);
    ck_assert_uint_eq(nw, 2);
    for (size_t i = 0; i < nw; i++)
        ck_assert_int_eq(cx_registry_free_slots(&ws[i], 2),
                         strcmp(ws[i].id, "w2") == 0 ? 2 : 0);
    cx_registry_free(ws, nw);
    ck_assert_int_eq(cx_lease_acquire(r, u, "w1", cx_now_ms(), 1000, &l, NULL),
                     CX_LEASE_NO_WORKER);
    free(l.payload);
    acquire(u, "w2", 60000, &l);
    ck_assert_uint_eq(l.attempt, 2);
    free(l.payload);
    /* w1, silent and empty, is forgotten after the prune horizon. */
    ck_assert_int_eq(cx_registry_prune(r, "w1", cx_now_ms() + 1, NULL), 1);
    ck_assert_int_eq(cx_registry_prune(r, "w2", cx_now_ms() + 1, NULL), 0);
}
END_TEST

START_TEST(test_release_undoes_lease) {
    char u[33], key[64];
    admit("jobU", "normal", 0, 0, u);
    snprintf(key, sizeof key, "cx:unit:%s", u);
    alive("w1", 5000);
    cx_lease_t l;
    acquire(u, "w1", 60000, &l);
    ck_assert_int_eq(cx_lease_release(r, u, l.epoch, NULL), 0);
    ck_assert_int_eq(num("HGET %s %s", key, "attempt"), 0);
    ck_assert_int_eq(num("ZCARD cx:pending%s%s", "", ""), 1);
    ck_assert_int_eq(num("SCARD cx:worker:w1:inflight%s%s", "", ""), 0);
    free(l.payload);
}
END_TEST

START_TEST(test_batch_acquire_and_release) {
    char a[33], b[33], c[33], x[33], gone[33];
    admit("jobB", "normal", 0, 0, a);
    admit("jobB", "normal", 0, 1, b);
    admit("jobB", "normal", 0, 2, c);
    admit("jobZ", "normal", 0, 0, x);
    admit("jobB", "normal", 0, 3, gone);
    redisReply *rep = R("HSET cx:job:jobZ state CANCELLED");
    freeReplyObject(rep);
    rep = R("HSET cx:unit:%s state staged", gone);
    freeReplyObject(rep);
    alive("w1", 5000);
    alive("w2", 5000);
    rep = R("HSET cx:unit:%s attempt 2", c);
    freeReplyObject(rep);
    cx_lease_req_t q[6] = {{.unit = a, .worker = "w1"},
                           {.unit = b, .worker = "w2"},
                           {.unit = c, .worker = "w1"},
                           {.unit = x, .worker = "w1"},
                           {.unit = gone, .worker = "w2"},
                           {.unit = a, .worker = "nobody"}};
    cx_err_t err = {0};
    /* The last asks for a again (now leased): gone. */
    ck_assert_int_eq(cx_lease_acquire_batch(r, q, 6, cx_now_ms(), 60000, &err),
                     0);
    ck_assert_int_eq(q[0].rc, CX_LEASE_OK);
    ck_assert_int_eq(q[1].rc, CX_LEASE_OK);
    ck_assert_int_eq(q[2].rc, CX_LEASE_OK);
    ck_assert_int_eq(q[3].rc, CX_LEASE_CANCELLED);
    ck_assert_int_eq(q[4].rc, CX_LEASE_GONE);
    ck_assert_int_eq(q[5].rc, CX_LEASE_GONE);
    /* Distinct, increasing epochs; attempts counted on; payloads back. */
    ck_assert_uint_lt(q[0].lease.epoch, q[1].lease.epoch);
    ck_assert_uint_lt(q[1].lease.epoch, q[2].lease.epoch);
    ck_assert_uint_eq(q[0].lease.attempt, 1);
    ck_assert_uint_eq(q[2].lease.attempt, 3);
    ck_assert_uint_gt(q[0].lease.payload_len, 0);
    char key[64];
    snprintf(key, sizeof key, "cx:unit:%s", b);
    char *st = hget(key, "state"), *w = hget(key, "worker");
    ck_assert_str_eq(st, "leased");
    ck_assert_str_eq(w, "w2");
    free(st);
    free(w);
    ck_assert_int_eq(num("HGET %s %s", key, "epoch"), (long long)q[1].lease.epoch);
    ck_assert_int_eq(num("ZCARD cx:leases%s%s", "", ""), 3);
    ck_assert_int_eq(num("ZCARD cx:pending%s%s", "", ""), 0);
    ck_assert_int_eq(num("SCARD cx:worker:w1:inflight%s%s", "", ""), 2);
    ck_assert_int_eq(num("SCARD cx:worker:w2:inflight%s%s", "", ""), 1);
    /* A dead worker: no lease. */
    char d[33];
    admit("jobB", "normal", 0, 4, d);
    cx_lease_req_t q2 = {.unit = d, .worker = "ghost"};
    ck_assert_int_eq(cx_lease_acquire_batch(r, &q2, 1, cx_now_ms(), 60000, &err),
                     0);
    ck_assert_int_eq(q2.rc, CX_LEASE_NO_WORKER);
    /* Released in one script: pending again, attempts undone. */
    const char *units[] = {a, b, c};
    uint64_t epochs[] = {q[0].lease.epoch, q[1].lease.epoch, 12345};
    ck_assert_int_eq(cx_lease_release_batch(r, units, epochs, 3, &err), 0);
    ck_assert_int_eq(num("ZCARD cx:leases%s%s", "", ""), 1); /* c: epoch differs */
    ck_assert_int_eq(num("ZCARD cx:pending%s%s", "", ""), 3);
    snprintf(key, sizeof key, "cx:unit:%s", a);
    ck_assert_int_eq(num("HGET %s %s", key, "attempt"), 0);
    for (int i = 0; i < 6; i++) free(q[i].lease.payload);
}
END_TEST

int main(void) {
    const char *base = cx_testenv("CASCADE_REDIS_URL");
    if (!base) {
        fprintf(stderr, "it_scheduler: no CASCADE_REDIS_URL, skipped\n");
        return 77;
    }
    /* redis://host:port[/db] -> database 13. */
    snprintf(url, sizeof url, "%s", base);
    char *slash = strchr(strstr(url, "//") ? strstr(url, "//") + 2 : url, '/');
    if (slash) *slash = '\0';
    strncat(url, "/13", sizeof url - strlen(url) - 1);

    Suite *s = suite_create("it_scheduler");
    TCase *tc = tcase_create("redis");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_admit_dedup_order_cancel);
    tcase_add_test(tc, test_cancelled_job_pending_dropped);
    tcase_add_test(tc, test_expire_then_relet_elsewhere);
    tcase_add_test(tc, test_dead_after_max_attempts);
    tcase_add_test(tc, test_reserved_unit_never_dead);
    tcase_add_test(tc, test_stale_staged_ignored);
    tcase_add_test(tc, test_lost_worker_within_alive_ttl);
    tcase_add_test(tc, test_release_undoes_lease);
    tcase_add_test(tc, test_batch_acquire_and_release);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
