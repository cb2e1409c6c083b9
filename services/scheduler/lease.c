/* Lease scripts: acquire, release, end (staged), fail (requeue or dead),
 * and the sweep's view of cx:leases. */
#include "lease.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

/* KEYS[1] cx:unit:<unit>. ARGV: unit worker now lease_ms expiry. */
static cx_redis_script_t lua_acquire = {.lua =
    "local h = redis.call('HMGET', KEYS[1], 'state', 'job')\n"
    "if h[1] ~= 'pending' then\n"
    "  redis.call('ZREM', 'cx:pending', ARGV[1])\n"
    "  return {0}\n"
    "end\n"
    "if redis.call('HGET', 'cx:job:' .. h[2], 'state') == 'CANCELLED' then\n"
    "  redis.call('HSET', KEYS[1], 'state', 'cancelled')\n"
    "  redis.call('ZREM', 'cx:pending', ARGV[1])\n"
    "  return {-1}\n"
    "end\n"
    "if redis.call('EXISTS', 'cx:worker:' .. ARGV[2] .. ':alive') == 0 then\n"
    "  return {-2}\n"
    "end\n"
    "local epoch = redis.call('INCR', 'cx:epoch')\n"
    "local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)\n"
    "redis.call('HSET', KEYS[1], 'state', 'leased', 'worker', ARGV[2],\n"
    "  'epoch', epoch, 'expiry', ARGV[5])\n"
    "redis.call('ZADD', 'cx:leases', ARGV[5], ARGV[1])\n"
    "redis.call('SADD', 'cx:worker:' .. ARGV[2] .. ':inflight', ARGV[1])\n"
    "redis.call('ZREM', 'cx:pending', ARGV[1])\n"
    "return {1, attempt, epoch, redis.call('HGET', KEYS[1], 'payload')}\n"};

int cx_lease_acquire(cx_redis_t *r, const char *unit, const char *worker,
                     int64_t now_ms, int64_t lease_ms, cx_lease_t *out,
                     cx_err_t *err) {
    char key[128], now[24], lms[24], exp[24];
    int64_t expiry = now_ms + lease_ms;
    snprintf(key, sizeof key, "cx:unit:%s", unit);
    snprintf(now, sizeof now, "%" PRId64, now_ms);
    snprintf(lms, sizeof lms, "%" PRId64, lease_ms);
    snprintf(exp, sizeof exp, "%" PRId64, expiry);
    const char *args[] = {key, unit, worker, now, lms, exp};
    memset(out, 0, sizeof *out);
    redisReply *rep = cx_redis_eval(r, &lua_acquire, 1, 5, args, err);
    if (!rep) {
        cx_err_wrap(err, "lease unit %s", unit);
        return -3;
    }
    int rc = (int)cx__rll(rep, 0);
    if (rc == CX_LEASE_OK) {
        const redisReply *p = rep->elements > 3 ? rep->element[3] : NULL;
        if (!p || p->type != REDIS_REPLY_STRING) {
            freeReplyObject(rep);
            cx_err_set(err, CX_EREDIS, 0, "lease unit %s: no payload", unit);
            return -3;
        }
        out->payload = malloc(p->len ? p->len : 1);
        if (!out->payload) {
            freeReplyObject(rep);
            cx_err_set(err, CX_ENOMEM, 0, "lease unit %s: out of memory",
                       unit);
            return -3;
        }
        memcpy(out->payload, p->str, p->len);
        out->payload_len = p->len;
        out->attempt = (uint32_t)cx__rll(rep, 1);
        out->epoch = (uint64_t)cx__rll(rep, 2);
        out->expiry_ms = expiry;
    }
    freeReplyObject(rep);
    return rc;
}

static cx_redis_script_t lua_release = {.lua =
    "local h = redis.call('HMGET', KEYS[1], 'state', 'epoch', 'worker', "
    "'seq')\n"
    "if h[1] ~= 'leased' or h[2] ~= ARGV[2] then return 0 end\n"
    "redis.call('HINCRBY', KEYS[1], 'attempt', -1)\n"
    "redis.call('HSET', KEYS[1], 'state', 'pending', 'worker', '')\n"
    "redis.call('ZREM', 'cx:leases', ARGV[1])\n"
    "redis.call('SREM', 'cx:worker:' .. h[3] .. ':inflight', ARGV[1])\n"
    "redis.call('ZADD', 'cx:pending', h[4], ARGV[1])\n"
    "return 1\n"};

