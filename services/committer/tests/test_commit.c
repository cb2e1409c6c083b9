/* Committing verdicts against a real Redis and a file:// store: promotion,
 * the manifest as commit point, redelivery, cancellation, fencing, and two
 * attempts of one unit racing. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/jobstate.h"
#include "cascade/names.h"
#include "cascade/sha256.h"
#include "commit.h"
#include "cx_testenv.h"
#include "redis_fixture.h"

#define MAXS 16

static cx_redis_t *r;
static cx_store_t *store;
static char *root;
static char job[64];
static int jobn;

/* A verdict under test with its own storage. */
typedef struct fixture {
    cx_verdict_t v;
    cx_unit_t unit;
    Cascade__V1__GenerationParams params;
    Cascade__V1__StageTiming timing;
    Cascade__V1__SampleVerdict s[MAXS];
    Cascade__V1__SampleVerdict *sp[MAXS];
    Cascade__V1__GateScore g[MAXS];
    Cascade__V1__GateScore *gp[MAXS];
    char keys[MAXS][160];
    char sha[MAXS][65];
    char unit_id[33];
    char worker[16];
} fixture_t;

static void redis_do(const char *fmt, const char *a, const char *b,
                     const char *c) {
    cx_err_t e;
    redisReply *rep = cx_redis_cmd(r, &e, fmt, a, b, c);
    ck_assert_msg(rep != NULL, "redis: %s", e.msg);
    freeReplyObject(rep);
}

static void set_quota(const char *cls, const char *q) {
    char key[128];
    snprintf(key, sizeof key, "cx:job:%s:quota", job);
    redis_do("HSET %s %s %s", key, cls, q);
}

/* A verdict of attempt for unit ordinal `ord` with n samples; pass[i] says
 * which pass. `salt` changes the staged bytes (another attempt's output). */
static fixture_t *make_verdict(uint32_t ord, uint32_t attempt, int n,
                               const int *pass, int salt) {
    fixture_t *f = calloc(1, sizeof *f);
    cx_unit_id(job, "normal", ord, 0, f->unit_id);
    snprintf(f->worker, sizeof f->worker, "w%u", attempt);
    cascade__v1__verdict__init(&f->v);
    cascade__v1__work_unit__init(&f->unit);
    cascade__v1__generation_params__init(&f->params);
    cascade__v1__stage_timing__init(&f->timing);
    f->params.checkpoint = "ref-cxr-v0";
    f->params.sampler = CASCADE__V1__SAMPLER__SAMPLER_DDIM;
    f->params.steps = 20;
    f->params.guidance_scale = 1.5;
    f->params.width = 64;
    f->params.height = 64;
    f->params.bit_depth = 16;
    f->unit.job_id = job;
    f->unit.unit_id = f->unit_id;
    f->unit.class_name = "normal";
    f->unit.ordinal = ord;
    f->unit.seed = 0xfedcba9876543210ULL;
    f->unit.sample_count = (uint32_t)n;
    f->unit.params = &f->params;
    f->timing.generate_ms = 3.25;
    f->v.unit = &f->unit;
    f->v.worker_id = f->worker;
    f->v.attempt = attempt;
    f->v.epoch = 10 + attempt;
    f->v.timing = &f->timing;
    f->v.validate_ms = 1.5;
    uint32_t passed = 0;
    for (int i = 0; i < n; i++) {
        /* Listed in reverse: the committer orders by index itself. */
        int slot = n - 1 - i;
        Cascade__V1__SampleVerdict *s = &f->s[slot];
        cascade__v1__sample_verdict__init(s);
        cascade__v1__gate_score__init(&f->g[slot]);
        snprintf(f->keys[slot], sizeof f->keys[slot],
                 "%s/staging/%s/%u/%d.png", job, f->unit_id, attempt, i);
        char body[96];
        int len = snprintf(body, sizeof body, "png %s %u %d salt %d", job,
                           ord, i, salt);
        ck_assert_int_eq(cx_store_put(store, f->keys[slot], body, (size_t)len,
                                      NULL),
                         0);
        cx_sha256_hex(body, (size_t)len, f->sha[slot]);
        s->index = (uint32_t)i;
        s->key = f->keys[slot];
        s->pass = pass[i];
        s->reason = pass[i] ? "" : "hf 30 > max_hf 2";
        s->sha256 = f->sha[slot];
        f->g[slot].name = "hf";
        f->g[slot].value = 0.01 * i;
        f->gp[slot] = &f->g[slot];
        s->n_scores = 1;
        s->scores = &f->gp[slot];
        f->sp[slot] = s;
        passed += pass[i] ? 1 : 0;
    }
    f->v.n_samples = (size_t)n;
    f->v.samples = f->sp;
    f->v.passed = passed;
    return f;
}

