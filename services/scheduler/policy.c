/* The policy's index: jobs, classes, queues, units and workers. */
#include "policy_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cx_pol_conf_default(cx_pol_conf_t *c) {
    memset(c, 0, sizeof *c);
    c->max_inflight = 2;
    c->urgent_margin_s = 0;
    c->evict_weight = 1;
    c->exclusion_scan = 16;
    c->hold_for_warm = 1;
    c->prefetch_s = 10;
    c->pass_floor = 0.05;
    c->pass_min_samples = 50;
}

int cx__pol_grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc <= n) nc *= 2;
    void *q = realloc(*arr, nc * elem);
    if (!q) return -1;
    memset((char *)q + *cap * elem, 0, (nc - *cap) * elem);
    *arr = q;
    *cap = nc;
    return 0;
}

cx_pol_t *cx_pol_new(const cx_pol_conf_t *conf, cx_tput_t *model) {
    cx_pol_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    if (conf) p->conf = *conf;
    else cx_pol_conf_default(&p->conf);
    if (p->conf.max_inflight < 1) p->conf.max_inflight = 1;
    if (p->conf.max_inflight > CX_POL_MAX_SLOTS)
        p->conf.max_inflight = CX_POL_MAX_SLOTS;
    if (p->conf.exclusion_scan < 1) p->conf.exclusion_scan = 1;
    p->model = model;
    p->free_unit = -1;
    p->jmap = cx_smap_new();
    p->umap = cx_smap_new();
    p->wmap = cx_smap_new();
    p->tmap = cx_smap_new();
    if (!p->jmap || !p->umap || !p->wmap || !p->tmap) {
        cx_pol_destroy(p);
        return NULL;
    }
    return p;
}

void cx_pol_destroy(cx_pol_t *p) {
    if (!p) return;
    for (size_t j = 0; j < p->njobs; j++) {
        for (size_t c = 0; c < p->jobs[j].nclasses; c++)
            free(p->jobs[j].classes[c].queues);
        free(p->jobs[j].classes);
    }
    for (size_t q = 0; q < p->nqueues; q++) free(p->queues[q].ring);
    free(p->jobs);
    free(p->units);
    free(p->workers);
    free(p->queues);
    free(p->tenants);
    free(p->ckpts);
    free(p->free_list);
    free(p->wait_heap);
    cx_smap_destroy(p->jmap);
    cx_smap_destroy(p->umap);
    cx_smap_destroy(p->wmap);
    cx_smap_destroy(p->tmap);
    free(p);
}

cx_tput_t *cx_pol_model(cx_pol_t *p) { return p->model; }

pckpt_t *cx__pol_ckpt(cx_pol_t *p, int k) {
    if (k < 0) return NULL;
    size_t cap = p->nckpts;
    if ((size_t)k >= cap) {
        size_t nc = cap ? cap : 8;
        while (nc <= (size_t)k) nc *= 2;
        pckpt_t *q = realloc(p->ckpts, nc * sizeof *q);
        if (!q) return NULL;
        memset(q + cap, 0, (nc - cap) * sizeof *q);
        p->ckpts = q;
        p->nckpts = nc;
    }
    return &p->ckpts[k];
}

static int valid_id(const char *s) {
    return s && *s && strlen(s) < CX_POL_ID_MAX;
}

/* ---- tenants ---- */

static int tenant(cx_pol_t *p, const char *name) {
    int t = cx_smap_get(p->tmap, name);
    if (t >= 0) return t;
    if (strlen(name) >= CX_POL_ID_MAX ||
        cx__pol_grow((void **)&p->tenants, &p->capt, p->ntenants,
                     sizeof *p->tenants) < 0)
        return -1;
    t = (int)p->ntenants;
    if (cx_smap_put(p->tmap, name, t) < 0) return -1;
    snprintf(p->tenants[t].id, sizeof p->tenants[t].id, "%s", name);
    p->ntenants++;
    return t;
}

/* ---- jobs and classes ---- */

int cx_pol_job_find(const cx_pol_t *p, const char *id) {
    return valid_id(id) ? cx_smap_get(p->jmap, id) : -1;
}

