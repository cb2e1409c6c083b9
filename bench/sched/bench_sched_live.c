/* bench_sched_live: the live scheduler's placement throughput and decision
 * latency against a real Redis (and Kafka for the Assignments), with N
 * pending units and W registered workers, beside the previous scheduler's
 * placement round (peek 256 + a lease script per unit) on the same data.
 *
 *   bench_sched_live [--units N] [--workers W] [--legacy N]
 *
 * Environment: CASCADE_REDIS_URL, CASCADE_KAFKA_BROKERS (bench_live.sh
 * starts a stack on free ports). Flushes the Redis database it is given.
 *
 * The workers "finish" every placed unit through the scheduler's own
 * StagedBatch path between rounds, so every round sees free slots; rates
 * count the placement rounds only (decide + one lease script + produce +
 * flush), and staged handling is reported on its own. */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/codec.h"
#include "cascade/log.h"
#include "cascade/names.h"
#include "cascade/service.h"
#include "cascade/util.h"
#include "lease.h"
#include "queue.h"
#include "registry.h"
#include "scheduler.h"

#define NPART 16 /* cascade.dispatch partitions in the stack */

static const char *const GPUS[] = {"H100", "A100", "L40S"};
static const char *const CLASSES[] = {"normal", "effusion", "nodule",
                                      "pneumothorax"};

/* Every unit's generation parameters (what a 512x512 DDIM job sends). */
static Cascade__V1__GenerationParams gp = CASCADE__V1__GENERATION_PARAMS__INIT;

static void gp_init(void) {
    gp.checkpoint = (char *)"ref-cxr-v0";
    gp.sampler = CASCADE__V1__SAMPLER__SAMPLER_DDIM;
    gp.steps = 50;
    gp.width = gp.height = 512;
    gp.bit_depth = 16;
    gp.guidance_scale = 1;
    gp.seed_base = 42;
}

static int cmd(cx_redis_t *r, cx_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int cmd(cx_redis_t *r, cx_err_t *err, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* Split on spaces: every argument here is a plain token. */
    const char *argv[16];
    size_t lens[16];
    int argc = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t && argc < 16;
         t = strtok_r(NULL, " ", &save)) {
        argv[argc] = t;
        lens[argc++] = strlen(t);
    }
    redisReply *rep = cx_redis_cmdargv(r, argc, argv, lens, err);
    if (!rep) return -1;
    freeReplyObject(rep);
    return 0;
}

static int register_workers(cx_redis_t *r, int n, cx_err_t *err) {
    int64_t now = cx_now_ms();
    for (int i = 0; i < n; i++) {
        const char *g = GPUS[i % 3];
        if (cmd(r, err, "HSET cx:worker:bw%04d gpu_type %s slots 2 partition "
                        "%d mem_budget_bytes 80000000000 draining 0",
                i, g, i % NPART) < 0 ||
            cmd(r, err, "SET cx:worker:bw%04d:alive 1 PX 36000000", i) < 0 ||
            cmd(r, err, "HSET cx:worker:bw%04d:warm ref-cxr-v0 12000000000",
                i) < 0 ||
            cmd(r, err, "ZADD cx:workers %" PRId64 " bw%04d", now, i) < 0)
            return -1;
    }
    return 0;
}

/* Admits n units of one job (4 classes interleaved) in batches. */
static int admit_units(cx_redis_t *r, int n, cx_err_t *err) {
    enum { B = 500 };
    cx_unit_t us[B], *up[B];
    char ids[B][33];
    uint8_t *bufs[B];
    size_t lens[B];
    int rcs[B];
    for (int off = 0; off < n; off += B) {
        int k = n - off < B ? n - off : B;
        for (int i = 0; i < k; i++) {
            int ord = (off + i) / 4, c = (off + i) % 4;
            cx_unit_t *u = &us[i];
            cascade__v1__work_unit__init(u);
            cx_unit_id("bench", CLASSES[c], (uint32_t)ord, 0, ids[i]);
            u->job_id = (char *)"bench";
            u->unit_id = ids[i];
            u->class_name = (char *)CLASSES[c];
            u->class_index = (uint32_t)c;
            u->ordinal = (uint32_t)ord;
            u->sample_count = 50;
            u->seed = cx_unit_seed(42, (uint32_t)c, (uint32_t)ord, 0);
            u->params = &gp;
            up[i] = u;
            bufs[i] = cx_pack(&u->base, &lens[i], err);
            if (!bufs[i]) return -1;
        }
        int rc = cx_queue_admit_batch(r, (const cx_unit_t *const *)up,
                                      (const void *const *)bufs, lens,
                                      (size_t)k, rcs, err);
        for (int i = 0; i < k; i++) free(bufs[i]);
        if (rc < 0) return -1;
    }
    return 0;
}

