/* The reference generator plug-in (cascade-refgen.so) through the ABI:
 * the same bytes as cx_generate, checkpoints by built-in name and by
 * .cxck path, and clear errors for a wrong size, a corrupt or truncated
 * file, another device and bad parameters. */
#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cascade/gen.h"
#include "cascade/generator_abi.h"

static void *dl;
static const cx_genplug_t *T;
static char dir[64];

static void setup(void) {
    dl = dlopen(REFGEN_SO, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(dl != NULL, "%s", dlerror());
    cx_genplug_entry_fn entry;
    void *sym = dlsym(dl, CX_GENPLUG_ENTRY);
    ck_assert_ptr_nonnull(sym);
    memcpy(&entry, &sym, sizeof entry);
    T = entry(CX_GENPLUG_ABI_VERSION);
    ck_assert_ptr_nonnull(T);
    ck_assert_ptr_null(entry(CX_GENPLUG_ABI_VERSION + 1));
    snprintf(dir, sizeof dir, "/tmp/cx-refgen-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    dlclose(dl);
}

static cx_genplug_args_t args(const char *ckpt, uint32_t w, uint32_t h) {
    return (cx_genplug_args_t){.struct_size = sizeof(cx_genplug_args_t),
                               .checkpoint = ckpt, .name = "x",
                               .device = "cpu", .width = w, .height = h,
                               .threads = 1, .max_batch = 4};
}

START_TEST(test_builtin_matches_cx_generate) {
    ck_assert_str_eq(T->name, "refgen");
    ck_assert(T->flags & CX_GENPLUG_F_CONCURRENT);
    ck_assert_int_eq(T->probe(CX_CHECKPOINT_BUILTIN, "cpu"), 1);
    ck_assert_int_eq(T->probe(CX_CHECKPOINT_BUILTIN, "cuda:0"), 0);
    ck_assert_int_eq(T->probe("nonsense", "cpu"), 0);
    cx_genplug_args_t a = args(CX_CHECKPOINT_BUILTIN, 40, 32);
    char msg[256] = "";
    uint64_t need = 0;
    ck_assert_int_eq(T->estimate(&a, &need, msg, sizeof msg), 0);
    cx_genplug_gen_t *g = NULL;
    ck_assert_int_eq(T->create(&a, &g, msg, sizeof msg), 0);
    ck_assert_uint_ge(need, T->memory_bytes(g));
    ck_assert_uint_eq(T->class_count(g), 4);
    ck_assert_str_eq(T->class_name(g, 2), "nodule");

    cx_err_t err = {0};
    cx_model_t *m = cx_model_open(CX_CHECKPOINT_BUILTIN, 40, 32, &err);
    ck_assert_ptr_nonnull(m);
    cx_sample_params_t p = {.sampler = CX_SAMPLER_HEUN, .steps = 5,
                            .guidance_scale = 2.0, .bit_depth = 16};
    size_t d = 40 * 32;
    uint16_t *want = calloc(3 * d, 2), *got = calloc(3 * d, 2);
    uint64_t seeds[3] = {9, 9, 11};
    uint32_t idx[3] = {4, 5, 4};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cx_generate(m, 2, &p, seeds[i], idx[i], want + i * d,
                                     &err),
                         0);
    cx_genplug_batch_t b = {.struct_size = sizeof b, .class_index = 2,
                            .sampler = CX_GENPLUG_HEUN, .steps = 5,
                            .guidance_scale = 2.0, .bit_depth = 16,
                            .count = 3, .seeds = seeds, .indices = idx,
                            .out = got};
    ck_assert_int_eq(T->generate(g, &b), 0);
    ck_assert_int_eq(memcmp(want, got, 3 * d * 2), 0);
    b.bit_depth = 12;
    ck_assert_int_eq(T->generate(g, &b), CX_GENPLUG_EINVAL);
    ck_assert_msg(strstr(T->last_error(g), "bit depth"), "%s",
                  T->last_error(g));
    T->destroy(g);
    cx_model_destroy(m);
    free(want);
    free(got);
}
END_TEST

START_TEST(test_files_and_errors) {
    cx_err_t err = {0};
    cx_model_t *m = cx_model_open(CX_CHECKPOINT_BUILTIN, 32, 32, &err);
    ck_assert_ptr_nonnull(m);
    char good[128], bad[128], cut[128], cmd[512];
    snprintf(good, sizeof good, "%s/small.cxck", dir);
    ck_assert_msg(cx_model_save(m, good, &err) == 0, "%s", err.msg);
    cx_model_destroy(m);
    ck_assert_int_eq(T->probe(good, "cpu"), 1);

    char msg[512] = "";
    cx_genplug_gen_t *g = NULL;
    cx_genplug_args_t a = args(good, 32, 32);
    ck_assert_msg(T->create(&a, &g, msg, sizeof msg) == 0, "%s", msg);
    ck_assert_uint_eq(T->class_count(g), 4);
    T->destroy(g);
    /* The file is 32x32: another size is refused by estimate and create. */
    a = args(good, 64, 64);
    uint64_t need;
    ck_assert_int_eq(T->estimate(&a, &need, msg, sizeof msg),
                     CX_GENPLUG_EDIMS);
    ck_assert_int_eq(T->create(&a, &g, msg, sizeof msg), CX_GENPLUG_EDIMS);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(msg, "is 32x32, the unit asks for 64x64"), "%s",
                  msg);

    /* A flipped byte in the data: the header still probes, the load
     * fails on the checksum. */
    snprintf(bad, sizeof bad, "%s/bad.cxck", dir);
    struct stat st;
    ck_assert_int_eq(stat(good, &st), 0);
    snprintf(cmd, sizeof cmd,
             "cp %s %s && printf '\\377' | dd of=%s bs=1 seek=%lld "
             "conv=notrunc status=none",
             good, bad, bad, (long long)st.st_size - 100);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(T->probe(bad, "cpu"), 1);
    a = args(bad, 32, 32);
    ck_assert_int_eq(T->create(&a, &g, msg, sizeof msg), CX_GENPLUG_ECORRUPT);
    ck_assert_msg(strstr(msg, "bad.cxck"), "%s", msg);
    /* Truncated. */
    snprintf(cut, sizeof cut, "%s/cut.cxck", dir);
    snprintf(cmd, sizeof cmd, "head -c %lld %s > %s",
             (long long)st.st_size / 2, good, cut);
    ck_assert_int_eq(system(cmd), 0);
    a = args(cut, 32, 32);
    int rc = T->create(&a, &g, msg, sizeof msg);
    ck_assert_msg(rc == CX_GENPLUG_ECORRUPT || rc == CX_GENPLUG_EIO,
                  "rc %d: %s", rc, msg);
    ck_assert_ptr_null(g);
    /* Not a checkpoint path, another device. */
    a = args("/etc/passwd", 32, 32);
    ck_assert_int_eq(T->create(&a, &g, msg, sizeof msg), CX_GENPLUG_EINVAL);
    a = args(good, 32, 32);
    a.device = "cuda:0";
    ck_assert_int_eq(T->create(&a, &g, msg, sizeof msg), CX_GENPLUG_EDEVICE);
    uint64_t total, avail;
    ck_assert_int_eq(T->device_memory("cpu", &total, &avail, msg, sizeof msg),
                     0);
    ck_assert_int_eq(T->device_memory("cuda:0", &total, &avail, msg,
                                      sizeof msg),
                     CX_GENPLUG_EDEVICE);
}
END_TEST

int main(void) {
    Suite *s = suite_create("kernels_refgen_plugin");
    TCase *tc = tcase_create("refgen");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_builtin_matches_cx_generate);
    tcase_add_test(tc, test_files_and_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
