/* Against a real redis-server: CASCADE_REDIS_URL for commands and scripts;
 * the reconnect cases start (and kill) their own redis-server. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cascade/redis.h"
#include "cascade/util.h"
#include "cx_testenv.h"

static char prefix[64];

static const char *url(void) {
    const char *u = cx_testenv("CASCADE_REDIS_URL");
    ck_assert_msg(u != NULL, "CASCADE_REDIS_URL is not set (start the stack)");
    return u;
}

START_TEST(test_commands) {
    cx_err_t err;
    cx_redis_t *r = cx_redis_new(url(), 2000, &err);
    ck_assert_msg(r != NULL, "%s", err.msg);
    redisReply *rep = cx_redis_cmd(r, &err, "SET %s:k %b", prefix, "v\0x", (size_t)3);
    ck_assert_msg(rep != NULL, "%s", err.msg);
    ck_assert_str_eq(rep->str, "OK");
    freeReplyObject(rep);
    rep = cx_redis_cmd(r, &err, "GET %s:k", prefix);
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(rep->len, 3);
    ck_assert_mem_eq(rep->str, "v\0x", 3);
    freeReplyObject(rep);

    char key[128];
    snprintf(key, sizeof key, "%s:n", prefix);
    const char *argv[] = {"INCRBY", key, "41"};
    rep = cx_redis_cmdargv(r, 3, argv, NULL, &err);
    ck_assert_int_eq(rep->integer, 41);
    freeReplyObject(rep);
    rep = cx_redis_cmd(r, &err, "INCR %s", key);
    ck_assert_int_eq(rep->integer, 42);
    freeReplyObject(rep);

    /* an error reply: NULL, CX_EREDIS, not retriable, the server's text */
    cx_err_clear(&err);
    ck_assert_ptr_null(cx_redis_cmd(r, &err, "INCR %s:k", prefix));
    ck_assert_int_eq(err.code, CX_EREDIS);
    ck_assert_int_eq(err.retriable, 0);
    ck_assert_msg(strstr(err.msg, "not an integer") != NULL, "%s", err.msg);
    ck_assert_ptr_null(cx_redis_cmd(r, &err, "NOSUCHCOMMAND"));
    ck_assert_ptr_nonnull(strstr(err.msg, "unknown command"));
    /* the connection is still fine afterwards */
    rep = cx_redis_cmd(r, &err, "DEL %s:k %s:n", prefix, prefix);
    ck_assert_int_eq(rep->integer, 2);
    freeReplyObject(rep);
    cx_redis_destroy(r);
    cx_redis_destroy(NULL);
}
END_TEST

static cx_redis_script_t script = {
    .lua = "redis.call('SET', KEYS[1], ARGV[1]) "
           "return redis.call('INCRBY', KEYS[2], ARGV[2])"};

START_TEST(test_eval_noscript) {
    cx_err_t err;
    cx_redis_t *r = cx_redis_new(url(), 2000, &err);
    char k1[128], k2[128];
    snprintf(k1, sizeof k1, "%s:s1", prefix);
    snprintf(k2, sizeof k2, "%s:s2", prefix);
    const char *args[] = {k1, k2, "hello", "5"};
    for (int i = 1; i <= 3; i++) {
        redisReply *rep = cx_redis_eval(r, &script, 2, 2, args, &err);
        ck_assert_msg(rep != NULL, "%s", err.msg);
        ck_assert_int_eq(rep->integer, 5 * i);
        freeReplyObject(rep);
        if (i == 2) { /* the server forgets every script */
            rep = cx_redis_cmd(r, &err, "SCRIPT FLUSH");
            freeReplyObject(rep);
        }
    }
    ck_assert_uint_eq(strlen(script.sha), 40);
    /* the sha is the one Redis computes */
    redisReply *rep = cx_redis_cmd(r, &err, "SCRIPT LOAD %s", script.lua);
    ck_assert_str_eq(rep->str, script.sha);
    freeReplyObject(rep);

    static cx_redis_script_t bad = {.lua = "return redis.call('INCR', KEYS[1])"};
    const char *bargs[] = {k1};
    ck_assert_ptr_null(cx_redis_eval(r, &bad, 1, 0, bargs, &err));
    ck_assert_int_eq(err.code, CX_EREDIS);
    ck_assert_int_eq(err.retriable, 0);
    rep = cx_redis_cmd(r, &err, "DEL %s %s", k1, k2);
    freeReplyObject(rep);
    cx_redis_destroy(r);
}
END_TEST

START_TEST(test_bad_urls) {
    cx_err_t err;
    const char *bad[] = {"http://127.0.0.1:6379", "redis://", "redis://h:0",
                         "redis://h:99999", "redis://h:12x", "redis://h:1/x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_msg(cx_redis_new(bad[i], 100, &err) == NULL, "%s", bad[i]);
        ck_assert_int_eq(err.code, CX_EINVAL);
    }
}
END_TEST

/* --- a private redis-server we can kill --- */

