/* The placement policy: GPU type, warm pools, memory, deadlines,
 * fairness, class interleaving, exclusions, estimates. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

typedef struct fx {
    cx_tput_t *m;
    cx_pol_t *p;
    int h100, a100, l40s;
    int ut;  /* "ck" 512x512x50 */
    int ck;
} fx_t;

/* prefetch_s: how close to its start a busy worker takes a queued unit
 * (most tests fill both slots at once). */
static void fx_init_prefetch(fx_t *f, double prefetch_s) {
    f->m = cx_tput_new(NULL);
    ck_assert_ptr_nonnull(f->m);
    f->h100 = cx_tput_gtype(f->m, "H100");
    f->a100 = cx_tput_gtype(f->m, "A100");
    f->l40s = cx_tput_gtype(f->m, "L40S");
    cx_tput_prior_gpu(f->m, f->h100, 38.0 / 50);
    cx_tput_prior_gpu(f->m, f->a100, 52.0 / 50);
    cx_tput_prior_gpu(f->m, f->l40s, 70.0 / 50);
    f->ut = cx_tput_utype(f->m, "ck", 512, 512, 50);
    f->ck = cx_tput_ckpt(f->m, "ck");
    cx_tput_set_ckpt(f->m, f->ck, 90, 0);
    cx_pol_conf_t c;
    cx_pol_conf_default(&c);
    c.prefetch_s = prefetch_s;
    f->p = cx_pol_new(&c, f->m);
    ck_assert_ptr_nonnull(f->p);
}

static void fx_init(fx_t *f) { fx_init_prefetch(f, 1e9); }

static void fx_free(fx_t *f) {
    cx_pol_destroy(f->p);
    cx_tput_destroy(f->m);
}

static int worker(fx_t *f, const char *id, int g, const char *warm_ckpt) {
    int w = cx_pol_worker(f->p, id);
    ck_assert_int_ge(w, 0);
    cx_pol_wspec_t s = {.gtype = g, .alive = 1, .placeable = 1};
    cx_pol_worker_set(f->p, w, &s);
    if (warm_ckpt) {
        int k = cx_tput_ckpt(f->m, warm_ckpt);
        cx_pol_worker_warm(f->p, w, &k, 1);
    }
    return w;
}

static int unit_ut(fx_t *f, const char *job, uint32_t cls, uint64_t order,
                   int ut) {
    char id[64], cname[16];
    snprintf(id, sizeof id, "%s-u%u-%llu", job, cls, (unsigned long long)order);
    snprintf(cname, sizeof cname, "c%u", cls);
    int j = cx_pol_job(f->p, job);
    cx_pol_unit_spec_t s = {.id = id, .job = j, .class_index = cls,
                            .class_name = cname, .utype = ut, .samples = 50,
                            .order = order};
    int u = cx_pol_unit_add(f->p, &s);
    ck_assert_int_ge(u, 0);
    return u;
}

static int unit(fx_t *f, const char *job, uint32_t cls, uint64_t order) {
    return unit_ut(f, job, cls, order, f->ut);
}

static int next(fx_t *f, double now, cx_pol_pick_t *pk) {
    return cx_pol_next(f->p, now, pk);
}

START_TEST(test_prefers_faster_gpu_type) {
    fx_t f;
    fx_init(&f);
    int a = worker(&f, "a100-0", f.a100, "ck");
    int h = worker(&f, "h100-0", f.h100, "ck");
    int l = worker(&f, "l40s-0", f.l40s, "ck");
    (void)a;
    (void)l;
    int u = unit(&f, "job", 0, 0);
    cx_pol_pick_t pk;
    cx_pol_round(f.p, 1000);
    ck_assert_int_eq(next(&f, 1000, &pk), 1);
    ck_assert_int_eq(pk.unit, u);
    ck_assert_int_eq(pk.worker, h);
    ck_assert_double_eq_tol(pk.finish_s - pk.start_s, 38, 1e-9);
    ck_assert_int_eq(pk.cold, 0);
    ck_assert_int_eq(next(&f, 1000, &pk), 0);
    fx_free(&f);
}
END_TEST

