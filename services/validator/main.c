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
    char *profile_dir;
    long long profile_retry_ms;
    long long batch_samples;
    long long batch_window_ms;
    long long batch_busy_samples;
    long long batch_messages;
    int quarantine;
    double quarantine_min_samples;
    double quarantine_min_excess;
    double quarantine_alpha;
    double quarantine_window;
} cx_validator_conf_t;

#define CX__STR(x) #x
#define CX__XSTR(x) CX__STR(x)
#define OFF(f) offsetof(cx_validator_conf_t, f)

static const cx_conf_entry_t cx__validator_table[] = {
    CX_CONF_COMMON(cx_validator_conf_t),
    {"threads", CX_CONF_INT, "0", 0, 4096,
     "Validation threads (0: one per online CPU)", OFF(threads)},
    {"gate.min_range", CX_CONF_DOUBLE, CX__XSTR(CX_GATE_DEFAULT_MIN_RANGE), 0,
     1, "Default minimum (p99.5 - p0.5) / full scale (built-in profile)",
     OFF(min_range)},
    {"gate.max_clip", CX_CONF_DOUBLE, CX__XSTR(CX_GATE_DEFAULT_MAX_CLIP), 0, 1,
     "Default maximum fraction of pixels at 0 or full scale (built-in "
     "profile)",
     OFF(max_clip)},
    {"gate.max_hf", CX_CONF_DOUBLE, CX__XSTR(CX_GATE_DEFAULT_MAX_HF), 0, 1000,
     "Default maximum mean squared Laplacian / intensity variance (built-in "
     "profile)",
     OFF(max_hf)},
    {"profile_dir", CX_CONF_STR, NULL, 0, 0,
     "Directory of calibrated gate profiles (<name>.json + <name>.feat, "
     "written by cxcalibrate); jobs name one in validation.gate_profile",
     OFF(profile_dir)},
    {"profile_retry_ms", CX_CONF_INT, "30000", 0, 86400000,
     "How long a profile that failed to load is not tried again",
     OFF(profile_retry_ms)},
    {"batch.samples", CX_CONF_INT, "512", 1, 65536,
     "Samples validated together (a group of staged batches)",
     OFF(batch_samples)},
    {"batch.window_ms", CX_CONF_INT, "200", 0, 60000,
     "Longest wait for a group to fill after its first batch",
     OFF(batch_window_ms)},
    {"batch.busy_samples", CX_CONF_INT, "0", 0, 65536,
     "A group holding this many samples stops waiting for more and takes "
     "only what has arrived (0: four per validation thread)",
     OFF(batch_busy_samples)},
    {"batch.messages", CX_CONF_INT, "256", 1, 65536,
     "Most staged batches in one group", OFF(batch_messages)},
    {"quarantine", CX_CONF_BOOL, "true", 0, 0,
     "Quarantine workers whose gate failure rate is far above their pool's",
     OFF(quarantine)},
    {"quarantine.min_samples", CX_CONF_DOUBLE, "64", 1, 1e9,
     "Samples a worker (and the rest of its pool) must have before the test",
     OFF(quarantine_min_samples)},
    {"quarantine.min_excess", CX_CONF_DOUBLE, "0.25", 0, 1,
     "Failure rate excess over the pool's needed to quarantine",
     OFF(quarantine_min_excess)},
    {"quarantine.alpha", CX_CONF_DOUBLE, "1e-6", 0, 1,
     "Level of the one-sided binomial test against the pool's rate",
     OFF(quarantine_alpha)},
    {"quarantine.window", CX_CONF_DOUBLE, "2000", 10, 1e12,
     "A worker's counts are halved beyond this many samples",
     OFF(quarantine_window)},
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
                        CX_SVC_PRODUCER | CX_SVC_REDIS | CX_SVC_STORE,
                        &err) < 0) {
        CX_ERROR("startup failed reason=\"%s\"", err.msg);
        goto fail_service;
    }
    cx_gate_thresholds_t th = {cfg.min_range, cfg.max_clip, cfg.max_hf};
    v = cx_validator_new(&th, (unsigned)cfg.threads, &err);
    if (!v || cx_validator_set_profile_dir(v, cfg.profile_dir,
                                           (int)cfg.profile_retry_ms,
                                           &err) < 0) {
        CX_ERROR("startup failed reason=\"%s\"", err.msg);
        goto fail_validator;
    }
    cons = cx_consumer_new(cfg.common.kafka_brokers, "cascade-validator",
                           topics, &err);
    if (!cons) {
        CX_ERROR("startup failed reason=\"%s\"", err.msg);
        goto fail_consumer;
    }
    cx_vrun_conf_t rc = {
        .batch_samples = (size_t)cfg.batch_samples,
        .window_ms = (int)cfg.batch_window_ms,
        .busy_samples = cfg.batch_busy_samples
                            ? (size_t)cfg.batch_busy_samples
                            : 4 * (size_t)cx_validator_threads(v),
        .max_messages = (size_t)cfg.batch_messages,
        .quar = {.enabled = cfg.quarantine,
                 .min_samples = cfg.quarantine_min_samples,
                 .min_pool_samples = cfg.quarantine_min_samples,
                 .min_excess = cfg.quarantine_min_excess,
                 .alpha = cfg.quarantine_alpha,
                 .window = cfg.quarantine_window}};
    CX_INFO("validator running threads=%u min_range=%g max_clip=%g max_hf=%g "
            "profile_dir=%s batch_samples=%zu window_ms=%d knn=%s "
            "quarantine=%d",
            (unsigned)cfg.threads, th.min_range, th.max_clip, th.max_hf,
            cfg.profile_dir && cfg.profile_dir[0] ? cfg.profile_dir : "-",
            rc.batch_samples, rc.window_ms,
            cx_knn_isa_name(cx_knn_get_isa()), rc.quar.enabled);
    status = cx_validator_run(&svc, v, &rc, cons) == 0 ? 0 : 1;

    cx_consumer_destroy(cons);
fail_consumer:
fail_validator:
    cx_validator_destroy(v);
    cx_service_shutdown(&svc);
fail_service:
    cx_conf_free(cx__validator_table, &cfg);
    return status;
}
