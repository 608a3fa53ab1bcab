/*
 * tokenizer.c - loading a Hugging Face tokenizer.json and id lookups (the
 * encoder is in tokenizer_bpe.c, the decoders in tokenizer_dec.c).
 *
 * The file is ~11 MB for a 248k vocabulary, and cJSON would build a million
 * nodes for it, so the big parts (model.vocab, model.merges) are read by a
 * small scanner of our own straight from the text; the small parts
 * (added_tokens, normalizer, pre_tokenizer, decoder) are cut out as spans and
 * handed to cJSON. Every string in the vocabulary is GPT-2 "byte-level"
 * text: each byte is written as one printable code point (bytes 0x21-0x7e,
 * 0xa1-0xac, 0xae-0xff as themselves, the other 68 as U+0100..U+0143). We
 * store the bytes, so the encoder works on raw bytes and never converts.
 */
#include "engine/tokenizer_impl.h"

#include "common/ckd.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/text.h"

#include <cjson/cJSON.h>

#include <sys/mman.h>

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* the largest tokenizer.json we read (the Qwen3.6 one is ~12 MB) */
#define TOK_MAX_FILE (256u << 20)
#define JS_MAX_DEPTH 64

/* ---------------------------------------------------------------- byte map */

/* byte -> code point, and code point (< 0x144) -> byte or -1 */
static uint16_t b2u[256];
static int16_t u2b[0x144];
/* 1 for the bytes a JSON string continues with unchanged (not '"', '\\' or a
 * control character) */
static uint8_t str_plain[256];

static void byte_map_init(void)
{
    static int done;
    if (done)
        return;
    int n = 0;
    for (int i = 0; i < 0x144; i++)
        u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
        b2u[b] = (uint16_t)(keep ? b : 256 + n++);
        u2b[b2u[b]] = (int16_t)b;
        str_plain[b] = b >= 0x20 && b != '"' && b != '\\';
    }
    done = 1;
}

/* Converts byte-level text s[0..n) (valid UTF-8) to bytes at o (room for n
 * bytes: the bytes are never more than the characters' UTF-8). Returns the
 * byte count, or -1 when a character is not in the map. */
static inline long unmap_to(const char *s, size_t n, uint8_t *o)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        if (u[i] < 0x80) {
            cp = u[i++];
        } else if ((u[i] & 0xe0) == 0xc0 && i + 1 < n) {
            cp = (uint32_t)(u[i] & 0x1f) << 6 | (u[i + 1] & 0x3f);
            i += 2;
        } else {
            return -1; /* 3- and 4-byte characters are never in the map */
        }
        if (cp >= 0x144 || u2b[cp] < 0)
            return -1;
        o[k++] = (uint8_t)u2b[cp];
    }
    return (long)k;
}

/* Converts byte-level text s[0..n) (valid UTF-8) to bytes appended to out.
 * Returns 1 when every character was in the map, 0 when one was not: then
 * out holds s itself, as HF's ByteLevel decoder falls back to the token's
 * UTF-8 when it cannot map it. */
static int unmap_bytes(const char *s, size_t n, struct buf *out)
{
    if (out->cap - out->len <= n && buf_reserve(out, n) < 0)
        return -1;
    long k = unmap_to(s, n, (uint8_t *)out->p + out->len);
    if (k < 0) {
        memcpy(out->p + out->len, s, n);
        out->len += n;
        out->p[out->len] = 0;
        return 0;
    }
    out->len += (size_t)k;
    out->p[out->len] = 0;
    return 1;
}

/* memcmp(a, b, n) == 0 for the short strings of a vocabulary, without a
 * library call */
static inline int bytes_eq(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (; n >= 8; n -= 8, x += 8, y += 8) {
        uint64_t u, v;
        memcpy(&u, x, 8);
        memcpy(&v, y, 8);
        if (u != v)
            return 0;
    }
    for (; n; n--)
        if (*x++ != *y++)
            return 0;
    return 1;
}

/* utf8_valid with an ASCII fast path: the file is 11 MB, mostly ASCII with
 * a two-byte character every few bytes, so a word with a high bit set skips
 * its ASCII prefix at once (little-endian: the lowest set bit is the first
 * byte) */
static int valid_utf8(const char *s, size_t n, size_t *bad)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, u + i, 8);
            uint64_t hi = w & 0x8080808080808080ull;
            if (!hi) {
                i += 8;
                continue;
            }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            i += (size_t)__builtin_ctzll(hi) >> 3;
#endif
        }
        unsigned char c = u[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        /* two-byte characters (all of the byte map's) inline */
        if (c >= 0xc2 && c <= 0xdf && i + 1 < n && (u[i + 1] & 0xc0) == 0x80) {
            i += 2;
            continue;
        }
        uint32_t cp;
        int l = utf8_decode(s + i, n - i, &cp);
        if (l <= 0) {
            *bad = i;
            return 0;
        }
        i += (size_t)l;
    }
    return 1;
}

/* ------------------------------------------------------------- the scanner */

struct js {
    const char *s, *p, *e;
    const char *name;
};

