/*
 * store.c - the SQLite store (see store.h for the durability rules).
 *
 * Schema history (DB_SCHEMA_VERSION, kept in PRAGMA user_version):
 *   1  sessions, messages, blobs, blob_chunks
 * A migration is a list of statements run in one transaction that also bumps
 * user_version; add version N+1 to `migrations` and never edit an old one.
 */
#include "db/store.h"

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
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct db {
    sqlite3 *h;
    char path[PATH_MAX];
};

struct db_blob_writer {
    struct db *db;
    int64_t id;
    int64_t seq;   /* next chunk number */
    uint64_t size; /* bytes written so far */
    struct sha256 sha;
    uint8_t *pend; /* partial chunk, DB_CHUNK bytes */
    size_t npend;
    int in_tx; /* chunks since the last commit are in an open transaction */
};

static const char *const migrations[] = {
    /* version 1 */
    "CREATE TABLE sessions ("
    "  id TEXT PRIMARY KEY,"
    "  project TEXT NOT NULL,"
    "  title TEXT NOT NULL DEFAULT '',"
    "  model TEXT NOT NULL DEFAULT '',"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL);"
    "CREATE INDEX sessions_project ON sessions(project, updated);"
    "CREATE TABLE messages ("
    "  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  PRIMARY KEY (session_id, seq));"
    "CREATE TABLE blobs ("
    "  id INTEGER PRIMARY KEY,"
    "  session_id TEXT REFERENCES sessions(id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('writing', 'complete', 'corrupt')),"
    "  size INTEGER NOT NULL DEFAULT 0,"
    "  n_chunks INTEGER NOT NULL DEFAULT 0,"
    "  sha256 TEXT NOT NULL DEFAULT '',"
    "  writer_pid INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL);"
    "CREATE INDEX blobs_session ON blobs(session_id, kind, id);"
    "CREATE TABLE blob_chunks ("
    "  blob_id INTEGER NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  crc32c INTEGER NOT NULL,"
    "  data BLOB NOT NULL,"
    "  PRIMARY KEY (blob_id, seq));",
};
#define NMIGRATIONS (int)(sizeof migrations / sizeof migrations[0])

static int sql_err(struct db *db, const char *what)
{
    return err_set(ERR_IO, "%s: %s: %s", db->path, what, sqlite3_errmsg(db->h));
}

static int exec(struct db *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = err_set(ERR_IO, "%s: %s", db->path, msg ? msg : sqlite3_errmsg(db->h));
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

static int prepare(struct db *db, sqlite3_stmt **st, const char *sql)
{
    if (sqlite3_prepare_v2(db->h, sql, -1, st, NULL) != SQLITE_OK)
        return sql_err(db, "prepare");
    return 0;
}

/* Steps a statement that returns no rows, then finalizes it. */
static int step_done(struct db *db, sqlite3_stmt *st, const char *what)
{
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? 0 : sql_err(db, what);
}

static int64_t now_s(void) { return (int64_t)time(NULL); }

static int migrate(struct db *db)
{
    sqlite3_stmt *st;
    int rc = prepare(db, &st, "PRAGMA user_version");
    if (rc < 0)
        return rc;
    int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (version > NMIGRATIONS)
        return err_set(ERR_UNSUPPORTED,
                       "%s: written by a newer lode (schema %d, this lode knows %d); "
                       "upgrade lode or use another data directory",
                       db->path, version, NMIGRATIONS);
    for (int v = version; v < NMIGRATIONS; v++) {
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
        if ((rc = exec(db, "BEGIN IMMEDIATE")) < 0)
            return rc;
        if ((rc = exec(db, migrations[v])) < 0 || (rc = exec(db, bump)) < 0) {
            exec(db, "ROLLBACK");
            return err_prefix(rc, "migrating to schema %d", v + 1);
        }
        if ((rc = exec(db, "COMMIT")) < 0)
            return rc;
    }
    return 0;
}

/* Deletes blobs whose writer died before the commit record. */
static int drop_incomplete(struct db *db)
{
    sqlite3_stmt *st;
    int rc = prepare(db, &st, "SELECT id, writer_pid FROM blobs WHERE state = 'writing'");
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
        if ((rc = prepare(db, &st, "DELETE FROM blobs WHERE id = ?")) < 0)
            return rc;
        sqlite3_bind_int64(st, 1, dead[i]);
        if ((rc = step_done(db, st, "dropping an incomplete blob")) < 0)
            return rc;
    }
    return 0;
}

