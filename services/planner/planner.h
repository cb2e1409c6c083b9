/* The planner's handlers: JobSpecs from cascade.jobs, Progress from
 * cascade.progress, and the level-triggered reconcile that issues units
 * until every class quota is met.
 *
 * Every handler is idempotent: a redelivered message or a reconcile after a
 * crash produces the same unit ids and the same end state. Handlers return 0
 * when the message is dealt with (including when it was dead-lettered or
 * rejected) and -1 with err when it should be retried (err->retriable) or
 * could not be handled at all. One thread only. */
#ifndef CASCADE_PLANNER_PLANNER_H
#define CASCADE_PLANNER_PLANNER_H

#include "cascade/kafka.h"
#include "cascade/service.h"

typedef struct cx_planner cx_planner_t;

/* Uses svc's producer, Redis and stores (svc must outlive the planner). */
cx_planner_t *cx_planner_new(cx_service_t *svc, cx_err_t *err);
void cx_planner_destroy(cx_planner_t *p);

int cx_planner_handle_job(cx_planner_t *p, const cx_msg_t *m, cx_err_t *err);
int cx_planner_handle_progress(cx_planner_t *p, const cx_msg_t *m,
                               cx_err_t *err);
/* Brings one job's issued units up to its quotas, or finishes it. */
int cx_planner_reconcile(cx_planner_t *p, const char *job_id, cx_err_t *err);
/* Reconciles every active job (cx:jobs); returns -1 after trying them all
 * when any failed (err holds the first failure). */
int cx_planner_reconcile_all(cx_planner_t *p, cx_err_t *err);

#endif
