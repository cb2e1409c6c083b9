/* gpu-worker against a real Redis (database 14 of the stack's server,
 * flushed per test) and a file:// store: partition claims, registration
 * and heartbeats, fencing, and running a unit into staging. Skipped (77)
 * without a stack. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cascade/codec.h"
#include "cascade/names.h"
#include "cascade/png16.h"
#include "cascade/redis.h"
#include "cascade/service.h"
#include "cascade/store.h"
#include "cascade/util.h"
#include "cx_testenv.h"
#include "heartbeat.h"
#include "worker.h"

static char url[512];
static char *dir;
static char store_uri[600];
static cx_common_conf_t common;
static cx_service_t svc;
static cx_redis_t *r;

#define R(...) cx_redis_cmd(r, NULL, __VA_ARGS__)

/* Pause between polls of a condition. */
static void nap(void) {
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);
}

static void setup(void) {
    cx_err_t err = {0};
    dir = cx_testenv_tmpdir("itw");
    ck_assert_ptr_nonnull(dir);
    snprintf(store_uri, sizeof store_uri, "file://%s", dir);
    common = (cx_common_conf_t){.kafka_brokers = (char *)"",
                                .redis_url = url,
                                .store_uri = store_uri,
                                .http_bind = (char *)"127.0.0.1",
                                .http_port = 0,
                                .log_level = (char *)"warn",
                                .instance = (char *)"itw1"};
    ck_assert_msg(cx_service_init(&svc, "gpu-worker", &common,
                                  CX_SVC_REDIS | CX_SVC_STORE, &err) == 0,
                  "service: %s", err.msg);
    r = svc.redis;
    redisReply *rep = R("FLUSHDB");
    ck_assert_ptr_nonnull(rep);
    freeReplyObject(rep);
}

static void teardown(void) {
    cx_service_shutdown(&svc);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}

