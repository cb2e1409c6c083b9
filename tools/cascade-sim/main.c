/* cascade-sim: simulate jobs on a pool with the Cascade scheduler and the
 * naive baselines.
 *
 *   cascade-sim --pool POOL.json --job JOB.yaml [--job ...] [--seed N]
 *               [--mode all|cascade|naive|naive-pull] [--json]
 *               [--drift-from F] [--max-hours H]
 *
 * Exit: 0 every simulation finished, 1 one hit the time limit, 2 usage or
 * bad input. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/util.h"
#include "report.h"
#include "sim.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: cascade-sim --pool POOL.json --job JOB.yaml [--job ...]\n"
            "                   [--seed N] [--mode all|cascade|naive|naive-pull]\n"
            "                   [--json] [--drift-from F] [--max-hours H]\n");
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"pool", required_argument, NULL, 'p'},
        {"job", required_argument, NULL, 'j'},
        {"seed", required_argument, NULL, 's'},
        {"mode", required_argument, NULL, 'm'},
        {"json", no_argument, NULL, 'J'},
        {"drift-from", required_argument, NULL, 'd'},
        {"max-hours", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *pool_path = NULL, *job_paths[CX_SIM_MAX_JOBS];
    const char *mode = "all";
    size_t njobs = 0;
    int json = 0, c;
    cx_sim_conf_t conf;
    cx_sim_conf_default(&conf);
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': pool_path = optarg; break;
        case 'j':
            if (njobs == CX_SIM_MAX_JOBS) {
                fprintf(stderr, "cascade-sim: at most %d jobs\n",
                        CX_SIM_MAX_JOBS);
                return 2;
            }
            job_paths[njobs++] = optarg;
            break;
        case 's': conf.seed = strtoull(optarg, NULL, 10); break;
        case 'm': mode = optarg; break;
        case 'J': json = 1; break;
        case 'd': conf.drift_from = atof(optarg); break;
        case 'H': conf.max_sim_s = atof(optarg) * 3600; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!pool_path || !njobs || optind != argc) {
        usage(stderr);
        return 2;
    }
    cx_sim_mode_t modes[3];
    size_t nmodes = 0;
    if (!strcmp(mode, "all") || !strcmp(mode, "cascade")) modes[nmodes++] = CX_SIM_POLICY;
    if (!strcmp(mode, "all") || !strcmp(mode, "naive")) modes[nmodes++] = CX_SIM_NAIVE;
    if (!strcmp(mode, "all") || !strcmp(mode, "naive-pull")) modes[nmodes++] = CX_SIM_NAIVE_PULL;
    if (!nmodes) {
        fprintf(stderr, "cascade-sim: unknown mode %s\n", mode);
        return 2;
    }

    cx_err_t err = {0};
    char *text = NULL;
    size_t len = 0;
    cx_simpool_t pool;
    cx_simjob_t jobs[CX_SIM_MAX_JOBS];
    int64_t start = cx_now_ms();
    if (cx_read_file(pool_path, &text, &len, &err) < 0 ||
        cx_simpool_parse(text, len, &pool, &err) < 0) {
        fprintf(stderr, "cascade-sim: %s: %s\n", pool_path, err.msg);
        free(text);
        return 2;
    }
    free(text);
    for (size_t j = 0; j < njobs; j++)
        if (cx_simjob_load(job_paths[j], start, &jobs[j], &err) < 0) {
            fprintf(stderr, "cascade-sim: %s\n", err.msg);
            cx_simpool_release(&pool);
            return 2;
        }

    cx_sim_report_t reps[3];
    double wall[3];
    int rc = 0;
    for (size_t i = 0; i < nmodes; i++) {
        conf.mode = modes[i];
        double t0 = cx_mono_ms();
        if (cx_sim_run(&pool, jobs, njobs, &conf, &reps[i], &err) < 0) {
            fprintf(stderr, "cascade-sim: %s\n", err.msg);
            cx_simpool_release(&pool);
            return 2;
        }
        wall[i] = (cx_mono_ms() - t0) / 1000.0;
        if (!reps[i].finished) rc = 1;
        if (!json) {
            cx_simrep_print(stdout, &reps[i], jobs, njobs, wall[i]);
            fflush(stdout);
        }
    }
    if (json) {
        char *s = cx_simrep_json(reps, wall, nmodes, jobs, njobs);
        if (s) printf("%s\n", s);
        free(s);
    } else if (nmodes > 1) {
        printf("\n");
        cx_simrep_compare(stdout, reps, nmodes);
    }
    cx_simpool_release(&pool);
    return rc;
}
