/* cascade-committer: cascade.verdicts -> dataset + manifest ->
 * cascade.commits. */
#include <stddef.h>
#include <stdlib.h>

#include "cascade/log.h"
#include "cascade/service.h"
#include "run.h"

typedef struct cx_committer_conf {
    cx_common_conf_t common;
} cx_committer_conf_t;

static const cx_conf_entry_t cx__committer_table[] = {
    CX_CONF_COMMON(cx_committer_conf_t), CX_CONF_END};

int main(int argc, char **argv) {
    cx_committer_conf_t cfg = {0};
    cx_service_t svc;
    cx_err_t err;
    cx_consumer_t *cons = NULL;
    static const char *const topics[] = {CX_TOPIC_VERDICTS, NULL};
    int status = 1;

    int c = cx_service_configure(cx__committer_table, &cfg, "committer", argc,
                                 argv);
    if (c != 0) {
        cx_conf_free(cx__committer_table, &cfg);
        return c == 1 ? 0 : 2;
    }
    if (cx_service_init(&svc, "committer", &cfg.common,
                        CX_SVC_PRODUCER | CX_SVC_REDIS | CX_SVC_STORE,
                        &err) < 0) {
        CX_ERROR("startup failed reason=\"%s\"", err.msg);
        goto fail_service;
    }
    cons = cx_consumer_new(cfg.common.kafka_brokers, "cascade-committer",
                           topics, &err);
    if (!cons) {
        CX_ERROR("startup failed reason=\"%s\"", err.msg);
        goto fail_consumer;
    }
    CX_INFO("committer running");
    status = cx_committer_run(&svc, cons) == 0 ? 0 : 1;

    cx_consumer_destroy(cons);
fail_consumer:
    cx_service_shutdown(&svc);
fail_service:
    cx_conf_free(cx__committer_table, &cfg);
    return status;
}
