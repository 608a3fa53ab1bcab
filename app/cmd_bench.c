/*
 * cmd_bench.c - `lode bench NAME`: benchmarks, one per subsystem, dispatched
 * on the first word. Each prints what it measured, on which input, and how
 * it compares with the reference implementation when that is available.
 *
 *   lode bench                list the benchmarks
 *   lode bench tokenizer      encode a corpus with lode and with HF tokenizers
 */
#include "app/bench.h"
#include "app/bench_cuda.h"
#include "app/commands.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hash.h"
#include "common/text.h"
#include "engine/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MAX_CORPUS (1u << 30)

/* ------------------------------------------------------------- tokenizer */

static const struct cli_opt tok_opts[] = {
    { "tokenizer", 't', 1, "FILE",
      "tokenizer.json (default: <model>/tokenizer.json, else the "
      "reference Qwen3 one next to the repository)" },
    { "corpus", 'c', 1, "FILE",
      "UTF-8 text to encode (default: tests/data/tokenizer/golden.txt; "
      "tests/ref/corpus.py makes a bigger one)" },
    { "repeat", 'n', 1, "N", "runs per side, best is reported (default 3)" },
    { "no-ref", 0, 0, NULL, "do not run Hugging Face tokenizers" },
    { 0 },
};

/* Runs the reference side through the project's test venv; fills line with
 * its result or a reason it did not run. Returns 1 when it ran. */
static int run_hf(const char *root, const char *tok, const char *corpus, int repeat, char *line,
                  size_t cap)
{
    char cmd[12288];
    snprintf(cmd, sizeof cmd,
             "py=$('%s/scripts/test-venv' --python 2>/dev/null) && "
             "\"$py\" '%s/tests/ref/tok_bench.py' '%s' '%s' %d 2>&1",
             root, root, tok, corpus, repeat);
    if (strchr(root, '\'') || strchr(tok, '\'') || strchr(corpus, '\'')) {
        snprintf(line, cap, "not run (a path contains a quote)");
        return 0;
    }
    FILE *p = popen(cmd, "r");
    if (!p) {
        snprintf(line, cap, "not run (popen failed)");
        return 0;
    }
    line[0] = 0;
    char tmp[1024];
    while (fgets(tmp, sizeof tmp, p))
        if (!strncmp(tmp, "hf ", 3))
            snprintf(line, cap, "%s", tmp);
    int st = pclose(p);
    if (st != 0 || !line[0]) {
        snprintf(line, cap, "not run (no reference venv: make test-deps)");
        return 0;
    }
    line[strcspn(line, "\n")] = 0;
    return 1;
}

/* CPU seconds of this process: on a shared machine wall time also counts
 * the time other work held the cores */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double field(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    return p ? strtod(p + strlen(key), NULL) : 0;
}

