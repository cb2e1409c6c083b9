/* cxdev's command line: parse, dispatch, report. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxdev.h"

static void usage(FILE *out)
{
    fputs("usage:\n"
          "  cxdev create-topics [--brokers B] [--timeout SECS]\n"
          "  cxdev partitions TOPIC [--brokers B]\n"
          "  cxdev produce TOPIC [--key K] [--partition P] [--file F]\n"
          "  cxdev tail TOPIC [--max N] [--timeout-ms T] [--from-beginning]"
          " [--value-only]\n"
          "--brokers defaults to $CASCADE_KAFKA_BROKERS.\n",
          out);
}

static int parse_ll(const char *flag, const char *s, long long min,
                    long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min) {
        fprintf(stderr, "cxdev: %s wants an integer >= %lld, got '%s'\n",
                flag, min, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Flags take their value as the next argument or after '='. */
static int parse_args(int argc, char **argv, cxdev_args_t *a)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || arg[1] != '-') {
            if (a->topic) {
                fprintf(stderr, "cxdev: unexpected argument '%s'\n", arg);
                return -1;
            }
            a->topic = arg;
            continue;
        }
        if (!strcmp(arg, "--from-beginning")) {
            a->from_beginning = 1;
            continue;
        }
        if (!strcmp(arg, "--value-only")) {
            a->value_only = 1;
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val) {
            fprintf(stderr, "cxdev: %s needs a value\n", arg);
            return -1;
        }
        long long n;
#define FLAG(name) (nlen == strlen(name) && !strncmp(arg, name, nlen))
        if (FLAG("--brokers")) {
            a->brokers = val;
        } else if (FLAG("--key")) {
            a->key = val;
        } else if (FLAG("--file")) {
            a->file = val;
        } else if (FLAG("--partition")) {
            if (parse_ll("--partition", val, -1, &n) || n > INT32_MAX)
                return -1;
            a->partition = (int32_t)n;
        } else if (FLAG("--max")) {
            if (parse_ll("--max", val, 1, &a->max))
                return -1;
        } else if (FLAG("--timeout-ms")) {
            if (parse_ll("--timeout-ms", val, 0, &a->timeout_ms))
                return -1;
        } else if (FLAG("--timeout")) {
            if (parse_ll("--timeout", val, 0, &a->timeout_s))
                return -1;
        } else {
            fprintf(stderr, "cxdev: unknown flag '%.*s'\n", (int)nlen, arg);
            return -1;
        }
#undef FLAG
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    cxdev_args_t a = {.partition = -1, .timeout_ms = -1, .timeout_s = 60};
    if (parse_args(argc - 2, argv + 2, &a)) {
        usage(stderr);
        return 2;
    }
    if (!a.brokers)
        a.brokers = getenv("CASCADE_KAFKA_BROKERS");
    if (!a.brokers || !*a.brokers) {
        fprintf(stderr, "cxdev: no brokers: pass --brokers or set "
                        "CASCADE_KAFKA_BROKERS\n");
        return 2;
    }
    int needs_topic = strcmp(cmd, "create-topics") != 0;
    if (needs_topic != (a.topic != NULL)) {
        fprintf(stderr, needs_topic ? "cxdev: %s needs a TOPIC\n"
                                    : "cxdev: %s takes no TOPIC\n", cmd);
        return 2;
    }

    cx_err_t err = {0};
    int rc;
    if (!strcmp(cmd, "create-topics")) {
        rc = cxdev_create_topics(&a, &err);
    } else if (!strcmp(cmd, "partitions")) {
        rc = cxdev_partitions(&a, &err);
    } else if (!strcmp(cmd, "produce")) {
        rc = cxdev_produce(&a, &err);
    } else if (!strcmp(cmd, "tail")) {
        long long n = cxdev_tail(&a, stdout, &err);
        rc = n < 0 ? -1 : 0;
        if (n >= 0 && a.max > 0 && n < a.max) {
            fprintf(stderr, "cxdev: tail %s: %lld of %lld messages before "
                            "the timeout\n", a.topic, n, a.max);
            return 1;
        }
    } else {
        fprintf(stderr, "cxdev: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    if (rc < 0) {
        fprintf(stderr, "cxdev: %s: %s (%s)\n", cmd, err.msg,
                cx_errcode_name(err.code));
        return 1;
    }
    return 0;
}
