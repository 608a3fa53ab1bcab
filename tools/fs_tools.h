/*
 * fs_tools.h - the file tools (fstool_): read_file, write_file, edit_file,
 * list_dir. Handlers for tools/registry.c; every path goes through the
 * context's policy (pol_open_file / pol_open_dir), which decides on the
 * object it opens. Each handler fills r (text or an error for the model) and
 * returns 0, or ERR_NOMEM when even that failed.
 */
#ifndef LODE_TOOLS_FS_TOOLS_H
#define LODE_TOOLS_FS_TOOLS_H

#include "tools/registry.h"

int fstool_read_file(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r);
int fstool_write_file(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r);
int fstool_edit_file(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r);
int fstool_list_dir(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r);

#endif
