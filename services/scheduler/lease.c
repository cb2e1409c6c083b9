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
    "if redis.call('EXISTS', 'cx:worker:' .. ARGV[2] .. ':alive') == 0 or\n"
    "   redis.call('HGET', 'cx:worker:' .. ARGV[2], 'draining') == '1' then\n"
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

/* ARGV: now lease_ms expiry, then (unit, worker) pairs. One row per pair:
 * {rc} or {1, attempt, epoch, payload}, as lua_acquire. The same effects
 * as lua_acquire per unit, in fewer commands: job states and alive keys
 * read once per script, the epochs taken with one INCRBY, and the
 * cx:leases, cx:pending and inflight-set updates sent in bulk. */
static cx_redis_script_t lua_acquire_batch = {.lua =
    "local out, jobs, alive, ok, seen = {}, {}, {}, {}, {}\n"
    "local n = (#ARGV - 3) / 2\n"
    "for i = 1, n do\n"
    "  local u, w = ARGV[2 + 2 * i], ARGV[3 + 2 * i]\n"
    "  local k = 'cx:unit:' .. u\n"
    "  local h = redis.call('HMGET', k, 'state', 'job', 'attempt', 'payload')\n"
    "  if seen[u] then\n"
    "    out[i] = {0}\n"
    "  elseif h[1] ~= 'pending' then\n"
    "    redis.call('ZREM', 'cx:pending', u)\n"
    "    out[i] = {0}\n"
    "  else\n"
    "    local js = jobs[h[2]]\n"
    "    if js == nil then\n"
    "      js = redis.call('HGET', 'cx:job:' .. h[2], 'state') or ''\n"
    "      jobs[h[2]] = js\n"
    "    end\n"
    "    local a = alive[w]\n"
    "    if a == nil then\n"
    "      a = redis.call('EXISTS', 'cx:worker:' .. w .. ':alive')\n"
    /* A draining worker set the flag before giving its units back: the
     * scheduler's view of it may be a refresh old, this check is not. */
    "      if a == 1 and redis.call('HGET', 'cx:worker:' .. w,\n"
    "                               'draining') == '1' then a = 0 end\n"
    "      alive[w] = a\n"
    "    end\n"
    "    if js == 'CANCELLED' then\n"
    "      redis.call('HSET', k, 'state', 'cancelled')\n"
    "      redis.call('ZREM', 'cx:pending', u)\n"
    "      out[i] = {-1}\n"
    "    elseif a == 0 then\n"
    "      out[i] = {-2}\n"
    "    else\n"
    "      seen[u] = true\n"
    "      ok[#ok + 1] = i\n"
    "      out[i] = {1, (tonumber(h[3]) or 0) + 1, 0, h[4]}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if #ok == 0 then return out end\n"
    "local last = redis.call('INCRBY', 'cx:epoch', #ok)\n"
    "local leases, pend, sets = {}, {}, {}\n"
    "for j, i in ipairs(ok) do\n"
    "  local u, w = ARGV[2 + 2 * i], ARGV[3 + 2 * i]\n"
    "  local epoch = last - #ok + j\n"
    "  out[i][3] = epoch\n"
    "  redis.call('HSET', 'cx:unit:' .. u, 'state', 'leased', 'worker', w,\n"
    "    'epoch', epoch, 'expiry', ARGV[3], 'attempt', out[i][2])\n"
    "  leases[#leases + 1] = ARGV[3]\n"
    "  leases[#leases + 1] = u\n"
    "  pend[#pend + 1] = u\n"
    "  local s = sets[w]\n"
    "  if s == nil then s = {}; sets[w] = s end\n"
    "  s[#s + 1] = u\n"
    "end\n"
    "for o = 1, #leases, 2000 do\n"
    "  redis.call('ZADD', 'cx:leases',\n"
    "    unpack(leases, o, math.min(o + 1999, #leases)))\n"
    "end\n"
    "for o = 1, #pend, 2000 do\n"
    "  redis.call('ZREM', 'cx:pending', unpack(pend, o, math.min(o + 1999, #pend)))\n"
    "end\n"
    "for w, s in pairs(sets) do\n"
    "  redis.call('SADD', 'cx:worker:' .. w .. ':inflight', unpack(s))\n"
    "end\n"
    "return out\n"};

/* Copies a lease row's payload and numbers into l. */
static int lease_row(const redisReply *row, int64_t expiry, cx_lease_t *l) {
    const redisReply *p = row->elements > 3 ? row->element[3] : NULL;
    if (!p || p->type != REDIS_REPLY_STRING) return -1;
    l->payload = malloc(p->len ? p->len : 1);
    if (!l->payload) return -1;
    memcpy(l->payload, p->str, p->len);
    l->payload_len = p->len;
    l->attempt = (uint32_t)cx__rll(row, 1);
    l->epoch = (uint64_t)cx__rll(row, 2);
    l->expiry_ms = expiry;
    return 0;
}

