/*
 * moe.cu - the MoE block on the GPU: experts uploaded once (kcu_experts), the router's top-k and
 * the selected experts in two launches.
 *
 *   launch 1 (gate_up): one block row per (token, slot), slot < k a routed expert, slot k the
 *     shared one. Each block recomputes its token's top-k from the logits (a warp, E/32 values a
 *     lane: cheaper than a launch), then streams only that expert's gate and up rows (both rows
 *     of an output in one lane group) and writes h = silu(gate x) * up x.
 *   launch 2 (down): the same grid over hidden rows writes each slot's down(h) into D; the last
 *     block to finish a (token, row block) - a per-block completion counter, reset by that block
 *     - sums the slots in order with the router weights and sigmoid(shared_gate). No float
 *     atomics, so the result is deterministic.
 * Only the selected experts' bytes are read. From MOE_PREFILL_MIN tokens on, moe_prefill.cu's
 * grouped GEMM takes over.
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

#define MOE_THREADS 256
#define MOE_MAXK 16        /* top-k limit (the model: 8) */
#define MOE_MAXE 4096      /* experts limit (the model: 256) */
#define MOE_TOKENS 256     /* tokens per launch */
#define MOE_R 2            /* rows per lane group in the down kernel */
#define MOE_PREFILL_MIN 32 /* from this many tokens on, the grouped GEMM (moe_prefill.cu) */

/* ------------------------------------------------------------------ upload */

static size_t align256(size_t v) { return (v + 255) & ~(size_t)255; }

static int same_kind(const struct kern_weight *a, const struct kern_weight *b)
{
    return a->type == b->type && a->scale_type == b->scale_type && a->group == b->group &&
           a->n == b->n && a->k == b->k;
}

/* uploads one matrix's scales (F16 widened to F32) */
static int upload_scales(void *dst, const struct kern_weight *w, size_t count, int st)
{
    if (w->type != KERN_I4 && w->type != KERN_I8)
        return 0;
    if (w->scale_type != KERN_F16)
        return kcu_upload(dst, w->scale, count * (st == KERN_BF16 ? 2 : 4));
    float *tmp = (float *)malloc(count * sizeof(float));
    if (!tmp)
        return err_set(ERR_NOMEM, "cuda experts: %zu scales", count);
    for (size_t i = 0; i < count; i++)
        tmp[i] = kern_f16_to_f32(((const uint16_t *)w->scale)[i]);
    int rc = kcu_upload(dst, tmp, count * sizeof(float));
    free(tmp);
    return rc;
}

