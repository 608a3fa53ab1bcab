/*
 * cache.c - the prefix/state cache store (see cache.h for the rules).
 *
 * Schema history (CACHE_SCHEMA_VERSION, kept in PRAGMA user_version):
 *   1  entries, chunks (payloads as 4 MiB blobs)
 *   2  payloads in files beside the database: the chunks table goes, entries
 *      gains the per-chunk CRCs; old entries are dropped (a cache: recomputed)
 * Add version N+1 to `migrations`; never edit an old one.
 */
#include "db/cache.h"

#include "common/ckd.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hash.h"
#include "common/pool.h"
#include "db/sqlutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

struct cache {
    struct sqlu s;
    char dir[PATH_MAX];    /* "<path>-data": one file per entry */
    sqlite3_stmt *st_meta; /* the reader's lookup, prepared once */
};

static const char *const migrations[] = {
    /* version 1 */
    "CREATE TABLE entries ("
    "  id INTEGER PRIMARY KEY,"
    "  kind INTEGER NOT NULL,"
    "  key BLOB NOT NULL,"
    "  model BLOB NOT NULL,"
    "  fmt INTEGER NOT NULL,"
    "  base BLOB,"
    "  pos INTEGER NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('writing', 'complete')),"
    "  size INTEGER NOT NULL DEFAULT 0,"
    "  n_chunks INTEGER NOT NULL DEFAULT 0,"
    "  sha256 BLOB,"
    "  writer_pid INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL,"
    "  used INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX entries_key ON entries(key, kind);"
    "CREATE INDEX entries_base ON entries(base, pos);"
    "CREATE INDEX entries_used ON entries(used);"
    "CREATE TABLE chunks ("
    "  entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  crc32c INTEGER NOT NULL,"
    "  data BLOB NOT NULL,"
    "  PRIMARY KEY (entry_id, seq));",
    /* version 2: AUTOINCREMENT so an id (a file name) is never reused */
    "DROP TABLE chunks;"
    "DROP TABLE entries;"
    "CREATE TABLE entries ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  kind INTEGER NOT NULL,"
    "  key BLOB NOT NULL,"
    "  model BLOB NOT NULL,"
    "  fmt INTEGER NOT NULL,"
    "  base BLOB,"
    "  pos INTEGER NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('writing', 'complete')),"
    "  size INTEGER NOT NULL DEFAULT 0,"
    "  n_chunks INTEGER NOT NULL DEFAULT 0,"
    "  crcs BLOB,"
    "  sha256 BLOB,"
    "  writer_pid INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL,"
    "  used INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX entries_key ON entries(key, kind);"
    "CREATE INDEX entries_base ON entries(base, pos);"
    "CREATE INDEX entries_used ON entries(used);",
};
#define NMIGRATIONS (int)(sizeof migrations / sizeof migrations[0])

/* auto_vacuum only takes effect before the first table: set it every time, it is a no-op
 * later. synchronous=NORMAL is enough for a cache in WAL mode: a power loss may drop the
 * last transactions, but they are applied in order, so a commit record never survives
 * without the row that preceded its file. */
static const char *const pragmas[] = {
    "PRAGMA auto_vacuum = INCREMENTAL",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    NULL,
};

static const struct sqlu_spec spec = {
    .xdg = FS_XDG_CACHE,
    .xdg_file = "cache.db",
    .busy_ms = 10000,
    .pragmas = pragmas,
    .migrations = migrations,
    .nmigrations = NMIGRATIONS,
    .schema_name = "cache schema",
    .newer_hint = "upgrade lode or remove the file",
    .migrating = "migrating the cache to schema",
    .writing_sql = "SELECT id, writer_pid FROM entries WHERE state = 'writing'",
    .drop_sql = "DELETE FROM entries WHERE id = ?",
    .drop_what = "dropping an incomplete entry",
};

/* Runs a one-row query with one int64 parameter (or none when p < 0) and returns column 0. */
static int query_i64(struct cache *c, const char *sql, int64_t p, int64_t *out)
{
    sqlite3_stmt *st;
    int rc = sqlu_prepare(&c->s, &st, sql);
    if (rc < 0)
        return rc;
    if (p >= 0)
        sqlite3_bind_int64(st, 1, p);
    int r = sqlite3_step(st);
    *out = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return r == SQLITE_ROW || r == SQLITE_DONE ? 0 : sqlu_err(&c->s, "query");
}

/* ---------------------------------------------------------------- files */

static void file_of(const struct cache *c, int64_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%lld", c->dir, (long long)id);
}

static void unlink_id(const struct cache *c, int64_t id)
{
    char p[PATH_MAX + 32];
    file_of(c, id, p, sizeof p);
    unlink(p); /* ENOENT: an orphan sweep or another process was first */
}

/* The entry id a file name stands for; 0 when the name is not one of ours. */
static int64_t id_of_name(const char *name)
{
    int64_t v = 0;
    if (!*name || strlen(name) > 18)
        return 0;
    for (const char *p = name; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
    }
    return v;
}