int cx_lease_release(cx_redis_t *r, const char *unit, uint64_t epoch,
                     cx_err_t *err) {
    char key[128], ep[24];
    snprintf(key, sizeof key, "cx:unit:%s", unit);
    snprintf(ep, sizeof ep, "%" PRIu64, epoch);
    const char *args[] = {key, unit, ep};
    redisReply *rep = cx_redis_eval(r, &lua_release, 1, 2, args, err);
    if (!rep) return cx_err_wrap(err, "release unit %s", unit);
    freeReplyObject(rep);
    return 0;
}

/* The failed attempt of the unit in KEYS[1] (already checked to be the
 * current lease). Returns {outcome, job, class, samples, payload}. */
#define LUA_FAIL_FN                                                         \
    "local function cx_fail(ukey, unit, reason, maxa)\n"                    \
    "  local h = redis.call('HMGET', ukey, 'job', 'class', 'worker',\n"     \
    "    'attempt', 'samples', 'excluded', 'seq')\n"                        \
    "  local job, class, worker = h[1] or '', h[2] or '', h[3] or ''\n"    \
    "  local attempt = tonumber(h[4] or '0')\n"                             \
    "  local samples, excl = h[5] or '0', h[6] or ''\n"                     \
    "  redis.call('ZREM', 'cx:leases', unit)\n"                             \
    "  if worker ~= '' then\n"                                              \
    "    redis.call('SREM', 'cx:worker:' .. worker .. ':inflight', unit)\n" \
    "    local found = false\n"                                             \
    "    for w in string.gmatch(excl, '[^,]+') do\n"                        \
    "      if w == worker then found = true end\n"                          \
    "    end\n"                                                             \
    "    if not found then\n"                                               \
    "      if excl == '' then excl = worker else excl = excl .. ',' .. "   \
    "worker end\n"                                                          \
    "    end\n"                                                             \
    "  end\n"                                                               \
    "  local jk = 'cx:job:' .. job\n"                                       \
    "  local function set(state)\n"                                         \
    "    redis.call('HSET', ukey, 'state', state, 'worker', '',\n"          \
    "      'excluded', excl, 'reason', reason)\n"                           \
    "  end\n"                                                               \
    "  if redis.call('HEXISTS', jk .. ':resv', unit) == 1 or\n"             \
    "     redis.call('HGET', jk .. ':resolved', unit) == 'c' then\n"        \
    "    set('staged')\n"                                                   \
    "    return {'resolved'}\n"                                             \
    "  end\n"                                                               \
    "  if redis.call('HGET', jk, 'state') == 'CANCELLED' then\n"            \
    "    set('cancelled')\n"                                                \
    "    return {'cancelled'}\n"                                            \
    "  end\n"                                                               \
    "  if attempt >= maxa then\n"                                           \
    "    set('dead')\n"                                                     \
    "    if redis.call('HSETNX', jk .. ':resolved', unit, 'd') == 1 then\n" \
    "      redis.call('HINCRBY', jk .. ':resolved_n', class, samples)\n"    \
    "    end\n"                                                             \
    "    return {'dead', job, class, samples,\n"                            \
    "            redis.call('HGET', ukey, 'payload')}\n"                    \
    "  end\n"                                                               \
    "  set('pending')\n"                                                    \
    "  redis.call('ZADD', 'cx:pending', h[7], unit)\n"                      \
    "  return {'requeued'}\n"                                               \
    "end\n"

/* KEYS[1] cx:unit:<unit>. ARGV: unit epoch worker failure max_attempts. */
static cx_redis_script_t lua_staged = {.lua =
    LUA_FAIL_FN
    "local h = redis.call('HMGET', KEYS[1], 'state', 'epoch', 'worker')\n"
    "if h[1] == 'leased' and h[2] == ARGV[2] then\n"
    "  if ARGV[4] == '' then\n"
    "    redis.call('HSET', KEYS[1], 'state', 'staged')\n"
    "    redis.call('ZREM', 'cx:leases', ARGV[1])\n"
    "    redis.call('SREM', 'cx:worker:' .. h[3] .. ':inflight', ARGV[1])\n"
    "    return {'staged'}\n"
    "  end\n"
    "  return cx_fail(KEYS[1], ARGV[1], ARGV[4], tonumber(ARGV[5]))\n"
    "end\n"
    "if not (h[1] == 'leased' and h[3] == ARGV[3]) then\n"
    "  redis.call('SREM', 'cx:worker:' .. ARGV[3] .. ':inflight', ARGV[1])\n"
    "end\n"
    "return {'stale'}\n"};

