/* cx_planner_*: accept, reject, cancel and reconcile jobs (planner.h). */
#include "planner.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/codec.h"
#include "cascade/jobstate.h"
#include "cascade/log.h"
#include "cascade/names.h"
#include "cascade/sha256.h"
#include "cascade/util.h"
#include "cascade/gen.h"
#include "dataset.h"
#include "gates.h"
#include "plan.h"
#include "policy.h"

#define CX__FLUSH_MS 15000
/* A class's pass rate counts once this many samples were generated, and
 * is never believed below the floor (a broken class must not be issued
 * without bound). */
#define CX__PASS_MIN_SAMPLES 50
#define CX__PASS_FLOOR 0.05

struct cx_planner {
    cx_service_t *svc;
    cx_metric_t *units_issued, *jobs_accepted, *jobs_rejected, *jobs_done;
};

/* KEYS: job quota jobs jobs:all
 * ARGV: spec submitted_ms tenant priority deadline_ms total_quota classes
 *       job_id [class quota]...
 * 1: accepted now, 0: the same spec was accepted before, -1: the id holds
 * another job. A REJECTED record may be replaced by a valid submission. */
static cx_redis_script_t accept_script = {.lua =
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if st and st ~= 'REJECTED' then\n"
    "  if redis.call('HGET', KEYS[1], 'spec') == ARGV[1] then return 0 end\n"
    "  return -1\n"
    "end\n"
    "redis.call('DEL', KEYS[1], KEYS[2])\n"
    "redis.call('HSET', KEYS[1], 'state', 'ACCEPTED', 'spec', ARGV[1],\n"
    "  'submitted_ms', ARGV[2], 'tenant', ARGV[3], 'priority', ARGV[4],\n"
    "  'deadline_ms', ARGV[5], 'total_quota', ARGV[6], 'classes', ARGV[7])\n"
    "for i = 9, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+1]) end\n"
    "redis.call('SADD', KEYS[3], ARGV[8])\n"
    "redis.call('ZADD', KEYS[4], ARGV[2], ARGV[8])\n"
    "return 1\n"};

/* KEYS: job jobs:all  ARGV: reason submitted_ms tenant job_id
 * Never overwrites a live job that happens to own the id. */
static cx_redis_script_t reject_script = {.lua =
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if st and st ~= 'REJECTED' then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', 'REJECTED', 'reason', ARGV[1],\n"
    "  'submitted_ms', ARGV[2], 'tenant', ARGV[3])\n"
    "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])\n"
    "return 1\n"};

/* KEYS: issued next_ordinal round
 * ARGV: [class old_next delta new_next new_round]...
 * Compare-and-set on next_ordinal: a second planner that planned from the
 * same snapshot produced the same unit ids and must not count them again. */
static cx_redis_script_t record_script = {.lua =
    "local n = 0\n"
    "for i = 1, #ARGV, 5 do\n"
    "  local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')\n"
    "  if cur == tonumber(ARGV[i+1]) then\n"
    "    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i+2])\n"
    "    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+3])\n"
    "    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i+4])\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n"};

/* KEYS: job jobs  ARGV: new_state job_id now_ms
 * Ends an ACCEPTED job (DONE or CANCELLED); 0 if it was not ACCEPTED. */
static cx_redis_script_t finish_script = {.lua =
    "if redis.call('HGET', KEYS[1], 'state') ~= 'ACCEPTED' then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', ARGV[1])\n"
    "redis.call('HSETNX', KEYS[1], 'done_ms', ARGV[3])\n"
    "redis.call('SREM', KEYS[2], ARGV[2])\n"
    "return 1\n"};

cx_planner_t *cx_planner_new(cx_service_t *svc, cx_err_t *err) {
    cx_planner_t *p = calloc(1, sizeof *p);
    if (!p) {
        cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        return NULL;
    }
    p->svc = svc;
    if (svc->metrics) {
        p->units_issued = cx_metrics_counter(svc->metrics,
            "cascade_planner_units_issued_total", "Work units produced", NULL, NULL);
        p->jobs_accepted = cx_metrics_counter(svc->metrics,
            "cascade_planner_jobs_accepted_total", "Jobs accepted", NULL, NULL);
        p->jobs_rejected = cx_metrics_counter(svc->metrics,
            "cascade_planner_jobs_rejected_total", "Jobs rejected", NULL, NULL);
        p->jobs_done = cx_metrics_counter(svc->metrics,
            "cascade_planner_jobs_done_total", "Jobs completed", NULL, NULL);
    }
    return p;
}