START_TEST(test_learned_rate_overrides_prior) {
    /* The priors say H100 is faster; measurements say this H100 type is
     * slow for this unit type: the A100 wins. */
    fx_t f;
    fx_init(&f);
    worker(&f, "h100-0", f.h100, "ck");
    int a = worker(&f, "a100-0", f.a100, "ck");
    for (int i = 0; i < 30; i++) cx_tput_observe(f.m, f.ut, f.h100, 50, 80);
    for (int i = 0; i < 30; i++) cx_tput_observe(f.m, f.ut, f.a100, 50, 52);
    unit(&f, "job", 0, 0);
    cx_pol_pick_t pk;
    cx_pol_round(f.p, 0);
    ck_assert_int_eq(next(&f, 0, &pk), 1);
    ck_assert_int_eq(pk.worker, a);
    fx_free(&f);
}
END_TEST

START_TEST(test_warm_worker_over_cold_when_load_outweighs_wait) {
    fx_t f;
    fx_init_prefetch(&f, 10);
    int warm = worker(&f, "warm", f.h100, "ck");
    int cold = worker(&f, "cold", f.h100, NULL);
    /* The warm worker runs a unit (38 s): a second unit would wait 38 s
     * there, against a 90 s cold load on the idle worker. It is held for
     * the warm worker rather than loaded cold... */
    int u0 = unit(&f, "job", 0, 0);
    cx_pol_unit_leased(f.p, u0, warm, 0);
    int u1 = unit(&f, "job", 0, 1);
    cx_pol_pick_t pk;
    cx_pol_round(f.p, 0);
    ck_assert_int_eq(next(&f, 0, &pk), 0);
    ck_assert_int_eq(cx_pol_unit_state(f.p, u1), CX_POL_PENDING);
    /* ...and queued there once the running unit is about to end. */
    cx_pol_round(f.p, 30);
    ck_assert_int_eq(next(&f, 30, &pk), 1);
    ck_assert_int_eq(pk.unit, u1);
    ck_assert_int_eq(pk.worker, warm);
    ck_assert_double_eq_tol(pk.start_s, 38, 1e-9);
    ck_assert_int_eq(pk.cold, 0);
    /* The warm worker is full (76 s of work queued); a third unit is
     * still held: it would start there in 46 s, before a 90 s load would
     * end on the idle worker. */
    unit(&f, "job", 0, 2);
    ck_assert_int_eq(next(&f, 30, &pk), 0);
    (void)cold;
    fx_free(&f);
}
END_TEST

START_TEST(test_cold_worker_when_wait_outweighs_load) {
    fx_t f;
    fx_init(&f);
    int warm = worker(&f, "warm", f.h100, "ck");
    int cold = worker(&f, "cold", f.h100, NULL);
    /* The warm worker's queue holds a long unit: 500 samples = 380 s. */
    int j = cx_pol_job(f.p, "job");
    cx_pol_unit_spec_t s = {.id = "long", .job = j, .class_index = 0,
                            .class_name = "c0", .utype = f.ut,
                            .samples = 500};
    int ul = cx_pol_unit_add(f.p, &s);
    cx_pol_unit_leased(f.p, ul, warm, 0);
    unit(&f, "job", 0, 1);
    cx_pol_pick_t pk;
    cx_pol_round(f.p, 0);
    ck_assert_int_eq(next(&f, 0, &pk), 1);
    ck_assert_int_eq(pk.worker, cold);
    ck_assert_int_eq(pk.cold, 1);
    ck_assert_double_eq_tol(pk.finish_s, 90 + 38, 1e-9);
    /* The prediction: the checkpoint is warm there now. */
    ck_assert_int_eq(cx_pol_worker_is_warm(f.p, cold, f.ck), 1);
    fx_free(&f);
}
END_TEST

