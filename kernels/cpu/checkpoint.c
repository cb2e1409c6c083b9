/* .cxck checkpoint files: writer, loader and name resolution (the format is
 * documented in docs/CHECKPOINT.md; the constants here are its contract).
 *
 * Layout: a header (fixed part, class table, component table, SHA-256 of
 * all of that, zero padding to 64 bytes), the components' data sections
 * back to back (the same layout as the model's memory, see
 * cx__section_bytes, so the data is read straight into place), and a
 * trailer (end magic, file size, SHA-256 of everything before it). Each
 * component record carries its own section's SHA-256, so a corrupt file is
 * reported by the component it hits. The header parser works on bytes and
 * never touches a file, so the checks are unit-testable. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cascade/sha256.h"
#include "model_impl.h"

#define MAGIC "CXCK\r\n\x1a\n"
#define END_MAGIC "CXCKEND\n"
#define VERSION 1u
#define DTYPE_F32LE 1u
#define FIXED_BYTES 128u
#define CLASS_REC 48u
#define COMP_REC 64u
#define TRAILER_BYTES 64u
#define MAX_PATH 4096

typedef struct hdr {
    uint32_t version, header_bytes, width, height, nclasses, ncomp, dtype;
    uint64_t data_bytes, file_bytes;
    char name[CX__NAME_MAX];
    const uint8_t *classes; /* nclasses records inside the header buffer */
    const uint8_t *comps;   /* ncomp records */
} hdr_t;

