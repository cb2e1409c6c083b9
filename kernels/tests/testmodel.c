/* Test helpers (testmodel.h). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testmodel.h"

static void orthonormal_rows(double *q, size_t r, size_t d)
{
    for (size_t i = 0; i < r; i++) {
        double *qi = q + i * d;
        for (int pass = 0; pass < 2; pass++)
            for (size_t j = 0; j < i; j++) {
                double s = 0;
                for (size_t p = 0; p < d; p++)
                    s += q[j * d + p] * qi[p];
                for (size_t p = 0; p < d; p++)
                    qi[p] -= s * q[j * d + p];
            }
        double n = 0;
        for (size_t p = 0; p < d; p++)
            n += qi[p] * qi[p];
        n = sqrt(n);
        for (size_t p = 0; p < d; p++)
            qi[p] /= n;
    }
}

cx_model_t *tm_model(const tm_spec_t *s)
{
    size_t nk = s->nclasses * s->ncomp, d = (size_t)s->width * s->height;
    uint32_t *cls = malloc(nk * sizeof *cls), *rank = malloc(nk * sizeof *rank);
    for (size_t k = 0; k < nk; k++) {
        cls[k] = (uint32_t)(k / s->ncomp);
        rank[k] = s->rank;
    }
    cx_err_t err;
    cx_model_t *m = cx__model_alloc("test-mix", s->width, s->height,
                                    s->nclasses, nk, cls, rank, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    float *z = malloc(d * sizeof *z);
    double *q = malloc((s->rank ? s->rank : 1) * d * sizeof *q);
    for (size_t c = 0; c < s->nclasses; c++) {
        snprintf(m->names[c], CX__CLASS_NAME_MAX, "c%zu", c);
        m->prior[c] = s->priors ? s->priors[c] : 1.0 / s->nclasses;
    }
    for (size_t k = 0; k < nk; k++) {
        cx__comp_t *c = &m->comp[k];
        c->weight = s->weights ? s->weights[k] : 1.0 / s->ncomp;
        c->s2 = s->s2;
        cx_normals(s->seed, (uint32_t)k, 1, 0, d, z);
        for (size_t p = 0; p < d; p++)
            c->mean[p] = (float)(0.45 + s->sep * z[p]);
        for (uint32_t i = 0; i < s->rank; i++) {
            cx_normals(s->seed, (uint32_t)k, 2 + i, 0, d, z);
            for (size_t p = 0; p < d; p++)
                q[i * d + p] = z[p];
        }
        orthonormal_rows(q, s->rank, d);
        for (uint32_t i = 0; i < s->rank; i++) {
            for (size_t p = 0; p < d; p++)
                c->basis[i * d + p] = (float)q[i * d + p];
            c->var[i] = (float)(s->var0 / (1.0 + i));
        }
    }
    ck_assert_msg(cx__model_finish(m, &err) == 0, "%s", err.msg);
    free(z);
    free(q);
    free(cls);
    free(rank);
    return m;
}

double tm_comp_logpdf(const cx_model_t *m, const cx_component_view_t *v,
                      const double *x, double *coords)
{
    size_t d = m->npix;
    double dd = 0, pp = 0, quad = 0, logdet = 0;
    for (size_t p = 0; p < d; p++) {
        double t = x[p] - v->mean[p];
        dd += t * t;
    }
    for (uint32_t i = 0; i < v->rank; i++) {
        double s = 0;
        for (size_t p = 0; p < d; p++)
            s += (x[p] - v->mean[p]) * v->basis[i * d + p];
        if (coords)
            coords[i] = s;
        double e = v->var[i] + v->resid_var;
        pp += s * s;
        quad += s * s / e;
        logdet += log(e);
    }
    quad += (dd - pp) / v->resid_var;
    logdet += (double)(d - v->rank) * log(v->resid_var);
    return -0.5 * (quad + logdet);
}

void tm_direction_gain(const cx_sample_params_t *p, double e, tm_gain_t *g)
{
    uint32_t n = p->steps;
    if (p->sampler == CX_SAMPLER_DDIM) {
        double ab = cx__ddim_alphabar(cx__ddim_timestep(0, n));
        g->a0 = sqrt(ab);
        g->b0 = sqrt(1 - ab);
        g->gain = 1;
        g->var = 1 - ab;
        for (uint32_t i = 0; i < n; i++) {
            double abn = i + 1 < n ? cx__ddim_alphabar(
                                         cx__ddim_timestep(i + 1, n))
                                   : 1.0;
            double a = sqrt(ab), b = sqrt(1 - ab), an = sqrt(abn);
            double sig =
                p->eta * sqrt((1 - abn) / (1 - ab) * (1 - ab / abn));
            double c1 = 1 - abn - sig * sig;
            c1 = c1 > 0 ? sqrt(c1) : 0;
            double gg = a * e / (ab * e + 1 - ab);
            double k = (an - c1 * a / b) * gg + c1 / b;
            g->gain *= k;
            g->var = k * k * g->var + sig * sig;
            ab = abn;
        }
        return;
    }
    double s = cx__karras_sigma(0, n);
    g->a0 = 1;
    g->b0 = s;
    g->gain = 1;
    for (uint32_t i = 0; i < n; i++) {
        s = cx__karras_sigma(i, n);
        double sn = cx__karras_sigma(i + 1, n), h = sn - s;
        double gg = e / (e + s * s);
        double k1 = 1 + h / s * (1 - gg), k = k1;
        if (p->sampler == CX_SAMPLER_HEUN && sn > 0) {
            double g2 = e / (e + sn * sn);
            k = 1 + h / 2 * ((1 - gg) / s + k1 * (1 - g2) / sn);
        }
        g->gain *= k;
    }
    g->var = g->gain * g->gain * g->b0 * g->b0;
}

/* ---- reference sampler ------------------------------------------------ */

