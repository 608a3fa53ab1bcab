/*
 * modelcfg.h - config.json (+ generation_config.json) of a Qwen3.5/3.6-MoE
 * checkpoint, validated into plain numbers before anything is sized.
 *
 * Two forms are accepted:
 *   - the vision-language wrapper: "architectures":
 *     ["Qwen3_5MoeForConditionalGeneration"], the text model under
 *     "text_config", tensors under "model.language_model.";
 *   - the text-only form: ["Qwen3_5MoeForCausalLM"] (model_type
 *     "qwen3_5_moe_text"), fields at top level, tensors under "model.".
 * Layer types come from "layer_types" or, when absent, from
 * "full_attention_interval" (layer i is full attention iff (i+1) % k == 0).
 * RoPE: "rope_parameters" (transformers >= 5) or "rope_scaling" / top-level
 * "rope_theta" (older files), rope_type "default" or "yarn".
 */
#ifndef LODE_ENGINE_MODELCFG_H
#define LODE_ENGINE_MODELCFG_H

#include <stddef.h>
#include <stdint.h>

#define MCFG_MAX_LAYERS 512
#define MCFG_MAX_EOS 8

enum mcfg_layer { MCFG_LINEAR_ATTN = 0, MCFG_FULL_ATTN = 1 };
enum mcfg_rope { MCFG_ROPE_DEFAULT = 0, MCFG_ROPE_YARN = 1 };

struct mcfg {
    int vl;          /* 1: the ConditionalGeneration wrapper */
    char arch[64];   /* architectures[0] */
    char prefix[32]; /* "model.language_model." or "model." */
    char dtype[16];  /* "bfloat16" (informational) */
    int64_t vocab;   /* embedding / lm_head rows */
    int64_t hidden;  /* H */
    int64_t n_layers;
    /* full attention (gated GQA) */
    int64_t n_heads, n_kv_heads, head_dim;
    int attn_output_gate; /* q_proj emits [query | gate] per head */
    /* Gated DeltaNet */
    int64_t lin_k_heads, lin_v_heads, lin_k_dim, lin_v_dim, conv_kernel;
    /* MoE */
    int64_t n_experts, top_k, moe_inter, shared_inter;
    double rms_eps;
    /* RoPE */
    enum mcfg_rope rope_type;
    double rope_theta, partial_rotary;
    int64_t rotary_dim; /* head_dim * partial_rotary, even */
    double yarn_factor, yarn_beta_fast, yarn_beta_slow, yarn_attn_factor;
    int64_t yarn_orig_max_pos;
    int64_t max_pos;
    int tie_embeddings;
    int64_t mtp_layers;
    unsigned char layer_type[MCFG_MAX_LAYERS]; /* enum mcfg_layer per layer */
    int64_t n_full;                            /* full-attention layer count */
    int64_t bos, pad;                          /* -1 when null */
    int64_t eos[MCFG_MAX_EOS];
    int n_eos;
    /* generation_config.json (have_gen = 0 when the file is absent) */
    int have_gen, do_sample;
    double temperature, top_p;
    int64_t gen_top_k;
};

/* Parses and validates config.json text (json[0..n), borrowed). `label`
 * names the file in messages. Returns 0 or ERR_INVAL with the key named. */
int mcfg_parse(struct mcfg *c, const char *json, size_t n, const char *label);

/* Merges generation_config.json text into c (eos list, sampling defaults). */
int mcfg_parse_gen(struct mcfg *c, const char *json, size_t n, const char *label);

/* Reads DIR/config.json and, when present, DIR/generation_config.json. */
int mcfg_load(struct mcfg *c, const char *dir);

/* Derived sizes the engine and `lode inspect` use. */
int64_t mcfg_q_out(const struct mcfg *c);       /* q_proj rows: heads*head_dim*(1+gate) */
int64_t mcfg_kv_out(const struct mcfg *c);      /* k_proj / v_proj rows */
int64_t mcfg_lin_key_dim(const struct mcfg *c); /* lin_k_heads * lin_k_dim */
int64_t mcfg_lin_val_dim(const struct mcfg *c); /* lin_v_heads * lin_v_dim */
int64_t mcfg_conv_dim(const struct mcfg *c);    /* 2*key_dim + value_dim */

#endif