START_TEST(test_never_places_what_does_not_fit) {
    fx_t f;
    fx_init(&f);
    int big = cx_tput_ckpt(f.m, "big");
    cx_tput_set_ckpt(f.m, big, 60, 40ull << 30);
    int ut_big = cx_tput_utype(f.m, "big", 512, 512, 50);
    int w = cx_pol_worker(f.p, "small");
    cx_pol_wspec_t s = {.gtype = f.l40s, .mem_budget = 24ull << 30,
                        .alive = 1, .placeable = 1};
    cx_pol_worker_set(f.p, w, &s);
    int u = unit_ut(&f, "job", 0, 0, ut_big);
    cx_pol_pick_t pk;
    cx_pol_round(f.p, 0);
    ck_assert_int_eq(next(&f, 0, &pk), 0);
    ck_assert_int_eq(cx_pol_unit_state(f.p, u), CX_POL_PENDING);
    /* A worker with room takes it, even a slower one. */
    int roomy = cx_pol_worker(f.p, "roomy");
    cx_pol_wspec_t s2 = {.gtype = f.a100, .mem_budget = 80ull << 30,
                         .alive = 1, .placeable = 1};
    cx_pol_worker_set(f.p, roomy, &s2);
    cx_pol_round(f.p, 0);
    ck_assert_int_eq(next(&f, 0, &pk), 1);
    ck_assert_int_eq(pk.worker, roomy);
    fx_free(&f);
}
END_TEST

START_TEST(test_unavailable_workers_get_nothing) {
    fx_t f;
    fx_init(&f);
    int d = cx_pol_worker(f.p, "draining"), q = cx_pol_worker(f.p, "quar"),
        np = cx_pol_worker(f.p, "nopart"), dead = cx_pol_worker(f.p, "dead");
    cx_pol_wspec_t s = {.gtype = f.h100, .alive = 1, .placeable = 1};
    s.draining = 1;
    cx_pol_worker_set(f.p, d, &s);
    s.draining = 0;
    s.quarantined = 1;
    cx_pol_worker_set(f.p, q, &s);
    s.quarantined = 0;
    s.placeable = 0;
    cx_pol_worker_set(f.p, np, &s);
    s.placeable = 1;
    s.alive = 0;
    cx_pol_worker_set(f.p, dead, &s);
    unit(&f, "job", 0, 0);
    cx_pol_pick_t pk;
    cx_pol_round(f.p, 0);
    ck_assert_int_eq(next(&f, 0, &pk), 0);
    /* Release from quarantine: placed. */
    s.alive = 1;
    cx_pol_worker_set(f.p, q, &s);
    cx_pol_round(f.p, 0);
    ck_assert_int_eq(next(&f, 0, &pk), 1);
    ck_assert_int_eq(pk.worker, q);
    fx_free(&f);
}
END_TEST

START_TEST(test_exclusion_of_failed_worker) {
    fx_t f;
    fx_init(&f);
    int h = worker(&f, "h", f.h100, "ck");
    int a = worker(&f, "a", f.a100, "ck");
    int u = unit(&f, "job", 0, 0);
    cx_pol_unit_exclude(f.p, u, h);
    cx_pol_pick_t pk;
    cx_pol_round(f.p, 0);
    ck_assert_int_eq(next(&f, 0, &pk), 1);
    ck_assert_int_eq(pk.worker, a);
    /* It fails there too: with every eligible worker failed, exclusion is
     * ignored so the unit can still run (the faster one again). */
    cx_pol_unit_exclude(f.p, u, a);
    cx_pol_unit_requeue(f.p, u, 2, 10);
    ck_assert_int_eq(cx_pol_unit_state(f.p, u), CX_POL_PENDING);
    cx_pol_round(f.p, 10);
    ck_assert_int_eq(next(&f, 10, &pk), 1);
    ck_assert_int_eq(pk.worker, h);
    ck_assert_uint_eq(cx_pol_unit_attempt(f.p, u), 2);
    fx_free(&f);
}
END_TEST

