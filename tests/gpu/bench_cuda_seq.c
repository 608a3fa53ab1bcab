/*
 * bench_cuda_seq.c - GPU figures for the DeltaNet and attention kernels (scripts/gpu-check): the
 * device's copy bandwidth (cudaMemcpy device to device, measured in the same run), then each
 * kernel's time per call and the GB/s of state or KV cache it streams, as a share of the copy
 * bandwidth. Decode kernels cycle over as many layers' states as the real model has (30 DeltaNet,
 * 10 attention layers), so the data comes from DRAM as in a forward pass. Not a test: prints a
 * table, exit 0 unless something fails.
 *
 *   build/tests/gpu/bench_cuda_seq [seconds per line, default 0.3]
 */
#include "common/err.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double g_secs = 0.3, g_copy_gbps;

static int fail(const char *what)
{
    fprintf(stderr, "bench_cuda_seq: %s: %s\n", what, err_msg());
    return 1;
}

static void *dalloc(size_t bytes, int fill)
{
    struct kcu_buf b = { 0 };
    if (kcu_alloc(&b, bytes, "benchmark") < 0 || kcu_fill(b.ptr, fill, bytes) < 0)
        return NULL;
    return b.ptr;
}

static void dfree(void *p)
{
    struct kcu_buf b = { p, 0 };
    if (p)
        kcu_free(&b);
}

static void row(const char *label, double us, double bytes)
{
    printf("%-52s %10.1f us", label, us);
    if (bytes > 0) {
        double gbps = bytes / us / 1e3;
        printf(" %9.1f GB/s %5.0f%% of copy", gbps, 100 * gbps / g_copy_gbps);
    }
    printf("\n");
}

static int bench_copy(void)
{
    size_t bytes = (size_t)1 << 30;
    void *a = dalloc(bytes, 1), *b = dalloc(bytes, 0);
    if (!a || !b)
        return fail("copy");
    double best = 1e30;
    for (int i = 0; i < 6; i++) {
        kcu_sync();
        double t0 = now();
        if (kcu_copy(b, a, bytes, NULL) < 0 || kcu_sync() < 0)
            return fail("copy");
        double dt = now() - t0;
        best = i && dt < best ? dt : best;
    }
    g_copy_gbps = 2.0 * bytes / best / 1e9;
    printf("%-52s %10.1f us %9.1f GB/s\n", "D2D copy 1 GiB (read + write)", best * 1e6,
           g_copy_gbps);
    dfree(a);
    dfree(b);
    return 0;
}

/* ---- DeltaNet: the fused decode step over 30 layers' states (the real model's dims) */

static int bench_gdn_decode(void)
{
    const int L = 30, nk = 16, nv = 32, dk = 128, dv = 128, kw = 4;
    const long C = 2L * nk * dk + (long)nv * dv;
    size_t st = (size_t)nv * dk * dv, cs = (size_t)C * (kw - 1);
    /* 0x3c3c3c3c ~ 0.0115: finite everywhere; the state decays and stays finite */
    float *state = dalloc(st * L * 4, 0x3c), *conv = dalloc(cs * L * 4, 0x3c);
    float *in = dalloc(((size_t)C + (size_t)C * kw + 2L * nv * dv + 8L * nv + dv) * 4, 0x3c);
    float *out = dalloc((size_t)nv * dv * 4, 0);
    if (!state || !conv || !in || !out)
        return fail("gdn decode");
    float *p = in;
    struct kcs_gdn_step s = { .n_k = nk, .n_v = nv, .dk = dk, .dv = dv, .conv_k = kw };
    s.qkv = p, p += C;
    s.conv_w = p, p += C * kw;
    s.z = p, p += (long)nv * dv;
    s.a = p, p += nv;
    s.b = p, p += nv;
    s.neg_exp_a = p, p += nv;
    s.dt_bias = p, p += nv;
    s.norm_w = p;
    s.eps = 1e-6f;
    if (kcu_fill((void *)s.neg_exp_a, 0xbc, (size_t)nv * 4) < 0) /* decay, not growth */
        return fail("gdn decode");
    s.out = out;
    void *sm = kcu_stream();
    long calls = 0;
    double t0 = 0, dt = 0;
    for (int warm = 1; warm >= 0; warm--) {
        calls = 0;
        t0 = now();
        do {
            for (int l = 0; l < L; l++, calls++) {
                s.state = state + st * l;
                s.conv_state = conv + cs * l;
                if (kcs_gdn_decode(&s, sm) < 0)
                    return fail("gdn decode");
            }
            if (kcu_sync() < 0)
                return fail("gdn decode");
            dt = now() - t0;
        } while (!warm && dt < g_secs);
    }
    /* state read + written, conv state read + written, inputs read once */
    double bytes = 2.0 * st * 4 + 2.0 * cs * 4 + (C + C * kw + (double)nv * dv * 2) * 4;
    row("GDN fused decode step (32 heads 128x128)", dt / calls * 1e6, bytes);
    dfree(state), dfree(conv), dfree(in), dfree(out);
    return 0;
}

