/* cxcalibrate: a gate profile from a training set (docs/GATES.md).
 *
 *   cxcalibrate --train DIR --out PROFILE_DIR --name NAME [--threads N]
 *   cxcalibrate --model ref-cxr-v0 --per-class N --width W --height H
 *               [--steps S] [--seed X] --out PROFILE_DIR --name NAME
 *
 * --train: DIR/<class>/NAME.png, grayscale 8- or 16-bit, every image the same
 * size and depth (a class is a subdirectory; files in name order). --model:
 * the training set is N samples per class of a built-in checkpoint (what
 * the reference generator itself produces), for demos and tests.
 * Writes PROFILE_DIR/NAME.json and PROFILE_DIR/NAME.feat, loads them back
 * as the validator would, and prints what it calibrated. Exit status: 0,
 * 1 when calibration failed, 2 on bad usage. */
#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "calib.h"
#include "cascade/config.h"
#include "cascade/gen.h"
#include "cascade/log.h"
#include "cascade/names.h"
#include "cascade/png16.h"
#include "cascade/pool.h"
#include "cascade/util.h"
#include "profile.h"

typedef struct conf {
    char *train, *out, *name, *model, *log_level;
    long long threads, per_class, width, height, steps, seed, max_per_class;
    double structure_k, privacy_factor, privacy_quantile, privacy_budget,
        maha_margin, llr_margin;
    long long ref_per_class, privacy_queries;
} conf_t;

#define OFF(f) offsetof(conf_t, f)
static const cx_conf_entry_t table[] = {
    {"train", CX_CONF_STR, NULL, 0, 0,
     "Training set: DIR/<class>/NAME.png (8- or 16-bit grayscale)", OFF(train)},
    {"model", CX_CONF_STR, NULL, 0, 0,
     "Or: calibrate on samples of this built-in checkpoint", OFF(model)},
    {"per-class", CX_CONF_INT, "300", 1, 1000000,
     "--model: samples per class", OFF(per_class)},
    {"width", CX_CONF_INT, "512", 8, 4096, "--model: width", OFF(width)},
    {"height", CX_CONF_INT, "512", 8, 4096, "--model: height", OFF(height)},
    {"steps", CX_CONF_INT, "8", 1, 1000, "--model: DDIM steps", OFF(steps)},
    {"seed", CX_CONF_INT, "1", 0, 1e15, "--model: seed base", OFF(seed)},
    {"max-per-class", CX_CONF_INT, "0", 0, 1e12,
     "--train: use at most this many images per class (0: all)",
     OFF(max_per_class)},
    {"out", CX_CONF_STR, NULL, 0, 0, "Profile directory to write into",
     OFF(out)},
    {"name", CX_CONF_STR, NULL, 0, 0, "Profile name", OFF(name)},
    {"threads", CX_CONF_INT, "0", 0, 4096, "Threads (0: one per CPU)",
     OFF(threads)},
    {"structure-k", CX_CONF_DOUBLE, "6", 0.5, 1000,
     "Structural envelope half-width (robust sigmas)", OFF(structure_k)},
    {"privacy-factor", CX_CONF_DOUBLE, "0.5", 0, 100,
     "min_privacy_distance = factor x the training NN quantile",
     OFF(privacy_factor)},
    {"privacy-quantile", CX_CONF_DOUBLE, "0.01", 0, 1,
     "Quantile of the training set's leave-one-out NN distances",
     OFF(privacy_quantile)},
    {"privacy-queries", CX_CONF_INT, "2000", 1, 1e9,
     "Training rows whose NN distance is measured", OFF(privacy_queries)},
    {"privacy-budget", CX_CONF_DOUBLE, "0.01", 0, 1,
     "Default tolerated fraction of near-copies per job",
     OFF(privacy_budget)},
    {"maha-margin", CX_CONF_DOUBLE, "1.5", 0.1, 100,
     "max_mahalanobis = margin x the cross-validated quantile",
     OFF(maha_margin)},
    {"llr-margin", CX_CONF_DOUBLE, "5", 0, 1e6,
     "max_class_llr = quantile + this many nats", OFF(llr_margin)},
    {"ref-per-class", CX_CONF_INT, "1024", 2, 65536,
     "Reference points per class for precision/recall",
     OFF(ref_per_class)},
    {"log.level", CX_CONF_STR, "info", 0, 0, "error, warn, info or debug",
     OFF(log_level)},
    CX_CONF_END};

