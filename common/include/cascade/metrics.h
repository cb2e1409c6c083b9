/* Prometheus metrics registry: counters and gauges, optionally with one
 * label pair, thread-safe. Names follow cascade_<service>_<what>[_total]. */
#ifndef CASCADE_METRICS_H
#define CASCADE_METRICS_H

#include "cascade/util.h"

typedef struct cx_metrics cx_metrics_t;
typedef struct cx_metric cx_metric_t;

cx_metrics_t *cx_metrics_new(void);
void cx_metrics_destroy(cx_metrics_t *m);

/* Returns the existing metric when name and label match, so a call per
 * event is fine (but keep the handle on hot paths). label_name/label_value
 * may be NULL. Returns NULL only when out of memory. */
cx_metric_t *cx_metrics_counter(cx_metrics_t *m, const char *name,
                                const char *help, const char *label_name,
                                const char *label_value);
cx_metric_t *cx_metrics_gauge(cx_metrics_t *m, const char *name,
                              const char *help, const char *label_name,
                              const char *label_value);
void cx_metric_add(cx_metric_t *c, double v); /* NULL is a no-op */
void cx_metric_set(cx_metric_t *g, double v);
double cx_metric_value(const cx_metric_t *c);

/* Appends the text exposition to out. */
int cx_metrics_render(cx_metrics_t *m, cx_buf_t *out);

#endif
