/*
 * shell_tool.h - run_shell (shtool_): a command through sbx_run with the
 * context's policy, capped output (head and tail) and a timeout the model may
 * only lower. Fills r and returns 0, or ERR_NOMEM.
 */
#ifndef LODE_TOOLS_SHELL_TOOL_H
#define LODE_TOOLS_SHELL_TOOL_H

#include "tools/registry.h"

int shtool_run_shell(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r);

#endif
