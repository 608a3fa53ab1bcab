/*
 * moe_prefill.cu - the MoE block for many tokens: selections grouped by expert and a grouped
 * GEMM on tensor cores, so each selected expert's weights are read once per 64 of its tokens
 * instead of once per token.
 *
 *   route (kcu_moe_route) -> sort: one block counts the selections per expert, pads every
 *   expert's list to a multiple of 64 rows and writes the tile table (expert, first row) and
 *   the permutation (row -> selection, -1 for padding; selection -> row)
 *   -> gate_up: per (tile, 32 intermediate columns) the gathered tokens times the expert's gate
 *   and up rows (one 64-row B tile: 32 gate + 32 up rows), SwiGLU in the epilogue -> hs [row][I]
 *   -> down: per (tile, 64 hidden columns) hs times the expert's down rows -> Ds [row][H]
 *   -> the shared expert as three dense products (kcu_matmul) -> combine: per token the router-
 *   weighted sum of its rows of Ds plus sigmoid(gate) times the shared output.
 * The tile loop is linear_mma.cu's (linear.cuh kcu_tile_gemm): bf16 operands (activations and
 * dequantized weights rounded), fp32 accumulation, m16n8k16 MMAs. Rows of one tile belong to one
 * expert; each row's result does not depend on its position, so the (atomic) order inside an
 * expert's list does not matter.
 */
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/linear.cuh"

extern "C" {
#include "common/ckd.h"
#include "common/err.h"
#include "kernels/kernels.h"
}

#include <cstring>

#define PM KCU_TM /* rows (selections) per tile */
#define PK KCU_TK
#define PCHUNK 1024 /* tokens per pass */

int kcu_matmul_blocks(const struct kcu_weight *w, const float *x, long T, float *y,
                      cudaStream_t s); /* linear.cu */

/* ------------------------------------------------------------------ sort */

/* One block. idx [nsel] -> perm [total] (selection or -1), pos_of [nsel], tiles. Dynamic shared
 * memory: 3 * E ints. */
__global__ void __launch_bounds__(1024)
    k_moe_sort(const int *idx, int nsel, int E, int *perm, int *pos_of, int *tile_e, int *tile_pos,
               int *ntiles)
{
    extern __shared__ int sh[];
    int *cnt = sh, *off = sh + E, *cur = sh + 2 * E;
    __shared__ int total;
    for (int e = threadIdx.x; e < E; e += blockDim.x)
        cnt[e] = cur[e] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < nsel; i += blockDim.x)
        atomicAdd(&cnt[idx[i]], 1);
    __syncthreads();
    if (threadIdx.x == 0) {
        int o = 0, nt = 0;
        for (int e = 0; e < E; e++) {
            off[e] = o;
            int tiles = (cnt[e] + PM - 1) / PM;
            for (int q = 0; q < tiles; q++) {
                tile_e[nt] = e;
                tile_pos[nt] = o + q * PM;
                nt++;
            }
            o += tiles * PM;
        }
        *ntiles = nt;
        total = o;
    }
    __syncthreads();
    for (int p = threadIdx.x; p < total; p += blockDim.x)
        perm[p] = -1;
    __syncthreads();
    for (int i = threadIdx.x; i < nsel; i += blockDim.x) {
        int e = idx[i], p = off[e] + atomicAdd(&cur[e], 1);
        perm[p] = i;
        pos_of[i] = p;
    }
}

/* ------------------------------------------------------------------ grouped GEMM */

struct gg_args {
    const uint8_t *W0, *W1;  /* gate and up (SW) or down (W0) of expert 0 */
    const uint8_t *S0, *S1;  /* their scales */
    size_t wstride, sstride; /* bytes between experts */
    size_t rb;               /* bytes per row */
    long ng, group;          /* scales per row, group */
    long n, k;               /* output columns (weight rows) per expert, reduction length */
    const float *A; /* gather: x [T][k], row of selection s = token s / topk; else [P][k] */
    int gather, topk;
    const int *perm, *tile_e, *tile_pos, *ntiles;
    float *out; /* [P][n] */
};

