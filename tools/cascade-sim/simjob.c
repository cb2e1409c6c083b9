/* Jobs for the simulator from JobSpecs and job files (sim.h). */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/jobfile.h"
#include "cascade/util.h"

int cx_simjob_from_spec(const cx_jobspec_t *spec, int64_t start_ms,
                        cx_simjob_t *out, cx_err_t *err) {
    memset(out, 0, sizeof *out);
    if (spec->n_classes == 0 || spec->n_classes > CX_SIM_MAX_CLASSES)
        return cx_err_set(err, CX_EINVAL, 0, "job needs 1 to %d classes",
                          CX_SIM_MAX_CLASSES);
    const Cascade__V1__GenerationParams *g = spec->generation;
    if (!g || !g->checkpoint || !*g->checkpoint)
        return cx_err_set(err, CX_EINVAL, 0, "job has no checkpoint");
    snprintf(out->id, sizeof out->id, "%s",
             spec->job_id && *spec->job_id ? spec->job_id : "job");
    snprintf(out->tenant, sizeof out->tenant, "%s",
             spec->tenant ? spec->tenant : "");
    snprintf(out->checkpoint, sizeof out->checkpoint, "%s", g->checkpoint);
    out->priority = spec->priority;
    if (spec->deadline_unix_ms > 0) {
        double d = (double)(spec->deadline_unix_ms - start_ms) / 1000.0;
        out->deadline_s = d > 0 ? d : 1e-3; /* already past: late at once */
    }
    out->width = g->width;
    out->height = g->height;
    out->steps = g->steps;
    out->unit_size = spec->unit_size ? spec->unit_size : CX_DEFAULT_UNIT_SIZE;
    out->nclasses = spec->n_classes;
    cx_jobspec_quotas(spec, out->quota);
    for (size_t c = 0; c < spec->n_classes; c++)
        snprintf(out->names[c], sizeof out->names[c], "%s",
                 spec->classes[c]->name);
    return 0;
}

int cx_simjob_load(const char *path, int64_t start_ms, cx_simjob_t *out,
                   cx_err_t *err) {
    char *text = NULL;
    size_t len = 0;
    if (cx_read_file(path, &text, &len, err) < 0) return -1;
    cx_jobspec_t *spec = cx_jobfile_parse(text, len, err);
    free(text);
    if (!spec) return cx_err_wrap(err, "%s", path);
    int rc = -1;
    if (cx_jobspec_apply_defaults(spec, err) < 0 ||
        cx_jobspec_validate(spec, NULL, NULL, err) < 0) {
        cx_err_wrap(err, "%s", path);
        goto done;
    }
    rc = cx_simjob_from_spec(spec, start_ms, out, err);
done:
    cx_jobfile_free(spec);
    return rc;
}
