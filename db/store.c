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
#include "db/sqlutil.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct db {
    struct sqlu s;
};

struct db_blob_writer {
    struct db *db;
    int64_t id;
    struct sqlu_chunks ch;
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

static const char *const pragmas[] = {
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    NULL,
};

static const struct sqlu_spec spec = {
    .xdg = FS_XDG_DATA,
    .xdg_file = "lode.db",
    .busy_ms = 5000,
    .pragmas = pragmas,
    .migrations = migrations,
    .nmigrations = NMIGRATIONS,
    .schema_name = "schema",
    .newer_hint = "upgrade lode or use another data directory",
    .migrating = "migrating to schema",
    .writing_sql = "SELECT id, writer_pid FROM blobs WHERE state = 'writing'",
    .drop_sql = "DELETE FROM blobs WHERE id = ?",
    .drop_what = "dropping an incomplete blob",
};

static int64_t now_s(void) { return (int64_t)time(NULL); }

int db_open(struct db **out, const char *path)
{
    *out = NULL;
    struct db *db = calloc(1, sizeof *db);
    if (!db)
        return err_set(ERR_NOMEM, "out of memory");
    int rc = sqlu_open(&db->s, path, &spec);
    if (rc < 0) {
        free(db);
        return rc;
    }
    *out = db;
    return 0;
}

void db_close(struct db *db)
{
    if (!db)
        return;
    sqlu_close(&db->s);
    free(db);
}

const char *db_path(const struct db *db) { return db->s.path; }

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
    return sqlu_run(&db->s, "creating a session",
                    "INSERT INTO sessions(id, project, model, created, updated) "
                    "VALUES (?, ?, ?, ?, ?)",
                    "tttii", id, project, model ? model : "", now_s(), now_s());
}

int db_session_set_title(struct db *db, const char *id, const char *title)
{
    return sqlu_run(&db->s, "setting a title", "UPDATE sessions SET title = ? WHERE id = ?", "tt",
                    title, id);
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
    int rc = sqlu_stmt(&db->s, &st,
                       SESSION_COLS "WHERE s.id = ?1 OR substr(s.id, 1, length(?1)) = ?1 "
                                    "ORDER BY s.id = ?1 DESC LIMIT 2",
                       "t", id);
    if (rc < 0)
        return rc;
    int found = 0;
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
    int rc = sqlu_stmt(&db->s, &st,
                       SESSION_COLS "WHERE ?1 IS NULL OR s.project = ?1 "
                                    "ORDER BY s.updated DESC, s.id DESC",
                       "t", project);
    if (rc < 0)
        return rc;
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
    int rc = sqlu_stmt(&db->s, &st,
                       "SELECT id FROM sessions WHERE project = ? ORDER BY updated DESC, id DESC "
                       "LIMIT 1",
                       "t", project);
    if (rc < 0)
        return rc;
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
    rc = sqlu_run(&db->s, "removing a session", "DELETE FROM sessions WHERE id = ?", "t", s.id);
    db_session_free(&s);
    return rc;
}

/* ---------------------------------------------------------------- messages */

int db_message_append(struct db *db, const char *sid, const char *kind, const char *json_body,
                      int64_t *seq_out)
{
    int rc = sqlu_exec(&db->s, "BEGIN IMMEDIATE");
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    if ((rc = sqlu_stmt(&db->s, &st,
                        "INSERT INTO messages(session_id, seq, kind, body, created) "
                        "SELECT ?1, coalesce(max(seq), 0) + 1, ?2, ?3, ?4 FROM messages "
                        "WHERE session_id = ?1 RETURNING seq",
                        "ttti", sid, kind, json_body, now_s())) < 0)
        goto fail;
    int r = sqlite3_step(st);
    int64_t seq = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (r == SQLITE_ROW)
        r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE || seq == 0) {
        rc = sqlu_err(&db->s, "appending a message (does the session exist?)");
        goto fail;
    }
    if ((rc = sqlu_run(&db->s, "touching a session", "UPDATE sessions SET updated = ? WHERE id = ?",
                       "it", now_s(), sid)) < 0 ||
        (rc = sqlu_exec(&db->s, "COMMIT")) < 0)
        goto fail;
    if (seq_out)
        *seq_out = seq;
    return 0;
fail:
    sqlu_exec(&db->s, "ROLLBACK");
    return rc;
}

int db_messages(struct db *db, const char *sid, db_message_fn fn, void *ctx)
{
    sqlite3_stmt *st;
    int rc = sqlu_stmt(&db->s, &st,
                       "SELECT seq, kind, body, created FROM messages WHERE session_id = ? "
                       "ORDER BY seq",
                       "t", sid);
    if (rc < 0)
        return rc;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        rc = fn(ctx, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
                (const char *)sqlite3_column_text(st, 2), sqlite3_column_int64(st, 3));
        if (rc)
            break;
    }
    if (!rc && r != SQLITE_DONE)
        rc = sqlu_err(&db->s, "reading messages");
    sqlite3_finalize(st);
    return rc;
}

/* ---------------------------------------------------------------- blobs */

#define CHUNKS_PER_TX 64 /* commit every 64 MiB so the WAL stays bounded */

