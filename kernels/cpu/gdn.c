/*
 * gdn.c - Gated DeltaNet: the causal depthwise conv (+ SiLU), the recurrent delta rule (decode,
 * and the reference) and its chunked prefill form (model-spec.md 3.6).
 *
 * Both delta-rule forms split the value heads over threads (each head's state is independent),
 * so results do not depend on the thread count. The scalar ISA runs the plain formulas with a
 * double-precision accumulation where it matters. The SIMD ISAs use the blocks of gdn_simd.h:
 * the recurrence walks the state by column blocks (every column of S evolves independently) so
 * a block stays in L1 across tokens and each token is one pass over it; the chunked form is a
 * handful of register-tiled GEMMs per chunk (see chunk_heads_simd).
 *
 * State layout: [n_v][dk][dv] fp32, S[i][j] = key dim i, value dim j (the [k][v] layout HF and
 * the chunked form both use, so prefill and decode hand the state over unchanged).
 */
#include "kernels/cpu/kern_cpu.h"
#include "kernels/cpu/gdn_simd.h"

#include "common/err.h"
#include "common/pool.h"

#include <math.h>
#include <string.h>

#define CONV_CB 256 /* channels per block of conv_part */

struct conv_job {
    const struct kern_vec *v;
    float *y;
    const float *x, *w;
    float *state;
    long ldx, T, C;
    int kw;
};

/* The conv of kern_conv1d_silu for channels [c0, c1), then v's SiLU over each token's piece of
 * row (the pre-activations are parked in y: the same sums as before, a row piece at a time for
 * the vector e^x). Channels are independent, so any split gives the same values. */
static void conv_part(void *ctx, long c0, long c1)
{
    const struct conv_job *j = ctx;
    const float *x = j->x, *w = j->w;
    float *state = j->state;
    long ldx = j->ldx, C = j->C;
    int kw = j->kw, ns = kw - 1;
    /* input at relative position p (< 0: from the state, which holds positions -ns .. -1) */
#define IN(p, c) ((p) >= 0 ? x[(p)*ldx + (c)] : state[(c)*ns + ns + (p)])
    /* CONV_CB channels at a time with their weights transposed (wt[q][c]), so that the common
     * case is v's conv_row over contiguous channels: per output the same sum, in the same order
     * and with the same roundings, as the state path's acc += w[c][q] x[q][c] */
    float wt[16 * CONV_CB];
    for (long cb = c0; cb < c1; cb += CONV_CB) {
        long nc = c1 - cb < CONV_CB ? c1 - cb : CONV_CB;
        for (int q = 0; q < kw; q++)
            for (long c = 0; c < nc; c++)
                wt[q * CONV_CB + c] = w[(cb + c) * kw + q];
        for (long t = 0; t < j->T; t++) {
            float *yt = j->y + t * C + cb;
            if (t >= ns) { /* the whole window is in x: the common case, no branches */
                j->v->conv_row(yt, x + (t - ns) * ldx + cb, ldx, wt, CONV_CB, kw, nc);
            } else {
                for (long c = 0; c < nc; c++) {
                    float acc = 0;
                    for (int q = 0; q < kw; q++)
                        acc += wt[q * CONV_CB + c] * IN(t - ns + q, cb + c);
                    yt[c] = acc;
                }
            }
            j->v->silu(yt, yt, nc);
        }
    }
    /* the new state: the last ns inputs; entry q reads old entry T + q >= q, so in place is safe */
    long T = j->T;
    for (long c = c0; c < c1; c++)
        for (int q = 0; q < ns; q++)
            state[c * ns + q] = IN(T - ns + q, c);
#undef IN
}

static int conv1d_silu(struct kern_cpu *c, const struct kern_vec *v, float *y, const float *x,
                       long ldx, float *state, const float *w, long T, long C, int kw)
{
    if (kw < 1 || kw > 16 || C < 1 || T < 0 || ldx < C)
        return err_set(ERR_INVAL, "conv1d: kernel %d, %ld channels, row stride %ld", kw, C, ldx);
    struct conv_job j = { v, y, x, w, state, ldx, T, C, kw };
    if (!c) {
        conv_part(&j, 0, C);
        return 0;
    }
    /* pieces of >= 16 K outputs, whole cache lines of y's rows */
    long grain = T > 0 && T < 1024 ? (16384 / T + 15) & ~15L : 16;
    kern_cpu_par(c, C, grain, conv_part, &j);
    return 0;
}

int kern_conv1d_silu(float *y, const float *x, long ldx, float *state, const float *w, long T,
                     long C, int kw)
{
    return conv1d_silu(NULL, &kern_vec_scalar, y, x, ldx, state, w, T, C, kw);
}

