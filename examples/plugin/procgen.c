/* procgen: an example generator plug-in (see docs/PLUGINS.md).
 *
 * It shows a customer what wrapping their own model takes: one exported
 * function returning a table of callbacks (cascade/generator_abi.h), a
 * checkpoint file the plug-in recognises, a memory estimate, and a pure
 * generate(). The "model" is small but real: a procedural texture
 * generator whose classes are described in a text checkpoint,
 *
 *     procgen 1
 *     max_size 1024
 *     class calm   blobs=2 radius=0.10..0.25 level=0.30 background=0.20
 *     class spotty blobs=9 radius=0.02..0.06 level=0.70 background=0.10
 *
 * A sample is a low-frequency value-noise background (`steps` octaves, at
 * most 6), `blobs` Gaussian spots of the class's radius range and level
 * (scaled by the guidance scale), and grain of amplitude 0.05 * eta, all
 * drawn from a counter-based hash of (seed, index), so any sample can be
 * regenerated alone. The sampler kind is accepted and ignored: this model
 * has no sampler.
 *
 * It includes nothing from Cascade but the ABI header: copy this file, keep
 * the entry point and the table, and replace the model. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/generator_abi.h"

#define PG_MAX_CLASSES 64
#define PG_NAME_MAX 32
#define PG_MAX_BLOBS 64
#define PG_MAX_OCTAVES 6

typedef struct pg_class {
    char name[PG_NAME_MAX];
    unsigned blobs;
    double rmin, rmax; /* radius as a fraction of the width */
    double level;      /* blob amplitude */
    double background;
} pg_class_t;

struct cx_genplug_gen {
    uint32_t width, height, max_batch;
    uint32_t nclasses;
    pg_class_t classes[PG_MAX_CLASSES];
};

/* One message per thread: generate may run on several threads at once. */
static _Thread_local char pg_err[256];

static int fail(char *err, size_t len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t len, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pg_err, sizeof pg_err, fmt, ap);
    va_end(ap);
    if (err && len)
        snprintf(err, len, "%s", pg_err);
    return code;
}

/* ---- checkpoint ------------------------------------------------------ */

static int parse_class(const char *line, pg_class_t *c, char *err,
                       size_t elen, unsigned lineno)
{
    char rest[256];
    memset(c, 0, sizeof *c);
    c->blobs = 4;
    c->rmin = 0.03;
    c->rmax = 0.10;
    c->level = 0.5;
    c->background = 0.2;
    if (sscanf(line, "class %31s %255[^\n]", c->name, rest) < 1)
        return fail(err, elen, CX_GENPLUG_ECORRUPT, "line %u: class needs a "
                    "name", lineno);
    if (sscanf(line, "class %*s %255[^\n]", rest) != 1)
        rest[0] = '\0';
    for (char *tok = strtok(rest, " \t"); tok; tok = strtok(NULL, " \t")) {
        unsigned u;
        double a, b;
        if (sscanf(tok, "blobs=%u", &u) == 1 && u <= PG_MAX_BLOBS)
            c->blobs = u;
        else if (sscanf(tok, "radius=%lf..%lf", &a, &b) == 2 && a > 0 &&
                 b >= a && b <= 1)
            c->rmin = a, c->rmax = b;
        else if (sscanf(tok, "level=%lf", &a) == 1 && fabs(a) <= 1)
            c->level = a;
        else if (sscanf(tok, "background=%lf", &a) == 1 && a >= 0 && a <= 1)
            c->background = a;
        else
            return fail(err, elen, CX_GENPLUG_ECORRUPT,
                        "line %u: bad class setting '%s'", lineno, tok);
    }
    return 0;
}

/* Reads the checkpoint into g (classes) and *max_size. */
static int load(const char *path, cx_genplug_gen_t *g, uint32_t *max_size,
                char *err, size_t elen)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(err, elen, CX_GENPLUG_EIO, "%s: %s", path,
                    strerror(errno));
    char line[512];
    unsigned lineno = 0;
    int rc = 0;
    *max_size = 4096;
    g->nclasses = 0;
    if (!fgets(line, sizeof line, f) || strncmp(line, "procgen 1", 9) != 0 ||
        !isspace((unsigned char)line[9])) {
        rc = fail(err, elen, CX_GENPLUG_ECORRUPT,
                  "%s: not a procgen version 1 checkpoint", path);
        goto done;
    }
    lineno = 1;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (*s == '#' || *s == '\0')
            continue;
        unsigned u;
        if (sscanf(s, "max_size %u", &u) == 1 && u >= 1)
            *max_size = u;
        else if (strncmp(s, "class ", 6) == 0) {
            if (g->nclasses == PG_MAX_CLASSES)
                rc = fail(err, elen, CX_GENPLUG_ECORRUPT, "%s: over %d "
                          "classes", path, PG_MAX_CLASSES);
            else
                rc = parse_class(s, &g->classes[g->nclasses++], err, elen,
                                 lineno);
        } else
            rc = fail(err, elen, CX_GENPLUG_ECORRUPT, "%s line %u: unknown "
                      "setting", path, lineno);
    }
    if (rc == 0 && g->nclasses == 0)
        rc = fail(err, elen, CX_GENPLUG_ECORRUPT, "%s: no classes", path);
