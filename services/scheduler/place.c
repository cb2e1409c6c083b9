/* Placement: ranking jobs, choosing class, unit and worker (policy.h). */
#include "policy_impl.h"

#include <math.h>
#include <string.h>

double cx_pol_pool_rate(const cx_pol_t *p, int ut) {
    double r = 0;
    if (ut < 0) return 0;
    for (size_t g = 0; g < cx_tput_ngtypes(p->model); g++) {
        if (!p->eligible_by_g[g]) continue;
        double sps = cx_tput_sps(p->model, ut, (int)g);
        if (sps > 0) r += p->eligible_by_g[g] / sps;
    }
    return r;
}

int cx__pol_job_utype(const cx_pol_t *p, const pjob_t *j) {
    for (size_t c = 0; c < j->nclasses; c++)
        if (j->classes[c].nqueues)
            return p->queues[j->classes[c].queues[0]].ut;
    return -1;
}

double cx__pol_job_remaining(const cx_pol_t *p, const pjob_t *j) {
    double total = 0;
    for (size_t c = 0; c < j->nclasses; c++) {
        const pclass_t *k = &j->classes[c];
        double known = (double)(k->pending_samples + k->inflight_samples);
        if (k->quota > k->committed) {
            /* What the quota still needs, at the believed pass rate. */
            double need = (double)(k->quota - k->committed) /
                          cx__pol_pass(p, k);
            if (need > known) known = need;
        }
        total += known;
    }
    return total;
}

void cx__pol_rank(cx_pol_t *p, double now) {
    p->rank_stamp++;
    p->active_tenants = 0;
    for (size_t j = 0; j < p->njobs; j++) {
        pjob_t *jb = &p->jobs[j];
        if (!jb->pending_units) continue;
        ptenant_t *t = &p->tenants[jb->tenant];
        if (t->active_stamp != p->rank_stamp) {
            t->active_stamp = p->rank_stamp;
            p->active_tenants++;
        }
    }
    double share = p->active_tenants > 1 ? (double)p->active_tenants : 1;
    for (size_t j = 0; j < p->njobs; j++) {
        pjob_t *jb = &p->jobs[j];
        jb->urgent = 0;
        jb->slack_s = INFINITY;
        jb->work_s = 0;
        if (!jb->live) continue;
        double rem = cx__pol_job_remaining(p, jb);
        if (rem <= 0) continue;
        double rate = cx_pol_pool_rate(p, cx__pol_job_utype(p, jb));
        jb->work_s = rate > 0 ? rem / rate : INFINITY;
        if (!jb->deadline_ms) continue;
        double left = (double)jb->deadline_ms / 1000.0 - now;
        jb->slack_s = left - jb->work_s;
        /* Urgent: a fair share of the pool would not make the deadline. */
        jb->urgent = left - jb->work_s * share < p->conf.urgent_margin_s;
    }
}

void cx_pol_round(cx_pol_t *p, double now) {
    p->stamp++;
    cx__pol_promote(p, now);
    cx__pol_rank(p, now);
}

/* 1 when job a should be served before job b. */
static int job_before(const cx_pol_t *p, const pjob_t *a, const pjob_t *b) {
    if (a->urgent != b->urgent) return a->urgent;
    if (a->urgent && a->slack_s != b->slack_s) return a->slack_s < b->slack_s;
    if (a->priority != b->priority) return a->priority > b->priority;
    uint32_t ta = p->tenants[a->tenant].inflight_units,
             tb = p->tenants[b->tenant].inflight_units;
    if (a->tenant != b->tenant && ta != tb) return ta < tb;
    if (a->slack_s != b->slack_s) return a->slack_s < b->slack_s;
    return a->seq < b->seq;
}

static int pick_job(cx_pol_t *p) {
    int best = -1;
    for (size_t j = 0; j < p->njobs; j++) {
        const pjob_t *jb = &p->jobs[j];
        if (!jb->pending_units || jb->blocked == p->stamp) continue;
        if (best < 0 || job_before(p, jb, &p->jobs[best])) best = (int)j;
    }
    return best;
}

