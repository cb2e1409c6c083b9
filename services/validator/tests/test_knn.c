/* cx_knn: the exact search returns exactly what brute force in double
 * returns (same row, same distance bits), for every kernel the CPU has,
 * on data built to make float pass 1 misrank: ties, duplicates, points
 * closer together than float resolution, large offsets. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/pool.h"
#include "knn.h"

static uint64_t rs;
static double ur(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) / 9007199254740992.0;
}

static const cx_knn_isa_t isas[] = {CX_KNN_PORTABLE, CX_KNN_AVX2,
                                    CX_KNN_AVX512};

/* Searches every query with every ISA the CPU has (and with a pool) and
 * compares with brute force; returns the number of ISAs run. */
static int check_exact(const cx_knn_t *k, const double *q, size_t m,
                       const int64_t *ex) {
    cx_knn_hit_t *h = calloc(m, sizeof *h);
    cx_pool_t *pool = cx_pool_new(3, NULL);
    int ran = 0;
    for (size_t a = 0; a < sizeof isas / sizeof isas[0]; a++) {
        if (cx_knn_set_isa(isas[a]) < 0) continue;
        for (int use_pool = 0; use_pool < 2; use_pool++) {
            cx_err_t e;
            ck_assert_int_eq(cx_knn_search(k, q, m, cx_knn_dim(k), ex,
                                           use_pool ? pool : NULL, h, &e),
                             0);
            for (size_t i = 0; i < m; i++) {
                cx_knn_hit_t b = cx_knn_brute(k, q + i * cx_knn_dim(k),
                                              ex ? ex[i] : -1);
                ck_assert_msg(b.index == h[i].index,
                              "%s query %zu: row %lld, brute force %lld",
                              cx_knn_isa_name(isas[a]), i,
                              (long long)h[i].index, (long long)b.index);
                ck_assert_msg(memcmp(&b.dist, &h[i].dist, sizeof b.dist) == 0,
                              "%s query %zu: %.17g vs %.17g",
                              cx_knn_isa_name(isas[a]), i, h[i].dist, b.dist);
            }
        }
        ran++;
    }
    cx_knn_set_isa(CX_KNN_AUTO);
    cx_pool_destroy(pool);
    free(h);
    return ran;
}

START_TEST(test_random_and_copies) {
    const size_t n = 3001, m = 77;
    const unsigned dim = 64;
    rs = 0x1234567ULL;
    float *rows = malloc(n * dim * sizeof *rows);
    double *q = malloc(m * dim * sizeof *q);
    for (size_t i = 0; i < n * dim; i++) rows[i] = (float)(2 * ur() - 1);
    /* exact duplicates inside the set: ties broken by the lowest row */
    for (size_t i = 0; i < 200; i++)
        memcpy(rows + (size_t)(ur() * n) * dim,
               rows + (size_t)(ur() * n) * dim, dim * sizeof *rows);
    for (size_t i = 0; i < m; i++) {
        size_t src = (size_t)(ur() * n);
        for (unsigned d = 0; d < dim; d++) {
            double v = rows[src * dim + d];
            /* a third exact copies, a third copies perturbed below float
             * resolution, a third fresh points */
            q[i * dim + d] = i % 3 == 0   ? v
                             : i % 3 == 1 ? v + 1e-9 * (ur() - 0.5)
                                          : 2 * ur() - 1;
        }
    }
    cx_knn_t *k = cx_knn_new(rows, n, dim, dim, NULL);
    ck_assert_ptr_nonnull(k);
    ck_assert_int_ge(check_exact(k, q, m, NULL), 1);
    cx_knn_destroy(k);
    free(rows);
    free(q);
}
END_TEST

/* Rows on a tiny sphere far from the origin: float pass 1 cannot tell the
 * distances apart (they differ below its rounding), pass 2 must. */
START_TEST(test_near_ties_far_from_origin) {
    const size_t n = 517, m = 40;
    const unsigned dim = 24;
    rs = 99;
    float *rows = malloc(n * dim * sizeof *rows);
    double *q = malloc(m * dim * sizeof *q);
    for (size_t i = 0; i < n; i++)
        for (unsigned d = 0; d < dim; d++)
            rows[i * dim + d] = (float)(1000.0 + 1e-3 * ur());
    for (size_t i = 0; i < m * dim; i++) q[i] = 1000.0 + 1e-3 * ur();
    cx_knn_t *k = cx_knn_new(rows, n, dim, dim, NULL);
    ck_assert_int_ge(check_exact(k, q, m, NULL), 1);
    cx_knn_hit_t h;
    ck_assert_int_eq(cx_knn_search(k, q, 1, dim, NULL, NULL, &h, NULL), 0);
    /* Many rows must have been verified: float could not rank them. */
    ck_assert_uint_gt(h.candidates, 1);
    cx_knn_destroy(k);
    free(rows);
    free(q);
}
END_TEST

