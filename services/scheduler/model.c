/* Throughput model: priors, robust online estimates, borrowing. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "strmap.h"

/* A robust running estimate of ln(x). */
typedef struct est {
    double mean, var;
    uint64_t n;
} est_t;

typedef struct cell {
    est_t e;
    double prior; /* 0: none set for this cell */
} cell_t;

typedef struct utype {
    char key[CX_TPUT_NAME_MAX + 32];
    int ckpt;
    uint32_t width, height, steps;
    cell_t cells[CX_TPUT_MAX_GPU];
} utype_t;

typedef struct ckpt {
    char name[CX_TPUT_NAME_MAX];
    double load_prior; /* 0: default */
    uint64_t mem;
    est_t load;
} ckpt_t;

struct cx_tput {
    cx_tput_conf_t conf;
    cx_smap_t *gmap, *kmap, *umap;
    char gnames[CX_TPUT_MAX_GPU][CX_TPUT_NAME_MAX];
    double gprior[CX_TPUT_MAX_GPU]; /* 0: none */
    size_t ng, nk, nu, capk, capu;
    ckpt_t *ckpts;
    utype_t *utypes;
};

void cx_tput_conf_default(cx_tput_conf_t *c) {
    memset(c, 0, sizeof *c);
    c->alpha_min = 0.05;
    c->clip = 3.0;
    c->init_sd = 0.15;
    c->min_sd = 0.03;
    c->default_sps = 1.0;
    c->default_load_s = 30.0;
    c->ref_width = c->ref_height = 512;
    c->ref_steps = 50;
}

cx_tput_t *cx_tput_new(const cx_tput_conf_t *conf) {
    cx_tput_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    if (conf) m->conf = *conf;
    else cx_tput_conf_default(&m->conf);
    m->gmap = cx_smap_new();
    m->kmap = cx_smap_new();
    m->umap = cx_smap_new();
    if (!m->gmap || !m->kmap || !m->umap) {
        cx_tput_destroy(m);
        return NULL;
    }
    return m;
}

void cx_tput_destroy(cx_tput_t *m) {
    if (!m) return;
    cx_smap_destroy(m->gmap);
    cx_smap_destroy(m->kmap);
    cx_smap_destroy(m->umap);
    free(m->ckpts);
    free(m->utypes);
    free(m);
}

const cx_tput_conf_t *cx_tput_conf(const cx_tput_t *m) { return &m->conf; }

