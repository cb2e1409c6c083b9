/* cx_feat_*: the gates' measurements of one image (imgfeat.h). */
#include "imgfeat.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/util.h"
#include "fft.h"

#define G CX_FEAT_GRID
#define TILE 64           /* Welch tile side at full resolution */
#define NTILE_AXIS 3      /* 3 x 3 tiles */
#define RG 64             /* side of the repeated-patch autocorrelation */
#define REPEAT_EXCLUDE 3  /* lags with max(|dx|,|dy|) <= this are ignored */
#define HP_RADIUS 2       /* box high-pass radius on the thumbnail */

#define M(n) {#n, offsetof(cx_feat_t, n)}
const cx_feat_measure_t cx_feat_measures[] = {
    M(nonfinite), M(range),     M(clip),      M(hf),        M(mean),
    M(std),       M(skew),      M(kurt),      M(p01),       M(p50),
    M(p99),       M(otsu),      M(fg_area),   M(fg_cx),     M(fg_cy),
    M(symmetry),  M(body_mean), M(body_std),  M(body_skew), M(body_kurt),
    M(lap_var),   M(hf_ratio),  M(repeat)};
#undef M
const size_t cx_feat_nmeasures =
    sizeof cx_feat_measures / sizeof cx_feat_measures[0];

int cx_feat_measure_index(const char *name) {
    for (size_t i = 0; name && i < cx_feat_nmeasures; i++)
        if (strcmp(cx_feat_measures[i].name, name) == 0) return (int)i;
    return -1;
}

struct cx_feat_ws {
    uint32_t hist[65536];
    uint32_t col[4096];    /* column sums of one band of rows */
    double grid[G * G];    /* area thumbnail, full-scale units */
    double tmp[G * G];
    float cre[TILE * TILE], cim[TILE * TILE]; /* planar complex image */
    double pw[TILE * TILE];
    uint16_t xmap[G + 1];  /* first pixel column of each thumbnail column */
    cx__fft_t fft_tile, fft_rep;
    unsigned tile;         /* side the tile FFT was prepared for */
    uint16_t *q16;         /* quantised float input */
    size_t q16_cap;
};

cx_feat_ws_t *cx_feat_ws_new(cx_err_t *err) {
    cx_feat_ws_t *ws = calloc(1, sizeof *ws);
    if (!ws) {
        cx_err_set(err, CX_ENOMEM, 0, "feature workspace");
        return NULL;
    }
    cx__fft_init(&ws->fft_rep, RG);
    return ws;
}

void cx_feat_ws_destroy(cx_feat_ws_t *ws) {
    if (!ws) return;
    free(ws->q16);
    free(ws);
}

/* ---- pass 1: histogram and area thumbnail ------------------------------ */

/* Hot loops are compiled for AVX-512, AVX2 and baseline x86-64 and picked
 * at load time; they are integer arithmetic, so every clone gives the same
 * result. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && !defined(CX_NO_CLONES)
#define CX__FEAT_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", \
                                 "default")))
#else
#define CX__FEAT_CLONES
#endif

/* col[x] += r[x]: the vertical sums of one band of thumbnail rows. */
CX__FEAT_CLONES
static void cx__feat_colsum(uint32_t *col, const uint16_t *r, uint32_t w) {
    for (uint32_t x = 0; x < w; x++) col[x] += r[x];
}

