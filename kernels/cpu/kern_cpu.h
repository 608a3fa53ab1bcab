/*
 * kern_cpu.h - internal to kernels/cpu: the context struct and the per-ISA entry points the
 * dispatchers in matmul.c, attn.c and gdn.c call. Not for use outside kernels/.
 */
#ifndef LODE_KERNELS_CPU_KERN_CPU_H
#define LODE_KERNELS_CPU_KERN_CPU_H

#include "kernels/kernels.h"

#include <stddef.h>
#include <stdint.h>

struct pool;

struct kern_cpu {
    struct pool *pool;
    int nthreads;
    int isa;
    size_t scratch_bytes; /* per thread, 64-byte aligned blocks */
    float **scratch;      /* [nthreads] */
    float *work;          /* kern_cpu_work */
    size_t work_bytes;
};

/* Makes every thread's scratch at least `bytes`; 0 or ERR_NOMEM. */
int kern_cpu_reserve(struct kern_cpu *c, size_t bytes);

/* Rows of a matmul are handed to threads in blocks of this many (and each ISA's kernel keeps its
 * internal row groups aligned to it), so each row is computed the same way for any thread count. */
#define KERN_MM_ROWS 16

/* Scalar helpers shared by the ISA files. */
static inline float kern_bf16f(uint16_t h)
{
    union {
        uint32_t u;
        float f;
    } v = { .u = (uint32_t)h << 16 };
    return v.f;
}
float kern_scale_at(const struct kern_weight *w, long idx);
/* Row r of w as fp32 (k values), exact. */
void kern_dequant_row(const struct kern_weight *w, long r, float *out);

/* One ISA's matmul over rows [r0, r1) (r0 a multiple of KERN_MM_ROWS) for all T tokens; scratch
 * holds kern_mm_scratch(w->k, T) bytes. */
typedef void (*kern_mm_fn)(const struct kern_weight *w, const float *x, long T, float *y, long r0,
                           long r1, void *scratch);
size_t kern_mm_scratch(long k);
kern_mm_fn kern_mm_for(int isa);
void kern_mm_scalar(const struct kern_weight *w, const float *x, long T, float *y, long r0, long r1,
                    void *scratch);
void kern_mm_avx2(const struct kern_weight *w, const float *x, long T, float *y, long r0, long r1,
                  void *scratch);
void kern_mm_avx512(const struct kern_weight *w, const float *x, long T, float *y, long r0, long r1,
                    void *scratch);
/* The prefill GEMMs (T >= 4 tokens) of kern_mm_avx512 and kern_mm_avx2, same contract
 * (gemm_avx512.c, gemm_avx2.c). */
void kern_gemm_avx512(const struct kern_weight *w, const float *x, long T, float *y, long r0,
                      long r1, void *scratch);
void kern_gemm_avx2(const struct kern_weight *w, const float *x, long T, float *y, long r0, long r1,
                    void *scratch);

/* Vector helpers for attention and the delta rule, one table per ISA (n any length). */
float kern_dot_avx2(const float *a, const float *b, long n);
float kern_dot_avx512(const float *a, const float *b, long n);
struct kern_vec {
    float (*dot)(const float *a, const float *b, long n);
    void (*axpy)(float *y, float a, const float *x, long n); /* y += a x */
    void (*scale)(float *y, float a, long n);                /* y *= a */
    /* dst = src * scale for a row of F32, BF16 or FP8 (FP8 NaN codes are not decoded as NaN on
     * the SIMD paths; the cache never holds them) */
    void (*load)(float *dst, const void *src, int type, long n, float scale);
    /* sum of n floats, n a multiple of 64 (the bandwidth benchmark's streaming read) */
    float (*sum)(const float *x, long n);
    /* y[n] += sum_r e[r] * rows[r][n] for nr rows ld apart (attention's P V), with y held in
     * registers across the rows */
    void (*axpy_rows)(float *y, const float *e, const float *rows, long ld, long nr, long n);
    /* The element-wise ops of the forward pass (kernels.h's *_on): the scalar entries are the
     * reference formulas of kernels.h, the SIMD ones use vexp.h's e^x (a few ulp apart). In
     * place (y == an input) is fine. */
    void (*swiglu)(float *y, const float *g, const float *u, long n); /* y = silu(g) u */
    void (*silu)(float *y, const float *x, long n);
    void (*mul_sigmoid)(float *y, const float *g, long n); /* y *= sigmoid(g) */
    /* one row of kern_rmsnorm */
    void (*norm)(float *y, const float *x, const float *w, long n, float eps);
    /* one row of kern_rmsnorm_gated */
    void (*norm_gated)(float *y, const float *x, const float *z, const float *w, long n, float eps);
    /* y[c] = sum over q < kw of wt[q ldw + c] x[q ldx + c], c < n, summed from 0 in q order with
     * a rounding after each product and each add (no FMA), as the scalar conv loop does: the
     * depthwise conv of kw tokens */
    void (*conv_row)(float *y, const float *x, long ldx, const float *wt, long ldw, int kw, long n);
};
extern const struct kern_vec kern_vec_scalar, kern_vec_avx2, kern_vec_avx512;
const struct kern_vec *kern_vec_for(int isa);

/* Memory read bandwidth (membw.c): the best of 5 streaming reads of buf [n floats, n a multiple
 * of 64, far larger than the caches] with c's threads and ISA; GB/s. */
double kern_mem_bandwidth_on(struct kern_cpu *c, const float *buf, long n);

/* Runs fn(ctx, tid, nth) on c's threads (on the caller alone when alone is set or c has one
 * thread), every thread, the caller included, with denormals flushed to zero (MXCSR FTZ and
 * DAZ; the caller's mode is restored after). Every parallel region of the kernels goes through
 * here, so every thread computes in the same mode. */
void kern_cpu_run(struct kern_cpu *c, void (*fn)(void *ctx, int tid, int nth), void *ctx,
                  int alone);

/* fn(ctx, lo, hi) over [0, n) in contiguous ranges, one per thread, each a multiple of grain
 * long but the last (on the caller alone when n < 2 grain): for the element-wise steps of
 * prefill, which would otherwise leave the other threads idle. fn must compute each element
 * the same way whatever range holds it. */
typedef void (*kern_par_fn)(void *ctx, long lo, long hi);
void kern_cpu_par(struct kern_cpu *c, long n, long grain, kern_par_fn fn, void *ctx);

/* Shared per-call work memory of the context (MoE token batches); 0 or ERR_NOMEM. */
int kern_cpu_work(struct kern_cpu *c, size_t bytes, float **out);

#endif