int cx_pol_job(cx_pol_t *p, const char *id) {
    if (!valid_id(id)) return -1;
    int j = cx_smap_get(p->jmap, id);
    if (j >= 0) {
        p->jobs[j].live = 1;
        return j;
    }
    int t = tenant(p, "");
    if (t < 0 || cx__pol_grow((void **)&p->jobs, &p->capj, p->njobs,
                              sizeof *p->jobs) < 0)
        return -1;
    j = (int)p->njobs;
    if (cx_smap_put(p->jmap, id, j) < 0) return -1;
    pjob_t *jb = &p->jobs[j];
    memset(jb, 0, sizeof *jb);
    snprintf(jb->id, sizeof jb->id, "%s", id);
    jb->live = 1;
    jb->tenant = t;
    jb->seq = (uint64_t)j;
    jb->slack_s = INFINITY;
    p->njobs++;
    return j;
}

void cx_pol_job_set(cx_pol_t *p, int j, const char *tenant_id, int priority,
                    int64_t deadline_ms, uint64_t seq) {
    if (j < 0 || (size_t)j >= p->njobs) return;
    pjob_t *jb = &p->jobs[j];
    int t = tenant(p, tenant_id ? tenant_id : "");
    if (t >= 0 && t != jb->tenant) {
        /* In-flight units move their count along with the job. */
        p->tenants[jb->tenant].inflight_units -= jb->inflight_units;
        p->tenants[t].inflight_units += jb->inflight_units;
        jb->tenant = t;
    }
    jb->priority = priority;
    jb->deadline_ms = deadline_ms > 0 ? deadline_ms : 0;
    jb->seq = seq;
}

const char *cx_pol_job_id(const cx_pol_t *p, int j) {
    return j >= 0 && (size_t)j < p->njobs ? p->jobs[j].id : "";
}

int64_t cx_pol_job_deadline(const cx_pol_t *p, int j) {
    return j >= 0 && (size_t)j < p->njobs ? p->jobs[j].deadline_ms : 0;
}

size_t cx_pol_njobs(const cx_pol_t *p) { return p->njobs; }

int cx_pol_job_live(const cx_pol_t *p, int j) {
    return j >= 0 && (size_t)j < p->njobs && p->jobs[j].live;
}

int cx_pol_job_forget(cx_pol_t *p, int j) {
    if (j < 0 || (size_t)j >= p->njobs) return 0;
    pjob_t *jb = &p->jobs[j];
    if (jb->pending_units || jb->inflight_units) return 0;
    /* The handle stays (units and ids may still name it); it stops
     * counting as active and is revived by cx_pol_job. */
    jb->live = 0;
    return 1;
}

int cx_pol_class(cx_pol_t *p, int j, uint32_t index, const char *name) {
    if (j < 0 || (size_t)j >= p->njobs) return -1;
    pjob_t *jb = &p->jobs[j];
    for (size_t c = 0; c < jb->nclasses; c++)
        if (jb->classes[c].index == index) return (int)c;
    if (cx__pol_grow((void **)&jb->classes, &jb->capc, jb->nclasses,
                     sizeof *jb->classes) < 0)
        return -1;
    pclass_t *c = &jb->classes[jb->nclasses];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name ? name : "");
    c->index = index;
    return (int)jb->nclasses++;
}

size_t cx_pol_nclasses(const cx_pol_t *p, int j) {
    return j >= 0 && (size_t)j < p->njobs ? p->jobs[j].nclasses : 0;
}

static pclass_t *class_at(const cx_pol_t *p, int j, int c) {
    if (j < 0 || (size_t)j >= p->njobs || c < 0 ||
        (size_t)c >= p->jobs[j].nclasses)
        return NULL;
    return &p->jobs[j].classes[c];
}

void cx_pol_class_set(cx_pol_t *p, int j, int c, uint64_t quota,
                      uint64_t committed, uint64_t generated,
                      uint64_t passed) {
    pclass_t *k = class_at(p, j, c);
    if (!k) return;
    k->quota = quota;
    k->committed = committed;
    k->generated = generated;
    k->passed = passed > generated ? generated : passed;
}

