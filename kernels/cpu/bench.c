/*
 * bench.c - the kernel benchmark (kern_bench_run): memory read bandwidth measured in the same
 * run, then the decode matrix-vector kernels at the real model's shapes (GB/s of weights and the
 * ratio to that bandwidth), the prefill GEMM (GFLOP/s at T = 16..256 and the ratio to the fp32 FMA
 * peak of a register-only loop measured in the same run), attention decode over a long
 * fp8 cache and the DeltaNet step and chunk.
 *
 * The machine's last-level cache can be large (hundreds of MB on server parts), so every decode
 * benchmark rotates through enough distinct copies of its weights (>= 768 MiB) that each call
 * streams from DRAM, as decoding a real model does.
 */
#include "kernels/cpu/kern_cpu.h"

#include "common/err.h"
#include "common/pool.h"
#include "common/text.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROTATE_BYTES (768UL << 20)
#define BW_BYTES (1024UL << 20)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void *big_alloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, bytes ? bytes : 1))
        return NULL;
    return p;
}

/* Random bytes; bf16 data gets a moderate exponent (no denormals, NaN or inf to slow FMAs). */
static void fill_bytes(void *p, size_t n)
{
    uint64_t *q = p;
    for (size_t i = 0; i < n / 8; i++)
        q[i] = rnd();
}
static void fill_bf16(uint16_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint16_t)((rnd() & 0x807f) | 0x3c00);
}
/* Cheap finite contents for the bandwidth buffer (every page written, so it is resident). */
static void fill_seq(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(i & 1023);
}
static void fill_f32(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((double)(rnd() >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

/* ---------------------------------------------------------------- memory bandwidth */

/* Best of 5 streaming reads of buf with the pool's threads (membw.c); GB/s. */
static double bandwidth(struct kern_cpu *c, const float *buf, long n)
{
    return kern_mem_bandwidth_on(c, buf, n);
}

/* ---------------------------------------------------------------- weights */

struct wset {
    struct kern_weight *w; /* [copies] */
    int copies;
    void *mem;
    size_t bytes; /* of one copy */
};

static void wset_free(struct wset *s)
{
    free(s->w);
    free(s->mem);
    memset(s, 0, sizeof *s);
}

/* `copies` (0: enough to exceed ROTATE_BYTES) random weights of one layout. */
static int wset_make(struct wset *s, int type, long n, long k, long group, int copies)
{
    memset(s, 0, sizeof *s);
    struct kern_weight t = { type, KERN_BF16, n, k, group, NULL, NULL };
    size_t data = type == KERN_BF16 ? (size_t)n * k * 2
                  : type == KERN_I4 ? (size_t)n * k / 2
                                    : (size_t)n * k;
    size_t sc = type == KERN_BF16 ? 0 : (size_t)n * (size_t)(k / group) * 2;
    size_t one = (data + sc + 4095) & ~(size_t)4095;
    s->bytes = kern_weight_bytes(&t);
    if (!copies)
        copies = (int)((ROTATE_BYTES + one - 1) / one);
    s->copies = copies;
    s->mem = big_alloc(one * (size_t)copies);
    s->w = calloc((size_t)copies, sizeof *s->w);
    if (!s->mem || !s->w) {
        wset_free(s);
        return err_set(ERR_NOMEM, "bench: cannot allocate %zu MiB of weights",
                       one * (size_t)copies >> 20);
    }
    for (int i = 0; i < copies; i++) {
        char *base = (char *)s->mem + one * (size_t)i;
        if (type == KERN_BF16)
            fill_bf16((uint16_t *)base, data / 2);
        else
            fill_bytes(base, data);
        if (sc)
            fill_bf16((uint16_t *)(base + data), sc / 2);
        s->w[i] = t;
        s->w[i].data = base;
        s->w[i].scale = sc ? base + data : NULL;
    }
    return 0;
}

/* ---------------------------------------------------------------- sections */

/* The bandwidth reference of a kernel line: the streaming read measured right before the kernel,
 * so that both see the same machine (on a shared machine the available bandwidth drifts). */
struct bwref {
    struct kern_cpu *c;
    const float *buf;
};

static double bw_now(const struct bwref *r) { return bandwidth(r->c, r->buf, BW_BYTES / 4); }

static void line(FILE *out, const char *name, double us, double gbs, double bw)
{
    fprintf(out, "| %-44s | %10.1f | %7.1f | %7.1f | %5.2f |\n", name, us, gbs, bw, gbs / bw);
}

static int bench_matvec(struct kern_cpu *c, FILE *out, const struct bwref *br, const char *name,
                        int type, long n, long k, long group, int reps)
{
    struct wset s;
    int rc = wset_make(&s, type, n, k, group, 0);
    if (rc < 0)
        return rc;
    float *x = big_alloc((size_t)k * 4), *y = big_alloc((size_t)n * 4);
    if (!x || !y) {
        free(x), free(y), wset_free(&s);
        return err_set(ERR_NOMEM, "bench: out of memory");
    }
    fill_f32(x, (size_t)k);
    /* a warm-up pass over every copy (page faults, code), then the best of `reps` passes: the
     * machine may be shared, and the best pass is the kernel's, not its neighbours' */
    for (int i = 0; i < s.copies; i++)
        kern_matmul(c, &s.w[i], x, 1, y);
    int calls = s.copies < 8 ? 8 : s.copies;
    double sec = 1e30, bw = bw_now(br);
    for (int r = 0; r < reps; r++) {
        uint64_t t0 = time_ns();
        for (int i = 0; i < calls; i++)
            kern_matmul(c, &s.w[i % s.copies], x, 1, y);
        double p = (double)(time_ns() - t0) * 1e-9;
        sec = p < sec ? p : sec;
    }
    line(out, name, sec / calls * 1e6, (double)s.bytes * calls / sec / 1e9, bw);
    free(x), free(y), wset_free(&s);
    return 0;
}

static int bench_moe(struct kern_cpu *c, FILE *out, const struct bwref *br)
{
    enum { E = 256, K = 8, H = 2048, I = 512 };
    struct wset g, u, d;
    int rc;
    if ((rc = wset_make(&g, KERN_I4, I, H, 32, E)) < 0)
        return rc;
    if ((rc = wset_make(&u, KERN_I4, I, H, 32, E)) < 0) {
        wset_free(&g);
        return rc;
    }
    if ((rc = wset_make(&d, KERN_I4, H, I, 32, E)) < 0) {
        wset_free(&g), wset_free(&u);
        return rc;
    }
    struct kern_expert *ex = calloc(E, sizeof *ex);
    float *x = big_alloc(H * 4), *y = big_alloc(H * 4);
    if (!ex || !x || !y) {
        rc = err_set(ERR_NOMEM, "bench: out of memory");
        goto done;
    }
    for (int e = 0; e < E; e++)
        ex[e] = (struct kern_expert){ g.w[e], u.w[e], d.w[e] };
    fill_f32(x, H);
    int idx[K];
    float wt[K];
    for (int j = 0; j < K; j++)
        wt[j] = 1.0f / K;
    int calls = 200;
    double sec = 1e30, bw = bw_now(br);
    for (int pass = 0; pass < 4; pass++) { /* pass 0 warms up; then the best of 3 */
        uint64_t tot = 0;
        for (int i = 0; i < calls; i++) {
            for (int j = 0; j < K; j++) { /* 8 distinct random experts, as a router picks */
                int e, dup;
                do {
                    e = (int)(rnd() % E);
                    dup = 0;
                    for (int q = 0; q < j; q++)
                        dup |= idx[q] == e;
                } while (dup);
                idx[j] = e;
            }
            struct kern_moe m = { E, K, 1, H, I, ex, idx, wt, NULL, NULL, x, y };
            uint64_t t0 = time_ns();
            if ((rc = kern_moe(c, &m)) < 0)
                goto done;
            tot += time_ns() - t0;
        }
        if (pass > 0 && (double)tot * 1e-9 < sec)
            sec = (double)tot * 1e-9;
    }
    double bytes = (double)K * (double)(g.bytes + u.bytes + d.bytes) * calls;
    line(out, "MoE int4-g32 8 of 256 experts [512x2048]x3", sec / calls * 1e6, bytes / sec / 1e9,
         bw);
    rc = 0;
done:
    free(ex), free(x), free(y);
    wset_free(&g), wset_free(&u), wset_free(&d);
    return rc;
}

/* ---------------------------------------------------------------- FMA peak */

/* The fp32 FMA peak of this ISA: a register-only loop of independent FMA chains (enough of them
 * to cover the FMA latency on every port), run on all of c's threads at once like the GEMM. */
#define PEAK_ITERS 2000000L

struct peak_job {
    int isa;
    int bf16; /* time vdpbf16ps (AVX512-BF16) instead of the fp32 FMA */
    float seed[64];
    float sink[64];
};

#define PEAK_BODY(VEC, SET1, FMA, ADD, STORE, LANES)                                               \
    VEC m = SET1(j->seed[0]), a = SET1(j->seed[1]), acc[24];                                       \
    for (int i = 0; i < 24; i++)                                                                   \
        acc[i] = SET1(j->seed[2] + (float)i);                                                      \
    for (long it = 0; it < PEAK_ITERS; it++) {                                                     \
        /* unrolled so the 24 chains live in registers (fp rules keep the loop from folding) */    \
        _Pragma("GCC unroll 24") for (int i = 0; i < 24; i++) acc[i] = FMA(acc[i], m, a);          \
    }                                                                                              \
    for (int i = 1; i < 24; i++)                                                                   \
        acc[0] = ADD(acc[0], acc[i]);                                                              \
    float out[LANES];                                                                              \
    STORE(out, acc[0]);                                                                            \
    j->sink[tid % 64] += out[0];

__attribute__((target("avx512f"))) static void peak_avx512(struct peak_job *j, int tid)
{
    PEAK_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps, 16)
}
__attribute__((target("avx2,fma"))) static void peak_avx2(struct peak_job *j, int tid)
{
    PEAK_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps, 8)
}

/* The same loop with vdpbf16ps (2 bf16 products per lane into fp32): what an opt-in bf16-activation
 * GEMM could reach at best. */
__attribute__((target("avx512f,avx512bf16"))) static void peak_dpbf16(struct peak_job *j, int tid)
{
    __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80),
             b = (__m512bh)_mm512_set1_epi32(0x3a803a80);
    __m512 acc[24];
    for (int i = 0; i < 24; i++)
        acc[i] = _mm512_set1_ps(j->seed[2] + (float)i);
    for (long it = 0; it < PEAK_ITERS; it++) {
        _Pragma("GCC unroll 24") for (int i = 0; i < 24; i++) acc[i] =
            _mm512_dpbf16_ps(acc[i], a, b);
    }
    for (int i = 1; i < 24; i++)
        acc[0] = _mm512_add_ps(acc[0], acc[i]);
    float out[16];
    _mm512_storeu_ps(out, acc[0]);
    j->sink[tid % 64] += out[0];
}

