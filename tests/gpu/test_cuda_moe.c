/*
 * test_cuda_moe.c - kcu_moe_route and kcu_moe against kern_moe_route + kern_moe (make test-gpu).
 *
 * The real layer (256 experts, top-8, hidden 2048, intermediate 512, int4-g32 routed experts and
 * a bf16 shared expert with its sigmoid gate) and odd small ones, decode batches 1..16 and
 * prefill sizes 17, 64, 333, 2048. The router logits are the same floats on both sides, so the
 * selected experts must be identical; weights and outputs agree to fp32 rounding. Outputs are
 * poisoned with NaN first.
 */
#include "common/err.h"
#include "kernels/kernels.h"
#include "testhelp.h"

#include "gpuhelp.h"

static struct th_rng rng;
static struct kern_cpu *cpu;
static int have_gpu;

/* one random matrix in host memory (see test_cuda_linear.c; scales O(1/sqrt(k))) */
static int rand_weight(struct kern_weight *w, int type, int scale_type, long n, long k, long group)
{
    memset(w, 0, sizeof *w);
    w->type = type;
    w->scale_type = scale_type;
    w->n = n;
    w->k = k;
    w->group = group;
    size_t bytes = type == KERN_I4     ? (size_t)n * k / 2
                   : type == KERN_I8   ? (size_t)n * k
                   : type == KERN_BF16 ? (size_t)n * k * 2
                                       : (size_t)n * k * 4;
    uint8_t *d = malloc(bytes + 8);
    if (!d)
        return -1;
    float sk = 1.0f / sqrtf((float)k);
    if (type == KERN_BF16)
        for (size_t i = 0; i < (size_t)n * k; i++)
            ((uint16_t *)d)[i] = kern_f32_to_bf16(th_uniform(&rng) * 2 * sk);
    else if (type == KERN_F32)
        for (size_t i = 0; i < (size_t)n * k; i++)
            ((float *)d)[i] = th_uniform(&rng) * 2 * sk;
    else
        for (size_t i = 0; i < bytes; i += 8) {
            uint64_t r = th_next(&rng);
            memcpy(d + i, &r, 8);
        }
    w->data = d;
    if (type == KERN_I4 || type == KERN_I8) {
        size_t ns = (size_t)n * (size_t)(k / group);
        void *s = malloc(ns * 4 + 8);
        if (!s)
            return -1;
        float base = (type == KERN_I4 ? 0.25f : 0.015f) * sk;
        for (size_t i = 0; i < ns; i++) {
            float v = base * (1.0f + 0.5f * th_uniform(&rng));
            if (scale_type == KERN_F32)
                ((float *)s)[i] = v;
            else if (scale_type == KERN_F16)
                ((uint16_t *)s)[i] = kern_f32_to_f16(v);
            else
                ((uint16_t *)s)[i] = kern_f32_to_bf16(v);
        }
        w->scale = s;
    }
    return 0;
}

static void free_weight(struct kern_weight *w)
{
    free((void *)w->data);
    free((void *)w->scale);
}

struct layer {
    int E;
    long H, I;
    struct kern_expert *ex, shared;
    int has_shared;
    struct kcu_experts dex, dshared;
};

static int make_layer(struct layer *L, int E, long H, long I, int type, int st, long group,
                      int shared_type, long shared_group)
{
    memset(L, 0, sizeof *L);
    L->E = E;
    L->H = H;
    L->I = I;
    L->ex = calloc((size_t)E, sizeof *L->ex);
    if (!L->ex)
        return -1;
    long gd = group == H ? I : group; /* per channel stays per channel for down */
    for (int e = 0; e < E; e++)
        if (rand_weight(&L->ex[e].gate, type, st, I, H, group) < 0 ||
            rand_weight(&L->ex[e].up, type, st, I, H, group) < 0 ||
            rand_weight(&L->ex[e].down, type, st, H, I, gd) < 0)
            return -1;
    if (shared_type >= 0) {
        long sgd = shared_group == H ? I : shared_group;
        L->has_shared = 1;
        if (rand_weight(&L->shared.gate, shared_type, KERN_BF16, I, H, shared_group) < 0 ||
            rand_weight(&L->shared.up, shared_type, KERN_BF16, I, H, shared_group) < 0 ||
            rand_weight(&L->shared.down, shared_type, KERN_BF16, H, I, sgd) < 0)
            return -1;
    }
    if (kcu_experts_upload(&L->dex, L->ex, E, "routed experts") < 0)
        return -2;
    if (L->has_shared && kcu_experts_upload(&L->dshared, &L->shared, 1, "shared expert") < 0)
        return -2;
    return 0;
}

