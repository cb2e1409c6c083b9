/* Redis reads for the scheduler's index (sync.h). */
#include "sync.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/codec.h"
#include "registry.h"
#include "reply.h"

static cx_redis_script_t lua_workers = {.lua =
    "local ws = redis.call('ZRANGE', 'cx:workers', 0, -1, 'WITHSCORES')\n"
    "local out = {}\n"
    "for i = 1, #ws, 2 do\n"
    "  local w = ws[i]\n"
    "  local k = 'cx:worker:' .. w\n"
    "  local h = redis.call('HMGET', k, 'partition', 'slots', 'draining',\n"
    "    'gpu_type', 'mem_budget_bytes')\n"
    "  local warm = redis.call('HKEYS', k .. ':warm')\n"
    "  out[#out + 1] = {w, ws[i + 1], redis.call('EXISTS', k .. ':alive'),\n"
    "    redis.call('EXISTS', k), h[1] or '', h[2] or '', h[3] or '',\n"
    "    h[4] or '', h[5] or '', redis.call('EXISTS', 'cx:quarantine:' .. w),\n"
    "    table.concat(warm, '\\n')}\n"
    "end\n"
    "return out\n"};

void cx_sync_workers_free(cx_sync_worker_t *w, size_t n) {
    if (!w) return;
    for (size_t i = 0; i < n; i++) {
        free(w[i].id);
        free(w[i].gpu_type);
        free(w[i].warm);
    }
    free(w);
}

int cx_sync_workers(cx_redis_t *r, cx_sync_worker_t **out, size_t *n,
                    cx_err_t *err) {
    const char *none[1] = {NULL};
    *out = NULL;
    *n = 0;
    redisReply *rep = cx_redis_eval(r, &lua_workers, 0, 0, none, err);
    if (!rep) return cx_err_wrap(err, "list workers");
    if (rep->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return cx_err_set(err, CX_EREDIS, 0, "list workers: bad reply");
    }
    cx_sync_worker_t *w = calloc(rep->elements ? rep->elements : 1, sizeof *w);
    if (!w) goto fail_nomem;
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *row = rep->element[i];
        w[i].id = strdup(cx__rstr(row, 0));
        w[i].gpu_type = strdup(cx__rstr(row, 7));
        w[i].warm = strdup(cx__rstr(row, 10));
        if (!w[i].id || !w[i].gpu_type || !w[i].warm) {
            cx_sync_workers_free(w, i + 1);
            goto fail_nomem;
        }
        w[i].last_hb_ms = cx__rll(row, 1);
        w[i].alive = cx__rll(row, 2) != 0;
        w[i].registered = cx__rll(row, 3) != 0;
        w[i].partition = cx_registry_parse_partition(cx__rstr(row, 4), 0);
        w[i].slots = (int)cx__rll(row, 5);
        w[i].draining = cx__rll(row, 6) != 0;
        w[i].mem_budget = strtoull(cx__rstr(row, 8), NULL, 10);
        w[i].quarantined = cx__rll(row, 9) != 0;
    }
    *out = w;
    *n = rep->elements;
    freeReplyObject(rep);
    return 0;
fail_nomem:
    freeReplyObject(rep);
    return cx_err_set(err, CX_ENOMEM, 0, "list workers: out of memory");
}

static cx_redis_script_t lua_units = {.lua =
    "local out = {}\n"
    "for i = 1, #ARGV do\n"
    "  out[i] = redis.call('HMGET', 'cx:unit:' .. ARGV[i], 'state', 'job',\n"
    "    'class', 'class_index', 'samples', 'attempt', 'excluded', 'ckpt',\n"
    "    'width', 'height', 'steps', 'worker', 'epoch', 'seq')\n"
    "end\n"
    "return out\n"};

void cx_sync_units_release(cx_sync_unit_t *u, size_t n) {
    for (size_t i = 0; u && i < n; i++) {
        free(u[i].id);
        free(u[i].state);
        free(u[i].job);
        free(u[i].class_name);
        free(u[i].excluded);
        free(u[i].ckpt);
        free(u[i].worker);
        memset(&u[i], 0, sizeof u[i]);
    }
}

