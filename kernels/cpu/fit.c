/* Fitting a checkpoint: per-class k-means, then per-cluster randomised SVD
 * and probabilistic-PCA variances (see cascade/fit.h for the method).
 *
 * The heavy loops are matrix products between the cluster's images (n x D)
 * and a few sketch rows (l x D): they run on a cx_pool, split either by
 * image (dot products) or by pixel chunk (sums over images), so each output
 * element is computed by one task in a fixed order and the result does not
 * depend on the thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/fit.h"
#include "cascade/pool.h"
#include "model_impl.h"
#include "vec.h"

#define PIX_CHUNK 4096
#define S2_FLOOR 1e-7 /* residual variance floor (pixel units^2) */

typedef struct fcomp {
    uint32_t cls, rank;
    double weight, s2;
    float *mean, *basis, *var;
} fcomp_t;

struct cx_fit {
    char name[CX__NAME_MAX];
    uint32_t width, height;
    size_t d;
    cx_fit_opts_t o;
    cx_pool_t *pool; /* NULL: one thread */
    size_t nclasses;
    char (*names)[CX__CLASS_NAME_MAX];
    size_t *count;   /* images per class */
    size_t ncomp;
    fcomp_t *comp;
};

void cx_fit_opts_default(cx_fit_opts_t *o)
{
    *o = (cx_fit_opts_t){.components = 2, .rank = 8, .kmeans_iters = 25,
                         .power_iters = 2, .oversample = 8, .threads = 0,
                         .seed = 1};
}

/* ---- parallel loops --------------------------------------------------- */

static void par_for(cx_fit_t *f, size_t n, void (*fn)(void *, size_t),
                    void *ctx)
{
    if (f->pool)
        cx_pool_for(f->pool, n, fn, ctx);
    else
        for (size_t i = 0; i < n; i++)
            fn(ctx, i);
}

static size_t nchunks(size_t d) { return (d + PIX_CHUNK - 1) / PIX_CHUNK; }

/* The cluster being worked on: rows x[idx[i]] (i < n) centred on mu. */
typedef struct work {
    const float *x;
    size_t d, n;
    const size_t *idx;
    const float *mu;
    /* sketch: y (l x d) = m (l x n) . (X - mu) */
    size_t l;
    const double *m;
    float *y;
    /* projections: a (n x l) = (X - mu) . y^T; muy[t] = mu . y_t */
    double *a, *muy, *norm2;
} work_t;

static const float *row(const work_t *w, size_t i)
{
    return w->x + w->idx[i] * w->d;
}

static void sketch_chunk(void *ctx, size_t c)
{
    const work_t *w = ctx;
    size_t s = c * PIX_CHUNK, len = w->d - s < PIX_CHUNK ? w->d - s : PIX_CHUNK;
    double acc[PIX_CHUNK];
    for (size_t t = 0; t < w->l; t++) {
        memset(acc, 0, len * sizeof *acc);
        for (size_t i = 0; i < w->n; i++) {
            double mt = w->m[t * w->n + i];
            const float *xr = row(w, i) + s, *mu = w->mu + s;
            for (size_t p = 0; p < len; p++)
                acc[p] += mt * ((double)xr[p] - mu[p]);
        }
        float *y = w->y + t * w->d + s;
        for (size_t p = 0; p < len; p++)
            y[p] = (float)acc[p];
    }
}

static void project_one(void *ctx, size_t i)
{
    const work_t *w = ctx;
    const float *xr = row(w, i);
    for (size_t t = 0; t < w->l; t++)
        w->a[i * w->l + t] = cx__dotd(xr, w->y + t * w->d, w->d) - w->muy[t];
}

static void norm_one(void *ctx, size_t i)
{
    const work_t *w = ctx;
    const float *xr = row(w, i);
    double s = 0.0;
    for (size_t p = 0; p < w->d; p++) {
        double v = (double)xr[p] - w->mu[p];
        s += v * v;
    }
    w->norm2[i] = s;
}

/* Orthonormalises y's rows (modified Gram-Schmidt, twice); rows that
 * vanish (the data has lower rank) are dropped. Returns the rows kept. */