START_TEST(test_deadline_job_overtakes_bulk_job) {
    fx_t f;
    fx_init(&f);
    worker(&f, "w0", f.h100, "ck");
    int bulk = cx_pol_job(f.p, "bulk"), rush = cx_pol_job(f.p, "rush");
    cx_pol_job_set(f.p, bulk, "acme", 5, 0, 1);
    for (int i = 0; i < 100; i++) unit(&f, "bulk", 0, (uint64_t)i);
    cx_pol_pick_t pk;
    cx_pol_round(f.p, 0);
    ck_assert_int_eq(next(&f, 0, &pk), 1);
    ck_assert_int_eq(cx_pol_unit_job(f.p, pk.unit), bulk);
    cx_pol_unit_done(f.p, pk.unit, 38);
    /* Another tenant's job, 10 units due in 600 s: a fair half of one
     * worker would take 760 s, so it is urgent and goes first. */
    cx_pol_job_set(f.p, rush, "other", 5, 600 * 1000, 2);
    for (int i = 0; i < 10; i++) unit(&f, "rush", 0, (uint64_t)i);
    cx_pol_round(f.p, 38);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(next(&f, 38, &pk), 1);
        ck_assert_int_eq(cx_pol_unit_job(f.p, pk.unit), rush);
    }
    fx_free(&f);
}
END_TEST

START_TEST(test_same_tenant_earliest_deadline_first) {
    fx_t f;
    fx_init(&f);
    worker(&f, "w0", f.h100, "ck");
    worker(&f, "w1", f.h100, "ck");
    int bulk = cx_pol_job(f.p, "bulk"), soon = cx_pol_job(f.p, "soon");
    cx_pol_job_set(f.p, bulk, "acme", 5, 0, 1);
    cx_pol_job_set(f.p, soon, "acme", 5, (int64_t)1e9 * 1000, 2);
    for (int i = 0; i < 20; i++) unit(&f, "bulk", 0, (uint64_t)i);
    for (int i = 0; i < 20; i++) unit(&f, "soon", 0, (uint64_t)i);
    cx_pol_pick_t pk;
    cx_pol_round(f.p, 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(next(&f, 0, &pk), 1);
        ck_assert_int_eq(cx_pol_unit_job(f.p, pk.unit), soon);
    }
    fx_free(&f);
}
END_TEST

START_TEST(test_priority_then_tenant_fair_share) {
    fx_t f;
    fx_init(&f);
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "w%d", i);
        worker(&f, id, f.h100, "ck");
    }
    int a = cx_pol_job(f.p, "a"), b = cx_pol_job(f.p, "b"),
        lo = cx_pol_job(f.p, "lo");
    cx_pol_job_set(f.p, a, "t1", 5, 0, 1);
    cx_pol_job_set(f.p, b, "t2", 5, 0, 2);
    cx_pol_job_set(f.p, lo, "t3", 1, 0, 0);
    for (int i = 0; i < 20; i++) {
        unit(&f, "a", 0, (uint64_t)i);
        unit(&f, "b", 0, (uint64_t)i);
        unit(&f, "lo", 0, (uint64_t)i);
    }
    cx_pol_pick_t pk;
    int count[3] = {0};
    cx_pol_round(f.p, 0);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(next(&f, 0, &pk), 1);
        count[cx_pol_unit_job(f.p, pk.unit)]++;
    }
    ck_assert_int_eq(next(&f, 0, &pk), 0);
    /* Two tenants of priority 5 share the 8 slots; priority 1 waits. */
    ck_assert_int_eq(count[a], 4);
    ck_assert_int_eq(count[b], 4);
    ck_assert_int_eq(count[lo], 0);
    fx_free(&f);
}
END_TEST

