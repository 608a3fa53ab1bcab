/* test_cache.c - the prefix/state cache: seqstate pieces, the store (chunks, commit records,
 * corruption, LRU eviction, kill -9) and the glue on a tiny mkmodel checkpoint. */
#include "app/prefix_cache.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/pool.h"
#include "db/cache.h"
#include "engine/mkmodel.h"
#include "engine/model.h"
#include "engine/seqstate.h"
#include "kernels/kernels.h"
#include "seqfix.h"
#include "testhelp.h"

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char tmpdir[256];

static void tmp_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static void rm_db(const char *path)
{
    char p[700];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    snprintf(p, sizeof p, "rm -rf '%s-data'", path);
    if (system(p) != 0)
        printf("# could not remove %s-data\n", path);
}

/* ---------------------------------------------------------------- seqstate pieces */

static void fill(struct seq_state *s, long n, struct th_rng *r)
{
    seq_will_write(s, s->pos, n);
    REQUIRE(seq_reserve(s, s->pos + n) == 0);
    size_t row = (size_t)s->d.n_kv * s->d.head_dim;
    for (long t = 0; t < n; t++, s->pos++)
        for (int l = 0; l < s->d.n_layers; l++)
            if (s->d.is_full[l]) {
                uint8_t *k = seq_k_row(s, l, s->pos), *v = seq_v_row(s, l, s->pos);
                for (size_t i = 0; i < row; i++)
                    k[i] = (uint8_t)th_next(r), v[i] = (uint8_t)th_next(r);
            }
    for (int l = 0; l < s->d.n_layers; l++)
        if (!s->d.is_full[l]) {
            for (int i = 0; i < s->d.conv_ch * (s->d.conv_k - 1); i++)
                s->layer[l].conv[i] = th_uniform(r);
            for (int i = 0; i < s->d.n_v * s->d.dk * s->d.dv; i++)
                s->layer[l].state[i] = th_uniform(r);
        }
}

/* Same KV rows [0, pos) and DeltaNet states, bit for bit. */
static int same_state(struct seq_state *a, struct seq_state *b)
{
    if (a->pos != b->pos)
        return 0;
    size_t row = (size_t)a->d.n_kv * a->d.head_dim; /* FP8: one byte each */
    for (int l = 0; l < a->d.n_layers; l++) {
        if (a->d.is_full[l]) {
            if (a->pos && (memcmp(seq_k_row(a, l, 0), seq_k_row(b, l, 0), row * a->pos) ||
                           memcmp(seq_v_row(a, l, 0), seq_v_row(b, l, 0), row * a->pos)))
                return 0;
        } else if (memcmp(a->layer[l].conv, b->layer[l].conv,
                          sizeof(float) * a->d.conv_ch * (a->d.conv_k - 1)) ||
                   memcmp(a->layer[l].state, b->layer[l].state,
                          sizeof(float) * a->d.n_v * a->d.dk * a->d.dv)) {
            return 0;
        }
    }
    return 1;
}

static void t_pieces(void)
{
    struct th_rng r = { th_seed() };
    struct seq_dims d = seqfix_dims(0xa);
    uint8_t id[32] = { 1, 2, 3 }, other[32] = { 9 };
    struct seq_state *a, *b;
    REQUIRE(seq_new(&a, &d, KERN_FP8, 8) == 0);
    REQUIRE(seq_new(&b, &d, KERN_FP8, 1) == 0);
    fill(a, 300, &r);
    struct buf k1 = { 0 }, k2 = { 0 }, g = { 0 };
    REQUIRE(seq_export_kv(a, id, 0, 256, &k1) == 0);
    REQUIRE(seq_export_kv(a, id, 256, 300, &k2) == 0);
    REQUIRE(seq_export_gdn(a, id, &g) == 0);
    CHECK(seq_export_kv(a, id, 0, 301, &k1) == ERR_INVAL);
    long from = -1, to = -1;
    CHECK(seq_import_gdn(b, id, g.p, g.len) == ERR_INVAL); /* no KV rows yet */
    CHECK(seq_import_kv(b, other, k1.p, k1.len, NULL, NULL) == ERR_INVAL);
    CHECK(seq_import_kv(b, id, k1.p, k1.len, &from, &to) == 0);
    CHECK(from == 0 && to == 256);
    CHECK(seq_import_kv(b, id, k2.p, k2.len, NULL, NULL) == 0);
    CHECK(seq_import_gdn(b, other, g.p, g.len) == ERR_INVAL);
    CHECK(seq_import_gdn(b, id, g.p, g.len) == 0);
    CHECK(same_state(a, b));
    /* a flipped byte, a newer format version, another KV type, a truncation: all refused */
    k1.p[100] ^= 1;
    CHECK(seq_import_kv(b, id, k1.p, k1.len, NULL, NULL) == ERR_INVAL);
    k1.p[100] ^= 1;
    CHECK(seq_import_kv(b, id, k1.p, k1.len - 1, NULL, NULL) == ERR_INVAL);
    struct buf v = { 0 };
    REQUIRE(seq_export_gdn(a, id, &v) == 0);
    v.p[8]++; /* the version field */
    CHECK(seq_import_gdn(b, id, v.p, v.len) == ERR_INVAL);
    CHECK(strstr(err_msg(), "checksum") != NULL); /* the crc guards the version too */
    struct seq_state *c;
    REQUIRE(seq_new(&c, &d, KERN_BF16, 1) == 0);
    CHECK(seq_import_kv(c, id, k1.p, k1.len, NULL, NULL) == ERR_INVAL);
    CHECK(strstr(err_msg(), "KV cache type") != NULL);
    seq_free(c);
    buf_free(&v);
    buf_free(&k1);
    buf_free(&k2);
    buf_free(&g);
    seq_free(a);
    seq_free(b);
}

