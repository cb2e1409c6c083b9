/* cx_account_*: worker statistics, quarantine, privacy budget, alignment
 * and job halts in Redis (account.h). */
#include "account.h"

#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/names.h"

#define CX__SEEN_TTL_MS 21600000 /* 6 h: longer than any redelivery */
#define CX__NACC 153             /* cx_dist_acc_nvalues(16) */
#define CX__FD_MIN_SAMPLES 100   /* before a Frechet alert is meaningful */

/* ---- statistics -------------------------------------------------------- */

double cx_binom_upper(double n, double k, double p) {
    if (k <= 0) return 1.0;
    if (k > n) return 0.0;
    if (p <= 0) return 0.0;
    if (p >= 1) return 1.0;
    /* sum_{i >= k} C(n, i) p^i (1-p)^(n-i), terms from their logs */
    double lp = log(p), lq = log1p(-p), s = 0;
    for (double i = ceil(k); i <= n; i++) {
        double lt = lgamma(n + 1) - lgamma(i + 1) - lgamma(n - i + 1) +
                    i * lp + (n - i) * lq;
        s += exp(lt);
    }
    return s > 1 ? 1 : s;
}

int cx_quar_test(const cx_quar_conf_t *c, double n, double f, double pn,
                 double pf, double *pvalue) {
    *pvalue = 1.0;
    if (!c->enabled || n < c->min_samples || pn < c->min_pool_samples)
        return 0;
    double rate = f / n, pool = (pf + 1) / (pn + 2);
    if (rate - pf / pn < c->min_excess) return 0;
    *pvalue = cx_binom_upper(n, f, pool);
    return *pvalue < c->alpha;
}

/* ---- scripts ------------------------------------------------------------ */

/* KEYS: seen gatestats gatepool privacy quality cov released
 * ARGV: ttl worker gpu_type samples failed window now ngates
 *       [field count]*ngates  checked near  class npass in
 *       ncov [index]*ncov  nacc [value]*nacc  staged_ms
 * A batch staged before the worker's last quarantine release
 * (cascadectl writes cx:released:<w>) does not count against it: the
 * operator forgave what was already made.
 * Returns {counted, w_samples, w_failed, pool_samples, pool_failed,
 *          checked, near, n, in, covered, acc...} (counted 0: a repeat,
 *          the rest still reported). */
