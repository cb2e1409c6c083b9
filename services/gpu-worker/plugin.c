/* Generator plug-ins: dlopen, ABI checks, resolution, error mapping. */
#include "plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cascade/names.h"

#define CX_PLUGINS_MAX 64
#define CX_PLUGIN_ERRLEN 400

struct cx_plugin {
    void *dl;
    const cx_genplug_t *t;
    char *path;
};

struct cx_plugins {
    cx_plugin_t *p[CX_PLUGINS_MAX];
    size_t n;
};

struct cx_plugin_gen {
    const cx_plugin_t *p;
    cx_genplug_gen_t *g;
    pthread_mutex_t mu; /* serialises generate unless concurrent */
};

/* ---- loading ----------------------------------------------------------- */

/* The table's checks, after the entry point returned it. */
static int check_table(const cx_genplug_t *t, const char *path,
                       cx_err_t *err) {
    if (!t)
        return cx_err_set(err, CX_EINVAL, 0,
                          "plug-in %s: no table for host ABI version %u", path,
                          CX_GENPLUG_ABI_VERSION);
    if (t->abi_version != CX_GENPLUG_ABI_VERSION)
        return cx_err_set(err, CX_EINVAL, 0,
                          "plug-in %s: ABI version %u, this worker needs %u",
                          path, t->abi_version, CX_GENPLUG_ABI_VERSION);
    if (t->struct_size < sizeof *t)
        return cx_err_set(err, CX_EINVAL, 0,
                          "plug-in %s: table of %u bytes, ABI version %u has "
                          "%zu",
                          path, t->struct_size, CX_GENPLUG_ABI_VERSION,
                          sizeof *t);
    if (!t->name || !*t->name || !t->probe || !t->estimate || !t->create ||
        !t->memory_bytes || !t->class_count || !t->class_name ||
        !t->generate || !t->last_error || !t->destroy)
        return cx_err_set(err, CX_EINVAL, 0,
                          "plug-in %s: table lacks a name or a function",
                          path);
    return 0;
}

cx_plugin_t *cx_plugin_open(const char *path, cx_err_t *err) {
    cx_plugin_t *p = calloc(1, sizeof *p);
    if (!p || !(p->path = strdup(path))) {
        cx_err_set(err, CX_ENOMEM, 0, "plug-in %s: out of memory", path);
        goto fail;
    }
    /* NODELETE: a plug-in's libraries (libstdc++, cuBLAS) keep static
     * allocations for the life of the process; unmapping them at close
     * would turn those into leaks as far as ASan and valgrind can see. */
    p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!p->dl) {
        const char *why = dlerror();
        cx_err_set(err, CX_EIO, 0, "plug-in %s: cannot load: %s", path,
                   why ? why : "unknown error");
        goto fail;
    }
    cx_genplug_entry_fn entry;
    void *sym = dlsym(p->dl, CX_GENPLUG_ENTRY);
    if (!sym) {
        cx_err_set(err, CX_EINVAL, 0,
                   "plug-in %s: not a generator plug-in (no %s symbol)", path,
                   CX_GENPLUG_ENTRY);
        goto fail;
    }
    memcpy(&entry, &sym, sizeof entry); /* object -> function pointer */
    p->t = entry(CX_GENPLUG_ABI_VERSION);
    if (check_table(p->t, path, err) < 0) goto fail;
    return p;

fail:
    cx_plugin_close(p);
    return NULL;
}

void cx_plugin_close(cx_plugin_t *p) {
    if (!p) return;
    if (p->dl) dlclose(p->dl);
    free(p->path);
    free(p);
}

const char *cx_plugin_name(const cx_plugin_t *p) { return p->t->name; }
const char *cx_plugin_path(const cx_plugin_t *p) { return p->path; }
const cx_genplug_t *cx_plugin_table(const cx_plugin_t *p) { return p->t; }

/* ---- the set ----------------------------------------------------------- */

cx_plugins_t *cx_plugins_new(cx_err_t *err) {
    cx_plugins_t *ps = calloc(1, sizeof *ps);
    if (!ps) cx_err_set(err, CX_ENOMEM, 0, "plug-ins: out of memory");
    return ps;
}

void cx_plugins_destroy(cx_plugins_t *ps) {
    if (!ps) return;
    for (size_t i = 0; i < ps->n; i++) cx_plugin_close(ps->p[i]);
    free(ps);
}

