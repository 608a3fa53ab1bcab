/*
 * gemm_avx512.c - the prefill matrix-matrix product y = x W^T (T >= 4 tokens) with AVX-512
 * (F, BW, VL, DQ), called from kern_mm_avx512 for rows [r0, r1).
 *
 * Weights are dequantized exactly to fp32 into a packed panel of GM_RB = 32 rows x GM_KC columns
 * laid out column by column, panel[c][32], so one zmm holds one column of 16 OUTPUT rows. The
 * microkernel keeps 2 row vectors x GM_NT tokens of y in registers and, for each column c,
 * loads the two panel vectors and broadcasts x[t][c] from memory into one FMA per token and
 * vector: y[t][rows] comes out as a vector, with no horizontal reduction, and the panel
 * (32 KB) stays in L1 while every token of the block streams past it.
 *
 * Packing: 16 rows x 16 words of the packed data (int4: 128 columns, int8: 64, bf16: 32, f32: 16)
 * are loaded and transposed as a 16x16 matrix of 32-bit words, so vector i then holds word i of
 * all 16 rows; each value is then brought down with a shift (int4 nibbles via the 16-entry
 * vpermps table, as the decode kernels do), converted and multiplied by its row's group scale
 * (the scales are transposed the same way). An MoE expert sees few tokens, so the packing is
 * amortized over few FMAs: with <= 8 tokens, int4 skips the panel and feeds the unpacked
 * vectors straight into the FMAs (fused_i4).
 *
 * Blocking (Goto-style, x playing the role of the packed B): per 512 tokens and 256 rows, the
 * 256-column blocks in order and the panels innermost, so that x's block and y's partial sums
 * stay in L2 while each panel sits in L1.
 *
 * Numerics: fp32 activations, exact fp32 weights, one fp32 FMA chain per output in column order
 * 0..k-1 (partial sums are parked in y between column blocks). The order of operations for an
 * output therefore depends on nothing but k: not on T, the tile shapes or the thread count.
 */
#include "kernels/cpu/kern_cpu.h"

#include <immintrin.h>

#define GM_RB 32  /* rows per panel (two zmm) */
#define GM_KC 256 /* columns per panel: 32 x 256 fp32 = 32 KB, in L1 with the x rows */
#define GM_NT 8   /* tokens per microkernel: 16 zmm accumulators */
#define GM_MC 256 /* rows per pass: y's block for GM_TC tokens is 512 KB, in L2 */
#define GM_TC 512 /* tokens per pass: their GM_KC columns (512 KB) stay in L2 */

static const float i4_table[16] = { -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7 };

static inline __mmask16 tail_mask(long left)
{
    return left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

/* Scratch floats the GEMM needs for k (panel, transposed scales); the caller's scratch of
 * kern_mm_scratch(k) bytes is at least this (checked in kern_gemm_avx512). */
static size_t gemm_floats(void)
{
    return (size_t)GM_KC * GM_RB + (GM_KC / 4 + 2) * GM_RB; /* groups of >= 4 columns */
}

/* The 32-bit 16x16 transpose: afterwards r[i] lane j = old r[j] lane i. */
static inline __attribute__((always_inline)) void transpose16(__m512i r[16])
{
    __m512i a[16], b[16];
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++)
    {
        a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    /* b[4i + c], 128-bit lane L: column 4L + c of rows 4i..4i+3 */
    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++)
    {
        b[4 * i + 0] = _mm512_unpacklo_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 1] = _mm512_unpackhi_epi64(a[4 * i], a[4 * i + 2]);
        b[4 * i + 2] = _mm512_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
        b[4 * i + 3] = _mm512_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
    }
    _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++)
    {
        __m512i c1 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0x44);
        __m512i c2 = _mm512_shuffle_i32x4(b[c], b[4 + c], 0xee);
        __m512i d1 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0x44);
        __m512i d2 = _mm512_shuffle_i32x4(b[8 + c], b[12 + c], 0xee);
        r[c] = _mm512_shuffle_i32x4(c1, d1, 0x88);
        r[4 + c] = _mm512_shuffle_i32x4(c1, d1, 0xdd);
        r[8 + c] = _mm512_shuffle_i32x4(c2, d2, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(c2, d2, 0xdd);
    }
}

/* The same 64 bytes of the row GM_RB rows further (the next panel's), so that its packing finds
 * them in cache: the rows are visited GM_KC columns at a time, too short a run for the hardware
 * prefetcher. A prefetch never faults, so running past the weight is harmless. */
