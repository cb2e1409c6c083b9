/* String -> int map with linear probing and tombstones. */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A slot's key: NULL empty, TOMB deleted, else owned. */
static char tomb_mark;
#define TOMB (&tomb_mark)

typedef struct slot {
    char *key;
    int value;
} slot_t;

struct cx_smap {
    slot_t *slots;
    size_t cap;  /* power of two */
    size_t len;  /* live keys */
    size_t used; /* live keys + tombstones */
};

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

cx_smap_t *cx_smap_new(void) {
    cx_smap_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cap = 64;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

void cx_smap_destroy(cx_smap_t *m) {
    if (!m) return;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB) free(m->slots[i].key);
    free(m->slots);
    free(m);
}

/* The slot holding key, or NULL. */
static slot_t *find(const cx_smap_t *m, const char *key) {
    size_t mask = m->cap - 1, i = (size_t)hash(key) & mask;
    for (;;) {
        slot_t *s = &m->slots[i];
        if (!s->key) return NULL;
        if (s->key != TOMB && strcmp(s->key, key) == 0) return s;
        i = (i + 1) & mask;
    }
}

int cx_smap_get(const cx_smap_t *m, const char *key) {
    const slot_t *s = find(m, key);
    return s ? s->value : -1;
}

/* Re-inserts every live key into a table of cap slots (drops tombstones). */
static int rehash(cx_smap_t *m, size_t cap) {
    slot_t *ns = calloc(cap, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        slot_t *s = &m->slots[i];
        if (!s->key || s->key == TOMB) continue;
        size_t j = (size_t)hash(s->key) & (cap - 1);
        while (ns[j].key) j = (j + 1) & (cap - 1);
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = cap;
    m->used = m->len;
    return 0;
}

int cx_smap_put(cx_smap_t *m, const char *key, int value) {
    slot_t *s = find(m, key);
    if (s) {
        s->value = value;
        return 0;
    }
    if ((m->used + 1) * 10 > m->cap * 7) {
        size_t cap = m->cap;
        while ((m->len + 1) * 10 > cap * 5) cap *= 2;
        if (rehash(m, cap) < 0) return -1;
    }
    char *k = strdup(key);
    if (!k) return -1;
    size_t mask = m->cap - 1, i = (size_t)hash(key) & mask;
    while (m->slots[i].key && m->slots[i].key != TOMB) i = (i + 1) & mask;
    if (!m->slots[i].key) m->used++;
    m->slots[i].key = k;
    m->slots[i].value = value;
    m->len++;
    return 0;
}

int cx_smap_del(cx_smap_t *m, const char *key) {
    slot_t *s = find(m, key);
    if (!s) return -1;
    int v = s->value;
    free(s->key);
    s->key = TOMB;
    m->len--;
    return v;
}

size_t cx_smap_len(const cx_smap_t *m) { return m->len; }
