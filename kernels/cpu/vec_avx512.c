/* vec_avx512.c - AVX-512 vector helpers for attention and the delta rule (kern_cpu.h). */
#include "kernels/cpu/kern_cpu.h"

#include <immintrin.h>

static inline __mmask16 tail_mask(long left)
{
    return left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1);
}

static void axpy(float *y, float a, const float *x, long n)
{
    __m512 av = _mm512_set1_ps(a);
    long i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i,
                         _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512 r =
            _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, r);
    }
}

static void scale(float *y, float a, long n)
{
    __m512 av = _mm512_set1_ps(a);
    long i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_mul_ps(av, _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(av, _mm512_maskz_loadu_ps(m, y + i)));
    }
}

/* fp8 e4m3 -> fp32 without ever forming an fp32 denormal (an operand that would cost a
 * microcode assist per instruction): the 7 magnitude bits go to bit 20 and the exponent is
 * rebased by +120, which is exact for normal codes; subnormal codes (exponent 0, m * 2^-9) come
 * out as 2^-7 + m * 2^-10 and are fixed up as 2 * (v - 2^-7). Then the sign and the scale. */
static inline __m512 fp8x16(__m128i b, __m512 scale)
{
    __m512i v = _mm512_cvtepu8_epi32(b);
    __m512i mag = _mm512_slli_epi32(_mm512_and_si512(v, _mm512_set1_epi32(0x7f)), 20);
    __m512 f = _mm512_castsi512_ps(_mm512_add_epi32(mag, _mm512_set1_epi32(120 << 23)));
    __mmask16 sub = _mm512_testn_epi32_mask(v, _mm512_set1_epi32(0x78));
    f = _mm512_mask_sub_ps(f, sub, f, _mm512_set1_ps(0x1p-7f));
    f = _mm512_mask_add_ps(f, sub, f, f);
    __m512i sgn = _mm512_slli_epi32(_mm512_and_si512(v, _mm512_set1_epi32(0x80)), 24);
    f = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(f), sgn));
    return _mm512_mul_ps(f, scale);
}

static void load(float *dst, const void *src, int type, long n, float s)
{
    long i = 0;
    if (type == KERN_F32) {
        const float *p = src;
        __m512 sv = _mm512_set1_ps(s);
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(dst + i, _mm512_mul_ps(_mm512_loadu_ps(p + i), sv));
        for (; i < n; i++)
            dst[i] = p[i] * s;
    } else if (type == KERN_BF16) {
        const uint16_t *p = src;
        __m512 sv = _mm512_set1_ps(s);
        for (; i + 16 <= n; i += 16) {
            __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p + i)));
            _mm512_storeu_ps(dst + i,
                             _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), sv));
        }
        for (; i < n; i++)
            dst[i] = kern_bf16f(p[i]) * s;
    } else {
        const uint8_t *p = src;
        __m512 mul = _mm512_set1_ps(s);
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(dst + i, fp8x16(_mm_loadu_si128((const __m128i *)(p + i)), mul));
        for (; i < n; i++)
            dst[i] = kern_fp8_to_f32(p[i]) * s;
    }
}

static float sum(const float *x, long n)
{
    __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a;
    for (long i = 0; i < n; i += 64) {
        /* the same software prefetch as the matrix kernels, so the reference read is the best
         * streaming read these kernels could do */
        for (int l = 0; l < 4; l++)
            _mm_prefetch((const char *)(x + i) + 2048 + 64 * l, _MM_HINT_T0);
        a = _mm512_add_ps(a, _mm512_load_ps(x + i));
        b = _mm512_add_ps(b, _mm512_load_ps(x + i + 16));
        c = _mm512_add_ps(c, _mm512_load_ps(x + i + 32));
        d = _mm512_add_ps(d, _mm512_load_ps(x + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
}

/* 128 floats of y (8 zmm) stay in registers while all rows are added in */
static void axpy_rows(float *y, const float *e, const float *rows, long ld, long nr, long n)
{
    long i = 0;
    for (; i + 128 <= n; i += 128) {
        __m512 a[8];
        for (int j = 0; j < 8; j++)
            a[j] = _mm512_loadu_ps(y + i + 16 * j);
        for (long r = 0; r < nr; r++) {
            __m512 ev = _mm512_set1_ps(e[r]);
            const float *row = rows + r * ld + i;
            for (int j = 0; j < 8; j++)
                a[j] = _mm512_fmadd_ps(ev, _mm512_loadu_ps(row + 16 * j), a[j]);
        }
        for (int j = 0; j < 8; j++)
            _mm512_storeu_ps(y + i + 16 * j, a[j]);
    }
    for (long r = 0; i < n && r < nr; r++)
        axpy(y + i, e[r], rows + r * ld + i, n - i);
}

const struct kern_vec kern_vec_avx512 = { kern_dot_avx512, axpy, scale, load, sum, axpy_rows };
