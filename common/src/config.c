/* Configuration from one declarative table: defaults, config file,
 * CASCADE_* environment and --flags, in that order of precedence. */
#include "cascade/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cascade/util.h"

#define CX__CONF_ENV_PREFIX "CASCADE_"

static int entry_has_range(const cx_conf_entry_t *e) {
    /* An INT/DOUBLE entry declared with min == max == 0 is unbounded. */
    return !(e->min == 0 && e->max == 0);
}

static void env_name(const char *name, char *out, size_t cap) {
    size_t n = strlen(CX__CONF_ENV_PREFIX);
    memcpy(out, CX__CONF_ENV_PREFIX, n);
    for (const char *p = name; *p && n + 1 < cap; p++)
        out[n++] = (*p == '.' || *p == '-') ? '_'
                                            : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

static const cx_conf_entry_t *find_entry(const cx_conf_entry_t *table,
                                         const char *name, size_t len) {
    for (const cx_conf_entry_t *e = table; e->name; e++)
        if (strlen(e->name) == len && strncmp(e->name, name, len) == 0)
            return e;
    return NULL;
}

static int parse_bool(const char *v, int *out) {
    static const char *const yes[] = {"true", "yes", "1", "on"};
    static const char *const no[] = {"false", "no", "0", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) return *out = 1, 0;
        if (strcasecmp(v, no[i]) == 0) return *out = 0, 0;
    }
    return -1;
}

/* Stores value into the field of e, naming `source` in any error. */
static int set_value(const cx_conf_entry_t *e, void *cfg, const char *value,
                     const char *source, cx_err_t *err) {
    char *field = (char *)cfg + e->offset;
    char *end;

    switch (e->type) {
    case CX_CONF_STR: {
        char *copy = strdup(value);
        if (!copy) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case CX_CONF_INT: {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!*value || *end || errno == ERANGE)
            return cx_err_set(err, CX_EINVAL, 0,
                              "%s (from %s): \"%s\" is not an integer",
                              e->name, source, value);
        if (entry_has_range(e) && ((double)v < e->min || (double)v > e->max))
            return cx_err_set(err, CX_EINVAL, 0,
                              "%s (from %s): %lld is out of range [%.0f, %.0f]",
                              e->name, source, v, e->min, e->max);
        *(long long *)field = v;
        return 0;
    }
    case CX_CONF_DOUBLE: {
        errno = 0;
        double v = strtod(value, &end);
        if (!*value || *end || errno == ERANGE || !isfinite(v))
            return cx_err_set(err, CX_EINVAL, 0,
                              "%s (from %s): \"%s\" is not a number", e->name,
                              source, value);
        if (entry_has_range(e) && (v < e->min || v > e->max))
            return cx_err_set(err, CX_EINVAL, 0,
                              "%s (from %s): %g is out of range [%g, %g]",
                              e->name, source, v, e->min, e->max);
        *(double *)field = v;
        return 0;
    }
    case CX_CONF_BOOL: {
        int b;
        if (parse_bool(value, &b) < 0)
            return cx_err_set(err, CX_EINVAL, 0,
                              "%s (from %s): \"%s\" is not a boolean "
                              "(true/false/yes/no/1/0/on/off)",
                              e->name, source, value);
        *(int *)field = b;
        return 0;
    }
    }
    return cx_err_set(err, CX_EINVAL, 0, "%s: bad entry type", e->name);
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) *--end = '\0';
    return s;
}

static int load_file(const cx_conf_entry_t *table, void *cfg,
                     const char *path, cx_err_t *err) {
    char *text, *line, *save = NULL;
    char source[600];
    int lineno = 0, rc = 0;

    if (cx_read_file(path, &text, NULL, err) < 0)
        return cx_err_wrap(err, "config file");
    /* strtok_r would skip empty lines and miscount; split by hand. */
    for (line = text; line && rc == 0; line = save) {
        save = strchr(line, '\n');
        if (save) *save++ = '\0';
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        snprintf(source, sizeof source, "config file %s line %d", path,
                 lineno);
        if (!eq) {
            rc = cx_err_set(err, CX_EINVAL, 0, "%s: expected key = value",
                            source);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        size_t vlen = strlen(val);
        if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') {
            val[vlen - 1] = '\0';
            val++;
        }
        const cx_conf_entry_t *e = find_entry(table, key, strlen(key));
        if (!e)
            rc = cx_err_set(err, CX_EINVAL, 0, "%s: unknown key \"%s\"",
                            source, key);
        else
            rc = set_value(e, cfg, val, source, err);
    }
    free(text);
    return rc;
}

static int is_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

