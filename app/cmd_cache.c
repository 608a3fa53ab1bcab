/*
 * cmd_cache.c - `lode cache stats|prune|clear|verify|bench`: the persistent
 * prefix/state cache ($XDG_CACHE_HOME/lode/cache.db, see db/cache.h and
 * app/prefix_cache.h).
 */
#include "app/commands.h"
#include "app/engine_opts.h"
#include "app/prefix_cache.h"
#include "common/err.h"
#include "common/pool.h"
#include "common/text.h"
#include "db/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const struct cli_opt opts[] = {
    { "db", 0, 1, "FILE", "the cache file (default $XDG_CACHE_HOME/lode/cache.db)" },
    { "json", 0, 0, NULL, "stats: one JSON object" },
    { "budget", 0, 1, "SIZE", "prune: bytes to keep (K, M, G suffixes; default: the budget)" },
    { "model", 'm', 1, "DIR", "bench: checkpoint directory (default: config key model)" },
    { "tokens", 'n', 1, "N", "bench: prompt tokens (default 4096)" },
    { "every", 0, 1, "N", "bench: also save a snapshot every N tokens (default: only at the end)" },
    { "seed", 0, 1, "N", "bench: seed of the random prompt (default 1)" },
    { "bytes", 0, 1, "SIZE",
      "bench: the store alone, SIZE bytes of full-size KV blocks (no model)" },
    ENGINE_CLI_OPTS,
    { 0 },
};

