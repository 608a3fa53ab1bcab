/* vec_avx512.c - AVX-512 vector helpers for attention and the delta rule (kern_cpu.h). */
#include "kernels/cpu/kern_cpu.h"
#include "kernels/cpu/vexp.h"

#include <immintrin.h>
#include <math.h>

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

/* x / (1 + e^-x); e^-x saturates at e^88, where the quotient is -0 instead of a denormal */
static inline __m512 silu16(__m512 x)
{
    __m512 e = kv_exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

static void swiglu(float *y, const float *g, const float *u, long n)
{
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 s = silu16(_mm512_maskz_loadu_ps(m, g + i));
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, u + i)));
    }
}

static void silu(float *y, const float *x, long n)
{
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, silu16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

static void mul_sigmoid(float *y, const float *g, long n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 e = kv_exp512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(m, g + i)));
        __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, y + i), s));
    }
}

static void norm(float *y, const float *x, const float *w, long n, float eps)
{
    __m512 ss = _mm512_setzero_ps();
    for (long i = 0; i < n; i += 16) {
        __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
        ss = _mm512_fmadd_ps(v, v, ss);
    }
    __m512 inv = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(ss) / (float)n + eps));
    const __m512 one = _mm512_set1_ps(1.0f);
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv);
        _mm512_mask_storeu_ps(
            y + i, m, _mm512_mul_ps(v, _mm512_add_ps(one, _mm512_maskz_loadu_ps(m, w + i))));
    }
}

static void norm_gated(float *y, const float *x, const float *z, const float *w, long n, float eps)
{
    __m512 ss = _mm512_setzero_ps();
    for (long i = 0; i < n; i += 16) {
        __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
        ss = _mm512_fmadd_ps(v, v, ss);
    }
    __m512 inv = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(ss) / (float)n + eps));
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv);
        __m512 g = silu16(_mm512_maskz_loadu_ps(m, z + i));
        _mm512_mask_storeu_ps(y + i, m,
                              _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, w + i), v), g));
    }
}

static void conv_row(float *y, const float *x, long ldx, const float *wt, long ldw, int kw, long n)
{
    for (long c = 0; c < n; c += 16) {
        __mmask16 m = tail_mask(n - c);
        __m512 acc = _mm512_setzero_ps();
        for (int q = 0; q < kw; q++) {
            __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, wt + q * ldw + c),
                                     _mm512_maskz_loadu_ps(m, x + q * ldx + c));
            /* keeps the compiler from contracting the product and the add into an FMA */
            __asm__("" : "+v"(p));
            acc = _mm512_add_ps(acc, p);
        }
        _mm512_mask_storeu_ps(y + c, m, acc);
    }
}

const struct kern_vec kern_vec_avx512 = { kern_dot_avx512, axpy,    scale, load,        sum,
                                          axpy_rows,       swiglu,  silu,  mul_sigmoid, norm,
                                          norm_gated,      conv_row };
