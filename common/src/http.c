/* The service's HTTP endpoint: one thread polling the listening socket, a
 * wake-up pipe and up to CX__HTTP_MAX_CONNS connections. Every response
 * closes its connection, so there is no keep-alive state to track. */
#define _GNU_SOURCE /* accept4, pipe2 */
#include "cascade/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cascade/util.h"

#define CX__HTTP_MAX_CONNS 32
#define CX__HTTP_MAX_REQUEST 8192
#define CX__HTTP_TIMEOUT_MS 5000.0

typedef struct conn {
    int fd;
    double deadline;
    char in[CX__HTTP_MAX_REQUEST];
    size_t inlen;
    cx_buf_t out;
    size_t outoff;
    int responding;
    int draining; /* reply sent; reading the rest until the client closes */
} conn_t;

struct cx_http {
    int listen_fd;
    int wake[2];
    int port;
    atomic_int ready;
    cx_metrics_t *metrics;
    pthread_t thread;
    conn_t conns[CX__HTTP_MAX_CONNS];
};

static void conn_close(conn_t *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    cx_buf_free(&c->out);
    c->inlen = c->outoff = 0;
    c->responding = c->draining = 0;
}

static void respond(conn_t *c, int status, const char *reason,
                    const char *ctype, const void *body, size_t len,
                    const char *extra) {
    cx_buf_free(&c->out);
    c->outoff = 0;
    c->responding = 1;
    if (cx_buf_printf(&c->out,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
                      status, reason, ctype, len, extra ? extra : "") < 0 ||
        cx_buf_append(&c->out, body, len) < 0)
        conn_close(c); /* out of memory: dropping the connection is all */
}

static void respond_text(conn_t *c, int status, const char *reason,
                         const char *body, const char *extra) {
    respond(c, status, reason, "text/plain; charset=utf-8", body,
            strlen(body), extra);
}

/* Decides the response once the request head is complete (or too big). */
static void handle(cx_http_t *h, conn_t *c) {
    char method[16], target[1024];
    char *eol = memchr(c->in, '\n', c->inlen);
    if (!eol) {
        respond_text(c, 431, "Request Header Fields Too Large",
                     "request too large\n", NULL);
        return;
    }
    *eol = '\0';
    if (sscanf(c->in, "%15s %1023s HTTP/%*d.%*d", method, target) != 2) {
        respond_text(c, 400, "Bad Request", "bad request\n", NULL);
        return;
    }
    if (strcmp(method, "GET") != 0) {
        respond_text(c, 405, "Method Not Allowed", "method not allowed\n",
                     "Allow: GET\r\n");
        return;
    }
    target[strcspn(target, "?#")] = '\0';
    if (strcmp(target, "/healthz") == 0) {
        respond_text(c, 200, "OK", "ok\n", NULL);
    } else if (strcmp(target, "/readyz") == 0) {
        if (atomic_load(&h->ready))
            respond_text(c, 200, "OK", "ready\n", NULL);
        else
            respond_text(c, 503, "Service Unavailable", "not ready\n", NULL);
    } else if (strcmp(target, "/metrics") == 0) {
        cx_buf_t body = {0};
        if (h->metrics && cx_metrics_render(h->metrics, &body) < 0) {
            cx_buf_free(&body);
            respond_text(c, 500, "Internal Server Error", "out of memory\n",
                         NULL);
            return;
        }
        respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                body.data ? body.data : (const uint8_t *)"", body.len, NULL);
        cx_buf_free(&body);
    } else {
        respond_text(c, 404, "Not Found", "not found\n", NULL);
    }
}

static int head_complete(const conn_t *c) {
    for (size_t i = 0; i + 1 < c->inlen; i++) {
        if (c->in[i] == '\n' && c->in[i + 1] == '\n') return 1;
        if (i + 3 < c->inlen && memcmp(c->in + i, "\r\n\r\n", 4) == 0)
            return 1;
    }
    return 0;
}

static void on_readable(cx_http_t *h, conn_t *c) {
    ssize_t n = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    c->inlen += (size_t)n;
    if (head_complete(c)) {
        handle(h, c);
    } else if (c->inlen == sizeof c->in) {
        respond_text(c, 431, "Request Header Fields Too Large",
                     "request too large\n", NULL);
    }
}

