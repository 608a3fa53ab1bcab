/*
 * cmd_tool.c - `lode tool`: runs one agent tool exactly as the agent will
 * (same registry, same path policy, same sandbox, same configuration) and
 * prints its result, prints the tools' JSON schemas (--schemas), or prints
 * what the approval mode and the tools.allow/tools.deny rules decide for a
 * call without running it (--approval MODE).
 */
#include "app/commands.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "tools/approval.h"
#include "tools/registry.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cli_opt opts[] = {
    { "args", 'a', 1, "JSON", "the tool's arguments, a JSON object (default {})" },
    { "workspace", 'w', 1, "DIR", "workspace (default: the project root of the current dir)" },
    { "approve", 0, 0, NULL, "approve run_shell below sandbox level L3" },
    { "schemas", 0, 0, NULL, "print the tools array shown to the model and exit" },
    { "approval", 0, 1, "MODE",
      "print the verdict (allow, ask, deny) of MODE (plan, default, auto-edit, yolo, or config) "
      "and the tools.allow/tools.deny rules for the call, without running it" },
    { 0 },
};
enum { O_ARGS, O_WS, O_APPROVE, O_SCHEMAS, O_APPROVAL };

/* --approval: the verdict the agent would reach for this call. */
static int print_verdict(struct app *a, const char *mode_s, const char *name, const cJSON *args)
{
    int mode = strcmp(mode_s, "config") ? appr_mode_parse(mode_s)
                                        : appr_mode_parse(cfg_str(&a->cfg, CFG_APPROVAL));
    if (mode < 0)
        return cli_usage_error("tool",
                               "--approval: '%s' is not one of plan, default, auto-edit, "
                               "yolo, config",
                               mode_s);
    struct appr_rules *rules = NULL;
    if (appr_rules_new(&rules, cfg_str(&a->cfg, CFG_TOOLS_ALLOW),
                       cfg_str(&a->cfg, CFG_TOOLS_DENY)) < 0) {
        fprintf(stderr, "lode tool: %s\n", err_msg());
        return EXIT_USAGE;
    }
    const char *why = NULL;
    enum appr_verdict v = appr_decide(mode, rules, name, args, &why);
    static const char *const names[] = { "allow", "ask", "deny" };
    printf("%s: %s\n", names[v], why ? why : "");
    appr_rules_free(rules);
    return EXIT_OK;
}

static int tool_main(struct app *a, int argc, char **argv)
{
    const char *name = NULL, *json = "{}", *ws = NULL, *approval = NULL;
    int approve = 0, schemas = 0;
    struct cli c;
    cli_init(&c, argc, argv);
    for (int o; (o = cli_next(&c, opts)) != CLI_END;) {
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS) {
            if (name)
                return cli_usage_error("tool", "unexpected argument '%s'", c.arg);
            name = c.arg;
            continue;
        }
        switch (o) {
        case O_ARGS: json = c.arg; break;
        case O_WS: ws = c.arg; break;
        case O_APPROVE: approve = 1; break;
        case O_SCHEMAS: schemas = 1; break;
        case O_APPROVAL: approval = c.arg; break;
        }
    }
    if (schemas) {
        struct buf b = { 0 };
        if (tool_schemas_json(&b) < 0)
            return cli_fail();
        printf("%s\n", b.p);
        buf_free(&b);
        return EXIT_OK;
    }
    if (!name)
        return cli_usage_error("tool", "no tool name (lode tool NAME --args JSON)");
    cJSON *args = cJSON_Parse(json);
    if (!args || !cJSON_IsObject(args)) {
        cJSON_Delete(args);
        return cli_usage_error("tool", "--args: expected a JSON object");
    }
    if (approval) {
        int ec = print_verdict(a, approval, name, args);
        cJSON_Delete(args);
        return ec;
    }
    char root[4096];
    if (!ws) {
        if (fs_project_root(a->cwd, root, sizeof root) < 0) {
            cJSON_Delete(args);
            return cli_fail();
        }
        ws = root;
    }
    /* the configured extra read-only and hidden paths, as the agent uses them */
    char **ro = NULL, **hid = NULL;
    if (tool_list_parse(cfg_str(&a->cfg, CFG_SANDBOX_READ_ONLY), "sandbox.read_only", &ro) < 0 ||
        tool_list_parse(cfg_str(&a->cfg, CFG_SANDBOX_HIDDEN), "sandbox.hidden", &hid) < 0) {
        tool_list_free(ro);
        cJSON_Delete(args);
        return cli_fail();
    }
    struct pol_opts po = { 0 };
    po.workspace = ws;
    po.read_only = (const char *const *)ro;
    po.hidden = (const char *const *)hid;
    struct pol *pol = NULL;
    if (pol_open(&pol, &po) < 0) {
        tool_list_free(ro);
        tool_list_free(hid);
        cJSON_Delete(args);
        return cli_fail();
    }
    struct sbx_caps caps;
    sbx_probe(&caps, getenv("LODE_SANDBOX_DISABLE"));
    struct tool_ctx ctx = tool_ctx_defaults();
    ctx.pol = pol;
    ctx.caps = &caps;
    ctx.network = cfg_bool(&a->cfg, CFG_SANDBOX_NETWORK);
    ctx.approved = approve;
    ctx.shell_timeout_max_s = (double)cfg_int(&a->cfg, CFG_SANDBOX_MAX_TIMEOUT);
    ctx.shell_timeout_s = (double)cfg_int(&a->cfg, CFG_SANDBOX_TIMEOUT);
    if (ctx.shell_timeout_s > ctx.shell_timeout_max_s) /* the maximum wins */
        ctx.shell_timeout_s = ctx.shell_timeout_max_s;
    struct tool_result r = { 0 };
    int ec = EXIT_OK;
    if (tool_run(&ctx, name, args, &r) < 0) {
        ec = cli_fail();
    } else if (r.is_error) {
        fprintf(stderr, "lode tool %s: %s\n", name, r.text.p ? r.text.p : "");
        ec = EXIT_ERROR;
    } else {
        fputs(r.text.p ? r.text.p : "", stdout);
        if (r.text.len && r.text.p[r.text.len - 1] != '\n')
            putchar('\n');
    }
    tool_result_free(&r);
    pol_close(pol);
    tool_list_free(ro);
    tool_list_free(hid);
    cJSON_Delete(args);
    return ec;
}

const struct command cmd_tool = {
    "tool",
    tool_main,
    "run one agent tool (read_file, edit_file, run_shell, ...) and print its result",
    "usage: lode tool NAME [--args JSON] [--workspace DIR] [--approve]\n"
    "       lode tool NAME [--args JSON] --approval MODE\n"
    "       lode tool --schemas\n"
    "\n"
    "Runs the agent tool NAME with the JSON arguments exactly as the agent does:\n"
    "every path goes through the workspace's path policy and run_shell through\n"
    "the sandbox. The result is printed on stdout; a tool error goes to stderr\n"
    "and exits 1. Bad options or arguments that are not a JSON object exit 2.\n"
    "The configuration applies: sandbox.network (web_fetch, run_shell),\n"
    "sandbox.timeout, sandbox.max_timeout, sandbox.read_only, sandbox.hidden.\n"
    "\n"
    "With --approval MODE nothing runs: it prints \"allow: REASON\", \"ask: REASON\"\n"
    "or \"deny: REASON\" as the agent would decide the call in that mode (\"config\":\n"
    "the configured mode) under tools.allow and tools.deny.\n",
    opts,
};
