/* fuzz_modelcfg.c - libFuzzer target: config.json (model dimensions, rope, layer types),
 * generation_config.json and the compressed-tensors quantization_config (with the PCRE2
 * matcher run on a few module names) on any bytes. */
#include "engine/modelcfg.h"
#include "engine/quant.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct mcfg m;
    if (mcfg_parse(&m, s, size, "config.json") == 0) {
        if (m.n_layers < 1 || m.n_layers > MCFG_MAX_LAYERS || m.n_full > m.n_layers ||
            m.rotary_dim > m.head_dim || m.n_heads % m.n_kv_heads)
            abort();
        mcfg_parse_gen(&m, s, size, "generation_config.json");
    }
    struct quant_cfg q;
    if (quant_parse(&q, s, size, "config.json") == 0 && q.present) {
        static const char *const names[] = {
            "model.layers.3.self_attn.q_proj",
            "model.language_model.layers.2.mlp.experts.17.down_proj", "lm_head", ""
        };
        for (int i = 0; i < 4; i++) {
            int s1 = quant_match(&q, names[i], "Linear", NULL);
            if (s1 >= q.n_schemes)
                abort();
        }
        quant_unused_target(&q);
    }
    quant_free(&q);
    return 0;
}
