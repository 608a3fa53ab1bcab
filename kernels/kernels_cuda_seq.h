/*
 * kernels_cuda_seq.h - the CUDA sequence-mixing kernels (issue #7): Gated DeltaNet (conv, gates,
 * delta rule, fused decode step, gated RMSNorm) and gated attention (q/k norm + RoPE fused with
 * the KV-cache write, split-KV attention with the sigmoid output gate in the epilogue).
 *
 * Every function computes exactly what its CPU counterpart in kernels.h computes (up to
 * summation order), on device pointers, and is enqueued on `stream` (a cudaStream_t; NULL is
 * the default stream): it returns after the launch, not after the work. Layouts are those of
 * the CPU engine (engine/seqstate.h), so states and KV rows move between backends unchanged.
 * All return 0 or a negative ERR_* with err_set() (bad shapes, a launch failure). Built without
 * CUDA, kernels/backend.c answers ERR_UNSUPPORTED.
 *
 * Device memory comes from kernels_cuda.h (kcu_alloc, kcu_upload, kcu_scratch).
 *
 * Files: kernels/cuda/gdn.cu (DeltaNet), kernels/cuda/attn.cu (attention).
 */
#ifndef LODE_KERNELS_CUDA_SEQ_H
#define LODE_KERNELS_CUDA_SEQ_H

#include "kernels/kernels.h"

#include <stddef.h>

/* ---- Gated DeltaNet */

/* kern_conv1d_silu on device: y [T][C], x token t at x + t*ldx, w [C][kw], state [C][kw-1]. */
int kcs_conv1d_silu(float *y, const float *x, long ldx, float *state, const float *w, long T,
                    long C, int kw, void *stream);

/* The gates of T tokens: beta = sigmoid(b), g = neg_exp_a[h] * softplus(a + dt_bias[h]), with
 * neg_exp_a = -exp(A_log); a, b, g, beta: [T][n_v]. */
int kcs_gdn_gates(float *g, float *beta, const float *a, const float *b, const float *neg_exp_a,
                  const float *dt_bias, long T, int n_v, void *stream);

/* kern_gdn_recurrent / kern_gdn_chunked on device (every pointer in *a on the device).
 * Limits: dv <= 512 and dk <= 32 * (512 / dv) (the real model: 128 x 128). The chunked form
 * (chunks of 64, one block per value head and 32 value columns, ~116 KiB of shared memory for
 * dk 128) needs dv % 32 == 0, dk <= 256 and T >= 2; other shapes go to the recurrent kernel. */
int kcs_gdn_recurrent(const struct kern_gdn *a, void *stream);
int kcs_gdn_chunked(const struct kern_gdn *a, void *stream);

/* kern_rmsnorm_gated on device: rows of n (n <= 4096). */
int kcs_rmsnorm_gated(float *y, const float *x, const float *z, const float *w, long rows, long n,
                      float eps, void *stream);

/* One decode token through a DeltaNet layer's mixer in ONE kernel: conv update + SiLU of the
 * q|k|v channels, the gates, L2 norms (q scaled 1/sqrt(dk)), state decay and delta update,
 * readout and the gated RMSNorm with SiLU(z). One block per key head (it owns that head's conv
 * channels and the states of its value heads, so no block reads what another one writes). */
struct kcs_gdn_step {
    int n_k, n_v, dk, dv, conv_k;
    const float *qkv;       /* [2*n_k*dk + n_v*dv] pre-conv projection: q | k | v */
    const float *z;         /* [n_v*dv] */
    const float *a, *b;     /* [n_v] gate projections */
    const float *conv_w;    /* [conv_ch][conv_k] */
    const float *neg_exp_a; /* [n_v] -exp(A_log) */
    const float *dt_bias;   /* [n_v] */
    const float *norm_w;    /* [dv] gated RMSNorm weight (plain) */
    float eps;              /* gated RMSNorm epsilon (rms_norm_eps) */
    float *conv_state;      /* [conv_ch][conv_k - 1], updated */
    float *state;           /* [n_v][dk][dv], updated */
    float *out;             /* [n_v*dv] */
};
int kcs_gdn_decode(const struct kcs_gdn_step *s, void *stream);

/* ---- gated attention */

/* Per token t (position pos0 + t): zero-centred RMSNorm (1 + w) of each query head (in place)
 * and key head, RoPE (kern_rope: NeoX on the first rot_dim dims, inv and mscale from
 * kern_rope_freqs, inv on the device) on both, then the key (post-norm, post-RoPE) and the raw
 * value written to KV-cache row pos0 + t in kv_type (F32, BF16, or FP8 as sat(x / scale) with
 * kern_f32_to_fp8's rounding), exactly what engine/forward.c does with kern_convert. */
struct kcs_attn_prep {
    int n_q, n_kv, head_dim, rot_dim;
    long T, pos0;
    float *q; /* token t, head h at q + t*q_tok + h*q_head; normed and rotated in place */
    long q_tok, q_head;
    const float *k, *v; /* token t, kv head g at k + t*kv_tok + g*head_dim */
    long kv_tok;
    const float *q_norm, *k_norm; /* [head_dim] */
    float eps;
    const float *rope_inv; /* [rot_dim / 2] */
    float mscale;
    int kv_type;
    void *k_cache, *v_cache; /* [cap][n_kv][head_dim] of kv_type */
    long cap;
    float k_scale, v_scale;
    /* optional: pos0 read by the kernel from this device word instead (a CUDA graph replays
     * the launch at later positions); the host checks pos0 + T <= cap with the pos0 above */
    const long *dpos;
};
int kcs_attn_prep(const struct kcs_attn_prep *p, void *stream);

/* kern_attention on device (every pointer in *a on the device; K and V 16-byte aligned), with the
 * output gate fused: when gate is non-NULL, out *= sigmoid(gate) with token t, head h's gate at
 * gate + t*g_tok + h*g_head. head_dim must be 32, 64, 128 or 256; n_q / n_kv <= 8.
 * Few tokens (decode): the context is split into chunks (flash-decoding) merged with their
 * log-sum-exp, in fp32; work is device scratch of at least kcs_attention_work_bytes(a) bytes
 * (NULL allowed when that is 0; kcu_scratch memory will do).
 * Prompts (T >= 16, 8 query heads per kv head, head_dim 256, BF16 or FP8 KV): flash attention
 * on tensor cores (mma.sync bf16, fp32 accumulation), 8 tokens x 8 heads sharing each KV tile;
 * q and the softmax weights are rounded to bf16, so outputs are within ~1e-3 relative. */
size_t kcs_attention_work_bytes(const struct kern_attn *a);
int kcs_attention(const struct kern_attn *a, const float *gate, long g_tok, long g_head, void *work,
                  size_t work_bytes, void *stream);
/* Decode with the position on the device (CUDA graphs): kcs_attention for a->T == 1, with the
 * token's position read by the kernels from *dpos (device) and a->pos0 only its bound
 * (*dpos <= a->pos0): the split and the work size are planned for a->pos0 + 1 positions, so one
 * launch serves every position up to the bound, and the results do not depend on it. */
int kcs_attention_dpos(const struct kern_attn *a, const long *dpos, const float *gate, long g_tok,
                       long g_head, void *work, size_t work_bytes, void *stream);

#endif
