/*
 * linear.cuh - internal to kernels/cuda: the dequantizing dot products the matrix-vector and MoE
 * kernels share.
 *
 * A weight row is read in 16-byte chunks (one uint4 per lane, consecutive lanes on consecutive
 * chunks: coalesced). A chunk holds 32 int4, 16 int8, 8 bf16 or 4 fp32 values and lies inside one
 * scale group (the callers check group % values-per-chunk == 0), so a chunk costs one scale load.
 * Codes become floats with the exponent trick (2^23 | code is the float 2^23 + code, exact), so
 * dequantization is a mask, an or and a subtract per value; the scale is applied once per chunk
 * to the chunk's partial sums. Accumulation is fp32 throughout.
 */
#ifndef LODE_KERNELS_CUDA_LINEAR_CUH
#define LODE_KERNELS_CUDA_LINEAR_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "kernels/kernels.h"
}

/* values in one 16-byte chunk */
__host__ __device__ constexpr int kcu_vpc(int type)
{
    return type == KERN_I4 ? 32 : type == KERN_I8 ? 16 : type == KERN_BF16 ? 8 : 4;
}

/* bytes of one row of k values */
static inline size_t kcu_row_bytes(int type, long k)
{
    switch (type) {
    case KERN_I4: return (size_t)k / 2;
    case KERN_I8: return (size_t)k;
    case KERN_BF16: return (size_t)k * 2;
    default: return (size_t)k * 4;
    }
}

template <int ST> __device__ __forceinline__ float kcu_scale(const void *s, long i)
{
    if (ST == KERN_F32)
        return __ldg((const float *)s + i);
    unsigned short h = __ldg((const unsigned short *)s + i);
    return __uint_as_float((uint32_t)h << 16);
}

/* The 2*VPC/... values of one chunk as floats (unscaled codes minus the bias for int types). */
template <int WT> __device__ __forceinline__ void kcu_unpack(uint4 c, float v[kcu_vpc(WT)])
{
    const uint32_t w[4] = { c.x, c.y, c.z, c.w };
    if (WT == KERN_I4) {
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int s = 0; s < 8; s++)
                v[i * 8 + s] = __uint_as_float(0x4B000000u | ((w[i] >> (4 * s)) & 0xFu)) -
                               8388616.0f; /* 2^23 + 8 */
    } else if (WT == KERN_I8) {
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int s = 0; s < 4; s++)
                v[i * 4 + s] = __uint_as_float(0x4B000000u | ((w[i] >> (8 * s)) & 0xFFu)) -
                               8388736.0f; /* 2^23 + 128 */
    } else if (WT == KERN_BF16) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[2 * i] = __uint_as_float(w[i] << 16);
            v[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
        }
    } else {
#pragma unroll
        for (int i = 0; i < 4; i++)
            v[i] = __uint_as_float(w[i]);
    }
}

/*
 * Per-lane partial dot products of R rows with TT tokens: acc[r][t] += row_r . x_t over the
 * chunks c = lane, lane + tpr, ... < C. rows[r] is the row's first chunk (NULL: row skipped),
 * sc[r] its first scale (quantized types), cpg chunks per scale group, x_t = x + t * ldx (the
 * row's first column), tokens t >= T skipped. The caller reduces over the tpr lanes.
 */