START_TEST(test_classes_track_target) {
    fx_t f;
    fx_init(&f);
    for (int i = 0; i < 10; i++) {
        char id[8];
        snprintf(id, sizeof id, "w%d", i);
        worker(&f, id, f.h100, "ck");
    }
    int j = cx_pol_job(f.p, "job");
    const uint64_t quota[3] = {4000, 3500, 2500};
    for (uint32_t c = 0; c < 3; c++) {
        for (uint64_t i = 0; i < quota[c] / 50; i++) unit(&f, "job", c, i);
        cx_pol_class_set(f.p, j, cx_pol_class(f.p, j, c, NULL), quota[c], 0,
                         0, 0);
    }
    double placed[3] = {0};
    cx_pol_pick_t pk;
    double now = 0;
    for (int step = 0; step < 150; step++) {
        cx_pol_round(f.p, now);
        while (next(&f, now, &pk)) {
            placed[cx_pol_unit_class(f.p, pk.unit)] += 50;
            cx_pol_unit_done(f.p, pk.unit, now);
        }
        double total = placed[0] + placed[1] + placed[2];
        for (int c = 0; c < 3; c++) {
            double target = (double)quota[c] / 10000.0 * total;
            /* Never more than one unit away from the target share. */
            ck_assert(fabs(placed[c] - target) <= 50.0);
        }
        now += 1;
    }
    fx_free(&f);
}
END_TEST

START_TEST(test_low_pass_class_issued_more) {
    fx_t f;
    fx_init(&f);
    worker(&f, "w0", f.h100, "ck");
    int j = cx_pol_job(f.p, "job");
    for (uint32_t c = 0; c < 2; c++)
        for (uint64_t i = 0; i < 100; i++) unit(&f, "job", c, i);
    /* Equal quotas; class 1 passes half of what it generates. */
    cx_pol_class_set(f.p, j, 0, 5000, 0, 1000, 1000);
    cx_pol_class_set(f.p, j, 1, 5000, 0, 1000, 500);
    int count[2] = {0};
    cx_pol_pick_t pk;
    for (int i = 0; i < 60; i++) {
        cx_pol_round(f.p, i);
        ck_assert_int_eq(next(&f, i, &pk), 1);
        count[cx_pol_unit_class(f.p, pk.unit)]++;
        cx_pol_unit_done(f.p, pk.unit, i);
    }
    ck_assert_int_eq(count[0], 20);
    ck_assert_int_eq(count[1], 40);
    fx_free(&f);
}
END_TEST

START_TEST(test_eviction_spares_needed_checkpoint) {
    fx_t f;
    fx_init(&f);
    int ka = cx_tput_ckpt(f.m, "A"), kb = cx_tput_ckpt(f.m, "B"),
        kc = cx_tput_ckpt(f.m, "C");
    for (int k = ka; k <= kc; k++) cx_tput_set_ckpt(f.m, k, 90, 30ull << 30);
    int uta = cx_tput_utype(f.m, "A", 512, 512, 50);
    int utc = cx_tput_utype(f.m, "C", 512, 512, 50);
    cx_pol_wspec_t s = {.gtype = f.h100, .mem_budget = 40ull << 30,
                        .alive = 1, .placeable = 1};
    /* w_a holds A (which a backlog needs), w_b holds B (nobody needs). */
    int wa = cx_pol_worker(f.p, "w_a"), wb = cx_pol_worker(f.p, "w_b");
    cx_pol_worker_set(f.p, wa, &s);
    cx_pol_worker_set(f.p, wb, &s);
    cx_pol_worker_warm(f.p, wa, &ka, 1);
    cx_pol_worker_warm(f.p, wb, &kb, 1);
    /* A unit of A runs on w_a; more A units wait behind it. */
    int a0 = unit_ut(&f, "ja", 0, 0, uta);
    cx_pol_unit_leased(f.p, a0, wa, 0);
    for (int i = 1; i < 5; i++) unit_ut(&f, "ja", 0, (uint64_t)i, uta);
    int jc = cx_pol_job(f.p, "jc");
    cx_pol_job_set(f.p, jc, "", 9, 0, 0); /* C's job goes first */
    unit_ut(&f, "jc", 0, 0, utc);
    cx_pol_pick_t pk;
    cx_pol_round(f.p, 0);
    ck_assert_int_eq(next(&f, 0, &pk), 1);
    ck_assert_int_eq(cx_pol_unit_job(f.p, pk.unit), jc);
    /* Loading C evicts B on w_b, not A on w_a (both otherwise equal). */
    ck_assert_int_eq(pk.worker, wb);
    fx_free(&f);
}
END_TEST

