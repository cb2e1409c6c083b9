/* cascade-gpu-worker: wiring only (worker.c runs units, heartbeat.c keeps
 * the registration alive). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cascade/config.h"
#include "cascade/kafka.h"
#include "cascade/log.h"
#include "cascade/service.h"
#include "cascade/util.h"
#include "heartbeat.h"
#include "worker.h"

typedef struct conf {
    cx_common_conf_t common;
    char *gpu_type;
    long long slots;
    long long threads;
    long long partition;
    long long heartbeat_ms;
    long long alive_ttl_ms;
    long long png_level;
    char *png_strategy;
    long long models;
    char *device;
    char *checkpoint_dir;
    char *plugin_dir;
    char *plugins;
    long long mem_budget_bytes;
    long long max_batch;
} conf_t;

static const cx_conf_entry_t table[] = {
    CX_CONF_COMMON(conf_t),
    {"gpu_type", CX_CONF_STR, "cpu", 0, 0,
     "Accelerator type reported to the scheduler", offsetof(conf_t, gpu_type)},
    {"slots", CX_CONF_INT, "2", 1, 64,
     "Units this worker accepts in flight", offsetof(conf_t, slots)},
    {"threads", CX_CONF_INT, "0", 0, 1024,
     "Generation threads (0: one per CPU)", offsetof(conf_t, threads)},
    {"partition", CX_CONF_INT, "-1", -1, 100000,
     "Partition of cascade.dispatch to consume (-1: claim a free one)",
     offsetof(conf_t, partition)},
    {"heartbeat_ms", CX_CONF_INT, "1000", 50, 60000,
     "Heartbeat period", offsetof(conf_t, heartbeat_ms)},
    {"alive_ttl_ms", CX_CONF_INT, "5000", 200, 600000,
     "TTL of the alive key and partition claim (the scheduler re-issues a "
     "silent worker's units after it)",
     offsetof(conf_t, alive_ttl_ms)},
    {"png_level", CX_CONF_INT, "0", 0, 9,
     "zlib level of staged PNGs (0 = stored: bench_e2e measured 63-65 vs "
     "49 samples/s end to end against level 1 huffman on 2 cores, for "
     "22% more bytes; raise it where storage costs more than CPU)",
     offsetof(conf_t, png_level)},
    {"png_strategy", CX_CONF_STR, "huffman", 0, 0,
     "zlib strategy of staged PNGs: default, filtered, huffman or rle "
     "(huffman: 3x faster to encode than default at level 1 and slightly "
     "smaller on noisy 16-bit images; see bench/png)",
     offsetof(conf_t, png_strategy)},
    {"models", CX_CONF_INT, "0", 0, 64,
     "Most checkpoints kept warm at once (0: as many as mem_budget_bytes "
     "holds)",
     offsetof(conf_t, models)},
    {"device", CX_CONF_STR, "cpu", 0, 0,
     "Where models run: cpu, or cuda:N for GPU N (needs a CUDA plug-in)",
     offsetof(conf_t, device)},
    {"checkpoint_dir", CX_CONF_STR, NULL, 0, 0,
     "Directory of checkpoint files <name>.<ext> (.cxck for the reference "
     "generator); the built-in ref-cxr-v0 needs none",
     offsetof(conf_t, checkpoint_dir)},
    {"plugin_dir", CX_CONF_STR, NULL, 0, 0,
     "Directory whose *.so generator plug-ins are loaded (default: "
     "plugins/ beside the executable's bin/)",
     offsetof(conf_t, plugin_dir)},
    {"plugins", CX_CONF_STR, NULL, 0, 0,
     "More generator plug-ins to load: comma-separated paths",
     offsetof(conf_t, plugins)},
    {"mem_budget_bytes", CX_CONF_INT, "0", 0, 1e15,
     "Memory the warm pool may fill with models (0: half the RAM on cpu, "
     "90% of the GPU's memory on cuda:N)",
     offsetof(conf_t, mem_budget_bytes)},
    {"max_batch", CX_CONF_INT, "32", 1, 4096,
     "Samples per call to a GPU plug-in",
     offsetof(conf_t, max_batch)},
    CX_CONF_END};

static uint64_t mem_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

/* Retries fn-like steps while the error is retriable. */
#define RETRY(expr, what)                                                  \
    for (unsigned attempt_ = 0;; attempt_++) {                             \
        if ((expr) >= 0) break;                                            \
        if (!err.retriable || cx_service_stopping()) {                     \
            CX_ERROR("%s failed err=\"%s\"", what, err.msg);               \
            goto fail_setup;                                               \
        }                                                                  \
        CX_WARN("%s: retrying err=\"%s\"", what, err.msg);                 \
        cx_backoff_sleep(attempt_, 200, 5000, cx_service_stop_flag());     \
    }

/* The worker's stager hands back each message once its effect is done. */
static void done_cb(void *ctx, cx_msg_t *m) { cx_consumer_done(ctx, m); }

