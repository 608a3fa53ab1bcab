/*
 * gdn_avx2.c - AVX2 building blocks of the delta rule (gdn_simd.h): a 6 x 16 register-tiled
 * GEMM (12 ymm accumulators), the triangular inverse, and the column-blocked recurrence
 * (16-column slices of the state). Same structure as gdn_avx512.c with 8-float vectors.
 */
#include "kernels/cpu/gdn_simd.h"
#include "kernels/cpu/vexp.h"

#include <immintrin.h>
#include <math.h>

#define AI static inline __attribute__((always_inline))

#define MR 6 /* rows of a tile */
#define NV 2 /* ymm vectors (of 8 columns) of a tile */
#define RV 2 /* ymm vectors of a recurrence block */
#define IV 8 /* ymm vectors of a row of tri_inv (GDN_INV_MAX / 8) */

/* lanes < left on */
AI __m256i tmask(long left)
{
    long l = left < 0 ? 0 : left > 8 ? 8 : left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)l), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AI __m256 mload(const float *p, __m256i m) { return _mm256_maskload_ps(p, m); }

AI void tile(int mr, int nv, float *c, long ldc, const float *a, long ars, long acs, const float *b,
             long ldb, long k, float beta, __m256i ml)
{
    __m256 acc[MR][NV];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            acc[r][v] = beta == 0
                            ? _mm256_setzero_ps()
                            : _mm256_mul_ps(_mm256_set1_ps(beta),
                                            v == nv - 1 ? mload(c + r * ldc + 8 * v, ml)
                                                        : _mm256_loadu_ps(c + r * ldc + 8 * v));
    for (long p = 0; p < k; p++) {
        __m256 bv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            bv[v] =
                v == nv - 1 ? mload(b + p * ldb + 8 * v, ml) : _mm256_loadu_ps(b + p * ldb + 8 * v);
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            __m256 av = _mm256_broadcast_ss(a + r * ars + p * acs);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++)
                acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) {
            if (v == nv - 1)
                _mm256_maskstore_ps(c + r * ldc + 8 * v, ml, acc[r][v]);
            else
                _mm256_storeu_ps(c + r * ldc + 8 * v, acc[r][v]);
        }
}

#define TILE_NV(MRV)                                                                               \
    if (nv == 1)                                                                                   \
        tile(MRV, 1, c, ldc, a, ars, acs, b, ldb, k, beta, ml);                                    \
    else                                                                                           \
        tile(MRV, 2, c, ldc, a, ars, acs, b, ldb, k, beta, ml);

static void tile_any(int mr, int nv, float *c, long ldc, const float *a, long ars, long acs,
                     const float *b, long ldb, long k, float beta, __m256i ml)
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
    long ars = tri & GDN_A_T ? 1 : lda, acs = tri & GDN_A_T ? lda : 1;
    tri &= ~GDN_A_T;
    for (long n0 = 0; n0 < n; n0 += 8 * NV)
        for (long r0 = 0; r0 < m; r0 += MR) {
            int mr = m - r0 < MR ? (int)(m - r0) : MR;
            long nn = n - n0 < 8 * NV ? n - n0 : 8 * NV, kk = k;
            if (tri == GDN_TRI_N) {
                long lim = r0 + mr - n0;
                if (lim <= 0)
                    continue;
                nn = nn < lim ? nn : lim;
            } else if (tri == GDN_TRI_K) {
                kk = k < r0 + mr ? k : r0 + mr;
            }
            int nv = (int)((nn + 7) / 8);
            tile_any(mr, nv, c + r0 * ldc + n0, ldc, a + r0 * ars, ars, acs, b + n0, ldb, kk, beta,
                     tmask(nn - 8 * (nv - 1)));
        }
}

static void tri_inv(float *t, const float *l, int n, long ld)
{
    int nv = (n + 7) / 8;
    __m256i m[IV];
#pragma GCC unroll 8
    for (int v = 0; v < IV; v++)
        m[v] = tmask(n - 8 * v);
    for (int i = 0; i < n; i++) {
        __m256 acc[IV];
#pragma GCC unroll 8
        for (int v = 0; v < IV; v++)
            acc[v] = _mm256_and_ps(
                _mm256_set1_ps(1.0f),
                _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_set1_epi32(i - 8 * v),
                                                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))));
        for (int j = 0; j < i; j++) {
            __m256 s = _mm256_set1_ps(-l[i * ld + j]);
            /* row j is zero past column j: only its first j / 8 + 1 vectors matter */
            int jv = j / 8 + 1;
#pragma GCC unroll 8
            for (int v = 0; v < IV; v++)
                if (v < jv)
                    acc[v] = _mm256_fmadd_ps(s, mload(t + j * ld + 8 * v, m[v]), acc[v]);
        }
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            _mm256_maskstore_ps(t + i * ld + 8 * v, m[v], acc[v]);
    }
}

