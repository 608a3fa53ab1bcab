/*
 * cmd_generate.c - `lode generate`: stream a completion of a prompt.
 *
 * Sampling defaults come from the checkpoint's generation_config.json, then
 * --preset, then the individual flags. Generation stops at <|im_end|>,
 * <|endoftext|> or any eos id of the checkpoint, or after --max-tokens.
 */
#include "app/chat.h"
#include "app/commands.h"
#include "app/engine_opts.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/text.h"
#include "engine/sample.h"
#include "engine/tokenizer.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct cli_opt opts[] = {
    { "model", 'm', 1, "DIR", "checkpoint directory (default: config key model)" },
    { "prompt", 'p', 1, "TEXT", "the prompt (default: read stdin)" },
    { "chat", 0, 0, NULL, "wrap the prompt as a user turn with the chat template" },
    { "thinking", 0, 1, "on|off", "with --chat: thinking mode (default: config key thinking)" },
    { "max-tokens", 'n', 1, "N", "stop after N generated tokens (default 512)" },
    { "seed", 's', 1, "N", "sampling seed (default 0)" },
    { "preset", 0, 1, "NAME", "thinking, non-thinking or greedy" },
    { "temperature", 0, 1, "X", "sampling temperature (0 = greedy)" },
    { "top-p", 0, 1, "X", "nucleus sampling mass" },
    { "top-k", 0, 1, "N", "keep the N most likely tokens (0 = off)" },
    { "min-p", 0, 1, "X", "drop tokens below X times the top probability" },
    { "presence-penalty", 0, 1, "X", "subtract X from tokens already in the context" },
    { "repetition-penalty", 0, 1, "X",
      "divide (multiply) positive (negative) logits of seen tokens" },
    { "tokenizer", 0, 1, "FILE", "tokenizer.json (default: the model directory's)" },
    { "stats", 0, 0, NULL, "print token counts and speeds on stderr" },
    ENGINE_CLI_OPTS,
    { 0 },
};

static int parse_num(const char *cmd, const char *flag, const char *s, double lo, double hi,
                     double *out)
{
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= lo && v <= hi))
        return cli_usage_error(cmd, "--%s: expected a number in %g..%g, got '%s'", flag, lo, hi, s);
    *out = v;
    return EXIT_OK;
}

static int32_t find_tok(struct tok *t, const char *s) { return tok_find(t, s, strlen(s)); }

