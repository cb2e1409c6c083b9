/* The file:// store backend: a directory tree under a root.
 *
 * Atomicity comes from the filesystem: an object is written to a temporary
 * file in its final directory, fsync'd, then renamed (replace) or linked
 * (create-only) into place, so a reader sees either nothing or the whole
 * object. Temporary names start with ".tmp-" and are never listed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "store_backend.h"

typedef struct {
    char *root; /* absolute, no trailing '/' */
} cx__fstore;

static atomic_ulong tmp_counter;

/* Errors a later retry may get past. */
static int errno_retriable(int e) {
    return e == ENOSPC || e == EDQUOT || e == EIO || e == EAGAIN ||
           e == EINTR;
}

static int fail_errno(cx_err_t *err, int e, const char *op, const char *path) {
    return cx_err_set(err, e == ENOENT ? CX_ENOENT : CX_ESTORE,
                      errno_retriable(e), "store %s '%s': %s", op, path,
                      strerror(e));
}

static char *join(const cx__fstore *fs, const char *key) {
    size_t a = strlen(fs->root), b = strlen(key);
    char *p = malloc(a + 1 + b + 1);
    if (!p) return NULL;
    memcpy(p, fs->root, a);
    if (b) {
        p[a] = '/';
        memcpy(p + a + 1, key, b + 1);
    } else {
        p[a] = '\0';
    }
    return p;
}

/* mkdir -p of path itself. path is writable scratch. */
static int mkdir_p(char *path, cx_err_t *err) {
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return 0;
        return cx_err_set(err, CX_ESTORE, 0, "store mkdir '%s': %s", path,
                          strerror(ENOTDIR));
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        int e = errno;
        *p = '/';
        if (rc != 0 && e != EEXIST) {
            *p = '\0';
            fail_errno(err, e, "mkdir", path);
            *p = '/';
            return -1;
        }
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return fail_errno(err, errno, "mkdir", path);
    return 0;
}

static int mkdir_parent(const char *path, cx_err_t *err) {
    char *dir = strdup(path);
    if (!dir) return cx_err_set(err, CX_ENOMEM, 0, "store: out of memory");
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        rc = mkdir_p(dir, err);
    }
    free(dir);
    return rc;
}

static void fsync_parent(const char *path) {
    /* Makes the new directory entry durable; best effort (some filesystems
     * refuse fsync on directories). */
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            (void)fsync(fd);
            close(fd);
        }
    }
    free(dir);
}

/* Writes data to a fresh temporary file beside path; *tmp gets its name. */
static int write_temp(const char *path, const void *data, size_t len,
                      char **tmp, cx_err_t *err) {
    *tmp = NULL;
    if (mkdir_parent(path, err) != 0) return -1;
    const char *slash = strrchr(path, '/');
    size_t dirlen = (size_t)(slash - path);
    size_t cap = strlen(path) + 64;
    char *t = malloc(cap);
    if (!t) return cx_err_set(err, CX_ENOMEM, 0, "store: out of memory");
    unsigned long n = atomic_fetch_add(&tmp_counter, 1);
    snprintf(t, cap, "%.*s/" CX__STORE_TMP_PREFIX "%s.%ld.%lu", (int)dirlen,
             path, slash + 1, (long)getpid(), n);
    int fd = open(t, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        fail_errno(err, errno, "create", t);
        free(t);
        return -1;
    }
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) goto fail_write;
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) goto fail_write;
    if (close(fd) != 0) {
        fd = -1;
        goto fail_write;
    }
    *tmp = t;
    return 0;

fail_write:;
    int e = errno;
    if (fd >= 0) close(fd);
    unlink(t);
    fail_errno(err, e, "write", path);
    free(t);
    return -1;
}

static int fs_put(void *impl, const char *key, const void *data, size_t len,
                  cx_err_t *err) {
    char *path = join(impl, key), *tmp = NULL;
    int rc = -1;
    if (!path) return cx_err_set(err, CX_ENOMEM, 0, "store: out of memory");
    if (write_temp(path, data, len, &tmp, err) != 0) goto out;
    if (rename(tmp, path) != 0) {
        fail_errno(err, errno, "rename into", path);
        unlink(tmp);
        goto out;
    }
    fsync_parent(path);
    rc = 0;
out:
    free(tmp);
    free(path);
    return rc;
}

