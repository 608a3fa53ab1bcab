/*
 * matmul_avx512.c - y = x W^T with AVX-512 (F, BW, VL, DQ), built with those flags and called
 * only when cpuid says the CPU has them (matmul.c).
 *
 * Decode (T < 4): each row is streamed once and dotted with the fp32 activations.
 *   bf16: widen to fp32 (shift left 16) and FMA.
 *   int4: lane j of a 512-bit load is packed word j (8 input columns); nibble s of every lane is
 *         brought down with one shift and turned into the float (code - 8) by vpermps from a
 *         16-entry table (vpermps reads only the low 4 index bits, so no mask is needed). The
 *         activations are permuted once per call so that vector s holds column 8j+s in lane j.
 *         Each word's 8 products are summed in fp32 and then scaled by its group's scale. Four
 *         rows are computed per pass (dot_i4_rows) so the activation loads and the final
 *         reduction are shared.
 *   int8: bytes are in column order: xor 0x80 turns code into the signed (code - 128), which
 *         widens and converts to fp32.
 * Prefill (T >= 4): 16 rows at a time are dequantized exactly into fp32 scratch (L1/L2), then a
 *   4-token x 4-row register tile (16 zmm accumulators along k) runs over all tokens.
 * Activations are never quantized: the results differ from the reference only by fp32 summation
 * order.
 */
#include "kernels/cpu/kern_cpu.h"

#include <immintrin.h>
#include <string.h>

#define MM_GEMM_T 4

static const float i4_table[16] = { -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7 };

static inline __mmask16 tail_mask(long left)
{
    return left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
}

/* The row's group scales as fp32. */
static void row_scales(const struct kern_weight *w, long r, float *out)
{
    long ng = w->k / w->group, g = 0;
    /* masked tails: an expert's down projection has only 8 groups per row, and a scalar
     * kern_scale_at per group cost as much as the row's dot product */
    if (w->scale_type == KERN_BF16) {
        const uint16_t *s = (const uint16_t *)w->scale + r * ng;
        for (; g < ng; g += 16) {
            __mmask16 m = tail_mask(ng - g);
            __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, s + g));
            _mm512_mask_storeu_ps(out + g, m, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
        }
    } else if (w->scale_type == KERN_F32) {
        const float *s = (const float *)w->scale + r * ng;
        for (; g < ng; g += 16) {
            __mmask16 m = tail_mask(ng - g);
            _mm512_mask_storeu_ps(out + g, m, _mm512_maskz_loadu_ps(m, s + g));
        }
    }
    for (; g < ng; g++)
        out[g] = kern_scale_at(w, r * ng + g);
}

