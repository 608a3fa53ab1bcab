/* todo_tool.c - the model's task list (see todo_tool.h). */
#include "tools/todo_tool.h"

#include "common/text.h"

#include <cjson/cJSON.h>
#include <string.h>

static const char *const states[] = { "pending", "in_progress", "completed" };
static const char *const marks[] = { "[ ] ", "[>] ", "[x] " };

int todo_tool(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r)
{
    const cJSON *items = args ? cJSON_GetObjectItemCaseSensitive(args, "items") : NULL;
    if (!items || cJSON_IsNull(items))
        return tool_fail(r, "todo: missing required argument \"items\"");
    if (!cJSON_IsArray(items))
        return tool_fail(r, "todo: argument \"items\" must be an array of "
                            "{content, status} objects");
    int n = cJSON_GetArraySize(items);
    if (n > TODO_MAX_ITEMS)
        return tool_fail(r, "todo: %d items, at most %d", n, TODO_MAX_ITEMS);
    /* validate everything first: a bad call changes nothing */
    int i = 0;
    for (const cJSON *it = items->child; it; it = it->next, i++) {
        if (!cJSON_IsObject(it))
            return tool_fail(r, "todo: item %d must be an object {content, status}", i + 1);
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(it, "content");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "status");
        if (!cJSON_IsString(ct) || !ct->valuestring)
            return tool_fail(r, "todo: item %d: \"content\" must be a string", i + 1);
        size_t len = strlen(ct->valuestring);
        if (len == 0)
            return tool_fail(r, "todo: item %d: \"content\" is empty", i + 1);
        if (len > TODO_MAX_CONTENT)
            return tool_fail(r, "todo: item %d: \"content\" is %zu bytes, at most %d", i + 1, len,
                             TODO_MAX_CONTENT);
        if (!utf8_valid(ct->valuestring, len, NULL))
            return tool_fail(r, "todo: item %d: \"content\" is not valid UTF-8", i + 1);
        int s = -1;
        for (int k = 0; k < 3 && cJSON_IsString(st) && st->valuestring; k++)
            if (!strcmp(st->valuestring, states[k]))
                s = k;
        if (s < 0)
            return tool_fail(r,
                             "todo: item %d: \"status\" must be pending, in_progress or "
                             "completed",
                             i + 1);
    }
    if (n == 0)
        return buf_puts(&r->text, "(the task list is empty)\n");
    int rc = 0;
    for (const cJSON *it = items->child; it && rc == 0; it = it->next) {
        const char *ct = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        const char *st = cJSON_GetObjectItemCaseSensitive(it, "status")->valuestring;
        int s = !strcmp(st, states[2]) ? 2 : !strcmp(st, states[1]) ? 1 : 0;
        rc = buf_puts(&r->text, marks[s]);
        /* one line per item: newlines in the content would break the format */
        for (const char *p = ct; *p && rc == 0; p++)
            rc = buf_putc(&r->text, *p == '\n' || *p == '\r' || *p == '\t' ? ' ' : *p);
        if (rc == 0)
            rc = buf_putc(&r->text, '\n');
    }
    return rc;
}
