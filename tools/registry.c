/* registry.c - the tool table, its schemas and argument helpers (see registry.h). */
#include "tools/registry.h"

#include "common/err.h"
#include "tools/fs_tools.h"
#include "tools/search_tools.h"
#include "tools/shell_tool.h"
#include "tools/todo_tool.h"
#include "tools/web_tool.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef int (*tool_fn)(const struct tool_ctx *, const struct cJSON *, struct tool_result *);

struct tool_def {
    const char *name;
    const char *description;
    const char *schema; /* JSON Schema of the arguments, a static JSON object */
    tool_fn fn;
};

static const struct tool_def tools[] = {
    { "read_file",
      "Read a text file. Returns numbered lines (\"N<TAB>text\"). Long files are cut; the note "
      "says which offset to continue from. Binary files give a short note instead.",
      "{\"type\":\"object\",\"properties\":{"
      "\"path\":{\"type\":\"string\",\"description\":\"File path, relative to the workspace\"},"
      "\"offset\":{\"type\":\"integer\",\"description\":\"First line to return (1-based)\"},"
      "\"limit\":{\"type\":\"integer\",\"description\":\"Number of lines to return\"}},"
      "\"required\":[\"path\"]}",
      fstool_read_file },
    { "write_file",
      "Create or overwrite a file with the given content (parent directories are created). "
      "Prefer edit_file for changes to existing files.",
      "{\"type\":\"object\",\"properties\":{"
      "\"path\":{\"type\":\"string\",\"description\":\"File path, relative to the workspace\"},"
      "\"content\":{\"type\":\"string\",\"description\":\"The complete new content\"}},"
      "\"required\":[\"path\",\"content\"]}",
      fstool_write_file },
    { "edit_file",
      "Replace old_string by new_string in a file. old_string must match exactly (whitespace "
      "included) and exactly once, unless replace_all is true. Returns a unified diff.",
      "{\"type\":\"object\",\"properties\":{"
      "\"path\":{\"type\":\"string\",\"description\":\"File path, relative to the workspace\"},"
      "\"old_string\":{\"type\":\"string\",\"description\":\"Exact text to replace\"},"
      "\"new_string\":{\"type\":\"string\",\"description\":\"Replacement text\"},"
      "\"replace_all\":{\"type\":\"boolean\",\"description\":\"Replace every occurrence\"}},"
      "\"required\":[\"path\",\"old_string\",\"new_string\"]}",
      fstool_edit_file },
    { "list_dir", "List a directory (sorted; directories end with '/', symlinks with '@').",
      "{\"type\":\"object\",\"properties\":{"
      "\"path\":{\"type\":\"string\",\"description\":\"Directory, relative to the workspace "
      "(default: the workspace)\"}}}",
      fstool_list_dir },
    { "grep",
      "Search file contents with a PCRE2 regular expression. Returns \"path:line:text\" for "
      "matching lines (capped). Skips .git, .gitignored and binary files. Use (?i) for "
      "case-insensitive search.",
      "{\"type\":\"object\",\"properties\":{"
      "\"pattern\":{\"type\":\"string\",\"description\":\"PCRE2 regular expression\"},"
      "\"path\":{\"type\":\"string\",\"description\":\"File or directory to search "
      "(default: the workspace)\"},"
      "\"glob\":{\"type\":\"string\",\"description\":\"Only files matching this glob, e.g. "
      "*.c\"}},"
      "\"required\":[\"pattern\"]}",
      srch_grep },
    { "glob",
      "Find files by name pattern: '*', '?', '[...]' within a path component, '**' across "
      "directories; a pattern without '/' matches file names at any depth. Skips .git and "
      ".gitignored files.",
      "{\"type\":\"object\",\"properties\":{"
      "\"pattern\":{\"type\":\"string\",\"description\":\"Glob, e.g. src/**/*.c\"},"
      "\"path\":{\"type\":\"string\",\"description\":\"Directory to search (default: the "
      "workspace)\"}},"
      "\"required\":[\"pattern\"]}",
      srch_glob },
    { "run_shell",
      "Run a shell command (/bin/sh -c) in the workspace inside a sandbox. Returns the exit "
      "status and the combined output (long output keeps its head and tail).",
      "{\"type\":\"object\",\"properties\":{"
      "\"command\":{\"type\":\"string\",\"description\":\"The command line\"},"
      "\"timeout\":{\"type\":\"number\",\"description\":\"Seconds before the command is "
      "killed\"}},"
      "\"required\":[\"command\"]}",
      shtool_run_shell },
    { "todo",
      "Replace your task list for this work (the whole list each time). Use it for tasks with "
      "several steps: add the steps, mark one in_progress while you work on it and completed "
      "when done. Returns the list.",
      "{\"type\":\"object\",\"properties\":{"
      "\"items\":{\"type\":\"array\",\"description\":\"The complete task list, at most 100 "
      "items\",\"items\":{\"type\":\"object\",\"properties\":{"
      "\"content\":{\"type\":\"string\",\"description\":\"The task, one line\"},"
      "\"status\":{\"type\":\"string\",\"enum\":[\"pending\",\"in_progress\",\"completed\"]}},"
      "\"required\":[\"content\",\"status\"]}}},"
      "\"required\":[\"items\"]}",
      todo_tool },
    { "web_fetch",
      "Fetch an http(s) URL and return its text (HTML reduced to plain text; long pages keep "
      "their beginning). Only works when the user enabled network access.",
      "{\"type\":\"object\",\"properties\":{"
      "\"url\":{\"type\":\"string\",\"description\":\"http:// or https:// URL\"},"
      "\"max_bytes\":{\"type\":\"integer\",\"description\":\"Most bytes of text to return\"}},"
      "\"required\":[\"url\"]}",
      web_fetch_tool },
};

