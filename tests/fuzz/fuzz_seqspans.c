/* fuzz_seqspans.c - the in-place import (seq_import_kv_spans, seq_import_gdn_spans,
 * seq_import_gdn_finish) on arbitrary bytes, called the way app/prefix_cache.c calls it: the
 * header is the first seq_*_header_bytes of the input (an exact-size buffer, zero-padded when
 * the input is shorter), n the size the store reports for the entry (the input's, or a few
 * wrong ones), the expected rows the caller's. An accepted piece must hand out spans inside
 * the state's arrays that add up to n (filling them is checked by ASan) and export back to
 * the input; a refused one must leave the state as it was. The input is a whole piece, so
 * the seeds of fuzz_seqpieces work here too (model id all 0x11, layers 1 and 3 full). */
#include "common/hash.h"
#include "engine/seqstate.h"
#include "kernels/kernels.h"
#include "tests/unit/seqfix.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* What the store would hand over: hn header bytes (the input's, zero-padded). */
static uint8_t *header(const uint8_t *data, size_t size, size_t hn)
{
    uint8_t *h = calloc(1, hn);
    if (h)
        memcpy(h, data, size < hn ? size : hn);
    return h;
}

/* Fills the spans as the reader would: the bytes after the header, then (n beyond the input)
 * a pattern. Writes every byte of every span, so ASan sees one out of bounds. */
static void fill(const struct seq_span *sp, int nsp, const uint8_t *data, size_t size, size_t off)
{
    for (int i = 0; i < nsp; i++) {
        uint8_t *p = sp[i].p;
        for (size_t k = 0; k < sp[i].n; k++, off++)
            p[k] = off < size ? data[off] : (uint8_t)off;
    }
}

/* The export of what was imported is the input, up to the CRC (the spans skip checking it). */
static int same_piece(const struct buf *b, const uint8_t *data, size_t size)
{
    return b->len == size && size >= 4 && !memcmp(b->p, data, size - 4);
}

static void try_kv(const uint8_t *data, size_t size, size_t n, long have, int shift)
{
    uint8_t id[32];
    memset(id, 0x11, sizeof id);
    struct seq_dims d = seqfix_dims(0xa);
    struct seq_state *s;
    if (seq_new(&s, &d, KERN_FP8, 1) != 0)
        return;
    size_t hn = seq_kv_header_bytes(s);
    uint8_t *hdr = header(data, size, hn);
    /* rows the state holds already (a restore on top of a partial prefix) */
    if (!hdr || seq_reserve(s, have) != 0) {
        free(hdr);
        seq_free(s);
        return;
    }
    seq_will_write(s, 0, have);
    s->pos = have;
    /* the rows the caller expects: the header's own when they are few (a caller asks for what
     * it restores, never 2^30 rows), else an arbitrary range; shift makes them differ */
    uint64_t hf = le64(hdr + hn - 16), ht = le64(hdr + hn - 8);
    long from = hf <= ht && ht <= (1u << 16) ? (long)hf : have,
         to = hf <= ht && ht <= (1u << 16) ? (long)ht : have + 256;
    from += shift;
    to += shift;
    long cap = s->cap, written = s->written, pos = s->pos;
    uint32_t epoch = s->epoch;
    struct seq_span sp[SEQ_MAX_SPANS];
    int nsp = -1;
    int rc = seq_import_kv_spans(s, id, hdr, n, from, to, sp, &nsp);
    if (rc == 0) {
        size_t row = (size_t)d.n_kv * d.head_dim, tot = 0;
        CHECK(nsp == 4 && s->cap >= to && s->written == to && s->pos == pos);
        for (int i = 0; i < nsp; i++) {
            const uint8_t *base = i % 2 ? s->layer[i / 2 * 2 + 1].v : s->layer[i / 2 * 2 + 1].k;
            CHECK(sp[i].p == base + (size_t)from * row && sp[i].n == (size_t)(to - from) * row);
            tot += sp[i].n;
        }
        CHECK(tot + hn + 4 == n);
        fill(sp, nsp, data, size, hn);
        if (n == size) {
            struct buf b = { 0 };
            s->pos = to;
            CHECK(seq_export_kv(s, id, from, to, &b) == 0 && same_piece(&b, data, size));
            buf_free(&b);
        }
    } else {
        CHECK(rc < 0 && nsp == 0);
        CHECK(s->cap == cap && s->written == written && s->pos == pos && s->epoch == epoch);
    }
    free(hdr);
    seq_free(s);
}

static void try_gdn(const uint8_t *data, size_t size, size_t n, long written)
{
    uint8_t id[32];
    memset(id, 0x11, sizeof id);
    struct seq_dims d = seqfix_dims(0xa);
    struct seq_state *s;
    if (seq_new(&s, &d, KERN_FP8, 1) != 0)
        return;
    size_t hn = seq_gdn_header_bytes(s);
    uint8_t *hdr = header(data, size, hn);
    if (!hdr) {
        seq_free(s);
        return;
    }
    s->written = written; /* the KV rows a restore imported before the snapshot */
    struct seq_span sp[SEQ_MAX_SPANS];
    int nsp = -1;
    long pos = -1;
    int rc = seq_import_gdn_spans(s, id, hdr, n, &pos, sp, &nsp);
    if (rc == 0) {
        size_t cb = (size_t)d.conv_ch * (d.conv_k - 1) * sizeof(float);
        size_t sb = (size_t)d.n_v * d.dk * d.dv * sizeof(float), tot = 0;
        CHECK(nsp == 4 && pos >= 0 && pos <= written && s->pos == 0);
        for (int i = 0; i < nsp; i++) {
            const struct seq_layer *ly = &s->layer[i / 2 * 2];
            CHECK(sp[i].p == (i % 2 ? (void *)ly->state : (void *)ly->conv));
            CHECK(sp[i].n == (i % 2 ? sb : cb));
            tot += sp[i].n;
        }
        CHECK(tot + hn + 4 == n);
        fill(sp, nsp, data, size, hn);
        CHECK(seq_import_gdn_finish(s, written + 1) < 0 && s->pos == 0);
        CHECK(seq_import_gdn_finish(s, -1) < 0 && s->pos == 0);
        CHECK(seq_import_gdn_finish(s, pos) == 0 && s->pos == pos);
        if (n == size) {
            struct buf b = { 0 };
            CHECK(seq_export_gdn(s, id, &b) == 0 && same_piece(&b, data, size));
            buf_free(&b);
        }
    } else {
        CHECK(rc < 0 && nsp == 0 && pos == -1 && s->pos == 0 && s->written == written);
    }
    free(hdr);
    seq_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* n: the input's size, and sizes a damaged or swapped file could report */
    const size_t ns[] = { size, size - 1, size + 1, size + 4096, size / 2, SIZE_MAX };
    /* rows held and the expected range shift: the input picks one of a few */
    long have = size ? (long)(data[size - 1] % 3) * 100 : 0;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        if (i == 1 && size == 0)
            continue;
        try_kv(data, size, ns[i], have, 0);
        try_gdn(data, size, ns[i], 1L << 40);
        try_gdn(data, size, ns[i], have);
    }
    try_kv(data, size, size, have, 1);
    try_kv(data, size, size, have, -1);
    return 0;
}
