/* cx_calib_*: a gate profile from a training set's features (calib.h). */
#include "calib.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/names.h"
#include "cascade/sha256.h"
#include "profile_impl.h"

#define CX__STD_FLOOR 1e-3   /* feature resolution: standardisation floor */
#define CX__CV_EVAL 4000     /* held-out rows evaluated per class */

typedef struct cx__cclass {
    char name[CX_NAME_MAX + 1];
    float *vec;    /* n x CX_FEAT_DIM */
    size_t n, cap;
    double *meas;  /* nm x cx_feat_nmeasures, image rows only */
    size_t nm, mcap;
} cx__cclass_t;

struct cx_calib {
    uint32_t width, height;
    int depth;
    cx__cclass_t *cls;
    size_t ncls, capcls;
};

void cx_calib_opts_default(cx_calib_opts_t *o) {
    o->ridge = 0.01;
    o->pr_k = 5;
    o->ref_per_class = 1024;
    o->folds = 5;
    o->maha_quantile = 0.999;
    o->maha_margin = 1.5;
    o->llr_margin = 5;
    o->privacy_queries = 2000;
    o->privacy_quantile = 0.01;
    o->privacy_factor = 0.5;
    o->privacy_budget = 0.01;
    o->privacy_min_samples = 100;
    o->structure_k = 6;
}

cx_calib_t *cx_calib_new(uint32_t width, uint32_t height, int depth,
                         cx_err_t *err) {
    if (width < 8 || height < 8 || width > 4096 || height > 4096 ||
        (depth != 8 && depth != 16)) {
        cx_err_set(err, CX_EINVAL, 0, "calibration: %ux%u depth %d", width,
                   height, depth);
        return NULL;
    }
    cx_calib_t *c = calloc(1, sizeof *c);
    if (!c) {
        cx_err_set(err, CX_ENOMEM, 0, "calibration");
        return NULL;
    }
    c->width = width;
    c->height = height;
    c->depth = depth;
    return c;
}

void cx_calib_destroy(cx_calib_t *c) {
    if (!c) return;
    for (size_t i = 0; i < c->ncls; i++) {
        free(c->cls[i].vec);
        free(c->cls[i].meas);
    }
    free(c->cls);
    free(c);
}

