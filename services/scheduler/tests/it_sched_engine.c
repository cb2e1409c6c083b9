/* The scheduler engine (index + policy + Redis + Kafka) against the real
 * stack (Redis database 12, flushed per test; Assignments go to the
 * stack's broker): placement on the live registry, crash safety (the index
 * rebuilt from Redis after the scheduler is dropped without cleanup),
 * releases on goodbye, failed attempts, cancelled jobs, estimates and
 * deadline events. Skipped (77) without a stack. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/codec.h"
#include "cascade/names.h"
#include "cascade/service.h"
#include "cascade/util.h"
#include "cx_testenv.h"
#include "lease.h"
#include "scheduler.h"

static char url[512];
static cx_service_t svc;
static cx_common_conf_t common;
static char model_path[256];

#define R(...) cx_redis_cmd(svc.redis, NULL, __VA_ARGS__)

static void run(const char *fmt, const char *a, const char *b) {
    redisReply *rep = R(fmt, a, b);
    ck_assert_ptr_nonnull(rep);
    freeReplyObject(rep);
}

static char *str(const char *fmt, const char *a, const char *b) {
    redisReply *rep = R(fmt, a, b);
    ck_assert_ptr_nonnull(rep);
    char *v = strdup(rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
    return v;
}

static long long num(const char *fmt, const char *a, const char *b) {
    redisReply *rep = R(fmt, a, b);
    ck_assert_ptr_nonnull(rep);
    long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer
                  : rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10)
                                                    : 0;
    freeReplyObject(rep);
    return v;
}

static void setup(void) { run("FLUSHDB%s%s", "", ""); }
static void teardown(void) {}

/* A registered, alive worker on partition part. */
static void worker(const char *id, const char *gpu, int part) {
    char p[16];
    snprintf(p, sizeof p, "%d", part);
    redisReply *rep = R("HSET cx:worker:%s gpu_type %s slots 2 partition %s "
                        "draining 0",
                        id, gpu, p);
    freeReplyObject(rep);
    rep = R("SET cx:worker:%s:alive 1 PX 60000", id);
    freeReplyObject(rep);
    rep = R("ZADD cx:workers %lld %s", (long long)cx_now_ms(), id);
    freeReplyObject(rep);
}

