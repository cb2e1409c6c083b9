/* Growable buffers, string lists, clocks, backoff, whole-file reads. */
#include "cascade/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int buf_reserve(cx_buf_t *b, size_t extra) {
    if (extra > SIZE_MAX - b->len - 1) return -1;
    size_t need = b->len + extra + 1; /* room for a trailing NUL */
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

int cx_buf_append(cx_buf_t *b, const void *data, size_t len) {
    if (buf_reserve(b, len) < 0) return -1;
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int cx_buf_printf(cx_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n) < 0) return -1;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void cx_buf_free(cx_buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int cx_strlist_push(cx_strlist_t *l, const char *s) {
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **items = realloc(l->items, cap * sizeof *items);
        if (!items) return -1;
        l->items = items;
        l->cap = cap;
    }
    char *copy = strdup(s);
    if (!copy) return -1;
    l->items[l->len++] = copy;
    return 0;
}

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void cx_strlist_sort(cx_strlist_t *l) {
    if (l->len > 1) qsort(l->items, l->len, sizeof *l->items, str_cmp);
}

void cx_strlist_free(cx_strlist_t *l) {
    for (size_t i = 0; i < l->len; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->len = l->cap = 0;
}

int64_t cx_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double cx_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Jitter only needs to spread retries apart, not be unpredictable. */
static unsigned jitter_next(void) {
    static __thread unsigned state;
    if (!state) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        state = (unsigned)ts.tv_nsec ^ (unsigned)(uintptr_t)&ts ^ 0x9e3779b9u;
        if (!state) state = 1;
    }
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
}

int cx_backoff_sleep(unsigned attempt, unsigned base_ms, unsigned max_ms,
                     volatile int *stop) {
    double ms = base_ms;
    for (unsigned i = 0; i < attempt && ms < max_ms; i++) ms *= 2;
    if (ms > max_ms) ms = max_ms;
    ms *= 0.75 + 0.5 * (jitter_next() % 10001) / 10000.0;

    double end = cx_mono_ms() + ms;
    for (;;) {
        if (stop && *stop) return 1;
        double left = end - cx_mono_ms();
        if (left <= 0) return 0;
        if (left > 100) left = 100;
        struct timespec ts = {(time_t)(left / 1000),
                              (long)((left - (time_t)(left / 1000) * 1000) *
                                     1e6)};
        nanosleep(&ts, NULL);
    }
}

int cx_read_file(const char *path, char **data, size_t *len, cx_err_t *err) {
    FILE *f = fopen(path, "rb");
    cx_buf_t b = {0};
    char chunk[65536];
    size_t n;

    if (!f)
        return cx_err_set(err, errno == ENOENT ? CX_ENOENT : CX_EIO, 0,
                          "%s: %s", path, strerror(errno));
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (cx_buf_append(&b, chunk, n) < 0) {
            fclose(f);
            cx_buf_free(&b);
            return cx_err_set(err, CX_ENOMEM, 0, "%s: out of memory", path);
        }
    }
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        cx_buf_free(&b);
        return cx_err_set(err, CX_EIO, 1, "%s: %s", path, strerror(e));
    }
    fclose(f);
    if (cx_buf_append(&b, "", 0) < 0) {
        cx_buf_free(&b);
        return cx_err_set(err, CX_ENOMEM, 0, "%s: out of memory", path);
    }
    *data = (char *)b.data;
    if (len) *len = b.len;
    return 0;
}
