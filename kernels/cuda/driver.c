/* The batched sampler's launch sequence (see driver.h). The schedules, the
 * initial state and the step coefficients are the CPU twin's
 * (kernels/cpu/sampler.c), computed the same way in double on the host. */
#include "driver.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../cpu/model_impl.h"

struct cxg_gen {
    cxg_ops_t ops;
    uint32_t B, npix, nchunk, nclasses;
    uint64_t bytes;
    cxg_model_t M; /* device arrays */
    /* host copies for the initial state */
    double *h_alpha;  /* ncomp x m */
    double *h_weight; /* ncomp */
    double *h_prior;  /* nclasses */
    uint32_t *h_cls, *h_first, *h_mdim;
    uint64_t *h_seeds;
    uint32_t *h_idx;
    float *h_cinit; /* m x B */
    /* device buffers */
    void *blk[40];
    size_t nblk;
    float *x, *x1, *d1, *y, *cpart, *e, *g, *cinit;
    double *xx, *c, *p, *q, *ll, *beta, *cm;
    uint64_t *seeds;
    uint32_t *idx;
    uint16_t *out16;
};

static uint32_t nchunks(uint32_t npix) {
    return (npix + CXG_CHUNK - 1) / CXG_CHUNK;
}

uint64_t cxg_bytes(uint32_t npix, uint32_t m, uint32_t ncomp, uint32_t rsum,
                   uint32_t nclasses, uint32_t batch)
{
    uint64_t B = batch, D = npix, nc = nchunks(npix);
    uint64_t model = (uint64_t)m * D * 4 + ((uint64_t)ncomp + rsum) * m * 8 +
                     (uint64_t)ncomp * (8 + 3 * 4 + 3 * 8) + (uint64_t)rsum * 8 +
                     ((uint64_t)nclasses + 1) * 4;
    uint64_t buf = 4 * B * D * 4 + nc * m * B * 4 + 2 * (uint64_t)m * B * 4 +
                   B * 4 + B * nc * 8 + B * m * 8 + 2 * B * rsum * 8 +
                   3 * B * ncomp * 8 + B * 8 + B * 4 + B * D * 2;
    return model + buf;
}

static int dev_alloc(cxg_gen_t *G, void **p, size_t bytes, cx_err_t *err)
{
    if (bytes == 0)
        bytes = 8;
    if (G->nblk == sizeof G->blk / sizeof G->blk[0] ||
        G->ops.alloc(G->ops.ctx, p, bytes) != 0)
        return cx_err_set(err, CX_ENOMEM, 0, "cuda: cannot allocate %zu "
                          "bytes: %s", bytes, G->ops.error(G->ops.ctx));
    G->blk[G->nblk++] = *p;
    G->bytes += bytes;
    return 0;
}

/* Allocates and fills a device array. */
static int dev_put(cxg_gen_t *G, void **p, const void *src, size_t bytes,
                   cx_err_t *err)
{
    if (dev_alloc(G, p, bytes, err) != 0)
        return -1;
    if (bytes && G->ops.put(G->ops.ctx, *p, src, bytes) != 0)
        return cx_err_set(err, CX_EMODEL, 0, "cuda: upload: %s",
                          G->ops.error(G->ops.ctx));
    return 0;
}

void cxg_destroy(cxg_gen_t *G)
{
    if (!G)
        return;
    for (size_t i = 0; i < G->nblk; i++)
        G->ops.release(G->ops.ctx, G->blk[i]);
    free(G->h_alpha);
    free(G->h_weight);
    free(G->h_prior);
    free(G->h_cls);
    free(G->h_first);
    free(G->h_mdim);
    free(G->h_seeds);
    free(G->h_idx);
    free(G->h_cinit);
    free(G);
}