/* The class furthest behind its target share of expected commits. */
static int pick_class(cx_pol_t *p, pjob_t *jb) {
    int best = -1, weighted = 1;
    double best_v = 0;
    for (size_t c = 0; c < jb->nclasses; c++)
        if (!jb->classes[c].quota) weighted = 0;
    for (size_t c = 0; c < jb->nclasses; c++) {
        const pclass_t *k = &jb->classes[c];
        if (!k->pending_units || k->blocked == p->stamp) continue;
        /* A class at its quota needs nothing more (the committer would
         * discard what it generates). */
        if (k->quota && k->committed >= k->quota) continue;
        double v = k->placed * cx__pol_pass(p, k);
        if (weighted) v /= (double)k->quota;
        if (best < 0 || v < best_v) {
            best = (int)c;
            best_v = v;
        }
    }
    return best;
}

/* The eviction cost of loading k on w: reload cost of every checkpoint
 * that would be pushed out while other pending work needs it and no more
 * than its share of the pool holds it. */
static double evict_cost(const cx_pol_t *p, const pworker_t *w, int k) {
    if (!w->mem_budget || !w->nwarm) return 0;
    uint64_t need = cx_tput_mem(p->model, k), used = 0;
    for (int i = 0; i < w->nwarm; i++) used += cx_tput_mem(p->model, w->warm[i]);
    if (used + need <= w->mem_budget && w->nwarm < CX_POL_MAX_WARM) return 0;
    /* Victims in LRU order until it fits. */
    int order[CX_POL_MAX_WARM], n = w->nwarm;
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && w->warm_used[order[j]] <
                                     w->warm_used[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    double cost = 0;
    for (int i = 0; i < n && (used + need > w->mem_budget ||
                              n - i >= CX_POL_MAX_WARM); i++) {
        int v = w->warm[order[i]];
        used -= cx_tput_mem(p->model, v);
        const pckpt_t *pk = (size_t)v < p->nckpts ? &p->ckpts[v] : NULL;
        if (!pk || !pk->pending_samples || !p->pending_samples) continue;
        double share = (double)pk->pending_samples / (double)p->pending_samples;
        double needed = ceil(share * (double)p->eligible);
        if (pk->warm_workers > needed) continue; /* over-provisioned */
        cost += cx_tput_load_s(p->model, v);
    }
    return cost * p->conf.evict_weight;
}

/* Excluded: w failed the unit and some eligible worker has not. */
static int excluded(const cx_pol_t *p, const punit_t *u, int w) {
    int hit = 0, eligible_failed = 0;
    for (int i = 0; i < u->nexcl; i++) {
        if (u->excl[i] == w) hit = 1;
        if (p->workers[u->excl[i]].eligible) eligible_failed++;
    }
    return hit && (size_t)eligible_failed < p->eligible;
}

typedef struct cand {
    int w;
    double cost, start, finish;
    int cold;
} cand_t;

/* The best free worker for unit u (cand.w -1 when none can take it).
 * Runs once per decision over the free list, so the per-worker work is a
 * few comparisons: rates are looked up per GPU type first, and the
 * eviction cost only for a cold worker that could still win. */
static cand_t best_worker(const cx_pol_t *p, const punit_t *u, int urgent,
                          double now) {
    cand_t best = {-1, INFINITY, 0, 0, 0};
    double run_by_g[CX_TPUT_MAX_GPU];
    size_t ng = cx_tput_ngtypes(p->model);
    for (size_t g = 0; g < ng; g++)
        run_by_g[g] = p->eligible_by_g[g]
                          ? cx_tput_sps(p->model, u->ut, (int)g) * u->samples
                          : 0;
    double load = cx_tput_load_s(p->model, u->ckpt);
    uint64_t need = cx_tput_mem(p->model, u->ckpt);
    for (size_t i = 0; i < p->nfree; i++) {
        int w = p->free_list[i];
        const pworker_t *wk = &p->workers[w];
        if (wk->mem_budget && need > wk->mem_budget) continue;
        int warm = 0;
        for (int k = 0; k < wk->nwarm && !warm; k++) warm = wk->warm[k] == u->ckpt;
        double start = wk->busy_until > now ? wk->busy_until : now;
        double finish = start + (warm ? 0 : load) + run_by_g[wk->gtype];
        if (finish >= best.cost) continue;
        if (u->nexcl && excluded(p, u, w)) continue;
        double cost = finish;
        if (!warm && !urgent) {
            cost += evict_cost(p, wk, u->ckpt);
            if (cost >= best.cost) continue;
        }
        best = (cand_t){w, cost, start, finish, !warm};
    }
    return best;
}

/* Hold a unit whose best worker is cold while the workers that have its
 * checkpoint warm (and may take it) would start it before a cold load
 * would finish: their queued work plus the checkpoint's other pending
 * work, spread over them, is less than the load time. Only looked at when
 * the best is cold and someone is warm, so the scan over the workers is
 * rare. */
static int hold(const cx_pol_t *p, const punit_t *u, const cand_t *c,
                double now) {
    if (!p->conf.hold_for_warm || !c->cold || u->ckpt < 0 ||
        (size_t)u->ckpt >= p->nckpts || !p->ckpts[u->ckpt].warm_workers)
        return 0;
    const pckpt_t *k = &p->ckpts[u->ckpt];
    double sps = cx_tput_sps(p->model, u->ut, p->workers[c->w].gtype);
    double backlog = (double)(k->pending_samples - u->samples) * sps;
    size_t warm = 0;
    for (size_t i = 0; i < p->nworkers; i++) {
        const pworker_t *w = &p->workers[i];
        if (!w->eligible || (u->nexcl && excluded(p, u, (int)i))) continue;
        for (int j = 0; j < w->nwarm; j++)
            if (w->warm[j] == u->ckpt) {
                warm++;
                if (w->busy_until > now) backlog += w->busy_until - now;
                break;
            }
    }
    return warm && backlog / (double)warm < cx_tput_load_s(p->model, u->ckpt);
}

/* Drops stale entries at the head of q. */
static void trim(cx_pol_t *p, pqueue_t *q) {
    while (q->len) {
        qent_t e = q->ring[q->head];
        const punit_t *u = &p->units[e.u];
        if (u->state == CX_POL_PENDING && u->gen == e.gen && u->q == (int)(q - p->queues))
            return;
        q->head = (q->head + 1) % q->cap;
        q->len--;
    }
}

/* Tries the head of q (and past units the free workers failed). */
static int try_queue(cx_pol_t *p, int qi, int urgent, double now,
                     cx_pol_pick_t *out) {
    pqueue_t *q = &p->queues[qi];
    trim(p, q);
    size_t looked = 0, visited = 0;
    for (size_t i = 0; i < q->len && looked < p->conf.exclusion_scan &&
                       visited < 4 * p->conf.exclusion_scan;
         i++, visited++) {
        qent_t e = q->ring[(q->head + i) % q->cap];
        punit_t *u = &p->units[e.u];
        if (u->state != CX_POL_PENDING || u->gen != e.gen) continue;
        looked++;
        cand_t c = best_worker(p, u, urgent, now);
        if (c.w < 0) continue; /* excluded or too big everywhere free */
        if (hold(p, u, &c, now)) return 0;
        /* Placed: out of pending (its entry goes stale), into flight. */
        cx__pol_unpend(p, e.u);
        p->jobs[u->job].classes[u->cls].placed += u->samples;
        cx__pol_inflight(p, e.u, c.w, now, c.finish - c.start);
        out->unit = e.u;
        out->worker = c.w;
        out->start_s = c.start;
        out->finish_s = c.finish;
        out->cold = c.cold;
        return 1;
    }
    return 0;
}

int cx_pol_next(cx_pol_t *p, double now, cx_pol_pick_t *out) {
    cx__pol_promote(p, now);
    while (p->nfree) {
        int j = pick_job(p);
        if (j < 0) return 0;
        pjob_t *jb = &p->jobs[j];
        int c = pick_class(p, jb);
        if (c < 0) {
            jb->blocked = p->stamp;
            continue;
        }
        pclass_t *k = &jb->classes[c];
        /* Several unit types in one class: the first that places. */
        int placed = 0;
        for (size_t i = 0; i < k->nqueues && !placed; i++) {
            int qi = k->queues[i];
            if (p->queues[qi].blocked == p->stamp ||
                !p->queues[qi].pending_units)
                continue;
            placed = try_queue(p, qi, jb->urgent, now, out);
            if (!placed) p->queues[qi].blocked = p->stamp;
        }
        if (placed) return 1;
        k->blocked = p->stamp;
    }
    return 0;
}
