/*
 * test_budget.c - engine/budget.c against numbers computed by hand for the real
 * Qwen3.6-35B-A3B dims (model-spec.md §2) and the mixed recipe's 26,294,975,616 weight bytes
 * (`lode inspect --config-only tests/data/ckpt/qwen3.6-35b-a3b-config.json`).
 */
#include "common/err.h"
#include "engine/budget.h"
#include "kernels/kernels.h"
#include "testhelp.h"

#include <string.h>

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

int main(void)
{
    TEST_RUN(test_per_unit_sizes);
    TEST_RUN(test_262k_16_seqs_does_not_fit);
    TEST_RUN(test_1m_2_seqs_fits);
    TEST_RUN(test_rejects);
    TEST_RUN(test_check_open);
    TEST_END();
}
