#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cascade/store.h"
#include "cx_testenv.h"

static char *root;
static cx_store_t *st;

static void setup(void) {
    root = cx_testenv_tmpdir("store");
    ck_assert_ptr_nonnull(root);
    char uri[600];
    snprintf(uri, sizeof uri, "file://%s/sub/root", root);
    cx_err_t err = {0};
    st = cx_store_open(uri, &err);
    ck_assert_msg(st != NULL, "%s", err.msg);
}

static void teardown(void) {
    cx_store_destroy(st);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    ck_assert_int_eq(system(cmd), 0);
    free(root);
}

static void put(const char *key, const char *s) {
    cx_err_t err = {0};
    ck_assert_msg(cx_store_put(st, key, s, strlen(s), &err) == 0, "%s", err.msg);
}

static void expect(const char *key, const char *s) {
    void *d = NULL;
    size_t n = 0;
    cx_err_t err = {0};
    ck_assert_msg(cx_store_get(st, key, &d, &n, &err) == 0, "%s: %s", key, err.msg);
    ck_assert_uint_eq(n, strlen(s));
    ck_assert_str_eq((char *)d, s); /* NUL-terminated */
    free(d);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

START_TEST(test_store_open) {
    cx_err_t err = {0};
    ck_assert_ptr_null(cx_store_open("gs://bucket/x", &err));
    ck_assert_int_eq(err.code, CX_EINVAL);
    ck_assert_ptr_null(cx_store_open("file://relative", &err));
    ck_assert_ptr_null(cx_store_open("", &err));
    /* A plain path works too and sees the same objects. */
    char path[600];
    snprintf(path, sizeof path, "%s/sub/root", root);
    put("k", "v");
    cx_store_t *s2 = cx_store_open(path, &err);
    ck_assert_ptr_nonnull(s2);
    ck_assert_int_eq(cx_store_exists(s2, "k", &err), 1);
    char *lp = cx_store_local_path(s2, "a/b");
    char want[700];
    snprintf(want, sizeof want, "%s/a/b", path);
    ck_assert_str_eq(lp, want);
    free(lp);
    cx_store_destroy(s2);
    cx_store_destroy(NULL);
}
END_TEST

START_TEST(test_store_put_get) {
    put("job/staging/u/1/0.png", "hello");
    expect("job/staging/u/1/0.png", "hello");
    put("job/staging/u/1/0.png", "replaced");
    expect("job/staging/u/1/0.png", "replaced");
    put("empty", "");
    expect("empty", "");
    cx_err_t err = {0};
    ck_assert_int_eq(cx_store_exists(st, "job/staging/u/1/0.png", &err), 1);
    ck_assert_int_eq(cx_store_exists(st, "job/staging/u/1/9.png", &err), 0);
    ck_assert_int_eq(cx_store_exists(st, "job/staging", &err), 0); /* a directory */
    void *d = (void *)1;
    size_t n;
    ck_assert_int_eq(cx_store_get(st, "job/nope", &d, &n, &err), -1);
    ck_assert_int_eq(err.code, CX_ENOENT);
    ck_assert_ptr_nonnull(strstr(err.msg, "job/nope"));
    ck_assert_ptr_nonnull(strstr(err.msg, "No such file"));
    /* No temporary file is left behind in the object's directory. */
    char dir[700];
    snprintf(dir, sizeof dir, "%s/sub/root/job/staging/u/1", root);
    ck_assert_int_eq(count_entries(dir), 1);
}
END_TEST

START_TEST(test_store_put_if_absent) {
    cx_err_t err = {0};
    ck_assert_int_eq(cx_store_put_if_absent(st, "j/manifests/u.json", "first", 5, &err), 0);
    ck_assert_int_eq(cx_store_put_if_absent(st, "j/manifests/u.json", "second", 6, &err), 1);
    expect("j/manifests/u.json", "first");
    char dir[700];
    snprintf(dir, sizeof dir, "%s/sub/root/j/manifests", root);
    ck_assert_int_eq(count_entries(dir), 1);
}
END_TEST

enum { RACE_KEYS = 200 };
typedef struct {
    int id;
    pthread_barrier_t *bar;
    int won[RACE_KEYS];
} racer;

static void *race(void *arg) {
    racer *r = arg;
    char body[16];
    snprintf(body, sizeof body, "writer-%d", r->id);
    pthread_barrier_wait(r->bar);
    for (int k = 0; k < RACE_KEYS; k++) {
        char key[64];
        snprintf(key, sizeof key, "race/manifests/%03d.json", k);
        r->won[k] = cx_store_put_if_absent(st, key, body, strlen(body), NULL);
    }
    return NULL;
}

START_TEST(test_store_put_if_absent_race) {
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    racer r[2] = {{.id = 0, .bar = &bar}, {.id = 1, .bar = &bar}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, race, &r[i]);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&bar);
    for (int k = 0; k < RACE_KEYS; k++) {
        ck_assert_msg(r[0].won[k] >= 0 && r[1].won[k] >= 0, "error on key %d", k);
        ck_assert_msg(r[0].won[k] + r[1].won[k] == 1, "key %d: results %d and %d", k,
                      r[0].won[k], r[1].won[k]);
        char key[64];
        snprintf(key, sizeof key, "race/manifests/%03d.json", k);
        expect(key, r[0].won[k] == 0 ? "writer-0" : "writer-1");
    }
    cx_strlist_t l = {0};
    ck_assert_int_eq(cx_store_list(st, "race", &l, NULL), 0);
    ck_assert_uint_eq(l.len, RACE_KEYS);
    cx_strlist_free(&l);
}
END_TEST

