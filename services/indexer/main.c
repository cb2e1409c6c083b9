/* cascade-indexer: cascade.commits -> exact counters in Redis ->
 * cascade.progress; `--rebuild [--job JOB]` recomputes the counters from the
 * manifests and exits. main only wires; logic in index.c and rebuild.c. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cascade/codec.h"
#include "cascade/jobstate.h"
#include "cascade/log.h"
#include "cascade/service.h"
#include "index.h"
#include "rebuild.h"

typedef struct cx_indexer_conf {
    cx_common_conf_t common;
    int rebuild;
    char *job;
} cx_indexer_conf_t;

static const cx_conf_entry_t cx__indexer_table[] = {
    CX_CONF_COMMON(cx_indexer_conf_t),
    {"rebuild", CX_CONF_BOOL, "false", 0, 0,
     "Recompute the index counters from the manifests in the store, print a "
     "summary and exit",
     offsetof(cx_indexer_conf_t, rebuild)},
    {"job", CX_CONF_STR, NULL, 0, 0,
     "With --rebuild: only this job (default: every job in cx:jobs:all)",
     offsetof(cx_indexer_conf_t, job)},
    CX_CONF_END};

/* The store holding a job's manifests: its spec's output_uri, else ours. */
static cx_store_t *job_store(cx_service_t *svc, const char *job, cx_err_t *err) {
    cx_jobstate_t *st = NULL;
    cx_store_t *s = NULL;
    if (cx_jobstate_load(svc->redis, job, &st, err) < 0) return NULL;
    cx_jobspec_t *spec = st && st->spec ? cx_decode_jobspec(st->spec, st->spec_len, NULL) : NULL;
    s = cx_service_store(svc, spec ? spec->output_uri : "", err);
    if (spec) cascade__v1__job_spec__free_unpacked(spec, NULL);
    cx_jobstate_free(st);
    return s;
}

static int rebuild(cx_service_t *svc, const char *only) {
    cx_strlist_t jobs = {0};
    cx_err_t err = {0};
    int failed = 0;

    if (only && *only) {
        if (cx_strlist_push(&jobs, only) < 0) return 1;
    } else if (cx_jobstate_list(svc->redis, 0, &jobs, &err) < 0) {
        fprintf(stderr, "cascade-indexer: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < jobs.len; i++) {
        cx_rebuild_t rb;
        cx_rebuild_init(&rb, jobs.items[i]);
        cx_store_t *store = job_store(svc, jobs.items[i], &err);
        if (!store || cx_rebuild_job(svc->redis, store, &rb, &err) < 0) {
            fprintf(stderr, "cascade-indexer: rebuild of %s failed: %s\n",
                    jobs.items[i], err.msg);
            failed = 1;
            cx_rebuild_release(&rb);
            continue;
        }
        printf("job %s: %zu manifests, %zu dead units", rb.job_id,
               rb.manifests, rb.dead);
        if (rb.skipped) printf(", %zu skipped", rb.skipped);
        if (rb.dead_unknown) printf(", %zu dead units of unknown size", rb.dead_unknown);
        printf("\n");
        for (size_t c = 0; c < rb.nclasses; c++) {
            const cx_rebuild_class_t *k = &rb.classes[c];
            printf("  %-16s committed=%" PRIu64 " units=%" PRIu64
                   " generated=%" PRIu64 " passed=%" PRIu64
                   " resolved_n=%" PRIu64 "\n",
                   k->name, k->committed, k->units, k->generated, k->passed,
                   k->resolved_n);
        }
        cx_rebuild_release(&rb);
    }
    printf("rebuilt %zu job(s)%s\n", jobs.len, failed ? ", with failures" : "");
    cx_strlist_free(&jobs);
    return failed;
}

static void handle(cx_service_t *svc, cx_consumer_t *c, cx_msg_t *m) {
    for (unsigned attempt = 0;; attempt++) {
        cx_err_t e = {0};
        if (cx_index_handle_commit(svc, m, NULL, &e) == 0) {
            cx_consumer_done(c, m);
            return;
        }
        if (!e.retriable) {
            CX_ERROR("commit failed offset=%" PRId64 " reason=\"%s\"", m->offset, e.msg);
            cx_err_t de = {0};
            if (cx_deadletter(svc->producer, "indexer", m, e.msg, NULL, NULL, &de) == 0) {
                cx_consumer_done(c, m);
                return;
            }
            CX_WARN("dead letter failed reason=\"%s\"", de.msg);
        } else {
            CX_WARN("retrying offset=%" PRId64 " attempt=%u reason=\"%s\"",
                    m->offset, attempt, e.msg);
        }
        if (cx_backoff_sleep(attempt, 100, 10000, cx_service_stop_flag())) {
            cx_msg_free(m);
            return;
        }
    }
}

int main(int argc, char **argv) {
    cx_indexer_conf_t cfg = {0};
    cx_service_t svc;
    cx_err_t err = {0};
    cx_consumer_t *cons = NULL;
    static const char *const topics[] = {CX_TOPIC_COMMITS, NULL};
    int status = 1;

    int c = cx_service_configure(cx__indexer_table, &cfg, "indexer", argc, argv);
    if (c != 0) {
        cx_conf_free(cx__indexer_table, &cfg);
        return c == 1 ? 0 : 2;
    }
    int parts = CX_SVC_REDIS | CX_SVC_STORE | (cfg.rebuild ? 0 : CX_SVC_PRODUCER);
    if (cx_service_init(&svc, "indexer", &cfg.common, parts, &err) < 0) {
        CX_ERROR("startup failed reason=\"%s\"", err.msg);
        goto fail_service;
    }
    if (cfg.rebuild) {
        status = rebuild(&svc, cfg.job);
        goto fail_consumer;
    }
    cons = cx_consumer_new(cfg.common.kafka_brokers, "cascade-indexer", topics, &err);
    if (!cons) {
        CX_ERROR("startup failed reason=\"%s\"", err.msg);
        goto fail_consumer;
    }
    CX_INFO("indexer running");
    unsigned poll_fail = 0;
    while (!cx_service_stopping()) {
        cx_service_ready_when_assigned(&svc, cons);
        cx_msg_t *m = NULL;
        int rc = cx_consumer_poll(cons, 200, &m, &err);
        if (rc < 0) {
            CX_WARN("poll failed reason=\"%s\"", err.msg);
            if (!err.retriable) break;
            cx_backoff_sleep(poll_fail++, 100, 5000, cx_service_stop_flag());
            continue;
        }
        poll_fail = 0;
        if (rc == 1) handle(&svc, cons, m);
    }
    status = cx_service_stopping() ? 0 : 1;
    cx_consumer_destroy(cons);
fail_consumer:
    cx_service_shutdown(&svc);
fail_service:
    cx_conf_free(cx__indexer_table, &cfg);
    return status;
}