static cx_redis_script_t cx__account_script = {.lua =
    "local new = redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])\n"
    "local w, gpu = ARGV[2], ARGV[3]\n"
    "local samples, failed = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local ng = tonumber(ARGV[8])\n"
    "local i = 9 + 2 * ng\n"
    "local checked, near = ARGV[i], ARGV[i + 1]\n"
    "local cls, npass, inm = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]\n"
    "local ncov = tonumber(ARGV[i + 5])\n"
    "local a = i + 6 + ncov\n"
    "local nacc = tonumber(ARGV[a])\n"
    "local rel = tonumber(redis.call('GET', KEYS[7]) or '')\n"
    "local fresh = rel == nil or\n"
    "              (tonumber(ARGV[a + nacc + 1]) or 0) > rel\n"
    "if new and samples > 0 and fresh then\n"
    "  redis.call('HINCRBY', KEYS[2], 'samples', samples)\n"
    "  redis.call('HINCRBY', KEYS[2], 'failed', failed)\n"
    "  for g = 0, ng - 1 do\n"
    "    redis.call('HINCRBY', KEYS[2], ARGV[9 + 2 * g], ARGV[10 + 2 * g])\n"
    "  end\n"
    "  redis.call('HSET', KEYS[2], 'gpu_type', gpu, 'updated_ms', ARGV[7])\n"
    "  redis.call('SADD', KEYS[3], w)\n"
    "  if tonumber(redis.call('HGET', KEYS[2], 'samples')) > tonumber(ARGV[6]) then\n"
    "    local all = redis.call('HGETALL', KEYS[2])\n"
    "    for j = 1, #all, 2 do\n"
    "      local f = all[j]\n"
    "      if f == 'samples' or f == 'failed' or string.sub(f, 1, 5) == 'fail:' then\n"
    "        redis.call('HSET', KEYS[2], f, math.floor(tonumber(all[j + 1]) / 2))\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local ws = redis.call('HMGET', KEYS[2], 'samples', 'failed')\n"
    "local pn, pf = 0, 0\n"
    "for _, o in ipairs(redis.call('SMEMBERS', KEYS[3])) do\n"
    "  if o ~= w then\n"
    "    local v = redis.call('HMGET', 'cx:gatestats:' .. o, 'samples', 'failed')\n"
    "    if v[1] then\n"
    "      pn = pn + tonumber(v[1]); pf = pf + tonumber(v[2] or '0')\n"
    "    else\n"
    "      redis.call('SREM', KEYS[3], o)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if new and tonumber(checked) > 0 then\n"
    "  redis.call('HINCRBY', KEYS[4], 'checked', checked)\n"
    "  redis.call('HINCRBY', KEYS[4], 'near', near)\n"
    "end\n"
    "local pv = redis.call('HMGET', KEYS[4], 'checked', 'near')\n"
    "local out = {new and 1 or 0, ws[1] or '0', ws[2] or '0', tostring(pn),\n"
    "             tostring(pf), pv[1] or '0', pv[2] or '0'}\n"
    "if cls ~= '' then\n"
    "  if new and tonumber(npass) > 0 then\n"
    "    redis.call('HINCRBY', KEYS[5], 'n:' .. cls, npass)\n"
    "    redis.call('HINCRBY', KEYS[5], 'in:' .. cls, inm)\n"
    "    for j = 1, ncov do redis.call('SETBIT', KEYS[6], ARGV[i + 5 + j], 1) end\n"
    "    for k = 1, nacc do\n"
    "      redis.call('HINCRBYFLOAT', KEYS[5], 'a:' .. cls .. ':' .. k, ARGV[a + k])\n"
    "    end\n"
    "  end\n"
    "  local q = redis.call('HMGET', KEYS[5], 'n:' .. cls, 'in:' .. cls)\n"
    "  table.insert(out, q[1] or '0')\n"
    "  table.insert(out, q[2] or '0')\n"
    "  table.insert(out, tostring(redis.call('BITCOUNT', KEYS[6])))\n"
    "  for k = 1, 153 do\n"
    "    table.insert(out, redis.call('HGET', KEYS[5], 'a:' .. cls .. ':' .. k) or '0')\n"
    "  end\n"
    "end\n"
    "return out\n"};

/* KEYS: quarantine:<w> quarantined
 * ARGV: worker reason since rate pool samples gpu pvalue job */
static cx_redis_script_t cx__quarantine_script = {.lua =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'reason', ARGV[2], 'since_ms', ARGV[3],\n"
    "  'failure_rate', ARGV[4], 'pool_rate', ARGV[5], 'samples', ARGV[6],\n"
    "  'gpu_type', ARGV[7], 'p_value', ARGV[8], 'job_id', ARGV[9])\n"
    "redis.call('SADD', KEYS[2], ARGV[1])\n"
    "return 1\n"};

/* KEYS: halt  ARGV: reason event since source */
static cx_redis_script_t cx__halt_script = {.lua =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'reason', ARGV[1], 'event', ARGV[2],\n"
    "  'since_ms', ARGV[3], 'source', ARGV[4])\n"
    "return 1\n"};

/* ---- helpers ------------------------------------------------------------ */

static double cx__num(const redisReply *r) {
    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return (double)r->integer;
    if (r->type == REDIS_REPLY_STRING) return strtod(r->str, NULL);
    return 0;
}

/* A growable argv of owned strings. */
typedef struct cx__argv {
    char **v;
    size_t n, cap;
} cx__argv_t;

__attribute__((format(printf, 2, 3))) static int
cx__argv_add(cx__argv_t *a, const char *fmt, ...) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        char **v = realloc(a->v, cap * sizeof *v);
        if (!v) return -1;
        a->v = v;
        a->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s) return -1;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    a->v[a->n++] = s;
    return 0;
}

