/*
 * sqlutil.c - shared SQLite plumbing of db/store.c and db/cache.c (see sqlutil.h).
 */
#include "db/sqlutil.h"

#include "common/err.h"
#include "common/fs.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sqlu_err(struct sqlu *d, const char *what)
{
    return err_set(ERR_IO, "%s: %s: %s", d->path, what, sqlite3_errmsg(d->h));
}

int sqlu_exec(struct sqlu *d, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(d->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = err_set(ERR_IO, "%s: %s", d->path, msg ? msg : sqlite3_errmsg(d->h));
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

int sqlu_prepare(struct sqlu *d, sqlite3_stmt **st, const char *sql)
{
    if (sqlite3_prepare_v2(d->h, sql, -1, st, NULL) != SQLITE_OK)
        return sqlu_err(d, "prepare");
    return 0;
}

int sqlu_step_done(struct sqlu *d, sqlite3_stmt *st, const char *what)
{
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? 0 : sqlu_err(d, what);
}

static int vstmt(struct sqlu *d, sqlite3_stmt **st, const char *sql, const char *types, va_list ap)
{
    int rc = sqlu_prepare(d, st, sql);
    if (rc < 0)
        return rc;
    for (int i = 0; types[i]; i++) {
        if (types[i] == 't') {
            const char *s = va_arg(ap, const char *);
            if (s)
                sqlite3_bind_text(*st, i + 1, s, -1, SQLITE_TRANSIENT);
        } else if (types[i] == 'i') {
            sqlite3_bind_int64(*st, i + 1, va_arg(ap, int64_t));
        } else if (types[i] == 'b') {
            const uint8_t *b = va_arg(ap, const uint8_t *);
            if (b)
                sqlite3_bind_blob(*st, i + 1, b, 32, SQLITE_TRANSIENT);
        } else {
            sqlite3_finalize(*st);
            *st = NULL;
            return err_set(ERR_INVAL, "sqlu_stmt: unknown parameter type '%c'", types[i]);
        }
    }
    return 0;
}

int sqlu_stmt(struct sqlu *d, sqlite3_stmt **st, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = vstmt(d, st, sql, types, ap);
    va_end(ap);
    return rc;
}

int sqlu_run(struct sqlu *d, const char *what, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, types);
    int rc = vstmt(d, &st, sql, types, ap);
    va_end(ap);
    return rc < 0 ? rc : sqlu_step_done(d, st, what);
}

/* ---------------------------------------------------------------- opening */

static int migrate(struct sqlu *d, const struct sqlu_spec *s)
{
    sqlite3_stmt *st;
    int rc = sqlu_prepare(d, &st, "PRAGMA user_version");
    if (rc < 0)
        return rc;
    int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (version > s->nmigrations)
        return err_set(ERR_UNSUPPORTED,
                       "%s: written by a newer lode (%s %d, this lode knows %d); %s", d->path,
                       s->schema_name, version, s->nmigrations, s->newer_hint);
    for (int v = version; v < s->nmigrations; v++) {
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
        if ((rc = sqlu_exec(d, "BEGIN IMMEDIATE")) < 0)
            return rc;
        if ((rc = sqlu_exec(d, s->migrations[v])) < 0 || (rc = sqlu_exec(d, bump)) < 0) {
            sqlu_exec(d, "ROLLBACK");
            return err_prefix(rc, "%s %d", s->migrating, v + 1);
        }
        if ((rc = sqlu_exec(d, "COMMIT")) < 0)
            return rc;
    }
    return 0;
}

/* Deletes the payloads whose writer died before the commit record (a live
 * writer in another process keeps its rows). */
static int drop_incomplete(struct sqlu *d, const struct sqlu_spec *s)
{
    sqlite3_stmt *st;
    int rc = sqlu_prepare(d, &st, s->writing_sql);
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
    for (int i = 0; i < ndead; i++)
        if ((rc = sqlu_run(d, s->drop_what, s->drop_sql, "i", dead[i])) < 0)
            return rc;
    return 0;
}

int sqlu_open(struct sqlu *d, const char *path, const struct sqlu_spec *s)
{
    memset(d, 0, sizeof *d);
    int rc;
    if (path) {
        snprintf(d->path, sizeof d->path, "%s", path);
    } else {
        char dir[PATH_MAX];
        if ((rc = fs_xdg_dir((enum fs_xdg)s->xdg, dir, sizeof dir)) < 0 ||
            (rc = fs_mkdir_p(dir, 0700)) < 0 ||
            (rc = fs_join(d->path, sizeof d->path, dir, s->xdg_file)) < 0)
            return rc;
    }
    if (sqlite3_open_v2(d->path, &d->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = err_set(ERR_IO, "%s: %s", d->path, d->h ? sqlite3_errmsg(d->h) : "cannot open");
        sqlu_close(d);
        return rc;
    }
    sqlite3_busy_timeout(d->h, s->busy_ms);
    for (const char *const *p = s->pragmas; *p; p++)
        if ((rc = sqlu_exec(d, *p)) < 0)
            goto fail;
    if ((rc = migrate(d, s)) < 0 || (rc = drop_incomplete(d, s)) < 0)
        goto fail;
    return 0;
fail:
    sqlu_close(d);
    return rc;
}

void sqlu_close(struct sqlu *d)
{
    if (d->h) {
        /* fold the WAL back so the file is self-contained when we exit */
        sqlite3_wal_checkpoint_v2(d->h, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        sqlite3_close_v2(d->h);
        d->h = NULL;
    }
}

/* ---------------------------------------------------------------- chunks */

void sqlu_chunks_init(struct sqlu_chunks *w, struct sqlu *d, const char *ins_sql, const char *what,
                      int64_t owner, size_t chunk, int per_tx, int in_tx)
{
    memset(w, 0, sizeof *w);
    w->d = d;
    w->ins_sql = ins_sql;
    w->what = what;
    w->owner = owner;
    w->chunk = chunk;
    w->per_tx = per_tx;
    w->in_tx = in_tx;
    sha256_init(&w->sha);
}

static int put_chunk(struct sqlu_chunks *w, const uint8_t *p, size_t n)
{
    struct sqlu *d = w->d;
    int rc;
    if (!w->in_tx) {
        if ((rc = sqlu_exec(d, "BEGIN IMMEDIATE")) < 0)
            return rc;
        w->in_tx = 1;
    }
    sqlite3_stmt *st;
    if ((rc = sqlu_prepare(d, &st, w->ins_sql)) < 0)
        return rc;
    sqlite3_bind_int64(st, 1, w->owner);
    sqlite3_bind_int64(st, 2, w->seq);
    sqlite3_bind_int64(st, 3, crc32c(0, p, n));
    sqlite3_bind_blob(st, 4, p, (int)n, SQLITE_STATIC);
    if ((rc = sqlu_step_done(d, st, w->what)) < 0)
        return rc;
    w->seq++;
    if (w->seq % w->per_tx == 0) {
        /* big payloads commit as they go (the owner row still says 'writing') */
        w->in_tx = 0;
        return sqlu_exec(d, "COMMIT");
    }
    return 0;
}

int sqlu_chunks_write(struct sqlu_chunks *w, const void *data, size_t n)
{
    const uint8_t *p = data;
    sha256_update(&w->sha, p, n);
    w->size += n;
    int rc;
    while (n) {
        if (!w->npend && n >= w->chunk) {
            /* a whole chunk straight from the caller: no copy */
            if ((rc = put_chunk(w, p, w->chunk)) < 0)
                return rc;
            p += w->chunk, n -= w->chunk;
            continue;
        }
        if (!w->pend && !(w->pend = malloc(w->chunk)))
            return err_set(ERR_NOMEM, "%s: out of memory", w->d->path);
        size_t take = w->chunk - w->npend < n ? w->chunk - w->npend : n;
        memcpy(w->pend + w->npend, p, take);
        w->npend += take, p += take, n -= take;
        if (w->npend == w->chunk) {
            w->npend = 0;
            if ((rc = put_chunk(w, w->pend, w->chunk)) < 0)
                return rc;
        }
    }
    return 0;
}

int sqlu_chunks_seal(struct sqlu_chunks *w, uint8_t sha[32])
{
    int rc;
    if (w->npend) {
        size_t n = w->npend;
        w->npend = 0;
        if ((rc = put_chunk(w, w->pend, n)) < 0)
            return rc;
    }
    if (!w->in_tx) {
        if ((rc = sqlu_exec(w->d, "BEGIN IMMEDIATE")) < 0)
            return rc;
        w->in_tx = 1;
    }
    sha256_final(&w->sha, sha);
    return 0;
}

void sqlu_chunks_abort(struct sqlu_chunks *w)
{
    if (w->in_tx)
        sqlu_exec(w->d, "ROLLBACK");
    w->in_tx = 0;
    sqlu_chunks_free(w);
}

void sqlu_chunks_free(struct sqlu_chunks *w)
{
    free(w->pend);
    w->pend = NULL;
    w->npend = 0;
}

int sqlu_chunks_read(struct sqlu *d, sqlite3_stmt *st, int64_t size, int64_t nchunks,
                     struct buf *out, const char *what, const char *tail)
{
    buf_reset(out);
    if (size < 0 || (uint64_t)size > SIZE_MAX / 2 || buf_reserve(out, (size_t)size) < 0)
        return err_set(ERR_NOMEM, "%s: cannot hold %lld bytes", what, (long long)size);
    int64_t expect = 0;
    int rc = 0, r = SQLITE_DONE;
    while (rc == 0 && (r = sqlite3_step(st)) == SQLITE_ROW) {
        const void *data = sqlite3_column_blob(st, 2);
        size_t n = (size_t)sqlite3_column_bytes(st, 2);
        if (sqlite3_column_int64(st, 0) != expect++ ||
            (uint32_t)sqlite3_column_int64(st, 1) != crc32c(0, data, n) ||
            out->len + n > (size_t)size)
            rc = err_set(ERR_INVAL, "%s: chunk %lld is damaged%s", what, (long long)(expect - 1),
                         tail);
        else
            rc = buf_append(out, data, n);
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = sqlu_err(d, "reading chunks");
    if (rc == 0 && (expect != nchunks || out->len != (size_t)size))
        rc = err_set(ERR_INVAL, "%s: %lld chunks, %zu bytes; the commit record says %lld, %lld%s",
                     what, (long long)expect, out->len, (long long)nchunks, (long long)size, tail);
    return rc;
}