void cx_planner_destroy(cx_planner_t *p) { free(p); }

static int send_event(cx_planner_t *p, const char *job_id, int type,
                      const char *message, cx_err_t *err) {
    Cascade__V1__JobEvent ev = CASCADE__V1__JOB_EVENT__INIT;
    size_t len;
    ev.job_id = (char *)job_id;
    ev.type = (Cascade__V1__JobEventType)type;
    ev.message = (char *)message;
    ev.unix_ms = cx_now_ms();
    uint8_t *buf = cx_pack(&ev.base, &len, err);
    if (!buf) return -1;
    int rc = cx_producer_send(p->svc->producer, CX_TOPIC_JOB_EVENTS, -1, job_id,
                              strlen(job_id), buf, len, err);
    free(buf);
    return rc;
}

static int send_event_flush(cx_planner_t *p, const char *job_id, int type,
                            const char *message, cx_err_t *err) {
    if (send_event(p, job_id, type, message, err) < 0) return -1;
    return cx_producer_flush(p->svc->producer, CX__FLUSH_MS, err);
}

static int reject(cx_planner_t *p, const cx_jobspec_t *spec,
                  const char *reason, int record, cx_err_t *err) {
    const char *job = spec->job_id ? spec->job_id : "";
    CX_WARN("job rejected job_id=%s reason=\"%s\"", job, reason);
    cx_metric_add(p->jobs_rejected, 1);
    if (record && cx_name_check("job id", job, NULL) == 0) {
        char k[2][CX_NAME_MAX + 40], sub[24];
        cx_jobstate_key(k[0], sizeof k[0], job, NULL);
        snprintf(k[1], sizeof k[1], "%s", CX_JOBS_ALL_KEY);
        snprintf(sub, sizeof sub, "%" PRId64,
                 spec->submitted_unix_ms ? spec->submitted_unix_ms : cx_now_ms());
        const char *args[] = {k[0], k[1], reason, sub,
                              spec->tenant ? spec->tenant : "", job};
        redisReply *r = cx_redis_eval(p->svc->redis, &reject_script, 2, 4, args, err);
        if (!r) return cx_err_wrap(err, "recording rejection of %s", job);
        freeReplyObject(r);
    }
    return send_event_flush(p, job, CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_REJECTED,
                            reason, err);
}

static int class_known(void *ctx, const char *checkpoint, const char *name) {
    (void)ctx;
    return cx_checkpoint_has_class(checkpoint, name);
}

/* Writes the accepted job's hashes. Returns 1 new, 0 same spec, -1 other
 * job holds the id, -2 error. The spec is binary, so this one script goes
 * through EVAL with explicit lengths rather than cx_redis_eval. */