START_TEST(test_urgent_job_may_evict) {
    /* As above, but w_a (holding the needed A) is an H100 and w_b an A100:
     * a bulk job's unit of C still spares A (14 s slower beats a 90 s
     * reload for A's backlog); an urgent job's takes the faster worker. */
    fx_t f;
    fx_init(&f);
    int ka = cx_tput_ckpt(f.m, "A"), kb = cx_tput_ckpt(f.m, "B"),
        kc = cx_tput_ckpt(f.m, "C");
    for (int k = ka; k <= kc; k++) cx_tput_set_ckpt(f.m, k, 90, 30ull << 30);
    int uta = cx_tput_utype(f.m, "A", 512, 512, 50);
    int utc = cx_tput_utype(f.m, "C", 512, 512, 50);
    cx_pol_wspec_t s = {.mem_budget = 40ull << 30, .alive = 1,
                        .placeable = 1};
    int wa = cx_pol_worker(f.p, "w_a"), wb = cx_pol_worker(f.p, "w_b");
    s.gtype = f.h100;
    cx_pol_worker_set(f.p, wa, &s);
    s.gtype = f.a100;
    cx_pol_worker_set(f.p, wb, &s);
    cx_pol_worker_warm(f.p, wa, &ka, 1);
    cx_pol_worker_warm(f.p, wb, &kb, 1);
    for (int i = 0; i < 5; i++) unit_ut(&f, "ja", 0, (uint64_t)i, uta);
    int bulk = cx_pol_job(f.p, "bulk");
    cx_pol_job_set(f.p, bulk, "t", 9, 0, 0);
    int ub = unit_ut(&f, "bulk", 0, 0, utc);
    cx_pol_pick_t pk;
    cx_pol_round(f.p, 0);
    ck_assert_int_eq(next(&f, 0, &pk), 1);
    ck_assert_int_eq(pk.unit, ub);
    ck_assert_int_eq(pk.worker, wb);
    cx_pol_unit_drop(f.p, ub, 0);
    cx_pol_worker_warm(f.p, wb, &kb, 1);
    /* Due in 30 s: urgent (50 samples at the pool's 2.28 samples/s is
     * 22 s of the whole pool, 44 s of a fair half). */
    int rush = cx_pol_job(f.p, "rush");
    cx_pol_job_set(f.p, rush, "u", 9, 30 * 1000, 1);
    int ur = unit_ut(&f, "rush", 0, 0, utc);
    cx_pol_round(f.p, 0);
    ck_assert_int_eq(next(&f, 0, &pk), 1);
    ck_assert_int_eq(pk.unit, ur);
    ck_assert_int_eq(pk.worker, wa);
    fx_free(&f);
}
END_TEST

START_TEST(test_late_job_reported) {
    fx_t f;
    fx_init(&f);
    worker(&f, "w0", f.h100, "ck");
    worker(&f, "w1", f.a100, "ck");
    int late = cx_pol_job(f.p, "late"), fine = cx_pol_job(f.p, "fine");
    /* 40 units of 50 on an H100 + an A100: ~ 2000 / (1/0.76 + 1/1.04)
     * = 878 s of work. */
    cx_pol_job_set(f.p, late, "t", 5, 600 * 1000, 1);
    cx_pol_job_set(f.p, fine, "u", 5, 0, 2);
    for (int i = 0; i < 40; i++) unit(&f, "late", 0, (uint64_t)i);
    cx_pol_eta_t e;
    cx_pol_job_eta(f.p, late, 0, &e);
    ck_assert_int_eq(e.known, 1);
    ck_assert_int_eq(e.late, 1);
    ck_assert_int_eq(e.urgent, 1);
    ck_assert_double_eq_tol(e.eta_s, 2000 / (1 / 0.76 + 1 / 1.04), 1);
    ck_assert(e.lo_s < e.eta_s && e.eta_s < e.hi_s);
    ck_assert(e.slack_s < 0);
    ck_assert_uint_eq(e.nclasses, 1);
    ck_assert_double_eq_tol(e.cls[0].eta_s, e.eta_s, 1e-6);
    /* With a later deadline it is on time. */
    cx_pol_job_set(f.p, late, "t", 5, 3600 * 1000, 1);
    cx_pol_job_eta(f.p, late, 0, &e);
    ck_assert_int_eq(e.late, 0);
    ck_assert(e.slack_s > 0);
    /* A job with no units and no quota is done now. */
    cx_pol_job_eta(f.p, fine, 5, &e);
    ck_assert_int_eq(e.known, 1);
    ck_assert_double_eq_tol(e.eta_s, 5, 1e-9);
    fx_free(&f);
}
END_TEST

