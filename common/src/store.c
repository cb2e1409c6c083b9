/* cx_store_*: key validation and dispatch to a backend (store_backend.h). */
#include "cascade/store.h"

#include <stdlib.h>
#include <string.h>

#include "store_backend.h"
#include "store_s3.h"

#define CX__STORE_KEY_MAX 1024

struct cx_store {
    const cx__store_ops_t *ops;
    void *impl;
};

static int comp_char_ok(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* Keys are relative '/'-separated paths whose every component is a plain
 * name: nothing a key holds can climb out of the root or name a temp file. */
static int key_check(const char *what, const char *key, int allow_empty,
                     cx_err_t *err) {
    if (!key) return cx_err_set(err, CX_EINVAL, 0, "store %s is NULL", what);
    size_t n = strlen(key);
    if (n == 0) {
        if (allow_empty) return 0;
        return cx_err_set(err, CX_EINVAL, 0, "store %s is empty", what);
    }
    if (n > CX__STORE_KEY_MAX)
        return cx_err_set(err, CX_EINVAL, 0,
                          "store %s '%.40s...' is longer than %d characters",
                          what, key, CX__STORE_KEY_MAX);
    const char *p = key;
    while (1) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0)
            return cx_err_set(err, CX_EINVAL, 0,
                              "store %s '%s' has an empty component", what,
                              key);
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return cx_err_set(err, CX_EINVAL, 0,
                              "store %s '%s' has a '%.*s' component", what,
                              key, (int)len, p);
        if (len >= strlen(CX__STORE_TMP_PREFIX) &&
            memcmp(p, CX__STORE_TMP_PREFIX, strlen(CX__STORE_TMP_PREFIX)) == 0)
            return cx_err_set(err, CX_EINVAL, 0,
                              "store %s '%s': components starting with '%s' "
                              "are reserved",
                              what, key, CX__STORE_TMP_PREFIX);
        for (size_t i = 0; i < len; i++)
            if (!comp_char_ok((unsigned char)p[i]))
                return cx_err_set(err, CX_EINVAL, 0,
                                  "store %s '%s' contains a character outside "
                                  "[A-Za-z0-9._-] (0x%02x)",
                                  what, key, (unsigned char)p[i]);
        if (!slash) break;
        p = slash + 1;
    }
    return 0;
}

cx_store_t *cx_store_open(const char *uri, cx_err_t *err) {
    if (!uri || !*uri) {
        cx_err_set(err, CX_EINVAL, 0, "store uri is empty");
        return NULL;
    }
    const cx__store_ops_t *ops = NULL;
    const char *path = uri;
    if (strncmp(uri, "file://", 7) == 0) {
        ops = &cx__store_file_ops;
        path = uri + 7;
        if (path[0] != '/') {
            cx_err_set(err, CX_EINVAL, 0,
                       "store uri '%s': file:// needs an absolute path "
                       "(file:///dir)",
                       uri);
            return NULL;
        }
    } else if (strncmp(uri, "s3://", 5) == 0) {
        ops = &cx__store_s3_ops;
    } else if (strstr(uri, "://")) {
        cx_err_set(err, CX_EINVAL, 0,
                   "store uri '%s': unsupported scheme (this build has "
                   "file:// and s3://)",
                   uri);
        return NULL;
    } else {
        ops = &cx__store_file_ops;
    }
    cx_store_t *s = calloc(1, sizeof *s);
    if (!s) {
        cx_err_set(err, CX_ENOMEM, 0, "store: out of memory");
        return NULL;
    }
    s->ops = ops;
    s->impl = ops == &cx__store_s3_ops ? cx__store_s3_open(uri, err)
                                       : cx__store_file_open(path, err);
    if (!s->impl) {
        free(s);
        return NULL;
    }
    return s;
}

void cx_store_destroy(cx_store_t *s) {
    if (!s) return;
    s->ops->destroy(s->impl);
    free(s);
}

int cx_store_put(cx_store_t *s, const char *key, const void *data, size_t len,
                 cx_err_t *err) {
    if (key_check("key", key, 0, err) != 0) return -1;
    if (!data && len) return cx_err_set(err, CX_EINVAL, 0, "store put: NULL data");
    return s->ops->put(s->impl, key, data ? data : "", len, err);
}

int cx_store_put_if_absent(cx_store_t *s, const char *key, const void *data,
                           size_t len, cx_err_t *err) {
    if (key_check("key", key, 0, err) != 0) return -1;
    if (!data && len) return cx_err_set(err, CX_EINVAL, 0, "store put: NULL data");
    return s->ops->put_if_absent(s->impl, key, data ? data : "", len, err);
}

int cx_store_get(cx_store_t *s, const char *key, void **data, size_t *len,
                 cx_err_t *err) {
    if (key_check("key", key, 0, err) != 0) return -1;
    return s->ops->get(s->impl, key, data, len, err);
}

int cx_store_exists(cx_store_t *s, const char *key, cx_err_t *err) {
    if (key_check("key", key, 0, err) != 0) return -1;
    return s->ops->exists(s->impl, key, err);
}

int cx_store_promote(cx_store_t *s, const char *src, const char *dst,
                     cx_err_t *err) {
    if (key_check("source key", src, 0, err) != 0 ||
        key_check("destination key", dst, 0, err) != 0)
        return -1;
    if (strcmp(src, dst) == 0)
        return cx_err_set(err, CX_EINVAL, 0,
                          "store promote: source and destination are both '%s'",
                          src);
    return s->ops->promote(s->impl, src, dst, err);
}

int cx_store_delete(cx_store_t *s, const char *key, cx_err_t *err) {
    if (key_check("key", key, 0, err) != 0) return -1;
    return s->ops->del(s->impl, key, err);
}

int cx_store_delete_prefix(cx_store_t *s, const char *prefix, cx_err_t *err) {
    /* An empty prefix would wipe the whole store: refuse it. */
    if (key_check("prefix", prefix, 0, err) != 0) return -1;
    return s->ops->delete_prefix(s->impl, prefix, err);
}

int cx_store_list(cx_store_t *s, const char *prefix, cx_strlist_t *out,
                  cx_err_t *err) {
    if (key_check("prefix", prefix, 1, err) != 0) return -1;
    return s->ops->list(s->impl, prefix, out, err);
}

char *cx_store_local_path(cx_store_t *s, const char *key) {
    if (!s || !s->ops->local_path || key_check("key", key, 1, NULL) != 0)
        return NULL;
    return s->ops->local_path(s->impl, key);
}
