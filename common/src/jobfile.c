/* Job files (YAML or JSON) to JobSpec.
 *
 * Both syntaxes are first turned into one small tree (jf_node) that keeps
 * what the spec builder needs to be strict: whether a number was written as
 * an integer, its exact value, and where it came from. The builder then walks
 * the tree with a path ("classes[2].count") for every message. */
#include "cascade/jobfile.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <yaml.h>

#define JF_MAX_DEPTH 32
#define JF_MAX_NODES 100000
#define JF_MAX_EXACT 9007199254740992.0 /* 2^53: doubles are exact below */

typedef enum { JF_NULL, JF_BOOL, JF_INT, JF_FLOAT, JF_STR, JF_MAP, JF_SEQ } jf_kind;

typedef struct jf_node {
    jf_kind kind;
    char *text;     /* scalar as written (YAML) or string value */
    int neg;        /* JF_INT: negative */
    uint64_t mag;   /* JF_INT: magnitude */
    int big;        /* JF_INT: magnitude beyond 2^53 or exact range */
    double d;       /* JF_INT / JF_FLOAT value */
    int b;          /* JF_BOOL */
    size_t n;
    char **keys;    /* JF_MAP */
    struct jf_node **items;
} jf_node;

typedef struct {
    size_t nodes;
    cx_err_t *err;
} jf_ctx;

static void node_free(jf_node *n) {
    if (!n) return;
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys) free(n->keys[i]);
        node_free(n->items[i]);
    }
    free(n->keys);
    free(n->items);
    free(n->text);
    free(n);
}

static jf_node *node_new(jf_ctx *c, jf_kind k) {
    if (++c->nodes > JF_MAX_NODES) {
        cx_err_set(c->err, CX_EINVAL, 0,
                   "job file has more than %d values", JF_MAX_NODES);
        return NULL;
    }
    jf_node *n = calloc(1, sizeof *n);
    if (!n) cx_err_set(c->err, CX_ENOMEM, 0, "job file: out of memory");
    else n->kind = k;
    return n;
}

static int node_add(jf_ctx *c, jf_node *parent, const char *key, jf_node *child) {
    if (key)
        for (size_t i = 0; i < parent->n; i++)
            if (strcmp(parent->keys[i], key) == 0)
                return cx_err_set(c->err, CX_EINVAL, 0,
                                  "duplicate key '%s'", key);
    jf_node **items = realloc(parent->items, (parent->n + 1) * sizeof *items);
    if (!items) goto oom;
    parent->items = items;
    if (key) {
        char **keys = realloc(parent->keys, (parent->n + 1) * sizeof *keys);
        if (!keys) goto oom;
        parent->keys = keys;
        if (!(keys[parent->n] = strdup(key))) goto oom;
    }
    items[parent->n++] = child;
    return 0;
oom:
    return cx_err_set(c->err, CX_ENOMEM, 0, "job file: out of memory");
}

/* Sets an integer node from its decimal text; exact for any uint64. */
static int set_int_text(jf_node *n, const char *s) {
    const char *p = s;
    n->kind = JF_INT;
    if (*p == '+' || *p == '-') n->neg = *p++ == '-';
    errno = 0;
    unsigned long long v = strtoull(p, NULL, 10);
    n->mag = v;
    n->big = errno == ERANGE;
    n->d = n->neg ? -(double)v : (double)v;
    return 0;
}

/* YAML 1.2 core schema for plain scalars. */
static int resolve_plain(jf_node *n, const char *s) {
    size_t len = strlen(s);
    if (len == 0 || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0) {
        n->kind = JF_NULL;
        return 0;
    }
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0 ||
        strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0) {
        n->kind = JF_BOOL;
        n->b = s[0] == 't' || s[0] == 'T';
        return 0;
    }
    const char *p = s + (s[0] == '+' || s[0] == '-');
    size_t digits = strspn(p, "0123456789");
    if (digits > 0 && p[digits] == '\0') return set_int_text(n, s);
    char *end = NULL;
    double d = strtod(s, &end);
    int hex = strchr(s, 'x') || strchr(s, 'X');
    if (end && *end == '\0' && !hex && (isdigit((unsigned char)*p) || *p == '.')) {
        n->kind = JF_FLOAT;
        n->d = d;
        return 0;
    }
    if (strcasecmp(p, ".inf") == 0 || strcasecmp(s, ".nan") == 0) {
        n->kind = JF_FLOAT;
        n->d = strcasecmp(s, ".nan") == 0 ? NAN : (s[0] == '-' ? -INFINITY : INFINITY);
        return 0;
    }
    n->kind = JF_STR;
    return 0;
}

