/* vec_avx2.c - AVX2 vector helpers for attention and the delta rule (kern_cpu.h). */
#include "kernels/cpu/kern_cpu.h"
#include "kernels/cpu/vexp.h"

#include <immintrin.h>
#include <math.h>

static void axpy(float *y, float a, const float *x, long n)
{
    __m256 av = _mm256_set1_ps(a);
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

static void scale(float *y, float a, long n)
{
    __m256 av = _mm256_set1_ps(a);
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(av, _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] *= a;
}

static void load(float *dst, const void *src, int type, long n, float s)
{
    long i = 0;
    __m256 sv = _mm256_set1_ps(s);
    if (type == KERN_F32) {
        const float *p = src;
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_mul_ps(_mm256_loadu_ps(p + i), sv));
        for (; i < n; i++)
            dst[i] = p[i] * s;
    } else if (type == KERN_BF16) {
        const uint16_t *p = src;
        for (; i + 8 <= n; i += 8) {
            __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + i)));
            _mm256_storeu_ps(dst + i,
                             _mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), sv));
        }
        for (; i < n; i++)
            dst[i] = kern_bf16f(p[i]) * s;
    } else {
        const uint8_t *p = src;
        /* as vec_avx512.c: no fp32 denormal is ever formed */
        for (; i + 8 <= n; i += 8) {
            __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + i)));
            __m256i mag = _mm256_slli_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0x7f)), 20);
            __m256 f = _mm256_castsi256_ps(_mm256_add_epi32(mag, _mm256_set1_epi32(120 << 23)));
            __m256 sub = _mm256_castsi256_ps(_mm256_cmpeq_epi32(
                _mm256_and_si256(v, _mm256_set1_epi32(0x78)), _mm256_setzero_si256()));
            __m256 fix =
                _mm256_mul_ps(_mm256_sub_ps(f, _mm256_set1_ps(0x1p-7f)), _mm256_set1_ps(2));
            f = _mm256_blendv_ps(f, fix, sub);
            __m256i sgn = _mm256_slli_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0x80)), 24);
            f = _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(f), sgn));
            _mm256_storeu_ps(dst + i, _mm256_mul_ps(f, sv));
        }
        for (; i < n; i++)
            dst[i] = kern_fp8_to_f32(p[i]) * s;
    }
}

static float sum(const float *x, long n)
{
    __m256 a = _mm256_setzero_ps(), b = a, c = a, d = a;
    for (long i = 0; i < n; i += 32) {
        _mm_prefetch((const char *)(x + i) + 2048, _MM_HINT_T0);
        _mm_prefetch((const char *)(x + i) + 2048 + 64, _MM_HINT_T0);
        a = _mm256_add_ps(a, _mm256_load_ps(x + i));
        b = _mm256_add_ps(b, _mm256_load_ps(x + i + 8));
        c = _mm256_add_ps(c, _mm256_load_ps(x + i + 16));
        d = _mm256_add_ps(d, _mm256_load_ps(x + i + 24));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d));
    float t[8];
    _mm256_storeu_ps(t, s);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

/* 64 floats of y (8 ymm) stay in registers while all rows are added in */
static void axpy_rows(float *y, const float *e, const float *rows, long ld, long nr, long n)
{
    long i = 0;
    for (; i + 64 <= n; i += 64) {
        __m256 a[8];
        for (int j = 0; j < 8; j++)
            a[j] = _mm256_loadu_ps(y + i + 8 * j);
        for (long r = 0; r < nr; r++) {
            __m256 ev = _mm256_set1_ps(e[r]);
            const float *row = rows + r * ld + i;
            for (int j = 0; j < 8; j++)
                a[j] = _mm256_fmadd_ps(ev, _mm256_loadu_ps(row + 8 * j), a[j]);
        }
        for (int j = 0; j < 8; j++)
            _mm256_storeu_ps(y + i + 8 * j, a[j]);
    }
    for (long r = 0; i < n && r < nr; r++)
        axpy(y + i, e[r], rows + r * ld + i, n - i);
}

/* x / (1 + e^-x), as in vec_avx512.c; tails go through the scalar formulas */
static inline __m256 silu8(__m256 x)
{
    __m256 e = kv_exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static void swiglu(float *y, const float *g, const float *u, long n)
{
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_mul_ps(silu8(_mm256_loadu_ps(g + i)), _mm256_loadu_ps(u + i)));
    for (; i < n; i++)
        y[i] = kern_silu1(g[i]) * u[i];
}

static void silu(float *y, const float *x, long n)
{
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, silu8(_mm256_loadu_ps(x + i)));
    for (; i < n; i++)
        y[i] = kern_silu1(x[i]);
}

static void mul_sigmoid(float *y, const float *g, long n)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = kv_exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_loadu_ps(g + i)));
        __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, e));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), s));
    }
    for (; i < n; i++)
        y[i] *= kern_sigmoid1(g[i]);
}

static void norm(float *y, const float *x, const float *w, long n, float eps)
{
    __m256 ss = _mm256_setzero_ps();
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        ss = _mm256_fmadd_ps(v, v, ss);
    }
    float t[8], s = 0;
    _mm256_storeu_ps(t, ss);
    for (int j = 0; j < 8; j++)
        s += t[j];
    for (; i < n; i++)
        s += x[i] * x[i];
    float inv = 1.0f / sqrtf(s / (float)n + eps);
    __m256 iv = _mm256_set1_ps(inv), one = _mm256_set1_ps(1.0f);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), iv);
        _mm256_storeu_ps(y + i, _mm256_mul_ps(v, _mm256_add_ps(one, _mm256_loadu_ps(w + i))));
    }
    for (; i < n; i++)
        y[i] = x[i] * inv * (1.0f + w[i]);
}

static void norm_gated(float *y, const float *x, const float *z, const float *w, long n, float eps)
{
    __m256 ss = _mm256_setzero_ps();
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        ss = _mm256_fmadd_ps(v, v, ss);
    }
    float t[8], s = 0;
    _mm256_storeu_ps(t, ss);
    for (int j = 0; j < 8; j++)
        s += t[j];
    for (; i < n; i++)
        s += x[i] * x[i];
    float inv = 1.0f / sqrtf(s / (float)n + eps);
    __m256 iv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), iv);
        __m256 g = silu8(_mm256_loadu_ps(z + i));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(w + i), v), g));
    }
    for (; i < n; i++)
        y[i] = w[i] * (x[i] * inv) * kern_silu1(z[i]);
}

static void conv_row(float *y, const float *x, long ldx, const float *wt, long ldw, int kw, long n)
{
    long c = 0;
    for (; c + 8 <= n; c += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int q = 0; q < kw; q++) {
            __m256 p =
                _mm256_mul_ps(_mm256_loadu_ps(wt + q * ldw + c), _mm256_loadu_ps(x + q * ldx + c));
            /* keeps the compiler from contracting the product and the add into an FMA */
            __asm__("" : "+v"(p));
            acc = _mm256_add_ps(acc, p);
        }
        _mm256_storeu_ps(y + c, acc);
    }
    for (; c < n; c++) {
        float acc = 0;
        for (int q = 0; q < kw; q++) {
            float p = wt[q * ldw + c] * x[q * ldx + c];
            __asm__("" : "+v"(p));
            acc += p;
        }
        y[c] = acc;
    }
}

const struct kern_vec kern_vec_avx2 = { kern_dot_avx2, axpy,      scale,      load,
                                        sum,           axpy_rows, swiglu,     silu,
                                        mul_sigmoid,   norm,      norm_gated, conv_row };
