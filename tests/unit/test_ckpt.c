/* test_ckpt.c - checkpoint directories: mkmodel round trips, the bound model description,
 * determinism, the byte budget against the real model, and handcrafted defective checkpoints
 * (each refused with its own message).
 *
 *   test_ckpt                 the unit tests
 *   test_ckpt --oracle DIR    compare with tests/ref/ckpt_oracle.py output (tests/e2e/ckpt.sh)
 */
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "engine/ckpt.h"
#include "engine/mkmodel.h"
#include "testhelp.h"

#include <cJSON.h>
#include <dirent.h>
#include <sys/stat.h>

/* ---- scratch directories ---- */

static char g_root[64];

static void rm_dir(const char *d)
{
    DIR *dp = opendir(d);
    if (!dp)
        return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(dp)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", d, e->d_name);
            if (unlink(p) < 0)
                rm_dir(p);
        }
    closedir(dp);
    rmdir(d);
}

static const char *scratch(const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", g_root, name);
    rm_dir(p);
    return p;
}

static int mk(const char *dir, int mixed, int text, int shards)
{
    struct mk_opts o = { .out = dir,
                         .preset = MK_TINY,
                         .mixed = mixed,
                         .text_layout = text,
                         .seed = 7,
                         .shards = shards };
    return mk_write(&o);
}

#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"
#define ST "model.safetensors"

/* ---- file surgery ---- */

static int read_all(const char *path, struct buf *b)
{
    buf_reset(b);
    return fs_read_file(path, 1u << 30, b);
}

static int write_all(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) || w != n ? -1 : 0;
}

/* Replaces the first `old` in a text file; 0 when found. */
static int edit_text(const char *dir, const char *file, const char *old, const char *new_)
{
    char path[512];
    struct buf b = { 0 }, o = { 0 };
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int rc = -1;
    if (read_all(path, &b) == 0) {
        char *at = strstr(b.p, old);
        if (at) {
            buf_append(&o, b.p, (size_t)(at - b.p));
            buf_puts(&o, new_);
            buf_puts(&o, at + strlen(old));
            rc = write_all(path, o.p, o.len);
        }
    }
    buf_free(&b);
    buf_free(&o);
    return rc;
}

/* Rewrites a safetensors header (text replace of `old` by `new_`), keeping the data bytes. */
static int edit_header(const char *dir, const char *file, const char *old, const char *new_)
{
    char path[512];
    struct buf b = { 0 }, o = { 0 };
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int rc = -1;
    if (read_all(path, &b) == 0 && b.len >= 8) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | (uint8_t)b.p[i];
        char *h = strndup(b.p + 8, n);
        char *at = h ? strstr(h, old) : NULL;
        if (at) {
            struct buf nh = { 0 };
            buf_append(&nh, h, (size_t)(at - h));
            buf_puts(&nh, new_);
            buf_puts(&nh, at + strlen(old));
            uint8_t len8[8];
            for (int i = 0; i < 8; i++)
                len8[i] = (uint8_t)((uint64_t)nh.len >> (8 * i));
            buf_append(&o, len8, 8);
            buf_append(&o, nh.p, nh.len);
            buf_append(&o, b.p + 8 + n, b.len - 8 - n);
            rc = write_all(path, o.p, o.len);
            buf_free(&nh);
        }
        free(h);
    }
    buf_free(&b);
    buf_free(&o);
    return rc;
}

/* Overwrites `n` bytes of tensor `name`'s data at byte `off` inside it. */
static int poke(const char *dir, const char *file, const char *name, size_t off, const void *p,
                size_t n)
{
    char path[512];
    struct st_file f;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (st_open(&f, path) < 0)
        return -1;
    const struct st_tensor *t = st_find(&f, name);
    long pos = t ? (long)(8 + f.header_len + t->begin + off) : -1;
    st_close(&f);
    if (pos < 0)
        return -1;
    FILE *fp = fopen(path, "r+b");
    if (!fp)
        return -1;
    int rc = fseek(fp, pos, SEEK_SET) || fwrite(p, 1, n, fp) != n;
    return fclose(fp) || rc ? -1 : 0;
}

/* Appends a tensor (name, dtype, 1-D length n, raw bytes) to a safetensors file. */
static int append_tensor(const char *dir, const char *file, const char *name, const char *dtype,
                         int64_t n, const void *bytes, size_t nbytes)
{
    char path[512], ent[512];
    struct buf b = { 0 }, o = { 0 };
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int rc = -1;
    if (read_all(path, &b) == 0 && b.len >= 8) {
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--)
            hl = hl << 8 | (uint8_t)b.p[i];
        uint64_t data = b.len - 8 - hl;
        snprintf(ent, sizeof ent,
                 ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],\"data_offsets\":[%llu,%llu]}}", name,
                 dtype, (long long)n, (unsigned long long)data,
                 (unsigned long long)(data + nbytes));
        struct buf nh = { 0 };
        const char *h = b.p + 8;
        size_t end = hl;
        while (end > 0 && h[end - 1] != '}') /* drop the padding and the closing brace */
            end--;
        buf_append(&nh, h, end - 1);
        buf_puts(&nh, ent);
        uint8_t len8[8];
        for (int i = 0; i < 8; i++)
            len8[i] = (uint8_t)((uint64_t)nh.len >> (8 * i));
        buf_append(&o, len8, 8);
        buf_append(&o, nh.p, nh.len);
        buf_append(&o, b.p + 8 + hl, data);
        buf_append(&o, bytes, nbytes);
        rc = write_all(path, o.p, o.len);
        buf_free(&nh);
    }
    buf_free(&b);
    buf_free(&o);
    return rc;
}

