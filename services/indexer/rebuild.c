/* cx_rebuild_*: recompute a job's index counters from its manifests. */
#include "rebuild.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/codec.h"
#include "cascade/jobstate.h"
#include "cascade/log.h"

/* KEYS: committed units generated passed resolved resolved_n
 * ARGV: nclasses [name committed units generated passed resolved_n]...
 *       unit...
 * Replaces the counters and the `c` marks at once; `d` marks stay unless
 * a manifest shows the unit committed after all. */
static cx_redis_script_t replace_script = {.lua =
    "for _, i in ipairs({1, 2, 3, 4, 6}) do redis.call('DEL', KEYS[i]) end\n"
    "local all = redis.call('HGETALL', KEYS[5])\n"
    "for i = 1, #all, 2 do\n"
    "  if all[i+1] == 'c' then redis.call('HDEL', KEYS[5], all[i]) end\n"
    "end\n"
    "local p = 2\n"
    "for c = 1, tonumber(ARGV[1]) do\n"
    "  local name = ARGV[p]\n"
    "  redis.call('HSET', KEYS[1], name, ARGV[p+1])\n"
    "  redis.call('HSET', KEYS[2], name, ARGV[p+2])\n"
    "  redis.call('HSET', KEYS[3], name, ARGV[p+3])\n"
    "  redis.call('HSET', KEYS[4], name, ARGV[p+4])\n"
    "  redis.call('HSET', KEYS[6], name, ARGV[p+5])\n"
    "  p = p + 6\n"
    "end\n"
    "for i = p, #ARGV do redis.call('HSET', KEYS[5], ARGV[i], 'c') end\n"
    "return 1\n"};

void cx_rebuild_init(cx_rebuild_t *rb, const char *job_id) {
    memset(rb, 0, sizeof *rb);
    snprintf(rb->job_id, sizeof rb->job_id, "%s", job_id);
}

void cx_rebuild_release(cx_rebuild_t *rb) {
    if (!rb) return;
    free(rb->classes);
    cx_strlist_free(&rb->committed_units);
    rb->classes = NULL;
    rb->nclasses = 0;
}

