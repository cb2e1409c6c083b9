/* cascadectl's command line: `cascadectl [flags] COMMAND [ARGS] [flags]`.
 * Flags (--name=value or --name value, anywhere) belong to the config table
 * and go to cx_conf_load; the rest are the command and its arguments. */
#ifndef CASCADECTL_ARGS_H
#define CASCADECTL_ARGS_H

#include "cascade/config.h"
#include "cascade/err.h"

#define CX_CTL_MAX_POS 8

typedef struct cx_ctl_args {
    int conf_argc;
    char **conf_argv;              /* argv[0] + flags, for cx_conf_load */
    const char *command;           /* NULL when none given */
    int npos;
    const char *pos[CX_CTL_MAX_POS]; /* the command's arguments */
} cx_ctl_args_t;

/* Splits argv. A flag's separate value (`--timeout 5`) stays with it: the
 * table says which flags take one (BOOL flags only take a following
 * true/false/yes/no/on/off/1/0). Returns 0, or -1 with err for too many
 * arguments. Unknown flags are left to cx_conf_load to report. Release
 * with cx_ctl_args_release. */
int cx_ctl_args_split(const cx_conf_entry_t *table, int argc, char **argv,
                      cx_ctl_args_t *out, cx_err_t *err);
void cx_ctl_args_release(cx_ctl_args_t *a);

/* The number of positional arguments `command` takes, or -1 when the
 * command is unknown. */
int cx_ctl_command_arity(const char *command);

/* Checks command and arity; err says what is wrong ("status needs JOB"). */
int cx_ctl_args_check(const cx_ctl_args_t *a, cx_err_t *err);

#endif
