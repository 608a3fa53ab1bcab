/*
 * search_tools.h - grep and glob (srch_): walk a directory opened through the
 * policy without following symlinks (so the walk never leaves the checked
 * tree), skip .git and what the .gitignore files name (a subset: globs,
 * "**", a leading "/" anchors, a trailing "/" means directories, "!"
 * re-includes), and skip hidden paths. Fill r and return 0, or ERR_NOMEM.
 */
#ifndef LODE_TOOLS_SEARCH_TOOLS_H
#define LODE_TOOLS_SEARCH_TOOLS_H

#include "tools/registry.h"

int srch_grep(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r);
int srch_glob(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r);

/* Glob match of a '/'-separated relative path: '*', '?', '[...]' within one
 * component, "**" across components. 1 on a match. */
int srch_match(const char *pat, const char *path);

#endif
