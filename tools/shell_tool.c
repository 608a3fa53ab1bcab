/* shell_tool.c - run_shell through the sandbox (see shell_tool.h).
 *
 * The sandbox options come from the context (policy, capabilities, network,
 * approval); the model only gives the command and may lower the timeout. */
#include "tools/shell_tool.h"

#include "common/err.h"

#include <cjson/cJSON.h>
#include <string.h>

int shtool_run_shell(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r)
{
    const char *cmd = NULL;
    double timeout = c->shell_timeout_s;
    if (tool_arg_str(args, "command", 1, &cmd, r) ||
        tool_arg_num(args, "timeout", 0.001, 1e9, &timeout, r))
        return 0;
    if (!cmd[0])
        return tool_fail(r, "run_shell: the command is empty");
    if (!c->caps)
        return tool_fail(r, "run_shell: the sandbox is not available");
    /* §B1 (b): the model may shorten the timeout, never extend it */
    int clamped = timeout > c->shell_timeout_max_s;
    if (clamped)
        timeout = c->shell_timeout_max_s;
    struct sbx_opts o = sbx_defaults();
    o.pol = c->pol;
    o.caps = c->caps;
    o.network = c->network;
    o.approved = c->approved;
    o.timeout_s = timeout;
    o.output_cap = c->shell_output_cap;
    struct sbx_result res = { 0 };
    int rc = sbx_run(&o, cmd, &res);
    if (rc == ERR_NOMEM) {
        sbx_result_free(&res);
        return rc;
    }
    if (rc < 0) {
        sbx_result_free(&res);
        return tool_fail(r, "run_shell: %s", err_msg());
    }
    if (res.timed_out)
        rc = buf_printf(&r->text, "timed out after %g s%s (killed)\n", timeout,
                        clamped ? " (the maximum)" : "");
    else if (res.exited)
        rc = buf_printf(&r->text, "exit code %d\n", res.status);
    else
        rc = buf_printf(&r->text, "killed by signal %d\n", res.status);
    if (rc == 0 && res.truncated)
        rc = buf_printf(&r->text, "[output: %zu bytes, only the first and last %zu kept]\n",
                        res.out_total, c->shell_output_cap / 2);
    if (rc == 0)
        rc = buf_append(&r->text, res.out.p ? res.out.p : "", res.out.len);
    r->is_error = !(res.exited && res.status == 0);
    sbx_result_free(&res);
    return rc;
}