static void cx__feat_pass1(cx_feat_ws_t *ws, const uint16_t *px, uint32_t w,
                           uint32_t h, uint32_t fs) {
    memset(ws->hist, 0, ((size_t)fs + 1) * sizeof ws->hist[0]);
    /* Values above full scale (8-bit images in uint16) count as full scale. */
    for (size_t i = 0, n = (size_t)w * h; i < n; i++)
        ws->hist[px[i] > fs ? fs : px[i]]++;
    if (w < G || h < G) {
        /* Smaller than the grid: nearest-pixel sampling. */
        for (unsigned cy = 0; cy < G; cy++)
            for (unsigned cx = 0; cx < G; cx++) {
                uint16_t v = px[(size_t)((uint64_t)cy * h / G) * w +
                                (uint64_t)cx * w / G];
                ws->grid[cy * G + cx] = (double)(v > fs ? fs : v) / fs;
            }
        return;
    }
    for (unsigned c = 0; c <= G; c++)
        ws->xmap[c] = (uint16_t)((uint64_t)c * w / G);
    for (unsigned cy = 0; cy < G; cy++) {
        uint32_t y0 = (uint32_t)((uint64_t)cy * h / G);
        uint32_t y1 = (uint32_t)((uint64_t)(cy + 1) * h / G);
        memset(ws->col, 0, w * sizeof ws->col[0]);
        for (uint32_t y = y0; y < y1; y++)
            cx__feat_colsum(ws->col, px + (size_t)y * w, w);
        for (unsigned cx = 0; cx < G; cx++) {
            uint64_t s = 0;
            for (uint32_t x = ws->xmap[cx]; x < ws->xmap[cx + 1]; x++)
                s += ws->col[x];
            double cnt = (double)(y1 - y0) *
                         (double)(ws->xmap[cx + 1] - ws->xmap[cx]);
            ws->grid[cy * G + cx] = (double)s / (cnt * fs);
        }
    }
}

/* ---- statistics from the histogram ------------------------------------- */

typedef struct cx__moments {
    double n, mean, std, skew, kurt;
} cx__moments_t;

/* Power sums of (v - shift) over the histogram bins [lo, hi]: s[0] = count,
 * s[k] = sum c (v - shift)^k. Shifting to mid-scale keeps the fourth
 * powers well inside double precision. Branch-free over every bin, in 8
 * fixed lanes (bin lo + i goes to lane i % 8) added in order at the end, so
 * each clone computes the same sums. */
CX__FEAT_CLONES
static void cx__feat_powsums(const uint32_t *hist, uint32_t lo, uint32_t hi,
                             double shift, double s[5]) {
    double a[5][8] = {{0}};
    const uint32_t n = hi - lo + 1, nb = n / 8;
    for (uint32_t b = 0; b < nb; b++) {
        const uint32_t *h = hist + lo + 8 * b;
        const double base = (double)(lo + 8 * b) - shift;
        for (int j = 0; j < 8; j++) {
            double c = h[j], d = base + j, d2 = d * d;
            a[0][j] += c;
            a[1][j] += c * d;
            a[2][j] += c * d2;
            a[3][j] += c * d2 * d;
            a[4][j] += c * d2 * d2;
        }
    }
    for (uint32_t i = 8 * nb; i < n; i++) {
        double c = hist[lo + i], d = (double)(lo + i) - shift, d2 = d * d;
        int j = (int)(i % 8);
        a[0][j] += c;
        a[1][j] += c * d;
        a[2][j] += c * d2;
        a[3][j] += c * d2 * d;
        a[4][j] += c * d2 * d2;
    }
    for (int k = 0; k < 5; k++) {
        s[k] = 0;
        for (int j = 0; j < 8; j++) s[k] += a[k][j];
    }
}

/* Moments in full-scale units from power sums about shift. */
static cx__moments_t cx__feat_moments(const double s[5], double shift,
                                      uint32_t fs) {
    cx__moments_t m = {0};
    if (s[0] <= 0) return m;
    double n = s[0], e1 = s[1] / n, e2 = s[2] / n, e3 = s[3] / n,
           e4 = s[4] / n;
    double var = e2 - e1 * e1;
    double c3 = e3 - 3 * e1 * e2 + 2 * e1 * e1 * e1;
    double c4 = e4 - 4 * e1 * e3 + 6 * e1 * e1 * e2 - 3 * e1 * e1 * e1 * e1;
    double mean = shift + e1;
    if (var < 0) var = 0;
    m.n = n;
    m.mean = mean / fs;
    m.std = sqrt(var) / fs;
    /* Relative floor: a constant image's variance is rounding noise. */
    if (var > 1e-12 * (mean * mean + 1.0)) {
        m.skew = c3 / (var * sqrt(var));
        m.kurt = c4 / (var * var) - 3.0;
    }
    return m;
}

