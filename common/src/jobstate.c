/* cx_jobstate_*: a job's Redis state as one struct (see jobstate.h). */
#include "cascade/jobstate.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The hashes a snapshot reads, in the order the load script returns them;
 * NULL is cx:job:<job> itself. */
static const char *const cx__jobstate_hashes[] = {
    NULL,     "quota",      "committed",    "units", "generated",
    "passed", "issued",     "resolved_n",   "next_ordinal", "round",
    "timing"};
#define CX__JOBSTATE_NHASH \
    (sizeof cx__jobstate_hashes / sizeof cx__jobstate_hashes[0])

static cx_redis_script_t cx__load_script = {.lua =
    "local out = {}\n"
    "for i, k in ipairs(KEYS) do out[i] = redis.call('HGETALL', k) end\n"
    "return out\n"};

/* KEYS: resolved committed units generated passed resolved_n timing
 * ARGV: unit class committed generated passed planned, then timing field /
 * value pairs */
static cx_redis_script_t cx__count_script = {.lua =
    "if redis.call('HSETNX', KEYS[1], ARGV[1], 'c') == 0 then return 0 end\n"
    "redis.call('HINCRBY', KEYS[2], ARGV[2], ARGV[3])\n"
    "redis.call('HINCRBY', KEYS[3], ARGV[2], 1)\n"
    "redis.call('HINCRBY', KEYS[4], ARGV[2], ARGV[4])\n"
    "redis.call('HINCRBY', KEYS[5], ARGV[2], ARGV[5])\n"
    "redis.call('HINCRBY', KEYS[6], ARGV[2], ARGV[6])\n"
    "for i = 7, #ARGV, 2 do\n"
    "  redis.call('HINCRBYFLOAT', KEYS[7], ARGV[i], ARGV[i + 1])\n"
    "end\n"
    "return 1\n"};

typedef struct cx__timing_field {
    const char *name;
    size_t off;
} cx__timing_field_t;

static const cx__timing_field_t cx__timing_fields[] = {
    {"generate_ms", offsetof(cx_jobtiming_t, generate_ms)},
    {"encode_ms", offsetof(cx_jobtiming_t, encode_ms)},
    {"write_ms", offsetof(cx_jobtiming_t, write_ms)},
    {"load_ms", offsetof(cx_jobtiming_t, load_ms)},
    {"validate_ms", offsetof(cx_jobtiming_t, validate_ms)},
    {"commit_ms", offsetof(cx_jobtiming_t, commit_ms)},
    {"to_verdict_ms", offsetof(cx_jobtiming_t, to_verdict_ms)},
    {"to_commit_ms", offsetof(cx_jobtiming_t, to_commit_ms)}};
#define CX__NTIMING (sizeof cx__timing_fields / sizeof cx__timing_fields[0])

static void set_timing(cx_jobtiming_t *t, const char *field,
                       const char *value) {
    if (strcmp(field, "units") == 0) t->units = strtoull(value, NULL, 10);
    else if (strcmp(field, "samples") == 0)
        t->samples = strtoull(value, NULL, 10);
    for (size_t i = 0; i < CX__NTIMING; i++)
        if (strcmp(field, cx__timing_fields[i].name) == 0)
            *(double *)((char *)t + cx__timing_fields[i].off) =
                strtod(value, NULL);
}

