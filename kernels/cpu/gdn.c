/*
 * gdn.c - Gated DeltaNet: the causal depthwise conv (+ SiLU), the recurrent delta rule (decode,
 * and the reference) and its chunked prefill form (model-spec.md 3.6).
 *
 * Both delta-rule forms split the value heads over threads (each head's state is independent),
 * so results do not depend on the thread count. The scalar ISA runs the plain formulas with a
 * double-precision accumulation where it matters; the SIMD ISAs use kern_vec rows of dv.
 *
 * State layout: [n_v][dk][dv] fp32, S[i][j] = key dim i, value dim j (the [k][v] layout HF and
 * the chunked form both use, so prefill and decode hand the state over unchanged).
 */
#include "kernels/cpu/kern_cpu.h"

#include "common/err.h"
#include "common/pool.h"

#include <math.h>
#include <string.h>

int kern_conv1d_silu(float *y, const float *x, long ldx, float *state, const float *w, long T,
                     long C, int kw)
{
    if (kw < 1 || kw > 16 || C < 1 || T < 0 || ldx < C)
        return err_set(ERR_INVAL, "conv1d: kernel %d, %ld channels, row stride %ld", kw, C, ldx);
    int ns = kw - 1;
    /* input at relative position p (< 0: from the state, which holds positions -ns .. -1) */
#define IN(p, c) ((p) >= 0 ? x[(p)*ldx + (c)] : state[(c)*ns + ns + (p)])
    for (long t = 0; t < T; t++) {
        float *yt = y + t * C;
        if (t >= ns) { /* the whole window is in x: the common case, no branches */
            const float *xw = x + (t - ns) * ldx;
            for (long c = 0; c < C; c++) {
                const float *wc = w + c * kw;
                float acc = 0;
                for (int j = 0; j < kw; j++)
                    acc += wc[j] * xw[j * ldx + c];
                yt[c] = kern_silu1(acc);
            }
            continue;
        }
        for (long c = 0; c < C; c++) {
            const float *wc = w + c * kw;
            float acc = 0;
            for (int j = 0; j < kw; j++)
                acc += wc[j] * IN(t - ns + j, c);
            yt[c] = kern_silu1(acc);
        }
    }
    /* the new state: the last ns inputs; entry j reads old entry T + j >= j, so in place is safe */
    for (long c = 0; c < C; c++)
        for (int j = 0; j < ns; j++)
            state[c * ns + j] = IN(T - ns + j, c);
#undef IN
    return 0;
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
    int chunk;
};

/* ---- recurrent */

static void recurrent_head(const struct kern_gdn *a, const struct kern_vec *vo, int scalar, int h,
                           float *scr)
{
    long dk = a->dk, dv = a->dv;
    int kh = h / (a->n_v / a->n_k);
    float *S = a->state + (size_t)h * dk * dv;
    float *q = scr, *k = q + dk, *u = k + dk, *kv = u + dv;
    float qmul = 1.0f / sqrtf((float)dk);
    for (long t = 0; t < a->T; t++) {
        load_norm(q, a->q + t * a->ld_qk + kh * dk, dk, qmul);
        load_norm(k, a->k + t * a->ld_qk + kh * dk, dk, 1.0f);
        const float *v = a->v + t * a->ld_v + h * dv;
        float eg = expf(a->g[t * a->n_v + h]), beta = a->beta[t * a->n_v + h];
        float *o = a->out + (t * a->n_v + h) * dv;
        if (scalar) {
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
            continue;
        }
        /* two passes over S by rows of dv: decay + S^T k, then update + S^T q */
        memset(kv, 0, (size_t)dv * sizeof(float));
        for (long i = 0; i < dk; i++) {
            vo->scale(S + i * dv, eg, dv);
            vo->axpy(kv, k[i], S + i * dv, dv);
        }
        for (long j = 0; j < dv; j++)
            u[j] = beta * (v[j] - kv[j]);
        memset(o, 0, (size_t)dv * sizeof(float));
        for (long i = 0; i < dk; i++) {
            vo->axpy(S + i * dv, k[i], u, dv);
            vo->axpy(o, q[i], S + i * dv, dv);
        }
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

static void gdn_part(void *ctx, int tid, int nth)
{
    struct gdn_job *j = ctx;
    long lo, hi;
    pool_range(j->a->n_v, tid, nth, &lo, &hi);
    for (long h = lo; h < hi; h++) {
        if (j->chunk)
            chunk_head(j->a, j->v, j->chunk, (int)h, j->c->scratch[tid]);
        else
            recurrent_head(j->a, j->v, j->c->isa == KERN_ISA_SCALAR, (int)h, j->c->scratch[tid]);
    }
}

static int gdn_run(struct kern_cpu *c, const struct kern_gdn *a, int chunk)
{
    int rc = gdn_check(a);
    if (rc < 0)
        return rc;
    if (a->T == 0)
        return 0;
    size_t C = (size_t)chunk, dk = (size_t)a->dk, dv = (size_t)a->dv;
    size_t need = chunk ? (3 * C * dk + 2 * C * dv + 2 * C * C + 2 * C + 16) * sizeof(float)
                        : (2 * dk + 2 * dv + 16) * sizeof(float);
    if ((rc = kern_cpu_reserve(c, need)) < 0)
        return rc;
    struct gdn_job j = { a, c, kern_vec_for(c->isa), chunk };
    if (c->nthreads == 1 || a->n_v == 1)
        gdn_part(&j, 0, 1);
    else
        pool_run(c->pool, gdn_part, &j);
    return 0;
}

int kern_gdn_recurrent(struct kern_cpu *c, const struct kern_gdn *a) { return gdn_run(c, a, 0); }

int kern_gdn_chunked(struct kern_cpu *c, const struct kern_gdn *a, int chunk)
{
    if (chunk < 1 || chunk > 64)
        return err_set(ERR_INVAL, "deltanet: chunk %d (1..64)", chunk);
    return gdn_run(c, a, chunk);
}
