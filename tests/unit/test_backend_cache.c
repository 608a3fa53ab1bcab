/*
 * test_backend_cache.c - the engine backend with the persistent prefix cache
 * (app/prefix_cache.h) on a tiny generated checkpoint: a second backend (a
 * fresh process state) restores the first one's prefix and gets the same
 * next-token logits bit for bit, computing fewer tokens; the cache mark (the
 * end of loaded files); a damaged cache never fails a turn; cache off; the
 * configuration keys.
 */
#include "app/backend.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "config/config.h"
#include "engine/mkmodel.h"
#include "engine/template.h"
#include "engine/tokenizer.h"
#include "testhelp.h"

#include <cjson/cJSON.h>
#include <sqlite3.h>

#define REAL_TOK "../shared/reference/qwen3-tokenizer/tokenizer.json"

static char model[128], dbpath[160];
static struct tok *tk;
static struct tpl *tp;

static struct backend *open_engine(int cache)
{
    struct be_config c = be_config_default();
    c.model = model;
    c.threads = 1; /* bit-identical logits need the same threads */
    c.cache = cache;
    c.cache_path = dbpath;
    c.cache_every = 256;
    struct backend *b = NULL;
    if (be_open(&b, "cpu", &c) < 0)
        printf("    be_open: %s\n", err_msg());
    return b;
}

/* A conversation whose system message starts with `block` (the loaded files) and goes on
 * with `rest`; rendered with the generation prompt. */
static char *prompt(const char *block, const char *rest, const char *user)
{
    struct buf sys = { 0 };
    buf_puts(&sys, block);
    buf_puts(&sys, rest);
    cJSON *msgs = cJSON_CreateArray();
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "system");
    cJSON_AddStringToObject(m, "content", sys.p);
    cJSON_AddItemToArray(msgs, m);
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", user);
    cJSON_AddItemToArray(msgs, m);
    struct tpl_opts o = { .add_generation_prompt = 1, .enable_thinking = TPL_FALSE };
    char *out = NULL;
    size_t n;
    if (tpl_render(tp, msgs, NULL, &o, &out, &n) < 0)
        printf("    render: %s\n", err_msg());
    cJSON_Delete(msgs);
    buf_free(&sys);
    return out;
}

/* Files-like text of about `lines` lines. */
static void files_block(struct buf *b, int lines, int salt)
{
    buf_puts(b, "<files>\n=== src/a.c ===\n");
    for (int i = 0; i < lines; i++)
        buf_printf(b, "int v%d = %d; /* %d */\n", i, i * 7 + salt, i % 13);
    buf_puts(b, "</files>\n\n");
}

/* Prefill only (max_tokens < 0): usage and a copy of the last logits. */
static int prefill(struct backend *b, const char *p, size_t mark, struct be_usage *u,
                   float **logits, long *nv)
{
    struct be_request rq = { 0 };
    rq.prompt = p;
    rq.prompt_len = strlen(p);
    rq.samp = samp_preset(SAMP_GREEDY);
    rq.max_tokens = -1;
    rq.cache_mark = mark;
    enum be_stop stop;
    int rc = b->ops->generate(b, &rq, NULL, NULL, u, &stop);
    if (rc < 0) {
        printf("    generate: %s\n", err_msg());
        return rc;
    }
    const float *lg;
    if (logits && b->ops->last_logits(b, &lg, nv) == 0) {
        *logits = malloc((size_t)*nv * sizeof(float));
        memcpy(*logits, lg, (size_t)*nv * sizeof(float));
    }
    return 0;
}

static long ntokens(const char *s, size_t n)
{
    struct tok_ids ids = { 0 };
    long r = tok_encode(tk, s, n, 0, &ids) == 0 ? (long)ids.n : -1;
    tok_ids_free(&ids);
    return r;
}

