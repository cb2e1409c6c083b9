/* Assignment -> samples in staging -> StagedBatch. */
#include "worker.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cascade/gen.h"
#include "cascade/log.h"
#include "cascade/png16.h"
#include "cascade/pool.h"
#include "cascade/redis.h"
#include "cascade/store.h"
#include "fault.h"
#include "plugin.h"
#include "pool.h"
#include "stager.h"

#define CX_WORKER_FLUSH_MS 10000
#define CX_WORKER_MAX_BATCH 32
/* Tasks queued on the stager: with the one it runs and the one being
 * generated, at most four batches are held. */
#define CX_WORKER_STAGE_QUEUE 2

struct cx_worker {
    cx_service_t *svc;
    cx_worker_conf_t conf;
    cx_pool_t *pool;
    cx_plugins_t *plugins;
    cx_warm_t *warm;
    cx_stager_t *stager;
    cx_worker_done_fn done;
    void *done_ctx;
    /* Set by the stager: a unit could not be reported (no later offset
     * may be stored), or the producer failed for good. */
    _Atomic int broken, fatal;
    char last_unit[64]; /* last unit staged, for cx_worker_wait_acked */
    cx_metric_t *m_units, *m_samples, *m_failed, *m_stale, *m_retries;
};

static int load_plugins(cx_worker_t *w, cx_err_t *err);

cx_worker_t *cx_worker_new(cx_service_t *svc, const cx_worker_conf_t *conf,
                           cx_err_t *err) {
    cx_worker_t *w = calloc(1, sizeof *w);
    if (!w) goto fail_nomem;
    w->svc = svc;
    w->conf = *conf;
    if (!w->conf.device || !*w->conf.device) w->conf.device = "cpu";
    if (w->conf.max_batch == 0) w->conf.max_batch = CX_WORKER_MAX_BATCH;
    w->pool = cx_pool_new(conf->threads, err);
    if (!w->pool) goto fail_pool;
    w->stager = cx_stager_new(CX_WORKER_STAGE_QUEUE, err);
    if (!w->stager) goto fail_pool;
    if (load_plugins(w, err) < 0) goto fail_pool;
    cx_warm_conf_t wc = {.device = w->conf.device,
                         .checkpoint_dir = w->conf.checkpoint_dir,
                         .budget_bytes = w->conf.mem_budget_bytes,
                         .max_models = w->conf.models,
                         .threads = w->conf.threads,
                         .max_batch = w->conf.max_batch};
    w->warm = cx_warm_new(&wc, w->plugins, svc->metrics, err);
    if (!w->warm) goto fail_pool;
    cx_metrics_t *m = svc->metrics;
    if (m) {
        w->m_units = cx_metrics_counter(m, "cascade_gpu_worker_units_total",
                                        "Units staged", NULL, NULL);
        w->m_samples = cx_metrics_counter(
            m, "cascade_gpu_worker_samples_total", "Samples staged", NULL,
            NULL);
        w->m_failed = cx_metrics_counter(
            m, "cascade_gpu_worker_failed_units_total",
            "Units reported with a failure", NULL, NULL);
        w->m_stale = cx_metrics_counter(
            m, "cascade_gpu_worker_stale_assignments_total",
            "Assignments skipped as stale, foreign or cancelled", NULL, NULL);
        w->m_retries = cx_metrics_counter(
            m, "cascade_gpu_worker_store_retries_total",
            "Staging writes retried after a retriable store error", NULL,
            NULL);
    }
    return w;

fail_nomem:
    cx_err_set(err, CX_ENOMEM, 0, "worker: out of memory");
fail_pool:
    cx_worker_destroy(w);
    return NULL;
}

void cx_worker_destroy(cx_worker_t *w) {
    if (!w) return;
    cx_stager_destroy(w->stager); /* runs what is queued first */
    cx_warm_destroy(w->warm);
    cx_plugins_destroy(w->plugins);
    cx_pool_destroy(w->pool);
    free(w);
}

uint64_t cx_worker_mem_budget(const cx_worker_t *w) {
    return cx_warm_budget(w->warm);
}

int cx_worker_publish_pool(cx_worker_t *w, cx_err_t *err) {
    return cx_warm_publish(w->warm, w->svc->redis, w->conf.id, 1, err);
}

static void plugin_refused(void *ctx, const char *path,
                           const cx_err_t *why) {
    (void)ctx;
    CX_WARN("generator plug-in refused path=%s err=\"%s\"", path, why->msg);
}

