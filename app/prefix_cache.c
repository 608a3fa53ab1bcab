/*
 * prefix_cache.c - restore the longest cached prefix, save blocks and
 * snapshots (see prefix_cache.h for the keys and the calling pattern).
 *
 * A snapshot payload is: u64 n_kv (little-endian), the seq_export_kv piece
 * of the partial block (n_kv bytes), then the seq_export_gdn piece.
 */
#include "app/prefix_cache.h"

#include "common/buf.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/pool.h"
#include "common/text.h"
#include "db/cache.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

struct pc {
    struct eng *e;
    struct cache *c;
    uint8_t model[32];
    uint64_t budget;
    long every;
    /* the last chain position known to be fully stored: saves skip blocks below it */
    long memo_n;
    int memo_kv;
    uint8_t memo_key[32];
    struct pool *pool; /* readers of big restores; made on first need */
};

typedef uint8_t hash32[32];

int pc_open(struct pc **out, struct eng *e, const struct pc_opts *o)
{
    *out = NULL;
    struct pc *pc = calloc(1, sizeof *pc);
    if (!pc)
        return err_set(ERR_NOMEM, "out of memory");
    int rc = cache_open(&pc->c, o ? o->path : NULL);
    if (rc < 0) {
        free(pc);
        return rc;
    }
    pc->e = e;
    eng_model_id(e, pc->model);
    pc->budget = o && o->budget ? o->budget : cache_default_budget(pc->c);
    pc->every = o && o->every ? o->every : PC_EVERY_DEFAULT;
    pc->memo_n = -1;
    *out = pc;
    return 0;
}

void pc_close(struct pc *pc)
{
    if (!pc)
        return;
    cache_close(pc->c);
    pool_free(pc->pool);
    free(pc);
}

struct cache *pc_store(struct pc *pc) { return pc->c; }

static void put_u32(struct sha256 *h, uint32_t v)
{
    uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    sha256_update(h, b, 4);
}

/* Token ids are hashed as little-endian int32 (lode runs on little-endian hosts). */
static void put_tokens(struct sha256 *h, const int32_t *t, long n)
{
    sha256_update(h, t, (size_t)n * sizeof *t);
}

/* chain[0..nb]: h_0 (model, format, KV type, block size) and each block's chain hash. */
static int chain_hashes(const struct pc *pc, int kv_type, const int32_t *tokens, long nb,
                        hash32 **out)
{
    hash32 *ch = malloc((size_t)(nb + 1) * sizeof *ch);
    if (!ch)
        return err_set(ERR_NOMEM, "prefix cache: out of memory hashing %ld blocks", nb);
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, "lode-prefix-cache", 17);
    sha256_update(&h, pc->model, 32);
    put_u32(&h, SEQ_FORMAT_VERSION);
    put_u32(&h, (uint32_t)kv_type);
    put_u32(&h, PC_BLOCK);
    sha256_final(&h, ch[0]);
    for (long j = 1; j <= nb; j++) {
        sha256_init(&h);
        sha256_update(&h, ch[j - 1], 32);
        sha256_update(&h, "B", 1);
        put_tokens(&h, tokens + (j - 1) * PC_BLOCK, PC_BLOCK);
        sha256_final(&h, ch[j]);
    }
    *out = ch;
    return 0;
}

/* The key of a snapshot at pos on top of block chain hash base (pos - b tokens past it). */
static void snap_key(const uint8_t base[32], const int32_t *tokens, long b, long pos,
                     uint8_t out[32])
{
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, base, 32);
    sha256_update(&h, "S", 1);
    put_u32(&h, (uint32_t)(pos - b));
    put_tokens(&h, tokens + b, pos - b);
    sha256_final(&h, out);
}

static struct cache_key mkkey(const struct pc *pc, int kind, const uint8_t key[32])
{
    struct cache_key k = { .kind = kind, .fmt = SEQ_FORMAT_VERSION };
    memcpy(k.key, key, 32);
    memcpy(k.model, pc->model, 32);
    return k;
}

