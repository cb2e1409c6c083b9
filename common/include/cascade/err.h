/* cx_err: the error value returned across module boundaries.
 *
 * Functions that can fail take a `cx_err_t *err` as their last argument and
 * return -1 (or NULL) after filling it. `err` may be NULL when the caller does
 * not care. `retriable` says whether trying again later can help (broker down,
 * Redis restarting, disk full): the service loop retries those with backoff
 * and stops, naming the cause, on the others. */
#ifndef CASCADE_ERR_H
#define CASCADE_ERR_H

#include <stdarg.h>

#define CX_ERRORS(X)                                                  \
    X(CX_OK, "ok")                                                    \
    X(CX_EINVAL, "invalid argument")                                  \
    X(CX_ENOMEM, "out of memory")                                     \
    X(CX_EIO, "i/o error")                                            \
    X(CX_ENOENT, "not found")                                         \
    X(CX_EEXIST, "already exists")                                    \
    X(CX_EDECODE, "malformed message")                                \
    X(CX_ETIMEOUT, "timed out")                                       \
    X(CX_EKAFKA, "kafka error")                                       \
    X(CX_EREDIS, "redis error")                                       \
    X(CX_ESTORE, "store error")                                       \
    X(CX_EFENCED, "fenced by a newer attempt")                        \
    X(CX_EMODEL, "model error")

typedef enum {
#define CX__ERR_ENUM(code, text) code,
    CX_ERRORS(CX__ERR_ENUM)
#undef CX__ERR_ENUM
} cx_errcode_t;

typedef struct cx_err {
    cx_errcode_t code;
    int retriable;
    char msg[512];
} cx_err_t;

/* Fills err (if not NULL) and returns -1, so `return cx_err_set(...)` works. */
int cx_err_set(cx_err_t *err, cx_errcode_t code, int retriable,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void cx_err_clear(cx_err_t *err);
/* Prepends "what: " to err->msg (context on the way up). Returns -1. */
int cx_err_wrap(cx_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *cx_errcode_name(cx_errcode_t code);

#endif