static int bench_tokenizer(struct app *a, int argc, char **argv)
{
    const char *tok_path = NULL, *corpus = NULL;
    int repeat = 3, ref = 1;
    struct cli c;
    cli_init(&c, argc, argv);
    c.usage =
        "usage: lode bench tokenizer [--tokenizer FILE] [--corpus FILE] [--repeat N] [--no-ref]\n";
    for (int o; (o = cli_next(&c, tok_opts)) != CLI_END;) {
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS)
            return cli_usage_error("bench", "unexpected argument '%s'", c.arg);
        switch (o) {
        case 0: tok_path = c.arg; break;
        case 1: corpus = c.arg; break;
        case 2:
            repeat = atoi(c.arg);
            if (repeat < 1 || repeat > 100)
                return cli_usage_error("bench", "--repeat: expected 1..100, got '%s'", c.arg);
            break;
        case 3: ref = 0; break;
        }
    }
    char root[4096], deftok[4096], defcorpus[4096];
    if (fs_project_root(a->cwd, root, sizeof root) < 0)
        snprintf(root, sizeof root, "%s", a->cwd);
    if (!tok_path) {
        const char *model = cfg_str(&a->cfg, CFG_MODEL);
        if (model && model[0] && fs_join(deftok, sizeof deftok, model, "tokenizer.json") == 0)
            tok_path = deftok;
        else if (fs_join(deftok, sizeof deftok, root,
                         "../shared/reference/qwen3-tokenizer/tokenizer.json") == 0 &&
                 fs_exists(deftok))
            tok_path = deftok;
        else
            return cli_usage_error("bench", "no --tokenizer FILE (and no model configured)");
    }
    if (!corpus) {
        if (fs_join(defcorpus, sizeof defcorpus, root, "tests/data/tokenizer/golden.txt") == 0 &&
            fs_exists(defcorpus))
            corpus = defcorpus;
        else
            return cli_usage_error("bench", "no --corpus FILE");
    }

    struct buf text = { 0 };
    if (fs_read_file(corpus, BENCH_MAX_CORPUS, &text) < 0)
        return cli_fail();
    struct tok_ids ids = { 0 };
    double best_load = 1e9, best_enc = 1e9, best_cpu = 1e9;
    uint64_t hits = 0, misses = 0;
    for (int r = 0; r < repeat; r++) {
        /* a fresh tokenizer per run: the word cache starts cold each time */
        struct tok *t;
        double t0 = time_s();
        if (tok_open(&t, tok_path) < 0) {
            buf_free(&text);
            return cli_fail();
        }
        double t1 = time_s();
        ids.n = 0;
        double c1 = cpu_s();
        int rc = tok_encode(t, text.p ? text.p : "", text.len, 0, &ids);
        double t2 = time_s(), c2 = cpu_s();
        if (c2 - c1 < best_cpu)
            best_cpu = c2 - c1;
        tok_cache_stats(t, &hits, &misses);
        tok_close(t);
        if (rc < 0) {
            err_prefix(rc, "%s", corpus);
            buf_free(&text);
            tok_ids_free(&ids);
            return cli_fail();
        }
        if (t1 - t0 < best_load)
            best_load = t1 - t0;
        if (t2 - t1 < best_enc)
            best_enc = t2 - t1;
    }
    /* the same digest tok_bench.py prints: ids as little-endian int32 */
    struct sha256 h;
    sha256_init(&h);
    for (size_t i = 0; i < ids.n; i++) {
        uint8_t le[4] = { (uint8_t)ids.v[i], (uint8_t)(ids.v[i] >> 8), (uint8_t)(ids.v[i] >> 16),
                          (uint8_t)((uint32_t)ids.v[i] >> 24) };
        sha256_update(&h, le, 4);
    }
    uint8_t dig[32];
    char hex[65];
    sha256_final(&h, dig);
    hash_to_hex(dig, 32, hex);
    double mb = (double)text.len / 1e6, lode_mbs = mb / best_enc;
    printf("tokenizer  %s\ncorpus     %s (%.2f MB)\nruns       best of %d, one thread, whole "
           "corpus as one string\n\n",
           tok_path, corpus, mb, repeat);
    double lode_cpu_mbs = mb / best_cpu;
    printf("lode       load %7.1f ms   encode %8.3f s   %8.2f MB/s   (CPU %8.2f MB/s)   %zu ids   "
           "word cache %.1f%% hits\n",
           best_load * 1e3, best_enc, lode_mbs, lode_cpu_mbs, ids.n,
           hits + misses ? 100.0 * (double)hits / (double)(hits + misses) : 0.0);
    if (ref) {
        char line[1024];
        if (run_hf(root, tok_path, corpus, repeat, line, sizeof line)) {
            double hf_mbs = field(line, " mb_s="), hf_load = field(line, "load_ms="),
                   hf_cpu_mbs = field(line, "cpu_mb_s=");
            const char *hs = strstr(line, "sha256=");
            int same = hs && !strncmp(hs + 7, hex, 64);
            printf("HF tok.    load %7.1f ms   encode %8.3f s   %8.2f MB/s   (CPU %8.2f MB/s)   "
                   "%lld ids\n",
                   hf_load, field(line, "encode_s="), hf_mbs, hf_cpu_mbs,
                   (long long)field(line, "ids="));
            printf("\nratio      %.2fx HF throughput (%.2fx by CPU time); ids %s\n",
                   hf_mbs > 0 ? lode_mbs / hf_mbs : 0,
                   hf_cpu_mbs > 0 ? lode_cpu_mbs / hf_cpu_mbs : 0, same ? "identical" : "DIFFER");
            if (!same) {
                buf_free(&text);
                tok_ids_free(&ids);
                fprintf(stderr, "lode: token ids differ from Hugging Face tokenizers\n");
                return EXIT_ERROR;
            }
        } else
            printf("HF tok.    %s\n", line);
    }
    buf_free(&text);
    tok_ids_free(&ids);
    return EXIT_OK;
}

/* ------------------------------------------------------- kernels --backend */

static const struct cli_opt cuda_opts[] = {
    { "backend", 0, 1, "NAME", "cpu (default) or cuda" },
    { "only", 0, 1, "LIST", "with cuda: sections linear, seq (comma-separated; default both)" },
    { "secs", 0, 1, "S", "with cuda: seconds measured per line (default 0.3)" },
    { 0 },
};

