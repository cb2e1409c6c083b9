/* The warm pool's registry keys against a real Redis (database 7 of the
 * stack's server, flushed per test): cx:worker:<w>:warm, the worker hash's
 * memory fields and cx:ckpt:<name>; and a worker whose plug-in directory
 * holds a wrong-ABI plug-in and whose checkpoint directory holds a
 * corrupt checkpoint: those units fail with the reason, the others are
 * served. Skipped (77) without a stack. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/codec.h"
#include "cascade/gen.h"
#include "cascade/names.h"
#include "cascade/redis.h"
#include "cascade/service.h"
#include "cx_testenv.h"
#include "pool.h"
#include "worker.h"

static char url[512], dir[64];
static cx_redis_t *r;
static cx_plugins_t *ps;

#define R(...) cx_redis_cmd(r, NULL, __VA_ARGS__)

static void setup(void) {
    cx_err_t err = {0};
    r = cx_redis_new(url, 2000, &err);
    ck_assert_ptr_nonnull(r);
    redisReply *rep = R("FLUSHDB");
    ck_assert_ptr_nonnull(rep);
    freeReplyObject(rep);
    snprintf(dir, sizeof dir, "/tmp/cx-itwp-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    for (int i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%c.procgen", dir, 'a' + i);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs("procgen 1\nclass normal blobs=2\n", f);
        fclose(f);
    }
    ps = cx_plugins_new(&err);
    ck_assert_int_eq(cx_plugins_add(ps, PROCGEN_SO, &err), 0);
}

static void teardown(void) {
    cx_plugins_destroy(ps);
    cx_redis_destroy(r);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static char *hget(const char *key, const char *field) {
    redisReply *rep = R("HGET %s %s", key, field);
    ck_assert_ptr_nonnull(rep);
    char *v = rep->type == REDIS_REPLY_STRING ? strdup(rep->str) : NULL;
    freeReplyObject(rep);
    return v;
}

static long long hlen(const char *key) {
    redisReply *rep = R("HLEN %s", key);
    ck_assert_ptr_nonnull(rep);
    long long n = rep->integer;
    freeReplyObject(rep);
    return n;
}

static void use(cx_warm_t *w, const char *name) {
    cx_err_t err = {0};
    cx_warm_model_t *m = cx_warm_acquire(w, name, 32, 32, NULL, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    cx_warm_release(w, m);
}

START_TEST(test_publish) {
    cx_err_t err = {0};
    cx_genplug_args_t a = {.struct_size = sizeof a, .checkpoint = "x",
                           .device = "cpu", .width = 32, .height = 32};
    uint64_t unit = 0;
    ck_assert_int_eq(cx_plugin_estimate(cx_plugins_at(ps, 0), &a, &unit,
                                        &err), 0);
    cx_warm_conf_t c = {.device = "cpu", .checkpoint_dir = dir,
                        .budget_bytes = unit * 5 / 2};
    cx_warm_t *w = cx_warm_new(&c, ps, NULL, &err);
    ck_assert_ptr_nonnull(w);
    /* Not registered (no cx:worker:w1 hash): nothing is written. */
    use(w, "a");
    ck_assert_int_eq(cx_warm_publish(w, r, "w1", 0, &err), 0);
    ck_assert_int_eq(hlen("cx:worker:w1:warm"), 0);
    ck_assert_int_eq(hlen("cx:worker:w1"), 0);
    /* The load itself is recorded for the checkpoint all the same. */
    char *v = hget("cx:ckpt:a", "mem_bytes");
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(strtoull(v, NULL, 10), unit);
    free(v);
    double first = atof((v = hget("cx:ckpt:a", "load_ms")));
    free(v);
    ck_assert_double_ge(first, 0);
    ck_assert_double_eq_tol(atof((v = hget("cx:ckpt:a", "load_ms_ewma"))),
                            first, 0.001);
    free(v);

    redisReply *rep = R("HSET cx:worker:w1 gpu_type cpu");
    freeReplyObject(rep);
    use(w, "b");
    ck_assert_int_eq(cx_warm_publish(w, r, "w1", 0, &err), 0);
    ck_assert_int_eq(hlen("cx:worker:w1:warm"), 2);
    v = hget("cx:worker:w1:warm", "b");
    ck_assert_uint_eq(strtoull(v, NULL, 10), unit);
    free(v);
    v = hget("cx:worker:w1", "mem_used_bytes");
    ck_assert_uint_eq(strtoull(v, NULL, 10), 2 * unit);
    free(v);
    v = hget("cx:worker:w1", "mem_budget_bytes");
    ck_assert_uint_eq(strtoull(v, NULL, 10), unit * 5 / 2);
    free(v);
    v = hget("cx:worker:w1", "device");
    ck_assert_str_eq(v, "cpu");
    free(v);

    /* c evicts a (the least recently used); a's second cold load moves
     * its average. */
    use(w, "c");
    ck_assert_int_eq(cx_warm_publish(w, r, "w1", 0, &err), 0);
    ck_assert_ptr_null(hget("cx:worker:w1:warm", "a"));
    ck_assert_ptr_nonnull((v = hget("cx:worker:w1:warm", "c")));
    free(v);
    use(w, "a");
    ck_assert_int_eq(cx_warm_publish(w, r, "w1", 0, &err), 0);
    double second = atof((v = hget("cx:ckpt:a", "load_ms")));
    free(v);
    double ewma = atof((v = hget("cx:ckpt:a", "load_ms_ewma")));
    free(v);
    ck_assert_double_eq_tol(ewma, first + 0.3 * (second - first), 0.002);
    ck_assert_int_eq(hlen("cx:worker:w1:warm"), 2);
    cx_warm_destroy(w);
}
END_TEST

