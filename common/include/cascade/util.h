/* Small shared helpers: growable buffers, string lists, time, backoff. */
#ifndef CASCADE_UTIL_H
#define CASCADE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"

typedef struct cx_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} cx_buf_t;

/* A zeroed cx_buf_t is an empty buffer; cx_buf_free leaves it zeroed. */
int cx_buf_append(cx_buf_t *b, const void *data, size_t len);
int cx_buf_printf(cx_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cx_buf_free(cx_buf_t *b);

typedef struct cx_strlist {
    char **items;
    size_t len;
    size_t cap;
} cx_strlist_t;

/* Copies s. A zeroed cx_strlist_t is empty. */
int cx_strlist_push(cx_strlist_t *l, const char *s);
void cx_strlist_sort(cx_strlist_t *l);
void cx_strlist_free(cx_strlist_t *l);

int64_t cx_now_ms(void);      /* wall clock, Unix epoch milliseconds */
double cx_mono_ms(void);      /* monotonic milliseconds, for durations */
/* Sleeps min(base_ms * 2^attempt, max_ms) with +-25% jitter, in slices of at
 * most 100 ms, returning early (1) once *stop becomes non-zero. stop may be
 * NULL. Returns 0 after the full sleep. */
int cx_backoff_sleep(unsigned attempt, unsigned base_ms, unsigned max_ms,
                     volatile int *stop);

/* Reads a whole file. *data is NUL-terminated (not counted in *len). */
int cx_read_file(const char *path, char **data, size_t *len, cx_err_t *err);

#endif
