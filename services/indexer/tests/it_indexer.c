/* Integration suite for the indexer (and cx_jobstate) against the shared
 * stack's Kafka, Redis and store: a CommitRecord is counted exactly once
 * whatever the redeliveries, Progress reaches cascade.progress, garbage is
 * dead-lettered, and --rebuild recomputes the counters from the manifests
 * while leaving the planner's keys and dead units alone.
 * Exits 77 (skipped) without a stack (CASCADE_TEST_ENV). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/codec.h"
#include "cascade/jobstate.h"
#include "cascade/manifest.h"
#include "cascade/names.h"
#include "cascade/service.h"
#include "cx_testenv.h"
#include "index.h"
#include "rebuild.h"

static cx_service_t svc;
static cx_common_conf_t conf;
static char job[64];

static void hset(const char *key, const char *f, const char *v) {
    cx_err_t err;
    redisReply *r = cx_redis_cmd(svc.redis, &err, "HSET %s %s %s", key, f, v);
    ck_assert_msg(r != NULL, "%s", err.msg);
    freeReplyObject(r);
}

static char *hget(const char *key, const char *f) {
    cx_err_t err;
    redisReply *r = cx_redis_cmd(svc.redis, &err, "HGET %s %s", key, f);
    ck_assert_msg(r != NULL, "%s", err.msg);
    char *s = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return s;
}

static uint8_t *commit_bytes(const char *unit, const char *cls, uint32_t planned,
                             uint32_t gen, uint32_t passed, uint32_t committed,
                             size_t *len) {
    cx_commit_t c = CASCADE__V1__COMMIT_RECORD__INIT;
    char key[160];
    snprintf(key, sizeof key, "%s/manifests/%s.json", job, unit);
    c.job_id = job;
    c.unit_id = (char *)unit;
    c.class_name = (char *)cls;
    c.planned = planned;
    c.generated = gen;
    c.passed = passed;
    c.committed = committed;
    c.manifest_key = key;
    c.attempt = 1;
    return cx_pack(&c.base, len, NULL);
}

START_TEST(test_count_once_and_progress) {
    char k[128], u1[33];
    cx_err_t err;
    cx_unit_id(job, "normal", 0, 0, u1);
    cx_jobstate_key(k, sizeof k, job, NULL);
    hset(k, "state", "ACCEPTED");
    hset(k, "classes", "normal,nodule");
    cx_jobstate_key(k, sizeof k, job, "quota");
    hset(k, "normal", "40");
    hset(k, "nodule", "10");

    size_t len;
    uint8_t *buf = commit_bytes(u1, "normal", 32, 32, 31, 30, &len);
    cx_msg_t m = {CX_TOPIC_COMMITS, 0, 7, job, strlen(job), buf, len, NULL};
    int counted = -1;
    ck_assert_msg(cx_index_handle_commit(&svc, &m, &counted, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(counted, 1);
    /* redelivered twice: counted once */
    ck_assert_int_eq(cx_index_handle_commit(&svc, &m, &counted, &err), 0);
    ck_assert_int_eq(counted, 0);
    ck_assert_int_eq(cx_index_handle_commit(&svc, &m, &counted, &err), 0);
    free(buf);

    cx_jobstate_t *st = NULL;
    ck_assert_int_eq(cx_jobstate_load(svc.redis, job, &st, &err), 1);
    cx_classstate_t *c = cx_jobstate_class(st, "normal");
    ck_assert_uint_eq(c->committed, 30);
    ck_assert_uint_eq(c->units, 1);
    ck_assert_uint_eq(c->generated, 32);
    ck_assert_uint_eq(c->passed, 31);
    ck_assert_uint_eq(c->resolved_n, 32);
    ck_assert_uint_eq(c->quota, 40);
    ck_assert_str_eq(st->state, "ACCEPTED");
    cx_jobstate_free(st);
    cx_jobstate_key(k, sizeof k, job, "resolved");
    char *mark = hget(k, u1);
    ck_assert_str_eq(mark, "c");
    free(mark);

    /* the job is listed */
    cx_strlist_t all = {0};
    ck_assert_int_eq(cx_jobstate_list(svc.redis, 0, &all, &err), 0);
    cx_strlist_free(&all);

    /* Progress for the job reached cascade.progress */
    char group[96];
    snprintf(group, sizeof group, "it-indexer-%s", job);
    const char *topics[] = {CX_TOPIC_PROGRESS, NULL};
    cx_consumer_t *cons = cx_consumer_new(conf.kafka_brokers, group, topics, &err);
    ck_assert_msg(cons != NULL, "%s", err.msg);
    int found = 0;
    double deadline = cx_mono_ms() + 60000;
    while (!found && cx_mono_ms() < deadline) {
        cx_msg_t *pm = NULL;
        if (cx_consumer_poll(cons, 500, &pm, &err) != 1) continue;
        cx_progress_t *p = cx_decode_progress(pm->payload, pm->len, NULL);
        if (p && strcmp(p->job_id, job) == 0) {
            ck_assert_uint_eq(p->total_committed, 30);
            ck_assert_uint_eq(p->total_quota, 50);
            ck_assert_uint_eq(p->n_classes, 2);
            ck_assert_str_eq(p->classes[0]->name, "normal");
            ck_assert_uint_eq(p->classes[0]->committed, 30);
            ck_assert_int_eq(p->complete, 0);
            found = 1;
        }
        if (p) cascade__v1__progress__free_unpacked(p, NULL);
        cx_msg_free(pm);
    }
    cx_consumer_destroy(cons);
    ck_assert_msg(found, "no Progress for %s", job);

    /* garbage: dead-lettered, handled (0), nothing counted */
    cx_msg_t g = {CX_TOPIC_COMMITS, 0, 8, "x", 1, "garbage\xff", 8, NULL};
    ck_assert_int_eq(cx_index_handle_commit(&svc, &g, &counted, &err), 0);
    ck_assert_int_eq(counted, 0);
}
END_TEST

