/* Training-set feature files (.cxfeat): the feature vectors of the images a
 * checkpoint was fitted on, kept for the privacy gate (a generated image too
 * close to a training image is a leak). Written by cxfit next to the .cxck;
 * the format is in docs/CHECKPOINT.md. A float32 matrix (one row per
 * training image) with each row's class, the class names, the layout
 * version of the feature extractor that produced it, and a SHA-256 of the
 * contents. The codec is pure (bytes in, struct out); the file calls wrap
 * it with I/O. */
#ifndef CASCADE_FEATFILE_H
#define CASCADE_FEATFILE_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/util.h"

#define CX_FEATFILE_EXT ".cxfeat"

typedef struct cx_featfile {
    char checkpoint[64];  /* the checkpoint fitted on this set */
    uint32_t layout;      /* feature extractor's layout version */
    uint32_t rows, cols;
    uint32_t nclasses;
    char (*class_names)[32];
    uint32_t *row_class;  /* rows */
    float *data;          /* rows x cols, row-major */
} cx_featfile_t;

/* Appends the encoded file to out. */
int cx_featfile_encode(const cx_featfile_t *f, cx_buf_t *out, cx_err_t *err);
/* Decodes and checks (magic, version, sizes, checksum) into *f, whose
 * arrays are malloc'd (cx_featfile_free). CX_EDECODE on bad bytes. */
int cx_featfile_decode(const void *data, size_t len, cx_featfile_t *f,
                       cx_err_t *err);
void cx_featfile_free(cx_featfile_t *f);

/* Write (through path.tmp and a rename) and read a file. */
int cx_featfile_save(const cx_featfile_t *f, const char *path, cx_err_t *err);
int cx_featfile_load(const char *path, cx_featfile_t *f, cx_err_t *err);

#endif
