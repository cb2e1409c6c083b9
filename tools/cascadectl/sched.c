/* cx_ctl_plan, cx_ctl_model, the watch estimate (sched.h). */
#include "sched.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cascade/util.h"
#include "model.h"
#include "report.h"
#include "sim.h"
#include "sync.h"

#define CX__CTL_REDIS_RETRY_MS 3000

int cx_ctl_plan(cx_ctl_t *c, const char *job_file, const char *pool_file,
                uint64_t seed) {
    cx_err_t err = {0};
    char *text = NULL;
    size_t len = 0;
    cx_simpool_t pool;
    cx_simjob_t job;
    if (!pool_file || !*pool_file) {
        fprintf(c->errout, "cascadectl: plan needs --pool POOL.json\n");
        return CX_CTL_USAGE;
    }
    if (cx_read_file(pool_file, &text, &len, &err) < 0 ||
        cx_simpool_parse(text, len, &pool, &err) < 0) {
        free(text);
        fprintf(c->errout, "cascadectl: pool %s: %s\n", pool_file, err.msg);
        return CX_CTL_USAGE;
    }
    free(text);
    int rc = CX_CTL_USAGE;
    if (cx_simjob_load(job_file, cx_now_ms(), &job, &err) < 0) {
        fprintf(c->errout, "cascadectl: invalid job file: %s\n", err.msg);
        goto done;
    }
    cx_sim_conf_t conf;
    cx_sim_conf_default(&conf);
    conf.seed = seed;
    cx_sim_report_t r;
    double t0 = cx_mono_ms();
    if (cx_sim_run(&pool, &job, 1, &conf, &r, &err) < 0) {
        fprintf(c->errout, "cascadectl: plan: %s\n", err.msg);
        goto done;
    }
    double wall = (cx_mono_ms() - t0) / 1000.0;
    if (c->json) {
        char *s = cx_simrep_json(&r, &wall, 1, &job, 1);
        if (s) fprintf(c->out, "%s\n", s);
        free(s);
    } else {
        fprintf(c->out, "plan for job %s on pool %s (simulated, seed %" PRIu64
                        ")\n",
                job.id, pool.name, seed);
        cx_simrep_print(c->out, &r, &job, 1, wall);
    }
    /* A run the simulator could not finish, or a deadline it misses, is
     * what the plan is for: say so in the exit status too. */
    rc = !r.finished || r.job_late[0] ? CX_CTL_FAILED : CX_CTL_OK;
done:
    cx_simpool_release(&pool);
    return rc;
}

typedef struct row {
    char utype[CX_TPUT_NAME_MAX + 32], gpu[CX_TPUT_NAME_MAX];
    double mean, var;
    unsigned long long n;
} row_t;

static int row_cmp(const void *a, const void *b) {
    const row_t *x = a, *y = b;
    int d = strcmp(x->utype, y->utype);
    return d ? d : strcmp(x->gpu, y->gpu);
}

int cx_ctl_model(cx_ctl_t *c) {
    cx_err_t err = {0};
    cx_redis_t *r = cx_redis_new(c->redis_url, CX__CTL_REDIS_RETRY_MS, &err);
    redisReply *rep = r ? cx_redis_cmd(r, &err, "HGETALL cx:tput") : NULL;
    if (!rep) {
        fprintf(c->errout, "cascadectl: redis %s: %s\n", c->redis_url, err.msg);
        cx_redis_destroy(r);
        return CX_CTL_INFRA;
    }
    size_t n = rep->type == REDIS_REPLY_ARRAY ? rep->elements / 2 : 0, k = 0;
    row_t *rows = calloc(n ? n : 1, sizeof *rows);
    for (size_t i = 0; rows && i < n; i++) {
        row_t *w = &rows[k];
        const redisReply *f = rep->element[2 * i], *v = rep->element[2 * i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            cx_sync_tput_field(f->str, w->utype, sizeof w->utype, w->gpu,
                               sizeof w->gpu) < 0 ||
            sscanf(v->str, "%lf %lf %llu", &w->mean, &w->var, &w->n) != 3)
            continue;
        k++;
    }
    freeReplyObject(rep);
    cx_redis_destroy(r);
    if (!rows) return CX_CTL_INFRA;
    qsort(rows, k, sizeof *rows, row_cmp);
    if (c->json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; arr && i < k; i++) {
            cJSON *o = cJSON_CreateObject();
            if (!o) continue;
            cJSON_AddStringToObject(o, "unit_type", rows[i].utype);
            cJSON_AddStringToObject(o, "gpu_type", rows[i].gpu);
            cJSON_AddNumberToObject(o, "sec_per_sample", exp(rows[i].mean));
            cJSON_AddNumberToObject(o, "log_sd", sqrt(rows[i].var));
            cJSON_AddNumberToObject(o, "observations", (double)rows[i].n);
            cJSON_AddItemToArray(arr, o);
        }
        char *s = arr ? cJSON_Print(arr) : NULL;
        if (s) fprintf(c->out, "%s\n", s);
        free(s);
        cJSON_Delete(arr);
    } else if (!k) {
        fprintf(c->out, "no rates learned yet (cx:tput is empty)\n");
    } else {
        fprintf(c->out, "%-36s %-10s %12s %8s %8s\n", "unit type", "gpu",
                "s/sample", "+/-", "units");
        for (size_t i = 0; i < k; i++)
            fprintf(c->out, "%-36s %-10s %12.4f %7.1f%% %8llu\n",
                    rows[i].utype, rows[i].gpu, exp(rows[i].mean),
                    100 * sqrt(rows[i].var), rows[i].n);
    }
    free(rows);
    return CX_CTL_OK;
}