int kern_conv1d_silu_on(struct kern_cpu *c, float *y, const float *x, long ldx, float *state,
                        const float *w, long T, long C, int kw)
{
    return conv1d_silu(c, kern_vec_for(c->isa), y, x, ldx, state, w, T, C, kw);
}

static int gdn_check(const struct kern_gdn *a)
{
    if (a->n_k < 1 || a->n_v < 1 || a->n_v % a->n_k || a->dk < 1 || a->dv < 1 || a->T < 0)
        return err_set(ERR_INVAL, "deltanet: %d key heads, %d value heads, dk %d, dv %d", a->n_k,
                       a->n_v, a->dk, a->dv);
    if (a->ld_qk < (long)a->n_k * a->dk || a->ld_v < (long)a->n_v * a->dv)
        return err_set(ERR_INVAL, "deltanet: row strides %ld/%ld too small", a->ld_qk, a->ld_v);
    return 0;
}

/* q or k of token t for value head h, L2-normalised (eps 1e-6 inside the root) times mul. */
/* Rows of one head are a whole token row apart (kilobytes), too far for the hardware prefetcher:
 * the SIMD paths ask for the row `ahead` tokens on while working on this one. */
#define GDN_AHEAD 4
static void prefetch_row(const float *p, long n)
{
    for (long i = 0; i < n; i += 16)
        __builtin_prefetch(p + i);
}

static void load_norm(float *dst, const float *src, long n, float mul)
{
    float ss = 0;
    for (long i = 0; i < n; i++)
        ss += src[i] * src[i];
    float inv = mul / sqrtf(ss + 1e-6f);
    for (long i = 0; i < n; i++)
        dst[i] = src[i] * inv;
}

struct gdn_job {
    const struct kern_gdn *a;
    struct kern_cpu *c;
    const struct kern_vec *v;
    const struct gdn_ops *op; /* NULL: the scalar ISA's plain formulas */
    int chunk;
};

/* ---- recurrent */

static void recurrent_head(const struct kern_gdn *a, int h, float *scr)
{
    long dk = a->dk, dv = a->dv;
    int kh = h / (a->n_v / a->n_k);
    float *S = a->state + (size_t)h * dk * dv;
    float *q = scr, *k = q + dk, *u = k + dk;
    float qmul = 1.0f / sqrtf((float)dk);
    for (long t = 0; t < a->T; t++) {
        load_norm(q, a->q + t * a->ld_qk + kh * dk, dk, qmul);
        load_norm(k, a->k + t * a->ld_qk + kh * dk, dk, 1.0f);
        const float *v = a->v + t * a->ld_v + h * dv;
        float eg = expf(a->g[t * a->n_v + h]), beta = a->beta[t * a->n_v + h];
        float *o = a->out + (t * a->n_v + h) * dv;
        /* the reference, literally: decay, predict, correct, read out */
        for (long i = 0; i < dk * dv; i++)
            S[i] *= eg;
        for (long j = 0; j < dv; j++) {
            double s = 0;
            for (long i = 0; i < dk; i++)
                s += (double)S[i * dv + j] * k[i];
            u[j] = beta * (v[j] - (float)s);
        }
        for (long i = 0; i < dk; i++)
            for (long j = 0; j < dv; j++)
                S[i * dv + j] += k[i] * u[j];
        for (long j = 0; j < dv; j++) {
            double s = 0;
            for (long i = 0; i < dk; i++)
                s += (double)S[i * dv + j] * q[i];
            o[j] = (float)s;
        }
    }
}

/* Tokens per group of the SIMD recurrence (q and k normalised for the group first). */
#define REC_GROUP 64

static void recurrent_head_simd(const struct kern_gdn *a, const struct gdn_ops *op, int h,
                                float *scr)
{
    long dk = a->dk, dv = a->dv;
    int kh = h / (a->n_v / a->n_k);
    float *S = a->state + (size_t)h * dk * dv;
    float *Q = scr, *K = Q + REC_GROUP * dk, *eg = K + REC_GROUP * dk, *bt = eg + REC_GROUP;
    float qmul = 1.0f / sqrtf((float)dk);
    for (long t0 = 0; t0 < a->T; t0 += REC_GROUP) {
        long n = a->T - t0 < REC_GROUP ? a->T - t0 : REC_GROUP;
        for (long i = 0; i < n; i++) {
            long t = t0 + i;
            if (i + GDN_AHEAD < n) {
                prefetch_row(a->q + (t + GDN_AHEAD) * a->ld_qk + kh * dk, dk);
                prefetch_row(a->k + (t + GDN_AHEAD) * a->ld_qk + kh * dk, dk);
            }
            op->norm(Q + i * dk, a->q + t * a->ld_qk + kh * dk, dk, qmul);
            op->norm(K + i * dk, a->k + t * a->ld_qk + kh * dk, dk, 1.0f);
            eg[i] = expf(a->g[t * a->n_v + h]);
            bt[i] = a->beta[t * a->n_v + h];
        }
        op->rec(S, dk, dv, Q, K, n, a->v + t0 * a->ld_v + h * dv, a->ld_v, eg, bt,
                a->out + (t0 * a->n_v + h) * dv, (long)a->n_v * dv);
    }
}