int db_open(struct db **out, const char *path)
{
    *out = NULL;
    struct db *db = calloc(1, sizeof *db);
    if (!db)
        return err_set(ERR_NOMEM, "out of memory");
    int rc;
    if (path) {
        snprintf(db->path, sizeof db->path, "%s", path);
    } else {
        char dir[PATH_MAX];
        if ((rc = fs_xdg_dir(FS_XDG_DATA, dir, sizeof dir)) < 0 ||
            (rc = fs_mkdir_p(dir, 0700)) < 0 ||
            (rc = fs_join(db->path, sizeof db->path, dir, "lode.db")) < 0) {
            free(db);
            return rc;
        }
    }
    if (sqlite3_open_v2(db->path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = err_set(ERR_IO, "%s: %s", db->path, db->h ? sqlite3_errmsg(db->h) : "cannot open");
        db_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db->h, 5000);
    if ((rc = exec(db, "PRAGMA journal_mode = WAL")) < 0 ||
        (rc = exec(db, "PRAGMA synchronous = FULL")) < 0 ||
        (rc = exec(db, "PRAGMA foreign_keys = ON")) < 0 || (rc = migrate(db)) < 0 ||
        (rc = drop_incomplete(db)) < 0) {
        db_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

void db_close(struct db *db)
{
    if (!db)
        return;
    if (db->h) {
        /* fold the WAL back so the file is self-contained when we exit */
        sqlite3_wal_checkpoint_v2(db->h, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        sqlite3_close_v2(db->h);
    }
    free(db);
}

const char *db_path(const struct db *db) { return db->path; }

/* ---------------------------------------------------------------- sessions */

int db_session_new(struct db *db, const char *project, const char *model, char id[DB_ID_MAX])
{
    uint8_t rnd[3];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        uint64_t t = (uint64_t)clock();
        memcpy(rnd, &t, sizeof rnd);
    }
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(id, DB_ID_MAX, "%04d%02d%02d-%02d%02d%02d-%02x%02x%02x", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rnd[0], rnd[1], rnd[2]);
    sqlite3_stmt *st;
    int rc = prepare(db, &st,
                     "INSERT INTO sessions(id, project, model, created, updated) "
                     "VALUES (?, ?, ?, ?, ?)");
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, project, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, model ? model : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, now_s());
    sqlite3_bind_int64(st, 5, now_s());
    return step_done(db, st, "creating a session");
}

int db_session_set_title(struct db *db, const char *id, const char *title)
{
    sqlite3_stmt *st;
    int rc = prepare(db, &st, "UPDATE sessions SET title = ? WHERE id = ?");
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, title, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
    return step_done(db, st, "setting a title");
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return strdup(s ? (const char *)s : "");
}

#define SESSION_COLS                                                                               \
    "SELECT s.id, s.project, s.title, s.model, s.created, s.updated, "                             \
    "(SELECT count(*) FROM messages m WHERE m.session_id = s.id) FROM sessions s "

static int row_session(sqlite3_stmt *st, struct db_session *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", (const char *)sqlite3_column_text(st, 0));
    s->project = col_dup(st, 1);
    s->title = col_dup(st, 2);
    s->model = col_dup(st, 3);
    s->created = sqlite3_column_int64(st, 4);
    s->updated = sqlite3_column_int64(st, 5);
    s->n_messages = sqlite3_column_int64(st, 6);
    if (!s->project || !s->title || !s->model) {
        db_session_free(s);
        return err_set(ERR_NOMEM, "out of memory");
    }
    return 0;
}

void db_session_free(struct db_session *s)
{
    if (!s)
        return;
    free(s->project);
    free(s->title);
    free(s->model);
    s->project = s->title = s->model = NULL;
}

void db_session_list_free(struct db_session *v, int n)
{
    for (int i = 0; v && i < n; i++)
        db_session_free(&v[i]);
    free(v);
}

int db_session_get(struct db *db, const char *id, struct db_session *out)
{
    sqlite3_stmt *st;
    int rc = prepare(db, &st,
                     SESSION_COLS "WHERE s.id = ?1 OR substr(s.id, 1, length(?1)) = ?1 "
                                  "ORDER BY s.id = ?1 DESC LIMIT 2");
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    int found = 0;
    rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (found == 1) {
            if (!strcmp(out->id, id)) /* exact match wins over prefix matches */
                break;
            db_session_free(out);
            rc = err_set(ERR_NOTFOUND, "session id '%s' is ambiguous", id);
            break;
        }
        if ((rc = row_session(st, out)) < 0)
            break;
        found = 1;
    }
    sqlite3_finalize(st);
    if (rc == 0 && !found)
        rc = err_set(ERR_NOTFOUND, "no session '%s'", id);
    return rc;
}

int db_session_list(struct db *db, const char *project, struct db_session **out, int *n)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = prepare(db, &st,
                     SESSION_COLS "WHERE ?1 IS NULL OR s.project = ?1 "
                                  "ORDER BY s.updated DESC, s.id DESC");
    if (rc < 0)
        return rc;
    if (project)
        sqlite3_bind_text(st, 1, project, -1, SQLITE_TRANSIENT);
    int cap = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            struct db_session *nv = realloc(*out, (size_t)cap * sizeof **out);
            if (!nv) {
                rc = err_set(ERR_NOMEM, "out of memory");
                break;
            }
            *out = nv;
        }
        if ((rc = row_session(st, &(*out)[*n])) < 0)
            break;
        (*n)++;
    }
    sqlite3_finalize(st);
    if (rc < 0) {
        db_session_list_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int db_session_latest(struct db *db, const char *project, char id[DB_ID_MAX])
{
    sqlite3_stmt *st;
    int rc = prepare(db, &st,
                     "SELECT id FROM sessions WHERE project = ? ORDER BY updated DESC, id DESC "
                     "LIMIT 1");
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, project, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(id, DB_ID_MAX, "%s", (const char *)sqlite3_column_text(st, 0));
    else
        rc = err_set(ERR_NOTFOUND, "no session in %s yet", project);
    sqlite3_finalize(st);
    return rc;
}

int db_session_rm(struct db *db, const char *id)
{
    struct db_session s;
    int rc = db_session_get(db, id, &s);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    if ((rc = prepare(db, &st, "DELETE FROM sessions WHERE id = ?")) == 0) {
        sqlite3_bind_text(st, 1, s.id, -1, SQLITE_TRANSIENT);
        rc = step_done(db, st, "removing a session");
    }
    db_session_free(&s);
    return rc;
}

/* ---------------------------------------------------------------- messages */

int db_message_append(struct db *db, const char *sid, const char *kind, const char *json_body,
                      int64_t *seq_out)
{
    int rc = exec(db, "BEGIN IMMEDIATE");
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    if ((rc = prepare(db, &st,
                      "INSERT INTO messages(session_id, seq, kind, body, created) "
                      "SELECT ?1, coalesce(max(seq), 0) + 1, ?2, ?3, ?4 FROM messages "
                      "WHERE session_id = ?1 RETURNING seq")) < 0)
        goto fail;
    sqlite3_bind_text(st, 1, sid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, json_body, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, now_s());
    int r = sqlite3_step(st);
    int64_t seq = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (r == SQLITE_ROW)
        r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE || seq == 0) {
        rc = sql_err(db, "appending a message (does the session exist?)");
        goto fail;
    }
    if ((rc = prepare(db, &st, "UPDATE sessions SET updated = ? WHERE id = ?")) < 0)
        goto fail;
    sqlite3_bind_int64(st, 1, now_s());
    sqlite3_bind_text(st, 2, sid, -1, SQLITE_TRANSIENT);
    if ((rc = step_done(db, st, "touching a session")) < 0 || (rc = exec(db, "COMMIT")) < 0)
        goto fail;
    if (seq_out)
        *seq_out = seq;
    return 0;
fail:
    exec(db, "ROLLBACK");
    return rc;
}