#define PREFETCH_NEXT(ptr, rowbytes)                                                               \
    _mm_prefetch((const char *)(ptr) + GM_RB * (long)(rowbytes), _MM_HINT_T0)

/* Words [w0, w0 + 16) (masked by m) of rows [0, nrow) of p (ldw words apart), transposed into v
 * (v[i] lane j = row j's word w0 + i; rows past nrow 0), prefetching the next panel's rows. */
static inline __attribute__((always_inline)) void
load_t16(__m512i v[16], const uint32_t *p, long ldw, long w0, __mmask16 m, long nrow)
{
    _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++)
    {
        v[j] = j < nrow ? _mm512_maskz_loadu_epi32(m, p + j * ldw + w0) : _mm512_setzero_si512();
        PREFETCH_NEXT(p + j * ldw + w0, ldw * 4);
    }
    transpose16(v);
}

/* Columns [0, nc) of nrow bf16 rows (p, ld elements apart) as fp32, transposed:
 * o[c * GM_RB + j] = p[j * ld + c] (lanes past nrow 0). pf: prefetch the next panel's rows. */
static void tr_bf16(const uint16_t *p, long ld, long nrow, long nc, float *o, int pf)
{
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    __m512i v[16];
    for (long c0 = 0; c0 < nc; c0 += 32, o += 32 * GM_RB) {
        long left = nc - c0 < 32 ? nc - c0 : 32;
        __mmask32 m = left >= 32 ? 0xffffffffu : (__mmask32)((1u << left) - 1);
        _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++)
        {
            v[j] = j < nrow ? _mm512_maskz_loadu_epi16(m, p + j * ld + c0) : _mm512_setzero_si512();
            if (pf)
                PREFETCH_NEXT(p + j * ld + c0, ld * 2);
        }
        transpose16(v);
        /* unrolled with constant i so that v stays in registers */
        _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++)
        {
            if (2 * i >= left)
                break;
            _mm512_store_ps(o + 2 * i * GM_RB, _mm512_castsi512_ps(_mm512_slli_epi32(v[i], 16)));
            if (2 * i + 1 < left)
                _mm512_store_ps(o + (2 * i + 1) * GM_RB,
                                _mm512_castsi512_ps(_mm512_and_si512(v[i], hi)));
        }
    }
}

/* The same for fp32 rows. */
static void tr_f32(const float *p, long ld, long nrow, long nc, float *o, int pf)
{
    __m512i v[16];
    for (long c0 = 0; c0 < nc; c0 += 16, o += 16 * GM_RB) {
        __mmask16 m = tail_mask(nc - c0);
        _Pragma("GCC unroll 16") for (int j = 0; j < 16; j++)
        {
            v[j] = j < nrow ? _mm512_castps_si512(_mm512_maskz_loadu_ps(m, p + j * ld + c0))
                            : _mm512_setzero_si512();
            if (pf)
                PREFETCH_NEXT(p + j * ld + c0, ld * 4);
        }
        transpose16(v);
        _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++)
        {
            if (i >= nc - c0)
                break;
            _mm512_store_ps(o + i * GM_RB, _mm512_castsi512_ps(v[i]));
        }
    }
}

/* Scales of rows [rb, rb + nr) for the groups of columns [k0, k0 + kn), transposed:
 * st[(g - k0 / group) * 32 + j] = scale of row rb + j, group g (0 for rows past nr), so a panel
 * vector's 16 scales are one load. A scalar loop here cost as much as the unpacking at T = 8. */
static void scales_t(const struct kern_weight *w, long rb, long nr, long k0, long kn, float *st)
{
    long ng = w->k / w->group, g0 = k0 / w->group, g1 = (k0 + kn - 1) / w->group + 1;
    for (int h = 0; h < 2; h++) {
        long nrow = nr - 16 * h < 0 ? 0 : nr - 16 * h < 16 ? nr - 16 * h : 16;
        long base = (rb + 16 * h) * ng + g0;
        if (w->scale_type == KERN_BF16) {
            tr_bf16((const uint16_t *)w->scale + base, ng, nrow, g1 - g0, st + 16 * h, 0);
        } else if (w->scale_type == KERN_F32) {
            tr_f32((const float *)w->scale + base, ng, nrow, g1 - g0, st + 16 * h, 0);
        } else {
            for (long j = 0; j < 16; j++)
                for (long g = g0; g < g1; g++)
                    st[(g - g0) * GM_RB + 16 * h + j] =
                        j < nrow ? kern_scale_at(w, base + j * ng + g - g0) : 0.0f;
        }
    }
}

