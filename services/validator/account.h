/* cx_account: the validator's Redis side of the quality gates -- per-worker
 * gate statistics and automatic quarantine (docs/ARCHITECTURE.md, contract
 * E), the job's privacy budget, the job's distributional alignment, and
 * job halts. Keys (all under cx:):
 *
 *   gatestats:<w>        HASH samples, failed, fail:<gate>, gpu_type,
 *                        updated_ms. Counts are halved when samples passes
 *                        the window, so old history fades.
 *   gatepool:<gpu_type>  SET of workers with gate statistics (the pool a
 *                        worker is compared with).
 *   quarantine:<w>       HASH reason, since_ms, failure_rate, pool_rate,
 *                        samples, gpu_type, p_value, job_id. Exists = the
 *                        worker is quarantined (the scheduler places nothing
 *                        on it); released by DEL (cascadectl quarantine
 *                        release), which also clears gatestats:<w>.
 *   quarantined          SET of quarantined workers.
 *   vseen:<unit>:<att>   STRING, 6 h TTL: this attempt was counted (so a
 *                        redelivered batch is not counted twice).
 *   job:<j>:privacy      HASH checked, near (near-copies), budget.
 *   job:<j>:quality      HASH per class n:<c>, in:<c>, a:<c>:<k> (Frechet
 *                        sums), fd:<c>, precision:<c>, recall:<c>; latest
 *                        batch batch_fd, batch_precision, batch_recall,
 *                        batch_n, batch_class; alert:<c> once alerted.
 *   job:<j>:cov:<c>      STRING bitmap of the class references covered.
 *   job:<j>:halt         HASH reason, event (JobEventType), since_ms,
 *                        source: the planner stops issuing units, marks the
 *                        job CANCELLED with this reason and announces it.
 */
#ifndef CX_VALIDATOR_ACCOUNT_H
#define CX_VALIDATOR_ACCOUNT_H

#include "cascade/codec.h"
#include "cascade/redis.h"
#include "validate.h"

typedef struct cx_quar_conf {
    int enabled;
    double min_samples;      /* worker samples before it can be judged */
    double min_pool_samples; /* other workers' samples needed to compare */
    double min_excess;       /* failure rate at least this far above the
                                pool's (absolute) */
    double alpha;            /* one-sided binomial test level */
    double window;           /* halve a worker's counts beyond this */
} cx_quar_conf_t;

/* P(X >= k) for X ~ Binomial(n, p), in double (log-space terms). */
double cx_binom_upper(double n, double k, double p);

/* The quarantine test: a worker with n samples and f failures against the
 * rest of its pool (pn samples, pf failures). Returns 1 when it is
 * quarantined: n >= min_samples, pn >= min_pool_samples, its rate is at
 * least min_excess above the pool's, and P(X >= f) < alpha under the
 * pool's rate (Laplace-smoothed, (pf + 1) / (pn + 2), so a spotless pool
 * does not make every failure significant). *pvalue gets the tail. */
int cx_quar_test(const cx_quar_conf_t *c, double n, double f, double pn,
                 double pf, double *pvalue);

typedef struct cx_account_result {
    int counted;           /* 0: this attempt was counted before */
    double w_samples, w_failed, p_samples, p_failed;
    double p_value;
    int quarantined;       /* quarantined by this call */
    char quarantine_reason[384];
    double checked, near;
    int privacy_halted;    /* the job's budget ran out with this call */
    char privacy_reason[384];
    size_t q_n;            /* the class's alignment after this call */
    double q_fd, q_precision, q_recall;
    int frechet_alert;     /* raised by this call */
    char frechet_reason[384];
} cx_account_result_t;

/* Counts one validated unit (batch b, its tally) exactly once per attempt:
 * worker statistics (and the quarantine test), the privacy budget (and the
 * job's halt when exceeded), and the class's alignment. Returns 0, or -1
 * with err (Redis: retriable). */
int cx_account_unit(cx_redis_t *r, const cx_staged_t *b,
                    const cx_unit_tally_t *t, const cx_quar_conf_t *qc,
                    cx_account_result_t *out, cx_err_t *err);

/* Records the latest batch-level alignment of a (job, class). */
int cx_account_batch_quality(cx_redis_t *r, const cx_vquality_t *q,
                             cx_err_t *err);

/* Asks for the job to stop (first reason wins). *newly: 1 when this call
 * set it. event: the JobEventType the planner announces. */
int cx_account_halt(cx_redis_t *r, const char *job_id, int event,
                    const char *reason, int *newly, cx_err_t *err);

#endif
