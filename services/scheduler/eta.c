/* Estimates: job and class completion with an interval, and the planner's
 * pass-rate over-issue (policy.h). */
#include "policy_impl.h"

#include <math.h>
#include <string.h>

/* Relative uncertainty nobody measures: capacity coming and going. */
#define CX__ETA_FLOOR 0.03
/* Standard deviations of pass-rate luck the over-issue covers. */
#define CX__ISSUE_Z 2.0
/* Relative error of a pass rate not yet measured. */
#define CX__ETA_PASS_UNKNOWN 0.2

double cx_pol_pass_rate(uint64_t generated, uint64_t passed,
                        uint64_t min_samples, double floor) {
    if (generated == 0 || generated < min_samples) return 1.0;
    double r = (double)(passed > generated ? generated : passed) /
               (double)generated;
    if (floor > 0 && r < floor) r = floor;
    return r;
}

uint64_t cx_pol_issue_shortfall(uint64_t quota, uint64_t committed,
                                uint64_t outstanding, double pass) {
    if (!(pass > 0) || pass > 1) pass = 1;
    if (committed >= quota) return 0;
    double r = (double)(quota - committed);
    /* Outstanding samples o such that p o - z sqrt(o p (1 - p)) >= r:
     * enough that the class falls short with probability ~2 %, so a job
     * does not end in rounds of replacements. With x = sqrt(o) it is the
     * root of p x^2 - z sqrt(p (1 - p)) x - r. */
    double b = CX__ISSUE_Z * sqrt(pass * (1 - pass));
    double x = (b + sqrt(b * b + 4 * pass * r)) / (2 * pass);
    double need = ceil(x * x - 1e-6) - (double)outstanding;
    return need > 0 ? (uint64_t)need : 0;
}

/* Relative standard error of a class's pass rate. */
static double pass_rel_se(const cx_pol_t *p, const pclass_t *c) {
    if (c->generated < p->conf.pass_min_samples || !c->generated)
        return c->quota ? CX__ETA_PASS_UNKNOWN : 0;
    double r = cx__pol_pass(p, c);
    return sqrt(r * (1 - r) / (double)c->generated) / r;
}

/* Rate-weighted relative error of the pool's rate for ut. */
static double rate_rel_se(const cx_pol_t *p, int ut) {
    double num = 0, den = 0;
    for (size_t g = 0; g < cx_tput_ngtypes(p->model); g++) {
        if (!p->eligible_by_g[g]) continue;
        double r = p->eligible_by_g[g] / cx_tput_sps(p->model, ut, (int)g);
        num += r * cx_tput_rel_se(p->model, ut, (int)g);
        den += r;
    }
    return den > 0 ? num / den : 0.5;
}

/* Pool-seconds of other jobs' work done before job j completes: all of
 * the jobs ranked strictly ahead, and, for jobs sharing j's rank (same
 * priority, neither urgent), processor sharing: each takes min(its work,
 * j's work). */
static double work_ahead(const cx_pol_t *p, const pjob_t *jb) {
    double ahead = 0;
    for (size_t i = 0; i < p->njobs; i++) {
        const pjob_t *o = &p->jobs[i];
        if (o == jb || !o->live || !(o->work_s > 0) || !isfinite(o->work_s))
            continue;
        if (o->urgent && jb->urgent) {
            if (o->slack_s < jb->slack_s) ahead += o->work_s;
        } else if (o->urgent) {
            ahead += o->work_s;
        } else if (jb->urgent) {
            continue;
        } else if (o->priority > jb->priority) {
            ahead += o->work_s;
        } else if (o->priority == jb->priority) {
            ahead += o->work_s < jb->work_s ? o->work_s : jb->work_s;
        }
    }
    return ahead;
}

static void interval(double now, double t, double e, double *eta,
                     double *lo, double *hi) {
    *eta = now + t;
    *lo = now + t * (1 - 2 * e > 0 ? 1 - 2 * e : 0);
    *hi = now + t * (1 + 2 * e);
}

void cx_pol_job_eta(cx_pol_t *p, int j, double now, cx_pol_eta_t *out) {
    memset(out, 0, sizeof *out);
    if (j < 0 || (size_t)j >= p->njobs) return;
    cx__pol_rank(p, now);
    const pjob_t *jb = &p->jobs[j];
    int ut = cx__pol_job_utype(p, jb);
    out->urgent = jb->urgent;
    out->nclasses = jb->nclasses < CX_POL_MAX_CLASSES ? jb->nclasses
                                                      : CX_POL_MAX_CLASSES;
    out->remaining = cx__pol_job_remaining(p, jb);
    out->rate = cx_pol_pool_rate(p, ut);
    if (out->remaining <= 0) {
        out->known = 1;
        out->eta_s = out->lo_s = out->hi_s = now;
        for (size_t c = 0; c < out->nclasses; c++)
            out->cls[c].eta_s = out->cls[c].lo_s = out->cls[c].hi_s = now;
        return;
    }
    if (!(out->rate > 0)) return;
    double ahead = work_ahead(p, jb);
    double t = ahead + out->remaining / out->rate;
    int k = cx_tput_utype_ckpt(p->model, ut);
    if (k >= 0 && ((size_t)k >= p->nckpts || !p->ckpts[k].warm_workers))
        t += cx_tput_load_s(p->model, k); /* nobody has it loaded yet */
    double er = rate_rel_se(p, ut), ep = 0, wsum = 0;
    for (size_t c = 0; c < jb->nclasses; c++) {
        double e = pass_rel_se(p, &jb->classes[c]);
        if (e > ep) ep = e;
        wsum += jb->classes[c].quota
                    ? (double)jb->classes[c].quota / cx__pol_pass(p, &jb->classes[c])
                    : 0;
    }
    double e = sqrt(er * er + ep * ep + CX__ETA_FLOOR * CX__ETA_FLOOR);
    out->known = 1;
    interval(now, t, e, &out->eta_s, &out->lo_s, &out->hi_s);
    if (jb->deadline_ms) {
        double dl = (double)jb->deadline_ms / 1000.0;
        out->slack_s = dl - out->eta_s;
        out->late = out->eta_s > dl;
    }
    /* A class finishes when its remaining work is done at its share of
     * the job's placements (quota / pass); interleaving keeps classes
     * together, so none finishes after the job. */
    for (size_t c = 0; c < out->nclasses; c++) {
        const pclass_t *kc = &jb->classes[c];
        double pass = cx__pol_pass(p, kc);
        double rem = (double)(kc->pending_samples + kc->inflight_samples);
        if (kc->quota > kc->committed) {
            double need = (double)(kc->quota - kc->committed) / pass;
            if (need > rem) rem = need;
        }
        double share = wsum > 0 && kc->quota
                           ? ((double)kc->quota / pass) / wsum
                           : (out->remaining > 0 ? rem / out->remaining : 1);
        double tc = share > 0 ? ahead + rem / share / out->rate : t;
        if (tc > t) tc = t;
        double ec = pass_rel_se(p, kc);
        ec = sqrt(er * er + ec * ec + CX__ETA_FLOOR * CX__ETA_FLOOR);
        interval(now, rem > 0 ? tc : 0, ec, &out->cls[c].eta_s,
                 &out->cls[c].lo_s, &out->cls[c].hi_s);
    }
}