/* ---- the training set --------------------------------------------------- */

typedef struct item {
    char cls[CX_NAME_MAX + 1];
    char *path;     /* --train */
    uint32_t index; /* --model: sample index in its class */
    int class_idx;
    cx_feat_t f;
    int ok;
    char why[1200];
} item_t;

typedef struct job {
    const conf_t *cf;
    item_t *items;
    size_t n;
    size_t nchunks;
    const cx_model_t *model;
    uint32_t width, height;
    int depth;
    atomic_int failed;
} job_t;

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir (directories or *.png files). */
static int list_dir(const char *dir, int want_dirs, cx_strlist_t *out,
                    cx_err_t *err) {
    DIR *d = opendir(dir);
    if (!d) return cx_err_set(err, CX_EIO, 0, "cannot open %s", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[4400];
        struct stat st;
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%.4000s/%s", dir, e->d_name);
        if (stat(p, &st) != 0) continue;
        size_t l = strlen(e->d_name);
        int ok = want_dirs ? S_ISDIR(st.st_mode)
                           : S_ISREG(st.st_mode) && l > 4 &&
                                 strcmp(e->d_name + l - 4, ".png") == 0;
        if (ok && cx_strlist_push(out, e->d_name) < 0) {
            closedir(d);
            return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        }
    }
    closedir(d);
    qsort(out->items, out->len, sizeof *out->items, cmp_str);
    return 0;
}

static int collect_dir(const conf_t *cf, item_t **items, size_t *n,
                       cx_err_t *err) {
    cx_strlist_t classes = {0};
    size_t cap = 0;
    if (list_dir(cf->train, 1, &classes, err) < 0) return -1;
    if (!classes.len) {
        cx_strlist_free(&classes);
        return cx_err_set(err, CX_EINVAL, 0, "%s has no class directories",
                          cf->train);
    }
    for (size_t c = 0; c < classes.len; c++) {
        char dir[4400];
        cx_strlist_t files = {0};
        snprintf(dir, sizeof dir, "%.4000s/%.300s", cf->train,
                 classes.items[c]);
        if (cx_name_check("class directory", classes.items[c], err) < 0 ||
            list_dir(dir, 0, &files, err) < 0) {
            cx_strlist_free(&classes);
            return -1;
        }
        size_t take = files.len;
        if (cf->max_per_class > 0 && take > (size_t)cf->max_per_class)
            take = (size_t)cf->max_per_class;
        for (size_t i = 0; i < take; i++) {
            if (*n == cap) {
                cap = cap ? 2 * cap : 1024;
                item_t *m = realloc(*items, cap * sizeof *m);
                if (!m) goto oom;
                *items = m;
            }
            item_t *it = &(*items)[(*n)++];
            memset(it, 0, sizeof *it);
            snprintf(it->cls, sizeof it->cls, "%s", classes.items[c]);
            size_t pl = strlen(dir) + strlen(files.items[i]) + 2;
            if (!(it->path = malloc(pl))) goto oom;
            snprintf(it->path, pl, "%s/%s", dir, files.items[i]);
        }
        if (!take)
            fprintf(stderr, "cxcalibrate: warning: class %s has no images\n",
                    classes.items[c]);
        cx_strlist_free(&files);
        continue;
    oom:
        cx_strlist_free(&files);
        cx_strlist_free(&classes);
        return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    }
    cx_strlist_free(&classes);
    return 0;
}

static int collect_model(const conf_t *cf, const cx_model_t *m,
                         item_t **items, size_t *n, cx_err_t *err) {
    size_t nc = cx_model_class_count(m), per = (size_t)cf->per_class;
    *items = calloc(nc * per, sizeof **items);
    if (!*items) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    for (size_t c = 0; c < nc; c++)
        for (size_t i = 0; i < per; i++) {
            item_t *it = &(*items)[(*n)++];
            snprintf(it->cls, sizeof it->cls, "%s", cx_model_class_name(m, c));
            it->class_idx = (int)c;
            it->index = (uint32_t)i;
        }
    return 0;
}