static int truncate_by(const char *dir, const char *file, long by)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return stat(path, &st) || truncate(path, st.st_size - by) ? -1 : 0;
}

static int remove_file(const char *dir, const char *file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return unlink(path);
}

/* ---- positive tests ---- */

static void t_mixed_binding(void)
{
    const char *d = scratch("mixed");
    REQUIRE(mk(d, 1, 0, 3) == 0);
    struct ckpt c;
    int rc = ckpt_open(&c, d);
    REQUIRE(rc == 0 || (printf("    %s\n", err_msg()), 0));
    const struct mcfg *m = &c.cfg;
    CHECK(m->vl && !strcmp(m->prefix, "model.language_model.") && m->n_layers == 8 &&
          m->n_full == 2);
    CHECK(c.n_shards == 3 && c.q.present);
    CHECK(c.layers[3].type == MCFG_FULL_ATTN && c.layers[2].type == MCFG_LINEAR_ATTN);
    /* full-attention projections int8 channel in quantized layers, BF16 in the last layer */
    CHECK(c.layers[3].q_proj.bits == 8 && c.layers[3].q_proj.group == m->hidden);
    CHECK(c.layers[3].q_proj.out == 2 * m->n_heads * m->head_dim);
    CHECK(c.layers[7].q_proj.bits == 16 && c.layers[7].q_proj.dtype == ST_BF16);
    /* experts: layer 0 BF16 per expert, layer 2 int4 g32 with one int8 super-expert (3) */
    CHECK(!c.layers[0].experts_fused && c.layers[0].experts[0].bits == 16);
    int w4 = 0, w8 = 0;
    for (int e = 0; e < 8 * 3; e++) {
        const struct quant_linear *w = &c.layers[2].experts[e];
        if (w->bits == 4 && w->group == 32 && w->scale_dtype == ST_BF16)
            w4++;
        if (w->bits == 8 && e / 3 == 3)
            w8++;
    }
    CHECK_INT(w4, 21);
    CHECK_INT(w8, 3);
    CHECK(c.layers[2].experts[2].out == m->hidden && c.layers[2].experts[2].in == m->moe_inter);
    CHECK(c.layers[2].in_proj_qkv.bits == 16 && c.layers[2].A_log.dtype == ST_F32);
    CHECK(c.layers[2].router.bits == 16 && c.layers[2].sh_expert_gate.out == 1);
    CHECK(c.embed.dtype == ST_BF16 && c.lm_head.bits == 16 && c.lm_head.out == m->vocab);
    /* every dequantized weight is finite and within the code range times its scale */
    int bad = 0;
    float row[128];
    for (int64_t l = 0; l < m->n_layers; l++)
        for (int e = 0; e < 8 * 3; e++) {
            const struct quant_linear *w = &c.layers[l].experts[e];
            for (int64_t r = 0; r < w->out; r++) {
                quant_dequant_row(w, r, row);
                for (int64_t k = 0; k < w->in; k++)
                    bad += !isfinite(row[k]) || fabsf(row[k]) > 1.0f;
            }
        }
    CHECK_INT(bad, 0);
    ckpt_close(&c);
    ckpt_close(&c);
}

static void t_bf16_fused(void)
{
    const char *d = scratch("bf16");
    REQUIRE(mk(d, 0, 1, 1) == 0);
    struct ckpt c;
    REQUIRE(ckpt_open(&c, d) == 0);
    CHECK(!c.cfg.vl && !strcmp(c.cfg.prefix, "model.") && !c.q.present);
    const struct ckpt_layer *L = &c.layers[1];
    CHECK(L->experts_fused);
    const struct st_tensor *gu = ckpt_find(&c, "model.layers.1.mlp.experts.gate_up_proj");
    REQUIRE(gu);
    int64_t I = c.cfg.moe_inter, H = c.cfg.hidden;
    /* expert e: gate rows [0, I) of slab e, up rows [I, 2I) */
    CHECK(L->experts[3 * 3 + 0].data == gu->data + (size_t)(3 * 2 * I * H) * 2);
    CHECK(L->experts[3 * 3 + 1].data == gu->data + (size_t)(3 * 2 * I * H + I * H) * 2);
    CHECK(L->experts[3 * 3 + 2].out == H && L->experts[3 * 3 + 2].in == I);
    ckpt_close(&c);
}

/* The committed transformers-written checkpoints (per-expert BF16 .weight, VL with visual). */
static void t_golden(void)
{
    struct ckpt c;
    if (!fs_is_dir("tests/data/golden/vl"))
        SKIP("tests/data/golden missing");
    REQUIRE(ckpt_open(&c, "tests/data/golden/vl") == 0 || (printf("    %s\n", err_msg()), 0));
    CHECK(c.n_visual > 0 && c.cfg.vl && !c.layers[0].experts_fused);
    ckpt_close(&c);
    REQUIRE(ckpt_open(&c, "tests/data/golden/text") == 0 || (printf("    %s\n", err_msg()), 0));
    CHECK(!c.cfg.vl && c.n_visual == 0);
    ckpt_close(&c);
}