#define NTOOLS ((int)(sizeof tools / sizeof tools[0]))

struct tool_ctx tool_ctx_defaults(void)
{
    struct tool_ctx c = { 0 };
    c.read_max_bytes = 64 * 1024;
    c.read_max_lines = 2000;
    c.line_max = 2000;
    c.file_max = 16u << 20;
    c.list_max = 1000;
    c.diff_max = 16 * 1024;
    c.match_max = 200;
    c.walk_max = 100000;
    c.shell_timeout_s = 120;
    c.shell_timeout_max_s = 600;
    c.shell_output_cap = 32 * 1024;
    c.fetch_max_bytes = 32 * 1024;
    c.fetch_download_max = 8u << 20;
    c.fetch_timeout_s = 30;
    return c;
}

int tool_count(void) { return NTOOLS; }

const char *tool_name(int i) { return i >= 0 && i < NTOOLS ? tools[i].name : NULL; }

int tool_schemas_json(struct buf *out)
{
    int rc = buf_putc(out, '[');
    for (int i = 0; i < NTOOLS && rc == 0; i++) {
        rc = buf_printf(out, "%s{\"type\":\"function\",\"function\":{\"name\":", i ? "," : "");
        if (rc == 0)
            rc = buf_json_str(out, tools[i].name, strlen(tools[i].name));
        if (rc == 0)
            rc = buf_puts(out, ",\"description\":");
        if (rc == 0)
            rc = buf_json_str(out, tools[i].description, strlen(tools[i].description));
        if (rc == 0)
            rc = buf_printf(out, ",\"parameters\":%s}}", tools[i].schema);
    }
    if (rc == 0)
        rc = buf_putc(out, ']');
    return rc;
}

int tool_fail(struct tool_result *r, const char *fmt, ...)
{
    va_list ap;
    buf_reset(&r->text);
    r->is_error = 1;
    va_start(ap, fmt);
    int rc = buf_vprintf(&r->text, fmt, ap);
    va_end(ap);
    return rc;
}

static const cJSON *arg_get(const struct cJSON *args, const char *key)
{
    const cJSON *v = args ? cJSON_GetObjectItemCaseSensitive(args, key) : NULL;
    return v && !cJSON_IsNull(v) ? v : NULL;
}

