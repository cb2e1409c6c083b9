/* cx_profile_*: loading, checking and using gate profiles (profile.h).
 *
 * Features file (little-endian):
 *   0   char[8]  magic "CXGFEAT1"
 *   8   u32      version (1)
 *   12  u32      feature layout (CX_FEAT_LAYOUT)
 *   16  u32      dim (CX_FEAT_DIM)
 *   20  u32      nclasses
 *   24  u64      nrows
 *   32  nclasses x {u64 row0, u64 count}   rows grouped by class, in order
 *   ..  nrows x dim float32                the raw feature vectors
 * Its SHA-256 (of the whole file) is in the JSON, which is how a truncated,
 * edited or mismatched file is caught. */
#include "profile_impl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/sha256.h"
#include "cascade/util.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gate profile files are little-endian; add byte swapping here"
#endif

#define CX__STATS_CAP 262144 /* rows per class used for the statistics */
#define CX__PCA_CAP 65536    /* rows used for the projection */

static const char *const cx__struct_names[CX_PROFILE_NSTRUCT] = {
    "fg_area",   "fg_cx",    "fg_cy",     "symmetry",
    "body_mean", "body_std", "body_skew", "body_kurt"};

int cx_profile_struct_measure(size_t i) {
    return i < CX_PROFILE_NSTRUCT ? cx_feat_measure_index(cx__struct_names[i])
                                  : -1;
}

/* ---- lifetime and accessors -------------------------------------------- */

cx_profile_t *cx__profile_alloc(size_t nclasses) {
    cx_profile_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->cls = calloc(nclasses ? nclasses : 1, sizeof *p->cls);
    if (!p->cls) {
        free(p);
        return NULL;
    }
    p->nclasses = nclasses;
    return p;
}

void cx_profile_destroy(cx_profile_t *p) {
    if (!p) return;
    for (size_t c = 0; c < p->nclasses; c++) {
        free(p->cls[c].chol);
        free(p->cls[c].ref);
        free(p->cls[c].radius);
    }
    free(p->cls);
    free(p->rows);
    cx_knn_destroy(p->knn);
    free(p);
}

const char *cx_profile_name(const cx_profile_t *p) { return p->name; }
const cx_gate_limits_t *cx_profile_limits(const cx_profile_t *p) {
    return &p->limits;
}
void cx_profile_geometry(const cx_profile_t *p, uint32_t *width,
                         uint32_t *height, int *depth) {
    if (width) *width = p->width;
    if (height) *height = p->height;
    if (depth) *depth = p->depth;
}
size_t cx_profile_nclasses(const cx_profile_t *p) { return p->nclasses; }
const char *cx_profile_class_name(const cx_profile_t *p, size_t c) {
    return c < p->nclasses ? p->cls[c].name : NULL;
}
int cx_profile_class(const cx_profile_t *p, const char *name) {
    for (size_t c = 0; name && c < p->nclasses; c++)
        if (strcmp(p->cls[c].name, name) == 0) return (int)c;
    return -1;
}
size_t cx_profile_rows(const cx_profile_t *p) { return p->nrows; }
const cx_knn_t *cx_profile_knn(const cx_profile_t *p) { return p->knn; }
size_t cx_profile_nref(const cx_profile_t *p, size_t c) {
    return c < p->nclasses ? p->cls[c].nref : 0;
}

/* ---- derived statistics ------------------------------------------------ */

void cx__profile_z(const cx_profile_t *p, const float *row, double *z) {
    for (int d = 0; d < CX_FEAT_DIM; d++)
        z[d] = ((double)row[d] - p->smean[d]) / p->sstd[d];
}

/* Rows of [row0, row0 + n) minus [skip0, skip1), at most cap of them,
 * evenly spaced: calls fn(ctx, z) for each. Returns how many. */
static size_t cx__profile_each(const cx_profile_t *p, size_t row0, size_t n,
                               size_t skip0, size_t skip1, size_t cap,
                               void (*fn)(void *, const double *),
                               void *ctx) {
    size_t avail = n - (skip1 > skip0 ? skip1 - skip0 : 0);
    size_t take = avail < cap ? avail : cap, used = 0;
    double z[CX_FEAT_DIM];
    for (size_t t = 0; t < take; t++) {
        size_t k = (size_t)((double)t * (double)avail / (double)take);
        size_t r = row0 + k;
        if (skip1 > skip0 && r >= skip0) r += skip1 - skip0;
        cx__profile_z(p, p->rows + r * CX_FEAT_DIM, z);
        fn(ctx, z);
        used++;
    }
    return used;
}