/* Known codes and scales written into a mixed checkpoint come back exactly. */
static void t_known_values(void)
{
    const char *d = scratch("known");
    REQUIRE(mk(d, 1, 1, 1) == 0);
    const char *mod = "model.layers.2.mlp.experts.0.down_proj"; /* int4 [64, 32], one group */
    int8_t q[2][32];
    int32_t words[2][4];
    uint16_t s[2] = { quant_f32_to_bf16(0.0625f), quant_f32_to_bf16(-3.0f) };
    for (int r = 0; r < 2; r++) {
        for (int k = 0; k < 32; k++)
            q[r][k] = (int8_t)((k * 5 + r * 3) % 16 - 8);
        quant_pack_row(q[r], 32, 4, words[r]);
    }
    char n[256];
    snprintf(n, sizeof n, "%s.weight_packed", mod);
    REQUIRE(poke(d, "model.safetensors", n, 0, words, sizeof words) == 0);
    snprintf(n, sizeof n, "%s.weight_scale", mod);
    REQUIRE(poke(d, "model.safetensors", n, 0, s, sizeof s) == 0);
    struct ckpt c;
    REQUIRE(ckpt_open(&c, d) == 0);
    const struct quant_linear *w = &c.layers[2].experts[2];
    CHECK(!strcmp(w->name, mod) && w->bits == 4 && w->in == 32);
    for (int r = 0; r < 2; r++) {
        float out[32];
        for (int k = 0; k < 32; k++)
            out[k] = NAN;
        quant_dequant_row(w, r, out);
        for (int k = 0; k < 32; k++)
            CHECKF(out[k] == (float)q[r][k] * quant_bf16_to_f32(s[r]), "row %d col %d", r, k);
    }
    ckpt_close(&c);
}

/* Optional FP8 KV scales bind when present (either spelling) and stay NULL otherwise. */
static void t_kv_scales(void)
{
    const char *d = scratch("kv");
    REQUIRE(mk(d, 1, 1, 1) == 0);
    float half = 0.5f;
    uint16_t two[2] = { quant_f32_to_bf16(2.0f), quant_f32_to_bf16(3.0f) };
    REQUIRE(append_tensor(d, ST, "model.layers.3.self_attn.k_scale", "F32", 1, &half, 4) == 0);
    REQUIRE(append_tensor(d, ST, "model.layers.3.self_attn.v_proj.output_scale", "BF16", 2, two,
                          4) == 0);
    struct ckpt c;
    REQUIRE(ckpt_open(&c, d) == 0 || (printf("    %s\n", err_msg()), 0));
    CHECK(c.layers[3].k_scale.data && quant_load_f(c.layers[3].k_scale.data, ST_F32, 0) == 0.5f);
    CHECK(c.layers[3].v_scale.data && c.layers[3].v_scale.shape[0] == 2);
    CHECK(!c.layers[7].k_scale.data);
    ckpt_close(&c);
}

static int same_file(const char *a, const char *b)
{
    struct buf x = { 0 }, y = { 0 };
    int same =
        read_all(a, &x) == 0 && read_all(b, &y) == 0 && x.len == y.len && !memcmp(x.p, y.p, x.len);
    buf_free(&x);
    buf_free(&y);
    return same;
}

static void t_deterministic(void)
{
    char a[256], b[256], fa[512], fb[512];
    snprintf(a, sizeof a, "%s", scratch("det_a"));
    snprintf(b, sizeof b, "%s", scratch("det_b"));
    REQUIRE(mk(a, 1, 0, 2) == 0 && mk(b, 1, 0, 2) == 0);
    static const char *const files[] = { "config.json", "generation_config.json",
                                         "model.safetensors.index.json",
                                         "model-00001-of-00002.safetensors",
                                         "model-00002-of-00002.safetensors" };
    for (int i = 0; i < 5; i++) {
        snprintf(fa, sizeof fa, "%s/%s", a, files[i]);
        snprintf(fb, sizeof fb, "%s/%s", b, files[i]);
        CHECKF(same_file(fa, fb), "%s differs", files[i]);
    }
    struct mk_opts o = { .out = b, .preset = MK_TINY, .mixed = 1, .seed = 8, .shards = 2 };
    REQUIRE(mk_write(&o) == 0);
    CHECK(!same_file(fa, fb));
}

/* config.json: the real configuration's derived sizes (model-spec.md §1.2), the interval form of
 * layer_types, YaRN, generation_config's eos list, and refusals. */
