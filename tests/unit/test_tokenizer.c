/*
 * test_tokenizer.c - engine/tokenizer: exactness against committed Hugging
 * Face ids (no Python needed), streaming decode, lossy UTF-8, small
 * hand-written tokenizers for the BPE and added-token rules, error paths,
 * and linear time on long words and whitespace runs.
 *
 * The real tokenizer is ../shared/reference/qwen3-tokenizer/tokenizer.json
 * (tests skip when it is missing or is another file than the golden's).
 * The golden (tests/data/tokenizer/) is made by tests/ref/tok_golden.py.
 */
#include "testhelp.h"

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hash.h"
#include "common/text.h"
#include "engine/tokenizer.h"

#define REAL_TOK "../shared/reference/qwen3-tokenizer/tokenizer.json"
#define GOLDEN "tests/data/tokenizer/"

static struct tok *real;     /* the Qwen3 tokenizer, or NULL */
static struct buf real_json; /* its text */
static char skip_why[256];

static struct tok *get_real(void)
{
    static int tried;
    if (tried)
        return real;
    tried = 1;
    if (fs_read_file(REAL_TOK, 64u << 20, &real_json) < 0) {
        snprintf(skip_why, sizeof skip_why, "%s", err_msg());
        return NULL;
    }
    double t0 = time_s();
    if (tok_load(&real, real_json.p, real_json.len, REAL_TOK) < 0) {
        snprintf(skip_why, sizeof skip_why, "load failed: %s", err_msg());
        printf("    load failed: %s\n", err_msg());
        th_cur_failed = 1;
        return NULL;
    }
    printf("# loaded %s (%d ids) in %.1f ms\n", REAL_TOK, tok_n_ids(real), (time_s() - t0) * 1e3);
    return real;
}

#define NEED_REAL(t)                                                                               \
    struct tok *t = get_real();                                                                    \
    if (!t)                                                                                        \
    SKIP("no reference tokenizer: %s", skip_why)

static int encode_eq(struct tok *t, const char *s, unsigned flags, const int32_t *want, size_t n)
{
    struct tok_ids ids = { 0 };
    int rc = tok_encode(t, s, strlen(s), flags, &ids);
    int ok = rc == 0 && ids.n == n && (n == 0 || !memcmp(ids.v, want, n * sizeof *want));
    if (!ok) {
        printf("    encode(\"%s\"): rc %d, %zu ids:", s, rc, ids.n);
        for (size_t i = 0; i < ids.n && i < 20; i++)
            printf(" %d", ids.v[i]);
        printf("\n");
    }
    tok_ids_free(&ids);
    return ok;
}
#define ENC(t, s, flags, ...)                                                                      \
    do {                                                                                           \
        static const int32_t want_[] = { __VA_ARGS__ };                                            \
        CHECK(encode_eq(t, s, flags, want_, sizeof want_ / sizeof want_[0]));                      \
    } while (0)

/* ---------------------------------------------------------------- golden */

