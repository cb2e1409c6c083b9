/* cascade-planner: cascade.jobs + cascade.progress -> cascade.units and
 * cascade.job-events. main only wires; the logic is in planner.c/plan.c. */
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/log.h"
#include "cascade/service.h"
#include "planner.h"

typedef struct cx_planner_conf {
    cx_common_conf_t common;
    long long reconcile_ms;
    char *checkpoint_dir;
} cx_planner_conf_t;

static const cx_conf_entry_t cx__planner_table[] = {
    CX_CONF_COMMON(cx_planner_conf_t),
    {"reconcile-ms", CX_CONF_INT, "1000", 50, 3600000,
     "Period of the full reconcile of every active job (milliseconds)",
     offsetof(cx_planner_conf_t, reconcile_ms)},
    {"checkpoint_dir", CX_CONF_STR, NULL, 0, 0,
     "Directory of checkpoint files <name>.cxck that job specs may name "
     "(class names are checked against their headers); the built-in "
     "ref-cxr-v0 needs none",
     offsetof(cx_planner_conf_t, checkpoint_dir)},
    CX_CONF_END};

/* Handles m until it is done, dead-lettered, or the service stops.
 * Retriable failures back off and retry the same message; others are
 * dead-lettered with the reason so one bad message cannot stall the topic. */
static void handle(cx_service_t *svc, cx_planner_t *pl, cx_consumer_t *c,
                   cx_msg_t *m) {
    for (unsigned attempt = 0;; attempt++) {
        cx_err_t e = {0};
        int is_jobs = strcmp(m->topic, CX_TOPIC_JOBS) == 0;
        int rc = is_jobs ? cx_planner_handle_job(pl, m, &e)
                         : cx_planner_handle_progress(pl, m, &e);
        if (rc == 0) {
            cx_consumer_done(c, m);
            return;
        }
        if (!e.retriable) {
            CX_ERROR("message failed topic=%s offset=%" PRId64 " reason=\"%s\"",
                     m->topic, m->offset, e.msg);
            cx_err_t de = {0};
            if (cx_deadletter(svc->producer, "planner", m, e.msg, NULL, NULL,
                              &de) == 0) {
                cx_consumer_done(c, m);
                return;
            }
            CX_WARN("dead letter failed reason=\"%s\"", de.msg);
        } else {
            CX_WARN("retrying topic=%s offset=%" PRId64 " attempt=%u reason=\"%s\"",
                    m->topic, m->offset, attempt, e.msg);
        }
        if (cx_backoff_sleep(attempt, 100, 10000, cx_service_stop_flag())) {
            cx_msg_free(m); /* redelivered after restart */
            return;
        }
    }
}

int main(int argc, char **argv) {
    cx_planner_conf_t cfg = {0};
    cx_service_t svc;
    cx_err_t err = {0};
    cx_planner_t *pl = NULL;
    cx_consumer_t *cons = NULL;
    static const char *const topics[] = {CX_TOPIC_JOBS, CX_TOPIC_PROGRESS, NULL};
    int status = 1;

    int c = cx_service_configure(cx__planner_table, &cfg, "planner", argc, argv);
    if (c != 0) {
        cx_conf_free(cx__planner_table, &cfg);
        return c == 1 ? 0 : 2;
    }
    /* cx_checkpoint_has_class (spec validation) reads file checkpoints
     * from $CASCADE_CHECKPOINT_DIR: make a file or flag setting visible. */
    if (cfg.checkpoint_dir && *cfg.checkpoint_dir)
        setenv("CASCADE_CHECKPOINT_DIR", cfg.checkpoint_dir, 1);
    if (cx_service_init(&svc, "planner", &cfg.common,
                        CX_SVC_PRODUCER | CX_SVC_REDIS | CX_SVC_STORE, &err) < 0) {
        CX_ERROR("startup failed reason=\"%s\"", err.msg);
        goto fail_service;
    }
    if (!(pl = cx_planner_new(&svc, &err))) {
        CX_ERROR("startup failed reason=\"%s\"", err.msg);
        goto fail_planner;
    }
    cons = cx_consumer_new(cfg.common.kafka_brokers, "cascade-planner", topics, &err);
    if (!cons) {
        CX_ERROR("startup failed reason=\"%s\"", err.msg);
        goto fail_consumer;
    }
    CX_INFO("planner running reconcile_ms=%lld", cfg.reconcile_ms);

    double next_reconcile = 0;
    unsigned poll_fail = 0;
    while (!cx_service_stopping()) {
        double now = cx_mono_ms();
        if (now >= next_reconcile) {
            cx_err_t e = {0};
            if (cx_planner_reconcile_all(pl, &e) < 0)
                CX_WARN("reconcile incomplete reason=\"%s\"", e.msg);
            next_reconcile = cx_mono_ms() + (double)cfg.reconcile_ms;
            now = cx_mono_ms();
        }
        int wait = (int)(next_reconcile - now);
        if (wait < 1) wait = 1;
        if (wait > 200) wait = 200;
        cx_service_ready_when_assigned(&svc, cons);
        cx_msg_t *m = NULL;
        int rc = cx_consumer_poll(cons, wait, &m, &err);
        if (rc < 0) {
            CX_WARN("poll failed reason=\"%s\"", err.msg);
            if (!err.retriable) break;
            cx_backoff_sleep(poll_fail++, 100, 5000, cx_service_stop_flag());
            continue;
        }
        poll_fail = 0;
        if (rc == 1) handle(&svc, pl, cons, m);
    }
    status = cx_service_stopping() ? 0 : 1;

    cx_consumer_destroy(cons);
fail_consumer:
    cx_planner_destroy(pl);
fail_planner:
    cx_service_shutdown(&svc);
fail_service:
    cx_conf_free(cx__planner_table, &cfg);
    return status;
}
