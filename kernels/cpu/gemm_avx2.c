/*
 * gemm_avx2.c - the prefill matrix-matrix product y = x W^T (T >= 4 tokens) with AVX2 + FMA,
 * called from kern_mm_avx2 for rows [r0, r1): gemm_avx512.c's plan on 8 lanes.
 *
 * Weights are dequantized exactly to fp32 into a panel of GA_RB = 16 rows x GA_KC columns laid
 * out column by column, panel[c][16] (one ymm = one column of 8 output rows); the microkernel
 * keeps 2 row vectors x GA_NT = 6 tokens of y in 12 ymm and broadcasts x[t][c] from memory, so
 * y[t][rows] is stored as a vector with no horizontal reduction. Packing loads 8 rows x 8 words
 * and transposes them as an 8x8 matrix of 32-bit words; int4 nibbles are masked, converted and
 * scaled with one FMA, (q * s - 8 s), whose single rounding gives exactly the reference's
 * (float)(q - 8) * s. Partial chunks at k are copied into a zero-padded buffer first (AVX2 has
 * no byte-granular masked load).
 *
 * Numerics as on AVX-512: one fp32 FMA chain per output in column order, so results depend on
 * nothing but k (not T, the tiles or the thread count).
 */
#include "kernels/cpu/kern_cpu.h"

#include <immintrin.h>
#include <string.h>

#define GA_RB 16  /* rows per panel (two ymm) */
#define GA_KC 256 /* columns per panel: 16 x 256 fp32 = 16 KB, in L1 */
#define GA_NT 6   /* tokens per microkernel: 12 ymm accumulators */
#define GA_MC 128 /* rows per pass */
#define GA_TC 256 /* tokens per pass: x's block (256 KB) and y's (128 KB) stay in L2 */

static size_t gemm_floats(void) { return (size_t)GA_KC * GA_RB + (GA_KC / 4 + 2) * GA_RB + 64; }

/* afterwards r[i] lane j = old r[j] lane i */
static inline __attribute__((always_inline)) void transpose8(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* 32 bytes of row j (bytes `have` of them real, the rest zero) as a vector; rows past nrow are
 * zero. */
static inline __m256 load_row(const void *p, long have, int real)
{
    if (!real)
        return _mm256_setzero_ps();
    if (have >= 32)
        return _mm256_loadu_ps((const float *)p);
    float tmp[8] = { 0 };
    memcpy(tmp, p, (size_t)have);
    return _mm256_loadu_ps(tmp);
}

/* Bytes [b0, b0 + 32) of 8 rows (ld bytes apart, nrow real, `have` bytes left in a row from
 * b0), transposed: v[i] lane j = 32-bit word i of row j. */
static inline __attribute__((always_inline)) void load8(const uint8_t *p, long ld, long nrow,
                                                        long have, __m256 v[8])
{
    _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++)
    {
        v[j] = load_row(p + j * ld, have, j < nrow);
        /* the next panel's rows (see gemm_avx512.c) */
        _mm_prefetch((const char *)(p + j * ld) + GA_RB * ld, _MM_HINT_T0);
    }
    transpose8(v);
}

/* o[c * GA_RB + j] = row j, column c, for columns [0, nc) of nrow bf16 rows (ld elements apart) */
static void tr_bf16(const uint16_t *p, long ld, long nrow, long nc, float *o)
{
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    __m256 v[8];
    for (long c0 = 0; c0 < nc; c0 += 16, o += 16 * GA_RB) {
        long left = nc - c0 < 16 ? nc - c0 : 16;
        load8((const uint8_t *)(p + c0), ld * 2, nrow, left * 2, v);
        _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
        {
            if (2 * i >= left)
                break;
            __m256i q = _mm256_castps_si256(v[i]);
            _mm256_store_ps(o + 2 * i * GA_RB, _mm256_castsi256_ps(_mm256_slli_epi32(q, 16)));
            if (2 * i + 1 < left)
                _mm256_store_ps(o + (2 * i + 1) * GA_RB,
                                _mm256_castsi256_ps(_mm256_and_si256(q, hi)));
        }
    }
}

