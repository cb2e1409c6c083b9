/* Assignment -> samples in staging -> StagedBatch. */
#include "worker.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cascade/gen.h"
#include "cascade/log.h"
#include "cascade/png16.h"
#include "cascade/pool.h"
#include "cascade/redis.h"
#include "cascade/store.h"

#define CX_WORKER_FLUSH_MS 10000

typedef struct model_slot {
    char *checkpoint;
    uint32_t width, height;
    cx_model_t *model;
    uint64_t used; /* LRU tick */
} model_slot_t;

struct cx_worker {
    cx_service_t *svc;
    cx_worker_conf_t conf;
    cx_pool_t *pool;
    model_slot_t *models;
    uint64_t tick;
    char last_unit[64]; /* last unit staged, for cx_worker_wait_acked */
    cx_metric_t *m_units, *m_samples, *m_failed, *m_stale, *m_retries;
};

cx_worker_t *cx_worker_new(cx_service_t *svc, const cx_worker_conf_t *conf,
                           cx_err_t *err) {
    cx_worker_t *w = calloc(1, sizeof *w);
    if (!w) goto fail_nomem;
    w->svc = svc;
    w->conf = *conf;
    if (w->conf.models == 0) w->conf.models = 1;
    w->models = calloc(w->conf.models, sizeof *w->models);
    if (!w->models) goto fail_nomem;
    w->pool = cx_pool_new(conf->threads, err);
    if (!w->pool) goto fail_pool;
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
    for (size_t i = 0; w->models && i < w->conf.models; i++) {
        free(w->models[i].checkpoint);
        cx_model_destroy(w->models[i].model);
    }
    free(w->models);
    cx_pool_destroy(w->pool);
    free(w);
}

/* The warm model for (checkpoint, size), loading it into the least
 * recently used slot. *load_ms gets the load time (0 when warm). */
static const cx_model_t *model_get(cx_worker_t *w, const char *ckpt,
                                   uint32_t width, uint32_t height,
                                   double *load_ms, cx_err_t *err) {
    model_slot_t *victim = &w->models[0];
    *load_ms = 0;
    for (size_t i = 0; i < w->conf.models; i++) {
        model_slot_t *s = &w->models[i];
        if (s->model && s->width == width && s->height == height &&
            strcmp(s->checkpoint, ckpt) == 0) {
            s->used = ++w->tick;
            return s->model;
        }
        if (!s->model || (victim->model && s->used < victim->used))
            victim = s;
    }
    double t0 = cx_mono_ms();
    cx_model_t *m = cx_model_open(ckpt, width, height, err);
    if (!m) return NULL;
    char *name = strdup(ckpt);
    if (!name) {
        cx_model_destroy(m);
        cx_err_set(err, CX_ENOMEM, 0, "model cache: out of memory");
        return NULL;
    }
    free(victim->checkpoint);
    cx_model_destroy(victim->model);
    victim->checkpoint = name;
    victim->width = width;
    victim->height = height;
    victim->model = m;
    victim->used = ++w->tick;
    *load_ms = cx_mono_ms() - t0;
    CX_INFO("model loaded checkpoint=%s width=%" PRIu32 " height=%" PRIu32
            " load_ms=%.1f",
            ckpt, width, height, *load_ms);
    return m;
}