/* Copies a piece into the spans the in-place import hands out, as the cache's reader does. */
static int fill_spans(const struct buf *piece, size_t hn, const struct seq_span *sp, int nsp)
{
    size_t off = hn;
    for (int i = 0; i < nsp; i++) {
        if (off + sp[i].n > piece->len)
            return -1;
        memcpy(sp[i].p, piece->p + off, sp[i].n);
        off += sp[i].n;
    }
    return off + 4 == piece->len ? 0 : -1;
}

/* The in-place import (header, then spans) gives the same state as the buffered one and
 * refuses what it refuses. */
static void t_pieces_inplace(void)
{
    struct th_rng r = { th_seed() };
    struct seq_dims d = seqfix_dims(0xa);
    uint8_t id[32] = { 1, 2, 3 }, other[32] = { 9 };
    struct seq_state *a, *b;
    REQUIRE(seq_new(&a, &d, KERN_FP8, 8) == 0);
    REQUIRE(seq_new(&b, &d, KERN_FP8, 1) == 0);
    fill(a, 300, &r);
    struct buf k1 = { 0 }, k2 = { 0 }, g = { 0 };
    REQUIRE(seq_export_kv(a, id, 0, 256, &k1) == 0);
    REQUIRE(seq_export_kv(a, id, 256, 300, &k2) == 0);
    REQUIRE(seq_export_gdn(a, id, &g) == 0);
    size_t hk = seq_kv_header_bytes(b), hg = seq_gdn_header_bytes(b);
    struct seq_span sp[SEQ_MAX_SPANS];
    int nsp;
    long pos;
    REQUIRE(k1.len > hk && g.len > hg);
    CHECK(seq_import_kv_spans(b, other, k1.p, k1.len, 0, 256, sp, &nsp) == ERR_INVAL);
    CHECK(seq_import_kv_spans(b, id, k1.p, k1.len - 1, 0, 256, sp, &nsp) == ERR_INVAL);
    CHECK(seq_import_kv_spans(b, id, g.p, k1.len, 0, 256, sp, &nsp) == ERR_INVAL);
    REQUIRE(seq_import_kv_spans(b, id, k1.p, k1.len, 0, 256, sp, &nsp) == 0);
    CHECK(nsp == 4); /* two full layers, K and V */
    CHECK(fill_spans(&k1, hk, sp, nsp) == 0);
    /* a piece of other rows than the caller expects: refused before the state is touched */
    long cap = b->cap, written = b->written;
    CHECK(seq_import_kv_spans(b, id, k2.p, k2.len, 0, 44, sp, &nsp) == ERR_INVAL && nsp == 0);
    CHECK(seq_import_kv_spans(b, id, k2.p, k2.len, 256, 301, sp, &nsp) == ERR_INVAL);
    CHECK(b->cap == cap && b->written == written);
    /* a damaged range far out (same row count, so the size still matches): no reservation */
    struct buf far = { 0 };
    REQUIRE(buf_append(&far, k2.p, k2.len) == 0);
    size_t at = hk - 16;
    uint64_t lo = (1u << 30) - 44, hi = 1u << 30;
    for (int i = 0; i < 8; i++) {
        far.p[at + i] = (char)(lo >> (8 * i));
        far.p[at + 8 + i] = (char)(hi >> (8 * i));
    }
    CHECK(seq_import_kv_spans(b, id, far.p, far.len, 256, 300, sp, &nsp) == ERR_INVAL);
    CHECK(b->cap == cap && b->written == written);
    buf_free(&far);
    REQUIRE(seq_import_kv_spans(b, id, k2.p, k2.len, 256, 300, sp, &nsp) == 0);
    CHECK(fill_spans(&k2, hk, sp, nsp) == 0);
    CHECK(seq_import_gdn_spans(b, id, g.p, g.len + 1, &pos, sp, &nsp) == ERR_INVAL);
    REQUIRE(seq_import_gdn_spans(b, id, g.p, g.len, &pos, sp, &nsp) == 0);
    CHECK(pos == 300 && fill_spans(&g, hg, sp, nsp) == 0);
    CHECK(b->pos == 0); /* not before finish */
    REQUIRE(seq_import_gdn_finish(b, pos) == 0);
    CHECK(same_state(a, b));
    CHECK(seq_import_gdn_finish(b, 301) == ERR_INVAL);
    buf_free(&k1);
    buf_free(&k2);
    buf_free(&g);
    seq_free(a);
    seq_free(b);
}

/* ---------------------------------------------------------------- the store */

static struct cache_key key_of(int kind, int n, int model)
{
    struct cache_key k = { .kind = kind, .fmt = SEQ_FORMAT_VERSION };
    k.key[0] = (uint8_t)n;
    k.key[1] = (uint8_t)(n >> 8);
    k.model[0] = (uint8_t)model;
    return k;
}

/* Zeroes one chunk behind the store's back: the entry_seq_offset-th chunk counting from the
 * newest entry's first (entries by id descending, chunks in order), in the entry's file. */
static int corrupt_chunk(const char *path, int64_t entry_seq_offset)
{
    sqlite3 *h;
    if (sqlite3_open(path, &h) != SQLITE_OK)
        return -1;
    sqlite3_stmt *st;
    int rc = -1;
    if (sqlite3_prepare_v2(h,
                           "SELECT id, size, n_chunks FROM entries WHERE state = 'complete' "
                           "ORDER BY id DESC",
                           -1, &st, NULL) != SQLITE_OK) {
        sqlite3_close(h);
        return -1;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0), size = sqlite3_column_int64(st, 1);
        int64_t nch = sqlite3_column_int64(st, 2);
        if (entry_seq_offset >= nch) {
            entry_seq_offset -= nch;
            continue;
        }
        char f[700];
        snprintf(f, sizeof f, "%s-data/%lld", path, (long long)id);
        int64_t off = entry_seq_offset * (int64_t)CACHE_CHUNK;
        size_t n = (size_t)(size - off < (int64_t)CACHE_CHUNK ? size - off : CACHE_CHUNK);
        uint8_t *z = calloc(1, n ? n : 1);
        int fd = open(f, O_WRONLY);
        if (z && fd >= 0 && pwrite(fd, z, n, off) == (ssize_t)n)
            rc = 0;
        if (fd >= 0)
            close(fd);
        free(z);
        break;
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return rc;
}

