/*
 * kernels.h - the only interface to the compute kernels. CPU kernels live in
 * kernels/cpu/, CUDA kernels in kernels/cuda/ (built when nvcc is found);
 * both sit behind the prototypes declared here. Kernels know nothing about
 * files, JSON or models: plain pointers, shapes and dtypes.
 *
 * Files: kernels/cpu/cpu.c (context, dispatch, conversions, small ops), matmul*.c (matrix
 * products), attn.c, gdn.c, moe.c, the *_avx2.c / *_avx512.c fast paths, bench.c, membw.c.
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

/* ==================================================================== CPU kernels
 *
 * Conventions for everything below:
 * - Activations are fp32, row-major, one row per token: x [T, K].
 * - Weights are read in place (from the mmap) in the checkpoint's own layout, described by a
 *   struct kern_weight; nothing is dequantized wholesale.
 * - Every kernel that takes a struct kern_cpu runs on its thread pool and splits the work over
 *   output rows / heads, never over a reduction, so results are bitwise identical for any thread
 *   count (a given ISA). Different ISAs differ by rounding only (tests bound it per dtype).
 * - Functions returning int give 0 or a negative ERR_* with err_set() (bad shapes or types).
 * - Kernels allocate only to grow the context's scratch the first time a larger shape is seen
 *   (ERR_NOMEM if that fails); steady-state calls do not allocate.
 * - Only kern_cpu_new picks an ISA, after checking cpuid: no SIMD code runs on a CPU without it.
 * - Kernels that take a struct kern_cpu compute with fp32 denormals flushed to zero (x86 FTZ and
 *   DAZ, on every thread; the caller's mode is restored on return): the delta rule's decays
 *   made denormals that cost a ~100-cycle microcode assist per instruction.
 */

#include <stdint.h>
#include <stdio.h>

/* Instruction sets. KERN_ISA_AUTO picks the best the CPU has (cpuid + OS xsave support). */
enum kern_isa { KERN_ISA_AUTO = -1, KERN_ISA_SCALAR = 0, KERN_ISA_AVX2 = 1, KERN_ISA_AVX512 = 2 };

/* 1 when this CPU (and OS) can run `isa`; KERN_ISA_SCALAR always can. */
int kern_isa_supported(int isa);
/* "scalar", "avx2", "avx512". */
const char *kern_isa_name(int isa);
/* The best supported ISA; LODE_KERN_ISA=scalar|avx2|avx512 in the environment lowers it. */
int kern_isa_best(void);

/* Element and weight types. */
enum kern_dtype {
    KERN_F32 = 0,
    KERN_BF16 = 1,
    KERN_F16 = 2,
    KERN_FP8 = 3, /* OCP E4M3FN (max 448, no infinities), the KV cache format */
    KERN_I4 = 4,  /* pack-quantized int4: int32 words, 8 values, element 0 in the low nibble, +8 */
    KERN_I8 = 5,  /* pack-quantized int8: int32 words, 4 values, element 0 in the low byte, +128 */
};
const char *kern_dtype_name(int dtype);

/* The CPU kernel context: a thread pool, the chosen ISA and per-thread scratch.
 * threads <= 0 means one per online CPU; isa is an enum kern_isa (AUTO = best).
 * Caller owns *out; kern_cpu_free accepts NULL. A context is used by one thread at a time. */
struct kern_cpu;
int kern_cpu_new(struct kern_cpu **out, int threads, int isa);
void kern_cpu_free(struct kern_cpu *c);
int kern_cpu_threads(const struct kern_cpu *c);
int kern_cpu_isa(const struct kern_cpu *c);

/* ---- element conversions (scalar; exact reference semantics) */

float kern_bf16_to_f32(uint16_t h);
uint16_t kern_f32_to_bf16(float f); /* round to nearest even; NaN stays NaN */
float kern_f16_to_f32(uint16_t h);
uint16_t kern_f32_to_f16(float f); /* round to nearest even, overflow to inf */
float kern_fp8_to_f32(uint8_t b);  /* E4M3FN; 0x7f/0xff are NaN */
uint8_t kern_f32_to_fp8(float f);  /* round to nearest even, saturating to +-448; NaN -> 0x7f */