static void golden(struct tok *t, const char *idsfile)
{
    struct buf meta = { 0 }, text = { 0 }, ids = { 0 };
    REQUIRE(fs_read_file(GOLDEN "golden.json", 1 << 16, &meta) == 0);
    char hex[65];
    sha256_hex(real_json.p, real_json.len, hex);
    if (!strstr(meta.p, hex)) {
        buf_free(&meta);
        SKIP("%s is not the file the golden was made with", REAL_TOK);
    }
    REQUIRE(fs_read_file(GOLDEN "golden.txt", 1 << 24, &text) == 0);
    REQUIRE(fs_read_file(idsfile, 1 << 24, &ids) == 0);
    struct tok_ids got = { 0 };
    double t0 = time_s();
    CHECK(tok_encode(t, text.p, text.len, 0, &got) == 0);
    double dt = time_s() - t0;
    size_t n = ids.len / 4, first = (size_t)-1;
    for (size_t i = 0; i < n && i < got.n; i++) {
        int32_t w =
            (int32_t)((uint32_t)(uint8_t)ids.p[4 * i] | (uint32_t)(uint8_t)ids.p[4 * i + 1] << 8 |
                      (uint32_t)(uint8_t)ids.p[4 * i + 2] << 16 |
                      (uint32_t)(uint8_t)ids.p[4 * i + 3] << 24);
        if (got.v[i] != w) {
            first = i;
            printf("    first difference at id %zu: %d, HF %d\n", i, got.v[i], w);
            break;
        }
    }
    CHECKF(got.n == n && first == (size_t)-1, "%zu ids, HF %zu", got.n, n);
    printf("# %s: %zu bytes, %zu ids, %.1f MB/s\n", idsfile, text.len, got.n,
           (double)text.len / 1e6 / dt);
    /* and back: the golden text is NFC already except where tokens change it,
     * so compare with a second encode of the decode instead */
    struct buf back = { 0 };
    CHECK(tok_decode(t, got.v, got.n, 0, &back) == 0);
    struct tok_ids again = { 0 };
    CHECK(tok_encode(t, back.p, back.len, 0, &again) == 0);
    CHECK(again.n == got.n && !memcmp(again.v, got.v, got.n * sizeof *got.v));
    tok_ids_free(&again);
    buf_free(&back);
    tok_ids_free(&got);
    buf_free(&meta);
    buf_free(&text);
    buf_free(&ids);
}

static void t_golden_qwen3(void)
{
    NEED_REAL(t);
    golden(t, GOLDEN "golden-qwen3.ids");
}

/* The Qwen3.6 pre-tokenizer regex adds \p{M}; the variant is made from the
 * Qwen3 file by the same textual replacement as tests/ref/tok_variants.py. */
static char *qwen36_json(size_t *n)
{
    static const char *from[2] = { "\\\\p{L}+", "[^\\\\s\\\\p{L}\\\\p{N}]" };
    static const char *to[2] = { "[\\\\p{L}\\\\p{M}]+", "[^\\\\s\\\\p{L}\\\\p{M}\\\\p{N}]" };
    struct buf b = { 0 };
    const char *s = real_json.p;
    size_t len = real_json.len;
    for (int k = 0; k < 2; k++) {
        const char *hit = memmem(s, len, from[k], strlen(from[k]));
        if (!hit) {
            buf_free(&b);
            return NULL;
        }
        buf_append(&b, s, (size_t)(hit - s));
        buf_puts(&b, to[k]);
        len -= (size_t)(hit - s) + strlen(from[k]);
        s = hit + strlen(from[k]);
    }
    buf_append(&b, s, len);
    *n = b.len;
    return buf_detach(&b);
}

static void t_golden_qwen36_regex(void)
{
    NEED_REAL(t);
    (void)t;
    size_t n;
    char *j = qwen36_json(&n);
    REQUIRE(j);
    struct tok *t36;
    REQUIRE(tok_load(&t36, j, n, "qwen36-variant") == 0);
    golden(t36, GOLDEN "golden-qwen36.ids");
    tok_close(t36);
    free(j);
}

