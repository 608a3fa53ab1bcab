/*
 * backend_engine.c - the in-process engine backend ("cpu"; "cuda": the same
 * engine with its forward pass on the GPU, engine/model_cuda.h; "auto").
 *
 * The context is an append-only token sequence `held` with the invariant
 * held == the tokens the sequence state consumed (n_held == s->pos). Each
 * generation tokenizes the prompt, keeps the longest common prefix L with
 * `held`, rolls back to the newest snapshot at or before L when the prompt
 * diverges, and prefills the rest. A stop token the model samples is never
 * fed: it stays "pending" and the next prompt (which renders it) prefills it.
 *
 * Snapshots are taken at the position of the last "<|im_start|>" of every
 * prompt (where an assistant turn begins: the official template drops the
 * reasoning of earlier turns once a new user message arrives, so the
 * rendering diverges right after that token) and at the end of the first
 * message (usually the system prompt, reusable after a compaction). At most
 * MAX_SNAPS are kept; the oldest goes first, except the first-message one.
 *
 * The persistent prefix cache (pc_*, when configured) is asked before the
 * prefill for a prefix longer than what survives in memory, and is given
 * blocks and a snapshot at each in-memory snapshot point, at the request's
 * cache mark and every cache_every tokens while prefilling. Its failures
 * are logged and the turn goes on without it.
 *
 * Saved state: "LODECTX\0", u32 version, the 32-byte model identity, u64
 * token count, the tokens (i32), u64 length of the sequence state, the
 * state (seq_serialize), u32 crc32c of everything before it. Little-endian.
 */
#include "app/backend.h"
#include "app/genstop.h"
#include "app/prefix_cache.h"
#include "common/ckd.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/text.h"
#include "config/config.h"
#include "engine/model.h"
#include "engine/model_cuda.h"
#include "engine/modelcfg.h"
#include "engine/tokenizer.h"
#include "kernels/kernels.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SNAPS 16
#define PREFILL_CHUNK 512 /* tokens between progress events and interrupt checks */
#define INITIAL_CAP 4096
#define CTX_MAGIC "LODECTX"
#define CTX_VERSION 1u

struct snap {
    struct seq_snap *sn;
    int first; /* the end of the first message: kept when evicting */
};

struct eng_be {
    struct backend b;
    struct eng *e;
    struct tok *t;
    struct seq_state *s;
    int32_t *held; /* tokens the state consumed; n_held == s->pos */
    long n_held, held_cap;
    struct snap snaps[MAX_SNAPS]; /* ascending positions, all <= n_held */
    int n_snaps;
    float *logits;  /* [V]: after the last step, valid when logits_ok */
    float *scratch; /* [V]: the sampler modifies its logits in place */
    int logits_ok;
    long V, max_ctx;
    int32_t n_valid;
    int32_t stop[GENSTOP_MAX];
    int n_stop;
    int32_t im_start; /* -1 when the tokenizer has no <|im_start|> */
    char dir[PATH_MAX];
    struct pc *pc;       /* the persistent prefix cache, or NULL */
    long cache_every;    /* a cache snapshot every N tokens (> 0) */
    struct pc_report pr; /* this turn's cache work */
    /* the last rq.cache_mark tokenized: its text length and checksum, its token count */
    size_t mark_len;
    uint32_t mark_crc;
    long mark_tok;
};

static int stopped(const struct be_request *rq) { return rq->interrupt && *rq->interrupt; }

/* ------------------------------------------------------------ tokens and snapshots */

static int held_reserve(struct eng_be *g, long n)
{
    if (n <= g->held_cap)
        return 0;
    long cap = g->held_cap ? g->held_cap : 1024;
    while (cap < n)
        cap = cap > LONG_MAX / 2 ? n : cap * 2;
    size_t bytes;
    if (ckd_mul_sz(&bytes, (size_t)cap, sizeof(int32_t)))
        return err_set(ERR_NOMEM, "backend %s: %ld tokens do not fit in memory", g->b.name, n);
    int32_t *p = realloc(g->held, bytes);
    if (!p)
        return err_set(ERR_NOMEM, "backend %s: out of memory for %ld tokens", g->b.name, n);
    g->held = p;
    g->held_cap = cap;
    return 0;
}