static void t_store(void)
{
    char path[300];
    tmp_path(path, sizeof path, "store.db");
    rm_db(path);
    struct cache *c;
    REQUIRE(cache_open(&c, path) == 0);
    size_t n = 2 * CACHE_CHUNK + 12345;
    uint8_t *data = malloc(n);
    REQUIRE(data);
    struct th_rng r = { th_seed() };
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)th_next(&r);
    struct cache_key k = key_of(CACHE_BLOCK, 1, 1);
    CHECK(cache_has(c, &k) == 0);
    REQUIRE(cache_put(c, &k, NULL, 256, data, n) == 0);
    CHECK(cache_has(c, &k) == 1);
    REQUIRE(cache_put(c, &k, NULL, 256, data, n) == 0); /* replaces, never duplicates */
    struct buf b = { 0 };
    REQUIRE(cache_get(c, &k, &b) == 0);
    CHECK(b.len == n && !memcmp(b.p, data, n));
    struct cache_stats st;
    REQUIRE(cache_stats(c, &st) == 0);
    CHECK(st.blocks == 1 && st.block_bytes == n && st.snaps == 0 && st.models == 1);
    /* another model or format version never matches */
    struct cache_key other = key_of(CACHE_BLOCK, 1, 2);
    CHECK(cache_get(c, &other, &b) == ERR_NOTFOUND);
    other = k;
    other.fmt++;
    CHECK(cache_has(c, &other) == 0);
    other = k;
    other.kind = CACHE_SNAP;
    CHECK(cache_has(c, &other) == 0);
    /* snapshots are listed by base, longest first */
    uint8_t base[32] = { 7 };
    for (int i = 0; i < 3; i++) {
        struct cache_key s = key_of(CACHE_SNAP, 10 + i, 1);
        REQUIRE(cache_put(c, &s, base, 300 + i, data, 100) == 0);
    }
    cache_close(c);
    /* a damaged chunk (the middle one of the big entry) is detected and the entry dropped */
    REQUIRE(corrupt_chunk(path, 4) == 0);
    REQUIRE(cache_open(&c, path) == 0);
    CHECK(cache_get(c, &k, &b) == ERR_INVAL);
    CHECK(strstr(err_msg(), "damaged") != NULL);
    CHECK(cache_has(c, &k) == 0);
    int64_t checked, bad;
    REQUIRE(cache_verify(c, &checked, &bad) == 0);
    CHECK(checked == 3 && bad == 0);
    REQUIRE(cache_clear(c) == 0);
    REQUIRE(cache_stats(c, &st) == 0);
    CHECK(st.blocks == 0 && st.snaps == 0);
    cache_close(c);
    buf_free(&b);
    free(data);
}

/* The entry files: a missing or truncated one is damage (the entry goes), a file no row names
 * is swept on open, and reading in pieces of any size verifies and returns the same bytes. */
