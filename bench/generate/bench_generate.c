/* bench_generate: CPU generation throughput of the reference model.
 *
 *   bench_generate [--width 512] [--height 512] [--steps 50] [--count N]
 *                  [--threads T] [--sampler ddim|euler|heun]
 *                  [--guidance W] [--bits 16]
 *
 * Runs `count` images on one thread (with the denoise / update / quantise
 * split), then the same images on a cx_pool of T threads, checks both runs
 * produced identical bytes, and prints one summary line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/gen.h"
#include "cascade/pool.h"
#include "cascade/util.h"

typedef struct run {
    const cx_model_t *m;
    cx_sample_params_t p;
    uint16_t *out; /* count images */
    int failed;
} run_t;

static void gen_one(void *ctx, size_t i)
{
    run_t *r = ctx;
    size_t d = (size_t)cx_model_width(r->m) * cx_model_height(r->m);
    if (cx_generate(r->m, i % cx_model_class_count(r->m), &r->p, 1234,
                    (uint32_t)i, r->out + i * d, NULL) != 0)
        r->failed = 1;
}

static int sampler_of(const char *s)
{
    if (strcmp(s, "ddim") == 0)
        return CX_SAMPLER_DDIM;
    if (strcmp(s, "euler") == 0)
        return CX_SAMPLER_EULER;
    if (strcmp(s, "heun") == 0)
        return CX_SAMPLER_HEUN;
    return 0;
}

int main(int argc, char **argv)
{
    unsigned width = 512, height = 512, steps = 50, count = 8, threads = 0;
    double guidance = 1.0;
    int bits = 16, sampler = CX_SAMPLER_DDIM;
    const char *sname = "ddim";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            goto usage;
        if (strcmp(a, "--width") == 0)
            width = (unsigned)atoi(v);
        else if (strcmp(a, "--height") == 0)
            height = (unsigned)atoi(v);
        else if (strcmp(a, "--steps") == 0)
            steps = (unsigned)atoi(v);
        else if (strcmp(a, "--count") == 0)
            count = (unsigned)atoi(v);
        else if (strcmp(a, "--threads") == 0)
            threads = (unsigned)atoi(v);
        else if (strcmp(a, "--guidance") == 0)
            guidance = atof(v);
        else if (strcmp(a, "--bits") == 0)
            bits = atoi(v);
        else if (strcmp(a, "--sampler") == 0 && (sampler = sampler_of(v)))
            sname = v;
        else
            goto usage;
        i++;
    }
    if (count < 1)
        goto usage;

    cx_err_t err;
    double t0 = cx_mono_ms();
    cx_model_t *m = cx_model_open("ref-cxr-v0", width, height, &err);
    if (!m) {
        fprintf(stderr, "bench_generate: %s\n", err.msg);
        return 1;
    }
    double open_ms = cx_mono_ms() - t0;
    cx_pool_t *pool = cx_pool_new(threads, &err);
    if (!pool) {
        fprintf(stderr, "bench_generate: %s\n", err.msg);
        cx_model_destroy(m);
        return 1;
    }
    threads = cx_pool_size(pool);
    size_t d = (size_t)width * height;
    uint16_t *a = malloc(count * d * sizeof *a);
    uint16_t *b = malloc(count * d * sizeof *b);
    if (!a || !b) {
        fprintf(stderr, "bench_generate: out of memory\n");
        return 1;
    }
    cx_sample_params_t p = {sampler, steps, guidance, 0.0, bits};

    /* one thread, with the phase split */
    cx_gen_timing_t tm = {0};
    t0 = cx_mono_ms();
    for (unsigned i = 0; i < count; i++)
        if (cx_generate_timed(m, i % cx_model_class_count(m), &p, 1234, i,
                              a + i * d, &tm, &err) != 0) {
            fprintf(stderr, "bench_generate: %s\n", err.msg);
            return 1;
        }
    double single_s = (cx_mono_ms() - t0) / 1000.0;

    run_t r = {m, p, b, 0};
    t0 = cx_mono_ms();
    cx_pool_for(pool, count, gen_one, &r);
    double multi_s = (cx_mono_ms() - t0) / 1000.0;
    int same = !r.failed && memcmp(a, b, count * d * sizeof *a) == 0;

    double single_ips = count / single_s, multi_ips = count / multi_s;
    double tot = tm.denoise_s + tm.update_s + tm.quantise_s;
    printf("model %ux%u open %.0f ms, %.1f MiB; %s %u steps, guidance %g, "
           "%d-bit\n",
           width, height, open_ms, cx_model_memory_bytes(m) / 1048576.0,
           sname, steps, guidance, bits);
    printf("1 thread : %.3f s/image, %.2f images/s; denoise %.1f%% update "
           "%.1f%% quantise %.2f%% (%.2f ms per denoiser eval)\n",
           single_s / count, single_ips, 100 * tm.denoise_s / tot,
           100 * tm.update_s / tot, 100 * tm.quantise_s / tot,
           1000 * tm.denoise_s / (double)tm.evals);
    printf("%u threads: %.3f s/image, %.2f images/s, %.2f per thread\n",
           threads, multi_s / count, multi_ips, multi_ips / threads);
    printf("bench_generate: width=%u height=%u steps=%u sampler=%s count=%u "
           "threads=%u images_per_s=%.2f per_core=%.2f single_thread=%.2f "
           "identical=%s\n",
           width, height, steps, sname, count, threads, multi_ips,
           multi_ips / threads, single_ips, same ? "yes" : "NO");
    free(a);
    free(b);
    cx_pool_destroy(pool);
    cx_model_destroy(m);
    return same ? 0 : 1;

usage:
    fprintf(stderr, "usage: bench_generate [--width N] [--height N] "
                    "[--steps N] [--count N] [--threads T] "
                    "[--sampler ddim|euler|heun] [--guidance W] "
                    "[--bits 8|16]\n");
    return 2;
}
