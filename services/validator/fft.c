#include "fft.h"

#include <math.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && !defined(CX_NO_CLONES)
#define CX__FFT_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", \
                                 "default")))
#else
#define CX__FFT_CLONES
#endif

int cx__fft_init(cx__fft_t *f, unsigned n) {
    unsigned lg = 0;
    if (n < 2 || n > CX__FFT_MAX || (n & (n - 1))) return -1;
    while ((1u << lg) < n) lg++;
    f->n = n;
    f->log2n = lg;
    for (unsigned k = 0; k < n / 2; k++) {
        double a = -2.0 * M_PI * (double)k / (double)n;
        f->wr[k] = (float)cos(a);
        f->wi[k] = (float)sin(a);
    }
    for (unsigned i = 0; i < n; i++) {
        unsigned r = 0;
        for (unsigned b = 0; b < lg; b++)
            if (i & (1u << b)) r |= 1u << (lg - 1 - b);
        f->rev[i] = (uint16_t)r;
    }
    return 0;
}

/* One butterfly on two rows p and q of length m with twiddle (wr, wi). */
CX__FFT_CLONES
static void cx__fft_bfly(float *restrict pr, float *restrict pi,
                         float *restrict qr, float *restrict qi, float wr,
                         float wi, unsigned m) {
    for (unsigned x = 0; x < m; x++) {
        float vr = qr[x] * wr - qi[x] * wi;
        float vi = qr[x] * wi + qi[x] * wr;
        float ur = pr[x], ui = pi[x];
        pr[x] = ur + vr;
        pi[x] = ui + vi;
        qr[x] = ur - vr;
        qi[x] = ui - vi;
    }
}

static void cx__fft_swap_rows(float *a, unsigned i, unsigned j, unsigned m) {
    float tmp[CX__FFT_MAX];
    memcpy(tmp, a + (size_t)i * m, m * sizeof *tmp);
    memcpy(a + (size_t)i * m, a + (size_t)j * m, m * sizeof *tmp);
    memcpy(a + (size_t)j * m, tmp, m * sizeof *tmp);
}

void cx__fft_cols(const cx__fft_t *f, float *re, float *im, unsigned ncols,
                  int inverse) {
    const unsigned n = f->n;
    for (unsigned i = 0; i < n; i++) {
        unsigned r = f->rev[i];
        if (r > i) {
            cx__fft_swap_rows(re, i, r, ncols);
            cx__fft_swap_rows(im, i, r, ncols);
        }
    }
    const float sgn = inverse ? -1.0f : 1.0f;
    for (unsigned len = 2; len <= n; len <<= 1) {
        unsigned half = len / 2, step = n / len;
        for (unsigned i = 0; i < n; i += len)
            for (unsigned j = 0; j < half; j++) {
                size_t p = (size_t)(i + j) * ncols;
                size_t q = (size_t)(i + j + half) * ncols;
                cx__fft_bfly(re + p, im + p, re + q, im + q,
                             f->wr[j * step], sgn * f->wi[j * step], ncols);
            }
    }
}

static void cx__fft_transpose(float *a, unsigned n) {
    for (unsigned y = 0; y < n; y++)
        for (unsigned x = y + 1; x < n; x++) {
            float t = a[(size_t)y * n + x];
            a[(size_t)y * n + x] = a[(size_t)x * n + y];
            a[(size_t)x * n + y] = t;
        }
}

void cx__fft_2d_t(const cx__fft_t *f, float *re, float *im, int inverse) {
    cx__fft_cols(f, re, im, f->n, inverse);
    cx__fft_transpose(re, f->n);
    cx__fft_transpose(im, f->n);
    cx__fft_cols(f, re, im, f->n, inverse);
}
