/* Unit manifests to and from JSON (cJSON). See manifest.h for the layout. */
#include "cascade/manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cascade/names.h"

#define CX__MAX_EXACT 9007199254740992.0 /* 2^53 */

static const char *sampler_str(int s) {
    switch (s) {
    case 1: return "ddim";
    case 2: return "euler";
    case 3: return "heun";
    }
    return NULL;
}

static int sampler_num(const char *s) {
    if (strcmp(s, "ddim") == 0) return 1;
    if (strcmp(s, "euler") == 0) return 2;
    if (strcmp(s, "heun") == 0) return 3;
    return 0;
}

static int is_hex(const char *s, size_t n) {
    if (!s || strlen(s) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int name_ok(const char *field, const char *s, cx_errcode_t code,
                   cx_err_t *err) {
    if (!s || !*s) return cx_err_set(err, code, 0, "manifest: missing %s", field);
    if (cx_name_check(field, s, err) != 0) {
        if (err) err->code = code;
        return cx_err_wrap(err, "manifest");
    }
    return 0;
}

int cx_manifest_check(const cx_manifest_t *m, cx_errcode_t code,
                      cx_err_t *err) {
    if (!m) return cx_err_set(err, code, 0, "manifest: none");
    if (name_ok("job_id", m->job_id, code, err)) return -1;
    if (!is_hex(m->unit_id, 32))
        return cx_err_set(err, code, 0,
                          "manifest: unit_id is not 32 lowercase hex characters");
    if (name_ok("class", m->class_name, code, err)) return -1;
    if (m->condition && *m->condition &&
        name_ok("condition", m->condition, code, err))
        return -1;
    if (!m->worker_id || !*m->worker_id)
        return cx_err_set(err, code, 0, "manifest: missing worker_id");
    if (name_ok("params.checkpoint", m->params.checkpoint, code, err)) return -1;
    if (!sampler_str(m->params.sampler))
        return cx_err_set(err, code, 0, "manifest: params.sampler %d is unknown",
                          m->params.sampler);
    if (!isfinite(m->params.guidance_scale) || !isfinite(m->params.eta))
        return cx_err_set(err, code, 0,
                          "manifest: params.guidance_scale/eta not finite");
    if (m->params.bit_depth != 8 && m->params.bit_depth != 16)
        return cx_err_set(err, code, 0, "manifest: params.bit_depth %u is not 8 or 16",
                          m->params.bit_depth);
    if (m->committed > m->passed || m->passed > m->generated)
        return cx_err_set(err, code, 0,
                          "manifest: counts out of order (committed %u, passed "
                          "%u, generated %u)",
                          m->committed, m->passed, m->generated);
    if (m->n_samples != m->committed)
        return cx_err_set(err, code, 0,
                          "manifest: %zu samples listed but committed is %u",
                          m->n_samples, m->committed);
    if (m->committed_unix_ms < 0)
        return cx_err_set(err, code, 0, "manifest: committed_unix_ms is negative");
    for (size_t i = 0; i < m->n_samples; i++) {
        const cx_manifest_sample_t *s = &m->samples[i];
        if (!is_hex(s->sha256, 64))
            return cx_err_set(err, code, 0,
                              "manifest: samples[%zu].sha256 is not 64 lowercase "
                              "hex characters",
                              i);
        if (!s->key || !*s->key)
            return cx_err_set(err, code, 0, "manifest: missing samples[%zu].key", i);
        for (size_t j = 0; j < i; j++)
            if (m->samples[j].index == s->index)
                return cx_err_set(err, code, 0,
                                  "manifest: samples[%zu].index %u is listed twice",
                                  i, s->index);
        for (size_t j = 0; j < s->n_scores; j++)
            if (!s->scores[j].name || !*s->scores[j].name)
                return cx_err_set(err, code, 0,
                                  "manifest: samples[%zu].scores[%zu] has no name",
                                  i, j);
    }
    return 0;
}

int cx_manifest_to_json(const cx_manifest_t *m, cx_buf_t *out, cx_err_t *err) {
    if (cx_manifest_check(m, CX_EINVAL, err) != 0) return -1;
    cJSON *root = cJSON_CreateObject(), *p = NULL, *arr = NULL;
    char seed[24];
    snprintf(seed, sizeof seed, "%" PRIu64, m->seed);
    int ok = root != NULL;
#define ADD_STR(o, k, v) ok = ok && cJSON_AddStringToObject(o, k, v) != NULL
#define ADD_NUM(o, k, v) ok = ok && cJSON_AddNumberToObject(o, k, (double)(v)) != NULL
    ADD_STR(root, "job_id", m->job_id);
    ADD_STR(root, "unit_id", m->unit_id);
    ADD_STR(root, "class", m->class_name);
    ADD_STR(root, "condition", m->condition ? m->condition : "");
    ADD_NUM(root, "attempt", m->attempt);
    ADD_STR(root, "worker_id", m->worker_id);
    ADD_STR(root, "seed", seed);
    ADD_NUM(root, "ordinal", m->ordinal);
    ADD_NUM(root, "generation", m->generation);
    ok = ok && (p = cJSON_AddObjectToObject(root, "params")) != NULL;
    ADD_STR(p, "checkpoint", m->params.checkpoint);
    ADD_STR(p, "sampler", sampler_str(m->params.sampler));
    ADD_NUM(p, "steps", m->params.steps);
    ADD_NUM(p, "guidance_scale", m->params.guidance_scale);
    ADD_NUM(p, "eta", m->params.eta);
    ADD_NUM(p, "width", m->params.width);
    ADD_NUM(p, "height", m->params.height);
    ADD_NUM(p, "bit_depth", m->params.bit_depth);
    ADD_NUM(root, "planned", m->planned);
    ADD_NUM(root, "generated", m->generated);
    ADD_NUM(root, "passed", m->passed);
    ADD_NUM(root, "committed", m->committed);
    ADD_NUM(root, "committed_unix_ms", m->committed_unix_ms);
    ok = ok && (arr = cJSON_AddArrayToObject(root, "samples")) != NULL;
    for (size_t i = 0; ok && i < m->n_samples; i++) {
        const cx_manifest_sample_t *s = &m->samples[i];
        cJSON *o = cJSON_CreateObject(), *sc = NULL;
        ok = o != NULL && cJSON_AddItemToArray(arr, o);
        if (!ok) {
            cJSON_Delete(o);
            break;
        }
        ADD_NUM(o, "index", s->index);
        ADD_STR(o, "sha256", s->sha256);
        ADD_STR(o, "key", s->key);
        ok = ok && (sc = cJSON_AddObjectToObject(o, "scores")) != NULL;
        for (size_t j = 0; ok && j < s->n_scores; j++) {
            double v = s->scores[j].value;
            ok = (isfinite(v) ? cJSON_AddNumberToObject(sc, s->scores[j].name, v)
                              : cJSON_AddNullToObject(sc, s->scores[j].name)) != NULL;
        }
    }
#undef ADD_STR
#undef ADD_NUM
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return cx_err_set(err, CX_ENOMEM, 0, "manifest: out of memory");
    int rc = cx_buf_append(out, text, strlen(text));
    free(text);
    if (rc != 0) return cx_err_set(err, CX_ENOMEM, 0, "manifest: out of memory");
    return 0;
}

/* ---- parsing ------------------------------------------------------------ */

static int get_str(const cJSON *o, const char *k, const char *path, int required,
                   char **out, cx_err_t *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) {
        if (!required) return 0;
        return cx_err_set(err, CX_EDECODE, 0, "manifest: missing %s", path);
    }
    if (!cJSON_IsString(v))
        return cx_err_set(err, CX_EDECODE, 0, "manifest: %s is not a string", path);
    if (!(*out = strdup(v->valuestring)))
        return cx_err_set(err, CX_ENOMEM, 0, "manifest: out of memory");
    return 0;
}

static int get_uint(const cJSON *o, const char *k, const char *path, double max,
                    uint64_t *out, cx_err_t *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) return cx_err_set(err, CX_EDECODE, 0, "manifest: missing %s", path);
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || !isfinite(d) || d != floor(d) || d < 0 || d > max)
        return cx_err_set(err, CX_EDECODE, 0,
                          "manifest: %s is not an integer in [0, %.0f]", path, max);
    *out = (uint64_t)d;
    return 0;
}

