/* Vector kernels: see vec.h for the summation-order contract. Written as
 * plain loops over a lane array so that the compiler vectorises them for
 * whichever target clone it is building. */
#include "vec.h"

static inline double lanes_sum(const float *acc)
{
    double s = 0.0;
    for (int l = 0; l < CX__LANES; l++)
        s += acc[l];
    return s;
}

CX__CLONES double cx__dot(const float *a, const float *b, size_t n)
{
    float acc[CX__LANES] = {0};
    size_t i = 0;
    for (; i + CX__LANES <= n; i += CX__LANES)
        for (int l = 0; l < CX__LANES; l++)
            acc[l] += a[i + l] * b[i + l];
    for (int l = 0; i < n; i++, l++)
        acc[l] += a[i] * b[i];
    return lanes_sum(acc);
}

CX__CLONES void cx__dot4(const float *const r[4], const float *x, size_t n,
                         double out[4])
{
    float a0[CX__LANES] = {0}, a1[CX__LANES] = {0}, a2[CX__LANES] = {0},
          a3[CX__LANES] = {0};
    const float *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3];
    size_t i = 0;
    for (; i + CX__LANES <= n; i += CX__LANES)
        for (int l = 0; l < CX__LANES; l++) {
            float xv = x[i + l];
            a0[l] += r0[i + l] * xv;
            a1[l] += r1[i + l] * xv;
            a2[l] += r2[i + l] * xv;
            a3[l] += r3[i + l] * xv;
        }
    for (int l = 0; i < n; i++, l++) {
        a0[l] += r0[i] * x[i];
        a1[l] += r1[i] * x[i];
        a2[l] += r2[i] * x[i];
        a3[l] += r3[i] * x[i];
    }
    out[0] = lanes_sum(a0);
    out[1] = lanes_sum(a1);
    out[2] = lanes_sum(a2);
    out[3] = lanes_sum(a3);
}

CX__CLONES void cx__dot4x2(const float *const r[4], const float *x,
                           const float *y, size_t n, double ox[4],
                           double oy[4])
{
    /* eight independent accumulators: twice cx__dot4's adds in flight,
     * which is what bounds it (the add latency), and the rows loaded once
     * for two vectors */
    float a0[CX__LANES] = {0}, a1[CX__LANES] = {0}, a2[CX__LANES] = {0},
          a3[CX__LANES] = {0}, b0[CX__LANES] = {0}, b1[CX__LANES] = {0},
          b2[CX__LANES] = {0}, b3[CX__LANES] = {0};
    const float *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3];
    size_t i = 0;
    for (; i + CX__LANES <= n; i += CX__LANES)
        for (int l = 0; l < CX__LANES; l++) {
            float xv = x[i + l], yv = y[i + l];
            float q0 = r0[i + l], q1 = r1[i + l], q2 = r2[i + l],
                  q3 = r3[i + l];
            a0[l] += q0 * xv;
            a1[l] += q1 * xv;
            a2[l] += q2 * xv;
            a3[l] += q3 * xv;
            b0[l] += q0 * yv;
            b1[l] += q1 * yv;
            b2[l] += q2 * yv;
            b3[l] += q3 * yv;
        }
    for (int l = 0; i < n; i++, l++) {
        a0[l] += r0[i] * x[i];
        a1[l] += r1[i] * x[i];
        a2[l] += r2[i] * x[i];
        a3[l] += r3[i] * x[i];
        b0[l] += r0[i] * y[i];
        b1[l] += r1[i] * y[i];
        b2[l] += r2[i] * y[i];
        b3[l] += r3[i] * y[i];
    }
    ox[0] = lanes_sum(a0);
    ox[1] = lanes_sum(a1);
    ox[2] = lanes_sum(a2);
    ox[3] = lanes_sum(a3);
    oy[0] = lanes_sum(b0);
    oy[1] = lanes_sum(b1);
    oy[2] = lanes_sum(b2);
    oy[3] = lanes_sum(b3);
}

CX__CLONES double cx__dotd(const float *a, const float *b, size_t n)
{
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += (double)a[i + l] * (double)b[i + l];
    for (int l = 0; i < n; i++, l++)
        acc[l] += (double)a[i] * (double)b[i];
    double s = 0.0;
    for (int l = 0; l < 8; l++)
        s += acc[l];
    return s;
}

CX__CLONES void cx__axpy(float *y, float c, const float *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += c * r[i];
}

CX__CLONES void cx__axpy4(float *y, const float c[4],
                          const float *const r[4], size_t n)
{
    const float *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3];
    float c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
    for (size_t i = 0; i < n; i++) {
        float v = y[i];
        v += c0 * r0[i];
        v += c1 * r1[i];
        v += c2 * r2[i];
        v += c3 * r3[i];
        y[i] = v;
    }
}

CX__CLONES void cx__scale(float *y, float c, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = c * x[i];
}

CX__CLONES void cx__axpyd(double *y, double c, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += c * (double)x[i];
}
