/* Path-safe names and the deterministic ids and seeds of work units. */
#include "cascade/names.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cascade/sha256.h"

static int name_char_ok(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int cx_name_check(const char *what, const char *name, cx_err_t *err) {
    if (!what) what = "name";
    if (!name || !*name)
        return cx_err_set(err, CX_EINVAL, 0, "%s is empty", what);
    size_t n = strlen(name);
    /* Report the most telling rule first: a '/' or control character says
     * more about what went wrong than the length does. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            return cx_err_set(err, CX_EINVAL, 0,
                              "%s '%.*s' contains a control character (0x%02x "
                              "at offset %zu)",
                              what, (int)i, name, c, i);
    }
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return cx_err_set(err, CX_EINVAL, 0, "%s '%s' is '%s'", what, name,
                          name);
    if (strchr(name, '/'))
        return cx_err_set(err, CX_EINVAL, 0, "%s '%.*s' contains '/'", what,
                          n > CX_NAME_MAX ? CX_NAME_MAX : (int)n, name);
    if (n > CX_NAME_MAX)
        return cx_err_set(err, CX_EINVAL, 0,
                          "%s '%.*s...' is longer than %d characters", what,
                          16, name, CX_NAME_MAX);
    if (name[0] == '.' || name[0] == '-')
        return cx_err_set(err, CX_EINVAL, 0, "%s '%s' starts with '%c'", what,
                          name, name[0]);
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok((unsigned char)name[i]))
            return cx_err_set(err, CX_EINVAL, 0,
                              "%s '%s' contains '%c' (allowed: A-Z a-z 0-9 . _ "
                              "-)",
                              what, name, name[i]);
    return 0;
}

void cx_unit_id(const char *job_id, const char *class_name, uint32_t ordinal,
                uint32_t generation, char out[33]) {
    char nums[32];
    size_t lj = strlen(job_id), lc = strlen(class_name);
    int ln = snprintf(nums, sizeof nums, "%" PRIu32 "%c%" PRIu32, ordinal,
                      '\0', generation);
    /* job \0 class \0 ordinal \0 generation: the NULs keep ("ab","c") and
     * ("a","bc") apart. */
    uint8_t buf[2 * CX_NAME_MAX + 64];
    uint8_t *msg = buf, *heap = NULL;
    size_t total = lj + 1 + lc + 1 + (size_t)ln;
    if (total > sizeof buf) {
        /* Names are validated to be short; still hash long ones correctly. */
        heap = malloc(total);
        if (!heap) {
            memset(out, '0', 32);
            out[32] = '\0';
            return;
        }
        msg = heap;
    }
    memcpy(msg, job_id, lj);
    msg[lj] = 0;
    memcpy(msg + lj + 1, class_name, lc);
    msg[lj + 1 + lc] = 0;
    memcpy(msg + lj + 1 + lc + 1, nums, (size_t)ln);
    uint8_t d[32];
    cx_sha256(msg, total, d);
    free(heap);
    cx_hex(d, 16, out);
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t cx_unit_seed(uint64_t seed_base, uint32_t class_index,
                      uint32_t ordinal, uint32_t generation) {
    /* Chain the inputs through splitmix64 so every input bit reaches every
     * output bit; (class, ordinal, generation) is packed injectively into two
     * words so that no two units share the chain input. */
    uint64_t s = seed_base;
    uint64_t h = splitmix64(&s);
    s = h ^ (((uint64_t)class_index << 32) | ordinal);
    h = splitmix64(&s);
    s = h ^ ((uint64_t)generation | 0x5bd1e99500000000ULL);
    return splitmix64(&s);
}

void cx_job_id_new(char out[CX_NAME_MAX + 1]) {
    uint8_t r[4];
    if (RAND_bytes(r, sizeof r) != 1) {
        /* No entropy from OpenSSL: fall back on time and pid mixed. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
                     ((uint64_t)getpid() << 40);
        uint64_t v = splitmix64(&s);
        memcpy(r, &v, sizeof r);
    }
    char hex[9];
    cx_hex(r, sizeof r, hex);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(out, CX_NAME_MAX + 1, "job-%04d%02d%02d-%s", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, hex);
}
