/*
 * bench_model.c - `lode bench --model DIR | --synthetic tiny|small`: prefill
 * and decode speed of the whole model on the CPU, with the weight-streaming
 * bandwidth decode achieves next to a memory-read bandwidth measured in the
 * same run (the limit decode cannot beat).
 *
 * Figures printed:
 *   prefill  tokens/s and GFLOP/s (2 x active weights x tokens)
 *   decode   tokens/s, the bytes of weights one token reads (dense layers,
 *            top-k experts on average, lm_head) x tokens/s = GB/s, and that
 *            divided by the measured read bandwidth.
 */
#include "app/bench.h"

#include "app/engine_opts.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/text.h"
#include "engine/mkmodel.h"
#include "kernels/kernels.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct cli_opt opts[] = {
    { "model", 'm', 1, "DIR", "checkpoint directory" },
    { "synthetic", 0, 1, "tiny|small|full-layers",
      "a generated checkpoint (cached under $XDG_CACHE_HOME/lode)" },
    { "prompt", 0, 1, "N", "prefill tokens (default 128)" },
    { "gen", 0, 1, "N", "decoded tokens (default 32)" },
    { "profile", 0, 0, NULL,
      "time and bytes per op class of the decode steps, on stderr (same as LODE_PROFILE=1)" },
    ENGINE_CLI_OPTS,
    { 0 },
};

/* Weights multiplied per token (dense layers, top-k + shared experts, lm_head). */
static double active_weights(const struct mcfg *c)
{
    double H = (double)c->hidden, w = 0;
    for (int64_t l = 0; l < c->n_layers; l++) {
        if (c->layer_type[l] == MCFG_FULL_ATTN)
            w += (double)mcfg_q_out(c) * H + 2.0 * (double)mcfg_kv_out(c) * H +
                 H * (double)(c->n_heads * c->head_dim);
        else
            w += (double)(mcfg_conv_dim(c) + mcfg_lin_val_dim(c) + 2 * c->lin_v_heads) * H +
                 H * (double)mcfg_lin_val_dim(c);
        w += (double)c->n_experts * H + 3.0 * (double)c->top_k * (double)c->moe_inter * H +
             3.0 * (double)c->shared_inter * H + H;
    }
    return w + (double)c->vocab * H;
}

static int synthetic_dir(const char *preset, char *out, size_t cap)
{
    char base[PATH_MAX], name[64];
    int rc = fs_xdg_dir(FS_XDG_CACHE, base, sizeof base);
    if (rc < 0)
        return rc;
    snprintf(name, sizeof name, "synthetic/%s-mixed-seed1", preset);
    if ((rc = fs_join(out, cap, base, name)) < 0)
        return rc;
    char cfgp[PATH_MAX + 16];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", out);
    if (fs_exists(cfgp))
        return 0;
    fprintf(stderr, "lode: writing the %s synthetic checkpoint to %s (once)\n", preset, out);
    struct mk_opts mo = {
        .out = out,
        .preset = MK_TINY, /* mk_synthetic below: the name's preset and layers */
        .mixed = 1,
        .text_layout = 0,
        .seed = 1,
        .tokenizer = NULL,
        .shards = 1,
    };
    if (mk_synthetic(preset, &mo) < 0)
        return -1;
    return mk_write(&mo);
}