/* Nearest-rank quantiles: out[i] is the value at which the cumulative count
 * first reaches floor(q[i] n) + 1 (q ascending). One pass. */
static void cx__feat_quantiles(const uint32_t *hist, uint32_t fs, uint64_t n,
                               const double *q, int nq, uint32_t *out) {
    uint64_t cum = 0;
    int i = 0;
    for (uint32_t v = 0; v <= fs && i < nq; v++) {
        cum += hist[v];
        while (i < nq) {
            uint64_t r = (uint64_t)(q[i] * (double)n) + 1;
            if (r > n) r = n;
            if (cum < r) break;
            out[i++] = v;
        }
    }
    while (i < nq) out[i++] = fs;
}

/* Otsu's threshold on a 256-bin histogram: the first value of the bright
 * class, in pixel units (0 when no split separates two non-empty classes,
 * so the whole image is foreground). */
static uint32_t cx__feat_otsu(const uint32_t *hist, uint32_t fs) {
    double h256[256] = {0}, total = 0, sum = 0;
    const unsigned shift = fs == 65535 ? 8 : 0;
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t s = 0; /* counts fit: n <= 4096^2 */
        for (uint32_t v = b << shift; v < (b + 1) << shift; v++) s += hist[v];
        h256[b] = s;
    }
    for (int b = 0; b < 256; b++) {
        total += h256[b];
        sum += b * h256[b];
    }
    double w0 = 0, s0 = 0, best = -1;
    int tbest = -1;
    for (int t = 0; t < 255; t++) {
        w0 += h256[t];
        s0 += t * h256[t];
        double w1 = total - w0;
        if (w0 <= 0 || w1 <= 0) continue;
        double m0 = s0 / w0, m1 = (sum - s0) / w1;
        double between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if (between > best) {
            best = between;
            tbest = t;
        }
    }
    return tbest < 0 ? 0 : (uint32_t)(tbest + 1) << shift;
}

static void cx__feat_hist_stats(const cx_feat_ws_t *ws, uint64_t n,
                                uint32_t fs, cx_feat_t *o, uint32_t *thr) {
    const double shift = (fs + 1) / 2.0;
    double s[5];
    cx__feat_powsums(ws->hist, 0, fs, shift, s);
    cx__moments_t all = cx__feat_moments(s, shift, fs);
    o->mean = all.mean;
    o->std = all.std;
    o->skew = all.skew;
    o->kurt = all.kurt;
    static const double qs[5] = {0.005, 0.01, 0.50, 0.99, 0.995};
    uint32_t qv[5];
    cx__feat_quantiles(ws->hist, fs, n, qs, 5, qv);
    o->range = (double)(qv[4] - qv[0]) / fs;
    o->p01 = qv[1] / (double)fs;
    o->p50 = qv[2] / (double)fs;
    o->p99 = qv[3] / (double)fs;
    o->clip = (double)((uint64_t)ws->hist[0] + ws->hist[fs]) / (double)n;

    uint32_t t = cx__feat_otsu(ws->hist, fs);
    cx__feat_powsums(ws->hist, t, fs, shift, s);
    cx__moments_t body = cx__feat_moments(s, shift, fs);
    *thr = t;
    o->otsu = (double)t / fs;
    o->fg_area = body.n / (double)n;
    o->body_mean = body.mean;
    o->body_std = body.std;
    o->body_skew = body.skew;
    o->body_kurt = body.kurt;
}

/* ---- pass 2: Laplacian and foreground centroid ------------------------- */

typedef struct cx__rowacc {
    int64_t lap1, lap2;  /* sum L, sum L^2 over the row's interior */
    uint32_t fx, fn;     /* sum of x and count of foreground pixels */
} cx__rowacc_t;

/* One row's sums: exact integer arithmetic, so every clone agrees. up and
 * dn may be NULL (first or last row: no Laplacian). */