static int store_job(cx_planner_t *p, const cx_jobspec_t *spec,
                     const uint8_t *packed, size_t plen, cx_err_t *err) {
    size_t n = spec->n_classes, a = 0;
    uint64_t quotas[CX_MAX_CLASSES];
    uint64_t total = cx_jobspec_quotas(spec, quotas);
    char k[4][CX_NAME_MAX + 40], sub[24], prio[16], dl[24], tot[24];
    char qs[CX_MAX_CLASSES][24];
    const char *argv[16 + 2 * CX_MAX_CLASSES];
    size_t lens[16 + 2 * CX_MAX_CLASSES];
    cx_buf_t classes = {0};
    int rc = -2;

    if (n > CX_MAX_CLASSES) {
        cx_err_set(err, CX_EINVAL, 0, "too many classes");
        return -2;
    }
    for (size_t i = 0; i < n; i++) {
        if (cx_buf_printf(&classes, "%s%s", i ? "," : "",
                          spec->classes[i]->name) < 0)
            goto oom;
        snprintf(qs[i], sizeof qs[i], "%" PRIu64, quotas[i]);
    }
    if (cx_buf_append(&classes, "", 1) < 0) goto oom;
    cx_jobstate_key(k[0], sizeof k[0], spec->job_id, NULL);
    cx_jobstate_key(k[1], sizeof k[1], spec->job_id, "quota");
    snprintf(k[2], sizeof k[2], "%s", CX_JOBS_ACTIVE_KEY);
    snprintf(k[3], sizeof k[3], "%s", CX_JOBS_ALL_KEY);
    snprintf(sub, sizeof sub, "%" PRId64,
             spec->submitted_unix_ms ? spec->submitted_unix_ms : cx_now_ms());
    snprintf(prio, sizeof prio, "%" PRId32, spec->priority);
    snprintf(dl, sizeof dl, "%" PRId64, spec->deadline_unix_ms);
    snprintf(tot, sizeof tot, "%" PRIu64, total);

    argv[a++] = "EVAL";
    argv[a++] = accept_script.lua;
    argv[a++] = "4";
    for (int i = 0; i < 4; i++) argv[a++] = k[i];
    argv[a++] = (const char *)packed;
    argv[a++] = sub;
    argv[a++] = spec->tenant ? spec->tenant : "";
    argv[a++] = prio;
    argv[a++] = dl;
    argv[a++] = tot;
    argv[a++] = (const char *)classes.data;
    argv[a++] = spec->job_id;
    for (size_t i = 0; i < n; i++) {
        argv[a++] = spec->classes[i]->name;
        argv[a++] = qs[i];
    }
    for (size_t i = 0; i < a; i++) lens[i] = strlen(argv[i]);
    lens[7] = plen;

    redisReply *r = cx_redis_cmdargv(p->svc->redis, (int)a, argv, lens, err);
    if (!r) {
        cx_err_wrap(err, "storing job %s", spec->job_id);
    } else if (r->type != REDIS_REPLY_INTEGER) {
        cx_err_set(err, CX_EREDIS, 0, "storing job %s: unexpected reply",
                   spec->job_id);
    } else {
        rc = (int)r->integer;
    }
    freeReplyObject(r);
    cx_buf_free(&classes);
    return rc;
oom:
    cx_buf_free(&classes);
    cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    return -2;
}

/* A spec without a job id gets one derived from its bytes, so a
 * redelivered submission names the same job instead of starting another. */
static int assign_job_id(cx_jobspec_t *spec, const cx_msg_t *m, cx_err_t *err) {
    char hex[65], *id;
    if (spec->job_id && *spec->job_id) return 0;
    cx_sha256_hex(m->payload, m->len, hex);
    if (!(id = malloc(4 + 16 + 1)))
        return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    snprintf(id, 21, "job-%.16s", hex);
    /* protobuf-c frees non-default strings with free(). */
    if (spec->job_id && spec->job_id != protobuf_c_empty_string)
        free(spec->job_id);
    spec->job_id = id;
    return 0;
}

static int replace_string(char **field, const char *value, cx_err_t *err) {
    char *s = strdup(value);
    if (!s) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    if (*field && *field != protobuf_c_empty_string) free(*field);
    *field = s;
    return 0;
}

static int submit(cx_planner_t *p, cx_jobspec_t *spec, const cx_msg_t *m,
                  cx_err_t *err) {
    cx_err_t verr = {0};
    size_t plen;

    if (assign_job_id(spec, m, err) < 0) return -1;
    if (cx_jobspec_apply_defaults(spec, err) < 0) return -1;
    if ((!spec->output_uri || !*spec->output_uri) &&
        replace_string(&spec->output_uri, p->svc->conf->store_uri, err) < 0)
        return -1;
    if (cx_name_check("job_id", spec->job_id, &verr) < 0)
        return reject(p, spec, verr.msg, 0, err);
    if (cx_jobspec_validate(spec, class_known, NULL, &verr) < 0 ||
        cx_gate_criteria_check(spec->validation, &verr) < 0)
        return reject(p, spec, verr.msg, 1, err);

    uint8_t *packed = cx_pack(&spec->base, &plen, err);
    if (!packed) return -1;
    int rc = store_job(p, spec, packed, plen, err);
    free(packed);
    switch (rc) {
    case 1:
        CX_INFO("job accepted job_id=%s classes=%zu total=%" PRIu64,
                spec->job_id, spec->n_classes, spec->total_count);
        cx_metric_add(p->jobs_accepted, 1);
        if (send_event_flush(p, spec->job_id,
                             CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_ACCEPTED,
                             "accepted", err) < 0)
            return -1;
        return cx_planner_reconcile(p, spec->job_id, err);
    case 0:
        /* A redelivery after a crash between storing the job and sending
         * its event: send it again (events are at-least-once). */
        CX_INFO("job resubmitted unchanged job_id=%s", spec->job_id);
        if (send_event_flush(p, spec->job_id,
                             CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_ACCEPTED,
                             "accepted", err) < 0)
            return -1;
        return cx_planner_reconcile(p, spec->job_id, err);
    case -1:
        return reject(p, spec, "job id already in use", 0, err);
    default:
        return -1;
    }
}