/* A StagedBatch for (unit, worker, epoch), as the worker would send. */
static int staged_msg(cx_sched_t *s, const char *unit_id, const char *worker,
                      uint64_t epoch, uint32_t attempt, cx_err_t *err) {
    cx_unit_t u = CASCADE__V1__WORK_UNIT__INIT;
    u.job_id = (char *)"bench";
    u.unit_id = (char *)unit_id;
    u.class_name = (char *)"normal";
    u.sample_count = 50;
    u.params = &gp;
    Cascade__V1__StageTiming t = CASCADE__V1__STAGE_TIMING__INIT;
    Cascade__V1__StagedBatch b = CASCADE__V1__STAGED_BATCH__INIT;
    Cascade__V1__StagedSample smp[50], *sp[50];
    char keys[50][96];
    for (int i = 0; i < 50; i++) {
        cascade__v1__staged_sample__init(&smp[i]);
        snprintf(keys[i], sizeof keys[i], "bench/staging/%s/1/%d.png",
                 unit_id, i);
        smp[i].index = (uint32_t)i;
        smp[i].key = keys[i];
        smp[i].bytes = 1;
        sp[i] = &smp[i];
    }
    b.samples = sp;
    b.n_samples = 50;
    b.unit = &u;
    b.worker_id = (char *)worker;
    b.epoch = epoch;
    b.attempt = attempt;
    b.timing = &t;
    b.gpu_type = (char *)"H100";
    b.staged_unix_ms = cx_now_ms();
    b.failure = (char *)"";
    size_t len;
    uint8_t *buf = cx_pack(&b.base, &len, err);
    if (!buf) return -1;
    cx_msg_t m = {0};
    m.topic = (char *)CX_TOPIC_STAGED;
    m.payload = buf;
    m.len = len;
    int rc = cx_sched_on_message(s, &m, err);
    free(buf);
    return rc;
}

/* Ends every lease in Redis through the scheduler's staged path. */
static int finish_all(cx_sched_t *s, cx_redis_t *r, double *secs,
                      size_t *count, cx_err_t *err) {
    cx_lease_view_t *v = NULL;
    size_t n = 0;
    if (cx_lease_list(r, 1000000, &v, &n, err) < 0) return -1;
    double t0 = cx_mono_ms();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = staged_msg(s, v[i].unit, v[i].worker, v[i].epoch, 1, err);
    *secs += (cx_mono_ms() - t0) / 1000.0;
    *count += n;
    cx_lease_views_free(v, n);
    return rc;
}

/* Total microseconds Redis spent in EVALSHA since the last RESETSTAT. */
static double evalsha_usec(cx_redis_t *r) {
    redisReply *info = cx_redis_cmd(r, NULL, "INFO commandstats");
    const char *p = info && info->type == REDIS_REPLY_STRING
                        ? strstr(info->str, "cmdstat_evalsha:")
                        : NULL;
    const char *u = p ? strstr(p, "usec=") : NULL;
    double v = u ? strtod(u + 5, NULL) : 0;
    if (info) freeReplyObject(info);
    return v;
}

/* The previous scheduler's round: registry list, the first 256 pending,
 * round-robin plan, one lease script and one decode/pack per unit. */
