/* A string -> int map (open addressing, FNV-1a), the policy library's index
 * from ids (unit, job, worker, checkpoint, unit type) to dense handles.
 * Keys are copied. Not thread-safe. No I/O. */
#ifndef CX_SCHED_STRMAP_H
#define CX_SCHED_STRMAP_H

#include <stddef.h>

typedef struct cx_smap cx_smap_t;

cx_smap_t *cx_smap_new(void);
void cx_smap_destroy(cx_smap_t *m); /* NULL is fine */

/* The value stored under key, or -1. */
int cx_smap_get(const cx_smap_t *m, const char *key);
/* Sets key -> value (value >= 0). Returns 0, or -1 when out of memory. */
int cx_smap_put(cx_smap_t *m, const char *key, int value);
/* Removes key. Returns its value, or -1 when absent. */
int cx_smap_del(cx_smap_t *m, const char *key);
size_t cx_smap_len(const cx_smap_t *m);

#endif