static size_t orthonormalise(float *y, size_t l, size_t d)
{
    size_t kept = 0;
    for (size_t t = 0; t < l; t++) {
        float *yt = y + t * d;
        double n0 = cx__dotd(yt, yt, d);
        for (int pass = 0; pass < 2; pass++)
            for (size_t j = 0; j < kept; j++) {
                const float *yj = y + j * d;
                double pr = cx__dotd(yj, yt, d);
                for (size_t p = 0; p < d; p++)
                    yt[p] = (float)(yt[p] - pr * yj[p]);
            }
        double nn = cx__dotd(yt, yt, d);
        if (!(nn > 1e-10 * n0) || nn == 0.0)
            continue;
        float inv = (float)(1.0 / sqrt(nn));
        float *dst = y + kept * d;
        for (size_t p = 0; p < d; p++)
            dst[p] = yt[p] * inv;
        kept++;
    }
    return kept;
}

/* a = (X - mu) y^T for the current y */
static void project_all(cx_fit_t *f, work_t *w)
{
    for (size_t t = 0; t < w->l; t++)
        w->muy[t] = cx__dotd(w->mu, w->y + t * w->d, w->d);
    par_for(f, w->n, project_one, w);
}

/* ---- one component ---------------------------------------------------- */

static void splitmix(uint64_t *s, uint64_t *out)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    *out = z ^ (z >> 31);
}

/* Top-r principal directions of the cluster into c (basis, var, s2). */
static int pca(cx_fit_t *f, work_t *w, fcomp_t *c, uint32_t uid)
{
    size_t d = w->d, n = w->n, r = c->rank;
    size_t l = r + f->o.oversample < n ? r + f->o.oversample : n;
    double *m = malloc(l * n * sizeof *m), *s = NULL, *lam = NULL,
           *v = NULL;
    w->y = malloc(l * d * sizeof *w->y);
    w->a = malloc(n * l * sizeof *w->a);
    w->muy = malloc(l * sizeof *w->muy);
    w->norm2 = malloc(n * sizeof *w->norm2);
    int rc = -1;
    if (!m || !w->y || !w->a || !w->muy || !w->norm2)
        goto done;
    float *om = malloc(l * n * sizeof *om);
    if (!om)
        goto done;
    cx_normals(f->o.seed, uid, 0x5ce7c4u, 0, l * n, om); /* the sketch */
    for (size_t i = 0; i < l * n; i++)
        m[i] = om[i];
    free(om);
    w->l = l;
    w->m = m;
    par_for(f, nchunks(d), sketch_chunk, w);
    w->l = orthonormalise(w->y, l, d);
    for (uint32_t it = 0; it < f->o.power_iters; it++) {
        project_all(f, w); /* a = Xc y^T, then y = a^T Xc */
        for (size_t t = 0; t < w->l; t++)
            for (size_t i = 0; i < n; i++)
                m[t * n + i] = w->a[i * w->l + t];
        par_for(f, nchunks(d), sketch_chunk, w);
        w->l = orthonormalise(w->y, w->l, d);
    }
    l = w->l;
    project_all(f, w);
    s = calloc(l * l, sizeof *s);
    lam = malloc(l * sizeof *lam);
    v = malloc(l * l * sizeof *v);
    if (!s || !lam || !v)
        goto done;
    for (size_t i = 0; i < n; i++) /* Rayleigh-Ritz: S = a^T a */
        for (size_t t = 0; t < l; t++)
            for (size_t u = 0; u < l; u++)
                s[t * l + u] += w->a[i * l + t] * w->a[i * l + u];
    cx__sym_eigen(l, s, lam, v);
    par_for(f, n, norm_one, w);
    double tv = 0.0, kept = 0.0, dof = n > 1 ? (double)(n - 1) : 1.0;
    for (size_t i = 0; i < n; i++)
        tv += w->norm2[i];
    r = r < l ? r : l;
    c->rank = (uint32_t)r;
    for (size_t j = 0; j < r; j++)
        kept += lam[j] > 0.0 ? lam[j] : 0.0;
    c->s2 = (tv - kept) / dof / (double)(d - r);
    c->s2 = c->s2 > S2_FLOOR ? c->s2 : S2_FLOOR;
    for (size_t j = 0; j < r; j++) {
        float *bj = c->basis + j * d;
        memset(bj, 0, d * sizeof *bj);
        for (size_t t = 0; t < l; t++)
            cx__axpy(bj, (float)v[j * l + t], w->y + t * d, d);
        double var = lam[j] / dof - c->s2;
        c->var[j] = (float)(var > 0.0 ? var : 0.0);
    }
    rc = 0;
done:
    free(m);
    free(s);
    free(lam);
    free(v);
    free(w->y);
    free(w->a);
    free(w->muy);
    free(w->norm2);
    return rc;
}

