/* The validator's Redis accounting against the shared stack's Redis:
 * counted once per attempt, worker statistics and their decay, automatic
 * quarantine against the pool, the privacy budget's halt, the class's
 * alignment figures, and halts (first reason wins).
 * Exits 77 (skipped) without a stack (CASCADE_TEST_ENV). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "account.h"
#include "calib.h"
#include "cx_testenv.h"

static cx_redis_t *rd;
static char tag[32], pdir[256];
static cx_profile_t *prof;

static char *hget(const char *key, const char *f) {
    cx_err_t e;
    redisReply *r = cx_redis_cmd(rd, &e, "HGET %s %s", key, f);
    ck_assert_msg(r != NULL, "%s", e.msg);
    char *s = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return s;
}

static long hnum(const char *key, const char *f) {
    char *s = hget(key, f);
    long v = s ? atol(s) : -1;
    free(s);
    return v;
}

/* A batch of `unit` by worker w for job j, class normal. */
typedef struct fx {
    cx_unit_t u;
    cx_staged_t b;
    char job[64], unit[40], worker[64], gpu[64];
} fx_t;

static void fx_init(fx_t *f, const char *job, int unit, const char *worker,
                    unsigned attempt) {
    memset(f, 0, sizeof *f);
    cascade__v1__work_unit__init(&f->u);
    cascade__v1__staged_batch__init(&f->b);
    snprintf(f->job, sizeof f->job, "%s-%s", job, tag);
    /* distinct per (job, unit) across the suite: the counting is per unit */
    unsigned h = (unsigned)unit;
    for (const char *p = job; *p; p++) h = h * 31u + (unsigned char)*p;
    snprintf(f->unit, sizeof f->unit, "%.8s%08x0000000000000000", tag, h);
    snprintf(f->worker, sizeof f->worker, "%s-%s", worker, tag);
    f->u.job_id = f->job;
    f->u.unit_id = f->unit;
    f->u.class_name = "normal";
    f->b.unit = &f->u;
    f->b.worker_id = f->worker;
    /* a pool per test, so tests do not see each other's workers */
    snprintf(f->gpu, sizeof f->gpu, "%s-%s", job, tag);
    f->b.gpu_type = f->gpu;
    f->b.attempt = attempt;
}

static const cx_quar_conf_t qc = {.enabled = 1, .min_samples = 64,
                                  .min_pool_samples = 64, .min_excess = 0.25,
                                  .alpha = 1e-6, .window = 100000};

/* A tiny real profile: 2 classes of smooth random 32x32 images. */
static void make_profile(void) {
    cx_err_t e;
    snprintf(pdir, sizeof pdir, "%s/cx-itacct-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(pdir));
    cx_feat_ws_t *ws = cx_feat_ws_new(&e);
    cx_calib_t *cal = cx_calib_new(32, 32, 16, &e);
    uint16_t px[32 * 32];
    uint64_t s = 17;
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 12; i++) {
            for (int k = 0; k < 32 * 32; k++) {
                s = s * 6364136223846793005ULL + 1442695040888963407ULL;
                px[k] = (uint16_t)(10000 + 20000 * c + (k % 32) * 500 +
                                   (s >> 54));
            }
            cx_feat_t f;
            ck_assert_int_eq(cx_feat_compute(ws, px, 32, 32, 16, &f, &e), 0);
            ck_assert_int_eq(cx_calib_add(cal, c ? "effusion" : "normal", &f,
                                          &e), 0);
        }
    cx_calib_opts_t o;
    cx_calib_opts_default(&o);
    ck_assert_msg(cx_calib_write(cal, &o, pdir, "tiny", "it", NULL, NULL,
                                 &e) == 0, "%s", e.msg);
    prof = cx_profile_load(pdir, "tiny", &e);
    ck_assert_msg(prof != NULL, "%s", e.msg);
    cx_calib_destroy(cal);
    cx_feat_ws_destroy(ws);
}

