/* The s3:// backend without an S3 server: settings and URI parsing, URLs,
 * response parsing and the retry rule (store_s3_codec.c), then whole
 * requests against a scripted HTTP listener on loopback that records what
 * libcurl sent. Each recorded request's SigV4 signature is recomputed here
 * from the wire bytes, independently of libcurl, so signing mistakes
 * (unsorted or unencoded query, a body hash that is not the body's) fail
 * here before they meet a real server (tests/test_store_conformance.c). */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../src/store_s3.h"
#include "cascade/sha256.h"
#include "cascade/store.h"

/* ---- settings from a table instead of the process environment ---- */

static const char *const *env_table;

static const char *table_env(const char *name, void *ctx) {
    (void)ctx;
    for (const char *const *e = env_table; e && *e; e += 2)
        if (strcmp(e[0], name) == 0) return e[1];
    return NULL;
}

static const char *const creds[] = {"AWS_ACCESS_KEY_ID", "AK",
                                    "AWS_SECRET_ACCESS_KEY", "SK", NULL};

START_TEST(test_conf_defaults) {
    cx__s3_conf_t c;
    cx_err_t err = {0};
    env_table = creds;
    ck_assert_msg(cx__s3_conf_parse("s3://my-bucket", table_env, NULL, &c, &err) == 0,
                  "%s", err.msg);
    ck_assert_str_eq(c.bucket, "my-bucket");
    ck_assert_str_eq(c.prefix, "");
    ck_assert_str_eq(c.region, "us-east-1");
    ck_assert_str_eq(c.endpoint, "https://s3.us-east-1.amazonaws.com");
    ck_assert_int_eq(c.path_style, 0);
    ck_assert_str_eq(c.access_key, "AK");
    ck_assert_str_eq(c.secret_key, "SK");
    ck_assert_ptr_null(c.session_token);
    ck_assert_int_eq(c.tries, 6);
    ck_assert_int_eq(c.list_page, 1000);
    ck_assert_int_eq(c.timeout_ms, 30000);
    cx__s3_conf_free(&c);
    cx__s3_conf_free(&c); /* zeroed: harmless */
}
END_TEST

