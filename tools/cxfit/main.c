/* cxfit: fits a checkpoint from a directory of training images.
 *
 *   cxfit --data DIR --out FILE.cxck [--name NAME] [--features FILE]
 *         [--components K] [--rank R] [--size S | --width W --height H]
 *         [--iters N] [--power-iters N] [--threads T] [--seed S]
 *
 * DIR/<class>/NAME.png (8- or 16-bit grayscale, all the same size) are the
 * training images, one subdirectory per class (sorted by name). --size
 * fits at a smaller size that divides the images' (box-filtered). Writes the
 * checkpoint (docs/CHECKPOINT.md) and the training set's feature vectors,
 * as computed by the validator's extractor (cx_feat_compute) on the
 * full-size images, to FILE.cxfeat (default: the checkpoint's path with
 * .cxfeat) for the privacy gate. */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cascade/featfile.h"
#include "cascade/fit.h"
#include "cascade/png16.h"
#include "cascade/pool.h"
#include "cascade/util.h"
#include "imgfeat.h"

typedef struct args {
    const char *data, *out, *name, *features;
    uint32_t width, height;
    cx_fit_opts_t fit;
} args_t;

/* One class being loaded: files -> x (n x D) and features (n x F). */
typedef struct load {
    const cx_strlist_t *files;
    uint32_t width, height;   /* the fit's size */
    uint32_t iw, ih;          /* the images' (0: not known yet) */
    float *x;
    float *feat;
    cx_feat_ws_t **ws;        /* one per pool thread slot */
    atomic_int failed;
    atomic_uint slot;
    char why[4600];
} load_t;

static int list_dir(const char *dir, int want_dirs, const char *suffix,
                    cx_strlist_t *out, cx_err_t *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return cx_err_set(err, CX_EIO, 0, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || (S_ISDIR(st.st_mode) != 0) != want_dirs)
            continue;
        size_t n = strlen(e->d_name), sl = suffix ? strlen(suffix) : 0;
        if (suffix && (n < sl || strcmp(e->d_name + n - sl, suffix) != 0))
            continue;
        if (cx_strlist_push(out, want_dirs ? e->d_name : path) != 0) {
            closedir(d);
            return cx_err_set(err, CX_ENOMEM, 1, "out of memory");
        }
    }
    closedir(d);
    cx_strlist_sort(out);
    return 0;
}

/* Box-filters px (iw x ih, full scale maxv) into out (w x h floats). */
static void downsample(const uint16_t *px, uint32_t iw, uint32_t ih,
                       double maxv, uint32_t w, uint32_t h, float *out)
{
    uint32_t fx = iw / w, fy = ih / h;
    double scale = 1.0 / (maxv * fx * fy);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            double s = 0.0;
            for (uint32_t dy = 0; dy < fy; dy++)
                for (uint32_t dx = 0; dx < fx; dx++)
                    s += px[(size_t)(y * fy + dy) * iw + x * fx + dx];
            out[(size_t)y * w + x] = (float)(s * scale);
        }
}

static void fail(load_t *l, const char *path, const char *why)
{
    if (atomic_exchange(&l->failed, 1) == 0)
        snprintf(l->why, sizeof l->why, "%s: %s", path, why);
}

static void load_one(void *ctx, size_t i)
{
    static _Thread_local int my_slot = -1;
    load_t *l = ctx;
    const char *path = l->files->items[i];
    char *data = NULL;
    size_t len;
    uint16_t *px = NULL;
    uint32_t w, h;
    int depth;
    cx_err_t err = {0};
    cx_feat_t ft;
    if (my_slot < 0)
        my_slot = (int)atomic_fetch_add(&l->slot, 1);
    if (cx_read_file(path, &data, &len, &err) != 0 ||
        cx_png_decode(data, len, 0, &px, &w, &h, &depth, &err) != 0) {
        fail(l, path, err.msg);
        goto done;
    }
    if (w != l->iw || h != l->ih) {
        char why[160];
        snprintf(why, sizeof why, "is %ux%u, the others %ux%u", w, h,
                 l->iw, l->ih);
        fail(l, path, why);
        goto done;
    }
    downsample(px, w, h, (double)((1u << depth) - 1u), l->width, l->height,
               l->x + i * (size_t)l->width * l->height);
    if (cx_feat_compute(l->ws[my_slot], px, w, h, depth, &ft, &err) != 0) {
        fail(l, path, err.msg);
        goto done;
    }
    memcpy(l->feat + i * CX_FEAT_DIM, ft.vec, sizeof ft.vec);
done:
    free(px);
    free(data);
}

