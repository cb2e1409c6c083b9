#include "cx_testenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CX_TESTENV_MAX 64

static char *keys[CX_TESTENV_MAX], *vals[CX_TESTENV_MAX];
static int nloaded = -1;

static void load(void) {
    const char *path = getenv("CASCADE_TEST_ENV");
    char line[1024];
    FILE *f;

    nloaded = 0;
    if (!path || !(f = fopen(path, "r"))) return;
    while (nloaded < CX_TESTENV_MAX && fgets(line, sizeof line, f)) {
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#') continue;
        *eq = '\0';
        line[strcspn(eq + 1, "\n") + (size_t)(eq + 1 - line)] = '\0';
        const char *k = strncmp(line, "export ", 7) == 0 ? line + 7 : line;
        keys[nloaded] = strdup(k);
        vals[nloaded] = strdup(eq + 1);
        nloaded++;
    }
    fclose(f);
}

const char *cx_testenv(const char *key) {
    const char *v = getenv(key);
    if (v && *v) return v;
    if (nloaded < 0) load();
    for (int i = 0; i < nloaded; i++)
        if (strcmp(keys[i], key) == 0) return vals[i];
    return NULL;
}

char *cx_testenv_tmpdir(const char *tag) {
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/cx-%s-XXXXXX", base ? base : "/tmp", tag);
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}