/* The flat per-component arrays, on the host, then uploaded. */
static int upload_model(cxg_gen_t *G, const cx_model_t *m, cx_err_t *err)
{
    size_t K = m->ncomp, mm = m->m, rsum = 0;
    for (size_t k = 0; k < K; k++)
        rsum += m->comp[k].rank;
    uint64_t *coff = calloc(K ? K : 1, sizeof *coff);
    uint32_t *cls = calloc(K ? K : 1, sizeof *cls);
    uint32_t *rank = calloc(K ? K : 1, sizeof *rank);
    uint32_t *poff = calloc(K ? K : 1, sizeof *poff);
    double *s2 = calloc(K ? K : 1, sizeof *s2);
    double *lw = calloc(K ? K : 1, sizeof *lw);
    double *lwa = calloc(K ? K : 1, sizeof *lwa);
    double *var = calloc(rsum ? rsum : 1, sizeof *var);
    int rc = -1;
    if (!coff || !cls || !rank || !poff || !s2 || !lw || !lwa || !var ||
        !G->h_alpha || !G->h_weight || !G->h_cls) {
        cx_err_set(err, CX_ENOMEM, 0, "cuda: out of host memory");
        goto done;
    }
    for (size_t k = 0, o = 0; k < K; k++) {
        const cx__comp_t *c = &m->comp[k];
        if (c->rank && c->b != c->alpha + mm) { /* gen_math.h relies on it */
            cx_err_set(err, CX_EMODEL, 0, "cuda: component %zu: basis "
                       "coordinates do not follow its mean's", k);
            goto done;
        }
        coff[k] = (uint64_t)(c->alpha - m->coef);
        cls[k] = G->h_cls[k] = (uint32_t)c->cls;
        rank[k] = c->rank;
        poff[k] = (uint32_t)o;
        s2[k] = c->s2;
        lw[k] = c->logw;
        lwa[k] = c->logw_all;
        G->h_weight[k] = c->weight;
        memcpy(G->h_alpha + k * mm, c->alpha, mm * sizeof(double));
        for (uint32_t i = 0; i < c->rank; i++)
            var[o + i] = (double)c->var[i];
        o += c->rank;
    }
    cxg_model_t *M = &G->M;
    M->npix = (uint32_t)m->npix;
    M->m = (uint32_t)mm;
    M->ncomp = (uint32_t)K;
    M->nclasses = (uint32_t)m->nclasses;
    M->rsum = (uint32_t)rsum;
    if (dev_put(G, (void **)&M->w, m->w, mm * m->npix * sizeof(float),
                err) ||
        dev_put(G, (void **)&M->coef, m->coef,
                (K + rsum) * mm * sizeof(double), err) ||
        dev_put(G, (void **)&M->coff, coff, K * sizeof *coff, err) ||
        dev_put(G, (void **)&M->cls, cls, K * sizeof *cls, err) ||
        dev_put(G, (void **)&M->rank, rank, K * sizeof *rank, err) ||
        dev_put(G, (void **)&M->poff, poff, K * sizeof *poff, err) ||
        dev_put(G, (void **)&M->s2, s2, K * sizeof *s2, err) ||
        dev_put(G, (void **)&M->logw, lw, K * sizeof *lw, err) ||
        dev_put(G, (void **)&M->logw_all, lwa, K * sizeof *lwa, err) ||
        dev_put(G, (void **)&M->var, var, rsum * sizeof *var, err) ||
        dev_put(G, (void **)&M->first, G->h_first,
                (m->nclasses + 1) * sizeof(uint32_t), err))
        goto done;
    rc = 0;
done:
    free(coff);
    free(cls);
    free(rank);
    free(poff);
    free(s2);
    free(lw);
    free(lwa);
    free(var);
    return rc;
}

static int alloc_buffers(cxg_gen_t *G, cx_err_t *err)
{
    size_t B = G->B, D = G->npix, mm = G->M.m, nc = G->nchunk;
    size_t K = G->M.ncomp, rs = G->M.rsum;
    return dev_alloc(G, (void **)&G->x, B * D * 4, err) ||
           dev_alloc(G, (void **)&G->x1, B * D * 4, err) ||
           dev_alloc(G, (void **)&G->d1, B * D * 4, err) ||
           dev_alloc(G, (void **)&G->y, B * D * 4, err) ||
           dev_alloc(G, (void **)&G->cpart, nc * mm * B * 4, err) ||
           dev_alloc(G, (void **)&G->e, mm * B * 4, err) ||
           dev_alloc(G, (void **)&G->cinit, mm * B * 4, err) ||
           dev_alloc(G, (void **)&G->g, B * 4, err) ||
           dev_alloc(G, (void **)&G->xx, B * nc * 8, err) ||
           dev_alloc(G, (void **)&G->c, B * mm * 8, err) ||
           dev_alloc(G, (void **)&G->p, B * rs * 8, err) ||
           dev_alloc(G, (void **)&G->q, B * rs * 8, err) ||
           dev_alloc(G, (void **)&G->ll, B * K * 8, err) ||
           dev_alloc(G, (void **)&G->beta, B * K * 8, err) ||
           dev_alloc(G, (void **)&G->cm, B * K * 8, err) ||
           dev_alloc(G, (void **)&G->seeds, B * 8, err) ||
           dev_alloc(G, (void **)&G->idx, B * 4, err) ||
           dev_alloc(G, (void **)&G->out16, B * D * 2, err)
               ? -1
               : 0;
}