/* ids from HF tokenizers 0.23.3 for the Qwen3 tokenizer */
static void t_vectors(void)
{
    NEED_REAL(t);
    ENC(t, "<|im_start|>", 0, 151644);
    ENC(t, "<|im_start|>", TOK_NO_ADDED, 27, 91, 318, 4906, 91, 29);
    ENC(t, "transformers", 0, 4701, 388);
    ENC(t, "人工智能", 0, 104455);
    ENC(t, "สวัสดีครับ ผมชื่ออเล็กซ์", 0, 143126, 23271, 125136, 28319, 123886, 83546, 130131, 48120,
        64684, 130736, 123964, 126797, 123885, 55770);
    ENC(t, "Hello   world\n\n\n  x", 0, 9707, 256, 1879, 1406, 220, 856);
    ENC(t, "e\xcc\x81 caf\xc3\xa9", 0, 963, 51950); /* NFC: e + U+0301 is é */
    ENC(t, "<think>\nhi</think>", 0, 151667, 198, 6023, 151668);
    ENC(t,
        "\xc2\x85"
        "a\xc2\xa0"
        "b",
        0, 126, 227, 64, 4102, 65); /* U+0085 is \s, as in Oniguruma */
    CHECK_INT(tok_find(t, "<|im_end|>", 10), 151645);
    CHECK(tok_is_special(t, 151645));
    CHECK(!tok_is_special(t, 151667)); /* <think> is added but not special */
    struct tok_ids ids = { 0 };
    CHECK(tok_encode(t, "", 0, 0, &ids) == 0 && ids.n == 0);
    CHECK(tok_encode(t, "ok\xff", 3, 0, &ids) == ERR_INVAL);
    CHECK(strstr(err_msg(), "invalid UTF-8 at byte 2") != NULL);
    CHECK(ids.n == 0);
    tok_ids_free(&ids);
}

/* ------------------------------------------------------------- decoding */

static int32_t byte_tok(struct tok *t, int b)
{
    char c = (char)b;
    return tok_find(t, &c, 1);
}

static void t_lossy_and_stream(void)
{
    NEED_REAL(t);
    int32_t e4 = byte_tok(t, 0xe4), b8 = byte_tok(t, 0xb8), ad = byte_tok(t, 0xad),
            a = byte_tok(t, 'a'), ff = byte_tok(t, 0xff);
    REQUIRE(e4 >= 0 && b8 >= 0 && ad >= 0 && a >= 0 && ff >= 0);
    struct buf out = { 0 };
    int32_t s1[] = { e4, b8, ad };
    CHECK(tok_decode(t, s1, 3, 0, &out) == 0);
    CHECK_STR(out.p, "中");
    buf_reset(&out);
    int32_t s2[] = { e4, b8, a, ff, e4 }; /* maximal subparts: E4 B8 | a | FF | E4 */
    CHECK(tok_decode(t, s2, 5, 0, &out) == 0);
    CHECK_STR(out.p, "\xef\xbf\xbd"
                     "a\xef\xbf\xbd\xef\xbf\xbd");
    buf_reset(&out);

    struct tok_stream st;
    tok_stream_init(&st);
    CHECK(tok_stream_feed(t, &st, e4, 0, &out) == 0 && out.len == 0);
    CHECK(tok_stream_feed(t, &st, b8, 0, &out) == 0 && out.len == 0);
    CHECK(tok_stream_feed(t, &st, ad, 0, &out) == 0);
    CHECK_STR(out.p, "中");
    CHECK(tok_stream_feed(t, &st, e4, 0, &out) == 0);
    CHECK(tok_stream_flush(&st, &out) == 0);
    CHECK_STR(out.p, "中\xef\xbf\xbd");
    CHECK(tok_stream_feed(t, &st, -5, 0, &out) == ERR_NOTFOUND);
    CHECK(tok_decode(t, (int32_t[]){ 1 << 30 }, 1, 0, &out) < 0);
    buf_reset(&out);
    int32_t sp[] = { 151644, a, 151667 };
    CHECK(tok_decode(t, sp, 3, TOK_SKIP_SPECIAL, &out) == 0);
    CHECK_STR(out.p, "a<think>");
    buf_free(&out);
}

/* Random id sequences (biased to byte tokens so characters get split):
 * the streaming output, chunk by chunk, is valid UTF-8 and adds up to the
 * one-shot decode. */