static void t_modelcfg(void)
{
    struct buf b = { 0 };
    struct mcfg m;
    REQUIRE(fs_read_file("tests/data/ckpt/qwen3.6-35b-a3b-config.json", 1 << 20, &b) == 0);
    REQUIRE(mcfg_parse(&m, b.p, b.len, "real") == 0 || (printf("    %s\n", err_msg()), 0));
    CHECK(m.vl && m.hidden == 2048 && m.n_layers == 40 && m.n_full == 10 && m.vocab == 248320);
    for (int l = 0; l < 40; l++)
        CHECKF(m.layer_type[l] == ((l + 1) % 4 ? MCFG_LINEAR_ATTN : MCFG_FULL_ATTN), "layer %d", l);
    CHECK(mcfg_q_out(&m) == 8192 && mcfg_kv_out(&m) == 512 && m.n_heads * m.head_dim == 4096);
    CHECK(mcfg_lin_key_dim(&m) == 2048 && mcfg_lin_val_dim(&m) == 4096 &&
          mcfg_conv_dim(&m) == 8192);
    CHECK(m.rotary_dim == 64 && m.rope_theta == 1e7 && m.rope_type == MCFG_ROPE_DEFAULT);
    CHECK(m.n_experts == 256 && m.top_k == 8 && m.moe_inter == 512 && m.shared_inter == 512);
    CHECK(m.bos == 248044 && m.n_eos == 1 && m.eos[0] == 248044 && m.mtp_layers == 1);
    const char *gen = "{\"eos_token_id\": [248046, 248044], \"temperature\": 0.6, \"top_k\": 20, "
                      "\"top_p\": 0.95, \"do_sample\": true}";
    REQUIRE(mcfg_parse_gen(&m, gen, strlen(gen), "gen") == 0);
    CHECK(m.have_gen && m.n_eos == 2 && m.eos[0] == 248046 && m.temperature == 0.6 &&
          m.gen_top_k == 20);
    /* YaRN through the older rope_scaling spelling, text-only form */
    const char *yarn =
        "{\"architectures\":[\"Qwen3_5MoeForCausalLM\"],\"vocab_size\":10,\"hidden_size\":64,"
        "\"num_hidden_layers\":2,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"head_dim\":"
        "8,"
        "\"linear_num_key_heads\":1,\"linear_num_value_heads\":2,\"linear_key_head_dim\":8,"
        "\"linear_value_head_dim\":8,\"linear_conv_kernel_dim\":4,\"num_experts\":4,"
        "\"num_experts_per_tok\":2,\"moe_intermediate_size\":32,\"shared_expert_intermediate_"
        "size\":32,"
        "\"rope_theta\":1000000,\"partial_rotary_factor\":0.5,"
        "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4.0,\"original_max_position_embeddings\":"
        "262144}}";
    REQUIRE(mcfg_parse(&m, yarn, strlen(yarn), "yarn") == 0 || (printf("    %s\n", err_msg()), 0));
    CHECK(!m.vl && !strcmp(m.prefix, "model.") && m.rope_type == MCFG_ROPE_YARN);
    CHECK(m.yarn_factor == 4.0 && m.yarn_orig_max_pos == 262144 && m.rope_theta == 1e6);
    CHECK(m.rotary_dim == 4 && m.n_full == 0 && m.layer_type[1] == MCFG_LINEAR_ATTN);
    static const struct {
        const char *from, *to, *want;
    } bad[] = {
        { "\"type\":\"yarn\"", "\"type\":\"longrope\"", "rope_type 'longrope' is not supported" },
        { "\"partial_rotary_factor\":0.5", "\"partial_rotary_factor\":0.3", "not an even integer" },
        { "\"num_experts_per_tok\":2", "\"num_experts_per_tok\":5", "exceeds num_experts" },
        { "\"head_dim\":8", "\"head_dim\":8.5", "'head_dim' must be an integer" },
        { "\"vocab_size\":10", "\"vocab_size\":-10", "'vocab_size' must be an integer in [1," },
        { "\"linear_num_key_heads\":1", "\"linear_num_key_heads\":3",
          "not a multiple of linear_num_key_heads" },
        { "\"factor\":4.0,", "", "yarn rope parameters need 'factor'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct buf t = { 0 };
        const char *at = strstr(yarn, bad[i].from);
        REQUIRE(at);
        buf_append(&t, yarn, (size_t)(at - yarn));
        buf_puts(&t, bad[i].to);
        buf_puts(&t, at + strlen(bad[i].from));
        int rc = mcfg_parse(&m, t.p, t.len, "cfg");
        CHECKF(rc < 0 && strstr(err_msg(), bad[i].want), "case %zu: '%s'", i, err_msg());
        buf_free(&t);
    }
    buf_free(&b);
}

/* inspect's arithmetic for the real configuration (performance.md §0/§2, model-spec §1.2). */
static void t_real_budget(void)
{
    struct mcfg m;
    mk_preset_cfg(&m, MK_FULL, 0);
    CHECK(mcfg_q_out(&m) == 8192 && mcfg_kv_out(&m) == 512 && mcfg_conv_dim(&m) == 8192);
    struct ckpt c;
    REQUIRE(mk_synth(&c, &m, 1) == 0);
    struct ckpt_stats s;
    ckpt_stats(&c, &s);
    CHECK_INT(s.kv_bytes_bf16, 20480); /* 10 layers x K,V x 2 heads x 256 x 2 bytes */
    CHECK_INT(s.kv_bytes_fp8, 10240);
    /* 30 layers x (32 x 128 x 128 x 4 fp32 + 8192 x 3 x 2 conv) */
    CHECK_INT(s.gdn_state_bytes, 30ull * (32 * 128 * 128 * 4 + 8192 * 3 * 2));
    /* lm_head 248320 x 2048 bf16 = 1017.1 MB; GDN projections 30 x 33.69 M x 2 (performance.md's
     * 33.72 M also counts conv1d, which inspect lists with the small tensors) */
    CHECK_INT(s.bytes[CK_LM_HEAD], 248320ull * 2048 * 2);
    CHECK_INT(s.bytes[CK_GDN_BF16], 30ull * 2 * ((8192 + 4096 + 64) * 2048 + 2048 * 4096));
    /* performance.md §2 puts the planned mix at 4,281 MB per token; mkmodel's recipe also keeps
     * the last layer's attention BF16 (+27 MB) and counts int8 channel scales */
    double mb = (double)s.per_token_bytes / 1e6;
    printf("    real config, mixed recipe: %.1f MB read per token, %.2f GB total\n", mb,
           (double)s.total_bytes / 1e9);
    CHECK(mb > 4281 * 0.99 && mb < 4281 * 1.02);
    /* the text weights of this recipe: about 26 GB (the published checkpoint is 28-30 GB) */
    CHECK(s.total_bytes > 15e9 && s.total_bytes < 30e9);
    ckpt_close(&c);
}

/* ---- defective checkpoints ---- */

enum { SINGLE, SHARDED };

struct defect {
    const char *name;
    int layout; /* SINGLE: text-layout mixed, one model.safetensors; SHARDED: 2 shards + index */
    int (*mutate)(const char *d);
    const char *want; /* substring of the one-line message */
};

static int m_truncated(const char *d) { return truncate_by(d, ST, 100); }
static int m_hdr_past_eof(const char *d)
{
    uint8_t big[8] = { 0, 0, 0, 1, 0, 0, 0, 0 }; /* 16 MiB */
    char p[512];
    snprintf(p, sizeof p, "%s/%s", d, ST);
    FILE *f = fopen(p, "r+b");
    if (!f)
        return -1;
    fwrite(big, 1, 8, f);
    return fclose(f);
}
static int m_hdr_cap(const char *d)
{
    uint8_t big[8] = { 0, 0, 0, 0x10, 0, 0, 0, 0 }; /* 256 MiB > 100 MB cap */
    char p[512];
    snprintf(p, sizeof p, "%s/%s", d, ST);
    FILE *f = fopen(p, "r+b");
    if (!f)
        return -1;
    fwrite(big, 1, 8, f);
    return fclose(f);
}
static int m_short_file(const char *d)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", d, ST);
    return truncate(p, 5);
}
/* Moves tensor `name`'s data_offsets by `delta` bytes (same span), rewriting the header. */
static int shift_offsets(const char *d, const char *file, const char *name, long delta)
{
    char path[512];
    struct buf b = { 0 }, o = { 0 };
    snprintf(path, sizeof path, "%s/%s", d, file);
    int rc = -1;
    if (read_all(path, &b) == 0 && b.len >= 8) {
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--)
            hl = hl << 8 | (uint8_t)b.p[i];
        cJSON *h = cJSON_ParseWithLength(b.p + 8, hl);
        cJSON *t = cJSON_GetObjectItem(h, name);
        cJSON *off = cJSON_GetObjectItem(t, "data_offsets");
        char *txt = NULL;
        if (off && cJSON_GetArraySize(off) == 2) {
            for (int k = 0; k < 2; k++) {
                cJSON *v = cJSON_GetArrayItem(off, k);
                cJSON_SetNumberValue(v, v->valuedouble + (double)delta);
            }
            txt = cJSON_PrintUnformatted(h);
        }
        if (txt) {
            size_t n = strlen(txt);
            uint8_t len8[8];
            for (int i = 0; i < 8; i++)
                len8[i] = (uint8_t)((uint64_t)n >> (8 * i));
            buf_append(&o, len8, 8);
            buf_append(&o, txt, n);
            buf_append(&o, b.p + 8 + hl, b.len - 8 - hl);
            rc = write_all(path, o.p, o.len);
        }
        free(txt);
        cJSON_Delete(h);
    }
    buf_free(&b);
    buf_free(&o);
    return rc;
}

