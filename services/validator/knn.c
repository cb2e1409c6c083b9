/* cx_knn_*: exact nearest-neighbour search (knn.h). */
#include "knn.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CX__KNN_X86 1
#endif

#define LANES 16         /* vectors per panel */
#define QT 12            /* queries per tile */
#define BLOCK_PANELS 128 /* panels per cache block (2048 vectors) */
#define TILES_PER_TASK 4 /* query tiles sharing one pass over a block */
#define COMPACT_AT 64    /* candidates kept before a list is re-filtered */

struct cx_knn {
    size_t n, npanels;
    unsigned dim;
    float *panels; /* [npanels][dim][LANES], 64-byte aligned */
    float *norms;  /* [npanels * LANES] ||y||^2 as float; +inf for padding */
    double ymax;   /* max ||y|| */
};

/* ---- index ------------------------------------------------------------- */

cx_knn_t *cx_knn_new(const float *rows, size_t n, unsigned dim,
                     size_t stride, cx_err_t *err) {
    if (dim < 1 || dim > 1024 || stride < dim || (n && !rows)) {
        cx_err_set(err, CX_EINVAL, 0, "knn: dim %u, stride %zu", dim, stride);
        return NULL;
    }
    cx_knn_t *k = calloc(1, sizeof *k);
    if (!k) goto fail_oom;
    k->n = n;
    k->dim = dim;
    k->npanels = (n + LANES - 1) / LANES;
    size_t np = k->npanels ? k->npanels : 1;
    size_t pbytes = np * dim * LANES * sizeof(float);
    k->panels = aligned_alloc(64, pbytes);
    k->norms = aligned_alloc(64, np * LANES * sizeof(float));
    if (!k->panels || !k->norms) goto fail_oom;
    memset(k->panels, 0, pbytes);
    for (size_t i = 0; i < np * LANES; i++) k->norms[i] = INFINITY;
    for (size_t i = 0; i < n; i++) {
        const float *r = rows + i * stride;
        float *p = k->panels + (i / LANES) * dim * LANES + i % LANES;
        double s = 0;
        for (unsigned d = 0; d < dim; d++) {
            if (!isfinite(r[d])) {
                cx_err_set(err, CX_EINVAL, 0, "knn: row %zu is not finite", i);
                cx_knn_destroy(k);
                return NULL;
            }
            p[(size_t)d * LANES] = r[d];
            s += (double)r[d] * r[d];
        }
        k->norms[i] = (float)s;
        if (sqrt(s) > k->ymax) k->ymax = sqrt(s);
    }
    return k;

fail_oom:
    cx_knn_destroy(k);
    cx_err_set(err, CX_ENOMEM, 0, "knn: index of %zu x %u", n, dim);
    return NULL;
}

void cx_knn_destroy(cx_knn_t *k) {
    if (!k) return;
    free(k->panels);
    free(k->norms);
    free(k);
}

size_t cx_knn_size(const cx_knn_t *k) { return k ? k->n : 0; }
unsigned cx_knn_dim(const cx_knn_t *k) { return k ? k->dim : 0; }

static inline float cx__knn_at(const cx_knn_t *k, size_t i, unsigned d) {
    return k->panels[(i / LANES) * k->dim * LANES + (size_t)d * LANES +
                     i % LANES];
}

void cx_knn_row(const cx_knn_t *k, size_t i, float *out) {
    for (unsigned d = 0; d < k->dim; d++) out[d] = cx__knn_at(k, i, d);
}

/* The exact (double) squared distance, the one both passes agree on. */
static double cx__knn_d2(const cx_knn_t *k, const double *q, size_t i) {
    double s = 0;
    for (unsigned d = 0; d < k->dim; d++) {
        double t = q[d] - (double)cx__knn_at(k, i, d);
        s += t * t;
    }
    return s;
}

cx_knn_hit_t cx_knn_brute(const cx_knn_t *k, const double *q,
                          int64_t exclude) {
    cx_knn_hit_t h = {INFINITY, -1, 0};
    double best = INFINITY;
    for (size_t i = 0; i < k->n; i++) {
        if ((int64_t)i == exclude) continue;
        double d2 = cx__knn_d2(k, q, i);
        if (d2 < best) {
            best = d2;
            h.index = (int64_t)i;
        }
        h.candidates++;
    }
    h.dist = sqrt(best);
    return h;
}