template <int WT, int ST, int R, int TT>
__device__ __forceinline__ void kcu_rows_dot(const uint4 *const rows[R], const void *const sc[R],
                                             int C, int cpg, const float *x, long ldx, int T,
                                             int lane, int tpr, float acc[R][TT])
{
    constexpr int V = kcu_vpc(WT);
    constexpr bool Q = WT == KERN_I4 || WT == KERN_I8;
    for (int c = lane; c < C; c += tpr) {
        uint4 ch[R];
        float s[R], v[R][V];
#pragma unroll
        for (int r = 0; r < R; r++) {
            ch[r] = rows[r] ? __ldg(rows[r] + c) : make_uint4(0, 0, 0, 0);
            s[r] = Q && rows[r] ? kcu_scale<ST>(sc[r], c / cpg) : 1.0f;
        }
        /* a skipped row computes on zero codes; its sums are never stored */
#pragma unroll
        for (int r = 0; r < R; r++)
            kcu_unpack<WT>(ch[r], v[r]);
            /* each activation float4 is loaded once and used for all R rows */
#pragma unroll
        for (int t = 0; t < TT; t++) {
            if (t >= T)
                continue;
            const float4 *xc = (const float4 *)(x + t * ldx + (long)c * V);
            float p[R];
#pragma unroll
            for (int r = 0; r < R; r++)
                p[r] = 0.f;
#pragma unroll
            for (int j = 0; j < V / 4; j++) {
                float4 a = __ldg(xc + j);
#pragma unroll
                for (int r = 0; r < R; r++)
                    p[r] += v[r][4 * j] * a.x + v[r][4 * j + 1] * a.y + v[r][4 * j + 2] * a.z +
                            v[r][4 * j + 3] * a.w;
            }
#pragma unroll
            for (int r = 0; r < R; r++)
                acc[r][t] = Q ? fmaf(s[r], p[r], acc[r][t]) : acc[r][t] + p[r];
        }
    }
}

/* The same with the weight type chosen at run time (uniform per warp, so no divergence): the MoE
 * kernels mix the routed experts' type with the shared expert's. */
template <int R, int TT>
__device__ __forceinline__ void
kcu_rows_dot_any(int wt, int st, const uint4 *const rows[R], const void *const sc[R], int C,
                 int cpg, const float *x, long ldx, int T, int lane, int tpr, float acc[R][TT])
{
    switch (wt) {
    case KERN_I4:
        if (st == KERN_F32)
            kcu_rows_dot<KERN_I4, KERN_F32, R, TT>(rows, sc, C, cpg, x, ldx, T, lane, tpr, acc);
        else
            kcu_rows_dot<KERN_I4, KERN_BF16, R, TT>(rows, sc, C, cpg, x, ldx, T, lane, tpr, acc);
        break;
    case KERN_I8:
        if (st == KERN_F32)
            kcu_rows_dot<KERN_I8, KERN_F32, R, TT>(rows, sc, C, cpg, x, ldx, T, lane, tpr, acc);
        else
            kcu_rows_dot<KERN_I8, KERN_BF16, R, TT>(rows, sc, C, cpg, x, ldx, T, lane, tpr, acc);
        break;
    case KERN_BF16:
        kcu_rows_dot<KERN_BF16, KERN_BF16, R, TT>(rows, sc, C, cpg, x, ldx, T, lane, tpr, acc);
        break;
    default:
        kcu_rows_dot<KERN_F32, KERN_F32, R, TT>(rows, sc, C, cpg, x, ldx, T, lane, tpr, acc);
        break;
    }
}

/* Sum over groups of tpr (a power of two <= 32) consecutive lanes; every lane gets its group's
 * total. All 32 lanes of the warp must call it. */
__device__ __forceinline__ float kcu_group_sum(float v, int tpr)
{
    for (int o = tpr / 2; o > 0; o /= 2)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Lanes per row for C chunks: enough lanes that each does at most a few chunks, no idle lanes. */
static inline int kcu_pick_tpr(long C) { return C >= 64 ? 32 : C >= 32 ? 16 : C >= 16 ? 8 : 4; }

/* two floats as a bf16 pair, round to nearest even; lo in the low half (the lower column) */
__device__ __forceinline__ uint32_t kcu_pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); /* .x = lo in the low half */
    return *(uint32_t *)&v;
}

/* c += a b on the tensor cores: a 16x16 (row), b 16x8 (col) bf16 fragments, c 16x8 fp32 */
__device__ __forceinline__ void kcu_mma_bf16(float c[4], const uint32_t a[4], const uint32_t b[2])
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

#endif
