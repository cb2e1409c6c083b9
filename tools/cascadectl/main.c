/* cascadectl: submit, watch and manage Cascade jobs.
 *
 *   cascadectl submit FILE        validate a YAML/JSON job file and send it
 *   cascadectl status JOB [--json]
 *   cascadectl watch JOB [--timeout S] [--interval S]
 *   cascadectl list [--json]
 *   cascadectl cancel JOB
 *   cascadectl quarantine list | quarantine release WORKER
 *
 * Exit status: 0 ok, 1 unknown job (watch: the job ended CANCELLED or
 * REJECTED), 2 bad usage or invalid job file, 3 Kafka/Redis failure,
 * 4 watch timed out. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "cascade/config.h"
#include "cascade/log.h"
#include "ctl.h"
#include "quarantine.h"
#include "sched.h"

typedef struct cx_ctl_conf {
    char *kafka_brokers;
    char *redis_url;
    char *log_level;
    int json;
    double timeout;
    double interval;
    char *pool;
    long long seed;
} cx_ctl_conf_t;

static const cx_conf_entry_t cx__ctl_table[] = {
    {"kafka.brokers", CX_CONF_STR, "127.0.0.1:9092", 0, 0,
     "Kafka bootstrap servers (host:port,...)", offsetof(cx_ctl_conf_t, kafka_brokers)},
    {"redis.url", CX_CONF_STR, "redis://127.0.0.1:6379/0", 0, 0,
     "Redis server (redis://[:password@]host:port[/db])", offsetof(cx_ctl_conf_t, redis_url)},
    {"log.level", CX_CONF_STR, "warn", 0, 0, "error, warn, info or debug",
     offsetof(cx_ctl_conf_t, log_level)},
    {"json", CX_CONF_BOOL, "false", 0, 0, "status/list: print JSON",
     offsetof(cx_ctl_conf_t, json)},
    {"timeout", CX_CONF_DOUBLE, "0", 0, 1e9,
     "watch: give up after this many seconds (0: never)", offsetof(cx_ctl_conf_t, timeout)},
    {"interval", CX_CONF_DOUBLE, "1", 0.05, 3600, "watch: refresh period in seconds",
     offsetof(cx_ctl_conf_t, interval)},
    {"pool", CX_CONF_STR, "", 0, 0,
     "plan: the pool file (JSON, see examples/pools/)",
     offsetof(cx_ctl_conf_t, pool)},
    {"seed", CX_CONF_INT, "1", 0, 1000000000, "plan: simulation seed",
     offsetof(cx_ctl_conf_t, seed)},
    CX_CONF_END};

static void usage(FILE *out) {
    fprintf(out,
            "usage: cascadectl COMMAND [ARGS] [--flags]\n"
            "  submit FILE      validate a job file (YAML or JSON) and submit it;\n"
            "                   prints the job id\n"
            "  status JOB       per-class progress [--json]\n"
            "  watch JOB        live progress until the job ends [--timeout S]\n"
            "  list             every job [--json]\n"
            "  cancel JOB       stop issuing work for a job\n"
            "  plan FILE --pool POOL  simulate the job on a pool before\n"
            "                   submitting it: makespan, bound, cost [--json]\n"
            "  model            the scheduler's learned seconds per sample\n"
            "  quarantine list  workers quarantined by the quality gates [--json]\n"
            "  quarantine release WORKER  let the scheduler use it again\n"
            "exit: 0 ok, 1 unknown/failed job, 2 usage or invalid job file,\n"
            "      3 Kafka/Redis error, 4 watch timeout\n"
            "flags: cascadectl --help\n");
}

int main(int argc, char **argv) {
    cx_ctl_conf_t cfg = {0};
    cx_ctl_args_t a;
    cx_err_t err = {0};
    int status = CX_CTL_USAGE;

    if (cx_ctl_args_split(cx__ctl_table, argc, argv, &a, &err) < 0) {
        fprintf(stderr, "cascadectl: %s\n", err.msg);
        usage(stderr);
        return CX_CTL_USAGE;
    }
    int c = cx_conf_load(cx__ctl_table, &cfg, "cascadectl", a.conf_argc, a.conf_argv, &err);
    if (c == 1) {
        usage(stdout);
        status = CX_CTL_OK;
        goto done;
    }
    if (c < 0) {
        fprintf(stderr, "cascadectl: %s\n", err.msg);
        goto done;
    }
    if (cx_ctl_args_check(&a, &err) < 0) {
        fprintf(stderr, "cascadectl: %s\n", err.msg);
        usage(stderr);
        goto done;
    }
    cx_log_level_t lvl = CX_LOG_WARN;
    cx_log_level_parse(cfg.log_level, &lvl);
    cx_log_init("cascadectl", lvl);

    cx_ctl_t ctl = {cfg.kafka_brokers, cfg.redis_url, cfg.json, cfg.timeout,
                    cfg.interval, stdout, stderr};
    if (strcmp(a.command, "submit") == 0) status = cx_ctl_submit(&ctl, a.pos[0]);
    else if (strcmp(a.command, "status") == 0) status = cx_ctl_status(&ctl, a.pos[0]);
    else if (strcmp(a.command, "watch") == 0) status = cx_ctl_watch(&ctl, a.pos[0]);
    else if (strcmp(a.command, "list") == 0) status = cx_ctl_list(&ctl);
    else if (strcmp(a.command, "plan") == 0)
        status = cx_ctl_plan(&ctl, a.pos[0], cfg.pool, (uint64_t)cfg.seed);
    else if (strcmp(a.command, "model") == 0) status = cx_ctl_model(&ctl);
    else if (strcmp(a.command, "quarantine") == 0)
        status = cx_ctl_quarantine(&ctl, a.pos[0], a.npos > 1 ? a.pos[1] : NULL);
    else status = cx_ctl_cancel(&ctl, a.pos[0]);
done:
    cx_conf_free(cx__ctl_table, &cfg);
    cx_ctl_args_release(&a);
    return status;
}