void cx_pol_class_add_placed(cx_pol_t *p, int j, int c, double samples) {
    pclass_t *k = class_at(p, j, c);
    if (!k) return;
    k->placed += samples;
    if (k->placed < 0) k->placed = 0;
}

double cx__pol_pass(const cx_pol_t *p, const pclass_t *c) {
    return cx_pol_pass_rate(c->generated, c->passed, p->conf.pass_min_samples,
                            p->conf.pass_floor);
}

void cx_pol_class_view(const cx_pol_t *p, int j, int c,
                       cx_pol_class_view_t *out) {
    memset(out, 0, sizeof *out);
    const pclass_t *k = class_at(p, j, c);
    if (!k) return;
    out->name = k->name;
    out->class_index = k->index;
    out->quota = k->quota;
    out->committed = k->committed;
    out->pass = cx__pol_pass(p, k);
    out->placed = k->placed;
    out->pending_samples = k->pending_samples;
    out->inflight_samples = k->inflight_samples;
    out->pending_units = k->pending_units;
    out->inflight_units = k->inflight_units;
}

/* ---- queues ---- */

/* The class's queue for unit type ut (created when new); -1 OOM. */
static int queue_for(cx_pol_t *p, int j, int c, int ut) {
    pclass_t *k = &p->jobs[j].classes[c];
    for (size_t i = 0; i < k->nqueues; i++)
        if (p->queues[k->queues[i]].ut == ut) return k->queues[i];
    if (cx__pol_grow((void **)&p->queues, &p->capqs, p->nqueues,
                     sizeof *p->queues) < 0 ||
        cx__pol_grow((void **)&k->queues, &k->capq, k->nqueues,
                     sizeof *k->queues) < 0)
        return -1;
    int q = (int)p->nqueues++;
    pqueue_t *pq = &p->queues[q];
    memset(pq, 0, sizeof *pq);
    pq->job = j;
    pq->cls = c;
    pq->ut = ut;
    pq->ckpt = cx_tput_utype_ckpt(p->model, ut);
    k->queues[k->nqueues++] = q;
    return q;
}

