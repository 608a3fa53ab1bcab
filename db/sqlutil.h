/*
 * sqlutil.h - what db/store.c and db/cache.c share: opening a SQLite file in
 * WAL mode with a forward-only migrated schema, dropping payloads a dead
 * writer left half-written, prepare/bind/step shorthands, and payloads stored
 * as chunks with a CRC-32C each (written, then sealed by a commit record that
 * the caller writes; read back with every chunk verified).
 *
 * The table and column names differ between the two stores (blobs/blob_chunks,
 * entries/chunks), so the callers pass their SQL; the on-disk formats stay
 * theirs. One struct sqlu per thread.
 */
#ifndef LODE_DB_SQLUTIL_H
#define LODE_DB_SQLUTIL_H

#include "common/buf.h"
#include "common/hash.h"

#include <limits.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct sqlu {
    sqlite3 *h;
    char path[PATH_MAX];
};

/* How a store opens: the file (path, or xdg_file in the XDG folder xdg, an
 * enum fs_xdg), the pragmas run first (NULL-terminated), its migrations, and
 * how it names itself in messages. */
struct sqlu_spec {
    int xdg;
    const char *xdg_file;
    int busy_ms;
    const char *const *pragmas;
    const char *const *migrations;
    int nmigrations;
    const char *schema_name; /* "schema", "cache schema" */
    const char *newer_hint;  /* what to do about a newer file */
    const char *migrating;   /* "migrating to schema %d" style prefix */
    /* the rows a writer is filling: SELECT id, writer_pid ... WHERE state = 'writing' */
    const char *writing_sql;
    const char *drop_sql; /* DELETE ... WHERE id = ? */
    const char *drop_what;
};

/* Opens (creating if needed), runs the pragmas, migrates, and drops the
 * payloads whose writer died. On failure d is closed. */
int sqlu_open(struct sqlu *d, const char *path, const struct sqlu_spec *spec);
/* Folds the WAL back and closes; accepts a never-opened d. */
void sqlu_close(struct sqlu *d);

/* ERR_IO naming the file, what failed and SQLite's message. */
int sqlu_err(struct sqlu *d, const char *what);
int sqlu_exec(struct sqlu *d, const char *sql);
int sqlu_prepare(struct sqlu *d, sqlite3_stmt **st, const char *sql);
/* Steps a statement that returns no rows, then finalizes it. */
int sqlu_step_done(struct sqlu *d, sqlite3_stmt *st, const char *what);

/* Prepares sql and binds its parameters from the variadic list, one per
 * letter of types: 't' a const char * (NULL binds NULL), 'i' an int64_t,
 * 'b' a 32-byte const uint8_t * (NULL binds NULL). Blobs and texts are copied. */
int sqlu_stmt(struct sqlu *d, sqlite3_stmt **st, const char *sql, const char *types, ...);
/* sqlu_stmt, then sqlu_step_done: a statement that returns no rows. */
int sqlu_run(struct sqlu *d, const char *what, const char *sql, const char *types, ...);

/* ---- chunked payloads */

/* Writes one payload as chunks of `chunk` bytes (the last one shorter):
 * ins_sql is "INSERT INTO <chunks>(<owner>, seq, crc32c, data) VALUES (?, ?, ?, ?)".
 * The chunks go in transactions of per_tx chunks so the WAL stays bounded;
 * the row that owns them must still say 'writing' until sqlu_chunks_seal. */
struct sqlu_chunks {
    struct sqlu *d;
    const char *ins_sql, *what;
    int64_t owner;
    size_t chunk;
    int per_tx;
    int in_tx;     /* a transaction is open */
    int64_t seq;   /* next chunk number = chunks written */
    uint64_t size; /* bytes written */
    struct sha256 sha;
    uint8_t *pend; /* partial chunk (allocated on first need) */
    size_t npend;
};

/* in_tx says whether the caller has a transaction open already. */
void sqlu_chunks_init(struct sqlu_chunks *w, struct sqlu *d, const char *ins_sql, const char *what,
                      int64_t owner, size_t chunk, int per_tx, int in_tx);
int sqlu_chunks_write(struct sqlu_chunks *w, const void *data, size_t n);
/* Writes the last partial chunk and leaves a transaction open for the
 * caller's commit record (run it, then COMMIT); sha gets the SHA-256 of all. */
int sqlu_chunks_seal(struct sqlu_chunks *w, uint8_t sha[32]);
/* Rolls back the open transaction, if any, and frees the buffer. */
void sqlu_chunks_abort(struct sqlu_chunks *w);
/* Frees the buffer (after a successful seal and commit). */
void sqlu_chunks_free(struct sqlu_chunks *w);

/* Reads a payload's chunks into out: st is prepared and bound, yielding
 * (seq, crc32c, data) ordered by seq. Checks that seq counts from 0, every
 * CRC-32C, and that the chunks hold nchunks chunks of size bytes; ERR_INVAL
 * naming `what` (plus `tail`) on damage. */
int sqlu_chunks_read(struct sqlu *d, sqlite3_stmt *st, int64_t size, int64_t nchunks,
                     struct buf *out, const char *what, const char *tail);

#endif
