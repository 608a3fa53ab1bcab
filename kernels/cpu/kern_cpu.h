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
};
extern const struct kern_vec kern_vec_scalar, kern_vec_avx2, kern_vec_avx512;
const struct kern_vec *kern_vec_for(int isa);

/* Memory read bandwidth (membw.c): the best of 5 streaming reads of buf [n floats, n a multiple
 * of 64, far larger than the caches] with c's threads and ISA; GB/s. */
double kern_mem_bandwidth_on(struct kern_cpu *c, const float *buf, long n);

/* Shared per-call work memory of the context (MoE token batches); 0 or ERR_NOMEM. */
int kern_cpu_work(struct kern_cpu *c, size_t bytes, float **out);

#endif
