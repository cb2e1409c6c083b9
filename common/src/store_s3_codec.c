/* The I/O-free half of the s3:// backend (see store_s3.h): settings, URLs,
 * response documents and the retry rule. */
#define _GNU_SOURCE /* memmem */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_s3.h"

#define S3_DEFAULT_TIMEOUT_MS 30000
#define S3_DEFAULT_TRIES 6

static const char *env_or(cx__s3_env_fn env, void *ctx, const char *name) {
    const char *v = env(name, ctx);
    return v && *v ? v : NULL;
}

static int is_lower_alnum(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

static int is_name_char(char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

/* S3 bucket naming rules (the subset every provider accepts). */
static int bucket_check(const char *b, size_t n, cx_err_t *err) {
    if (n < 3 || n > 63)
        return cx_err_set(err, CX_EINVAL, 0,
                          "s3 store: bucket name '%.*s' must have 3 to 63 "
                          "characters",
                          (int)n, b);
    for (size_t i = 0; i < n; i++)
        if (!is_lower_alnum(b[i]) && b[i] != '.' && b[i] != '-')
            return cx_err_set(err, CX_EINVAL, 0,
                              "s3 store: bucket name '%.*s' may hold only "
                              "a-z, 0-9, '.' and '-'",
                              (int)n, b);
    if (!is_lower_alnum(b[0]) || !is_lower_alnum(b[n - 1]))
        return cx_err_set(err, CX_EINVAL, 0,
                          "s3 store: bucket name '%.*s' must begin and end "
                          "with a letter or digit",
                          (int)n, b);
    return 0;
}

/* The prefix obeys the key rules of store.c, so that prefix/key is a path
 * that needs no encoding. */
static int prefix_check(const char *p, cx_err_t *err) {
    const char *c = p;
    while (*c) {
        size_t len = strcspn(c, "/");
        if (len == 0 || (len == 1 && c[0] == '.') ||
            (len == 2 && c[0] == '.' && c[1] == '.'))
            return cx_err_set(err, CX_EINVAL, 0,
                              "s3 store: prefix '%s' has an empty, '.' or "
                              "'..' component",
                              p);
        for (size_t i = 0; i < len; i++)
            if (!is_name_char(c[i]))
                return cx_err_set(err, CX_EINVAL, 0,
                                  "s3 store: prefix '%s' contains a "
                                  "character outside [A-Za-z0-9._-/]",
                                  p);
        c += len;
        if (*c == '/') c++;
    }
    return 0;
}

static int endpoint_check(const char *e, cx_err_t *err) {
    const char *host = NULL;
    if (strncmp(e, "http://", 7) == 0) host = e + 7;
    else if (strncmp(e, "https://", 8) == 0) host = e + 8;
    if (!host || !*host || *host == '/')
        return cx_err_set(err, CX_EINVAL, 0,
                          "s3 store: endpoint '%s' must be http://HOST[:PORT] "
                          "or https://HOST[:PORT]",
                          e);
    for (const char *c = e; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '?' || *c == '#')
            return cx_err_set(err, CX_EINVAL, 0,
                              "s3 store: endpoint '%s' contains a space, "
                              "control character, '?' or '#'",
                              e);
    return 0;
}

static int region_check(const char *r, cx_err_t *err) {
    if (!*r || strlen(r) > 64)
        return cx_err_set(err, CX_EINVAL, 0, "s3 store: bad region '%s'", r);
    for (const char *c = r; *c; c++)
        if (!is_lower_alnum(*c) && *c != '-')
            return cx_err_set(err, CX_EINVAL, 0,
                              "s3 store: region '%s' may hold only a-z, 0-9 "
                              "and '-'",
                              r);
    return 0;
}

/* Credentials travel in headers: a CR or LF would forge more of them. */
static int secret_check(const char *what, const char *v, cx_err_t *err) {
    for (const char *c = v; *c; c++)
        if ((unsigned char)*c < ' ' || *c == 0x7f)
            return cx_err_set(err, CX_EINVAL, 0,
                              "s3 store: %s contains a control character",
                              what);
    return 0;
}

static int long_setting(cx__s3_env_fn env, void *ctx, const char *name,
                        long def, long lo, long hi, long *out,
                        cx_err_t *err) {
    const char *v = env_or(env, ctx, name);
    *out = def;
    if (!v) return 0;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi)
        return cx_err_set(err, CX_EINVAL, 0,
                          "s3 store: %s='%s' is not a number in [%ld, %ld]",
                          name, v, lo, hi);
    *out = n;
    return 0;
}

/* URI options: name=value pairs after '?', separated by '&'. */
typedef struct uri_opts {
    char *endpoint, *region, *addressing;
} uri_opts_t;

static int parse_query(char *q, uri_opts_t *o, cx_err_t *err) {
    for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv;
         kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return cx_err_set(err, CX_EINVAL, 0,
                              "s3 store: URI option '%s' has no value", kv);
        *eq = '\0';
        if (strcmp(kv, "endpoint") == 0) o->endpoint = eq + 1;
        else if (strcmp(kv, "region") == 0) o->region = eq + 1;
        else if (strcmp(kv, "addressing") == 0) o->addressing = eq + 1;
        else
            return cx_err_set(err, CX_EINVAL, 0,
                              "s3 store: unknown URI option '%s' (endpoint, "
                              "region, addressing)",
                              kv);
    }
    return 0;
}