static int get_u32(const cJSON *o, const char *k, const char *path, uint32_t *out,
                   cx_err_t *err) {
    uint64_t v;
    if (get_uint(o, k, path, (double)UINT32_MAX, &v, err)) return -1;
    *out = (uint32_t)v;
    return 0;
}

static int get_num(const cJSON *o, const char *k, const char *path, double *out,
                   cx_err_t *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) return cx_err_set(err, CX_EDECODE, 0, "manifest: missing %s", path);
    if (!cJSON_IsNumber(v))
        return cx_err_set(err, CX_EDECODE, 0, "manifest: %s is not a number", path);
    *out = v->valuedouble;
    return 0;
}

static int parse_seed(const cJSON *root, uint64_t *seed, cx_err_t *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "seed");
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        char *end = NULL;
        if (*s < '0' || *s > '9')
            return cx_err_set(err, CX_EDECODE, 0, "manifest: seed is not a decimal");
        errno = 0;
        unsigned long long x = strtoull(s, &end, 10);
        if (errno || *end)
            return cx_err_set(err, CX_EDECODE, 0,
                              "manifest: seed '%.30s' is not a 64-bit decimal", s);
        *seed = x;
        return 0;
    }
    return get_uint(root, "seed", "seed", CX__MAX_EXACT, seed, err);
}

