/*
 * matmul_avx512.c - y = x W^T with AVX-512 (F, BW, VL, DQ), built with those flags and called
 * only when cpuid says the CPU has them (matmul.c).
 *
 * Decode (T < 4): each row is streamed once and dotted with the fp32 activations, 4 rows per
 * pass (sharing the activation loads and the final reduction; one-row-at-a-time kernels spent
 * as much time on per-row set-up and reduction as on short rows, and left bandwidth unused).
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
 * Prefill (T >= 4): kern_gemm_avx512 in gemm_avx512.c.
 * Activations are never quantized: the results differ from the reference only by fp32 summation
 * order.
 */
#include "kernels/cpu/kern_cpu.h"

#include <immintrin.h>
#include <string.h>

#define MM_GEMM_T 4

/* Software prefetch of the row-group kernels: the hardware streamer restarts at every 4 KB page
 * and alone leaves DRAM bandwidth unused, so each row's stream is prefetched at the same column
 * GV_PF_ROWS rows on, in the next group of 4 rows (at least 1 KB ahead). Prefetching 2 KB ahead
 * in the same row, as the one-row kernels did, lands in the rows this group is already reading:
 * on the 2-vCPU development VM that gave 14 GB/s against 21-26 GB/s for the next group, with
 * 8 rows ahead no better and the NTA / T1 hints worse. */
#define GV_PF_ROWS 4

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
        _mm_prefetch((const char *)(a + i) + 2048, _MM_HINT_T0); /* see GV_PF_ROWS */
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
    /* software prefetch (see GV_PF_ROWS) of the same place in the next group of rows, or further
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

/* NR <= 4 bf16 rows (k apart) dotted with x: each 16-column activation vector is loaded once
 * for all rows, two FMA chains per row hide the FMA latency, and the four sums share one
 * reduction (reduce4). A row's result depends only on k, not on NR. */
static inline __attribute__((always_inline)) void
dot_bf16_rows(const uint16_t *w, long k, const float *x, float out[4], int NR)
{
    __m512 a[4], b[4];
    for (int j = 0; j < 4; j++)
        a[j] = b[j] = _mm512_setzero_ps();
    long pf = (long)GV_PF_ROWS * k;
    while (pf < 1024)
        pf += (long)GV_PF_ROWS * k;
    long i = 0;
    for (; i + 32 <= k; i += 32) {
        __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
        _Pragma("GCC unroll 4") for (int j = 0; j < NR; j++)
        {
            const uint16_t *wj = w + j * k + i;
            _mm_prefetch((const char *)(wj + pf), _MM_HINT_T0);
            a[j] = _mm512_fmadd_ps(bf16x16(wj), x0, a[j]);
            b[j] = _mm512_fmadd_ps(bf16x16(wj + 16), x1, b[j]);
        }
    }
    for (; i < k; i += 16) {
        __mmask16 m = tail_mask(k - i);
        __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
        _Pragma("GCC unroll 4") for (int j = 0; j < NR; j++)
        {
            __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, w + j * k + i));
            a[j] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), xv, a[j]);
        }
    }
    reduce4(_mm512_add_ps(a[0], b[0]), _mm512_add_ps(a[1], b[1]), _mm512_add_ps(a[2], b[2]),
            _mm512_add_ps(a[3], b[3]), out);
}

/* Rows [r0, r1) of a bf16 weight: groups of 4 rows from r0 (a multiple of KERN_MM_ROWS), the
 * rest (only at n) one at a time through the same code, so results do not depend on the
 * threads (see gemv_i4). */
static void gemv_bf16(const struct kern_weight *w, const float *x, float *y, long r0, long r1)
{
    long k = w->k;
    const uint16_t *p = w->data;
    float o[4];
    long r = r0;
    for (; r + 4 <= r1; r += 4)
        dot_bf16_rows(p + r * k, k, x, y + r, 4);
    for (; r < r1; r++) {
        dot_bf16_rows(p + r * k, k, x, o, 1);
        y[r] = o[0];
    }
}

/* NR <= 4 int8 rows (k apart, scales ng apart in sc) with a group that is a multiple of 16 or
 * per channel: per group, one 16-lane partial sum per row, scaled into the row's accumulator.
 * Shares activation loads and the reduction like dot_bf16_rows. */