/* ---- DeltaNet prefill: conv + gates + delta rule (+ gated norm) for T tokens of one layer */

static int bench_gdn_prefill(long T, int chunked)
{
    const int nk = 16, nv = 32, dk = 128, dv = 128, kw = 4;
    const long C = 2L * nk * dk + (long)nv * dv;
    float *x = dalloc((size_t)T * C * 4, 0x3c), *y = dalloc((size_t)T * C * 4, 0);
    float *w = dalloc((size_t)C * kw * 4, 0x3c), *cs = dalloc((size_t)C * (kw - 1) * 4, 0);
    float *g = dalloc((size_t)T * nv * 4, 0xbc), *beta = dalloc((size_t)T * nv * 4, 0x3c);
    float *state = dalloc((size_t)nv * dk * dv * 4, 0), *o = dalloc((size_t)T * nv * dv * 4, 0);
    if (!x || !y || !w || !cs || !g || !beta || !state || !o)
        return fail("gdn prefill");
    struct kern_gdn a = { .n_k = nk,
                          .n_v = nv,
                          .dk = dk,
                          .dv = dv,
                          .T = T,
                          .q = y,
                          .k = y + (long)nk * dk,
                          .v = y + 2L * nk * dk,
                          .ld_qk = C,
                          .ld_v = C,
                          .g = g,
                          .beta = beta,
                          .state = state,
                          .out = o };
    void *sm = kcu_stream();
    long calls = 0;
    double t0 = 0, dt = 0;
    for (int warm = 1; warm >= 0; warm--) {
        calls = 0;
        t0 = now();
        do {
            if (kcs_conv1d_silu(y, x, C, cs, w, T, C, kw, sm) < 0 ||
                (chunked ? kcs_gdn_chunked(&a, sm) : kcs_gdn_recurrent(&a, sm)) < 0)
                return fail("gdn prefill");
            calls++;
            if (kcu_sync() < 0)
                return fail("gdn prefill");
            dt = now() - t0;
        } while (!warm && dt < g_secs);
    }
    char label[96];
    snprintf(label, sizeof label, "GDN prefill conv + %s T=%ld (%.0f tok/s)",
             chunked ? "chunked" : "recurrent", T, T * calls / dt);
    row(label, dt / calls * 1e6, 0);
    dfree(x), dfree(y), dfree(w), dfree(cs), dfree(g), dfree(beta), dfree(state), dfree(o);
    return 0;
}

/* ---- attention: KV prep (T tokens) and split-KV decode / prefill at a context length */

static int bench_attn(int kv_type, long ctx, long T)
{
    const int nq = 16, nkv = 2, hd = 256;
    size_t es = kv_type == KERN_FP8 ? 1 : 2;
    size_t kvb = (size_t)(ctx + T) * nkv * hd * es;
    int L = kvb * 2 * 10 <= ((size_t)8 << 30) ? 10 : 1; /* 10 layers where memory allows */
    /* 0x30: fp8 ~0.19 / bf16 ~6e-10: finite, harmless */
    char *kc = dalloc(kvb * L, 0x30), *vc = dalloc(kvb * L, 0x30);
    long q_tok = 2L * nq * hd;
    float *q = dalloc((size_t)T * q_tok * 4, 0x3c), *out = dalloc((size_t)T * nq * hd * 4, 0);
    if (!kc || !vc || !q || !out)
        return fail("attention");
    struct kern_attn a = { .n_q = nq,
                           .n_kv = nkv,
                           .head_dim = hd,
                           .T = T,
                           .pos0 = ctx,
                           .q = q,
                           .q_tok = q_tok,
                           .q_head = 2L * hd,
                           .kv_type = kv_type,
                           .k_scale = 1,
                           .v_scale = 1,
                           .scale = 1.0f / 16,
                           .out = out };
    size_t wb = kcs_attention_work_bytes(&a);
    void *work = wb ? dalloc(wb, 0) : NULL;
    if (wb && !work)
        return fail("attention");
    void *sm = kcu_stream();
    long calls = 0;
    double t0 = 0, dt = 0;
    for (int warm = 1; warm >= 0; warm--) {
        calls = 0;
        t0 = now();
        do {
            for (int l = 0; l < L; l++, calls++) {
                a.k = kc + kvb * l;
                a.v = vc + kvb * l;
                if (kcs_attention(&a, q + hd, q_tok, 2L * hd, work, wb, sm) < 0)
                    return fail("attention");
            }
            if (kcu_sync() < 0)
                return fail("attention");
            dt = now() - t0;
        } while (!warm && dt < g_secs);
    }
    char label[96];
    snprintf(label, sizeof label, "attention %s ctx %ld T=%ld", kern_dtype_name(kv_type), ctx, T);
    /* decode streams the whole cache once; prefill (T > 4) is compute-bound: TFLOP/s */
    row(label, dt / calls * 1e6, T <= 4 ? 2.0 * (double)kvb : 0);
    if (T > 4) {
        double pairs = (double)T * ctx + (double)T * (T + 1) / 2; /* causal (query, key) pairs */
        printf("%-52s %10.1f TFLOP/s (QK^T and PV)\n", "",
               4.0 * nq * hd * pairs * calls / dt / 1e12);
    }
    dfree(kc), dfree(vc), dfree(q), dfree(out), dfree(work);
    return 0;
}

