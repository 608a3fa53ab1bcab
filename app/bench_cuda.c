/*
 * bench_cuda.c - `lode bench kernels --backend cuda`: the CUDA kernels at the real model's
 * shapes, in-process (moved here from tests/gpu/bench_cuda_{linear,seq}.c, which now call
 * bench_cuda_run, so scripts/gpu-check's tables and this command are one code). First the
 * device's copy bandwidth (cudaMemcpy device to device, measured in the same run), then per
 * kernel and shape: time per call, the GB/s of weights, state or KV cache it streams as a share
 * of that copy bandwidth, and TFLOP/s for the prefill GEMMs. Weights and states are cycled over
 * copies totalling more than the L2 cache, so every call reads from DRAM.
 */
#include "app/bench_cuda.h"

#include "common/err.h"
#include "kernels/kernels.h"
#include "kernels/kernels_cuda.h"
#include "kernels/kernels_cuda_misc.h"
#include "kernels/kernels_cuda_seq.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double g_secs = 0.3, g_copy_gbps;

/* ---------------------------------------------------------------- timing helpers */

static double bc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A failed step: the message names it; nonzero, the callers' `rc = rc || ...` idiom. */
static int bc_fail(const char *what)
{
    err_prefix(ERR_INTERNAL, "%s", what);
    return 1;
}

/* Device memory of bytes (+16 slack for kernels that read whole vectors), every byte set to
 * fill; NULL on failure. */
static void *bc_dalloc(size_t bytes, int fill)
{
    struct kcu_buf b = { 0 };
    if (kcu_alloc(&b, bytes + 16, "benchmark") < 0)
        return NULL;
    if (kcu_fill(b.ptr, fill, bytes) < 0) {
        kcu_free(&b);
        return NULL;
    }
    return b.ptr;
}

static void bc_dfree(void *p)
{
    struct kcu_buf b = { p, 0 };
    if (p)
        kcu_free(&b);
}

/* The device-to-device copy bandwidth (GB/s, read + write) of this run, the yardstick the
 * kernels' figures are shown against; prints its line. */
static int bc_bench_copy(double *gbps)
{
    size_t bytes = (size_t)1 << 30;
    void *a = bc_dalloc(bytes, 1), *b = bc_dalloc(bytes, 0);
    if (!a || !b)
        return bc_fail("copy");
    double best = 1e30;
    for (int i = 0; i < 6; i++) {
        kcu_sync();
        double t0 = bc_now();
        if (kcu_copy(b, a, bytes, NULL) < 0 || kcu_sync() < 0)
            return bc_fail("copy");
        double dt = bc_now() - t0;
        best = i && dt < best ? dt : best; /* the first one warms up */
    }
    *gbps = 2.0 * bytes / best / 1e9;
    printf("%-52s %10.1f us %9.1f GB/s\n", "D2D copy 1 GiB (read + write)", best * 1e6, *gbps);
    bc_dfree(a);
    bc_dfree(b);
    return 0;
}

/* Times round(ctx) (some kernel launches, returning how many, < 0 on failure), syncing after
 * each round: one warm-up pass, then rounds until secs have passed. */
static int bc_time_rounds(long (*round)(void *ctx), void *ctx, double secs, long *calls, double *dt)
{
    for (int warm = 1; warm >= 0; warm--) {
        *calls = 0;
        double t0 = bc_now();
        do {
            long n = round(ctx);
            if (n < 0 || kcu_sync() < 0)
                return -1;
            *calls += n;
            *dt = bc_now() - t0;
        } while (!warm && *dt < secs);
    }
    return 0;
}

/* ---------------------------------------------------------------- linear layers and MoE */

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
        return bc_fail(name);
    kcu_fill(x.ptr, 0x3c, (size_t)T * k * 4);
    struct matvec_run r = { w, copies, x.ptr, y.ptr, T, kcu_stream() };
    long calls;
    double dt;
    if (bc_time_rounds(matvec_round, &r, g_secs, &calls, &dt) < 0)
        return bc_fail(name);
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
        return bc_fail("moe host memory");
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
        return bc_fail("moe upload");
    int nsets = T > 16 ? 4 : 64;
    float *lg = malloc((size_t)nsets * T * E * 4);
    if (!lg)
        return bc_fail("moe host memory");
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
        return bc_fail("moe buffers");
    kcu_fill(dx.ptr, 0x3c, (size_t)T * H * 4);
    kcu_fill(dsg.ptr, 0, (size_t)T * 4);
    struct kcu_moe m = { K, T, &ex, NULL, NULL, &sh, dsg.ptr, dx.ptr, dy.ptr, NULL, NULL };
    struct moe_run run = { &m, dlg.ptr, (size_t)T * E, nsets, kcu_stream() };
    long calls;
    double dt;
    if (bc_time_rounds(moe_round, &run, g_secs, &calls, &dt) < 0)
        return bc_fail("moe");
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

