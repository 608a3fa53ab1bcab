/* test_kernels.c - kernels/cpu: matrix products of every weight layout on every ISA this CPU has,
 * against the scalar reference on random data (fresh seed each run), bitwise identity across
 * thread counts, conversions and the small ops. */
#include "kernels/cpu/kern_cpu.h"
#include "kernels/kernels.h"

#include "common/err.h"
#include "testhelp.h"

#include <math.h>

static struct th_rng rng;

static float *fbuf(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = NAN; /* poison */
    return p;
}

static void fill(float *p, size_t n, float amp)
{
    for (size_t i = 0; i < n; i++)
        p[i] = amp * th_uniform(&rng);
}

/* A random weight of the given layout; data and scales are malloc'd into *data / *scale. */
static struct kern_weight mkweight(int type, long n, long k, long group, int scale_type,
                                   void **data, void **scale)
{
    struct kern_weight w = {
        .type = type, .n = n, .k = k, .group = group, .scale_type = scale_type
    };
    size_t nd = type == KERN_F32    ? (size_t)(n * k) * 4
                : type == KERN_BF16 ? (size_t)(n * k) * 2
                : type == KERN_I4   ? (size_t)(n * k) / 2
                                    : (size_t)(n * k);
    uint8_t *d = malloc(nd + 64);
    if (type == KERN_F32) {
        fill((float *)d, (size_t)(n * k), 0.1f);
    } else if (type == KERN_BF16) {
        for (long i = 0; i < n * k; i++)
            ((uint16_t *)d)[i] = kern_f32_to_bf16(0.1f * th_uniform(&rng));
    } else {
        for (size_t i = 0; i < nd; i++)
            d[i] = (uint8_t)th_next(&rng);
    }
    *data = d;
    *scale = NULL;
    if (type == KERN_I4 || type == KERN_I8) {
        long ns = n * (k / group);
        void *s = malloc((size_t)ns * 4 + 4);
        for (long i = 0; i < ns; i++) {
            float v = 0.001f + 0.01f * (float)(th_next(&rng) % 1000) / 1000.0f;
            if (scale_type == KERN_F32)
                ((float *)s)[i] = v;
            else if (scale_type == KERN_F16)
                ((uint16_t *)s)[i] = kern_f32_to_f16(v);
            else
                ((uint16_t *)s)[i] = kern_f32_to_bf16(v);
        }
        *scale = s;
    }
    w.data = *data;
    w.scale = *scale;
    return w;
}

static struct kern_cpu *ctx_scalar;

/* |y - ref| <= tol * sum_i |w_i x_i| per output (fp32 summation-order error bound). */
static int close_enough(const struct kern_weight *w, const float *x, long T, const float *y,
                        const float *ref, double tol, char *why, size_t whylen)
{
    float *row = malloc((size_t)w->k * sizeof(float));
    int ok = 1;
    for (long r = 0; r < w->n && ok; r++) {
        kern_dequant_row(w, r, row);
        for (long t = 0; t < T && ok; t++) {
            double mag = 0;
            for (long i = 0; i < w->k; i++)
                mag += fabs((double)row[i] * x[t * w->k + i]);
            double e = fabs((double)y[t * w->n + r] - ref[t * w->n + r]);
            if (!(e <= tol * mag + 1e-30)) {
                snprintf(why, whylen, "row %ld token %ld: got %.9g want %.9g (mag %.3g)", r, t,
                         y[t * w->n + r], ref[t * w->n + r], mag);
                ok = 0;
            }
        }
    }
    free(row);
    return ok;
}

struct layout {
    int type;
    long group; /* 0: per channel (= k) */
    int scale_type;
};

static int round_x; /* activations rounded to bf16: exercises the BF16 dot-product paths */