static float dot_f32(const float *a, const float *b, long k)
{
    /* four accumulator chains: one FMA chain alone is latency bound (4 cycles per FMA) */
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    long i = 0;
    for (; i + 64 <= k; i += 64) {
        _mm_prefetch((const char *)(a + i) + 2048, _MM_HINT_T0); /* see dot_bf16 */
        _mm_prefetch((const char *)(a + i) + 2048 + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)(a + i) + 2048 + 128, _MM_HINT_T0);
        _mm_prefetch((const char *)(a + i) + 2048 + 192, _MM_HINT_T0);
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i < k; i += 16) {
        __mmask16 m = tail_mask(k - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

float kern_dot_avx512(const float *a, const float *b, long n) { return dot_f32(a, b, n); }

static inline __m512 bf16x16(const uint16_t *p)
{
    __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

static float dot_bf16(const uint16_t *w, const float *x, long k)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    long i = 0;
    for (; i + 64 <= k; i += 64) {
        /* software prefetch 2 KB ahead (into the next row at the end of this one): the hardware
         * streamer restarts at every 4 KB page and alone leaves DRAM bandwidth unused */
        _mm_prefetch((const char *)(w + i) + 2048, _MM_HINT_T0);
        _mm_prefetch((const char *)(w + i) + 2048 + 64, _MM_HINT_T0);
        s0 = _mm512_fmadd_ps(bf16x16(w + i), _mm512_loadu_ps(x + i), s0);
        s1 = _mm512_fmadd_ps(bf16x16(w + i + 16), _mm512_loadu_ps(x + i + 16), s1);
        s2 = _mm512_fmadd_ps(bf16x16(w + i + 32), _mm512_loadu_ps(x + i + 32), s2);
        s3 = _mm512_fmadd_ps(bf16x16(w + i + 48), _mm512_loadu_ps(x + i + 48), s3);
    }
    for (; i < k; i += 16) {
        __mmask16 m = tail_mask(k - i);
        __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, w + i));
        __m512 wv = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        s0 = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* int4 decode layout: xp[b*128 + s*16 + j] = x[b*128 + 8j + s] (zero past k). Whole blocks are
 * gathered (8 gathers instead of 128 scalar moves: it runs once per call and thread, and the
 * MoE down projection has only 2 blocks per row to amortize it over). */
static void i4_permute_x(const float *x, long k, float *xp)
{
    long nb = (k + 127) / 128, b = 0;
    const __m512i idx =
        _mm512_setr_epi32(0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120);
    for (; (b + 1) * 128 <= k; b++)
        for (int s = 0; s < 8; s++)
            _mm512_store_ps(xp + b * 128 + s * 16, _mm512_i32gather_ps(idx, x + b * 128 + s, 4));
    for (; b < nb; b++)
        for (int s = 0; s < 8; s++)
            for (int j = 0; j < 16; j++) {
                long col = b * 128 + 8 * j + s;
                xp[b * 128 + s * 16 + j] = col < k ? x[col] : 0.0f;
            }
}

/* Row j's 16-lane sum acc[j] reduced to out[j] for j < 4, with 4 rows sharing the shuffles (one
 * 4-way tree instead of four reduce_add). The tree is the same whatever the number of live rows,
 * so a row's result does not depend on how many rows were computed with it. */
static inline void reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3, float out[4])
{
    __m512 a =
        _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44), _mm512_shuffle_f32x4(a0, a1, 0xee));
    __m512 c =
        _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44), _mm512_shuffle_f32x4(a2, a3, 0xee));
    __m512 d = _mm512_add_ps(_mm512_shuffle_f32x4(a, c, 0x88), _mm512_shuffle_f32x4(a, c, 0xdd));
    d = _mm512_add_ps(d, _mm512_permute_ps(d, 0x4e));
    d = _mm512_add_ps(d, _mm512_permute_ps(d, 0xb1));
    const __m512i pick = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm_storeu_ps(out, _mm512_castps512_ps128(_mm512_permutexvar_ps(pick, d)));
}

/* int4 with group 32 (four words per group) or a group that is a multiple of 128, for NR <= 4
 * rows (ldw words apart, scales ng apart in sc) at once: each block's 8 permuted activation
 * vectors are loaded once for all rows, and the rows' chains are independent, so the loop is
 * bound by the unpack (shift + vpermps per 16 weights) and not by the per-row set-up and
 * reduction that dominated short rows (k = 256..512: 2..4 blocks). */
static inline __attribute__((always_inline)) void dot_i4_rows(const uint32_t *p, long ldw,
                                                              const float *sc, long ng, long k,
                                                              long group, const float *xp,
                                                              float out[4], int NR)
{
    const __m512 tbl = _mm512_loadu_ps(i4_table);
    const __m512i g32 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    long nw = k / 8, nb = (nw + 15) / 16;
    /* software prefetch (see dot_bf16) of the same place in the next group of rows, or further
     * when rows are short, so that it runs at least 1 KB ahead of every row's stream */
    long pf = 4 * ldw;
    while (pf < 256)
        pf += 4 * ldw;
    __m512 acc[4];
    for (int j = 0; j < 4; j++)
        acc[j] = _mm512_setzero_ps();
    for (long b = 0; b < nb; b++) {
        __mmask16 mw = tail_mask(nw - b * 16);
        const float *xb = xp + b * 128;
        long left = ng - b * 4;
        /* scale groups in this block (group 32 only; larger groups read one scale) */
        __mmask16 mg = (__mmask16)(left >= 4 ? 0xf : left > 0 ? (1u << left) - 1 : 0);
        _Pragma("GCC unroll 4") for (int j = 0; j < NR; j++)
        {
            const uint32_t *pj = p + j * ldw + b * 16;
            _mm_prefetch((const char *)(pj + pf), _MM_HINT_T0);
            __m512i v = _mm512_maskz_loadu_epi32(mw, pj);
            __m512 t0 = _mm512_mul_ps(_mm512_permutexvar_ps(v, tbl), _mm512_load_ps(xb));
            __m512 t1 = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 16), tbl),
                                      _mm512_load_ps(xb + 64));
            t0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), tbl),
                                 _mm512_load_ps(xb + 16), t0);
            t1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 20), tbl),
                                 _mm512_load_ps(xb + 80), t1);
            t0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 8), tbl),
                                 _mm512_load_ps(xb + 32), t0);
            t1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 24), tbl),
                                 _mm512_load_ps(xb + 96), t1);
            t0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 12), tbl),
                                 _mm512_load_ps(xb + 48), t0);
            t1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 28), tbl),
                                 _mm512_load_ps(xb + 112), t1);
            __m512 s;
            if (group == 32)
                s = _mm512_permutexvar_ps(g32, _mm512_maskz_loadu_ps(mg, sc + j * ng + b * 4));
            else
                s = _mm512_set1_ps(sc[j * ng + b * 128 / group]);
            acc[j] = _mm512_fmadd_ps(_mm512_add_ps(t0, t1), s, acc[j]);
        }
    }
    reduce4(acc[0], acc[1], acc[2], acc[3], out);
}