static void peak_part(void *ctx, int tid, int nth)
{
    (void)nth;
    struct peak_job *j = ctx;
    if (j->bf16)
        peak_dpbf16(j, tid);
    else if (j->isa == KERN_ISA_AVX512)
        peak_avx512(j, tid);
    else if (j->isa == KERN_ISA_AVX2)
        peak_avx2(j, tid);
}

/* Best of 3, GFLOP/s over all threads (0 for the scalar ISA, which has no such loop, and for bf16
 * without AVX512-BF16). */
static double peak_run(struct kern_cpu *c, int bf16)
{
    int lanes = c->isa == KERN_ISA_AVX512 ? 16 : c->isa == KERN_ISA_AVX2 ? 8 : 0;
    if (bf16 && (c->isa != KERN_ISA_AVX512 || !__builtin_cpu_supports("avx512bf16")))
        lanes = 0;
    struct peak_job j = { c->isa, bf16, { 0.999f, 1e-3f, 0.5f }, { 0 } };
    double best = 0;
    for (int r = 0; lanes && r < 3; r++) {
        uint64_t t0 = time_ns();
        pool_run(c->pool, peak_part, &j);
        double s = (double)(time_ns() - t0) * 1e-9;
        double g = (bf16 ? 4.0 : 2.0) * lanes * 24 * PEAK_ITERS * c->nthreads / s / 1e9;
        best = g > best ? g : best;
    }
    return best;
}
static double fma_peak(struct kern_cpu *c) { return peak_run(c, 0); }

