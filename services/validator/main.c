/* cascade-validator: cascade.staged -> quality gates -> cascade.verdicts. */
#include <stddef.h>
#include <stdlib.h>

#include "cascade/log.h"
#include "cascade/service.h"
#include "run.h"

typedef struct cx_validator_conf {
    cx_common_conf_t common;
    long long threads;
    double min_range;
    double max_clip;
    double max_hf;
} cx_validator_conf_t;

#define CX__STR(x) #x
#define CX__XSTR(x) CX__STR(x)

static const cx_conf_entry_t cx__validator_table[] = {
    CX_CONF_COMMON(cx_validator_conf_t),
    {"threads", CX_CONF_INT, "0", 0, 4096,
     "Validation threads (0: one per online CPU)",
     offsetof(cx_validator_conf_t, threads)},
    {"gate.min_range", CX_CONF_DOUBLE, CX__XSTR(CX_GATE_DEFAULT_MIN_RANGE), 0,
     1, "Default minimum (p99.5 - p0.5) / full scale",
     offsetof(cx_validator_conf_t, min_range)},
    {"gate.max_clip", CX_CONF_DOUBLE, CX__XSTR(CX_GATE_DEFAULT_MAX_CLIP), 0, 1,
     "Default maximum fraction of pixels at 0 or full scale",
     offsetof(cx_validator_conf_t, max_clip)},
    {"gate.max_hf", CX_CONF_DOUBLE, CX__XSTR(CX_GATE_DEFAULT_MAX_HF), 0, 1000,
     "Default maximum mean squared Laplacian / intensity variance",
     offsetof(cx_validator_conf_t, max_hf)},
    CX_CONF_END};

int main(int argc, char **argv) {
    cx_validator_conf_t cfg = {0};
    cx_service_t svc;
    cx_err_t err;
    cx_validator_t *v = NULL;
    cx_consumer_t *cons = NULL;
    static const char *const topics[] = {CX_TOPIC_STAGED, NULL};
    int status = 1;

    int c = cx_service_configure(cx__validator_table, &cfg, "validator", argc,
                                 argv);
    if (c != 0) {
        cx_conf_free(cx__validator_table, &cfg);
        return c == 1 ? 0 : 2;
    }
    if (cx_service_init(&svc, "validator", &cfg.common,
                        CX_SVC_PRODUCER | CX_SVC_STORE, &err) < 0) {
        CX_ERROR("startup failed reason=\"%s\"", err.msg);
        goto fail_service;
    }
    cx_gate_thresholds_t th = {cfg.min_range, cfg.max_clip, cfg.max_hf};
    v = cx_validator_new(&th, (unsigned)cfg.threads, &err);
    if (!v) {
        CX_ERROR("startup failed reason=\"%s\"", err.msg);
        goto fail_validator;
    }
    cons = cx_consumer_new(cfg.common.kafka_brokers, "cascade-validator",
                           topics, &err);
    if (!cons) {
        CX_ERROR("startup failed reason=\"%s\"", err.msg);
        goto fail_consumer;
    }
    CX_INFO("validator running threads=%u min_range=%g max_clip=%g max_hf=%g",
            (unsigned)cfg.threads, th.min_range, th.max_clip, th.max_hf);
    status = cx_validator_run(&svc, v, cons) == 0 ? 0 : 1;

    cx_consumer_destroy(cons);
fail_consumer:
    cx_validator_destroy(v);
fail_validator:
    cx_service_shutdown(&svc);
fail_service:
    cx_conf_free(cx__validator_table, &cfg);
    return status;
}