/* <directory of the executable>/../plugins: where the build and the
 * images put the plug-ins beside bin/. */
static void default_plugin_dir(char *out, size_t len) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    snprintf(out, len, "%s/../plugins", n > 0 ? exe : ".");
}

/* Every plug-in of the directory and the list; refused ones are logged
 * and skipped (the others keep serving). None at all is an error. */
static int load_plugins(cx_worker_t *w, cx_err_t *err) {
    char dir[PATH_MAX + 16];
    w->plugins = cx_plugins_new(err);
    if (!w->plugins) return -1;
    if (w->conf.plugin_dir && *w->conf.plugin_dir)
        snprintf(dir, sizeof dir, "%s", w->conf.plugin_dir);
    else
        default_plugin_dir(dir, sizeof dir);
    cx_err_t derr = {0};
    if (cx_plugins_add_dir(w->plugins, dir, plugin_refused, NULL, &derr) < 0)
        CX_WARN("plug-in directory unreadable dir=%s err=\"%s\"", dir,
                derr.msg);
    const char *list = w->conf.plugins ? w->conf.plugins : "";
    while (*list) {
        size_t n = strcspn(list, ",");
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%.*s", (int)n, list);
        cx_err_t perr = {0};
        if (n && cx_plugins_add(w->plugins, path, &perr) < 0)
            plugin_refused(NULL, path, &perr);
        list += n + (list[n] == ',');
    }
    if (cx_plugins_count(w->plugins) == 0)
        return cx_err_set(err, CX_EINVAL, 0,
                          "no generator plug-in loaded (plugin_dir %s, "
                          "plugins \"%s\")",
                          dir, w->conf.plugins ? w->conf.plugins : "");
    for (size_t i = 0; i < cx_plugins_count(w->plugins); i++) {
        const cx_plugin_t *p = cx_plugins_at(w->plugins, i);
        CX_INFO("generator plug-in loaded name=%s version=%s path=%s",
                cx_plugin_name(p), cx_plugin_table(p)->version,
                cx_plugin_path(p));
    }
    return 0;
}

/* KEYS[1] cx:unit:<unit>. ARGV: worker epoch unit. The fence, and the
 * mark that the unit is started (a draining worker gives back only
 * unstarted units: heartbeat.c cx_hb_release_unstarted), in one step.
 * A unit of a cancelled job ends its lease here, as the scheduler's own
 * end script would (lease.c): otherwise it would stay leased, and the
 * cancelled job look busy, until the lease runs out. 1 run, 0 stale or
 * foreign, 2 cancelled. */
static cx_redis_script_t lua_fence = {.lua =
    "local h = redis.call('HMGET', KEYS[1], 'state', 'worker', 'epoch',\n"
    "  'job')\n"
    "if h[1] ~= 'leased' or h[2] ~= ARGV[1] or h[3] ~= ARGV[2] then\n"
    "  return 0\n"
    "end\n"
    "if redis.call('HGET', 'cx:job:' .. (h[4] or ''), 'state') ==\n"
    "   'CANCELLED' then\n"
    "  redis.call('ZREM', 'cx:leases', ARGV[3])\n"
    "  redis.call('SREM', 'cx:worker:' .. ARGV[1] .. ':inflight', ARGV[3])\n"
    "  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'worker', '',\n"
    "    'reason', 'job cancelled')\n"
    "  return 2\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'started', ARGV[2])\n"
    "return 1\n"};

int cx_worker_check(cx_worker_t *w, const cx_assignment_t *a, cx_err_t *err) {
    const cx_unit_t *u = a->unit;
    char key[128], epoch[24];
    snprintf(key, sizeof key, "cx:unit:%s", u->unit_id);
    snprintf(epoch, sizeof epoch, "%" PRIu64, a->epoch);
    const char *args[] = {key, w->conf.id, epoch, u->unit_id};
    redisReply *rep = cx_redis_eval(w->svc->redis, &lua_fence, 1, 3, args, err);
    if (!rep) return cx_err_wrap(err, "fence unit %s", u->unit_id);
    long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    freeReplyObject(rep);
    if (v == 2)
        CX_INFO("assignment of a cancelled job, lease ended job_id=%s "
                "unit_id=%s",
                u->job_id, u->unit_id);
    return v == 1;
}

