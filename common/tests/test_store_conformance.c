/* The same store cases against every backend: file:// in a temporary
 * directory, and s3:// against the real S3 server of the test stack
 * (tests/harness/stack.sh start --s3: SeaweedFS on loopback, settings in the
 * stack's env file). Whatever a service relies on must hold on both:
 * replace and read back, put-if-absent decided by the store under racing
 * writers, idempotent promotion, sorted listing across pages, deletion by
 * prefix that spares a sibling prefix. Runs under the `stack` fixture
 * (itest_test_common_store_conformance). */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cascade/store.h"
#include "cx_testenv.h"

static cx_store_t *st;
static char *tmpdir;      /* file:// */
static char run_key[128]; /* s3://: the store's prefix below the bucket */
static const char *s3_root;
static int race_keys;

static void setup_file(void) {
    tmpdir = cx_testenv_tmpdir("conformance");
    ck_assert_ptr_nonnull(tmpdir);
    char uri[600];
    snprintf(uri, sizeof uri, "file://%s/root", tmpdir);
    cx_err_t err = {0};
    st = cx_store_open(uri, &err);
    ck_assert_msg(st != NULL, "%s", err.msg);
    race_keys = 100;
}

static void teardown_file(void) {
    cx_store_destroy(st);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    free(tmpdir);
}

/* The store reads its settings from the process environment; ctest hands
 * us the stack's env file instead. */
static void import_s3_env(void) {
    static const char *names[] = {"CASCADE_S3_ENDPOINT", "CASCADE_S3_REGION",
                                  "CASCADE_S3_ACCESS_KEY_ID",
                                  "CASCADE_S3_SECRET_ACCESS_KEY"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = cx_testenv(names[i]);
        ck_assert_msg(v != NULL, "%s missing from the stack env (stack.sh start --s3)",
                      names[i]);
        setenv(names[i], v, 1);
    }
    /* Small pages, so every listing below crosses page boundaries. */
    setenv("CASCADE_S3_LIST_PAGE", "3", 1);
    s3_root = cx_testenv("CASCADE_S3_URI");
    ck_assert_msg(s3_root != NULL, "CASCADE_S3_URI missing from the stack env "
                                   "(stack.sh start --s3)");
}

static void setup_s3(void) {
    static int n;
    import_s3_env();
    snprintf(run_key, sizeof run_key, "conformance/%ld-%d-%d", (long)time(NULL),
             (int)getpid(), n++);
    char uri[600];
    snprintf(uri, sizeof uri, "%s/%s", s3_root, run_key);
    cx_err_t err = {0};
    st = cx_store_open(uri, &err);
    ck_assert_msg(st != NULL, "%s", err.msg);
    race_keys = 25;
}

static void teardown_s3(void) {
    cx_store_destroy(st);
    cx_err_t err = {0};
    cx_store_t *root = cx_store_open(s3_root, &err);
    ck_assert_msg(root != NULL, "%s", err.msg);
    ck_assert_msg(cx_store_delete_prefix(root, run_key, &err) == 0, "%s", err.msg);
    cx_strlist_t l = {0};
    ck_assert_int_eq(cx_store_list(root, run_key, &l, &err), 0);
    ck_assert_uint_eq(l.len, 0);
    cx_store_destroy(root);
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
    ck_assert_str_eq((char *)d, s);
    free(d);
}

static void expect_list(const char *prefix, const char *const *want, size_t n) {
    cx_strlist_t l = {0};
    cx_err_t err = {0};
    ck_assert_msg(cx_store_list(st, prefix, &l, &err) == 0, "%s", err.msg);
    ck_assert_msg(l.len == n, "list '%s': %zu keys, expected %zu", prefix, l.len, n);
    for (size_t i = 0; i < n; i++) ck_assert_str_eq(l.items[i], want[i]);
    cx_strlist_free(&l);
}

