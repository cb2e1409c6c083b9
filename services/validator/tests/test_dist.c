/* cx_dist: linear algebra and alignment statistics against closed forms. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"

START_TEST(test_cholesky_norm) {
    /* A = [[4, 2], [2, 3]]: L = [[2, 0], [1, sqrt 2]] */
    double a[4] = {4, 2, 2, 3}, tmp[2];
    ck_assert_int_eq(cx_dist_cholesky(a, 2), 0);
    ck_assert_double_eq_tol(a[0], 2, 1e-15);
    ck_assert_double_eq_tol(a[2], 1, 1e-15);
    ck_assert_double_eq_tol(a[3], sqrt(2), 1e-15);
    ck_assert_double_eq(a[1], 0);
    /* x^T A^-1 x for x = (1, 1): A^-1 = [[3, -2], [-2, 4]] / 8 -> 3/8 */
    double x[2] = {1, 1};
    ck_assert_double_eq_tol(cx_dist_chol_norm(a, 2, x, tmp), sqrt(3.0 / 8),
                            1e-15);
    double bad[4] = {1, 2, 2, 1}; /* indefinite */
    ck_assert_int_eq(cx_dist_cholesky(bad, 2), -1);
}
END_TEST

START_TEST(test_eigsym) {
    /* [[2, 1, 0], [1, 2, 0], [0, 0, 5]]: eigenvalues 5, 3, 1 */
    double a[9] = {2, 1, 0, 1, 2, 0, 0, 0, 5}, w[3], v[9];
    ck_assert_int_eq(cx_dist_eigsym(a, 3, w, v), 0);
    ck_assert_double_eq_tol(w[0], 5, 1e-12);
    ck_assert_double_eq_tol(w[1], 3, 1e-12);
    ck_assert_double_eq_tol(w[2], 1, 1e-12);
    ck_assert_double_eq_tol(fabs(v[2]), 1, 1e-12);           /* e_z */
    ck_assert_double_eq_tol(fabs(v[3]), sqrt(0.5), 1e-12);   /* (1,1)/sqrt2 */
    ck_assert_double_eq_tol(v[3] * v[4], 0.5, 1e-12);
}
END_TEST

START_TEST(test_frechet) {
    enum { N = 4 };
    double m1[N] = {0}, m2[N] = {1, 0, 0, 2}, c1[N * N] = {0},
           c2[N * N] = {0}, fd;
    for (int i = 0; i < N; i++) {
        c1[i * N + i] = 4;  /* sigma 2 */
        c2[i * N + i] = 9;  /* sigma 3 */
    }
    ck_assert_int_eq(cx_dist_frechet(m1, c1, m1, c1, N, &fd, NULL), 0);
    ck_assert_double_eq_tol(fd, 0, 1e-9);
    /* |dm|^2 + n (s1 - s2)^2 = 5 + 4 */
    ck_assert_int_eq(cx_dist_frechet(m1, c1, m2, c2, N, &fd, NULL), 0);
    ck_assert_double_eq_tol(fd, 9, 1e-9);
    /* Symmetric, also with a correlated covariance. */
    double c3[N * N] = {0}, fd2;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) c3[i * N + j] = i == j ? 2 : 0.5;
    ck_assert_int_eq(cx_dist_frechet(m1, c3, m2, c2, N, &fd, NULL), 0);
    ck_assert_int_eq(cx_dist_frechet(m2, c2, m1, c3, N, &fd2, NULL), 0);
    ck_assert_double_eq_tol(fd, fd2, 1e-9);
}
END_TEST

START_TEST(test_acc_meancov) {
    cx_dist_acc_t a;
    memset(&a, 0, sizeof a);
    double x[3][2] = {{1, 2}, {3, 2}, {5, 8}}, mean[2], cov[4], m2[2], c2[4];
    for (int i = 0; i < 3; i++) cx_dist_acc_add(&a, x[i], 2);
    cx_dist_acc_meancov(&a, 2, mean, cov);
    cx_dist_meancov(&x[0][0], 3, 2, 2, m2, c2);
    ck_assert_double_eq_tol(mean[0], 3, 1e-12);
    ck_assert_double_eq_tol(mean[1], 4, 1e-12);
    for (int i = 0; i < 4; i++) ck_assert_double_eq_tol(cov[i], c2[i], 1e-12);
    ck_assert_double_eq_tol(cov[0], 4, 1e-12);
    ck_assert_double_eq_tol(cov[1], 6, 1e-12);
    ck_assert_uint_eq(cx_dist_acc_nvalues(2), 6);
}
END_TEST

START_TEST(test_knn_pr) {
    /* references on a line at 0, 1, 2, 3, 10: 1-NN radii 1, 1, 1, 1, 7 */
    double ref[5] = {0, 1, 2, 3, 10}, r[5];
    ck_assert_int_eq(cx_dist_knn_radii(ref, 5, 1, 1, 1, r, NULL), 0);
    ck_assert_double_eq(r[0], 1);
    ck_assert_double_eq(r[4], 7);
    ck_assert_int_eq(cx_dist_knn_radii(ref, 5, 1, 1, 2, r, NULL), 0);
    ck_assert_double_eq(r[0], 2);
    ck_assert_double_eq(r[4], 8);
    uint8_t cov[1] = {0};
    double s = 6.0; /* only inside 10's radius (8) */
    ck_assert_int_eq(cx_dist_pr_sample(&s, ref, 5, 1, r, cov), 1);
    ck_assert_uint_eq(cov[0], 1u << 4); /* 3 is 3 away, its radius 2 */
    s = 30;
    ck_assert_int_eq(cx_dist_pr_sample(&s, ref, 5, 1, r, NULL), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gates_dist");
    TCase *tc = tcase_create("dist");
    tcase_add_test(tc, test_cholesky_norm);
    tcase_add_test(tc, test_eigsym);
    tcase_add_test(tc, test_frechet);
    tcase_add_test(tc, test_acc_meancov);
    tcase_add_test(tc, test_knn_pr);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