static jf_node *from_yaml(jf_ctx *c, yaml_document_t *doc, yaml_node_t *y, int depth) {
    if (depth > JF_MAX_DEPTH) {
        cx_err_set(c->err, CX_EINVAL, 0, "job file nests deeper than %d", JF_MAX_DEPTH);
        return NULL;
    }
    jf_node *n = NULL;
    switch (y->type) {
    case YAML_SCALAR_NODE: {
        if (!(n = node_new(c, JF_STR))) return NULL;
        n->text = strndup((const char *)y->data.scalar.value, y->data.scalar.length);
        if (!n->text) goto oom;
        if (strlen(n->text) != y->data.scalar.length) {
            cx_err_set(c->err, CX_EINVAL, 0, "line %lu: a value contains a NUL character",
                       (unsigned long)y->start_mark.line + 1);
            goto fail;
        }
        if (y->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) resolve_plain(n, n->text);
        return n;
    }
    case YAML_SEQUENCE_NODE:
        if (!(n = node_new(c, JF_SEQ))) return NULL;
        for (yaml_node_item_t *it = y->data.sequence.items.start;
             it < y->data.sequence.items.top; it++) {
            jf_node *ch = from_yaml(c, doc, yaml_document_get_node(doc, *it), depth + 1);
            if (!ch || node_add(c, n, NULL, ch) != 0) {
                node_free(ch);
                goto fail;
            }
        }
        return n;
    case YAML_MAPPING_NODE:
        if (!(n = node_new(c, JF_MAP))) return NULL;
        for (yaml_node_pair_t *pr = y->data.mapping.pairs.start;
             pr < y->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = yaml_document_get_node(doc, pr->key);
            if (!k || k->type != YAML_SCALAR_NODE) {
                cx_err_set(c->err, CX_EINVAL, 0, "line %lu: mapping keys must be plain names",
                           (unsigned long)y->start_mark.line + 1);
                goto fail;
            }
            char *key = strndup((const char *)k->data.scalar.value, k->data.scalar.length);
            if (!key) goto oom;
            jf_node *ch = from_yaml(c, doc, yaml_document_get_node(doc, pr->value), depth + 1);
            int rc = ch ? node_add(c, n, key, ch) : -1;
            free(key);
            if (rc != 0) {
                node_free(ch);
                goto fail;
            }
        }
        return n;
    default:
        cx_err_set(c->err, CX_EINVAL, 0, "job file: empty YAML node");
        return NULL;
    }
oom:
    cx_err_set(c->err, CX_ENOMEM, 0, "job file: out of memory");
fail:
    node_free(n);
    return NULL;
}

static jf_node *parse_yaml(jf_ctx *c, const char *text, size_t len) {
    yaml_parser_t p;
    yaml_document_t doc;
    jf_node *root = NULL;
    if (!yaml_parser_initialize(&p)) {
        cx_err_set(c->err, CX_ENOMEM, 0, "job file: out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        cx_err_set(c->err, CX_EINVAL, 0, "YAML syntax error at line %lu column %lu: %s%s%s",
                   (unsigned long)p.problem_mark.line + 1,
                   (unsigned long)p.problem_mark.column + 1,
                   p.problem ? p.problem : "unknown problem",
                   p.context ? " " : "", p.context ? p.context : "");
        yaml_parser_delete(&p);
        return NULL;
    }
    yaml_node_t *top = yaml_document_get_root_node(&doc);
    if (!top)
        cx_err_set(c->err, CX_EINVAL, 0, "job file is empty");
    else
        root = from_yaml(c, &doc, top, 0);
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    return root;
}

