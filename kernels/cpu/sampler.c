/* DDIM, Euler and Heun samplers over the exact denoiser of a low-rank
 * Gaussian mixture (model_impl.h has the model's layout, kernels/README.md
 * the maths).
 *
 * Every sampler writes its state as x = a x0 + b eps: DDIM on the VP cosine
 * schedule (a = sqrt(alpha-bar), b = sqrt(1 - alpha-bar)), Euler and Heun
 * on Karras sigmas in the VE form (a = 1, b = sigma). For component k,
 * N(mu, U^T diag(var) U + s2 I), the posterior mean is
 *     E_k = mu + g(s2) d + U^T ((g(var + s2) - g(s2)) .* U d),  d = x - a mu,
 *     g(e) = a e / (a^2 e + b^2),
 * and the mixture's is sum_k r_k E_k with responsibilities r_k from each
 * component's marginal N(x; a mu, a^2 C + b^2 I), evaluated in the subspace
 * (Woodbury), normalised by log-sum-exp. Guided = uncond + w (cond -
 * uncond). The whole guided E is g x + W^T e for a scalar g and an m-vector
 * e, and everything it depends on is (W x, |x|^2): so one evaluation is two
 * passes over W whatever the number of components, (1) project x onto W's
 * rows, (2) rebuild E chunk by chunk and apply the step while in L1. With
 * w = 1 only the class's span matters: its prefix of W, or its own local
 * basis where the model has one (model_impl.h).
 *
 * Images are processed in groups of up to GROUP so each chunk of W is read
 * once per group rather than once per image; each image's arithmetic is
 * nevertheless exactly the same operations in the same order whatever the
 * group, thread or batch (vec.h's blocked kernels are order-identical to the
 * single-row ones), so the bytes of image i depend only on (model, class,
 * params, seed, i). Noise streams: 0 for the initial state, 1 + i for DDIM's
 * extra noise at step i. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model_impl.h"
#include "vec.h"

#define CHUNK 1024 /* pixels per pass chunk: 4 KiB per float buffer */
#define GROUP 8    /* images sharing one stream of W */
#define MAX_STEPS 10000u
#define MAX_THREADS 256u

/* Nichol & Dhariwal cosine schedule, betas clipped at 0.999: alphabar[t]
 * is the running product up to t. Filled once, in the order a per-call
 * loop would multiply, so every value is the same double it always was;
 * the per-call loop cost up to 1,000 cos() twice per step and sample. */
static double ddim_alphabar[CX__DDIM_T];
static pthread_once_t ddim_alphabar_once = PTHREAD_ONCE_INIT;

static void ddim_alphabar_fill(void)
{
    const double s = 0.008;
    double ab = 1.0;
    double fprev = cos(s / (1.0 + s) * M_PI / 2);
    fprev *= fprev;
    for (uint32_t i = 0; i < CX__DDIM_T; i++) {
        double f = cos(((double)(i + 1) / CX__DDIM_T + s) / (1.0 + s) *
                       M_PI / 2);
        f *= f;
        double beta = 1.0 - f / fprev;
        ab *= 1.0 - (beta < 0.999 ? beta : 0.999);
        fprev = f;
        ddim_alphabar[i] = ab;
    }
}

double cx__ddim_alphabar(uint32_t t)
{
    pthread_once(&ddim_alphabar_once, ddim_alphabar_fill);
    return ddim_alphabar[t < CX__DDIM_T ? t : CX__DDIM_T - 1];
}

uint32_t cx__ddim_timestep(uint32_t i, uint32_t n)
{
    if (n <= 1)
        return CX__DDIM_T - 1;
    return (uint32_t)lround((double)(CX__DDIM_T - 1) * (n - 1 - i) / (n - 1));
}