/* ---------------------------------------------------------------- prefill GEMM */

/* GFLOP/s of one weight at T tokens (best of 3 after a warm-up), with the FMA peak measured
 * right before it (the ratio compares both under the same load). */
static int bench_gemm(struct kern_cpu *c, FILE *out, const char *name, int type, long n, long k,
                      long group, long T)
{
    struct wset s;
    int rc = wset_make(&s, type, n, k, group, 1);
    if (rc < 0)
        return rc;
    float *x = big_alloc((size_t)(T * k) * 4), *y = big_alloc((size_t)(T * n) * 4);
    if (!x || !y) {
        free(x), free(y), wset_free(&s);
        return err_set(ERR_NOMEM, "bench: out of memory");
    }
    fill_f32(x, (size_t)(T * k));
    kern_matmul(c, &s.w[0], x, T, y);
    /* at least ~20 ms per timed pass so that small shapes are not timer noise */
    int reps = (int)(2e7 / (2.0 * (double)n * k * T / 1e3) + 1);
    double peak = fma_peak(c), best = 1e30;
    for (int r = 0; r < 3; r++) {
        uint64_t t0 = time_ns();
        for (int i = 0; i < reps; i++)
            kern_matmul(c, &s.w[0], x, T, y);
        double sec = (double)(time_ns() - t0) * 1e-9 / reps;
        best = sec < best ? sec : best;
    }
    double gf = 2.0 * (double)n * k * T / best / 1e9;
    fprintf(out, "| %-40s | %4ld | %9.3f | %7.1f | %7.1f | %5.2f |\n", name, T, best * 1e3, gf,
            peak, peak > 0 ? gf / peak : 0.0);
    free(x), free(y), wset_free(&s);
    return 0;
}

