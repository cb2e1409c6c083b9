/* Pool files for cascade-sim (simpool.h). */
#include "simpool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static int only(const cJSON *o, const char *path, const char *const *keys,
                cx_err_t *err) {
    if (!cJSON_IsObject(o))
        return cx_err_set(err, CX_EINVAL, 0, "%s: must be an object", path);
    for (const cJSON *c = o->child; c; c = c->next) {
        int ok = 0;
        for (size_t i = 0; keys[i]; i++) ok |= strcmp(c->string, keys[i]) == 0;
        if (!ok)
            return cx_err_set(err, CX_EINVAL, 0, "%s%s%s: unknown key", path,
                              *path ? "." : "", c->string);
    }
    return 0;
}

/* A number >= 0 (<= max) at o[key]; absent leaves *out. */
static int getnum(const cJSON *o, const char *path, const char *key,
                  double max, double *out, cx_err_t *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!x) return 0;
    if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0) || x->valuedouble > max)
        return cx_err_set(err, CX_EINVAL, 0,
                          "%s%s%s: must be a number in [0, %g]", path,
                          *path ? "." : "", key, max);
    *out = x->valuedouble;
    return 0;
}

static int getu32(const cJSON *o, const char *path, const char *key,
                  uint32_t min, uint32_t max, uint32_t *out, cx_err_t *err) {
    double v = *out;
    if (getnum(o, path, key, max, &v, err) < 0) return -1;
    if (v != floor(v) || v < min)
        return cx_err_set(err, CX_EINVAL, 0,
                          "%s%s%s: must be an integer in [%u, %u]", path,
                          *path ? "." : "", key, min, max);
    *out = (uint32_t)v;
    return 0;
}

static int getstr(const cJSON *o, const char *path, const char *key,
                  char *out, size_t size, cx_err_t *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!x) return 0;
    if (!cJSON_IsString(x) || !*x->valuestring ||
        strlen(x->valuestring) >= size)
        return cx_err_set(err, CX_EINVAL, 0,
                          "%s%s%s: must be a non-empty string", path,
                          *path ? "." : "", key);
    snprintf(out, size, "%s", x->valuestring);
    return 0;
}

static int parse_gpu(const cJSON *o, size_t i, cx_simgpu_t *g,
                     cx_err_t *err) {
    static const char *const keys[] = {
        "type", "count", "unit_s", "mem_gb", "cost_per_hour", "spot",
        "preempt_per_hour", "replace_s", "notice_s", NULL};
    char path[32];
    snprintf(path, sizeof path, "gpus[%zu]", i);
    memset(g, 0, sizeof *g);
    g->replace_s = 300;
    g->notice_s = 30;
    if (only(o, path, keys, err) < 0 ||
        getstr(o, path, "type", g->type, sizeof g->type, err) < 0 ||
        getu32(o, path, "count", 1, 1000000, &g->count, err) < 0 ||
        getnum(o, path, "unit_s", 1e7, &g->unit_s, err) < 0 ||
        getnum(o, path, "mem_gb", 1e6, &g->mem_gb, err) < 0 ||
        getnum(o, path, "cost_per_hour", 1e6, &g->cost_per_hour, err) < 0 ||
        getnum(o, path, "preempt_per_hour", 1e4, &g->preempt_per_hour,
               err) < 0 ||
        getnum(o, path, "replace_s", 1e7, &g->replace_s, err) < 0 ||
        getnum(o, path, "notice_s", 1e5, &g->notice_s, err) < 0)
        return -1;
    const cJSON *spot = cJSON_GetObjectItemCaseSensitive(o, "spot");
    if (spot && !cJSON_IsBool(spot))
        return cx_err_set(err, CX_EINVAL, 0, "%s.spot: must be true/false",
                          path);
    g->spot = spot && cJSON_IsTrue(spot);
    if (!g->type[0] || !g->count || !(g->unit_s > 0))
        return cx_err_set(err, CX_EINVAL, 0,
                          "%s: needs type, count and unit_s > 0", path);
    if (!g->spot) g->preempt_per_hour = 0;
    return 0;
}

