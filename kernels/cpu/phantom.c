/* The procedural chest-radiograph phantom (see cascade/phantom.h). Every
 * edge is a logistic ramp a fixed fraction of the image wide, so the image
 * is smooth in its parameters: ref-cxr-v0 takes finite differences of it,
 * and the rendered training sets vary them. */
#include <math.h>
#include <stddef.h>

#include "cascade/phantom.h"

static const char *const class_names[CX_PHANTOM_NCLASS] = {
    "normal", "effusion", "nodule", "cardiomegaly"};

static const cx_phantom_t normal_phantom = {
    .body_rx = 0.40, .lung_scale = 1.0, .lung_dy = 0.0, .lung_density = 0.24,
    .heart_scale = 1.0, .heart_dx = 0.0, .fluid_level = 2.0,
    .fluid_skew = 0.06, .nodule_int = 0.0, .nodule_r = 0.022,
    .nodule_u = 0.37, .nodule_v = 0.38, .rib_pitch = 0.06,
    .rib_phase = 0.0};

const char *cx_phantom_class_name(int k)
{
    return k >= 0 && k < CX_PHANTOM_NCLASS ? class_names[k] : NULL;
}

void cx_phantom_class(int k, cx_phantom_t *p)
{
    *p = normal_phantom;
    if (k == 1)
        p->fluid_level = 0.60;
    else if (k == 2)
        p->nodule_int = 0.26;
    else if (k == 3)
        p->heart_scale = 1.35;
}

/* Logistic; saturated beyond |t| = 36, where it is within 2e-16 of 0 or 1
 * (most of the image is far from every edge: this halves the cost). */
static inline double sig(double t)
{
    if (t > 36.0)
        return 1.0;
    if (t < -36.0)
        return 0.0;
    return 1.0 / (1.0 + exp(-t));
}

static double soft_ellipse(double u, double v, double cx, double cy,
                           double rx, double ry, double edge)
{
    double dx = (u - cx) / rx, dy = (v - cy) / ry;
    double rho = sqrt(dx * dx + dy * dy);
    return sig((1.0 - rho) * (rx < ry ? rx : ry) / edge);
}

double cx_phantom_body(const cx_phantom_t *p, double u, double v)
{
    /* superellipse: square shoulders, rounded flanks */
    double dx = fabs(u - 0.5) / p->body_rx, dy = fabs(v - 0.64) / 0.62;
    double rho = cbrt(dx * dx * dx + dy * dy * dy);
    double body = sig((1.0 - rho) * p->body_rx / 0.008);
    double neck = sig((0.085 - fabs(u - 0.5)) / 0.008) * sig((0.2 - v) / 0.01);
    return 1.0 - (1.0 - body) * (1.0 - neck);
}

/* Subtracts both lung fields (with any effusion) from img; returns the sum
 * of the lung masks (where the ribs show). */
static double lungs(const cx_phantom_t *p, double u, double v, double *img)
{
    double sum = 0.0;
    for (int s = -1; s <= 1; s += 2) {
        double ls = p->lung_scale;
        double cx = 0.5 + s * (0.05 + 0.135 * ls);
        double cy = 0.47 + p->lung_dy, ry = 0.29 * ls;
        double w = (v - (cy - ry)) / (2.0 * ry);
        w = w < 0 ? 0 : (w > 1 ? 1 : w);
        double rx = 0.135 * ls * (0.75 + 0.35 * w); /* wider at the bases */
        double lung = soft_ellipse(u, v, cx, cy, rx, ry, 0.01);
        double fill = 0.0;
        double level = p->fluid_level + (s > 0 ? p->fluid_skew : 0.0);
        if (level < 1.0) {
            /* the fluid surface curves up along the lateral wall */
            double lat = s * (u - cx) / rx;
            lat = lat > 0 ? lat : 0;
            fill = 0.95 * sig((v - (level - 0.07 * lat * lat)) / 0.012);
        }
        *img -= p->lung_density * lung * (1.0 - fill);
        sum += lung;
    }
    return sum;
}

double cx_phantom_eval(const cx_phantom_t *p, double u, double v)
{
    double body = cx_phantom_body(p, u, v);
    double img = 0.10 + 0.33 * body;
    double au = fabs(u - 0.5);
    double med = sig((0.05 + 0.04 * v - au) / 0.008) * sig((0.78 - v) / 0.02);
    img += (0.06 + 0.12 * (v < 0.6 ? v / 0.6 : 1.0)) * med * body;
    double lsum = lungs(p, u, v, &img);

    /* posterior ribs: arcs falling away from the spine */
    double lat = sig((au - 0.06) / 0.01);
    for (int k = 0; k < 10; k++) {
        double vr = 0.15 + p->rib_phase + p->rib_pitch * k +
                    0.9 * (u - 0.5) * (u - 0.5);
        double dv = (v - vr) / 0.012;
        if (fabs(dv) < 6.0)
            img += 0.07 * exp(-dv * dv) * lat * (0.1 * body + 0.9 * lsum);
    }

    double heart = soft_ellipse(u, v, 0.535 + p->heart_dx, 0.655,
                                0.105 * p->heart_scale,
                                0.085 * p->heart_scale, 0.01);
    img = img * (1.0 - heart) + 0.62 * heart;

    if (p->nodule_int != 0.0)
        img += p->nodule_int * soft_ellipse(u, v, p->nodule_u, p->nodule_v,
                                            p->nodule_r, p->nodule_r, 0.004);
    return img;
}