/* ---- features, in parallel --------------------------------------------- */

static void measure_one(job_t *j, cx_feat_ws_t *ws, item_t *it) {
    cx_err_t e;
    uint16_t *px = NULL;
    uint32_t w = j->width, h = j->height;
    int depth = j->depth;
    if (j->model) {
        cx_sample_params_t p = {CX_SAMPLER_DDIM, (uint32_t)j->cf->steps, 1.0,
                                0.0, 16};
        px = malloc((size_t)w * h * sizeof *px);
        if (!px || cx_generate(j->model, (size_t)it->class_idx, &p,
                               (uint64_t)j->cf->seed * 1000 +
                                   (uint64_t)it->class_idx,
                               it->index, px, &e) < 0) {
            snprintf(it->why, sizeof it->why, "generate: %.520s",
                     px ? e.msg : "out of memory");
            goto done;
        }
    } else {
        char *data = NULL;
        size_t len = 0;
        if (cx_read_file(it->path, &data, &len, &e) < 0 ||
            cx_png_decode(data, len, 0, &px, &w, &h, &depth, &e) < 0) {
            snprintf(it->why, sizeof it->why, "%.600s: %.520s", it->path, e.msg);
            free(data);
            goto done;
        }
        free(data);
        if (w != j->width || h != j->height || depth != j->depth) {
            snprintf(it->why, sizeof it->why,
                     "%.600s: %ux%u %d-bit, the set is %ux%u %d-bit", it->path, w,
                     h, depth, j->width, j->height, j->depth);
            goto done;
        }
    }
    if (cx_feat_compute(ws, px, w, h, depth, &it->f, &e) < 0) {
        snprintf(it->why, sizeof it->why, "%.600s: %.520s", it->path ? it->path : "",
                 e.msg);
        goto done;
    }
    it->ok = 1;
done:
    if (!it->ok) atomic_fetch_add(&j->failed, 1);
    free(px);
}

static void measure_chunk(void *ctx, size_t k) {
    job_t *j = ctx;
    cx_feat_ws_t *ws = cx_feat_ws_new(NULL);
    size_t a = k * j->n / j->nchunks, b = (k + 1) * j->n / j->nchunks;
    for (size_t i = a; i < b; i++) {
        if (!ws) {
            snprintf(j->items[i].why, sizeof j->items[i].why, "out of memory");
            atomic_fetch_add(&j->failed, 1);
            continue;
        }
        measure_one(j, ws, &j->items[i]);
    }
    cx_feat_ws_destroy(ws);
}

/* The geometry of the first image of a directory training set. */
static int probe(const item_t *it, uint32_t *w, uint32_t *h, int *depth,
                 cx_err_t *err) {
    char *data = NULL;
    size_t len = 0;
    uint16_t *px = NULL;
    if (cx_read_file(it->path, &data, &len, err) < 0) return -1;
    int rc = cx_png_decode(data, len, 0, &px, w, h, depth, err);
    free(data);
    free(px);
    if (rc < 0) cx_err_wrap(err, "%s", it->path);
    return rc;
}