static int pick_credentials(cx__s3_env_fn env, void *ctx, cx__s3_conf_t *c,
                            cx_err_t *err) {
    const char *names[2][3] = {
        {"CASCADE_S3_ACCESS_KEY_ID", "CASCADE_S3_SECRET_ACCESS_KEY",
         "CASCADE_S3_SESSION_TOKEN"},
        {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}};
    const char *const *use = env_or(env, ctx, names[0][0]) ? names[0] : names[1];
    const char *ak = env_or(env, ctx, use[0]), *sk = env_or(env, ctx, use[1]),
               *tok = env_or(env, ctx, use[2]);
    if (!ak || !sk)
        return cx_err_set(err, CX_EINVAL, 0,
                          "s3 store: no credentials: set %s and %s (or "
                          "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                          names[0][0], names[0][1]);
    if (secret_check(use[0], ak, err) || secret_check(use[1], sk, err) ||
        (tok && secret_check(use[2], tok, err)))
        return -1;
    c->access_key = strdup(ak);
    c->secret_key = strdup(sk);
    c->session_token = tok ? strdup(tok) : NULL;
    if (!c->access_key || !c->secret_key || (tok && !c->session_token))
        return cx_err_set(err, CX_ENOMEM, 0, "s3 store: out of memory");
    return 0;
}

static int pick_endpoint(cx__s3_env_fn env, void *ctx, const uri_opts_t *o,
                         cx__s3_conf_t *c, cx_err_t *err) {
    const char *r = o->region ? o->region : env_or(env, ctx, "CASCADE_S3_REGION");
    if (!r) r = env_or(env, ctx, "AWS_REGION");
    if (!r) r = env_or(env, ctx, "AWS_DEFAULT_REGION");
    if (!r) r = "us-east-1";
    if (region_check(r, err) != 0) return -1;
    const char *e = o->endpoint ? o->endpoint : env_or(env, ctx, "CASCADE_S3_ENDPOINT");
    const char *a = o->addressing ? o->addressing : env_or(env, ctx, "CASCADE_S3_ADDRESSING");
    if (!a) c->path_style = e != NULL;
    else if (strcmp(a, "path") == 0) c->path_style = 1;
    else if (strcmp(a, "virtual") == 0) c->path_style = 0;
    else
        return cx_err_set(err, CX_EINVAL, 0,
                          "s3 store: addressing '%s' is neither path nor "
                          "virtual",
                          a);
    if (e && endpoint_check(e, err) != 0) return -1;
    size_t n = e ? strlen(e) : strlen(r) + 40;
    if (!(c->region = strdup(r)) || !(c->endpoint = malloc(n + 1)))
        return cx_err_set(err, CX_ENOMEM, 0, "s3 store: out of memory");
    if (e) memcpy(c->endpoint, e, n + 1);
    else snprintf(c->endpoint, n + 1, "https://s3.%s.amazonaws.com", r);
    n = strlen(c->endpoint);
    while (n > 0 && c->endpoint[n - 1] == '/') c->endpoint[--n] = '\0';
    return 0;
}

static const char *getenv_fn(const char *name, void *ctx) {
    (void)ctx;
    return getenv(name);
}

int cx__s3_conf_parse(const char *uri, cx__s3_env_fn env, void *ctx,
                      cx__s3_conf_t *c, cx_err_t *err) {
    memset(c, 0, sizeof *c);
    if (!env) env = getenv_fn;
    if (!uri || strncmp(uri, "s3://", 5) != 0)
        return cx_err_set(err, CX_EINVAL, 0,
                          "s3 store: URI '%s' does not start with s3://",
                          uri ? uri : "(null)");
    char *rest = strdup(uri + 5);
    if (!rest) return cx_err_set(err, CX_ENOMEM, 0, "s3 store: out of memory");
    uri_opts_t o = {0};
    char *q = strchr(rest, '?');
    if (q) *q++ = '\0';
    size_t blen = strcspn(rest, "/");
    char *prefix = rest + blen + (rest[blen] == '/');
    size_t plen = strlen(prefix);
    if (plen && prefix[plen - 1] == '/') prefix[--plen] = '\0';
    if (bucket_check(rest, blen, err) != 0 || prefix_check(prefix, err) != 0 ||
        (q && parse_query(q, &o, err) != 0) ||
        pick_endpoint(env, ctx, &o, c, err) != 0 ||
        pick_credentials(env, ctx, c, err) != 0 ||
        long_setting(env, ctx, "CASCADE_S3_TIMEOUT_MS", S3_DEFAULT_TIMEOUT_MS,
                     100, 3600000, &c->timeout_ms, err) != 0)
        goto fail;
    long tries, page;
    if (long_setting(env, ctx, "CASCADE_S3_TRIES", S3_DEFAULT_TRIES, 1, 100,
                     &tries, err) != 0 ||
        long_setting(env, ctx, "CASCADE_S3_LIST_PAGE", 1000, 1, 1000, &page,
                     err) != 0)
        goto fail;
    c->tries = (int)tries;
    c->list_page = (int)page;
    c->bucket = strndup(rest, blen);
    c->prefix = strdup(prefix);
    if (!c->bucket || !c->prefix) {
        cx_err_set(err, CX_ENOMEM, 0, "s3 store: out of memory");
        goto fail;
    }
    free(rest);
    return 0;
fail:
    free(rest);
    cx__s3_conf_free(c);
    return -1;
}

void cx__s3_conf_free(cx__s3_conf_t *c) {
    if (!c) return;
    free(c->bucket);
    free(c->prefix);
    free(c->endpoint);
    free(c->region);
    free(c->access_key);
    free(c->secret_key);
    free(c->session_token);
    memset(c, 0, sizeof *c);
}

char *cx__s3_uri_encode(const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *o = out;
    if (!out) return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
            (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
            *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* The bucket's base URL: ENDPOINT/BUCKET or SCHEME://BUCKET.HOST. */
static int bucket_url(const cx__s3_conf_t *c, cx_buf_t *b) {
    if (c->path_style) return cx_buf_printf(b, "%s/%s", c->endpoint, c->bucket);
    const char *host = strstr(c->endpoint, "://") + 3;
    return cx_buf_printf(b, "%.*s%s.%s", (int)(host - c->endpoint),
                         c->endpoint, c->bucket, host);
}

static char *buf_take(cx_buf_t *b, int rc) {
    if (rc != 0 || cx_buf_append(b, "", 1) != 0) {
        cx_buf_free(b);
        return NULL;
    }
    return (char *)b->data;
}

char *cx__s3_full_key(const cx__s3_conf_t *c, const char *key) {
    cx_buf_t b = {0};
    int rc = *c->prefix ? cx_buf_printf(&b, "%s/%s", c->prefix, key)
                        : cx_buf_printf(&b, "%s", key);
    return buf_take(&b, rc);
}

char *cx__s3_object_url(const cx__s3_conf_t *c, const char *key) {
    cx_buf_t b = {0};
    int rc = bucket_url(c, &b);
    if (rc == 0 && *c->prefix) rc = cx_buf_printf(&b, "/%s", c->prefix);
    if (rc == 0) rc = cx_buf_printf(&b, "/%s", key);
    return buf_take(&b, rc);
}

char *cx__s3_list_url(const cx__s3_conf_t *c, const char *prefix,
                      const char *token, int max_keys) {
    cx_buf_t full = {0}, b = {0};
    char *ep = NULL, *et = NULL;
    int rc = 0;
    /* The object-key prefix: store prefix and list prefix, '/'-ended. */
    if (*c->prefix) rc = cx_buf_printf(&full, "%s/", c->prefix);
    if (rc == 0 && *prefix) rc = cx_buf_printf(&full, "%s/", prefix);
    if (rc == 0) rc = cx_buf_append(&full, "", 1);
    if (rc != 0 || !(ep = cx__s3_uri_encode((char *)full.data)) ||
        (token && !(et = cx__s3_uri_encode(token)))) {
        rc = -1;
        goto out;
    }
    /* Sorted by name: libcurl 7.88 signs the query string as written. */
    rc = bucket_url(c, &b);
    if (rc == 0) rc = cx_buf_printf(&b, "/?");
    if (rc == 0 && et) rc = cx_buf_printf(&b, "continuation-token=%s&", et);
    if (rc == 0) rc = cx_buf_printf(&b, "list-type=2&max-keys=%d", max_keys);
    if (rc == 0 && *ep) rc = cx_buf_printf(&b, "&prefix=%s", ep);
out:
    free(ep);
    free(et);
    cx_buf_free(&full);
    return buf_take(&b, rc);
}

/* Copies text between <tag> and </tag> (from p, before end), decoding the
 * five XML entities and numeric references; *after points past it. NULL
 * when there is no such element. */
static char *xml_text(const char *p, const char *end, const char *tag,
                      const char **after) {
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *s = memmem(p, (size_t)(end - p), open, strlen(open));
    if (!s) return NULL;
    s += strlen(open);
    const char *e = memmem(s, (size_t)(end - s), close, strlen(close));
    if (!e) return NULL;
    if (after) *after = e + strlen(close);
    char *out = malloc((size_t)(e - s) + 1), *o = out;
    if (!out) return NULL;
    static const struct { const char *name; char ch; } ents[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'},
        {"&apos;", '\''}};
    while (s < e) {
        size_t i, k = sizeof ents / sizeof ents[0];
        for (i = 0; *s == '&' && i < k; i++)
            if ((size_t)(e - s) >= strlen(ents[i].name) &&
                memcmp(s, ents[i].name, strlen(ents[i].name)) == 0)
                break;
        if (*s == '&' && i < k) {
            *o++ = ents[i].ch;
            s += strlen(ents[i].name);
        } else if (*s == '&' && s + 2 < e && s[1] == '#') {
            char *stop;
            int hexa = s[2] == 'x' || s[2] == 'X';
            long v = strtol(s + 2 + hexa, &stop, hexa ? 16 : 10);
            if (stop < e && *stop == ';' && v > 0 && v < 128) {
                *o++ = (char)v;
                s = stop + 1;
            } else {
                *o++ = *s++;
            }
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

int cx__s3_list_parse(const char *xml, size_t len, size_t strip,
                      cx_strlist_t *keys, int *truncated, char **next,
                      cx_err_t *err) {
    const char *end = xml + len, *p = xml;
    *truncated = 0;
    *next = NULL;
    if (!memmem(xml, len, "<ListBucketResult", 17))
        return cx_err_set(err, CX_EDECODE, 0,
                          "s3 list: the response is not a ListBucketResult");
    for (;;) {
        const char *c = memmem(p, (size_t)(end - p), "<Contents>", 10);
        if (!c) break;
        const char *ce = memmem(c, (size_t)(end - c), "</Contents>", 11);
        if (!ce)
            return cx_err_set(err, CX_EDECODE, 0,
                              "s3 list: unterminated <Contents>");
        char *k = xml_text(c, ce, "Key", NULL);
        if (!k)
            return cx_err_set(err, CX_EDECODE, 0,
                              "s3 list: <Contents> without a <Key>");
        size_t kl = strlen(k);
        int rc = 0;
        if (kl > strip && k[kl - 1] != '/') rc = cx_strlist_push(keys, k + strip);
        free(k);
        if (rc != 0) return cx_err_set(err, CX_ENOMEM, 0, "s3 list: out of memory");
        p = ce + 11;
    }
    char *t = xml_text(xml, end, "IsTruncated", NULL);
    *truncated = t && strcmp(t, "true") == 0;
    free(t);
    *next = xml_text(xml, end, "NextContinuationToken", NULL);
    if (*next && !**next) {
        free(*next);
        *next = NULL;
    }
    return 0;
}

void cx__s3_error_parse(const char *xml, size_t len, char *code, size_t ncode,
                        char *msg, size_t nmsg) {
    char *c = xml ? xml_text(xml, xml + len, "Code", NULL) : NULL;
    char *m = xml ? xml_text(xml, xml + len, "Message", NULL) : NULL;
    snprintf(code, ncode, "%s", c ? c : "");
    snprintf(msg, nmsg, "%s", m ? m : "");
    free(c);
    free(m);
}

int cx__s3_transient(int curl_code, long status) {
    switch (curl_code) {
    case CURLE_OK:
        break;
    case CURLE_COULDNT_RESOLVE_HOST: /* DNS restarting in a cluster */
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
    /* 408 timeout, 429 and 503 SlowDown, 500/502/504 a server in trouble. */
    return status == 408 || status == 429 || status >= 500;
}
