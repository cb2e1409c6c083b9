/* The validator's Kafka side: one cascade.staged message in, at most one
 * Verdict out, offset stored only once the Verdict is acknowledged. */
#ifndef CX_VALIDATOR_RUN_H
#define CX_VALIDATOR_RUN_H

#include "cascade/service.h"
#include "validate.h"

/* Handles one message: decodes it (malformed: dead-lettered), validates it
 * and produces and flushes its Verdict. Returns 0 when the offset may be
 * stored, -1 with err otherwise (err->retriable: try the same message
 * again). */
int cx_validator_handle(cx_service_t *svc, cx_validator_t *v,
                        const cx_msg_t *m, cx_err_t *err);

/* Polls c until the service is stopping, retrying a message with backoff
 * while its handling fails retriably; a message that fails otherwise is
 * dead-lettered with the error. Returns 0 on a clean stop. */
int cx_validator_run(cx_service_t *svc, cx_validator_t *v, cx_consumer_t *c);

#endif
