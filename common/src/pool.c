/* A fixed pool of threads for parallel-for. Each run is a generation:
 * workers wake on a new generation, take indices from one atomic counter
 * (so uneven items balance themselves), and check in when it runs dry. */
#include "cascade/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cx_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    pthread_t *threads;
    unsigned nthreads, started;
    unsigned long generation;
    unsigned finished;
    int stopping;
    /* the current run */
    void (*fn)(void *ctx, size_t i);
    void *ctx;
    size_t n;
    atomic_size_t next;
};

static void run_items(cx_pool_t *p) {
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n) return;
        p->fn(p->ctx, i);
    }
}

static void *worker(void *arg) {
    cx_pool_t *p = arg;
    unsigned long seen = 0;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->generation == seen && !p->stopping)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->stopping) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->lock);
        run_items(p);
        pthread_mutex_lock(&p->lock);
        if (++p->finished == p->started) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

cx_pool_t *cx_pool_new(unsigned nthreads, cx_err_t *err) {
    if (nthreads == 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = ncpu > 0 ? (unsigned)ncpu : 1;
    }
    cx_pool_t *p = calloc(1, sizeof *p);
    if (!p || !(p->threads = calloc(nthreads, sizeof *p->threads))) {
        free(p);
        cx_err_set(err, CX_ENOMEM, 0, "pool: out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->nthreads = nthreads;
    for (; p->started < nthreads; p->started++) {
        int rc = pthread_create(&p->threads[p->started], NULL, worker, p);
        if (rc != 0) {
            cx_err_set(err, CX_EIO, 1, "pool: cannot start thread %u: %s",
                       p->started, strerror(rc));
            cx_pool_destroy(p);
            return NULL;
        }
    }
    return p;
}

void cx_pool_destroy(cx_pool_t *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}

unsigned cx_pool_size(const cx_pool_t *p) { return p ? p->nthreads : 0; }

void cx_pool_for(cx_pool_t *p, size_t n, void (*fn)(void *ctx, size_t i),
                 void *ctx) {
    if (n == 0) return;
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store(&p->next, 0);
    p->finished = 0;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);

    run_items(p);

    /* Every worker checks in, so none still reads fn/ctx after we return. */
    pthread_mutex_lock(&p->lock);
    while (p->finished < p->started) pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