START_TEST(test_eta_counts_jobs_ahead) {
    fx_t f;
    fx_init(&f);
    worker(&f, "w0", f.h100, "ck");
    int hi = cx_pol_job(f.p, "hi"), lo = cx_pol_job(f.p, "lo");
    cx_pol_job_set(f.p, hi, "t", 9, 0, 1);
    cx_pol_job_set(f.p, lo, "t", 1, 0, 2);
    for (int i = 0; i < 10; i++) {
        unit(&f, "hi", 0, (uint64_t)i);
        unit(&f, "lo", 0, (uint64_t)i);
    }
    cx_pol_eta_t eh, el;
    cx_pol_job_eta(f.p, hi, 0, &eh);
    cx_pol_job_eta(f.p, lo, 0, &el);
    ck_assert_double_eq_tol(eh.eta_s, 380, 1e-6);
    ck_assert_double_eq_tol(el.eta_s, 760, 1e-6);
    /* No capacity: unknown. */
    fx_t g;
    fx_init(&g);
    unit(&g, "x", 0, 0);
    cx_pol_job_eta(g.p, cx_pol_job_find(g.p, "x"), 0, &eh);
    ck_assert_int_eq(eh.known, 0);
    fx_free(&g);
    fx_free(&f);
}
END_TEST

START_TEST(test_index_bookkeeping) {
    fx_t f;
    fx_init(&f);
    int w = worker(&f, "w0", f.h100, "ck");
    int u0 = unit(&f, "job", 0, 0), u1 = unit(&f, "job", 0, 1);
    cx_pol_stats_t st;
    cx_pol_stats(f.p, &st);
    ck_assert_uint_eq(st.pending_units, 2);
    ck_assert_uint_eq(st.free_slots, 2);
    /* Duplicate ids are refused. */
    int j = cx_pol_job(f.p, "job");
    cx_pol_unit_spec_t dup = {.id = "job-u0-0", .job = j, .utype = f.ut,
                              .samples = 1};
    ck_assert_int_eq(cx_pol_unit_add(f.p, &dup), -2);
    cx_pol_pick_t pk;
    cx_pol_round(f.p, 0);
    ck_assert_int_eq(next(&f, 0, &pk), 1);
    ck_assert_int_eq(pk.unit, u0);
    cx_pol_stats(f.p, &st);
    ck_assert_uint_eq(st.pending_units, 1);
    ck_assert_uint_eq(st.inflight_units, 1);
    ck_assert_uint_eq(st.free_slots, 1);
    ck_assert_int_eq(cx_pol_unit_worker(f.p, u0), w);
    /* Requeued at the front: placed again before u1. */
    cx_pol_unit_requeue(f.p, u0, 1, 5);
    cx_pol_round(f.p, 5);
    ck_assert_int_eq(next(&f, 5, &pk), 1);
    ck_assert_int_eq(pk.unit, u0);
    ck_assert_int_eq(next(&f, 5, &pk), 1);
    ck_assert_int_eq(pk.unit, u1);
    ck_assert_int_eq(next(&f, 5, &pk), 0);
    int ids[4];
    ck_assert_uint_eq(cx_pol_worker_units(f.p, w, ids, 4), 2);
    cx_pol_unit_done(f.p, u0, 40);
    cx_pol_unit_drop(f.p, u1, 40);
    cx_pol_stats(f.p, &st);
    ck_assert_uint_eq(st.pending_units + st.inflight_units, 0);
    ck_assert_int_eq(cx_pol_unit_find(f.p, "job-u0-0"), -1);
    ck_assert_int_eq(cx_pol_job_forget(f.p, j), 1);
    /* Handles are reused; old ids stay gone. */
    int u2 = unit(&f, "job", 0, 2);
    ck_assert(u2 == u0 || u2 == u1);
    ck_assert_int_eq(cx_pol_job_live(f.p, j), 1);
    fx_free(&f);
}
END_TEST