static void t_files(void)
{
    char path[300], f[400];
    tmp_path(path, sizeof path, "files.db");
    rm_db(path);
    struct cache *c;
    REQUIRE(cache_open(&c, path) == 0);
    size_t n = CACHE_CHUNK + 5000;
    uint8_t *data = malloc(n), *back = malloc(n);
    REQUIRE(data && back);
    struct th_rng r = { th_seed() };
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)th_next(&r);
    struct cache_key k[3] = { key_of(CACHE_BLOCK, 1, 1), key_of(CACHE_BLOCK, 2, 1),
                              key_of(CACHE_BLOCK, 3, 1) };
    for (int i = 0; i < 3; i++)
        REQUIRE(cache_put(c, &k[i], NULL, 256, data, n) == 0);
    const uint8_t keys[4][32] = { { 1 }, { 9 }, { 2 }, { 3 } };
    struct cache_key proto = key_of(CACHE_BLOCK, 0, 1);
    int64_t ids[4];
    REQUIRE(cache_lookup(c, &proto, keys, 4, ids) == 0);
    CHECK(ids[0] > 0 && ids[1] == 0 && ids[2] > ids[0] && ids[3] > ids[2]);
    /* pieces of random sizes, across the chunk boundary */
    struct cache_rd *rd;
    uint64_t size;
    REQUIRE(cache_read_open(c, ids[0], &rd, &size) == 0);
    CHECK(size == n);
    for (size_t off = 0; off < n;) {
        size_t m = 1 + th_next(&r) % 700000;
        m = m < n - off ? m : n - off;
        REQUIRE(cache_read(rd, back + off, m) == 0);
        off += m;
    }
    CHECK(cache_read_close(rd, 0) == 0);
    CHECK(!memcmp(back, data, n));
    /* scattered: up to 100 segments of random sizes (some empty) per call */
    memset(back, 0, n);
    REQUIRE(cache_read_open(c, ids[0], &rd, &size) == 0);
    for (size_t off = 0; off < n;) {
        struct cache_seg seg[100];
        int nseg = 1 + (int)(th_next(&r) % 100);
        for (int i = 0; i < nseg; i++) {
            size_t m = th_next(&r) % 5 == 0 ? 0 : 1 + th_next(&r) % 90000;
            m = m < n - off ? m : n - off;
            seg[i] = (struct cache_seg){ back + off, m };
            off += m;
        }
        REQUIRE(cache_readv(rd, seg, nseg) == 0);
    }
    CHECK(cache_read_close(rd, 0) == 0);
    CHECK(!memcmp(back, data, n));
    /* stopping early is an error of the reader, not damage */
    REQUIRE(cache_read_open(c, ids[0], &rd, &size) == 0);
    REQUIRE(cache_read(rd, back, 10) == 0);
    CHECK(cache_read_close(rd, 0) == ERR_INVAL);
    CHECK(cache_has(c, &k[0]) == 1);
    /* a missing file and a truncated one */
    snprintf(f, sizeof f, "%s-data/%lld", path, (long long)ids[2]);
    REQUIRE(unlink(f) == 0);
    struct buf b = { 0 };
    CHECK(cache_get(c, &k[1], &b) == ERR_INVAL);
    CHECK(cache_has(c, &k[1]) == 0);
    snprintf(f, sizeof f, "%s-data/%lld", path, (long long)ids[3]);
    REQUIRE(truncate(f, (off_t)n - 1) == 0);
    CHECK(cache_get(c, &k[2], &b) == ERR_INVAL);
    CHECK(cache_has(c, &k[2]) == 0 && access(f, F_OK) != 0);
    REQUIRE(cache_get(c, &k[0], &b) == 0);
    CHECK(b.len == n && !memcmp(b.p, data, n));
    cache_close(c);
    /* orphans (a killed writer's file whose row was dropped) go on open: one between two
     * live entries, one past the last */
    char f2[400];
    snprintf(f, sizeof f, "%s-data/%lld", path, (long long)ids[3] + 100);
    snprintf(f2, sizeof f2, "%s-data/%lld", path, (long long)ids[2]);
    FILE *o = fopen(f, "w"), *o2 = fopen(f2, "w");
    REQUIRE(o && o2);
    fclose(o);
    fclose(o2);
    REQUIRE(cache_open(&c, path) == 0);
    CHECK(access(f, F_OK) != 0 && access(f2, F_OK) != 0);
    CHECK(cache_has(c, &k[0]) == 1);
    REQUIRE(cache_put(c, &k[1], NULL, 256, data, 100) == 0);
    REQUIRE(cache_lookup(c, &proto, keys, 4, ids) == 0);
    CHECK(ids[2] > ids[0]);
    o2 = fopen(f2, "w"); /* the old ids[2]: now below the newest live entry */
    REQUIRE(o2);
    fclose(o2);
    cache_close(c);
    REQUIRE(cache_open(&c, path) == 0);
    CHECK(access(f2, F_OK) != 0);
    CHECK(cache_has(c, &k[0]) == 1 && cache_has(c, &k[1]) == 1);
    /* clear removes every file */
    REQUIRE(cache_clear(c) == 0);
    snprintf(f, sizeof f, "%s-data/%lld", path, (long long)ids[0]);
    CHECK(access(f, F_OK) != 0);
    cache_close(c);
    buf_free(&b);
    free(data);
    free(back);
}

/* Runs one SQL statement on the cache's database behind the store's back. */
static int sql_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    int rc =
        sqlite3_open(path, &db) == SQLITE_OK && sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK
            ? 0
            : -1;
    sqlite3_close(db);
    return rc;
}

static int copy_file(const char *from, const char *to)
{
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    return system(cmd) == 0 ? 0 : -1;
}

static int flip_byte(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    uint8_t b;
    int rc = fd >= 0 && pread(fd, &b, 1, at) == 1 ? 0 : -1;
    b ^= 0x10;
    if (rc == 0 && pwrite(fd, &b, 1, at) != 1)
        rc = -1;
    if (fd >= 0)
        close(fd);
    return rc;
}

static int append_byte(const char *path)
{
    FILE *f = fopen(path, "ab");
    int rc = f && fputc(0, f) != EOF ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    return rc;
}

/* The entry files and index rows damaged every way the new layout allows: a file shorter
 * than its row says (by one byte, to a chunk boundary, to nothing), longer, swapped with
 * another entry's (same size other bytes, or another size), a flipped bit in either chunk,
 * and rows whose size, chunk count or CRCs disagree with the file. Each is found by both
 * readers (cache_get and a scattered cache_readv), the entry and its file go, and the
 * entries beside it still read back intact. */
