/* A model in memory: allocation, validation, the subspace form the sampler
 * uses (see model_impl.h) and the public accessors of cascade/gen.h.
 *
 * The subspace W is built from the Gram matrix of all mean and basis rows
 * (accumulated in double), by block Gram-Schmidt in coefficient space, class
 * by class: class c's rows are normalised, the span of the earlier classes
 * is projected out (twice), and the eigenvectors of what is left with
 * eigenvalue above CX__SPAN_TOL become new rows. So directions shared
 * between components (ref-cxr-v0's four classes share one basis) are stored
 * once, and the cost is one Gram pass plus one pass to write W, about
 * rows^2 * D multiply-adds in all. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"
#include "vec.h"

#define CX__SPAN_TOL 1e-9     /* squared residual norm of a unit row */
#define CX__ORTHO_TOL 1e-3    /* |u_i . u_j - delta_ij| allowed in a basis */
#define CX__SUM_TOL 1e-4      /* weights and priors must sum to 1 this well */
#define GRAM_CHUNK 4096

size_t cx__section_bytes(size_t npix, uint32_t rank)
{
    size_t floats = npix + (size_t)rank * npix + rank;
    return (floats * sizeof(float) + 63) / 64 * 64;
}

static int alloc_arrays(cx_model_t *m, const uint32_t *comp_class,
                        const uint32_t *comp_rank)
{
    size_t d = m->npix;
    m->names = calloc(m->nclasses, sizeof *m->names);
    m->prior = calloc(m->nclasses, sizeof *m->prior);
    m->first = calloc(m->nclasses + 1, sizeof *m->first);
    m->mdim = calloc(m->nclasses, sizeof *m->mdim);
    m->comp = calloc(m->ncomp, sizeof *m->comp);
    m->views = calloc(m->ncomp, sizeof *m->views);
    if (!m->names || !m->prior || !m->first || !m->mdim || !m->comp ||
        !m->views)
        return -1;
    m->data_bytes = 0;
    for (size_t k = 0; k < m->ncomp; k++)
        m->data_bytes += cx__section_bytes(d, comp_rank[k]);
    m->data = aligned_alloc(64, m->data_bytes);
    if (!m->data)
        return -1;
    memset(m->data, 0, m->data_bytes);
    char *p = (char *)m->data;
    for (size_t k = 0; k < m->ncomp; k++) {
        cx__comp_t *c = &m->comp[k];
        c->cls = comp_class[k];
        c->rank = comp_rank[k];
        c->mean = (float *)p;
        c->basis = c->mean + d;
        c->var = c->basis + (size_t)c->rank * d;
        p += cx__section_bytes(d, c->rank);
        m->first[c->cls + 1] = k + 1;
    }
    for (size_t c = 0; c < m->nclasses; c++) {
        m->prior[c] = 1.0 / (double)m->nclasses;
        if (m->first[c + 1] < m->first[c])
            m->first[c + 1] = m->first[c];
        size_t n = m->first[c + 1] - m->first[c];
        for (size_t k = m->first[c]; k < m->first[c + 1]; k++)
            m->comp[k].weight = 1.0 / (double)n;
    }
    return 0;
}