static void t_stream_random(void)
{
    NEED_REAL(t);
    struct th_rng r = { th_seed() };
    int32_t bytes[256];
    for (int b = 0; b < 256; b++)
        bytes[b] = byte_tok(t, b);
    for (int round = 0; round < 200; round++) {
        int32_t ids[64];
        int n = 1 + (int)(th_next(&r) % 64);
        for (int i = 0; i < n; i++) {
            uint64_t x = th_next(&r);
            ids[i] = (x & 3) ? bytes[(x >> 8) & 0xff] : (int32_t)((x >> 8) % 151669);
            if (ids[i] < 0)
                ids[i] = 0;
        }
        struct buf one = { 0 }, streamed = { 0 };
        CHECK(tok_decode(t, ids, (size_t)n, 0, &one) == 0);
        struct tok_stream st;
        tok_stream_init(&st);
        int chunks_ok = 1;
        for (int i = 0; i < n; i++) {
            size_t before = streamed.len;
            CHECK(tok_stream_feed(t, &st, ids[i], 0, &streamed) == 0);
            if (!utf8_valid(streamed.p + before, streamed.len - before, NULL))
                chunks_ok = 0;
        }
        CHECK(tok_stream_flush(&st, &streamed) == 0);
        CHECK(chunks_ok);
        CHECK(one.len == streamed.len && !memcmp(one.p, streamed.p, one.len));
        CHECK(utf8_valid(one.p, one.len, NULL));
        buf_free(&one);
        buf_free(&streamed);
        if (th_cur_failed) {
            printf("    round %d\n", round);
            return;
        }
    }
}

/* ------------------------------------------------- small tokenizers */