template <int WT, int ST, bool SW>
__global__ void __launch_bounds__(128) k_moe_gemm(struct gg_args g)
{
    constexpr bool Q = WT == KERN_I4 || WT == KERN_I8;
    constexpr size_t ssz = ST == KERN_F32 ? 4 : 2;
    __shared__ __align__(16) uint32_t As[PM][KCU_TPAD];
    __shared__ __align__(16) uint32_t Bs[KCU_TN][KCU_TPAD];
    __shared__ const float *arow[PM];
    __shared__ const uint8_t *brow[KCU_TN];
    __shared__ const uint8_t *bsc[KCU_TN];
    __shared__ float Cs[SW ? PM : 1][SW ? 65 : 1];
    const int ty = blockIdx.y;
    if (ty >= *g.ntiles)
        return; /* uniform: the grid is sized for the worst case */
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int e = g.tile_e[ty];
    const long p0 = g.tile_pos[ty];
    const long nb = SW ? (long)blockIdx.x * 32 : (long)blockIdx.x * 64; /* first output column */
    if (tid < PM) {
        int s = g.perm[p0 + tid];
        arow[tid] = s < 0      ? NULL
                    : g.gather ? g.A + (long)(s / g.topk) * g.k
                               : g.A + (p0 + tid) * g.k;
    } else {
        int r = tid - PM; /* B row r: SW: 32 gate rows then 32 up rows */
        long wrow = SW ? nb + (r & 31) : nb + r;
        const uint8_t *W = SW && r >= 32 ? g.W1 : g.W0;
        const uint8_t *S = SW && r >= 32 ? g.S1 : g.S0;
        brow[r] = wrow < g.n ? W + e * g.wstride + wrow * g.rb : NULL;
        bsc[r] = wrow < g.n && Q ? S + e * g.sstride + (size_t)wrow * g.ng * ssz : NULL;
    }
    __syncthreads();
    const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
    /* this thread's rows of the gathered A and of the expert's B, from the tables above */
    kcu_tile_src<WT> src;
#pragma unroll
    for (int i = 0; i < 4; i++)
        src.a[i] = arow[kcu_tile_arow(tid, i)];
#pragma unroll
    for (int i = 0; i < kcu_tile_src<WT>::BL; i++) {
        int r = kcu_tile_brow<WT>(tid, i);
        src.b[i] = r >= 0 ? brow[r] : NULL;
        src.s[i] = r >= 0 ? bsc[r] : NULL;
    }
    float acc[2][4][4];
    kcu_tile_gemm<WT, ST>(src, g.k, g.group, As, Bs, acc);
    if (SW) {
        /* gate columns 0..31 and up columns 32..63 of the tile meet in shared memory */
#pragma unroll
        for (int mi = 0; mi < 2; mi++)
#pragma unroll
            for (int ni = 0; ni < 4; ni++) {
                int r = wm + mi * 16 + (lane >> 2), c = wn + ni * 8 + (lane & 3) * 2;
                Cs[r][c] = acc[mi][ni][0];
                Cs[r][c + 1] = acc[mi][ni][1];
                Cs[r + 8][c] = acc[mi][ni][2];
                Cs[r + 8][c + 1] = acc[mi][ni][3];
            }
        __syncthreads();
        for (int i = tid; i < PM * 32; i += 128) {
            int r = i / 32, c = i % 32;
            if (arow[r] && nb + c < g.n) {
                float gt = Cs[r][c], up = Cs[r][c + 32];
                g.out[(p0 + r) * g.n + nb + c] = gt / (1.0f + expf(-gt)) * up;
            }
        }
    } else {
#pragma unroll
        for (int mi = 0; mi < 2; mi++)
#pragma unroll
            for (int ni = 0; ni < 4; ni++) {
                int r = wm + mi * 16 + (lane >> 2);
                long c = nb + wn + ni * 8 + (lane & 3) * 2;
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    int rr = r + h * 8;
                    if (!arow[rr])
                        continue;
                    float *o = g.out + (p0 + rr) * g.n;
                    if (c < g.n)
                        o[c] = acc[mi][ni][2 * h];
                    if (c + 1 < g.n)
                        o[c + 1] = acc[mi][ni][2 * h + 1];
                }
            }
    }
}

/* ------------------------------------------------------------------ small kernels */

