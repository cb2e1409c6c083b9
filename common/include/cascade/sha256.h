/* SHA-256 over a buffer (OpenSSL EVP underneath). */
#ifndef CASCADE_SHA256_H
#define CASCADE_SHA256_H

#include <stddef.h>
#include <stdint.h>

void cx_sha256(const void *data, size_t len, uint8_t out[32]);
/* 64 lowercase hex characters and a NUL. */
void cx_sha256_hex(const void *data, size_t len, char out[65]);
void cx_hex(const uint8_t *bytes, size_t n, char *out /* 2n+1 */);

#endif