cxg_gen_t *cxg_new(const cxg_ops_t *ops, const cx_model_t *m, uint32_t batch,
                   cx_err_t *err)
{
    if (batch == 0 || batch > 4096 || !m || m->m == 0) {
        cx_err_set(err, CX_EINVAL, 0, "cuda: batch %u or model invalid",
                   batch);
        return NULL;
    }
    cxg_gen_t *G = calloc(1, sizeof *G);
    if (!G) {
        cx_err_set(err, CX_ENOMEM, 0, "cuda: out of host memory");
        return NULL;
    }
    G->ops = *ops;
    G->B = batch;
    G->npix = (uint32_t)m->npix;
    G->nchunk = nchunks(G->npix);
    G->nclasses = (uint32_t)m->nclasses;
    size_t K = m->ncomp, mm = m->m;
    G->h_alpha = malloc(K * mm * sizeof *G->h_alpha);
    G->h_weight = malloc(K * sizeof *G->h_weight);
    G->h_cls = malloc(K * sizeof *G->h_cls);
    G->h_prior = malloc(m->nclasses * sizeof *G->h_prior);
    G->h_first = malloc((m->nclasses + 1) * sizeof *G->h_first);
    G->h_mdim = malloc(m->nclasses * sizeof *G->h_mdim);
    G->h_seeds = malloc(batch * sizeof *G->h_seeds);
    G->h_idx = malloc(batch * sizeof *G->h_idx);
    G->h_cinit = malloc(mm * batch * sizeof *G->h_cinit);
    if (!G->h_prior || !G->h_first || !G->h_mdim || !G->h_seeds ||
        !G->h_idx || !G->h_cinit) {
        cx_err_set(err, CX_ENOMEM, 0, "cuda: out of host memory");
        goto fail;
    }
    for (size_t c = 0; c < m->nclasses; c++) {
        G->h_prior[c] = m->prior[c];
        G->h_first[c] = (uint32_t)m->first[c];
        G->h_mdim[c] = (uint32_t)m->mdim[c];
    }
    G->h_first[m->nclasses] = (uint32_t)m->first[m->nclasses];
    if (upload_model(G, m, err) != 0 || alloc_buffers(G, err) != 0)
        goto fail;
    return G;
fail:
    cxg_destroy(G);
    return NULL;
}

uint64_t cxg_memory_bytes(const cxg_gen_t *G) { return G->bytes; }
uint32_t cxg_batch(const cxg_gen_t *G) { return G->B; }
uint32_t cxg_npix(const cxg_gen_t *G) { return G->npix; }

/* ---- one batch -------------------------------------------------------- */

typedef struct run {
    cxg_gen_t *G;
    uint32_t cls, rows;
    double w;
    int cond, uncond;
    cx_err_t *err;
} run_t;

static int fail_op(run_t *R, const char *what)
{
    return cx_err_set(R->err, CX_EMODEL, 0, "cuda: %s: %s", what,
                      R->G->ops.error(R->G->ops.ctx));
}

/* Y = W^T coef for the batch's coefficient columns (rows x B). */
static int recon(run_t *R, const float *coef)
{
    cxg_gen_t *G = R->G;
    cxg_gemm_t g = {.ta = 0, .tb = 0, .m = (int)G->npix, .n = (int)G->B,
                    .k = (int)R->rows, .a = G->M.w, .lda = (int)G->npix,
                    .b = coef, .ldb = (int)R->rows, .c = G->y,
                    .ldc = (int)G->npix, .batch = 1};
    return G->ops.gemm(G->ops.ctx, &g) ? fail_op(R, "reconstruction") : 0;
}

/* cpart[q] = W_q x_q for every chunk q: one strided-batched GEMM over the
 * full chunks and one for a short last chunk. */
static int project(run_t *R, const float *x)
{
    cxg_gen_t *G = R->G;
    uint32_t nf = G->npix / CXG_CHUNK, tail = G->npix % CXG_CHUNK;
    long long sc = (long long)R->rows * G->B;
    cxg_gemm_t g = {.ta = 1, .tb = 0, .m = (int)R->rows, .n = (int)G->B,
                    .k = (int)CXG_CHUNK, .a = G->M.w, .lda = (int)G->npix,
                    .sa = CXG_CHUNK, .b = x, .ldb = (int)G->npix,
                    .sb = CXG_CHUNK, .c = G->cpart, .ldc = (int)R->rows,
                    .sc = sc, .batch = (int)nf};
    if (nf && G->ops.gemm(G->ops.ctx, &g))
        return fail_op(R, "projection");
    if (tail) {
        g.k = (int)tail;
        g.a = G->M.w + (size_t)nf * CXG_CHUNK;
        g.b = x + (size_t)nf * CXG_CHUNK;
        g.c = G->cpart + (size_t)nf * sc;
        g.batch = 1;
        if (G->ops.gemm(G->ops.ctx, &g))
            return fail_op(R, "projection");
    }
    return 0;
}