START_TEST(test_conf_env_and_uri) {
    static const char *const env[] = {
        "CASCADE_S3_ENDPOINT", "http://127.0.0.1:8333/",
        "CASCADE_S3_REGION", "eu-west-3",
        "AWS_REGION", "ignored-1",
        "CASCADE_S3_ACCESS_KEY_ID", "cak",
        "CASCADE_S3_SECRET_ACCESS_KEY", "csk",
        "CASCADE_S3_SESSION_TOKEN", "tok",
        "AWS_ACCESS_KEY_ID", "not-mixed",
        "CASCADE_S3_TRIES", "2",
        "CASCADE_S3_LIST_PAGE", "7",
        "CASCADE_S3_TIMEOUT_MS", "1500", NULL};
    cx__s3_conf_t c;
    cx_err_t err = {0};
    env_table = env;
    ck_assert_msg(cx__s3_conf_parse("s3://b.k-1/runs/a_b/", table_env, NULL,
                                    &c, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(c.bucket, "b.k-1");
    ck_assert_str_eq(c.prefix, "runs/a_b");
    ck_assert_str_eq(c.endpoint, "http://127.0.0.1:8333");
    ck_assert_str_eq(c.region, "eu-west-3");
    ck_assert_int_eq(c.path_style, 1);
    ck_assert_str_eq(c.access_key, "cak");
    ck_assert_str_eq(c.secret_key, "csk");
    ck_assert_str_eq(c.session_token, "tok");
    ck_assert_int_eq(c.tries, 2);
    ck_assert_int_eq(c.list_page, 7);
    ck_assert_int_eq(c.timeout_ms, 1500);
    cx__s3_conf_free(&c);
    /* URI options win over the environment. */
    ck_assert_msg(cx__s3_conf_parse("s3://bkt/p?region=ap-south-1&endpoint="
                                    "https://minio.local:9000&addressing=virtual",
                                    table_env, NULL, &c, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(c.region, "ap-south-1");
    ck_assert_str_eq(c.endpoint, "https://minio.local:9000");
    ck_assert_int_eq(c.path_style, 0);
    ck_assert_str_eq(c.prefix, "p");
    cx__s3_conf_free(&c);
}
END_TEST

START_TEST(test_conf_errors) {
    static const struct { const char *uri, *needle; } bad[] = {
        {"file:///x", "s3://"},
        {"s3://", "3 to 63"},
        {"s3://ab", "3 to 63"},
        {"s3://Upper", "a-z"},
        {"s3://-bucket", "begin and end"},
        {"s3://b_u", "a-z"},
        {"s3://bkt//p", "empty"},
        {"s3://bkt/a/../b", "'..'"},
        {"s3://bkt/a b", "outside"},
        {"s3://bkt/p?color=red", "unknown URI option"},
        {"s3://bkt/p?region", "no value"},
        {"s3://bkt?region=EU:1", "region"},
        {"s3://bkt?endpoint=ftp://h", "endpoint"},
        {"s3://bkt?endpoint=http://", "endpoint"},
        {"s3://bkt?addressing=dns", "neither path nor virtual"},
    };
    cx__s3_conf_t c;
    cx_err_t err = {0};
    env_table = creds;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_msg(cx__s3_conf_parse(bad[i].uri, table_env, NULL, &c, &err) == -1,
                      "%s parsed", bad[i].uri);
        ck_assert_int_eq(err.code, CX_EINVAL);
        ck_assert_msg(strstr(err.msg, bad[i].needle), "%s: %s", bad[i].uri, err.msg);
        ck_assert_ptr_null(c.bucket);
    }
    static const char *const nocreds[] = {"AWS_ACCESS_KEY_ID", "only-id", NULL};
    env_table = nocreds;
    ck_assert_int_eq(cx__s3_conf_parse("s3://bkt", table_env, NULL, &c, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "no credentials"));
    /* The CASCADE_S3_ pair is taken whole, never half with AWS_. */
    static const char *const half[] = {"CASCADE_S3_ACCESS_KEY_ID", "a",
                                       "AWS_SECRET_ACCESS_KEY", "s", NULL};
    env_table = half;
    ck_assert_int_eq(cx__s3_conf_parse("s3://bkt", table_env, NULL, &c, &err), -1);
    static const char *const inject[] = {"AWS_ACCESS_KEY_ID", "a",
                                         "AWS_SECRET_ACCESS_KEY", "s",
                                         "AWS_SESSION_TOKEN", "t\r\nX-Evil: 1", NULL};
    env_table = inject;
    ck_assert_int_eq(cx__s3_conf_parse("s3://bkt", table_env, NULL, &c, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "control character"));
    static const char *const badnum[] = {"AWS_ACCESS_KEY_ID", "a",
                                         "AWS_SECRET_ACCESS_KEY", "s",
                                         "CASCADE_S3_LIST_PAGE", "1001", NULL};
    env_table = badnum;
    ck_assert_int_eq(cx__s3_conf_parse("s3://bkt", table_env, NULL, &c, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "CASCADE_S3_LIST_PAGE"));
}
END_TEST

START_TEST(test_urls) {
    cx__s3_conf_t c;
    cx_err_t err = {0};
    env_table = creds;
    ck_assert_int_eq(cx__s3_conf_parse("s3://bkt/pre/fix?endpoint=http://h:9",
                                       table_env, NULL, &c, &err), 0);
    char *u = cx__s3_object_url(&c, "job/data/a.png");
    ck_assert_str_eq(u, "http://h:9/bkt/pre/fix/job/data/a.png");
    free(u);
    u = cx__s3_full_key(&c, "k");
    ck_assert_str_eq(u, "pre/fix/k");
    free(u);
    /* Parameters in name order, values RFC 3986-encoded ('/' too). */
    u = cx__s3_list_url(&c, "job/manifests", NULL, 1000);
    ck_assert_str_eq(u, "http://h:9/bkt/?list-type=2&max-keys=1000&prefix=pre%2Ffix%2Fjob%2Fmanifests%2F");
    free(u);
    u = cx__s3_list_url(&c, "", "a+b/c=d~", 5);
    ck_assert_str_eq(u, "http://h:9/bkt/?continuation-token=a%2Bb%2Fc%3Dd~&list-type=2&max-keys=5&prefix=pre%2Ffix%2F");
    free(u);
    cx__s3_conf_free(&c);
    /* Virtual-hosted style, no prefix, no list prefix. */
    ck_assert_int_eq(cx__s3_conf_parse("s3://bkt?region=eu-west-1", table_env,
                                       NULL, &c, &err), 0);
    u = cx__s3_object_url(&c, "k/v");
    ck_assert_str_eq(u, "https://bkt.s3.eu-west-1.amazonaws.com/k/v");
    free(u);
    u = cx__s3_list_url(&c, "", NULL, 1000);
    ck_assert_str_eq(u, "https://bkt.s3.eu-west-1.amazonaws.com/?list-type=2&max-keys=1000");
    free(u);
    u = cx__s3_full_key(&c, "k");
    ck_assert_str_eq(u, "k");
    free(u);
    cx__s3_conf_free(&c);
    u = cx__s3_uri_encode("AZaz09-._~ /:%\xc3\xa9");
    ck_assert_str_eq(u, "AZaz09-._~%20%2F%3A%25%C3%A9");
    free(u);
}
END_TEST

START_TEST(test_list_parse) {
    const char *xml =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>bkt</Name><Prefix>p/</Prefix><KeyCount>4</KeyCount>"
        "<IsTruncated>true</IsTruncated>"
        "<Contents><Key>p/a/1.png</Key><Size>3</Size></Contents>"
        "<Contents><Key>p/dir/</Key><Size>0</Size></Contents>"
        "<Contents><Key>p/b&amp;c&#47;d</Key></Contents>"
        "<Contents><Key>p/</Key></Contents>"
        "<NextContinuationToken>tok&amp;en/+=</NextContinuationToken>"
        "</ListBucketResult>";
    cx_strlist_t keys = {0};
    int trunc = 0;
    char *next = NULL;
    cx_err_t err = {0};
    ck_assert_int_eq(cx__s3_list_parse(xml, strlen(xml), 2, &keys, &trunc, &next, &err), 0);
    ck_assert_uint_eq(keys.len, 2); /* folder markers and the prefix itself skipped */
    ck_assert_str_eq(keys.items[0], "a/1.png");
    ck_assert_str_eq(keys.items[1], "b&c/d");
    ck_assert_int_eq(trunc, 1);
    ck_assert_str_eq(next, "tok&en/+=");
    free(next);
    cx_strlist_free(&keys);

    const char *last = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                       "<NextContinuationToken></NextContinuationToken></ListBucketResult>";
    ck_assert_int_eq(cx__s3_list_parse(last, strlen(last), 0, &keys, &trunc, &next, &err), 0);
    ck_assert_int_eq(trunc, 0);
    ck_assert_ptr_null(next);
    ck_assert_uint_eq(keys.len, 0);

    const char *notlist = "<Error><Code>AccessDenied</Code></Error>";
    ck_assert_int_eq(cx__s3_list_parse(notlist, strlen(notlist), 0, &keys, &trunc, &next, &err), -1);
    ck_assert_int_eq(err.code, CX_EDECODE);
    const char *cut = "<ListBucketResult><Contents><Key>a</Key>";
    ck_assert_int_eq(cx__s3_list_parse(cut, strlen(cut), 0, &keys, &trunc, &next, &err), -1);
    const char *nokey = "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>";
    ck_assert_int_eq(cx__s3_list_parse(nokey, strlen(nokey), 0, &keys, &trunc, &next, &err), -1);
    cx_strlist_free(&keys);
}
END_TEST

START_TEST(test_error_parse_and_transient) {
    const char *xml = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>"
                      "<Message>The specified key does not exist &lt;k&gt;.</Message>"
                      "<Key>k</Key></Error>";
    char code[32], msg[64];
    cx__s3_error_parse(xml, strlen(xml), code, sizeof code, msg, sizeof msg);
    ck_assert_str_eq(code, "NoSuchKey");
    ck_assert_str_eq(msg, "The specified key does not exist <k>.");
    cx__s3_error_parse(NULL, 0, code, sizeof code, msg, sizeof msg);
    ck_assert_str_eq(code, "");
    cx__s3_error_parse("junk", 4, code, 4, msg, sizeof msg);
    ck_assert_str_eq(code, "");

    ck_assert_int_eq(cx__s3_transient(0, 200), 0);
    ck_assert_int_eq(cx__s3_transient(0, 404), 0);
    ck_assert_int_eq(cx__s3_transient(0, 403), 0);
    ck_assert_int_eq(cx__s3_transient(0, 412), 0);
    ck_assert_int_eq(cx__s3_transient(0, 500), 1);
    ck_assert_int_eq(cx__s3_transient(0, 503), 1);
    ck_assert_int_eq(cx__s3_transient(0, 429), 1);
    ck_assert_int_eq(cx__s3_transient(0, 408), 1);
    ck_assert_int_eq(cx__s3_transient(7 /* COULDNT_CONNECT */, 0), 1);
    ck_assert_int_eq(cx__s3_transient(28 /* OPERATION_TIMEDOUT */, 0), 1);
    ck_assert_int_eq(cx__s3_transient(52 /* GOT_NOTHING */, 0), 1);
    ck_assert_int_eq(cx__s3_transient(3 /* URL_MALFORMAT */, 0), 0);
    ck_assert_int_eq(cx__s3_transient(60 /* PEER_FAILED_VERIFICATION */, 0), 0);
}
END_TEST

/* ---- a scripted HTTP listener ---- */

enum { MAX_REQ = 16 };

typedef struct reply {
    int status;
    const char *body;
} reply_t;

typedef struct fake {
    int fd, port;
    pthread_t thread;
    const reply_t *script; /* answers in order; status 0 ends it */
    char *req[MAX_REQ];    /* what arrived, whole (head and body) */
    size_t req_len[MAX_REQ];
    int nreq;
} fake_t;

static fake_t fk;

/* Reads one request: the head, then Content-Length bytes of body. */
static char *read_request(int c, size_t *out_len) {
    size_t cap = 1 << 16, len = 0, need = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        ssize_t r = read(c, buf + len, cap - len);
        if (r <= 0) break;
        len += (size_t)r;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end) continue;
        if (!need) {
            char *cl = strcasestr(buf, "\r\ncontent-length:");
            need = (size_t)(end + 4 - buf) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
        }
        if (len >= need) break;
    }
    buf[len] = '\0';
    *out_len = len;
    return buf;
}

static void *fake_serve(void *arg) {
    (void)arg;
    for (const reply_t *r = fk.script; r->status; r++) {
        int c = accept(fk.fd, NULL, NULL);
        if (c < 0) break;
        size_t n;
        char *req = read_request(c, &n);
        if (fk.nreq < MAX_REQ) {
            fk.req_len[fk.nreq] = n;
            fk.req[fk.nreq++] = req;
        } else {
            free(req);
        }
        char head[256];
        size_t blen = r->body ? strlen(r->body) : 0;
        int is_head = strncmp(req, "HEAD ", 5) == 0;
        snprintf(head, sizeof head,
                 "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nContent-Type: application/xml\r\n"
                 "Connection: close\r\n\r\n",
                 r->status, blen);
        ssize_t w = write(c, head, strlen(head));
        if (w >= 0 && blen && !is_head) w = write(c, r->body, blen);
        (void)w;
        close(c);
    }
    return NULL;
}

static cx_store_t *fake_start(const reply_t *script, int tries) {
    memset(&fk, 0, sizeof fk);
    fk.script = script;
    fk.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    ck_assert_int_eq(bind(fk.fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fk.fd, 8), 0);
    ck_assert_int_eq(getsockname(fk.fd, (struct sockaddr *)&a, &al), 0);
    fk.port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&fk.thread, NULL, fake_serve, NULL), 0);
    char uri[128], t[16];
    snprintf(uri, sizeof uri, "s3://bkt/pre?endpoint=http://127.0.0.1:%d&region=test-1", fk.port);
    snprintf(t, sizeof t, "%d", tries);
    setenv("CASCADE_S3_TRIES", t, 1);
    setenv("CASCADE_S3_LIST_PAGE", "2", 1);
    cx_err_t err = {0};
    cx_store_t *s = cx_store_open(uri, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    return s;
}