CX__FEAT_CLONES
static void cx__feat_row2(const uint16_t *r, const uint16_t *up,
                          const uint16_t *dn, uint32_t w, uint32_t thr,
                          cx__rowacc_t *a) {
    uint32_t fx = 0, fn = 0;
    for (uint32_t x = 0; x < w; x++) {
        uint32_t m = r[x] >= thr;
        fx += m * x;
        fn += m;
    }
    a->fx = fx;
    a->fn = fn;
    int64_t l1 = 0, l2 = 0;
    if (up && dn)
        for (uint32_t x = 1; x + 1 < w; x++) {
            int32_t l = 4 * (int32_t)r[x] - r[x - 1] - r[x + 1] - up[x] -
                        dn[x];
            l1 += l;
            l2 += (int64_t)l * l;
        }
    a->lap1 = l1;
    a->lap2 = l2;
}

static void cx__feat_pass2(const uint16_t *px, uint32_t w, uint32_t h,
                           uint32_t fs, uint32_t thr, double var_px,
                           cx_feat_t *o) {
    uint64_t sx = 0, sy = 0, cnt = 0;
    int64_t lap1 = 0, lap2 = 0;
    for (uint32_t y = 0; y < h; y++) {
        const uint16_t *r = px + (size_t)y * w;
        int inner = y > 0 && y + 1 < h;
        cx__rowacc_t a;
        cx__feat_row2(r, inner ? r - w : NULL, inner ? r + w : NULL, w, thr,
                      &a);
        sx += a.fx;
        sy += (uint64_t)a.fn * y;
        cnt += a.fn;
        lap1 += a.lap1;
        lap2 += a.lap2;
    }
    o->fg_cx = cnt ? ((double)sx / (double)cnt + 0.5) / w : 0.5;
    o->fg_cy = cnt ? ((double)sy / (double)cnt + 0.5) / h : 0.5;
    double nl = (double)(w - 2) * (double)(h - 2);
    double m2 = (double)lap2 / nl, m1 = (double)lap1 / nl;
    o->lap_var = (m2 - m1 * m1) / ((double)fs * fs);
    if (o->lap_var < 0) o->lap_var = 0;
    o->hf = 0;
    if (var_px > 1e-12 * (o->mean * o->mean * fs * fs + 1.0))
        o->hf = m2 / var_px;
}

/* ---- structure on the thumbnail ---------------------------------------- */

static double cx__feat_symmetry(const double *g) {
    double m = 0;
    for (int i = 0; i < G * G; i++) m += g[i];
    m /= G * G;
    double num = 0, den = 0;
    for (int y = 0; y < G; y++)
        for (int x = 0; x < G; x++) {
            double a = g[y * G + x] - m, b = g[y * G + (G - 1 - x)] - m;
            num += a * b;
            den += a * a;
        }
    return den > 1e-18 ? num / den : 0.0;
}

/* The 8x8 thumbnail, z-scored within the image, into vec[0..64). */
static void cx__feat_thumb(const double *g, float *vec) {
    const int B = G / CX_FEAT_THUMB;
    double t[CX_FEAT_THUMB * CX_FEAT_THUMB], m = 0, v = 0;
    for (int ty = 0; ty < CX_FEAT_THUMB; ty++)
        for (int tx = 0; tx < CX_FEAT_THUMB; tx++) {
            double s = 0;
            for (int y = 0; y < B; y++)
                for (int x = 0; x < B; x++)
                    s += g[(ty * B + y) * G + tx * B + x];
            t[ty * CX_FEAT_THUMB + tx] = s / (B * B);
        }
    const int n = CX_FEAT_THUMB * CX_FEAT_THUMB;
    for (int i = 0; i < n; i++) m += t[i];
    m /= n;
    for (int i = 0; i < n; i++) v += (t[i] - m) * (t[i] - m);
    v = sqrt(v / n);
    for (int i = 0; i < n; i++)
        vec[i] = v > 1e-9 ? (float)((t[i] - m) / v) : 0.0f;
}