/* The MoE prefill at the real model's shapes: T tokens routed to 8 of 256 random int4 experts
 * (about T / 32 tokens each, the few-token GEMMs), gate, up and down through kern_moe; GFLOP/s
 * of the expert products, so the routing, SwiGLU and the weights' first read from DRAM count. */
static int bench_moe_prefill(struct kern_cpu *c, FILE *out, const struct wset *g,
                             const struct wset *u, const struct wset *d, long T)
{
    enum { E = 256, K = 8, H = 2048, I = 512 };
    struct kern_expert *ex = calloc(E, sizeof *ex);
    float *x = big_alloc((size_t)T * H * 4), *y = big_alloc((size_t)T * H * 4), *wt = NULL;
    int *idx = calloc((size_t)T * K, sizeof *idx), rc = 0;
    if (ex && idx)
        wt = calloc((size_t)T * K, sizeof *wt);
    if (!ex || !x || !y || !idx || !wt) {
        rc = err_set(ERR_NOMEM, "bench: out of memory");
        goto done;
    }
    for (int e = 0; e < E; e++)
        ex[e] = (struct kern_expert){ g->w[e], u->w[e], d->w[e] };
    fill_f32(x, (size_t)T * H);
    for (long t = 0; t < T; t++)
        for (int j = 0; j < K; j++) { /* 8 distinct random experts per token */
            int e, dup;
            do {
                e = (int)(rnd() % E);
                dup = 0;
                for (int q = 0; q < j; q++)
                    dup |= idx[t * K + q] == e;
            } while (dup);
            idx[t * K + j] = e;
            wt[t * K + j] = 1.0f / K;
        }
    struct kern_moe m = { E, K, T, H, I, ex, idx, wt, NULL, NULL, x, y };
    double peak = fma_peak(c), best = 1e30;
    for (int r = 0; r < 4; r++) { /* r = 0 warms up */
        uint64_t t0 = time_ns();
        if ((rc = kern_moe(c, &m)) < 0)
            goto done;
        double sec = (double)(time_ns() - t0) * 1e-9;
        if (r > 0 && sec < best)
            best = sec;
    }
    double gf = 2.0 * 3 * H * I * K * (double)T / best / 1e9;
    char name[64];
    snprintf(name, sizeof name, "MoE 8 of 256 int4-g32 experts (~%ld tok)", T * K / E);
    fprintf(out, "| %-40s | %4ld | %9.3f | %7.1f | %7.1f | %5.2f |\n", name, T, best * 1e3, gf,
            peak, peak > 0 ? gf / peak : 0.0);
done:
    free(ex), free(x), free(y), free(idx), free(wt);
    return rc;
}

static int bench_gemms(struct kern_cpu *c, FILE *out)
{
    static const struct {
        const char *name;
        int type;
        long n, k, group;
    } gm[] = {
        { "int4-g32 [512x2048] (expert gate/up)", KERN_I4, 512, 2048, 32 },
        { "int4-g32 [2048x512] (expert down)", KERN_I4, 2048, 512, 32 },
        { "int4-g32 [4096x2048]", KERN_I4, 4096, 2048, 32 },
        { "int8 per-channel [8192x2048] (q_proj)", KERN_I8, 8192, 2048, 2048 },
        { "int8-g128 [2048x4096] (o_proj)", KERN_I8, 2048, 4096, 128 },
        { "bf16 [8192x2048] (in_proj_qkv)", KERN_BF16, 8192, 2048, 0 },
        { "bf16 [2048x4096] (out_proj)", KERN_BF16, 2048, 4096, 0 },
    };
    static const long Ts[] = { 16, 32, 64, 256 };
    double bf = peak_run(c, 1), fp = fma_peak(c);
    if (bf > 0)
        fprintf(out,
                "\nAVX512-BF16 vdpbf16ps peak (same loop, 4 flops per lane): %.1f GFLOP/s = %.2f x "
                "the fp32 FMA peak (%.1f): a bf16-activation GEMM can gain only above 1.0\n",
                bf, bf / fp, fp);
    fprintf(out,
            "\nprefill GEMM, %d thread(s); peak = the fp32 FMA peak of a register-only loop "
            "measured right before each line, ratio = GFLOP/s / peak:\n\n"
            "| %-40s | %4s | %9s | %7s | %7s | %5s |\n|---|---:|---:|---:|---:|---:|\n",
            c->nthreads, "weights [rows x cols]", "T", "ms", "GFLOP/s", "peak", "ratio");
    for (size_t i = 0; i < sizeof gm / sizeof *gm; i++)
        for (size_t t = 0; t < sizeof Ts / sizeof *Ts; t++) {
            int rc =
                bench_gemm(c, out, gm[i].name, gm[i].type, gm[i].n, gm[i].k, gm[i].group, Ts[t]);
            if (rc < 0)
                return rc;
        }
    struct wset g, u, d;
    int rc = wset_make(&g, KERN_I4, 512, 2048, 32, 256);
    if (rc < 0)
        return rc;
    if ((rc = wset_make(&u, KERN_I4, 512, 2048, 32, 256)) < 0) {
        wset_free(&g);
        return rc;
    }
    if ((rc = wset_make(&d, KERN_I4, 2048, 512, 32, 256)) < 0) {
        wset_free(&g), wset_free(&u);
        return rc;
    }
    static const long Tm[] = { 256, 1024 };
    for (size_t t = 0; t < sizeof Tm / sizeof *Tm && rc == 0; t++)
        rc = bench_moe_prefill(c, out, &g, &u, &d, Tm[t]);
    wset_free(&g), wset_free(&u), wset_free(&d);
    return rc;
}

