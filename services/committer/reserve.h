/* The committer's reservation: how many of a unit's passing samples may be
 * committed, so that a class never exceeds its quota (docs/ARCHITECTURE.md,
 * "Accounting"). One Lua script, idempotent per unit: a unit's grant never
 * changes once set, and a dead unit gets none. */
#ifndef CX_COMMITTER_RESERVE_H
#define CX_COMMITTER_RESERVE_H

#include <stdint.h>

#include "cascade/err.h"
#include "cascade/redis.h"

typedef enum {
    CX_RESERVE_GRANTED = 0, /* *grant set (possibly 0: the class is full) */
    CX_RESERVE_FENCED       /* the unit is resolved dead: commit nothing */
} cx_reserve_result_t;

/* Reserves min(passed, quota - granted) for unit of class in job, or
 * returns the grant already recorded for unit. A class with no quota in
 * cx:job:<job>:quota is CX_ENOENT (not retriable). Redis errors are
 * retriable when the connection failed. */
int cx_reserve(cx_redis_t *r, const char *job_id, const char *unit_id,
               const char *class_name, uint32_t passed,
               cx_reserve_result_t *res, uint32_t *grant, cx_err_t *err);

/* After the unit's manifest is final with `committed` samples: lowers a
 * recorded grant above that to it and gives the difference back to the
 * class (a grant taken by an attempt that then lost the manifest race to one
 * with fewer passing samples would otherwise hold quota no one can use).
 * Idempotent; a unit with no grant is left alone. */
int cx_reserve_settle(cx_redis_t *r, const char *job_id, const char *unit_id,
                      const char *class_name, uint32_t committed,
                      cx_err_t *err);

#endif
