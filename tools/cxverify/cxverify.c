/* cxverify: checks a job's dataset in a store (file:// or s3://, read
 * through the store interface; S3 settings from CASCADE_S3_*) the way a
 * user would, independently of the services that wrote it.
 *
 *   cxverify --store URI --job JOB [--redis URL] [--complete]
 *
 * Every data file must decode as a grayscale PNG of the manifest's size and
 * depth, be named by the SHA-256 of its bytes under the right shard, appear
 * in exactly one manifest, and no two files may share a hash. Manifests'
 * per-class totals must equal the files on disk and, with --redis, the
 * index's counters; with --complete also each class's quota. Prints one
 * summary line per class and exits 0 only when everything holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/manifest.h"
#include "cascade/png16.h"
#include "cascade/redis.h"
#include "cascade/sha256.h"
#include "cascade/store.h"
#include "cascade/util.h"

#define MAX_CLASSES 64

typedef struct cls {
    char name[128];
    long files, manifested, index_committed, quota;
} cls_t;

typedef struct verify {
    cx_store_t *store;
    const char *job;
    cls_t cls[MAX_CLASSES];
    int ncls;
    long problems;
    uint32_t width, height, depth;
} verify_t;

static void problem(verify_t *v, const char *fmt, const char *a,
                    const char *b) {
    if (v->problems++ < 20) {
        fprintf(stderr, "cxverify: ");
        fprintf(stderr, fmt, a, b);
        fputc('\n', stderr);
    }
}

static cls_t *class_get(verify_t *v, const char *name) {
    for (int i = 0; i < v->ncls; i++)
        if (strcmp(v->cls[i].name, name) == 0) return &v->cls[i];
    if (v->ncls == MAX_CLASSES) return NULL;
    cls_t *c = &v->cls[v->ncls++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks one data file: hash, shard, decode, size. Key layout:
 * <job>/data/<class>[/<cond>]/<hh>/<sha>.png */
static void check_file(verify_t *v, const char *key) {
    char *data = NULL, hex[65], *parts[8];
    size_t len, np = 0;
    cx_err_t err;
    char *copy = strdup(key), *save = NULL;

    for (char *t = strtok_r(copy, "/", &save); t && np < 8;
         t = strtok_r(NULL, "/", &save))
        parts[np++] = t;
    if (np < 5 || np > 6 || strcmp(parts[1], "data") != 0) {
        problem(v, "unexpected key %s%s", key, "");
        goto done;
    }
    cls_t *c = class_get(v, parts[2]);
    if (c) c->files++;
    if (cx_store_get(v->store, key, (void **)&data, &len, &err) != 0) {
        problem(v, "cannot read %s: %s", key, err.msg);
        goto done;
    }
    cx_sha256_hex(data, len, hex);
    const char *fname = parts[np - 1], *shard = parts[np - 2];
    if (strlen(fname) != 68 || strncmp(fname, hex, 64) != 0 ||
        strcmp(fname + 64, ".png") != 0)
        problem(v, "%s: content hash is %s", key, hex);
    if (strlen(shard) != 2 || strncmp(shard, hex, 2) != 0)
        problem(v, "%s: wrong shard directory %s", key, shard);

    uint16_t *px = NULL;
    uint32_t w, h;
    int depth;
    if (cx_png_decode(data, len, 0, &px, &w, &h, &depth, &err) != 0) {
        problem(v, "%s does not decode: %s", key, err.msg);
    } else if (v->width && (w != v->width || h != v->height ||
                            (uint32_t)depth != v->depth)) {
        char what[96];
        snprintf(what, sizeof what, "%ux%u %d-bit, expected %ux%u %u-bit",
                 w, h, depth, v->width, v->height, v->depth);
        problem(v, "%s is %s", key, what);
    }
    free(px);
done:
    free(data);
    free(copy);
}

/* Reads every manifest, fills per-class totals and the sorted list of keys
 * the manifests reference. */
static int read_manifests(verify_t *v, cx_strlist_t *referenced) {
    cx_strlist_t keys = {0};
    cx_err_t err;
    char prefix[256];

    snprintf(prefix, sizeof prefix, "%s/manifests", v->job);
    if (cx_store_list(v->store, prefix, &keys, &err) != 0) {
        fprintf(stderr, "cxverify: listing %s: %s\n", prefix, err.msg);
        return -1;
    }
    for (size_t i = 0; i < keys.len; i++) {
        char *text = NULL;
        size_t len;
        cx_manifest_t *m = NULL;
        if (cx_store_get(v->store, keys.items[i], (void **)&text, &len,
                         &err) != 0 ||
            cx_manifest_parse(text, len, &m, &err) != 0) {
            problem(v, "manifest %s: %s", keys.items[i], err.msg);
            free(text);
            continue;
        }
        cls_t *c = class_get(v, m->class_name);
        if (c) c->manifested += m->committed;
        if (!v->width) {
            v->width = m->params.width;
            v->height = m->params.height;
            v->depth = m->params.bit_depth;
        }
        for (size_t s = 0; s < m->n_samples; s++)
            cx_strlist_push(referenced, m->samples[s].key);
        cx_manifest_free(m);
        free(text);
    }
    printf("manifests=%zu\n", keys.len);
    cx_strlist_free(&keys);
    cx_strlist_sort(referenced);
    return 0;
}