static jf_node *from_json(jf_ctx *c, const cJSON *j, int depth) {
    if (depth > JF_MAX_DEPTH) {
        cx_err_set(c->err, CX_EINVAL, 0, "job file nests deeper than %d", JF_MAX_DEPTH);
        return NULL;
    }
    jf_node *n = NULL;
    if (cJSON_IsNull(j)) return node_new(c, JF_NULL);
    if (cJSON_IsBool(j)) {
        if ((n = node_new(c, JF_BOOL))) n->b = cJSON_IsTrue(j);
        return n;
    }
    if (cJSON_IsNumber(j)) {
        if (!(n = node_new(c, JF_FLOAT))) return NULL;
        double d = j->valuedouble;
        n->d = d;
        /* JSON has one number type: an integral value is an integer. */
        if (isfinite(d) && d == floor(d)) {
            n->kind = JF_INT;
            n->neg = d < 0;
            double m = fabs(d);
            n->big = m > JF_MAX_EXACT;
            n->mag = n->big ? UINT64_MAX : (uint64_t)m;
        }
        return n;
    }
    if (cJSON_IsString(j)) {
        if (!(n = node_new(c, JF_STR))) return NULL;
        if (!(n->text = strdup(j->valuestring))) goto oom;
        return n;
    }
    int map = cJSON_IsObject(j);
    if (!map && !cJSON_IsArray(j)) {
        cx_err_set(c->err, CX_EINVAL, 0, "job file: unsupported JSON value");
        return NULL;
    }
    if (!(n = node_new(c, map ? JF_MAP : JF_SEQ))) return NULL;
    for (const cJSON *ch = j->child; ch; ch = ch->next) {
        jf_node *cn = from_json(c, ch, depth + 1);
        if (!cn || node_add(c, n, map ? ch->string : NULL, cn) != 0) {
            node_free(cn);
            goto fail;
        }
    }
    return n;
oom:
    cx_err_set(c->err, CX_ENOMEM, 0, "job file: out of memory");
fail:
    node_free(n);
    return NULL;
}

static jf_node *parse_json(jf_ctx *c, const char *text, size_t len) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        const char *ep = cJSON_GetErrorPtr();
        if (!end && ep >= text && ep <= text + len) off = (size_t)(ep - text);
        cx_err_set(c->err, CX_EINVAL, 0, "JSON syntax error near offset %zu", off);
        return NULL;
    }
    jf_node *n = from_json(c, j, 0);
    cJSON_Delete(j);
    return n;
}

/* ---- building the JobSpec ---------------------------------------------- */

static const char *kind_name(jf_kind k) {
    static const char *names[] = {"null", "a boolean", "an integer", "a number",
                                  "a string", "a mapping", "a list"};
    return names[k];
}

static int type_err(cx_err_t *err, const char *path, const char *want, const jf_node *n) {
    if ((n->kind == JF_INT || n->kind == JF_FLOAT) && n->text)
        return cx_err_set(err, CX_EINVAL, 0, "%s: must be %s, not %s", path, want, n->text);
    if (n->kind == JF_INT || n->kind == JF_FLOAT)
        return cx_err_set(err, CX_EINVAL, 0, "%s: must be %s, not %.17g", path, want, n->d);
    return cx_err_set(err, CX_EINVAL, 0, "%s: must be %s, not %s", path, want,
                      kind_name(n->kind));
}

static int get_str(const jf_node *n, const char *path, char **out, cx_err_t *err) {
    /* YAML writes `job_id: 2024` without quotes; its text is the string. */
    int ok = n->kind == JF_STR ||
             ((n->kind == JF_INT || n->kind == JF_FLOAT) && n->text);
    if (!ok) return type_err(err, path, "a string", n);
    char *s = strdup(n->text);
    if (!s) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    if (*out && *out != protobuf_c_empty_string) free(*out);
    *out = s;
    return 0;
}

/* Non-negative integer at most max (and at most 2^53 unless exact text). */
static int get_uint(const jf_node *n, const char *path, uint64_t max, int positive,
                    uint64_t *out, cx_err_t *err) {
    const char *want = positive ? "a positive integer" : "a non-negative integer";
    if (n->kind != JF_INT) return type_err(err, path, want, n);
    if (n->neg && n->mag != 0) return type_err(err, path, want, n);
    if (n->big || n->mag > max || (!n->text && (double)n->mag > JF_MAX_EXACT)) {
        if (n->text)
            return cx_err_set(err, CX_EINVAL, 0, "%s: %s exceeds %llu", path, n->text,
                              (unsigned long long)max);
        return cx_err_set(err, CX_EINVAL, 0, "%s: %.17g exceeds %llu", path, n->d,
                          (unsigned long long)max);
    }
    if (positive && n->mag == 0) return type_err(err, path, want, n);
    *out = n->mag;
    return 0;
}

