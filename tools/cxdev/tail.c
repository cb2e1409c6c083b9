/* cxdev tail: print a topic's messages, one line each.
 *
 * Every run consumes in a fresh group, so it never disturbs the services'
 * offsets. Without --from-beginning only messages produced after the start
 * are printed: the partitions' high watermarks at start are the floor. */
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/util.h"
#include "cxdev.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* The high watermark of every partition of topic, via a throwaway handle. */
static int64_t *watermarks(const char *brokers, const char *topic, int *np,
                           cx_err_t *err)
{
    char errstr[512];
    int n = cx_kafka_partition_count(brokers, topic, 10000, err);
    if (n < 0)
        return NULL;
    int64_t *hw = calloc((size_t)n, sizeof *hw);
    if (!hw) {
        cx_err_set(err, CX_ENOMEM, 0, "watermarks");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
                          sizeof errstr) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        cx_err_set(err, CX_EINVAL, 0, "bootstrap.servers: %s", errstr);
        goto fail_conf;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
                                  sizeof errstr);
    if (!rk) {
        cx_err_set(err, CX_EKAFKA, 1, "rd_kafka_new: %s", errstr);
        goto fail_conf;
    }
    for (int p = 0; p < n; p++) {
        int64_t lo;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            rk, topic, p, &lo, &hw[p], 10000);
        if (e) {
            cx_err_set(err, CX_EKAFKA, 1, "watermarks of %s[%d]: %s", topic,
                       p, rd_kafka_err2str(e));
            rd_kafka_destroy(rk);
            goto fail_conf;
        }
    }
    rd_kafka_destroy(rk);
    *np = n;
    return hw;
fail_conf:
    free(hw);
    return NULL;
}

long long cxdev_tail(const cxdev_args_t *a, FILE *out, cx_err_t *err)
{
    long long printed = -1;
    int64_t *floor = NULL;
    int nfloor = 0;
    if (!a->from_beginning) {
        floor = watermarks(a->brokers, a->topic, &nfloor, err);
        if (!floor)
            return -1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    char group[96];
    snprintf(group, sizeof group, "cxdev-tail-%ld-%lld", (long)getpid(),
             (long long)cx_now_ms());
    const char *topics[] = {a->topic, NULL};
    cx_consumer_t *c = cx_consumer_new(a->brokers, group, topics, err);
    if (!c)
        goto fail_consumer;

    double deadline = a->timeout_ms >= 0
                          ? cx_mono_ms() + (double)a->timeout_ms : -1;
    printed = 0;
    while (!stop_flag && (a->max == 0 || printed < a->max)) {
        int wait = 200;
        if (deadline >= 0) {
            double left = deadline - cx_mono_ms();
            if (left <= 0)
                break;
            if (left < wait)
                wait = (int)left + 1;
        }
        cx_msg_t *m = NULL;
        int r = cx_consumer_poll(c, wait, &m, err);
        if (r < 0) {
            if (err && err->retriable)
                continue;
            printed = -1;
            break;
        }
        if (r == 0)
            continue;
        if (!floor || m->partition >= nfloor ||
            m->offset >= floor[m->partition]) {
            cxdev_format(out, m, a->value_only);
            fflush(out);
            printed++;
        }
        cx_consumer_done(c, m);
    }
    cx_consumer_destroy(c);
fail_consumer:
    free(floor);
    return printed;
}