/* Grows *arr (of elem-sized items, *cap of them) to hold n + 1. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * elem);
    if (!p) return -1;
    memset((char *)p + *cap * elem, 0, (nc - *cap) * elem);
    *arr = p;
    *cap = nc;
    return 0;
}

int cx_tput_gtype(cx_tput_t *m, const char *name) {
    int g = cx_smap_get(m->gmap, name);
    if (g >= 0) return g;
    if (m->ng >= CX_TPUT_MAX_GPU || strlen(name) >= CX_TPUT_NAME_MAX)
        return -1;
    g = (int)m->ng;
    if (cx_smap_put(m->gmap, name, g) < 0) return -1;
    snprintf(m->gnames[g], sizeof m->gnames[g], "%s", name);
    m->ng++;
    return g;
}

int cx_tput_ckpt(cx_tput_t *m, const char *name) {
    int k = cx_smap_get(m->kmap, name);
    if (k >= 0) return k;
    if (strlen(name) >= CX_TPUT_NAME_MAX ||
        grow((void **)&m->ckpts, &m->capk, m->nk, sizeof *m->ckpts) < 0)
        return -1;
    k = (int)m->nk;
    if (cx_smap_put(m->kmap, name, k) < 0) return -1;
    snprintf(m->ckpts[k].name, sizeof m->ckpts[k].name, "%s", name);
    m->nk++;
    return k;
}

void cx_tput_key_format(char *buf, size_t size, const char *ckpt,
                        uint32_t width, uint32_t height, uint32_t steps) {
    snprintf(buf, size, "%s|%ux%u|%u", ckpt, width, height, steps);
}

int cx_tput_key_parse(const char *key, char *ckpt, size_t ckpt_size,
                      uint32_t *width, uint32_t *height, uint32_t *steps) {
    const char *bar = strchr(key, '|');
    if (!bar || (size_t)(bar - key) >= ckpt_size || bar == key) return -1;
    unsigned w, h, s;
    char tail;
    if (sscanf(bar + 1, "%ux%u|%u%c", &w, &h, &s, &tail) != 3) return -1;
    memcpy(ckpt, key, (size_t)(bar - key));
    ckpt[bar - key] = '\0';
    *width = w;
    *height = h;
    *steps = s;
    return 0;
}

int cx_tput_utype(cx_tput_t *m, const char *ckpt, uint32_t width,
                  uint32_t height, uint32_t steps) {
    char key[CX_TPUT_NAME_MAX + 32];
    if (strlen(ckpt) >= CX_TPUT_NAME_MAX) return -1;
    cx_tput_key_format(key, sizeof key, ckpt, width, height, steps);
    int ut = cx_smap_get(m->umap, key);
    if (ut >= 0) return ut;
    int k = cx_tput_ckpt(m, ckpt);
    if (k < 0 ||
        grow((void **)&m->utypes, &m->capu, m->nu, sizeof *m->utypes) < 0)
        return -1;
    ut = (int)m->nu;
    if (cx_smap_put(m->umap, key, ut) < 0) return -1;
    utype_t *u = &m->utypes[ut];
    memset(u, 0, sizeof *u);
    snprintf(u->key, sizeof u->key, "%s", key);
    u->ckpt = k;
    u->width = width;
    u->height = height;
    u->steps = steps;
    m->nu++;
    return ut;
}

size_t cx_tput_ngtypes(const cx_tput_t *m) { return m->ng; }
size_t cx_tput_nutypes(const cx_tput_t *m) { return m->nu; }
size_t cx_tput_nckpts(const cx_tput_t *m) { return m->nk; }

const char *cx_tput_gtype_name(const cx_tput_t *m, int g) {
    return g >= 0 && (size_t)g < m->ng ? m->gnames[g] : "?";
}

const char *cx_tput_ckpt_name(const cx_tput_t *m, int k) {
    return k >= 0 && (size_t)k < m->nk ? m->ckpts[k].name : "?";
}

int cx_tput_utype_ckpt(const cx_tput_t *m, int ut) {
    return ut >= 0 && (size_t)ut < m->nu ? m->utypes[ut].ckpt : -1;
}

const char *cx_tput_utype_key(const cx_tput_t *m, int ut) {
    return ut >= 0 && (size_t)ut < m->nu ? m->utypes[ut].key : "?";
}

void cx_tput_prior_gpu(cx_tput_t *m, int g, double sps) {
    if (g >= 0 && (size_t)g < m->ng && sps > 0) m->gprior[g] = sps;
}

void cx_tput_prior_cell(cx_tput_t *m, int ut, int g, double sps) {
    if (ut >= 0 && (size_t)ut < m->nu && g >= 0 && (size_t)g < m->ng &&
        sps > 0)
        m->utypes[ut].cells[g].prior = sps;
}

void cx_tput_set_ckpt(cx_tput_t *m, int k, double load_s, uint64_t mem) {
    if (k < 0 || (size_t)k >= m->nk) return;
    if (load_s > 0) m->ckpts[k].load_prior = load_s;
    if (mem) m->ckpts[k].mem = mem;
}

/* The robust update: clipped residual, weight max(1/n, alpha_min). */
static void est_add(const cx_tput_conf_t *c, est_t *e, double x) {
    if (e->n == 0) {
        e->mean = x;
        e->var = c->init_sd * c->init_sd;
        e->n = 1;
        return;
    }
    double sd = sqrt(e->var);
    if (sd < c->min_sd) sd = c->min_sd;
    double r = x - e->mean, lim = c->clip * sd;
    if (r > lim) r = lim;
    if (r < -lim) r = -lim;
    e->n++;
    double a = 1.0 / (double)e->n;
    if (a < c->alpha_min) a = c->alpha_min;
    e->mean += a * r;
    e->var = (1 - a) * (e->var + a * r * r);
}

double cx_tput_load_s(const cx_tput_t *m, int k) {
    if (k < 0 || (size_t)k >= m->nk) return m->conf.default_load_s;
    const ckpt_t *c = &m->ckpts[k];
    if (c->load.n) return exp(c->load.mean);
    return c->load_prior > 0 ? c->load_prior : m->conf.default_load_s;
}

uint64_t cx_tput_mem(const cx_tput_t *m, int k) {
    return k >= 0 && (size_t)k < m->nk ? m->ckpts[k].mem : 0;
}

