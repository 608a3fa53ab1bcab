/*
 * kernels.h - the only interface to the compute kernels. CPU kernels live in
 * kernels/cpu/, CUDA kernels in kernels/cuda/ (built when nvcc is found);
 * both sit behind the prototypes declared here. Kernels know nothing about
 * files, JSON or models: plain pointers, shapes and dtypes.
 */
#ifndef LODE_KERNELS_H
#define LODE_KERNELS_H

#include <stddef.h>

/* ---- CUDA availability */

struct kern_gpu_info {
    char name[256];
    size_t total_bytes, free_bytes;
    int cc_major, cc_minor; /* compute capability */
    int sm_count;
};

/* 1 when this binary was built with CUDA kernels. */
int kern_cuda_built(void);

/* Number of usable CUDA devices; 0 when none or when built without CUDA.
 * Never fails: the reason for 0 is in *why when why is non-NULL. */
int kern_cuda_device_count(const char **why);

/* Properties of device `dev`; 0 or ERR_UNSUPPORTED/ERR_NOTFOUND. */
int kern_cuda_device_info(int dev, struct kern_gpu_info *info);

#endif