int cx_worker_check(cx_worker_t *w, const cx_assignment_t *a, cx_err_t *err) {
    const cx_unit_t *u = a->unit;
    redisReply *rep = cx_redis_cmd(w->svc->redis, err,
                                   "HMGET cx:unit:%s state worker epoch",
                                   u->unit_id);
    if (!rep) return cx_err_wrap(err, "fence unit %s", u->unit_id);
    char epoch[24];
    snprintf(epoch, sizeof epoch, "%" PRIu64, a->epoch);
    int ok = rep->type == REDIS_REPLY_ARRAY && rep->elements == 3;
    for (size_t i = 0; ok && i < 3; i++)
        ok = rep->element[i]->type == REDIS_REPLY_STRING;
    ok = ok && strcmp(rep->element[0]->str, "leased") == 0 &&
         strcmp(rep->element[1]->str, w->conf.id) == 0 &&
         strcmp(rep->element[2]->str, epoch) == 0;
    freeReplyObject(rep);
    if (!ok) return 0;
    rep = cx_redis_cmd(w->svc->redis, err, "HGET cx:job:%s state", u->job_id);
    if (!rep) return cx_err_wrap(err, "job state %s", u->job_id);
    ok = !(rep->type == REDIS_REPLY_STRING &&
           strcmp(rep->str, "CANCELLED") == 0);
    freeReplyObject(rep);
    return ok;
}

/* One chunk of samples, processed phase by phase on the pool. */
typedef struct chunk {
    const cx_model_t *model;
    size_t cls;
    cx_sample_params_t params;
    uint64_t seed;
    uint32_t first, width, height;
    int level;
    size_t npx;
    uint16_t *px;
    cx_buf_t *png;
    cx_err_t *errs;
    char *failed;
    char (*keys)[256];
    cx_store_t *store;
} chunk_t;

static void phase_generate(void *ctx, size_t i) {
    chunk_t *c = ctx;
    if (cx_generate(c->model, c->cls, &c->params, c->seed,
                    c->first + (uint32_t)i, c->px + i * c->npx,
                    &c->errs[i]) < 0)
        c->failed[i] = 1;
}

static void phase_encode(void *ctx, size_t i) {
    chunk_t *c = ctx;
    if (c->failed[i]) return;
    c->png[i].len = 0;
    if (cx_png_encode(c->px + i * c->npx, c->width, c->height,
                      c->params.bit_depth, c->level, &c->png[i],
                      &c->errs[i]) < 0)
        c->failed[i] = 1;
}

static void phase_write(void *ctx, size_t i) {
    chunk_t *c = ctx;
    if (c->failed[i]) return;
    if (cx_store_put(c->store, c->keys[i], c->png[i].data, c->png[i].len,
                     &c->errs[i]) < 0)
        c->failed[i] = 1;
}

/* Writes that failed with a retriable error are retried with backoff; a
 * full disk is waited out, never skipped. -1 only when the service stops
 * first (or the error is not retriable: *fatal then names it). */
static int retry_writes(cx_worker_t *w, chunk_t *c, size_t n,
                        const char **fatal) {
    for (size_t i = 0; i < n; i++) {
        for (unsigned attempt = 0; c->failed[i]; attempt++) {
            if (!c->errs[i].retriable) {
                *fatal = c->errs[i].msg;
                return -1;
            }
            cx_metric_add(w->m_retries, 1);
            CX_WARN("staging write failed, retrying key=%s err=\"%s\"",
                    c->keys[i], c->errs[i].msg);
            if (cx_backoff_sleep(attempt, 200, 10000, cx_service_stop_flag()))
                return -1;
            c->failed[i] = 0;
            phase_write(c, i);
        }
    }
    return 0;
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
                      cx_buf_t *out, cx_err_t *err) {
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
    size_t len;
    uint8_t *buf = cx_pack(&b.base, &len, err);
    if (!buf) return -1;
    int rc = cx_buf_append(out, buf, len);
    free(buf);
    if (rc < 0) return cx_err_set(err, CX_ENOMEM, 0, "batch: out of memory");
    return 0;
}

