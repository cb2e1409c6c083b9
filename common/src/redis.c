/* Redis over hiredis with reconnect: a command is formatted once, then sent
 * on the current connection, reconnecting with backoff while the server is
 * unreachable or restarting, until retry_ms has passed. */
#include "cascade/redis.h"

#include <errno.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cascade/util.h"

struct cx_redis {
    char host[256];
    int port;
    int db;
    char *password;
    int retry_ms;
    redisContext *ctx;
    char last_error[256]; /* why the last connection attempt failed */
};

static int parse_url(cx_redis_t *r, const char *url, cx_err_t *err) {
    const char *p = url, *at, *colon, *slash;
    char *end;

    if (strncmp(p, "redis://", 8) != 0)
        return cx_err_set(err, CX_EINVAL, 0,
                          "redis url \"%s\": must start with redis://", url);
    p += 8;
    slash = strchr(p, '/');
    at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
    if (at) {
        /* userinfo is ":password" (or "user:password"; the user is unused
         * by AUTH with one argument). */
        const char *pw = memchr(p, ':', (size_t)(at - p));
        pw = pw ? pw + 1 : p;
        r->password = strndup(pw, (size_t)(at - pw));
        if (!r->password)
            return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        p = at + 1;
    }
    size_t hostport = slash ? (size_t)(slash - p) : strlen(p);
    colon = memchr(p, ':', hostport);
    size_t hlen = colon ? (size_t)(colon - p) : hostport;
    if (hlen == 0 || hlen >= sizeof r->host)
        return cx_err_set(err, CX_EINVAL, 0, "redis url \"%s\": bad host",
                          url);
    memcpy(r->host, p, hlen);
    r->host[hlen] = '\0';
    r->port = 6379;
    if (colon) {
        long port = strtol(colon + 1, &end, 10);
        if (end != p + hostport || port <= 0 || port > 65535)
            return cx_err_set(err, CX_EINVAL, 0,
                              "redis url \"%s\": bad port", url);
        r->port = (int)port;
    }
    if (slash && slash[1]) {
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 100000)
            return cx_err_set(err, CX_EINVAL, 0,
                              "redis url \"%s\": bad database number", url);
        r->db = (int)db;
    }
    return 0;
}

static void drop(cx_redis_t *r) {
    if (r->ctx) redisFree(r->ctx);
    r->ctx = NULL;
}

/* Runs one setup command on a fresh connection. Returns 0 on success, -1
 * when the connection broke (retry), -2 on an error reply (fatal). */
static int setup_cmd(cx_redis_t *r, cx_err_t *err, const char *what,
                     const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->ctx, fmt, ap);
    va_end(ap);
    if (!rep) {
        snprintf(r->last_error, sizeof r->last_error, "%s: %s", what,
                 r->ctx->errstr);
        return -1;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        int loading = strncmp(rep->str, "LOADING", 7) == 0;
        snprintf(r->last_error, sizeof r->last_error, "%s: %s", what,
                 rep->str);
        if (!loading)
            cx_err_set(err, CX_EREDIS, 0, "redis %s:%d: %s: %s", r->host,
                       r->port, what, rep->str);
        freeReplyObject(rep);
        return loading ? -1 : -2;
    }
    freeReplyObject(rep);
    return 0;
}

static int connect_now(cx_redis_t *r, cx_err_t *err) {
    struct timeval ctv = {2, 0};
    int cmd_ms = r->retry_ms > 5000 ? r->retry_ms : 5000;
    struct timeval tv = {cmd_ms / 1000, (cmd_ms % 1000) * 1000};

    r->ctx = redisConnectWithTimeout(r->host, r->port, ctv);
    if (!r->ctx) {
        snprintf(r->last_error, sizeof r->last_error, "out of memory");
        return -1;
    }
    if (r->ctx->err) {
        snprintf(r->last_error, sizeof r->last_error, "connect: %s",
                 r->ctx->errstr);
        drop(r);
        return -1;
    }
    /* A stalled server must not hang a command forever. */
    redisSetTimeout(r->ctx, tv);
    int rc = 0;
    if (r->password) rc = setup_cmd(r, err, "AUTH", "AUTH %s", r->password);
    if (rc == 0 && r->db) rc = setup_cmd(r, err, "SELECT", "SELECT %d", r->db);
    if (rc < 0) drop(r);
    return rc;
}

cx_redis_t *cx_redis_new(const char *url, int retry_ms, cx_err_t *err) {
    cx_redis_t *r = calloc(1, sizeof *r);
    if (!r) {
        cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        return NULL;
    }
    r->retry_ms = retry_ms > 0 ? retry_ms : 0;
    if (parse_url(r, url, err) < 0 || connect_now(r, err) == -2) {
        cx_redis_destroy(r);
        return NULL;
    }
    return r;
}