cx_model_t *cx__model_alloc(const char *name, uint32_t width, uint32_t height,
                            size_t nclasses, size_t ncomp,
                            const uint32_t *comp_class,
                            const uint32_t *comp_rank, cx_err_t *err)
{
    if (width < CX__MIN_SIDE || height < CX__MIN_SIDE ||
        width > CX__MAX_SIDE || height > CX__MAX_SIDE) {
        cx_err_set(err, CX_EINVAL, 0, "%s: size %ux%u outside %ux%u..%ux%u",
                   name, width, height, CX__MIN_SIDE, CX__MIN_SIDE,
                   CX__MAX_SIDE, CX__MAX_SIDE);
        return NULL;
    }
    if (nclasses < 1 || nclasses > CX__MAX_CLASSES || ncomp < nclasses ||
        ncomp > CX__MAX_COMPONENTS) {
        cx_err_set(err, CX_EMODEL, 0,
                   "%s: %zu classes, %zu components (want 1..%d classes, "
                   "each with a component, at most %d in all)",
                   name, nclasses, ncomp, CX__MAX_CLASSES,
                   CX__MAX_COMPONENTS);
        return NULL;
    }
    size_t rows = 0;
    for (size_t k = 0; k < ncomp; k++) {
        int bad_order = k > 0 && comp_class[k] < comp_class[k - 1];
        int bad_jump = comp_class[k] != (k ? comp_class[k - 1] : 0) &&
                       comp_class[k] != (k ? comp_class[k - 1] + 1 : 0);
        if (comp_class[k] >= nclasses || bad_order || bad_jump ||
            comp_rank[k] > CX__MAX_RANK) {
            cx_err_set(err, CX_EMODEL, 0,
                       "%s: component %zu: class %u rank %u (classes must "
                       "be in order, each with a component; rank <= %d)",
                       name, k, comp_class[k], comp_rank[k], CX__MAX_RANK);
            return NULL;
        }
        rows += 1 + comp_rank[k];
    }
    if (comp_class[ncomp - 1] != nclasses - 1 || rows > CX__MAX_ROWS) {
        cx_err_set(err, CX_EMODEL, 0,
                   "%s: %zu basis rows in all (max %d), last class %u of %zu",
                   name, rows, CX__MAX_ROWS, comp_class[ncomp - 1], nclasses);
        return NULL;
    }
    cx_model_t *m = calloc(1, sizeof *m);
    if (!m) {
        cx_err_set(err, CX_ENOMEM, 1, "%s: out of memory", name);
        return NULL;
    }
    snprintf(m->name, sizeof m->name, "%s", name);
    m->width = width;
    m->height = height;
    m->npix = (size_t)width * height;
    m->nclasses = nclasses;
    m->ncomp = ncomp;
    m->local_ok = 1;
    if (alloc_arrays(m, comp_class, comp_rank) != 0) {
        cx_err_set(err, CX_ENOMEM, 1, "%s: out of memory (%zu bytes of data)",
                   name, m->data_bytes);
        cx_model_destroy(m);
        return NULL;
    }
    return m;
}

/* ---- validation ------------------------------------------------------ */

static int all_finite(const float *x, size_t n)
{
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        ok &= isfinite(x[i]) != 0;
    return ok;
}

static int check_sum(const cx_model_t *m, const char *what, double sum,
                     cx_err_t *err)
{
    if (fabs(sum - 1.0) > CX__SUM_TOL)
        return cx_err_set(err, CX_EMODEL, 0, "%s: %s sum to %.9g, not 1",
                          m->name, what, sum);
    return 0;
}

static int validate_class(cx_model_t *m, size_t c, cx_err_t *err)
{
    const char *cn = m->names[c];
    if (cn[0] == '\0' || memchr(cn, '\0', CX__CLASS_NAME_MAX) == NULL)
        return cx_err_set(err, CX_EMODEL, 0, "%s: class %zu has no name",
                          m->name, c);
    for (size_t j = 0; j < c; j++)
        if (strcmp(m->names[j], cn) == 0)
            return cx_err_set(err, CX_EMODEL, 0,
                              "%s: class '%s' appears twice", m->name, cn);
    if (!(m->prior[c] > 0.0) || !isfinite(m->prior[c]))
        return cx_err_set(err, CX_EMODEL, 0, "%s: class '%s' prior %g",
                          m->name, cn, m->prior[c]);
    double wsum = 0.0;
    for (size_t k = m->first[c]; k < m->first[c + 1]; k++) {
        cx__comp_t *cp = &m->comp[k];
        if (!(cp->weight > 0.0) || !isfinite(cp->weight) ||
            !(cp->s2 > 0.0) || !isfinite(cp->s2))
            return cx_err_set(err, CX_EMODEL, 0,
                              "%s: class '%s' component %zu: weight %g, "
                              "residual variance %g (both must be > 0)",
                              m->name, cn, k - m->first[c], cp->weight,
                              cp->s2);
        size_t nf = m->npix * (1 + (size_t)cp->rank) + cp->rank;
        if (!all_finite(cp->mean, nf))
            return cx_err_set(err, CX_EMODEL, 0,
                              "%s: class '%s' component %zu: non-finite "
                              "values", m->name, cn, k - m->first[c]);
        for (uint32_t i = 0; i < cp->rank; i++)
            if (!(cp->var[i] >= 0.0f))
                return cx_err_set(err, CX_EMODEL, 0,
                                  "%s: class '%s' component %zu: variance "
                                  "%u is %g", m->name, cn, k - m->first[c],
                                  i, cp->var[i]);
        wsum += cp->weight;
    }
    char what[80];
    snprintf(what, sizeof what, "class '%s' component weights", cn);
    if (check_sum(m, what, wsum, err) != 0)
        return -1;
    for (size_t k = m->first[c]; k < m->first[c + 1]; k++)
        m->comp[k].weight /= wsum;
    return 0;
}

