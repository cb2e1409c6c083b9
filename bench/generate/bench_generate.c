/* bench_generate: CPU generation throughput of a checkpoint.
 *
 *   bench_generate [--checkpoint NAME] [--dir DIR] [--baseline NAME|none]
 *                  [--width 512] [--height 512] [--steps 50] [--count N]
 *                  [--threads T] [--sampler ddim|euler|heun]
 *                  [--guidance W] [--eta E] [--bits 16]
 *
 * For the checkpoint (default ref-cxr-v0; files come from DIR or
 * $CASCADE_CHECKPOINT_DIR): the cold load time, then `count` images as one
 * batch on one thread (images/s per core, with the denoise / update /
 * quantise split), the same batch on T threads, and two images through the
 * single-image call; all three must give identical bytes. Then the same for
 * the baseline checkpoint (default ref-cxr-v0, the built-in path), and the
 * ratio of the two. One summary line per checkpoint starts with
 * "bench_generate:". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/gen.h"
#include "cascade/util.h"

typedef struct opts {
    const char *ckpt, *dir, *baseline;
    unsigned width, height, count, threads;
    cx_sample_params_t p;
    const char *sname;
} opts_t;

typedef struct result {
    double load_ms, mib, per_core, multi, denoise, update, quantise, eval_ms;
    unsigned threads;
    int identical;
} result_t;

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

/* Images alternate over the classes: class i % K for batch i. */
static int run_batches(const cx_model_t *m, const opts_t *o, unsigned threads,
                       uint16_t *out, cx_gen_timing_t *tm, cx_err_t *err)
{
    size_t d = (size_t)o->width * o->height, k = cx_model_class_count(m);
    uint32_t per = (o->count + (uint32_t)k - 1) / (uint32_t)k, done = 0;
    for (size_t c = 0; c < k && done < o->count; c++) {
        uint32_t n = o->count - done < per ? o->count - done : per;
        if (cx_generate_batch(m, c, &o->p, 1234, done, n, threads,
                              out + done * d, tm, err) != 0)
            return -1;
        done += n;
    }
    return 0;
}

static int bench_one(const char *name, const opts_t *o, result_t *r)
{
    cx_err_t err;
    double t0 = cx_mono_ms();
    cx_model_t *m = cx_model_open_named(o->dir, name, o->width, o->height,
                                        &err);
    if (!m) {
        fprintf(stderr, "bench_generate: %s\n", err.msg);
        return -1;
    }
    r->load_ms = cx_mono_ms() - t0;
    r->mib = cx_model_memory_bytes(m) / 1048576.0;
    size_t d = (size_t)o->width * o->height;
    uint16_t *a = malloc(o->count * d * sizeof *a);
    uint16_t *b = malloc(o->count * d * sizeof *b);
    uint16_t *one = malloc(d * sizeof *one);
    int rc = -1;
    if (!a || !b || !one) {
        fprintf(stderr, "bench_generate: out of memory\n");
        goto done;
    }
    cx_gen_timing_t tm = {0};
    t0 = cx_mono_ms();
    if (run_batches(m, o, 1, a, &tm, &err) != 0)
        goto fail;
    double single_s = (cx_mono_ms() - t0) / 1000.0;
    t0 = cx_mono_ms();
    if (run_batches(m, o, o->threads, b, NULL, &err) != 0)
        goto fail;
    double multi_s = (cx_mono_ms() - t0) / 1000.0;
    r->identical = memcmp(a, b, o->count * d * sizeof *a) == 0;
    /* the single-image call regenerates any image of the batch alone */
    size_t k = cx_model_class_count(m);
    uint32_t per = (o->count + (uint32_t)k - 1) / (uint32_t)k;
    uint32_t probe[2] = {0, o->count - 1};
    for (int i = 0; i < 2; i++) {
        if (cx_generate(m, probe[i] / per, &o->p, 1234, probe[i], one,
                        &err) != 0)
            goto fail;
        r->identical &= memcmp(one, a + probe[i] * d, d * sizeof *one) == 0;
    }
    double tot = tm.denoise_s + tm.update_s + tm.quantise_s;
    r->per_core = o->count / single_s;
    r->multi = o->count / multi_s;
    r->denoise = tm.denoise_s / tot;
    r->update = tm.update_s / tot;
    r->quantise = tm.quantise_s / tot;
    r->eval_ms = 1000 * tm.denoise_s / (double)tm.evals;
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "bench_generate: %s\n", err.msg);
done:
    free(a);
    free(b);
    free(one);
    cx_model_destroy(m);
    return rc;
}