static int finish(cx_planner_t *p, const char *job_id, const char *state,
                  cx_err_t *err) {
    char k[2][CX_NAME_MAX + 40], now[24];
    cx_jobstate_key(k[0], sizeof k[0], job_id, NULL);
    snprintf(k[1], sizeof k[1], "%s", CX_JOBS_ACTIVE_KEY);
    snprintf(now, sizeof now, "%" PRId64, cx_now_ms());
    const char *args[] = {k[0], k[1], state, job_id, now};
    redisReply *r = cx_redis_eval(p->svc->redis, &finish_script, 2, 3, args, err);
    if (!r) return cx_err_wrap(err, "marking job %s %s", job_id, state);
    freeReplyObject(r);
    return 0;
}

static int cancel(cx_planner_t *p, const cx_jobspec_t *spec, cx_err_t *err) {
    cx_jobstate_t *st = NULL;
    const char *job = spec->job_id ? spec->job_id : "";
    cx_err_t verr = {0};

    if (cx_name_check("job_id", job, &verr) < 0)
        return send_event_flush(p, job, CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_REJECTED,
                                verr.msg, err);
    int rc = cx_jobstate_load(p->svc->redis, job, &st, err);
    if (rc < 0) return -1;
    if (rc == 0 || !st->state[0]) {
        cx_jobstate_free(st);
        CX_WARN("cancel of an unknown job job_id=%s", job);
        return send_event_flush(p, job, CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_REJECTED,
                                "cancel: unknown job", err);
    }
    int live = strcmp(st->state, CX_JOB_ACCEPTED) == 0 ||
               strcmp(st->state, CX_JOB_CANCELLED) == 0;
    if (!live) {
        CX_INFO("cancel ignored job_id=%s state=%s", job, st->state);
        cx_jobstate_free(st);
        return 0;
    }
    cx_jobstate_free(st);
    /* Event first, then the state: a crash between the two redelivers the
     * cancel, which finds the job still live and announces it again. */
    if (send_event_flush(p, job, CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_CANCELLED,
                         "cancelled", err) < 0)
        return -1;
    CX_INFO("job cancelled job_id=%s", job);
    return finish(p, job, CX_JOB_CANCELLED, err);
}

int cx_planner_handle_job(cx_planner_t *p, const cx_msg_t *m, cx_err_t *err) {
    cx_err_t derr = {0};
    cx_jobspec_t *spec = cx_decode_jobspec(m->payload, m->len, &derr);
    if (!spec) {
        CX_WARN("malformed job spec topic=%s offset=%" PRId64 " reason=\"%s\"",
                m->topic, m->offset, derr.msg);
        return cx_deadletter(p->svc->producer, "planner", m, derr.msg, NULL,
                             NULL, err);
    }
    int rc = spec->action == CASCADE__V1__JOB_ACTION__JOB_ACTION_CANCEL
                 ? cancel(p, spec, err)
                 : submit(p, spec, m, err);
    cascade__v1__job_spec__free_unpacked(spec, NULL);
    return rc;
}

