/* cascade-scheduler: wiring only (scheduler.c and the policy library hold
 * the logic). */
#include <stddef.h>
#include <stdlib.h>

#include "cascade/config.h"
#include "cascade/kafka.h"
#include "cascade/log.h"
#include "cascade/service.h"
#include "cascade/util.h"
#include "scheduler.h"

typedef struct conf {
    cx_common_conf_t common;
    long long max_inflight;
    long long lease_ms;
    long long max_attempts;
    long long place_ms;
    long long sweep_ms;
    long long scan;
    long long prune_ms;
    long long registry_ms;
    long long jobs_ms;
    long long eta_ms;
    long long reconcile_ms;
    double prefetch_s;
    double urgent_margin_s;
    char *model_file;
} conf_t;

static const cx_conf_entry_t table[] = {
    CX_CONF_COMMON(conf_t),
    {"max_inflight", CX_CONF_INT, "2", 1, 16,
     "Units in flight per worker at most", offsetof(conf_t, max_inflight)},
    {"lease_ms", CX_CONF_INT, "120000", 100, 86400000,
     "Lease length: a unit not staged by then is re-issued",
     offsetof(conf_t, lease_ms)},
    {"max_attempts", CX_CONF_INT, "3", 1, 100,
     "Attempts before a unit is dead-lettered", offsetof(conf_t, max_attempts)},
    {"place_ms", CX_CONF_INT, "100", 10, 10000,
     "Placement round period (also after every message)",
     offsetof(conf_t, place_ms)},
    {"sweep_ms", CX_CONF_INT, "250", 10, 60000,
     "Expiry sweep period", offsetof(conf_t, sweep_ms)},
    {"scan", CX_CONF_INT, "4096", 1, 100000,
     "Placements per round at most (leased by one script)",
     offsetof(conf_t, scan)},
    {"prune_ms", CX_CONF_INT, "600000", 1000, 86400000,
     "Forget a dead worker with nothing in flight after this silence",
     offsetof(conf_t, prune_ms)},
    {"registry_ms", CX_CONF_INT, "1000", 50, 600000,
     "Worker registry refresh period (GPU types, memory, warm checkpoints, "
     "draining, quarantine)",
     offsetof(conf_t, registry_ms)},
    {"jobs_ms", CX_CONF_INT, "2000", 50, 600000,
     "Job refresh period (priority, deadline, quotas, pass rates, state)",
     offsetof(conf_t, jobs_ms)},
    {"eta_ms", CX_CONF_INT, "5000", 100, 600000,
     "Estimate publication period (cx:job:<job>:eta, deadline events)",
     offsetof(conf_t, eta_ms)},
    {"reconcile_ms", CX_CONF_INT, "10000", 100, 3600000,
     "Period of the check of cx:pending against the in-memory index",
     offsetof(conf_t, reconcile_ms)},
    {"prefetch_s", CX_CONF_DOUBLE, "10", 0, 86400,
     "A busy worker gets its next unit this long before its expected start",
     offsetof(conf_t, prefetch_s)},
    {"urgent_margin_s", CX_CONF_DOUBLE, "0", -1e9, 1e9,
     "A job whose deadline slack under a fair share of the pool is below "
     "this goes ahead of the others",
     offsetof(conf_t, urgent_margin_s)},
    {"model_file", CX_CONF_STR, "", 0, 0,
     "Throughput priors (JSON: seconds per sample per GPU type, checkpoint "
     "load times and memory); learned online from there",
     offsetof(conf_t, model_file)},
    CX_CONF_END};

/* Runs fn until it succeeds or the service stops; logs retriable errors. */
static int handle(cx_sched_t *s, cx_consumer_t *c, cx_msg_t *m) {
    for (unsigned attempt = 0;; attempt++) {
        cx_err_t err = {0};
        if (cx_sched_on_message(s, m, &err) == 0) {
            cx_consumer_done(c, m);
            return 0;
        }
        if (!err.retriable) {
            CX_ERROR("fatal error topic=%s offset=%lld err=\"%s\"", m->topic,
                     (long long)m->offset, err.msg);
            cx_msg_free(m);
            return -1;
        }
        CX_WARN("retrying message topic=%s offset=%lld err=\"%s\"", m->topic,
                (long long)m->offset, err.msg);
        if (cx_backoff_sleep(attempt, 100, 5000, cx_service_stop_flag())) {
            cx_msg_free(m); /* redelivered after restart */
            return 0;
        }
    }
}