/* ---- little-endian fields -------------------------------------------- */

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static double rdf64(const uint8_t *p)
{
    uint64_t u = rd64(p);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

static void wrf64(uint8_t *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    wr64(p, u);
}

static int host_is_le(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static void swap32_all(void *data, size_t bytes)
{
    uint8_t *p = data;
    for (size_t i = 0; i + 4 <= bytes; i += 4) {
        uint8_t t = p[i];
        p[i] = p[i + 3];
        p[i + 3] = t;
        t = p[i + 1];
        p[i + 1] = p[i + 2];
        p[i + 2] = t;
    }
}

/* ---- header codec ----------------------------------------------------- */

static size_t tables_end(uint32_t nclasses, uint32_t ncomp)
{
    return FIXED_BYTES + (size_t)nclasses * CLASS_REC +
           (size_t)ncomp * COMP_REC;
}

static size_t header_size(uint32_t nclasses, uint32_t ncomp)
{
    return (tables_end(nclasses, ncomp) + 32 + 63) / 64 * 64;
}

/* The fixed part: enough to know how long the header is. */
static int parse_fixed(const uint8_t *b, const char *what, hdr_t *h,
                       cx_err_t *err)
{
    if (memcmp(b, MAGIC, 8) != 0)
        return cx_err_set(err, CX_EMODEL, 0,
                          "checkpoint %s: bad magic (not a .cxck file)", what);
    h->version = rd32(b + 8);
    if (h->version != VERSION)
        return cx_err_set(err, CX_EMODEL, 0,
                          "checkpoint %s: format version %u not supported "
                          "(this build reads version %u)",
                          what, h->version, VERSION);
    h->header_bytes = rd32(b + 12);
    h->width = rd32(b + 16);
    h->height = rd32(b + 20);
    h->nclasses = rd32(b + 24);
    h->ncomp = rd32(b + 28);
    h->dtype = rd32(b + 32);
    uint32_t flags = rd32(b + 36);
    h->data_bytes = rd64(b + 40);
    h->file_bytes = rd64(b + 48);
    memcpy(h->name, b + 56, CX__NAME_MAX);
    if (h->dtype != DTYPE_F32LE || flags != 0)
        return cx_err_set(err, CX_EMODEL, 0,
                          "checkpoint %s: dtype %u flags %u not supported "
                          "(want dtype 1 = float32 little-endian, flags 0)",
                          what, h->dtype, flags);
    if (h->nclasses < 1 || h->nclasses > CX__MAX_CLASSES ||
        h->ncomp < h->nclasses || h->ncomp > CX__MAX_COMPONENTS ||
        h->header_bytes != header_size(h->nclasses, h->ncomp))
        return cx_err_set(err, CX_EMODEL, 0,
                          "checkpoint %s: corrupt header (%u classes, %u "
                          "components, header %u bytes)",
                          what, h->nclasses, h->ncomp, h->header_bytes);
    if (h->width < CX__MIN_SIDE || h->height < CX__MIN_SIDE ||
        h->width > CX__MAX_SIDE || h->height > CX__MAX_SIDE)
        return cx_err_set(err, CX_EMODEL, 0,
                          "checkpoint %s: corrupt header (size %ux%u)", what,
                          h->width, h->height);
    if (memchr(h->name, '\0', CX__NAME_MAX) == NULL)
        return cx_err_set(err, CX_EMODEL, 0,
                          "checkpoint %s: corrupt header (name)", what);
    return 0;
}

/* The tables, after parse_fixed, with the whole header in b. */
static int parse_tables(const uint8_t *b, const char *what, hdr_t *h,
                        cx_err_t *err)
{
    size_t end = tables_end(h->nclasses, h->ncomp);
    uint8_t dg[32];
    cx_sha256(b, end, dg);
    if (memcmp(dg, b + end, 32) != 0)
        return cx_err_set(err, CX_EMODEL, 0,
                          "checkpoint %s: header checksum mismatch (corrupt "
                          "header)", what);
    h->classes = b + FIXED_BYTES;
    h->comps = h->classes + (size_t)h->nclasses * CLASS_REC;
    size_t d = (size_t)h->width * h->height;
    uint64_t off = h->header_bytes, rows = 0;
    uint32_t k = 0;
    for (uint32_t c = 0; c < h->nclasses; c++) {
        const uint8_t *cr = h->classes + (size_t)c * CLASS_REC;
        uint32_t n = rd32(cr + 40);
        if (memchr(cr, '\0', CX__CLASS_NAME_MAX) == NULL || cr[0] == '\0' ||
            n < 1 || n > h->ncomp - k)
            return cx_err_set(err, CX_EMODEL, 0,
                              "checkpoint %s: bad class record %u", what, c);
        for (uint32_t j = 0; j < n; j++, k++) {
            const uint8_t *kr = h->comps + (size_t)k * COMP_REC;
            uint32_t rank = rd32(kr + 4);
            if (rd32(kr) != c || rank > CX__MAX_RANK || rd64(kr + 24) != off)
                return cx_err_set(err, CX_EMODEL, 0,
                                  "checkpoint %s: bad component record %u",
                                  what, k);
            off += cx__section_bytes(d, rank);
            rows += 1 + rank;
        }
    }
    if (k != h->ncomp || rows > CX__MAX_ROWS ||
        off - h->header_bytes != h->data_bytes ||
        h->file_bytes != off + TRAILER_BYTES)
        return cx_err_set(err, CX_EMODEL, 0,
                          "checkpoint %s: inconsistent header (%u of %u "
                          "components, %llu data bytes)",
                          what, k, h->ncomp,
                          (unsigned long long)h->data_bytes);
    return 0;
}

/* ---- reading ---------------------------------------------------------- */

static int read_exact(FILE *f, void *buf, size_t n, const char *what,
                      cx_err_t *err)
{
    if (fread(buf, 1, n, f) == n)
        return 0;
    if (ferror(f))
        return cx_err_set(err, CX_EIO, 1, "checkpoint %s: read: %s", what,
                          strerror(errno));
    return cx_err_set(err, CX_EMODEL, 0, "checkpoint %s: truncated", what);
}

/* Opens path and reads and checks its header into *hb (malloc'd). */
static FILE *open_header(const char *path, hdr_t *h, uint8_t **hb,
                         cx_err_t *err)
{
    *hb = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        cx_err_set(err, errno == ENOENT ? CX_ENOENT : CX_EIO, errno != ENOENT,
                   "checkpoint %s: %s", path, strerror(errno));
        return NULL;
    }
    uint8_t fixed[FIXED_BYTES];
    if (read_exact(f, fixed, sizeof fixed, path, err) != 0 ||
        parse_fixed(fixed, path, h, err) != 0)
        goto fail;
    *hb = malloc(h->header_bytes);
    if (!*hb) {
        cx_err_set(err, CX_ENOMEM, 1, "checkpoint %s: out of memory", path);
        goto fail;
    }
    memcpy(*hb, fixed, sizeof fixed);
    if (read_exact(f, *hb + FIXED_BYTES, h->header_bytes - FIXED_BYTES, path,
                   err) != 0 ||
        parse_tables(*hb, path, h, err) != 0)
        goto fail;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (uint64_t)st.st_size != h->file_bytes) {
        cx_err_set(err, CX_EMODEL, 0,
                   "checkpoint %s: %s (file is %lld bytes, header says %llu)",
                   path, (uint64_t)st.st_size < h->file_bytes ? "truncated"
                                                              : "trailing "
                                                                "garbage",
                   (long long)st.st_size, (unsigned long long)h->file_bytes);
        goto fail;
    }
    return f;
fail:
    free(*hb);
    *hb = NULL;
    fclose(f);
    return NULL;
}

