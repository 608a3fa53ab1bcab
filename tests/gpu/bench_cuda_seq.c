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
#define GH_PROG "bench_cuda_seq"
#include "gpuhelp.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double g_secs = 0.3, g_copy_gbps;

static void row(const char *label, double us, double bytes)
{
    printf("%-52s %10.1f us", label, us);
    if (bytes > 0) {
        double gbps = bytes / us / 1e3;
        printf(" %9.1f GB/s %5.0f%% of copy", gbps, 100 * gbps / g_copy_gbps);
    }
    printf("\n");
}

/* ---- DeltaNet: the fused decode step over 30 layers' states (the real model's dims) */

struct decode_run {
    struct kcs_gdn_step *s;
    float *state, *conv;
    size_t st, cs;
    int L;
    void *sm;
};

/* One step of every layer, each on its own state. */
static long decode_round(void *ctx)
{
    struct decode_run *r = ctx;
    for (int l = 0; l < r->L; l++) {
        r->s->state = r->state + r->st * l;
        r->s->conv_state = r->conv + r->cs * l;
        if (kcs_gdn_decode(r->s, r->sm) < 0)
            return -1;
    }
    return r->L;
}

static int bench_gdn_decode(void)
{
    const int L = 30, nk = 16, nv = 32, dk = 128, dv = 128, kw = 4;
    const long C = 2L * nk * dk + (long)nv * dv;
    size_t st = (size_t)nv * dk * dv, cs = (size_t)C * (kw - 1);
    /* 0x3c3c3c3c ~ 0.0115: finite everywhere; the state decays and stays finite */
    float *state = gh_dalloc(st * L * 4, 0x3c), *conv = gh_dalloc(cs * L * 4, 0x3c);
    float *in = gh_dalloc(((size_t)C + (size_t)C * kw + 2L * nv * dv + 8L * nv + dv) * 4, 0x3c);
    float *out = gh_dalloc((size_t)nv * dv * 4, 0);
    if (!state || !conv || !in || !out)
        return gh_fail("gdn decode");
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
        return gh_fail("gdn decode");
    s.out = out;
    struct decode_run r = { &s, state, conv, st, cs, L, kcu_stream() };
    long calls;
    double dt;
    if (gh_time_rounds(decode_round, &r, g_secs, &calls, &dt) < 0)
        return gh_fail("gdn decode");
    /* state read + written, conv state read + written, inputs read once */
    double bytes = 2.0 * st * 4 + 2.0 * cs * 4 + (C + C * kw + (double)nv * dv * 2) * 4;
    row("GDN fused decode step (32 heads 128x128)", dt / calls * 1e6, bytes);
    gh_dfree(state), gh_dfree(conv), gh_dfree(in), gh_dfree(out);
    return 0;
}

/* ---- DeltaNet prefill: conv + gates + delta rule (+ gated norm) for T tokens of one layer */

struct prefill_run {
    struct kern_gdn *a;
    float *x, *y, *w, *cs;
    long C, T;
    int kw, chunked;
    void *sm;
};

static long prefill_round(void *ctx)
{
    struct prefill_run *r = ctx;
    if (kcs_conv1d_silu(r->y, r->x, r->C, r->cs, r->w, r->T, r->C, r->kw, r->sm) < 0 ||
        (r->chunked ? kcs_gdn_chunked(r->a, r->sm) : kcs_gdn_recurrent(r->a, r->sm)) < 0)
        return -1;
    return 1;
}

static int bench_gdn_prefill(long T, int chunked)
{
    const int nk = 16, nv = 32, dk = 128, dv = 128, kw = 4;
    const long C = 2L * nk * dk + (long)nv * dv;
    float *x = gh_dalloc((size_t)T * C * 4, 0x3c), *y = gh_dalloc((size_t)T * C * 4, 0);
    float *w = gh_dalloc((size_t)C * kw * 4, 0x3c), *cs = gh_dalloc((size_t)C * (kw - 1) * 4, 0);
    float *g = gh_dalloc((size_t)T * nv * 4, 0xbc), *beta = gh_dalloc((size_t)T * nv * 4, 0x3c);
    float *state = gh_dalloc((size_t)nv * dk * dv * 4, 0),
          *o = gh_dalloc((size_t)T * nv * dv * 4, 0);
    if (!x || !y || !w || !cs || !g || !beta || !state || !o)
        return gh_fail("gdn prefill");
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
    struct prefill_run r = { &a, x, y, w, cs, C, T, kw, chunked, kcu_stream() };
    long calls;
    double dt;
    if (gh_time_rounds(prefill_round, &r, g_secs, &calls, &dt) < 0)
        return gh_fail("gdn prefill");
    char label[96];
    snprintf(label, sizeof label, "GDN prefill conv + %s T=%ld (%.0f tok/s)",
             chunked ? "chunked" : "recurrent", T, T * calls / dt);
    row(label, dt / calls * 1e6, 0);
    gh_dfree(x), gh_dfree(y), gh_dfree(w), gh_dfree(cs), gh_dfree(g), gh_dfree(beta),
        gh_dfree(state), gh_dfree(o);
    return 0;
}

