/* Group validation of staged batches (validate.h). */
#include "validate.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/names.h"
#include "cascade/png16.h"
#include "cascade/pool.h"
#include "cascade/sha256.h"

typedef struct cx__pcache {
    char name[CX_NAME_MAX + 1];
    cx_profile_t *p;     /* NULL: failed */
    cx_err_t err;
    double failed_at;
} cx__pcache_t;

struct cx_validator {
    cx_pool_t *pool;
    cx_gate_thresholds_t defaults;
    char *profile_dir;
    int retry_ms;
    cx__pcache_t *cache;
    size_t ncache, capcache;
    /* feature workspaces, one per concurrent task */
    pthread_mutex_t wslock;
    cx_feat_ws_t **free_ws, **all_ws;
    size_t nfree, nall, capws;
};

cx_validator_t *cx_validator_new(const cx_gate_thresholds_t *defaults,
                                 unsigned threads, cx_err_t *err) {
    cx_validator_t *v = calloc(1, sizeof *v);
    if (!v) {
        cx_err_set(err, CX_ENOMEM, 0, "validator");
        return NULL;
    }
    v->defaults = *defaults;
    v->retry_ms = 30000;
    pthread_mutex_init(&v->wslock, NULL);
    v->pool = cx_pool_new(threads, err);
    if (!v->pool) goto fail_pool;
    v->capws = cx_pool_size(v->pool) + 1;
    v->free_ws = calloc(v->capws, sizeof *v->free_ws);
    v->all_ws = calloc(v->capws, sizeof *v->all_ws);
    if (!v->free_ws || !v->all_ws) {
        cx_err_set(err, CX_ENOMEM, 0, "validator");
        goto fail_ws;
    }
    return v;

fail_ws:
    cx_pool_destroy(v->pool);
fail_pool:
    free(v->free_ws);
    free(v->all_ws);
    pthread_mutex_destroy(&v->wslock);
    free(v);
    return NULL;
}

unsigned cx_validator_threads(const cx_validator_t *v) {
    return cx_pool_size(v->pool) + 1;
}

void cx_validator_destroy(cx_validator_t *v) {
    if (!v) return;
    cx_pool_destroy(v->pool);
    for (size_t i = 0; i < v->nall; i++) cx_feat_ws_destroy(v->all_ws[i]);
    for (size_t i = 0; i < v->ncache; i++) cx_profile_destroy(v->cache[i].p);
    free(v->cache);
    free(v->free_ws);
    free(v->all_ws);
    free(v->profile_dir);
    pthread_mutex_destroy(&v->wslock);
    free(v);
}

int cx_validator_set_profile_dir(cx_validator_t *v, const char *dir,
                                 int retry_ms, cx_err_t *err) {
    char *d = NULL;
    if (dir && dir[0] && !(d = strdup(dir)))
        return cx_err_set(err, CX_ENOMEM, 0, "validator");
    free(v->profile_dir);
    v->profile_dir = d;
    v->retry_ms = retry_ms;
    return 0;
}

int cx_validator_profile(cx_validator_t *v, const char *name,
                         const cx_profile_t **out, cx_err_t *err) {
    *out = NULL;
    if (!name || !name[0] || strcmp(name, CX_PROFILE_BUILTIN) == 0) return 0;
    cx__pcache_t *c = NULL;
    for (size_t i = 0; i < v->ncache; i++)
        if (strcmp(v->cache[i].name, name) == 0) c = &v->cache[i];
    if (c && c->p) {
        *out = c->p;
        return 0;
    }
    if (c && cx_mono_ms() - c->failed_at < v->retry_ms) {
        if (err) *err = c->err;
        return -1;
    }
    if (!c) {
        if (v->ncache == v->capcache) {
            size_t cap = v->capcache ? 2 * v->capcache : 4;
            cx__pcache_t *n = realloc(v->cache, cap * sizeof *n);
            if (!n) return cx_err_set(err, CX_ENOMEM, 0, "profile cache");
            v->cache = n;
            v->capcache = cap;
        }
        c = &v->cache[v->ncache++];
        memset(c, 0, sizeof *c);
        snprintf(c->name, sizeof c->name, "%.*s", CX_NAME_MAX, name);
    }
    c->p = cx_profile_load(v->profile_dir, name, &c->err);
    if (!c->p) {
        c->failed_at = cx_mono_ms();
        if (err) *err = c->err;
        return -1;
    }
    *out = c->p;
    return 0;
}

