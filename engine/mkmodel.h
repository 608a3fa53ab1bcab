/*
 * mkmodel.h - a deterministic random checkpoint in exactly the real layout:
 * config.json (+ generation_config.json), safetensors shards (+ index), and
 * for `mixed` a compressed-tensors quantization_config that mirrors the
 * published W4A16 recipe:
 *   - routed experts int4 group 32 (per expert, experts.E.{gate,up,down}_proj.
 *     weight_packed / weight_scale / weight_shape, as llm-compressor writes);
 *   - full-attention q/k/v/o and one super-expert per quantized layer int8
 *     channel (W8A16);
 *   - shared experts, DeltaNet projections, routers, embeddings, lm_head and
 *     layers 0, 1 and the last layer stay BF16.
 * `bf16` writes the official BF16 layout: fused mlp.experts.gate_up_proj
 * [E, 2I, H] (rows [0,I) gate, [I,2I) up) and mlp.experts.down_proj [E, H, I].
 *
 * Determinism: every tensor has its own splitmix64 stream seeded from the
 * seed and the tensor name; values are 24-bit integers times one float
 * amplitude (one rounding), bf16 by round-to-nearest-even, quantization by
 * one division and nearbyint. The same seed gives the same bytes anywhere.
 */
#ifndef LODE_ENGINE_MKMODEL_H
#define LODE_ENGINE_MKMODEL_H

#include "engine/ckpt.h"
#include "engine/modelcfg.h"

#include <stdint.h>

enum mk_preset { MK_TINY, MK_SMALL, MK_FULL };

struct mk_opts {
    const char *out; /* directory (created) */
    int preset;      /* enum mk_preset */
    int mixed;       /* 1: compressed-tensors mixed W4A16/W8A16; 0: bf16 */
    int text_layout; /* 1: Qwen3_5MoeForCausalLM under model.; 0: VL wrapper */
    uint64_t seed;
    const char *tokenizer; /* optional tokenizer.json to copy; vocab covers it */
    int shards;            /* >= 1 */
    /* A slice of the preset (0, 0: all of it): `layers` layers (0: to the last) that are the
     * preset's real layers first_layer.. (kinds, recipe, random bytes), numbered from 0, with
     * the whole model's embeddings, final norm and lm_head. */
    int layers, first_layer;
};

/* Fills m with the preset's dimensions (vocab may be raised by a tokenizer). */
void mk_preset_cfg(struct mcfg *m, int preset, int text_layout);

/* Precision the recipe gives a module: 16 (BF16), 8 (int8 channel) or 4 (int4 g32).
 * kind: 0 routed expert projection, 1 attention projection, 2 anything else. */
int mk_recipe_bits(const struct mcfg *m, int mixed, int64_t layer, int kind, int64_t expert);

/* The named synthetic checkpoints of `lode bench --synthetic NAME`: tiny, small (whole
 * presets) and full-layers (the full preset's real layers 4..7: three DeltaNet layers and one
 * attention layer, int4 experts, the real 248,320-row lm_head; about 4 GB). Sets o's preset,
 * layers and first_layer when o is not NULL; ERR_INVAL for another name. */
int mk_synthetic(const char *name, struct mk_opts *o);

/* Writes the checkpoint. Returns 0 or ERR_* with a message. */
int mk_write(const struct mk_opts *o);

/* Fills c with views of the recipe for config m, without data (data pointers
 * NULL): used by `lode inspect --config-only` to compute sizes without a
 * checkpoint. Close with ckpt_close. */
int mk_synth(struct ckpt *c, const struct mcfg *m, int mixed);

/* Quantizes one row w[in] symmetric with `bits` and `group` columns per
 * scale (compressed-tensors math: scale = absmax / ((2^bits - 1) / 2),
 * rounded to bf16; q = nearbyint(w / scale) clamped). Writes codes[in] and
 * scales[in/group] (bf16 bits). */
void mk_quantize_row(const float *w, int64_t in, int bits, int64_t group, int8_t *codes,
                     uint16_t *scales);

#endif
