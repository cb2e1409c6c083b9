/* cxdev create-topics / partitions: the cascade.* topics and their sizes. */
#include <stdio.h>

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

/* Retries retriable failures (the broker still starting) until the
 * deadline, so the harness can use this as its readiness check. */
int cxdev_create_topics(const cxdev_args_t *a, cx_err_t *err)
{
    double deadline = cx_mono_ms() + (double)a->timeout_s * 1000.0;
    for (unsigned attempt = 0;; attempt++) {
        double left = deadline - cx_mono_ms();
        int per_try = left > 10000 ? 10000 : (left < 1000 ? 1000 : (int)left);
        cx_err_clear(err);
        if (create_once(a->brokers, per_try, err) == 0)
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