static int js_fail(const struct js *j, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int js_fail(const struct js *j, const char *at, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line, col;
    if (at > j->e)
        at = j->e;
    text_line_col(j->s, (size_t)(at - j->s), &line, &col);
    return err_set(ERR_INVAL, "%s:%d:%d: %s", j->name, line, col, msg);
}

static void js_ws(struct js *j)
{
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static int js_expect(struct js *j, char c)
{
    js_ws(j);
    if (j->p >= j->e || *j->p != c)
        return js_fail(j, j->p, "expected '%c'", c);
    j->p++;
    return 0;
}

static int js_hex4(struct js *j, uint32_t *v)
{
    if (j->e - j->p < 4)
        return js_fail(j, j->p, "truncated \\u escape");
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_digit((unsigned char)j->p[i]);
        if (h < 0)
            return js_fail(j, j->p, "bad \\u escape");
        x = x << 4 | (uint32_t)h;
    }
    j->p += 4;
    *v = x;
    return 0;
}

/* Reads a string into out (reset first). The file was validated as UTF-8. */
static int js_str(struct js *j, struct buf *out)
{
    js_ws(j);
    buf_reset(out);
    if (j->p >= j->e || *j->p != '"')
        return js_fail(j, j->p, "expected a string");
    const char *q = ++j->p;
    for (;;) {
        while (q < j->e && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
            q++;
        if (q >= j->e)
            return js_fail(j, q, "unterminated string");
        if (q > j->p && buf_append(out, j->p, (size_t)(q - j->p)) < 0)
            return ERR_NOMEM;
        j->p = q;
        if (*q == '"') {
            j->p++;
            return buf_reserve(out, 0);
        }
        if ((unsigned char)*q < 0x20)
            return js_fail(j, q, "control character in string");
        /* escape */
        if (j->e - q < 2)
            return js_fail(j, q, "truncated escape");
        char c = q[1], lit = 0;
        j->p = q + 2;
        switch (c) {
        case '"': lit = '"'; break;
        case '\\': lit = '\\'; break;
        case '/': lit = '/'; break;
        case 'b': lit = '\b'; break;
        case 'f': lit = '\f'; break;
        case 'n': lit = '\n'; break;
        case 'r': lit = '\r'; break;
        case 't': lit = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            int rc = js_hex4(j, &cp);
            if (rc < 0)
                return rc;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return js_fail(j, q, "lone low surrogate");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (j->e - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
                    return js_fail(j, q, "lone high surrogate");
                j->p += 2;
                if ((rc = js_hex4(j, &lo)) < 0)
                    return rc;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return js_fail(j, q, "bad surrogate pair");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            char u[4];
            int l = utf8_encode(cp, u);
            if (l <= 0 || buf_append(out, u, (size_t)l) < 0)
                return l <= 0 ? js_fail(j, q, "bad \\u escape") : ERR_NOMEM;
            break;
        }
        default: return js_fail(j, q, "bad escape '\\%c'", c);
        }
        if (lit && buf_putc(out, lit) < 0)
            return ERR_NOMEM;
        q = j->p;
    }
}

/* The common case of a string with nothing to unescape: returns 1 with
 * [*sp, *sp + *sn) its text in the file and the scanner past it; 0 when it
 * has an escape or a control character, or is not a string (the scanner is
 * then on its opening quote, for js_str to read it or report the error). */
static inline int js_plain_str(struct js *j, const char **sp, size_t *sn)
{
    js_ws(j);
    if (j->p >= j->e || *j->p != '"')
        return 0;
    const char *a = j->p + 1, *q = a;
    while (q < j->e && str_plain[(unsigned char)*q])
        q++;
    if (q >= j->e || *q != '"')
        return 0;
    *sp = a;
    *sn = (size_t)(q - a);
    j->p = q + 1;
    return 1;
}

/* Reads a string: in place when it has nothing to unescape, else decoded
 * into tmp. [*sp, *sp + *sn) is the text, valid until tmp changes. */
static inline int js_str_ref(struct js *j, struct buf *tmp, const char **sp, size_t *sn)
{
    if (js_plain_str(j, sp, sn))
        return 0;
    int rc = js_str(j, tmp);
    if (rc < 0)
        return rc;
    *sp = tmp->p;
    *sn = tmp->len;
    return 0;
}

/* Skips any value; depth-limited so a hostile file cannot overflow the stack. */
static int js_skip(struct js *j, int depth)
{
    js_ws(j);
    if (j->p >= j->e)
        return js_fail(j, j->p, "expected a value");
    if (depth > JS_MAX_DEPTH)
        return js_fail(j, j->p, "nesting too deep");
    char c = *j->p;
    if (c == '"') {
        const char *q = j->p + 1;
        while (q < j->e && *q != '"') {
            if ((unsigned char)*q < 0x20)
                return js_fail(j, q, "control character in string");
            q += *q == '\\' ? 2 : 1;
        }
        if (q >= j->e)
            return js_fail(j, j->p, "unterminated string");
        j->p = q + 1;
        return 0;
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        js_ws(j);
        if (j->p < j->e && *j->p == close) {
            j->p++;
            return 0;
        }
        for (;;) {
            int rc;
            if (c == '{') {
                js_ws(j);
                if (j->p >= j->e || *j->p != '"')
                    return js_fail(j, j->p, "expected a key");
                if ((rc = js_skip(j, depth + 1)) < 0 || (rc = js_expect(j, ':')) < 0)
                    return rc;
            }
            if ((rc = js_skip(j, depth + 1)) < 0)
                return rc;
            js_ws(j);
            if (j->p < j->e && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->e && *j->p == close) {
                j->p++;
                return 0;
            }
            return js_fail(j, j->p, "expected ',' or '%c'", close);
        }
    }
    const char *q = j->p;
    while (q < j->e && (*q == '+' || *q == '-' || *q == '.' || (*q >= '0' && *q <= '9') ||
                        (*q >= 'a' && *q <= 'z') || *q == 'E'))
        q++;
    if (q == j->p)
        return js_fail(j, j->p, "unexpected character");
    j->p = q;
    return 0;
}

static int js_int(struct js *j, int64_t *v)
{
    js_ws(j);
    const char *q = j->p;
    int neg = q < j->e && *q == '-';
    if (neg)
        q++;
    int64_t x = 0;
    const char *d = q;
    while (q < j->e && *q >= '0' && *q <= '9') {
        if (ckd_mul_i64(&x, x, 10) || ckd_add_i64(&x, x, *q - '0'))
            return js_fail(j, j->p, "number too large");
        q++;
    }
    if (q == d || (q < j->e && (*q == '.' || *q == 'e' || *q == 'E')))
        return js_fail(j, j->p, "expected an integer");
    j->p = q;
    *v = neg ? -x : x;
    return 0;
}

/* Iterates an object's keys: call with first = 1; returns 1 with the key in
 * key and the scanner on the value, 0 at the end, or an error. */
static int js_next_key(struct js *j, int *first, struct buf *key)
{
    js_ws(j);
    if (*first) {
        *first = 0;
        if (j->p < j->e && *j->p == '}') {
            j->p++;
            return 0;
        }
    } else {
        if (j->p < j->e && *j->p == '}') {
            j->p++;
            return 0;
        }
        if (j->p >= j->e || *j->p != ',')
            return js_fail(j, j->p, "expected ',' or '}'");
        j->p++;
    }
    int rc = js_str(j, key);
    if (rc < 0 || (rc = js_expect(j, ':')) < 0)
        return rc;
    js_ws(j);
    return 1;
}

/* same for arrays: 1 with the scanner on the next element, 0 at the end */
static int js_next_elem(struct js *j, int *first)
{
    js_ws(j);
    if (j->p < j->e && *j->p == ']') {
        j->p++;
        return 0;
    }
    if (*first)
        *first = 0;
    else {
        if (j->p >= j->e || *j->p != ',')
            return js_fail(j, j->p, "expected ',' or ']'");
        j->p++;
        js_ws(j);
    }
    return 1;
}

static int js_is_null(struct js *j)
{
    js_ws(j);
    if (j->e - j->p >= 4 && !memcmp(j->p, "null", 4)) {
        j->p += 4;
        return 1;
    }
    return 0;
}

static int js_bool(struct js *j, int *v)
{
    js_ws(j);
    if (j->e - j->p >= 4 && !memcmp(j->p, "true", 4)) {
        j->p += 4;
        *v = 1;
        return 0;
    }
    if (j->e - j->p >= 5 && !memcmp(j->p, "false", 5)) {
        j->p += 5;
        *v = 0;
        return 0;
    }
    return js_fail(j, j->p, "expected true or false");
}

/* ---------------------------------------------------------------- building */

struct span {
    const char *p, *e; /* NULL when absent */
};

/* For the big load-time blocks (the two hash tables, 8 MB each for a 248k
 * vocabulary and written all over; the token arena and the vocab entries,
 * sized from the file): on 2 MB pages they cost a few page faults instead
 * of thousands, where transparent huge pages are enabled for madvise'd
 * memory. Freed with free(); may be realloc'd. */
static void *table_alloc(size_t n)
{
    const size_t huge = 2u << 20;
    if (n < 2 * huge)
        return malloc(n);
    size_t r = (n + huge - 1) & ~(huge - 1);
    void *p = aligned_alloc(huge, r);
    if (p)
        madvise(p, r, MADV_HUGEPAGE); /* only a hint: failure is harmless */
    return p;
}

/* Makes room for n more bytes in the token arena. */
static int arena_reserve(struct tok *t, size_t n)
{
    size_t need;
    if (ckd_add_sz(&need, t->nbytes, n) || need > UINT32_MAX)
        return err_set(ERR_NOMEM, "%s: token text exceeds 4 GB", t->name);
    if (need > t->capbytes) {
        size_t cap = t->capbytes ? t->capbytes * 2 : (1u << 20);
        while (cap < need)
            cap *= 2;
        /* the first one is sized from the file: huge pages when big */
        char *nb = t->bytes ? realloc(t->bytes, cap) : table_alloc(cap);
        if (!nb)
            return err_set(ERR_NOMEM, "out of memory");
        t->bytes = nb;
        t->capbytes = cap;
    }
    return 0;
}

static int arena_add(struct tok *t, const void *p, size_t n, uint32_t *off)
{
    int rc = arena_reserve(t, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(t->bytes + t->nbytes, p, n);
    *off = (uint32_t)t->nbytes;
    t->nbytes += n;
    return 0;
}

static uint32_t hash_bytes(const uint8_t *s, size_t n)
{
    /* a word at a time, then a final mix: token strings are short. The
     * last 1-7 bytes are read as two overlapping pieces (4-7 bytes) or as
     * the first, middle and last byte (1-3), which covers each of them
     * once the length is mixed in. */
    const uint64_t m = 0x9e3779b97f4a7c15ull;
    uint64_t h = (uint64_t)n * m;
    for (; n >= 8; n -= 8, s += 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * m;
        h ^= h >> 29;
    }
    if (n) {
        uint64_t w;
        if (n >= 4) {
            uint32_t x, y;
            memcpy(&x, s, 4);
            memcpy(&y, s + n - 4, 4);
            w = (uint64_t)x << 32 | y;
        } else {
            w = (uint64_t)s[0] << 16 | (uint64_t)s[n >> 1] << 8 | s[n - 1];
        }
        h = (h ^ w) * m;
    }
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return (uint32_t)h;
}

static int32_t vocab_get_h(const struct tok *t, const uint8_t *s, size_t n, uint32_t h)
{
    for (uint32_t i = h & t->vmask;; i = (i + 1) & t->vmask) {
        const struct tok_vslot *v = &t->vh[i];
        if (v->id < 0)
            return -1;
        if (n <= TOK_VSLOT_INLINE) {
            if (v->len == n && bytes_eq(v->b, s, n))
                return v->id;
        } else if (v->len == 255 && !memcmp(v->b, &h, sizeof h)) {
            const struct tok_span *sp = &t->model[v->id];
            if (sp->len == n && bytes_eq(t->bytes + sp->off, s, n))
                return v->id;
        }
    }
}

int32_t tok__vocab_get(const struct tok *t, const uint8_t *s, size_t n)
{
    if (!t->vh)
        return -1;
    return vocab_get_h(t, s, n, hash_bytes(s, n));
}

/* one vocab entry before the id tables exist */
struct ventry {
    int32_t id;
    uint32_t off, len;
    int raw;
};

static int parse_vocab(struct tok *t, struct js *j, struct ventry **out, size_t *nout,
                       int32_t *max_id)
{
    struct buf key = { 0 };
    struct ventry *v = NULL;
    size_t n = 0, cap = 0;
    int rc = js_expect(j, '{'), first = 1;
    /* the tokens' bytes are never more than the vocab's text: one arena
     * sized from the rest of the file, written in place */
    size_t rest = (size_t)(j->e - j->p);
    if (rc == 0)
        rc = arena_reserve(t, rest);
    /* and the entries: one takes at least 5 characters ("":0,) */
    if (rc == 0) {
        cap = rest / 5 + 16 < (1u << 20) ? rest / 5 + 16 : (1u << 20);
        if (!(v = table_alloc(cap * sizeof *v)))
            rc = err_set(ERR_NOMEM, "out of memory");
    }
    while (rc == 0) {
        /* js_next_key, with the key read in place when it has no escape */
        js_ws(j);
        if (j->p < j->e && *j->p == '}') {
            j->p++;
            break;
        }
        if (!first) {
            if (j->p >= j->e || *j->p != ',') {
                rc = js_fail(j, j->p, "expected ',' or '}'");
                break;
            }
            j->p++;
        }
        first = 0;
        const char *ks;
        size_t kn;
        if (!js_plain_str(j, &ks, &kn)) {
            if ((rc = js_str(j, &key)) < 0)
                break;
            ks = key.p;
            kn = key.len;
        }
        if ((rc = js_expect(j, ':')) < 0)
            break;
        js_ws(j);
        const char *at = j->p;
        int64_t id = 0;
        if ((rc = js_int(j, &id)) < 0)
            break;
        if (id < 0 || id >= TOK_MAX_ID) {
            rc = js_fail(j, at, "token id %lld out of range [0, %d)", (long long)id, TOK_MAX_ID);
            break;
        }
        if ((rc = arena_reserve(t, kn)) < 0)
            break;
        char *dst = t->bytes + t->nbytes;
        long blen = unmap_to(ks, kn, (uint8_t *)dst);
        int mapped = blen >= 0;
        if (!mapped) {
            memcpy(dst, ks, kn);
            blen = (long)kn;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 4096;
            struct ventry *nv = realloc(v, nc * sizeof *v);
            if (!nv) {
                rc = err_set(ERR_NOMEM, "out of memory");
                break;
            }
            v = nv;
            cap = nc;
        }
        struct ventry *e = &v[n++];
        e->id = (int32_t)id;
        e->off = (uint32_t)t->nbytes;
        e->len = (uint32_t)blen;
        e->raw = !mapped;
        t->nbytes += (size_t)blen;
        if (e->id > *max_id)
            *max_id = e->id;
    }
    buf_free(&key);
    if (rc < 0) {
        free(v);
        return rc;
    }
    *out = v;
    *nout = n;
    return 0;
}

/* The model's id -> bytes table (sized by the largest vocab id; build_ids
 * extends it for added tokens) and per-id flags. */
static int build_model_table(struct tok *t, const struct ventry *v, size_t nv, int32_t max_id)
{
    size_t n = (size_t)max_id + 1;
    t->nids = max_id + 1;
    t->flags = calloc(n ? n : 1, 1);
    t->model = calloc(n ? n : 1, sizeof *t->model);
    if (!t->flags || !t->model)
        return err_set(ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < nv; k++) {
        int32_t id = v[k].id;
        if (t->flags[id] & TOKF_MODEL)
            return err_set(ERR_INVAL, "%s: model.vocab: id %d is used twice", t->name, id);
        t->flags[id] = (uint8_t)(TOKF_MODEL | (v[k].raw ? TOKF_RAW : 0));
        t->model[id].off = v[k].off;
        t->model[id].len = v[k].len;
    }
    return 0;
}

static uint32_t pow2_at_least(size_t n)
{
    uint32_t c = 16;
    while (c < n && c < (1u << 30))
        c <<= 1;
    return c;
}

static int build_vocab_hash(struct tok *t, const struct ventry *v, size_t n)
{
    t->vmask = pow2_at_least(n + n / 2) - 1;
    size_t slots = (size_t)t->vmask + 1;
    t->vh = table_alloc(slots * sizeof *t->vh);
    if (!t->vh)
        return err_set(ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < slots; i++)
        t->vh[i].id = -1;
    /* hashes first, so each insert's slot can be prefetched ahead of it */
    uint32_t *hs = malloc((n ? n : 1) * sizeof *hs);
    if (!hs)
        return err_set(ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < n; k++)
        hs[k] = hash_bytes((const uint8_t *)t->bytes + v[k].off, v[k].len);
    for (size_t k = 0; k < n; k++) {
        if (k + 16 < n)
            __builtin_prefetch(&t->vh[hs[k + 16] & t->vmask], 1);
        if (v[k].raw)
            continue;
        const uint8_t *s = (const uint8_t *)t->bytes + v[k].off;
        uint32_t len = v[k].len, h = hs[k], i = h & t->vmask;
        for (; t->vh[i].id >= 0; i = (i + 1) & t->vmask) {
            const struct tok_vslot *o = &t->vh[i];
            const struct tok_span *sp = &t->model[o->id];
            if ((o->len == len || (o->len == 255 && len > TOK_VSLOT_INLINE)) && sp->len == len &&
                bytes_eq(t->bytes + sp->off, s, len)) {
                int dup = o->id;
                free(hs);
                return err_set(ERR_INVAL, "%s: model.vocab: token %d repeats token %d", t->name,
                               v[k].id, dup);
            }
        }
        struct tok_vslot *e = &t->vh[i];
        e->id = v[k].id;
        if (v[k].len <= TOK_VSLOT_INLINE) {
            e->len = (uint8_t)v[k].len;
            memcpy(e->b, s, v[k].len);
        } else {
            e->len = 255;
            memcpy(e->b, &h, sizeof h);
        }
    }
    free(hs);
    return 0;
}

static uint32_t merge_slot(const struct tok *t, uint64_t key)
{
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 32) & t->mmask;
}

/* Puts (key -> rank, id) in the merge table; returns 1 when the pair is
 * new, 0 when it replaced an earlier one. */
static int merge_put(struct tok *t, uint64_t key, uint32_t rank, int32_t id)
{
    for (uint32_t i = merge_slot(t, key);; i = (i + 1) & t->mmask) {
        struct tok_merge *m = &t->mh[i];
        if (m->key == UINT64_MAX || m->key == key) {
            /* a repeated pair keeps the last rank, as HF's HashMap collect does */
            int fresh = m->key == UINT64_MAX;
            m->key = key;
            m->rank = rank;
            m->id = id;
            return fresh;
        }
    }
}

/* Makes an empty merge table with 2^k slots, 2^k >= 1.5 n + 16. */
static int merges_alloc(struct tok *t, size_t n)
{
    uint32_t slots = pow2_at_least(n + n / 2 + 16);
    struct tok_merge *mh = table_alloc((size_t)slots * sizeof *mh);
    if (!mh)
        return err_set(ERR_NOMEM, "out of memory");
    memset(mh, 0xff, (size_t)slots * sizeof *mh);
    t->mh = mh;
    t->mmask = slots - 1;
    return 0;
}

/* Doubles the merge table, for files with more merges than vocabulary
 * entries, which sized it. */
static int merges_grow(struct tok *t)
{
    struct tok_merge *old = t->mh;
    size_t oslots = (size_t)t->mmask + 1;
    if (oslots >= (1u << 30))
        return err_set(ERR_NOMEM, "%s: too many merges", t->name);
    int rc = merges_alloc(t, oslots); /* 2^k >= 1.5 oslots: twice the slots */
    if (rc < 0) {
        t->mh = old; /* tok_close frees it */
        return rc;
    }
    for (size_t i = 0; i < oslots; i++)
        if (old[i].key != UINT64_MAX)
            merge_put(t, old[i].key, old[i].rank, old[i].id);
    free(old);
    return 0;
}

/* Merges are read in batches: each part's bytes and hash first, with its
 * vocabulary slot prefetched, then the lookups, which would otherwise wait
 * on a cache miss each (two per merge, 250k merges). */
#define MERGE_BATCH 32

struct merge_pend {
    const char *at; /* for messages */
    uint32_t rank;
    uint32_t off[2], len[2], h[2]; /* parts' bytes in the batch buffer */
    int mapped;                    /* both parts are byte-level text */
};

struct merge_batch {
    struct merge_pend p[MERGE_BATCH];
    int n;
    struct buf bytes; /* the parts' bytes (or raw text when unmapped) */
    size_t nused;     /* distinct pairs in t->mh */
    int32_t last;     /* the previous merge's result id */
};

/* Adds one merge's parts (text as in the file) to the batch. */
static int batch_add(struct tok *t, struct merge_batch *mb, const char *at, uint32_t rank,
                     const char *a, size_t na, const char *b, size_t nb)
{
    struct merge_pend *p = &mb->p[mb->n++];
    p->at = at;
    p->rank = rank;
    p->mapped = 1;
    const char *part[2] = { a, b };
    size_t plen[2] = { na, nb };
    for (int k = 0; k < 2; k++) {
        size_t start = mb->bytes.len;
        int m = unmap_bytes(part[k], plen[k], &mb->bytes);
        if (m < 0)
            return err_set(ERR_NOMEM, "out of memory");
        if (!m)
            p->mapped = 0;
        p->off[k] = (uint32_t)start;
        p->len[k] = (uint32_t)(mb->bytes.len - start);
        p->h[k] = hash_bytes((const uint8_t *)mb->bytes.p + start, p->len[k]);
        if (t->vh)
            __builtin_prefetch(&t->vh[p->h[k] & t->vmask]);
    }
    return 0;
}

/* Resolves the batch's merges and puts them in the merge table, in order. */
static int batch_flush(struct tok *t, struct js *j, struct merge_batch *mb)
{
    struct tok_merge res[MERGE_BATCH];
    int nres = 0, rc = 0;
    for (int k = 0; k < mb->n && rc == 0; k++) {
        struct merge_pend *p = &mb->p[k];
        const char *pa = mb->bytes.p + p->off[0], *pb = mb->bytes.p + p->off[1];
        if (!p->mapped) {
            /* a part with characters outside the byte map can never be
             * formed by byte-level BPE: such a merge could never apply */
            continue;
        }
        int32_t ia = vocab_get_h(t, (const uint8_t *)pa, p->len[0], p->h[0]);
        int32_t ib = ia < 0 ? -1 : vocab_get_h(t, (const uint8_t *)pb, p->len[1], p->h[1]);
        if (ia < 0 || ib < 0) {
            /* name the part as the file writes it: re-read it from there */
            rc = js_fail(j, p->at, "merge %u: a part is not in the vocabulary", p->rank);
            break;
        }
        /* both parts were mapped, so batch_add wrote them one after the
         * other: the merged token's bytes are already there */
        /* BPE vocabularies are usually built merge by merge, so the result
         * is often the id after the previous one: try it first */
        int32_t id, g = mb->last + 1;
        const char *c = pa;
        size_t cl = (size_t)p->len[0] + p->len[1];
        if (g > 0 && g < t->nids && (t->flags[g] & (TOKF_MODEL | TOKF_RAW)) == TOKF_MODEL &&
            t->model[g].len == cl && bytes_eq(t->bytes + t->model[g].off, c, cl))
            id = g;
        else
            id = tok__vocab_get(t, (const uint8_t *)c, cl);
        if (id < 0) {
            rc =
                js_fail(j, p->at, "merge %u: '%.*s' is not in the vocabulary", p->rank, (int)cl, c);
            break;
        }
        res[nres++] =
            (struct tok_merge){ (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib, p->rank, id };
        mb->last = id;
    }
    /* then the inserts, in file order, into a table of several MB: their
     * slots are prefetched first */
    for (int k = 0; k < nres; k++)
        __builtin_prefetch(&t->mh[merge_slot(t, res[k].key)], 1);
    for (int k = 0; k < nres && rc == 0; k++) {
        size_t slots = (size_t)t->mmask + 1;
        if ((mb->nused + 1) * 4 > slots * 3 && (rc = merges_grow(t)) < 0)
            break;
        mb->nused += (size_t)merge_put(t, res[k].key, res[k].rank, res[k].id);
    }
    mb->n = 0;
    buf_reset(&mb->bytes);
    return rc;
}

static int parse_merges(struct tok *t, struct js *j, size_t nvocab)
{
    struct merge_batch *mb = calloc(1, sizeof *mb);
    if (!mb)
        return err_set(ERR_NOMEM, "out of memory");
    mb->last = -1;
    /* the table is sized for as many merges as vocabulary entries (one per
     * token beyond the bytes, in a vocabulary built by BPE) */
    if (buf_reserve(&mb->bytes, 1u << 16) < 0 || merges_alloc(t, nvocab) < 0) {
        buf_free(&mb->bytes);
        free(mb);
        return err_set(ERR_NOMEM, "out of memory");
    }
    struct buf s1 = { 0 }, s2 = { 0 };
    int rc = js_expect(j, '['), first = 1;
    uint32_t rank = 0;
    while (rc == 0 && (rc = js_next_elem(j, &first)) == 1) {
        rc = 0;
        const char *at = j->p;
        const char *a, *b;
        size_t na, nb;
        if (*j->p == '"') {
            /* "a b": the first space separates (byte-level text has no spaces) */
            const char *ms;
            size_t mn;
            if ((rc = js_str_ref(j, &s1, &ms, &mn)) < 0)
                break;
            const char *sp = memchr(ms, ' ', mn);
            if (!sp) {
                rc = js_fail(j, at, "merge without a space");
                break;
            }
            a = ms;
            na = (size_t)(sp - ms);
            b = sp + 1;
            nb = mn - na - 1;
        } else {
            int f2 = 1;
            if ((rc = js_expect(j, '[')) < 0 || (rc = js_next_elem(j, &f2)) != 1 ||
                (rc = js_str_ref(j, &s1, &a, &na)) < 0 || (rc = js_next_elem(j, &f2)) != 1 ||
                (rc = js_str_ref(j, &s2, &b, &nb)) < 0 || (rc = js_next_elem(j, &f2)) != 0) {
                if (rc >= 0)
                    rc = js_fail(j, at, "a merge is a pair of strings");
                break;
            }
        }
        if (rank == UINT32_MAX - 1) {
            rc = js_fail(j, at, "too many merges");
            break;
        }
        if ((rc = batch_add(t, mb, at, rank++, a, na, b, nb)) < 0)
            break;
        if (mb->n == MERGE_BATCH && (rc = batch_flush(t, j, mb)) < 0)
            break;
    }
    /* merges before a syntax error are checked first, so the first error in
     * file order is the one reported */
    if (mb->n) {
        int rc2 = batch_flush(t, j, mb);
        if (rc2 < 0)
            rc = rc2;
    }
    buf_free(&s1);
    buf_free(&s2);
    buf_free(&mb->bytes);
    free(mb);
    return rc < 0 ? rc : 0;
}

struct model_spans {
    struct span merges; /* merges found before the vocab: read afterwards */
    struct ventry *v;   /* owned */
    size_t nv;
    int32_t max_id;
    int have_vocab;
    char unk[256];
    int have_unk;
};

static int parse_model(struct tok *t, struct js *j, struct model_spans *ms)
{
    struct buf key = { 0 }, val = { 0 };
    int rc = js_expect(j, '{'), first = 1;
    while (rc == 0 && (rc = js_next_key(j, &first, &key)) == 1) {
        const char *at = j->p;
        rc = 0;
        if (!strcmp(key.p, "type")) {
            if ((rc = js_str(j, &val)) == 0 && strcmp(val.p, "BPE"))
                rc = err_set(ERR_UNSUPPORTED, "%s: model type '%s' is not supported (only BPE)",
                             t->name, val.p);
        } else if (!strcmp(key.p, "vocab")) {
            if (ms->have_vocab)
                rc = js_fail(j, at, "a second vocab");
            else if ((rc = parse_vocab(t, j, &ms->v, &ms->nv, &ms->max_id)) == 0 &&
                     (rc = build_model_table(t, ms->v, ms->nv, ms->max_id)) == 0)
                rc = build_vocab_hash(t, ms->v, ms->nv);
            ms->have_vocab = 1;
        } else if (!strcmp(key.p, "merges")) {
            /* normally after the vocab: read in place; else once it is known */
            if (ms->have_vocab) {
                rc = t->mh ? js_fail(j, at, "a second merges") : parse_merges(t, j, ms->nv);
            } else {
                ms->merges.p = j->p;
                rc = js_skip(j, 0);
                ms->merges.e = j->p;
            }
        } else if (!strcmp(key.p, "dropout")) {
            if (!js_is_null(j)) {
                /* 0.0 is harmless; any other dropout makes encoding random */
                js_ws(j);
                const char *q = j->p;
                if ((rc = js_skip(j, 0)) == 0 && strtod(q, NULL) != 0.0)
                    rc = err_set(ERR_UNSUPPORTED, "%s: BPE dropout is not supported", t->name);
            }
        } else if (!strcmp(key.p, "unk_token")) {
            if (!js_is_null(j)) {
                if ((rc = js_str(j, &val)) == 0) {
                    if (val.len >= sizeof ms->unk)
                        rc = js_fail(j, at, "unk_token too long");
                    else {
                        memcpy(ms->unk, val.p, val.len + 1);
                        ms->have_unk = 1;
                    }
                }
            }
        } else if (!strcmp(key.p, "continuing_subword_prefix") ||
                   !strcmp(key.p, "end_of_word_suffix")) {
            if (!js_is_null(j) && (rc = js_str(j, &val)) == 0 && val.len)
                rc = err_set(ERR_UNSUPPORTED, "%s: model.%s is not supported", t->name, key.p);
        } else if (!strcmp(key.p, "fuse_unk")) {
            rc = js_bool(j, &t->fuse_unk);
        } else if (!strcmp(key.p, "byte_fallback")) {
            rc = js_bool(j, &t->byte_fallback);
        } else if (!strcmp(key.p, "ignore_merges")) {
            rc = js_bool(j, &t->ignore_merges);
        } else {
            rc = js_skip(j, 0);
        }
    }
    buf_free(&key);
    buf_free(&val);
    if (rc < 0)
        return rc;
    if (!ms->have_vocab)
        return err_set(ERR_INVAL, "%s: model.vocab is missing", t->name);
    if (ms->merges.p) {
        /* read the deferred merges, then carry on after the model object */
        const char *end = j->p;
        j->p = ms->merges.p;
        rc = parse_merges(t, j, ms->nv);
        j->p = end;
        return rc;
    }
    return 0;
}

/* ------------------------------------------------- the small parts (cJSON) */

static cJSON *parse_span(struct tok *t, const struct span *s, const char *what, int *rc)
{
    cJSON *c = cJSON_ParseWithLength(s->p, (size_t)(s->e - s->p));
    if (!c)
        *rc = err_set(ERR_NOMEM, "%s: %s: cannot parse", t->name, what);
    return c;
}

static int32_t hf_added_id(struct tok *t, const struct tok_added *a, int k, size_t nvocab)
{
    for (int i = 0; i < k; i++)
        if (t->added[i].len == a->len && !memcmp(t->added[i].content, a->content, a->len))
            return -1;
    struct buf tmp = { 0 };
    int32_t id = -1;
    if (unmap_bytes(a->content, a->len, &tmp) > 0)
        id = tok__vocab_get(t, (const uint8_t *)tmp.p, tmp.len);
    buf_free(&tmp);
    if (id >= 0)
        return id;
    int32_t max = -1;
    for (int i = 0; i < k; i++)
        if (t->added[i].len && t->added[i].id > max)
            max = t->added[i].id;
    if (max < 0)
        return (int32_t)nvocab;
    return (max >= (int64_t)nvocab || nvocab == 0) ? max + 1 : (int32_t)nvocab;
}

static int parse_added(struct tok *t, const cJSON *arr, size_t nvocab)
{
    if (!arr || cJSON_IsNull(arr))
        return 0;
    if (!cJSON_IsArray(arr))
        return err_set(ERR_INVAL, "%s: added_tokens is not an array", t->name);
    int n = cJSON_GetArraySize(arr);
    if (n > TOK_MAX_ID)
        return err_set(ERR_INVAL, "%s: too many added tokens", t->name);
    t->added = calloc((size_t)n + 1, sizeof *t->added);
    if (!t->added)
        return err_set(ERR_NOMEM, "out of memory");
    const cJSON *e;
    int k = 0;
    cJSON_ArrayForEach(e, arr)
    {
        struct tok_added *a = &t->added[k];
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const char *content = tok__jstr(e, "content");
        if (!cJSON_IsNumber(id) || !content || id->valuedouble < 0 ||
            id->valuedouble >= TOK_MAX_ID || id->valuedouble != (double)(int32_t)id->valuedouble)
            return err_set(ERR_INVAL,
                           "%s: added_tokens[%d]: needs an integer id in [0, %d) and a "
                           "content string",
                           t->name, k, TOK_MAX_ID);
        int sw = tok__jbool(e, "single_word", 0), ls = tok__jbool(e, "lstrip", 0),
            rs = tok__jbool(e, "rstrip", 0), no = tok__jbool(e, "normalized", 1),
            sp = tok__jbool(e, "special", 0);
        if (sw < 0 || ls < 0 || rs < 0 || no < 0 || sp < 0)
            return err_set(ERR_INVAL, "%s: added_tokens[%d]: a flag is not a boolean", t->name, k);
        a->id = (int32_t)id->valuedouble;
        a->len = strlen(content);
        if (!utf8_valid(content, a->len, NULL))
            return err_set(ERR_INVAL, "%s: added_tokens[%d]: content is not UTF-8", t->name, k);
        if (!(a->content = strdup(content)))
            return err_set(ERR_NOMEM, "out of memory");
        if (no && t->nfc && a->len) {
            /* HF keeps a normalized token's content normalized: that is
             * what it decodes to and what it is looked up by */
            struct buf nb = { 0 };
            if (tok__nfc(t, a->content, a->len, &nb) < 0) {
                buf_free(&nb);
                return ERR_NOMEM;
            }
            free(a->content);
            a->len = nb.len;
            if (!(a->content = buf_detach(&nb)))
                return err_set(ERR_NOMEM, "out of memory");
        }
        if (a->len) { /* HF ignores empty tokens */
            int32_t hid = hf_added_id(t, a, k, nvocab);
            if (hid < 0 || hid >= TOK_MAX_ID)
                a->len = 0; /* a repeat: never matched, the first one is */
            else
                a->id = hid;
        }
        a->single_word = (uint8_t)sw;
        a->lstrip = (uint8_t)ls;
        a->rstrip = (uint8_t)rs;
        a->normalized = (uint8_t)no;
        a->special = (uint8_t)sp;
        t->nadded = ++k;
    }
    return 0;
}

/* After the normalizer is known: normalized forms and first-byte tables. */
static int finish_added(struct tok *t)
{
    struct buf nb = { 0 };
    for (int k = 0; k < t->nadded; k++) {
        struct tok_added *a = &t->added[k];
        if (!a->len)
            continue; /* never matched */
        if (!a->normalized) {
            t->first_raw[(uint8_t)a->content[0]] = 1;
            t->any_raw = 1;
            continue;
        }
        int rc =
            t->nfc ? tok__nfc(t, a->content, a->len, &nb) : buf_append(&nb, a->content, a->len);
        if (rc == 0 && nb.len) {
            a->norm = buf_detach(&nb);
            a->nlen = strlen(a->norm);
            if (!a->norm)
                rc = err_set(ERR_NOMEM, "out of memory");
        }
        buf_reset(&nb);
        if (rc < 0) {
            buf_free(&nb);
            return rc;
        }
        if (a->nlen) {
            t->first_norm[(uint8_t)a->norm[0]] = 1;
            t->any_norm = 1;
        }
    }
    buf_free(&nb);
    return 0;
}

/* Allocates the id tables and fills them from the vocab entries and the
 * added tokens. */
static int build_ids(struct tok *t)
{
    int32_t max_id = t->nids - 1;
    for (int k = 0; k < t->nadded; k++)
        if (t->added[k].id > max_id)
            max_id = t->added[k].id;
    size_t old = (size_t)t->nids, n = (size_t)max_id + 1;
    if (n > old) {
        uint8_t *f = realloc(t->flags, n);
        if (f)
            t->flags = f;
        struct tok_span *m = realloc(t->model, n * sizeof *m);
        if (m)
            t->model = m;
        if (!f || !m)
            return err_set(ERR_NOMEM, "out of memory");
        memset(t->flags + old, 0, n - old);
        memset(t->model + old, 0, (n - old) * sizeof *m);
        t->nids = (int32_t)n;
    }
    t->dec = malloc(n * sizeof *t->dec);
    if (!t->dec)
        return err_set(ERR_NOMEM, "out of memory");
    memcpy(t->dec, t->model, n * sizeof *t->dec);
    struct buf tmp = { 0 };
    for (int k = 0; k < t->nadded; k++) {
        struct tok_added *a = &t->added[k];
        buf_reset(&tmp);
        /* decoded like any token: through the byte map when it can be */
        int rc = unmap_bytes(a->content, a->len, &tmp) < 0 ? ERR_NOMEM : 0;
        if (rc == 0)
            rc = arena_add(t, tmp.p, tmp.len, &t->dec[a->id].off);
        if (rc < 0) {
            buf_free(&tmp);
            return rc < 0 ? err_set(ERR_NOMEM, "out of memory") : rc;
        }
        t->dec[a->id].len = (uint32_t)tmp.len;
        t->flags[a->id] |= (uint8_t)(TOKF_ADDED | (a->special ? TOKF_SPECIAL : 0));
    }
    buf_free(&tmp);
    return 0;
}

static int model_finish(struct tok *t, const struct model_spans *ms)
{
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = tok__vocab_get(t, (const uint8_t *)&c, 1);
        char fb[8];
        snprintf(fb, sizeof fb, "<0x%02X>", b);
        struct buf tmp = { 0 };
        t->fallback[b] = -1;
        if (t->byte_fallback) {
            int m = unmap_bytes(fb, strlen(fb), &tmp);
            if (m > 0)
                t->fallback[b] = tok__vocab_get(t, (const uint8_t *)tmp.p, tmp.len);
        }
        buf_free(&tmp);
    }
    t->unk_id = -1;
    if (ms->have_unk) {
        struct buf tmp = { 0 };
        int m = unmap_bytes(ms->unk, strlen(ms->unk), &tmp);
        if (m > 0)
            t->unk_id = tok__vocab_get(t, (const uint8_t *)tmp.p, tmp.len);
        buf_free(&tmp);
        if (t->unk_id < 0)
            return err_set(ERR_INVAL, "%s: unk_token '%s' is not in the vocabulary", t->name,
                           ms->unk);
    }
    return 0;
}

int tok_load(struct tok **out, const char *json, size_t n, const char *name)
{
    *out = NULL;
    byte_map_init();
    struct tok *t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(name ? name : "tokenizer.json"))) {
        free(t);
        return err_set(ERR_NOMEM, "out of memory");
    }
    cJSON *c_added = NULL, *c_norm = NULL, *c_pre = NULL, *c_dec = NULL;
    struct js j = { json, json, json + n, t->name };
    struct buf key = { 0 };
    int have_model = 0;
    struct span s_added = { 0 }, s_norm = { 0 }, s_pre = { 0 }, s_dec = { 0 };
    struct model_spans ms = { .max_id = -1 };
    size_t bad;
    int rc = 0;

    if (!valid_utf8(json, n, &bad)) {
        rc = js_fail(&j, json + bad, "invalid UTF-8");
        goto fail;
    }
    /* top level: the model is read in place (it is nearly all of the file);
     * the small parts are noted and read afterwards in a fixed order */
    int first = 1;
    if ((rc = js_expect(&j, '{')) < 0)
        goto fail;
    while ((rc = js_next_key(&j, &first, &key)) == 1) {
        if (!strcmp(key.p, "model")) {
            if (have_model) {
                rc = js_fail(&j, j.p, "a second \"model\"");
                goto fail;
            }
            have_model = 1;
            if ((rc = parse_model(t, &j, &ms)) < 0)
                goto fail;
            continue;
        }
        struct span *s = !strcmp(key.p, "added_tokens")    ? &s_added
                         : !strcmp(key.p, "normalizer")    ? &s_norm
                         : !strcmp(key.p, "pre_tokenizer") ? &s_pre
                         : !strcmp(key.p, "decoder")       ? &s_dec
                                                           : NULL;
        const char *at = j.p;
        if ((rc = js_skip(&j, 0)) < 0)
            goto fail;
        if (s) {
            s->p = at;
            s->e = j.p;
        }
    }
    if (rc < 0)
        goto fail;
    js_ws(&j);
    if (j.p != j.e) {
        rc = js_fail(&j, j.p, "trailing characters after the object");
        goto fail;
    }
    if (!have_model) {
        rc = err_set(ERR_INVAL, "%s: no \"model\"", t->name);
        goto fail;
    }

    if ((s_added.p && !(c_added = parse_span(t, &s_added, "added_tokens", &rc))) ||
        (s_norm.p && !(c_norm = parse_span(t, &s_norm, "normalizer", &rc))) ||
        (s_pre.p && !(c_pre = parse_span(t, &s_pre, "pre_tokenizer", &rc))) ||
        (s_dec.p && !(c_dec = parse_span(t, &s_dec, "decoder", &rc))))
        goto fail;
    if ((rc = tok__parse_normalizer(t, c_norm)) < 0)
        goto fail;
    int have_bl = 0;
    if (!c_pre || cJSON_IsNull(c_pre)) {
        rc = err_set(ERR_UNSUPPORTED, "%s: no pre_tokenizer (a ByteLevel one is needed)", t->name);
        goto fail;
    }
    if ((rc = tok__parse_pretok(t, c_pre, &have_bl)) < 0)
        goto fail;
    if (!have_bl) {
        rc = err_set(ERR_UNSUPPORTED, "%s: the pre_tokenizer has no ByteLevel step", t->name);
        goto fail;
    }
    if ((rc = tok__init_encoder(t)) < 0 || (rc = tok__parse_decoder(t, c_dec)) < 0 ||
        (rc = parse_added(t, c_added, ms.nv)) < 0)
        goto fail;

    if ((rc = build_ids(t)) < 0 || (rc = model_finish(t, &ms)) < 0 || (rc = finish_added(t)) < 0)
        goto fail;
    free(ms.v);
    buf_free(&key);
    cJSON_Delete(c_added);
    cJSON_Delete(c_norm);
    cJSON_Delete(c_pre);
    cJSON_Delete(c_dec);
    *out = t;
    return 0;
fail:
    free(ms.v);
    buf_free(&key);
    cJSON_Delete(c_added);
    cJSON_Delete(c_norm);
    cJSON_Delete(c_pre);
    cJSON_Delete(c_dec);
    tok_close(t);
    return rc < 0 ? rc : err_set(ERR_INTERNAL, "tokenizer load failed");
}

