/* Plug-in loading and resolution, against the example plug-in
 * (examples/plugin/procgen.c) and deliberately broken ones
 * (tests/bad_plugin.c): wrong ABI version, short table, no entry point,
 * corrupt checkpoint, wrong dimensions. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin.h"

static char dir[64];

static void write_file(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/cx-plugin-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    write_file("demo.procgen", "procgen 1\nmax_size 64\n"
                               "class calm blobs=2 radius=0.1..0.2\n"
                               "class spotty blobs=9 level=0.8\n");
    write_file("broken.procgen", "procgen 1\nclass x blobs=1\nnonsense 3\n");
    write_file("alien.procgen", "PNG\x1a not a checkpoint\n");
    write_file("demo-notes.txt", "procgen 1\n"); /* other name: ignored */
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_open_good_and_bad) {
    cx_err_t err = {0};
    cx_plugin_t *p = cx_plugin_open(PROCGEN_SO, &err);
    ck_assert_msg(p != NULL, "%s", err.msg);
    ck_assert_str_eq(cx_plugin_name(p), "procgen");
    ck_assert_uint_eq(cx_plugin_table(p)->abi_version, CX_GENPLUG_ABI_VERSION);
    cx_plugin_close(p);

    ck_assert_ptr_null(cx_plugin_open(BAD_ABI_SO, &err));
    ck_assert_int_eq(err.code, CX_EINVAL);
    ck_assert_msg(strstr(err.msg, "ABI version 2, this worker needs 1"),
                  "%s", err.msg);
    ck_assert_ptr_null(cx_plugin_open(SHORT_TABLE_SO, &err));
    ck_assert_msg(strstr(err.msg, "table of"), "%s", err.msg);
    ck_assert_ptr_null(cx_plugin_open(NO_ENTRY_SO, &err));
    ck_assert_msg(strstr(err.msg, "not a generator plug-in"), "%s", err.msg);
    ck_assert_ptr_null(cx_plugin_open("/nonexistent/x.so", &err));
    ck_assert_int_eq(err.code, CX_EIO);
    cx_plugin_close(NULL);
}
END_TEST

static int refused_n;
static char refused_msg[600];

static void on_refused(void *ctx, const char *path, const cx_err_t *why) {
    (void)ctx;
    (void)path;
    refused_n++;
    snprintf(refused_msg, sizeof refused_msg, "%s", why->msg);
}

/* A directory with one good and one wrong-ABI plug-in: the good one is
 * kept, the bad one reported, the set goes on working. */
START_TEST(test_dir_keeps_good_ones) {
    char pdir[128], cmd[2048];
    snprintf(pdir, sizeof pdir, "%s/plugins", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s %s/a-procgen.so && "
             "cp %s %s/b-bad.so && touch %s/readme.txt",
             pdir, PROCGEN_SO, pdir, BAD_ABI_SO, pdir, pdir);
    ck_assert_int_eq(system(cmd), 0);
    cx_err_t err = {0};
    cx_plugins_t *ps = cx_plugins_new(&err);
    refused_n = 0;
    ck_assert_int_eq(cx_plugins_add_dir(ps, pdir, on_refused, NULL, &err), 1);
    ck_assert_int_eq(refused_n, 1);
    ck_assert_msg(strstr(refused_msg, "ABI version"), "%s", refused_msg);
    ck_assert_uint_eq(cx_plugins_count(ps), 1);
    ck_assert_ptr_nonnull(cx_plugins_find(ps, "procgen"));
    /* The same plug-in twice: refused by name. */
    ck_assert_int_eq(cx_plugins_add(ps, PROCGEN_SO, &err), -1);
    ck_assert_int_eq(err.code, CX_EEXIST);
    ck_assert_int_eq(cx_plugins_add_dir(ps, "/nonexistent", NULL, NULL, &err),
                     -1);
    cx_plugins_destroy(ps);
}
END_TEST

START_TEST(test_resolve) {
    cx_err_t err = {0};
    cx_plugins_t *ps = cx_plugins_new(&err);
    ck_assert_int_eq(cx_plugins_add(ps, PROCGEN_SO, &err), 0);
    cx_plugin_t *p = NULL;
    char path[512];
    ck_assert_int_eq(cx_plugins_resolve(ps, dir, "demo", "cpu", &p, path,
                                        sizeof path, &err),
                     0);
    ck_assert_str_eq(cx_plugin_name(p), "procgen");
    ck_assert_ptr_nonnull(strstr(path, "/demo.procgen"));
    /* Not on a device procgen does not run on. */
    ck_assert_int_eq(cx_plugins_resolve(ps, dir, "demo", "cuda:0", &p, path,
                                        sizeof path, &err),
                     -1);
    ck_assert_int_eq(err.code, CX_ENOENT);
    ck_assert_int_eq(cx_plugins_resolve(ps, dir, "missing", "cpu", &p, path,
                                        sizeof path, &err),
                     -1);
    ck_assert_msg(strstr(err.msg, "no file"), "%s", err.msg);
    ck_assert_int_eq(cx_plugins_resolve(ps, NULL, "demo", "cpu", &p, path,
                                        sizeof path, &err),
                     -1);
    ck_assert_msg(strstr(err.msg, "no checkpoint_dir"), "%s", err.msg);
    /* A damaged header: no plug-in recognises the file, and says so. */
    ck_assert_int_eq(cx_plugins_resolve(ps, dir, "alien", "cpu", &p, path,
                                        sizeof path, &err),
                     -1);
    ck_assert_msg(strstr(err.msg, "alien.procgen"), "%s", err.msg);
    const char *bad[] = {"../etc/passwd", "", ".hidden", "a/b"};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(cx_plugins_resolve(ps, dir, bad[i], "cpu", &p, path,
                                            sizeof path, &err),
                         -1);
        ck_assert_int_eq(err.code, CX_EINVAL);
    }
    uint64_t total = 0, avail = 0;
    ck_assert_int_eq(cx_plugins_device_memory(ps, "cpu", &total, &avail, &err),
                     0);
    ck_assert_uint_gt(total, 0);
    ck_assert_int_eq(
        cx_plugins_device_memory(ps, "cuda:0", &total, &avail, &err), -1);
    cx_plugins_destroy(ps);
}
END_TEST

