/* DDIM, Euler and Heun samplers over the exact denoiser of the reference
 * model (see model_impl.h for the model's layout).
 *
 * Every sampler writes its state as x = a x0 + b eps: DDIM on the VP cosine
 * schedule (a = sqrt(alpha-bar), b = sqrt(1 - alpha-bar)), Euler and Heun
 * on Karras sigmas in the VE form (a = 1, b = sigma). For one Gaussian class
 * N(mu, Q S Q^T + s2 I) the posterior mean is then
 *     E[x0 | x] = mu + g(s2) d + Q V (h .* V^T Q^T d),  d = x - a mu,
 *     g(e) = a e / (a^2 e + b^2),  h_i = g(lam_i + s2) - g(s2).
 * The unconditional denoiser is the exact mixture (equal priors) with
 * responsibilities from each class's Gaussian marginal of x, evaluated in
 * the subspace (Woodbury); guidance mixes the two: uncond + w (cond -
 * uncond). All of it is affine in x and the means, so one evaluation is two
 * passes over memory: (1) project x onto Q and the class means, (2) rebuild
 * E[x0 | x] chunk by chunk and apply the step while the chunk is in L1.
 *
 * Determinism: each image is computed by one thread with fixed summation
 * order (explicit 16-lane partial sums, chunked), so the bytes do not depend
 * on the thread count. Noise streams: 0 for the initial state, 1 + i for
 * DDIM's extra noise at step i. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model_impl.h"

#define CHUNK 2048 /* pixels per pass-2 chunk: 8 KiB per float buffer */
#define LANES 16
#define MAX_STEPS 10000u