/* ---------------------------------------------------------------- restore */

struct find {
    const int32_t *tokens;
    long b;    /* first token of the partial block */
    long have; /* candidates must be longer */
    const uint8_t *base;
    long pos; /* the match; 0 when none */
    uint8_t key[32];
};

static int find_fn(void *ctx, const uint8_t key[32], long pos)
{
    struct find *f = ctx;
    if (pos <= f->have)
        return 1; /* longest first: nothing further is useful */
    if (pos < f->b || pos - f->b >= PC_BLOCK)
        return 0;
    uint8_t want[32];
    snap_key(f->base, f->tokens, f->b, pos, want);
    if (memcmp(want, key, 32))
        return 0; /* a snapshot of another continuation */
    f->pos = pos;
    memcpy(f->key, key, 32);
    return 1;
}

/* A KV-rows piece being read: where its bytes go, after its header. */
struct kv_job {
    struct cache_rd *rd;
    uint64_t n; /* entry bytes */
    struct cache_seg seg[SEQ_MAX_SPANS + 1];
    int nseg;
    uint8_t crc[4]; /* the piece's own CRC-32C: the store's cover every byte already */
    int rc;
    char msg[256]; /* a failure's message, from whichever thread read it */
};

/* Reads the header of the n-byte KV piece at rd's position and points j->seg at the rows
 * [from, to) of s it holds, which must be the expected ones: a damaged header never sends
 * bytes to rows the state holds. */
static int kv_open(struct pc *pc, struct seq_state *s, struct cache_rd *rd, uint64_t n, long from,
                   long to, struct kv_job *j)
{
    uint8_t hdr[2048];
    size_t hn = seq_kv_header_bytes(s);
    struct seq_span sp[SEQ_MAX_SPANS];
    int nsp, rc;
    if (hn > sizeof hdr || n < hn + 4 || n > SIZE_MAX)
        return err_set(ERR_INVAL, "prefix cache: a %llu-byte KV piece", (unsigned long long)n);
    if ((rc = cache_read(rd, hdr, hn)) < 0 ||
        (rc = seq_import_kv_spans(s, pc->model, hdr, (size_t)n, from, to, sp, &nsp)) < 0)
        return rc;
    j->rd = rd;
    for (int i = 0; i < nsp; i++)
        j->seg[i] = (struct cache_seg){ sp[i].p, sp[i].n };
    j->seg[nsp] = (struct cache_seg){ j->crc, 4 };
    j->nseg = nsp + 1;
    return 0;
}

/* A KV piece whose rows start below `have`, the rows s holds: through a buffer, checked
 * (the piece's CRC-32C) before anything is written, so a damaged piece leaves s as it was. */
static int kv_buffered(struct pc *pc, struct seq_state *s, struct cache_rd *rd, uint64_t n,
                       long from, long to)
{
    struct buf b = { 0 };
    long f = -1, t = -1;
    if (n > SIZE_MAX / 2 || buf_reserve(&b, (size_t)n) < 0)
        return err_set(ERR_NOMEM, "prefix cache: out of memory for %llu bytes",
                       (unsigned long long)n);
    int rc = cache_read(rd, b.p, (size_t)n);
    if (rc == 0 && (rc = seq_import_kv(s, pc->model, b.p, (size_t)n, &f, &t)) == 0 &&
        (f != from || t != to))
        rc = err_set(ERR_INVAL, "prefix cache: rows [%ld, %ld) stored for [%ld, %ld)", f, t, from,
                     to);
    buf_free(&b);
    return rc;
}

/* The rows of a KV piece opened by kv_open. */
static int kv_read(struct kv_job *j)
{
    j->rc = cache_readv(j->rd, j->seg, j->nseg);
    if (j->rc < 0)
        snprintf(j->msg, sizeof j->msg, "%s", err_msg());
    return j->rc;
}

#define PC_PAR_BYTES (8u << 20) /* below this a read is done by the calling thread */
#define PC_MAX_THREADS 8

