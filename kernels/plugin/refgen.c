/* The reference generator (cascade/gen.h) as a plug-in
 * (cascade/generator_abi.h). Built twice from this file:
 *   cascade-refgen.so       "refgen",      device "cpu": cx_generate_batch
 *                           on args->threads threads per call, and calls
 *                           may run concurrently (the worker runs one
 *                           single-threaded call per sample on its pool);
 *   cascade-refgen-cuda.so  "refgen-cuda", devices "cuda:N": the CUDA twin
 *                           (CX_REFGEN_CUDA, kernels/cuda).
 * Checkpoints: the built-in name ref-cxr-v0 (no file), or a path to a
 * <name>.cxck file (docs/CHECKPOINT.md) whose header checks out. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/gen.h"
#include "cascade/generator_abi.h"
#ifdef CX_REFGEN_CUDA
#include "cascade/gen_cuda.h"
#define RG_NAME "refgen-cuda"
#else
#define RG_NAME "refgen"
#endif

#define RG_GROUP_SCRATCH (8u * 3u) /* images of scratch per CPU thread */

/* The ABI's sampler numbers are gen.h's (and the WorkUnit's). */
_Static_assert((int)CX_GENPLUG_DDIM == (int)CX_SAMPLER_DDIM &&
                   (int)CX_GENPLUG_EULER == (int)CX_SAMPLER_EULER &&
                   (int)CX_GENPLUG_HEUN == (int)CX_SAMPLER_HEUN,
               "sampler numbering");

struct cx_genplug_gen {
    cx_model_t *model; /* CPU; NULL once uploaded to a GPU */
#ifdef CX_REFGEN_CUDA
    cx_cuda_gen_t *cuda;
#endif
    uint32_t threads, npix, nclasses;
    uint64_t bytes;
    char (*names)[64];
};

static _Thread_local char rg_err[512];

static int fail(char *err, size_t len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t len, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rg_err, sizeof rg_err, fmt, ap);
    va_end(ap);
    if (err && len)
        snprintf(err, len, "%s", rg_err);
    return code;
}

static int code_of(const cx_err_t *e)
{
    switch (e->code) {
    case CX_ENOMEM: return CX_GENPLUG_ENOMEM;
    case CX_ENOENT:
    case CX_EIO: return CX_GENPLUG_EIO;
    case CX_EMODEL: return CX_GENPLUG_ECORRUPT;
    default: return CX_GENPLUG_EINVAL;
    }
}

/* "cuda:N" -> N; -1 when device is not one this build runs on. */
static int device_index(const char *device)
{
    if (!device)
        return -1;
#ifdef CX_REFGEN_CUDA
    char *end;
    if (strncmp(device, "cuda:", 5) != 0 || !device[5])
        return -1;
    long n = strtol(device + 5, &end, 10);
    return *end == '\0' && n >= 0 && n < 1024 ? (int)n : -1;
#else
    return strcmp(device, "cpu") == 0 ? 0 : -1;
#endif
}

/* A checkpoint argument as (dir, name): the built-in name, or a path
 * <dir>/<name>.cxck. 0, or -1 when it is neither. */
static int split(const char *ckpt, char *dir, size_t dlen, char *name,
                 size_t nlen)
{
    if (strcmp(ckpt, CX_CHECKPOINT_BUILTIN) == 0) {
        snprintf(dir, dlen, ".");
        snprintf(name, nlen, "%s", ckpt);
        return 0;
    }
    size_t n = strlen(ckpt), ext = strlen(CX_CHECKPOINT_EXT);
    const char *slash = strrchr(ckpt, '/');
    if (!slash || n <= ext || strcmp(ckpt + n - ext, CX_CHECKPOINT_EXT) != 0)
        return -1;
    size_t dl = (size_t)(slash - ckpt), nl = n - ext - dl - 1;
    if (dl == 0 || dl >= dlen || nl == 0 || nl >= nlen)
        return -1;
    memcpy(dir, ckpt, dl);
    dir[dl] = '\0';
    memcpy(name, slash + 1, nl);
    name[nl] = '\0';
    return 0;
}

static int rg_probe(const char *ckpt, const char *device)
{
    char dir[4096], name[256];
    cx_checkpoint_info_t info;
    if (!ckpt || device_index(device) < 0 ||
        split(ckpt, dir, sizeof dir, name, sizeof name) != 0)
        return 0;
    if (strcmp(name, CX_CHECKPOINT_BUILTIN) == 0 &&
        strcmp(ckpt, CX_CHECKPOINT_BUILTIN) == 0)
        return 1;
    return cx_checkpoint_probe(dir, name, 0, 0, &info, NULL) == 0;
}