static int run(struct app *a, int argc, char **argv)
{
    const char *prompt = NULL, *tokpath = NULL;
    int chat = 0, stats = 0, thinking = cfg_bool(&a->cfg, CFG_THINKING);
    double max_tokens = 512, seed = 0, v;
    struct engine_args ea;
    engine_args_init(&ea, a);
    /* flags are applied after the defaults are known: remember them */
    const char *preset = NULL, *samp_flag[6] = { 0 };
    static const char *samp_names[6] = {
        "temperature", "top-p", "top-k", "min-p", "presence-penalty", "repetition-penalty"
    };
    struct cli c;
    cli_init(&c, argc, argv);
    for (int o; (o = cli_next(&c, opts)) != CLI_END;) {
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS)
            return cli_usage_error("generate", "unexpected argument '%s' (use -p)", c.arg);
        const char *name = opts[o].name;
        int rc = EXIT_OK, k;
        if (!strcmp(name, "prompt"))
            prompt = c.arg;
        else if (!strcmp(name, "chat"))
            chat = 1;
        else if (!strcmp(name, "stats"))
            stats = 1;
        else if (!strcmp(name, "tokenizer"))
            tokpath = c.arg;
        else if (!strcmp(name, "thinking")) {
            if (strcmp(c.arg, "on") && strcmp(c.arg, "off"))
                return cli_usage_error("generate", "--thinking: expected on or off");
            thinking = !strcmp(c.arg, "on");
        } else if (!strcmp(name, "max-tokens"))
            rc = parse_num("generate", name, c.arg, 0, 1 << 24, &max_tokens);
        else if (!strcmp(name, "seed"))
            rc = parse_num("generate", name, c.arg, 0, 9007199254740992.0, &seed);
        else if (!strcmp(name, "preset")) {
            if (samp_preset_parse(c.arg) < 0)
                return cli_usage_error("generate",
                                       "--preset: expected thinking, non-thinking or greedy");
            preset = c.arg;
        } else {
            for (k = 0; k < 6 && strcmp(name, samp_names[k]); k++)
                ;
            if (k < 6)
                samp_flag[k] = c.arg;
            else
                rc = engine_args_opt(&ea, a, "generate", name, c.arg);
        }
        if (rc != EXIT_OK)
            return EXIT_USAGE;
    }

    struct buf text = { 0 }, out = { 0 };
    struct eng *e = NULL;
    struct tok *t = NULL;
    struct seq_state *s = NULL;
    struct sampler *sm = NULL;
    struct tok_ids ids = { 0 };
    float *lg = NULL;
    int rc = EXIT_ERROR;
    if (prompt)
        buf_puts(&text, prompt);
    else if (fs_read_fd(0, 64u << 20, &text) < 0) {
        cli_fail();
        goto done;
    }
    if ((rc = engine_args_open(&ea, a, "generate", &e)) != EXIT_OK)
        goto done;
    rc = EXIT_ERROR;
    char tp[PATH_MAX];
    const char *dir = ea.model ? ea.model : cfg_str(&a->cfg, CFG_MODEL);
    if (!tokpath && fs_join(tp, sizeof tp, dir, "tokenizer.json") == 0)
        tokpath = tp;
    if (tok_open(&t, tokpath) < 0) {
        cli_fail();
        goto done;
    }
    if (chat) {
        struct buf rendered = { 0 };
        if (chat_render_user(dir, text.p ? text.p : "", thinking, &rendered) < 0) {
            buf_free(&rendered);
            cli_fail();
            goto done;
        }
        buf_free(&text);
        text = rendered;
    }
    if (tok_encode(t, text.p ? text.p : "", text.len, 0, &ids) < 0 || ids.n == 0) {
        if (ids.n == 0 && !err_msg()[0])
            err_set(ERR_INVAL, "empty prompt");
        cli_fail();
        goto done;
    }
    /* sampling: generation_config.json, then --preset, then flags */
    const struct mcfg *mc = eng_cfg(e);
    struct samp_params sp = samp_preset(thinking ? SAMP_THINKING : SAMP_NON_THINKING);
    if (mc->have_gen && !preset) {
        sp.temperature = mc->do_sample ? (float)mc->temperature : 0.0f;
        sp.top_p = mc->top_p > 0 && mc->top_p <= 1 ? (float)mc->top_p : 1.0f;
        sp.top_k = (int)mc->gen_top_k;
    }
    if (preset)
        sp = samp_preset(samp_preset_parse(preset));
    double lims[6][2] = {
        { 0, 100 }, { 1e-9, 1 }, { 0, 1e9 }, { 0, 1 }, { -10, 10 }, { 1e-9, 10 }
    };
    for (int k = 0; k < 6; k++) {
        if (!samp_flag[k])
            continue;
        if (parse_num("generate", samp_names[k], samp_flag[k], lims[k][0], lims[k][1], &v) !=
            EXIT_OK) {
            rc = EXIT_USAGE;
            goto done;
        }
        float f = (float)v;
        if (k == 0)
            sp.temperature = f;
        else if (k == 1)
            sp.top_p = f;
        else if (k == 2)
            sp.top_k = (int)v;
        else if (k == 3)
            sp.min_p = f;
        else if (k == 4)
            sp.presence_penalty = f;
        else
            sp.repetition_penalty = f;
    }
    sp.seed = (uint64_t)seed;
    long V = eng_vocab(e);
    int32_t nvalid = tok_n_ids(t) < V ? tok_n_ids(t) : (int32_t)V;
    if (samp_new(&sm, &sp, nvalid) < 0) {
        cli_fail();
        goto done;
    }
    for (size_t i = 0; i < ids.n; i++)
        samp_accept(sm, ids.v[i]);
    /* stop ids: the chat end markers and every eos of the checkpoint */
    int32_t stop[2 + MCFG_MAX_EOS];
    int nstop = 0;
    const char *markers[2] = { "<|im_end|>", "<|endoftext|>" };
    for (int k = 0; k < 2; k++)
        if ((stop[nstop] = find_tok(t, markers[k])) >= 0)
            nstop++;
    for (int k = 0; k < mc->n_eos; k++)
        stop[nstop++] = (int32_t)mc->eos[k];
    if (!(lg = malloc((size_t)V * sizeof(float))) || eng_state_new(e, &s, (long)ids.n + 64) < 0) {
        if (!lg)
            err_set(ERR_NOMEM, "out of memory");
        cli_fail();
        goto done;
    }
    double t0 = time_s();
    if (eng_forward(e, s, ids.v, (long)ids.n, lg, 0) < 0) {
        cli_fail();
        goto done;
    }
    double t1 = time_s();
    struct tok_stream st;
    tok_stream_init(&st);
    long ngen = 0;
    while (ngen < (long)max_tokens) {
        int32_t next = samp_sample(sm, lg, (int32_t)V);
        int is_stop = 0;
        for (int k = 0; k < nstop; k++)
            is_stop |= next == stop[k];
        if (is_stop)
            break;
        ngen++;
        samp_accept(sm, next);
        buf_reset(&out);
        if (tok_stream_feed(t, &st, next, 0, &out) < 0) {
            cli_fail();
            goto done;
        }
        fwrite(out.p ? out.p : "", 1, out.len, stdout);
        fflush(stdout);
        if (ngen == (long)max_tokens)
            break;
        if (eng_forward(e, s, &next, 1, lg, 0) < 0) {
            cli_fail();
            goto done;
        }
    }
    buf_reset(&out);
    tok_stream_flush(&st, &out);
    fwrite(out.p ? out.p : "", 1, out.len, stdout);
    if (isatty(1))
        fputc('\n', stdout);
    double t2 = time_s();
    if (stats)
        fprintf(stderr,
                "lode: prompt %zu tokens in %.2f s (%.1f tok/s), generated %ld tokens in %.2f s "
                "(%.1f tok/s)\n",
                ids.n, t1 - t0, ids.n / (t1 - t0 + 1e-9), ngen, t2 - t1, ngen / (t2 - t1 + 1e-9));
    rc = EXIT_OK;
done:
    free(lg);
    tok_ids_free(&ids);
    samp_free(sm);
    seq_free(s);
    tok_close(t);
    eng_close(e);
    buf_free(&text);
    buf_free(&out);
    return rc;
}

const struct command cmd_generate = {
    "generate",
    run,
    "stream a completion of a prompt",
    "usage: lode generate [--model DIR] [-p TEXT] [--chat] [--thinking on|off] [--max-tokens N]\n"
    "                     [--seed N] [--preset thinking|non-thinking|greedy] [--temperature X "
    "...]\n"
    "\n"
    "Tokenizes the prompt (stdin when -p is absent), runs it through the model and streams the\n"
    "sampled continuation to stdout. --chat renders the prompt as one user turn with the chat\n"
    "template (the checkpoint's, or lode's built-in one) and the generation prompt.\n"
    "Presets (model card): thinking 0.6/0.95/20/0, non-thinking 0.7/0.8/20/0 as temperature /\n"
    "top-p / top-k / min-p; defaults come from the checkpoint's generation_config.json.\n",
    opts,
};
