/*
 * test_cuda_linear.c - kcu_matmul against the CPU kernel kern_matmul (make test-gpu).
 *
 * Random weights of every type (int4 / int8 with BF16, F16 and F32 scales, per group and per
 * channel, BF16, F32), the real model's shapes and odd small ones, decode batches 1..16 and
 * prefill sizes 17, 64, 333, 2048. Outputs are poisoned with NaN before each kernel and followed
 * by a guard zone that must stay untouched. Errors are measured relative to the output's RMS (a
 * wrong index gives errors of order 1): fp32 rounding for decode, bf16 operands for prefill.
 */
#include "common/err.h"
#include "kernels/kernels.h"
#include "testhelp.h"

#include "gpuhelp.h"

static struct th_rng rng;
static struct kern_cpu *cpu;
static int have_gpu;

#define GUARD 64 /* floats after every output */

/* A random weight: codes uniform, scales in [0.5, 1.5) / sqrt(k) so outputs are O(1). */
struct host_weight {
    struct kern_weight w;
    void *data, *scale;
};

static int make_weight(struct host_weight *h, int type, int scale_type, long n, long k, long group)
{
    memset(h, 0, sizeof *h);
    struct kern_weight *w = &h->w;
    w->type = type;
    w->scale_type = scale_type;
    w->n = n;
    w->k = k;
    w->group = group;
    size_t words;
    switch (type) {
    case KERN_F32: words = (size_t)n * k; break;
    case KERN_BF16: words = ((size_t)n * k + 1) / 2; break;
    case KERN_I4: words = (size_t)n * k / 8; break;
    default: words = (size_t)n * k / 4; break;
    }
    h->data = malloc(words * 4 + 16);
    if (!h->data)
        return -1;
    uint32_t *d = h->data;
    float sk = 1.0f / sqrtf((float)k);
    if (type == KERN_F32)
        for (size_t i = 0; i < words; i++)
            ((float *)d)[i] = th_uniform(&rng) * sk * 2;
    else if (type == KERN_BF16)
        for (size_t i = 0; i < (size_t)n * k; i++)
            ((uint16_t *)d)[i] = kern_f32_to_bf16(th_uniform(&rng) * sk * 2);
    else
        for (size_t i = 0; i < words; i += 2) {
            uint64_t r = th_next(&rng);
            d[i] = (uint32_t)r;
            if (i + 1 < words)
                d[i + 1] = (uint32_t)(r >> 32);
        }
    w->data = h->data;
    if (type == KERN_I4 || type == KERN_I8) {
        size_t ns = (size_t)n * (size_t)(k / group);
        float base = (type == KERN_I4 ? 0.25f : 0.015f) * sk;
        h->scale = malloc(ns * 4 + 16);
        if (!h->scale)
            return -1;
        for (size_t i = 0; i < ns; i++) {
            float s = base * (1.0f + 0.5f * th_uniform(&rng));
            if (scale_type == KERN_F32)
                ((float *)h->scale)[i] = s;
            else if (scale_type == KERN_F16)
                ((uint16_t *)h->scale)[i] = kern_f32_to_f16(s);
            else
                ((uint16_t *)h->scale)[i] = kern_f32_to_bf16(s);
        }
        w->scale = h->scale;
    }
    return 0;
}

static void free_weight(struct host_weight *h)
{
    free(h->data);
    free(h->scale);
}

