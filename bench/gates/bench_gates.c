/* bench_gates: what the quality gates cost per 512x512 16-bit image on one
 * core -- all four families, with the privacy gate's exact search against
 * 100,000 and 1,000,000 training feature vectors -- beside the reference
 * product's 200 ms (docs/GATES.md, "Cost").
 *
 *   bench_gates [--per-class N] [--images M] [--rows 100000,1000000]
 *               [--batch 512] [--size 512] [--steps 8] [--isa auto|avx2|
 *               portable] [--profile-dir DIR --profile NAME] [--seconds S]
 *
 * The profile is calibrated here from the reference generator (N samples
 * per class) unless one is named. The test images are M fresh samples
 * (other seeds). The privacy index holds the profile's real training rows
 * plus synthetic privacy vectors (z-scored 64-d Gaussians, like real ones)
 * up to each --rows size; every search is checked against brute force on
 * some queries. One thread throughout; the machine's other load shows in
 * the figures (run it twice). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "calib.h"
#include "cascade/gen.h"
#include "cascade/png16.h"
#include "cascade/util.h"
#include "judge.h"

#define REFERENCE_MS 200.0

/* This thread's CPU time: the per-core cost, whatever else the machine
 * runs (wall-clock figures on a shared machine mostly measure waiting). */
static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct opts {
    int per_class, images, batch, size, steps;
    double seconds;
    const char *rows, *isa, *profile_dir, *profile;
} opts_t;

static void die(const char *what, const cx_err_t *e) {
    fprintf(stderr, "bench_gates: %s: %s\n", what, e ? e->msg : "");
    exit(1);
}

static cx_profile_t *calibrate(const opts_t *o, cx_model_t *m,
                               cx_feat_ws_t *ws, char *dir) {
    cx_err_t e;
    double t0 = cx_mono_ms();
    snprintf(dir, 256, "%s/bench-gates-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) die("mkdtemp", NULL);
    cx_calib_t *cal = cx_calib_new((uint32_t)o->size, (uint32_t)o->size, 16, &e);
    uint16_t *px = malloc((size_t)o->size * o->size * sizeof *px);
    cx_sample_params_t sp = {CX_SAMPLER_DDIM, (uint32_t)o->steps, 1.0, 0.0, 16};
    for (size_t c = 0; c < cx_model_class_count(m); c++)
        for (int i = 0; i < o->per_class; i++) {
            cx_feat_t f;
            if (cx_generate(m, c, &sp, 1000 + c, (uint32_t)i, px, &e) < 0 ||
                cx_feat_compute(ws, px, (uint32_t)o->size, (uint32_t)o->size,
                                16, &f, &e) < 0 ||
                cx_calib_add(cal, cx_model_class_name(m, c), &f, &e) < 0)
                die("training set", &e);
        }
    cx_calib_opts_t co;
    cx_calib_opts_default(&co);
    if (cx_calib_write(cal, &co, dir, "bench", "bench_gates", NULL, NULL,
                       &e) < 0)
        die("calibration", &e);
    cx_calib_destroy(cal);
    free(px);
    cx_profile_t *p = cx_profile_load(dir, "bench", &e);
    if (!p) die("profile", &e);
    printf("profile: calibrated on %d samples/class of ref-cxr-v0 at %dx%d "
           "(%d DDIM steps) in %.1f s\n",
           o->per_class, o->size, o->size, o->steps,
           (cx_mono_ms() - t0) / 1000);
    return p;
}

/* Synthetic privacy vectors: z-scored Gaussian 64-vectors (norm 8). */
static void synth_row(uint64_t *s, float *v) {
    double x[CX_FEAT_PRIV_DIM], m = 0, q = 0;
    for (int d = 0; d < CX_FEAT_PRIV_DIM; d += 2) {
        double u[2];
        for (int k = 0; k < 2; k++) {
            *s ^= *s << 13;
            *s ^= *s >> 7;
            *s ^= *s << 17;
            u[k] = ((double)(*s >> 11) + 0.5) / 9007199254740992.0;
        }
        double r = sqrt(-2 * log(u[0]));
        x[d] = r * cos(2 * M_PI * u[1]);
        x[d + 1] = r * sin(2 * M_PI * u[1]);
    }
    for (int d = 0; d < CX_FEAT_PRIV_DIM; d++) m += x[d];
    m /= CX_FEAT_PRIV_DIM;
    for (int d = 0; d < CX_FEAT_PRIV_DIM; d++) q += (x[d] - m) * (x[d] - m);
    q = sqrt(q / CX_FEAT_PRIV_DIM);
    for (int d = 0; d < CX_FEAT_PRIV_DIM; d++) v[d] = (float)((x[d] - m) / q);
}

/* ms per query of the exact search over `rows` vectors, one thread. */
static double privacy_ms(const cx_profile_t *p, size_t rows, const double *q,
                         size_t batch, double *cand) {
    cx_err_t e;
    const cx_knn_t *real = cx_profile_knn(p);
    size_t nreal = cx_knn_size(real);
    float *m = malloc(rows * CX_FEAT_PRIV_DIM * sizeof *m);
    if (!m) die("privacy rows", NULL);
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < rows; i++) {
        if (i < nreal) cx_knn_row(real, i, m + i * CX_FEAT_PRIV_DIM);
        else synth_row(&s, m + i * CX_FEAT_PRIV_DIM);
    }
    cx_knn_t *k = cx_knn_new(m, rows, CX_FEAT_PRIV_DIM, CX_FEAT_PRIV_DIM, &e);
    free(m);
    if (!k) die("privacy index", &e);
    cx_knn_hit_t *h = malloc(batch * sizeof *h);
    double t0 = cpu_ms();
    if (cx_knn_search(k, q, batch, CX_FEAT_PRIV_DIM, NULL, NULL, h, &e) < 0)
        die("search", &e);
    double ms = (cpu_ms() - t0) / (double)batch;
    double c = 0;
    for (size_t i = 0; i < batch; i++) c += h[i].candidates;
    *cand = c / (double)batch;
    /* exactness on a few queries */
    for (size_t i = 0; i < batch; i += batch / 8 ? batch / 8 : 1) {
        cx_knn_hit_t b = cx_knn_brute(k, q + i * CX_FEAT_PRIV_DIM, -1);
        if (b.index != h[i].index || b.dist != h[i].dist) {
            fprintf(stderr, "bench_gates: query %zu: search %lld %.17g, "
                    "brute force %lld %.17g\n", i, (long long)h[i].index,
                    h[i].dist, (long long)b.index, b.dist);
            exit(1);
        }
    }
    free(h);
    cx_knn_destroy(k);
    return ms;
}