extern "C" int kcu_experts_upload(struct kcu_experts *d, const struct kern_expert *ex, int n,
                                  const char *name)
{
    memset(d, 0, sizeof *d);
    name = name ? name : "experts";
    if (!ex || n < 1 || n > MOE_MAXE)
        return err_set(ERR_INVAL, "cuda upload %s: %d experts", name, n);
    int rc;
    const struct kern_weight *g0 = &ex[0].gate, *d0 = &ex[0].down;
    for (int e = 0; e < n; e++) {
        if ((rc = kern_weight_check(&ex[e].gate)) < 0 || (rc = kern_weight_check(&ex[e].up)) < 0 ||
            (rc = kern_weight_check(&ex[e].down)) < 0)
            return err_prefix(rc, "cuda upload %s expert %d", name, e);
        if (!same_kind(&ex[e].gate, g0) || !same_kind(&ex[e].up, g0) || !same_kind(&ex[e].down, d0))
            return err_set(ERR_UNSUPPORTED,
                           "cuda upload %s: expert %d differs from expert 0 in "
                           "type, group or shape",
                           name, e);
    }
    long H = g0->k, I = g0->n;
    if (d0->n != H || d0->k != I || d0->type != g0->type || d0->scale_type != g0->scale_type)
        return err_set(ERR_INVAL, "cuda upload %s: down [%ld, %ld] does not match gate [%ld, %ld]",
                       name, d0->n, d0->k, I, H);
    int type = g0->type, q = type == KERN_I4 || type == KERN_I8, v = kcu_vpc(type);
    long ggu = q ? g0->group : H, gdn = q ? d0->group : I;
    if (H % v || I % v || ggu % v || gdn % v)
        return err_set(ERR_UNSUPPORTED,
                       "cuda upload %s: %s hidden %ld, intermediate %ld, groups %ld/%ld are not "
                       "whole %d-value chunks",
                       name, kern_dtype_name(type), H, I, ggu, gdn, v);
    int st = q && g0->scale_type == KERN_BF16 ? KERN_BF16 : KERN_F32;
    size_t ssz = st == KERN_BF16 ? 2 : 4;
    size_t gu_bytes = (size_t)I * kcu_row_bytes(type, H),
           dn_bytes = (size_t)H * kcu_row_bytes(type, I);
    size_t gu_sc = q ? (size_t)I * (size_t)(H / ggu) : 0,
           dn_sc = q ? (size_t)H * (size_t)(I / gdn) : 0;
    /* layout: gate[E], up[E], down[E], gate_s[E], up_s[E], down_s[E], each part 256-aligned */
    size_t part[6] = { gu_bytes, gu_bytes, dn_bytes, gu_sc * ssz, gu_sc * ssz, dn_sc * ssz };
    size_t off[6], total = 0;
    for (int i = 0; i < 6; i++) {
        size_t b;
        if (ckd_mul_sz(&b, part[i], (size_t)n))
            return err_set(ERR_NOMEM, "cuda upload %s: too large", name);
        off[i] = total;
        if (ckd_add_sz(&total, total, align256(b)))
            return err_set(ERR_NOMEM, "cuda upload %s: too large", name);
    }
    if ((rc = kcu_alloc(&d->buf, total, name)) < 0)
        return rc;
    char *base = (char *)d->buf.ptr;
    d->n_experts = n;
    d->hidden = H;
    d->inter = I;
    d->type = type;
    d->scale_type = st;
    d->group_gu = ggu;
    d->group_down = gdn;
    d->gate = base + off[0];
    d->up = base + off[1];
    d->down = base + off[2];
    d->gate_s = q ? base + off[3] : NULL;
    d->up_s = q ? base + off[4] : NULL;
    d->down_s = q ? base + off[5] : NULL;
    d->gu_stride = gu_bytes;
    d->down_stride = dn_bytes;
    d->gu_sstride = gu_sc;
    d->down_sstride = dn_sc;
    for (int e = 0; e < n && rc == 0; e++) {
        size_t eg = (size_t)e * gu_bytes, ed = (size_t)e * dn_bytes;
        if ((rc = kcu_upload((char *)d->gate + eg, ex[e].gate.data, gu_bytes)) < 0 ||
            (rc = kcu_upload((char *)d->up + eg, ex[e].up.data, gu_bytes)) < 0 ||
            (rc = kcu_upload((char *)d->down + ed, ex[e].down.data, dn_bytes)) < 0)
            break;
        if (q &&
            ((rc = upload_scales((char *)d->gate_s + e * gu_sc * ssz, &ex[e].gate, gu_sc, st)) <
                 0 ||
             (rc = upload_scales((char *)d->up_s + e * gu_sc * ssz, &ex[e].up, gu_sc, st)) < 0 ||
             (rc = upload_scales((char *)d->down_s + e * dn_sc * ssz, &ex[e].down, dn_sc, st)) < 0))
            break;
    }
    if (rc < 0) {
        kcu_experts_free(d);
        return err_prefix(rc, "cuda upload %s", name);
    }
    return 0;
}

extern "C" void kcu_experts_free(struct kcu_experts *d)
{
    if (!d)
        return;
    kcu_free(&d->buf);
    memset(d, 0, sizeof *d);
}

/* ------------------------------------------------------------------ routing */

/* a beats b: the larger logit, a number over NaN, the lower index on ties (kern_moe_route) */
__device__ __forceinline__ bool route_better(float av, int ai, float bv, int bi)
{
    if (ai < 0)
        return false;
    if (bi < 0)
        return true;
    bool an = isnan(av), bn = isnan(bv);
    if (an != bn)
        return bn;
    if (an || av == bv)
        return ai < bi;
    return av > bv;
}

/* Warp 0 of a block: top-k of lg[E] into sidx/swt (shared memory) as kern_moe_route does.
 * taken: E bytes of shared memory. The caller syncs the block afterwards. */