/* model.norm.weight (BF16 [64]) moved 2 bytes down into the tensor stored before it */
static int m_overlap(const char *d) { return shift_offsets(d, ST, "model.norm.weight", -2); }
/* ... or 2 bytes up, leaving a hole */
static int m_hole(const char *d) { return shift_offsets(d, ST, "model.norm.weight", 2); }
static int m_dtype_size(const char *d)
{
    return edit_header(d, ST, "\"model.norm.weight\":{\"dtype\":\"BF16\"",
                       "\"model.norm.weight\":{\"dtype\":\"F32\"");
}
static int m_unknown_dtype(const char *d)
{
    return edit_header(d, ST, "\"model.norm.weight\":{\"dtype\":\"BF16\"",
                       "\"model.norm.weight\":{\"dtype\":\"Q4_K\"");
}
static int m_shape_overflow(const char *d)
{
    return edit_header(
        d, ST, "\"model.norm.weight\":{\"dtype\":\"BF16\",\"shape\":[64]",
        "\"model.norm.weight\":{\"dtype\":\"BF16\",\"shape\":[4294967296,4294967296,64]");
}
static int m_bad_header_json(const char *d)
{
    return edit_header(d, ST, "\"model.norm.weight\":{", "\"model.norm.weight\":{{");
}
static int m_dup_tensor(const char *d)
{
    return edit_header(d, ST, "\"model.norm.weight\"", "\"model.layers.0.input_layernorm.weight\"");
}
static int m_missing_shard(const char *d) { return remove_file(d, SHARD2); }
static int m_index_absent(const char *d)
{
    return edit_text(d, "model.safetensors.index.json", "\"weight_map\":\t{",
                     "\"weight_map\":{\"model.ghost.weight\": \"" SHARD1 "\",");
}
static int m_index_unlisted(const char *d)
{
    return edit_text(d, "model.safetensors.index.json", "\"model.norm.weight\":\t\"" SHARD2 "\",",
                     "");
}
static int m_index_json(const char *d)
{
    return edit_text(d, "model.safetensors.index.json", "{", "{{");
}
static int m_index_path(const char *d)
{
    return edit_text(d, "model.safetensors.index.json", "\"" SHARD1 "\"", "\"../" SHARD1 "\"");
}
static int m_no_weights(const char *d) { return remove_file(d, ST); }
static int m_config_json(const char *d) { return edit_text(d, "config.json", "{", "{,"); }
static int m_config_missing_key(const char *d)
{
    return edit_text(d, "config.json", "\"hidden_size\"", "\"hidden_sizes\"");
}
static int m_config_heads(const char *d)
{
    return edit_text(d, "config.json", "\"num_key_value_heads\":\t2", "\"num_key_value_heads\": 3");
}
static int m_config_arch(const char *d)
{
    return edit_text(d, "config.json", "Qwen3_5MoeForCausalLM", "LlamaForCausalLM");
}
static int m_layer_types(const char *d)
{
    return edit_text(d, "config.json", "\"linear_attention\", ", "");
}
static int m_group_size(const char *d)
{
    return edit_text(d, "config.json", "\"group_size\":\t32", "\"group_size\": 64");
}
static int m_missing_scale(const char *d)
{
    return edit_header(d, ST, "\"model.layers.2.mlp.experts.0.gate_proj.weight_scale\"",
                       "\"model.layers.2.mlp.experts.0.gate_proj.weight_scal\"");
}
static int m_regex_nothing(const char *d)
{
    return edit_text(d, "config.json", "\"re:.*self_attn\\\\.(q|k|v|o)_proj$\"",
                     "\"re:.*self_attn\\\\.(q|k|v|o)_proj$\", \"re:.*mlp\\\\.fc9$\"");
}
static int m_unexpected_quant(const char *d)
{
    return edit_text(d, "config.json", "\"lm_head\",",
                     "\"lm_head\", \"re:.*experts\\\\.4\\\\..*\",");
}
static int m_missing_tensor(const char *d)
{
    return edit_header(d, ST, "\"model.norm.weight\"", "\"model.norm.weight_\"");
}
static int m_shape_mismatch(const char *d)
{
    return edit_header(d, ST, "\"model.norm.weight\":{\"dtype\":\"BF16\",\"shape\":[64]",
                       "\"model.norm.weight\":{\"dtype\":\"BF16\",\"shape\":[32,2]");
}
static int m_weight_shape(const char *d)
{
    int64_t ws[2] = { 32, 65 };
    return poke(d, ST, "model.layers.2.mlp.experts.1.up_proj.weight_shape", 0, ws, sizeof ws);
}
static int m_packed_dtype(const char *d)
{
    return edit_header(
        d, ST, "\"model.layers.2.mlp.experts.0.gate_proj.weight_packed\":{\"dtype\":\"I32\"",
        "\"model.layers.2.mlp.experts.0.gate_proj.weight_packed\":{\"dtype\":\"F32\"");
}
static int m_quant_method(const char *d)
{
    return edit_text(d, "config.json", "\"compressed-tensors\"", "\"gptq\"");
}
static int m_bits_mismatch(const char *d)
{
    /* drop the super-expert's exact targets: the int4 regex now claims its int8 tensors */
    return edit_text(d, "config.json", "\"model.layers.2.mlp.experts.3.gate_proj\"",
                     "\"model.layers.2.mlp.experts.3.gate_projX\"");
}
static int m_foreign_tensor(const char *d)
{
    return edit_header(d, ST, "{\"__metadata__\":{\"format\":\"pt\"}",
                       "{\"__metadata__\":{\"format\":\"pt\"},\"model.extra\":{\"dtype\":\"BF16\","
                       "\"shape\":[0],\"data_offsets\":[0,0]}");
}
static int m_asym(const char *d)
{
    return edit_text(d, "config.json", "\"symmetric\":\ttrue", "\"symmetric\": false");
}
static int m_kv_scale_shape(const char *d)
{
    float three[3] = { 1, 1, 1 };
    return append_tensor(d, ST, "model.layers.3.self_attn.k_scale", "F32", 3, three, 12);
}
static int m_zero_point(const char *d)
{
    int32_t zp[8] = { 0 };
    return append_tensor(d, ST, "model.layers.2.mlp.experts.0.down_proj.weight_zero_point", "I32",
                         8, zp, sizeof zp);
}
static int m_foreign_bias(const char *d)
{
    uint16_t b[64] = { 0 };
    return append_tensor(d, ST, "model.layers.3.self_attn.o_proj.bias", "BF16", 64, b, sizeof b);
}
static int m_both_forms(const char *d)
{
    /* quantized module also stored as .weight */
    return edit_header(d, ST, "\"model.layers.2.mlp.experts.0.gate_proj.weight_shape\"",
                       "\"model.layers.2.mlp.experts.0.gate_proj.weight\"");
}

