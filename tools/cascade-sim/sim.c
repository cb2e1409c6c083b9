/* The simulated pool and clock around the scheduling policy (sim.h). */
#include "sim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "rng.h"

enum { EV_END, EV_LOSS, EV_DETECT, EV_JOIN, EV_LEASE };

typedef struct ev {
    double t;
    uint64_t seq;
    int kind, w, arg;
    uint32_t gen;
} ev_t;

enum { SU_QUEUED, SU_ASSIGNED, SU_DONE, SU_DEAD, SU_DROPPED };

typedef struct sunit {
    int job, cls, state, pol, worker;
    uint32_t samples, attempt;
} sunit_t;

typedef struct sworker {
    int type, alive, dying, pol, slot;
    uint32_t gen;
    int q[CX_POL_MAX_SLOTS + 1], nq; /* assigned; q[0] runs when running */
    int running, run_fail, run_cold;
    double run_start, run_end, run_load;
    int warm[8];
    double warm_used[8];
    int nwarm;
    double joined, died;
    double busy_s, useful_s;
    int *list; /* naive static: its share */
    size_t nlist, caplist;
    char name[80];
} sworker_t;

typedef struct sjob {
    const cx_simjob_t *spec;
    int pol, ut, ck; /* policy job, model unit type, model checkpoint */
    double load_s, mem_gb;
    uint64_t committed[CX_SIM_MAX_CLASSES], generated[CX_SIM_MAX_CLASSES],
        passed[CX_SIM_MAX_CLASSES], outstanding[CX_SIM_MAX_CLASSES];
    uint32_t next_ordinal[CX_SIM_MAX_CLASSES];
    double pass[CX_SIM_MAX_CLASSES];
    uint64_t total_quota, total_committed;
    int done;
} sjob_t;

typedef struct sim {
    const cx_simpool_t *pool;
    cx_sim_conf_t conf;
    cx_sim_report_t *rep;
    cx_rng_t rng;
    double now;
    ev_t *heap;
    size_t nheap, capheap;
    uint64_t seq;
    sunit_t *units;
    size_t nunits, capunits;
    sworker_t *workers;
    size_t nworkers, capworkers;
    sjob_t jobs[CX_SIM_MAX_JOBS];
    size_t njobs, jobs_done;
    cx_tput_t *model;
    cx_pol_t *pol;
    int gtype[CX_SIM_MAX_TYPES]; /* model GPU type of each pool type */
    int *fifo; /* naive-pull: unit queue (ring) */
    size_t fhead, flen, fcap;
    size_t deal;      /* naive: next slot to deal a unit to */
    int *slot_worker; /* naive: the node now holding each original slot */
    size_t nslots;
    int oom;
} sim_t;

const char *cx_sim_mode_name(cx_sim_mode_t m) {
    switch (m) {
    case CX_SIM_POLICY: return "cascade";
    case CX_SIM_NAIVE: return "naive";
    default: return "naive-pull";
    }
}

void cx_sim_conf_default(cx_sim_conf_t *c) {
    memset(c, 0, sizeof *c);
    c->seed = 1;
    c->mode = CX_SIM_POLICY;
    c->drift_from = 0.01;
    c->max_sim_s = 60.0 * 86400;
}

/* ---- events ---- */

static int ev_less(const ev_t *a, const ev_t *b) {
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void ev_push(sim_t *s, double t, int kind, int w, int arg) {
    if (s->nheap == s->capheap) {
        size_t nc = s->capheap ? s->capheap * 2 : 1024;
        ev_t *h = realloc(s->heap, nc * sizeof *h);
        if (!h) {
            s->oom = 1;
            return;
        }
        s->heap = h;
        s->capheap = nc;
    }
    ev_t e = {t, s->seq++, kind, w, arg,
              w >= 0 ? s->workers[w].gen : 0};
    size_t i = s->nheap++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!ev_less(&e, &s->heap[up])) break;
        s->heap[i] = s->heap[up];
        i = up;
    }
    s->heap[i] = e;
}

