#include <check.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/png16.h"
#include "cx_testenv.h"

static uint64_t rng = 88172645463325252ULL;
static uint16_t rnd16(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint16_t)(rng >> 16);
}

static uint16_t *noise(uint32_t w, uint32_t h, uint16_t mask) {
    uint16_t *px = calloc((size_t)w * h, sizeof *px);
    for (size_t i = 0; i < (size_t)w * h; i++) px[i] = rnd16() & mask;
    return px;
}

static void roundtrip(uint32_t w, uint32_t h, int depth, int level,
                      cx_png_filter_t filter) {
    uint16_t *px = noise(w, h, depth == 8 ? 0xff : 0xffff);
    uint16_t *copy = malloc((size_t)w * h * sizeof *copy);
    memcpy(copy, px, (size_t)w * h * sizeof *px);
    cx_buf_t png = {0};
    cx_err_t err = {0};
    ck_assert_msg(cx_png_encode_ex(px, w, h, depth, level, filter, &png, &err) == 0,
                  "%s", err.msg);
    /* The caller's pixels are untouched (no in-place byte swap). */
    ck_assert_int_eq(memcmp(px, copy, (size_t)w * h * sizeof *px), 0);
    uint16_t *out = NULL;
    uint32_t ow = 0, oh = 0;
    int od = 0;
    ck_assert_msg(cx_png_decode(png.data, png.len, 0, &out, &ow, &oh, &od, &err) == 0,
                  "%ux%u/%d: %s", w, h, depth, err.msg);
    ck_assert_uint_eq(ow, w);
    ck_assert_uint_eq(oh, h);
    ck_assert_int_eq(od, depth);
    ck_assert_int_eq(memcmp(out, px, (size_t)w * h * sizeof *px), 0);
    free(out);
    free(px);
    free(copy);
    cx_buf_free(&png);
}

START_TEST(test_png_roundtrip) {
    static const uint32_t sizes[][2] = {{512, 512}, {1, 1}, {3, 7}, {13, 1}, {1, 9}, {255, 17}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        roundtrip(sizes[i][0], sizes[i][1], 16, 1, CX_PNG_FILTER_NONE);
        roundtrip(sizes[i][0], sizes[i][1], 8, 6, CX_PNG_FILTER_PAETH);
    }
    for (int level = 0; level <= 9; level++)
        for (int f = CX_PNG_FILTER_NONE; f <= CX_PNG_FILTER_ALL; f++)
            roundtrip(31, 5, level % 2 ? 8 : 16, level, (cx_png_filter_t)f);
}
END_TEST

START_TEST(test_png_known_values_and_append) {
    /* 16-bit extremes and byte order: 0x0102 must come back 0x0102. */
    uint16_t px[4] = {0, 0xffff, 0x0102, 0x8000};
    cx_buf_t b = {0};
    cx_buf_append(&b, "HEAD", 4);
    ck_assert_int_eq(cx_png_encode(px, 2, 2, 16, 9, &b, NULL), 0);
    ck_assert_int_eq(memcmp(b.data, "HEAD", 4), 0); /* appended, not replaced */
    /* PNG stores big-endian: the first pixel row starts after the filter byte. */
    uint16_t *out;
    uint32_t w, h;
    int d;
    ck_assert_int_eq(cx_png_decode(b.data + 4, b.len - 4, 0, &out, &w, &h, &d, NULL), 0);
    ck_assert_uint_eq(out[2], 0x0102);
    ck_assert_uint_eq(out[1], 0xffff);
    free(out);
    cx_buf_free(&b);
    /* 8-bit: values above 255 saturate. */
    uint16_t big[2] = {300, 7};
    ck_assert_int_eq(cx_png_encode(big, 2, 1, 8, 1, &b, NULL), 0);
    ck_assert_int_eq(cx_png_decode(b.data, b.len, 0, &out, &w, &h, &d, NULL), 0);
    ck_assert_uint_eq(out[0], 255);
    ck_assert_uint_eq(out[1], 7);
    free(out);
    cx_buf_free(&b);
}
END_TEST