static void t_file_edges(void)
{
    char path[300], f[400], g[400], sql[300];
    tmp_path(path, sizeof path, "edges.db");
    rm_db(path);
    struct cache *c;
    REQUIRE(cache_open(&c, path) == 0);
    size_t n = CACHE_CHUNK + 777;
    uint8_t *data = malloc(n), *other = malloc(n), *back = malloc(n);
    REQUIRE(data && other && back);
    struct th_rng r = { th_seed() };
    for (size_t i = 0; i < n; i++) {
        data[i] = (uint8_t)th_next(&r);
        other[i] = (uint8_t)th_next(&r);
    }
    enum {
        SHORT1,
        SHORT_CHUNK,
        EMPTY,
        LONG1,
        SWAP_SAME,
        SWAP_SIZE,
        FLIP_FIRST,
        FLIP_LAST,
        ROW_SIZE,
        ROW_NCHUNKS,
        ROW_CRCS,
        ROW_CRC_VALUE,
        ROW_NEG,
        NCASES
    };
    struct cache_key keep = key_of(CACHE_BLOCK, 1000, 1), small = key_of(CACHE_BLOCK, 1001, 1),
                     twin = key_of(CACHE_BLOCK, 1002, 1), empty = key_of(CACHE_BLOCK, 1003, 1);
    REQUIRE(cache_put(c, &keep, NULL, 256, data, n) == 0);
    REQUIRE(cache_put(c, &small, NULL, 256, data, 100) == 0);
    REQUIRE(cache_put(c, &twin, NULL, 256, other, n) == 0);
    REQUIRE(cache_put(c, &empty, NULL, 256, data, 0) == 0);
    struct cache_key proto = key_of(CACHE_BLOCK, 0, 1);
    int64_t ids[4];
    const uint8_t fixed[4][32] = { { 1000 % 256, 1000 / 256 },
                                   { 1001 % 256, 1001 / 256 },
                                   { 1002 % 256, 1002 / 256 },
                                   { 1003 % 256, 1003 / 256 } };
    REQUIRE(cache_lookup(c, &proto, fixed, 4, ids) == 0);
    REQUIRE(ids[0] && ids[1] && ids[2] && ids[3]);
    struct buf b = { 0 };
    /* a zero-byte entry is legitimate, and a byte added to its file is damage */
    REQUIRE(cache_get(c, &empty, &b) == 0);
    CHECK(b.len == 0);
    snprintf(f, sizeof f, "%s-data/%lld", path, (long long)ids[3]);
    REQUIRE(append_byte(f) == 0);
    CHECK(cache_get(c, &empty, &b) == ERR_INVAL);
    CHECK(cache_has(c, &empty) == 0 && access(f, F_OK) != 0);
    for (int kase = 0; kase < NCASES; kase++) {
        for (int via = 0; via < 2; via++) {
            struct cache_key k = key_of(CACHE_BLOCK, 2 * kase + via, 1);
            REQUIRE(cache_put(c, &k, NULL, 256, data, n) == 0);
            const uint8_t kk[1][32] = { { (uint8_t)(2 * kase + via) } };
            int64_t id;
            REQUIRE(cache_lookup(c, &proto, kk, 1, &id) == 0 && id > 0);
            snprintf(f, sizeof f, "%s-data/%lld", path, (long long)id);
            int drc = 0;
            switch (kase) {
            case SHORT1: drc = truncate(f, (off_t)n - 1); break;
            case SHORT_CHUNK: drc = truncate(f, (off_t)CACHE_CHUNK); break;
            case EMPTY: drc = truncate(f, 0); break;
            case LONG1: drc = append_byte(f); break;
            case SWAP_SAME:
            case SWAP_SIZE:
                snprintf(g, sizeof g, "%s-data/%lld", path,
                         (long long)ids[kase == SWAP_SAME ? 2 : 1]);
                drc = copy_file(g, f);
                break;
            case FLIP_FIRST: drc = flip_byte(f, 12345); break;
            case FLIP_LAST: drc = flip_byte(f, (off_t)n - 1); break;
            default: {
                const char *set = kase == ROW_SIZE      ? "size = size - 1"
                                  : kase == ROW_NCHUNKS ? "n_chunks = n_chunks + 1"
                                  : kase == ROW_CRCS    ? "crcs = substr(crcs, 1, 4)"
                                  : kase == ROW_NEG     ? "size = -1"
                                                        : "crcs = x'0000000000000000'";
                snprintf(sql, sizeof sql, "UPDATE entries SET %s WHERE id = %lld", set,
                         (long long)id);
                drc = sql_exec(path, sql);
            }
            }
            REQUIRE(drc == 0);
            if (via == 0) {
                CHECK(cache_get(c, &k, &b) == ERR_INVAL);
                CHECK(b.len == 0);
            } else {
                /* the restore's reader: scattered over a few pieces, as kv_open sets it up */
                struct cache_rd *rd;
                uint64_t size = 0;
                int rc = cache_read_open(c, id, &rd, &size);
                if (rc == 0) {
                    struct cache_seg seg[3] = { { back, 10 },
                                                { back + 10, CACHE_CHUNK },
                                                { back + 10 + CACHE_CHUNK, n - 10 - CACHE_CHUNK } };
                    CHECK(size == n);
                    rc = cache_read_close(rd, cache_readv(rd, seg, 3));
                }
                CHECK(rc == ERR_INVAL);
            }
            CHECKF(cache_has(c, &k) == 0 && access(f, F_OK) != 0,
                   "case %d via %d: the damaged entry %lld stayed", kase, via, (long long)id);
        }
        /* the neighbours, including the one whose file was copied, are intact */
        REQUIRE(cache_get(c, &keep, &b) == 0);
        CHECK(b.len == n && !memcmp(b.p, data, n));
        REQUIRE(cache_get(c, &small, &b) == 0);
        CHECK(b.len == 100 && !memcmp(b.p, data, 100));
        REQUIRE(cache_get(c, &twin, &b) == 0);
        CHECK(b.len == n && !memcmp(b.p, other, n));
    }
    int64_t checked, bad;
    REQUIRE(cache_verify(c, &checked, &bad) == 0);
    CHECK(checked == 3 && bad == 0);
    cache_close(c);
    buf_free(&b);
    free(data);
    free(other);
    free(back);
}

/* cache_readv_par: from any offset (a header read first), over segments of any sizes, the same
 * bytes as a sequential read; a damaged chunk anywhere (head, a thread's, the tail) is found
 * and the entry goes. */