static int ring_reserve(pqueue_t *q) {
    if (q->len < q->cap) return 0;
    size_t nc = q->cap ? q->cap * 2 : 16;
    qent_t *r = malloc(nc * sizeof *r);
    if (!r) return -1;
    for (size_t i = 0; i < q->len; i++) r[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = r;
    q->cap = nc;
    q->head = 0;
    return 0;
}

/* Pushes the unit (new generation) at the back or the front. */
static int enqueue(cx_pol_t *p, int u, int front) {
    punit_t *un = &p->units[u];
    pqueue_t *q = &p->queues[un->q];
    if (ring_reserve(q) < 0) return -1;
    un->gen++;
    qent_t e = {u, un->gen};
    if (front) {
        q->head = (q->head + q->cap - 1) % q->cap;
        q->ring[q->head] = e;
    } else {
        q->ring[(q->head + q->len) % q->cap] = e;
    }
    q->len++;
    return 0;
}

/* Pending counters of the unit's queue, class, job, checkpoint, total. */
static void count_pending(cx_pol_t *p, const punit_t *u, int sign) {
    pqueue_t *q = &p->queues[u->q];
    pjob_t *jb = &p->jobs[u->job];
    pclass_t *c = &jb->classes[u->cls];
    pckpt_t *k = cx__pol_ckpt(p, u->ckpt);
    int64_t s = sign * (int64_t)u->samples;
    q->pending_samples += (uint64_t)s;
    q->pending_units += (uint32_t)sign;
    c->pending_samples += (uint64_t)s;
    c->pending_units += (uint32_t)sign;
    jb->pending_samples += (uint64_t)s;
    jb->pending_units += (uint32_t)sign;
    if (k) k->pending_samples += (uint64_t)s;
    p->pending_samples += (uint64_t)s;
    p->pending_units += (uint64_t)(int64_t)sign;
}

static void count_inflight(cx_pol_t *p, const punit_t *u, int sign) {
    pjob_t *jb = &p->jobs[u->job];
    pclass_t *c = &jb->classes[u->cls];
    int64_t s = sign * (int64_t)u->samples;
    c->inflight_samples += (uint64_t)s;
    c->inflight_units += (uint32_t)sign;
    jb->inflight_samples += (uint64_t)s;
    jb->inflight_units += (uint32_t)sign;
    p->tenants[jb->tenant].inflight_units += (uint32_t)sign;
    p->inflight_samples += (uint64_t)s;
    p->inflight_units += (uint64_t)(int64_t)sign;
}

/* ---- units ---- */

int cx_pol_unit_add(cx_pol_t *p, const cx_pol_unit_spec_t *s) {
    if (!valid_id(s->id) || s->job < 0 || (size_t)s->job >= p->njobs ||
        s->utype < 0 || (size_t)s->utype >= cx_tput_nutypes(p->model))
        return -1;
    if (cx_smap_get(p->umap, s->id) >= 0) return -2;
    int c = cx_pol_class(p, s->job, s->class_index, s->class_name);
    if (c < 0) return -1;
    int q = queue_for(p, s->job, c, s->utype);
    if (q < 0) return -1;
    int u = p->free_unit;
    if (u >= 0) {
        p->free_unit = p->units[u].next_free;
    } else {
        if (cx__pol_grow((void **)&p->units, &p->capu, p->nunits,
                         sizeof *p->units) < 0)
            return -1;
        u = (int)p->nunits++;
    }
    punit_t *un = &p->units[u];
    uint32_t gen = un->gen; /* kept across reuse: stale entries stay stale */
    memset(un, 0, sizeof *un);
    snprintf(un->id, sizeof un->id, "%s", s->id);
    un->gen = gen;
    un->job = s->job;
    un->cls = c;
    un->q = q;
    un->ut = s->utype;
    un->ckpt = p->queues[q].ckpt;
    un->samples = s->samples;
    un->order = s->order;
    un->tag = s->tag;
    un->attempt = s->attempt;
    un->worker = -1;
    un->next_free = -1;
    if (cx_smap_put(p->umap, s->id, u) < 0 || enqueue(p, u, 0) < 0) {
        cx_smap_del(p->umap, s->id);
        un->state = CX_POL_NONE;
        un->next_free = p->free_unit;
        p->free_unit = u;
        return -1;
    }
    un->state = CX_POL_PENDING;
    p->jobs[s->job].live = 1;
    count_pending(p, un, +1);
    return u;
}

static punit_t *unit_at(const cx_pol_t *p, int u) {
    if (u < 0 || (size_t)u >= p->nunits ||
        p->units[u].state == CX_POL_NONE)
        return NULL;
    return &p->units[u];
}

int cx_pol_unit_find(const cx_pol_t *p, const char *id) {
    return valid_id(id) ? cx_smap_get(p->umap, id) : -1;
}

const char *cx_pol_unit_id(const cx_pol_t *p, int u) {
    const punit_t *un = unit_at(p, u);
    return un ? un->id : "";
}

int cx_pol_unit_job(const cx_pol_t *p, int u) {
    const punit_t *un = unit_at(p, u);
    return un ? un->job : -1;
}

int cx_pol_unit_class(const cx_pol_t *p, int u) {
    const punit_t *un = unit_at(p, u);
    return un ? un->cls : -1;
}

uint32_t cx_pol_unit_samples(const cx_pol_t *p, int u) {
    const punit_t *un = unit_at(p, u);
    return un ? un->samples : 0;
}

int cx_pol_unit_utype(const cx_pol_t *p, int u) {
    const punit_t *un = unit_at(p, u);
    return un ? un->ut : -1;
}

uint32_t cx_pol_unit_attempt(const cx_pol_t *p, int u) {
    const punit_t *un = unit_at(p, u);
    return un ? un->attempt : 0;
}

uint64_t cx_pol_unit_tag(const cx_pol_t *p, int u) {
    const punit_t *un = unit_at(p, u);
    return un ? un->tag : 0;
}

cx_pol_state_t cx_pol_unit_state(const cx_pol_t *p, int u) {
    const punit_t *un = unit_at(p, u);
    return un ? un->state : CX_POL_NONE;
}

int cx_pol_unit_worker(const cx_pol_t *p, int u) {
    const punit_t *un = unit_at(p, u);
    return un && un->state == CX_POL_INFLIGHT ? un->worker : -1;
}

size_t cx_pol_units(const cx_pol_t *p, int *out, size_t max) {
    size_t n = 0;
    for (size_t u = 0; u < p->nunits; u++) {
        if (p->units[u].state == CX_POL_NONE) continue;
        if (n < max) out[n] = (int)u;
        n++;
    }
    return n;
}

size_t cx_pol_job_pending(const cx_pol_t *p, int j, int *out, size_t max) {
    size_t n = 0;
    if (j < 0 || (size_t)j >= p->njobs) return 0;
    for (size_t u = 0; u < p->nunits; u++) {
        const punit_t *un = &p->units[u];
        if (un->state != CX_POL_PENDING || un->job != j) continue;
        if (n < max) out[n] = (int)u;
        n++;
    }
    return n;
}

void cx_pol_unit_exclude(cx_pol_t *p, int u, int w) {
    punit_t *un = unit_at(p, u);
    if (!un || w < 0 || (size_t)w >= p->nworkers) return;
    for (int i = 0; i < un->nexcl; i++)
        if (un->excl[i] == w) return;
    if (un->nexcl < CX_POL_MAX_EXCL) {
        un->excl[un->nexcl++] = w;
    } else {
        /* Oldest forgotten: the newest failures say the most. */
        memmove(un->excl, un->excl + 1,
                (CX_POL_MAX_EXCL - 1) * sizeof un->excl[0]);
        un->excl[CX_POL_MAX_EXCL - 1] = w;
    }
}

/* Recomputes when w's queue drains: the units still there run one after
 * another from now. */
static void worker_rebusy(pworker_t *w, const cx_pol_t *p, double now) {
    double t = now;
    for (int i = 0; i < w->ninflight; i++) t += p->units[w->units[i]].dur_s;
    w->busy_until = t;
}

void cx__pol_inflight(cx_pol_t *p, int u, int w, double now, double dur) {
    punit_t *un = &p->units[u];
    pworker_t *wk = &p->workers[w];
    un->state = CX_POL_INFLIGHT;
    un->worker = w;
    un->dur_s = dur;
    if (wk->ninflight < CX_POL_MAX_SLOTS) wk->units[wk->ninflight++] = u;
    double start = wk->busy_until > now ? wk->busy_until : now;
    wk->busy_until = start + dur;
    count_inflight(p, un, +1);
    if (un->ckpt >= 0) cx__pol_warm_add(p, wk, un->ckpt, now);
    cx__pol_worker_refresh(p, w);
}

void cx__pol_unpend(cx_pol_t *p, int u) {
    punit_t *un = &p->units[u];
    count_pending(p, un, -1);
    un->gen++; /* its deque entry is now stale */
    un->state = CX_POL_NONE;
}

/* Takes the unit off its worker (if in flight) or out of pending. */
static void detach(cx_pol_t *p, punit_t *un, double now) {
    if (un->state == CX_POL_PENDING) {
        cx__pol_unpend(p, (int)(un - p->units));
    } else if (un->state == CX_POL_INFLIGHT) {
        count_inflight(p, un, -1);
        int w = un->worker;
        if (w >= 0) {
            pworker_t *wk = &p->workers[w];
            int u = (int)(un - p->units);
            for (int i = 0; i < wk->ninflight; i++)
                if (wk->units[i] == u) {
                    memmove(&wk->units[i], &wk->units[i + 1],
                            (size_t)(wk->ninflight - i - 1) *
                                sizeof wk->units[0]);
                    wk->ninflight--;
                    break;
                }
            worker_rebusy(wk, p, now);
            cx__pol_worker_refresh(p, w);
        }
        un->worker = -1;
    }
}

static void release_unit(cx_pol_t *p, int u) {
    punit_t *un = &p->units[u];
    cx_smap_del(p->umap, un->id);
    un->state = CX_POL_NONE;
    un->next_free = p->free_unit;
    p->free_unit = u;
}

void cx_pol_unit_leased(cx_pol_t *p, int u, int w, double now) {
    punit_t *un = unit_at(p, u);
    if (!un || w < 0 || (size_t)w >= p->nworkers) return;
    detach(p, un, now);
    pclass_t *c = &p->jobs[un->job].classes[un->cls];
    c->placed += un->samples;
    int g = p->workers[w].gtype;
    double dur = (g >= 0 ? cx_tput_sps(p->model, un->ut, g) : 1.0) *
                 un->samples;
    cx__pol_inflight(p, u, w, now, dur);
}

void cx_pol_unit_done(cx_pol_t *p, int u, double now) {
    punit_t *un = unit_at(p, u);
    if (!un) return;
    detach(p, un, now);
    release_unit(p, u);
}

void cx_pol_unit_requeue(cx_pol_t *p, int u, uint32_t attempt, double now) {
    punit_t *un = unit_at(p, u);
    if (!un) return;
    if (un->state == CX_POL_INFLIGHT) {
        pclass_t *c = &p->jobs[un->job].classes[un->cls];
        c->placed -= un->samples;
        if (c->placed < 0) c->placed = 0;
    }
    detach(p, un, now);
    un->attempt = attempt;
    if (enqueue(p, u, 1) < 0) {
        /* Out of memory: the unit stays known to Redis as pending and a
         * reconcile will bring it back; the index forgets it. */
        release_unit(p, u);
        return;
    }
    un->state = CX_POL_PENDING;
    count_pending(p, un, +1);
}

void cx_pol_unit_drop(cx_pol_t *p, int u, double now) {
    punit_t *un = unit_at(p, u);
    if (!un) return;
    if (un->state == CX_POL_INFLIGHT) {
        pclass_t *c = &p->jobs[un->job].classes[un->cls];
        c->placed -= un->samples;
        if (c->placed < 0) c->placed = 0;
    }
    detach(p, un, now);
    release_unit(p, u);
}

/* ---- workers ---- */

int cx_pol_worker_find(const cx_pol_t *p, const char *id) {
    return valid_id(id) ? cx_smap_get(p->wmap, id) : -1;
}

int cx_pol_worker(cx_pol_t *p, const char *id) {
    if (!valid_id(id)) return -1;
    int w = cx_smap_get(p->wmap, id);
    if (w >= 0) return w;
    if (cx__pol_grow((void **)&p->workers, &p->capw, p->nworkers,
                     sizeof *p->workers) < 0)
        return -1;
    int *fl = realloc(p->free_list, (p->nworkers + 1) * sizeof *fl);
    if (!fl) return -1;
    p->free_list = fl;
    fl = realloc(p->wait_heap, (p->nworkers + 1) * sizeof *fl);
    if (!fl) return -1;
    p->wait_heap = fl;
    w = (int)p->nworkers;
    if (cx_smap_put(p->wmap, id, w) < 0) return -1;
    pworker_t *wk = &p->workers[w];
    memset(wk, 0, sizeof *wk);
    snprintf(wk->id, sizeof wk->id, "%s", id);
    wk->gtype = -1;
    wk->free_pos = -1;
    wk->heap_pos = -1;
    p->nworkers++;
    return w;
}

const char *cx_pol_worker_id(const cx_pol_t *p, int w) {
    return w >= 0 && (size_t)w < p->nworkers ? p->workers[w].id : "";
}

size_t cx_pol_nworkers(const cx_pol_t *p) { return p->nworkers; }

int cx__pol_cap(const cx_pol_t *p, const pworker_t *w) {
    int cap = p->conf.max_inflight;
    if (w->slots > 0 && w->slots < cap) cap = w->slots;
    return cap;
}

static void free_remove(cx_pol_t *p, pworker_t *w) {
    if (w->free_pos < 0) return;
    int last = p->free_list[--p->nfree];
    p->free_list[w->free_pos] = last;
    p->workers[last].free_pos = w->free_pos;
    w->free_pos = -1;
}

static void free_add(cx_pol_t *p, int w) {
    p->workers[w].free_pos = (int)p->nfree;
    p->free_list[p->nfree++] = w;
}

/* ---- the waiting heap (key: busy_until - prefetch_s) ---- */

static double wkey(const cx_pol_t *p, int w) {
    return p->workers[w].busy_until - p->conf.prefetch_s;
}

static void heap_set(cx_pol_t *p, size_t i, int w) {
    p->wait_heap[i] = w;
    p->workers[w].heap_pos = (int)i;
}

static void heap_up(cx_pol_t *p, size_t i) {
    int w = p->wait_heap[i];
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (wkey(p, p->wait_heap[up]) <= wkey(p, w)) break;
        heap_set(p, i, p->wait_heap[up]);
        i = up;
    }
    heap_set(p, i, w);
}

