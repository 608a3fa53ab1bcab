/*
 * prefix_cache.h - the persistent prefix/state cache glue (pc_): between an
 * engine, a sequence state and the store in db/cache.h.
 *
 * What is stored, keyed by the tokens that produced it:
 *  - blocks: the KV rows of the full-attention layers for each complete block
 *    of PC_BLOCK tokens, in the state's KV format (FP8 by default), under the
 *    chain hash h_j = SHA-256(h_{j-1} | tokens of block j), where h_0 folds in
 *    the model identity, the state-format version, the KV type and PC_BLOCK;
 *  - snapshots: the DeltaNet conv + recurrent states at a checkpoint position
 *    p, with the KV rows of the partial block [floor(p / PC_BLOCK) * PC_BLOCK,
 *    p), under SHA-256(h_b | tokens of the partial block), based on h_b.
 * A prefix is restorable when it ends at a snapshot and every block below
 * that snapshot is cached.
 *
 * The engine backend's turn, one call before the prefill and one after:
 *
 *     long reused;
 *     pc_restore(pc, s, toks, n, have, &reused);   // s->pos == reused (>= have)
 *     eng_forward(e, s, toks + s->pos, n - s->pos, logits, 0);
 *     pc_save(pc, s, toks, n);                     // blocks + a snapshot at n
 *
 * pc_prefill does all three and also stops every `every` tokens (and at given
 * marks: the end of the system prompt, of each loaded file group) to save a
 * snapshot there. Cache failures (a damaged entry, a full disk) never fail
 * the turn: pc_restore falls back to a shorter prefix or none, pc_save
 * reports through *r and the log. Only bad arguments and out-of-memory are
 * errors.
 *
 * Restores read the stored bytes straight into the state's rows (one copy out
 * of the page cache, one CRC pass); a restore of >= 8 MiB of blocks, and a
 * snapshot of >= 8 MiB (its whole 4 MiB chunks), are read on up to 8 threads
 * of a pool the pc makes on first need (LODE_CACHE_PAR=1 forces the threads,
 * for tests; LODE_CACHE_PAR=0 turns them off, the benchmarks' baseline). A pc
 * is used by one thread at a time.
 */
#ifndef LODE_APP_PREFIX_CACHE_H
#define LODE_APP_PREFIX_CACHE_H

#include "engine/model.h"

#include <stdint.h>

#define PC_BLOCK 256
#define PC_EVERY_DEFAULT 4096

struct pc_opts {
    const char *path; /* cache file; NULL: $XDG_CACHE_HOME/lode/cache.db */
    uint64_t budget;  /* bytes; 0: cache_default_budget (a share of free disk) */
    long every;       /* pc_prefill: a snapshot every N tokens; 0: PC_EVERY_DEFAULT, < 0: none */
};

/* What one call did (added to, so one struct can sum a turn). */
struct pc_report {
    long reused;   /* tokens restored from the cache */
    long computed; /* tokens prefilled (pc_prefill) */
    long blocks_read, blocks_written, snaps_written;
    uint64_t bytes_read, bytes_written;
    double restore_s, save_s, prefill_s;
    int failures; /* cache errors survived (damaged entries, write failures) */
};

struct pc;

/* Opens the cache for engine e (borrowed; must outlive pc). */
int pc_open(struct pc **out, struct eng *e, const struct pc_opts *o);
void pc_close(struct pc *pc);
struct cache *pc_store(struct pc *pc);

/* Restores into s the longest cached prefix of tokens[0, n) that ends at a
 * snapshot, shorter than n (one token at least is left to compute the next
 * logits) and longer than have; tokens[0, have) must be what s holds now
 * (s->pos == have; 0 for a fresh state). *reused gets s->pos after the call:
 * the restored length, or have when the cache offers nothing longer (s is
 * then untouched). */
int pc_restore(struct pc *pc, struct seq_state *s, const int32_t *tokens, long n, long have,
               long *reused, struct pc_report *r);

/* Stores what s holds for tokens[0, n) (n == s->pos): every complete block
 * not yet cached and a snapshot at n; then evicts down to the budget. */
int pc_save(struct pc *pc, const struct seq_state *s, const int32_t *tokens, long n,
            struct pc_report *r);

/* Progress of pc_prefill: return non-zero to stop (ERR_INTERRUPTED; what was
 * computed so far is saved). */
typedef int (*pc_progress_fn)(void *ctx, long done, long total);

/* Restore + prefill of the rest + save, stopping at every o.every tokens and
 * at marks[0..nmarks) (positions, any order) to save snapshots there. s holds
 * tokens[0, have) on entry. logits (may be NULL) gets the last token's;
 * without logits the whole sequence may be restored and nothing computed. */
int pc_prefill(struct pc *pc, struct seq_state *s, const int32_t *tokens, long n, long have,
               const long *marks, int nmarks, float *logits, pc_progress_fn fn, void *ctx,
               struct pc_report *r);

/* "20G", "500M", "64K", "1.5T", "12345" (bytes; a trailing B is allowed) -> *out.
 * ERR_INVAL when malformed. */
int pc_parse_size(const char *s, uint64_t *out);

#endif
