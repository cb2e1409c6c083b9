/* The runtime shared by every service: logging, signals, HTTP endpoint and
 * metrics, and the Kafka/Redis/store connections a service asks for. */
#include "cascade/service.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cascade/log.h"
#include "cascade/util.h"

#define CX__REDIS_RETRY_MS 10000
#define CX__STORE_CACHE_MAX 64

/* glibc's sig_atomic_t is int, so the flag's address is a volatile int *
 * usable by cx_backoff_sleep. */
static volatile sig_atomic_t stop_flag;

typedef struct cached_store {
    char *uri;
    cx_store_t *store;
} cached_store_t;

/* One service per process: the cache of stores opened for output URIs
 * other than the service's own. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cached_store_t cache[CX__STORE_CACHE_MAX];
static size_t ncache;

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

int cx_service_stopping(void) { return stop_flag != 0; }
void cx_service_request_stop(void) { stop_flag = 1; }
volatile int *cx_service_stop_flag(void) { return &stop_flag; }

static int install_signals(cx_err_t *err) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
        return cx_err_set(err, CX_EIO, 0, "cannot install signal handlers");
    /* A client closing its socket early must not kill the service. */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int cx_service_init(cx_service_t *svc, const char *name,
                    const cx_common_conf_t *conf, int parts, cx_err_t *err) {
    cx_log_level_t level = CX_LOG_INFO;
    char host[64];

    memset(svc, 0, sizeof *svc);
    svc->name = name;
    svc->conf = conf;
    if (conf->log_level && cx_log_level_parse(conf->log_level, &level) < 0)
        return cx_err_set(err, CX_EINVAL, 0,
                          "log.level \"%s\": expected error, warn, info or "
                          "debug",
                          conf->log_level);
    cx_log_init(name, level);
    if (install_signals(err) < 0) return -1;

    if (conf->instance && *conf->instance) {
        snprintf(svc->instance, sizeof svc->instance, "%s", conf->instance);
    } else {
        if (gethostname(host, sizeof host) < 0) strcpy(host, "localhost");
        host[sizeof host - 1] = '\0';
        snprintf(svc->instance, sizeof svc->instance, "%s-%ld", host,
                 (long)getpid());
    }

    svc->metrics = cx_metrics_new();
    if (!svc->metrics) {
        cx_err_set(err, CX_ENOMEM, 0, "metrics: out of memory");
        goto fail;
    }
    char mname[128];
    snprintf(mname, sizeof mname, "cascade_%s_start_time_seconds", name);
    for (char *p = mname; *p; p++)
        if (*p == '-') *p = '_';
    cx_metric_set(cx_metrics_gauge(svc->metrics, mname,
                                   "Unix time the process started", NULL,
                                   NULL),
                  (double)cx_now_ms() / 1000.0);

    svc->http = cx_http_start(conf->http_bind, (int)conf->http_port,
                              svc->metrics, err);
    if (!svc->http) goto fail;
    CX_INFO("msg=\"http endpoint\" port=%d bind=%s instance=%s",
            cx_http_port(svc->http), conf->http_bind, svc->instance);

    if ((parts & CX_SVC_PRODUCER) &&
        !(svc->producer =
              cx_producer_new(conf->kafka_brokers, svc->instance, err)))
        goto fail;
    if ((parts & CX_SVC_REDIS) &&
        !(svc->redis = cx_redis_new(conf->redis_url, CX__REDIS_RETRY_MS, err)))
        goto fail;
    if ((parts & CX_SVC_STORE) &&
        !(svc->store = cx_store_open(conf->store_uri, err)))
        goto fail;
    return 0;

fail:
    cx_service_shutdown(svc);
    return -1;
}

void cx_service_shutdown(cx_service_t *svc) {
    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; i < ncache; i++) {
        cx_store_destroy(cache[i].store);
        free(cache[i].uri);
    }
    ncache = 0;
    pthread_mutex_unlock(&cache_lock);

    cx_http_stop(svc->http);
    cx_producer_destroy(svc->producer);
    cx_redis_destroy(svc->redis);
    cx_store_destroy(svc->store);
    cx_metrics_destroy(svc->metrics);
    svc->http = NULL;
    svc->producer = NULL;
    svc->redis = NULL;
    svc->store = NULL;
    svc->metrics = NULL;
}