static void heap_down(cx_pol_t *p, size_t i) {
    int w = p->wait_heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = l;
        if (l >= p->nwait) break;
        if (r < p->nwait && wkey(p, p->wait_heap[r]) < wkey(p, p->wait_heap[l]))
            m = r;
        if (wkey(p, p->wait_heap[m]) >= wkey(p, w)) break;
        heap_set(p, i, p->wait_heap[m]);
        i = m;
    }
    heap_set(p, i, w);
}

static void heap_remove(cx_pol_t *p, pworker_t *w) {
    if (w->heap_pos < 0) return;
    size_t i = (size_t)w->heap_pos;
    w->heap_pos = -1;
    int last = p->wait_heap[--p->nwait];
    if (i == p->nwait) return;
    heap_set(p, i, last);
    heap_up(p, i);
    heap_down(p, (size_t)p->workers[last].heap_pos);
}

static void heap_add(cx_pol_t *p, int w) {
    size_t i = p->nwait++;
    heap_set(p, i, w);
    heap_up(p, i);
}

void cx__pol_promote(cx_pol_t *p, double now) {
    while (p->nwait && wkey(p, p->wait_heap[0]) <= now) {
        int w = p->wait_heap[0];
        heap_remove(p, &p->workers[w]);
        free_add(p, w);
    }
}