__device__ void route_token(const float *lg, int E, int k, int *sidx, float *swt,
                            unsigned char *taken)
{
    int lane = threadIdx.x % 32;
    float mx = -INFINITY;
    for (int e = lane; e < E; e += 32) {
        taken[e] = 0;
        mx = fmaxf(mx, lg[e]);
    }
    for (int o = 16; o > 0; o /= 2)
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
    for (int e = lane; e < E; e += 32)
        sum += expf(lg[e] - mx);
    for (int o = 16; o > 0; o /= 2)
        sum += __shfl_xor_sync(0xffffffffu, sum, o);
    __syncwarp();
    for (int j = 0; j < k; j++) {
        float bv = 0.f;
        int bi = -1;
        for (int e = lane; e < E; e += 32)
            if (!taken[e] && route_better(lg[e], e, bv, bi)) {
                bv = lg[e];
                bi = e;
            }
        for (int o = 16; o > 0; o /= 2) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (route_better(ov, oi, bv, bi)) {
                bv = ov;
                bi = oi;
            }
        }
        if (lane == 0) {
            sidx[j] = bi;
            taken[bi] = 1;
        }
        __syncwarp();
    }
    if (lane == 0) {
        /* p = exp / sum, then p / sum(p): the reference's order of operations */
        float tot = 0.f;
        for (int j = 0; j < k; j++) {
            swt[j] = expf(lg[sidx[j]] - mx) / sum;
            tot += swt[j];
        }
        for (int j = 0; j < k; j++)
            swt[j] = tot > 0.f ? swt[j] / tot : 1.0f / (float)k;
    }
}

__global__ void k_route(const float *logits, int E, int k, int *idx, float *wt)
{
    __shared__ int sidx[MOE_MAXK];
    __shared__ float swt[MOE_MAXK];
    __shared__ unsigned char taken[MOE_MAXE];
    long t = blockIdx.x;
    route_token(logits + t * E, E, k, sidx, swt, taken);
    __syncwarp();
    if (threadIdx.x < k) {
        idx[t * k + threadIdx.x] = sidx[threadIdx.x];
        wt[t * k + threadIdx.x] = swt[threadIdx.x];
    }
}

static int route_check(long T, int E, int k)
{
    if (E < 1 || E > MOE_MAXE || k < 1 || k > E || k > MOE_MAXK || T < 0)
        return err_set(ERR_INVAL,
                       "cuda moe route: top-%d of %d experts, %ld tokens (limits: %d "
                       "experts, top-%d)",
                       k, E, T, MOE_MAXE, MOE_MAXK);
    return 0;
}

extern "C" int kcu_moe_route(const float *logits, long T, int E, int k, int *idx, float *wt,
                             void *stream)
{
    int rc = route_check(T, E, k);
    if (rc < 0)
        return rc;
    if (T == 0)
        return 0;
    if (!logits || !idx || !wt)
        return err_set(ERR_INVAL, "cuda moe route: NULL pointer");
    if (T > 2147483647L)
        return err_set(ERR_UNSUPPORTED, "cuda moe route: %ld tokens", T);
    k_route<<<(unsigned)T, 32, 0, (cudaStream_t)stream>>>(logits, E, k, idx, wt);
    CUDA_TRY(cudaGetLastError());
    return 0;
}

/* ------------------------------------------------------------------ expert kernels */

/* What a kernel needs of one kcu_experts. */
struct moe_set {
    int type, st;
    long H, I;
    int C_gu, cpg_gu, C_dn, cpg_dn, tpr_gu, tpr_dn;
    long ng_gu, ng_dn; /* scales per row */
    const uint8_t *gate, *up, *down, *gate_s, *up_s, *down_s;
    size_t gu_stride, down_stride, gu_sstride, down_sstride; /* bytes */
};

struct moe_args {
    struct moe_set r, s; /* routed, shared */
    int has_shared;
    int E, k, S;         /* S = k + has_shared slots per token */
    const float *logits; /* [T][E] */
    const float *shared_gate;
    const float *x; /* [T][H] */
    float *h;       /* [T][S][I] */
    float *D;       /* [T][S][H] */
    float *y;       /* [T][H] */
    int *idx;       /* optional [T][k] */
    float *wt;
    unsigned *cnt; /* [T][gridDim.x of the down kernel], zero between calls */
};

