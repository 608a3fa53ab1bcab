/*
 * bench_cuda_linear.c - GPU figures for the linear layers and the MoE block (scripts/gpu-check):
 * the device's copy bandwidth (cudaMemcpy device to device, measured in the same run) and its
 * theoretical peak, then each kernel's time per call and the GB/s of weights it streams, as a
 * share of the copy bandwidth. Weights are cycled over copies totalling more than the L2 cache,
 * so every call reads from DRAM. Not a test: prints a table, exit 0 unless something fails.
 *
 *   build/tests/gpu/bench_cuda_linear [seconds per line, default 0.3]
 */
#define GH_PROG "bench_cuda_linear"
#include "gpuhelp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double g_secs = 0.3, g_copy_gbps;

static size_t weight_bytes(int type, long n, long k, long group)
{
    size_t d = type == KERN_I4     ? (size_t)n * k / 2
               : type == KERN_I8   ? (size_t)n * k
               : type == KERN_BF16 ? (size_t)n * k * 2
                                   : (size_t)n * k * 4;
    if (type == KERN_I4 || type == KERN_I8)
        d += (size_t)n * (size_t)(k / group) * 2;
    return d;
}

/* copies of one weight filled with harmless bytes, as device-only kcu_weights */
static int make_copies(struct kcu_weight *w, int copies, int type, long n, long k, long group,
                       struct kcu_buf *buf)
{
    int q = type == KERN_I4 || type == KERN_I8;
    size_t data =
        weight_bytes(type, n, k, q ? group : k) - (q ? (size_t)n * (size_t)(k / group) * 2 : 0);
    size_t per = ((data + 255) & ~(size_t)255) + (q ? (size_t)n * (size_t)(k / group) * 2 : 0);
    per = (per + 255) & ~(size_t)255;
    if (kcu_alloc(buf, per * (size_t)copies, "benchmark weights") < 0)
        return -1;
    /* 0x3c: bf16 values ~0.011 (finite), int codes near the middle */
    if (kcu_fill(buf->ptr, 0x3c, per * (size_t)copies) < 0)
        return -1;
    for (int c = 0; c < copies; c++) {
        struct kcu_weight *x = &w[c];
        memset(x, 0, sizeof *x);
        x->type = type;
        x->scale_type = KERN_BF16;
        x->n = n;
        x->k = k;
        x->group = q ? group : k;
        x->data = (char *)buf->ptr + per * (size_t)c;
        x->scale = q ? (char *)x->data + ((data + 255) & ~(size_t)255) : NULL;
    }
    return 0;
}

struct matvec_run {
    struct kcu_weight *w;
    int copies;
    void *x, *y;
    long T;
    void *sm;
};

/* Every copy of the weight once, so each call reads from DRAM. */
static long matvec_round(void *ctx)
{
    struct matvec_run *r = ctx;
    for (int c = 0; c < r->copies; c++)
        if (kcu_matmul(&r->w[c], r->x, r->T, r->y, r->sm) < 0)
            return -1;
    return r->copies;
}

static int bench_matvec(const char *name, int type, long n, long k, long group, long T)
{
    size_t wb = weight_bytes(type, n, k, group);
    int copies = (int)((512u << 20) / wb) + 1;
    copies = copies > 256 ? 256 : copies;
    struct kcu_weight *w = calloc((size_t)copies, sizeof *w);
    struct kcu_buf buf = { 0 }, x = { 0 }, y = { 0 };
    if (!w || make_copies(w, copies, type, n, k, group, &buf) < 0 ||
        kcu_alloc(&x, (size_t)T * k * 4, "x") < 0 || kcu_alloc(&y, (size_t)T * n * 4, "y") < 0)
        return gh_fail(name);
    kcu_fill(x.ptr, 0x3c, (size_t)T * k * 4);
    struct matvec_run r = { w, copies, x.ptr, y.ptr, T, kcu_stream() };
    long calls;
    double dt;
    if (gh_time_rounds(matvec_round, &r, g_secs, &calls, &dt) < 0)
        return gh_fail(name);
    double us = dt / calls * 1e6, gbps = (double)wb * calls / dt / 1e9;
    char label[96];
    snprintf(label, sizeof label, "%s T=%ld", name, T);
    printf("%-52s %10.1f us %9.1f GB/s %5.0f%% of copy", label, us, gbps, 100 * gbps / g_copy_gbps);
    if (T > 16)
        printf("  %.1f TFLOP/s", 2.0 * n * k * T * calls / dt / 1e12);
    printf("\n");
    kcu_free(&buf);
    kcu_free(&x);
    kcu_free(&y);
    free(w);
    return 0;
}