/* LODE_CACHE_PAR=1: threads whatever the size (tests); 0: never (benchmarks: the baseline) */
static int par_env(void)
{
    const char *v = getenv("LODE_CACHE_PAR");
    return v && (*v == '0' || *v == '1') ? *v - '0' : -1;
}
static int par_forced(void) { return par_env() == 1; }

/* The readers' pool, made on first need; NULL when it cannot run more than one thread. */
static struct pool *reader_pool(struct pc *pc)
{
    if (par_env() == 0)
        return NULL;
    if (!pc->pool)
        pool_new(&pc->pool, pool_ncpu() < PC_MAX_THREADS ? pool_ncpu() : PC_MAX_THREADS);
    return pc->pool && pool_size(pc->pool) > 1 ? pc->pool : NULL;
}

/* The rest of rd (n bytes) is a DeltaNet piece. Into s in place when s holds nothing to lose
 * (have == 0: a failure resets it); otherwise through a buffer, so a damaged piece leaves
 * the states at `have` intact. */
static int read_gdn(struct pc *pc, struct seq_state *s, struct cache_rd *rd, uint64_t n, long have,
                    long want)
{
    int rc;
    if (have > 0) {
        struct buf b = { 0 };
        if (n > SIZE_MAX / 2 || buf_reserve(&b, (size_t)n) < 0)
            return err_set(ERR_NOMEM, "prefix cache: out of memory for a snapshot");
        size_t hn = seq_gdn_header_bytes(s);
        uint64_t pos = 0;
        if ((rc = cache_read(rd, b.p, (size_t)n)) == 0 && n >= hn) {
            /* the position (the header's last 8 bytes) first: another one would leave s moved */
            for (int i = 0; i < 8; i++)
                pos |= (uint64_t)(uint8_t)b.p[hn - 8 + i] << (8 * i);
            if (pos != (uint64_t)want)
                rc = err_set(ERR_INVAL, "prefix cache: snapshot at %ld claims position %llu", want,
                             (unsigned long long)pos);
        }
        if (rc == 0)
            rc = seq_import_gdn(s, pc->model, b.p, (size_t)n);
        buf_free(&b);
        return rc;
    }
    uint8_t hdr[2048];
    size_t hn = seq_gdn_header_bytes(s);
    struct seq_span sp[SEQ_MAX_SPANS];
    int nsp;
    long pos;
    if (hn > sizeof hdr || n < hn + 4 || n > SIZE_MAX)
        return err_set(ERR_INVAL, "prefix cache: a %llu-byte snapshot", (unsigned long long)n);
    if ((rc = cache_read(rd, hdr, hn)) < 0 ||
        (rc = seq_import_gdn_spans(s, pc->model, hdr, (size_t)n, &pos, sp, &nsp)) < 0)
        return rc;
    struct cache_seg seg[SEQ_MAX_SPANS + 1];
    uint8_t crc[4];
    for (int i = 0; i < nsp; i++)
        seg[i] = (struct cache_seg){ sp[i].p, sp[i].n };
    seg[nsp] = (struct cache_seg){ crc, 4 };
    /* the real model's snapshot is ~63 MiB: its whole chunks are read on the pool's threads,
     * like a window of KV blocks */
    struct pool *pool = n >= PC_PAR_BYTES || par_forced() ? reader_pool(pc) : NULL;
    if ((rc = cache_readv_par(rd, seg, nsp + 1, pool)) == 0)
        rc = pos == want ? seq_import_gdn_finish(s, pos)
                         : err_set(ERR_INVAL, "prefix cache: snapshot at %ld claims position %ld",
                                   want, pos);
    if (rc < 0)
        seq_reset(s); /* half-written states: back to the empty state it was */
    return rc;
}

/* Blocks are restored a window at a time: opened in order (the database, the state's row
 * bookkeeping, and for cold files the kernel's read-ahead of all of them), then their rows
 * read by the threads of pc->pool, each block straight into its rows. */
#define PC_WINDOW 64

struct kv_window {
    struct kv_job *jobs;
    long n;
};

