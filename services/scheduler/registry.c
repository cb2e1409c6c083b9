/* Worker registry snapshot and pruning. */
#include "registry.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

static cx_redis_script_t lua_list = {.lua =
    "local ws = redis.call('ZRANGE', 'cx:workers', 0, -1, 'WITHSCORES')\n"
    "local out = {}\n"
    "for i = 1, #ws, 2 do\n"
    "  local w = ws[i]\n"
    "  local k = 'cx:worker:' .. w\n"
    "  local h = redis.call('HMGET', k, 'partition', 'slots', 'draining')\n"
    "  out[#out + 1] = {w, ws[i + 1], redis.call('EXISTS', k .. ':alive'),\n"
    "    h[1] or '', h[2] or '', h[3] or '',\n"
    "    redis.call('SCARD', k .. ':inflight')}\n"
    "end\n"
    "return out\n"};

void cx_registry_free(cx_wview_t *w, size_t n) {
    if (!w) return;
    for (size_t i = 0; i < n; i++) free(w[i].id);
    free(w);
}

int cx_registry_parse_partition(const char *s, int nparts) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > 1000000) return -1;
    if (nparts > 0 && v >= nparts) return -1;
    return (int)v;
}

int cx_registry_list(cx_redis_t *r, cx_wview_t **out, size_t *n,
                     cx_err_t *err) {
    *out = NULL;
    *n = 0;
    const char *none[1] = {NULL};
    redisReply *rep = cx_redis_eval(r, &lua_list, 0, 0, none, err);
    if (!rep) return cx_err_wrap(err, "list workers");
    if (rep->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return cx_err_set(err, CX_EREDIS, 0, "list workers: bad reply");
    }
    cx_wview_t *w = calloc(rep->elements ? rep->elements : 1, sizeof *w);
    if (!w) {
        freeReplyObject(rep);
        return cx_err_set(err, CX_ENOMEM, 0, "list workers: out of memory");
    }
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *row = rep->element[i];
        w[i].id = strdup(cx__rstr(row, 0));
        if (!w[i].id) {
            cx_registry_free(w, i);
            freeReplyObject(rep);
            return cx_err_set(err, CX_ENOMEM, 0,
                              "list workers: out of memory");
        }
        w[i].last_hb_ms = strtoll(cx__rstr(row, 1), NULL, 10);
        w[i].alive = cx__rll(row, 2) != 0;
        w[i].partition = cx_registry_parse_partition(cx__rstr(row, 3), 0);
        w[i].slots = (int)cx__rll(row, 4);
        w[i].draining = cx__rll(row, 5) != 0;
        w[i].inflight = (int)cx__rll(row, 6);
    }
    *n = rep->elements;
    *out = w;
    freeReplyObject(rep);
    return 0;
}

int cx_registry_free_slots(const cx_wview_t *w, int max_inflight) {
    if (!w->alive || w->draining || w->partition < 0) return 0;
    int cap = w->slots > 0 && w->slots < max_inflight ? w->slots
                                                      : max_inflight;
    int f = cap - w->inflight;
    return f > 0 ? f : 0;
}

static cx_redis_script_t lua_prune = {.lua =
    "local k = 'cx:worker:' .. ARGV[1]\n"
    "if redis.call('EXISTS', k .. ':alive') == 1 then return 0 end\n"
    "if redis.call('SCARD', k .. ':inflight') > 0 then return 0 end\n"
    "local s = redis.call('ZSCORE', 'cx:workers', ARGV[1])\n"
    "if s and tonumber(s) >= tonumber(ARGV[2]) then return 0 end\n"
    "redis.call('ZREM', 'cx:workers', ARGV[1])\n"
    "redis.call('DEL', k)\n"
    "return 1\n"};

int cx_registry_prune(cx_redis_t *r, const char *worker,
                      int64_t older_than_ms, cx_err_t *err) {
    char t[24];
    snprintf(t, sizeof t, "%" PRId64, older_than_ms);
    const char *args[] = {worker, t};
    redisReply *rep = cx_redis_eval(r, &lua_prune, 0, 2, args, err);
    if (!rep) return cx_err_wrap(err, "prune worker %s", worker);
    int rc = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return rc;
}
