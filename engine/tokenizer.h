/*
 * tokenizer.h - the Hugging Face byte-level BPE tokenizer (tokenizer.json), id
 * for id identical to the `tokenizers` library.
 *
 * Encoding, as HF does it: split the text on added-token strings (leftmost,
 * longest match; lstrip/rstrip/single_word honoured), NFC-normalize the rest
 * piece by piece, split it again on normalized added tokens, cut it into words
 * with the pre-tokenizer regexes (PCRE2 with UTF, UCP and JIT; Oniguruma's
 * \s semantics), map each word's bytes to ids and merge pairs by rank. Words
 * go through a per-tokenizer cache. Decoding maps ids back to bytes; the
 * ByteLevel decoder's invalid UTF-8 becomes U+FFFD as in Rust's
 * String::from_utf8_lossy, and the streaming decoder emits only complete
 * characters.
 *
 * Usage:
 *     struct tok *t;
 *     if (tok_open(&t, "tokenizer.json") < 0) return cli_fail();
 *     struct tok_ids ids = {0};
 *     if (tok_encode(t, text, len, 0, &ids) < 0) ...
 *     struct tok_stream st;
 *     tok_stream_init(&st);
 *     for (size_t i = 0; i < ids.n; i++) tok_stream_feed(t, &st, ids.v[i], 0, &out);
 *     tok_stream_flush(&st, &out);
 *     tok_ids_free(&ids);
 *     tok_close(t);
 *
 * Threads: a struct tok is used by one thread at a time (the word cache and
 * the regex match data live in it). Decoding functions take it const.
 */
#ifndef LODE_ENGINE_TOKENIZER_H
#define LODE_ENGINE_TOKENIZER_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

struct tok;

/* Loads a tokenizer.json. On success *out is a new tokenizer owned by the
 * caller (tok_close). Errors name the file and line:column, or the JSON key. */
int tok_open(struct tok **out, const char *path);
/* The same from memory; `name` is used in messages. Borrows json. */
int tok_load(struct tok **out, const char *json, size_t n, const char *name);
/* Frees everything; accepts NULL. */
void tok_close(struct tok *t);

/* Size of the id space: the largest id (model or added) plus one. */
int32_t tok_n_ids(const struct tok *t);
/* Id of a token given its text (added tokens first, then the model vocabulary,
 * whose entries are compared as decoded bytes); -1 when there is none. */
int32_t tok_find(const struct tok *t, const char *text, size_t n);
/* The bytes id decodes to (borrowed, valid until tok_close); 0 or
 * ERR_NOTFOUND when id is not a token. */
int tok_bytes(const struct tok *t, int32_t id, const char **p, size_t *n);
/* 1 when id is an added token marked "special" (skipped by TOK_SKIP_SPECIAL). */
int tok_is_special(const struct tok *t, int32_t id);

/* A growable array of ids; a zeroed struct is empty. */
struct tok_ids {
    int32_t *v; /* owned */
    size_t n, cap;
};
void tok_ids_free(struct tok_ids *ids);

enum {
    TOK_NO_ADDED = 1,     /* encode: treat added-token strings as plain text */
    TOK_SKIP_SPECIAL = 2, /* decode: leave out special added tokens */
};

/* Appends the ids of text[0..n) to out. text must be valid UTF-8 (ERR_INVAL
 * with the byte offset otherwise). flags: TOK_NO_ADDED. Nothing is prepended
 * or appended. On error out keeps what it had before the call. */
int tok_encode(struct tok *t, const char *text, size_t n, unsigned flags, struct tok_ids *out);

/* Appends the text of ids to out as valid UTF-8 (invalid byte sequences
 * become U+FFFD, one per maximal subpart). ERR_INVAL for an id that is not a
 * token. flags: TOK_SKIP_SPECIAL. */
int tok_decode(const struct tok *t, const int32_t *ids, size_t n, unsigned flags, struct buf *out);

/* Streaming decode for generation: ids arrive one at a time and only
 * complete UTF-8 characters come out; the concatenated output equals
 * tok_decode of the whole sequence once tok_stream_flush has run. */
struct tok_stream {
    uint8_t pend[4]; /* bytes of an unfinished character (at most 3) */
    int npend;
};
void tok_stream_init(struct tok_stream *st);
int tok_stream_feed(const struct tok *t, struct tok_stream *st, int32_t id, unsigned flags,
                    struct buf *out);
/* Emits U+FFFD for an unfinished character left at the end; resets st. */
int tok_stream_flush(struct tok_stream *st, struct buf *out);

/* Word-cache statistics since tok_open (for benchmarks). */
void tok_cache_stats(const struct tok *t, uint64_t *hits, uint64_t *misses);

#endif
