/* cx_plan_*: shortfall and unit issuing plan (see plan.h). */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

#include "cascade/names.h"

uint64_t cx_plan_shortfall(const cx_classstate_t *c, uint64_t quota) {
    if (!c) return quota;
    uint64_t outstanding = c->issued > c->resolved_n ? c->issued - c->resolved_n : 0;
    uint64_t expected = c->committed + outstanding;
    return expected < quota ? quota - expected : 0;
}

void cx_plan_release(cx_plan_t *plan) {
    if (!plan) return;
    free(plan->classes);
    free(plan->units);
    memset(plan, 0, sizeof *plan);
}

int cx_plan_make(const cx_classstate_t *const *states, const uint64_t *quotas,
                 size_t n, uint32_t unit_size, cx_plan_t *plan, cx_err_t *err) {
    memset(plan, 0, sizeof *plan);
    if (unit_size == 0)
        return cx_err_set(err, CX_EINVAL, 0, "unit_size must be at least 1");
    if (n == 0) return 0;
    plan->classes = calloc(n, sizeof *plan->classes);
    if (!plan->classes) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    plan->nclasses = n;

    size_t total_units = 0, max_units = 0;
    for (size_t i = 0; i < n; i++) {
        const cx_classstate_t *s = states[i];
        cx_plan_class_t *pc = &plan->classes[i];
        uint64_t next = s ? s->next_ordinal : 0, round = s ? s->round : 0;
        pc->old_next_ordinal = next;
        pc->next_ordinal = next;
        pc->round = round;
        pc->shortfall = cx_plan_shortfall(s, quotas[i]);
        if (pc->shortfall == 0) continue;
        pc->units = (size_t)((pc->shortfall + unit_size - 1) / unit_size);
        pc->replacement = next > 0;
        if (pc->replacement) pc->round = round + 1;
        pc->next_ordinal = next + pc->units;
        if (pc->next_ordinal > UINT32_MAX || pc->round > UINT32_MAX) {
            cx_plan_release(plan);
            return cx_err_set(err, CX_EINVAL, 0,
                              "class %zu: ordinals or rounds beyond 2^32", i);
        }
        total_units += pc->units;
        if (pc->units > max_units) max_units = pc->units;
        if (pc->replacement) {
            plan->replacement_units += pc->units;
            plan->replacement_samples += pc->shortfall;
        }
    }
    if (total_units == 0) return 0;
    plan->units = calloc(total_units, sizeof *plan->units);
    if (!plan->units) {
        cx_plan_release(plan);
        return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    }
    /* Round-robin over the classes: the scheduler's FIFO then sees every
     * class early instead of one class's whole quota first. */
    for (size_t k = 0; k < max_units; k++) {
        for (size_t i = 0; i < n; i++) {
            cx_plan_class_t *pc = &plan->classes[i];
            if (k >= pc->units) continue;
            cx_plan_unit_t *u = &plan->units[plan->nunits++];
            uint64_t before = (uint64_t)k * unit_size;
            uint64_t left = pc->shortfall - before;
            u->class_index = (uint32_t)i;
            u->ordinal = (uint32_t)(pc->old_next_ordinal + k);
            u->generation = (uint32_t)pc->round;
            u->n = (uint32_t)(left < unit_size ? left : unit_size);
        }
    }
    return 0;
}

uint8_t *cx_plan_unit_pack(const cx_jobspec_t *spec, const cx_plan_unit_t *u,
                           int64_t now_ms, char unit_id[33], size_t *len,
                           cx_err_t *err) {
    Cascade__V1__WorkUnit w = CASCADE__V1__WORK_UNIT__INIT;
    if (u->class_index >= spec->n_classes) {
        cx_err_set(err, CX_EINVAL, 0, "class index %u out of range",
                   u->class_index);
        return NULL;
    }
    const Cascade__V1__ClassTarget *ct = spec->classes[u->class_index];
    uint64_t seed_base = spec->generation ? spec->generation->seed_base : 0;

    cx_unit_id(spec->job_id, ct->name, u->ordinal, u->generation, unit_id);
    w.job_id = spec->job_id;
    w.unit_id = unit_id;
    w.class_name = ct->name;
    w.class_index = u->class_index;
    w.condition = ct->condition;
    w.ordinal = u->ordinal;
    w.generation = u->generation;
    w.seed = cx_unit_seed(seed_base, u->class_index, u->ordinal, u->generation);
    w.sample_count = u->n;
    w.params = spec->generation;
    w.validation = spec->validation;
    w.output_uri = spec->output_uri;
    w.priority = spec->priority;
    w.deadline_unix_ms = spec->deadline_unix_ms;
    w.tenant = spec->tenant;
    w.issued_unix_ms = now_ms;
    return cx_pack(&w.base, len, err);
}