static void check_layout(struct layout L, long n, long k, long T)
{
    void *d, *s;
    long group = L.group ? L.group : k;
    struct kern_weight w = mkweight(L.type, n, k, group, L.scale_type, &d, &s);
    float *x = fbuf((size_t)(T * k)), *ref = fbuf((size_t)(T * n)), *y1 = fbuf((size_t)(T * n)),
          *y2 = fbuf((size_t)(T * n));
    fill(x, (size_t)(T * k), 1.0f);
    for (long i = 0; round_x && i < T * k; i++)
        x[i] = kern_bf16_to_f32(kern_f32_to_bf16(x[i]));
    CHECK(kern_matmul(ctx_scalar, &w, x, T, ref) == 0);
    char why[256];
    for (int isa = KERN_ISA_AVX2; isa <= KERN_ISA_AVX512; isa++) {
        if (!kern_isa_supported(isa))
            continue;
        int first = 1;
        for (int th = 1; th <= 3; th++) {
            struct kern_cpu *c;
            if (kern_cpu_new(&c, th, isa) < 0) {
                CHECKF(0, "kern_cpu_new: %s", err_msg());
                continue;
            }
            float *y = first ? y1 : y2;
            for (long i = 0; i < T * n; i++)
                y[i] = NAN;
            CHECK(kern_matmul(c, &w, x, T, y) == 0);
            if (first) {
                CHECKF(close_enough(&w, x, T, y, ref, 2e-6, why, sizeof why),
                       "%s %s g%ld n=%ld k=%ld T=%ld: %s", kern_isa_name(isa),
                       kern_dtype_name(L.type), group, n, k, T, why);
            } else {
                CHECKF(!memcmp(y1, y2, (size_t)(T * n) * sizeof(float)),
                       "%s %s n=%ld k=%ld T=%ld: %d threads differ from 1", kern_isa_name(isa),
                       kern_dtype_name(L.type), n, k, T, th);
            }
            first = 0;
            kern_cpu_free(c);
        }
    }
    free(x);
    free(ref);
    free(y1);
    free(y2);
    free(d);
    free(s);
}

static void t_matmul_bf16_f32(void)
{
    static const long ks[] = { 1, 7, 16, 33, 100, 256, 1030 };
    static const long ns[] = { 1, 5, 37 };
    static const long Ts[] = { 1, 2, 3, 4, 5, 17 };
    for (int type = KERN_F32; type <= KERN_BF16; type++)
        for (size_t a = 0; a < sizeof ks / sizeof *ks; a++)
            for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
                for (size_t c = 0; c < sizeof Ts / sizeof *Ts; c++)
                    check_layout((struct layout){ type, 0, 0 }, ns[b], ks[a], Ts[c]);
}

static void t_matmul_int4(void)
{
    struct {
        long group, k;
    } cases[] = { { 32, 32 }, { 32, 96 }, { 32, 160 }, { 32, 2048 }, { 128, 384 }, { 256, 512 },
                  { 8, 40 },  { 16, 48 }, { 64, 192 }, { 0, 24 },    { 0, 136 } };
    static const long Ts[] = { 1, 2, 4, 9, 17 };
    /* the AVX-512 decode kernel (4 rows per pass); n = 1, 10, 19, 28, 37 gives whole 4-row
     * groups, remainders and several 16-row blocks per thread */
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (size_t c = 0; c < sizeof Ts / sizeof *Ts; c++)
            for (int st = KERN_F32; st <= KERN_F16; st++)
                for (round_x = 0; round_x < 2; round_x++)
                    check_layout((struct layout){ KERN_I4, cases[i].group, st }, 1 + (long)(c * 9),
                                 cases[i].k, Ts[c]);
    /* decode over several blocks */
    check_layout((struct layout){ KERN_I4, 32, KERN_BF16 }, 37, 2048, 1);
    check_layout((struct layout){ KERN_I4, 32, KERN_F16 }, 53, 160, 1);
    check_layout((struct layout){ KERN_I4, 128, KERN_F32 }, 37, 384, 2);
    round_x = 0;
}

static void t_matmul_int8(void)
{
    struct {
        long group, k;
    } cases[] = { { 0, 4 },    { 0, 20 },    { 0, 100 }, { 0, 2048 }, { 32, 64 },
                  { 32, 160 }, { 128, 512 }, { 4, 12 },  { 8, 40 },   { 16, 48 } };
    static const long Ts[] = { 1, 3, 4, 6, 17 };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (size_t c = 0; c < sizeof Ts / sizeof *Ts; c++)
            for (int st = KERN_F32; st <= KERN_F16; st++)
                check_layout((struct layout){ KERN_I8, cases[i].group, st }, 1 + (long)(c * 11),
                             cases[i].k, Ts[c]);
}

/* Decode (T < 4) over many row blocks: the 4-row gemv kernels (bf16, int8, int4), their tails at
 * n and inside a group, and the row runs threads claim from the scheduler, against the
 * reference and bitwise across 1..3 threads (check_layout). */