/* Panel half h (rows rb + 16h .. + 15, nrow of them real) for columns [k0, k0 + kn):
 * pn[(c - k0) * 32 + 16h + j] = W[rb + 16h + j][c], exactly. st: scales_t of the block. */
static void pack_half(const struct kern_weight *w, long rb, int h, long nrow, long k0, long kn,
                      const float *st, float *pn)
{
    long k = w->k;
    const long rows = rb + 16 * h;
    __m512i v[16];
    if (w->type == KERN_I4) {
        const uint32_t *p = (const uint32_t *)w->data;
        const __m512 tbl = _mm512_loadu_ps(i4_table);
        long ldw = k / 8, we = (k0 + kn) / 8, g8 = w->group / 8;
        for (long w0 = k0 / 8; w0 < we; w0 += 16) {
            long nw = we - w0 < 16 ? we - w0 : 16;
            __mmask16 m = tail_mask(nw);
            load_t16(v, p + rows * ldw, ldw, w0, m, nrow);
            /* word w0 + i is in group gq of the block */
            long gq = w0 / g8 - k0 / w->group, gr = w0 % g8;
            /* unrolled with constant i so that v stays in registers */
            _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++)
            {
                if (i >= nw)
                    break;
                __m512 s = _mm512_load_ps(st + gq * GM_RB + 16 * h);
                float *o = pn + ((w0 + i) * 8 - k0) * GM_RB + 16 * h;
                _Pragma("GCC unroll 8") for (int e = 0; e < 8; e++)
                {
                    __m512 f = _mm512_permutexvar_ps(_mm512_srli_epi32(v[i], 4 * e), tbl);
                    _mm512_store_ps(o + e * GM_RB, _mm512_mul_ps(f, s));
                }
                if (++gr == g8)
                    gr = 0, gq++;
            }
        }
    } else if (w->type == KERN_I8) {
        const uint32_t *p = (const uint32_t *)w->data;
        const __m512i flip = _mm512_set1_epi32((int)0x80808080u);
        long ldw = k / 4, we = (k0 + kn) / 4, g4 = w->group / 4;
        for (long w0 = k0 / 4; w0 < we; w0 += 16) {
            long nw = we - w0 < 16 ? we - w0 : 16;
            __mmask16 m = tail_mask(nw);
            load_t16(v, p + rows * ldw, ldw, w0, m, nrow);
            long gq = w0 / g4 - k0 / w->group, gr = w0 % g4;
            _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++)
            {
                if (i >= nw)
                    break;
                __m512 s = _mm512_load_ps(st + gq * GM_RB + 16 * h);
                float *o = pn + ((w0 + i) * 4 - k0) * GM_RB + 16 * h;
                /* byte ^ 0x80 read as a signed byte is code - 128 */
                __m512i q = _mm512_xor_si512(v[i], flip);
                __m512i b0 = _mm512_srai_epi32(_mm512_slli_epi32(q, 24), 24);
                __m512i b1 = _mm512_srai_epi32(_mm512_slli_epi32(q, 16), 24);
                __m512i b2 = _mm512_srai_epi32(_mm512_slli_epi32(q, 8), 24);
                __m512i b3 = _mm512_srai_epi32(q, 24);
                _mm512_store_ps(o, _mm512_mul_ps(_mm512_cvtepi32_ps(b0), s));
                _mm512_store_ps(o + GM_RB, _mm512_mul_ps(_mm512_cvtepi32_ps(b1), s));
                _mm512_store_ps(o + 2 * GM_RB, _mm512_mul_ps(_mm512_cvtepi32_ps(b2), s));
                _mm512_store_ps(o + 3 * GM_RB, _mm512_mul_ps(_mm512_cvtepi32_ps(b3), s));
                if (++gr == g4)
                    gr = 0, gq++;
            }
        }
    } else if (w->type == KERN_BF16) {
        tr_bf16((const uint16_t *)w->data + rows * k + k0, k, nrow, kn, pn + 16 * h, 1);
    } else {
        tr_f32((const float *)w->data + rows * k + k0, k, nrow, kn, pn + 16 * h, 1);
    }
}

/* y[t][16v + j] (+)= sum_c pn[c][16v + j] x[t][c] for NT tokens and NV row vectors over the
 * panel's kn columns; first: start from 0, else from y (the previous column blocks). Always
 * inlined with constant NT, NV. */