/* KEYS[1] cx:unit:<unit>. ARGV: unit epoch reason max_attempts. */
static cx_redis_script_t lua_fail = {.lua =
    LUA_FAIL_FN
    "local h = redis.call('HMGET', KEYS[1], 'state', 'epoch')\n"
    "if h[1] ~= 'leased' or h[2] ~= ARGV[2] then return {'stale'} end\n"
    "return cx_fail(KEYS[1], ARGV[1], ARGV[3], tonumber(ARGV[4]))\n"};

void cx_dead_free(cx_dead_t *d) {
    if (!d) return;
    free(d->job);
    free(d->class_name);
    free(d->payload);
    memset(d, 0, sizeof *d);
}

static int end_parse(redisReply *rep, const char *unit, cx_dead_t *dead,
                     cx_err_t *err) {
    static const struct {
        const char *name;
        cx_end_t code;
    } names[] = {{"staged", CX_END_STAGED},       {"requeued", CX_END_REQUEUED},
                 {"dead", CX_END_DEAD},           {"resolved", CX_END_RESOLVED},
                 {"cancelled", CX_END_CANCELLED}, {"stale", CX_END_STALE}};
    const char *s = cx__rstr(rep, 0);
    int code = -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) code = (int)names[i].code;
    if (code < 0)
        return cx_err_set(err, CX_EREDIS, 0, "unit %s: bad reply '%s'", unit,
                          s);
    if (code == CX_END_DEAD && dead) {
        const redisReply *p = rep->elements > 4 ? rep->element[4] : NULL;
        memset(dead, 0, sizeof *dead);
        dead->job = strdup(cx__rstr(rep, 1));
        dead->class_name = strdup(cx__rstr(rep, 2));
        dead->samples = (uint32_t)cx__rll(rep, 3);
        if (p && p->type == REDIS_REPLY_STRING) {
            dead->payload = malloc(p->len ? p->len : 1);
            if (dead->payload) memcpy(dead->payload, p->str, p->len);
            dead->payload_len = p->len;
        }
        if (!dead->job || !dead->class_name ||
            (p && p->type == REDIS_REPLY_STRING && !dead->payload)) {
            cx_dead_free(dead);
            return cx_err_set(err, CX_ENOMEM, 0, "unit %s: out of memory",
                              unit);
        }
    }
    return code;
}

int cx_lease_staged(cx_redis_t *r, const char *unit, uint64_t epoch,
                    const char *worker, const char *failure,
                    uint32_t max_attempts, cx_dead_t *dead, cx_err_t *err) {
    char key[128], ep[24], maxa[16];
    snprintf(key, sizeof key, "cx:unit:%s", unit);
    snprintf(ep, sizeof ep, "%" PRIu64, epoch);
    snprintf(maxa, sizeof maxa, "%" PRIu32, max_attempts);
    const char *args[] = {key, unit, ep, worker, failure ? failure : "", maxa};
    redisReply *rep = cx_redis_eval(r, &lua_staged, 1, 5, args, err);
    if (!rep) return cx_err_wrap(err, "staged unit %s", unit);
    int rc = end_parse(rep, unit, dead, err);
    freeReplyObject(rep);
    return rc;
}

int cx_lease_fail(cx_redis_t *r, const char *unit, uint64_t epoch,
                  const char *reason, uint32_t max_attempts, cx_dead_t *dead,
                  cx_err_t *err) {
    char key[128], ep[24], maxa[16];
    snprintf(key, sizeof key, "cx:unit:%s", unit);
    snprintf(ep, sizeof ep, "%" PRIu64, epoch);
    snprintf(maxa, sizeof maxa, "%" PRIu32, max_attempts);
    const char *args[] = {key, unit, ep, reason, maxa};
    redisReply *rep = cx_redis_eval(r, &lua_fail, 1, 4, args, err);
    if (!rep) return cx_err_wrap(err, "fail unit %s", unit);
    int rc = end_parse(rep, unit, dead, err);
    freeReplyObject(rep);
    return rc;
}