static cx_sched_t *sched(void) {
    cx_sched_conf_t c;
    cx_sched_conf_default(&c);
    c.prefetch_s = 1e9;
    c.model_file = model_path;
    cx_err_t err = {0};
    cx_sched_t *s = cx_sched_new(&svc, &c, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    ck_assert_msg(cx_sched_rebuild(s, &err) == 0, "rebuild: %s", err.msg);
    return s;
}

static void deliver(cx_sched_t *s, const char *topic, const ProtobufCMessage *m) {
    cx_err_t err = {0};
    size_t len;
    uint8_t *buf = cx_pack(m, &len, &err);
    ck_assert_ptr_nonnull(buf);
    cx_msg_t msg = {0};
    msg.topic = (char *)topic;
    msg.payload = buf;
    msg.len = len;
    ck_assert_msg(cx_sched_on_message(s, &msg, &err) == 0, "%s", err.msg);
    free(buf);
}

static Cascade__V1__GenerationParams gp = CASCADE__V1__GENERATION_PARAMS__INIT;

static void unit_init(cx_unit_t *u, const char *job, const char *cls,
                      uint32_t ci, uint32_t ord, char id[33]) {
    cascade__v1__work_unit__init(u);
    cx_unit_id(job, cls, ord, 0, id);
    u->job_id = (char *)job;
    u->unit_id = id;
    u->class_name = (char *)cls;
    u->class_index = ci;
    u->ordinal = ord;
    u->sample_count = 10;
    u->params = &gp;
}

static void admit(cx_sched_t *s, const char *job, const char *cls,
                  uint32_t ci, uint32_t ord, char id[33]) {
    cx_unit_t u;
    unit_init(&u, job, cls, ci, ord, id);
    deliver(s, CX_TOPIC_UNITS, &u.base);
}

static void staged(cx_sched_t *s, const char *job, const char *id,
                   const char *w, const char *failure) {
    cx_unit_t u;
    char uid[33];
    unit_init(&u, job, "c", 0, 0, uid);
    u.unit_id = (char *)id;
    Cascade__V1__StagedBatch b = CASCADE__V1__STAGED_BATCH__INIT;
    Cascade__V1__StagedSample smp = CASCADE__V1__STAGED_SAMPLE__INIT, *sp = &smp;
    smp.key = (char *)"k";
    b.unit = &u;
    b.worker_id = (char *)w;
    b.epoch = (uint64_t)num("HGET cx:unit:%s %s", id, "epoch");
    b.attempt = (uint32_t)num("HGET cx:unit:%s %s", id, "attempt");
    b.staged_unix_ms = cx_now_ms();
    b.failure = (char *)failure;
    if (!*failure) {
        b.samples = &sp;
        b.n_samples = 1;
    }
    deliver(s, CX_TOPIC_STAGED, &b.base);
}

static int place(cx_sched_t *s) {
    cx_err_t err = {0};
    int n = cx_sched_place(s, &err);
    ck_assert_msg(n >= 0, "place: %s", err.msg);
    return n;
}

static cx_pol_stats_t stats(cx_sched_t *s) {
    cx_pol_stats_t st;
    cx_pol_stats(cx_sched_policy(s), &st);
    return st;
}

START_TEST(test_places_and_survives_restart) {
    worker("h1", "H100", 0);
    worker("a1", "A100", 1);
    worker("l1", "L40S", 2);
    cx_sched_t *s = sched();
    char ids[40][33];
    for (uint32_t i = 0; i < 40; i++)
        admit(s, "jobR", i % 2 ? "b" : "a", i % 2, i / 2, ids[i]);
    ck_assert_int_eq(place(s), 6);
    ck_assert_int_eq(num("ZCARD cx:leases%s%s", "", ""), 6);
    ck_assert_int_eq(num("ZCARD cx:pending%s%s", "", ""), 34);
    /* Killed without any cleanup: the next scheduler rebuilds from Redis. */
    cx_sched_t *dead = s;
    (void)dead;
    s = sched();
    cx_pol_stats_t st = stats(s);
    ck_assert_uint_eq(st.pending_units, 34);
    ck_assert_uint_eq(st.inflight_units, 6);
    ck_assert_uint_eq(st.free_slots, 0);
    ck_assert_int_eq(place(s), 0);
    /* Two leases end; exactly two units are placed again, none twice. */
    redisReply *rep = R("ZRANGE cx:leases 0 1");
    ck_assert_uint_eq(rep->elements, 2);
    for (size_t i = 0; i < 2; i++) {
        char *w = str("HGET cx:unit:%s %s", rep->element[i]->str, "worker");
        staged(s, "jobR", rep->element[i]->str, w, "");
        free(w);
    }
    freeReplyObject(rep);
    ck_assert_int_eq(place(s), 2);
    ck_assert_int_eq(num("ZCARD cx:leases%s%s", "", ""), 6);
    for (int i = 0; i < 40; i++)
        ck_assert_int_le(num("HGET cx:unit:%s %s", ids[i], "attempt"), 1);
    cx_sched_destroy(s);
    cx_sched_destroy(dead);
}
END_TEST

START_TEST(test_prefers_faster_gpu) {
    worker("slow", "L40S", 0);
    worker("fast", "H100", 1);
    cx_sched_t *s = sched();
    char id[33];
    admit(s, "jobF", "a", 0, 0, id);
    ck_assert_int_eq(place(s), 1);
    char *w = str("HGET cx:unit:%s %s", id, "worker");
    ck_assert_str_eq(w, "fast");
    free(w);
    cx_sched_destroy(s);
}
END_TEST

START_TEST(test_quarantined_and_draining_get_nothing) {
    worker("q", "H100", 0);
    worker("d", "H100", 1);
    worker("ok", "L40S", 2);
    run("HSET cx:quarantine:q reason %s since_ms %s", "gates", "1");
    run("HSET cx:worker:d draining %s%s", "1", "");
    cx_sched_t *s = sched();
    char ids[4][33];
    for (uint32_t i = 0; i < 4; i++) admit(s, "jobQ", "a", 0, i, ids[i]);
    ck_assert_int_eq(place(s), 2);
    ck_assert_int_eq(num("SCARD cx:worker:ok:inflight%s%s", "", ""), 2);
    /* Released from quarantine: it takes work at the next refresh. */
    run("DEL cx:quarantine:q%s%s", "", "");
    cx_err_t err = {0};
    cx_sched_destroy(s);
    s = sched();
    ck_assert_int_eq(cx_sched_tick(s, &err), 0);
    ck_assert_int_eq(place(s), 2);
    ck_assert_int_eq(num("SCARD cx:worker:q:inflight%s%s", "", ""), 2);
    cx_sched_destroy(s);
}
END_TEST

START_TEST(test_goodbye_releases_at_once) {
    worker("w1", "H100", 0);
    worker("w2", "A100", 1);
    cx_sched_t *s = sched();
    char id[33];
    admit(s, "jobG", "a", 0, 0, id);
    ck_assert_int_eq(place(s), 1);
    char *w = str("HGET cx:unit:%s %s", id, "worker");
    ck_assert_str_eq(w, "w1");
    /* w1 deregisters (drained): released, not failed, at the next sweep
     * (long before its 120 s lease would expire). */
    run("DEL cx:worker:%s cx:worker:%s:alive", w, w);
    run("ZREM cx:workers %s%s", w, "");
    cx_err_t err = {0};
    ck_assert_int_eq(cx_sched_sweep(s, &err), 1);
    char *st = str("HGET cx:unit:%s %s", id, "state");
    ck_assert_str_eq(st, "pending");
    ck_assert_int_eq(num("HGET cx:unit:%s %s", id, "attempt"), 0);
    char *ex = str("HGET cx:unit:%s %s", id, "excluded");
    ck_assert_str_eq(ex, "");
    ck_assert_int_eq(cx_sched_tick(s, &err), 0);
    ck_assert_int_eq(place(s), 1);
    char *w2 = str("HGET cx:unit:%s %s", id, "worker");
    ck_assert_str_eq(w2, "w2");
    free(w);
    free(w2);
    free(st);
    free(ex);
    cx_sched_destroy(s);
}
END_TEST

START_TEST(test_release_by_others_reconciled) {
    worker("w1", "H100", 0);
    cx_sched_t *s = sched();
    char id[33];
    admit(s, "jobO", "a", 0, 0, id);
    ck_assert_int_eq(place(s), 1);
    /* The worker releases its unstarted unit itself (drain): the sweep
     * sees it gone from cx:leases and the index takes it back. */
    uint64_t epoch = (uint64_t)num("HGET cx:unit:%s %s", id, "epoch");
    ck_assert_int_eq(cx_lease_release(svc.redis, id, epoch, NULL), 0);
    cx_err_t err = {0};
    ck_assert_int_ge(cx_sched_sweep(s, &err), 0);
    cx_pol_stats_t st = stats(s);
    ck_assert_uint_eq(st.pending_units, 1);
    ck_assert_uint_eq(st.inflight_units, 0);
    ck_assert_int_eq(place(s), 1);
    cx_sched_destroy(s);
}
END_TEST

START_TEST(test_failed_attempt_goes_elsewhere) {
    worker("w1", "H100", 0);
    worker("w2", "L40S", 1);
    cx_sched_t *s = sched();
    char id[33];
    admit(s, "jobX", "a", 0, 0, id);
    ck_assert_int_eq(place(s), 1);
    char *w = str("HGET cx:unit:%s %s", id, "worker");
    ck_assert_str_eq(w, "w1");
    staged(s, "jobX", id, "w1", "out of memory");
    ck_assert_int_eq(place(s), 1);
    char *w2 = str("HGET cx:unit:%s %s", id, "worker");
    ck_assert_str_eq(w2, "w2");
    ck_assert_int_eq(num("HGET cx:unit:%s %s", id, "attempt"), 2);
    free(w);
    free(w2);
    cx_sched_destroy(s);
}
END_TEST

START_TEST(test_cancelled_job_leaves_index) {
    worker("w1", "H100", 0);
    cx_sched_t *s = sched();
    char ids[6][33];
    for (uint32_t i = 0; i < 6; i++) admit(s, "jobC", "a", 0, i, ids[i]);
    run("HSET cx:job:jobC state %s%s", "CANCELLED", "");
    cx_err_t err = {0};
    ck_assert_int_eq(cx_sched_tick(s, &err), 0);
    ck_assert_uint_eq(stats(s).pending_units, 0);
    ck_assert_int_eq(num("ZCARD cx:pending%s%s", "", ""), 0);
    char *st = str("HGET cx:unit:%s %s", ids[3], "state");
    ck_assert_str_eq(st, "cancelled");
    ck_assert_int_eq(place(s), 0);
    free(st);
    cx_sched_destroy(s);
}
END_TEST

START_TEST(test_eta_and_deadline_at_risk) {
    worker("w1", "H100", 0);
    /* A job due in 60 s with 40 units of 10 samples at 0.5 s/sample on
     * one H100 (priors): 200 s of work, so it will miss. */
    char dl[32];
    snprintf(dl, sizeof dl, "%lld", (long long)(cx_now_ms() + 60000));
    run("HSET cx:job:jobD state ACCEPTED deadline_ms %s tenant t classes %s",
        dl, "a");
    run("HSET cx:job:jobD:quota a %s%s", "400", "");
    cx_sched_t *s = sched();
    char id[33];
    for (uint32_t i = 0; i < 40; i++) admit(s, "jobD", "a", 0, i, id);
    cx_err_t err = {0};
    ck_assert_int_eq(cx_sched_tick(s, &err), 0);
    ck_assert_int_eq(num("HGET cx:job:%s:eta %s", "jobD", "known"), 1);
    long long eta = num("HGET cx:job:%s:eta %s", "jobD", "eta_ms");
    long long lo = num("HGET cx:job:%s:eta %s", "jobD", "lo_ms");
    long long hi = num("HGET cx:job:%s:eta %s", "jobD", "hi_ms");
    ck_assert_int_gt(eta, cx_now_ms() + 150000);
    ck_assert_int_lt(eta, cx_now_ms() + 250000);
    ck_assert(lo < eta && eta < hi);
    ck_assert_int_eq(num("HGET cx:job:%s:eta %s", "jobD", "late"), 1);
    char *risk = str("HGET cx:job:%s:eta %s", "jobD", "risk");
    ck_assert_str_eq(risk, "at_risk");
    char *cls = str("HGET cx:job:%s:eta %s", "jobD", "class:a");
    ck_assert(strlen(cls) > 10);
    free(risk);
    free(cls);
    cx_sched_destroy(s);
}
END_TEST

START_TEST(test_learned_rates_persist) {
    worker("w1", "H100", 0);
    cx_sched_t *s = sched();
    char id[33];
    admit(s, "jobT", "a", 0, 0, id);
    ck_assert_int_eq(place(s), 1);
    /* Lease and StagedBatch carry millisecond times, and the model drops
     * a zero-length observation: let a measurable run time pass. */
    usleep(50000);
    staged(s, "jobT", id, "w1", "");
    cx_err_t err = {0};
    ck_assert_int_eq(cx_sched_tick(s, &err), 0);
    /* One observation of unit type ref-cxr-v0|32x32|4 on H100. */
    char *cell = str("HGET cx:tput %s%s", "ref-cxr-v0|32x32|4|H100", "");
    unsigned long long n = 0;
    double mean, var;
    ck_assert_int_eq(sscanf(cell, "%lf %lf %llu", &mean, &var, &n), 3);
    ck_assert_uint_eq(n, 1);
    free(cell);
    cx_sched_destroy(s);
}
END_TEST

int main(void) {
    const char *base = cx_testenv("CASCADE_REDIS_URL");
    const char *brokers = cx_testenv("CASCADE_KAFKA_BROKERS");
    if (!base || !brokers) {
        fprintf(stderr, "it_sched_engine: no stack, skipped\n");
        return 77;
    }
    snprintf(url, sizeof url, "%s", base);
    char *slash = strchr(strstr(url, "//") ? strstr(url, "//") + 2 : url, '/');
    if (slash) *slash = '\0';
    strncat(url, "/12", sizeof url - strlen(url) - 1);
    /* Priors: an H100 is twice an A100, which is faster than an L40S. */
    char *dir = cx_testenv_tmpdir("it_sched_engine");
    snprintf(model_path, sizeof model_path, "%s/model.json", dir);
    FILE *f = fopen(model_path, "w");
    if (!f) return 1;
    fputs("{\"default_sec_per_sample\": 1, \"gpu_types\": {"
          "\"H100\": {\"sec_per_sample\": 0.5},"
          "\"A100\": {\"sec_per_sample\": 1},"
          "\"L40S\": {\"sec_per_sample\": 1.5}},"
          "\"reference\": {\"width\": 32, \"height\": 32, \"steps\": 4},"
          "\"checkpoints\": {\"ref-cxr-v0\": {\"load_s\": 1}}}",
          f);
    fclose(f);
    free(dir);
    gp.checkpoint = (char *)"ref-cxr-v0";
    gp.sampler = CASCADE__V1__SAMPLER__SAMPLER_DDIM;
    gp.steps = 4;
    gp.width = gp.height = 32;
    gp.bit_depth = 16;
    common = (cx_common_conf_t){.kafka_brokers = (char *)brokers,
                                .redis_url = url,
                                .store_uri = (char *)"file:///tmp",
                                .http_bind = (char *)"127.0.0.1",
                                .http_port = 0,
                                .log_level = (char *)"error",
                                .instance = (char *)"it-sched"};
    cx_err_t err = {0};
    if (cx_service_init(&svc, "scheduler", &common,
                        CX_SVC_PRODUCER | CX_SVC_REDIS, &err) < 0) {
        fprintf(stderr, "it_sched_engine: %s\n", err.msg);
        return 1;
    }
    Suite *s = suite_create("it_sched_engine");
    TCase *tc = tcase_create("engine");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_places_and_survives_restart);
    tcase_add_test(tc, test_prefers_faster_gpu);
    tcase_add_test(tc, test_quarantined_and_draining_get_nothing);
    tcase_add_test(tc, test_goodbye_releases_at_once);
    tcase_add_test(tc, test_release_by_others_reconciled);
    tcase_add_test(tc, test_failed_attempt_goes_elsewhere);
    tcase_add_test(tc, test_cancelled_job_leaves_index);
    tcase_add_test(tc, test_eta_and_deadline_at_risk);
    tcase_add_test(tc, test_learned_rates_persist);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    cx_service_shutdown(&svc);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
