/* test_store.c - db/store: sessions, append-only messages, chunked blobs, crash safety. */
#include "common/buf.h"
#include "common/err.h"
#include "db/store.h"
#include "testhelp.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

static char dir[64];
static char path[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/lode-store-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/lode.db", dir);
}

static void teardown(void)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

struct collect {
    struct buf b;
    int n;
};

static int collect_fn(void *ctx, int64_t seq, const char *kind, const char *body, int64_t created)
{
    struct collect *c = ctx;
    c->n++;
    buf_printf(&c->b, "%lld:%s:%s;", (long long)seq, kind, body);
    return 0;
}

static void t_sessions(void)
{
    setup();
    struct db *db;
    REQUIRE(db_open(&db, path) == 0);
    char a[DB_ID_MAX], b[DB_ID_MAX], latest[DB_ID_MAX];
    REQUIRE(db_session_new(db, "/proj/one", "tiny", a) == 0);
    REQUIRE(db_session_new(db, "/proj/two", "tiny", b) == 0);
    CHECK(strcmp(a, b) != 0);
    CHECK(db_message_append(db, a, "user", "{\"content\":\"hi\"}", NULL) == 0);
    int64_t seq = 0;
    CHECK(db_message_append(db, a, "assistant", "{\"content\":\"hello\"}", &seq) == 0);
    CHECK_INT(seq, 2);
    CHECK(db_message_append(db, "nope", "user", "{}", NULL) < 0);
    CHECK(db_session_set_title(db, a, "greeting") == 0);
    CHECK(db_session_latest(db, "/proj/one", latest) == 0);
    CHECK_STR(latest, a);
    CHECK(db_session_latest(db, "/proj/none", latest) == ERR_NOTFOUND);

    struct db_session *v;
    int n;
    CHECK(db_session_list(db, NULL, &v, &n) == 0 && n == 2);
    db_session_list_free(v, n);
    CHECK(db_session_list(db, "/proj/one", &v, &n) == 0 && n == 1);
    if (n == 1) {
        CHECK_STR(v[0].title, "greeting");
        CHECK_INT(v[0].n_messages, 2);
    }
    db_session_list_free(v, n);
    db_close(db);

    /* everything survives a reopen; a unique prefix finds the session */
    REQUIRE(db_open(&db, path) == 0);
    struct collect c = { 0 };
    CHECK(db_messages(db, a, collect_fn, &c) == 0);
    CHECK_STR(c.b.p, "1:user:{\"content\":\"hi\"};2:assistant:{\"content\":\"hello\"};");
    buf_free(&c.b);
    struct db_session s;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%.*s", (int)strlen(a) - 1, a);
    CHECK(db_session_get(db, a, &s) == 0);
    db_session_free(&s);
    CHECK(db_session_rm(db, a) == 0);
    CHECK(db_session_get(db, a, &s) == ERR_NOTFOUND);
    c.n = 0;
    CHECK(db_messages(db, a, collect_fn, &c) == 0 && c.n == 0);
    buf_free(&c.b);
    db_close(db);
    teardown();
}

static void t_unknown_kinds_kept(void)
{
    /* a newer lode may add kinds; this one must list them, not drop them */
    setup();
    struct db *db;
    REQUIRE(db_open(&db, path) == 0);
    char id[DB_ID_MAX];
    REQUIRE(db_session_new(db, "/p", "", id) == 0);
    CHECK(db_message_append(db, id, "hologram", "{\"future\":true}", NULL) == 0);
    struct collect c = { 0 };
    CHECK(db_messages(db, id, collect_fn, &c) == 0);
    CHECK(c.n == 1 && strstr(c.b.p, "hologram") != NULL);
    buf_free(&c.b);
    db_close(db);
    teardown();
}

static void t_newer_schema_refused(void)
{
    setup();
    struct db *db;
    REQUIRE(db_open(&db, path) == 0);
    db_close(db);
    sqlite3 *h;
    REQUIRE(sqlite3_open(path, &h) == SQLITE_OK);
    sqlite3_exec(h, "PRAGMA user_version = 99", NULL, NULL, NULL);
    sqlite3_close(h);
    CHECK(db_open(&db, path) == ERR_UNSUPPORTED);
    CHECK(strstr(err_msg(), "newer lode") != NULL);
    teardown();
}

