/*
 * test_cuda_attn.c - the CUDA gated-attention kernels against the CPU path (make test-gpu).
 *
 * kcs_attn_prep (q/k RMSNorm + partial RoPE, plain and YaRN, fused with the KV write in F32,
 * BF16 and FP8) against kern_rmsnorm + kern_rope + kern_convert, as engine/forward.c chains
 * them; kcs_attention (split-KV, sigmoid gate fused) against kern_attention times the gate at
 * context lengths 1, 63, 64, 65, 4096, 131072 and 1,000,003 (FP8; the CPU reference on the
 * first kv head's query heads only, to keep the time short), odd head counts and sizes, several
 * query tokens at once, and a prompt prefilled in pieces equal to the prompt in one piece.
 * Random data from a fresh seed (printed); outputs poisoned with NaN before the kernels.
 * Tolerances: fp32 accumulation in another order (1e-4 of the values' scale); prompts on tensor
 * cores (bf16 operands) ~1e-2 absolute and a normalised squared error below 1e-4; a converted
 * KV element may round to the neighbouring code when the fp32 inputs differ in the last bit.
 */
#include "common/err.h"
#include "kernels/kernels.h"
#include "testhelp.h"

#include "gpuhelp.h"

static struct th_rng rng;
static struct kern_cpu *cpu;
static int have_gpu;

static size_t esize(int type) { return type == KERN_F32 ? 4 : type == KERN_BF16 ? 2 : 1; }

/* n random KV elements of type: F32 / BF16 uniform in [-2, 2); FP8 codes with exponents 4..10
 * (|x| in [1/8, 15]) and random sign and mantissa, never NaN. */
static void *rnd_kv(int type, size_t n)
{
    void *p = malloc(n * esize(type) + 16);
    if (!p)
        return NULL;
    if (type == KERN_FP8) {
        uint8_t *b = p;
        for (size_t i = 0; i < n; i += 8) {
            uint64_t r = th_next(&rng);
            for (size_t j = 0; j < 8 && i + j < n; j++) {
                unsigned x = (unsigned)(r >> (8 * j)) & 0xff;
                b[i + j] = (uint8_t)((x & 0x80) | ((4 + ((x >> 3) & 0xf) % 7) << 3) | (x & 7));
            }
        }
    } else if (type == KERN_BF16) {
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)p)[i] = kern_f32_to_bf16(2 * th_uniform(&rng));
    } else {
        for (size_t i = 0; i < n; i++)
            ((float *)p)[i] = 2 * th_uniform(&rng);
    }
    return p;
}

/* ---------------------------------------------------------------- attention */

struct attn_case {
    int n_q, n_kv, hd, kv_type;
    long T, pos0;
    int check_heads; /* query heads compared against the CPU (0: all); the first kv head's */
};

/* Prompts of the real model's shape run on tensor cores with bf16 q, K, V and P
 * (kernels_cuda_seq.h): their outputs are within ~1e-3 relative, not fp32 rounding. */
static int tensor_cores(const struct kern_attn *a)
{
    return a->T >= 16 && a->n_q == 8 * a->n_kv && a->head_dim == 256 && a->kv_type != KERN_F32;
}

/* out[t][h] *= sigmoid(gate) as engine/forward.c does. */
static void apply_gate(float *out, const float *q, long T, int n_q, int hd, long q_tok)
{
    for (long t = 0; t < T; t++)
        for (int h = 0; h < n_q; h++)
            for (int i = 0; i < hd; i++)
                out[(t * n_q + h) * hd + i] *= kern_sigmoid1(q[t * q_tok + h * 2L * hd + hd + i]);
}

