/* The committer's Kafka side: one cascade.verdicts message in, at most one
 * CommitRecord out; the attempt's staging is deleted and the offset stored
 * only once the record is acknowledged. */
#ifndef CX_COMMITTER_RUN_H
#define CX_COMMITTER_RUN_H

#include "cascade/service.h"
#include "commit.h"

/* Handles one message: decodes it (malformed: dead-lettered), commits it,
 * produces and flushes its CommitRecord and deletes the attempt's staging.
 * Returns 0 when the offset may be stored, -1 with err otherwise
 * (err->retriable: try the same message again). */
int cx_committer_handle(cx_service_t *svc, const cx_msg_t *m, cx_err_t *err);

/* Polls c until the service is stopping, retrying a message with backoff
 * while its handling fails retriably (never skipping it); a message that
 * fails otherwise is dead-lettered with the error. */
int cx_committer_run(cx_service_t *svc, cx_consumer_t *c);

#endif
