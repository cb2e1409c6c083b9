/* Philox4x32-10 and the standard normals drawn from it.
 *
 * Every noise element is addressed by (seed, index, stream, element): the key
 * is the 64-bit seed, the counter is (element block, index, stream), and each
 * 128-bit output block gives four normals by Box-Muller. So element i of any
 * stream can be recomputed alone, in any order, on any thread.
 *
 * Box-Muller uses our own float polynomials for log and sin/cos instead of
 * libm: the loop then vectorises, and the bytes do not depend on which libm
 * version a node has (samples are verified by content hash). */
#include <math.h>
#include <string.h>

#include "cascade/gen.h"
#include "noise_math.h"
#include "vec.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void cx_philox4x32(const uint32_t ctr[4], const uint32_t key[2],
                   uint32_t out[4])
{
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    cxg_philox(c, key[0], key[1]);
    memcpy(out, c, sizeof c);
}

#define NBLK 64 /* blocks per batch: 256 normals, stays in L1 */

/* Blocks [blk, blk + nb) of Philox, structure-of-arrays: the same rounds as
 * cx_philox4x32 on NBLK counters at once, so the 32x32->64-bit multiplies
 * vectorise (vpmuludq); the words come out in c0..c3. */
CX__CLONES static void philox_blocks(const uint32_t key[2], uint32_t index,
                                     uint32_t stream, uint64_t blk, size_t nb,
                                     uint32_t *c0, uint32_t *c1, uint32_t *c2,
                                     uint32_t *c3)
{
    for (size_t i = 0; i < nb; i++) {
        uint64_t b = blk + i;
        c0[i] = (uint32_t)b;
        c1[i] = (uint32_t)(b >> 32);
        c2[i] = index;
        c3[i] = stream;
    }
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        for (size_t i = 0; i < nb; i++) {
            uint64_t p0 = (uint64_t)PHILOX_M0 * c0[i];
            uint64_t p1 = (uint64_t)PHILOX_M1 * c2[i];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[i] ^ k0;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[i] ^ k1;
            c1[i] = (uint32_t)p1;
            c3[i] = (uint32_t)p0;
            c0[i] = n0;
            c2[i] = n2;
        }
    }
}

/* Box-Muller on the word pairs (a[i], b[i]) into out[4 i + o], out[4 i + o
 * + 1]: block i's words (w0, w1) make its normals 0 and 1, (w2, w3) 2 and
 * 3, as in the scalar definition. */
CX__CLONES static void box_muller_blocks(const uint32_t *a, const uint32_t *b,
                                         size_t nb, float *n0, float *n1)
{
    for (size_t i = 0; i < nb; i++)
        cxg_box_muller(a[i], b[i], &n0[i], &n1[i]);
}

/* Full blocks [blk, blk + nblk) into out (4 * nblk floats). */
static void normals_blocks(const uint32_t key[2], uint32_t index,
                           uint32_t stream, uint64_t blk, size_t nblk,
                           float *out)
{
    uint32_t c0[NBLK], c1[NBLK], c2[NBLK], c3[NBLK];
    float n0[NBLK], n1[NBLK], n2[NBLK], n3[NBLK];
    while (nblk > 0) {
        size_t nb = nblk < NBLK ? nblk : NBLK;
        philox_blocks(key, index, stream, blk, nb, c0, c1, c2, c3);
        box_muller_blocks(c0, c1, nb, n0, n1);
        box_muller_blocks(c2, c3, nb, n2, n3);
        for (size_t i = 0; i < nb; i++) {
            out[4 * i] = n0[i];
            out[4 * i + 1] = n1[i];
            out[4 * i + 2] = n2[i];
            out[4 * i + 3] = n3[i];
        }
        out += 4 * nb;
        blk += nb;
        nblk -= nb;
    }
}

void cx_normals(uint64_t seed, uint32_t index, uint32_t stream,
                uint64_t first, size_t n, float *out)
{
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    float tmp[4];
    uint64_t blk = first / 4;
    size_t lane = (size_t)(first % 4);
    if (n == 0)
        return;
    if (lane != 0) { /* partial head block */
        normals_blocks(key, index, stream, blk, 1, tmp);
        size_t take = 4 - lane < n ? 4 - lane : n;
        memcpy(out, tmp + lane, take * sizeof *out);
        out += take;
        n -= take;
        blk++;
    }
    size_t full = n / 4;
    normals_blocks(key, index, stream, blk, full, out);
    out += 4 * full;
    n -= 4 * full;
    if (n > 0) { /* partial tail block */
        normals_blocks(key, index, stream, blk + full, 1, tmp);
        memcpy(out, tmp, n * sizeof *out);
    }
}