static void t_readv_par(void)
{
    char path[300], f[400];
    tmp_path(path, sizeof path, "par.db");
    rm_db(path);
    struct cache *c;
    REQUIRE(cache_open(&c, path) == 0);
    struct pool *pool;
    REQUIRE(pool_new(&pool, 3) == 0);
    size_t n = 5 * (size_t)CACHE_CHUNK + 4321;
    uint8_t *data = malloc(n), *back = malloc(n);
    REQUIRE(data && back);
    struct th_rng r = { th_seed() };
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)th_next(&r);
    struct cache_key proto = key_of(CACHE_BLOCK, 0, 1);
    for (int round = 0; round < 12; round++) {
        struct cache_key k = key_of(CACHE_BLOCK, 50 + round, 1);
        const uint8_t kk[1][32] = { { (uint8_t)(50 + round) } };
        int64_t id;
        REQUIRE(cache_put(c, &k, NULL, 256, data, n) == 0);
        REQUIRE(cache_lookup(c, &proto, kk, 1, &id) == 0 && id > 0);
        /* rounds 8..11 damage a byte: in the head, a middle chunk, the last chunk, the tail */
        size_t hdr = round % 4 == 0 ? 0 : (size_t)(th_next(&r) % (2 * CACHE_CHUNK));
        size_t stop = round % 3 == 0 ? n : n - (size_t)(th_next(&r) % (CACHE_CHUNK + 99));
        if (stop < hdr)
            stop = hdr;
        long bad_at = -1;
        if (round >= 8) {
            const size_t where[4] = { hdr / 2, 2 * (size_t)CACHE_CHUNK + 5, n - 7, n - 1 };
            bad_at = (long)where[round - 8];
            stop = n;
            snprintf(f, sizeof f, "%s-data/%lld", path, (long long)id);
            REQUIRE(flip_byte(f, (off_t)bad_at) == 0);
        }
        memset(back, 0, n);
        struct cache_rd *rd;
        uint64_t size;
        REQUIRE(cache_read_open(c, id, &rd, &size) == 0);
        int rc = cache_read(rd, back, hdr);
        struct cache_seg seg[40];
        int nseg = 0;
        for (size_t off = hdr; off < stop && nseg < 39;) {
            size_t m = th_next(&r) % 4 == 0 ? 0 : 1 + th_next(&r) % (3 * CACHE_CHUNK / 2);
            m = m < stop - off ? m : stop - off;
            seg[nseg++] = (struct cache_seg){ back + off, m };
            off += m;
            if (nseg == 39 && off < stop)
                seg[nseg - 1].n += stop - off;
        }
        if (rc == 0)
            rc = cache_readv_par(rd, seg, nseg, round % 2 ? pool : NULL);
        if (rc == 0 && stop < n)
            rc = cache_read(rd, back + stop, n - stop);
        rc = cache_read_close(rd, rc);
        if (bad_at < 0) {
            CHECKF(rc == 0 && !memcmp(back, data, n), "round %d: header %zu, to %zu", round, hdr,
                   stop);
        } else {
            CHECKF(rc == ERR_INVAL && cache_has(c, &k) == 0, "round %d: damage at %ld missed",
                   round, bad_at);
        }
    }
    pool_free(pool);
    cache_close(c);
    free(data);
    free(back);
}

/* The interleaved CRC-32C (3 streams over large inputs) equals the single-stream one
 * computed over small pieces, at lengths and alignments around every stream size. */
static void t_crc_large(void)
{
    size_t n = 300000;
    uint8_t *p = malloc(n);
    REQUIRE(p);
    struct th_rng r = { th_seed() };
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)th_next(&r);
    int bad = 0;
    for (int t = 0; t < 400 && !bad; t++) {
        size_t off = th_next(&r) % 64, len = th_next(&r) % (n - 64);
        if (t < 40)
            len = (size_t)3 * (1024u << (t % 6)) + (size_t)(t / 6) - 3; /* around each size */
        uint32_t whole = crc32c(0, p + off, len), piece = 0;
        for (size_t o = 0; o < len; o += 1000)
            piece = crc32c(piece, p + off + o, len - o < 1000 ? len - o : 1000);
        bad = whole != piece;
        CHECKF(!bad, "length %zu at offset %zu", len, off);
    }
    free(p);
}

/* SHA-256 (every entry written is hashed): the SHA extensions, where the CPU has them, agree
 * with the portable rounds (LODE_SHA_SW=1) at every length and split, and with NIST. */
static void t_sha_paths(void)
{
    static const char *million_a =
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    size_t n = 1000000;
    uint8_t *p = malloc(n);
    REQUIRE(p);
    memset(p, 'a', n);
    char hex[65];
    for (int sw = 0; sw < 2; sw++) {
        if (sw)
            setenv("LODE_SHA_SW", "1", 1);
        sha256_hex(p, n, hex);
        CHECKF(!strcmp(hex, million_a), "sw=%d: %s", sw, hex);
    }
    struct th_rng r = { th_seed() };
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)th_next(&r);
    int bad = 0;
    for (int t = 0; t < 300 && !bad; t++) {
        size_t len = t < 200 ? (size_t)t * 3 : th_next(&r) % n, cut = len ? th_next(&r) % len : 0;
        uint8_t d[2][32];
        for (int sw = 0; sw < 2; sw++) {
            if (sw)
                setenv("LODE_SHA_SW", "1", 1);
            else
                unsetenv("LODE_SHA_SW");
            struct sha256 h;
            sha256_init(&h);
            sha256_update(&h, p, cut);
            sha256_update(&h, p + cut, len - cut);
            sha256_final(&h, d[sw]);
        }
        bad = memcmp(d[0], d[1], 32) != 0;
        CHECKF(!bad, "length %zu split at %zu", len, cut);
    }
    unsetenv("LODE_SHA_SW");
    free(p);
}

static int collect(void *ctx, const uint8_t key[32], long pos)
{
    long *v = ctx;
    v[v[0] + 1] = pos * 1000 + key[0];
    v[0]++;
    return v[0] == 2; /* stop after two */
}

