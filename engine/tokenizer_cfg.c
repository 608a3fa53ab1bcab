/*
 * tokenizer_cfg.c - the small parts of tokenizer.json, read with cJSON: the
 * normalizer, the pre-tokenizer (Split regexes translated for PCRE2, then
 * ByteLevel) and the decoder. The vocabulary, merges and added tokens are in
 * tokenizer.c.
 */
#include "engine/tokenizer_impl.h"

#include "common/err.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

const char *tok__jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* boolean member with a default; -1 when present but not a boolean */
int tok__jbool(const cJSON *o, const char *k, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v)
        return def;
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    return cJSON_IsNull(v) ? def : -1;
}

int tok__parse_normalizer(struct tok *t, const cJSON *n)
{
    if (!n || cJSON_IsNull(n))
        return 0;
    const char *type = tok__jstr(n, "type");
    if (!type)
        return err_set(ERR_INVAL, "%s: normalizer: missing type", t->name);
    if (!strcmp(type, "NFC")) {
        t->nfc = 1;
        return 0;
    }
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *e;
        if (!cJSON_IsArray(arr))
            return err_set(ERR_INVAL, "%s: normalizer: Sequence without normalizers", t->name);
        cJSON_ArrayForEach(e, arr)
        {
            int rc = tok__parse_normalizer(t, e);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    return err_set(ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported (only NFC)", t->name,
                   type);
}

/* White_Space, which Oniguruma's \s (what HF's regexes run on) matches;
 * PCRE2's UCP \s leaves out U+0085, so the pattern gets this class instead. */
#define WS_CLASS                                                                                   \
    "\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"          \
    "\\x{205f}\\x{3000}"

/* Rewrites an Oniguruma pattern for PCRE2: \s, \S, \d, \w get Oniguruma's
 * Unicode meaning. Other syntax is common to both. */
static int translate_regex(struct tok *t, const char *src, struct buf *out)
{
    int in_class = 0, rc = 0;
    for (size_t i = 0; src[i] && rc == 0; i++) {
        char c = src[i];
        if (c == '\\' && src[i + 1]) {
            char d = src[++i];
            if (d == 's')
                rc = buf_puts(out, in_class ? WS_CLASS : "[" WS_CLASS "]");
            else if (d == 'S' && !in_class)
                rc = buf_puts(out, "[^" WS_CLASS "]");
            else if (d == 'd')
                rc = buf_puts(out, in_class ? "\\p{Nd}" : "\\p{Nd}");
            else if (d == 'w')
                rc = buf_puts(out, in_class ? "\\p{L}\\p{M}\\p{Nd}\\p{Pc}"
                                            : "[\\p{L}\\p{M}\\p{Nd}\\p{Pc}]");
            else if ((d == 'S' || d == 'D' || d == 'W') && in_class)
                return err_set(ERR_UNSUPPORTED, "%s: regex: \\%c inside a class is not supported",
                               t->name, d);
            else if (d == 'D' || d == 'W')
                rc = buf_puts(out, d == 'D' ? "\\P{Nd}" : "[^\\p{L}\\p{M}\\p{Nd}\\p{Pc}]");
            else {
                char e[2] = { '\\', d };
                rc = buf_append(out, e, 2);
            }
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = 1;
            rc = buf_putc(out, c);
            if (src[i + 1] == '^')
                rc = rc ? rc : buf_putc(out, src[++i]);
            if (src[i + 1] == ']')
                rc = rc ? rc : buf_putc(out, src[++i]);
            continue;
        }
        if (c == '[' && in_class && src[i + 1] == ':') {
            const char *end = strstr(src + i, ":]");
            if (end) {
                rc = buf_append(out, src + i, (size_t)(end + 2 - (src + i)));
                i = (size_t)(end + 1 - src);
                continue;
            }
        }
        if (c == ']' && in_class)
            in_class = 0;
        rc = buf_putc(out, c);
    }
    return rc;
}

static int add_split(struct tok *t, const char *pattern, int literal)
{
    if (t->nsplit >= TOK_MAX_SPLITS)
        return err_set(ERR_UNSUPPORTED, "%s: more than %d Split pre-tokenizers", t->name,
                       TOK_MAX_SPLITS);
    struct buf re = { 0 };
    int rc = literal ? buf_puts(&re, pattern) : translate_regex(t, pattern, &re);
    if (rc < 0 || (rc = buf_reserve(&re, 0)) < 0) {
        buf_free(&re);
        return rc;
    }
    int errcode;
    PCRE2_SIZE erroff;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)re.p, re.len, opts, &errcode, &erroff, NULL);
    buf_free(&re);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        return err_set(ERR_INVAL, "%s: pre_tokenizer regex: %s (at offset %zu)", t->name,
                       (const char *)msg, (size_t)erroff);
    }
    /* JIT is an optimisation: the interpreter gives the same matches */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    t->split[t->nsplit++] = code;
    return 0;
}

