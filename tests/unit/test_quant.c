/* test_quant.c - pack-quantized bit layout, dequantization, bf16/f16 conversions,
 * quantization_config parsing and the module matcher. */
#include "common/err.h"
#include "engine/mkmodel.h"
#include "engine/quant.h"
#include "testhelp.h"

/* Hand-computed words: element 0 in the low bits, stored with +8 / +128 bias. */
static void t_pack_words(void)
{
    int8_t q4[8] = { -8, -1, 0, 1, 7, 2, -3, 5 }; /* u = 0 7 8 9 15 10 5 13 */
    int32_t w;
    quant_pack_row(q4, 8, 4, &w);
    CHECK_INT((uint32_t)w, 0xD5AF9870u);
    int8_t q8[4] = { -128, -1, 0, 127 }; /* u = 0 127 128 255 */
    quant_pack_row(q8, 4, 8, &w);
    CHECK_INT((uint32_t)w, 0xFF807F00u);
}

/* A view over hand-made words and scales dequantizes to q * scale exactly. */
static void t_dequant_known(void)
{
    uint32_t words[2] = { 0xD5AF9870u, 0x01234567u };
    uint16_t scales[2] = { quant_f32_to_bf16(0.5f), quant_f32_to_bf16(-0.25f) };
    /* one row of 16 inputs, group 8: scale 0.5 for columns 0..7, -0.25 for 8..15 */
    struct quant_linear v = { .name = "x",
                              .out = 1,
                              .in = 16,
                              .bits = 4,
                              .dtype = ST_I32,
                              .data = words,
                              .scale = scales,
                              .scale_dtype = ST_BF16,
                              .group = 8 };
    float out[16];
    for (int i = 0; i < 16; i++)
        out[i] = NAN; /* poison */
    quant_dequant_row(&v, 0, out);
    int8_t want[16] = { -8,    -1,    0,     1,     7,     2,     -3,    5,
                        7 - 8, 6 - 8, 5 - 8, 4 - 8, 3 - 8, 2 - 8, 1 - 8, 0 - 8 };
    for (int i = 0; i < 16; i++)
        CHECKF(out[i] == (float)want[i] * (i < 8 ? 0.5f : -0.25f), "col %d: %g", i, out[i]);
    /* int8 channel: one scale per row, f32 scales */
    uint32_t w8 = 0xFF807F00u;
    float s8[1] = { 0.125f };
    struct quant_linear v8 = { .out = 1,
                               .in = 4,
                               .bits = 8,
                               .dtype = ST_I32,
                               .data = &w8,
                               .scale = s8,
                               .scale_dtype = ST_F32,
                               .group = 4 };
    quant_dequant_row(&v8, 0, out);
    CHECK(out[0] == -16.0f && out[1] == -0.125f && out[2] == 0.0f && out[3] == 15.875f);
}

/* Random codes and scales: pack, dequantize, compare with q * s (seeded, replayable). */
static void t_roundtrip_random(void)
{
    struct th_rng r = { th_seed() };
    for (int bits = 4; bits <= 8; bits += 4) {
        enum { OUT = 5, IN = 96, G = 32 };
        int8_t q[OUT][IN];
        int32_t packed[OUT * IN / 4]; /* rows of IN*bits/32 words, contiguous */
        uint16_t sc[OUT][IN / G];
        int lo = bits == 4 ? -8 : -128, span = bits == 4 ? 16 : 256;
        for (int o = 0; o < OUT; o++) {
            for (int c = 0; c < IN; c++)
                q[o][c] = (int8_t)(lo + (int)(th_next(&r) % (uint64_t)span));
            for (int g = 0; g < IN / G; g++)
                sc[o][g] = quant_f32_to_bf16(th_uniform(&r));
            quant_pack_row(q[o], IN, bits, packed + o * IN * bits / 32);
        }
        struct quant_linear v = { .out = OUT,
                                  .in = IN,
                                  .bits = bits,
                                  .dtype = ST_I32,
                                  .data = packed,
                                  .scale = sc,
                                  .scale_dtype = ST_BF16,
                                  .group = G };
        int bad = 0;
        for (int o = 0; o < OUT; o++) {
            float out[IN];
            for (int c = 0; c < IN; c++)
                out[c] = NAN;
            quant_dequant_row(&v, o, out);
            for (int c = 0; c < IN; c++)
                bad += out[c] != (float)q[o][c] * quant_bf16_to_f32(sc[o][c / G]);
        }
        CHECKF(!bad, "bits %d: %d values differ", bits, bad);
    }
}

