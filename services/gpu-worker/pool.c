/* The warm pool: LRU within a memory budget, measured cold loads, and
 * what is loaded published to Redis. */
#include "pool.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/names.h"
#include "cascade/util.h"

#define CX_WARM_PENDING 32     /* loads not yet published */
#define CX_WARM_EWMA_ALPHA "0.3"
#define CX_WARM_MIB (1024.0 * 1024.0)

struct cx_warm_model {
    char *name;
    uint32_t width, height;
    cx_plugin_gen_t *gen;
    uint64_t bytes;
    uint64_t used; /* LRU tick */
    int refs;
    cx_warm_model_t *next;
};

typedef struct load_rec {
    char name[CX_NAME_MAX + 1];
    uint64_t bytes;
    double load_ms;
} load_rec_t;

struct cx_warm {
    cx_warm_conf_t conf;
    const cx_plugins_t *ps;
    cx_warm_model_t *head;
    size_t n;
    uint64_t budget, used, tick, hits, misses;
    int dirty;
    load_rec_t pending[CX_WARM_PENDING];
    size_t npending;
    cx_metric_t *m_hits, *m_misses, *m_evict, *m_refused, *m_failed;
    cx_metric_t *g_used, *g_budget, *g_models, *g_load_ms;
};

static void gauges(cx_warm_t *w) {
    cx_metric_set(w->g_used, (double)w->used);
    cx_metric_set(w->g_budget, (double)w->budget);
    cx_metric_set(w->g_models, (double)w->n);
}

static void make_metrics(cx_warm_t *w, cx_metrics_t *m) {
    if (!m) return;
    w->m_hits = cx_metrics_counter(m, "cascade_pool_hits_total",
                                   "Units whose checkpoint was warm", NULL,
                                   NULL);
    w->m_misses = cx_metrics_counter(m, "cascade_pool_misses_total",
                                     "Units that needed a cold load", NULL,
                                     NULL);
    w->m_evict = cx_metrics_counter(m, "cascade_pool_evictions_total",
                                    "Models evicted to make room", NULL, NULL);
    w->m_refused = cx_metrics_counter(
        m, "cascade_pool_refused_total",
        "Loads refused because the model cannot fit the memory budget", NULL,
        NULL);
    w->m_failed = cx_metrics_counter(
        m, "cascade_pool_load_failures_total",
        "Loads that failed (unknown or corrupt checkpoint, bad size)", NULL,
        NULL);
    w->g_used = cx_metrics_gauge(m, "cascade_pool_mem_used_bytes",
                                 "Memory held by warm models", NULL, NULL);
    w->g_budget = cx_metrics_gauge(m, "cascade_pool_mem_budget_bytes",
                                   "Memory budget of the warm pool", NULL,
                                   NULL);
    w->g_models = cx_metrics_gauge(m, "cascade_pool_models",
                                   "Models loaded", NULL, NULL);
    w->g_load_ms = cx_metrics_gauge(m, "cascade_pool_load_ms",
                                    "Time of the last cold load", NULL, NULL);
}

static int default_budget(cx_warm_t *w, cx_err_t *err) {
    if (strcmp(w->conf.device, "cpu") == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        if (pages <= 0 || psz <= 0)
            return cx_err_set(err, CX_EINVAL, 0,
                              "warm pool: cannot read the RAM size; set "
                              "mem_budget_bytes");
        w->budget = (uint64_t)pages * (uint64_t)psz / 2;
        return 0;
    }
    uint64_t total = 0, free_bytes = 0;
    if (cx_plugins_device_memory(w->ps, w->conf.device, &total, &free_bytes,
                                 err) < 0)
        return cx_err_wrap(err, "warm pool budget");
    w->budget = total / 10 * 9;
    return 0;
}

cx_warm_t *cx_warm_new(const cx_warm_conf_t *conf,
                       const cx_plugins_t *plugins, cx_metrics_t *metrics,
                       cx_err_t *err) {
    cx_warm_t *w = calloc(1, sizeof *w);
    if (!w) {
        cx_err_set(err, CX_ENOMEM, 0, "warm pool: out of memory");
        return NULL;
    }
    w->conf = *conf;
    if (!w->conf.device || !*w->conf.device) w->conf.device = "cpu";
    if (!w->conf.checkpoint_dir) w->conf.checkpoint_dir = "";
    if (w->conf.max_batch == 0) w->conf.max_batch = 1;
    w->ps = plugins;
    w->budget = conf->budget_bytes;
    if (w->budget == 0 && default_budget(w, err) < 0) {
        free(w);
        return NULL;
    }
    make_metrics(w, metrics);
    gauges(w);
    w->dirty = 1;
    return w;
}

