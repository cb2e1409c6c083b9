/* cxdev: the developer's and the test harness's Kafka tool.
 *
 *   cxdev create-topics [--brokers B] [--timeout SECS]
 *   cxdev partitions TOPIC [--brokers B]
 *   cxdev produce TOPIC [--key K] [--partition P] [--file F]   (else stdin)
 *   cxdev tail TOPIC [--max N] [--timeout-ms T] [--from-beginning]
 *                    [--value-only]
 *
 * --brokers defaults to $CASCADE_KAFKA_BROKERS. Exit status: 0 done, 1 the
 * operation failed (or tail saw fewer than --max messages), 2 bad usage. */
#ifndef CXDEV_H
#define CXDEV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cascade/err.h"
#include "cascade/kafka.h"

/* Every cascade.* topic and its partition count. */
extern const cx_topic_spec_t cxdev_topics[];
extern const size_t cxdev_ntopics;

/* Parsed command line: the subcommand's positional argument and flags. */
typedef struct cxdev_args {
    const char *brokers;
    const char *topic;
    const char *key;
    const char *file;
    int32_t partition;
    long long max;        /* tail: stop after this many; 0 = no limit */
    long long timeout_ms; /* tail: overall deadline; -1 = none */
    long long timeout_s;  /* create-topics: how long the broker may take */
    int from_beginning;
    int value_only;
} cxdev_args_t;

int cxdev_create_topics(const cxdev_args_t *a, cx_err_t *err);
int cxdev_partitions(const cxdev_args_t *a, cx_err_t *err);
int cxdev_produce(const cxdev_args_t *a, cx_err_t *err);
/* Returns the number of messages printed, or -1. */
long long cxdev_tail(const cxdev_args_t *a, FILE *out, cx_err_t *err);

/* One line (with '\n') describing message m of topic: a decoded DeadLetter
 * or JobEvent on those topics, else partition, offset, key and value with
 * bytes outside printable ASCII escaped. value_only: just the escaped
 * value. */
void cxdev_format(FILE *out, const cx_msg_t *m, int value_only);
/* Writes data escaped: printable ASCII as is, '\\' and '"' with a
 * backslash, \n \r \t, the rest as \xNN. */
void cxdev_escape(FILE *out, const void *data, size_t len);

#endif