/* The first image's size (all must share it). */
static int probe_size(const char *path, uint32_t *w, uint32_t *h,
                      cx_err_t *err)
{
    char *data;
    size_t len;
    uint16_t *px;
    int depth;
    if (cx_read_file(path, &data, &len, err) != 0)
        return -1;
    int rc = cx_png_decode(data, len, 0, &px, w, h, &depth, err);
    free(data);
    if (rc == 0)
        free(px);
    return rc == 0 ? 0 : cx_err_wrap(err, "%s", path);
}

typedef struct feats {
    float *data;
    uint32_t *cls;
    size_t rows;
} feats_t;

static int fit_class(cx_fit_t *fit, cx_pool_t *pool, const args_t *a,
                     const char *cname, load_t *l, feats_t *fs, uint32_t ci,
                     cx_err_t *err)
{
    char dir[4096];
    cx_strlist_t files = {0};
    int rc = -1;
    snprintf(dir, sizeof dir, "%s/%s", a->data, cname);
    if (list_dir(dir, 0, ".png", &files, err) != 0)
        return -1;
    if (files.len == 0) {
        cx_err_set(err, CX_EINVAL, 0, "%s: no .png files", dir);
        goto done;
    }
    size_t d = (size_t)a->width * a->height, n = files.len;
    l->files = &files;
    l->x = malloc(n * d * sizeof *l->x);
    float *nf = realloc(fs->data, (fs->rows + n) * CX_FEAT_DIM * sizeof *nf);
    if (nf)
        fs->data = nf;
    uint32_t *nc = realloc(fs->cls, (fs->rows + n) * sizeof *nc);
    if (nc)
        fs->cls = nc;
    if (!l->x || !nf || !nc) {
        cx_err_set(err, CX_ENOMEM, 1, "%s: out of memory for %zu images",
                   dir, n);
        goto done;
    }
    l->feat = fs->data + fs->rows * CX_FEAT_DIM;
    cx_pool_for(pool, n, load_one, l);
    if (atomic_load(&l->failed)) {
        cx_err_set(err, CX_EINVAL, 0, "%s", l->why);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        fs->cls[fs->rows + i] = ci;
    fs->rows += n;
    double t0 = cx_mono_ms();
    if (cx_fit_class(fit, cname, l->x, n, err) != 0)
        goto done;
    printf("cxfit: class %s: %zu images, fitted in %.1f s\n", cname, n,
           (cx_mono_ms() - t0) / 1000.0);
    rc = 0;
done:
    free(l->x);
    l->x = NULL;
    cx_strlist_free(&files);
    return rc;
}

static int save_features(const args_t *a, const cx_strlist_t *classes,
                         const feats_t *fs, cx_err_t *err)
{
    cx_featfile_t ff = {.layout = CX_FEAT_LAYOUT, .rows = (uint32_t)fs->rows,
                        .cols = CX_FEAT_DIM,
                        .nclasses = (uint32_t)classes->len,
                        .row_class = fs->cls, .data = fs->data};
    snprintf(ff.checkpoint, sizeof ff.checkpoint, "%s", a->name);
    ff.class_names = calloc(classes->len, sizeof *ff.class_names);
    if (!ff.class_names)
        return cx_err_set(err, CX_ENOMEM, 1, "out of memory");
    for (size_t c = 0; c < classes->len; c++)
        snprintf(ff.class_names[c], sizeof ff.class_names[c], "%s",
                 classes->items[c]);
    int rc = cx_featfile_save(&ff, a->features, err);
    free(ff.class_names);
    return rc;
}

static int run(const args_t *a, cx_err_t *err)
{
    cx_strlist_t classes = {0}, first = {0};
    feats_t fs = {0};
    load_t l = {0};
    cx_pool_t *pool = NULL;
    cx_fit_t *fit = NULL;
    cx_model_t *m = NULL;
    int rc = -1;
    char dir[4096];
    if (list_dir(a->data, 1, NULL, &classes, err) != 0)
        goto done;
    if (classes.len == 0) {
        cx_err_set(err, CX_EINVAL, 0, "%s: no class directories", a->data);
        goto done;
    }
    snprintf(dir, sizeof dir, "%s/%s", a->data, classes.items[0]);
    if (list_dir(dir, 0, ".png", &first, err) != 0)
        goto done;
    if (first.len == 0) {
        cx_err_set(err, CX_EINVAL, 0, "%s: no .png files", dir);
        goto done;
    }
    if (probe_size(first.items[0], &l.iw, &l.ih, err) != 0)
        goto done;
    args_t aa = *a;
    aa.width = a->width ? a->width : l.iw;
    aa.height = a->height ? a->height : l.ih;
    if (l.iw % aa.width || l.ih % aa.height) {
        cx_err_set(err, CX_EINVAL, 0,
                   "training images are %ux%u: the fit's size must divide "
                   "them (%ux%u does not)", l.iw, l.ih, aa.width, aa.height);
        goto done;
    }
    if (!(pool = cx_pool_new(a->fit.threads, err)))
        goto done;
    l.width = aa.width;
    l.height = aa.height;
    unsigned nslots = cx_pool_size(pool) + 1;
    l.ws = calloc(nslots, sizeof *l.ws);
    for (unsigned i = 0; l.ws && i < nslots; i++)
        if (!(l.ws[i] = cx_feat_ws_new(err)))
            goto done;
    if (!l.ws || !(fit = cx_fit_new(aa.name, aa.width, aa.height, &aa.fit,
                                    err)))
        goto done;
    for (size_t c = 0; c < classes.len; c++)
        if (fit_class(fit, pool, &aa, classes.items[c], &l, &fs, (uint32_t)c,
                      err) != 0)
            goto done;
    if (!(m = cx_fit_finish(fit, err)) || cx_model_save(m, aa.out, err) != 0 ||
        save_features(&aa, &classes, &fs, err) != 0)
        goto done;
    printf("cxfit: %s: %zu classes, %ux%u, %.1f MiB in memory -> %s, %s\n",
           aa.name, classes.len, aa.width, aa.height,
           cx_model_memory_bytes(m) / 1048576.0, aa.out, aa.features);
    rc = 0;
done:
    cx_model_destroy(m);
    cx_fit_destroy(fit);
    for (unsigned i = 0; l.ws && pool && i < cx_pool_size(pool) + 1; i++)
        cx_feat_ws_destroy(l.ws[i]);
    free(l.ws);
    cx_pool_destroy(pool);
    free(fs.data);
    free(fs.cls);
    cx_strlist_free(&classes);
    cx_strlist_free(&first);
    return rc;
}

static int parse(int argc, char **argv, args_t *a)
{
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return -1;
        if (strcmp(k, "--data") == 0)
            a->data = v;
        else if (strcmp(k, "--out") == 0)
            a->out = v;
        else if (strcmp(k, "--name") == 0)
            a->name = v;
        else if (strcmp(k, "--features") == 0)
            a->features = v;
        else if (strcmp(k, "--components") == 0)
            a->fit.components = (uint32_t)atoi(v);
        else if (strcmp(k, "--rank") == 0)
            a->fit.rank = (uint32_t)atoi(v);
        else if (strcmp(k, "--size") == 0)
            a->width = a->height = (uint32_t)atoi(v);
        else if (strcmp(k, "--width") == 0)
            a->width = (uint32_t)atoi(v);
        else if (strcmp(k, "--height") == 0)
            a->height = (uint32_t)atoi(v);
        else if (strcmp(k, "--iters") == 0)
            a->fit.kmeans_iters = (uint32_t)atoi(v);
        else if (strcmp(k, "--power-iters") == 0)
            a->fit.power_iters = (uint32_t)atoi(v);
        else if (strcmp(k, "--threads") == 0)
            a->fit.threads = (unsigned)atoi(v);
        else if (strcmp(k, "--seed") == 0)
            a->fit.seed = strtoull(v, NULL, 0);
        else
            return -1;
        i++;
    }
    return a->data && a->out ? 0 : -1;
}