static void attn_run(const struct attn_case *c)
{
    int n_q = c->n_q, n_kv = c->n_kv, hd = c->hd, G = n_q / n_kv;
    long T = c->T, np = c->pos0 + T, q_tok = 2L * n_q * hd;
    size_t kvn = (size_t)np * n_kv * hd, es = esize(c->kv_type), no = (size_t)T * n_q * hd;
    float ks = c->kv_type == KERN_FP8 ? 0.25f : 1.0f, vs = c->kv_type == KERN_FP8 ? 0.5f : 1.0f;
    char what[128];
    snprintf(what, sizeof what, "attention %d/%d heads of %d, %s, T %ld at %ld", n_q, n_kv, hd,
             kern_dtype_name(c->kv_type), T, c->pos0);
    float *q = gh_rnd(&rng, (size_t)T * q_tok, -1, 1), *out = malloc(no * 4 + 16);
    void *k = rnd_kv(c->kv_type, kvn), *v = rnd_kv(c->kv_type, kvn);
    REQUIRE(q && out && k && v);
    float *dq = gh_dev(q, (size_t)T * q_tok * 4), *dout = gh_dev(NULL, no * 4);
    void *dk = gh_dev(k, kvn * es), *dv = gh_dev(v, kvn * es);
    REQUIRE(dq && dout && dk && dv);
    struct kern_attn a = { .n_q = n_q,
                           .n_kv = n_kv,
                           .head_dim = hd,
                           .T = T,
                           .pos0 = c->pos0,
                           .q = dq,
                           .q_tok = q_tok,
                           .q_head = 2L * hd,
                           .kv_type = c->kv_type,
                           .k = dk,
                           .v = dv,
                           .k_scale = ks,
                           .v_scale = vs,
                           .scale = 1.0f / sqrtf((float)hd),
                           .out = dout };
    size_t wb = kcs_attention_work_bytes(&a);
    void *work = wb ? gh_dev(NULL, wb) : NULL;
    REQUIRE(!wb || work);
    if (wb) {
        CHECK(kcs_attention(&a, dq + hd, q_tok, 2L * hd, work, wb - 4, kcu_stream()) == ERR_INVAL);
    }
    CHECK(kcs_attention(&a, dq + hd, q_tok, 2L * hd, work, wb, kcu_stream()) == 0);
    CHECK(kcu_sync() == 0);
    float *got = gh_back(dout, no * 4);
    REQUIRE(got);
    /* the CPU reference, on the first kv head only when asked (repacked to one kv head) */
    int nh = c->check_heads ? c->check_heads : n_q;
    struct kern_attn r = a;
    r.q = q;
    r.k = k;
    r.v = v;
    r.out = out;
    void *k1 = NULL, *v1 = NULL;
    float *got1 = got;
    if (c->check_heads) {
        REQUIRE(nh <= G);
        k1 = malloc((size_t)np * hd * es + 16);
        v1 = malloc((size_t)np * hd * es + 16);
        got1 = malloc((size_t)T * nh * hd * 4 + 16);
        REQUIRE(k1 && v1 && got1);
        for (long p = 0; p < np; p++) {
            memcpy((char *)k1 + p * hd * es, (char *)k + p * n_kv * hd * es, hd * es);
            memcpy((char *)v1 + p * hd * es, (char *)v + p * n_kv * hd * es, hd * es);
        }
        for (long t = 0; t < T; t++)
            memcpy(got1 + t * nh * hd, got + t * n_q * hd, (size_t)nh * hd * 4);
        r.n_q = nh;
        r.n_kv = 1;
        r.k = k1;
        r.v = v1;
    }
    CHECK(kern_attention(cpu, &r) == 0);
    apply_gate(out, q, T, nh, hd, q_tok);
    if (tensor_cores(&a)) {
        CHECK(gh_close_to(got1, out, (size_t)T * nh * hd, 3e-2f, 1e-2f, what));
        CHECK(th_nmse(got1, out, (size_t)T * nh * hd) < 1e-4);
    } else {
        /* fp32 sums over up to 1M positions, on both sides: bounded by the V values' scale */
        float vmax = c->kv_type == KERN_FP8 ? 15 * vs : 2;
        CHECK(gh_close_to(got1, out, (size_t)T * nh * hd, 4e-5f * vmax, 1e-4f, what));
        CHECK(th_nmse(got1, out, (size_t)T * nh * hd) < 1e-6);
    }
    if (got1 != got)
        free(got1);
    free(k1), free(v1), free(q), free(out), free(k), free(v), free(got);
    gh_dfree(dq), gh_dfree(dout), gh_dfree(dk), gh_dfree(dv), gh_dfree(work);
}

/* kcs_attention_dpos (the decode step of a CUDA graph): the position read from the device and
 * the split planned for a longer bound give what kcs_attention gives at that position (fp32
 * sums in another order), for positions below, at and far below the bound. */
