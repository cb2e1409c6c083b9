/* The built-in reference checkpoint "ref-cxr-v0", built at any resolution.
 *
 * Each class is a Gaussian around a procedural chest-radiograph phantom. The
 * phantom is a function of a few anatomical parameters (body width, lung
 * size and position, heart size and position, fluid level, nodule size...);
 * the covariance is the linearisation of random parameter changes (central
 * finite differences, one standard deviation wide) plus exposure/contrast
 * fields, plus a small isotropic grain. Modes are defined on the normalised
 * image plane with soft edges, so the model looks the same at every size. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"

#define CKPT_NAME "ref-cxr-v0"
#define NCLASS 4
#define NMODE 14
#define GRAIN_SD 0.01
#define MIN_SIDE 16u
#define MAX_SIDE 4096u

static const char *const class_names[NCLASS] = {"normal", "effusion",
                                                "nodule", "cardiomegaly"};

typedef struct phantom {
    double body_rx, lung_scale, lung_dy, lung_density;
    double heart_scale, heart_dx;
    double fluid_level; /* >= 1: no fluid */
    double nodule_int, nodule_r;
} phantom_t;

static const phantom_t normal_phantom = {
    .body_rx = 0.40, .lung_scale = 1.0, .lung_dy = 0.0, .lung_density = 0.24,
    .heart_scale = 1.0, .heart_dx = 0.0, .fluid_level = 2.0,
    .nodule_int = 0.0, .nodule_r = 0.022};

static phantom_t class_phantom(int k)
{
    phantom_t p = normal_phantom;
    if (k == 1)
        p.fluid_level = 0.60;
    else if (k == 2)
        p.nodule_int = 0.26;
    else if (k == 3)
        p.heart_scale = 1.35;
    return p;
}

static inline double sig(double t) { return 1.0 / (1.0 + exp(-t)); }

static double soft_ellipse(double u, double v, double cx, double cy,
                           double rx, double ry, double edge)
{
    double dx = (u - cx) / rx, dy = (v - cy) / ry;
    double rho = sqrt(dx * dx + dy * dy);
    return sig((1.0 - rho) * (rx < ry ? rx : ry) / edge);
}

static double body_mask(const phantom_t *p, double u, double v)
{
    /* superellipse: square shoulders, rounded flanks */
    double dx = fabs(u - 0.5) / p->body_rx, dy = fabs(v - 0.64) / 0.62;
    double rho = cbrt(dx * dx * dx + dy * dy * dy);
    double body = sig((1.0 - rho) * p->body_rx / 0.008);
    double neck = sig((0.085 - fabs(u - 0.5)) / 0.008) * sig((0.2 - v) / 0.01);
    return 1.0 - (1.0 - body) * (1.0 - neck);
}