static long hash_field(cx_redis_t *r, const char *job, const char *what,
                       const char *cls) {
    cx_err_t err;
    long n = -1;
    redisReply *rep =
        cx_redis_cmd(r, &err, "HGET cx:job:%s:%s %s", job, what, cls);
    if (rep && rep->type == REDIS_REPLY_STRING) n = atol(rep->str);
    else if (rep && rep->type == REDIS_REPLY_NIL) n = 0;
    if (rep) freeReplyObject(rep);
    return n;
}

static void compare_index(verify_t *v, const char *url, int complete) {
    cx_err_t err;
    cx_redis_t *r = cx_redis_new(url, 5000, &err);
    if (!r) {
        problem(v, "redis %s: %s", url, err.msg);
        return;
    }
    redisReply *rep = cx_redis_cmd(r, &err, "HKEYS cx:job:%s:quota", v->job);
    for (size_t i = 0; rep && i < rep->elements; i++)
        class_get(v, rep->element[i]->str);
    if (rep) freeReplyObject(rep);
    for (int i = 0; i < v->ncls; i++) {
        cls_t *c = &v->cls[i];
        c->index_committed = hash_field(r, v->job, "committed", c->name);
        c->quota = hash_field(r, v->job, "quota", c->name);
        if (c->index_committed != c->manifested)
            problem(v, "class %s: index and manifests disagree%s", c->name,
                    "");
        if (complete && c->manifested != c->quota)
            problem(v, "class %s: committed count is not the quota%s",
                    c->name, "");
    }
    cx_redis_destroy(r);
}

int main(int argc, char **argv) {
    const char *store_uri = NULL, *redis_url = NULL;
    verify_t v = {0};
    int complete = 0;
    cx_err_t err;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--store") == 0 && i + 1 < argc)
            store_uri = argv[++i];
        else if (strcmp(argv[i], "--job") == 0 && i + 1 < argc)
            v.job = argv[++i];
        else if (strcmp(argv[i], "--redis") == 0 && i + 1 < argc)
            redis_url = argv[++i];
        else if (strcmp(argv[i], "--complete") == 0)
            complete = 1;
        else {
            fprintf(stderr, "usage: cxverify --store URI --job JOB "
                            "[--redis URL] [--complete]\n");
            return 2;
        }
    }
    if (!store_uri || !v.job) {
        fprintf(stderr, "cxverify: --store and --job are required\n");
        return 2;
    }
    if (!(v.store = cx_store_open(store_uri, &err))) {
        fprintf(stderr, "cxverify: %s\n", err.msg);
        return 2;
    }

    cx_strlist_t referenced = {0}, files = {0};
    char prefix[256];
    read_manifests(&v, &referenced);
    snprintf(prefix, sizeof prefix, "%s/data", v.job);
    if (cx_store_list(v.store, prefix, &files, &err) != 0 &&
        err.code != CX_ENOENT)
        problem(&v, "listing %s: %s", prefix, err.msg);
    for (size_t i = 0; i < files.len; i++) check_file(&v, files.items[i]);

    /* Files and manifest references must be the same set, each once. A
     * hash shared by two files would show up as a duplicate name here
     * (names are hashes) or as two references to one file. */
    for (size_t i = 1; i < referenced.len; i++)
        if (strcmp(referenced.items[i], referenced.items[i - 1]) == 0)
            problem(&v, "%s is listed twice by manifests%s",
                    referenced.items[i], "");
    char **hashes = calloc(files.len ? files.len : 1, sizeof *hashes);
    for (size_t i = 0; i < files.len; i++)
        hashes[i] = strrchr(files.items[i], '/') + 1;
    qsort(hashes, files.len, sizeof *hashes, cmp_str);
    for (size_t i = 1; i < files.len; i++)
        if (strcmp(hashes[i], hashes[i - 1]) == 0)
            problem(&v, "two files share hash %s%s", hashes[i], "");
    free(hashes);
    for (size_t i = 0; i < files.len; i++)
        if (!bsearch(&files.items[i], referenced.items, referenced.len,
                     sizeof(char *), cmp_str))
            problem(&v, "%s is in no manifest%s", files.items[i], "");
    for (size_t i = 0; i < referenced.len; i++)
        if (!bsearch(&referenced.items[i], files.items, files.len,
                     sizeof(char *), cmp_str))
            problem(&v, "%s is listed but missing%s", referenced.items[i],
                    "");
    for (int i = 0; i < v.ncls; i++)
        if (v.cls[i].files != v.cls[i].manifested)
            problem(&v, "class %s: files on disk and manifests disagree%s",
                    v.cls[i].name, "");

    if (redis_url) compare_index(&v, redis_url, complete);
    for (int i = 0; i < v.ncls; i++)
        printf("class=%s files=%ld manifested=%ld index=%ld quota=%ld\n",
               v.cls[i].name, v.cls[i].files, v.cls[i].manifested,
               v.cls[i].index_committed, v.cls[i].quota);
    printf("files=%zu size=%ux%u depth=%u problems=%ld\n", files.len, v.width,
           v.height, v.depth, v.problems);
    cx_strlist_free(&referenced);
    cx_strlist_free(&files);
    cx_store_destroy(v.store);
    return v.problems ? 1 : 0;
}
