/* cmd_toolcalls.c - `lode toolcalls`: parse raw model output (stdin) into reasoning, content
 * and tool calls with the same parser the agent uses (tools/toolcall.h). */
#include "app/commands.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "tools/toolcall.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TC_CLI_MAX_INPUT (256u << 20)
#define TC_CLI_MAX_TOOLS (16u << 20)

static const struct cli_opt opts[] = {
    { "tools", 't', 1, "FILE", "tool list (OpenAI JSON array); without it every name is accepted" },
    { "thinking", 0, 0, NULL,
      "the output starts inside reasoning (default: when it has </think>)" },
    { "no-thinking", 0, 0, NULL, "the output starts as content" },
    { "chunk", 0, 1, "N", "feed the parser N bytes at a time (default: all at once)" },
    { "events", 0, 0, NULL,
      "print the streaming events, one JSON object a line, before the result" },
    { 0 },
};

static void print_event(void *ud, const struct tc_event *ev)
{
    static const char *const kinds[] = { "reasoning",  "content", "reasoning_to_content",
                                         "call_begin", "arg",     "call_end",
                                         "error" };
    struct buf *b = ud;
    buf_printf(b, "{\"event\": \"%s\", \"index\": %d", kinds[ev->kind], ev->index);
    if (ev->name) {
        buf_puts(b, ", \"name\": ");
        buf_json_str(b, ev->name, strlen(ev->name));
    }
    if (ev->arg) {
        buf_puts(b, ", \"arg\": ");
        buf_json_str(b, ev->arg, strlen(ev->arg));
    }
    if (ev->text) {
        struct buf fixed = { 0 };
        tc_utf8_fix(&fixed, ev->text, ev->len);
        buf_puts(b, ", \"text\": ");
        buf_json_str(b, fixed.p ? fixed.p : "", fixed.len);
        buf_free(&fixed);
    }
    if (ev->value) {
        char *v = cJSON_PrintUnformatted(ev->value);
        if (v)
            buf_printf(b, ", \"value\": %s", v);
        free(v);
    }
    buf_puts(b, "}\n");
}

static int run(struct app *a, int argc, char **argv)
{
    const char *tools_path = NULL;
    int thinking = -1, events = 0;
    size_t chunk = 0;
    struct cli c;
    cli_init(&c, argc, argv);
    for (int o; (o = cli_next(&c, opts)) != CLI_END;) {
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS)
            return cli_usage_error("toolcalls",
                                   "unexpected argument '%s' (the output is read "
                                   "from stdin)",
                                   c.arg);
        switch (o) {
        case 0: tools_path = c.arg; break;
        case 1: thinking = 1; break;
        case 2: thinking = 0; break;
        case 3: {
            char *end;
            long long v = strtoll(c.arg, &end, 10);
            if (*end || v < 1 || v > (1 << 30))
                return cli_usage_error("toolcalls",
                                       "--chunk: expected a positive number of "
                                       "bytes, got '%s'",
                                       c.arg);
            chunk = (size_t)v;
            break;
        }
        case 4: events = 1; break;
        }
    }

    struct tc_tools *tools = NULL;
    struct tc_parser *p = NULL;
    struct buf in = { 0 }, out = { 0 }, ev = { 0 };
    int rc = EXIT_ERROR;
    if (tools_path) {
        struct buf tf = { 0 };
        int r = fs_read_file(tools_path, TC_CLI_MAX_TOOLS, &tf);
        if (r == 0)
            r = tc_tools_parse(&tools, tf.p ? tf.p : "", tf.len, tools_path);
        buf_free(&tf);
        if (r < 0)
            goto done;
    }
    if (fs_read_fd(STDIN_FILENO, TC_CLI_MAX_INPUT, &in) < 0) {
        err_prefix(ERR_IO, "stdin");
        goto done;
    }
    struct tc_opts o;
    tc_opts_default(&o);
    o.starts_in_reasoning =
        thinking >= 0 ? thinking : in.len && memmem(in.p, in.len, "</think>", 8) != NULL;
    if (tc_new(&p, tools, &o, events ? print_event : NULL, &ev) < 0)
        goto done;
    size_t step = chunk ? chunk : (in.len ? in.len : 1);
    for (size_t off = 0; off < in.len; off += step) {
        size_t n = in.len - off < step ? in.len - off : step;
        if (tc_feed(p, in.p + off, n) < 0)
            goto done;
    }
    if (tc_finish(p) < 0 || tc_result_json(tc_result(p), &out) < 0 || buf_putc(&out, '\n') < 0)
        goto done;
    if (ev.len)
        fwrite(ev.p, 1, ev.len, stdout);
    fwrite(out.p, 1, out.len, stdout);
    rc = EXIT_OK;
done:
    if (rc != EXIT_OK)
        cli_fail();
    tc_free(p);
    tc_tools_free(tools);
    buf_free(&in);
    buf_free(&out);
    buf_free(&ev);
    return rc;
}

const struct command cmd_toolcalls = {
    "toolcalls",
    run,
    "parse raw model output (stdin) into reasoning, content and tool calls",
    "usage: lode toolcalls [--tools FILE] [--thinking|--no-thinking] [--chunk N] [--events]\n"
    "\n"
    "Reads the model's raw output on stdin and prints one JSON object:\n"
    "  {\"reasoning\": ..., \"content\": ..., \"tool_calls\": [{\"name\": ..., \"arguments\": "
    "{...}}],\n"
    "   \"errors\": [{\"name\": ..., \"message\": ...}]}   (errors: rejected calls, if any)\n"
    "Values are converted by each tool's JSON schema from --tools; unknown tools are errors.\n"
    "Exit status 1 when the tools file is unreadable or malformed.\n",
    opts,
};