static void parse(int argc, char **argv, opts_t *o) {
    static const struct option lo[] = {
        {"per-class", 1, 0, 'n'}, {"images", 1, 0, 'm'}, {"rows", 1, 0, 'r'},
        {"batch", 1, 0, 'b'},     {"size", 1, 0, 's'},   {"steps", 1, 0, 't'},
        {"isa", 1, 0, 'i'},       {"profile-dir", 1, 0, 'd'},
        {"profile", 1, 0, 'p'},   {"seconds", 1, 0, 'S'}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'n': o->per_class = atoi(optarg); break;
        case 'm': o->images = atoi(optarg); break;
        case 'r': o->rows = optarg; break;
        case 'b': o->batch = atoi(optarg); break;
        case 's': o->size = atoi(optarg); break;
        case 't': o->steps = atoi(optarg); break;
        case 'i': o->isa = optarg; break;
        case 'd': o->profile_dir = optarg; break;
        case 'p': o->profile = optarg; break;
        case 'S': o->seconds = atof(optarg); break;
        default:
            fprintf(stderr, "usage: bench_gates [--per-class N] [--images M] "
                    "[--rows 100000,1000000] [--batch 512] [--size 512] "
                    "[--steps 8] [--isa auto|avx512|avx2|portable] "
                    "[--profile-dir DIR --profile NAME] [--seconds S]\n");
            exit(c == 'h' ? 0 : 2);
        }
    }
    if (o->per_class < 2 || o->images < 1 || o->batch < 1 || o->size < 64)
        exit(2);
}