static int fs_put_if_absent(void *impl, const char *key, const void *data,
                            size_t len, cx_err_t *err) {
    char *path = join(impl, key), *tmp = NULL;
    int rc = -1;
    if (!path) return cx_err_set(err, CX_ENOMEM, 0, "store: out of memory");
    if (write_temp(path, data, len, &tmp, err) != 0) goto out;
    /* link() fails with EEXIST rather than replacing: exactly one of any
     * number of racing writers creates the key. */
    if (link(tmp, path) == 0) {
        fsync_parent(path);
        rc = 0;
    } else if (errno == EEXIST) {
        rc = 1;
    } else {
        fail_errno(err, errno, "link into", path);
    }
    unlink(tmp);
out:
    free(tmp);
    free(path);
    return rc;
}

static int fs_get(void *impl, const char *key, void **data, size_t *len,
                  cx_err_t *err) {
    char *path = join(impl, key);
    if (!path) return cx_err_set(err, CX_ENOMEM, 0, "store: out of memory");
    int rc = -1, fd = open(path, O_RDONLY | O_CLOEXEC);
    uint8_t *buf = NULL;
    struct stat st;
    if (fd < 0) {
        fail_errno(err, errno == ENOTDIR ? ENOENT : errno, "get", path);
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        fail_errno(err, errno, "stat", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        cx_err_set(err, CX_ENOENT, 0, "store get '%s': not an object", path);
        goto out;
    }
    size_t size = (size_t)st.st_size, got = 0;
    buf = malloc(size + 1);
    if (!buf) {
        cx_err_set(err, CX_ENOMEM, 0, "store get '%s': out of memory", path);
        goto out;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            fail_errno(err, errno, "read", path);
            goto out;
        }
        if (r == 0) break; /* objects are immutable; a short file is what is there */
        got += (size_t)r;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    buf = NULL;
    rc = 0;
out:
    if (fd >= 0) close(fd);
    free(buf);
    free(path);
    return rc;
}

static int fs_exists(void *impl, const char *key, cx_err_t *err) {
    char *path = join(impl, key);
    if (!path) return cx_err_set(err, CX_ENOMEM, 0, "store: out of memory");
    struct stat st;
    int rc;
    if (stat(path, &st) == 0)
        rc = S_ISREG(st.st_mode) ? 1 : 0;
    else if (errno == ENOENT || errno == ENOTDIR)
        rc = 0;
    else
        rc = fail_errno(err, errno, "stat", path);
    free(path);
    return rc;
}

static int fs_promote(void *impl, const char *src, const char *dst,
                      cx_err_t *err) {
    char *ps = join(impl, src), *pd = join(impl, dst);
    int rc = -1;
    if (!ps || !pd) {
        cx_err_set(err, CX_ENOMEM, 0, "store: out of memory");
        goto out;
    }
    if (mkdir_parent(pd, err) != 0) goto out;
    /* link+unlink instead of rename: an existing destination is never
     * replaced, and an interrupted promotion leaves both names, which a
     * retry finishes. */
    if (link(ps, pd) == 0 || errno == EEXIST) {
        fsync_parent(pd);
        if (unlink(ps) != 0 && errno != ENOENT) {
            fail_errno(err, errno, "unlink", ps);
            goto out;
        }
        rc = 0;
    } else if (errno == ENOENT || errno == ENOTDIR) {
        struct stat st;
        if (stat(pd, &st) == 0 && S_ISREG(st.st_mode))
            rc = 0; /* already promoted by an earlier try */
        else
            cx_err_set(err, CX_ENOENT, 0,
                       "store promote '%s' -> '%s': neither exists", ps, pd);
    } else {
        fail_errno(err, errno, "promote into", pd);
    }
out:
    free(ps);
    free(pd);
    return rc;
}

static int fs_del(void *impl, const char *key, cx_err_t *err) {
    char *path = join(impl, key);
    if (!path) return cx_err_set(err, CX_ENOMEM, 0, "store: out of memory");
    int rc = 0;
    if (unlink(path) != 0 && errno != ENOENT && errno != ENOTDIR)
        rc = fail_errno(err, errno, "delete", path);
    free(path);
    return rc;
}

/* Removes everything below and including the directory path. */
static int rm_tree(const char *path, cx_err_t *err) {
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT) return 0;
        if (errno == ENOTDIR) return 0; /* a key, not a prefix */
        return fail_errno(err, errno, "open directory", path);
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        size_t n = strlen(path) + 1 + strlen(de->d_name) + 1;
        char *child = malloc(n);
        if (!child) {
            rc = cx_err_set(err, CX_ENOMEM, 0, "store: out of memory");
            break;
        }
        snprintf(child, n, "%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(child, &st) != 0) {
            if (errno != ENOENT) rc = fail_errno(err, errno, "stat", child);
        } else if (S_ISDIR(st.st_mode)) {
            rc = rm_tree(child, err);
        } else if (unlink(child) != 0 && errno != ENOENT) {
            rc = fail_errno(err, errno, "delete", child);
        }
        free(child);
        if (rc != 0) break;
    }
    closedir(d);
    if (rc == 0 && rmdir(path) != 0 && errno != ENOENT)
        rc = fail_errno(err, errno, "remove directory", path);
    return rc;
}