/* Calls fn for every entry file in the data folder. */
static int each_file(struct cache *c,
                     int (*fn)(struct cache *c, int64_t id, const char *path, void *ctx), void *ctx)
{
    DIR *d = opendir(c->dir);
    if (!d)
        return errno == ENOENT ? 0 : err_set(ERR_IO, "%s: %s", c->dir, strerror(errno));
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        int64_t id = id_of_name(de->d_name);
        if (!id)
            continue;
        char p[PATH_MAX + 32];
        file_of(c, id, p, sizeof p);
        rc = fn(c, id, p, ctx);
    }
    closedir(d);
    return rc;
}

/* Files no row names: the writer was killed between its row and its commit record and the
 * row has been dropped since, or a deletion stopped before its unlink. A writer commits its
 * row before it creates the file, so a file without a row is never one being written: the
 * ids are read after the folder is listed (every open does this, so one query, not one per
 * file). */
struct sweep {
    int64_t *files;
    size_t n, cap;
};

static int list_one(struct cache *c, int64_t id, const char *path, void *ctx)
{
    (void)c, (void)path;
    struct sweep *sw = ctx;
    if (sw->n == sw->cap) {
        size_t cap = sw->cap ? 2 * sw->cap : 256;
        int64_t *f = realloc(sw->files, cap * sizeof *f);
        if (!f)
            return err_set(ERR_NOMEM, "out of memory listing %s", c->dir);
        sw->files = f, sw->cap = cap;
    }
    sw->files[sw->n++] = id;
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int sweep(struct cache *c)
{
    struct sweep sw = { 0 };
    int rc = each_file(c, list_one, &sw);
    if (rc < 0 || !sw.n) {
        free(sw.files);
        return rc;
    }
    qsort(sw.files, sw.n, sizeof *sw.files, cmp_i64);
    /* walk both in id order: a file id below the next row id has no row */
    sqlite3_stmt *st;
    if ((rc = sqlu_prepare(&c->s, &st, "SELECT id FROM entries ORDER BY id")) < 0) {
        free(sw.files);
        return rc;
    }
    size_t i = 0;
    int r = SQLITE_DONE;
    while (i < sw.n && (r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t row = sqlite3_column_int64(st, 0);
        for (; i < sw.n && sw.files[i] < row; i++)
            unlink_id(c, sw.files[i]);
        if (i < sw.n && sw.files[i] == row)
            i++;
    }
    if (i < sw.n && r != SQLITE_DONE)
        rc = sqlu_err(&c->s, "sweeping entry files");
    for (; rc == 0 && i < sw.n; i++)
        unlink_id(c, sw.files[i]);
    sqlite3_finalize(st);
    free(sw.files);
    return rc;
}

int cache_open(struct cache **out, const char *path)
{
    *out = NULL;
    struct cache *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(ERR_NOMEM, "out of memory");
    int rc = sqlu_open(&c->s, path, &spec);
    if (rc < 0) {
        free(c);
        return rc;
    }
    if ((size_t)snprintf(c->dir, sizeof c->dir, "%s-data", c->s.path) >= sizeof c->dir)
        rc = err_set(ERR_INVAL, "%s: path too long", c->s.path);
    else if (mkdir(c->dir, 0700) < 0 && errno != EEXIST)
        rc = err_set(ERR_IO, "%s: %s", c->dir, strerror(errno));
    if (rc == 0)
        rc = sweep(c);
    if (rc < 0) {
        cache_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void cache_close(struct cache *c)
{
    if (!c)
        return;
    sqlite3_finalize(c->st_meta);
    sqlu_close(&c->s);
    free(c);
}

const char *cache_path(const struct cache *c) { return c->s.path; }

/* ---------------------------------------------------------------- entries */

#define MATCH "kind = ?1 AND key = ?2 AND model = ?3 AND fmt = ?4 AND state = 'complete'"

/* Binds k to the ?1..?4 of MATCH: the "ibbi" of sqlu_stmt. */
#define KEY_ARGS(k) (int64_t)(k)->kind, (k)->key, (k)->model, (int64_t)(k)->fmt

static int mark_used(struct cache *c, int64_t id)
{
    return sqlu_run(&c->s, "marking an entry used",
                    "UPDATE entries SET used = (SELECT coalesce(max(used), 0) + 1 FROM entries) "
                    "WHERE id = ?",
                    "i", id);
}

/* Deletes a row (raw calls, so the message of an earlier failure stays), then its file. */
static void drop_quiet(struct cache *c, int64_t id, const char *extra)
{
    sqlite3_stmt *st;
    char sql[96];
    snprintf(sql, sizeof sql, "DELETE FROM entries WHERE id = ?%s", extra);
    if (sqlite3_prepare_v2(c->s.h, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_step(st);
        sqlite3_finalize(st);
    }
    unlink_id(c, id);
}

/* Writes data to entry id's file: per-chunk CRC-32Cs into crcs, the SHA-256 into sha. */
static int write_file(struct cache *c, int64_t id, const uint8_t *data, size_t n, uint32_t *crcs,
                      uint8_t sha[32])
{
    char p[PATH_MAX + 32];
    file_of(c, id, p, sizeof p);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set(ERR_IO, "%s: %s", p, strerror(errno));
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, n ? (const void *)data : "", n);
    sha256_final(&h, sha);
    for (size_t off = 0, i = 0; off < n; off += CACHE_CHUNK, i++)
        crcs[i] = crc32c(0, data + off, n - off < CACHE_CHUNK ? n - off : CACHE_CHUNK);
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, data + off, n - off < (1u << 30) ? n - off : (1u << 30));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            close(fd);
            return err_set(ERR_IO, "%s: writing: %s", p, strerror(e));
        }
        off += (size_t)w;
    }
    if (close(fd) < 0)
        return err_set(ERR_IO, "%s: closing: %s", p, strerror(errno));
    return 0;
}

int cache_put(struct cache *c, const struct cache_key *k, const uint8_t base[32], long pos,
              const void *data, size_t n)
{
    size_t nchunks = n / CACHE_CHUNK + (n % CACHE_CHUNK != 0), crcbytes;
    if (ckd_mul_sz(&crcbytes, nchunks, 4) || crcbytes > INT_MAX)
        return err_set(ERR_INVAL, "%s: a %zu-byte entry is too large", c->s.path, n);
    uint32_t *crcs = malloc(crcbytes ? crcbytes : 1);
    uint8_t *crcle = malloc(crcbytes ? crcbytes : 1);
    if (!crcs || !crcle) {
        free(crcs);
        free(crcle);
        return err_set(ERR_NOMEM, "out of memory");
    }
    /* the row first, committed, saying 'writing': a file never exists without its row */
    int rc = sqlu_run(&c->s, "starting an entry",
                      "INSERT INTO entries(kind, key, model, fmt, base, pos, state, writer_pid, "
                      "created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'writing', ?7, ?8)",
                      "ibbibiii", KEY_ARGS(k), base, (int64_t)pos, (int64_t)getpid(),
                      (int64_t)time(NULL));
    if (rc < 0)
        goto out;
    int64_t id = sqlite3_last_insert_rowid(c->s.h), old[16];
    int nold = 0;
    uint8_t sha[32];
    if ((rc = write_file(c, id, data, n, crcs, sha)) < 0)
        goto fail;
    for (size_t i = 0; i < nchunks; i++)
        for (int b = 0; b < 4; b++)
            crcle[4 * i + b] = (uint8_t)(crcs[i] >> (8 * b));
    if ((rc = sqlu_exec(&c->s, "BEGIN IMMEDIATE")) < 0)
        goto fail;
    /* the commit record replaces older copies of the same entry in the same transaction */
    sqlite3_stmt *st;
    if ((rc = sqlu_stmt(&c->s, &st, "SELECT id FROM entries WHERE " MATCH " LIMIT 16", "ibbi",
                        KEY_ARGS(k))) < 0)
        goto fail_tx;
    while (sqlite3_step(st) == SQLITE_ROW)
        old[nold++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    for (int i = 0; i < nold && rc == 0; i++)
        rc = sqlu_run(&c->s, "replacing an entry", "DELETE FROM entries WHERE id = ?", "i", old[i]);
    if (rc < 0 ||
        (rc = sqlu_stmt(&c->s, &st,
                        "UPDATE entries SET state = 'complete', size = ?, n_chunks = ?, "
                        "sha256 = ?, used = (SELECT coalesce(max(used), 0) + 1 FROM entries), "
                        "crcs = ? WHERE id = ? AND state = 'writing'",
                        "iib", (int64_t)n, (int64_t)nchunks, sha)) < 0)
        goto fail_tx;
    sqlite3_bind_blob(st, 4, crcle, (int)crcbytes, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, id);
    if ((rc = sqlu_step_done(&c->s, st, "committing an entry")) < 0)
        goto fail_tx;
    if (sqlite3_changes(c->s.h) != 1) {
        /* `cache clear` removed the row while the file was written */
        rc = err_set(ERR_IO, "%s: entry %lld was removed while being written", c->s.path,
                     (long long)id);
        goto fail_tx;
    }
    if ((rc = sqlu_exec(&c->s, "COMMIT")) < 0)
        goto fail_tx;
    for (int i = 0; i < nold; i++)
        unlink_id(c, old[i]);
    goto out;
fail_tx:
    sqlu_exec(&c->s, "ROLLBACK");
fail:
    drop_quiet(c, id, " AND state = 'writing'");
out:
    free(crcs);
    free(crcle);
    return rc;
}

/* The id of the newest complete entry matching k; 0 when none. */
static int find(struct cache *c, const struct cache_key *k, int64_t *id)
{
    sqlite3_stmt *st;
    int rc =
        sqlu_stmt(&c->s, &st, "SELECT id FROM entries WHERE " MATCH " ORDER BY id DESC LIMIT 1",
                  "ibbi", KEY_ARGS(k));
    if (rc < 0)
        return rc;
    int r = sqlite3_step(st);
    *id = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return r == SQLITE_ROW || r == SQLITE_DONE ? 0 : sqlu_err(&c->s, "looking up an entry");
}

int cache_has(struct cache *c, const struct cache_key *k)
{
    int64_t id;
    int rc = find(c, k, &id);
    return rc < 0 ? rc : id != 0;
}

int cache_touch(struct cache *c, const struct cache_key *k)
{
    int64_t id;
    int rc = find(c, k, &id);
    return rc < 0 || !id ? rc : mark_used(c, id);
}

int cache_lookup(struct cache *c, const struct cache_key *proto, const uint8_t (*keys)[32], long n,
                 int64_t *ids)
{
    for (long i = 0; i < n; i++)
        ids[i] = 0;
    if (n <= 0)
        return 0;
    sqlite3_stmt *st;
    int rc =
        sqlu_prepare(&c->s, &st, "SELECT id FROM entries WHERE " MATCH " ORDER BY id DESC LIMIT 1");
    if (rc < 0)
        return rc;
    /* one read transaction: one snapshot of the index, one lock for the whole chain */
    if ((rc = sqlu_exec(&c->s, "BEGIN")) < 0) {
        sqlite3_finalize(st);
        return rc;
    }
    sqlite3_bind_int(st, 1, proto->kind);
    sqlite3_bind_blob(st, 3, proto->model, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, proto->fmt);
    for (long i = 0; i < n && rc == 0; i++) {
        sqlite3_reset(st);
        sqlite3_bind_blob(st, 2, keys[i], 32, SQLITE_STATIC);
        int r = sqlite3_step(st);
        if (r == SQLITE_ROW)
            ids[i] = sqlite3_column_int64(st, 0);
        else if (r != SQLITE_DONE)
            rc = sqlu_err(&c->s, "looking up a block chain");
    }
    sqlite3_finalize(st);
    int rc2 = sqlu_exec(&c->s, rc == 0 ? "COMMIT" : "ROLLBACK");
    return rc < 0 ? rc : rc2;
}

int cache_touch_ids(struct cache *c, const int64_t *ids, long n)
{
    int rc = sqlu_exec(&c->s, "BEGIN IMMEDIATE");
    if (rc < 0)
        return rc;
    int64_t used;
    sqlite3_stmt *st = NULL;
    if ((rc = query_i64(c, "SELECT coalesce(max(used), 0) FROM entries", -1, &used)) == 0)
        rc = sqlu_prepare(&c->s, &st, "UPDATE entries SET used = ? WHERE id = ?");
    for (long i = 0; i < n && rc == 0; i++) {
        if (!ids[i])
            continue;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, ++used);
        sqlite3_bind_int64(st, 2, ids[i]);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = sqlu_err(&c->s, "marking entries used");
    }
    sqlite3_finalize(st);
    if (rc < 0) {
        sqlu_exec(&c->s, "ROLLBACK");
        return rc;
    }
    return sqlu_exec(&c->s, "COMMIT");
}

/* ---------------------------------------------------------------- reading */

struct cache_rd {
    struct cache *c;
    int64_t id;
    int fd;
    uint64_t size, off;
    int64_t nchunks;
    uint32_t crc; /* of the current chunk so far */
    int bad;
    uint32_t crcs[]; /* stored, one per chunk */
};

/* read batches: small enough that the CRC pass that follows finds them in L2 (2 MiB here) */
#define RD_PIECE (512u << 10)

/* Marks the entry damaged; cache_read_close deletes it (reads may run on other threads, the
 * database is touched only by the thread that opened the reader). */
static int rd_damaged(struct cache_rd *r, const char *why)
{
    __atomic_store_n(&r->bad, 1, __ATOMIC_RELAXED); /* cache_readv_par: from any thread */
    return err_set(ERR_INVAL, "%s: entry %lld: %s (entry discarded)", r->c->s.path,
                   (long long)r->id, why);
}

int cache_read_open(struct cache *c, int64_t id, struct cache_rd **out, uint64_t *size)
{
    *out = NULL;
    int rc;
    if (!c->st_meta &&
        sqlite3_prepare_v3(c->s.h,
                           "SELECT size, n_chunks, crcs FROM entries "
                           "WHERE id = ? AND state = 'complete'",
                           -1, SQLITE_PREPARE_PERSISTENT, &c->st_meta, NULL) != SQLITE_OK)
        return sqlu_err(&c->s, "prepare");
    sqlite3_stmt *st = c->st_meta;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, id);
    int r = sqlite3_step(st);
    if (r != SQLITE_ROW) {
        rc = r == SQLITE_DONE ? err_set(ERR_NOTFOUND, "%s: no entry %lld", c->s.path, (long long)id)
                              : sqlu_err(&c->s, "reading an entry");
        sqlite3_reset(st);
        return rc;
    }
    int64_t sz = sqlite3_column_int64(st, 0), nch = sqlite3_column_int64(st, 1);
    const uint8_t *crcle = sqlite3_column_blob(st, 2);
    int64_t want = sz / CACHE_CHUNK + (sz % CACHE_CHUNK != 0);
    struct cache_rd *rd = NULL;
    if (sz < 0 || nch != want || sqlite3_column_bytes(st, 2) != 4 * nch ||
        !(rd = calloc(1, sizeof *rd + (size_t)nch * 4))) {
        sqlite3_reset(st);
        if (!rd && sz >= 0 && nch == want && sqlite3_column_bytes(st, 2) == 4 * nch)
            return err_set(ERR_NOMEM, "out of memory");
        rc = err_set(ERR_INVAL, "%s: entry %lld: malformed commit record (entry discarded)",
                     c->s.path, (long long)id);
        drop_quiet(c, id, "");
        return rc;
    }
    for (int64_t i = 0; i < nch; i++)
        rd->crcs[i] = (uint32_t)crcle[4 * i] | (uint32_t)crcle[4 * i + 1] << 8 |
                      (uint32_t)crcle[4 * i + 2] << 16 | (uint32_t)crcle[4 * i + 3] << 24;
    sqlite3_reset(st);
    rd->c = c;
    rd->id = id;
    rd->size = (uint64_t)sz;
    rd->nchunks = nch;
    char p[PATH_MAX + 32];
    file_of(c, id, p, sizeof p);
    rd->fd = open(p, O_RDONLY | O_CLOEXEC);
    if (rd->fd < 0) {
        rc = errno == ENOENT ? rd_damaged(rd, "its file is missing")
                             : err_set(ERR_IO, "%s: %s", p, strerror(errno));
        if (rd->bad)
            drop_quiet(c, id, "");
        free(rd);
        return rc;
    }
    struct stat sb;
    if (fstat(rd->fd, &sb) < 0 || (uint64_t)sb.st_size != rd->size) {
        rc = rd_damaged(rd, "its file has the wrong size");
        drop_quiet(c, id, "");
        close(rd->fd);
        free(rd);
        return rc;
    }
    /* Not in the page cache (its last byte is the probe)? Then have the kernel read the whole
     * file now, in the background: a caller that opens the next entries before reading this
     * one keeps the disk busy (a cold restore). */
    char probe;
    struct iovec pv = { &probe, 1 };
    if (rd->size > 0 && preadv2(rd->fd, &pv, 1, (off_t)rd->size - 1, RWF_NOWAIT) != 1)
        posix_fadvise(rd->fd, 0, 0, POSIX_FADV_WILLNEED);
    *out = rd;
    if (size)
        *size = rd->size;
    return 0;
}