static void free_layer(struct layer *L)
{
    for (int e = 0; L->ex && e < L->E; e++) {
        free_weight(&L->ex[e].gate);
        free_weight(&L->ex[e].up);
        free_weight(&L->ex[e].down);
    }
    free(L->ex);
    if (L->has_shared) {
        free_weight(&L->shared.gate);
        free_weight(&L->shared.up);
        free_weight(&L->shared.down);
    }
    kcu_experts_free(&L->dex);
    kcu_experts_free(&L->dshared);
}

/* T tokens through layer L with top-k, GPU vs CPU; router: compute the logits from a bf16 router
 * weight on both sides instead of passing them. */
static void check_moe(const char *what, struct layer *L, int k, long T, int use_router)
{
    long H = L->H;
    int E = L->E;
    size_t nx = (size_t)T * H;
    float *x = malloc(nx * 4), *lg = malloc((size_t)T * E * 4), *sg = malloc((size_t)T * 4);
    float *ref = malloc(nx * 4), *got = malloc(nx * 4), *wt = malloc((size_t)T * k * 4);
    float *gwt = malloc((size_t)T * k * 4);
    int *idx = malloc((size_t)T * k * sizeof(int)), *gidx = malloc((size_t)T * k * sizeof(int));
    struct kern_weight router;
    struct kcu_weight drouter;
    struct kcu_buf dx = { 0 }, dlg = { 0 }, dsg = { 0 }, dy = { 0 }, didx = { 0 }, dwt = { 0 };
    memset(&router, 0, sizeof router);
    memset(&drouter, 0, sizeof drouter);
    if (!x || !lg || !sg || !ref || !got || !wt || !gwt || !idx || !gidx) {
        CHECKF(0, "%s: out of host memory", what);
        goto out;
    }
    for (size_t i = 0; i < nx; i++)
        x[i] = th_uniform(&rng);
    for (long i = 0; i < T * E; i++)
        lg[i] = 3.0f * th_uniform(&rng);
    for (long t = 0; t < T; t++)
        sg[t] = 2.0f * th_uniform(&rng);
    if (use_router) {
        if (rand_weight(&router, KERN_BF16, 0, E, H, 0) < 0 ||
            kcu_weight_upload(&drouter, &router, "router") < 0) {
            CHECKF(0, "%s: router: %s", what, err_msg());
            goto out;
        }
        CHECK(kern_matmul(cpu, &router, x, T, lg) == 0);
    }
    /* CPU reference */
    for (long t = 0; t < T; t++)
        CHECK(kern_moe_route(lg + t * E, E, k, idx + t * k, wt + t * k) == 0);
    struct kern_moe cm = { E,
                           k,
                           T,
                           H,
                           L->I,
                           L->ex,
                           idx,
                           wt,
                           L->has_shared ? &L->shared : NULL,
                           L->has_shared ? sg : NULL,
                           x,
                           ref };
    CHECK(kern_moe(cpu, &cm) == 0);
    /* GPU */
    if (kcu_alloc(&dx, nx * 4, "x") < 0 || kcu_alloc(&dlg, (size_t)T * E * 4, "logits") < 0 ||
        kcu_alloc(&dsg, (size_t)T * 4, "sg") < 0 || kcu_alloc(&dy, nx * 4, "y") < 0 ||
        kcu_alloc(&didx, (size_t)T * k * 4, "idx") < 0 ||
        kcu_alloc(&dwt, (size_t)T * k * 4, "wt") < 0) {
        CHECKF(0, "%s: %s", what, err_msg());
        goto out;
    }
    CHECK(kcu_upload(dx.ptr, x, nx * 4) == 0);
    CHECK(kcu_upload(dlg.ptr, lg, (size_t)T * E * 4) == 0);
    CHECK(kcu_upload(dsg.ptr, sg, (size_t)T * 4) == 0);
    CHECK(kcu_fill(dy.ptr, 0xff, nx * 4) == 0);
    CHECK(kcu_fill(didx.ptr, 0xff, (size_t)T * k * 4) == 0);
    CHECK(kcu_fill(dwt.ptr, 0xff, (size_t)T * k * 4) == 0);
    struct kcu_moe gm = { k,
                          T,
                          &L->dex,
                          use_router ? &drouter : NULL,
                          use_router ? NULL : dlg.ptr,
                          L->has_shared ? &L->dshared : NULL,
                          L->has_shared ? dsg.ptr : NULL,
                          dx.ptr,
                          dy.ptr,
                          didx.ptr,
                          dwt.ptr };
    int rc = kcu_moe(&gm, kcu_stream());
    CHECKF(rc == 0, "%s: kcu_moe: %s", what, err_msg());
    rc = kcu_sync();
    CHECKF(rc == 0, "%s: %s", what, err_msg());
    CHECK(kcu_download(got, dy.ptr, nx * 4) == 0);
    CHECK(kcu_download(gidx, didx.ptr, (size_t)T * k * 4) == 0);
    CHECK(kcu_download(gwt, dwt.ptr, (size_t)T * k * 4) == 0);
    long bad_idx = 0;
    double wmax = 0;
    for (long i = 0; i < T * k; i++) {
        bad_idx += gidx[i] != idx[i];
        double d = isnan(gwt[i]) ? INFINITY : fabs((double)gwt[i] - wt[i]);
        wmax = d > wmax ? d : wmax;
    }
    CHECKF(bad_idx == 0, "%s T=%ld: %ld of %ld selections differ", what, T, bad_idx, T * k);
    CHECKF(wmax <= 1e-5, "%s T=%ld: router weights differ by %.3g", what, T, wmax);
    /* from 32 tokens on the grouped GEMM rounds its operands to bf16 (see test_cuda_linear.c) */
    double e = gh_rel_err(got, ref, nx), tol = T >= 32 ? 3e-2 : 2e-3;
    double nmse = e < INFINITY ? th_nmse(got, ref, nx) : INFINITY;
    CHECKF(e <= tol, "%s T=%ld: max error %.3g of the RMS (tolerance %.g)", what, T, e, tol);
    CHECKF(nmse <= (T >= 32 ? 3e-5 : 1e-7), "%s T=%ld: nmse %.3g", what, T, nmse);
out:
    kcu_free(&dx);
    kcu_free(&dlg);
    kcu_free(&dsg);
    kcu_free(&dy);
    kcu_free(&didx);
    kcu_free(&dwt);
    kcu_weight_free(&drouter);
    free_weight(&router);
    free(x);
    free(lg);
    free(sg);
    free(ref);
    free(got);
    free(wt);
    free(gwt);
    free(idx);
    free(gidx);
}

