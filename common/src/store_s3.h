/* Internal: the s3:// store backend (store_s3.c) and the I/O-free pieces it
 * is built from (store_s3_codec.c): URI and settings parsing, request URLs,
 * ListObjectsV2 and error-document parsing, retry classification. The
 * codec half never touches the network, so tests/test_store_s3.c covers it
 * without a server.
 *
 * URI: s3://BUCKET[/PREFIX][?endpoint=URL&region=R&addressing=path|virtual]
 * Settings not in the URI come from the environment:
 *   CASCADE_S3_ENDPOINT     http(s)://host[:port] (default: AWS,
 *                           https://s3.REGION.amazonaws.com)
 *   CASCADE_S3_REGION       else AWS_REGION, AWS_DEFAULT_REGION, us-east-1
 *   CASCADE_S3_ADDRESSING   path (default with an endpoint) or virtual
 *                           (default for AWS)
 *   CASCADE_S3_ACCESS_KEY_ID + CASCADE_S3_SECRET_ACCESS_KEY
 *                           [+ CASCADE_S3_SESSION_TOKEN], else the AWS_*
 *                           names; a pair is never mixed across the two
 *   CASCADE_S3_TIMEOUT_MS   per request (default 30000)
 *   CASCADE_S3_TRIES        attempts per operation for transient errors
 *                           (default 6; 1 disables retrying)
 *   CASCADE_S3_LIST_PAGE    keys per ListObjectsV2 page (default and most
 *                           1000; tests use small pages)
 * Keys and the prefix are limited to [A-Za-z0-9._-] components, so an
 * object path never needs URI encoding (libcurl 7.88 signs the path as
 * given). */
#ifndef CX_STORE_S3_H
#define CX_STORE_S3_H

#include <stddef.h>

#include "cascade/err.h"
#include "cascade/util.h"
#include "store_backend.h"

typedef struct cx__s3_conf {
    char *bucket;
    char *prefix;   /* "" or "a/b": no leading or trailing '/' */
    char *endpoint; /* scheme://host[:port][/path], no trailing '/' */
    char *region;
    char *access_key;
    char *secret_key;
    char *session_token; /* NULL when none */
    int path_style;      /* 1: ENDPOINT/BUCKET/KEY, 0: BUCKET.HOST/KEY */
    long timeout_ms;
    int tries;
    int list_page;
} cx__s3_conf_t;

/* Where settings come from: getenv, or a table in tests. */
typedef const char *(*cx__s3_env_fn)(const char *name, void *ctx);

/* Parses uri (scheme included) and the settings; fills c. On -1, err names
 * the bad part (CX_EINVAL) and c holds nothing to free. */
int cx__s3_conf_parse(const char *uri, cx__s3_env_fn env, void *ctx,
                      cx__s3_conf_t *c, cx_err_t *err);
void cx__s3_conf_free(cx__s3_conf_t *c);

/* RFC 3986 encoding of s (unreserved characters kept, the rest %XX in
 * upper case): what SigV4 wants in query strings. Caller frees; NULL when
 * out of memory. */
char *cx__s3_uri_encode(const char *s);

/* The URL of key (relative to the store's prefix). Caller frees. */
char *cx__s3_object_url(const cx__s3_conf_t *c, const char *key);
/* A ListObjectsV2 URL for every object under the store-relative prefix
 * (a '/' is added unless it is ""), after token (NULL for the first
 * page). Parameters are sorted and encoded, as SigV4 needs them. */
char *cx__s3_list_url(const cx__s3_conf_t *c, const char *prefix,
                      const char *token, int max_keys);
/* The full object key of a store key: prefix/key. Caller frees. */
char *cx__s3_full_key(const cx__s3_conf_t *c, const char *key);

/* Parses a ListObjectsV2 result: appends every <Key> (with the first strip
 * characters removed; keys shorter than that, or ending in '/', are
 * skipped) to keys; *truncated from <IsTruncated>; *next the
 * <NextContinuationToken> (malloc'd, NULL when none). -1 with CX_EDECODE
 * when xml is not a ListBucketResult. */
int cx__s3_list_parse(const char *xml, size_t len, size_t strip,
                      cx_strlist_t *keys, int *truncated, char **next,
                      cx_err_t *err);
/* <Code> and <Message> of an S3 error document, entity-decoded and cut to
 * the buffers; "" when absent. */
void cx__s3_error_parse(const char *xml, size_t len, char *code, size_t ncode,
                        char *msg, size_t nmsg);

/* Whether a failed request may succeed when repeated: curl_code is the
 * CURLcode of the transfer (0 when a response arrived), status the HTTP
 * status (0 when none). */
int cx__s3_transient(int curl_code, long status);

/* The s3:// backend. uri is the whole URI; settings come from getenv. */
extern const cx__store_ops_t cx__store_s3_ops;
void *cx__store_s3_open(const char *uri, cx_err_t *err);

#endif
