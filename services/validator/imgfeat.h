/* cx_feat: per-image measurements and the compact feature vector used by
 * the quality gates (libcxgates). Pure computation, no I/O; any tool that
 * needs the same features as the validator (cxcalibrate, cxfit) links
 * cascade_gates and calls cx_feat_compute.
 *
 * One call reads the pixels twice (histogram + 128x128 area thumbnail;
 * Laplacian + foreground centroid) and then works on small buffers:
 *   - intensity: mean, std, skewness, excess kurtosis, p1/p50/p99, the
 *     legacy range/clip/hf scores (identical to cx_gates_score);
 *   - structure: Otsu threshold on a 256-bin histogram; foreground (body)
 *     area fraction, centroid, left-right symmetry (correlation of the
 *     128x128 thumbnail with its mirror), moments of the body pixels;
 *   - artifacts: Laplacian variance, a Welch power spectrum (3x3 Hann
 *     windowed tiles of 64x64 at full resolution) averaged radially into
 *     16 bands of normalised frequency, its high-frequency energy ratio
 *     (energy at >= 0.5 Nyquist over all non-DC energy), and a repeated-
 *     patch score: the largest normalised circular autocorrelation of the
 *     high-passed 128x128 thumbnail away from the origin (mode-collapse
 *     tiles repeat, so their autocorrelation has a second peak near 1);
 *   - the feature vector (CX_FEAT_DIM floats, layout below).
 *
 * All intensities are in full-scale units [0, 1], so 8- and 16-bit images
 * of the same content give the same measurements.
 *
 * (The file is imgfeat.h, not features.h: that is glibc's own header and
 * this directory is on the include path.) */
#ifndef CX_VALIDATOR_IMGFEAT_H
#define CX_VALIDATOR_IMGFEAT_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"

/* Feature vector layout, version CX_FEAT_LAYOUT (bump on any change: the
 * gate profiles record it and refuse another):
 *   [0, 64)   privacy view: the 8x8 area thumbnail, z-scored within the
 *             image (mean 0, population std 1; zeros for a constant image).
 *             Invariant to brightness and contrast, nearly blind to grain
 *             noise: the content a copy would share with its original.
 *   [64, 80)  log10 power of the 16 radial spectral bands
 *   [80, 88)  mean, std, skew, kurt, p01, p50, p99, otsu
 *   [88, 96)  fg_area, fg_cx, fg_cy, symmetry, body_mean, body_std,
 *             body_skew, hf_ratio */
#define CX_FEAT_LAYOUT 1
#define CX_FEAT_DIM 96
#define CX_FEAT_PRIV_DIM 64
#define CX_FEAT_THUMB 8
#define CX_FEAT_NSPEC 16
#define CX_FEAT_GRID 128 /* side of the area thumbnail used inside */

typedef struct cx_feat {
    /* validity */
    double nonfinite;  /* fraction of non-finite pixels (float input) */
    /* legacy scores, exactly as cx_gates_score computes them */
    double range, clip, hf;
    /* intensity, full-scale units */
    double mean, std, skew, kurt, p01, p50, p99;
    /* structure */
    double otsu;       /* foreground threshold, full-scale units */
    double fg_area;    /* fraction of pixels >= otsu */
    double fg_cx, fg_cy; /* centroid of those pixels, in [0, 1] */
    double symmetry;   /* corr(thumbnail, mirrored thumbnail), [-1, 1] */
    double body_mean, body_std, body_skew, body_kurt;
    /* artifacts */
    double lap_var;    /* variance of the 4-neighbour Laplacian, (FS)^2 */
    double hf_ratio;   /* spectral energy at >= 0.5 Nyquist / non-DC */
    double repeat;     /* off-origin autocorrelation peak, [-1, 1] */
    double spec[CX_FEAT_NSPEC]; /* log10 band power, FS^2 per unit area */
    float vec[CX_FEAT_DIM];
} cx_feat_t;

/* The named scalar measurements of cx_feat_t, for profiles (envelopes),
 * verdict scores and reports. */
typedef struct cx_feat_measure {
    const char *name;
    size_t offset; /* of a double in cx_feat_t */
} cx_feat_measure_t;
extern const cx_feat_measure_t cx_feat_measures[];
extern const size_t cx_feat_nmeasures;
/* The measure's index in cx_feat_measures, or -1. */
int cx_feat_measure_index(const char *name);
static inline double cx_feat_get(const cx_feat_t *f, size_t measure) {
    return *(const double *)((const char *)f + cx_feat_measures[measure].offset);
}

/* Scratch memory for one thread (about 0.5 MiB); reuse it across images. */
typedef struct cx_feat_ws cx_feat_ws_t;
cx_feat_ws_t *cx_feat_ws_new(cx_err_t *err);
void cx_feat_ws_destroy(cx_feat_ws_t *ws); /* NULL is fine */

/* Measures px (width*height pixels, row-major, values in [0, 2^depth),
 * depth 8 or 16). Returns 0, or -1 with CX_EINVAL for an empty image, a
 * side below 8 or another depth. Thread-safe with one ws per thread. */
int cx_feat_compute(cx_feat_ws_t *ws, const uint16_t *px, uint32_t width,
                    uint32_t height, int depth, cx_feat_t *out,
                    cx_err_t *err);

/* Where cx_feat_compute's time goes (ms), for benchmarks: pass1 (the
 * histogram and the 128x128 thumbnail: one read of the pixels), hist
 * (moments, percentiles, Otsu, body moments from the histogram), pass2
 * (Laplacian and foreground centroid: the second read), structure
 * (symmetry and the 8x8 thumbnail), spectrum (Welch tiles), repeat (the
 * autocorrelation). */
typedef struct cx_feat_timing {
    double pass1, hist, pass2, structure, spectrum, repeat;
} cx_feat_timing_t;

/* cx_feat_compute that adds its phase timings into *t (not NULL). */
int cx_feat_compute_timed(cx_feat_ws_t *ws, const uint16_t *px,
                          uint32_t width, uint32_t height, int depth,
                          cx_feat_t *out, cx_feat_timing_t *t, cx_err_t *err);

/* The same for a floating-point image with values in [0, 1] (a generator's
 * output before quantisation): records the fraction of non-finite pixels
 * in out->nonfinite, quantises to 16 bits (non-finite pixels become 0) and
 * measures that. */
int cx_feat_compute_float(cx_feat_ws_t *ws, const float *px, uint32_t width,
                          uint32_t height, cx_feat_t *out, cx_err_t *err);

#endif
