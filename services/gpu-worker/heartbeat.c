/* Partition claim, registration and the heartbeat thread. */
#include "heartbeat.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cascade/log.h"
#include "cascade/util.h"

int cx_hb_claim_pick(const char *const *owners, int n, const char *me) {
    int first_free = -1;
    for (int p = 0; p < n; p++) {
        const char *o = owners[p];
        if (o && *o && strcmp(o, me) == 0) return p;
        if ((!o || !*o) && first_free < 0) first_free = p;
    }
    return first_free;
}

/* KEYS[1] the claim key. ARGV: worker ttl_ms. 1 held, 0 someone else's. */
static cx_redis_script_t lua_claim = {.lua =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur == ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "if not cur then\n"
    "  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "return 0\n"};

static cx_redis_script_t lua_release = {.lua =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 1\n"};

int cx_hb_claim_refresh(cx_redis_t *r, const cx_hb_conf_t *c, int partition,
                        cx_err_t *err) {
    char key[64], ttl[24];
    snprintf(key, sizeof key, "cx:dispatch:partition:%d", partition);
    snprintf(ttl, sizeof ttl, "%d", c->alive_ttl_ms);
    const char *args[] = {key, c->worker, ttl};
    redisReply *rep = cx_redis_eval(r, &lua_claim, 1, 2, args, err);
    if (!rep) return cx_err_wrap(err, "claim partition %d", partition);
    int held = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return held;
}

int cx_hb_claim(cx_redis_t *r, const cx_hb_conf_t *c, int want, int nparts,
                cx_err_t *err) {
    if (nparts <= 0 || want >= nparts)
        return cx_err_set(err, CX_EINVAL, 0,
                          "partition %d out of range (topic has %d)", want,
                          nparts);
    if (want >= 0) {
        int held = cx_hb_claim_refresh(r, c, want, err);
        if (held < 0) return -1;
        if (!held)
            return cx_err_set(err, CX_EEXIST, 1,
                              "partition %d is claimed by another worker",
                              want);
        return want;
    }
    char **owners = calloc((size_t)nparts, sizeof *owners);
    if (!owners) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    int rc = -1;
    for (int p = 0; p < nparts; p++) {
        redisReply *rep = cx_redis_cmd(r, err, "GET cx:dispatch:partition:%d",
                                       p);
        if (!rep) goto done;
        if (rep->type == REDIS_REPLY_STRING) owners[p] = strdup(rep->str);
        freeReplyObject(rep);
    }
    /* Try the preferred partition, then every free one in order: another
     * worker may win the race for any of them. */
    int first = cx_hb_claim_pick((const char *const *)owners, nparts,
                                 c->worker);
    for (int i = 0; first >= 0 && i < nparts; i++) {
        int p = (first + i) % nparts;
        if (owners[p] && strcmp(owners[p], c->worker) != 0) continue;
        int held = cx_hb_claim_refresh(r, c, p, err);
        if (held < 0) goto done;
        if (held) {
            rc = p;
            goto done;
        }
    }
    cx_err_set(err, CX_EEXIST, 1,
               "all %d partitions of cascade.dispatch are claimed", nparts);
done:
    for (int p = 0; p < nparts; p++) free(owners[p]);
    free(owners);
    return rc;
}

static int ok_or_fail(redisReply *rep, cx_err_t *err, const char *what) {
    if (!rep) return cx_err_wrap(err, "%s", what);
    freeReplyObject(rep);
    return 0;
}

static int set_alive(cx_redis_t *r, const cx_hb_conf_t *c, cx_err_t *err) {
    if (ok_or_fail(cx_redis_cmd(r, err, "SET cx:worker:%s:alive 1 PX %d",
                                c->worker, c->alive_ttl_ms),
                   err, "alive") < 0)
        return -1;
    return ok_or_fail(cx_redis_cmd(r, err, "ZADD cx:workers %lld %s",
                                   (long long)cx_now_ms(), c->worker),
                      err, "cx:workers");
}

int cx_hb_register(cx_redis_t *r, const cx_hb_conf_t *c, int partition,
                   cx_err_t *err) {
    if (ok_or_fail(
            cx_redis_cmd(r, err,
                         "HSET cx:worker:%s gpu_type %s mem_bytes %llu "
                         "device %s mem_budget_bytes %llu mem_used_bytes 0 "
                         "slots %d partition %d started_ms %lld draining 0",
                         c->worker, c->gpu_type,
                         (unsigned long long)c->mem_bytes,
                         c->device ? c->device : "cpu",
                         (unsigned long long)c->mem_budget_bytes, c->slots,
                         partition, (long long)cx_now_ms()),
            err, "register") < 0)
        return -1;
    return set_alive(r, c, err);
}

int cx_hb_set_draining(cx_redis_t *r, const cx_hb_conf_t *c, cx_err_t *err) {
    return ok_or_fail(
        cx_redis_cmd(r, err, "HSET cx:worker:%s draining 1", c->worker), err,
        "draining");
}

/* KEYS[1] cx:worker:<w>:inflight. ARGV: worker. */
static cx_redis_script_t lua_release_unstarted = {.lua =
    "local n = 0\n"
    "for _, u in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local k = 'cx:unit:' .. u\n"
    "  local h = redis.call('HMGET', k, 'state', 'worker', 'epoch',\n"
    "    'started', 'seq')\n"
    "  if h[1] == 'leased' and h[2] == ARGV[1] and h[4] ~= h[3] then\n"
    "    redis.call('HINCRBY', k, 'attempt', -1)\n"
    "    redis.call('HSET', k, 'state', 'pending', 'worker', '')\n"
    "    redis.call('ZREM', 'cx:leases', u)\n"
    "    redis.call('SREM', KEYS[1], u)\n"
    "    redis.call('ZADD', 'cx:pending', h[5], u)\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n"};

int cx_hb_release_unstarted(cx_redis_t *r, const cx_hb_conf_t *c,
                            cx_err_t *err) {
    char key[256];
    snprintf(key, sizeof key, "cx:worker:%s:inflight", c->worker);
    const char *args[] = {key, c->worker};
    redisReply *rep = cx_redis_eval(r, &lua_release_unstarted, 1, 1, args, err);
    if (!rep) return cx_err_wrap(err, "release unstarted units");
    int n = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : 0;
    freeReplyObject(rep);
    if (n) CX_INFO("unstarted units released worker=%s units=%d", c->worker, n);
    return n;
}

int cx_hb_deregister(cx_redis_t *r, const cx_hb_conf_t *c, int partition,
                     cx_err_t *err) {
    if (ok_or_fail(cx_redis_cmd(r, err,
                                "DEL cx:worker:%s:alive cx:worker:%s "
                                "cx:worker:%s:warm",
                                c->worker, c->worker, c->worker),
                   err, "deregister") < 0)
        return -1;
    if (partition >= 0) {
        char key[64];
        snprintf(key, sizeof key, "cx:dispatch:partition:%d", partition);
        const char *args[] = {key, c->worker};
        if (ok_or_fail(cx_redis_eval(r, &lua_release, 1, 1, args, err), err,
                       "release partition") < 0)
            return -1;
    }
    return ok_or_fail(cx_redis_cmd(r, err, "ZREM cx:workers %s", c->worker),
                      err, "cx:workers");
}

struct cx_hb {
    cx_hb_conf_t conf;
    int partition;
    cx_redis_t *r;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    atomic_int lost;
};

/* Wakes every CX_HB_TICK_MS to notice a drain quickly; beats every
 * heartbeat_ms. */
#define CX_HB_TICK_MS 100

static void hb_beat(cx_hb_t *h) {
    cx_err_t err = {0};
    int held = set_alive(h->r, &h->conf, &err) < 0
                   ? -1
                   : cx_hb_claim_refresh(h->r, &h->conf, h->partition, &err);
    if (held < 0)
        CX_WARN("heartbeat failed worker=%s err=\"%s\"", h->conf.worker,
                err.msg);
    else if (held == 0 && !h->lost) {
        CX_ERROR("partition claim lost worker=%s partition=%d",
                 h->conf.worker, h->partition);
        h->lost = 1;
    }
}

static void *hb_main(void *arg) {
    cx_hb_t *h = arg;
    int draining = 0;
    double next = 0;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        pthread_mutex_unlock(&h->mu);
        if (!draining && h->conf.drain && *h->conf.drain) {
            cx_err_t err = {0};
            /* Draining: no new work, and what was leased but not started
             * goes back at once. */
            if (cx_hb_set_draining(h->r, &h->conf, &err) == 0 &&
                cx_hb_release_unstarted(h->r, &h->conf, &err) >= 0)
                draining = 1;
        }
        if (cx_mono_ms() >= next) {
            hb_beat(h);
            next = cx_mono_ms() + h->conf.heartbeat_ms;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long ns = ts.tv_nsec + (long long)CX_HB_TICK_MS * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_mutex_lock(&h->mu);
        while (!h->stop &&
               pthread_cond_timedwait(&h->cv, &h->mu, &ts) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

cx_hb_t *cx_hb_start(const cx_hb_conf_t *c, int partition, cx_err_t *err) {
    cx_hb_t *h = calloc(1, sizeof *h);
    if (!h) {
        cx_err_set(err, CX_ENOMEM, 0, "heartbeat: out of memory");
        return NULL;
    }
    h->conf = *c;
    h->partition = partition;
    /* Retry for less than a TTL, so a long outage shows up as lost. */
    h->r = cx_redis_new(c->redis_url, c->heartbeat_ms, err);
    if (!h->r) goto fail_redis;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (pthread_create(&h->thread, NULL, hb_main, h) != 0) {
        cx_err_set(err, CX_ENOMEM, 0, "heartbeat: cannot start thread");
        goto fail_thread;
    }
    return h;

fail_thread:
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    cx_redis_destroy(h->r);
fail_redis:
    free(h);
    return NULL;
}

int cx_hb_lost(const cx_hb_t *h) { return h && h->lost; }

void cx_hb_stop(cx_hb_t *h) {
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    cx_redis_destroy(h->r);
    free(h);
}