static const char *sha_of(const fixture_t *f, uint32_t index) {
    for (size_t i = 0; i < f->v.n_samples; i++)
        if (f->s[i].index == index) return f->sha[i];
    return NULL;
}

static cx_manifest_t *load_manifest(const fixture_t *f) {
    char key[256];
    snprintf(key, sizeof key, "%s/manifests/%s.json", job, f->unit_id);
    void *data = NULL;
    size_t len = 0;
    if (cx_store_get(store, key, &data, &len, NULL) < 0) return NULL;
    cx_manifest_t *m = NULL;
    cx_err_t e;
    ck_assert_msg(cx_manifest_parse(data, len, &m, &e) == 0, "%s", e.msg);
    free(data);
    return m;
}

static size_t count_keys(const char *sub) {
    char prefix[128];
    cx_strlist_t l = {0};
    snprintf(prefix, sizeof prefix, "%s/%s", job, sub);
    ck_assert_int_eq(cx_store_list(store, prefix, &l, NULL), 0);
    size_t n = l.len;
    cx_strlist_free(&l);
    return n;
}

static cx_commit_t *commit(fixture_t *f, cx_commit_outcome_t want,
                           cx_commit_result_t *res) {
    cx_buf_t rec = {0};
    cx_commit_result_t local;
    cx_err_t e;
    if (!res) res = &local;
    ck_assert_msg(cx_commit_verdict(r, store, &f->v, &rec, res, &e) == 0,
                  "commit: %s", e.msg);
    ck_assert_int_eq(res->outcome, want);
    if (want == CX_COMMIT_CANCELLED || want == CX_COMMIT_FENCED) {
        ck_assert_uint_eq(rec.len, 0);
        return NULL;
    }
    cx_commit_t *c = cascade__v1__commit_record__unpack(NULL, rec.len,
                                                         rec.data);
    ck_assert_ptr_nonnull(c);
    cx_buf_free(&rec);
    return c;
}

static void setup(void) {
    const char *url = cx_fixture_redis_url();
    ck_assert_msg(url != NULL, "no redis");
    r = cx_redis_new(url, 5000, NULL);
    ck_assert_ptr_nonnull(r);
    root = cx_testenv_tmpdir("committer");
    store = cx_store_open(root, NULL);
    ck_assert_ptr_nonnull(store);
    snprintf(job, sizeof job, "job-commit-%d-%d", (int)getpid(), jobn++);
}

static void teardown(void) {
    cx_store_delete_prefix(store, job, NULL);
    cx_store_destroy(store);
    remove(root);
    free(root);
    cx_redis_destroy(r);
}

START_TEST(test_commit_promotes_granted) {
    set_quota("normal", "100");
    const int pass[] = {1, 0, 1, 1, 0, 1};
    fixture_t *f = make_verdict(0, 1, 6, pass, 0);
    cx_commit_result_t res;
    cx_commit_t *c = commit(f, CX_COMMIT_COMMITTED, &res);
    ck_assert_uint_eq(res.passed, 4);
    ck_assert_uint_eq(res.grant, 4);
    ck_assert_str_eq(c->job_id, job);
    ck_assert_str_eq(c->unit_id, f->unit_id);
    ck_assert_str_eq(c->class_name, "normal");
    ck_assert_uint_eq(c->attempt, 1);
    ck_assert_uint_eq(c->planned, 6);
    ck_assert_uint_eq(c->generated, 6);
    ck_assert_uint_eq(c->passed, 4);
    ck_assert_uint_eq(c->committed, 4);
    ck_assert_str_eq(c->worker_id, "w1");
    ck_assert_double_eq(c->validate_ms, 1.5);
    ck_assert_double_eq(c->timing->generate_ms, 3.25);
    ck_assert(c->commit_ms > 0);
    char mk[256];
    snprintf(mk, sizeof mk, "%s/manifests/%s.json", job, f->unit_id);
    ck_assert_str_eq(c->manifest_key, mk);
    cascade__v1__commit_record__free_unpacked(c, NULL);

    cx_manifest_t *m = load_manifest(f);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(m->committed, 4);
    ck_assert_uint_eq(m->seed, 0xfedcba9876543210ULL);
    ck_assert_str_eq(m->params.checkpoint, "ref-cxr-v0");
    const uint32_t want_idx[] = {0, 2, 3, 5};
    for (size_t i = 0; i < 4; i++) {
        const cx_manifest_sample_t *s = &m->samples[i];
        ck_assert_uint_eq(s->index, want_idx[i]);
        ck_assert_str_eq(s->sha256, sha_of(f, want_idx[i]));
        char dk[256];
        snprintf(dk, sizeof dk, "%s/data/normal/%.2s/%s.png", job, s->sha256,
                 s->sha256);
        ck_assert_str_eq(s->key, dk);
        ck_assert_int_eq(cx_store_exists(store, dk, NULL), 1);
        ck_assert_uint_eq(s->n_scores, 1);
        ck_assert_str_eq(s->scores[0].name, "hf");
    }
    cx_manifest_free(m);
    ck_assert_uint_eq(count_keys("data"), 4);
    /* The failing samples stay in staging until cleanup. */
    ck_assert_uint_eq(count_keys("staging"), 2);
    ck_assert_int_eq(cx_commit_cleanup(store, &f->v, NULL), 0);
    ck_assert_uint_eq(count_keys("staging"), 0);
    free(f);
}
END_TEST

