/* test_pull.c - the pure parts of the Hub client (app/pull.h): URL building,
 * path and repository checks, the tree-listing parser, Link headers, origins,
 * checksums, backoff and progress formatting. The network parts are tested
 * end to end in tests/e2e/pull.sh against tests/ref/hub_server.py. */
#include "app/pull.h"
#include "common/err.h"
#include "common/hash.h"
#include "testhelp.h"

static void t_escape(void)
{
    struct buf b = { 0 };
    CHECK(pull_url_escape(&b, "sub dir/a+b%.json", 1) == 0);
    CHECK_STR(b.p, "sub%20dir/a%2Bb%25.json");
    buf_reset(&b);
    CHECK(pull_url_escape(&b, "refs/pr/1", 0) == 0);
    CHECK_STR(b.p, "refs%2Fpr%2F1");
    buf_reset(&b);
    CHECK(pull_url_escape(&b, "caf\xc3\xa9~_-.", 0) == 0);
    CHECK_STR(b.p, "caf%C3%A9~_-.");
    buf_free(&b);
}

static void t_path_ok(void)
{
    CHECK(pull_path_ok("config.json"));
    CHECK(pull_path_ok("a/b/c.safetensors"));
    CHECK(pull_path_ok(".gitattributes"));
    CHECK(pull_path_ok("..x/y"));
    CHECK(!pull_path_ok(""));
    CHECK(!pull_path_ok("/etc/passwd"));
    CHECK(!pull_path_ok("../x"));
    CHECK(!pull_path_ok("a/../../x"));
    CHECK(!pull_path_ok("a/./x"));
    CHECK(!pull_path_ok("a//x"));
    CHECK(!pull_path_ok("a/"));
    CHECK(!pull_path_ok("a\\..\\x"));
    CHECK(!pull_path_ok("a\nb"));
    CHECK(!pull_path_ok("bad\xff"));
    CHECK(!pull_path_ok("x.safetensors.incomplete"));
    CHECK(!pull_path_ok(PULL_MANIFEST));
}

static void t_repo_ok(void)
{
    CHECK(pull_repo_ok("88plug/Qwen3.6-35B-A3B-W4A16"));
    CHECK(pull_repo_ok("a/b"));
    CHECK(!pull_repo_ok("a"));
    CHECK(!pull_repo_ok("a/b/c"));
    CHECK(!pull_repo_ok("../b"));
    CHECK(!pull_repo_ok("a/.."));
    CHECK(!pull_repo_ok("a/b c"));
    CHECK(!pull_repo_ok("/b"));
    CHECK(!pull_repo_ok("a/"));
}

#define SHA_A "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

static void t_parse_tree(void)
{
    const char *js = "[{\"type\":\"directory\",\"path\":\"sub\",\"oid\":\"x\",\"size\":0},"
                     "{\"type\":\"file\",\"path\":\"config.json\",\"size\":12,"
                     "\"oid\":\"0123456789abcdef0123456789abcdef01234567\"},"
                     "{\"type\":\"file\",\"path\":\"sub/m.safetensors\",\"size\":134,"
                     "\"oid\":\"89abcdef0123456789abcdef0123456789abcdef\","
                     "\"lfs\":{\"oid\":\"" SHA_A "\",\"size\":5000000000,\"pointerSize\":134}}]";
    struct pull_listing l = { 0 };
    REQUIRE(pull_parse_tree(js, strlen(js), "tree", &l) == 0);
    REQUIRE(l.n == 2);
    CHECK_STR(l.files[0].path, "config.json");
    CHECK_INT(l.files[0].size, 12);
    CHECK_STR(l.files[0].git_oid, "0123456789abcdef0123456789abcdef01234567");
    CHECK_STR(l.files[0].sha256, "");
    CHECK_STR(l.files[1].path, "sub/m.safetensors");
    CHECK_INT(l.files[1].size, 5000000000ll); /* the LFS object's size, not the pointer's */
    CHECK_STR(l.files[1].sha256, SHA_A);
    CHECK_STR(l.files[1].git_oid, ""); /* the pointer's blob id checks nothing */
    CHECK(pull_listing_find(&l, "config.json") == &l.files[0]);
    CHECK(pull_listing_find(&l, "nope") == NULL);
    /* a second page appends; a duplicate is refused */
    const char *p2 = "[{\"type\":\"file\",\"path\":\"b\",\"size\":0,"
                     "\"oid\":\"e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\"}]";
    CHECK(pull_parse_tree(p2, strlen(p2), "tree", &l) == 0);
    CHECK_INT(l.n, 3);
    CHECK(pull_parse_tree(p2, strlen(p2), "tree", &l) == ERR_INVAL);
    CHECK(strstr(err_msg(), "listed twice") != NULL);
    pull_listing_free(&l);
    pull_listing_free(&l); /* twice is fine */
    CHECK_INT(l.n, 0);
}