/* ---- chunked (HF torch_chunk_gated_delta_rule, solved by forward substitution) */

static void chunk_head(const struct kern_gdn *a, const struct kern_vec *vo, int C, int h,
                       float *scr)
{
    long dk = a->dk, dv = a->dv;
    int kh = h / (a->n_v / a->n_k);
    float *S = a->state + (size_t)h * dk * dv;
    float qmul = 1.0f / sqrtf((float)dk);
    /* scratch: Q, K, W [C][dk]; U, Vn [C][dv]; A, L [C][C]; gam, beta [C]; tmp [dv] */
    float *Q = scr, *K = Q + C * dk, *W = K + C * dk, *U = W + C * dk, *Vn = U + C * dv;
    float *A = Vn + C * dv, *L = A + C * C, *gam = L + C * C, *bt = gam + C;
    for (long c0 = 0; c0 < a->T; c0 += C) {
        int n = a->T - c0 < C ? (int)(a->T - c0) : C;
        float cum = 0;
        for (int i = 0; i < n; i++) {
            long t = c0 + i;
            load_norm(Q + i * dk, a->q + t * a->ld_qk + kh * dk, dk, qmul);
            load_norm(K + i * dk, a->k + t * a->ld_qk + kh * dk, dk, 1.0f);
            cum += a->g[t * a->n_v + h];
            gam[i] = cum;
            bt[i] = a->beta[t * a->n_v + h];
        }
        /* L[i][j] = beta_i (k_i . k_j) e^(gam_i - gam_j), j < i; A[i][j] = (q_i . k_j) e^(..), j <=
         * i */
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) {
                float d = expf(gam[i] - gam[j]);
                A[i * C + j] = vo->dot(Q + i * dk, K + j * dk, dk) * d;
                if (j < i)
                    L[i * C + j] = bt[i] * vo->dot(K + i * dk, K + j * dk, dk) * d;
            }
        /* (I + L) U = diag(beta) V and (I + L) W = diag(beta e^gam) K, row by row */
        for (int i = 0; i < n; i++) {
            const float *v = a->v + (c0 + i) * a->ld_v + h * dv;
            float *ui = U + i * dv, *wi = W + i * dk;
            for (long j = 0; j < dv; j++)
                ui[j] = bt[i] * v[j];
            float s = bt[i] * expf(gam[i]);
            for (long j = 0; j < dk; j++)
                wi[j] = s * K[i * dk + j];
            for (int j = 0; j < i; j++) {
                vo->axpy(ui, -L[i * C + j], U + j * dv, dv);
                vo->axpy(wi, -L[i * C + j], W + j * dk, dk);
            }
        }
        /* Vn = U - W S; O = e^gam (Q S) + A Vn */
        for (int i = 0; i < n; i++) {
            float *vn = Vn + i * dv;
            memcpy(vn, U + i * dv, (size_t)dv * sizeof(float));
            for (long kk = 0; kk < dk; kk++)
                vo->axpy(vn, -W[i * dk + kk], S + kk * dv, dv);
        }
        for (int i = 0; i < n; i++) {
            float *o = a->out + ((c0 + i) * a->n_v + h) * dv;
            float eg = expf(gam[i]);
            memset(o, 0, (size_t)dv * sizeof(float));
            for (long kk = 0; kk < dk; kk++)
                vo->axpy(o, Q[i * dk + kk] * eg, S + kk * dv, dv);
            for (int j = 0; j <= i; j++)
                vo->axpy(o, A[i * C + j], Vn + j * dv, dv);
        }
        /* S = S e^gam_last + sum_i (k_i e^(gam_last - gam_i)) Vn_i^T */
        float gl = gam[n - 1], el = expf(gl);
        for (int i = 0; i < n; i++)
            bt[i] = expf(gl - gam[i]); /* beta is no longer needed: reuse as the decay */
        for (long kk = 0; kk < dk; kk++) {
            float *sr = S + kk * dv;
            vo->scale(sr, el, dv);
            for (int i = 0; i < n; i++)
                vo->axpy(sr, K[i * dk + kk] * bt[i], Vn + i * dv, dv);
        }
    }
}