START_TEST(test_store_promote) {
    cx_err_t err = {0};
    put("j/staging/u/1/0.png", "pixels");
    ck_assert_int_eq(cx_store_promote(st, "j/staging/u/1/0.png", "j/data/normal/ab/abcd.png", &err), 0);
    ck_assert_int_eq(cx_store_exists(st, "j/staging/u/1/0.png", &err), 0);
    expect("j/data/normal/ab/abcd.png", "pixels");
    /* Retried promotion: src gone, dst there. */
    ck_assert_int_eq(cx_store_promote(st, "j/staging/u/1/0.png", "j/data/normal/ab/abcd.png", &err), 0);
    /* dst exists already: never overwritten, src removed. */
    put("j/staging/u/2/0.png", "other");
    ck_assert_int_eq(cx_store_promote(st, "j/staging/u/2/0.png", "j/data/normal/ab/abcd.png", &err), 0);
    expect("j/data/normal/ab/abcd.png", "pixels");
    ck_assert_int_eq(cx_store_exists(st, "j/staging/u/2/0.png", &err), 0);
    /* Both missing. */
    ck_assert_int_eq(cx_store_promote(st, "j/staging/u/3/0.png", "j/data/x/ab/zz.png", &err), -1);
    ck_assert_int_eq(err.code, CX_ENOENT);
    ck_assert_int_eq(cx_store_promote(st, "a", "a", &err), -1);
    ck_assert_int_eq(err.code, CX_EINVAL);
}
END_TEST

START_TEST(test_store_list) {
    put("j/data/b/2.png", "2");
    put("j/data/a/1.png", "1");
    put("j/data/a/0.png", "0");
    put("j/manifests/m.json", "m");
    put("k/other", "o");
    /* An in-flight write's temporary file is never listed. */
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s/sub/root/j/data/a/.tmp-3.png.1.1", root);
    FILE *f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    cx_strlist_t l = {0};
    cx_err_t err = {0};
    ck_assert_int_eq(cx_store_list(st, "j/data", &l, &err), 0);
    ck_assert_uint_eq(l.len, 3);
    ck_assert_str_eq(l.items[0], "j/data/a/0.png");
    ck_assert_str_eq(l.items[1], "j/data/a/1.png");
    ck_assert_str_eq(l.items[2], "j/data/b/2.png");
    cx_strlist_free(&l);
    ck_assert_int_eq(cx_store_list(st, "", &l, &err), 0);
    ck_assert_uint_eq(l.len, 5);
    ck_assert_str_eq(l.items[4], "k/other");
    cx_strlist_free(&l);
    ck_assert_int_eq(cx_store_list(st, "nothing/here", &l, &err), 0);
    ck_assert_uint_eq(l.len, 0);
    /* A temp name is not a valid key either. */
    void *d;
    size_t n;
    ck_assert_int_eq(cx_store_get(st, "j/data/a/.tmp-3.png.1.1", &d, &n, &err), -1);
    ck_assert_int_eq(err.code, CX_EINVAL);
}
END_TEST

