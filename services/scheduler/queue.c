/* Pending queue: admission, order, and placement planning. */
#include "queue.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

uint64_t cx_queue_score(uint64_t job_rank, uint32_t ordinal,
                        uint32_t class_index) {
    if (ordinal > CX_QUEUE_ORDINAL_MAX) ordinal = CX_QUEUE_ORDINAL_MAX;
    if (class_index > CX_QUEUE_CLASS_MAX) class_index = CX_QUEUE_CLASS_MAX;
    return (job_rank << 32) | ((uint64_t)ordinal << 6) | class_index;
}

/* The job's rank: assigned once, on its first unit. */
static cx_redis_script_t lua_jobseq = {.lua =
    "local s = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if s then return tonumber(s) end\n"
    "s = redis.call('INCR', KEYS[2])\n"
    "redis.call('HSET', KEYS[1], ARGV[1], s)\n"
    "return s\n"};

/* KEYS[1] cx:unit:<unit>. ARGV: unit job class class_index samples payload
 * score ordinal ckpt width height steps. Never overwrites: a duplicate
 * keeps its state. The unit type (ckpt, width, height, steps) lets a
 * restarted scheduler rebuild its index without decoding payloads. */
static cx_redis_script_t lua_admit = {.lua =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "if redis.call('HGET', 'cx:job:' .. ARGV[2], 'state') == 'CANCELLED' "
    "then return 2 end\n"
    "redis.call('HSET', KEYS[1], 'job', ARGV[2], 'class', ARGV[3],\n"
    "  'class_index', ARGV[4], 'samples', ARGV[5], 'payload', ARGV[6],\n"
    "  'state', 'pending', 'attempt', 0, 'epoch', 0, 'worker', '',\n"
    "  'excluded', '', 'seq', ARGV[7], 'ordinal', ARGV[8],\n"
    "  'ckpt', ARGV[9], 'width', ARGV[10], 'height', ARGV[11],\n"
    "  'steps', ARGV[12])\n"
    "redis.call('ZADD', 'cx:pending', ARGV[7], ARGV[1])\n"
    "return 1\n"};

int cx_queue_admit(cx_redis_t *r, const cx_unit_t *u, const void *payload,
                   size_t len, cx_err_t *err) {
    const char *a1[] = {"cx:sched:jobseq", "cx:sched:jobseq:next", u->job_id};
    redisReply *rep = cx_redis_eval(r, &lua_jobseq, 2, 1, a1, err);
    if (!rep) return cx_err_wrap(err, "job rank");
    long long rank = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    freeReplyObject(rep);

    char key[64], cls[16], samples[16], score[24], ord[16], w[16], h[16],
        st[16];
    const Cascade__V1__GenerationParams *gp = u->params;
    snprintf(key, sizeof key, "cx:unit:%s", u->unit_id);
    snprintf(cls, sizeof cls, "%" PRIu32, u->class_index);
    snprintf(samples, sizeof samples, "%" PRIu32, u->sample_count);
    snprintf(score, sizeof score, "%" PRIu64,
             cx_queue_score((uint64_t)rank, u->ordinal, u->class_index));
    snprintf(ord, sizeof ord, "%" PRIu32, u->ordinal);
    snprintf(w, sizeof w, "%" PRIu32, gp ? gp->width : 0);
    snprintf(h, sizeof h, "%" PRIu32, gp ? gp->height : 0);
    snprintf(st, sizeof st, "%" PRIu32, gp ? gp->steps : 0);
    /* cx_redis_eval takes C strings; the payload is binary, so this one
     * goes through EVALSHA-less argv with lengths. */
    const char *argv[] = {"EVAL", lua_admit.lua, "1", key, u->unit_id,
                          u->job_id, u->class_name, cls, samples,
                          (const char *)payload, score, ord,
                          gp && gp->checkpoint ? gp->checkpoint : "", w, h,
                          st};
    size_t lens[16];
    for (int i = 0; i < 16; i++) lens[i] = i == 9 ? len : strlen(argv[i]);
    rep = cx_redis_cmdargv(r, 16, argv, lens, err);
    if (!rep) return cx_err_wrap(err, "admit unit %s", u->unit_id);
    int rc = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
    freeReplyObject(rep);
    if (rc < 0)
        return cx_err_set(err, CX_EREDIS, 0, "admit unit %s: bad reply",
                          u->unit_id);
    return rc;
}