/* dst[i] = convert(src[i]) for n elements between KERN_F32, KERN_BF16, KERN_F16 and KERN_FP8.
 * With an fp8 side, `scale` is the dequantization scale: fp8 = sat(x / scale), x = fp8 * scale
 * (1.0f when none). 0 or ERR_INVAL for other types. */
int kern_convert(void *dst, int dst_type, const void *src, int src_type, size_t n, float scale);

/* ---- weights and matrix products */

/* One linear layer's weight W [n, k] (y = x W^T), borrowed, normally pointing into the mmap.
 *   KERN_F32 / KERN_BF16: data = [n, k] row-major.
 *   KERN_I4: data = int32 [n, k/8]   (checkpoint `weight_packed`), k % 8 == 0
 *   KERN_I8: data = int32 [n, k/4]   (checkpoint `weight_packed`), k % 4 == 0
 *   quantized: scale = [n, k/group] of scale_type (KERN_BF16, KERN_F16 or KERN_F32), symmetric,
 *   w = (code - bias) * scale; group = k for per-channel ([n, 1] scales). group must divide k and
 * be a multiple of the pack factor (8 for int4, 4 for int8). */
struct kern_weight {
    int type;       /* enum kern_dtype: F32, BF16, I4, I8 */
    int scale_type; /* quantized only */
    long n, k;
    long group;
    const void *data;
    const void *scale;
};

/* 0 when w is well formed (type, shapes, group); ERR_INVAL with a message otherwise. */
int kern_weight_check(const struct kern_weight *w);
/* Bytes of data plus scales that one full pass over w reads. */
size_t kern_weight_bytes(const struct kern_weight *w);

/* y[t, :] = W x[t, :] for t < T: x [T, k] fp32, y [T, n] fp32 (must not overlap x).
 * T == 1 streams the weights once (the decode matrix-vector path); larger T dequantizes blocks
 * of rows into per-thread scratch and runs a register-blocked fp32 kernel over all tokens.
 * Activations stay fp32 on every path (no activation quantization), so the only differences
 * from the scalar reference are summation order. */
int kern_matmul(struct kern_cpu *c, const struct kern_weight *w, const float *x, long T, float *y);

/* n (<= 64) products of the same activations in one parallel region, y[i] = x W[i]^T (all W[i]
 * with the same k), e.g. DeltaNet's in_proj_qkv/_z/_a/_b or attention's q/k/v: one pool wake-up
 * instead of n, results identical to n kern_matmul calls. */
int kern_matmul_n(struct kern_cpu *c, int n, const struct kern_weight *const *w, const float *x,
                  long T, float *const *y);

/* ---- elementwise and normalisation (single-threaded, any ISA gives the same result) */

/* Zero-centred RMSNorm over rows of n: y = x * rsqrt(mean(x^2) + eps) * (1 + w), fp32.
 * x and y rows are ldx / ldy floats apart (per-head norms pass the head stride); in place ok. */
void kern_rmsnorm(float *y, long ldy, const float *x, long ldx, const float *w, long rows, long n,
                  float eps);
/* Gated RMSNorm (DeltaNet output): y = w * (x * rsqrt(mean(x^2) + eps)) * silu(z), plain w.
 * x, z, y: rows of n, contiguous ([rows, n]); in place (y == x) ok. */
void kern_rmsnorm_gated(float *y, const float *x, const float *z, const float *w, long rows, long n,
                        float eps);