int cx_conf_load(const cx_conf_entry_t *table, void *cfg, const char *service,
                 int argc, char **argv, cx_err_t *err) {
    const char *config_path = getenv("CASCADE_CONFIG");
    char source[300];

    /* Fields start empty so cx_conf_free is safe whatever fails below. */
    for (const cx_conf_entry_t *e = table; e->name; e++)
        if (e->type == CX_CONF_STR) *(char **)((char *)cfg + e->offset) = NULL;

    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            cx_conf_print_help(stdout, service, table);
            return 1;
        }
        if (strcmp(argv[i], "--help-markdown") == 0) {
            cx_conf_print_markdown(stdout, service, table);
            return 1;
        }
    }

    for (const cx_conf_entry_t *e = table; e->name; e++)
        if (set_value(e, cfg, e->def ? e->def : "", "default", err) < 0)
            return -1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return cx_err_set(err, CX_EINVAL, 0,
                                  "flag --config needs a value");
            config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
        }
    }
    if (config_path && *config_path &&
        load_file(table, cfg, config_path, err) < 0)
        return -1;

    /* Only our own names are looked up: other CASCADE_* variables belong
     * to other services sharing the environment. */
    for (const cx_conf_entry_t *e = table; e->name; e++) {
        char name[256];
        env_name(e->name, name, sizeof name);
        const char *v = getenv(name);
        if (!v) continue;
        snprintf(source, sizeof source, "environment %s", name);
        if (set_value(e, cfg, v, source, err) < 0) return -1;
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *value;
        if (strncmp(a, "--", 2) != 0 || !a[2])
            return cx_err_set(err, CX_EINVAL, 0, "unexpected argument \"%s\"",
                              a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (nlen == 6 && strncmp(name, "config", 6) == 0) {
            if (!eq) i++;
            continue;
        }
        const cx_conf_entry_t *e = find_entry(table, name, nlen);
        if (!e)
            return cx_err_set(err, CX_EINVAL, 0,
                              "unknown flag --%.*s (see --help)", (int)nlen,
                              name);
        if (eq) {
            value = eq + 1;
        } else if (e->type == CX_CONF_BOOL) {
            /* --flag alone means true; "--flag false" is also accepted. */
            int b;
            if (i + 1 < argc && parse_bool(argv[i + 1], &b) == 0)
                value = argv[++i];
            else
                value = "true";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return cx_err_set(err, CX_EINVAL, 0, "flag --%s needs a value",
                              e->name);
        }
        snprintf(source, sizeof source, "flag --%s", e->name);
        if (set_value(e, cfg, value, source, err) < 0) return -1;
    }
    return 0;
}

void cx_conf_free(const cx_conf_entry_t *table, void *cfg) {
    for (const cx_conf_entry_t *e = table; e->name; e++) {
        if (e->type != CX_CONF_STR) continue;
        char **field = (char **)((char *)cfg + e->offset);
        free(*field);
        *field = NULL;
    }
}

static const char *type_name(cx_conf_type_t t) {
    switch (t) {
    case CX_CONF_STR: return "string";
    case CX_CONF_INT: return "int";
    case CX_CONF_DOUBLE: return "number";
    case CX_CONF_BOOL: return "bool";
    }
    return "?";
}

static void print_range(FILE *out, const cx_conf_entry_t *e) {
    if ((e->type == CX_CONF_INT || e->type == CX_CONF_DOUBLE) &&
        entry_has_range(e))
        fprintf(out, "%g..%g", e->min, e->max);
}

static const char *exe_prefix(const char *service) {
    return strncmp(service, "cascade", 7) == 0 ? "" : "cascade-";
}

void cx_conf_print_help(FILE *out, const char *service,
                        const cx_conf_entry_t *table) {
    char env[256];
    fprintf(out,
            "Usage: %s%s [--config FILE] [--name=value | --name value]...\n\n"
            "Precedence: defaults < config file (--config or CASCADE_CONFIG)"
            " < environment < flags.\n\nOptions:\n",
            exe_prefix(service), service);
    for (const cx_conf_entry_t *e = table; e->name; e++) {
        env_name(e->name, env, sizeof env);
        fprintf(out, "  --%s=%s\n      %s\n      default: \"%s\"", e->name,
                type_name(e->type), e->help ? e->help : "",
                e->def ? e->def : "");
        if ((e->type == CX_CONF_INT || e->type == CX_CONF_DOUBLE) &&
            entry_has_range(e)) {
            fprintf(out, ", range: ");
            print_range(out, e);
        }
        fprintf(out, ", env: %s\n", env);
    }
    fprintf(out, "  --help\n      print this help and exit\n"
                 "  --help-markdown\n      print the options as Markdown\n");
}

static void md_cell(FILE *out, const char *s) {
    for (; s && *s; s++) {
        if (*s == '|') fputs("\\|", out);
        else if (*s == '\n') fputc(' ', out);
        else fputc(*s, out);
    }
}

void cx_conf_print_markdown(FILE *out, const char *service,
                            const cx_conf_entry_t *table) {
    char env[256];
    fprintf(out, "## %s%s\n\n", exe_prefix(service), service);
    fprintf(out, "| flag | environment | type | default | range | "
                 "description |\n| --- | --- | --- | --- | --- | --- |\n");
    for (const cx_conf_entry_t *e = table; e->name; e++) {
        env_name(e->name, env, sizeof env);
        fprintf(out, "| `--%s` | `%s` | %s | ", e->name, env,
                type_name(e->type));
        if (e->def && *e->def) {
            fputc('`', out);
            md_cell(out, e->def);
            fputc('`', out);
        }
        fputs(" | ", out);
        print_range(out, e);
        fputs(" | ", out);
        md_cell(out, e->help);
        fputs(" |\n", out);
    }
    fputc('\n', out);
}