static int verify_data(const cx_model_t *m, const hdr_t *h,
                       const uint8_t *hb, const uint8_t *trailer,
                       const char *path, cx_err_t *err)
{
    if (memcmp(trailer, END_MAGIC, 8) != 0 ||
        rd64(trailer + 8) != h->file_bytes)
        return cx_err_set(err, CX_EMODEL, 0,
                          "checkpoint %s: bad trailer (truncated or corrupt)",
                          path);
    const uint8_t *p = (const uint8_t *)m->data;
    for (uint32_t k = 0; k < h->ncomp; k++) {
        const uint8_t *kr = h->comps + (size_t)k * COMP_REC;
        size_t n = cx__section_bytes(m->npix, rd32(kr + 4));
        uint8_t dg[32];
        cx_sha256(p, n, dg);
        if (memcmp(dg, kr + 32, 32) != 0)
            return cx_err_set(err, CX_EMODEL, 0,
                              "checkpoint %s: component %u (class '%s') data "
                              "checksum mismatch (corrupt)",
                              path, k,
                              (const char *)h->classes +
                                  (size_t)rd32(kr) * CLASS_REC);
        p += n;
    }
    uint8_t dg[32];
    unsigned dl = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, hb, h->header_bytes) == 1 &&
             EVP_DigestUpdate(ctx, m->data, m->data_bytes) == 1 &&
             EVP_DigestFinal_ex(ctx, dg, &dl) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return cx_err_set(err, CX_ENOMEM, 1, "checkpoint %s: sha256 failed",
                          path);
    if (memcmp(dg, trailer + 16, 32) != 0)
        return cx_err_set(err, CX_EMODEL, 0,
                          "checkpoint %s: file checksum mismatch (corrupt)",
                          path);
    return 0;
}

/* Fills names, priors, weights and s2 of a model allocated from h. */
static void fill_from_header(cx_model_t *m, const hdr_t *h)
{
    for (uint32_t c = 0; c < h->nclasses; c++) {
        const uint8_t *cr = h->classes + (size_t)c * CLASS_REC;
        memcpy(m->names[c], cr, CX__CLASS_NAME_MAX);
        m->prior[c] = rdf64(cr + 32);
    }
    for (uint32_t k = 0; k < h->ncomp; k++) {
        const uint8_t *kr = h->comps + (size_t)k * COMP_REC;
        m->comp[k].weight = rdf64(kr + 8);
        m->comp[k].s2 = rdf64(kr + 16);
    }
}

