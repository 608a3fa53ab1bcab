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

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

struct cache {
    sqlite3 *h;
    char path[PATH_MAX];
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

static int sql_err(struct cache *c, const char *what)
{
    return err_set(ERR_IO, "%s: %s: %s", c->path, what, sqlite3_errmsg(c->h));
}

static int exec(struct cache *c, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(c->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = err_set(ERR_IO, "%s: %s", c->path, msg ? msg : sqlite3_errmsg(c->h));
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

static int prepare(struct cache *c, sqlite3_stmt **st, const char *sql)
{
    if (sqlite3_prepare_v2(c->h, sql, -1, st, NULL) != SQLITE_OK)
        return sql_err(c, "prepare");
    return 0;
}

static int step_done(struct cache *c, sqlite3_stmt *st, const char *what)
{
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? 0 : sql_err(c, what);
}

/* Runs a one-row query with one int64 parameter (or none when p < 0) and returns column 0. */
static int query_i64(struct cache *c, const char *sql, int64_t p, int64_t *out)
{
    sqlite3_stmt *st;
    int rc = prepare(c, &st, sql);
    if (rc < 0)
        return rc;
    if (p >= 0)
        sqlite3_bind_int64(st, 1, p);
    int r = sqlite3_step(st);
    *out = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return r == SQLITE_ROW || r == SQLITE_DONE ? 0 : sql_err(c, "query");
}

static int migrate(struct cache *c)
{
    int64_t version;
    int rc = query_i64(c, "PRAGMA user_version", -1, &version);
    if (rc < 0)
        return rc;
    if (version > NMIGRATIONS)
        return err_set(ERR_UNSUPPORTED,
                       "%s: written by a newer lode (cache schema %lld, this lode knows %d); "
                       "upgrade lode or remove the file",
                       c->path, (long long)version, NMIGRATIONS);
    for (int v = (int)version; v < NMIGRATIONS; v++) {
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
        if ((rc = exec(c, "BEGIN IMMEDIATE")) < 0)
            return rc;
        if ((rc = exec(c, migrations[v])) < 0 || (rc = exec(c, bump)) < 0) {
            exec(c, "ROLLBACK");
            return err_prefix(rc, "migrating the cache to schema %d", v + 1);
        }
        if ((rc = exec(c, "COMMIT")) < 0)
            return rc;
    }
    return 0;
}

/* Deletes entries whose writer died before the commit record. */
static int drop_incomplete(struct cache *c)
{
    sqlite3_stmt *st;
    int rc = prepare(c, &st, "SELECT id, writer_pid FROM entries WHERE state = 'writing'");
    if (rc < 0)
        return rc;
    int64_t dead[256];
    int ndead = 0;
    while (sqlite3_step(st) == SQLITE_ROW && ndead < 256) {
        pid_t pid = (pid_t)sqlite3_column_int64(st, 1);
        if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH))
            dead[ndead++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    for (int i = 0; i < ndead; i++) {
        if ((rc = prepare(c, &st, "DELETE FROM entries WHERE id = ?")) < 0)
            return rc;
        sqlite3_bind_int64(st, 1, dead[i]);
        if ((rc = step_done(c, st, "dropping an incomplete entry")) < 0)
            return rc;
    }
    return 0;
}

int cache_open(struct cache **out, const char *path)
{
    *out = NULL;
    struct cache *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(ERR_NOMEM, "out of memory");
    int rc;
    if (path) {
        snprintf(c->path, sizeof c->path, "%s", path);
    } else {
        char dir[PATH_MAX];
        if ((rc = fs_xdg_dir(FS_XDG_CACHE, dir, sizeof dir)) < 0 ||
            (rc = fs_mkdir_p(dir, 0700)) < 0 ||
            (rc = fs_join(c->path, sizeof c->path, dir, "cache.db")) < 0) {
            free(c);
            return rc;
        }
    }
    if (sqlite3_open_v2(c->path, &c->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = err_set(ERR_IO, "%s: %s", c->path, c->h ? sqlite3_errmsg(c->h) : "cannot open");
        cache_close(c);
        return rc;
    }
    sqlite3_busy_timeout(c->h, 10000);
    /* auto_vacuum only takes effect before the first table: set it every time, it is a no-op
     * later. synchronous=NORMAL is enough for a cache in WAL mode: a power loss may drop the
     * last transactions, but they are applied in order, so a commit record never survives
     * without its chunks. */
    if ((rc = exec(c, "PRAGMA auto_vacuum = INCREMENTAL")) < 0 ||
        (rc = exec(c, "PRAGMA journal_mode = WAL")) < 0 ||
        (rc = exec(c, "PRAGMA synchronous = NORMAL")) < 0 ||
        (rc = exec(c, "PRAGMA foreign_keys = ON")) < 0 || (rc = migrate(c)) < 0 ||
        (rc = drop_incomplete(c)) < 0) {
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
    if (c->h) {
        sqlite3_wal_checkpoint_v2(c->h, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        sqlite3_close_v2(c->h);
    }
    free(c);
}

const char *cache_path(const struct cache *c) { return c->path; }

/* ---------------------------------------------------------------- entries */

#define MATCH "kind = ?1 AND key = ?2 AND model = ?3 AND fmt = ?4 AND state = 'complete'"

static void bind_key(sqlite3_stmt *st, const struct cache_key *k)
{
    sqlite3_bind_int(st, 1, k->kind);
    sqlite3_bind_blob(st, 2, k->key, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, k->model, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, k->fmt);
}

static int mark_used(struct cache *c, int64_t id)
{
    sqlite3_stmt *st;
    int rc = prepare(c, &st,
                     "UPDATE entries SET used = (SELECT coalesce(max(used), 0) + 1 FROM entries) "
                     "WHERE id = ?");
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    return step_done(c, st, "marking an entry used");
}

int cache_put(struct cache *c, const struct cache_key *k, const uint8_t base[32], long pos,
              const void *data, size_t n)
{
    int64_t id = 0;
    int rc = exec(c, "BEGIN IMMEDIATE");
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = NULL;
    if ((rc = prepare(c, &st,
                      "INSERT INTO entries(kind, key, model, fmt, base, pos, state, writer_pid, "
                      "created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'writing', ?7, ?8)")) < 0)
        goto fail;
    bind_key(st, k);
    if (base)
        sqlite3_bind_blob(st, 5, base, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, pos);
    sqlite3_bind_int64(st, 7, getpid());
    sqlite3_bind_int64(st, 8, (int64_t)time(NULL));
    if ((rc = step_done(c, st, "starting an entry")) < 0)
        goto fail;
    id = sqlite3_last_insert_rowid(c->h);
    if ((rc = prepare(c, &st, "INSERT INTO chunks(entry_id, seq, crc32c, data) VALUES (?,?,?,?)")) <
        0)
        goto fail;
    const uint8_t *p = data;
    int64_t seq = 0;
    for (size_t off = 0; off < n; off += CACHE_CHUNK, seq++) {
        size_t len = n - off < CACHE_CHUNK ? n - off : CACHE_CHUNK;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, seq);
        sqlite3_bind_int64(st, 3, crc32c(0, p + off, len));
        sqlite3_bind_blob(st, 4, p + off, (int)len, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = sql_err(c, "writing a chunk");
            goto fail_st;
        }
        /* big payloads commit as they go (the row still says 'writing') */
        if ((seq + 1) % CHUNKS_PER_TX == 0 && n - off > CACHE_CHUNK &&
            ((rc = exec(c, "COMMIT")) < 0 || (rc = exec(c, "BEGIN IMMEDIATE")) < 0))
            goto fail_st;
    }
    sqlite3_finalize(st);
    st = NULL;
    /* the commit record: replaces an older copy of the same entry in the same transaction */
    uint8_t sha[32];
    struct sha256 sh;
    sha256_init(&sh);
    sha256_update(&sh, data, n);
    sha256_final(&sh, sha);
    if ((rc = prepare(c, &st, "DELETE FROM entries WHERE " MATCH)) < 0)
        goto fail;
    bind_key(st, k);
    if ((rc = step_done(c, st, "replacing an entry")) < 0)
        goto fail;
    if ((rc = prepare(c, &st,
                      "UPDATE entries SET state = 'complete', size = ?, n_chunks = ?, "
                      "sha256 = ?, used = (SELECT coalesce(max(used), 0) + 1 FROM entries) "
                      "WHERE id = ?")) < 0)
        goto fail;
    sqlite3_bind_int64(st, 1, (int64_t)n);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_blob(st, 3, sha, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, id);
    if ((rc = step_done(c, st, "committing an entry")) < 0 || (rc = exec(c, "COMMIT")) < 0)
        goto fail;
    return 0;
fail_st:
    sqlite3_finalize(st);
fail:
    exec(c, "ROLLBACK");
    /* an earlier commit may have made the row durable: drop it (or leave it to the next open) */
    if (id && sqlite3_prepare_v2(c->h, "DELETE FROM entries WHERE id = ? AND state = 'writing'", -1,
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
    int rc = prepare(c, &st, "SELECT id FROM entries WHERE " MATCH " ORDER BY id DESC LIMIT 1");
    if (rc < 0)
        return rc;
    bind_key(st, k);
    int r = sqlite3_step(st);
    *id = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return r == SQLITE_ROW || r == SQLITE_DONE ? 0 : sql_err(c, "looking up an entry");
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
    sqlite3_stmt *st;
    int rc = prepare(c, &st, "DELETE FROM entries WHERE id = ?");
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    return step_done(c, st, "dropping an entry");
}

/* Reads entry id into out, verifying the chunks' CRC-32C, their count and the size (and with
 * full, the SHA-256: a few times slower than the rest, so only `lode cache verify` pays it);
 * a damaged entry is deleted (ERR_INVAL). */
static int read_entry(struct cache *c, int64_t id, int full, struct buf *out)
{
    buf_reset(out);
    sqlite3_stmt *st;
    int rc = prepare(c, &st, "SELECT size, n_chunks, sha256 FROM entries WHERE id = ?");
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return err_set(ERR_NOTFOUND, "%s: no entry %lld", c->path, (long long)id);
    }
    int64_t size = sqlite3_column_int64(st, 0), nchunks = sqlite3_column_int64(st, 1);
    uint8_t want[32] = { 0 };
    if (sqlite3_column_bytes(st, 2) == 32)
        memcpy(want, sqlite3_column_blob(st, 2), 32);
    sqlite3_finalize(st);
    if (size < 0 || (uint64_t)size > SIZE_MAX / 2 || buf_reserve(out, (size_t)size) < 0)
        return err_set(ERR_NOMEM, "%s: entry %lld: cannot hold %lld bytes", c->path, (long long)id,
                       (long long)size);
    if ((rc = prepare(c, &st,
                      "SELECT seq, crc32c, data FROM chunks WHERE entry_id = ? ORDER BY seq")) < 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    int64_t expect = 0;
    int r;
    while (rc == 0 && (r = sqlite3_step(st)) == SQLITE_ROW) {
        const void *data = sqlite3_column_blob(st, 2);
        size_t n = (size_t)sqlite3_column_bytes(st, 2);
        if (sqlite3_column_int64(st, 0) != expect++ ||
            (uint32_t)sqlite3_column_int64(st, 1) != crc32c(0, data, n) ||
            out->len + n > (size_t)size)
            rc = err_set(ERR_INVAL, "%s: entry %lld: chunk %lld is damaged (entry discarded)",
                         c->path, (long long)id, (long long)(expect - 1));
        else
            rc = buf_append(out, data, n);
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = sql_err(c, "reading chunks");
    sqlite3_finalize(st);
    if (rc == 0 && (expect != nchunks || out->len != (size_t)size))
        rc = err_set(ERR_INVAL,
                     "%s: entry %lld: %lld chunks, %zu bytes; the commit record says "
                     "%lld, %lld (entry discarded)",
                     c->path, (long long)id, (long long)expect, out->len, (long long)nchunks,
                     (long long)size);
    if (rc == 0 && full) {
        uint8_t got[32];
        struct sha256 sh;
        sha256_init(&sh);
        sha256_update(&sh, out->p ? (const void *)out->p : "", out->len);
        sha256_final(&sh, got);
        if (memcmp(got, want, 32))
            rc = err_set(ERR_INVAL, "%s: entry %lld: SHA-256 mismatch (entry discarded)", c->path,
                         (long long)id);
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
        return err_set(ERR_NOTFOUND, "%s: no such entry", c->path);
    if ((rc = read_entry(c, id, 0, out)) < 0)
        return rc;
    return mark_used(c, id);
}

int cache_snaps(struct cache *c, const struct cache_key *k, const uint8_t base[32], long max_pos,
                cache_snap_fn fn, void *ctx)
{
    sqlite3_stmt *st;
    int rc = prepare(c, &st,
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
        rc = sql_err(c, "listing snapshots");
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
    int rc = prepare(c, &st,
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
    snprintf(wal, sizeof wal, "%s-wal", c->path);
    s->file_bytes = file_size(c->path) + file_size(wal);
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
    if ((rc = exec(c, "BEGIN IMMEDIATE")) < 0)
        return rc;
    sqlite3_stmt *st, *del;
    if ((rc = prepare(c, &st,
                      "SELECT id, size FROM entries WHERE state = 'complete' "
                      "ORDER BY used, id")) < 0)
        goto fail;
    if ((rc = prepare(c, &del, "DELETE FROM entries WHERE id = ?")) < 0) {
        sqlite3_finalize(st);
        goto fail;
    }
    uint64_t left = (uint64_t)total, gone = 0;
    while (left > budget && sqlite3_step(st) == SQLITE_ROW) {
        uint64_t sz = (uint64_t)sqlite3_column_int64(st, 1);
        sqlite3_reset(del);
        sqlite3_bind_int64(del, 1, sqlite3_column_int64(st, 0));
        if (sqlite3_step(del) != SQLITE_DONE) {
            rc = sql_err(c, "evicting an entry");
            break;
        }
        left -= sz < left ? sz : left;
        gone += sz;
    }
    sqlite3_finalize(st);
    sqlite3_finalize(del);
    if (rc < 0 || (rc = exec(c, "COMMIT")) < 0)
        goto fail;
    if (freed)
        *freed = gone;
    /* hand the freed pages back to the file system */
    return exec(c, "PRAGMA incremental_vacuum");
fail:
    exec(c, "ROLLBACK");
    return rc;
}

int cache_clear(struct cache *c)
{
    int rc = exec(c, "DELETE FROM entries");
    if (rc == 0)
        rc = exec(c, "VACUUM");
    if (rc == 0)
        sqlite3_wal_checkpoint_v2(c->h, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
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
    snprintf(dir, sizeof dir, "%s", c->path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    else
        snprintf(dir, sizeof dir, ".");
    struct statvfs v;
    uint64_t avail = statvfs(dir, &v) == 0 ? (uint64_t)v.f_bavail * v.f_frsize : 0;
    return avail / 4 + (uint64_t)held;
}