int bench_model_run(struct app *a, int argc, char **argv)
{
    const char *synth = NULL;
    long nprompt = 128, ngen = 32;
    struct engine_args ea;
    engine_args_init(&ea, a);
    struct cli c;
    cli_init(&c, argc, argv);
    c.usage = "usage: lode bench [--model DIR | --synthetic tiny|small] [--prompt N] [--gen N] "
              "[--profile]\n";
    for (int o; (o = cli_next(&c, opts)) != CLI_END;) {
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS)
            return cli_usage_error("bench", "unexpected argument '%s'", c.arg);
        const char *name = opts[o].name;
        if (!strcmp(name, "synthetic")) {
            if (mk_synthetic(c.arg, NULL) < 0)
                return cli_usage_error("bench", "--synthetic: tiny, small or full-layers on the "
                                                "CPU (full is "
                                                "~28 GB: write it with lode mkmodel and use "
                                                "--model)");
            synth = c.arg;
        } else if (!strcmp(name, "profile")) {
            /* read by eng_open; the table is printed when the engine closes */
            setenv("LODE_PROFILE", "1", 1);
        } else if (!strcmp(name, "prompt") || !strcmp(name, "gen")) {
            char *end;
            long v = strtol(c.arg, &end, 10);
            if (*end || v < 1 || v > 1 << 20)
                return cli_usage_error("bench", "--%s: expected 1..1048576", name);
            *(!strcmp(name, "prompt") ? &nprompt : &ngen) = v;
        } else if (engine_args_opt(&ea, a, "bench", name, c.arg) != EXIT_OK)
            return EXIT_USAGE;
    }
    char sdir[PATH_MAX];
    if (synth) {
        if (synthetic_dir(synth, sdir, sizeof sdir) < 0)
            return cli_fail();
        ea.model = sdir;
    }
    struct eng *e;
    int rc = engine_args_open(&ea, a, "bench", &e);
    if (rc != EXIT_OK)
        return rc;
    const struct mcfg *mc = eng_cfg(e);
    struct ckpt_stats st;
    ckpt_stats(eng_ckpt(e), &st);
    long V = eng_vocab(e);
    int32_t *tok = malloc((size_t)(nprompt + ngen) * sizeof *tok);
    double *tend = malloc((size_t)ngen * sizeof *tend);
    float *lg = malloc((size_t)V * sizeof(float));
    struct seq_state *s = NULL;
    rc = EXIT_ERROR;
    if (!tok || !lg || !tend || eng_state_new(e, &s, nprompt + ngen) < 0) {
        if (!tok || !lg || !tend)
            err_set(ERR_NOMEM, "out of memory");
        cli_fail();
        goto done;
    }
    uint64_t r = 0x243f6a8885a308d3ull;
    for (long i = 0; i < nprompt; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)((r >> 33) % (uint64_t)V);
    }
    double bw = kern_mem_bandwidth(ea.o.threads, ea.o.isa);
    double t0 = time_s();
    if (eng_forward(e, s, tok, nprompt, lg, 0) < 0) {
        cli_fail();
        goto done;
    }
    double t_pre = time_s() - t0;
    /* decode: greedy, one token at a time; tend[i] = when token i was done */
    t0 = time_s();
    for (long i = 0; i < ngen; i++) {
        int32_t next = (int32_t)kern_argmax(lg, V);
        if (eng_forward(e, s, &next, 1, lg, 0) < 0) {
            cli_fail();
            goto done;
        }
        tend[i] = time_s();
    }
    double t_dec = time_s() - t0;
    /* the fastest stretch of ngen / 8 tokens: on a shared machine the neighbours' load comes and
     * goes within a run, and this shows what decode does while it is away */
    long win = ngen / 8;
    double best = 0;
    for (long i = win; win >= 2 && i < ngen; i++)
        if (best == 0 || tend[i] - tend[i - win] < best)
            best = tend[i] - tend[i - win];
    double aw = active_weights(mc), pre_tps = nprompt / t_pre, dec_tps = ngen / t_dec;
    double dec_gbs = (double)st.per_token_bytes * dec_tps / 1e9;
    printf("model         %s (%s, %lld layers, hidden %lld, %lld experts top-%lld)\n",
           synth      ? synth
           : ea.model ? ea.model
                      : cfg_str(&a->cfg, CFG_MODEL),
           mc->arch, (long long)mc->n_layers, (long long)mc->hidden, (long long)mc->n_experts,
           (long long)mc->top_k);
    printf("cpu           %d threads, %s kernels\n",
           ea.o.threads > 0 ? ea.o.threads : (int)sysconf(_SC_NPROCESSORS_ONLN),
           kern_isa_name(ea.o.isa == KERN_ISA_AUTO ? kern_isa_best() : ea.o.isa));
    printf("memory read   %.1f GB/s (streaming read measured now, same threads)\n", bw);
    printf("prefill       %ld tokens in %.3f s: %.1f tok/s, %.1f GFLOP/s\n", nprompt, t_pre,
           pre_tps, 2.0 * aw * pre_tps / 1e9);
    printf("decode        %ld tokens in %.3f s: %.2f tok/s, %.1f ms/token\n", ngen, t_dec, dec_tps,
           1e3 / dec_tps);
    printf("weights/token %.1f MB -> %.1f GB/s = %.2f of the read bandwidth\n",
           (double)st.per_token_bytes / 1e6, dec_gbs, bw > 0 ? dec_gbs / bw : 0);
    if (best > 0) {
        double w_gbs = (double)st.per_token_bytes * (double)win / best / 1e9;
        /* no ratio here: a short stretch can read weights still in the last-level cache, and
         * the claim is the whole run's line above */
        printf("fastest       %ld-token stretch: %.2f tok/s -> %.1f GB/s (the figures above are "
               "the whole run)\n",
               win, (double)win / best, w_gbs);
    }
    fflush(stdout); /* before the --profile table eng_close prints on stderr */
    rc = EXIT_OK;
done:
    seq_free(s);
    free(tok);
    free(tend);
    free(lg);
    eng_close(e);
    return rc;
}

static const struct cli_opt kopts[] = {
    { "only", 0, 1, "LIST",
      "sections: mem, matvec, gemm, attn, gdn (comma-separated; default all)" },
    { "threads", 0, 1, "N", "CPU threads (default: config key threads, 0 = all cores)" },
    { 0 },
};

int bench_kernels_run(struct app *a, int argc, char **argv)
{
    const char *which = "all";
    int threads = (int)cfg_int(&a->cfg, CFG_THREADS);
    struct cli c;
    cli_init(&c, argc, argv);
    c.usage = "usage: lode bench kernels [--only LIST] [--threads N]\n";
    for (int o; (o = cli_next(&c, kopts)) != CLI_END;) {
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS)
            return cli_usage_error("bench", "unexpected argument '%s'", c.arg);
        if (o == 0)
            which = c.arg;
        else if (cli_cfg_flag(a, "bench", "threads", "threads", c.arg) != EXIT_OK)
            return EXIT_USAGE;
        else
            threads = (int)cfg_int(&a->cfg, CFG_THREADS);
    }
    if (kern_bench_run(which, threads, stdout) < 0)
        return cli_fail();
    return EXIT_OK;
}
