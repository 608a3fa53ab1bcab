/*
 * linear.cu - linear layers on the GPU: weights uploaded once (kcu_weight), y = x W^T for few
 * tokens with the streaming matrix-vector kernel and for many tokens with the prefill kernel.
 *
 * Decode (T <= 16): each group of tpr lanes owns 2 rows, reads them in 16-byte chunks and
 * dequantizes in registers; every weight byte is read once per 16 tokens (linear.cuh).
 * Shapes whose rows are not whole 16-byte chunks (odd test sizes, never the real model) take a
 * slow element-wise kernel with the same results.
 */
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/linear.cuh"

extern "C" {
#include "common/ckd.h"
#include "common/err.h"
#include "kernels/kernels.h"
}

#include <cstdlib>
#include <cstring>

#define KCU_ROWS 2 /* rows per lane group in the decode kernel */
#define KCU_THREADS 256

/* ------------------------------------------------------------------ upload */

static size_t align256(size_t v) { return (v + 255) & ~(size_t)255; }

extern "C" int kcu_weight_upload(struct kcu_weight *dw, const struct kern_weight *w,
                                 const char *name)
{
    memset(dw, 0, sizeof *dw);
    name = name ? name : "weight";
    int rc = kern_weight_check(w);
    if (rc < 0)
        return err_prefix(rc, "cuda upload %s", name);
    size_t data_bytes, scale_n = 0, scale_bytes = 0, total;
    int q = w->type == KERN_I4 || w->type == KERN_I8;
    int st = w->scale_type == KERN_BF16 ? KERN_BF16 : KERN_F32;
    if (ckd_mul_sz(&data_bytes, (size_t)w->n, kcu_row_bytes(w->type, w->k)))
        return err_set(ERR_NOMEM, "cuda upload %s: [%ld, %ld] too large", name, w->n, w->k);
    if (q && (ckd_mul_sz(&scale_n, (size_t)w->n, (size_t)(w->k / w->group)) ||
              ckd_mul_sz(&scale_bytes, scale_n, st == KERN_BF16 ? 2 : 4)))
        return err_set(ERR_NOMEM, "cuda upload %s: too many scales", name);
    if (ckd_add_sz(&total, align256(data_bytes), scale_bytes))
        return err_set(ERR_NOMEM, "cuda upload %s: too large", name);
    if ((rc = kcu_alloc(&dw->buf, total, name)) < 0)
        return rc;
    dw->type = w->type;
    dw->scale_type = q ? st : KERN_F32;
    dw->n = w->n;
    dw->k = w->k;
    dw->group = q ? w->group : w->k;
    dw->data = dw->buf.ptr;
    dw->scale = q ? (char *)dw->buf.ptr + align256(data_bytes) : NULL;
    if ((rc = kcu_upload(dw->data, w->data, data_bytes)) < 0)
        goto fail;
    if (q && w->scale_type == KERN_F16) {
        /* widen once on the host (exact), so the kernels know two scale types, not three */
        float *tmp = (float *)malloc(scale_bytes);
        if (!tmp) {
            rc = err_set(ERR_NOMEM, "cuda upload %s: %zu bytes of scales", name, scale_bytes);
            goto fail;
        }
        for (size_t i = 0; i < scale_n; i++)
            tmp[i] = kern_f16_to_f32(((const uint16_t *)w->scale)[i]);
        rc = kcu_upload(dw->scale, tmp, scale_bytes);
        free(tmp);
        if (rc < 0)
            goto fail;
    } else if (q && (rc = kcu_upload(dw->scale, w->scale, scale_bytes)) < 0) {
        goto fail;
    }
    return 0;
fail:
    kcu_weight_free(dw);
    return err_prefix(rc, "cuda upload %s", name);
}

extern "C" void kcu_weight_free(struct kcu_weight *dw)
{
    if (!dw)
        return;
    kcu_free(&dw->buf);
    memset(dw, 0, sizeof *dw);
}

/* ------------------------------------------------------------------ decode kernels */

