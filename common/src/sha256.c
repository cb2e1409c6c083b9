/* SHA-256 through OpenSSL. */
#include "cascade/sha256.h"

#include <openssl/sha.h>

void cx_sha256(const void *data, size_t len, uint8_t out[32]) {
    /* SHA256() is deprecated-free in OpenSSL 3 and has no failure path for
     * in-memory input. */
    SHA256(len ? data : (const void *)"", len, out);
}

void cx_hex(const uint8_t *bytes, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

void cx_sha256_hex(const void *data, size_t len, char out[65]) {
    uint8_t d[32];
    cx_sha256(data, len, d);
    cx_hex(d, sizeof d, out);
}
