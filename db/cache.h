/*
 * cache.h - the persistent prefix/state cache store: opaque payloads (KV
 * blocks, DeltaNet snapshots) under 32-byte keys, in their own SQLite file,
 * $XDG_CACHE_HOME/lode/cache.db (a cache: deleting the file loses nothing
 * but time, so it lives apart from the sessions in lode.db and has its own
 * schema version).
 *
 * Every entry records the model identity (32 bytes: the checkpoint hash) and
 * the engine's state-format version; lookups match both, so another model or
 * format never reuses an entry. The key itself is computed by the caller
 * (app/prefix_cache.c: a chain of block hashes that already folds both in).
 *
 * Durability, as in db/store.c: payloads are cut into chunks of at most
 * CACHE_CHUNK bytes, each with a CRC-32C, written while the entry row says
 * 'writing'; a final transaction records size and SHA-256 and flips it to
 * 'complete' (the commit record). Readers see complete entries only and
 * verify every chunk (cache_verify also the SHA-256); a damaged entry is
 * deleted on sight. Opening drops
 * entries whose writer died. A size budget is enforced by deleting the least
 * recently used entries (cache_prune).
 *
 * One struct cache per thread.
 */
#ifndef LODE_DB_CACHE_H
#define LODE_DB_CACHE_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

#define CACHE_SCHEMA_VERSION 1
#define CACHE_CHUNK (4u << 20) /* 4 MiB: well under SQLite's 1 GB value limit */

enum cache_kind { CACHE_BLOCK = 1, CACHE_SNAP = 2 };

struct cache;

/* Opens (creating if needed) the cache at path, or at
 * $XDG_CACHE_HOME/lode/cache.db when path is NULL. Caller closes it. */
int cache_open(struct cache **out, const char *path);
void cache_close(struct cache *c);
const char *cache_path(const struct cache *c);

/* What identifies an entry: kind, key, model identity and format version. */
struct cache_key {
    int kind; /* enum cache_kind */
    uint8_t key[32];
    uint8_t model[32];
    uint32_t fmt;
};

/* Stores a payload. base is what a snapshot extends (the key of the block
 * chain it sits on; NULL for blocks), pos the token position the entry ends
 * at. An existing complete entry with the same identity is replaced, so two
 * writers racing leave one. Nothing is visible before the commit record. */
int cache_put(struct cache *c, const struct cache_key *k, const uint8_t base[32], long pos,
              const void *data, size_t n);
/* 1 when a complete entry exists, 0 when not, < 0 on error. */
int cache_has(struct cache *c, const struct cache_key *k);
/* Reads an entry, verifying every chunk's CRC-32C, their count and the size,
 * and marks it used (LRU). ERR_NOTFOUND when absent; ERR_INVAL when damaged (the entry
 * is deleted). */
int cache_get(struct cache *c, const struct cache_key *k, struct buf *out);
/* Marks entries used without reading them (the blocks a restore relied on). */
int cache_touch(struct cache *c, const struct cache_key *k);

/* Snapshots that sit on base (model and format of k; k->key is ignored)
 * with pos <= max_pos, longest first: fn gets each one's key and position
 * and returns 0 to go on, 1 to stop, < 0 to fail. */
typedef int (*cache_snap_fn)(void *ctx, const uint8_t key[32], long pos);
int cache_snaps(struct cache *c, const struct cache_key *k, const uint8_t base[32], long max_pos,
                cache_snap_fn fn, void *ctx);

struct cache_stats {
    int64_t blocks, snaps; /* complete entries */
    uint64_t block_bytes, snap_bytes;
    int64_t models;      /* distinct (model, format) pairs */
    int64_t writing;     /* entries being written (by live processes) */
    uint64_t file_bytes; /* the database file and its WAL */
};
int cache_stats(struct cache *c, struct cache_stats *st);

/* Deletes least recently used entries until the complete entries fit in
 * budget bytes; *freed (may be NULL) gets the payload bytes removed. */
int cache_prune(struct cache *c, uint64_t budget, uint64_t *freed);
/* Deletes everything and gives the space back to the file system. */
int cache_clear(struct cache *c);
/* Reads every entry, also checking its SHA-256, and deletes the damaged ones;
 * *bad gets their count. */
int cache_verify(struct cache *c, int64_t *checked, int64_t *bad);

/* The default budget: a quarter of what the file system holding the cache
 * has free, plus what the cache already holds (so it does not shrink itself
 * as it fills the disk). */
uint64_t cache_default_budget(struct cache *c);

#endif