int main(int argc, char **argv) {
    conf_t cf = {0};
    cx_service_t svc;
    cx_err_t err = {0};
    cx_hb_t *hb = NULL;
    cx_consumer_t *c = NULL;
    cx_worker_t *w = NULL;
    int rc = 1, nparts = -1, part = -1, registered = 0;

    switch (cx_service_configure(table, &cf, "gpu-worker", argc, argv)) {
    case 0: break;
    case 1: cx_conf_free(table, &cf); return 0;
    default: cx_conf_free(table, &cf); return 2;
    }
    if (cx_service_init(&svc, "gpu-worker", &cf.common,
                        CX_SVC_PRODUCER | CX_SVC_REDIS | CX_SVC_STORE,
                        &err) < 0) {
        CX_ERROR("startup failed err=\"%s\"", err.msg);
        cx_conf_free(table, &cf);
        return 1;
    }
    cx_hb_conf_t hc = {.redis_url = cf.common.redis_url,
                       .worker = svc.instance,
                       .gpu_type = cf.gpu_type,
                       .mem_bytes = mem_bytes(),
                       .slots = (int)cf.slots,
                       .heartbeat_ms = (int)cf.heartbeat_ms,
                       .alive_ttl_ms = (int)cf.alive_ttl_ms,
                       .drain = cx_service_stop_flag()};
    cx_worker_conf_t wc = {.id = svc.instance,
                           .gpu_type = cf.gpu_type,
                           .png = {(int)cf.png_level, CX_PNG_FILTER_UP,
                                   CX_PNG_STRATEGY_DEFAULT},
                           .threads = (unsigned)cf.threads,
                           .models = (size_t)cf.models,
                           .device = cf.device,
                           .checkpoint_dir = cf.checkpoint_dir,
                           .plugin_dir = cf.plugin_dir,
                           .plugins = cf.plugins,
                           .mem_budget_bytes = (uint64_t)cf.mem_budget_bytes,
                           .max_batch = (unsigned)cf.max_batch};
    int strategy = cx_png_strategy_parse(cf.png_strategy);
    if (strategy < 0) {
        CX_ERROR("config: png_strategy \"%s\" is not default, filtered, "
                 "huffman or rle",
                 cf.png_strategy);
        goto fail_setup;
    }
    wc.png.strategy = (cx_png_strategy_t)strategy;
    w = cx_worker_new(&svc, &wc, &err);
    if (!w) {
        CX_ERROR("startup failed err=\"%s\"", err.msg);
        goto fail_setup;
    }
    hc.device = cf.device;
    hc.mem_budget_bytes = cx_worker_mem_budget(w);
    RETRY(nparts = cx_kafka_partition_count(cf.common.kafka_brokers,
                                            CX_TOPIC_DISPATCH, 5000, &err),
          "partition count");
    RETRY(part = cx_hb_claim(svc.redis, &hc, (int)cf.partition, nparts, &err),
          "partition claim");
    RETRY(cx_hb_register(svc.redis, &hc, part, &err), "register");
    registered = 1;
    if (cx_worker_publish_pool(w, &err) < 0)
        CX_WARN("warm pool state not published err=\"%s\"", err.msg);
    hb = cx_hb_start(&hc, part, &err);
    if (!hb) {
        CX_ERROR("heartbeat failed err=\"%s\"", err.msg);
        goto fail_setup;
    }
    char group[64];
    snprintf(group, sizeof group, "cascade-gpu-worker-p%d", part);
    RETRY((c = cx_consumer_new_partition(cf.common.kafka_brokers, group,
                                         CX_TOPIC_DISPATCH, part, &err))
              ? 0
              : -1,
          "consumer");
    cx_worker_set_done(w, done_cb, c);
    CX_INFO("worker running worker=%s partition=%d of=%d gpu_type=%s "
            "slots=%lld threads=%lld png_level=%lld png_strategy=%s",
            svc.instance, part, nparts, cf.gpu_type, cf.slots, cf.threads,
            cf.png_level, cf.png_strategy);

    rc = 0;
    while (!cx_service_stopping()) {
        if (cx_hb_lost(hb)) {
            CX_ERROR("stopping: partition %d now belongs to another worker",
                     part);
            rc = 1;
            break;
        }
        if (cx_worker_failed(w)) {
            CX_ERROR("stopping: a staged batch could not be reported");
            rc = 1;
            break;
        }
        cx_service_ready_when_assigned(&svc, c);
        cx_msg_t *m = NULL;
        int p = cx_consumer_poll(c, 200, &m, &err);
        if (p < 0 && !err.retriable) {
            CX_ERROR("consumer error err=\"%s\"", err.msg);
            rc = 1;
            break;
        }
        if (p != 1) continue;
        for (unsigned attempt = 0;; attempt++) {
            if (cx_worker_handle(w, m, &err) == 0) break; /* m is w's */
            if (!err.retriable) {
                CX_ERROR("fatal error offset=%lld err=\"%s\"",
                         (long long)m->offset, err.msg);
                rc = 1;
            } else {
                CX_WARN("retrying assignment offset=%lld err=\"%s\"",
                        (long long)m->offset, err.msg);
            }
            if (rc ||
                cx_backoff_sleep(attempt, 200, 5000, cx_service_stop_flag())) {
                cx_msg_free(m); /* redelivered to this partition's next owner */
                break;
            }
        }
        if (rc) break;
    }
    CX_INFO("worker draining worker=%s", svc.instance);
    cx_hb_set_draining(svc.redis, &hc, &err);
    /* The heartbeat thread released them when the drain began; again here
     * for a stop that was not a signal (claim lost, fatal error). */
    cx_hb_release_unstarted(svc.redis, &hc, &err);
    cx_worker_drain(w); /* the units begun are reported, offsets stored */
    cx_consumer_destroy(c); /* commits the stored offsets */
    c = NULL;
    cx_worker_wait_acked(w, 3000);

fail_setup:
    if (w) cx_worker_drain(w); /* nothing may reach c once destroyed */
    cx_consumer_destroy(c);
    cx_hb_stop(hb);
    if (registered && cx_hb_deregister(svc.redis, &hc, part, &err) < 0)
        CX_WARN("deregister failed err=\"%s\"", err.msg);
    cx_worker_destroy(w);
    CX_INFO("worker stopped worker=%s rc=%d", svc.instance, rc);
    cx_service_shutdown(&svc);
    cx_conf_free(table, &cf);
    return rc;
}