cx_rebuild_class_t *cx_rebuild_class(cx_rebuild_t *rb, const char *name,
                                     cx_err_t *err) {
    for (size_t i = 0; i < rb->nclasses; i++)
        if (strcmp(rb->classes[i].name, name) == 0) return &rb->classes[i];
    if (cx_name_check("class name", name, err) < 0) return NULL;
    cx_rebuild_class_t *n =
        realloc(rb->classes, (rb->nclasses + 1) * sizeof *rb->classes);
    if (!n) {
        cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        return NULL;
    }
    rb->classes = n;
    cx_rebuild_class_t *c = &rb->classes[rb->nclasses++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

int cx_rebuild_add_manifest(cx_rebuild_t *rb, const cx_manifest_t *m,
                            cx_err_t *err) {
    if (strcmp(m->job_id, rb->job_id) != 0) {
        rb->skipped++;
        return 0;
    }
    /* A unit has one manifest key (<unit>.json), so no duplicates here. */
    cx_rebuild_class_t *c = cx_rebuild_class(rb, m->class_name, err);
    if (!c) return -1;
    if (cx_strlist_push(&rb->committed_units, m->unit_id) < 0)
        return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    c->committed += m->committed;
    c->units += 1;
    c->generated += m->generated;
    c->passed += m->passed;
    c->resolved_n += m->planned;
    rb->manifests++;
    return 0;
}

int cx_rebuild_add_dead(cx_rebuild_t *rb, const char *name, uint64_t planned,
                        cx_err_t *err) {
    cx_rebuild_class_t *c = cx_rebuild_class(rb, name, err);
    if (!c) return -1;
    c->resolved_n += planned;
    rb->dead++;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* committed_units is sorted once the manifests are scanned. */
static int is_committed(const cx_rebuild_t *rb, const char *unit) {
    return rb->committed_units.len &&
           bsearch(&unit, rb->committed_units.items, rb->committed_units.len,
                   sizeof(char *), cmp_str) != NULL;
}

static int scan_manifests(cx_store_t *store, cx_rebuild_t *rb, cx_err_t *err) {
    char prefix[CX_NAME_MAX + 16];
    cx_strlist_t keys = {0};
    int rc = 0;

    snprintf(prefix, sizeof prefix, "%s/manifests", rb->job_id);
    if (cx_store_list(store, prefix, &keys, err) < 0) {
        if (!err || err->code != CX_ENOENT) return -1;
        cx_err_clear(err);
    }
    for (size_t i = 0; i < keys.len && rc == 0; i++) {
        const char *k = keys.items[i];
        size_t kl = strlen(k);
        if (kl < 5 || strcmp(k + kl - 5, ".json") != 0) continue;
        void *data = NULL;
        size_t len = 0;
        cx_manifest_t *m = NULL;
        cx_err_t e = {0};
        if (cx_store_get(store, k, &data, &len, &e) < 0) {
            if (e.retriable) {
                if (err) *err = e;
                rc = -1;
            } else {
                CX_WARN("manifest unreadable key=%s reason=\"%s\"", k, e.msg);
                rb->skipped++;
            }
            continue;
        }
        if (cx_manifest_parse(data, len, &m, &e) < 0) {
            CX_WARN("manifest invalid key=%s reason=\"%s\"", k, e.msg);
            rb->skipped++;
        } else if (cx_rebuild_add_manifest(rb, m, err) < 0) {
            rc = -1;
        }
        cx_manifest_free(m);
        free(data);
    }
    cx_strlist_free(&keys);
    cx_strlist_sort(&rb->committed_units);
    return rc;
}

/* Dead units keep their mark; their planned size comes from the WorkUnit
 * the scheduler stored (the manifest of a dead unit does not exist). */
static int scan_dead(cx_redis_t *r, cx_rebuild_t *rb, cx_err_t *err) {
    char key[CX_NAME_MAX + 40];
    cx_jobstate_key(key, sizeof key, rb->job_id, "resolved");
    redisReply *all = cx_redis_cmd(r, err, "HGETALL %s", key);
    if (!all) return -1;
    int rc = 0;
    for (size_t i = 0; all->type == REDIS_REPLY_ARRAY && i + 1 < all->elements && rc == 0; i += 2) {
        const char *unit = all->element[i]->str, *mark = all->element[i + 1]->str;
        if (!unit || !mark || strcmp(mark, "d") != 0 || is_committed(rb, unit))
            continue;
        redisReply *p = cx_redis_cmd(r, err, "HGET cx:unit:%s payload", unit);
        if (!p) {
            rc = -1;
            break;
        }
        cx_unit_t *u = NULL;
        /* Only the size and class are needed: a plain unpack, so a unit
         * the full validator would quibble over is still accounted. */
        if (p->type == REDIS_REPLY_STRING)
            u = cascade__v1__work_unit__unpack(NULL, p->len, (const uint8_t *)p->str);
        freeReplyObject(p);
        if (!u || !u->job_id || strcmp(u->job_id, rb->job_id) != 0 ||
            !u->class_name || !*u->class_name) {
            rb->dead_unknown++;
        } else {
            rc = cx_rebuild_add_dead(rb, u->class_name, u->sample_count, err);
        }
        if (u) cascade__v1__work_unit__free_unpacked(u, NULL);
    }
    freeReplyObject(all);
    return rc;
}

static int apply(cx_redis_t *r, const cx_rebuild_t *rb, cx_err_t *err) {
    static const char *const suffix[6] = {"committed", "units", "generated",
                                          "passed", "resolved", "resolved_n"};
    char keys[6][CX_NAME_MAX + 40], nc[24];
    size_t nargs = 1 + 6 * rb->nclasses + rb->committed_units.len;
    const char **args = calloc(6 + nargs, sizeof *args);
    char (*nums)[5][24] = calloc(rb->nclasses ? rb->nclasses : 1, sizeof *nums);
    int rc = -1;

    if (!args || !nums) {
        cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        goto done;
    }
    for (int i = 0; i < 6; i++) {
        cx_jobstate_key(keys[i], sizeof keys[i], rb->job_id, suffix[i]);
        args[i] = keys[i];
    }
    size_t a = 6;
    snprintf(nc, sizeof nc, "%zu", rb->nclasses);
    args[a++] = nc;
    for (size_t i = 0; i < rb->nclasses; i++) {
        const cx_rebuild_class_t *c = &rb->classes[i];
        uint64_t v[5] = {c->committed, c->units, c->generated, c->passed,
                         c->resolved_n};
        args[a++] = c->name;
        for (int j = 0; j < 5; j++) {
            snprintf(nums[i][j], 24, "%" PRIu64, v[j]);
            args[a++] = nums[i][j];
        }
    }
    for (size_t i = 0; i < rb->committed_units.len; i++)
        args[a++] = rb->committed_units.items[i];
    redisReply *rep = cx_redis_eval(r, &replace_script, 6, (int)nargs, args, err);
    if (!rep) {
        cx_err_wrap(err, "replacing counters of %s", rb->job_id);
        goto done;
    }
    freeReplyObject(rep);
    rc = 0;
done:
    free(args);
    free(nums);
    return rc;
}

int cx_rebuild_job(cx_redis_t *r, cx_store_t *store, cx_rebuild_t *rb,
                   cx_err_t *err) {
    if (cx_name_check("job id", rb->job_id, err) < 0) return -1;
    if (scan_manifests(store, rb, err) < 0) return -1;
    if (scan_dead(r, rb, err) < 0) return -1;
    return apply(r, rb, err);
}
