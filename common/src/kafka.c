/* Kafka over librdkafka: an idempotent producer that counts failed
 * deliveries between flushes, consumers that store offsets only after the
 * effect (cx_consumer_done), dead-lettering, and topic administration. */
#include "cascade/kafka.h"

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/log.h"
#include "cascade/util.h"
#include "cascade/v1/cascade.pb-c.h"

struct cx_producer {
    rd_kafka_t *rk;
    atomic_int failed;          /* failed deliveries since the last flush */
    char last_failure[256];     /* written only from the poll/flush caller */
};

struct cx_consumer {
    rd_kafka_t *rk;
};

/* librdkafka's own log lines go through ours so every line looks alike. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf) {
    (void)rk;
    cx_log_level_t l = level <= 3 ? CX_LOG_ERROR
                       : level <= 4 ? CX_LOG_WARN
                       : level <= 6 ? CX_LOG_INFO
                                    : CX_LOG_DEBUG;
    CX_LOG(l, "msg=\"librdkafka\" fac=%s text=\"%s\"", fac, buf);
}

static int conf_set(rd_kafka_conf_t *conf, const char *const *kv,
                    cx_err_t *err) {
    char errstr[512];
    for (; kv[0]; kv += 2)
        if (rd_kafka_conf_set(conf, kv[0], kv[1], errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK)
            return cx_err_set(err, CX_EKAFKA, 0, "kafka config %s=%s: %s",
                              kv[0], kv[1], errstr);
    return 0;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    cx_producer_t *p = opaque;
    (void)rk;
    if (!m->err) return;
    snprintf(p->last_failure, sizeof p->last_failure, "%s [%d]: %s",
             rd_kafka_topic_name(m->rkt), (int)m->partition,
             rd_kafka_err2str(m->err));
    atomic_fetch_add(&p->failed, 1);
}

cx_producer_t *cx_producer_new(const char *brokers, const char *client_id,
                               cx_err_t *err) {
    const char *kv[] = {"bootstrap.servers", brokers,
                        "client.id", client_id ? client_id : "cascade",
                        "enable.idempotence", "true",
                        "acks", "all",
                        "linger.ms", "5",
                        "compression.type", "lz4",
                        /* a broker that is down for minutes is waited
                         * for rather than its messages dropped */
                        "message.timeout.ms", "300000",
                        NULL};
    char errstr[512];
    cx_producer_t *p = calloc(1, sizeof *p);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    if (!p || !conf) {
        cx_err_set(err, CX_ENOMEM, 0, "kafka producer: out of memory");
        goto fail;
    }
    if (conf_set(conf, kv, err) < 0) goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!p->rk) {
        cx_err_set(err, CX_EKAFKA, 0, "kafka producer: %s", errstr);
        goto fail;
    }
    return p; /* conf now belongs to rk */

fail:
    if (conf) rd_kafka_conf_destroy(conf);
    free(p);
    return NULL;
}

int cx_producer_send(cx_producer_t *p, const char *topic, int32_t partition,
                     const void *key, size_t key_len, const void *val,
                     size_t len, cx_err_t *err) {
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA
                                               : partition),
            RD_KAFKA_V_KEY((void *)key, key_len),
            RD_KAFKA_V_VALUE((void *)val, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_poll(p->rk, 0); /* serve delivery reports */
            return 0;
        }
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(p->rk, 100);
            continue;
        }
        if (e == RD_KAFKA_RESP_ERR__FATAL) {
            char why[256];
            rd_kafka_fatal_error(p->rk, why, sizeof why);
            return cx_err_set(err, CX_EKAFKA, 0,
                              "kafka producer failed for good: %s", why);
        }
        return cx_err_set(err, CX_EKAFKA, 0, "produce to %s: %s", topic,
                          rd_kafka_err2str(e));
    }
}

