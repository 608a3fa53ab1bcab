/*
 * fuzz_template.c - the chat template parser and renderer on hostile input.
 * The input is a template; it is parsed and, when it parses, rendered with a
 * small fixed conversation under tight limits. Any crash, hang or leak is a
 * bug; errors are expected.
 */
#include "engine/template.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cJSON *msgs, *tools;
    if (!msgs) {
        msgs = cJSON_Parse("[{\"role\":\"system\",\"content\":\"be brief\"},"
                           "{\"role\":\"user\",\"content\":\"hi \\u00fc\"},"
                           "{\"role\":\"assistant\",\"content\":\"<think>r</think>ok\","
                           "\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":"
                           "{\"a\":1,\"b\":[true,null,1.5],\"c\":{\"d\":\"e\"}}}}]},"
                           "{\"role\":\"tool\",\"content\":\"42\"}]");
        tools = cJSON_Parse("[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]");
    }
    struct tpl *t;
    if (tpl_open(&t, (const char *)data, size) < 0)
        return 0;
    struct tpl_opts o = { .add_generation_prompt = 1,
                          .enable_thinking = TPL_TRUE,
                          .max_output = 1 << 20,
                          .max_memory = 32 << 20,
                          .max_steps = 200000,
                          .max_depth = 200 };
    char *out;
    size_t n;
    if (tpl_render(t, msgs, tools, &o, &out, &n) == 0)
        free(out);
    tpl_close(t);
    return 0;
}
