/* cx_dataset_json: the completed job's summary document. */
#include "dataset.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *sampler_name(int s) {
    switch (s) {
    case CASCADE__V1__SAMPLER__SAMPLER_DDIM: return "ddim";
    case CASCADE__V1__SAMPLER__SAMPLER_EULER: return "euler";
    case CASCADE__V1__SAMPLER__SAMPLER_HEUN: return "heun";
    default: return "unspecified";
    }
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static cJSON *spec_summary(const cx_jobspec_t *spec) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    const Cascade__V1__GenerationParams *g = spec->generation;
    cJSON_AddNumberToObject(o, "total", (double)spec->total_count);
    cJSON_AddNumberToObject(o, "unit_size", spec->unit_size);
    cJSON_AddStringToObject(o, "output_uri", spec->output_uri ? spec->output_uri : "");
    cJSON_AddNumberToObject(o, "priority", spec->priority);
    cJSON_AddNumberToObject(o, "deadline_unix_ms", (double)spec->deadline_unix_ms);
    if (g) {
        cJSON_AddStringToObject(o, "checkpoint", g->checkpoint ? g->checkpoint : "");
        cJSON_AddStringToObject(o, "sampler", sampler_name(g->sampler));
        cJSON_AddNumberToObject(o, "steps", g->steps);
        cJSON_AddNumberToObject(o, "guidance_scale", g->guidance_scale);
        cJSON_AddNumberToObject(o, "eta", g->eta);
        /* 64-bit seeds do not survive a JSON double: keep them exact. */
        char seed[24];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)g->seed_base);
        cJSON_AddStringToObject(o, "seed_base", seed);
        cJSON_AddNumberToObject(o, "width", g->width);
        cJSON_AddNumberToObject(o, "height", g->height);
        cJSON_AddNumberToObject(o, "bit_depth", g->bit_depth);
    }
    if (spec->validation)
        cJSON_AddStringToObject(o, "gate_profile",
                                spec->validation->gate_profile ? spec->validation->gate_profile : "");
    return o;
}

char *cx_dataset_json(const cx_jobspec_t *spec, const cx_jobstate_t *st,
                      const cx_strlist_t *manifests, int64_t done_ms,
                      cx_err_t *err) {
    cx_jobtotals_t t;
    char *out = NULL;
    cJSON *root = cJSON_CreateObject(), *classes, *mlist, *summary;

    if (!root) goto oom;
    cJSON_AddStringToObject(root, "job_id", st->job_id);
    cJSON_AddStringToObject(root, "tenant", spec->tenant ? spec->tenant : "");
    if (!(summary = spec_summary(spec))) goto oom;
    cJSON_AddItemToObject(root, "spec", summary);

    if (!(classes = cJSON_AddArrayToObject(root, "classes"))) goto oom;
    for (size_t i = 0; i < spec->n_classes; i++) {
        const Cascade__V1__ClassTarget *ct = spec->classes[i];
        const cx_classstate_t *c = cx_jobstate_class(st, ct->name);
        cJSON *o = cJSON_CreateObject();
        if (!o) goto oom;
        cJSON_AddItemToArray(classes, o);
        cJSON_AddStringToObject(o, "name", ct->name);
        if (ct->condition && *ct->condition)
            cJSON_AddStringToObject(o, "condition", ct->condition);
        cJSON_AddNumberToObject(o, "quota", c ? (double)c->quota : 0);
        cJSON_AddNumberToObject(o, "committed", c ? (double)c->committed : 0);
        cJSON_AddNumberToObject(o, "units", c ? (double)c->units : 0);
        cJSON_AddNumberToObject(o, "generated", c ? (double)c->generated : 0);
        cJSON_AddNumberToObject(o, "passed", c ? (double)c->passed : 0);
        cJSON_AddNumberToObject(o, "pass_rate",
                                c && c->generated ? (double)c->passed / (double)c->generated : 0);
    }
    cx_jobstate_totals(st, &t);
    cJSON_AddNumberToObject(root, "total", (double)t.committed);
    cJSON_AddNumberToObject(root, "total_quota", (double)t.quota);
    cJSON_AddNumberToObject(root, "units", (double)t.units);
    cJSON_AddNumberToObject(root, "generated", (double)t.generated);
    cJSON_AddNumberToObject(root, "passed", (double)t.passed);

    if (!(mlist = cJSON_AddArrayToObject(root, "manifests"))) goto oom;
    for (size_t i = 0; manifests && i < manifests->len; i++) {
        if (!ends_with(manifests->items[i], ".json")) continue;
        cJSON *s = cJSON_CreateString(manifests->items[i]);
        if (!s) goto oom;
        cJSON_AddItemToArray(mlist, s);
    }
    cJSON_AddNumberToObject(root, "submitted_unix_ms", (double)st->submitted_ms);
    cJSON_AddNumberToObject(root, "done_unix_ms", (double)done_ms);
    out = cJSON_Print(root);
    if (!out) goto oom;
    cJSON_Delete(root);
    return out;
oom:
    cJSON_Delete(root);
    cx_err_set(err, CX_ENOMEM, 0, "out of memory building dataset.json");
    return NULL;
}
