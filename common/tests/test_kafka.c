/* Against a real broker (CASCADE_KAFKA_BROKERS). Every run uses fresh topic
 * and group names, so runs never see each other's messages. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/kafka.h"
#include "cascade/util.h"
#include "cascade/v1/cascade.pb-c.h"
#include "cx_testenv.h"

#define WAIT_MS 60000

static char run_id[64];

static const char *brokers(void) {
    const char *b = cx_testenv("CASCADE_KAFKA_BROKERS");
    ck_assert_msg(b != NULL, "CASCADE_KAFKA_BROKERS is not set (start the stack)");
    return b;
}

static void name(char *out, size_t cap, const char *what) {
    snprintf(out, cap, "cx-test.%s.%s", run_id, what);
}

static void create(const char *topic, int partitions) {
    cx_err_t err;
    cx_topic_spec_t t = {topic, partitions};
    ck_assert_msg(cx_kafka_create_topics(brokers(), &t, 1, 30000, &err) == 0,
                  "%s", err.msg);
}

static void produce(cx_producer_t *p, const char *topic, int32_t partition,
                    int from, int n) {
    cx_err_t err;
    char key[32], val[32];
    for (int i = from; i < from + n; i++) {
        snprintf(key, sizeof key, "k%d", i % 7);
        snprintf(val, sizeof val, "m%d", i);
        ck_assert_msg(cx_producer_send(p, topic, partition, key, strlen(key),
                                       val, strlen(val), &err) == 0,
                      "%s", err.msg);
    }
    ck_assert_msg(cx_producer_flush(p, 30000, &err) == 0, "%s", err.msg);
}

/* Polls until a message arrives (asserting on the deadline). */
static cx_msg_t *next(cx_consumer_t *c) {
    cx_err_t err;
    cx_msg_t *m = NULL;
    double deadline = cx_mono_ms() + WAIT_MS;
    while (cx_mono_ms() < deadline) {
        int rc = cx_consumer_poll(c, 200, &m, &err);
        if (rc == 1) return m;
        ck_assert_msg(rc == 0 || err.retriable, "%s", err.msg);
    }
    ck_abort_msg("no message within %d ms", WAIT_MS);
    return NULL;
}

static int value_index(const cx_msg_t *m) {
    char v[32] = {0};
    ck_assert_uint_lt(m->len, sizeof v);
    memcpy(v, m->payload, m->len);
    ck_assert_int_eq(v[0], 'm');
    return atoi(v + 1);
}

START_TEST(test_topics) {
    char t1[160], t2[160];
    cx_err_t err;
    name(t1, sizeof t1, "topics-a");
    name(t2, sizeof t2, "topics-b");
    cx_topic_spec_t specs[] = {{t1, 3}, {t2, 1}};
    ck_assert_msg(cx_kafka_create_topics(brokers(), specs, 2, 30000, &err) == 0,
                  "%s", err.msg);
    /* again, and with another count: existing topics are left alone */
    specs[0].partitions = 5;
    ck_assert_msg(cx_kafka_create_topics(brokers(), specs, 2, 30000, &err) == 0,
                  "%s", err.msg);
    ck_assert_int_eq(cx_kafka_partition_count(brokers(), t1, 10000, &err), 3);
    ck_assert_int_eq(cx_kafka_partition_count(brokers(), t2, 10000, &err), 1);
    name(t1, sizeof t1, "never-created");
    ck_assert_int_eq(cx_kafka_partition_count(brokers(), t1, 10000, &err), -1);
    ck_assert_int_eq(err.code, CX_ENOENT);
    /* an invalid topic is refused by the broker */
    cx_topic_spec_t bad = {"bad topic name!", 1};
    ck_assert_int_eq(cx_kafka_create_topics(brokers(), &bad, 1, 10000, &err), -1);
    ck_assert_int_eq(err.code, CX_EKAFKA);
}
END_TEST

