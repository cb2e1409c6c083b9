/* The CUDA generator: the CPU twin's model and samplers (cascade/gen.h), a
 * batch of images at a time on one GPU. Built when CASCADE_CUDA finds a
 * toolkit (cmake/CascadeCuda.cmake); kernels/README.md has the maths,
 * kernels/cuda/driver.h the launch sequence.
 *
 * Results match the CPU within the tolerance test_cuda_parity states (the
 * GPU sums in another order); on one GPU model they are deterministic, and
 * an image's bytes do not depend on the other images of its call. A handle
 * may be used from any thread, one call at a time. */
#ifndef CASCADE_GEN_CUDA_H
#define CASCADE_GEN_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "cascade/err.h"
#include "cascade/gen.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cx_cuda_gen cx_cuda_gen_t;

/* Usable GPUs; 0 when there is none or no driver (never an error). */
int cx_cuda_device_count(void);
/* Total and free memory of GPU `device`. */
int cx_cuda_device_memory(int device, uint64_t *total, uint64_t *free_bytes,
                          cx_err_t *err);
/* Its name ("NVIDIA H100 80GB HBM3") and peak memory bandwidth (bytes/s,
 * from the memory clock and bus width). */
int cx_cuda_device_info(int device, char *name, size_t name_len,
                        double *peak_bw, cx_err_t *err);

/* Device bytes a model needs (weights, batch buffers, cuBLAS), from its
 * checkpoint header (cx_checkpoint_probe). */
uint64_t cx_cuda_estimate(const cx_checkpoint_info_t *info, uint32_t batch);

/* Uploads m to GPU `device` for calls of up to `batch` images at a time
 * (larger calls are split). m may be destroyed afterwards. */
cx_cuda_gen_t *cx_cuda_gen_new(const cx_model_t *m, int device,
                               uint32_t batch, cx_err_t *err);
void cx_cuda_gen_destroy(cx_cuda_gen_t *g); /* NULL is fine */
uint64_t cx_cuda_gen_memory_bytes(const cx_cuda_gen_t *g);
uint32_t cx_cuda_gen_batch(const cx_cuda_gen_t *g);

/* n images of class class_idx, image i from (seeds[i], indices[i]), into
 * out (n x width*height, quantised to p->bit_depth). */
int cx_cuda_generate(cx_cuda_gen_t *g, size_t class_idx,
                     const cx_sample_params_t *p, const uint64_t *seeds,
                     const uint32_t *indices, size_t n, uint16_t *out,
                     cx_err_t *err);

/* Device bytes moved by one full batch of p (for bandwidth figures). */
double cx_cuda_batch_traffic(const cx_cuda_gen_t *g, size_t class_idx,
                             const cx_sample_params_t *p);

#ifdef __cplusplus
}
#endif

#endif