/* Warm counts follow eligibility: only eligible workers serve demand. */
static void warm_count(cx_pol_t *p, const pworker_t *w, int sign) {
    for (int i = 0; i < w->nwarm; i++) {
        pckpt_t *k = cx__pol_ckpt(p, w->warm[i]);
        if (k) k->warm_workers += (uint32_t)sign;
    }
}

void cx__pol_worker_refresh(cx_pol_t *p, int w) {
    pworker_t *wk = &p->workers[w];
    int el = wk->alive && !wk->draining && !wk->quarantined &&
             wk->placeable && wk->gtype >= 0;
    if (el != wk->eligible) {
        wk->eligible = el;
        p->eligible += el ? 1 : (size_t)-1;
        p->eligible_by_g[wk->gtype >= 0 ? wk->gtype : 0] +=
            el ? 1u : (uint32_t)-1;
        warm_count(p, wk, el ? +1 : -1);
    }
    int want = el && wk->ninflight < cx__pol_cap(p, wk);
    /* Busy ones wait until their queue is about to drain (their key
     * changed, so they are re-inserted); idle ones are ready at once. */
    free_remove(p, wk);
    heap_remove(p, wk);
    if (want && !wk->ninflight) free_add(p, w);
    else if (want) heap_add(p, w);
}