static void t_blobs(void)
{
    setup();
    struct db *db;
    REQUIRE(db_open(&db, path) == 0);
    char id[DB_ID_MAX];
    REQUIRE(db_session_new(db, "/p", "", id) == 0);
    struct th_rng r = { th_seed() };
    size_t n = 3 * DB_CHUNK + 12345;
    uint8_t *data = malloc(n);
    REQUIRE(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)th_next(&r);
    struct db_blob_writer *w;
    REQUIRE(db_blob_begin(db, id, "state", &w) == 0);
    /* uneven writes across chunk boundaries */
    size_t off = 0, step = 777777;
    while (off < n) {
        size_t k = n - off < step ? n - off : step;
        CHECK(db_blob_write(w, data + off, k) == 0);
        off += k;
    }
    int64_t bid = 0, latest = 0;
    CHECK(db_blob_commit(w, &bid) == 0);
    CHECK(db_blob_latest(db, id, "state", &latest) == 0 && latest == bid);
    struct buf out = { 0 };
    CHECK(db_blob_read(db, bid, &out) == 0);
    CHECK(out.len == n && !memcmp(out.p, data, n));

    /* an aborted blob is invisible */
    REQUIRE(db_blob_begin(db, id, "state", &w) == 0);
    CHECK(db_blob_write(w, data, 100) == 0);
    db_blob_abort(w);
    CHECK(db_blob_latest(db, id, "state", &latest) == 0 && latest == bid);
    db_close(db);

    /* flip one byte inside chunk 2: the read fails and the blob is retired */
    sqlite3 *h;
    REQUIRE(sqlite3_open(path, &h) == SQLITE_OK);
    char sql[200];
    snprintf(sql, sizeof sql,
             "UPDATE blob_chunks SET data = substr(data, 1, 99) || x'00' || substr(data, 101) "
             "WHERE blob_id = %lld AND seq = 2",
             (long long)bid);
    CHECK(sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(h);
    REQUIRE(db_open(&db, path) == 0);
    CHECK(db_blob_read(db, bid, &out) == ERR_INVAL);
    CHECK(db_blob_latest(db, id, "state", &latest) == ERR_NOTFOUND);
    db_close(db);
    buf_free(&out);
    free(data);
    teardown();
}

/* kill -9 a writer at random moments, again and again: the store always
 * opens, committed messages are all there, and no partial blob is visible. */
static void t_crash_loop(void)
{
    setup();
    struct db *db;
    REQUIRE(db_open(&db, path) == 0);
    char id[DB_ID_MAX];
    REQUIRE(db_session_new(db, "/p", "", id) == 0);
    db_close(db);
    struct th_rng r = { th_seed() ^ 0x5eed };
    int committed_total = 0;
    for (int round = 0; round < 12; round++) {
        int fds[2];
        REQUIRE(pipe(fds) == 0);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            struct db *cdb;
            if (db_open(&cdb, path) < 0)
                _exit(3);
            for (int i = 0;; i++) {
                struct db_blob_writer *w;
                if (i % 3 == 0 && db_blob_begin(cdb, id, "state", &w) == 0) {
                    static uint8_t junk[DB_CHUNK];
                    for (int k = 0; k < 3; k++)
                        db_blob_write(w, junk, sizeof junk);
                    db_blob_commit(w, NULL);
                }
                if (db_message_append(cdb, id, "user", "{\"n\":1}", NULL) == 0) {
                    char one = 1;
                    if (write(fds[1], &one, 1) != 1)
                        _exit(4);
                }
            }
        }
        close(fds[1]);
        usleep(2000 + (useconds_t)(th_next(&r) % 40000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        char ch;
        while (read(fds[0], &ch, 1) == 1)
            committed_total++;
        close(fds[0]);

        REQUIRE(db_open(&db, path) == 0);
        struct collect c = { 0 };
        CHECK(db_messages(db, id, collect_fn, &c) == 0);
        CHECKF(c.n >= committed_total, "round %d: %d messages, %d acknowledged", round, c.n,
               committed_total);
        buf_free(&c.b);
        int64_t bid;
        if (db_blob_latest(db, id, "state", &bid) == 0) {
            struct buf out = { 0 };
            CHECK(db_blob_read(db, bid, &out) == 0 && out.len == 3 * DB_CHUNK);
            buf_free(&out);
        }
        db_close(db);
    }
    /* after the writer's death the incomplete blobs are gone */
    sqlite3 *h;
    REQUIRE(sqlite3_open(path, &h) == SQLITE_OK);
    sqlite3_stmt *st;
    REQUIRE(sqlite3_prepare_v2(h, "SELECT count(*) FROM blobs WHERE state = 'writing'", -1, &st,
                               NULL) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0);
    sqlite3_finalize(st);
    REQUIRE(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW &&
          !strcmp((const char *)sqlite3_column_text(st, 0), "ok"));
    sqlite3_finalize(st);
    sqlite3_close(h);
    teardown();
}

/* db_blob_prune keeps only the given blob of a kind for a session; others stay. */
static void t_blob_prune(void)
{
    setup();
    struct db *db;
    REQUIRE(db_open(&db, path) == 0);
    char a[DB_ID_MAX], b[DB_ID_MAX];
    REQUIRE(db_session_new(db, "/p", "", a) == 0);
    REQUIRE(db_session_new(db, "/p", "", b) == 0);
    int64_t ids[3] = { 0 }, other = 0, kv = 0, latest = 0;
    struct db_blob_writer *w;
    for (int i = 0; i < 3; i++) {
        REQUIRE(db_blob_begin(db, a, "state", &w) == 0);
        CHECK(db_blob_write(w, "abc", 3) == 0);
        CHECK(db_blob_commit(w, &ids[i]) == 0);
    }
    REQUIRE(db_blob_begin(db, b, "state", &w) == 0);
    CHECK(db_blob_commit(w, &other) == 0);
    REQUIRE(db_blob_begin(db, a, "kv", &w) == 0);
    CHECK(db_blob_commit(w, &kv) == 0);
    CHECK(db_blob_prune(db, a, "state", ids[2]) == 0);
    struct buf out = { 0 };
    CHECK(db_blob_read(db, ids[0], &out) < 0);
    CHECK(db_blob_read(db, ids[1], &out) < 0);
    CHECK(db_blob_read(db, ids[2], &out) == 0 && out.len == 3);
    CHECK(db_blob_latest(db, b, "state", &latest) == 0 && latest == other);
    CHECK(db_blob_latest(db, a, "kv", &latest) == 0 && latest == kv);
    CHECK(db_blob_prune(db, a, "state", 0) == 0);
    CHECK(db_blob_latest(db, a, "state", &latest) == ERR_NOTFOUND);
    buf_free(&out);
    db_close(db);
    teardown();
}

int main(void)
{
    TEST_RUN(t_sessions);
    TEST_RUN(t_unknown_kinds_kept);
    TEST_RUN(t_newer_schema_refused);
    TEST_RUN(t_blobs);
    TEST_RUN(t_crash_loop);
    TEST_RUN(t_blob_prune);
    TEST_END();
}