static int get_u32(const jf_node *n, const char *path, uint32_t *out, cx_err_t *err) {
    uint64_t v;
    if (get_uint(n, path, UINT32_MAX, 0, &v, err) != 0) return -1;
    *out = (uint32_t)v;
    return 0;
}

static int get_int(const jf_node *n, const char *path, int64_t min, int64_t max,
                   int64_t *out, cx_err_t *err) {
    if (n->kind != JF_INT) return type_err(err, path, "an integer", n);
    int64_t v;
    if (n->big || n->mag > (uint64_t)INT64_MAX) goto range;
    v = n->neg ? -(int64_t)n->mag : (int64_t)n->mag;
    if (v < min || v > max) goto range;
    *out = v;
    return 0;
range:
    return cx_err_set(err, CX_EINVAL, 0, "%s: %s is outside [%lld, %lld]", path,
                      n->text ? n->text : "value", (long long)min, (long long)max);
}

static int get_num(const jf_node *n, const char *path, double *out, cx_err_t *err) {
    if (n->kind != JF_INT && n->kind != JF_FLOAT) return type_err(err, path, "a number", n);
    if (!isfinite(n->d)) return cx_err_set(err, CX_EINVAL, 0, "%s: must be a finite number", path);
    *out = n->d;
    return 0;
}

static int need_map(const jf_node *n, const char *path, cx_err_t *err) {
    return n->kind == JF_MAP ? 0 : type_err(err, path, "a mapping", n);
}

static int unknown_key(cx_err_t *err, const char *path, const char *key, const char *known) {
    return cx_err_set(err, CX_EINVAL, 0, "%s%s%s: unknown key (known: %s)", path,
                      *path ? "." : "", key, known);
}

/* RFC 3339 date-time ("2026-12-01T18:00:00Z", "...+02:00", fractions). */
static int parse_rfc3339(const char *s, int64_t *ms) {
    int Y, M, D, h, m, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &Y, &M, &D, &n) != 3 || n != 10) return -1;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return -1;
    const char *p = s + 11;
    if (sscanf(p, "%2d:%2d:%2d%n", &h, &m, &sec, &n) != 3 || n != 8) return -1;
    p += 8;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 3) frac = frac * 10 + (*p - '0');
        if (digits == 0) return -1;
        for (; digits < 3; digits++) frac *= 10;
    }
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 || oh > 23 || om > 59)
            return -1;
        off = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return -1;
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D,
                    .tm_hour = h, .tm_min = m, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (tm.tm_mday != D) return -1; /* e.g. February 30 */
    *ms = ((int64_t)t - (int64_t)off * 60) * 1000 + frac;
    return 0;
}

static int build_class(const jf_node *n, size_t idx, Cascade__V1__ClassTarget *ct, cx_err_t *err) {
    char path[64], f[96];
    snprintf(path, sizeof path, "classes[%zu]", idx);
    if (need_map(n, path, err)) return -1;
    for (size_t i = 0; i < n->n; i++) {
        const char *k = n->keys[i];
        const jf_node *v = n->items[i];
        snprintf(f, sizeof f, "%s.%s", path, k);
        int rc;
        if (strcmp(k, "name") == 0) rc = get_str(v, f, &ct->name, err);
        else if (strcmp(k, "condition") == 0) rc = get_str(v, f, &ct->condition, err);
        else if (strcmp(k, "count") == 0) rc = get_uint(v, f, (uint64_t)JF_MAX_EXACT, 1, &ct->count, err);
        else if (strcmp(k, "proportion") == 0) rc = get_num(v, f, &ct->proportion, err);
        else rc = unknown_key(err, path, k, "name, count, proportion, condition");
        if (rc) return -1;
    }
    return 0;
}

static const char *const gen_keys =
    "checkpoint, sampler, steps, guidance_scale, seed, width, height, bit_depth, eta, conditioning";

