/*
 * attn.cu - gated attention on the GPU (model-spec.md 3.5; CPU reference kernels/cpu/attn.c and
 * the attention block of engine/forward.c).
 *
 * kcs_attn_prep: q/k RMSNorm (1 + w) + partial NeoX RoPE, fused with the KV-cache write.
 * kcs_attention: flash-decoding. The context of each (token, kv head) is cut into chunks; one
 * block of 8 warps takes a chunk and all the query heads of that kv head (GQA: each K/V row is
 * read once for the G <= 8 heads). A warp takes NP positions at a time: lane l holds dims
 * [l*DPL, (l+1)*DPL) of q (G heads), of the K/V rows and of the accumulators; the G*NP partial
 * dot products are reduced with one transposing butterfly (31 shuffles for 32 values, lane i
 * ends with value i), and the online softmax keeps each head's max and sum in the lanes of that
 * head. The warps of a block are merged in shared memory; chunks are merged by a second kernel
 * with their log-sum-exp (or in the block itself when there is one chunk), which also applies
 * v_scale and the sigmoid output gate.
 */
#include "kernels/cuda/cuda_check.cuh"

extern "C" {
#include "common/err.h"
#include "kernels/kernels.h"
}

#include <math.h>
#include <stdint.h>

#define ATT_WARPS 8
#define ATT_GMAX 8
#define ATT_MIN_CHUNK 256

static cudaStream_t st_of(void *s) { return (cudaStream_t)s; }

/* ---------------------------------------------------------------- element conversions */

/* E4M3FN to f32: the 7 magnitude bits placed as an f32 exponent/mantissa and rescaled by 2^120
 * (exact for normals and subnormals alike; denormals are not flushed without fast-math). */
__device__ __forceinline__ float fp8_to_f32(uint32_t b)
{
    uint32_t em = b & 0x7f;
    if (em == 0x7f)
        return __uint_as_float(0x7fc00000u);
    float v = __uint_as_float(em << 20) * 0x1p120f;
    return __uint_as_float(__float_as_uint(v) | ((b & 0x80) << 24));
}

/* kern_f32_to_fp8, literally: round to nearest even, saturating to +-448, NaN -> 0x7f. */
__device__ __forceinline__ uint8_t f32_to_fp8(float f)
{
    if (isnan(f))
        return 0x7f;
    uint8_t s = signbit(f) ? 0x80 : 0;
    float a = fabsf(f);
    if (a >= 448.0f)
        return s | 0x7e;
    if (a < 0x1p-6f)
        return s | (uint8_t)rintf(a * 512.0f);
    int ex;
    float fr = frexpf(a, &ex);
    int e = ex - 1 + 7;
    float m = rintf((fr * 2.0f - 1.0f) * 8.0f);
    if (m >= 8.0f) {
        m = 0;
        e++;
    }
    if (e > 15 || (e == 15 && m > 6))
        return s | 0x7e;
    return s | (uint8_t)(e << 3) | (uint8_t)m;
}

