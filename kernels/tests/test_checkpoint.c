/* .cxck checkpoints and .cxfeat feature files: round trips, name
 * resolution, and every way a file can be wrong (truncated, corrupt, wrong
 * version or magic, wrong dimensions, invalid content) rejected with a
 * clear error. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cascade/featfile.h"
#include "cascade/gen.h"
#include "cascade/util.h"
#include "testmodel.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/cxck-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    static const char *const files[] = {
        "m.cxck", "bad.cxck", "inv.cxck", "f.cxfeat", "g.cxfeat"};
    char p[128];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static cx_model_t *sample_model(void)
{
    static const double wts[4] = {0.3, 0.7, 0.6, 0.4}, pri[2] = {0.35, 0.65};
    tm_spec_t s = {.width = 16, .height = 20, .nclasses = 2, .ncomp = 2,
                   .rank = 3, .sep = 0.03, .var0 = 0.5, .s2 = 2e-4,
                   .weights = wts, .priors = pri, .seed = 3};
    return tm_model(&s);
}

static char *path_of(const char *name)
{
    static char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static void write_bytes(const char *name, const void *data, size_t len)
{
    FILE *f = fopen(path_of(name), "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static char *read_bytes(const char *name, size_t *len)
{
    char *data;
    cx_err_t err;
    ck_assert_int_eq(cx_read_file(path_of(name), &data, len, &err), 0);
    return data;
}

START_TEST(test_roundtrip)
{
    cx_model_t *m = sample_model();
    cx_err_t err;
    ck_assert_int_eq(cx_model_save(m, path_of("m.cxck"), &err), 0);
    cx_model_t *l = cx_model_open_named(dir, "m", 16, 20, &err);
    ck_assert_msg(l != NULL, "%s", err.msg);
    ck_assert_str_eq(cx_model_name(l), "m");
    ck_assert_uint_eq(cx_model_class_count(l), 2);
    ck_assert_str_eq(cx_model_class_name(l, 1), "c1");
    size_t d = m->npix;
    for (size_t c = 0; c < 2; c++) {
        ck_assert(cx_model_class_prior(l, c) == cx_model_class_prior(m, c));
        const cx_component_view_t *a, *b;
        size_t na, nb;
        ck_assert_int_eq(cx_model_components(m, c, &a, &na, &err), 0);
        ck_assert_int_eq(cx_model_components(l, c, &b, &nb, &err), 0);
        ck_assert_uint_eq(na, nb);
        for (size_t k = 0; k < na; k++) {
            ck_assert(a[k].weight == b[k].weight);
            ck_assert(a[k].resid_var == b[k].resid_var);
            ck_assert_uint_eq(a[k].rank, b[k].rank);
            ck_assert(memcmp(a[k].mean, b[k].mean, d * 4) == 0);
            ck_assert(memcmp(a[k].basis, b[k].basis, a[k].rank * d * 4) == 0);
            ck_assert(memcmp(a[k].var, b[k].var, a[k].rank * 4) == 0);
        }
    }
    /* the same model: the same bytes out */
    uint16_t x[320], y[320];
    cx_sample_params_t p = {CX_SAMPLER_DDIM, 12, 2.0, 0.3, 16};
    ck_assert_int_eq(cx_generate(m, 1, &p, 5, 2, x, &err), 0);
    ck_assert_int_eq(cx_generate(l, 1, &p, 5, 2, y, &err), 0);
    ck_assert(memcmp(x, y, sizeof x) == 0);
    cx_model_destroy(l);
    /* by path, at its own size; by name at 0x0 */
    l = cx_model_open_file(path_of("m.cxck"), &err);
    ck_assert_ptr_nonnull(l);
    ck_assert_str_eq(cx_model_name(l), "test-mix"); /* the header's */
    cx_model_destroy(l);
    l = cx_model_open_named(dir, "m", 0, 0, &err);
    ck_assert_ptr_nonnull(l);
    ck_assert_uint_eq(cx_model_width(l), 16);
    ck_assert_uint_eq(cx_model_height(l), 20);
    /* header-only questions */
    ck_assert_int_eq(cx_checkpoint_has_class_in(dir, "m", "c1"), 1);
    ck_assert_int_eq(cx_checkpoint_has_class_in(dir, "m", "c2"), 0);
    ck_assert_int_eq(cx_checkpoint_has_class_in(dir, "nope", "c1"), 0);
    setenv("CASCADE_CHECKPOINT_DIR", dir, 1);
    ck_assert_int_eq(cx_checkpoint_has_class("m", "c0"), 1);
    unsetenv("CASCADE_CHECKPOINT_DIR");
    ck_assert_int_eq(cx_checkpoint_has_class("m", "c0"), 0);
    cx_checkpoint_info_t info;
    ck_assert_int_eq(cx_checkpoint_probe(dir, "m", 0, 0, &info, &err), 0);
    ck_assert_uint_eq(info.width, 16);
    ck_assert_uint_eq(info.height, 20);
    ck_assert_uint_eq(info.nclasses, 2);
    ck_assert_uint_eq(info.ncomponents, 4);
    ck_assert_uint_eq(info.rows, 16);
    ck_assert_uint_ge(info.memory_bytes, cx_model_memory_bytes(l));
    struct stat st;
    ck_assert_int_eq(stat(path_of("m.cxck"), &st), 0);
    ck_assert_uint_eq(info.file_bytes, (uint64_t)st.st_size);
    cx_model_destroy(l);
    cx_model_destroy(m);
    /* three classes: the class-local bases, which the header predicts */
    tm_spec_t s3 = {.width = 16, .height = 16, .nclasses = 3, .ncomp = 2,
                    .rank = 3, .sep = 0.03, .var0 = 0.5, .s2 = 2e-4,
                    .seed = 9};
    m = tm_model(&s3);
    ck_assert_int_eq(cx_model_save(m, path_of("m.cxck"), &err), 0);
    ck_assert_int_eq(cx_checkpoint_probe(dir, "m", 0, 0, &info, &err), 0);
    l = cx_model_open_named(dir, "m", 16, 16, &err);
    ck_assert_ptr_nonnull(l);
    ck_assert_ptr_nonnull(l->wc);
    ck_assert_uint_ge(info.memory_bytes, cx_model_memory_bytes(l));
    ck_assert_uint_le(info.memory_bytes, 2 * cx_model_memory_bytes(l));
    cx_model_destroy(l);
    cx_model_destroy(m);
}
END_TEST

