/* The per-service HTTP endpoint: GET /healthz (200 while the process
 * serves), /readyz (200 once the service says it is ready, else 503) and
 * /metrics (Prometheus text exposition 0.0.4). One background thread. */
#ifndef CASCADE_HTTP_H
#define CASCADE_HTTP_H

#include "cascade/err.h"
#include "cascade/metrics.h"

typedef struct cx_http cx_http_t;

/* port 0 picks a free port; cx_http_port tells which. metrics is borrowed
 * and must outlive the endpoint. */
cx_http_t *cx_http_start(const char *bind_addr, int port, cx_metrics_t *m,
                         cx_err_t *err);
int cx_http_port(const cx_http_t *h);
void cx_http_set_ready(cx_http_t *h, int ready);
void cx_http_stop(cx_http_t *h); /* NULL is fine */

#endif