static void dpos_case(int kv_type, long pos, long bound)
{
    int n_q = 16, n_kv = 2, hd = 256;
    long np = pos + 1, q_tok = 2L * n_q * hd;
    size_t kvn = (size_t)np * n_kv * hd, es = esize(kv_type), no = (size_t)n_q * hd;
    char what[128];
    snprintf(what, sizeof what, "attention dpos %s at %ld, bound %ld", kern_dtype_name(kv_type),
             pos, bound);
    float *q = gh_rnd(&rng, (size_t)q_tok, -1, 1);
    void *k = rnd_kv(kv_type, kvn), *v = rnd_kv(kv_type, kvn);
    REQUIRE(q && k && v);
    float *dq = gh_dev(q, (size_t)q_tok * 4), *d1 = gh_dev(NULL, no * 4),
          *d2 = gh_dev(NULL, no * 4);
    void *dk = gh_dev(k, kvn * es), *dv = gh_dev(v, kvn * es);
    long *dpos = gh_dev(&pos, sizeof pos);
    REQUIRE(dq && d1 && d2 && dk && dv && dpos);
    struct kern_attn a = { .n_q = n_q,
                           .n_kv = n_kv,
                           .head_dim = hd,
                           .T = 1,
                           .pos0 = pos,
                           .q = dq,
                           .q_tok = q_tok,
                           .q_head = 2L * hd,
                           .kv_type = kv_type,
                           .k = dk,
                           .v = dv,
                           .k_scale = kv_type == KERN_FP8 ? 0.25f : 1.0f,
                           .v_scale = kv_type == KERN_FP8 ? 0.5f : 1.0f,
                           .scale = 1.0f / sqrtf((float)hd),
                           .out = d1 };
    struct kern_attn b = a;
    b.pos0 = bound - 1;
    b.out = d2;
    size_t wa = kcs_attention_work_bytes(&a), wb = kcs_attention_work_bytes(&b);
    void *work = gh_dev(NULL, (wa > wb ? wa : wb) + 4);
    REQUIRE(work);
    CHECK(kcs_attention(&a, dq + hd, q_tok, 2L * hd, work, wa + 4, kcu_stream()) == 0);
    CHECK(kcs_attention_dpos(&b, dpos, dq + hd, q_tok, 2L * hd, work, wb + 4, kcu_stream()) == 0);
    CHECK(kcs_attention_dpos(&a, NULL, NULL, 0, 0, work, wa, kcu_stream()) == ERR_INVAL);
    CHECK(kcu_sync() == 0);
    float *g1 = gh_back(d1, no * 4), *g2 = gh_back(d2, no * 4);
    REQUIRE(g1 && g2);
    float vmax = kv_type == KERN_FP8 ? 15 * 0.5f : 2;
    CHECK(gh_close_to(g2, g1, no, 4e-5f * vmax, 1e-4f, what));
    free(g1), free(g2), free(q), free(k), free(v);
    gh_dfree(dq), gh_dfree(d1), gh_dfree(d2), gh_dfree(dk), gh_dfree(dv), gh_dfree(dpos),
        gh_dfree(work);
}

static void t_attn_dpos(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    dpos_case(KERN_FP8, 0, 1024);
    dpos_case(KERN_FP8, 700, 1024);
    dpos_case(KERN_BF16, 1023, 1024);
    dpos_case(KERN_F32, 70, 65536);
    dpos_case(KERN_FP8, 40000, 65536);
}

static void t_attn_lengths(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    static const long ctx[] = { 1, 63, 64, 65, 4096, 131072 };
    for (size_t i = 0; i < sizeof ctx / sizeof *ctx; i++) {
        struct attn_case c = { 16, 2, 256, KERN_FP8, 1, ctx[i] - 1, 0 };
        attn_run(&c);
        if (ctx[i] <= 4096) {
            c.kv_type = KERN_BF16;
            attn_run(&c);
            c.kv_type = KERN_F32;
            attn_run(&c);
        }
    }
}

static void t_attn_1m(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    struct attn_case c = { 16, 2, 256, KERN_FP8, 1, 1000002, 8 };
    attn_run(&c);
}

static void t_attn_tokens(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    struct attn_case cs[] = {
        { 16, 2, 256, KERN_FP8, 3, 5000, 0 }, /* split, several tokens */
        { 16, 2, 256, KERN_BF16, 70, 100, 0 },
        { 16, 2, 256, KERN_FP8, 300, 0, 0 },    /* a prompt with no prefix */
        { 16, 2, 256, KERN_FP8, 40, 20000, 0 }, /* a prompt chunk deep in the context */
        { 6, 2, 64, KERN_F32, 3, 10, 0 },       /* odd: 3 heads per kv head */
        { 4, 4, 32, KERN_BF16, 2, 700, 0 },
        { 8, 1, 128, KERN_FP8, 1, 999, 0 },
        { 7, 7, 256, KERN_F32, 5, 0, 0 },
    };
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++)
        attn_run(&cs[i]);
}

static void t_attn_bad(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    struct kern_attn a = { .n_q = 16,
                           .n_kv = 2,
                           .head_dim = 100,
                           .T = 1,
                           .kv_type = KERN_FP8,
                           .k_scale = 1,
                           .v_scale = 1 };
    CHECK(kcs_attention(&a, NULL, 0, 0, NULL, 0, NULL) == ERR_INVAL);
    a.head_dim = 256;
    a.n_kv = 1;
    CHECK(kcs_attention(&a, NULL, 0, 0, NULL, 0, NULL) == ERR_INVAL); /* 16 heads per kv head */
    a.n_kv = 2;
    a.kv_type = KERN_I4;
    CHECK(kcs_attention(&a, NULL, 0, 0, NULL, 0, NULL) == ERR_INVAL);
    a.kv_type = KERN_FP8;
    a.pos0 = 100000;
    CHECK(kcs_attention_work_bytes(&a) > 0);
    CHECK(kcs_attention(&a, NULL, 0, 0, NULL, 0, NULL) == ERR_INVAL); /* no scratch */
}

/* ---------------------------------------------------------------- conversions, bit for bit */

/* a and b are the same number (the attention sum turns -0 into +0), or both NaN */
static int same_float(float a, float b) { return a == b || (isnan(a) && isnan(b)); }

/* Values at every FP8 (E4M3FN) and BF16 rounding boundary: each FP8 value, the midpoints between
 * neighbours (ties to even) and the floats just beside them, the subnormal range, saturation
 * (448 .. 480 and beyond, infinities), zeros and NaN; then random bit patterns. */
