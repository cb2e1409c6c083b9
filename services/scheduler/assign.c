/* Assignment bytes around a stored WorkUnit (assign.h). */
#include "assign.h"

#include <stdlib.h>

#include "cascade/codec.h"

/* Field 301, wire type 2 (length-delimited). */
#define CX__ASSIGN_UNIT_TAG ((301u << 3) | 2u)

static size_t varint(uint64_t v, uint8_t *out) {
    size_t n = 0;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        out[n++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    return n;
}

int cx_assign_pack(const void *unit, size_t unit_len, const char *worker,
                   uint32_t attempt, uint64_t epoch, int64_t expiry_ms,
                   int64_t now_ms, cx_buf_t *out, cx_err_t *err) {
    Cascade__V1__Assignment a = CASCADE__V1__ASSIGNMENT__INIT;
    a.worker_id = (char *)worker;
    a.attempt = attempt;
    a.epoch = epoch;
    a.lease_expiry_unix_ms = expiry_ms;
    a.dispatched_unix_ms = now_ms;
    size_t len = protobuf_c_message_get_packed_size(&a.base);
    uint8_t head[20];
    size_t h = varint(CX__ASSIGN_UNIT_TAG, head);
    h += varint(unit_len, head + h);
    out->len = 0;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return cx_err_set(err, CX_ENOMEM, 0, "assignment: out of memory");
    protobuf_c_message_pack(&a.base, buf);
    int rc = cx_buf_append(out, buf, len) < 0 ||
                     cx_buf_append(out, head, h) < 0 ||
                     cx_buf_append(out, unit, unit_len) < 0
                 ? cx_err_set(err, CX_ENOMEM, 0, "assignment: out of memory")
                 : 0;
    free(buf);
    return rc;
}
