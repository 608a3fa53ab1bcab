/*
 * model_cuda.h - the whole model on a CUDA device (issue #8): the weights of an opened CPU
 * engine uploaded once (int4/int8 experts stay quantized), the forward pass of engine/forward.c
 * on the device for prefill and decode, and the sequence state on the device (KV cache per full
 * layer in the engine's KV type, DeltaNet conv + recurrent states) with snapshots on the device
 * and transfer to and from the CPU struct seq_state (so seq_serialize / seq_deserialize move a
 * state between backends).
 *
 * Usage:
 *     struct eng *e;  eng_open(&e, dir, &o);            // binds the checkpoint (CPU side)
 *     struct engc *g; engc_open(&g, e, 0);              // uploads it to device 0
 *     struct engc_state *s; engc_state_new(g, &s, 4096);
 *     engc_forward(g, s, prompt, n, logits, 0);         // host logits of the last token
 *     engc_state_free(s); engc_close(g); eng_close(e);
 *
 * The CPU engine stays usable alongside (its kern_weight views still point into the mmap). One
 * engine per process uses the backend's stream (kcu_stream); calls are not thread-safe.
 * Numerics: fp32 activations; projections of more than 16 tokens (prefill) run on tensor cores
 * with bf16-rounded operands (kcu_matmul), decode in fp32. The trace hook of eng_set_trace is
 * not called on this path.
 */
#ifndef LODE_ENGINE_MODEL_CUDA_H
#define LODE_ENGINE_MODEL_CUDA_H

#include "engine/model.h"
#include "engine/seqstate.h"

#include <stddef.h>
#include <stdint.h>

struct engc;
struct engc_state;
struct engc_snap;

/* Device bytes the weights of e take once uploaded, and the activation bytes of one chunk. */
void engc_sizes(const struct eng *e, size_t *weight_bytes, size_t *act_bytes);

/* Uploads e's weights to device dev (kcu_init). e is borrowed and must outlive the result. When
 * the device lacks memory the message names the weight, activation and free sizes. Caller owns
 * *out; engc_close accepts NULL. */
int engc_open(struct engc **out, struct eng *e, int dev);
void engc_close(struct engc *g);
struct eng *engc_eng(const struct engc *g);

/* A fresh device state at position 0 with room for cap tokens (grown on demand), KV type from
 * the engine's options. Caller owns *out; engc_state_free accepts NULL. */
int engc_state_new(struct engc *g, struct engc_state **out, long cap);
void engc_state_free(struct engc_state *s);
long engc_state_pos(const struct engc_state *s);
/* Back to position 0 with zero DeltaNet states. */
int engc_state_reset(struct engc_state *s);

/* eng_forward on the device: consumes T tokens at the state's position, in chunks of the
 * engine's o.chunk tokens, and copies the logits to the host once per call (the last token's
 * [vocab], or every token's [T][vocab] when all != 0; logits NULL skips the head).
 * One token (a decode step) runs with its token id and position as device scalars and waits
 * only for the logits copy; with logits it is captured once per shape (the state's KV
 * capacity, an attention bound that doubles from 1024 positions, the scratch buffers) into a
 * CUDA graph and replayed. Graph and eager steps run the same launches: identical results.
 * LODE_CUDA_GRAPH=0 in the environment (or engc_set_graph) runs them eagerly. */
int engc_forward(struct engc *g, struct engc_state *s, const int32_t *tokens, long T, float *logits,
                 int all);
/* Decode steps through CUDA graphs (on) or eagerly (off); graphs captured so far are kept. */
void engc_set_graph(struct engc *g, int on);
/* Graphs captured and replayed since engc_open (tests, bench). */
void engc_graph_stats(const struct engc *g, long *captures, long *replays);
/* Greedy decode helper: the argmax token of the last forward's last row, computed on the device
 * (one int copied back). Valid after an engc_forward with logits requested. */
int engc_argmax(struct engc *g, int32_t *tok);

/* Device -> host: out (a state of this engine's dims and KV type, e.g. from eng_state_new) gets
 * the device state's KV rows [0, pos), DeltaNet states, scales and position. */
int engc_state_download(struct engc *g, const struct engc_state *s, struct seq_state *out);
/* Host -> device: the device state takes in's contents (same dims and KV type). */
int engc_state_upload(struct engc *g, struct engc_state *s, const struct seq_state *in);

/* Snapshots on the device (DeltaNet states + position; the KV cache is append-only, as in
 * seqstate.h). engc_restore answers ERR_INVAL when the KV rows below the snapshot's position were
 * rewritten since it was taken or when it belongs to another state. */
int engc_snapshot(struct engc_state *s, struct engc_snap **out);
int engc_restore(struct engc_state *s, const struct engc_snap *sn);
void engc_snap_free(struct engc_snap *sn);

/* ---- eng_forward on the device (o.backend == ENG_BACKEND_CUDA; called by engine/model.c and
 * engine/forward.c) */

/* Uploads e's weights to device e->o.device; sets e->gpu. With ENG_BACKEND_AUTO: nothing when
 * there is no device, and a warning (not an error) when the upload fails. */
int engc_attach(struct eng *e);
/* The backend e's forward pass runs on: ENG_BACKEND_CPU or ENG_BACKEND_CUDA. */
int engc_backend_of(const struct eng *e);
/* Frees e->gpu (NULL allowed). */
void engc_detach(struct eng *e);
/* eng_forward's semantics on the device. The device owns the state while it runs it: s is bound
 * to a device copy (seqstate.h "device residency"; up to 4 states at once, the least recently
 * used one goes back to the host when a fifth comes), only the logits come back after a step,
 * and s's host arrays are stale until something on the host reads them (serialize, export, the
 * CPU engine), which copies what is missing from the device. Snapshots of s stay on the device
 * (seq_snapshot / seq_restore copy device to device); a restore of a host snapshot, an import or
 * a reset makes the next step upload what changed. */
int engc_eng_forward(struct eng *e, struct seq_state *s, const int32_t *tokens, long T,
                     float *logits, int all);
/* e's device engine (NULL on the CPU): for engc_set_graph / engc_graph_stats. */
struct engc *engc_of(const struct eng *e);

#endif