int cx_producer_flush(cx_producer_t *p, int timeout_ms, cx_err_t *err) {
    rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, timeout_ms);
    int failed = atomic_exchange(&p->failed, 0);
    if (failed)
        return cx_err_set(err, CX_EKAFKA, 1,
                          "%d message(s) not delivered, last: %s", failed,
                          p->last_failure);
    if (e == RD_KAFKA_RESP_ERR__TIMED_OUT)
        return cx_err_set(err, CX_ETIMEOUT, 1,
                          "kafka: %d message(s) still unacknowledged after "
                          "%d ms",
                          rd_kafka_outq_len(p->rk), timeout_ms);
    if (e)
        return cx_err_set(err, CX_EKAFKA, 1, "kafka flush: %s",
                          rd_kafka_err2str(e));
    return 0;
}

void cx_producer_destroy(cx_producer_t *p) {
    if (!p) return;
    /* Give queued messages a chance; they are lost only if the broker
     * stays away, which the caller's flush would have reported. */
    rd_kafka_flush(p->rk, 10000);
    rd_kafka_destroy(p->rk);
    free(p);
}

static rd_kafka_t *consumer_handle(const char *brokers, const char *group,
                                   cx_err_t *err) {
    const char *kv[] = {"bootstrap.servers", brokers,
                        "group.id", group,
                        "enable.auto.commit", "true",
                        "enable.auto.offset.store", "false",
                        "auto.offset.reset", "earliest",
                        "partition.assignment.strategy", "cooperative-sticky",
                        "session.timeout.ms", "10000",
                        "max.poll.interval.ms", "300000",
                        "enable.partition.eof", "false",
                        NULL};
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    if (!conf) {
        cx_err_set(err, CX_ENOMEM, 0, "kafka consumer: out of memory");
        return NULL;
    }
    if (conf_set(conf, kv, err) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        cx_err_set(err, CX_EKAFKA, 0, "kafka consumer: %s", errstr);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static cx_consumer_t *wrap(rd_kafka_t *rk, cx_err_t *err) {
    cx_consumer_t *c = calloc(1, sizeof *c);
    if (!c) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        cx_err_set(err, CX_ENOMEM, 0, "kafka consumer: out of memory");
        return NULL;
    }
    c->rk = rk;
    return c;
}

cx_consumer_t *cx_consumer_new(const char *brokers, const char *group,
                               const char *const *topics, cx_err_t *err) {
    rd_kafka_t *rk = consumer_handle(brokers, group, err);
    if (!rk) return NULL;
    size_t n = 0;
    while (topics[n]) n++;
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        cx_err_set(err, CX_EKAFKA, 0, "kafka subscribe: %s",
                   rd_kafka_err2str(e));
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return NULL;
    }
    return wrap(rk, err);
}

/* The group's committed offset of (topic, partition), or
 * RD_KAFKA_OFFSET_BEGINNING when it has none (auto.offset.reset=earliest).
 * Asked for here instead of assigning RD_KAFKA_OFFSET_STORED: librdkafka's
 * own OffsetFetch after assign() can leave the partition unfetched for good
 * when the coordinator answers with a request-level error, as a broker
 * still loading its coordinators does (librdkafka issue 5586): the worker
 * then never sees its assignments. A failure here is retriable. */
static int committed_offset(rd_kafka_t *rk, const char *topic,
                            int32_t partition, int64_t *offset,
                            cx_err_t *err) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_t *tp =
        rd_kafka_topic_partition_list_add(l, topic, partition);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, 10000);
    if (!e) e = tp->err;
    *offset = tp->offset >= 0 ? tp->offset : RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return cx_err_set(err, CX_EKAFKA, 1,
                          "kafka committed offset of %s [%d]: %s", topic,
                          (int)partition, rd_kafka_err2str(e));
    return 0;
}

cx_consumer_t *cx_consumer_new_partition(const char *brokers,
                                         const char *group, const char *topic,
                                         int32_t partition, cx_err_t *err) {
    rd_kafka_t *rk = consumer_handle(brokers, group, err);
    if (!rk) return NULL;
    int64_t offset;
    if (committed_offset(rk, topic, partition, &offset, err) < 0) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        cx_err_set(err, CX_EKAFKA, 0, "kafka assign %s [%d]: %s", topic,
                   (int)partition, rd_kafka_err2str(e));
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return NULL;
    }
    return wrap(rk, err);
}