struct moe_run {
    struct kcu_moe *m;
    float *logits;
    size_t per_set;
    int nsets;
    void *sm;
};

/* Each set of router logits once, so the routing changes every call. */
static long moe_round(void *ctx)
{
    struct moe_run *r = ctx;
    for (int i = 0; i < r->nsets; i++) {
        r->m->logits = r->logits + r->per_set * (size_t)i;
        if (kcu_moe(r->m, r->sm) < 0)
            return -1;
    }
    return r->nsets;
}

/* One MoE layer of the real model (256 experts int4-g32, bf16 shared expert), T tokens, routing
 * from random logits that change every call. */
static int bench_moe(long T)
{
    const int E = 256, K = 8;
    const long H = 2048, I = 512;
    struct kcu_experts ex, sh;
    memset(&ex, 0, sizeof ex);
    memset(&sh, 0, sizeof sh);
    /* build on the host once with zero codes: content does not matter for timing */
    struct kern_expert *hx = calloc(E, sizeof *hx), hs;
    size_t gb = (size_t)I * H / 2, sb = (size_t)I * (H / 32) * 2;
    uint8_t *zero = calloc(1, gb * 4 + sb * 4 + 16);
    if (!hx || !zero)
        return gh_fail("moe host memory");
    for (int e = 0; e < E; e++) {
        struct kern_weight g = { KERN_I4, KERN_BF16, I, H, 32, zero, zero };
        struct kern_weight d = { KERN_I4, KERN_BF16, H, I, 32, zero, zero };
        hx[e].gate = hx[e].up = g;
        hx[e].down = d;
    }
    struct kern_weight sg = { KERN_BF16, 0, I, H, 0, zero, NULL };
    struct kern_weight sd = { KERN_BF16, 0, H, I, 0, zero, NULL };
    hs.gate = hs.up = sg;
    hs.down = sd;
    if (kcu_experts_upload(&ex, hx, E, "bench experts") < 0 ||
        kcu_experts_upload(&sh, &hs, 1, "bench shared") < 0)
        return gh_fail("moe upload");
    int nsets = T > 16 ? 4 : 64;
    float *lg = malloc((size_t)nsets * T * E * 4);
    if (!lg)
        return gh_fail("moe host memory");
    uint64_t r = 88172645463325252ull;
    for (long i = 0; i < (long)nsets * T * E; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        lg[i] = (float)(r >> 40) / (float)(1 << 24);
    }
    struct kcu_buf dlg = { 0 }, dx = { 0 }, dy = { 0 }, dsg = { 0 };
    if (kcu_alloc(&dlg, (size_t)nsets * T * E * 4, "logits") < 0 ||
        kcu_alloc(&dx, (size_t)T * H * 4, "x") < 0 || kcu_alloc(&dy, (size_t)T * H * 4, "y") < 0 ||
        kcu_alloc(&dsg, (size_t)T * 4, "sg") < 0 ||
        kcu_upload(dlg.ptr, lg, (size_t)nsets * T * E * 4) < 0)
        return gh_fail("moe buffers");
    kcu_fill(dx.ptr, 0x3c, (size_t)T * H * 4);
    kcu_fill(dsg.ptr, 0, (size_t)T * 4);
    struct kcu_moe m = { K, T, &ex, NULL, NULL, &sh, dsg.ptr, dx.ptr, dy.ptr, NULL, NULL };
    struct moe_run run = { &m, dlg.ptr, (size_t)T * E, nsets, kcu_stream() };
    long calls;
    double dt;
    if (gh_time_rounds(moe_round, &run, g_secs, &calls, &dt) < 0)
        return gh_fail("moe");
    /* bytes if every token's 8 experts were distinct (an upper bound for T > 1) */
    double ebytes = 3.0 * (gb + sb), sbytes = 3.0 * I * H * 2;
    double bytes = (T == 1 ? K * ebytes : (double)T * K * ebytes) + sbytes;
    char label[96];
    snprintf(label, sizeof label, "MoE layer 8 of 256 int4-g32 + bf16 shared, T=%ld", T);
    if (T > 16) {
        /* prefill: every expert is read about once; report tokens per second */
        printf("%-52s %10.1f us %9.0f tok/s\n", label, dt / calls * 1e6, (double)T * calls / dt);
        goto done;
    }
    printf("%-52s %10.1f us %9.1f GB/s %5.0f%% of copy%s\n", label, dt / calls * 1e6,
           bytes * calls / dt / 1e9, 100 * bytes * calls / dt / 1e9 / g_copy_gbps,
           T > 1 ? " (bytes: all selections)" : "");
done:
    kcu_free(&dlg);
    kcu_free(&dx);
    kcu_free(&dy);
    kcu_free(&dsg);
    kcu_experts_free(&ex);
    kcu_experts_free(&sh);
    free(lg);
    free(hx);
    free(zero);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        g_secs = atof(argv[1]) > 0 ? atof(argv[1]) : g_secs;
    const char *why = NULL;
    if (!kern_cuda_built() || kern_cuda_device_count(&why) == 0) {
        printf("bench_cuda_linear: no GPU (%s)\n", kern_cuda_built() ? why : "built without CUDA");
        return 0;
    }
    struct kern_gpu_info info;
    if (kcu_init(0) < 0 || kern_cuda_device_info(0, &info) < 0)
        return gh_fail("init");
    printf("device: %s, %d SMs, %.1f GiB; theoretical bandwidth %.0f GB/s\n\n", info.name,
           info.sm_count, info.total_bytes / 1073741824.0, kcu_peak_gbps());
    printf("%-52s %13s %14s\n", "kernel", "time/call", "weights read");
    int rc = gh_bench_copy(&g_copy_gbps);
    static const struct {
        const char *name;
        int type;
        long n, k, group;
    } mv[] = {
        { "int4-g32 [512x2048] (expert gate)", KERN_I4, 512, 2048, 32 },
        { "int4-g32 [2048x512] (expert down)", KERN_I4, 2048, 512, 32 },
        { "int4-g32 [4096x2048]", KERN_I4, 4096, 2048, 32 },
        { "int8/channel [8192x2048] (q_proj)", KERN_I8, 8192, 2048, 2048 },
        { "int8/channel [2048x4096] (o_proj)", KERN_I8, 2048, 4096, 4096 },
        { "int8-g128 [8192x2048]", KERN_I8, 8192, 2048, 128 },
        { "bf16 [256x2048] (router)", KERN_BF16, 256, 2048, 0 },
        { "bf16 [248320x2048] (lm_head)", KERN_BF16, 248320, 2048, 0 },
    };
    static const long Ts[] = { 1, 4, 16 };
    for (size_t i = 0; i < sizeof mv / sizeof mv[0] && !rc; i++)
        for (int j = 0; j < 3 && !rc; j++)
            rc = bench_matvec(mv[i].name, mv[i].type, mv[i].n, mv[i].k, mv[i].group, Ts[j]);
    for (long T = 1; T <= 16 && !rc; T *= 4)
        rc = bench_moe(T);
    if (!rc)
        rc = bench_moe(2048);
    if (!rc)
        rc = bench_matvec("prefill int4-g32 [4096x2048]", KERN_I4, 4096, 2048, 32, 2048);
    if (!rc)
        rc = bench_matvec("prefill int8/channel [8192x2048]", KERN_I8, 8192, 2048, 2048, 2048);
    if (!rc)
        rc = bench_matvec("prefill bf16 [4096x2048]", KERN_BF16, 4096, 2048, 0, 2048);
    kcu_shutdown();
    return rc;
}