START_TEST(test_png_encode_bad_args) {
    uint16_t px[4] = {0};
    cx_buf_t b = {0};
    cx_err_t err = {0};
    ck_assert_int_eq(cx_png_encode(px, 0, 2, 16, 1, &b, &err), -1);
    ck_assert_int_eq(err.code, CX_EINVAL);
    ck_assert_int_eq(cx_png_encode(px, 2, 2, 12, 1, &b, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "bit depth 12"));
    ck_assert_int_eq(cx_png_encode(px, 2, 2, 16, 10, &b, &err), -1);
    ck_assert_int_eq(cx_png_encode_ex(px, 2, 2, 16, 1, (cx_png_filter_t)99, &b, &err), -1);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

/* Every strategy and filter decodes back to the same pixels; HUFFMAN on a
 * smooth ramp with mild noise is smaller than storing it. */
START_TEST(test_png_strategies) {
    uint32_t w = 96, h = 64;
    uint16_t *px = malloc((size_t)w * h * sizeof *px);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            px[y * w + x] = (uint16_t)(20000 + 150 * x + 90 * y +
                                       (rnd16() & 0x3f));
    const char *names[] = {"default", "filtered", "huffman", "rle"};
    size_t stored = 0;
    for (int f = CX_PNG_FILTER_NONE; f <= CX_PNG_FILTER_ALL; f++)
        for (int s = 0; s < 4; s++) {
            ck_assert_int_eq(cx_png_strategy_parse(names[s]), s);
            for (int level = 0; level <= 1; level++) {
                cx_png_opts_t o = {level, (cx_png_filter_t)f,
                                   (cx_png_strategy_t)s};
                cx_buf_t b = {0};
                cx_err_t e;
                ck_assert_int_eq(cx_png_encode_opts(px, w, h, 16, &o, &b, &e),
                                 0);
                uint16_t *out;
                uint32_t ow, oh;
                int depth;
                ck_assert_int_eq(cx_png_decode(b.data, b.len, 0, &out, &ow,
                                               &oh, &depth, &e),
                                 0);
                ck_assert_mem_eq(out, px, (size_t)w * h * sizeof *px);
                if (level == 0 && f == CX_PNG_FILTER_NONE && s == 0)
                    stored = b.len;
                if (level == 1 && f == CX_PNG_FILTER_UP &&
                    s == CX_PNG_STRATEGY_HUFFMAN)
                    ck_assert_uint_lt(b.len, stored);
                free(out);
                cx_buf_free(&b);
            }
        }
    ck_assert_int_eq(cx_png_strategy_parse("zstd"), -1);
    ck_assert_int_eq(cx_png_strategy_parse(NULL), -1);
    cx_png_opts_t bad = {1, CX_PNG_FILTER_UP, (cx_png_strategy_t)9};
    cx_buf_t b = {0};
    cx_err_t e;
    ck_assert_int_eq(cx_png_encode_opts(px, w, h, 16, &bad, &b, &e), -1);
    ck_assert_int_eq(e.code, CX_EINVAL);
    free(px);
}
END_TEST

static cx_buf_t good_png(uint32_t w, uint32_t h, int depth) {
    uint16_t *px = noise(w, h, depth == 8 ? 0xff : 0xffff);
    cx_buf_t b = {0};
    ck_assert_int_eq(cx_png_encode(px, w, h, depth, 6, &b, NULL), 0);
    free(px);
    return b;
}

static void expect_decode_fail(const void *data, size_t len, const char *what,
                               const char *msgpart) {
    uint16_t *out = (uint16_t *)0x1;
    uint32_t w, h;
    int d;
    cx_err_t err = {0};
    ck_assert_msg(cx_png_decode(data, len, 0, &out, &w, &h, &d, &err) == -1,
                  "%s decoded", what);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(err.code, CX_EDECODE);
    ck_assert_msg(err.msg[0] != 0, "%s: no message", what);
    if (msgpart)
        ck_assert_msg(strstr(err.msg, msgpart), "%s: '%s' lacks '%s'", what,
                      err.msg, msgpart);
}

START_TEST(test_png_truncated) {
    cx_buf_t b = good_png(64, 48, 16);
    size_t cuts[] = {0, 7, 8, 20, 33, 40, b.len / 3, b.len / 2, b.len - 13,
                     b.len - 12, b.len - 5, b.len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        char what[32];
        snprintf(what, sizeof what, "cut at %zu", cuts[i]);
        expect_decode_fail(b.data, cuts[i], what, NULL);
    }
    cx_buf_free(&b);
}
END_TEST

/* Offset of the first byte of the named chunk's data. */
static size_t chunk_data(const cx_buf_t *b, const char *type) {
    size_t off = 8;
    while (off + 8 <= b->len) {
        uint32_t n = (uint32_t)b->data[off] << 24 | b->data[off + 1] << 16 |
                     b->data[off + 2] << 8 | b->data[off + 3];
        if (memcmp(b->data + off + 4, type, 4) == 0) return off + 8;
        off += 12 + n;
    }
    ck_abort_msg("no %s chunk", type);
    return 0;
}

/* Length of the chunk whose data starts at off. */
static uint32_t chunk_len(const cx_buf_t *b, size_t off) {
    const uint8_t *p = b->data + off - 8;
    return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

START_TEST(test_png_bad_crc) {
    const char *chunks[] = {"IHDR", "IDAT"};
    for (size_t i = 0; i < 2; i++) {
        /* A flipped CRC over intact data: only the checksum can catch it. */
        cx_buf_t b = good_png(40, 30, 16);
        size_t off = chunk_data(&b, chunks[i]);
        b.data[off + chunk_len(&b, off)] ^= 0x55;
        expect_decode_fail(b.data, b.len, chunks[i], "CRC");
        cx_buf_free(&b);
        /* Flipped data: the CRC or the inflater rejects it, never silence. */
        b = good_png(40, 30, 16);
        off = chunk_data(&b, chunks[i]);
        b.data[off + 2] ^= 0x55;
        expect_decode_fail(b.data, b.len, chunks[i], NULL);
        cx_buf_free(&b);
    }
    /* The IEND CRC is read only if decoding goes to the end. */
    cx_buf_t b = good_png(40, 30, 8);
    b.data[b.len - 1] ^= 0x01;
    expect_decode_fail(b.data, b.len, "IEND crc", "CRC");
    cx_buf_free(&b);
}
END_TEST

START_TEST(test_png_garbage) {
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)rnd16();
    expect_decode_fail(junk, sizeof junk, "garbage", "not a PNG");
    expect_decode_fail("", 0, "empty", "not a PNG");
    expect_decode_fail(NULL, 0, "NULL", "not a PNG");
    static const uint8_t sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    memcpy(junk, sig, 8);
    expect_decode_fail(junk, sizeof junk, "signature then garbage", NULL);
}
END_TEST

typedef struct {
    cx_buf_t *b;
} wctx;
static void wfn(png_structp p, png_bytep d, png_size_t n) {
    cx_buf_append(((wctx *)png_get_io_ptr(p))->b, d, n);
}
static void ffn(png_structp p) { (void)p; }

/* Writes a 4x4 PNG of any colour type/depth straight through libpng. */
static cx_buf_t other_png(int ctype, int depth) {
    cx_buf_t b = {0};
    wctx c = {&b};
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(p);
    ck_assert_int_eq(setjmp(png_jmpbuf(p)), 0);
    png_set_write_fn(p, &c, wfn, ffn);
    png_set_IHDR(p, info, 4, 4, depth, ctype, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[2] = {{0, 0, 0}, {255, 255, 255}};
        png_set_PLTE(p, info, pal, 2);
    }
    png_write_info(p, info);
    uint8_t row[64] = {0};
    for (int y = 0; y < 4; y++) png_write_row(p, row);
    png_write_end(p, NULL);
    png_destroy_write_struct(&p, &info);
    return b;
}

START_TEST(test_png_other_types) {
    struct { int ctype, depth; const char *msg; } cases[] = {
        {PNG_COLOR_TYPE_RGB, 8, "colour type 2"},
        {PNG_COLOR_TYPE_RGB, 16, "colour type 2"},
        {PNG_COLOR_TYPE_PALETTE, 8, "colour type 3"},
        {PNG_COLOR_TYPE_GRAY_ALPHA, 8, "colour type 4"},
        {PNG_COLOR_TYPE_RGB_ALPHA, 8, "colour type 6"},
        {PNG_COLOR_TYPE_GRAY, 4, "bit depth 4"},
        {PNG_COLOR_TYPE_GRAY, 1, "bit depth 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cx_buf_t b = other_png(cases[i].ctype, cases[i].depth);
        expect_decode_fail(b.data, b.len, cases[i].msg, cases[i].msg);
        cx_buf_free(&b);
    }
    /* Plain 8-bit gray written by another encoder decodes. */
    cx_buf_t b = other_png(PNG_COLOR_TYPE_GRAY, 8);
    uint16_t *out;
    uint32_t w, h;
    int d;
    ck_assert_int_eq(cx_png_decode(b.data, b.len, 0, &out, &w, &h, &d, NULL), 0);
    ck_assert_uint_eq(w, 4);
    free(out);
    cx_buf_free(&b);
}
END_TEST

START_TEST(test_png_max_pixels) {
    cx_buf_t b = good_png(100, 100, 16);
    uint16_t *out = NULL;
    uint32_t w, h;
    cx_err_t err = {0};
    ck_assert_int_eq(cx_png_decode(b.data, b.len, 9999, &out, &w, &h, NULL, &err), -1);
    ck_assert_int_eq(err.code, CX_EDECODE);
    ck_assert_ptr_nonnull(strstr(err.msg, "exceeds the limit of 9999 pixels"));
    ck_assert_int_eq(cx_png_decode(b.data, b.len, 10000, &out, &w, &h, NULL, &err), 0);
    free(out);
    cx_buf_free(&b);
}
END_TEST

int main(void) {
    Suite *s = suite_create("png16");
    TCase *tc = tcase_create("png16");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_png_roundtrip);
    tcase_add_test(tc, test_png_known_values_and_append);
    tcase_add_test(tc, test_png_encode_bad_args);
    tcase_add_test(tc, test_png_strategies);
    tcase_add_test(tc, test_png_truncated);
    tcase_add_test(tc, test_png_bad_crc);
    tcase_add_test(tc, test_png_garbage);
    tcase_add_test(tc, test_png_other_types);
    tcase_add_test(tc, test_png_max_pixels);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