/* Intensity in [0,1] (bright = dense) at normalised position (u, v). */
static double phantom_eval(const phantom_t *p, double u, double v,
                           double *lungs_out)
{
    double body = body_mask(p, u, v);
    double img = 0.10 + 0.33 * body;
    double au = fabs(u - 0.5);
    double med = sig((0.05 + 0.04 * v - au) / 0.008) * sig((0.78 - v) / 0.02);
    img += (0.06 + 0.12 * (v < 0.6 ? v / 0.6 : 1.0)) * med * body;

    double lungs = 0.0;
    for (int s = -1; s <= 1; s += 2) {
        double ls = p->lung_scale;
        double cx = 0.5 + s * (0.05 + 0.135 * ls);
        double cy = 0.47 + p->lung_dy, ry = 0.29 * ls;
        double w = (v - (cy - ry)) / (2.0 * ry);
        w = w < 0 ? 0 : (w > 1 ? 1 : w);
        double rx = 0.135 * ls * (0.75 + 0.35 * w); /* wider at the bases */
        double lung = soft_ellipse(u, v, cx, cy, rx, ry, 0.01);
        double fill = 0.0;
        if (p->fluid_level < 1.0) {
            /* the fluid surface curves up along the lateral wall */
            double lat = s * (u - cx) / rx;
            lat = lat > 0 ? lat : 0;
            double level = p->fluid_level + (s > 0 ? 0.06 : 0.0) -
                           0.07 * lat * lat;
            fill = 0.95 * sig((v - level) / 0.012);
        }
        img -= p->lung_density * lung * (1.0 - fill);
        lungs += lung;
    }

    /* posterior ribs: arcs falling away from the spine */
    double lat = sig((au - 0.06) / 0.01);
    for (int k = 0; k < 10; k++) {
        double vr = 0.15 + 0.06 * k + 0.9 * (u - 0.5) * (u - 0.5);
        double dv = (v - vr) / 0.012;
        if (fabs(dv) < 6.0)
            img += 0.07 * exp(-dv * dv) * lat * (0.1 * body + 0.9 * lungs);
    }

    double heart = soft_ellipse(u, v, 0.535 + p->heart_dx, 0.655,
                                0.105 * p->heart_scale,
                                0.085 * p->heart_scale, 0.01);
    img = img * (1.0 - heart) + 0.62 * heart;

    if (p->nodule_int != 0.0)
        img += p->nodule_int * soft_ellipse(u, v, 0.37, 0.38, p->nodule_r,
                                            p->nodule_r, 0.004);
    if (lungs_out)
        *lungs_out = lungs;
    return img;
}

/* Which class uses mode i. Modes 0-9 are generic, 10-13 class-specific
 * (cardiomegaly's heart-size mode replaces the generic one, 5). */
static int mode_in_class(int i, int k)
{
    if (i < 10)
        return !(i == 5 && k == 3);
    return (i == 10 && k == 1) || ((i == 11 || i == 12) && k == 2) ||
           (i == 13 && k == 3);
}

/* Central difference of the phantom in one parameter, one sd wide. */
static double fd(const phantom_t *base, size_t off, double sd, double u,
                 double v)
{
    phantom_t a = *base, b = *base;
    *(double *)((char *)&a + off) += sd;
    *(double *)((char *)&b + off) -= sd;
    return 0.5 * (phantom_eval(&a, u, v, NULL) - phantom_eval(&b, u, v, NULL));
}

static void eval_modes(double u, double v, double *f)
{
    const phantom_t *n = &normal_phantom;
    phantom_t eff = class_phantom(1), nod = class_phantom(2),
              card = class_phantom(3);
    double body = body_mask(n, u, v);
    double img = phantom_eval(n, u, v, NULL);
    f[0] = 0.035 * body;                  /* exposure */
    f[1] = 0.10 * (img - 0.10);           /* contrast */
    f[2] = fd(n, offsetof(phantom_t, lung_density), 0.03, u, v);
    f[3] = fd(n, offsetof(phantom_t, lung_scale), 0.04, u, v);
    f[4] = fd(n, offsetof(phantom_t, lung_dy), 0.015, u, v);
    f[5] = fd(n, offsetof(phantom_t, heart_scale), 0.06, u, v);
    f[6] = fd(n, offsetof(phantom_t, heart_dx), 0.012, u, v);
    f[7] = fd(n, offsetof(phantom_t, body_rx), 0.012, u, v);
    f[8] = 0.03 * (2.0 * u - 1.0) * body; /* tilt */
    f[9] = 0.03 * (2.0 * v - 1.0) * body; /* heel effect */
    f[10] = fd(&eff, offsetof(phantom_t, fluid_level), 0.035, u, v);
    f[11] = fd(&nod, offsetof(phantom_t, nodule_int), 0.07, u, v);
    f[12] = fd(&nod, offsetof(phantom_t, nodule_r), 0.005, u, v);
    f[13] = fd(&card, offsetof(phantom_t, heart_scale), 0.08, u, v);
}

