/* The built-in reference checkpoint "ref-cxr-v0", built at any resolution:
 * one Gaussian component per class.
 *
 * Each class is a Gaussian around a procedural chest-radiograph phantom (see
 * phantom.c). The covariance is the linearisation of random changes of the
 * phantom's anatomical parameters (central finite differences, one standard
 * deviation wide) plus exposure/contrast/tilt/heel fields, plus a small
 * isotropic grain. The 14 modes span one space Q shared by the classes;
 * class k's covariance inside it is diagonalised, so its component basis is
 * U_k = V_k^T Q with the eigenvalues as variances (zero for modes the class
 * does not use). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/phantom.h"
#include "model_impl.h"

#define NCLASS CX_PHANTOM_NCLASS
#define NMODE 14
#define GRAIN_SD 0.01
#define MAX_BUILD_THREADS 16

int cx__refmodel_has_class(const char *class_name)
{
    for (int k = 0; class_name && k < NCLASS; k++)
        if (strcmp(cx_phantom_class_name(k), class_name) == 0)
            return 1;
    return 0;
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
static double fd(const cx_phantom_t *base, size_t off, double sd, double u,
                 double v)
{
    cx_phantom_t a = *base, b = *base;
    *(double *)((char *)&a + off) += sd;
    *(double *)((char *)&b + off) -= sd;
    return 0.5 * (cx_phantom_eval(&a, u, v) - cx_phantom_eval(&b, u, v));
}

static void eval_modes(const cx_phantom_t *cp, double u, double v, double *f)
{
    const cx_phantom_t *n = &cp[0];
    double body = cx_phantom_body(n, u, v);
    double img = cx_phantom_eval(n, u, v);
    f[0] = 0.035 * body;                  /* exposure */
    f[1] = 0.10 * (img - 0.10);           /* contrast */
    f[2] = fd(n, offsetof(cx_phantom_t, lung_density), 0.03, u, v);
    f[3] = fd(n, offsetof(cx_phantom_t, lung_scale), 0.04, u, v);
    f[4] = fd(n, offsetof(cx_phantom_t, lung_dy), 0.015, u, v);
    f[5] = fd(n, offsetof(cx_phantom_t, heart_scale), 0.06, u, v);
    f[6] = fd(n, offsetof(cx_phantom_t, heart_dx), 0.012, u, v);
    f[7] = fd(n, offsetof(cx_phantom_t, body_rx), 0.012, u, v);
    f[8] = 0.03 * (2.0 * u - 1.0) * body; /* tilt */
    f[9] = 0.03 * (2.0 * v - 1.0) * body; /* heel effect */
    f[10] = fd(&cp[1], offsetof(cx_phantom_t, fluid_level), 0.035, u, v);
    f[11] = fd(&cp[2], offsetof(cx_phantom_t, nodule_int), 0.07, u, v);
    f[12] = fd(&cp[2], offsetof(cx_phantom_t, nodule_r), 0.005, u, v);
    f[13] = fd(&cp[3], offsetof(cx_phantom_t, heart_scale), 0.08, u, v);
}

/* Orthonormalises the modes (modified Gram-Schmidt, twice) in place and
 * returns the coefficients r (NMODE x NMODE, f_i = sum_j r[j][i] q_j). */
