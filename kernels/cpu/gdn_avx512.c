/*
 * gdn_avx512.c - AVX-512 building blocks of the delta rule (gdn_simd.h): a 6 x 64 register-tiled
 * GEMM (24 zmm accumulators fed by broadcast loads of a and row loads of b), the triangular
 * inverse, and the column-blocked recurrence (a 64-column slice of the state stays in L1 across
 * a group of tokens).
 */
#include "kernels/cpu/gdn_simd.h"
#include "kernels/cpu/vexp.h"

#include <immintrin.h>
#include <math.h>

#define AI static inline __attribute__((always_inline))

#define MR 6  /* rows of a tile */
#define NV 4  /* zmm vectors (of 16 columns) of a tile */
#define RW 64 /* columns of a recurrence block */

AI __mmask16 tmask(long left)
{
    return left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

/* One tile: mr rows x nv vectors, the last vector masked by ml. Instantiated with constant mr and
 * nv, so acc stays in registers. */
AI void tile(int mr, int nv, float *c, long ldc, const float *a, long ars, long acs, const float *b,
             long ldb, long k, float beta, __mmask16 ml)
{
    __m512 acc[MR][NV];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) {
            __mmask16 m = v == nv - 1 ? ml : (__mmask16)0xffff;
            acc[r][v] = beta == 0 ? _mm512_setzero_ps()
                                  : _mm512_mul_ps(_mm512_set1_ps(beta),
                                                  _mm512_maskz_loadu_ps(m, c + r * ldc + 16 * v));
        }
    for (long p = 0; p < k; p++) {
        __m512 bv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            bv[v] = v == nv - 1 ? _mm512_maskz_loadu_ps(ml, b + p * ldb + 16 * v)
                                : _mm512_loadu_ps(b + p * ldb + 16 * v);
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            __m512 av = _mm512_set1_ps(a[r * ars + p * acs]);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) {
            if (v == nv - 1)
                _mm512_mask_storeu_ps(c + r * ldc + 16 * v, ml, acc[r][v]);
            else
                _mm512_storeu_ps(c + r * ldc + 16 * v, acc[r][v]);
        }
}

#define TILE_NV(MRV)                                                                               \
    switch (nv) {                                                                                  \
    case 1: tile(MRV, 1, c, ldc, a, ars, acs, b, ldb, k, beta, ml); break;                         \
    case 2: tile(MRV, 2, c, ldc, a, ars, acs, b, ldb, k, beta, ml); break;                         \
    case 3: tile(MRV, 3, c, ldc, a, ars, acs, b, ldb, k, beta, ml); break;                         \
    default: tile(MRV, 4, c, ldc, a, ars, acs, b, ldb, k, beta, ml); break;                        \
    }

static void tile_any(int mr, int nv, float *c, long ldc, const float *a, long ars, long acs,
                     const float *b, long ldb, long k, float beta, __mmask16 ml)
{
    switch (mr) {
    case 1: TILE_NV(1) break;
    case 2: TILE_NV(2) break;
    case 3: TILE_NV(3) break;
    case 4: TILE_NV(4) break;
    case 5: TILE_NV(5) break;
    default: TILE_NV(6) break;
    }
}

static void gemm(float *c, long ldc, const float *a, long lda, const float *b, long ldb, long m,
                 long n, long k, float beta, int tri)
{
    /* column panels outer: the panel of b (k x 64) stays in L1 across the row tiles */
    long ars = tri & GDN_A_T ? 1 : lda, acs = tri & GDN_A_T ? lda : 1;
    tri &= ~GDN_A_T;
    for (long n0 = 0; n0 < n; n0 += 16 * NV)
        for (long r0 = 0; r0 < m; r0 += MR) {
            int mr = m - r0 < MR ? (int)(m - r0) : MR;
            long nn = n - n0 < 16 * NV ? n - n0 : 16 * NV, kk = k;
            if (tri == GDN_TRI_N) {
                long lim = r0 + mr - n0;
                if (lim <= 0)
                    continue;
                nn = nn < lim ? nn : lim;
            } else if (tri == GDN_TRI_K) {
                kk = k < r0 + mr ? k : r0 + mr;
            }
            int nv = (int)((nn + 15) / 16);
            tile_any(mr, nv, c + r0 * ldc + n0, ldc, a + r0 * ars, ars, acs, b + n0, ldb, kk, beta,
                     tmask(nn - 16 * (nv - 1)));
        }
}