int main(int argc, char **argv) {
    opts_t o = {.per_class = 200, .images = 64, .batch = 512, .size = 512,
                .steps = 8, .seconds = 3, .rows = "100000,1000000",
                .isa = "auto"};
    parse(argc, argv, &o);
    cx_knn_isa_t isa = !strcmp(o.isa, "portable") ? CX_KNN_PORTABLE
                       : !strcmp(o.isa, "avx2")   ? CX_KNN_AVX2
                       : !strcmp(o.isa, "avx512") ? CX_KNN_AVX512
                                                  : CX_KNN_AUTO;
    if (cx_knn_set_isa(isa) < 0) die("this CPU lacks that --isa", NULL);
    cx_err_t e;
    const uint32_t S = (uint32_t)o.size;
    cx_model_t *m = cx_model_open("ref-cxr-v0", S, S, &e);
    cx_feat_ws_t *ws = cx_feat_ws_new(&e);
    if (!m || !ws) die("setup", &e);
    char dir[256] = "";
    cx_profile_t *p = o.profile_dir && o.profile
                          ? cx_profile_load(o.profile_dir, o.profile, &e)
                          : calibrate(&o, m, ws, dir);
    if (!p) die("profile", &e);
    const cx_gate_limits_t *lim = cx_profile_limits(p);

    /* Fresh samples of every class, and their PNGs for the decode figure. */
    size_t npx = (size_t)S * S, nc = cx_model_class_count(m);
    uint16_t *imgs = malloc((size_t)o.images * npx * sizeof *imgs);
    int *cls = malloc((size_t)o.images * sizeof *cls);
    cx_buf_t png = {0};
    cx_sample_params_t sp = {CX_SAMPLER_DDIM, (uint32_t)o.steps, 1.0, 0.0, 16};
    for (int i = 0; i < o.images; i++) {
        cls[i] = i % (int)nc;
        if (cx_generate(m, (size_t)cls[i], &sp, 9000 + (uint64_t)cls[i],
                        (uint32_t)i, imgs + (size_t)i * npx, &e) < 0)
            die("generate", &e);
    }
    if (cx_png_encode(imgs, S, S, 16, 1, &png, &e) < 0) die("png", &e);

    /* Gates without privacy, one thread, repeated for stable figures. */
    cx_feat_timing_t ft = {0};
    cx_profile_timing_t pt = {0};
    double judge_ms = 0, decode_ms = 0;
    cx_feat_t *feats = calloc((size_t)o.images, sizeof *feats);
    cx_gate_verdict_t *gv = calloc((size_t)o.images, sizeof *gv);
    long reps = 0, n = 0;
    double t_start = cx_mono_ms(), c_start = cpu_ms();
    do {
        for (int i = 0; i < o.images; i++, n++) {
            cx_profile_scores_t sc;
            if (cx_feat_compute_timed(ws, imgs + (size_t)i * npx, S, S, 16,
                                      &feats[i], &ft, &e) < 0)
                die("features", &e);
            cx_profile_score_timed(p, (size_t)cls[i], &feats[i], NULL, &sc,
                                   &pt);
            double t0 = cx_mono_ms();
            cx_gate_judge(p, (size_t)cls[i], lim, &feats[i], NULL, &gv[i]);
            judge_ms += cx_mono_ms() - t0;
        }
        reps++;
    } while (cx_mono_ms() - t_start < o.seconds * 1000);
    double cpu_loop = cpu_ms() - c_start, wall_loop = cx_mono_ms() - t_start;
    for (int i = 0; i < 8; i++) {
        uint16_t *px = NULL;
        uint32_t w, h;
        int d;
        double t0 = cx_mono_ms();
        if (cx_png_decode(png.data, png.len, 0, &px, &w, &h, &d, &e) < 0)
            die("decode", &e);
        decode_ms += cx_mono_ms() - t0;
        free(px);
    }
    decode_ms /= 8;
    /* Phases are timed by the wall clock inside the library; scale them to
     * the loop's CPU time (the split stays, the waiting goes). */
    double per = cpu_loop / wall_loop / (double)n;
    double artifacts = (ft.pass2 + ft.spectrum + ft.repeat) * per;
    double shared = (ft.pass1 + ft.hist) * per;
    double structural = (ft.structure + pt.structure) * per;
    double distributional = (pt.mahalanobis + pt.manifold + pt.projection) * per;
    /* cx_gate_judge recomputes the scores: its own cost is judge - score */
    double judge_only = judge_ms * per -
                        (pt.mahalanobis + pt.structure + pt.manifold +
                         pt.projection) * per / 1.0;
    if (judge_only < 0) judge_only = 0;

    /* Privacy queries: the test images' privacy views, cycled to a batch. */
    double *q = malloc((size_t)o.batch * CX_FEAT_PRIV_DIM * sizeof *q);
    for (int i = 0; i < o.batch; i++)
        for (int d = 0; d < CX_FEAT_PRIV_DIM; d++)
            q[(size_t)i * CX_FEAT_PRIV_DIM + d] =
                feats[i % o.images].vec[d] + (i / o.images) * 1e-3;
    int pass = 0;
    for (int i = 0; i < o.images; i++) {
        cx_knn_hit_t h;
        double qi[CX_FEAT_PRIV_DIM];
        for (int d = 0; d < CX_FEAT_PRIV_DIM; d++) qi[d] = feats[i].vec[d];
        if (cx_knn_search(cx_profile_knn(p), qi, 1, CX_FEAT_PRIV_DIM, NULL,
                          NULL, &h, &e) < 0)
            die("search", &e);
        cx_gate_judge_privacy(lim, h.dist, h.index, &gv[i]);
        pass += cx_gate_pass(&gv[i]);
    }

    printf("\nper 512x512 16-bit image, one core: thread CPU time (wall "
           "clock %.0f%% more on this machine), %ld images x %ld rounds; "
           "exact search: %s\n",
           100.0 * (wall_loop / cpu_loop - 1), n / reps, reps,
           cx_knn_isa_name(cx_knn_get_isa()));
    printf("  %-44s %8.3f ms\n", "shared: histogram + thumbnail (pass 1)",
           ft.pass1 * per);
    printf("  %-44s %8.3f ms\n", "shared: moments, percentiles, Otsu",
           ft.hist * per);
    printf("  %-44s %8.3f ms\n", "artifacts: Laplacian + centroid (pass 2)",
           ft.pass2 * per);
    printf("  %-44s %8.3f ms\n", "artifacts: Welch spectrum, hf_ratio",
           ft.spectrum * per);
    printf("  %-44s %8.3f ms\n", "artifacts: repeated patches (autocorr.)",
           ft.repeat * per);
    printf("  %-44s %8.3f ms\n", "structural: symmetry, thumbnail, envelope",
           structural);
    printf("  %-44s %8.3f ms\n", "distributional: Mahalanobis + class LLR",
           pt.mahalanobis * per);
    printf("  %-44s %8.3f ms\n", "distributional: k-NN manifold (P/R)",
           pt.manifold * per);
    printf("  %-44s %8.3f ms\n", "distributional: projection (Frechet)",
           pt.projection * per);
    double base = shared + artifacts + structural + distributional;
    printf("  %-44s %8.3f ms\n", "all but privacy", base);
    printf("  %-44s %8.3f ms  (not a gate; for reference)\n",
           "PNG decode (zlib level 1)", decode_ms);
    (void)judge_only;

    char rows[256];
    snprintf(rows, sizeof rows, "%s", o.rows);
    int ok = 1;
    for (char *tok = strtok(rows, ","); tok; tok = strtok(NULL, ",")) {
        size_t r = (size_t)strtoull(tok, NULL, 10);
        if (r < cx_knn_size(cx_profile_knn(p))) r = cx_knn_size(cx_profile_knn(p));
        double cand;
        double pms = privacy_ms(p, r, q, (size_t)o.batch, &cand);
        double total = base + pms;
        double target = r <= 100000 ? 5.0 : 10.0;
        printf("\nprivacy, exact search over %zu training vectors (batch %d, "
               "%.2f candidates verified per query): %.3f ms\n",
               r, o.batch, cand, pms);
        printf("  all four families: %.3f ms/image/core   reference product "
               "%.0f ms   ratio %.1fx   target <= %.0f ms: %s\n",
               total, REFERENCE_MS, REFERENCE_MS / total, target,
               total <= target ? "met" : "NOT MET");
        ok &= total <= target;
    }
    printf("\nfresh reference-generator samples passing every gate: %d of %d "
           "(%.1f %%)\n", pass, o.images, 100.0 * pass / o.images);
    printf("feature dimension %d (privacy view %d): see docs/GATES.md\n",
           CX_FEAT_DIM, CX_FEAT_PRIV_DIM);

    if (dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    cx_buf_free(&png);
    free(q);
    free(gv);
    free(feats);
    free(imgs);
    free(cls);
    cx_profile_destroy(p);
    cx_feat_ws_destroy(ws);
    cx_model_destroy(m);
    return ok ? 0 : 3;
}
