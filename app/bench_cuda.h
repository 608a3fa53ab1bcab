/*
 * bench_cuda.h - the CUDA kernel benchmarks (`lode bench kernels --backend cuda`, and
 * tests/gpu/bench_cuda_{linear,seq} for scripts/gpu-check).
 */
#ifndef LODE_APP_BENCH_CUDA_H
#define LODE_APP_BENCH_CUDA_H

enum { BENCH_CUDA_LINEAR = 1, BENCH_CUDA_SEQ = 2, BENCH_CUDA_ALL = 3 };

/* 0 when a CUDA device answers (and is initialised); ERR_UNSUPPORTED with a one-line reason
 * (built without CUDA, no GPU) otherwise. */
int bench_cuda_ready(void);

/* Measures the copy bandwidth, then the sections asked for (BENCH_CUDA_*), secs per line
 * (<= 0: 0.3), printing one table row per kernel and shape to stdout. 0, or a negative ERR_*
 * naming the step that failed. */
int bench_cuda_run(int sections, double secs);

#endif
