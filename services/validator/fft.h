/* Internal to libcxgates: a small radix-2 complex FFT for the feature
 * extractor (power spectra of 64x64 tiles, autocorrelation of the 64x64
 * thumbnail). Sizes are powers of two up to CX__FFT_MAX; single precision,
 * no normalisation.
 *
 * Data are planar (separate real and imaginary planes) and transformed a
 * whole set of columns at a time: every butterfly is then one pass over a
 * contiguous row, which the compiler vectorises for each clone. The lanes
 * do identical IEEE operations (the file is built with -ffp-contract=off),
 * so the result does not depend on the machine's vector width. */
#ifndef CX_VALIDATOR_FFT_H
#define CX_VALIDATOR_FFT_H

#include <stddef.h>
#include <stdint.h>

#define CX__FFT_MAX 128

typedef struct cx__fft {
    unsigned n, log2n;
    float wr[CX__FFT_MAX / 2], wi[CX__FFT_MAX / 2]; /* e^{-2 pi i k / n} */
    uint16_t rev[CX__FFT_MAX];                      /* bit reversal */
} cx__fft_t;

/* Prepares tables for size n (power of two, 2..CX__FFT_MAX). Returns -1
 * for another n. */
int cx__fft_init(cx__fft_t *f, unsigned n);

/* Transforms, in place, each of the ncols columns of an n-row planar image
 * (re and im: n rows of ncols floats). inverse: conjugate twiddles, no 1/n
 * scaling. ncols <= CX__FFT_MAX. */
void cx__fft_cols(const cx__fft_t *f, float *re, float *im, unsigned ncols,
                  int inverse);

/* In-place 2D transform of an n x n planar image: columns, transpose,
 * columns. The result is TRANSPOSED (element [kx][ky]); callers that only
 * use |Z|^2 over symmetric sets, or that transform twice (forward then
 * inverse), do not care. */
void cx__fft_2d_t(const cx__fft_t *f, float *re, float *im, int inverse);

#endif
