/* cmd_template.c - `lode template`: render a chat template with a conversation, print the prompt.
 */
#include "app/commands.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "engine/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cli_opt opts[] = {
    { "template", 't', 1, "FILE", "chat template (Jinja); default: the built-in Qwen3.6 one" },
    { "messages", 'm', 1, "FILE", "JSON array of messages, or an object with messages and tools" },
    { "tools", 0, 1, "FILE", "JSON array of tools (overrides tools in --messages)" },
    { "thinking", 0, 1, "on|off", "set enable_thinking (unset by default)" },
    { "preserve-thinking", 0, 0, NULL, "set preserve_thinking to true" },
    { "generation-prompt", 0, 0, NULL, "set add_generation_prompt to true" },
    { 0 },
};

#define TPL_MAX_INPUT ((size_t)256 << 20)

/* Errors inside the template read "template:L:C: ..."; name the file instead. */
static void name_template(int rc, const char *path)
{
    const char *m = err_msg();
    if (strncmp(m, "template:", 9) != 0)
        return;
    char *copy = strdup(m + 8); /* err_set reuses the message buffer */
    if (copy) {
        err_set(rc, "%s%s", path, copy);
        free(copy);
    }
}

static int run(struct app *a, int argc, char **argv)
{
    (void)a;
    const char *tpath = NULL, *mpath = NULL, *tools_path = NULL;
    struct tpl_opts o = { 0 };
    struct cli c;
    cli_init(&c, argc, argv);
    for (int op; (op = cli_next(&c, opts)) != CLI_END;) {
        if (op == CLI_EXIT)
            return c.exit;
        if (op == CLI_POS)
            return cli_usage_error("template", "unexpected argument '%s'", c.arg);
        switch (op) {
        case 0: tpath = c.arg; break;
        case 1: mpath = c.arg; break;
        case 2: tools_path = c.arg; break;
        case 3:
            if (!strcmp(c.arg, "on"))
                o.enable_thinking = TPL_TRUE;
            else if (!strcmp(c.arg, "off"))
                o.enable_thinking = TPL_FALSE;
            else
                return cli_usage_error("template", "--thinking: expected on or off, got '%s'",
                                       c.arg);
            break;
        case 4: o.preserve_thinking = TPL_TRUE; break;
        case 5: o.add_generation_prompt = 1; break;
        }
    }
    if (!mpath)
        return cli_usage_error("template", "--messages FILE is required");
    struct buf tb = { 0 }, mb = { 0 }, xb = { 0 };
    struct tpl *t = NULL;
    char *out = NULL;
    size_t len = 0;
    int rc;
    if (tpath) {
        if ((rc = fs_read_file(tpath, TPL_MAX_INPUT, &tb)) < 0)
            goto fail;
        if ((rc = tpl_open(&t, tb.p ? tb.p : "", tb.len)) < 0) {
            name_template(rc, tpath);
            goto fail;
        }
    } else if ((rc = tpl_open_builtin(&t)) < 0)
        goto fail;
    if ((rc = fs_read_file(mpath, TPL_MAX_INPUT, &mb)) < 0)
        goto fail;
    if (tools_path && (rc = fs_read_file(tools_path, TPL_MAX_INPUT, &xb)) < 0)
        goto fail;
    rc = tpl_render_json(t, mb.p ? mb.p : "", mb.len, mpath, tools_path ? (xb.p ? xb.p : "") : NULL,
                         xb.len, tools_path, &o, &out, &len);
    if (rc < 0) {
        if (tpath)
            name_template(rc, tpath);
        goto fail;
    }
    if (fwrite(out, 1, len, stdout) != len || fflush(stdout) != 0) {
        rc = err_errno("writing the prompt");
        goto fail;
    }
    free(out);
    tpl_close(t);
    buf_free(&tb), buf_free(&mb), buf_free(&xb);
    return EXIT_OK;
fail:
    free(out);
    tpl_close(t);
    buf_free(&tb), buf_free(&mb), buf_free(&xb);
    return cli_fail();
}

const struct command cmd_template = {
    "template",
    run,
    "render a chat template with a conversation (prints the prompt)",
    "usage: lode template [--template FILE] --messages FILE [--tools FILE] [--thinking on|off]\n"
    "                     [--preserve-thinking] [--generation-prompt]\n"
    "\n"
    "Prints exactly the rendered prompt, as transformers' apply_chat_template renders it.\n"
    "Errors name the place (file:line:col) and exit 1.\n",
    opts,
};
