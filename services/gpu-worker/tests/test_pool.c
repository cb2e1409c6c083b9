/* The warm pool with the example plug-in: hits and misses, LRU eviction
 * within the budget, models in use never evicted, refusal of what cannot
 * fit, failed loads (corrupt checkpoint, wrong size, unknown name) that
 * leave the pool serving, and its metrics. Publishing to Redis is covered
 * by it_warm_pool (needs the stack). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/metrics.h"
#include "pool.h"

static char dir[64];
static cx_plugins_t *ps;
static cx_metrics_t *metrics;
static uint64_t unit; /* bytes of one 64x64 procgen model */

static void write_ckpt(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s.procgen", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/cx-pool-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *good = "procgen 1\nmax_size 256\nclass normal blobs=3\n";
    write_ckpt("a", good);
    write_ckpt("b", good);
    write_ckpt("c", good);
    write_ckpt("corrupt", "procgen 1\nclass normal blobs=many\n");
    cx_err_t err = {0};
    ps = cx_plugins_new(&err);
    ck_assert_int_eq(cx_plugins_add(ps, PROCGEN_SO, &err), 0);
    metrics = cx_metrics_new();
    cx_genplug_args_t a = {.struct_size = sizeof a,
                           .checkpoint = "x",
                           .device = "cpu",
                           .width = 64,
                           .height = 64};
    ck_assert_int_eq(
        cx_plugin_estimate(cx_plugins_at(ps, 0), &a, &unit, &err), 0);
}