static void tr_f32(const float *p, long ld, long nrow, long nc, float *o)
{
    __m256 v[8];
    for (long c0 = 0; c0 < nc; c0 += 8, o += 8 * GA_RB) {
        long left = nc - c0 < 8 ? nc - c0 : 8;
        load8((const uint8_t *)(p + c0), ld * 4, nrow, left * 4, v);
        _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
        {
            if (i >= left)
                break;
            _mm256_store_ps(o + i * GA_RB, v[i]);
        }
    }
}

/* Scales of rows [rb, rb + nr) for the groups of columns [k0, k0 + kn), transposed:
 * st[(g - k0 / group) * 16 + j] (0 for rows past nr). */
static void scales_t(const struct kern_weight *w, long rb, long nr, long k0, long kn, float *st)
{
    long ng = w->k / w->group, g0 = k0 / w->group, g1 = (k0 + kn - 1) / w->group + 1;
    for (int h = 0; h < 2; h++) {
        long nrow = nr - 8 * h < 0 ? 0 : nr - 8 * h < 8 ? nr - 8 * h : 8;
        long base = (rb + 8 * h) * ng + g0;
        if (w->scale_type == KERN_BF16) {
            tr_bf16((const uint16_t *)w->scale + base, ng, nrow, g1 - g0, st + 8 * h);
        } else if (w->scale_type == KERN_F32) {
            tr_f32((const float *)w->scale + base, ng, nrow, g1 - g0, st + 8 * h);
        } else {
            for (long j = 0; j < 8; j++)
                for (long g = g0; g < g1; g++)
                    st[(g - g0) * GA_RB + 8 * h + j] =
                        j < nrow ? kern_scale_at(w, base + j * ng + g - g0) : 0.0f;
        }
    }
}

