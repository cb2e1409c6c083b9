/* Logging: `ts=... level=... svc=... message`, one write(2) per line so
 * lines from several threads never interleave. */
#include "cascade/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int cx__log_level = CX_LOG_INFO;
static const char *log_service = "cascade";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void cx_log_init(const char *service, cx_log_level_t level) {
    if (service) log_service = service;
    cx__log_level = (int)level;
}

int cx_log_level_parse(const char *name, cx_log_level_t *out) {
    for (int i = 0; i < 4; i++) {
        if (name && strcmp(name, level_names[i]) == 0) {
            *out = (cx_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void cx__log(cx_log_level_t level, const char *fmt, ...) {
    char line[4096];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int w;

    if ((int)level < 0 || (int)level > CX_LOG_DEBUG) level = CX_LOG_ERROR;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof line, "ts=%Y-%m-%dT%H:%M:%S", &tm);
    w = snprintf(line + n, sizeof line - n, ".%03dZ level=%s svc=%s ",
                 (int)(tv.tv_usec / 1000), level_names[level], log_service);
    if (w > 0) n += (size_t)w;
    va_list ap;
    va_start(ap, fmt);
    w = vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    /* A truncated line still ends in a newline. */
    if (w > 0) n = n + (size_t)w < sizeof line - 1 ? n + (size_t)w
                                                    : sizeof line - 2;
    line[n++] = '\n';

    int saved = errno;
    size_t off = 0;
    while (off < n) {
        ssize_t r = write(STDERR_FILENO, line + off, n - off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        off += (size_t)r;
    }
    errno = saved;
}