static inline __attribute__((always_inline)) void micro(const float *pn, long kn, const float *x,
                                                        long ldx, float *y, long ldy, int first,
                                                        __mmask16 m0, __mmask16 m1, int NT, int NV)
{
    __m512 acc[GM_NT][2];
    _Pragma("GCC unroll 8") for (int t = 0; t < NT; t++)
    {
        acc[t][0] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m0, y + t * ldy);
        if (NV > 1)
            acc[t][1] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m1, y + t * ldy + 16);
    }
    const float *xt[GM_NT];
    _Pragma("GCC unroll 8") for (int t = 0; t < NT; t++) xt[t] = x + t * ldx;
    _Pragma("GCC unroll 2") for (long c = 0; c < kn; c++)
    {
        __m512 w0 = _mm512_load_ps(pn + c * GM_RB);
        __m512 w1 = NV > 1 ? _mm512_load_ps(pn + c * GM_RB + 16) : w0;
        _Pragma("GCC unroll 8") for (int t = 0; t < NT; t++)
        {
            __m512 b = _mm512_set1_ps(xt[t][c]);
            acc[t][0] = _mm512_fmadd_ps(w0, b, acc[t][0]);
            if (NV > 1)
                acc[t][1] = _mm512_fmadd_ps(w1, b, acc[t][1]);
        }
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < NT; t++)
    {
        _mm512_mask_storeu_ps(y + t * ldy, m0, acc[t][0]);
        if (NV > 1)
            _mm512_mask_storeu_ps(y + t * ldy + 16, m1, acc[t][1]);
    }
}

#define MICRO(nt, nv)                                                                              \
    case (nt)*2 + (nv)-1: micro(pn, kn, x, ldx, y, ldy, first, m0, m1, nt, nv); break

static void micro_any(const float *pn, long kn, const float *x, long ldx, float *y, long ldy,
                      int first, __mmask16 m0, __mmask16 m1, int nt, int nv)
{
    switch (nt * 2 + nv - 1) {
        MICRO(8, 2);
        MICRO(8, 1);
        MICRO(7, 2);
        MICRO(7, 1);
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

/* int4 for a single tile of NT <= GM_NT tokens (an expert's few tokens): the unpacked weights go
 * straight from the shift/vpermps/scale into the FMAs instead of through the panel, which at
 * 4..8 tokens cost as much as the FMAs. 16 words of the 32 rows are transposed into tb (in L1)
 * and unpacked one word (8 columns) at a time. Every output gets the same fp32 weight values and
 * the same FMA sequence as through the panel, so both paths give identical results. Always
 * inlined with constant NT. */
static inline __attribute__((always_inline)) void
fused_i4(const struct kern_weight *w, long rb, long nr, long k0, long kn, const float *st,
         __m512i *tb, const float *x, long ldx, float *y, long ldy, int first, __mmask16 m0,
         __mmask16 m1, int NT)
{
    const uint32_t *p = (const uint32_t *)w->data;
    const __m512 tbl = _mm512_loadu_ps(i4_table);
    long ldw = w->k / 8, we = (k0 + kn) / 8, g8 = w->group / 8;
    __m512 acc[GM_NT][2];
    const float *xt[GM_NT];
    _Pragma("GCC unroll 8") for (int t = 0; t < NT; t++)
    {
        acc[t][0] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m0, y + t * ldy);
        acc[t][1] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m1, y + t * ldy + 16);
        xt[t] = x + t * ldx - k0;
    }
    for (long w0 = k0 / 8; w0 < we; w0 += 16) {
        long nw = we - w0 < 16 ? we - w0 : 16;
        __mmask16 m = tail_mask(nw);
        for (int h = 0; h < 2; h++) {
            __m512i v[16];
            long rows = rb + 16 * h, nrow = nr - 16 * h;
            load_t16(v, p + rows * ldw, ldw, w0, m, nrow);
            _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++)
                _mm512_store_si512(tb + 16 * h + i, v[i]);
        }
        long gq = w0 / g8 - k0 / w->group, gr = w0 % g8;
        for (long i = 0; i < nw; i++) {
            __m512i v0 = _mm512_load_si512(tb + i), v1 = _mm512_load_si512(tb + 16 + i);
            __m512 s0 = _mm512_load_ps(st + gq * GM_RB), s1 = _mm512_load_ps(st + gq * GM_RB + 16);
            long c = (w0 + i) * 8;
            _Pragma("GCC unroll 8") for (int e = 0; e < 8; e++)
            {
                __m512 f0 =
                    _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v0, 4 * e), tbl), s0);
                __m512 f1 =
                    _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v1, 4 * e), tbl), s1);
                _Pragma("GCC unroll 8") for (int t = 0; t < NT; t++)
                {
                    __m512 b = _mm512_set1_ps(xt[t][c + e]);
                    acc[t][0] = _mm512_fmadd_ps(f0, b, acc[t][0]);
                    acc[t][1] = _mm512_fmadd_ps(f1, b, acc[t][1]);
                }
            }
            if (++gr == g8)
                gr = 0, gq++;
        }
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < NT; t++)
    {
        _mm512_mask_storeu_ps(y + t * ldy, m0, acc[t][0]);
        _mm512_mask_storeu_ps(y + t * ldy + 16, m1, acc[t][1]);
    }
}