static void t_parse_tree_bad(void)
{
    static const struct {
        const char *js, *needle;
    } cases[] = {
        { "{}", "expected a JSON array" },
        { "[1]", "item 0: expected an object" },
        { "[{\"path\":\"a\"}]", "missing \"type\"" },
        { "[{\"type\":\"file\",\"path\":\"../a\",\"size\":1,\"oid\":\"" SHA_A "\"}]", "unsafe" },
        { "[{\"type\":\"file\",\"size\":1}]", "unsafe or missing path" },
        { "[{\"type\":\"file\",\"path\":\"a\",\"size\":-1}]", "size" },
        { "[{\"type\":\"file\",\"path\":\"a\",\"size\":1.5}]", "size" },
        { "[{\"type\":\"file\",\"path\":\"a\",\"size\":1e300}]", "size" },
        { "[{\"type\":\"file\",\"path\":\"a\",\"size\":\"1\"}]", "size" },
        { "[{\"type\":\"file\",\"path\":\"a\",\"size\":1}]", "no checksum" },
        { "[{\"type\":\"file\",\"path\":\"a\",\"size\":1,\"oid\":\"XYZ\"}]", "oid" },
        { "[{\"type\":\"file\",\"path\":\"a\",\"size\":1,\"lfs\":{\"oid\":\"abc\"}}]", "lfs.oid" },
        { "[{\"type\":\"file\",\"path\":\"a\",\"size\":1,\"lfs\":{\"oid\":\"" SHA_A
          "\",\"size\":-4}}]",
          "lfs.size" },
        { "[\n{\"type\":\"file\",\n oops", "tree:3:" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pull_listing l = { 0 };
        int rc = pull_parse_tree(cases[i].js, strlen(cases[i].js), "tree", &l);
        CHECKF(rc == ERR_INVAL && strstr(err_msg(), cases[i].needle), "case %zu: rc %d, '%s'", i,
               rc, err_msg());
        pull_listing_free(&l);
    }
}

static void t_link_next(void)
{
    char out[512];
    const char *base = "https://hub.example/api/models/a/b/tree/x?recursive=true";
    CHECK(pull_link_next("<https://hub.example/next?cursor=2>; rel=\"next\"", base, out,
                         sizeof out) == 1);
    CHECK_STR(out, "https://hub.example/next?cursor=2");
    CHECK(pull_link_next("<https://h/p1>; rel=\"prev\", </api/next?c=3>; rel=\"next\"", base, out,
                         sizeof out) == 1);
    CHECK_STR(out, "https://hub.example/api/next?c=3");
    CHECK(pull_link_next("<https://h/last>; rel=\"last\"", base, out, sizeof out) == 0);
    CHECK(pull_link_next("garbage", base, out, sizeof out) == 0);
    CHECK(pull_link_next("<unterminated", base, out, sizeof out) == 0);
}

static void t_same_origin(void)
{
    CHECK(pull_same_origin("https://huggingface.co/a", "https://huggingface.co"));
    CHECK(pull_same_origin("https://HuggingFace.co:443/x", "https://huggingface.co/y"));
    CHECK(!pull_same_origin("https://cdn-lfs.huggingface.co/x", "https://huggingface.co"));
    CHECK(!pull_same_origin("http://127.0.0.1:8001/x", "http://127.0.0.1:8000"));
    CHECK(!pull_same_origin("http://huggingface.co/x", "https://huggingface.co"));
    CHECK(!pull_same_origin("https://huggingface.co.evil.com/", "https://huggingface.co"));
    CHECK(!pull_same_origin("https://huggingface.co@evil.com/", "https://huggingface.co"));
    CHECK(!pull_same_origin("not a url", "https://huggingface.co"));
}

static void t_checksums(void)
{
    char hex[41];
    pull_git_oid("", 0, hex); /* git hash-object /dev/null */
    CHECK_STR(hex, "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    pull_git_oid("hello\n", 6, hex);
    CHECK_STR(hex, "ce013625030ba8dba906f756967f9e9ca394464a");
    /* streaming in odd pieces equals one shot, across SHA-1 block edges */
    struct th_rng r = { th_seed() };
    static unsigned char data[5000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)th_next(&r);
    struct pull_file f = { .path = "x", .size = sizeof data };
    pull_git_oid(data, sizeof data, f.git_oid);
    struct pull_sums s;
    pull_sums_init(&s, &f);
    for (size_t off = 0; off < sizeof data;) {
        size_t n = 1 + th_next(&r) % 130;
        if (n > sizeof data - off)
            n = sizeof data - off;
        pull_sums_update(&s, data + off, n);
        off += n;
    }
    CHECK(pull_sums_check(&s, &f) == 0);
    /* SHA-256 wins when both are known, and a mismatch names both values */
    sha256_hex(data, sizeof data, f.sha256);
    pull_sums_init(&s, &f);
    pull_sums_update(&s, data, sizeof data);
    CHECK(pull_sums_check(&s, &f) == 0);
    data[17] ^= 1;
    pull_sums_init(&s, &f);
    pull_sums_update(&s, data, sizeof data);
    CHECK(pull_sums_check(&s, &f) == ERR_INVAL);
    CHECK(strstr(err_msg(), "x: SHA-256 mismatch (expected ") != NULL);
    CHECK(pull_hex_ok("0a", 2) && !pull_hex_ok("0A", 2) && !pull_hex_ok("0a0", 2));
}

static void t_backoff(void)
{
    CHECK_INT(pull_backoff_ms(1, 1000), 1000);
    CHECK_INT(pull_backoff_ms(2, 1000), 2000);
    CHECK_INT(pull_backoff_ms(4, 1000), 8000);
    CHECK_INT(pull_backoff_ms(10, 1000), 30000);
    CHECK_INT(pull_backoff_ms(1000, 1000), 30000);
    CHECK_INT(pull_backoff_ms(3, 0), 0);
}

static void t_format(void)
{
    char b[256];
    pull_format_bytes(0, b, sizeof b);
    CHECK_STR(b, "0 B");
    pull_format_bytes(1023, b, sizeof b);
    CHECK_STR(b, "1023 B");
    pull_format_bytes(1536, b, sizeof b);
    CHECK_STR(b, "1.5 KiB");
    pull_format_bytes(28ull << 30, b, sizeof b);
    CHECK_STR(b, "28.0 GiB");
    pull_format_progress(b, sizeof b, 0, 100, 0, 0);
    CHECK_STR(b, "  0%  0 B / 100 B");
    pull_format_progress(b, sizeof b, 50ull << 20, 100ull << 20, 1 << 20, 0);
    CHECK_STR(b, " 50%  50.0 MiB / 100.0 MiB  1.0 MiB/s  ETA 50s");
    pull_format_progress(b, sizeof b, 1ull << 30, 28ull << 30, 10 << 20, 0);
    CHECK_STR(b, "  3%  1.0 GiB / 28.0 GiB  10.0 MiB/s  ETA 46m05s");
    pull_format_progress(b, sizeof b, 1, 1ull << 40, 1, 0);
    CHECK(strstr(b, "ETA --") != NULL);
    pull_format_progress(b, sizeof b, 50, 100, 0, 60);
    CHECK(b[0] == '[' && strstr(b, "] ") && strlen(b) <= 60);
    CHECKF(strlen(b) <= 60, "%zu: '%s'", strlen(b), b);
    pull_format_progress(b, sizeof b, 100, 100, 0, 60);
    CHECK(strstr(b, "[==========") && !strchr(b, '>') && strstr(b, "100%"));
    pull_format_progress(b, 8, 100, 100, 0, 60); /* truncates, never overflows */
    CHECK_INT(strlen(b), 7);
}

int main(void)
{
    TEST_RUN(t_escape);
    TEST_RUN(t_path_ok);
    TEST_RUN(t_repo_ok);
    TEST_RUN(t_parse_tree);
    TEST_RUN(t_parse_tree_bad);
    TEST_RUN(t_link_next);
    TEST_RUN(t_same_origin);
    TEST_RUN(t_checksums);
    TEST_RUN(t_backoff);
    TEST_RUN(t_format);
    TEST_END();
}