static cx_model_t *load(const char *path, const char *name, uint32_t width,
                        uint32_t height, cx_err_t *err)
{
    hdr_t h;
    uint8_t *hb = NULL, trailer[TRAILER_BYTES];
    uint32_t *cls = NULL, *rank = NULL;
    cx_model_t *m = NULL;
    FILE *f = open_header(path, &h, &hb, err);
    if (!f)
        return NULL;
    if ((width || height) && (width != h.width || height != h.height)) {
        cx_err_set(err, CX_EINVAL, 0,
                   "checkpoint %s is %ux%u, not the %ux%u asked for", path,
                   h.width, h.height, width, height);
        goto done;
    }
    cls = malloc(h.ncomp * sizeof *cls);
    rank = malloc(h.ncomp * sizeof *rank);
    if (!cls || !rank) {
        cx_err_set(err, CX_ENOMEM, 1, "checkpoint %s: out of memory", path);
        goto done;
    }
    for (uint32_t k = 0; k < h.ncomp; k++) {
        cls[k] = rd32(h.comps + (size_t)k * COMP_REC);
        rank[k] = rd32(h.comps + (size_t)k * COMP_REC + 4);
    }
    m = cx__model_alloc(name ? name : h.name, h.width, h.height, h.nclasses,
                        h.ncomp, cls, rank, err);
    if (!m)
        goto done;
    if (m->data_bytes != h.data_bytes) {
        cx_err_set(err, CX_EMODEL, 0, "checkpoint %s: data size mismatch",
                   path);
        goto fail;
    }
    if (read_exact(f, m->data, m->data_bytes, path, err) != 0 ||
        read_exact(f, trailer, sizeof trailer, path, err) != 0 ||
        verify_data(m, &h, hb, trailer, path, err) != 0)
        goto fail;
    if (!host_is_le())
        swap32_all(m->data, m->data_bytes);
    fill_from_header(m, &h);
    if (cx__model_finish(m, err) != 0) {
        cx_err_wrap(err, "checkpoint %s", path);
        goto fail;
    }
    goto done;
fail:
    cx_model_destroy(m);
    m = NULL;
done:
    free(cls);
    free(rank);
    free(hb);
    fclose(f);
    return m;
}

/* ---- names ------------------------------------------------------------ */

static int name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= CX__NAME_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* <dir>/<name>.cxck into buf; -1 with err when there is no such path. */
static int ckpt_path(const char *dir, const char *name, char *buf,
                     size_t cap, cx_err_t *err)
{
    if (!name_ok(name))
        return cx_err_set(err, CX_EINVAL, 0, "bad checkpoint name '%s'",
                          name ? name : "(null)");
    if (!dir)
        dir = getenv("CASCADE_CHECKPOINT_DIR");
    if (!dir || !*dir)
        return cx_err_set(err, CX_ENOENT, 0,
                          "unknown checkpoint '%s' (no checkpoint_dir "
                          "configured)", name);
    int n = snprintf(buf, cap, "%s/%s%s", dir, name, CX_CHECKPOINT_EXT);
    if (n < 0 || (size_t)n >= cap)
        return cx_err_set(err, CX_EINVAL, 0, "checkpoint path too long");
    return 0;
}

int cx_checkpoint_has_class_in(const char *dir, const char *checkpoint,
                               const char *class_name)
{
    if (!checkpoint || !class_name)
        return 0;
    if (strcmp(checkpoint, CX__REF_V0) == 0)
        return cx__refmodel_has_class(class_name);
    char path[MAX_PATH];
    hdr_t h;
    uint8_t *hb;
    if (ckpt_path(dir, checkpoint, path, sizeof path, NULL) != 0)
        return 0;
    FILE *f = open_header(path, &h, &hb, NULL);
    if (!f)
        return 0;
    int found = 0;
    for (uint32_t c = 0; c < h.nclasses && !found; c++)
        found = strcmp((const char *)h.classes + (size_t)c * CLASS_REC,
                       class_name) == 0;
    free(hb);
    fclose(f);
    return found;
}

int cx_checkpoint_has_class(const char *checkpoint, const char *class_name)
{
    return cx_checkpoint_has_class_in(NULL, checkpoint, class_name);
}

/* An upper bound of cx_model_memory_bytes: rows is the number of mean and
 * basis rows, wrows an upper bound of W's (rows, or less where known). */
static uint64_t memory_estimate(uint64_t d, uint64_t data_bytes,
                                uint64_t rows, uint64_t wrows,
                                uint32_t ncomp)
{
    return sizeof(cx_model_t) + data_bytes + wrows * d * sizeof(float) +
           rows * wrows * sizeof(double) + (uint64_t)ncomp * 256 +
           CX__MAX_CLASSES * 64;
}