static void periodic(cx_sched_t *s, const conf_t *cf, double *next_place,
                     double *next_sweep, int force_place) {
    cx_err_t err = {0};
    double now = cx_mono_ms();
    if (cx_sched_tick(s, &err) < 0)
        CX_WARN("refresh failed err=\"%s\"", err.msg);
    if (now >= *next_sweep) {
        if (cx_sched_sweep(s, &err) < 0)
            CX_WARN("sweep failed err=\"%s\"", err.msg);
        *next_sweep = now + (double)cf->sweep_ms;
    }
    if (force_place || now >= *next_place) {
        if (cx_sched_place(s, &err) < 0)
            CX_WARN("placement failed err=\"%s\"", err.msg);
        *next_place = cx_mono_ms() + (double)cf->place_ms;
    }
}

int main(int argc, char **argv) {
    conf_t cf = {0};
    cx_service_t svc;
    cx_err_t err = {0};
    int rc = 1;

    switch (cx_service_configure(table, &cf, "scheduler", argc, argv)) {
    case 0: break;
    case 1: cx_conf_free(table, &cf); return 0;
    default: cx_conf_free(table, &cf); return 2;
    }
    if (cx_service_init(&svc, "scheduler", &cf.common,
                        CX_SVC_PRODUCER | CX_SVC_REDIS, &err) < 0) {
        CX_ERROR("startup failed err=\"%s\"", err.msg);
        goto fail_init;
    }
    cx_sched_conf_t sc;
    cx_sched_conf_default(&sc);
    sc.max_inflight = (int)cf.max_inflight;
    sc.lease_ms = cf.lease_ms;
    sc.max_attempts = (uint32_t)cf.max_attempts;
    sc.batch = (size_t)cf.scan;
    sc.prune_ms = cf.prune_ms;
    sc.registry_ms = cf.registry_ms;
    sc.jobs_ms = cf.jobs_ms;
    sc.eta_ms = cf.eta_ms;
    sc.reconcile_ms = cf.reconcile_ms;
    sc.prefetch_s = cf.prefetch_s;
    sc.urgent_margin_s = cf.urgent_margin_s;
    sc.model_file = cf.model_file;
    cx_sched_t *s = cx_sched_new(&svc, &sc, &err);
    if (!s) {
        CX_ERROR("startup failed err=\"%s\"", err.msg);
        goto fail_sched;
    }
    /* The index comes from Redis before anything is placed. */
    for (unsigned attempt = 0; !cx_service_stopping(); attempt++) {
        if (cx_sched_rebuild(s, &err) == 0) break;
        if (!err.retriable) {
            CX_ERROR("index rebuild failed err=\"%s\"", err.msg);
            goto fail_consumer;
        }
        CX_WARN("index rebuild: retrying err=\"%s\"", err.msg);
        cx_backoff_sleep(attempt, 200, 5000, cx_service_stop_flag());
    }
    const char *topics[] = {CX_TOPIC_UNITS, CX_TOPIC_STAGED, NULL};
    cx_consumer_t *c = NULL;
    for (unsigned attempt = 0; !c && !cx_service_stopping(); attempt++) {
        c = cx_consumer_new(cf.common.kafka_brokers, "cascade-scheduler",
                            topics, &err);
        if (!c && !err.retriable) {
            CX_ERROR("consumer failed err=\"%s\"", err.msg);
            goto fail_consumer;
        }
        if (!c) cx_backoff_sleep(attempt, 200, 5000, cx_service_stop_flag());
    }
    CX_INFO("scheduler running instance=%s max_inflight=%lld lease_ms=%lld "
            "max_attempts=%lld",
            svc.instance, cf.max_inflight, cf.lease_ms, cf.max_attempts);

    double next_place = 0, next_sweep = 0;
    rc = 0;
    while (!cx_service_stopping()) {
        cx_service_ready_when_assigned(&svc, c);
        cx_msg_t *m = NULL;
        int p = cx_consumer_poll(c, (int)cf.place_ms / 2, &m, &err);
        if (p < 0 && !err.retriable) {
            CX_ERROR("consumer error err=\"%s\"", err.msg);
            rc = 1;
            break;
        }
        if (p == 1 && handle(s, c, m) < 0) {
            rc = 1;
            break;
        }
        periodic(s, &cf, &next_place, &next_sweep, p == 1);
    }
    CX_INFO("scheduler stopping");
    cx_consumer_destroy(c);
fail_consumer:
    cx_sched_destroy(s);
fail_sched:
    cx_service_shutdown(&svc);
fail_init:
    cx_conf_free(table, &cf);
    return rc;
}