typedef struct ref {
    const cx_model_t *m;
    size_t cls;
    double w;
    double *ll, *e, *p;
} ref_t;

/* E[x0 | x] of component v into e; returns its log marginal density. */
static double ref_comp(const ref_t *R, const cx_component_view_t *v,
                       const double *x, double a, double b, double *e)
{
    size_t d = R->m->npix;
    double a2 = a * a, b2 = b * b, sig0 = a2 * v->resid_var + b2;
    double g0 = a * v->resid_var / sig0, dd = 0, pp = 0, quad = 0;
    double logdet = (double)(d - v->rank) * log(sig0);
    for (size_t q = 0; q < d; q++) {
        double t = x[q] - a * v->mean[q];
        dd += t * t;
        e[q] = v->mean[q] + g0 * t;
    }
    for (uint32_t i = 0; i < v->rank; i++) {
        const float *u = v->basis + (size_t)i * d;
        double s = 0;
        for (size_t q = 0; q < d; q++)
            s += u[q] * (x[q] - a * v->mean[q]);
        double ei = v->var[i] + v->resid_var, ev = a2 * ei + b2;
        double h = a * ei / ev - g0;
        for (size_t q = 0; q < d; q++)
            e[q] += h * s * u[q];
        pp += s * s;
        quad += s * s / ev;
        logdet += log(ev);
    }
    return -0.5 * (quad + (dd - pp) / sig0 + logdet);
}

static void softmax_add(double *beta, const double *l, size_t n, double sc)
{
    double mx = -INFINITY, z = 0;
    for (size_t k = 0; k < n; k++)
        mx = l[k] > mx ? l[k] : mx;
    for (size_t k = 0; k < n; k++)
        z += exp(l[k] - mx);
    for (size_t k = 0; k < n; k++)
        beta[k] += sc * exp(l[k] - mx) / z;
}

static void ref_denoise(const ref_t *R, const double *x, double a, double b,
                        double *out)
{
    const cx_model_t *m = R->m;
    size_t d = m->npix, nk = m->ncomp;
    double *ek = R->e, *lu = R->ll, *lc = R->ll + nk, *beta = R->ll + 2 * nk;
    size_t c0 = m->first[R->cls], nc = m->first[R->cls + 1] - c0;
    memset(out, 0, d * sizeof *out);
    for (size_t k = 0; k < nk; k++) {
        const cx_component_view_t *v = &m->views[k];
        double l = ref_comp(R, v, x, a, b, ek + k * d);
        lu[k] = log(m->prior[m->comp[k].cls] * v->weight) + l;
        lc[k] = log(v->weight) + l;
        beta[k] = 0;
    }
    if (R->w != 1.0)
        softmax_add(beta, lu, nk, 1.0 - R->w);
    if (R->w != 0.0)
        softmax_add(beta + c0, lc + c0, nc, R->w);
    for (size_t k = 0; k < nk; k++)
        for (size_t q = 0; q < d; q++)
            out[q] += beta[k] * ek[k * d + q];
}