int cx_checkpoint_probe(const char *dir, const char *name, uint32_t width,
                        uint32_t height, cx_checkpoint_info_t *info,
                        cx_err_t *err)
{
    memset(info, 0, sizeof *info);
    if (name && strcmp(name, CX__REF_V0) == 0) {
        uint64_t d = (uint64_t)width * height;
        info->width = width;
        info->height = height;
        info->nclasses = info->ncomponents = 4;
        info->rows = 4 * 15;
        /* 14 shared directions and the four means */
        info->memory_bytes = memory_estimate(
            d, 4 * cx__section_bytes(d, 14), info->rows, 18, 4);
        return 0;
    }
    char path[MAX_PATH];
    hdr_t h;
    uint8_t *hb;
    if (ckpt_path(dir, name, path, sizeof path, err) != 0)
        return -1;
    FILE *f = open_header(path, &h, &hb, err);
    if (!f)
        return -1;
    info->width = h.width;
    info->height = h.height;
    info->nclasses = h.nclasses;
    info->ncomponents = h.ncomp;
    for (uint32_t k = 0; k < h.ncomp; k++)
        info->rows += 1 + rd32(h.comps + (size_t)k * COMP_REC + 4);
    info->file_bytes = h.file_bytes;
    size_t *crows = calloc(h.nclasses, sizeof *crows);
    if (!crows) {
        free(hb);
        fclose(f);
        return cx_err_set(err, CX_ENOMEM, 1, "probe: out of memory");
    }
    for (uint32_t k = 0; k < h.ncomp; k++) {
        const uint8_t *kr = h.comps + (size_t)k * COMP_REC;
        crows[rd32(kr)] += 1 + rd32(kr + 4);
    }
    /* W, and as many rows again for the class-local bases if it has them */
    uint64_t wrows = info->rows *
                     (cx__model_wants_local(h.nclasses, crows) ? 2 : 1);
    free(crows);
    info->memory_bytes = memory_estimate((uint64_t)h.width * h.height,
                                         h.data_bytes, info->rows, wrows,
                                         h.ncomp);
    free(hb);
    fclose(f);
    return 0;
}

cx_model_t *cx_model_open_named(const char *dir, const char *name,
                                uint32_t width, uint32_t height,
                                cx_err_t *err)
{
    if (name && strcmp(name, CX__REF_V0) == 0)
        return cx__refmodel_build(width, height, err);
    char path[MAX_PATH];
    if (ckpt_path(dir, name, path, sizeof path, err) != 0)
        return NULL;
    cx_model_t *m = load(path, name, width, height, err);
    if (!m && err && err->code == CX_ENOENT)
        cx_err_set(err, CX_ENOENT, 0, "unknown checkpoint '%s' (no %s)", name,
                   path);
    return m;
}

cx_model_t *cx_model_open_file(const char *path, cx_err_t *err)
{
    if (!path) {
        cx_err_set(err, CX_EINVAL, 0, "checkpoint: no path");
        return NULL;
    }
    return load(path, NULL, 0, 0, err);
}

cx_model_t *cx_model_open(const char *checkpoint, uint32_t width,
                          uint32_t height, cx_err_t *err)
{
    return cx_model_open_named(NULL, checkpoint, width, height, err);
}

/* ---- writing ---------------------------------------------------------- */

/* Section k's bytes in file order (a swapped copy on big-endian hosts). */
static const uint8_t *section_le(const cx_model_t *m, const uint8_t *p,
                                 size_t n, uint8_t **tmp)
{
    if (host_is_le())
        return p;
    uint8_t *t = realloc(*tmp, n);
    if (!t)
        return NULL;
    *tmp = t;
    memcpy(t, p, n);
    swap32_all(t, n);
    (void)m;
    return t;
}

