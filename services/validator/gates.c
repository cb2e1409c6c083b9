#include "gates.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value at which the cumulative count first reaches `rank` (1-based). */
static uint32_t cx__gates_rank(const uint32_t *hist, uint32_t nbins,
                               uint64_t rank) {
    uint64_t cum = 0;
    for (uint32_t v = 0; v < nbins; v++) {
        cum += hist[v];
        if (cum >= rank) return v;
    }
    return nbins - 1;
}

int cx_gates_score(const uint16_t *px, uint32_t width, uint32_t height,
                   int bit_depth, cx_gate_scores_t *out, cx_err_t *err) {
    if (!px || width == 0 || height == 0)
        return cx_err_set(err, CX_EINVAL, 0, "empty image");
    if (bit_depth != 8 && bit_depth != 16)
        return cx_err_set(err, CX_EINVAL, 0, "bit depth %d is not 8 or 16",
                          bit_depth);
    const uint32_t fs = bit_depth == 16 ? 65535u : 255u;
    const uint64_t n = (uint64_t)width * height;
    uint32_t *hist = calloc((size_t)fs + 1, sizeof *hist);
    if (!hist) return cx_err_set(err, CX_ENOMEM, 0, "gate histogram");

    /* One pass: histogram, sums for the variance (in full-scale units so
     * 16-bit sums stay exact in double), clipped pixels. */
    double sum = 0, sum2 = 0;
    uint64_t clipped = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t v = px[i] > fs ? fs : px[i];
        hist[v]++;
        sum += v;
        sum2 += (double)v * v;
    }
    clipped = (uint64_t)hist[0] + (fs > 0 ? hist[fs] : 0);

    /* Nearest-rank percentiles. */
    uint64_t lo_rank = (uint64_t)(0.005 * (double)n) + 1;
    uint64_t hi_rank = (uint64_t)(0.995 * (double)n) + 1;
    if (hi_rank > n) hi_rank = n;
    uint32_t lo = cx__gates_rank(hist, fs + 1, lo_rank);
    uint32_t hi = cx__gates_rank(hist, fs + 1, hi_rank);
    free(hist);

    double mean = sum / (double)n;
    double var = sum2 / (double)n - mean * mean;
    double lap2 = 0;
    uint64_t nlap = 0;
    if (width >= 3 && height >= 3) {
        for (uint32_t y = 1; y + 1 < height; y++) {
            const uint16_t *r = px + (size_t)y * width;
            const uint16_t *up = r - width, *dn = r + width;
            double acc = 0;
            for (uint32_t x = 1; x + 1 < width; x++) {
                double l = 4.0 * r[x] - r[x - 1] - r[x + 1] - up[x] - dn[x];
                acc += l * l;
            }
            lap2 += acc;
        }
        nlap = (uint64_t)(width - 2) * (height - 2);
    }

    out->range = (double)(hi - lo) / (double)fs;
    out->clip = (double)clipped / (double)n;
    /* Relative tolerance: a constant image's variance is rounding noise. */
    if (nlap == 0 || var <= 1e-12 * (mean * mean + 1.0))
        out->hf = 0.0;
    else
        out->hf = (lap2 / (double)nlap) / var;
    return 0;
}

int cx_gates_judge(const cx_gate_scores_t *s, const cx_gate_thresholds_t *t,
                   char *reason, size_t cap) {
    if (s->range < t->min_range) {
        if (reason)
            snprintf(reason, cap, "range %.4g < min_range %.4g", s->range,
                     t->min_range);
        return 0;
    }
    if (s->clip > t->max_clip) {
        if (reason)
            snprintf(reason, cap, "clip %.4g > max_clip %.4g", s->clip,
                     t->max_clip);
        return 0;
    }
    if (s->hf > t->max_hf) {
        if (reason)
            snprintf(reason, cap, "hf %.4g > max_hf %.4g", s->hf, t->max_hf);
        return 0;
    }
    if (reason && cap) reason[0] = '\0';
    return 1;
}

void cx_gates_thresholds_for(const cx_gate_thresholds_t *defaults,
                             const Cascade__V1__ValidationCriteria *crit,
                             cx_gate_thresholds_t *out) {
    *out = *defaults;
    if (!crit) return;
    for (size_t i = 0; i < crit->n_thresholds; i++) {
        const Cascade__V1__Threshold *th = crit->thresholds[i];
        if (!th || !th->gate) continue;
        if (strcmp(th->gate, "min_range") == 0)
            out->min_range = th->value;
        else if (strcmp(th->gate, "max_clip") == 0)
            out->max_clip = th->value;
        else if (strcmp(th->gate, "max_hf") == 0)
            out->max_hf = th->value;
    }
}