/* kern_f32_to_bf16: round to nearest even, NaN stays NaN (quiet). */
__device__ __forceinline__ uint16_t f32_to_bf16(float f)
{
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* ---------------------------------------------------------------- norm + RoPE + KV write */

/* Block (head, token): heads 0 .. n_q-1 are queries (normed and rotated in place), n_q ..
 * n_q+n_kv-1 keys (normed, rotated, written to the cache with their values). 128 threads. */
__global__ void attn_prep_kernel(struct kcs_attn_prep p, long t0)
{
    extern __shared__ float buf[];
    __shared__ float part[4];
    int hi = blockIdx.x, hd = p.head_dim, tid = threadIdx.x;
    long t = t0 + blockIdx.y, pos = (p.dpos ? *p.dpos : p.pos0) + t;
    int is_q = hi < p.n_q, g = hi - p.n_q;
    const float *x =
        is_q ? p.q + t * p.q_tok + (long)hi * p.q_head : p.k + t * p.kv_tok + (long)g * hd;
    const float *w = is_q ? p.q_norm : p.k_norm;
    float ss = 0;
    for (int i = tid; i < hd; i += blockDim.x) {
        float v = x[i];
        buf[i] = v;
        ss += v * v;
    }
    for (int o = 16; o > 0; o >>= 1)
        ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (tid % 32 == 0)
        part[tid / 32] = ss;
    __syncthreads();
    float inv = 1.0f / sqrtf((part[0] + part[1] + part[2] + part[3]) / (float)hd + p.eps);
    for (int i = tid; i < hd; i += blockDim.x)
        buf[i] = buf[i] * inv * (1.0f + w[i]);
    __syncthreads();
    /* each thread rotates whole pairs (i, i + half): no other thread touches them */
    int half = p.rot_dim / 2;
    for (int i = tid; i < half; i += blockDim.x) {
        float ang = (float)pos * p.rope_inv[i];
        float c = cosf(ang) * p.mscale, s = sinf(ang) * p.mscale;
        float x0 = buf[i], x1 = buf[i + half];
        buf[i] = x0 * c - x1 * s;
        buf[i + half] = x1 * c + x0 * s;
    }
    __syncthreads();
    if (is_q) {
        float *qo = p.q + t * p.q_tok + (long)hi * p.q_head;
        for (int i = tid; i < hd; i += blockDim.x)
            qo[i] = buf[i];
        return;
    }
    size_t off = ((size_t)pos * p.n_kv + g) * hd;
    const float *v = p.v + t * p.kv_tok + (long)g * hd;
    float kinv = 1.0f / p.k_scale, vinv = 1.0f / p.v_scale;
    for (int i = tid; i < hd; i += blockDim.x) {
        switch (p.kv_type) {
        case KERN_F32:
            ((float *)p.k_cache)[off + i] = buf[i];
            ((float *)p.v_cache)[off + i] = v[i];
            break;
        case KERN_BF16:
            ((uint16_t *)p.k_cache)[off + i] = f32_to_bf16(buf[i]);
            ((uint16_t *)p.v_cache)[off + i] = f32_to_bf16(v[i]);
            break;
        default:
            ((uint8_t *)p.k_cache)[off + i] = f32_to_fp8(buf[i] * kinv);
            ((uint8_t *)p.v_cache)[off + i] = f32_to_fp8(v[i] * vinv);
            break;
        }
    }
}

extern "C" int kcs_attn_prep(const struct kcs_attn_prep *p, void *stream)
{
    if (p->n_q < 1 || p->n_kv < 1 || p->head_dim < 1 || p->head_dim > 4096 || p->T < 0 ||
        p->pos0 < 0 || p->rot_dim < 0 || p->rot_dim > p->head_dim || p->rot_dim % 2 ||
        p->n_q + p->n_kv > 65535)
        return err_set(ERR_INVAL, "kcs_attn_prep: %d query heads, %d kv heads, head_dim %d, rot %d",
                       p->n_q, p->n_kv, p->head_dim, p->rot_dim);
    if (p->kv_type != KERN_F32 && p->kv_type != KERN_BF16 && p->kv_type != KERN_FP8)
        return err_set(ERR_INVAL, "kcs_attn_prep: KV type %s not supported",
                       kern_dtype_name(p->kv_type));
    if (!(p->k_scale > 0) || !(p->v_scale > 0) || !isfinite(p->k_scale) || !isfinite(p->v_scale))
        return err_set(ERR_INVAL, "kcs_attn_prep: KV scales must be positive");
    if (p->pos0 + p->T > p->cap)
        return err_set(ERR_INVAL, "kcs_attn_prep: rows %ld..%ld beyond the cache's %ld", p->pos0,
                       p->pos0 + p->T - 1, p->cap);
    size_t smem = (size_t)p->head_dim * sizeof(float);
    for (long t0 = 0; t0 < p->T; t0 += 65535) {
        long n = p->T - t0 < 65535 ? p->T - t0 : 65535;
        attn_prep_kernel<<<dim3((unsigned)(p->n_q + p->n_kv), (unsigned)n), 128, smem,
                           st_of(stream)>>>(*p, t0);
        CUDA_TRY(cudaGetLastError());
    }
    return 0;
}

/* ---------------------------------------------------------------- split-KV attention */

struct attn_args {
    kern_attn a;
    const float *gate;
    long g_tok, g_head;
    float *work; /* [T][n_q][nch][hd + 2] partials (m, l, acc) when nch > 1 */
    long nch, ch, t0;
    const long *dpos; /* non-NULL: a.pos0 is read from the device (kcs_attention_dpos) */
};

/* Raw bytes of BPL bytes per lane, loaded with one or two vector loads. */
template <int BPL> struct raw_t {
    uint32_t w[BPL >= 4 ? BPL / 4 : 1];
};

template <int BPL> __device__ __forceinline__ void load_raw(raw_t<BPL> &r, const uint8_t *p)
{
    if constexpr (BPL == 32) {
        uint4 a = __ldg((const uint4 *)p), b = __ldg((const uint4 *)p + 1);
        r.w[0] = a.x, r.w[1] = a.y, r.w[2] = a.z, r.w[3] = a.w;
        r.w[4] = b.x, r.w[5] = b.y, r.w[6] = b.z, r.w[7] = b.w;
    } else if constexpr (BPL == 16) {
        uint4 a = __ldg((const uint4 *)p);
        r.w[0] = a.x, r.w[1] = a.y, r.w[2] = a.z, r.w[3] = a.w;
    } else if constexpr (BPL == 8) {
        uint2 a = __ldg((const uint2 *)p);
        r.w[0] = a.x, r.w[1] = a.y;
    } else if constexpr (BPL == 4) {
        r.w[0] = __ldg((const uint32_t *)p);
    } else if constexpr (BPL == 2) {
        r.w[0] = __ldg((const uint16_t *)p);
    } else {
        r.w[0] = __ldg(p);
    }
}

template <int KVT, int DPL, int BPL>
__device__ __forceinline__ void decode_raw(const raw_t<BPL> &r, float (&f)[DPL])
{
#pragma unroll
    for (int e = 0; e < DPL; e++) {
        if constexpr (KVT == KERN_F32)
            f[e] = __uint_as_float(r.w[e]);
        else if constexpr (KVT == KERN_BF16)
            f[e] = __uint_as_float(((r.w[e / 2] >> (16 * (e % 2))) & 0xffffu) << 16);
        else
            f[e] = fp8_to_f32((r.w[e / 4] >> (8 * (e % 4))) & 0xffu);
    }
}

/* One step of the transposing butterfly: lanes with bit W keep the upper W of their 2W values and
 * send the lower ones to their partner (which does the opposite). */
template <int W, int NV> __device__ __forceinline__ void butterfly_step(float (&v)[NV], int lane)
{
    bool upper = lane & W;
#pragma unroll
    for (int i = 0; i < W; i++) {
        float send = upper ? v[i] : v[i + W];
        float keep = upper ? v[i + W] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, W);
    }
}