static int parse_sample(const cJSON *o, size_t i, cx_manifest_sample_t *s,
                        cx_err_t *err) {
    char path[64];
    snprintf(path, sizeof path, "samples[%zu]", i);
    if (!cJSON_IsObject(o))
        return cx_err_set(err, CX_EDECODE, 0, "manifest: %s is not an object", path);
    char f[96];
    char *sha = NULL;
    snprintf(f, sizeof f, "%s.index", path);
    if (get_u32(o, "index", f, &s->index, err)) return -1;
    snprintf(f, sizeof f, "%s.sha256", path);
    if (get_str(o, "sha256", f, 1, &sha, err)) return -1;
    int bad = strlen(sha) != 64;
    if (!bad) memcpy(s->sha256, sha, 65);
    free(sha);
    if (bad)
        return cx_err_set(err, CX_EDECODE, 0,
                          "manifest: %s is not 64 lowercase hex characters", f);
    snprintf(f, sizeof f, "%s.key", path);
    if (get_str(o, "key", f, 1, &s->key, err)) return -1;
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(o, "scores");
    if (!sc) return 0;
    if (!cJSON_IsObject(sc))
        return cx_err_set(err, CX_EDECODE, 0, "manifest: %s.scores is not an object",
                          path);
    size_t n = (size_t)cJSON_GetArraySize(sc);
    s->scores = calloc(n ? n : 1, sizeof *s->scores);
    if (!s->scores) return cx_err_set(err, CX_ENOMEM, 0, "manifest: out of memory");
    for (const cJSON *e = sc->child; e; e = e->next) {
        cx_manifest_score_t *x = &s->scores[s->n_scores];
        if (!cJSON_IsNumber(e) && !cJSON_IsNull(e))
            return cx_err_set(err, CX_EDECODE, 0,
                              "manifest: %s.scores.%s is not a number", path,
                              e->string);
        if (!(x->name = strdup(e->string)))
            return cx_err_set(err, CX_ENOMEM, 0, "manifest: out of memory");
        x->value = cJSON_IsNull(e) ? NAN : e->valuedouble;
        s->n_scores++;
    }
    return 0;
}

