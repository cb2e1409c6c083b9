/* cx_err: error values carried across module boundaries. */
#include "cascade/err.h"

#include <stdio.h>
#include <string.h>

int cx_err_set(cx_err_t *err, cx_errcode_t code, int retriable,
               const char *fmt, ...) {
    if (!err) return -1;
    err->code = code;
    err->retriable = retriable ? 1 : 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

void cx_err_clear(cx_err_t *err) {
    if (!err) return;
    err->code = CX_OK;
    err->retriable = 0;
    err->msg[0] = '\0';
}

int cx_err_wrap(cx_err_t *err, const char *fmt, ...) {
    char prefix[256], old[sizeof err->msg];
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    n += 2;
    /* Keep as much of the original message as fits. */
    size_t m = strlen(old);
    if (m > sizeof err->msg - 1 - n) m = sizeof err->msg - 1 - n;
    memcpy(err->msg + n, old, m);
    err->msg[n + m] = '\0';
    return -1;
}

const char *cx_errcode_name(cx_errcode_t code) {
    switch (code) {
#define CX__ERR_NAME(c, text) \
    case c:                   \
        return text;
        CX_ERRORS(CX__ERR_NAME)
#undef CX__ERR_NAME
    }
    return "unknown error";
}