/* One denoiser evaluation at (a, b) on u->in, then the step u. */
static int eval_step(run_t *R, double a, double b, cxg_upd_t *u)
{
    cxg_gen_t *G = R->G;
    if (G->ops.sumsq(G->ops.ctx, u->in, G->B, G->npix, G->nchunk, G->xx))
        return fail_op(R, "sumsq");
    if (project(R, u->in))
        return -1;
    cxg_eval_t E = {.M = G->M, .B = G->B, .rows = R->rows,
                    .nchunk = G->nchunk, .cls = R->cls, .cond = R->cond,
                    .uncond = R->uncond, .w = R->w, .a = a, .b = b,
                    .cpart = G->cpart, .xxpart = G->xx, .c = G->c,
                    .p = G->p, .q = G->q, .ll = G->ll, .beta = G->beta,
                    .cm = G->cm, .e = G->e, .g = G->g};
    if (G->ops.combine(G->ops.ctx, &E))
        return fail_op(R, "combine");
    if (recon(R, G->e))
        return -1;
    u->recon = G->y;
    u->g = G->g;
    return G->ops.update(G->ops.ctx, u, G->B) ? fail_op(R, "update") : 0;
}

static cxg_upd_t upd(const cxg_gen_t *G)
{
    cxg_upd_t u = {.npix = G->npix, .seeds = G->seeds, .indices = G->idx};
    return u;
}

/* x = a m0 + b z, m0 the guided terminal marginal's mean (as the CPU). */
static int init_state(run_t *R, double a, double b)
{
    cxg_gen_t *G = R->G;
    size_t rows = R->rows, mm = G->M.m;
    double *m0 = calloc(rows ? rows : 1, sizeof *m0);
    if (!m0)
        return cx_err_set(R->err, CX_ENOMEM, 0, "cuda: out of memory");
    for (size_t k = 0; k < G->M.ncomp; k++) {
        double wk = 0.0;
        if (R->uncond)
            wk += (1.0 - R->w) * G->h_prior[G->h_cls[k]] * G->h_weight[k];
        if (R->cond && G->h_cls[k] == R->cls)
            wk += R->w * G->h_weight[k];
        for (size_t j = 0; wk != 0.0 && j < rows; j++)
            m0[j] += a * wk * G->h_alpha[k * mm + j];
    }
    for (size_t b0 = 0; b0 < G->B; b0++)
        for (size_t j = 0; j < rows; j++)
            G->h_cinit[b0 * rows + j] = (float)m0[j];
    free(m0);
    if (G->ops.put(G->ops.ctx, G->cinit, G->h_cinit,
                   rows * G->B * sizeof(float)))
        return fail_op(R, "upload");
    if (recon(R, G->cinit))
        return -1;
    cxg_upd_t u = upd(G);
    u.init = 1;
    u.a_den = 1.0f;
    u.a_z = (float)b;
    u.zstream = 0;
    u.recon = G->y;
    u.out = G->x;
    return G->ops.update(G->ops.ctx, &u, G->B) ? fail_op(R, "init") : 0;
}

static int run_ddim(run_t *R, uint32_t n, double eta)
{
    cxg_gen_t *G = R->G;
    double ab = cx__ddim_alphabar(cx__ddim_timestep(0, n));
    if (init_state(R, sqrt(ab), sqrt(1.0 - ab)))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        double abn = i + 1 < n ? cx__ddim_alphabar(cx__ddim_timestep(i + 1, n))
                               : 1.0;
        double a = sqrt(ab), b = sqrt(1.0 - ab), an = sqrt(abn);
        double sig = eta * sqrt((1.0 - abn) / (1.0 - ab) * (1.0 - ab / abn));
        double c1 = 1.0 - abn - sig * sig;
        c1 = c1 > 0 ? sqrt(c1) : 0.0;
        cxg_upd_t u = upd(G);
        u.a_den = (float)(an - c1 * a / b);
        u.a_x = (float)(c1 / b);
        u.a_z = (float)sig;
        u.zstream = 1 + i;
        u.in = G->x;
        u.out = G->x;
        if (eval_step(R, a, b, &u))
            return -1;
        ab = abn;
    }
    return 0;
}