/* Leave-one-out: a row's nearest other row, never itself. */
START_TEST(test_exclude) {
    const size_t n = 300;
    const unsigned dim = 64;
    rs = 7;
    float *rows = malloc(n * dim * sizeof *rows);
    for (size_t i = 0; i < n * dim; i++) rows[i] = (float)ur();
    memcpy(rows + 10 * dim, rows + 20 * dim, dim * sizeof *rows);
    double *q = malloc(n * dim * sizeof *q);
    int64_t *ex = malloc(n * sizeof *ex);
    for (size_t i = 0; i < n; i++) {
        for (unsigned d = 0; d < dim; d++) q[i * dim + d] = rows[i * dim + d];
        ex[i] = (int64_t)i;
    }
    cx_knn_t *k = cx_knn_new(rows, n, dim, dim, NULL);
    ck_assert_int_ge(check_exact(k, q, n, ex), 1);
    cx_knn_hit_t *h = calloc(n, sizeof *h);
    ck_assert_int_eq(cx_knn_search(k, q, n, dim, ex, NULL, h, NULL), 0);
    for (size_t i = 0; i < n; i++) ck_assert_int_ne(h[i].index, (int64_t)i);
    ck_assert_int_eq(h[10].index, 20);
    ck_assert_int_eq(h[20].index, 10);
    ck_assert_double_eq(h[10].dist, 0.0);
    cx_knn_destroy(k);
    free(rows);
    free(q);
    free(ex);
    free(h);
}
END_TEST

/* Sizes around the panel width, a strided source, and odd dimensions. */
START_TEST(test_shapes) {
    const size_t sizes[] = {1, 2, 15, 16, 17, 33};
    const unsigned dims[] = {1, 3, 17, 64, 96};
    rs = 5;
    for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++)
        for (size_t b = 0; b < sizeof dims / sizeof dims[0]; b++) {
            size_t n = sizes[a], stride = dims[b] + 3;
            unsigned dim = dims[b];
            float *rows = malloc(n * stride * sizeof *rows);
            double *q = malloc(13 * dim * sizeof *q);
            for (size_t i = 0; i < n * stride; i++) rows[i] = (float)ur();
            for (size_t i = 0; i < 13 * dim; i++) q[i] = ur();
            cx_knn_t *k = cx_knn_new(rows, n, dim, stride, NULL);
            ck_assert_ptr_nonnull(k);
            ck_assert_uint_eq(cx_knn_size(k), n);
            float back[96];
            cx_knn_row(k, n - 1, back);
            ck_assert(memcmp(back, rows + (n - 1) * stride,
                             dim * sizeof *back) == 0);
            ck_assert_int_ge(check_exact(k, q, 13, NULL), 1);
            cx_knn_destroy(k);
            free(rows);
            free(q);
        }
}
END_TEST

START_TEST(test_edges) {
    cx_err_t e;
    float rows[4] = {1, 2, NAN, 4};
    ck_assert_ptr_null(cx_knn_new(rows, 2, 2, 2, &e));
    ck_assert_int_eq(e.code, CX_EINVAL);
    ck_assert_ptr_null(cx_knn_new(rows, 2, 0, 2, &e));
    /* an empty index answers -1 */
    cx_knn_t *k = cx_knn_new(NULL, 0, 2, 2, &e);
    ck_assert_ptr_nonnull(k);
    double q[2] = {0, 0};
    cx_knn_hit_t h;
    ck_assert_int_eq(cx_knn_search(k, q, 1, 2, NULL, NULL, &h, &e), 0);
    ck_assert_int_eq(h.index, -1);
    cx_knn_destroy(k);
    /* one row, excluded: nothing left */
    float one[2] = {1, 1};
    k = cx_knn_new(one, 1, 2, 2, &e);
    int64_t ex = 0;
    ck_assert_int_eq(cx_knn_search(k, q, 1, 2, &ex, NULL, &h, &e), 0);
    ck_assert_int_eq(h.index, -1);
    q[1] = NAN;
    ck_assert_int_eq(cx_knn_search(k, q, 1, 2, NULL, NULL, &h, &e), -1);
    ck_assert_int_eq(e.code, CX_EINVAL);
    cx_knn_destroy(k);
    cx_knn_destroy(NULL);
    ck_assert_int_eq(cx_knn_set_isa(CX_KNN_PORTABLE), 0);
    ck_assert_int_eq(cx_knn_get_isa(), CX_KNN_PORTABLE);
    ck_assert_int_eq(cx_knn_set_isa(CX_KNN_AUTO), 0);
    ck_assert_int_ne(cx_knn_get_isa(), CX_KNN_AUTO);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gates_knn");
    TCase *tc = tcase_create("knn");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_random_and_copies);
    tcase_add_test(tc, test_near_ties_far_from_origin);
    tcase_add_test(tc, test_exclude);
    tcase_add_test(tc, test_shapes);
    tcase_add_test(tc, test_edges);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