/* ---- profile gates ----------------------------------------------------- */

static const struct {
    const char *name, *family;
} cx__gates[CX_GATE__COUNT] = {
    [CX_GATE_NONFINITE] = {"nonfinite", "artifact"},
    [CX_GATE_CONSTANT] = {"constant", "artifact"},
    [CX_GATE_CLIP] = {"clip", "artifact"},
    [CX_GATE_RANGE] = {"range", "artifact"},
    [CX_GATE_HF] = {"hf", "artifact"},
    [CX_GATE_HF_RATIO] = {"hf_ratio", "artifact"},
    [CX_GATE_LAP_VAR] = {"lap_var", "artifact"},
    [CX_GATE_REPEAT] = {"repeat", "artifact"},
    [CX_GATE_STRUCTURE] = {"structure", "structural"},
    [CX_GATE_MAHALANOBIS] = {"mahalanobis", "distributional"},
    [CX_GATE_CLASS] = {"class", "distributional"},
    [CX_GATE_PRIVACY] = {"privacy", "privacy"},
};

const char *cx_gate_name(cx_gate_id_t g) {
    return (unsigned)g < CX_GATE__COUNT ? cx__gates[g].name : "?";
}

const char *cx_gate_family(cx_gate_id_t g) {
    return (unsigned)g < CX_GATE__COUNT ? cx__gates[g].family : "?";
}

int cx_gate_by_name(const char *name) {
    for (int g = 0; name && g < CX_GATE__COUNT; g++)
        if (strcmp(cx__gates[g].name, name) == 0) return g;
    return -1;
}

#define L(n, lo, hi, help) {#n, offsetof(cx_gate_limits_t, n), lo, hi, help}
const cx_gate_limit_def_t cx_gate_limit_defs[] = {
    L(min_range, 0, 1, "minimum (p99.5 - p0.5) / full scale"),
    L(max_clip, 0, 1, "maximum fraction of pixels at 0 or full scale"),
    L(max_hf, 0, 1000, "maximum mean squared Laplacian / variance"),
    L(min_std, 0, 1, "minimum intensity std (constant images)"),
    L(min_hf_ratio, 0, 1, "minimum high-frequency energy ratio"),
    L(max_hf_ratio, 0, 1, "maximum high-frequency energy ratio"),
    L(min_lap_var, 0, 100, "minimum Laplacian variance (FS^2)"),
    L(max_lap_var, 0, 100, "maximum Laplacian variance (FS^2)"),
    L(max_repeat, -1, 1, "maximum off-origin autocorrelation peak"),
    L(structure_k, 0.5, 1000, "structural envelope half-width (sigmas)"),
    L(max_mahalanobis, 0, 1e9, "maximum Mahalanobis distance to the class"),
    L(max_class_llr, -1e6, 1e9,
      "maximum log-likelihood advantage of another class (nats)"),
    L(min_privacy_distance, 0, 1e9,
      "minimum distance to the closest training record"),
    L(privacy_budget, 0, 1, "tolerated fraction of near-copies in a job"),
    L(privacy_min_samples, 1, 1e9,
      "samples the budget is counted over at least"),
    L(max_frechet, 0, 1e12, "job-level Frechet distance alert (0: off)"),
};
#undef L
const size_t cx_gate_nlimits =
    sizeof cx_gate_limit_defs / sizeof cx_gate_limit_defs[0];

int cx_gate_limit_index(const char *name) {
    for (size_t i = 0; name && i < cx_gate_nlimits; i++)
        if (strcmp(cx_gate_limit_defs[i].name, name) == 0) return (int)i;
    return -1;
}

static int cx__gate_limit_in_range(size_t i, double v, cx_err_t *err) {
    const cx_gate_limit_def_t *d = &cx_gate_limit_defs[i];
    if (!(v >= d->lo && v <= d->hi)) /* NaN fails too */
        return cx_err_set(err, CX_EINVAL, 0,
                          "threshold %s = %g is outside [%g, %g] (%s)",
                          d->name, v, d->lo, d->hi, d->help);
    return 0;
}