static cx__cclass_t *cx__calib_class(cx_calib_t *c, const char *name,
                                     cx_err_t *err) {
    for (size_t i = 0; i < c->ncls; i++)
        if (strcmp(c->cls[i].name, name) == 0) return &c->cls[i];
    if (cx_name_check("class name", name, err) < 0) return NULL;
    if (c->ncls == 64) {
        cx_err_set(err, CX_EINVAL, 0, "calibration: more than 64 classes");
        return NULL;
    }
    if (c->ncls == c->capcls) {
        size_t cap = c->capcls ? 2 * c->capcls : 8;
        cx__cclass_t *n = realloc(c->cls, cap * sizeof *n);
        if (!n) {
            cx_err_set(err, CX_ENOMEM, 0, "calibration");
            return NULL;
        }
        c->cls = n;
        c->capcls = cap;
    }
    cx__cclass_t *k = &c->cls[c->ncls++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    return k;
}

static int cx__calib_grow(void **p, size_t *cap, size_t need, size_t elem,
                          cx_err_t *err) {
    if (need <= *cap) return 0;
    size_t cap2 = *cap ? *cap : 256;
    while (cap2 < need) cap2 *= 2;
    void *n = realloc(*p, cap2 * elem);
    if (!n) return cx_err_set(err, CX_ENOMEM, 0, "calibration rows");
    *p = n;
    *cap = cap2;
    return 0;
}

int cx_calib_add_rows(cx_calib_t *c, const char *class_name,
                      const float *rows, size_t n, cx_err_t *err) {
    cx__cclass_t *k = cx__calib_class(c, class_name, err);
    if (!k) return -1;
    for (size_t i = 0; i < n * CX_FEAT_DIM; i++)
        if (!isfinite(rows[i]))
            return cx_err_set(err, CX_EINVAL, 0, "calibration: row %zu of "
                              "class %s is not finite", i / CX_FEAT_DIM,
                              class_name);
    if (cx__calib_grow((void **)&k->vec, &k->cap, k->n + n,
                       CX_FEAT_DIM * sizeof(float), err) < 0)
        return -1;
    memcpy(k->vec + k->n * CX_FEAT_DIM, rows, n * CX_FEAT_DIM * sizeof(float));
    k->n += n;
    return 0;
}

int cx_calib_add(cx_calib_t *c, const char *class_name, const cx_feat_t *f,
                 cx_err_t *err) {
    if (cx_calib_add_rows(c, class_name, f->vec, 1, err) < 0) return -1;
    cx__cclass_t *k = cx__calib_class(c, class_name, err);
    if (cx__calib_grow((void **)&k->meas, &k->mcap, k->nm + 1,
                       cx_feat_nmeasures * sizeof(double), err) < 0)
        return -1;
    for (size_t m = 0; m < cx_feat_nmeasures; m++)
        k->meas[k->nm * cx_feat_nmeasures + m] = cx_feat_get(f, m);
    k->nm++;
    return 0;
}

/* ---- robust statistics ------------------------------------------------- */

static int cx__calib_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Quantile q of sorted v (linear interpolation between order statistics). */
static double cx__calib_q(const double *v, size_t n, double q) {
    if (n == 0) return 0;
    double h = q * (double)(n - 1);
    size_t i = (size_t)h;
    if (i + 1 >= n) return v[n - 1];
    return v[i] + (h - (double)i) * (v[i + 1] - v[i]);
}

/* Measure m of the image rows of the given classes (all: cls NULL),
 * sorted, into a malloc'd array. */
static double *cx__calib_measure(const cx_calib_t *c, const cx__cclass_t *cls,
                                 size_t m, size_t *n) {
    size_t total = 0;
    for (size_t i = 0; i < c->ncls; i++)
        if (!cls || cls == &c->cls[i]) total += c->cls[i].nm;
    double *v = malloc((total ? total : 1) * sizeof *v);
    if (!v) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < c->ncls; i++) {
        if (cls && cls != &c->cls[i]) continue;
        for (size_t r = 0; r < c->cls[i].nm; r++)
            v[k++] = c->cls[i].meas[r * cx_feat_nmeasures + m];
    }
    qsort(v, total, sizeof *v, cx__calib_cmp);
    *n = total;
    return v;
}

/* Median and robust sigma of a sorted sample, widened so that k_cover
 * sigmas reach 1.25 times beyond the sample's own 0.1 % and 99.9 %
 * quantiles (bimodal or heavy-tailed measures). */
static void cx__calib_robust(const double *v, size_t n, double k_cover,
                             double *med, double *sig) {
    *med = cx__calib_q(v, n, 0.5);
    double *dev = malloc((n ? n : 1) * sizeof *dev);
    double mad = 0;
    if (dev) {
        for (size_t i = 0; i < n; i++) dev[i] = fabs(v[i] - *med);
        qsort(dev, n, sizeof *dev, cx__calib_cmp);
        mad = cx__calib_q(dev, n, 0.5);
        free(dev);
    }
    double iqr = cx__calib_q(v, n, 0.75) - cx__calib_q(v, n, 0.25);
    double s = 1.4826 * mad;
    if (iqr / 1.349 > s) s = iqr / 1.349;
    double lo = *med - cx__calib_q(v, n, 0.001);
    double hi = cx__calib_q(v, n, 0.999) - *med;
    double reach = 1.25 * (lo > hi ? lo : hi) / k_cover;
    if (reach > s) s = reach;
    /* Measures that never varied get a floor at their resolution. */
    double floor = 1e-4 * (fabs(*med) > 1 ? fabs(*med) : 1);
    *sig = s > floor ? s : floor;
}

/* ---- thresholds -------------------------------------------------------- */

typedef struct cx__calib_fig {
    double art_q[6][2];     /* P0.1 / P99.9 of std, range, clip, hf, ... */
    double maha_q50, maha_q, maha_max;
    double llr_q50, llr_q, llr_max;
    size_t maha_n;
    double priv_q, priv_min, priv_med;
    size_t priv_n, priv_dups;
} cx__calib_fig_t;