int cx_jobstate_key(char *buf, size_t size, const char *job_id,
                    const char *suffix) {
    int n = suffix ? snprintf(buf, size, "cx:job:%s:%s", job_id, suffix)
                   : snprintf(buf, size, "cx:job:%s", job_id);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

cx_jobstate_t *cx_jobstate_new(const char *job_id) {
    if (!job_id || strlen(job_id) > CX_NAME_MAX) return NULL;
    cx_jobstate_t *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    strcpy(st->job_id, job_id);
    st->reason = strdup("");
    st->tenant = strdup("");
    if (!st->reason || !st->tenant) {
        cx_jobstate_free(st);
        return NULL;
    }
    return st;
}

void cx_jobstate_free(cx_jobstate_t *st) {
    if (!st) return;
    free(st->reason);
    free(st->tenant);
    free(st->spec);
    free(st->classes);
    free(st);
}

cx_classstate_t *cx_jobstate_class(const cx_jobstate_t *st, const char *name) {
    for (size_t i = 0; i < st->nclasses; i++)
        if (strcmp(st->classes[i].name, name) == 0) return &st->classes[i];
    return NULL;
}

static cx_classstate_t *class_add(cx_jobstate_t *st, const char *name,
                                  size_t len, cx_err_t *err) {
    char buf[CX_NAME_MAX + 1];
    if (len == 0 || len > CX_NAME_MAX) {
        cx_err_set(err, CX_EINVAL, 0, "job %s: bad class name of %zu bytes",
                   st->job_id, len);
        return NULL;
    }
    memcpy(buf, name, len);
    buf[len] = '\0';
    cx_classstate_t *c = cx_jobstate_class(st, buf);
    if (c) return c;
    cx_classstate_t *n =
        realloc(st->classes, (st->nclasses + 1) * sizeof *st->classes);
    if (!n) {
        cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        return NULL;
    }
    st->classes = n;
    c = &st->classes[st->nclasses++];
    memset(c, 0, sizeof *c);
    memcpy(c->name, buf, len + 1);
    return c;
}

static uint64_t parse_u64(const char *v) {
    /* Counters are non-negative by construction; a negative value (a
     * hand-edited key) reads as 0 rather than as a huge count. */
    long long x = strtoll(v, NULL, 10);
    return x > 0 ? (uint64_t)x : 0;
}

static int replace_str(char **dst, const char *v, size_t len, cx_err_t *err) {
    char *s = strndup(v, len);
    if (!s) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    free(*dst);
    *dst = s;
    return 0;
}

static int set_main(cx_jobstate_t *st, const char *field, const char *value,
                    size_t len, cx_err_t *err) {
    if (strcmp(field, "state") == 0) {
        snprintf(st->state, sizeof st->state, "%.*s", (int)len, value);
    } else if (strcmp(field, "reason") == 0) {
        return replace_str(&st->reason, value, len, err);
    } else if (strcmp(field, "tenant") == 0) {
        return replace_str(&st->tenant, value, len, err);
    } else if (strcmp(field, "spec") == 0) {
        uint8_t *s = malloc(len ? len : 1);
        if (!s) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        memcpy(s, value, len);
        free(st->spec);
        st->spec = s;
        st->spec_len = len;
    } else if (strcmp(field, "submitted_ms") == 0) {
        st->submitted_ms = strtoll(value, NULL, 10);
    } else if (strcmp(field, "done_ms") == 0) {
        st->done_ms = strtoll(value, NULL, 10);
    } else if (strcmp(field, "deadline_ms") == 0) {
        st->deadline_ms = strtoll(value, NULL, 10);
    } else if (strcmp(field, "priority") == 0) {
        st->priority = (int32_t)strtol(value, NULL, 10);
    } else if (strcmp(field, "total_quota") == 0) {
        st->total_quota = parse_u64(value);
    } else if (strcmp(field, "classes") == 0) {
        const char *p = value, *end = value + len;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            size_t n = comma ? (size_t)(comma - p) : (size_t)(end - p);
            if (n && !class_add(st, p, n, err)) return -1;
            p += n + 1;
        }
    }
    return 0;
}

int cx_jobstate_set(cx_jobstate_t *st, const char *hash, const char *field,
                    const char *value, size_t value_len, cx_err_t *err) {
    char num[32];
    if (!hash) return set_main(st, field, value, value_len, err);
    if (strcmp(hash, "timing") == 0) {
        snprintf(num, sizeof num, "%.*s",
                 (int)(value_len < 31 ? value_len : 31), value);
        set_timing(&st->timing, field, num);
        return 0;
    }

    size_t off;
    if (strcmp(hash, "quota") == 0) off = offsetof(cx_classstate_t, quota);
    else if (strcmp(hash, "committed") == 0)
        off = offsetof(cx_classstate_t, committed);
    else if (strcmp(hash, "units") == 0) off = offsetof(cx_classstate_t, units);
    else if (strcmp(hash, "generated") == 0)
        off = offsetof(cx_classstate_t, generated);
    else if (strcmp(hash, "passed") == 0)
        off = offsetof(cx_classstate_t, passed);
    else if (strcmp(hash, "issued") == 0)
        off = offsetof(cx_classstate_t, issued);
    else if (strcmp(hash, "resolved_n") == 0)
        off = offsetof(cx_classstate_t, resolved_n);
    else if (strcmp(hash, "next_ordinal") == 0)
        off = offsetof(cx_classstate_t, next_ordinal);
    else if (strcmp(hash, "round") == 0)
        off = offsetof(cx_classstate_t, round);
    else
        return 0;

    cx_classstate_t *c = class_add(st, field, strlen(field), err);
    if (!c) return -1;
    snprintf(num, sizeof num, "%.*s", (int)(value_len < 31 ? value_len : 31),
             value);
    *(uint64_t *)((char *)c + off) = parse_u64(num);
    return 0;
}