static const struct defect defects[] = {
    { "truncated shard", SINGLE, m_truncated, "truncated or offsets out of range" },
    { "header length past EOF", SINGLE, m_hdr_past_eof, "runs past the end" },
    { "header length over cap", SINGLE, m_hdr_cap, "exceeds the" },
    { "empty shard", SINGLE, m_short_file, "too short for a safetensors header" },
    { "overlapping offsets", SINGLE, m_overlap, "overlaps the previous tensor" },
    { "hole between tensors", SINGLE, m_hole, "leaves a hole in the buffer" },
    { "wrong dtype size", SINGLE, m_dtype_size, "but F32 shape needs 256" },
    { "unknown dtype", SINGLE, m_unknown_dtype, "unknown dtype 'Q4_K'" },
    { "shape overflow", SINGLE, m_shape_overflow, "overflows 64 bits" },
    { "malformed header JSON", SINGLE, m_bad_header_json, "header is not valid JSON" },
    { "duplicate tensor", SINGLE, m_dup_tensor,
      "duplicate tensor 'model.layers.0.input_layernorm.weight'" },
    { "missing shard", SHARDED, m_missing_shard, "shard named for" },
    { "index names absent tensor", SHARDED, m_index_absent,
      "'model.ghost.weight' is listed in shard" },
    { "shard tensor not in index", SHARDED, m_index_unlisted,
      "'model.norm.weight' is not listed in" },
    { "malformed index JSON", SHARDED, m_index_json,
      "model.safetensors.index.json: not valid JSON" },
    { "index path escapes", SHARDED, m_index_path, "is not a .safetensors file name" },
    { "no weights file", SINGLE, m_no_weights, "nor model.safetensors is readable" },
    { "malformed config.json", SINGLE, m_config_json, "config.json: not valid JSON" },
    { "config missing key", SINGLE, m_config_missing_key, "missing required key 'hidden_size'" },
    { "config bad GQA", SINGLE, m_config_heads, "not a multiple of num_key_value_heads" },
    { "foreign architecture", SINGLE, m_config_arch,
      "architecture 'LlamaForCausalLM' is not supported" },
    { "layer_types length", SINGLE, m_layer_types, "'layer_types' must list 8 entries" },
    { "wrong group size", SINGLE, m_group_size,
      "implies group size 32, but quantization_config group 'group_1' says int4 group 64" },
    { "missing weight_scale", SINGLE, m_missing_scale,
      "missing tensor 'model.layers.2.mlp.experts.0.gate_proj.weight_scale'" },
    { "regex target matches nothing", SINGLE, m_regex_nothing,
      "target 're:.*mlp\\.fc9$' matches no module" },
    { "unexpected quantized tensor", SINGLE, m_unexpected_quant,
      "unexpected quantized tensor 'model.layers.2.mlp.experts.4.gate_proj.weight_packed'" },
    { "missing expected tensor", SINGLE, m_missing_tensor, "missing tensor 'model.norm.weight'" },
    { "shape mismatch", SINGLE, m_shape_mismatch,
      "'model.norm.weight': shape [32, 2], expected [64]" },
    { "weight_shape disagrees", SINGLE, m_weight_shape,
      "weight_shape' = {32, 65}, expected {32, 64}" },
    { "packed dtype", SINGLE, m_packed_dtype, "weight_packed': dtype F32, expected I32" },
    { "foreign quant method", SINGLE, m_quant_method,
      "quant_method must be \"compressed-tensors\"" },
    { "int8 codes where int4 expected", SINGLE, m_bits_mismatch,
      "holds int8 codes, but quantization_config group 'group_1' says int4 group 32" },
    { "unexpected tensor", SINGLE, m_foreign_tensor, "unexpected tensor 'model.extra'" },
    { "asymmetric weights", SINGLE, m_asym, "only symmetric weights are supported" },
    { "both .weight and .weight_packed", SINGLE, m_both_forms,
      "has both .weight and .weight_packed" },
    { "KV scale shape", SINGLE, m_kv_scale_shape,
      "expected a float scale of 1 or 2 (one per KV head)" },
    { "zero point for symmetric", SINGLE, m_zero_point, "zero points / g_idx are not expected" },
    { "bias on a bias-free model", SINGLE, m_foreign_bias,
      "unexpected tensor 'model.layers.3.self_attn.o_proj.bias'" },
};