#define FUSED(nt)                                                                                  \
    case nt: fused_i4(w, rb, nr, k0, kn, st, tb, x, ldx, y, ldy, first, m0, m1, nt); break

static void fused_i4_any(const struct kern_weight *w, long rb, long nr, long k0, long kn,
                         const float *st, __m512i *tb, const float *x, long ldx, float *y, long ldy,
                         int first, __mmask16 m0, __mmask16 m1, int nt)
{
    switch (nt) {
        FUSED(8);
        FUSED(7);
        FUSED(6);
        FUSED(5);
        FUSED(4);
        FUSED(3);
        FUSED(2);
        FUSED(1);
    }
}

void kern_gemm_avx512(const struct kern_weight *w, const float *x, long T, float *y, long r0,
                      long r1, void *scratch)
{
    if (gemm_floats() * sizeof(float) > kern_mm_scratch(w->k)) {
        /* cannot happen for k >= 1 (kern_mm_scratch reserves far more); never overrun it */
        kern_mm_scalar(w, x, T, y, r0, r1, scratch);
        return;
    }
    long k = w->k, n = w->n;
    float *pn = scratch;            /* [GM_KC][GM_RB], 64-byte aligned */
    float *st = pn + GM_KC * GM_RB; /* [groups of the block][GM_RB] */
    int quant = w->type == KERN_I4 || w->type == KERN_I8;
    /* Goto-style blocking: per GM_TC tokens and GM_MC rows, the column blocks in order, and the
     * panels of the block innermost, so that x's block (GM_TC x GM_KC) and y's (GM_TC x GM_MC)
     * stay in L2 while each panel (in L1) meets every token */
    for (long tc = 0; tc < T; tc += GM_TC) {
        long ntc = T - tc < GM_TC ? T - tc : GM_TC;
        for (long mc = r0; mc < r1; mc += GM_MC) {
            long mend = r1 - mc < GM_MC ? r1 : mc + GM_MC;
            for (long k0 = 0; k0 < k; k0 += GM_KC) {
                long kn = k - k0 < GM_KC ? k - k0 : GM_KC;
                for (long rb = mc; rb < mend; rb += GM_RB) {
                    long nr = mend - rb < GM_RB ? mend - rb : GM_RB;
                    int nv = nr > 16 ? 2 : 1;
                    __mmask16 m0 = tail_mask(nr), m1 = tail_mask(nr - 16);
                    if (quant)
                        scales_t(w, rb, nr, k0, kn, st);
                    if (w->type == KERN_I4 && ntc <= GM_NT) {
                        fused_i4_any(w, rb, nr, k0, kn, st, (__m512i *)pn, x + tc * k + k0, k,
                                     y + tc * n + rb, n, k0 == 0, m0, m1, (int)ntc);
                        continue;
                    }
                    pack_half(w, rb, 0, nr < 16 ? nr : 16, k0, kn, st, pn);
                    if (nv > 1)
                        pack_half(w, rb, 1, nr - 16, k0, kn, st, pn);
                    /* balanced token tiles (9 = 5 + 4, not 8 + 1): a tile of 1..3 tokens has
                     * too few FMA chains to cover the latency */
                    long ntile = (ntc + GM_NT - 1) / GM_NT, base = ntc / ntile, extra = ntc % ntile;
                    for (long i = 0, t0 = 0; i < ntile; i++) {
                        int nt = (int)(base + (i < extra));
                        micro_any(pn, kn, x + (tc + t0) * k + k0, k, y + (tc + t0) * n + rb, n,
                                  k0 == 0, m0, m1, nt, nv);
                        t0 += nt;
                    }
                }
            }
        }
    }
}