static void snap_drop(struct eng_be *g, int i)
{
    seq_snap_free(g->snaps[i].sn);
    memmove(&g->snaps[i], &g->snaps[i + 1], (size_t)(g->n_snaps - i - 1) * sizeof g->snaps[0]);
    g->n_snaps--;
}

static void snaps_drop_above(struct eng_be *g, long pos)
{
    while (g->n_snaps > 0 && g->snaps[g->n_snaps - 1].sn->pos > pos)
        snap_drop(g, g->n_snaps - 1);
}

/* Back to an empty context. */
static void ctx_reset(struct eng_be *g)
{
    seq_reset(g->s);
    g->n_held = 0;
    g->logits_ok = 0;
    snaps_drop_above(g, -1);
}

/* Moves the state back to the newest snapshot at or before pos (or to 0). */
static void rollback(struct eng_be *g, long pos)
{
    while (g->n_snaps > 0) {
        int i = g->n_snaps - 1;
        while (i >= 0 && g->snaps[i].sn->pos > pos)
            i--;
        if (i < 0)
            break;
        if (seq_restore(g->s, g->snaps[i].sn) == 0) {
            g->n_held = g->snaps[i].sn->pos;
            g->logits_ok = 0;
            snaps_drop_above(g, g->n_held);
            return;
        }
        snap_drop(g, i); /* stale (cannot happen while the invariants hold): forget it */
    }
    ctx_reset(g);
}

/* Snapshot at the current position unless one is there already. */
static int snap_take(struct eng_be *g, int first)
{
    if (g->n_snaps > 0 && g->snaps[g->n_snaps - 1].sn->pos == g->s->pos)
        return 0;
    if (g->n_snaps == MAX_SNAPS)
        snap_drop(g, g->snaps[0].first && MAX_SNAPS > 1 ? 1 : 0);
    struct seq_snap *sn;
    int rc = seq_snapshot(g->s, &sn);
    if (rc < 0)
        return err_prefix(rc, "backend %s: snapshot", g->b.name);
    g->snaps[g->n_snaps++] = (struct snap){ sn, first };
    return 0;
}

/* Consumes T tokens; the state's room grows by doubling up to the context limit. On an
 * error the context is emptied (a failed step may leave the state half-updated). */
static int feed(struct eng_be *g, const int32_t *tok, long T)
{
    struct seq_state *s = g->s;
    long need = s->pos + T;
    int rc = 0;
    if (need > g->max_ctx)
        rc = err_set(ERR_INVAL, "backend %s: context full (%ld tokens)", g->b.name, g->max_ctx);
    if (rc == 0 && need > s->cap) {
        long cap = s->cap < g->max_ctx / 2 ? s->cap * 2 : g->max_ctx;
        rc = seq_reserve(s, cap > need ? cap : need);
    }
    if (rc == 0)
        rc = held_reserve(g, need);
    if (rc == 0)
        rc = eng_forward(g->e, s, tok, T, g->logits, 0);
    if (rc < 0) {
        ctx_reset(g);
        return rc;
    }
    memcpy(g->held + g->n_held, tok, (size_t)T * sizeof *tok);
    g->n_held += T;
    g->logits_ok = 1;
    return 0;
}

/* ------------------------------------------------------------ generate */

static int emit(be_event_fn fn, void *ud, const struct be_event *ev) { return fn ? fn(ud, ev) : 0; }

/* Stores the state at its current position in the persistent cache (when there is one). A
 * failure is logged and counted by pc_save; only out-of-memory comes back. */
static int cache_save(struct eng_be *g)
{
    if (!g->pc || g->n_held == 0)
        return 0;
    return pc_save(g->pc, g->s, g->held, g->n_held, &g->pr);
}

/* Prefills ids[n_held..n) in chunks, snapshotting at the points snap[0..nsnap) (ascending) in
 * memory and in the cache, and in the cache alone at cmark (when > 0) and every cache_every
 * tokens. Returns 0 (with *intr set when interrupted) or an error. */
