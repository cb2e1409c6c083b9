/* Grayscale PNG encode/decode (libpng), 8 or 16 bits per sample. Pixels are
 * uint16_t in host order in memory whatever the depth (8-bit uses 0..255). */
#ifndef CASCADE_PNG16_H
#define CASCADE_PNG16_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/util.h"

/* zlevel: zlib level 0..9. Appends the PNG to out. */
int cx_png_encode(const uint16_t *px, uint32_t width, uint32_t height,
                  int bit_depth, int zlevel, cx_buf_t *out, cx_err_t *err);

/* Decodes a grayscale PNG of depth 8 or 16; anything else (colour, palette,
 * truncated, bad CRC) is an error with CX_EDECODE. *px is malloc'd, owned by
 * the caller. Rejects images larger than max_pixels (0 = 64 Mi). */
int cx_png_decode(const void *data, size_t len, size_t max_pixels,
                  uint16_t **px, uint32_t *width, uint32_t *height,
                  int *bit_depth, cx_err_t *err);

/* Row filter for cx_png_encode_ex. Measured on 512x512 16-bit noisy
 * radiograph-like images at zlib level 1: UP encodes as fast as NONE and is
 * ~11% smaller; PAETH/ALL cost more time for <1% more (see png16.c). */
typedef enum {
    CX_PNG_FILTER_NONE = 0,
    CX_PNG_FILTER_SUB,
    CX_PNG_FILTER_UP,
    CX_PNG_FILTER_PAETH,
    CX_PNG_FILTER_ALL /* libpng's adaptive choice per row */
} cx_png_filter_t;

/* zlib strategy for cx_png_encode_opts. A noisy 16-bit image barely
 * compresses by string matching; HUFFMAN (entropy coding of the filtered
 * bytes only) keeps most of the gain at a fraction of the cost: measured
 * by bench/stages/bench_png, see docs/STATUS.md. */
typedef enum {
    CX_PNG_STRATEGY_DEFAULT = 0,
    CX_PNG_STRATEGY_FILTERED,
    CX_PNG_STRATEGY_HUFFMAN,
    CX_PNG_STRATEGY_RLE
} cx_png_strategy_t;

typedef struct cx_png_opts {
    int zlevel;                 /* 0..9 */
    cx_png_filter_t filter;
    cx_png_strategy_t strategy;
} cx_png_opts_t;

/* Parses "default", "filtered", "huffman" or "rle"; -1 otherwise. */
int cx_png_strategy_parse(const char *name);

int cx_png_encode_opts(const uint16_t *px, uint32_t width, uint32_t height,
                       int bit_depth, const cx_png_opts_t *opts,
                       cx_buf_t *out, cx_err_t *err);

/* cx_png_encode with an explicit row filter (cx_png_encode uses UP). */
int cx_png_encode_ex(const uint16_t *px, uint32_t width, uint32_t height,
                     int bit_depth, int zlevel, cx_png_filter_t filter,
                     cx_buf_t *out, cx_err_t *err);

#endif