static int parse_ckpts(const cJSON *o, cx_simpool_t *p, cx_err_t *err) {
    static const char *const keys[] = {"load_s", "mem_gb", NULL};
    if (!cJSON_IsObject(o))
        return cx_err_set(err, CX_EINVAL, 0, "checkpoints: must be an object");
    for (const cJSON *c = o->child; c; c = c->next) {
        char path[160];
        if (p->nckpts >= CX_SIM_MAX_CKPTS || strlen(c->string) >= 128)
            return cx_err_set(err, CX_EINVAL, 0,
                              "checkpoints: too many or name too long");
        cx_simckpt_t *k = &p->ckpts[p->nckpts++];
        snprintf(path, sizeof path, "checkpoints.%s", c->string);
        snprintf(k->name, sizeof k->name, "%s", c->string);
        k->load_s = -1;
        if (only(c, path, keys, err) < 0 ||
            getnum(c, path, "load_s", 1e7, &k->load_s, err) < 0 ||
            getnum(c, path, "mem_gb", 1e6, &k->mem_gb, err) < 0)
            return -1;
    }
    return 0;
}

static int parse_pass(const cJSON *o, cx_simpool_t *p, cx_err_t *err) {
    if (cJSON_IsNumber(o)) {
        if (!(o->valuedouble > 0) || o->valuedouble > 1)
            return cx_err_set(err, CX_EINVAL, 0, "pass_rate: must be in (0, 1]");
        p->pass_rate = o->valuedouble;
        return 0;
    }
    if (!cJSON_IsObject(o))
        return cx_err_set(err, CX_EINVAL, 0,
                          "pass_rate: a number or {class: rate}");
    for (const cJSON *c = o->child; c; c = c->next) {
        if (p->npass >= CX_SIM_MAX_PASS || strlen(c->string) >= 64 ||
            !cJSON_IsNumber(c) || !(c->valuedouble > 0) || c->valuedouble > 1)
            return cx_err_set(err, CX_EINVAL, 0,
                              "pass_rate.%s: must be in (0, 1]", c->string);
        snprintf(p->pass[p->npass].name, 64, "%s", c->string);
        p->pass[p->npass++].rate = c->valuedouble;
    }
    return 0;
}

static int parse_ref(const cJSON *o, cx_simpool_t *p, cx_err_t *err) {
    static const char *const keys[] = {"width", "height", "steps", "samples",
                                       NULL};
    return only(o, "reference", keys, err) < 0 ||
                   getu32(o, "reference", "width", 1, 1 << 20, &p->ref_width,
                          err) < 0 ||
                   getu32(o, "reference", "height", 1, 1 << 20,
                          &p->ref_height, err) < 0 ||
                   getu32(o, "reference", "steps", 1, 1 << 20, &p->ref_steps,
                          err) < 0 ||
                   getu32(o, "reference", "samples", 1, 1 << 20,
                          &p->ref_samples, err) < 0
               ? -1
               : 0;
}

