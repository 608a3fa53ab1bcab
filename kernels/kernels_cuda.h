/*
 * kernels_cuda.h - the CUDA backend (issue #6): device, stream and buffers, weights uploaded once
 * (kcu_weight, kcu_experts), the quantized linear layers and the MoE block.
 *
 * Every kernel computes what its CPU counterpart in kernels.h computes (kern_matmul,
 * kern_moe_route, kern_moe) up to fp32 summation order, on device pointers, enqueued on `stream`
 * (a cudaStream_t; NULL is the default stream): it returns after the launch, not after the work.
 * Activations are fp32 row-major [T, k] as on the CPU. All functions return 0 or a negative ERR_*
 * with err_set() naming the place (bad shapes, no device, out of memory with the sizes, a failed
 * CUDA call with file, line and the error's name). Built without CUDA, kernels/backend.c answers
 * ERR_UNSUPPORTED.
 *
 * Files: kernels/cuda/device.cu (device, buffers, scratch), linear.cu (weights, decode kcu_matmul),
 * linear_mma.cu (prefill GEMM on tensor cores), linear.cuh (the shared 16-byte dequantizing dot
 * products and MMA helpers), moe.cu (experts, router, fused decode MoE), moe_prefill.cu (tokens
 * grouped by expert, grouped GEMM).
 */
#ifndef LODE_KERNELS_CUDA_H
#define LODE_KERNELS_CUDA_H

#include <stddef.h>

struct kern_weight;
struct kern_expert;

/* ---- device and memory (synchronous unless they take a stream: kcu_upload, kcu_download and
 * kcu_fill wait for the work already queued on every stream, kcu_stream() included, and are
 * complete when they return) */

/* Selects device `dev` for this process and creates the backend's stream. Idempotent for the
 * same device; ERR_NOTFOUND when there is no such device, ERR_UNSUPPORTED without CUDA or below
 * compute capability 8.0. */
int kcu_init(int dev);
/* Frees the scratch memory and the stream (buffers the caller owns stay valid until freed). */
void kcu_shutdown(void);
/* The backend's stream (a cudaStream_t) after kcu_init, else NULL (the default stream). */
void *kcu_stream(void);
/* Waits for all work on the device; reports an asynchronous kernel failure. */
int kcu_sync(void);

/* One device allocation. `what` names it in error messages ("layer 3 experts"). */
struct kcu_buf {
    void *ptr;
    size_t bytes;
};
/* Allocates b->bytes = bytes (uninitialised). When the device has not enough free memory the
 * message names the request and the free / total sizes. kcu_free accepts a zeroed buf. */
int kcu_alloc(struct kcu_buf *b, size_t bytes, const char *what);
void kcu_free(struct kcu_buf *b);
int kcu_upload(void *dst_dev, const void *src_host, size_t bytes);
int kcu_download(void *dst_host, const void *src_dev, size_t bytes);
/* Fills bytes with `byte` (0xff gives NaN floats: the tests' poison). */
int kcu_fill(void *dst_dev, int byte, size_t bytes);
/* Device-to-device copy enqueued on stream (the benchmarks' bandwidth reference). */
int kcu_copy(void *dst_dev, const void *src_dev, size_t bytes, void *stream);
/* The device's theoretical memory bandwidth in GB/s from its clock and bus width; 0 when the
 * driver does not say. */
double kcu_peak_gbps(void);
/* Free and total device memory in bytes. */
int kcu_mem_info(size_t *free_bytes, size_t *total_bytes);
/* The backend's shared scratch buffer, grown to at least `bytes` (growing synchronises the
 * device first); valid until the next kcu_scratch call. For one stream at a time. */
int kcu_scratch(size_t bytes, void **out);

/* ---- asynchronous copies and CUDA graphs (the engine's decode step, engine/model_cuda.c) */

/* Pinned (page-locked) host memory: copies from and to it are truly asynchronous and may be
 * captured into a graph. kcu_host_free accepts NULL. */
int kcu_host_alloc(void **out, size_t bytes);
void kcu_host_free(void *p);
/* cudaMemcpyAsync in any direction (unified addressing) on stream; returns after the enqueue. */
int kcu_copy_async(void *dst, const void *src, size_t bytes, void *stream);
/* Waits for the work enqueued on stream. */
int kcu_stream_sync(void *stream);
/* Stream capture: the work enqueued on stream between the two calls is recorded, not run, and
 * instantiated into *exec (replayed by kcu_graph_launch). kcu_capture_end with ok == 0 ends a
 * capture whose enqueueing failed (returns -1, the caller's error kept). Nothing that
 * synchronises or allocates may run inside a capture. */