static int prefill(struct eng_be *g, const struct tok_ids *ids, const long *pts, const int *first,
                   int npts, long cmark, const struct be_request *rq, be_event_fn fn, void *ud,
                   int *intr)
{
    long n = (long)ids->n, start = g->n_held;
    struct be_event ev = { .kind = BE_EV_PREFILL, .done = 0, .total = n - start };
    if (n > start && emit(fn, ud, &ev))
        *intr = 1;
    while (g->n_held < n && !*intr) {
        long pos = g->n_held, end = n - pos > PREFILL_CHUNK ? pos + PREFILL_CHUNK : n;
        int save = 0;
        for (int k = 0; k < npts; k++) {
            if (pts[k] == pos) {
                int rc = snap_take(g, first[k]);
                if (rc < 0)
                    return rc;
                save = 1;
            } else if (pts[k] > pos && pts[k] < end)
                end = pts[k];
        }
        if (g->pc) {
            long every = (pos / g->cache_every + 1) * g->cache_every;
            if (every < end)
                end = every;
            if (cmark > pos && cmark < end)
                end = cmark;
            save |= pos > start && (pos == cmark || pos % g->cache_every == 0);
        }
        if (save) {
            int rc = cache_save(g);
            if (rc < 0)
                return rc;
        }
        if (stopped(rq)) {
            *intr = 1;
            break;
        }
        int rc = feed(g, ids->v + pos, end - pos);
        if (rc < 0)
            return rc;
        ev.done = g->n_held - start;
        if (emit(fn, ud, &ev))
            *intr = 1;
    }
    return 0;
}

/* Restores from the persistent cache what goes beyond the held prefix of ids (which the state
 * holds now). Only out-of-memory fails; anything else was logged by pc_restore. */
static int cache_restore(struct eng_be *g, const struct tok_ids *ids, struct be_usage *u)
{
    long n = (long)ids->n, have = g->n_held, got = have;
    if (!g->pc || n - 1 <= have)
        return 0;
    int rc = held_reserve(g, n);
    if (rc == 0)
        rc = pc_restore(g->pc, g->s, ids->v, n, have, &got, &g->pr);
    if (rc < 0 || g->s->pos != got || got < have) {
        /* the state may hold half-imported rows above `have`: start over rather than guess */
        log_msg(LOG_WARN, "prefix cache: %s (restore abandoned)", err_msg());
        ctx_reset(g);
        return rc == ERR_NOMEM ? rc : 0;
    }
    if (got > have) {
        memcpy(g->held + have, ids->v + have, (size_t)(got - have) * sizeof *g->held);
        g->n_held = got;
        g->logits_ok = 0;
        u->restored_tokens = got - have;
    }
    return 0;
}

/* The token position of rq->cache_mark in ids, or 0 when there is none (no cache, no mark, or
 * the mark's text does not tokenize to a prefix of ids). The last one is remembered: the mark
 * (the loaded files) rarely changes between turns. */
static long cache_mark(struct eng_be *g, const struct be_request *rq, const struct tok_ids *ids)
{
    size_t m = rq->cache_mark;
    if (!g->pc || !rq->prompt || m == 0 || m > rq->prompt_len)
        return 0;
    uint32_t crc = crc32c(0, rq->prompt, m);
    if (m != g->mark_len || crc != g->mark_crc) {
        struct tok_ids t = { 0 };
        g->mark_len = m;
        g->mark_crc = crc;
        g->mark_tok = 0;
        if (tok_encode(g->t, rq->prompt, m, 0, &t) < 0) {
            log_msg(LOG_WARN, "prefix cache: mark: %s", err_msg());
        } else if (t.n <= ids->n && !memcmp(t.v, ids->v, t.n * sizeof *t.v)) {
            g->mark_tok = (long)t.n;
        }
        tok_ids_free(&t);
    }
    return g->mark_tok < (long)ids->n ? g->mark_tok : 0;
}