static struct moe_set moe_set_of(const struct kcu_experts *d)
{
    struct moe_set m;
    int v = kcu_vpc(d->type);
    size_t ssz = d->scale_type == KERN_BF16 ? 2 : 4;
    m.type = d->type;
    m.st = d->scale_type;
    m.H = d->hidden;
    m.I = d->inter;
    m.C_gu = (int)(d->hidden / v);
    m.cpg_gu = (int)(d->group_gu / v);
    m.C_dn = (int)(d->inter / v);
    m.cpg_dn = (int)(d->group_down / v);
    m.tpr_gu = kcu_pick_tpr(m.C_gu);
    m.tpr_dn = kcu_pick_tpr(m.C_dn);
    m.ng_gu = d->hidden / d->group_gu;
    m.ng_dn = d->inter / d->group_down;
    m.gate = (const uint8_t *)d->gate;
    m.up = (const uint8_t *)d->up;
    m.down = (const uint8_t *)d->down;
    m.gate_s = (const uint8_t *)d->gate_s;
    m.up_s = (const uint8_t *)d->up_s;
    m.down_s = (const uint8_t *)d->down_s;
    m.gu_stride = d->gu_stride;
    m.down_stride = d->down_stride;
    m.gu_sstride = d->gu_sstride * ssz;
    m.down_sstride = d->down_sstride * ssz;
    return m;
}

/* Lane-group geometry of a block: rows per block = (threads / tpr) * R. */
__global__ void __launch_bounds__(MOE_THREADS) k_moe_gate_up(struct moe_args a)
{
    __shared__ int sidx[MOE_MAXK];
    __shared__ float swt[MOE_MAXK];
    __shared__ unsigned char taken[MOE_MAXE];
    long t = blockIdx.y / a.S;
    int j = (int)(blockIdx.y % a.S);
    bool shared = j >= a.k;
    const struct moe_set m = shared ? a.s : a.r;
    int e = 0;
    if (!shared) {
        if (threadIdx.x < 32)
            route_token(a.logits + t * a.E, a.E, a.k, sidx, swt, taken);
        __syncthreads();
        e = sidx[j];
    }
    int tpr = m.tpr_gu;
    long row = ((long)blockIdx.x * blockDim.x + threadIdx.x) / tpr;
    int lane = threadIdx.x % tpr;
    /* blocks past the shared expert's rows (or the routed ones') only join the shuffles */
    bool ok = row < m.I;
    size_t rb = m.gu_stride / (size_t)m.I, sb = m.gu_sstride / (size_t)m.I;
    const uint4 *rows[2] = { NULL, NULL };
    const void *sc[2] = { NULL, NULL };
    if (ok) {
        rows[0] = (const uint4 *)(m.gate + e * m.gu_stride + row * rb);
        rows[1] = (const uint4 *)(m.up + e * m.gu_stride + row * rb);
        if (m.gate_s) {
            sc[0] = m.gate_s + e * m.gu_sstride + row * sb;
            sc[1] = m.up_s + e * m.gu_sstride + row * sb;
        }
    }
    float acc[2][1] = { { 0.f }, { 0.f } };
    kcu_rows_dot_any<2, 1>(m.type, m.st, rows, sc, m.C_gu, m.cpg_gu, a.x + t * m.H, 0, 1, lane, tpr,
                           acc);
    float g = kcu_group_sum(acc[0][0], tpr), u = kcu_group_sum(acc[1][0], tpr);
    if (ok && lane == 0)
        a.h[((long)t * a.S + j) * m.I + row] = g / (1.0f + expf(-g)) * u;
}

