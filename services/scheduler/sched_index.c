/* The scheduler's index and Redis: rebuild after a restart, refresh of
 * workers and jobs, reconciliation of what others changed (sched_impl.h). */
#include "sched_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/jobstate.h"
#include "cascade/log.h"
#include "cascade/util.h"
#include "queue.h"
#include "registry.h"
#include "strmap.h"
#include "sync.h"

#define CX__CHUNK 2000

int cx__sched_utype(cx_sched_t *s, const char *ckpt, uint32_t width,
                    uint32_t height, uint32_t steps) {
    return cx_tput_utype(s->model, ckpt, width, height, steps);
}

/* ---- workers ---- */

/* Applies a reported warm set ('\n'-separated checkpoint names). */
static void apply_warm(cx_sched_t *s, int w, const char *list) {
    int ks[CX_POL_MAX_WARM];
    size_t n = 0;
    const char *p = list;
    while (p && *p && n < CX_POL_MAX_WARM) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char name[CX_TPUT_NAME_MAX];
        if (len && len < sizeof name) {
            memcpy(name, p, len);
            name[len] = '\0';
            int k = cx_tput_ckpt(s->model, name);
            if (k >= 0) ks[n++] = k;
        }
        p = nl ? nl + 1 : NULL;
    }
    cx_pol_worker_warm(s->pol, w, ks, n);
}

static void apply_worker(cx_sched_t *s, int w, const cx_sync_worker_t *r) {
    int g = cx_tput_gtype(s->model, r->gpu_type[0] ? r->gpu_type : "unknown");
    cx_pol_wspec_t ws = {.gtype = g,
                         .mem_budget = r->mem_budget,
                         .slots = r->slots,
                         .alive = r->alive,
                         .draining = r->draining,
                         .quarantined = r->quarantined,
                         .placeable = r->partition >= 0};
    cx_pol_worker_set(s->pol, w, &ws);
    s->wpart[w] = r->partition;
    /* Only a worker that keeps a warm pool reports it (with its budget);
     * for the others the index keeps its own prediction. */
    if (r->mem_budget) apply_warm(s, w, r->warm);
}

int cx__sched_refresh_workers(cx_sched_t *s, cx_err_t *err) {
    cx_sync_worker_t *ws = NULL;
    size_t n = 0;
    if (cx_sync_workers(s->svc->redis, &ws, &n, err) < 0) return -1;
    size_t known = cx_pol_nworkers(s->pol);
    char *seen = calloc(known ? known : 1, 1);
    int rc = -1;
    if (!seen) {
        cx_err_set(err, CX_ENOMEM, 0, "workers: out of memory");
        goto done;
    }
    int64_t now = cx_now_ms();
    for (size_t i = 0; i < n; i++) {
        int w = cx__sched_worker(s, ws[i].id);
        if (w < 0) {
            cx_err_set(err, CX_ENOMEM, 0, "workers: out of memory");
            goto done;
        }
        if ((size_t)w < known) seen[w] = 1;
        apply_worker(s, w, &ws[i]);
        int inflight[CX_POL_MAX_SLOTS];
        if (!ws[i].alive && ws[i].last_hb_ms < now - s->conf.prune_ms &&
            !cx_pol_worker_units(s->pol, w, inflight, CX_POL_MAX_SLOTS) &&
            cx_registry_prune(s->svc->redis, ws[i].id,
                              now - s->conf.prune_ms, err) == 1)
            CX_INFO("worker forgotten worker=%s", ws[i].id);
    }
    /* Deregistered (goodbye or pruned): no longer a target. */
    for (size_t w = 0; w < known; w++)
        if (!seen[w] && cx_pol_worker_eligible(s->pol, (int)w)) {
            cx_pol_wspec_t gone = {.gtype = cx_pol_worker_gtype(s->pol, (int)w)};
            cx_pol_worker_set(s->pol, (int)w, &gone);
        }
    rc = cx_sync_ckpts(s->svc->redis, s->model, err);
done:
    free(seen);
    cx_sync_workers_free(ws, n);
    return rc;
}

/* ---- jobs ---- */

static int ended(const char *state) {
    return !strcmp(state, CX_JOB_DONE) || !strcmp(state, CX_JOB_CANCELLED) ||
           !strcmp(state, CX_JOB_REJECTED);
}

