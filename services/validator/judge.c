/* cx_gate_judge*: the profile gates applied to one sample (judge.h). */
#include "judge.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Records gate g as failed; the reason is kept from the first failure in
 * id order (gates are checked in that order). */
__attribute__((format(printf, 3, 4))) static void
cx__judge_fail(cx_gate_verdict_t *v, cx_gate_id_t g, const char *fmt, ...) {
    int first = v->fail == 0 || (v->fail & ((1u << g) - 1)) == 0;
    v->fail |= 1u << g;
    if (!first) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof v->reason, fmt, ap);
    va_end(ap);
}

static void cx__judge_artifacts(const cx_gate_limits_t *l, const cx_feat_t *f,
                                cx_gate_verdict_t *v) {
    if (f->nonfinite > 0)
        cx__judge_fail(v, CX_GATE_NONFINITE, "nonfinite %.4g of the pixels",
                       f->nonfinite);
    if (f->std < l->min_std)
        cx__judge_fail(v, CX_GATE_CONSTANT, "constant: std %.4g < min_std %.4g",
                       f->std, l->min_std);
    if (f->repeat > l->max_repeat)
        cx__judge_fail(v, CX_GATE_REPEAT,
                       "repeat %.4g > max_repeat %.4g (repeated patches)",
                       f->repeat, l->max_repeat);
    if (f->clip > l->max_clip)
        cx__judge_fail(v, CX_GATE_CLIP, "clip %.4g > max_clip %.4g", f->clip,
                       l->max_clip);
    if (f->range < l->min_range)
        cx__judge_fail(v, CX_GATE_RANGE, "range %.4g < min_range %.4g",
                       f->range, l->min_range);
    if (f->hf > l->max_hf)
        cx__judge_fail(v, CX_GATE_HF, "hf %.4g > max_hf %.4g", f->hf,
                       l->max_hf);
    if (f->hf_ratio < l->min_hf_ratio)
        cx__judge_fail(v, CX_GATE_HF_RATIO,
                       "hf_ratio %.4g < min_hf_ratio %.4g (over-smoothed)",
                       f->hf_ratio, l->min_hf_ratio);
    else if (f->hf_ratio > l->max_hf_ratio)
        cx__judge_fail(v, CX_GATE_HF_RATIO,
                       "hf_ratio %.4g > max_hf_ratio %.4g (residual noise)",
                       f->hf_ratio, l->max_hf_ratio);
    if (f->lap_var < l->min_lap_var)
        cx__judge_fail(v, CX_GATE_LAP_VAR, "lap_var %.4g < min_lap_var %.4g",
                       f->lap_var, l->min_lap_var);
    else if (f->lap_var > l->max_lap_var)
        cx__judge_fail(v, CX_GATE_LAP_VAR, "lap_var %.4g > max_lap_var %.4g",
                       f->lap_var, l->max_lap_var);
}

void cx_gate_judge(const cx_profile_t *p, size_t c, const cx_gate_limits_t *l,
                   const cx_feat_t *f, uint8_t *covered,
                   cx_gate_verdict_t *v) {
    cx_profile_scores_t s;
    memset(v, 0, sizeof *v);
    v->dcr = -1;
    v->dcr_row = -1;
    cx__judge_artifacts(l, f, v);
    cx_profile_score(p, c, f, covered, &s);
    v->mahalanobis = s.mahalanobis;
    v->class_llr = s.class_llr;
    v->class_best = s.class_best;
    v->structure_z = s.structure_z;
    v->structure_worst = s.structure_worst;
    v->in_manifold = s.in_manifold;
    memcpy(v->proj, s.proj, sizeof v->proj);
    if (!(s.structure_z <= l->structure_k))
        cx__judge_fail(v, CX_GATE_STRUCTURE,
                       "structure: %s %.4g is %.3g sigma outside the %s "
                       "envelope (structure_k %.3g)",
                       cx_feat_measures[s.structure_worst].name,
                       cx_feat_get(f, (size_t)s.structure_worst),
                       s.structure_z, cx_profile_class_name(p, c),
                       l->structure_k);
    if (!(s.mahalanobis <= l->max_mahalanobis))
        cx__judge_fail(v, CX_GATE_MAHALANOBIS,
                       "mahalanobis %.4g > max_mahalanobis %.4g (class %s)",
                       s.mahalanobis, l->max_mahalanobis,
                       cx_profile_class_name(p, c));
    if (s.class_llr > l->max_class_llr)
        cx__judge_fail(v, CX_GATE_CLASS,
                       "class: looks like %s, not %s (log-likelihood ratio "
                       "%.4g > max_class_llr %.4g)",
                       cx_profile_class_name(p, (size_t)s.class_best),
                       cx_profile_class_name(p, c), s.class_llr,
                       l->max_class_llr);
}

int cx_gate_judge_privacy(const cx_gate_limits_t *l, double dcr, int64_t row,
                          cx_gate_verdict_t *v) {
    v->dcr = dcr;
    v->dcr_row = row;
    if (row >= 0 && dcr < l->min_privacy_distance) {
        cx__judge_fail(v, CX_GATE_PRIVACY,
                       "privacy: distance %.4g to training record %lld < "
                       "min_privacy_distance %.4g (near-copy)",
                       dcr, (long long)row, l->min_privacy_distance);
        return 1;
    }
    return 0;
}
