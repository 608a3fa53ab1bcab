/*
 * bench_cuda_seq.c - GPU figures for the DeltaNet and attention kernels (scripts/gpu-check): the
 * device's copy bandwidth (cudaMemcpy device to device, measured in the same run), then each
 * kernel's time per call and the GB/s of state or KV cache it streams, as a share of the copy
 * bandwidth. Decode kernels cycle over as many layers' states as the real model has (30 DeltaNet,
 * 10 attention layers), so the data comes from DRAM as in a forward pass. Not a test: prints a
 * table, exit 0 unless something fails.
 *
 *   build/tests/gpu/bench_cuda_seq [seconds per line, default 0.3]
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
        printf("bench_cuda_seq: %s\n", err_msg()); /* not a failure: nothing to measure */
        return 0;
    }
    if (bench_cuda_run(BENCH_CUDA_SEQ, secs) < 0) {
        fprintf(stderr, "bench_cuda_seq: %s\n", err_msg());
        return 1;
    }
    return 0;
}