static void put_manifest(const char *unit, const char *cls, uint32_t ordinal,
                         uint32_t planned, uint32_t committed) {
    cx_manifest_t m;
    cx_manifest_sample_t s[4];
    char keys[4][160];
    cx_buf_t out = {0};
    cx_err_t err;
    memset(&m, 0, sizeof m);
    memset(s, 0, sizeof s);
    m.job_id = job;
    m.unit_id = (char *)unit;
    m.class_name = (char *)cls;
    m.condition = "";
    m.attempt = 1;
    m.worker_id = "w-it";
    m.seed = 12345;
    m.ordinal = ordinal;
    m.params.checkpoint = "ref-cxr-v0";
    m.params.sampler = 1;
    m.params.steps = 20;
    m.params.guidance_scale = 1;
    m.params.width = m.params.height = 64;
    m.params.bit_depth = 16;
    m.planned = planned;
    m.generated = planned;
    m.passed = committed;
    m.committed = committed;
    m.committed_unix_ms = cx_now_ms();
    m.n_samples = committed;
    m.samples = s;
    for (uint32_t i = 0; i < committed; i++) {
        s[i].index = i;
        snprintf(s[i].sha256, sizeof s[i].sha256, "%064x", i + 1);
        snprintf(keys[i], sizeof keys[i], "%s/data/%s/00/%064x.png", job, cls, i + 1);
        s[i].key = keys[i];
    }
    ck_assert_msg(cx_manifest_to_json(&m, &out, &err) == 0, "%s", err.msg);
    char key[160];
    snprintf(key, sizeof key, "%s/manifests/%s.json", job, unit);
    ck_assert_msg(cx_store_put(svc.store, key, out.data, out.len, &err) == 0, "%s", err.msg);
    cx_buf_free(&out);
}