static int bench_attn(struct kern_cpu *c, FILE *out, long ctxlen)
{
    int nq = 16, nkv = 2, hd = 256;
    size_t row = (size_t)nkv * hd;
    uint8_t *kc = big_alloc(ctxlen * row), *vc = big_alloc(ctxlen * row);
    float *q = big_alloc((size_t)nq * hd * 4), *o = big_alloc((size_t)nq * hd * 4);
    if (!kc || !vc || !q || !o) {
        free(kc), free(vc), free(q), free(o);
        return err_set(ERR_NOMEM, "bench: out of memory");
    }
    for (size_t i = 0; i < ctxlen * row; i++) {
        kc[i] = (uint8_t)(rnd() % 0x7e);
        vc[i] = (uint8_t)(rnd() % 0x7e) | (uint8_t)(rnd() & 0x80);
    }
    fill_f32(q, (size_t)nq * hd);
    struct kern_attn a = { nq,       nkv, hd, 1,     ctxlen - 1, q,         hd, hd,
                           KERN_FP8, kc,  vc, 0.01f, 0.01f,      1.0f / 16, o };
    kern_attention(c, &a);
    int reps = 20;
    uint64_t t0 = time_ns();
    for (int r = 0; r < reps; r++)
        kern_attention(c, &a);
    double sec = (double)(time_ns() - t0) * 1e-9 / reps;
    char name[96];
    snprintf(name, sizeof name, "attention decode, fp8 KV, %ld positions", ctxlen);
    fprintf(out, "| %-44s | %10.1f | %7.2f GB/s of KV |\n", name, sec * 1e6,
            2.0 * (double)ctxlen * row / sec / 1e9);
    free(kc), free(vc), free(q), free(o);
    return 0;
}

/* Seconds for the sequence-kernel lines: with one thread (all work on the calling thread) its CPU
 * time, which leaves out the time a shared machine gives to other processes; else wall time. */
