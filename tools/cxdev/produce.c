/* cxdev produce: one message, raw bytes from a file or stdin. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cascade/util.h"
#include "cxdev.h"

static int read_stream(FILE *in, const char *name, cx_buf_t *b, cx_err_t *err)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, in)) > 0)
        if (cx_buf_append(b, chunk, n) < 0)
            return cx_err_set(err, CX_ENOMEM, 0, "reading %s", name);
    if (ferror(in))
        return cx_err_set(err, CX_EIO, 0, "reading %s failed", name);
    return 0;
}

int cxdev_produce(const cxdev_args_t *a, cx_err_t *err)
{
    cx_buf_t val = {0};
    int rc = -1;
    if (a->file) {
        FILE *f = fopen(a->file, "rb");
        if (!f) {
            cx_err_set(err, CX_ENOENT, 0, "cannot open %s", a->file);
            goto fail_read;
        }
        rc = read_stream(f, a->file, &val, err);
        fclose(f);
    } else {
        rc = read_stream(stdin, "stdin", &val, err);
    }
    if (rc < 0)
        goto fail_read;
    rc = -1;

    cx_producer_t *p = cx_producer_new(a->brokers, "cxdev", err);
    if (!p)
        goto fail_read;
    if (cx_producer_send(p, a->topic, a->partition, a->key,
                         a->key ? strlen(a->key) : 0, val.data, val.len,
                         err) < 0)
        goto fail_send;
    if (cx_producer_flush(p, 30000, err) < 0)
        goto fail_send;
    rc = 0;
fail_send:
    cx_producer_destroy(p);
fail_read:
    cx_buf_free(&val);
    return rc;
}
