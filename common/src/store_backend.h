/* Internal: the backend interface behind cx_store_*. store.c validates keys
 * and dispatches; a backend sees only keys that passed those checks. */
#ifndef CX_STORE_BACKEND_H
#define CX_STORE_BACKEND_H

#include <stddef.h>

#include "cascade/err.h"
#include "cascade/util.h"

typedef struct cx__store_ops {
    const char *scheme;
    int (*put)(void *impl, const char *key, const void *data, size_t len,
               cx_err_t *err);
    int (*put_if_absent)(void *impl, const char *key, const void *data,
                         size_t len, cx_err_t *err);
    int (*get)(void *impl, const char *key, void **data, size_t *len,
               cx_err_t *err);
    int (*exists)(void *impl, const char *key, cx_err_t *err);
    int (*promote)(void *impl, const char *src, const char *dst,
                   cx_err_t *err);
    int (*del)(void *impl, const char *key, cx_err_t *err);
    /* prefix is a validated key; "" only for list (the whole store). */
    int (*delete_prefix)(void *impl, const char *prefix, cx_err_t *err);
    int (*list)(void *impl, const char *prefix, cx_strlist_t *out,
                cx_err_t *err);
    char *(*local_path)(void *impl, const char *key); /* may be NULL */
    void (*destroy)(void *impl);
} cx__store_ops_t;

/* The file:// backend; path is a filesystem directory (created if missing). */
extern const cx__store_ops_t cx__store_file_ops;
void *cx__store_file_open(const char *path, cx_err_t *err);

/* Temporary files of in-flight writes start with this and are never keys. */
#define CX__STORE_TMP_PREFIX ".tmp-"

#endif