START_TEST(test_counted_once_per_attempt) {
    fx_t f;
    cx_unit_tally_t t;
    cx_account_result_t a;
    cx_err_t e;
    memset(&t, 0, sizeof t);
    t.class_index = -1;
    t.scored = 10;
    t.failed = 3;
    t.gate_fail[CX_GATE_HF_RATIO] = 3;
    t.unreadable = 1;
    fx_init(&f, "once", 1, "w", 1);
    ck_assert_msg(cx_account_unit(rd, &f.b, &t, &qc, &a, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(a.counted, 1);
    ck_assert_double_eq(a.w_samples, 11);
    char key[128];
    snprintf(key, sizeof key, "cx:gatestats:%s", f.worker);
    ck_assert_int_eq(hnum(key, "samples"), 11);
    ck_assert_int_eq(hnum(key, "failed"), 3);
    ck_assert_int_eq(hnum(key, "fail:hf_ratio"), 3);
    ck_assert_int_eq(hnum(key, "fail:decode"), 1);
    char *g = hget(key, "gpu_type");
    ck_assert_str_eq(g, f.gpu);
    free(g);
    /* redelivered: nothing counted again */
    ck_assert_int_eq(cx_account_unit(rd, &f.b, &t, &qc, &a, &e), 0);
    ck_assert_int_eq(a.counted, 0);
    ck_assert_int_eq(hnum(key, "samples"), 11);
    /* another attempt of the same unit is another batch */
    fx_init(&f, "once", 1, "w", 2);
    ck_assert_int_eq(cx_account_unit(rd, &f.b, &t, &qc, &a, &e), 0);
    ck_assert_int_eq(a.counted, 1);
    ck_assert_int_eq(hnum(key, "samples"), 22);
}
END_TEST

START_TEST(test_decay) {
    fx_t f;
    cx_unit_tally_t t;
    cx_account_result_t a;
    cx_quar_conf_t small = qc;
    small.window = 50;
    memset(&t, 0, sizeof t);
    t.scored = 60;
    t.failed = 21;
    t.gate_fail[CX_GATE_CLIP] = 21;
    fx_init(&f, "decay", 1, "wdec", 1);
    ck_assert_int_eq(cx_account_unit(rd, &f.b, &t, &small, &a, NULL), 0);
    char key[128];
    snprintf(key, sizeof key, "cx:gatestats:%s", f.worker);
    ck_assert_int_eq(hnum(key, "samples"), 30);
    ck_assert_int_eq(hnum(key, "failed"), 10);
    ck_assert_int_eq(hnum(key, "fail:clip"), 10);
}
END_TEST

START_TEST(test_quarantine) {
    fx_t f;
    cx_unit_tally_t t;
    cx_account_result_t a;
    cx_err_t e;
    memset(&t, 0, sizeof t);
    /* the pool: two healthy workers */
    t.scored = 100;
    t.failed = 2;
    fx_init(&f, "quar", 1, "good1", 1);
    ck_assert_int_eq(cx_account_unit(rd, &f.b, &t, &qc, &a, &e), 0);
    ck_assert_int_eq(a.quarantined, 0);
    fx_init(&f, "quar", 2, "good2", 1);
    ck_assert_int_eq(cx_account_unit(rd, &f.b, &t, &qc, &a, &e), 0);
    /* a noisy one: 64 samples, 60 failed */
    t.scored = 64;
    t.failed = 60;
    t.gate_fail[CX_GATE_HF_RATIO] = 60;
    fx_init(&f, "quar", 3, "noisy", 1);
    ck_assert_msg(cx_account_unit(rd, &f.b, &t, &qc, &a, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(a.quarantined, 1);
    ck_assert_double_eq(a.p_samples, 200);
    ck_assert_double_eq(a.p_failed, 4);
    ck_assert(a.p_value < 1e-6);
    char key[128];
    snprintf(key, sizeof key, "cx:quarantine:%s", f.worker);
    char *r = hget(key, "reason");
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_nonnull(strstr(r, "gate failure rate 0.938 over 64"));
    free(r);
    ck_assert_int_eq(hnum(key, "samples"), 64);
    char *job = hget(key, "job_id");
    ck_assert_str_eq(job, f.job);
    free(job);
    redisReply *m = cx_redis_cmd(rd, &e, "SISMEMBER cx:quarantined %s",
                                 f.worker);
    ck_assert_int_eq(m->integer, 1);
    freeReplyObject(m);
    /* once is enough: a second bad batch does not quarantine it again */
    fx_init(&f, "quar", 4, "noisy", 1);
    ck_assert_int_eq(cx_account_unit(rd, &f.b, &t, &qc, &a, &e), 0);
    ck_assert_int_eq(a.quarantined, 0);
    /* the healthy ones stay free */
    fx_init(&f, "quar", 5, "good1", 1);
    snprintf(key, sizeof key, "cx:quarantine:%s", f.worker);
    m = cx_redis_cmd(rd, &e, "EXISTS %s", key);
    ck_assert_int_eq(m->integer, 0);
    freeReplyObject(m);
}
END_TEST

START_TEST(test_privacy_budget_and_alignment) {
    fx_t f;
    cx_unit_tally_t t;
    cx_account_result_t a;
    cx_err_t e;
    memset(&t, 0, sizeof t);
    t.profile = prof;
    t.class_index = 0;
    t.limits = *cx_profile_limits(prof);
    t.limits.privacy_budget = 0.01;
    t.limits.privacy_min_samples = 100;
    t.scored = 16;
    t.failed = 1;
    t.checked = 16;
    t.near_copies = 1; /* floor(0.01 x 100) = 1 tolerated */
    t.nref = cx_profile_nref(prof, 0);
    t.covered = calloc((t.nref + 7) / 8 + 1, 1);
    t.covered[0] = 0x5; /* references 0 and 2 */
    t.acc = calloc(1, sizeof *t.acc);
    double x[CX_PROFILE_FD_DIM] = {0}, y[CX_PROFILE_FD_DIM] = {0};
    y[0] = 1;
    cx_dist_acc_add(t.acc, x, CX_PROFILE_FD_DIM);
    cx_dist_acc_add(t.acc, y, CX_PROFILE_FD_DIM);
    t.n_pass = 2;
    t.in_manifold = 1;
    fx_init(&f, "priv", 1, "wp", 1);
    ck_assert_msg(cx_account_unit(rd, &f.b, &t, &qc, &a, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(a.privacy_halted, 0);
    ck_assert_double_eq(a.checked, 16);
    ck_assert_double_eq(a.near, 1);
    ck_assert_uint_eq(a.q_n, 2);
    ck_assert_double_eq(a.q_precision, 0.5);
    ck_assert_double_eq_tol(a.q_recall, 2.0 / (double)t.nref, 1e-12);
    ck_assert(a.q_fd >= 0);
    char key[128];
    snprintf(key, sizeof key, "cx:job:%s:quality", f.job);
    char *fd = hget(key, "fd:normal");
    ck_assert_ptr_nonnull(fd);
    free(fd);
    /* a second near-copy is one too many */
    fx_init(&f, "priv", 2, "wp", 1);
    ck_assert_int_eq(cx_account_unit(rd, &f.b, &t, &qc, &a, &e), 0);
    ck_assert_int_eq(a.privacy_halted, 1);
    ck_assert_uint_eq(a.q_n, 4);
    snprintf(key, sizeof key, "cx:job:%s:halt", f.job);
    char *r = hget(key, "reason");
    ck_assert_ptr_nonnull(strstr(r, "privacy budget exceeded: 2 near-copies"));
    free(r);
    ck_assert_int_eq(
        hnum(key, "event"),
        CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_PRIVACY_BUDGET_EXCEEDED);
    /* later batches do not halt it again, nor change the reason */
    fx_init(&f, "priv", 3, "wp", 1);
    ck_assert_int_eq(cx_account_unit(rd, &f.b, &t, &qc, &a, &e), 0);
    ck_assert_int_eq(a.privacy_halted, 0);
    int newly = 1;
    ck_assert_int_eq(cx_account_halt(rd, f.job, 23, "other", &newly, &e), 0);
    ck_assert_int_eq(newly, 0);
    cx_vquality_t q = {f.job, "normal", 7, 1.5, 0.75, 0.25};
    ck_assert_int_eq(cx_account_batch_quality(rd, &q, &e), 0);
    snprintf(key, sizeof key, "cx:job:%s:quality", f.job);
    char *bf = hget(key, "batch_fd");
    ck_assert_str_eq(bf, "1.5");
    free(bf);
    free(t.covered);
    free(t.acc);
}
END_TEST

int main(void) {
    const char *url = cx_testenv("CASCADE_REDIS_URL");
    if (!url) {
        fprintf(stderr, "no stack (CASCADE_TEST_ENV): skipped\n");
        return 77;
    }
    cx_err_t e;
    rd = cx_redis_new(url, 5000, &e);
    if (!rd) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    snprintf(tag, sizeof tag, "%08x", (unsigned)(getpid() * 2654435761u));
    Suite *s = suite_create("validator_account");
    TCase *tc = tcase_create("redis");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, make_profile, NULL);
    tcase_add_test(tc, test_counted_once_per_attempt);
    tcase_add_test(tc, test_decay);
    tcase_add_test(tc, test_quarantine);
    tcase_add_test(tc, test_privacy_budget_and_alignment);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    cx_profile_destroy(prof);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pdir);
    if (pdir[0] && system(cmd) != 0) failed++;
    cx_redis_destroy(rd);
    return failed ? 1 : 0;
}
