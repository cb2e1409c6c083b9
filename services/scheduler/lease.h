/* Leases and fencing (docs/ARCHITECTURE.md, "Leases and fencing").
 *
 * Every state change of a unit is one Lua script, guarded by the unit's
 * current state and epoch, so a second scheduler replica or a redelivered
 * message cannot apply an effect twice. The scripts derive the keys of the
 * unit's job and worker from the unit hash (standalone Redis, not Cluster).
 * Wall-clock times are Unix ms from the caller. */
#ifndef CX_SCHED_LEASE_H
#define CX_SCHED_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/redis.h"

typedef struct cx_lease {
    uint32_t attempt;
    uint64_t epoch;
    int64_t expiry_ms;
    void *payload; /* the WorkUnit bytes, malloc'd */
    size_t payload_len;
} cx_lease_t;

typedef enum {
    CX_LEASE_OK = 1,
    CX_LEASE_GONE = 0,       /* no longer pending (another replica took it) */
    CX_LEASE_CANCELLED = -1, /* its job is cancelled: unit dropped */
    CX_LEASE_NO_WORKER = -2  /* the worker is gone or draining */
} cx_lease_rc_t;

/* Leases a pending unit to worker in one script: new epoch (INCR cx:epoch),
 * attempt+1, state leased, worker, expiry = now + lease_ms, ZADD cx:leases,
 * SADD cx:worker:<w>:inflight, ZREM cx:pending. Returns a cx_lease_rc_t
 * (out filled on CX_LEASE_OK; free out->payload), or -3 with err. */
int cx_lease_acquire(cx_redis_t *r, const char *unit, const char *worker,
                     int64_t now_ms, int64_t lease_ms, cx_lease_t *out,
                     cx_err_t *err);

/* Undoes a lease whose Assignment could not be sent (epoch must match):
 * back to pending, attempt-1, out of cx:leases and the inflight set. */
int cx_lease_release(cx_redis_t *r, const char *unit, uint64_t epoch,
                     cx_err_t *err);

/* One placement of a batch, and what leasing it did. */
typedef struct cx_lease_req {
    const char *unit, *worker;
    int rc;          /* out: a cx_lease_rc_t */
    cx_lease_t lease; /* out, on CX_LEASE_OK (free lease.payload) */
} cx_lease_req_t;

/* cx_lease_acquire for n placements in one script (one round trip, one
 * EVAL: the live scheduler's batch). Each request's rc is set; 0, or -1
 * with err when the script could not run (then no rc is meaningful and
 * nothing was leased). */
int cx_lease_acquire_batch(cx_redis_t *r, cx_lease_req_t *reqs, size_t n,
                           int64_t now_ms, int64_t lease_ms, cx_err_t *err);
/* cx_lease_release for n (unit, epoch) pairs in one script. */
int cx_lease_release_batch(cx_redis_t *r, const char *const *units,
                           const uint64_t *epochs, size_t n, cx_err_t *err);

/* What ending or failing an attempt did. */
typedef enum {
    CX_END_STAGED,    /* lease ended: samples are staged */
    CX_END_REQUEUED,  /* failed attempt, queued again */
    CX_END_DEAD,      /* failed its last attempt: dead */
    CX_END_RESOLVED,  /* already committed or reserved: nothing to redo */
    CX_END_CANCELLED, /* failed, but its job is cancelled: dropped */
    CX_END_STALE      /* epoch or state did not match: ignored */
} cx_end_t;

/* Details of a dead unit, for the DeadLetter and the JobEvent. */
typedef struct cx_dead {
    char *job;
    char *class_name;
    uint32_t samples;
    void *payload;
    size_t payload_len;
} cx_dead_t;
void cx_dead_free(cx_dead_t *d);

/* A StagedBatch for (unit, epoch) from worker. failure NULL or "": the
 * lease ends (staged). Else the attempt failed with that reason (requeue,
 * or dead after max_attempts; dead is filled then). A stale epoch is
 * ignored, except that the unit leaves `worker`'s inflight set if it is
 * not currently leased to it. Returns a cx_end_t or -1 with err. */
int cx_lease_staged(cx_redis_t *r, const char *unit, uint64_t epoch,
                    const char *worker, const char *failure,
                    uint32_t max_attempts, cx_dead_t *dead, cx_err_t *err);

/* Fails the lease (unit, epoch) with reason: the failed worker joins the
 * unit's excluded list; then requeue, or dead after max_attempts (marked
 * 'd' in cx:job:<job>:resolved unless it has a reservation, resolved_n of
 * its class += sample count, once). Returns a cx_end_t or -1 with err. */
int cx_lease_fail(cx_redis_t *r, const char *unit, uint64_t epoch,
                  const char *reason, uint32_t max_attempts, cx_dead_t *dead,
                  cx_err_t *err);

/* One lease as the sweep sees it. */
typedef struct cx_lease_view {
    char *unit;
    char *worker;
    uint64_t epoch;
    int64_t expiry_ms;
    int alive;  /* the worker's alive key exists */
    int leased; /* the unit hash says state=leased */
    int registered; /* the worker's hash exists (gone: it said goodbye) */
} cx_lease_view_t;

int cx_lease_list(cx_redis_t *r, size_t limit, cx_lease_view_t **out,
                  size_t *n, cx_err_t *err);
void cx_lease_views_free(cx_lease_view_t *v, size_t n);

typedef enum {
    CX_CHECK_OK = 0,      /* lease holds */
    CX_CHECK_EXPIRED = 1, /* past its expiry */
    CX_CHECK_LOST = 2,    /* its worker stopped heart-beating */
    CX_CHECK_ORPHAN = 3,  /* in cx:leases but the unit is not leased */
    CX_CHECK_GOODBYE = 4  /* its worker deregistered (drained): release
                             it without counting an attempt */
} cx_check_t;

/* The sweep's decision for one lease. Pure. */
cx_check_t cx_lease_check(const cx_lease_view_t *v, int64_t now_ms);
const char *cx_lease_check_reason(cx_check_t c);

/* Removes an orphan entry from cx:leases (only if the unit is not leased). */
int cx_lease_drop_orphan(cx_redis_t *r, const char *unit, cx_err_t *err);

#endif
