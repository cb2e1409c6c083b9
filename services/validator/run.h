/* The validator's Kafka side: staged batches are collected into groups
 * (up to batch_samples samples, or whatever arrived within window_ms of
 * the group's first message), validated together (validate.h), counted
 * (account.h), and each batch's Verdict produced; a message's offset is
 * stored only once its Verdict is acknowledged (or it was dead-lettered).
 * Generation never waits for this: the workers only write staging and
 * produce to cascade.staged. */
#ifndef CX_VALIDATOR_RUN_H
#define CX_VALIDATOR_RUN_H

#include "account.h"
#include "cascade/service.h"
#include "validate.h"

typedef struct cx_vrun_conf {
    size_t batch_samples; /* close a group at this many samples */
    int window_ms;        /* ...or this long after its first message */
    size_t busy_samples;  /* but waits no more once it holds this many */
    size_t max_messages;  /* ...or this many messages */
    cx_quar_conf_t quar;
} cx_vrun_conf_t;

/* Handles the n messages of one group. done[i] is set to 1 for each
 * message whose effect is durable (Verdict acknowledged, skipped, or
 * dead-lettered): its offset may be stored. Returns 0 when every message
 * is done, or -1 with err when some must be tried again (err->retriable
 * 1: a store, Redis or Kafka failure). */
int cx_validator_handle_group(cx_service_t *svc, cx_validator_t *v,
                              const cx_vrun_conf_t *conf, cx_msg_t **msgs,
                              size_t n, int *done, cx_err_t *err);

/* Consumes c until the service is stopping. Returns 0 on a clean stop. */
int cx_validator_run(cx_service_t *svc, cx_validator_t *v,
                     const cx_vrun_conf_t *conf, cx_consumer_t *c);

#endif