static uint8_t *build_header(const cx_model_t *m, size_t *len)
{
    uint32_t nc = (uint32_t)m->nclasses, nk = (uint32_t)m->ncomp;
    size_t hbytes = header_size(nc, nk), end = tables_end(nc, nk);
    uint8_t *b = calloc(1, hbytes);
    if (!b)
        return NULL;
    memcpy(b, MAGIC, 8);
    wr32(b + 8, VERSION);
    wr32(b + 12, (uint32_t)hbytes);
    wr32(b + 16, m->width);
    wr32(b + 20, m->height);
    wr32(b + 24, nc);
    wr32(b + 28, nk);
    wr32(b + 32, DTYPE_F32LE);
    wr64(b + 40, m->data_bytes);
    wr64(b + 48, hbytes + m->data_bytes + TRAILER_BYTES);
    snprintf((char *)b + 56, CX__NAME_MAX, "%s", m->name);
    for (uint32_t c = 0; c < nc; c++) {
        uint8_t *cr = b + FIXED_BYTES + (size_t)c * CLASS_REC;
        memcpy(cr, m->names[c], CX__CLASS_NAME_MAX);
        wrf64(cr + 32, m->prior[c]);
        wr32(cr + 40, (uint32_t)(m->first[c + 1] - m->first[c]));
    }
    uint64_t off = hbytes;
    uint8_t *tmp = NULL;
    const uint8_t *p = (const uint8_t *)m->data;
    for (uint32_t k = 0; k < nk; k++) {
        const cx__comp_t *c = &m->comp[k];
        uint8_t *kr = b + FIXED_BYTES + (size_t)nc * CLASS_REC +
                      (size_t)k * COMP_REC;
        size_t n = cx__section_bytes(m->npix, c->rank);
        const uint8_t *le = section_le(m, p, n, &tmp);
        if (!le) {
            free(tmp);
            free(b);
            return NULL;
        }
        wr32(kr, (uint32_t)c->cls);
        wr32(kr + 4, c->rank);
        wrf64(kr + 8, c->weight);
        wrf64(kr + 16, c->s2);
        wr64(kr + 24, off);
        cx_sha256(le, n, kr + 32);
        off += n;
        p += n;
    }
    free(tmp);
    cx_sha256(b, end, b + end);
    *len = hbytes;
    return b;
}

static int write_body(const cx_model_t *m, FILE *f, const uint8_t *hb,
                      size_t hlen)
{
    uint8_t trailer[TRAILER_BYTES] = {0}, *tmp = NULL;
    unsigned dl = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             fwrite(hb, 1, hlen, f) == hlen &&
             EVP_DigestUpdate(ctx, hb, hlen) == 1;
    const uint8_t *p = (const uint8_t *)m->data;
    for (size_t k = 0; ok && k < m->ncomp; k++) {
        size_t n = cx__section_bytes(m->npix, m->comp[k].rank);
        const uint8_t *le = section_le(m, p, n, &tmp);
        ok = le && fwrite(le, 1, n, f) == n &&
             EVP_DigestUpdate(ctx, le, n) == 1;
        p += n;
    }
    memcpy(trailer, END_MAGIC, 8);
    wr64(trailer + 8, hlen + m->data_bytes + TRAILER_BYTES);
    ok = ok && EVP_DigestFinal_ex(ctx, trailer + 16, &dl) == 1 &&
         fwrite(trailer, 1, sizeof trailer, f) == sizeof trailer;
    EVP_MD_CTX_free(ctx);
    free(tmp);
    return ok ? 0 : -1;
}

int cx_model_save(const cx_model_t *m, const char *path, cx_err_t *err)
{
    char tmp[MAX_PATH];
    size_t hlen = 0;
    if (!m || !path)
        return cx_err_set(err, CX_EINVAL, 0, "save: missing argument");
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp)
        return cx_err_set(err, CX_EINVAL, 0, "save: path too long");
    uint8_t *hb = build_header(m, &hlen);
    if (!hb)
        return cx_err_set(err, CX_ENOMEM, 1, "save %s: out of memory", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        cx_err_set(err, CX_EIO, 1, "save %s: %s", tmp, strerror(errno));
        free(hb);
        return -1;
    }
    int rc = write_body(m, f, hb, hlen);
    int saved_errno = errno;
    free(hb);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = -1;
    if (fclose(f) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc != 0) {
        cx_err_set(err, CX_EIO, 1, "save %s: %s", path,
                   strerror(errno ? errno : saved_errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