int cx_planner_handle_progress(cx_planner_t *p, const cx_msg_t *m,
                               cx_err_t *err) {
    cx_err_t derr = {0};
    cx_progress_t *pr = cx_decode_progress(m->payload, m->len, &derr);
    if (!pr) {
        CX_WARN("malformed progress topic=%s offset=%" PRId64 " reason=\"%s\"",
                m->topic, m->offset, derr.msg);
        return cx_deadletter(p->svc->producer, "planner", m, derr.msg, NULL,
                             NULL, err);
    }
    int rc = 0;
    if (cx_name_check("job_id", pr->job_id, &derr) < 0)
        rc = cx_deadletter(p->svc->producer, "planner", m, derr.msg, NULL,
                           NULL, err);
    else
        rc = cx_planner_reconcile(p, pr->job_id, err);
    cascade__v1__progress__free_unpacked(pr, NULL);
    return rc;
}

/* The quality gates asked for the job to stop (cx:job:<job>:halt, written
 * by the validator: privacy budget exceeded, or gates that cannot run; see
 * services/validator/account.h): announce it with the event type they
 * name, record the reason, and end the job CANCELLED so that workers,
 * scheduler and committer drop its work. Returns 1 when stopped, 0 when
 * there is no request, -1 with err. */
static int halt_job(cx_planner_t *p, const char *job_id, cx_err_t *err) {
    char k[CX_NAME_MAX + 40], reason[512];
    snprintf(k, sizeof k, "cx:job:%s:halt", job_id);
    redisReply *r = cx_redis_cmd(p->svc->redis, err, "HMGET %s reason event", k);
    if (!r) return -1;
    int stop = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
               r->element[0]->type == REDIS_REPLY_STRING;
    int type = CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_GATES_HALTED;
    if (stop) {
        snprintf(reason, sizeof reason, "%s", r->element[0]->str);
        if (r->element[1]->type == REDIS_REPLY_STRING &&
            protobuf_c_enum_descriptor_get_value(
                &cascade__v1__job_event_type__descriptor,
                atoi(r->element[1]->str)))
            type = atoi(r->element[1]->str);
    }
    freeReplyObject(r);
    if (!stop) return 0;
    /* Event, reason, then the state, as a cancel: a crash in between
     * repeats the event, never loses it. */
    if (send_event_flush(p, job_id, type, reason, err) < 0) return -1;
    cx_jobstate_key(k, sizeof k, job_id, NULL);
    r = cx_redis_cmd(p->svc->redis, err, "HSET %s reason %s", k, reason);
    if (!r) return -1;
    freeReplyObject(r);
    CX_WARN("job stopped by its quality gates job_id=%s reason=\"%s\"", job_id,
            reason);
    if (finish(p, job_id, CX_JOB_CANCELLED, err) < 0) return -1;
    return 1;
}

/* dataset.json, the DONE event, then the state: each step is idempotent,
 * so a crash anywhere is repaired by the next reconcile. */
static int complete_job(cx_planner_t *p, const cx_jobspec_t *spec,
                        cx_jobstate_t *st, cx_err_t *err) {
    char key[CX_NAME_MAX + 32], msg[160], k[CX_NAME_MAX + 40];
    cx_strlist_t manifests = {0};
    cx_jobtotals_t t;
    int rc = -1;

    cx_store_t *store = cx_service_store(p->svc, spec->output_uri, err);
    if (!store) return cx_err_wrap(err, "job %s output store", st->job_id);
    /* done_ms is fixed once, so a retried completion writes the same time. */
    cx_jobstate_key(k, sizeof k, st->job_id, NULL);
    redisReply *r = cx_redis_cmd(p->svc->redis, err, "HSETNX %s done_ms %lld", k,
                                 (long long)cx_now_ms());
    if (!r) return cx_err_wrap(err, "job %s", st->job_id);
    freeReplyObject(r);
    r = cx_redis_cmd(p->svc->redis, err, "HGET %s done_ms", k);
    if (!r) return cx_err_wrap(err, "job %s", st->job_id);
    int64_t done_ms = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10)
                                                    : cx_now_ms();
    freeReplyObject(r);

    snprintf(key, sizeof key, "%s/manifests", st->job_id);
    if (cx_store_list(store, key, &manifests, err) < 0) {
        if (err && err->code != CX_ENOENT) goto done;
        cx_err_clear(err);
    }
    char *json = cx_dataset_json(spec, st, &manifests, done_ms, err);
    if (!json) goto done;
    snprintf(key, sizeof key, "%s/dataset.json", st->job_id);
    int put = cx_store_put_if_absent(store, key, json, strlen(json), err);
    free(json);
    if (put < 0) {
        cx_err_wrap(err, "writing %s", key);
        goto done;
    }
    cx_jobstate_totals(st, &t);
    snprintf(msg, sizeof msg, "%" PRIu64 " samples committed in %zu manifests",
             t.committed, manifests.len);
    if (send_event_flush(p, st->job_id, CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_DONE,
                         msg, err) < 0)
        goto done;
    if (finish(p, st->job_id, CX_JOB_DONE, err) < 0) goto done;
    CX_INFO("job done job_id=%s committed=%" PRIu64, st->job_id, t.committed);
    cx_metric_add(p->jobs_done, 1);
    rc = 0;