int db_messages(struct db *db, const char *sid, db_message_fn fn, void *ctx)
{
    sqlite3_stmt *st;
    int rc = prepare(db, &st,
                     "SELECT seq, kind, body, created FROM messages WHERE session_id = ? "
                     "ORDER BY seq");
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, sid, -1, SQLITE_TRANSIENT);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        rc = fn(ctx, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
                (const char *)sqlite3_column_text(st, 2), sqlite3_column_int64(st, 3));
        if (rc)
            break;
    }
    if (!rc && r != SQLITE_DONE)
        rc = sql_err(db, "reading messages");
    sqlite3_finalize(st);
    return rc;
}

/* ---------------------------------------------------------------- blobs */

#define CHUNKS_PER_TX 64 /* commit every 64 MiB so the WAL stays bounded */

int db_blob_begin(struct db *db, const char *sid, const char *kind, struct db_blob_writer **out)
{
    *out = NULL;
    struct db_blob_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->pend = malloc(DB_CHUNK))) {
        if (w)
            free(w);
        return err_set(ERR_NOMEM, "out of memory");
    }
    w->db = db;
    sha256_init(&w->sha);
    sqlite3_stmt *st;
    int rc = prepare(db, &st,
                     "INSERT INTO blobs(session_id, kind, state, writer_pid, created) "
                     "VALUES (?, ?, 'writing', ?, ?)");
    if (rc < 0) {
        free(w->pend);
        free(w);
        return rc;
    }
    if (sid)
        sqlite3_bind_text(st, 1, sid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, getpid());
    sqlite3_bind_int64(st, 4, now_s());
    if ((rc = step_done(db, st, "starting a blob")) < 0) {
        free(w->pend);
        free(w);
        return rc;
    }
    w->id = sqlite3_last_insert_rowid(db->h);
    *out = w;
    return 0;
}

