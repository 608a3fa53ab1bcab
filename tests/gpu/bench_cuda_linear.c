/*
 * bench_cuda_linear.c - GPU figures for the linear layers and the MoE block (scripts/gpu-check):
 * the device's copy bandwidth (cudaMemcpy device to device, measured in the same run) and its
 * theoretical peak, then each kernel's time per call and the GB/s of weights it streams, as a
 * share of the copy bandwidth. Weights are cycled over copies totalling more than the L2 cache,
 * so every call reads from DRAM. Not a test: prints a table, exit 0 unless something fails.
 *
 *   build/tests/gpu/bench_cuda_linear [seconds per line, default 0.3]
 */
/* The measuring code lives in app/bench_cuda.c (also `lode bench kernels --backend cuda`). */
#include "app/bench_cuda.h"
#include "common/err.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 0;
    if (bench_cuda_ready() < 0) {
        printf("bench_cuda_linear: %s\n", err_msg()); /* not a failure: nothing to measure */
        return 0;
    }
    if (bench_cuda_run(BENCH_CUDA_LINEAR, secs) < 0) {
        fprintf(stderr, "bench_cuda_linear: %s\n", err_msg());
        return 1;
    }
    return 0;
}