static void model_free(cx_warm_model_t *m) {
    cx_plugin_gen_destroy(m->gen);
    free(m->name);
    free(m);
}

void cx_warm_destroy(cx_warm_t *w) {
    if (!w) return;
    while (w->head) {
        cx_warm_model_t *m = w->head;
        w->head = m->next;
        model_free(m);
    }
    free(w);
}

static cx_warm_model_t *find(const cx_warm_t *w, const char *name,
                             uint32_t width, uint32_t height) {
    for (cx_warm_model_t *m = w->head; m; m = m->next)
        if (m->width == width && m->height == height &&
            strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

/* Evicts the least recently used idle model; 0 when there is none. */
static int evict_one(cx_warm_t *w) {
    cx_warm_model_t **victim = NULL;
    for (cx_warm_model_t **pm = &w->head; *pm; pm = &(*pm)->next)
        if ((*pm)->refs == 0 && (!victim || (*pm)->used < (*victim)->used))
            victim = pm;
    if (!victim) return 0;
    cx_warm_model_t *m = *victim;
    *victim = m->next;
    w->used -= m->bytes;
    w->n--;
    w->dirty = 1;
    cx_metric_add(w->m_evict, 1);
    model_free(m);
    return 1;
}

/* Evicts until `need` more bytes (and one more model) fit. */
static int make_room(cx_warm_t *w, uint64_t need, size_t *evicted) {
    for (;;) {
        int fits = w->used + need <= w->budget &&
                   (w->conf.max_models == 0 || w->n < w->conf.max_models);
        if (fits) return 1;
        if (!evict_one(w)) return 0;
        (*evicted)++;
    }
}

static int refuse(cx_warm_t *w, const char *name, uint32_t width,
                  uint32_t height, uint64_t need, cx_err_t *err) {
    cx_metric_add(w->m_refused, 1);
    if (need > w->budget)
        return cx_err_set(err, CX_ENOMEM, 0,
                          "checkpoint %s at %" PRIu32 "x%" PRIu32
                          " needs %.1f MiB on %s, over the warm pool's "
                          "budget of %.1f MiB (mem_budget_bytes)",
                          name, width, height, need / CX_WARM_MIB,
                          w->conf.device, w->budget / CX_WARM_MIB);
    return cx_err_set(err, CX_ENOMEM, 0,
                      "checkpoint %s at %" PRIu32 "x%" PRIu32
                      " needs %.1f MiB on %s; %.1f MiB of the %.1f MiB "
                      "budget are held by %zu model(s) in use",
                      name, width, height, need / CX_WARM_MIB, w->conf.device,
                      w->used / CX_WARM_MIB, w->budget / CX_WARM_MIB, w->n);
}

static void note_load(cx_warm_t *w, const char *name, uint64_t bytes,
                      double ms) {
    if (w->npending == CX_WARM_PENDING) { /* keep the newest */
        memmove(w->pending, w->pending + 1,
                (CX_WARM_PENDING - 1) * sizeof *w->pending);
        w->npending--;
    }
    load_rec_t *r = &w->pending[w->npending++];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->bytes = bytes;
    r->load_ms = ms;
}

/* A miss: estimate, make room, load, account. */
static cx_warm_model_t *load(cx_warm_t *w, const char *name, uint32_t width,
                             uint32_t height, cx_warm_info_t *info,
                             cx_err_t *err) {
    cx_plugin_t *p;
    char path[4096];
    if (cx_plugins_resolve(w->ps, w->conf.checkpoint_dir, name,
                           w->conf.device, &p, path, sizeof path, err) < 0)
        goto fail;
    /* A concurrent plug-in without batching gets one sample per pool
     * thread (worker.c run_samples), so each of its calls is one thread;
     * every other plug-in gets whole batches and all the threads. */
    int per_sample = (cx_plugin_table(p)->flags & CX_GENPLUG_F_CONCURRENT) &&
                     w->conf.max_batch <= 1;
    cx_genplug_args_t a = {.struct_size = sizeof a,
                           .checkpoint = path,
                           .name = name,
                           .device = w->conf.device,
                           .width = width,
                           .height = height,
                           .threads = per_sample ? 1 : w->conf.threads,
                           .max_batch = w->conf.max_batch};
    uint64_t need = 0;
    if (cx_plugin_estimate(p, &a, &need, err) < 0) goto fail;
    if (need > w->budget || !make_room(w, need, &info->evicted)) {
        refuse(w, name, width, height, need, err);
        return NULL;
    }
    cx_warm_model_t *m = calloc(1, sizeof *m);
    if (!m || !(m->name = strdup(name))) {
        free(m);
        cx_err_set(err, CX_ENOMEM, 0, "warm pool: out of memory");
        return NULL;
    }
    double t0 = cx_mono_ms();
    m->gen = cx_plugin_create(p, &a, err);
    if (!m->gen) {
        model_free(m);
        goto fail;
    }
    info->load_ms = cx_mono_ms() - t0;
    m->bytes = cx_plugin_gen_memory(m->gen);
    if (m->bytes == 0) m->bytes = need;
    /* The plug-in's estimate was low: the real size decides. */
    if (m->bytes > w->budget || !make_room(w, m->bytes, &info->evicted)) {
        uint64_t b = m->bytes;
        model_free(m);
        refuse(w, name, width, height, b, err);
        return NULL;
    }
    m->width = width;
    m->height = height;
    m->next = w->head;
    w->head = m;
    w->n++;
    w->used += m->bytes;
    w->dirty = 1;
    note_load(w, name, m->bytes, info->load_ms);
    cx_metric_set(w->g_load_ms, info->load_ms);
    return m;

fail:
    cx_metric_add(w->m_failed, 1);
    return NULL;
}

cx_warm_model_t *cx_warm_acquire(cx_warm_t *w, const char *checkpoint,
                                 uint32_t width, uint32_t height,
                                 cx_warm_info_t *info, cx_err_t *err) {
    cx_warm_info_t scratch;
    if (!info) info = &scratch;
    memset(info, 0, sizeof *info);
    cx_warm_model_t *m = find(w, checkpoint, width, height);
    if (m) {
        w->hits++;
        cx_metric_add(w->m_hits, 1);
        info->hit = 1;
    } else {
        w->misses++;
        cx_metric_add(w->m_misses, 1);
        m = load(w, checkpoint, width, height, info, err);
        gauges(w);
        if (!m) return NULL;
    }
    m->used = ++w->tick;
    m->refs++;
    info->mem_bytes = m->bytes;
    return m;
}

void cx_warm_release(cx_warm_t *w, cx_warm_model_t *m) {
    (void)w;
    if (m && m->refs > 0) m->refs--;
}

cx_plugin_gen_t *cx_warm_gen(const cx_warm_model_t *m) { return m->gen; }
uint64_t cx_warm_budget(const cx_warm_t *w) { return w->budget; }
uint64_t cx_warm_used(const cx_warm_t *w) { return w->used; }
size_t cx_warm_count(const cx_warm_t *w) { return w->n; }
uint64_t cx_warm_hits(const cx_warm_t *w) { return w->hits; }
uint64_t cx_warm_misses(const cx_warm_t *w) { return w->misses; }

int cx_warm_has(const cx_warm_t *w, const char *checkpoint, uint32_t width,
                uint32_t height) {
    return find(w, checkpoint, width, height) != NULL;
}

/* ---- publishing -------------------------------------------------------- */

/* KEYS: warm hash, worker hash. ARGV: budget used device name bytes ...
 * Written only while the worker is registered (its hash exists), so a
 * late publish cannot resurrect a deregistered worker. */
static cx_redis_script_t lua_warm = {.lua =
    "if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "for i = 4, #ARGV, 2 do\n"
    "  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])\n"
    "end\n"
    "redis.call('HSET', KEYS[2], 'mem_budget_bytes', ARGV[1],\n"
    "           'mem_used_bytes', ARGV[2], 'device', ARGV[3])\n"
    "return 1\n"};

/* KEYS: cx:ckpt:<name>. ARGV: mem_bytes load_ms alpha. */
static cx_redis_script_t lua_ckpt = {.lua =
    "local ms = tonumber(ARGV[2])\n"
    "local old = tonumber(redis.call('HGET', KEYS[1], 'load_ms_ewma'))\n"
    "local e = ms\n"
    "if old then e = old + tonumber(ARGV[3]) * (ms - old) end\n"
    "redis.call('HSET', KEYS[1], 'mem_bytes', ARGV[1], 'load_ms', ARGV[2],\n"
    "           'load_ms_ewma', string.format('%.3f', e))\n"
    "return 1\n"};

static char *dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    char *s = n >= 0 && (size_t)n < sizeof tmp ? strdup(tmp) : NULL;
    return s;
}

/* The warm hash's fields: bytes summed per checkpoint name. */
static int warm_args(const cx_warm_t *w, char ***out, size_t *n) {
    size_t cap = 3 + 2 * w->n;
    char **a = calloc(cap, sizeof *a);
    if (!a) return -1;
    size_t k = 0;
    a[k++] = dupf("%" PRIu64, w->budget);
    a[k++] = dupf("%" PRIu64, w->used);
    a[k++] = dupf("%s", w->conf.device);
    for (const cx_warm_model_t *m = w->head; m; m = m->next) {
        int seen = 0;
        for (const cx_warm_model_t *e = w->head; e != m && !seen; e = e->next)
            seen = strcmp(e->name, m->name) == 0;
        if (seen) continue;
        uint64_t sum = 0;
        for (const cx_warm_model_t *e = m; e; e = e->next)
            if (strcmp(e->name, m->name) == 0) sum += e->bytes;
        a[k++] = dupf("%s", m->name);
        a[k++] = dupf("%" PRIu64, sum);
    }
    *out = a;
    *n = k;
    for (size_t i = 0; i < k; i++)
        if (!a[i]) return -1;
    return 0;
}

static void free_args(char **a, size_t n) {
    for (size_t i = 0; a && i < n; i++) free(a[i]);
    free(a);
}

static int publish_loads(cx_warm_t *w, cx_redis_t *r, cx_err_t *err) {
    while (w->npending > 0) {
        const load_rec_t *l = &w->pending[0];
        char key[CX_NAME_MAX + 16], bytes[24], ms[32];
        snprintf(key, sizeof key, "cx:ckpt:%s", l->name);
        snprintf(bytes, sizeof bytes, "%" PRIu64, l->bytes);
        snprintf(ms, sizeof ms, "%.3f", l->load_ms);
        const char *args[] = {key, bytes, ms, CX_WARM_EWMA_ALPHA};
        redisReply *rep = cx_redis_eval(r, &lua_ckpt, 1, 3, args, err);
        if (!rep) return cx_err_wrap(err, "publish %s", key);
        freeReplyObject(rep);
        memmove(w->pending, w->pending + 1,
                (w->npending - 1) * sizeof *w->pending);
        w->npending--;
    }
    return 0;
}

int cx_warm_publish(cx_warm_t *w, cx_redis_t *r, const char *worker,
                    int force, cx_err_t *err) {
    if (publish_loads(w, r, err) < 0) return -1;
    if (!w->dirty && !force) return 0;
    char **a = NULL;
    size_t n = 0;
    if (warm_args(w, &a, &n) < 0) {
        free_args(a, n);
        return cx_err_set(err, CX_ENOMEM, 0, "publish: out of memory");
    }
    char *k1 = dupf("cx:worker:%s:warm", worker);
    char *k2 = dupf("cx:worker:%s", worker);
    const char **args = calloc(n + 2, sizeof *args);
    int rc = -1;
    if (!k1 || !k2 || !args) {
        cx_err_set(err, CX_ENOMEM, 0, "publish: out of memory");
        goto done;
    }
    args[0] = k1;
    args[1] = k2;
    for (size_t i = 0; i < n; i++) args[2 + i] = a[i];
    redisReply *rep = cx_redis_eval(r, &lua_warm, 2, (int)n, args, err);
    if (!rep) {
        cx_err_wrap(err, "publish %s", k1);
        goto done;
    }
    /* 0: not registered (yet): try again on the next publish */
    w->dirty = !(rep->type == REDIS_REPLY_INTEGER && rep->integer == 1);
    freeReplyObject(rep);
    rc = 0;
done:
    free(args);
    free(k1);
    free(k2);
    free_args(a, n);
    return rc;
}
