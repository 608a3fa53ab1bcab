/*
 * model.h - the Qwen3.5/3.6-MoE text model on the CPU: an opened checkpoint
 * bound to kernel views, and the forward pass over a sequence state.
 *
 * Usage:
 *     struct eng *e;
 *     struct eng_opts o = eng_opts_default();
 *     if (eng_open(&e, dir, &o) < 0) fail(err_msg());
 *     struct seq_state *s;
 *     eng_state_new(e, &s, 4096);
 *     float *logits = malloc(eng_vocab(e) * sizeof(float));
 *     eng_forward(e, s, prompt, n, logits, 0);      // prefill; logits of the last token
 *     eng_forward(e, s, &next, 1, logits, 0);       // one decode step
 *     seq_free(s); eng_close(e);
 *
 * Semantics are those of transformers' Qwen3_5Moe classes (model-spec.md §3),
 * computed in fp32 from the checkpoint's weights read in place.
 */
#ifndef LODE_ENGINE_MODEL_H
#define LODE_ENGINE_MODEL_H

#include "engine/ckpt.h"
#include "engine/seqstate.h"

#include <stdint.h>

struct eng_opts {
    int threads; /* <= 0: all cores */
    int isa;     /* enum kern_isa; KERN_ISA_AUTO picks the best */
    int kv_type; /* enum kern_dtype: KERN_FP8 (default), KERN_BF16, KERN_F32 */
    long chunk;  /* prefill tokens per forward step (bounds activation memory) */
    double yarn; /* > 1: force YaRN with this factor (over the config's max positions) */
    int backend; /* enum eng_backend: where eng_forward runs (engine/model_cuda.h) */
    int device;  /* CUDA device index for ENG_BACKEND_CUDA */
};

/* ENG_BACKEND_CUDA: eng_open also uploads the weights to the GPU and eng_forward runs there;
 * the device then holds the sequence state (seqstate.h "device residency": the host copy is
 * completed only when the host reads it), so snapshots, serialization and the prefix cache work
 * unchanged (engine/model_cuda.h). */
/* ENG_BACKEND_AUTO: CUDA when a device is present and the model fits (else the CPU, with a
 * warning naming why). */
enum eng_backend { ENG_BACKEND_AUTO = -1, ENG_BACKEND_CPU = 0, ENG_BACKEND_CUDA = 1 };

struct eng_opts eng_opts_default(void);

struct eng;

/* Opens the checkpoint in dir and binds it for the CPU kernels. Caller owns *out;
 * eng_close accepts NULL. */
int eng_open(struct eng **out, const char *dir, const struct eng_opts *o);
void eng_close(struct eng *e);

const struct mcfg *eng_cfg(const struct eng *e);
const struct ckpt *eng_ckpt(const struct eng *e);
long eng_vocab(const struct eng *e);
/* The checkpoint identity states are saved under (SHA-256 of config.json, every
 * shard's safetensors header and size, and 16 pages of weights sampled evenly
 * from each shard, so another seed or a fine-tune of the same shapes differs). */
void eng_model_id(const struct eng *e, uint8_t id[32]);
/* Sequence-state dims of this model. */
void eng_state_dims(const struct eng *e, struct seq_dims *d);
/* A fresh state for this model (KV type from the options). Caller owns *out. */
int eng_state_new(struct eng *e, struct seq_state **out, long cap);

/* Consumes T tokens at s->pos (appending to the KV cache, advancing the
 * DeltaNet states) and writes logits: the last token's [vocab] (all == 0) or
 * every token's [T][vocab] (all != 0). logits may be NULL to skip the head.
 * ERR_INVAL for a token id outside the vocabulary. */
int eng_forward(struct eng *e, struct seq_state *s, const int32_t *tokens, long T, float *logits,
                int all);

/* Test hook: called after the embedding (layer -1) and after every decoder
 * layer with the hidden states [T][hidden] of the current step; and with
 * layer = n_layers after the final norm. NULL to disable. */
typedef void (*eng_trace_fn)(void *ctx, int layer, const float *h, long T, long hidden);
void eng_set_trace(struct eng *e, eng_trace_fn fn, void *ctx);

/* Forces the DeltaNet prefill path: 0 auto, 1 recurrent, 2 chunked (tests). */
void eng_set_gdn_mode(struct eng *e, int mode);

#endif
