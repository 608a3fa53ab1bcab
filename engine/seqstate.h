/*
 * seqstate.h - the state of one sequence: everything the model remembers
 * about the tokens it has read, made explicit so it can be snapshotted,
 * rolled back, saved and resumed (on either backend).
 *
 * Per full-attention layer: the KV cache, K and V each [cap][n_kv][head_dim]
 * in kv_type (FP8 E4M3 with a per-layer dequantization scale, BF16 or F32).
 * Per Gated DeltaNet layer: the conv state [conv_ch][conv_k - 1] (the last
 * conv_k - 1 pre-conv inputs per channel, oldest first) and the recurrent
 * state [n_v][dk][dv], both fp32. Plus the position (tokens consumed).
 *
 * Snapshots copy only the DeltaNet states and the position (about 60 MiB
 * for the real model, independent of context length): the KV cache is
 * append-only, so restoring a snapshot just moves the position back and the
 * entries beyond it are overwritten later. A snapshot stays restorable until
 * the KV entries below its position are rewritten; seq_restore checks this.
 *
 * Serialized form (versioned, checksummed, names the model):
 *   "LODESEQ\0" u32 version, u32 header bytes, header (model id, dims, kv
 *   type, scales, pos), then per layer a section {u32 layer, u32 kind,
 *   u64 bytes, data, u32 crc32c}, then the SHA-256 of everything before it.
 *   All integers little-endian. Only the first pos KV rows are written.
 */
#ifndef LODE_ENGINE_SEQSTATE_H
#define LODE_ENGINE_SEQSTATE_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

#define SEQ_MAX_LAYERS 128
#define SEQ_FORMAT_VERSION 1

struct seq_dims {
    int n_layers;
    uint8_t is_full[SEQ_MAX_LAYERS]; /* 1: gated full attention, 0: Gated DeltaNet */
    int n_kv, head_dim;              /* attention: KV heads and their size */
    int conv_ch, conv_k;             /* DeltaNet conv: channels (q|k|v), kernel size */
    int n_v, dk, dv;                 /* DeltaNet recurrent: value heads, key dim, value dim */
};

struct seq_layer {
    /* full attention */
    uint8_t *k, *v;         /* [cap][n_kv][head_dim] of kv_type; owned */
    float k_scale, v_scale; /* FP8 dequantization scales (1 otherwise) */
    /* DeltaNet */
    float *conv;  /* [conv_ch][conv_k - 1]; owned */
    float *state; /* [n_v][dk][dv]; owned */
};

struct seq_state {
    struct seq_dims d;
    int kv_type; /* enum kern_dtype: KERN_F32, KERN_BF16 or KERN_FP8 */
    long cap;    /* KV rows allocated per layer */
    long pos;    /* tokens consumed */
    struct seq_layer layer[SEQ_MAX_LAYERS];
    /* snapshot validity: each backwards move of pos starts a new epoch and
     * records how far back it went */
    uint32_t epoch;
    long written; /* KV rows [0, written) hold data of the current timeline */
    long *floor;  /* floor[e]: the lowest pos reached during epoch e; owned */
    uint32_t floor_cap;
};

struct seq_snap {
    long pos;
    uint32_t epoch;
    float *data; /* all DeltaNet conv + recurrent states, layer order; owned */
    size_t n;    /* floats in data */
};

/* Checks dims (positive, within caps, product sizes fit); ERR_INVAL naming the field. */
int seq_dims_check(const struct seq_dims *d);
/* KV bytes per token (all full layers, K and V) and DeltaNet state bytes. */
size_t seq_kv_bytes_per_token(const struct seq_dims *d, int kv_type);
size_t seq_gdn_bytes(const struct seq_dims *d);

/* A fresh state at position 0 with room for cap tokens (grown on demand by
 * seq_reserve). Caller owns *out; seq_free accepts NULL. */
int seq_new(struct seq_state **out, const struct seq_dims *d, int kv_type, long cap);
void seq_free(struct seq_state *s);
/* Makes room for at least cap positions, keeping the contents. */
int seq_reserve(struct seq_state *s, long cap);
/* Back to position 0 with zero DeltaNet states (the KV needs no clearing). */
void seq_reset(struct seq_state *s);

/* Pointer to the K or V row of token `pos` in full layer l (NULL if out of range). */
void *seq_k_row(struct seq_state *s, int l, long pos);
void *seq_v_row(struct seq_state *s, int l, long pos);

/* Snapshot at the current position: copies the DeltaNet states (cost proportional to them,
 * not to the context). Caller owns *out and frees it with seq_snap_free (accepts NULL). */
int seq_snapshot(struct seq_state *s, struct seq_snap **out);
void seq_snap_free(struct seq_snap *sn);
/* Rolls the state back (or forward, if nothing was rewritten) to a snapshot.
 * ERR_INVAL when the KV entries below the snapshot's position have been
 * rewritten since it was taken, or when it belongs to another state shape. */
int seq_restore(struct seq_state *s, const struct seq_snap *sn);
/* Called by the forward pass before it writes KV rows [pos, pos + n): when
 * that rewrites rows of the current timeline, snapshots above pos go stale. */
void seq_will_write(struct seq_state *s, long pos, long n);

/* Appends the serialized state to out; model_id is the checkpoint identity. */
int seq_serialize(const struct seq_state *s, const uint8_t model_id[32], struct buf *out);
/* A new state from serialized bytes; refuses another model, another format
 * version, another shape, a bad checksum or any inconsistency (ERR_INVAL,
 * naming what). want may be NULL to accept the stored dims. */
int seq_deserialize(struct seq_state **out, const uint8_t model_id[32], const struct seq_dims *want,
                    const void *data, size_t n);

/* ---- pieces of a state, for the prefix cache (app/prefix_cache.c)
 *
 * KV rows: "LODEKVR\0" u32 SEQ_FORMAT_VERSION, the shape header (model id,
 * dims, kv type, per-layer FP8 scales), u64 from, u64 to, then for each full
 * layer its K rows [from, to) and V rows, then a CRC-32C of everything before.
 * DeltaNet: "LODEGDN\0" u32 version, the shape header, u64 pos, then each
 * DeltaNet layer's conv and recurrent state, then a CRC-32C. */

/* Appends KV rows [from, to) of every full layer (0 <= from <= to <= s->pos). */
int seq_export_kv(const struct seq_state *s, const uint8_t model_id[32], long from, long to,
                  struct buf *out);
/* Writes exported rows back at their positions (growing s as needed) and
 * marks them written; s->pos is not moved. Refuses another model, format
 * version, shape, KV type or FP8 scale, and a bad checksum (ERR_INVAL).
 * *from / *to (may be NULL) get the row range. */
int seq_import_kv(struct seq_state *s, const uint8_t model_id[32], const void *data, size_t n,
                  long *from, long *to);
/* Appends the DeltaNet conv + recurrent states and the position they belong to. */
int seq_export_gdn(const struct seq_state *s, const uint8_t model_id[32], struct buf *out);
/* Restores exported DeltaNet states and sets s->pos to their position. The
 * KV rows below it must be in s already (imported or computed in this
 * timeline): ERR_INVAL when fewer than pos rows are written. */
int seq_import_gdn(struct seq_state *s, const uint8_t model_id[32], const void *data, size_t n);

#endif