static int legacy_round(cx_service_t *svc, cx_err_t *err) {
    cx_wview_t *ws = NULL;
    size_t nw = 0, nc = 0, ready = 0;
    cx_cand_t *cands = NULL;
    int placed = 0;
    if (cx_registry_list(svc->redis, &ws, &nw, err) < 0) return -1;
    const char **ids = calloc(nw + 1, sizeof *ids);
    int *free_slots = calloc(nw + 1, sizeof *free_slots);
    size_t *widx = calloc(nw + 1, sizeof *widx);
    cx_pair_t *pairs = NULL;
    int total = 0;
    for (size_t i = 0; i < nw; i++) {
        int f = cx_registry_free_slots(&ws[i], 2);
        if (!ws[i].alive || ws[i].draining || ws[i].partition < 0) continue;
        ids[ready] = ws[i].id;
        free_slots[ready] = f;
        widx[ready++] = i;
        total += f;
    }
    if (total && cx_queue_peek(svc->redis, 256, &cands, &nc, err) == 0) {
        pairs = calloc((size_t)total, sizeof *pairs);
        size_t np = cx_queue_plan(cands, nc, ids, free_slots, ready, pairs,
                                  (size_t)total);
        for (size_t i = 0; i < np; i++) {
            const cx_wview_t *w = &ws[widx[pairs[i].worker]];
            cx_lease_t l;
            int rc = cx_lease_acquire(svc->redis, cands[pairs[i].cand].unit,
                                      w->id, cx_now_ms(), 120000, &l, err);
            if (rc != CX_LEASE_OK) continue;
            cx_unit_t *u = cx_decode_unit(l.payload, l.payload_len, err);
            Cascade__V1__Assignment a = CASCADE__V1__ASSIGNMENT__INIT;
            a.unit = u;
            a.worker_id = w->id;
            a.attempt = l.attempt;
            a.epoch = l.epoch;
            size_t len;
            uint8_t *buf = u ? cx_pack(&a.base, &len, err) : NULL;
            if (buf)
                cx_producer_send(svc->producer, CX_TOPIC_DISPATCH,
                                 w->partition, "bench", 5, buf, len, err);
            free(buf);
            if (u) cascade__v1__work_unit__free_unpacked(u, NULL);
            free(l.payload);
            placed++;
        }
        cx_producer_flush(svc->producer, 10000, err);
    }
    free(pairs);
    cx_queue_cands_free(cands, nc);
    free(ids);
    free(free_slots);
    free(widx);
    cx_registry_free(ws, nw);
    return placed;
}