START_TEST(test_names_and_dims)
{
    cx_model_t *m = sample_model();
    cx_err_t err;
    ck_assert_int_eq(cx_model_save(m, path_of("m.cxck"), &err), 0);
    ck_assert_ptr_null(cx_model_open_named(dir, "m", 32, 32, &err));
    ck_assert_int_eq(err.code, CX_EINVAL);
    ck_assert_msg(strstr(err.msg, "is 16x20, not the 32x32") != NULL, "%s",
                  err.msg);
    static const char *const bad[] = {"../m", ".m", "a/b", "", "m m",
                                      "x.cxck/../../etc"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_ptr_null(cx_model_open_named(dir, bad[i], 16, 20, &err));
        ck_assert_int_eq(err.code, CX_EINVAL);
        ck_assert_int_eq(cx_checkpoint_has_class_in(dir, bad[i], "c0"), 0);
    }
    ck_assert_ptr_null(cx_model_open_named(dir, "other", 16, 20, &err));
    ck_assert_int_eq(err.code, CX_ENOENT);
    ck_assert_msg(strstr(err.msg, "unknown checkpoint 'other'") != NULL, "%s",
                  err.msg);
    unsetenv("CASCADE_CHECKPOINT_DIR");
    ck_assert_ptr_null(cx_model_open_named(NULL, "m", 16, 20, &err));
    ck_assert_int_eq(err.code, CX_ENOENT);
    /* the built-in needs no file, whatever the directory */
    cx_model_t *v0 = cx_model_open_named(dir, CX_CHECKPOINT_BUILTIN, 16, 16,
                                         &err);
    ck_assert_ptr_nonnull(v0);
    cx_model_destroy(v0);
    ck_assert_int_eq(
        cx_checkpoint_has_class_in("/nonexistent", CX_CHECKPOINT_BUILTIN,
                                   "nodule"), 1);
    cx_model_destroy(m);
}
END_TEST

