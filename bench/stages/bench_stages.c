/* bench_stages [--n N] [--size S] [--steps K]
 *
 * 1. Generates N samples per class of ref-cxr-v0 at SxS, 16 bit, encodes
 *    them as PNG, and prints each class's gate scores (min / max) and how
 *    many pass the default thresholds; then pure uniform noise.
 * 2. Validator cost per image on one thread: decode, sha256, gates.
 * 3. Validator batch throughput on the pool (all cores), through the store.
 * 4. Committer cost per sample (reserve, promote, manifest put-if-absent,
 *    staging cleanup) when CASCADE_REDIS_URL names a Redis. */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/gen.h"
#include "cascade/names.h"
#include "cascade/png16.h"
#include "commit.h"
#include "validate.h"

typedef struct minmax {
    double lo, hi;
} minmax_t;

static void mm_add(minmax_t *m, double v) {
    if (v < m->lo) m->lo = v;
    if (v > m->hi) m->hi = v;
}

static const cx_gate_thresholds_t defaults = {
    CX_GATE_DEFAULT_MIN_RANGE, CX_GATE_DEFAULT_MAX_CLIP,
    CX_GATE_DEFAULT_MAX_HF};

static void die(const char *what, const cx_err_t *e) {
    fprintf(stderr, "bench_stages: %s: %s\n", what, e ? e->msg : "");
    exit(1);
}