typedef struct cx__covacc {
    double count;
    double sum[CX_FEAT_DIM];
    double *sxx; /* full D x D, upper triangle used */
} cx__covacc_t;

static void cx__profile_covadd(void *ctx, const double *z) {
    cx__covacc_t *a = ctx;
    a->count += 1;
    for (int i = 0; i < CX_FEAT_DIM; i++) {
        a->sum[i] += z[i];
        double *row = a->sxx + i * CX_FEAT_DIM;
        for (int j = i; j < CX_FEAT_DIM; j++) row[j] += z[i] * z[j];
    }
}

/* Mean and covariance from the accumulator (cov: D x D). */
static void cx__profile_covfinish(const cx__covacc_t *a, double *mean,
                                  double *cov) {
    const int D = CX_FEAT_DIM;
    double c = a->count;
    for (int i = 0; i < D; i++) mean[i] = c > 0 ? a->sum[i] / c : 0;
    for (int i = 0; i < D; i++)
        for (int j = i; j < D; j++) {
            double v = c > 1 ? (a->sxx[i * D + j] - c * mean[i] * mean[j]) /
                                   (c - 1)
                             : 0;
            cov[i * D + j] = cov[j * D + i] = v;
        }
}

int cx__profile_maha_fit(const cx_profile_t *p, size_t row0, size_t n,
                         size_t skip0, size_t skip1, double *mean,
                         double *chol, cx_err_t *err) {
    const int D = CX_FEAT_DIM;
    cx__covacc_t a = {0};
    a.sxx = calloc((size_t)D * D, sizeof *a.sxx);
    if (!a.sxx) return cx_err_set(err, CX_ENOMEM, 0, "profile statistics");
    cx__profile_each(p, row0, n, skip0, skip1, CX__STATS_CAP,
                     cx__profile_covadd, &a);
    double *cov = a.sxx; /* finished in place below: copy first */
    double *tmp = malloc((size_t)D * D * sizeof *tmp);
    if (!tmp) {
        free(a.sxx);
        return cx_err_set(err, CX_ENOMEM, 0, "profile statistics");
    }
    cx__profile_covfinish(&a, mean, tmp);
    free(cov);
    double tr = 0;
    for (int i = 0; i < D; i++) tr += tmp[i * D + i];
    /* Ridge relative to the average variance; a floor for classes with
     * (nearly) no spread. Grow it until the factorisation succeeds. */
    double lambda = p->ridge * tr / D;
    if (!(lambda > 1e-9)) lambda = 1e-9;
    for (int attempt = 0; attempt < 12; attempt++, lambda *= 10) {
        memcpy(chol, tmp, (size_t)D * D * sizeof *chol);
        for (int i = 0; i < D; i++) chol[i * D + i] += lambda;
        if (cx_dist_cholesky(chol, D) == 0) {
            free(tmp);
            return 0;
        }
    }
    free(tmp);
    return cx_err_set(err, CX_EINVAL, 0,
                      "class covariance is not positive definite");
}

double cx__profile_logdet(const double *chol) {
    double s = 0;
    for (int i = 0; i < CX_FEAT_DIM; i++)
        s += log(chol[i * CX_FEAT_DIM + i]);
    return 2 * s;
}

double cx__profile_class_llr(const cx_profile_t *p, size_t c, const double *z,
                             const double *own_mean, const double *own_chol,
                             double own_logdet, int *best) {
    double d[CX_FEAT_DIM], tmp[CX_FEAT_DIM];
    for (int i = 0; i < CX_FEAT_DIM; i++) d[i] = z[i] - own_mean[i];
    double m = cx_dist_chol_norm(own_chol, CX_FEAT_DIM, d, tmp);
    double own = -0.5 * m * m - 0.5 * own_logdet, llr = -INFINITY;
    *best = (int)c;
    for (size_t k = 0; k < p->nclasses; k++) {
        if (k == c) continue;
        const cx__pclass_t *o = &p->cls[k];
        for (int i = 0; i < CX_FEAT_DIM; i++) d[i] = z[i] - o->mean[i];
        double mo = cx_dist_chol_norm(o->chol, CX_FEAT_DIM, d, tmp);
        double r = -0.5 * mo * mo - 0.5 * o->logdet - own;
        if (r > llr) {
            llr = r;
            *best = (int)k;
        }
    }
    return llr;
}