static int validate(cx_model_t *m, cx_err_t *err)
{
    double psum = 0.0;
    for (size_t c = 0; c < m->nclasses; c++) {
        if (validate_class(m, c, err) != 0)
            return -1;
        psum += m->prior[c];
    }
    if (check_sum(m, "class priors", psum, err) != 0)
        return -1;
    for (size_t c = 0; c < m->nclasses; c++)
        m->prior[c] /= psum;
    return 0;
}

/* ---- the subspace ---------------------------------------------------- */

typedef struct rows {
    size_t n;          /* all mean and basis rows */
    const float **p;   /* n row pointers */
    size_t *first;     /* nclasses + 1: class c's rows */
    double *g;         /* n x n Gram matrix */
    double *t;         /* n x n: W row i = sum_j t[i][j] row j */
    double *gt;        /* n x n: row i = G t[i] (W row i . each row) */
} rows_t;

static void rows_free(rows_t *r)
{
    free(r->p);
    free(r->first);
    free(r->g);
    free(r->t);
    free(r->gt);
}

static int rows_init(const cx_model_t *m, rows_t *r)
{
    r->n = 0;
    for (size_t k = 0; k < m->ncomp; k++)
        r->n += 1 + m->comp[k].rank;
    r->p = malloc(r->n * sizeof *r->p);
    r->first = calloc(m->nclasses + 1, sizeof *r->first);
    r->g = calloc(r->n * r->n, sizeof *r->g);
    r->t = calloc(r->n * r->n, sizeof *r->t);
    r->gt = calloc(r->n * r->n, sizeof *r->gt);
    if (!r->p || !r->first || !r->g || !r->t || !r->gt)
        return -1;
    size_t i = 0;
    for (size_t k = 0; k < m->ncomp; k++) {
        const cx__comp_t *c = &m->comp[k];
        r->p[i++] = c->mean;
        for (uint32_t j = 0; j < c->rank; j++)
            r->p[i++] = c->basis + (size_t)j * m->npix;
        r->first[c->cls + 1] = i;
    }
    return 0;
}

/* Lower triangle of the Gram matrix, mirrored: chunked so that a chunk of
 * every row stays in cache while all pairs are formed. */
static void gram(const cx_model_t *m, rows_t *r)
{
    size_t d = m->npix, n = r->n;
    for (size_t s = 0; s < d; s += GRAM_CHUNK) {
        size_t len = d - s < GRAM_CHUNK ? d - s : GRAM_CHUNK;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j <= i; j++)
                r->g[i * n + j] += cx__dotd(r->p[i] + s, r->p[j] + s, len);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            r->g[j * n + i] = r->g[i * n + j];
}

static int check_bases(const cx_model_t *m, const rows_t *r, cx_err_t *err)
{
    size_t n = r->n, i0 = 0;
    for (size_t k = 0; k < m->ncomp; k++) {
        const cx__comp_t *c = &m->comp[k];
        for (uint32_t a = 0; a < c->rank; a++)
            for (uint32_t b = 0; b <= a; b++) {
                double g = r->g[(i0 + 1 + a) * n + i0 + 1 + b];
                double dev = fabs(g - (a == b ? 1.0 : 0.0));
                if (dev > CX__ORTHO_TOL)
                    return cx_err_set(err, CX_EMODEL, 0,
                                      "%s: class '%s' component %zu: basis "
                                      "rows %u, %u not orthonormal (dot %g)",
                                      m->name, m->names[c->cls],
                                      k - m->first[c->cls], a, b, g);
            }
        i0 += 1 + c->rank;
    }
    return 0;
}

