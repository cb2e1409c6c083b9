/* Reading fields of Redis replies from the scheduler's Lua scripts, whose
 * rows mix bulk strings, integers and nils. */
#ifndef CX_SCHED_REPLY_H
#define CX_SCHED_REPLY_H

#include <stdlib.h>

#include <hiredis/hiredis.h>

/* The element as text; "" for nil or a missing element. */
static inline const char *cx__rstr(const redisReply *r, size_t i) {
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements) return "";
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS)
        return e->str;
    return "";
}

/* The element as an integer (integer replies or numeric text); 0 else. */
static inline long long cx__rll(const redisReply *r, size_t i) {
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements) return 0;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER) return e->integer;
    if (e->type == REDIS_REPLY_STRING) return strtoll(e->str, NULL, 10);
    return 0;
}

#endif