/* The projection: the leading principal axes of the standardised rows. */
static int cx__profile_pca(cx_profile_t *p, cx_err_t *err) {
    const int D = CX_FEAT_DIM;
    cx__covacc_t a = {0};
    double *cov = malloc((size_t)D * D * sizeof *cov);
    double *vec = malloc((size_t)D * D * sizeof *vec);
    double w[CX_FEAT_DIM], mean[CX_FEAT_DIM];
    a.sxx = calloc((size_t)D * D, sizeof *a.sxx);
    int rc = -1;
    if (!cov || !vec || !a.sxx) {
        cx_err_set(err, CX_ENOMEM, 0, "profile projection");
        goto done;
    }
    cx__profile_each(p, 0, p->nrows, 0, 0, CX__PCA_CAP, cx__profile_covadd,
                     &a);
    cx__profile_covfinish(&a, mean, cov);
    if (cx_dist_eigsym(cov, D, w, vec) < 0) {
        cx_err_set(err, CX_ENOMEM, 0, "profile projection");
        goto done;
    }
    memcpy(p->fd_basis, vec,
           sizeof(double) * CX_PROFILE_FD_DIM * (size_t)D);
    rc = 0;
done:
    free(a.sxx);
    free(cov);
    free(vec);
    return rc;
}

static void cx__profile_project(const cx_profile_t *p, const double *z,
                                double *out) {
    for (int k = 0; k < CX_PROFILE_FD_DIM; k++) {
        double s = 0;
        const double *b = p->fd_basis + k * CX_FEAT_DIM;
        for (int d = 0; d < CX_FEAT_DIM; d++) s += b[d] * z[d];
        out[k] = s;
    }
}

typedef struct cx__fdctx {
    const cx_profile_t *p;
    cx_dist_acc_t *acc;
} cx__fdctx_t;

static void cx__profile_fdadd(void *ctx, const double *z) {
    cx__fdctx_t *f = ctx;
    double pr[CX_PROFILE_FD_DIM];
    cx__profile_project(f->p, z, pr);
    cx_dist_acc_add(f->acc, pr, CX_PROFILE_FD_DIM);
}

static int cx__profile_refs(cx_profile_t *p, cx__pclass_t *c, cx_err_t *err) {
    size_t nref = c->nrows < p->ref_per_class ? c->nrows : p->ref_per_class;
    c->nref = nref;
    c->ref = malloc(nref * CX_FEAT_DIM * sizeof *c->ref);
    c->radius = malloc(nref * sizeof *c->radius);
    if (!c->ref || !c->radius)
        return cx_err_set(err, CX_ENOMEM, 0, "profile references");
    for (size_t i = 0; i < nref; i++) {
        size_t r = c->row0 + (size_t)((double)i * c->nrows / nref);
        cx__profile_z(p, p->rows + r * CX_FEAT_DIM, c->ref + i * CX_FEAT_DIM);
    }
    if (nref < 2) {
        for (size_t i = 0; i < nref; i++) c->radius[i] = 0;
        return 0;
    }
    unsigned k = p->pr_k < nref - 1 ? p->pr_k : (unsigned)(nref - 1);
    return cx_dist_knn_radii(c->ref, nref, CX_FEAT_DIM, CX_FEAT_DIM, k,
                             c->radius, err);
}