/* One weight, several token counts: GPU vs CPU. */
static void check_weight(const char *what, int type, int scale_type, long n, long k, long group,
                         const long *Ts, int nT)
{
    struct host_weight hw;
    struct kcu_weight dw;
    long Tmax = 0;
    for (int i = 0; i < nT; i++)
        Tmax = Ts[i] > Tmax ? Ts[i] : Tmax;
    if (make_weight(&hw, type, scale_type, n, k, group) < 0) {
        CHECKF(0, "%s: out of host memory", what);
        free_weight(&hw);
        return;
    }
    int rc = kcu_weight_upload(&dw, &hw.w, what);
    CHECKF(rc == 0, "%s: upload: %s", what, err_msg());
    if (rc < 0) {
        free_weight(&hw);
        return;
    }
    size_t ny = (size_t)Tmax * n;
    float *x = gh_rnd(&rng, (size_t)Tmax * k, -1, 1), *ref = malloc(ny * 4),
          *got = malloc((ny + GUARD) * 4);
    struct kcu_buf dx = { 0 }, dy = { 0 };
    if (!x || !ref || !got || kcu_alloc(&dx, (size_t)Tmax * k * 4, "x") < 0 ||
        kcu_alloc(&dy, (ny + GUARD) * 4, "y") < 0) {
        CHECKF(0, "%s: allocation: %s", what, err_msg());
        goto out;
    }
    if (kcu_upload(dx.ptr, x, (size_t)Tmax * k * 4) < 0) {
        CHECKF(0, "%s: upload x: %s", what, err_msg());
        goto out;
    }
    for (int i = 0; i < nT; i++) {
        long T = Ts[i];
        size_t m = (size_t)T * n;
        CHECK(kern_matmul(cpu, &hw.w, x, T, ref) == 0);
        /* NaN poison over the output, a 0x5a pattern over the guard zone after it */
        CHECK(kcu_fill(dy.ptr, 0xff, m * 4) == 0);
        CHECK(kcu_fill((float *)dy.ptr + m, 0x5a, GUARD * 4) == 0);
        rc = kcu_matmul(&dw, dx.ptr, T, dy.ptr, kcu_stream());
        CHECKF(rc == 0, "%s T=%ld: %s", what, T, err_msg());
        rc = kcu_sync();
        CHECKF(rc == 0, "%s T=%ld: %s", what, T, err_msg());
        CHECK(kcu_download(got, dy.ptr, (m + GUARD) * 4) == 0);
        /* decode: fp32 throughout, only the summation order differs; prefill rounds activations
         * and dequantized weights to bf16 for the tensor cores (~1.6e-3 of the RMS per output,
         * up to ~5 sigma over millions of outputs), so a looser max and a tight mean */
        double e = gh_rel_err(got, ref, m), tol = T > 16 ? 3e-2 : 1e-3;
        double nmse = e < INFINITY ? th_nmse(got, ref, m) : INFINITY;
        CHECKF(e <= tol, "%s [%ld x %ld] T=%ld: max error %.3g of the RMS (tolerance %.g)", what, n,
               k, T, e, tol);
        CHECKF(nmse <= (T > 16 ? 2e-5 : 1e-8), "%s [%ld x %ld] T=%ld: nmse %.3g", what, n, k, T,
               nmse);
        int guard_ok = 1;
        for (int g = 0; g < GUARD; g++) {
            uint32_t u;
            memcpy(&u, &got[m + g], 4);
            guard_ok &= u == 0x5a5a5a5au;
        }
        CHECKF(guard_ok, "%s T=%ld: wrote past the output", what, T);
    }
out:
    kcu_free(&dx);
    kcu_free(&dy);
    kcu_weight_free(&dw);
    free(x);
    free(ref);
    free(got);
    free_weight(&hw);
}

static const long decode_T[] = { 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16 };
static const long few_T[] = { 1, 3, 16 };
static const long prefill_T[] = { 17, 64, 333, 2048 };
#define N(a) (int)(sizeof(a) / sizeof(a[0]))

static void t_decode_model_shapes(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    check_weight("expert gate int4-g32", KERN_I4, KERN_BF16, 512, 2048, 32, decode_T, N(decode_T));
    check_weight("expert down int4-g32", KERN_I4, KERN_BF16, 2048, 512, 32, decode_T, N(decode_T));
    check_weight("q_proj int8/channel", KERN_I8, KERN_BF16, 8192, 2048, 2048, few_T, N(few_T));
    check_weight("o_proj int8/channel", KERN_I8, KERN_BF16, 2048, 4096, 4096, few_T, N(few_T));
    check_weight("in_proj_qkv int8-g128", KERN_I8, KERN_BF16, 8192, 2048, 128, few_T, N(few_T));
    check_weight("router bf16", KERN_BF16, 0, 256, 2048, 0, decode_T, N(decode_T));
    check_weight("in_proj_a bf16", KERN_BF16, 0, 32, 2048, 0, few_T, N(few_T));
    check_weight("shared gate f32", KERN_F32, 0, 1, 2048, 0, few_T, N(few_T));
}

static void t_decode_head(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    static const long one[] = { 1, 4 };
    check_weight("lm_head bf16", KERN_BF16, 0, 248320, 2048, 0, one, N(one));
    check_weight("lm_head int8/channel", KERN_I8, KERN_BF16, 248320, 2048, 2048, one, N(one));
}

static void t_decode_scale_types(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    check_weight("int4-g32 f16 scales", KERN_I4, KERN_F16, 96, 256, 32, decode_T, N(decode_T));
    check_weight("int4-g64 f32 scales", KERN_I4, KERN_F32, 96, 256, 64, decode_T, N(decode_T));
    check_weight("int4-g128", KERN_I4, KERN_BF16, 130, 1024, 128, few_T, N(few_T));
    check_weight("int8-g32 f16 scales", KERN_I8, KERN_F16, 70, 512, 32, decode_T, N(decode_T));
    check_weight("int8/channel f32", KERN_I8, KERN_F32, 33, 48, 48, decode_T, N(decode_T));
}

