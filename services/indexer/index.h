/* The indexer's commit handler: count a CommitRecord once, then publish the
 * job's Progress. */
#ifndef CASCADE_INDEXER_INDEX_H
#define CASCADE_INDEXER_INDEX_H

#include "cascade/kafka.h"
#include "cascade/service.h"

/* Handles one cascade.commits message: malformed ones are dead-lettered;
 * otherwise the record is counted (once, whatever the redeliveries) and a
 * Progress for its job is produced and flushed. Returns 0 when the message
 * may be marked done, -1 with err otherwise. *counted (may be NULL) is 1
 * when this call counted the unit. */
int cx_index_handle_commit(cx_service_t *svc, const cx_msg_t *m, int *counted,
                           cx_err_t *err);

/* Produces (and flushes) the current Progress of job_id. */
int cx_index_publish_progress(cx_service_t *svc, const char *job_id,
                              cx_err_t *err);

#endif
