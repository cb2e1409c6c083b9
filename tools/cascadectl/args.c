/* cx_ctl_args_*: splitting cascadectl's command line. */
#include "args.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    int arity;
} cx__ctl_commands[] = {
    {"submit", 1}, {"status", 1}, {"watch", 1}, {"list", 0}, {"cancel", 1},
    {"plan", 1},   {"model", 0},  {"quarantine", 1},
};

int cx_ctl_command_arity(const char *command) {
    for (size_t i = 0; i < sizeof cx__ctl_commands / sizeof cx__ctl_commands[0]; i++)
        if (strcmp(cx__ctl_commands[i].name, command) == 0)
            return cx__ctl_commands[i].arity;
    return -1;
}

static const cx_conf_entry_t *find(const cx_conf_entry_t *t, const char *name,
                                   size_t len) {
    for (; t->name; t++)
        if (strlen(t->name) == len && strncmp(t->name, name, len) == 0) return t;
    return NULL;
}

static int is_bool_word(const char *s) {
    static const char *const w[] = {"true", "false", "yes", "no", "on",
                                    "off",  "1",     "0"};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        if (strcasecmp(s, w[i]) == 0) return 1;
    return 0;
}

int cx_ctl_args_split(const cx_conf_entry_t *table, int argc, char **argv,
                      cx_ctl_args_t *out, cx_err_t *err) {
    memset(out, 0, sizeof *out);
    out->conf_argv = calloc((size_t)argc + 1, sizeof *out->conf_argv);
    if (!out->conf_argv) return cx_err_set(err, CX_ENOMEM, 0, "out of memory");
    out->conf_argv[out->conf_argc++] = argc > 0 ? argv[0] : (char *)"cascadectl";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) == 0 && a[2]) {
            out->conf_argv[out->conf_argc++] = argv[i];
            const char *name = a + 2;
            if (strchr(name, '=') || i + 1 >= argc) continue;
            if (strcmp(name, "config") == 0) {
                out->conf_argv[out->conf_argc++] = argv[++i];
                continue;
            }
            const cx_conf_entry_t *e = find(table, name, strlen(name));
            if (!e) continue;
            if (e->type != CX_CONF_BOOL || is_bool_word(argv[i + 1]))
                out->conf_argv[out->conf_argc++] = argv[++i];
        } else if (strcmp(a, "-h") == 0) {
            out->conf_argv[out->conf_argc++] = argv[i];
        } else if (!out->command) {
            out->command = a;
        } else if (out->npos < CX_CTL_MAX_POS) {
            out->pos[out->npos++] = a;
        } else {
            cx_ctl_args_release(out);
            return cx_err_set(err, CX_EINVAL, 0, "too many arguments");
        }
    }
    return 0;
}

void cx_ctl_args_release(cx_ctl_args_t *a) {
    if (!a) return;
    free(a->conf_argv);
    a->conf_argv = NULL;
}

int cx_ctl_args_check(const cx_ctl_args_t *a, cx_err_t *err) {
    if (!a->command)
        return cx_err_set(err, CX_EINVAL, 0,
                          "no command (submit, status, watch, list, cancel)");
    int n = cx_ctl_command_arity(a->command);
    if (n < 0)
        return cx_err_set(err, CX_EINVAL, 0, "unknown command \"%s\"",
                          a->command);
    /* quarantine list | quarantine release WORKER */
    if (strcmp(a->command, "quarantine") == 0 && a->npos >= 1 &&
        strcmp(a->pos[0], "release") == 0)
        n = 2;
    if (a->npos < n)
        return cx_err_set(err, CX_EINVAL, 0, "%s needs %s", a->command,
                          strcmp(a->command, "submit") == 0 ||
                                  strcmp(a->command, "plan") == 0
                              ? "FILE"
                          : strcmp(a->command, "quarantine") == 0
                              ? "list or release WORKER"
                              : "JOB");
    if (a->npos > n)
        return cx_err_set(err, CX_EINVAL, 0, "%s: unexpected argument \"%s\"",
                          a->command, a->pos[n]);
    return 0;
}
