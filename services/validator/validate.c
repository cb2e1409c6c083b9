#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/png16.h"
#include "cascade/pool.h"
#include "cascade/sha256.h"

struct cx_validator {
    cx_pool_t *pool;
    cx_gate_thresholds_t defaults;
};

cx_validator_t *cx_validator_new(const cx_gate_thresholds_t *defaults,
                                 unsigned threads, cx_err_t *err) {
    cx_validator_t *v = calloc(1, sizeof *v);
    if (!v) {
        cx_err_set(err, CX_ENOMEM, 0, "validator");
        return NULL;
    }
    v->defaults = *defaults;
    v->pool = cx_pool_new(threads, err);
    if (!v->pool) goto fail_pool;
    return v;

fail_pool:
    free(v);
    return NULL;
}

void cx_validator_destroy(cx_validator_t *v) {
    if (!v) return;
    cx_pool_destroy(v->pool);
    free(v);
}

int cx_validate_manifest_key(const char *job_id, const char *unit_id,
                             char *out, size_t cap) {
    int n = snprintf(out, cap, "%s/manifests/%s.json", job_id, unit_id);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

void cx_validate_png(const void *png, size_t len, uint32_t width,
                     uint32_t height, int bit_depth,
                     const cx_gate_thresholds_t *th, cx_sample_result_t *r,
                     cx_sample_timing_t *t) {
    uint16_t *px = NULL;
    uint32_t w = 0, h = 0;
    int depth = 0;
    cx_err_t e;
    double t0 = cx_mono_ms(), t1, t2;

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
        goto done;
    }
    t2 = cx_mono_ms();
    if (t) t->decode_ms = t2 - t1;
    if (w != width || h != height) {
        snprintf(r->reason, sizeof r->reason,
                 "size %ux%u, expected %ux%u", w, h, width, height);
        goto done;
    }
    if (depth != bit_depth) {
        snprintf(r->reason, sizeof r->reason,
                 "bit depth %d, expected %d", depth, bit_depth);
        goto done;
    }
    if (cx_gates_score(px, w, h, depth, &r->scores, &e) < 0) {
        snprintf(r->reason, sizeof r->reason, "gates: %.170s", e.msg);
        goto done;
    }
    r->scored = 1;
    r->pass = cx_gates_judge(&r->scores, th, r->reason, sizeof r->reason);
    if (t) t->gates_ms = cx_mono_ms() - t2;

done:
    free(px);
}

typedef struct cx__vbatch {
    cx_store_t *store;
    const cx_staged_t *b;
    cx_gate_thresholds_t th;
    uint32_t width, height;
    int bit_depth;
    cx_sample_result_t *res;
} cx__vbatch_t;

static void cx__validate_one(void *ctx, size_t i) {
    cx__vbatch_t *vb = ctx;
    const Cascade__V1__StagedSample *s = vb->b->samples[i];
    cx_sample_result_t *r = &vb->res[i];
    void *data = NULL;
    size_t len = 0;

    r->index = s->index;
    r->key = s->key;
    cx_err_clear(&r->err);
    if (cx_store_get(vb->store, s->key, &data, &len, &r->err) < 0) {
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
    cx_validate_png(data, len, vb->width, vb->height, vb->bit_depth, &vb->th,
                    r, NULL);
    free(data);
}

int cx_validate_batch(cx_validator_t *v, cx_store_t *store,
                      const cx_staged_t *b, cx_buf_t *out,
                      cx_validate_outcome_t *outcome,
                      cx_validate_stats_t *st, cx_err_t *err) {
    const cx_unit_t *u = b->unit;
    double t0 = cx_mono_ms();
    int rc = -1;

    if (b->failure && b->failure[0]) {
        *outcome = CX_VALIDATE_SKIP_FAILED;
        return 0;
    }
    if (!u || !u->params)
        return cx_err_set(err, CX_EDECODE, 0, "staged batch without unit");

    cx__vbatch_t vb = {.store = store, .b = b};
    cx_gates_thresholds_for(&v->defaults, u->validation, &vb.th);
    vb.width = u->params->width;
    vb.height = u->params->height;
    vb.bit_depth = (int)u->params->bit_depth;
    vb.res = calloc(b->n_samples ? b->n_samples : 1, sizeof *vb.res);
    if (!vb.res) return cx_err_set(err, CX_ENOMEM, 0, "sample results");

    cx_pool_for(v->pool, b->n_samples, cx__validate_one, &vb);

    size_t missing = 0;
    for (size_t i = 0; i < b->n_samples; i++) {
        if (vb.res[i].err.code != CX_OK) {
            if (err) *err = vb.res[i].err;
            cx_err_wrap(err, "staged sample %u", vb.res[i].index);
            goto done;
        }
        missing += (size_t)vb.res[i].missing;
    }
    if (missing) {
        /* Staging is deleted once a unit is committed: gone samples plus a
         * manifest mean a redelivered batch, which needs no verdict. */
        char mkey[512];
        if (cx_validate_manifest_key(u->job_id, u->unit_id, mkey,
                                     sizeof mkey) < 0) {
            cx_err_set(err, CX_EINVAL, 0, "ids too long");
            goto done;
        }
        int ex = cx_store_exists(store, mkey, err);
        if (ex < 0) goto done;
        if (ex == 1) {
            *outcome = CX_VALIDATE_SKIP_COMMITTED;
            rc = 0;
            goto done;
        }
    }
    double ms = cx_mono_ms() - t0;
    if (cx_verdict_build(b, vb.res, b->n_samples, ms, out, err) < 0)
        goto done;
    *outcome = CX_VALIDATE_VERDICT;
    if (st) {
        st->samples = b->n_samples;
        st->passed = 0;
        for (size_t i = 0; i < b->n_samples; i++)
            st->passed += (size_t)vb.res[i].pass;
        st->ms = ms;
    }
    rc = 0;

done:
    free(vb.res);
    return rc;
}

int cx_verdict_build(const cx_staged_t *b, const cx_sample_result_t *res,
                     size_t n, double validate_ms, cx_buf_t *out,
                     cx_err_t *err) {
    Cascade__V1__Verdict vd = CASCADE__V1__VERDICT__INIT;
    Cascade__V1__SampleVerdict *sv = calloc(n ? n : 1, sizeof *sv);
    Cascade__V1__SampleVerdict **svp = calloc(n ? n : 1, sizeof *svp);
    Cascade__V1__GateScore *gs = calloc(n ? 3 * n : 1, sizeof *gs);
    Cascade__V1__GateScore **gsp = calloc(n ? 3 * n : 1, sizeof *gsp);
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
            static const char *names[3] = {CX_GATE_SCORE_RANGE,
                                           CX_GATE_SCORE_CLIP,
                                           CX_GATE_SCORE_HF};
            const double vals[3] = {r->scores.range, r->scores.clip,
                                    r->scores.hf};
            for (int k = 0; k < 3; k++) {
                Cascade__V1__GateScore *g = &gs[3 * i + (size_t)k];
                cascade__v1__gate_score__init(g);
                g->name = (char *)names[k];
                g->value = vals[k];
                gsp[3 * i + (size_t)k] = g;
            }
            sv[i].n_scores = 3;
            sv[i].scores = &gsp[3 * i];
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