/* Zeroes every entry's file (the payloads live in "<db>-data/<id>"). */
static int zero_chunks(void)
{
    sqlite3 *h;
    if (sqlite3_open(dbpath, &h) != SQLITE_OK)
        return -1;
    sqlite3_stmt *st;
    int rc = -1, n = 0;
    if (sqlite3_prepare_v2(h, "SELECT id, size FROM entries", -1, &st, NULL) == SQLITE_OK) {
        rc = 0;
        while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
            char f[200];
            snprintf(f, sizeof f, "%s-data/%lld", dbpath, (long long)sqlite3_column_int64(st, 0));
            size_t sz = (size_t)sqlite3_column_int64(st, 1);
            char *z = calloc(1, sz ? sz : 1);
            FILE *o = fopen(f, "r+");
            rc = z && o && fwrite(z, 1, sz, o) == sz ? 0 : -1;
            if (o)
                fclose(o);
            free(z);
            n++;
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return rc == 0 && n > 0 ? 0 : -1;
}

#define NEED_MODEL()                                                                               \
    do {                                                                                           \
        if (!tk)                                                                                   \
            SKIP("no tokenizer at %s", REAL_TOK);                                                  \
    } while (0)

/* A second backend restores the first's prefix: same logits, fewer tokens computed. */
static void t_restore_across_backends(void)
{
    NEED_MODEL();
    unlink(dbpath);
    struct buf blk = { 0 };
    files_block(&blk, 120, 0);
    char *p = prompt(blk.p, "You are a test.", "What is v3?");
    REQUIRE(p);
    long n = ntokens(p, strlen(p));
    CHECKF(n > 1000, "the prompt has %ld tokens", n);

    struct backend *a = open_engine(1);
    REQUIRE(a);
    struct be_usage u;
    float *la = NULL, *lb = NULL;
    long na = 0, nb = 0;
    REQUIRE(prefill(a, p, 0, &u, &la, &na) == 0 && la);
    CHECK_INT(u.restored_tokens, 0);
    CHECK_INT(u.prefill_tokens, n);
    be_close(a);

    struct backend *b = open_engine(1);
    REQUIRE(b);
    REQUIRE(prefill(b, p, 0, &u, &lb, &nb) == 0 && lb);
    CHECKF(u.restored_tokens > 0, "restored %ld", u.restored_tokens);
    CHECK_INT(u.cached_tokens, u.restored_tokens);
    CHECKF(u.prefill_tokens < n / 4, "computed %ld of %ld", u.prefill_tokens, n);
    CHECK_INT(u.prefill_tokens + u.cached_tokens, n);
    CHECK(na == nb && !memcmp(la, lb, (size_t)na * sizeof *la));
    /* the next turn on the same backend still reuses its own context, not the cache */
    float *lc = NULL;
    long nc = 0;
    REQUIRE(prefill(b, p, 0, &u, &lc, &nc) == 0);
    CHECK_INT(u.restored_tokens, 0);
    free(lc);
    be_close(b);
    free(la);
    free(lb);
    free(p);
    buf_free(&blk);
}

/* The cache mark: a prompt that shares only the loaded files restores exactly them. */
static void t_mark(void)
{
    NEED_MODEL();
    unlink(dbpath);
    struct buf blk = { 0 };
    files_block(&blk, 100, 1);
    char *p1 = prompt(blk.p, "You are one.", "hello");
    char *p2 = prompt(blk.p, "Today is another day.", "bonjour");
    REQUIRE(p1 && p2);
    const char *at = strstr(p1, blk.p);
    REQUIRE(at);
    size_t mark = (size_t)(at - p1) + blk.len;
    long mtok = ntokens(p1, mark);

    struct backend *a = open_engine(1);
    REQUIRE(a);
    struct be_usage u;
    REQUIRE(prefill(a, p1, mark, &u, NULL, NULL) == 0);
    be_close(a);

    struct backend *b = open_engine(1);
    REQUIRE(b);
    float *lb = NULL;
    long nb = 0;
    REQUIRE(prefill(b, p2, strstr(p2, blk.p) - p2 + blk.len, &u, &lb, &nb) == 0);
    CHECK_INT(u.restored_tokens, mtok);
    be_close(b);

    /* the same prompt computed from an empty cache gives the same logits (an empty cache,
     * not none: the cache's stops split the prefill into the same chunks) */
    unlink(dbpath);
    struct backend *c = open_engine(1);
    REQUIRE(c);
    float *lc = NULL;
    long nc = 0;
    REQUIRE(prefill(c, p2, strstr(p2, blk.p) - p2 + blk.len, &u, &lc, &nc) == 0);
    CHECK_INT(u.restored_tokens, 0);
    CHECK(lb && lc && nb == nc && !memcmp(lb, lc, (size_t)nb * sizeof *lb));
    be_close(c);
    free(lb);
    free(lc);
    free(p1);
    free(p2);
    buf_free(&blk);
}

/* Damaged entries: the turn goes on, computing instead, with the right logits. */
static void t_damaged(void)
{
    NEED_MODEL();
    unlink(dbpath);
    struct buf blk = { 0 };
    files_block(&blk, 80, 2);
    char *p = prompt(blk.p, "Damage.", "hm");
    REQUIRE(p);
    struct backend *a = open_engine(1);
    REQUIRE(a);
    struct be_usage u;
    float *la = NULL, *lb = NULL;
    long na = 0, nb = 0;
    REQUIRE(prefill(a, p, 0, &u, &la, &na) == 0);
    be_close(a);
    REQUIRE(zero_chunks() == 0);
    struct backend *b = open_engine(1);
    REQUIRE(b);
    CHECK(prefill(b, p, 0, &u, &lb, &nb) == 0);
    CHECK_INT(u.restored_tokens, 0);
    CHECK(la && lb && na == nb && !memcmp(la, lb, (size_t)na * sizeof *la));
    be_close(b);
    /* a cache file that is not a database: the backend opens without a cache */
    unlink(dbpath);
    FILE *f = fopen(dbpath, "w");
    REQUIRE(f);
    fputs("not a database, not at all, really not\n", f);
    fclose(f);
    struct backend *c = open_engine(1);
    REQUIRE(c);
    CHECK(prefill(c, p, 0, &u, NULL, NULL) == 0);
    be_close(c);
    unlink(dbpath);
    free(la);
    free(lb);
    free(p);
    buf_free(&blk);
}

/* cache off: nothing restored even with a warm cache, and nothing written. */
static void t_disabled(void)
{
    NEED_MODEL();
    unlink(dbpath);
    struct buf blk = { 0 };
    files_block(&blk, 80, 3);
    char *p = prompt(blk.p, "Off.", "x");
    REQUIRE(p);
    struct backend *a = open_engine(0);
    REQUIRE(a);
    struct be_usage u;
    REQUIRE(prefill(a, p, 0, &u, NULL, NULL) == 0);
    be_close(a);
    CHECK(!fs_exists(dbpath));
    a = open_engine(1);
    REQUIRE(a);
    REQUIRE(prefill(a, p, 0, &u, NULL, NULL) == 0);
    be_close(a);
    struct backend *b = open_engine(0);
    REQUIRE(b);
    REQUIRE(prefill(b, p, 0, &u, NULL, NULL) == 0);
    CHECK_INT(u.restored_tokens, 0);
    be_close(b);
    free(p);
    buf_free(&blk);
}

static void t_config(void)
{
    setenv("XDG_CONFIG_HOME", "/nonexistent-lode-test", 1);
    struct cfg c;
    REQUIRE(cfg_load(&c, "/") == 0);
    struct be_config bc = be_config_default();
    CHECK(bc.cache == 0); /* opt-in for every caller but lode run and the UI */
    REQUIRE(be_config_cache(&bc, &c) == 0);
    CHECK(bc.cache == 1 && bc.cache_path == NULL && bc.cache_budget == 0 && bc.cache_every == 4096);
    REQUIRE(cfg_set(&c, "cache.budget", "20G", CFG_SRC_FLAG, "test") == 0);
    REQUIRE(cfg_set(&c, "cache.enabled", "false", CFG_SRC_FLAG, "test") == 0);
    REQUIRE(cfg_set(&c, "cache.path", "/tmp/x.db", CFG_SRC_FLAG, "test") == 0);
    REQUIRE(be_config_cache(&bc, &c) == 0);
    CHECK(bc.cache == 0 && bc.cache_budget == (uint64_t)20 << 30);
    CHECK_STR(bc.cache_path, "/tmp/x.db");
    REQUIRE(cfg_set(&c, "cache.budget", "lots", CFG_SRC_FLAG, "test") == 0);
    CHECK(be_config_cache(&bc, &c) == ERR_INVAL);
    CHECK(strstr(err_msg(), "cache.budget") != NULL);
    CHECK(cfg_set(&c, "cache.every", "10", CFG_SRC_FLAG, "test") == ERR_INVAL);
    cfg_free(&c);
}

int main(void)
{
    snprintf(model, sizeof model, "/tmp/lode-bcache-%d", (int)getpid());
    snprintf(dbpath, sizeof dbpath, "/tmp/lode-bcache-%d.db", (int)getpid());
    struct mk_opts mo = {
        .out = model, .preset = MK_TINY, .seed = 1, .tokenizer = REAL_TOK, .shards = 1
    };
    if (!(fs_exists(REAL_TOK) && mk_write(&mo) == 0 && tok_open(&tk, REAL_TOK) == 0 &&
          tpl_open_builtin(&tp) == 0)) {
        printf("# engine tests skipped: %s\n", err_msg());
        tok_close(tk);
        tk = NULL;
    }
    TEST_RUN(t_restore_across_backends);
    TEST_RUN(t_mark);
    TEST_RUN(t_damaged);
    TEST_RUN(t_disabled);
    TEST_RUN(t_config);
    tok_close(tk);
    tpl_close(tp);
    static const char *files[] = { "config.json", "generation_config.json", "model.safetensors",
                                   "tokenizer.json" };
    char q[256];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(q, sizeof q, "%s/%s", model, files[i]);
        unlink(q);
    }
    rmdir(model);
    unlink(dbpath);
    snprintf(q, sizeof q, "rm -rf '%s-data' '%s-wal' '%s-shm'", dbpath, dbpath, dbpath);
    if (system(q) != 0)
        printf("# could not remove %s-data\n", dbpath);
    TEST_END();
}
