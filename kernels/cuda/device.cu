/* device.cu - CUDA device discovery (see kernels.h). */
#include "kernels/cuda/cuda_check.cuh"

extern "C" {
#include "common/err.h"
#include "kernels/kernels.h"
}

#include <cstdio>
#include <cstring>

extern "C" int kern_cuda_built(void) { return 1; }

extern "C" int kern_cuda_device_count(const char **why)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why)
            *why = cudaGetErrorString(e);
        cudaGetLastError(); /* clear the sticky error for later calls */
        return 0;
    }
    if (n == 0 && why)
        *why = "no CUDA device found";
    return n;
}

extern "C" int kern_cuda_device_info(int dev, struct kern_gpu_info *info)
{
    int n = kern_cuda_device_count(NULL);
    if (dev < 0 || dev >= n)
        return err_set(ERR_NOTFOUND, "CUDA device %d does not exist (%d found)", dev, n);
    cudaDeviceProp p;
    CUDA_TRY(cudaGetDeviceProperties(&p, dev));
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    info->sm_count = p.multiProcessorCount;
    CUDA_TRY(cudaSetDevice(dev));
    CUDA_TRY(cudaMemGetInfo(&info->free_bytes, &info->total_bytes));
    return 0;
}