START_TEST(test_put_get) {
    put("job/staging/u/1/0.png", "hello");
    expect("job/staging/u/1/0.png", "hello");
    put("job/staging/u/1/0.png", "replaced");
    expect("job/staging/u/1/0.png", "replaced");
    put("empty", "");
    expect("empty", "");
    cx_err_t err = {0};
    ck_assert_int_eq(cx_store_exists(st, "job/staging/u/1/0.png", &err), 1);
    ck_assert_int_eq(cx_store_exists(st, "job/staging/u/1/9.png", &err), 0);
    ck_assert_int_eq(cx_store_exists(st, "job/staging", &err), 0); /* not an object */
    void *d = NULL;
    size_t n;
    ck_assert_int_eq(cx_store_get(st, "job/nope", &d, &n, &err), -1);
    ck_assert_int_eq(err.code, CX_ENOENT);
    ck_assert_ptr_nonnull(strstr(err.msg, "job/nope"));
    /* A PNG-sized binary object with every byte value, NULs included. */
    size_t big = 600 * 1024;
    unsigned char *b = malloc(big);
    for (size_t i = 0; i < big; i++) b[i] = (unsigned char)(i * 7 + i / 251);
    ck_assert_msg(cx_store_put(st, "job/big.bin", b, big, &err) == 0, "%s", err.msg);
    ck_assert_msg(cx_store_get(st, "job/big.bin", &d, &n, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(n, big);
    ck_assert_int_eq(memcmp(d, b, big), 0);
    free(d);
    free(b);
}
END_TEST

START_TEST(test_put_if_absent) {
    cx_err_t err = {0};
    ck_assert_int_eq(cx_store_put_if_absent(st, "j/manifests/u.json", "first", 5, &err), 0);
    ck_assert_int_eq(cx_store_put_if_absent(st, "j/manifests/u.json", "second", 6, &err), 1);
    expect("j/manifests/u.json", "first");
    /* After a plain put the key exists too. */
    put("j/manifests/v.json", "plain");
    ck_assert_int_eq(cx_store_put_if_absent(st, "j/manifests/v.json", "again", 5, &err), 1);
    expect("j/manifests/v.json", "plain");
}
END_TEST

enum { RACERS = 4, RACE_MAX = 100 };
typedef struct racer {
    int id;
    pthread_barrier_t *bar;
    int won[RACE_MAX];
} racer_t;

static void *race(void *arg) {
    racer_t *r = arg;
    char body[16];
    snprintf(body, sizeof body, "writer-%d", r->id);
    pthread_barrier_wait(r->bar);
    for (int k = 0; k < race_keys; k++) {
        char key[64];
        snprintf(key, sizeof key, "race/manifests/%03d.json", k);
        cx_err_t err = {0};
        r->won[k] = cx_store_put_if_absent(st, key, body, strlen(body), &err);
        if (r->won[k] < 0) fprintf(stderr, "racer %d key %d: %s\n", r->id, k, err.msg);
    }
    return NULL;
}

/* Several threads, one shared store, the same keys at the same moment:
 * exactly one writer wins each key and its bytes are what stays. */
START_TEST(test_put_if_absent_race) {
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, RACERS);
    racer_t r[RACERS];
    pthread_t t[RACERS];
    for (int i = 0; i < RACERS; i++) {
        r[i] = (racer_t){.id = i, .bar = &bar};
        pthread_create(&t[i], NULL, race, &r[i]);
    }
    for (int i = 0; i < RACERS; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&bar);
    for (int k = 0; k < race_keys; k++) {
        int winners = 0, winner = -1;
        for (int i = 0; i < RACERS; i++) {
            ck_assert_msg(r[i].won[k] >= 0, "racer %d failed on key %d", i, k);
            if (r[i].won[k] == 0) {
                winners++;
                winner = i;
            }
        }
        ck_assert_msg(winners == 1, "key %d: %d writers won", k, winners);
        char key[64], body[32];
        snprintf(key, sizeof key, "race/manifests/%03d.json", k);
        snprintf(body, sizeof body, "writer-%d", winner);
        expect(key, body);
    }
    cx_strlist_t l = {0};
    ck_assert_int_eq(cx_store_list(st, "race", &l, NULL), 0);
    ck_assert_uint_eq(l.len, (size_t)race_keys);
    cx_strlist_free(&l);
}
END_TEST

START_TEST(test_promote) {
    cx_err_t err = {0};
    put("j/staging/u/1/0.png", "pixels");
    ck_assert_int_eq(cx_store_promote(st, "j/staging/u/1/0.png", "j/data/normal/ab/abcd.png", &err), 0);
    ck_assert_int_eq(cx_store_exists(st, "j/staging/u/1/0.png", &err), 0);
    expect("j/data/normal/ab/abcd.png", "pixels");
    /* A retried promotion: src gone, dst there. */
    ck_assert_int_eq(cx_store_promote(st, "j/staging/u/1/0.png", "j/data/normal/ab/abcd.png", &err), 0);
    /* dst exists already: kept as it is, src removed. */
    put("j/staging/u/2/0.png", "other");
    ck_assert_int_eq(cx_store_promote(st, "j/staging/u/2/0.png", "j/data/normal/ab/abcd.png", &err), 0);
    expect("j/data/normal/ab/abcd.png", "pixels");
    ck_assert_int_eq(cx_store_exists(st, "j/staging/u/2/0.png", &err), 0);
    /* Interrupted after the copy: both names exist; a retry finishes. */
    put("j/staging/u/3/0.png", "both");
    put("j/data/normal/cd/cdef.png", "both");
    ck_assert_int_eq(cx_store_promote(st, "j/staging/u/3/0.png", "j/data/normal/cd/cdef.png", &err), 0);
    ck_assert_int_eq(cx_store_exists(st, "j/staging/u/3/0.png", &err), 0);
    /* Both missing. */
    ck_assert_int_eq(cx_store_promote(st, "j/staging/u/4/0.png", "j/data/x/ab/zz.png", &err), -1);
    ck_assert_int_eq(err.code, CX_ENOENT);
}
END_TEST

START_TEST(test_list) {
    put("j/data/b/2.png", "2");
    put("j/data/a/1.png", "1");
    put("j/data/a/0.png", "0");
    put("j/data2/x.png", "sibling");
    put("j/manifests/m.json", "m");
    for (int i = 9; i >= 0; i--) {
        char key[32];
        snprintf(key, sizeof key, "j/many/%02d.json", i);
        put(key, "x");
    }
    put("k/other", "o");
    const char *const data[] = {"j/data/a/0.png", "j/data/a/1.png", "j/data/b/2.png"};
    expect_list("j/data", data, 3);
    const char *const many[] = {"j/many/00.json", "j/many/01.json", "j/many/02.json",
                                "j/many/03.json", "j/many/04.json", "j/many/05.json",
                                "j/many/06.json", "j/many/07.json", "j/many/08.json",
                                "j/many/09.json"};
    expect_list("j/many", many, 10);
    cx_strlist_t l = {0};
    ck_assert_int_eq(cx_store_list(st, "", &l, NULL), 0);
    ck_assert_uint_eq(l.len, 16);
    ck_assert_str_eq(l.items[0], "j/data/a/0.png");
    ck_assert_str_eq(l.items[15], "k/other");
    for (size_t i = 1; i < l.len; i++) ck_assert_int_lt(strcmp(l.items[i - 1], l.items[i]), 0);
    cx_strlist_free(&l);
    expect_list("nothing/here", NULL, 0);
    expect_list("j/data/a/0.png", NULL, 0); /* an object is not a prefix */
    /* Appends to what the list holds already. */
    ck_assert_int_eq(cx_strlist_push(&l, "first"), 0);
    ck_assert_int_eq(cx_store_list(st, "k", &l, NULL), 0);
    ck_assert_uint_eq(l.len, 2);
    ck_assert_str_eq(l.items[0], "first");
    cx_strlist_free(&l);
}
END_TEST

START_TEST(test_delete) {
    cx_err_t err = {0};
    put("j/staging/u/1/0.png", "0");
    put("j/staging/u/1/1.png", "1");
    put("j/staging/u/2/0.png", "2");
    put("j/staging2/keep.png", "k2");
    put("j/data/keep.png", "k");
    ck_assert_int_eq(cx_store_delete(st, "j/staging/u/2/0.png", &err), 0);
    ck_assert_int_eq(cx_store_exists(st, "j/staging/u/2/0.png", &err), 0);
    ck_assert_int_eq(cx_store_delete(st, "j/staging/u/2/0.png", &err), 0); /* missing is fine */
    ck_assert_msg(cx_store_delete_prefix(st, "j/staging", &err) == 0, "%s", err.msg);
    const char *const left[] = {"j/data/keep.png", "j/staging2/keep.png"};
    expect_list("j", left, 2);
    ck_assert_int_eq(cx_store_delete_prefix(st, "j/staging", &err), 0); /* again */
    ck_assert_int_eq(cx_store_delete_prefix(st, "", &err), -1);
    ck_assert_int_eq(err.code, CX_EINVAL);
}
END_TEST

START_TEST(test_bad_keys) {
    const char *bad[] = {"/abs", "a//b", "a/../b", "a b", "trailing/", ".tmp-x", "a?b", "a%2Fb"};
    cx_err_t err = {0};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_msg(cx_store_put(st, bad[i], "x", 1, &err) == -1 && err.code == CX_EINVAL,
                      "put '%s'", bad[i]);
        ck_assert_msg(cx_store_put_if_absent(st, bad[i], "x", 1, &err) == -1, "pia '%s'", bad[i]);
    }
    expect_list("", NULL, 0);
}
END_TEST

static TCase *cases(const char *name, void (*setup)(void), void (*teardown)(void)) {
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_put_get);
    tcase_add_test(tc, test_put_if_absent);
    tcase_add_test(tc, test_put_if_absent_race);
    tcase_add_test(tc, test_promote);
    tcase_add_test(tc, test_list);
    tcase_add_test(tc, test_delete);
    tcase_add_test(tc, test_bad_keys);
    return tc;
}

int main(void) {
    Suite *s = suite_create("store_conformance");
    suite_add_tcase(s, cases("file", setup_file, teardown_file));
    suite_add_tcase(s, cases("s3", setup_s3, teardown_s3));
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