static int eng_generate(struct backend *b, const struct be_request *rq, be_event_fn fn, void *ud,
                        struct be_usage *u, enum be_stop *stop)
{
    struct eng_be *g = (struct eng_be *)b;
    memset(u, 0, sizeof *u);
    *stop = BE_STOP_END;
    struct tok_ids ids = { 0 };
    struct sampler *sm = NULL;
    struct buf out = { 0 };
    int rc =
        tok_encode(g->t, rq->prompt ? rq->prompt : "", rq->prompt ? rq->prompt_len : 0, 0, &ids);
    if (rc < 0) {
        err_prefix(rc, "backend %s: prompt", b->name);
        goto done;
    }
    long n = (long)ids.n;
    if (n == 0) {
        rc = err_set(ERR_INVAL, "backend %s: empty prompt", b->name);
        goto done;
    }
    if (n > g->max_ctx) {
        rc = err_set(ERR_INVAL, "backend %s: the prompt has %ld tokens, the context holds %ld",
                     b->name, n, g->max_ctx);
        goto done;
    }
    for (long i = 0; i < n; i++)
        if (ids.v[i] >= g->V) { /* checked before the context is touched */
            rc = err_set(ERR_INVAL,
                         "backend %s: prompt token %ld (id %d) is outside the model's "
                         "vocabulary of %ld",
                         b->name, i, ids.v[i], g->V);
            goto done;
        }
    u->prompt_tokens = n;

    /* reuse the common prefix; the last prompt token must be computed for its logits */
    long L = 0;
    while (L < n && L < g->n_held && g->held[L] == ids.v[L])
        L++;
    if (L == n && !(g->n_held == n && g->logits_ok))
        L = n - 1;
    if (L < g->n_held)
        rollback(g, L);
    memset(&g->pr, 0, sizeof g->pr);
    if ((rc = cache_restore(g, &ids, u)) < 0)
        goto done;
    u->cached_tokens = g->n_held;
    u->prefill_tokens = n - g->n_held;

    /* snapshot points: the end of the first message and the start of the last one */
    long pts[2];
    int first[2], npts = 0;
    if (g->im_start >= 0 && ids.v[0] == g->im_start) {
        long k = 1;
        while (k < n && ids.v[k] != g->im_start)
            k++;
        if (k < n) {
            pts[npts] = k;
            first[npts++] = 1;
        }
    }
    if (g->im_start >= 0) {
        long k = n - 1;
        while (k > 0 && ids.v[k] != g->im_start)
            k--;
        if (k > 0 && !(npts && pts[0] == k)) {
            pts[npts] = k;
            first[npts++] = 0;
        }
    }

    long cmark = cache_mark(g, rq, &ids);
    int intr = 0;
    double t0 = time_s();
    if ((rc = prefill(g, &ids, pts, first, npts, cmark, rq, fn, ud, &intr)) < 0)
        goto done;
    if (g->pc && (g->pr.reused || g->pr.blocks_written || g->pr.snaps_written || g->pr.failures))
        log_msg(LOG_INFO,
                "prefix cache: %ld tokens restored in %.3f s; %ld blocks and %ld snapshots "
                "written in %.3f s; %d errors survived",
                g->pr.reused, g->pr.restore_s, g->pr.blocks_written, g->pr.snaps_written,
                g->pr.save_s, g->pr.failures);
    u->prefill_tokens = g->n_held - u->cached_tokens;
    u->prefill_s = time_s() - t0;
    if (intr) {
        *stop = BE_STOP_INTERRUPT;
        goto done;
    }
    if (rq->max_tokens < 0) {
        *stop = BE_STOP_LENGTH;
        goto done;
    }

    /* generate: penalties see the whole context */
    if ((rc = samp_new(&sm, &rq->samp, g->n_valid)) < 0) {
        err_prefix(rc, "backend %s", b->name);
        goto done;
    }
    for (long i = 0; i < g->n_held; i++)
        samp_accept(sm, g->held[i]);
    struct tok_stream st;
    tok_stream_init(&st);
    double t1 = time_s();
    long ngen = 0;
    for (;;) {
        if ((rq->max_tokens > 0 && ngen >= rq->max_tokens) || g->n_held >= g->max_ctx) {
            *stop = BE_STOP_LENGTH;
            break;
        }
        if (stopped(rq)) {
            *stop = BE_STOP_INTERRUPT;
            break;
        }
        memcpy(g->scratch, g->logits, (size_t)g->V * sizeof(float));
        int32_t next = samp_sample(sm, g->scratch, (int32_t)g->V);
        if (genstop_is(g->stop, g->n_stop, next))
            break; /* pending: the next prompt renders and prefills it */
        buf_reset(&out);
        if ((rc = tok_stream_feed(g->t, &st, next, 0, &out)) < 0) {
            err_prefix(rc, "backend %s: decoding", b->name);
            break;
        }
        struct be_event ev = { .kind = BE_EV_RAW, .text = out.p, .len = out.len };
        int quit = out.len ? emit(fn, ud, &ev) : 0;
        /* fed even when the callback quits: the text it saw is what the state holds */
        if ((rc = feed(g, &next, 1)) < 0)
            break;
        samp_accept(sm, next);
        ngen++;
        if (quit) {
            *stop = BE_STOP_INTERRUPT;
            break;
        }
    }
    buf_reset(&out);
    if (tok_stream_flush(&st, &out) == 0 && out.len && rc == 0) {
        struct be_event ev = { .kind = BE_EV_RAW, .text = out.p, .len = out.len };
        emit(fn, ud, &ev);
    }
    u->gen_tokens = ngen;
    u->gen_s = time_s() - t1;
done:
    samp_free(sm);
    tok_ids_free(&ids);
    buf_free(&out);
    return rc;
}