static int rg_device_memory(const char *device, uint64_t *total,
                            uint64_t *free_bytes, char *err, size_t elen)
{
    int dev = device_index(device);
    if (dev < 0)
        return fail(err, elen, CX_GENPLUG_EDEVICE, RG_NAME " does not run "
                    "on %s", device ? device : "(null)");
#ifdef CX_REFGEN_CUDA
    cx_err_t e = {0};
    if (cx_cuda_device_memory(dev, total, free_bytes, &e) != 0)
        return fail(err, elen, CX_GENPLUG_EDEVICE, "%s", e.msg);
#else
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES);
    long psz = sysconf(_SC_PAGESIZE);
    *total = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
    *free_bytes = avail > 0 && psz > 0 ? (uint64_t)avail * (uint64_t)psz : 0;
#endif
    return 0;
}

static uint32_t threads_of(const cx_genplug_args_t *a)
{
    if (a->threads)
        return a->threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (uint32_t)n : 1u;
}

/* The header's facts, with the requested size checked against a file's. */
static int info_of(const cx_genplug_args_t *a, char *dir, size_t dlen,
                   char *name, size_t nlen, cx_checkpoint_info_t *info,
                   char *err, size_t elen)
{
    if (!a || a->struct_size < sizeof *a || !a->checkpoint || !a->device)
        return fail(err, elen, CX_GENPLUG_EINVAL, RG_NAME ": bad arguments");
    if (device_index(a->device) < 0)
        return fail(err, elen, CX_GENPLUG_EDEVICE, RG_NAME " does not run "
                    "on %s", a->device);
    if (split(a->checkpoint, dir, dlen, name, nlen) != 0)
        return fail(err, elen, CX_GENPLUG_EINVAL, "%s: not %s nor a .cxck "
                    "file path", a->checkpoint, CX_CHECKPOINT_BUILTIN);
    cx_err_t e = {0};
    if (cx_checkpoint_probe(dir, name, a->width, a->height, info, &e) != 0)
        return fail(err, elen, code_of(&e), "%s", e.msg);
    if (info->width != a->width || info->height != a->height)
        return fail(err, elen, CX_GENPLUG_EDIMS, "checkpoint %s is %ux%u, "
                    "the unit asks for %ux%u", a->checkpoint, info->width,
                    info->height, a->width, a->height);
    return 0;
}

#ifndef CX_REFGEN_CUDA
static uint64_t cpu_scratch(uint32_t threads, uint64_t npix)
{
    return (uint64_t)threads * RG_GROUP_SCRATCH * npix * sizeof(float);
}
#endif

static int rg_estimate(const cx_genplug_args_t *a, uint64_t *bytes,
                       char *err, size_t elen)
{
    char dir[4096], name[256];
    cx_checkpoint_info_t info;
    int rc = info_of(a, dir, sizeof dir, name, sizeof name, &info, err, elen);
    if (rc)
        return rc;
#ifdef CX_REFGEN_CUDA
    *bytes = cx_cuda_estimate(&info, a->max_batch ? a->max_batch : 1);
#else
    *bytes = info.memory_bytes +
             cpu_scratch(threads_of(a), (uint64_t)a->width * a->height);
#endif
    return 0;
}

static void rg_destroy(cx_genplug_gen_t *g)
{
    if (!g)
        return;
#ifdef CX_REFGEN_CUDA
    cx_cuda_gen_destroy(g->cuda);
#endif
    cx_model_destroy(g->model);
    free(g->names);
    free(g);
}

