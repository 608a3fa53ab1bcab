/*
 * tokenizer_impl.h - the tokenizer's internal state, shared by its files:
 * tokenizer.c (loading tokenizer.json, lookups), tokenizer_bpe.c (encoding:
 * added tokens, NFC, regex pre-tokenization, BPE, the word cache) and
 * tokenizer_dec.c (one-shot and streaming decoding).
 * Nothing outside engine/tokenizer*.c includes this.
 */
#ifndef LODE_ENGINE_TOKENIZER_IMPL_H
#define LODE_ENGINE_TOKENIZER_IMPL_H

#include "engine/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdint.h>

/* The largest id we accept from a file: bounds the id-indexed tables. */
#define TOK_MAX_ID (1 << 24)
#define TOK_MAX_SPLITS 8

/* per-id flags */
enum {
    TOKF_MODEL = 1,   /* in model.vocab */
    TOKF_RAW = 2,     /* model token with a character outside the byte map: BPE never reaches it */
    TOKF_ADDED = 4,   /* in added_tokens (its decode bytes come from there) */
    TOKF_SPECIAL = 8, /* added token with "special": true */
};

struct tok_span {
    uint32_t off, len; /* into tok.bytes */
};

struct tok_added {
    char *content; /* owned, as written in the file (UTF-8) */
    size_t len;
    char *norm; /* owned: NFC(content) for normalized tokens, else NULL */
    size_t nlen;
    int32_t id;
    uint8_t special, normalized, lstrip, rstrip, single_word;
};

#define TOK_VSLOT_INLINE 11
struct tok_vslot {
    int32_t id;  /* -1 when empty */
    uint8_t len; /* byte length, or 255 for a longer token (b holds a hash tag) */
    char b[TOK_VSLOT_INLINE];
};

/* merge table entry: (left id, right id) -> (rank, merged id) */
struct tok_merge {
    uint64_t key; /* (left << 32) | right; UINT64_MAX when empty */
    uint32_t rank;
    int32_t id;
};

/* word cache: bytes of a word -> its ids; cleared wholesale when full */
struct tok_cache_ent {
    uint64_t h;    /* 0 when empty */
    uint32_t woff; /* word bytes in cache arena */
    uint32_t wlen;
    uint32_t ioff; /* ids in cache id arena */
    uint32_t nids;
};

struct tok {
    char *name; /* owned: file name for messages */

    /* id -> bytes. model[id]: the vocab entry's bytes (decoded through the
     * byte map, or raw UTF-8 for TOKF_RAW); dec[id]: what decoding emits. */
    int32_t nids;
    uint8_t *flags;         /* [nids] TOKF_* */
    struct tok_span *model; /* [nids] */
    struct tok_span *dec;   /* [nids] */
    char *bytes;            /* arena of all token bytes */
    size_t nbytes, capbytes;

    /* model bytes -> id, open addressing (TOKF_RAW excluded). Short tokens
     * are stored in the slot itself so a lookup touches one cache line. */
    struct tok_vslot *vh;
    uint32_t vmask;

    struct tok_merge *mh;
    uint32_t mmask;

    int32_t byte_id[256];  /* id of each single byte, -1 when the vocab lacks it */
    int32_t fallback[256]; /* byte_fallback "<0xAB>" ids, -1 when absent */
    int32_t unk_id;        /* -1: none */
    int fuse_unk, byte_fallback, ignore_merges;

    struct tok_added *added;
    int nadded;
    uint8_t first_raw[256];  /* 1 when some non-normalized added token starts with this byte */
    uint8_t first_norm[256]; /* same for normalized ones (matched after NFC) */
    int any_raw, any_norm;

    int nfc; /* the normalizer is NFC */
    pcre2_code *split[TOK_MAX_SPLITS];
    int nsplit;
    pcre2_match_data *md;

    uint8_t *nfc_ok; /* [0x10000/8] bit set: this BMP code point never changes under NFC */

    /* word cache */
    struct tok_cache_ent *cache;
    uint32_t cmask, cused;
    uint8_t *carena;
    int32_t *cids;
    uint32_t carena_len, cids_len;
    uint64_t hits, misses;

    /* encode scratch (reused between calls) */
    void *scratch;
    size_t scratch_cap;
    struct buf nbuf; /* the NFC form of the current piece */
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
};

/* tokenizer_bpe.c */
int tok__init_encoder(struct tok *t);
void tok__free_encoder(struct tok *t);
/* NFC of s[0..n) into out (reset first). */
int tok__nfc(const struct tok *t, const char *s, size_t n, struct buf *out);
/* Model id of a byte string (TOKF_RAW excluded); -1 when absent. */
int32_t tok__vocab_get(const struct tok *t, const uint8_t *s, size_t n);

/* tokenizer_cfg.c: the normalizer, pre-tokenizer and decoder sections (cJSON). */
struct cJSON;
const char *tok__jstr(const struct cJSON *o, const char *k);
/* A boolean member with a default; -1 when present but not a boolean. */
int tok__jbool(const struct cJSON *o, const char *k, int def);
int tok__parse_normalizer(struct tok *t, const struct cJSON *n);
int tok__parse_pretok(struct tok *t, const struct cJSON *p, int *have_bytelevel);
int tok__parse_decoder(struct tok *t, const struct cJSON *d);

#endif