/* "1.5G", "300M", "64K", "12345" -> bytes; -1 when malformed. */
static double parse_size(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return -1;
    switch (*end) {
    case 'k':
    case 'K': v *= 1024, end++; break;
    case 'm':
    case 'M': v *= 1024 * 1024, end++; break;
    case 'g':
    case 'G': v *= 1024.0 * 1024 * 1024, end++; break;
    case 't':
    case 'T': v *= 1024.0 * 1024 * 1024 * 1024, end++; break;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    return *end ? -1 : v;
}

static const char *human(double b, char *out, size_t cap)
{
    const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int i = 0;
    while (b >= 1024 && i < 4)
        b /= 1024, i++;
    snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", b, u[i]);
    return out;
}

static int stats(struct cache *c, int json)
{
    struct cache_stats st;
    if (cache_stats(c, &st) < 0)
        return cli_fail();
    uint64_t budget = cache_default_budget(c);
    if (json) {
        struct buf b = { 0 };
        buf_puts(&b, "{\"path\": ");
        buf_json_str(&b, cache_path(c), strlen(cache_path(c)));
        buf_printf(&b,
                   ", \"blocks\": %lld, \"block_bytes\": %llu, \"snapshots\": %lld, "
                   "\"snapshot_bytes\": %llu, \"models\": %lld, \"writing\": %lld, "
                   "\"file_bytes\": %llu, \"budget\": %llu}\n",
                   (long long)st.blocks, (unsigned long long)st.block_bytes, (long long)st.snaps,
                   (unsigned long long)st.snap_bytes, (long long)st.models, (long long)st.writing,
                   (unsigned long long)st.file_bytes, (unsigned long long)budget);
        fwrite(b.p, 1, b.len, stdout);
        buf_free(&b);
        return EXIT_OK;
    }
    char h1[32], h2[32], h3[32], h4[32];
    printf("cache       %s\n", cache_path(c));
    printf("blocks      %lld (%s of KV rows, %d tokens each)\n", (long long)st.blocks,
           human((double)st.block_bytes, h1, sizeof h1), PC_BLOCK);
    printf("snapshots   %lld (%s)\n", (long long)st.snaps,
           human((double)st.snap_bytes, h2, sizeof h2));
    printf("models      %lld\n", (long long)st.models);
    printf("file        %s on disk\n", human((double)st.file_bytes, h3, sizeof h3));
    printf("budget      %s (a quarter of the free disk plus what the cache holds)\n",
           human((double)budget, h4, sizeof h4));
    if (st.writing)
        printf("writing     %lld entries in progress\n", (long long)st.writing);
    return EXIT_OK;
}

/* ------------------------------------------------------------- bench */

/* CPU seconds of this process: on a shared machine wall time also counts the time other work
 * held the cores, so the comparison is also given in CPU time. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void remove_db(const char *path)
{
    char p[96];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/* A temporary cache of the benchmarks: the database and its entry files. */
static void remove_tmp_cache(const char *tmp)
{
    /* a fresh database of that name sweeps the entry files no row names: all of them */
    struct cache *c;
    remove_db(tmp);
    if (cache_open(&c, tmp) == 0)
        cache_close(c);
    remove_db(tmp);
    char p[96];
    snprintf(p, sizeof p, "%s-data", tmp);
    rmdir(p);
}

static double best_of(double best, double t) { return !best || t < best ? t : best; }

/* The real model's block: 256 tokens of FP8 KV over 10 full-attention layers (2 x 2 heads of
 * 256 x 10 layers = 10 KiB a token) plus the piece header. */
#define STORE_BLOCK ((size_t)256 * 10240 + 1024)

/* As the restore reads blocks (app/prefix_cache.c): a window of 64 entries opened in order
 * (for cold files the kernel starts reading all of them), then read by the pool's threads. */
#define STORE_WINDOW 64

struct store_win {
    struct cache_rd **rd;
    int *rc;
    char *dst;
    long j0, n;
};

static void store_part(void *ctx, int tid, int nth)
{
    struct store_win *w = ctx;
    long lo, hi;
    pool_range(w->n, tid, nth, &lo, &hi);
    for (long i = lo; i < hi; i++)
        w->rc[i] = cache_read(w->rd[i], w->dst + (w->j0 + i) * STORE_BLOCK, STORE_BLOCK);
}

/* Reads entries ids[0..n) into dst, STORE_BLOCK bytes each. */
static int store_read(struct cache *c, struct pool *pool, const int64_t *ids, long n, char *dst)
{
    struct cache_rd *rd[STORE_WINDOW];
    int rcs[STORE_WINDOW], rc = 0;
    for (long w = 0; w < n && rc == 0; w += STORE_WINDOW) {
        long nw = n - w < STORE_WINDOW ? n - w : STORE_WINDOW, opened = 0;
        for (; opened < nw && rc == 0; opened++) {
            uint64_t sz;
            rcs[opened] = 0;
            if ((rc = cache_read_open(c, ids[w + opened], &rd[opened], &sz)) == 0 &&
                sz != STORE_BLOCK)
                rc = cache_read_close(
                    rd[opened], err_set(ERR_INVAL, "entry size %llu", (unsigned long long)sz));
            if (rc < 0)
                break;
        }
        struct store_win sw = { rd, rcs, dst, w, nw };
        if (rc == 0 && pool)
            pool_run(pool, store_part, &sw);
        else if (rc == 0)
            store_part(&sw, 0, 1);
        for (long i = 0; i < opened; i++) {
            int r = cache_read_close(rd[i], rc < 0 ? ERR_INTERRUPTED : rcs[i]);
            rc = rc < 0 ? rc : r;
        }
    }
    return rc;
}

/* `bench --bytes`: the store alone at the real model's block size, no engine: write, read from
 * the page cache, read cold (pages dropped), against memcpy of the same bytes; and what that
 * means for a 1M-token state (10.7 GB at FP8). */
static int store_bench(const char *dbpath, double bytes)
{
    long n = (long)(bytes / (double)STORE_BLOCK);
    n = n < 1 ? 1 : n;
    size_t total = (size_t)n * STORE_BLOCK;
    struct cache *c = NULL;
    struct pool *pool = NULL;
    char *src = malloc(STORE_BLOCK), *dst = malloc(total);
    uint8_t(*keys)[32] = calloc((size_t)n, 32);
    int64_t *ids = malloc((size_t)n * sizeof *ids);
    int rc = EXIT_ERROR;
    if (!src || !dst || !keys || !ids) {
        err_set(ERR_NOMEM, "out of memory for %zu bytes", total);
        cli_fail();
        goto done;
    }
    memset(dst, 0, total); /* fault the destination in, as a state in use is */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < STORE_BLOCK; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        src[i] = (char)x;
    }
    if (cache_open(&c, dbpath) < 0) {
        cli_fail();
        goto done;
    }
    int nth = pool_ncpu() < 8 ? pool_ncpu() : 8; /* as the restore (PC_MAX_THREADS) */
    if (nth > 1 && pool_new(&pool, nth) < 0)
        pool = NULL;
    struct cache_key k = { .kind = CACHE_BLOCK, .fmt = 0xbe7c };
    double t = time_s(), write_s, page_s = 0, cold_s = 0, copy_s = 0;
    for (long j = 0; j < n; j++) {
        memcpy(keys[j], &j, sizeof j);
        memcpy(k.key, keys[j], 32);
        memcpy(src, &j, sizeof j); /* every block its own bytes */
        if (cache_put(c, &k, NULL, (j + 1) * 256, src, STORE_BLOCK) < 0) {
            cli_fail();
            goto done;
        }
    }
    write_s = time_s() - t;
    if (cache_lookup(c, &k, (const uint8_t(*)[32])keys, n, ids) < 0) {
        cli_fail();
        goto done;
    }
    for (int round = 0; round < 7; round++) {
        if (round >= 4 && cache_drop_page_cache(c) < 0) {
            cli_fail();
            goto done;
        }
        t = time_s();
        if (store_read(c, pool, ids, n, dst) < 0) {
            cli_fail();
            goto done;
        }
        t = time_s() - t;
        if (round >= 4)
            cold_s = best_of(cold_s, t);
        else if (round > 0)
            page_s = best_of(page_s, t);
    }
    for (int round = 0; round < 3; round++) {
        t = time_s();
        for (long j = 0; j < n; j++)
            memcpy(dst + j * STORE_BLOCK, src, STORE_BLOCK);
        copy_s = best_of(copy_s, time_s() - t);
    }
    double gb = (double)total / 1e9;
    char h[32];
    printf("store        %ld entries of %zu bytes, %s (%s), read by %d threads\n", n, STORE_BLOCK,
           human((double)total, h, sizeof h), cache_path(c), pool ? nth : 1);
    printf("write        %.3f s (%.2f GB/s, CRC-32C and SHA-256 included)\n", write_s,
           gb / write_s);
    printf("read         %.4f s (%.2f GB/s; page cache, best of 3)\n", page_s, gb / page_s);
    printf("cold         %.4f s (%.2f GB/s; the files' pages dropped first, best of 3)\n", cold_s,
           gb / cold_s);
    printf("copy         %.2f GB/s (memcpy of the same bytes): reads run at %.0f%% of it\n",
           gb / copy_s, 100 * copy_s / page_s);
    printf("1M tokens    10.7 GB: %.1f s from the page cache, %.1f s cold at these rates\n",
           10.7 / (gb / page_s), 10.7 / (gb / cold_s));
    rc = EXIT_OK;
done:
    pool_free(pool);
    cache_close(c);
    free(src);
    free(dst);
    free(keys);
    free(ids);
    return rc;
}