/* mkmodel's quantizer: codes in range, max |code| reached, scale = bf16(absmax / 7.5). */
static void t_quantize_row(void)
{
    float w[64];
    for (int i = 0; i < 64; i++)
        w[i] = (float)(i - 20) * 0.01f;
    int8_t q[64];
    uint16_t s[2];
    mk_quantize_row(w, 64, 4, 32, q, s);
    CHECK(s[0] == quant_f32_to_bf16(0.20f / 7.5f));
    for (int i = 0; i < 64; i++)
        CHECK(q[i] >= -8 && q[i] <= 7);
    float sf = quant_bf16_to_f32(s[0]);
    for (int i = 0; i < 32; i++)
        CHECKF(fabsf((float)q[i] * sf - w[i]) <= sf * 0.5f + 1e-7f, "col %d", i);
    float z[32] = { 0 };
    mk_quantize_row(z, 32, 8, 32, q, s);
    CHECK(quant_bf16_to_f32(s[0]) > 0 && q[0] == 0);
}

static void t_bf16_f16(void)
{
    CHECK(quant_f32_to_bf16(1.0f) == 0x3F80);
    CHECK(quant_f32_to_bf16(-2.0f) == 0xC000);
    /* ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 -> 1 */
    CHECK(quant_f32_to_bf16(1.0f + 0x1p-8f) == 0x3F80);
    CHECK(quant_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3F81);
    CHECK(isnan(quant_bf16_to_f32(quant_f32_to_bf16(NAN))));
    CHECK(quant_f16_to_f32(0x3C00) == 1.0f);
    CHECK(quant_f16_to_f32(0xC000) == -2.0f);
    CHECK(quant_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(quant_f16_to_f32(0x7BFF) == 65504.0f);
    CHECK(isinf(quant_f16_to_f32(0x7C00)));
}

static const char *qjson(const char *groups, const char *ignore)
{
    static char b[8192];
    snprintf(b, sizeof b,
             "{\"quantization_config\":{\"quant_method\":\"compressed-tensors\",\"format\":"
             "\"pack-quantized\",\"quantization_status\":\"compressed\",\"config_groups\":{%s},"
             "\"ignore\":[%s]}}",
             groups, ignore);
    return b;
}

#define W4                                                                                         \
    "\"weights\":{\"num_bits\":4,\"type\":\"int\",\"symmetric\":true,\"strategy\":\"group\","      \
    "\"group_size\":32}"
#define W8                                                                                         \
    "\"weights\":{\"num_bits\":8,\"type\":\"int\",\"symmetric\":true,\"strategy\":\"channel\"}"

/* The matcher against a table of names, regexes and ignore lists. */
static void t_matcher(void)
{
    struct quant_cfg q;
    const char *j = qjson("\"group_0\":{\"targets\":[\"re:.*mlp\\\\.experts\\\\.\\\\d+\\\\.(gate|"
                          "up|down)_proj$\"]," W4 "},"
                          "\"group_1\":{\"targets\":[\"re:.*self_attn\\\\.(q|k|v|o)_proj$\","
                          "\"model.layers.2.mlp.experts.5.down_proj\"]," W8 "},"
                          "\"group_2\":{\"targets\":[\"Linear\"]," W8 "}",
                          "\"lm_head\",\"re:.*shared_expert.*\",\"re:.*layers\\\\.0\\\\..*\","
                          "\"model.layers.3.self_attn.o_proj\"");
    REQUIRE(quant_parse(&q, j, strlen(j), "cfg") == 0);
    CHECK(q.present && q.n_schemes == 3 && q.n_ignore == 4);
    static const struct {
        const char *name, *cls;
        int scheme, ignored;
    } tab[] = {
        { "model.layers.1.mlp.experts.3.gate_proj", "Linear", 0, 0 },
        { "model.layers.1.mlp.experts.17.down_proj", "Linear", 0, 0 },
        { "model.layers.2.mlp.experts.5.down_proj", "Linear", 1, 0 }, /* exact beats regex */
        { "model.layers.2.mlp.experts.5.up_proj", "Linear", 0, 0 },
        { "model.layers.3.self_attn.q_proj", "Linear", 1, 0 },
        { "model.layers.3.self_attn.o_proj", "Linear", -1, 1 },        /* exact ignore */
        { "model.layers.3.self_attn.q_proj.x", "Linear", 2, 0 },       /* $ anchors the end */
        { "xmodel.layers.3.self_attn.q_norm", "RMSNorm", -1, 0 },      /* no class match */
        { "model.layers.0.mlp.experts.1.gate_proj", "Linear", -1, 1 }, /* ignore first */
        { "model.layers.4.mlp.shared_expert.up_proj", "Linear", -1, 1 },
        { "lm_head", "Linear", -1, 1 },
        { "model.layers.4.linear_attn.in_proj_qkv", "Linear", 2, 0 }, /* class target */
        { "model.layers.4.mlp.gate", "TopKRouter", -1, 0 },
        { "model.layers.4.mlp.experts.gate_up_proj", NULL, -1, 0 },
    };
    for (size_t i = 0; i < sizeof tab / sizeof *tab; i++) {
        int ign = -1;
        int s = quant_match(&q, tab[i].name, tab[i].cls, &ign);
        CHECKF(s == tab[i].scheme && ign == tab[i].ignored, "%s: scheme %d ignored %d", tab[i].name,
               s, ign);
    }
    CHECK(quant_unused_target(&q) == NULL);
    quant_free(&q);
    /* re.match is anchored at the start only: "re:layers" does not match "model.layers..." */
    j = qjson("\"group_0\":{\"targets\":[\"re:layers\\\\.1\\\\.\"]," W4 "}", "");
    REQUIRE(quant_parse(&q, j, strlen(j), "cfg") == 0);
    CHECK(quant_match(&q, "model.layers.1.x", "Linear", NULL) == -1);
    CHECK(quant_match(&q, "layers.1.x", "Linear", NULL) == 0);
    quant_free(&q);
    /* no quantization_config at all */
    REQUIRE(quant_parse(&q, "{}", 2, "cfg") == 0);
    CHECK(!q.present && quant_match(&q, "lm_head", "Linear", NULL) == -1);
    quant_free(&q);
}

/* Each unsupported or malformed config is refused with its own message. */
static void t_parse_errors(void)
{
    static const struct {
        const char *groups, *ignore, *want;
    } tab[] = {
        { "\"g\":{\"targets\":[\"Linear\"],\"weights\":{\"num_bits\":3}}", "",
          "num_bits must be 4 or 8" },
        { "\"g\":{\"targets\":[\"Linear\"],\"weights\":{\"num_bits\":4,\"symmetric\":false,\"group_"
          "size\":32}}",
          "", "only symmetric" },
        { "\"g\":{\"targets\":[\"Linear\"],\"weights\":{\"num_bits\":4,\"strategy\":\"group\"}}",
          "", "positive group_size" },
        { "\"g\":{\"targets\":[\"Linear\"],\"weights\":{\"num_bits\":4,\"strategy\":\"tensor\"}}",
          "", "strategy 'tensor'" },
        { "\"g\":{\"targets\":[\"Linear\"],\"weights\":{\"num_bits\":4,\"group_size\":32,"
          "\"actorder\":\"group\"}}",
          "", "actorder" },
        { "\"g\":{\"targets\":[\"Linear\"]," W8 ",\"input_activations\":{\"num_bits\":8}}", "",
          "input_activations" },
        { "\"g\":{\"targets\":[\"Linear\"]," W8 ",\"format\":\"int-quantized\"}", "",
          "format 'int-quantized'" },
        { "\"g\":{\"targets\":[]," W8 "}", "", "non-empty list" },
        { "\"g\":{\"targets\":[\"re:(unclosed\"]," W8 "}", "", "does not compile" },
        { "\"g\":{\"targets\":[\"Linear\"]," W8 "}", "3", "ignore entries must be strings" },
        { "\"W4A16_ASYM\":[\"Linear\"]", "", "preset scheme not supported" },
    };
    for (size_t i = 0; i < sizeof tab / sizeof *tab; i++) {
        struct quant_cfg q;
        const char *j = qjson(tab[i].groups, tab[i].ignore);
        int rc = quant_parse(&q, j, strlen(j), "cfg");
        CHECKF(rc < 0 && strstr(err_msg(), tab[i].want), "case %zu: rc %d msg '%s'", i, rc,
               err_msg());
        quant_free(&q);
    }
    struct quant_cfg q;
    const char *gptq = "{\"quantization_config\":{\"quant_method\":\"gptq\"}}";
    CHECK(quant_parse(&q, gptq, strlen(gptq), "cfg") < 0 &&
          strstr(err_msg(), "compressed-tensors"));
    quant_free(&q);
    /* the preset form expands */
    const char *pre = qjson("\"W4A16\":[\"Linear\"]", "");
    REQUIRE(quant_parse(&q, pre, strlen(pre), "cfg") == 0);
    CHECK(q.schemes[0].bits == 4 && q.schemes[0].group_size == 128);
    quant_free(&q);
}

int main(void)
{
    TEST_RUN(t_pack_words);
    TEST_RUN(t_dequant_known);
    TEST_RUN(t_roundtrip_random);
    TEST_RUN(t_quantize_row);
    TEST_RUN(t_bf16_f16);
    TEST_RUN(t_matcher);
    TEST_RUN(t_parse_errors);
    TEST_END();
}
