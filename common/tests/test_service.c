#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cascade/service.h"
#include "cx_testenv.h"

typedef struct sconf {
    cx_common_conf_t common;
    long long depth;
} sconf_t;

static const cx_conf_entry_t table[] = {
    CX_CONF_COMMON(sconf_t),
    {"depth", CX_CONF_INT, "3", 1, 10, "Depth", offsetof(sconf_t, depth)},
    CX_CONF_END};

static int http_status(int port, const char *path) {
    char req[256], resp[512] = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\n\r\n", path);
    ck_assert(send(fd, req, strlen(req), 0) > 0);
    ssize_t n = recv(fd, resp, sizeof resp - 1, MSG_WAITALL);
    close(fd);
    int status = -1;
    if (n > 12) sscanf(resp, "HTTP/1.1 %d", &status);
    return status;
}

static char *dir;

static void setup(void) { dir = cx_testenv_tmpdir("service"); }
static void teardown(void) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}

START_TEST(test_init_http_store) {
    sconf_t c;
    cx_service_t svc;
    cx_err_t err;
    char uri[700], other[700];
    snprintf(uri, sizeof uri, "--store.uri=file://%s/own", dir);
    char *argv[] = {"prog", uri, "--log.level=warn", NULL};
    ck_assert_int_eq(cx_service_configure(table, &c, "svctest", 3, argv), 0);
    ck_assert_msg(cx_service_init(&svc, "svc-test", &c.common, CX_SVC_STORE,
                                  &err) == 0,
                  "%s", err.msg);

    /* default instance: <hostname>-<pid> */
    char host[64], want[128];
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    snprintf(want, sizeof want, "%s-%ld", host, (long)getpid());
    ck_assert_str_eq(svc.instance, want);
    ck_assert_ptr_null(svc.producer);
    ck_assert_ptr_null(svc.redis);

    int port = cx_http_port(svc.http);
    ck_assert_int_gt(port, 0);
    ck_assert_int_eq(http_status(port, "/healthz"), 200);
    ck_assert_int_eq(http_status(port, "/readyz"), 503);
    cx_http_set_ready(svc.http, 1);
    ck_assert_int_eq(http_status(port, "/readyz"), 200);

    /* the service's own store for "" and its own uri; others cached */
    ck_assert_ptr_nonnull(svc.store);
    ck_assert_ptr_eq(cx_service_store(&svc, "", &err), svc.store);
    ck_assert_ptr_eq(cx_service_store(&svc, c.common.store_uri, &err),
                     svc.store);
    snprintf(other, sizeof other, "file://%s/other", dir);
    cx_store_t *o = cx_service_store(&svc, other, &err);
    ck_assert_msg(o != NULL, "%s", err.msg);
    ck_assert_ptr_ne(o, svc.store);
    ck_assert_ptr_eq(cx_service_store(&svc, other, &err), o);
    ck_assert_int_eq(cx_store_put(o, "a/b.txt", "hi", 2, &err), 0);
    char path[800];
    snprintf(path, sizeof path, "%s/other/a/b.txt", dir);
    ck_assert_int_eq(access(path, F_OK), 0);

    cx_service_shutdown(&svc);
    ck_assert_int_eq(http_status(port, "/healthz"), -1); /* closed */
    cx_conf_free(table, &c);
}
END_TEST

START_TEST(test_configure_errors) {
    sconf_t c;
    char *argv[] = {"prog", "--depth=11", NULL};
    ck_assert_int_eq(cx_service_configure(table, &c, "svctest", 2, argv), 2);
    ck_assert_ptr_null(c.common.kafka_brokers); /* freed already */
    char *argv2[] = {"prog", "--log.level=loud", "--instance=w7", NULL};
    ck_assert_int_eq(cx_service_configure(table, &c, "svctest", 3, argv2), 0);
    cx_service_t svc;
    cx_err_t err;
    ck_assert_int_eq(cx_service_init(&svc, "svctest", &c.common, 0, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "loud"));
    cx_conf_free(table, &c);

    /* an unreachable Redis is not an init failure; a bad URL is */
    char *argv3[] = {"prog", "--redis.url=http://x", "--instance=w7", NULL};
    ck_assert_int_eq(cx_service_configure(table, &c, "svctest", 3, argv3), 0);
    ck_assert_int_eq(
        cx_service_init(&svc, "svctest", &c.common, CX_SVC_REDIS, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "redis://"));
    ck_assert_ptr_null(svc.http); /* torn down */
    cx_conf_free(table, &c);
}
END_TEST

START_TEST(test_signals) {
    sconf_t c;
    cx_service_t svc;
    cx_err_t err;
    char *argv[] = {"prog", "--instance=w7", NULL};
    ck_assert_int_eq(cx_service_configure(table, &c, "svctest", 2, argv), 0);
    ck_assert_int_eq(cx_service_init(&svc, "svctest", &c.common, 0, &err), 0);
    ck_assert_str_eq(svc.instance, "w7");
    ck_assert_int_eq(cx_service_stopping(), 0);
    ck_assert_int_eq(*cx_service_stop_flag(), 0);
    raise(SIGTERM); /* handled: the process lives on */
    ck_assert_int_eq(cx_service_stopping(), 1);
    ck_assert_int_ne(*cx_service_stop_flag(), 0);
    cx_service_request_stop();
    ck_assert_int_eq(cx_service_stopping(), 1);
    cx_service_shutdown(&svc);
    cx_conf_free(table, &c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("service");
    TCase *tc = tcase_create("service");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_init_http_store);
    tcase_add_test(tc, test_configure_errors);
    tcase_add_test(tc, test_signals); /* last: the stop flag stays set */
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