int cx_sync_units(cx_redis_t *r, const char *const *ids, size_t n,
                  cx_sync_unit_t *out, cx_err_t *err) {
    memset(out, 0, n * sizeof *out);
    if (!n) return 0;
    redisReply *rep = cx_redis_eval(r, &lua_units, 0, (int)n, (const char **)ids, err);
    if (!rep) return cx_err_wrap(err, "read %zu units", n);
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
        freeReplyObject(rep);
        return cx_err_set(err, CX_EREDIS, 0, "read units: bad reply");
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *row = rep->element[i];
        cx_sync_unit_t *u = &out[i];
        u->id = strdup(ids[i]);
        u->state = strdup(cx__rstr(row, 0));
        u->job = strdup(cx__rstr(row, 1));
        u->class_name = strdup(cx__rstr(row, 2));
        u->excluded = strdup(cx__rstr(row, 6));
        u->ckpt = strdup(cx__rstr(row, 7));
        u->worker = strdup(cx__rstr(row, 11));
        if (!u->id || !u->state || !u->job || !u->class_name ||
            !u->excluded || !u->ckpt || !u->worker) {
            cx_sync_units_release(out, i + 1);
            freeReplyObject(rep);
            return cx_err_set(err, CX_ENOMEM, 0, "read units: out of memory");
        }
        u->class_index = (uint32_t)cx__rll(row, 3);
        u->samples = (uint32_t)cx__rll(row, 4);
        u->attempt = (uint32_t)cx__rll(row, 5);
        u->width = (uint32_t)cx__rll(row, 8);
        u->height = (uint32_t)cx__rll(row, 9);
        u->steps = (uint32_t)cx__rll(row, 10);
        u->epoch = strtoull(cx__rstr(row, 12), NULL, 10);
        u->seq = strtod(cx__rstr(row, 13), NULL);
    }
    freeReplyObject(rep);
    return 0;
}

static int ids_of(redisReply *rep, cx_strlist_t *out, cx_err_t *err,
                  const char *what) {
    if (!rep) return cx_err_wrap(err, "%s", what);
    int rc = 0;
    if (rep->type != REDIS_REPLY_ARRAY) {
        rc = cx_err_set(err, CX_EREDIS, 0, "%s: bad reply", what);
    } else {
        for (size_t i = 0; i < rep->elements && rc == 0; i++)
            if (rep->element[i]->type == REDIS_REPLY_STRING &&
                cx_strlist_push(out, rep->element[i]->str) < 0)
                rc = cx_err_set(err, CX_ENOMEM, 0, "%s: out of memory", what);
    }
    freeReplyObject(rep);
    return rc;
}

int cx_sync_pending_ids(cx_redis_t *r, size_t start, size_t count,
                        cx_strlist_t *out, cx_err_t *err) {
    return ids_of(cx_redis_cmd(r, err, "ZRANGE cx:pending %lld %lld",
                               (long long)start,
                               count ? (long long)(start + count - 1) : -1LL),
                  out, err, "list pending");
}

int cx_sync_lease_ids(cx_redis_t *r, cx_strlist_t *out, cx_err_t *err) {
    return ids_of(cx_redis_cmd(r, err, "ZRANGE cx:leases 0 -1"), out, err,
                  "list leases");
}

long long cx_sync_pending_count(cx_redis_t *r, cx_err_t *err) {
    redisReply *rep = cx_redis_cmd(r, err, "ZCARD cx:pending");
    if (!rep) return cx_err_wrap(err, "count pending");
    long long n = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    freeReplyObject(rep);
    if (n < 0) return cx_err_set(err, CX_EREDIS, 0, "count pending: bad reply");
    return n;
}

int cx_sync_unit_type(cx_redis_t *r, const char *unit, char *ckpt,
                      size_t size, uint32_t *width, uint32_t *height,
                      uint32_t *steps, cx_err_t *err) {
    redisReply *rep = cx_redis_cmd(r, err, "HGET cx:unit:%s payload", unit);
    if (!rep) return cx_err_wrap(err, "payload of %s", unit);
    cx_unit_t *u = rep->type == REDIS_REPLY_STRING
                       ? cx_decode_unit(rep->str, rep->len, err)
                       : NULL;
    freeReplyObject(rep);
    if (!u) return cx_err_set(err, CX_EDECODE, 0, "unit %s: no payload", unit);
    const Cascade__V1__GenerationParams *gp = u->params;
    snprintf(ckpt, size, "%s", gp && gp->checkpoint ? gp->checkpoint : "");
    *width = gp ? gp->width : 0;
    *height = gp ? gp->height : 0;
    *steps = gp ? gp->steps : 0;
    cascade__v1__work_unit__free_unpacked(u, NULL);
    return 0;
}

