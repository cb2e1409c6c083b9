/* Decoding and validation of every cascade.v1 message, without I/O.
 *
 * Each cx_decode_* takes the bytes of a Kafka message and returns the
 * unpacked message, or NULL with CX_EDECODE and a reason naming what is
 * wrong ("not a protobuf", "missing unit_id", "unit_id is not 32 hex
 * characters", ...). A message of another type decodes into an empty value
 * (see cascade.proto) and fails here on its first required field. Free the
 * result with the matching protobuf-c __free_unpacked(msg, NULL). */
#ifndef CASCADE_CODEC_H
#define CASCADE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/v1/cascade.pb-c.h"

typedef Cascade__V1__JobSpec cx_jobspec_t;
typedef Cascade__V1__WorkUnit cx_unit_t;
typedef Cascade__V1__Assignment cx_assignment_t;
typedef Cascade__V1__StagedBatch cx_staged_t;
typedef Cascade__V1__Verdict cx_verdict_t;
typedef Cascade__V1__CommitRecord cx_commit_t;
typedef Cascade__V1__Progress cx_progress_t;
typedef Cascade__V1__JobEvent cx_jobevent_t;
typedef Cascade__V1__DeadLetter cx_deadletter_t;

/* Limits a valid job must respect. */
#define CX_MAX_CLASSES 64
#define CX_MAX_TOTAL 1000000000ULL
#define CX_MIN_SIDE 8
#define CX_MAX_SIDE 4096
#define CX_MAX_STEPS 1000
#define CX_MAX_UNIT_SIZE 1024
#define CX_DEFAULT_UNIT_SIZE 32

/* A JobSpec as sent on cascade.jobs. Structural checks only (see
 * cx_jobspec_validate for the full rules of a submission). */
cx_jobspec_t *cx_decode_jobspec(const void *data, size_t len, cx_err_t *err);
cx_unit_t *cx_decode_unit(const void *data, size_t len, cx_err_t *err);
cx_assignment_t *cx_decode_assignment(const void *data, size_t len,
                                      cx_err_t *err);
cx_staged_t *cx_decode_staged(const void *data, size_t len, cx_err_t *err);
cx_verdict_t *cx_decode_verdict(const void *data, size_t len, cx_err_t *err);
cx_commit_t *cx_decode_commit(const void *data, size_t len, cx_err_t *err);
cx_progress_t *cx_decode_progress(const void *data, size_t len,
                                  cx_err_t *err);
cx_jobevent_t *cx_decode_jobevent(const void *data, size_t len,
                                  cx_err_t *err);
cx_deadletter_t *cx_decode_deadletter(const void *data, size_t len,
                                      cx_err_t *err);

/* Returns 1 if the class name is one the job's checkpoint can generate. */
typedef int (*cx_class_known_fn)(void *ctx, const char *checkpoint,
                                 const char *class_name);

/* Full validation of a submission (action SUBMIT): ids and names pass
 * cx_name_check; each class has exactly one of count > 0 or proportion in
 * (0, 1]; proportions sum to 1 (within 1e-6) with total_count > 0; counts
 * and total agree when both given; no duplicate classes; sizes, depth,
 * steps, guidance, eta and unit_size within limits; known sampler; classes
 * known to the checkpoint (when known is not NULL). The first problem found
 * is reported, naming the field. */
int cx_jobspec_validate(const cx_jobspec_t *spec, cx_class_known_fn known,
                        void *ctx, cx_err_t *err);

/* Per-class quotas of a validated spec, in class order; proportions are
 * turned into counts that sum exactly to total_count (largest remainder).
 * Returns the total. */
uint64_t cx_jobspec_quotas(const cx_jobspec_t *spec, uint64_t *quotas);

/* Fills the defaults of unset fields in place (unit_size, steps, sampler,
 * width/height 512, bit_depth 16, total_count from counts, output_uri
 * empty = the service's store). Call before validating. Returns -1 only
 * when out of memory. */
int cx_jobspec_apply_defaults(cx_jobspec_t *spec, cx_err_t *err);

/* Packs any protobuf-c message into a malloc'd buffer. */
uint8_t *cx_pack(const ProtobufCMessage *msg, size_t *len, cx_err_t *err);

#endif
