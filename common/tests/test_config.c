#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cascade/config.h"
#include "cx_testenv.h"

typedef struct tconf {
    cx_common_conf_t common;
    char *name;
    long long workers;
    double ratio;
    int dry_run;
} tconf_t;

static const cx_conf_entry_t table[] = {
    CX_CONF_COMMON(tconf_t),
    {"name", CX_CONF_STR, "alpha", 0, 0, "A name", offsetof(tconf_t, name)},
    {"workers", CX_CONF_INT, "4", 1, 64, "Worker threads",
     offsetof(tconf_t, workers)},
    {"ratio", CX_CONF_DOUBLE, "0.5", 0, 1, "A fraction",
     offsetof(tconf_t, ratio)},
    {"dry-run", CX_CONF_BOOL, "false", 0, 0, "Do nothing",
     offsetof(tconf_t, dry_run)},
    CX_CONF_END};

static char *dir;
static char conf_path[600];

static void setup(void) {
    dir = cx_testenv_tmpdir("config");
    snprintf(conf_path, sizeof conf_path, "%s/svc.conf", dir);
    unsetenv("CASCADE_CONFIG");
    unsetenv("CASCADE_WORKERS");
    unsetenv("CASCADE_NAME");
    unsetenv("CASCADE_DRY_RUN");
    unsetenv("CASCADE_KAFKA_BROKERS");
    unsetenv("CASCADE_SOMETHING_ELSE");
}

static void teardown(void) {
    remove(conf_path);
    remove(dir);
    free(dir);
}

static void write_conf(const char *text) {
    FILE *f = fopen(conf_path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static int load(tconf_t *c, cx_err_t *err, int argc, char **argv) {
    memset(c, 0x5a, sizeof *c); /* garbage: load must not read it */
    return cx_conf_load(table, c, "testsvc", argc, argv, err);
}

START_TEST(test_defaults) {
    tconf_t c;
    cx_err_t err;
    char *argv[] = {"prog", NULL};
    ck_assert_int_eq(load(&c, &err, 1, argv), 0);
    ck_assert_str_eq(c.name, "alpha");
    ck_assert_int_eq(c.workers, 4);
    ck_assert_double_eq(c.ratio, 0.5);
    ck_assert_int_eq(c.dry_run, 0);
    ck_assert_str_eq(c.common.kafka_brokers, "127.0.0.1:9092");
    ck_assert_int_eq(c.common.http_port, 0);
    ck_assert_str_eq(c.common.instance, "");
    cx_conf_free(table, &c);
    ck_assert_ptr_null(c.name);
    ck_assert_ptr_null(c.common.kafka_brokers);
    cx_conf_free(table, &c); /* twice is harmless */
}
END_TEST

START_TEST(test_precedence) {
    tconf_t c;
    cx_err_t err;
    write_conf("# comment\n\n  name = from-file\nworkers=8\n"
               "ratio = 0.25\nkafka.brokers = \"file:1\"\ndry-run = yes\n");
    setenv("CASCADE_WORKERS", "16", 1);
    setenv("CASCADE_DRY_RUN", "off", 1);
    setenv("CASCADE_SOMETHING_ELSE", "other services' setting", 1);
    char *argv[] = {"prog", "--config", conf_path, "--workers=32",
                    "--name", "from-flag", NULL};
    ck_assert_int_eq(load(&c, &err, 6, argv), 0);
    ck_assert_str_eq(c.name, "from-flag");     /* flag > file */
    ck_assert_int_eq(c.workers, 32);           /* flag > env > file */
    ck_assert_double_eq(c.ratio, 0.25);        /* file > default */
    ck_assert_int_eq(c.dry_run, 0);            /* env > file */
    ck_assert_str_eq(c.common.kafka_brokers, "file:1");
    cx_conf_free(table, &c);

    /* CASCADE_CONFIG names the file too; env beats it. */
    setenv("CASCADE_CONFIG", conf_path, 1);
    char *argv2[] = {"prog", "--dry-run", NULL};
    ck_assert_int_eq(load(&c, &err, 2, argv2), 0);
    ck_assert_str_eq(c.name, "from-file");
    ck_assert_int_eq(c.workers, 16);
    ck_assert_int_eq(c.dry_run, 1); /* bare bool flag */
    cx_conf_free(table, &c);
}
END_TEST

START_TEST(test_bool_values) {
    const char *yes[] = {"true", "YES", "1", "on"};
    const char *no[] = {"false", "no", "0", "OFF"};
    tconf_t c;
    cx_err_t err;
    char arg[64];
    for (int i = 0; i < 4; i++) {
        snprintf(arg, sizeof arg, "--dry-run=%s", yes[i]);
        char *argv[] = {"prog", arg, NULL};
        ck_assert_int_eq(load(&c, &err, 2, argv), 0);
        ck_assert_int_eq(c.dry_run, 1);
        cx_conf_free(table, &c);
        char *argv2[] = {"prog", "--dry-run", (char *)no[i], NULL};
        ck_assert_int_eq(load(&c, &err, 3, argv2), 0);
        ck_assert_int_eq(c.dry_run, 0);
        cx_conf_free(table, &c);
    }
    char *bad[] = {"prog", "--dry-run=maybe", NULL};
    ck_assert_int_eq(load(&c, &err, 2, bad), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "dry-run"));
    ck_assert_ptr_nonnull(strstr(err.msg, "maybe"));
    cx_conf_free(table, &c);
}
END_TEST

START_TEST(test_range_errors) {
    tconf_t c;
    cx_err_t err;
    char *argv[] = {"prog", "--workers=65", NULL};
    ck_assert_int_eq(load(&c, &err, 2, argv), -1);
    ck_assert_int_eq(err.code, CX_EINVAL);
    ck_assert_msg(strstr(err.msg, "workers") && strstr(err.msg, "flag --workers") &&
                      strstr(err.msg, "[1, 64]"),
                  "%s", err.msg);
    cx_conf_free(table, &c);

    setenv("CASCADE_RATIO", "1.5", 1);
    char *argv1[] = {"prog", NULL};
    ck_assert_int_eq(load(&c, &err, 1, argv1), -1);
    unsetenv("CASCADE_RATIO");
    ck_assert_msg(strstr(err.msg, "ratio") &&
                      strstr(err.msg, "environment CASCADE_RATIO") &&
                      strstr(err.msg, "[0, 1]"),
                  "%s", err.msg);
    cx_conf_free(table, &c);

    write_conf("name = x\nhttp.port = 70000\n");
    char *argv2[] = {"prog", "--config", conf_path, NULL};
    ck_assert_int_eq(load(&c, &err, 3, argv2), -1);
    ck_assert_msg(strstr(err.msg, "http.port") && strstr(err.msg, "line 2") &&
                      strstr(err.msg, "[0, 65535]"),
                  "%s", err.msg);
    cx_conf_free(table, &c);

    char *argv3[] = {"prog", "--workers", "12abc", NULL};
    ck_assert_int_eq(load(&c, &err, 3, argv3), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "not an integer"));
    cx_conf_free(table, &c);
}
END_TEST