static double seq_clock(const struct kern_cpu *c)
{
    struct timespec ts;
    if (c->nthreads == 1 && clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    return (double)time_ns() * 1e-9;
}

/* The one-thread FMA peak on the same clock as the sequence lines (fma_peak's loop). */
static double seq_peak(struct kern_cpu *c1)
{
    int lanes = c1->isa == KERN_ISA_AVX512 ? 16 : c1->isa == KERN_ISA_AVX2 ? 8 : 0;
    struct peak_job j = { .isa = c1->isa, .seed = { 0.999f, 1e-3f, 0.5f } };
    double best = 0;
    for (int r = 0; lanes && r < 5; r++) {
        double t0 = seq_clock(c1);
        peak_part(&j, 0, 1);
        double g = 2.0 * lanes * 24 * PEAK_ITERS / (seq_clock(c1) - t0) / 1e9;
        best = g > best ? g : best;
    }
    return best;
}

/* Attention prefill: T tokens at positions pos0 .. pos0+T-1 against a cache of pos0+T random
 * positions; GFLOP/s counts 4 head_dim flops per (query head, visible position) (Q K^T and P V). */
static int bench_attn_prefill(struct kern_cpu *c, FILE *out, const char *label, int nq, int nkv,
                              int hd, int kv_type, long pos0, long T, double peak)
{
    long np = pos0 + T;
    size_t row = (size_t)nkv * hd, es = kv_type == KERN_FP8 ? 1 : kv_type == KERN_BF16 ? 2 : 4;
    uint8_t *kc = big_alloc(np * row * es), *vc = big_alloc(np * row * es);
    float *q = big_alloc((size_t)T * nq * hd * 4), *o = big_alloc((size_t)T * nq * hd * 4);
    if (!kc || !vc || !q || !o) {
        free(kc), free(vc), free(q), free(o);
        return err_set(ERR_NOMEM, "bench: out of memory");
    }
    if (kv_type == KERN_FP8)
        for (size_t i = 0; i < np * row; i++) {
            kc[i] = (uint8_t)(rnd() % 0x7e);
            vc[i] = (uint8_t)(rnd() % 0x7e) | (uint8_t)(rnd() & 0x80);
        }
    else {
        fill_bf16((uint16_t *)kc, np * row);
        fill_bf16((uint16_t *)vc, np * row);
    }
    fill_f32(q, (size_t)T * nq * hd);
    float ks = kv_type == KERN_FP8 ? 0.01f : 1.0f;
    struct kern_attn a = { nq, nkv,     hd, T,  pos0, q,  (long)nq * hd,
                           hd, kv_type, kc, vc, ks,   ks, 1.0f / sqrtf((float)hd),
                           o };
    kern_attention(c, &a);
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = seq_clock(c);
        kern_attention(c, &a);
        double sec = seq_clock(c) - t0;
        best = sec < best ? sec : best;
    }
    double vis = (double)T * (double)pos0 + (double)T * (double)(T + 1) / 2;
    char name[96];
    snprintf(name, sizeof name, "%s %s, pos %ld+%ld", label, kv_type == KERN_FP8 ? "fp8" : "bf16",
             pos0, T);
    double gf = 4.0 * hd * nq * vis / best / 1e9;
    fprintf(out, "| %-44s | %10.1f | %7.0f tok/s, %6.1f GFLOP/s = %.2f of peak |\n", name,
            best * 1e6, (double)T / best, gf, peak > 0 ? gf / peak : 0);
    free(kc), free(vc), free(q), free(o);
    return 0;
}

/* One delta-rule run of the given form; seconds, best of `reps` (the state is reset before each
 * run so every run sees the same numbers). */
static double gdn_time(struct kern_cpu *c, struct kern_gdn *a, const float *st0, size_t ns,
                       int chunk, int reps)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        memcpy(a->state, st0, ns * 4);
        double t0 = seq_clock(c);
        if (chunk)
            kern_gdn_chunked(c, a, chunk);
        else
            kern_gdn_recurrent(c, a);
        double sec = seq_clock(c) - t0;
        best = sec < best ? sec : best;
    }
    return best;
}

/* The delta rule at one shape: the decode step (T = 1, state streamed from memory as in a real
 * model, where 30 layers' states do not stay in cache), then recurrent vs chunked (chunk 64) at
 * T = 64, 256, 1024. GFLOP/s counts the recurrence's 4 dk dv flops per token and head for both
 * forms (the chunked form does more), so the two columns compare time to the same result. */