template <int WT, int ST, int TT>
__global__ void __launch_bounds__(KCU_THREADS)
    k_matvec(const uint8_t *W, size_t row_bytes, const uint8_t *S, long ng, long n, int C, int cpg,
             const float *x, long k, int T, float *y, int tpr)
{
    constexpr int R = KCU_ROWS;
    constexpr size_t ssz = ST == KERN_F32 ? 4 : 2;
    long gid = ((long)blockIdx.x * blockDim.x + threadIdx.x) / tpr;
    int lane = threadIdx.x % tpr;
    const uint4 *rows[R];
    const void *sc[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        long row = gid * R + r;
        rows[r] = row < n ? (const uint4 *)(W + row * row_bytes) : NULL;
        sc[r] = S && row < n ? S + (size_t)row * ng * ssz : NULL;
    }
    float acc[R][TT];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < TT; t++)
            acc[r][t] = 0.f;
    kcu_rows_dot<WT, ST, R, TT>(rows, sc, C, cpg, x, k, T, lane, tpr, acc);
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < TT; t++) {
            float v = kcu_group_sum(acc[r][t], tpr);
            if (lane == 0 && rows[r] && t < T)
                y[(long)t * n + gid * R + r] = v;
        }
}

/* Any shape: one warp per row, element by element (16 tokens at a time). */
__device__ float k_generic_val(int type, int st, const void *data, const void *scale, long k,
                               long group, long r, long i)
{
    switch (type) {
    case KERN_F32: return ((const float *)data)[r * k + i];
    case KERN_BF16:
        return __uint_as_float((uint32_t)((const unsigned short *)data)[r * k + i] << 16);
    default: {
        int bits = type == KERN_I4 ? 4 : 8, per = 32 / bits;
        uint32_t word = ((const uint32_t *)data)[r * (k / per) + i / per];
        int code = (int)((word >> ((i % per) * bits)) & ((1u << bits) - 1));
        long si = r * (k / group) + i / group;
        float s = st == KERN_F32
                      ? ((const float *)scale)[si]
                      : __uint_as_float((uint32_t)((const unsigned short *)scale)[si] << 16);
        return (float)(code - (1 << (bits - 1))) * s;
    }
    }
}