/* out = G x for a coefficient vector x over the rows */
static void gmul(const rows_t *r, const double *x, double *out)
{
    size_t n = r->n;
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < n; j++)
            s += r->g[i * n + j] * x[j];
        out[i] = s;
    }
}

static double vdot(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* Scratch of add_class: y and gy nc x n, h and ev nc x nc, lam nc. */
typedef struct gs {
    double *y, *gy, *h, *ev, *lam;
} gs_t;

/* Adds class c's new directions to the orthonormal rows T (n x n
 * coefficients, rows [0, *mrows) already there) and their G T to gt. */
static void add_class(const rows_t *r, size_t c, double *tt, double *gtt,
                      size_t *mrows, const gs_t *s)
{
    size_t n = r->n, i0 = r->first[c], nc = r->first[c + 1] - i0;
    double *y = s->y, *gy = s->gy;
    memset(y, 0, nc * n * sizeof *y);
    for (size_t q = 0; q < nc; q++) {
        double g = r->g[(i0 + q) * n + i0 + q];
        y[q * n + i0 + q] = g > 0.0 ? 1.0 / sqrt(g) : 0.0;
    }
    /* project out the span so far, twice for rounding */
    for (int pass = 0; pass < 2; pass++)
        for (size_t q = 0; q < nc; q++)
            for (size_t t = 0; t < *mrows; t++) {
                double pr = vdot(gtt + t * n, y + q * n, n);
                for (size_t j = 0; j < n; j++)
                    y[q * n + j] -= pr * tt[t * n + j];
            }
    for (size_t q = 0; q < nc; q++)
        gmul(r, y + q * n, gy + q * n);
    for (size_t a = 0; a < nc; a++)
        for (size_t b = 0; b <= a; b++)
            s->h[a * nc + b] = s->h[b * nc + a] =
                vdot(y + a * n, gy + b * n, n);
    cx__sym_eigen(nc, s->h, s->lam, s->ev);
    for (size_t i = 0; i < nc && s->lam[i] > CX__SPAN_TOL; i++) {
        double *t = tt + *mrows * n, *gt = gtt + *mrows * n;
        double sc = 1.0 / sqrt(s->lam[i]);
        for (size_t q = 0; q < nc; q++)
            for (size_t j = 0; j < n; j++) {
                t[j] += sc * s->ev[i * nc + q] * y[q * n + j];
                gt[j] += sc * s->ev[i * nc + q] * gy[q * n + j];
            }
        (*mrows)++;
    }
}

/* out (nrows x D) = T A, chunk by chunk, accumulated in double. */
static int write_rows(const cx_model_t *m, const rows_t *r, const double *tt,
                      size_t nrows, float *out)
{
    size_t d = m->npix, n = r->n;
    double *buf = malloc(GRAM_CHUNK * sizeof *buf);
    if (!buf)
        return -1;
    for (size_t s = 0; s < d; s += GRAM_CHUNK) {
        size_t len = d - s < GRAM_CHUNK ? d - s : GRAM_CHUNK;
        for (size_t i = 0; i < nrows; i++) {
            memset(buf, 0, len * sizeof *buf);
            for (size_t j = 0; j < n; j++)
                if (tt[i * n + j] != 0.0)
                    cx__axpyd(buf, tt[i * n + j], r->p[j] + s, len);
            float *w = out + i * d + s;
            for (size_t p = 0; p < len; p++)
                w[p] = (float)buf[p];
        }
    }
    free(buf);
    return 0;
}

/* Coordinates of every component's rows in a basis, read off G T: into
 * alpha (or alpha_l) and b (or b_l), row stride `stride`; class c's basis
 * rows are gtt rows [off(c), off(c) + dim(c)). */
static void coordinates(cx_model_t *m, const rows_t *r, const double *gtt,
                        int local)
{
    size_t n = r->n, i = 0;
    double *col = local ? m->coef_l : m->coef;
    for (size_t k = 0; k < m->ncomp; k++) {
        cx__comp_t *c = &m->comp[k];
        size_t stride = local ? m->cdim[c->cls] : m->m;
        size_t off = local ? m->coff[c->cls] : 0;
        size_t lim = local ? m->cdim[c->cls] : m->mdim[c->cls];
        double *alpha = col, *b = col + stride;
        if (local) {
            c->alpha_l = alpha;
            c->b_l = b;
        } else {
            c->alpha = alpha;
            c->b = b;
        }
        for (uint32_t q = 0; q <= c->rank; q++, i++) {
            double *out = q == 0 ? alpha : b + (size_t)(q - 1) * stride;
            for (size_t t = 0; t < lim; t++)
                out[t] = gtt[(off + t) * n + i];
        }
        col += (1 + (size_t)c->rank) * stride;
    }
}

int cx__model_wants_local(size_t nclasses, const size_t *class_rows)
{
    size_t cum = 0, pre = 0;
    for (size_t c = 0; c < nclasses; c++) {
        cum += class_rows[c];
        pre += cum;
    }
    return 2 * pre > 3 * cum;
}

/* Class-local bases (model_impl.h), when cx__model_wants_local. */
static int build_local(cx_model_t *m, const rows_t *r, const gs_t *s)
{
    size_t n = r->n, tot = 0, *crows = malloc(m->nclasses * sizeof *crows);
    if (!crows)
        return -1;
    for (size_t c = 0; c < m->nclasses; c++)
        crows[c] = r->first[c + 1] - r->first[c];
    int want = m->local_ok && cx__model_wants_local(m->nclasses, crows);
    free(crows);
    if (!want)
        return 0;
    double *tt = calloc(n * n, sizeof *tt), *gtt = calloc(n * n, sizeof *gtt);
    m->cdim = calloc(m->nclasses, sizeof *m->cdim);
    m->coff = calloc(m->nclasses, sizeof *m->coff);
    int rc = -1;
    if (!tt || !gtt || !m->cdim || !m->coff)
        goto done;
    for (size_t c = 0; c < m->nclasses; c++) {
        size_t k = 0;
        m->coff[c] = tot;
        add_class(r, c, tt + tot * n, gtt + tot * n, &k, s);
        m->cdim[c] = k;
        tot += k;
    }
    m->wc = aligned_alloc(64, (tot * m->npix * sizeof *m->wc + 63) / 64 * 64);
    m->coef_l = calloc(n * (tot ? tot : 1), sizeof *m->coef_l);
    if (!m->wc || !m->coef_l || write_rows(m, r, tt, tot, m->wc) != 0) {
        rc = -1;
        goto done;
    }
    m->wc_rows = tot;
    coordinates(m, r, gtt, 1);
    rc = 0;
done:
    free(tt);
    free(gtt);
    return rc;
}

static int build_subspace(cx_model_t *m, cx_err_t *err)
{
    rows_t r = {0};
    gs_t s = {0};
    int rc = -1;
    if (rows_init(m, &r) != 0)
        goto fail_nomem;
    gram(m, &r);
    if (check_bases(m, &r, err) != 0)
        goto done;
    size_t maxc = 0;
    for (size_t c = 0; c < m->nclasses; c++)
        if (r.first[c + 1] - r.first[c] > maxc)
            maxc = r.first[c + 1] - r.first[c];
    s.y = malloc(maxc * r.n * sizeof *s.y);
    s.gy = malloc(maxc * r.n * sizeof *s.gy);
    s.h = malloc(maxc * maxc * sizeof *s.h);
    s.ev = malloc(maxc * maxc * sizeof *s.ev);
    s.lam = malloc(maxc * sizeof *s.lam);
    if (!s.y || !s.gy || !s.h || !s.ev || !s.lam)
        goto fail_nomem;
    size_t mrows = 0;
    for (size_t c = 0; c < m->nclasses; c++) {
        add_class(&r, c, r.t, r.gt, &mrows, &s);
        m->mdim[c] = mrows;
    }
    m->m = mrows;
    m->w = aligned_alloc(64, (mrows * m->npix * sizeof *m->w + 63) / 64 * 64);
    m->coef = calloc(r.n * (mrows ? mrows : 1), sizeof *m->coef);
    if (!m->w || !m->coef || write_rows(m, &r, r.t, mrows, m->w) != 0)
        goto fail_nomem;
    coordinates(m, &r, r.gt, 0);
    if (build_local(m, &r, &s) != 0)
        goto fail_nomem;
    rc = 0;
    goto done;
fail_nomem:
    cx_err_set(err, CX_ENOMEM, 1, "%s: out of memory building the subspace",
               m->name);
done:
    free(s.y);
    free(s.gy);
    free(s.h);
    free(s.ev);
    free(s.lam);
    rows_free(&r);
    return rc;
}

int cx__model_finish(cx_model_t *m, cx_err_t *err)
{
    if (validate(m, err) != 0 || build_subspace(m, err) != 0)
        return -1;
    for (size_t k = 0; k < m->ncomp; k++) {
        cx__comp_t *c = &m->comp[k];
        c->logw = log(c->weight);
        c->logw_all = log(m->prior[c->cls] * c->weight);
        m->views[k] = (cx_component_view_t){.weight = c->weight,
                                            .rank = c->rank,
                                            .mean = c->mean,
                                            .basis = c->basis,
                                            .var = c->var,
                                            .resid_var = c->s2};
    }
    return 0;
}

/* ---- public accessors ------------------------------------------------ */

void cx_model_destroy(cx_model_t *m)
{
    if (!m)
        return;
    free(m->names);
    free(m->prior);
    free(m->first);
    free(m->mdim);
    free(m->comp);
    free(m->views);
    free(m->data);
    free(m->w);
    free(m->coef);
    free(m->cdim);
    free(m->coff);
    free(m->wc);
    free(m->coef_l);
    free(m);
}

size_t cx_model_class_count(const cx_model_t *m) { return m->nclasses; }

const char *cx_model_class_name(const cx_model_t *m, size_t i)
{
    return i < m->nclasses ? m->names[i] : NULL;
}

int cx_model_class_index(const cx_model_t *m, const char *name)
{
    for (size_t k = 0; name && k < m->nclasses; k++)
        if (strcmp(m->names[k], name) == 0)
            return (int)k;
    return -1;
}

size_t cx_model_memory_bytes(const cx_model_t *m)
{
    size_t rows = 0;
    for (size_t k = 0; k < m->ncomp; k++)
        rows += 1 + m->comp[k].rank;
    return sizeof *m + m->data_bytes +
           (m->m + m->wc_rows) * m->npix * sizeof(float) +
           rows * (m->m + m->wc_rows) * sizeof(double) +
           m->ncomp * (sizeof(cx__comp_t) + sizeof(cx_component_view_t)) +
           m->nclasses * (CX__CLASS_NAME_MAX + 3 * sizeof(size_t) +
                          sizeof(double));
}

uint32_t cx_model_width(const cx_model_t *m) { return m->width; }
uint32_t cx_model_height(const cx_model_t *m) { return m->height; }
const char *cx_model_name(const cx_model_t *m) { return m->name; }

int cx_model_components(const cx_model_t *m, size_t class_idx,
                        const cx_component_view_t **out, size_t *n,
                        cx_err_t *err)
{
    if (!m || !out || !n)
        return cx_err_set(err, CX_EINVAL, 0, "components: missing argument");
    if (class_idx >= m->nclasses)
        return cx_err_set(err, CX_EINVAL, 0, "components: class %zu of %zu",
                          class_idx, m->nclasses);
    *out = m->views + m->first[class_idx];
    *n = m->first[class_idx + 1] - m->first[class_idx];
    return 0;
}

double cx_model_class_prior(const cx_model_t *m, size_t class_idx)
{
    return m && class_idx < m->nclasses ? m->prior[class_idx] : 0.0;
}
