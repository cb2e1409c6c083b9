/* Grayscale PNG through libpng, from and to memory.
 *
 * libpng reports errors by longjmp: everything that must be freed on that
 * path lives in a context struct reachable after the jump, never in locals
 * modified after setjmp. */
#include "cascade/png16.h"

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <zlib.h>

#define CX__PNG_DEFAULT_MAX_PIXELS ((size_t)64 << 20)

typedef struct {
    jmp_buf jb;
    char msg[200];
    /* encode */
    cx_buf_t *out;
    size_t out_start;
    uint8_t *row8;
    const uint16_t *src;
    int zlevel, filter, strategy;
    /* decode */
    const uint8_t *in;
    size_t in_len, in_pos;
    uint16_t *px;
    uint8_t *tmp8;
    png_bytep *rows;
    size_t max_pixels;
    uint32_t w, h;
    int depth;
} cx__png_ctx;

static void on_error(png_structp png, png_const_charp msg) {
    cx__png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "libpng error");
    longjmp(c->jb, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* warnings (e.g. a bad ancillary chunk CRC) are not fatal */
}

static void write_fn(png_structp png, png_bytep data, png_size_t len) {
    cx__png_ctx *c = png_get_io_ptr(png);
    if (cx_buf_append(c->out, data, len) != 0) png_error(png, "out of memory");
}

static void flush_fn(png_structp png) { (void)png; }

static int host_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static int filter_flags(cx_png_filter_t f) {
    switch (f) {
    case CX_PNG_FILTER_NONE: return PNG_FILTER_NONE;
    case CX_PNG_FILTER_SUB: return PNG_FILTER_SUB;
    case CX_PNG_FILTER_UP: return PNG_FILTER_UP;
    case CX_PNG_FILTER_PAETH: return PNG_FILTER_PAETH;
    case CX_PNG_FILTER_ALL: return PNG_ALL_FILTERS;
    }
    return -1;
}

/* Runs under the caller's setjmp; the image description is in c. */
static void encode_rows(png_structp png, png_infop info, cx__png_ctx *c) {
    const uint16_t *px = c->src;
    uint32_t width = c->w, height = c->h;
    int bit_depth = c->depth, zlevel = c->zlevel, flags = c->filter;
    png_set_write_fn(png, c, write_fn, flush_fn);
    png_set_IHDR(png, info, width, height, bit_depth, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, zlevel);
    png_set_compression_strategy(png, c->strategy);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, flags);
    png_write_info(png, info);
    if (bit_depth == 16) {
        /* PNG stores big-endian samples. libpng copies each row before its
         * transformations, so the swap never touches the caller's pixels. */
        if (host_little_endian()) png_set_swap(png);
        for (uint32_t y = 0; y < height; y++)
            png_write_row(png, (png_const_bytep)(px + (size_t)y * width));
    } else {
        c->row8 = malloc(width);
        if (!c->row8) png_error(png, "out of memory");
        for (uint32_t y = 0; y < height; y++) {
            const uint16_t *r = px + (size_t)y * width;
            for (uint32_t x = 0; x < width; x++)
                c->row8[x] = r[x] > 255 ? 255 : (uint8_t)r[x];
            png_write_row(png, c->row8);
        }
    }
    png_write_end(png, NULL);
}

static int zlib_strategy(cx_png_strategy_t s) {
    switch (s) {
    case CX_PNG_STRATEGY_DEFAULT: return Z_DEFAULT_STRATEGY;
    case CX_PNG_STRATEGY_FILTERED: return Z_FILTERED;
    case CX_PNG_STRATEGY_HUFFMAN: return Z_HUFFMAN_ONLY;
    case CX_PNG_STRATEGY_RLE: return Z_RLE;
    }
    return -1;
}

int cx_png_strategy_parse(const char *name) {
    static const char *const names[] = {"default", "filtered", "huffman",
                                        "rle"};
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

int cx_png_encode_ex(const uint16_t *px, uint32_t width, uint32_t height,
                     int bit_depth, int zlevel, cx_png_filter_t filter,
                     cx_buf_t *out, cx_err_t *err) {
    cx_png_opts_t o = {zlevel, filter, CX_PNG_STRATEGY_DEFAULT};
    return cx_png_encode_opts(px, width, height, bit_depth, &o, out, err);
}

int cx_png_encode_opts(const uint16_t *px, uint32_t width, uint32_t height,
                       int bit_depth, const cx_png_opts_t *opts,
                       cx_buf_t *out, cx_err_t *err) {
    int zlevel = opts->zlevel, flags = filter_flags(opts->filter);
    int strategy = zlib_strategy(opts->strategy);
    if (!px || !out || width == 0 || height == 0 || width > PNG_USER_WIDTH_MAX ||
        height > PNG_USER_HEIGHT_MAX)
        return cx_err_set(err, CX_EINVAL, 0, "png encode: bad image %ux%u",
                          width, height);
    if (bit_depth != 8 && bit_depth != 16)
        return cx_err_set(err, CX_EINVAL, 0,
                          "png encode: bit depth %d is not 8 or 16", bit_depth);
    if (zlevel < 0 || zlevel > 9 || flags < 0 || strategy < 0)
        return cx_err_set(err, CX_EINVAL, 0,
                          "png encode: zlib level %d / filter %d / strategy "
                          "%d out of range",
                          zlevel, (int)opts->filter, (int)opts->strategy);

    cx__png_ctx c;
    memset(&c, 0, sizeof c);
    c.out = out;
    c.out_start = out->len;
    c.src = px;
    c.w = width;
    c.h = height;
    c.depth = bit_depth;
    c.zlevel = zlevel;
    c.filter = flags;
    c.strategy = strategy;
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
    if (!png) return cx_err_set(err, CX_ENOMEM, 0, "png encode: out of memory");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return cx_err_set(err, CX_ENOMEM, 0, "png encode: out of memory");
    }
    if (setjmp(c.jb)) {
        png_destroy_write_struct(&png, &info);
        free(c.row8);
        out->len = c.out_start; /* drop the partial image */
        return cx_err_set(err, strstr(c.msg, "memory") ? CX_ENOMEM : CX_EIO, 0,
                          "png encode: %s", c.msg);
    }
    encode_rows(png, info, &c);
    png_destroy_write_struct(&png, &info);
    free(c.row8);
    return 0;
}

