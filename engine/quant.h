/*
 * quant.h - compressed-tensors `quantization_config`: schemes, the module
 * matcher (which precision each checkpoint module has), the typed view of a
 * linear weight, and the reference dequantization.
 *
 * Supported: quant_method "compressed-tensors", quantization_status
 * "compressed", groups whose weights are symmetric int with 4 or 8 bits,
 * strategy "group" (any group size dividing in) or "channel", format
 * "pack-quantized" (per group, else the top-level format), no input
 * activations (weight-only), actorder null / "weight". Anything else is
 * refused with a message naming the group and key.
 *
 * Matching (compressed-tensors `match.py` and vLLM `get_scheme_dict`):
 *   1. a module matching any `ignore` entry is not quantized;
 *   2. else the first group with an exact-name target equal to the module
 *      name, then the first `re:` target (Python re.match: anchored at the
 *      start only, PCRE2 with PCRE2_ANCHORED) in config order, then the first
 *      class target (e.g. "Linear") equal to the module's class;
 *   3. no match: not quantized.
 * The caller confirms the decision against the tensors actually present.
 *
 * Pack-quantized layout (checkpoint-format.md §3): weight_packed int32
 * [out, in*bits/32], element c of a row in word c/(32/bits) at bit
 * bits*(c%(32/bits)) (element 0 in the least significant bits), stored
 * unsigned with bias 2^(bits-1) (+8 int4, +128 int8); weight_scale
 * [out, in/group] (channel: [out, 1]); w = (u - bias) * scale.
 */
#ifndef LODE_ENGINE_QUANT_H
#define LODE_ENGINE_QUANT_H

#include "engine/safetensors.h"

#include <stddef.h>
#include <stdint.h>

struct quant_scheme {
    char group[64]; /* config_groups key, for messages */
    int bits;       /* 4 or 8 */
    int group_size; /* columns per scale; 0 = channel (one scale per row) */
};

enum quant_target_kind { QT_EXACT, QT_REGEX, QT_CLASS };

struct quant_target {
    char *s;    /* owned: the target text as written (with "re:") */
    int kind;   /* enum quant_target_kind */
    void *re;   /* pcre2_code * for QT_REGEX */
    int scheme; /* index into schemes; -1 for ignore entries */
    long hits;  /* modules this entry matched (for "matches nothing") */
};

struct quant_cfg {
    int present; /* 0: the checkpoint has no quantization_config */
    struct quant_scheme *schemes;
    int n_schemes;
    struct quant_target *targets; /* in config order */
    int n_targets;
    struct quant_target *ignore;
    int n_ignore;
    int *ign_exact; /* indices of exact-name ignore entries, sorted by name (bsearch: real
                       checkpoints list hundreds of names) */
    int n_ign_exact;
    int kv_fp8; /* kv_cache_scheme asks for FP8 KV */
    void *md;   /* pcre2_match_data * */
};

/* Reads "quantization_config" from config.json text (top level, else inside
 * text_config). Absent: q->present = 0, returns 0. Caller frees with
 * quant_free (also after a failure). */
int quant_parse(struct quant_cfg *q, const char *json, size_t n, const char *label);
void quant_free(struct quant_cfg *q);

/* Decides module `name` (tensor name minus its last component) of class
 * `cls` ("Linear", "Embedding"). Returns the scheme index, or -1 when not
 * quantized; *ignored (may be NULL) tells an ignore hit from no match.
 * Counts hits on every entry that matches. */
int quant_match(struct quant_cfg *q, const char *name, const char *cls, int *ignored);

/* Returns the first target that matched no module, or NULL. */
const struct quant_target *quant_unused_target(const struct quant_cfg *q);

/* A linear weight W [out, in] as the engine sees it. */
struct quant_linear {
    const char *name; /* module name; borrowed from the checkpoint */
    int64_t out, in;
    int bits;            /* 16: plain dtype; 4 or 8: pack-quantized */
    enum st_dtype dtype; /* plain: BF16/F16/F32 [out, in]; quantized: I32 [out, in*bits/32] */
    const void *data;    /* borrowed from the mmap */
    const void *scale;   /* quantized: [out, in/group] of scale_dtype */
    enum st_dtype scale_dtype;
    int64_t group; /* quantized: columns per scale (== in for channel) */
};

/* Bytes of data (+ scales) this weight occupies. */
uint64_t quant_linear_bytes(const struct quant_linear *w);

/* Dequantizes (or converts) row r into out[in]: exactly what compressed-
 * tensors' decompress computes, (u - bias) * scale in float32. */
void quant_dequant_row(const struct quant_linear *w, int64_t r, float *out);

/* Packs one row of signed codes q[in] (each in [-2^(bits-1), 2^(bits-1)))
 * into words[in*bits/32]. The inverse of the unpack above. */
void quant_pack_row(const int8_t *q, int64_t in, int bits, int32_t *words);

/* Scalar conversions (little-endian storage). bf16 from f32 rounds to
 * nearest-even (NaN kept quiet). */
float quant_bf16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f);
float quant_f16_to_f32(uint16_t h);
/* Reads element i of a float tensor of dtype d (BF16/F16/F32) as float. */
float quant_load_f(const void *p, enum st_dtype d, int64_t i);

#endif