static int parse_top(const cJSON *o, cx_simpool_t *p, cx_err_t *err) {
    static const char *const keys[] = {
        "name", "reference", "gpus", "checkpoints", "default_load_s",
        "batch_failure_rate", "crash_per_hour", "goodbye_fraction",
        "detect_s", "lease_s", "max_attempts", "slots", "models",
        "time_jitter", "pass_rate", "model", NULL};
    const cJSON *x;
    if (only(o, "", keys, err) < 0 ||
        getstr(o, "", "name", p->name, sizeof p->name, err) < 0 ||
        getnum(o, "", "default_load_s", 1e7, &p->default_load_s, err) < 0 ||
        getnum(o, "", "batch_failure_rate", 0.9, &p->batch_failure_rate,
               err) < 0 ||
        getnum(o, "", "crash_per_hour", 1e4, &p->crash_per_hour, err) < 0 ||
        getnum(o, "", "goodbye_fraction", 1, &p->goodbye_fraction, err) < 0 ||
        getnum(o, "", "detect_s", 1e6, &p->detect_s, err) < 0 ||
        getnum(o, "", "lease_s", 1e7, &p->lease_s, err) < 0 ||
        getu32(o, "", "max_attempts", 1, 100, &p->max_attempts, err) < 0 ||
        getu32(o, "", "slots", 1, 16, &p->slots, err) < 0 ||
        getu32(o, "", "models", 1, 8, &p->models, err) < 0 ||
        getnum(o, "", "time_jitter", 2, &p->time_jitter, err) < 0)
        return -1;
    if ((x = cJSON_GetObjectItemCaseSensitive(o, "reference")) &&
        parse_ref(x, p, err) < 0)
        return -1;
    if ((x = cJSON_GetObjectItemCaseSensitive(o, "checkpoints")) &&
        parse_ckpts(x, p, err) < 0)
        return -1;
    if ((x = cJSON_GetObjectItemCaseSensitive(o, "pass_rate")) &&
        parse_pass(x, p, err) < 0)
        return -1;
    x = cJSON_GetObjectItemCaseSensitive(o, "gpus");
    if (!cJSON_IsArray(x) || !cJSON_GetArraySize(x))
        return cx_err_set(err, CX_EINVAL, 0, "gpus: must be a non-empty list");
    for (const cJSON *g = x->child; g; g = g->next) {
        if (p->ngpus >= CX_SIM_MAX_TYPES)
            return cx_err_set(err, CX_EINVAL, 0, "gpus: at most %d types",
                              CX_SIM_MAX_TYPES);
        if (parse_gpu(g, p->ngpus, &p->gpus[p->ngpus], err) < 0) return -1;
        p->ngpus++;
    }
    if ((x = cJSON_GetObjectItemCaseSensitive(o, "model"))) {
        if (!cJSON_IsObject(x))
            return cx_err_set(err, CX_EINVAL, 0, "model: must be an object");
        p->model_json = cJSON_PrintUnformatted(x);
        if (!p->model_json)
            return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    }
    return 0;
}

int cx_simpool_parse(const char *text, size_t len, cx_simpool_t *p,
                     cx_err_t *err) {
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "pool");
    p->ref_width = p->ref_height = 512;
    p->ref_steps = 50;
    p->ref_samples = 50;
    p->default_load_s = 90;
    p->goodbye_fraction = 1;
    p->detect_s = 10;
    p->lease_s = 120;
    p->max_attempts = 3;
    p->slots = 2;
    p->models = 2;
    p->pass_rate = 1;
    cJSON *o = cJSON_ParseWithLength(text, len);
    if (!o) return cx_err_set(err, CX_EINVAL, 0, "pool file: not valid JSON");
    int rc = parse_top(o, p, err);
    cJSON_Delete(o);
    if (rc < 0) cx_simpool_release(p);
    return rc;
}

void cx_simpool_release(cx_simpool_t *p) {
    if (!p) return;
    free(p->model_json);
    p->model_json = NULL;
}

double cx_simpool_sps(const cx_simpool_t *p, size_t g, uint32_t width,
                      uint32_t height, uint32_t steps) {
    double ref = (double)p->ref_width * p->ref_height * p->ref_steps;
    double mine = (double)width * height * steps;
    return p->gpus[g].unit_s / p->ref_samples * mine / ref;
}

static const cx_simckpt_t *ckpt(const cx_simpool_t *p, const char *name) {
    for (size_t i = 0; i < p->nckpts; i++)
        if (strcmp(p->ckpts[i].name, name) == 0) return &p->ckpts[i];
    return NULL;
}

double cx_simpool_load_s(const cx_simpool_t *p, const char *name) {
    const cx_simckpt_t *k = ckpt(p, name);
    return k && k->load_s >= 0 ? k->load_s : p->default_load_s;
}

double cx_simpool_mem_gb(const cx_simpool_t *p, const char *name) {
    const cx_simckpt_t *k = ckpt(p, name);
    return k ? k->mem_gb : 0;
}

double cx_simpool_pass(const cx_simpool_t *p, const char *class_name) {
    for (size_t i = 0; i < p->npass; i++)
        if (strcmp(p->pass[i].name, class_name) == 0) return p->pass[i].rate;
    return p->pass_rate;
}