static int store_bench_tmp(const char *dbpath, double bytes)
{
    char tmp[64] = "";
    if (!dbpath) {
        snprintf(tmp, sizeof tmp, "/tmp/lode-cache-bench-%d.db", (int)getpid());
        dbpath = tmp;
    }
    int rc = store_bench(dbpath, bytes);
    if (tmp[0])
        remove_tmp_cache(tmp);
    return rc;
}

/* Prefills n random tokens through the cache, then restores them into a fresh state (twice:
 * the second read comes from the page cache) and compares with recomputing. */
static int bench(struct app *a, struct engine_args *ea, const char *dbpath, long n, long every,
                 unsigned long seed)
{
    char tmp[64] = "";
    if (!dbpath) {
        snprintf(tmp, sizeof tmp, "/tmp/lode-cache-bench-%d.db", (int)getpid());
        dbpath = tmp;
    }
    struct eng *e = NULL;
    struct pc *pc = NULL;
    struct seq_state *s = NULL, *r = NULL;
    float *l1 = NULL, *l2 = NULL;
    int32_t *tok = malloc((size_t)(n + 1) * sizeof *tok);
    int rc = engine_args_open(ea, a, "cache", &e);
    if (rc != EXIT_OK)
        goto done;
    rc = EXIT_ERROR;
    long V = eng_vocab(e);
    l1 = malloc((size_t)V * sizeof *l1);
    l2 = malloc((size_t)V * sizeof *l2);
    if (!tok || !l1 || !l2) {
        err_set(ERR_NOMEM, "out of memory");
        cli_fail();
        goto done;
    }
    uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)seed * 0xbf58476d1ce4e5b9ull;
    for (long i = 0; i <= n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        tok[i] = (int32_t)(x % (uint64_t)V);
    }
    struct pc_opts po = { .path = dbpath, .budget = 1ull << 40, .every = every };
    struct pc_report pr = { 0 }, rr = { 0 };
    if (pc_open(&pc, e, &po) < 0 || eng_state_new(e, &s, n + 1) < 0 ||
        eng_state_new(e, &r, n + 1) < 0) {
        cli_fail();
        goto done;
    }
    double c0 = cpu_s();
    if (pc_prefill(pc, s, tok, n, 0, NULL, 0, NULL, NULL, NULL, &pr) < 0) {
        cli_fail();
        goto done;
    }
    double prefill_cpu = cpu_s() - c0, restore_cpu = 0;
    long reused = 0;
    /* round 0 faults the destination's pages in (a state is restored into once); then the
     * best of 10 from the page cache (a few ms each: the best filters out other load), and
     * the best of 3 after dropping the files' pages */
    struct pc_report best = { 0 }, cold = { 0 };
    for (int round = 0; round < 14; round++) {
        int is_cold = round >= 11;
        if (is_cold && cache_drop_page_cache(pc_store(pc)) < 0) {
            cli_fail();
            goto done;
        }
        seq_reset(r);
        memset(&rr, 0, sizeof rr);
        c0 = cpu_s();
        if (pc_restore(pc, r, tok, n + 1, 0, &reused, &rr) < 0) {
            cli_fail();
            goto done;
        }
        double cpu = cpu_s() - c0;
        struct pc_report *keep = is_cold ? &cold : &best;
        if (round > 0 && (!keep->restore_s || rr.restore_s < keep->restore_s)) {
            *keep = rr;
            if (!is_cold)
                restore_cpu = cpu;
        }
    }
    rr = best;
    /* the machine's limit for moving those bytes: memcpy of as many, buffers already faulted */
    double copy_s = 0;
    size_t nb = (size_t)rr.bytes_read;
    char *src = malloc(nb ? nb : 1), *dst = malloc(nb ? nb : 1);
    if (src && dst) {
        memset(src, 1, nb);
        memset(dst, 2, nb);
        for (int i = 0; i < 3; i++) {
            double t = time_s();
            memcpy(dst, src, nb);
            t = time_s() - t;
            copy_s = !copy_s || t < copy_s ? t : copy_s;
        }
        /* keep the copies from being optimised away */
        if (dst[nb ? nb - 1 : 0] != 1 && nb)
            copy_s = 0;
    }
    free(src);
    free(dst);
    /* the next token on both: the restored state must give the same logits */
    if (eng_forward(e, s, tok + n, 1, l1, 0) < 0 || eng_forward(e, r, tok + n, 1, l2, 0) < 0) {
        cli_fail();
        goto done;
    }
    int same = !memcmp(l1, l2, (size_t)V * sizeof *l1);
    double gbs = rr.restore_s > 0 ? (double)rr.bytes_read / rr.restore_s / 1e9 : 0;
    double cold_gbs = cold.restore_s > 0 ? (double)cold.bytes_read / cold.restore_s / 1e9 : 0;
    double copy_gbs = copy_s > 0 ? (double)nb / copy_s / 1e9 : 0;
    double restore_tps = rr.restore_s > 0 ? (double)reused / rr.restore_s : 0;
    double prefill_tps = pr.prefill_s > 0 ? (double)pr.computed / pr.prefill_s : 0;
    char h1[32], h2[32];
    printf("model        %s\n", ea->model ? ea->model : "?");
    printf("prefill      %ld tokens in %.3f s (%.0f tokens/s; %.3f CPU-s with the save)\n",
           pr.computed, pr.prefill_s, prefill_tps, prefill_cpu);
    printf("save         %ld blocks + %ld snapshot, %s in %.3f s\n", pr.blocks_written,
           pr.snaps_written, human((double)pr.bytes_written, h1, sizeof h1), pr.save_s);
    printf("restore      %ld tokens, %s in %.4f s (%.2f GB/s, %.0f tokens/s; %.4f CPU-s; "
           "page cache, best of 10)\n",
           reused, human((double)rr.bytes_read, h2, sizeof h2), rr.restore_s, gbs, restore_tps,
           restore_cpu);
    printf("cold         %.4f s (%.2f GB/s; the files' pages dropped first, best of 3)\n",
           cold.restore_s, cold_gbs);
    printf("copy         %.2f GB/s (memcpy of the same bytes): the restore runs at %.0f%% of it\n",
           copy_gbs, copy_gbs > 0 ? 100 * gbs / copy_gbs : 0.0);
    if (pr.computed > 0)
        printf("speedup      %.1fx over recomputing (wall), %.1fx (CPU time)\n",
               rr.restore_s > 0 && prefill_tps > 0 ? restore_tps / prefill_tps : 0.0,
               restore_cpu > 0 ? prefill_cpu / restore_cpu : 0.0);
    else
        printf("speedup      - (everything came from --db: nothing was recomputed)\n");
    printf("logits       %s\n", same ? "identical to the uninterrupted run" : "DIFFER");
    rc = same && reused == n ? EXIT_OK : EXIT_ERROR;
    if (!same || reused != n)
        fprintf(stderr, "lode: cache bench: restored %ld of %ld tokens%s\n", reused, n,
                same ? "" : ", logits differ");