/* Waits for the script to finish, returns the number of requests seen. */
static int fake_stop(cx_store_t *s) {
    cx_store_destroy(s);
    pthread_join(fk.thread, NULL);
    close(fk.fd);
    return fk.nreq;
}

static void fake_free(void) {
    for (int i = 0; i < fk.nreq; i++) free(fk.req[i]);
}

/* ---- an independent SigV4 check of a recorded request ---- */

static void hmac(const uint8_t *key, size_t klen, const char *msg, size_t mlen,
                 uint8_t out[32]) {
    uint8_t k[64] = {0}, inner[32];
    if (klen > 64) cx_sha256(key, klen, k);
    else memcpy(k, key, klen);
    uint8_t *buf = malloc(64 + (mlen > 32 ? mlen : 32));
    for (int i = 0; i < 64; i++) buf[i] = k[i] ^ 0x36;
    memcpy(buf + 64, msg, mlen);
    cx_sha256(buf, 64 + mlen, inner);
    for (int i = 0; i < 64; i++) buf[i] = k[i] ^ 0x5c;
    memcpy(buf + 64, inner, 32);
    cx_sha256(buf, 64 + 32, out);
    free(buf);
}

/* The value of header name (lower case) in the request head, trimmed. */
static char *header(const char *req, const char *name) {
    const char *end = strstr(req, "\r\n\r\n");
    for (const char *p = strstr(req, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2, *colon = strchr(line, ':');
        if (!colon || colon > end) break;
        if ((size_t)(colon - line) == strlen(name) && strncasecmp(line, name, strlen(name)) == 0) {
            const char *v = colon + 1, *e = strstr(v, "\r\n");
            while (*v == ' ') v++;
            while (e > v && e[-1] == ' ') e--;
            return strndup(v, (size_t)(e - v));
        }
    }
    return NULL;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The canonical query as a server computes it: every parameter decoded and
 * re-encoded, sorted. */
static void canonical_query(const char *q, cx_buf_t *out) {
    char *copy = strdup(q), *parts[32], *save = NULL;
    int n = 0;
    for (char *t = strtok_r(copy, "&", &save); t && n < 32; t = strtok_r(NULL, "&", &save)) {
        ck_assert_msg(strchr(t, '='), "parameter '%s' has no '='", t);
        char dec[512];
        size_t o = 0;
        for (const char *c = t; *c && o < sizeof dec - 1; c++) {
            if (*c == '%' && c[1] && c[2]) {
                char h[3] = {c[1], c[2], 0};
                dec[o++] = (char)strtol(h, NULL, 16);
                c += 2;
            } else {
                dec[o++] = *c;
            }
        }
        dec[o] = '\0';
        char *eq = strchr(dec, '=');
        *eq = '\0';
        char *en = cx__s3_uri_encode(dec), *ev = cx__s3_uri_encode(eq + 1);
        size_t sz = strlen(en) + strlen(ev) + 2;
        parts[n] = malloc(sz);
        snprintf(parts[n++], sz, "%s=%s", en, ev);
        free(en);
        free(ev);
    }
    qsort(parts, (size_t)n, sizeof *parts, cmp_str);
    for (int i = 0; i < n; i++) {
        cx_buf_printf(out, "%s%s", i ? "&" : "", parts[i]);
        free(parts[i]);
    }
    free(copy);
}

/* Recomputes the request's signature with secret "SK" and compares it with
 * the Authorization header; also checks the body hash and signed headers. */
static void check_signature(int i, const char *method, int conditional) {
    const char *req = fk.req[i];
    const char *body = strstr(req, "\r\n\r\n") + 4;
    size_t blen = fk.req_len[i] - (size_t)(body - req);
    char hex[65];
    ck_assert_msg(strncmp(req, method, strlen(method)) == 0, "request %d: %.20s", i, req);

    char *auth = header(req, "authorization"), *date = header(req, "x-amz-date");
    char *sha = header(req, "x-amz-content-sha256");
    ck_assert_ptr_nonnull(auth);
    ck_assert_ptr_nonnull(date);
    ck_assert_ptr_nonnull(sha);
    cx_sha256_hex(body, blen, hex);
    ck_assert_str_eq(sha, hex); /* the body we sent is the body we signed */
    ck_assert_msg(strncmp(auth, "AWS4-HMAC-SHA256 Credential=AK/", 31) == 0, "%s", auth);
    char scope[128], signed_h[256], sig[65];
    ck_assert_int_eq(sscanf(auth, "AWS4-HMAC-SHA256 Credential=AK/%127[^,], "
                                  "SignedHeaders=%255[^,], Signature=%64s",
                            scope, signed_h, sig), 3);
    char want_scope[64];
    snprintf(want_scope, sizeof want_scope, "%.8s/test-1/s3/aws4_request", date);
    ck_assert_str_eq(scope, want_scope);
    ck_assert_ptr_nonnull(strstr(signed_h, "host"));
    ck_assert_ptr_nonnull(strstr(signed_h, "x-amz-content-sha256"));
    ck_assert_ptr_nonnull(strstr(signed_h, "x-amz-date"));
    if (conditional) ck_assert_ptr_nonnull(strstr(signed_h, "if-none-match"));

    /* Canonical request from the wire. */
    cx_buf_t cr = {0};
    const char *sp = strchr(req, ' ') + 1, *sp2 = strchr(sp, ' ');
    char *target = strndup(sp, (size_t)(sp2 - sp)), *q = strchr(target, '?');
    if (q) *q++ = '\0';
    cx_buf_printf(&cr, "%s\n%s\n", method, target);
    if (q) canonical_query(q, &cr);
    cx_buf_printf(&cr, "\n");
    char *names = strdup(signed_h), *save = NULL;
    for (char *n = strtok_r(names, ";", &save); n; n = strtok_r(NULL, ";", &save)) {
        char *v = header(req, n);
        ck_assert_msg(v != NULL, "signed header %s not sent", n);
        cx_buf_printf(&cr, "%s:%s\n", n, v);
        free(v);
    }
    cx_buf_printf(&cr, "\n%s\n%s", signed_h, sha);

    cx_buf_t sts = {0};
    cx_sha256_hex(cr.data, cr.len, hex);
    cx_buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s", date, scope, hex);
    uint8_t k[32];
    hmac((const uint8_t *)"AWS4SK", 6, date, 8, k);
    hmac(k, 32, "test-1", 6, k);
    hmac(k, 32, "s3", 2, k);
    hmac(k, 32, "aws4_request", 12, k);
    hmac(k, 32, (const char *)sts.data, sts.len, k);
    cx_hex(k, 32, hex);
    ck_assert_msg(strcmp(hex, sig) == 0, "request %d: signature %s, expected %s over\n%.*s",
                  i, sig, hex, (int)cr.len, (char *)cr.data);
    cx_buf_free(&cr);
    cx_buf_free(&sts);
    free(names);
    free(target);
    free(auth);
    free(date);
    free(sha);
}

static void set_creds(void) {
    setenv("CASCADE_S3_ACCESS_KEY_ID", "AK", 1);
    setenv("CASCADE_S3_SECRET_ACCESS_KEY", "SK", 1);
    unsetenv("CASCADE_S3_SESSION_TOKEN");
    unsetenv("CASCADE_S3_ENDPOINT");
}

START_TEST(test_put_get_signed) {
    static const reply_t script[] = {
        {200, NULL}, {200, "pixels\x01"}, {200, NULL}, {404, NULL}, {204, NULL}, {0, NULL}};
    set_creds();
    cx_store_t *s = fake_start(script, 1);
    cx_err_t err = {0};
    const char body[] = "pixels\x01";
    ck_assert_msg(cx_store_put(s, "job/staging/u/1/0.png", body, 7, &err) == 0, "%s", err.msg);
    void *d = NULL;
    size_t n = 0;
    ck_assert_msg(cx_store_get(s, "job/staging/u/1/0.png", &d, &n, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(n, 7);
    ck_assert_int_eq(memcmp(d, body, 8), 0); /* NUL-terminated */
    free(d);
    ck_assert_int_eq(cx_store_exists(s, "job/x", &err), 1);
    ck_assert_int_eq(cx_store_exists(s, "job/y", &err), 0);
    ck_assert_int_eq(cx_store_delete(s, "job/x", &err), 0);
    ck_assert_int_eq(fake_stop(s), 5);
    check_signature(0, "PUT", 0);
    ck_assert_ptr_nonnull(strstr(fk.req[0], "PUT /bkt/pre/job/staging/u/1/0.png HTTP/1.1"));
    ck_assert_ptr_null(strcasestr(fk.req[0], "\r\nExpect:"));
    check_signature(1, "GET", 0);
    check_signature(2, "HEAD", 0);
    check_signature(4, "DELETE", 0);
    fake_free();
}
END_TEST

START_TEST(test_put_if_absent_412) {
    static const reply_t script[] = {
        {200, NULL},
        {412, "<Error><Code>PreconditionFailed</Code><Message>At least one of the "
              "pre-conditions you specified did not hold</Message></Error>"},
        {0, NULL}};
    set_creds();
    cx_store_t *s = fake_start(script, 3);
    cx_err_t err = {0};
    ck_assert_int_eq(cx_store_put_if_absent(s, "j/manifests/u.json", "{}", 2, &err), 0);
    ck_assert_int_eq(cx_store_put_if_absent(s, "j/manifests/u.json", "{}", 2, &err), 1);
    ck_assert_int_eq(fake_stop(s), 2);
    check_signature(0, "PUT", 1);
    ck_assert_ptr_nonnull(strcasestr(fk.req[1], "\r\nIf-None-Match: *\r\n"));
    fake_free();
}
END_TEST

/* 503 SlowDown and 500 are retried; once an attempt may have written, a
 * later 412 is checked against the object's bytes. */
START_TEST(test_retry_transient) {
    static const reply_t script[] = {
        {503, "<Error><Code>SlowDown</Code></Error>"}, {200, NULL},
        {500, NULL}, {412, NULL}, {200, "mine"},
        {0, NULL}};
    set_creds();
    cx_store_t *s = fake_start(script, 3);
    cx_err_t err = {0};
    ck_assert_msg(cx_store_put(s, "a", "x", 1, &err) == 0, "%s", err.msg);
    ck_assert_msg(cx_store_put_if_absent(s, "m", "mine", 4, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(fake_stop(s), 5);
    check_signature(1, "PUT", 0);
    check_signature(4, "GET", 0);
    fake_free();
}
END_TEST

START_TEST(test_errors) {
    static const reply_t script[] = {
        {404, "<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>"},
        {403, "<Error><Code>SignatureDoesNotMatch</Code><Message>bad sig</Message></Error>"},
        {404, "<Error><Code>NoSuchBucket</Code></Error>"},
        {503, NULL}, {503, NULL},
        {0, NULL}};
    set_creds();
    cx_store_t *s = fake_start(script, 2);
    cx_err_t err = {0};
    void *d;
    size_t n;
    ck_assert_int_eq(cx_store_get(s, "k", &d, &n, &err), -1);
    ck_assert_int_eq(err.code, CX_ENOENT);
    ck_assert_msg(strstr(err.msg, "s3 GET s3://bkt/pre/k: HTTP 404 NoSuchKey: gone"), "%s", err.msg);
    ck_assert_int_eq(cx_store_put(s, "k", "v", 1, &err), -1);
    ck_assert_int_eq(err.code, CX_ESTORE);
    ck_assert_int_eq(err.retriable, 0);
    ck_assert_msg(strstr(err.msg, "403 SignatureDoesNotMatch: bad sig"), "%s", err.msg);
    cx_strlist_t l = {0};
    ck_assert_int_eq(cx_store_list(s, "j", &l, &err), -1);
    ck_assert_int_eq(err.code, CX_ESTORE); /* a missing bucket is not a missing key */
    ck_assert_int_eq(cx_store_delete(s, "k", &err), -1);
    ck_assert_int_eq(err.retriable, 1);
    ck_assert_msg(strstr(err.msg, "HTTP 503") && strstr(err.msg, "retries exhausted"), "%s", err.msg);
    ck_assert_int_eq(fake_stop(s), 5);
    fake_free();
}
END_TEST

START_TEST(test_list_pages_and_promote) {
    static const reply_t script[] = {
        {200, "<ListBucketResult><IsTruncated>true</IsTruncated>"
              "<Contents><Key>pre/j/data/b.png</Key></Contents>"
              "<Contents><Key>pre/j/data/a.png</Key></Contents>"
              "<NextContinuationToken>1/a+b=</NextContinuationToken></ListBucketResult>"},
        {200, "<ListBucketResult><IsTruncated>false</IsTruncated>"
              "<Contents><Key>pre/j/data/c.png</Key></Contents></ListBucketResult>"},
        /* promote: GET src, PUT-if-absent dst (exists already), DELETE src */
        {200, "bytes"}, {412, NULL}, {204, NULL},
        /* retried promote: src gone, dst there */
        {404, NULL}, {200, NULL},
        /* neither */
        {404, NULL}, {404, NULL},
        {0, NULL}};
    set_creds();
    cx_store_t *s = fake_start(script, 1);
    cx_err_t err = {0};
    cx_strlist_t l = {0};
    ck_assert_msg(cx_store_list(s, "j/data", &l, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(l.len, 3);
    ck_assert_str_eq(l.items[0], "j/data/a.png");
    ck_assert_str_eq(l.items[2], "j/data/c.png");
    cx_strlist_free(&l);
    ck_assert_msg(cx_store_promote(s, "j/st/0.png", "j/data/x.png", &err) == 0, "%s", err.msg);
    ck_assert_msg(cx_store_promote(s, "j/st/0.png", "j/data/x.png", &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cx_store_promote(s, "j/st/1.png", "j/data/y.png", &err), -1);
    ck_assert_int_eq(err.code, CX_ENOENT);
    ck_assert_int_eq(fake_stop(s), 9);
    check_signature(0, "GET", 0);
    check_signature(1, "GET", 0);
    ck_assert_ptr_nonnull(strstr(fk.req[0], "GET /bkt/?list-type=2&max-keys=2&prefix=pre%2Fj%2Fdata%2F "));
    ck_assert_ptr_nonnull(strstr(fk.req[1], "?continuation-token=1%2Fa%2Bb%3D&list-type=2"));
    check_signature(3, "PUT", 1);
    ck_assert_ptr_nonnull(strstr(fk.req[3], "PUT /bkt/pre/j/data/x.png "));
    ck_assert_ptr_nonnull(strstr(fk.req[4], "DELETE /bkt/pre/j/st/0.png "));
    ck_assert_ptr_nonnull(strstr(fk.req[6], "HEAD /bkt/pre/j/data/x.png "));
    fake_free();
}
END_TEST

START_TEST(test_connection_refused) {
    /* A port nobody listens on: bound, never listened, then closed. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    char uri[128];
    snprintf(uri, sizeof uri, "s3://bkt?endpoint=http://127.0.0.1:%d", ntohs(a.sin_port));
    set_creds();
    setenv("CASCADE_S3_TRIES", "3", 1);
    cx_err_t err = {0};
    cx_store_t *s = cx_store_open(uri, &err);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(cx_store_put(s, "k", "v", 1, &err), -1);
    ck_assert_int_eq(err.code, CX_ESTORE);
    ck_assert_int_eq(err.retriable, 1);
    ck_assert_msg(strstr(err.msg, "retries exhausted") && strstr(err.msg, "s3 PUT s3://bkt/k"),
                  "%s", err.msg);
    ck_assert_ptr_null(cx_store_local_path(s, "k"));
    cx_store_destroy(s);
    /* No credentials at all: refused at open, with the names to set. */
    unsetenv("CASCADE_S3_ACCESS_KEY_ID");
    unsetenv("AWS_ACCESS_KEY_ID");
    ck_assert_ptr_null(cx_store_open(uri, &err));
    ck_assert_int_eq(err.code, CX_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "CASCADE_S3_ACCESS_KEY_ID"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("store_s3");
    TCase *codec = tcase_create("codec");
    tcase_add_test(codec, test_conf_defaults);
    tcase_add_test(codec, test_conf_env_and_uri);
    tcase_add_test(codec, test_conf_errors);
    tcase_add_test(codec, test_urls);
    tcase_add_test(codec, test_list_parse);
    tcase_add_test(codec, test_error_parse_and_transient);
    suite_add_tcase(s, codec);
    TCase *wire = tcase_create("wire");
    tcase_set_timeout(wire, 60);
    tcase_add_test(wire, test_put_get_signed);
    tcase_add_test(wire, test_put_if_absent_412);
    tcase_add_test(wire, test_retry_transient);
    tcase_add_test(wire, test_errors);
    tcase_add_test(wire, test_list_pages_and_promote);
    tcase_add_test(wire, test_connection_refused);
    suite_add_tcase(s, wire);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
