/* The runtime every service shares: config, logging, signals, the HTTP
 * endpoint and metrics, and connections to Kafka, Redis and the store.
 * main() builds one, runs its loop while !cx_service_stopping(), and tears
 * it down. SIGTERM and SIGINT ask for a drain: the loop finishes the message
 * in hand, stores its offset and returns. */
#ifndef CASCADE_SERVICE_H
#define CASCADE_SERVICE_H

#include "cascade/config.h"
#include "cascade/err.h"
#include "cascade/http.h"
#include "cascade/kafka.h"
#include "cascade/metrics.h"
#include "cascade/redis.h"
#include "cascade/store.h"

typedef struct cx_service {
    const char *name;            /* "planner", ... */
    const cx_common_conf_t *conf;
    char instance[128];          /* conf->instance or <hostname>-<pid> */
    cx_metrics_t *metrics;
    cx_http_t *http;
    cx_producer_t *producer;
    cx_redis_t *redis;
    cx_store_t *store;
    int ready; /* /readyz says so (cx_service_ready_when_assigned) */
} cx_service_t;

enum {
    CX_SVC_PRODUCER = 1 << 0,
    CX_SVC_REDIS = 1 << 1,
    CX_SVC_STORE = 1 << 2
};

/* Initialises logging from conf->log_level, installs SIGTERM/SIGINT
 * handlers, starts the HTTP endpoint (logging its port) and opens what
 * `parts` asks for. On failure everything built is torn down. */
int cx_service_init(cx_service_t *svc, const char *name,
                    const cx_common_conf_t *conf, int parts, cx_err_t *err);
void cx_service_shutdown(cx_service_t *svc);
int cx_service_stopping(void);
/* The store for a unit's output_uri: the service's own when uri is empty or
 * equal to conf->store_uri, else one opened on first use and cached. */
cx_store_t *cx_service_store(cx_service_t *svc, const char *uri,
                             cx_err_t *err);
/* Requests a stop (as SIGTERM does), e.g. from a fatal error path. */
void cx_service_request_stop(void);
/* The address of the stop flag, for cx_backoff_sleep. */
volatile int *cx_service_stop_flag(void);

/* Runs `fn` on a config table: cx_conf_load + --help handling + logging a
 * fatal config error. Returns 0 to run, 1 to exit 0 (help), 2 to exit 2
 * (bad configuration, already reported on stderr). */
int cx_service_configure(const cx_conf_entry_t *table, void *cfg,
                         const char *name, int argc, char **argv);

/* Handles one consumed message. Returns 0 once its effect is durable (the
 * offset may then be stored), or -1 with err: err->retriable says whether
 * the same message is tried again (broker down, disk full) or cannot ever
 * succeed and goes to the dead-letter topic. */
typedef int (*cx_service_handler_fn)(cx_service_t *svc, void *ctx,
                                     const cx_msg_t *m, cx_err_t *err);

/* The commit-after-effect consume loop shared by the stage services: polls
 * `c`, runs `fn` on each message, retries retriable failures with backoff,
 * dead-letters the others under svc->name, and stores the offset only after
 * success or a delivered dead letter. Returns when a stop is requested; the
 * message in hand is then left unstored, so it is redelivered. */
int cx_service_consume(cx_service_t *svc, cx_consumer_t *c,
                       cx_service_handler_fn fn, void *ctx);

/* /readyz answers 200 from the first call that finds c assigned
 * partitions: the service then consumes its input. Every consume loop
 * calls it each turn; once ready it costs a load. */
void cx_service_ready_when_assigned(cx_service_t *svc, cx_consumer_t *c);

#endif
