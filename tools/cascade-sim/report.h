/* cascade-sim's and `cascadectl plan`'s output: one simulation report as
 * text or JSON, and the side-by-side comparison. */
#ifndef CX_SIM_REPORT_H
#define CX_SIM_REPORT_H

#include <stdio.h>

#include "sim.h"

/* "5.37 h", "42 min", "38 s" */
void cx_simrep_duration(char *buf, size_t size, double s);
/* The block for one mode (wall_s: its run time on this machine, < 0 to
 * leave out). */
void cx_simrep_print(FILE *out, const cx_sim_report_t *r,
                     const cx_simjob_t *jobs, size_t njobs, double wall_s);
/* One line per mode: makespan, ratio to the bound, drift, cost. */
void cx_simrep_compare(FILE *out, const cx_sim_report_t *r, size_t n);
/* The reports as one JSON document (malloc'd; NULL out of memory). */
char *cx_simrep_json(const cx_sim_report_t *r, const double *wall_s,
                     size_t n, const cx_simjob_t *jobs, size_t njobs);

#endif
