/* Small dense linear algebra in double: the symmetric eigen-solver used to
 * orthonormalise a model's subspace and by the fitter. */
#include <math.h>
#include <stddef.h>

#include "model_impl.h"

static void rotate(double *a, double *v, size_t n, size_t p, size_t q)
{
    double apq = a[p * n + q];
    double theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
    double t = (theta >= 0 ? 1.0 : -1.0) /
               (fabs(theta) + sqrt(theta * theta + 1.0));
    double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
    for (size_t k = 0; k < n; k++) { /* rotate columns p, q */
        double akp = a[k * n + p], akq = a[k * n + q];
        a[k * n + p] = c * akp - s * akq;
        a[k * n + q] = s * akp + c * akq;
    }
    for (size_t k = 0; k < n; k++) { /* rotate rows p, q */
        double apk = a[p * n + k], aqk = a[q * n + k];
        a[p * n + k] = c * apk - s * aqk;
        a[q * n + k] = s * apk + c * aqk;
    }
    for (size_t k = 0; k < n; k++) {
        double vkp = v[p * n + k], vkq = v[q * n + k];
        v[p * n + k] = c * vkp - s * vkq;
        v[q * n + k] = s * vkp + c * vkq;
    }
}

static void sort_desc(size_t n, double *w, double *v)
{
    for (size_t i = 0; i < n; i++) { /* selection sort, decreasing */
        size_t best = i;
        for (size_t j = i + 1; j < n; j++)
            if (w[j] > w[best])
                best = j;
        if (best == i)
            continue;
        double t = w[i];
        w[i] = w[best];
        w[best] = t;
        for (size_t k = 0; k < n; k++) {
            t = v[i * n + k];
            v[i * n + k] = v[best * n + k];
            v[best * n + k] = t;
        }
    }
}

void cx__sym_eigen(size_t n, double *a, double *w, double *v)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            v[j * n + i] = i == j ? 1.0 : 0.0;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, tot = 0.0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                tot += a[i * n + j] * a[i * n + j];
                if (i != j)
                    off += a[i * n + j] * a[i * n + j];
            }
        if (off <= 1e-30 * tot || off == 0.0)
            break;
        for (size_t p = 0; p < n; p++)
            for (size_t q = p + 1; q < n; q++)
                if (a[p * n + q] != 0.0)
                    rotate(a, v, n, p, q);
    }
    for (size_t i = 0; i < n; i++)
        w[i] = a[i * n + i];
    sort_desc(n, w, v);
}