static size_t boundary_values(float *v, size_t cap)
{
    size_t n = 0;
    for (int c = 0; c < 0x7f && n + 6 <= cap; c++) {
        float a = kern_fp8_to_f32((uint8_t)c), b = kern_fp8_to_f32((uint8_t)(c + 1));
        float mid = c + 1 < 0x7f ? a + (b - a) / 2 : 464.0f;
        v[n++] = a;
        v[n++] = mid;
        v[n++] = nextafterf(mid, 0);
        v[n++] = nextafterf(mid, INFINITY);
        v[n++] = -mid;
        v[n++] = -a;
    }
    static const float special[] = { 0.0f,       -0.0f,     448.0f,    449.0f,        463.99f,
                                     464.0f,     465.0f,    480.0f,    1e6f,          INFINITY,
                                     -INFINITY,  NAN,       1e-30f,    0x1p-10f,      0x1p-9f,
                                     0x1.8p-10f, 0x1.4p-9f, 0x1.cp-7f, 1.0f + 0x1p-8f };
    for (size_t i = 0; i < sizeof special / sizeof *special && n < cap; i++)
        v[n++] = special[i];
    while (n < cap) {
        uint32_t u = (uint32_t)th_next(&rng);
        memcpy(&v[n++], &u, 4);
    }
    return n;
}

/*
 * The device's conversions against the CPU's, exactly (kernels/cuda/attn.cu has its own copies):
 * kcs_attn_prep writes V unscaled (v_scale 1: x * 1 is exact) and un-normed, so each cache byte
 * must be what kern_convert writes; then kcs_attention over a one-position context with the
 * cache row set to every code returns each code decoded (the softmax weight is exactly 1).
 */
static void convert_case(int kv_type)
{
    const int hd = 256;
    const long T = 16;
    size_t n = (size_t)T * hd, es = esize(kv_type);
    float *v = malloc(n * 4), *k = calloc(n, 4), *qn = calloc(hd, 4), *inv = calloc(1, 4);
    void *want = malloc(n * es), *got = NULL;
    REQUIRE(v && k && qn && inv && want);
    boundary_values(v, n);
    REQUIRE(kern_convert(want, kv_type, v, KERN_F32, n, 1.0f) == 0);
    float *dq = gh_dev(k, n * 4), *dk = gh_dev(k, n * 4), *dv = gh_dev(v, n * 4);
    float *dqn = gh_dev(qn, hd * 4), *dinv = gh_dev(inv, 4);
    void *dkc = gh_dev(NULL, n * es), *dvc = gh_dev(NULL, n * es);
    REQUIRE(dq && dk && dv && dqn && dinv && dkc && dvc);
    struct kcs_attn_prep p = { .n_q = 1,
                               .n_kv = 1,
                               .head_dim = hd,
                               .rot_dim = 0,
                               .T = T,
                               .pos0 = 0,
                               .q = dq,
                               .q_tok = hd,
                               .q_head = hd,
                               .k = dk,
                               .v = dv,
                               .kv_tok = hd,
                               .q_norm = dqn,
                               .k_norm = dqn,
                               .eps = 1e-6f,
                               .rope_inv = dinv,
                               .mscale = 1.0f,
                               .kv_type = kv_type,
                               .k_cache = dkc,
                               .v_cache = dvc,
                               .cap = T,
                               .k_scale = 1.0f,
                               .v_scale = 1.0f };
    CHECK(kcs_attn_prep(&p, kcu_stream()) == 0);
    CHECK(kcu_sync() == 0);
    got = gh_back(dvc, n * es);
    REQUIRE(got);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp((char *)got + i * es, (char *)want + i * es, es)) {
            if (!bad++)
                first = i;
        }
    if (bad) {
        uint32_t u, g = 0, w = 0;
        memcpy(&u, &v[first], 4);
        memcpy(&g, (char *)got + first * es, es);
        memcpy(&w, (char *)want + first * es, es);
        printf("    first differing input %.9g = 0x%08x: got 0x%x, want 0x%x\n", v[first], u, g, w);
    }
    CHECKF(bad == 0, "%s: %zu of %zu conversions differ", kern_dtype_name(kv_type), bad, n);
    /* decode: cache row 0 holds every code (FP8: 0..255; BF16: 256 spread patterns) */
    uint8_t row[256 * 2];
    for (int i = 0; i < hd; i++) {
        if (kv_type == KERN_FP8) {
            row[i] = (uint8_t)i;
        } else {
            uint16_t h = (uint16_t)(i * 257 ^ (i << 7)); /* every exponent, both signs */
            memcpy(row + 2 * i, &h, 2);
        }
    }
    CHECK(kcu_upload(dvc, row, hd * es) == 0);
    float *dout = gh_dev(NULL, hd * 4);
    REQUIRE(dout);
    struct kern_attn a = { .n_q = 1,
                           .n_kv = 1,
                           .head_dim = hd,
                           .T = 1,
                           .pos0 = 0,
                           .q = dq,
                           .q_tok = hd,
                           .q_head = hd,
                           .kv_type = kv_type,
                           .k = dkc,
                           .v = dvc,
                           .k_scale = 1.0f,
                           .v_scale = 1.0f,
                           .scale = 1.0f,
                           .out = dout };
    CHECK(kcs_attention_work_bytes(&a) == 0);
    CHECK(kcs_attention(&a, NULL, 0, 0, NULL, 0, kcu_stream()) == 0);
    CHECK(kcu_sync() == 0);
    float *dec = gh_back(dout, hd * 4);
    REQUIRE(dec);
    int dbad = 0;
    for (int i = 0; i < hd; i++) {
        float w;
        if (kv_type == KERN_FP8) {
            w = kern_fp8_to_f32(row[i]);
        } else {
            uint16_t h;
            memcpy(&h, row + 2 * i, 2);
            w = kern_bf16_to_f32(h);
        }
        if (!same_float(dec[i], w) && dbad++ < 3)
            printf("    %s decode of code %d: got %.9g want %.9g\n", kern_dtype_name(kv_type), i,
                   dec[i], w);
    }
    CHECKF(dbad == 0, "%s: %d of %d codes decode differently", kern_dtype_name(kv_type), dbad, hd);
    free(v), free(k), free(qn), free(inv), free(want), free(got), free(dec);
    gh_dfree(dq), gh_dfree(dk), gh_dfree(dv), gh_dfree(dqn), gh_dfree(dinv), gh_dfree(dkc),
        gh_dfree(dvc), gh_dfree(dout);
}