/* GPT-2 byte -> code point, to write byte-level vocabularies by hand */
static void put_byte(struct buf *b, int c)
{
    int n = 0, cp = -1;
    for (int x = 0; x < 256; x++) {
        int keep = (x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || x >= 0xae;
        int u = keep ? x : 256 + n++;
        if (x == c)
            cp = u;
    }
    char u8[4];
    int l = utf8_encode((uint32_t)cp, u8);
    if (cp == '"' || cp == '\\')
        buf_putc(b, '\\');
    buf_append(b, u8, (size_t)l);
}

/* A tokenizer with all 256 bytes (ids 0..255, less the ones in `missing`),
 * extra tokens and merges given as JSON fragments. */
static char *small_json(const char *missing, const char *extra_vocab, const char *merges,
                        const char *model_extra, const char *added, const char *normalizer)
{
    struct buf b = { 0 };
    buf_printf(&b, "{\"version\": \"1.0\", \"added_tokens\": [%s], \"normalizer\": %s,\n", added,
               normalizer);
    buf_puts(&b,
             "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": "
             "\"Split\", \"pattern\": {\"Regex\": \" ?\\\\p{L}+|\\\\s+|.\"}, \"behavior\": "
             "\"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": "
             "false, \"use_regex\": false}]},\n");
    buf_puts(&b, "\"decoder\": {\"type\": \"ByteLevel\"},\n\"model\": {\"type\": \"BPE\", ");
    buf_puts(&b, model_extra);
    buf_puts(&b, "\"vocab\": {");
    for (int c = 0, first = 1; c < 256; c++) {
        if (missing && strchr(missing, c) && c)
            continue;
        buf_puts(&b, first ? "\"" : ", \"");
        first = 0;
        put_byte(&b, c);
        buf_printf(&b, "\": %d", c);
    }
    buf_printf(&b, "%s%s}, \"merges\": [%s]}}", extra_vocab[0] ? ", " : "", extra_vocab, merges);
    return buf_detach(&b);
}

static void t_small_bpe(void)
{
    /* string-form merges; ranks decide: "b c" (rank 0) before "a b" (rank 1) */
    char *j = small_json(NULL, "\"bc\": 300, \"ab\": 301, \"abc\": 302, \"Ġa\": 303",
                         "\"b c\", \"a b\", \"a bc\", \"Ġ a\"", "", "", "null");
    struct tok *t;
    REQUIRE(tok_load(&t, j, strlen(j), "small") == 0);
    ENC(t, "abc", 0, 302); /* b+c, then a+bc */
    ENC(t, "ab", 0, 301);
    ENC(t, "aab", 0, 'a', 301);
    ENC(t, "bcbc", 0, 300, 300);
    ENC(t, " abc", 0, ' ', 302); /* b+c (rank 0), a+bc (rank 2) before Ġ+a (rank 3) */
    ENC(t, "aaaa", 0, 'a', 'a', 'a', 'a');
    tok_close(t);
    free(j);

    /* "merges" before "vocab" inside "model" (key order is free in JSON), and
     * more of the file after the model object */
    static const char mv[] =
        "{\"model\": {\"type\": \"BPE\", \"merges\": [[\"a\", \"b\"]], "
        "\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"dropout\": null}, "
        "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
        "\"use_regex\": false}, \"decoder\": {\"type\": \"ByteLevel\"}, \"added_tokens\": []}";
    REQUIRE(tok_load(&t, mv, strlen(mv), "merges-first") == 0);
    ENC(t, "ab", 1, 2);
    ENC(t, "aba", 1, 2, 0);
    tok_close(t);

    /* pair-form merges and equal pairs: leftmost first ("aaa" -> aa a) */
    j = small_json(NULL, "\"aa\": 300", "[\"a\", \"a\"]", "", "", "null");
    REQUIRE(tok_load(&t, j, strlen(j), "small") == 0);
    ENC(t, "aaa", 0, 300, 'a');
    ENC(t, "aaaa", 0, 300, 300);
    tok_close(t);
    free(j);

    /* ignore_merges: a word in the vocabulary is taken whole */
    j = small_json(NULL, "\"ab\": 300, \"abc\": 301", "\"a b\"", "\"ignore_merges\": true, ", "",
                   "null");
    REQUIRE(tok_load(&t, j, strlen(j), "small") == 0);
    ENC(t, "abc", 0, 301);
    ENC(t, "abd", 0, 300, 'd');
    tok_close(t);
    free(j);

    /* bytes missing from the vocabulary: dropped without an unk token,
     * fused into one unk with fuse_unk */
    j = small_json("xy", "\"<unk>\": 300", "", "\"unk_token\": \"<unk>\", \"fuse_unk\": true, ", "",
                   "null");
    REQUIRE(tok_load(&t, j, strlen(j), "small") == 0);
    ENC(t, "axyb", 0, 'a', 300, 'b');
    tok_close(t);
    free(j);
    j = small_json("xy", "", "", "", "", "null");
    REQUIRE(tok_load(&t, j, strlen(j), "small") == 0);
    ENC(t, "axyb", 0, 'a', 'b');
    tok_close(t);
    free(j);
}

/* More merges than vocabulary entries: the merge table, sized from the
 * vocabulary, has to grow while the merges are read. The vocabulary has
 * "a" x k (k = 2..40, id 300 + k) and every pair of them that makes one of
 * those: 780 merges for 295 entries. Some parts are written with escapes,
 * which the loader decodes instead of reading them in place. */
static void t_many_merges(void)
{
    enum { N = 40 };
    struct buf v = { 0 }, m = { 0 };
    for (int k = 2; k <= N; k++) {
        buf_printf(&v, "%s\"", k > 2 ? ", " : "");
        for (int i = 0; i < k; i++)
            buf_putc(&v, 'a');
        buf_printf(&v, "\": %d", 300 + k);
    }
    int nm = 0;
    for (int sum = 2; sum <= N; sum++)
        for (int i = 1; i < sum; i++) {
            buf_puts(&m, nm++ ? ", \"" : "\"");
            for (int x = 0; x < i; x++)
                buf_puts(&m, (x == 0 && sum % 3 == 0) ? "\\u0061" : "a");
            buf_putc(&m, ' ');
            for (int x = 0; x < sum - i; x++)
                buf_putc(&m, 'a');
            buf_putc(&m, '"');
        }
    CHECK(nm == N * (N - 1) / 2);
    char *j = small_json(NULL, v.p, m.p, "", "", "null");
    struct tok *t;
    REQUIRE(tok_load(&t, j, strlen(j), "small") == 0);
    char word[N + 1];
    for (int k = 2; k <= N; k++) {
        memset(word, 'a', (size_t)k);
        word[k] = 0;
        struct tok_ids ids = { 0 };
        CHECKF(tok_encode(t, word, (size_t)k, 0, &ids) == 0 && ids.n == 1 && ids.v[0] == 300 + k,
               "a x %d: %zu ids, first %d", k, ids.n, ids.n ? ids.v[0] : -1);
        tok_ids_free(&ids);
    }
    tok_close(t);
    free(j);
    buf_free(&v);
    buf_free(&m);
}

static void t_small_added(void)
{
    char *j = small_json(
        NULL, "\"ab\": 300", "\"a b\"", "",
        "{\"id\": 400, \"content\": \"<m>\", \"lstrip\": true, \"special\": true, \"normalized\": "
        "false},"
        "{\"id\": 401, \"content\": \"[S]\", \"rstrip\": true, \"normalized\": false},"
        "{\"id\": 402, \"content\": \"wd\", \"single_word\": true, \"normalized\": false},"
        "{\"id\": 403, \"content\": \"\xc3\xa9x\", \"normalized\": true},"
        "{\"id\": 404, \"content\": \"<m>z\", \"normalized\": false}",
        "{\"type\": \"NFC\"}");
    struct tok *t;
    REQUIRE(tok_load(&t, j, strlen(j), "small") == 0);
    /* HF numbers added tokens itself, from the vocabulary's size (257
     * entries here), whatever ids the file gives: 257..261 */
    ENC(t, "a  <m>b", 0, 'a', 257, 'b');       /* lstrip takes the spaces */
    ENC(t, "a [S]  b", 0, 'a', ' ', 258, 'b'); /* rstrip */
    ENC(t, "a wd b", 0, 'a', ' ', 259, ' ', 'b');
    ENC(t, "awd b", 0, 'a', 'w', 'd', ' ', 'b'); /* not a single word */
    ENC(t, "e\xcc\x81x", 0, 260);                /* normalized: matched after NFC */
    ENC(t, "<m>zz", 0, 261, 'z');                /* longest match */
    ENC(t, "<m>", TOK_NO_ADDED, '<', 'm', '>');
    struct buf out = { 0 };
    CHECK(tok_decode(t, (int32_t[]){ 300, 257, 259 }, 3, TOK_SKIP_SPECIAL, &out) == 0);
    CHECK_STR(out.p, "abwd");
    buf_free(&out);
    tok_close(t);
    free(j);
}

/* --------------------------------------------------------------- errors */

static void expect_load_error(const char *json, int code, const char *needle)
{
    struct tok *t = (struct tok *)1;
    int rc = tok_load(&t, json, strlen(json), "bad.json");
    CHECKF(rc == code && t == NULL, "rc %d (want %d) for %.60s", rc, code, json);
    CHECKF(strstr(err_msg(), needle) != NULL, "message '%s' lacks '%s'", err_msg(), needle);
}

static void t_errors(void)
{
    expect_load_error("", ERR_INVAL, "bad.json:1:1: expected '{'");
    expect_load_error("{\n  \"model\": {\"vocab\": {\"a\": 1,}}}", ERR_INVAL, "bad.json:2:");
    expect_load_error("{\"model\": {\"vocab\": {\"a\": \"x\"}}}", ERR_INVAL, "expected an integer");
    expect_load_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": {}}}", ERR_UNSUPPORTED,
                      "Unigram");
    expect_load_error("{\"model\": {\"type\": \"BPE\"}}", ERR_INVAL, "vocab is missing");
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 99999999999}}}", ERR_INVAL, "out of range");
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0}}} x", ERR_INVAL, "trailing");
    expect_load_error("{\"model\": {\"vocab\": {\"\xff\": 0}}}", ERR_INVAL, "invalid UTF-8");
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0, \"a\": 1}}}", ERR_INVAL, "repeats");
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0, \"b\": 0}}}", ERR_INVAL, "used twice");
    char *j = small_json(NULL, "", "\"a q\"", "", "", "null");
    expect_load_error(j, ERR_INVAL, "'aq' is not in the vocabulary");
    free(j);
    j = small_json(NULL, "", "\"a\"", "", "", "null");
    expect_load_error(j, ERR_INVAL, "merge without a space");
    free(j);
    j = small_json(NULL, "", "", "", "", "{\"type\": \"Lowercase\"}");
    expect_load_error(j, ERR_UNSUPPORTED, "Lowercase");
    free(j);
    expect_load_error("{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, "
                      "\"behavior\": \"Isolated\"}, \"model\": {\"vocab\": {}}}",
                      ERR_INVAL, "regex");
    /* deep nesting is refused, not a stack overflow */
    struct buf deep = { 0 };
    buf_puts(&deep, "{\"x\": ");
    for (int i = 0; i < 100000; i++)
        buf_putc(&deep, '[');
    expect_load_error(deep.p, ERR_INVAL, "nesting too deep");
    buf_free(&deep);
    struct tok *t;
    CHECK(tok_open(&t, "/nonexistent/tokenizer.json") == ERR_IO && t == NULL);
    tok_close(NULL);
}