static int bench_gdn_shape(struct kern_cpu *c, FILE *out, const char *label, int nk, int nv, int dk,
                           int dv)
{
    long Tmax = 1024, ld_qk = 2L * nk * dk, ld_v = (long)nv * dv;
    size_t ns = (size_t)nv * dk * dv;
    /* decode: enough distinct states that each step reads its state from DRAM */
    int nstate = (int)((ROTATE_BYTES / 4 + ns - 1) / ns);
    float *qk = big_alloc((size_t)Tmax * ld_qk * 4), *v = big_alloc((size_t)Tmax * ld_v * 4);
    float *g = big_alloc((size_t)Tmax * nv * 4), *beta = big_alloc((size_t)Tmax * nv * 4);
    float *st = big_alloc(ns * 4 * (size_t)nstate), *st0 = big_alloc(ns * 4);
    float *o = big_alloc((size_t)Tmax * ld_v * 4);
    int rc = 0;
    if (!qk || !v || !g || !beta || !st || !st0 || !o) {
        rc = err_set(ERR_NOMEM, "bench: out of memory");
        goto done;
    }
    fill_f32(qk, (size_t)Tmax * ld_qk);
    fill_f32(v, (size_t)Tmax * ld_v);
    fill_f32(st0, ns);
    for (size_t i = 0; i < ns; i++)
        st0[i] *= 0.1f;
    for (size_t i = 0; i < ns * (size_t)nstate; i++)
        st[i] = st0[i % ns];
    for (long i = 0; i < Tmax * nv; i++) {
        g[i] = -0.05f - 0.05f * (float)(rnd() % 10);
        beta[i] = 0.25f + 0.05f * (float)(rnd() % 10);
    }
    struct kern_gdn a = {
        nk, nv, dk, dv, 1, qk, qk + (long)nk * dk, v, ld_qk, ld_v, g, beta, st, o
    };
    for (int i = 0; i < nstate; i++) { /* warm-up: page faults, code */
        a.state = st + ns * (size_t)i;
        kern_gdn_recurrent(c, &a);
    }
    double sec = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = seq_clock(c);
        for (int i = 0; i < nstate; i++) {
            a.state = st + ns * (size_t)i;
            kern_gdn_recurrent(c, &a);
        }
        double p = (seq_clock(c) - t0) / nstate;
        sec = p < sec ? p : sec;
    }
    char name[96];
    snprintf(name, sizeof name, "%s decode step (T=1)", label);
    /* the chunk columns carry the state traffic instead (the decode step is memory-bound) */
    char gbs[32];
    snprintf(gbs, sizeof gbs, "%.1f GB/s", 2.0 * ns * 4 / sec / 1e9);
    fprintf(out, "| %-36s | %10.1f | %9s | %7.1f | %9s | %7s | %6s |\n", name, sec * 1e6, "-",
            4.0 * nv * dk * dv / sec / 1e9, gbs, "state", "r+w");
    a.state = st;
    long Ts[] = { 64, 256, 1024 };
    for (int i = 0; i < 3; i++) {
        a.T = Ts[i];
        double flops = 4.0 * nv * dk * dv * (double)a.T;
        gdn_time(c, &a, st0, ns, 0, 1), gdn_time(c, &a, st0, ns, 64, 1); /* warm-up */
        double sr = gdn_time(c, &a, st0, ns, 0, 3), sc = gdn_time(c, &a, st0, ns, 64, 3);
        snprintf(name, sizeof name, "%s T=%ld", label, a.T);
        fprintf(out, "| %-36s | %10.1f | %9.0f | %7.1f | %9.0f | %7.1f | %6.2f |\n", name, sr * 1e6,
                (double)a.T / sr, flops / sr / 1e9, (double)a.T / sc, flops / sc / 1e9, sr / sc);
    }
done:
    free(qk), free(v), free(g), free(beta), free(st), free(st0), free(o);
    return rc;
}

static int bench_gdn(struct kern_cpu *c, FILE *out)
{
    fprintf(out,
            "\nGated DeltaNet, %d thread(s), heads split over threads (1 thread: its CPU time, "
            "else wall time; best of 3); GFLOP/s = 4 dk dv per token and head for both forms; "
            "ratio = chunked speed / recurrent speed:\n\n"
            "| %-36s | %10s | %9s | %7s | %9s | %7s | %6s |\n|---|---:|---:|---:|---:|---:|---:|\n",
            c->nthreads, "shape (kh/vh dk x dv)", "recur. us", "recur. t/s", "GFLOP/s", "chunk t/s",
            "GFLOP/s", "ratio");
    int rc = bench_gdn_shape(c, out, "real 16/32 128x128", 16, 32, 128, 128);
    if (rc == 0)
        rc = bench_gdn_shape(c, out, "small 8/16 128x128", 8, 16, 128, 128);
    return rc;
}