/* ARGV: groups of 12 as lua_admit's ARGV (unit ... steps). */
static const char lua_admit_batch[] =
    "local out, states = {}, {}\n"
    "for i = 1, #ARGV, 12 do\n"
    "  local k = 'cx:unit:' .. ARGV[i]\n"
    "  local js = states[ARGV[i + 1]]\n"
    "  if js == nil then\n"
    "    js = redis.call('HGET', 'cx:job:' .. ARGV[i + 1], 'state') or ''\n"
    "    states[ARGV[i + 1]] = js\n"
    "  end\n"
    "  if redis.call('EXISTS', k) == 1 then out[#out + 1] = 0\n"
    "  elseif js == 'CANCELLED' then out[#out + 1] = 2\n"
    "  else\n"
    "    redis.call('HSET', k, 'job', ARGV[i + 1], 'class', ARGV[i + 2],\n"
    "      'class_index', ARGV[i + 3], 'samples', ARGV[i + 4],\n"
    "      'payload', ARGV[i + 5], 'state', 'pending', 'attempt', 0,\n"
    "      'epoch', 0, 'worker', '', 'excluded', '', 'seq', ARGV[i + 6],\n"
    "      'ordinal', ARGV[i + 7], 'ckpt', ARGV[i + 8], 'width', ARGV[i + 9],\n"
    "      'height', ARGV[i + 10], 'steps', ARGV[i + 11])\n"
    "    redis.call('ZADD', 'cx:pending', ARGV[i + 6], ARGV[i])\n"
    "    out[#out + 1] = 1\n"
    "  end\n"
    "end\n"
    "return out\n";

/* The job's admission rank (assigned on its first unit). */
static long long job_rank(cx_redis_t *r, const char *job, cx_err_t *err) {
    const char *a1[] = {"cx:sched:jobseq", "cx:sched:jobseq:next", job};
    redisReply *rep = cx_redis_eval(r, &lua_jobseq, 2, 1, a1, err);
    if (!rep) return cx_err_wrap(err, "job rank");
    long long rank = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    freeReplyObject(rep);
    return rank;
}

int cx_queue_admit_batch(cx_redis_t *r, const cx_unit_t *const *units,
                         const void *const *payloads, const size_t *lens,
                         size_t n, int *rcs, cx_err_t *err) {
    if (!n) return 0;
    size_t argc = 3 + 12 * n;
    const char **argv = calloc(argc, sizeof *argv);
    size_t *alen = calloc(argc, sizeof *alen);
    char (*nums)[7][24] = calloc(n, sizeof *nums);
    int rc = -1;
    long long rank = -1;
    const char *ranked = NULL;
    if (!argv || !alen || !nums) {
        cx_err_set(err, CX_ENOMEM, 0, "admit batch: out of memory");
        goto done;
    }
    argv[0] = "EVAL";
    argv[1] = lua_admit_batch;
    argv[2] = "0";
    for (size_t i = 0; i < n; i++) {
        const cx_unit_t *u = units[i];
        const Cascade__V1__GenerationParams *gp = u->params;
        if (!ranked || strcmp(ranked, u->job_id) != 0) {
            if ((rank = job_rank(r, u->job_id, err)) < 0) goto done;
            ranked = u->job_id;
        }
        snprintf(nums[i][0], 24, "%" PRIu32, u->class_index);
        snprintf(nums[i][1], 24, "%" PRIu32, u->sample_count);
        snprintf(nums[i][2], 24, "%" PRIu64,
                 cx_queue_score((uint64_t)rank, u->ordinal, u->class_index));
        snprintf(nums[i][3], 24, "%" PRIu32, u->ordinal);
        snprintf(nums[i][4], 24, "%" PRIu32, gp ? gp->width : 0);
        snprintf(nums[i][5], 24, "%" PRIu32, gp ? gp->height : 0);
        snprintf(nums[i][6], 24, "%" PRIu32, gp ? gp->steps : 0);
        const char **a = argv + 3 + 12 * i;
        a[0] = u->unit_id;
        a[1] = u->job_id;
        a[2] = u->class_name;
        a[3] = nums[i][0];
        a[4] = nums[i][1];
        a[5] = payloads[i];
        a[6] = nums[i][2];
        a[7] = nums[i][3];
        a[8] = gp && gp->checkpoint ? gp->checkpoint : "";
        a[9] = nums[i][4];
        a[10] = nums[i][5];
        a[11] = nums[i][6];
    }
    for (size_t i = 0; i < argc; i++) alen[i] = strlen(argv[i]);
    for (size_t i = 0; i < n; i++) alen[3 + 12 * i + 5] = lens[i];
    redisReply *rep = cx_redis_cmdargv(r, (int)argc, argv, alen, err);
    if (!rep) {
        cx_err_wrap(err, "admit %zu units", n);
        goto done;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
        freeReplyObject(rep);
        cx_err_set(err, CX_EREDIS, 0, "admit batch: bad reply");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        rcs[i] = rep->element[i]->type == REDIS_REPLY_INTEGER
                     ? (int)rep->element[i]->integer
                     : -1;
    freeReplyObject(rep);
    rc = 0;
done:
    free(argv);
    free(alen);
    free(nums);
    return rc;
}

static cx_redis_script_t lua_peek = {.lua =
    "local us = redis.call('ZRANGE', 'cx:pending', 0, tonumber(ARGV[1]) - 1)\n"
    "local out, jobs = {}, {}\n"
    "for _, u in ipairs(us) do\n"
    "  local h = redis.call('HMGET', 'cx:unit:' .. u, 'job', 'excluded')\n"
    "  local job = h[1] or ''\n"
    "  local st = jobs[job]\n"
    "  if st == nil then\n"
    "    st = redis.call('HGET', 'cx:job:' .. job, 'state') or ''\n"
    "    jobs[job] = st\n"
    "  end\n"
    "  out[#out + 1] = {u, job, h[2] or '', st}\n"
    "end\n"
    "return out\n"};

void cx_queue_cands_free(cx_cand_t *c, size_t n) {
    if (!c) return;
    for (size_t i = 0; i < n; i++) {
        free(c[i].unit);
        free(c[i].job);
        free(c[i].excluded);
    }
    free(c);
}

int cx_queue_peek(cx_redis_t *r, size_t limit, cx_cand_t **out, size_t *n,
                  cx_err_t *err) {
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *args[] = {lim};
    *out = NULL;
    *n = 0;
    redisReply *rep = cx_redis_eval(r, &lua_peek, 0, 1, args, err);
    if (!rep) return cx_err_wrap(err, "peek pending");
    if (rep->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return cx_err_set(err, CX_EREDIS, 0, "peek pending: bad reply");
    }
    cx_cand_t *c = calloc(rep->elements ? rep->elements : 1, sizeof *c);
    if (!c) goto fail_nomem;
    size_t k = 0;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *row = rep->element[i];
        c[k].unit = strdup(cx__rstr(row, 0));
        c[k].job = strdup(cx__rstr(row, 1));
        c[k].excluded = strdup(cx__rstr(row, 2));
        c[k].cancelled = strcmp(cx__rstr(row, 3), "CANCELLED") == 0;
        k++;
        if (!c[k - 1].unit || !c[k - 1].job || !c[k - 1].excluded) {
            cx_queue_cands_free(c, k);
            goto fail_nomem;
        }
    }
    freeReplyObject(rep);
    *out = c;
    *n = k;
    return 0;

fail_nomem:
    freeReplyObject(rep);
    return cx_err_set(err, CX_ENOMEM, 0, "peek pending: out of memory");
}