int cx__profile_build(cx_profile_t *p, cx_err_t *err) {
    p->knn = cx_knn_new(p->rows, p->nrows, CX_FEAT_PRIV_DIM, CX_FEAT_DIM, err);
    if (!p->knn) return -1;
    if (cx__profile_pca(p, err) < 0) return -1;
    for (size_t k = 0; k < p->nclasses; k++) {
        cx__pclass_t *c = &p->cls[k];
        c->chol = malloc(sizeof(double) * CX_FEAT_DIM * CX_FEAT_DIM);
        if (!c->chol) return cx_err_set(err, CX_ENOMEM, 0, "profile");
        if (cx__profile_maha_fit(p, c->row0, c->nrows, 0, 0, c->mean, c->chol,
                                 err) < 0)
            return cx_err_wrap(err, "class %s", c->name);
        c->logdet = cx__profile_logdet(c->chol);
        if (cx__profile_refs(p, c, err) < 0) return -1;
        cx_dist_acc_t *acc = calloc(1, sizeof *acc);
        if (!acc) return cx_err_set(err, CX_ENOMEM, 0, "profile");
        cx__fdctx_t f = {p, acc};
        cx__profile_each(p, c->row0, c->nrows, 0, 0, CX__STATS_CAP,
                         cx__profile_fdadd, &f);
        cx_dist_acc_meancov(acc, CX_PROFILE_FD_DIM, c->fd_mean, c->fd_cov);
        free(acc);
    }
    return 0;
}

/* ---- scores ------------------------------------------------------------ */

void cx_profile_score_timed(const cx_profile_t *p, size_t c,
                            const cx_feat_t *f, uint8_t *covered,
                            cx_profile_scores_t *out, cx_profile_timing_t *t) {
    const cx__pclass_t *k = &p->cls[c];
    double z[CX_FEAT_DIM], d[CX_FEAT_DIM], tmp[CX_FEAT_DIM];
    double t0 = t ? cx_mono_ms() : 0, t1;
    for (int i = 0; i < CX_FEAT_DIM; i++)
        z[i] = ((double)f->vec[i] - p->smean[i]) / p->sstd[i];
    for (int i = 0; i < CX_FEAT_DIM; i++) d[i] = z[i] - k->mean[i];
    out->mahalanobis = cx_dist_chol_norm(k->chol, CX_FEAT_DIM, d, tmp);
    out->class_llr = cx__profile_class_llr(p, c, z, k->mean, k->chol,
                                           k->logdet, &out->class_best);
    if (t) {
        t1 = cx_mono_ms();
        t->mahalanobis += t1 - t0;
        t0 = t1;
    }
    out->structure_z = 0;
    out->structure_worst = cx_profile_struct_measure(0);
    for (size_t i = 0; i < CX_PROFILE_NSTRUCT; i++) {
        int m = cx_profile_struct_measure(i);
        double v = fabs(cx_feat_get(f, (size_t)m) - k->med[i]) / k->sig[i];
        if (!(v <= out->structure_z)) { /* NaN counts as worst */
            out->structure_z = isnan(v) ? INFINITY : v;
            out->structure_worst = m;
        }
    }
    if (t) {
        t1 = cx_mono_ms();
        t->structure += t1 - t0;
        t0 = t1;
    }
    out->in_manifold =
        cx_dist_pr_sample(z, k->ref, k->nref, CX_FEAT_DIM, k->radius, covered);
    if (t) {
        t1 = cx_mono_ms();
        t->manifold += t1 - t0;
        t0 = t1;
    }
    cx__profile_project(p, z, out->proj);
    if (t) t->projection += cx_mono_ms() - t0;
}

void cx_profile_score(const cx_profile_t *p, size_t c, const cx_feat_t *f,
                      uint8_t *covered, cx_profile_scores_t *out) {
    cx_profile_score_timed(p, c, f, covered, out, NULL);
}

int cx_profile_frechet(const cx_profile_t *p, size_t c,
                       const cx_dist_acc_t *acc, double *out, cx_err_t *err) {
    double m[CX_PROFILE_FD_DIM], cov[CX_PROFILE_FD_DIM * CX_PROFILE_FD_DIM];
    cx_dist_acc_meancov(acc, CX_PROFILE_FD_DIM, m, cov);
    return cx_dist_frechet(m, cov, p->cls[c].fd_mean, p->cls[c].fd_cov,
                           CX_PROFILE_FD_DIM, out, err);
}

/* ---- the features file ------------------------------------------------- */

static void cx__put32(uint8_t *b, uint32_t v) { memcpy(b, &v, 4); }
static void cx__put64(uint8_t *b, uint64_t v) { memcpy(b, &v, 8); }
static uint32_t cx__get32(const uint8_t *b) {
    uint32_t v;
    memcpy(&v, b, 4);
    return v;
}
static uint64_t cx__get64(const uint8_t *b) {
    uint64_t v;
    memcpy(&v, b, 8);
    return v;
}