/* ---- spectrum ---------------------------------------------------------- */

/* Side of the Welch tiles: TILE, or the largest power of two that fits. */
static unsigned cx__feat_tile_side(uint32_t w, uint32_t h) {
    uint32_t s = w < h ? w : h;
    unsigned t = TILE;
    while (t > 8 && t > s) t >>= 1;
    return t;
}

/* Loads tile (ox, oy) of side t, mean removed and Hann windowed, into the
 * real (part 0) or imaginary (part 1) plane. */
static void cx__feat_load_tile(cx_feat_ws_t *ws, const uint16_t *px,
                               uint32_t w, uint32_t fs, unsigned t,
                               uint32_t ox, uint32_t oy, int part,
                               const double *win) {
    double mean = 0;
    for (unsigned y = 0; y < t; y++)
        for (unsigned x = 0; x < t; x++)
            mean += px[(size_t)(oy + y) * w + ox + x];
    mean /= (double)t * t;
    for (unsigned y = 0; y < t; y++)
        for (unsigned x = 0; x < t; x++) {
            double v = (px[(size_t)(oy + y) * w + ox + x] - mean) / fs;
            (part ? ws->cim : ws->cre)[y * t + x] =
                (float)(v * win[y] * win[x]);
        }
}

static void cx__feat_spectrum(cx_feat_ws_t *ws, const uint16_t *px,
                              uint32_t w, uint32_t h, uint32_t fs,
                              cx_feat_t *o) {
    const unsigned t = cx__feat_tile_side(w, h);
    if (ws->tile != t) {
        cx__fft_init(&ws->fft_tile, t);
        ws->tile = t;
    }
    double win[TILE], w2 = 0;
    for (unsigned i = 0; i < t; i++) {
        win[i] = 0.5 - 0.5 * cos(2.0 * M_PI * i / t);
        w2 += win[i] * win[i];
    }
    memset(ws->pw, 0, sizeof ws->pw);
    /* Tiles in pairs, one as the real and one as the imaginary part: the
     * radial sums of |Z|^2 over sets closed under k -> -k equal the sums of
     * the two tiles' own spectra. */
    const unsigned ntiles = NTILE_AXIS * NTILE_AXIS;
    for (unsigned k = 0; k < ntiles; k += 2) {
        memset(ws->cre, 0, (size_t)t * t * sizeof(float));
        memset(ws->cim, 0, (size_t)t * t * sizeof(float));
        for (unsigned p = 0; p < 2 && k + p < ntiles; p++) {
            unsigned i = (k + p) % NTILE_AXIS, j = (k + p) / NTILE_AXIS;
            uint32_t ox = (uint32_t)((uint64_t)i * (w - t) / (NTILE_AXIS - 1));
            uint32_t oy = (uint32_t)((uint64_t)j * (h - t) / (NTILE_AXIS - 1));
            cx__feat_load_tile(ws, px, w, fs, t, ox, oy, (int)p, win);
        }
        cx__fft_2d_t(&ws->fft_tile, ws->cre, ws->cim, 0);
        for (unsigned q = 0; q < t * t; q++) {
            double re = ws->cre[q], im = ws->cim[q];
            ws->pw[q] += re * re + im * im;
        }
    }
    /* White noise of variance s2 gives s2 in every band. */
    const double norm = 1.0 / ((double)ntiles * w2 * w2);
    double band[CX_FEAT_NSPEC] = {0}, total = 0, high = 0;
    unsigned nb[CX_FEAT_NSPEC] = {0};
    const int half = (int)t / 2;
    for (int ky = -half; ky < half; ky++)
        for (int kx = -half; kx < half; kx++) {
            double r = sqrt((double)(kx * kx + ky * ky)) / half;
            if (r <= 0 || r >= 1) continue;
            unsigned q = (unsigned)((ky + (int)t) % (int)t) * t +
                         (unsigned)((kx + (int)t) % (int)t);
            double p = ws->pw[q] * norm;
            int b = (int)(r * CX_FEAT_NSPEC);
            band[b] += p;
            nb[b]++;
            total += p;
            if (r >= 0.5) high += p;
        }
    o->hf_ratio = total > 0 ? high / total : 0.0;
    /* Small tiles leave low bands without frequencies: borrow the next. */
    for (int b = CX_FEAT_NSPEC - 1; b >= 0; b--) {
        if (nb[b]) {
            o->spec[b] = log10(band[b] / nb[b] + 1e-30);
        } else {
            o->spec[b] = b + 1 < CX_FEAT_NSPEC ? o->spec[b + 1] : -30.0;
        }
    }
}