done:
    seq_free(s);
    seq_free(r);
    pc_close(pc);
    eng_close(e);
    free(tok);
    free(l1);
    free(l2);
    if (tmp[0])
        remove_tmp_cache(tmp);
    return rc;
}

static int run(struct app *a, int argc, char **argv)
{
    const char *verb = NULL, *dbpath = NULL;
    int json = 0;
    double budget = -1;
    long ntok = 4096, every = -1;
    double bytes = 0;
    unsigned long seed = 1;
    struct engine_args ea;
    engine_args_init(&ea, a);
    struct cli c;
    cli_init(&c, argc, argv);
    for (int o; (o = cli_next(&c, opts)) != CLI_END;) {
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS) {
            if (verb)
                return cli_usage_error("cache", "unexpected argument '%s'", c.arg);
            verb = c.arg;
            continue;
        }
        const char *name = opts[o].name;
        if (!strcmp(name, "db")) {
            dbpath = c.arg;
        } else if (!strcmp(name, "json")) {
            json = 1;
        } else if (!strcmp(name, "budget")) {
            if ((budget = parse_size(c.arg)) < 0)
                return cli_usage_error("cache", "--budget: expected a size like 20G, got '%s'",
                                       c.arg);
        } else if (!strcmp(name, "bytes")) {
            if ((bytes = parse_size(c.arg)) <= 0)
                return cli_usage_error("cache", "--bytes: expected a size like 1G, got '%s'",
                                       c.arg);
        } else if (!strcmp(name, "tokens")) {
            char *end;
            ntok = strtol(c.arg, &end, 10);
            if (*end || ntok < 1 || ntok > (1L << 22))
                return cli_usage_error("cache", "--tokens: expected 1..4194304, got '%s'", c.arg);
        } else if (!strcmp(name, "every") || !strcmp(name, "seed")) {
            char *end;
            long v = strtol(c.arg, &end, 10);
            if (*end || v < 1)
                return cli_usage_error("cache", "--%s: expected a positive number, got '%s'", name,
                                       c.arg);
            if (name[0] == 'e')
                every = v;
            else
                seed = (unsigned long)v;
        } else if (engine_args_opt(&ea, a, "cache", name, c.arg) != EXIT_OK) {
            return EXIT_USAGE;
        }
    }
    verb = verb ? verb : "stats";
    if (strcmp(verb, "stats") && strcmp(verb, "prune") && strcmp(verb, "clear") &&
        strcmp(verb, "verify") && strcmp(verb, "bench"))
        return cli_usage_error(
            "cache", "unknown subcommand '%s' (stats, prune, clear, verify, bench)", verb);
    if (!strcmp(verb, "bench"))
        return bytes > 0 ? store_bench_tmp(dbpath, bytes)
                         : bench(a, &ea, dbpath, ntok, every, seed);
    struct cache *cache;
    if (cache_open(&cache, dbpath) < 0)
        return cli_fail();
    int rc = EXIT_OK;
    char h[32];
    if (!strcmp(verb, "stats")) {
        rc = stats(cache, json);
    } else if (!strcmp(verb, "prune")) {
        uint64_t keep = budget >= 0 ? (uint64_t)budget : cache_default_budget(cache), freed;
        if (cache_prune(cache, keep, &freed) < 0)
            rc = cli_fail();
        else
            printf("freed %s (budget %s)\n", human((double)freed, h, sizeof h),
                   human((double)keep, h + 16, 16));
    } else if (!strcmp(verb, "clear")) {
        if (cache_clear(cache) < 0)
            rc = cli_fail();
        else
            printf("cleared %s\n", cache_path(cache));
    } else {
        int64_t checked, bad;
        if (cache_verify(cache, &checked, &bad) < 0)
            rc = cli_fail();
        else
            printf("checked %lld entries, %lld damaged (removed)\n", (long long)checked,
                   (long long)bad);
    }
    cache_close(cache);
    return rc;
}