double cx__ddim_alphabar(uint32_t t)
{
    /* Nichol & Dhariwal cosine schedule, betas clipped at 0.999 */
    const double s = 0.008;
    double ab = 1.0;
    double fprev = cos(s / (1.0 + s) * M_PI / 2);
    fprev *= fprev;
    for (uint32_t i = 0; i <= t && i < CX__DDIM_T; i++) {
        double f = cos(((double)(i + 1) / CX__DDIM_T + s) / (1.0 + s) *
                       M_PI / 2);
        f *= f;
        double beta = 1.0 - f / fprev;
        ab *= 1.0 - (beta < 0.999 ? beta : 0.999);
        fprev = f;
    }
    return ab;
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

/* Fixed-order dot product: 16 float lanes, summed in double. */
static double dot_f(const float *a, const float *b, size_t n)
{
    float acc[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += a[i + l] * b[i + l];
    for (int l = 0; i < n; i++, l++)
        acc[l] += a[i] * b[i];
    double s = 0.0;
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

typedef struct gen {
    const cx_model_t *m;
    size_t cls;
    double w;          /* guidance scale */
    int mixture;       /* w != 1: the unconditional mixture is needed */
    uint64_t seed;
    uint32_t index;
    cx_gen_timing_t *t; /* NULL: no timing */
} gen_t;

/* The affine form of the guided denoiser at one noise level:
 * E = g x + sum_k cm[k] mu_k + sum_j v[j] q_j. */
typedef struct den {
    float g;
    float cm[CX__MAX_CLASSES];
    float v[CX__MAX_RANK];
} den_t;

/* One step's output: out = a_den E + a_x xin + a_y y + a_w w + a_z z. */
typedef struct upd {
    float a_den, a_x, a_y, a_w, a_z;
    const float *y, *w;
    uint32_t zstream;  /* used when a_z != 0 */
    float *out;        /* may alias xin or y */
    float *den_out;    /* if set, E is stored here too (Heun) */
} upd_t;

/* Pass 1: p_j = q_j . x, qk_k = mu_k . x (mixture only), chunk by chunk
 * so x stays in cache while the rows stream past. */
static void project(const gen_t *G, const float *x, double *p, double *qk)
{
    const cx_model_t *m = G->m;
    size_t d = m->npix;
    memset(p, 0, m->rank * sizeof *p);
    memset(qk, 0, m->nclasses * sizeof *qk);
    for (size_t s = 0; s < d; s += CHUNK) {
        size_t n = d - s < CHUNK ? d - s : CHUNK;
        for (size_t j = 0; j < m->rank; j++)
            p[j] += dot_f(m->q + j * d + s, x + s, n);
        if (G->mixture)
            for (size_t k = 0; k < m->nclasses; k++)
                qk[k] += dot_f(m->mu + k * d + s, x + s, n);
    }
}

/* From the projections to the affine form of the guided E[x0 | x]. */
static void combine(const gen_t *G, double a, double b, const double *p,
                    const double *qk, den_t *out)
{
    const cx_model_t *m = G->m;
    size_t r = m->rank, K = m->nclasses;
    double s2 = m->s2, a2 = a * a, b2 = b * b;
    double sig0 = a2 * s2 + b2;
    double g = a * s2 / sig0;
    double c[CX__MAX_CLASSES][CX__MAX_RANK], ll[CX__MAX_CLASSES];
    double beta[CX__MAX_CLASSES] = {0};

    for (size_t k = 0; k < K; k++) {
        if (!G->mixture && k != G->cls)
            continue;
        double e[CX__MAX_RANK], ee = 0.0, quad = 0.0, logdet = 0.0;
        for (size_t j = 0; j < r; j++) {
            e[j] = p[j] - a * m->qmu[k][j];
            ee += e[j] * e[j];
        }
        for (size_t i = 0; i < r; i++) { /* c = V_k^T e */
            const double *vi = m->v[k] + i * r;
            double s = 0.0;
            for (size_t j = 0; j < r; j++)
                s += vi[j] * e[j];
            c[k][i] = s;
            double ev = a2 * m->lam[k][i] + sig0;
            quad += s * s / ev;
            logdet += log(ev);
        }
        /* |x - a mu_k|^2 without the |x|^2 every class shares */
        double dd = -2.0 * a * qk[k] + a2 * m->mumu[k];
        ll[k] = -0.5 * (quad + (dd - ee) / sig0 + logdet);
    }
    if (G->mixture) {
        double mx = -INFINITY, z = 0.0;
        for (size_t k = 0; k < K; k++)
            mx = ll[k] > mx ? ll[k] : mx;
        for (size_t k = 0; k < K; k++)
            z += exp(ll[k] - mx);
        for (size_t k = 0; k < K; k++)
            beta[k] = (1.0 - G->w) * exp(ll[k] - mx) / z;
        beta[G->cls] += G->w;
    } else {
        beta[G->cls] = 1.0;
    }

    double v[CX__MAX_RANK] = {0};
    for (size_t k = 0; k < K; k++) {
        if (beta[k] == 0.0)
            continue;
        for (size_t i = 0; i < r; i++) {
            double ei = m->lam[k][i] + s2;
            double h = a * ei / (a2 * ei + b2) - g;
            double coef = beta[k] * h * c[k][i];
            const double *vi = m->v[k] + i * r;
            for (size_t j = 0; j < r; j++)
                v[j] += coef * vi[j];
        }
    }
    out->g = (float)g;
    for (size_t k = 0; k < K; k++)
        out->cm[k] = (float)(beta[k] * (1.0 - a * g));
    for (size_t j = 0; j < r; j++)
        out->v[j] = (float)v[j];
}

/* Pass 2: rebuild E chunk by chunk and apply the step to it. */
static void apply(const gen_t *G, const den_t *dn, const float *xin,
                  const upd_t *u)
{
    const cx_model_t *m = G->m;
    size_t d = m->npix;
    float den[CHUNK], z[CHUNK];
    double t0 = 0, t1 = 0;
    for (size_t s = 0; s < d; s += CHUNK) {
        size_t n = d - s < CHUNK ? d - s : CHUNK;
        if (G->t)
            t0 = now_s();
        const float *xs = xin + s;
        for (size_t i = 0; i < n; i++)
            den[i] = dn->g * xs[i];
        for (size_t k = 0; k < m->nclasses; k++) {
            if (dn->cm[k] == 0.0f)
                continue;
            const float *mk = m->mu + k * d + s;
            float ck = dn->cm[k];
            for (size_t i = 0; i < n; i++)
                den[i] += ck * mk[i];
        }
        for (size_t j = 0; j < m->rank; j++) {
            const float *qj = m->q + j * d + s;
            float vj = dn->v[j];
            for (size_t i = 0; i < n; i++)
                den[i] += vj * qj[i];
        }
        if (G->t) {
            t1 = now_s();
            G->t->denoise_s += t1 - t0;
        }
        if (u->den_out)
            memcpy(u->den_out + s, den, n * sizeof *den);
        for (size_t i = 0; i < n; i++)
            den[i] = u->a_den * den[i] + u->a_x * xs[i];
        if (u->y) {
            const float *ys = u->y + s;
            for (size_t i = 0; i < n; i++)
                den[i] += u->a_y * ys[i];
        }
        if (u->w) {
            const float *ws = u->w + s;
            for (size_t i = 0; i < n; i++)
                den[i] += u->a_w * ws[i];
        }
        if (u->a_z != 0.0f) {
            cx_normals(G->seed, G->index, u->zstream, s, n, z);
            for (size_t i = 0; i < n; i++)
                den[i] += u->a_z * z[i];
        }
        memcpy(u->out + s, den, n * sizeof *den);
        if (G->t)
            G->t->update_s += now_s() - t1;
    }
}

/* One denoiser evaluation at (a, b) on xin, followed by the step u. */
static void eval_step(const gen_t *G, double a, double b, const float *xin,
                      const upd_t *u)
{
    double p[CX__MAX_RANK], qk[CX__MAX_CLASSES];
    den_t dn;
    double t0 = G->t ? now_s() : 0;
    project(G, xin, p, qk);
    combine(G, a, b, p, qk, &dn);
    if (G->t) {
        G->t->denoise_s += now_s() - t0;
        G->t->evals++;
    }
    apply(G, &dn, xin, u);
}

/* x = a m0 + b z with m0 = (1 - w) mean_k mu_k + w mu_c: the mean of the
 * guided terminal marginal, so the prior is exact in mean (a state of pure
 * noise would start every image a few standard deviations off along the
 * basis directions that correlate with the mean image at large sizes). */
static void init_state(const gen_t *G, double a, double b, float *x)
{
    const cx_model_t *m = G->m;
    size_t d = m->npix, K = m->nclasses;
    double t0 = G->t ? now_s() : 0;
    cx_normals(G->seed, G->index, 0, 0, d, x);
    float fb = (float)b;
    float wc = (float)(a * G->w), wall = (float)(a * (1.0 - G->w) / K);
    const float *mc = m->mu + G->cls * d;
    for (size_t i = 0; i < d; i++)
        x[i] = fb * x[i] + wc * mc[i];
    if (wall != 0.0f)
        for (size_t k = 0; k < K; k++) {
            const float *mk = m->mu + k * d;
            for (size_t i = 0; i < d; i++)
                x[i] += wall * mk[i];
        }
    if (G->t)
        G->t->update_s += now_s() - t0;
}

static void run_ddim(const gen_t *G, uint32_t n, double eta, float *x)
{
    uint32_t t = cx__ddim_timestep(0, n);
    double ab = cx__ddim_alphabar(t);
    init_state(G, sqrt(ab), sqrt(1.0 - ab), x);
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
                   .out = x};
        eval_step(G, a, b, x, &u);
        ab = abn;
    }
}

static void run_karras(const gen_t *G, uint32_t n, int heun, float *x,
                       float *x1, float *d1)
{
    init_state(G, 1.0, cx__karras_sigma(0, n), x);
    for (uint32_t i = 0; i < n; i++) {
        double s = cx__karras_sigma(i, n), sn = cx__karras_sigma(i + 1, n);
        double h = sn - s;
        /* Euler: x' = x + h (x - E) / s */
        upd_t u = {.a_den = (float)(-h / s), .a_x = (float)(sn / s)};
        if (!heun || sn == 0.0) {
            u.out = x;
            eval_step(G, 1.0, s, x, &u);
            continue;
        }
        u.out = x1;
        u.den_out = d1;
        eval_step(G, 1.0, s, x, &u);
        /* x' = x + h/2 ((x - E1)/s + (x1 - E2)/sn) */
        upd_t u2 = {.a_den = (float)(-h / (2 * sn)),
                    .a_x = (float)(h / (2 * sn)),
                    .a_y = (float)(1.0 + h / (2 * s)), .y = x,
                    .a_w = (float)(-h / (2 * s)), .w = d1,
                    .out = x};
        eval_step(G, 1.0, sn, x1, &u2);
    }
}

static void quantise(const float *x, size_t n, int bits, uint16_t *out)
{
    float maxv = (float)((1u << bits) - 1u);
    for (size_t i = 0; i < n; i++) {
        float v = x[i] > 0.0f ? x[i] : 0.0f; /* NaN -> 0 */
        v = v < 1.0f ? v : 1.0f;
        out[i] = (uint16_t)(int32_t)(v * maxv + 0.5f);
    }
}

int cx_generate_timed(const cx_model_t *m, size_t class_idx,
                      const cx_sample_params_t *p, uint64_t seed,
                      uint32_t index, uint16_t *out, cx_gen_timing_t *timing,
                      cx_err_t *err)
{
    if (!m || !p || !out)
        return cx_err_set(err, CX_EINVAL, 0, "generate: missing argument");
    if (class_idx >= m->nclasses)
        return cx_err_set(err, CX_EINVAL, 0, "generate: class %zu of %zu",
                          class_idx, m->nclasses);
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

    int heun = p->sampler == CX_SAMPLER_HEUN;
    size_t d = m->npix;
    float *x = malloc((heun ? 3 : 1) * d * sizeof *x);
    if (!x)
        return cx_err_set(err, CX_ENOMEM, 1, "generate: out of memory");
    gen_t G = {.m = m, .cls = class_idx, .w = p->guidance_scale,
               .mixture = p->guidance_scale != 1.0, .seed = seed,
               .index = index, .t = timing};
    if (p->sampler == CX_SAMPLER_DDIM)
        run_ddim(&G, p->steps, p->eta, x);
    else
        run_karras(&G, p->steps, heun, x, heun ? x + d : NULL,
                   heun ? x + 2 * d : NULL);
    double t0 = timing ? now_s() : 0;
    quantise(x, d, p->bit_depth, out);
    if (timing)
        timing->quantise_s += now_s() - t0;
    free(x);
    return 0;
}

int cx_generate(const cx_model_t *m, size_t class_idx,
                const cx_sample_params_t *p, uint64_t seed, uint32_t index,
                uint16_t *out, cx_err_t *err)
{
    return cx_generate_timed(m, class_idx, p, seed, index, out, NULL, err);
}