static int parse_into(const cJSON *root, cx_manifest_t *m, cx_err_t *err) {
    uint64_t ms;
    if (!cJSON_IsObject(root))
        return cx_err_set(err, CX_EDECODE, 0, "manifest: not a JSON object");
    if (get_str(root, "job_id", "job_id", 1, &m->job_id, err) ||
        get_str(root, "unit_id", "unit_id", 1, &m->unit_id, err) ||
        get_str(root, "class", "class", 1, &m->class_name, err) ||
        get_str(root, "condition", "condition", 0, &m->condition, err) ||
        get_u32(root, "attempt", "attempt", &m->attempt, err) ||
        get_str(root, "worker_id", "worker_id", 1, &m->worker_id, err) ||
        parse_seed(root, &m->seed, err) ||
        get_u32(root, "ordinal", "ordinal", &m->ordinal, err) ||
        get_u32(root, "generation", "generation", &m->generation, err) ||
        get_u32(root, "planned", "planned", &m->planned, err) ||
        get_u32(root, "generated", "generated", &m->generated, err) ||
        get_u32(root, "passed", "passed", &m->passed, err) ||
        get_u32(root, "committed", "committed", &m->committed, err) ||
        get_uint(root, "committed_unix_ms", "committed_unix_ms", CX__MAX_EXACT,
                 &ms, err))
        return -1;
    m->committed_unix_ms = (int64_t)ms;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "params");
    if (!cJSON_IsObject(p))
        return cx_err_set(err, CX_EDECODE, 0, "manifest: missing params");
    char *sampler = NULL;
    if (get_str(p, "checkpoint", "params.checkpoint", 1, &m->params.checkpoint, err) ||
        get_str(p, "sampler", "params.sampler", 1, &sampler, err))
        return -1;
    m->params.sampler = sampler_num(sampler);
    free(sampler);
    if (get_u32(p, "steps", "params.steps", &m->params.steps, err) ||
        get_num(p, "guidance_scale", "params.guidance_scale",
                &m->params.guidance_scale, err) ||
        get_num(p, "eta", "params.eta", &m->params.eta, err) ||
        get_u32(p, "width", "params.width", &m->params.width, err) ||
        get_u32(p, "height", "params.height", &m->params.height, err) ||
        get_u32(p, "bit_depth", "params.bit_depth", &m->params.bit_depth, err))
        return -1;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "samples");
    if (!cJSON_IsArray(arr))
        return cx_err_set(err, CX_EDECODE, 0, "manifest: missing samples list");
    size_t n = (size_t)cJSON_GetArraySize(arr);
    m->samples = calloc(n ? n : 1, sizeof *m->samples);
    if (!m->samples) return cx_err_set(err, CX_ENOMEM, 0, "manifest: out of memory");
    for (const cJSON *e = arr->child; e; e = e->next) {
        /* Count first so a failure below frees what this sample built. */
        size_t i = m->n_samples++;
        if (parse_sample(e, i, &m->samples[i], err)) return -1;
    }
    return cx_manifest_check(m, CX_EDECODE, err);
}

int cx_manifest_parse(const char *json, size_t len, cx_manifest_t **out,
                      cx_err_t *err) {
    *out = NULL;
    if (!json || len == 0)
        return cx_err_set(err, CX_EDECODE, 0, "manifest: empty");
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        return cx_err_set(err, CX_EDECODE, 0, "manifest: not valid JSON");
    cx_manifest_t *m = calloc(1, sizeof *m);
    if (!m) {
        cJSON_Delete(root);
        return cx_err_set(err, CX_ENOMEM, 0, "manifest: out of memory");
    }
    int rc = parse_into(root, m, err);
    cJSON_Delete(root);
    if (rc != 0) {
        cx_manifest_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void cx_manifest_free(cx_manifest_t *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_samples; i++) {
        for (size_t j = 0; j < m->samples[i].n_scores; j++)
            free(m->samples[i].scores[j].name);
        free(m->samples[i].scores);
        free(m->samples[i].key);
    }
    free(m->samples);
    free(m->job_id);
    free(m->unit_id);
    free(m->class_name);
    free(m->condition);
    free(m->worker_id);
    free(m->params.checkpoint);
    free(m);
}
