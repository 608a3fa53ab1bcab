/*
 * test_budget.c - engine/budget.c against numbers computed by hand for the real
 * Qwen3.6-35B-A3B dims (model-spec.md §2) and the mixed recipe's 26,294,975,616 weight bytes
 * (`lode inspect --config-only tests/data/ckpt/qwen3.6-35b-a3b-config.json`).
 */
#include "common/err.h"
#include "engine/budget.h"
#include "engine/mkmodel.h"
#include "engine/model.h"
#include "engine/model_impl.h"
#include "kernels/cpu/kern_cpu.h"
#include "kernels/kernels.h"
#include "testhelp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GIB48 ((uint64_t)48 << 30) /* 51,539,607,552 */
#define WEIGHTS 26294975616ull

static struct mcfg real_cfg(void)
{
    struct mcfg c;
    memset(&c, 0, sizeof c);
    c.vocab = 248320;
    c.hidden = 2048;
    c.n_layers = 40;
    c.n_heads = 16;
    c.n_kv_heads = 2;
    c.head_dim = 256;
    c.attn_output_gate = 1;
    c.lin_k_heads = 16;
    c.lin_v_heads = 32;
    c.lin_k_dim = 128;
    c.lin_v_dim = 128;
    c.conv_kernel = 4;
    c.n_experts = 256;
    c.top_k = 8;
    c.moe_inter = 512;
    c.shared_inter = 512;
    c.max_pos = 262144;
    for (int l = 0; l < 40; l++)
        c.layer_type[l] = (l + 1) % 4 == 0 ? MCFG_FULL_ATTN : MCFG_LINEAR_ATTN;
    c.n_full = 10;
    return c;
}

static void test_per_unit_sizes(void)
{
    struct mcfg c = real_cfg();
    /* 10 layers x K,V x 2 heads x 256 */
    CHECK_INT(budget_kv_per_token(&c, KERN_FP8), 10240);
    CHECK_INT(budget_kv_per_token(&c, KERN_BF16), 20480);
    /* 30 layers x (conv 8192 x 3 + recurrent 32 x 128 x 128) x 4 bytes */
    CHECK_INT(budget_gdn_per_seq(&c), 65863680);
    /* per token: 3 x 2048 (x, h, y) + 8192 x 2 (big, aux) + 4096 x 2 (z, o) + 64 x 2 (ab, gb)
     * + 1 (sgate) + 248320 (logits) + 1 (tok) + 8 x 2 (idx, wt) + 2048 (ye) + 1 (zeros) floats,
     * plus one argmax float; each buffer rounded to 256 bytes */
    CHECK_INT(budget_act_bytes(&c, 256), 287984896);
    size_t n[BUDGET_N_ACTS];
    budget_act_floats(&c, 256, n);
    CHECK_INT(n[10], 248320 * 256);
    CHECK_INT(n[12], 1);
    /* (2 x 132 / 2 + T) rows x 16 heads x 258 floats */
    CHECK_INT(budget_attn_work_bytes(&c, 16), 2443776);
    CHECK_INT(budget_attn_work_bytes(&c, 2), 2212608);
}

static void test_262k_16_seqs_does_not_fit(void)
{
    struct mcfg c = real_cfg();
    struct budget_req r = { .ctx = 262144,
                            .seqs = 16,
                            .kv_type = KERN_FP8,
                            .snaps = 16,
                            .chunk = 256,
                            .weight_bytes = WEIGHTS,
                            .gpu_bytes = GIB48 };
    struct budget b;
    REQUIRE(budget_plan(&c, &r, &b) == 0);
    CHECK_INT(b.kv, 42949672960ull);    /* 10240 x 262144 x 16 */
    CHECK_INT(b.gdn, 1053818880ull);    /* 16 x 65863680 */
    CHECK_INT(b.snaps, 16861102080ull); /* 16 x 16 x 65863680 */
    CHECK_INT(b.total, 88255304576ull);
    CHECK_INT(b.fits, 0);
    CHECK_INT(b.over, 36715697024ull);
    CHECK_INT(b.snaps_fit, 0);
    /* (48 GiB - 45305631616 everything but KV) / (10240 x 16) */
    CHECK_INT(b.max_ctx, 38049);
    /* (48 GiB - 27390710656 fixed) / 3804037120 per sequence (KV + states + 16 snapshots) */
    CHECK_INT(b.max_seqs, 6);
}