done:
    fclose(f);
    return rc;
}

/* ---- the table ------------------------------------------------------- */

static int pg_probe(const char *checkpoint, const char *device)
{
    size_t n = checkpoint ? strlen(checkpoint) : 0;
    if (!device || strcmp(device, "cpu") != 0 || n < 9 ||
        strcmp(checkpoint + n - 8, ".procgen") != 0)
        return 0;
    FILE *f = fopen(checkpoint, "r");
    char head[16] = "";
    if (!f)
        return 0;
    int ok = fgets(head, sizeof head, f) && strncmp(head, "procgen ", 8) == 0;
    fclose(f);
    return ok;
}

static int pg_device_memory(const char *device, uint64_t *total,
                            uint64_t *free_bytes, char *err, size_t elen)
{
    if (!device || strcmp(device, "cpu") != 0)
        return fail(err, elen, CX_GENPLUG_EDEVICE, "procgen runs on the cpu "
                    "only, not %s", device ? device : "(null)");
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES);
    long psz = sysconf(_SC_PAGESIZE);
    *total = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
    *free_bytes = avail > 0 && psz > 0 ? (uint64_t)avail * (uint64_t)psz : 0;
    return 0;
}

/* The model is the class table; each generate call borrows one float
 * image per sample it renders at a time. */
static uint64_t pg_bytes(uint32_t w, uint32_t h)
{
    return sizeof(cx_genplug_gen_t) + (uint64_t)w * h * sizeof(float);
}

static int check_args(const cx_genplug_args_t *a, char *err, size_t elen)
{
    if (!a || a->struct_size < sizeof *a || !a->checkpoint || !a->device)
        return fail(err, elen, CX_GENPLUG_EINVAL, "procgen: bad arguments");
    if (strcmp(a->device, "cpu") != 0)
        return fail(err, elen, CX_GENPLUG_EDEVICE, "procgen runs on the cpu "
                    "only, not %s", a->device);
    if (a->width < 1 || a->height < 1)
        return fail(err, elen, CX_GENPLUG_EDIMS, "procgen: empty image "
                    "%ux%u", a->width, a->height);
    return 0;
}

static int pg_estimate(const cx_genplug_args_t *a, uint64_t *bytes, char *err,
                       size_t elen)
{
    int rc = check_args(a, err, elen);
    if (rc == 0)
        *bytes = pg_bytes(a->width, a->height);
    return rc;
}

static int pg_create(const cx_genplug_args_t *a, cx_genplug_gen_t **out,
                     char *err, size_t elen)
{
    *out = NULL;
    int rc = check_args(a, err, elen);
    if (rc)
        return rc;
    cx_genplug_gen_t *g = calloc(1, sizeof *g);
    if (!g)
        return fail(err, elen, CX_GENPLUG_ENOMEM, "procgen: out of memory");
    uint32_t max_size;
    rc = load(a->checkpoint, g, &max_size, err, elen);
    if (rc == 0 && (a->width > max_size || a->height > max_size))
        rc = fail(err, elen, CX_GENPLUG_EDIMS, "%s renders at most %ux%u, "
                  "not %ux%u", a->checkpoint, max_size, max_size, a->width,
                  a->height);
    if (rc) {
        free(g);
        return rc;
    }
    g->width = a->width;
    g->height = a->height;
    g->max_batch = a->max_batch;
    *out = g;
    return 0;
}

static uint64_t pg_memory_bytes(const cx_genplug_gen_t *g)
{
    return pg_bytes(g->width, g->height);
}

static uint32_t pg_class_count(const cx_genplug_gen_t *g)
{
    return g->nclasses;
}

static const char *pg_class_name(const cx_genplug_gen_t *g, uint32_t i)
{
    return i < g->nclasses ? g->classes[i].name : NULL;
}

/* ---- rendering ------------------------------------------------------- */

/* SplitMix64 finaliser: a counter-based hash, so value k of stream s of a
 * sample is pg_rand(seed, index, s, k) with no state to carry. */
static uint64_t mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double pg_rand(uint64_t seed, uint32_t index, uint32_t stream,
                      uint64_t k)
{
    uint64_t h = mix(mix(mix(seed) ^ index) ^ ((uint64_t)stream << 40 ^ k));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) */
}

