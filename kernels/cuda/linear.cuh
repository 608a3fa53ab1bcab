/*
 * linear.cuh - internal to kernels/cuda: the dequantizing dot products the matrix-vector and MoE
 * kernels share, and the tensor-core GEMM tile of the two prefill kernels (kcu_tile_gemm).
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

/*
 * The tensor-core tile of the prefill GEMMs (linear_mma.cu's dense one and moe_prefill.cu's
 * grouped one): C[64 x 64] = A[64 x k] B[64 x k]^T for 128 threads (4 warps, 2 x 2, 32 x 32
 * each), A fp32 activations and B quantized / bf16 / fp32 weight rows, both rounded to bf16 in
 * padded shared-memory tiles, mma.sync m16n8k16 with fp32 accumulation, in k-steps of 32 whose
 * global loads are issued before the previous step's MMAs. Fragment layouts (PTX ISA, "Matrix
 * Fragments for mma.m16n8k16" with .bf16), g = lane / 4, c = lane % 4, (row, columns):
 *   A 16 x 16 row-major: a0 (g, 2c..2c+1), a1 (g+8, 2c..), a2 (g, 2c+8..), a3 (g+8, 2c+8..)
 *   B 16 x 8 "col" (B[k][n] = W[n][k]): b0 (k 2c..2c+1, n g), b1 (k 2c+8.., n g)
 *   C 16 x 8 fp32: c0, c1 (g, 2c..2c+1), c2, c3 (g+8, 2c..2c+1)
 * so a row of the As / Bs tiles (one token, one weight row) holds consecutive k as bf16 pairs.
 */
#define KCU_TM 64   /* A rows (tokens) per tile */
#define KCU_TN 64   /* B rows (weight rows) per tile */
#define KCU_TK 32   /* k per step */
#define KCU_TPAD 20 /* shared row stride in uint32 (40 bf16, 80 bytes): conflict-free fragments */

/* Where one thread's loads come from, fixed over the k loop: its 4 A rows (a float4 of each per
 * step; NULL: zeros), its BL B rows (a 16-byte chunk of each per step; NULL: zeros) and their
 * scales (quantized types). Fill with kcu_tile_arow / kcu_tile_brow. */
template <int WT> struct kcu_tile_src {
    static constexpr int V = kcu_vpc(WT), P = KCU_TK / V, BL = (KCU_TN * P + 127) / 128;
    const float *a[4];
    const uint8_t *b[BL];
    const uint8_t *s[BL];
};

/* The tile row (0..KCU_TM-1) of thread tid's i-th A load. */
__device__ __forceinline__ int kcu_tile_arow(int tid, int i) { return (tid + 128 * i) / 8; }

/* The tile row (0..KCU_TN-1) of thread tid's i-th B load, -1 when that load slot is unused. */
template <int WT> __device__ __forceinline__ int kcu_tile_brow(int tid, int i)
{
    constexpr int P = kcu_tile_src<WT>::P;
    int q = tid + 128 * i;
    return q < KCU_TN * P ? q / P : -1;
}

/* acc = the warp's 32 x 32 part of A B^T over k (a multiple of KCU_TK); every thread of the block
 * calls it (it synchronises the block) and acc is overwritten. Row i of the warp's part:
 * wm + i with wm = (warp / 2) * 32 for A, wn = (warp % 2) * 32 for B; acc[mi][ni] is the C
 * fragment of rows wm + 16 mi, columns wn + 8 ni. Ends with a barrier, so As / Bs may be reused. */
template <int WT, int ST>
__device__ __forceinline__ void kcu_tile_gemm(const kcu_tile_src<WT> &src, long k, long group,
                                              uint32_t (*As)[KCU_TPAD], uint32_t (*Bs)[KCU_TPAD],
                                              float acc[2][4][4])
{
    constexpr int V = kcu_vpc(WT);
    constexpr int P = kcu_tile_src<WT>::P, BL = kcu_tile_src<WT>::BL;
    constexpr bool Q = WT == KERN_I4 || WT == KERN_I8;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, c4 = tid % 8;
    const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int q = 0; q < 4; q++)
                acc[i][j][q] = 0.f;
    float4 xr[4];
    uint4 wr[BL];
    float wsc[BL];
    /* global -> registers for step k0 */
    auto load = [&](long k0) {
#pragma unroll
        for (int i = 0; i < 4; i++)
            xr[i] = src.a[i] ? __ldg((const float4 *)(src.a[i] + k0) + c4)
                             : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int i = 0; i < BL; i++) {
            int part = (tid + 128 * i) % P;
            const uint8_t *b = src.b[i];
            wr[i] = b ? __ldg((const uint4 *)b + k0 / V + part) : make_uint4(0, 0, 0, 0);
            wsc[i] = !b ? 0.f : Q ? kcu_scale<ST>(src.s[i], (k0 + part * V) / group) : 1.0f;
        }
    };
    /* registers -> bf16 shared tiles */
    auto store = [&]() {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int row = kcu_tile_arow(tid, i);
            As[row][c4 * 2] = kcu_pack_bf16(xr[i].x, xr[i].y);
            As[row][c4 * 2 + 1] = kcu_pack_bf16(xr[i].z, xr[i].w);
        }
#pragma unroll
        for (int i = 0; i < BL; i++) {
            int row = kcu_tile_brow<WT>(tid, i), part = (tid + 128 * i) % P;
            if (row >= 0) {
                float v[V];
                kcu_unpack<WT>(wr[i], v);
#pragma unroll
                for (int j = 0; j < V / 2; j++)
                    Bs[row][part * (V / 2) + j] =
                        kcu_pack_bf16(v[2 * j] * wsc[i], v[2 * j + 1] * wsc[i]);
            }
        }
    };

    load(0);
    for (long k0 = 0; k0 < k; k0 += KCU_TK) {
        store();
        __syncthreads();
        if (k0 + KCU_TK < k)
            load(k0 + KCU_TK);
#pragma unroll
        for (int ks = 0; ks < KCU_TK; ks += 16) {
            const int c = ks / 2 + (lane & 3); /* in uint32 units: columns ks + 2*(lane&3) */
            uint32_t a[2][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                int r = wm + mi * 16 + (lane >> 2);
                a[mi][0] = As[r][c];
                a[mi][1] = As[r + 8][c];
                a[mi][2] = As[r][c + 4];
                a[mi][3] = As[r + 8][c + 4];
            }
#pragma unroll
            for (int ni = 0; ni < 4; ni++) {
                int r = wn + ni * 8 + (lane >> 2);
                b[ni][0] = Bs[r][c];
                b[ni][1] = Bs[r][c + 4];
            }
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++)
                    kcu_mma_bf16(acc[mi][ni], a[mi], b[ni]);
        }
        __syncthreads();
    }
}

#endif