static void t_gemv(void)
{
    struct {
        struct layout L;
        long k;
    } cases[] = {
        { { KERN_BF16, 0, 0 }, 1024 },        { { KERN_BF16, 0, 0 }, 1030 },
        { { KERN_BF16, 0, 0 }, 2064 },        { { KERN_I8, 0, KERN_BF16 }, 1024 },
        { { KERN_I8, 0, KERN_F32 }, 1036 },   { { KERN_I8, 16, KERN_BF16 }, 1040 },
        { { KERN_I8, 48, KERN_F16 }, 1056 },  { { KERN_I8, 64, KERN_F32 }, 1024 },
        { { KERN_I4, 32, KERN_BF16 }, 1024 }, { { KERN_I4, 128, KERN_F32 }, 2048 },
    };
    static const long ns[] = { 323, 208 };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int T = 1; T <= 3; T += 2)
            for (size_t j = 0; j < sizeof ns / sizeof *ns; j++)
                check_layout(cases[i].L, ns[j], cases[i].k, T);
}

/* Prefill (T >= 4): the packed-panel GEMM of every weight layout against the reference and
 * bitwise across 1..3 threads (check_layout). Shapes cross its tiles: n not a multiple of the
 * 32-row panel or the 16-row thread block (tails inside a panel), k not a multiple of the
 * 256-column block or of a 16-word load (and a group of 96 straddling the block edge), T not a
 * multiple of the 8-token tile, past the 512-token pass and n past the 256-row pass. */
static void gemm_prefix(struct kern_cpu *c, struct layout L);

static void t_gemm(void)
{
    struct {
        struct layout L;
        long k;
    } cases[] = {
        { { KERN_F32, 0, 0 }, 33 },          { { KERN_F32, 0, 0 }, 300 },
        { { KERN_BF16, 0, 0 }, 100 },        { { KERN_BF16, 0, 0 }, 1030 },
        { { KERN_I4, 32, KERN_BF16 }, 160 }, { { KERN_I4, 32, KERN_F16 }, 544 },
        { { KERN_I4, 128, KERN_F32 }, 384 }, { { KERN_I4, 128, KERN_BF16 }, 640 },
        { { KERN_I4, 96, KERN_BF16 }, 576 }, { { KERN_I4, 8, KERN_F32 }, 40 },
        { { KERN_I8, 0, KERN_BF16 }, 100 },  { { KERN_I8, 0, KERN_F32 }, 1036 },
        { { KERN_I8, 32, KERN_BF16 }, 160 }, { { KERN_I8, 128, KERN_F16 }, 640 },
        { { KERN_I8, 4, KERN_F32 }, 12 },
    };
    static const long Ts[] = { 4, 5, 7, 16, 31, 64, 129 };
    static const long ns[] = { 5, 37, 83 };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (size_t t = 0; t < sizeof Ts / sizeof *Ts; t++)
            check_layout(cases[i].L, ns[(i + t) % 3], cases[i].k, Ts[t]);
    check_layout((struct layout){ KERN_I4, 32, KERN_BF16 }, 300, 96, 9);
    check_layout((struct layout){ KERN_BF16, 0, 0 }, 21, 48, 520);
    check_layout((struct layout){ KERN_I8, 0, KERN_BF16 }, 37, 64, 517);
    /* each output is one FMA chain in column order whatever the tiling: a token's result does
     * not depend on how many tokens share the call (8: the int4 single-tile path, 9 and 70: the
     * panel path with different tiles) */
    struct layout Ls[] = { { KERN_I4, 32, KERN_BF16 },
                           { KERN_I4, 128, KERN_F32 },
                           { KERN_I8, 0, KERN_BF16 },
                           { KERN_BF16, 0, 0 },
                           { KERN_F32, 0, 0 } };
    for (int isa = KERN_ISA_AVX2; isa <= KERN_ISA_AVX512; isa++) {
        struct kern_cpu *c = NULL;
        if (!kern_isa_supported(isa) || kern_cpu_new(&c, 2, isa) < 0)
            continue;
        for (size_t i = 0; i < sizeof Ls / sizeof *Ls; i++)
            gemm_prefix(c, Ls[i]);
        kern_cpu_free(c);
    }
}