START_TEST(test_store_delete) {
    cx_err_t err = {0};
    put("j/staging/u/1/0.png", "0");
    put("j/staging/u/1/1.png", "1");
    put("j/staging/u/2/0.png", "2");
    put("j/data/keep.png", "k");
    ck_assert_int_eq(cx_store_delete(st, "j/staging/u/2/0.png", &err), 0);
    ck_assert_int_eq(cx_store_exists(st, "j/staging/u/2/0.png", &err), 0);
    ck_assert_int_eq(cx_store_delete(st, "j/staging/u/2/0.png", &err), 0); /* missing is fine */
    ck_assert_int_eq(cx_store_delete_prefix(st, "j/staging", &err), 0);
    cx_strlist_t l = {0};
    ck_assert_int_eq(cx_store_list(st, "j", &l, &err), 0);
    ck_assert_uint_eq(l.len, 1);
    ck_assert_str_eq(l.items[0], "j/data/keep.png");
    cx_strlist_free(&l);
    char dir[700];
    struct stat sb;
    snprintf(dir, sizeof dir, "%s/sub/root/j/staging", root);
    ck_assert_int_eq(stat(dir, &sb), -1); /* empty directories go too */
    ck_assert_int_eq(cx_store_delete_prefix(st, "j/staging", &err), 0);
    ck_assert_int_eq(cx_store_delete_prefix(st, "", &err), -1);
    ck_assert_int_eq(err.code, CX_EINVAL);
}
END_TEST

START_TEST(test_store_bad_keys) {
    const char *bad[] = {"", "/abs", "a//b", "a/../b", "..", ".", "a/./b", "a b",
                         "trailing/", ".tmp-x", "a/.tmp-y", "new\nline", "x/..",
                         "caf\xc3\xa9", "a\\b"};
    cx_err_t err = {0};
    void *d;
    size_t n;
    cx_strlist_t l = {0};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *k = bad[i];
        ck_assert_msg(cx_store_put(st, k, "x", 1, &err) == -1 && err.code == CX_EINVAL, "put '%s'", k);
        ck_assert_msg(cx_store_put_if_absent(st, k, "x", 1, &err) == -1 && err.code == CX_EINVAL, "pia '%s'", k);
        ck_assert_msg(cx_store_get(st, k, &d, &n, &err) == -1 && err.code == CX_EINVAL, "get '%s'", k);
        ck_assert_msg(cx_store_exists(st, k, &err) == -1, "exists '%s'", k);
        ck_assert_msg(cx_store_delete(st, k, &err) == -1, "delete '%s'", k);
        ck_assert_msg(cx_store_promote(st, "ok", k, &err) == -1 && err.code == CX_EINVAL, "promote '%s'", k);
        if (*k) ck_assert_msg(cx_store_list(st, k, &l, &err) == -1, "list '%s'", k);
    }
    ck_assert_uint_eq(l.len, 0);
    ck_assert_int_eq(cx_store_put(st, "a/../b", "x", 1, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "'..'"));
}
END_TEST

START_TEST(test_store_io_error) {
    /* A key below an object: the filesystem refuses, not retriable. */
    put("file", "x");
    cx_err_t err = {0};
    ck_assert_int_eq(cx_store_put(st, "file/child", "y", 1, &err), -1);
    ck_assert_int_eq(err.code, CX_ESTORE);
    ck_assert_int_eq(err.retriable, 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "/file"));
    ck_assert_ptr_nonnull(strstr(err.msg, "Not a directory"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store_file");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_store_open);
    tcase_add_test(tc, test_store_put_get);
    tcase_add_test(tc, test_store_put_if_absent);
    tcase_add_test(tc, test_store_put_if_absent_race);
    tcase_add_test(tc, test_store_promote);
    tcase_add_test(tc, test_store_list);
    tcase_add_test(tc, test_store_delete);
    tcase_add_test(tc, test_store_bad_keys);
    tcase_add_test(tc, test_store_io_error);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