/* Reads m bytes (within one chunk) at off into the segments iov[0..n) with one preadv, then
 * folds them into the chunk's CRC while they are still in the cache. */
static int rd_batch(struct cache_rd *r, uint64_t off, struct iovec *iov, int n, size_t m)
{
    size_t got = 0;
    int i = 0;
    while (got < m) {
        ssize_t k = preadv(r->fd, iov + i, n - i, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return err_set(ERR_IO, "%s: entry %lld: %s", r->c->s.path, (long long)r->id,
                           strerror(errno));
        if (k == 0)
            return rd_damaged(r, "its file is truncated");
        got += (size_t)k;
        /* a short read: skip what came, go on with the rest */
        for (size_t left = (size_t)k; left && i < n;) {
            size_t t = left < iov[i].iov_len ? left : iov[i].iov_len;
            iov[i].iov_base = (char *)iov[i].iov_base + t;
            iov[i].iov_len -= t;
            left -= t;
            if (!iov[i].iov_len)
                i++;
        }
    }
    return 0;
}

/* Reads `total` bytes at *off into the segments from seg[si] + so on, checking each chunk's
 * CRC when its last byte is in; *crc is the CRC of the current chunk so far. The reader's
 * own position is not touched: cache_readv passes it, cache_readv_par's threads their own. */
static int rd_run(struct cache_rd *r, uint64_t *off, uint32_t *crc, const struct cache_seg *seg,
                  int si, size_t so, uint64_t total)
{
    while (total) {
        /* a batch: up to the end of the chunk, at most a piece, at most 64 segments */
        uint64_t m = CACHE_CHUNK - *off % CACHE_CHUNK;
        m = m < total ? m : total;
        m = m < RD_PIECE ? m : RD_PIECE;
        struct iovec iov[64], crcv[64];
        int n = 0;
        size_t b = 0;
        while (b < m && n < 64) {
            size_t t = seg[si].n - so < m - b ? seg[si].n - so : (size_t)(m - b);
            if (t) {
                iov[n] = (struct iovec){ (char *)seg[si].p + so, t };
                crcv[n] = iov[n];
                n++;
            }
            b += t, so += t;
            if (so == seg[si].n)
                si++, so = 0;
        }
        int rc = rd_batch(r, *off, iov, n, b);
        if (rc < 0)
            return rc;
        for (int i = 0; i < n; i++)
            *crc = crc32c(*crc, crcv[i].iov_base, crcv[i].iov_len);
        *off += b, total -= b;
        if (*off % CACHE_CHUNK == 0 || *off == r->size) {
            int64_t ci = (int64_t)((*off - 1) / CACHE_CHUNK);
            if (*crc != r->crcs[ci]) {
                char why[48];
                snprintf(why, sizeof why, "chunk %lld is damaged", (long long)ci);
                return rd_damaged(r, why);
            }
            *crc = 0;
        }
    }
    return 0;
}

/* The segments' total, or ERR_INVAL (the entry is marked damaged) past the entry's end. */
static int seg_total(struct cache_rd *r, const struct cache_seg *seg, int nseg, uint64_t *total)
{
    if (r->bad)
        return err_set(ERR_INVAL, "%s: entry %lld is damaged", r->c->s.path, (long long)r->id);
    uint64_t t = 0;
    for (int i = 0; i < nseg; i++)
        if (__builtin_add_overflow(t, (uint64_t)seg[i].n, &t))
            return rd_damaged(r, "read past its end");
    if (t > r->size - r->off)
        return rd_damaged(r, "read past its end");
    *total = t;
    return 0;
}

int cache_readv(struct cache_rd *r, const struct cache_seg *seg, int nseg)
{
    uint64_t total = 0;
    int rc = seg_total(r, seg, nseg, &total);
    return rc < 0 ? rc : rd_run(r, &r->off, &r->crc, seg, 0, 0, total);
}

/* The segment and offset in it `skip` bytes into seg. */
static void seg_seek(const struct cache_seg *seg, uint64_t skip, int *si, size_t *so)
{
    int i = 0;
    while (skip && skip >= seg[i].n)
        skip -= seg[i++].n;
    *si = i;
    *so = (size_t)skip;
}

/* cache_readv_par's middle: whole chunks [c0, c0 + nch) at byte `start` of the segments,
 * split into runs of whole chunks, one per thread. */
struct par_read {
    struct cache_rd *r;
    const struct cache_seg *seg;
    uint64_t start; /* bytes of seg before the first chunk */
    uint64_t end;   /* the entry offset where the middle ends */
    int64_t c0, nch;
    int *rc; /* per thread */
    char (*msg)[256];
};

static void par_part(void *ctx, int tid, int nth)
{
    struct par_read *p = ctx;
    long lo, hi;
    pool_range((long)p->nch, tid, nth, &lo, &hi);
    p->rc[tid] = 0;
    if (lo == hi)
        return;
    uint64_t off = (uint64_t)(p->c0 + lo) * CACHE_CHUNK;
    uint64_t to = (uint64_t)(p->c0 + hi) * CACHE_CHUNK;
    to = to < p->end ? to : p->end;
    uint32_t crc = 0;
    int si;
    size_t so;
    seg_seek(p->seg, p->start + (uint64_t)lo * CACHE_CHUNK, &si, &so);
    p->rc[tid] = rd_run(p->r, &off, &crc, p->seg, si, so, to - off);
    if (p->rc[tid] < 0)
        snprintf(p->msg[tid], sizeof p->msg[tid], "%s", err_msg());
}

int cache_readv_par(struct cache_rd *r, const struct cache_seg *seg, int nseg, struct pool *pool)
{
    uint64_t total = 0;
    int rc = seg_total(r, seg, nseg, &total);
    if (rc < 0)
        return rc;
    int nth = pool ? pool_size(pool) : 1;
    /* the head up to a chunk boundary and a tail short of one go on this thread, with the
     * reader's running CRC; the whole chunks between them in parallel, each on one thread
     * (a chunk's CRC is one sequential pass) */
    uint64_t head = (CACHE_CHUNK - r->off % CACHE_CHUNK) % CACHE_CHUNK;
    head = head < total ? head : total;
    uint64_t end = r->off + total; /* the entry offset where the read ends */
    uint64_t mid_end = end == r->size ? end : end / CACHE_CHUNK * CACHE_CHUNK;
    uint64_t mid = mid_end > r->off + head ? mid_end - r->off - head : 0;
    if (nth < 2 || mid <= CACHE_CHUNK)
        return rd_run(r, &r->off, &r->crc, seg, 0, 0, total);
    if ((rc = rd_run(r, &r->off, &r->crc, seg, 0, 0, head)) < 0)
        return rc;
    int *rcs = calloc((size_t)nth, sizeof *rcs);
    char(*msg)[256] = calloc((size_t)nth, sizeof *msg);
    if (!rcs || !msg) {
        free(rcs);
        free(msg);
        return err_set(ERR_NOMEM, "out of memory");
    }
    struct par_read p = { r,
                          seg,
                          head,
                          mid_end,
                          (int64_t)(r->off / CACHE_CHUNK),
                          (int64_t)((mid + CACHE_CHUNK - 1) / CACHE_CHUNK),
                          rcs,
                          msg };
    pool_run(pool, par_part, &p);
    /* the first failure in file order is the one reported */
    for (int t = 0; t < nth && rc == 0; t++)
        if (rcs[t] < 0)
            rc = err_set(rcs[t], "%s", msg[t]);
    free(rcs);
    free(msg);
    if (rc < 0)
        return rc;
    r->off += mid;
    int si;
    size_t so;
    seg_seek(seg, head + mid, &si, &so);
    return rd_run(r, &r->off, &r->crc, seg, si, so, total - head - mid);
}

int cache_read(struct cache_rd *r, void *dst, size_t n)
{
    struct cache_seg seg = { dst, n };
    return cache_readv(r, &seg, 1);
}

int cache_read_close(struct cache_rd *r, int rc)
{
    if (!r)
        return rc;
    if (rc == 0 && !r->bad && r->off != r->size)
        rc = err_set(ERR_INVAL, "%s: entry %lld: %llu of %llu bytes read", r->c->s.path,
                     (long long)r->id, (unsigned long long)r->off, (unsigned long long)r->size);
    else if (r->bad || rc == ERR_INVAL)
        drop_quiet(r->c, r->id, ""); /* damaged, or its reader found it malformed (a damaged
                                      * chunk can do that before its CRC is reached) */
    close(r->fd);
    free(r);
    return rc;
}

/* Reads entry id into out, verifying the chunks' CRC-32C and the size (and with full, the
 * SHA-256: a few times slower than the rest, so only `lode cache verify` pays it); a damaged
 * entry is deleted (ERR_INVAL). */
static int read_entry(struct cache *c, int64_t id, int full, struct buf *out)
{
    buf_reset(out);
    uint8_t want[32] = { 0 };
    if (full) {
        sqlite3_stmt *st;
        int rc = sqlu_stmt(&c->s, &st, "SELECT sha256 FROM entries WHERE id = ?", "i", id);
        if (rc < 0)
            return rc;
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32)
            memcpy(want, sqlite3_column_blob(st, 0), 32);
        sqlite3_finalize(st);
    }
    struct cache_rd *r;
    uint64_t size;
    int rc = cache_read_open(c, id, &r, &size);
    if (rc < 0)
        return rc;
    if (size > SIZE_MAX / 2 || buf_reserve(out, (size_t)size) < 0) {
        cache_read_close(r, ERR_NOMEM);
        return err_set(ERR_NOMEM, "%s: cannot hold %llu bytes", c->s.path,
                       (unsigned long long)size);
    }
    if ((rc = cache_read(r, out->p, (size_t)size)) == 0)
        out->len = (size_t)size;
    rc = cache_read_close(r, rc);
    if (rc == 0 && full) {
        uint8_t got[32];
        struct sha256 sh;
        sha256_init(&sh);
        sha256_update(&sh, out->p ? (const void *)out->p : "", out->len);
        sha256_final(&sh, got);
        if (memcmp(got, want, 32)) {
            rc = err_set(ERR_INVAL, "%s: entry %lld: SHA-256 mismatch (entry discarded)", c->s.path,
                         (long long)id);
            drop_quiet(c, id, "");
        }
    }
    if (rc < 0)
        buf_reset(out);
    return rc;
}