static int bench_prep(long T)
{
    const int nq = 16, nkv = 2, hd = 256;
    long q_tok = 2L * nq * hd, kv_tok = 2L * nkv * hd;
    float *q = dalloc((size_t)T * q_tok * 4, 0x3c), *kv = dalloc((size_t)T * kv_tok * 4, 0x3c);
    float *w = dalloc(3 * hd * 4, 0x3c);
    char *kc = dalloc((size_t)T * nkv * hd * 2, 0);
    if (!q || !kv || !w || !kc)
        return fail("prep");
    struct kcs_attn_prep p = { .n_q = nq,
                               .n_kv = nkv,
                               .head_dim = hd,
                               .rot_dim = 64,
                               .T = T,
                               .q = q,
                               .q_tok = q_tok,
                               .q_head = 2L * hd,
                               .k = kv,
                               .v = kv + nkv * hd,
                               .kv_tok = kv_tok,
                               .q_norm = w,
                               .k_norm = w + hd,
                               .eps = 1e-6f,
                               .rope_inv = w + 2 * hd,
                               .mscale = 1,
                               .kv_type = KERN_FP8,
                               .k_cache = kc,
                               .v_cache = kc + (size_t)T * nkv * hd,
                               .cap = T,
                               .k_scale = 1,
                               .v_scale = 1 };
    void *sm = kcu_stream();
    long calls = 0;
    double t0 = 0, dt = 0;
    for (int warm = 1; warm >= 0; warm--) {
        calls = 0;
        t0 = now();
        do {
            /* q is normed in place again and again: rmsnorm keeps it finite */
            if (kcs_attn_prep(&p, sm) < 0)
                return fail("prep");
            calls++;
            if (kcu_sync() < 0)
                return fail("prep");
            dt = now() - t0;
        } while (!warm && dt < g_secs);
    }
    char label[96];
    snprintf(label, sizeof label, "q/k norm + RoPE + FP8 KV write T=%ld", T);
    row(label, dt / calls * 1e6, 0);
    dfree(q), dfree(kv), dfree(w), dfree(kc);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        g_secs = atof(argv[1]);
    if (!kern_cuda_built()) {
        printf("built without CUDA: nothing to measure\n");
        return 0;
    }
    const char *why = NULL;
    if (kern_cuda_device_count(&why) == 0) {
        printf("no GPU: %s\n", why ? why : "?");
        return 0;
    }
    if (kcu_init(0) < 0)
        return fail("init");
    struct kern_gpu_info info;
    if (kern_cuda_device_info(0, &info) == 0)
        printf("device: %s, %d SMs\n", info.name, info.sm_count);
    int rc = bench_copy();
    rc = rc || bench_gdn_decode();
    rc = rc || bench_prep(1);
    static const long ctx[] = { 4096, 32768, 131072, 1048576 };
    for (size_t i = 0; !rc && i < sizeof ctx / sizeof *ctx; i++) {
        rc = bench_attn(KERN_FP8, ctx[i], 1);
        rc = rc || bench_attn(KERN_BF16, ctx[i], 1);
    }
    rc = rc || bench_prep(4096);
    rc = rc || bench_attn(KERN_FP8, 0, 4096);
    rc = rc || bench_attn(KERN_FP8, 32768, 512);
    rc = rc || bench_gdn_prefill(4096, 0);
    rc = rc || bench_gdn_prefill(4096, 1);
    kcu_shutdown();
    return rc;
}
