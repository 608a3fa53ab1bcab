/*
 * matmul_avx2.c - y = x W^T with AVX2 + FMA, the same plan as matmul_avx512.c on 8 lanes:
 * decode streams each row once (int4: lane j = packed word j, nibble s shifted down and
 * converted; int8: xor 0x80 and sign-extend); prefill (T >= 4) is kern_gemm_avx2 in
 * gemm_avx2.c. Tails that do not fill a vector are done in scalar code, in a fixed order, so a
 * row's result depends only on the row.
 */
#include "kernels/cpu/kern_cpu.h"

#include <immintrin.h>

#define MM_GEMM_T 4

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static void row_scales(const struct kern_weight *w, long r, float *out)
{
    long ng = w->k / w->group;
    for (long g = 0; g < ng; g++)
        out[g] = kern_scale_at(w, r * ng + g);
}

static float dot_f32(const float *a, const float *b, long k)
{
    /* four accumulator chains: one FMA chain alone is latency bound */
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    long i = 0;
    for (; i + 32 <= k; i += 32) {
        _mm_prefetch((const char *)(a + i) + 2048, _MM_HINT_T0);
        _mm_prefetch((const char *)(a + i) + 2048 + 64, _MM_HINT_T0);
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= k; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < k; i++)
        s += a[i] * b[i];
    return s;
}

float kern_dot_avx2(const float *a, const float *b, long n) { return dot_f32(a, b, n); }

static inline __m256 bf16x8(const uint16_t *p)
{
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/* NR <= 4 bf16 rows (k apart) dotted with x, as dot_bf16_rows in matmul_avx512.c: each
 * activation vector is loaded once for all rows, and the software prefetch runs in the next
 * group of 4 rows (>= 1 KB ahead), not 2 KB ahead in the same row, which the neighbouring rows
 * of this group are already reading. A row's result depends only on k, not on NR. */
static inline __attribute__((always_inline)) void dot_bf16_rows(const uint16_t *w, long k,
                                                                const float *x, float *out, int NR)
{
    __m256 a[4], b[4];
    for (int j = 0; j < 4; j++)
        a[j] = b[j] = _mm256_setzero_ps();
    long pf = 4 * k;
    while (pf < 512)
        pf += 4 * k;
    long i = 0;
    for (; i + 16 <= k; i += 16) {
        __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
        _Pragma("GCC unroll 4") for (int j = 0; j < NR; j++)
        {
            const uint16_t *wj = w + j * k + i;
            if (!(i & 16)) /* one 64-byte line per row every other pass */
                _mm_prefetch((const char *)(wj + pf), _MM_HINT_T0);
            a[j] = _mm256_fmadd_ps(bf16x8(wj), x0, a[j]);
            b[j] = _mm256_fmadd_ps(bf16x8(wj + 8), x1, b[j]);
        }
    }
    for (; i + 8 <= k; i += 8) {
        __m256 xv = _mm256_loadu_ps(x + i);
        _Pragma("GCC unroll 4") for (int j = 0; j < NR; j++) a[j] =
            _mm256_fmadd_ps(bf16x8(w + j * k + i), xv, a[j]);
    }
    _Pragma("GCC unroll 4") for (int j = 0; j < NR; j++)
    {
        float s = hsum(_mm256_add_ps(a[j], b[j]));
        for (long t = i; t < k; t++)
            s += kern_bf16f(w[j * k + t]) * x[t];
        out[j] = s;
    }
}

/* Rows [r0, r1) of a bf16 weight in groups of 4 from r0 (a multiple of KERN_MM_ROWS), the rest
 * (only at n) one at a time, so results do not depend on the threads. */
static void gemv_bf16(const struct kern_weight *w, const float *x, float *y, long r0, long r1)
{
    long k = w->k;
    const uint16_t *p = w->data;
    long r = r0;
    for (; r + 4 <= r1; r += 4)
        dot_bf16_rows(p + r * k, k, x, y + r, 4);
    for (; r < r1; r++)
        dot_bf16_rows(p + r * k, k, x, y + r, 1);
}

/* xp[b*64 + s*8 + j] = x[b*64 + 8j + s] for the whole 64-column blocks. */
static void i4_permute_x(const float *x, long k, float *xp)
{
    long nb = k / 64;
    for (long b = 0; b < nb; b++)
        for (int s = 0; s < 8; s++)
            for (int j = 0; j < 8; j++)
                xp[b * 64 + s * 8 + j] = x[b * 64 + 8 * j + s];
}

static inline __m256 nib(__m256i v, int sh)
{
    __m256i q = _mm256_and_si256(_mm256_srli_epi32(v, sh), _mm256_set1_epi32(15));
    return _mm256_sub_ps(_mm256_cvtepi32_ps(q), _mm256_set1_ps(8.0f));
}

/* int4, group 32 or a multiple of 64. */
static float dot_i4(const uint32_t *p, const float *sc, long k, long group, const float *xp,
                    const float *x)
{
    long nb = k / 64;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (long b = 0; b < nb; b++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(p + b * 8));
        const float *xb = xp + b * 64;
        __m256 t0 = _mm256_mul_ps(nib(v, 0), _mm256_loadu_ps(xb));
        __m256 t1 = _mm256_mul_ps(nib(v, 16), _mm256_loadu_ps(xb + 32));
        t0 = _mm256_fmadd_ps(nib(v, 4), _mm256_loadu_ps(xb + 8), t0);
        t1 = _mm256_fmadd_ps(nib(v, 20), _mm256_loadu_ps(xb + 40), t1);
        t0 = _mm256_fmadd_ps(nib(v, 8), _mm256_loadu_ps(xb + 16), t0);
        t1 = _mm256_fmadd_ps(nib(v, 24), _mm256_loadu_ps(xb + 48), t1);
        t0 = _mm256_fmadd_ps(nib(v, 12), _mm256_loadu_ps(xb + 24), t0);
        t1 = _mm256_fmadd_ps(nib(v, 28), _mm256_loadu_ps(xb + 56), t1);
        __m256 s;
        if (group == 32)
            s = _mm256_set_m128(_mm_set1_ps(sc[2 * b + 1]), _mm_set1_ps(sc[2 * b]));
        else
            s = _mm256_set1_ps(sc[b * 64 / group]);
        if (b & 1)
            acc1 = _mm256_fmadd_ps(_mm256_add_ps(t0, t1), s, acc1);
        else
            acc0 = _mm256_fmadd_ps(_mm256_add_ps(t0, t1), s, acc0);
    }
    float r = hsum(_mm256_add_ps(acc0, acc1));
    for (long i = nb * 64; i < k; i++)
        r += (float)((int)((p[i / 8] >> (4 * (i % 8))) & 15) - 8) * sc[i / group] * x[i];
    return r;
}