int cx_lease_acquire_batch(cx_redis_t *r, cx_lease_req_t *reqs, size_t n,
                           int64_t now_ms, int64_t lease_ms, cx_err_t *err) {
    if (!n) return 0;
    char now[24], lms[24], exp[24];
    int64_t expiry = now_ms + lease_ms;
    snprintf(now, sizeof now, "%" PRId64, now_ms);
    snprintf(lms, sizeof lms, "%" PRId64, lease_ms);
    snprintf(exp, sizeof exp, "%" PRId64, expiry);
    const char **args = malloc((3 + 2 * n) * sizeof *args);
    if (!args) return cx_err_set(err, CX_ENOMEM, 0, "lease batch: out of memory");
    args[0] = now;
    args[1] = lms;
    args[2] = exp;
    for (size_t i = 0; i < n; i++) {
        args[3 + 2 * i] = reqs[i].unit;
        args[4 + 2 * i] = reqs[i].worker;
        reqs[i].rc = CX_LEASE_GONE;
        memset(&reqs[i].lease, 0, sizeof reqs[i].lease);
    }
    redisReply *rep = cx_redis_eval(r, &lua_acquire_batch, 0,
                                    (int)(3 + 2 * n), args, err);
    free(args);
    if (!rep) return cx_err_wrap(err, "lease batch of %zu", n);
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
        freeReplyObject(rep);
        return cx_err_set(err, CX_EREDIS, 0, "lease batch: bad reply");
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *row = rep->element[i];
        reqs[i].rc = (int)cx__rll(row, 0);
        if (reqs[i].rc == CX_LEASE_OK &&
            lease_row(row, expiry, &reqs[i].lease) < 0) {
            /* Leased in Redis without a usable payload: it expires and is
             * re-issued; report it as not leased here. */
            reqs[i].rc = CX_LEASE_GONE;
            rc = cx_err_set(err, CX_ENOMEM, 0, "lease batch: payload of %s",
                            reqs[i].unit);
        }
    }
    freeReplyObject(rep);
    return rc;
}

static cx_redis_script_t lua_release_batch = {.lua =
    "local n = 0\n"
    "for i = 1, #ARGV, 2 do\n"
    "  local k = 'cx:unit:' .. ARGV[i]\n"
    "  local h = redis.call('HMGET', k, 'state', 'epoch', 'worker', 'seq')\n"
    "  if h[1] == 'leased' and h[2] == ARGV[i + 1] then\n"
    "    redis.call('HINCRBY', k, 'attempt', -1)\n"
    "    redis.call('HSET', k, 'state', 'pending', 'worker', '')\n"
    "    redis.call('ZREM', 'cx:leases', ARGV[i])\n"
    "    redis.call('SREM', 'cx:worker:' .. h[3] .. ':inflight', ARGV[i])\n"
    "    redis.call('ZADD', 'cx:pending', h[4], ARGV[i])\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n"};

int cx_lease_release_batch(cx_redis_t *r, const char *const *units,
                           const uint64_t *epochs, size_t n, cx_err_t *err) {
    if (!n) return 0;
    const char **args = malloc(2 * n * sizeof *args);
    char (*eps)[24] = malloc(n * sizeof *eps);
    int rc = -1;
    if (!args || !eps) {
        cx_err_set(err, CX_ENOMEM, 0, "release batch: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(eps[i], sizeof eps[i], "%" PRIu64, epochs[i]);
        args[2 * i] = units[i];
        args[2 * i + 1] = eps[i];
    }
    redisReply *rep = cx_redis_eval(r, &lua_release_batch, 0, (int)(2 * n),
                                    args, err);
    if (!rep) {
        cx_err_wrap(err, "release batch of %zu", n);
        goto done;
    }
    freeReplyObject(rep);
    rc = 0;
done:
    free(args);
    free(eps);
    return rc;
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
    "local out, alive, reg = {}, {}, {}\n"
    "for i = 1, #r, 2 do\n"
    "  local u = r[i]\n"
    "  local h = redis.call('HMGET', 'cx:unit:' .. u, 'worker', 'epoch', "
    "'state')\n"
    "  local w = h[1] or ''\n"
    "  local a = alive[w]\n"
    "  if a == nil then\n"
    "    a, reg[w] = 0, 0\n"
    "    if w ~= '' then\n"
    "      a = redis.call('EXISTS', 'cx:worker:' .. w .. ':alive')\n"
    "      reg[w] = redis.call('EXISTS', 'cx:worker:' .. w)\n"
    "    end\n"
    "    alive[w] = a\n"
    "  end\n"
    "  out[#out + 1] = {u, r[i + 1], w, h[2] or '0', a, h[3] or '', "
    "reg[w]}\n"
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
        v[i].registered = cx__rll(row, 6) != 0;
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
    /* A worker that deregistered drained first: what it still holds was
     * never started, whatever the clock says. */
    if (!v->alive && !v->registered) return CX_CHECK_GOODBYE;
    if (now_ms >= v->expiry_ms) return CX_CHECK_EXPIRED;
    if (!v->alive) return CX_CHECK_LOST;
    return CX_CHECK_OK;
}

const char *cx_lease_check_reason(cx_check_t c) {
    switch (c) {
    case CX_CHECK_EXPIRED: return "lease expired";
    case CX_CHECK_LOST: return "worker lost (heartbeat stopped)";
    case CX_CHECK_ORPHAN: return "orphan lease";
    case CX_CHECK_GOODBYE: return "worker said goodbye (drained)";
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