/* Rows [r0, r1) of an i4_fast weight for one token (xp permuted): groups of 4 rows, then the
 * rest one at a time through the same code. Row r's grouping depends only on r - r0 and r1, and
 * both are whole KERN_MM_ROWS blocks except at n, so results do not depend on the threads. */
static void gemv_i4(const struct kern_weight *w, const float *xp, float *y, long r0, long r1,
                    float *sc)
{
    long k = w->k, ng = k / w->group, ldw = k / 8;
    const uint32_t *p = w->data;
    float o[4];
    long r = r0;
    for (; r + 4 <= r1; r += 4) {
        for (int j = 0; j < 4; j++)
            row_scales(w, r + j, sc + j * ng);
        dot_i4_rows(p + r * ldw, ldw, sc, ng, k, w->group, xp, y + r, 4);
    }
    for (; r < r1; r++) {
        row_scales(w, r, sc);
        dot_i4_rows(p + r * ldw, ldw, sc, ng, k, w->group, xp, o, 1);
        y[r] = o[0];
    }
}

static inline __m512 i8x16(__m128i bytes)
{
    __m128i q = _mm_xor_si128(bytes, _mm_set1_epi8((char)0x80));
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q));
}

/* int8 with a group that is a multiple of 16, or per channel (group == k). */
static float dot_i8(const uint8_t *p, const float *sc, long k, long group, const float *x)
{
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    long ng = k / group;
    for (long g = 0; g < ng; g++) {
        __m512 t0 = _mm512_setzero_ps(), t1 = t0, t2 = t0, t3 = t0;
        long i = g * group, e = i + group;
        if (group < 64)
            _mm_prefetch((const char *)(p + i) + 1024, _MM_HINT_T0); /* see dot_bf16 */
        for (; i + 64 <= e; i += 64) {
            _mm_prefetch((const char *)(p + i) + 1024, _MM_HINT_T0);
            t0 = _mm512_fmadd_ps(i8x16(_mm_loadu_si128((const __m128i *)(p + i))),
                                 _mm512_loadu_ps(x + i), t0);
            t1 = _mm512_fmadd_ps(i8x16(_mm_loadu_si128((const __m128i *)(p + i + 16))),
                                 _mm512_loadu_ps(x + i + 16), t1);
            t2 = _mm512_fmadd_ps(i8x16(_mm_loadu_si128((const __m128i *)(p + i + 32))),
                                 _mm512_loadu_ps(x + i + 32), t2);
            t3 = _mm512_fmadd_ps(i8x16(_mm_loadu_si128((const __m128i *)(p + i + 48))),
                                 _mm512_loadu_ps(x + i + 48), t3);
        }
        for (; i < e; i += 16) {
            __mmask16 m = tail_mask(e - i);
            t0 = _mm512_fmadd_ps(i8x16(_mm_maskz_loadu_epi8(m, p + i)),
                                 _mm512_maskz_loadu_ps(m, x + i), t0);
        }
        __m512 t = _mm512_add_ps(_mm512_add_ps(t0, t1), _mm512_add_ps(t2, t3));
        __m512 s = _mm512_set1_ps(sc[g]);
        if (g & 1)
            acc1 = _mm512_fmadd_ps(t, s, acc1);
        else
            acc0 = _mm512_fmadd_ps(t, s, acc0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

static int i4_fast(const struct kern_weight *w) { return w->group == 32 || w->group % 128 == 0; }
static int i8_fast(const struct kern_weight *w) { return w->group % 16 == 0 || w->group == w->k; }

/* Decode path: rows [r0, r1), tokens one at a time (T < MM_GEMM_T). */
static void gemv(const struct kern_weight *w, const float *x, long T, float *y, long r0, long r1,
                 float *scr)
{
    long k = w->k, n = w->n, kp = (k + 127) & ~127L;
    float *xp = scr + KERN_MM_ROWS * kp; /* [kp + 128] */
    float *sc = xp + kp + 256;           /* [kp / 8 + 16] */
    float *row = scr;                    /* fallback row */
    for (long t = 0; t < T; t++) {
        const float *xt = x + t * k;
        if (w->type == KERN_I4 && i4_fast(w)) {
            i4_permute_x(xt, k, xp);
            gemv_i4(w, xp, y + t * n, r0, r1, sc);
            continue;
        }
        for (long r = r0; r < r1; r++) {
            float v;
            if (w->type == KERN_BF16) {
                v = dot_bf16((const uint16_t *)w->data + r * k, xt, k);
            } else if (w->type == KERN_F32) {
                v = dot_f32((const float *)w->data + r * k, xt, k);
            } else if (w->type == KERN_I8 && i8_fast(w)) {
                row_scales(w, r, sc);
                v = dot_i8((const uint8_t *)w->data + r * k, sc, k, w->group, xt);
            } else {
                kern_dequant_row(w, r, row);
                v = dot_f32(row, xt, k);
            }
            y[t * n + r] = v;
        }
    }
}

/* Row r dequantized exactly into out[kp] (zero padded). */
static void dequant(const struct kern_weight *w, long r, float *out, long kp, float *sc)
{
    long k = w->k, i = 0;
    if (w->type == KERN_BF16) {
        const uint16_t *p = (const uint16_t *)w->data + r * k;
        for (; i + 16 <= k; i += 16)
            _mm512_store_ps(out + i, bf16x16(p + i));
        for (; i < k; i++)
            out[i] = kern_bf16f(p[i]);
    } else if (w->type == KERN_I4 && w->group % 16 == 0) {
        const uint32_t *p = (const uint32_t *)w->data + r * (k / 8);
        const __m512 tbl = _mm512_loadu_ps(i4_table);
        const __m512i pick = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        const __m512i sh =
            _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
        row_scales(w, r, sc);
        for (; i + 16 <= k; i += 16) {
            uint64_t two;
            memcpy(&two, p + i / 8, 8);
            __m512i v = _mm512_permutexvar_epi32(pick, _mm512_set1_epi64((long long)two));
            __m512 q = _mm512_permutexvar_ps(_mm512_srlv_epi32(v, sh), tbl);
            _mm512_store_ps(out + i, _mm512_mul_ps(q, _mm512_set1_ps(sc[i / w->group])));
        }
        for (; i < k; i++)
            out[i] = (float)((int)((p[i / 8] >> (4 * (i % 8))) & 15) - 8) * sc[i / w->group];
    } else if (w->type == KERN_I8 && i8_fast(w)) {
        const uint8_t *p = (const uint8_t *)w->data + r * k;
        row_scales(w, r, sc);
        for (; i + 16 <= k; i += 16) {
            __m512 q = i8x16(_mm_loadu_si128((const __m128i *)(p + i)));
            _mm512_store_ps(out + i, _mm512_mul_ps(q, _mm512_set1_ps(sc[i / w->group])));
        }
        for (; i < k; i++)
            out[i] = (float)((int)p[i] - 128) * sc[i / w->group];
    } else {
        kern_dequant_row(w, r, out);
        i = k;
    }
    for (; i < kp; i++)
        out[i] = 0;
}

/* Prefill blocking: KERN_MM_ROWS dequantized rows x MM_TC tokens x MM_KC columns at a time, so
 * the weight block (16 x 256 floats) stays in L1 and the activation block (64 x 256) in L2; the
 * 16-lane partial sums of every (token, row) pair live in `ab` between column blocks and are
 * reduced at the end. The order of operations per output depends only on k, never on T or on
 * the thread count. */
#define MM_KC 256
#define MM_TC 64

/* One NT-token x NR-row tile over columns [0, kn) of the block: x rows ldx apart, weight rows
 * kp apart (aligned, zero padded), partial sums ab[t][j] (16 floats each, 16 rows per token).
 * Always inlined with constant NT, NR. */
static inline __attribute__((always_inline)) void tile(const float *x, long ldx, long kn,
                                                       const float *wr, long kp, float *ab,
                                                       int first, int NT, int NR)
{
    __m512 acc[4][4];
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++)
        _Pragma("GCC unroll 4") for (int j = 0; j < NR; j++) acc[t][j] =
            first ? _mm512_setzero_ps() : _mm512_load_ps(ab + (t * 16 + j) * 16);
    long i = 0;
    for (; i + 16 <= kn; i += 16) {
        __m512 wv[4];
        _Pragma("GCC unroll 4") for (int j = 0; j < NR; j++) wv[j] =
            _mm512_load_ps(wr + j * kp + i);
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++)
        {
            __m512 xv = _mm512_loadu_ps(x + t * ldx + i);
            _Pragma("GCC unroll 4") for (int j = 0; j < NR; j++) acc[t][j] =
                _mm512_fmadd_ps(xv, wv[j], acc[t][j]);
        }
    }
    if (i < kn) {
        __mmask16 m = tail_mask(kn - i);
        __m512 wv[4];
        _Pragma("GCC unroll 4") for (int j = 0; j < NR; j++) wv[j] =
            _mm512_load_ps(wr + j * kp + i);
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++)
        {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + t * ldx + i);
            _Pragma("GCC unroll 4") for (int j = 0; j < NR; j++) acc[t][j] =
                _mm512_fmadd_ps(xv, wv[j], acc[t][j]);
        }
    }
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; t++)
        _Pragma("GCC unroll 4") for (int j = 0; j < NR; j++)
            _mm512_store_ps(ab + (t * 16 + j) * 16, acc[t][j]);
}