static void window_part(void *ctx, int tid, int nth)
{
    struct kv_window *w = ctx;
    long lo, hi;
    pool_range(w->n, tid, nth, &lo, &hi);
    for (long i = lo; i < hi; i++)
        kv_read(&w->jobs[i]);
}

/* Blocks [j0, j1] (ids[j]) into s, which holds rows [0, have). */
static int restore_blocks(struct pc *pc, struct seq_state *s, const int64_t *ids, long j0, long j1,
                          long have, struct pc_report *r)
{
    int rc = 0;
    if (j0 <= j1 && (j0 - 1) * PC_BLOCK < have) {
        /* the block s holds part of */
        struct cache_rd *rd;
        uint64_t n;
        if ((rc = cache_read_open(pc->c, ids[j0], &rd, &n)) < 0 ||
            (rc = cache_read_close(
                 rd, kv_buffered(pc, s, rd, n, (j0 - 1) * PC_BLOCK, j0 * PC_BLOCK))) < 0)
            return rc;
        r->blocks_read++;
        r->bytes_read += n;
        j0++;
    }
    /* room for every row first: a window holds pointers into the rows while it opens more */
    if (j0 <= j1 && (rc = seq_reserve(s, j1 * PC_BLOCK)) < 0)
        return rc;
    struct kv_job *jobs = calloc(PC_WINDOW, sizeof *jobs);
    if (!jobs)
        return err_set(ERR_NOMEM, "prefix cache: out of memory");
    for (long w = j0; w <= j1 && rc == 0; w += PC_WINDOW) {
        long nw = j1 - w + 1 < PC_WINDOW ? j1 - w + 1 : PC_WINDOW, opened = 0;
        uint64_t bytes = 0;
        memset(jobs, 0, (size_t)nw * sizeof *jobs);
        for (; opened < nw && rc == 0; opened++) {
            long j = w + opened;
            struct kv_job *jb = &jobs[opened];
            if ((rc = cache_read_open(pc->c, ids[j], &jb->rd, &jb->n)) < 0)
                break;
            if ((rc = kv_open(pc, s, jb->rd, jb->n, (j - 1) * PC_BLOCK, j * PC_BLOCK, jb)) < 0) {
                cache_read_close(jb->rd, rc);
                jb->rd = NULL;
                break;
            }
            bytes += jb->n;
        }
        if (rc == 0) {
            struct kv_window kw = { jobs, nw };
            struct pool *pool =
                nw > 1 && (bytes >= PC_PAR_BYTES || par_forced()) ? reader_pool(pc) : NULL;
            if (pool)
                pool_run(pool, window_part, &kw);
            else
                window_part(&kw, 0, 1);
        }
        /* closed here, in order: the first failure is the one reported */
        for (long i = 0; i < nw; i++) {
            struct kv_job *jb = &jobs[i];
            if (!jb->rd)
                continue;
            int jrc = rc < 0 && !jb->rc ? ERR_INTERRUPTED : jb->rc;
            if (jrc < 0 && jrc != ERR_INTERRUPTED && rc == 0)
                rc = err_set(jrc, "%s", jb->msg);
            jrc = cache_read_close(jb->rd, jrc);
            if (rc == 0 && jrc < 0)
                rc = jrc;
            if (rc == 0) {
                r->blocks_read++;
                r->bytes_read += jb->n;
            }
        }
    }
    free(jobs);
    return rc;
}

/* Restores blocks (have, bi] (ids[1..bi]) and the snapshot snap_id; s->pos moves only on
 * success. Every entry relied on is marked used, in one transaction. */