static void t_convert_exact(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    convert_case(KERN_FP8);
    convert_case(KERN_BF16);
}

/* ---------------------------------------------------------------- prep: norm + RoPE + KV write */

struct prep_io {
    int n_q, n_kv, hd, rot, kv_type;
    long T, pos0, cap, kv_tok;
    double yarn;
    float *q, *k, *v, *qn, *kn, *inv, ms;
};

/* What engine/forward.c does for tokens pos0 .. pos0+T-1: q normed + rotated in place, cache
 * rows written. */
static int prep_cpu(struct prep_io *p, void *kc, void *vc)
{
    int hd = p->hd;
    long q_tok = 2L * p->n_q * hd;
    float ksc = p->kv_type == KERN_FP8 ? 0.05f : 1.0f, vsc = p->kv_type == KERN_FP8 ? 0.02f : 1.0f;
    float *kr = malloc((size_t)hd * 4);
    if (!kr)
        return -1;
    kern_rmsnorm(p->q, 2L * hd, p->q, 2L * hd, p->qn, p->T * p->n_q, hd, 1e-6f);
    for (long t = 0; t < p->T; t++) {
        long pos = p->pos0 + t;
        kern_rope(p->q + t * q_tok, 2L * hd, p->n_q, p->rot, p->inv, p->ms, pos);
        for (int g = 0; g < p->n_kv; g++) {
            const float *k = p->k + t * p->kv_tok + (long)g * hd;
            kern_rmsnorm(kr, hd, k, hd, p->kn, 1, hd, 1e-6f);
            kern_rope(kr, hd, 1, p->rot, p->inv, p->ms, pos);
            size_t off = ((size_t)pos * p->n_kv + g) * hd * esize(p->kv_type);
            if (kern_convert((char *)kc + off, p->kv_type, kr, KERN_F32, hd, ksc) < 0 ||
                kern_convert((char *)vc + off, p->kv_type, p->v + t * p->kv_tok + (long)g * hd,
                             KERN_F32, hd, vsc) < 0) {
                free(kr);
                return -1;
            }
        }
    }
    free(kr);
    return 0;
}

/* Two caches agree: bytes equal, or (a last-bit difference in the fp32 input) neighbouring
 * codes of the same sign for at most 1% of the elements. */
static int kv_agree(const void *got, const void *want, size_t n, int type, const char *what)
{
    size_t diff = 0, far = 0;
    for (size_t i = 0; i < n; i++) {
        long a, b;
        if (type == KERN_F32) {
            float x = ((const float *)got)[i], y = ((const float *)want)[i];
            if (!(fabsf(x - y) <= 1e-5f + 1e-5f * fabsf(y)))
                far++;
            continue;
        }
        if (type == KERN_BF16)
            a = ((const uint16_t *)got)[i], b = ((const uint16_t *)want)[i];
        else
            a = ((const uint8_t *)got)[i], b = ((const uint8_t *)want)[i];
        if (a != b) {
            diff++;
            if (labs(a - b) != 1)
                far++;
        }
    }
    if (far || diff * 100 > n)
        printf("    %s: %zu of %zu elements differ, %zu by more than one code\n", what, diff, n,
               far);
    return far == 0 && diff * 100 <= n;
}