/* t_gemm's T-independence check for one layout on c. */
static void gemm_prefix(struct kern_cpu *c, struct layout L)
{
    void *d, *sc;
    long n = 45, k = 640, Tn[] = { 8, 9, 70 };
    struct kern_weight w = mkweight(L.type, n, k, L.group ? L.group : k, L.scale_type, &d, &sc);
    float *x = fbuf((size_t)(70 * k)), *y[3];
    fill(x, (size_t)(70 * k), 1.0f);
    for (int j = 0; j < 3; j++) {
        y[j] = fbuf((size_t)(Tn[j] * n));
        CHECK(kern_matmul(c, &w, x, Tn[j], y[j]) == 0);
    }
    CHECKF(!memcmp(y[0], y[1], (size_t)(8 * n) * sizeof(float)) &&
               !memcmp(y[1], y[2], (size_t)(9 * n) * sizeof(float)),
           "%s %s: a token's result depends on T", kern_isa_name(kern_cpu_isa(c)),
           kern_dtype_name(L.type));
    for (int j = 0; j < 3; j++)
        free(y[j]);
    free(x), free(d), free(sc);
}

/* The reference's own semantics: the packed layout of checkpoint-format.md 3.2 on a hand-made row.
 */
static void t_matmul_layout(void)
{
    /* int4 row 0: columns 0..7 = codes 0..7 (values -8..-1) in nibble order, 8..15 = 8..15 (0..7)
     */
    uint32_t packed[2] = { 0x76543210u, 0xfedcba98u };
    uint16_t scale[1] = { kern_f32_to_bf16(0.5f) };
    struct kern_weight w = { KERN_I4, KERN_BF16, 1, 16, 16, packed, scale };
    float x[16], y = NAN;
    for (int i = 0; i < 16; i++)
        x[i] = (float)(i == 1) + 10.0f * (i == 15);
    CHECK(kern_matmul(ctx_scalar, &w, x, 1, &y) == 0);
    CHECK(y == 0.5f * (-7.0f + 10.0f * 7.0f));
    /* int8: bytes in column order, +128 */
    uint32_t p8[1] = { 0x00ff8001u }; /* codes 1, 128, 255, 0 -> -127, 0, 127, -128 */
    uint16_t s8[1] = { kern_f32_to_bf16(1.0f) };
    struct kern_weight w8 = { KERN_I8, KERN_BF16, 1, 4, 4, p8, s8 };
    float x8[4] = { 1, 1000, 2, 0.5f };
    CHECK(kern_matmul(ctx_scalar, &w8, x8, 1, &y) == 0);
    CHECK(y == -127.0f + 254.0f - 64.0f);
    /* bad shapes are errors, not crashes */
    struct kern_weight bad = w;
    bad.k = 12;
    CHECK(kern_matmul(ctx_scalar, &bad, x, 1, &y) == ERR_INVAL);
    bad = w;
    bad.group = 12;
    CHECK(kern_matmul(ctx_scalar, &bad, x, 1, &y) == ERR_INVAL);
    bad = w;
    bad.scale = NULL;
    CHECK(kern_matmul(ctx_scalar, &bad, x, 1, &y) == ERR_INVAL);
    bad.type = 99;
    CHECK(kern_weight_check(&bad) == ERR_INVAL);
}

/* several products in one region equal separate calls, bit for bit */
static void t_matmul_n(void)
{
    void *d[3], *sc[3];
    struct kern_weight w[3] = { mkweight(KERN_I4, 37, 256, 32, KERN_BF16, &d[0], &sc[0]),
                                mkweight(KERN_BF16, 5, 256, 0, 0, &d[1], &sc[1]),
                                mkweight(KERN_I8, 20, 256, 256, KERN_F32, &d[2], &sc[2]) };
    const struct kern_weight *wp[3] = { &w[0], &w[1], &w[2] };
    long Ts[] = { 1, 5 };
    for (int ti = 0; ti < 2; ti++) {
        long T = Ts[ti];
        float *x = fbuf((size_t)(T * 256));
        fill(x, (size_t)(T * 256), 1.0f);
        for (int isa = KERN_ISA_SCALAR; isa <= KERN_ISA_AVX512; isa++) {
            struct kern_cpu *c;
            if (!kern_isa_supported(isa) || kern_cpu_new(&c, 2, isa) < 0)
                continue;
            float *ya[3], *yb[3];
            for (int i = 0; i < 3; i++) {
                ya[i] = fbuf((size_t)(T * w[i].n));
                yb[i] = fbuf((size_t)(T * w[i].n));
                CHECK(kern_matmul(c, &w[i], x, T, ya[i]) == 0);
            }
#if defined(__x86_64__)
            /* the kernels flush denormals (kern_cpu_run) but give the caller its mode back */
            unsigned csr = __builtin_ia32_stmxcsr();
            CHECK(kern_matmul_n(c, 3, wp, x, T, yb) == 0);
            CHECK_INT(__builtin_ia32_stmxcsr(), csr);
#else
            CHECK(kern_matmul_n(c, 3, wp, x, T, yb) == 0);
#endif
            for (int i = 0; i < 3; i++) {
                CHECKF(!memcmp(ya[i], yb[i], (size_t)(T * w[i].n) * sizeof(float)),
                       "%s weight %d T %ld", kern_isa_name(isa), i, T);
                free(ya[i]);
                free(yb[i]);
            }
            kern_cpu_free(c);
        }
        free(x);
    }
    struct kern_weight bad = w[1];
    bad.k = 128;
    const struct kern_weight *wb[2] = { &w[0], &bad };
    float *yy[2] = { NULL, NULL };
    CHECK(kern_matmul_n(ctx_scalar, 2, wb, NULL, 1, yy) == ERR_INVAL);
    for (int i = 0; i < 3; i++) {
        free(d[i]);
        free(sc[i]);
    }
}

