/*
 * bench.c - the kernel benchmark (kern_bench_run): memory read bandwidth measured in the same
 * run, then the decode matrix-vector kernels at the real model's shapes (GB/s of weights and the
 * ratio to that bandwidth), the prefill GEMM (GFLOP/s at T = 256), attention decode over a long
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

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        uint64_t t0 = time_ns();
        kern_matmul(c, &s.w[0], x, T, y);
        double sec = (double)(time_ns() - t0) * 1e-9;
        best = sec < best ? sec : best;
    }
    fprintf(out, "| %-44s | %10.2f | %7.1f |\n", name, best * 1e3,
            2.0 * (double)n * k * T / best / 1e9);
    free(x), free(y), wset_free(&s);
    return 0;
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

static int bench_gdn(struct kern_cpu *c, FILE *out)
{
    int nk = 16, nv = 32, dk = 128, dv = 128;
    long T = 256, ld_qk = 8192, ld_v = nv * dv;
    float *qkv = big_alloc((size_t)T * ld_qk * 4), *g = big_alloc((size_t)T * nv * 4);
    float *beta = big_alloc((size_t)T * nv * 4), *st = big_alloc((size_t)nv * dk * dv * 4);
    float *o = big_alloc((size_t)T * nv * dv * 4);
    if (!qkv || !g || !beta || !st || !o) {
        free(qkv), free(g), free(beta), free(st), free(o);
        return err_set(ERR_NOMEM, "bench: out of memory");
    }
    fill_f32(qkv, (size_t)T * ld_qk);
    for (long i = 0; i < T * nv; i++) {
        g[i] = -0.1f - 0.1f * (float)(rnd() % 10);
        beta[i] = 0.5f;
    }
    memset(st, 0, (size_t)nv * dk * dv * 4);
    struct kern_gdn a = { nk,         nv,    dk,    dv, 1,    qkv, qkv + 2048,
                          qkv + 4096, ld_qk, ld_qk, g,  beta, st,  o };
    (void)ld_v;
    kern_gdn_recurrent(c, &a);
    int reps = 50;
    uint64_t t0 = time_ns();
    for (int r = 0; r < reps; r++)
        kern_gdn_recurrent(c, &a);
    double sec = (double)(time_ns() - t0) * 1e-9 / reps;
    fprintf(out, "| %-44s | %10.1f | %7.1f GB/s of state (read+write) |\n",
            "DeltaNet recurrent step, 32 heads 128x128", sec * 1e6,
            2.0 * nv * dk * dv * 4 / sec / 1e9);
    a.T = T;
    t0 = time_ns();
    kern_gdn_chunked(c, &a, 64);
    sec = (double)(time_ns() - t0) * 1e-9;
    fprintf(out, "| %-44s | %10.1f | %7.0f tokens/s |\n",
            "DeltaNet chunked prefill, T=256, chunk 64", sec * 1e6, T / sec);
    a.T = 64;
    t0 = time_ns();
    kern_gdn_recurrent(c, &a);
    sec = (double)(time_ns() - t0) * 1e-9;
    fprintf(out, "| %-44s | %10.1f | %7.0f tokens/s |\n", "DeltaNet recurrent over T=64", sec * 1e6,
            64 / sec);
    free(qkv), free(g), free(beta), free(st), free(o);
    return 0;
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
    if (want(which, "gemm")) {
        fprintf(out, "\nprefill GEMM, T=256 tokens:\n\n| %-44s | %10s | %7s |\n|---|---:|---:|\n",
                "weights [rows x cols]", "ms", "GFLOP/s");
        if ((rc = bench_gemm(c, out, "bf16 [8192x2048]", KERN_BF16, 8192, 2048, 0, 256)) < 0 ||
            (rc = bench_gemm(c, out, "int8 per-channel [8192x2048]", KERN_I8, 8192, 2048, 2048,
                             256)) < 0 ||
            (rc = bench_gemm(c, out, "int4-g32 [4096x2048]", KERN_I4, 4096, 2048, 32, 256)) < 0 ||
            (rc = bench_gemm(c, out, "int4-g32 [512x2048] (one expert, 256 tokens)", KERN_I4, 512,
                             2048, 32, 256)) < 0)
            goto out;
    }
    if (want(which, "attn") || want(which, "gdn"))
        fprintf(out, "\nsequence kernels:\n\n| %-44s | %10s | rate |\n|---|---:|---|\n", "kernel",
                "us");
    if (want(which, "attn") &&
        ((rc = bench_attn(c, out, 4096)) < 0 || (rc = bench_attn(c, out, 32768)) < 0))
        goto out;
    if (want(which, "gdn") && (rc = bench_gdn(c, out)) < 0)
        goto out;
    rc = 0;
out:
    free(buf);
    kern_cpu_free(c);
    kern_cpu_free(c1);
    return rc;
}
