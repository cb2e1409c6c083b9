/* The throughput model: seconds per sample for each (unit type, GPU type),
 * where a unit type is (checkpoint, width, height, sampler steps), plus
 * each checkpoint's cold-load time and memory need.
 *
 * Estimates start from priors (configuration: per GPU type at a reference
 * unit type, scaled by steps x pixels; or per cell) and are learned online
 * from reported timings as an exponentially weighted mean of log(seconds
 * per sample) whose residuals are clipped at `clip` standard deviations, so
 * one stalled or instant batch cannot swing the estimate. A cell that has
 * seen nothing borrows from measured cells of the same unit type (or the
 * same GPU type) through the ratio of their priors.
 *
 * Part of the scheduling policy library: no I/O, not thread-safe; the live
 * scheduler, cascade-sim and cascadectl plan use this same code. */
#ifndef CX_SCHED_MODEL_H
#define CX_SCHED_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"

#define CX_TPUT_MAX_GPU 32  /* distinct GPU types */
#define CX_TPUT_NAME_MAX 128

typedef struct cx_tput cx_tput_t;

typedef struct cx_tput_conf {
    double alpha_min;   /* EWMA weight once warmed up (0.05) */
    double clip;        /* residual clip in standard deviations (3) */
    double init_sd;     /* log-sd assumed after the first sample (0.15) */
    double min_sd;      /* floor of the log-sd used for clipping (0.03) */
    double default_sps; /* prior seconds per sample when nothing is known */
    double default_load_s;  /* cold load when the checkpoint is unknown */
    uint32_t ref_width, ref_height, ref_steps; /* the priors' unit type */
} cx_tput_conf_t;

/* The defaults above (default_sps 1, default_load_s 30, ref 512x512x50). */
void cx_tput_conf_default(cx_tput_conf_t *c);

cx_tput_t *cx_tput_new(const cx_tput_conf_t *conf); /* NULL: out of memory */
void cx_tput_destroy(cx_tput_t *m);
const cx_tput_conf_t *cx_tput_conf(const cx_tput_t *m);

/* Interning: a dense id >= 0 for the name (created on first use), or -1
 * when out of memory or past CX_TPUT_MAX_GPU GPU types. */
int cx_tput_gtype(cx_tput_t *m, const char *gpu_type);
int cx_tput_ckpt(cx_tput_t *m, const char *checkpoint);
int cx_tput_utype(cx_tput_t *m, const char *checkpoint, uint32_t width,
                  uint32_t height, uint32_t steps);
size_t cx_tput_ngtypes(const cx_tput_t *m);
size_t cx_tput_nutypes(const cx_tput_t *m);
size_t cx_tput_nckpts(const cx_tput_t *m);
const char *cx_tput_gtype_name(const cx_tput_t *m, int g);
const char *cx_tput_ckpt_name(const cx_tput_t *m, int k);
/* The unit type's checkpoint id, and "ckpt|WxH|steps" (its display key). */
int cx_tput_utype_ckpt(const cx_tput_t *m, int ut);
const char *cx_tput_utype_key(const cx_tput_t *m, int ut);

/* Priors. gpu: seconds per sample of the reference unit type on that GPU
 * type. cell: seconds per sample of exactly (ut, g). */
void cx_tput_prior_gpu(cx_tput_t *m, int g, double sps);
void cx_tput_prior_cell(cx_tput_t *m, int ut, int g, double sps);
/* Checkpoint: cold load seconds and bytes it needs resident (0: unknown). */
void cx_tput_set_ckpt(cx_tput_t *m, int k, double load_s, uint64_t mem_bytes);
double cx_tput_load_s(const cx_tput_t *m, int k);
uint64_t cx_tput_mem(const cx_tput_t *m, int k);

/* One measured unit: `samples` samples of ut on g in `seconds` (excluding
 * any cold load). Ignored when either is not positive. */
void cx_tput_observe(cx_tput_t *m, int ut, int g, uint32_t samples,
                     double seconds);
/* A measured cold load of checkpoint k (same robust estimate). */
void cx_tput_observe_load(cx_tput_t *m, int k, double seconds);

/* Expected seconds per sample of ut on g (learned, borrowed or prior). */
double cx_tput_sps(const cx_tput_t *m, int ut, int g);
/* Relative standard error of that estimate (the prior's is 0.5). */
double cx_tput_rel_se(const cx_tput_t *m, int ut, int g);

/* One learned cell, for display and persistence. */
typedef struct cx_tput_cell {
    int ut, g;
    double mean_log; /* mean of ln(seconds per sample) */
    double var_log;  /* its EW variance */
    uint64_t n;      /* observations */
} cx_tput_cell_t;

/* Learned cells in (ut, g) order: fills up to max, returns how many exist. */
size_t cx_tput_cells(const cx_tput_t *m, cx_tput_cell_t *out, size_t max);
/* Restores a learned cell (a scheduler restart reads them back). */
void cx_tput_restore(cx_tput_t *m, int ut, int g, double mean_log,
                     double var_log, uint64_t n);

/* Reads priors from a JSON document:
 *   {"reference": {"width": 512, "height": 512, "steps": 50},
 *    "default_sec_per_sample": 1.0, "default_load_s": 30,
 *    "gpu_types": {"H100": {"sec_per_sample": 0.76}, ...},
 *    "cells": [{"checkpoint": "c", "width": 512, "height": 512,
 *               "steps": 50, "gpu_type": "H100", "sec_per_sample": 0.7}],
 *    "checkpoints": {"ref-cxr-v0": {"load_s": 90, "mem_bytes": 2e10}},
 *    "learn": {"alpha_min": 0.05, "clip": 3}}
 * Every key is optional; unknown keys are errors naming the path. */
int cx_tput_configure_json(cx_tput_t *m, const char *text, size_t len,
                           cx_err_t *err);

/* The same from a parsed document: json is a const cJSON * (an object). */
int cx_tput_configure_obj(cx_tput_t *m, const void *json, cx_err_t *err);

/* "ckpt|WxH|steps" into buf; parses it back (-1 when malformed). */
void cx_tput_key_format(char *buf, size_t size, const char *ckpt,
                        uint32_t width, uint32_t height, uint32_t steps);
int cx_tput_key_parse(const char *key, char *ckpt, size_t ckpt_size,
                      uint32_t *width, uint32_t *height, uint32_t *steps);

#endif