/* Ends every lease the legacy way (one staged script per unit). */
static int legacy_finish(cx_redis_t *r, cx_err_t *err) {
    cx_lease_view_t *v = NULL;
    size_t n = 0;
    if (cx_lease_list(r, 1000000, &v, &n, err) < 0) return -1;
    for (size_t i = 0; i < n; i++)
        cx_lease_staged(r, v[i].unit, v[i].epoch, v[i].worker, "", 3, NULL,
                        err);
    cx_lease_views_free(v, n);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"units", required_argument, NULL, 'u'},
        {"workers", required_argument, NULL, 'w'},
        {"legacy", required_argument, NULL, 'l'},
        {NULL, 0, NULL, 0}};
    int units = 200000, workers = 1000, legacy = 20000, c;
    gp_init();
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'u') units = atoi(optarg);
        else if (c == 'w') workers = atoi(optarg);
        else if (c == 'l') legacy = atoi(optarg);
        else return 2;
    }
    const char *url = getenv("CASCADE_REDIS_URL"),
               *brokers = getenv("CASCADE_KAFKA_BROKERS");
    if (!url || !brokers) {
        fprintf(stderr, "bench_sched_live: set CASCADE_REDIS_URL and "
                        "CASCADE_KAFKA_BROKERS (see bench_live.sh)\n");
        return 2;
    }
    cx_common_conf_t conf = {.kafka_brokers = (char *)brokers,
                             .redis_url = (char *)url,
                             .store_uri = (char *)"file:///tmp",
                             .http_bind = (char *)"127.0.0.1",
                             .http_port = 0,
                             .log_level = (char *)"warn",
                             .instance = (char *)"bench-sched"};
    cx_service_t svc;
    cx_err_t err = {0};
    if (cx_service_init(&svc, "scheduler", &conf,
                        CX_SVC_PRODUCER | CX_SVC_REDIS, &err) < 0) {
        fprintf(stderr, "bench_sched_live: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    double t0 = cx_mono_ms();
    if (cmd(svc.redis, &err, "FLUSHDB") < 0 ||
        register_workers(svc.redis, workers, &err) < 0 ||
        admit_units(svc.redis, units, &err) < 0) {
        fprintf(stderr, "bench_sched_live: setup: %s\n", err.msg);
        goto done;
    }
    printf("setup: %d workers, %d pending units in %.1f s\n", workers, units,
           (cx_mono_ms() - t0) / 1000.0);

    /* The previous scheduler on the first `legacy` units. */
    int lplaced = 0;
    double lsecs = 0;
    while (lplaced < legacy) {
        double r0 = cx_mono_ms();
        int p = legacy_round(&svc, &err);
        lsecs += (cx_mono_ms() - r0) / 1000.0;
        if (p <= 0) break;
        lplaced += p;
        if (legacy_finish(svc.redis, &err) < 0) goto done;
    }
    if (lplaced)
        printf("previous scheduler: %d placements in %.2f s of rounds: "
               "%.0f placements/s (256 pending looked at per round)\n",
               lplaced, lsecs, lplaced / lsecs);

    cx_sched_conf_t sc;
    cx_sched_conf_default(&sc);
    sc.prefetch_s = 1e9; /* both slots of every worker in one round */
    cx_sched_t *s = cx_sched_new(&svc, &sc, &err);
    if (!s) goto fail;
    double b0 = cx_mono_ms();
    if (cx_sched_rebuild(s, &err) < 0) goto fail_sched;
    cx_pol_stats_t ps;
    cx_pol_stats(cx_sched_policy(s), &ps);
    printf("index rebuilt from Redis: %" PRIu64 " pending, %zu workers "
           "eligible in %.2f s\n",
           ps.pending_units, ps.workers_eligible, (cx_mono_ms() - b0) / 1000.0);
    double stsecs = 0;
    size_t staged = 0;
    int probe_units = 0;
    double probe_us = 0;
    for (int round = 0;; round++) {
        /* One round's script time as Redis measures it (no network, no
         * client): the round's only script is the batch lease. */
        if (round == 10) cmd(svc.redis, &err, "CONFIG RESETSTAT");
        int p = cx_sched_place(s, &err);
        if (p < 0) goto fail_sched;
        if (round == 10) {
            probe_units = p;
            probe_us = evalsha_usec(svc.redis);
        }
        if (p == 0) break;
        if (finish_all(s, svc.redis, &stsecs, &staged, &err) < 0)
            goto fail_sched;
    }
    cx_sched_stats_t st;
    cx_sched_stats(s, &st);
    printf("cascade scheduler: %" PRIu64 " placements in %" PRIu64
           " rounds, %.2f s of rounds: %.0f placements/s\n",
           st.placements, st.rounds, st.round_s, st.placements / st.round_s);
    printf("  decision latency: p50 %.1f us, p99 %.1f us, max %.1f us "
           "(%" PRIu64 " decisions, %.2f s deciding)\n",
           st.p50_s * 1e6, st.p99_s * 1e6, st.max_s * 1e6, st.decisions,
           st.decide_s);
    printf("  per round: %.1f ms for %.0f placements: decide %.1f ms, lease "
           "script %.1f ms, pack + produce + flush %.1f ms\n",
           1000 * st.round_s / (double)st.rounds,
           (double)st.placements / (double)st.rounds,
           1000 * st.decide_s / (double)st.rounds,
           1000 * st.lease_s / (double)st.rounds,
           1000 * st.send_s / (double)st.rounds);
    printf("  staged batches handled: %zu in %.2f s (%.0f/s)\n", staged,
           stsecs, staged / (stsecs > 0 ? stsecs : 1));
    if (probe_units)
        printf("  redis server time of one lease script for %d units: %.1f ms "
               "(INFO commandstats)\n",
               probe_units, probe_us / 1000.0);
    if (lplaced)
        printf("speed-up over the previous scheduler: %.1fx\n",
               (st.placements / st.round_s) / (lplaced / lsecs));
    rc = 0;
fail_sched:
    cx_sched_destroy(s);
fail:
    if (rc) fprintf(stderr, "bench_sched_live: %s\n", err.msg);
done:
    cx_service_shutdown(&svc);
    return rc;
}