static void print(const char *name, const opts_t *o, const result_t *r)
{
    printf("%s %ux%u: cold load %.0f ms, %.1f MiB; %s %u steps, guidance "
           "%g, eta %g, %d-bit\n",
           name, o->width, o->height, r->load_ms, r->mib, o->sname,
           o->p.steps, o->p.guidance_scale, o->p.eta, o->p.bit_depth);
    printf("  1 thread : %.3f s/image, %.2f images/s per core; denoise "
           "%.1f%% update %.1f%% quantise %.2f%% (%.3f ms per denoiser "
           "eval per image)\n",
           1 / r->per_core, r->per_core, 100 * r->denoise, 100 * r->update,
           100 * r->quantise, r->eval_ms);
    printf("  %u threads: %.2f images/s\n", o->threads, r->multi);
    printf("bench_generate: checkpoint=%s width=%u height=%u steps=%u "
           "sampler=%s guidance=%g count=%u threads=%u load_ms=%.0f "
           "per_core=%.2f images_per_s=%.2f denoise=%.3f update=%.3f "
           "quantise=%.4f identical=%s\n",
           name, o->width, o->height, o->p.steps, o->sname,
           o->p.guidance_scale, o->count, o->threads, r->load_ms,
           r->per_core, r->multi, r->denoise, r->update, r->quantise,
           r->identical ? "yes" : "NO");
}

static int parse(int argc, char **argv, opts_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return -1;
        if (strcmp(a, "--checkpoint") == 0)
            o->ckpt = v;
        else if (strcmp(a, "--dir") == 0)
            o->dir = v;
        else if (strcmp(a, "--baseline") == 0)
            o->baseline = strcmp(v, "none") == 0 ? NULL : v;
        else if (strcmp(a, "--width") == 0)
            o->width = (unsigned)atoi(v);
        else if (strcmp(a, "--height") == 0)
            o->height = (unsigned)atoi(v);
        else if (strcmp(a, "--steps") == 0)
            o->p.steps = (unsigned)atoi(v);
        else if (strcmp(a, "--count") == 0)
            o->count = (unsigned)atoi(v);
        else if (strcmp(a, "--threads") == 0)
            o->threads = (unsigned)atoi(v);
        else if (strcmp(a, "--guidance") == 0)
            o->p.guidance_scale = atof(v);
        else if (strcmp(a, "--eta") == 0)
            o->p.eta = atof(v);
        else if (strcmp(a, "--bits") == 0)
            o->p.bit_depth = atoi(v);
        else if (strcmp(a, "--sampler") == 0 && (o->p.sampler = sampler_of(v)))
            o->sname = v;
        else
            return -1;
        i++;
    }
    return o->count >= 1 && o->threads >= 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    opts_t o = {.ckpt = CX_CHECKPOINT_BUILTIN,
                .baseline = CX_CHECKPOINT_BUILTIN,
                .width = 512, .height = 512, .count = 16, .threads = 2,
                .p = {CX_SAMPLER_DDIM, 50, 1.0, 0.0, 16}, .sname = "ddim"};
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr,
                "usage: bench_generate [--checkpoint NAME] [--dir DIR] "
                "[--baseline NAME|none] [--width N] [--height N] "
                "[--steps N] [--count N] [--threads T] "
                "[--sampler ddim|euler|heun] [--guidance W] [--eta E] "
                "[--bits 8|16]\n");
        return 2;
    }
    result_t r, rb;
    if (bench_one(o.ckpt, &o, &r) != 0)
        return 1;
    print(o.ckpt, &o, &r);
    int ok = r.identical;
    if (o.baseline && strcmp(o.baseline, o.ckpt) != 0) {
        if (bench_one(o.baseline, &o, &rb) != 0)
            return 1;
        print(o.baseline, &o, &rb);
        ok &= rb.identical;
        printf("bench_generate: ratio %s/%s per_core=%.3f load=%.2f\n",
               o.ckpt, o.baseline, r.per_core / rb.per_core,
               r.load_ms / rb.load_ms);
    }
    return ok ? 0 : 1;
}