__global__ void __launch_bounds__(MOE_THREADS) k_moe_down(struct moe_args a)
{
    __shared__ int sidx[MOE_MAXK];
    __shared__ float swt[MOE_MAXK];
    __shared__ unsigned char taken[MOE_MAXE];
    __shared__ bool last;
    long t = blockIdx.y / a.S;
    int j = (int)(blockIdx.y % a.S);
    bool shared = j >= a.k;
    const struct moe_set m = shared ? a.s : a.r;
    /* every block routes: the last one of a row block needs all the weights */
    if (threadIdx.x < 32)
        route_token(a.logits + t * a.E, a.E, a.k, sidx, swt, taken);
    __syncthreads();
    int e = shared ? 0 : sidx[j];
    int tpr = m.tpr_dn;
    long H = m.H;
    long g0 = ((long)blockIdx.x * blockDim.x + threadIdx.x) / tpr;
    int lane = threadIdx.x % tpr;
    size_t rb = m.down_stride / (size_t)H, sb = m.down_sstride / (size_t)H;
    const uint4 *rows[MOE_R];
    const void *sc[MOE_R];
#pragma unroll
    for (int r = 0; r < MOE_R; r++) {
        long row = g0 * MOE_R + r;
        rows[r] = row < H ? (const uint4 *)(m.down + e * m.down_stride + row * rb) : NULL;
        sc[r] = row < H && m.down_s ? m.down_s + e * m.down_sstride + row * sb : NULL;
    }
    float acc[MOE_R][1];
#pragma unroll
    for (int r = 0; r < MOE_R; r++)
        acc[r][0] = 0.f;
    kcu_rows_dot_any<MOE_R, 1>(m.type, m.st, rows, sc, m.C_dn, m.cpg_dn,
                               a.h + ((long)t * a.S + j) * m.I, 0, 1, lane, tpr, acc);
#pragma unroll
    for (int r = 0; r < MOE_R; r++) {
        float v = kcu_group_sum(acc[r][0], tpr);
        if (lane == 0 && rows[r])
            a.D[((long)t * a.S + j) * H + g0 * MOE_R + r] = v;
    }
    /* the last of the S blocks of this (token, row block) combines */
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned *c = a.cnt + t * gridDim.x + blockIdx.x;
        last = atomicAdd(c, 1u) == (unsigned)a.S - 1;
        if (last)
            *c = 0; /* ready for the next call */
    }
    __syncthreads();
    if (!last)
        return;
    __threadfence();
    if (blockIdx.x == 0 && a.idx && threadIdx.x < a.k) {
        a.idx[t * a.k + threadIdx.x] = sidx[threadIdx.x];
        a.wt[t * a.k + threadIdx.x] = swt[threadIdx.x];
    }
    /* both sets use the same lane groups here (the host sets it), so the same rows */
    long rpb = (long)(blockDim.x / a.r.tpr_dn) * MOE_R;
    float sg = a.has_shared ? 1.0f / (1.0f + expf(-a.shared_gate[t])) : 0.f;
    for (long row = blockIdx.x * rpb + threadIdx.x; row < (blockIdx.x + 1) * rpb && row < H;
         row += blockDim.x) {
        const float *d = a.D + (long)t * a.S * H + row;
        float y = 0.f;
        for (int q = 0; q < a.k; q++)
            y = fmaf(swt[q], __ldcg(d + (long)q * H), y);
        if (a.has_shared)
            y = fmaf(sg, __ldcg(d + (long)a.k * H), y);
        a.y[t * H + row] = y;
    }
}

/* ------------------------------------------------------------------ host */

static unsigned *g_cnt; /* completion counters, zero between calls */
static size_t g_cnt_count;

static int counters(size_t count, unsigned **out)
{
    if (count > g_cnt_count) {
        CUDA_TRY(cudaDeviceSynchronize());
        CUDA_TRY(cudaFree(g_cnt));
        g_cnt = NULL;
        g_cnt_count = 0;
        struct kcu_buf b;
        int rc = kcu_alloc(&b, count * sizeof(unsigned), "moe counters");
        if (rc < 0)
            return rc;
        /* the memset runs on the legacy stream, which the backend's non-blocking stream does
         * not wait for: the counters must be zero before k_moe_down runs */
        cudaError_t e = cudaMemset(b.ptr, 0, count * sizeof(unsigned));
        if (e == cudaSuccess)
            e = cudaDeviceSynchronize();
        if (e != cudaSuccess) {
            kcu_free(&b);
            return err_set(ERR_IO, "cuda moe: zeroing %zu counters: %s", count,
                           cudaGetErrorName(e));
        }
        g_cnt = (unsigned *)b.ptr;
        g_cnt_count = count;
        kcu_epoch_bump(); /* CUDA graphs that captured the old pointer are stale */
    }
    *out = g_cnt;
    return 0;
}

int kcu_matmul_blocks(const struct kcu_weight *w, const float *x, long T, float *y,
                      cudaStream_t s);                /* linear.cu */
int kcu_moe_prefill_ok(const struct kcu_experts *ex); /* moe_prefill.cu */
int kcu_moe_prefill(const struct kcu_moe *m, cudaStream_t s);