/* Transposing butterfly: NV (16 or 32) values per lane in; lane i out with the whole warp's sum
 * of value i % NV. */
template <int NV> __device__ __forceinline__ float warp_reduce_transpose(float (&v)[NV], int lane)
{
    if constexpr (NV >= 32)
        butterfly_step<16>(v, lane);
    if constexpr (NV >= 16)
        butterfly_step<8>(v, lane);
    butterfly_step<4>(v, lane);
    butterfly_step<2>(v, lane);
    butterfly_step<1>(v, lane);
    if constexpr (NV < 32) /* the two halves of the warp hold other dims of the same values */
        v[0] += __shfl_xor_sync(0xffffffffu, v[0], 16);
    return v[0];
}

template <int DPL, int KVT>
__global__ __launch_bounds__(ATT_WARPS * 32) void attn_split_kernel(attn_args p)
{
    constexpr int ES = KVT == KERN_F32 ? 4 : KVT == KERN_BF16 ? 2 : 1;
    constexpr int BPL = DPL * ES;
    constexpr int NP = KVT == KERN_F32 ? 2 : 4; /* positions per warp step */
    constexpr int NV = NP * ATT_GMAX;           /* values reduced per step: 16 or 32 */
    constexpr int HD = DPL * 32;
    const kern_attn &a = p.a;
    __shared__ float sm[ATT_WARPS][HD + 2];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, G = a.n_q / a.n_kv;
    int c = blockIdx.x, g = blockIdx.y;
    long t = p.t0 + blockIdx.z, np = (p.dpos ? *p.dpos : a.pos0) + t + 1;
    /* chunks past the position (planned for a longer bound) leave m = -inf, l = 0, which the
     * merge does not read */
    long lo = (long)c * p.ch, hi = lo + p.ch < np ? lo + p.ch : np;

    float q[ATT_GMAX][DPL], acc[ATT_GMAX][DPL];
    float qs = a.scale * a.k_scale; /* K rows are then used unscaled */
#pragma unroll
    for (int h = 0; h < ATT_GMAX; h++) {
        const float *qh = a.q + t * a.q_tok + (long)(g * G + h) * a.q_head + lane * DPL;
#pragma unroll
        for (int d = 0; d < DPL; d++) {
            q[h][d] = h < G ? qh[d] * qs : 0.0f;
            acc[h][d] = 0;
        }
    }
    /* lane L holds the running max and sum of head L % ATT_GMAX */
    float m_l = -INFINITY, l_l = 0;
    size_t row = (size_t)a.n_kv * HD * ES;
    const uint8_t *kb = (const uint8_t *)a.k + ((size_t)g * HD + (size_t)lane * DPL) * ES;
    const uint8_t *vb = (const uint8_t *)a.v + ((size_t)g * HD + (size_t)lane * DPL) * ES;
    int my_h = lane % ATT_GMAX, my_i = (lane % NV) / ATT_GMAX;

    for (long p0 = lo + (long)warp * NP; p0 < hi; p0 += ATT_WARPS * NP) {
        raw_t<BPL> kr[NP], vr[NP];
#pragma unroll
        for (int i = 0; i < NP; i++) {
            if (p0 + i < hi) {
                load_raw<BPL>(kr[i], kb + (size_t)(p0 + i) * row);
                load_raw<BPL>(vr[i], vb + (size_t)(p0 + i) * row);
            } else {
#pragma unroll
                for (int w = 0; w < (int)(sizeof kr[i].w / 4); w++)
                    kr[i].w[w] = vr[i].w[w] = 0;
            }
        }
        float sv[NV];
#pragma unroll
        for (int i = 0; i < NP; i++) {
            float kf[DPL];
            decode_raw<KVT, DPL, BPL>(kr[i], kf);
#pragma unroll
            for (int h = 0; h < ATT_GMAX; h++) {
                float s = 0;
#pragma unroll
                for (int d = 0; d < DPL; d++)
                    s += q[h][d] * kf[d];
                sv[i * ATT_GMAX + h] = s;
            }
        }
        float s = warp_reduce_transpose<NV>(sv, lane);
        if (p0 + my_i >= hi || my_h >= G)
            s = -INFINITY;
        /* the max and the sum over the NP positions of each head: lanes with the same head
         * differ in the bits above ATT_GMAX */
        float mx = s;
#pragma unroll
        for (int o = ATT_GMAX; o < NV; o <<= 1)
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        float mn = fmaxf(m_l, mx);
        float corr = mn == -INFINITY ? 1.0f : expf(m_l - mn);
        float pr = mn == -INFINITY ? 0.0f : expf(s - mn);
        float ps = pr;
#pragma unroll
        for (int o = ATT_GMAX; o < NV; o <<= 1)
            ps += __shfl_xor_sync(0xffffffffu, ps, o);
        l_l = l_l * corr + ps;
        m_l = mn;
#pragma unroll
        for (int h = 0; h < ATT_GMAX; h++) {
            float ch = __shfl_sync(0xffffffffu, corr, h);
#pragma unroll
            for (int d = 0; d < DPL; d++)
                acc[h][d] *= ch;
        }
#pragma unroll
        for (int i = 0; i < NP; i++) {
            float vf[DPL];
            decode_raw<KVT, DPL, BPL>(vr[i], vf);
#pragma unroll
            for (int h = 0; h < ATT_GMAX; h++) {
                float w = __shfl_sync(0xffffffffu, pr, i * ATT_GMAX + h);
#pragma unroll
                for (int d = 0; d < DPL; d++)
                    acc[h][d] += w * vf[d];
            }
        }
    }

    /* merge the warps, head by head, through shared memory */
    int one = p.nch == 1;
#pragma unroll
    for (int h = 0; h < ATT_GMAX; h++) {
        if (h >= G)
            break;
        float mh = __shfl_sync(0xffffffffu, m_l, h), lh = __shfl_sync(0xffffffffu, l_l, h);
        if (lane == 0) {
            sm[warp][0] = mh;
            sm[warp][1] = lh;
        }
#pragma unroll
        for (int d = 0; d < DPL; d++)
            sm[warp][2 + lane * DPL + d] = acc[h][d];
        __syncthreads();
        float M = -INFINITY;
        for (int w = 0; w < ATT_WARPS; w++)
            M = fmaxf(M, sm[w][0]);
        float f[ATT_WARPS], L = 0;
        for (int w = 0; w < ATT_WARPS; w++) {
            f[w] = M == -INFINITY ? 0.0f : expf(sm[w][0] - M);
            L += sm[w][1] * f[w];
        }
        int qh = g * G + h;
        for (int d = threadIdx.x; d < HD; d += blockDim.x) {
            float A = 0;
            for (int w = 0; w < ATT_WARPS; w++)
                A += sm[w][2 + d] * f[w];
            if (one) {
                float o = A * (a.v_scale / L);
                if (p.gate)
                    o *= 1.0f / (1.0f + expf(-p.gate[t * p.g_tok + (long)qh * p.g_head + d]));
                a.out[(t * a.n_q + qh) * HD + d] = o;
            } else {
                p.work[((t * a.n_q + qh) * p.nch + c) * (HD + 2) + 2 + d] = A;
            }
        }
        if (!one && threadIdx.x == 0) {
            float *wp = p.work + ((t * a.n_q + qh) * p.nch + c) * (HD + 2);
            wp[0] = M;
            wp[1] = L;
        }
        __syncthreads();
    }
}