AI void inv_rows(int nv, float *t, const float *l, int n, long ld)
{
    __mmask16 m[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++)
        m[v] = tmask(n - 16 * v);
    for (int i = 0; i < n; i++) {
        /* two accumulator sets (even and odd j) halve the FMA latency chain */
        __m512 acc[NV], acc2[NV];
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) {
            acc[v] = _mm512_maskz_mov_ps((__mmask16)(v == i / 16 ? 1u << (i % 16) : 0),
                                         _mm512_set1_ps(1.0f));
            acc2[v] = _mm512_setzero_ps();
        }
        /* row j of t is zero past column j: rows j < 16 (s + 1) need s + 1 vectors */
        for (int j0 = 0; j0 < i; j0 += 16) {
            int jv = j0 / 16 + 1, j1 = i < j0 + 16 ? i : j0 + 16, j = j0;
            for (; j + 1 < j1; j += 2) {
                __m512 s0 = _mm512_set1_ps(-l[i * ld + j]), s1 = _mm512_set1_ps(-l[i * ld + j + 1]);
#pragma GCC unroll 8
                for (int v = 0; v < nv; v++)
                    if (v < jv) {
                        acc[v] = _mm512_fmadd_ps(
                            s0, _mm512_maskz_loadu_ps(m[v], t + j * ld + 16 * v), acc[v]);
                        acc2[v] = _mm512_fmadd_ps(
                            s1, _mm512_maskz_loadu_ps(m[v], t + (j + 1) * ld + 16 * v), acc2[v]);
                    }
            }
            if (j < j1) {
                __m512 s0 = _mm512_set1_ps(-l[i * ld + j]);
#pragma GCC unroll 8
                for (int v = 0; v < nv; v++)
                    if (v < jv)
                        acc[v] = _mm512_fmadd_ps(
                            s0, _mm512_maskz_loadu_ps(m[v], t + j * ld + 16 * v), acc[v]);
            }
        }
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            _mm512_mask_storeu_ps(t + i * ld + 16 * v, m[v], _mm512_add_ps(acc[v], acc2[v]));
    }
}

static void tri_inv(float *t, const float *l, int n, long ld)
{
    switch ((n + 15) / 16) {
    case 1: inv_rows(1, t, l, n, ld); break;
    case 2: inv_rows(2, t, l, n, ld); break;
    case 3: inv_rows(3, t, l, n, ld); break;
    default: inv_rows(4, t, l, n, ld); break;
    }
}

/* The recurrence on one block of nv vectors (masks m) of the state's columns for n tokens:
 * kv = S^T k_t is carried from the previous token's pass (the decay is applied to it, not to S,
 * before the correction), so each token is one read and one write of the block. */
AI void rec_block(int nv, const __mmask16 *m, float *S, long dk, long dv, const float *q,
                  const float *k, long n, const float *v, long ld_v, const float *eg,
                  const float *bt, float *o, long ld_o)
{
    __m512 kv[NV], u[NV], acc[NV], kvn[NV];
#pragma GCC unroll 8
    for (int x = 0; x < nv; x++)
        kv[x] = _mm512_setzero_ps();
    for (long i = 0; i < dk; i++) {
        __m512 kb = _mm512_set1_ps(k[i]);
#pragma GCC unroll 8
        for (int x = 0; x < nv; x++)
            kv[x] = _mm512_fmadd_ps(kb, _mm512_maskz_loadu_ps(m[x], S + i * dv + 16 * x), kv[x]);
    }
    for (long t = 0; t < n; t++) {
        const float *qt = q + t * dk, *kt = k + t * dk, *kn = kt + dk;
        __m512 egv = _mm512_set1_ps(eg[t]), btv = _mm512_set1_ps(bt[t]);
#pragma GCC unroll 8
        for (int x = 0; x < nv; x++) {
            __m512 vv = _mm512_maskz_loadu_ps(m[x], v + t * ld_v + 16 * x);
            u[x] = _mm512_mul_ps(btv, _mm512_fnmadd_ps(egv, kv[x], vv));
            acc[x] = _mm512_setzero_ps();
            kvn[x] = _mm512_setzero_ps();
        }
        if (t + 1 < n) {
            for (long i = 0; i < dk; i++) {
                __m512 kb = _mm512_set1_ps(kt[i]), qb = _mm512_set1_ps(qt[i]);
                __m512 nb = _mm512_set1_ps(kn[i]);
                float *si = S + i * dv;
#pragma GCC unroll 8
                for (int x = 0; x < nv; x++) {
                    __m512 s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m[x], si + 16 * x), egv,
                                               _mm512_mul_ps(kb, u[x]));
                    _mm512_mask_storeu_ps(si + 16 * x, m[x], s);
                    acc[x] = _mm512_fmadd_ps(qb, s, acc[x]);
                    kvn[x] = _mm512_fmadd_ps(nb, s, kvn[x]);
                }
            }
        } else {
            for (long i = 0; i < dk; i++) {
                __m512 kb = _mm512_set1_ps(kt[i]), qb = _mm512_set1_ps(qt[i]);
                float *si = S + i * dv;
#pragma GCC unroll 8
                for (int x = 0; x < nv; x++) {
                    __m512 s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m[x], si + 16 * x), egv,
                                               _mm512_mul_ps(kb, u[x]));
                    _mm512_mask_storeu_ps(si + 16 * x, m[x], s);
                    acc[x] = _mm512_fmadd_ps(qb, s, acc[x]);
                }
            }
        }
