/* cascade-sim: pool files, determinism, bounds, baselines. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/util.h"
#include "sim.h"

static void load_pool(const char *name, cx_simpool_t *p) {
    char path[512], *text = NULL;
    size_t len = 0;
    cx_err_t err = {0};
    snprintf(path, sizeof path, "%s/%s", CX_POOLS_DIR, name);
    ck_assert_int_eq(cx_read_file(path, &text, &len, &err), 0);
    ck_assert_msg(cx_simpool_parse(text, len, p, &err) == 0, "%s", err.msg);
    free(text);
}

static void job(cx_simjob_t *j, const char *id, uint64_t total) {
    memset(j, 0, sizeof *j);
    snprintf(j->id, sizeof j->id, "%s", id);
    snprintf(j->checkpoint, sizeof j->checkpoint, "ref-cxr-v0");
    j->width = j->height = 512;
    j->steps = 50;
    j->unit_size = 50;
    j->nclasses = 3;
    const char *names[] = {"normal", "effusion", "nodule"};
    const double share[] = {0.4, 0.35, 0.25};
    for (int c = 0; c < 3; c++) {
        snprintf(j->names[c], sizeof j->names[c], "%s", names[c]);
        j->quota[c] = (uint64_t)(share[c] * (double)total);
    }
}

static void run(const cx_simpool_t *p, const cx_simjob_t *jobs, size_t n,
                cx_sim_mode_t mode, uint64_t seed, cx_sim_report_t *r) {
    cx_sim_conf_t c;
    cx_err_t err = {0};
    cx_sim_conf_default(&c);
    c.mode = mode;
    c.seed = seed;
    /* On 10 GPUs one unit of a 2000-unit job is 0.05 %: drift is read
     * from 5 % of the job on, where granularity is 1 % per unit. */
    c.drift_from = 0.05;
    ck_assert_msg(cx_sim_run(p, jobs, n, &c, r, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(r->finished, 1);
}

START_TEST(test_deterministic_per_seed) {
    cx_simpool_t p;
    load_pool("small.json", &p);
    cx_simjob_t j;
    job(&j, "det", 50000);
    cx_sim_report_t a, b, c;
    run(&p, &j, 1, CX_SIM_POLICY, 7, &a);
    run(&p, &j, 1, CX_SIM_POLICY, 7, &b);
    run(&p, &j, 1, CX_SIM_POLICY, 8, &c);
    ck_assert_int_eq(memcmp(&a, &b, sizeof a), 0);
    ck_assert(a.makespan_s != c.makespan_s || a.attempts != c.attempts);
    /* The baselines too. */
    run(&p, &j, 1, CX_SIM_NAIVE, 7, &a);
    run(&p, &j, 1, CX_SIM_NAIVE, 7, &b);
    ck_assert_int_eq(memcmp(&a, &b, sizeof a), 0);
    cx_simpool_release(&p);
}
END_TEST

START_TEST(test_bound_and_baselines) {
    cx_simpool_t p;
    load_pool("small.json", &p);
    cx_simjob_t j;
    job(&j, "b", 100000);
    cx_sim_report_t ours, naive, pull;
    run(&p, &j, 1, CX_SIM_POLICY, 3, &ours);
    run(&p, &j, 1, CX_SIM_NAIVE, 3, &naive);
    run(&p, &j, 1, CX_SIM_NAIVE_PULL, 3, &pull);
    /* 2000 units on 10 GPUs: rate 4/38 + 4/52 + 2/70 units/s. */
    double rate = 4.0 / 38 + 4.0 / 52 + 2.0 / 70;
    ck_assert_double_eq_tol(ours.lb_work_s, 2000 / rate, 1e-6);
    ck_assert_double_eq_tol(ours.lower_bound_s, 2000 / rate + 90, 1e-6);
    ck_assert(ours.makespan_s >= ours.lower_bound_s);
    ck_assert(ours.makespan_s < 1.15 * ours.lower_bound_s);
    /* The static split gives slow GPUs as much work as fast ones. */
    ck_assert(naive.makespan_s > 1.15 * ours.makespan_s);
    ck_assert(pull.makespan_s >= 0.98 * ours.makespan_s);
    ck_assert_uint_eq(ours.samples_committed, 100000);
    ck_assert_uint_eq(naive.samples_committed, 100000);
    ck_assert(ours.worst_drift < 0.03);
    ck_assert(pull.worst_drift > ours.worst_drift);
    ck_assert(ours.types[0].useful > ours.types[2].useful * 0.5);
    cx_simpool_release(&p);
}
END_TEST

START_TEST(test_low_pass_rate_over_issued) {
    cx_simpool_t p;
    load_pool("small.json", &p);
    p.pass[0].rate = 0.5;
    snprintf(p.pass[0].name, sizeof p.pass[0].name, "nodule");
    p.npass = 1;
    cx_simjob_t j;
    job(&j, "pass", 50000);
    cx_sim_report_t ours;
    run(&p, &j, 1, CX_SIM_POLICY, 5, &ours);
    ck_assert_uint_eq(ours.samples_committed, 50000);
    /* The bound counts the extra work the low pass rate needs. */
    double rate = 4.0 / 38 + 4.0 / 52 + 2.0 / 70;
    double units = (20000 + 17500 + 12500 / 0.5) / 50.0;
    ck_assert_double_eq_tol(ours.lb_work_s, units / rate, 1e-6);
    /* Over-issued as the pass rate is learnt, not in rounds at the end:
     * the makespan stays near the bound, with little surplus generated. */
    ck_assert(ours.makespan_s < 1.05 * ours.lower_bound_s);
    ck_assert(ours.samples_generated < 1.03 * units * 50);
    cx_simpool_release(&p);
}
END_TEST

START_TEST(test_deadline_job_overtakes_in_sim) {
    cx_simpool_t p;
    load_pool("small.json", &p);
    cx_simjob_t jobs[2];
    job(&jobs[0], "bulk", 200000);
    job(&jobs[1], "rush", 10000);
    snprintf(jobs[0].tenant, sizeof jobs[0].tenant, "a");
    snprintf(jobs[1].tenant, sizeof jobs[1].tenant, "b");
    jobs[1].deadline_s = 1800;
    cx_sim_report_t ours, naive;
    run(&p, jobs, 2, CX_SIM_POLICY, 11, &ours);
    run(&p, jobs, 2, CX_SIM_NAIVE_PULL, 11, &naive);
    ck_assert_int_eq(ours.job_late[1], 0);
    ck_assert(ours.job_done_s[1] < 1800);
    /* FIFO runs the bulk job first and misses the deadline. */
    ck_assert_int_eq(naive.job_late[1], 1);
    cx_simpool_release(&p);
}
END_TEST

START_TEST(test_pool_file_errors) {
    cx_simpool_t p;
    cx_err_t err = {0};
    const char *bad[] = {
        "{}",
        "{\"gpus\": []}",
        "{\"gpus\": [{\"type\": \"H100\", \"count\": 0, \"unit_s\": 1}]}",
        "{\"gpus\": [{\"type\": \"H100\", \"count\": 2, \"unit_s\": 1, "
        "\"speed\": 3}]}",
        "{\"gpus\": [{\"type\": \"H100\", \"count\": 2, \"unit_s\": 1}], "
        "\"batch_failure_rate\": 2}",
        "{\"gpus\": [{\"type\": \"H100\", \"count\": 2, \"unit_s\": 1}], "
        "\"pass_rate\": {\"a\": 0}}",
        "not json"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(cx_simpool_parse(bad[i], strlen(bad[i]), &p, &err) < 0,
                      "accepted %s", bad[i]);
    const char *ok = "{\"gpus\": [{\"type\": \"X\", \"count\": 2, "
                     "\"unit_s\": 10}], \"model\": {\"default_load_s\": 5}}";
    ck_assert_int_eq(cx_simpool_parse(ok, strlen(ok), &p, &err), 0);
    ck_assert_ptr_nonnull(p.model_json);
    ck_assert_double_eq_tol(cx_simpool_sps(&p, 0, 512, 512, 100), 0.4, 1e-12);
    cx_simpool_release(&p);
}
END_TEST

int main(void) {
    Suite *s = suite_create("sim");
    TCase *tc = tcase_create("sim");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_deterministic_per_seed);
    tcase_add_test(tc, test_bound_and_baselines);
    tcase_add_test(tc, test_low_pass_rate_over_issued);
    tcase_add_test(tc, test_deadline_job_overtakes_in_sim);
    tcase_add_test(tc, test_pool_file_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
