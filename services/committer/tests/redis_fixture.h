/* A Redis for one test binary: the stack's (CASCADE_REDIS_URL) when set,
 * else a private redis-server on a free loopback port, stopped at exit. */
#ifndef CX_COMMITTER_REDIS_FIXTURE_H
#define CX_COMMITTER_REDIS_FIXTURE_H

/* The URL, or NULL when no Redis could be started (the reason on stderr). */
const char *cx_fixture_redis_url(void);
/* Stops the private server, if one was started. */
void cx_fixture_redis_stop(void);

#endif