int cx_sync_ckpts(cx_redis_t *r, cx_tput_t *m, cx_err_t *err) {
    for (size_t k = 0; k < cx_tput_nckpts(m); k++) {
        const char *name = cx_tput_ckpt_name(m, (int)k);
        redisReply *rep = cx_redis_cmd(
            r, err, "HMGET cx:ckpt:%s mem_bytes load_ms_ewma load_ms", name);
        if (!rep) return cx_err_wrap(err, "checkpoint %s", name);
        uint64_t mem = strtoull(cx__rstr(rep, 0), NULL, 10);
        double load = strtod(cx__rstr(rep, 1), NULL);
        if (!(load > 0)) load = strtod(cx__rstr(rep, 2), NULL);
        freeReplyObject(rep);
        cx_tput_set_ckpt(m, (int)k, load > 0 ? load / 1000.0 : 0, mem);
    }
    return 0;
}

int cx_sync_tput_field(const char *field, char *utype, size_t usize,
                       char *gpu, size_t gsize) {
    const char *bar = strrchr(field, '|');
    if (!bar || bar == field || !bar[1] || (size_t)(bar - field) >= usize ||
        strlen(bar + 1) >= gsize)
        return -1;
    memcpy(utype, field, (size_t)(bar - field));
    utype[bar - field] = '\0';
    snprintf(gpu, gsize, "%s", bar + 1);
    return 0;
}

int cx_sync_tput_load(cx_redis_t *r, cx_tput_t *m, cx_err_t *err) {
    redisReply *rep = cx_redis_cmd(r, err, "HGETALL cx:tput");
    if (!rep) return cx_err_wrap(err, "read cx:tput");
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements;
         i += 2) {
        char ut[CX_TPUT_NAME_MAX + 32], gpu[CX_TPUT_NAME_MAX], ck[CX_TPUT_NAME_MAX];
        uint32_t w, h, st;
        double mean, var;
        unsigned long long n;
        if (cx_sync_tput_field(cx__rstr(rep, i), ut, sizeof ut, gpu,
                               sizeof gpu) < 0 ||
            cx_tput_key_parse(ut, ck, sizeof ck, &w, &h, &st) < 0 ||
            sscanf(cx__rstr(rep, i + 1), "%lf %lf %llu", &mean, &var, &n) != 3)
            continue; /* someone else's junk: not ours to fail on */
        int u = cx_tput_utype(m, ck, w, h, st), g = cx_tput_gtype(m, gpu);
        if (u >= 0 && g >= 0) cx_tput_restore(m, u, g, mean, var, n);
    }
    freeReplyObject(rep);
    return 0;
}

int cx_sync_tput_save(cx_redis_t *r, const cx_tput_t *m, cx_err_t *err) {
    size_t n = cx_tput_cells(m, NULL, 0);
    if (!n) return 0;
    cx_tput_cell_t *c = malloc(n * sizeof *c);
    const char **argv = malloc((2 + 2 * n) * sizeof *argv);
    char (*fields)[CX_TPUT_NAME_MAX * 2 + 40] = malloc(n * sizeof *fields);
    char (*vals)[80] = malloc(n * sizeof *vals);
    size_t *lens = malloc((2 + 2 * n) * sizeof *lens);
    int rc = -1;
    if (!c || !argv || !fields || !vals || !lens) {
        cx_err_set(err, CX_ENOMEM, 0, "save cx:tput: out of memory");
        goto done;
    }
    cx_tput_cells(m, c, n);
    argv[0] = "HSET";
    argv[1] = "cx:tput";
    for (size_t i = 0; i < n; i++) {
        snprintf(fields[i], sizeof fields[i], "%s|%s",
                 cx_tput_utype_key(m, c[i].ut), cx_tput_gtype_name(m, c[i].g));
        snprintf(vals[i], sizeof vals[i], "%.9g %.9g %" PRIu64, c[i].mean_log,
                 c[i].var_log, c[i].n);
        argv[2 + 2 * i] = fields[i];
        argv[3 + 2 * i] = vals[i];
    }
    for (size_t i = 0; i < 2 + 2 * n; i++) lens[i] = strlen(argv[i]);
    redisReply *rep = cx_redis_cmdargv(r, (int)(2 + 2 * n), argv, lens, err);
    if (!rep) {
        cx_err_wrap(err, "save cx:tput");
        goto done;
    }
    freeReplyObject(rep);
    rc = 0;
done:
    free(c);
    free(argv);
    free(fields);
    free(vals);
    free(lens);
    return rc;
}
