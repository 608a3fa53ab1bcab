/*
 * budget.h - the GPU memory plan of the CUDA engine (issue #8), pure arithmetic on the config:
 * weights, KV cache for ctx x seqs over the full-attention layers, DeltaNet states, snapshots,
 * the activation buffer of one prefill chunk, attention scratch, an estimate for CUDA graph
 * pools and the runtime's own reserve, against a GPU size. Used by `lode inspect --budget` and
 * by engine/model_cuda.c (its activation layout and its fit check at open), so the plan and the
 * engine cannot drift apart.
 *
 * Device layouts sized here (engine/model_cuda.c): KV rows [n_kv][head_dim] of the KV type per
 * full layer, K and V; DeltaNet conv [conv_dim][conv_k - 1] and recurrent [n_v][dk][dv] both
 * fp32 per linear layer; a snapshot is one copy of the DeltaNet states; activations fp32.
 */
#ifndef LODE_ENGINE_BUDGET_H
#define LODE_ENGINE_BUDGET_H

#include "engine/modelcfg.h"

#include <stddef.h>
#include <stdint.h>

#define BUDGET_N_ACTS 17
#define BUDGET_SNAPS 16                      /* snapshots the agent keeps per sequence */
#define BUDGET_RUNTIME ((uint64_t)512 << 20) /* CUDA context, allocator rounding, scratch */
#define BUDGET_GRAPHS ((uint64_t)256 << 20)  /* CUDA graph pools: an estimate, not measured */
#define BUDGET_SMS 132                       /* SM count for the decode split-KV scratch */

struct budget_req {
    long ctx;              /* context tokens per sequence */
    long seqs;             /* sequences resident at once */
    int kv_type;           /* enum kern_dtype: KERN_FP8, KERN_BF16 or KERN_F32 */
    long snaps;            /* snapshots wanted per sequence (BUDGET_SNAPS) */
    long chunk;            /* prefill tokens per forward step (activation buffer) */
    uint64_t weight_bytes; /* device bytes of the weights (checkpoint tensors or recipe) */
    uint64_t gpu_bytes;    /* device memory */
};

struct budget {
    uint64_t kv_per_token; /* all full layers, K and V */
    uint64_t gdn_per_seq;  /* conv + recurrent, fp32 */
    uint64_t snap_bytes;   /* one snapshot */
    /* the plan */
    uint64_t weights, kv, gdn, snaps, act, attn_work, graphs, runtime, total;
    uint64_t required; /* total without snapshots: what must fit */
    long snaps_fit;    /* snapshots per sequence that fit (at most req snaps) */
    int fits;          /* total <= gpu_bytes */
    uint64_t over;     /* total - gpu_bytes when it does not fit, else 0 */
    /* what would fit with everything else unchanged (0 when not even one) */
    long max_ctx;  /* at req seqs */
    long max_seqs; /* at req ctx */
};

/* Floats of each fp32 activation buffer for T tokens, in the order of model_cuda.c's gpu_acts. */
void budget_act_floats(const struct mcfg *c, long T, size_t n[BUDGET_N_ACTS]);
/* Device bytes of those buffers, each rounded up to 256 bytes. */
uint64_t budget_act_bytes(const struct mcfg *c, long T);
/* Upper bound of the decode split-KV attention scratch for T tokens (kcs_attention_work_bytes). */
uint64_t budget_attn_work_bytes(const struct mcfg *c, long T);
uint64_t budget_kv_per_token(const struct mcfg *c, int kv_type);
uint64_t budget_gdn_per_seq(const struct mcfg *c);

/* Fills *b. ERR_INVAL naming the field when a request value is out of range or a size
 * overflows. */
int budget_plan(const struct mcfg *c, const struct budget_req *r, struct budget *b);

/* engc_open's check: weights + activations (chunk) + BUDGET_RUNTIME against the free device
 * memory; ERR_NOMEM naming the sizes when they do not fit. */
int budget_check_open(uint64_t weight_bytes, uint64_t act_bytes, long chunk, uint64_t free_bytes,
                      uint64_t total_bytes);

/* ---- the CPU engine's RAM plan (engine/model.c, forward.c, seqstate.c, kernels/cpu) ----
 *
 * Weights stay in the checkpoint's read-only mmap: they take page cache, not heap, and every
 * text-model tensor is read once the experts have all been routed to, so the resident size is
 * their file bytes. Per sequence: the KV cache (grown by doubling up to the context limit, so
 * at most ctx rows), the fp32 DeltaNet conv + recurrent states, up to BUDGET_SNAPS snapshots of
 * them the engine backend keeps, and the token ids it holds (int32). Once per process: the
 * forward pass's fp32 activations for one prefill chunk (forward.c get_bufs) and a logits row,
 * the kernels' per-thread scratch (the largest of a matmul row block, an attention row over the
 * context and a chunked DeltaNet block: kernels/cpu kern_cpu_reserve), the kernels' shared work
 * buffer (MoE intermediates of a chunk, or split-attention partials over the context:
 * kern_cpu_work), the f32 copies and expert views eng_open makes, and a process reserve. */

#define BUDGET_CPU_RUNTIME ((uint64_t)64 << 20) /* code, libc, tokenizer, store: see the doc */
#define BUDGET_CPU_GDN_CHUNK 64                 /* forward.c's chunk for kern_gdn_chunked */

struct budget_cpu_req {
    long ctx, seqs;
    int kv_type; /* KERN_FP8, KERN_BF16 or KERN_F32 */
    long snaps, chunk;
    int threads;           /* kernel threads (>= 1) */
    uint64_t weight_bytes; /* text-model tensor bytes (the mmap'd part that is read) */
    uint64_t mem_bytes;    /* RAM (MemTotal) */
};

struct budget_cpu {
    uint64_t kv_per_token, gdn_per_seq, snap_bytes, ids_per_token;
    uint64_t weights, kv, gdn, snaps, ids;                            /* all sequences */
    uint64_t act, scratch_per_thread, scratch, work, tables, runtime; /* once */
    uint64_t total, required; /* required: total without the snapshots */
    long snaps_fit;
    int fits;
    uint64_t over;
    long max_ctx, max_seqs; /* at req seqs / at req ctx, snapshots included; 0: none */
};

/* Bytes of forward.c's activation buffers for a T-token step, plus one fp32 logits row. */
uint64_t budget_cpu_act_bytes(const struct mcfg *c, long T);
/* One thread's kernel scratch with contexts up to ctx (page-rounded, as kern_cpu_reserve). */
uint64_t budget_cpu_scratch_bytes(const struct mcfg *c, long ctx);
/* The kernels' shared work buffer: MoE of a chunk or decode split attention at ctx. */
uint64_t budget_cpu_work_bytes(const struct mcfg *c, long chunk, long ctx);
/* f32 copies (norms, conv, A_log, dt_bias) and expert views eng_open allocates. */
uint64_t budget_cpu_tables_bytes(const struct mcfg *c);

/* Fills *b; ERR_INVAL naming the field for a value out of range or a size overflow. */
int budget_plan_cpu(const struct mcfg *c, const struct budget_cpu_req *r, struct budget_cpu *b);

#endif