static inline __attribute__((always_inline)) void dot_i8_rows(const uint8_t *p, long k,
                                                              const float *sc, long ng, long group,
                                                              const float *x, float out[4], int NR)
{
    __m512 acc[4];
    for (int j = 0; j < 4; j++)
        acc[j] = _mm512_setzero_ps();
    long pf = (long)GV_PF_ROWS * k;
    while (pf < 1024)
        pf += (long)GV_PF_ROWS * k;
    for (long g = 0; g < ng; g++) {
        __m512 t[4], u[4];
        for (int j = 0; j < 4; j++)
            t[j] = u[j] = _mm512_setzero_ps();
        long i = g * group, e = i + group;
        for (; i + 32 <= e; i += 32) {
            __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
            _Pragma("GCC unroll 4") for (int j = 0; j < NR; j++)
            {
                const uint8_t *pj = p + j * k + i;
                /* one line per row every other pass: 64 bytes per 64 columns */
                if (!(i & 32))
                    _mm_prefetch((const char *)(pj + pf), _MM_HINT_T0);
                t[j] = _mm512_fmadd_ps(i8x16(_mm_loadu_si128((const __m128i *)pj)), x0, t[j]);
                u[j] =
                    _mm512_fmadd_ps(i8x16(_mm_loadu_si128((const __m128i *)(pj + 16))), x1, u[j]);
            }
        }
        for (; i < e; i += 16) {
            __mmask16 m = tail_mask(e - i);
            __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
            _Pragma("GCC unroll 4") for (int j = 0; j < NR; j++) t[j] =
                _mm512_fmadd_ps(i8x16(_mm_maskz_loadu_epi8(m, p + j * k + i)), xv, t[j]);
        }
        _Pragma("GCC unroll 4") for (int j = 0; j < NR; j++) acc[j] =
            _mm512_fmadd_ps(_mm512_add_ps(t[j], u[j]), _mm512_set1_ps(sc[j * ng + g]), acc[j]);
    }
    reduce4(acc[0], acc[1], acc[2], acc[3], out);
}

/* Rows [r0, r1) of an int8 weight (i8_fast), grouped as in gemv_bf16. */
static void gemv_i8(const struct kern_weight *w, const float *x, float *y, long r0, long r1,
                    float *sc)
{
    long k = w->k, ng = k / w->group;
    const uint8_t *p = w->data;
    float o[4];
    long r = r0;
    for (; r + 4 <= r1; r += 4) {
        for (int j = 0; j < 4; j++)
            row_scales(w, r + j, sc + j * ng);
        dot_i8_rows(p + r * k, k, sc, ng, w->group, x, y + r, 4);
    }
    for (; r < r1; r++) {
        row_scales(w, r, sc);
        dot_i8_rows(p + r * k, k, sc, ng, w->group, x, o, 1);
        y[r] = o[0];
    }
}

static int i4_fast(const struct kern_weight *w) { return w->group == 32 || w->group % 128 == 0; }
static int i8_fast(const struct kern_weight *w) { return w->group % 16 == 0 || w->group == w->k; }

/* Decode path: rows [r0, r1), tokens one at a time (T < MM_GEMM_T). */
static void gemv(const struct kern_weight *w, const float *x, long T, float *y, long r0, long r1,
                 float *scr)
{
    long k = w->k, n = w->n, kp = (k + 127) & ~127L;
    float *xp = scr + KERN_MM_ROWS * kp; /* [kp + 128] */
    float *sc = xp + kp + 256;           /* [kp / 4 + 64]: 4 rows' scales */
    float *row = scr;                    /* fallback row */
    for (long t = 0; t < T; t++) {
        const float *xt = x + t * k;
        if (w->type == KERN_I4 && i4_fast(w)) {
            i4_permute_x(xt, k, xp);
            gemv_i4(w, xp, y + t * n, r0, r1, sc);
            continue;
        }
        if (w->type == KERN_BF16) {
            gemv_bf16(w, xt, y + t * n, r0, r1);
            continue;
        }
        if (w->type == KERN_I8 && i8_fast(w)) {
            gemv_i8(w, xt, y + t * n, r0, r1, sc);
            continue;
        }
        for (long r = r0; r < r1; r++) {
            float v;
            if (w->type == KERN_F32) {
                v = dot_f32((const float *)w->data + r * k, xt, k);
            } else {
                kern_dequant_row(w, r, row);
                v = dot_f32(row, xt, k);
            }
            y[t * n + r] = v;
        }
    }
}

void kern_mm_avx512(const struct kern_weight *w, const float *x, long T, float *y, long r0, long r1,
                    void *scratch)
{
    if (T < MM_GEMM_T) {
        gemv(w, x, T, y, r0, r1, scratch);
        return;
    }
    kern_gemm_avx512(w, x, T, y, r0, r1, scratch); /* prefill: gemm_avx512.c */
}
