/* cxphantom: renders a training set of procedural chest radiographs.
 *
 *   cxphantom --out DIR [--per-class N] [--size S | --width W --height H]
 *             [--seed S] [--classes a,b,...] [--threads T]
 *
 * Writes DIR/<class>/<class>-NNNNN.png (16-bit grayscale), N per class
 * (default 200) at 512x512 by default, for the classes normal, effusion,
 * nodule and cardiomegaly (or the named subset). Image i of a class depends
 * only on (seed, class, i): rerunning gives identical files. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cascade/png16.h"
#include "cascade/pool.h"
#include "render.h"

typedef struct run {
    const char *out;
    uint32_t width, height, per_class;
    uint64_t seed;
    int cls[CX_PHANTOM_NCLASS], ncls;
    atomic_int failed;
    char why[4800];
} run_t;

static int write_file(const char *path, const void *data, size_t len)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void render_one(void *ctx, size_t i)
{
    run_t *r = ctx;
    int c = r->cls[i / r->per_class];
    uint32_t idx = (uint32_t)(i % r->per_class);
    const char *name = cx_phantom_class_name(c);
    size_t d = (size_t)r->width * r->height;
    uint16_t *px = malloc(d * sizeof *px);
    cx_buf_t png = {0};
    cx_err_t err = {0};
    char path[4096];
    cxp_params_t p;
    cxp_draw(r->seed, c, idx, &p);
    snprintf(path, sizeof path, "%s/%s/%s-%05u.png", r->out, name, name, idx);
    if (!px || cxp_render(&p, r->seed, c, idx, r->width, r->height, px) != 0 ||
        cx_png_encode(px, r->width, r->height, 16, 1, &png, &err) != 0 ||
        write_file(path, png.data, png.len) != 0) {
        if (atomic_exchange(&r->failed, 1) == 0)
            snprintf(r->why, sizeof r->why, "%s: %s", path,
                     err.msg[0] ? err.msg : strerror(errno));
    }
    cx_buf_free(&png);
    free(px);
}

static int parse_classes(const char *list, run_t *r)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    r->ncls = 0;
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        int found = -1;
        for (int k = 0; k < CX_PHANTOM_NCLASS; k++)
            if (strcmp(cx_phantom_class_name(k), t) == 0)
                found = k;
        if (found < 0 || r->ncls >= CX_PHANTOM_NCLASS)
            return -1;
        r->cls[r->ncls++] = found;
    }
    return r->ncls > 0 ? 0 : -1;
}

static int parse(int argc, char **argv, run_t *r, unsigned *threads)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return -1;
        if (strcmp(a, "--out") == 0)
            r->out = v;
        else if (strcmp(a, "--per-class") == 0)
            r->per_class = (uint32_t)atoi(v);
        else if (strcmp(a, "--size") == 0)
            r->width = r->height = (uint32_t)atoi(v);
        else if (strcmp(a, "--width") == 0)
            r->width = (uint32_t)atoi(v);
        else if (strcmp(a, "--height") == 0)
            r->height = (uint32_t)atoi(v);
        else if (strcmp(a, "--seed") == 0)
            r->seed = strtoull(v, NULL, 0);
        else if (strcmp(a, "--threads") == 0)
            *threads = (unsigned)atoi(v);
        else if (strcmp(a, "--classes") == 0) {
            if (parse_classes(v, r) != 0)
                return -1;
        } else
            return -1;
        i++;
    }
    return r->out && r->per_class >= 1 && r->width >= 8 && r->height >= 8 &&
                   r->width <= 8192 && r->height <= 8192
               ? 0
               : -1;
}

int main(int argc, char **argv)
{
    run_t r = {.width = 512, .height = 512, .per_class = 200, .seed = 1,
               .ncls = CX_PHANTOM_NCLASS};
    atomic_init(&r.failed, 0);
    unsigned threads = 0;
    for (int k = 0; k < CX_PHANTOM_NCLASS; k++)
        r.cls[k] = k;
    if (parse(argc, argv, &r, &threads) != 0) {
        fprintf(stderr,
                "usage: cxphantom --out DIR [--per-class N] [--size S | "
                "--width W --height H] [--seed S] [--classes a,b,...] "
                "[--threads T]\n");
        return 2;
    }
    char dir[4096];
    if (mkdir(r.out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "cxphantom: %s: %s\n", r.out, strerror(errno));
        return 1;
    }
    for (int k = 0; k < r.ncls; k++) {
        snprintf(dir, sizeof dir, "%s/%s", r.out,
                 cx_phantom_class_name(r.cls[k]));
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "cxphantom: %s: %s\n", dir, strerror(errno));
            return 1;
        }
    }
    cx_err_t err;
    cx_pool_t *pool = cx_pool_new(threads, &err);
    if (!pool) {
        fprintf(stderr, "cxphantom: %s\n", err.msg);
        return 1;
    }
    cx_pool_for(pool, (size_t)r.ncls * r.per_class, render_one, &r);
    cx_pool_destroy(pool);
    if (atomic_load(&r.failed)) {
        fprintf(stderr, "cxphantom: %s\n", r.why);
        return 1;
    }
    printf("cxphantom: %u images per class, %d classes, %ux%u, seed %llu "
           "-> %s\n",
           r.per_class, r.ncls, r.width, r.height,
           (unsigned long long)r.seed, r.out);
    return 0;
}