/* A job that ended: its pending units will never be needed. */
static int drop_pending(cx_sched_t *s, int j, cx_err_t *err) {
    size_t n = cx_pol_job_pending(s->pol, j, NULL, 0);
    if (!n) return 0;
    int *us = malloc(n * sizeof *us);
    const char **ids = malloc(n * sizeof *ids);
    int rc = -1;
    if (!us || !ids) {
        cx_err_set(err, CX_ENOMEM, 0, "drop units: out of memory");
        goto done;
    }
    cx_pol_job_pending(s->pol, j, us, n);
    for (size_t i = 0; i < n; i++) ids[i] = cx_pol_unit_id(s->pol, us[i]);
    if (cx_queue_cancel_many(s->svc->redis, ids, n, err) < 0) goto done;
    double now = (double)cx_now_ms() / 1000.0;
    for (size_t i = 0; i < n; i++) cx_pol_unit_drop(s->pol, us[i], now);
    CX_INFO("job ended, pending units dropped job_id=%s units=%zu",
            cx_pol_job_id(s->pol, j), n);
    rc = 0;
done:
    free(us);
    free(ids);
    return rc;
}

int cx__sched_load_job(cx_sched_t *s, int j, cx_err_t *err) {
    if (cx__sched_track_job(s, j) < 0)
        return cx_err_set(err, CX_ENOMEM, 0, "job: out of memory");
    cx_jobstate_t *st = NULL;
    const char *id = cx_pol_job_id(s->pol, j);
    int rc = cx_jobstate_load(s->svc->redis, id, &st, err);
    if (rc < 0) return cx_err_wrap(err, "job %s", id);
    sjob_t *sj = &s->jobs[j];
    sj->refreshed = cx_mono_ms();
    if (rc == 0 || !st->state[0]) {
        /* Unknown to Redis (units without a planner): defaults. */
        sj->loaded = 1;
        cx_jobstate_free(st);
        return 0;
    }
    cx_pol_job_set(s->pol, j, st->tenant, st->priority, st->deadline_ms,
                   (uint64_t)st->submitted_ms);
    for (size_t c = 0; c < st->nclasses; c++) {
        const cx_classstate_t *k = &st->classes[c];
        int pc = cx_pol_class(s->pol, j, (uint32_t)c, k->name);
        if (pc < 0) continue;
        cx_pol_class_set(s->pol, j, pc, k->quota, k->committed, k->generated,
                         k->passed);
        if (!sj->loaded) {
            /* What was placed before this scheduler started, as far as
             * the interleave needs it: the committed samples, at the
             * class's pass rate. */
            cx_pol_class_view_t v;
            cx_pol_class_view(s->pol, j, pc, &v);
            cx_pol_class_add_placed(s->pol, j, pc, (double)k->committed / v.pass);
        }
    }
    sj->loaded = 1;
    sj->ended = ended(st->state);
    cx_jobstate_free(st);
    if (sj->ended) {
        if (drop_pending(s, j, err) < 0) return -1;
        if (cx_pol_job_forget(s->pol, j))
            CX_DEBUG("job forgotten job_id=%s", id);
    }
    return 0;
}

int cx__sched_refresh_jobs(cx_sched_t *s, int force, cx_err_t *err) {
    (void)force;
    size_t n = cx_pol_njobs(s->pol);
    for (size_t j = 0; j < n; j++) {
        if (!cx_pol_job_live(s->pol, (int)j)) continue;
        if (cx__sched_load_job(s, (int)j, err) < 0) return -1;
    }
    return 0;
}

/* ---- units from Redis ---- */