void cx_tput_observe(cx_tput_t *m, int ut, int g, uint32_t samples,
                     double seconds) {
    if (ut < 0 || (size_t)ut >= m->nu || g < 0 || (size_t)g >= m->ng ||
        samples == 0 || !(seconds > 0))
        return;
    est_add(&m->conf, &m->utypes[ut].cells[g].e, log(seconds / samples));
}

void cx_tput_observe_load(cx_tput_t *m, int k, double seconds) {
    if (k < 0 || (size_t)k >= m->nk || !(seconds > 0)) return;
    est_add(&m->conf, &m->ckpts[k].load, log(seconds));
}

/* The configured prior of (ut, g): the cell's, else the GPU's (or the
 * default) scaled by steps x pixels relative to the reference unit type. */
static double prior(const cx_tput_t *m, int ut, int g) {
    const utype_t *u = &m->utypes[ut];
    if (u->cells[g].prior > 0) return u->cells[g].prior;
    double base = m->gprior[g] > 0 ? m->gprior[g] : m->conf.default_sps;
    double ref = (double)m->conf.ref_width * m->conf.ref_height *
                 (m->conf.ref_steps ? m->conf.ref_steps : 1);
    double mine = (double)(u->width ? u->width : m->conf.ref_width) *
                  (u->height ? u->height : m->conf.ref_height) *
                  (u->steps ? u->steps : m->conf.ref_steps);
    return ref > 0 ? base * mine / ref : base;
}

/* The measured cell most like (ut, g): same unit type on the GPU type with
 * the most observations, else the same GPU type on any unit type. */
static int borrow(const cx_tput_t *m, int ut, int g, int *but, int *bg) {
    uint64_t best = 0;
    for (size_t h = 0; h < m->ng; h++) {
        uint64_t n = m->utypes[ut].cells[h].e.n;
        if (n > best) {
            best = n;
            *but = ut;
            *bg = (int)h;
        }
    }
    if (best) return 1;
    for (size_t v = 0; v < m->nu; v++) {
        uint64_t n = m->utypes[v].cells[g].e.n;
        if (n > best) {
            best = n;
            *but = (int)v;
            *bg = g;
        }
    }
    return best > 0;
}

double cx_tput_sps(const cx_tput_t *m, int ut, int g) {
    if (ut < 0 || (size_t)ut >= m->nu || g < 0 || (size_t)g >= m->ng)
        return m->conf.default_sps;
    const est_t *e = &m->utypes[ut].cells[g].e;
    if (e->n) return exp(e->mean);
    int but, bg;
    if (borrow(m, ut, g, &but, &bg))
        return exp(m->utypes[but].cells[bg].e.mean) * prior(m, ut, g) /
               prior(m, but, bg);
    return prior(m, ut, g);
}

double cx_tput_rel_se(const cx_tput_t *m, int ut, int g) {
    if (ut < 0 || (size_t)ut >= m->nu || g < 0 || (size_t)g >= m->ng)
        return 0.5;
    const est_t *e = &m->utypes[ut].cells[g].e;
    if (!e->n) {
        int but, bg;
        /* Borrowed: the measured cell's error plus the prior ratio's. */
        return borrow(m, ut, g, &but, &bg) ? 0.25 : 0.5;
    }
    /* An EWMA averages about 2/alpha - 1 observations at most. */
    double neff = 2.0 / m->conf.alpha_min - 1;
    if ((double)e->n < neff) neff = (double)e->n;
    return sqrt(e->var / neff);
}

size_t cx_tput_cells(const cx_tput_t *m, cx_tput_cell_t *out, size_t max) {
    size_t n = 0;
    for (size_t u = 0; u < m->nu; u++)
        for (size_t g = 0; g < m->ng; g++) {
            const est_t *e = &m->utypes[u].cells[g].e;
            if (!e->n) continue;
            if (n < max)
                out[n] = (cx_tput_cell_t){(int)u, (int)g, e->mean, e->var,
                                          e->n};
            n++;
        }
    return n;
}

void cx_tput_restore(cx_tput_t *m, int ut, int g, double mean_log,
                     double var_log, uint64_t n) {
    if (ut < 0 || (size_t)ut >= m->nu || g < 0 || (size_t)g >= m->ng ||
        !n || !isfinite(mean_log) || !(var_log >= 0))
        return;
    est_t *e = &m->utypes[ut].cells[g].e;
    e->mean = mean_log;
    e->var = var_log;
    e->n = n;
}

/* ---- JSON configuration ---- */