static void test_1m_2_seqs_fits(void)
{
    struct mcfg c = real_cfg();
    struct budget_req r = { .ctx = 1048576,
                            .seqs = 2,
                            .kv_type = KERN_FP8,
                            .snaps = 16,
                            .chunk = 256,
                            .weight_bytes = WEIGHTS,
                            .gpu_bytes = GIB48 };
    struct budget b;
    REQUIRE(budget_plan(&c, &r, &b) == 0);
    CHECK_INT(b.kv, 21474836480ull);
    CHECK_INT(b.total, 51104681088ull);
    CHECK_INT(b.fits, 1);
    CHECK_INT(b.over, 0);
    CHECK_INT(b.snaps_fit, 16);
    /* bf16 KV doubles the cache: 21.5 GB more, no longer fits */
    r.kv_type = KERN_BF16;
    REQUIRE(budget_plan(&c, &r, &b) == 0);
    CHECK_INT(b.kv, 42949672960ull);
    CHECK_INT(b.fits, 0);
    /* a 50 GB card: all but the snapshots fits, 1002956672 bytes left = 7 pairs of snapshots */
    r.kv_type = KERN_FP8;
    r.gpu_bytes = 50000000000ull;
    REQUIRE(budget_plan(&c, &r, &b) == 0);
    CHECK_INT(b.required, 48997043328ull);
    CHECK_INT(b.fits, 0);
    CHECK_INT(b.snaps_fit, 7);
}

static void test_rejects(void)
{
    struct mcfg c = real_cfg();
    struct budget_req r = { .ctx = 0,
                            .seqs = 1,
                            .kv_type = KERN_FP8,
                            .snaps = 16,
                            .chunk = 256,
                            .weight_bytes = WEIGHTS,
                            .gpu_bytes = GIB48 };
    struct budget b;
    CHECK_INT(budget_plan(&c, &r, &b), ERR_INVAL);
    CHECK(strstr(err_msg(), "context") != NULL);
    r.ctx = 1L << 40;
    r.seqs = 65536;
    CHECK_INT(budget_plan(&c, &r, &b), ERR_INVAL);
    CHECK(strstr(err_msg(), "overflow") != NULL);
    r.ctx = 4096;
    r.seqs = 1;
    r.kv_type = KERN_I4;
    CHECK_INT(budget_plan(&c, &r, &b), ERR_INVAL);
}

static void test_check_open(void)
{
    CHECK_INT(budget_check_open(WEIGHTS, 287984896, 256, 80ull << 30, 80ull << 30), 0);
    CHECK_INT(budget_check_open(WEIGHTS, 287984896, 256, 24ull << 30, 24ull << 30), ERR_NOMEM);
    CHECK(strstr(err_msg(), "24.49 GiB of weights") != NULL);
}

/* ---- the CPU plan: numbers by hand for the real dims ---- */

static void test_cpu_per_unit_sizes(void)
{
    struct mcfg c = real_cfg();
    /* per token 3 x 2048 + 8192 x 2 + 4096 x 2 + 64 x 2 + 256 + 8 x 2 + 1 + 2048 + 1024 = 34193
     * floats, x 256 + 15 x 16 padding, + a 248320-float logits row */
    CHECK_INT(budget_cpu_act_bytes(&c, 256), (34193ull * 256 + 240 + 248320) * 4);
    CHECK_INT(budget_cpu_act_bytes(&c, 256), 36007872);
    /* the matmul block for k = 4096 (o_proj, out_proj): (16 x 4096 + 4096 + 256 + 1024 + 64 +
     * 16384) floats = 349440 bytes, 86 pages; the attention row over 32768 positions and the
     * DeltaNet chunk are smaller; at 1M the row is (1024 + 1048576 + 64) floats = 1026 pages */
    CHECK_INT(budget_cpu_scratch_bytes(&c, 32768), 86 * 4096);
    CHECK_INT(budget_cpu_scratch_bytes(&c, 1048576), 1026 * 4096);
    /* MoE of 256 tokens: (2048 + 256) x (2 x 2048 + 2 x 512) + 4096 + 64 floats -> 11525 pages;
     * split attention at 1M: 4 x 2 x 2049 items x (32 + 8 x 258 x 4) + 64 bytes -> 33169 */
    CHECK_INT(budget_cpu_work_bytes(&c, 256, 32768), 11525ull * 4096);
    CHECK_INT(budget_cpu_work_bytes(&c, 256, 1048576), 33169ull * 4096);
    /* 2048 + 40 x 4096 + 10 x 512 + 30 x (8192 x 4 + 64 + 128) floats + 40 x 256 expert views */
    CHECK_INT(budget_cpu_tables_bytes(&c), 1159808ull * 4 + 10240 * sizeof(struct kern_expert));
}