static int rg_create(const cx_genplug_args_t *a, cx_genplug_gen_t **out,
                     char *err, size_t elen)
{
    char dir[4096], name[256];
    cx_checkpoint_info_t info;
    *out = NULL;
    int rc = info_of(a, dir, sizeof dir, name, sizeof name, &info, err, elen);
    if (rc)
        return rc;
    cx_genplug_gen_t *g = calloc(1, sizeof *g);
    if (!g)
        return fail(err, elen, CX_GENPLUG_ENOMEM, RG_NAME ": out of memory");
    cx_err_t e = {0};
    g->model = cx_model_open_named(dir, name, a->width, a->height, &e);
    if (!g->model) {
        rg_destroy(g);
        return fail(err, elen, code_of(&e), "%s", e.msg);
    }
    g->threads = threads_of(a);
    g->npix = a->width * a->height;
    g->nclasses = (uint32_t)cx_model_class_count(g->model);
    g->names = calloc(g->nclasses, sizeof *g->names);
    if (!g->names) {
        rg_destroy(g);
        return fail(err, elen, CX_GENPLUG_ENOMEM, RG_NAME ": out of memory");
    }
    for (uint32_t i = 0; i < g->nclasses; i++)
        snprintf(g->names[i], sizeof g->names[i], "%s",
                 cx_model_class_name(g->model, i));
#ifdef CX_REFGEN_CUDA
    g->cuda = cx_cuda_gen_new(g->model, device_index(a->device),
                              a->max_batch ? a->max_batch : 1, &e);
    if (!g->cuda) {
        rg_destroy(g);
        return fail(err, elen, e.code == CX_ENOMEM ? CX_GENPLUG_ENOMEM
                                                   : CX_GENPLUG_EDEVICE,
                    "%s", e.msg);
    }
    g->bytes = cx_cuda_gen_memory_bytes(g->cuda);
    cx_model_destroy(g->model); /* the GPU has it now */
    g->model = NULL;
#else
    g->bytes = cx_model_memory_bytes(g->model) +
               cpu_scratch(g->threads, g->npix);
#endif
    *out = g;
    return 0;
}

static uint64_t rg_memory_bytes(const cx_genplug_gen_t *g)
{
    return g->bytes;
}

static uint32_t rg_class_count(const cx_genplug_gen_t *g)
{
    return g->nclasses;
}

static const char *rg_class_name(const cx_genplug_gen_t *g, uint32_t i)
{
    return i < g->nclasses ? g->names[i] : NULL;
}

static int rg_generate(cx_genplug_gen_t *g, const cx_genplug_batch_t *b)
{
    if (!g || !b || b->struct_size < sizeof *b ||
        (b->count && (!b->seeds || !b->indices || !b->out)))
        return fail(NULL, 0, CX_GENPLUG_EINVAL, RG_NAME ": bad batch");
    cx_sample_params_t p = {.sampler = b->sampler,
                            .steps = b->steps,
                            .guidance_scale = b->guidance_scale,
                            .eta = b->eta,
                            .bit_depth = (int)b->bit_depth};
    cx_err_t e = {0};
#ifdef CX_REFGEN_CUDA
    if (cx_cuda_generate(g->cuda, b->class_index, &p, b->seeds, b->indices,
                         b->count, b->out, &e) != 0)
        return fail(NULL, 0, code_of(&e), "%s", e.msg);
#else
    /* runs of one seed and consecutive indices: one batch call each */
    for (uint32_t i = 0; i < b->count;) {
        uint32_t n = 1;
        while (i + n < b->count && b->seeds[i + n] == b->seeds[i] &&
               b->indices[i + n] == b->indices[i] + n)
            n++;
        if (cx_generate_batch(g->model, b->class_index, &p, b->seeds[i],
                              b->indices[i], n, g->threads,
                              b->out + (size_t)i * g->npix, NULL, &e) != 0)
            return fail(NULL, 0, code_of(&e), "%s", e.msg);
        i += n;
    }
#endif
    return 0;
}

static const char *rg_last_error(const cx_genplug_gen_t *g)
{
    (void)g;
    return rg_err;
}

static const cx_genplug_t rg_table = {
    .abi_version = CX_GENPLUG_ABI_VERSION,
    .struct_size = sizeof(cx_genplug_t),
    .name = RG_NAME,
    .version = "1",
#ifdef CX_REFGEN_CUDA
    .flags = 0, /* one stream: the host serialises calls, sends batches */
#else
    .flags = CX_GENPLUG_F_CONCURRENT, /* the CPU model is immutable */
#endif
    .probe = rg_probe,
    .device_memory = rg_device_memory,
    .estimate = rg_estimate,
    .create = rg_create,
    .memory_bytes = rg_memory_bytes,
    .class_count = rg_class_count,
    .class_name = rg_class_name,
    .generate = rg_generate,
    .last_error = rg_last_error,
    .destroy = rg_destroy,
};

CX_GENPLUG_EXPORT const cx_genplug_t *cx_generator_plugin(uint32_t host_abi)
{
    return host_abi == CX_GENPLUG_ABI_VERSION ? &rg_table : NULL;
}