/* rows that are not whole 16-byte chunks or groups smaller than a chunk: the generic kernel */
static void t_decode_odd_shapes(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    check_weight("int4 [37x96] g32", KERN_I4, KERN_BF16, 37, 96, 32, decode_T, N(decode_T));
    check_weight("int4 [13x40] g8", KERN_I4, KERN_BF16, 13, 40, 8, decode_T, N(decode_T));
    check_weight("int4 [3x64] g16", KERN_I4, KERN_F32, 3, 64, 16, decode_T, N(decode_T));
    check_weight("int8 [5x12] g4", KERN_I8, KERN_BF16, 5, 12, 4, decode_T, N(decode_T));
    check_weight("int8 [1x20] g20", KERN_I8, KERN_F16, 1, 20, 20, decode_T, N(decode_T));
    check_weight("bf16 [7x7]", KERN_BF16, 0, 7, 7, 0, decode_T, N(decode_T));
    check_weight("bf16 [9x24]", KERN_BF16, 0, 9, 24, 0, decode_T, N(decode_T));
    check_weight("f32 [3x4]", KERN_F32, 0, 3, 4, 0, decode_T, N(decode_T));
    check_weight("f32 [5x3]", KERN_F32, 0, 5, 3, 0, decode_T, N(decode_T));
}

static void t_prefill(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    check_weight("expert gate int4-g32", KERN_I4, KERN_BF16, 512, 2048, 32, prefill_T,
                 N(prefill_T));
    check_weight("expert down int4-g32", KERN_I4, KERN_BF16, 2048, 512, 32, prefill_T,
                 N(prefill_T));
    check_weight("o_proj int8/channel", KERN_I8, KERN_BF16, 2048, 4096, 4096, prefill_T,
                 N(prefill_T));
    check_weight("router bf16", KERN_BF16, 0, 256, 2048, 0, prefill_T, N(prefill_T));
    /* every instance of the shared tensor-core tile (linear.cuh kcu_tile_gemm): f32 weights
     * (8 chunks per row and step), int8 groups, f32 scales, the 128-group of in_proj_qkv */
    static const long some_T[] = { 17, 333 };
    check_weight("f32 [70x64]", KERN_F32, 0, 70, 64, 0, prefill_T, N(prefill_T));
    check_weight("int8-g32 f16 scales", KERN_I8, KERN_F16, 70, 512, 32, prefill_T, N(prefill_T));
    check_weight("int4-g64 f32 scales", KERN_I4, KERN_F32, 96, 256, 64, prefill_T, N(prefill_T));
    check_weight("in_proj_qkv int8-g128", KERN_I8, KERN_BF16, 8192, 2048, 128, some_T, N(some_T));
    check_weight("int4 [37x96] g32", KERN_I4, KERN_BF16, 37, 96, 32, prefill_T, N(prefill_T));
    check_weight("int8 [5x12] g4", KERN_I8, KERN_F16, 5, 12, 4, prefill_T, N(prefill_T));
    check_weight("bf16 [7x7]", KERN_BF16, 0, 7, 7, 0, prefill_T, N(prefill_T));
}

static void t_errors(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    struct kcu_buf b;
    int rc = kcu_alloc(&b, (size_t)1 << 50, "a petabyte");
    CHECK(rc == ERR_NOMEM);
    CHECKF(strstr(err_msg(), "a petabyte") && strstr(err_msg(), "free of"), "message: %s",
           err_msg());
    CHECK(b.ptr == NULL);
    kcu_free(&b);

    struct host_weight hw;
    struct kcu_weight dw;
    REQUIRE(make_weight(&hw, KERN_I4, KERN_BF16, 4, 64, 32) == 0);
    hw.w.group = 12; /* not a whole number of words */
    CHECK(kcu_weight_upload(&dw, &hw.w, "bad") == ERR_INVAL);
    CHECK(dw.buf.ptr == NULL);
    hw.w.group = 32;
    REQUIRE(kcu_weight_upload(&dw, &hw.w, "good") == 0);
    float *dx = NULL;
    CHECK(kcu_matmul(&dw, dx, -1, dx, NULL) == ERR_INVAL);
    CHECK(kcu_matmul(&dw, dx, 0, dx, NULL) == 0);
    struct kcu_weight empty;
    memset(&empty, 0, sizeof empty);
    CHECK(kcu_matmul(&empty, dx, 1, dx, NULL) == ERR_INVAL);
    kcu_weight_free(&dw);
    free_weight(&hw);
    CHECK(kcu_init(0) == 0); /* idempotent */
    CHECK(kcu_sync() == 0);
}

static void t_cpu_only_stubs(void)
{
    if (kern_cuda_built())
        SKIP("built with CUDA");
    struct kcu_buf b;
    CHECK(kcu_init(0) == ERR_UNSUPPORTED);
    CHECK(kcu_alloc(&b, 16, "x") == ERR_UNSUPPORTED && b.ptr == NULL);
}

int main(void)
{
    if (gh_start(&rng, &cpu, &have_gpu) < 0)
        return 1;
    TEST_RUN(t_cpu_only_stubs);
    TEST_RUN(t_errors);
    TEST_RUN(t_decode_odd_shapes);
    TEST_RUN(t_decode_scale_types);
    TEST_RUN(t_decode_model_shapes);
    TEST_RUN(t_decode_head);
    TEST_RUN(t_prefill);
    gh_finish(cpu, have_gpu);
    TEST_END();
}