/* ---- k-means ----------------------------------------------------------- */

typedef struct km {
    const float *x;
    size_t d, n, k;
    float *cent;      /* k x d */
    double *cn, *xn;  /* |c|^2, |x|^2 */
    uint32_t *assign;
    double *dist;     /* to the assigned centre */
    size_t *size;
} km_t;

static double sqdist(const km_t *k, size_t i, size_t c)
{
    double v = k->xn[i] + k->cn[c] -
               2.0 * cx__dotd(k->x + i * k->d, k->cent + c * k->d, k->d);
    return v > 0.0 ? v : 0.0;
}

static void assign_one(void *ctx, size_t i)
{
    km_t *k = ctx;
    uint32_t best = 0;
    double bd = INFINITY;
    for (size_t c = 0; c < k->k; c++) {
        double v = sqdist(k, i, c);
        if (v < bd) {
            bd = v;
            best = (uint32_t)c;
        }
    }
    k->assign[i] = best;
    k->dist[i] = bd;
}

static void center_chunk(void *ctx, size_t ch)
{
    km_t *k = ctx;
    size_t s = ch * PIX_CHUNK, len = k->d - s < PIX_CHUNK ? k->d - s : PIX_CHUNK;
    double acc[PIX_CHUNK];
    for (size_t c = 0; c < k->k; c++) {
        memset(acc, 0, len * sizeof *acc);
        for (size_t i = 0; i < k->n; i++) {
            if (k->assign[i] != c)
                continue;
            const float *xr = k->x + i * k->d + s;
            for (size_t p = 0; p < len; p++)
                acc[p] += xr[p];
        }
        float *ce = k->cent + c * k->d + s;
        double inv = k->size[c] ? 1.0 / (double)k->size[c] : 0.0;
        for (size_t p = 0; p < len; p++)
            ce[p] = (float)(acc[p] * inv);
    }
}

static void xnorm_one(void *ctx, size_t i)
{
    km_t *k = ctx;
    const float *xr = k->x + i * k->d;
    k->xn[i] = cx__dotd(xr, xr, k->d);
}

/* k-means++ seeding: each next centre drawn with probability proportional
 * to the squared distance to the nearest centre so far. */
static void seed_centres(cx_fit_t *f, km_t *k, uint64_t rng)
{
    uint64_t u;
    splitmix(&rng, &u);
    size_t first = (size_t)(u % k->n);
    memcpy(k->cent, k->x + first * k->d, k->d * sizeof *k->cent);
    for (size_t c = 1; c < k->k; c++) {
        size_t kk = k->k;
        k->k = c; /* nearest among the first c */
        for (size_t j = 0; j < c; j++)
            k->cn[j] = cx__dotd(k->cent + j * k->d, k->cent + j * k->d, k->d);
        par_for(f, k->n, assign_one, k);
        k->k = kk;
        double tot = 0.0;
        for (size_t i = 0; i < k->n; i++)
            tot += k->dist[i];
        splitmix(&rng, &u);
        double target = (double)(u >> 11) / 9007199254740992.0 * tot;
        size_t pick = k->n - 1;
        for (size_t i = 0; i < k->n; i++) {
            target -= k->dist[i];
            if (target < 0.0) {
                pick = i;
                break;
            }
        }
        memcpy(k->cent + c * k->d, k->x + pick * k->d,
               k->d * sizeof *k->cent);
    }
}

/* Gives an empty cluster the point farthest from its centre. */
static int fix_empty(km_t *k)
{
    int moved = 0;
    for (size_t c = 0; c < k->k; c++) {
        if (k->size[c] > 0)
            continue;
        size_t far = k->n;
        for (size_t i = 0; i < k->n; i++)
            if (k->size[k->assign[i]] > 1 &&
                (far == k->n || k->dist[i] > k->dist[far]))
                far = i;
        if (far == k->n)
            break;
        k->size[k->assign[far]]--;
        k->assign[far] = (uint32_t)c;
        k->dist[far] = 0.0;
        k->size[c] = 1;
        moved = 1;
    }
    return moved;
}