void cx__sym_eigen(size_t n, double *a, double *w, double *v)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            v[j * n + i] = i == j ? 1.0 : 0.0;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, tot = 0.0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                tot += a[i * n + j] * a[i * n + j];
                if (i != j)
                    off += a[i * n + j] * a[i * n + j];
            }
        if (off <= 1e-30 * tot || off == 0.0)
            break;
        for (size_t p = 0; p < n; p++)
            for (size_t q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (apq == 0.0)
                    continue;
                double theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) /
                           (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (size_t k = 0; k < n; k++) { /* rotate columns p, q */
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (size_t k = 0; k < n; k++) { /* rotate rows p, q */
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for (size_t k = 0; k < n; k++) {
                    double vkp = v[p * n + k], vkq = v[q * n + k];
                    v[p * n + k] = c * vkp - s * vkq;
                    v[q * n + k] = s * vkp + c * vkq;
                }
            }
    }
    for (size_t i = 0; i < n; i++)
        w[i] = a[i * n + i];
    for (size_t i = 0; i < n; i++) { /* selection sort, decreasing */
        size_t best = i;
        for (size_t j = i + 1; j < n; j++)
            if (w[j] > w[best])
                best = j;
        if (best != i) {
            double t = w[i];
            w[i] = w[best];
            w[best] = t;
            for (size_t k = 0; k < n; k++) {
                t = v[i * n + k];
                v[i * n + k] = v[best * n + k];
                v[best * n + k] = t;
            }
        }
    }
}

int cx_checkpoint_has_class(const char *checkpoint, const char *class_name)
{
    if (!checkpoint || !class_name || strcmp(checkpoint, CKPT_NAME) != 0)
        return 0;
    for (int k = 0; k < NCLASS; k++)
        if (strcmp(class_names[k], class_name) == 0)
            return 1;
    return 0;
}

/* Orthonormalises the modes (modified Gram-Schmidt, twice) into q and
 * returns the coefficients r (NMODE x NMODE, f_i = sum_j r[j][i] q_j). */
static int orthonormalise(double *f, double *q, size_t d, double *r)
{
    memcpy(q, f, NMODE * d * sizeof *q);
    memset(r, 0, NMODE * NMODE * sizeof *r);
    for (size_t i = 0; i < NMODE; i++) {
        double *qi = q + i * d;
        double n0 = 0.0;
        for (size_t p = 0; p < d; p++)
            n0 += qi[p] * qi[p];
        for (int pass = 0; pass < 2; pass++)
            for (size_t j = 0; j < i; j++) {
                const double *qj = q + j * d;
                double dot = 0.0;
                for (size_t p = 0; p < d; p++)
                    dot += qj[p] * qi[p];
                for (size_t p = 0; p < d; p++)
                    qi[p] -= dot * qj[p];
                r[j * NMODE + i] += dot;
            }
        double nn = 0.0;
        for (size_t p = 0; p < d; p++)
            nn += qi[p] * qi[p];
        if (!(nn > 1e-12 * n0) || n0 == 0.0)
            return -1;
        nn = sqrt(nn);
        r[i * NMODE + i] = nn;
        for (size_t p = 0; p < d; p++)
            qi[p] /= nn;
    }
    return 0;
}

static void class_covariance(cx_model_t *m, const double *r, int k)
{
    double g[NMODE * NMODE];
    for (size_t a = 0; a < NMODE; a++)
        for (size_t b = 0; b < NMODE; b++) {
            double s = 0.0;
            for (int i = 0; i < NMODE; i++)
                if (mode_in_class(i, k))
                    s += r[a * NMODE + i] * r[b * NMODE + i];
            g[a * NMODE + b] = s;
        }
    cx__sym_eigen(NMODE, g, m->lam[k], m->v[k]);
    for (size_t i = 0; i < NMODE; i++)
        if (m->lam[k][i] < 0.0)
            m->lam[k][i] = 0.0;
}

