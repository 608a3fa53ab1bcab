/*
 * cpu.c - the CPU kernel context (thread pool, ISA choice, scratch), run-time ISA detection,
 * element conversions and the small single-threaded ops: norms, activations, softmax, argmax,
 * RoPE and the MoE router. These small ops are O(n) per token and are not worth per-ISA code;
 * each exists once and is its own reference.
 */
#include "kernels/cpu/kern_cpu.h"

#include "common/err.h"
#include "common/pool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ ISA detection */

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
/* F16C is CPUID.1:ECX bit 29; clang's __builtin_cpu_supports does not know "f16c". */
static int has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1);
}
#endif

int kern_isa_supported(int isa)
{
    switch (isa) {
    case KERN_ISA_SCALAR: return 1;
#if defined(__x86_64__) || defined(__i386__)
    /* __builtin_cpu_supports checks the OS's xsave state (XCR0) for AVX and AVX-512 too. */
    case KERN_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    case KERN_ISA_AVX512:
        return kern_isa_supported(KERN_ISA_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq");
#endif
    default: return 0;
    }
}

const char *kern_isa_name(int isa)
{
    switch (isa) {
    case KERN_ISA_SCALAR: return "scalar";
    case KERN_ISA_AVX2: return "avx2";
    case KERN_ISA_AVX512: return "avx512";
    case KERN_ISA_AUTO: return "auto";
    default: return "?";
    }
}

int kern_isa_best(void)
{
    int best = KERN_ISA_AVX512;
    while (best > KERN_ISA_SCALAR && !kern_isa_supported(best))
        best--;
    const char *e = getenv("LODE_KERN_ISA");
    if (e && *e) {
        for (int i = KERN_ISA_SCALAR; i <= KERN_ISA_AVX512; i++)
            if (!strcmp(e, kern_isa_name(i)) && i < best)
                best = i;
    }
    return best;
}

const char *kern_dtype_name(int dtype)
{
    static const char *names[] = { "f32", "bf16", "f16", "fp8_e4m3", "int4", "int8" };
    return dtype >= 0 && dtype <= KERN_I8 ? names[dtype] : "?";
}

/* ------------------------------------------------------------------ context */

int kern_cpu_new(struct kern_cpu **out, int threads, int isa)
{
    *out = NULL;
    if (isa == KERN_ISA_AUTO)
        isa = kern_isa_best();
    if (!kern_isa_supported(isa))
        return err_set(ERR_UNSUPPORTED, "this CPU cannot run the %s kernels", kern_isa_name(isa));
    struct kern_cpu *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(ERR_NOMEM, "out of memory");
    c->isa = isa;
    int rc = pool_new(&c->pool, threads);
    if (rc < 0) {
        kern_cpu_free(c);
        return rc;
    }
    c->nthreads = pool_size(c->pool);
    c->scratch = calloc((size_t)c->nthreads, sizeof *c->scratch);
    if (!c->scratch) {
        kern_cpu_free(c);
        return err_set(ERR_NOMEM, "out of memory");
    }
    *out = c;
    return 0;
}

/* Denormals: the delta rule's decays (e^(gamma_i - gamma_j) over a chunk) and attention's
 * small probabilities make fp32 denormals, and every x86 instruction that reads or makes one
 * takes a microcode assist of ~100 cycles: with them the chunked delta rule and the attention
 * tiles ran 6x slower on the small test model (14% of prefill samples -> 2%). Flushed to zero,
 * a value below 1.2e-38 becomes 0, far inside every tolerance. */
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define FP_FLUSH 0x8040u /* FTZ (bit 15) | DAZ (bit 6) */
static unsigned fp_enter(void)
{
    unsigned old = _mm_getcsr();
    if ((old & FP_FLUSH) != FP_FLUSH)
        _mm_setcsr(old | FP_FLUSH);
    return old;
}
static void fp_leave(unsigned old)
{
    if ((old & FP_FLUSH) != FP_FLUSH)
        _mm_setcsr(old);
}
#else
static unsigned fp_enter(void) { return 0; }
static void fp_leave(unsigned old) { (void)old; }
#endif

struct run_job {
    void (*fn)(void *ctx, int tid, int nth);
    void *ctx;
};

/* a worker's share: the pool's threads run only kernels, so their mode can stay set */
static void run_part(void *ctx, int tid, int nth)
{
    struct run_job *j = ctx;
    if (tid != 0)
        fp_enter();
    j->fn(j->ctx, tid, nth);
}

void kern_cpu_run(struct kern_cpu *c, void (*fn)(void *ctx, int tid, int nth), void *ctx, int alone)
{
    unsigned old = fp_enter();
    if (alone || c->nthreads == 1) {
        fn(ctx, 0, 1);
    } else {
        struct run_job j = { fn, ctx };
        pool_run(c->pool, run_part, &j);
    }
    fp_leave(old);
}

struct par_job {
    long n, grain;
    kern_par_fn fn;
    void *ctx;
};

static void par_part(void *ctx, int tid, int nth)
{
    struct par_job *j = ctx;
    long units = (j->n + j->grain - 1) / j->grain, lo, hi;
    pool_range(units, tid, nth, &lo, &hi);
    lo *= j->grain;
    hi = hi * j->grain < j->n ? hi * j->grain : j->n;
    if (lo < hi)
        j->fn(j->ctx, lo, hi);
}

void kern_cpu_par(struct kern_cpu *c, long n, long grain, kern_par_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    struct par_job j = { n, grain, fn, ctx };
    kern_cpu_run(c, par_part, &j, c->nthreads == 1 || n < 2 * grain);
}

void kern_cpu_free(struct kern_cpu *c)
{
    if (!c)
        return;
    if (c->scratch)
        for (int i = 0; i < c->nthreads; i++)
            free(c->scratch[i]);
    free(c->scratch);
    free(c->work);
    pool_free(c->pool);
    free(c);
}

int kern_cpu_threads(const struct kern_cpu *c) { return c->nthreads; }
int kern_cpu_isa(const struct kern_cpu *c) { return c->isa; }

int kern_cpu_reserve(struct kern_cpu *c, size_t bytes)
{
    if (bytes <= c->scratch_bytes)
        return 0;
    bytes = (bytes + 4095) & ~(size_t)4095;
    for (int i = 0; i < c->nthreads; i++) {
        void *p = NULL;
        if (posix_memalign(&p, 64, bytes))
            return err_set(ERR_NOMEM, "kernel scratch: cannot allocate %zu bytes", bytes);
        free(c->scratch[i]);
        c->scratch[i] = p;
    }
    c->scratch_bytes = bytes;
    return 0;
}

int kern_cpu_work(struct kern_cpu *c, size_t bytes, float **out)
{
    if (bytes > c->work_bytes) {
        void *p = NULL;
        bytes = (bytes + 4095) & ~(size_t)4095;
        if (posix_memalign(&p, 64, bytes))
            return err_set(ERR_NOMEM, "kernel work memory: cannot allocate %zu bytes", bytes);
        free(c->work);
        c->work = p;
        c->work_bytes = bytes;
    }
    *out = c->work;
    return 0;
}

/* ------------------------------------------------------------------ scalar vector helpers */

static float sc_dot(const float *a, const float *b, long n)
{
    float s = 0;
    for (long i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}
static void sc_axpy(float *y, float a, const float *x, long n)
{
    for (long i = 0; i < n; i++)
        y[i] += a * x[i];
}
static void sc_scale(float *y, float a, long n)
{
    for (long i = 0; i < n; i++)
        y[i] *= a;
}
static void sc_load(float *dst, const void *src, int type, long n, float scale)
{
    for (long i = 0; i < n; i++)
        dst[i] = type == KERN_F32    ? ((const float *)src)[i] * scale
                 : type == KERN_BF16 ? kern_bf16_to_f32(((const uint16_t *)src)[i]) * scale
                                     : kern_fp8_to_f32(((const uint8_t *)src)[i]) * scale;
}
static float sc_sum(const float *x, long n)
{
    float s[8] = { 0 };
    for (long i = 0; i < n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += x[i + j];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}
static void sc_axpy_rows(float *y, const float *e, const float *rows, long ld, long nr, long n)
{
    for (long r = 0; r < nr; r++)
        sc_axpy(y, e[r], rows + r * ld, n);
}
static void sc_mul_sigmoid(float *y, const float *g, long n)
{
    for (long i = 0; i < n; i++)
        y[i] *= kern_sigmoid1(g[i]);
}
static void sc_norm_gated(float *y, const float *x, const float *z, const float *w, long n,
                          float eps)
{
    kern_rmsnorm_gated(y, x, z, w, 1, n, eps);
}
static void sc_norm(float *y, const float *x, const float *w, long n, float eps)
{
    kern_rmsnorm(y, n, x, n, w, 1, n, eps);
}
static void sc_conv_row(float *y, const float *x, long ldx, const float *wt, long ldw, int kw,
                        long n)
{
    for (long c = 0; c < n; c++) {
        float acc = 0;
        for (int q = 0; q < kw; q++)
            acc += wt[q * ldw + c] * x[q * ldx + c];
        y[c] = acc;
    }
}
const struct kern_vec kern_vec_scalar = {
    sc_dot,      sc_axpy,   sc_scale,       sc_load, sc_sum,        sc_axpy_rows,
    kern_swiglu, kern_silu, sc_mul_sigmoid, sc_norm, sc_norm_gated, sc_conv_row
};

const struct kern_vec *kern_vec_for(int isa)
{
    return isa == KERN_ISA_AVX512 ? &kern_vec_avx512
           : isa == KERN_ISA_AVX2 ? &kern_vec_avx2
                                  : &kern_vec_scalar;
}

/* ------------------------------------------------------------------ conversions */

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float kern_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t kern_f32_to_bf16(float f)
{
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

float kern_f16_to_f32(uint16_t h)
{
    uint32_t s = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0x1f)
        return u2f(s | 0x7f800000u | (m << 13));
    if (e == 0) /* zero or subnormal: m * 2^-24 */
        return s ? -ldexpf((float)m, -24) : ldexpf((float)m, -24);
    return u2f(s | ((e + 112) << 23) | (m << 13));
}

uint16_t kern_f32_to_f16(float f)
{
    uint32_t u = f2u(f), s = (u >> 16) & 0x8000;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return (uint16_t)(s | 0x7e00);
    if (a >= 0x477ff000u) /* rounds to >= 65520: infinity */
        return (uint16_t)(s | 0x7c00);
    if (a < 0x38800000u) { /* below the smallest normal 2^-14: subnormal, m = round(|f| * 2^24) */
        float m = nearbyintf(u2f(a) * 16777216.0f); /* default rounding: to nearest even */
        return (uint16_t)(s | (uint32_t)m);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1);
    return (uint16_t)(s | ((r - 0x38000000u) >> 13));
}

float kern_fp8_to_f32(uint8_t b)
{
    uint32_t s = b & 0x80, e = (b >> 3) & 0xf, m = b & 7;
    float v;
    if (e == 0xf && m == 7)
        return NAN;
    if (e == 0)
        v = ldexpf((float)m, -9);
    else
        v = ldexpf(1.0f + (float)m / 8.0f, (int)e - 7);
    return s ? -v : v;
}

uint8_t kern_f32_to_fp8(float f)
{
    if (isnan(f))
        return 0x7f;
    uint8_t s = signbit(f) ? 0x80 : 0;
    float a = fabsf(f);
    if (a >= 448.0f)
        return s | 0x7e; /* saturate (448 = 1.75 * 2^8) */
    if (a < 0x1p-6f) {   /* subnormal: m * 2^-9, m = round(a * 512) (to nearest even) */
        float m = nearbyintf(a * 512.0f);
        return s | (uint8_t)m; /* m == 8 is the smallest normal, encoded 0x08: correct */
    }
    int ex;
    float fr = frexpf(a, &ex); /* a = fr * 2^ex, fr in [0.5, 1) */
    int e = ex - 1 + 7;        /* biased exponent of 1.m form */
    float m = nearbyintf((fr * 2.0f - 1.0f) * 8.0f);
    if (m >= 8.0f) {
        m = 0;
        e++;
    }
    if (e > 15 || (e == 15 && m > 6))
        return s | 0x7e;
    return s | (uint8_t)(e << 3) | (uint8_t)m;
}

static float load_elem(const void *src, int type, size_t i, float scale)
{
    switch (type) {
    case KERN_F32: return ((const float *)src)[i];
    case KERN_BF16: return kern_bf16_to_f32(((const uint16_t *)src)[i]);
    case KERN_F16: return kern_f16_to_f32(((const uint16_t *)src)[i]);
    default: return kern_fp8_to_f32(((const uint8_t *)src)[i]) * scale;
    }
}

int kern_convert(void *dst, int dst_type, const void *src, int src_type, size_t n, float scale)
{
    if (dst_type < KERN_F32 || dst_type > KERN_FP8 || src_type < KERN_F32 || src_type > KERN_FP8)
        return err_set(ERR_INVAL, "kern_convert: cannot convert %s to %s",
                       kern_dtype_name(src_type), kern_dtype_name(dst_type));
    if (!(scale > 0) || !isfinite(scale))
        return err_set(ERR_INVAL, "kern_convert: scale %g is not a positive number", scale);
    float inv = 1.0f / scale;
    for (size_t i = 0; i < n; i++) {
        float v = load_elem(src, src_type, i, scale);
        switch (dst_type) {
        case KERN_F32: ((float *)dst)[i] = v; break;
        case KERN_BF16: ((uint16_t *)dst)[i] = kern_f32_to_bf16(v); break;
        case KERN_F16: ((uint16_t *)dst)[i] = kern_f32_to_f16(v); break;
        default: ((uint8_t *)dst)[i] = kern_f32_to_fp8(v * inv); break;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ small ops */

void kern_rmsnorm(float *y, long ldy, const float *x, long ldx, const float *w, long rows, long n,
                  float eps)
{
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        float *yr = y + r * ldy;
        float ss = 0;
        for (long i = 0; i < n; i++)
            ss += xr[i] * xr[i];
        float inv = 1.0f / sqrtf(ss / (float)n + eps);
        for (long i = 0; i < n; i++)
            yr[i] = xr[i] * inv * (1.0f + w[i]);
    }
}

float kern_silu1(float x) { return x / (1.0f + expf(-x)); }
float kern_sigmoid1(float x) { return 1.0f / (1.0f + expf(-x)); }
float kern_softplus1(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

void kern_rmsnorm_gated(float *y, const float *x, const float *z, const float *w, long rows, long n,
                        float eps)
{
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n, *zr = z + r * n;
        float *yr = y + r * n;
        float ss = 0;
        for (long i = 0; i < n; i++)
            ss += xr[i] * xr[i];
        float inv = 1.0f / sqrtf(ss / (float)n + eps);
        for (long i = 0; i < n; i++)
            yr[i] = w[i] * (xr[i] * inv) * kern_silu1(zr[i]);
    }
}

void kern_silu(float *y, const float *x, long n)
{
    for (long i = 0; i < n; i++)
        y[i] = kern_silu1(x[i]);
}

void kern_sigmoid(float *y, const float *x, long n)
{
    for (long i = 0; i < n; i++)
        y[i] = kern_sigmoid1(x[i]);
}

void kern_swiglu(float *y, const float *gate, const float *up, long n)
{
    for (long i = 0; i < n; i++)
        y[i] = kern_silu1(gate[i]) * up[i];
}

/* The element-wise steps split over the pool in pieces of at least 16 K elements (less is not
 * worth a wake-up); every element is computed the same way in any piece. */
#define PAR_GRAIN 16384

struct ew_job {
    const struct kern_vec *v;
    float *y;
    const float *a, *b, *w;
    long n, ldx, ldy;
    float eps;
};

static void swiglu_part(void *ctx, long lo, long hi)
{
    struct ew_job *j = ctx;
    j->v->swiglu(j->y + lo, j->a + lo, j->b + lo, hi - lo);
}

void kern_swiglu_on(struct kern_cpu *c, float *y, const float *gate, const float *up, long n)
{
    struct ew_job j = { .v = kern_vec_for(c->isa), .y = y, .a = gate, .b = up };
    kern_cpu_par(c, n, PAR_GRAIN, swiglu_part, &j);
}

static void mul_sigmoid_part(void *ctx, long lo, long hi)
{
    struct ew_job *j = ctx;
    j->v->mul_sigmoid(j->y + lo, j->a + lo, hi - lo);
}

void kern_mul_sigmoid_on(struct kern_cpu *c, float *y, const float *g, long n)
{
    struct ew_job j = { .v = kern_vec_for(c->isa), .y = y, .a = g };
    kern_cpu_par(c, n, PAR_GRAIN, mul_sigmoid_part, &j);
}

static void norm_part(void *ctx, long lo, long hi)
{
    struct ew_job *j = ctx;
    for (long r = lo; r < hi; r++)
        j->v->norm(j->y + r * j->ldy, j->a + r * j->ldx, j->w, j->n, j->eps);
}

void kern_rmsnorm_on(struct kern_cpu *c, float *y, long ldy, const float *x, long ldx,
                     const float *w, long rows, long n, float eps)
{
    struct ew_job j = { .v = kern_vec_for(c->isa),
                        .y = y,
                        .a = x,
                        .w = w,
                        .n = n,
                        .eps = eps,
                        .ldx = ldx,
                        .ldy = ldy };
    kern_cpu_par(c, rows, n > 0 && n < PAR_GRAIN ? PAR_GRAIN / n : 1, norm_part, &j);
}

static void norm_gated_part(void *ctx, long lo, long hi)
{
    struct ew_job *j = ctx;
    for (long r = lo; r < hi; r++)
        j->v->norm_gated(j->y + r * j->n, j->a + r * j->n, j->b + r * j->n, j->w, j->n, j->eps);
}

void kern_rmsnorm_gated_on(struct kern_cpu *c, float *y, const float *x, const float *z,
                           const float *w, long rows, long n, float eps)
{
    struct ew_job j = {
        .v = kern_vec_for(c->isa), .y = y, .a = x, .b = z, .w = w, .n = n, .eps = eps
    };
    kern_cpu_par(c, rows, n > 0 && n < PAR_GRAIN ? PAR_GRAIN / n : 1, norm_gated_part, &j);
}

void kern_softmax(float *x, long n)
{
    if (n <= 0)
        return;
    float mx = x[0];
    for (long i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    float sum = 0;
    for (long i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (long i = 0; i < n; i++)
        x[i] *= inv;
}

long kern_argmax(const float *x, long n)
{
    long best = -1;
    for (long i = 0; i < n; i++)
        if (!isnan(x[i]) && (best < 0 || x[i] > x[best]))
            best = i;
    return best;
}

int kern_moe_route(const float *logits, int E, int k, int *idx, float *wt)
{
    if (E < 1 || k < 1 || k > E)
        return err_set(ERR_INVAL, "moe route: top-%d of %d experts", k, E);
    float mx = logits[0];
    for (int e = 1; e < E; e++)
        if (logits[e] > mx)
            mx = logits[e];
    double sum = 0;
    for (int e = 0; e < E; e++)
        sum += expf(logits[e] - mx);
    /* top-k by selection: k is small (8). Ties go to the lower index (strict >). */
    for (int j = 0; j < k; j++) {
        int b = -1;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int i = 0; i < j; i++)
                taken |= idx[i] == e;
            if (!taken &&
                (b < 0 || logits[e] > logits[b] || (isnan(logits[b]) && !isnan(logits[e]))))
                b = e;
        }
        idx[j] = b;
    }
    /* softmax over all, then renormalise the top k: the 1/sum cancels, but keep the fp32 order of
     * operations of the reference (p = exp / sum, then p / sum(p)) */
    float tot = 0;
    for (int j = 0; j < k; j++) {
        wt[j] = (float)(expf(logits[idx[j]] - mx) / sum);
        tot += wt[j];
    }
    for (int j = 0; j < k; j++)
        wt[j] = tot > 0 ? wt[j] / tot : 1.0f / (float)k;
    return 0;
}

/* ------------------------------------------------------------------ RoPE */

int kern_rope_freqs(float *inv, float *mscale, int rot_dim, double theta, double yarn_factor,
                    long yarn_orig_ctx)
{
    if (rot_dim < 2 || rot_dim % 2 || !(theta > 1))
        return err_set(ERR_INVAL, "rope: rot_dim %d, theta %g", rot_dim, theta);
    int half = rot_dim / 2;
    *mscale = 1.0f;
    /* HF: 1 / base^(arange(0, d, 2) / d), computed in fp32 from int64 arange */
    for (int i = 0; i < half; i++)
        inv[i] = (float)(1.0 / pow(theta, (double)(2 * i) / rot_dim));
    if (yarn_factor > 1.0) {
        if (yarn_orig_ctx < 1)
            return err_set(ERR_INVAL, "rope: YaRN needs original_max_position_embeddings");
        double d = rot_dim, base = theta, L = (double)yarn_orig_ctx;
#define CORR(r) (d * log(L / ((r)*2 * M_PI)) / (2 * log(base)))
        double low = floor(CORR(32.0)), high = ceil(CORR(1.0));
#undef CORR
        if (low < 0)
            low = 0;
        if (high > d - 1)
            high = d - 1;
        if (low == high)
            high += 0.001;
        for (int i = 0; i < half; i++) {
            double ramp = (i - low) / (high - low);
            ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
            double extra = inv[i], inter = inv[i] / yarn_factor;
            inv[i] = (float)(inter * ramp + extra * (1 - ramp));
        }
        *mscale = (float)(0.1 * log(yarn_factor) + 1.0);
    }
    return 0;
}

void kern_rope(float *x, long ld_head, int n_heads, int rot_dim, const float *inv, float mscale,
               long pos)
{
    int half = rot_dim / 2;
    for (int i = 0; i < half; i++) {
        float a = (float)pos * inv[i];
        float c = cosf(a) * mscale, s = sinf(a) * mscale;
        for (int h = 0; h < n_heads; h++) {
            float *xh = x + h * ld_head;
            float x0 = xh[i], x1 = xh[i + half];
            xh[i] = x0 * c - x1 * s;
            xh[i + half] = x1 * c + x0 * s;
        }
    }
}