static int fs_delete_prefix(void *impl, const char *prefix, cx_err_t *err) {
    char *path = join(impl, prefix);
    if (!path) return cx_err_set(err, CX_ENOMEM, 0, "store: out of memory");
    int rc = rm_tree(path, err);
    free(path);
    return rc;
}

static int walk(const char *dir, const char *keyprefix, cx_strlist_t *acc,
                cx_err_t *err) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR) return 0;
        return fail_errno(err, errno, "list", dir);
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        if (nm[0] == '.' &&
            (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0') ||
             strncmp(nm, CX__STORE_TMP_PREFIX, strlen(CX__STORE_TMP_PREFIX)) == 0))
            continue;
        size_t nd = strlen(dir) + 1 + strlen(nm) + 1;
        size_t nk = strlen(keyprefix) + 1 + strlen(nm) + 1;
        char *child = malloc(nd), *key = malloc(nk);
        if (!child || !key) {
            free(child);
            free(key);
            rc = cx_err_set(err, CX_ENOMEM, 0, "store: out of memory");
            break;
        }
        snprintf(child, nd, "%s/%s", dir, nm);
        snprintf(key, nk, "%s%s%s", keyprefix, *keyprefix ? "/" : "", nm);
        struct stat st;
        if (lstat(child, &st) != 0) {
            if (errno != ENOENT) rc = fail_errno(err, errno, "stat", child);
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk(child, key, acc, err);
        } else if (S_ISREG(st.st_mode)) {
            if (cx_strlist_push(acc, key) != 0)
                rc = cx_err_set(err, CX_ENOMEM, 0, "store: out of memory");
        }
        free(child);
        free(key);
        if (rc != 0) break;
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int fs_list(void *impl, const char *prefix, cx_strlist_t *out,
                   cx_err_t *err) {
    char *path = join(impl, prefix);
    if (!path) return cx_err_set(err, CX_ENOMEM, 0, "store: out of memory");
    cx_strlist_t acc = {0};
    int rc = walk(path, prefix, &acc, err);
    if (rc == 0 && acc.len) {
        qsort(acc.items, acc.len, sizeof *acc.items, cmp_str);
        for (size_t i = 0; i < acc.len && rc == 0; i++)
            if (cx_strlist_push(out, acc.items[i]) != 0)
                rc = cx_err_set(err, CX_ENOMEM, 0, "store: out of memory");
    }
    cx_strlist_free(&acc);
    free(path);
    return rc;
}

static char *fs_local_path(void *impl, const char *key) {
    return join(impl, key);
}

static void fs_destroy(void *impl) {
    cx__fstore *fs = impl;
    if (!fs) return;
    free(fs->root);
    free(fs);
}

void *cx__store_file_open(const char *path, cx_err_t *err) {
    if (!path || !*path) {
        cx_err_set(err, CX_EINVAL, 0, "file store: empty path");
        return NULL;
    }
    cx__fstore *fs = calloc(1, sizeof *fs);
    char *abs = NULL;
    if (!fs) goto fail_mem;
    if (path[0] == '/') {
        abs = strdup(path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) {
            fail_errno(err, errno, "getcwd for", path);
            goto fail;
        }
        size_t n = strlen(cwd) + 1 + strlen(path) + 1;
        if ((abs = malloc(n))) snprintf(abs, n, "%s/%s", cwd, path);
    }
    if (!abs) goto fail_mem;
    size_t n = strlen(abs);
    while (n > 1 && abs[n - 1] == '/') abs[--n] = '\0';
    if (mkdir_p(abs, err) != 0) goto fail;
    fs->root = abs;
    return fs;

fail_mem:
    cx_err_set(err, CX_ENOMEM, 0, "file store: out of memory");
fail:
    free(abs);
    free(fs);
    return NULL;
}

const cx__store_ops_t cx__store_file_ops = {
    .scheme = "file",
    .put = fs_put,
    .put_if_absent = fs_put_if_absent,
    .get = fs_get,
    .exists = fs_exists,
    .promote = fs_promote,
    .del = fs_del,
    .delete_prefix = fs_delete_prefix,
    .list = fs_list,
    .local_path = fs_local_path,
    .destroy = fs_destroy,
};