/* ------------------------------------------------------------ state files */

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p) { return get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

#define HDR_BYTES (8 + 4 + 32 + 8)

static int eng_state_save(struct backend *b, struct buf *out)
{
    struct eng_be *g = (struct eng_be *)b;
    size_t start = out->len, tok_bytes, total;
    if (ckd_mul_sz(&tok_bytes, (size_t)g->n_held, 4) ||
        ckd_add_sz(&total, tok_bytes, HDR_BYTES + 8))
        return err_set(ERR_NOMEM, "backend %s: state too large", b->name);
    int rc = buf_reserve(out, total);
    if (rc < 0)
        return rc;
    uint8_t hdr[HDR_BYTES];
    memcpy(hdr, CTX_MAGIC, 8); /* with its NUL */
    put_u32(hdr + 8, CTX_VERSION);
    eng_model_id(g->e, hdr + 12);
    put_u64(hdr + 44, (uint64_t)g->n_held);
    buf_append(out, hdr, sizeof hdr);
    for (long i = 0; i < g->n_held; i++) {
        uint8_t x[4];
        put_u32(x, (uint32_t)g->held[i]);
        buf_append(out, x, 4);
    }
    uint8_t len[8] = { 0 };
    size_t len_at = out->len;
    buf_append(out, len, 8);
    if ((rc = seq_serialize(g->s, hdr + 12, out)) < 0)
        goto fail;
    put_u64((uint8_t *)out->p + len_at, (uint64_t)(out->len - len_at - 8));
    uint8_t crc[4];
    put_u32(crc, crc32c(0, out->p + start, out->len - start));
    if ((rc = buf_append(out, crc, 4)) < 0)
        goto fail;
    return 0;
fail:
    out->len = start;
    if (out->p)
        out->p[start] = 0;
    return err_prefix(rc, "backend %s: saving the context", b->name);
}

static int eng_state_load(struct backend *b, const void *data, size_t n)
{
    struct eng_be *g = (struct eng_be *)b;
    const uint8_t *p = data;
    const char *nm = b->name;
    if (n < HDR_BYTES + 8 + 4 || memcmp(p, CTX_MAGIC, 8))
        return err_set(ERR_INVAL, "backend %s: not a saved context (bad magic or truncated)", nm);
    if (get_u32(p + 8) != CTX_VERSION)
        return err_set(ERR_INVAL, "backend %s: saved context version %u, this build reads %u", nm,
                       get_u32(p + 8), CTX_VERSION);
    uint8_t id[32];
    eng_model_id(g->e, id);
    if (memcmp(p + 12, id, 32))
        return err_set(ERR_INVAL, "backend %s: the saved context belongs to another model", nm);
    if (get_u32(p + n - 4) != crc32c(0, p, n - 4))
        return err_set(ERR_INVAL, "backend %s: saved context is corrupt (checksum)", nm);
    uint64_t ntok = get_u64(p + 44), room = (n - HDR_BYTES - 8 - 4) / 4;
    if (ntok > room || ntok > (uint64_t)g->max_ctx)
        return err_set(ERR_INVAL, "backend %s: saved context: %llu tokens do not fit", nm,
                       (unsigned long long)ntok);
    const uint8_t *q = p + HDR_BYTES + ntok * 4;
    uint64_t seq_len = get_u64(q);
    if (seq_len != (uint64_t)(n - 4 - (size_t)(q + 8 - p)))
        return err_set(ERR_INVAL, "backend %s: saved context: state length %llu does not match", nm,
                       (unsigned long long)seq_len);
    int32_t *toks = malloc(ntok ? (size_t)ntok * 4 : 1);
    if (!toks)
        return err_set(ERR_NOMEM, "backend %s: out of memory", nm);
    for (uint64_t i = 0; i < ntok; i++) {
        uint32_t v = get_u32(p + HDR_BYTES + 4 * i);
        if (v >= (uint64_t)g->V) {
            free(toks);
            return err_set(ERR_INVAL,
                           "backend %s: saved context: token %llu is not in the "
                           "vocabulary",
                           nm, (unsigned long long)i);
        }
        toks[i] = (int32_t)v;
    }
    struct seq_dims d;
    eng_state_dims(g->e, &d);
    struct seq_state *s = NULL;
    int rc = seq_deserialize(&s, id, &d, q + 8, (size_t)seq_len);
    if (rc == 0 && s->pos != (long)ntok)
        rc = err_set(ERR_INVAL, "saved context: the state is at %ld, %llu tokens are listed",
                     s->pos, (unsigned long long)ntok);
    if (rc < 0) {
        seq_free(s);
        free(toks);
        return err_prefix(rc, "backend %s", nm);
    }
    snaps_drop_above(g, -1);
    seq_free(g->s);
    free(g->held);
    g->s = s;
    g->held = toks;
    g->n_held = g->held_cap = (long)ntok;
    g->logits_ok = 0;
    return 0;
}

static int eng_context(struct backend *b, const int32_t **tokens, long *n, long *max)
{
    struct eng_be *g = (struct eng_be *)b;
    *tokens = g->held;
    *n = g->n_held;
    *max = g->max_ctx;
    return 0;
}

static int eng_last_logits(struct backend *b, const float **logits, long *n)
{
    struct eng_be *g = (struct eng_be *)b;
    if (!g->logits_ok)
        return err_set(ERR_NOTFOUND, "backend %s: no logits yet", b->name);
    *logits = g->logits;
    *n = g->V;
    return 0;
}

static void eng_be_close(struct backend *b)
{
    struct eng_be *g = (struct eng_be *)b;
    for (int i = 0; i < g->n_snaps; i++)
        seq_snap_free(g->snaps[i].sn);
    pc_close(g->pc);
    seq_free(g->s);
    tok_close(g->t);
    eng_close(g->e);
    free(g->held);
    free(g->logits);
    free(g->scratch);
    free(g);
}

static const struct be_ops eng_ops = {
    .generate = eng_generate,
    .state_save = eng_state_save,
    .state_load = eng_state_load,
    .context = eng_context,
    .last_logits = eng_last_logits,
    .close = eng_be_close,
};

/* ------------------------------------------------------------ open */

static int open_cpu(struct eng_be *g, const struct be_config *cfg, int backend)
{
    const char *nm = g->b.name;
    if (!cfg->model || !*cfg->model)
        return err_set(ERR_INVAL, "backend %s: no model directory (config key model)", nm);
    if (snprintf(g->dir, sizeof g->dir, "%s", cfg->model) >= (int)sizeof g->dir)
        return err_set(ERR_INVAL, "backend %s: model path too long", nm);
    g->b.model_dir = g->dir;
    snprintf(g->b.model_desc, sizeof g->b.model_desc, "%s", cfg->model);
    struct eng_opts o = eng_opts_default();
    o.threads = cfg->threads;
    o.isa = cfg->isa;
    o.kv_type = cfg->kv_type;
    o.yarn = cfg->yarn;
    o.backend = backend;
    int rc = eng_open(&g->e, cfg->model, &o);
    if (rc < 0)
        return err_prefix(rc, "backend %s", nm);
    /* auto: the name says where it runs (model_cuda.h picks CUDA when it fits) */
    snprintf(g->b.name, sizeof g->b.name, "%s",
             engc_backend_of(g->e) == ENG_BACKEND_CUDA ? "cuda" : "cpu");
    char tp[PATH_MAX];
    if ((rc = fs_join(tp, sizeof tp, cfg->model, "tokenizer.json")) < 0 ||
        (rc = tok_open(&g->t, tp)) < 0)
        return err_prefix(rc, "backend %s", nm);
    const struct mcfg *mc = eng_cfg(g->e);
    g->V = eng_vocab(g->e);
    g->n_valid = tok_n_ids(g->t) < g->V ? tok_n_ids(g->t) : (int32_t)g->V;
    g->n_stop = genstop_ids(g->t, mc, g->stop);
    g->im_start = tok_find(g->t, "<|im_start|>", 12);
    double mp = (double)mc->max_pos * (cfg->yarn > 1 ? cfg->yarn : 1);
    g->max_ctx = cfg->context > 0 ? cfg->context : mp < (double)LONG_MAX / 2 ? (long)mp : 0;
    if (g->max_ctx <= 0)
        return err_set(ERR_INVAL, "backend %s: no context length (max_position_embeddings)", nm);
    size_t bytes;
    if (ckd_mul_sz(&bytes, (size_t)g->V, sizeof(float)) || !(g->logits = malloc(bytes)) ||
        !(g->scratch = malloc(bytes)))
        return err_set(ERR_NOMEM, "backend %s: out of memory for the logits", nm);
    rc = eng_state_new(g->e, &g->s, g->max_ctx < INITIAL_CAP ? g->max_ctx : INITIAL_CAP);
    if (rc < 0)
        return err_prefix(rc, "backend %s", nm);
    if (cfg->cache) {
        struct pc_opts po = { .path = cfg->cache_path, .budget = cfg->cache_budget };
        g->cache_every = cfg->cache_every > 0 ? cfg->cache_every : PC_EVERY_DEFAULT;
        if (pc_open(&g->pc, g->e, &po) < 0) { /* the cache is an optimisation */
            log_msg(LOG_WARN, "backend %s: prefix cache off: %s", nm, err_msg());
            g->pc = NULL;
        }
    }
    return 0;
}

int be_config_cache(struct be_config *bc, const struct cfg *c)
{
    bc->cache = cfg_bool(c, CFG_CACHE_ENABLED);
    const char *p = cfg_str(c, CFG_CACHE_PATH), *b = cfg_str(c, CFG_CACHE_BUDGET);
    bc->cache_path = p && *p ? p : NULL;
    bc->cache_every = cfg_int(c, CFG_CACHE_EVERY);
    bc->cache_budget = 0;
    if (b && *b && pc_parse_size(b, &bc->cache_budget) < 0)
        return err_set(ERR_INVAL, "cache.budget: expected a size like 20G or 500M, got '%s'", b);
    return 0;
}

int be_engine_open(struct backend **out, const char *kind, const struct be_config *cfg)
{
    *out = NULL;
    int backend = !strcmp(kind, "cuda")   ? ENG_BACKEND_CUDA
                  : !strcmp(kind, "auto") ? ENG_BACKEND_AUTO
                                          : ENG_BACKEND_CPU;
    if (strcmp(kind, "cpu") && strcmp(kind, "auto") && strcmp(kind, "cuda"))
        return err_set(ERR_INVAL, "backend '%s': expected auto, cpu or cuda", kind);
    const char *why = NULL;
    if (backend == ENG_BACKEND_CUDA && kern_cuda_device_count(&why) <= 0)
        return err_set(ERR_UNSUPPORTED, "backend cuda: no usable GPU (%s)",
                       why ? why : "none found");
    struct eng_be *g = calloc(1, sizeof *g);
    if (!g)
        return err_set(ERR_NOMEM, "backend %s: out of memory", kind);
    g->b.ops = &eng_ops;
    g->b.caps = BE_CAP_PROMPT | BE_CAP_STATE | BE_CAP_TOKENS;
    /* auto is named "cpu" until the engine says it runs on the GPU */
    snprintf(g->b.name, sizeof g->b.name, "%s", backend == ENG_BACKEND_CUDA ? "cuda" : "cpu");
    int rc = open_cpu(g, cfg, backend);
    if (rc < 0) {
        eng_be_close(&g->b);
        return rc;
    }
    *out = &g->b;
    return 0;
}