uint8_t *cx__profile_feat_bytes(const cx_profile_t *p, size_t *len,
                                cx_err_t *err) {
    size_t table = 16 * p->nclasses;
    size_t body = p->nrows * CX_FEAT_DIM * sizeof(float);
    *len = CX__FEAT_HEADER + table + body;
    uint8_t *b = malloc(*len);
    if (!b) {
        cx_err_set(err, CX_ENOMEM, 0, "features file");
        return NULL;
    }
    memcpy(b, CX__FEAT_MAGIC, 8);
    cx__put32(b + 8, CX__FEAT_VERSION);
    cx__put32(b + 12, CX_FEAT_LAYOUT);
    cx__put32(b + 16, CX_FEAT_DIM);
    cx__put32(b + 20, (uint32_t)p->nclasses);
    cx__put64(b + 24, p->nrows);
    for (size_t c = 0; c < p->nclasses; c++) {
        cx__put64(b + CX__FEAT_HEADER + 16 * c, p->cls[c].row0);
        cx__put64(b + CX__FEAT_HEADER + 16 * c + 8, p->cls[c].nrows);
    }
    memcpy(b + CX__FEAT_HEADER + table, p->rows, body);
    return b;
}

/* Checks the features file against the JSON's expectations and takes its
 * rows. */
static int cx__profile_read_feat(cx_profile_t *p, const char *path,
                                 const char *sha, size_t rows,
                                 cx_err_t *err) {
    char *data = NULL;
    size_t len = 0;
    if (cx_read_file(path, &data, &len, err) < 0)
        return cx_err_wrap(err, "features file %s", path);
    const uint8_t *b = (const uint8_t *)data;
    char hex[65];
    int rc = -1;
    cx_sha256_hex(data, len, hex);
    if (strcmp(hex, sha) != 0) {
        cx_err_set(err, CX_EINVAL, 0,
                   "features file %s: sha256 %s, the profile says %s "
                   "(corrupt, truncated or from another calibration)",
                   path, hex, sha);
        goto done;
    }
    size_t table = 16 * p->nclasses;
    if (len < CX__FEAT_HEADER || memcmp(b, CX__FEAT_MAGIC, 8) != 0) {
        cx_err_set(err, CX_EINVAL, 0, "features file %s: bad magic", path);
        goto done;
    }
    if (cx__get32(b + 8) != CX__FEAT_VERSION ||
        cx__get32(b + 12) != CX_FEAT_LAYOUT ||
        cx__get32(b + 16) != CX_FEAT_DIM ||
        cx__get32(b + 20) != p->nclasses || cx__get64(b + 24) != rows) {
        cx_err_set(err, CX_EINVAL, 0,
                   "features file %s: header (version %u, layout %u, dim "
                   "%u, classes %u, rows %llu) does not match the profile "
                   "(1, %d, %d, %zu, %zu)",
                   path, cx__get32(b + 8), cx__get32(b + 12),
                   cx__get32(b + 16), cx__get32(b + 20),
                   (unsigned long long)cx__get64(b + 24), CX_FEAT_LAYOUT,
                   CX_FEAT_DIM, p->nclasses, rows);
        goto done;
    }
    if (len != CX__FEAT_HEADER + table + rows * CX_FEAT_DIM * sizeof(float)) {
        cx_err_set(err, CX_EINVAL, 0, "features file %s: %zu bytes, "
                   "expected %zu", path, len,
                   CX__FEAT_HEADER + table + rows * CX_FEAT_DIM * sizeof(float));
        goto done;
    }
    size_t next = 0;
    for (size_t c = 0; c < p->nclasses; c++) {
        uint64_t r0 = cx__get64(b + CX__FEAT_HEADER + 16 * c);
        uint64_t n = cx__get64(b + CX__FEAT_HEADER + 16 * c + 8);
        if (r0 != next || n != p->cls[c].nrows) {
            cx_err_set(err, CX_EINVAL, 0, "features file %s: class %s has "
                       "rows [%llu, +%llu), the profile says [%zu, +%zu)",
                       path, p->cls[c].name, (unsigned long long)r0,
                       (unsigned long long)n, next, p->cls[c].nrows);
            goto done;
        }
        p->cls[c].row0 = next;
        next += n;
    }
    p->rows = malloc(rows * CX_FEAT_DIM * sizeof(float) + 1);
    if (!p->rows) {
        cx_err_set(err, CX_ENOMEM, 0, "features of %zu rows", rows);
        goto done;
    }
    memcpy(p->rows, b + CX__FEAT_HEADER + table,
           rows * CX_FEAT_DIM * sizeof(float));
    p->nrows = rows;
    for (size_t i = 0; i < rows * CX_FEAT_DIM; i++)
        if (!isfinite(p->rows[i])) {
            cx_err_set(err, CX_EINVAL, 0, "features file %s: row %zu is not "
                       "finite", path, i / CX_FEAT_DIM);
            goto done;
        }
    rc = 0;
done:
    free(data);
    return rc;
}