int cx_consumer_poll(cx_consumer_t *c, int timeout_ms, cx_msg_t **out,
                     cx_err_t *err) {
    rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, timeout_ms);
    *out = NULL;
    if (!rkm) return 0;
    if (rkm->err) {
        rd_kafka_resp_err_t e = rkm->err;
        char what[512];
        snprintf(what, sizeof what, "%s", rd_kafka_message_errstr(rkm));
        rd_kafka_message_destroy(rkm);
        if (e == RD_KAFKA_RESP_ERR__PARTITION_EOF) return 0;
        if (e == RD_KAFKA_RESP_ERR__FATAL) {
            rd_kafka_fatal_error(c->rk, what, sizeof what);
            return cx_err_set(err, CX_EKAFKA, 0, "kafka consumer: %s", what);
        }
        /* Broker down, topic not created yet, ...: librdkafka recovers on
         * its own; the caller backs off. */
        return cx_err_set(err, CX_EKAFKA, 1, "kafka consumer: %s: %s",
                          rd_kafka_err2name(e), what);
    }
    cx_msg_t *m = calloc(1, sizeof *m);
    if (!m) {
        /* Not stored, so it is redelivered after a restart. */
        rd_kafka_message_destroy(rkm);
        return cx_err_set(err, CX_ENOMEM, 1, "kafka consumer: out of memory");
    }
    m->topic = rd_kafka_topic_name(rkm->rkt);
    m->partition = rkm->partition;
    m->offset = rkm->offset;
    m->key = rkm->key;
    m->key_len = rkm->key_len;
    m->payload = rkm->payload;
    m->len = rkm->len;
    m->rkm = rkm;
    *out = m;
    return 1;
}

void cx_consumer_done(cx_consumer_t *c, cx_msg_t *m) {
    if (!m) return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, m->topic, m->partition)->offset =
        m->offset + 1;
    /* Fails only when the partition was revoked meanwhile; its new owner
     * then redelivers the message, which is what at-least-once allows. */
    rd_kafka_offsets_store(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    cx_msg_free(m);
}

int cx_consumer_assigned(cx_consumer_t *c) {
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(c->rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    int n = l->cnt;
    rd_kafka_topic_partition_list_destroy(l);
    return n > 0;
}

void cx_msg_free(cx_msg_t *m) {
    if (!m) return;
    rd_kafka_message_destroy(m->rkm);
    free(m);
}

void cx_consumer_destroy(cx_consumer_t *c) {
    if (!c) return;
    /* Synchronous: a stop must not lose the offsets of finished work. */
    rd_kafka_commit(c->rk, NULL, 0);
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    free(c);
}

int cx_deadletter(cx_producer_t *p, const char *service, const cx_msg_t *m,
                  const char *reason, const char *job_id,
                  const char *unit_id, cx_err_t *err) {
    Cascade__V1__DeadLetter dl = CASCADE__V1__DEAD_LETTER__INIT;
    dl.source_topic = (char *)m->topic;
    dl.partition = m->partition;
    dl.offset = m->offset;
    dl.reason = (char *)(reason ? reason : "");
    dl.payload.data = (uint8_t *)m->payload;
    dl.payload.len = m->payload ? m->len : 0;
    dl.key.data = (uint8_t *)m->key;
    dl.key.len = m->key ? m->key_len : 0;
    dl.service = (char *)(service ? service : "");
    dl.unix_ms = cx_now_ms();
    dl.job_id = (char *)(job_id ? job_id : "");
    dl.unit_id = (char *)(unit_id ? unit_id : "");

    size_t len = protobuf_c_message_get_packed_size(&dl.base);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return cx_err_set(err, CX_ENOMEM, 1, "deadletter: out of memory");
    protobuf_c_message_pack(&dl.base, buf);
    int rc = cx_producer_send(p, CX_TOPIC_DEADLETTER, -1, m->key, m->key_len,
                              buf, len, err);
    free(buf);
    if (rc == 0) rc = cx_producer_flush(p, 30000, err);
    return rc < 0 ? cx_err_wrap(err, "deadletter") : 0;
}

static rd_kafka_t *admin_handle(const char *brokers, cx_err_t *err) {
    const char *kv[] = {"bootstrap.servers", brokers, NULL};
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        cx_err_set(err, CX_ENOMEM, 0, "kafka admin: out of memory");
        return NULL;
    }
    if (conf_set(conf, kv, err) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_t *rk =
        rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        cx_err_set(err, CX_EKAFKA, 0, "kafka admin: %s", errstr);
    }
    return rk;
}