/* A unit's samples on the pool: each task takes one sample through
 * generate -> encode -> write, so encoding and staging writes overlap other
 * samples' generation instead of waiting at a barrier per phase. Per-sample
 * phase times are thread-milliseconds; their sums are what StageTiming
 * reports. */
enum { ST_OK = 0, ST_GENERATE, ST_ENCODE, ST_WRITE };

typedef struct unit_run {
    cx_plugin_gen_t *gen;
    size_t cls;
    cx_sample_params_t params;
    cx_png_opts_t png_opts;
    uint64_t seed;
    uint32_t width, height;
    size_t npx;
    cx_store_t *store;
    char (*keys)[256];
    cx_buf_t *png;   /* kept only for a sample whose write failed */
    uint64_t *bytes; /* PNG length per sample */
    cx_err_t *errs;
    char *failed;    /* ST_* per sample */
    double *gen_ms, *enc_ms, *wr_ms;
} unit_run_t;

static int write_sample(unit_run_t *r, size_t i) {
    if (cx_store_put(r->store, r->keys[i], r->png[i].data, r->png[i].len,
                     &r->errs[i]) < 0) {
        r->failed[i] = ST_WRITE;
        return -1;
    }
    r->failed[i] = ST_OK;
    cx_buf_free(&r->png[i]);
    return 0;
}

/* The ABI's sampler numbers are gen.h's (and the WorkUnit's). */
_Static_assert((int)CX_GENPLUG_DDIM == (int)CX_SAMPLER_DDIM &&
                   (int)CX_GENPLUG_EULER == (int)CX_SAMPLER_EULER &&
                   (int)CX_GENPLUG_HEUN == (int)CX_SAMPLER_HEUN,
               "sampler numbering");

/* Samples first .. first + count - 1 of the unit through the plug-in, in
 * one call. */
static int generate(unit_run_t *r, size_t first, size_t count, uint16_t *px,
                    cx_err_t *err) {
    uint64_t seed1;
    uint32_t idx1;
    uint64_t *seeds = count > 1 ? malloc(count * sizeof *seeds) : &seed1;
    uint32_t *idx = count > 1 ? malloc(count * sizeof *idx) : &idx1;
    int rc = -1;
    if (!seeds || !idx) {
        cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        goto done;
    }
    for (size_t k = 0; k < count; k++) {
        seeds[k] = r->seed;
        idx[k] = (uint32_t)(first + k);
    }
    cx_genplug_batch_t b = {.struct_size = sizeof b,
                            .class_index = (uint32_t)r->cls,
                            .sampler = r->params.sampler,
                            .steps = r->params.steps,
                            .guidance_scale = r->params.guidance_scale,
                            .eta = r->params.eta,
                            .bit_depth = (uint32_t)r->params.bit_depth,
                            .count = (uint32_t)count,
                            .seeds = seeds,
                            .indices = idx,
                            .out = px};
    rc = cx_plugin_gen_generate(r->gen, &b, err);
done:
    if (seeds != &seed1) free(seeds);
    if (idx != &idx1) free(idx);
    return rc;
}

/* Pool tasks over samples base .. base + n - 1; pre holds them generated
 * already (a batch), or is NULL for tasks that generate their own. */
typedef struct stage_job {
    unit_run_t *r;
    size_t base;
    uint16_t *pre; /* freed once staged */
} stage_job_t;

static void sample_task(void *ctx, size_t t) {
    const stage_job_t *j = ctx;
    unit_run_t *r = j->r;
    size_t i = j->base + t;
    uint16_t *px = NULL, *faulty = NULL;
    double t0 = cx_mono_ms();
    if (!j->pre) {
        px = malloc(r->npx * sizeof *px);
        if (!px) {
            cx_err_set(&r->errs[i], CX_ENOMEM, 0, "out of memory");
            r->failed[i] = ST_GENERATE;
            return;
        }
        if (generate(r, i, 1, px, &r->errs[i]) < 0) {
            r->failed[i] = ST_GENERATE;
            goto out;
        }
    }
    double t1 = cx_mono_ms();
    if (!j->pre) r->gen_ms[i] = t1 - t0;
    const uint16_t *img = j->pre ? j->pre + t * r->npx : px;
    /* test hook, NULL unless CASCADE_FAULT_NOISE is set (fault.h) */
    if ((faulty = cx_fault_apply(img, r->npx, r->params.bit_depth, i)))
        img = faulty;
    if (cx_png_encode_opts(img, r->width, r->height, r->params.bit_depth,
                           &r->png_opts, &r->png[i], &r->errs[i]) < 0) {
        r->failed[i] = ST_ENCODE;
        goto out;
    }
    double t2 = cx_mono_ms();
    r->enc_ms[i] = t2 - t1;
    r->bytes[i] = r->png[i].len;
    free(px);
    px = NULL;
    write_sample(r, i);
    r->wr_ms[i] = cx_mono_ms() - t2;
out:
    free(px);
    free(faulty);
}

