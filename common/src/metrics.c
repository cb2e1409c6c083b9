/* Prometheus registry: families (name, help, type) holding series with at
 * most one label pair. One mutex guards the registry and every value. */
#include "cascade/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef enum { CX__COUNTER, CX__GAUGE } metric_type_t;

struct cx_metric {
    cx_metrics_t *reg;
    char *label_name, *label_value;
    double value;
    struct cx_metric *next;
};

typedef struct family {
    char *name, *help;
    metric_type_t type;
    cx_metric_t *series, **tail;
    struct family *next;
} family_t;

struct cx_metrics {
    pthread_mutex_t lock;
    family_t *families, **tail;
};

cx_metrics_t *cx_metrics_new(void) {
    cx_metrics_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->tail = &m->families;
    return m;
}

static void metric_free(cx_metric_t *c) {
    free(c->label_name);
    free(c->label_value);
    free(c);
}

void cx_metrics_destroy(cx_metrics_t *m) {
    if (!m) return;
    family_t *f = m->families;
    while (f) {
        family_t *fn = f->next;
        cx_metric_t *c = f->series;
        while (c) {
            cx_metric_t *cn = c->next;
            metric_free(c);
            c = cn;
        }
        free(f->name);
        free(f->help);
        free(f);
        f = fn;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static int str_eq(const char *a, const char *b) {
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

static char *dup_or_null(const char *s, int *fail) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *fail = 1;
    return d;
}

static cx_metric_t *get(cx_metrics_t *m, metric_type_t type,
                        const char *name, const char *help,
                        const char *label_name, const char *label_value) {
    cx_metric_t *c = NULL;
    family_t *f;
    int fail = 0;

    if (!m || !name) return NULL;
    if (!label_name || !label_value) label_name = label_value = NULL;
    pthread_mutex_lock(&m->lock);
    for (f = m->families; f; f = f->next)
        if (strcmp(f->name, name) == 0) break;
    if (f && f->type != type) goto out; /* same name, other type: refuse */
    if (!f) {
        f = calloc(1, sizeof *f);
        if (!f) goto out;
        f->name = strdup(name);
        f->help = strdup(help ? help : "");
        if (!f->name || !f->help) {
            free(f->name);
            free(f->help);
            free(f);
            goto out;
        }
        f->type = type;
        f->tail = &f->series;
        *m->tail = f;
        m->tail = &f->next;
    }
    for (c = f->series; c; c = c->next)
        if (str_eq(c->label_name, label_name) &&
            str_eq(c->label_value, label_value))
            goto out;
    c = calloc(1, sizeof *c);
    if (!c) goto out;
    c->reg = m;
    c->label_name = dup_or_null(label_name, &fail);
    c->label_value = dup_or_null(label_value, &fail);
    if (fail) {
        metric_free(c);
        c = NULL;
        goto out;
    }
    *f->tail = c;
    f->tail = &c->next;
out:
    pthread_mutex_unlock(&m->lock);
    return c;
}

cx_metric_t *cx_metrics_counter(cx_metrics_t *m, const char *name,
                                const char *help, const char *label_name,
                                const char *label_value) {
    return get(m, CX__COUNTER, name, help, label_name, label_value);
}

cx_metric_t *cx_metrics_gauge(cx_metrics_t *m, const char *name,
                              const char *help, const char *label_name,
                              const char *label_value) {
    return get(m, CX__GAUGE, name, help, label_name, label_value);
}

void cx_metric_add(cx_metric_t *c, double v) {
    if (!c) return;
    pthread_mutex_lock(&c->reg->lock);
    c->value += v;
    pthread_mutex_unlock(&c->reg->lock);
}

void cx_metric_set(cx_metric_t *g, double v) {
    if (!g) return;
    pthread_mutex_lock(&g->reg->lock);
    g->value = v;
    pthread_mutex_unlock(&g->reg->lock);
}

double cx_metric_value(const cx_metric_t *c) {
    if (!c) return 0;
    pthread_mutex_lock(&c->reg->lock);
    double v = c->value;
    pthread_mutex_unlock(&c->reg->lock);
    return v;
}

/* HELP text escapes \ and newline; label values also escape ". */
static int put_escaped(cx_buf_t *out, const char *s, int quote) {
    for (; *s; s++) {
        int rc;
        if (*s == '\\') rc = cx_buf_append(out, "\\\\", 2);
        else if (*s == '\n') rc = cx_buf_append(out, "\\n", 2);
        else if (quote && *s == '"') rc = cx_buf_append(out, "\\\"", 2);
        else rc = cx_buf_append(out, s, 1);
        if (rc < 0) return -1;
    }
    return 0;
}

static int put_value(cx_buf_t *out, double v) {
    if (isnan(v)) return cx_buf_append(out, "NaN\n", 4);
    if (isinf(v)) return cx_buf_printf(out, "%sInf\n", v > 0 ? "+" : "-");
    return cx_buf_printf(out, "%.17g\n", v);
}

int cx_metrics_render(cx_metrics_t *m, cx_buf_t *out) {
    int rc = 0;
    pthread_mutex_lock(&m->lock);
    for (family_t *f = m->families; f && rc == 0; f = f->next) {
        rc |= cx_buf_printf(out, "# HELP %s ", f->name);
        rc |= put_escaped(out, f->help, 0);
        rc |= cx_buf_printf(out, "\n# TYPE %s %s\n", f->name,
                            f->type == CX__COUNTER ? "counter" : "gauge");
        for (cx_metric_t *c = f->series; c && rc == 0; c = c->next) {
            rc |= cx_buf_printf(out, "%s", f->name);
            if (c->label_name) {
                rc |= cx_buf_printf(out, "{%s=\"", c->label_name);
                rc |= put_escaped(out, c->label_value, 1);
                rc |= cx_buf_append(out, "\"}", 2);
            }
            rc |= cx_buf_append(out, " ", 1);
            rc |= put_value(out, c->value);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return rc ? -1 : 0;
}