/* open_file on a modified copy of m.cxck must fail with CX_EMODEL and a
 * message containing want. */
static void expect_bad(const void *data, size_t len, const char *want)
{
    cx_err_t err = {0};
    write_bytes("bad.cxck", data, len);
    cx_model_t *m = cx_model_open_file(path_of("bad.cxck"), &err);
    ck_assert_msg(m == NULL, "accepted a bad file (%s)", want);
    ck_assert_int_eq(err.code, CX_EMODEL);
    ck_assert_msg(strstr(err.msg, want) != NULL, "'%s' lacks '%s'", err.msg,
                  want);
    ck_assert_msg(strstr(err.msg, "bad.cxck") != NULL, "%s", err.msg);
}

START_TEST(test_truncated)
{
    cx_model_t *m = sample_model();
    cx_err_t err;
    ck_assert_int_eq(cx_model_save(m, path_of("m.cxck"), &err), 0);
    size_t len;
    char *data = read_bytes("m.cxck", &len);
    size_t cuts[] = {0, 7, 64, 127, 200, 511, 600, len / 2, len - 64,
                     len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++)
        expect_bad(data, cuts[i], "truncated");
    /* trailing bytes are as wrong as missing ones */
    char *longer = malloc(len + 3);
    memcpy(longer, data, len);
    memset(longer + len, 0, 3);
    expect_bad(longer, len + 3, "trailing garbage");
    free(longer);
    free(data);
    cx_model_destroy(m);
}
END_TEST

START_TEST(test_corrupt)
{
    cx_model_t *m = sample_model();
    cx_err_t err;
    ck_assert_int_eq(cx_model_save(m, path_of("m.cxck"), &err), 0);
    size_t len;
    char *data = read_bytes("m.cxck", &len);
    char *bad = malloc(len);
#define MUTATE(off, val, want)                                            \
    do {                                                                  \
        memcpy(bad, data, len);                                           \
        bad[off] = (char)(val);                                           \
        expect_bad(bad, len, want);                                       \
    } while (0)
    MUTATE(0, 'X', "bad magic");
    MUTATE(8, 2, "format version 2 not supported");
    MUTATE(32, 2, "dtype 2");
    MUTATE(130, 'Z', "header checksum mismatch");  /* a class name */
    MUTATE(24, 9, "corrupt header");               /* class count */
    uint32_t hbytes;
    memcpy(&hbytes, data + 12, 4);
    size_t sec = cx__section_bytes(m->npix, 3);
    MUTATE(hbytes + 2 * sec + 17, bad[hbytes + 2 * sec + 17] ^ 1,
           "component 2 (class 'c1') data checksum mismatch");
    MUTATE(len - 64, 'x', "bad trailer");
    MUTATE(len - 20, bad[len - 20] ^ 0x40, "file checksum mismatch");
#undef MUTATE
    /* a corrupt header also fails the cheap check */
    memcpy(bad, data, len);
    bad[130] = 'Z';
    write_bytes("m.cxck", bad, len);
    ck_assert_int_eq(cx_checkpoint_has_class_in(dir, "m", "c0"), 0);
    ck_assert_int_eq(cx_checkpoint_probe(dir, "m", 0, 0,
                                         &(cx_checkpoint_info_t){0}, &err),
                     -1);
    ck_assert_int_eq(err.code, CX_EMODEL);
    free(bad);
    free(data);
    cx_model_destroy(m);
}
END_TEST

/* Content the loader must refuse even with valid checksums: the writer
 * does not validate, so a broken model can be saved and must not load. */