double cx__karras_sigma(uint32_t i, uint32_t n)
{
    if (i >= n)
        return 0.0;
    double hi = pow(CX__SIGMA_MAX, 1.0 / CX__KARRAS_RHO);
    double lo = pow(CX__SIGMA_MIN, 1.0 / CX__KARRAS_RHO);
    double f = n > 1 ? (double)i / (n - 1) : 0.0;
    return pow(hi + f * (lo - hi), CX__KARRAS_RHO);
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Buffers of one image, named by role so that one step description
 * serves the whole group. */
enum { BUF_X, BUF_X1, BUF_D1, BUF_NONE };

typedef struct img {
    uint32_t index;
    float *buf[3]; /* x; Heun: x1 (trial point), d1 (first denoiser) */
    double *c;     /* m: W x */
    double xx;     /* |x|^2 */
    float g;       /* E = g x + W^T e */
    float *e;      /* m */
} img_t;

typedef struct grp {
    const cx_model_t *m;
    size_t cls;
    double w;       /* guidance scale */
    int cond, uncond; /* which mixtures the guided E needs */
    size_t rows;    /* basis rows in use */
    const float *basis; /* W, or the class's local basis (local) */
    int local;      /* coefficients alpha_l, b_l of the class-local basis */
    uint64_t seed;
    size_t n;       /* images in this group */
    img_t img[GROUP];
    float *den;     /* GROUP x CHUNK */
    float *z;       /* CHUNK */
    double *ll, *beta, *p, *dc, *e;  /* combine scratch */
    cx_gen_timing_t *t;  /* NULL: no timing */
    float *xb, *eb;      /* owned storage behind img[] */
    double *cb;
} grp_t;

/* One step: out = a_den E + a_x in + a_y y + a_w w + a_z z (buffers by
 * role; out may be in or y). */
typedef struct upd {
    float a_den, a_x, a_y, a_w, a_z;
    int in, out, y, wb, den_out; /* BUF_* */
    uint32_t zstream;            /* when a_z != 0 */
} upd_t;

/* ---- pass 1: projections ---------------------------------------------- */

static void project(grp_t *G, int in)
{
    const float *w = G->basis;
    size_t d = G->m->npix, rows = G->rows;
    for (size_t b = 0; b < G->n; b++) {
        memset(G->img[b].c, 0, rows * sizeof(double));
        G->img[b].xx = 0.0;
    }
    for (size_t s = 0; s < d; s += CHUNK) {
        size_t n = d - s < CHUNK ? d - s : CHUNK;
        size_t j = 0;
        for (; j + 4 <= rows; j += 4) {
            const float *r4[4] = {w + j * d + s, w + (j + 1) * d + s,
                                  w + (j + 2) * d + s, w + (j + 3) * d + s};
            size_t b = 0;
            for (; b + 2 <= G->n; b += 2) {
                double o[4], o2[4];
                cx__dot4x2(r4, G->img[b].buf[in] + s,
                           G->img[b + 1].buf[in] + s, n, o, o2);
                for (int q = 0; q < 4; q++) {
                    G->img[b].c[j + q] += o[q];
                    G->img[b + 1].c[j + q] += o2[q];
                }
            }
            for (; b < G->n; b++) {
                double o[4];
                cx__dot4(r4, G->img[b].buf[in] + s, n, o);
                for (int q = 0; q < 4; q++)
                    G->img[b].c[j + q] += o[q];
            }
        }
        for (; j < rows; j++)
            for (size_t b = 0; b < G->n; b++)
                G->img[b].c[j] +=
                    cx__dot(w + j * d + s, G->img[b].buf[in] + s, n);
        for (size_t b = 0; b < G->n; b++) {
            const float *x = G->img[b].buf[in] + s;
            G->img[b].xx += cx__dot(x, x, n);
        }
    }
}

/* ---- the mixture in W's coordinates ----------------------------------- */

/* log N(x; a mu_k, a^2 C_k + b^2 I) + const, and p = U_k d into p. */
/* A component's coordinates in the basis in use. */
static const double *alpha_of(const grp_t *G, const cx__comp_t *k)
{
    return G->local ? k->alpha_l : k->alpha;
}

static const double *b_of(const grp_t *G, const cx__comp_t *k, size_t *stride)
{
    *stride = G->local ? G->m->cdim[k->cls] : G->m->m;
    return G->local ? k->b_l : k->b;
}

static double comp_loglik(const grp_t *G, const cx__comp_t *k, double a,
                          double b, const double *c, double perp, double *p,
                          double *dc)
{
    size_t rows = G->rows, mm;
    const double *alpha = alpha_of(G, k), *bk = b_of(G, k, &mm);
    double a2 = a * a, b2 = b * b, sig0 = a2 * k->s2 + b2;
    double dd = 0.0, pp = 0.0, quad = 0.0;
    double logdet = ((double)G->m->npix - k->rank) * log(sig0);
    for (size_t j = 0; j < rows; j++) {
        dc[j] = c[j] - a * alpha[j];
        dd += dc[j] * dc[j];
    }
    for (uint32_t i = 0; i < k->rank; i++) {
        const double *bi = bk + i * mm;
        double s = 0.0;
        for (size_t j = 0; j < rows; j++)
            s += bi[j] * dc[j];
        p[i] = s;
        double e = a2 * ((double)k->var[i] + k->s2) + b2;
        quad += s * s / e;
        pp += s * s;
        logdet += log(e);
    }
    double res = perp + dd - pp; /* |d|^2 - |U d|^2 */
    return -0.5 * (quad + (res > 0.0 ? res : 0.0) / sig0 + logdet);
}

/* beta[k] += scale * softmax over [k0, k1) of ll[k] + logw */
static void responsibilities(const grp_t *G, size_t k0, size_t k1, int all,
                             double scale, const double *ll, double *beta)
{
    double mx = -INFINITY, z = 0.0;
    for (size_t k = k0; k < k1; k++) {
        double l = ll[k] + (all ? G->m->comp[k].logw_all : G->m->comp[k].logw);
        mx = l > mx ? l : mx;
    }
    for (size_t k = k0; k < k1; k++) {
        double l = ll[k] + (all ? G->m->comp[k].logw_all : G->m->comp[k].logw);
        z += exp(l - mx);
    }
    for (size_t k = k0; k < k1; k++) {
        double l = ll[k] + (all ? G->m->comp[k].logw_all : G->m->comp[k].logw);
        beta[k] += scale * exp(l - mx) / z;
    }
}

/* From (W x, |x|^2) to the guided E = g x + W^T e. */
static void combine(grp_t *G, img_t *im, double a, double b)
{
    const cx_model_t *m = G->m;
    size_t rows = G->rows, mm;
    size_t k0 = G->uncond ? 0 : m->first[G->cls];
    size_t k1 = G->uncond ? m->ncomp : m->first[G->cls + 1];
    double cc = 0.0, a2 = a * a, b2 = b * b;
    for (size_t j = 0; j < rows; j++)
        cc += im->c[j] * im->c[j];
    double perp = im->xx - cc; /* |x|^2 outside the subspace */
    perp = perp > 0.0 ? perp : 0.0;
    double *p = G->p;
    for (size_t k = k0; k < k1; k++) {
        G->ll[k] = comp_loglik(G, &m->comp[k], a, b, im->c, perp, p, G->dc);
        G->beta[k] = 0.0;
        p += m->comp[k].rank;
    }
    if (G->uncond)
        responsibilities(G, 0, m->ncomp, 1, 1.0 - G->w, G->ll, G->beta);
    if (G->cond)
        responsibilities(G, m->first[G->cls], m->first[G->cls + 1], 0, G->w,
                         G->ll, G->beta);
    double g = 0.0, *e = G->e;
    memset(e, 0, rows * sizeof *e);
    p = G->p;
    for (size_t k = k0; k < k1; p += m->comp[k].rank, k++) {
        const cx__comp_t *c = &m->comp[k];
        double be = G->beta[k];
        if (be == 0.0)
            continue;
        double sig0 = a2 * c->s2 + b2, g0 = a * c->s2 / sig0;
        g += be * g0;
        double cm = be * (1.0 - a * g0);
        const double *alpha = alpha_of(G, c), *bk = b_of(G, c, &mm);
        for (size_t j = 0; j < rows; j++)
            e[j] += cm * alpha[j];
        for (uint32_t i = 0; i < c->rank; i++) {
            double ei = (double)c->var[i] + c->s2;
            double h = a * ei / (a2 * ei + b2) - g0;
            double coef = be * h * p[i];
            const double *bi = bk + i * mm;
            for (size_t j = 0; j < rows; j++)
                e[j] += coef * bi[j];
        }
    }
    im->g = (float)g;
    for (size_t j = 0; j < rows; j++)
        im->e[j] = (float)e[j];
}

/* ---- pass 2: rebuild E and step --------------------------------------- */

/* den becomes the step's result (out may alias xs or ys, so the result is
 * formed in den and copied after). */
CX__CLONES static void step_chunk(float *out, float *den, const float *xs,
                                  const upd_t *u, const float *ys,
                                  const float *ws, const float *zs, size_t n)
{
    float a_den = u->a_den, a_x = u->a_x;
    for (size_t i = 0; i < n; i++)
        den[i] = a_den * den[i] + a_x * xs[i];
    if (ys)
        for (size_t i = 0; i < n; i++)
            den[i] += u->a_y * ys[i];
    if (ws)
        for (size_t i = 0; i < n; i++)
            den[i] += u->a_w * ws[i];
    if (zs)
        for (size_t i = 0; i < n; i++)
            den[i] += u->a_z * zs[i];
    memcpy(out, den, n * sizeof *out);
}

static void rebuild(grp_t *G, int in, size_t s, size_t n)
{
    const float *w = G->basis;
    size_t d = G->m->npix, rows = G->rows, j = 0;
    for (size_t b = 0; b < G->n; b++)
        cx__scale(G->den + b * CHUNK, G->img[b].g, G->img[b].buf[in] + s, n);
    for (; j + 4 <= rows; j += 4) {
        const float *r4[4] = {w + j * d + s, w + (j + 1) * d + s,
                              w + (j + 2) * d + s, w + (j + 3) * d + s};
        for (size_t b = 0; b < G->n; b++)
            cx__axpy4(G->den + b * CHUNK, G->img[b].e + j, r4, n);
    }
    for (; j < rows; j++)
        for (size_t b = 0; b < G->n; b++)
            cx__axpy(G->den + b * CHUNK, G->img[b].e[j], w + j * d + s, n);
}

static void apply(grp_t *G, const upd_t *u)
{
    size_t d = G->m->npix;
    double t0 = 0, t1 = 0;
    for (size_t s = 0; s < d; s += CHUNK) {
        size_t n = d - s < CHUNK ? d - s : CHUNK;
        if (G->t)
            t0 = now_s();
        rebuild(G, u->in, s, n);
        if (G->t) {
            t1 = now_s();
            G->t->denoise_s += t1 - t0;
        }
        for (size_t b = 0; b < G->n; b++) {
            img_t *im = &G->img[b];
            float *den = G->den + b * CHUNK;
            if (u->den_out != BUF_NONE)
                memcpy(im->buf[u->den_out] + s, den, n * sizeof *den);
            const float *zs = NULL;
            if (u->a_z != 0.0f) {
                cx_normals(G->seed, im->index, u->zstream, s, n, G->z);
                zs = G->z;
            }
            step_chunk(im->buf[u->out] + s, den, im->buf[u->in] + s, u,
                       u->y != BUF_NONE ? im->buf[u->y] + s : NULL,
                       u->wb != BUF_NONE ? im->buf[u->wb] + s : NULL, zs, n);
        }
        if (G->t)
            G->t->update_s += now_s() - t1;
    }
}

/* One denoiser evaluation at (a, b) followed by the step u, for the group */
static void eval_step(grp_t *G, double a, double b, const upd_t *u)
{
    double t0 = G->t ? now_s() : 0;
    project(G, u->in);
    for (size_t i = 0; i < G->n; i++)
        combine(G, &G->img[i], a, b);
    if (G->t) {
        G->t->denoise_s += now_s() - t0;
        G->t->evals += G->n;
    }
    apply(G, u);
}

/* x = a m0 + b z with m0 the mean of the guided terminal marginal,
 * (1 - w) sum_k prior weight_k mu_k + w sum_(k in class) weight_k mu_k, so
 * the prior is exact in mean (pure noise would start every image a few
 * standard deviations off along the directions that correlate with the
 * mean image at large sizes). */
static void init_state(grp_t *G, double a, double b)
{
    const cx_model_t *m = G->m;
    size_t d = m->npix, rows = G->rows;
    double t0 = G->t ? now_s() : 0;
    double *m0 = G->e;
    memset(m0, 0, rows * sizeof *m0);
    for (size_t k = 0; k < m->ncomp; k++) {
        const cx__comp_t *c = &m->comp[k];
        double wk = 0.0;
        if (G->uncond)
            wk += (1.0 - G->w) * m->prior[c->cls] * c->weight;
        if (G->cond && c->cls == G->cls)
            wk += G->w * c->weight;
        const double *alpha = alpha_of(G, c);
        for (size_t j = 0; wk != 0.0 && j < rows; j++)
            m0[j] += a * wk * alpha[j];
    }
    float *coef = G->img[0].e; /* shared: the same for every image */
    for (size_t j = 0; j < rows; j++)
        coef[j] = (float)m0[j];
    for (size_t i = 0; i < G->n; i++) {
        float *x = G->img[i].buf[BUF_X];
        cx_normals(G->seed, G->img[i].index, 0, 0, d, x);
        cx__scale(x, (float)b, x, d);
        const float *w = G->basis;
        size_t j = 0;
        for (; j + 4 <= rows; j += 4) {
            const float *r4[4] = {w + j * d, w + (j + 1) * d,
                                  w + (j + 2) * d, w + (j + 3) * d};
            cx__axpy4(x, coef + j, r4, d);
        }
        for (; j < rows; j++)
            cx__axpy(x, coef[j], w + j * d, d);
    }
    if (G->t)
        G->t->update_s += now_s() - t0;
}

static void run_ddim(grp_t *G, uint32_t n, double eta, int init)
{
    uint32_t t = cx__ddim_timestep(0, n);
    double ab = cx__ddim_alphabar(t);
    if (init)
        init_state(G, sqrt(ab), sqrt(1.0 - ab));
    for (uint32_t i = 0; i < n; i++) {
        double abn = i + 1 < n ? cx__ddim_alphabar(cx__ddim_timestep(i + 1, n))
                               : 1.0;
        double a = sqrt(ab), b = sqrt(1.0 - ab), an = sqrt(abn);
        double sig = eta * sqrt((1.0 - abn) / (1.0 - ab) * (1.0 - ab / abn));
        double c1 = 1.0 - abn - sig * sig;
        c1 = c1 > 0 ? sqrt(c1) : 0.0;
        upd_t u = {.a_den = (float)(an - c1 * a / b),
                   .a_x = (float)(c1 / b),
                   .a_z = (float)sig,
                   .zstream = 1 + i,
                   .in = BUF_X, .out = BUF_X, .y = BUF_NONE, .wb = BUF_NONE,
                   .den_out = BUF_NONE};
        eval_step(G, a, b, &u);
        ab = abn;
    }
}

static void run_karras(grp_t *G, uint32_t n, int heun, int init)
{
    if (init)
        init_state(G, 1.0, cx__karras_sigma(0, n));
    for (uint32_t i = 0; i < n; i++) {
        double s = cx__karras_sigma(i, n), sn = cx__karras_sigma(i + 1, n);
        double h = sn - s;
        /* Euler: x' = x + h (x - E) / s */
        upd_t u = {.a_den = (float)(-h / s), .a_x = (float)(sn / s),
                   .in = BUF_X, .out = BUF_X, .y = BUF_NONE, .wb = BUF_NONE,
                   .den_out = BUF_NONE};
        if (!heun || sn == 0.0) {
            eval_step(G, 1.0, s, &u);
            continue;
        }
        u.out = BUF_X1;
        u.den_out = BUF_D1;
        eval_step(G, 1.0, s, &u);
        /* x' = x + h/2 ((x - E1)/s + (x1 - E2)/sn) */
        upd_t u2 = {.a_den = (float)(-h / (2 * sn)),
                    .a_x = (float)(h / (2 * sn)),
                    .a_y = (float)(1.0 + h / (2 * s)), .y = BUF_X,
                    .a_w = (float)(-h / (2 * s)), .wb = BUF_D1,
                    .in = BUF_X1, .out = BUF_X, .den_out = BUF_NONE};
        eval_step(G, 1.0, sn, &u2);
    }
}

CX__CLONES static void quantise(const float *x, size_t n, int bits,
                                uint16_t *out)
{
    float maxv = (float)((1u << bits) - 1u);
    for (size_t i = 0; i < n; i++) {
        float v = x[i] > 0.0f ? x[i] : 0.0f; /* NaN -> 0 */
        v = v < 1.0f ? v : 1.0f;
        out[i] = (uint16_t)(int32_t)(v * maxv + 0.5f);
    }
}

/* ---- groups, threads and the public calls ----------------------------- */

typedef struct batch {
    const cx_model_t *m;
    const cx_sample_params_t *p;
    size_t cls;
    uint64_t seed;
    uint32_t first, count, gsize;
    uint16_t *out;      /* quantised output, or */
    float *fout;        /* the final states, unquantised */
    const float *x0;    /* NULL, or the initial states (count x D) */
    atomic_uint next;   /* next group to take */
    atomic_int failed;  /* a worker ran out of memory */
    int timed;
} batch_t;

typedef struct worker {
    batch_t *bt;
    cx_gen_timing_t t;
    pthread_t tid;
} worker_t;

static void grp_free(grp_t *G)
{
    free(G->xb);
    free(G->cb);
    free(G->eb);
    free(G->den);
    free(G->ll);
}

/* One allocation per kind for the whole group, reused for every group a
 * worker runs. */
static int grp_alloc(grp_t *G, const batch_t *bt)
{
    const cx_model_t *m = bt->m;
    size_t d = m->npix, mm = m->m ? m->m : 1, rsum = 0;
    size_t nb = bt->p->sampler == CX_SAMPLER_HEUN ? 3 : 1;
    for (size_t k = 0; k < m->ncomp; k++)
        rsum += m->comp[k].rank;
    memset(G, 0, sizeof *G);
    G->xb = malloc(bt->gsize * nb * d * sizeof *G->xb);
    G->cb = malloc(bt->gsize * mm * sizeof *G->cb);
    G->eb = malloc(bt->gsize * mm * sizeof *G->eb);
    G->den = malloc((GROUP * CHUNK + CHUNK) * sizeof *G->den);
    G->ll = malloc((2 * m->ncomp + rsum + 2 * mm) * sizeof *G->ll);
    if (!G->xb || !G->cb || !G->eb || !G->den || !G->ll) {
        grp_free(G);
        return -1;
    }
    G->z = G->den + GROUP * CHUNK;
    G->beta = G->ll + m->ncomp;
    G->p = G->beta + m->ncomp;
    G->dc = G->p + rsum;
    G->e = G->dc + mm;
    for (size_t i = 0; i < bt->gsize; i++) {
        for (size_t r = 0; r < nb; r++)
            G->img[i].buf[r] = G->xb + (i * nb + r) * d;
        G->img[i].c = G->cb + i * mm;
        G->img[i].e = G->eb + i * mm;
    }
    return 0;
}

static void run_group(grp_t *G, batch_t *bt, uint32_t g, cx_gen_timing_t *t)
{
    const cx_sample_params_t *p = bt->p;
    const cx_model_t *m = bt->m;
    uint32_t i0 = g * bt->gsize;
    G->m = m;
    G->cls = bt->cls;
    G->w = p->guidance_scale;
    G->cond = G->w != 0.0;
    G->uncond = G->w != 1.0;
    /* conditional only: the class's own basis where the model has one */
    G->local = !G->uncond && m->wc != NULL;
    G->rows = G->uncond ? m->m
                        : (G->local ? m->cdim[bt->cls] : m->mdim[bt->cls]);
    G->basis = G->local ? m->wc + m->coff[bt->cls] * m->npix : m->w;
    G->seed = bt->seed;
    G->n = bt->count - i0 < bt->gsize ? bt->count - i0 : bt->gsize;
    G->t = bt->timed ? t : NULL;
    size_t d = m->npix;
    for (size_t i = 0; i < G->n; i++) {
        G->img[i].index = bt->first + i0 + (uint32_t)i;
        if (bt->x0)
            memcpy(G->img[i].buf[BUF_X], bt->x0 + (size_t)(i0 + i) * d,
                   d * sizeof(float));
    }
    if (p->sampler == CX_SAMPLER_DDIM)
        run_ddim(G, p->steps, p->eta, !bt->x0);
    else
        run_karras(G, p->steps, p->sampler == CX_SAMPLER_HEUN, !bt->x0);
    double t0 = G->t ? now_s() : 0;
    for (size_t i = 0; i < G->n; i++) {
        if (bt->fout)
            memcpy(bt->fout + (size_t)(i0 + i) * d, G->img[i].buf[BUF_X],
                   d * sizeof(float));
        else
            quantise(G->img[i].buf[BUF_X], d, p->bit_depth,
                     bt->out + (size_t)(i0 + i) * d);
    }
    if (G->t)
        G->t->quantise_s += now_s() - t0;
}

static void *worker_main(void *arg)
{
    worker_t *wk = arg;
    batch_t *bt = wk->bt;
    grp_t G;
    if (grp_alloc(&G, bt) != 0) {
        atomic_store(&bt->failed, 1);
        return NULL;
    }
    uint32_t ngroups = (bt->count + bt->gsize - 1) / bt->gsize;
    for (;;) {
        uint32_t g = atomic_fetch_add(&bt->next, 1);
        if (g >= ngroups || atomic_load(&bt->failed))
            break;
        run_group(&G, bt, g, &wk->t);
    }
    grp_free(&G);
    return NULL;
}

int cx__check_sample_params(size_t nclasses, size_t class_idx,
                            const cx_sample_params_t *p, cx_err_t *err)
{
    if (class_idx >= nclasses)
        return cx_err_set(err, CX_EINVAL, 0, "generate: class %zu of %zu",
                          class_idx, nclasses);
    if (p->sampler != CX_SAMPLER_DDIM && p->sampler != CX_SAMPLER_EULER &&
        p->sampler != CX_SAMPLER_HEUN)
        return cx_err_set(err, CX_EINVAL, 0, "generate: unknown sampler %d",
                          p->sampler);
    uint32_t maxs = p->sampler == CX_SAMPLER_DDIM ? CX__DDIM_T : MAX_STEPS;
    if (p->steps < 1 || p->steps > maxs)
        return cx_err_set(err, CX_EINVAL, 0,
                          "generate: steps %u outside 1..%u", p->steps, maxs);
    if (!isfinite(p->guidance_scale) || fabs(p->guidance_scale) > 1000.0)
        return cx_err_set(err, CX_EINVAL, 0,
                          "generate: guidance scale %g outside -1000..1000",
                          p->guidance_scale);
    if (!(p->eta >= 0.0 && p->eta <= 1.0))
        return cx_err_set(err, CX_EINVAL, 0, "generate: eta %g outside 0..1",
                          p->eta);
    if (p->bit_depth != 8 && p->bit_depth != 16)
        return cx_err_set(err, CX_EINVAL, 0,
                          "generate: bit depth %d (want 8 or 16)",
                          p->bit_depth);
    return 0;
}

static unsigned pick_threads(unsigned threads, uint32_t count)
{
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1u;
    }
    threads = threads < MAX_THREADS ? threads : MAX_THREADS;
    return threads < count ? threads : count;
}