static int build_generation(const jf_node *n, Cascade__V1__GenerationParams *g, cx_err_t *err) {
    if (need_map(n, "generation", err)) return -1;
    char f[96];
    for (size_t i = 0; i < n->n; i++) {
        const char *k = n->keys[i];
        const jf_node *v = n->items[i];
        snprintf(f, sizeof f, "generation.%s", k);
        int rc = 0;
        if (strcmp(k, "checkpoint") == 0) {
            rc = get_str(v, f, &g->checkpoint, err);
        } else if (strcmp(k, "sampler") == 0) {
            if (v->kind != JF_STR) return type_err(err, f, "ddim, euler or heun", v);
            if (strcasecmp(v->text, "ddim") == 0) g->sampler = CASCADE__V1__SAMPLER__SAMPLER_DDIM;
            else if (strcasecmp(v->text, "euler") == 0) g->sampler = CASCADE__V1__SAMPLER__SAMPLER_EULER;
            else if (strcasecmp(v->text, "heun") == 0) g->sampler = CASCADE__V1__SAMPLER__SAMPLER_HEUN;
            else return cx_err_set(err, CX_EINVAL, 0, "%s: '%s' is not ddim, euler or heun", f, v->text);
        } else if (strcmp(k, "steps") == 0) {
            rc = get_u32(v, f, &g->steps, err);
        } else if (strcmp(k, "guidance_scale") == 0) {
            rc = get_num(v, f, &g->guidance_scale, err);
        } else if (strcmp(k, "seed") == 0) {
            rc = get_uint(v, f, UINT64_MAX, 0, &g->seed_base, err);
        } else if (strcmp(k, "width") == 0) {
            rc = get_u32(v, f, &g->width, err);
        } else if (strcmp(k, "height") == 0) {
            rc = get_u32(v, f, &g->height, err);
        } else if (strcmp(k, "bit_depth") == 0) {
            rc = get_u32(v, f, &g->bit_depth, err);
        } else if (strcmp(k, "eta") == 0) {
            rc = get_num(v, f, &g->eta, err);
        } else if (strcmp(k, "conditioning") == 0) {
            if (need_map(v, f, err)) return -1;
            g->conditioning = calloc(v->n ? v->n : 1, sizeof *g->conditioning);
            if (!g->conditioning) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
            for (size_t j = 0; j < v->n; j++) {
                Cascade__V1__KeyValue *kv = malloc(sizeof *kv);
                if (!kv) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
                cascade__v1__key_value__init(kv);
                g->conditioning[g->n_conditioning++] = kv;
                char f2[160];
                snprintf(f2, sizeof f2, "%s.%s", f, v->keys[j]);
                if (!(kv->key = strdup(v->keys[j])))
                    return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
                if (get_str(v->items[j], f2, &kv->value, err)) return -1;
            }
        } else {
            rc = unknown_key(err, "generation", k, gen_keys);
        }
        if (rc) return -1;
    }
    return 0;
}

static int build_validation(const jf_node *n, Cascade__V1__ValidationCriteria *vc, cx_err_t *err) {
    if (need_map(n, "validation", err)) return -1;
    char f[96];
    for (size_t i = 0; i < n->n; i++) {
        const char *k = n->keys[i];
        const jf_node *v = n->items[i];
        snprintf(f, sizeof f, "validation.%s", k);
        int rc = 0;
        if (strcmp(k, "gate_profile") == 0) {
            rc = get_str(v, f, &vc->gate_profile, err);
        } else if (strcmp(k, "privacy_budget") == 0) {
            rc = get_num(v, f, &vc->privacy_budget, err);
        } else if (strcmp(k, "max_frechet_distance") == 0) {
            rc = get_num(v, f, &vc->max_frechet_distance, err);
        } else if (strcmp(k, "thresholds") == 0) {
            if (need_map(v, f, err)) return -1;
            vc->thresholds = calloc(v->n ? v->n : 1, sizeof *vc->thresholds);
            if (!vc->thresholds) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
            for (size_t j = 0; j < v->n; j++) {
                Cascade__V1__Threshold *t = malloc(sizeof *t);
                if (!t) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
                cascade__v1__threshold__init(t);
                vc->thresholds[vc->n_thresholds++] = t;
                char f2[160];
                snprintf(f2, sizeof f2, "%s.%s", f, v->keys[j]);
                if (!(t->gate = strdup(v->keys[j])))
                    return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
                if (get_num(v->items[j], f2, &t->value, err)) return -1;
            }
        } else {
            rc = unknown_key(err, "validation", k,
                             "gate_profile, thresholds, privacy_budget, max_frechet_distance");
        }
        if (rc) return -1;
    }
    return 0;
}