static int cx__calib_artifacts(const cx_calib_t *c, cx_gate_limits_t *l,
                               cx__calib_fig_t *fig, cx_err_t *err) {
    static const char *const names[6] = {"std",     "range",   "clip",
                                         "hf",      "hf_ratio", "lap_var"};
    double lo[6], hi[6];
    for (int i = 0; i < 6; i++) {
        size_t n;
        double *v = cx__calib_measure(c, NULL,
                                      (size_t)cx_feat_measure_index(names[i]),
                                      &n);
        if (!v) return cx_err_set(err, CX_ENOMEM, 0, "calibration");
        lo[i] = cx__calib_q(v, n, 0.001);
        hi[i] = cx__calib_q(v, n, 0.999);
        fig->art_q[i][0] = lo[i];
        fig->art_q[i][1] = hi[i];
        free(v);
    }
    l->min_std = lo[0] / 4;
    l->min_range = lo[1] / 2;
    l->max_clip = 2 * hi[2] > 0.01 ? 2 * hi[2] : 0.01;
    l->max_hf = 2 * hi[3];
    l->min_hf_ratio = lo[4] / 2;
    l->max_hf_ratio = 2 * hi[4] < 1 ? 2 * hi[4] : 1;
    l->min_lap_var = lo[5] / 2;
    l->max_lap_var = 2 * hi[5] < 100 ? 2 * hi[5] : 100;
    size_t n;
    double *v = cx__calib_measure(c, NULL,
                                  (size_t)cx_feat_measure_index("repeat"), &n);
    if (!v) return cx_err_set(err, CX_ENOMEM, 0, "calibration");
    double r = cx__calib_q(v, n, 0.999);
    free(v);
    l->max_repeat = r + (1 - r) / 2;
    return 0;
}

static int cx__calib_envelopes(const cx_calib_t *c, cx_profile_t *p,
                               double kk, cx_err_t *err) {
    for (size_t k = 0; k < c->ncls; k++)
        for (size_t i = 0; i < CX_PROFILE_NSTRUCT; i++) {
            size_t n;
            double *v = cx__calib_measure(
                c, &c->cls[k], (size_t)cx_profile_struct_measure(i), &n);
            if (!v) return cx_err_set(err, CX_ENOMEM, 0, "calibration");
            cx__calib_robust(v, n, kk, &p->cls[k].med[i], &p->cls[k].sig[i]);
            free(v);
        }
    return 0;
}

/* Cross-validated Mahalanobis distances of every class, pooled. */
static int cx__calib_maha(cx_profile_t *p, const cx_calib_opts_t *o,
                          cx_gate_limits_t *l, cx__calib_fig_t *fig,
                          cx_err_t *err) {
    const int D = CX_FEAT_DIM;
    double *chol = malloc((size_t)D * D * sizeof *chol);
    double *all = malloc(p->nclasses * (CX__CV_EVAL + 1) * sizeof *all);
    double *llr = malloc(p->nclasses * (CX__CV_EVAL + 1) * sizeof *llr);
    size_t na = 0;
    int rc = -1;
    if (!chol || !all || !llr) {
        cx_err_set(err, CX_ENOMEM, 0, "calibration");
        goto done;
    }
    for (size_t k = 0; k < p->nclasses; k++) {
        const cx__pclass_t *c = &p->cls[k];
        size_t folds = c->nrows < o->folds ? c->nrows : o->folds;
        size_t per = CX__CV_EVAL / (folds ? folds : 1);
        for (size_t f = 0; f < folds; f++) {
            size_t s0 = c->row0 + f * c->nrows / folds;
            size_t s1 = c->row0 + (f + 1) * c->nrows / folds;
            double mean[CX_FEAT_DIM], z[CX_FEAT_DIM], d[CX_FEAT_DIM],
                tmp[CX_FEAT_DIM];
            /* One row per class: nothing to hold out, use it in-sample. */
            size_t h0 = folds > 1 ? s0 : 0, h1 = folds > 1 ? s1 : 0;
            if (cx__profile_maha_fit(p, c->row0, c->nrows, h0, h1, mean, chol,
                                     err) < 0)
                goto done;
            size_t take = s1 - s0 < per ? s1 - s0 : per;
            for (size_t t = 0; t < take; t++) {
                size_t r = s0 + t * (s1 - s0) / take;
                cx__profile_z(p, p->rows + r * CX_FEAT_DIM, z);
                for (int i = 0; i < D; i++) d[i] = z[i] - mean[i];
                int best;
                llr[na] = cx__profile_class_llr(p, k, z, mean, chol,
                                                cx__profile_logdet(chol),
                                                &best);
                all[na++] = cx_dist_chol_norm(chol, D, d, tmp);
            }
        }
    }
    qsort(all, na, sizeof *all, cx__calib_cmp);
    fig->maha_n = na;
    fig->maha_q50 = cx__calib_q(all, na, 0.5);
    fig->maha_q = cx__calib_q(all, na, o->maha_quantile);
    fig->maha_max = na ? all[na - 1] : 0;
    l->max_mahalanobis = o->maha_margin * fig->maha_q;
    qsort(llr, na, sizeof *llr, cx__calib_cmp);
    fig->llr_q50 = cx__calib_q(llr, na, 0.5);
    fig->llr_q = cx__calib_q(llr, na, o->maha_quantile);
    fig->llr_max = na ? llr[na - 1] : 0;
    /* One class: nothing to confuse it with (the ratio is -inf). */
    l->max_class_llr = p->nclasses < 2 ? 0
                       : (fig->llr_q > 0 ? fig->llr_q : 0) + o->llr_margin;
    rc = 0;
done:
    free(chol);
    free(all);
    free(llr);
    return rc;
}

