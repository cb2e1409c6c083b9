/* Configuration: one declarative table per service drives parsing of the
 * config file, environment, command-line flags, --help and the generated
 * docs/CONFIGURATION.md.
 *
 * Precedence (later wins): table default < config file < CASCADE_* environment
 * < --flags. Entry "kafka.brokers" is read from the file as
 * `kafka.brokers = host:port`, from CASCADE_KAFKA_BROKERS, and from
 * --kafka.brokers=VALUE or --kafka.brokers VALUE. The file is named by
 * --config FILE or CASCADE_CONFIG. Unknown keys and flags are errors. */
#ifndef CASCADE_CONFIG_H
#define CASCADE_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "cascade/err.h"

typedef enum {
    CX_CONF_STR,    /* char *, malloc'd, freed by cx_conf_free */
    CX_CONF_INT,    /* long long, within [min, max] */
    CX_CONF_DOUBLE, /* double, within [min, max] */
    CX_CONF_BOOL    /* int 0/1; true/false/yes/no/1/0/on/off */
} cx_conf_type_t;

typedef struct cx_conf_entry {
    const char *name;
    cx_conf_type_t type;
    const char *def; /* default as text; NULL for "" */
    double min, max; /* for INT/DOUBLE */
    const char *help;
    size_t offset;   /* offsetof(the service's config struct, field) */
} cx_conf_entry_t;

#define CX_CONF_END {NULL, CX_CONF_STR, NULL, 0, 0, NULL, 0}

/* Settings every service has; embed as `cx_common_conf_t common;` in the
 * service's config struct and put CX_CONF_COMMON(type) in its table. */
typedef struct cx_common_conf {
    char *kafka_brokers;
    char *redis_url;
    char *store_uri;
    char *http_bind;
    long long http_port;
    char *log_level;
    char *instance; /* worker/replica name; default host-pid */
} cx_common_conf_t;

#define CX_CONF_COMMON(T)                                                   \
    {"kafka.brokers", CX_CONF_STR, "127.0.0.1:9092", 0, 0,                 \
     "Kafka bootstrap servers (host:port,...)",                            \
     offsetof(T, common.kafka_brokers)},                                   \
    {"redis.url", CX_CONF_STR, "redis://127.0.0.1:6379/0", 0, 0,           \
     "Redis server (redis://[:password@]host:port[/db])",                  \
     offsetof(T, common.redis_url)},                                       \
    {"store.uri", CX_CONF_STR, "file:///var/lib/cascade", 0, 0,            \
     "Object store root (file:///path or s3://bucket/prefix)",             \
     offsetof(T, common.store_uri)},                                       \
    {"http.bind", CX_CONF_STR, "127.0.0.1", 0, 0,                          \
     "Address for /healthz, /readyz and /metrics",                         \
     offsetof(T, common.http_bind)},                                       \
    {"http.port", CX_CONF_INT, "0", 0, 65535,                              \
     "Port for /healthz, /readyz, /metrics (0: any free port, logged)",    \
     offsetof(T, common.http_port)},                                       \
    {"log.level", CX_CONF_STR, "info", 0, 0,                               \
     "error, warn, info or debug", offsetof(T, common.log_level)},         \
    {"instance", CX_CONF_STR, NULL, 0, 0,                                  \
     "Instance name (default: <hostname>-<pid>)",                          \
     offsetof(T, common.instance)}

/* Fills cfg from the sources above. Returns 0 when the service should run,
 * 1 when --help (or --help-markdown) was printed to stdout and the caller
 * should exit 0, -1 with err on a bad value, key or flag (the message names
 * it and its source). On -1, cx_conf_free must still be called. */
int cx_conf_load(const cx_conf_entry_t *table, void *cfg, const char *service,
                 int argc, char **argv, cx_err_t *err);
void cx_conf_free(const cx_conf_entry_t *table, void *cfg);
void cx_conf_print_help(FILE *out, const char *service,
                        const cx_conf_entry_t *table);
/* The service's section of docs/CONFIGURATION.md. */
void cx_conf_print_markdown(FILE *out, const char *service,
                            const cx_conf_entry_t *table);

#endif
