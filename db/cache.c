/*
 * cache.c - the prefix/state cache store (see cache.h for the rules).
 *
 * Schema history (CACHE_SCHEMA_VERSION, kept in PRAGMA user_version):
 *   1  entries, chunks
 * Add version N+1 to `migrations`; never edit an old one.
 */
#include "db/cache.h"

#include "common/err.h"
#include "common/fs.h"
#include "common/hash.h"
#include "db/sqlutil.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

struct cache {
    struct sqlu s;
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
};
#define NMIGRATIONS (int)(sizeof migrations / sizeof migrations[0])

#define CHUNKS_PER_TX 16 /* commit every 64 MiB so the WAL stays bounded */

/* auto_vacuum only takes effect before the first table: set it every time, it is a no-op
 * later. synchronous=NORMAL is enough for a cache in WAL mode: a power loss may drop the
 * last transactions, but they are applied in order, so a commit record never survives
 * without its chunks. */
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
    *out = c;
    return 0;
}

void cache_close(struct cache *c)
{
    if (!c)
        return;
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

int cache_put(struct cache *c, const struct cache_key *k, const uint8_t base[32], long pos,
              const void *data, size_t n)
{
    int64_t id = 0;
    int rc = sqlu_exec(&c->s, "BEGIN IMMEDIATE");
    if (rc < 0)
        return rc;
    /* the row and the first chunks share a transaction; the row says 'writing' until sealed */
    if ((rc = sqlu_run(&c->s, "starting an entry",
                       "INSERT INTO entries(kind, key, model, fmt, base, pos, state, writer_pid, "
                       "created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'writing', ?7, ?8)",
                       "ibbibiii", KEY_ARGS(k), base, (int64_t)pos, (int64_t)getpid(),
                       (int64_t)time(NULL))) < 0) {
        sqlu_exec(&c->s, "ROLLBACK");
        return rc;
    }
    id = sqlite3_last_insert_rowid(c->s.h);
    struct sqlu_chunks w;
    sqlu_chunks_init(&w, &c->s, "INSERT INTO chunks(entry_id, seq, crc32c, data) VALUES (?,?,?,?)",
                     "writing a chunk", id, CACHE_CHUNK, CHUNKS_PER_TX, 1);
    uint8_t sha[32];
    if ((rc = sqlu_chunks_write(&w, data, n)) < 0 || (rc = sqlu_chunks_seal(&w, sha)) < 0)
        goto fail;
    /* the commit record: replaces an older copy of the same entry in the same transaction */
    if ((rc = sqlu_run(&c->s, "replacing an entry", "DELETE FROM entries WHERE " MATCH, "ibbi",
                       KEY_ARGS(k))) < 0 ||
        (rc = sqlu_run(&c->s, "committing an entry",
                       "UPDATE entries SET state = 'complete', size = ?, n_chunks = ?, "
                       "sha256 = ?, used = (SELECT coalesce(max(used), 0) + 1 FROM entries) "
                       "WHERE id = ?",
                       "iibi", (int64_t)n, w.seq, sha, id)) < 0 ||
        (rc = sqlu_exec(&c->s, "COMMIT")) < 0)
        goto fail;
    sqlu_chunks_free(&w);
    return 0;
fail:
    sqlu_chunks_abort(&w);
    /* an earlier commit may have made the row durable: drop it (or leave it to the next open);
     * raw calls, so the message of what failed stays the one reported */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->s.h, "DELETE FROM entries WHERE id = ? AND state = 'writing'", -1,
                           &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_step(st);
        sqlite3_finalize(st);
    }
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

static int drop(struct cache *c, int64_t id)
{
    return sqlu_run(&c->s, "dropping an entry", "DELETE FROM entries WHERE id = ?", "i", id);
}

/* Reads entry id into out, verifying the chunks' CRC-32C, their count and the size (and with
 * full, the SHA-256: a few times slower than the rest, so only `lode cache verify` pays it);
 * a damaged entry is deleted (ERR_INVAL). */
static int read_entry(struct cache *c, int64_t id, int full, struct buf *out)
{
    buf_reset(out);
    sqlite3_stmt *st;
    int rc =
        sqlu_stmt(&c->s, &st, "SELECT size, n_chunks, sha256 FROM entries WHERE id = ?", "i", id);
    if (rc < 0)
        return rc;
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return err_set(ERR_NOTFOUND, "%s: no entry %lld", c->s.path, (long long)id);
    }
    int64_t size = sqlite3_column_int64(st, 0), nchunks = sqlite3_column_int64(st, 1);
    uint8_t want[32] = { 0 };
    if (sqlite3_column_bytes(st, 2) == 32)
        memcpy(want, sqlite3_column_blob(st, 2), 32);
    sqlite3_finalize(st);
    if ((rc = sqlu_stmt(&c->s, &st,
                        "SELECT seq, crc32c, data FROM chunks WHERE entry_id = ? ORDER BY seq", "i",
                        id)) < 0)
        return rc;
    char what[PATH_MAX + 48];
    snprintf(what, sizeof what, "%s: entry %lld", c->s.path, (long long)id);
    rc = sqlu_chunks_read(&c->s, st, size, nchunks, out, what, " (entry discarded)");
    sqlite3_finalize(st);
    if (rc == 0 && full) {
        uint8_t got[32];
        struct sha256 sh;
        sha256_init(&sh);
        sha256_update(&sh, out->p ? (const void *)out->p : "", out->len);
        sha256_final(&sh, got);
        if (memcmp(got, want, 32))
            rc = err_set(ERR_INVAL, "%s: SHA-256 mismatch (entry discarded)", what);
    }
    if (rc == ERR_INVAL)
        drop(c, id);
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
    return 0;
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
        sqlite3_reset(del);
        sqlite3_bind_int64(del, 1, sqlite3_column_int64(st, 0));
        if (sqlite3_step(del) != SQLITE_DONE) {
            rc = sqlu_err(&c->s, "evicting an entry");
            break;
        }
        left -= sz < left ? sz : left;
        gone += sz;
    }
    sqlite3_finalize(st);
    sqlite3_finalize(del);
    if (rc < 0 || (rc = sqlu_exec(&c->s, "COMMIT")) < 0)
        goto fail;
    if (freed)
        *freed = gone;
    /* hand the freed pages back to the file system */
    return sqlu_exec(&c->s, "PRAGMA incremental_vacuum");
fail:
    sqlu_exec(&c->s, "ROLLBACK");
    return rc;
}

int cache_clear(struct cache *c)
{
    int rc = sqlu_exec(&c->s, "DELETE FROM entries");
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
