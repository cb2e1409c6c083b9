/* Rebuilding the index from the store: the manifests are the truth.
 *
 * For a job, the indexer's counters (committed, units, generated, passed,
 * resolved_n per class, and the `c` entries of resolved) are recomputed from
 * <job>/manifests/ *.json and replaced in one script. Units the scheduler
 * marked dead (`d`) keep their mark, and their planned samples are added to
 * resolved_n from the unit's WorkUnit in cx:unit:<unit>. Nothing else (the
 * planner's issued/next_ordinal/round, the committer's grants, the
 * scheduler's keys) is touched. */
#ifndef CASCADE_INDEXER_REBUILD_H
#define CASCADE_INDEXER_REBUILD_H

#include <stdint.h>

#include "cascade/manifest.h"
#include "cascade/names.h"
#include "cascade/redis.h"
#include "cascade/store.h"
#include "cascade/util.h"

typedef struct cx_rebuild_class {
    char name[CX_NAME_MAX + 1];
    uint64_t committed, units, generated, passed, resolved_n;
} cx_rebuild_class_t;

typedef struct cx_rebuild {
    char job_id[CX_NAME_MAX + 1];
    size_t nclasses;
    cx_rebuild_class_t *classes;
    cx_strlist_t committed_units; /* unit ids with a manifest */
    size_t manifests;     /* manifests counted */
    size_t skipped;       /* unreadable, or of another job */
    size_t dead;          /* dead units whose planned count was added */
    size_t dead_unknown;  /* dead units without a WorkUnit to size them */
} cx_rebuild_t;

void cx_rebuild_init(cx_rebuild_t *rb, const char *job_id);
void cx_rebuild_release(cx_rebuild_t *rb);
/* Adds one manifest (of rb's job; another job's is counted as skipped). */
int cx_rebuild_add_manifest(cx_rebuild_t *rb, const cx_manifest_t *m,
                            cx_err_t *err);
/* Adds the planned samples of a dead unit of class name. */
int cx_rebuild_add_dead(cx_rebuild_t *rb, const char *name, uint64_t planned,
                        cx_err_t *err);
cx_rebuild_class_t *cx_rebuild_class(cx_rebuild_t *rb, const char *name,
                                     cx_err_t *err);

/* Scans the job's manifests in store and its dead units in Redis into rb
 * (initialised by the caller), then replaces the counters. */
int cx_rebuild_job(cx_redis_t *r, cx_store_t *store, cx_rebuild_t *rb,
                   cx_err_t *err);

#endif
