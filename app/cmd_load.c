/*
 * cmd_load.c - `lode load [DIR]`: render a codebase into one prompt (app/load.h) and prefill it
 * through the prefix cache, so the next load of an unchanged tree (or a session that starts
 * with it) restores it instead of recomputing.
 */
#include "app/commands.h"
#include "app/engine_opts.h"
#include "app/load.h"
#include "app/prefix_cache.h"
#include "common/err.h"
#include "common/text.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct cli_opt opts[] = {
    { "model", 'm', 1, "DIR", "checkpoint directory (default: config key model)" },
    { "budget", 'b', 1, "N", "token budget (default: context less min(context/4, 32768))" },
    { "max-file", 0, 1, "BYTES", "skip files larger than this (default 262144)" },
    { "include", 'i', 1, "GLOB", "load only matching paths (repeatable; ** spans directories)" },
    { "exclude", 'x', 1, "GLOB", "leave matching paths out (repeatable)" },
    { "no-git", 0, 0, NULL, "do not order files by git history" },
    { "list", 'l', 0, NULL, "print the plan (files, tokens, what is left out); load nothing" },
    { "db", 0, 1, "FILE", "the prefix cache (default: config key cache.path)" },
    { "tokenizer", 't', 1, "FILE", "tokenizer.json (default <model>/tokenizer.json)" },
    ENGINE_CLI_OPTS,
    { 0 },
};

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct progress {
    int tty;
    double t0;
    long base; /* tokens already there when the prefill started */
};

static int on_progress(void *ctx, long done, long total)
{
    struct progress *pr = ctx;
    if (pr->tty) {
        double dt = time_s() - pr->t0, rate = dt > 0 ? (double)(done - pr->base) / dt : 0;
        long eta = rate > 0 ? (long)((double)(total - done) / rate) : 0;
        int width = 30, fill = total ? (int)((double)done / (double)total * width) : width;
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\rprefill [%s] %ld/%ld tokens  %.0f tok/s  ETA %ld:%02ld ", bar, done,
                total, rate, eta / 60, eta % 60);
        fflush(stderr);
    }
    return interrupted != 0;
}

