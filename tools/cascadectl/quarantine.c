/* cx_ctl_quarantine*: listing and releasing quarantined workers. */
#include "quarantine.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/names.h"
#include "cascade/util.h"

#define CX__QUAR_REDIS_RETRY_MS 3000

/* KEYS: quarantine:<w> quarantined gatestats:<w> released:<w>
 * ARGV: worker now_ms. The release time tells the validator to leave out
 * batches staged before it (account.c): a quarantined worker's backlog
 * still in flight must not quarantine it again. Kept a week. */
static cx_redis_script_t cx__release_script = {.lua =
    "local was = redis.call('DEL', KEYS[1])\n"
    "redis.call('SREM', KEYS[2], ARGV[1])\n"
    "if was == 1 then\n"
    "  redis.call('DEL', KEYS[3])\n"
    "  redis.call('SET', KEYS[4], ARGV[2], 'PX', 604800000)\n"
    "end\n"
    "return was\n"};

void cx_ctl_print_quarantine(FILE *out, const cx_ctl_quar_t *q, size_t n,
                             int64_t now_ms) {
    if (n == 0) {
        fprintf(out, "no worker is quarantined\n");
        return;
    }
    fprintf(out, "%-24s %-10s %8s %8s %8s %9s  %s\n", "WORKER", "GPU", "FAIL",
            "POOL", "SAMPLES", "SINCE", "REASON");
    for (size_t i = 0; i < n; i++) {
        char ago[32];
        cx_ctl_duration(ago, sizeof ago,
                        q[i].since_ms ? (double)(now_ms - q[i].since_ms) / 1000
                                      : -1);
        fprintf(out, "%-24s %-10s %8.3f %8.3f %8.0f %9s  %s\n", q[i].worker,
                q[i].gpu_type ? q[i].gpu_type : "-", q[i].failure_rate,
                q[i].pool_rate, q[i].samples, ago,
                q[i].reason ? q[i].reason : "");
    }
}

char *cx_ctl_quarantine_json(const cx_ctl_quar_t *q, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "worker", q[i].worker);
        cJSON_AddStringToObject(o, "gpu_type", q[i].gpu_type ? q[i].gpu_type : "");
        cJSON_AddStringToObject(o, "reason", q[i].reason ? q[i].reason : "");
        cJSON_AddStringToObject(o, "job_id", q[i].job_id ? q[i].job_id : "");
        cJSON_AddNumberToObject(o, "since_ms", (double)q[i].since_ms);
        cJSON_AddNumberToObject(o, "failure_rate", q[i].failure_rate);
        cJSON_AddNumberToObject(o, "pool_rate", q[i].pool_rate);
        cJSON_AddNumberToObject(o, "samples", q[i].samples);
        cJSON_AddItemToArray(a, o);
    }
    char *s = a ? cJSON_Print(a) : NULL;
    cJSON_Delete(a);
    return s;
}

static const char *cx__field(const redisReply *h, const char *name) {
    for (size_t i = 0; h && i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(h->element[i]->str, name) == 0 &&
            h->element[i + 1]->type == REDIS_REPLY_STRING)
            return h->element[i + 1]->str;
    return NULL;
}

static double cx__fnum(const redisReply *h, const char *name) {
    const char *v = cx__field(h, name);
    return v ? strtod(v, NULL) : 0;
}

static int cx__list(cx_ctl_t *c, cx_redis_t *r) {
    cx_err_t err;
    redisReply *set = cx_redis_cmd(r, &err, "SMEMBERS cx:quarantined");
    if (!set) {
        fprintf(c->errout, "cascadectl: redis: %s\n", err.msg);
        return CX_CTL_INFRA;
    }
    size_t n = set->type == REDIS_REPLY_ARRAY ? set->elements : 0, k = 0;
    cx_ctl_quar_t *q = calloc(n ? n : 1, sizeof *q);
    redisReply **h = calloc(n ? n : 1, sizeof *h);
    int rc = CX_CTL_INFRA;
    if (!q || !h) goto done;
    for (size_t i = 0; i < n; i++) {
        const char *w = set->element[i]->str;
        h[i] = cx_redis_cmd(r, &err, "HGETALL cx:quarantine:%s", w);
        if (!h[i]) {
            fprintf(c->errout, "cascadectl: redis: %s\n", err.msg);
            goto done;
        }
        if (h[i]->type != REDIS_REPLY_ARRAY || h[i]->elements == 0)
            continue; /* released meanwhile */
        q[k].worker = w;
        q[k].reason = cx__field(h[i], "reason");
        q[k].gpu_type = cx__field(h[i], "gpu_type");
        q[k].job_id = cx__field(h[i], "job_id");
        q[k].since_ms = (int64_t)cx__fnum(h[i], "since_ms");
        q[k].failure_rate = cx__fnum(h[i], "failure_rate");
        q[k].pool_rate = cx__fnum(h[i], "pool_rate");
        q[k].samples = cx__fnum(h[i], "samples");
        k++;
    }
    if (c->json) {
        char *s = cx_ctl_quarantine_json(q, k);
        if (!s) goto done;
        fprintf(c->out, "%s\n", s);
        free(s);
    } else {
        cx_ctl_print_quarantine(c->out, q, k, cx_now_ms());
    }
    rc = CX_CTL_OK;
done:
    for (size_t i = 0; h && i < n; i++)
        if (h[i]) freeReplyObject(h[i]);
    free(h);
    free(q);
    freeReplyObject(set);
    return rc;
}

static int cx__release(cx_ctl_t *c, cx_redis_t *r, const char *worker) {
    cx_err_t err;
    char k[4][CX_NAME_MAX + 32], now[24];
    if (cx_name_check("worker", worker, &err) < 0) {
        fprintf(c->errout, "cascadectl: %s\n", err.msg);
        return CX_CTL_USAGE;
    }
    snprintf(k[0], sizeof k[0], "cx:quarantine:%s", worker);
    snprintf(k[1], sizeof k[1], "cx:quarantined");
    snprintf(k[2], sizeof k[2], "cx:gatestats:%s", worker);
    snprintf(k[3], sizeof k[3], "cx:released:%s", worker);
    snprintf(now, sizeof now, "%" PRId64, cx_now_ms());
    const char *args[] = {k[0], k[1], k[2], k[3], worker, now};
    redisReply *rep = cx_redis_eval(r, &cx__release_script, 4, 2, args, &err);
    if (!rep) {
        fprintf(c->errout, "cascadectl: redis: %s\n", err.msg);
        return CX_CTL_INFRA;
    }
    int was = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    if (!was) {
        fprintf(c->errout, "cascadectl: worker %s is not quarantined\n",
                worker);
        return CX_CTL_FAILED;
    }
    fprintf(c->out, "released %s (its gate statistics start afresh)\n",
            worker);
    return CX_CTL_OK;
}

int cx_ctl_quarantine(cx_ctl_t *c, const char *action, const char *worker) {
    cx_err_t err;
    if (strcmp(action, "list") != 0 && strcmp(action, "release") != 0) {
        fprintf(c->errout, "cascadectl: quarantine: \"%s\" is not list or "
                "release\n", action);
        return CX_CTL_USAGE;
    }
    cx_redis_t *r = cx_redis_new(c->redis_url, CX__QUAR_REDIS_RETRY_MS, &err);
    if (!r) {
        fprintf(c->errout, "cascadectl: redis %s: %s\n", c->redis_url,
                err.msg);
        return CX_CTL_INFRA;
    }
    int rc = strcmp(action, "list") == 0 ? cx__list(c, r)
                                         : cx__release(c, r, worker);
    cx_redis_destroy(r);
    return rc;
}