extern "C" int kcu_moe(const struct kcu_moe *m, void *stream)
{
    const struct kcu_experts *ex = m ? m->experts : NULL;
    if (!ex || !ex->buf.ptr)
        return err_set(ERR_INVAL, "cuda moe: experts not uploaded");
    int rc = route_check(m->T, ex->n_experts, m->k);
    if (rc < 0)
        return rc;
    if (m->T == 0)
        return 0;
    if (!m->x || !m->y || (!m->router && !m->logits) || (m->shared && !m->shared_gate) ||
        (!m->idx != !m->wt))
        return err_set(ERR_INVAL, "cuda moe: missing input or output pointer");
    long H = ex->hidden, I = ex->inter, T = m->T;
    int E = ex->n_experts, S = m->k + (m->shared ? 1 : 0);
    struct moe_args a;
    memset(&a, 0, sizeof a);
    a.r = moe_set_of(ex);
    if (m->shared) {
        const struct kcu_experts *sh = m->shared;
        if (!sh->buf.ptr || sh->n_experts != 1 || sh->hidden != H || sh->inter != I)
            return err_set(ERR_UNSUPPORTED,
                           "cuda moe: shared expert [%ld x %ld] must match the "
                           "routed experts' [%ld x %ld]",
                           sh->inter, sh->hidden, I, H);
        a.s = moe_set_of(sh);
        a.has_shared = 1;
        /* the combining block covers the routed geometry's rows; keep both the same */
        a.s.tpr_dn = a.r.tpr_dn;
    } else {
        a.s = a.r;
    }
    if (m->router && (m->router->n != E || m->router->k != H))
        return err_set(ERR_INVAL, "cuda moe: router [%ld, %ld], want [%d, %ld]", m->router->n,
                       m->router->k, E, H);
    a.E = E;
    a.k = m->k;
    a.S = S;
    a.shared_gate = m->shared_gate;
    cudaStream_t s = (cudaStream_t)stream;
    /* both paths load x as float4 */
    if (((uintptr_t)m->x & 15))
        return err_set(ERR_INVAL, "cuda moe: x must be 16-byte aligned");
    /* many tokens: group them by expert so each expert's weights are read once per 64 tokens */
    if (T >= MOE_PREFILL_MIN && kcu_moe_prefill_ok(ex))
        return kcu_moe_prefill(m, s);

    long tch = T < MOE_TOKENS ? T : MOE_TOKENS;
    /* enough blocks for the set with the fewest rows per block; the other skips extra rows */
    int rpb_gu = MOE_THREADS / (a.r.tpr_gu > a.s.tpr_gu ? a.r.tpr_gu : a.s.tpr_gu);
    long bx_gu = (I + rpb_gu - 1) / rpb_gu;
    long rpb_dn = (long)(MOE_THREADS / a.r.tpr_dn) * MOE_R;
    long bx_dn = (H + rpb_dn - 1) / rpb_dn;
    /* scratch: logits [tch][E] (router), h [tch][S][I], D [tch][S][H] */
    size_t nf = 0, t1, t2;
    if (ckd_mul_sz(&t1, (size_t)tch * S, (size_t)(I + H)) ||
        ckd_mul_sz(&t2, (size_t)tch, (size_t)E) || ckd_add_sz(&t2, t2, 64) ||
        ckd_add_sz(&nf, t1, t2 & ~(size_t)63))
        return err_set(ERR_NOMEM, "cuda moe: %ld tokens too many", T);
    void *scr;
    if ((rc = kcu_scratch(nf * sizeof(float), &scr)) < 0)
        return err_prefix(rc, "cuda moe");
    /* h and D start 16-byte aligned (the chunk dot products load float4) */
    float *lg = (float *)scr, *h = lg + (((size_t)tch * E + 63) & ~(size_t)63),
          *D = h + (size_t)tch * S * I;
    if ((rc = counters((size_t)tch * (size_t)bx_dn, &a.cnt)) < 0)
        return err_prefix(rc, "cuda moe");
    for (long t0 = 0; t0 < T; t0 += tch) {
        long nt = T - t0 < tch ? T - t0 : tch;
        if (m->router) {
            if ((rc = kcu_matmul_blocks(m->router, m->x + t0 * H, nt, lg, s)) < 0)
                return err_prefix(rc, "cuda moe router");
            a.logits = lg;
        } else {
            a.logits = m->logits + t0 * E;
        }
        a.x = m->x + t0 * H;
        a.y = m->y + t0 * H;
        a.shared_gate = m->shared ? m->shared_gate + t0 : NULL;
        a.h = h;
        a.D = D;
        a.idx = m->idx ? m->idx + t0 * m->k : NULL;
        a.wt = m->wt ? m->wt + t0 * m->k : NULL;
        dim3 ggu((unsigned)bx_gu, (unsigned)(nt * S)), gdn((unsigned)bx_dn, (unsigned)(nt * S));
        k_moe_gate_up<<<ggu, MOE_THREADS, 0, s>>>(a);
        CUDA_TRY(cudaGetLastError());
        k_moe_down<<<gdn, MOE_THREADS, 0, s>>>(a);
        CUDA_TRY(cudaGetLastError());
    }
    return 0;
}