int cx_worker_run(cx_worker_t *w, const cx_assignment_t *a, cx_buf_t *out,
                  cx_err_t *err) {
    const cx_unit_t *u = a->unit;
    const Cascade__V1__GenerationParams *gp = u->params;
    Cascade__V1__StageTiming timing = CASCADE__V1__STAGE_TIMING__INIT;
    char failure[600] = "";
    cx_err_t gerr = {0};
    int rc = -1;
    uint32_t n = u->sample_count;
    chunk_t c = {0};
    Cascade__V1__StagedSample *ss = NULL, **sp = NULL;
    char(*allkeys)[256] = NULL;
    size_t chunk = 0;

    if (!gp) {
        snprintf(failure, sizeof failure, "unit has no generation params");
        goto report;
    }
    c.model = model_get(w, gp->checkpoint, gp->width, gp->height,
                        &timing.load_ms, &gerr);
    if (!c.model) {
        snprintf(failure, sizeof failure, "model %s: %s", gp->checkpoint,
                 gerr.msg);
        goto report;
    }
    int cls = cx_model_class_index(c.model, u->class_name);
    if (cls < 0) {
        snprintf(failure, sizeof failure,
                 "class %s unknown to checkpoint %s", u->class_name,
                 gp->checkpoint);
        goto report;
    }
    c.store = cx_service_store(w->svc, u->output_uri, &gerr);
    if (!c.store) {
        if (gerr.retriable) {
            *err = gerr;
            return -1;
        }
        snprintf(failure, sizeof failure, "store: %s", gerr.msg);
        goto report;
    }
    c.cls = (size_t)cls;
    c.params.sampler = sampler_of(gp->sampler);
    c.params.steps = gp->steps;
    c.params.guidance_scale = gp->guidance_scale;
    c.params.eta = gp->eta;
    c.params.bit_depth = gp->bit_depth ? (int)gp->bit_depth : 16;
    c.seed = u->seed;
    c.width = gp->width;
    c.height = gp->height;
    c.level = w->conf.png_level;
    c.npx = (size_t)gp->width * gp->height;

    chunk = (size_t)cx_pool_size(w->pool) * 2;
    if (chunk > n) chunk = n ? n : 1;
    c.px = malloc(chunk * c.npx * sizeof *c.px);
    c.png = calloc(chunk, sizeof *c.png);
    c.errs = calloc(chunk, sizeof *c.errs);
    c.failed = calloc(chunk, 1);
    c.keys = calloc(chunk, sizeof *c.keys);
    ss = calloc(n ? n : 1, sizeof *ss);
    sp = calloc(n ? n : 1, sizeof *sp);
    allkeys = calloc(n ? n : 1, sizeof *allkeys);
    if (!c.px || !c.png || !c.errs || !c.failed || !c.keys || !ss || !sp ||
        !allkeys) {
        cx_err_set(err, CX_ENOMEM, 0, "unit %s: out of memory", u->unit_id);
        goto done;
    }

    for (uint32_t first = 0; first < n && !*failure; first += (uint32_t)chunk) {
        size_t k = n - first < chunk ? n - first : chunk;
        c.first = first;
        memset(c.failed, 0, chunk);
        memset(c.errs, 0, chunk * sizeof *c.errs);
        for (size_t i = 0; i < k; i++)
            snprintf(c.keys[i], sizeof c.keys[i], "%s/staging/%s/%" PRIu32
                     "/%" PRIu32 ".png",
                     u->job_id, u->unit_id, a->attempt, first + (uint32_t)i);
        double t0 = cx_mono_ms();
        cx_pool_for(w->pool, k, phase_generate, &c);
        double t1 = cx_mono_ms();
        cx_pool_for(w->pool, k, phase_encode, &c);
        double t2 = cx_mono_ms();
        for (size_t i = 0; i < k && !*failure; i++)
            if (c.failed[i])
                snprintf(failure, sizeof failure, "sample %" PRIu32 ": %s",
                         first + (uint32_t)i, c.errs[i].msg);
        if (*failure) break;
        cx_pool_for(w->pool, k, phase_write, &c);
        const char *fatal = NULL;
        if (retry_writes(w, &c, k, &fatal) < 0) {
            if (!fatal) {
                cx_err_set(err, CX_ESTORE, 1,
                           "unit %s: staging not written before stop",
                           u->unit_id);
                goto done;
            }
            snprintf(failure, sizeof failure, "store: %s", fatal);
        }
        double t3 = cx_mono_ms();
        timing.generate_ms += t1 - t0;
        timing.encode_ms += t2 - t1;
        timing.write_ms += t3 - t2;
        for (size_t i = 0; i < k; i++) {
            size_t j = first + i;
            cascade__v1__staged_sample__init(&ss[j]);
            memcpy(allkeys[j], c.keys[i], sizeof allkeys[j]);
            ss[j].index = (uint32_t)j;
            ss[j].key = allkeys[j];
            ss[j].bytes = c.png[i].len;
            sp[j] = &ss[j];
        }
    }

    rc = pack_batch(w, a, sp, n, &timing, *failure ? failure : NULL, out,
                    err);
    if (rc == 0 && !*failure) {
        cx_metric_add(w->m_units, 1);
        cx_metric_add(w->m_samples, n);
    }
    goto done;

report:
    rc = pack_batch(w, a, NULL, 0, &timing, failure, out, err);
done:
    if (*failure) {
        cx_metric_add(w->m_failed, 1);
        CX_WARN("unit failed job_id=%s unit_id=%s attempt=%" PRIu32
                " reason=\"%s\"",
                u->job_id, u->unit_id, a->attempt, failure);
    }
    for (size_t i = 0; c.png && i < chunk; i++) cx_buf_free(&c.png[i]);
    free(c.px);
    free(c.png);
    free(c.errs);
    free(c.failed);
    free(c.keys);
    free(ss);
    free(sp);
    free(allkeys);
    return rc;
}