/* ---- attention: KV prep (T tokens) and split-KV decode / prefill at a context length */

struct attn_run {
    struct kern_attn *a;
    char *kc, *vc;
    size_t kvb;
    int L;
    const float *gate;
    long gate_tok, gate_head;
    void *work;
    size_t wb;
    void *sm;
};

/* Every layer's cache once. */
static long attn_round(void *ctx)
{
    struct attn_run *r = ctx;
    for (int l = 0; l < r->L; l++) {
        r->a->k = r->kc + r->kvb * l;
        r->a->v = r->vc + r->kvb * l;
        if (kcs_attention(r->a, r->gate, r->gate_tok, r->gate_head, r->work, r->wb, r->sm) < 0)
            return -1;
    }
    return r->L;
}

static int bench_attn(int kv_type, long ctx, long T)
{
    const int nq = 16, nkv = 2, hd = 256;
    size_t es = kv_type == KERN_FP8 ? 1 : 2;
    size_t kvb = (size_t)(ctx + T) * nkv * hd * es;
    int L = kvb * 2 * 10 <= ((size_t)8 << 30) ? 10 : 1; /* 10 layers where memory allows */
    /* 0x30: fp8 ~0.19 / bf16 ~6e-10: finite, harmless */
    char *kc = gh_dalloc(kvb * L, 0x30), *vc = gh_dalloc(kvb * L, 0x30);
    long q_tok = 2L * nq * hd;
    float *q = gh_dalloc((size_t)T * q_tok * 4, 0x3c), *out = gh_dalloc((size_t)T * nq * hd * 4, 0);
    if (!kc || !vc || !q || !out)
        return gh_fail("attention");
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
    void *work = wb ? gh_dalloc(wb, 0) : NULL;
    if (wb && !work)
        return gh_fail("attention");
    struct attn_run r = { &a, kc, vc, kvb, L, q + hd, q_tok, 2L * hd, work, wb, kcu_stream() };
    long calls;
    double dt;
    if (gh_time_rounds(attn_round, &r, g_secs, &calls, &dt) < 0)
        return gh_fail("attention");
    char label[96];
    snprintf(label, sizeof label, "attention %s ctx %ld T=%ld", kern_dtype_name(kv_type), ctx, T);
    /* decode streams the whole cache once; prefill (T > 4) is compute-bound: TFLOP/s */
    row(label, dt / calls * 1e6, T <= 4 ? 2.0 * (double)kvb : 0);
    if (T > 4) {
        double pairs = (double)T * ctx + (double)T * (T + 1) / 2; /* causal (query, key) pairs */
        printf("%-52s %10.1f TFLOP/s (QK^T and PV)\n", "",
               4.0 * nq * hd * pairs * calls / dt / 1e12);
    }
    gh_dfree(kc), gh_dfree(vc), gh_dfree(q), gh_dfree(out), gh_dfree(work);
    return 0;
}

static long prep_round(void *ctx) { return kcs_attn_prep(ctx, kcu_stream()) < 0 ? -1 : 1; }

static int bench_prep(long T)
{
    const int nq = 16, nkv = 2, hd = 256;
    long q_tok = 2L * nq * hd, kv_tok = 2L * nkv * hd;
    float *q = gh_dalloc((size_t)T * q_tok * 4, 0x3c),
          *kv = gh_dalloc((size_t)T * kv_tok * 4, 0x3c);
    float *w = gh_dalloc(3 * hd * 4, 0x3c);
    char *kc = gh_dalloc((size_t)T * nkv * hd * 2, 0);
    if (!q || !kv || !w || !kc)
        return gh_fail("prep");
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
    long calls;
    double dt;
    /* q is normed in place again and again: rmsnorm keeps it finite */
    if (gh_time_rounds(prep_round, &p, g_secs, &calls, &dt) < 0)
        return gh_fail("prep");
    char label[96];
    snprintf(label, sizeof label, "q/k norm + RoPE + FP8 KV write T=%ld", T);
    row(label, dt / calls * 1e6, 0);
    gh_dfree(q), gh_dfree(kv), gh_dfree(w), gh_dfree(kc);
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
        return gh_fail("init");
    struct kern_gpu_info info;
    if (kern_cuda_device_info(0, &info) == 0)
        printf("device: %s, %d SMs\n", info.name, info.sm_count);
    int rc = gh_bench_copy(&g_copy_gbps);
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
