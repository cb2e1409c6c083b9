/* The object store: keys are '/'-separated relative paths under a root.
 *
 * Backends: file:// (a local directory; writes go to a temporary file,
 * fsync, then rename or link, so a reader never sees a partial object) and
 * s3://bucket/prefix (any S3-compatible store; settings and semantics in
 * common/src/store_s3.h and store_s3.c). A key component must pass cx_name_check-like rules (no "..",
 * no empty components, [A-Za-z0-9._-]); a bad key is CX_EINVAL.
 * I/O failures that may pass (ENOSPC, EIO, EDQUOT, network) are retriable.
 * A cx_store_t may be shared between threads. */
#ifndef CASCADE_STORE_H
#define CASCADE_STORE_H

#include <stddef.h>

#include "cascade/err.h"
#include "cascade/util.h"

typedef struct cx_store cx_store_t;

/* uri: file:///abs/dir, a plain path, or s3://bucket[/prefix]. Creates a
 * file:// root if missing; opening s3:// checks the settings but sends no
 * request (the bucket must exist). */
cx_store_t *cx_store_open(const char *uri, cx_err_t *err);
void cx_store_destroy(cx_store_t *s);

/* Creates or atomically replaces key. */
int cx_store_put(cx_store_t *s, const char *key, const void *data, size_t len,
                 cx_err_t *err);
/* Writes key only if it does not exist, atomically. Returns 0 when written,
 * 1 when the key already existed (nothing changed), -1 on error. */
int cx_store_put_if_absent(cx_store_t *s, const char *key, const void *data,
                           size_t len, cx_err_t *err);
/* *data is malloc'd and NUL-terminated (not counted in *len). A missing key
 * is -1 with CX_ENOENT. */
int cx_store_get(cx_store_t *s, const char *key, void **data, size_t *len,
                 cx_err_t *err);
/* 1 exists, 0 missing, -1 error. */
int cx_store_exists(cx_store_t *s, const char *key, cx_err_t *err);
/* Moves src to dst atomically. If dst already exists the move is a success
 * (content-addressed keys: same name, same bytes) and src is removed. If src
 * is missing but dst exists, success (a retried promotion). Both missing:
 * CX_ENOENT. */
int cx_store_promote(cx_store_t *s, const char *src, const char *dst,
                     cx_err_t *err);
/* Missing is fine. */
int cx_store_delete(cx_store_t *s, const char *key, cx_err_t *err);
/* Removes every key under prefix/ (and empty directories). */
int cx_store_delete_prefix(cx_store_t *s, const char *prefix, cx_err_t *err);
/* Appends every key under prefix/ (recursively), sorted, to out. Temporary
 * files of in-flight writes are never listed. */
int cx_store_list(cx_store_t *s, const char *prefix, cx_strlist_t *out,
                  cx_err_t *err);
/* For file:// stores, the absolute filesystem path of key (for tools and
 * summaries); NULL for other backends. Caller frees. */
char *cx_store_local_path(cx_store_t *s, const char *key);

#endif