/* The chunked form as GEMMs (the same algebra, with the triangular system solved through its
 * inverse so that applying it is a GEMM too). Per chunk of n tokens, gam the cumulative log decay:
 *   A = (Q K^T) e^(gam_i - gam_j) (j <= i),  L = beta_i (K K^T) e^(gam_i - gam_j) (j < i),
 *   T = (I + L)^-1,  R_i = beta_i (v_i - e^gam_i (K S)_i),  Vn = T R,
 *   O = diag(e^gam) Q S + A Vn,  S = e^gam_last S + K^T diag(e^(gam_last - gam)) Vn.
 * (T R equals U - W S of chunk_head: U = T beta V, W S = T beta e^gam K S.) Every factor is
 * <= 1 in size (gam <= 0 and decreasing), so no rescaling can overflow.
 *
 * Chunks outer, heads inner: the value heads of one key head (consecutive, so in one thread's
 * range) share the normalised Q, K, K^T and the raw Q K^T, K K^T of the chunk. A head's result
 * does not depend on which heads share with it, so the thread count still changes nothing. */
static void chunk_heads_simd(const struct kern_gdn *a, const struct gdn_ops *op,
                             const struct kern_vec *vo, int C, long h_lo, long h_hi, float *scr)
{
    long dk = a->dk, dv = a->dv, ldo = (long)a->n_v * dv;
    int ratio = a->n_v / a->n_k;
    float qmul = 1.0f / sqrtf((float)dk);
    /* scratch: per key head Q, K [C][dk], Kt [dk][C], QK, KK [C][C]; per value head A, L, T
     * [C][C], R, Vn [C][dv], gam, beta, decay [C] */
    float *Q = scr, *K = Q + C * dk, *Kt = K + C * dk, *QK = Kt + dk * C, *KK = QK + C * C;
    float *A = KK + C * C, *L = A + C * C, *Ti = L + C * C, *R = Ti + C * C, *Vn = R + C * dv;
    float *gam = Vn + C * dv, *bt = gam + C, *dec = bt + C;
    for (long c0 = 0; c0 < a->T; c0 += C) {
        int n = a->T - c0 < C ? (int)(a->T - c0) : C;
        int kh_have = -1;
        for (long h = h_lo; h < h_hi; h++) {
            int kh = (int)(h / ratio);
            if (kh != kh_have) {
                for (int i = 0; i < n; i++) {
                    long t = c0 + i;
                    if (i + GDN_AHEAD < n) {
                        prefetch_row(a->q + (t + GDN_AHEAD) * a->ld_qk + kh * dk, dk);
                        prefetch_row(a->k + (t + GDN_AHEAD) * a->ld_qk + kh * dk, dk);
                    }
                    op->norm(Q + i * dk, a->q + t * a->ld_qk + kh * dk, dk, qmul);
                    op->norm(K + i * dk, a->k + t * a->ld_qk + kh * dk, dk, 1.0f);
                }
                for (long kk = 0; kk < dk; kk++) /* K^T, sequential stores */
                    for (int i = 0; i < n; i++)
                        Kt[kk * C + i] = K[i * dk + kk];
                op->gemm(QK, C, Q, dk, Kt, C, n, n, dk, 0, GDN_TRI_N);
                op->gemm(KK, C, K, dk, Kt, C, n, n, dk, 0, GDN_TRI_N);
                kh_have = kh;
            }
            float *S = a->state + (size_t)h * dk * dv;
            float cum = 0;
            for (int i = 0; i < n; i++) {
                cum += a->g[(c0 + i) * a->n_v + h];
                gam[i] = cum;
                bt[i] = a->beta[(c0 + i) * a->n_v + h];
            }
            /* e^(gam_i - gam_j) = e^gam_i e^-gam_j when the chunk's decay spans less than
             * e^80 (both factors stay normal floats): n exps instead of n^2 / 2 */
            float gmin = 0, gmax = 0;
            for (int i = 0; i < n; i++) {
                gmin = gam[i] < gmin ? gam[i] : gmin;
                gmax = gam[i] > gmax ? gam[i] : gmax;
            }
            int split = gmin > -80.0f && gmax < 80.0f; /* g <= 0: gam falls, gmax is 0 */
            if (split)
                for (int i = 0; i < n; i++)
                    dec[i] = expf(-gam[i]);
            for (int i = 0; i < n; i++) {
                float bi = bt[i];
                if (split) { /* no calls in the loop, so it vectorises */
                    float ei = expf(gam[i]);
                    for (int j = 0; j <= i; j++) {
                        float d = ei * dec[j];
                        A[i * C + j] = QK[i * C + j] * d;
                        L[i * C + j] = KK[i * C + j] * bi * d; /* the diagonal is not read */
                    }
                } else {
                    for (int j = 0; j <= i; j++) {
                        float d = expf(gam[i] - gam[j]);
                        A[i * C + j] = QK[i * C + j] * d;
                        L[i * C + j] = KK[i * C + j] * bi * d;
                    }
                }
                for (int j = i + 1; j < n; j++)
                    A[i * C + j] = 0; /* the GEMMs read A's rows up to their tile's last row */
            }
            op->tri_inv(Ti, L, n, C);
            op->gemm(R, dv, K, dk, S, dv, n, dv, dk, 0, GDN_TRI_NONE);
            for (int i = 0; i < n; i++) {
                if (i + GDN_AHEAD < n)
                    prefetch_row(a->v + (c0 + i + GDN_AHEAD) * a->ld_v + h * dv, dv);
                vo->scale(R + i * dv, -bt[i] * expf(gam[i]), dv);
                vo->axpy(R + i * dv, bt[i], a->v + (c0 + i) * a->ld_v + h * dv, dv);
            }
            op->gemm(Vn, dv, Ti, C, R, dv, n, dv, n, 0, GDN_TRI_K);
            float *O = a->out + (c0 * a->n_v + h) * dv;
            op->gemm(O, ldo, Q, dk, S, dv, n, dv, dk, 0, GDN_TRI_NONE);
            float gl = gam[n - 1];
            for (int i = 0; i < n; i++) {
                vo->scale(O + i * ldo, expf(gam[i]), dv);
                dec[i] = expf(gl - gam[i]);
            }
            op->gemm(O, ldo, A, C, Vn, dv, n, dv, n, 1.0f, GDN_TRI_K);
            for (int i = 0; i < n; i++)
                vo->scale(Vn + i * dv, dec[i], dv);
            op->gemm(S, dv, Kt, C, Vn, dv, dk, dv, n, expf(gl), GDN_TRI_NONE);
        }
    }
}