START_TEST(test_commit_quota_caps_and_condition) {
    set_quota("normal", "2");
    const int pass[] = {0, 1, 1, 1, 1};
    fixture_t *f = make_verdict(1, 1, 5, pass, 0);
    f->unit.condition = "pa-view";
    cx_commit_result_t res;
    cx_commit_t *c = commit(f, CX_COMMIT_COMMITTED, &res);
    ck_assert_uint_eq(res.grant, 2);
    ck_assert_uint_eq(c->passed, 4);
    ck_assert_uint_eq(c->committed, 2);
    ck_assert_str_eq(c->condition, "pa-view");
    cascade__v1__commit_record__free_unpacked(c, NULL);
    cx_manifest_t *m = load_manifest(f);
    ck_assert_uint_eq(m->samples[0].index, 1);
    ck_assert_uint_eq(m->samples[1].index, 2);
    ck_assert_ptr_nonnull(strstr(m->samples[0].key, "/data/normal/pa-view/"));
    cx_manifest_free(m);
    ck_assert_uint_eq(count_keys("data"), 2);

    /* The class is full: the next unit commits an empty manifest. */
    fixture_t *g = make_verdict(2, 1, 5, pass, 0);
    c = commit(g, CX_COMMIT_COMMITTED, &res);
    ck_assert_uint_eq(res.grant, 0);
    ck_assert_uint_eq(c->committed, 0);
    ck_assert_uint_eq(c->passed, 4);
    cascade__v1__commit_record__free_unpacked(c, NULL);
    ck_assert_uint_eq(count_keys("data"), 2);
    free(f);
    free(g);
}
END_TEST

START_TEST(test_commit_redelivery) {
    set_quota("normal", "100");
    const int pass[] = {1, 1, 1};
    fixture_t *f = make_verdict(0, 1, 3, pass, 0);
    cx_commit_t *c1 = commit(f, CX_COMMIT_COMMITTED, NULL);
    /* Crash before cleanup; the verdict comes again. */
    cx_commit_result_t res;
    cx_commit_t *c2 = commit(f, CX_COMMIT_EXISTING, &res);
    ck_assert_uint_eq(res.removed, 0);
    ck_assert_uint_eq(c2->committed, c1->committed);
    ck_assert_int_eq(c2->committed_unix_ms, c1->committed_unix_ms);
    ck_assert_str_eq(c2->manifest_key, c1->manifest_key);
    cascade__v1__commit_record__free_unpacked(c1, NULL);
    cascade__v1__commit_record__free_unpacked(c2, NULL);
    ck_assert_uint_eq(count_keys("data"), 3);
    ck_assert_uint_eq(count_keys("manifests"), 1);
    free(f);
}
END_TEST

START_TEST(test_commit_cancelled_job) {
    set_quota("normal", "100");
    char key[128];
    snprintf(key, sizeof key, "cx:job:%s", job);
    redis_do("HSET %s %s %s", key, "state", CX_JOB_CANCELLED);
    const int pass[] = {1, 1};
    fixture_t *f = make_verdict(0, 1, 2, pass, 0);
    commit(f, CX_COMMIT_CANCELLED, NULL);
    ck_assert_uint_eq(count_keys("manifests"), 0);
    ck_assert_uint_eq(count_keys("data"), 0);
    ck_assert_int_eq(cx_commit_cleanup(store, &f->v, NULL), 0);
    ck_assert_uint_eq(count_keys("staging"), 0);
    free(f);
}
END_TEST

