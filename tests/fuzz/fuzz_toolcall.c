/*
 * fuzz_toolcall.c - libFuzzer target for the tool-call parser
 * (tools/toolcall.h). Input: a flags byte (bit 0: starts in reasoning, bit 1:
 * use the fixture's tool list, bit 2: tiny caps, bit 3: also run the value
 * converters on the raw bytes), a chunking byte, then the model output.
 *
 * Besides not crashing, it asserts the split property: the result and the
 * event stream are the same fed whole, byte by byte, line by line, in random
 * chunks and cut at one point, and
 * the text rebuilt from the events equals the result. The output must be
 * valid JSON in valid UTF-8.
 */
#include "common/text.h"
#include "tests/unit/toolcall_fixture.h"

#include <stdio.h>

static struct tc_tools *tools;

static void die(const char *what, const char *a, const char *b)
{
    fprintf(stderr, "fuzz_toolcall: %s\n--- a\n%s\n--- b\n%s\n", what, a ? a : "", b ? b : "");
    abort();
}

static void converters(const char *s, size_t n)
{
    static const char *const schemas[] = {
        "{\"type\":\"object\"}",  "{\"type\":\"array\"}",
        "{\"type\":\"integer\"}", "{\"type\":\"number\"}",
        "{\"type\":\"boolean\"}", "{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]}",
        "{\"type\":\"weird\"}",
    };
    cJSON *v = tc_py_literal(s, n);
    cJSON_Delete(v);
    for (size_t i = 0; i < sizeof schemas / sizeof schemas[0]; i++) {
        cJSON *sc = cJSON_Parse(schemas[i]);
        v = tc_convert(sc, s, n);
        char *t = v ? cJSON_PrintUnformatted(v) : NULL;
        if (!t || !utf8_valid(t, strlen(t), NULL))
            die("converted value is not valid UTF-8 JSON", t, NULL);
        free(t);
        cJSON_Delete(v);
        cJSON_Delete(sc);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (!tools && tc_tools_parse(&tools, tcf_tools_json, strlen(tcf_tools_json), NULL) < 0)
        abort();
    unsigned flags = data[0], chunk = data[1];
    const char *in = (const char *)data + 2;
    size_t n = size - 2;
    struct tc_opts o;
    tc_opts_default(&o);
    o.starts_in_reasoning = flags & 1;
    if (flags & 4) {
        o.max_value_bytes = 8;
        o.max_calls = 2;
        o.max_text_bytes = 16;
    }
    const struct tc_tools *t = (flags & 2) ? tools : NULL;
    if (flags & 8)
        converters(in, n);

    struct buf ref = { 0 }, other = { 0 };
    const char *why;
    if (tcf_run(t, &o, in, n, (struct tcf_split){ 0, 0, 0 }, &ref, &why) < 0)
        die(why, ref.p, NULL);
    /* the JSON part (first line) must parse and be valid UTF-8 */
    char *nl = strchr(ref.p, '\n');
    size_t jl = nl ? (size_t)(nl - ref.p) : ref.len;
    cJSON *j = cJSON_ParseWithLength(ref.p, jl);
    if (!j || !utf8_valid(ref.p, jl, NULL))
        die("result is not valid JSON / UTF-8", ref.p, NULL);
    cJSON_Delete(j);
    struct tcf_split splits[4] = {
        { 1, 0, 0 },
        { 4, 0, 0 },
        { 3, 1 + chunk % 16, chunk },
        { 2, n ? (size_t)chunk * 7919 % n : 0, 0 },
    };
    for (int k = 0; k < 4; k++) {
        buf_reset(&other);
        if (tcf_run(t, &o, in, n, splits[k], &other, &why) < 0)
            die(why, other.p, NULL);
        if (strcmp(ref.p, other.p))
            die("the result depends on how the input is cut", ref.p, other.p);
    }
    buf_free(&ref);
    buf_free(&other);
    return 0;
}