cx_store_t *cx_service_store(cx_service_t *svc, const char *uri,
                             cx_err_t *err) {
    cx_store_t *s = NULL;

    if (!uri || !*uri ||
        (svc->conf->store_uri && strcmp(uri, svc->conf->store_uri) == 0)) {
        if (!svc->store)
            cx_err_set(err, CX_EINVAL, 0, "service has no store open");
        return svc->store;
    }
    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; i < ncache; i++)
        if (strcmp(cache[i].uri, uri) == 0) {
            s = cache[i].store;
            goto out;
        }
    /* Handed-out stores stay valid until shutdown, so none is evicted. */
    if (ncache == CX__STORE_CACHE_MAX) {
        cx_err_set(err, CX_EINVAL, 0,
                   "more than %d distinct output stores in use",
                   CX__STORE_CACHE_MAX);
        goto out;
    }
    char *copy = strdup(uri);
    if (!copy) {
        cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        goto out;
    }
    s = cx_store_open(uri, err);
    if (!s) {
        free(copy);
        goto out;
    }
    cache[ncache].uri = copy;
    cache[ncache].store = s;
    ncache++;
out:
    pthread_mutex_unlock(&cache_lock);
    return s;
}

int cx_service_configure(const cx_conf_entry_t *table, void *cfg,
                         const char *name, int argc, char **argv) {
    cx_err_t err = {0};
    int rc = cx_conf_load(table, cfg, name, argc, argv, &err);
    if (rc == 0) return 0;
    cx_conf_free(table, cfg);
    if (rc == 1) return 1;
    cx_log_init(name, CX_LOG_INFO);
    CX_ERROR("msg=\"bad configuration\" error=\"%s\"", err.msg);
    return 2;
}

/* Retries one message until it succeeds, is dead-lettered or we stop.
 * Returns 1 when the offset may be stored, 0 when stopping left it. */
static int cx__handle_until_done(cx_service_t *svc, cx_service_handler_fn fn,
                                 void *ctx, const cx_msg_t *m) {
    for (unsigned attempt = 0;; attempt++) {
        cx_err_t e;
        if (fn(svc, ctx, m, &e) == 0) return 1;
        if (!e.retriable) {
            /* Retrying cannot help: record why and move on. */
            CX_ERROR("message dead-lettered partition=%d offset=%lld "
                     "reason=\"%s\"",
                     (int)m->partition, (long long)m->offset, e.msg);
            cx_err_t de;
            if (cx_deadletter(svc->producer, svc->name, m, e.msg, NULL, NULL,
                              &de) == 0)
                return 1;
            e = de;
        }
        CX_WARN("message retry partition=%d offset=%lld attempt=%u "
                "reason=\"%s\"",
                (int)m->partition, (long long)m->offset, attempt, e.msg);
        if (cx_backoff_sleep(attempt, 100, 10000, cx_service_stop_flag()))
            return 0;
    }
}

void cx_service_ready_when_assigned(cx_service_t *svc, cx_consumer_t *c) {
    if (svc->ready || !cx_consumer_assigned(c)) return;
    svc->ready = 1;
    cx_http_set_ready(svc->http, 1);
    CX_INFO("ready: consuming");
}

int cx_service_consume(cx_service_t *svc, cx_consumer_t *c,
                       cx_service_handler_fn fn, void *ctx) {
    unsigned poll_fail = 0;
    while (!cx_service_stopping()) {
        cx_service_ready_when_assigned(svc, c);
        cx_msg_t *m = NULL;
        cx_err_t e;
        int rc = cx_consumer_poll(c, 500, &m, &e);
        if (rc == 0) continue;
        if (rc < 0) {
            CX_WARN("consume failed reason=\"%s\"", e.msg);
            cx_backoff_sleep(poll_fail++, 100, 5000, cx_service_stop_flag());
            continue;
        }
        poll_fail = 0;
        if (cx__handle_until_done(svc, fn, ctx, m))
            cx_consumer_done(c, m);
        else
            cx_msg_free(m);
    }
    return 0;
}