static inline __m256 i8x8(const uint8_t *p)
{
    __m128i q = _mm_xor_si128(_mm_loadl_epi64((const __m128i *)p), _mm_set1_epi8((char)0x80));
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
}

/* int8, group a multiple of 16 or per channel. */
static float dot_i8(const uint8_t *p, const float *sc, long k, long group, const float *x)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float tail = 0;
    long ng = k / group;
    for (long g = 0; g < ng; g++) {
        __m256 t0 = _mm256_setzero_ps(), t1 = _mm256_setzero_ps();
        long i = g * group, e = i + group;
        for (; i + 16 <= e; i += 16) {
            t0 = _mm256_fmadd_ps(i8x8(p + i), _mm256_loadu_ps(x + i), t0);
            t1 = _mm256_fmadd_ps(i8x8(p + i + 8), _mm256_loadu_ps(x + i + 8), t1);
        }
        float ts = 0;
        for (; i < e; i++)
            ts += (float)((int)p[i] - 128) * x[i];
        tail += ts * sc[g];
        __m256 s = _mm256_set1_ps(sc[g]);
        if (g & 1)
            acc1 = _mm256_fmadd_ps(_mm256_add_ps(t0, t1), s, acc1);
        else
            acc0 = _mm256_fmadd_ps(_mm256_add_ps(t0, t1), s, acc0);
    }
    return hsum(_mm256_add_ps(acc0, acc1)) + tail;
}

static int i4_fast(const struct kern_weight *w) { return w->group == 32 || w->group % 64 == 0; }
static int i8_fast(const struct kern_weight *w) { return w->group % 16 == 0 || w->group == w->k; }

static void gemv(const struct kern_weight *w, const float *x, long T, float *y, long r0, long r1,
                 float *scr)
{
    long k = w->k, n = w->n, kp = (k + 127) & ~127L;
    float *xp = scr + KERN_MM_ROWS * kp;
    float *sc = xp + kp + 256;
    float *row = scr;
    for (long t = 0; t < T; t++) {
        const float *xt = x + t * k;
        if (w->type == KERN_BF16) {
            gemv_bf16(w, xt, y + t * n, r0, r1);
            continue;
        }
        if (w->type == KERN_I4 && i4_fast(w))
            i4_permute_x(xt, k, xp);
        for (long r = r0; r < r1; r++) {
            float v;
            if (w->type == KERN_F32) {
                v = dot_f32((const float *)w->data + r * k, xt, k);
            } else if (w->type == KERN_I4 && i4_fast(w)) {
                row_scales(w, r, sc);
                v = dot_i4((const uint32_t *)w->data + r * (k / 8), sc, k, w->group, xp, xt);
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

void kern_mm_avx2(const struct kern_weight *w, const float *x, long T, float *y, long r0, long r1,
                  void *scratch)
{
    if (T < MM_GEMM_T) {
        gemv(w, x, T, y, r0, r1, scratch);
        return;
    }
    kern_gemm_avx2(w, x, T, y, r0, r1, scratch); /* prefill: gemm_avx2.c */
}
