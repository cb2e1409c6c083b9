/* The s3:// store backend: objects in an S3-compatible bucket, requests
 * signed with SigV4 by libcurl (CURLOPT_AWS_SIGV4). Settings: store_s3.h.
 *
 * The semantics are file://'s (store.h):
 * - put is one PUT: a reader sees the old object or the new, never part.
 * - put_if_absent is a PUT with If-None-Match: *, which the server decides
 *   atomically (412 when the key exists): a real compare-and-swap. S3's
 *   CopyObject takes no such guard, so every guarded write is a PUT.
 * - promote is GET src, PUT-if-absent dst, DELETE src. Each step may be
 *   repeated, so a promotion cut short anywhere is finished by a retry, and
 *   "src missing, dst present" is the success of an earlier try.
 * - list walks ListObjectsV2 pages by continuation token.
 * Transient failures (connection refused or reset, timeouts, 408, 429,
 * 5xx) are retried with exponential backoff up to conf.tries attempts, then
 * returned as retriable errors; anything else is returned at once.
 *
 * Threads: libcurl easy handles are single-threaded, so each request takes
 * one from a mutex-guarded pool and gives it back; handles keep their
 * connections open between requests. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/sha256.h"
#include "store_s3.h"

#define S3_POOL_MAX 16
#define S3_BACKOFF_BASE_MS 50
#define S3_BACKOFF_MAX_MS 2000
#define S3_CONNECT_TIMEOUT_MS 10000L

typedef struct cx__s3 {
    cx__s3_conf_t conf;
    char sigv4[96];   /* "aws:amz:REGION:s3" */
    char *shown;      /* s3://BUCKET[/PREFIX], for messages */
    pthread_mutex_t lock;
    CURL *idle[S3_POOL_MAX];
    size_t nidle;
} cx__s3;

/* One logical request, attempted up to conf.tries times. */
typedef struct s3_call {
    const char *method; /* GET, PUT, HEAD or DELETE */
    const char *key;    /* store key, for messages */
    char *url;
    const void *body; /* PUT */
    size_t len;
    int if_none_match;
    long status;   /* of the last attempt; 0 when none answered */
    cx_buf_t resp; /* its body */
    int ambiguous; /* an earlier attempt may have reached the server */
} s3_call_t;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_ALL); }

static size_t on_write(char *buf, size_t size, size_t n, void *ud) {
    return cx_buf_append(ud, buf, size * n) == 0 ? size * n : 0;
}

static CURL *handle_take(cx__s3 *s) {
    CURL *h = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->nidle) h = s->idle[--s->nidle];
    pthread_mutex_unlock(&s->lock);
    if (h) curl_easy_reset(h); /* keeps the open connections */
    return h ? h : curl_easy_init();
}