const struct command cmd_cache = {
    "cache",
    run,
    "show, prune, clear, verify or benchmark the prefix/state cache",
    "usage: lode cache [stats] [--json]\n"
    "       lode cache prune [--budget SIZE]\n"
    "       lode cache clear\n"
    "       lode cache verify\n"
    "       lode cache bench [--model DIR] [--tokens N] [--every N] [--seed N]\n"
    "       lode cache bench --bytes SIZE\n"
    "\n"
    "The cache keeps model states keyed by the tokens that produced them, so a prompt that\n"
    "starts like an earlier one (the system prompt, a loaded codebase, a resumed session) is\n"
    "restored instead of recomputed. It lives in $XDG_CACHE_HOME/lode/cache.db (the index)\n"
    "and cache.db-data/ (one file per entry); entries of\n"
    "another model or state format are never used. `prune` evicts the least recently used\n"
    "entries down to the budget (default: a quarter of the free disk plus what the cache\n"
    "holds); `verify` reads every entry and removes damaged ones; `bench` prefills N random\n"
    "tokens, restores them and reports restore throughput against recomputation, from the page\n"
    "cache and cold, and against memcpy (a temporary cache file unless --db is given);\n"
    "`bench --bytes 1G` measures the store alone with the real model's 2.5 MiB KV blocks.\n",
    opts,
};
