/* Decoding and validation of cascade.v1 messages: bytes in, value or error
 * out, no I/O. Each decoder checks the fields its consumers rely on, so a
 * message of another type (which unpacks to an empty value, see the field
 * ranges in cascade.proto) fails on its first required field. */
#include "cascade/codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/names.h"

#define CX__MAX_GUIDANCE 100.0

/* ---- field checks ------------------------------------------------------ */

static int is_set(const char *s) { return s && *s; }

static int need_name(const char *field, const char *s, cx_err_t *err) {
    if (!is_set(s)) return cx_err_set(err, CX_EDECODE, 0, "missing %s", field);
    if (cx_name_check(field, s, err) != 0) {
        if (err) err->code = CX_EDECODE;
        return -1;
    }
    return 0;
}

static int opt_name(const char *field, const char *s, cx_err_t *err) {
    return is_set(s) ? need_name(field, s, err) : 0;
}

static int is_hex(const char *s, size_t n) {
    if (!s || strlen(s) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int need_unit_id(const char *field, const char *s, cx_err_t *err) {
    if (!is_set(s)) return cx_err_set(err, CX_EDECODE, 0, "missing %s", field);
    if (!is_hex(s, 32))
        return cx_err_set(err, CX_EDECODE, 0,
                          "%s '%.40s' is not 32 lowercase hex characters",
                          field, s);
    return 0;
}

static int need_text(const char *field, const char *s, cx_err_t *err) {
    return is_set(s) ? 0
                     : cx_err_set(err, CX_EDECODE, 0, "missing %s", field);
}

static const char *sampler_name(int s) {
    switch (s) {
    case CASCADE__V1__SAMPLER__SAMPLER_DDIM: return "ddim";
    case CASCADE__V1__SAMPLER__SAMPLER_EULER: return "euler";
    case CASCADE__V1__SAMPLER__SAMPLER_HEUN: return "heun";
    }
    return NULL;
}

/* Generation parameters as a worker needs them (also the submit rules). */
static int check_params(const char *pfx, const Cascade__V1__GenerationParams *g,
                        cx_errcode_t code, cx_err_t *err) {
    char f[96];
    if (!g) return cx_err_set(err, code, 0, "missing %s", pfx);
    snprintf(f, sizeof f, "%s.checkpoint", pfx);
    if (!is_set(g->checkpoint)) return cx_err_set(err, code, 0, "missing %s", f);
    if (cx_name_check(f, g->checkpoint, err) != 0) goto fail;
    if (!sampler_name((int)g->sampler))
        return cx_err_set(err, code, 0,
                          "%s.sampler %d is not ddim, euler or heun", pfx,
                          (int)g->sampler);
    if (g->steps < 1 || g->steps > CX_MAX_STEPS)
        return cx_err_set(err, code, 0, "%s.steps %u is outside [1, %d]", pfx,
                          g->steps, CX_MAX_STEPS);
    if (!isfinite(g->guidance_scale) || g->guidance_scale < 0 ||
        g->guidance_scale > CX__MAX_GUIDANCE)
        return cx_err_set(err, code, 0,
                          "%s.guidance_scale %g is outside [0, %g]", pfx,
                          g->guidance_scale, CX__MAX_GUIDANCE);
    if (!isfinite(g->eta) || g->eta < 0 || g->eta > 1)
        return cx_err_set(err, code, 0, "%s.eta %g is outside [0, 1]", pfx,
                          g->eta);
    if (g->width < CX_MIN_SIDE || g->width > CX_MAX_SIDE)
        return cx_err_set(err, code, 0, "%s.width %u is outside [%d, %d]", pfx,
                          g->width, CX_MIN_SIDE, CX_MAX_SIDE);
    if (g->height < CX_MIN_SIDE || g->height > CX_MAX_SIDE)
        return cx_err_set(err, code, 0, "%s.height %u is outside [%d, %d]",
                          pfx, g->height, CX_MIN_SIDE, CX_MAX_SIDE);
    if (g->bit_depth != 8 && g->bit_depth != 16)
        return cx_err_set(err, code, 0, "%s.bit_depth %u is not 8 or 16", pfx,
                          g->bit_depth);
    for (size_t i = 0; i < g->n_conditioning; i++) {
        const Cascade__V1__KeyValue *kv = g->conditioning[i];
        if (!kv || !is_set(kv->key))
            return cx_err_set(err, code, 0, "%s.conditioning[%zu]: missing key",
                              pfx, i);
    }
    return 0;
fail:
    if (err) err->code = code;
    return -1;
}

static int check_unit(const char *pfx, const cx_unit_t *u, cx_err_t *err) {
    char f[64];
#define F(name) (snprintf(f, sizeof f, "%s%s", pfx, name), f)
    if (!u) return cx_err_set(err, CX_EDECODE, 0, "missing %s", *pfx ? "unit" : "unit");
    if (need_name(F("job_id"), u->job_id, err) ||
        need_unit_id(F("unit_id"), u->unit_id, err) ||
        need_name(F("class_name"), u->class_name, err) ||
        opt_name(F("condition"), u->condition, err))
        return -1;
    if (u->sample_count < 1 || u->sample_count > CX_MAX_UNIT_SIZE)
        return cx_err_set(err, CX_EDECODE, 0, "%s %u is outside [1, %d]",
                          F("sample_count"), u->sample_count,
                          CX_MAX_UNIT_SIZE);
    if (check_params(F("params"), u->params, CX_EDECODE, err) != 0) return -1;
#undef F
    return 0;
}

/* ---- decoders ----------------------------------------------------------- */

typedef int (*check_fn)(const void *msg, cx_err_t *err);

static void *decode(const ProtobufCMessageDescriptor *d, const char *tname,
                    const void *data, size_t len, check_fn check,
                    cx_err_t *err) {
    if (!data || len == 0) {
        cx_err_set(err, CX_EDECODE, 0, "empty message (expected %s)", tname);
        return NULL;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, data);
    if (!m) {
        cx_err_set(err, CX_EDECODE, 0, "not a valid %s protobuf (%zu bytes)",
                   tname, len);
        return NULL;
    }
    if (check(m, err) != 0) {
        if (err) cx_err_wrap(err, "%s", tname);
        protobuf_c_message_free_unpacked(m, NULL);
        return NULL;
    }
    return m;
}

static int check_jobspec(const void *msg, cx_err_t *err) {
    const cx_jobspec_t *s = msg;
    if (s->action == CASCADE__V1__JOB_ACTION__JOB_ACTION_CANCEL)
        return need_name("job_id", s->job_id, err);
    if (s->action != CASCADE__V1__JOB_ACTION__JOB_ACTION_SUBMIT)
        return cx_err_set(err, CX_EDECODE, 0, "unknown action %d",
                          (int)s->action);
    /* A submission may leave job_id to the planner, but must have classes. */
    if (opt_name("job_id", s->job_id, err)) return -1;
    if (s->n_classes == 0)
        return cx_err_set(err, CX_EDECODE, 0, "missing classes");
    for (size_t i = 0; i < s->n_classes; i++)
        if (!s->classes[i] || !is_set(s->classes[i]->name))
            return cx_err_set(err, CX_EDECODE, 0, "missing classes[%zu].name",
                              i);
    return 0;
}

static int check_unit_msg(const void *msg, cx_err_t *err) {
    return check_unit("", msg, err);
}

static int check_assignment(const void *msg, cx_err_t *err) {
    const cx_assignment_t *a = msg;
    if (!a->unit) return cx_err_set(err, CX_EDECODE, 0, "missing unit");
    return check_unit("unit.", a->unit, err) ||
           need_name("worker_id", a->worker_id, err);
}

static int check_staged(const void *msg, cx_err_t *err) {
    const cx_staged_t *b = msg;
    if (!b->unit) return cx_err_set(err, CX_EDECODE, 0, "missing unit");
    if (check_unit("unit.", b->unit, err) ||
        need_name("worker_id", b->worker_id, err))
        return -1;
    if (b->n_samples > b->unit->sample_count)
        return cx_err_set(err, CX_EDECODE, 0,
                          "%zu samples for a unit of %u", b->n_samples,
                          b->unit->sample_count);
    for (size_t i = 0; i < b->n_samples; i++) {
        const Cascade__V1__StagedSample *s = b->samples[i];
        if (!s || !is_set(s->key))
            return cx_err_set(err, CX_EDECODE, 0, "missing samples[%zu].key",
                              i);
        if (s->index >= b->unit->sample_count)
            return cx_err_set(err, CX_EDECODE, 0,
                              "samples[%zu].index %u is outside [0, %u)", i,
                              s->index, b->unit->sample_count);
    }
    if (b->n_samples == 0 && !is_set(b->failure))
        return cx_err_set(err, CX_EDECODE, 0,
                          "no samples and no failure reason");
    return 0;
}

static int check_verdict(const void *msg, cx_err_t *err) {
    const cx_verdict_t *v = msg;
    if (!v->unit) return cx_err_set(err, CX_EDECODE, 0, "missing unit");
    if (check_unit("unit.", v->unit, err) ||
        need_name("worker_id", v->worker_id, err))
        return -1;
    if (v->n_samples > v->unit->sample_count)
        return cx_err_set(err, CX_EDECODE, 0, "%zu samples for a unit of %u",
                          v->n_samples, v->unit->sample_count);
    if (v->passed > v->n_samples)
        return cx_err_set(err, CX_EDECODE, 0, "passed %u exceeds %zu samples",
                          v->passed, v->n_samples);
    for (size_t i = 0; i < v->n_samples; i++) {
        const Cascade__V1__SampleVerdict *s = v->samples[i];
        if (!s || !is_set(s->key))
            return cx_err_set(err, CX_EDECODE, 0, "missing samples[%zu].key",
                              i);
        if (s->pass && !is_hex(s->sha256, 64))
            return cx_err_set(err, CX_EDECODE, 0,
                              "samples[%zu].sha256 is not 64 lowercase hex "
                              "characters",
                              i);
    }
    return 0;
}

static int check_commit(const void *msg, cx_err_t *err) {
    const cx_commit_t *c = msg;
    if (need_name("job_id", c->job_id, err) ||
        need_unit_id("unit_id", c->unit_id, err) ||
        need_name("class_name", c->class_name, err) ||
        opt_name("condition", c->condition, err) ||
        need_text("manifest_key", c->manifest_key, err))
        return -1;
    if (c->committed > c->passed || c->passed > c->generated)
        return cx_err_set(err, CX_EDECODE, 0,
                          "counts out of order: committed %u, passed %u, "
                          "generated %u",
                          c->committed, c->passed, c->generated);
    return 0;
}

static int check_progress(const void *msg, cx_err_t *err) {
    const cx_progress_t *p = msg;
    if (need_name("job_id", p->job_id, err)) return -1;
    for (size_t i = 0; i < p->n_classes; i++) {
        char f[48];
        snprintf(f, sizeof f, "classes[%zu].name", i);
        if (!p->classes[i] || need_name(f, p->classes[i]->name, err)) {
            if (!p->classes[i]) cx_err_set(err, CX_EDECODE, 0, "missing %s", f);
            return -1;
        }
    }
    return 0;
}

static int check_jobevent(const void *msg, cx_err_t *err) {
    const cx_jobevent_t *e = msg;
    if (need_name("job_id", e->job_id, err)) return -1;
    /* Any value the schema defines (blocks are added over time). */
    if (e->type == CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_UNSPECIFIED ||
        !protobuf_c_enum_descriptor_get_value(
            &cascade__v1__job_event_type__descriptor, (int)e->type))
        return cx_err_set(err, CX_EDECODE, 0, "type %d is not a known event",
                          (int)e->type);
    if (is_set(e->unit_id) && need_unit_id("unit_id", e->unit_id, err))
        return -1;
    return 0;
}

static int check_deadletter(const void *msg, cx_err_t *err) {
    const cx_deadletter_t *d = msg;
    return need_text("source_topic", d->source_topic, err) ||
           need_text("reason", d->reason, err);
}

#define CX__DECODER(fn, type, desc, tname, check)                             \
    type *fn(const void *data, size_t len, cx_err_t *err) {                   \
        return decode(&desc, tname, data, len, check, err);                   \
    }

CX__DECODER(cx_decode_jobspec, cx_jobspec_t, cascade__v1__job_spec__descriptor,
            "cascade.v1.JobSpec", check_jobspec)
CX__DECODER(cx_decode_unit, cx_unit_t, cascade__v1__work_unit__descriptor,
            "cascade.v1.WorkUnit", check_unit_msg)
CX__DECODER(cx_decode_assignment, cx_assignment_t,
            cascade__v1__assignment__descriptor, "cascade.v1.Assignment",
            check_assignment)
CX__DECODER(cx_decode_staged, cx_staged_t,
            cascade__v1__staged_batch__descriptor, "cascade.v1.StagedBatch",
            check_staged)
CX__DECODER(cx_decode_verdict, cx_verdict_t, cascade__v1__verdict__descriptor,
            "cascade.v1.Verdict", check_verdict)
CX__DECODER(cx_decode_commit, cx_commit_t,
            cascade__v1__commit_record__descriptor, "cascade.v1.CommitRecord",
            check_commit)
CX__DECODER(cx_decode_progress, cx_progress_t,
            cascade__v1__progress__descriptor, "cascade.v1.Progress",
            check_progress)
CX__DECODER(cx_decode_jobevent, cx_jobevent_t,
            cascade__v1__job_event__descriptor, "cascade.v1.JobEvent",
            check_jobevent)
CX__DECODER(cx_decode_deadletter, cx_deadletter_t,
            cascade__v1__dead_letter__descriptor, "cascade.v1.DeadLetter",
            check_deadletter)

/* ---- submissions -------------------------------------------------------- */

static int inval_name(const char *field, const char *s, cx_err_t *err) {
    if (!is_set(s)) return cx_err_set(err, CX_EINVAL, 0, "missing %s", field);
    return cx_name_check(field, s, err);
}

int cx_jobspec_validate(const cx_jobspec_t *spec, cx_class_known_fn known,
                        void *ctx, cx_err_t *err) {
    if (!spec) return cx_err_set(err, CX_EINVAL, 0, "no job spec");
    if (inval_name("job_id", spec->job_id, err)) return -1;
    if (spec->action == CASCADE__V1__JOB_ACTION__JOB_ACTION_CANCEL) return 0;
    if (spec->action != CASCADE__V1__JOB_ACTION__JOB_ACTION_SUBMIT)
        return cx_err_set(err, CX_EINVAL, 0, "action %d is unknown",
                          (int)spec->action);
    if (is_set(spec->tenant) && cx_name_check("tenant", spec->tenant, err))
        return -1;
    if (spec->deadline_unix_ms < 0)
        return cx_err_set(err, CX_EINVAL, 0, "deadline %lld is negative",
                          (long long)spec->deadline_unix_ms);
    if (is_set(spec->output_uri))
        for (const char *p = spec->output_uri; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                return cx_err_set(err, CX_EINVAL, 0,
                                  "output_uri contains a control character");
    if (spec->total_count > CX_MAX_TOTAL)
        return cx_err_set(err, CX_EINVAL, 0,
                          "total_count %llu exceeds %llu",
                          (unsigned long long)spec->total_count,
                          (unsigned long long)CX_MAX_TOTAL);
    if (spec->n_classes == 0)
        return cx_err_set(err, CX_EINVAL, 0, "classes: at least one is needed");
    if (spec->n_classes > CX_MAX_CLASSES)
        return cx_err_set(err, CX_EINVAL, 0, "classes: %zu exceeds %d",
                          spec->n_classes, CX_MAX_CLASSES);

    double psum = 0;
    uint64_t csum = 0;
    size_t nprop = 0, ncount = 0;
    for (size_t i = 0; i < spec->n_classes; i++) {
        const Cascade__V1__ClassTarget *c = spec->classes[i];
        char f[64];
        snprintf(f, sizeof f, "classes[%zu].name", i);
        if (!c || inval_name(f, c ? c->name : NULL, err)) {
            if (!c) cx_err_set(err, CX_EINVAL, 0, "missing %s", f);
            return -1;
        }
        snprintf(f, sizeof f, "classes[%zu].condition", i);
        if (is_set(c->condition) && cx_name_check(f, c->condition, err))
            return -1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec->classes[j]->name, c->name) == 0)
                return cx_err_set(err, CX_EINVAL, 0,
                                  "duplicate class '%s' (classes[%zu] and "
                                  "classes[%zu])",
                                  c->name, j, i);
        if (c->count > 0 && c->proportion != 0)
            return cx_err_set(err, CX_EINVAL, 0,
                              "classes[%zu] '%s': give a count or a "
                              "proportion, not both",
                              i, c->name);
        if (c->count > 0) {
            if (c->count > CX_MAX_TOTAL)
                return cx_err_set(err, CX_EINVAL, 0,
                                  "classes[%zu] '%s': count %llu exceeds %llu",
                                  i, c->name, (unsigned long long)c->count,
                                  (unsigned long long)CX_MAX_TOTAL);
            csum += c->count; /* no overflow: each <= 1e9, at most 64 */
            ncount++;
        } else if (c->proportion == 0) {
            return cx_err_set(err, CX_EINVAL, 0,
                              "classes[%zu] '%s': needs a count > 0 or a "
                              "proportion in (0, 1]",
                              i, c->name);
        } else {
            if (!isfinite(c->proportion) || c->proportion <= 0 ||
                c->proportion > 1)
                return cx_err_set(err, CX_EINVAL, 0,
                                  "classes[%zu] '%s': proportion %g is "
                                  "outside (0, 1]",
                                  i, c->name, c->proportion);
            psum += c->proportion;
            nprop++;
        }
    }
    if (nprop == 0) {
        if (spec->total_count == 0)
            return cx_err_set(err, CX_EINVAL, 0, "total_count is 0");
        if (csum != spec->total_count)
            return cx_err_set(err, CX_EINVAL, 0,
                              "class counts sum to %llu, not total_count %llu",
                              (unsigned long long)csum,
                              (unsigned long long)spec->total_count);
    } else {
        if (spec->total_count == 0)
            return cx_err_set(err, CX_EINVAL, 0,
                              "total_count is 0: proportions need a total");
        if (csum > spec->total_count)
            return cx_err_set(err, CX_EINVAL, 0,
                              "class counts sum to %llu, more than total_count "
                              "%llu",
                              (unsigned long long)csum,
                              (unsigned long long)spec->total_count);
        double share = psum + (double)csum / (double)spec->total_count;
        if (fabs(share - 1.0) > 1e-6) {
            if (ncount == 0)
                return cx_err_set(err, CX_EINVAL, 0,
                                  "proportions sum to %.9g, not 1", psum);
            return cx_err_set(err, CX_EINVAL, 0,
                              "proportions sum to %.9g and counts to %llu of "
                              "total_count %llu: together %.9g, not 1",
                              psum, (unsigned long long)csum,
                              (unsigned long long)spec->total_count, share);
        }
    }

    if (!spec->generation)
        return cx_err_set(err, CX_EINVAL, 0, "missing generation");
    if (check_params("generation", spec->generation, CX_EINVAL, err)) return -1;
    if (spec->unit_size < 1 || spec->unit_size > CX_MAX_UNIT_SIZE)
        return cx_err_set(err, CX_EINVAL, 0, "unit_size %u is outside [1, %d]",
                          spec->unit_size, CX_MAX_UNIT_SIZE);
    const Cascade__V1__ValidationCriteria *v = spec->validation;
    if (v) {
        if (is_set(v->gate_profile) &&
            cx_name_check("validation.gate_profile", v->gate_profile, err))
            return -1;
        for (size_t i = 0; i < v->n_thresholds; i++) {
            const Cascade__V1__Threshold *t = v->thresholds[i];
            char f[64];
            snprintf(f, sizeof f, "validation.thresholds[%zu]", i);
            if (!t || inval_name(f, t ? t->gate : NULL, err)) {
                if (!t) cx_err_set(err, CX_EINVAL, 0, "missing %s", f);
                return -1;
            }
            if (!isfinite(t->value))
                return cx_err_set(err, CX_EINVAL, 0,
                                  "validation.thresholds '%s' is not finite",
                                  t->gate);
        }
        if (!isfinite(v->privacy_budget) || v->privacy_budget < 0)
            return cx_err_set(err, CX_EINVAL, 0,
                              "validation.privacy_budget %g is negative or "
                              "not finite",
                              v->privacy_budget);
        if (!isfinite(v->max_frechet_distance) || v->max_frechet_distance < 0)
            return cx_err_set(err, CX_EINVAL, 0,
                              "validation.max_frechet_distance %g is negative "
                              "or not finite",
                              v->max_frechet_distance);
    }
    if (known)
        for (size_t i = 0; i < spec->n_classes; i++)
            if (!known(ctx, spec->generation->checkpoint,
                       spec->classes[i]->name))
                return cx_err_set(err, CX_EINVAL, 0,
                                  "unknown class '%s' for checkpoint '%s'",
                                  spec->classes[i]->name,
                                  spec->generation->checkpoint);
    return 0;
}

uint64_t cx_jobspec_quotas(const cx_jobspec_t *spec, uint64_t *quotas) {
    uint64_t csum = 0, total = spec->total_count;
    size_t n = spec->n_classes;
    int any_prop = 0;
    for (size_t i = 0; i < n; i++) {
        quotas[i] = spec->classes[i]->count;
        csum += spec->classes[i]->count;
        if (spec->classes[i]->count == 0) any_prop = 1;
    }
    if (!any_prop || total <= csum) return csum;

    /* Proportions become counts by the largest-remainder method over what
     * the explicit counts leave; ties go to the earlier class, so every
     * service computes the same quotas. */
    uint64_t rest = total - csum, given = 0;
    long double psum = 0;
    for (size_t i = 0; i < n; i++)
        if (spec->classes[i]->count == 0) psum += spec->classes[i]->proportion;
    if (psum <= 0) return csum;
    long double *rem = calloc(n, sizeof *rem);
    for (size_t i = 0; i < n; i++) {
        if (spec->classes[i]->count != 0) continue;
        long double ideal = (long double)rest * spec->classes[i]->proportion / psum;
        uint64_t fl = (uint64_t)floorl(ideal);
        if (fl > rest - given) fl = rest - given;
        quotas[i] = fl;
        given += fl;
        if (rem) rem[i] = ideal - (long double)fl;
    }
    while (given < rest) {
        /* Each pass hands one to the largest remainder not yet served. */
        size_t best = n;
        for (size_t i = 0; i < n; i++) {
            if (spec->classes[i]->count != 0) continue;
            if (rem && rem[i] < 0) continue;
            if (best == n || (rem && rem[i] > rem[best])) best = i;
        }
        if (best == n) { /* every class served once: reset and go round */
            for (size_t i = 0; i < n; i++)
                if (rem && rem[i] < 0) rem[i] += 2;
            continue;
        }
        quotas[best]++;
        given++;
        if (rem) rem[best] -= 2; /* served: below any unserved remainder */
    }
    free(rem);
    return csum + given;
}

static char *dup_default(char *cur, const char *def, int *oom) {
    if (is_set(cur)) return cur;
    char *s = strdup(def);
    if (!s) {
        *oom = 1;
        return cur;
    }
    /* The old value is protobuf-c's shared empty string or a malloc'd "". */
    if (cur && cur != protobuf_c_empty_string) free(cur);
    return s;
}

int cx_jobspec_apply_defaults(cx_jobspec_t *spec, cx_err_t *err) {
    int oom = 0;
    if (!is_set(spec->job_id)) {
        char id[CX_NAME_MAX + 1];
        cx_job_id_new(id);
        spec->job_id = dup_default(spec->job_id, id, &oom);
    }
    if (spec->action != CASCADE__V1__JOB_ACTION__JOB_ACTION_SUBMIT)
        return oom ? cx_err_set(err, CX_ENOMEM, 0, "out of memory") : 0;
    if (spec->unit_size == 0) spec->unit_size = CX_DEFAULT_UNIT_SIZE;
    if (!spec->generation) {
        spec->generation = malloc(sizeof *spec->generation);
        if (!spec->generation)
            return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        cascade__v1__generation_params__init(spec->generation);
    }
    Cascade__V1__GenerationParams *g = spec->generation;
    g->checkpoint = dup_default(g->checkpoint, "ref-cxr-v0", &oom);
    if (g->sampler == CASCADE__V1__SAMPLER__SAMPLER_UNSPECIFIED)
        g->sampler = CASCADE__V1__SAMPLER__SAMPLER_DDIM;
    if (g->steps == 0) g->steps = 50;
    if (g->guidance_scale == 0) g->guidance_scale = 1.0;
    if (g->width == 0) g->width = 512;
    if (g->height == 0) g->height = 512;
    if (g->bit_depth == 0) g->bit_depth = 16;
    if (!spec->validation) {
        spec->validation = malloc(sizeof *spec->validation);
        if (!spec->validation)
            return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        cascade__v1__validation_criteria__init(spec->validation);
    }
    spec->validation->gate_profile =
        dup_default(spec->validation->gate_profile, "default", &oom);
    if (spec->total_count == 0 && spec->n_classes > 0) {
        uint64_t sum = 0;
        int all = 1;
        for (size_t i = 0; i < spec->n_classes; i++) {
            const Cascade__V1__ClassTarget *c = spec->classes[i];
            if (!c || c->count == 0 || c->count > CX_MAX_TOTAL) {
                all = 0;
                break;
            }
            sum += c->count;
        }
        if (all) spec->total_count = sum;
    }
    return oom ? cx_err_set(err, CX_ENOMEM, 0, "out of memory") : 0;
}

uint8_t *cx_pack(const ProtobufCMessage *msg, size_t *len, cx_err_t *err) {
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        cx_err_set(err, CX_ENOMEM, 0, "pack: out of memory (%zu bytes)", n);
        return NULL;
    }
    *len = protobuf_c_message_pack(msg, buf);
    return buf;
}
