/* cx_fault_apply: the CASCADE_FAULT_NOISE test hook (fault.h). */
#include "fault.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

static double cx__fault_sigma;
static pthread_once_t cx__fault_once = PTHREAD_ONCE_INIT;

static void cx__fault_read(void) {
    const char *s = getenv("CASCADE_FAULT_NOISE");
    double v = s ? strtod(s, NULL) : 0;
    cx__fault_sigma = isfinite(v) && v > 0 ? v : 0;
}

static double cx__fault_u(uint64_t *s) { /* splitmix64, uniform (0, 1) */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}

uint16_t *cx_fault_apply(const uint16_t *px, size_t n, int bit_depth,
                         uint64_t key) {
    pthread_once(&cx__fault_once, cx__fault_read);
    if (cx__fault_sigma <= 0) return NULL;
    uint16_t *out = malloc(n * sizeof *out);
    if (!out) return NULL;
    const double fs = bit_depth == 8 ? 255.0 : 65535.0;
    uint64_t s = key * 0x2545f4914f6cdd1dULL + 1;
    for (size_t i = 0; i < n; i++) {
        double u1 = cx__fault_u(&s), u2 = cx__fault_u(&s);
        double v = px[i] + cx__fault_sigma * fs * sqrt(-2 * log(u1)) *
                               cos(6.283185307179586 * u2);
        out[i] = (uint16_t)(v < 0 ? 0 : v > fs ? fs : lround(v));
    }
    return out;
}
