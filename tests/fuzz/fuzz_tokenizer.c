/*
 * fuzz_tokenizer.c - the tokenizer.json loader, and the encoder and decoders
 * of whatever loads: the input is the file; when it loads, the input itself,
 * a few fixed strings and ids drawn from the input are encoded and decoded,
 * and the streaming decode must equal the one-shot decode.
 */
#include "common/buf.h"
#include "engine/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void roundtrip(struct tok *t, const char *s, size_t n, unsigned flags)
{
    struct tok_ids ids = { 0 };
    if (tok_encode(t, s, n, flags, &ids) == 0) {
        struct buf one = { 0 }, st = { 0 };
        int rc = tok_decode(t, ids.v, ids.n, 0, &one);
        struct tok_stream ss;
        tok_stream_init(&ss);
        for (size_t i = 0; i < ids.n && rc == 0; i++)
            rc = tok_stream_feed(t, &ss, ids.v[i], 0, &st);
        if (rc == 0)
            tok_stream_flush(&ss, &st);
        if (rc == 0 && (one.len != st.len || (one.len && memcmp(one.p, st.p, one.len))))
            abort(); /* the streaming decoder disagrees with the one-shot one */
        buf_free(&one);
        buf_free(&st);
    }
    tok_ids_free(&ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    struct tok *t;
    if (tok_load(&t, (const char *)data, size, "fuzz.json") < 0)
        return 0;
    static const char *texts[] = {
        "Hello world",
        "  <|im_start|>user\n<think>x</think>",
        "e\xcc\x81 caf\xc3\xa9 \xe4\xb8\xad",
        "a  <m>b [S]  wd awd",
        "\xc2\x85\xc2\xa0\t\r\n   \n\n",
        "1234567890 'll 'S",
    };
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        roundtrip(t, texts[k], strlen(texts[k]), 0);
        roundtrip(t, texts[k], strlen(texts[k]), TOK_NO_ADDED);
    }
    roundtrip(t, (const char *)data, size < 4096 ? size : 4096, 0);
    /* ids from the input's bytes, in range or not */
    int32_t ids[64];
    size_t n = 0;
    for (size_t i = 0; i + 2 <= size && n < 64; i += 2)
        ids[n++] = (int32_t)(data[i] | data[i + 1] << 8) % (tok_n_ids(t) + 2) - 1;
    struct buf out = { 0 };
    tok_decode(t, ids, n, TOK_SKIP_SPECIAL, &out);
    buf_free(&out);
    tok_close(t);
    return 0;
}
