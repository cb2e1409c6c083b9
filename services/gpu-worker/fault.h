/* Fault injection for tests: CASCADE_FAULT_NOISE=<sigma> (full-scale
 * units, e.g. 0.05) makes this worker add Gaussian noise to every sample
 * it stages, as a failing GPU would; the quality gates must catch the
 * samples and quarantine the worker (tests/integration/30_*). Unset or 0:
 * nothing changes. Read once, from the environment only: it is not a
 * setting an operator should ever turn on. */
#ifndef CX_GPU_WORKER_FAULT_H
#define CX_GPU_WORKER_FAULT_H

#include <stddef.h>
#include <stdint.h>

/* px with the noise added (malloc'd; the caller frees), deterministic in
 * key; NULL when no fault is configured (or out of memory). */
uint16_t *cx_fault_apply(const uint16_t *px, size_t n, int bit_depth,
                         uint64_t key);

#endif
