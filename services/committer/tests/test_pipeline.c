/* The real cascade-validator and cascade-committer processes against the
 * shared stack (broker + Redis): a StagedBatch in, a CommitRecord out, the
 * dataset and manifest in the store, staging gone, a malformed message
 * dead-lettered, and both services draining on SIGTERM. */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cascade/codec.h"
#include "cascade/kafka.h"
#include "cascade/names.h"
#include "cascade/png16.h"
#include "cascade/redis.h"
#include "cascade/store.h"
#include "cx_testenv.h"

#define W 64
#define H 64
#define N 4

static const char *brokers, *redis_url;
static char *root;
static char store_uri[600];
static pid_t validator, committer;

static pid_t spawn(const char *bin, const char *name) {
    char log[700];
    snprintf(log, sizeof log, "%s/%s.log", root, name);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        setenv("CASCADE_KAFKA_BROKERS", brokers, 1);
        setenv("CASCADE_REDIS_URL", redis_url, 1);
        setenv("CASCADE_STORE_URI", store_uri, 1);
        setenv("CASCADE_LOG_LEVEL", "debug", 1);
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* SIGTERM and wait (deadline 30 s); returns the exit status, -1 if it had
 * to be killed. */
static int stop(pid_t pid) {
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    for (int i = 0; i < 300; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* Reads commits and dead letters (one consumer of a group of its own,
 * from the start of both topics) until want() says it has everything or
 * 90 s pass. */
static void await(int (*want)(const cx_msg_t *, void *), void *ctx) {
    char group[96];
    snprintf(group, sizeof group, "test-pipeline-%d-%ld", (int)getpid(),
             (long)random());
    const char *topics[] = {CX_TOPIC_COMMITS, CX_TOPIC_DEADLETTER, NULL};
    cx_err_t e;
    cx_consumer_t *c = cx_consumer_new(brokers, group, topics, &e);
    ck_assert_msg(c != NULL, "consumer: %s", e.msg);
    double deadline = cx_mono_ms() + 90000;
    int done = 0;
    while (!done && cx_mono_ms() < deadline) {
        cx_msg_t *m = NULL;
        if (cx_consumer_poll(c, 500, &m, &e) != 1) continue;
        done = want(m, ctx);
        cx_msg_free(m);
    }
    cx_consumer_destroy(c);
}

static char job[64];

typedef struct seen {
    const char *garbage;
    cx_commit_t *commit;        /* ours, decoded */
    cx_deadletter_t *deadletter; /* of our garbage, decoded */
} seen_t;

static int collect(const cx_msg_t *m, void *ctx) {
    seen_t *s = ctx;
    if (strcmp(m->topic, CX_TOPIC_COMMITS) == 0 && !s->commit) {
        cx_commit_t *c = cx_decode_commit(m->payload, m->len, NULL);
        if (c && strcmp(c->job_id, job) == 0)
            s->commit = c;
        else if (c)
            cascade__v1__commit_record__free_unpacked(c, NULL);
    } else if (strcmp(m->topic, CX_TOPIC_DEADLETTER) == 0 && !s->deadletter) {
        cx_deadletter_t *d = cx_decode_deadletter(m->payload, m->len, NULL);
        if (d && d->payload.len == strlen(s->garbage) &&
            memcmp(d->payload.data, s->garbage, d->payload.len) == 0)
            s->deadletter = d;
        else if (d)
            cascade__v1__dead_letter__free_unpacked(d, NULL);
    }
    return s->commit && s->deadletter;
}

static size_t count_keys(cx_store_t *s, const char *prefix) {
    cx_strlist_t l = {0};
    if (cx_store_list(s, prefix, &l, NULL) < 0) return (size_t)-1;
    size_t n = l.len;
    cx_strlist_free(&l);
    return n;
}

START_TEST(test_pipeline_stage_to_commit) {
    brokers = cx_testenv("CASCADE_KAFKA_BROKERS");
    redis_url = cx_testenv("CASCADE_REDIS_URL");
    ck_assert_msg(brokers && redis_url, "no stack (CASCADE_TEST_ENV)");
    root = cx_testenv_tmpdir("pipeline");
    snprintf(store_uri, sizeof store_uri, "file://%s/store", root);
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(job, sizeof job, "job-pipe-%d-%ld", (int)getpid(),
             (long)(random() % 100000));
    cx_err_t e;
    cx_store_t *store = cx_store_open(store_uri, &e);
    ck_assert_msg(store != NULL, "%s", e.msg);
    cx_redis_t *r = cx_redis_new(redis_url, 5000, NULL);
    redisReply *rep =
        cx_redis_cmd(r, &e, "HSET cx:job:%s:quota normal 2", job);
    ck_assert_msg(rep != NULL, "%s", e.msg);
    freeReplyObject(rep);

    /* Four staged samples: three smooth, one pure noise. */
    char unit_id[33], keys[N][160];
    cx_unit_id(job, "normal", 0, 0, unit_id);
    Cascade__V1__StagedSample ss[N], *ssp[N];
    uint16_t px[W * H];
    uint64_t rs = 7;
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < W * H; k++) {
            rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
            px[k] = i == 2 ? (uint16_t)(rs >> 48)
                           : (uint16_t)(9000 + 600 * (k % W) + 100 * i +
                                        (rs >> 58));
        }
        cx_buf_t png = {0};
        ck_assert_int_eq(cx_png_encode(px, W, H, 16, 1, &png, NULL), 0);
        snprintf(keys[i], sizeof keys[i], "%s/staging/%s/1/%d.png", job,
                 unit_id, i);
        ck_assert_int_eq(cx_store_put(store, keys[i], png.data, png.len, NULL),
                         0);
        cascade__v1__staged_sample__init(&ss[i]);
        ss[i].index = (uint32_t)i;
        ss[i].key = keys[i];
        ss[i].bytes = png.len;
        ssp[i] = &ss[i];
        cx_buf_free(&png);
    }
    Cascade__V1__GenerationParams gp = CASCADE__V1__GENERATION_PARAMS__INIT;
    gp.checkpoint = "ref-cxr-v0";
    gp.sampler = CASCADE__V1__SAMPLER__SAMPLER_DDIM;
    gp.steps = 10;
    gp.guidance_scale = 1.0;
    gp.width = W;
    gp.height = H;
    gp.bit_depth = 16;
    cx_unit_t unit = CASCADE__V1__WORK_UNIT__INIT;
    unit.job_id = job;
    unit.unit_id = unit_id;
    unit.class_name = "normal";
    unit.sample_count = N;
    unit.params = &gp;
    cx_staged_t sb = CASCADE__V1__STAGED_BATCH__INIT;
    sb.unit = &unit;
    sb.worker_id = "w-test";
    sb.attempt = 1;
    sb.epoch = 5;
    sb.n_samples = N;
    sb.samples = ssp;
    size_t len = 0;
    uint8_t *packed = cx_pack(&sb.base, &len, &e);
    ck_assert_ptr_nonnull(packed);

    validator = spawn(CX_VALIDATOR_BIN, "validator");
    committer = spawn(CX_COMMITTER_BIN, "committer");
    cx_producer_t *p = cx_producer_new(brokers, "test-pipeline", &e);
    ck_assert_msg(p != NULL, "%s", e.msg);
    char garbage[128];
    snprintf(garbage, sizeof garbage, "not a staged batch %s", job);
    ck_assert_int_eq(cx_producer_send(p, CX_TOPIC_STAGED, -1, job,
                                      strlen(job), garbage, strlen(garbage),
                                      &e),
                     0);
    ck_assert_int_eq(cx_producer_send(p, CX_TOPIC_STAGED, -1, job,
                                      strlen(job), packed, len, &e),
                     0);
    ck_assert_int_eq(cx_producer_flush(p, 30000, &e), 0);
    free(packed);

    seen_t seen = {.garbage = garbage};
    await(collect, &seen);
    cx_commit_t *c = seen.commit;
    ck_assert_msg(c != NULL, "no CommitRecord within 90 s (logs in %s)",
                  root);
    ck_assert_str_eq(c->unit_id, unit_id);
    ck_assert_uint_eq(c->generated, N);
    ck_assert_uint_eq(c->passed, 3);
    ck_assert_uint_eq(c->committed, 2); /* the quota */
    ck_assert(c->validate_ms > 0);
    ck_assert_int_eq(cx_store_exists(store, c->manifest_key, NULL), 1);
    cascade__v1__commit_record__free_unpacked(c, NULL);

    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s/data", job);
    ck_assert_uint_eq(count_keys(store, prefix), 2);
    /* Staging is deleted right after the record is out. */
    snprintf(prefix, sizeof prefix, "%s/staging", job);
    double deadline = cx_mono_ms() + 30000;
    while (count_keys(store, prefix) != 0 && cx_mono_ms() < deadline) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    ck_assert_uint_eq(count_keys(store, prefix), 0);

    cx_deadletter_t *d = seen.deadletter;
    ck_assert_msg(d != NULL, "malformed batch not dead-lettered");
    ck_assert_str_eq(d->service, "validator");
    ck_assert_str_eq(d->source_topic, CX_TOPIC_STAGED);
    cascade__v1__dead_letter__free_unpacked(d, NULL);

    ck_assert_int_eq(stop(validator), 0);
    ck_assert_int_eq(stop(committer), 0);
    validator = committer = 0;

    rep = cx_redis_cmd(r, NULL, "DEL cx:job:%s:quota cx:job:%s:resv "
                       "cx:job:%s:granted", job, job, job);
    if (rep) freeReplyObject(rep);
    cx_redis_destroy(r);
    cx_producer_destroy(p);
    cx_store_delete_prefix(store, job, NULL);
    cx_store_destroy(store);
}
END_TEST

int main(void) {
    Suite *s = suite_create("committer_pipeline");
    TCase *tc = tcase_create("pipeline");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_pipeline_stage_to_commit);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    /* A failed assertion leaves them running: never leave processes. */
    stop(validator);
    stop(committer);
    return failed ? 1 : 0;
}
