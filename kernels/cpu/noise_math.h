/* Philox4x32-10, the log and the Box-Muller transform behind cx_normals,
 * written once in the common subset of C11 and CUDA C++: kernels/cpu/
 * philox.c uses them for its scalar path and kernels/cuda (gen_math.h) on
 * the device, so the noise is the same bits on both. Compile without fused
 * multiply-adds (-ffp-contract=off, nvcc --fmad=false).
 *
 * Box-Muller: radius from the top 24 bits of a (uniform in (0,1), never 0);
 * angle: quadrant from the top 2 bits of b, position inside the quadrant
 * from the next 24, evaluated around the quadrant's centre so the
 * polynomials only see |phi| <= pi/4. ln(u) for u in (0, 1]: u = m 2^e with
 * m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m-1)/(m+1), five
 * terms (~1e-8). */
#ifndef CASCADE_KERNELS_NOISE_MATH_H
#define CASCADE_KERNELS_NOISE_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define CXG_HD static inline __host__ __device__
#else
#define CXG_HD static inline
#endif

CXG_HD uint32_t cxg_mulhi(uint32_t a, uint32_t b, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * b;
    *lo = (uint32_t)p;
    return (uint32_t)(p >> 32);
}

CXG_HD void cxg_philox(uint32_t c[4], uint32_t k0, uint32_t k1)
{
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint32_t lo0, lo1;
        uint32_t hi0 = cxg_mulhi(0xD2511F53u, c[0], &lo0);
        uint32_t hi1 = cxg_mulhi(0xCD9E8D57u, c[2], &lo1);
        uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
    }
}

CXG_HD uint32_t cxg_f2u(float f)
{
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

CXG_HD float cxg_u2f(uint32_t u)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

/* ln(u), u in (0, 1]: the CPU's polynomial, operation for operation. */
CXG_HD float cxg_ln(float u)
{
    uint32_t bits = cxg_f2u(u);
    int32_t e = (int32_t)((bits >> 23) & 0xffu) - 127;
    float m = cxg_u2f((bits & 0x7fffffu) | 0x3f800000u);
    int big = m > 1.41421356f;
    m = big ? m * 0.5f : m;
    e = big ? e + 1 : e;
    float s = (m - 1.0f) / (m + 1.0f);
    float z = s * s;
    float p = 1.0f + z * (1.0f / 3 + z * (1.0f / 5 + z * (1.0f / 7 +
                                                         z * (1.0f / 9))));
    return (float)e * 0.693147181f + 2.0f * s * p;
}

CXG_HD void cxg_box_muller(uint32_t a, uint32_t b, float *n0, float *n1)
{
    const float inv24 = 1.0f / 16777216.0f;
    float u = ((float)(a >> 8) + 0.5f) * inv24;
    float rad = sqrtf(-2.0f * cxg_ln(u));
    uint32_t q = b >> 30;
    float f = ((float)((b >> 6) & 0xffffffu) + 0.5f) * inv24;
    float phi = (f - 0.5f) * 1.57079633f;
    float p2 = phi * phi;
    float sn = phi * (1.0f + p2 * (-1.0f / 6 + p2 * (1.0f / 120 +
              p2 * (-1.0f / 5040 + p2 * (1.0f / 362880)))));
    float cs = 1.0f + p2 * (-0.5f + p2 * (1.0f / 24 + p2 * (-1.0f / 720 +
              p2 * (1.0f / 40320 + p2 * (-1.0f / 3628800)))));
    float cpsi = (cs - sn) * 0.707106781f;
    float spsi = (cs + sn) * 0.707106781f;
    int swap = (int)(q & 1u);
    float c0 = swap ? spsi : cpsi;
    float s0 = swap ? cpsi : spsi;
    float sgc = ((q ^ (q >> 1)) & 1u) ? -1.0f : 1.0f;
    float sgs = (q >> 1) ? -1.0f : 1.0f;
    *n0 = rad * c0 * sgc;
    *n1 = rad * s0 * sgs;
}

/* Normals 4 blk .. 4 blk + 3 of (seed, index, stream): cx_normals'
 * elements, bit for bit. */

#endif