static int orthonormalise(double *q, size_t d, double *r)
{
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

/* Class k's component: eigen-decomposition of its mode covariance in Q's
 * coordinates, basis rows V^T Q written as floats. */
static void class_component(cx__comp_t *c, const double *q, size_t d,
                            const double *r, int k)
{
    double g[NMODE * NMODE], lam[NMODE], v[NMODE * NMODE];
    for (size_t a = 0; a < NMODE; a++)
        for (size_t b = 0; b < NMODE; b++) {
            double s = 0.0;
            for (int i = 0; i < NMODE; i++)
                if (mode_in_class(i, k))
                    s += r[a * NMODE + i] * r[b * NMODE + i];
            g[a * NMODE + b] = s;
        }
    cx__sym_eigen(NMODE, g, lam, v);
    for (size_t i = 0; i < NMODE; i++) {
        float *row = c->basis + i * d;
        for (size_t p = 0; p < d; p++) {
            double s = 0.0;
            for (size_t j = 0; j < NMODE; j++)
                s += v[i * NMODE + j] * q[j * d + p];
            row[p] = (float)s;
        }
        c->var[i] = (float)(lam[i] > 0.0 ? lam[i] : 0.0);
    }
    c->s2 = GRAIN_SD * GRAIN_SD;
}

/* The modes and class means of rows [y0, y1): rows are independent, so
 * the build runs on several threads with the same result. */
typedef struct rows_job {
    cx_model_t *m;
    double *q;
    const cx_phantom_t *cp;
    uint32_t y0, y1;
    pthread_t tid;
} rows_job_t;

static void *eval_rows(void *arg)
{
    rows_job_t *j = arg;
    cx_model_t *m = j->m;
    size_t d = m->npix;
    for (uint32_t y = j->y0; y < j->y1; y++)
        for (uint32_t x = 0; x < m->width; x++) {
            size_t p = (size_t)y * m->width + x;
            double u = (x + 0.5) / m->width, v = (y + 0.5) / m->height;
            double modes[NMODE];
            eval_modes(j->cp, u, v, modes);
            for (int i = 0; i < NMODE; i++)
                j->q[i * d + p] = modes[i];
            for (int k = 0; k < NCLASS; k++)
                m->comp[k].mean[p] = (float)cx_phantom_eval(&j->cp[k], u, v);
        }
    return NULL;
}

static void eval_all(cx_model_t *m, double *q, const cx_phantom_t *cp)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nt = ncpu > 1 ? (size_t)ncpu : 1;
    nt = nt < MAX_BUILD_THREADS ? nt : MAX_BUILD_THREADS;
    nt = nt < m->height ? nt : m->height;
    rows_job_t jobs[MAX_BUILD_THREADS];
    size_t started = 1;
    for (size_t i = 0; i < nt; i++)
        jobs[i] = (rows_job_t){.m = m, .q = q, .cp = cp,
                               .y0 = (uint32_t)(m->height * i / nt),
                               .y1 = (uint32_t)(m->height * (i + 1) / nt)};
    for (; started < nt; started++)
        if (pthread_create(&jobs[started].tid, NULL, eval_rows,
                           &jobs[started]) != 0)
            break;
    for (size_t i = started; i < nt; i++) /* threads refused: do it here */
        eval_rows(&jobs[i]);
    eval_rows(&jobs[0]);
    for (size_t i = 1; i < started; i++)
        pthread_join(jobs[i].tid, NULL);
}

cx_model_t *cx__refmodel_build(uint32_t width, uint32_t height,
                               cx_err_t *err)
{
    uint32_t cls[NCLASS], rank[NCLASS];
    for (int k = 0; k < NCLASS; k++) {
        cls[k] = (uint32_t)k;
        rank[k] = NMODE;
    }
    cx_model_t *m = cx__model_alloc(CX__REF_V0, width, height, NCLASS, NCLASS,
                                    cls, rank, err);
    if (!m)
        return NULL;
    m->local_ok = 0; /* one shared basis: every prefix is 15..18 rows */
    size_t d = m->npix;
    double *q = malloc(NMODE * d * sizeof *q);
    if (!q) {
        cx_err_set(err, CX_ENOMEM, 1, "%s: out of memory building %ux%u",
                   CX__REF_V0, width, height);
        goto fail;
    }
    cx_phantom_t cp[NCLASS];
    for (int k = 0; k < NCLASS; k++) {
        cx_phantom_class(k, &cp[k]);
        snprintf(m->names[k], CX__CLASS_NAME_MAX, "%s",
                 cx_phantom_class_name(k));
    }
    eval_all(m, q, cp);
    double r[NMODE * NMODE];
    if (orthonormalise(q, d, r) != 0) {
        cx_err_set(err, CX_EMODEL, 0, "%s: degenerate basis at %ux%u",
                   CX__REF_V0, width, height);
        goto fail;
    }
    for (int k = 0; k < NCLASS; k++)
        class_component(&m->comp[k], q, d, r, k);
    free(q);
    q = NULL;
    if (cx__model_finish(m, err) != 0)
        goto fail;
    return m;
fail:
    free(q);
    cx_model_destroy(m);
    return NULL;
}