/* Writes that failed with a retriable error are retried with backoff; a
 * full disk is waited out, never skipped. -1 only when the service stops
 * first (or the error is not retriable: *fatal then names it). */
static int retry_writes(cx_worker_t *w, unit_run_t *r, size_t n,
                        const char **fatal) {
    for (size_t i = 0; i < n; i++) {
        for (unsigned attempt = 0; r->failed[i] == ST_WRITE; attempt++) {
            if (!r->errs[i].retriable) {
                *fatal = r->errs[i].msg;
                return -1;
            }
            cx_metric_add(w->m_retries, 1);
            CX_WARN("staging write failed, retrying key=%s err=\"%s\"",
                    r->keys[i], r->errs[i].msg);
            if (cx_backoff_sleep(attempt, 200, 10000, cx_service_stop_flag()))
                return -1;
            double t0 = cx_mono_ms();
            write_sample(r, i);
            r->wr_ms[i] += cx_mono_ms() - t0;
        }
    }
    return 0;
}

static void unit_run_free(unit_run_t *r, size_t n) {
    for (size_t i = 0; r->png && i < n; i++) cx_buf_free(&r->png[i]);
    free(r->keys);
    free(r->png);
    free(r->bytes);
    free(r->errs);
    free(r->failed);
    free(r->gen_ms);
    free(r->enc_ms);
    free(r->wr_ms);
}

static int unit_run_alloc(unit_run_t *r, size_t n) {
    r->keys = calloc(n, sizeof *r->keys);
    r->png = calloc(n, sizeof *r->png);
    r->bytes = calloc(n, sizeof *r->bytes);
    r->errs = calloc(n, sizeof *r->errs);
    r->failed = calloc(n, 1);
    r->gen_ms = calloc(n, sizeof *r->gen_ms);
    r->enc_ms = calloc(n, sizeof *r->enc_ms);
    r->wr_ms = calloc(n, sizeof *r->wr_ms);
    return r->keys && r->png && r->bytes && r->errs && r->failed &&
                   r->gen_ms && r->enc_ms && r->wr_ms
               ? 0
               : -1;
}

static int sampler_of(int s) {
    switch (s) {
    case CASCADE__V1__SAMPLER__SAMPLER_EULER: return CX_SAMPLER_EULER;
    case CASCADE__V1__SAMPLER__SAMPLER_HEUN: return CX_SAMPLER_HEUN;
    default: return CX_SAMPLER_DDIM;
    }
}

/* Packs the batch; failure NULL for success. */
static int pack_batch(cx_worker_t *w, const cx_assignment_t *a,
                      Cascade__V1__StagedSample **samples, size_t n,
                      Cascade__V1__StageTiming *timing, const char *failure,
                      int warm_hit, cx_buf_t *out, cx_err_t *err) {
    Cascade__V1__StagedBatch b = CASCADE__V1__STAGED_BATCH__INIT;
    b.unit = a->unit;
    b.worker_id = (char *)w->conf.id;
    b.attempt = a->attempt;
    b.epoch = a->epoch;
    b.n_samples = failure ? 0 : n;
    b.samples = failure ? NULL : samples;
    b.timing = timing;
    b.gpu_type = (char *)w->conf.gpu_type;
    b.staged_unix_ms = cx_now_ms();
    b.failure = (char *)(failure ? failure : "");
    b.warm_hit = warm_hit != 0;
    b.device = (char *)w->conf.device;
    size_t len;
    uint8_t *buf = cx_pack(&b.base, &len, err);
    if (!buf) return -1;
    int rc = cx_buf_append(out, buf, len);
    free(buf);
    if (rc < 0) return cx_err_set(err, CX_ENOMEM, 0, "batch: out of memory");
    return 0;
}

/* A unit from its Assignment to its StagedBatch: generated on the
 * worker's thread (unit_begin), then encoded, written and reported on the
 * stager (unit_finish), which meanwhile leaves the cores to the next
 * unit's generation. */