static int restore_one(struct pc *pc, struct seq_state *s, const int64_t *ids, long bi, long have,
                       int64_t snap_id, const struct find *f, struct pc_report *r)
{
    int rc = restore_blocks(pc, s, ids, have / PC_BLOCK + 1, bi, have, r);
    struct cache_rd *rd = NULL;
    uint64_t n = 0;
    if (rc == 0 && (rc = cache_read_open(pc->c, snap_id, &rd, &n)) == 0) {
        uint8_t len[8];
        uint64_t nkv = 0;
        if (n < 8 || (rc = cache_read(rd, len, 8)) < 0) {
            rc = rc < 0 ? rc : err_set(ERR_INVAL, "prefix cache: malformed snapshot");
        } else {
            for (int i = 0; i < 8; i++)
                nkv |= (uint64_t)len[i] << (8 * i);
            if (nkv > n - 8)
                rc = err_set(ERR_INVAL, "prefix cache: malformed snapshot");
        }
        struct kv_job kj = { 0 };
        if (rc == 0 && bi * PC_BLOCK < have)
            rc = kv_buffered(pc, s, rd, nkv, bi * PC_BLOCK, f->pos);
        else if (rc == 0 && (rc = kv_open(pc, s, rd, nkv, bi * PC_BLOCK, f->pos, &kj)) == 0)
            rc = kv_read(&kj);
        if (rc == 0)
            rc = read_gdn(pc, s, rd, n - 8 - nkv, have, f->pos);
        rc = cache_read_close(rd, rc);
        if (rc == 0 && s->pos != f->pos)
            rc = err_set(ERR_INVAL, "prefix cache: snapshot at %ld claims position %ld", f->pos,
                         s->pos);
        if (rc == 0)
            r->bytes_read += n;
    }
    if (rc == 0) {
        /* blocks [1, bi] and the snapshot: one transaction; LRU order is best effort */
        int64_t *used = malloc((size_t)(bi + 1) * sizeof *used);
        if (used) {
            memcpy(used, ids + 1, (size_t)bi * sizeof *used);
            used[bi] = snap_id;
            if (cache_touch_ids(pc->c, used, bi + 1) < 0)
                log_msg(LOG_WARN, "prefix cache: %s", err_msg());
            free(used);
        }
    }
    return rc;
}

/* Restores at most `limit` tokens of tokens[0, n). */
static int restore(struct pc *pc, struct seq_state *s, const int32_t *tokens, long n, long limit,
                   long have, long *reused, struct pc_report *r)
{
    struct pc_report dummy = { 0 };
    r = r ? r : &dummy;
    *reused = s->pos;
    if (have != s->pos || have < 0 || n < 0)
        return err_set(ERR_INVAL, "prefix cache: state at %ld, caller says %ld", s->pos, have);
    if (limit > n)
        limit = n;
    if (limit <= have)
        return 0;
    double t0 = time_s();
    long nb = limit / PC_BLOCK;
    hash32 *chain;
    int rc = chain_hashes(pc, s->kv_type, tokens, nb, &chain);
    if (rc < 0)
        return rc;
    int64_t *ids = malloc((size_t)(nb + 1) * sizeof *ids);
    if (!ids) {
        free(chain);
        return err_set(ERR_NOMEM, "prefix cache: out of memory looking up %ld blocks", nb);
    }
    ids[0] = 0;
    /* a damaged entry is deleted when found, so each retry sees less; a few are plenty */
    for (int attempt = 0; attempt < 4; attempt++) {
        struct find f = { .tokens = tokens, .have = have };
        struct cache_key bk = mkkey(pc, CACHE_BLOCK, chain[0]);
        /* the whole chain at once; a block found missing below cuts the candidates */
        if ((rc = cache_lookup(pc->c, &bk, (const uint8_t(*)[32])(chain + 1), nb, ids + 1)) < 0)
            break;
        long ok = 0; /* blocks [1, ok] are all cached or held by s */
        while (ok < nb && (ids[ok + 1] || (ok + 1) * PC_BLOCK <= have))
            ok++;
        long bi;
        for (bi = ok; bi >= 0 && bi * PC_BLOCK + PC_BLOCK - 1 > have; bi--) {
            f.b = bi * PC_BLOCK;
            f.base = chain[bi];
            struct cache_key k = mkkey(pc, CACHE_SNAP, chain[bi]);
            if ((rc = cache_snaps(pc->c, &k, chain[bi], limit, find_fn, &f)) < 0 || f.pos)
                break;
        }
        if (rc < 0 || !f.pos)
            break;
        struct cache_key sk = mkkey(pc, CACHE_SNAP, f.key);
        int64_t snap_id;
        if ((rc = cache_lookup(pc->c, &sk, (const uint8_t(*)[32]) & f.key, 1, &snap_id)) < 0)
            break;
        rc = snap_id ? restore_one(pc, s, ids, bi, have, snap_id, &f, r)
                     : err_set(ERR_INVAL, "prefix cache: a snapshot vanished");
        if (rc == 0) {
            pc->memo_n = bi;
            pc->memo_kv = s->kv_type;
            memcpy(pc->memo_key, chain[bi], 32);
            break;
        }
        if (rc == ERR_NOMEM)
            break;
        /* s->pos is still `have`: the rows imported above it are just overwritten later */
        log_msg(LOG_WARN, "prefix cache: %s (trying a shorter prefix)", err_msg());
        r->failures++;
        rc = 0;
    }
    free(ids);
    free(chain);
    if (rc < 0 && rc != ERR_NOMEM) {
        log_msg(LOG_WARN, "prefix cache: %s (computing instead)", err_msg());
        r->failures++;
        rc = 0;
    }
    *reused = s->pos;
    r->reused += s->pos - have;
    r->restore_s += time_s() - t0;
    return rc;
}

