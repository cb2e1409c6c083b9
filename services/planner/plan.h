/* The planner's arithmetic, without I/O: how many samples each class still
 * needs issued, and the units (ordinal, generation, size) that cover it.
 *
 * Per class, expected = committed + issued - resolved_n: what is committed
 * plus what is still out in units nobody resolved yet. When expected is
 * below the quota the difference is issued as new units of at most
 * unit_size samples, ordinals continuing from next_ordinal. The first batch
 * of a class (next_ordinal 0) is generation 0; every later batch is a
 * replacement round, generation round + 1, so its seeds are fresh. The plan
 * is a pure function of the snapshot: re-planning after a crash between
 * producing and recording yields the same unit ids. */
#ifndef CASCADE_PLANNER_PLAN_H
#define CASCADE_PLANNER_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/codec.h"
#include "cascade/err.h"
#include "cascade/jobstate.h"

typedef struct cx_plan_unit {
    uint32_t class_index; /* position in the spec's class list */
    uint32_t ordinal;
    uint32_t generation;
    uint32_t n; /* sample_count */
} cx_plan_unit_t;

typedef struct cx_plan_class {
    uint64_t shortfall;        /* samples issued by this plan */
    size_t units;              /* units issued by this plan */
    uint64_t old_next_ordinal; /* the snapshot's, for compare-and-set */
    uint64_t next_ordinal;     /* after this plan */
    uint64_t round;            /* after this plan */
    int replacement;           /* the batch is a replacement round */
} cx_plan_class_t;

typedef struct cx_plan {
    size_t nclasses;
    cx_plan_class_t *classes; /* indexed like the spec's classes */
    size_t nunits;
    cx_plan_unit_t *units; /* class-interleaved: c0 c1 c2 c0 c1 c2 ... */
    size_t replacement_units;
    uint64_t replacement_samples;
} cx_plan_t;

/* Samples class c still needs issued to reach quota (0 when on track or
 * ahead). A state with resolved_n > issued (counters from before a Redis
 * loss) is read as nothing outstanding. */
uint64_t cx_plan_shortfall(const cx_classstate_t *c, uint64_t quota);

/* Plans units for n classes: states[i] is class i's state (NULL: nothing
 * known yet), quotas[i] its quota. unit_size >= 1. Fills *plan (release with
 * cx_plan_release). Fails on ordinals or rounds beyond 32 bits. */
int cx_plan_make(const cx_classstate_t *const *states, const uint64_t *quotas,
                 size_t n, uint32_t unit_size, cx_plan_t *plan, cx_err_t *err);
void cx_plan_release(cx_plan_t *plan);

/* The WorkUnit of plan unit u of the (validated, defaulted) spec, packed.
 * unit_id (33 bytes) receives its id. */
uint8_t *cx_plan_unit_pack(const cx_jobspec_t *spec, const cx_plan_unit_t *u,
                           int64_t now_ms, char unit_id[33], size_t *len,
                           cx_err_t *err);

#endif