typedef struct unit_job {
    cx_worker_t *w;
    cx_assignment_t *a; /* owned */
    cx_msg_t *m;        /* cx_worker_handle's message; NULL for run */
    unit_run_t r;
    size_t n;
    int warm_hit;
    int generated; /* r holds the samples' results */
    Cascade__V1__StageTiming timing;
    char failure[600];
    double t0;
} unit_job_t;

static void unit_job_free(unit_job_t *j) {
    if (!j) return;
    unit_run_free(&j->r, j->n ? j->n : 1);
    if (j->a) cascade__v1__assignment__free_unpacked(j->a, NULL);
    cx_msg_free(j->m);
    free(j);
}

/* Encoding and staging of one generated batch (px; NULL: the tasks
 * generate their own samples) on the pool, run by the stager. */
typedef struct batch_task {
    cx_pool_t *pool;
    stage_job_t job;
    size_t n;
} batch_task_t;

static void stage_batch(cx_pool_t *pool, stage_job_t *job, size_t n) {
    cx_pool_for(pool, n, sample_task, job);
    free(job->pre);
}

static void batch_task_run(void *ctx) {
    batch_task_t *b = ctx;
    stage_batch(b->pool, &b->job, b->n);
    free(b);
}

/* Queues the staging of samples base .. base + n - 1; px is handed over.
 * Without memory for the task it is staged here, after what is queued. */
static void push_batch(cx_worker_t *w, unit_run_t *r, size_t base, size_t n,
                       uint16_t *px) {
    stage_job_t job = {r, base, px};
    batch_task_t *b = malloc(sizeof *b);
    if (!b) {
        cx_stager_drain(w->stager);
        stage_batch(w->pool, &job, n);
        return;
    }
    *b = (batch_task_t){w->pool, job, n};
    cx_stager_push(w->stager, batch_task_run, b);
}

/* Batches of max_batch generated on this thread (the plug-in spreads a
 * batch over its own threads or the GPU) and staged on the stager, so
 * encoding and writing batch k overlap the generation of batch k + 1, also
 * across units. Batching is what makes the CPU reference generator fast:
 * it streams its weights once per group of images, about 3x the throughput
 * of one image per call (bench_e2e). With max_batch 1 a concurrent plug-in
 * instead gets one pool task per sample (generate, encode, write), which
 * needs the model until they are done: the caller drains first. */
static int run_samples(cx_worker_t *w, unit_run_t *r, size_t n) {
    if (cx_plugin_gen_concurrent(r->gen) && w->conf.max_batch <= 1) {
        push_batch(w, r, 0, n, NULL);
        return 1;
    }
    size_t bsz = w->conf.max_batch < n ? w->conf.max_batch : n;
    for (size_t s0 = 0; s0 < n; s0 += bsz) {
        size_t k = n - s0 < bsz ? n - s0 : bsz;
        cx_err_t e = {0};
        double t0 = cx_mono_ms();
        uint16_t *px = malloc(k * r->npx * sizeof *px);
        if (!px) cx_err_set(&e, CX_ENOMEM, 0, "out of memory");
        if (!px || generate(r, s0, k, px, &e) < 0) {
            free(px);
            r->errs[s0] = e;
            r->failed[s0] = ST_GENERATE;
            break;
        }
        double per = (cx_mono_ms() - t0) / (double)k;
        for (size_t i = 0; i < k; i++) r->gen_ms[s0 + i] = per;
        push_batch(w, r, s0, k, px);
    }
    return 0;
}

static void set_params(unit_run_t *r, const cx_unit_t *u,
                       const Cascade__V1__GenerationParams *gp) {
    r->params.sampler = sampler_of(gp->sampler);
    r->params.steps = gp->steps;
    r->params.guidance_scale = gp->guidance_scale;
    r->params.eta = gp->eta;
    r->params.bit_depth = gp->bit_depth ? (int)gp->bit_depth : 16;
    r->seed = u->seed;
    r->width = gp->width;
    r->height = gp->height;
    r->npx = (size_t)gp->width * gp->height;
}

/* The model, the class and the store for the unit, then its samples
 * generated and their staging queued. A problem that redelivery cannot
 * fix goes into j->failure (reported, not retried); -1 with err only for
 * a retriable store or out of memory, with nothing queued. */