/* Block (query head, token): the log-sum-exp merge of the chunks, v_scale and the gate. */
__global__ void attn_merge_kernel(attn_args p)
{
    const kern_attn &a = p.a;
    int h = blockIdx.x, hd = a.head_dim;
    long t = p.t0 + blockIdx.y;
    long np = (p.dpos ? *p.dpos : a.pos0) + t + 1, nc = (np + p.ch - 1) / p.ch;
    const float *base = p.work + (t * a.n_q + h) * p.nch * (hd + 2);
    float M = -INFINITY;
    for (long c = 0; c < nc; c++)
        M = fmaxf(M, base[c * (hd + 2)]);
    float L = 0;
    for (long c = 0; c < nc; c++)
        L += base[c * (hd + 2) + 1] * expf(base[c * (hd + 2)] - M);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float A = 0;
        for (long c = 0; c < nc; c++)
            A += base[c * (hd + 2) + 2 + d] * expf(base[c * (hd + 2)] - M);
        float o = A * (a.v_scale / L);
        if (p.gate)
            o *= 1.0f / (1.0f + expf(-p.gate[t * p.g_tok + (long)h * p.g_head + d]));
        a.out[(t * a.n_q + h) * hd + d] = o;
    }
}

/* ---------------------------------------------------------------- prefill on tensor cores */