AI void rec_block(int nv, const __m256i *m, float *S, long dk, long dv, const float *q,
                  const float *k, long n, const float *v, long ld_v, const float *eg,
                  const float *bt, float *o, long ld_o)
{
    __m256 kv[RV], u[RV], acc[RV], kvn[RV];
#pragma GCC unroll 8
    for (int x = 0; x < nv; x++)
        kv[x] = _mm256_setzero_ps();
    for (long i = 0; i < dk; i++) {
        __m256 kb = _mm256_set1_ps(k[i]);
#pragma GCC unroll 8
        for (int x = 0; x < nv; x++)
            kv[x] = _mm256_fmadd_ps(kb, mload(S + i * dv + 8 * x, m[x]), kv[x]);
    }
    for (long t = 0; t < n; t++) {
        const float *qt = q + t * dk, *kt = k + t * dk, *kn = kt + dk;
        __m256 egv = _mm256_set1_ps(eg[t]), btv = _mm256_set1_ps(bt[t]);
#pragma GCC unroll 8
        for (int x = 0; x < nv; x++) {
            __m256 vv = mload(v + t * ld_v + 8 * x, m[x]);
            u[x] = _mm256_mul_ps(btv, _mm256_fnmadd_ps(egv, kv[x], vv));
            acc[x] = _mm256_setzero_ps();
            kvn[x] = _mm256_setzero_ps();
        }
        int more = t + 1 < n;
        for (long i = 0; i < dk; i++) {
            __m256 kb = _mm256_set1_ps(kt[i]), qb = _mm256_set1_ps(qt[i]);
            __m256 nb = _mm256_set1_ps(more ? kn[i] : 0.0f);
            float *si = S + i * dv;
#pragma GCC unroll 8
            for (int x = 0; x < nv; x++) {
                __m256 s = _mm256_fmadd_ps(mload(si + 8 * x, m[x]), egv, _mm256_mul_ps(kb, u[x]));
                _mm256_maskstore_ps(si + 8 * x, m[x], s);
                acc[x] = _mm256_fmadd_ps(qb, s, acc[x]);
                kvn[x] = _mm256_fmadd_ps(nb, s, kvn[x]);
            }
        }
#pragma GCC unroll 8
        for (int x = 0; x < nv; x++) {
            _mm256_maskstore_ps(o + t * ld_o + 8 * x, m[x], acc[x]);
            kv[x] = kvn[x];
        }
    }
}

static void rec(float *S, long dk, long dv, const float *q, const float *k, long n, const float *v,
                long ld_v, const float *eg, const float *bt, float *o, long ld_o)
{
    for (long j0 = 0; j0 < dv; j0 += 8 * RV) {
        long w = dv - j0 < 8 * RV ? dv - j0 : 8 * RV;
        __m256i m[RV];
        for (int x = 0; x < RV; x++)
            m[x] = tmask(w - 8 * x);
        if (w > 8)
            rec_block(2, m, S + j0, dk, dv, q, k, n, v + j0, ld_v, eg, bt, o + j0, ld_o);
        else
            rec_block(1, m, S + j0, dk, dv, q, k, n, v + j0, ld_v, eg, bt, o + j0, ld_o);
    }
}

static void norm(float *dst, const float *src, long n, float mul)
{
    __m256 ss = _mm256_setzero_ps();
    for (long i = 0; i < n; i += 8) {
        __m256 x = mload(src + i, tmask(n - i));
        ss = _mm256_fmadd_ps(x, x, ss);
    }
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(ss), _mm256_extractf128_ps(ss, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    __m256 inv = _mm256_set1_ps(mul / sqrtf(_mm_cvtss_f32(h) + 1e-6f));
    for (long i = 0; i < n; i += 8) {
        __m256i m = tmask(n - i);
        _mm256_maskstore_ps(dst + i, m, _mm256_mul_ps(mload(src + i, m), inv));
    }
}

#define vexp kv_exp256 /* vexp.h */

static void softmax_cols(float *s, long ld, long nb, long nr, float *m, float *l, float *corr)
{
    for (long r0 = 0; r0 < nr; r0 += 8) {
        __m256i k = tmask(nr - r0);
        __m256 mo = mload(m + r0, k), mn = mo;
        for (long c = 0; c < nb; c++)
            mn = _mm256_max_ps(mn, mload(s + c * ld + r0, k));
        __m256 cr = vexp(_mm256_sub_ps(mo, mn)), sum = _mm256_setzero_ps();
        for (long c = 0; c < nb; c++) {
            __m256 e = vexp(_mm256_sub_ps(mload(s + c * ld + r0, k), mn));
            _mm256_maskstore_ps(s + c * ld + r0, k, e);
            sum = _mm256_add_ps(sum, e);
        }
        _mm256_maskstore_ps(m + r0, k, mn);
        _mm256_maskstore_ps(corr + r0, k, cr);
        _mm256_maskstore_ps(l + r0, k, _mm256_fmadd_ps(mload(l + r0, k), cr, sum));
    }
}

const struct gdn_ops gdn_ops_avx2 = { gemm, tri_inv, rec, norm, softmax_cols };