int db_blob_begin(struct db *db, const char *sid, const char *kind, struct db_blob_writer **out)
{
    *out = NULL;
    struct db_blob_writer *w = calloc(1, sizeof *w);
    if (!w)
        return err_set(ERR_NOMEM, "out of memory");
    /* the row is committed on its own, saying 'writing', before any chunk */
    int rc = sqlu_run(&db->s, "starting a blob",
                      "INSERT INTO blobs(session_id, kind, state, writer_pid, created) "
                      "VALUES (?, ?, 'writing', ?, ?)",
                      "ttii", sid, kind, (int64_t)getpid(), now_s());
    if (rc < 0) {
        free(w);
        return rc;
    }
    w->db = db;
    w->id = sqlite3_last_insert_rowid(db->s.h);
    sqlu_chunks_init(&w->ch, &db->s,
                     "INSERT INTO blob_chunks(blob_id, seq, crc32c, data) VALUES (?, ?, ?, ?)",
                     "writing a blob chunk", w->id, DB_CHUNK, CHUNKS_PER_TX, 0);
    *out = w;
    return 0;
}

int db_blob_write(struct db_blob_writer *w, const void *data, size_t n)
{
    return sqlu_chunks_write(&w->ch, data, n);
}

void db_blob_abort(struct db_blob_writer *w)
{
    if (!w)
        return;
    sqlu_chunks_abort(&w->ch);
    sqlu_run(&w->db->s, "dropping a blob", "DELETE FROM blobs WHERE id = ?", "i", w->id);
    free(w);
}

int db_blob_commit(struct db_blob_writer *w, int64_t *blob_id)
{
    uint8_t d[32];
    char hex[65];
    int rc = sqlu_chunks_seal(&w->ch, d);
    if (rc < 0)
        goto fail;
    hash_to_hex(d, 32, hex);
    if ((rc = sqlu_run(&w->db->s, "committing a blob",
                       "UPDATE blobs SET state = 'complete', size = ?, n_chunks = ?, sha256 = ? "
                       "WHERE id = ?",
                       "iiti", (int64_t)w->ch.size, w->ch.seq, hex, w->id)) < 0 ||
        (rc = sqlu_exec(&w->db->s, "COMMIT")) < 0)
        goto fail;
    if (blob_id)
        *blob_id = w->id;
    sqlu_chunks_free(&w->ch);
    free(w);
    return 0;
fail:
    db_blob_abort(w);
    return rc;
}

static int mark_corrupt(struct db *db, int64_t id)
{
    sqlu_run(&db->s, "marking a blob corrupt", "UPDATE blobs SET state = 'corrupt' WHERE id = ?",
             "i", id);
    return ERR_INVAL;
}

int db_blob_read(struct db *db, int64_t blob_id, struct buf *out)
{
    buf_reset(out);
    sqlite3_stmt *st;
    int rc = sqlu_stmt(&db->s, &st,
                       "SELECT size, n_chunks, sha256 FROM blobs "
                       "WHERE id = ? AND state = 'complete'",
                       "i", blob_id);
    if (rc < 0)
        return rc;
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return err_set(ERR_NOTFOUND, "no complete blob %lld", (long long)blob_id);
    }
    int64_t size = sqlite3_column_int64(st, 0), nchunks = sqlite3_column_int64(st, 1);
    char want[65];
    snprintf(want, sizeof want, "%s", (const char *)sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
    if ((rc = sqlu_stmt(&db->s, &st,
                        "SELECT seq, crc32c, data FROM blob_chunks WHERE blob_id = ? "
                        "ORDER BY seq",
                        "i", blob_id)) < 0)
        return rc;
    char what[48];
    snprintf(what, sizeof what, "blob %lld", (long long)blob_id);
    rc = sqlu_chunks_read(&db->s, st, size, nchunks, out, what, "");
    sqlite3_finalize(st);
    if (rc == ERR_INVAL)
        return mark_corrupt(db, blob_id);
    if (rc < 0)
        return rc;
    char got[65];
    sha256_hex(out->p ? out->p : "", out->len, got);
    if (strcmp(got, want)) {
        err_set(ERR_INVAL, "blob %lld: size or checksum mismatch", (long long)blob_id);
        return mark_corrupt(db, blob_id);
    }
    return 0;
}

int db_blob_latest(struct db *db, const char *sid, const char *kind, int64_t *blob_id)
{
    sqlite3_stmt *st;
    int rc = sqlu_stmt(&db->s, &st,
                       "SELECT id FROM blobs WHERE session_id IS ? AND kind = ? "
                       "AND state = 'complete' ORDER BY id DESC LIMIT 1",
                       "tt", sid, kind);
    if (rc < 0)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        *blob_id = sqlite3_column_int64(st, 0);
    else
        rc = err_set(ERR_NOTFOUND, "no %s blob", kind);
    sqlite3_finalize(st);
    return rc;
}

int db_blob_prune(struct db *db, const char *sid, const char *kind, int64_t keep_id)
{
    return sqlu_run(&db->s, "pruning old blobs",
                    "DELETE FROM blobs WHERE session_id IS ? AND kind = ? AND id != ?", "tti", sid,
                    kind, keep_id);
}