/* Flash attention for prompts: a block of 4 warps takes 8 consecutive tokens x the 8 query heads
 * of one kv head (64 query rows, 16 per warp: rows g and g + 8 of a warp are head g of its two
 * tokens) and walks the KV tiles of 32 positions up to its last token's position. S = Q K^T and
 * O += P V run as mma.sync m16n8k16 bf16 with fp32 accumulators; the online softmax works on
 * the accumulator registers (row max and sum across the 4 lanes of a row). q (pre-scaled), K, V
 * and P are rounded to bf16 (FP8 and BF16 cache values are exact in bf16), so the outputs are
 * within ~1e-3 relative of the fp32 reference. */
#define FA_TQ 8
#define FA_KT 32
#define FA_LDQ (256 + 8) /* bf16 row strides: +8 puts the rows of a fragment on other banks */
#define FA_LDV (FA_KT + 8)

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    return (uint32_t)f32_to_bf16(lo) | ((uint32_t)f32_to_bf16(hi) << 16);
}

__device__ __forceinline__ void mma_bf16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

template <int KVT> __device__ __forceinline__ float kv_elem(const void *base, size_t i)
{
    if constexpr (KVT == KERN_BF16)
        return __uint_as_float((uint32_t)((const uint16_t *)base)[i] << 16);
    else
        return fp8_to_f32(((const uint8_t *)base)[i]);
}

__device__ __forceinline__ uint32_t lds32(const uint16_t *p) { return *(const uint32_t *)p; }