static int run_batch(batch_t *proto, unsigned threads,
                     cx_gen_timing_t *timing, cx_err_t *err);

int cx_generate_batch(const cx_model_t *m, size_t class_idx,
                      const cx_sample_params_t *p, uint64_t seed,
                      uint32_t first_index, uint32_t count, unsigned threads,
                      uint16_t *out, cx_gen_timing_t *timing, cx_err_t *err)
{
    if (!m || !p || !out)
        return cx_err_set(err, CX_EINVAL, 0, "generate: missing argument");
    batch_t bt = {.m = m, .p = p, .cls = class_idx, .seed = seed,
                  .first = first_index, .count = count, .out = out};
    return run_batch(&bt, threads, timing, err);
}

int cx_generate_float(const cx_model_t *m, size_t class_idx,
                      const cx_sample_params_t *p, uint64_t seed,
                      uint32_t index, float *out, cx_err_t *err)
{
    if (!m || !p || !out)
        return cx_err_set(err, CX_EINVAL, 0, "generate: missing argument");
    batch_t bt = {.m = m, .p = p, .cls = class_idx, .seed = seed,
                  .first = index, .count = 1, .fout = out};
    return run_batch(&bt, 1, NULL, err);
}

int cx__sample_from(const cx_model_t *m, size_t class_idx,
                    const cx_sample_params_t *p, uint64_t seed,
                    uint32_t index, float *x, cx_err_t *err)
{
    if (!m || !p || !x)
        return cx_err_set(err, CX_EINVAL, 0, "generate: missing argument");
    batch_t bt = {.m = m, .p = p, .cls = class_idx, .seed = seed,
                  .first = index, .count = 1, .fout = x, .x0 = x};
    return run_batch(&bt, 1, NULL, err);
}