int cx_png_encode(const uint16_t *px, uint32_t width, uint32_t height,
                  int bit_depth, int zlevel, cx_buf_t *out, cx_err_t *err) {
    /* UP: per 512x512 16-bit noisy image at level 1, ~31 ms and 0.816 of
     * raw size against ~32 ms and 0.917 for NONE; PAETH 38 ms / 0.818, ALL
     * 45 ms / 0.814 (2-core dev box, RelWithDebInfo). Level 0 stores. */
    return cx_png_encode_ex(px, width, height, bit_depth, zlevel,
                            CX_PNG_FILTER_UP, out, err);
}

static void read_fn(png_structp png, png_bytep data, png_size_t len) {
    cx__png_ctx *c = png_get_io_ptr(png);
    if (len > c->in_len - c->in_pos) png_error(png, "truncated PNG data");
    memcpy(data, c->in + c->in_pos, len);
    c->in_pos += len;
}

/* Runs under the caller's setjmp: every libpng error longjmps out of here,
 * and everything to free is in c. */
static void decode_rows(png_structp png, png_infop info, cx__png_ctx *c) {
    png_set_read_fn(png, c, read_fn);
    png_read_info(png, info);

    png_uint_32 w = 0, h = 0;
    int depth = 0, ctype = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    if (ctype != PNG_COLOR_TYPE_GRAY) {
        snprintf(c->msg, sizeof c->msg,
                 "colour type %d is not grayscale (0)", ctype);
        longjmp(c->jb, 1);
    }
    if (depth != 8 && depth != 16) {
        snprintf(c->msg, sizeof c->msg, "bit depth %d is not 8 or 16", depth);
        longjmp(c->jb, 1);
    }
    if (w == 0 || h == 0 || (size_t)w > c->max_pixels / h) {
        snprintf(c->msg, sizeof c->msg,
                 "image %ux%u exceeds the limit of %zu pixels", (unsigned)w,
                 (unsigned)h, c->max_pixels);
        longjmp(c->jb, 1);
    }
    if (depth == 16 && host_little_endian()) png_set_swap(png);
    if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    png_read_update_info(png, info);

    size_t npx = (size_t)w * h;
    c->px = malloc(npx * sizeof(uint16_t));
    c->rows = malloc((size_t)h * sizeof(png_bytep));
    if (depth == 8) c->tmp8 = malloc(npx);
    if (!c->px || !c->rows || (depth == 8 && !c->tmp8)) {
        snprintf(c->msg, sizeof c->msg, "out of memory for %ux%u",
                 (unsigned)w, (unsigned)h);
        longjmp(c->jb, 1);
    }
    for (size_t y = 0; y < h; y++)
        c->rows[y] = depth == 16 ? (png_bytep)(c->px + y * w) : c->tmp8 + y * w;
    png_read_image(png, c->rows);
    /* Reading to IEND checks the remaining chunks' CRCs and catches a file
     * cut short after the image data. */
    png_read_end(png, NULL);
    if (depth == 8)
        for (size_t i = 0; i < npx; i++) c->px[i] = c->tmp8[i];
    c->w = w;
    c->h = h;
    c->depth = depth;
}

int cx_png_decode(const void *data, size_t len, size_t max_pixels,
                  uint16_t **px, uint32_t *width, uint32_t *height,
                  int *bit_depth, cx_err_t *err) {
    if (!px || !width || !height)
        return cx_err_set(err, CX_EINVAL, 0, "png decode: NULL output");
    *px = NULL;
    if (!data || len < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0)
        return cx_err_set(err, CX_EDECODE, 0,
                          "png decode: not a PNG (bad signature, %zu bytes)",
                          len);
    if (max_pixels == 0) max_pixels = CX__PNG_DEFAULT_MAX_PIXELS;

    cx__png_ctx c;
    memset(&c, 0, sizeof c);
    c.in = data;
    c.in_len = len;
    c.max_pixels = max_pixels;
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
    if (!png) return cx_err_set(err, CX_ENOMEM, 0, "png decode: out of memory");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return cx_err_set(err, CX_ENOMEM, 0, "png decode: out of memory");
    }
    if (setjmp(c.jb)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(c.px);
        free(c.tmp8);
        free(c.rows);
        return cx_err_set(err,
                          strstr(c.msg, "out of memory") ? CX_ENOMEM
                                                         : CX_EDECODE,
                          0, "png decode: %s", c.msg);
    }
    decode_rows(png, info, &c);
    png_destroy_read_struct(&png, &info, NULL);
    free(c.tmp8);
    free(c.rows);
    *px = c.px;
    *width = c.w;
    *height = c.h;
    if (bit_depth) *bit_depth = c.depth;
    return 0;
}