static void hhmmss(char *buf, size_t size, int64_t ms, int date) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, date ? "%Y-%m-%d %H:%M:%SZ" : "%H:%M:%S", &tm);
}

int cx_ctl_eta_format(const char *const *fields, const char *const *values,
                      size_t n, int64_t now_ms, char *buf, size_t size) {
    int64_t eta = 0, lo = 0, hi = 0;
    int late = 0, known = 0;
    double rate = 0;
    char risk[16] = "";
    for (size_t i = 0; i < n; i++) {
        const char *f = fields[i], *v = values[i];
        if (!strcmp(f, "eta_ms")) eta = strtoll(v, NULL, 10);
        else if (!strcmp(f, "lo_ms")) lo = strtoll(v, NULL, 10);
        else if (!strcmp(f, "hi_ms")) hi = strtoll(v, NULL, 10);
        else if (!strcmp(f, "late")) late = atoi(v);
        else if (!strcmp(f, "known")) known = atoi(v);
        else if (!strcmp(f, "rate")) rate = strtod(v, NULL);
        else if (!strcmp(f, "risk")) snprintf(risk, sizeof risk, "%s", v);
    }
    buf[0] = '\0';
    if (!known || eta <= 0) return 0;
    char e[32], l[16], h[16], left[32];
    hhmmss(e, sizeof e, eta, 1);
    hhmmss(l, sizeof l, lo, 0);
    hhmmss(h, sizeof h, hi, 0);
    cx_ctl_duration(left, sizeof left, (double)(eta - now_ms) / 1000.0);
    snprintf(buf, size, "ETA %s (in %s; %s .. %s), pool %.1f samples/s%s", e,
             left, l, h, rate,
             !strcmp(risk, "missed") ? ", DEADLINE MISSED"
             : late || !strcmp(risk, "at_risk") ? ", DEADLINE AT RISK"
                                                 : "");
    return 1;
}

int cx_ctl_eta_line(cx_redis_t *r, const char *job, int64_t now_ms,
                    char *buf, size_t size) {
    cx_err_t err = {0};
    buf[0] = '\0';
    redisReply *rep = cx_redis_cmd(r, &err, "HGETALL cx:job:%s:eta", job);
    if (!rep) return 0;
    size_t n = rep->type == REDIS_REPLY_ARRAY ? rep->elements / 2 : 0;
    const char **f = calloc(n ? n : 1, sizeof *f), **v = calloc(n ? n : 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; f && v && i < n; i++) {
        const redisReply *a = rep->element[2 * i], *b = rep->element[2 * i + 1];
        if (a->type != REDIS_REPLY_STRING || b->type != REDIS_REPLY_STRING)
            continue;
        f[k] = a->str;
        v[k++] = b->str;
    }
    int rc = f && v ? cx_ctl_eta_format(f, v, k, now_ms, buf, size) : 0;
    free(f);
    free(v);
    freeReplyObject(rep);
    return rc;
}