cx_model_t *cx_model_open(const char *checkpoint, uint32_t width,
                          uint32_t height, cx_err_t *err)
{
    if (!checkpoint || strcmp(checkpoint, CKPT_NAME) != 0) {
        cx_err_set(err, CX_ENOENT, 0, "unknown checkpoint '%s'",
                   checkpoint ? checkpoint : "(null)");
        return NULL;
    }
    if (width < MIN_SIDE || height < MIN_SIDE || width > MAX_SIDE ||
        height > MAX_SIDE) {
        cx_err_set(err, CX_EINVAL, 0,
                   "%s: size %ux%u outside %ux%u..%ux%u", checkpoint, width,
                   height, MIN_SIDE, MIN_SIDE, MAX_SIDE, MAX_SIDE);
        return NULL;
    }
    size_t d = (size_t)width * height;
    cx_model_t *m = calloc(1, sizeof *m);
    if (!m)
        goto fail_alloc;
    m->width = width;
    m->height = height;
    m->npix = d;
    m->nclasses = NCLASS;
    m->rank = NMODE;
    m->names = class_names;
    m->s2 = GRAIN_SD * GRAIN_SD;
    m->q = malloc(NMODE * d * sizeof *m->q);
    m->mu = malloc(NCLASS * d * sizeof *m->mu);
    double *f = malloc(NMODE * d * sizeof *f);
    double *qd = malloc(NMODE * d * sizeof *qd);
    if (!m->q || !m->mu || !f || !qd)
        goto fail_scratch;

    phantom_t cp[NCLASS];
    for (int k = 0; k < NCLASS; k++)
        cp[k] = class_phantom(k);
    for (uint32_t y = 0; y < height; y++)
        for (uint32_t x = 0; x < width; x++) {
            size_t p = (size_t)y * width + x;
            double u = (x + 0.5) / width, v = (y + 0.5) / height;
            double modes[NMODE];
            eval_modes(u, v, modes);
            for (int i = 0; i < NMODE; i++)
                f[i * d + p] = modes[i];
            for (int k = 0; k < NCLASS; k++)
                m->mu[k * d + p] = (float)phantom_eval(&cp[k], u, v, NULL);
        }

    double r[NMODE * NMODE];
    if (orthonormalise(f, qd, d, r) != 0) {
        cx_err_set(err, CX_EMODEL, 0, "%s: degenerate basis at %ux%u",
                   checkpoint, width, height);
        goto fail_build;
    }
    for (size_t i = 0; i < NMODE * d; i++)
        m->q[i] = (float)qd[i];
    for (int k = 0; k < NCLASS; k++) {
        class_covariance(m, r, k);
        const float *mk = m->mu + k * d;
        double mm = 0.0;
        for (size_t p = 0; p < d; p++)
            mm += (double)mk[p] * mk[p];
        m->mumu[k] = mm;
        for (size_t j = 0; j < NMODE; j++) {
            const float *qj = m->q + j * d;
            double s = 0.0;
            for (size_t p = 0; p < d; p++)
                s += (double)qj[p] * mk[p];
            m->qmu[k][j] = s;
        }
    }
    free(qd);
    free(f);
    return m;

fail_scratch:
    cx_err_set(err, CX_ENOMEM, 0, "%s: out of memory building %ux%u model",
               checkpoint, width, height);
fail_build:
    free(qd);
    free(f);
    cx_model_destroy(m);
    return NULL;
fail_alloc:
    cx_err_set(err, CX_ENOMEM, 0, "%s: out of memory", checkpoint);
    return NULL;
}

void cx_model_destroy(cx_model_t *m)
{
    if (!m)
        return;
    free(m->q);
    free(m->mu);
    free(m);
}

size_t cx_model_class_count(const cx_model_t *m) { return m->nclasses; }

const char *cx_model_class_name(const cx_model_t *m, size_t i)
{
    return i < m->nclasses ? m->names[i] : NULL;
}

int cx_model_class_index(const cx_model_t *m, const char *name)
{
    for (size_t k = 0; name && k < m->nclasses; k++)
        if (strcmp(m->names[k], name) == 0)
            return (int)k;
    return -1;
}

size_t cx_model_memory_bytes(const cx_model_t *m)
{
    return sizeof *m + (m->rank + m->nclasses) * m->npix * sizeof(float);
}

uint32_t cx_model_width(const cx_model_t *m) { return m->width; }
uint32_t cx_model_height(const cx_model_t *m) { return m->height; }
