/* Procedural chest-radiograph phantom: the anatomy behind the built-in
 * checkpoint ref-cxr-v0 and the training images rendered by cxphantom.
 *
 * An image is a smooth function of a few anatomical parameters evaluated on
 * the normalised plane (u, v) in [0,1]^2 (u left to right, v top to bottom),
 * so it looks the same at every resolution. Intensity is in [0,1], bright =
 * dense (radiograph convention). Pure functions, thread-safe. */
#ifndef CASCADE_PHANTOM_H
#define CASCADE_PHANTOM_H

#include <stdint.h>

#define CX_PHANTOM_NCLASS 4 /* normal, effusion, nodule, cardiomegaly */

typedef struct cx_phantom {
    double body_rx;      /* half-width of the body outline */
    double lung_scale;   /* lung field size, 1 = reference */
    double lung_dy;      /* vertical shift of the lung fields */
    double lung_density; /* how much darker the aerated lung is */
    double heart_scale;  /* heart shadow size, 1 = reference */
    double heart_dx;     /* horizontal shift of the heart */
    double fluid_level;  /* effusion surface height (v) on the image-left
                            side; a side whose level is >= 1 has no fluid */
    double fluid_skew;   /* added to the level on the image-right side */
    double nodule_int;   /* nodule brightness; 0: no nodule */
    double nodule_r;     /* nodule radius */
    double nodule_u, nodule_v; /* nodule centre */
    double rib_pitch;    /* vertical spacing of the posterior ribs */
    double rib_phase;    /* vertical offset of the rib cage */
} cx_phantom_t;

/* Name of class k < CX_PHANTOM_NCLASS, NULL otherwise. */
const char *cx_phantom_class_name(int k);
/* The reference phantom of class k (the mean anatomy of ref-cxr-v0). */
void cx_phantom_class(int k, cx_phantom_t *p);
/* Intensity at (u, v). */
double cx_phantom_eval(const cx_phantom_t *p, double u, double v);
/* Soft body mask in [0,1] at (u, v): 1 inside the body outline. */
double cx_phantom_body(const cx_phantom_t *p, double u, double v);

#endif
