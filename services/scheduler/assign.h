/* The Assignment sent to a worker, built around the stored WorkUnit bytes
 * without decoding them: the other fields are packed by protobuf-c and
 * field 301 (unit) is appended as the length-delimited payload (protobuf
 * accepts fields in any order), so a placement costs no unpack/repack of
 * the unit. No I/O. */
#ifndef CX_SCHED_ASSIGN_H
#define CX_SCHED_ASSIGN_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/util.h"

/* Appends the packed Assignment to out (cleared first). */
int cx_assign_pack(const void *unit, size_t unit_len, const char *worker,
                   uint32_t attempt, uint64_t epoch, int64_t expiry_ms,
                   int64_t now_ms, cx_buf_t *out, cx_err_t *err);

#endif