static void cx__argv_free(cx__argv_t *a) {
    for (size_t i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
}

static int cx__account_args(cx__argv_t *a, const cx_staged_t *b,
                            const cx_unit_tally_t *t,
                            const cx_quar_conf_t *qc) {
    const cx_unit_t *u = b->unit;
    const char *cls = t->profile ? u->class_name : "";
    /* ids reach key names: anything odd is pooled under "unknown" */
    const char *w = cx_name_check("worker", b->worker_id, NULL) == 0
                        ? b->worker_id : "unknown";
    const char *gpu = cx_name_check("gpu", b->gpu_type, NULL) == 0
                          ? b->gpu_type : "unknown";
    int rc = 0;
    rc |= cx__argv_add(a, "cx:vseen:%s:%u", u->unit_id, b->attempt);
    rc |= cx__argv_add(a, "cx:gatestats:%s", w);
    rc |= cx__argv_add(a, "cx:gatepool:%s", gpu);
    rc |= cx__argv_add(a, "cx:job:%s:privacy", u->job_id);
    rc |= cx__argv_add(a, "cx:job:%s:quality", u->job_id);
    rc |= cx__argv_add(a, "cx:job:%s:cov:%s", u->job_id, cls);
    rc |= cx__argv_add(a, "cx:released:%s", w);
    rc |= cx__argv_add(a, "%d", CX__SEEN_TTL_MS);
    rc |= cx__argv_add(a, "%s", w);
    rc |= cx__argv_add(a, "%s", gpu);
    /* an unreadable sample counts against the worker under "decode" */
    rc |= cx__argv_add(a, "%zu", t->scored + t->unreadable);
    rc |= cx__argv_add(a, "%zu", t->failed);
    rc |= cx__argv_add(a, "%.0f", qc->window > 0 ? qc->window : 1e18);
    rc |= cx__argv_add(a, "%" PRId64, cx_now_ms());
    int ng = t->unreadable ? 1 : 0;
    for (int g = 0; g < CX_GATE__COUNT; g++) ng += t->gate_fail[g] > 0;
    rc |= cx__argv_add(a, "%d", ng);
    for (int g = 0; g < CX_GATE__COUNT; g++)
        if (t->gate_fail[g]) {
            rc |= cx__argv_add(a, "fail:%s", cx_gate_name((cx_gate_id_t)g));
            rc |= cx__argv_add(a, "%u", t->gate_fail[g]);
        }
    if (t->unreadable) {
        rc |= cx__argv_add(a, "fail:decode");
        rc |= cx__argv_add(a, "%u", t->unreadable);
    }
    rc |= cx__argv_add(a, "%zu", t->checked);
    rc |= cx__argv_add(a, "%zu", t->near_copies);
    rc |= cx__argv_add(a, "%s", cls);
    rc |= cx__argv_add(a, "%zu", t->n_pass);
    rc |= cx__argv_add(a, "%zu", t->in_manifold);
    size_t ncov = 0;
    for (size_t k = 0; t->covered && k < t->nref; k++)
        ncov += (t->covered[k / 8] >> (k % 8)) & 1;
    rc |= cx__argv_add(a, "%zu", ncov);
    for (size_t k = 0; t->covered && k < t->nref; k++)
        if ((t->covered[k / 8] >> (k % 8)) & 1) rc |= cx__argv_add(a, "%zu", k);
    int nacc = t->acc && t->n_pass ? CX__NACC : 0;
    rc |= cx__argv_add(a, "%d", nacc);
    for (int k = 0; k < nacc; k++) {
        /* count, sums, then the upper triangle of products */
        double v = k == 0 ? t->acc->count
                   : k <= CX_PROFILE_FD_DIM ? t->acc->sum[k - 1]
                                            : t->acc->sxx[k - 1 - CX_PROFILE_FD_DIM];
        rc |= cx__argv_add(a, "%.17g", v);
    }
    rc |= cx__argv_add(a, "%" PRIu64, b->staged_unix_ms);
    return rc ? -1 : 0;
}

/* The class's alignment from the script's totals. */
static void cx__account_quality(const redisReply *rep,
                                const cx_unit_tally_t *t,
                                cx_account_result_t *o) {
    if (!t->profile || rep->elements < 10) return;
    o->q_n = (size_t)cx__num(rep->element[7]);
    double in = cx__num(rep->element[8]), cov = cx__num(rep->element[9]);
    o->q_precision = o->q_n ? in / (double)o->q_n : 0;
    o->q_recall = t->nref ? cov / (double)t->nref : 0;
    o->q_fd = -1;
    if (rep->elements < 10 + CX__NACC || o->q_n < 2) return;
    cx_dist_acc_t acc;
    memset(&acc, 0, sizeof acc);
    acc.count = cx__num(rep->element[10]);
    for (int k = 0; k < CX_PROFILE_FD_DIM; k++)
        acc.sum[k] = cx__num(rep->element[11 + k]);
    for (int k = 0; k < CX__NACC - 1 - CX_PROFILE_FD_DIM; k++)
        acc.sxx[k] = cx__num(rep->element[11 + CX_PROFILE_FD_DIM + k]);
    if (cx_profile_frechet(t->profile, (size_t)t->class_index, &acc, &o->q_fd,
                           NULL) < 0)
        o->q_fd = -1;
}

static int cx__account_quarantine(cx_redis_t *r, const cx_staged_t *b,
                                  cx_account_result_t *o, cx_err_t *err) {
    char k0[CX_NAME_MAX + 32], rate[32], pool[32], since[32], samples[32],
        pv[32];
    const char *w = cx_name_check("worker", b->worker_id, NULL) == 0
                        ? b->worker_id : "unknown";
    const char *gpu = cx_name_check("gpu", b->gpu_type, NULL) == 0
                          ? b->gpu_type : "unknown";
    double wr = o->w_failed / o->w_samples, pr = o->p_failed / o->p_samples;
    snprintf(o->quarantine_reason, sizeof o->quarantine_reason,
             "worker %s quarantined: gate failure rate %.3f over %.0f samples "
             "vs %.3f for the rest of pool %s (%.0f samples), one-sided "
             "binomial p = %.3g",
             w, wr, o->w_samples, pr, gpu, o->p_samples, o->p_value);
    snprintf(k0, sizeof k0, "cx:quarantine:%s", w);
    snprintf(rate, sizeof rate, "%.6g", wr);
    snprintf(pool, sizeof pool, "%.6g", pr);
    snprintf(since, sizeof since, "%" PRId64, cx_now_ms());
    snprintf(samples, sizeof samples, "%.0f", o->w_samples);
    snprintf(pv, sizeof pv, "%.6g", o->p_value);
    const char *args[] = {k0,   "cx:quarantined", w,   o->quarantine_reason,
                          since, rate,            pool, samples,
                          gpu,   pv,              b->unit->job_id};
    redisReply *rep = cx_redis_eval(r, &cx__quarantine_script, 2, 9, args, err);
    if (!rep) return -1;
    o->quarantined = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return 0;
}

int cx_account_halt(cx_redis_t *r, const char *job_id, int event,
                    const char *reason, int *newly, cx_err_t *err) {
    char k[CX_NAME_MAX + 32], ev[16], since[32];
    snprintf(k, sizeof k, "cx:job:%s:halt", job_id);
    snprintf(ev, sizeof ev, "%d", event);
    snprintf(since, sizeof since, "%" PRId64, cx_now_ms());
    const char *args[] = {k, reason, ev, since, "validator"};
    redisReply *rep = cx_redis_eval(r, &cx__halt_script, 1, 4, args, err);
    if (!rep) return -1;
    if (newly) *newly = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return 0;
}

/* The privacy budget: near-copies may not exceed budget x max(checked,
 * min_samples). */
static int cx__account_privacy(cx_redis_t *r, const cx_staged_t *b,
                               const cx_unit_tally_t *t,
                               cx_account_result_t *o, cx_err_t *err) {
    const cx_gate_limits_t *l = &t->limits;
    double denom = o->checked > l->privacy_min_samples ? o->checked
                                                        : l->privacy_min_samples;
    double allowed = floor(l->privacy_budget * denom);
    if (!t->profile || o->near <= allowed) return 0;
    char key[CX_NAME_MAX + 32];
    snprintf(key, sizeof key, "cx:job:%s:privacy", b->unit->job_id);
    redisReply *rep = cx_redis_cmd(r, err, "HSET %s budget %.6g", key,
                                   l->privacy_budget);
    if (!rep) return -1;
    freeReplyObject(rep);
    snprintf(o->privacy_reason, sizeof o->privacy_reason,
             "privacy budget exceeded: %.0f near-copies of training records "
             "in %.0f samples checked (budget %.4g: at most %.0f; "
             "min_privacy_distance %.4g)",
             o->near, o->checked, l->privacy_budget, allowed,
             l->min_privacy_distance);
    return cx_account_halt(r, b->unit->job_id,
                           CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_PRIVACY_BUDGET_EXCEEDED,
                           o->privacy_reason, &o->privacy_halted, err);
}

/* Stores the class's figures; raises the Frechet alert once. */
static int cx__account_store_quality(cx_redis_t *r, const cx_staged_t *b,
                                     const cx_unit_tally_t *t,
                                     cx_account_result_t *o, cx_err_t *err) {
    const char *cls = b->unit->class_name;
    char key[CX_NAME_MAX + 32];
    if (!t->profile) return 0;
    snprintf(key, sizeof key, "cx:job:%s:quality", b->unit->job_id);
    redisReply *rep = cx_redis_cmd(
        r, err, "HSET %s fd:%s %.6g precision:%s %.6g recall:%s %.6g", key,
        cls, o->q_fd, cls, o->q_precision, cls, o->q_recall);
    if (!rep) return -1;
    freeReplyObject(rep);
    double bound = t->limits.max_frechet;
    if (bound <= 0 || o->q_n < CX__FD_MIN_SAMPLES || !(o->q_fd > bound))
        return 0;
    snprintf(o->frechet_reason, sizeof o->frechet_reason,
             "class %s: Frechet distance %.4g over %zu samples exceeds "
             "max_frechet_distance %.4g",
             cls, o->q_fd, o->q_n, bound);
    rep = cx_redis_cmd(r, err, "HSETNX %s alert:%s %s", key, cls,
                       o->frechet_reason);
    if (!rep) return -1;
    o->frechet_alert = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return 0;
}

int cx_account_unit(cx_redis_t *r, const cx_staged_t *b,
                    const cx_unit_tally_t *t, const cx_quar_conf_t *qc,
                    cx_account_result_t *out, cx_err_t *err) {
    cx__argv_t a = {0};
    int rc = -1;
    memset(out, 0, sizeof *out);
    out->q_fd = -1;
    if (cx__account_args(&a, b, t, qc) < 0) {
        cx_err_set(err, CX_ENOMEM, 1, "account arguments");
        goto done;
    }
    redisReply *rep = cx_redis_eval(r, &cx__account_script, 7, (int)a.n - 7,
                                    (const char **)a.v, err);
    if (!rep) goto done;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 7) {
        freeReplyObject(rep);
        cx_err_set(err, CX_EREDIS, 0, "account script: unexpected reply");
        goto done;
    }
    out->counted = (int)cx__num(rep->element[0]);
    out->w_samples = cx__num(rep->element[1]);
    out->w_failed = cx__num(rep->element[2]);
    out->p_samples = cx__num(rep->element[3]);
    out->p_failed = cx__num(rep->element[4]);
    out->checked = cx__num(rep->element[5]);
    out->near = cx__num(rep->element[6]);
    cx__account_quality(rep, t, out);
    freeReplyObject(rep);
    if (cx_quar_test(qc, out->w_samples, out->w_failed, out->p_samples,
                     out->p_failed, &out->p_value) &&
        cx__account_quarantine(r, b, out, err) < 0)
        goto done;
    if (cx__account_privacy(r, b, t, out, err) < 0 ||
        cx__account_store_quality(r, b, t, out, err) < 0)
        goto done;
    rc = 0;
done:
    cx__argv_free(&a);
    return rc;
}

int cx_account_batch_quality(cx_redis_t *r, const cx_vquality_t *q,
                             cx_err_t *err) {
    char key[CX_NAME_MAX + 32];
    snprintf(key, sizeof key, "cx:job:%s:quality", q->job_id);
    redisReply *rep = cx_redis_cmd(
        r, err,
        "HSET %s batch_fd %.6g batch_precision %.6g batch_recall %.6g "
        "batch_n %llu batch_class %s",
        key, q->frechet, q->precision, q->recall, (unsigned long long)q->n,
        q->class_name);
    if (!rep) return -1;
    freeReplyObject(rep);
    return 0;
}