/* ---- instruction set --------------------------------------------------- */

static atomic_int cx__knn_isa; /* 0: not resolved yet */

static int cx__knn_cpu_has(cx_knn_isa_t isa) {
#ifdef CX__KNN_X86
    __builtin_cpu_init();
    if (isa == CX_KNN_AVX512) return __builtin_cpu_supports("avx512f");
    if (isa == CX_KNN_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return isa == CX_KNN_PORTABLE;
}

int cx_knn_set_isa(cx_knn_isa_t isa) {
    if (isa == CX_KNN_AUTO) {
        isa = cx__knn_cpu_has(CX_KNN_AVX512) ? CX_KNN_AVX512
              : cx__knn_cpu_has(CX_KNN_AVX2) ? CX_KNN_AVX2
                                             : CX_KNN_PORTABLE;
    } else if (!cx__knn_cpu_has(isa)) {
        return -1;
    }
    atomic_store(&cx__knn_isa, (int)isa);
    return 0;
}

cx_knn_isa_t cx_knn_get_isa(void) {
    if (atomic_load(&cx__knn_isa) == 0) cx_knn_set_isa(CX_KNN_AUTO);
    return (cx_knn_isa_t)atomic_load(&cx__knn_isa);
}

const char *cx_knn_isa_name(cx_knn_isa_t isa) {
    switch (isa) {
    case CX_KNN_PORTABLE: return "portable";
    case CX_KNN_AVX2: return "avx2+fma";
    case CX_KNN_AVX512: return "avx512f";
    default: return "auto";
    }
}

/* ---- per-query state and candidate handling ---------------------------- */

typedef struct cx__kq {
    double qn;   /* ||q_f||^2 rounded to float, as the kernels add it */
    double e2;   /* twice the error bound E */
    double cur;  /* running minimum of approximate squared distances */
    int64_t excl;
    uint32_t *cj; /* candidate rows */
    double *ca;   /* their approximate squared distances */
    size_t nc, cap;
    int oom;
} cx__kq_t;

typedef struct cx__ktile {
    float lim[QT]; /* report t = ||y||^2 - 2 q.y <= lim (conservative) */
    cx__kq_t *q[QT];
    size_t n;      /* rows in the index: lanes beyond are padding */
} cx__ktile_t;

/* The float limit for t, rounded up so no candidate is missed. */
static float cx__knn_lim(const cx__kq_t *s) {
    return nextafterf((float)(s->cur + s->e2 - s->qn), INFINITY);
}

static void cx__knn_push(cx__kq_t *s, uint32_t j, double a) {
    if (s->nc == s->cap) {
        /* Drop what the lowered minimum has ruled out before growing. */
        size_t w = 0;
        for (size_t r = 0; r < s->nc; r++)
            if (s->ca[r] <= s->cur + s->e2) {
                s->cj[w] = s->cj[r];
                s->ca[w++] = s->ca[r];
            }
        s->nc = w;
    }
    if (s->nc == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : COMPACT_AT;
        uint32_t *cj = realloc(s->cj, cap * sizeof *cj);
        if (cj) s->cj = cj;
        double *ca = realloc(s->ca, cap * sizeof *ca);
        if (ca) s->ca = ca;
        if (!cj || !ca) {
            s->oom = 1;
            return;
        }
        s->cap = cap;
    }
    s->cj[s->nc] = j;
    s->ca[s->nc++] = a;
}

/* Lanes of panel p flagged for query i of tile t; tv holds their t. Not
 * inlined: it runs rarely and keeps the kernels' registers free. */
__attribute__((noinline)) static void cx__knn_hits(cx__ktile_t *t, int i,
                                                   size_t p, const float *tv,
                                                   unsigned mask) {
    cx__kq_t *s = t->q[i];
    while (mask) {
        int l = __builtin_ctz(mask);
        mask &= mask - 1;
        size_t j = p * LANES + (size_t)l;
        if (j >= t->n || (int64_t)j == s->excl) continue;
        double a = s->qn + (double)tv[l];
        if (!(a <= s->cur + s->e2)) continue;
        cx__knn_push(s, (uint32_t)j, a);
        if (a < s->cur) {
            s->cur = a;
            t->lim[i] = cx__knn_lim(s);
        }
    }
}

/* ---- pass 1 kernels: panels [p0, p1) against one tile ------------------ */

typedef void (*cx__kernel_fn)(const float *qt, unsigned dim,
                              const float *pan, const float *yn, size_t p0,
                              size_t p1, cx__ktile_t *t);

static void cx__knn_kportable(const float *qt, unsigned dim,
                              const float *pan, const float *yn, size_t p0,
                              size_t p1, cx__ktile_t *t) {
    enum { QS = 4 }; /* queries per sub-tile: 4 x 16 accumulators */
    for (size_t p = p0; p < p1; p++) {
        const float *y = pan + p * dim * LANES;
        for (int i0 = 0; i0 < QT; i0 += QS) {
            float acc[QS][LANES] = {{0}};
            for (unsigned k = 0; k < dim; k++) {
                const float *yk = y + (size_t)k * LANES;
                const float *q = qt + (size_t)k * QT + i0;
                for (int i = 0; i < QS; i++)
                    for (int l = 0; l < LANES; l++)
                        acc[i][l] += q[i] * yk[l];
            }
            for (int i = 0; i < QS; i++) {
                float tv[LANES];
                unsigned mask = 0;
                for (int l = 0; l < LANES; l++) {
                    tv[l] = yn[p * LANES + l] - 2.0f * acc[i][l];
                    mask |= (unsigned)(tv[l] <= t->lim[i0 + i]) << l;
                }
                if (mask) cx__knn_hits(t, i0 + i, p, tv, mask);
            }
        }
    }
}

#ifdef CX__KNN_X86
__attribute__((target("avx512f"))) static void
cx__knn_k512(const float *qt, unsigned dim, const float *pan,
             const float *yn, size_t p0, size_t p1, cx__ktile_t *t) {
    const __m512 m2 = _mm512_set1_ps(-2.0f);
    for (size_t p = p0; p < p1; p++) {
        const float *y = pan + p * dim * LANES;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0,
               a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0,
               a11 = a0;
        for (unsigned k = 0; k < dim; k++) {
            const __m512 v = _mm512_load_ps(y + (size_t)k * LANES);
            const float *q = qt + (size_t)k * QT;
#define CX__F(n) a##n = _mm512_fmadd_ps(_mm512_set1_ps(q[n]), v, a##n)
            CX__F(0); CX__F(1); CX__F(2); CX__F(3); CX__F(4); CX__F(5);
            CX__F(6); CX__F(7); CX__F(8); CX__F(9); CX__F(10); CX__F(11);
#undef CX__F
        }
        const __m512 ynv = _mm512_load_ps(yn + p * LANES);
#define CX__C(n)                                                            \
    do {                                                                    \
        __m512 tv = _mm512_fmadd_ps(a##n, m2, ynv);                         \
        __mmask16 mk = _mm512_cmp_ps_mask(tv, _mm512_set1_ps(t->lim[n]),    \
                                          _CMP_LE_OQ);                      \
        if (mk) {                                                           \
            float buf[LANES];                                               \
            _mm512_storeu_ps(buf, tv);                                      \
            cx__knn_hits(t, n, p, buf, mk);                                 \
        }                                                                   \
    } while (0)
        CX__C(0); CX__C(1); CX__C(2); CX__C(3); CX__C(4); CX__C(5);
        CX__C(6); CX__C(7); CX__C(8); CX__C(9); CX__C(10); CX__C(11);
#undef CX__C
    }
}

/* Six queries at a time: 12 accumulators of 8 lanes. */
__attribute__((target("avx2,fma"))) static void
cx__knn_k256_half(const float *qt, int h, unsigned dim, const float *y,
                  const float *yn, size_t p, cx__ktile_t *t) {
    __m256 b00 = _mm256_setzero_ps(), b01 = b00, b10 = b00, b11 = b00,
           b20 = b00, b21 = b00, b30 = b00, b31 = b00, b40 = b00, b41 = b00,
           b50 = b00, b51 = b00;
    for (unsigned k = 0; k < dim; k++) {
        const __m256 v0 = _mm256_load_ps(y + (size_t)k * LANES);
        const __m256 v1 = _mm256_load_ps(y + (size_t)k * LANES + 8);
        const float *q = qt + (size_t)k * QT + 6 * h;
#define CX__F(n)                                                            \
    do {                                                                    \
        __m256 qb = _mm256_broadcast_ss(q + n);                             \
        b##n##0 = _mm256_fmadd_ps(qb, v0, b##n##0);                         \
        b##n##1 = _mm256_fmadd_ps(qb, v1, b##n##1);                         \
    } while (0)
        CX__F(0); CX__F(1); CX__F(2); CX__F(3); CX__F(4); CX__F(5);
#undef CX__F
    }
    const __m256 m2 = _mm256_set1_ps(-2.0f);
    const __m256 y0 = _mm256_load_ps(yn + p * LANES);
    const __m256 y1 = _mm256_load_ps(yn + p * LANES + 8);
#define CX__C(n)                                                            \
    do {                                                                    \
        __m256 lim = _mm256_set1_ps(t->lim[6 * h + n]);                     \
        __m256 t0 = _mm256_fmadd_ps(b##n##0, m2, y0);                       \
        __m256 t1 = _mm256_fmadd_ps(b##n##1, m2, y1);                       \
        unsigned mk =                                                       \
            (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(t0, lim, _CMP_LE_OQ)) | \
            (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(t1, lim, _CMP_LE_OQ))   \
                << 8;                                                       \
        if (mk) {                                                           \
            float buf[LANES];                                               \
            _mm256_storeu_ps(buf, t0);                                      \
            _mm256_storeu_ps(buf + 8, t1);                                  \
            cx__knn_hits(t, 6 * h + n, p, buf, mk);                         \
        }                                                                   \
    } while (0)
    CX__C(0); CX__C(1); CX__C(2); CX__C(3); CX__C(4); CX__C(5);
#undef CX__C
}

__attribute__((target("avx2,fma"))) static void
cx__knn_k256(const float *qt, unsigned dim, const float *pan,
             const float *yn, size_t p0, size_t p1, cx__ktile_t *t) {
    for (size_t p = p0; p < p1; p++) {
        const float *y = pan + p * dim * LANES;
        cx__knn_k256_half(qt, 0, dim, y, yn, p, t);
        cx__knn_k256_half(qt, 1, dim, y, yn, p, t); /* panel is in L1 */
    }
}
#endif

static cx__kernel_fn cx__knn_kernel(void) {
#ifdef CX__KNN_X86
    switch (cx_knn_get_isa()) {
    case CX_KNN_AVX512: return cx__knn_k512;
    case CX_KNN_AVX2: return cx__knn_k256;
    default: break;
    }
#endif
    return cx__knn_kportable;
}

/* ---- driver ------------------------------------------------------------ */

/* E: a bound on |approx - exact| for squared distances of q (norm qdn,
 * rounded to float: norm qfn) to any row, see knn.h. */
static double cx__knn_bound(double qfn, double qdn, double ymax,
                            unsigned dim) {
    const double u = 0x1p-24, kk = 2.0 * dim + 8;
    const double g = kk * u / (1.0 - kk * u);
    const double s = qfn + ymax;
    const double e1 = 2.0 * g * s * s;
    const double d = 1.001 * u * qdn; /* ||q - q_f|| */
    const double e2 = 2.0 * d * (s + d) + d * d;
    return (e1 + e2) * 1.01 + 1e-300;
}

typedef struct cx__ksearch {
    const cx_knn_t *k;
    size_t ntiles;
    const float *qt; /* [ntiles][dim][QT] */
    cx__ktile_t *tiles;
    cx__kernel_fn kern;
} cx__ksearch_t;

static void cx__knn_task(void *ctx, size_t task) {
    const cx__ksearch_t *s = ctx;
    const cx_knn_t *k = s->k;
    size_t t0 = task * TILES_PER_TASK, t1 = t0 + TILES_PER_TASK;
    if (t1 > s->ntiles) t1 = s->ntiles;
    for (size_t b = 0; b < k->npanels; b += BLOCK_PANELS) {
        size_t e = b + BLOCK_PANELS < k->npanels ? b + BLOCK_PANELS
                                                 : k->npanels;
        for (size_t t = t0; t < t1; t++)
            s->kern(s->qt + t * k->dim * QT, k->dim, k->panels, k->norms, b,
                    e, &s->tiles[t]);
    }
}

/* Sets up query i's state: its float image in the tile, the error bound
 * and a first upper bound on the minimum from one row. */
static void cx__knn_prepare(const cx_knn_t *k, const double *q, int64_t excl,
                            cx__kq_t *s, float *qcol, size_t qcol_stride) {
    double qf2 = 0, qd2 = 0;
    double qf[1024];
    for (unsigned d = 0; d < k->dim; d++) {
        float f = (float)q[d];
        qcol[d * qcol_stride] = f;
        qf[d] = f;
        qf2 += (double)f * f;
        qd2 += q[d] * q[d];
    }
    s->qn = (double)(float)qf2;
    s->e2 = 2.0 * cx__knn_bound(sqrt(qf2), sqrt(qd2), k->ymax, k->dim);
    s->excl = excl;
    s->cur = INFINITY;
    size_t j0 = excl == 0 ? 1 : 0;
    if (j0 < k->n) {
        /* An upper bound on row j0's approximate distance. */
        s->cur = cx__knn_d2(k, qf, j0) + s->e2 / 2;
    }
}

/* Pass 2: the candidates' exact distances; the smallest, lowest index on
 * ties. */
static void cx__knn_verify(const cx_knn_t *k, const double *q,
                           const cx__kq_t *s, cx_knn_hit_t *h) {
    double best = INFINITY;
    h->index = -1;
    h->candidates = 0;
    for (size_t r = 0; r < s->nc; r++) {
        if (s->ca[r] > s->cur + s->e2) continue;
        h->candidates++;
        double d2 = cx__knn_d2(k, q, s->cj[r]);
        if (d2 < best || (d2 == best && (int64_t)s->cj[r] < h->index)) {
            best = d2;
            h->index = s->cj[r];
        }
    }
    h->dist = sqrt(best);
}

int cx_knn_search(const cx_knn_t *k, const double *q, size_t m,
                  size_t qstride, const int64_t *exclude, cx_pool_t *pool,
                  cx_knn_hit_t *out, cx_err_t *err) {
    if (m == 0) return 0;
    for (size_t i = 0; i < m; i++)
        for (unsigned d = 0; d < k->dim; d++)
            if (!isfinite(q[i * qstride + d]))
                return cx_err_set(err, CX_EINVAL, 0,
                                  "knn: query %zu is not finite", i);
    cx__ksearch_t s = {.k = k, .kern = cx__knn_kernel()};
    s.ntiles = (m + QT - 1) / QT;
    float *qt = calloc(s.ntiles * k->dim * QT, sizeof *qt);
    cx__kq_t *st = calloc(m, sizeof *st);
    s.tiles = calloc(s.ntiles, sizeof *s.tiles);
    int rc = -1;
    if (!qt || !st || !s.tiles) {
        cx_err_set(err, CX_ENOMEM, 0, "knn: search of %zu queries", m);
        goto done;
    }
    s.qt = qt;
    for (size_t t = 0; t < s.ntiles; t++)
        for (int i = 0; i < QT; i++) {
            size_t qi = t * QT + (size_t)i;
            cx__ktile_t *tile = &s.tiles[t];
            tile->n = k->n;
            if (qi >= m) {
                tile->lim[i] = -INFINITY; /* padding: never a candidate */
                continue;
            }
            cx__knn_prepare(k, q + qi * qstride, exclude ? exclude[qi] : -1,
                            &st[qi], qt + t * k->dim * QT + i, QT);
            tile->q[i] = &st[qi];
            tile->lim[i] = cx__knn_lim(&st[qi]);
        }
    size_t ntasks = (s.ntiles + TILES_PER_TASK - 1) / TILES_PER_TASK;
    if (pool)
        cx_pool_for(pool, ntasks, cx__knn_task, &s);
    else
        for (size_t t = 0; t < ntasks; t++) cx__knn_task(&s, t);
    for (size_t i = 0; i < m; i++) {
        if (st[i].oom) {
            cx_err_set(err, CX_ENOMEM, 0, "knn: candidate list");
            goto done;
        }
        cx__knn_verify(k, q + i * qstride, &st[i], &out[i]);
    }
    rc = 0;
done:
    for (size_t i = 0; st && i < m; i++) {
        free(st[i].cj);
        free(st[i].ca);
    }
    free(st);
    free(s.tiles);
    free(qt);
    return rc;
}
