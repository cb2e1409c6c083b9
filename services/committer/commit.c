#include "commit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/jobstate.h"
#include "cascade/names.h"
#include "reserve.h"

#define CX__KEY_MAX 512

static int cx__is_sha256(const char *s) {
    if (!s || strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int cx_commit_data_key(const char *job_id, const char *class_name,
                       const char *condition, const char *sha256, char *out,
                       size_t cap, cx_err_t *err) {
    if (cx_name_check("job id", job_id, err) < 0 ||
        cx_name_check("class name", class_name, err) < 0)
        return -1;
    int has_cond = condition && condition[0];
    if (has_cond && cx_name_check("condition", condition, err) < 0) return -1;
    if (!cx__is_sha256(sha256))
        return cx_err_set(err, CX_EINVAL, 0,
                          "sha256 is not 64 lowercase hex characters");
    int n = has_cond ? snprintf(out, cap, "%s/data/%s/%s/%.2s/%s.png", job_id,
                                class_name, condition, sha256, sha256)
                     : snprintf(out, cap, "%s/data/%s/%.2s/%s.png", job_id,
                                class_name, sha256, sha256);
    if (n < 0 || (size_t)n >= cap)
        return cx_err_set(err, CX_EINVAL, 0, "data key too long");
    return 0;
}

int cx_commit_cleanup(cx_store_t *s, const cx_verdict_t *v, cx_err_t *err) {
    char prefix[CX__KEY_MAX];
    int n = snprintf(prefix, sizeof prefix, "%s/staging/%s/%u",
                     v->unit->job_id, v->unit->unit_id, v->attempt);
    if (n < 0 || (size_t)n >= sizeof prefix)
        return cx_err_set(err, CX_EINVAL, 0, "staging prefix too long");
    return cx_store_delete_prefix(s, prefix, err);
}

int cx_commit_record(const cx_manifest_t *m, const cx_verdict_t *v,
                     double commit_ms, cx_buf_t *out, cx_err_t *err) {
    char mkey[CX__KEY_MAX];
    snprintf(mkey, sizeof mkey, "%s/manifests/%s.json", m->job_id,
             m->unit_id);
    Cascade__V1__CommitRecord c = CASCADE__V1__COMMIT_RECORD__INIT;
    c.job_id = m->job_id;
    c.unit_id = m->unit_id;
    c.class_name = m->class_name;
    c.condition = m->condition ? m->condition : "";
    c.attempt = m->attempt;
    c.planned = m->planned;
    c.generated = m->generated;
    c.passed = m->passed;
    c.committed = m->committed;
    c.manifest_key = mkey;
    c.worker_id = m->worker_id ? m->worker_id : "";
    c.committed_unix_ms = m->committed_unix_ms;
    c.timing = v->timing;
    c.validate_ms = v->validate_ms;
    c.commit_ms = commit_ms;
    c.staged_unix_ms = v->staged_unix_ms;
    c.verdict_unix_ms = v->verdict_unix_ms;
    size_t len = 0;
    uint8_t *packed = cx_pack(&c.base, &len, err);
    if (!packed) return -1;
    int rc = cx_buf_append(out, packed, len) < 0
                 ? cx_err_set(err, CX_ENOMEM, 0, "commit record")
                 : 0;
    free(packed);
    return rc;
}

/* 1 when the job is cancelled, 0 when not, -1 on error. */
static int cx__commit_cancelled(cx_redis_t *r, const char *job_id,
                                cx_err_t *err) {
    char key[256];
    if (cx_jobstate_key(key, sizeof key, job_id, NULL) < 0)
        return cx_err_set(err, CX_EINVAL, 0, "job id too long");
    redisReply *rep = cx_redis_cmd(r, err, "HGET %s state", key);
    if (!rep) return cx_err_wrap(err, "job state");
    int c = rep->type == REDIS_REPLY_STRING &&
            strcmp(rep->str, CX_JOB_CANCELLED) == 0;
    freeReplyObject(rep);
    return c;
}

/* Reads and parses the manifest at mkey: 1 with *out, 0 when absent. */
static int cx__commit_load(cx_store_t *s, const char *mkey,
                           cx_manifest_t **out, cx_err_t *err) {
    void *data = NULL;
    size_t len = 0;
    cx_err_t e;
    if (cx_store_get(s, mkey, &data, &len, &e) < 0) {
        if (e.code == CX_ENOENT) return 0;
        if (err) *err = e;
        return -1;
    }
    int rc = cx_manifest_parse(data, len, out, err);
    free(data);
    if (rc < 0) return cx_err_wrap(err, "manifest %s", mkey);
    return 1;
}

static int cx__listed(const cx_manifest_t *m, const char *key) {
    for (size_t i = 0; i < m->n_samples; i++)
        if (m->samples[i].key && strcmp(m->samples[i].key, key) == 0)
            return 1;
    return 0;
}

/* Removes the data keys of v's passing samples that winner does not list:
 * anything this attempt promoted (now or before a crash) that lost. */
static int cx__commit_prune(cx_store_t *s, const cx_verdict_t *v,
                            const cx_manifest_t *winner, size_t *removed,
                            cx_err_t *err) {
    const cx_unit_t *u = v->unit;
    for (size_t i = 0; i < v->n_samples; i++) {
        const Cascade__V1__SampleVerdict *sv = v->samples[i];
        char dkey[CX__KEY_MAX];
        if (!sv->pass) continue;
        if (cx_commit_data_key(u->job_id, u->class_name, u->condition,
                               sv->sha256, dkey, sizeof dkey, NULL) < 0)
            continue;
        if (cx__listed(winner, dkey)) continue;
        int ex = cx_store_exists(s, dkey, err);
        if (ex < 0) return -1;
        if (ex == 0) continue;
        if (cx_store_delete(s, dkey, err) < 0) return -1;
        (*removed)++;
    }
    return 0;
}

static int cx__by_index(const void *a, const void *b) {
    const Cascade__V1__SampleVerdict *x =
        *(const Cascade__V1__SampleVerdict *const *)a;
    const Cascade__V1__SampleVerdict *y =
        *(const Cascade__V1__SampleVerdict *const *)b;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Fills m from v and the samples chosen (borrowing v's strings). */
static int cx__commit_manifest(const cx_verdict_t *v,
                               Cascade__V1__SampleVerdict **chosen,
                               char (*keys)[CX__KEY_MAX], uint32_t n,
                               uint32_t passed, cx_manifest_t *m,
                               cx_err_t *err) {
    const cx_unit_t *u = v->unit;
    const Cascade__V1__GenerationParams *p = u->params;
    memset(m, 0, sizeof *m);
    m->job_id = u->job_id;
    m->unit_id = u->unit_id;
    m->class_name = u->class_name;
    m->condition = u->condition;
    m->attempt = v->attempt;
    m->worker_id = v->worker_id;
    m->seed = u->seed;
    m->ordinal = u->ordinal;
    m->generation = u->generation;
    m->params.checkpoint = p->checkpoint;
    m->params.sampler = (int)p->sampler;
    m->params.steps = p->steps;
    m->params.guidance_scale = p->guidance_scale;
    m->params.eta = p->eta;
    m->params.width = p->width;
    m->params.height = p->height;
    m->params.bit_depth = p->bit_depth;
    m->planned = u->sample_count;
    m->generated = (uint32_t)v->n_samples;
    m->passed = passed;
    m->committed = n;
    m->committed_unix_ms = cx_now_ms();
    m->n_samples = n;
    m->samples = calloc(n ? n : 1, sizeof *m->samples);
    if (!m->samples) return cx_err_set(err, CX_ENOMEM, 0, "manifest");
    for (uint32_t i = 0; i < n; i++) {
        cx_manifest_sample_t *ms = &m->samples[i];
        ms->index = chosen[i]->index;
        memcpy(ms->sha256, chosen[i]->sha256, 65);
        ms->key = keys[i];
        ms->n_scores = chosen[i]->n_scores;
        ms->scores = calloc(ms->n_scores ? ms->n_scores : 1,
                            sizeof *ms->scores);
        if (!ms->scores) return cx_err_set(err, CX_ENOMEM, 0, "manifest");
        for (size_t k = 0; k < ms->n_scores; k++) {
            ms->scores[k].name = chosen[i]->scores[k]->name;
            ms->scores[k].value = chosen[i]->scores[k]->value;
        }
    }
    return 0;
}

static void cx__commit_manifest_release(cx_manifest_t *m) {
    if (m->samples)
        for (size_t i = 0; i < m->n_samples; i++) free(m->samples[i].scores);
    free(m->samples);
}

int cx_commit_verdict(cx_redis_t *r, cx_store_t *s, const cx_verdict_t *v,
                      cx_buf_t *record, cx_commit_result_t *res,
                      cx_err_t *err) {
    const cx_unit_t *u = v->unit;
    double t0 = cx_mono_ms();
    cx_err_t local;
    cx_manifest_t *winner = NULL;
    cx_manifest_t mine;
    Cascade__V1__SampleVerdict **pass = NULL;
    char (*keys)[CX__KEY_MAX] = NULL;
    char mkey[CX__KEY_MAX];
    int rc = -1, have_mine = 0;

    if (!err) err = &local; /* the steps below look at the code */
    memset(res, 0, sizeof *res);
    memset(&mine, 0, sizeof mine);
    if (!u || !u->params)
        return cx_err_set(err, CX_EDECODE, 0, "verdict without unit");
    int n = snprintf(mkey, sizeof mkey, "%s/manifests/%s.json", u->job_id,
                     u->unit_id);
    if (n < 0 || (size_t)n >= sizeof mkey)
        return cx_err_set(err, CX_EINVAL, 0, "manifest key too long");

    int c = cx__commit_cancelled(r, u->job_id, err);
    if (c < 0) return -1;
    if (c) {
        res->outcome = CX_COMMIT_CANCELLED;
        return 0;
    }

    /* Already committed (a redelivery, or another attempt won). */
    int had = cx__commit_load(s, mkey, &winner, err);
    if (had < 0) return -1;
    if (had) goto existing;

    /* Passing samples in index order: the grant takes the first ones. */
    pass = calloc(v->n_samples ? v->n_samples : 1, sizeof *pass);
    keys = calloc(v->n_samples ? v->n_samples : 1, sizeof *keys);
    if (!pass || !keys) {
        cx_err_set(err, CX_ENOMEM, 0, "commit");
        goto done;
    }
    uint32_t npass = 0;
    for (size_t i = 0; i < v->n_samples; i++)
        if (v->samples[i]->pass) pass[npass++] = v->samples[i];
    qsort(pass, npass, sizeof *pass, cx__by_index);
    res->passed = npass;
    /* Caught before anything is reserved or promoted: the manifest would
     * refuse it after the files had moved. */
    for (uint32_t i = 1; i < npass; i++)
        if (pass[i]->index == pass[i - 1]->index) {
            cx_err_set(err, CX_EDECODE, 0, "sample index %u passes twice",
                       pass[i]->index);
            goto done;
        }

    cx_reserve_result_t rr;
    if (cx_reserve(r, u->job_id, u->unit_id, u->class_name, npass, &rr,
                   &res->grant, err) < 0)
        goto done;
    if (rr == CX_RESERVE_FENCED) {
        res->outcome = CX_COMMIT_FENCED;
        rc = 0;
        goto done;
    }

    /* Promote until the grant is met. A staged file that is gone with no
     * committed copy cannot be committed: the next passing sample takes its
     * place, and if none is left the unit commits fewer (settled below). */
    uint32_t ncommit = 0;
    for (uint32_t i = 0; i < npass && ncommit < res->grant; i++) {
        Cascade__V1__SampleVerdict *sv = pass[i];
        if (cx_commit_data_key(u->job_id, u->class_name, u->condition,
                               sv->sha256, keys[ncommit], CX__KEY_MAX,
                               err) < 0)
            goto done;
        if (cx_store_promote(s, sv->key, keys[ncommit], err) < 0) {
            if (err->code == CX_ENOENT) {
                cx_err_clear(err);
                continue;
            }
            goto done;
        }
        pass[ncommit++] = sv; /* compacts: ncommit <= i */
    }

    if (cx__commit_manifest(v, pass, keys, ncommit, npass, &mine, err) < 0)
        goto done;
    have_mine = 1;
    cx_buf_t json = {0};
    if (cx_manifest_to_json(&mine, &json, err) < 0) goto done;
    int put = cx_store_put_if_absent(s, mkey, json.data, json.len, err);
    cx_buf_free(&json);
    if (put < 0) goto done;
    if (put == 0) {
        res->outcome = CX_COMMIT_COMMITTED;
        res->committed = ncommit;
        if (ncommit < res->grant &&
            cx_reserve_settle(r, u->job_id, u->unit_id, u->class_name,
                              ncommit, err) < 0)
            goto done;
        res->commit_ms = cx_mono_ms() - t0;
        if (cx_commit_record(&mine, v, res->commit_ms, record, err) < 0)
            goto done;
        rc = 0;
        goto done;
    }
    /* Lost the race: the winner's manifest is the truth. */
    had = cx__commit_load(s, mkey, &winner, err);
    if (had < 0) goto done;
    if (had == 0) {
        cx_err_set(err, CX_ESTORE, 1, "manifest %s vanished", mkey);
        goto done;
    }

existing:
    res->outcome = CX_COMMIT_EXISTING;
    res->committed = winner->committed;
    if (cx__commit_prune(s, v, winner, &res->removed, err) < 0) goto done;
    if (cx_reserve_settle(r, u->job_id, u->unit_id, u->class_name,
                          winner->committed, err) < 0)
        goto done;
    res->commit_ms = cx_mono_ms() - t0;
    if (cx_commit_record(winner, v, res->commit_ms, record, err) < 0)
        goto done;
    rc = 0;

done:
    if (have_mine) cx__commit_manifest_release(&mine);
    cx_manifest_free(winner);
    free(keys);
    free(pass);
    return rc;
}