static int num(const cJSON *o, const char *path, double *out, cx_err_t *err) {
    if (!cJSON_IsNumber(o))
        return cx_err_set(err, CX_EINVAL, 0, "%s: must be a number", path);
    if (!(o->valuedouble >= 0))
        return cx_err_set(err, CX_EINVAL, 0, "%s: must not be negative",
                          path);
    *out = o->valuedouble;
    return 0;
}

static int only_keys(const cJSON *o, const char *path, const char *const *k,
                     cx_err_t *err) {
    if (!cJSON_IsObject(o))
        return cx_err_set(err, CX_EINVAL, 0, "%s: must be an object", path);
    for (const cJSON *c = o->child; c; c = c->next) {
        int ok = 0;
        for (size_t i = 0; k[i]; i++) ok |= strcmp(c->string, k[i]) == 0;
        if (!ok)
            return cx_err_set(err, CX_EINVAL, 0, "%s.%s: unknown key", path,
                              c->string);
    }
    return 0;
}

static int ref_dim(const cJSON *o, const char *name, uint32_t *dst,
                   cx_err_t *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);
    char path[48];
    double v = 0;
    if (!x) return 0;
    snprintf(path, sizeof path, "reference.%s", name);
    if (num(x, path, &v, err) < 0) return -1;
    if (v < 1 || v > 1e6)
        return cx_err_set(err, CX_EINVAL, 0, "%s: out of range", path);
    *dst = (uint32_t)v;
    return 0;
}

static int conf_reference(cx_tput_t *m, const cJSON *o, cx_err_t *err) {
    static const char *const keys[] = {"width", "height", "steps", NULL};
    if (only_keys(o, "reference", keys, err) < 0 ||
        ref_dim(o, "width", &m->conf.ref_width, err) < 0 ||
        ref_dim(o, "height", &m->conf.ref_height, err) < 0 ||
        ref_dim(o, "steps", &m->conf.ref_steps, err) < 0)
        return -1;
    return 0;
}

static int conf_gpus(cx_tput_t *m, const cJSON *o, cx_err_t *err) {
    static const char *const keys[] = {"sec_per_sample", NULL};
    char path[CX_TPUT_NAME_MAX + 32];
    if (!cJSON_IsObject(o))
        return cx_err_set(err, CX_EINVAL, 0, "gpu_types: must be an object");
    for (const cJSON *c = o->child; c; c = c->next) {
        double v = 0;
        snprintf(path, sizeof path, "gpu_types.%s", c->string);
        if (only_keys(c, path, keys, err) < 0) return -1;
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(c, "sec_per_sample");
        if (!s) continue;
        snprintf(path, sizeof path, "gpu_types.%s.sec_per_sample", c->string);
        if (num(s, path, &v, err) < 0) return -1;
        int g = cx_tput_gtype(m, c->string);
        if (g < 0)
            return cx_err_set(err, CX_EINVAL, 0, "gpu_types.%s: too many",
                              c->string);
        cx_tput_prior_gpu(m, g, v);
    }
    return 0;
}

static int conf_cells(cx_tput_t *m, const cJSON *o, cx_err_t *err) {
    static const char *const keys[] = {"checkpoint", "width", "height",
                                       "steps", "gpu_type",
                                       "sec_per_sample", NULL};
    static const char *const nums[] = {"width", "height", "steps",
                                       "sec_per_sample"};
    char path[64];
    if (!cJSON_IsArray(o))
        return cx_err_set(err, CX_EINVAL, 0, "cells: must be a list");
    int i = 0;
    for (const cJSON *c = o->child; c; c = c->next, i++) {
        double v[4] = {0};
        snprintf(path, sizeof path, "cells[%d]", i);
        if (only_keys(c, path, keys, err) < 0) return -1;
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(c, "checkpoint"),
                    *g = cJSON_GetObjectItemCaseSensitive(c, "gpu_type");
        if (!cJSON_IsString(k) || !cJSON_IsString(g))
            return cx_err_set(err, CX_EINVAL, 0,
                              "%s: needs checkpoint and gpu_type strings",
                              path);
        for (int j = 0; j < 4; j++) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(c, nums[j]);
            char p2[96];
            snprintf(p2, sizeof p2, "%s.%s", path, nums[j]);
            if (!x)
                return cx_err_set(err, CX_EINVAL, 0, "%s: missing", p2);
            if (num(x, p2, &v[j], err) < 0) return -1;
        }
        int ut = cx_tput_utype(m, k->valuestring, (uint32_t)v[0],
                               (uint32_t)v[1], (uint32_t)v[2]);
        int gt = cx_tput_gtype(m, g->valuestring);
        if (ut < 0 || gt < 0)
            return cx_err_set(err, CX_EINVAL, 0, "%s: name too long or too "
                              "many GPU types", path);
        cx_tput_prior_cell(m, ut, gt, v[3]);
    }
    return 0;
}