int main(int argc, char **argv) {
    unsigned n = 8, size = 512, steps = 50;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--n") == 0) n = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--size") == 0)
            size = (unsigned)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--steps") == 0)
            steps = (unsigned)atoi(argv[i + 1]);
    }
    cx_err_t e;
    cx_model_t *model = cx_model_open("ref-cxr-v0", size, size, &e);
    if (!model) die("model", &e);
    size_t ncls = cx_model_class_count(model);
    size_t total = ncls * n;
    cx_buf_t *pngs = calloc(total, sizeof *pngs);
    uint16_t *px = malloc((size_t)size * size * sizeof *px);
    cx_sample_params_t sp = {CX_SAMPLER_DDIM, steps, 1.0, 0.0, 16};

    printf("# gate scores, ref-cxr-v0 %ux%u 16-bit, %u samples/class, "
           "ddim %u steps\n",
           size, size, n, steps);
    printf("%-14s %8s %8s   %8s %8s   %8s %8s   %s\n", "class", "range_lo",
           "range_hi", "clip_lo", "clip_hi", "hf_lo", "hf_hi", "pass");
    double t_read = 0, t_dec = 0, t_sha = 0, t_gates = 0;
    for (size_t c = 0; c < ncls; c++) {
        minmax_t r = {DBL_MAX, -DBL_MAX}, cl = r, hf = r;
        unsigned pass = 0;
        for (unsigned i = 0; i < n; i++) {
            if (cx_generate(model, c, &sp, 0x5eed0000ULL + c, i, px, &e) < 0)
                die("generate", &e);
            cx_buf_t *b = &pngs[c * n + i];
            if (cx_png_encode(px, size, size, 16, 1, b, &e) < 0)
                die("encode", &e);
            cx_sample_result_t res = {0};
            cx_sample_timing_t t = {0};
            cx_validate_png(b->data, b->len, size, size, 16, &defaults, &res,
                            &t);
            t_dec += t.decode_ms;
            t_sha += t.sha_ms;
            t_gates += t.gates_ms;
            mm_add(&r, res.scores.range);
            mm_add(&cl, res.scores.clip);
            mm_add(&hf, res.scores.hf);
            pass += (unsigned)res.pass;
            if (!res.pass) printf("  fail %s #%u: %s\n",
                                  cx_model_class_name(model, c), i,
                                  res.reason);
        }
        printf("%-14s %8.4f %8.4f   %8.5f %8.5f   %8.4f %8.4f   %u/%u\n",
               cx_model_class_name(model, c), r.lo, r.hi, cl.lo, cl.hi, hf.lo,
               hf.hi, pass, n);
    }
    {
        uint64_t s = 42;
        for (size_t i = 0; i < (size_t)size * size; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            px[i] = (uint16_t)(s >> 48);
        }
        cx_buf_t b = {0};
        cx_png_encode(px, size, size, 16, 1, &b, NULL);
        cx_sample_result_t res = {0};
        cx_validate_png(b.data, b.len, size, size, 16, &defaults, &res, NULL);
        printf("%-14s %8.4f %8s   %8.5f %8s   %8.4f %8s   %s (%s)\n",
               "uniform-noise", res.scores.range, "", res.scores.clip, "",
               res.scores.hf, "", res.pass ? "pass" : "fail", res.reason);
        cx_buf_free(&b);
    }
    (void)t_read;
    printf("\n# validator, one thread, ms per %ux%u 16-bit image (mean of "
           "%zu)\n",
           size, size, total);
    printf("decode %.3f  sha256 %.3f  gates %.3f  total %.3f  (png %.0f KiB)\n",
           t_dec / total, t_sha / total, t_gates / total,
           (t_dec + t_sha + t_gates) / total,
           (double)pngs[0].len / 1024.0);

    /* Through the store, on the pool: one staged batch of every sample. */
    char dir[] = "/tmp/cx-bench-stages-XXXXXX";
    if (!mkdtemp(dir)) die("mkdtemp", NULL);
    cx_store_t *store = cx_store_open(dir, &e);
    if (!store) die("store", &e);
    const char *job = "job-bench";
    char unit_id[33];
    cx_unit_id(job, "normal", 0, 0, unit_id);
    Cascade__V1__GenerationParams gp = CASCADE__V1__GENERATION_PARAMS__INIT;
    gp.checkpoint = "ref-cxr-v0";
    gp.sampler = CASCADE__V1__SAMPLER__SAMPLER_DDIM;
    gp.steps = steps;
    gp.guidance_scale = 1.0;
    gp.width = gp.height = size;
    gp.bit_depth = 16;
    cx_unit_t unit = CASCADE__V1__WORK_UNIT__INIT;
    unit.job_id = (char *)job;
    unit.unit_id = unit_id;
    unit.class_name = "normal";
    unit.sample_count = (uint32_t)total;
    unit.params = &gp;
    Cascade__V1__StagedSample *ss = calloc(total, sizeof *ss);
    Cascade__V1__StagedSample **ssp = calloc(total, sizeof *ssp);
    char (*keys)[128] = calloc(total, sizeof *keys);
    for (size_t i = 0; i < total; i++) {
        cascade__v1__staged_sample__init(&ss[i]);
        snprintf(keys[i], sizeof keys[i], "%s/staging/%s/1/%zu.png", job,
                 unit_id, i);
        if (cx_store_put(store, keys[i], pngs[i].data, pngs[i].len, &e) < 0)
            die("stage", &e);
        ss[i].index = (uint32_t)i;
        ss[i].key = keys[i];
        ss[i].bytes = pngs[i].len;
        ssp[i] = &ss[i];
    }
    cx_staged_t sb = CASCADE__V1__STAGED_BATCH__INIT;
    sb.unit = &unit;
    sb.worker_id = "bench";
    sb.attempt = 1;
    sb.n_samples = total;
    sb.samples = ssp;
    cx_validator_t *v = cx_validator_new(&defaults, 0, &e);
    if (!v) die("validator", &e);
    cx_buf_t vout = {0};
    cx_validate_outcome_t oc;
    cx_validate_stats_t st;
    if (cx_validate_batch(v, store, &sb, &vout, &oc, &st, &e) < 0)
        die("validate batch", &e);
    printf("\n# validator batch of %zu through file:// store, %ld cores: "
           "%.1f ms, %.3f ms/sample wall, %zu passed\n",
           total, sysconf(_SC_NPROCESSORS_ONLN), st.ms, st.ms / total,
           st.passed);

    const char *url = getenv("CASCADE_REDIS_URL");
    if (!url) {
        printf("\n# committer: set CASCADE_REDIS_URL to measure\n");
    } else {
        cx_redis_t *r = cx_redis_new(url, 5000, &e);
        if (!r) die("redis", &e);
        redisReply *rep = cx_redis_cmd(r, &e, "DEL cx:job:%s:resv "
                                       "cx:job:%s:granted", job, job);
        if (rep) freeReplyObject(rep);
        rep = cx_redis_cmd(r, &e, "HSET cx:job:%s:quota normal 1000000000",
                           job);
        if (!rep) die("redis", &e);
        freeReplyObject(rep);
        cx_verdict_t *vd =
            cascade__v1__verdict__unpack(NULL, vout.len, vout.data);
        cx_buf_t rec = {0};
        cx_commit_result_t res;
        double t0 = cx_mono_ms();
        if (cx_commit_verdict(r, store, vd, &rec, &res, &e) < 0)
            die("commit", &e);
        if (cx_commit_cleanup(store, vd, &e) < 0) die("cleanup", &e);
        double ms = cx_mono_ms() - t0;
        printf("\n# committer: %u samples committed in %.1f ms, %.3f "
               "ms/sample (reserve + promote + manifest + cleanup)\n",
               res.committed, ms, ms / (res.committed ? res.committed : 1));
        cx_buf_free(&rec);
        cascade__v1__verdict__free_unpacked(vd, NULL);
        rep = cx_redis_cmd(r, &e, "DEL cx:job:%s:resv cx:job:%s:granted "
                           "cx:job:%s:quota", job, job, job);
        if (rep) freeReplyObject(rep);
        cx_redis_destroy(r);
    }
    cx_store_delete_prefix(store, job, NULL);
    cx_store_destroy(store);
    rmdir(dir);
    cx_buf_free(&vout);
    cx_validator_destroy(v);
    free(keys);
    free(ssp);
    free(ss);
    for (size_t i = 0; i < total; i++) cx_buf_free(&pngs[i]);
    free(pngs);
    free(px);
    cx_model_destroy(model);
    return 0;
}