static pid_t server_pid = -1;
static int server_port;

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t l = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static void server_start(void) {
    char port[16];
    snprintf(port, sizeof port, "%d", server_port);
    server_pid = fork();
    ck_assert_int_ge(server_pid, 0);
    if (server_pid == 0) {
        freopen("/dev/null", "w", stdout);
        execlp("redis-server", "redis-server", "--port", port, "--bind",
               "127.0.0.1", "--save", "", "--appendonly", "no",
               "--requirepass", "s3cret", (char *)NULL);
        _exit(127);
    }
    /* ready when it answers PING (with or without the password) */
    double deadline = cx_mono_ms() + 10000;
    for (;;) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", server_port, tv);
        if (c && !c->err) {
            redisReply *rep = redisCommand(c, "PING");
            int ok = rep != NULL;
            if (rep) freeReplyObject(rep);
            redisFree(c);
            if (ok) return;
        } else if (c) {
            redisFree(c);
        }
        ck_assert_msg(cx_mono_ms() < deadline, "redis-server did not start");
        ck_assert_msg(waitpid(server_pid, NULL, WNOHANG) == 0,
                      "redis-server exited (port %d taken?)", server_port);
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
}

static void server_kill(void) {
    if (server_pid <= 0) return;
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
    server_pid = -1;
}

static void private_setup(void) {
    server_port = free_port();
    server_start();
}

static void private_teardown(void) { server_kill(); }

static void *restart_later(void *arg) {
    struct timespec ts = {0, 400000000}; /* an outage of 0.4 s */
    nanosleep(&ts, NULL);
    server_start();
    return arg;
}

START_TEST(test_reconnect) {
    cx_err_t err;
    char u[128];
    snprintf(u, sizeof u, "redis://:s3cret@127.0.0.1:%d/3", server_port);
    cx_redis_t *r = cx_redis_new(u, 15000, &err);
    ck_assert_msg(r != NULL, "%s", err.msg);
    redisReply *rep = cx_redis_cmd(r, &err, "SET a 1");
    ck_assert_msg(rep != NULL, "%s", err.msg);
    freeReplyObject(rep);

    /* restarted on the same port: the next command reconnects, with AUTH
     * and SELECT done again */
    server_kill();
    server_start();
    rep = cx_redis_cmd(r, &err, "SET b 2");
    ck_assert_msg(rep != NULL, "%s", err.msg);
    freeReplyObject(rep);
    rep = cx_redis_cmd(r, &err, "CLIENT LIST");
    ck_assert_ptr_nonnull(strstr(rep->str, "db=3"));
    freeReplyObject(rep);

    /* down while the command is issued: retried until the server is back */
    server_kill();
    pthread_t t;
    pthread_create(&t, NULL, restart_later, NULL);
    double t0 = cx_mono_ms();
    rep = cx_redis_cmd(r, &err, "INCR c");
    pthread_join(t, NULL);
    ck_assert_msg(rep != NULL, "%s", err.msg);
    ck_assert_int_eq(rep->integer, 1);
    ck_assert(cx_mono_ms() - t0 >= 300);
    freeReplyObject(rep);
    cx_redis_destroy(r);

    /* a wrong password is an error reply, not a retry */
    snprintf(u, sizeof u, "redis://:wrong@127.0.0.1:%d", server_port);
    ck_assert_ptr_null(cx_redis_new(u, 15000, &err));
    ck_assert_int_eq(err.code, CX_EREDIS);
    ck_assert_int_eq(err.retriable, 0);
}
END_TEST

START_TEST(test_gives_up) {
    cx_err_t err;
    char u[128];
    snprintf(u, sizeof u, "redis://:s3cret@127.0.0.1:%d", server_port);
    cx_redis_t *r = cx_redis_new(u, 500, &err);
    ck_assert_ptr_nonnull(r);
    server_kill();
    double t0 = cx_mono_ms();
    ck_assert_ptr_null(cx_redis_cmd(r, &err, "PING"));
    double dt = cx_mono_ms() - t0;
    ck_assert_msg(dt >= 450 && dt < 3000, "gave up after %.0f ms", dt);
    ck_assert_int_eq(err.code, CX_EREDIS);
    ck_assert_int_eq(err.retriable, 1);
    ck_assert_msg(strstr(err.msg, "unavailable") != NULL, "%s", err.msg);
    cx_redis_destroy(r);
    /* refused at creation is fine too: the first command retries */
    r = cx_redis_new(u, 200, &err);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(cx_redis_cmd(r, &err, "PING"));
    ck_assert_int_eq(err.retriable, 1);
    cx_redis_destroy(r);
}
END_TEST

int main(void) {
    snprintf(prefix, sizeof prefix, "cx-test-redis:%ld:%lld", (long)getpid(),
             (long long)cx_now_ms());
    Suite *s = suite_create("redis");
    TCase *tc = tcase_create("server");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_commands);
    tcase_add_test(tc, test_eval_noscript);
    tcase_add_test(tc, test_bad_urls);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("private");
    tcase_set_timeout(tp, 60);
    tcase_add_checked_fixture(tp, private_setup, private_teardown);
    tcase_add_test(tp, test_reconnect);
    tcase_add_test(tp, test_gives_up);
    suite_add_tcase(s, tp);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