static void prep_case(int kv_type, long T, long pos0, double yarn)
{
    struct prep_io p = { .n_q = 16, .n_kv = 2, .hd = 256, .rot = 64, .kv_type = kv_type };
    p.T = T;
    p.pos0 = pos0;
    p.cap = pos0 + T + 1;
    p.kv_tok = 2L * 256 + 3;
    p.yarn = yarn;
    int hd = p.hd;
    long q_tok = 2L * p.n_q * hd;
    size_t nq = (size_t)T * q_tok, nkv = (size_t)T * p.kv_tok;
    size_t cache = (size_t)p.cap * p.n_kv * hd * esize(kv_type);
    char what[128];
    snprintf(what, sizeof what, "prep %s T %ld at %ld%s", kern_dtype_name(kv_type), T, pos0,
             yarn > 1 ? " yarn" : "");
    p.q = gh_rnd(&rng, nq, -3, 3);
    p.k = gh_rnd(&rng, nkv, -3, 3);
    p.v = gh_rnd(&rng, nkv, -3, 3);
    p.qn = gh_rnd(&rng, hd, -0.5f, 0.5f);
    p.kn = gh_rnd(&rng, hd, -0.5f, 0.5f);
    p.inv = malloc(32 * 4);
    void *kc = malloc(cache), *vc = malloc(cache);
    REQUIRE(p.q && p.k && p.v && p.qn && p.kn && p.inv && kc && vc);
    REQUIRE(kern_rope_freqs(p.inv, &p.ms, p.rot, 1e7, yarn, 262144) == 0);
    memset(kc, 0x5a, cache);
    memset(vc, 0x5a, cache);
    float *dq = gh_dev(p.q, nq * 4), *dk = gh_dev(p.k, nkv * 4), *dv = gh_dev(p.v, nkv * 4);
    float *dqn = gh_dev(p.qn, hd * 4), *dkn = gh_dev(p.kn, hd * 4);
    float *dinv = gh_dev(p.inv, 32 * 4);
    void *dkc = gh_dev(kc, cache), *dvc = gh_dev(vc, cache);
    /* the same launch with the position read from the device (a CUDA graph's decode step) */
    float *dq2 = gh_dev(p.q, nq * 4);
    void *dkc2 = gh_dev(kc, cache), *dvc2 = gh_dev(vc, cache);
    long *dpos = gh_dev(&pos0, sizeof pos0);
    REQUIRE(dq && dk && dv && dqn && dkn && dinv && dkc && dvc && dq2 && dkc2 && dvc2 && dpos);
    struct kcs_attn_prep g = { .n_q = p.n_q,
                               .n_kv = p.n_kv,
                               .head_dim = hd,
                               .rot_dim = p.rot,
                               .T = T,
                               .pos0 = pos0,
                               .q = dq,
                               .q_tok = q_tok,
                               .q_head = 2L * hd,
                               .k = dk,
                               .v = dv,
                               .kv_tok = p.kv_tok,
                               .q_norm = dqn,
                               .k_norm = dkn,
                               .eps = 1e-6f,
                               .rope_inv = dinv,
                               .mscale = p.ms,
                               .kv_type = kv_type,
                               .k_cache = dkc,
                               .v_cache = dvc,
                               .cap = p.cap,
                               .k_scale = kv_type == KERN_FP8 ? 0.05f : 1.0f,
                               .v_scale = kv_type == KERN_FP8 ? 0.02f : 1.0f };
    CHECK(kcs_attn_prep(&g, kcu_stream()) == 0);
    REQUIRE(prep_cpu(&p, kc, vc) == 0);
    CHECK(kcu_sync() == 0);
    float *gq = gh_back(dq, nq * 4);
    void *gk = gh_back(dkc, cache), *gv = gh_back(dvc, cache);
    REQUIRE(gq && gk && gv);
    /* the gate halves are untouched, the query halves normed and rotated */
    CHECK(gh_close_to(gq, p.q, nq, 1e-5f, 1e-5f, what));
    size_t row = (size_t)p.n_kv * hd * esize(kv_type);
    CHECK(kv_agree((char *)gk + pos0 * row, (char *)kc + pos0 * row, (size_t)T * p.n_kv * hd,
                   kv_type, "K rows"));
    CHECK(kv_agree((char *)gv + pos0 * row, (char *)vc + pos0 * row, (size_t)T * p.n_kv * hd,
                   kv_type, "V rows"));
    /* rows outside pos0 .. pos0+T-1 are not written */
    CHECK(memcmp(gk, kc, pos0 * row) == 0 && memcmp(gv, vc, pos0 * row) == 0);
    CHECK(memcmp((char *)gk + (pos0 + T) * row, (char *)kc + (pos0 + T) * row, row) == 0);
    struct kcs_attn_prep g2 = g;
    g2.q = dq2;
    g2.k_cache = dkc2;
    g2.v_cache = dvc2;
    g2.pos0 = 0; /* only the host's bound check reads it now */
    g2.dpos = dpos;
    CHECK(kcs_attn_prep(&g2, kcu_stream()) == 0);
    CHECK(kcu_sync() == 0);
    float *gq2 = gh_back(dq2, nq * 4);
    void *gk2 = gh_back(dkc2, cache), *gv2 = gh_back(dvc2, cache);
    REQUIRE(gq2 && gk2 && gv2);
    CHECKF(memcmp(gq2, gq, nq * 4) == 0 && memcmp(gk2, gk, cache) == 0 &&
               memcmp(gv2, gv, cache) == 0,
           "%s: the device-position launch differs", what);
    free(gq2), free(gk2), free(gv2);
    gh_dfree(dq2), gh_dfree(dkc2), gh_dfree(dvc2), gh_dfree(dpos);
    g.pos0 = p.cap - T + 1;
    CHECK(kcs_attn_prep(&g, NULL) == ERR_INVAL); /* beyond the cache */
    free(gq), free(gk), free(gv), free(kc), free(vc);
    free(p.q), free(p.k), free(p.v), free(p.qn), free(p.kn), free(p.inv);
    gh_dfree(dq), gh_dfree(dk), gh_dfree(dv), gh_dfree(dqn), gh_dfree(dkn), gh_dfree(dinv),
        gh_dfree(dkc), gh_dfree(dvc);
}