int cx_jobstate_load(cx_redis_t *r, const char *job_id, cx_jobstate_t **out,
                     cx_err_t *err) {
    char keys[CX__JOBSTATE_NHASH][CX_NAME_MAX + 40];
    const char *args[CX__JOBSTATE_NHASH];
    int found = 0;

    *out = NULL;
    if (cx_name_check("job id", job_id, err) < 0) return -1;
    for (size_t i = 0; i < CX__JOBSTATE_NHASH; i++) {
        cx_jobstate_key(keys[i], sizeof keys[i], job_id,
                        cx__jobstate_hashes[i]);
        args[i] = keys[i];
    }
    redisReply *rep =
        cx_redis_eval(r, &cx__load_script, (int)CX__JOBSTATE_NHASH, 0, args, err);
    if (!rep) return cx_err_wrap(err, "loading job %s", job_id);
    cx_jobstate_t *st = NULL;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != CX__JOBSTATE_NHASH) {
        cx_err_set(err, CX_EREDIS, 0, "loading job %s: unexpected reply",
                   job_id);
        goto fail;
    }
    st = cx_jobstate_new(job_id);
    if (!st) {
        cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        goto fail;
    }
    for (size_t h = 0; h < CX__JOBSTATE_NHASH; h++) {
        redisReply *a = rep->element[h];
        if (a->type != REDIS_REPLY_ARRAY) continue;
        for (size_t i = 0; i + 1 < a->elements; i += 2) {
            redisReply *f = a->element[i], *v = a->element[i + 1];
            if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            found = 1;
            if (cx_jobstate_set(st, cx__jobstate_hashes[h], f->str, v->str,
                                v->len, err) < 0)
                goto fail;
        }
    }
    freeReplyObject(rep);
    if (!found) {
        cx_jobstate_free(st);
        return 0;
    }
    *out = st;
    return 1;

fail:
    cx_jobstate_free(st);
    freeReplyObject(rep);
    return -1;
}

int cx_jobstate_list(cx_redis_t *r, int active_only, cx_strlist_t *out,
                     cx_err_t *err) {
    redisReply *rep =
        active_only ? cx_redis_cmd(r, err, "SMEMBERS %s", CX_JOBS_ACTIVE_KEY)
                    : cx_redis_cmd(r, err, "ZRANGE %s 0 -1", CX_JOBS_ALL_KEY);
    if (!rep) return cx_err_wrap(err, "listing jobs");
    cx_strlist_t tmp = {0};
    int rc = 0;
    if (rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < rep->elements && rc == 0; i++)
            if (rep->element[i]->type == REDIS_REPLY_STRING &&
                cx_strlist_push(&tmp, rep->element[i]->str) < 0)
                rc = cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    }
    freeReplyObject(rep);
    if (active_only) cx_strlist_sort(&tmp);
    for (size_t i = 0; i < tmp.len && rc == 0; i++)
        if (cx_strlist_push(out, tmp.items[i]) < 0)
            rc = cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    cx_strlist_free(&tmp);
    return rc;
}

int cx_jobstate_complete(const cx_jobstate_t *st) {
    if (st->nclasses == 0) return 0;
    for (size_t i = 0; i < st->nclasses; i++)
        if (st->classes[i].committed < st->classes[i].quota) return 0;
    return 1;
}

void cx_jobstate_totals(const cx_jobstate_t *st, cx_jobtotals_t *t) {
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < st->nclasses; i++) {
        const cx_classstate_t *c = &st->classes[i];
        t->quota += c->quota;
        t->committed += c->committed;
        t->units += c->units;
        t->generated += c->generated;
        t->passed += c->passed;
        t->issued += c->issued;
    }
    if (t->quota == 0) t->quota = st->total_quota;
}

