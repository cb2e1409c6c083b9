/* bench_gpu: images per minute of the CUDA generator on one GPU.
 *
 *   bench_gpu [--checkpoint NAME] [--dir DIR] [--size 512] [--steps 50]
 *             [--batch 64] [--count 1024] [--sampler ddim|euler|heun]
 *             [--guidance W] [--eta E] [--device N] [--check N]
 *
 * Loads the checkpoint (default ref-cxr-v0) and uploads it (timed: the
 * cold load), runs one batch to warm up, then generates `count` images of
 * size x size in calls of `batch` and reports images/min, ms per image and
 * the achieved fraction of the GPU's peak memory bandwidth (bytes the
 * kernels and GEMMs must move, estimated per operation, over the time).
 * Then `check` images (default 8) are generated on the CPU too and the
 * largest difference is printed. Without a GPU it says so and exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/gen.h"
#include "cascade/gen_cuda.h"
#include "cascade/util.h"

typedef struct opts {
    const char *ckpt, *dir;
    unsigned size, batch, count, device, check;
    cx_sample_params_t p;
    const char *sname;
} opts_t;

static int parse(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.ckpt = CX_CHECKPOINT_BUILTIN, .size = 512, .batch = 64,
                  .count = 1024, .check = 8, .sname = "ddim",
                  .p = {.sampler = CX_SAMPLER_DDIM, .steps = 50,
                        .guidance_scale = 1.0, .bit_depth = 16}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || !v)
            return -1;
        i++;
        if (strcmp(a, "--checkpoint") == 0) o->ckpt = v;
        else if (strcmp(a, "--dir") == 0) o->dir = v;
        else if (strcmp(a, "--size") == 0) o->size = (unsigned)atoi(v);
        else if (strcmp(a, "--steps") == 0) o->p.steps = (uint32_t)atoi(v);
        else if (strcmp(a, "--batch") == 0) o->batch = (unsigned)atoi(v);
        else if (strcmp(a, "--count") == 0) o->count = (unsigned)atoi(v);
        else if (strcmp(a, "--device") == 0) o->device = (unsigned)atoi(v);
        else if (strcmp(a, "--check") == 0) o->check = (unsigned)atoi(v);
        else if (strcmp(a, "--guidance") == 0) o->p.guidance_scale = atof(v);
        else if (strcmp(a, "--eta") == 0) o->p.eta = atof(v);
        else if (strcmp(a, "--sampler") == 0) {
            o->sname = v;
            o->p.sampler = strcmp(v, "euler") == 0  ? CX_SAMPLER_EULER
                           : strcmp(v, "heun") == 0 ? CX_SAMPLER_HEUN
                           : strcmp(v, "ddim") == 0 ? CX_SAMPLER_DDIM
                                                    : 0;
        } else
            return -1;
    }
    return o->size && o->batch && o->count && o->p.sampler ? 0 : -1;
}

int main(int argc, char **argv)
{
    opts_t o;
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: see the comment at the top of bench_gpu.c\n");
        return 2;
    }
    if (cx_cuda_device_count() == 0) {
        printf("bench_gpu: no GPU on this machine, nothing measured\n");
        return 0;
    }
    cx_err_t err = {0};
    char name[128] = "";
    double peak = 0;
    if (cx_cuda_device_info((int)o.device, name, sizeof name, &peak, &err)) {
        fprintf(stderr, "bench_gpu: %s\n", err.msg);
        return 1;
    }
    double t0 = cx_mono_ms();
    cx_model_t *m = cx_model_open_named(o.dir, o.ckpt, o.size, o.size, &err);
    if (!m) {
        fprintf(stderr, "bench_gpu: %s\n", err.msg);
        return 1;
    }
    double t1 = cx_mono_ms();
    cx_cuda_gen_t *g = cx_cuda_gen_new(m, (int)o.device, o.batch, &err);
    if (!g) {
        fprintf(stderr, "bench_gpu: %s\n", err.msg);
        cx_model_destroy(m);
        return 1;
    }
    double t2 = cx_mono_ms();
    size_t d = (size_t)o.size * o.size, k = cx_model_class_count(m);
    uint16_t *out = malloc((size_t)o.batch * d * 2);
    uint64_t *seeds = malloc(o.batch * sizeof *seeds);
    uint32_t *idx = malloc(o.batch * sizeof *idx);
    int rc = 1;
    if (!out || !seeds || !idx)
        goto done;
    for (unsigned i = 0; i < o.batch; i++)
        seeds[i] = 1234;
    /* warm-up: cuBLAS picks its kernels, the caches fill */
    for (unsigned i = 0; i < o.batch; i++)
        idx[i] = i;
    if (cx_cuda_generate(g, 0, &o.p, seeds, idx, o.batch, out, &err))
        goto fail;
    unsigned calls = (o.count + o.batch - 1) / o.batch;
    double t3 = cx_mono_ms();
    for (unsigned c = 0; c < calls; c++) {
        for (unsigned i = 0; i < o.batch; i++)
            idx[i] = c * o.batch + i;
        if (cx_cuda_generate(g, c % k, &o.p, seeds, idx, o.batch, out, &err))
            goto fail;
    }
    double sec = (cx_mono_ms() - t3) / 1000.0;
    double images = (double)calls * o.batch;
    double bytes = 0;
    for (unsigned c = 0; c < calls; c++)
        bytes += cx_cuda_batch_traffic(g, c % k, &o.p);
    printf("gpu: %s, peak memory bandwidth %.0f GB/s\n", name, peak / 1e9);
    printf("checkpoint %s %ux%u: host load %.0f ms, upload %.0f ms, "
           "%.0f MiB on the GPU\n",
           o.ckpt, o.size, o.size, t1 - t0, t2 - t1,
           cx_cuda_gen_memory_bytes(g) / 1048576.0);
    printf("bench_gpu: %.0f images/min (%.3f ms/image), %s %u steps, "
           "guidance %g, batch %u, %u images; memory traffic %.0f GB/s = "
           "%.1f%% of peak\n",
           images / sec * 60.0, sec * 1000.0 / images, o.sname, o.p.steps,
           o.p.guidance_scale, o.batch, (unsigned)images, bytes / sec / 1e9,
           100.0 * bytes / sec / peak);
    /* a few images against the CPU twin */
    unsigned n = o.check < o.batch ? o.check : o.batch;
    if (n) {
        uint16_t *cpu = malloc((size_t)n * d * 2);
        for (unsigned i = 0; i < n; i++)
            idx[i] = i;
        if (!cpu || cx_cuda_generate(g, 0, &o.p, seeds, idx, n, out, &err) ||
            cx_generate_batch(m, 0, &o.p, 1234, 0, n, 0, cpu, NULL, &err)) {
            free(cpu);
            goto fail;
        }
        int mx = 0;
        for (size_t i = 0; i < (size_t)n * d; i++) {
            int df = abs((int)cpu[i] - (int)out[i]);
            mx = df > mx ? df : mx;
        }
        printf("bench_gpu: %u images vs the CPU twin: max difference %d of "
               "%u levels\n", n, mx, (1u << o.p.bit_depth) - 1u);
        free(cpu);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "bench_gpu: %s\n", err.msg);
done:
    free(out);
    free(seeds);
    free(idx);
    cx_cuda_gen_destroy(g);
    cx_model_destroy(m);
    return rc;
}
