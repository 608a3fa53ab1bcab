/* cmd_logits.c - `lode logits`: the model's raw output for given token ids. */
#include "app/commands.h"
#include "app/engine_opts.h"
#include "common/buf.h"
#include "common/err.h"
#include "engine/model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cli_opt opts[] = {
    { "model", 'm', 1, "DIR", "checkpoint directory (default: config key model)" },
    { "tokens", 't', 1, "1,2,3", "comma-separated token ids" },
    { "all", 'a', 0, NULL, "logits of every position, not only the last" },
    { "out", 'o', 1, "FILE", "write raw little-endian float32 instead of JSON" },
    ENGINE_CLI_OPTS,
    { 0 },
};

static int parse_ids(const char *s, int32_t **out, long *n)
{
    long cap = 16;
    *n = 0;
    *out = malloc((size_t)cap * sizeof **out);
    if (!*out)
        return err_set(ERR_NOMEM, "out of memory");
    while (*s) {
        errno = 0;
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX || (*end && *end != ','))
            return err_set(ERR_INVAL, "--tokens: '%s' is not a list of ids", s);
        if (*n == cap) {
            int32_t *p = realloc(*out, (size_t)(cap *= 2) * sizeof **out);
            if (!p)
                return err_set(ERR_NOMEM, "out of memory");
            *out = p;
        }
        (*out)[(*n)++] = (int32_t)v;
        s = *end ? end + 1 : end;
    }
    if (*n == 0)
        return err_set(ERR_INVAL, "--tokens: no ids");
    return 0;
}

static int run(struct app *a, int argc, char **argv)
{
    const char *tokens = NULL, *outpath = NULL;
    int all = 0;
    struct engine_args ea;
    engine_args_init(&ea, a);
    struct cli c;
    cli_init(&c, argc, argv);
    for (int o; (o = cli_next(&c, opts)) != CLI_END;) {
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS)
            return cli_usage_error("logits", "unexpected argument '%s'", c.arg);
        const char *name = opts[o].name;
        if (!strcmp(name, "tokens"))
            tokens = c.arg;
        else if (!strcmp(name, "all"))
            all = 1;
        else if (!strcmp(name, "out"))
            outpath = c.arg;
        else if (engine_args_opt(&ea, a, "logits", name, c.arg) != EXIT_OK)
            return EXIT_USAGE;
    }
    if (!tokens)
        return cli_usage_error("logits", "--tokens is required");
    int32_t *ids = NULL;
    long n = 0;
    if (parse_ids(tokens, &ids, &n) < 0) {
        free(ids);
        return cli_usage_error("logits", "%s", err_msg());
    }
    struct eng *e = NULL;
    struct seq_state *s = NULL;
    float *lg = NULL;
    int rc = engine_args_open(&ea, a, "logits", &e);
    if (rc != EXIT_OK)
        goto done;
    long V = eng_vocab(e), rows = all ? n : 1;
    rc = EXIT_ERROR;
    if (!(lg = malloc((size_t)rows * (size_t)V * sizeof(float)))) {
        err_set(ERR_NOMEM, "out of memory for %ld x %ld logits", rows, V);
        cli_fail();
        goto done;
    }
    if (eng_state_new(e, &s, n) < 0 || eng_forward(e, s, ids, n, lg, all) < 0) {
        cli_fail();
        goto done;
    }
    if (outpath) {
        FILE *f = fopen(outpath, "wb");
        if (!f || fwrite(lg, sizeof(float), (size_t)(rows * V), f) != (size_t)(rows * V) ||
            fclose(f) != 0) {
            err_errno("%s", outpath);
            cli_fail();
            goto done;
        }
    } else {
        struct buf b = { 0 };
        buf_puts(&b, all ? "[" : "");
        for (long r = 0; r < rows; r++) {
            buf_puts(&b, r ? ",\n[" : "[");
            for (long i = 0; i < V; i++)
                buf_printf(&b, i ? ",%.9g" : "%.9g", lg[r * V + i]);
            buf_puts(&b, "]");
        }
        buf_puts(&b, all ? "]\n" : "\n");
        fwrite(b.p, 1, b.len, stdout);
        buf_free(&b);
    }
    rc = EXIT_OK;
done:
    free(lg);
    free(ids);
    seq_free(s);
    eng_close(e);
    return rc;
}

const struct command cmd_logits = {
    "logits",
    run,
    "print the model's logits for a list of token ids",
    "usage: lode logits [--model DIR] --tokens 1,2,3 [--all] [--out FILE]\n"
    "\n"
    "Runs the forward pass over the ids and prints the logits of the last position as a JSON\n"
    "array (every position with --all: an array of arrays), or writes them as raw little-endian\n"
    "float32 [rows][vocab] to FILE.\n",
    opts,
};