static char *get(const char *fmt, const char *a) {
    redisReply *rep = R(fmt, a);
    ck_assert_ptr_nonnull(rep);
    char *v = strdup(rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
    return v;
}

static long long num(const char *fmt, const char *a) {
    redisReply *rep = R(fmt, a);
    ck_assert_ptr_nonnull(rep);
    long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    freeReplyObject(rep);
    return v;
}

static cx_hb_conf_t hbconf(const char *w, int ttl) {
    cx_hb_conf_t c = {.redis_url = url, .worker = w, .gpu_type = "cpu",
                      .mem_bytes = 1 << 30, .slots = 2, .heartbeat_ms = 50,
                      .alive_ttl_ms = ttl, .drain = NULL};
    return c;
}

START_TEST(test_claims_are_exclusive) {
    cx_hb_conf_t a = hbconf("wa", 5000), b = hbconf("wb", 5000);
    cx_err_t err = {0};
    ck_assert_int_eq(cx_hb_claim(r, &a, -1, 2, &err), 0);
    ck_assert_int_eq(cx_hb_claim(r, &b, -1, 2, &err), 1);
    /* Full: a third worker waits (retriable). */
    cx_hb_conf_t c = hbconf("wc", 5000);
    ck_assert_int_eq(cx_hb_claim(r, &c, -1, 2, &err), -1);
    ck_assert_int_eq(err.retriable, 1);
    ck_assert_int_eq(cx_hb_claim(r, &c, 0, 2, &err), -1);
    /* Reclaiming one's own partition is fine. */
    ck_assert_int_eq(cx_hb_claim(r, &a, -1, 2, &err), 0);
    ck_assert_int_eq(cx_hb_claim(r, &c, 5, 2, &err), -1);
    ck_assert_int_eq(err.retriable, 0);
    /* Released on deregistration, then free for the next one. */
    ck_assert_int_eq(cx_hb_register(r, &a, 0, &err), 0);
    ck_assert_int_eq(cx_hb_deregister(r, &a, 0, &err), 0);
    ck_assert_int_eq(cx_hb_claim(r, &c, -1, 2, &err), 0);
    ck_assert_int_eq(cx_hb_claim_refresh(r, &a, 0, &err), 0);
}
END_TEST

START_TEST(test_register_heartbeat_deregister) {
    cx_hb_conf_t c = hbconf("wh", 300);
    cx_err_t err = {0};
    volatile int drain = 0;
    c.drain = &drain;
    ck_assert_int_eq(cx_hb_claim(r, &c, -1, 1, &err), 0);
    ck_assert_int_eq(cx_hb_register(r, &c, 0, &err), 0);
    char *v = get("HGET cx:worker:%s partition", "wh");
    ck_assert_str_eq(v, "0");
    free(v);
    v = get("HGET cx:worker:%s gpu_type", "wh");
    ck_assert_str_eq(v, "cpu");
    free(v);
    cx_hb_t *h = cx_hb_start(&c, 0, &err);
    ck_assert_ptr_nonnull(h);
    /* The heartbeat keeps alive and the claim well past their TTL. */
    double until = cx_mono_ms() + 1000;
    while (cx_mono_ms() < until) {
        ck_assert_int_eq(num("EXISTS cx:worker:%s:alive", "wh"), 1);
        ck_assert_int_eq(num("EXISTS cx:dispatch:partition:%s", "0"), 1);
        nap();
    }
    ck_assert_int_eq(cx_hb_lost(h), 0);
    /* A drain request shows as draining=1 promptly. */
    drain = 1;
    char *d = NULL;
    for (double t = cx_mono_ms() + 2000; cx_mono_ms() < t;) {
        free(d);
        d = get("HGET cx:worker:%s draining", "wh");
        if (strcmp(d, "1") == 0) break;
        nap();
    }
    ck_assert_str_eq(d, "1");
    free(d);
    /* Stopped heart-beating: alive is gone within its TTL. */
    cx_hb_stop(h);
    double t0 = cx_mono_ms();
    while (num("EXISTS cx:worker:%s:alive", "wh") == 1 &&
           cx_mono_ms() < t0 + 2000) {
        nap();
    }
    ck_assert_int_eq(num("EXISTS cx:worker:%s:alive", "wh"), 0);
    ck_assert_double_lt(cx_mono_ms() - t0, 600);
    ck_assert_int_eq(cx_hb_deregister(r, &c, 0, &err), 0);
    ck_assert_int_eq(num("ZCARD cx:workers%s", ""), 0);
    ck_assert_int_eq(num("EXISTS cx:dispatch:partition:%s", "0"), 0);
}
END_TEST

START_TEST(test_claim_lost_is_noticed) {
    cx_hb_conf_t c = hbconf("wl", 5000);
    cx_err_t err = {0};
    ck_assert_int_eq(cx_hb_claim(r, &c, -1, 1, &err), 0);
    cx_hb_t *h = cx_hb_start(&c, 0, &err);
    ck_assert_ptr_nonnull(h);
    redisReply *rep = R("SET cx:dispatch:partition:0 intruder");
    freeReplyObject(rep);
    for (double t = cx_mono_ms() + 2000; !cx_hb_lost(h) && cx_mono_ms() < t;)
        nap();
    ck_assert_int_eq(cx_hb_lost(h), 1);
    cx_hb_stop(h);
}
END_TEST

/* An Assignment of (job, class) with n samples, leased to `worker` at
 * `epoch` in Redis unless lease is 0. */
static cx_assignment_t *assignment(const char *job, const char *cls,
                                   const char *ckpt, uint32_t n,
                                   const char *worker, uint64_t epoch,
                                   int lease) {
    static char uid[33];
    cx_unit_id(job, cls, 0, 0, uid);
    Cascade__V1__GenerationParams gp = CASCADE__V1__GENERATION_PARAMS__INIT;
    gp.checkpoint = (char *)ckpt;
    gp.sampler = CASCADE__V1__SAMPLER__SAMPLER_DDIM;
    gp.steps = 4;
    gp.guidance_scale = 1.0;
    gp.width = 32;
    gp.height = 32;
    gp.bit_depth = 16;
    cx_unit_t u = CASCADE__V1__WORK_UNIT__INIT;
    u.job_id = (char *)job;
    u.unit_id = uid;
    u.class_name = (char *)cls;
    u.sample_count = n;
    u.seed = 42;
    u.params = &gp;
    cx_assignment_t a = CASCADE__V1__ASSIGNMENT__INIT;
    a.unit = &u;
    a.worker_id = (char *)worker;
    a.attempt = 2;
    a.epoch = epoch;
    size_t len;
    uint8_t *buf = cx_pack(&a.base, &len, NULL);
    ck_assert_ptr_nonnull(buf);
    cx_assignment_t *out = cascade__v1__assignment__unpack(NULL, len, buf);
    free(buf);
    ck_assert_ptr_nonnull(out);
    if (lease) {
        redisReply *rep = R("HSET cx:unit:%s state leased worker %s epoch %llu "
                            "job %s",
                            uid, worker, (unsigned long long)epoch, job);
        freeReplyObject(rep);
    }
    return out;
}

static cx_worker_t *worker_new(void) {
    cx_worker_conf_t wc = {
        .id = "itw1",
        .gpu_type = "cpu",
        .png = {1, CX_PNG_FILTER_UP, CX_PNG_STRATEGY_HUFFMAN},
        .threads = 2,
        .models = 1};
    cx_err_t err = {0};
    cx_worker_t *w = cx_worker_new(&svc, &wc, &err);
    ck_assert_msg(w != NULL, "worker: %s", err.msg);
    return w;
}

START_TEST(test_fence) {
    cx_worker_t *w = worker_new();
    cx_assignment_t *a = assignment("jobF", "normal", "ref-cxr-v0", 1, "itw1",
                                    7, 1);
    ck_assert_int_eq(cx_worker_check(w, a, NULL), 1);
    /* Re-leased since (new epoch): stale. */
    redisReply *rep = R("HSET cx:unit:%s epoch 8", a->unit->unit_id);
    freeReplyObject(rep);
    ck_assert_int_eq(cx_worker_check(w, a, NULL), 0);
    rep = R("HSET cx:unit:%s epoch 7 worker other", a->unit->unit_id);
    freeReplyObject(rep);
    ck_assert_int_eq(cx_worker_check(w, a, NULL), 0);
    rep = R("HSET cx:unit:%s worker itw1 state staged", a->unit->unit_id);
    freeReplyObject(rep);
    ck_assert_int_eq(cx_worker_check(w, a, NULL), 0);
    rep = R("HSET cx:unit:%s state leased", a->unit->unit_id);
    freeReplyObject(rep);
    ck_assert_int_eq(cx_worker_check(w, a, NULL), 1);
    rep = R("ZADD cx:leases 1 %s", a->unit->unit_id);
    freeReplyObject(rep);
    rep = R("SADD cx:worker:itw1:inflight %s", a->unit->unit_id);
    freeReplyObject(rep);
    rep = R("HSET cx:job:jobF state CANCELLED");
    freeReplyObject(rep);
    ck_assert_int_eq(cx_worker_check(w, a, NULL), 0);
    /* The cancelled job's lease ended at once instead of running out. */
    rep = R("HGET cx:unit:%s state", a->unit->unit_id);
    ck_assert_str_eq(rep->str, "cancelled");
    freeReplyObject(rep);
    rep = R("ZSCORE cx:leases %s", a->unit->unit_id);
    ck_assert_int_eq(rep->type, REDIS_REPLY_NIL);
    freeReplyObject(rep);
    rep = R("SISMEMBER cx:worker:itw1:inflight %s", a->unit->unit_id);
    ck_assert_int_eq(rep->integer, 0);
    freeReplyObject(rep);
    cascade__v1__assignment__free_unpacked(a, NULL);
    cx_worker_destroy(w);
}
END_TEST

START_TEST(test_run_writes_staging) {
    cx_worker_t *w = worker_new();
    cx_assignment_t *a = assignment("jobW", "nodule", "ref-cxr-v0", 5, "itw1",
                                    3, 1);
    cx_buf_t out = {0};
    cx_err_t err = {0};
    ck_assert_msg(cx_worker_run(w, a, &out, &err) == 0, "run: %s", err.msg);
    cx_staged_t *b = cx_decode_staged(out.data, out.len, &err);
    ck_assert_msg(b != NULL, "decode: %s", err.msg);
    ck_assert_str_eq(b->failure, "");
    ck_assert_str_eq(b->worker_id, "itw1");
    ck_assert_str_eq(b->gpu_type, "cpu");
    ck_assert_uint_eq(b->attempt, 2);
    ck_assert_uint_eq(b->epoch, 3);
    ck_assert_uint_eq(b->n_samples, 5);
    ck_assert_ptr_nonnull(b->timing);
    ck_assert_double_gt(b->timing->generate_ms, 0);
    for (size_t i = 0; i < b->n_samples; i++) {
        char want[256];
        snprintf(want, sizeof want, "jobW/staging/%s/2/%zu.png",
                 a->unit->unit_id, i);
        ck_assert_str_eq(b->samples[i]->key, want);
        ck_assert_uint_eq(b->samples[i]->index, i);
        void *data;
        size_t len;
        ck_assert_int_eq(cx_store_get(svc.store, want, &data, &len, &err), 0);
        ck_assert_uint_eq(len, b->samples[i]->bytes);
        uint16_t *px;
        uint32_t wd, ht;
        int depth;
        ck_assert_int_eq(cx_png_decode(data, len, 0, &px, &wd, &ht, &depth,
                                       &err),
                         0);
        ck_assert_uint_eq(wd, 32);
        ck_assert_uint_eq(ht, 32);
        ck_assert_int_eq(depth, 16);
        free(px);
        free(data);
    }
    /* Same unit again (a redelivery): the same bytes, sample by sample. */
    void *first;
    size_t first_len;
    ck_assert_int_eq(cx_store_get(svc.store, b->samples[4]->key, &first,
                                  &first_len, &err),
                     0);
    cx_buf_t again = {0};
    ck_assert_int_eq(cx_worker_run(w, a, &again, &err), 0);
    void *second;
    size_t second_len;
    ck_assert_int_eq(cx_store_get(svc.store, b->samples[4]->key, &second,
                                  &second_len, &err),
                     0);
    ck_assert_uint_eq(first_len, second_len);
    ck_assert_int_eq(memcmp(first, second, first_len), 0);
    free(first);
    free(second);
    cascade__v1__staged_batch__free_unpacked(b, NULL);
    cx_buf_free(&out);
    cx_buf_free(&again);
    cascade__v1__assignment__free_unpacked(a, NULL);
    cx_worker_destroy(w);
}
END_TEST

START_TEST(test_generation_errors_reported) {
    cx_worker_t *w = worker_new();
    cx_err_t err = {0};
    const char *cases[][2] = {{"no-such-ckpt", "normal"},
                              {"ref-cxr-v0", "no-such-class"}};
    for (int i = 0; i < 2; i++) {
        cx_assignment_t *a = assignment("jobX", cases[i][1], cases[i][0], 2,
                                        "itw1", 1, 1);
        cx_buf_t out = {0};
        ck_assert_int_eq(cx_worker_run(w, a, &out, &err), 0);
        cx_staged_t *b = cx_decode_staged(out.data, out.len, &err);
        ck_assert_ptr_nonnull(b);
        ck_assert_str_ne(b->failure, "");
        ck_assert_uint_eq(b->n_samples, 0);
        cascade__v1__staged_batch__free_unpacked(b, NULL);
        cx_buf_free(&out);
        cascade__v1__assignment__free_unpacked(a, NULL);
    }
    cx_worker_destroy(w);
}
END_TEST

int main(void) {
    const char *base = cx_testenv("CASCADE_REDIS_URL");
    if (!base) {
        fprintf(stderr, "it_gpu_worker: no CASCADE_REDIS_URL, skipped\n");
        return 77;
    }
    snprintf(url, sizeof url, "%s", base);
    char *slash = strchr(strstr(url, "//") ? strstr(url, "//") + 2 : url, '/');
    if (slash) *slash = '\0';
    strncat(url, "/14", sizeof url - strlen(url) - 1);

    Suite *s = suite_create("it_gpu_worker");
    TCase *tc = tcase_create("redis");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_claims_are_exclusive);
    tcase_add_test(tc, test_register_heartbeat_deregister);
    tcase_add_test(tc, test_claim_lost_is_noticed);
    tcase_add_test(tc, test_fence);
    tcase_add_test(tc, test_run_writes_staging);
    tcase_add_test(tc, test_generation_errors_reported);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