static int conf_ckpts(cx_tput_t *m, const cJSON *o, cx_err_t *err) {
    static const char *const keys[] = {"load_s", "mem_bytes", NULL};
    char path[CX_TPUT_NAME_MAX + 32];
    if (!cJSON_IsObject(o))
        return cx_err_set(err, CX_EINVAL, 0, "checkpoints: must be an object");
    for (const cJSON *c = o->child; c; c = c->next) {
        double load = 0, mem = 0;
        snprintf(path, sizeof path, "checkpoints.%s", c->string);
        if (only_keys(c, path, keys, err) < 0) return -1;
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(c, "load_s"),
                    *b = cJSON_GetObjectItemCaseSensitive(c, "mem_bytes");
        if (l && num(l, path, &load, err) < 0) return -1;
        if (b && num(b, path, &mem, err) < 0) return -1;
        int k = cx_tput_ckpt(m, c->string);
        if (k < 0)
            return cx_err_set(err, CX_EINVAL, 0, "%s: name too long", path);
        cx_tput_set_ckpt(m, k, load, (uint64_t)mem);
    }
    return 0;
}

static int conf_learn(cx_tput_t *m, const cJSON *o, cx_err_t *err) {
    static const char *const keys[] = {"alpha_min", "clip", NULL};
    if (only_keys(o, "learn", keys, err) < 0) return -1;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "alpha_min"),
                *c = cJSON_GetObjectItemCaseSensitive(o, "clip");
    double v = 0;
    if (a) {
        if (num(a, "learn.alpha_min", &v, err) < 0) return -1;
        if (v <= 0 || v > 1)
            return cx_err_set(err, CX_EINVAL, 0,
                              "learn.alpha_min: must be in (0, 1]");
        m->conf.alpha_min = v;
    }
    if (c) {
        if (num(c, "learn.clip", &v, err) < 0) return -1;
        if (v <= 0)
            return cx_err_set(err, CX_EINVAL, 0, "learn.clip: must be > 0");
        m->conf.clip = v;
    }
    return 0;
}

int cx_tput_configure_obj(cx_tput_t *m, const void *json, cx_err_t *err) {
    static const char *const keys[] = {
        "reference", "default_sec_per_sample", "default_load_s", "gpu_types",
        "cells", "checkpoints", "learn", NULL};
    const cJSON *o = json, *x;
    double v = 0;
    if (only_keys(o, "model", keys, err) < 0) return -1;
    if ((x = cJSON_GetObjectItemCaseSensitive(o, "reference")) &&
        conf_reference(m, x, err) < 0)
        return -1;
    if ((x = cJSON_GetObjectItemCaseSensitive(o, "default_sec_per_sample"))) {
        if (num(x, "default_sec_per_sample", &v, err) < 0) return -1;
        if (v > 0) m->conf.default_sps = v;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(o, "default_load_s"))) {
        if (num(x, "default_load_s", &v, err) < 0) return -1;
        m->conf.default_load_s = v;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(o, "learn")) &&
        conf_learn(m, x, err) < 0)
        return -1;
    if ((x = cJSON_GetObjectItemCaseSensitive(o, "gpu_types")) &&
        conf_gpus(m, x, err) < 0)
        return -1;
    if ((x = cJSON_GetObjectItemCaseSensitive(o, "cells")) &&
        conf_cells(m, x, err) < 0)
        return -1;
    if ((x = cJSON_GetObjectItemCaseSensitive(o, "checkpoints")) &&
        conf_ckpts(m, x, err) < 0)
        return -1;
    return 0;
}

int cx_tput_configure_json(cx_tput_t *m, const char *text, size_t len,
                           cx_err_t *err) {
    cJSON *o = cJSON_ParseWithLength(text, len);
    if (!o) return cx_err_set(err, CX_EINVAL, 0, "model: not valid JSON");
    int rc = cx_tput_configure_obj(m, o, err);
    cJSON_Delete(o);
    return rc;
}
