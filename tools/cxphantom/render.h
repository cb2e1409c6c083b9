/* cxphantom's renderer: one procedural chest radiograph per (seed, class,
 * index), drawn from a distribution of anatomies, findings and exposures
 * around the reference phantom (cascade/phantom.h), with detector grain.
 * Pure and deterministic: the same arguments give the same pixels on every
 * run and thread. */
#ifndef CXPHANTOM_RENDER_H
#define CXPHANTOM_RENDER_H

#include <stdint.h>

#include "cascade/phantom.h"

typedef struct cxp_params {
    cx_phantom_t anat;
    double contrast;  /* gain around the background level */
    double exposure;  /* offset inside the body */
    double tilt, heel; /* linear ramps across / down the body */
    double grain_sd;  /* detector noise, full-scale units */
} cxp_params_t;

/* The parameters of image `index` of class `cls` (0..CX_PHANTOM_NCLASS-1,
 * see cx_phantom_class_name). */
void cxp_draw(uint64_t seed, int cls, uint32_t index, cxp_params_t *p);

/* Renders p at width x height into out (16-bit full scale), with the grain
 * of (seed, cls, index). -1 only when out of memory. */
int cxp_render(const cxp_params_t *p, uint64_t seed, int cls,
               uint32_t index, uint32_t width, uint32_t height,
               uint16_t *out);

#endif