#define TILE(a, b)                                                                                 \
    case (a)*8 + (b): tile(x, ldx, kn, wr, kp, ab, first, a, b); break

static void tile_any(const float *x, long ldx, long kn, const float *wr, long kp, float *ab,
                     int first, int nt, int nr)
{
    switch (nt * 8 + nr) {
        TILE(4, 4);
        TILE(4, 3);
        TILE(4, 2);
        TILE(4, 1);
        TILE(3, 4);
        TILE(3, 3);
        TILE(3, 2);
        TILE(3, 1);
        TILE(2, 4);
        TILE(2, 3);
        TILE(2, 2);
        TILE(2, 1);
        TILE(1, 4);
        TILE(1, 3);
        TILE(1, 2);
        TILE(1, 1);
    }
}

void kern_mm_avx512(const struct kern_weight *w, const float *x, long T, float *y, long r0, long r1,
                    void *scratch)
{
    float *scr = scratch;
    if (T < MM_GEMM_T) {
        gemv(w, x, T, y, r0, r1, scr);
        return;
    }
    long k = w->k, n = w->n, kp = (k + 127) & ~127L;
    float *sc = scr + KERN_MM_ROWS * kp + kp + 256;
    float *ab = scr + kern_mm_scratch(k) / sizeof(float) - MM_TC * 16 * 16; /* 64-byte aligned */
    for (long rb = r0; rb < r1; rb += KERN_MM_ROWS) {
        long nr = r1 - rb < KERN_MM_ROWS ? r1 - rb : KERN_MM_ROWS;
        for (long j = 0; j < nr; j++)
            dequant(w, rb + j, scr + j * kp, kp, sc);
        for (long tc = 0; tc < T; tc += MM_TC) {
            long ntc = T - tc < MM_TC ? T - tc : MM_TC;
            for (long k0 = 0; k0 < k; k0 += MM_KC) {
                long kn = k - k0 < MM_KC ? k - k0 : MM_KC;
                for (long t0 = 0; t0 < ntc; t0 += 4) {
                    int nt = ntc - t0 < 4 ? (int)(ntc - t0) : 4;
                    for (long rr = 0; rr < nr; rr += 4) {
                        int nrr = nr - rr < 4 ? (int)(nr - rr) : 4;
                        tile_any(x + (tc + t0) * k + k0, k, kn, scr + rr * kp + k0, kp,
                                 ab + (t0 * 16 + rr) * 16, k0 == 0, nt, nrr);
                    }
                }
            }
            for (long t = 0; t < ntc; t++)
                for (long j = 0; j < nr; j++)
                    y[(tc + t) * n + rb + j] =
                        _mm512_reduce_add_ps(_mm512_load_ps(ab + (t * 16 + j) * 16));
        }
    }
}
