/* Logging: one line per event, key=value, to stderr.
 *
 *   CX_INFO("unit committed job_id=%s unit_id=%s n=%u", job, unit, n);
 *
 * The first word(s) up to the first key=value are the message. The level is
 * checked before the arguments are evaluated, so debug lines cost nothing
 * when disabled. Thread-safe (one write(2) per line). */
#ifndef CASCADE_LOG_H
#define CASCADE_LOG_H

typedef enum {
    CX_LOG_ERROR = 0,
    CX_LOG_WARN = 1,
    CX_LOG_INFO = 2,
    CX_LOG_DEBUG = 3
} cx_log_level_t;

extern int cx__log_level;

/* Name shown as svc=<name> on every line. Not copied: pass a literal. */
void cx_log_init(const char *service, cx_log_level_t level);
/* "error", "warn", "info", "debug"; returns -1 on an unknown name. */
int cx_log_level_parse(const char *name, cx_log_level_t *out);
void cx__log(cx_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define CX_LOG(lvl, ...)                                \
    do {                                                \
        if ((int)(lvl) <= cx__log_level)                \
            cx__log((lvl), __VA_ARGS__);                \
    } while (0)
#define CX_ERROR(...) CX_LOG(CX_LOG_ERROR, __VA_ARGS__)
#define CX_WARN(...) CX_LOG(CX_LOG_WARN, __VA_ARGS__)
#define CX_INFO(...) CX_LOG(CX_LOG_INFO, __VA_ARGS__)
#define CX_DEBUG(...) CX_LOG(CX_LOG_DEBUG, __VA_ARGS__)

#endif