template <int KVT> __global__ __launch_bounds__(128) void attn_prefill_kernel(attn_args p)
{
    extern __shared__ __align__(16) uint16_t fsm[];
    uint16_t *Qs = fsm, *Ks = Qs + 64 * FA_LDQ, *Vt = Ks + FA_KT * FA_LDQ;
    const kern_attn &a = p.a;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gq = lane >> 2, tq = lane & 3;
    int g = blockIdx.y;
    long tb = (long)blockIdx.x * FA_TQ;
    int nt = a.T - tb < FA_TQ ? (int)(a.T - tb) : FA_TQ;
    float qs = a.scale * a.k_scale;
    for (int e = threadIdx.x; e < 64 * 128; e += blockDim.x) {
        int r = e / 128, d = (e % 128) * 2, tok = r / 8, hh = r % 8;
        float x0 = 0, x1 = 0;
        if (tok < nt) {
            const float *qp = a.q + (tb + tok) * a.q_tok + (long)(g * 8 + hh) * a.q_head + d;
            x0 = qp[0] * qs;
            x1 = qp[1] * qs;
        }
        *(uint32_t *)&Qs[r * FA_LDQ + d] = pack_bf16(x0, x1);
    }
    long qpos = a.pos0 + tb + warp * 2; /* row gq's position; row gq + 8 is the next token */
    long last = a.pos0 + tb + nt - 1;
    size_t row = (size_t)a.n_kv * 256, koff = (size_t)g * 256;
    float o[32][4], m0 = -INFINITY, m1 = -INFINITY, l0 = 0, l1 = 0;
#pragma unroll
    for (int j = 0; j < 32; j++)
        o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0;
    for (long kv0 = 0; kv0 <= last; kv0 += FA_KT) {
        __syncthreads(); /* the previous tile is consumed (the first time: Q is written) */
        for (int e = threadIdx.x; e < FA_KT * 128; e += blockDim.x) {
            int pr = e / 128, d = (e % 128) * 2;
            long pp = kv0 + pr;
            float k0 = 0, k1 = 0, v0 = 0, v1 = 0;
            if (pp <= last) {
                size_t i = (size_t)pp * row + koff + d;
                k0 = kv_elem<KVT>(a.k, i);
                k1 = kv_elem<KVT>(a.k, i + 1);
                v0 = kv_elem<KVT>(a.v, i);
                v1 = kv_elem<KVT>(a.v, i + 1);
            }
            *(uint32_t *)&Ks[pr * FA_LDQ + d] = pack_bf16(k0, k1);
            Vt[d * FA_LDV + pr] = f32_to_bf16(v0);
            Vt[(d + 1) * FA_LDV + pr] = f32_to_bf16(v1);
        }
        __syncthreads();
        float s[4][4];
#pragma unroll
        for (int nn = 0; nn < 4; nn++)
            s[nn][0] = s[nn][1] = s[nn][2] = s[nn][3] = 0;
#pragma unroll
        for (int kk = 0; kk < 16; kk++) {
            const uint16_t *qa = Qs + (warp * 16 + gq) * FA_LDQ + kk * 16 + tq * 2;
            uint32_t a0 = lds32(qa), a1 = lds32(qa + 8 * FA_LDQ), a2 = lds32(qa + 8);
            uint32_t a3 = lds32(qa + 8 * FA_LDQ + 8);
#pragma unroll
            for (int nn = 0; nn < 4; nn++) {
                const uint16_t *kb = Ks + (nn * 8 + gq) * FA_LDQ + kk * 16 + tq * 2;
                mma_bf16(s[nn], a0, a1, a2, a3, lds32(kb), lds32(kb + 8));
            }
        }
        /* causal mask and the online softmax of rows gq (s[][0..1]) and gq + 8 (s[][2..3]) */
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int nn = 0; nn < 4; nn++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                long pc = kv0 + nn * 8 + tq * 2 + c;
                if (pc > qpos)
                    s[nn][c] = -INFINITY;
                if (pc > qpos + 1)
                    s[nn][2 + c] = -INFINITY;
                mx0 = fmaxf(mx0, s[nn][c]);
                mx1 = fmaxf(mx1, s[nn][2 + c]);
            }
        for (int o2 = 1; o2 <= 2; o2 <<= 1) {
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, o2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, o2));
        }
        float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        float c0 = mn0 == -INFINITY ? 1.0f : expf(m0 - mn0);
        float c1 = mn1 == -INFINITY ? 1.0f : expf(m1 - mn1);
        float ps0 = 0, ps1 = 0;
#pragma unroll
        for (int nn = 0; nn < 4; nn++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                s[nn][c] = mn0 == -INFINITY ? 0.0f : expf(s[nn][c] - mn0);
                s[nn][2 + c] = mn1 == -INFINITY ? 0.0f : expf(s[nn][2 + c] - mn1);
                ps0 += s[nn][c];
                ps1 += s[nn][2 + c];
            }
        l0 = l0 * c0 + ps0; /* this lane's share of the row sum; the lanes are summed at the end */
        l1 = l1 * c1 + ps1;
        m0 = mn0;
        m1 = mn1;
#pragma unroll
        for (int j = 0; j < 32; j++) {
            o[j][0] *= c0;
            o[j][1] *= c0;
            o[j][2] *= c1;
            o[j][3] *= c1;
        }