static void t_snaps_and_lru(void)
{
    char path[300];
    tmp_path(path, sizeof path, "lru.db");
    rm_db(path);
    struct cache *c;
    REQUIRE(cache_open(&c, path) == 0);
    uint8_t base[32] = { 7 }, data[1000] = { 0 };
    for (int i = 0; i < 3; i++) {
        struct cache_key s = key_of(CACHE_SNAP, 10 + i, 1);
        REQUIRE(cache_put(c, &s, base, 300 + i, data, 100) == 0);
    }
    long got[8] = { 0 };
    struct cache_key probe = key_of(CACHE_SNAP, 0, 1);
    REQUIRE(cache_snaps(c, &probe, base, 301, collect, got) == 0);
    CHECK(got[0] == 2 && got[1] == 301011 && got[2] == 300010);
    REQUIRE(cache_clear(c) == 0);
    /* ten 1000-byte blocks; use 0, 1, 2 again; a budget of 5000 keeps them and 8, 9 */
    for (int i = 0; i < 10; i++) {
        struct cache_key k = key_of(CACHE_BLOCK, i, 1);
        REQUIRE(cache_put(c, &k, NULL, 256, data, sizeof data) == 0);
    }
    struct buf b = { 0 };
    for (int i = 0; i < 3; i++) {
        struct cache_key k = key_of(CACHE_BLOCK, i, 1);
        CHECK(i == 2 ? cache_touch(c, &k) == 0 : cache_get(c, &k, &b) == 0);
    }
    uint64_t freed;
    REQUIRE(cache_prune(c, 5000, &freed) == 0);
    CHECK(freed == 5000);
    for (int i = 0; i < 10; i++) {
        struct cache_key k = key_of(CACHE_BLOCK, i, 1);
        CHECKF(cache_has(c, &k) == (i <= 2 || i >= 8), "block %d", i);
    }
    CHECK(cache_default_budget(c) > 0);
    buf_free(&b);
    cache_close(c);
}

/* A writer killed with SIGKILL at random points: the file always opens, every complete entry
 * verifies, and nothing half-written is left or visible. */