static void kmeans(cx_fit_t *f, km_t *k, uint64_t rng)
{
    par_for(f, k->n, xnorm_one, k);
    seed_centres(f, k, rng);
    uint32_t *prev = k->assign + k->n; /* second half of the buffer */
    for (uint32_t it = 0; it < f->o.kmeans_iters; it++) {
        for (size_t c = 0; c < k->k; c++)
            k->cn[c] = cx__dotd(k->cent + c * k->d, k->cent + c * k->d, k->d);
        memcpy(prev, k->assign, k->n * sizeof *prev);
        par_for(f, k->n, assign_one, k);
        memset(k->size, 0, k->k * sizeof *k->size);
        for (size_t i = 0; i < k->n; i++)
            k->size[k->assign[i]]++;
        int moved = fix_empty(k);
        if (it > 0 && !moved &&
            memcmp(prev, k->assign, k->n * sizeof *prev) == 0)
            break;
        par_for(f, nchunks(k->d), center_chunk, k);
    }
}

/* ---- public calls ------------------------------------------------------ */

cx_fit_t *cx_fit_new(const char *name, uint32_t width, uint32_t height,
                     const cx_fit_opts_t *opts, cx_err_t *err)
{
    if (!name || strlen(name) >= CX__NAME_MAX || width < CX__MIN_SIDE ||
        height < CX__MIN_SIDE || width > CX__MAX_SIDE ||
        height > CX__MAX_SIDE || !opts || opts->components < 1 ||
        opts->rank > CX__MAX_RANK) {
        cx_err_set(err, CX_EINVAL, 0,
                   "fit: bad name, size %ux%u or options", width, height);
        return NULL;
    }
    cx_fit_t *f = calloc(1, sizeof *f);
    if (!f) {
        cx_err_set(err, CX_ENOMEM, 1, "fit: out of memory");
        return NULL;
    }
    snprintf(f->name, sizeof f->name, "%s", name);
    f->width = width;
    f->height = height;
    f->d = (size_t)width * height;
    f->o = *opts;
    if (opts->threads != 1 && !(f->pool = cx_pool_new(opts->threads, err))) {
        free(f);
        return NULL;
    }
    return f;
}

void cx_fit_destroy(cx_fit_t *f)
{
    if (!f)
        return;
    for (size_t k = 0; k < f->ncomp; k++) {
        free(f->comp[k].mean);
        free(f->comp[k].basis);
        free(f->comp[k].var);
    }
    free(f->comp);
    free(f->names);
    free(f->count);
    cx_pool_destroy(f->pool);
    free(f);
}

static int add_class(cx_fit_t *f, const char *class_name, size_t n,
                     size_t k, cx_err_t *err)
{
    void *nm = realloc(f->names, (f->nclasses + 1) * sizeof *f->names);
    if (nm)
        f->names = nm;
    void *ct = realloc(f->count, (f->nclasses + 1) * sizeof *f->count);
    if (ct)
        f->count = ct;
    void *cp = realloc(f->comp, (f->ncomp + k) * sizeof *f->comp);
    if (cp)
        f->comp = cp;
    if (!nm || !ct || !cp)
        return cx_err_set(err, CX_ENOMEM, 1, "fit: out of memory");
    snprintf(f->names[f->nclasses], CX__CLASS_NAME_MAX, "%s", class_name);
    f->count[f->nclasses] = n;
    memset(f->comp + f->ncomp, 0, k * sizeof *f->comp);
    return 0;
}

/* Cluster c of k into f->comp[f->ncomp + c]. */
static int fit_cluster(cx_fit_t *f, const km_t *k, size_t c, size_t *idx,
                       cx_err_t *err)
{
    fcomp_t *fc = &f->comp[f->ncomp + c];
    size_t n = 0, d = f->d;
    for (size_t i = 0; i < k->n; i++)
        if (k->assign[i] == c)
            idx[n++] = i;
    size_t r = f->o.rank < n ? f->o.rank : (n ? n - 1 : 0);
    fc->cls = (uint32_t)f->nclasses;
    fc->rank = (uint32_t)r;
    fc->weight = (double)n / (double)k->n;
    fc->mean = malloc(d * sizeof *fc->mean);
    fc->basis = malloc((r ? r : 1) * d * sizeof *fc->basis);
    fc->var = malloc((r ? r : 1) * sizeof *fc->var);
    if (!fc->mean || !fc->basis || !fc->var)
        return cx_err_set(err, CX_ENOMEM, 1, "fit: out of memory");
    memcpy(fc->mean, k->cent + c * d, d * sizeof *fc->mean);
    work_t w = {.x = k->x, .d = d, .n = n, .idx = idx, .mu = fc->mean};
    if (r == 0) {
        fc->s2 = S2_FLOOR;
        return 0;
    }
    if (pca(f, &w, fc, (uint32_t)(f->ncomp + c)) != 0)
        return cx_err_set(err, CX_ENOMEM, 1, "fit: out of memory");
    return 0;
}