#pragma unroll
        for (int kk = 0; kk < 2; kk++) {
            uint32_t a0 = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
            uint32_t a1 = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
            uint32_t a2 = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            uint32_t a3 = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int j = 0; j < 32; j++) {
                const uint16_t *vb = Vt + (j * 8 + gq) * FA_LDV + kk * 16 + tq * 2;
                mma_bf16(o[j], a0, a1, a2, a3, lds32(vb), lds32(vb + 8));
            }
        }
    }
    for (int o2 = 1; o2 <= 2; o2 <<= 1) {
        l0 += __shfl_xor_sync(0xffffffffu, l0, o2);
        l1 += __shfl_xor_sync(0xffffffffu, l1, o2);
    }
    for (int r = 0; r < 2; r++) {
        int tok = warp * 2 + r;
        if (tok >= nt)
            break;
        long t = tb + tok;
        int qh = g * 8 + gq;
        float f = a.v_scale / (r ? l1 : l0);
        float *out = a.out + (t * a.n_q + qh) * 256;
        const float *gt = p.gate ? p.gate + t * p.g_tok + (long)qh * p.g_head : NULL;
#pragma unroll
        for (int j = 0; j < 32; j++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                int d = j * 8 + tq * 2 + c;
                float v = o[j][2 * r + c] * f;
                if (gt)
                    v *= 1.0f / (1.0f + expf(-gt[d]));
                out[d] = v;
            }
    }
}

#define FA_SMEM ((64 * FA_LDQ + FA_KT * FA_LDQ + 256 * FA_LDV) * 2)

/* The tensor-core prefill takes prompts of the real model's attention shape. */
static int use_prefill(const struct kern_attn *a)
{
    return a->T >= 16 && a->n_q == 8 * a->n_kv && a->head_dim == 256 &&
           (a->kv_type == KERN_BF16 || a->kv_type == KERN_FP8);
}

static int launch_prefill(const attn_args &p, cudaStream_t s)
{
    static int attr_done;
    if (!attr_done) {
        CUDA_TRY(cudaFuncSetAttribute(attn_prefill_kernel<KERN_BF16>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, FA_SMEM));
        CUDA_TRY(cudaFuncSetAttribute(attn_prefill_kernel<KERN_FP8>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, FA_SMEM));
        attr_done = 1;
    }
    long nb = (p.a.T + FA_TQ - 1) / FA_TQ;
    if (nb > (1L << 31) - 1)
        return err_set(ERR_INVAL, "kcs_attention: %ld tokens too many", p.a.T);
    dim3 grid((unsigned)nb, (unsigned)p.a.n_kv);
    if (p.a.kv_type == KERN_BF16)
        attn_prefill_kernel<KERN_BF16><<<grid, 128, FA_SMEM, s>>>(p);
    else
        attn_prefill_kernel<KERN_FP8><<<grid, 128, FA_SMEM, s>>>(p);
    CUDA_TRY(cudaGetLastError());
    return 0;
}

static int attn_check(const struct kern_attn *a)
{
    if (a->n_q < 1 || a->n_kv < 1 || a->n_q % a->n_kv || a->n_q / a->n_kv > ATT_GMAX ||
        a->n_kv > 65535 || a->T < 0 || a->pos0 < 0)
        return err_set(ERR_INVAL,
                       "kcs_attention: %d query heads, %d kv heads (at most %d per kv head)",
                       a->n_q, a->n_kv, ATT_GMAX);
    if (a->head_dim != 32 && a->head_dim != 64 && a->head_dim != 128 && a->head_dim != 256)
        return err_set(ERR_INVAL, "kcs_attention: head_dim %d (32, 64, 128 or 256)", a->head_dim);
    if (a->kv_type != KERN_F32 && a->kv_type != KERN_BF16 && a->kv_type != KERN_FP8)
        return err_set(ERR_INVAL, "kcs_attention: KV type %s not supported",
                       kern_dtype_name(a->kv_type));
    if (!(a->k_scale > 0) || !(a->v_scale > 0))
        return err_set(ERR_INVAL, "kcs_attention: KV scales must be positive");
    return 0;
}

/* The split: about two blocks per SM over all (token, kv head) pairs, chunks of at least
 * ATT_MIN_CHUNK positions, a multiple of a block step (8 warps x 4 positions). */
