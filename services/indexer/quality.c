/* cx_index_*quality*: gate figures into Progress (quality.h). */
#include "quality.h"

#include <stdlib.h>
#include <string.h>

static Cascade__V1__ClassProgress *cx__class(cx_progress_t *p,
                                             const char *name) {
    for (size_t c = 0; c < p->n_classes; c++)
        if (strcmp(p->classes[c]->name, name) == 0) return p->classes[c];
    return NULL;
}

void cx_index_quality_apply(cx_progress_t *p, const char *const *quality,
                            size_t nquality, const char *checked,
                            const char *near, const char *budget) {
    for (size_t i = 0; i + 1 < nquality; i += 2) {
        const char *f = quality[i], *v = quality[i + 1];
        const char *colon = strchr(f, ':');
        if (!colon) {
            double x = strtod(v, NULL);
            if (!strcmp(f, "batch_fd")) p->batch_frechet_distance = x;
            else if (!strcmp(f, "batch_precision")) p->batch_precision = x;
            else if (!strcmp(f, "batch_recall")) p->batch_recall = x;
            continue;
        }
        Cascade__V1__ClassProgress *c = cx__class(p, colon + 1);
        if (!c) continue;
        size_t k = (size_t)(colon - f);
        if (k == 2 && !strncmp(f, "fd", 2)) c->frechet_distance = strtod(v, NULL);
        else if (k == 9 && !strncmp(f, "precision", 9)) c->precision = strtod(v, NULL);
        else if (k == 6 && !strncmp(f, "recall", 6)) c->recall = strtod(v, NULL);
        else if (k == 1 && f[0] == 'n') c->quality_samples = strtoull(v, NULL, 10);
    }
    double n = 0, prec = 0, rec = 0;
    p->frechet_distance = 0;
    for (size_t c = 0; c < p->n_classes; c++) {
        const Cascade__V1__ClassProgress *k = p->classes[c];
        double w = (double)k->quality_samples;
        n += w;
        prec += w * k->precision;
        rec += w * k->recall;
        if (k->frechet_distance > p->frechet_distance)
            p->frechet_distance = k->frechet_distance;
    }
    p->quality_samples = (uint64_t)n;
    p->precision = n > 0 ? prec / n : 0;
    p->recall = n > 0 ? rec / n : 0;
    if (checked) p->privacy_checked = strtoull(checked, NULL, 10);
    if (near) p->near_copies = strtoull(near, NULL, 10);
    if (budget) p->privacy_budget = strtod(budget, NULL);
}

uint8_t *cx_index_with_quality(cx_service_t *svc, const char *job_id,
                               uint8_t *buf, size_t *len, cx_err_t *err) {
    redisReply *q = cx_redis_cmd(svc->redis, err, "HGETALL cx:job:%s:quality",
                                 job_id);
    redisReply *pv = q ? cx_redis_cmd(svc->redis, err,
                                      "HMGET cx:job:%s:privacy checked near "
                                      "budget",
                                      job_id)
                       : NULL;
    uint8_t *out = NULL;
    const char **fv = NULL;
    if (!q || !pv) {
        free(buf);
        goto done;
    }
    int has_priv = pv->type == REDIS_REPLY_ARRAY && pv->elements == 3 &&
                   pv->element[0]->type == REDIS_REPLY_STRING;
    size_t nq = q->type == REDIS_REPLY_ARRAY ? q->elements : 0;
    cx_progress_t *p = nq || has_priv ? cx_decode_progress(buf, *len, NULL)
                                      : NULL;
    if (!p) { /* nothing to add (or nothing we can read): as it was */
        out = buf;
        goto done;
    }
    fv = calloc(nq ? nq : 1, sizeof *fv);
    for (size_t i = 0; fv && i < nq; i++)
        fv[i] = q->element[i]->type == REDIS_REPLY_STRING ? q->element[i]->str
                                                          : "";
    const char *s[3] = {NULL, NULL, NULL};
    for (int i = 0; has_priv && i < 3; i++)
        if (pv->element[i]->type == REDIS_REPLY_STRING) s[i] = pv->element[i]->str;
    cx_index_quality_apply(p, fv, fv ? nq : 0, s[0], s[1], s[2]);
    out = cx_pack(&p->base, len, err);
    free(buf);
    cascade__v1__progress__free_unpacked(p, NULL);
done:
    free(fv);
    if (q) freeReplyObject(q);
    if (pv) freeReplyObject(pv);
    return out;
}
