/* A fixed pool of worker threads running parallel-for jobs. */
#ifndef CASCADE_POOL_H
#define CASCADE_POOL_H

#include <stddef.h>

#include "cascade/err.h"

typedef struct cx_pool cx_pool_t;

/* nthreads 0: one per online CPU. */
cx_pool_t *cx_pool_new(unsigned nthreads, cx_err_t *err);
void cx_pool_destroy(cx_pool_t *p);
unsigned cx_pool_size(const cx_pool_t *p);
/* Calls fn(ctx, i) for every i in [0, n) on the pool's threads and the
 * caller's, and returns when all are done. One run at a time per pool. */
void cx_pool_for(cx_pool_t *p, size_t n, void (*fn)(void *ctx, size_t i),
                 void *ctx);

#endif