static int unit_begin(cx_worker_t *w, unit_job_t *j, cx_err_t *err) {
    const cx_unit_t *u = j->a->unit;
    const Cascade__V1__GenerationParams *gp = u->params;
    unit_run_t *r = &j->r;
    cx_warm_info_t wi = {0};
    cx_err_t gerr = {0};
    int rc = 0;

    j->n = u->sample_count;
    if (!gp) {
        snprintf(j->failure, sizeof j->failure,
                 "unit has no generation params");
        return 0;
    }
    cx_warm_model_t *wm = cx_warm_acquire(w->warm, gp->checkpoint, gp->width,
                                          gp->height, &wi, &gerr);
    cx_err_t perr = {0};
    if (cx_warm_publish(w->warm, w->svc->redis, w->conf.id, 0, &perr) < 0)
        CX_WARN("warm pool state not published err=\"%s\"", perr.msg);
    j->warm_hit = wi.hit;
    if (!wm) {
        snprintf(j->failure, sizeof j->failure, "model %s: %s",
                 gp->checkpoint, gerr.msg);
        return 0;
    }
    j->timing.load_ms = wi.load_ms;
    if (!wi.hit)
        CX_INFO("model loaded checkpoint=%s width=%" PRIu32
                " height=%" PRIu32 " device=%s load_ms=%.1f mem_bytes=%" PRIu64,
                gp->checkpoint, gp->width, gp->height, w->conf.device,
                wi.load_ms, wi.mem_bytes);
    r->gen = cx_warm_gen(wm);
    int cls = cx_plugin_gen_class_index(r->gen, u->class_name);
    if (cls < 0) {
        snprintf(j->failure, sizeof j->failure,
                 "class %s unknown to checkpoint %s", u->class_name,
                 gp->checkpoint);
        goto release;
    }
    r->store = cx_service_store(w->svc, u->output_uri, &gerr);
    if (!r->store) {
        if (gerr.retriable) {
            *err = gerr;
            rc = -1;
        } else {
            snprintf(j->failure, sizeof j->failure, "store: %s", gerr.msg);
        }
        goto release;
    }
    r->cls = (size_t)cls;
    r->png_opts = w->conf.png;
    set_params(r, u, gp);
    if (unit_run_alloc(r, j->n ? j->n : 1) < 0) {
        rc = cx_err_set(err, CX_ENOMEM, 0, "unit %s: out of memory",
                        u->unit_id);
        goto release;
    }
    for (size_t i = 0; i < j->n; i++)
        snprintf(r->keys[i], sizeof r->keys[i],
                 "%s/staging/%s/%" PRIu32 "/%zu.png", u->job_id, u->unit_id,
                 j->a->attempt, i);
    j->generated = 1;
    if (run_samples(w, r, j->n)) cx_stager_drain(w->stager);
release:
    cx_warm_release(w->warm, wm);
    return rc;
}

/* Runs on the stager after the unit's batches: the first sample's
 * generate/encode error or a fatal store error becomes the failure, failed
 * writes are retried, the timings summed. -1 with err only when the
 * service stops before the staging is written. */
static int settle_samples(cx_worker_t *w, unit_job_t *j, cx_err_t *err) {
    unit_run_t *r = &j->r;
    for (size_t i = 0; i < j->n; i++)
        if (r->failed[i] == ST_GENERATE || r->failed[i] == ST_ENCODE) {
            snprintf(j->failure, sizeof j->failure, "sample %zu: %s", i,
                     r->errs[i].msg);
            return 0;
        }
    const char *fatal = NULL;
    if (retry_writes(w, r, j->n, &fatal) < 0) {
        if (!fatal)
            return cx_err_set(err, CX_ESTORE, 1,
                              "unit %s: staging not written before stop",
                              j->a->unit->unit_id);
        snprintf(j->failure, sizeof j->failure, "store: %s", fatal);
        return 0;
    }
    for (size_t i = 0; i < j->n; i++) {
        j->timing.generate_ms += r->gen_ms[i];
        j->timing.encode_ms += r->enc_ms[i];
        j->timing.write_ms += r->wr_ms[i];
    }
    return 0;
}

/* The unit's StagedBatch appended to out; -1 with err as settle_samples,
 * or out of memory. */
