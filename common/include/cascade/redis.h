/* Redis client (hiredis) with reconnect and backoff.
 *
 * One cx_redis_t per thread. A command that fails on a broken or refused
 * connection reconnects and retries with backoff until `retry_ms` (set at
 * creation) has passed, then returns NULL with a retriable error. A Redis
 * error reply is returned as NULL with CX_EREDIS (not retriable) and the
 * server's text in err. */
#ifndef CASCADE_REDIS_H
#define CASCADE_REDIS_H

#include <hiredis/hiredis.h>

#include "cascade/err.h"

typedef struct cx_redis cx_redis_t;

/* url: redis://[:password@]host:port[/db]. Connects now; a refused
 * connection is not an error here (the first command retries). */
cx_redis_t *cx_redis_new(const char *url, int retry_ms, cx_err_t *err);
void cx_redis_destroy(cx_redis_t *r);

/* printf-style command as redisCommand. The reply is the caller's
 * (freeReplyObject). */
redisReply *cx_redis_cmd(cx_redis_t *r, cx_err_t *err, const char *fmt, ...);
redisReply *cx_redis_cmdargv(cx_redis_t *r, int argc, const char **argv,
                             const size_t *argvlen, cx_err_t *err);

/* A Lua script run with EVALSHA, loading it on NOSCRIPT (after a Redis
 * restart too). Declare once: static cx_redis_script_t s = {.lua = LUA_TEXT};
 * (designated, so -Wmissing-field-initializers stays quiet). */
typedef struct cx_redis_script {
    const char *lua;
    char sha[41]; /* filled on first use */
} cx_redis_script_t;

/* args holds nkeys key names followed by nargs arguments. */
redisReply *cx_redis_eval(cx_redis_t *r, cx_redis_script_t *s, int nkeys,
                          int nargs, const char **args, cx_err_t *err);

#endif
