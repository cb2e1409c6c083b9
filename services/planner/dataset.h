/* dataset.json: the summary the planner writes once a job is complete. */
#ifndef CASCADE_PLANNER_DATASET_H
#define CASCADE_PLANNER_DATASET_H

#include <stdint.h>

#include "cascade/codec.h"
#include "cascade/err.h"
#include "cascade/jobstate.h"
#include "cascade/util.h"

/* The JSON document (malloc'd, NUL-terminated): job_id, tenant, spec
 * summary (generation parameters, unit_size, output_uri), per-class quota
 * and counts in spec order, totals, the manifest keys, submitted and done
 * times. manifests holds store keys; only *.json entries are listed. */
char *cx_dataset_json(const cx_jobspec_t *spec, const cx_jobstate_t *st,
                      const cx_strlist_t *manifests, int64_t done_ms,
                      cx_err_t *err);

#endif