/* ---- the JSON ---------------------------------------------------------- */

static const cJSON *cx__jget(const cJSON *o, const char *key, int type,
                             const char *what, cx_err_t *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        cx_err_set(err, CX_EINVAL, 0, "missing %s%s", what, key);
        return NULL;
    }
    if (!(v->type & type)) {
        cx_err_set(err, CX_EINVAL, 0, "%s%s has the wrong type", what, key);
        return NULL;
    }
    return v;
}

static int cx__jnum(const cJSON *o, const char *key, double lo, double hi,
                    const char *what, double *out, cx_err_t *err) {
    const cJSON *v = cx__jget(o, key, cJSON_Number, what, err);
    if (!v) return -1;
    if (!isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return cx_err_set(err, CX_EINVAL, 0, "%s%s = %g is outside [%g, %g]",
                          what, key, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return 0;
}

static int cx__jvec(const cJSON *o, const char *key, double lo, double hi,
                    double *out, int n, cx_err_t *err) {
    const cJSON *a = cx__jget(o, key, cJSON_Array, "standardize.", err);
    if (!a) return -1;
    if (cJSON_GetArraySize(a) != n)
        return cx_err_set(err, CX_EINVAL, 0,
                          "standardize.%s has %d values, expected %d", key,
                          cJSON_GetArraySize(a), n);
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
            v->valuedouble < lo || v->valuedouble > hi)
            return cx_err_set(err, CX_EINVAL, 0,
                              "standardize.%s[%d] is not a number in "
                              "[%g, %g]", key, i, lo, hi);
        out[i++] = v->valuedouble;
    }
    return 0;
}

static int cx__profile_json_thresholds(cx_profile_t *p, const cJSON *th,
                                       cx_err_t *err) {
    const cJSON *v;
    cJSON_ArrayForEach(v, th) {
        if (cx_gate_limit_index(v->string) < 0)
            return cx_err_set(err, CX_EINVAL, 0,
                              "thresholds.%s is not a known threshold",
                              v->string);
    }
    for (size_t i = 0; i < cx_gate_nlimits; i++) {
        const cx_gate_limit_def_t *d = &cx_gate_limit_defs[i];
        if (cx__jnum(th, d->name, d->lo, d->hi, "thresholds.",
                     cx_gate_limit_ref(&p->limits, i), err) < 0)
            return -1;
    }
    return cx_gate_limits_check(&p->limits, err);
}