/* Leave-one-out nearest-neighbour distances inside the training set. */
static int cx__calib_privacy(cx_profile_t *p, const cx_calib_opts_t *o,
                             cx_pool_t *pool, cx_gate_limits_t *l,
                             cx__calib_fig_t *fig, cx_err_t *err) {
    size_t m = p->nrows < o->privacy_queries ? p->nrows : o->privacy_queries;
    double *q = malloc((m ? m : 1) * CX_FEAT_PRIV_DIM * sizeof *q);
    int64_t *ex = malloc((m ? m : 1) * sizeof *ex);
    cx_knn_hit_t *h = malloc((m ? m : 1) * sizeof *h);
    double *d = malloc((m ? m : 1) * sizeof *d);
    int rc = -1;
    if (!q || !ex || !h || !d) {
        cx_err_set(err, CX_ENOMEM, 0, "calibration");
        goto done;
    }
    for (size_t i = 0; i < m; i++) {
        size_t r = (size_t)((double)i * (double)p->nrows / (double)m);
        for (int k = 0; k < CX_FEAT_PRIV_DIM; k++)
            q[i * CX_FEAT_PRIV_DIM + k] = p->rows[r * CX_FEAT_DIM + k];
        ex[i] = (int64_t)r;
    }
    if (cx_knn_search(p->knn, q, m, CX_FEAT_PRIV_DIM, ex, pool, h, err) < 0)
        goto done;
    size_t n = 0;
    fig->priv_dups = 0;
    for (size_t i = 0; i < m; i++) {
        if (h[i].index < 0) continue;
        if (h[i].dist == 0)
            fig->priv_dups++;
        else
            d[n++] = h[i].dist;
    }
    qsort(d, n, sizeof *d, cx__calib_cmp);
    fig->priv_n = n;
    fig->priv_q = cx__calib_q(d, n, o->privacy_quantile);
    fig->priv_min = n ? d[0] : 0;
    fig->priv_med = cx__calib_q(d, n, 0.5);
    l->min_privacy_distance = o->privacy_factor * fig->priv_q;
    rc = 0;
done:
    free(q);
    free(ex);
    free(h);
    free(d);
    return rc;
}

/* ---- assembling the profile -------------------------------------------- */