int cx_gate_limit_set(cx_gate_limits_t *l, const char *name, double v,
                      cx_err_t *err) {
    int i = cx_gate_limit_index(name);
    if (i < 0)
        return cx_err_set(err, CX_EINVAL, 0,
                          "unknown threshold '%s' (see docs/GATES.md)",
                          name ? name : "");
    if (cx__gate_limit_in_range((size_t)i, v, err) < 0) return -1;
    *cx_gate_limit_ref(l, (size_t)i) = v;
    return 0;
}

/* min_X / max_X pairs that must be ordered. */
static const char *const cx__gate_pairs[][2] = {
    {"min_hf_ratio", "max_hf_ratio"}, {"min_lap_var", "max_lap_var"}};

int cx_gate_limits_check(const cx_gate_limits_t *l, cx_err_t *err) {
    for (size_t i = 0; i < cx_gate_nlimits; i++)
        if (cx__gate_limit_in_range(i, cx_gate_limit_get(l, i), err) < 0)
            return -1;
    for (size_t k = 0; k < sizeof cx__gate_pairs / sizeof cx__gate_pairs[0];
         k++) {
        int a = cx_gate_limit_index(cx__gate_pairs[k][0]);
        int b = cx_gate_limit_index(cx__gate_pairs[k][1]);
        double lo = cx_gate_limit_get(l, (size_t)a);
        double hi = cx_gate_limit_get(l, (size_t)b);
        if (lo > hi)
            return cx_err_set(err, CX_EINVAL, 0,
                              "threshold %s = %g is above %s = %g",
                              cx__gate_pairs[k][0], lo, cx__gate_pairs[k][1],
                              hi);
    }
    return 0;
}

int cx_gate_limits_apply(cx_gate_limits_t *l,
                         const Cascade__V1__ValidationCriteria *crit,
                         cx_err_t *err) {
    if (crit) {
        for (size_t i = 0; i < crit->n_thresholds; i++) {
            const Cascade__V1__Threshold *t = crit->thresholds[i];
            if (!t) continue;
            if (cx_gate_limit_set(l, t->gate, t->value, err) < 0) return -1;
        }
        if (crit->privacy_budget > 0 &&
            cx_gate_limit_set(l, "privacy_budget", crit->privacy_budget,
                              err) < 0)
            return -1;
        if (crit->max_frechet_distance > 0 &&
            cx_gate_limit_set(l, "max_frechet", crit->max_frechet_distance,
                              err) < 0)
            return -1;
    }
    return cx_gate_limits_check(l, err);
}

int cx_gate_criteria_check(const Cascade__V1__ValidationCriteria *crit,
                           cx_err_t *err) {
    if (!crit) return 0;
    cx_gate_limits_t l;
    int seen[64] = {0};
    memset(&l, 0, sizeof l);
    for (size_t i = 0; i < crit->n_thresholds; i++) {
        const Cascade__V1__Threshold *t = crit->thresholds[i];
        if (!t) continue;
        int k = cx_gate_limit_index(t->gate);
        if (k >= 0 && seen[k])
            return cx_err_set(err, CX_EINVAL, 0,
                              "validation.thresholds: %s given twice",
                              t->gate);
        if (cx_gate_limit_set(&l, t->gate, t->value, err) < 0)
            return cx_err_wrap(err, "validation.thresholds");
        seen[k] = 1;
    }
    for (size_t k = 0; k < sizeof cx__gate_pairs / sizeof cx__gate_pairs[0];
         k++) {
        int a = cx_gate_limit_index(cx__gate_pairs[k][0]);
        int b = cx_gate_limit_index(cx__gate_pairs[k][1]);
        if (seen[a] && seen[b] &&
            cx_gate_limit_get(&l, (size_t)a) > cx_gate_limit_get(&l, (size_t)b))
            return cx_err_set(err, CX_EINVAL, 0,
                              "validation.thresholds: %s %g is above %s %g",
                              cx__gate_pairs[k][0],
                              cx_gate_limit_get(&l, (size_t)a),
                              cx__gate_pairs[k][1],
                              cx_gate_limit_get(&l, (size_t)b));
    }
    if (!(crit->privacy_budget >= 0 && crit->privacy_budget <= 1))
        return cx_err_set(err, CX_EINVAL, 0,
                          "validation.privacy_budget %g is outside [0, 1]",
                          crit->privacy_budget);
    if (!(crit->max_frechet_distance >= 0 &&
          crit->max_frechet_distance <= 1e12))
        return cx_err_set(err, CX_EINVAL, 0,
                          "validation.max_frechet_distance %g is outside "
                          "[0, 1e12]",
                          crit->max_frechet_distance);
    return 0;
}