static void t_conversions(void)
{
    /* bf16 round trip and rounding to nearest even */
    CHECK(kern_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(kern_f32_to_bf16(kern_bf16_to_f32(0x4049)) == 0x4049);
    CHECK(kern_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80); /* tie -> even */
    CHECK(kern_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-12f) == 0x3f81);
    CHECK(isnan(kern_bf16_to_f32(kern_f32_to_bf16(NAN))));
    /* f16: every finite half round-trips */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if (((h >> 10) & 0x1f) == 0x1f)
            continue;
        if (kern_f32_to_f16(kern_f16_to_f32((uint16_t)h)) != h)
            bad++;
    }
    CHECK_INT(bad, 0);
    CHECK(kern_f16_to_f32(0x3c00) == 1.0f);
    CHECK(kern_f32_to_f16(70000.0f) == 0x7c00);
    CHECK(kern_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00); /* tie -> even */
    /* fp8 e4m3fn: every non-NaN code round-trips; saturation; max and min subnormal */
    bad = 0;
    for (int b = 0; b < 256; b++) {
        if ((b & 0x7f) == 0x7f)
            continue;
        if (kern_f32_to_fp8(kern_fp8_to_f32((uint8_t)b)) != (b == 0x80 ? 0x80 : b))
            bad++;
    }
    CHECK_INT(bad, 0);
    CHECK(kern_fp8_to_f32(0x7e) == 448.0f);
    CHECK(kern_fp8_to_f32(0x01) == 0x1p-9f);
    CHECK(kern_f32_to_fp8(1e6f) == 0x7e && kern_f32_to_fp8(-1e6f) == 0xfe);
    CHECK(isnan(kern_fp8_to_f32(0x7f)));
    CHECK(kern_f32_to_fp8(1.0625f) == 0x38); /* 1 + 1/16 is a tie between 1 and 1.125 -> even */
    CHECK(kern_f32_to_fp8(1.1f) == 0x39);
    /* rounding is to the nearest code: brute-force check on random values */
    bad = 0;
    for (int i = 0; i < 20000; i++) {
        float v = 500.0f * th_uniform(&rng) * fabsf(th_uniform(&rng));
        float q = kern_fp8_to_f32(kern_f32_to_fp8(v));
        float best = 1e30f;
        for (int b = 0; b < 256; b++)
            if ((b & 0x7f) != 0x7f && fabsf(kern_fp8_to_f32((uint8_t)b) - v) < best)
                best = fabsf(kern_fp8_to_f32((uint8_t)b) - v);
        if (fabsf(q - v) > best)
            bad++;
    }
    CHECK_INT(bad, 0);
    /* array conversion with a scale */
    float src[3] = { 1.0f, -2.0f, 960.0f }, back[3];
    uint8_t f8[3];
    CHECK(kern_convert(f8, KERN_FP8, src, KERN_F32, 3, 4.0f) == 0);
    CHECK(f8[0] == kern_f32_to_fp8(0.25f));
    CHECK(kern_convert(back, KERN_F32, f8, KERN_FP8, 3, 4.0f) == 0);
    CHECK(back[0] == 1.0f && back[1] == -2.0f && back[2] == 960.0f);
    CHECK(kern_convert(back, KERN_I4, f8, KERN_FP8, 3, 1.0f) == ERR_INVAL);
    CHECK(kern_convert(back, KERN_F32, f8, KERN_FP8, 3, 0.0f) == ERR_INVAL);
}