static cx_profile_t *cx__calib_profile(const cx_calib_t *c,
                                       const cx_calib_opts_t *o,
                                       const char *name, cx_err_t *err) {
    size_t total = 0;
    for (size_t k = 0; k < c->ncls; k++) {
        if (c->cls[k].nm == 0) {
            cx_err_set(err, CX_EINVAL, 0, "calibration: class %s has no "
                       "images", c->cls[k].name);
            return NULL;
        }
        total += c->cls[k].n;
    }
    if (c->ncls == 0 || total > 2147483647u) {
        cx_err_set(err, CX_EINVAL, 0, "calibration: %zu classes, %zu rows",
                   c->ncls, total);
        return NULL;
    }
    cx_profile_t *p = cx__profile_alloc(c->ncls);
    if (!p || !(p->rows = malloc(total * CX_FEAT_DIM * sizeof(float)))) {
        cx_profile_destroy(p);
        cx_err_set(err, CX_ENOMEM, 0, "calibration");
        return NULL;
    }
    snprintf(p->name, sizeof p->name, "%s", name);
    p->width = c->width;
    p->height = c->height;
    p->depth = c->depth;
    p->ridge = o->ridge;
    p->pr_k = o->pr_k;
    p->ref_per_class = o->ref_per_class;
    size_t r = 0;
    for (size_t k = 0; k < c->ncls; k++) {
        snprintf(p->cls[k].name, sizeof p->cls[k].name, "%s", c->cls[k].name);
        p->cls[k].row0 = r;
        p->cls[k].nrows = c->cls[k].n;
        memcpy(p->rows + r * CX_FEAT_DIM, c->cls[k].vec,
               c->cls[k].n * CX_FEAT_DIM * sizeof(float));
        r += c->cls[k].n;
    }
    p->nrows = total;
    for (int d = 0; d < CX_FEAT_DIM; d++) {
        double s = 0, s2 = 0;
        for (size_t i = 0; i < total; i++) s += p->rows[i * CX_FEAT_DIM + d];
        double m = s / (double)total;
        for (size_t i = 0; i < total; i++) {
            double t = p->rows[i * CX_FEAT_DIM + d] - m;
            s2 += t * t;
        }
        double sd = total > 1 ? sqrt(s2 / (double)(total - 1)) : 0;
        p->smean[d] = m;
        p->sstd[d] = sd > CX__STD_FLOOR ? sd : CX__STD_FLOOR;
    }
    return p;
}

/* ---- writing ----------------------------------------------------------- */

static int cx__calib_put(const char *dir, const char *file, const void *data,
                         size_t len, cx_err_t *err) {
    char tmp[4096], path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%ld", dir, file, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return cx_err_set(err, CX_EIO, 0, "%s: %s", tmp, strerror(errno));
    int ok = fwrite(data, 1, len, f) == len && fflush(f) == 0 &&
             fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        e = ok ? errno : e;
        unlink(tmp);
        return cx_err_set(err, CX_EIO, 0, "%s: %s", path, strerror(e));
    }
    return 0;
}

