/* A job's state as kept in Redis (docs/ARCHITECTURE.md, "Redis keys"),
 * shared by the planner, the indexer and cascadectl.
 *
 * cx_jobstate_load reads cx:job:<job> and its per-class hashes in one Lua
 * script, so the snapshot is consistent: the planner's arithmetic
 * (committed + issued - resolved_n) never mixes two moments. The pure parts
 * (cx_jobstate_new/_set/_complete/_progress_pack) need no Redis and are what
 * the tests exercise. */
#ifndef CASCADE_JOBSTATE_H
#define CASCADE_JOBSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/codec.h"
#include "cascade/err.h"
#include "cascade/names.h"
#include "cascade/redis.h"
#include "cascade/util.h"

#define CX_JOB_ACCEPTED "ACCEPTED"
#define CX_JOB_DONE "DONE"
#define CX_JOB_CANCELLED "CANCELLED"
#define CX_JOB_REJECTED "REJECTED"

#define CX_JOBS_ACTIVE_KEY "cx:jobs"
#define CX_JOBS_ALL_KEY "cx:jobs:all"

typedef struct cx_classstate {
    char name[CX_NAME_MAX + 1];
    uint64_t quota;
    /* indexer, once per committed unit */
    uint64_t committed, units, generated, passed;
    /* planned samples of resolved units (indexer: committed, scheduler: dead) */
    uint64_t resolved_n;
    /* planner, after the units were flushed to Kafka */
    uint64_t issued, next_ordinal, round;
} cx_classstate_t;

/* Where the committed units' time went, summed once per counted unit from
 * their CommitRecords (hash cx:job:<job>:timing). The worker's phases are
 * thread-milliseconds (samples run in parallel); validate and commit are
 * each stage's wall time per unit; to_verdict and to_commit are wall time
 * from staging to the verdict and from the verdict to the commit, i.e.
 * processing plus messaging and queueing. */
typedef struct cx_jobtiming {
    uint64_t units, samples;
    double generate_ms, encode_ms, write_ms, load_ms;
    double validate_ms, commit_ms, to_verdict_ms, to_commit_ms;
} cx_jobtiming_t;

typedef struct cx_jobstate {
    char job_id[CX_NAME_MAX + 1];
    char state[16];          /* "" when cx:job:<job> does not exist */
    char *reason;            /* "" when unset; never NULL */
    char *tenant;            /* "" when unset; never NULL */
    uint8_t *spec;           /* packed JobSpec as accepted; NULL if absent */
    size_t spec_len;
    int64_t submitted_ms, done_ms, deadline_ms;
    int32_t priority;
    uint64_t total_quota;
    size_t nclasses;
    cx_classstate_t *classes; /* spec order, then classes only counters name */
    cx_jobtiming_t timing;
} cx_jobstate_t;

/* Writes "cx:job:<job>" (suffix NULL) or "cx:job:<job>:<suffix>" into buf.
 * Returns -1 if it does not fit. */
int cx_jobstate_key(char *buf, size_t size, const char *job_id,
                    const char *suffix);

/* An empty state for job_id (no classes, state ""). NULL when out of
 * memory or job_id is too long. */
cx_jobstate_t *cx_jobstate_new(const char *job_id);
void cx_jobstate_free(cx_jobstate_t *st); /* NULL is fine */

/* Applies one field of one hash: hash is NULL for cx:job:<job> itself, else
 * the key suffix ("quota", "committed", "units", "generated", "passed",
 * "issued", "resolved_n", "next_ordinal", "round"). The main hash's
 * `classes` field creates the classes in spec order; a counter of a class
 * not listed there appends it. Unknown hashes and fields are ignored.
 * Returns -1 only when out of memory or on a malformed class name. */
int cx_jobstate_set(cx_jobstate_t *st, const char *hash, const char *field,
                    const char *value, size_t value_len, cx_err_t *err);

/* The class named name, or NULL. */
cx_classstate_t *cx_jobstate_class(const cx_jobstate_t *st, const char *name);

/* Loads the job. Returns 1 with *out set, 0 when Redis knows nothing of the
 * job (no hash and no counters; *out NULL), -1 with err. */
int cx_jobstate_load(cx_redis_t *r, const char *job_id, cx_jobstate_t **out,
                     cx_err_t *err);

/* Job ids: active_only lists cx:jobs (sorted by name), else cx:jobs:all in
 * submission order. Appends to out. */
int cx_jobstate_list(cx_redis_t *r, int active_only, cx_strlist_t *out,
                     cx_err_t *err);

/* 1 when the job has classes and every class's committed count reached its
 * quota. */
int cx_jobstate_complete(const cx_jobstate_t *st);

typedef struct cx_jobtotals {
    uint64_t quota, committed, units, generated, passed, issued;
} cx_jobtotals_t;
void cx_jobstate_totals(const cx_jobstate_t *st, cx_jobtotals_t *t);

/* Counts a CommitRecord exactly once (HSETNX resolved <unit> c, and only
 * when that was new, HINCRBY committed/units/generated/passed/resolved_n of
 * its class and the timing sums, all in one script). Returns 1 when counted now, 0 when the unit
 * was already resolved (a redelivery, or a dead unit), -1 with err. */
int cx_jobstate_count_commit(cx_redis_t *r, const cx_commit_t *c,
                             cx_err_t *err);

/* The cascade.v1.Progress of the state, packed (malloc'd). total_quota is
 * the sum of class quotas (the hash's total_quota when no quota is known). */
/* (timing: fields of cx_jobtiming_t by name, via cx_jobstate_set with hash
 * "timing".) */
uint8_t *cx_jobstate_progress_pack(const cx_jobstate_t *st, int64_t now_ms,
                                   size_t *len, cx_err_t *err);

#endif