int cx_kafka_create_topics(const char *brokers, const cx_topic_spec_t *topics,
                           size_t n, int timeout_ms, cx_err_t *err) {
    char errstr[512];
    int rc = -1;
    rd_kafka_t *rk = admin_handle(brokers, err);
    if (!rk) return -1;
    rd_kafka_NewTopic_t **nt = calloc(n ? n : 1, sizeof *nt);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opt =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_event_t *ev = NULL;

    if (!nt || !q || !opt) {
        cx_err_set(err, CX_ENOMEM, 0, "kafka admin: out of memory");
        goto out;
    }
    rd_kafka_AdminOptions_set_operation_timeout(opt, timeout_ms, errstr,
                                                sizeof errstr);
    rd_kafka_AdminOptions_set_request_timeout(opt, timeout_ms, errstr,
                                              sizeof errstr);
    for (size_t i = 0; i < n; i++) {
        nt[i] = rd_kafka_NewTopic_new(topics[i].name, topics[i].partitions, 1,
                                      errstr, sizeof errstr);
        if (!nt[i]) {
            cx_err_set(err, CX_EINVAL, 0, "topic %s: %s", topics[i].name,
                       errstr);
            goto out;
        }
    }
    rd_kafka_CreateTopics(rk, nt, n, opt, q);
    ev = rd_kafka_queue_poll(q, timeout_ms + 5000);
    if (!ev) {
        cx_err_set(err, CX_ETIMEOUT, 1, "create topics: no answer in %d ms",
                   timeout_ms);
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        cx_err_set(err, CX_EKAFKA, 1, "create topics: %s",
                   rd_kafka_event_error_string(ev));
        goto out;
    }
    size_t nres = 0;
    const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(
        rd_kafka_event_CreateTopics_result(ev), &nres);
    rc = 0;
    for (size_t i = 0; i < nres && rc == 0; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            const char *why = rd_kafka_topic_result_error_string(res[i]);
            rc = cx_err_set(err, CX_EKAFKA,
                            e == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT ||
                                e == RD_KAFKA_RESP_ERR__TIMED_OUT,
                            "create topic %s: %s",
                            rd_kafka_topic_result_name(res[i]),
                            why ? why : rd_kafka_err2str(e));
        }
    }
out:
    if (ev) rd_kafka_event_destroy(ev);
    if (nt) {
        for (size_t i = 0; i < n; i++)
            if (nt[i]) rd_kafka_NewTopic_destroy(nt[i]);
        free(nt);
    }
    if (opt) rd_kafka_AdminOptions_destroy(opt);
    if (q) rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

int cx_kafka_partition_count(const char *brokers, const char *topic,
                             int timeout_ms, cx_err_t *err) {
    const struct rd_kafka_metadata *md = NULL;
    int count = -1;
    rd_kafka_t *rk = admin_handle(brokers, err);
    if (!rk) return -1;
    /* All topics: asking for one by name may auto-create it on brokers
     * with auto.create.topics.enable. */
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (e) {
        cx_err_set(err, CX_EKAFKA, 1, "kafka metadata: %s",
                   rd_kafka_err2str(e));
        goto out;
    }
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, topic) == 0 &&
            md->topics[i].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            count = md->topics[i].partition_cnt;
    if (count < 0)
        cx_err_set(err, CX_ENOENT, 0, "topic %s does not exist", topic);
out:
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return count;
}