/* Panel half h (rows rb + 8h .. + 7, nrow real) for columns [k0, k0 + kn). */
static void pack_half(const struct kern_weight *w, long rb, int h, long nrow, long k0, long kn,
                      const float *st, float *pn)
{
    long k = w->k, rows = rb + 8 * h;
    __m256 v[8];
    pn += 8 * h;
    if (w->type == KERN_I4) {
        const uint32_t *p = (const uint32_t *)w->data;
        const __m256i m15 = _mm256_set1_epi32(15);
        long ldw = k / 8, we = (k0 + kn) / 8, g8 = w->group / 8;
        for (long w0 = k0 / 8; w0 < we; w0 += 8) {
            long nw = we - w0 < 8 ? we - w0 : 8;
            load8((const uint8_t *)(p + rows * ldw + w0), ldw * 4, nrow, nw * 4, v);
            long gq = w0 / g8 - k0 / w->group, gr = w0 % g8;
            _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
            {
                if (i >= nw)
                    break;
                __m256 s = _mm256_load_ps(st + gq * GA_RB + 8 * h);
                __m256 s8 = _mm256_mul_ps(s, _mm256_set1_ps(8.0f)); /* exact */
                __m256i q = _mm256_castps_si256(v[i]);
                float *o = pn + ((w0 + i) * 8 - k0) * GA_RB;
                _Pragma("GCC unroll 8") for (int e = 0; e < 8; e++)
                {
                    __m256 f =
                        _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(q, 4 * e), m15));
                    _mm256_store_ps(o + e * GA_RB, _mm256_fmsub_ps(f, s, s8));
                }
                if (++gr == g8)
                    gr = 0, gq++;
            }
        }
    } else if (w->type == KERN_I8) {
        const uint32_t *p = (const uint32_t *)w->data;
        const __m256i flip = _mm256_set1_epi32((int)0x80808080u);
        long ldw = k / 4, we = (k0 + kn) / 4, g4 = w->group / 4;
        for (long w0 = k0 / 4; w0 < we; w0 += 8) {
            long nw = we - w0 < 8 ? we - w0 : 8;
            load8((const uint8_t *)(p + rows * ldw + w0), ldw * 4, nrow, nw * 4, v);
            long gq = w0 / g4 - k0 / w->group, gr = w0 % g4;
            _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
            {
                if (i >= nw)
                    break;
                __m256 s = _mm256_load_ps(st + gq * GA_RB + 8 * h);
                float *o = pn + ((w0 + i) * 4 - k0) * GA_RB;
                /* byte ^ 0x80 read as a signed byte is code - 128 */
                __m256i q = _mm256_xor_si256(_mm256_castps_si256(v[i]), flip);
                __m256i b0 = _mm256_srai_epi32(_mm256_slli_epi32(q, 24), 24);
                __m256i b1 = _mm256_srai_epi32(_mm256_slli_epi32(q, 16), 24);
                __m256i b2 = _mm256_srai_epi32(_mm256_slli_epi32(q, 8), 24);
                __m256i b3 = _mm256_srai_epi32(q, 24);
                _mm256_store_ps(o, _mm256_mul_ps(_mm256_cvtepi32_ps(b0), s));
                _mm256_store_ps(o + GA_RB, _mm256_mul_ps(_mm256_cvtepi32_ps(b1), s));
                _mm256_store_ps(o + 2 * GA_RB, _mm256_mul_ps(_mm256_cvtepi32_ps(b2), s));
                _mm256_store_ps(o + 3 * GA_RB, _mm256_mul_ps(_mm256_cvtepi32_ps(b3), s));
                if (++gr == g4)
                    gr = 0, gq++;
            }
        }
    } else if (w->type == KERN_BF16) {
        tr_bf16((const uint16_t *)w->data + rows * k + k0, k, nrow, kn, pn);
    } else {
        tr_f32((const float *)w->data + rows * k + k0, k, nrow, kn, pn);
    }
}

/* lanes [0, n) set */
static inline __m256i lane_mask(long n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 0 ? 0 : n > 8 ? 8 : n)), idx);
}

/* y[t][8v + j] (+)= sum_c pn[c][8v + j] x[t][c] for NT tokens, NV row vectors (mask mv[v] for
 * the stores and loads of a partial panel); always inlined with constant NT, NV. */
static inline __attribute__((always_inline)) void micro(const float *pn, long kn, const float *x,
                                                        long ldx, float *y, long ldy, int first,
                                                        long nr, int NT, int NV)
{
    /* the masks are made here, not passed in: a function with 256-bit arguments gets no
     * vzeroupper on return, and the dirty upper halves then slowed the SSE code that ran next
     * (SiLU, expf) several-fold */
    __m256i mk0 = lane_mask(nr), mk1 = lane_mask(nr - 8);
    int full = nr == GA_RB;
    __m256 acc[GA_NT][2];
    const float *xt[GA_NT];
    _Pragma("GCC unroll 6") for (int t = 0; t < NT; t++)
    {
        xt[t] = x + t * ldx;
        acc[t][0] = first  ? _mm256_setzero_ps()
                    : full ? _mm256_loadu_ps(y + t * ldy)
                           : _mm256_maskload_ps(y + t * ldy, mk0);
        if (NV > 1)
            acc[t][1] = first  ? _mm256_setzero_ps()
                        : full ? _mm256_loadu_ps(y + t * ldy + 8)
                               : _mm256_maskload_ps(y + t * ldy + 8, mk1);
    }
    _Pragma("GCC unroll 2") for (long c = 0; c < kn; c++)
    {
        __m256 w0 = _mm256_load_ps(pn + c * GA_RB);
        __m256 w1 = NV > 1 ? _mm256_load_ps(pn + c * GA_RB + 8) : w0;
        _Pragma("GCC unroll 6") for (int t = 0; t < NT; t++)
        {
            __m256 b = _mm256_broadcast_ss(xt[t] + c);
            acc[t][0] = _mm256_fmadd_ps(w0, b, acc[t][0]);
            if (NV > 1)
                acc[t][1] = _mm256_fmadd_ps(w1, b, acc[t][1]);
        }
    }
    _Pragma("GCC unroll 6") for (int t = 0; t < NT; t++)
    {
        if (full) {
            _mm256_storeu_ps(y + t * ldy, acc[t][0]);
            if (NV > 1)
                _mm256_storeu_ps(y + t * ldy + 8, acc[t][1]);
        } else {
            _mm256_maskstore_ps(y + t * ldy, mk0, acc[t][0]);
            if (NV > 1)
                _mm256_maskstore_ps(y + t * ldy + 8, mk1, acc[t][1]);
        }
    }
}