static int run_batch(batch_t *proto, unsigned threads,
                     cx_gen_timing_t *timing, cx_err_t *err)
{
    if (cx__check_sample_params(proto->m->nclasses, proto->cls, proto->p,
                                err) != 0)
        return -1;
    uint32_t count = proto->count;
    if (count == 0)
        return 0;
    threads = pick_threads(threads, count);
    uint32_t per = (count + threads - 1) / threads;
    batch_t bt = *proto;
    bt.gsize = per < GROUP ? per : GROUP;
    bt.timed = timing != NULL;
    atomic_init(&bt.next, 0);
    atomic_init(&bt.failed, 0);
    worker_t *wk = calloc(threads, sizeof *wk);
    if (!wk)
        return cx_err_set(err, CX_ENOMEM, 1, "generate: out of memory");
    unsigned started = 1;
    for (unsigned i = 0; i < threads; i++)
        wk[i].bt = &bt;
    for (; started < threads; started++)
        if (pthread_create(&wk[started].tid, NULL, worker_main,
                           &wk[started]) != 0)
            break; /* fewer threads: same bytes, just slower */
    worker_main(&wk[0]);
    for (unsigned i = 1; i < started; i++)
        pthread_join(wk[i].tid, NULL);
    for (unsigned i = 0; timing && i < started; i++) {
        timing->denoise_s += wk[i].t.denoise_s;
        timing->update_s += wk[i].t.update_s;
        timing->quantise_s += wk[i].t.quantise_s;
        timing->evals += wk[i].t.evals;
    }
    free(wk);
    if (atomic_load(&bt.failed))
        return cx_err_set(err, CX_ENOMEM, 1, "generate: out of memory");
    return 0;
}

int cx_generate_timed(const cx_model_t *m, size_t class_idx,
                      const cx_sample_params_t *p, uint64_t seed,
                      uint32_t index, uint16_t *out, cx_gen_timing_t *timing,
                      cx_err_t *err)
{
    return cx_generate_batch(m, class_idx, p, seed, index, 1, 1, out, timing,
                             err);
}

int cx_generate(const cx_model_t *m, size_t class_idx,
                const cx_sample_params_t *p, uint64_t seed, uint32_t index,
                uint16_t *out, cx_err_t *err)
{
    return cx_generate_batch(m, class_idx, p, seed, index, 1, 1, out, NULL,
                             err);
}