/* Field/value argument pairs for the timing hash; returns their count. */
static int timing_args(const cx_commit_t *c, char nums[][32],
                       const char **args) {
    double v[CX__NTIMING] = {0};
    const Cascade__V1__StageTiming *t = c->timing;
    if (t) {
        v[0] = t->generate_ms;
        v[1] = t->encode_ms;
        v[2] = t->write_ms;
        v[3] = t->load_ms;
    }
    v[4] = c->validate_ms;
    v[5] = c->commit_ms;
    /* Clocks of different hosts: a negative gap is skew, not time. */
    if (c->staged_unix_ms > 0 && c->verdict_unix_ms >= c->staged_unix_ms)
        v[6] = (double)(c->verdict_unix_ms - c->staged_unix_ms);
    if (c->verdict_unix_ms > 0 && c->committed_unix_ms >= c->verdict_unix_ms)
        v[7] = (double)(c->committed_unix_ms - c->verdict_unix_ms);
    int n = 0;
    args[n] = "units";
    snprintf(nums[0], 32, "1");
    args[n + 1] = nums[0];
    n += 2;
    args[n] = "samples";
    snprintf(nums[1], 32, "%" PRIu32, c->generated);
    args[n + 1] = nums[1];
    n += 2;
    for (size_t i = 0; i < CX__NTIMING; i++, n += 2) {
        args[n] = cx__timing_fields[i].name;
        snprintf(nums[i + 2], 32, "%.3f", v[i]);
        args[n + 1] = nums[i + 2];
    }
    return n;
}

int cx_jobstate_count_commit(cx_redis_t *r, const cx_commit_t *c,
                             cx_err_t *err) {
    char keys[7][CX_NAME_MAX + 40];
    static const char *const suffix[7] = {"resolved",  "committed",
                                          "units",     "generated",
                                          "passed",    "resolved_n",
                                          "timing"};
    char nums[4][24];
    char tnums[CX__NTIMING + 2][32];
    const char *args[13 + 2 * (CX__NTIMING + 2)];

    if (cx_name_check("job id", c->job_id, err) < 0 ||
        cx_name_check("class name", c->class_name, err) < 0)
        return -1;
    if (!c->unit_id || !*c->unit_id)
        return cx_err_set(err, CX_EINVAL, 0, "commit record without unit_id");
    for (int i = 0; i < 7; i++) {
        cx_jobstate_key(keys[i], sizeof keys[i], c->job_id, suffix[i]);
        args[i] = keys[i];
    }
    snprintf(nums[0], sizeof nums[0], "%" PRIu32, c->committed);
    snprintf(nums[1], sizeof nums[1], "%" PRIu32, c->generated);
    snprintf(nums[2], sizeof nums[2], "%" PRIu32, c->passed);
    snprintf(nums[3], sizeof nums[3], "%" PRIu32, c->planned);
    args[7] = c->unit_id;
    args[8] = c->class_name;
    for (int i = 0; i < 4; i++) args[9 + i] = nums[i];
    int nargs = 13 + timing_args(c, tnums, args + 13);

    redisReply *rep =
        cx_redis_eval(r, &cx__count_script, 7, nargs - 7, args, err);
    if (!rep)
        return cx_err_wrap(err, "counting unit %s of job %s", c->unit_id,
                           c->job_id);
    int rc = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1 ? 1 : 0;
    freeReplyObject(rep);
    return rc;
}

uint8_t *cx_jobstate_progress_pack(const cx_jobstate_t *st, int64_t now_ms,
                                   size_t *len, cx_err_t *err) {
    Cascade__V1__Progress p = CASCADE__V1__PROGRESS__INIT;
    Cascade__V1__ClassProgress *cls = NULL, **ptrs = NULL;
    cx_jobtotals_t t;
    uint8_t *out = NULL;

    if (st->nclasses) {
        cls = calloc(st->nclasses, sizeof *cls);
        ptrs = calloc(st->nclasses, sizeof *ptrs);
        if (!cls || !ptrs) {
            cx_err_set(err, CX_ENOMEM, 0, "out of memory");
            goto done;
        }
    }
    for (size_t i = 0; i < st->nclasses; i++) {
        const cx_classstate_t *c = &st->classes[i];
        cascade__v1__class_progress__init(&cls[i]);
        cls[i].name = (char *)c->name;
        cls[i].quota = c->quota;
        cls[i].committed = c->committed;
        cls[i].units_committed = c->units;
        cls[i].generated = c->generated;
        cls[i].passed = c->passed;
        ptrs[i] = &cls[i];
    }
    cx_jobstate_totals(st, &t);
    p.job_id = (char *)st->job_id;
    p.n_classes = st->nclasses;
    p.classes = ptrs;
    p.total_quota = t.quota;
    p.total_committed = t.committed;
    p.complete = cx_jobstate_complete(st);
    p.updated_unix_ms = now_ms;
    p.generated = t.generated;
    p.passed = t.passed;
    out = cx_pack(&p.base, len, err);
done:
    free(cls);
    free(ptrs);
    return out;
}
