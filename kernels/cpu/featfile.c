/* .cxfeat training-feature files (cascade/featfile.h; layout in
 * docs/CHECKPOINT.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/featfile.h"
#include "cascade/sha256.h"

#define MAGIC "CXFEAT\r\n"
#define VERSION 1u
#define FIXED 128u
#define NAME_BYTES 32u
#define MAX_COLS 65536u
#define MAX_CLASSES 256u

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static size_t body_bytes(uint32_t rows, uint32_t cols, uint32_t nclasses)
{
    return FIXED + (size_t)nclasses * NAME_BYTES + (size_t)rows * 4 +
           (size_t)rows * cols * 4;
}

int cx_featfile_encode(const cx_featfile_t *f, cx_buf_t *out, cx_err_t *err)
{
    if (f->cols == 0 || f->cols > MAX_COLS || f->nclasses == 0 ||
        f->nclasses > MAX_CLASSES)
        return cx_err_set(err, CX_EINVAL, 0,
                          "featfile: %u columns, %u classes", f->cols,
                          f->nclasses);
    for (uint32_t i = 0; i < f->rows; i++)
        if (f->row_class[i] >= f->nclasses)
            return cx_err_set(err, CX_EINVAL, 0,
                              "featfile: row %u class %u of %u", i,
                              f->row_class[i], f->nclasses);
    size_t n = body_bytes(f->rows, f->cols, f->nclasses);
    uint8_t *b = calloc(1, n + 32);
    if (!b)
        return cx_err_set(err, CX_ENOMEM, 1, "featfile: out of memory");
    memcpy(b, MAGIC, 8);
    put32(b + 8, VERSION);
    put32(b + 12, FIXED + f->nclasses * NAME_BYTES);
    put32(b + 16, f->rows);
    put32(b + 20, f->cols);
    put32(b + 24, f->nclasses);
    put32(b + 28, f->layout);
    put32(b + 32, 1); /* float32 little-endian */
    snprintf((char *)b + 40, 64, "%s", f->checkpoint);
    uint8_t *p = b + FIXED;
    for (uint32_t c = 0; c < f->nclasses; c++, p += NAME_BYTES)
        snprintf((char *)p, NAME_BYTES, "%s", f->class_names[c]);
    for (uint32_t i = 0; i < f->rows; i++, p += 4)
        put32(p, f->row_class[i]);
    for (size_t i = 0; i < (size_t)f->rows * f->cols; i++, p += 4) {
        uint32_t u;
        memcpy(&u, &f->data[i], 4);
        put32(p, u);
    }
    cx_sha256(b, n, b + n);
    int rc = cx_buf_append(out, b, n + 32);
    free(b);
    return rc == 0 ? 0 : cx_err_set(err, CX_ENOMEM, 1, "featfile: out of "
                                                       "memory");
}

void cx_featfile_free(cx_featfile_t *f)
{
    free(f->class_names);
    free(f->row_class);
    free(f->data);
    f->class_names = NULL;
    f->row_class = NULL;
    f->data = NULL;
}

static int bad(cx_err_t *err, const char *what)
{
    return cx_err_set(err, CX_EDECODE, 0, "featfile: %s", what);
}

int cx_featfile_decode(const void *data, size_t len, cx_featfile_t *f,
                       cx_err_t *err)
{
    const uint8_t *b = data;
    memset(f, 0, sizeof *f);
    if (len < FIXED + 32 || memcmp(b, MAGIC, 8) != 0)
        return bad(err, "not a .cxfeat file (bad magic or too short)");
    if (get32(b + 8) != VERSION)
        return cx_err_set(err, CX_EDECODE, 0,
                          "featfile: version %u not supported (want %u)",
                          get32(b + 8), VERSION);
    uint32_t rows = get32(b + 16), cols = get32(b + 20), nc = get32(b + 24);
    if (cols == 0 || cols > MAX_COLS || nc == 0 || nc > MAX_CLASSES ||
        get32(b + 12) != FIXED + nc * NAME_BYTES || get32(b + 32) != 1 ||
        memchr(b + 40, '\0', 64) == NULL)
        return bad(err, "corrupt header");
    size_t n = body_bytes(rows, cols, nc);
    if (len != n + 32)
        return cx_err_set(err, CX_EDECODE, 0,
                          "featfile: %zu bytes, header says %zu (truncated "
                          "or trailing bytes)", len, n + 32);
    uint8_t dg[32];
    cx_sha256(b, n, dg);
    if (memcmp(dg, b + n, 32) != 0)
        return bad(err, "checksum mismatch (corrupt)");
    f->rows = rows;
    f->cols = cols;
    f->nclasses = nc;
    f->layout = get32(b + 28);
    memcpy(f->checkpoint, b + 40, 64);
    f->class_names = calloc(nc, sizeof *f->class_names);
    f->row_class = malloc((rows ? rows : 1) * sizeof *f->row_class);
    size_t cells = (size_t)rows * cols;
    f->data = malloc((cells ? cells : 1) * sizeof *f->data);
    if (!f->class_names || !f->row_class || !f->data) {
        cx_featfile_free(f);
        return cx_err_set(err, CX_ENOMEM, 1, "featfile: out of memory");
    }
    const uint8_t *p = b + FIXED;
    for (uint32_t c = 0; c < nc; c++, p += NAME_BYTES)
        memcpy(f->class_names[c], p, NAME_BYTES - 1);
    for (uint32_t i = 0; i < rows; i++, p += 4)
        if ((f->row_class[i] = get32(p)) >= nc) {
            cx_featfile_free(f);
            return bad(err, "row class out of range");
        }
    for (size_t i = 0; i < (size_t)rows * cols; i++, p += 4) {
        uint32_t u = get32(p);
        memcpy(&f->data[i], &u, 4);
    }
    return 0;
}

int cx_featfile_save(const cx_featfile_t *f, const char *path, cx_err_t *err)
{
    cx_buf_t b = {0};
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >=
        (int)sizeof tmp)
        return cx_err_set(err, CX_EINVAL, 0, "featfile: path too long");
    if (cx_featfile_encode(f, &b, err) != 0)
        return -1;
    FILE *fp = fopen(tmp, "wb");
    int ok = fp && fwrite(b.data, 1, b.len, fp) == b.len;
    ok = fp && fclose(fp) == 0 && ok;
    ok = ok && rename(tmp, path) == 0;
    cx_buf_free(&b);
    if (!ok) {
        cx_err_set(err, CX_EIO, 1, "featfile %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int cx_featfile_load(const char *path, cx_featfile_t *f, cx_err_t *err)
{
    char *data;
    size_t len;
    memset(f, 0, sizeof *f);
    if (cx_read_file(path, &data, &len, err) != 0)
        return -1;
    int rc = cx_featfile_decode(data, len, f, err);
    free(data);
    if (rc != 0)
        cx_err_wrap(err, "%s", path);
    return rc;
}
