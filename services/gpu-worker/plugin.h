/* Generator plug-ins in the gpu-worker: loading a shared library that
 * implements cascade/generator_abi.h (dlopen, entry symbol, ABI version and
 * table checks), a set of loaded plug-ins, choosing the plug-in and file
 * for a checkpoint name, and thin wrappers that turn the plug-in's return
 * codes and messages into cx_err_t.
 *
 * A plug-in that fails its checks (wrong ABI version, missing symbol, short
 * table) is refused with an error naming the library and the reason; the
 * set keeps the others, so the worker goes on serving the units their
 * checkpoints cover. Not thread-safe except where said: build the set
 * before the worker starts. */
#ifndef CX_WORKER_PLUGIN_H
#define CX_WORKER_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/generator_abi.h"

typedef struct cx_plugin cx_plugin_t;

/* dlopens `path` and checks it. NULL with err (CX_EIO: cannot be loaded;
 * CX_EINVAL: not a plug-in, or a wrong ABI version or table). */
cx_plugin_t *cx_plugin_open(const char *path, cx_err_t *err);
void cx_plugin_close(cx_plugin_t *p); /* NULL is fine */
const char *cx_plugin_name(const cx_plugin_t *p);
const char *cx_plugin_path(const cx_plugin_t *p);
const cx_genplug_t *cx_plugin_table(const cx_plugin_t *p);

/* ---- a set of plug-ins ----------------------------------------------- */

typedef struct cx_plugins cx_plugins_t;

cx_plugins_t *cx_plugins_new(cx_err_t *err);
void cx_plugins_destroy(cx_plugins_t *ps); /* closes them all; NULL ok */

/* Opens the plug-in at `path` and appends it (probed in the order added).
 * -1 with err when it is refused or its name is already in the set. */
int cx_plugins_add(cx_plugins_t *ps, const char *path, cx_err_t *err);

/* Called for each library of a directory that was refused. */
typedef void (*cx_plugins_refused_fn)(void *ctx, const char *path,
                                      const cx_err_t *why);

/* Adds every `*.so` file of `dir` in name order; each refused one is
 * reported through `refused` (may be NULL) and skipped. Returns the number
 * added, or -1 with err when the directory cannot be read. */
int cx_plugins_add_dir(cx_plugins_t *ps, const char *dir,
                       cx_plugins_refused_fn refused, void *ctx,
                       cx_err_t *err);

size_t cx_plugins_count(const cx_plugins_t *ps);
cx_plugin_t *cx_plugins_at(const cx_plugins_t *ps, size_t i);
cx_plugin_t *cx_plugins_find(const cx_plugins_t *ps, const char *name);

/* The plug-in and file for checkpoint `name` on `device`: the first
 * plug-in (in the set's order) whose probe accepts a file
 * <checkpoint_dir>/<name>.<ext> (files in name order), else the first whose
 * probe accepts the bare name (a built-in model such as ref-cxr-v0). The
 * checkpoint is then written to `path` (the file, or the bare name).
 * -1 with err: CX_EINVAL for a name that cannot be a file name, CX_ENOENT
 * when no plug-in accepts it (the message lists the files it found). */
int cx_plugins_resolve(const cx_plugins_t *ps, const char *checkpoint_dir,
                       const char *name, const char *device,
                       cx_plugin_t **plugin, char *path, size_t path_len,
                       cx_err_t *err);

/* Device memory as the first plug-in that knows `device` reports it. */
int cx_plugins_device_memory(const cx_plugins_t *ps, const char *device,
                             uint64_t *total, uint64_t *free_bytes,
                             cx_err_t *err);

/* ---- one loaded model ------------------------------------------------ */

typedef struct cx_plugin_gen cx_plugin_gen_t;

int cx_plugin_estimate(const cx_plugin_t *p, const cx_genplug_args_t *a,
                       uint64_t *bytes, cx_err_t *err);
/* Loads the model (the plug-in's create). NULL with err. */
cx_plugin_gen_t *cx_plugin_create(const cx_plugin_t *p,
                                  const cx_genplug_args_t *a, cx_err_t *err);
void cx_plugin_gen_destroy(cx_plugin_gen_t *g); /* NULL is fine */
uint64_t cx_plugin_gen_memory(const cx_plugin_gen_t *g);
const cx_plugin_t *cx_plugin_gen_plugin(const cx_plugin_gen_t *g);
size_t cx_plugin_gen_class_count(const cx_plugin_gen_t *g);
const char *cx_plugin_gen_class_name(const cx_plugin_gen_t *g, size_t i);
/* Index of class `name`, or -1. */
int cx_plugin_gen_class_index(const cx_plugin_gen_t *g, const char *name);
/* 1 when generate may run on several threads at once on this model. */
int cx_plugin_gen_concurrent(const cx_plugin_gen_t *g);
/* The plug-in's generate; calls are serialised here unless the plug-in is
 * concurrent, so any thread may call it. */
int cx_plugin_gen_generate(cx_plugin_gen_t *g, const cx_genplug_batch_t *b,
                           cx_err_t *err);

#endif