int tool_arg_str(const struct cJSON *args, const char *key, int required, const char **out,
                 struct tool_result *r)
{
    const cJSON *v = arg_get(args, key);
    if (!v) {
        if (required) {
            tool_fail(r, "missing required argument \"%s\"", key);
            return 1;
        }
        return 0;
    }
    if (!cJSON_IsString(v) || !v->valuestring) {
        tool_fail(r, "argument \"%s\" must be a string", key);
        return 1;
    }
    *out = v->valuestring;
    return 0;
}

int tool_arg_num(const struct cJSON *args, const char *key, double min, double max, double *out,
                 struct tool_result *r)
{
    const cJSON *v = arg_get(args, key);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        tool_fail(r, "argument \"%s\" must be a number", key);
        return 1;
    }
    if (v->valuedouble < min || v->valuedouble > max) {
        tool_fail(r, "argument \"%s\" must be between %g and %g", key, min, max);
        return 1;
    }
    *out = v->valuedouble;
    return 0;
}

int tool_arg_int(const struct cJSON *args, const char *key, long long min, long long max,
                 long long *out, struct tool_result *r)
{
    const cJSON *v = arg_get(args, key);
    if (!v)
        return 0;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!isfinite(d) || d != floor(d)) {
        tool_fail(r, "argument \"%s\" must be an integer", key);
        return 1;
    }
    if (d < (double)min || d > (double)max) {
        tool_fail(r, "argument \"%s\" must be between %lld and %lld", key, min, max);
        return 1;
    }
    *out = (long long)d;
    return 0;
}

int tool_arg_bool(const struct cJSON *args, const char *key, int *out, struct tool_result *r)
{
    const cJSON *v = arg_get(args, key);
    if (!v)
        return 0;
    if (!cJSON_IsBool(v)) {
        tool_fail(r, "argument \"%s\" must be true or false", key);
        return 1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

int tool_run(const struct tool_ctx *ctx, const char *name, const struct cJSON *args,
             struct tool_result *r)
{
    buf_reset(&r->text);
    r->is_error = 0;
    if (!ctx || !ctx->pol)
        return tool_fail(r, "tools are not available (no workspace policy)");
    if (args && !cJSON_IsObject(args))
        return tool_fail(r, "%s: arguments must be a JSON object", name ? name : "tool");
    for (int i = 0; i < NTOOLS; i++) {
        if (name && strcmp(name, tools[i].name) == 0) {
            int rc = tools[i].fn(ctx, args, r);
            if (rc < 0) /* ERR_NOMEM from a handler: say so if we still can */
                return tool_fail(r, "%s: %s", name, err_msg()) < 0 ? rc : 0;
            return 0;
        }
    }
    struct buf names = { 0 };
    for (int i = 0; i < NTOOLS; i++)
        buf_printf(&names, "%s%s", i ? ", " : "", tools[i].name);
    int rc =
        tool_fail(r, "unknown tool \"%s\" (tools: %s)", name ? name : "", names.p ? names.p : "");
    buf_free(&names);
    return rc;
}

int tool_list_parse(const char *json, const char *key, char ***out)
{
    *out = NULL;
    cJSON *a = json && json[0] ? cJSON_Parse(json) : cJSON_CreateArray();
    if (!a || !cJSON_IsArray(a)) {
        cJSON_Delete(a);
        return err_set(ERR_INVAL, "%s: expected a JSON array of strings", key);
    }
    size_t n = (size_t)cJSON_GetArraySize(a), i = 0;
    char **l = calloc(n + 1, sizeof *l);
    int rc = l ? 0 : err_set(ERR_NOMEM, "%s: out of memory", key);
    for (const cJSON *it = a->child; it && rc == 0; it = it->next, i++) {
        if (!cJSON_IsString(it) || !it->valuestring)
            rc = err_set(ERR_INVAL, "%s: every item must be a string", key);
        else if (!(l[i] = strdup(it->valuestring)))
            rc = err_set(ERR_NOMEM, "%s: out of memory", key);
    }
    cJSON_Delete(a);
    if (rc < 0) {
        tool_list_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void tool_list_free(char **list)
{
    for (size_t i = 0; list && list[i]; i++)
        free(list[i]);
    free(list);
}

void tool_result_free(struct tool_result *r)
{
    if (!r)
        return;
    buf_free(&r->text);
    r->is_error = 0;
}