int cache_get(struct cache *c, const struct cache_key *k, struct buf *out)
{
    int64_t id;
    int rc = find(c, k, &id);
    if (rc < 0)
        return rc;
    if (!id)
        return err_set(ERR_NOTFOUND, "%s: no such entry", c->s.path);
    if ((rc = read_entry(c, id, 0, out)) < 0)
        return rc;
    return mark_used(c, id);
}

int cache_snaps(struct cache *c, const struct cache_key *k, const uint8_t base[32], long max_pos,
                cache_snap_fn fn, void *ctx)
{
    sqlite3_stmt *st;
    int rc =
        sqlu_prepare(&c->s, &st,
                     "SELECT key, pos FROM entries WHERE base = ?1 AND pos <= ?2 AND kind = ?3 "
                     "AND model = ?4 AND fmt = ?5 AND state = 'complete' ORDER BY pos DESC");
    if (rc < 0)
        return rc;
    sqlite3_bind_blob(st, 1, base, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, max_pos);
    sqlite3_bind_int(st, 3, CACHE_SNAP);
    sqlite3_bind_blob(st, 4, k->model, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, k->fmt);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) != 32)
            continue;
        uint8_t key[32];
        memcpy(key, sqlite3_column_blob(st, 0), 32);
        if ((rc = fn(ctx, key, (long)sqlite3_column_int64(st, 1))) != 0)
            break;
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = sqlu_err(&c->s, "listing snapshots");
    sqlite3_finalize(st);
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------------- maintenance */