/* ------------------------------------------------------------ linear time */

/* CPU time of this thread: wall time swings on a shared machine */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Encodes `unit` repeated to n bytes; returns the CPU seconds taken (or -1). */
static double encode_run(struct tok *t, const char *unit, size_t n, int *roundtrip_ok)
{
    struct buf s = { 0 }, back = { 0 };
    while (s.len < n)
        buf_puts(&s, unit);
    struct tok_ids ids = { 0 };
    double t0 = cpu_s();
    int rc = tok_encode(t, s.p, s.len, 0, &ids);
    double dt = cpu_s() - t0;
    *roundtrip_ok = rc == 0 && tok_decode(t, ids.v, ids.n, 0, &back) == 0 && back.len == s.len &&
                    !memcmp(back.p, s.p, s.len);
    tok_ids_free(&ids);
    buf_free(&s);
    buf_free(&back);
    return rc == 0 ? dt : -1;
}

/* One long word or whitespace run: 4x the input must not cost anything like
 * 16x the time (the BPE heap and the regex are linear or n log n). */
static void t_long_inputs(void)
{
    NEED_REAL(t);
    static const char *what[] = { "a", " ", "\n", "ab", "\xc3\xa9", "1", " \n" };
    static const char *name[] = { "a", "space", "newline", "ab", "\xc3\xa9", "1", "space newline" };
    for (size_t k = 0; k < sizeof what / sizeof what[0]; k++) {
        int ok1, ok4;
        double t1 = encode_run(t, what[k], 1u << 17, &ok1);
        double t4 = encode_run(t, what[k], 1u << 19, &ok4);
        CHECK(ok1 && ok4 && t1 >= 0 && t4 >= 0);
        CHECKF(t4 < 8 * t1 + 0.05 && t4 < 30, "%s: 128 KB in %.3f s, 512 KB in %.3f s", name[k], t1,
               t4);
        printf("# %s x 128 KB: %.3f s, x 512 KB: %.3f s\n", name[k], t1, t4);
    }
}

int main(void)
{
    TEST_RUN(t_vectors);
    TEST_RUN(t_golden_qwen3);
    TEST_RUN(t_golden_qwen36_regex);
    TEST_RUN(t_lossy_and_stream);
    TEST_RUN(t_stream_random);
    TEST_RUN(t_small_bpe);
    TEST_RUN(t_many_merges);
    TEST_RUN(t_small_added);
    TEST_RUN(t_errors);
    TEST_RUN(t_long_inputs);
    tok_close(real);
    buf_free(&real_json);
    TEST_END();
}