/* Adds one unit hash to the index (pending, or in flight on its worker). */
static int add_one(cx_sched_t *s, const cx_sync_unit_t *r, cx_err_t *err) {
    int leased = !strcmp(r->state, "leased");
    int u = cx_pol_unit_find(s->pol, r->id);
    double now = (double)cx_now_ms() / 1000.0;
    if (!leased && strcmp(r->state, "pending") != 0) {
        cx_pol_unit_drop(s->pol, u, now); /* staged, dead, cancelled, gone */
        return 0;
    }
    if (u < 0) {
        char ck[CX_TPUT_NAME_MAX];
        uint32_t w = r->width, h = r->height, st = r->steps;
        snprintf(ck, sizeof ck, "%s", r->ckpt);
        if (!ck[0] && cx_sync_unit_type(s->svc->redis, r->id, ck, sizeof ck,
                                        &w, &h, &st, err) < 0)
            return err && err->retriable ? -1 : 0;
        int j = cx_pol_job(s->pol, r->job);
        if (j < 0 || cx__sched_track_job(s, j) < 0)
            return cx_err_set(err, CX_ENOMEM, 0, "index: out of memory");
        int ut = cx__sched_utype(s, ck, w, h, st);
        cx_pol_unit_spec_t sp = {.id = r->id, .job = j,
                                 .class_index = r->class_index,
                                 .class_name = r->class_name, .utype = ut,
                                 .samples = r->samples, .order = ++s->order,
                                 .attempt = r->attempt};
        u = ut < 0 ? -1 : cx_pol_unit_add(s->pol, &sp);
        if (u < 0 || cx__sched_track_unit(s, u) < 0)
            return cx_err_set(err, CX_ENOMEM, 0, "index: out of memory");
        s->uleased[u] = 0;
        const char *p = r->excluded;
        while (p && *p) {
            const char *comma = strchr(p, ',');
            char wid[CX_POL_ID_MAX];
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (len && len < sizeof wid) {
                memcpy(wid, p, len);
                wid[len] = '\0';
                cx_pol_unit_exclude(s->pol, u, cx__sched_worker(s, wid));
            }
            p = comma ? comma + 1 : NULL;
        }
        if (!s->jobs[j].loaded && cx__sched_load_job(s, j, err) < 0) return -1;
    } else if (cx_pol_unit_state(s->pol, u) == CX_POL_INFLIGHT) {
        cx_pol_unit_requeue(s->pol, u, r->attempt, now);
    }
    if (leased && cx_pol_unit_state(s->pol, u) == CX_POL_PENDING) {
        int w = cx__sched_worker(s, r->worker);
        if (w < 0) return cx_err_set(err, CX_ENOMEM, 0, "index: out of memory");
        cx_pol_unit_leased(s->pol, u, w, now);
    }
    return 0;
}

int cx__sched_add_units(cx_sched_t *s, const char *const *ids, size_t n,
                        cx_err_t *err) {
    cx_sync_unit_t *rows = calloc(n < CX__CHUNK ? (n ? n : 1) : CX__CHUNK,
                                  sizeof *rows);
    if (!rows) return cx_err_set(err, CX_ENOMEM, 0, "index: out of memory");
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0; off += CX__CHUNK) {
        size_t k = n - off < CX__CHUNK ? n - off : CX__CHUNK;
        if (cx_sync_units(s->svc->redis, ids + off, k, rows, err) < 0) {
            rc = -1;
            break;
        }
        for (size_t i = 0; i < k && rc == 0; i++) rc = add_one(s, &rows[i], err);
        cx_sync_units_release(rows, k);
    }
    free(rows);
    return rc;
}

/* ---- reconciliation ---- */

int cx__sched_reconcile_inflight(cx_sched_t *s, const cx_strlist_t *leases,
                                 cx_err_t *err) {
    cx_pol_stats_t st;
    cx_pol_stats(s->pol, &st);
    if (st.inflight_units <= leases->len) return 0; /* nothing missing */
    cx_smap_t *set = cx_smap_new();
    cx_strlist_t missing = {0};
    int rc = -1;
    if (!set) goto oom;
    for (size_t i = 0; i < leases->len; i++)
        if (cx_smap_put(set, leases->items[i], 1) < 0) goto oom;
    for (size_t w = 0; w < cx_pol_nworkers(s->pol); w++) {
        int us[CX_POL_MAX_SLOTS];
        size_t k = cx_pol_worker_units(s->pol, (int)w, us, CX_POL_MAX_SLOTS);
        for (size_t i = 0; i < k && i < CX_POL_MAX_SLOTS; i++) {
            const char *id = cx_pol_unit_id(s->pol, us[i]);
            if (cx_smap_get(set, id) < 0 && cx_strlist_push(&missing, id) < 0)
                goto oom;
        }
    }
    if (missing.len)
        CX_INFO("in-flight units changed by others, re-read units=%zu",
                missing.len);
    rc = cx__sched_add_units(s, (const char *const *)missing.items,
                             missing.len, err);
    goto done;
oom:
    cx_err_set(err, CX_ENOMEM, 0, "reconcile: out of memory");
done:
    cx_smap_destroy(set);
    cx_strlist_free(&missing);
    return rc;
}

