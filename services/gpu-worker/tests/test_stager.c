/* The stager: tasks run in push order on its own thread, push waits for
 * room, drain waits for the last task, destroy runs what is queued. */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "stager.h"

typedef struct rec {
    pthread_mutex_t lock;
    int order[64];
    int n;
    pthread_t runner;
    /* a gate the first task waits on, to hold the queue full */
    pthread_cond_t open_cv;
    int open;
    atomic_int entered;
} rec_t;

typedef struct item {
    rec_t *r;
    int id;
} item_t;

static void record(void *ctx) {
    item_t *it = ctx;
    rec_t *r = it->r;
    pthread_mutex_lock(&r->lock);
    r->order[r->n++] = it->id;
    r->runner = pthread_self();
    pthread_mutex_unlock(&r->lock);
}

static void gated(void *ctx) {
    item_t *it = ctx;
    rec_t *r = it->r;
    atomic_store(&r->entered, 1);
    pthread_mutex_lock(&r->lock);
    while (!r->open) pthread_cond_wait(&r->open_cv, &r->lock);
    pthread_mutex_unlock(&r->lock);
    record(ctx);
}

static rec_t *rec_new(void) {
    rec_t *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->open_cv, NULL);
    return r;
}

static void rec_free(rec_t *r) {
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->open_cv);
    free(r);
}

START_TEST(test_order_and_thread) {
    cx_err_t err = {0};
    cx_stager_t *s = cx_stager_new(2, &err);
    ck_assert_ptr_nonnull(s);
    rec_t *r = rec_new();
    item_t items[40];
    for (int i = 0; i < 40; i++) {
        items[i] = (item_t){r, i};
        cx_stager_push(s, record, &items[i]);
    }
    cx_stager_drain(s);
    ck_assert_int_eq(r->n, 40);
    for (int i = 0; i < 40; i++) ck_assert_int_eq(r->order[i], i);
    ck_assert(!pthread_equal(r->runner, pthread_self()));
    cx_stager_destroy(s);
    rec_free(r);
}
END_TEST

typedef struct pusher {
    cx_stager_t *s;
    item_t *items;
    int n;
    atomic_int pushed;
} pusher_t;

static void *push_all(void *arg) {
    pusher_t *p = arg;
    for (int i = 0; i < p->n; i++) {
        cx_stager_push(p->s, record, &p->items[i]);
        atomic_fetch_add(&p->pushed, 1);
    }
    return NULL;
}

/* While the running task is blocked, only `cap` more fit; the rest of the
 * pushes wait and go through once it ends. */
START_TEST(test_push_waits_for_room) {
    cx_err_t err = {0};
    cx_stager_t *s = cx_stager_new(2, &err);
    rec_t *r = rec_new();
    item_t first = {r, 0};
    item_t items[5];
    for (int i = 0; i < 5; i++) items[i] = (item_t){r, i + 1};
    cx_stager_push(s, gated, &first);
    while (!atomic_load(&r->entered)) sched_yield();
    pusher_t p = {s, items, 5, 0};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, push_all, &p), 0);
    /* The pusher can queue two, then must wait on the third. */
    while (atomic_load(&p.pushed) < 2) sched_yield();
    for (int spin = 0; spin < 20000; spin++) sched_yield();
    ck_assert_int_eq(atomic_load(&p.pushed), 2);
    pthread_mutex_lock(&r->lock);
    r->open = 1;
    pthread_cond_broadcast(&r->open_cv);
    pthread_mutex_unlock(&r->lock);
    pthread_join(t, NULL);
    cx_stager_drain(s);
    ck_assert_int_eq(r->n, 6);
    for (int i = 0; i < 6; i++) ck_assert_int_eq(r->order[i], i);
    cx_stager_destroy(s);
    rec_free(r);
}
END_TEST

START_TEST(test_destroy_runs_queued) {
    cx_err_t err = {0};
    cx_stager_t *s = cx_stager_new(8, &err);
    rec_t *r = rec_new();
    item_t items[8];
    for (int i = 0; i < 8; i++) {
        items[i] = (item_t){r, i};
        cx_stager_push(s, record, &items[i]);
    }
    cx_stager_destroy(s);
    ck_assert_int_eq(r->n, 8);
    rec_free(r);
}
END_TEST

START_TEST(test_drain_when_idle) {
    cx_err_t err = {0};
    cx_stager_t *s = cx_stager_new(1, &err);
    cx_stager_drain(s); /* nothing pushed: returns at once */
    cx_stager_destroy(s);
}
END_TEST

int main(void) {
    Suite *s = suite_create("stager");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_order_and_thread);
    tcase_add_test(tc, test_push_waits_for_room);
    tcase_add_test(tc, test_destroy_runs_queued);
    tcase_add_test(tc, test_drain_when_idle);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