START_TEST(test_unknown) {
    tconf_t c;
    cx_err_t err;
    char *argv[] = {"prog", "--wrokers=3", NULL};
    ck_assert_int_eq(load(&c, &err, 2, argv), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "unknown flag --wrokers"));
    cx_conf_free(table, &c);

    char *argv2[] = {"prog", "stray", NULL};
    ck_assert_int_eq(load(&c, &err, 2, argv2), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "stray"));
    cx_conf_free(table, &c);

    char *argv3[] = {"prog", "--name", NULL};
    ck_assert_int_eq(load(&c, &err, 2, argv3), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "needs a value"));
    cx_conf_free(table, &c);

    write_conf("name = a\nbogus.key = 1\n");
    char *argv4[] = {"prog", "--config=", NULL};
    char arg[700];
    snprintf(arg, sizeof arg, "--config=%s", conf_path);
    argv4[1] = arg;
    ck_assert_int_eq(load(&c, &err, 2, argv4), -1);
    ck_assert_msg(strstr(err.msg, "bogus.key") && strstr(err.msg, "line 2"),
                  "%s", err.msg);
    cx_conf_free(table, &c);

    write_conf("just words\n");
    ck_assert_int_eq(load(&c, &err, 2, argv4), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "key = value"));
    cx_conf_free(table, &c);

    char *argv5[] = {"prog", "--config", "/nonexistent/x.conf", NULL};
    ck_assert_int_eq(load(&c, &err, 3, argv5), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/x.conf"));
    cx_conf_free(table, &c);
}
END_TEST

static char *read_all(FILE *f) {
    static char text[65536];
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    return text;
}

START_TEST(test_help) {
    FILE *f = tmpfile();
    cx_conf_print_help(f, "planner", table);
    char *h = read_all(f);
    ck_assert_ptr_nonnull(strstr(h, "Usage: cascade-planner"));
    ck_assert_ptr_nonnull(strstr(h, "--workers=int"));
    ck_assert_ptr_nonnull(strstr(h, "Worker threads"));
    ck_assert_ptr_nonnull(strstr(h, "range: 1..64"));
    ck_assert_ptr_nonnull(strstr(h, "env: CASCADE_KAFKA_BROKERS"));
    ck_assert_ptr_nonnull(strstr(h, "env: CASCADE_DRY_RUN"));
    ck_assert_ptr_nonnull(strstr(h, "default: \"127.0.0.1:9092\""));
    fclose(f);

    f = tmpfile();
    cx_conf_print_markdown(f, "planner", table);
    h = read_all(f);
    ck_assert_ptr_nonnull(strstr(h, "## cascade-planner\n"));
    ck_assert_ptr_nonnull(strstr(h, "| flag | environment |"));
    ck_assert_ptr_nonnull(
        strstr(h, "| `--workers` | `CASCADE_WORKERS` | int | `4` | 1..64 | "
                  "Worker threads |"));
    fclose(f);

    /* --help from cx_conf_load goes to stdout and wins over bad flags. */
    tconf_t c;
    cx_err_t err;
    f = tmpfile();
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(fileno(f), STDOUT_FILENO);
    char *argv[] = {"prog", "--bogus", "--help", NULL};
    int rc = load(&c, &err, 3, argv);
    char *argv2[] = {"prog", "--help-markdown", NULL};
    int rc2 = load(&c, &err, 2, argv2);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    ck_assert_int_eq(rc, 1);
    ck_assert_int_eq(rc2, 1);
    h = read_all(f);
    ck_assert_ptr_nonnull(strstr(h, "Usage: cascade-testsvc"));
    ck_assert_ptr_nonnull(strstr(h, "## cascade-testsvc"));
    fclose(f);
    cx_conf_free(table, &c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_precedence);
    tcase_add_test(tc, test_bool_values);
    tcase_add_test(tc, test_range_errors);
    tcase_add_test(tc, test_unknown);
    tcase_add_test(tc, test_help);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