__global__ void k_swiglu(float *g, const float *u, long n)
{
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

__global__ void k_moe_combine(const float *Ds, const int *pos_of, const float *wt, int topk,
                              const float *SD, const float *sgate, long H, float *y)
{
    long h = (long)blockIdx.x * blockDim.x + threadIdx.x, t = blockIdx.y;
    if (h >= H)
        return;
    float v = 0.f;
    for (int j = 0; j < topk; j++)
        v = fmaf(wt[t * topk + j], Ds[(long)pos_of[t * topk + j] * H + h], v);
    if (SD)
        v = fmaf(1.0f / (1.0f + expf(-sgate[t])), SD[t * H + h], v);
    y[t * H + h] = v;
}

/* ------------------------------------------------------------------ host */

template <int WT, int ST>
static int launch_gg(const struct gg_args &g, bool sw, long maxtiles, cudaStream_t s)
{
    dim3 grid((unsigned)(sw ? (g.n + 31) / 32 : (g.n + 63) / 64), (unsigned)maxtiles);
    if (sw)
        k_moe_gemm<WT, ST, true><<<grid, 128, 0, s>>>(g);
    else
        k_moe_gemm<WT, ST, false><<<grid, 128, 0, s>>>(g);
    CUDA_TRY(cudaGetLastError());
    return 0;
}

static int gg(const struct gg_args &g, int type, int st, bool sw, long maxtiles, cudaStream_t s)
{
    int f = st == KERN_F32;
    switch (type) {
    case KERN_I4:
        return f ? launch_gg<KERN_I4, KERN_F32>(g, sw, maxtiles, s)
                 : launch_gg<KERN_I4, KERN_BF16>(g, sw, maxtiles, s);
    case KERN_I8:
        return f ? launch_gg<KERN_I8, KERN_F32>(g, sw, maxtiles, s)
                 : launch_gg<KERN_I8, KERN_BF16>(g, sw, maxtiles, s);
    case KERN_BF16: return launch_gg<KERN_BF16, KERN_BF16>(g, sw, maxtiles, s);
    default: return launch_gg<KERN_F32, KERN_F32>(g, sw, maxtiles, s);
    }
}

/* expert 0 of d as a kcu_weight view (not owning): which 0 gate, 1 up, 2 down */
static struct kcu_weight view(const struct kcu_experts *d, int which)
{
    struct kcu_weight w;
    memset(&w, 0, sizeof w);
    w.type = d->type;
    w.scale_type = d->scale_type;
    w.n = which == 2 ? d->hidden : d->inter;
    w.k = which == 2 ? d->inter : d->hidden;
    w.group = which == 2 ? d->group_down : d->group_gu;
    w.data = which == 0 ? d->gate : which == 1 ? d->up : d->down;
    w.scale = which == 0 ? d->gate_s : which == 1 ? d->up_s : d->down_s;
    return w;
}

/* 1 when kcu_moe_prefill takes these experts (the tile loop needs k % 32 for both products;
 * k_moe_sort's 3 * E ints of dynamic shared memory plus its static `total` must stay within the
 * 48 KiB a launch gets without an opt-in: E <= 4095) */
#define PSORT_MAXE 4000
int kcu_moe_prefill_ok(const struct kcu_experts *ex)
{
    return ex->hidden % PK == 0 && ex->inter % PK == 0 && ex->n_experts <= PSORT_MAXE;
}

static size_t up64(size_t v) { return (v + 63) & ~(size_t)63; }

/* The whole block for m->T tokens (checked by kcu_moe). */
int kcu_moe_prefill(const struct kcu_moe *m, cudaStream_t s)
{
    const struct kcu_experts *ex = m->experts, *sh = m->shared;
    long H = ex->hidden, I = ex->inter, T = m->T;
    int E = ex->n_experts, K = m->k, rc;
    long tch = T < PCHUNK ? T : PCHUNK, nsel = tch * K, P = nsel + (long)PM * E;
    long maxtiles = (nsel + PM - 1) / PM + E;
    /* scratch in floats: lg, idx, wt, pos_of, perm, tiles, hs, Ds, SG, SU, SD */
    size_t o_lg = 0, o_idx = up64((size_t)tch * E), o_wt = o_idx + up64(nsel),
           o_pos = o_wt + up64(nsel), o_perm = o_pos + up64(nsel), o_te = o_perm + up64(P),
           o_tp = o_te + up64(maxtiles), o_nt = o_tp + up64(maxtiles), o_hs = o_nt + 64, o_ds, o_sg,
           o_su, o_sd, total, t;
    if (ckd_mul_sz(&t, (size_t)P, (size_t)I) || ckd_add_sz(&o_ds, o_hs, up64(t)) ||
        ckd_mul_sz(&t, (size_t)P, (size_t)H) || ckd_add_sz(&o_sg, o_ds, up64(t)) ||
        ckd_add_sz(&o_su, o_sg, up64((size_t)tch * I)) ||
        ckd_add_sz(&o_sd, o_su, up64((size_t)tch * I)) ||
        ckd_add_sz(&total, o_sd, up64((size_t)tch * H)) || total > ((size_t)1 << 61))
        return err_set(ERR_NOMEM, "cuda moe prefill: %ld tokens too many", T);
    float *base;
    if ((rc = kcu_scratch(total * sizeof(float), (void **)&base)) < 0)
        return err_prefix(rc, "cuda moe prefill");
    float *lg = base + o_lg, *wt = base + o_wt, *hs = base + o_hs, *Ds = base + o_ds;
    float *SG = base + o_sg, *SU = base + o_su, *SD = base + o_sd;
    int *idx = (int *)(base + o_idx), *pos_of = (int *)(base + o_pos);
    int *perm = (int *)(base + o_perm), *tile_e = (int *)(base + o_te);
    int *tile_pos = (int *)(base + o_tp), *ntiles = (int *)(base + o_nt);
    struct kcu_weight sw[3];
    if (sh)
        for (int i = 0; i < 3; i++)
            sw[i] = view(sh, i);
    for (long t0 = 0; t0 < T; t0 += tch) {
        long nt = T - t0 < tch ? T - t0 : tch;
        int ns = (int)(nt * K);
        const float *x = m->x + t0 * H, *logits = m->logits ? m->logits + t0 * E : NULL;
        if (m->router) {
            /* fp32 router: the selection must not depend on bf16 rounding */
            if ((rc = kcu_matmul_blocks(m->router, x, nt, lg, s)) < 0)
                return err_prefix(rc, "cuda moe router");
            logits = lg;
        }
        int *sidx = m->idx ? m->idx + t0 * K : idx;
        float *swt = m->wt ? m->wt + t0 * K : wt;
        if ((rc = kcu_moe_route(logits, nt, E, K, sidx, swt, s)) < 0)
            return rc;
        k_moe_sort<<<1, 1024, (size_t)3 * E * sizeof(int), s>>>(sidx, ns, E, perm, pos_of, tile_e,
                                                                tile_pos, ntiles);
        CUDA_TRY(cudaGetLastError());
        struct gg_args g;
        memset(&g, 0, sizeof g);
        size_t ssz = ex->scale_type == KERN_BF16 ? 2 : 4;
        g.W0 = (const uint8_t *)ex->gate;
        g.W1 = (const uint8_t *)ex->up;
        g.S0 = (const uint8_t *)ex->gate_s;
        g.S1 = (const uint8_t *)ex->up_s;
        g.wstride = ex->gu_stride;
        g.sstride = ex->gu_sstride * ssz;
        g.rb = ex->gu_stride / (size_t)I;
        g.ng = H / ex->group_gu;
        g.group = ex->group_gu;
        g.n = I;
        g.k = H;
        g.A = x;
        g.gather = 1;
        g.topk = K;
        g.perm = perm;
        g.tile_e = tile_e;
        g.tile_pos = tile_pos;
        g.ntiles = ntiles;
        g.out = hs;
        if ((rc = gg(g, ex->type, ex->scale_type, true, maxtiles, s)) < 0)
            return rc;
        g.W0 = (const uint8_t *)ex->down;
        g.W1 = NULL;
        g.S0 = (const uint8_t *)ex->down_s;
        g.S1 = NULL;
        g.wstride = ex->down_stride;
        g.sstride = ex->down_sstride * ssz;
        g.rb = ex->down_stride / (size_t)H;
        g.ng = I / ex->group_down;
        g.group = ex->group_down;
        g.n = H;
        g.k = I;
        g.A = hs;
        g.gather = 0;
        g.out = Ds;
        if ((rc = gg(g, ex->type, ex->scale_type, false, maxtiles, s)) < 0)
            return rc;
        if (sh) {
            long n = nt * I;
            if ((rc = kcu_matmul(&sw[0], x, nt, SG, s)) < 0 ||
                (rc = kcu_matmul(&sw[1], x, nt, SU, s)) < 0)
                return err_prefix(rc, "cuda moe shared expert");
            k_swiglu<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(SG, SU, n);
            CUDA_TRY(cudaGetLastError());
            if ((rc = kcu_matmul(&sw[2], SG, nt, SD, s)) < 0)
                return err_prefix(rc, "cuda moe shared expert");
        }
        dim3 cg((unsigned)((H + 255) / 256), (unsigned)nt);
        k_moe_combine<<<cg, 256, 0, s>>>(Ds, pos_of, swt, K, sh ? SD : NULL,
                                         sh ? m->shared_gate + t0 : NULL, H, m->y + t0 * H);
        CUDA_TRY(cudaGetLastError());
    }
    return 0;
}