static cJSON *cx__calib_json(const cx_profile_t *p, const cx_calib_opts_t *o,
                             const char *feat, const char *sha,
                             const char *source, const cx__calib_fig_t *fig) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", CX_PROFILE_FORMAT);
    cJSON_AddNumberToObject(j, "version", CX_PROFILE_VERSION);
    cJSON_AddStringToObject(j, "name", p->name);
    cJSON_AddNumberToObject(j, "created_unix_ms", (double)cx_now_ms());
    cJSON_AddStringToObject(j, "source", source ? source : "");
    cJSON *img = cJSON_AddObjectToObject(j, "image");
    cJSON_AddNumberToObject(img, "width", p->width);
    cJSON_AddNumberToObject(img, "height", p->height);
    cJSON_AddNumberToObject(img, "bit_depth", p->depth);
    cJSON_AddNumberToObject(j, "feature_layout", CX_FEAT_LAYOUT);
    cJSON_AddNumberToObject(j, "feature_dim", CX_FEAT_DIM);
    cJSON_AddNumberToObject(j, "privacy_dim", CX_FEAT_PRIV_DIM);
    cJSON_AddNumberToObject(j, "fd_dim", CX_PROFILE_FD_DIM);
    cJSON *f = cJSON_AddObjectToObject(j, "features");
    cJSON_AddStringToObject(f, "file", feat);
    cJSON_AddNumberToObject(f, "rows", (double)p->nrows);
    cJSON_AddStringToObject(f, "sha256", sha);
    cJSON *st = cJSON_AddObjectToObject(j, "standardize");
    cJSON_AddItemToObject(st, "mean", cJSON_CreateDoubleArray(p->smean,
                                                              CX_FEAT_DIM));
    cJSON_AddItemToObject(st, "std", cJSON_CreateDoubleArray(p->sstd,
                                                             CX_FEAT_DIM));
    cJSON_AddNumberToObject(j, "mahalanobis_ridge", p->ridge);
    cJSON_AddNumberToObject(j, "pr_k", p->pr_k);
    cJSON_AddNumberToObject(j, "ref_per_class", (double)p->ref_per_class);
    cJSON *th = cJSON_AddObjectToObject(j, "thresholds");
    for (size_t i = 0; i < cx_gate_nlimits; i++)
        cJSON_AddNumberToObject(th, cx_gate_limit_defs[i].name,
                                cx_gate_limit_get(&p->limits, i));
    cJSON *cls = cJSON_AddArrayToObject(j, "classes");
    for (size_t k = 0; k < p->nclasses; k++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "name", p->cls[k].name);
        cJSON_AddNumberToObject(c, "rows", (double)p->cls[k].nrows);
        cJSON *env = cJSON_AddObjectToObject(c, "envelope");
        for (size_t i = 0; i < CX_PROFILE_NSTRUCT; i++) {
            cJSON *m = cJSON_AddObjectToObject(
                env, cx_feat_measures[cx_profile_struct_measure(i)].name);
            cJSON_AddNumberToObject(m, "median", p->cls[k].med[i]);
            cJSON_AddNumberToObject(m, "sigma", p->cls[k].sig[i]);
        }
        cJSON_AddItemToArray(cls, c);
    }
    /* What the defaults were derived from (informational). */
    cJSON *cal = cJSON_AddObjectToObject(j, "calibration");
    cJSON *pv = cJSON_AddObjectToObject(cal, "privacy");
    cJSON_AddNumberToObject(pv, "queries", (double)fig->priv_n);
    cJSON_AddNumberToObject(pv, "duplicates", (double)fig->priv_dups);
    cJSON_AddNumberToObject(pv, "quantile", o->privacy_quantile);
    cJSON_AddNumberToObject(pv, "nn_at_quantile", fig->priv_q);
    cJSON_AddNumberToObject(pv, "nn_min", fig->priv_min);
    cJSON_AddNumberToObject(pv, "nn_median", fig->priv_med);
    cJSON_AddNumberToObject(pv, "factor", o->privacy_factor);
    cJSON *mh = cJSON_AddObjectToObject(cal, "mahalanobis");
    cJSON_AddNumberToObject(mh, "folds", o->folds);
    cJSON_AddNumberToObject(mh, "held_out", (double)fig->maha_n);
    cJSON_AddNumberToObject(mh, "median", fig->maha_q50);
    cJSON_AddNumberToObject(mh, "quantile", o->maha_quantile);
    cJSON_AddNumberToObject(mh, "at_quantile", fig->maha_q);
    cJSON_AddNumberToObject(mh, "max", fig->maha_max);
    cJSON_AddNumberToObject(mh, "margin", o->maha_margin);
    cJSON *cl = cJSON_AddObjectToObject(cal, "class_llr");
    cJSON_AddNumberToObject(cl, "median", fig->llr_q50);
    cJSON_AddNumberToObject(cl, "at_quantile", fig->llr_q);
    cJSON_AddNumberToObject(cl, "max", fig->llr_max);
    cJSON_AddNumberToObject(cl, "margin_nats", o->llr_margin);
    static const char *const art[6] = {"std", "range", "clip", "hf",
                                       "hf_ratio", "lap_var"};
    cJSON *a = cJSON_AddObjectToObject(cal, "artifacts_p001_p999");
    for (int i = 0; i < 6; i++)
        cJSON_AddItemToObject(a, art[i],
                              cJSON_CreateDoubleArray(fig->art_q[i], 2));
    return j;
}