static uint64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static int add_size(struct cache *c, int64_t id, const char *path, void *ctx)
{
    (void)c, (void)id;
    *(uint64_t *)ctx += file_size(path);
    return 0;
}

int cache_stats(struct cache *c, struct cache_stats *s)
{
    memset(s, 0, sizeof *s);
    sqlite3_stmt *st;
    int rc = sqlu_prepare(&c->s, &st,
                          "SELECT kind, count(*), coalesce(sum(size), 0) FROM entries "
                          "WHERE state = 'complete' GROUP BY kind");
    if (rc < 0)
        return rc;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int kind = sqlite3_column_int(st, 0);
        if (kind == CACHE_BLOCK) {
            s->blocks = sqlite3_column_int64(st, 1);
            s->block_bytes = (uint64_t)sqlite3_column_int64(st, 2);
        } else if (kind == CACHE_SNAP) {
            s->snaps = sqlite3_column_int64(st, 1);
            s->snap_bytes = (uint64_t)sqlite3_column_int64(st, 2);
        }
    }
    sqlite3_finalize(st);
    if ((rc = query_i64(c,
                        "SELECT count(*) FROM (SELECT DISTINCT model, fmt FROM entries "
                        "WHERE state = 'complete')",
                        -1, &s->models)) < 0 ||
        (rc = query_i64(c, "SELECT count(*) FROM entries WHERE state = 'writing'", -1,
                        &s->writing)) < 0)
        return rc;
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof wal, "%s-wal", c->s.path);
    s->file_bytes = file_size(c->s.path) + file_size(wal);
    return each_file(c, add_size, &s->file_bytes);
}