static void test_cpu_real_on_24_gib(void)
{
    struct mcfg c = real_cfg();
    struct budget_cpu_req r = { .ctx = 32768,
                                .seqs = 1,
                                .kv_type = KERN_FP8,
                                .snaps = 16,
                                .chunk = 256,
                                .threads = 2,
                                .weight_bytes = WEIGHTS,
                                .mem_bytes = 25325268992ull }; /* this VM's MemTotal */
    struct budget_cpu b;
    REQUIRE(budget_plan_cpu(&c, &r, &b) == 0);
    CHECK_INT(b.kv, 335544320);     /* 10240 x 32768 */
    CHECK_INT(b.snaps, 1053818880); /* 16 x 65863680 */
    CHECK_INT(b.ids, 131072);
    CHECK_INT(b.scratch, 2 * 352256);
    CHECK_INT(b.total, WEIGHTS + 335544320 + 65863680 + 1053818880 + 131072 + 36007872 + 704512 +
                           47206400 + budget_cpu_tables_bytes(&c) + BUDGET_CPU_RUNTIME);
    CHECK_INT(b.required, b.total - b.snaps);
    CHECK_INT(b.fits, 0); /* 24.49 GiB of weights on a 23.6 GiB machine */
    CHECK_INT(b.snaps_fit, 0);
    CHECK_INT(b.max_ctx, 0);
    CHECK_INT(b.max_seqs, 0);
    /* 48 GiB: 1M x 1 fits; 1M x 4 does not, the bisection's limits are exact */
    r.mem_bytes = GIB48;
    r.ctx = 1048576;
    REQUIRE(budget_plan_cpu(&c, &r, &b) == 0);
    CHECK_INT(b.kv, 10737418240ull);
    CHECK_INT(b.fits, 1);
    CHECK_INT(b.snaps_fit, 16);
    r.seqs = 4;
    REQUIRE(budget_plan_cpu(&c, &r, &b) == 0);
    CHECK_INT(b.fits, 0);
    CHECK_INT(b.max_seqs, 2);
    REQUIRE(b.max_ctx > 0);
    struct budget_cpu t;
    long ctx = r.ctx, mx = b.max_ctx;
    r.ctx = mx;
    REQUIRE(budget_plan_cpu(&c, &r, &t) == 0);
    CHECK(t.fits);
    r.ctx = mx + 1;
    REQUIRE(budget_plan_cpu(&c, &r, &t) == 0);
    CHECK(!t.fits);
    /* f32 KV is four times fp8 */
    r.ctx = ctx;
    r.seqs = 1;
    r.kv_type = KERN_F32;
    REQUIRE(budget_plan_cpu(&c, &r, &b) == 0);
    CHECK_INT(b.kv, 4 * 10737418240ull);
    r.threads = 0;
    CHECK_INT(budget_plan_cpu(&c, &r, &b), ERR_INVAL);
    CHECK(strstr(err_msg(), "threads") != NULL);
    r.threads = 2;
    r.ctx = 1L << 40;
    r.seqs = 65536;
    CHECK_INT(budget_plan_cpu(&c, &r, &b), ERR_INVAL);
    CHECK(strstr(err_msg(), "overflow") != NULL);
}

/* The plan's once-per-process buffers against what the engine and the kernels actually grow to
 * on a tiny checkpoint after a chunked prefill and decode steps: the activation buffer exactly,
 * the per-thread scratch exactly (both reserve the same page-rounded maximum), and the shared
 * work buffer within its upper bound. Catches drift when forward.c or kernels/cpu change. */
static void test_cpu_matches_engine(void)
{
    char dir[64], path[96];
    snprintf(dir, sizeof dir, "/tmp/lode-budget-%d", (int)getpid());
    struct mk_opts mo = { .out = dir, .preset = MK_TINY, .mixed = 1, .seed = 3, .shards = 1 };
    REQUIRE(mk_write(&mo) == 0);
    struct eng_opts o = eng_opts_default();
    o.threads = 2;
    o.chunk = 32;
    struct eng *e;
    REQUIRE(eng_open(&e, dir, &o) == 0);
    const struct mcfg *c = eng_cfg(e);
    long n = 100, V = eng_vocab(e);
    int32_t tok[101];
    for (long i = 0; i < n + 1; i++)
        tok[i] = (int32_t)((i * 37 + 11) % V);
    float *lg = malloc((size_t)V * sizeof *lg);
    struct seq_state *s = NULL;
    REQUIRE(lg && eng_state_new(e, &s, n + 1) == 0);
    REQUIRE(eng_forward(e, s, tok, n, lg, 0) == 0); /* chunks of 32, 32, 32, 4 */
    REQUIRE(eng_forward(e, s, tok + n, 1, lg, 0) == 0);
    CHECK_INT(e->work_floats * sizeof(float) + (size_t)c->vocab * sizeof(float),
              budget_cpu_act_bytes(c, 32));
    CHECK_INT(e->kc->scratch_bytes, budget_cpu_scratch_bytes(c, n + 1));
    CHECK(e->kc->work_bytes <= budget_cpu_work_bytes(c, 32, n + 1));
    CHECK(e->kc->work_bytes * 2 >= budget_cpu_work_bytes(c, 32, n + 1));
    CHECK_INT(seq_kv_bytes_per_token(&s->d, KERN_FP8), budget_kv_per_token(c, KERN_FP8));
    CHECK_INT(seq_gdn_bytes(&s->d), budget_gdn_per_seq(c));
    seq_free(s);
    free(lg);
    eng_close(e);
    static const char *const files[] = { "config.json", "generation_config.json",
                                         "model.safetensors" };
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

int main(void)
{
    TEST_RUN(test_per_unit_sizes);
    TEST_RUN(test_262k_16_seqs_does_not_fit);
    TEST_RUN(test_1m_2_seqs_fits);
    TEST_RUN(test_rejects);
    TEST_RUN(test_check_open);
    TEST_RUN(test_cpu_per_unit_sizes);
    TEST_RUN(test_cpu_real_on_24_gib);
    TEST_RUN(test_cpu_matches_engine);
    TEST_END();
}