static void t_defects(void)
{
    int n = 0;
    for (size_t i = 0; i < sizeof defects / sizeof *defects; i++) {
        const struct defect *x = &defects[i];
        const char *d = scratch("defect");
        if (mk(d, 1, 1, x->layout == SHARDED ? 2 : 1) < 0 || x->mutate(d) < 0) {
            CHECKF(0, "%s: could not build the defective checkpoint", x->name);
            continue;
        }
        struct ckpt c;
        err_clear();
        int rc = ckpt_open(&c, d);
        CHECKF(rc < 0 && strstr(err_msg(), x->want), "%s: rc %d, message '%s', wanted '%s'",
               x->name, rc, err_msg(), x->want);
        CHECKF(!strchr(err_msg(), '\n'), "%s: message is not one line", x->name);
        n += rc < 0;
        if (rc == 0)
            ckpt_close(&c);
    }
    printf("    %d defective checkpoints refused\n", n);
    CHECK(n >= 25);
}

/* ---- the compressed-tensors oracle (tests/ref/ckpt_oracle.py output) ---- */

static const struct quant_linear *find_linear(const struct ckpt *c, const char *name)
{
    if (c->lm_head.name && !strcmp(c->lm_head.name, name))
        return &c->lm_head;
    for (int64_t l = 0; l < c->cfg.n_layers; l++) {
        const struct ckpt_layer *L = &c->layers[l];
        const struct quant_linear *v[] = { &L->q_proj,    &L->k_proj,        &L->v_proj,
                                           &L->o_proj,    &L->in_proj_qkv,   &L->in_proj_z,
                                           &L->in_proj_a, &L->in_proj_b,     &L->out_proj,
                                           &L->router,    &L->sh_gate,       &L->sh_up,
                                           &L->sh_down,   &L->sh_expert_gate };
        for (size_t i = 0; i < sizeof v / sizeof *v; i++)
            if (v[i]->name && !strcmp(v[i]->name, name))
                return v[i];
        for (int64_t e = 0; e < c->cfg.n_experts * 3; e++)
            if (!strcmp(L->experts[e].name, name))
                return &L->experts[e];
    }
    return NULL;
}