static void t_prep(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    prep_case(KERN_F32, 3, 0, 1.0);
    prep_case(KERN_BF16, 5, 100, 1.0);
    prep_case(KERN_FP8, 7, 4000, 1.0);
    prep_case(KERN_FP8, 2, 300000, 4.0); /* YaRN, large angles */
    prep_case(KERN_FP8, 1, 1048575, 4.0);
}

/* A prompt with prep + attention in one piece, then in pieces (100, 1, the rest): the outputs
 * agree, and both agree with the CPU. */
static void pieces_case(int kv_type)
{
    int n_q = 16, n_kv = 2, hd = 256;
    long P = 237, q_tok = 2L * n_q * hd, kv_tok = 2L * n_kv * hd;
    size_t cache = (size_t)P * n_kv * hd * esize(kv_type), no = (size_t)P * n_q * hd;
    float *q = gh_rnd(&rng, (size_t)P * q_tok, -3, 3),
          *kv = gh_rnd(&rng, (size_t)P * kv_tok, -3, 3);
    float *qn = gh_rnd(&rng, hd, -0.5f, 0.5f), *kn = gh_rnd(&rng, hd, -0.5f, 0.5f),
          *inv = malloc(32 * 4), ms;
    REQUIRE(q && kv && qn && kn && inv);
    REQUIRE(kern_rope_freqs(inv, &ms, 64, 1e7, 1.0, 0) == 0);
    float *dq = gh_dev(NULL, (size_t)P * q_tok * 4), *dkv = gh_dev(kv, (size_t)P * kv_tok * 4);
    float *dqn = gh_dev(qn, hd * 4), *dkn = gh_dev(kn, hd * 4), *dinv = gh_dev(inv, 128);
    void *dkc = gh_dev(NULL, cache), *dvc = gh_dev(NULL, cache);
    float *dout = gh_dev(NULL, no * 4);
    REQUIRE(dq && dkv && dqn && dkn && dinv && dkc && dvc && dout);
    float ks = kv_type == KERN_FP8 ? 0.05f : 1.0f, vs = kv_type == KERN_FP8 ? 0.02f : 1.0f;
    float *res[2] = { NULL, NULL };
    for (int mode = 0; mode < 2; mode++) {
        static const long cut[2][4] = { { 0, 237, 237, 237 }, { 0, 100, 101, 237 } };
        CHECK(kcu_upload(dq, q, (size_t)P * q_tok * 4) == 0);
        CHECK(kcu_fill(dout, 0xff, no * 4) == 0);
        for (int piece = 0; piece < 3; piece++) {
            long t0 = cut[mode][piece], T = cut[mode][piece + 1] - t0;
            if (T == 0)
                continue;
            struct kcs_attn_prep p = { .n_q = n_q,
                                       .n_kv = n_kv,
                                       .head_dim = hd,
                                       .rot_dim = 64,
                                       .T = T,
                                       .pos0 = t0,
                                       .q = dq + t0 * q_tok,
                                       .q_tok = q_tok,
                                       .q_head = 2L * hd,
                                       .k = dkv + t0 * kv_tok,
                                       .v = dkv + t0 * kv_tok + n_kv * hd,
                                       .kv_tok = kv_tok,
                                       .q_norm = dqn,
                                       .k_norm = dkn,
                                       .eps = 1e-6f,
                                       .rope_inv = dinv,
                                       .mscale = ms,
                                       .kv_type = kv_type,
                                       .k_cache = dkc,
                                       .v_cache = dvc,
                                       .cap = P,
                                       .k_scale = ks,
                                       .v_scale = vs };
            CHECK(kcs_attn_prep(&p, kcu_stream()) == 0);
            struct kern_attn a = { .n_q = n_q,
                                   .n_kv = n_kv,
                                   .head_dim = hd,
                                   .T = T,
                                   .pos0 = t0,
                                   .q = dq + t0 * q_tok,
                                   .q_tok = q_tok,
                                   .q_head = 2L * hd,
                                   .kv_type = kv_type,
                                   .k = dkc,
                                   .v = dvc,
                                   .k_scale = ks,
                                   .v_scale = vs,
                                   .scale = 1.0f / 16,
                                   .out = dout + t0 * n_q * hd };
            size_t wb = kcs_attention_work_bytes(&a);
            void *work = wb ? gh_dev(NULL, wb) : NULL;
            CHECK(!wb || work);
            CHECK(kcs_attention(&a, dq + t0 * q_tok + hd, q_tok, 2L * hd, work, wb, kcu_stream()) ==
                  0);
            CHECK(kcu_sync() == 0);
            gh_dfree(work);
        }
        res[mode] = gh_back(dout, no * 4);
        REQUIRE(res[mode]);
    }
    char what[96];
    snprintf(what, sizeof what, "%s prompt in pieces vs one piece", kern_dtype_name(kv_type));
    /* token 100 alone takes the fp32 split path, the others the same tensor-core blocks */
    CHECK(gh_close_to(res[1], res[0], no, 3e-2f, 1e-2f, what));
    CHECK(gh_close_to(res[1], res[0], (size_t)100 * n_q * hd, 0, 0, "the first 100 tokens"));
    /* the CPU: the engine's chain over the whole prompt */
    void *kc = malloc(cache), *vc = malloc(cache);
    float *out = malloc(no * 4), *kr = malloc(hd * 4);
    REQUIRE(kc && vc && out && kr);
    kern_rmsnorm(q, 2L * hd, q, 2L * hd, qn, P * n_q, hd, 1e-6f);
    for (long t = 0; t < P; t++) {
        kern_rope(q + t * q_tok, 2L * hd, n_q, 64, inv, ms, t);
        for (int g = 0; g < n_kv; g++) {
            kern_rmsnorm(kr, hd, kv + t * kv_tok + g * hd, hd, kn, 1, hd, 1e-6f);
            kern_rope(kr, hd, 1, 64, inv, ms, t);
            size_t off = ((size_t)t * n_kv + g) * hd * esize(kv_type);
            CHECK(kern_convert((char *)kc + off, kv_type, kr, KERN_F32, hd, ks) == 0);
            CHECK(kern_convert((char *)vc + off, kv_type, kv + t * kv_tok + (n_kv + g) * hd,
                               KERN_F32, hd, vs) == 0);
        }
    }
    struct kern_attn r = { .n_q = n_q,
                           .n_kv = n_kv,
                           .head_dim = hd,
                           .T = P,
                           .pos0 = 0,
                           .q = q,
                           .q_tok = q_tok,
                           .q_head = 2L * hd,
                           .kv_type = kv_type,
                           .k = kc,
                           .v = vc,
                           .k_scale = ks,
                           .v_scale = vs,
                           .scale = 1.0f / 16,
                           .out = out };
    CHECK(kern_attention(cpu, &r) == 0);
    apply_gate(out, q, P, n_q, hd, q_tok);
    /* tensor cores (bf16 q and p), and a K element may sit one code apart (see kv_agree) */
    snprintf(what, sizeof what, "%s prompt vs CPU", kern_dtype_name(kv_type));
    CHECK(gh_close_to(res[0], out, no, 3e-2f, 1e-2f, what));
    CHECK(th_nmse(res[0], out, no) < 1e-4);
    free(kc), free(vc), free(out), free(kr), free(res[0]), free(res[1]);
    free(q), free(kv), free(qn), free(kn), free(inv);
    gh_dfree(dq), gh_dfree(dkv), gh_dfree(dqn), gh_dfree(dkn), gh_dfree(dinv), gh_dfree(dkc),
        gh_dfree(dvc), gh_dfree(dout);
}