int tok_open(struct tok **out, const char *path)
{
    *out = NULL;
    struct fs_map m;
    int rc = fs_map_open(&m, path);
    if (rc < 0)
        return rc;
    rc = tok_load(out, (const char *)m.p, m.n, path);
    fs_map_close(&m);
    return rc;
}

void tok_close(struct tok *t)
{
    if (!t)
        return;
    tok__free_encoder(t);
    for (int k = 0; k < t->nsplit; k++)
        pcre2_code_free(t->split[k]);
    for (int k = 0; t->added && k < t->nadded; k++) {
        free(t->added[k].content);
        free(t->added[k].norm);
    }
    free(t->added);
    free(t->flags);
    free(t->model);
    free(t->dec);
    free(t->bytes);
    free(t->vh);
    free(t->mh);
    free(t->name);
    free(t);
}

/* ----------------------------------------------------------------- lookups */

int32_t tok_n_ids(const struct tok *t) { return t->nids; }

int32_t tok_find(const struct tok *t, const char *text, size_t n)
{
    for (int k = 0; k < t->nadded; k++)
        if (t->added[k].len == n && !memcmp(t->added[k].content, text, n))
            return t->added[k].id;
    return tok__vocab_get(t, (const uint8_t *)text, n);
}

int tok_bytes(const struct tok *t, int32_t id, const char **p, size_t *n)
{
    if (id < 0 || id >= t->nids || !(t->flags[id] & (TOKF_MODEL | TOKF_ADDED)))
        return err_set(ERR_NOTFOUND, "token id %d is not in the vocabulary", (int)id);
    *p = t->bytes + t->dec[id].off;
    *n = t->dec[id].len;
    return 0;
}

int tok_is_special(const struct tok *t, int32_t id)
{
    return id >= 0 && id < t->nids && (t->flags[id] & TOKF_SPECIAL);
}
