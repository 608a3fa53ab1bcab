/* fuzz_cachefile.c - the cache store's reader (db/cache.c) on damaged entries: a fixed
 * 3000-byte payload is stored, then its file is replaced by bytes the input chooses (the
 * payload cut or extended, bit-flipped, or the input itself) and its index row's commit
 * record (size, chunk count, CRCs) optionally overwritten, and the entry is read back whole
 * (cache_get) or scattered (cache_readv, cache_readv_par). The read must either return the
 * payload exactly (only possible when the file holds it) or fail with ERR_INVAL and drop the
 * entry and its file; it never crashes or reads out of bounds.
 *
 * Input: byte 0 flags (bits 0-1 the row change, bit 2 scattered read, bits 3-4 the file:
 * payload / payload cut / payload + input / input), bytes 1-4 a parameter (little-endian),
 * the rest data. */
#include "common/err.h"
#include "common/pool.h"
#include "db/cache.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAYLOAD 3000

static char dir[64], dbpath[128];
static struct cache *c;
static struct pool *pool;
static uint8_t payload[PAYLOAD];

/* The store and its files go when the run ends (the replay in `make test` too). */
static void cleanup(void)
{
    char cmd[128];
    cache_close(c);
    pool_free(pool);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_cachefile: could not remove %s\n", dir);
}

static int setup(void)
{
    if (c)
        return 0;
    snprintf(dir, sizeof dir, "/tmp/fuzz_cachefile.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(dbpath, sizeof dbpath, "%s/c.db", dir);
    for (int i = 0; i < PAYLOAD; i++)
        payload[i] = (uint8_t)(i * 131 + 7);
    if (pool_new(&pool, 2) < 0)
        return -1;
    if (cache_open(&c, dbpath) < 0)
        return -1;
    atexit(cleanup);
    return 0;
}

static int write_file(const char *p, const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    FILE *f = fopen(p, "wb");
    if (!f)
        return -1;
    /* (fwrite's buffer must not be NULL, even for 0 bytes) */
    int rc = (!na || fwrite(a, 1, na, f) == na) && (!nb || fwrite(b, 1, nb, f) == nb) ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

static int set_row(int64_t id, int how, uint32_t par, const uint8_t *d, size_t nd)
{
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    const char *sql = how == 1   ? "UPDATE entries SET size = ? WHERE id = ?"
                      : how == 2 ? "UPDATE entries SET n_chunks = ? WHERE id = ?"
                                 : "UPDATE entries SET crcs = ? WHERE id = ?";
    int rc = -1;
    if (sqlite3_open(dbpath, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (how == 1)
            sqlite3_bind_int64(st, 1, (int64_t)(int32_t)par); /* negative sizes too */
        else if (how == 2)
            sqlite3_bind_int64(st, 1, (int64_t)(par % 5) - 1);
        else
            sqlite3_bind_blob(st, 1, d, (int)(nd < 64 ? nd : 64), SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, id);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5 || setup() < 0)
        return 0;
    int flags = data[0];
    uint32_t par = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 |
                   (uint32_t)data[4] << 24;
    const uint8_t *d = data + 5;
    size_t nd = size - 5;
    struct cache_key k = { .kind = CACHE_BLOCK, .fmt = 1 };
    if (cache_put(c, &k, NULL, 256, payload, PAYLOAD) < 0)
        return 0;
    int64_t id = 0;
    const uint8_t keys[1][32] = { { 0 } };
    if (cache_lookup(c, &k, keys, 1, &id) < 0 || id <= 0)
        __builtin_trap();
    char f[200];
    snprintf(f, sizeof f, "%s-data/%lld", dbpath, (long long)id);
    int file = (flags >> 3) & 3, same = 0;
    uint8_t flip[PAYLOAD];
    memcpy(flip, payload, PAYLOAD);
    if (file == 0) { /* the payload with one byte changed (par 0xffff....: none) */
        if (par < PAYLOAD)
            flip[par] ^= nd ? d[0] | 1 : 1;
        same = par >= PAYLOAD;
        if (write_file(f, flip, PAYLOAD, NULL, 0) < 0)
            return 0;
    } else if (file == 1) { /* cut */
        size_t keep = par % (PAYLOAD + 1);
        same = keep == PAYLOAD;
        if (write_file(f, payload, keep, NULL, 0) < 0)
            return 0;
    } else if (file == 2) { /* extended */
        same = nd == 0;
        if (write_file(f, payload, PAYLOAD, d, nd) < 0)
            return 0;
    } else {
        same = nd == PAYLOAD && !memcmp(d, payload, PAYLOAD);
        if (write_file(f, d, nd, NULL, 0) < 0)
            return 0;
    }
    int row = flags & 3;
    if (row && set_row(id, row, par, d, nd) < 0)
        return 0;
    int rc;
    uint8_t *out = NULL;
    size_t got = 0;
    if (!(flags & 4)) {
        struct buf b = { 0 };
        rc = cache_get(c, &k, &b);
        got = b.len;
        out = (uint8_t *)b.p;
    } else {
        struct cache_rd *rd;
        uint64_t n;
        rc = cache_read_open(c, id, &rd, &n);
        if (rc == 0) {
            /* segments the input sizes, within the reported size (the restore never asks for
             * more than the entry holds: kv_open checks) */
            struct cache_seg seg[8];
            int ns = 0;
            size_t left = (size_t)n, off = 0;
            out = malloc(n ? (size_t)n : 1); /* n is the file's size: at most the input's */
            if (!out) {
                cache_read_close(rd, ERR_NOMEM);
                return 0;
            }
            for (size_t i = 0; i < 7 && i < nd && left; i++) {
                size_t m = (size_t)d[i] * 16 < left ? (size_t)d[i] * 16 : left;
                seg[ns++] = (struct cache_seg){ out + off, m };
                off += m, left -= m;
            }
            seg[ns++] = (struct cache_seg){ out + off, left };
            got = off + left;
            rc = (par & 1) ? cache_readv_par(rd, seg, ns, pool) : cache_readv(rd, seg, ns);
            rc = cache_read_close(rd, rc);
        }
    }
    if (rc == 0) {
        /* accepted: the payload, which the file must hold (a row change that kept the
         * record valid, e.g. the same size, is fine) */
        if (got != PAYLOAD || !out || memcmp(out, payload, PAYLOAD) || !same)
            __builtin_trap();
    } else {
        if (same && !row)
            __builtin_trap(); /* an intact entry refused */
        if (rc != ERR_INVAL && rc != ERR_NOTFOUND)
            __builtin_trap();
        if (cache_has(c, &k) != 0 || access(f, F_OK) == 0)
            __builtin_trap(); /* a damaged entry stays */
    }
    free(out);
    return 0;
}