int cache_prune(struct cache *c, uint64_t budget, uint64_t *freed)
{
    if (freed)
        *freed = 0;
    int64_t total;
    int rc = query_i64(c, "SELECT coalesce(sum(size), 0) FROM entries WHERE state = 'complete'", -1,
                       &total);
    if (rc < 0 || (uint64_t)total <= budget)
        return rc;
    if ((rc = sqlu_exec(&c->s, "BEGIN IMMEDIATE")) < 0)
        return rc;
    sqlite3_stmt *st, *del;
    struct buf gone_ids = { 0 }; /* int64_t ids: their files go after the commit */
    if ((rc = sqlu_prepare(&c->s, &st,
                           "SELECT id, size FROM entries WHERE state = 'complete' "
                           "ORDER BY used, id")) < 0)
        goto fail;
    if ((rc = sqlu_prepare(&c->s, &del, "DELETE FROM entries WHERE id = ?")) < 0) {
        sqlite3_finalize(st);
        goto fail;
    }
    uint64_t left = (uint64_t)total, gone = 0;
    while (left > budget && sqlite3_step(st) == SQLITE_ROW) {
        uint64_t sz = (uint64_t)sqlite3_column_int64(st, 1);
        int64_t id = sqlite3_column_int64(st, 0);
        sqlite3_reset(del);
        sqlite3_bind_int64(del, 1, id);
        if (sqlite3_step(del) != SQLITE_DONE) {
            rc = sqlu_err(&c->s, "evicting an entry");
            break;
        }
        if ((rc = buf_append(&gone_ids, &id, sizeof id)) < 0)
            break;
        left -= sz < left ? sz : left;
        gone += sz;
    }
    sqlite3_finalize(st);
    sqlite3_finalize(del);
    if (rc < 0 || (rc = sqlu_exec(&c->s, "COMMIT")) < 0)
        goto fail;
    for (size_t i = 0; i + sizeof(int64_t) <= gone_ids.len; i += sizeof(int64_t)) {
        int64_t id;
        memcpy(&id, gone_ids.p + i, sizeof id);
        unlink_id(c, id);
    }
    buf_free(&gone_ids);
    if (freed)
        *freed = gone;
    /* hand the freed pages back to the file system */
    return sqlu_exec(&c->s, "PRAGMA incremental_vacuum");
fail:
    buf_free(&gone_ids);
    sqlu_exec(&c->s, "ROLLBACK");
    return rc < 0 ? rc : err_set(ERR_NOMEM, "out of memory");
}

