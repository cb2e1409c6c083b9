/* A gpu-worker's presence in Redis: its claim on one partition of
 * cascade.dispatch (cx:dispatch:partition:<p>), its registration
 * (cx:worker:<w> hash, cx:workers), and the heartbeat thread that keeps
 * cx:worker:<w>:alive and the claim from expiring.
 *
 * Functions taking a cx_redis_t run on the caller's connection; the
 * heartbeat thread has its own (redis.h: one connection per thread). */
#ifndef CX_WORKER_HEARTBEAT_H
#define CX_WORKER_HEARTBEAT_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/redis.h"

typedef struct cx_hb_conf {
    const char *redis_url;
    const char *worker;   /* instance name */
    const char *gpu_type;
    uint64_t mem_bytes;
    const char *device;        /* "cpu", "cuda:0"; NULL: "cpu" */
    uint64_t mem_budget_bytes; /* the warm pool's budget */
    int slots;
    int heartbeat_ms;
    int alive_ttl_ms;
    /* When *drain becomes non-zero (SIGTERM), the heartbeat thread sets
     * draining=1 at once, while the loop still finishes its unit. May be
     * NULL. */
    volatile int *drain;
} cx_hb_conf_t;

/* Which partition to try first, from the current claim owners (owners[p]
 * NULL or "" when free): the one `me` already holds (a restart within the
 * TTL), else the lowest free one; -1 when all are taken. Pure. */
int cx_hb_claim_pick(const char *const *owners, int n, const char *me);

/* Claims a partition of cascade.dispatch, which has nparts partitions:
 * `want` >= 0 claims that one, -1 the one cx_hb_claim_pick chooses (racing
 * other workers with SET NX). Returns the partition, or -1 with err
 * (retriable when all are taken or `want` is held by someone else). */
int cx_hb_claim(cx_redis_t *r, const cx_hb_conf_t *c, int want, int nparts,
                cx_err_t *err);

/* Refreshes (or re-takes, if it lapsed and is free) the claim. Returns 1
 * held, 0 lost to another worker, -1 with err. */
int cx_hb_claim_refresh(cx_redis_t *r, const cx_hb_conf_t *c, int partition,
                        cx_err_t *err);

/* Writes the cx:worker:<w> hash (gpu_type, mem_bytes, device,
 * mem_budget_bytes, mem_used_bytes 0, slots, partition,
 * started_ms, draining 0), the alive key and the cx:workers entry. */
int cx_hb_register(cx_redis_t *r, const cx_hb_conf_t *c, int partition,
                   cx_err_t *err);
/* draining=1: the scheduler sends no new work. */
int cx_hb_set_draining(cx_redis_t *r, const cx_hb_conf_t *c, cx_err_t *err);
/* Gives back, in one script, every unit leased to this worker that it has
 * not started (cx:unit:<u> `started` is not the lease's epoch; the worker
 * marks it when its fence check passes): back to pending with the attempt
 * undone, out of cx:leases and the inflight set, so the scheduler re-leases
 * it at once instead of after a TTL. Returns how many, or -1 with err. The
 * heartbeat thread calls it as soon as a drain starts. */
int cx_hb_release_unstarted(cx_redis_t *r, const cx_hb_conf_t *c,
                            cx_err_t *err);
/* DEL alive, the hash and the warm hash, release the claim if still ours, ZREM
 * cx:workers. */
int cx_hb_deregister(cx_redis_t *r, const cx_hb_conf_t *c, int partition,
                     cx_err_t *err);

typedef struct cx_hb cx_hb_t;

/* Starts the heartbeat thread: every heartbeat_ms it refreshes alive, the
 * cx:workers score and the claim, and it watches c->drain. The strings in c must outlive it. */
cx_hb_t *cx_hb_start(const cx_hb_conf_t *c, int partition, cx_err_t *err);
/* 1 once the claim was taken by another worker (this worker must stop
 * consuming). Any thread. */
int cx_hb_lost(const cx_hb_t *h);
/* Stops and joins the thread. NULL is fine. */
void cx_hb_stop(cx_hb_t *h);

#endif
