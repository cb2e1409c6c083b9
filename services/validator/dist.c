/* cx_dist_*: small dense linear algebra and alignment statistics (dist.h). */
#include "dist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int cx_dist_cholesky(double *a, size_t n) {
    for (size_t j = 0; j < n; j++) {
        double d = a[j * n + j];
        for (size_t k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
        if (!(d > 0)) return -1;
        d = sqrt(d);
        a[j * n + j] = d;
        for (size_t i = j + 1; i < n; i++) {
            double s = a[i * n + j];
            for (size_t k = 0; k < j; k++) s -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = s / d;
        }
        for (size_t i = 0; i < j; i++) a[i * n + j] = 0.0;
    }
    return 0;
}

double cx_dist_chol_norm(const double *l, size_t n, const double *x,
                         double *tmp) {
    double s2 = 0;
    for (size_t i = 0; i < n; i++) {
        double s = x[i];
        for (size_t k = 0; k < i; k++) s -= l[i * n + k] * tmp[k];
        tmp[i] = s / l[i * n + i];
        s2 += tmp[i] * tmp[i];
    }
    return sqrt(s2);
}

/* Cyclic Jacobi rotations until the off-diagonal mass is negligible. */
int cx_dist_eigsym(double *a, size_t n, double *w, double *v) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) v[i * n + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (size_t i = 0; i < n; i++) {
            diag += a[i * n + i] * a[i * n + i];
            for (size_t j = i + 1; j < n; j++) off += a[i * n + j] * a[i * n + j];
        }
        if (off <= 1e-30 * diag || off == 0) break;
        for (size_t p = 0; p < n; p++)
            for (size_t q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (fabs(apq) < 1e-300) continue;
                double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) /
                           (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (size_t k = 0; k < n; k++) {
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (size_t k = 0; k < n; k++) {
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for (size_t k = 0; k < n; k++) {
                    double vpk = v[p * n + k], vqk = v[q * n + k];
                    v[p * n + k] = c * vpk - s * vqk;
                    v[q * n + k] = s * vpk + c * vqk;
                }
            }
    }
    for (size_t i = 0; i < n; i++) w[i] = a[i * n + i];
    /* Selection sort, descending, rows of v along. */
    double *row = malloc(n * sizeof *row);
    if (!row) return -1;
    for (size_t i = 0; i < n; i++) {
        size_t b = i;
        for (size_t j = i + 1; j < n; j++)
            if (w[j] > w[b]) b = j;
        if (b == i) continue;
        double t = w[i];
        w[i] = w[b];
        w[b] = t;
        memcpy(row, v + i * n, n * sizeof *row);
        memcpy(v + i * n, v + b * n, n * sizeof *row);
        memcpy(v + b * n, row, n * sizeof *row);
    }
    free(row);
    return 0;
}

void cx_dist_meancov(const double *x, size_t count, size_t stride, size_t n,
                     double *mean, double *cov) {
    memset(mean, 0, n * sizeof *mean);
    memset(cov, 0, n * n * sizeof *cov);
    if (!count) return;
    for (size_t r = 0; r < count; r++)
        for (size_t i = 0; i < n; i++) mean[i] += x[r * stride + i];
    for (size_t i = 0; i < n; i++) mean[i] /= (double)count;
    for (size_t r = 0; r < count; r++) {
        const double *xr = x + r * stride;
        for (size_t i = 0; i < n; i++) {
            double di = xr[i] - mean[i];
            for (size_t j = i; j < n; j++) cov[i * n + j] += di * (xr[j] - mean[j]);
        }
    }
    double div = count > 1 ? (double)(count - 1) : 1.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i; j < n; j++) {
            cov[i * n + j] /= div;
            cov[j * n + i] = cov[i * n + j];
        }
}

/* B = V^T diag(f(w)) V for the eigen-decomposition (w, V) of a. */
static void cx__dist_apply(const double *w, const double *v, size_t n,
                           double (*f)(double), double *out) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (size_t k = 0; k < n; k++) s += v[k * n + i] * f(w[k]) * v[k * n + j];
            out[i * n + j] = s;
        }
}

static double cx__dist_sqrt0(double x) { return x > 0 ? sqrt(x) : 0.0; }

