/* A FIFO of closures and the one thread that runs them (stager.h). */
#include "stager.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct task {
    struct task *next;
    cx_stager_fn fn;
    void *ctx;
} task_t;

struct cx_stager {
    pthread_mutex_t lock;
    pthread_cond_t work, room, idle;
    pthread_t tid;
    task_t *head, *tail;
    size_t queued, cap;
    int running; /* a task is being run */
    int stopping;
};

static void *stager_main(void *arg) {
    cx_stager_t *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->stopping) pthread_cond_wait(&s->work, &s->lock);
        if (!s->head) break; /* stopping, and nothing left */
        task_t *t = s->head;
        s->head = t->next;
        if (!s->head) s->tail = NULL;
        s->queued--;
        s->running = 1;
        pthread_cond_signal(&s->room);
        pthread_mutex_unlock(&s->lock);
        t->fn(t->ctx);
        free(t);
        pthread_mutex_lock(&s->lock);
        s->running = 0;
        if (!s->head) pthread_cond_broadcast(&s->idle);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void stager_free(cx_stager_t *s) {
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->room);
    pthread_cond_destroy(&s->idle);
    free(s);
}

cx_stager_t *cx_stager_new(size_t cap, cx_err_t *err) {
    cx_stager_t *s = calloc(1, sizeof *s);
    if (!s) {
        cx_err_set(err, CX_ENOMEM, 0, "stager: out of memory");
        return NULL;
    }
    s->cap = cap ? cap : 1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->room, NULL);
    pthread_cond_init(&s->idle, NULL);
    if (pthread_create(&s->tid, NULL, stager_main, s) != 0) {
        cx_err_set(err, CX_ENOMEM, 0, "stager: cannot start its thread");
        stager_free(s);
        return NULL;
    }
    return s;
}

void cx_stager_destroy(cx_stager_t *s) {
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->tid, NULL);
    stager_free(s);
}

void cx_stager_push(cx_stager_t *s, cx_stager_fn fn, void *ctx) {
    task_t *t = malloc(sizeof *t);
    if (!t) { /* no memory for the queue: run it here, in order */
        cx_stager_drain(s);
        fn(ctx);
        return;
    }
    *t = (task_t){NULL, fn, ctx};
    pthread_mutex_lock(&s->lock);
    while (s->queued >= s->cap) pthread_cond_wait(&s->room, &s->lock);
    if (s->tail)
        s->tail->next = t;
    else
        s->head = t;
    s->tail = t;
    s->queued++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
}

void cx_stager_drain(cx_stager_t *s) {
    pthread_mutex_lock(&s->lock);
    while (s->head || s->running) pthread_cond_wait(&s->idle, &s->lock);
    pthread_mutex_unlock(&s->lock);
}