static void teardown(void) {
    cx_plugins_destroy(ps);
    cx_metrics_destroy(metrics);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static cx_warm_t *pool(uint64_t budget, size_t max_models) {
    cx_warm_conf_t c = {.device = "cpu",
                        .checkpoint_dir = dir,
                        .budget_bytes = budget,
                        .max_models = max_models,
                        .max_batch = 2};
    cx_err_t err = {0};
    cx_warm_t *w = cx_warm_new(&c, ps, metrics, &err);
    ck_assert_msg(w != NULL, "%s", err.msg);
    return w;
}

static double metric(const char *name) {
    return cx_metric_value(cx_metrics_counter(metrics, name, "", NULL, NULL));
}

static cx_warm_model_t *get(cx_warm_t *w, const char *name,
                            cx_warm_info_t *info) {
    cx_err_t err = {0};
    cx_warm_model_t *m = cx_warm_acquire(w, name, 64, 64, info, &err);
    ck_assert_msg(m != NULL, "%s: %s", name, err.msg);
    return m;
}

START_TEST(test_hit_miss_lru) {
    cx_warm_t *w = pool(unit * 5 / 2, 0); /* room for two */
    cx_warm_info_t info;
    cx_warm_release(w, get(w, "a", &info));
    ck_assert_int_eq(info.hit, 0);
    ck_assert_double_ge(info.load_ms, 0);
    ck_assert_uint_eq(info.mem_bytes, unit);
    cx_warm_release(w, get(w, "b", &info));
    cx_warm_release(w, get(w, "a", &info)); /* a is now the newer */
    ck_assert_int_eq(info.hit, 1);
    ck_assert_double_eq(info.load_ms, 0);
    ck_assert_uint_eq(cx_warm_used(w), 2 * unit);
    cx_warm_release(w, get(w, "c", &info)); /* evicts b */
    ck_assert_int_eq(info.hit, 0);
    ck_assert_uint_eq(info.evicted, 1);
    ck_assert(cx_warm_has(w, "a", 64, 64));
    ck_assert(!cx_warm_has(w, "b", 64, 64));
    ck_assert(cx_warm_has(w, "c", 64, 64));
    ck_assert_uint_eq(cx_warm_count(w), 2);
    /* Another size is another model. */
    cx_err_t err = {0};
    cx_warm_model_t *m = cx_warm_acquire(w, "a", 32, 32, &info, &err);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(info.hit, 0);
    cx_warm_release(w, m);
    ck_assert_uint_eq(cx_warm_hits(w), 1);
    ck_assert_uint_eq(cx_warm_misses(w), 4);
    ck_assert_double_eq(metric("cascade_pool_hits_total"), 1);
    ck_assert_double_eq(metric("cascade_pool_misses_total"), 4);
    ck_assert_double_ge(metric("cascade_pool_evictions_total"), 1);
    cx_warm_destroy(w);
}
END_TEST

START_TEST(test_max_models) {
    cx_warm_t *w = pool(unit * 100, 1);
    cx_warm_info_t info;
    cx_warm_release(w, get(w, "a", &info));
    cx_warm_release(w, get(w, "b", &info));
    ck_assert_uint_eq(info.evicted, 1);
    ck_assert_uint_eq(cx_warm_count(w), 1);
    ck_assert(cx_warm_has(w, "b", 64, 64));
    cx_warm_destroy(w);
}
END_TEST

/* A model in use is never evicted: a second one that does not fit beside
 * it is refused, with a reason, and fits once the first is released. */
START_TEST(test_in_use_not_evicted) {
    cx_warm_t *w = pool(unit * 3 / 2, 0); /* room for one */
    cx_warm_info_t info;
    cx_warm_model_t *a = get(w, "a", &info);
    cx_err_t err = {0};
    ck_assert_ptr_null(cx_warm_acquire(w, "b", 64, 64, &info, &err));
    ck_assert_int_eq(err.code, CX_ENOMEM);
    ck_assert_int_eq(err.retriable, 0);
    ck_assert_msg(strstr(err.msg, "held by 1 model(s) in use"), "%s",
                  err.msg);
    ck_assert(cx_warm_has(w, "a", 64, 64));
    /* The held model still generates. */
    uint16_t *px = calloc(64 * 64, 2);
    uint64_t seed = 1;
    uint32_t index = 0;
    cx_genplug_batch_t b = {.struct_size = sizeof b, .sampler = 1, .steps = 2,
                            .guidance_scale = 1, .bit_depth = 8, .count = 1,
                            .seeds = &seed, .indices = &index, .out = px};
    ck_assert_int_eq(cx_plugin_gen_generate(cx_warm_gen(a), &b, &err), 0);
    free(px);
    cx_warm_release(w, a);
    cx_warm_release(w, get(w, "b", &info));
    ck_assert_uint_eq(info.evicted, 1);
    ck_assert_double_eq(metric("cascade_pool_refused_total"), 1);
    cx_warm_destroy(w);
}
END_TEST

START_TEST(test_over_budget_refused) {
    cx_warm_t *w = pool(unit / 2, 0);
    cx_err_t err = {0};
    ck_assert_ptr_null(cx_warm_acquire(w, "a", 64, 64, NULL, &err));
    ck_assert_int_eq(err.code, CX_ENOMEM);
    ck_assert_msg(strstr(err.msg, "over the warm pool's budget"), "%s",
                  err.msg);
    ck_assert_uint_eq(cx_warm_count(w), 0);
    ck_assert_uint_eq(cx_warm_used(w), 0);
    /* A smaller size of the same checkpoint fits. */
    cx_warm_model_t *m = cx_warm_acquire(w, "a", 16, 16, NULL, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    cx_warm_release(w, m);
    cx_warm_destroy(w);
}
END_TEST

/* Failed loads leave the pool as it was and the next unit is served. */
START_TEST(test_failed_loads_keep_serving) {
    cx_warm_t *w = pool(unit * 40, 0);
    cx_warm_info_t info;
    cx_warm_release(w, get(w, "a", &info));
    cx_err_t err = {0};
    ck_assert_ptr_null(cx_warm_acquire(w, "corrupt", 64, 64, &info, &err));
    ck_assert_int_eq(err.code, CX_EMODEL);
    ck_assert_msg(strstr(err.msg, "bad class setting"), "%s", err.msg);
    ck_assert_ptr_null(cx_warm_acquire(w, "a", 300, 300, &info, &err));
    ck_assert_msg(strstr(err.msg, "at most 256x256"), "%s", err.msg);
    ck_assert_ptr_null(cx_warm_acquire(w, "nowhere", 64, 64, &info, &err));
    ck_assert_int_eq(err.code, CX_ENOENT);
    ck_assert_ptr_null(cx_warm_acquire(w, "../a", 64, 64, &info, &err));
    ck_assert_int_eq(err.code, CX_EINVAL);
    ck_assert_double_eq(metric("cascade_pool_load_failures_total"), 4);
    ck_assert_uint_eq(cx_warm_count(w), 1);
    ck_assert_uint_eq(cx_warm_used(w), unit);
    cx_warm_release(w, get(w, "a", &info));
    ck_assert_int_eq(info.hit, 1);
    cx_warm_release(w, get(w, "b", &info));
    ck_assert_int_eq(info.hit, 0);
    cx_warm_destroy(w);
}
END_TEST

START_TEST(test_default_budget) {
    cx_warm_t *w = pool(0, 0); /* cpu: half the RAM */
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    ck_assert_uint_eq(cx_warm_budget(w), (uint64_t)pages * psz / 2);
    cx_warm_destroy(w);
    cx_warm_conf_t c = {.device = "cuda:0", .checkpoint_dir = dir};
    cx_err_t err = {0};
    ck_assert_ptr_null(cx_warm_new(&c, ps, NULL, &err)); /* nobody knows it */
    ck_assert_msg(strstr(err.msg, "cuda:0"), "%s", err.msg);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gpu_worker_pool");
    TCase *tc = tcase_create("pool");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_hit_miss_lru);
    tcase_add_test(tc, test_max_models);
    tcase_add_test(tc, test_in_use_not_evicted);
    tcase_add_test(tc, test_over_budget_refused);
    tcase_add_test(tc, test_failed_loads_keep_serving);
    tcase_add_test(tc, test_default_budget);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