/* `lode bench kernels --backend cuda`: app/bench_cuda.c in-process. */
static int bench_kernels_cuda(int argc, char **argv)
{
    int sections = BENCH_CUDA_ALL;
    double secs = 0;
    struct cli c;
    cli_init(&c, argc, argv);
    c.usage = "usage: lode bench kernels --backend cuda [--only linear,seq] [--secs S]\n";
    for (int o; (o = cli_next(&c, cuda_opts)) != CLI_END;) {
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS)
            return cli_usage_error("bench", "unexpected argument '%s'", c.arg);
        if (o == 1) {
            sections = 0;
            for (const char *p = c.arg; *p;) {
                size_t n = strcspn(p, ",");
                if (n == 6 && !strncmp(p, "linear", 6))
                    sections |= BENCH_CUDA_LINEAR;
                else if (n == 3 && !strncmp(p, "seq", 3))
                    sections |= BENCH_CUDA_SEQ;
                else
                    return cli_usage_error("bench", "--only wants linear and/or seq, not '%.*s'",
                                           (int)n, p);
                p += n + (p[n] == ',');
            }
        } else if (o == 2) {
            char *end;
            secs = strtod(c.arg, &end);
            if (end == c.arg || *end || !(secs > 0 && secs <= 60))
                return cli_usage_error("bench", "--secs wants 0 < S <= 60, not '%s'", c.arg);
        }
    }
    if (!sections)
        return cli_usage_error("bench", "--only wants linear and/or seq");
    if (bench_cuda_run(sections, secs) < 0)
        return cli_fail();
    return EXIT_OK;
}

/* `lode bench kernels [--backend cpu|cuda] ...`: --backend picks the implementation; the CPU
 * one (app/bench_model.c) gets the other arguments unchanged. */
static int bench_kernels(struct app *a, int argc, char **argv)
{
    const char *backend = "cpu";
    int at = 0, skip = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
            backend = argv[i + 1], at = i, skip = 2;
        } else if (!strncmp(argv[i], "--backend=", 10)) {
            backend = argv[i] + 10, at = i, skip = 1;
        }
    }
    if (!strcmp(backend, "cuda"))
        return bench_kernels_cuda(argc, argv);
    if (strcmp(backend, "cpu"))
        return cli_usage_error("bench", "--backend must be cpu or cuda, not '%s'", backend);
    if (skip) { /* drop --backend cpu: the CPU benchmark does not know it */
        for (int i = at; i + skip < argc; i++)
            argv[i] = argv[i + skip];
        argc -= skip;
    }
    return bench_kernels_run(a, argc, argv);
}

/* ---------------------------------------------------------------- dispatch */

static const struct {
    const char *name;
    int (*fn)(struct app *a, int argc, char **argv);
    const char *what;
} benches[] = {
    { "tokenizer", bench_tokenizer, "encode a corpus: lode vs Hugging Face tokenizers (MB/s)" },
    { "model", bench_model_run, "whole-model prefill and decode vs memory bandwidth (CPU)" },
    { "kernels", bench_kernels, "each kernel at the real shapes vs memory bandwidth" },
};
#define NBENCH (int)(sizeof benches / sizeof benches[0])

static void list(FILE *fp)
{
    fprintf(fp, "benchmarks:\n");
    for (int i = 0; i < NBENCH; i++)
        fprintf(fp, "  %-12s %s\n", benches[i].name, benches[i].what);
    fprintf(fp, "lode bench NAME --help shows a benchmark's options.\n");
}

static int run(struct app *a, int argc, char **argv)
{
    if (argc < 2) {
        list(stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        app_print_usage("bench", stdout);
        return EXIT_OK;
    }
    for (int i = 0; i < NBENCH; i++)
        if (!strcmp(argv[1], benches[i].name))
            return benches[i].fn(a, argc - 1, argv + 1);
    /* lode bench --model DIR / --synthetic NAME: the model benchmark's options directly */
    if (argv[1][0] == '-')
        return bench_model_run(a, argc, argv);
    fprintf(stderr, "lode bench: unknown benchmark '%s'\n", argv[1]);
    list(stderr);
    return EXIT_USAGE;
}

const struct command cmd_bench = {
    "bench",
    run,
    "run a benchmark (lode bench lists them)",
    "usage: lode bench [NAME [OPTIONS]]\n"
    "\n"
    "Without NAME, lists the benchmarks. Each prints what it measured and, when the\n"
    "reference implementation is installed (make test-deps), the same figure for it.\n"
    "\n"
    "       lode bench [--model DIR | --synthetic tiny|small] [--prompt N] [--gen N]\n"
    "\n"
    "benchmarks:\n"
    "  tokenizer    encode a corpus: lode vs Hugging Face tokenizers (MB/s)\n"
    "  model        whole-model prefill and decode vs memory bandwidth (the default when\n"
    "               options come first)\n"
    "  kernels      each kernel at the real shapes vs memory bandwidth (--backend cuda:\n"
    "               the CUDA kernels vs the device-to-device copy bandwidth)\n",
    NULL,
};
