/* cxdev create-topics / partitions: the cascade.* topics and their sizes. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <unistd.h>

#include "cascade/util.h"
#include "cxdev.h"

/* The dispatch topic is sliced per worker, so it needs room for many
 * workers; the rest are keyed by job_id and need only modest parallelism. */
const cx_topic_spec_t cxdev_topics[] = {
    {CX_TOPIC_JOBS, 4},     {CX_TOPIC_JOB_EVENTS, 4}, {CX_TOPIC_UNITS, 4},
    {CX_TOPIC_DISPATCH, 16}, {CX_TOPIC_STAGED, 4},    {CX_TOPIC_VERDICTS, 4},
    {CX_TOPIC_COMMITS, 4},  {CX_TOPIC_PROGRESS, 4},   {CX_TOPIC_DEADLETTER, 4},
};
const size_t cxdev_ntopics = sizeof cxdev_topics / sizeof cxdev_topics[0];

/* One pass: create what is missing, then check every topic is visible in
 * the metadata with at least the partitions we want. */
static int create_once(const char *brokers, int timeout_ms, cx_err_t *err)
{
    if (cx_kafka_create_topics(brokers, cxdev_topics, cxdev_ntopics,
                               timeout_ms, err) < 0)
        return -1;
    for (size_t i = 0; i < cxdev_ntopics; i++) {
        int n = cx_kafka_partition_count(brokers, cxdev_topics[i].name,
                                         timeout_ms, err);
        if (n < 0)
            return -1;
        if (n < cxdev_topics[i].partitions)
            return cx_err_set(err, CX_EKAFKA, 0,
                              "topic %s has %d partitions, wants %d",
                              cxdev_topics[i].name, n,
                              cxdev_topics[i].partitions);
    }
    return 0;
}

/* Every service's producer is idempotent and needs a producer id first.
 * A fresh broker hands them out only once its id manager holds a block
 * from the controller; until then the services' first sends stall on
 * "Coordinator load in progress" retries, seconds under load. A
 * transactional init asks for an id from the same manager (librdkafka
 * retries it until the timeout), so its success means they will not. */
static int await_producer_ids(const char *brokers, int timeout_ms,
                              cx_err_t *err)
{
    char tid[64], errstr[256];
    snprintf(tid, sizeof tid, "cxdev-ready-%ld", (long)getpid());
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
                          sizeof errstr) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "transactional.id", tid, errstr,
                          sizeof errstr) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return cx_err_set(err, CX_EKAFKA, 0, "probe config: %s", errstr);
    }
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return cx_err_set(err, CX_EKAFKA, 0, "probe producer: %s", errstr);
    }
    rd_kafka_error_t *e = rd_kafka_init_transactions(rk, timeout_ms);
    int rc = 0;
    if (e) {
        rc = cx_err_set(err, CX_EKAFKA, 1, "producer ids not served yet: %s",
                        rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    rd_kafka_destroy(rk);
    return rc;
}

/* Retries retriable failures (the broker still starting) until the
 * deadline, so the harness can use this as its readiness check: topics
 * exist and producer ids are served. */
int cxdev_create_topics(const cxdev_args_t *a, cx_err_t *err)
{
    double deadline = cx_mono_ms() + (double)a->timeout_s * 1000.0;
    for (unsigned attempt = 0;; attempt++) {
        double left = deadline - cx_mono_ms();
        int per_try = left > 10000 ? 10000 : (left < 1000 ? 1000 : (int)left);
        cx_err_clear(err);
        if (create_once(a->brokers, per_try, err) == 0 &&
            await_producer_ids(a->brokers, per_try, err) == 0)
            return 0;
        if (err && !err->retriable && err->code != CX_ETIMEOUT &&
            err->code != CX_EKAFKA)
            return -1;
        if (cx_mono_ms() >= deadline)
            return cx_err_wrap(err, "broker %s not ready after %llds",
                               a->brokers, a->timeout_s);
        cx_backoff_sleep(attempt, 100, 1000, NULL);
    }
}

int cxdev_partitions(const cxdev_args_t *a, cx_err_t *err)
{
    int n = cx_kafka_partition_count(a->brokers, a->topic, 10000, err);
    if (n < 0)
        return -1;
    printf("%d\n", n);
    return 0;
}