void cx_pol_worker_set(cx_pol_t *p, int w, const cx_pol_wspec_t *s) {
    if (w < 0 || (size_t)w >= p->nworkers) return;
    pworker_t *wk = &p->workers[w];
    if (wk->gtype != s->gtype && wk->eligible) {
        /* Leave the old type's count before switching. */
        wk->alive = 0;
        cx__pol_worker_refresh(p, w);
    }
    wk->gtype = s->gtype >= 0 && (size_t)s->gtype < CX_TPUT_MAX_GPU
                    ? s->gtype
                    : -1;
    wk->mem_budget = s->mem_budget;
    wk->slots = s->slots;
    wk->alive = s->alive;
    wk->draining = s->draining;
    wk->quarantined = s->quarantined;
    wk->placeable = s->placeable;
    cx__pol_worker_refresh(p, w);
}

void cx_pol_worker_warm(cx_pol_t *p, int w, const int *ckpts, size_t n) {
    if (w < 0 || (size_t)w >= p->nworkers) return;
    pworker_t *wk = &p->workers[w];
    if (wk->eligible) warm_count(p, wk, -1);
    wk->nwarm = 0;
    for (size_t i = 0; i < n && wk->nwarm < CX_POL_MAX_WARM; i++) {
        if (ckpts[i] < 0) continue;
        wk->warm[wk->nwarm] = ckpts[i];
        wk->warm_used[wk->nwarm] = 0;
        wk->nwarm++;
    }
    if (wk->eligible) warm_count(p, wk, +1);
}