done:
    cx_strlist_free(&manifests);
    return rc;
}

static int record_plan(cx_planner_t *p, const cx_jobspec_t *spec,
                       const cx_plan_t *plan, cx_err_t *err) {
    char k[3][CX_NAME_MAX + 40];
    char (*nums)[4][24] = calloc(plan->nclasses, sizeof *nums);
    const char **args = calloc(3 + 5 * plan->nclasses, sizeof *args);
    int rc = -1;
    size_t a = 3;

    if (!nums || !args) {
        cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        goto done;
    }
    cx_jobstate_key(k[0], sizeof k[0], spec->job_id, "issued");
    cx_jobstate_key(k[1], sizeof k[1], spec->job_id, "next_ordinal");
    cx_jobstate_key(k[2], sizeof k[2], spec->job_id, "round");
    for (int i = 0; i < 3; i++) args[i] = k[i];
    for (size_t i = 0; i < plan->nclasses; i++) {
        const cx_plan_class_t *pc = &plan->classes[i];
        if (!pc->units) continue;
        snprintf(nums[i][0], 24, "%" PRIu64, pc->old_next_ordinal);
        snprintf(nums[i][1], 24, "%" PRIu64, pc->shortfall);
        snprintf(nums[i][2], 24, "%" PRIu64, pc->next_ordinal);
        snprintf(nums[i][3], 24, "%" PRIu64, pc->round);
        args[a++] = spec->classes[i]->name;
        for (int j = 0; j < 4; j++) args[a++] = nums[i][j];
    }
    redisReply *r = cx_redis_eval(p->svc->redis, &record_script, 3,
                                  (int)(a - 3), args, err);
    if (!r) {
        cx_err_wrap(err, "recording issued units of %s", spec->job_id);
        goto done;
    }
    freeReplyObject(r);
    rc = 0;
done:
    free(nums);
    free(args);
    return rc;
}

static int issue(cx_planner_t *p, const cx_jobspec_t *spec,
                 const cx_plan_t *plan, cx_err_t *err) {
    int64_t now = cx_now_ms();
    for (size_t i = 0; i < plan->nunits; i++) {
        char unit_id[33];
        size_t len;
        uint8_t *buf = cx_plan_unit_pack(spec, &plan->units[i], now, unit_id,
                                         &len, err);
        if (!buf) return -1;
        int rc = cx_producer_send(p->svc->producer, CX_TOPIC_UNITS, -1,
                                  spec->job_id, strlen(spec->job_id), buf, len,
                                  err);
        free(buf);
        if (rc < 0) return -1;
    }
    /* Only units the broker holds count as issued. */
    if (cx_producer_flush(p->svc->producer, CX__FLUSH_MS, err) < 0) return -1;
    if (record_plan(p, spec, plan, err) < 0) return -1;
    cx_metric_add(p->units_issued, (double)plan->nunits);
    CX_INFO("units issued job_id=%s units=%zu replacement_units=%zu",
            spec->job_id, plan->nunits, plan->replacement_units);
    if (plan->replacement_units) {
        char msg[512];
        int off = snprintf(msg, sizeof msg,
                           "%zu replacement units, %" PRIu64 " samples:",
                           plan->replacement_units, plan->replacement_samples);
        for (size_t i = 0; i < plan->nclasses && off > 0 && (size_t)off < sizeof msg; i++) {
            const cx_plan_class_t *pc = &plan->classes[i];
            if (!pc->replacement || !pc->units) continue;
            off += snprintf(msg + off, sizeof msg - (size_t)off,
                            " %s %" PRIu64 " (round %" PRIu64 ")",
                            spec->classes[i]->name, pc->shortfall, pc->round);
        }
        if (send_event_flush(p, spec->job_id,
                             CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_REPLACEMENT_ISSUED,
                             msg, err) < 0)
            return -1;
    }
    return 0;
}