static void t_route(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    static const int Es[] = { 256, 7, 1, 33, 1000 }, ks[] = { 8, 3, 1, 16, 8 };
    for (int c = 0; c < 5; c++) {
        int E = Es[c], k = ks[c];
        long T = 37;
        float *lg = malloc((size_t)T * E * 4), *wt = malloc((size_t)T * k * 4),
              *gwt = malloc((size_t)T * k * 4);
        int *idx = malloc((size_t)T * k * 4), *gidx = malloc((size_t)T * k * 4);
        struct kcu_buf dl = { 0 }, di = { 0 }, dw = { 0 };
        REQUIRE(lg && wt && gwt && idx && gidx);
        for (long i = 0; i < T * E; i++)
            lg[i] = 4.0f * th_uniform(&rng);
        /* ties go to the lower index; NaN never wins over a number */
        lg[0] = lg[1] = 100.0f;
        if (E > 3)
            lg[E + 2] = NAN;
        for (long t = 0; t < T; t++)
            REQUIRE(kern_moe_route(lg + t * E, E, k, idx + t * k, wt + t * k) == 0);
        REQUIRE(kcu_alloc(&dl, (size_t)T * E * 4, "lg") == 0);
        REQUIRE(kcu_alloc(&di, (size_t)T * k * 4, "idx") == 0);
        REQUIRE(kcu_alloc(&dw, (size_t)T * k * 4, "wt") == 0);
        CHECK(kcu_upload(dl.ptr, lg, (size_t)T * E * 4) == 0);
        CHECK(kcu_fill(dw.ptr, 0xff, (size_t)T * k * 4) == 0);
        int rc = kcu_moe_route(dl.ptr, T, E, k, di.ptr, dw.ptr, NULL);
        CHECKF(rc == 0, "route E=%d k=%d: %s", E, k, err_msg());
        CHECK(kcu_sync() == 0);
        CHECK(kcu_download(gidx, di.ptr, (size_t)T * k * 4) == 0);
        CHECK(kcu_download(gwt, dw.ptr, (size_t)T * k * 4) == 0);
        int same = 1;
        double wmax = 0;
        for (long i = 0; i < T * k; i++) {
            same &= gidx[i] == idx[i];
            double d = isnan(gwt[i]) ? INFINITY : fabs((double)gwt[i] - wt[i]);
            wmax = d > wmax ? d : wmax;
        }
        CHECKF(same, "route E=%d k=%d: selections differ", E, k);
        CHECKF(wmax <= 1e-5, "route E=%d k=%d: weights differ by %.3g", E, k, wmax);
        CHECK(kcu_moe_route(dl.ptr, T, E, E + 1, di.ptr, dw.ptr, NULL) == ERR_INVAL);
        kcu_free(&dl);
        kcu_free(&di);
        kcu_free(&dw);
        free(lg);
        free(wt);
        free(gwt);
        free(idx);
        free(gidx);
    }
}