#pragma GCC unroll 8
        for (int x = 0; x < nv; x++) {
            _mm512_mask_storeu_ps(o + t * ld_o + 16 * x, m[x], acc[x]);
            kv[x] = kvn[x];
        }
    }
}

static void rec(float *S, long dk, long dv, const float *q, const float *k, long n, const float *v,
                long ld_v, const float *eg, const float *bt, float *o, long ld_o)
{
    for (long j0 = 0; j0 < dv; j0 += RW) {
        long w = dv - j0 < RW ? dv - j0 : RW;
        __mmask16 m[NV];
#pragma GCC unroll 8
        for (int x = 0; x < NV; x++)
            m[x] = tmask(w - 16 * x);
        switch ((w + 15) / 16) {
        case 1: rec_block(1, m, S + j0, dk, dv, q, k, n, v + j0, ld_v, eg, bt, o + j0, ld_o); break;
        case 2: rec_block(2, m, S + j0, dk, dv, q, k, n, v + j0, ld_v, eg, bt, o + j0, ld_o); break;
        case 3: rec_block(3, m, S + j0, dk, dv, q, k, n, v + j0, ld_v, eg, bt, o + j0, ld_o); break;
        default:
            rec_block(4, m, S + j0, dk, dv, q, k, n, v + j0, ld_v, eg, bt, o + j0, ld_o);
            break;
        }
    }
}

static void norm(float *dst, const float *src, long n, float mul)
{
    __m512 ss = _mm512_setzero_ps();
    for (long i = 0; i < n; i += 16) {
        __m512 x = _mm512_maskz_loadu_ps(tmask(n - i), src + i);
        ss = _mm512_fmadd_ps(x, x, ss);
    }
    __m512 inv = _mm512_set1_ps(mul / sqrtf(_mm512_reduce_add_ps(ss) + 1e-6f));
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = tmask(n - i);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + i), inv));
    }
}

#define vexp kv_exp512 /* vexp.h */

static void softmax_cols(float *s, long ld, long nb, long nr, float *m, float *l, float *corr)
{
    for (long r0 = 0; r0 < nr; r0 += 16) {
        __mmask16 k = tmask(nr - r0);
        __m512 mo = _mm512_maskz_loadu_ps(k, m + r0), mn = mo;
        for (long c = 0; c < nb; c++)
            mn = _mm512_max_ps(mn, _mm512_maskz_loadu_ps(k, s + c * ld + r0));
        __m512 cr = vexp(_mm512_sub_ps(mo, mn)), sum = _mm512_setzero_ps();
        for (long c = 0; c < nb; c++) {
            __m512 e = vexp(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + c * ld + r0), mn));
            _mm512_mask_storeu_ps(s + c * ld + r0, k, e);
            sum = _mm512_add_ps(sum, e);
        }
        _mm512_mask_storeu_ps(m + r0, k, mn);
        _mm512_mask_storeu_ps(corr + r0, k, cr);
        _mm512_mask_storeu_ps(l + r0, k,
                              _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, l + r0), cr, sum));
    }
}

const struct gdn_ops gdn_ops_avx512 = { gemm, tri_inv, rec, norm, softmax_cols };
