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
 * Payloads live outside SQLite, one file per entry in "<path>-data/<id>",
 * so a restore reads them with a few large pread calls straight into the
 * sequence state (SQLite's 4 KiB overflow pages capped the throughput near
 * 1 GB/s); the database keeps the index and the commit record. Ids are
 * AUTOINCREMENT, never reused, so a file name always means one entry.
 *
 * Durability: the entry row is committed first, saying 'writing' and the
 * writer's pid, then the file is written, then a final transaction records
 * the size, one CRC-32C per CACHE_CHUNK bytes and the SHA-256 and flips the
 * row to 'complete' (the commit record). Readers see complete entries only
 * and verify every chunk's CRC as it lands (cache_verify also the SHA-256);
 * a damaged or missing file is deleted on sight. Opening drops entries whose
 * writer died and files that no row names (a writer killed between its
 * steps, a deletion interrupted before the unlink). No fsync: as with
 * SQLite's synchronous=NORMAL, a power loss may lose recent entries, and a
 * file whose data did not reach the disk fails its CRCs and is discarded.
 * A size budget is enforced by deleting the least recently used entries
 * (cache_prune).
 *
 * One struct cache per thread.
 */
#ifndef LODE_DB_CACHE_H
#define LODE_DB_CACHE_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

#define CACHE_SCHEMA_VERSION 2
#define CACHE_CHUNK (4u << 20) /* bytes per CRC-32C */

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

/* ---- reading in place (the restore path): look a chain up at once, then
 * read each entry's bytes straight into their destinations. */

/* ids[i] gets the id of the complete entry (kind, model and format of
 * proto) under keys[i], 0 when there is none: one statement in one read
 * transaction for the whole chain. */
int cache_lookup(struct cache *c, const struct cache_key *proto, const uint8_t (*keys)[32], long n,
                 int64_t *ids);
/* Marks entries used, in one transaction (ids of 0 are skipped). */
int cache_touch_ids(struct cache *c, const int64_t *ids, long n);

/* A reader over one entry: cache_read gives the next n bytes, verifying
 * each chunk's CRC-32C when its last byte has been read; ERR_INVAL when the
 * entry is damaged (it is deleted; what was written into dst is garbage).
 * Readers of different entries may read on different threads (the opening
 * thread closes them: the deletion of a damaged entry happens there).
 * cache_readv scatters the next bytes over several destinations with one
 * system call per 512 KiB. Opening an entry whose file is not in the page
 * cache starts the kernel reading all of it, so opening the next few
 * entries before reading this one overlaps their disk reads (cold restores).
 * cache_read_close(r, rc) frees r and returns rc, or when rc is 0 and not
 * all bytes were read, ERR_INVAL. A caller's ERR_INVAL (it found the bytes
 * malformed, which a damaged chunk can cause before its CRC is reached)
 * deletes the entry too; any other rc just closes. */
struct cache_rd;
int cache_read_open(struct cache *c, int64_t id, struct cache_rd **out, uint64_t *size);
int cache_read(struct cache_rd *r, void *dst, size_t n);
struct cache_seg {
    void *p;
    size_t n;
};
int cache_readv(struct cache_rd *r, const struct cache_seg *seg, int nseg);
/* cache_readv on the threads of pool (NULL or one thread: this one alone): the whole
 * chunks the segments cover are read and checked in parallel, a chunk per thread at a
 * time; the part before the first chunk boundary and after the last on this thread. */
struct pool;
int cache_readv_par(struct cache_rd *r, const struct cache_seg *seg, int nseg, struct pool *pool);
int cache_read_close(struct cache_rd *r, int rc);

/* Writes back and drops the page cache of every entry file (benchmarks: a
 * cold restore). */
int cache_drop_page_cache(struct cache *c);

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
    uint64_t file_bytes; /* the database file, its WAL and the entry files */
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
