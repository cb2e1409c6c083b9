/* The scheduler's pending queue: admission of work units into Redis
 * (cx:unit:<unit>, cx:pending), the class-interleaved FIFO order, and the
 * choice of which pending unit goes to which free worker slot.
 *
 * Order: units of the job seen first come first; within a job, ordinal 0 of
 * every class, then ordinal 1 of every class, ... so every class advances
 * at the same pace. The job's rank is a scheduler counter
 * (cx:sched:jobseq HASH job -> seq, cx:sched:jobseq:next) assigned the
 * first time one of its units arrives. Not thread-safe: one cx_redis_t per
 * thread, as redis.h says. */
#ifndef CX_SCHED_QUEUE_H
#define CX_SCHED_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/codec.h"
#include "cascade/err.h"
#include "cascade/redis.h"

/* Bits of the score: job rank above 2^32, ordinal (clamped to 2^26-1) times
 * 64, class index (clamped to 63). Every score is an integer below 2^53, so
 * a Redis double holds it exactly while the rank stays below 2^21. */
#define CX_QUEUE_ORDINAL_MAX ((1u << 26) - 1)
#define CX_QUEUE_CLASS_MAX 63u

uint64_t cx_queue_score(uint64_t job_rank, uint32_t ordinal,
                        uint32_t class_index);

typedef enum {
    CX_ADMIT_NEW = 1,       /* created and queued */
    CX_ADMIT_DUPLICATE = 0, /* cx:unit:<unit> existed: a planner retry */
    CX_ADMIT_CANCELLED = 2  /* the job is CANCELLED: dropped */
} cx_admit_t;

/* Creates cx:unit:<unit> (state pending, attempt 0, payload = the message
 * bytes) if absent and queues it. Returns a cx_admit_t, or -1 with err
 * (retriable when Redis is away). */
int cx_queue_admit(cx_redis_t *r, const cx_unit_t *u, const void *payload,
                   size_t len, cx_err_t *err);

/* cx_queue_admit for n units in one script (an admission batch; a
 * benchmark's or a restore's bulk load). rcs[i] gets unit i's
 * cx_admit_t. 0, or -1 with err. */
int cx_queue_admit_batch(cx_redis_t *r, const cx_unit_t *const *units,
                         const void *const *payloads, const size_t *lens,
                         size_t n, int *rcs, cx_err_t *err);

/* A pending unit near the head of the queue, as cx_queue_peek sees it. */
typedef struct cx_cand {
    char *unit;
    char *job;
    char *excluded;  /* comma list of workers that failed it, "" if none */
    int cancelled;   /* its job is CANCELLED */
} cx_cand_t;

/* The first `limit` pending units in queue order. *out is malloc'd; free
 * with cx_queue_cands_free. */
int cx_queue_peek(cx_redis_t *r, size_t limit, cx_cand_t **out, size_t *n,
                  cx_err_t *err);
void cx_queue_cands_free(cx_cand_t *c, size_t n);

/* Drops a pending unit of a cancelled job: state cancelled, out of
 * cx:pending (only if it is still pending). */
int cx_queue_cancel(cx_redis_t *r, const char *unit, cx_err_t *err);

/* cx_queue_cancel for n units in one script. */
int cx_queue_cancel_many(cx_redis_t *r, const char *const *units, size_t n,
                         cx_err_t *err);

/* 1 if `worker` appears in the comma list `list`. */
int cx_queue_csv_has(const char *list, const char *worker);

/* The exclusion rule: a unit that `worker` failed (it is in `excluded`)
 * must not go back to it while some other eligible worker (live, not
 * draining) has not failed it; once every eligible worker has failed it,
 * exclusion is ignored so the unit can still run. Returns 1 when the unit
 * must not go to worker. */
int cx_queue_excluded(const char *excluded, const char *worker,
                      const char *const *eligible, size_t neligible);

typedef struct cx_pair {
    size_t cand;   /* index into the candidates */
    size_t worker; /* index into the workers */
} cx_pair_t;

/* Plans one placement round: workers take turns (one slot each per turn,
 * in array order) and each takes the first not yet taken, not cancelled
 * candidate that the exclusion rule allows (eligible = all `workers`).
 * free_slots[i] is worker i's number of free slots. Writes at most `max`
 * pairs, returns how many. Pure. */
size_t cx_queue_plan(const cx_cand_t *cands, size_t ncands,
                     const char *const *workers, const int *free_slots,
                     size_t nworkers, cx_pair_t *out, size_t max);

#endif