static cx_feat_ws_t *cx__ws_get(cx_validator_t *v) {
    cx_feat_ws_t *ws = NULL;
    pthread_mutex_lock(&v->wslock);
    if (v->nfree) {
        ws = v->free_ws[--v->nfree];
    } else if (v->nall < v->capws && (ws = cx_feat_ws_new(NULL))) {
        v->all_ws[v->nall++] = ws;
    }
    pthread_mutex_unlock(&v->wslock);
    return ws;
}

static void cx__ws_put(cx_validator_t *v, cx_feat_ws_t *ws) {
    pthread_mutex_lock(&v->wslock);
    v->free_ws[v->nfree++] = ws;
    pthread_mutex_unlock(&v->wslock);
}

int cx_validate_manifest_key(const char *job_id, const char *unit_id,
                             char *out, size_t cap) {
    int n = snprintf(out, cap, "%s/manifests/%s.json", job_id, unit_id);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ---- one sample -------------------------------------------------------- */

/* Hash, decode and geometry; returns the pixels or NULL with r->reason. */
static uint16_t *cx__validate_decode(const void *png, size_t len,
                                     uint32_t width, uint32_t height,
                                     int bit_depth, cx_sample_result_t *r,
                                     cx_sample_timing_t *t) {
    uint16_t *px = NULL;
    uint32_t w = 0, h = 0;
    int depth = 0;
    cx_err_t e;
    double t0 = cx_mono_ms(), t1;

    r->pass = 0;
    r->scored = 0;
    r->reason[0] = '\0';
    /* The hash names the committed file: take it before anything can fail. */
    cx_sha256_hex(png, len, r->sha256);
    t1 = cx_mono_ms();
    if (t) t->sha_ms = t1 - t0;
    /* The expected size bounds the decoder's allocation; some slack so a
     * wrong-sized image is reported as such rather than as undecodable. */
    size_t max_px = 4 * (size_t)width * height;
    if (cx_png_decode(png, len, max_px ? max_px : 1, &px, &w, &h, &depth,
                      &e) < 0) {
        snprintf(r->reason, sizeof r->reason, "decode: %.170s", e.msg);
        return NULL;
    }
    if (t) t->decode_ms = cx_mono_ms() - t1;
    if (w != width || h != height) {
        snprintf(r->reason, sizeof r->reason,
                 "size %ux%u, expected %ux%u", w, h, width, height);
    } else if (depth != bit_depth) {
        snprintf(r->reason, sizeof r->reason,
                 "bit depth %d, expected %d", depth, bit_depth);
    } else {
        return px;
    }
    free(px);
    return NULL;
}

void cx_validate_png(const void *png, size_t len, uint32_t width,
                     uint32_t height, int bit_depth,
                     const cx_gate_thresholds_t *th, cx_sample_result_t *r,
                     cx_sample_timing_t *t) {
    cx_err_t e;
    uint16_t *px = cx__validate_decode(png, len, width, height, bit_depth, r,
                                       t);
    if (!px) return;
    double t2 = cx_mono_ms();
    if (cx_gates_score(px, width, height, bit_depth, &r->scores, &e) < 0) {
        snprintf(r->reason, sizeof r->reason, "gates: %.170s", e.msg);
    } else {
        r->scored = 1;
        r->pass = cx_gates_judge(&r->scores, th, r->reason, sizeof r->reason);
    }
    if (t) t->gates_ms = cx_mono_ms() - t2;
    free(px);
}

/* ---- a group ------------------------------------------------------------ */

/* How one item of a group is judged. */
typedef struct cx__vctx {
    const cx_profile_t *prof; /* NULL: legacy gates */
    size_t cls;
    cx_gate_limits_t limits;
    cx_gate_thresholds_t legacy;
    uint32_t width, height;
    int depth;
    cx_sample_result_t *res;
    int active;               /* samples to validate */
} cx__vctx_t;

typedef struct cx__vgroup {
    cx_validator_t *v;
    cx_vitem_t *items;
    cx__vctx_t *ctx;
    size_t *task_item, *task_sample;
} cx__vgroup_t;

static void cx__validate_profiled(cx_validator_t *v, const cx__vctx_t *c,
                                  const uint16_t *px, cx_sample_result_t *r) {
    cx_err_t e;
    cx_feat_ws_t *ws = cx__ws_get(v);
    if (!ws) {
        cx_err_set(&r->err, CX_ENOMEM, 1, "feature workspace");
        return;
    }
    int rc = cx_feat_compute(ws, px, c->width, c->height, c->depth, &r->feat,
                             &e);
    cx__ws_put(v, ws);
    if (rc < 0) {
        snprintf(r->reason, sizeof r->reason, "gates: %.170s", e.msg);
        return;
    }
    size_t nref = cx_profile_nref(c->prof, c->cls);
    r->covered = calloc((nref + 7) / 8 + 1, 1);
    if (!r->covered) {
        cx_err_set(&r->err, CX_ENOMEM, 1, "coverage bitmap");
        return;
    }
    cx_gate_judge(c->prof, c->cls, &c->limits, &r->feat, r->covered, &r->gv);
    r->scores.range = r->feat.range;
    r->scores.clip = r->feat.clip;
    r->scores.hf = r->feat.hf;
    r->scored = 1;
    r->profiled = 1;
}

static void cx__validate_task(void *ctx, size_t t) {
    cx__vgroup_t *g = ctx;
    cx_vitem_t *it = &g->items[g->task_item[t]];
    cx__vctx_t *c = &g->ctx[g->task_item[t]];
    const Cascade__V1__StagedSample *s = it->b->samples[g->task_sample[t]];
    cx_sample_result_t *r = &c->res[g->task_sample[t]];
    void *data = NULL;
    size_t len = 0;

    r->index = s->index;
    r->key = s->key;
    cx_err_clear(&r->err);
    if (cx_store_get(it->store, s->key, &data, &len, &r->err) < 0) {
        if (r->err.code == CX_ENOENT) {
            r->missing = 1;
            cx_err_clear(&r->err);
            snprintf(r->reason, sizeof r->reason, "staged sample missing");
        } else if (!r->err.retriable) {
            /* A key the store refuses cannot get better: fail the sample. */
            snprintf(r->reason, sizeof r->reason,
                     "staged sample unreadable: %.150s", r->err.msg);
            cx_err_clear(&r->err);
        }
        return;
    }
    if (!c->prof) {
        cx_validate_png(data, len, c->width, c->height, c->depth, &c->legacy,
                        r, NULL);
    } else {
        uint16_t *px = cx__validate_decode(data, len, c->width, c->height,
                                           c->depth, r, NULL);
        if (px) cx__validate_profiled(g->v, c, px, r);
        free(px);
    }
    free(data);
}

/* Resolves how item it is judged; 0, or -1 with it->rc/err/outcome set. */
static int cx__validate_setup(cx_validator_t *v, cx_vitem_t *it,
                              cx__vctx_t *c) {
    const cx_unit_t *u = it->b->unit;
    cx_err_t e;
    if (it->b->failure && it->b->failure[0]) {
        it->outcome = CX_VALIDATE_SKIP_FAILED;
        return -1;
    }
    if (!u || !u->params) {
        it->rc = cx_err_set(&it->err, CX_EDECODE, 0,
                            "staged batch without unit");
        return -1;
    }
    c->width = u->params->width;
    c->height = u->params->height;
    c->depth = (int)u->params->bit_depth;
    const char *pname = u->validation ? u->validation->gate_profile : NULL;
    if (cx_validator_profile(v, pname, &c->prof, &e) < 0) {
        if (e.code == CX_ENOENT || e.code == CX_EINVAL) goto halt;
        it->rc = -1;
        it->err = e;
        return -1;
    }
    if (!c->prof) {
        cx_gates_thresholds_for(&v->defaults, u->validation, &c->legacy);
    } else {
        uint32_t pw, ph;
        int pd;
        cx_profile_geometry(c->prof, &pw, &ph, &pd);
        int k = cx_profile_class(c->prof, u->class_name);
        if (pw != c->width || ph != c->height || pd != c->depth) {
            cx_err_set(&e, CX_EINVAL, 0, "gate profile %s was calibrated on "
                       "%ux%u %d-bit images, the job makes %ux%u %d-bit",
                       pname, pw, ph, pd, c->width, c->height, c->depth);
            goto halt;
        }
        if (k < 0) {
            cx_err_set(&e, CX_EINVAL, 0, "gate profile %s has no class '%s'",
                       pname, u->class_name ? u->class_name : "");
            goto halt;
        }
        c->cls = (size_t)k;
        c->limits = *cx_profile_limits(c->prof);
        if (cx_gate_limits_apply(&c->limits, u->validation, &e) < 0) {
            cx_err_wrap(&e, "gate profile %s with the job's thresholds",
                        pname);
            goto halt;
        }
    }
    return 0;
halt:
    it->outcome = CX_VALIDATE_HALT;
    snprintf(it->halt_reason, sizeof it->halt_reason, "%s", e.msg);
    return -1;
}

/* The privacy gate of every profiled sample in the group, one exact search
 * per profile. */
static int cx__validate_privacy(cx_validator_t *v, cx_vitem_t *items,
                                cx__vctx_t *ctx, size_t n, cx_err_t *err) {
    for (size_t a = 0; a < n; a++) {
        const cx_profile_t *p = ctx[a].prof;
        if (!ctx[a].active || !p) continue;
        /* first item with this profile: gather all of the group's */
        int seen = 0;
        for (size_t b = 0; b < a; b++)
            if (ctx[b].active && ctx[b].prof == p) seen = 1;
        if (seen) continue;
        size_t m = 0;
        for (size_t b = a; b < n; b++)
            if (ctx[b].active && ctx[b].prof == p)
                for (size_t i = 0; i < items[b].b->n_samples; i++)
                    m += (size_t)ctx[b].res[i].profiled;
        if (!m) continue;
        double *q = malloc(m * CX_FEAT_PRIV_DIM * sizeof *q);
        cx_knn_hit_t *h = malloc(m * sizeof *h);
        int rc = -1;
        if (!q || !h) {
            cx_err_set(err, CX_ENOMEM, 1, "privacy search");
            goto next;
        }
        size_t k = 0;
        for (size_t b = a; b < n; b++) {
            if (!ctx[b].active || ctx[b].prof != p) continue;
            for (size_t i = 0; i < items[b].b->n_samples; i++) {
                cx_sample_result_t *r = &ctx[b].res[i];
                if (!r->profiled) continue;
                for (int d = 0; d < CX_FEAT_PRIV_DIM; d++)
                    q[k * CX_FEAT_PRIV_DIM + d] = r->feat.vec[d];
                k++;
            }
        }
        if (cx_knn_search(cx_profile_knn(p), q, m, CX_FEAT_PRIV_DIM, NULL,
                          v->pool, h, err) < 0)
            goto next;
        k = 0; /* the same walk as the gathering */
        for (size_t b = a; b < n; b++) {
            if (!ctx[b].active || ctx[b].prof != p) continue;
            for (size_t i = 0; i < items[b].b->n_samples; i++) {
                cx_sample_result_t *r = &ctx[b].res[i];
                if (!r->profiled) continue;
                items[b].tally.checked++;
                items[b].tally.near_copies += (size_t)cx_gate_judge_privacy(
                    &ctx[b].limits, h[k].dist, h[k].index, &r->gv);
                k++;
            }
        }
        rc = 0;
    next:
        free(q);
        free(h);
        if (rc < 0) return -1;
    }
    return 0;
}

/* Missing samples plus a manifest mean another attempt committed the unit:
 * no verdict. Returns 1 for that, 0 otherwise, -1 with it->err. */
static int cx__validate_committed(cx_vitem_t *it, const cx__vctx_t *c) {
    size_t missing = 0;
    for (size_t i = 0; i < it->b->n_samples; i++)
        missing += (size_t)c->res[i].missing;
    if (!missing) return 0;
    char mkey[512];
    const cx_unit_t *u = it->b->unit;
    if (cx_validate_manifest_key(u->job_id, u->unit_id, mkey, sizeof mkey) < 0)
        return cx_err_set(&it->err, CX_EINVAL, 0, "ids too long");
    int ex = cx_store_exists(it->store, mkey, &it->err);
    return ex;
}

/* The legacy gates a scored sample failed, for the worker statistics. */
static uint32_t cx__legacy_fails(const cx_gate_scores_t *s,
                                 const cx_gate_thresholds_t *t) {
    uint32_t f = 0;
    if (s->range < t->min_range) f |= 1u << CX_GATE_RANGE;
    if (s->clip > t->max_clip) f |= 1u << CX_GATE_CLIP;
    if (s->hf > t->max_hf) f |= 1u << CX_GATE_HF;
    return f;
}

/* Pass/fail of every sample of item it, its tally, stats and verdict. */
static int cx__validate_finish(cx_vitem_t *it, cx__vctx_t *c, double ms) {
    cx_unit_tally_t *t = &it->tally;
    size_t n = it->b->n_samples;
    t->profile = c->prof;
    t->class_index = c->prof ? (int)c->cls : -1;
    t->limits = c->limits;
    if (c->prof) {
        t->nref = cx_profile_nref(c->prof, c->cls);
        t->covered = calloc((t->nref + 7) / 8 + 1, 1);
        t->acc = calloc(1, sizeof *t->acc);
        if (!t->covered || !t->acc)
            return cx_err_set(&it->err, CX_ENOMEM, 1, "unit tally");
    }
    for (size_t i = 0; i < n; i++) {
        cx_sample_result_t *r = &c->res[i];
        uint32_t fails = 0;
        if (r->profiled) {
            r->pass = cx_gate_pass(&r->gv);
            snprintf(r->reason, sizeof r->reason, "%s", r->gv.reason);
            fails = r->gv.fail;
            if (r->pass) {
                t->n_pass++;
                t->in_manifold += (size_t)r->gv.in_manifold;
                cx_dist_acc_add(t->acc, r->gv.proj, CX_PROFILE_FD_DIM);
                for (size_t b = 0; b < (t->nref + 7) / 8; b++)
                    t->covered[b] |= r->covered[b];
            }
        } else if (r->scored) {
            fails = cx__legacy_fails(&r->scores, &c->legacy);
        }
        if (r->scored) t->scored++;
        else t->unreadable++;
        if (!r->pass) t->failed++;
        for (int g = 0; g < CX_GATE__COUNT; g++)
            t->gate_fail[g] += (fails >> g) & 1u;
    }
    it->st.samples = n;
    it->st.passed = n - t->failed;
    it->st.ms = ms;
    if (cx_verdict_build(it->b, c->res, n, ms, &it->verdict, &it->err) < 0)
        return -1;
    it->outcome = CX_VALIDATE_VERDICT;
    return 0;
}

/* Batch-level alignment per (job, class) over the group's passing samples. */
static void cx__validate_quality(cx_vitem_t *items, size_t n, cx_vquality_t *q,
                                 size_t maxq, size_t *nq) {
    *nq = 0;
    for (size_t a = 0; a < n && *nq < maxq; a++) {
        const cx_unit_tally_t *ta = &items[a].tally;
        const cx_unit_t *ua = items[a].b->unit;
        if (items[a].outcome != CX_VALIDATE_VERDICT || !ta->profile ||
            items[a].rc < 0)
            continue;
        int seen = 0;
        for (size_t k = 0; k < *nq; k++)
            if (strcmp(q[k].job_id, ua->job_id) == 0 &&
                strcmp(q[k].class_name, ua->class_name) == 0)
                seen = 1;
        if (seen) continue;
        cx_dist_acc_t acc;
        memset(&acc, 0, sizeof acc);
        size_t in = 0, nref = ta->nref;
        uint8_t *cov = calloc((nref + 7) / 8 + 1, 1);
        for (size_t b = a; b < n; b++) {
            const cx_unit_tally_t *tb = &items[b].tally;
            const cx_unit_t *ub = items[b].b->unit;
            if (items[b].outcome != CX_VALIDATE_VERDICT || items[b].rc < 0 ||
                tb->profile != ta->profile ||
                strcmp(ub->job_id, ua->job_id) != 0 ||
                strcmp(ub->class_name, ua->class_name) != 0)
                continue;
            in += tb->in_manifold;
            cx_dist_acc_merge(&acc, tb->acc, CX_PROFILE_FD_DIM);
            for (size_t k = 0; cov && k < (nref + 7) / 8; k++)
                cov[k] |= tb->covered[k];
        }
        cx_vquality_t *o = &q[(*nq)++];
        o->job_id = ua->job_id;
        o->class_name = ua->class_name;
        o->n = (size_t)acc.count;
        o->frechet = -1;
        if (acc.count >= 2 &&
            cx_profile_frechet(ta->profile, (size_t)ta->class_index, &acc,
                               &o->frechet, NULL) < 0)
            o->frechet = -1;
        o->precision = acc.count > 0 ? (double)in / acc.count : 0;
        size_t c = 0;
        for (size_t k = 0; cov && k < nref; k++) c += (cov[k / 8] >> (k % 8)) & 1;
        o->recall = nref ? (double)c / (double)nref : 0;
        free(cov);
    }
}

int cx_validate_group(cx_validator_t *v, cx_vitem_t *items, size_t n,
                      cx_vquality_t *quality, size_t max_quality,
                      size_t *nquality, cx_err_t *err) {
    double t0 = cx_mono_ms();
    cx__vgroup_t g = {.v = v, .items = items};
    size_t ntasks = 0, t = 0;
    int rc = -1;

    if (nquality) *nquality = 0;
    g.ctx = calloc(n ? n : 1, sizeof *g.ctx);
    if (!g.ctx) return cx_err_set(err, CX_ENOMEM, 1, "validation group");
    for (size_t i = 0; i < n; i++) {
        cx_vitem_t *it = &items[i];
        it->rc = 0;
        cx_err_clear(&it->err);
        it->outcome = CX_VALIDATE_VERDICT;
        it->halt_reason[0] = '\0';
        memset(&it->st, 0, sizeof it->st);
        memset(&it->tally, 0, sizeof it->tally);
        it->tally.class_index = -1;
        if (cx__validate_setup(v, it, &g.ctx[i]) < 0) continue;
        g.ctx[i].res = calloc(it->b->n_samples ? it->b->n_samples : 1,
                              sizeof *g.ctx[i].res);
        if (!g.ctx[i].res) {
            it->rc = cx_err_set(&it->err, CX_ENOMEM, 1, "sample results");
            continue;
        }
        g.ctx[i].active = 1;
        ntasks += it->b->n_samples;
    }
    g.task_item = malloc((ntasks ? ntasks : 1) * sizeof *g.task_item);
    g.task_sample = malloc((ntasks ? ntasks : 1) * sizeof *g.task_sample);
    if (!g.task_item || !g.task_sample) {
        cx_err_set(err, CX_ENOMEM, 1, "validation group");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; g.ctx[i].active && s < items[i].b->n_samples; s++) {
            g.task_item[t] = i;
            g.task_sample[t++] = s;
        }
    cx_pool_for(v->pool, ntasks, cx__validate_task, &g);

    /* A store error that may pass: the item is retried as a whole. */
    for (size_t i = 0; i < n; i++) {
        if (!g.ctx[i].active) continue;
        for (size_t s = 0; s < items[i].b->n_samples; s++)
            if (g.ctx[i].res[s].err.code != CX_OK) {
                items[i].rc = -1;
                items[i].err = g.ctx[i].res[s].err;
                cx_err_wrap(&items[i].err, "staged sample %u",
                            g.ctx[i].res[s].index);
                g.ctx[i].active = 0;
                break;
            }
    }
    if (cx__validate_privacy(v, items, g.ctx, n, err) < 0) goto done;
    double ms = cx_mono_ms() - t0;
    for (size_t i = 0; i < n; i++) {
        cx_vitem_t *it = &items[i];
        if (!g.ctx[i].active) continue;
        int ex = cx__validate_committed(it, &g.ctx[i]);
        if (ex < 0) {
            it->rc = -1;
            continue;
        }
        if (ex == 1) {
            it->outcome = CX_VALIDATE_SKIP_COMMITTED;
            continue;
        }
        if (cx__validate_finish(it, &g.ctx[i], ms) < 0) it->rc = -1;
    }
    if (quality && nquality)
        cx__validate_quality(items, n, quality, max_quality, nquality);
    rc = 0;
done:
    for (size_t i = 0; i < n; i++) {
        for (size_t s = 0; g.ctx[i].res && s < items[i].b->n_samples; s++)
            free(g.ctx[i].res[s].covered);
        free(g.ctx[i].res);
    }
    free(g.ctx);
    free(g.task_item);
    free(g.task_sample);
    return rc;
}

void cx_vitem_release(cx_vitem_t *it) {
    if (!it) return;
    cx_buf_free(&it->verdict);
    free(it->tally.acc);
    free(it->tally.covered);
    it->tally.acc = NULL;
    it->tally.covered = NULL;
}

int cx_validate_batch(cx_validator_t *v, cx_store_t *store,
                      const cx_staged_t *b, cx_buf_t *out,
                      cx_validate_outcome_t *outcome,
                      cx_validate_stats_t *st, cx_err_t *err) {
    cx_vitem_t it;
    memset(&it, 0, sizeof it);
    it.b = b;
    it.store = store;
    int rc = cx_validate_group(v, &it, 1, NULL, 0, NULL, err);
    if (rc == 0 && it.rc < 0) {
        if (err) *err = it.err;
        rc = -1;
    } else if (rc == 0 && it.outcome == CX_VALIDATE_HALT) {
        rc = cx_err_set(err, CX_EINVAL, 0, "%s", it.halt_reason);
    } else if (rc == 0) {
        *outcome = it.outcome;
        if (st) *st = it.st;
        if (it.outcome == CX_VALIDATE_VERDICT &&
            cx_buf_append(out, it.verdict.data, it.verdict.len) < 0)
            rc = cx_err_set(err, CX_ENOMEM, 0, "verdict buffer");
    }
    cx_vitem_release(&it);
    return rc;
}

/* ---- the Verdict -------------------------------------------------------- */

#define CX__NSCORES 17

/* Name/value pairs of a sample's scores; returns how many. */
static size_t cx__verdict_scores(const cx_sample_result_t *r,
                                 const char **names, double *vals) {
    size_t k = 0;
#define S(n, v) (names[k] = (n), vals[k++] = (v))
    S(CX_GATE_SCORE_RANGE, r->scores.range);
    S(CX_GATE_SCORE_CLIP, r->scores.clip);
    S(CX_GATE_SCORE_HF, r->scores.hf);
    if (r->profiled) {
        const cx_feat_t *f = &r->feat;
        const cx_gate_verdict_t *g = &r->gv;
        S("std", f->std);
        S("hf_ratio", f->hf_ratio);
        S("lap_var", f->lap_var);
        S("repeat", f->repeat);
        S("fg_area", f->fg_area);
        S("fg_cx", f->fg_cx);
        S("fg_cy", f->fg_cy);
        S("symmetry", f->symmetry);
        S("body_mean", f->body_mean);
        S("body_std", f->body_std);
        S("structure_z", fmin(g->structure_z, 1e9));
        S("mahalanobis", fmin(g->mahalanobis, 1e9));
        /* -inf with a single class: nothing to confuse it with */
        S("class_llr", fmax(fmin(g->class_llr, 1e9), -1e9));
        S("dcr", g->dcr);
    }
#undef S
    return k;
}

int cx_verdict_build(const cx_staged_t *b, const cx_sample_result_t *res,
                     size_t n, double validate_ms, cx_buf_t *out,
                     cx_err_t *err) {
    Cascade__V1__Verdict vd = CASCADE__V1__VERDICT__INIT;
    Cascade__V1__SampleVerdict *sv = calloc(n ? n : 1, sizeof *sv);
    Cascade__V1__SampleVerdict **svp = calloc(n ? n : 1, sizeof *svp);
    Cascade__V1__GateScore *gs = calloc(n ? CX__NSCORES * n : 1, sizeof *gs);
    Cascade__V1__GateScore **gsp =
        calloc(n ? CX__NSCORES * n : 1, sizeof *gsp);
    int rc = -1;

    if (!sv || !svp || !gs || !gsp) {
        cx_err_set(err, CX_ENOMEM, 0, "verdict");
        goto done;
    }
    uint32_t passed = 0;
    for (size_t i = 0; i < n; i++) {
        const cx_sample_result_t *r = &res[i];
        cascade__v1__sample_verdict__init(&sv[i]);
        sv[i].index = r->index;
        sv[i].key = (char *)(r->key ? r->key : "");
        sv[i].pass = r->pass ? 1 : 0;
        sv[i].reason = (char *)r->reason;
        sv[i].sha256 = (char *)r->sha256;
        if (r->scored) {
            const char *names[CX__NSCORES];
            double vals[CX__NSCORES];
            size_t ns = cx__verdict_scores(r, names, vals);
            for (size_t k = 0; k < ns; k++) {
                Cascade__V1__GateScore *g = &gs[CX__NSCORES * i + k];
                cascade__v1__gate_score__init(g);
                g->name = (char *)names[k];
                g->value = vals[k];
                gsp[CX__NSCORES * i + k] = g;
            }
            sv[i].n_scores = ns;
            sv[i].scores = &gsp[CX__NSCORES * i];
        }
        passed += r->pass ? 1u : 0u;
        svp[i] = &sv[i];
    }
    vd.unit = b->unit;
    vd.worker_id = b->worker_id;
    vd.attempt = b->attempt;
    vd.epoch = b->epoch;
    vd.n_samples = n;
    vd.samples = svp;
    vd.passed = passed;
    vd.validate_ms = validate_ms;
    vd.timing = b->timing;
    vd.verdict_unix_ms = cx_now_ms();
    vd.staged_unix_ms = b->staged_unix_ms;

    size_t len = 0;
    uint8_t *packed = cx_pack(&vd.base, &len, err);
    if (!packed) goto done;
    if (cx_buf_append(out, packed, len) < 0)
        cx_err_set(err, CX_ENOMEM, 0, "verdict buffer");
    else
        rc = 0;
    free(packed);

done:
    free(gsp);
    free(gs);
    free(svp);
    free(sv);
    return rc;
}