static void gdn_part(void *ctx, int tid, int nth)
{
    struct gdn_job *j = ctx;
    long lo, hi;
    pool_range(j->a->n_v, tid, nth, &lo, &hi);
    float *scr = j->c->scratch[tid];
    if (j->op && j->chunk) {
        chunk_heads_simd(j->a, j->op, j->v, j->chunk, lo, hi, scr);
        return;
    }
    for (long h = lo; h < hi; h++) {
        if (!j->op && j->chunk)
            chunk_head(j->a, j->v, j->chunk, (int)h, scr);
        else if (!j->op)
            recurrent_head(j->a, (int)h, scr);
        else
            recurrent_head_simd(j->a, j->op, (int)h, scr);
    }
}

static int gdn_run(struct kern_cpu *c, const struct kern_gdn *a, int chunk)
{
    int rc = gdn_check(a);
    if (rc < 0)
        return rc;
    if (a->T == 0)
        return 0;
    /* floats; the sizes are bounded by gdn_check's int dims and chunk <= 64 */
    size_t C = (size_t)chunk, dk = (size_t)a->dk, dv = (size_t)a->dv, G = REC_GROUP;
    size_t need =
        chunk ? 3 * C * dk + 2 * C * dv + 5 * C * C + 3 * C + 16 : 2 * G * dk + 2 * G + 2 * dv + 16;
    if ((rc = kern_cpu_reserve(c, need * sizeof(float))) < 0)
        return rc;
    const struct gdn_ops *op = c->isa == KERN_ISA_AVX512 ? &gdn_ops_avx512
                               : c->isa == KERN_ISA_AVX2 ? &gdn_ops_avx2
                                                         : NULL;
    struct gdn_job j = { a, c, kern_vec_for(c->isa), op, chunk };
    kern_cpu_run(c, gdn_part, &j, a->n_v == 1);
    return 0;
}

int kern_gdn_recurrent(struct kern_cpu *c, const struct kern_gdn *a) { return gdn_run(c, a, 0); }

int kern_gdn_chunked(struct kern_cpu *c, const struct kern_gdn *a, int chunk)
{
    if (chunk < 1 || chunk > 64)
        return err_set(ERR_INVAL, "deltanet: chunk %d (1..64)", chunk);
    return gdn_run(c, a, chunk);
}
