/* cmd_mkmodel.c - `lode mkmodel`: write a deterministic random checkpoint in the real layout. */
#include "app/commands.h"
#include "common/err.h"
#include "engine/mkmodel.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct cli_opt opts[] = {
    { "out", 'o', 1, "DIR", "directory to write (created)" },
    { "preset", 0, 1, "NAME",
      "tiny (default, milliseconds), small (a few hundred MB), full (real dims, ~28 GB)" },
    { "quant", 0, 1, "KIND",
      "bf16 (fused experts, the official layout) or mixed (compressed-tensors W4A16/W8A16)" },
    { "layout", 0, 1, "KIND",
      "vl (Qwen3_5MoeForConditionalGeneration, default) or text (Qwen3_5MoeForCausalLM)" },
    { "seed", 0, 1, "N", "random seed (default 1); the same seed gives identical bytes" },
    { "tokenizer", 0, 1, "FILE", "copy this tokenizer.json and size the vocabulary to cover it" },
    { "shards", 0, 1, "N", "number of safetensors shards (default 1; >1 writes an index)" },
    { "layers", 0, 1, "N", "only N decoder layers: the preset's real layers L..L+N-1" },
    { "first-layer", 0, 1, "L", "with --layers: the first real layer (default 0)" },
    { 0 },
};

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!*s || *s == '-')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (*end || errno)
        return -1;
    *out = v;
    return 0;
}

static int run(struct app *a, int argc, char **argv)
{
    (void)a;
    struct mk_opts o = { .preset = MK_TINY, .seed = 1, .shards = 1 };
    struct cli c;
    uint64_t v;
    cli_init(&c, argc, argv);
    for (int opt; (opt = cli_next(&c, opts)) != CLI_END;) {
        if (opt == CLI_EXIT)
            return c.exit;
        if (opt == CLI_POS)
            return cli_usage_error("mkmodel", "unexpected argument '%s'", c.arg);
        switch (opt) {
        case 0: o.out = c.arg; break;
        case 1:
            if (!strcmp(c.arg, "tiny"))
                o.preset = MK_TINY;
            else if (!strcmp(c.arg, "small"))
                o.preset = MK_SMALL;
            else if (!strcmp(c.arg, "full"))
                o.preset = MK_FULL;
            else
                return cli_usage_error("mkmodel", "--preset must be tiny, small or full");
            break;
        case 2:
            if (!strcmp(c.arg, "bf16") || !strcmp(c.arg, "mixed"))
                o.mixed = !strcmp(c.arg, "mixed");
            else
                return cli_usage_error("mkmodel", "--quant must be bf16 or mixed");
            break;
        case 3:
            if (!strcmp(c.arg, "vl") || !strcmp(c.arg, "text"))
                o.text_layout = !strcmp(c.arg, "text");
            else
                return cli_usage_error("mkmodel", "--layout must be vl or text");
            break;
        case 4:
            if (parse_u64(c.arg, &o.seed) < 0)
                return cli_usage_error("mkmodel", "--seed must be a non-negative integer");
            break;
        case 5: o.tokenizer = c.arg; break;
        case 6:
            if (parse_u64(c.arg, &v) < 0 || v < 1 || v > 999)
                return cli_usage_error("mkmodel", "--shards must be in 1..999");
            o.shards = (int)v;
            break;
        case 7:
        case 8:
            if (parse_u64(c.arg, &v) < 0 || v > 4096 || (opt == 7 && v < 1))
                return cli_usage_error("mkmodel", "--%s must be %s", opts[opt].name,
                                       opt == 7 ? "in 1..4096" : "in 0..4095");
            *(opt == 7 ? &o.layers : &o.first_layer) = (int)v;
            break;
        }
    }
    if (!o.out)
        return cli_usage_error("mkmodel", "--out DIR is required");
    if (o.first_layer && !o.layers)
        return cli_usage_error("mkmodel", "--first-layer needs --layers N");
    if (mk_write(&o) < 0)
        return cli_fail();
    return EXIT_OK;
}

const struct command cmd_mkmodel = {
    "mkmodel",
    run,
    "write a deterministic random checkpoint in the real layout",
    "usage: lode mkmodel --out DIR [--preset tiny|small|full] [--quant bf16|mixed]\n"
    "                    [--layout vl|text] [--seed N] [--tokenizer FILE] [--shards N]\n"
    "                    [--layers N [--first-layer L]]\n"
    "\n"
    "Writes config.json, generation_config.json and safetensors shards (with\n"
    "model.safetensors.index.json when --shards > 1) exactly as the published\n"
    "checkpoints are laid out. bf16 stores experts fused (mlp.experts.gate_up_proj,\n"
    "down_proj); mixed stores them per expert with a compressed-tensors\n"
    "quantization_config: routed experts int4 group 32, full-attention q/k/v/o and one\n"
    "super-expert per layer int8 channel; shared experts, DeltaNet, routers,\n"
    "embeddings, lm_head and layers 0, 1 and the last one BF16. The tiny preset uses a\n"
    "512-token vocabulary unless --tokenizer raises it.\n"
    "\n"
    "--layers N [--first-layer L] writes only N decoder layers, numbered 0..N-1, that are\n"
    "the preset's real layers L..L+N-1: their kinds (full attention every 4th real layer,\n"
    "3, 7, 11, ...), their precision (BF16 only where the real layer is 0, 1 or the last)\n"
    "and their random bytes (streams seeded by the real names), with the whole model's\n"
    "embeddings, final norm and lm_head (the real vocabulary). A full-shape benchmark\n"
    "without the 28 GB: `--preset full --layers 4 --first-layer 4` is three DeltaNet\n"
    "layers and one attention layer with int4 experts and the 248,320-row lm_head (about\n"
    "4 GB).\n",
    opts,
};