/* ---------------------------------------------------------------- DeltaNet and attention */

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
    float *state = bc_dalloc(st * L * 4, 0x3c), *conv = bc_dalloc(cs * L * 4, 0x3c);
    float *in = bc_dalloc(((size_t)C + (size_t)C * kw + 2L * nv * dv + 8L * nv + dv) * 4, 0x3c);
    float *out = bc_dalloc((size_t)nv * dv * 4, 0);
    if (!state || !conv || !in || !out)
        return bc_fail("gdn decode");
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
        return bc_fail("gdn decode");
    s.out = out;
    struct decode_run r = { &s, state, conv, st, cs, L, kcu_stream() };
    long calls;
    double dt;
    if (bc_time_rounds(decode_round, &r, g_secs, &calls, &dt) < 0)
        return bc_fail("gdn decode");
    /* state read + written, conv state read + written, inputs read once */
    double bytes = 2.0 * st * 4 + 2.0 * cs * 4 + (C + C * kw + (double)nv * dv * 2) * 4;
    row("GDN fused decode step (32 heads 128x128)", dt / calls * 1e6, bytes);
    bc_dfree(state), bc_dfree(conv), bc_dfree(in), bc_dfree(out);
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
    float *x = bc_dalloc((size_t)T * C * 4, 0x3c), *y = bc_dalloc((size_t)T * C * 4, 0);
    float *w = bc_dalloc((size_t)C * kw * 4, 0x3c), *cs = bc_dalloc((size_t)C * (kw - 1) * 4, 0);
    float *g = bc_dalloc((size_t)T * nv * 4, 0xbc), *beta = bc_dalloc((size_t)T * nv * 4, 0x3c);
    float *state = bc_dalloc((size_t)nv * dk * dv * 4, 0),
          *o = bc_dalloc((size_t)T * nv * dv * 4, 0);
    if (!x || !y || !w || !cs || !g || !beta || !state || !o)
        return bc_fail("gdn prefill");
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
    if (bc_time_rounds(prefill_round, &r, g_secs, &calls, &dt) < 0)
        return bc_fail("gdn prefill");
    char label[96];
    snprintf(label, sizeof label, "GDN prefill conv + %s T=%ld (%.0f tok/s)",
             chunked ? "chunked" : "recurrent", T, T * calls / dt);
    row(label, dt / calls * 1e6, 0);
    bc_dfree(x), bc_dfree(y), bc_dfree(w), bc_dfree(cs), bc_dfree(g), bc_dfree(beta),
        bc_dfree(state), bc_dfree(o);
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
    char *kc = bc_dalloc(kvb * L, 0x30), *vc = bc_dalloc(kvb * L, 0x30);
    long q_tok = 2L * nq * hd;
    float *q = bc_dalloc((size_t)T * q_tok * 4, 0x3c), *out = bc_dalloc((size_t)T * nq * hd * 4, 0);
    if (!kc || !vc || !q || !out)
        return bc_fail("attention");
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
    void *work = wb ? bc_dalloc(wb, 0) : NULL;
    if (wb && !work)
        return bc_fail("attention");
    struct attn_run r = { &a, kc, vc, kvb, L, q + hd, q_tok, 2L * hd, work, wb, kcu_stream() };
    long calls;
    double dt;
    if (bc_time_rounds(attn_round, &r, g_secs, &calls, &dt) < 0)
        return bc_fail("attention");
    char label[96];
    snprintf(label, sizeof label, "attention %s ctx %ld T=%ld", kern_dtype_name(kv_type), ctx, T);
    /* decode streams the whole cache once; prefill (T > 4) is compute-bound: TFLOP/s */
    row(label, dt / calls * 1e6, T <= 4 ? 2.0 * (double)kvb : 0);
    if (T > 4) {
        double pairs = (double)T * ctx + (double)T * (T + 1) / 2; /* causal (query, key) pairs */
        printf("%-52s %10.1f TFLOP/s (QK^T and PV)\n", "",
               4.0 * nq * hd * pairs * calls / dt / 1e12);
    }
    bc_dfree(kc), bc_dfree(vc), bc_dfree(q), bc_dfree(out), bc_dfree(work);
    return 0;
}

