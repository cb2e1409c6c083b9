/* cx_gate_judge: a sample's pass/fail under a gate profile, every family,
 * with the scores and the reason (pure computation). */
#ifndef CX_VALIDATOR_JUDGE_H
#define CX_VALIDATOR_JUDGE_H

#include <stdint.h>

#include "profile.h"

typedef struct cx_gate_verdict {
    uint32_t fail;      /* bit (1u << cx_gate_id_t) per failed gate */
    char reason[192];   /* the first failed gate in id order: value, bound */
    double mahalanobis; /* to the claimed class */
    double class_llr;   /* best other class's log-likelihood advantage */
    int class_best;     /* that class */
    double structure_z; /* worst envelope deviation, robust sigmas */
    int structure_worst;/* its measure (index into cx_feat_measures) */
    int in_manifold;    /* inside the class's k-NN manifold (precision) */
    double dcr;         /* distance to the closest training record; -1
                           until cx_gate_judge_privacy */
    int64_t dcr_row;    /* that record */
    double proj[CX_PROFILE_FD_DIM];
} cx_gate_verdict_t;

/* Every gate but privacy, for f claimed to be of class c of p under the
 * job's limits l. covered: see cx_profile_score (may be NULL). */
void cx_gate_judge(const cx_profile_t *p, size_t c, const cx_gate_limits_t *l,
                   const cx_feat_t *f, uint8_t *covered,
                   cx_gate_verdict_t *v);

/* Adds the privacy gate once the exact search gave the distance to the
 * closest training record (row: its index). Returns 1 for a near-copy. */
int cx_gate_judge_privacy(const cx_gate_limits_t *l, double dcr, int64_t row,
                          cx_gate_verdict_t *v);

static inline int cx_gate_pass(const cx_gate_verdict_t *v) {
    return v->fail == 0;
}

#endif