START_TEST(test_commit_dead_unit_fenced) {
    set_quota("normal", "100");
    const int pass[] = {1, 1};
    fixture_t *f = make_verdict(0, 3, 2, pass, 0);
    char key[128];
    snprintf(key, sizeof key, "cx:job:%s:resolved", job);
    redis_do("HSET %s %s %s", key, f->unit_id, "d");
    commit(f, CX_COMMIT_FENCED, NULL);
    ck_assert_uint_eq(count_keys("manifests"), 0);
    ck_assert_uint_eq(count_keys("data"), 0);
    free(f);
}
END_TEST

START_TEST(test_commit_missing_staged_sample) {
    set_quota("normal", "100");
    const int pass[] = {1, 1, 1};
    fixture_t *f = make_verdict(0, 1, 3, pass, 0);
    /* Sample 1's staged file is gone (and never promoted). */
    for (int i = 0; i < 3; i++)
        if (f->s[i].index == 1) cx_store_delete(store, f->keys[i], NULL);
    cx_commit_result_t res;
    cx_commit_t *c = commit(f, CX_COMMIT_COMMITTED, &res);
    ck_assert_uint_eq(res.grant, 3);
    ck_assert_uint_eq(c->committed, 2);
    cascade__v1__commit_record__free_unpacked(c, NULL);
    /* The unused grant went back to the class. */
    char key[128];
    snprintf(key, sizeof key, "cx:job:%s:granted", job);
    redisReply *rep = cx_redis_cmd(r, NULL, "HGET %s normal", key);
    ck_assert_str_eq(rep->str, "2");
    freeReplyObject(rep);
    free(f);
}
END_TEST

START_TEST(test_commit_loser_after_crash_prunes) {
    set_quota("normal", "100");
    const int pass[] = {1, 1, 1, 0};
    fixture_t *a = make_verdict(0, 1, 4, pass, 1);
    fixture_t *b = make_verdict(0, 2, 4, pass, 2); /* other bytes */
    /* Attempt 2 promoted samples 0 and 1 (slots 3 and 2: listed in
     * reverse), then crashed before its manifest. */
    for (int i = 2; i < 4; i++) {
        char dk[256];
        ck_assert_int_eq(cx_commit_data_key(job, "normal", "", b->sha[i], dk,
                                            sizeof dk, NULL),
                         0);
        ck_assert_int_eq(cx_store_promote(store, b->keys[i], dk, NULL), 0);
    }
    cx_commit_t *ca = commit(a, CX_COMMIT_COMMITTED, NULL);
    ck_assert_uint_eq(count_keys("data"), 5);
    cx_commit_result_t res;
    cx_commit_t *cb = commit(b, CX_COMMIT_EXISTING, &res);
    ck_assert_uint_eq(res.removed, 2);
    ck_assert_uint_eq(cb->attempt, 1); /* the winner's record */
    ck_assert_uint_eq(count_keys("data"), 3);
    cascade__v1__commit_record__free_unpacked(ca, NULL);
    cascade__v1__commit_record__free_unpacked(cb, NULL);
    free(a);
    free(b);
}
END_TEST

START_TEST(test_commit_duplicate_index_rejected) {
    set_quota("normal", "100");
    const int pass[] = {1, 1, 1};
    fixture_t *f = make_verdict(0, 1, 3, pass, 0);
    f->s[0].index = f->s[1].index;
    cx_buf_t rec = {0};
    cx_commit_result_t res;
    cx_err_t e;
    ck_assert_int_eq(cx_commit_verdict(r, store, &f->v, &rec, &res, &e), -1);
    ck_assert_int_eq(e.code, CX_EDECODE);
    ck_assert_int_eq(e.retriable, 0);
    /* Nothing reserved, nothing promoted. */
    ck_assert_uint_eq(count_keys("data"), 0);
    char key[128];
    snprintf(key, sizeof key, "cx:job:%s:resv", job);
    redisReply *rep = cx_redis_cmd(r, NULL, "HLEN %s", key);
    ck_assert_int_eq(rep->integer, 0);
    freeReplyObject(rep);
    free(f);
}
END_TEST

