/*
 * gdn.cu - Gated DeltaNet on the GPU (model-spec.md 3.6; CPU reference kernels/cpu/gdn.c).
 *
 * The delta-rule kernels give one value head's fp32 state [dk][dv] to one block of 512 threads:
 * thread (j, slice) holds column j of `rpt` consecutive rows in registers, so the state is read
 * and written once per call (decode) or once per sequence (recurrent prefill), and every token
 * costs three block reductions over the row slices (S^T k, S^T q, and the norms).
 * The state layout is the CPU engine's [n_v][dk][dv], S[i][j] = key dim i, value dim j.
 */
#include "kernels/cuda/cuda_check.cuh"

extern "C" {
#include "common/err.h"
#include "kernels/kernels.h"
}

#include <math.h>

#define GDN_THREADS 512
#define GDN_RMAX 32 /* state rows per thread held in registers */
#define GDN_MAXKW 16

static cudaStream_t st_of(void *s) { return (cudaStream_t)s; }

__device__ __forceinline__ float silu1(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float sigmoid1(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float softplus1(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* Sum of x[i]^2 for i < n by one warp (every lane gets it). */
__device__ __forceinline__ float warp_sumsq(const float *x, int n, int lane)
{
    float s = 0;
    for (int i = lane; i < n; i += 32)
        s += x[i] * x[i];
    for (int o = 16; o > 0; o >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, o);
    return s;
}

/* Where a thread sits in a head's state: column j, row slice sl of rpt rows. */
struct gdn_lane {
    int j, sl, rpt, active;
};

__device__ __forceinline__ gdn_lane lane_of(int tid, int dv, int nsl, int rpt)
{
    gdn_lane ln;
    ln.j = tid % dv;
    ln.sl = tid / dv;
    ln.rpt = rpt;
    ln.active = ln.sl < nsl;
    return ln;
}

__device__ __forceinline__ void state_load(float (&S)[GDN_RMAX], const float *g, const gdn_lane &ln,
                                           int dk, int dv)
{
#pragma unroll
    for (int r = 0; r < GDN_RMAX; r++) {
        int i = ln.sl * ln.rpt + r;
        if (r < ln.rpt && ln.active && i < dk)
            S[r] = g[(size_t)i * dv + ln.j];
    }
}

__device__ __forceinline__ void state_store(const float (&S)[GDN_RMAX], float *g,
                                            const gdn_lane &ln, int dk, int dv)
{
#pragma unroll
    for (int r = 0; r < GDN_RMAX; r++) {
        int i = ln.sl * ln.rpt + r;
        if (r < ln.rpt && ln.active && i < dk)
            g[(size_t)i * dv + ln.j] = S[r];
    }
}

/* One token of the delta rule for one value head, every thread of the block taking part:
 * S *= e^g; u = beta (v - S^T k); S += k u^T; o = S^T q (the updated S). k[i] * kmul and
 * q[i] * qmul are the normalised vectors (shared memory); v_j is this thread's value; red is
 * shared scratch [nsl][dv]; o[j] (shared or global) is written by slice 0. */
__device__ __forceinline__ void gdn_token(float (&S)[GDN_RMAX], const gdn_lane &ln, int dk, int dv,
                                          int nsl, const float *k, float kmul, const float *q,
                                          float qmul, float v_j, float eg, float beta, float *red,
                                          float *o)
{
    float part = 0;
#pragma unroll
    for (int r = 0; r < GDN_RMAX; r++) {
        int i = ln.sl * ln.rpt + r;
        if (r < ln.rpt && ln.active && i < dk) {
            S[r] *= eg;
            part += S[r] * (k[i] * kmul);
        }
    }
    if (ln.active)
        red[ln.sl * dv + ln.j] = part;
    __syncthreads();
    float u = 0;
    if (ln.active) {
        float kv = 0;
        for (int s = 0; s < nsl; s++)
            kv += red[s * dv + ln.j];
        u = beta * (v_j - kv);
    }
    __syncthreads(); /* everyone has read red before it is reused */
    part = 0;
#pragma unroll
    for (int r = 0; r < GDN_RMAX; r++) {
        int i = ln.sl * ln.rpt + r;
        if (r < ln.rpt && ln.active && i < dk) {
            S[r] += (k[i] * kmul) * u;
            part += S[r] * (q[i] * qmul);
        }
    }
    if (ln.active)
        red[ln.sl * dv + ln.j] = part;
    __syncthreads();
    if (ln.active && ln.sl == 0) {
        float s = 0;
        for (int t = 0; t < nsl; t++)
            s += red[t * dv + ln.j];
        o[ln.j] = s;
    }
    __syncthreads();
}

/* Threads per head: nsl row slices of dv columns, rpt rows each; 0 or ERR_INVAL. */
static int gdn_split(int dk, int dv, int *nsl, int *rpt, const char *who)
{
    if (dk < 1 || dv < 1 || dv > GDN_THREADS)
        return err_set(ERR_INVAL, "%s: dk %d, dv %d not supported (dv <= %d)", who, dk, dv,
                       GDN_THREADS);
    *nsl = GDN_THREADS / dv;
    if (*nsl > dk)
        *nsl = dk;
    *rpt = (dk + *nsl - 1) / *nsl;
    if (*rpt > GDN_RMAX)
        return err_set(ERR_INVAL, "%s: dk %d too large for dv %d (at most %d)", who, dk, dv,
                       GDN_RMAX * *nsl);
    return 0;
}

/* ---------------------------------------------------------------- recurrent (multi-token) */

__global__ __launch_bounds__(GDN_THREADS) void gdn_recurrent_kernel(kern_gdn a, int nsl, int rpt)
{
    extern __shared__ float sm[];
    int dk = a.dk, dv = a.dv, h = blockIdx.x, kh = h / (a.n_v / a.n_k), tid = threadIdx.x;
    float *qs = sm, *ks = qs + dk, *vs = ks + dk, *red = vs + dv, *sc = red + nsl * dv;
    gdn_lane ln = lane_of(tid, dv, nsl, rpt);
    float *Sg = a.state + (size_t)h * dk * dv;
    float S[GDN_RMAX];
    state_load(S, Sg, ln, dk, dv);
    float qmul = 1.0f / sqrtf((float)dk);
    for (long t = 0; t < a.T; t++) {
        const float *qt = a.q + t * a.ld_qk + (long)kh * dk,
                    *kt = a.k + t * a.ld_qk + (long)kh * dk;
        for (int i = tid; i < dk; i += blockDim.x) {
            qs[i] = qt[i];
            ks[i] = kt[i];
        }
        for (int j = tid; j < dv; j += blockDim.x)
            vs[j] = a.v[t * a.ld_v + (long)h * dv + j];
        __syncthreads();
        int warp = tid / 32, lane = tid % 32;
        if (warp == 0) {
            float ss = warp_sumsq(qs, dk, lane);
            if (lane == 0)
                sc[0] = qmul / sqrtf(ss + 1e-6f);
        } else if (warp == 1) {
            float ss = warp_sumsq(ks, dk, lane);
            if (lane == 0)
                sc[1] = 1.0f / sqrtf(ss + 1e-6f);
        }
        __syncthreads();
        float eg = expf(a.g[t * a.n_v + h]), beta = a.beta[t * a.n_v + h];
        gdn_token(S, ln, dk, dv, nsl, ks, sc[1], qs, sc[0], ln.active ? vs[ln.j] : 0.0f, eg, beta,
                  red, a.out + (t * a.n_v + h) * dv);
    }
    state_store(S, Sg, ln, dk, dv);
}

static int gdn_check(const struct kern_gdn *a, const char *who)
{
    if (a->n_k < 1 || a->n_v < 1 || a->n_v % a->n_k || a->T < 0 || a->dk < 1 || a->dv < 1 ||
        a->n_v > 65535)
        return err_set(ERR_INVAL, "%s: %d key heads, %d value heads, dk %d, dv %d, %ld tokens", who,
                       a->n_k, a->n_v, a->dk, a->dv, a->T);
    if (a->ld_qk < (long)a->n_k * a->dk || a->ld_v < (long)a->n_v * a->dv)
        return err_set(ERR_INVAL, "%s: row strides %ld/%ld too small", who, a->ld_qk, a->ld_v);
    return 0;
}

extern "C" int kcs_gdn_recurrent(const struct kern_gdn *a, void *stream)
{
    int nsl = 0, rpt = 0, rc;
    if ((rc = gdn_check(a, "kcs_gdn_recurrent")) < 0 ||
        (rc = gdn_split(a->dk, a->dv, &nsl, &rpt, "kcs_gdn_recurrent")) < 0)
        return rc;
    if (a->T == 0)
        return 0;
    size_t smem = (size_t)(2 * a->dk + a->dv + nsl * a->dv + 4) * sizeof(float);
    gdn_recurrent_kernel<<<a->n_v, GDN_THREADS, smem, st_of(stream)>>>(*a, nsl, rpt);
    CUDA_TRY(cudaGetLastError());
    return 0;
}

/* ---------------------------------------------------------------- fused decode step */

/* Block = key head kh: conv of its q and k channels and of its value heads' v channels (reading
 * and shifting their conv state), gates, norms, then its value heads one after the other. */
__global__ __launch_bounds__(GDN_THREADS) void gdn_decode_kernel(kcs_gdn_step s, int nsl, int rpt)
{
    extern __shared__ float sm[];
    int dk = s.dk, dv = s.dv, kw = s.conv_k, ns = kw - 1, G = s.n_v / s.n_k;
    int kh = blockIdx.x, tid = threadIdx.x;
    long qk = (long)s.n_k * dk;
    float *qn = sm, *kn = qn + dk, *vv = kn + dk, *red = vv + G * dv, *ob = red + nsl * dv;
    float *sc = ob + dv, *gb = sc + 4, *ge = gb + G;
    /* 1. conv + SiLU of the 2*dk + G*dv channels this block owns; the state shift is done by
     * the thread that read the channel, so there is no cross-thread hazard */
    int nc = 2 * dk + G * dv;
    for (int idx = tid; idx < nc; idx += blockDim.x) {
        long c;
        float *dst;
        if (idx < dk) {
            c = (long)kh * dk + idx;
            dst = qn + idx;
        } else if (idx < 2 * dk) {
            c = qk + (long)kh * dk + (idx - dk);
            dst = kn + (idx - dk);
        } else {
            c = 2 * qk + (long)kh * G * dv + (idx - 2 * dk);
            dst = vv + (idx - 2 * dk);
        }
        const float *w = s.conv_w + c * kw;
        float *cs = s.conv_state + c * ns;
        float x = s.qkv[c], acc = 0;
        for (int j = 0; j < ns; j++)
            acc += w[j] * cs[j];
        acc += w[ns] * x;
        for (int j = 0; j + 1 < ns; j++)
            cs[j] = cs[j + 1];
        if (ns > 0)
            cs[ns - 1] = x;
        *dst = silu1(acc);
    }
    __syncthreads();
    /* 2. norms (warps 0 and 1) and gates (warp 2) */
    int warp = tid / 32, lane = tid % 32;
    if (warp == 0) {
        float ss = warp_sumsq(qn, dk, lane);
        if (lane == 0)
            sc[0] = (1.0f / sqrtf((float)dk)) / sqrtf(ss + 1e-6f);
    } else if (warp == 1) {
        float ss = warp_sumsq(kn, dk, lane);
        if (lane == 0)
            sc[1] = 1.0f / sqrtf(ss + 1e-6f);
    } else if (warp == 2) {
        for (int i = lane; i < G; i += 32) {
            int h = kh * G + i;
            gb[i] = sigmoid1(s.b[h]);
            ge[i] = expf(s.neg_exp_a[h] * softplus1(s.a[h] + s.dt_bias[h]));
        }
    }
    __syncthreads();
    /* 3. the value heads of this key head */
    gdn_lane ln = lane_of(tid, dv, nsl, rpt);
    for (int i = 0; i < G; i++) {
        int h = kh * G + i;
        float *Sg = s.state + (size_t)h * dk * dv;
        float S[GDN_RMAX];
        state_load(S, Sg, ln, dk, dv);
        gdn_token(S, ln, dk, dv, nsl, kn, sc[1], qn, sc[0], ln.active ? vv[i * dv + ln.j] : 0.0f,
                  ge[i], gb[i], red, ob);
        state_store(S, Sg, ln, dk, dv);
        /* gated RMSNorm over the head's dv outputs, times SiLU(z) */
        if (warp == 0) {
            float ss = warp_sumsq(ob, dv, lane);
            if (lane == 0)
                sc[2] = 1.0f / sqrtf(ss / (float)dv + s.eps);
        }
        __syncthreads();
        for (int j = tid; j < dv; j += blockDim.x)
            s.out[(long)h * dv + j] = s.norm_w[j] * (ob[j] * sc[2]) * silu1(s.z[(long)h * dv + j]);
        __syncthreads(); /* ob and sc[2] are reused by the next head */
    }
}

extern "C" int kcs_gdn_decode(const struct kcs_gdn_step *s, void *stream)
{
    int nsl = 0, rpt = 0, rc;
    if (s->n_k < 1 || s->n_v < 1 || s->n_v % s->n_k || s->conv_k < 1 || s->conv_k > GDN_MAXKW)
        return err_set(ERR_INVAL, "kcs_gdn_decode: %d key heads, %d value heads, conv %d", s->n_k,
                       s->n_v, s->conv_k);
    if ((rc = gdn_split(s->dk, s->dv, &nsl, &rpt, "kcs_gdn_decode")) < 0)
        return rc;
    int G = s->n_v / s->n_k;
    size_t smem = (size_t)(2 * s->dk + G * s->dv + nsl * s->dv + s->dv + 4 + 2 * G) * sizeof(float);
    if (smem > 48 * 1024)
        return err_set(ERR_INVAL, "kcs_gdn_decode: %d value heads per key head too many", G);
    gdn_decode_kernel<<<s->n_k, GDN_THREADS, smem, st_of(stream)>>>(*s, nsl, rpt);
    CUDA_TRY(cudaGetLastError());
    return 0;
}

/* ---------------------------------------------------------------- chunked prefill */

/* The chunk-64 form (model-spec.md 3.6), one block per (value head, 32 value columns): the
 * columns of the state are independent given the chunk's keys, so 4 blocks share a head and
 * each recomputes the key-only products. Per chunk, with the old state S (shared memory):
 *   M   lower: L[i][j] = beta_i (k_i.k_j) e^(gam_i - gam_j), j < i; upper and diagonal (stored
 *       transposed): A[i][j] = (q_i.k_j) e^(gam_i - gam_j), j <= i
 *   R   = diag(beta) (V - diag(e^gam) K S)        (so Vn = (I + L)^-1 R = U - W S)
 *   Vn  by forward substitution, one lane per column
 *   O   = diag(e^gam) Q S + A Vn
 *   S   = e^gam_last S + (K diag(e^(gam_last - gam)))^T Vn
 * TODO(issue #7): the Q K^T, K S and S-update products on tensor cores (mma.sync tf32/bf16). */
#define GC 64
#define GDVB 32
#define GCT 256

__global__ __launch_bounds__(GCT) void gdn_chunk_kernel(kern_gdn a)
{
    extern __shared__ float sm[];
    int dk = a.dk, dv = a.dv, ld = dk + 1; /* +1: rows of K read by a warp hit other banks */
    int h = blockIdx.x, vb = blockIdx.y, kh = h / (a.n_v / a.n_k), tid = threadIdx.x;
    int warp = tid / 32, lane = tid % 32;
    float *Qs = sm, *Ks = Qs + GC * ld, *M = Ks + GC * ld, *Ss = M + GC * (GC + 1);
    float *Vn = Ss + dk * GDVB, *Os = Vn + GC * GDVB, *gam = Os + GC * GDVB, *bt = gam + GC;
    float *dec = bt + GC;
    float *Sg = a.state + (size_t)h * dk * dv + (size_t)vb * GDVB;
    for (int e = tid; e < dk * GDVB; e += GCT)
        Ss[e] = Sg[(size_t)(e / GDVB) * dv + e % GDVB];
    float qmul = 1.0f / sqrtf((float)dk);
    for (long c0 = 0; c0 < a.T; c0 += GC) {
        int n = a.T - c0 < GC ? (int)(a.T - c0) : GC;
        /* a. the chunk's q and k, L2-normalised (a warp per row), and its gates */
        for (int i = warp; i < n; i += GCT / 32) {
            long t = c0 + i;
            const float *qr = a.q + t * a.ld_qk + (long)kh * dk;
            const float *kr = a.k + t * a.ld_qk + (long)kh * dk;
            float sq = 0, sk = 0;
            for (int d = lane; d < dk; d += 32) {
                float x = qr[d], y = kr[d];
                Qs[i * ld + d] = x;
                Ks[i * ld + d] = y;
                sq += x * x;
                sk += y * y;
            }
            for (int o = 16; o > 0; o >>= 1) {
                sq += __shfl_xor_sync(0xffffffffu, sq, o);
                sk += __shfl_xor_sync(0xffffffffu, sk, o);
            }
            float iq = qmul / sqrtf(sq + 1e-6f), ik = 1.0f / sqrtf(sk + 1e-6f);
            for (int d = lane; d < dk; d += 32) { /* the lane's own elements: no hazard */
                Qs[i * ld + d] *= iq;
                Ks[i * ld + d] *= ik;
            }
        }
        if (tid == 0) {
            float cum = 0;
            for (int i = 0; i < n; i++) {
                cum += a.g[(c0 + i) * a.n_v + h];
                gam[i] = cum;
                bt[i] = a.beta[(c0 + i) * a.n_v + h];
            }
        }
        __syncthreads();
        if (tid < n)
            dec[tid] = expf(gam[n - 1] - gam[tid]);
        /* b. M (L below the diagonal, A transposed on and above it) */
        for (int idx = tid; idx < n * n; idx += GCT) {
            int i = idx / n, j = idx % n;
            if (j > i)
                continue;
            float qk = 0, kk = 0;
            for (int e = 0; e < dk; e++) {
                float kj = Ks[j * ld + e];
                qk += Qs[i * ld + e] * kj;
                kk += Ks[i * ld + e] * kj;
            }
            float d = expf(gam[i] - gam[j]);
            if (j < i)
                M[i * (GC + 1) + j] = bt[i] * kk * d;
            M[j * (GC + 1) + i] = qk * d;
        }
        /* c. R = beta (v - e^gam K S) into Vn, and e^gam Q S into Os, against the old S */
        for (int idx = tid; idx < n * GDVB; idx += GCT) {
            int i = idx / GDVB, jj = idx % GDVB;
            float ks = 0, qs = 0;
            for (int e = 0; e < dk; e++) {
                float s = Ss[e * GDVB + jj];
                ks += Ks[i * ld + e] * s;
                qs += Qs[i * ld + e] * s;
            }
            float v = a.v[(c0 + i) * a.ld_v + (long)h * dv + vb * GDVB + jj];
            float eg = expf(gam[i]);
            Vn[i * GDVB + jj] = bt[i] * (v - eg * ks);
            Os[i * GDVB + jj] = eg * qs;
        }
        __syncthreads();
        /* d. (I + L) Vn = R, row by row; each lane owns a column, so no barrier inside */
        if (warp == 0) {
            for (int i = 1; i < n; i++) {
                float acc = Vn[i * GDVB + lane];
                for (int j = 0; j < i; j++)
                    acc -= M[i * (GC + 1) + j] * Vn[j * GDVB + lane];
                Vn[i * GDVB + lane] = acc;
            }
        }
        __syncthreads();
        /* e. O = e^gam Q S + A Vn */
        for (int idx = tid; idx < n * GDVB; idx += GCT) {
            int i = idx / GDVB, jj = idx % GDVB;
            float o = Os[i * GDVB + jj];
            for (int j = 0; j <= i; j++)
                o += M[j * (GC + 1) + i] * Vn[j * GDVB + jj];
            a.out[((c0 + i) * a.n_v + h) * dv + vb * GDVB + jj] = o;
        }
        /* f. S = e^gam_last S + sum_i k_i e^(gam_last - gam_i) Vn_i^T (own elements only) */
        float el = expf(gam[n - 1]);
        for (int e = tid; e < dk * GDVB; e += GCT) {
            int r = e / GDVB, jj = e % GDVB;
            float s = Ss[e] * el;
            for (int i = 0; i < n; i++)
                s += Ks[i * ld + r] * dec[i] * Vn[i * GDVB + jj];
            Ss[e] = s;
        }
        __syncthreads(); /* before the next chunk overwrites Qs, Ks, gam */
    }
    for (int e = tid; e < dk * GDVB; e += GCT)
        Sg[(size_t)(e / GDVB) * dv + e % GDVB] = Ss[e];
}

extern "C" int kcs_gdn_chunked(const struct kern_gdn *a, void *stream)
{
    int rc = gdn_check(a, "kcs_gdn_chunked");
    if (rc < 0)
        return rc;
    if (a->T == 0)
        return 0;
    size_t smem =
        (size_t)(2 * GC * (a->dk + 1) + GC * (GC + 1) + a->dk * GDVB + 2 * GC * GDVB + 3 * GC) *
        sizeof(float);
    /* the device's limit and the kernel's attribute once (one device per process) */
    static int optin, attr;
    if (!optin) {
        int dev = 0;
        CUDA_TRY(cudaGetDevice(&dev));
        CUDA_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    }
    /* shapes this kernel is not built for go to the recurrent one: the same function */
    if (a->dv % GDVB || a->dk < 1 || a->dk > 256 || smem > (size_t)optin || a->T < 2)
        return kcs_gdn_recurrent(a, stream);
    if ((int)smem > attr) {
        CUDA_TRY(cudaFuncSetAttribute(gdn_chunk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      (int)smem));
        attr = (int)smem;
    }
    gdn_chunk_kernel<<<dim3((unsigned)a->n_v, (unsigned)(a->dv / GDVB)), GCT, smem,
                       st_of(stream)>>>(*a);
    CUDA_TRY(cudaGetLastError());
    return 0;
}

/* ---------------------------------------------------------------- conv, gates, gated norm */

__global__ void conv_kernel(float *y, const float *x, long ldx, const float *state, const float *w,
                            long t0, long C, int kw)
{
    long c = blockIdx.x * (long)blockDim.x + threadIdx.x, t = t0 + blockIdx.y;
    if (c >= C)
        return;
    int ns = kw - 1;
    const float *wc = w + c * kw;
    float acc = 0;
    for (int j = 0; j < kw; j++) {
        long p = t - ns + j; /* < 0: from the state, which holds positions -ns .. -1 */
        float in = p >= 0 ? x[p * ldx + c] : state[c * ns + ns + p];
        acc += wc[j] * in;
    }
    y[t * C + c] = silu1(acc);
}

/* After conv_kernel (stream order): the last ns inputs; entry j reads old entry T + j > j. */
__global__ void conv_state_kernel(const float *x, long ldx, float *state, long T, long C, int kw)
{
    long c = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    int ns = kw - 1;
    for (int j = 0; j < ns; j++) {
        long p = T - ns + j;
        state[c * ns + j] = p >= 0 ? x[p * ldx + c] : state[c * ns + ns + p];
    }
}

extern "C" int kcs_conv1d_silu(float *y, const float *x, long ldx, float *state, const float *w,
                               long T, long C, int kw, void *stream)
{
    if (kw < 1 || kw > GDN_MAXKW || C < 1 || T < 0 || ldx < C || T > 65535L * 1024)
        return err_set(ERR_INVAL,
                       "kcs_conv1d_silu: kernel %d, %ld channels, %ld tokens, stride %ld", kw, C, T,
                       ldx);
    if (T == 0)
        return 0;
    unsigned bx = (unsigned)((C + 255) / 256);
    /* tokens beyond 65535 (the grid's y limit) in slices */
    for (long t0 = 0; t0 < T; t0 += 65535) {
        long n = T - t0 < 65535 ? T - t0 : 65535;
        conv_kernel<<<dim3(bx, (unsigned)n), 256, 0, st_of(stream)>>>(y, x, ldx, state, w, t0, C,
                                                                      kw);
        CUDA_TRY(cudaGetLastError());
    }
    conv_state_kernel<<<bx, 256, 0, st_of(stream)>>>(x, ldx, state, T, C, kw);
    CUDA_TRY(cudaGetLastError());
    return 0;
}

__global__ void gates_kernel(float *g, float *beta, const float *a, const float *b,
                             const float *neg_exp_a, const float *dt_bias, long n, int n_v)
{
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    int h = (int)(i % n_v);
    beta[i] = sigmoid1(b[i]);
    g[i] = neg_exp_a[h] * softplus1(a[i] + dt_bias[h]);
}

extern "C" int kcs_gdn_gates(float *g, float *beta, const float *a, const float *b,
                             const float *neg_exp_a, const float *dt_bias, long T, int n_v,
                             void *stream)
{
    long n;
    if (T < 0 || n_v < 1 || __builtin_mul_overflow(T, (long)n_v, &n) || n / 256 >= (1L << 31))
        return err_set(ERR_INVAL, "kcs_gdn_gates: %ld tokens of %d heads", T, n_v);
    if (n == 0)
        return 0;
    gates_kernel<<<(unsigned)((n + 255) / 256), 256, 0, st_of(stream)>>>(g, beta, a, b, neg_exp_a,
                                                                         dt_bias, n, n_v);
    CUDA_TRY(cudaGetLastError());
    return 0;
}

/* One block of 128 threads per row. */
__global__ void rmsnorm_gated_kernel(float *y, const float *x, const float *z, const float *w,
                                     long n, float eps)
{
    __shared__ float part[4];
    long r = blockIdx.x;
    const float *xr = x + r * n, *zr = z + r * n;
    float ss = 0;
    for (long i = threadIdx.x; i < n; i += blockDim.x)
        ss += xr[i] * xr[i];
    for (int o = 16; o > 0; o >>= 1)
        ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (threadIdx.x % 32 == 0)
        part[threadIdx.x / 32] = ss;
    __syncthreads();
    float inv = 1.0f / sqrtf((part[0] + part[1] + part[2] + part[3]) / (float)n + eps);
    /* y may alias x: every thread has read its x values above and the barrier has passed, and
     * each writes only the elements it read */
    for (long i = threadIdx.x; i < n; i += blockDim.x)
        y[r * n + i] = w[i] * (xr[i] * inv) * silu1(zr[i]);
}

extern "C" int kcs_rmsnorm_gated(float *y, const float *x, const float *z, const float *w,
                                 long rows, long n, float eps, void *stream)
{
    if (rows < 0 || n < 1 || n > 4096 || rows >= (1L << 31))
        return err_set(ERR_INVAL, "kcs_rmsnorm_gated: %ld rows of %ld", rows, n);
    if (rows == 0)
        return 0;
    rmsnorm_gated_kernel<<<(unsigned)rows, 128, 0, st_of(stream)>>>(y, x, z, w, n, eps);
    CUDA_TRY(cudaGetLastError());
    return 0;
}