START_TEST(test_invalid_content)
{
    cx_err_t err;
    for (int kind = 0; kind < 6; kind++) {
        uint32_t cls[2] = {0, 1}, rank[2] = {2, 2};
        cx_model_t *m = cx__model_alloc("inv", 16, 16, 2, 2, cls, rank, &err);
        ck_assert_ptr_nonnull(m);
        size_t d = m->npix;
        snprintf(m->names[0], CX__CLASS_NAME_MAX, "a");
        snprintf(m->names[1], CX__CLASS_NAME_MAX, kind == 5 ? "a" : "b");
        for (size_t k = 0; k < 2; k++) {
            cx__comp_t *c = &m->comp[k];
            c->s2 = kind == 4 ? 0.0 : 1e-4;
            for (size_t p = 0; p < d; p++)
                c->mean[p] = 0.5f;
            c->basis[0] = 1.0f;                     /* e_0 */
            c->basis[d + 1] = kind == 0 ? 0.9f : 1.0f; /* e_1 */
            c->var[0] = c->var[1] = kind == 2 ? -1.0f : 0.1f;
        }
        if (kind == 1)
            m->comp[0].weight = 0.5;
        if (kind == 3)
            m->comp[1].mean[7] = NAN;
        static const char *const want[] = {
            "not orthonormal", "weights sum to 0.5", "variance 0 is -1",
            "non-finite", "residual variance 0", "appears twice"};
        ck_assert_int_eq(cx_model_save(m, path_of("inv.cxck"), &err), 0);
        cx_model_t *l = cx_model_open_file(path_of("inv.cxck"), &err);
        ck_assert_msg(l == NULL, "kind %d accepted", kind);
        ck_assert_int_eq(err.code, CX_EMODEL);
        ck_assert_msg(strstr(err.msg, want[kind]) != NULL, "kind %d: %s",
                      kind, err.msg);
        ck_assert_int_eq(cx__model_finish(m, &err), -1);
        cx_model_destroy(m);
    }
}
END_TEST

START_TEST(test_featfile)
{
    char names[2][32] = {"normal", "nodule"};
    uint32_t cls[3] = {0, 1, 1};
    float data[3 * 5];
    for (int i = 0; i < 15; i++)
        data[i] = (float)i * 0.25f - 1.0f;
    cx_featfile_t f = {.layout = 7, .rows = 3, .cols = 5, .nclasses = 2,
                       .class_names = names, .row_class = cls, .data = data};
    snprintf(f.checkpoint, sizeof f.checkpoint, "ref-cxr-v1");
    cx_err_t err;
    ck_assert_int_eq(cx_featfile_save(&f, path_of("f.cxfeat"), &err), 0);
    cx_featfile_t g;
    ck_assert_int_eq(cx_featfile_load(path_of("f.cxfeat"), &g, &err), 0);
    ck_assert_str_eq(g.checkpoint, "ref-cxr-v1");
    ck_assert_uint_eq(g.layout, 7);
    ck_assert_uint_eq(g.rows, 3);
    ck_assert_uint_eq(g.cols, 5);
    ck_assert_str_eq(g.class_names[1], "nodule");
    ck_assert(memcmp(g.row_class, cls, sizeof cls) == 0);
    ck_assert(memcmp(g.data, data, sizeof data) == 0);
    cx_featfile_free(&g);
    size_t len;
    char *bytes = read_bytes("f.cxfeat", &len);
    ck_assert_int_eq(cx_featfile_decode(bytes, len - 1, &g, &err), -1);
    ck_assert_int_eq(err.code, CX_EDECODE);
    ck_assert_msg(strstr(err.msg, "truncated") != NULL, "%s", err.msg);
    bytes[len - 40] ^= 1;
    ck_assert_int_eq(cx_featfile_decode(bytes, len, &g, &err), -1);
    ck_assert_msg(strstr(err.msg, "checksum") != NULL, "%s", err.msg);
    bytes[len - 40] ^= 1;
    bytes[8] = 9;
    ck_assert_int_eq(cx_featfile_decode(bytes, len, &g, &err), -1);
    ck_assert_msg(strstr(err.msg, "version 9") != NULL, "%s", err.msg);
    free(bytes);
    cls[2] = 5; /* out of range */
    ck_assert_int_eq(cx_featfile_save(&f, path_of("g.cxfeat"), &err), -1);
    ck_assert_int_eq(err.code, CX_EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kernels_checkpoint");
    TCase *tc = tcase_create("cxck");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_names_and_dims);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_corrupt);
    tcase_add_test(tc, test_invalid_content);
    tcase_add_test(tc, test_featfile);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
