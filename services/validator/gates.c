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