static void t_small_ops(void)
{
    float x[8] = { 1, 2, 3, 4, -1, -2, -3, -4 }, w[4] = { 0, 1, -0.5f, 0 }, y[8];
    kern_rmsnorm(y, 4, x, 4, w, 2, 4, 0.0f);
    float inv = 1.0f / sqrtf(30.0f / 4);
    CHECK(fabsf(y[0] - inv) < 1e-6f && fabsf(y[1] - 4 * inv) < 1e-6f &&
          fabsf(y[2] - 1.5f * inv) < 1e-6f && fabsf(y[7] + 4 * inv) < 1e-6f);
    float z[4] = { 0, 1, 2, -1 }, g[4] = { 1, 2, 1, 1 }, o[4];
    kern_rmsnorm_gated(o, x, z, g, 1, 4, 0.0f);
    CHECK(o[0] == 0.0f && fabsf(o[1] - 2 * 2 * inv * kern_silu1(1)) < 1e-6f);
    CHECK(fabsf(kern_softplus1(0) - logf(2)) < 1e-7f && kern_softplus1(30) == 30.0f);
    CHECK(fabsf(kern_sigmoid1(0) - 0.5f) < 1e-7f);
    float s[4] = { 1000, 1000, 0, -INFINITY };
    kern_softmax(s, 4);
    CHECK(fabsf(s[0] - 0.5f) < 1e-6f && s[3] == 0.0f);
    float a[5] = { NAN, 1, 3, 3, 2 };
    CHECK_INT(kern_argmax(a, 5), 2);
    CHECK_INT(kern_argmax(a, 0), -1);
    /* router: softmax over all, top-k, renormalised; ties to the lower index */
    float lg[6] = { 0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 0.0f };
    int idx[3];
    float wt[3];
    CHECK(kern_moe_route(lg, 6, 3, idx, wt) == 0);
    CHECK(idx[0] == 1 && idx[1] == 3 && idx[2] == 4);
    float e1 = expf(2.0f), e4 = expf(1.0f);
    CHECK(fabsf(wt[0] - e1 / (2 * e1 + e4)) < 1e-6f && fabsf(wt[2] - e4 / (2 * e1 + e4)) < 1e-6f);
    CHECK(kern_moe_route(lg, 6, 7, idx, wt) == ERR_INVAL);
}

/* |a - b| within tol of the reference's magnitude (floored at 1); NaN never passes */
static double rel_err(const float *a, const float *ref, long n)
{
    double e = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]) / fmax(1.0, fabs((double)ref[i]));
        e = d > e || d != d ? d : e;
    }
    return e;
}

/* The ISA versions of the element-wise ops (*_on) against the scalar reference formulas, over
 * lengths that leave vector tails and inputs out to where e^x saturates. */
