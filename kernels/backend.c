/* backend.c - what the CPU-only build answers for the CUDA entry points. */
#include "kernels/kernels.h"

#include "common/err.h"

#if !LODE_CUDA
int kern_cuda_built(void) { return 0; }

int kern_cuda_device_count(const char **why)
{
    if (why)
        *why = "built without CUDA (make CUDA=0 or no nvcc at build time)";
    return 0;
}

int kern_cuda_device_info(int dev, struct kern_gpu_info *info)
{
    return err_set(ERR_UNSUPPORTED, "built without CUDA");
}
#endif