int main(int argc, char **argv)
{
    args_t a = {0};
    char name[64], feat[4096];
    cx_fit_opts_default(&a.fit);
    if (parse(argc, argv, &a) != 0) {
        fprintf(stderr,
                "usage: cxfit --data DIR --out FILE.cxck [--name NAME] "
                "[--features FILE] [--components K] [--rank R] [--size S | "
                "--width W --height H] [--iters N] [--power-iters N] "
                "[--threads T] [--seed S]\n");
        return 2;
    }
    const char *base = strrchr(a.out, '/') ? strrchr(a.out, '/') + 1 : a.out;
    size_t bl = strlen(base), el = strlen(CX_CHECKPOINT_EXT);
    int has_ext = bl > el && strcmp(base + bl - el, CX_CHECKPOINT_EXT) == 0;
    if (!a.name) {
        snprintf(name, sizeof name, "%.*s", (int)(has_ext ? bl - el : bl),
                 base);
        a.name = name;
    }
    if (!a.features) {
        size_t ol = strlen(a.out);
        snprintf(feat, sizeof feat, "%.*s%s",
                 (int)(has_ext ? ol - el : ol), a.out, CX_FEATFILE_EXT);
        a.features = feat;
    }
    cx_err_t err = {0};
    double t0 = cx_mono_ms();
    if (run(&a, &err) != 0) {
        fprintf(stderr, "cxfit: %s\n", err.msg);
        return 1;
    }
    printf("cxfit: done in %.1f s\n", (cx_mono_ms() - t0) / 1000.0);
    return 0;
}