static int run(struct app *a, int argc, char **argv)
{
    const char *dir = ".", *dbpath = NULL, *tokpath = NULL;
    const char *inc[64], *exc[64];
    struct ld_opts lo = { .max_file = 256 * 1024, .include = inc, .exclude = exc };
    long budget = 0;
    int list = 0, ndirs = 0;
    struct engine_args ea;
    engine_args_init(&ea, a);
    struct cli c;
    cli_init(&c, argc, argv);
    for (int o; (o = cli_next(&c, opts)) != CLI_END;) {
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS) {
            if (ndirs++)
                return cli_usage_error("load", "unexpected argument '%s'", c.arg);
            dir = c.arg;
            continue;
        }
        const char *name = opts[o].name;
        char *end;
        if (!strcmp(name, "budget") || !strcmp(name, "max-file")) {
            long v = strtol(c.arg, &end, 10);
            if (*end || v < 1)
                return cli_usage_error("load", "--%s: expected a positive number, got '%s'", name,
                                       c.arg);
            if (name[0] == 'b')
                budget = v;
            else
                lo.max_file = (size_t)v;
        } else if (!strcmp(name, "include") || !strcmp(name, "exclude")) {
            int *n = name[0] == 'i' ? &lo.ninclude : &lo.nexclude;
            if (*n == 64)
                return cli_usage_error("load", "at most 64 --%s patterns", name);
            (name[0] == 'i' ? inc : exc)[(*n)++] = c.arg;
        } else if (!strcmp(name, "no-git")) {
            lo.no_git = 1;
        } else if (!strcmp(name, "list")) {
            list = 1;
        } else if (!strcmp(name, "db")) {
            dbpath = c.arg;
        } else if (!strcmp(name, "tokenizer")) {
            tokpath = c.arg;
        } else if (engine_args_opt(&ea, a, "load", name, c.arg) != EXIT_OK) {
            return EXIT_USAGE;
        }
    }
    if (!budget) {
        /* what `lode run --load` and /load choose: the context less room for the conversation */
        long ctx = cfg_int(&a->cfg, CFG_CONTEXT);
        budget = ctx - (ctx / 4 < 32768 ? ctx / 4 : 32768);
    }
    lo.budget = budget;
    const char *model = ea.model ? ea.model : cfg_str(&a->cfg, CFG_MODEL);
    char tp[PATH_MAX];
    if (!tokpath) {
        if (!model || !*model)
            return cli_usage_error("load", "no model: pass --model DIR or set the model key");
        snprintf(tp, sizeof tp, "%s/tokenizer.json", model);
        tokpath = tp;
    }
    struct tok *t = NULL;
    struct ld_plan p = { 0 };
    struct eng *e = NULL;
    struct pc *pc = NULL;
    struct seq_state *s = NULL;
    struct buf block = { 0 }, text = { 0 };
    struct tok_ids ids = { 0 };
    int rc = EXIT_ERROR;
    if (tok_open(&t, tokpath) < 0 || ld_plan_build(&p, dir, t, &lo) < 0) {
        cli_fail();
        goto done;
    }
    long total = (long)p.ids.n;
    printf("%d files, %ld tokens%s; %d left out for the %ld-token budget, %d skipped\n", p.n_in,
           total, p.used_git ? " (ordered by git history)" : "", p.n_cand - p.n_in, budget,
           p.n - p.n_cand);
    if (list)
        for (int i = 0; i < p.n_in; i++)
            printf("  %7ld  %s\n", p.files[i].tokens, p.files[i].path);
    for (int i = p.n_in; i < p.n; i++)
        printf("  left out  %s (%s, %zu bytes)\n", p.files[i].path,
               p.files[i].why ? p.files[i].why : "over the budget", p.files[i].bytes);
    if (list || total == 0) {
        rc = EXIT_OK;
        goto done;
    }
    /* What is prefilled is the start of the agent's prompt with these files loaded (the
     * template's tools, then the files block: agent_context.c), so that a session loading the
     * same tree (`lode run --load`, /load) restores it from the cache. */
    if (ld_block(dir, &p, &block, NULL) < 0 || ld_agent_prefix(model, block.p, &text) < 0 ||
        tok_encode(t, text.p, text.len, 0, &ids) < 0) {
        cli_fail();
        goto done;
    }
    total = (long)ids.n;
    /* the directory-group marks, moved to where the files' tokens are in the prefix */
    long off = -1;
    for (long k = 0; k < 32 && off < 0; k++) {
        long o = total - (long)p.ids.n - k;
        if (o >= 0 && !memcmp(ids.v + o, p.ids.v, p.ids.n * sizeof *p.ids.v))
            off = o;
    }
    for (int i = 0; i < p.nmarks; i++)
        p.marks[i] = off >= 0 ? p.marks[i] + off : 0;
    if ((rc = engine_args_open(&ea, a, "load", &e)) != EXIT_OK)
        goto done;
    rc = EXIT_ERROR;
    const char *cpath = cfg_str(&a->cfg, CFG_CACHE_PATH), *cb = cfg_str(&a->cfg, CFG_CACHE_BUDGET);
    struct pc_opts po = { .path = dbpath            ? dbpath
                                  : cpath && *cpath ? cpath
                                                    : NULL,
                          .every = cfg_int(&a->cfg, CFG_CACHE_EVERY) };
    if (cb && *cb && pc_parse_size(cb, &po.budget) < 0) {
        fprintf(stderr, "lode load: cache.budget: expected a size like 20G, got '%s'\n", cb);
        goto done;
    }
    if (pc_open(&pc, e, &po) < 0 || eng_state_new(e, &s, total) < 0) {
        cli_fail();
        goto done;
    }
    struct sigaction sa = { .sa_handler = on_sigint }, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    struct progress pr = { .tty = isatty(2), .t0 = time_s() };
    struct pc_report r = { 0 };
    int prc = pc_prefill(pc, s, ids.v, total, 0, p.marks, p.nmarks, NULL, on_progress, &pr, &r);
    sigaction(SIGINT, &old, NULL);
    if (pr.tty)
        fprintf(stderr, "\n");
    if (prc < 0 && prc != ERR_INTERRUPTED) {
        cli_fail();
        goto done;
    }
    printf("loaded %ld of %ld tokens: %ld restored from the cache, %ld computed in %.1f s "
           "(%.0f tokens/s)%s\n",
           s->pos, total, r.reused, r.computed, r.prefill_s,
           r.prefill_s > 0 ? (double)r.computed / r.prefill_s : 0.0,
           r.failures ? " (cache errors survived: see the log)" : "");
    if (prc == ERR_INTERRUPTED) {
        fprintf(stderr, "lode: interrupted at token %ld of %ld (what was computed is cached)\n",
                s->pos, total);
        rc = 130;
    } else {
        rc = EXIT_OK;
    }
done:
    seq_free(s);
    pc_close(pc);
    eng_close(e);
    ld_plan_free(&p);
    tok_close(t);
    buf_free(&block);
    buf_free(&text);
    tok_ids_free(&ids);
    return rc;
}

const struct command cmd_load = {
    "load",
    run,
    "load a codebase into the model's context (and the prefix cache)",
    "usage: lode load [DIR] [--budget N] [--include GLOB]... [--exclude GLOB]... [--list]\n"
    "\n"
    "Walks DIR (default .), honouring .gitignore and .lodeignore and skipping binary,\n"
    "generated and huge files, orders the files so the least likely to change come first\n"
    "(fewest commits in git history, then oldest modification), renders each under a\n"
    "\"=== path ===\" header and stops at the token budget, listing what was left out. Then it\n"
    "prefills the result with a progress bar (Ctrl-C stops; what was computed stays cached).\n"
    "A second load of an unchanged tree restores from the prefix cache.\n",
    opts,
};