int pc_restore(struct pc *pc, struct seq_state *s, const int32_t *tokens, long n, long have,
               long *reused, struct pc_report *r)
{
    return restore(pc, s, tokens, n, n - 1, have, reused, r);
}

/* ---------------------------------------------------------------- save */

static int put_block(struct pc *pc, const struct seq_state *s, const uint8_t key[32], long j,
                     struct buf *b, struct pc_report *r)
{
    struct cache_key k = mkkey(pc, CACHE_BLOCK, key);
    int rc = cache_has(pc->c, &k);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    buf_reset(b);
    if ((rc = seq_export_kv(s, pc->model, (j - 1) * PC_BLOCK, j * PC_BLOCK, b)) < 0 ||
        (rc = cache_put(pc->c, &k, NULL, j * PC_BLOCK, b->p, b->len)) < 0)
        return rc;
    r->blocks_written++;
    r->bytes_written += b->len;
    return 0;
}

int pc_save(struct pc *pc, const struct seq_state *s, const int32_t *tokens, long n,
            struct pc_report *r)
{
    struct pc_report dummy = { 0 };
    r = r ? r : &dummy;
    if (n != s->pos || n < 0)
        return err_set(ERR_INVAL, "prefix cache: saving %ld tokens of a state at %ld", n, s->pos);
    if (n == 0)
        return 0;
    double t0 = time_s();
    long nb = n / PC_BLOCK;
    hash32 *chain;
    int rc = chain_hashes(pc, s->kv_type, tokens, nb, &chain);
    if (rc < 0)
        return rc;
    struct buf b = { 0 };
    long j = 1;
    if (pc->memo_n >= 0 && pc->memo_n <= nb && pc->memo_kv == s->kv_type &&
        !memcmp(pc->memo_key, chain[pc->memo_n], 32))
        j = pc->memo_n + 1;
    for (; j <= nb && rc == 0; j++)
        rc = put_block(pc, s, chain[j], j, &b, r);
    if (rc == 0) {
        uint8_t key[32];
        snap_key(chain[nb], tokens, nb * PC_BLOCK, n, key);
        struct cache_key k = mkkey(pc, CACHE_SNAP, key);
        if ((rc = cache_has(pc->c, &k)) == 1) {
            rc = cache_touch(pc->c, &k);
        } else if (rc == 0) {
            uint8_t len[8] = { 0 };
            buf_reset(&b);
            if ((rc = buf_append(&b, len, 8)) == 0 &&
                (rc = seq_export_kv(s, pc->model, nb * PC_BLOCK, n, &b)) == 0) {
                uint64_t nkv = b.len - 8;
                for (int i = 0; i < 8; i++)
                    b.p[i] = (char)(uint8_t)(nkv >> (8 * i));
                if ((rc = seq_export_gdn(s, pc->model, &b)) == 0 &&
                    (rc = cache_put(pc->c, &k, chain[nb], n, b.p, b.len)) == 0) {
                    r->snaps_written++;
                    r->bytes_written += b.len;
                }
            }
        }
    }
    if (rc == 0) {
        pc->memo_n = nb;
        pc->memo_kv = s->kv_type;
        memcpy(pc->memo_key, chain[nb], 32);
        rc = cache_prune(pc->c, pc->budget, NULL);
    }
    buf_free(&b);
    free(chain);
    if (rc < 0 && rc != ERR_NOMEM) {
        /* the cache is an optimisation: a full disk or a busy file does not fail the turn */
        log_msg(LOG_WARN, "prefix cache: saving failed: %s", err_msg());
        r->failures++;
        rc = 0;
    }
    r->save_s += time_s() - t0;
    return rc;
}

