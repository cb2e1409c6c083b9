/* Kafka producer and consumer helpers over librdkafka.
 *
 * Discipline: a consumer's offset is stored only after the message's effect
 * is durable (cx_consumer_done); librdkafka's auto-commit then commits stored
 * offsets, and cx_consumer_destroy commits them synchronously. A message whose
 * handling failed with a retriable error is retried by the service loop
 * before it moves on; if the process dies first the message is redelivered. */
#ifndef CASCADE_KAFKA_H
#define CASCADE_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"

#define CX_TOPIC_JOBS "cascade.jobs"
#define CX_TOPIC_JOB_EVENTS "cascade.job-events"
#define CX_TOPIC_UNITS "cascade.units"
#define CX_TOPIC_DISPATCH "cascade.dispatch"
#define CX_TOPIC_STAGED "cascade.staged"
#define CX_TOPIC_VERDICTS "cascade.verdicts"
#define CX_TOPIC_COMMITS "cascade.commits"
#define CX_TOPIC_PROGRESS "cascade.progress"
#define CX_TOPIC_DEADLETTER "cascade.deadletter"

typedef struct cx_producer cx_producer_t;
typedef struct cx_consumer cx_consumer_t;

typedef struct cx_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *payload;
    size_t len;
    void *rkm; /* the rd_kafka_message_t, owned */
} cx_msg_t;

/* Idempotent producer (enable.idempotence), acks=all, lz4. */
cx_producer_t *cx_producer_new(const char *brokers, const char *client_id,
                               cx_err_t *err);
/* Copies key and value and queues them. partition -1: chosen by key hash.
 * Waits (serving delivery reports) while the local queue is full. */
int cx_producer_send(cx_producer_t *p, const char *topic, int32_t partition,
                     const void *key, size_t key_len, const void *val,
                     size_t len, cx_err_t *err);
/* Waits until every queued message is acknowledged by the broker. Returns -1
 * (retriable) if any delivery failed since the last flush or the time ran
 * out; the caller then must not store its consumer offset. */
int cx_producer_flush(cx_producer_t *p, int timeout_ms, cx_err_t *err);
void cx_producer_destroy(cx_producer_t *p);

/* A consumer in group `group` subscribed to `topics` (NULL-terminated).
 * auto.offset.reset=earliest: a new group reads a topic from its start. */
cx_consumer_t *cx_consumer_new(const char *brokers, const char *group,
                               const char *const *topics, cx_err_t *err);
/* A consumer of exactly one partition of one topic (manual assignment,
 * committing under `group`), for a gpu-worker's slice of cascade.dispatch.
 * It starts at the group's committed offset, fetched at creation (else the
 * partition's start); NULL with a retriable err while the group's
 * coordinator cannot answer. */
cx_consumer_t *cx_consumer_new_partition(const char *brokers,
                                         const char *group, const char *topic,
                                         int32_t partition, cx_err_t *err);
/* Returns 1 with *out set, 0 on timeout, -1 on a consumer error (err says
 * whether retriable). Partition EOF and transient broker errors are not
 * returned as messages. */
int cx_consumer_poll(cx_consumer_t *c, int timeout_ms, cx_msg_t **out,
                     cx_err_t *err);
/* The message's effect is durable: store its offset and free it. */
void cx_consumer_done(cx_consumer_t *c, cx_msg_t *m);
/* 1 once c has partitions to consume (its group joined, or its manual
 * assignment made); thread-safe. */
int cx_consumer_assigned(cx_consumer_t *c);
/* Frees a message without storing its offset. */
void cx_msg_free(cx_msg_t *m);
/* Commits stored offsets, leaves the group, frees. NULL is fine. */
void cx_consumer_destroy(cx_consumer_t *c);

/* Sends a cascade.v1.DeadLetter for m (source topic, partition, offset, the
 * original key and payload, reason, service) to cascade.deadletter and
 * flushes. job_id/unit_id may be NULL. */
int cx_deadletter(cx_producer_t *p, const char *service, const cx_msg_t *m,
                  const char *reason, const char *job_id,
                  const char *unit_id, cx_err_t *err);

typedef struct cx_topic_spec {
    const char *name;
    int partitions;
} cx_topic_spec_t;

/* Creates the topics that do not exist yet (replication factor 1); existing
 * ones are left alone. */
int cx_kafka_create_topics(const char *brokers, const cx_topic_spec_t *topics,
                           size_t n, int timeout_ms, cx_err_t *err);
/* Returns the partition count of topic, or -1 with err. */
int cx_kafka_partition_count(const char *brokers, const char *topic,
                             int timeout_ms, cx_err_t *err);

#endif
