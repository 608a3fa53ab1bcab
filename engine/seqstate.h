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
    /* device residency (struct seq_dev_ops below): NULL dev_ops = the host is the truth */
    const struct seq_dev_ops *dev_ops;
    void *dev;             /* the backend's handle of its copy */
    long host_kv, dev_kv;  /* KV rows [0, x) below `written` current on the host / device */
    int host_gdn, dev_gdn; /* DeltaNet states current on the host / device */
};

struct seq_snap {
    long pos;
    uint32_t epoch;
    float *data; /* all DeltaNet conv + recurrent states, layer order; owned (NULL: on a device) */
    size_t n;    /* floats in data */
    const struct seq_dev_ops *ops; /* a device snapshot: ops and its handle dh, else NULL */
    void *dh;
};

/* ---- device residency (engine/model_cuda.c, issue #8)
 *
 * A backend that runs the forward pass on a device keeps the state there: it binds the state
 * (dev_ops, dev) and the newest DeltaNet states and KV rows may then live only on the device.
 * The functions of this header materialise what the host lacks before they read host memory
 * (seq_serialize, seq_export_*, a snapshot of a state whose device copy is stale) and mark the
 * device copy stale where they write; snapshots of a bound state stay on the device (a device
 * copy, no transfer). Unbound states (the CPU engine's) behave as they always did.
 *
 * Invariant: KV row r < written is current on the host when r < host_kv and on the device when
 * r < dev_kv, on one side at least; the DeltaNet states are current on one side at least. */
struct seq_dev_ops {
    /* KV rows [s->host_kv, s->written) and, unless s->host_gdn, the DeltaNet states into s's
     * host arrays (the caller then sets host_kv / host_gdn) */
    int (*pull)(void *dev, struct seq_state *s);
    /* a device copy of s's DeltaNet states; *h its handle */
    int (*snap)(void *dev, struct seq_state *s, void **h);
    /* s's device DeltaNet states := snapshot h (the caller checked that it may be restored) */
    int (*restore)(void *dev, struct seq_state *s, const void *h);
    /* a snapshot's n floats (host layout) into dst: restoring it into an unbound state */
    int (*snap_read)(const void *h, float *dst, size_t n);
    void (*snap_free)(void *h);
    /* s is freed: the backend forgets it (nothing is copied) */
    void (*unbind)(void *dev, struct seq_state *s);
};

/* Makes the host copy complete (no-op for an unbound state). */
int seq_host_sync(struct seq_state *s);
/* The host is about to write KV rows from `from` on (and the DeltaNet states when gdn): makes
 * the host copy complete, then marks the device copy stale from there (the CPU forward pass and
 * the imports call this). */
int seq_host_write(struct seq_state *s, long from, int gdn);

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
/* Room for `need` positions as a sequence grows: a quarter more than needed when that can be
 * had (else exactly need), so a decode step does not realloc and copy every layer's KV cache
 * every token. */
int seq_grow(struct seq_state *s, long need);
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

/* ---- in-place import: the prefix cache reads pieces from its files straight
 * into the state instead of through a buffer. Its store checks a CRC-32C over
 * every byte it reads, so the piece's own trailing CRC is not checked here.
 *
 *     read seq_kv_header_bytes(s) bytes into hdr;
 *     seq_import_kv_spans(s, id, hdr, n, from, to, sp, &nsp);
 *     read sp[i].n bytes into each sp[i].p in order, then the 4-byte CRC;
 *
 * and the same for DeltaNet states, then seq_import_gdn_finish. */
struct seq_span {
    void *p;
    size_t n;
};
#define SEQ_MAX_SPANS (2 * SEQ_MAX_LAYERS)

/* Bytes of a piece's header (magic to the row range or position) for s's shape. */
size_t seq_kv_header_bytes(const struct seq_state *s);
size_t seq_gdn_header_bytes(const struct seq_state *s);
/* Checks a KV-rows piece's header and its total size n as seq_import_kv does, and
 * that it holds rows [from, to), the ones the caller expects (checked before s is
 * touched: the bytes are not verified yet), then makes room for and marks the rows
 * and fills sp[0..*nsp) (room for SEQ_MAX_SPANS) with where its data goes. */
int seq_import_kv_spans(struct seq_state *s, const uint8_t model_id[32], const void *hdr, size_t n,
                        long from, long to, struct seq_span *sp, int *nsp);
/* The same for DeltaNet states (the destinations are the live states: a
 * caller that may fail half-way must be able to reset them); *pos gets the
 * position, which seq_import_gdn_finish then sets once the data is in. */
int seq_import_gdn_spans(struct seq_state *s, const uint8_t model_id[32], const void *hdr, size_t n,
                         long *pos, struct seq_span *sp, int *nsp);
int seq_import_gdn_finish(struct seq_state *s, long pos);

#endif