static void ref_init(const ref_t *R, uint64_t seed, uint32_t index,
                     double a, double b, double *x, float *z)
{
    const cx_model_t *m = R->m;
    size_t d = m->npix;
    cx_normals(seed, index, 0, 0, d, z);
    for (size_t q = 0; q < d; q++)
        x[q] = b * z[q];
    for (size_t k = 0; k < m->ncomp; k++) {
        const cx_component_view_t *v = &m->views[k];
        double wk = 0;
        if (R->w != 1.0)
            wk += (1.0 - R->w) * m->prior[m->comp[k].cls] * v->weight;
        if (R->w != 0.0 && m->comp[k].cls == R->cls)
            wk += R->w * v->weight;
        for (size_t q = 0; q < d; q++)
            x[q] += a * wk * v->mean[q];
    }
}

void tm_reference_sample(const cx_model_t *m, size_t cls,
                         const cx_sample_params_t *p, uint64_t seed,
                         uint32_t index, double *x)
{
    size_t d = m->npix, nk = m->ncomp;
    ref_t R = {.m = m, .cls = cls, .w = p->guidance_scale};
    R.ll = malloc(3 * nk * sizeof *R.ll);
    R.e = malloc(nk * d * sizeof *R.e);
    double *den = malloc(d * sizeof *den), *x1 = malloc(d * sizeof *x1);
    double *d1 = malloc(d * sizeof *d1);
    float *z = malloc(d * sizeof *z);
    uint32_t n = p->steps;
    if (p->sampler == CX_SAMPLER_DDIM) {
        double ab = cx__ddim_alphabar(cx__ddim_timestep(0, n));
        ref_init(&R, seed, index, sqrt(ab), sqrt(1 - ab), x, z);
        for (uint32_t i = 0; i < n; i++) {
            double abn = i + 1 < n ? cx__ddim_alphabar(
                                         cx__ddim_timestep(i + 1, n))
                                   : 1.0;
            double a = sqrt(ab), b = sqrt(1 - ab), an = sqrt(abn);
            double sig =
                p->eta * sqrt((1 - abn) / (1 - ab) * (1 - ab / abn));
            double c1 = 1 - abn - sig * sig;
            c1 = c1 > 0 ? sqrt(c1) : 0;
            ref_denoise(&R, x, a, b, den);
            if (sig != 0)
                cx_normals(seed, index, 1 + i, 0, d, z);
            for (size_t q = 0; q < d; q++)
                x[q] = (an - c1 * a / b) * den[q] + c1 / b * x[q] +
                       (sig != 0 ? sig * z[q] : 0.0);
            ab = abn;
        }
    } else {
        ref_init(&R, seed, index, 1.0, cx__karras_sigma(0, n), x, z);
        for (uint32_t i = 0; i < n; i++) {
            double s = cx__karras_sigma(i, n), sn = cx__karras_sigma(i + 1, n);
            double h = sn - s;
            ref_denoise(&R, x, 1.0, s, den);
            for (size_t q = 0; q < d; q++)
                x1[q] = x[q] + h * (x[q] - den[q]) / s;
            if (p->sampler != CX_SAMPLER_HEUN || sn == 0) {
                memcpy(x, x1, d * sizeof *x);
                continue;
            }
            memcpy(d1, den, d * sizeof *d1);
            ref_denoise(&R, x1, 1.0, sn, den);
            for (size_t q = 0; q < d; q++)
                x[q] += h / 2 * ((x[q] - d1[q]) / s + (x1[q] - den[q]) / sn);
        }
    }
    free(R.ll);
    free(R.e);
    free(den);
    free(x1);
    free(d1);
    free(z);
}