static int build_spec(const jf_node *root, cx_jobspec_t *s, cx_err_t *err) {
    if (root->kind != JF_MAP) return type_err(err, "job file", "a mapping", root);
    for (size_t i = 0; i < root->n; i++) {
        const char *k = root->keys[i];
        const jf_node *v = root->items[i];
        int rc = 0;
        if (strcmp(k, "job_id") == 0) {
            rc = get_str(v, k, &s->job_id, err);
        } else if (strcmp(k, "tenant") == 0) {
            rc = get_str(v, k, &s->tenant, err);
        } else if (strcmp(k, "priority") == 0) {
            int64_t p = 0;
            rc = get_int(v, k, INT32_MIN, INT32_MAX, &p, err);
            s->priority = (int32_t)p;
        } else if (strcmp(k, "deadline") == 0) {
            if (v->kind == JF_STR) {
                if (parse_rfc3339(v->text, &s->deadline_unix_ms) != 0)
                    return cx_err_set(err, CX_EINVAL, 0,
                                      "deadline: '%s' is not an RFC 3339 time "
                                      "(2026-12-01T18:00:00Z) or Unix milliseconds",
                                      v->text);
            } else {
                uint64_t ms = 0;
                rc = get_uint(v, k, (uint64_t)JF_MAX_EXACT, 0, &ms, err);
                s->deadline_unix_ms = (int64_t)ms;
            }
        } else if (strcmp(k, "output") == 0) {
            rc = get_str(v, k, &s->output_uri, err);
        } else if (strcmp(k, "total") == 0) {
            rc = get_uint(v, k, (uint64_t)JF_MAX_EXACT, 0, &s->total_count, err);
        } else if (strcmp(k, "unit_size") == 0) {
            rc = get_u32(v, k, &s->unit_size, err);
        } else if (strcmp(k, "classes") == 0) {
            if (v->kind != JF_SEQ) return type_err(err, k, "a list", v);
            s->classes = calloc(v->n ? v->n : 1, sizeof *s->classes);
            if (!s->classes) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
            for (size_t j = 0; j < v->n; j++) {
                Cascade__V1__ClassTarget *ct = malloc(sizeof *ct);
                if (!ct) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
                cascade__v1__class_target__init(ct);
                s->classes[s->n_classes++] = ct;
                if (build_class(v->items[j], j, ct, err)) return -1;
            }
        } else if (strcmp(k, "generation") == 0) {
            if (!s->generation) {
                if (!(s->generation = malloc(sizeof *s->generation)))
                    return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
                cascade__v1__generation_params__init(s->generation);
            }
            rc = build_generation(v, s->generation, err);
        } else if (strcmp(k, "validation") == 0) {
            if (!s->validation) {
                if (!(s->validation = malloc(sizeof *s->validation)))
                    return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
                cascade__v1__validation_criteria__init(s->validation);
            }
            rc = build_validation(v, s->validation, err);
        } else {
            rc = unknown_key(err, "", k,
                             "job_id, tenant, priority, deadline, output, total, "
                             "classes, generation, validation, unit_size");
        }
        if (rc) return -1;
    }
    return 0;
}

cx_jobspec_t *cx_jobfile_parse(const char *text, size_t len, cx_err_t *err) {
    jf_ctx c = {.nodes = 0, .err = err};
    if (!text) {
        cx_err_set(err, CX_EINVAL, 0, "job file: no text");
        return NULL;
    }
    size_t i = 0;
    while (i < len && isspace((unsigned char)text[i])) i++;
    if (i == len) {
        cx_err_set(err, CX_EINVAL, 0, "job file is empty");
        return NULL;
    }
    jf_node *root = text[i] == '{' ? parse_json(&c, text, len) : parse_yaml(&c, text, len);
    if (!root) return NULL;
    cx_jobspec_t *s = malloc(sizeof *s);
    if (!s) {
        cx_err_set(err, CX_ENOMEM, 0, "job file: out of memory");
        node_free(root);
        return NULL;
    }
    cascade__v1__job_spec__init(s);
    if (build_spec(root, s, err) != 0) {
        cx_jobfile_free(s);
        s = NULL;
    }
    node_free(root);
    return s;
}

void cx_jobfile_free(cx_jobspec_t *spec) {
    /* Everything was malloc'd piecewise, as protobuf-c's unpack would with the
     * default allocator, so its free walks the same tree. */
    if (spec) cascade__v1__job_spec__free_unpacked(spec, NULL);
}