static void t_elementwise(void)
{
    long lens[] = { 1, 7, 16, 33, 128, 1000 };
    for (int isa = KERN_ISA_SCALAR; isa <= KERN_ISA_AVX512; isa++) {
        struct kern_cpu *c;
        if (!kern_isa_supported(isa) || kern_cpu_new(&c, 1, isa) < 0)
            continue;
        for (int li = 0; li < 6; li++) {
            long n = lens[li];
            float *g = fbuf(n), *u = fbuf(n), *y = fbuf(n), *ref = fbuf(n), *w = fbuf(n);
            fill(g, n, 12.0f);
            fill(u, n, 2.0f);
            fill(w, n, 1.5f);
            g[0] = n > 3 ? -120.0f : g[0]; /* e^-x overflows, e^x underflows */
            if (n > 3)
                g[1] = 95.0f, g[2] = 0.0f;
            kern_swiglu(ref, g, u, n);
            kern_swiglu_on(c, y, g, u, n);
            double e = rel_err(y, ref, n);
            CHECKF(e < 4e-6, "%s swiglu n %ld: %g", kern_isa_name(isa), n, e);
            memcpy(ref, u, (size_t)n * sizeof(float));
            memcpy(y, u, (size_t)n * sizeof(float));
            for (long i = 0; i < n; i++)
                ref[i] *= kern_sigmoid1(g[i]);
            kern_mul_sigmoid_on(c, y, g, n);
            e = rel_err(y, ref, n);
            CHECKF(e < 4e-6, "%s mul_sigmoid n %ld: %g", kern_isa_name(isa), n, e);
            /* two rows of n: x = u, z = g */
            float *x2 = fbuf(2 * n), *z2 = fbuf(2 * n), *y2 = fbuf(2 * n), *r2 = fbuf(2 * n);
            fill(x2, 2 * n, 3.0f);
            fill(z2, 2 * n, 10.0f);
            kern_rmsnorm_gated(r2, x2, z2, w, 2, n, 1e-6f);
            kern_rmsnorm_gated_on(c, y2, x2, z2, w, 2, n, 1e-6f);
            e = rel_err(y2, r2, 2 * n);
            CHECKF(e < 1e-5, "%s rmsnorm_gated n %ld: %g", kern_isa_name(isa), n, e);
            kern_rmsnorm_gated_on(c, x2, x2, z2, w, 2, n, 1e-6f); /* in place */
            CHECK(!memcmp(x2, y2, 2 * (size_t)n * sizeof(float)));
            /* the plain RMSNorm, rows n + 3 apart, and in place */
            float *x3 = fbuf(2 * n + 3), *y3 = fbuf(2 * n + 3), *r3 = fbuf(2 * n + 3);
            fill(x3, 2 * n + 3, 3.0f);
            memcpy(y3, x3, (2 * (size_t)n + 3) * sizeof(float));
            memcpy(r3, x3, (2 * (size_t)n + 3) * sizeof(float));
            kern_rmsnorm(r3, n + 3, x3, n + 3, w, 2, n, 1e-6f);
            kern_rmsnorm_on(c, y3, n + 3, y3, n + 3, w, 2, n, 1e-6f);
            e = rel_err(y3, r3, 2 * n + 3);
            CHECKF(e < 1e-5, "%s rmsnorm n %ld: %g", kern_isa_name(isa), n, e);
            free(x3), free(y3), free(r3);
            /* the conv + SiLU over 6 tokens of n channels */
            float *cx = fbuf(6 * n), *cw = fbuf(4 * n), *s1 = fbuf(3 * n), *s2 = fbuf(3 * n);
            float *cy = fbuf(6 * n), *cr = fbuf(6 * n);
            fill(cx, 6 * n, 4.0f);
            fill(cw, 4 * n, 1.0f);
            fill(s1, 3 * n, 1.0f);
            memcpy(s2, s1, 3 * (size_t)n * sizeof(float));
            CHECK(kern_conv1d_silu(cr, cx, n, s1, cw, 6, n, 4) == 0);
            CHECK(kern_conv1d_silu_on(c, cy, cx, n, s2, cw, 6, n, 4) == 0);
            e = rel_err(cy, cr, 6 * n);
            CHECKF(e < 4e-6, "%s conv1d_silu n %ld: %g", kern_isa_name(isa), n, e);
            CHECK(!memcmp(s1, s2, 3 * (size_t)n * sizeof(float)));
            /* token by token from the carried state (decode) gives the same bits */
            float *s4 = fbuf(3 * n), *y4 = fbuf(6 * n);
            fill(s4, 3 * n, 1.0f);
            memcpy(s2, s4, 3 * (size_t)n * sizeof(float));
            CHECK(kern_conv1d_silu_on(c, cy, cx, n, s2, cw, 6, n, 4) == 0);
            for (long t = 0; t < 6; t++)
                CHECK(kern_conv1d_silu_on(c, y4 + t * n, cx + t * n, n, s4, cw, 1, n, 4) == 0);
            CHECKF(!memcmp(cy, y4, 6 * (size_t)n * sizeof(float)), "%s conv1d decode n %ld",
                   kern_isa_name(isa), n);
            free(s4), free(y4);
            free(g), free(u), free(y), free(ref), free(w), free(x2), free(z2), free(y2), free(r2);
            free(cx), free(cw), free(s1), free(s2), free(cy), free(cr);
        }
        /* split over threads (big enough to be split): bitwise the same as on one thread */
        struct kern_cpu *c3;
        if (kern_cpu_new(&c3, 3, isa) == 0) {
            long T = 64, C = 1024, n = T * C;
            float *x = fbuf(n), *z = fbuf(n), *w = fbuf(C), *s1 = fbuf(3 * C), *s3 = fbuf(3 * C);
            float *y1 = fbuf(n), *y3 = fbuf(n);
            fill(x, n, 4.0f), fill(z, n, 8.0f), fill(w, C, 1.0f), fill(s1, 3 * C, 1.0f);
            memcpy(s3, s1, 3 * (size_t)C * sizeof(float));
            CHECK(kern_conv1d_silu_on(c, y1, x, C, s1, x, T, C, 4) == 0);
            CHECK(kern_conv1d_silu_on(c3, y3, x, C, s3, x, T, C, 4) == 0);
            CHECK(!memcmp(y1, y3, (size_t)n * sizeof(float)));
            CHECK(!memcmp(s1, s3, 3 * (size_t)C * sizeof(float)));
            kern_rmsnorm_gated_on(c, y1, x, z, w, n / 128, 128, 1e-6f);
            kern_rmsnorm_gated_on(c3, y3, x, z, w, n / 128, 128, 1e-6f);
            CHECK(!memcmp(y1, y3, (size_t)n * sizeof(float)));
            kern_swiglu_on(c, y1, x, z, n - 3);
            kern_swiglu_on(c3, y3, x, z, n - 3);
            CHECK(!memcmp(y1, y3, (size_t)(n - 3) * sizeof(float)));
            free(x), free(z), free(w), free(s1), free(s3), free(y1), free(y3);
            kern_cpu_free(c3);
        }
        kern_cpu_free(c);
    }
}

