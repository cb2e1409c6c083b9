/* Simulation reports (report.h). */
#include "report.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>

void cx_simrep_duration(char *buf, size_t size, double s) {
    if (!(s >= 0)) snprintf(buf, size, "-");
    else if (s < 120) snprintf(buf, size, "%.0f s", s);
    else if (s < 7200) snprintf(buf, size, "%.1f min", s / 60);
    else snprintf(buf, size, "%.2f h", s / 3600);
}

void cx_simrep_print(FILE *out, const cx_sim_report_t *r,
                     const cx_simjob_t *jobs, size_t njobs, double wall_s) {
    char mk[32], lb[32], w[32];
    cx_simrep_duration(mk, sizeof mk, r->makespan_s);
    cx_simrep_duration(lb, sizeof lb, r->lower_bound_s);
    cx_simrep_duration(w, sizeof w, r->lb_warm_s);
    fprintf(out, "[%s]%s\n", cx_sim_mode_name(r->mode),
            r->finished ? "" : "  NOT FINISHED (time limit)");
    fprintf(out, "  makespan      %s  (%.0f s)\n", mk, r->makespan_s);
    fprintf(out, "  lower bound   %s  (work %.0f s + warm-up %s)\n", lb,
            r->lb_work_s, w);
    fprintf(out, "  ratio         %.4f\n",
            r->lower_bound_s > 0 ? r->makespan_s / r->lower_bound_s : 0);
    fprintf(out, "  class drift   %.3f%% worst once %g%% committed "
                 "(%.3f%% from 0.1%%)\n",
            100 * r->worst_drift, 100 * r->drift_from,
            100 * r->worst_drift_early);
    for (size_t j = 0; j < njobs && njobs > 1; j++) {
        char d[32];
        cx_simrep_duration(d, sizeof d, r->job_done_s[j]);
        fprintf(out, "  job %-12s done at %s%s\n", jobs[j].id, d,
                r->job_late[j] ? "  LATE (missed its deadline)" : "");
    }
    if (njobs == 1 && r->job_late[0])
        fprintf(out, "  LATE: missed its deadline\n");
    fprintf(out, "  units         %" PRIu64 " issued, %" PRIu64
                 " attempts, %" PRIu64 " retries, %" PRIu64
                 " dead letters, %" PRIu64 " released/lost\n",
            r->units_issued, r->attempts, r->retries, r->dead, r->lost);
    fprintf(out, "  samples       %" PRIu64 " generated, %" PRIu64
                 " committed\n",
            r->samples_generated, r->samples_committed);
    fprintf(out, "  events        %" PRIu64 " preemptions, %" PRIu64
                 " crashes, %" PRIu64 " cold loads\n",
            r->preemptions, r->crashes, r->cold_loads);
    fprintf(out, "  utilisation  ");
    for (size_t t = 0; t < r->ntypes; t++)
        fprintf(out, " %s %.1f%% (useful %.1f%%)%s", r->types[t].type,
                100 * r->types[t].busy, 100 * r->types[t].useful,
                t + 1 < r->ntypes ? "," : "");
    fprintf(out, "\n  cost          %.2f (GPU-hours x price per hour)\n", r->cost);
    if (wall_s >= 0) fprintf(out, "  sim wall time %.2f s\n", wall_s);
}

void cx_simrep_compare(FILE *out, const cx_sim_report_t *r, size_t n) {
    fprintf(out, "%-11s %12s %8s %10s %10s %8s\n", "scheduler", "makespan",
            "ratio", "drift", "cost", "dead");
    for (size_t i = 0; i < n; i++) {
        char mk[32];
        cx_simrep_duration(mk, sizeof mk, r[i].makespan_s);
        fprintf(out, "%-11s %12s %8.3f %9.3f%% %10.0f %8" PRIu64 "\n",
                cx_sim_mode_name(r[i].mode), mk,
                r[i].lower_bound_s > 0 ? r[i].makespan_s / r[i].lower_bound_s
                                       : 0,
                100 * r[i].worst_drift, r[i].cost, r[i].dead);
    }
}

static cJSON *one(const cx_sim_report_t *r, double wall_s,
                  const cx_simjob_t *jobs, size_t njobs) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "scheduler", cx_sim_mode_name(r->mode));
    cJSON_AddBoolToObject(o, "finished", r->finished);
    cJSON_AddNumberToObject(o, "makespan_s", r->makespan_s);
    cJSON_AddNumberToObject(o, "lower_bound_s", r->lower_bound_s);
    cJSON_AddNumberToObject(o, "ratio", r->lower_bound_s > 0
                                            ? r->makespan_s / r->lower_bound_s
                                            : 0);
    cJSON_AddNumberToObject(o, "worst_class_drift", r->worst_drift);
    cJSON_AddNumberToObject(o, "drift_from", r->drift_from);
    cJSON_AddNumberToObject(o, "worst_class_drift_early",
                            r->worst_drift_early);
    cJSON_AddNumberToObject(o, "units_issued", (double)r->units_issued);
    cJSON_AddNumberToObject(o, "attempts", (double)r->attempts);
    cJSON_AddNumberToObject(o, "retries", (double)r->retries);
    cJSON_AddNumberToObject(o, "dead_letters", (double)r->dead);
    cJSON_AddNumberToObject(o, "released_or_lost", (double)r->lost);
    cJSON_AddNumberToObject(o, "preemptions", (double)r->preemptions);
    cJSON_AddNumberToObject(o, "crashes", (double)r->crashes);
    cJSON_AddNumberToObject(o, "cold_loads", (double)r->cold_loads);
    cJSON_AddNumberToObject(o, "samples_generated",
                            (double)r->samples_generated);
    cJSON_AddNumberToObject(o, "samples_committed",
                            (double)r->samples_committed);
    cJSON_AddNumberToObject(o, "cost", r->cost);
    if (wall_s >= 0) cJSON_AddNumberToObject(o, "wall_s", wall_s);
    cJSON *u = cJSON_AddObjectToObject(o, "utilisation");
    for (size_t t = 0; u && t < r->ntypes; t++) {
        cJSON *x = cJSON_AddObjectToObject(u, r->types[t].type);
        if (!x) continue;
        cJSON_AddNumberToObject(x, "count", r->types[t].count);
        cJSON_AddNumberToObject(x, "busy", r->types[t].busy);
        cJSON_AddNumberToObject(x, "useful", r->types[t].useful);
    }
    cJSON *js = cJSON_AddArrayToObject(o, "jobs");
    for (size_t j = 0; js && j < njobs; j++) {
        cJSON *x = cJSON_CreateObject();
        if (!x) continue;
        cJSON_AddStringToObject(x, "job_id", jobs[j].id);
        cJSON_AddNumberToObject(x, "done_s", r->job_done_s[j]);
        cJSON_AddBoolToObject(x, "late", r->job_late[j]);
        cJSON_AddItemToArray(js, x);
    }
    return o;
}

char *cx_simrep_json(const cx_sim_report_t *r, const double *wall_s,
                     size_t n, const cx_simjob_t *jobs, size_t njobs) {
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return NULL;
    for (size_t i = 0; i < n; i++) {
        cJSON *o = one(&r[i], wall_s ? wall_s[i] : -1, jobs, njobs);
        if (o) cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_Print(arr);
    cJSON_Delete(arr);
    return s;
}
