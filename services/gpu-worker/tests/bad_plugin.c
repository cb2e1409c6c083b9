/* Plug-ins the loader must refuse, one per build variant:
 *   BAD_ABI      a table of ABI version CX_GENPLUG_ABI_VERSION + 1
 *   SHORT_TABLE  a table whose struct_size is shorter than this ABI's
 *   NO_ENTRY     no cx_generator_plugin symbol at all
 * Every function fails: none of them may ever be called. */
#include <stddef.h>

#include "cascade/generator_abi.h"

static int probe(const char *c, const char *d) {
    (void)c;
    (void)d;
    return 1;
}

static int estimate(const cx_genplug_args_t *a, uint64_t *b, char *e,
                    size_t n) {
    (void)a, (void)b, (void)e, (void)n;
    return CX_GENPLUG_EINVAL;
}

static int create(const cx_genplug_args_t *a, cx_genplug_gen_t **g, char *e,
                  size_t n) {
    (void)a, (void)e, (void)n;
    *g = NULL;
    return CX_GENPLUG_EINVAL;
}

static uint64_t mem(const cx_genplug_gen_t *g) { return (void)g, 0; }
static uint32_t count(const cx_genplug_gen_t *g) { return (void)g, 0; }
static const char *cname(const cx_genplug_gen_t *g, uint32_t i) {
    return (void)g, (void)i, NULL;
}
static int gen(cx_genplug_gen_t *g, const cx_genplug_batch_t *b) {
    return (void)g, (void)b, CX_GENPLUG_EINVAL;
}
static const char *last(const cx_genplug_gen_t *g) { return (void)g, "bad"; }
static void destroy(cx_genplug_gen_t *g) { (void)g; }

static const cx_genplug_t table = {
#ifdef BAD_ABI
    .abi_version = CX_GENPLUG_ABI_VERSION + 1,
#else
    .abi_version = CX_GENPLUG_ABI_VERSION,
#endif
#ifdef SHORT_TABLE
    .struct_size = offsetof(cx_genplug_t, generate),
#else
    .struct_size = sizeof(cx_genplug_t),
#endif
    .name = "bad",
    .version = "0",
    .probe = probe,
    .estimate = estimate,
    .create = create,
    .memory_bytes = mem,
    .class_count = count,
    .class_name = cname,
    .generate = gen,
    .last_error = last,
    .destroy = destroy,
};

#ifndef NO_ENTRY
CX_GENPLUG_EXPORT const cx_genplug_t *cx_generator_plugin(uint32_t v) {
    (void)v;
    return &table;
}
#else
CX_GENPLUG_EXPORT const cx_genplug_t *not_the_entry(uint32_t v) {
    (void)v;
    return &table;
}
#endif