/* An Assignment leased to worker `me` in Redis (epoch 1). */
static cx_assignment_t *assignment(const char *ckpt, uint32_t size,
                                   const char *me) {
    static char uid[33];
    static int ordinal;
    cx_unit_id("jobP", "normal", (uint32_t)ordinal++, 0, uid);
    Cascade__V1__GenerationParams gp = CASCADE__V1__GENERATION_PARAMS__INIT;
    gp.checkpoint = (char *)ckpt;
    gp.sampler = CASCADE__V1__SAMPLER__SAMPLER_DDIM;
    gp.steps = 3;
    gp.guidance_scale = 1.0;
    gp.width = size;
    gp.height = size;
    gp.bit_depth = 16;
    cx_unit_t u = CASCADE__V1__WORK_UNIT__INIT;
    u.job_id = (char *)"jobP";
    u.unit_id = uid;
    u.class_name = (char *)"normal";
    u.sample_count = 3;
    u.seed = 5;
    u.params = &gp;
    cx_assignment_t a = CASCADE__V1__ASSIGNMENT__INIT;
    a.unit = &u;
    a.worker_id = (char *)me;
    a.attempt = 1;
    a.epoch = 1;
    size_t len;
    uint8_t *buf = cx_pack(&a.base, &len, NULL);
    ck_assert_ptr_nonnull(buf);
    cx_assignment_t *out = cascade__v1__assignment__unpack(NULL, len, buf);
    free(buf);
    return out;
}

/* Runs a and returns its StagedBatch's failure ("" on success). */
static char *run_unit(cx_worker_t *w, cx_assignment_t *a, int *warm_hit) {
    cx_buf_t out = {0};
    cx_err_t err = {0};
    ck_assert_msg(cx_worker_run(w, a, &out, &err) == 0, "%s", err.msg);
    cx_staged_t *b = cx_decode_staged(out.data, out.len, &err);
    ck_assert_ptr_nonnull(b);
    char *f = strdup(b->failure);
    if (!*f) ck_assert_uint_eq(b->n_samples, 3);
    ck_assert_str_eq(b->device, "cpu");
    *warm_hit = b->warm_hit;
    cascade__v1__staged_batch__free_unpacked(b, NULL);
    cx_buf_free(&out);
    cascade__v1__assignment__free_unpacked(a, NULL);
    return f;
}