__global__ void __launch_bounds__(KCU_THREADS)
    k_matvec_generic(int type, int st, const void *data, const void *scale, long n, long k,
                     long group, const float *x, int T, float *y)
{
    long r = ((long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x % 32;
    float acc[16];
#pragma unroll
    for (int t = 0; t < 16; t++)
        acc[t] = 0.f;
    if (r < n)
        for (long i = lane; i < k; i += 32) {
            float v = k_generic_val(type, st, data, scale, k, group, r, i);
#pragma unroll
            for (int t = 0; t < 16; t++)
                if (t < T)
                    acc[t] += v * x[(long)t * k + i];
        }
#pragma unroll
    for (int t = 0; t < 16; t++) {
        float v = kcu_group_sum(acc[t], 32);
        if (lane == 0 && r < n && t < T)
            y[(long)t * n + r] = v;
    }
}

/* ------------------------------------------------------------------ dispatch */

/* 1 when w and x allow the 16-byte chunk kernels */
static int fast_ok(const struct kcu_weight *w, const float *x)
{
    int v = kcu_vpc(w->type);
    if (w->k % v || ((uintptr_t)x & 15) || ((uintptr_t)w->data & 15))
        return 0;
    if ((w->type == KERN_I4 || w->type == KERN_I8) && w->group % v)
        return 0;
    return 1;
}

template <int WT, int ST>
static void launch_matvec(const struct kcu_weight *w, const float *x, int T, float *y,
                          cudaStream_t s)
{
    long C = w->k / kcu_vpc(WT);
    int tpr = kcu_pick_tpr(C);
    int cpg = (int)(w->group / kcu_vpc(WT));
    long ng = w->k / w->group;
    long groups = (w->n + KCU_ROWS - 1) / KCU_ROWS;
    long blocks = (groups * tpr + KCU_THREADS - 1) / KCU_THREADS;
    size_t rb = kcu_row_bytes(WT, w->k);
    const uint8_t *W = (const uint8_t *)w->data, *S = (const uint8_t *)w->scale;
    if (T == 1)
        k_matvec<WT, ST, 1>
            <<<blocks, KCU_THREADS, 0, s>>>(W, rb, S, ng, w->n, (int)C, cpg, x, w->k, T, y, tpr);
    else if (T <= 4)
        k_matvec<WT, ST, 4>
            <<<blocks, KCU_THREADS, 0, s>>>(W, rb, S, ng, w->n, (int)C, cpg, x, w->k, T, y, tpr);
    else
        k_matvec<WT, ST, 16>
            <<<blocks, KCU_THREADS, 0, s>>>(W, rb, S, ng, w->n, (int)C, cpg, x, w->k, T, y, tpr);
}

/* T <= 16 tokens */
static int matvec(const struct kcu_weight *w, const float *x, int T, float *y, cudaStream_t s)
{
    if (!fast_ok(w, x)) {
        long blocks = (w->n * 32 + KCU_THREADS - 1) / KCU_THREADS;
        k_matvec_generic<<<blocks, KCU_THREADS, 0, s>>>(w->type, w->scale_type, w->data, w->scale,
                                                        w->n, w->k, w->group, x, T, y);
    } else {
        int f32s = w->scale_type == KERN_F32;
        switch (w->type) {
        case KERN_I4:
            f32s ? launch_matvec<KERN_I4, KERN_F32>(w, x, T, y, s)
                 : launch_matvec<KERN_I4, KERN_BF16>(w, x, T, y, s);
            break;
        case KERN_I8:
            f32s ? launch_matvec<KERN_I8, KERN_F32>(w, x, T, y, s)
                 : launch_matvec<KERN_I8, KERN_BF16>(w, x, T, y, s);
            break;
        case KERN_BF16: launch_matvec<KERN_BF16, KERN_BF16>(w, x, T, y, s); break;
        default: launch_matvec<KERN_F32, KERN_F32>(w, x, T, y, s); break;
        }
    }
    CUDA_TRY(cudaGetLastError());
    return 0;
}

int kcu_gemm_prefill(const struct kcu_weight *w, const float *x, long T, float *y,
                     cudaStream_t s); /* linear_mma.cu */

extern "C" int kcu_matmul(const struct kcu_weight *w, const float *x, long T, float *y,
                          void *stream)
{
    if (!w || !w->data || w->n < 1 || w->k < 1)
        return err_set(ERR_INVAL, "cuda matmul: weight not uploaded");
    if (w->type != KERN_F32 && w->type != KERN_BF16 && w->type != KERN_I4 && w->type != KERN_I8)
        return err_set(ERR_INVAL, "cuda matmul: weight type %s", kern_dtype_name(w->type));
    if (T < 0 || (T > 0 && (!x || !y)))
        return err_set(ERR_INVAL, "cuda matmul: %ld tokens", T);
    if (T == 0)
        return 0;
    if ((w->n * 32 + KCU_THREADS) / KCU_THREADS > 2147483647L)
        return err_set(ERR_UNSUPPORTED, "cuda matmul: %ld rows", w->n);
    cudaStream_t s = (cudaStream_t)stream;
    if (T > 16)
        return kcu_gemm_prefill(w, x, T, y, s);
    return matvec(w, x, (int)T, y, s);
}

/* The prefill fallback for shapes the tensor-core kernel does not take: the decode kernel over
 * blocks of 16 tokens (the weights are streamed once per block). */
int kcu_matmul_blocks(const struct kcu_weight *w, const float *x, long T, float *y, cudaStream_t s)
{
    for (long t0 = 0; t0 < T; t0 += 16) {
        int nt = T - t0 < 16 ? (int)(T - t0) : 16;
        int rc = matvec(w, x + t0 * w->k, nt, y + t0 * w->n, s);
        if (rc < 0)
            return rc;
    }
    return 0;
}