/* ---- repeated patches -------------------------------------------------- */

/* Box blur of radius HP_RADIUS with clamped edges, separable, n x n. */
static void cx__feat_box(const double *src, double *dst, double *tmp, int n) {
    const int r = HP_RADIUS, k = 2 * HP_RADIUS + 1;
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            double s = 0;
            for (int d = -r; d <= r; d++) {
                int xx = x + d < 0 ? 0 : x + d >= n ? n - 1 : x + d;
                s += src[y * n + xx];
            }
            tmp[y * n + x] = s / k;
        }
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            double s = 0;
            for (int d = -r; d <= r; d++) {
                int yy = y + d < 0 ? 0 : y + d >= n ? n - 1 : y + d;
                s += tmp[yy * n + x];
            }
            dst[y * n + x] = s / k;
        }
}

/* The largest circular autocorrelation of the high-passed RG x RG thumbnail
 * (2x2 means of the grid) at lags outside the central square, over the
 * autocorrelation at lag 0. */
static double cx__feat_repeat(cx_feat_ws_t *ws) {
    const int n = RG, sz = RG * RG;
    double *small = ws->tmp, *blur = ws->tmp + sz, *rowtmp = ws->tmp + 2 * sz;
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            const double *g = ws->grid + (2 * y) * G + 2 * x;
            small[y * n + x] = 0.25 * (g[0] + g[1] + g[G] + g[G + 1]);
        }
    cx__feat_box(small, blur, rowtmp, n);
    double mean = 0;
    for (int i = 0; i < sz; i++) mean += small[i] - blur[i];
    mean /= sz;
    for (int i = 0; i < sz; i++) {
        ws->cre[i] = (float)(small[i] - blur[i] - mean);
        ws->cim[i] = 0.0f;
    }
    cx__fft_2d_t(&ws->fft_rep, ws->cre, ws->cim, 0);
    for (int i = 0; i < sz; i++) {
        float re = ws->cre[i], im = ws->cim[i];
        ws->cre[i] = re * re + im * im;
        ws->cim[i] = 0.0f;
    }
    cx__fft_2d_t(&ws->fft_rep, ws->cre, ws->cim, 1);
    double a0 = ws->cre[0];
    if (!(a0 > 1e-20)) return 0.0;
    double best = -1.0;
    for (int dy = 0; dy < n; dy++) {
        int ay = dy < n / 2 ? dy : n - dy;
        for (int dx = 0; dx < n; dx++) {
            int ax = dx < n / 2 ? dx : n - dx;
            if (ax <= REPEAT_EXCLUDE && ay <= REPEAT_EXCLUDE) continue;
            double a = ws->cre[dy * n + dx] / a0;
            if (a > best) best = a;
        }
    }
    return best;
}

/* ---- the vector -------------------------------------------------------- */

static float cx__feat_clampf(double v) {
    if (!(v == v)) return 0.0f;
    return (float)(v > 1e6 ? 1e6 : v < -1e6 ? -1e6 : v);
}

static void cx__feat_vector(cx_feat_t *o) {
    float *v = o->vec;
    for (int b = 0; b < CX_FEAT_NSPEC; b++)
        v[CX_FEAT_PRIV_DIM + b] = cx__feat_clampf(o->spec[b]);
    const double tail[16] = {o->mean,      o->std,       o->skew,
                             o->kurt,      o->p01,       o->p50,
                             o->p99,       o->otsu,      o->fg_area,
                             o->fg_cx,     o->fg_cy,     o->symmetry,
                             o->body_mean, o->body_std,  o->body_skew,
                             o->hf_ratio};
    for (int i = 0; i < 16; i++)
        v[CX_FEAT_PRIV_DIM + CX_FEAT_NSPEC + i] = cx__feat_clampf(tail[i]);
}