static int run_karras(run_t *R, uint32_t n, int heun)
{
    cxg_gen_t *G = R->G;
    if (init_state(R, 1.0, cx__karras_sigma(0, n)))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        double s = cx__karras_sigma(i, n), sn = cx__karras_sigma(i + 1, n);
        double h = sn - s;
        cxg_upd_t u = upd(G);
        u.a_den = (float)(-h / s);
        u.a_x = (float)(sn / s);
        u.in = G->x;
        u.out = G->x;
        if (!heun || sn == 0.0) {
            if (eval_step(R, 1.0, s, &u))
                return -1;
            continue;
        }
        u.out = G->x1;
        u.den_out = G->d1;
        if (eval_step(R, 1.0, s, &u))
            return -1;
        cxg_upd_t u2 = upd(G);
        u2.a_den = (float)(-h / (2 * sn));
        u2.a_x = (float)(h / (2 * sn));
        u2.a_y = (float)(1.0 + h / (2 * s));
        u2.y = G->x;
        u2.a_w = (float)(-h / (2 * s));
        u2.w = G->d1;
        u2.in = G->x1;
        u2.out = G->x;
        if (eval_step(R, 1.0, sn, &u2))
            return -1;
    }
    return 0;
}

static run_t run_of(cxg_gen_t *G, size_t cls, const cx_sample_params_t *p,
                    cx_err_t *err)
{
    run_t R = {.G = G, .cls = (uint32_t)cls, .w = p->guidance_scale,
               .err = err};
    R.cond = R.w != 0.0;
    R.uncond = R.w != 1.0;
    R.rows = R.uncond ? G->M.m : G->h_mdim[cls];
    return R;
}

int cxg_generate(cxg_gen_t *G, size_t cls, const cx_sample_params_t *p,
                 const uint64_t *seeds, const uint32_t *indices, size_t n,
                 uint16_t *out, cx_err_t *err)
{
    if (!G || !p || (n && (!seeds || !indices || !out)))
        return cx_err_set(err, CX_EINVAL, 0, "generate: missing argument");
    if (cx__check_sample_params(G->nclasses, cls, p, err) != 0)
        return -1;
    run_t R = run_of(G, cls, p, err);
    float maxv = (float)((1u << p->bit_depth) - 1u);
    size_t D = G->npix;
    for (size_t s0 = 0; s0 < n; s0 += G->B) {
        size_t nb = n - s0 < G->B ? n - s0 : G->B;
        for (size_t i = 0; i < G->B; i++) { /* pad with the last image */
            size_t src = s0 + (i < nb ? i : nb - 1);
            G->h_seeds[i] = seeds[src];
            G->h_idx[i] = indices[src];
        }
        if (G->ops.put(G->ops.ctx, G->seeds, G->h_seeds, G->B * 8) ||
            G->ops.put(G->ops.ctx, G->idx, G->h_idx, G->B * 4))
            return fail_op(&R, "upload");
        int rc = p->sampler == CX_SAMPLER_DDIM
                     ? run_ddim(&R, p->steps, p->eta)
                     : run_karras(&R, p->steps,
                                  p->sampler == CX_SAMPLER_HEUN);
        if (rc)
            return -1;
        if (G->ops.quantise(G->ops.ctx, G->x, (size_t)G->B * D, maxv,
                            G->out16))
            return fail_op(&R, "quantise");
        if (G->ops.get(G->ops.ctx, out + s0 * D, G->out16,
                       nb * D * sizeof *out))
            return fail_op(&R, "download");
    }
    return 0;
}

double cxg_batch_traffic(const cxg_gen_t *G, size_t cls,
                         const cx_sample_params_t *p)
{
    cx_err_t e;
    run_t R = run_of((cxg_gen_t *)G, cls < G->nclasses ? cls : 0, p, &e);
    double img = (double)G->B * G->npix * 4, wrows = (double)R.rows *
                 G->npix * 4;
    /* sumsq + projection read x; W twice; recon written and read; the
     * step reads x and writes it */
    double per_eval = 5.0 * img + 2.0 * wrows;
    double evals = p->sampler == CX_SAMPLER_HEUN ? 2.0 * p->steps - 1
                                                 : (double)p->steps;
    double heun_extra = p->sampler == CX_SAMPLER_HEUN
                            ? (p->steps - 1) * 3.0 * img
                            : 0.0; /* d1 written, y and w read */
    double init = wrows + 2.0 * img, quant = img + img / 2;
    return evals * per_eval + heun_extra + init + quant;
}