float kern_silu1(float x);
float kern_sigmoid1(float x);
float kern_softplus1(float x); /* PyTorch: x > 20 ? x : log1p(exp(x)) */
void kern_silu(float *y, const float *x, long n);
void kern_sigmoid(float *y, const float *x, long n);
/* y = silu(gate) * up (SwiGLU), n elements; y may alias gate or up. */
void kern_swiglu(float *y, const float *gate, const float *up, long n);
/* The same on c: its ISA (vector e^x and sums; within a few ulp of the scalar formulas above,
 * which stay the reference) and, for large inputs, its threads (split by rows or elements, so
 * the results do not depend on the thread count). For the forward pass; y *= sigmoid(g) is the
 * attention output gate. */
void kern_rmsnorm_on(struct kern_cpu *c, float *y, long ldy, const float *x, long ldx,
                     const float *w, long rows, long n, float eps);
void kern_swiglu_on(struct kern_cpu *c, float *y, const float *gate, const float *up, long n);
void kern_mul_sigmoid_on(struct kern_cpu *c, float *y, const float *g, long n);
void kern_rmsnorm_gated_on(struct kern_cpu *c, float *y, const float *x, const float *z,
                           const float *w, long rows, long n, float eps);
/* In-place softmax over n (max-subtracted, fp32). */
void kern_softmax(float *x, long n);
/* Index of the largest element (the first one on ties; NaN never wins); -1 when n <= 0. */
long kern_argmax(const float *x, long n);

/* ---- rotary embedding (NeoX / rotate_half on the first rot_dim dims of each head) */

/* Inverse frequencies inv[i], i < rot_dim/2: theta^(-2i/rot_dim), or with YaRN (factor > 1)
 * the blend of model-spec.md 3.4b (beta_fast 32, beta_slow 1, truncated bounds). *mscale gets
 * the attention factor (1 without YaRN, 0.1 ln(factor) + 1 with it). 0 or ERR_INVAL. */
int kern_rope_freqs(float *inv, float *mscale, int rot_dim, double theta, double yarn_factor,
                    long yarn_orig_ctx);
/* Rotates n_heads heads of x (head h at x + h * ld_head) at position pos in place:
 * a = x[i], b = x[i + rot/2]: x[i] = a cos - b sin, x[i + rot/2] = b cos + a sin, for i < rot/2,
 * with angle = (float)pos * inv[i] in fp32 and cos/sin multiplied by mscale. */
void kern_rope(float *x, long ld_head, int n_heads, int rot_dim, const float *inv, float mscale,
               long pos);

/* ---- attention over a KV cache (causal, GQA, online softmax) */

/* The cache of one layer holds K and V as [pos][n_kv][head_dim] in kv_type (F32, BF16 or FP8
 * with k_scale / v_scale as dequantization scales). Queries are tokens pos0 .. pos0+T-1, whose
 * K/V must already be in the cache; token t attends to positions 0 .. pos0+t. Query head h uses
 * kv head h / (n_q / n_kv). q: token t, head h at q + t*q_tok + h*q_head; out [T][n_q][head_dim].
 * Few tokens (T <= 4, decode): positions are split into fixed chunks of 512 merged in order, so
 * one token uses every thread and the result still does not depend on the thread count.
 */
struct kern_attn {
    int n_q, n_kv, head_dim;
    long T, pos0;
    const float *q;
    long q_tok, q_head;
    int kv_type;
    const void *k, *v;
    float k_scale, v_scale;
    float scale; /* logit scale, normally 1/sqrt(head_dim) */
    float *out;
};
int kern_attention(struct kern_cpu *c, const struct kern_attn *a);

/* ---- Gated DeltaNet */

/* Causal depthwise conv1d (kernel kw) + SiLU over T tokens of C channels.
 * x: token t at x + t*ldx (C values, pre-conv); w [C][kw] (w[c][kw-1] multiplies the current
 * token); state [C][kw-1] fp32, the previous kw-1 inputs per channel, oldest first (zeros at the
 * start of a sequence), updated to the last kw-1 inputs; y [T][C] (must not alias x). */
int kern_conv1d_silu(float *y, const float *x, long ldx, float *state, const float *w, long T,
                     long C, int kw);