/* GPT-2's pattern, which ByteLevel applies itself when use_regex is true */
static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

int tok__parse_pretok(struct tok *t, const cJSON *p, int *have_bytelevel)
{
    const char *type = p ? tok__jstr(p, "type") : NULL;
    if (!type)
        return err_set(ERR_INVAL, "%s: pre_tokenizer: missing type", t->name);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *e;
        if (!cJSON_IsArray(arr))
            return err_set(ERR_INVAL, "%s: pre_tokenizer: Sequence without pretokenizers", t->name);
        cJSON_ArrayForEach(e, arr)
        {
            int rc = tok__parse_pretok(t, e, have_bytelevel);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *behavior = tok__jstr(p, "behavior");
        if (*have_bytelevel)
            return err_set(ERR_UNSUPPORTED, "%s: pre_tokenizer: Split after ByteLevel", t->name);
        if (!behavior || strcmp(behavior, "Isolated"))
            return err_set(ERR_UNSUPPORTED,
                           "%s: pre_tokenizer: Split behavior '%s' is not supported (only "
                           "Isolated)",
                           t->name, behavior ? behavior : "(missing)");
        if (tok__jbool(p, "invert", 0) != 0)
            return err_set(ERR_UNSUPPORTED, "%s: pre_tokenizer: inverted Split", t->name);
        const char *re = pat ? tok__jstr(pat, "Regex") : NULL,
                   *lit = pat ? tok__jstr(pat, "String") : NULL;
        if (!re && !lit)
            return err_set(ERR_INVAL, "%s: pre_tokenizer: Split without a pattern", t->name);
        return add_split(t, re ? re : lit, !re);
    }
    if (!strcmp(type, "ByteLevel")) {
        if (tok__jbool(p, "add_prefix_space", 1) != 0)
            return err_set(ERR_UNSUPPORTED, "%s: pre_tokenizer: ByteLevel add_prefix_space",
                           t->name);
        int use_regex = tok__jbool(p, "use_regex", 1);
        if (use_regex < 0)
            return err_set(ERR_INVAL, "%s: pre_tokenizer: use_regex is not a boolean", t->name);
        if (*have_bytelevel)
            return err_set(ERR_UNSUPPORTED, "%s: pre_tokenizer: two ByteLevel steps", t->name);
        *have_bytelevel = 1;
        return use_regex ? add_split(t, gpt2_regex, 0) : 0;
    }
    return err_set(ERR_UNSUPPORTED, "%s: pre_tokenizer '%s' is not supported", t->name, type);
}

int tok__parse_decoder(struct tok *t, const cJSON *d)
{
    const char *type = d ? tok__jstr(d, "type") : NULL;
    if (type && !strcmp(type, "ByteLevel"))
        return 0;
    return err_set(ERR_UNSUPPORTED, "%s: decoder '%s' is not supported (only ByteLevel)", t->name,
                   type ? type : "null");
}

/* The id HF gives an added token. HF does not take the file's id: its
 * AddedVocabulary reuses the id of an earlier added token or of a model
 * token with the same text, else takes the next free one (the vocabulary
 * size for the first). For files HF wrote these agree with "id". Returns
 * -1 for a repeated content (HF keeps the first). */