static int run(const conf_t *cf, cx_pool_t *pool, cx_err_t *err) {
    job_t j = {.cf = cf};
    cx_model_t *model = NULL;
    cx_calib_t *cal = NULL;
    cx_buf_t report = {0};
    int rc = -1;
    double t0 = cx_mono_ms();

    if (cf->model && cf->model[0]) {
        j.width = (uint32_t)cf->width;
        j.height = (uint32_t)cf->height;
        j.depth = 16;
        if (!(model = cx_model_open(cf->model, j.width, j.height, err)) ||
            collect_model(cf, model, &j.items, &j.n, err) < 0)
            goto done;
        j.model = model;
    } else {
        if (collect_dir(cf, &j.items, &j.n, err) < 0) goto done;
        if (!j.n) {
            cx_err_set(err, CX_EINVAL, 0, "%s has no images", cf->train);
            goto done;
        }
        if (probe(&j.items[0], &j.width, &j.height, &j.depth, err) < 0)
            goto done;
    }
    j.nchunks = 4 * (size_t)cx_pool_size(pool);
    if (j.nchunks > j.n) j.nchunks = j.n;
    cx_pool_for(pool, j.nchunks, measure_chunk, &j);
    if (atomic_load(&j.failed)) {
        for (size_t i = 0; i < j.n; i++)
            if (!j.items[i].ok) {
                cx_err_set(err, CX_EINVAL, 0, "%d images failed, first: %s",
                           atomic_load(&j.failed), j.items[i].why);
                break;
            }
        goto done;
    }
    CX_INFO("features measured images=%zu size=%ux%u depth=%d seconds=%.1f",
            j.n, j.width, j.height, j.depth, (cx_mono_ms() - t0) / 1000);
    if (!(cal = cx_calib_new(j.width, j.height, j.depth, err))) goto done;
    for (size_t i = 0; i < j.n; i++)
        if (cx_calib_add(cal, j.items[i].cls, &j.items[i].f, err) < 0)
            goto done;
    cx_calib_opts_t o;
    cx_calib_opts_default(&o);
    o.structure_k = cf->structure_k;
    o.privacy_factor = cf->privacy_factor;
    o.privacy_quantile = cf->privacy_quantile;
    o.privacy_queries = (size_t)cf->privacy_queries;
    o.privacy_budget = cf->privacy_budget;
    o.maha_margin = cf->maha_margin;
    o.llr_margin = cf->llr_margin;
    o.ref_per_class = (size_t)cf->ref_per_class;
    char source[4200];
    if (model)
        snprintf(source, sizeof source, "model %s, %lld per class, %d DDIM "
                 "steps, seed %lld", cf->model, cf->per_class, (int)cf->steps,
                 cf->seed);
    else
        snprintf(source, sizeof source, "%s", cf->train);
    if (cx_calib_write(cal, &o, cf->out, cf->name, source, pool, &report,
                       err) < 0)
        goto done;
    /* Read it back exactly as the validator will. */
    cx_profile_t *p = cx_profile_load(cf->out, cf->name, err);
    if (!p) {
        cx_err_wrap(err, "written profile does not load");
        goto done;
    }
    cx_profile_destroy(p);
    fwrite(report.data, 1, report.len, stdout);
    printf("wrote %s/%s.json and %s/%s.feat in %.1f s (exact search: %s)\n",
           cf->out, cf->name, cf->out, cf->name, (cx_mono_ms() - t0) / 1000,
           cx_knn_isa_name(cx_knn_get_isa()));
    rc = 0;
done:
    for (size_t i = 0; i < j.n; i++) free(j.items[i].path);
    free(j.items);
    cx_calib_destroy(cal);
    cx_model_destroy(model);
    cx_buf_free(&report);
    return rc;
}

int main(int argc, char **argv) {
    conf_t cf = {0};
    cx_err_t err;
    int status = 2;
    int c = cx_conf_load(table, &cf, "cxcalibrate", argc, argv, &err);
    if (c == 1) {
        status = 0;
        goto done;
    }
    if (c < 0) {
        fprintf(stderr, "cxcalibrate: %s\n", err.msg);
        goto done;
    }
    cx_log_level_t lvl = CX_LOG_INFO;
    cx_log_level_parse(cf.log_level, &lvl);
    cx_log_init("cxcalibrate", lvl);
    int have_train = cf.train && cf.train[0], have_model = cf.model && cf.model[0];
    if (have_train == have_model || !cf.out || !cf.out[0] || !cf.name ||
        !cf.name[0]) {
        fprintf(stderr, "usage: cxcalibrate (--train DIR | --model CKPT "
                        "--per-class N) --out DIR --name NAME (--help)\n");
        goto done;
    }
    cx_pool_t *pool = cx_pool_new((unsigned)cf.threads, &err);
    if (!pool) {
        fprintf(stderr, "cxcalibrate: %s\n", err.msg);
        status = 1;
        goto done;
    }
    status = run(&cf, pool, &err) == 0 ? 0 : 1;
    if (status) fprintf(stderr, "cxcalibrate: %s\n", err.msg);
    cx_pool_destroy(pool);
done:
    cx_conf_free(table, &cf);
    return status;
}