START_TEST(test_produce_consume_exactly) {
    enum { N = 300 };
    char topic[160], group[160];
    cx_err_t err;
    name(topic, sizeof topic, "exact");
    name(group, sizeof group, "exact-group");
    create(topic, 3);
    cx_producer_t *p = cx_producer_new(brokers(), "test", &err);
    ck_assert_msg(p != NULL, "%s", err.msg);
    produce(p, topic, -1, 0, N);

    const char *topics[] = {topic, NULL};
    cx_consumer_t *c = cx_consumer_new(brokers(), group, topics, &err);
    ck_assert_msg(c != NULL, "%s", err.msg);
    static int seen[N];
    memset(seen, 0, sizeof seen);
    int64_t last_offset[3] = {-1, -1, -1};
    for (int i = 0; i < N; i++) {
        cx_msg_t *m = next(c);
        ck_assert_str_eq(m->topic, topic);
        ck_assert(m->partition >= 0 && m->partition < 3);
        ck_assert_int_gt(m->offset, last_offset[m->partition]); /* in order */
        last_offset[m->partition] = m->offset;
        int idx = value_index(m);
        ck_assert(idx >= 0 && idx < N);
        seen[idx]++;
        /* same key, same partition */
        char key[32];
        snprintf(key, sizeof key, "k%d", idx % 7);
        ck_assert_uint_eq(m->key_len, strlen(key));
        ck_assert_mem_eq(m->key, key, m->key_len);
        cx_consumer_done(c, m);
    }
    for (int i = 0; i < N; i++) ck_assert_int_eq(seen[i], 1);
    cx_consumer_destroy(c);

    /* the same group resumes after everything: the first message it gets
     * is the one produced now */
    produce(p, topic, 0, N, 1);
    c = cx_consumer_new(brokers(), group, topics, &err);
    cx_msg_t *m = next(c);
    ck_assert_int_eq(value_index(m), N);
    cx_consumer_done(c, m);
    cx_consumer_destroy(c);
    cx_producer_destroy(p);
    cx_consumer_destroy(NULL);
    cx_producer_destroy(NULL);
}
END_TEST

START_TEST(test_commit_after_effect) {
    char topic[160], group[160];
    cx_err_t err;
    name(topic, sizeof topic, "effect");
    name(group, sizeof group, "effect-group");
    create(topic, 1);
    cx_producer_t *p = cx_producer_new(brokers(), "test", &err);
    produce(p, topic, -1, 0, 10);
    cx_producer_destroy(p);

    const char *topics[] = {topic, NULL};
    cx_consumer_t *c = cx_consumer_new(brokers(), group, topics, &err);
    for (int i = 0; i < 5; i++) {
        cx_msg_t *m = next(c);
        ck_assert_int_eq(m->offset, i);
        cx_consumer_done(c, m);
    }
    /* taken but its effect never became durable (crash, failure) */
    cx_msg_t *m = next(c);
    ck_assert_int_eq(m->offset, 5);
    cx_msg_free(m);
    m = next(c);
    ck_assert_int_eq(m->offset, 6);
    cx_msg_free(m);
    cx_consumer_destroy(c);

    c = cx_consumer_new(brokers(), group, topics, &err);
    for (int i = 5; i < 10; i++) {
        m = next(c);
        ck_assert_int_eq(m->offset, i);
        ck_assert_int_eq(value_index(m), i);
        cx_consumer_done(c, m);
    }
    cx_consumer_destroy(c);
}
END_TEST

START_TEST(test_partition_consumer) {
    char topic[160], group[160];
    cx_err_t err;
    name(topic, sizeof topic, "dispatch");
    name(group, sizeof group, "dispatch-group");
    create(topic, 2);
    cx_producer_t *p = cx_producer_new(brokers(), "test", &err);
    produce(p, topic, 0, 0, 4);
    produce(p, topic, 1, 100, 6);

    /* no committed offset: from the start of partition 1 only */
    cx_consumer_t *c = cx_consumer_new_partition(brokers(), group, topic, 1, &err);
    ck_assert_msg(c != NULL, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        cx_msg_t *m = next(c);
        ck_assert_int_eq(m->partition, 1);
        ck_assert_int_eq(m->offset, i);
        ck_assert_int_eq(value_index(m), 100 + i);
        cx_consumer_done(c, m);
    }
    cx_consumer_destroy(c);

    produce(p, topic, 1, 106, 1);
    c = cx_consumer_new_partition(brokers(), group, topic, 1, &err);
    for (int i = 3; i < 7; i++) {
        cx_msg_t *m = next(c);
        ck_assert_int_eq(m->partition, 1);
        ck_assert_int_eq(m->offset, i);
        ck_assert_int_eq(value_index(m), 100 + i);
        cx_consumer_done(c, m);
    }
    cx_consumer_destroy(c);
    cx_producer_destroy(p);
}
END_TEST