static int unlink_any(struct cache *c, int64_t id, const char *path, void *ctx)
{
    (void)c, (void)id, (void)ctx;
    unlink(path);
    return 0;
}

static int drop_cached(struct cache *c, int64_t id, const char *path, void *ctx)
{
    (void)c, (void)id, (void)ctx;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    /* DONTNEED drops clean pages only: write the fresh ones back first */
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    return 0;
}

int cache_drop_page_cache(struct cache *c) { return each_file(c, drop_cached, NULL); }

int cache_clear(struct cache *c)
{
    int rc = sqlu_exec(&c->s, "DELETE FROM entries");
    if (rc == 0)
        rc = each_file(c, unlink_any, NULL);
    if (rc == 0)
        rc = sqlu_exec(&c->s, "VACUUM");
    if (rc == 0)
        sqlite3_wal_checkpoint_v2(c->s.h, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    return rc;
}

int cache_verify(struct cache *c, int64_t *checked, int64_t *bad)
{
    *checked = *bad = 0;
    int64_t last = 0, id;
    struct buf b = { 0 };
    int rc;
    /* walk by id so deletions while walking are harmless */
    while ((rc = query_i64(c,
                           "SELECT coalesce(min(id), 0) FROM entries "
                           "WHERE state = 'complete' AND id > ?",
                           last, &id)) == 0 &&
           id) {
        last = id;
        rc = read_entry(c, id, 1, &b);
        (*checked)++;
        if (rc == ERR_INVAL)
            (*bad)++;
        else if (rc < 0 && rc != ERR_NOTFOUND)
            break;
        rc = 0;
    }
    buf_free(&b);
    return rc;
}

uint64_t cache_default_budget(struct cache *c)
{
    int64_t held = 0;
    query_i64(c, "SELECT coalesce(sum(size), 0) FROM entries WHERE state = 'complete'", -1, &held);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", c->s.path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    else
        snprintf(dir, sizeof dir, ".");
    struct statvfs v;
    uint64_t avail = statvfs(dir, &v) == 0 ? (uint64_t)v.f_bavail * v.f_frsize : 0;
    return avail / 4 + (uint64_t)held;
}
