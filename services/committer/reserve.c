#include "reserve.h"

#include <stdio.h>
#include <stdlib.h>

#include "cascade/jobstate.h"

/* KEYS: resolved, resv, granted, quota. ARGV: unit, class, passed.
 * Returns the grant, -1 for a dead unit, -2 when the class has no quota. */
static cx_redis_script_t cx__reserve_lua = {
    "if redis.call('HGET', KEYS[1], ARGV[1]) == 'd' then return -1 end\n"
    "local g = redis.call('HGET', KEYS[2], ARGV[1])\n"
    "if g then return tonumber(g) end\n"
    "local q = redis.call('HGET', KEYS[4], ARGV[2])\n"
    "if not q then return -2 end\n"
    "local used = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')\n"
    "local grant = math.min(tonumber(ARGV[3]), tonumber(q) - used)\n"
    "if grant < 0 then grant = 0 end\n"
    "redis.call('HSET', KEYS[2], ARGV[1], grant)\n"
    "redis.call('HINCRBY', KEYS[3], ARGV[2], grant)\n"
    "return grant\n",
    {0}};

/* KEYS: resv, granted. ARGV: unit, class, committed. Returns the grant
 * given back (0 when nothing changed). */
static cx_redis_script_t cx__settle_lua = {
    "local g = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')\n"
    "local c = tonumber(ARGV[3])\n"
    "if g <= c then return 0 end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], c)\n"
    "redis.call('HINCRBY', KEYS[2], ARGV[2], c - g)\n"
    "return g - c\n",
    {0}};

int cx_reserve(cx_redis_t *r, const char *job_id, const char *unit_id,
               const char *class_name, uint32_t passed,
               cx_reserve_result_t *res, uint32_t *grant, cx_err_t *err) {
    char k_resolved[256], k_resv[256], k_granted[256], k_quota[256], n[16];
    if (cx_jobstate_key(k_resolved, sizeof k_resolved, job_id, "resolved") <
            0 ||
        cx_jobstate_key(k_resv, sizeof k_resv, job_id, "resv") < 0 ||
        cx_jobstate_key(k_granted, sizeof k_granted, job_id, "granted") < 0 ||
        cx_jobstate_key(k_quota, sizeof k_quota, job_id, "quota") < 0)
        return cx_err_set(err, CX_EINVAL, 0, "job id too long");
    snprintf(n, sizeof n, "%u", passed);
    const char *args[] = {k_resolved, k_resv,     k_granted, k_quota,
                          unit_id,    class_name, n};
    redisReply *rep = cx_redis_eval(r, &cx__reserve_lua, 4, 3, args, err);
    if (!rep) return cx_err_wrap(err, "reserve");
    int rc = 0;
    if (rep->type != REDIS_REPLY_INTEGER) {
        rc = cx_err_set(err, CX_EREDIS, 0, "reserve: unexpected reply type %d",
                        rep->type);
    } else if (rep->integer == -1) {
        *res = CX_RESERVE_FENCED;
        *grant = 0;
    } else if (rep->integer == -2) {
        rc = cx_err_set(err, CX_ENOENT, 0, "no quota for class '%s' of job %s",
                        class_name, job_id);
    } else if (rep->integer < 0 || rep->integer > (long long)passed) {
        /* A recorded grant never exceeds what that unit passed; a larger
         * one here means a different verdict for the same unit. Trust the
         * record but never promote more than we have. */
        *res = CX_RESERVE_GRANTED;
        *grant = rep->integer < 0 ? 0 : passed;
    } else {
        *res = CX_RESERVE_GRANTED;
        *grant = (uint32_t)rep->integer;
    }
    freeReplyObject(rep);
    return rc;
}

int cx_reserve_settle(cx_redis_t *r, const char *job_id, const char *unit_id,
                      const char *class_name, uint32_t committed,
                      cx_err_t *err) {
    char k_resv[256], k_granted[256], n[16];
    if (cx_jobstate_key(k_resv, sizeof k_resv, job_id, "resv") < 0 ||
        cx_jobstate_key(k_granted, sizeof k_granted, job_id, "granted") < 0)
        return cx_err_set(err, CX_EINVAL, 0, "job id too long");
    snprintf(n, sizeof n, "%u", committed);
    const char *args[] = {k_resv, k_granted, unit_id, class_name, n};
    redisReply *rep = cx_redis_eval(r, &cx__settle_lua, 2, 3, args, err);
    if (!rep) return cx_err_wrap(err, "settle grant");
    int rc = rep->type == REDIS_REPLY_INTEGER
                 ? 0
                 : cx_err_set(err, CX_EREDIS, 0,
                              "settle grant: unexpected reply type %d",
                              rep->type);
    freeReplyObject(rep);
    return rc;
}
