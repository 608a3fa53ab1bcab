/* cmd_tokenize.c - `lode tokenize`: text on stdin to a JSON array of ids, or back with --decode. */
#include "app/commands.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/text.h"
#include "engine/tokenizer.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TOKENIZE_MAX_INPUT (1u << 30)

static const struct cli_opt opts[] = {
    { "tokenizer", 't', 1, "FILE", "tokenizer.json (default: <model>/tokenizer.json)" },
    { "decode", 'd', 0, NULL, "read a JSON array of ids, print the text" },
    { "no-added", 0, 0, NULL, "encode added-token strings as plain text" },
    { "skip-special", 0, 0, NULL, "with --decode: leave special tokens out" },
    { "stats", 0, 0, NULL, "print load and encode timings on stderr" },
    { 0 },
};

/* Parses a JSON array of ids from text; names the line:column of a bad one. */
static int parse_ids(const char *text, size_t n, struct tok_ids *ids)
{
    const char *end = NULL;
    cJSON *arr = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!arr) {
        int line, col;
        size_t off = end && end >= text && end <= text + n ? (size_t)(end - text) : 0;
        text_line_col(text, off, &line, &col);
        return err_set(ERR_INVAL, "stdin:%d:%d: malformed JSON", line, col);
    }
    int rc = 0;
    if (!cJSON_IsArray(arr))
        rc = err_set(ERR_INVAL, "stdin: expected a JSON array of token ids");
    const cJSON *e;
    size_t k = 0;
    cJSON_ArrayForEach(e, arr)
    {
        if (rc < 0)
            break;
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 2147483647.0 ||
            e->valuedouble != (double)(int32_t)e->valuedouble) {
            rc = err_set(ERR_INVAL, "stdin: element %zu is not a token id", k);
            break;
        }
        if (ids->n == ids->cap) {
            size_t nc = ids->cap ? ids->cap * 2 : 1024;
            int32_t *nv = realloc(ids->v, nc * sizeof *nv);
            if (!nv) {
                rc = err_set(ERR_NOMEM, "out of memory");
                break;
            }
            ids->v = nv;
            ids->cap = nc;
        }
        ids->v[ids->n++] = (int32_t)e->valuedouble;
        k++;
    }
    cJSON_Delete(arr);
    return rc;
}

static int run(struct app *a, int argc, char **argv)
{
    const char *path = NULL;
    int decode = 0, stats = 0;
    unsigned eflags = 0, dflags = 0;
    struct cli c;
    cli_init(&c, argc, argv);
    for (int o; (o = cli_next(&c, opts)) != CLI_END;) {
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS)
            return cli_usage_error("tokenize", "unexpected argument '%s'", c.arg);
        switch (o) {
        case 0: path = c.arg; break;
        case 1: decode = 1; break;
        case 2: eflags |= TOK_NO_ADDED; break;
        case 3: dflags |= TOK_SKIP_SPECIAL; break;
        case 4: stats = 1; break;
        }
    }
    char def[4096];
    if (!path) {
        const char *model = cfg_str(&a->cfg, CFG_MODEL);
        if (!model || !model[0])
            return cli_usage_error("tokenize", "no --tokenizer FILE (and no model configured)");
        if (fs_join(def, sizeof def, model, "tokenizer.json") < 0)
            return cli_fail();
        path = def;
    }

    double t0 = time_s();
    struct tok *t = NULL;
    if (tok_open(&t, path) < 0)
        return cli_fail();
    double t1 = time_s();

    struct buf in = { 0 }, out = { 0 };
    struct tok_ids ids = { 0 };
    int rc = fs_read_fd(0, TOKENIZE_MAX_INPUT, &in);
    if (rc < 0) {
        err_prefix(rc, "stdin");
        goto fail;
    }
    double t2 = time_s();
    if (decode) {
        if ((rc = parse_ids(in.p ? in.p : "", in.len, &ids)) < 0 ||
            (rc = tok_decode(t, ids.v, ids.n, dflags, &out)) < 0)
            goto fail;
    } else {
        if ((rc = tok_encode(t, in.p ? in.p : "", in.len, eflags, &ids)) < 0) {
            err_prefix(rc, "stdin");
            goto fail;
        }
        /* ids are non-negative; formatted by hand (printf was a sixth of the time) */
        rc = buf_reserve(&out, ids.n * 12 + 4);
        if (rc == 0)
            out.p[out.len++] = '[';
        for (size_t i = 0; i < ids.n && rc == 0; i++) {
            char tmp[12];
            int k = 0;
            uint32_t v = (uint32_t)ids.v[i];
            do
                tmp[k++] = (char)('0' + v % 10);
            while ((v /= 10) != 0);
            if (i) {
                out.p[out.len++] = ',';
                out.p[out.len++] = ' ';
            }
            while (k)
                out.p[out.len++] = tmp[--k];
        }
        if (rc == 0)
            out.p[out.len] = 0;
        if (rc == 0)
            rc = buf_puts(&out, "]\n");
        if (rc < 0)
            goto fail;
    }
    double t3 = time_s();
    if (out.len && fwrite(out.p, 1, out.len, stdout) != out.len) {
        rc = err_errno("stdout");
        goto fail;
    }
    if (stats)
        fprintf(stderr, "load %.1f ms, %s %.1f ms (%zu bytes, %zu ids)\n", (t1 - t0) * 1e3,
                decode ? "decode" : "encode", (t3 - t2) * 1e3, in.len, ids.n);
    buf_free(&in);
    buf_free(&out);
    tok_ids_free(&ids);
    tok_close(t);
    return EXIT_OK;
fail:
    buf_free(&in);
    buf_free(&out);
    tok_ids_free(&ids);
    tok_close(t);
    return cli_fail();
}

const struct command cmd_tokenize = {
    "tokenize",
    run,
    "turn text into token ids (or ids into text) with a tokenizer.json",
    "usage: lode tokenize [--tokenizer FILE] [--decode] < input\n"
    "\n"
    "Reads UTF-8 text on stdin and prints a JSON array of token ids, exactly as\n"
    "Hugging Face tokenizers encodes it without special-token templates: added-token\n"
    "strings in the text become their ids, nothing is prepended. With --decode, reads\n"
    "a JSON array of ids and prints the text. Invalid UTF-8, malformed JSON or an\n"
    "unknown id give one line on stderr and exit code 1.\n",
    opts,
};
