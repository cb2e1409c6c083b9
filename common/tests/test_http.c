#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cascade/http.h"

static cx_metrics_t *metrics;
static cx_http_t *http;

static void setup(void) {
    cx_err_t err;
    metrics = cx_metrics_new();
    cx_metric_add(cx_metrics_counter(metrics, "cascade_t_done_total", "Done",
                                     "class", "nodule"),
                  5);
    http = cx_http_start("127.0.0.1", 0, metrics, &err);
    ck_assert_msg(http != NULL, "%s", err.msg);
}

static void teardown(void) {
    cx_http_stop(http);
    cx_metrics_destroy(metrics);
}

static int dial(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)cx_http_port(http))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Sends req, reads until the server closes; returns the whole response. */
static char *exchange(const char *req, size_t len) {
    static char resp[1 << 20];
    int fd = dial();
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) break; /* the server may answer and close early */
        off += (size_t)n;
    }
    size_t got = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ck_assert_msg(poll(&p, 1, 5000) == 1, "no response in 5 s");
        ssize_t n = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
    }
    resp[got] = '\0';
    close(fd);
    return resp;
}

static char *get(const char *req) { return exchange(req, strlen(req)); }

START_TEST(test_port) {
    ck_assert_int_gt(cx_http_port(http), 0);
    ck_assert_int_eq(cx_http_port(NULL), -1);
}
END_TEST

START_TEST(test_endpoints) {
    char *r = get("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_msg(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", r);
    ck_assert_ptr_nonnull(strstr(r, "Content-Length: 3\r\n"));
    ck_assert_ptr_nonnull(strstr(r, "\r\n\r\nok\n"));

    r = get("GET /readyz HTTP/1.0\r\n\r\n");
    ck_assert_msg(strncmp(r, "HTTP/1.1 503 ", 13) == 0, "%s", r);
    cx_http_set_ready(http, 1);
    r = get("GET /readyz?verbose HTTP/1.1\r\n\r\n");
    ck_assert_msg(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%s", r);
    cx_http_set_ready(http, 0);
    r = get("GET /readyz HTTP/1.1\r\n\r\n");
    ck_assert_msg(strncmp(r, "HTTP/1.1 503 ", 13) == 0, "%s", r);

    r = get("GET /metrics HTTP/1.1\r\n\r\n");
    ck_assert_msg(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%s", r);
    ck_assert_ptr_nonnull(strstr(r, "Content-Type: text/plain; version=0.0.4"));
    ck_assert_ptr_nonnull(strstr(r, "# TYPE cascade_t_done_total counter\n"));
    ck_assert_ptr_nonnull(
        strstr(r, "\ncascade_t_done_total{class=\"nodule\"} 5\n"));

    r = get("GET /nope HTTP/1.1\r\n\r\n");
    ck_assert_msg(strncmp(r, "HTTP/1.1 404 ", 13) == 0, "%s", r);
    r = get("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    ck_assert_msg(strncmp(r, "HTTP/1.1 405 ", 13) == 0, "%s", r);
    ck_assert_ptr_nonnull(strstr(r, "Allow: GET\r\n"));
    r = get("garbage\r\n\r\n");
    ck_assert_msg(strncmp(r, "HTTP/1.1 400 ", 13) == 0, "%s", r);
}
END_TEST

START_TEST(test_limits) {
    /* A request head over the limit is refused, not buffered forever. */
    size_t len = 64 * 1024;
    char *big = malloc(len + 1);
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', len - 5);
    big[len] = '\0';
    char *r = exchange(big, len);
    ck_assert_msg(strncmp(r, "HTTP/1.1 431 ", 13) == 0, "%.60s", r);
    free(big);

    /* A client that never finishes its request does not block others. */
    int idle = dial();
    ck_assert_int_eq(send(idle, "GET /hea", 8, 0), 8);
    r = get("GET /healthz HTTP/1.1\r\n\r\n");
    ck_assert(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
    close(idle);

    /* Many connections in a row: nothing leaks or runs out. */
    for (int i = 0; i < 300; i++) {
        r = get("GET /healthz HTTP/1.1\r\n\r\n");
        ck_assert(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
    }
}
END_TEST

START_TEST(test_bad_bind) {
    cx_err_t err;
    ck_assert_ptr_null(cx_http_start("not an address", 0, metrics, &err));
    ck_assert_int_eq(err.code, CX_EINVAL);
    /* the port in use by our endpoint */
    ck_assert_ptr_null(
        cx_http_start("127.0.0.1", cx_http_port(http), metrics, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "cannot listen"));
    cx_http_stop(NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("http");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_port);
    tcase_add_test(tc, test_endpoints);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_bad_bind);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