/* The quota to plan a class against: its own, raised so that what is
 * outstanding also covers the samples its observed pass rate will reject,
 * with a margin (cx_pol_issue_shortfall, the scheduling policy's, which
 * cascade-sim uses too): a class that passes half its samples is issued
 * about twice its quota early on rather than in replacement rounds at the
 * end. The committer still caps every class at its quota. */
static uint64_t issue_target(const cx_classstate_t *c, uint64_t quota) {
    if (!c) return quota;
    uint64_t out = c->issued > c->resolved_n ? c->issued - c->resolved_n : 0;
    double pass = cx_pol_pass_rate(c->generated, c->passed,
                                   CX__PASS_MIN_SAMPLES, CX__PASS_FLOOR);
    return c->committed + out +
           cx_pol_issue_shortfall(quota, c->committed, out, pass);
}

int cx_planner_reconcile(cx_planner_t *p, const char *job_id, cx_err_t *err) {
    cx_jobstate_t *st = NULL;
    cx_jobspec_t *spec = NULL;
    cx_plan_t plan = {0};
    const cx_classstate_t *states[CX_MAX_CLASSES];
    uint64_t quotas[CX_MAX_CLASSES];
    cx_err_t derr = {0};
    int rc = cx_jobstate_load(p->svc->redis, job_id, &st, err);

    if (rc <= 0) return rc;
    rc = 0;
    if (strcmp(st->state, CX_JOB_ACCEPTED) != 0) goto done;
    if ((rc = halt_job(p, job_id, err)) != 0) {
        rc = rc < 0 ? -1 : 0;
        goto done;
    }
    if (!st->spec ||
        !(spec = cx_decode_jobspec(st->spec, st->spec_len, &derr)) ||
        spec->n_classes == 0 || spec->n_classes > CX_MAX_CLASSES) {
        /* Only the planner writes the spec; nothing to do but say so. */
        CX_ERROR("stored spec unreadable job_id=%s reason=\"%s\"", job_id,
                 derr.msg);
        goto done;
    }
    cx_jobspec_quotas(spec, quotas);
    int complete = 1;
    for (size_t i = 0; i < spec->n_classes; i++) {
        cx_classstate_t *c = cx_jobstate_class(st, spec->classes[i]->name);
        if (c) c->quota = quotas[i];
        states[i] = c;
        if ((c ? c->committed : 0) < quotas[i]) complete = 0;
    }
    if (complete) {
        rc = complete_job(p, spec, st, err);
        goto done;
    }
    uint64_t targets[CX_MAX_CLASSES];
    for (size_t i = 0; i < spec->n_classes; i++)
        targets[i] = issue_target(states[i], quotas[i]);
    if (cx_plan_make(states, targets, spec->n_classes, spec->unit_size, &plan,
                     err) < 0) {
        rc = -1;
        goto done;
    }
    if (plan.nunits) rc = issue(p, spec, &plan, err);
done:
    cx_plan_release(&plan);
    if (spec) cascade__v1__job_spec__free_unpacked(spec, NULL);
    cx_jobstate_free(st);
    return rc;
}

int cx_planner_reconcile_all(cx_planner_t *p, cx_err_t *err) {
    cx_strlist_t jobs = {0};
    int rc = 0;
    if (cx_jobstate_list(p->svc->redis, 1, &jobs, err) < 0) return -1;
    for (size_t i = 0; i < jobs.len && !cx_service_stopping(); i++) {
        cx_err_t e = {0};
        if (cx_planner_reconcile(p, jobs.items[i], &e) < 0) {
            CX_WARN("reconcile failed job_id=%s error=\"%s\"", jobs.items[i], e.msg);
            if (rc == 0 && err) *err = e;
            rc = -1;
        }
    }
    cx_strlist_free(&jobs);
    return rc;
}
