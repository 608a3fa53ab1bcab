/* test_common.c - common/: buffers, hashes, UTF-8, checked arithmetic, pool, fs. */
#include "common/buf.h"
#include "common/ckd.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hash.h"
#include "common/pool.h"
#include "common/text.h"
#include "testhelp.h"

#include <stdlib.h>

static void t_buf(void)
{
    struct buf b = { 0 };
    CHECK(buf_puts(&b, "abc") == 0);
    CHECK(buf_printf(&b, "-%d-", 42) == 0);
    CHECK_STR(b.p, "abc-42-");
    /* a printf longer than the internal stack buffer */
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK(buf_printf(&b, "%s", big) == 0);
    CHECK_INT(b.len, 7 + 999);
    buf_reset(&b);
    CHECK(buf_json_str(&b, "a\"b\\c\n\x01\xc3\xa9", 9) == 0);
    CHECK_STR(b.p, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\"");
    char *s = buf_detach(&b);
    CHECK(b.p == NULL && b.len == 0);
    free(s);
    s = buf_detach(&b);
    CHECK_STR(s, "");
    free(s);
    buf_free(&b);
}

static void t_sha256(void)
{
    char hex[65];
    sha256_hex("", 0, hex);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex("abc", 3, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(m, strlen(m), hex);
    CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* one million 'a' fed in uneven pieces */
    struct sha256 h;
    sha256_init(&h);
    char a[997];
    memset(a, 'a', sizeof a);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof a ? left : sizeof a;
        sha256_update(&h, a, n);
        left -= n;
    }
    uint8_t d[32];
    sha256_final(&h, d);
    hash_to_hex(d, 32, hex);
    CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void t_sha1(void)
{
    const char *in[3] = { "", "abc", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq" };
    const char *want[3] = { "da39a3ee5e6b4b0d3255bfef95601890afd80709",
                            "a9993e364706816aba3e25717850c26c9cd0d89d",
                            "84983e441c3bd26ebaae4aa1f95129e5e54670f1" };
    for (int i = 0; i < 3; i++) {
        struct sha1 h;
        uint8_t d[20];
        char hex[41];
        sha1_init(&h);
        sha1_update(&h, in[i], strlen(in[i]));
        sha1_final(&h, d);
        hash_to_hex(d, 20, hex);
        CHECK_STR(hex, want[i]);
    }
    /* one million 'a' in uneven pieces */
    struct sha1 h;
    sha1_init(&h);
    char a[997];
    memset(a, 'a', sizeof a);
    for (size_t left = 1000000; left;) {
        size_t n = left < sizeof a ? left : sizeof a;
        sha1_update(&h, a, n);
        left -= n;
    }
    uint8_t d[20];
    char hex[41];
    sha1_final(&h, d);
    hash_to_hex(d, 20, hex);
    CHECK_STR(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

static void t_crc32c(void)
{
    CHECK_INT(crc32c(0, "123456789", 9), 0xe3069283u);
    /* incremental equals one-shot */
    const char *s = "The quick brown fox jumps over the lazy dog";
    uint32_t c = crc32c(0, s, 10);
    c = crc32c(c, s + 10, strlen(s) - 10);
    CHECK_INT(c, crc32c(0, s, strlen(s)));
    CHECK_INT(crc32c(0, "", 0), 0);
    /* whichever path this CPU takes (SSE4.2 or tables; LODE_CRC_SW=1 forces
     * the tables) equals the bitwise definition, at every length and alignment */
    struct th_rng rng = { th_seed() };
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)th_next(&rng);
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= sizeof buf; n += 1 + n / 8) {
            uint32_t r = 0xffffffffu;
            for (size_t i = 0; i < n; i++) {
                r ^= buf[off + i];
                for (int b = 0; b < 8; b++)
                    r = (r >> 1) ^ (0x82f63b78u & (0u - (r & 1)));
            }
            CHECKF(crc32c(0, buf + off, n) == ~r, "offset %zu length %zu", off, n);
        }
}

static void t_hash64(void)
{
    CHECK(hash64("abc", 3, 0) == hash64("abc", 3, 0));
    CHECK(hash64("abc", 3, 0) != hash64("abc", 3, 1));
    CHECK(hash64("abc", 3, 0) != hash64("abd", 3, 0));
    CHECK(hash64("", 0, 0) != hash64("\0", 1, 0));
}

static void t_ckd(void)
{
    size_t r;
    CHECK(ckd_mul_sz(&r, SIZE_MAX / 2, 3) == 1);
    CHECK(ckd_mul_sz(&r, 1000, 1000) == 0 && r == 1000000);
    CHECK(ckd_add_sz(&r, SIZE_MAX, 1) == 1);
    uint64_t p;
    int64_t dims[3] = { 1 << 30, 1 << 30, 1 << 30 };
    CHECK(ckd_prod_u64(&p, dims, 3) == 1);
    int64_t neg[2] = { 4, -1 };
    CHECK(ckd_prod_u64(&p, neg, 2) == 1);
    int64_t ok[2] = { 248320, 2048 };
    CHECK(ckd_prod_u64(&p, ok, 2) == 0 && p == 248320ull * 2048);
}

static void t_utf8(void)
{
    size_t bad;
    CHECK(utf8_valid("h\xc3\xa9llo \xe4\xb8\xad \xf0\x9f\x98\x80", 15, NULL));
    CHECK(!utf8_valid("ab\xc0\xaf", 4, &bad) && bad == 2);       /* overlong */
    CHECK(!utf8_valid("\xed\xa0\x80", 3, &bad) && bad == 0);     /* surrogate */
    CHECK(!utf8_valid("\xf4\x90\x80\x80", 4, &bad) && bad == 0); /* > U+10FFFF */
    CHECK(!utf8_valid("x\xe4\xb8", 3, &bad) && bad == 1);        /* truncated */
    char out[4];
    uint32_t cp;
    CHECK(utf8_encode(0x1f600, out) == 4 && utf8_decode(out, 4, &cp) == 4 && cp == 0x1f600);
    CHECK(utf8_encode(0xd800, out) == 0);
    /* streaming: a split emoji is held back until complete */
    const char *e = "ab\xf0\x9f\x98\x80";
    CHECK_INT(utf8_complete_prefix(e, 2), 2);
    CHECK_INT(utf8_complete_prefix(e, 3), 2);
    CHECK_INT(utf8_complete_prefix(e, 5), 2);
    CHECK_INT(utf8_complete_prefix(e, 6), 6);
    int line, col;
    text_line_col("ab\ncd\nef", 7, &line, &col);
    CHECK(line == 3 && col == 2);
}

struct pool_sum {
    long n;
    long parts[64];
};

static void pool_part(void *ctx, int tid, int nth)
{
    struct pool_sum *s = ctx;
    long lo, hi, acc = 0;
    pool_range(s->n, tid, nth, &lo, &hi);
    for (long i = lo; i < hi; i++)
        acc += i;
    s->parts[tid] = acc;
}

static void t_pool(void)
{
    for (int nt = 1; nt <= 4; nt++) {
        struct pool *p;
        REQUIRE(pool_new(&p, nt) == 0);
        CHECK_INT(pool_size(p), nt);
        for (int rep = 0; rep < 200; rep++) {
            struct pool_sum s = { .n = 10007 + rep };
            pool_run(p, pool_part, &s);
            long total = 0;
            for (int i = 0; i < nt; i++)
                total += s.parts[i];
            CHECK_INT(total, s.n * (s.n - 1) / 2);
        }
        pool_free(p);
    }
}

static void t_fs(void)
{
    char dir[] = "/tmp/lode-test-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    char path[512], sub[512];
    CHECK(fs_join(path, sizeof path, dir, "f.txt") == 0);
    CHECK(fs_write_atomic(path, "hello", 5) == 0);
    struct buf b = { 0 };
    CHECK(fs_read_file(path, 100, &b) == 0);
    CHECK_STR(b.p, "hello");
    CHECK(fs_read_file(path, 3, &b) == ERR_INVAL); /* over the cap */
    CHECK(fs_read_file("/nonexistent/x", 100, &b) == ERR_IO);
    CHECK(strstr(err_msg(), "/nonexistent/x") != NULL);
    struct fs_map m;
    CHECK(fs_map_open(&m, path) == 0 && m.n == 5 && !memcmp(m.p, "hello", 5));
    fs_map_close(&m);
    snprintf(sub, sizeof sub, "%s/a/b/c", dir);
    CHECK(fs_mkdir_p(sub, 0755) == 0 && fs_is_dir(sub));
    char root[512];
    snprintf(sub, sizeof sub, "%s/.git", dir);
    CHECK(fs_mkdir_p(sub, 0755) == 0);
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    CHECK(fs_project_root(sub, root, sizeof root) == 0);
    char real[512];
    CHECK(realpath(dir, real) != NULL);
    CHECK_STR(root, real);
    buf_free(&b);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

static void t_err(void)
{
    CHECK(err_set(ERR_INVAL, "bad %s", "thing") == ERR_INVAL);
    CHECK(err_prefix(ERR_INVAL, "file.json") == ERR_INVAL);
    CHECK_STR(err_msg(), "file.json: bad thing");
}

int main(void)
{
    TEST_RUN(t_buf);
    TEST_RUN(t_sha256);
    TEST_RUN(t_sha1);
    TEST_RUN(t_crc32c);
    TEST_RUN(t_hash64);
    TEST_RUN(t_ckd);
    TEST_RUN(t_utf8);
    TEST_RUN(t_pool);
    TEST_RUN(t_fs);
    TEST_RUN(t_err);
    TEST_END();
}