int cx_plugins_add(cx_plugins_t *ps, const char *path, cx_err_t *err) {
    if (ps->n == CX_PLUGINS_MAX)
        return cx_err_set(err, CX_EINVAL, 0, "plug-in %s: over %d plug-ins",
                          path, CX_PLUGINS_MAX);
    cx_plugin_t *p = cx_plugin_open(path, err);
    if (!p) return -1;
    cx_plugin_t *dup = cx_plugins_find(ps, cx_plugin_name(p));
    if (dup) {
        cx_err_set(err, CX_EEXIST, 0,
                   "plug-in %s: name %s is already taken by %s", path,
                   cx_plugin_name(p), dup->path);
        cx_plugin_close(p);
        return -1;
    }
    ps->p[ps->n++] = p;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in `dir` that pass `keep`, sorted; *n set. NULL with err. */
static char **list_dir(const char *dir, int (*keep)(const char *, void *),
                       void *ctx, size_t *n, cx_err_t *err) {
    DIR *d = opendir(dir);
    if (!d) {
        cx_err_set(err, CX_EIO, 0, "cannot read directory %s", dir);
        return NULL;
    }
    size_t cap = 16;
    char **names = malloc(cap * sizeof *names);
    int oom = !names;
    struct dirent *e;
    *n = 0;
    while (!oom && (e = readdir(d))) {
        if (e->d_name[0] == '.' || !keep(e->d_name, ctx)) continue;
        if (*n == cap) {
            char **nn = realloc(names, 2 * cap * sizeof *names);
            if (!nn) {
                oom = 1;
                break;
            }
            names = nn;
            cap *= 2;
        }
        if (!(names[*n] = strdup(e->d_name))) {
            oom = 1;
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (oom) {
        for (size_t i = 0; names && i < *n; i++) free(names[i]);
        free(names);
        cx_err_set(err, CX_ENOMEM, 0, "listing %s: out of memory", dir);
        return NULL;
    }
    qsort(names, *n, sizeof *names, cmp_str);
    return names;
}

static void free_list(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static int is_so(const char *name, void *ctx) {
    (void)ctx;
    size_t n = strlen(name);
    return n > 3 && strcmp(name + n - 3, ".so") == 0;
}

int cx_plugins_add_dir(cx_plugins_t *ps, const char *dir,
                       cx_plugins_refused_fn refused, void *ctx,
                       cx_err_t *err) {
    size_t n;
    char **names = list_dir(dir, is_so, NULL, &n, err);
    if (!names) return -1;
    int added = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        cx_err_t e = {0};
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (cx_plugins_add(ps, path, &e) == 0)
            added++;
        else if (refused)
            refused(ctx, path, &e);
    }
    free_list(names, n);
    return added;
}

size_t cx_plugins_count(const cx_plugins_t *ps) { return ps->n; }

cx_plugin_t *cx_plugins_at(const cx_plugins_t *ps, size_t i) {
    return i < ps->n ? ps->p[i] : NULL;
}

cx_plugin_t *cx_plugins_find(const cx_plugins_t *ps, const char *name) {
    for (size_t i = 0; i < ps->n; i++)
        if (strcmp(cx_plugin_name(ps->p[i]), name) == 0) return ps->p[i];
    return NULL;
}

/* ---- resolution -------------------------------------------------------- */

/* "<name>." prefix, a non-empty extension, a regular file. */
typedef struct file_match {
    const char *dir, *name;
} file_match_t;

static int is_ckpt_file(const char *file, void *ctx) {
    const file_match_t *m = ctx;
    size_t n = strlen(m->name);
    if (strncmp(file, m->name, n) != 0 || file[n] != '.' || !file[n + 1])
        return 0;
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", m->dir, file);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int cx_plugins_resolve(const cx_plugins_t *ps, const char *checkpoint_dir,
                       const char *name, const char *device,
                       cx_plugin_t **plugin, char *path, size_t path_len,
                       cx_err_t *err) {
    if (cx_name_check("checkpoint name", name, err) < 0) return -1;
    size_t nf = 0;
    char **files = NULL;
    if (checkpoint_dir && *checkpoint_dir) {
        file_match_t m = {checkpoint_dir, name};
        cx_err_t lerr = {0};
        files = list_dir(checkpoint_dir, is_ckpt_file, &m, &nf, &lerr);
        if (!files && lerr.code == CX_ENOMEM) {
            *err = lerr;
            return -1;
        }
    }
    for (size_t i = 0; i < ps->n; i++)
        for (size_t f = 0; f < nf; f++) {
            snprintf(path, path_len, "%s/%s", checkpoint_dir, files[f]);
            if (ps->p[i]->t->probe(path, device)) {
                *plugin = ps->p[i];
                free_list(files, nf);
                return 0;
            }
        }
    for (size_t i = 0; i < ps->n; i++)
        if (ps->p[i]->t->probe(name, device)) {
            *plugin = ps->p[i];
            snprintf(path, path_len, "%s", name);
            free_list(files, nf);
            return 0;
        }
    char seen[256] = "";
    for (size_t f = 0, o = 0; f < nf && o + 1 < sizeof seen; f++)
        o += (size_t)snprintf(seen + o, sizeof seen - o, "%s%s", f ? ", " : "",
                              files[f]);
    if (nf)
        cx_err_set(err, CX_ENOENT, 0,
                   "checkpoint %s: no plug-in of %zu accepts %s on %s "
                   "(unknown format or damaged header)",
                   name, ps->n, seen, device);
    else if (checkpoint_dir && *checkpoint_dir)
        cx_err_set(err, CX_ENOENT, 0,
                   "checkpoint %s: no file %s/%s.* and no plug-in of %zu "
                   "builds it on %s",
                   name, checkpoint_dir, name, ps->n, device);
    else
        cx_err_set(err, CX_ENOENT, 0,
                   "checkpoint %s: no checkpoint_dir to look in and no "
                   "plug-in of %zu builds it on %s",
                   name, ps->n, device);
    free_list(files, nf);
    return -1;
}

/* ---- plug-in calls ----------------------------------------------------- */

static int map_rc(int rc, const cx_plugin_t *p, const char *what,
                  const char *msg, cx_err_t *err) {
    cx_errcode_t code;
    switch (rc) {
    case CX_GENPLUG_ENOMEM: code = CX_ENOMEM; break;
    case CX_GENPLUG_EIO: code = CX_EIO; break;
    case CX_GENPLUG_ECORRUPT:
    case CX_GENPLUG_EDEVICE: code = CX_EMODEL; break;
    default: code = CX_EINVAL; break;
    }
    return cx_err_set(err, code, 0, "%s %s: %s", p->t->name, what,
                      msg && *msg ? msg : "failed (no message)");
}

int cx_plugins_device_memory(const cx_plugins_t *ps, const char *device,
                             uint64_t *total, uint64_t *free_bytes,
                             cx_err_t *err) {
    char msg[CX_PLUGIN_ERRLEN] = "";
    for (size_t i = 0; i < ps->n; i++) {
        const cx_genplug_t *t = ps->p[i]->t;
        if (t->device_memory &&
            t->device_memory(device, total, free_bytes, msg, sizeof msg) == 0)
            return 0;
    }
    return cx_err_set(err, CX_EMODEL, 0,
                      "no plug-in of %zu knows device %s%s%s", ps->n, device,
                      *msg ? ": " : "", msg);
}

int cx_plugin_estimate(const cx_plugin_t *p, const cx_genplug_args_t *a,
                       uint64_t *bytes, cx_err_t *err) {
    char msg[CX_PLUGIN_ERRLEN] = "";
    int rc = p->t->estimate(a, bytes, msg, sizeof msg);
    return rc == 0 ? 0 : map_rc(rc, p, "estimate", msg, err);
}

cx_plugin_gen_t *cx_plugin_create(const cx_plugin_t *p,
                                  const cx_genplug_args_t *a, cx_err_t *err) {
    cx_plugin_gen_t *g = calloc(1, sizeof *g);
    if (!g) {
        cx_err_set(err, CX_ENOMEM, 0, "%s: out of memory", p->t->name);
        return NULL;
    }
    char msg[CX_PLUGIN_ERRLEN] = "";
    int rc = p->t->create(a, &g->g, msg, sizeof msg);
    if (rc != 0 || !g->g) {
        if (rc == 0) {
            rc = CX_GENPLUG_EINVAL;
            snprintf(msg, sizeof msg, "returned no model");
        }
        map_rc(rc, p, "load", msg, err);
        free(g);
        return NULL;
    }
    g->p = p;
    pthread_mutex_init(&g->mu, NULL);
    return g;
}

void cx_plugin_gen_destroy(cx_plugin_gen_t *g) {
    if (!g) return;
    g->p->t->destroy(g->g);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

uint64_t cx_plugin_gen_memory(const cx_plugin_gen_t *g) {
    return g->p->t->memory_bytes(g->g);
}

const cx_plugin_t *cx_plugin_gen_plugin(const cx_plugin_gen_t *g) {
    return g->p;
}

size_t cx_plugin_gen_class_count(const cx_plugin_gen_t *g) {
    return g->p->t->class_count(g->g);
}

const char *cx_plugin_gen_class_name(const cx_plugin_gen_t *g, size_t i) {
    return i < cx_plugin_gen_class_count(g)
               ? g->p->t->class_name(g->g, (uint32_t)i)
               : NULL;
}

int cx_plugin_gen_class_index(const cx_plugin_gen_t *g, const char *name) {
    size_t n = cx_plugin_gen_class_count(g);
    for (size_t i = 0; i < n; i++) {
        const char *c = g->p->t->class_name(g->g, (uint32_t)i);
        if (c && strcmp(c, name) == 0) return (int)i;
    }
    return -1;
}

int cx_plugin_gen_concurrent(const cx_plugin_gen_t *g) {
    return (g->p->t->flags & CX_GENPLUG_F_CONCURRENT) != 0;
}

int cx_plugin_gen_generate(cx_plugin_gen_t *g, const cx_genplug_batch_t *b,
                           cx_err_t *err) {
    int serial = !cx_plugin_gen_concurrent(g);
    if (serial) pthread_mutex_lock(&g->mu);
    int rc = g->p->t->generate(g->g, b);
    if (rc != 0) map_rc(rc, g->p, "generate", g->p->t->last_error(g->g), err);
    if (serial) pthread_mutex_unlock(&g->mu);
    return rc == 0 ? 0 : -1;
}