static cx_genplug_args_t args(const char *path, uint32_t w, uint32_t h) {
    return (cx_genplug_args_t){.struct_size = sizeof(cx_genplug_args_t),
                               .checkpoint = path,
                               .name = "demo",
                               .device = "cpu",
                               .width = w,
                               .height = h,
                               .max_batch = 4};
}

static int run(cx_plugin_gen_t *g, uint32_t cls, uint64_t seed,
               uint32_t index, uint16_t *out, cx_err_t *err) {
    cx_genplug_batch_t b = {.struct_size = sizeof b,
                            .class_index = cls,
                            .sampler = CX_GENPLUG_DDIM,
                            .steps = 4,
                            .guidance_scale = 1.0,
                            .eta = 0.5,
                            .bit_depth = 16,
                            .count = 1,
                            .seeds = &seed,
                            .indices = &index,
                            .out = out};
    return cx_plugin_gen_generate(g, &b, err);
}

START_TEST(test_create_generate) {
    cx_err_t err = {0};
    cx_plugin_t *p = cx_plugin_open(PROCGEN_SO, &err);
    ck_assert_ptr_nonnull(p);
    char path[256];
    snprintf(path, sizeof path, "%s/demo.procgen", dir);
    cx_genplug_args_t a = args(path, 48, 32);
    uint64_t need = 0;
    ck_assert_int_eq(cx_plugin_estimate(p, &a, &need, &err), 0);
    cx_plugin_gen_t *g = cx_plugin_create(p, &a, &err);
    ck_assert_msg(g != NULL, "%s", err.msg);
    ck_assert_uint_eq(cx_plugin_gen_memory(g), need);
    ck_assert_uint_eq(cx_plugin_gen_class_count(g), 2);
    ck_assert_str_eq(cx_plugin_gen_class_name(g, 1), "spotty");
    ck_assert_ptr_null(cx_plugin_gen_class_name(g, 2));
    ck_assert_int_eq(cx_plugin_gen_class_index(g, "calm"), 0);
    ck_assert_int_eq(cx_plugin_gen_class_index(g, "nope"), -1);
    ck_assert_int_eq(cx_plugin_gen_concurrent(g), 1);
    ck_assert_ptr_eq(cx_plugin_gen_plugin(g), p);

    size_t n = 48 * 32;
    uint16_t *x = calloc(n, 2), *y = calloc(n, 2), *z = calloc(n, 2);
    ck_assert_int_eq(run(g, 1, 7, 3, x, &err), 0);
    ck_assert_int_eq(run(g, 1, 7, 3, y, &err), 0);
    ck_assert_int_eq(memcmp(x, y, n * 2), 0); /* a pure function */
    ck_assert_int_eq(run(g, 1, 7, 4, z, &err), 0);
    ck_assert_int_ne(memcmp(x, z, n * 2), 0); /* another index differs */
    int varied = 0;
    for (size_t i = 1; i < n; i++) varied |= x[i] != x[0];
    ck_assert(varied);
    /* A bad class: the plug-in's message comes through. */
    ck_assert_int_eq(run(g, 9, 7, 3, x, &err), -1);
    ck_assert_int_eq(err.code, CX_EINVAL);
    ck_assert_msg(strstr(err.msg, "procgen generate: procgen: class 9 of 2"),
                  "%s", err.msg);
    cx_plugin_gen_destroy(g);

    /* Wrong dimensions: the checkpoint renders at most 64x64. */
    a = args(path, 128, 32);
    ck_assert_ptr_null(cx_plugin_create(p, &a, &err));
    ck_assert_int_eq(err.code, CX_EINVAL);
    ck_assert_msg(strstr(err.msg, "at most 64x64"), "%s", err.msg);
    /* Corrupt content behind a good header. */
    snprintf(path, sizeof path, "%s/broken.procgen", dir);
    a = args(path, 32, 32);
    ck_assert_ptr_null(cx_plugin_create(p, &a, &err));
    ck_assert_int_eq(err.code, CX_EMODEL);
    ck_assert_msg(strstr(err.msg, "line 3"), "%s", err.msg);
    /* A file that is gone. */
    snprintf(path, sizeof path, "%s/gone.procgen", dir);
    a = args(path, 32, 32);
    ck_assert_ptr_null(cx_plugin_create(p, &a, &err));
    ck_assert_int_eq(err.code, CX_EIO);
    free(x);
    free(y);
    free(z);
    cx_plugin_close(p);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gpu_worker_plugin");
    TCase *tc = tcase_create("plugin");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_open_good_and_bad);
    tcase_add_test(tc, test_dir_keeps_good_ones);
    tcase_add_test(tc, test_resolve);
    tcase_add_test(tc, test_create_generate);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
