/* The generator plug-in ABI: how the gpu-worker loads a model it was not
 * built with. A plug-in is a shared library exporting one C function,
 *
 *     const cx_genplug_t *cx_generator_plugin(uint32_t host_abi_version);
 *
 * which returns a table of function pointers (a vtable) that lives as long
 * as the library stays loaded. The host dlopens the library, looks the
 * symbol up (CX_GENPLUG_ENTRY), calls it with CX_GENPLUG_ABI_VERSION and
 * refuses the plug-in unless the returned table's abi_version equals its
 * own and struct_size is at least the size it was built with. Everything
 * crossing the boundary is plain C: fixed-width integers, doubles, const
 * char *, caller-owned buffers; no allocation crosses it (each side frees
 * what it allocated).
 *
 * Versioning: CX_GENPLUG_ABI_VERSION changes when any struct's layout or a
 * function's meaning changes; members are only ever appended, and each
 * struct starts with its own struct_size so that a newer host can tell an
 * older plug-in's shorter struct apart (and vice versa). A plug-in reads a
 * struct member only when struct_size covers it.
 *
 * Lifecycle of one model:
 *   probe(checkpoint, device)        may this plug-in open it? (cheap)
 *   estimate(args, &bytes)           memory it would need, before loading
 *   create(args, &gen)               load it (the slow part, "cold load")
 *   memory_bytes(gen)                memory it holds now it is loaded
 *   class_count / class_name(gen)    the classes it can generate
 *   generate(gen, batch)             any number of times
 *   destroy(gen)
 *
 * Threads: probe, estimate, create and device_memory may be called from
 * any thread. generate may be called concurrently on one handle only when
 * the table's flags have CX_GENPLUG_F_CONCURRENT; otherwise the host
 * serialises calls per handle (a GPU plug-in batches internally instead).
 * last_error(gen) describes the last failed call on that handle from the
 * calling thread's point of view; calls that have no handle yet (estimate,
 * create) write their message into the caller's buffer.
 *
 * Determinism: the output of generate must be a pure function of (the
 * checkpoint, the parameters, seed, index): the gpu-worker content-hashes
 * samples and may regenerate any one of them alone, on any node.
 * Documentation: docs/PLUGINS.md; example: examples/plugin/. */
#ifndef CASCADE_GENERATOR_ABI_H
#define CASCADE_GENERATOR_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CX_GENPLUG_ABI_VERSION 1u
#define CX_GENPLUG_ENTRY "cx_generator_plugin"

/* Return codes of every int-returning function in the table. */
enum {
    CX_GENPLUG_OK = 0,
    CX_GENPLUG_EINVAL = -1,   /* bad argument or parameter */
    CX_GENPLUG_ENOMEM = -2,   /* host or device memory exhausted */
    CX_GENPLUG_EIO = -3,      /* checkpoint missing or unreadable */
    CX_GENPLUG_ECORRUPT = -4, /* checkpoint malformed, checksum mismatch */
    CX_GENPLUG_EDEVICE = -5,  /* device missing, unsupported or failed */
    CX_GENPLUG_EDIMS = -6     /* checkpoint cannot produce this size */
};

/* Samplers, as in cascade/gen.h and the WorkUnit's Sampler enum. */
enum { CX_GENPLUG_DDIM = 1, CX_GENPLUG_EULER = 2, CX_GENPLUG_HEUN = 3 };

/* Table flags. */
#define CX_GENPLUG_F_CONCURRENT 0x1u /* generate is thread-safe per handle */

typedef struct cx_genplug_gen cx_genplug_gen_t; /* one loaded model */

/* What to load, and where. */
typedef struct cx_genplug_args {
    uint32_t struct_size;   /* sizeof(cx_genplug_args_t) */
    const char *checkpoint; /* a file path, or a name the plug-in builds
                               without a file (probe said yes to it) */
    const char *name;       /* the checkpoint's name in job specs */
    const char *device;     /* "cpu" or "cuda:N" */
    uint32_t width, height; /* output size in pixels */
    uint32_t threads;       /* CPU threads the model may use; 0: choose */
    uint32_t max_batch;     /* largest count generate will be given */
} cx_genplug_args_t;

/* One call's samples: sample i is (seeds[i], indices[i]) and goes to
 * out + i * width * height. */
typedef struct cx_genplug_batch {
    uint32_t struct_size;   /* sizeof(cx_genplug_batch_t) */
    uint32_t class_index;   /* < class_count */
    int32_t sampler;        /* CX_GENPLUG_DDIM, _EULER, _HEUN */
    uint32_t steps;         /* >= 1 */
    double guidance_scale;  /* classifier-free guidance; 1 = conditional */
    double eta;             /* DDIM stochasticity in [0, 1] */
    uint32_t bit_depth;     /* 8 or 16: values in [0, 2^bit_depth - 1] */
    uint32_t count;         /* samples in this call, <= max_batch */
    const uint64_t *seeds;  /* count seeds */
    const uint32_t *indices;/* count sample indices */
    uint16_t *out;          /* count * width * height pixels, row-major */
} cx_genplug_batch_t;

typedef struct cx_genplug {
    uint32_t abi_version;   /* CX_GENPLUG_ABI_VERSION the plug-in was
                               built with */
    uint32_t struct_size;   /* sizeof(cx_genplug_t) */
    const char *name;       /* short, unique: "refgen", "procgen" */
    const char *version;    /* the plug-in's own version, free text */
    uint32_t flags;         /* CX_GENPLUG_F_* */

    /* 1 when this plug-in can open `checkpoint` (path or built-in name) on
     * `device`, else 0. Must be cheap: read a header at most. */
    int (*probe)(const char *checkpoint, const char *device);

    /* Total and free memory of `device` in bytes (RAM for "cpu"). */
    int (*device_memory)(const char *device, uint64_t *total,
                         uint64_t *free_bytes, char *err, size_t err_len);

    /* Bytes a loaded model would hold on its device (weights and the
     * buffers for max_batch samples), without loading it. */
    int (*estimate)(const cx_genplug_args_t *args, uint64_t *bytes,
                    char *err, size_t err_len);

    /* Loads the model. On failure *out stays NULL and err says why. */
    int (*create)(const cx_genplug_args_t *args, cx_genplug_gen_t **out,
                  char *err, size_t err_len);

    uint64_t (*memory_bytes)(const cx_genplug_gen_t *gen);
    uint32_t (*class_count)(const cx_genplug_gen_t *gen);
    const char *(*class_name)(const cx_genplug_gen_t *gen, uint32_t i);

    int (*generate)(cx_genplug_gen_t *gen, const cx_genplug_batch_t *batch);

    /* The message of the last failed call on gen; never NULL. */
    const char *(*last_error)(const cx_genplug_gen_t *gen);

    void (*destroy)(cx_genplug_gen_t *gen); /* NULL is fine */
} cx_genplug_t;

/* The one exported symbol. host_abi_version lets a plug-in that supports
 * several versions return the matching table; return NULL when it has
 * none. */
typedef const cx_genplug_t *(*cx_genplug_entry_fn)(uint32_t host_abi_version);

#if defined(__GNUC__)
#define CX_GENPLUG_EXPORT __attribute__((visibility("default")))
#else
#define CX_GENPLUG_EXPORT
#endif

#ifdef __cplusplus
}
#endif

#endif