START_TEST(test_deadletter) {
    char topic[160], group[160], reason[200];
    cx_err_t err;
    name(topic, sizeof topic, "dl-source");
    name(group, sizeof group, "dl-group");
    snprintf(reason, sizeof reason, "missing unit_id (run %s)", run_id);
    create(topic, 1);
    create(CX_TOPIC_DEADLETTER, 1);
    cx_producer_t *p = cx_producer_new(brokers(), "test", &err);
    produce(p, topic, -1, 0, 3);

    const char *topics[] = {topic, NULL};
    cx_consumer_t *c = cx_consumer_new(brokers(), group, topics, &err);
    cx_msg_t *m = next(c);
    cx_consumer_done(c, m);
    m = next(c); /* offset 1, key k1, payload m1 */
    int64_t t0 = cx_now_ms();
    ck_assert_msg(cx_deadletter(p, "planner", m, reason, "job-1", NULL, &err) == 0,
                  "%s", err.msg);
    cx_consumer_done(c, m);
    cx_consumer_destroy(c);

    /* find ours among whatever else is on the shared dead-letter topic */
    const char *dl_topics[] = {CX_TOPIC_DEADLETTER, NULL};
    char dl_group[160];
    name(dl_group, sizeof dl_group, "dl-reader");
    c = cx_consumer_new(brokers(), dl_group, dl_topics, &err);
    Cascade__V1__DeadLetter *dl = NULL;
    cx_msg_t *dm = NULL;
    while (!dl) {
        dm = next(c);
        dl = cascade__v1__dead_letter__unpack(NULL, dm->len, dm->payload);
        if (dl && strcmp(dl->reason, reason) != 0) {
            cascade__v1__dead_letter__free_unpacked(dl, NULL);
            dl = NULL;
        }
        if (!dl) cx_consumer_done(c, dm);
    }
    ck_assert_str_eq(dl->source_topic, topic);
    ck_assert_int_eq(dl->partition, 0);
    ck_assert_int_eq(dl->offset, 1);
    ck_assert_str_eq(dl->service, "planner");
    ck_assert_str_eq(dl->job_id, "job-1");
    ck_assert_str_eq(dl->unit_id, "");
    ck_assert_uint_eq(dl->payload.len, 2);
    ck_assert_mem_eq(dl->payload.data, "m1", 2);
    ck_assert_uint_eq(dl->key.len, 2);
    ck_assert_mem_eq(dl->key.data, "k1", 2);
    ck_assert(dl->unix_ms >= t0 && dl->unix_ms <= cx_now_ms());
    ck_assert_uint_eq(dm->key_len, 2); /* keyed by the original key */
    ck_assert_mem_eq(dm->key, "k1", 2);
    cascade__v1__dead_letter__free_unpacked(dl, NULL);
    cx_consumer_done(c, dm);
    cx_consumer_destroy(c);
    cx_producer_destroy(p);
}
END_TEST

START_TEST(test_unreachable_broker) {
    cx_err_t err;
    /* nothing listens on port 1: a flush times out, retriable */
    cx_producer_t *p = cx_producer_new("127.0.0.1:1", "test", &err);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(cx_producer_send(p, "t", -1, "k", 1, "v", 1, &err), 0);
    ck_assert_int_eq(cx_producer_flush(p, 500, &err), -1);
    ck_assert_int_eq(err.retriable, 1);
    ck_assert_int_eq(err.code, CX_ETIMEOUT);
    /* destroying it does not wait for the 300 s message timeout forever */
    double t0 = cx_mono_ms();
    cx_producer_destroy(p);
    ck_assert(cx_mono_ms() - t0 < 15000);
}
END_TEST

int main(void) {
    snprintf(run_id, sizeof run_id, "%ld-%lld", (long)getpid(),
             (long long)cx_now_ms());
    Suite *s = suite_create("kafka");
    TCase *tc = tcase_create("broker");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_topics);
    tcase_add_test(tc, test_produce_consume_exactly);
    tcase_add_test(tc, test_commit_after_effect);
    tcase_add_test(tc, test_partition_consumer);
    tcase_add_test(tc, test_deadletter);
    tcase_add_test(tc, test_unreachable_broker);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