static void t_kill9(void)
{
    char path[300];
    tmp_path(path, sizeof path, "kill.db");
    rm_db(path);
    struct th_rng r = { th_seed() };
    size_t n = 3 * CACHE_CHUNK + 77;
    for (int round = 0; round < 8; round++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            struct cache *c;
            if (cache_open(&c, path) < 0)
                _exit(3);
            uint8_t *data = malloc(n);
            if (!data)
                _exit(4);
            for (int i = 0;; i++) {
                memset(data, i, n);
                struct cache_key k = key_of(CACHE_BLOCK, round * 1000 + i, 1);
                if (cache_put(c, &k, NULL, 256, data, n) < 0)
                    _exit(5);
            }
        }
        usleep((useconds_t)(th_next(&r) % 40000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECKF(WIFSIGNALED(status), "round %d: the writer exited by itself (%d)", round,
               WEXITSTATUS(status));
        struct cache *c;
        REQUIRE(cache_open(&c, path) == 0);
        struct cache_stats st;
        REQUIRE(cache_stats(c, &st) == 0);
        CHECK(st.writing == 0);
        int64_t checked, bad;
        REQUIRE(cache_verify(c, &checked, &bad) == 0);
        CHECKF(bad == 0, "round %d: %lld damaged of %lld", round, (long long)bad,
               (long long)checked);
        cache_close(c);
    }
    /* a 'writing' row left by a dead writer after a mid-entry commit is dropped on open */
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    sqlite3 *h;
    REQUIRE(sqlite3_open(path, &h) == SQLITE_OK);
    char sql[300];
    snprintf(sql, sizeof sql,
             "INSERT INTO entries(kind, key, model, fmt, pos, state, writer_pid, created) "
             "VALUES (1, x'00', x'01', 1, 256, 'writing', %d, 0)",
             (int)pid);
    CHECK(sqlite3_exec(h, sql, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(h);
    struct cache *c;
    REQUIRE(cache_open(&c, path) == 0);
    struct cache_stats st;
    REQUIRE(cache_stats(c, &st) == 0);
    CHECK(st.writing == 0);
    cache_close(c);
}

/* ---------------------------------------------------------------- the glue, on a model */

static char model_dir[300], model2_dir[300];

static int make_model(char *dir, size_t cap, const char *name, int mixed)
{
    snprintf(dir, cap, "%s/%s", tmpdir, name);
    struct mk_opts mo = {
        .out = dir, .preset = MK_TINY, .mixed = mixed, .text_layout = 1, .seed = 1, .shards = 1
    };
    return mk_write(&mo);
}

static void t_model(void)
{
    REQUIRE(make_model(model_dir, sizeof model_dir, "m1", 1) == 0);
    char path[300];
    tmp_path(path, sizeof path, "model.db");
    rm_db(path);
    struct eng_opts eo = eng_opts_default();
    eo.threads = 1;
    struct eng *e;
    REQUIRE(eng_open(&e, model_dir, &eo) == 0);
    long V = eng_vocab(e), N = 700;
    int32_t *tok = malloc(N * sizeof *tok), *tok2 = malloc(N * sizeof *tok2);
    float *la = malloc(V * sizeof *la), *lb = malloc(V * sizeof *lb);
    REQUIRE(tok && tok2 && la && lb);
    struct th_rng r = { th_seed() };
    for (long i = 0; i < N; i++)
        tok[i] = (int32_t)(th_next(&r) % (uint64_t)V);

    /* the uninterrupted run, in the pieces pc_prefill uses (512, then to 600), then 100 more */
    struct seq_state *a, *b, *c;
    REQUIRE(eng_state_new(e, &a, N) == 0);
    REQUIRE(eng_forward(e, a, tok, 256, NULL, 0) == 0);
    REQUIRE(eng_forward(e, a, tok + 256, 256, NULL, 0) == 0);
    REQUIRE(eng_forward(e, a, tok + 512, 88, NULL, 0) == 0);
    REQUIRE(eng_forward(e, a, tok + 600, 100, la, 0) == 0);

    struct pc *pc;
    struct pc_opts po = { .path = path, .budget = 1u << 30, .every = 256 };
    REQUIRE(pc_open(&pc, e, &po) == 0);
    struct pc_report rep = { 0 };
    REQUIRE(eng_state_new(e, &b, 16) == 0);
    REQUIRE(pc_prefill(pc, b, tok, 600, 0, NULL, 0, NULL, NULL, NULL, &rep) == 0);
    CHECK(rep.reused == 0 && rep.computed == 600);
    CHECK(rep.blocks_written == 2 && rep.snaps_written == 3); /* at 256, 512 and 600 */

    /* restore into a fresh state: bit-identical, and the same next-token logits */
    long reused;
    REQUIRE(eng_state_new(e, &c, 16) == 0);
    memset(&rep, 0, sizeof rep);
    REQUIRE(pc_restore(pc, c, tok, N, 0, &reused, &rep) == 0);
    CHECK(reused == 600 && rep.reused == 600 && rep.blocks_read == 2 && rep.failures == 0);
    CHECK(same_state(b, c));
    REQUIRE(eng_forward(e, c, tok + 600, 100, lb, 0) == 0);
    CHECK(!memcmp(la, lb, V * sizeof *la));

    /* longest prefix across shared and diverging sequences */
    struct {
        long diverge, want;
    } cases[] = { { 300, 256 }, { 550, 512 }, { 600, 600 }, { 100, 0 }, { 256, 256 } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(tok2, tok, N * sizeof *tok);
        for (long t = cases[i].diverge; t < N; t++)
            tok2[t] = (tok[t] + 1) % (int32_t)V;
        seq_reset(c);
        REQUIRE(pc_restore(pc, c, tok2, N, 0, &reused, NULL) == 0);
        CHECKF(reused == cases[i].want, "diverging at %ld: reused %ld, want %ld", cases[i].diverge,
               reused, cases[i].want);
    }
    /* on top of a state that holds a prefix already (the snapshot goes through a buffer) */
    seq_reset(c);
    REQUIRE(pc_restore(pc, c, tok, 300, 0, &reused, NULL) == 0);
    CHECK(reused == 256);
    memset(&rep, 0, sizeof rep);
    REQUIRE(pc_restore(pc, c, tok, N, 256, &reused, &rep) == 0);
    CHECK(reused == 600 && rep.blocks_read == 1 && same_state(b, c));
    /* the whole sequence cached: one token is left to compute */
    seq_reset(c);
    REQUIRE(pc_restore(pc, c, tok, 600, 0, &reused, NULL) == 0);
    CHECK(reused == 512);
    /* a state that already holds more than the cache offers is left alone */
    REQUIRE(pc_restore(pc, a, tok, N, N - 1, &reused, NULL) == ERR_INVAL); /* a->pos is N */

    /* a corrupted snapshot chunk: detected, dropped, a shorter prefix restored */
    pc_close(pc);
    REQUIRE(corrupt_chunk(path, 0) == 0); /* the newest entry's first chunk: the 600 snapshot */
    REQUIRE(pc_open(&pc, e, &po) == 0);
    seq_reset(c);
    memset(&rep, 0, sizeof rep);
    REQUIRE(pc_restore(pc, c, tok, N, 0, &reused, &rep) == 0);
    CHECK(reused == 512 && rep.failures == 1);
    /* the threaded block reads (big restores; forced here): the same state, and a damaged
     * block among them detected, dropped, a shorter prefix restored */
    setenv("LODE_CACHE_PAR", "1", 1);
    struct seq_state *c512;
    REQUIRE(eng_state_new(e, &c512, 16) == 0);
    seq_reset(c);
    REQUIRE(pc_restore(pc, c, tok, N, 0, &reused, NULL) == 0);
    CHECK(reused == 512);
    REQUIRE(pc_restore(pc, c512, tok, N, 0, &reused, NULL) == 0);
    CHECK(reused == 512 && same_state(c, c512));
    pc_close(pc);
    REQUIRE(corrupt_chunk(path, 1) == 0); /* entries newest first: snapshot 512, block 2 */
    REQUIRE(pc_open(&pc, e, &po) == 0);
    seq_reset(c);
    memset(&rep, 0, sizeof rep);
    REQUIRE(pc_restore(pc, c, tok, N, 0, &reused, &rep) == 0);
    CHECK(reused == 256 && rep.failures == 1);
    unsetenv("LODE_CACHE_PAR");
    seq_free(c512);
    pc_close(pc);

    /* another checkpoint (same shapes, another precision) never reuses these states */
    REQUIRE(make_model(model2_dir, sizeof model2_dir, "m2", 0) == 0);
    struct eng *e2;
    REQUIRE(eng_open(&e2, model2_dir, &eo) == 0);
    REQUIRE(pc_open(&pc, e2, &po) == 0);
    struct seq_state *d;
    REQUIRE(eng_state_new(e2, &d, 16) == 0);
    REQUIRE(pc_restore(pc, d, tok, N, 0, &reused, NULL) == 0);
    CHECK(reused == 0);
    pc_close(pc);
    seq_free(d);
    eng_close(e2);

    /* eviction under a small budget keeps the cache within it */
    po.budget = 20000;
    REQUIRE(pc_open(&pc, e, &po) == 0);
    seq_reset(c);
    REQUIRE(pc_prefill(pc, c, tok, N, 0, NULL, 0, NULL, NULL, NULL, NULL) == 0);
    struct cache_stats st;
    REQUIRE(cache_stats(pc_store(pc), &st) == 0);
    CHECK(st.block_bytes + st.snap_bytes <= 20000);
    pc_close(pc);

    seq_free(a);
    seq_free(b);
    seq_free(c);
    free(tok);
    free(tok2);
    free(la);
    free(lb);
    eng_close(e);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lode-test-cache-%d", (int)getpid());
    mkdir(tmpdir, 0700);
    TEST_RUN(t_pieces);
    TEST_RUN(t_pieces_inplace);
    TEST_RUN(t_store);
    TEST_RUN(t_files);
    TEST_RUN(t_file_edges);
    TEST_RUN(t_readv_par);
    TEST_RUN(t_crc_large);
    TEST_RUN(t_sha_paths);
    TEST_RUN(t_snaps_and_lru);
    TEST_RUN(t_kill9);
    TEST_RUN(t_model);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", tmpdir);
    TEST_END();
}
