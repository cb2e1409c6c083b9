#include <check.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "cascade/pool.h"

typedef struct {
    atomic_ullong sum;
    atomic_uint *hits;
} ctx_t;

static void add(void *arg, size_t i) {
    ctx_t *c = arg;
    atomic_fetch_add(&c->sum, (unsigned long long)i);
    atomic_fetch_add(&c->hits[i], 1);
}

START_TEST(test_sums) {
    unsigned sizes[] = {1, 2, 3, 8};
    for (size_t s = 0; s < 4; s++) {
        cx_err_t err;
        cx_pool_t *p = cx_pool_new(sizes[s], &err);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(cx_pool_size(p), sizes[s]);
        size_t ns[] = {0, 1, 7, 1000, 100000};
        for (int rep = 0; rep < 3; rep++) {
            for (size_t k = 0; k < 5; k++) {
                size_t n = ns[k];
                ctx_t c = {0};
                c.hits = calloc(n + 1, sizeof *c.hits);
                cx_pool_for(p, n, add, &c);
                ck_assert_uint_eq(atomic_load(&c.sum),
                                  n ? (unsigned long long)n * (n - 1) / 2 : 0);
                /* One assertion per run, not per item: each ck_assert
                 * is a write(2), 1.2M of them took minutes under
                 * valgrind. */
                size_t wrong = 0;
                for (size_t i = 0; i < n; i++)
                    wrong += atomic_load(&c.hits[i]) != 1;
                ck_assert_msg(wrong == 0, "%zu of %zu items not run once",
                              wrong, n);
                free(c.hits);
            }
        }
        cx_pool_destroy(p);
    }
    cx_pool_destroy(NULL);
}
END_TEST

static void slow(void *arg, size_t i) {
    ctx_t *c = arg;
    if (i % 4 == 0) usleep(2000); /* uneven items */
    atomic_fetch_add(&c->sum, 1);
}

START_TEST(test_default_size_uneven) {
    cx_pool_t *p = cx_pool_new(0, NULL);
    ck_assert_uint_eq(cx_pool_size(p), (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
    ctx_t c = {0};
    cx_pool_for(p, 200, slow, &c);
    ck_assert_uint_eq(atomic_load(&c.sum), 200);
    cx_pool_destroy(p);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_add_test(tc, test_sums);
    tcase_add_test(tc, test_default_size_uneven);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