int kcu_capture_begin(void *stream);
int kcu_capture_end(void *stream, int ok, void **exec);
int kcu_graph_launch(void *exec, void *stream);
void kcu_graph_free(void *exec);
/* Bumped whenever a backend-internal buffer a kernel launch may capture (kcu_scratch, the MoE
 * counters) is reallocated: a graph captured under another value is stale. */
unsigned long long kcu_alloc_epoch(void);
void kcu_epoch_bump(void);

/* ---- linear layers */

/* A struct kern_weight on the device, uploaded once at load time. Scales are kept as BF16 or F32
 * (F16 scales are widened to F32, exactly). Rows stay in the checkpoint's order: a row of int4 /
 * int8 / bf16 is contiguous, so 16-byte loads of consecutive lanes are already coalesced and every
 * 16-byte chunk of int4-g32 is exactly one group (one scale). */
struct kcu_weight {
    int type;       /* enum kern_dtype: F32, BF16, I4, I8 */
    int scale_type; /* KERN_BF16 or KERN_F32 (quantized only) */
    long n, k, group;
    void *data;  /* device: the rows */
    void *scale; /* device: [n, k/group] */
    struct kcu_buf buf;
};
/* Uploads w (kern_weight_check rules). `name` is used in messages. */
int kcu_weight_upload(struct kcu_weight *dw, const struct kern_weight *w, const char *name);
void kcu_weight_free(struct kcu_weight *dw);

/* y[t, :] = W x[t, :] for t < T on device pointers: x [T, k] fp32, y [T, n] fp32 (no overlap).
 * T <= 16 runs the decode matrix-vector kernel (weights streamed once per 16 tokens, 16-byte
 * loads, fp32 accumulation, warp-shuffle reductions); larger T the tensor-core GEMM (x and the
 * dequantized weights rounded to bf16, fp32 accumulation; shapes with k % 32 != 0 use the decode
 * kernel per 16 tokens). */
int kcu_matmul(const struct kcu_weight *w, const float *x, long T, float *y, void *stream);

/* ---- MoE */

/* The routed experts of one layer (or one shared expert: n_experts 1) on the device, all with the
 * same types and group: gate and up [E][inter][hidden], down [E][hidden][inter], each matrix's
 * data and scales contiguous per expert. */
struct kcu_experts {
    int n_experts;
    long hidden, inter;
    int type, scale_type;
    long group_gu, group_down; /* group of gate/up (k = hidden) and of down (k = inter) */
    void *gate, *up, *down;    /* device data */
    void *gate_s, *up_s, *down_s;
    size_t gu_stride, down_stride;   /* bytes between experts' data */
    size_t gu_sstride, down_sstride; /* elements between experts' scales */
    struct kcu_buf buf;
};
/* Uploads n experts (kern_weight_check rules; all gate/up alike, all down alike). Rows must be a
 * whole number of 16-byte chunks and the group a multiple of a chunk's values (the real model's
 * int4-g32, int8 per channel and bf16 all are); ERR_UNSUPPORTED names the shape otherwise. */
int kcu_experts_upload(struct kcu_experts *d, const struct kern_expert *ex, int n,
                       const char *name);
void kcu_experts_free(struct kcu_experts *d);

/* kern_moe_route for T tokens on the device: logits [T][E] -> idx [T][k], wt [T][k]. */
int kcu_moe_route(const float *logits, long T, int E, int k, int *idx, float *wt, void *stream);

/* The whole MoE block of T tokens: routing (from `logits`, or computed here from `router` in
 * fp32), gate and up of the selected experts with SwiGLU, down, the weighted sum and the shared
 * expert with its sigmoid gate, as kern_moe_route + kern_moe compute it. Few tokens (< 32): two
 * fused kernel launches (three with `router`), fp32 throughout. Many tokens: the selections are
 * sorted by expert and padded to tiles of 64, and a grouped tensor-core GEMM (bf16 operands, fp32
 * accumulation) runs gate/up and down per expert; experts whose hidden or intermediate size is
 * not a multiple of 32 stay on the first path. x must be 16-byte aligned. Every pointer is on
 * the device. */
struct kcu_moe {
    int k;
    long T;
    const struct kcu_experts *experts;
    const struct kcu_weight *router;  /* optional [n_experts, hidden] */
    const float *logits;              /* [T][n_experts] when router is NULL */
    const struct kcu_experts *shared; /* optional, n_experts 1 */
    const float *shared_gate;         /* [T] gate logits, with shared */
    const float *x;                   /* [T][hidden] */
    float *y;                         /* [T][hidden], written */
    int *idx;                         /* optional out [T][k] */
    float *wt;                        /* optional out [T][k] */
};
int kcu_moe(const struct kcu_moe *m, void *stream);

#endif
