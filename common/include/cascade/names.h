/* Names that reach store paths, and the deterministic ids of work units. */
#ifndef CASCADE_NAMES_H
#define CASCADE_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"

#define CX_NAME_MAX 64

/* A class name, condition, job id or tenant that may become a path component:
 * 1..CX_NAME_MAX characters of [A-Za-z0-9._-], not "." or "..", not starting
 * with '.' or '-'. On failure err says which rule the name broke. `what`
 * names the field in the message ("class name"). */
int cx_name_check(const char *what, const char *name, cx_err_t *err);

/* unit_id = first 16 bytes of sha256("job_id\0class\0ordinal\0generation"),
 * as 32 lowercase hex characters: re-planning yields the same ids. */
void cx_unit_id(const char *job_id, const char *class_name, uint32_t ordinal,
                uint32_t generation, char out[33]);

/* The unit's seed: a 64-bit mix of (seed_base, class_index, ordinal,
 * generation). Distinct units get distinct seeds; replacement units (higher
 * generation) get fresh ones. */
uint64_t cx_unit_seed(uint64_t seed_base, uint32_t class_index,
                      uint32_t ordinal, uint32_t generation);

/* A job id for a spec that gave none: "job-<yyyymmdd>-<8 hex random>". */
void cx_job_id_new(char out[CX_NAME_MAX + 1]);

#endif