static cx_redis_script_t lua_list = {.lua =
    "local r = redis.call('ZRANGE', 'cx:leases', 0, tonumber(ARGV[1]) - 1,\n"
    "  'WITHSCORES')\n"
    "local out, alive = {}, {}\n"
    "for i = 1, #r, 2 do\n"
    "  local u = r[i]\n"
    "  local h = redis.call('HMGET', 'cx:unit:' .. u, 'worker', 'epoch', "
    "'state')\n"
    "  local w = h[1] or ''\n"
    "  local a = alive[w]\n"
    "  if a == nil then\n"
    "    a = 0\n"
    "    if w ~= '' then a = redis.call('EXISTS', 'cx:worker:' .. w .. "
    "':alive') end\n"
    "    alive[w] = a\n"
    "  end\n"
    "  out[#out + 1] = {u, r[i + 1], w, h[2] or '0', a, h[3] or ''}\n"
    "end\n"
    "return out\n"};

void cx_lease_views_free(cx_lease_view_t *v, size_t n) {
    if (!v) return;
    for (size_t i = 0; i < n; i++) {
        free(v[i].unit);
        free(v[i].worker);
    }
    free(v);
}

int cx_lease_list(cx_redis_t *r, size_t limit, cx_lease_view_t **out,
                  size_t *n, cx_err_t *err) {
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *args[] = {lim};
    *out = NULL;
    *n = 0;
    redisReply *rep = cx_redis_eval(r, &lua_list, 0, 1, args, err);
    if (!rep) return cx_err_wrap(err, "list leases");
    if (rep->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return cx_err_set(err, CX_EREDIS, 0, "list leases: bad reply");
    }
    cx_lease_view_t *v = calloc(rep->elements ? rep->elements : 1, sizeof *v);
    if (!v) goto fail_nomem;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *row = rep->element[i];
        v[i].unit = strdup(cx__rstr(row, 0));
        v[i].expiry_ms = strtoll(cx__rstr(row, 1), NULL, 10);
        v[i].worker = strdup(cx__rstr(row, 2));
        v[i].epoch = strtoull(cx__rstr(row, 3), NULL, 10);
        v[i].alive = cx__rll(row, 4) != 0;
        v[i].leased = strcmp(cx__rstr(row, 5), "leased") == 0;
        if (!v[i].unit || !v[i].worker) {
            cx_lease_views_free(v, i + 1);
            goto fail_nomem;
        }
    }
    *n = rep->elements;
    *out = v;
    freeReplyObject(rep);
    return 0;

fail_nomem:
    freeReplyObject(rep);
    return cx_err_set(err, CX_ENOMEM, 0, "list leases: out of memory");
}

cx_check_t cx_lease_check(const cx_lease_view_t *v, int64_t now_ms) {
    if (!v->leased) return CX_CHECK_ORPHAN;
    if (now_ms >= v->expiry_ms) return CX_CHECK_EXPIRED;
    if (!v->alive) return CX_CHECK_LOST;
    return CX_CHECK_OK;
}

const char *cx_lease_check_reason(cx_check_t c) {
    switch (c) {
    case CX_CHECK_EXPIRED: return "lease expired";
    case CX_CHECK_LOST: return "worker lost (heartbeat stopped)";
    case CX_CHECK_ORPHAN: return "orphan lease";
    default: return "ok";
    }
}

static cx_redis_script_t lua_orphan = {.lua =
    "if redis.call('HGET', KEYS[1], 'state') == 'leased' then return 0 end\n"
    "redis.call('ZREM', 'cx:leases', ARGV[1])\n"
    "return 1\n"};

int cx_lease_drop_orphan(cx_redis_t *r, const char *unit, cx_err_t *err) {
    char key[128];
    snprintf(key, sizeof key, "cx:unit:%s", unit);
    const char *args[] = {key, unit};
    redisReply *rep = cx_redis_eval(r, &lua_orphan, 1, 1, args, err);
    if (!rep) return cx_err_wrap(err, "drop lease %s", unit);
    freeReplyObject(rep);
    return 0;
}
