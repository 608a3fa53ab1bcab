/* todo_tool.h - the todo tool (todo_): the model's task list.
 *
 * todo(items): items = [{content, status: pending | in_progress | completed}],
 * at most TODO_MAX_ITEMS, content at most TODO_MAX_CONTENT bytes. Each call
 * replaces the whole list; the result is the list back, one line per item
 * ("[x] done\n[>] doing\n[ ] to do"), so the context stays small. The tool
 * keeps no state: the agent reads the arguments of a successful call and
 * forwards them to the UI. */
#ifndef LODE_TOOLS_TODO_TOOL_H
#define LODE_TOOLS_TODO_TOOL_H

#include "tools/registry.h"

#define TODO_MAX_ITEMS 100
#define TODO_MAX_CONTENT 500

int todo_tool(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r);

#endif