int cx_pol_worker_is_warm(const cx_pol_t *p, int w, int k) {
    if (w < 0 || (size_t)w >= p->nworkers) return 0;
    const pworker_t *wk = &p->workers[w];
    for (int i = 0; i < wk->nwarm; i++)
        if (wk->warm[i] == k) return 1;
    return 0;
}

void cx__pol_warm_add(cx_pol_t *p, pworker_t *w, int k, double now) {
    for (int i = 0; i < w->nwarm; i++)
        if (w->warm[i] == k) {
            w->warm_used[i] = now;
            return;
        }
    uint64_t need = cx_tput_mem(p->model, k), used = 0;
    for (int i = 0; i < w->nwarm; i++) used += cx_tput_mem(p->model, w->warm[i]);
    /* Evict least recently used until it fits (budget known) or a slot
     * is free. */
    while (w->nwarm > 0 &&
           (w->nwarm >= CX_POL_MAX_WARM ||
            (w->mem_budget && used + need > w->mem_budget))) {
        int v = 0;
        for (int i = 1; i < w->nwarm; i++)
            if (w->warm_used[i] < w->warm_used[v]) v = i;
        used -= cx_tput_mem(p->model, w->warm[v]);
        if (w->eligible) {
            pckpt_t *c = cx__pol_ckpt(p, w->warm[v]);
            if (c) c->warm_workers--;
        }
        w->warm[v] = w->warm[w->nwarm - 1];
        w->warm_used[v] = w->warm_used[w->nwarm - 1];
        w->nwarm--;
    }
    w->warm[w->nwarm] = k;
    w->warm_used[w->nwarm] = now;
    w->nwarm++;
    if (w->eligible) {
        pckpt_t *c = cx__pol_ckpt(p, k);
        if (c) c->warm_workers++;
    }
}

int cx_pol_worker_eligible(const cx_pol_t *p, int w) {
    return w >= 0 && (size_t)w < p->nworkers && p->workers[w].eligible;
}

int cx_pol_worker_gtype(const cx_pol_t *p, int w) {
    return w >= 0 && (size_t)w < p->nworkers ? p->workers[w].gtype : -1;
}

size_t cx_pol_worker_units(const cx_pol_t *p, int w, int *out, size_t max) {
    if (w < 0 || (size_t)w >= p->nworkers) return 0;
    const pworker_t *wk = &p->workers[w];
    for (int i = 0; i < wk->ninflight && (size_t)i < max; i++)
        out[i] = wk->units[i];
    return (size_t)wk->ninflight;
}

void cx_pol_stats(const cx_pol_t *p, cx_pol_stats_t *out) {
    memset(out, 0, sizeof *out);
    out->pending_units = p->pending_units;
    out->inflight_units = p->inflight_units;
    out->pending_samples = p->pending_samples;
    out->inflight_samples = p->inflight_samples;
    out->workers_eligible = p->eligible;
    for (size_t i = 0; i < p->nfree; i++) {
        const pworker_t *w = &p->workers[p->free_list[i]];
        out->free_slots += (size_t)(cx__pol_cap(p, w) - w->ninflight);
    }
    for (size_t i = 0; i < p->nwait; i++) {
        const pworker_t *w = &p->workers[p->wait_heap[i]];
        out->free_slots += (size_t)(cx__pol_cap(p, w) - w->ninflight);
    }
}
