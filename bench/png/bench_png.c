/* bench_png [--n N] [--size S] [--steps K] [--reps R]
 *
 * What a staged sample's PNG costs under each zlib level / strategy / row
 * filter: encode ms, decode ms (what the validator pays) and size, on
 * reference-generator output (512x512 16-bit by default). The baseline is
 * the previous default, level 1 with the default strategy and the UP
 * filter; each row prints its encode cost relative to it. The worker's
 * defaults (png_level, png_strategy) are chosen from this table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/gen.h"
#include "cascade/png16.h"
#include "cascade/util.h"

typedef struct variant {
    const char *name;
    cx_png_opts_t o;
} variant_t;

static const variant_t variants[] = {
    {"level1 default up (baseline)",
     {1, CX_PNG_FILTER_UP, CX_PNG_STRATEGY_DEFAULT}},
    {"level0 stored", {0, CX_PNG_FILTER_NONE, CX_PNG_STRATEGY_DEFAULT}},
    {"level1 huffman up", {1, CX_PNG_FILTER_UP, CX_PNG_STRATEGY_HUFFMAN}},
    {"level1 huffman sub", {1, CX_PNG_FILTER_SUB, CX_PNG_STRATEGY_HUFFMAN}},
    {"level1 huffman paeth", {1, CX_PNG_FILTER_PAETH, CX_PNG_STRATEGY_HUFFMAN}},
    {"level1 rle up", {1, CX_PNG_FILTER_UP, CX_PNG_STRATEGY_RLE}},
    {"level1 filtered up", {1, CX_PNG_FILTER_UP, CX_PNG_STRATEGY_FILTERED}},
    {"level6 default up", {6, CX_PNG_FILTER_UP, CX_PNG_STRATEGY_DEFAULT}},
};

static void die(const char *what, const cx_err_t *e) {
    fprintf(stderr, "bench_png: %s: %s\n", what, e->msg);
    exit(1);
}

int main(int argc, char **argv) {
    unsigned n = 8, size = 512, steps = 50, reps = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        unsigned v = (unsigned)atoi(argv[i + 1]);
        if (strcmp(argv[i], "--n") == 0) n = v;
        else if (strcmp(argv[i], "--size") == 0) size = v;
        else if (strcmp(argv[i], "--steps") == 0) steps = v;
        else if (strcmp(argv[i], "--reps") == 0) reps = v;
    }
    if (!n || !size || !steps || !reps) {
        fprintf(stderr, "bench_png: --n/--size/--steps/--reps must be > 0\n");
        return 2;
    }
    cx_err_t e;
    cx_model_t *m = cx_model_open("ref-cxr-v0", size, size, &e);
    if (!m) die("model", &e);
    size_t npx = (size_t)size * size, ncls = cx_model_class_count(m);
    uint16_t *imgs = malloc(n * npx * sizeof *imgs);
    if (!imgs) return 1;
    cx_sample_params_t sp = {CX_SAMPLER_DDIM, steps, 1.0, 0.0, 16};
    for (unsigned i = 0; i < n; i++)
        if (cx_generate(m, i % ncls, &sp, 7, i, imgs + i * npx, &e) < 0)
            die("generate", &e);

    printf("# PNG encode/decode, %ux%u 16-bit reference samples, %u images x "
           "%u reps, one thread\n",
           size, size, n, reps);
    printf("%-30s %10s %10s %10s %8s %9s\n", "variant", "encode_ms",
           "decode_ms", "KiB", "ratio", "vs_base");
    double base_ms = 0;
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        double enc = 0, dec = 0, bytes = 0;
        for (unsigned r = 0; r < reps; r++)
            for (unsigned i = 0; i < n; i++) {
                cx_buf_t b = {0};
                double t0 = cx_mono_ms();
                if (cx_png_encode_opts(imgs + i * npx, size, size, 16,
                                       &variants[v].o, &b, &e) < 0)
                    die("encode", &e);
                double t1 = cx_mono_ms();
                uint16_t *px;
                uint32_t w, h;
                int depth;
                if (cx_png_decode(b.data, b.len, 0, &px, &w, &h, &depth,
                                  &e) < 0)
                    die("decode", &e);
                double t2 = cx_mono_ms();
                if (memcmp(px, imgs + i * npx, npx * sizeof *px) != 0) {
                    fprintf(stderr, "bench_png: %s does not round-trip\n",
                            variants[v].name);
                    return 1;
                }
                free(px);
                enc += t1 - t0;
                dec += t2 - t1;
                bytes += (double)b.len;
                cx_buf_free(&b);
            }
        double k = (double)n * reps;
        if (v == 0) base_ms = enc / k;
        printf("%-30s %10.2f %10.2f %10.0f %8.3f %8.2fx\n", variants[v].name,
               enc / k, dec / k, bytes / k / 1024.0,
               bytes / k / (double)(npx * 2), base_ms / (enc / k));
    }
    free(imgs);
    cx_model_destroy(m);
    return 0;
}