static cx_redis_script_t lua_cancel = {.lua =
    "if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', 'cancelled')\n"
    "redis.call('ZREM', 'cx:pending', ARGV[1])\n"
    "return 1\n"};

int cx_queue_cancel(cx_redis_t *r, const char *unit, cx_err_t *err) {
    char key[128];
    snprintf(key, sizeof key, "cx:unit:%s", unit);
    const char *args[] = {key, unit};
    redisReply *rep = cx_redis_eval(r, &lua_cancel, 1, 1, args, err);
    if (!rep) return cx_err_wrap(err, "cancel unit %s", unit);
    freeReplyObject(rep);
    return 0;
}

static cx_redis_script_t lua_cancel_many = {.lua =
    "local n = 0\n"
    "for i = 1, #ARGV do\n"
    "  local k = 'cx:unit:' .. ARGV[i]\n"
    "  if redis.call('HGET', k, 'state') == 'pending' then\n"
    "    redis.call('HSET', k, 'state', 'cancelled')\n"
    "    redis.call('ZREM', 'cx:pending', ARGV[i])\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n"};

int cx_queue_cancel_many(cx_redis_t *r, const char *const *units, size_t n,
                         cx_err_t *err) {
    for (size_t off = 0; off < n; off += 1000) {
        size_t k = n - off < 1000 ? n - off : 1000;
        redisReply *rep = cx_redis_eval(r, &lua_cancel_many, 0, (int)k,
                                        (const char **)units + off, err);
        if (!rep) return cx_err_wrap(err, "cancel %zu units", k);
        freeReplyObject(rep);
    }
    return 0;
}

int cx_queue_csv_has(const char *list, const char *worker) {
    size_t wl = strlen(worker);
    const char *p = list;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == wl && memcmp(p, worker, wl) == 0) return 1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

int cx_queue_excluded(const char *excluded, const char *worker,
                      const char *const *eligible, size_t neligible) {
    if (!excluded || !*excluded || !cx_queue_csv_has(excluded, worker))
        return 0;
    for (size_t i = 0; i < neligible; i++)
        if (!cx_queue_csv_has(excluded, eligible[i])) return 1;
    return 0; /* every eligible worker failed it: let it run anyway */
}

size_t cx_queue_plan(const cx_cand_t *cands, size_t ncands,
                     const char *const *workers, const int *free_slots,
                     size_t nworkers, cx_pair_t *out, size_t max) {
    size_t npairs = 0;
    char *taken = calloc(ncands ? ncands : 1, 1);
    int *left = malloc((nworkers ? nworkers : 1) * sizeof *left);
    if (!taken || !left) goto done;
    for (size_t w = 0; w < nworkers; w++) left[w] = free_slots[w] > 0 ? free_slots[w] : 0;

    int progress = 1;
    while (progress && npairs < max) {
        progress = 0;
        for (size_t w = 0; w < nworkers && npairs < max; w++) {
            if (left[w] == 0) continue;
            for (size_t c = 0; c < ncands; c++) {
                if (taken[c] || cands[c].cancelled) continue;
                if (cx_queue_excluded(cands[c].excluded, workers[w], workers,
                                      nworkers))
                    continue;
                taken[c] = 1;
                left[w]--;
                out[npairs].cand = c;
                out[npairs].worker = w;
                npairs++;
                progress = 1;
                break;
            }
        }
    }
done:
    free(taken);
    free(left);
    return npairs;
}
