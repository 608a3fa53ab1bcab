/*
 * ckpt.h - a Qwen3.5/3.6-MoE checkpoint directory, opened with zero
 * conversion: config.json (+ generation_config.json), one
 * model.safetensors or shards listed by model.safetensors.index.json, and the
 * compressed-tensors quantization_config. Every expected tensor of every layer
 * is bound to a typed view into the read-only mmap; weights are never copied
 * or touched at open time.
 *
 * The model description the engine consumes (dimensions from c->cfg, see
 * modelcfg.h; H = hidden, I = moe_inter, Is = shared_inter, E = n_experts,
 * V = vocab; names below are relative to cfg.prefix, "model.language_model."
 * or "model."):
 *
 *   embed        embed_tokens.weight         [V, H]  plain (BF16/F16/F32)
 *   final_norm   norm.weight                 [H]     RMSNorm, applied as (1 + w)
 *   lm_head      lm_head.weight (top level)  [V, H]  linear (plain or quantized);
 *                                                    == embed when tie_embeddings
 *   per layer L (layers.L.):
 *     input_norm, post_norm  input_layernorm / post_attention_layernorm [H], (1 + w)
 *     full attention (type MCFG_FULL_ATTN), self_attn.:
 *       q_proj [Hq*hd*2, H]  per head h rows [2h*hd, 2h*hd+hd) query, next hd rows gate
 *       k_proj, v_proj [Hkv*hd, H]; o_proj [H, Hq*hd]
 *       q_norm, k_norm [hd] (1 + w); k_scale, v_scale optional FP8 KV scales, 1 or n_kv_heads
 *       floats (self_attn.k_scale or k_proj.output_scale; data NULL if absent: use 1.0)
 *     Gated DeltaNet (type MCFG_LINEAR_ATTN), linear_attn.:
 *       in_proj_qkv [2*Hk*dk + Hv*dv, H] rows [q | k | v]; in_proj_z [Hv*dv, H];
 *       in_proj_a, in_proj_b [Hv, H]; out_proj [H, Hv*dv];
 *       conv1d [conv_dim, 1, kernel]; A_log [Hv] (F32 in the real model); dt_bias [Hv];
 *       lin_norm (norm.weight) [dv], applied as plain w
 *     MoE (every layer), mlp.:
 *       router (gate.weight) [E, H]
 *       experts[e*3 + 0] gate [I, H], [e*3 + 1] up [I, H], [e*3 + 2] down [H, I]: one view per
 *         expert whatever the storage: fused 3-D experts.gate_up_proj [E, 2I, H] (rows [0,I) gate,
 *         [I,2I) up) and experts.down_proj [E, H, I], or per expert experts.e.{gate,up,down}_proj
 *         (.weight plain, or .weight_packed/.weight_scale/.weight_shape quantized). Precision is
 *         per expert: a W8 super-expert inside a W4 layer is just a view with bits = 8.
 *       sh_gate, sh_up [Is, H], sh_down [H, Is] (shared_expert.*); sh_expert_gate [1, H]
 *   Linear views: struct quant_linear (quant.h): bits 16 = plain dtype [out, in]; 4/8 =
 *   pack-quantized int32 [out, in*bits/32] + scale [out, in/group].
 *   mtp.* and model.visual.* tensors are indexed (ckpt_find) but not bound.
 */
#ifndef LODE_ENGINE_CKPT_H
#define LODE_ENGINE_CKPT_H

#include "engine/modelcfg.h"
#include "engine/quant.h"
#include "engine/safetensors.h"

/* A plain tensor view (norms, conv, A_log ...). data NULL = absent (optional ones). */
struct ckpt_tensor {
    const char *name; /* borrowed from the ckpt */
    const void *data; /* borrowed from the mmap */
    enum st_dtype dtype;
    int ndim;
    int64_t shape[4];
};

struct ckpt_layer {
    int type; /* enum mcfg_layer */
    struct ckpt_tensor input_norm, post_norm;
    /* full attention */
    struct quant_linear q_proj, k_proj, v_proj, o_proj;
    struct ckpt_tensor q_norm, k_norm, k_scale, v_scale;
    /* Gated DeltaNet */
    struct quant_linear in_proj_qkv, in_proj_z, in_proj_a, in_proj_b, out_proj;
    struct ckpt_tensor conv1d, A_log, dt_bias, lin_norm;
    /* MoE */
    struct quant_linear router;
    struct quant_linear *experts; /* [E * 3]: gate, up, down per expert (owned) */
    int experts_fused;            /* stored as fused 3-D tensors */
    struct quant_linear sh_gate, sh_up, sh_down, sh_expert_gate;
};

/* One name of the global index (all shards). */
struct ckpt_entry {
    const struct st_tensor *t; /* in shards[shard] */
    int shard;
    int used; /* bound, or an indexed mtp/visual tensor */
};

struct ckpt {
    char *dir; /* owned */
    struct mcfg cfg;
    struct quant_cfg q;
    struct st_file *shards; /* owned, n_shards */
    int n_shards;
    struct ckpt_entry *idx; /* sorted by name, n_idx */
    size_t n_idx;
    struct ckpt_tensor embed, final_norm;
    struct quant_linear lm_head;
    struct ckpt_layer *layers; /* [cfg.n_layers] */
    size_t n_mtp, n_visual;    /* indexed, not bound */
    char **strs;               /* owned names the views point to */
    size_t n_strs, cap_strs;
};

/* Opens the checkpoint in dir. On failure returns ERR_* with a message that
 * names the file and tensor or key and what was expected; c is left closed.
 * Caller closes with ckpt_close. */
int ckpt_open(struct ckpt *c, const char *dir);

/* Frees everything; accepts a zeroed or half-built struct. */
void ckpt_close(struct ckpt *c);

/* Any tensor by full name, including mtp.* and model.visual.*. Borrowed. */
const struct st_tensor *ckpt_find(const struct ckpt *c, const char *name);

/* Precision classes for `lode inspect`. */
enum ckpt_class {
    CK_ROUTED_W4,
    CK_ROUTED_W8, /* super-experts */
    CK_ROUTED_BF16,
    CK_ATTN_W8,
    CK_ATTN_W4,
    CK_ATTN_BF16,
    CK_GDN_Q, /* DeltaNet projections, quantized */
    CK_GDN_BF16,
    CK_SHARED_Q,
    CK_SHARED_BF16,
    CK_ROUTER,
    CK_EMBED,
    CK_LM_HEAD,
    CK_SMALL, /* norms, conv1d, A_log, dt_bias, kv scales */
    CK_NCLASS
};
const char *ckpt_class_name(int cls);

struct ckpt_stats {
    uint64_t count[CK_NCLASS]; /* linear weights (or tensors for CK_SMALL / CK_EMBED) */
    uint64_t bytes[CK_NCLASS];
    uint64_t total_bytes;     /* bound text-model weights */
    uint64_t extra_bytes;     /* indexed but unbound (mtp, visual) */
    uint64_t per_token_bytes; /* weights read per decoded token: dense + top_k average experts
                                 per layer + lm_head + one embedding row */
    uint64_t kv_bytes_bf16;   /* KV cache per context token, bf16 */
    uint64_t kv_bytes_fp8;
    uint64_t gdn_state_bytes; /* per sequence: fp32 recurrent state + bf16 conv state */
};

/* Computes the statistics from the views (data may be NULL: see mk_synth). */
void ckpt_stats(const struct ckpt *c, struct ckpt_stats *s);

/* Internal to engine/: adds an owned copy of s to c->strs; NULL on OOM. */
const char *ckpt_strdup(struct ckpt *c, const char *s);

#endif