static int cx__profile_json_class(cx_profile_t *p, size_t k, const cJSON *o,
                                  cx_err_t *err) {
    cx__pclass_t *c = &p->cls[k];
    char what[CX_NAME_MAX + 64];
    const cJSON *name = cx__jget(o, "name", cJSON_String, "classes[].", err);
    if (!name) return -1;
    if (cx_name_check("class name", name->valuestring, err) < 0) return -1;
    snprintf(c->name, sizeof c->name, "%s", name->valuestring);
    for (size_t j = 0; j < k; j++)
        if (strcmp(p->cls[j].name, c->name) == 0)
            return cx_err_set(err, CX_EINVAL, 0, "class %s is listed twice",
                              c->name);
    snprintf(what, sizeof what, "classes[%s].", c->name);
    double rows;
    if (cx__jnum(o, "rows", 1, 2147483647.0, what, &rows, err) < 0) return -1;
    c->nrows = (size_t)rows;
    const cJSON *env = cx__jget(o, "envelope", cJSON_Object, what, err);
    if (!env) return -1;
    for (size_t i = 0; i < CX_PROFILE_NSTRUCT; i++) {
        snprintf(what, sizeof what, "classes[%s].envelope.", c->name);
        const cJSON *m = cx__jget(env, cx__struct_names[i], cJSON_Object, what,
                                  err);
        if (!m) return -1;
        snprintf(what, sizeof what, "classes[%s].envelope.%s.", c->name,
                 cx__struct_names[i]);
        if (cx__jnum(m, "median", -1e6, 1e6, what, &c->med[i], err) < 0 ||
            cx__jnum(m, "sigma", 1e-12, 1e6, what, &c->sig[i], err) < 0)
            return -1;
    }
    return 0;
}

/* Parses and checks the JSON; fills p (not the rows). *feat: the features
 * file name, *sha: its checksum, *rows: its row count. */
static int cx__profile_json(cx_profile_t **out, const cJSON *j,
                            const char *name, const char **feat,
                            const char **sha, size_t *rows, cx_err_t *err) {
    const cJSON *v;
    double x;
    if (!(v = cx__jget(j, "format", cJSON_String, "", err))) return -1;
    if (strcmp(v->valuestring, CX_PROFILE_FORMAT) != 0)
        return cx_err_set(err, CX_EINVAL, 0, "format is '%s', not '%s'",
                          v->valuestring, CX_PROFILE_FORMAT);
    if (cx__jnum(j, "version", 0, 1e9, "", &x, err) < 0) return -1;
    if (x != CX_PROFILE_VERSION)
        return cx_err_set(err, CX_EINVAL, 0, "version %g is not supported "
                          "(this validator reads version %d)", x,
                          CX_PROFILE_VERSION);
    if (!(v = cx__jget(j, "name", cJSON_String, "", err))) return -1;
    if (strcmp(v->valuestring, name) != 0)
        return cx_err_set(err, CX_EINVAL, 0, "the file says name '%s'",
                          v->valuestring);
    if (cx__jnum(j, "feature_layout", 0, 1e9, "", &x, err) < 0) return -1;
    if (x != CX_FEAT_LAYOUT)
        return cx_err_set(err, CX_EINVAL, 0, "feature_layout %g, this "
                          "validator computes layout %d: recalibrate", x,
                          CX_FEAT_LAYOUT);
    const struct { const char *k; double want; } fixed[] = {
        {"feature_dim", CX_FEAT_DIM}, {"privacy_dim", CX_FEAT_PRIV_DIM},
        {"fd_dim", CX_PROFILE_FD_DIM}};
    for (size_t i = 0; i < 3; i++) {
        if (cx__jnum(j, fixed[i].k, 0, 1e9, "", &x, err) < 0) return -1;
        if (x != fixed[i].want)
            return cx_err_set(err, CX_EINVAL, 0, "%s is %g, expected %g",
                              fixed[i].k, x, fixed[i].want);
    }
    const cJSON *cls = cx__jget(j, "classes", cJSON_Array, "", err);
    if (!cls) return -1;
    int nc = cJSON_GetArraySize(cls);
    if (nc < 1 || nc > 64)
        return cx_err_set(err, CX_EINVAL, 0, "classes: %d entries, expected "
                          "1 to 64", nc);
    cx_profile_t *p = cx__profile_alloc((size_t)nc);
    if (!p) return cx_err_set(err, CX_ENOMEM, 0, "profile");
    *out = p;
    snprintf(p->name, sizeof p->name, "%s", name);
    const cJSON *img = cx__jget(j, "image", cJSON_Object, "", err);
    if (!img) return -1;
    double w, h, d;
    if (cx__jnum(img, "width", 8, 4096, "image.", &w, err) < 0 ||
        cx__jnum(img, "height", 8, 4096, "image.", &h, err) < 0 ||
        cx__jnum(img, "bit_depth", 8, 16, "image.", &d, err) < 0)
        return -1;
    if (d != 8 && d != 16)
        return cx_err_set(err, CX_EINVAL, 0, "image.bit_depth %g", d);
    p->width = (uint32_t)w;
    p->height = (uint32_t)h;
    p->depth = (int)d;
    const cJSON *st = cx__jget(j, "standardize", cJSON_Object, "", err);
    if (!st || cx__jvec(st, "mean", -1e9, 1e9, p->smean, CX_FEAT_DIM, err) < 0 ||
        cx__jvec(st, "std", 1e-9, 1e9, p->sstd, CX_FEAT_DIM, err) < 0)
        return -1;
    if (cx__jnum(j, "mahalanobis_ridge", 1e-9, 10, "", &p->ridge, err) < 0 ||
        cx__jnum(j, "pr_k", 1, 64, "", &x, err) < 0)
        return -1;
    p->pr_k = (unsigned)x;
    if (cx__jnum(j, "ref_per_class", 2, 65536, "", &x, err) < 0) return -1;
    p->ref_per_class = (size_t)x;
    const cJSON *th = cx__jget(j, "thresholds", cJSON_Object, "", err);
    if (!th || cx__profile_json_thresholds(p, th, err) < 0) return -1;
    size_t k = 0, sum = 0;
    cJSON_ArrayForEach(v, cls) {
        if (!cJSON_IsObject(v))
            return cx_err_set(err, CX_EINVAL, 0, "classes[%zu] is not an "
                              "object", k);
        if (cx__profile_json_class(p, k, v, err) < 0) return -1;
        sum += p->cls[k++].nrows;
    }
    const cJSON *f = cx__jget(j, "features", cJSON_Object, "", err);
    if (!f) return -1;
    const cJSON *file = cx__jget(f, "file", cJSON_String, "features.", err);
    const cJSON *hash = file ? cx__jget(f, "sha256", cJSON_String,
                                        "features.", err)
                             : NULL;
    if (!hash || cx__jnum(f, "rows", 1, 2147483647.0, "features.", &x,
                          err) < 0)
        return -1;
    if (cx_name_check("features.file", file->valuestring, err) < 0)
        return -1;
    if (strlen(hash->valuestring) != 64)
        return cx_err_set(err, CX_EINVAL, 0, "features.sha256 is not 64 hex "
                          "characters");
    if ((size_t)x != sum)
        return cx_err_set(err, CX_EINVAL, 0, "features.rows %g, but the "
                          "classes add up to %zu", x, sum);
    *feat = file->valuestring;
    *sha = hash->valuestring;
    *rows = sum;
    return 0;
}

