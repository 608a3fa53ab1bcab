/*
 * bench.h - `lode bench` sub-benchmarks implemented outside cmd_bench.c.
 */
#ifndef LODE_APP_BENCH_H
#define LODE_APP_BENCH_H

#include "app/cli.h"

/* `lode bench --model DIR | --synthetic tiny|small [--prompt N] [--gen N]`: whole-model
 * prefill and decode on the CPU. argv[0] is the command name. */
int bench_model_run(struct app *a, int argc, char **argv);

/* `lode bench kernels [--only mem,matvec,gemm,attn,gdn] [--threads N]`: the CPU kernels at
 * the real model's shapes (kern_bench_run). */
int bench_kernels_run(struct app *a, int argc, char **argv);

#endif
