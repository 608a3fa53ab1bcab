/*
 * cuda_check.cuh - every CUDA runtime call is checked. CUDA_TRY returns an
 * ERR_* status with file, line and the error's name from the enclosing
 * int-returning function; CUDA_CHECK is for code that cannot fail
 * gracefully (it aborts with the same information).
 */
#ifndef LODE_CUDA_CHECK_CUH
#define LODE_CUDA_CHECK_CUH

#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>

extern "C" {
#include "common/err.h"
}

#define CUDA_TRY(call)                                                                             \
    do {                                                                                           \
        cudaError_t cuda_try_e = (call);                                                           \
        if (cuda_try_e != cudaSuccess)                                                             \
            return err_set(ERR_IO, "CUDA error %s (%s) at %s:%d in %s",                            \
                           cudaGetErrorName(cuda_try_e), cudaGetErrorString(cuda_try_e), __FILE__, \
                           __LINE__, #call);                                                       \
    } while (0)

#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t cuda_chk_e = (call);                                                           \
        if (cuda_chk_e != cudaSuccess) {                                                           \
            fprintf(stderr, "lode: CUDA error %s (%s) at %s:%d in %s\n",                           \
                    cudaGetErrorName(cuda_chk_e), cudaGetErrorString(cuda_chk_e), __FILE__,        \
                    __LINE__, #call);                                                              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