int cx_dist_frechet(const double *m1, const double *c1, const double *m2,
                    const double *c2, size_t n, double *out, cx_err_t *err) {
    double *buf = malloc((5 * n * n + n) * sizeof *buf);
    if (!buf) return cx_err_set(err, CX_ENOMEM, 0, "frechet distance");
    double *a = buf, *v = a + n * n, *s = v + n * n, *t = s + n * n,
           *mm = t + n * n, *w = mm + n * n;
    int rc = -1;
    /* S = C1^1/2 */
    memcpy(a, c1, n * n * sizeof *a);
    if (cx_dist_eigsym(a, n, w, v) < 0) goto oom;
    cx__dist_apply(w, v, n, cx__dist_sqrt0, s);
    /* M = S C2 S, symmetric PSD; tr(M^1/2) = sum sqrt(eig(M)). */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double acc = 0;
            for (size_t k = 0; k < n; k++) acc += s[i * n + k] * c2[k * n + j];
            t[i * n + j] = acc;
        }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double acc = 0;
            for (size_t k = 0; k < n; k++) acc += t[i * n + k] * s[k * n + j];
            mm[i * n + j] = acc;
        }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            mm[i * n + j] = mm[j * n + i] = 0.5 * (mm[i * n + j] + mm[j * n + i]);
    if (cx_dist_eigsym(mm, n, w, v) < 0) goto oom;
    double trsq = 0, tr = 0, dm = 0;
    for (size_t i = 0; i < n; i++) {
        trsq += cx__dist_sqrt0(w[i]);
        tr += c1[i * n + i] + c2[i * n + i];
        dm += (m1[i] - m2[i]) * (m1[i] - m2[i]);
    }
    *out = dm + tr - 2 * trsq;
    if (*out < 0) *out = 0; /* rounding on identical inputs */
    rc = 0;
    goto done;
oom:
    cx_err_set(err, CX_ENOMEM, 0, "frechet distance");
done:
    free(buf);
    return rc;
}

void cx_dist_acc_add(cx_dist_acc_t *a, const double *x, size_t n) {
    a->count += 1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        a->sum[i] += x[i];
        for (size_t j = i; j < n; j++) a->sxx[k++] += x[i] * x[j];
    }
}

void cx_dist_acc_merge(cx_dist_acc_t *dst, const cx_dist_acc_t *src,
                       size_t n) {
    dst->count += src->count;
    for (size_t i = 0; i < n; i++) dst->sum[i] += src->sum[i];
    for (size_t k = 0; k < n * (n + 1) / 2; k++) dst->sxx[k] += src->sxx[k];
}

void cx_dist_acc_meancov(const cx_dist_acc_t *a, size_t n, double *mean,
                         double *cov) {
    double c = a->count;
    for (size_t i = 0; i < n; i++) mean[i] = c > 0 ? a->sum[i] / c : 0.0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i; j < n; j++, k++) {
            double v = c > 1 ? (a->sxx[k] - c * mean[i] * mean[j]) / (c - 1)
                             : 0.0;
            cov[i * n + j] = cov[j * n + i] = v;
        }
}

int cx_dist_knn_radii(const double *x, size_t m, size_t stride, size_t dim,
                      unsigned k, double *radius, cx_err_t *err) {
    if (k == 0) k = 1;
    double *best = malloc((k ? k : 1) * sizeof *best);
    if (!best) return cx_err_set(err, CX_ENOMEM, 0, "knn radii");
    for (size_t i = 0; i < m; i++) {
        for (unsigned r = 0; r < k; r++) best[r] = INFINITY;
        for (size_t j = 0; j < m; j++) {
            if (j == i) continue;
            double d2 = 0;
            for (size_t d = 0; d < dim; d++) {
                double t = x[i * stride + d] - x[j * stride + d];
                d2 += t * t;
            }
            if (d2 >= best[k - 1]) continue;
            unsigned r = k - 1;
            while (r > 0 && best[r - 1] > d2) {
                best[r] = best[r - 1];
                r--;
            }
            best[r] = d2;
        }
        radius[i] = sqrt(best[k - 1]);
    }
    free(best);
    return 0;
}

int cx_dist_pr_sample(const double *s, const double *ref, size_t nref,
                      size_t dim, const double *radius, uint8_t *covered) {
    int in = 0;
    for (size_t j = 0; j < nref; j++) {
        double r2 = radius[j] * radius[j], d2 = 0;
        const double *rj = ref + j * dim;
        for (size_t d = 0; d < dim && d2 <= r2; d++) {
            double t = s[d] - rj[d];
            d2 += t * t;
        }
        if (d2 <= r2) {
            in = 1;
            if (!covered) return 1;
            covered[j / 8] |= (uint8_t)(1u << (j % 8));
        }
    }
    return in;
}