int cx_fit_class(cx_fit_t *f, const char *class_name, const float *x,
                 size_t n, cx_err_t *err)
{
    if (!f || !class_name || !*class_name ||
        strlen(class_name) >= CX__CLASS_NAME_MAX || !x || n == 0)
        return cx_err_set(err, CX_EINVAL, 0, "fit: bad class or no images");
    if (f->nclasses >= CX__MAX_CLASSES)
        return cx_err_set(err, CX_EINVAL, 0, "fit: too many classes");
    for (size_t c = 0; c < f->nclasses; c++)
        if (strcmp(f->names[c], class_name) == 0)
            return cx_err_set(err, CX_EINVAL, 0, "fit: class '%s' twice",
                              class_name);
    size_t kk = f->o.components < n ? f->o.components : n, d = f->d;
    if (add_class(f, class_name, n, kk, err) != 0)
        return -1;
    km_t k = {.x = x, .d = d, .n = n, .k = kk};
    k.cent = malloc(kk * d * sizeof *k.cent);
    k.cn = malloc(kk * sizeof *k.cn);
    k.xn = malloc(n * sizeof *k.xn);
    k.assign = calloc(2 * n, sizeof *k.assign);
    k.dist = malloc(n * sizeof *k.dist);
    k.size = calloc(kk, sizeof *k.size);
    size_t *idx = malloc(n * sizeof *idx);
    int rc = -1;
    if (!k.cent || !k.cn || !k.xn || !k.assign || !k.dist || !k.size || !idx) {
        cx_err_set(err, CX_ENOMEM, 1, "fit: out of memory");
        goto done;
    }
    uint64_t rng = f->o.seed;
    for (const char *p = class_name; *p; p++) /* FNV-1a of the name */
        rng = (rng ^ (uint8_t)*p) * 0x100000001B3ull;
    kmeans(f, &k, rng);
    size_t c = 0;
    for (; c < kk; c++)
        if (fit_cluster(f, &k, c, idx, err) != 0)
            break;
    f->ncomp += c; /* the ones built, so destroy frees them */
    if (c == kk) {
        f->nclasses++;
        rc = 0;
    }
done:
    free(k.cent);
    free(k.cn);
    free(k.xn);
    free(k.assign);
    free(k.dist);
    free(k.size);
    free(idx);
    return rc;
}

cx_model_t *cx_fit_finish(cx_fit_t *f, cx_err_t *err)
{
    if (!f || f->nclasses == 0) {
        cx_err_set(err, CX_EINVAL, 0, "fit: no classes");
        return NULL;
    }
    uint32_t *cls = malloc(f->ncomp * sizeof *cls);
    uint32_t *rank = malloc(f->ncomp * sizeof *rank);
    cx_model_t *m = NULL;
    if (!cls || !rank) {
        cx_err_set(err, CX_ENOMEM, 1, "fit: out of memory");
        goto done;
    }
    for (size_t k = 0; k < f->ncomp; k++) {
        cls[k] = f->comp[k].cls;
        rank[k] = f->comp[k].rank;
    }
    m = cx__model_alloc(f->name, f->width, f->height, f->nclasses, f->ncomp,
                        cls, rank, err);
    if (!m)
        goto done;
    size_t total = 0, d = f->d;
    for (size_t c = 0; c < f->nclasses; c++)
        total += f->count[c];
    for (size_t c = 0; c < f->nclasses; c++) {
        memcpy(m->names[c], f->names[c], CX__CLASS_NAME_MAX);
        m->prior[c] = (double)f->count[c] / (double)total;
    }
    for (size_t k = 0; k < f->ncomp; k++) {
        const fcomp_t *fc = &f->comp[k];
        cx__comp_t *c = &m->comp[k];
        c->weight = fc->weight;
        c->s2 = fc->s2;
        memcpy(c->mean, fc->mean, d * sizeof *c->mean);
        memcpy(c->basis, fc->basis, fc->rank * d * sizeof *c->basis);
        memcpy(c->var, fc->var, fc->rank * sizeof *c->var);
    }
    if (cx__model_finish(m, err) != 0) {
        cx_model_destroy(m);
        m = NULL;
    }
done:
    free(cls);
    free(rank);
    return m;
}