START_TEST(test_worker_serves_past_bad_plugins_and_checkpoints) {
    char pdir[128], cdir[128], store[160], cmd[1024];
    snprintf(pdir, sizeof pdir, "%s/plugins", dir);
    snprintf(cdir, sizeof cdir, "%s/ckpt", dir);
    snprintf(store, sizeof store, "file://%s/store", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s %s && cp %s %s/ && cp %s %s/",
             pdir, cdir, BAD_ABI_SO, pdir, REFGEN_SO, pdir);
    ck_assert_int_eq(system(cmd), 0);
    cx_err_t err = {0};
    cx_model_t *m = cx_model_open(CX_CHECKPOINT_BUILTIN, 32, 32, &err);
    ck_assert_ptr_nonnull(m);
    char good[200], bad[200];
    snprintf(good, sizeof good, "%s/fitted.cxck", cdir);
    snprintf(bad, sizeof bad, "%s/damaged.cxck", cdir);
    ck_assert_int_eq(cx_model_save(m, good, &err), 0);
    cx_model_destroy(m);
    snprintf(cmd, sizeof cmd, "cp %s %s && printf '\\377\\377' | dd of=%s "
             "bs=1 seek=4000 conv=notrunc status=none", good, bad, bad);
    ck_assert_int_eq(system(cmd), 0);

    cx_common_conf_t common = {.kafka_brokers = (char *)"",
                               .redis_url = url,
                               .store_uri = store,
                               .http_bind = (char *)"127.0.0.1",
                               .log_level = (char *)"error",
                               .instance = (char *)"wp1"};
    cx_service_t svc;
    ck_assert_msg(cx_service_init(&svc, "gpu-worker", &common,
                                  CX_SVC_REDIS | CX_SVC_STORE, &err) == 0,
                  "%s", err.msg);
    cx_worker_conf_t wc = {.id = "wp1", .gpu_type = "cpu",
                           .png = {1, CX_PNG_FILTER_UP,
                                   CX_PNG_STRATEGY_HUFFMAN},
                           .threads = 2, .checkpoint_dir = cdir,
                           .plugin_dir = pdir};
    cx_worker_t *w = cx_worker_new(&svc, &wc, &err);
    ck_assert_msg(w != NULL, "%s", err.msg); /* the bad plug-in skipped */
    int hit;
    char *f = run_unit(w, assignment("damaged", 32, "wp1"), &hit);
    ck_assert_msg(strstr(f, "damaged.cxck"), "%s", f);
    free(f);
    f = run_unit(w, assignment("fitted", 64, "wp1"), &hit); /* wrong size */
    ck_assert_msg(strstr(f, "is 32x32, the unit asks for 64x64"), "%s", f);
    free(f);
    f = run_unit(w, assignment("fitted", 32, "wp1"), &hit);
    ck_assert_str_eq(f, "");
    ck_assert_int_eq(hit, 0);
    free(f);
    f = run_unit(w, assignment("fitted", 32, "wp1"), &hit);
    ck_assert_str_eq(f, "");
    ck_assert_int_eq(hit, 1);
    free(f);
    f = run_unit(w, assignment(CX_CHECKPOINT_BUILTIN, 32, "wp1"), &hit);
    ck_assert_str_eq(f, "");
    free(f);
    cx_worker_destroy(w);
    cx_service_shutdown(&svc);
}
END_TEST

int main(void) {
    const char *base = cx_testenv("CASCADE_REDIS_URL");
    if (!base) {
        fprintf(stderr, "it_warm_pool: no CASCADE_REDIS_URL, skipped\n");
        return 77;
    }
    snprintf(url, sizeof url, "%s", base);
    char *slash = strchr(strstr(url, "//") ? strstr(url, "//") + 2 : url, '/');
    if (slash) *slash = '\0';
    strncat(url, "/7", sizeof url - strlen(url) - 1);

    Suite *s = suite_create("it_warm_pool");
    TCase *tc = tcase_create("redis");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_publish);
    tcase_add_test(tc, test_worker_serves_past_bad_plugins_and_checkpoints);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
