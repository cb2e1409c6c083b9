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

/* A unit's samples on the pool: each task takes one sample through
 * generate -> encode -> write, so encoding and staging writes overlap other
 * samples' generation instead of waiting at a barrier per phase. Per-sample
 * phase times are thread-milliseconds; their sums are what StageTiming
 * reports. */
enum { ST_OK = 0, ST_GENERATE, ST_ENCODE, ST_WRITE };

typedef struct unit_run {
    const cx_model_t *model;
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

static void sample_task(void *ctx, size_t i) {
    unit_run_t *r = ctx;
    uint16_t *px = malloc(r->npx * sizeof *px);
    if (!px) {
        cx_err_set(&r->errs[i], CX_ENOMEM, 0, "out of memory");
        r->failed[i] = ST_GENERATE;
        return;
    }
    double t0 = cx_mono_ms();
    if (cx_generate(r->model, r->cls, &r->params, r->seed, (uint32_t)i, px,
                    &r->errs[i]) < 0) {
        r->failed[i] = ST_GENERATE;
        goto out;
    }
    double t1 = cx_mono_ms();
    r->gen_ms[i] = t1 - t0;
    if (cx_png_encode_opts(px, r->width, r->height, r->params.bit_depth,
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

/* Generates, encodes and stages every sample of the unit; *failure gets
 * the first sample's generate/encode error or a fatal store error. -1 with
 * err only for a retriable stop (staging incomplete when stopping). */
static int stage_samples(cx_worker_t *w, const cx_assignment_t *a,
                         unit_run_t *r, size_t n,
                         Cascade__V1__StageTiming *timing, char *failure,
                         size_t failure_len, cx_err_t *err) {
    const cx_unit_t *u = a->unit;
    for (size_t i = 0; i < n; i++)
        snprintf(r->keys[i], sizeof r->keys[i],
                 "%s/staging/%s/%" PRIu32 "/%zu.png", u->job_id, u->unit_id,
                 a->attempt, i);
    cx_pool_for(w->pool, n, sample_task, r);
    for (size_t i = 0; i < n; i++)
        if (r->failed[i] == ST_GENERATE || r->failed[i] == ST_ENCODE) {
            snprintf(failure, failure_len, "sample %zu: %s", i,
                     r->errs[i].msg);
            return 0;
        }
    const char *fatal = NULL;
    if (retry_writes(w, r, n, &fatal) < 0) {
        if (!fatal)
            return cx_err_set(err, CX_ESTORE, 1,
                              "unit %s: staging not written before stop",
                              u->unit_id);
        snprintf(failure, failure_len, "store: %s", fatal);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        timing->generate_ms += r->gen_ms[i];
        timing->encode_ms += r->enc_ms[i];
        timing->write_ms += r->wr_ms[i];
    }
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
    unit_run_t r = {0};
    Cascade__V1__StagedSample *ss = NULL, **sp = NULL;

    if (!gp) {
        snprintf(failure, sizeof failure, "unit has no generation params");
        goto report;
    }
    r.model = model_get(w, gp->checkpoint, gp->width, gp->height,
                        &timing.load_ms, &gerr);
    if (!r.model) {
        snprintf(failure, sizeof failure, "model %s: %s", gp->checkpoint,
                 gerr.msg);
        goto report;
    }
    int cls = cx_model_class_index(r.model, u->class_name);
    if (cls < 0) {
        snprintf(failure, sizeof failure,
                 "class %s unknown to checkpoint %s", u->class_name,
                 gp->checkpoint);
        goto report;
    }
    r.store = cx_service_store(w->svc, u->output_uri, &gerr);
    if (!r.store) {
        if (gerr.retriable) {
            *err = gerr;
            return -1;
        }
        snprintf(failure, sizeof failure, "store: %s", gerr.msg);
        goto report;
    }
    r.cls = (size_t)cls;
    r.params.sampler = sampler_of(gp->sampler);
    r.params.steps = gp->steps;
    r.params.guidance_scale = gp->guidance_scale;
    r.params.eta = gp->eta;
    r.params.bit_depth = gp->bit_depth ? (int)gp->bit_depth : 16;
    r.png_opts = w->conf.png;
    r.seed = u->seed;
    r.width = gp->width;
    r.height = gp->height;
    r.npx = (size_t)gp->width * gp->height;

    ss = calloc(n ? n : 1, sizeof *ss);
    sp = calloc(n ? n : 1, sizeof *sp);
    if (!ss || !sp || unit_run_alloc(&r, n ? n : 1) < 0) {
        cx_err_set(err, CX_ENOMEM, 0, "unit %s: out of memory", u->unit_id);
        goto done;
    }
    if (stage_samples(w, a, &r, n, &timing, failure, sizeof failure, err) < 0)
        goto done;
    for (size_t j = 0; j < n; j++) {
        cascade__v1__staged_sample__init(&ss[j]);
        ss[j].index = (uint32_t)j;
        ss[j].key = r.keys[j];
        ss[j].bytes = r.bytes[j];
        sp[j] = &ss[j];
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
    unit_run_free(&r, n ? n : 1);
    free(ss);
    free(sp);
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