static void t_rope(void)
{
    float inv[32], ms;
    CHECK(kern_rope_freqs(inv, &ms, 64, 1e7, 0, 0) == 0);
    CHECK(ms == 1.0f && inv[0] == 1.0f && fabsf(inv[1] - powf(1e7f, -2.0f / 64)) < 1e-9f);
    /* YaRN as model-spec.md 3.4b: i < 14 unchanged, i > 22 divided by 4, mscale 0.1 ln 4 + 1 */
    float iy[32];
    CHECK(kern_rope_freqs(iy, &ms, 64, 1e7, 4.0, 262144) == 0);
    CHECK(fabsf(ms - (float)(0.1 * log(4.0) + 1)) < 1e-6f);
    CHECK(iy[13] == inv[13] && fabsf(iy[23] - inv[23] / 4) < 1e-12f && iy[18] < inv[18] &&
          iy[18] > inv[18] / 4);
    /* NeoX pairs (i, i + rot/2) on the first rot dims, the rest untouched, per head stride */
    float x[2 * 10];
    for (int i = 0; i < 20; i++)
        x[i] = (float)i;
    float f[2] = { 1.0f, 0.5f };
    kern_rope(x, 10, 2, 4, f, 1.0f, 3);
    CHECK(fabsf(x[0] - (0 * cosf(3) - 2 * sinf(3))) < 1e-6f);
    CHECK(fabsf(x[2] - (2 * cosf(3) + 0 * sinf(3))) < 1e-6f);
    CHECK(fabsf(x[11] - (11 * cosf(1.5f) - 13 * sinf(1.5f))) < 1e-5f);
    CHECK(x[4] == 4.0f && x[19] == 19.0f);
}

static void t_isa(void)
{
    CHECK(kern_isa_supported(KERN_ISA_SCALAR));
    int best = kern_isa_best();
    CHECK(kern_isa_supported(best));
    printf("# best ISA here: %s\n", kern_isa_name(best));
    struct kern_cpu *c = NULL;
    for (int isa = KERN_ISA_SCALAR; isa <= KERN_ISA_AVX512; isa++) {
        int rc = kern_cpu_new(&c, 1, isa);
        CHECK(kern_isa_supported(isa) ? rc == 0 : rc == ERR_UNSUPPORTED);
        kern_cpu_free(c);
        c = NULL;
    }
    kern_cpu_free(NULL);
    /* the benchmark rejects unknown sections before allocating anything */
    CHECK(kern_bench_run("mem,bogus", 1, stdout) == ERR_INVAL);
}

int main(void)
{
    rng.s = th_seed();
    if (kern_cpu_new(&ctx_scalar, 1, KERN_ISA_SCALAR) < 0)
        return 1;
    TEST_RUN(t_isa);
    TEST_RUN(t_conversions);
    TEST_RUN(t_small_ops);
    TEST_RUN(t_elementwise);
    TEST_RUN(t_rope);
    TEST_RUN(t_matmul_layout);
    TEST_RUN(t_matmul_bf16_f32);
    TEST_RUN(t_matmul_int4);
    TEST_RUN(t_matmul_int8);
    TEST_RUN(t_matmul_n);
    TEST_RUN(t_gemv);
    TEST_RUN(t_gemm);
    kern_cpu_free(ctx_scalar);
    TEST_END();
}