START_TEST(test_rebuild_from_manifests) {
    char k[128], a[33], b[33], d[33];
    cx_err_t err;
    cx_unit_id(job, "normal", 10, 0, a);
    cx_unit_id(job, "nodule", 11, 0, b);
    cx_unit_id(job, "nodule", 12, 0, d);
    put_manifest(a, "normal", 10, 4, 3);
    put_manifest(b, "nodule", 11, 4, 2);

    /* counters gone wrong, a planner key, and a dead unit the scheduler
     * recorded with its WorkUnit */
    cx_jobstate_key(k, sizeof k, job, "committed");
    hset(k, "normal", "999");
    cx_jobstate_key(k, sizeof k, job, "issued");
    hset(k, "normal", "64");
    cx_jobstate_key(k, sizeof k, job, "resolved");
    hset(k, d, "d");
    cx_unit_t u = CASCADE__V1__WORK_UNIT__INIT;
    u.job_id = job;
    u.unit_id = d;
    u.class_name = "nodule";
    u.sample_count = 6;
    size_t len;
    uint8_t *payload = cx_pack(&u.base, &len, NULL);
    redisReply *r = cx_redis_cmd(svc.redis, &err, "HSET cx:unit:%s payload %b", d,
                                 payload, len);
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    free(payload);

    cx_rebuild_t rb;
    cx_rebuild_init(&rb, job);
    ck_assert_msg(cx_rebuild_job(svc.redis, svc.store, &rb, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(rb.manifests, 2);
    ck_assert_uint_eq(rb.dead, 1);
    cx_rebuild_release(&rb);

    cx_jobstate_t *st = NULL;
    ck_assert_int_eq(cx_jobstate_load(svc.redis, job, &st, &err), 1);
    cx_classstate_t *n = cx_jobstate_class(st, "normal"), *o = cx_jobstate_class(st, "nodule");
    ck_assert_uint_eq(n->committed, 3);
    ck_assert_uint_eq(n->units, 1);
    ck_assert_uint_eq(n->resolved_n, 4);
    ck_assert_uint_eq(n->issued, 64); /* the planner's key is untouched */
    ck_assert_uint_eq(o->committed, 2);
    ck_assert_uint_eq(o->resolved_n, 4 + 6);
    cx_jobstate_free(st);
    cx_jobstate_key(k, sizeof k, job, "resolved");
    char *ma = hget(k, a), *md = hget(k, d);
    char u1[33];
    cx_unit_id(job, "normal", 0, 0, u1);
    char *m1 = hget(k, u1);
    ck_assert_str_eq(ma, "c");
    ck_assert_str_eq(md, "d");
    ck_assert_ptr_null(m1); /* counted before, but it has no manifest */
    free(ma);
    free(md);
    free(m1);
}
END_TEST

int main(void) {
    const char *brokers = cx_testenv("CASCADE_KAFKA_BROKERS");
    const char *redis = cx_testenv("CASCADE_REDIS_URL");
    const char *store = cx_testenv("CASCADE_STORE_URI");
    cx_err_t err;
    if (!brokers || !redis || !store) {
        fprintf(stderr, "it_indexer: no stack (CASCADE_TEST_ENV), skipped\n");
        return 77;
    }
    conf.kafka_brokers = (char *)brokers;
    conf.redis_url = (char *)redis;
    conf.store_uri = (char *)store;
    conf.http_bind = "127.0.0.1";
    conf.log_level = "warn";
    conf.instance = "it-indexer";
    if (cx_service_init(&svc, "indexer", &conf,
                        CX_SVC_PRODUCER | CX_SVC_REDIS | CX_SVC_STORE, &err) < 0) {
        fprintf(stderr, "it_indexer: %s\n", err.msg);
        return 1;
    }
    snprintf(job, sizeof job, "it-idx-%d-%lld", (int)getpid(), (long long)cx_now_ms());

    Suite *s = suite_create("it_indexer");
    TCase *tc = tcase_create("indexer");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_count_once_and_progress);
    tcase_add_test(tc, test_rebuild_from_manifests);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    cx_service_shutdown(&svc);
    return failed ? 1 : 0;
}