static ev_t ev_pop(sim_t *s) {
    ev_t top = s->heap[0], last = s->heap[--s->nheap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const ev_t *cur = m == i ? &last : &s->heap[m];
        if (l < s->nheap && ev_less(&s->heap[l], cur)) m = l;
        cur = m == i ? &last : &s->heap[m];
        if (r < s->nheap && ev_less(&s->heap[r], cur)) m = r;
        if (m == i) break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (s->nheap) s->heap[i] = last;
    return top;
}

/* ---- units and the emulated planner ---- */

static void fifo_push(sim_t *s, int u) {
    if (s->flen == s->fcap) {
        size_t nc = s->fcap ? s->fcap * 2 : 1024;
        int *r = malloc(nc * sizeof *r);
        if (!r) {
            s->oom = 1;
            return;
        }
        for (size_t i = 0; i < s->flen; i++) r[i] = s->fifo[(s->fhead + i) % s->fcap];
        free(s->fifo);
        s->fifo = r;
        s->fcap = nc;
        s->fhead = 0;
    }
    s->fifo[(s->fhead + s->flen++) % s->fcap] = u;
}

static int list_push(sim_t *s, sworker_t *w, int u, int front) {
    if (w->nlist == w->caplist) {
        size_t nc = w->caplist ? w->caplist * 2 : 64;
        int *l = realloc(w->list, nc * sizeof *l);
        if (!l) {
            s->oom = 1;
            return -1;
        }
        w->list = l;
        w->caplist = nc;
    }
    if (front) {
        memmove(w->list + 1, w->list, w->nlist * sizeof *w->list);
        w->list[0] = u;
    } else {
        w->list[w->nlist] = u;
    }
    w->nlist++;
    return 0;
}

/* A unit waiting to be (re)placed, in each mode's own queue. */
static void enqueue(sim_t *s, int u, int retry_w) {
    sunit_t *su = &s->units[u];
    su->state = SU_QUEUED;
    su->worker = -1;
    if (s->conf.mode == CX_SIM_NAIVE_PULL) {
        fifo_push(s, u);
    } else if (s->conf.mode == CX_SIM_NAIVE) {
        /* Independent workers: a retry stays with its worker; new work
         * is dealt round the original nodes (a lost node's share moves to
         * its replacement). */
        int w = retry_w >= 0 ? retry_w
                             : s->slot_worker[s->deal++ % s->nslots];
        list_push(s, &s->workers[w], u, retry_w >= 0);
    }
}

static int issue(sim_t *s, int j, int c, uint32_t samples) {
    sjob_t *jb = &s->jobs[j];
    if (s->nunits == s->capunits) {
        size_t nc = s->capunits ? s->capunits * 2 : 4096;
        sunit_t *u = realloc(s->units, nc * sizeof *u);
        if (!u) {
            s->oom = 1;
            return -1;
        }
        s->units = u;
        s->capunits = nc;
    }
    int u = (int)s->nunits++;
    sunit_t *su = &s->units[u];
    memset(su, 0, sizeof *su);
    su->job = j;
    su->cls = c;
    su->samples = samples;
    su->pol = -1;
    jb->outstanding[c] += samples;
    s->rep->units_issued++;
    uint32_t ord = jb->next_ordinal[c]++;
    if (s->conf.mode == CX_SIM_POLICY) {
        char id[64];
        snprintf(id, sizeof id, "%d/%d/%u", j, c, ord);
        cx_pol_unit_spec_t sp = {.id = id, .job = jb->pol,
                                 .class_index = (uint32_t)c,
                                 .class_name = jb->spec->names[c],
                                 .utype = jb->ut, .samples = samples,
                                 .order = (uint64_t)u, .tag = (uint64_t)u};
        su->pol = cx_pol_unit_add(s->pol, &sp);
        if (su->pol < 0) s->oom = 1;
        su->state = SU_QUEUED;
    } else {
        enqueue(s, u, -1);
    }
    return u;
}

/* Issues units of class c for `n` samples. */
static void issue_samples(sim_t *s, int j, int c, uint64_t n) {
    uint32_t size = s->jobs[j].spec->unit_size;
    while (n > 0) {
        uint32_t k = n < size ? (uint32_t)n : size;
        issue(s, j, c, k);
        n -= k;
    }
}

/* The planner's reconcile for one class: the policy mode over-issues for
 * the observed pass rate, the naive ones issue what is missing. */
static void reconcile(sim_t *s, int j, int c) {
    sjob_t *jb = &s->jobs[j];
    if (jb->done) return;
    double pass = s->conf.mode == CX_SIM_POLICY
                      ? cx_pol_pass_rate(jb->generated[c], jb->passed[c],
                                         50, 0.05)
                      : 1.0;
    uint64_t need = cx_pol_issue_shortfall(jb->spec->quota[c],
                                           jb->committed[c],
                                           jb->outstanding[c], pass);
    if (need) issue_samples(s, j, c, need);
}

/* Initial plan: class-interleaved, as services/planner/plan.c. */
static void plan_job(sim_t *s, int j) {
    const cx_simjob_t *sp = s->jobs[j].spec;
    uint64_t left[CX_SIM_MAX_CLASSES];
    int more = 1;
    for (size_t c = 0; c < sp->nclasses; c++) left[c] = sp->quota[c];
    while (more && !s->oom) {
        more = 0;
        for (size_t c = 0; c < sp->nclasses; c++) {
            if (!left[c]) continue;
            uint32_t k = left[c] < sp->unit_size ? (uint32_t)left[c]
                                                 : sp->unit_size;
            issue(s, j, (int)c, k);
            left[c] -= k;
            more = 1;
        }
    }
}

/* ---- drift ---- */

static void drift(sim_t *s, int j) {
    sjob_t *jb = &s->jobs[j];
    if (!jb->total_committed) return;
    double frac = (double)jb->total_committed / (double)jb->total_quota;
    double worst = 0;
    for (size_t c = 0; c < jb->spec->nclasses; c++) {
        double share = (double)jb->committed[c] / (double)jb->total_committed;
        double target = (double)jb->spec->quota[c] / (double)jb->total_quota;
        double d = fabs(share - target);
        if (d > worst) worst = d;
    }
    if (frac >= 0.001 && worst > s->rep->worst_drift_early)
        s->rep->worst_drift_early = worst;
    if (frac >= s->conf.drift_from && worst > s->rep->worst_drift) {
        s->rep->worst_drift = worst;
        s->rep->drift_at_s = s->now;
    }
}

/* ---- workers ---- */

static int worker_warm(const sworker_t *w, int ck) {
    for (int i = 0; i < w->nwarm; i++)
        if (w->warm[i] == ck) return 1;
    return 0;
}

/* Loads ck on w (LRU within `models` and the node's memory). */
static void worker_load(sim_t *s, sworker_t *w, int ck, double mem_gb) {
    double gpu_mem = s->pool->gpus[w->type].mem_gb, used = mem_gb;
    for (int i = 0; i < w->nwarm; i++) {
        const char *name = cx_tput_ckpt_name(s->model, w->warm[i]);
        used += cx_simpool_mem_gb(s->pool, name);
    }
    while (w->nwarm && (w->nwarm >= (int)s->pool->models ||
                        (gpu_mem > 0 && used > gpu_mem))) {
        int v = 0;
        for (int i = 1; i < w->nwarm; i++)
            if (w->warm_used[i] < w->warm_used[v]) v = i;
        used -= cx_simpool_mem_gb(s->pool, cx_tput_ckpt_name(s->model, w->warm[v]));
        w->warm[v] = w->warm[w->nwarm - 1];
        w->warm_used[v] = w->warm_used[w->nwarm - 1];
        w->nwarm--;
    }
    w->warm[w->nwarm] = ck;
    w->warm_used[w->nwarm] = s->now;
    w->nwarm++;
}

static void start_next(sim_t *s, int wi) {
    sworker_t *w = &s->workers[wi];
    if (!w->alive || w->running || !w->nq) return;
    sunit_t *su = &s->units[w->q[0]];
    sjob_t *jb = &s->jobs[su->job];
    int cold = !worker_warm(w, jb->ck);
    if (cold) {
        worker_load(s, w, jb->ck, jb->mem_gb);
        s->rep->cold_loads++;
        if (s->conf.mode == CX_SIM_POLICY)
            cx_pol_worker_warm(s->pol, w->pol, w->warm, (size_t)w->nwarm);
    } else {
        for (int i = 0; i < w->nwarm; i++)
            if (w->warm[i] == jb->ck) w->warm_used[i] = s->now;
    }
    const cx_simjob_t *sp = jb->spec;
    double sps = cx_simpool_sps(s->pool, (size_t)w->type, sp->width,
                                sp->height, sp->steps);
    double sd = s->pool->time_jitter;
    double run = sps * su->samples *
                 (sd > 0 ? exp(sd * cx_rng_normal(&s->rng) - sd * sd / 2) : 1);
    w->run_fail = cx_rng_u01(&s->rng) < s->pool->batch_failure_rate;
    if (w->run_fail) run *= cx_rng_u01(&s->rng);
    w->running = 1;
    w->run_cold = cold;
    w->run_load = cold ? jb->load_s : 0;
    w->run_start = s->now;
    w->run_end = s->now + w->run_load + run;
    s->rep->attempts++;
    ev_push(s, w->run_end, EV_END, wi, w->q[0]);
}

static void assign(sim_t *s, int wi, int u) {
    sworker_t *w = &s->workers[wi];
    sunit_t *su = &s->units[u];
    su->state = SU_ASSIGNED;
    su->worker = wi;
    if (w->nq <= CX_POL_MAX_SLOTS) w->q[w->nq++] = u;
    start_next(s, wi);
}

static void pop_head(sworker_t *w) {
    memmove(w->q, w->q + 1, (size_t)(w->nq - 1) * sizeof w->q[0]);
    w->nq--;
}

/* Schedules the node's next loss (preemption or crash), if any. */
static void arm_loss(sim_t *s, int wi) {
    const cx_simgpu_t *g = &s->pool->gpus[s->workers[wi].type];
    double rate = (g->preempt_per_hour + s->pool->crash_per_hour) / 3600.0;
    if (rate <= 0) return;
    double t = s->now + cx_rng_exp(&s->rng, rate);
    if (t < s->conf.max_sim_s) ev_push(s, t, EV_LOSS, wi, 0);
}

static int add_worker(sim_t *s, int type, int replaces) {
    if (s->nworkers == s->capworkers) {
        size_t nc = s->capworkers ? s->capworkers * 2 : 256;
        sworker_t *w = realloc(s->workers, nc * sizeof *w);
        if (!w) {
            s->oom = 1;
            return -1;
        }
        s->workers = w;
        s->capworkers = nc;
    }
    int wi = (int)s->nworkers++;
    sworker_t *w = &s->workers[wi];
    memset(w, 0, sizeof *w);
    w->type = type;
    w->alive = 1;
    w->joined = s->now;
    w->pol = -1;
    snprintf(w->name, sizeof w->name, "%s-%d", s->pool->gpus[type].type, wi);
    w->slot = replaces >= 0 ? s->workers[replaces].slot : wi;
    if (s->slot_worker && (size_t)w->slot < s->nslots)
        s->slot_worker[w->slot] = wi;
    if (replaces >= 0) {
        /* The replacement node takes over the lost node's share. */
        sworker_t *old = &s->workers[replaces];
        w->list = old->list;
        w->nlist = old->nlist;
        w->caplist = old->caplist;
        old->list = NULL;
        old->nlist = old->caplist = 0;
    }
    if (s->conf.mode == CX_SIM_POLICY) {
        w->pol = cx_pol_worker(s->pol, w->name);
        if (w->pol < 0) {
            s->oom = 1;
            return -1;
        }
        double mem = s->pool->gpus[type].mem_gb;
        cx_pol_wspec_t ws = {.gtype = s->gtype[type],
                             .mem_budget = (uint64_t)(mem * 1e9),
                             .alive = 1, .placeable = 1};
        cx_pol_worker_set(s->pol, w->pol, &ws);
    }
    arm_loss(s, wi);
    return wi;
}

/* ---- scheduling, per mode ---- */

static void naive_pull(sim_t *s) {
    for (size_t i = 0; i < s->nworkers && s->flen; i++) {
        sworker_t *w = &s->workers[i];
        if (!w->alive || w->dying || w->nq) continue;
        int u = s->fifo[s->fhead];
        s->fhead = (s->fhead + 1) % s->fcap;
        s->flen--;
        assign(s, (int)i, u);
    }
}

static void naive_static(sim_t *s) {
    for (size_t i = 0; i < s->nworkers; i++) {
        sworker_t *w = &s->workers[i];
        if (!w->alive || w->dying || w->nq || !w->nlist) continue;
        int u = w->list[0];
        memmove(w->list, w->list + 1, (w->nlist - 1) * sizeof *w->list);
        w->nlist--;
        assign(s, (int)i, u);
    }
}

/* Sim worker of a policy worker handle (names are "<type>-<index>"). */
static int worker_of(const sim_t *s, int polw) {
    const char *id = cx_pol_worker_id(s->pol, polw);
    const char *dash = strrchr(id, '-');
    return dash ? atoi(dash + 1) : -1;
}

static void place(sim_t *s) {
    if (s->conf.mode == CX_SIM_NAIVE_PULL) {
        naive_pull(s);
        return;
    }
    if (s->conf.mode == CX_SIM_NAIVE) {
        naive_static(s);
        return;
    }
    cx_pol_pick_t pk;
    cx_pol_round(s->pol, s->now);
    while (cx_pol_next(s->pol, s->now, &pk)) {
        s->rep->decisions++;
        int u = (int)cx_pol_unit_tag(s->pol, pk.unit);
        int wi = worker_of(s, pk.worker);
        sworker_t *w = &s->workers[wi];
        if (!w->alive) {
            /* Silently dead but not yet noticed: the Assignment goes to a
             * partition nobody reads; recovered at detection. */
            s->units[u].state = SU_ASSIGNED;
            s->units[u].worker = wi;
            if (w->nq <= CX_POL_MAX_SLOTS) w->q[w->nq++] = u;
            continue;
        }
        assign(s, wi, u);
    }
}

/* ---- outcomes ---- */

/* A complete job's queued units are dropped (the planner stops them). */
static void drop_queued(sim_t *s, int j) {
    for (size_t u = 0; u < s->nunits; u++) {
        sunit_t *su = &s->units[u];
        if (su->job != j || su->state != SU_QUEUED) continue;
        su->state = SU_DROPPED;
        if (s->conf.mode == CX_SIM_POLICY)
            cx_pol_unit_drop(s->pol, su->pol, s->now);
    }
    if (s->conf.mode == CX_SIM_NAIVE_PULL) {
        size_t k = 0;
        for (size_t i = 0; i < s->flen; i++) {
            int u = s->fifo[(s->fhead + i) % s->fcap];
            if (s->units[u].state == SU_QUEUED)
                s->fifo[(s->fhead + k++) % s->fcap] = u;
        }
        s->flen = k;
    } else if (s->conf.mode == CX_SIM_NAIVE) {
        for (size_t i = 0; i < s->nworkers; i++) {
            sworker_t *w = &s->workers[i];
            size_t k = 0;
            for (size_t x = 0; x < w->nlist; x++)
                if (s->units[w->list[x]].state == SU_QUEUED)
                    w->list[k++] = w->list[x];
            w->nlist = k;
        }
    }
}

static void job_check_done(sim_t *s, int j) {
    sjob_t *jb = &s->jobs[j];
    if (jb->done || jb->total_committed < jb->total_quota) return;
    jb->done = 1;
    drop_queued(s, j);
    s->jobs_done++;
    s->rep->job_done_s[j] = s->now;
    if (jb->spec->deadline_s > 0 && s->now > jb->spec->deadline_s)
        s->rep->job_late[j] = 1;
}

static void unit_ok(sim_t *s, int wi, int u) {
    sunit_t *su = &s->units[u];
    sjob_t *jb = &s->jobs[su->job];
    sworker_t *w = &s->workers[wi];
    int c = su->cls;
    su->state = SU_DONE;
    s->rep->units_ok++;
    double run = w->run_end - w->run_start - w->run_load;
    w->useful_s += run;
    uint32_t pass = 0;
    for (uint32_t i = 0; i < su->samples; i++)
        pass += cx_rng_u01(&s->rng) < jb->pass[c];
    jb->outstanding[c] -= su->samples;
    jb->generated[c] += su->samples;
    jb->passed[c] += pass;
    s->rep->samples_generated += su->samples;
    uint64_t room = jb->spec->quota[c] - jb->committed[c];
    uint64_t add = pass < room ? pass : room;
    jb->committed[c] += add;
    jb->total_committed += add;
    s->rep->samples_committed += add;
    if (s->conf.mode == CX_SIM_POLICY) {
        int g = s->gtype[w->type];
        cx_tput_observe(s->model, jb->ut, g, su->samples, run);
        if (w->run_cold) cx_tput_observe_load(s->model, jb->ck, w->run_load);
        cx_pol_unit_done(s->pol, su->pol, s->now);
        int pc = cx_pol_class(s->pol, jb->pol, (uint32_t)c, NULL);
        cx_pol_class_set(s->pol, jb->pol, pc, jb->spec->quota[c],
                         jb->committed[c], jb->generated[c], jb->passed[c]);
    }
    drift(s, su->job);
    job_check_done(s, su->job);
    reconcile(s, su->job, c);
}

/* A failed attempt of u on worker wi (counted: excluded there). */
static void unit_failed(sim_t *s, int wi, int u) {
    sunit_t *su = &s->units[u];
    sjob_t *jb = &s->jobs[su->job];
    su->attempt++;
    if (su->attempt >= s->pool->max_attempts) {
        su->state = SU_DEAD;
        s->rep->dead++;
        jb->outstanding[su->cls] -= su->samples;
        if (s->conf.mode == CX_SIM_POLICY)
            cx_pol_unit_drop(s->pol, su->pol, s->now);
        reconcile(s, su->job, su->cls);
        return;
    }
    s->rep->retries++;
    if (s->conf.mode == CX_SIM_POLICY) {
        cx_pol_unit_exclude(s->pol, su->pol, s->workers[wi].pol);
        cx_pol_unit_requeue(s->pol, su->pol, su->attempt, s->now);
        su->state = SU_QUEUED;
    } else {
        enqueue(s, u, s->conf.mode == CX_SIM_NAIVE ? wi : -1);
    }
}

/* A unit released without fault (goodbye): no attempt is counted. */
static void unit_released(sim_t *s, int u) {
    sunit_t *su = &s->units[u];
    s->rep->lost++;
    if (s->conf.mode == CX_SIM_POLICY) {
        cx_pol_unit_requeue(s->pol, su->pol, su->attempt, s->now);
        su->state = SU_QUEUED;
    } else {
        enqueue(s, u, -1);
    }
}

static void worker_gone(sim_t *s, int wi) {
    sworker_t *w = &s->workers[wi];
    w->alive = 0;
    w->died = s->now;
    w->gen++;
    if (w->running) w->busy_s += s->now - w->run_start;
    w->running = 0;
    ev_push(s, s->now + s->pool->gpus[w->type].replace_s, EV_JOIN, -1, wi);
}

static void on_end(sim_t *s, const ev_t *e) {
    sworker_t *w = &s->workers[e->w];
    if (e->gen != w->gen || !w->running) return;
    w->running = 0;
    w->busy_s += w->run_end - w->run_start;
    int u = w->q[0];
    pop_head(w);
    if (w->run_fail) unit_failed(s, e->w, u);
    else unit_ok(s, e->w, u);
    if (w->dying) {
        /* A draining node leaves once its unit is done. */
        if (s->conf.mode == CX_SIM_POLICY) {
            cx_pol_wspec_t ws = {.gtype = s->gtype[w->type]};
            cx_pol_worker_set(s->pol, w->pol, &ws);
        }
        worker_gone(s, e->w);
        return;
    }
    start_next(s, e->w);
}

/* Policy mode: the units the lost node held, failed (silent) or released
 * (goodbye). */
static void recover(sim_t *s, int wi, int counted) {
    sworker_t *w = &s->workers[wi];
    while (w->nq) {
        int u = w->q[0];
        pop_head(w);
        if (counted) unit_failed(s, wi, u);
        else unit_released(s, u);
    }
}

static void on_loss(sim_t *s, const ev_t *e) {
    sworker_t *w = &s->workers[e->w];
    if (e->gen != w->gen || !w->alive || w->dying) return;
    const cx_simgpu_t *g = &s->pool->gpus[w->type];
    double pre = g->preempt_per_hour, all = pre + s->pool->crash_per_hour;
    int preempt = cx_rng_u01(&s->rng) * all < pre;
    int goodbye = preempt && cx_rng_u01(&s->rng) < s->pool->goodbye_fraction;
    if (preempt) s->rep->preemptions++;
    else s->rep->crashes++;
    int policy = s->conf.mode == CX_SIM_POLICY;
    if (goodbye && policy) {
        /* SIGTERM drain: queued units released at once; the running one
         * finishes if the notice allows. */
        cx_pol_wspec_t ws = {.gtype = s->gtype[w->type], .alive = 1,
                             .draining = 1, .placeable = 1};
        cx_pol_worker_set(s->pol, w->pol, &ws);
        int keep = w->running && w->run_end - s->now <= g->notice_s;
        while (w->nq > keep) {
            int u = w->q[w->nq - 1];
            w->nq--;
            unit_released(s, u);
        }
        if (keep) {
            w->dying = 1;
            return;
        }
        cx_pol_wspec_t gone = {.gtype = s->gtype[w->type]};
        cx_pol_worker_set(s->pol, w->pol, &gone);
        worker_gone(s, e->w);
        return;
    }
    worker_gone(s, e->w);
    if (policy) {
        /* Silent: the alive key lapses after detect_s. */
        ev_push(s, s->now + s->pool->detect_s, EV_DETECT, -1, e->w);
    } else if (s->conf.mode == CX_SIM_NAIVE_PULL) {
        ev_push(s, s->now + s->pool->lease_s, EV_LEASE, -1, e->w);
    } else {
        /* Independent: the replacement redoes the share, running unit
         * and queued first. */
        for (int i = w->nq - 1; i >= 0; i--) {
            s->units[w->q[i]].state = SU_QUEUED;
            list_push(s, w, w->q[i], 1);
        }
        w->nq = 0;
    }
}

static void on_detect(sim_t *s, const ev_t *e) {
    sworker_t *w = &s->workers[e->arg];
    cx_pol_wspec_t gone = {.gtype = s->gtype[w->type]};
    cx_pol_worker_set(s->pol, w->pol, &gone);
    recover(s, e->arg, 1);
}

static void on_lease(sim_t *s, const ev_t *e) {
    sworker_t *w = &s->workers[e->arg];
    while (w->nq) {
        int u = w->q[0];
        pop_head(w);
        s->rep->lost++;
        enqueue(s, u, -1);
    }
}

/* ---- setup ---- */

static int setup_model(sim_t *s, cx_err_t *err) {
    cx_tput_conf_t mc;
    cx_tput_conf_default(&mc);
    mc.ref_width = s->pool->ref_width;
    mc.ref_height = s->pool->ref_height;
    mc.ref_steps = s->pool->ref_steps;
    /* Flat prior: the pool's mean rate for every type, so the per-type
     * differences are learned from the simulated timings. */
    double mean = 0;
    for (size_t g = 0; g < s->pool->ngpus; g++)
        mean += s->pool->gpus[g].unit_s / s->pool->ref_samples;
    mc.default_sps = mean / (double)s->pool->ngpus;
    mc.default_load_s = s->pool->default_load_s;
    s->model = cx_tput_new(&mc);
    if (!s->model) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    if (s->pool->model_json &&
        cx_tput_configure_json(s->model, s->pool->model_json,
                               strlen(s->pool->model_json), err) < 0)
        return cx_err_wrap(err, "pool model");
    for (size_t g = 0; g < s->pool->ngpus; g++) {
        s->gtype[g] = cx_tput_gtype(s->model, s->pool->gpus[g].type);
        if (s->gtype[g] < 0)
            return cx_err_set(err, CX_EINVAL, 0, "too many GPU types");
    }
    return 0;
}

static int setup_jobs(sim_t *s, const cx_simjob_t *jobs, size_t n,
                      cx_err_t *err) {
    for (size_t j = 0; j < n; j++) {
        sjob_t *jb = &s->jobs[j];
        const cx_simjob_t *sp = &jobs[j];
        jb->spec = sp;
        if (!sp->nclasses || !sp->unit_size)
            return cx_err_set(err, CX_EINVAL, 0, "job %s: no classes", sp->id);
        jb->ut = cx_tput_utype(s->model, sp->checkpoint, sp->width,
                               sp->height, sp->steps);
        jb->ck = cx_tput_ckpt(s->model, sp->checkpoint);
        if (jb->ut < 0 || jb->ck < 0)
            return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        jb->load_s = cx_simpool_load_s(s->pool, sp->checkpoint);
        jb->mem_gb = cx_simpool_mem_gb(s->pool, sp->checkpoint);
        cx_tput_set_ckpt(s->model, jb->ck, jb->load_s,
                         (uint64_t)(jb->mem_gb * 1e9));
        for (size_t c = 0; c < sp->nclasses; c++) {
            jb->pass[c] = cx_simpool_pass(s->pool, sp->names[c]);
            jb->total_quota += sp->quota[c];
        }
        if (s->conf.mode == CX_SIM_POLICY) {
            jb->pol = cx_pol_job(s->pol, sp->id);
            if (jb->pol < 0) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
            cx_pol_job_set(s->pol, jb->pol, sp->tenant, sp->priority,
                           sp->deadline_s > 0 ? (int64_t)(sp->deadline_s * 1000)
                                              : 0,
                           j);
            for (size_t c = 0; c < sp->nclasses; c++) {
                int pc = cx_pol_class(s->pol, jb->pol, (uint32_t)c,
                                      sp->names[c]);
                cx_pol_class_set(s->pol, jb->pol, pc, sp->quota[c], 0, 0, 0);
            }
        }
    }
    s->njobs = n;
    return 0;
}

static void report_types(sim_t *s) {
    cx_sim_report_t *r = s->rep;
    r->ntypes = s->pool->ngpus;
    double alive[CX_SIM_MAX_TYPES] = {0}, busy[CX_SIM_MAX_TYPES] = {0},
           useful[CX_SIM_MAX_TYPES] = {0};
    for (size_t i = 0; i < s->nworkers; i++) {
        sworker_t *w = &s->workers[i];
        double end = w->alive ? s->now : w->died;
        if (w->running) w->busy_s += s->now - w->run_start;
        alive[w->type] += end - w->joined;
        busy[w->type] += w->busy_s;
        useful[w->type] += w->useful_s;
        r->cost += (end - w->joined) / 3600.0 *
                   s->pool->gpus[w->type].cost_per_hour;
    }
    for (size_t g = 0; g < s->pool->ngpus; g++) {
        cx_sim_type_report_t *t = &r->types[g];
        snprintf(t->type, sizeof t->type, "%s", s->pool->gpus[g].type);
        t->count = s->pool->gpus[g].count;
        t->busy = alive[g] > 0 ? busy[g] / alive[g] : 0;
        t->useful = alive[g] > 0 ? useful[g] / alive[g] : 0;
    }
}

double cx_sim_lower_bound(const cx_simpool_t *pool, const cx_simjob_t *jobs,
                          size_t njobs, double *work_s, double *warm_s) {
    double work = 0, warm = 0;
    for (size_t j = 0; j < njobs; j++) {
        const cx_simjob_t *sp = &jobs[j];
        double rate = 0, samples = 0;
        for (size_t g = 0; g < pool->ngpus; g++)
            rate += pool->gpus[g].count /
                    cx_simpool_sps(pool, g, sp->width, sp->height, sp->steps);
        for (size_t c = 0; c < sp->nclasses; c++)
            samples += (double)sp->quota[c] / cx_simpool_pass(pool, sp->names[c]);
        if (rate > 0) work += samples / rate;
        double l = cx_simpool_load_s(pool, sp->checkpoint);
        if (j == 0 || l < warm) warm = l;
    }
    if (work_s) *work_s = work;
    if (warm_s) *warm_s = warm;
    return work + warm;
}

static void sim_free(sim_t *s) {
    for (size_t i = 0; i < s->nworkers; i++) free(s->workers[i].list);
    free(s->workers);
    free(s->units);
    free(s->heap);
    free(s->fifo);
    free(s->slot_worker);
    cx_pol_destroy(s->pol);
    cx_tput_destroy(s->model);
}

int cx_sim_run(const cx_simpool_t *pool, const cx_simjob_t *jobs,
               size_t njobs, const cx_sim_conf_t *conf, cx_sim_report_t *out,
               cx_err_t *err) {
    sim_t s;
    memset(&s, 0, sizeof s);
    memset(out, 0, sizeof *out);
    if (!njobs || njobs > CX_SIM_MAX_JOBS)
        return cx_err_set(err, CX_EINVAL, 0, "1 to %d jobs", CX_SIM_MAX_JOBS);
    s.pool = pool;
    s.conf = *conf;
    s.rep = out;
    out->mode = conf->mode;
    out->drift_from = conf->drift_from;
    cx_rng_seed(&s.rng, conf->seed);
    int rc = -1;
    if (setup_model(&s, err) < 0) goto done;
    if (conf->mode == CX_SIM_POLICY) {
        cx_pol_conf_t pc;
        cx_pol_conf_default(&pc);
        pc.max_inflight = (int)pool->slots;
        pc.urgent_margin_s = conf->urgent_margin_s;
        s.pol = cx_pol_new(&pc, s.model);
        if (!s.pol) {
            cx_err_set(err, CX_ENOMEM, 0, "out of memory");
            goto done;
        }
    }
    if (setup_jobs(&s, jobs, njobs, err) < 0) goto done;
    for (size_t g = 0; g < pool->ngpus; g++) s.nslots += pool->gpus[g].count;
    s.slot_worker = calloc(s.nslots ? s.nslots : 1, sizeof *s.slot_worker);
    if (!s.slot_worker) {
        cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        goto done;
    }
    for (size_t g = 0; g < pool->ngpus; g++)
        for (uint32_t i = 0; i < pool->gpus[g].count; i++)
            add_worker(&s, (int)g, -1);
    for (size_t j = 0; j < njobs; j++) plan_job(&s, (int)j);
    place(&s);
    while (!s.oom && s.jobs_done < s.njobs && s.nheap) {
        ev_t e = ev_pop(&s);
        if (e.t > conf->max_sim_s) break;
        s.now = e.t;
        switch (e.kind) {
        case EV_END: on_end(&s, &e); break;
        case EV_LOSS: on_loss(&s, &e); break;
        case EV_DETECT: on_detect(&s, &e); break;
        case EV_LEASE: on_lease(&s, &e); break;
        case EV_JOIN:
            add_worker(&s, s.workers[e.arg].type, e.arg);
            break;
        }
        place(&s);
    }
    if (s.oom) {
        cx_err_set(err, CX_ENOMEM, 0, "simulation: out of memory");
        goto done;
    }
    out->finished = s.jobs_done == s.njobs;
    out->makespan_s = s.now;
    out->lower_bound_s = cx_sim_lower_bound(pool, jobs, njobs,
                                            &out->lb_work_s, &out->lb_warm_s);
    report_types(&s);
    rc = 0;
done:
    sim_free(&s);
    return rc;
}
