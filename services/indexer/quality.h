/* The quality gates' figures in a job's Progress: the validator keeps them
 * in cx:job:<job>:quality and cx:job:<job>:privacy (see
 * services/validator/account.h); the indexer copies them into every
 * Progress it publishes (proto block H3). */
#ifndef CX_INDEXER_QUALITY_H
#define CX_INDEXER_QUALITY_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/codec.h"
#include "cascade/service.h"

/* Adds the figures to p (classes matched by name; job level: the largest
 * class Frechet distance, precision and recall weighted by the classes'
 * sample counts). Field/value pairs as HGETALL returns them. */
void cx_index_quality_apply(cx_progress_t *p, const char *const *quality,
                            size_t nquality, const char *checked,
                            const char *near, const char *budget);

/* The packed Progress buf with the figures added when the validator has
 * any (buf is consumed; NULL with err when Redis failed). */
uint8_t *cx_index_with_quality(cx_service_t *svc, const char *job_id,
                               uint8_t *buf, size_t *len, cx_err_t *err);

#endif