static void attn_plan(const struct kern_attn *a, long *nch, long *ch)
{
    static int sms;
    if (!sms) {
        int dev = 0, n = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n < 1)
            n = 132;
        cudaGetLastError();
        sms = n;
    }
    long npmax = a->pos0 + a->T, pairs = a->T * a->n_kv;
    long want = 2L * sms / (pairs > 0 ? pairs : 1);
    if (want < 1)
        want = 1;
    long c = (npmax + want - 1) / want;
    if (c < ATT_MIN_CHUNK)
        c = ATT_MIN_CHUNK;
    c = (c + ATT_WARPS * 4 - 1) / (ATT_WARPS * 4) * (ATT_WARPS * 4);
    *ch = c;
    *nch = (npmax + c - 1) / c;
}

extern "C" size_t kcs_attention_work_bytes(const struct kern_attn *a)
{
    long nch, ch;
    if (attn_check(a) < 0 || a->T == 0 || use_prefill(a))
        return 0;
    attn_plan(a, &nch, &ch);
    if (nch == 1)
        return 0;
    return (size_t)a->T * a->n_q * nch * (a->head_dim + 2) * sizeof(float);
}

template <int DPL> static void launch_split(const attn_args &p, dim3 grid, cudaStream_t s)
{
    if (p.a.kv_type == KERN_F32)
        attn_split_kernel<DPL, KERN_F32><<<grid, ATT_WARPS * 32, 0, s>>>(p);
    else if (p.a.kv_type == KERN_BF16)
        attn_split_kernel<DPL, KERN_BF16><<<grid, ATT_WARPS * 32, 0, s>>>(p);
    else
        attn_split_kernel<DPL, KERN_FP8><<<grid, ATT_WARPS * 32, 0, s>>>(p);
}

static int attention(const struct kern_attn *a, const long *dpos, const float *gate, long g_tok,
                     long g_head, void *work, size_t work_bytes, void *stream)
{
    int rc = attn_check(a);
    if (rc < 0)
        return rc;
    if (a->T == 0)
        return 0;
    attn_args p;
    p.a = *a;
    p.gate = gate;
    p.g_tok = g_tok;
    p.g_head = g_head;
    p.work = (float *)work;
    p.t0 = 0;
    p.nch = p.ch = 0;
    p.dpos = dpos;
    if (!dpos && use_prefill(a))
        return launch_prefill(p, st_of(stream));
    attn_plan(a, &p.nch, &p.ch);
    if (p.nch > 1 && (!work || work_bytes < kcs_attention_work_bytes(a)))
        return err_set(ERR_INVAL, "kcs_attention: %zu bytes of scratch, %zu needed", work_bytes,
                       kcs_attention_work_bytes(a));
    if (p.nch > (1L << 31) - 1)
        return err_set(ERR_INVAL, "kcs_attention: context of %ld too long", a->pos0 + a->T);
    cudaStream_t s = st_of(stream);
    for (long t0 = 0; t0 < a->T; t0 += 65535) {
        long n = a->T - t0 < 65535 ? a->T - t0 : 65535;
        p.t0 = t0;
        dim3 grid((unsigned)p.nch, (unsigned)a->n_kv, (unsigned)n);
        switch (a->head_dim) {
        case 32: launch_split<1>(p, grid, s); break;
        case 64: launch_split<2>(p, grid, s); break;
        case 128: launch_split<4>(p, grid, s); break;
        default: launch_split<8>(p, grid, s); break;
        }
        CUDA_TRY(cudaGetLastError());
        if (p.nch > 1) {
            attn_merge_kernel<<<dim3((unsigned)a->n_q, (unsigned)n), 256, 0, s>>>(p);
            CUDA_TRY(cudaGetLastError());
        }
    }
    return 0;
}

extern "C" int kcs_attention(const struct kern_attn *a, const float *gate, long g_tok, long g_head,
                             void *work, size_t work_bytes, void *stream)
{
    return attention(a, NULL, gate, g_tok, g_head, work, work_bytes, stream);
}

extern "C" int kcs_attention_dpos(const struct kern_attn *a, const long *dpos, const float *gate,
                                  long g_tok, long g_head, void *work, size_t work_bytes,
                                  void *stream)
{
    if (!dpos || a->T != 1)
        return err_set(ERR_INVAL, "kcs_attention_dpos: one token with a device position (T %ld)",
                       a->T);
    return attention(a, dpos, gate, g_tok, g_head, work, work_bytes, stream);
}