static void t_moe_small(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    static const long Ts[] = { 1, 2, 3, 5, 8, 16, 17, 64, 333 };
    struct layer L;
    /* int8 per channel with f16 scales, an int4-g32 shared expert */
    int rc = make_layer(&L, 7, 96, 64, KERN_I8, KERN_F16, 96, KERN_I4, 32);
    CHECKF(rc == 0, "make layer: %s", rc == -1 ? "out of host memory" : err_msg());
    if (rc == 0)
        for (int i = 0; i < 9; i++)
            check_moe("E7 k3 int8/channel + int4 shared", &L, 3, Ts[i], 0);
    free_layer(&L);
    /* bf16 experts, no shared expert, top-1 and all experts */
    rc = make_layer(&L, 5, 64, 32, KERN_BF16, 0, 0, -1, 0);
    CHECKF(rc == 0, "make layer: %s", rc == -1 ? "out of host memory" : err_msg());
    if (rc == 0)
        for (int i = 0; i < 9; i++) {
            check_moe("E5 k1 bf16", &L, 1, Ts[i], 0);
            check_moe("E5 k5 bf16", &L, 5, Ts[i], 0);
        }
    free_layer(&L);
    /* int4-g64 f32 scales, router computed on the GPU */
    rc = make_layer(&L, 16, 128, 64, KERN_I4, KERN_F32, 64, KERN_BF16, 0);
    CHECKF(rc == 0, "make layer: %s", rc == -1 ? "out of host memory" : err_msg());
    if (rc == 0)
        for (int i = 0; i < 9; i++)
            check_moe("E16 k4 int4-g64 router", &L, 4, Ts[i], 1);
    free_layer(&L);
}

static void t_moe_model(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    static const long Ts[] = { 1, 2, 3, 4, 7, 8, 12, 16, 17, 64, 333, 2048 };
    struct layer L;
    int rc = make_layer(&L, 256, 2048, 512, KERN_I4, KERN_BF16, 32, KERN_BF16, 0);
    CHECKF(rc == 0, "make layer: %s", rc == -1 ? "out of host memory" : err_msg());
    if (rc == 0) {
        for (int i = 0; i < 12; i++)
            check_moe("model layer", &L, 8, Ts[i], 0);
        check_moe("model layer, router on GPU", &L, 8, 5, 1);
    }
    free_layer(&L);
}

static void t_errors(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    struct kern_expert ex[2];
    struct kcu_experts d;
    memset(ex, 0, sizeof ex);
    REQUIRE(rand_weight(&ex[0].gate, KERN_I4, KERN_BF16, 8, 40, 8) == 0);
    REQUIRE(rand_weight(&ex[0].up, KERN_I4, KERN_BF16, 8, 40, 8) == 0);
    REQUIRE(rand_weight(&ex[0].down, KERN_I4, KERN_BF16, 40, 8, 8) == 0);
    /* rows of 20 bytes are not whole 16-byte chunks */
    CHECK(kcu_experts_upload(&d, ex, 1, "odd") == ERR_UNSUPPORTED);
    CHECK(d.buf.ptr == NULL);
    CHECK(kcu_experts_upload(&d, ex, 0, "none") == ERR_INVAL);
    struct kcu_moe m;
    memset(&m, 0, sizeof m);
    CHECK(kcu_moe(&m, NULL) == ERR_INVAL);
    free_weight(&ex[0].gate);
    free_weight(&ex[0].up);
    free_weight(&ex[0].down);
}

int main(void)
{
    if (gh_start(&rng, &cpu, &have_gpu) < 0)
        return 1;
    TEST_RUN(t_errors);
    TEST_RUN(t_route);
    TEST_RUN(t_moe_small);
    TEST_RUN(t_moe_model);
    gh_finish(cpu, have_gpu);
    TEST_END();
}