static int unit_finish(cx_worker_t *w, unit_job_t *j, cx_buf_t *out,
                       cx_err_t *err) {
    const cx_unit_t *u = j->a->unit;
    if (!*j->failure && j->generated && settle_samples(w, j, err) < 0)
        return -1;
    size_t n = *j->failure ? 0 : j->n;
    Cascade__V1__StagedSample *ss = calloc(n ? n : 1, sizeof *ss);
    Cascade__V1__StagedSample **sp = calloc(n ? n : 1, sizeof *sp);
    int rc = -1;
    if (!ss || !sp) {
        cx_err_set(err, CX_ENOMEM, 0, "unit %s: out of memory", u->unit_id);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        cascade__v1__staged_sample__init(&ss[i]);
        ss[i].index = (uint32_t)i;
        ss[i].key = j->r.keys[i];
        ss[i].bytes = j->r.bytes[i];
        sp[i] = &ss[i];
    }
    rc = pack_batch(w, j->a, sp, n, &j->timing,
                    *j->failure ? j->failure : NULL, j->warm_hit, out, err);
    if (rc == 0 && !*j->failure) {
        cx_metric_add(w->m_units, 1);
        cx_metric_add(w->m_samples, n);
    }
    if (*j->failure) {
        cx_metric_add(w->m_failed, 1);
        CX_WARN("unit failed job_id=%s unit_id=%s attempt=%" PRIu32
                " reason=\"%s\"",
                u->job_id, u->unit_id, j->a->attempt, j->failure);
    }
done:
    free(ss);
    free(sp);
    return rc;
}

static unit_job_t *job_new(cx_worker_t *w, cx_err_t *err) {
    unit_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        cx_err_set(err, CX_ENOMEM, 0, "worker: out of memory");
        return NULL;
    }
    j->w = w;
    cascade__v1__stage_timing__init(&j->timing);
    j->t0 = cx_mono_ms();
    return j;
}

int cx_worker_run(cx_worker_t *w, const cx_assignment_t *a, cx_buf_t *out,
                  cx_err_t *err) {
    unit_job_t *j = job_new(w, err);
    if (!j) return -1;
    /* Borrowed for the call: unit_job_free must not free it. */
    j->a = (cx_assignment_t *)a;
    int rc = unit_begin(w, j, err);
    cx_stager_drain(w->stager);
    if (rc == 0) rc = unit_finish(w, j, out, err);
    j->a = NULL;
    unit_job_free(j);
    return rc;
}

/* The StagedBatch to cascade.staged and acknowledged by the broker. A
 * flush that timed out is waited on again (the message is still queued);
 * a message the broker refused is sent again. 0, or -1 when the service
 * stops first or the producer failed for good (*fatal). */
static int report(cx_worker_t *w, const unit_job_t *j, const cx_buf_t *out,
                  int *fatal) {
    const char *job = j->a->unit->job_id;
    int need_send = 1;
    for (unsigned attempt = 0;; attempt++) {
        cx_err_t err = {0};
        if (!need_send ||
            cx_producer_send(w->svc->producer, CX_TOPIC_STAGED, -1, job,
                             strlen(job), out->data, out->len, &err) == 0) {
            need_send = 0;
            if (cx_producer_flush(w->svc->producer, CX_WORKER_FLUSH_MS,
                                  &err) == 0)
                return 0;
            need_send = err.code != CX_ETIMEOUT;
        }
        if (!err.retriable) {
            CX_ERROR("staged batch not sent unit_id=%s err=\"%s\"",
                     j->a->unit->unit_id, err.msg);
            *fatal = 1;
            return -1;
        }
        CX_WARN("staged batch not acknowledged, retrying unit_id=%s "
                "err=\"%s\"",
                j->a->unit->unit_id, err.msg);
        if (cx_backoff_sleep(attempt, 200, 5000, cx_service_stop_flag()))
            return -1;
    }
}

/* The stager's end of cx_worker_handle: report the unit, then hand its
 * message back so that its offset is stored, in arrival order. Once a
 * unit could not be reported (stopping) no later offset is stored, so the
 * partition's next owner redelivers from there. */