cx_profile_t *cx_profile_load(const char *dir, const char *name,
                              cx_err_t *err) {
    char path[4096];
    char *text = NULL;
    size_t len;
    cJSON *j = NULL;
    cx_profile_t *p = NULL;
    const char *feat = NULL, *sha = NULL;
    size_t rows = 0;

    if (cx_name_check("gate profile", name, err) < 0) return NULL;
    if (strcmp(name, CX_PROFILE_BUILTIN) == 0) {
        cx_err_set(err, CX_EINVAL, 0, "'%s' is the built-in profile", name);
        return NULL;
    }
    if (!dir || !dir[0]) {
        cx_err_set(err, CX_ENOENT, 0, "gate profile %s: no profile_dir "
                   "configured", name);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    if (cx_read_file(path, &text, &len, err) < 0) {
        cx_err_wrap(err, "gate profile %s", name);
        return NULL;
    }
    j = cJSON_ParseWithLength(text, len);
    if (!j || !cJSON_IsObject(j)) {
        cx_err_set(err, CX_EINVAL, 0, "gate profile %s: %s is not a JSON "
                   "object", name, path);
        goto fail;
    }
    if (cx__profile_json(&p, j, name, &feat, &sha, &rows, err) < 0) {
        cx_err_wrap(err, "gate profile %s (%s)", name, path);
        goto fail;
    }
    snprintf(path, sizeof path, "%s/%s", dir, feat);
    if (cx__profile_read_feat(p, path, sha, rows, err) < 0 ||
        cx__profile_build(p, err) < 0) {
        cx_err_wrap(err, "gate profile %s", name);
        goto fail;
    }
    cJSON_Delete(j);
    free(text);
    return p;

fail:
    cJSON_Delete(j);
    free(text);
    cx_profile_destroy(p);
    return NULL;
}
