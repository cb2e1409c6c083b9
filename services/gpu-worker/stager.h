/* One thread that runs tasks in the order they were pushed.
 *
 * The gpu-worker encodes, writes and reports unit k on it while its main
 * thread already generates unit k + 1, so the cores never wait for a
 * unit's tail (the last batch's staging, the broker's ack). Order is the
 * point: a unit's batches are staged before its report is sent, and
 * Kafka offsets are stored in the order the messages arrived.
 *
 * push waits while `cap` tasks are queued, which bounds the memory held by
 * generated batches waiting for their staging. */
#ifndef CASCADE_GPU_WORKER_STAGER_H
#define CASCADE_GPU_WORKER_STAGER_H

#include <stddef.h>

#include "cascade/err.h"

typedef struct cx_stager cx_stager_t;

typedef void (*cx_stager_fn)(void *ctx);

cx_stager_t *cx_stager_new(size_t cap, cx_err_t *err);
/* Runs what is still queued, then stops the thread. */
void cx_stager_destroy(cx_stager_t *s);
/* Queues fn(ctx); waits while cap tasks are already queued. */
void cx_stager_push(cx_stager_t *s, cx_stager_fn fn, void *ctx);
/* Waits until every task pushed so far has run. */
void cx_stager_drain(cx_stager_t *s);

#endif