static void handle_finish(void *ctx) {
    unit_job_t *j = ctx;
    cx_worker_t *w = j->w;
    cx_buf_t out = {0};
    cx_err_t err = {0};
    int fatal = 0, rc = -1;
    if (!w->broken && j->a) {
        rc = unit_finish(w, j, &out, &err);
        if (rc < 0) {
            fatal = !err.retriable;
            CX_WARN("unit not staged unit_id=%s err=\"%s\"",
                    j->a->unit->unit_id, err.msg);
        } else {
            rc = report(w, j, &out, &fatal);
        }
        if (rc == 0) {
            snprintf(w->last_unit, sizeof w->last_unit, "%s",
                     j->a->unit->unit_id);
            CX_INFO("unit staged job_id=%s unit_id=%s attempt=%" PRIu32
                    " ms=%.1f",
                    j->a->unit->job_id, j->a->unit->unit_id, j->a->attempt,
                    cx_mono_ms() - j->t0);
        }
    } else if (!w->broken) {
        rc = 0; /* a message with no unit to run: just its offset */
    }
    cx_buf_free(&out);
    if (fatal) w->fatal = 1;
    if (rc < 0) w->broken = 1;
    if (rc == 0 && w->done) {
        w->done(w->done_ctx, j->m);
        j->m = NULL;
    }
    unit_job_free(j);
}

void cx_worker_set_done(cx_worker_t *w, cx_worker_done_fn fn, void *ctx) {
    w->done = fn;
    w->done_ctx = ctx;
}

int cx_worker_failed(const cx_worker_t *w) { return w->fatal; }

void cx_worker_drain(cx_worker_t *w) { cx_stager_drain(w->stager); }

/* Hands m (and a, which may be NULL) to the stager as a job. */
static unit_job_t *job_for(cx_worker_t *w, cx_msg_t *m, cx_assignment_t *a,
                           cx_err_t *err) {
    unit_job_t *j = job_new(w, err);
    if (!j) return NULL;
    j->m = m;
    j->a = a;
    return j;
}

int cx_worker_handle(cx_worker_t *w, cx_msg_t *m, cx_err_t *err) {
    cx_err_t derr = {0};
    unit_job_t *j;
    cx_assignment_t *a = cx_decode_assignment(m->payload, m->len, &derr);
    if (!a) {
        CX_WARN("malformed assignment partition=%d offset=%" PRId64
                " reason=\"%s\"",
                (int)m->partition, m->offset, derr.msg);
        if (cx_deadletter(w->svc->producer, "gpu-worker", m, derr.msg, NULL,
                          NULL, err) < 0)
            return -1;
        goto skip;
    }
    const cx_unit_t *u = a->unit;
    if (strcmp(a->worker_id, w->conf.id) != 0) {
        cx_metric_add(w->m_stale, 1);
        CX_INFO("assignment for another worker skipped unit_id=%s worker=%s",
                u->unit_id, a->worker_id);
        goto skip;
    }
    int ok = cx_worker_check(w, a, err);
    if (ok < 0) goto fail;
    if (ok == 0) {
        cx_metric_add(w->m_stale, 1);
        CX_INFO("stale assignment skipped job_id=%s unit_id=%s "
                "epoch=%" PRIu64,
                u->job_id, u->unit_id, a->epoch);
        goto skip;
    }
    CX_INFO("unit started job_id=%s unit_id=%s attempt=%" PRIu32
            " epoch=%" PRIu64 " samples=%" PRIu32,
            u->job_id, u->unit_id, a->attempt, a->epoch, u->sample_count);
    j = job_for(w, m, a, err);
    if (!j) goto fail;
    if (unit_begin(w, j, err) < 0) {
        j->m = NULL; /* still the caller's, to retry */
        j->a = NULL;
        unit_job_free(j);
        goto fail;
    }
    cx_stager_push(w->stager, handle_finish, j);
    return 0;

skip:
    if (a) cascade__v1__assignment__free_unpacked(a, NULL);
    /* Through the stager too, so offsets are stored in arrival order. */
    j = job_for(w, m, NULL, err);
    if (!j) return -1;
    cx_stager_push(w->stager, handle_finish, j);
    return 0;
fail:
    cascade__v1__assignment__free_unpacked(a, NULL);
    return -1;
}

void cx_worker_wait_acked(cx_worker_t *w, int timeout_ms) {
    if (!w->last_unit[0]) return;
    double deadline = cx_mono_ms() + timeout_ms;
    while (cx_mono_ms() < deadline) {
        cx_err_t err = {0};
        redisReply *rep =
            cx_redis_cmd(w->svc->redis, &err, "SISMEMBER cx:worker:%s:inflight %s",
                         w->conf.id, w->last_unit);
        int member = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer;
        if (rep) freeReplyObject(rep);
        if (!rep || !member) return;
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
}
