/*
 * store.h - lode's SQLite store: sessions, their messages and tool runs, and
 * large blobs (serialized model states) stored in checksummed chunks.
 *
 * Durability rules (engineering-style.md B2, agent-ux.md on lost sessions):
 *  - WAL mode with synchronous=FULL: a call that returns 0 after writing has
 *    committed, and the commit survives a crash or power loss.
 *  - Append-only messages: a message is never rewritten; each carries a kind
 *    ("user", "assistant", "tool_result", ... and kinds a later lode adds) and a
 *    JSON body. Readers show kinds they do not understand as raw JSON, never
 *    hide or drop them.
 *  - A versioned schema migrated forward in one transaction. A database written
 *    by a newer lode (higher schema version) is refused, not touched.
 *  - Blobs: chunks of at most DB_CHUNK bytes with a CRC-32C each, written
 *    while the blob row says 'writing'; db_blob_commit() records the total size
 *    and SHA-256 and flips it to 'complete' (the commit record). Readers use
 *    only complete blobs and verify every chunk; opening the store deletes
 *    blobs a crash left incomplete.
 *
 * One struct db per thread; it is not shared between threads.
 */
#ifndef LODE_DB_STORE_H
#define LODE_DB_STORE_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

#define DB_SCHEMA_VERSION 1
#define DB_CHUNK (1u << 20) /* blob chunk size: 1 MiB */
#define DB_ID_MAX 40

struct db;

/* Opens (creating if needed) the store at path, or at
 * $XDG_DATA_HOME/lode/lode.db when path is NULL. Caller owns *out and closes
 * it with db_close(). */
int db_open(struct db **out, const char *path);
void db_close(struct db *db);
/* The file the store lives in (borrowed). */
const char *db_path(const struct db *db);

/* ---- sessions */

struct db_session {
    char id[DB_ID_MAX];
    char *project;            /* owned; absolute project root */
    char *title;              /* owned; "" until set */
    char *model;              /* owned */
    int64_t created, updated; /* unix seconds */
    int64_t n_messages;
};

/* Creates a session; writes its id ("20261127-031502-7f3a9c") into id. */
int db_session_new(struct db *db, const char *project, const char *model, char id[DB_ID_MAX]);
int db_session_set_title(struct db *db, const char *id, const char *title);
/* One session by id (or unique id prefix); ERR_NOTFOUND when none or ambiguous.
 * Caller frees with db_session_free(). */
int db_session_get(struct db *db, const char *id, struct db_session *out);
/* Sessions, newest first; project NULL lists all. Caller frees the array with
 * db_session_list_free(). */
int db_session_list(struct db *db, const char *project, struct db_session **out, int *n);
/* The most recently updated session of a project (for --continue). */
int db_session_latest(struct db *db, const char *project, char id[DB_ID_MAX]);
/* Deletes a session with its messages and blobs. */
int db_session_rm(struct db *db, const char *id);
void db_session_free(struct db_session *s);
void db_session_list_free(struct db_session *v, int n);

/* ---- messages: append-only, committed before returning */

int db_message_append(struct db *db, const char *sid, const char *kind, const char *json_body,
                      int64_t *seq_out);
/* Calls fn for each message of a session in order; a non-zero return from fn
 * stops the walk and is returned. Strings are borrowed for the call. */
typedef int (*db_message_fn)(void *ctx, int64_t seq, const char *kind, const char *body,
                             int64_t created);
int db_messages(struct db *db, const char *sid, db_message_fn fn, void *ctx);

/* ---- blobs */

struct db_blob_writer;
/* Starts a blob owned by session sid (NULL for none) with a free-form kind
 * ("state", "kv"...). Nothing is visible to readers until commit. */
int db_blob_begin(struct db *db, const char *sid, const char *kind, struct db_blob_writer **out);
int db_blob_write(struct db_blob_writer *w, const void *data, size_t n);
/* Writes the commit record; *blob_id gets the id. Frees w either way. */
int db_blob_commit(struct db_blob_writer *w, int64_t *blob_id);
/* Drops an unfinished blob. Accepts NULL. */
void db_blob_abort(struct db_blob_writer *w);
/* Reads a complete blob into out, verifying each chunk's CRC-32C, the size
 * and the SHA-256. ERR_INVAL (and the blob is marked corrupt) on mismatch. */
int db_blob_read(struct db *db, int64_t blob_id, struct buf *out);
/* The newest complete blob of a kind for a session; ERR_NOTFOUND if none. */
int db_blob_latest(struct db *db, const char *sid, const char *kind, int64_t *blob_id);
/* Deletes the blobs of a kind for a session except keep_id (pass 0 to drop
 * them all), so only the newest saved state is kept. */
int db_blob_prune(struct db *db, const char *sid, const char *kind, int64_t keep_id);

#endif