static int want(const char *which, const char *what)
{
    if (!which || !*which || !strcmp(which, "all"))
        return 1;
    size_t n = strlen(what);
    for (const char *p = which; (p = strstr(p, what)); p += n)
        if ((p == which || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
            return 1;
    return 0;
}

int kern_bench_run(const char *which, int threads, FILE *out)
{
    static const char *known[] = { "all", "mem", "matvec", "moe", "gemm", "attn", "gdn" };
    if (which && *which) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", which);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            int ok = 0;
            for (size_t i = 0; i < sizeof known / sizeof *known; i++)
                ok |= !strcmp(t, known[i]);
            if (!ok)
                return err_set(
                    ERR_INVAL,
                    "bench: unknown section '%s' (all, mem, matvec, moe, gemm, attn, gdn)", t);
        }
    }
    struct kern_cpu *c = NULL, *c1 = NULL;
    int rc = kern_cpu_new(&c, threads, KERN_ISA_AUTO);
    if (rc < 0)
        return rc;
    if ((rc = kern_cpu_new(&c1, 1, KERN_ISA_AUTO)) < 0) {
        kern_cpu_free(c);
        return rc;
    }
    fprintf(out, "kernels: %s, %d threads\n\n", kern_isa_name(c->isa), c->nthreads);
    float *buf = big_alloc(BW_BYTES);
    if (!buf) {
        rc = err_set(ERR_NOMEM, "bench: cannot allocate the 1 GiB bandwidth buffer");
        goto out;
    }
    fill_seq(buf, BW_BYTES / 4);
    struct bwref br = { c, buf };
    double b1 = bandwidth(c1, buf, BW_BYTES / 4), bw = bandwidth(c, buf, BW_BYTES / 4);
    fprintf(out,
            "memory read bandwidth (1 GiB streaming read, best of 5): %.1f GB/s with 1 thread, "
            "%.1f GB/s with %d\n\n",
            b1, bw, c->nthreads);
    if (want(which, "matvec") || want(which, "moe")) {
        fprintf(out, "decode (T=1), weights streamed from DRAM:\n\n");
        fprintf(out,
                "(read GB/s: the streaming read measured just before each kernel; ratio = GB/s "
                "over it)\n\n| %-44s | %10s | %7s | %7s | %5s |\n|%s|%s|%s|%s|%s|\n",
                "kernel [rows x cols]", "us/call", "GB/s", "read", "ratio", "---",
                "---:", "---:", "---:", "---:");
    }
    if (want(which, "matvec")) {
        struct {
            const char *name;
            int type;
            long n, k, group;
            int reps;
        } mv[] = {
            { "int4-g32 [512x2048] (one expert gate)", KERN_I4, 512, 2048, 32, 2 },
            { "int4-g32 [2048x512] (one expert down)", KERN_I4, 2048, 512, 32, 2 },
            { "int8 per-channel [8192x2048] (attn q_proj)", KERN_I8, 8192, 2048, 2048, 2 },
            { "int8 per-channel [2048x4096] (attn o_proj)", KERN_I8, 2048, 4096, 4096, 2 },
            { "int8-g128 [8192x2048]", KERN_I8, 8192, 2048, 128, 2 },
            { "bf16 [8192x2048] (DeltaNet in_proj_qkv)", KERN_BF16, 8192, 2048, 0, 2 },
            { "bf16 [2048x4096] (DeltaNet out_proj)", KERN_BF16, 2048, 4096, 0, 2 },
            { "bf16 [248320x2048] (lm_head)", KERN_BF16, 248320, 2048, 0, 2 },
        };
        for (size_t i = 0; i < sizeof mv / sizeof *mv; i++)
            if ((rc = bench_matvec(c, out, &br, mv[i].name, mv[i].type, mv[i].n, mv[i].k,
                                   mv[i].group, 3)) < 0)
                goto out;
    }
    if (want(which, "moe") && (rc = bench_moe(c, out, &br)) < 0)
        goto out;
    if (want(which, "gemm") && (rc = bench_gemms(c, out)) < 0)
        goto out;
    if (want(which, "attn"))
        fprintf(out, "\nsequence kernels:\n\n| %-44s | %10s | rate |\n|---|---:|---|\n", "kernel",
                "us");
    if (want(which, "attn") &&
        ((rc = bench_attn(c, out, 4096)) < 0 || (rc = bench_attn(c, out, 32768)) < 0))
        goto out;
    double peak = want(which, "attn") || want(which, "gdn") ? seq_peak(c1) : 0;
    if (want(which, "attn") || want(which, "gdn"))
        fprintf(
            out,
            "\nFMA peak, 1 thread (%s, independent FMAs, its CPU time, best of 5): %.1f GFLOP/s\n",
            kern_isa_name(c1->isa), peak);
    if (want(which, "attn")) {
        fprintf(out,
                "\nattention prefill, 1 thread (its CPU time, best of 3; real: 16 q / 2 kv heads x "
                "256; small: 8 / 2 x "
                "128):\n\n| %-44s | %10s | rate |\n|---|---:|---|\n",
                "shape, KV, positions", "us");
        if ((rc = bench_attn_prefill(c1, out, "real", 16, 2, 256, KERN_FP8, 0, 512, peak)) < 0 ||
            (rc = bench_attn_prefill(c1, out, "real", 16, 2, 256, KERN_BF16, 0, 512, peak)) < 0 ||
            (rc = bench_attn_prefill(c1, out, "real", 16, 2, 256, KERN_FP8, 4032, 64, peak)) < 0 ||
            (rc = bench_attn_prefill(c1, out, "small", 8, 2, 128, KERN_FP8, 0, 512, peak)) < 0)
            goto out;
    }
    if (want(which, "gdn") &&
        ((rc = bench_gdn(c1, out)) < 0 || (c->nthreads > 1 && (rc = bench_gdn(c, out)) < 0)))
        goto out;
    rc = 0;
out:
    free(buf);
    kern_cpu_free(c);
    kern_cpu_free(c1);
    return rc;
}
