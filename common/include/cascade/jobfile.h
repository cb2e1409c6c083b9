/* Job files: the YAML or JSON a user gives to `cascadectl submit`.
 *
 *   job_id: cxr-demo            # optional; assigned when absent
 *   tenant: acme
 *   priority: 5
 *   deadline: 2026-12-01T18:00:00Z   # or unix milliseconds
 *   output: file:///data/cascade      # optional
 *   total: 3000
 *   classes:
 *     - {name: normal, proportion: 0.4}
 *     - {name: effusion, proportion: 0.35}
 *     - {name: nodule, count: 750}
 *   generation: {checkpoint: ref-cxr-v0, sampler: ddim, steps: 50,
 *                guidance_scale: 1.0, seed: 42, width: 512, height: 512,
 *                bit_depth: 16, eta: 0}
 *   validation: {gate_profile: default, thresholds: {clip_fraction: 0.01},
 *                privacy_budget: 0.0}
 *   unit_size: 32
 *
 * JSON with the same keys is accepted; a document starting with '{' is read
 * as JSON. Unknown keys, wrong types and negative numbers are errors naming
 * the key's path ("classes[2].count: must be a positive integer"). */
#ifndef CASCADE_JOBFILE_H
#define CASCADE_JOBFILE_H

#include <stddef.h>

#include "cascade/codec.h"
#include "cascade/err.h"

/* Parses text into a new JobSpec (free with
 * cascade__v1__job_spec__free_unpacked(spec, NULL)). Does not validate
 * beyond syntax and types: call cx_jobspec_apply_defaults and
 * cx_jobspec_validate next. */
cx_jobspec_t *cx_jobfile_parse(const char *text, size_t len, cx_err_t *err);
/* Frees a spec built by cx_jobfile_parse (not by protobuf-c unpack). */
void cx_jobfile_free(cx_jobspec_t *spec);

#endif