void cx_redis_destroy(cx_redis_t *r) {
    if (!r) return;
    drop(r);
    free(r->password);
    free(r);
}

/* Sends a formatted command, reconnecting as needed. Returns the reply
 * (error replies included) or NULL with err. */
static redisReply *run(cx_redis_t *r, const char *cmd, size_t len,
                       cx_err_t *err) {
    double deadline = cx_mono_ms() + r->retry_ms;
    unsigned attempt = 0;

    for (;;) {
        int rc = 0;
        if (!r->ctx) rc = connect_now(r, err);
        if (rc == -2) return NULL;
        if (r->ctx) {
            void *reply = NULL;
            if (redisAppendFormattedCommand(r->ctx, cmd, len) == REDIS_OK &&
                redisGetReply(r->ctx, &reply) == REDIS_OK && reply) {
                redisReply *rep = reply;
                /* A restarted server answers LOADING until it is ready. */
                if (rep->type != REDIS_REPLY_ERROR ||
                    strncmp(rep->str, "LOADING", 7) != 0)
                    return rep;
                snprintf(r->last_error, sizeof r->last_error, "%s", rep->str);
                freeReplyObject(rep);
            } else {
                snprintf(r->last_error, sizeof r->last_error, "%s",
                         r->ctx->errstr[0] ? r->ctx->errstr
                                           : "connection lost");
                drop(r);
            }
        }
        double left = deadline - cx_mono_ms();
        if (left <= 0) break;
        unsigned max_ms = left < 1000 ? (unsigned)left + 1 : 1000;
        cx_backoff_sleep(attempt++, 20, max_ms, NULL);
    }
    cx_err_set(err, CX_EREDIS, 1, "redis %s:%d unavailable: %s", r->host,
               r->port, r->last_error);
    return NULL;
}

static redisReply *check(redisReply *rep, cx_err_t *err) {
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        cx_err_set(err, CX_EREDIS, 0, "%s", rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

redisReply *cx_redis_cmd(cx_redis_t *r, cx_err_t *err, const char *fmt, ...) {
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0) {
        cx_err_set(err, len == -2 ? CX_EINVAL : CX_ENOMEM, 0,
                   "redis: cannot format command \"%s\"", fmt);
        return NULL;
    }
    redisReply *rep = check(run(r, cmd, (size_t)len, err), err);
    redisFreeCommand(cmd);
    return rep;
}

static redisReply *cmdargv_raw(cx_redis_t *r, int argc, const char **argv,
                               const size_t *argvlen, cx_err_t *err) {
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        cx_err_set(err, CX_ENOMEM, 0, "redis: out of memory");
        return NULL;
    }
    redisReply *rep = run(r, cmd, (size_t)len, err);
    redisFreeCommand(cmd);
    return rep;
}

redisReply *cx_redis_cmdargv(cx_redis_t *r, int argc, const char **argv,
                             const size_t *argvlen, cx_err_t *err) {
    return check(cmdargv_raw(r, argc, argv, argvlen, err), err);
}

static pthread_mutex_t sha_lock = PTHREAD_MUTEX_INITIALIZER;

static void script_sha(cx_redis_script_t *s, char out[41]) {
    pthread_mutex_lock(&sha_lock);
    if (!s->sha[0]) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)s->lua, strlen(s->lua), md);
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
            snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
    }
    memcpy(out, s->sha, 41);
    pthread_mutex_unlock(&sha_lock);
}

redisReply *cx_redis_eval(cx_redis_t *r, cx_redis_script_t *s, int nkeys,
                          int nargs, const char **args, cx_err_t *err) {
    char sha[41], nk[16];
    redisReply *rep;

    if (nkeys < 0 || nargs < 0) {
        cx_err_set(err, CX_EINVAL, 0, "redis eval: negative argument count");
        return NULL;
    }
    int argc = 3 + nkeys + nargs;
    const char **argv = calloc((size_t)argc, sizeof *argv);
    if (!argv) {
        cx_err_set(err, CX_ENOMEM, 0, "redis eval: out of memory");
        return NULL;
    }
    script_sha(s, sha);
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = sha;
    argv[2] = nk;
    for (int i = 0; i < nkeys + nargs; i++) argv[3 + i] = args[i];
    rep = cmdargv_raw(r, argc, argv, NULL, err);
    if (rep && rep->type == REDIS_REPLY_ERROR &&
        strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        /* Not in the server's cache (first use, restart, SCRIPT FLUSH):
         * EVAL runs it and caches it for the next EVALSHA. */
        freeReplyObject(rep);
        argv[0] = "EVAL";
        argv[1] = s->lua;
        rep = cmdargv_raw(r, argc, argv, NULL, err);
    }
    free(argv);
    return check(rep, err);
}