/* ---------------------------------------------------------------- prefill */

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

#define PC_STEP 512 /* tokens per forward call: the granularity of progress and interrupts */

int pc_prefill(struct pc *pc, struct seq_state *s, const int32_t *tokens, long n, long have,
               const long *marks, int nmarks, float *logits, pc_progress_fn fn, void *ctx,
               struct pc_report *r)
{
    struct pc_report dummy = { 0 };
    r = r ? r : &dummy;
    long pos;
    /* without logits to produce, the whole sequence may come from the cache */
    int rc = restore(pc, s, tokens, n, logits ? n - 1 : n, have, &pos, r);
    if (rc < 0)
        return rc;
    /* checkpoints past pos: the marks, every `every` tokens, and the end */
    long nstops = 1 + nmarks + (pc->every > 0 ? (n - pos) / pc->every + 1 : 0);
    long *stops = malloc((size_t)nstops * sizeof *stops), ns = 0;
    if (!stops)
        return err_set(ERR_NOMEM, "out of memory");
    for (int i = 0; i < nmarks; i++)
        if (marks[i] > pos && marks[i] < n)
            stops[ns++] = marks[i];
    if (pc->every > 0)
        for (long p = (pos / pc->every + 1) * pc->every; p < n; p += pc->every)
            stops[ns++] = p;
    stops[ns++] = n;
    qsort(stops, (size_t)ns, sizeof *stops, cmp_long);
    double t0 = time_s();
    long start = pos;
    for (long i = 0; i < ns && rc == 0; i++) {
        if (stops[i] <= s->pos)
            continue;
        while (s->pos < stops[i] && rc == 0) {
            long T = stops[i] - s->pos < PC_STEP ? stops[i] - s->pos : PC_STEP;
            int last = s->pos + T == n;
            rc = eng_forward(pc->e, s, tokens + s->pos, T, last ? logits : NULL, 0);
            if (rc == 0 && fn && fn(ctx, s->pos, n))
                rc = err_set(ERR_INTERRUPTED, "prefill interrupted at token %ld of %ld", s->pos, n);
        }
        if (rc == 0 || rc == ERR_INTERRUPTED) {
            double ts = time_s();
            int src = pc_save(pc, s, tokens, s->pos, r);
            t0 += time_s() - ts; /* saving is not prefill time */
            if (src < 0)
                rc = src;
        }
    }
    r->computed += s->pos - start;
    r->prefill_s += time_s() - t0;
    free(stops);
    return rc;
}

/* ---------------------------------------------------------------- options */

int pc_parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0))
        return err_set(ERR_INVAL, "'%s' is not a size", s);
    const char *units = "KMGT", *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    if (u) {
        for (const char *k = units; k <= u; k++)
            v *= 1024;
        end++;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || v >= 18e18)
        return err_set(ERR_INVAL, "'%s' is not a size", s);
    *out = (uint64_t)v;
    return 0;
}