#define MICRO(nt, nv)                                                                              \
    case (nt)*2 + (nv)-1: micro(pn, kn, x, ldx, y, ldy, first, nr, nt, nv); break

static void micro_any(const float *pn, long kn, const float *x, long ldx, float *y, long ldy,
                      int first, long nr, int nt, int nv)
{
    switch (nt * 2 + nv - 1) {
        MICRO(6, 2);
        MICRO(6, 1);
        MICRO(5, 2);
        MICRO(5, 1);
        MICRO(4, 2);
        MICRO(4, 1);
        MICRO(3, 2);
        MICRO(3, 1);
        MICRO(2, 2);
        MICRO(2, 1);
        MICRO(1, 2);
        MICRO(1, 1);
    }
}

void kern_gemm_avx2(const struct kern_weight *w, const float *x, long T, float *y, long r0, long r1,
                    void *scratch)
{
    if (gemm_floats() * sizeof(float) > kern_mm_scratch(w->k)) {
        /* cannot happen for k >= 1 (kern_mm_scratch reserves far more); never overrun it */
        kern_mm_scalar(w, x, T, y, r0, r1, scratch);
        return;
    }
    long k = w->k, n = w->n;
    float *pn = scratch;            /* [GA_KC][GA_RB], 64-byte aligned */
    float *st = pn + GA_KC * GA_RB; /* [groups of the block][GA_RB] */
    int quant = w->type == KERN_I4 || w->type == KERN_I8;
    for (long tc = 0; tc < T; tc += GA_TC) {
        long ntc = T - tc < GA_TC ? T - tc : GA_TC;
        for (long mc = r0; mc < r1; mc += GA_MC) {
            long mend = r1 - mc < GA_MC ? r1 : mc + GA_MC;
            for (long k0 = 0; k0 < k; k0 += GA_KC) {
                long kn = k - k0 < GA_KC ? k - k0 : GA_KC;
                for (long rb = mc; rb < mend; rb += GA_RB) {
                    long nr = mend - rb < GA_RB ? mend - rb : GA_RB;
                    int nv = nr > 8 ? 2 : 1;
                    if (quant)
                        scales_t(w, rb, nr, k0, kn, st);
                    pack_half(w, rb, 0, nr < 8 ? nr : 8, k0, kn, st, pn);
                    if (nv > 1)
                        pack_half(w, rb, 1, nr - 8, k0, kn, st, pn);
                    /* balanced token tiles, as on AVX-512 */
                    long ntile = (ntc + GA_NT - 1) / GA_NT, base = ntc / ntile, extra = ntc % ntile;
                    for (long i = 0, t0 = 0; i < ntile; i++) {
                        int nt = (int)(base + (i < extra));
                        micro_any(pn, kn, x + (tc + t0) * k + k0, k, y + (tc + t0) * n + rb, n,
                                  k0 == 0, nr, nt, nv);
                        t0 += nt;
                    }
                }
            }
        }
    }
}