static int oracle(const char *dir)
{
    char p[4096];
    struct buf js = { 0 }, f32 = { 0 };
    struct ckpt c;
    snprintf(p, sizeof p, "%s/expected.json", dir);
    if (fs_read_file(p, 64u << 20, &js) < 0) {
        printf("FAIL oracle (%s)\n# summary: 0 passed, 1 failed, 0 skipped\n", err_msg());
        return 1;
    }
    snprintf(p, sizeof p, "%s/expected.f32", dir);
    int ok_read = fs_read_file(p, 1u << 30, &f32) == 0;
    int rc = ckpt_open(&c, dir);
    if (rc < 0 || !ok_read) {
        printf("FAIL oracle: lode refuses the compressed-tensors checkpoint: %s\n", err_msg());
        printf("# summary: 0 passed, 1 failed, 0 skipped\n");
        return 1;
    }
    cJSON *j = cJSON_Parse(js.p);
    const cJSON *mods = cJSON_GetObjectItem(j, "modules");
    int n = 0, prec_bad = 0, val_bad = 0, n4 = 0, n8 = 0;
    const float *exp = (const float *)f32.p;
    size_t nexp = f32.len / 4;
    for (const cJSON *m = mods ? mods->child : NULL; m; m = m->next, n++) {
        const char *name = cJSON_GetObjectItem(m, "name")->valuestring;
        int bits = cJSON_GetObjectItem(m, "bits")->valueint;
        int group = cJSON_GetObjectItem(m, "group")->valueint;
        int64_t out = (int64_t)cJSON_GetObjectItem(m, "out")->valuedouble;
        int64_t in = (int64_t)cJSON_GetObjectItem(m, "in")->valuedouble;
        size_t off = (size_t)cJSON_GetObjectItem(m, "offset")->valuedouble;
        const cJSON *dt = cJSON_GetObjectItem(m, "dtype");
        int bf16_result = dt && strstr(dt->valuestring, "bfloat16");
        const struct quant_linear *w = find_linear(&c, name);
        if (!w || w->out != out || w->in != in || w->bits != bits ||
            (bits != 16 && w->group != (group ? group : in))) {
            if (prec_bad++ < 5)
                printf("    %s: lode %d bits group %lld, library %d bits group %d\n", name,
                       w ? w->bits : -1, w ? (long long)w->group : -1LL, bits, group);
            continue;
        }
        n4 += bits == 4;
        n8 += bits == 8;
        if (off + (size_t)(out * in) > nexp) {
            prec_bad++;
            continue;
        }
        float *row = malloc((size_t)in * sizeof *row);
        for (int64_t r = 0; r < out && row; r++) {
            quant_dequant_row(w, r, row);
            for (int64_t k = 0; k < in; k++) {
                float mine = row[k];
                if (bf16_result) /* the library multiplies in the scale dtype */
                    mine = quant_bf16_to_f32(quant_f32_to_bf16(mine));
                float want = exp[off + (size_t)(r * in + k)];
                if (mine != want && val_bad++ < 5)
                    printf("    %s[%lld][%lld]: lode %.9g, library %.9g\n", name, (long long)r,
                           (long long)k, mine, want);
            }
        }
        free(row);
    }
    int pass = n > 0 && !prec_bad && !val_bad && n4 > 0 && n8 > 0;
    printf(
        "%s oracle: %d modules (%d int4, %d int8), %d precision mismatches, %d value mismatches\n",
        pass ? "ok  " : "FAIL", n, n4, n8, prec_bad, val_bad);
    printf("# summary: %d passed, %d failed, 0 skipped\n", pass, !pass);
    cJSON_Delete(j);
    ckpt_close(&c);
    buf_free(&js);
    buf_free(&f32);
    return !pass;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--oracle"))
        return oracle(argv[2]);
    snprintf(g_root, sizeof g_root, "%s/lode-ckpt-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_root)) {
        perror("mkdtemp");
        return 1;
    }
    TEST_RUN(t_mixed_binding);
    TEST_RUN(t_bf16_fused);
    TEST_RUN(t_golden);
    TEST_RUN(t_known_values);
    TEST_RUN(t_kv_scales);
    TEST_RUN(t_deterministic);
    TEST_RUN(t_modelcfg);
    TEST_RUN(t_real_budget);
    TEST_RUN(t_defects);
    rm_dir(g_root);
    TEST_END();
}