static int cx__feat_run(cx_feat_ws_t *ws, const uint16_t *px, uint32_t width,
                        uint32_t height, int depth, double nonfinite,
                        cx_feat_t *out, cx_feat_timing_t *tm, cx_err_t *err) {
    if (!px || width < 8 || height < 8 || width > 4096 || height > 4096)
        return cx_err_set(err, CX_EINVAL, 0,
                          "image %ux%u: sides must be in [8, 4096]", width,
                          height);
    if (depth != 8 && depth != 16)
        return cx_err_set(err, CX_EINVAL, 0, "bit depth %d is not 8 or 16",
                          depth);
    const uint32_t fs = depth == 16 ? 65535u : 255u;
    const uint64_t n = (uint64_t)width * height;
    memset(out, 0, sizeof *out);
    out->nonfinite = nonfinite;

    double t0 = tm ? cx_mono_ms() : 0, t1 = 0;
#define CX__LAP(field)                                                      \
    do {                                                                    \
        if (tm) {                                                           \
            t1 = cx_mono_ms();                                              \
            tm->field += t1 - t0;                                           \
            t0 = t1;                                                        \
        }                                                                   \
    } while (0)
    cx__feat_pass1(ws, px, width, height, fs);
    CX__LAP(pass1);
    uint32_t thr;
    cx__feat_hist_stats(ws, n, fs, out, &thr);
    CX__LAP(hist);
    double var_px = out->std * fs * out->std * fs;
    cx__feat_pass2(px, width, height, fs, thr, var_px, out);
    CX__LAP(pass2);
    out->symmetry = cx__feat_symmetry(ws->grid);
    cx__feat_thumb(ws->grid, out->vec);
    CX__LAP(structure);
    cx__feat_spectrum(ws, px, width, height, fs, out);
    CX__LAP(spectrum);
    out->repeat = cx__feat_repeat(ws);
    cx__feat_vector(out);
    CX__LAP(repeat);
#undef CX__LAP
    return 0;
}

int cx_feat_compute(cx_feat_ws_t *ws, const uint16_t *px, uint32_t width,
                    uint32_t height, int depth, cx_feat_t *out,
                    cx_err_t *err) {
    return cx__feat_run(ws, px, width, height, depth, 0.0, out, NULL, err);
}

int cx_feat_compute_timed(cx_feat_ws_t *ws, const uint16_t *px,
                          uint32_t width, uint32_t height, int depth,
                          cx_feat_t *out, cx_feat_timing_t *t,
                          cx_err_t *err) {
    return cx__feat_run(ws, px, width, height, depth, 0.0, out, t, err);
}

int cx_feat_compute_float(cx_feat_ws_t *ws, const float *px, uint32_t width,
                          uint32_t height, cx_feat_t *out, cx_err_t *err) {
    if (!px || width < 8 || height < 8)
        return cx_err_set(err, CX_EINVAL, 0, "image %ux%u: sides must be >= 8",
                          width, height);
    size_t n = (size_t)width * height;
    if (ws->q16_cap < n) {
        uint16_t *q = realloc(ws->q16, n * sizeof *q);
        if (!q) return cx_err_set(err, CX_ENOMEM, 0, "feature workspace");
        ws->q16 = q;
        ws->q16_cap = n;
    }
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float v = px[i];
        if (!isfinite(v)) {
            bad++;
            ws->q16[i] = 0;
            continue;
        }
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        ws->q16[i] = (uint16_t)(v * 65535.0f + 0.5f);
    }
    return cx__feat_run(ws, ws->q16, width, height, 16, (double)bad / (double)n,
                        out, NULL, err);
}