static void handle_give(cx__s3 *s, CURL *h) {
    pthread_mutex_lock(&s->lock);
    if (s->nidle < S3_POOL_MAX) {
        s->idle[s->nidle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    if (h) curl_easy_cleanup(h);
}

/* The request's own headers. libcurl 7.88 does not hash an uploaded body
 * for SigV4: it signs the x-amz-content-sha256 value we give. It also
 * signs every header we list, even an empty one it then leaves out (so
 * "Expect:" would break the signature): PUT bodies go as POSTFIELDS, for
 * which libcurl skips 100-continue below 1 MiB. */
static struct curl_slist *call_headers(const cx__s3 *s, const s3_call_t *c) {
    char sha[65], line[96];
    struct curl_slist *h = NULL, *t;
    cx_sha256_hex(c->body ? c->body : "", c->len, sha);
    snprintf(line, sizeof line, "x-amz-content-sha256: %s", sha);
    if (!(h = curl_slist_append(NULL, line))) return NULL;
    if (c->if_none_match && !(t = curl_slist_append(h, "If-None-Match: *")))
        goto fail;
    if (strcmp(c->method, "PUT") == 0 &&
        !(t = curl_slist_append(h, "Content-Type: application/octet-stream")))
        goto fail;
    if (s->conf.session_token) {
        cx_buf_t b = {0};
        int ok = cx_buf_printf(&b, "x-amz-security-token: %s",
                               s->conf.session_token) == 0 &&
                 cx_buf_append(&b, "", 1) == 0 &&
                 curl_slist_append(h, (char *)b.data) != NULL;
        cx_buf_free(&b);
        if (!ok) goto fail;
    }
    return h;
fail:
    curl_slist_free_all(h);
    return NULL;
}

static CURLcode perform_once(cx__s3 *s, s3_call_t *c, char *errbuf) {
    CURL *h = handle_take(s);
    struct curl_slist *hdrs = h ? call_headers(s, c) : NULL;
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    cx_buf_free(&c->resp);
    c->status = 0;
    if (!h || !hdrs) goto out;
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, s->conf.access_key);
    curl_easy_setopt(h, CURLOPT_PASSWORD, s->conf.secret_key);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, s->conf.timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     s->conf.timeout_ms < S3_CONNECT_TIMEOUT_MS
                         ? s->conf.timeout_ms : S3_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c->resp);
    if (strcmp(c->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
    } else if (strcmp(c->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(c->method, "DELETE") == 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
out:
    curl_slist_free_all(hdrs);
    if (h) handle_give(s, h);
    return rc;
}

/* "s3 PUT s3://b/p/key: HTTP 403 AccessDenied: Access Denied" */
static int status_fail(const cx__s3 *s, const s3_call_t *c, int retriable,
                       cx_err_t *err) {
    char code[64], msg[200];
    cx__s3_error_parse((const char *)c->resp.data, c->resp.len, code,
                       sizeof code, msg, sizeof msg);
    cx_errcode_t ec = CX_ESTORE;
    if (c->status == 404 && strcmp(code, "NoSuchBucket") != 0) ec = CX_ENOENT;
    return cx_err_set(err, ec, retriable, "s3 %s %s/%s: HTTP %ld%s%s%s%s%s",
                      c->method, s->shown, c->key, c->status, *code ? " " : "",
                      code, *msg ? ": " : "", msg,
                      retriable ? " (retries exhausted)" : "");
}

/* Runs the call until it gets an answer that is not transient. Returns 0
 * with c->status set (any status: the caller decides what it means), or
 * -1 when no attempt got a usable answer. */
static int s3_call(cx__s3 *s, s3_call_t *c, cx_err_t *err) {
    char errbuf[CURL_ERROR_SIZE];
    for (int attempt = 0;; attempt++) {
        errbuf[0] = '\0';
        CURLcode rc = perform_once(s, c, errbuf);
        /* A conditional PUT racing another on the same key may get 409
         * ConditionalRequestConflict: the race is not decided yet. */
        int transient = cx__s3_transient((int)rc, c->status) ||
                        (c->if_none_match && c->status == 409);
        if (rc == CURLE_OUT_OF_MEMORY)
            return cx_err_set(err, CX_ENOMEM, 0, "s3 %s %s/%s: out of memory",
                              c->method, s->shown, c->key);
        if (!transient && rc == CURLE_OK) return 0;
        if (!transient || attempt + 1 >= s->conf.tries) {
            if (rc == CURLE_OK) return status_fail(s, c, transient, err);
            return cx_err_set(err, CX_ESTORE, transient,
                              "s3 %s %s/%s: %s%s%s%s", c->method, s->shown,
                              c->key, curl_easy_strerror(rc),
                              *errbuf ? ": " : "", errbuf,
                              transient ? " (retries exhausted)" : "");
        }
        if (rc != CURLE_COULDNT_CONNECT && rc != CURLE_COULDNT_RESOLVE_HOST)
            c->ambiguous = 1;
        cx_backoff_sleep((unsigned)attempt, S3_BACKOFF_BASE_MS,
                         S3_BACKOFF_MAX_MS, NULL);
    }
}

static int call_init(cx__s3 *s, s3_call_t *c, const char *method,
                     const char *key, cx_err_t *err) {
    memset(c, 0, sizeof *c);
    c->method = method;
    c->key = key;
    if (!(c->url = cx__s3_object_url(&s->conf, key)))
        return cx_err_set(err, CX_ENOMEM, 0, "s3 store: out of memory");
    return 0;
}

static void call_done(s3_call_t *c) {
    free(c->url);
    cx_buf_free(&c->resp);
}

static int s3_put(void *impl, const char *key, const void *data, size_t len,
                  cx_err_t *err) {
    s3_call_t c;
    if (call_init(impl, &c, "PUT", key, err) != 0) return -1;
    c.body = data;
    c.len = len;
    int rc = s3_call(impl, &c, err);
    if (rc == 0 && c.status != 200) rc = status_fail(impl, &c, 0, err);
    call_done(&c);
    return rc;
}

static int s3_get(void *impl, const char *key, void **data, size_t *len,
                  cx_err_t *err) {
    s3_call_t c;
    if (call_init(impl, &c, "GET", key, err) != 0) return -1;
    int rc = s3_call(impl, &c, err);
    if (rc == 0 && c.status != 200) rc = status_fail(impl, &c, 0, err);
    if (rc == 0 && cx_buf_append(&c.resp, "", 1) != 0)
        rc = cx_err_set(err, CX_ENOMEM, 0, "s3 store: out of memory");
    if (rc == 0) {
        *data = c.resp.data;
        *len = c.resp.len - 1;
        c.resp = (cx_buf_t){0};
    }
    call_done(&c);
    return rc;
}

/* After a 412 that followed an attempt whose outcome we never saw: the
 * object may be our own write. It is ours when it holds our bytes. */
static int same_bytes(void *impl, const char *key, const void *data,
                      size_t len, cx_err_t *err) {
    void *got = NULL;
    size_t n = 0;
    if (s3_get(impl, key, &got, &n, err) != 0) return -1;
    int same = n == len && memcmp(got, data, len) == 0;
    free(got);
    return same;
}

static int s3_put_if_absent(void *impl, const char *key, const void *data,
                            size_t len, cx_err_t *err) {
    s3_call_t c;
    if (call_init(impl, &c, "PUT", key, err) != 0) return -1;
    c.body = data;
    c.len = len;
    c.if_none_match = 1;
    int rc = s3_call(impl, &c, err);
    if (rc == 0 && c.status == 412) {
        rc = 1;
        if (c.ambiguous) {
            int same = same_bytes(impl, key, data, len, err);
            rc = same < 0 ? -1 : !same;
        }
    } else if (rc == 0 && c.status != 200) {
        rc = status_fail(impl, &c, 0, err);
    }
    call_done(&c);
    return rc;
}

static int s3_exists(void *impl, const char *key, cx_err_t *err) {
    s3_call_t c;
    if (call_init(impl, &c, "HEAD", key, err) != 0) return -1;
    int rc = s3_call(impl, &c, err);
    if (rc == 0) {
        if (c.status == 200) rc = 1;
        else if (c.status == 404) rc = 0;
        else rc = status_fail(impl, &c, 0, err);
    }
    call_done(&c);
    return rc;
}

static int s3_del(void *impl, const char *key, cx_err_t *err) {
    s3_call_t c;
    if (call_init(impl, &c, "DELETE", key, err) != 0) return -1;
    int rc = s3_call(impl, &c, err);
    if (rc == 0 && c.status != 200 && c.status != 204 && c.status != 404)
        rc = status_fail(impl, &c, 0, err);
    call_done(&c);
    return rc;
}

static int s3_promote(void *impl, const char *src, const char *dst,
                      cx_err_t *err) {
    void *data = NULL;
    size_t len = 0;
    cx_err_t e;
    if (s3_get(impl, src, &data, &len, &e) != 0) {
        if (e.code != CX_ENOENT) {
            if (err) *err = e;
            return -1;
        }
        int ex = s3_exists(impl, dst, err);
        if (ex < 0) return -1;
        if (ex == 1) return 0; /* promoted by an earlier try */
        return cx_err_set(err, CX_ENOENT, 0,
                          "s3 promote %s/%s -> %s: neither exists",
                          ((cx__s3 *)impl)->shown, src, dst);
    }
    /* An existing dst stays: same name, same bytes (content-addressed). */
    int rc = s3_put_if_absent(impl, dst, data, len, err);
    free(data);
    if (rc < 0) return -1;
    return s3_del(impl, src, err);
}

static int s3_list(void *impl, const char *prefix, cx_strlist_t *out,
                   cx_err_t *err) {
    cx__s3 *s = impl;
    cx_strlist_t acc = {0};
    char *token = NULL;
    size_t strip = *s->conf.prefix ? strlen(s->conf.prefix) + 1 : 0;
    int rc = 0, truncated = 1;
    while (rc == 0 && truncated) {
        s3_call_t c = {.method = "GET", .key = prefix};
        c.url = cx__s3_list_url(&s->conf, prefix, token, s->conf.list_page);
        free(token);
        token = NULL;
        if (!c.url) rc = cx_err_set(err, CX_ENOMEM, 0, "s3 store: out of memory");
        if (rc == 0) rc = s3_call(s, &c, err);
        if (rc == 0 && c.status != 200) rc = status_fail(s, &c, 0, err);
        if (rc == 0)
            rc = cx__s3_list_parse((const char *)c.resp.data, c.resp.len,
                                   strip, &acc, &truncated, &token, err);
        /* A truncated page without a token would restart the listing. */
        if (rc == 0 && truncated && !token)
            rc = cx_err_set(err, CX_EDECODE, 0,
                            "s3 list %s/%s: truncated page without a "
                            "continuation token",
                            s->shown, prefix);
        call_done(&c);
    }
    free(token);
    cx_strlist_sort(&acc);
    for (size_t i = 0; rc == 0 && i < acc.len; i++)
        if (cx_strlist_push(out, acc.items[i]) != 0)
            rc = cx_err_set(err, CX_ENOMEM, 0, "s3 store: out of memory");
    cx_strlist_free(&acc);
    return rc;
}

static int s3_delete_prefix(void *impl, const char *prefix, cx_err_t *err) {
    cx_strlist_t keys = {0};
    int rc = s3_list(impl, prefix, &keys, err);
    for (size_t i = 0; rc == 0 && i < keys.len; i++)
        rc = s3_del(impl, keys.items[i], err);
    cx_strlist_free(&keys);
    return rc;
}

static void s3_destroy(void *impl) {
    cx__s3 *s = impl;
    if (!s) return;
    for (size_t i = 0; i < s->nidle; i++) curl_easy_cleanup(s->idle[i]);
    pthread_mutex_destroy(&s->lock);
    cx__s3_conf_free(&s->conf);
    free(s->shown);
    free(s);
}

void *cx__store_s3_open(const char *uri, cx_err_t *err) {
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        cx_err_set(err, CX_ESTORE, 0, "s3 store: libcurl init: %s",
                   curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    /* CURLOPT_AWS_SIGV4 arrived in 7.75.0. */
    if (curl_version_info(CURLVERSION_NOW)->version_num < 0x074b00) {
        cx_err_set(err, CX_ESTORE, 0,
                   "s3 store: libcurl %s lacks SigV4 signing (need 7.75+)",
                   curl_version_info(CURLVERSION_NOW)->version);
        return NULL;
    }
    cx__s3 *s = calloc(1, sizeof *s);
    if (!s) {
        cx_err_set(err, CX_ENOMEM, 0, "s3 store: out of memory");
        return NULL;
    }
    if (cx__s3_conf_parse(uri, NULL, NULL, &s->conf, err) != 0) {
        free(s);
        return NULL;
    }
    snprintf(s->sigv4, sizeof s->sigv4, "aws:amz:%s:s3", s->conf.region);
    cx_buf_t b = {0};
    if (cx_buf_printf(&b, "s3://%s%s%s", s->conf.bucket,
                      *s->conf.prefix ? "/" : "", s->conf.prefix) != 0 ||
        cx_buf_append(&b, "", 1) != 0) {
        cx_buf_free(&b);
        cx__s3_conf_free(&s->conf);
        free(s);
        cx_err_set(err, CX_ENOMEM, 0, "s3 store: out of memory");
        return NULL;
    }
    s->shown = (char *)b.data;
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

const cx__store_ops_t cx__store_s3_ops = {
    .scheme = "s3",
    .put = s3_put,
    .put_if_absent = s3_put_if_absent,
    .get = s3_get,
    .exists = s3_exists,
    .promote = s3_promote,
    .del = s3_del,
    .delete_prefix = s3_delete_prefix,
    .list = s3_list,
    .local_path = NULL,
    .destroy = s3_destroy,
};
