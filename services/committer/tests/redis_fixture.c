#include "redis_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "cx_testenv.h"

static pid_t server_pid;
static char url[128];

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int answers_ping(int port) {
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return ok;
}

const char *cx_fixture_redis_url(void) {
    if (url[0]) return url;
    const char *env = cx_testenv("CASCADE_REDIS_URL");
    if (env) {
        snprintf(url, sizeof url, "%s", env);
        return url;
    }
    int port = free_port();
    if (port < 0) {
        perror("free port");
        return NULL;
    }
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    server_pid = fork();
    if (server_pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("redis-server", "redis-server", "--port", ports, "--bind",
               "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel",
               "warning", (char *)NULL);
        _exit(127);
    }
    if (server_pid < 0) {
        perror("fork");
        return NULL;
    }
    /* Wait for it to answer, with a deadline. */
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (answers_ping(port)) break;
        int st;
        if (waitpid(server_pid, &st, WNOHANG) == server_pid) {
            fprintf(stderr, "redis-server exited early\n");
            server_pid = 0;
            return NULL;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > 10) {
            fprintf(stderr, "redis-server did not answer in 10 s\n");
            cx_fixture_redis_stop();
            return NULL;
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    atexit(cx_fixture_redis_stop);
    return url;
}

void cx_fixture_redis_stop(void) {
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        waitpid(server_pid, NULL, 0);
        server_pid = 0;
    }
}