static void cx__calib_report(cx_buf_t *r, const cx_profile_t *p,
                             const cx_calib_opts_t *o,
                             const cx__calib_fig_t *fig) {
    if (!r) return;
    cx_buf_printf(r, "profile %s: %zu rows, %zu classes, %ux%u depth %d\n",
                  p->name, p->nrows, p->nclasses, p->width, p->height,
                  p->depth);
    for (size_t k = 0; k < p->nclasses; k++)
        cx_buf_printf(r, "  class %s: %zu rows\n", p->cls[k].name,
                      p->cls[k].nrows);
    cx_buf_printf(r, "  privacy: leave-one-out nn over %zu rows: min %.4g "
                  "p%.3g %.4g median %.4g, %zu exact duplicates\n",
                  fig->priv_n, fig->priv_min, 100 * o->privacy_quantile,
                  fig->priv_q,
                  fig->priv_med, fig->priv_dups);
    cx_buf_printf(r, "  mahalanobis (cross-validated, %zu held out): median "
                  "%.4g q %.4g max %.4g\n",
                  fig->maha_n, fig->maha_q50, fig->maha_q, fig->maha_max);
    cx_buf_printf(r, "  class llr (cross-validated): median %.4g q %.4g max "
                  "%.4g\n", fig->llr_q50, fig->llr_q, fig->llr_max);
    cx_buf_printf(r, "  thresholds:");
    for (size_t i = 0; i < cx_gate_nlimits; i++)
        cx_buf_printf(r, " %s=%.4g", cx_gate_limit_defs[i].name,
                      cx_gate_limit_get(&p->limits, i));
    cx_buf_printf(r, "\n");
}

int cx_calib_write(cx_calib_t *c, const cx_calib_opts_t *o, const char *dir,
                   const char *name, const char *source, cx_pool_t *pool,
                   cx_buf_t *report, cx_err_t *err) {
    cx__calib_fig_t fig;
    char feat[CX_NAME_MAX + 8], json[CX_NAME_MAX + 8], sha[65];
    uint8_t *bytes = NULL;
    char *text = NULL;
    cJSON *j = NULL;
    size_t len = 0;
    int rc = -1;

    memset(&fig, 0, sizeof fig);
    if (cx_name_check("profile name", name, err) < 0) return -1;
    if (strcmp(name, CX_PROFILE_BUILTIN) == 0 ||
        strlen(name) > CX_NAME_MAX - 5)
        return cx_err_set(err, CX_EINVAL, 0, "profile name '%s' is reserved "
                          "or too long", name);
    cx_profile_t *p = cx__calib_profile(c, o, name, err);
    if (!p) return -1;
    cx_gate_limits_t *l = &p->limits;
    l->structure_k = o->structure_k;
    l->privacy_budget = o->privacy_budget;
    l->privacy_min_samples = o->privacy_min_samples;
    l->max_frechet = 0;
    if (cx__calib_artifacts(c, l, &fig, err) < 0 ||
        cx__calib_envelopes(c, p, o->structure_k, err) < 0 || cx__profile_build(p, err) < 0 ||
        cx__calib_maha(p, o, l, &fig, err) < 0 ||
        cx__calib_privacy(p, o, pool, l, &fig, err) < 0)
        goto done;
    if (cx_gate_limits_check(l, err) < 0) {
        cx_err_wrap(err, "calibrated thresholds");
        goto done;
    }
    snprintf(feat, sizeof feat, "%s.feat", name);
    snprintf(json, sizeof json, "%s.json", name);
    if (!(bytes = cx__profile_feat_bytes(p, &len, err))) goto done;
    cx_sha256_hex(bytes, len, sha);
    j = cx__calib_json(p, o, feat, sha, source, &fig);
    if (!j || !(text = cJSON_Print(j))) {
        cx_err_set(err, CX_ENOMEM, 0, "profile JSON");
        goto done;
    }
    /* Features first: the JSON, which names their checksum, is the commit
     * point. */
    if (cx__calib_put(dir, feat, bytes, len, err) < 0 ||
        cx__calib_put(dir, json, text, strlen(text), err) < 0)
        goto done;
    cx__calib_report(report, p, o, &fig);
    rc = 0;
done:
    free(text);
    cJSON_Delete(j);
    free(bytes);
    cx_profile_destroy(p);
    return rc;
}