static int flush_chunk(struct db_blob_writer *w)
{
    struct db *db = w->db;
    int rc;
    if (!w->in_tx) {
        if ((rc = exec(db, "BEGIN IMMEDIATE")) < 0)
            return rc;
        w->in_tx = 1;
    }
    sqlite3_stmt *st;
    if ((rc = prepare(db, &st,
                      "INSERT INTO blob_chunks(blob_id, seq, crc32c, data) VALUES (?, ?, ?, ?)")) <
        0)
        return rc;
    sqlite3_bind_int64(st, 1, w->id);
    sqlite3_bind_int64(st, 2, w->seq);
    sqlite3_bind_int64(st, 3, crc32c(0, w->pend, w->npend));
    sqlite3_bind_blob(st, 4, w->pend, (int)w->npend, SQLITE_STATIC);
    if ((rc = step_done(db, st, "writing a blob chunk")) < 0)
        return rc;
    w->seq++;
    w->npend = 0;
    if (w->seq % CHUNKS_PER_TX == 0) {
        w->in_tx = 0;
        return exec(db, "COMMIT");
    }
    return 0;
}

int db_blob_write(struct db_blob_writer *w, const void *data, size_t n)
{
    const uint8_t *p = data;
    sha256_update(&w->sha, p, n);
    w->size += n;
    while (n) {
        size_t take = DB_CHUNK - w->npend < n ? DB_CHUNK - w->npend : n;
        memcpy(w->pend + w->npend, p, take);
        w->npend += take, p += take, n -= take;
        if (w->npend == DB_CHUNK) {
            int rc = flush_chunk(w);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

void db_blob_abort(struct db_blob_writer *w)
{
    if (!w)
        return;
    if (w->in_tx)
        exec(w->db, "ROLLBACK");
    sqlite3_stmt *st;
    if (prepare(w->db, &st, "DELETE FROM blobs WHERE id = ?") == 0) {
        sqlite3_bind_int64(st, 1, w->id);
        step_done(w->db, st, "dropping a blob");
    }
    free(w->pend);
    free(w);
}

int db_blob_commit(struct db_blob_writer *w, int64_t *blob_id)
{
    int rc = 0;
    if (w->npend && (rc = flush_chunk(w)) < 0)
        goto fail;
    if (!w->in_tx && (rc = exec(w->db, "BEGIN IMMEDIATE")) < 0)
        goto fail;
    w->in_tx = 1;
    uint8_t d[32];
    char hex[65];
    sha256_final(&w->sha, d);
    hash_to_hex(d, 32, hex);
    sqlite3_stmt *st;
    if ((rc = prepare(w->db, &st,
                      "UPDATE blobs SET state = 'complete', size = ?, n_chunks = ?, sha256 = ? "
                      "WHERE id = ?")) < 0)
        goto fail;
    sqlite3_bind_int64(st, 1, (int64_t)w->size);
    sqlite3_bind_int64(st, 2, w->seq);
    sqlite3_bind_text(st, 3, hex, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, w->id);
    if ((rc = step_done(w->db, st, "committing a blob")) < 0 || (rc = exec(w->db, "COMMIT")) < 0)
        goto fail;
    if (blob_id)
        *blob_id = w->id;
    free(w->pend);
    free(w);
    return 0;
fail:
    db_blob_abort(w);
    return rc;
}

static int mark_corrupt(struct db *db, int64_t id)
{
    sqlite3_stmt *st;
    if (prepare(db, &st, "UPDATE blobs SET state = 'corrupt' WHERE id = ?") == 0) {
        sqlite3_bind_int64(st, 1, id);
        step_done(db, st, "marking a blob corrupt");
    }
    return ERR_INVAL;
}

int db_blob_read(struct db *db, int64_t blob_id, struct buf *out)
{
    buf_reset(out);
    sqlite3_stmt *st;
    int rc = prepare(db, &st,
                     "SELECT size, n_chunks, sha256 FROM blobs "
                     "WHERE id = ? AND state = 'complete'");
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, blob_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return err_set(ERR_NOTFOUND, "no complete blob %lld", (long long)blob_id);
    }
    int64_t size = sqlite3_column_int64(st, 0), nchunks = sqlite3_column_int64(st, 1);
    char want[65];
    snprintf(want, sizeof want, "%s", (const char *)sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
    if (size < 0 || (uint64_t)size > SIZE_MAX / 2 || buf_reserve(out, (size_t)size) < 0)
        return err_set(ERR_NOMEM, "blob %lld: cannot hold %lld bytes", (long long)blob_id,
                       (long long)size);
    if ((rc = prepare(db, &st,
                      "SELECT seq, crc32c, data FROM blob_chunks WHERE blob_id = ? "
                      "ORDER BY seq")) < 0)
        return rc;
    sqlite3_bind_int64(st, 1, blob_id);
    int64_t expect_seq = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        const void *data = sqlite3_column_blob(st, 2);
        size_t n = (size_t)sqlite3_column_bytes(st, 2);
        if (sqlite3_column_int64(st, 0) != expect_seq++ ||
            (uint32_t)sqlite3_column_int64(st, 1) != crc32c(0, data, n) ||
            out->len + n > (size_t)size)
            rc = err_set(ERR_INVAL, "blob %lld: chunk %lld is damaged", (long long)blob_id,
                         (long long)(expect_seq - 1));
        else
            rc = buf_append(out, data, n);
    }
    sqlite3_finalize(st);
    if (rc == ERR_INVAL)
        return mark_corrupt(db, blob_id);
    if (rc < 0)
        return rc;
    char got[65];
    sha256_hex(out->p ? out->p : "", out->len, got);
    if (expect_seq != nchunks || out->len != (size_t)size || strcmp(got, want)) {
        err_set(ERR_INVAL, "blob %lld: size or checksum mismatch", (long long)blob_id);
        return mark_corrupt(db, blob_id);
    }
    return 0;
}

int db_blob_latest(struct db *db, const char *sid, const char *kind, int64_t *blob_id)
{
    sqlite3_stmt *st;
    int rc = prepare(db, &st,
                     "SELECT id FROM blobs WHERE session_id IS ? AND kind = ? "
                     "AND state = 'complete' ORDER BY id DESC LIMIT 1");
    if (rc < 0)
        return rc;
    if (sid)
        sqlite3_bind_text(st, 1, sid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW)
        *blob_id = sqlite3_column_int64(st, 0);
    else
        rc = err_set(ERR_NOTFOUND, "no %s blob", kind);
    sqlite3_finalize(st);
    return rc;
}

int db_blob_prune(struct db *db, const char *sid, const char *kind, int64_t keep_id)
{
    sqlite3_stmt *st;
    int rc = prepare(db, &st, "DELETE FROM blobs WHERE session_id IS ? AND kind = ? AND id != ?");
    if (rc < 0)
        return rc;
    if (sid)
        sqlite3_bind_text(st, 1, sid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, keep_id);
    return step_done(db, st, "pruning old blobs");
}