static long prep_round(void *ctx) { return kcs_attn_prep(ctx, kcu_stream()) < 0 ? -1 : 1; }

static int bench_prep(long T)
{
    const int nq = 16, nkv = 2, hd = 256;
    long q_tok = 2L * nq * hd, kv_tok = 2L * nkv * hd;
    float *q = bc_dalloc((size_t)T * q_tok * 4, 0x3c),
          *kv = bc_dalloc((size_t)T * kv_tok * 4, 0x3c);
    float *w = bc_dalloc(3 * hd * 4, 0x3c);
    char *kc = bc_dalloc((size_t)T * nkv * hd * 2, 0);
    if (!q || !kv || !w || !kc)
        return bc_fail("prep");
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
    if (bc_time_rounds(prep_round, &p, g_secs, &calls, &dt) < 0)
        return bc_fail("prep");
    char label[96];
    snprintf(label, sizeof label, "q/k norm + RoPE + FP8 KV write T=%ld", T);
    row(label, dt / calls * 1e6, 0);
    bc_dfree(q), bc_dfree(kv), bc_dfree(w), bc_dfree(kc);
    return 0;
}

/* ---------------------------------------------------------------- entry points */

int bench_cuda_ready(void)
{
    const char *why = NULL;
    if (!kern_cuda_built())
        return err_set(ERR_UNSUPPORTED, "bench kernels: lode was built without CUDA");
    if (kern_cuda_device_count(&why) == 0)
        return err_set(ERR_UNSUPPORTED, "bench kernels: no CUDA GPU (%s)",
                       why ? why : "none found");
    int rc = kcu_init(0);
    return rc < 0 ? err_prefix(rc, "bench kernels") : 0;
}

static int run_linear(void)
{
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
    printf("\n%-52s %13s %14s\n", "linear layers and MoE", "time/call", "weights read");
    int rc = 0;
    for (size_t i = 0; i < sizeof mv / sizeof mv[0] && !rc; i++)
        for (int j = 0; j < 3 && !rc; j++)
            rc = bench_matvec(mv[i].name, mv[i].type, mv[i].n, mv[i].k, mv[i].group, Ts[j]);
    for (long T = 1; T <= 16 && !rc; T *= 4)
        rc = bench_moe(T);
    rc = rc || bench_moe(2048);
    rc = rc || bench_matvec("prefill int4-g32 [4096x2048]", KERN_I4, 4096, 2048, 32, 2048);
    rc = rc || bench_matvec("prefill int8/channel [8192x2048]", KERN_I8, 8192, 2048, 2048, 2048);
    rc = rc || bench_matvec("prefill bf16 [4096x2048]", KERN_BF16, 4096, 2048, 0, 2048);
    return rc;
}

static int run_seq(void)
{
    printf("\n%-52s %13s %14s\n", "DeltaNet and attention", "time/call", "state/KV read");
    int rc = bench_gdn_decode();
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
    return rc;
}

int bench_cuda_run(int sections, double secs)
{
    int rc = bench_cuda_ready();
    if (rc < 0)
        return rc;
    if (secs > 0)
        g_secs = secs;
    struct kern_gpu_info info;
    if ((rc = kern_cuda_device_info(0, &info)) < 0)
        return err_prefix(rc, "bench kernels");
    printf("device: %s, %d SMs, %.1f GiB; theoretical bandwidth %.0f GB/s\n\n", info.name,
           info.sm_count, info.total_bytes / 1073741824.0, kcu_peak_gbps());
    int bad = bc_bench_copy(&g_copy_gbps);
    if (!bad && (sections & BENCH_CUDA_LINEAR))
        bad = run_linear();
    if (!bad && (sections & BENCH_CUDA_SEQ))
        bad = run_seq();
    kcu_shutdown();
    return bad ? err_prefix(ERR_INTERNAL, "bench kernels") : 0;
}