int cx__sched_reconcile_pending(cx_sched_t *s, cx_err_t *err) {
    long long n = cx_sync_pending_count(s->svc->redis, err);
    if (n < 0) return -1;
    cx_pol_stats_t st;
    cx_pol_stats(s->pol, &st);
    if ((uint64_t)n == st.pending_units) return 0;
    CX_INFO("pending count differs, rescanning redis=%lld index=%" PRIu64, n,
            st.pending_units);
    cx_strlist_t ids = {0}, extra = {0};
    cx_smap_t *set = cx_smap_new();
    int *us = NULL, rc = -1;
    if (!set) goto oom;
    for (size_t off = 0;; off += 10000) {
        size_t before = ids.len;
        if (cx_sync_pending_ids(s->svc->redis, off, 10000, &ids, err) < 0)
            goto done;
        if (ids.len - before < 10000) break;
    }
    for (size_t i = 0; i < ids.len; i++)
        if (cx_smap_put(set, ids.items[i], 1) < 0) goto oom;
    /* Index-pending units Redis no longer has pending: re-read them. */
    size_t nu = cx_pol_units(s->pol, NULL, 0);
    us = malloc((nu ? nu : 1) * sizeof *us);
    if (!us) goto oom;
    cx_pol_units(s->pol, us, nu);
    for (size_t i = 0; i < nu; i++) {
        const char *id = cx_pol_unit_id(s->pol, us[i]);
        if (cx_pol_unit_state(s->pol, us[i]) == CX_POL_PENDING &&
            cx_smap_get(set, id) < 0 && cx_strlist_push(&extra, id) < 0)
            goto oom;
    }
    if (cx__sched_add_units(s, (const char *const *)extra.items, extra.len,
                            err) < 0 ||
        cx__sched_add_units(s, (const char *const *)ids.items, ids.len,
                            err) < 0)
        goto done;
    rc = 0;
    goto done;
oom:
    cx_err_set(err, CX_ENOMEM, 0, "reconcile: out of memory");
done:
    free(us);
    cx_smap_destroy(set);
    cx_strlist_free(&ids);
    cx_strlist_free(&extra);
    return rc;
}

/* ---- rebuild ---- */

int cx_sched_rebuild(cx_sched_t *s, cx_err_t *err) {
    double t0 = cx_mono_ms();
    cx_strlist_t ids = {0};
    int rc = -1;
    if (cx__sched_refresh_workers(s, err) < 0 ||
        cx_sync_tput_load(s->svc->redis, s->model, err) < 0)
        goto done;
    for (size_t off = 0;; off += 10000) {
        size_t before = ids.len;
        if (cx_sync_pending_ids(s->svc->redis, off, 10000, &ids, err) < 0)
            goto done;
        if (ids.len - before < 10000) break;
    }
    size_t npending = ids.len;
    if (cx_sync_lease_ids(s->svc->redis, &ids, err) < 0 ||
        cx__sched_add_units(s, (const char *const *)ids.items, ids.len,
                            err) < 0 ||
        cx__sched_refresh_workers(s, err) < 0 ||
        cx_sync_ckpts(s->svc->redis, s->model, err) < 0)
        goto done;
    cx_pol_stats_t st;
    cx_pol_stats(s->pol, &st);
    CX_INFO("index rebuilt pending=%" PRIu64 " in_flight=%" PRIu64
            " workers=%zu eligible=%zu jobs=%zu ms=%.0f",
            st.pending_units, st.inflight_units, cx_pol_nworkers(s->pol),
            st.workers_eligible, cx_pol_njobs(s->pol), cx_mono_ms() - t0);
    (void)npending;
    rc = 0;
done:
    cx_strlist_free(&ids);
    return rc;
}