/* Value noise: random values on a (cells+1)^2 lattice, bilinear between. */
static void add_octave(float *img, uint32_t w, uint32_t h, unsigned cells,
                       double amp, uint64_t seed, uint32_t index,
                       uint32_t stream)
{
    for (uint32_t y = 0; y < h; y++) {
        double fy = (double)y / h * cells;
        unsigned cy = (unsigned)fy;
        double ty = fy - cy;
        for (uint32_t x = 0; x < w; x++) {
            double fx = (double)x / w * cells;
            unsigned cx = (unsigned)fx;
            double tx = fx - cx;
            uint64_t k = (uint64_t)cy * (cells + 1) + cx;
            double v00 = pg_rand(seed, index, stream, k);
            double v01 = pg_rand(seed, index, stream, k + 1);
            double v10 = pg_rand(seed, index, stream, k + cells + 1);
            double v11 = pg_rand(seed, index, stream, k + cells + 2);
            double v = (v00 * (1 - tx) + v01 * tx) * (1 - ty) +
                       (v10 * (1 - tx) + v11 * tx) * ty;
            img[(size_t)y * w + x] += (float)(amp * (v - 0.5));
        }
    }
}

static void render(const cx_genplug_gen_t *g, const pg_class_t *c,
                   const cx_genplug_batch_t *b, uint64_t seed, uint32_t index,
                   float *img, uint16_t *out)
{
    uint32_t w = g->width, h = g->height;
    size_t n = (size_t)w * h;
    unsigned octaves = b->steps < PG_MAX_OCTAVES ? b->steps : PG_MAX_OCTAVES;
    for (size_t i = 0; i < n; i++)
        img[i] = (float)c->background;
    for (unsigned o = 0; o < octaves; o++)
        add_octave(img, w, h, 2u << o, 0.2 / (1u << o), seed, index, 1 + o);
    double level = c->level * b->guidance_scale;
    for (unsigned k = 0; k < c->blobs; k++) {
        double cx = pg_rand(seed, index, 100, 3 * k) * w;
        double cy = pg_rand(seed, index, 100, 3 * k + 1) * h;
        double r = (c->rmin + (c->rmax - c->rmin) *
                    pg_rand(seed, index, 100, 3 * k + 2)) * w;
        double inv = 1.0 / (2 * r * r);
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++) {
                double dx = x - cx, dy = y - cy;
                double e = (dx * dx + dy * dy) * inv;
                if (e < 12.0)
                    img[(size_t)y * w + x] += (float)(level * exp(-e));
            }
    }
    double grain = 0.05 * b->eta;
    double maxv = (double)((1u << b->bit_depth) - 1u);
    for (size_t i = 0; i < n; i++) {
        double v = img[i];
        if (grain > 0)
            v += grain * (pg_rand(seed, index, 200, i) - 0.5);
        v = v > 0 ? (v < 1 ? v : 1) : 0;
        out[i] = (uint16_t)(v * maxv + 0.5);
    }
}

static int pg_generate(cx_genplug_gen_t *g, const cx_genplug_batch_t *b)
{
    if (!g || !b || b->struct_size < sizeof *b || (b->count && (!b->seeds ||
        !b->indices || !b->out)))
        return fail(NULL, 0, CX_GENPLUG_EINVAL, "procgen: bad batch");
    if (b->class_index >= g->nclasses)
        return fail(NULL, 0, CX_GENPLUG_EINVAL, "procgen: class %u of %u",
                    b->class_index, g->nclasses);
    if (b->bit_depth != 8 && b->bit_depth != 16)
        return fail(NULL, 0, CX_GENPLUG_EINVAL, "procgen: bit depth %u",
                    b->bit_depth);
    if (b->steps < 1 || !(b->eta >= 0 && b->eta <= 1) ||
        !(fabs(b->guidance_scale) <= 100))
        return fail(NULL, 0, CX_GENPLUG_EINVAL, "procgen: steps %u, eta %g, "
                    "guidance %g out of range", b->steps, b->eta,
                    b->guidance_scale);
    size_t n = (size_t)g->width * g->height;
    float *img = malloc(n * sizeof *img);
    if (!img)
        return fail(NULL, 0, CX_GENPLUG_ENOMEM, "procgen: out of memory");
    for (uint32_t i = 0; i < b->count; i++)
        render(g, &g->classes[b->class_index], b, b->seeds[i], b->indices[i],
               img, b->out + i * n);
    free(img);
    return 0;
}

static const char *pg_last_error(const cx_genplug_gen_t *g)
{
    (void)g;
    return pg_err;
}

static void pg_destroy(cx_genplug_gen_t *g) { free(g); }

static const cx_genplug_t pg_table = {
    .abi_version = CX_GENPLUG_ABI_VERSION,
    .struct_size = sizeof(cx_genplug_t),
    .name = "procgen",
    .version = "1.0",
    .flags = CX_GENPLUG_F_CONCURRENT,
    .probe = pg_probe,
    .device_memory = pg_device_memory,
    .estimate = pg_estimate,
    .create = pg_create,
    .memory_bytes = pg_memory_bytes,
    .class_count = pg_class_count,
    .class_name = pg_class_name,
    .generate = pg_generate,
    .last_error = pg_last_error,
    .destroy = pg_destroy,
};

CX_GENPLUG_EXPORT const cx_genplug_t *cx_generator_plugin(uint32_t host_abi)
{
    return host_abi == CX_GENPLUG_ABI_VERSION ? &pg_table : NULL;
}