static void on_writable(conn_t *c) {
    ssize_t n = send(c->fd, c->out.data + c->outoff, c->out.len - c->outoff,
                     MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->outoff += (size_t)n;
    if (c->outoff == c->out.len) {
        /* Every response closes its connection. Closing with unread
         * request bytes would send RST, which can destroy the reply before
         * the client reads it, so half-close and drain for a moment. */
        shutdown(c->fd, SHUT_WR);
        c->responding = 0;
        c->draining = 1;
        c->deadline = cx_mono_ms() + 1000;
    }
}

static void on_drain(conn_t *c) {
    char scratch[4096];
    ssize_t n = recv(c->fd, scratch, sizeof scratch, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        conn_close(c);
}

static void accept_all(cx_http_t *h) {
    for (;;) {
        int fd = accept4(h->listen_fd, NULL, NULL,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        conn_t *slot = NULL;
        for (int i = 0; i < CX__HTTP_MAX_CONNS && !slot; i++)
            if (h->conns[i].fd < 0) slot = &h->conns[i];
        if (!slot) {
            close(fd); /* overloaded: refuse rather than queue */
            continue;
        }
        slot->fd = fd;
        slot->inlen = slot->outoff = 0;
        slot->responding = slot->draining = 0;
        slot->deadline = cx_mono_ms() + CX__HTTP_TIMEOUT_MS;
    }
}

static void *serve(void *arg) {
    cx_http_t *h = arg;
    struct pollfd pfd[CX__HTTP_MAX_CONNS + 2];
    int idx[CX__HTTP_MAX_CONNS + 2];

    for (;;) {
        nfds_t n = 0;
        pfd[n++] = (struct pollfd){.fd = h->wake[0], .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = h->listen_fd, .events = POLLIN};
        double now = cx_mono_ms();
        for (int i = 0; i < CX__HTTP_MAX_CONNS; i++) {
            conn_t *c = &h->conns[i];
            if (c->fd < 0) continue;
            if (now > c->deadline) {
                conn_close(c);
                continue;
            }
            idx[n] = i;
            pfd[n++] = (struct pollfd){
                .fd = c->fd, .events = c->responding ? POLLOUT : POLLIN};
        }
        if (poll(pfd, n, 500) < 0 && errno != EINTR) break;
        if (pfd[0].revents) break; /* cx_http_stop */
        if (pfd[1].revents & POLLIN) accept_all(h);
        for (nfds_t k = 2; k < n; k++) {
            conn_t *c = &h->conns[idx[k]];
            if (!pfd[k].revents || c->fd != pfd[k].fd) continue;
            if (c->draining) on_drain(c);
            else if (c->responding) on_writable(c);
            else if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
                on_readable(h, c);
            if (c->fd >= 0 && c->responding) on_writable(c);
        }
    }
    return NULL;
}

cx_http_t *cx_http_start(const char *bind_addr, int port, cx_metrics_t *m,
                         cx_err_t *err) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char portstr[16];
    cx_http_t *h = calloc(1, sizeof *h);
    int one = 1, rc;

    if (!h) {
        cx_err_set(err, CX_ENOMEM, 0, "http: out of memory");
        return NULL;
    }
    h->listen_fd = h->wake[0] = h->wake[1] = -1;
    h->metrics = m;
    for (int i = 0; i < CX__HTTP_MAX_CONNS; i++) h->conns[i].fd = -1;

    snprintf(portstr, sizeof portstr, "%d", port);
    rc = getaddrinfo(bind_addr && *bind_addr ? bind_addr : NULL, portstr,
                     &hints, &ai);
    if (rc != 0) {
        cx_err_set(err, CX_EINVAL, 0, "http: bad bind address %s: %s",
                   bind_addr, gai_strerror(rc));
        goto fail;
    }
    h->listen_fd = socket(ai->ai_family,
                          ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (h->listen_fd < 0) {
        cx_err_set(err, CX_EIO, 0, "http: socket: %s", strerror(errno));
        goto fail;
    }
    setsockopt(h->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(h->listen_fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(h->listen_fd, 64) < 0) {
        /* EADDRINUSE may pass once the old process is gone. */
        cx_err_set(err, CX_EIO, errno == EADDRINUSE,
                   "http: cannot listen on %s:%d: %s",
                   bind_addr ? bind_addr : "*", port, strerror(errno));
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(h->listen_fd, (struct sockaddr *)&ss, &sl) < 0) {
        cx_err_set(err, CX_EIO, 0, "http: getsockname: %s", strerror(errno));
        goto fail;
    }
    h->port = ntohs(ss.ss_family == AF_INET6
                        ? ((struct sockaddr_in6 *)&ss)->sin6_port
                        : ((struct sockaddr_in *)&ss)->sin_port);
    if (pipe2(h->wake, O_CLOEXEC) < 0) {
        cx_err_set(err, CX_EIO, 0, "http: pipe: %s", strerror(errno));
        goto fail;
    }
    if ((rc = pthread_create(&h->thread, NULL, serve, h)) != 0) {
        cx_err_set(err, CX_EIO, 0, "http: thread: %s", strerror(rc));
        goto fail;
    }
    freeaddrinfo(ai);
    return h;

fail:
    if (ai) freeaddrinfo(ai);
    if (h->wake[0] >= 0) close(h->wake[0]);
    if (h->wake[1] >= 0) close(h->wake[1]);
    if (h->listen_fd >= 0) close(h->listen_fd);
    free(h);
    return NULL;
}

int cx_http_port(const cx_http_t *h) { return h ? h->port : -1; }

void cx_http_set_ready(cx_http_t *h, int ready) {
    if (h) atomic_store(&h->ready, ready ? 1 : 0);
}

void cx_http_stop(cx_http_t *h) {
    if (!h) return;
    ssize_t w;
    do w = write(h->wake[1], "x", 1);
    while (w < 0 && errno == EINTR);
    pthread_join(h->thread, NULL);
    for (int i = 0; i < CX__HTTP_MAX_CONNS; i++) conn_close(&h->conns[i]);
    close(h->wake[0]);
    close(h->wake[1]);
    close(h->listen_fd);
    free(h);
}