static void t_prefill_pieces(void)
{
    if (!have_gpu)
        SKIP("no GPU");
    pieces_case(KERN_BF16);
    pieces_case(KERN_FP8);
}

/* Built without CUDA, every entry point says so. */
static void t_no_cuda(void)
{
    if (kern_cuda_built())
        SKIP("built with CUDA");
    struct kcs_attn_prep p = { 0 };
    struct kern_attn a = { 0 };
    CHECK(kcs_attn_prep(&p, NULL) == ERR_UNSUPPORTED);
    CHECK(kcs_attention(&a, NULL, 0, 0, NULL, 0, NULL) == ERR_UNSUPPORTED);
    CHECK(kcs_attention_work_bytes(&a) == 0);
}

int main(void)
{
    if (gh_start(&rng, &cpu, &have_gpu) < 0)
        return 1;
    TEST_RUN(t_convert_exact);
    TEST_RUN(t_prep);
    TEST_RUN(t_attn_lengths);
    TEST_RUN(t_attn_tokens);
    TEST_RUN(t_attn_dpos);
    TEST_RUN(t_attn_bad);
    TEST_RUN(t_prefill_pieces);
    TEST_RUN(t_attn_1m);
    TEST_RUN(t_no_cuda);
    gh_finish(cpu, have_gpu);
    TEST_END();
}