START_TEST(test_commit_redis_down_is_retriable) {
    const int pass[] = {1, 1};
    fixture_t *f = make_verdict(0, 1, 2, pass, 0);
    /* Port 1 on loopback: refused at once. */
    cx_redis_t *down = cx_redis_new("redis://127.0.0.1:1/0", 200, NULL);
    ck_assert_ptr_nonnull(down);
    cx_buf_t rec = {0};
    cx_commit_result_t res;
    cx_err_t e;
    ck_assert_int_eq(cx_commit_verdict(down, store, &f->v, &rec, &res, &e),
                     -1);
    ck_assert_msg(e.retriable, "not retriable: %s", e.msg);
    ck_assert_uint_eq(rec.len, 0);
    ck_assert_uint_eq(count_keys("data"), 0);
    ck_assert_uint_eq(count_keys("manifests"), 0);
    cx_redis_destroy(down);
    /* The same verdict once Redis is back commits normally. */
    set_quota("normal", "100");
    cx_commit_t *c = commit(f, CX_COMMIT_COMMITTED, NULL);
    ck_assert_uint_eq(c->committed, 2);
    cascade__v1__commit_record__free_unpacked(c, NULL);
    free(f);
}
END_TEST

typedef struct racer {
    fixture_t *f;
    pthread_barrier_t *go;
    cx_commit_result_t res;
    int rc;
    char msg[512];
} racer_t;

static void *race(void *arg) {
    racer_t *rc = arg;
    cx_redis_t *c = cx_redis_new(cx_fixture_redis_url(), 5000, NULL);
    cx_buf_t rec = {0};
    cx_err_t e;
    pthread_barrier_wait(rc->go);
    rc->rc = c ? cx_commit_verdict(c, store, &rc->f->v, &rec, &rc->res, &e)
               : -1;
    if (rc->rc < 0) snprintf(rc->msg, sizeof rc->msg, "%s", c ? e.msg : "");
    cx_buf_free(&rec);
    cx_redis_destroy(c);
    return NULL;
}

START_TEST(test_commit_two_attempts_race) {
    set_quota("normal", "1000");
    const int pass[] = {1, 1, 0, 1, 1, 1, 1, 0, 1, 1};
    for (uint32_t unit = 0; unit < 20; unit++) {
        fixture_t *fa = make_verdict(unit, 1, 10, pass, 1);
        fixture_t *fb = make_verdict(unit, 2, 10, pass, 2);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        racer_t ra = {.f = fa, .go = &go}, rb = {.f = fb, .go = &go};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, race, &ra);
        pthread_create(&tb, NULL, race, &rb);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        pthread_barrier_destroy(&go);
        ck_assert_msg(ra.rc == 0, "a: %s", ra.msg);
        ck_assert_msg(rb.rc == 0, "b: %s", rb.msg);
        /* Exactly one of them committed. */
        ck_assert_int_eq((ra.res.outcome == CX_COMMIT_COMMITTED) +
                             (rb.res.outcome == CX_COMMIT_COMMITTED),
                         1);
        ck_assert_int_eq((ra.res.outcome == CX_COMMIT_EXISTING) +
                             (rb.res.outcome == CX_COMMIT_EXISTING),
                         1);
        /* The data of this unit is exactly what the manifest lists. */
        cx_manifest_t *m = load_manifest(fa);
        ck_assert_ptr_nonnull(m);
        ck_assert_uint_eq(m->committed, 8);
        fixture_t *won = m->attempt == 1 ? fa : fb;
        fixture_t *lost = m->attempt == 1 ? fb : fa;
        for (size_t i = 0; i < 10; i++) {
            char dk[256];
            if (!won->s[i].pass) continue;
            cx_commit_data_key(job, "normal", "", won->sha[i], dk, sizeof dk,
                               NULL);
            ck_assert_int_eq(cx_store_exists(store, dk, NULL), 1);
            cx_commit_data_key(job, "normal", "", lost->sha[i], dk, sizeof dk,
                               NULL);
            ck_assert_int_eq(cx_store_exists(store, dk, NULL), 0);
        }
        cx_manifest_free(m);
        free(fa);
        free(fb);
    }
    ck_assert_uint_eq(count_keys("manifests"), 20);
    ck_assert_uint_eq(count_keys("data"), 20 * 8);
}
END_TEST

int main(void) {
    Suite *s = suite_create("committer_commit");
    TCase *tc = tcase_create("commit");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_commit_promotes_granted);
    tcase_add_test(tc, test_commit_quota_caps_and_condition);
    tcase_add_test(tc, test_commit_redelivery);
    tcase_add_test(tc, test_commit_cancelled_job);
    tcase_add_test(tc, test_commit_dead_unit_fenced);
    tcase_add_test(tc, test_commit_missing_staged_sample);
    tcase_add_test(tc, test_commit_loser_after_crash_prunes);
    tcase_add_test(tc, test_commit_duplicate_index_rejected);
    tcase_add_test(tc, test_commit_redis_down_is_retriable);
    tcase_add_test(tc, test_commit_two_attempts_race);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    cx_fixture_redis_stop();
    return failed ? 1 : 0;
}