int cx_worker_handle(cx_worker_t *w, const cx_msg_t *m, cx_err_t *err) {
    cx_err_t derr = {0};
    cx_assignment_t *a = cx_decode_assignment(m->payload, m->len, &derr);
    if (!a) {
        CX_WARN("malformed assignment partition=%d offset=%" PRId64
                " reason=\"%s\"",
                (int)m->partition, m->offset, derr.msg);
        return cx_deadletter(w->svc->producer, "gpu-worker", m, derr.msg,
                             NULL, NULL, err);
    }
    const cx_unit_t *u = a->unit;
    int rc = 0;
    if (strcmp(a->worker_id, w->conf.id) != 0) {
        cx_metric_add(w->m_stale, 1);
        CX_INFO("assignment for another worker skipped unit_id=%s worker=%s",
                u->unit_id, a->worker_id);
        goto done;
    }
    int ok = cx_worker_check(w, a, err);
    if (ok <= 0) {
        rc = ok;
        if (ok == 0) {
            cx_metric_add(w->m_stale, 1);
            CX_INFO("stale assignment skipped job_id=%s unit_id=%s "
                    "epoch=%" PRIu64,
                    u->job_id, u->unit_id, a->epoch);
        }
        goto done;
    }
    CX_INFO("unit started job_id=%s unit_id=%s attempt=%" PRIu32
            " epoch=%" PRIu64 " samples=%" PRIu32,
            u->job_id, u->unit_id, a->attempt, a->epoch, u->sample_count);
    double t0 = cx_mono_ms();
    cx_buf_t out = {0};
    rc = cx_worker_run(w, a, &out, err);
    if (rc == 0)
        rc = cx_producer_send(w->svc->producer, CX_TOPIC_STAGED, -1,
                              u->job_id, strlen(u->job_id), out.data, out.len,
                              err);
    if (rc == 0)
        rc = cx_producer_flush(w->svc->producer, CX_WORKER_FLUSH_MS, err);
    cx_buf_free(&out);
    if (rc == 0) {
        snprintf(w->last_unit, sizeof w->last_unit, "%s", u->unit_id);
        CX_INFO("unit staged job_id=%s unit_id=%s attempt=%" PRIu32
                " ms=%.1f",
                u->job_id, u->unit_id, a->attempt, cx_mono_ms() - t0);
    }
done:
    cascade__v1__assignment__free_unpacked(a, NULL);
    return rc;
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
