/*
 * tokenizer_dec.c - decoding ids to text: one-shot and streaming. A token's
 * bytes need not be valid UTF-8 on their own (byte-level BPE cuts characters
 * anywhere); the one-shot decoder replaces what stays invalid as Rust's
 * String::from_utf8_lossy does (HF's ByteLevel decoder), and the streaming
 * one holds back an unfinished character until the next token completes it.
 */
#include "engine/tokenizer_impl.h"

#include "common/err.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- decoding */

/* Appends b[0..n) as UTF-8, each maximal invalid subpart replaced by U+FFFD
 * (Unicode's recommended practice, which Rust's from_utf8_lossy follows).
 * With hold non-NULL, an unfinished but so far valid sequence at the end is
 * kept there (for streaming) instead of being replaced. */
static int lossy_append(struct buf *out, const uint8_t *b, size_t n, uint8_t *hold, int *nhold)
{
    static const char fffd[] = "\xef\xbf\xbd";
    size_t i = 0, run = 0;
    int rc = 0;
    while (i < n) {
        uint8_t c = b[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int need;
        uint8_t lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf)
            need = 1;
        else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0)
                lo = 0xa0;
            if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0)
                lo = 0x90;
            if (c == 0xf4)
                hi = 0x8f;
        } else
            need = 0;
        size_t k = 1;
        int bad = need == 0;
        for (int m = 0; !bad && m < need; m++, k++) {
            if (i + k >= n) {
                /* unfinished at the end */
                if (hold) {
                    if ((rc = buf_append(out, b + run, i - run)) < 0)
                        return rc;
                    memcpy(hold, b + i, n - i);
                    *nhold = (int)(n - i);
                    return 0;
                }
                bad = 1;
                break;
            }
            uint8_t x = b[i + k];
            if (x < (m == 0 ? lo : 0x80) || x > (m == 0 ? hi : 0xbf)) {
                bad = 1;
                break;
            }
        }
        if (!bad) {
            i += k;
            continue;
        }
        /* flush the good run, one U+FFFD for the maximal subpart b[i..i+k) */
        if ((rc = buf_append(out, b + run, i - run)) < 0 || (rc = buf_append(out, fffd, 3)) < 0)
            return rc;
        i += k;
        run = i;
    }
    if (hold)
        *nhold = 0;
    rc = buf_append(out, b + run, n - run);
    return rc < 0 ? rc : buf_reserve(out, 0);
}

int tok_decode(const struct tok *t, const int32_t *ids, size_t n, unsigned flags, struct buf *out)
{
    struct buf raw = { 0 };
    int rc = buf_reserve(&raw, 0);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *p;
        size_t len;
        if ((rc = tok_bytes(t, ids[i], &p, &len)) < 0)
            break;
        if ((flags & TOK_SKIP_SPECIAL) && (t->flags[ids[i]] & TOKF_SPECIAL))
            continue;
        rc = buf_append(&raw, p, len);
    }
    if (rc == 0)
        rc = lossy_append(out, (const uint8_t *)raw.p, raw.len, NULL, NULL);
    buf_free(&raw);
    return rc;
}

void tok_stream_init(struct tok_stream *st) { memset(st, 0, sizeof *st); }

int tok_stream_feed(const struct tok *t, struct tok_stream *st, int32_t id, unsigned flags,
                    struct buf *out)
{
    const char *p;
    size_t len;
    int rc = tok_bytes(t, id, &p, &len);
    if (rc < 0)
        return rc;
    if ((flags & TOK_SKIP_SPECIAL) && (t->flags[id] & TOKF_SPECIAL))
        return 0;
    if (st->npend == 0)
        return lossy_append(out, (const uint8_t *)p, len, st->pend, &st->npend);
    /* the pending bytes (at most 3) go in front of the token's */
    uint8_t small[64];
    uint8_t *tmp = len + 3 <= sizeof small ? small : malloc(len + 3);
    if (!tmp)
        return err_set(ERR_NOMEM, "out of memory");
    memcpy(tmp, st->pend, (size_t)st->npend);
    memcpy(tmp + st->npend, p, len);
    rc = lossy_append(out, tmp, (size_t)st->npend + len, st->pend, &st->npend);
    if (tmp != small)
        free(tmp);
    return rc;
}

int tok_stream_flush(struct tok_stream *st, struct buf *out)
{
    int rc = 0;
    if (st->npend)
        rc = lossy_append(out, st->pend, (size_t)st->npend, NULL, NULL);
    st->npend = 0;
    return rc;
}

void tok_cache_stats(const struct tok *t, uint64_t *hits, uint64_t *misses)
{
    *hits = t->hits;
    *misses = t->misses;
}