START_TEST(test_issue_shortfall_over_issues_low_pass) {
    ck_assert_uint_eq(cx_pol_issue_shortfall(1000, 0, 0, 1.0), 1000);
    /* Half pass: twice the need plus two binomial standard deviations
     * (o/2 - 2 sqrt(o/4) >= 1000 -> o = 2092). */
    ck_assert_uint_eq(cx_pol_issue_shortfall(1000, 0, 0, 0.5), 2092);
    ck_assert_uint_eq(cx_pol_issue_shortfall(1000, 400, 1000, 0.5), 272);
    ck_assert_uint_eq(cx_pol_issue_shortfall(1000, 500, 1000, 0.5), 66);
    ck_assert_uint_eq(cx_pol_issue_shortfall(1000, 500, 1100, 0.5), 0);
    ck_assert_uint_eq(cx_pol_issue_shortfall(1000, 1000, 0, 0.5), 0);
    ck_assert_uint_eq(cx_pol_issue_shortfall(1000, 1200, 0, 0.5), 0);
    /* Out-of-range pass rates read as 1 (the old arithmetic). */
    ck_assert_uint_eq(cx_pol_issue_shortfall(1000, 100, 200, 0), 700);
    ck_assert_uint_eq(cx_pol_issue_shortfall(1000, 100, 200, 7), 700);
    ck_assert_double_eq_tol(cx_pol_pass_rate(0, 0, 50, 0.05), 1, 1e-12);
    ck_assert_double_eq_tol(cx_pol_pass_rate(49, 0, 50, 0.05), 1, 1e-12);
    ck_assert_double_eq_tol(cx_pol_pass_rate(100, 80, 50, 0.05), 0.8, 1e-12);
    ck_assert_double_eq_tol(cx_pol_pass_rate(100, 1, 50, 0.05), 0.05, 1e-12);
}
END_TEST

int main(void) {
    Suite *s = suite_create("sched_policy");
    TCase *tc = tcase_create("placement");
    tcase_add_test(tc, test_prefers_faster_gpu_type);
    tcase_add_test(tc, test_learned_rate_overrides_prior);
    tcase_add_test(tc, test_warm_worker_over_cold_when_load_outweighs_wait);
    tcase_add_test(tc, test_cold_worker_when_wait_outweighs_load);
    tcase_add_test(tc, test_never_places_what_does_not_fit);
    tcase_add_test(tc, test_unavailable_workers_get_nothing);
    tcase_add_test(tc, test_exclusion_of_failed_worker);
    tcase_add_test(tc, test_eviction_spares_needed_checkpoint);
    tcase_add_test(tc, test_urgent_job_may_evict);
    suite_add_tcase(s, tc);
    tc = tcase_create("priorities");
    tcase_add_test(tc, test_deadline_job_overtakes_bulk_job);
    tcase_add_test(tc, test_same_tenant_earliest_deadline_first);
    tcase_add_test(tc, test_priority_then_tenant_fair_share);
    tcase_add_test(tc, test_classes_track_target);
    tcase_add_test(tc, test_low_pass_class_issued_more);
    suite_add_tcase(s, tc);
    tc = tcase_create("estimates");
    tcase_add_test(tc, test_late_job_reported);
    tcase_add_test(tc, test_eta_counts_jobs_ahead);
    tcase_add_test(tc, test_issue_shortfall_over_issues_low_pass);
    suite_add_tcase(s, tc);
    tc = tcase_create("index");
    tcase_add_test(tc, test_index_bookkeeping);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