/* The same on c (see kern_swiglu_on): channels split over its threads, the SiLU and the conv
 * sums of whole windows on its ISA (the same sums, bit for bit, as the scalar loop). */
int kern_conv1d_silu_on(struct kern_cpu *c, float *y, const float *x, long ldx, float *state,
                        const float *w, long T, long C, int kw);

/* The delta rule over T tokens for n_v heads (model-spec.md 3.6). Value head h uses q/k head
 * h / (n_v / n_k). q, k: token t, head j at q + t*ld_qk + j*dk; v: token t, head h at
 * v + t*ld_v + h*dv; g (log decay, <= 0) and beta: [T][n_v]; state [n_v][dk][dv] fp32 in/out;
 * out [T][n_v][dv]. q and k are L2-normalised inside (eps 1e-6) and q scaled by 1/sqrt(dk). */
struct kern_gdn {
    int n_k, n_v, dk, dv;
    long T;
    const float *q, *k, *v;
    long ld_qk, ld_v;
    const float *g, *beta;
    float *state;
    float *out;
};
/* Token by token (the decode path and the reference). */
int kern_gdn_recurrent(struct kern_cpu *c, const struct kern_gdn *a);
/* Chunked prefill form (HF torch_chunk_gated_delta_rule), chunk <= 64: equal to the recurrent
 * one up to rounding (tests: max abs error ~1e-5 on unit-scale data). */
int kern_gdn_chunked(struct kern_cpu *c, const struct kern_gdn *a, int chunk);

/* ---- MoE */

/* Router: p = softmax(logits[E]) in fp32, the top k (largest first; lower index on ties),
 * renormalised to sum 1: idx[k], wt[k]. 0 or ERR_INVAL (k < 1 or k > E). */
int kern_moe_route(const float *logits, int E, int k, int *idx, float *wt);

/* One SwiGLU expert: gate/up [inter, hidden], down [hidden, inter]. */
struct kern_expert {
    struct kern_weight gate, up, down;
};
/* For each of T tokens: y[t] = sum_j wt[t][j] * down(silu(gate x) * up x) over its k experts
 * experts[idx[t][j]], plus (shared != NULL) sigmoid(shared_gate[t]) * shared(x[t]) (the shared
 * expert's scalar gate logit, already computed by the caller). x [T][hidden], y [T][hidden]
 * (written, not accumulated). Tokens routed to the same expert are batched into one matmul. */
struct kern_moe {
    int n_experts, k;
    long T, hidden, inter;
    const struct kern_expert *experts; /* [n_experts] */
    const int *idx;                    /* [T][k] */
    const float *wt;                   /* [T][k] */
    const struct kern_expert *shared;  /* optional */
    const float *shared_gate;          /* [T] logits, with shared */
    const float *x;
    float *y;
};
int kern_moe(struct kern_cpu *c, const struct kern_moe *m);

/* ---- benchmark */

/* Measures memory read bandwidth (multi-threaded streaming read of a buffer far larger than the
 * caches), then the kernels at the real model's shapes, printing a table to out. which: "all",
 * "mem", "matvec", "gemm", "attn", "gdn" (comma-separated). threads <= 0: all cores.
 * 0, or ERR_NOMEM / ERR_INVAL. */
int kern_bench_run(const char *which, int threads, FILE *out);

/* Memory read bandwidth in GB/s: the best of 5 streaming reads of a 1 GiB buffer with `threads`
 * threads (<= 0: all cores) and `isa` (KERN_ISA_AUTO: the best). 0 when it cannot allocate.
 * Whole-model benchmarks measure it in the same run as their decode figures. */
double kern_mem_bandwidth(int threads, int isa);

#include "kernels/kernels_cuda.h"      /* the CUDA backend: device, buffers, linear, MoE */
#include "kernels/kernels_cuda_seq.h"  /* CUDA DeltaNet and attention kernels */
#include "kernels/kernels_cuda_misc.h" /* CUDA embedding, norm, add, argmax */

#endif
