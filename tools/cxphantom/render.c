/* Draws and renders cxphantom's images (render.h). Randomness is Philox
 * normals (cx_normals) keyed by the seed, the image index and a stream per
 * class and purpose, so any image can be rendered alone. */
#include <math.h>
#include <stdlib.h>

#include "cascade/gen.h"
#include "render.h"

#define NDRAW 24
#define STREAM_PARAMS 0x70000u
#define STREAM_GRAIN 0x71000u

/* A uniform in [lo, hi] from a standard normal (through its CDF). */
static double unif(float z, double lo, double hi)
{
    return lo + (hi - lo) * 0.5 * erfc(-(double)z / sqrt(2.0));
}

/* mean + sd * z with z clipped at 2.5 sd, so no anatomy is absurd. */
static double norm(float z, double mean, double sd)
{
    double c = z > 2.5f ? 2.5 : (z < -2.5f ? -2.5 : z);
    return mean + sd * c;
}

static void findings(int cls, const float *z, cx_phantom_t *a)
{
    if (cls == 1) { /* effusion: both sides, or one */
        double u = unif(z[0], 0.0, 1.0);
        double lo = unif(z[1], 0.52, 0.68), hi = unif(z[2], 0.52, 0.68);
        double left = u < 0.5 || u >= 0.75 ? lo : 2.0;
        double right = u < 0.75 ? hi : 2.0;
        a->fluid_level = left;
        a->fluid_skew = right - left;
    } else if (cls == 2) { /* a nodule somewhere in a lung field */
        double side = z[0] < 0 ? -1.0 : 1.0;
        a->nodule_u = 0.5 + side * (0.05 + 0.135 * a->lung_scale *
                                               unif(z[1], 0.35, 1.3));
        a->nodule_v = unif(z[2], 0.30, 0.62) + a->lung_dy;
        a->nodule_r = unif(z[3], 0.012, 0.034);
        a->nodule_int = unif(z[4], 0.15, 0.32);
    } else if (cls == 3) { /* cardiomegaly */
        a->heart_scale = unif(z[0], 1.25, 1.5);
    }
}

void cxp_draw(uint64_t seed, int cls, uint32_t index, cxp_params_t *p)
{
    float z[NDRAW];
    cx_normals(seed, index, STREAM_PARAMS + (uint32_t)cls, 0, NDRAW, z);
    cx_phantom_t *a = &p->anat;
    cx_phantom_class(0, a);
    a->body_rx = norm(z[0], 0.40, 0.015);
    a->lung_scale = norm(z[1], 1.0, 0.04);
    a->lung_dy = norm(z[2], 0.0, 0.015);
    a->lung_density = norm(z[3], 0.24, 0.03);
    a->heart_scale = norm(z[4], 1.0, 0.05);
    a->heart_dx = norm(z[5], 0.0, 0.012);
    a->rib_pitch = norm(z[6], 0.06, 0.003);
    a->rib_phase = norm(z[7], 0.0, 0.008);
    findings(cls, z + 8, a);
    p->contrast = norm(z[16], 1.0, 0.08);
    p->exposure = norm(z[17], 0.0, 0.03);
    p->tilt = norm(z[18], 0.0, 0.02);
    p->heel = norm(z[19], 0.0, 0.02);
    p->grain_sd = unif(z[20], 0.006, 0.014);
}

int cxp_render(const cxp_params_t *p, uint64_t seed, int cls,
               uint32_t index, uint32_t width, uint32_t height,
               uint16_t *out)
{
    float *g = malloc(width * sizeof *g);
    if (!g)
        return -1;
    for (uint32_t y = 0; y < height; y++) {
        double v = (y + 0.5) / height;
        cx_normals(seed, index, STREAM_GRAIN + (uint32_t)cls,
                   (uint64_t)y * width, width, g);
        for (uint32_t x = 0; x < width; x++) {
            double u = (x + 0.5) / width;
            double body = cx_phantom_body(&p->anat, u, v);
            double img = cx_phantom_eval(&p->anat, u, v);
            img = 0.10 + p->contrast * (img - 0.10);
            img += body * (p->exposure + p->tilt * (2.0 * u - 1.0) +
                           p->heel * (2.0 * v - 1.0));
            img += p->grain_sd * g[x];
            img = img < 0.0 ? 0.0 : (img > 1.0 ? 1.0 : img);
            out[(size_t)y * width + x] = (uint16_t)lround(img * 65535.0);
        }
    }
    free(g);
    return 0;
}
