/*
 * registry.h - the agent's tools (tool_): names, JSON schemas, handlers.
 *
 *     struct tool_ctx c = tool_ctx_defaults();
 *     c.pol = policy; c.caps = &caps;                    // borrowed
 *     struct buf s = {0};
 *     tool_schemas_json(&s);                             // the "tools" array for the template
 *     struct tool_result r = {0};
 *     tool_run(&c, "read_file", args, &r);               // args: a cJSON object
 *     ... r.is_error, r.text.p ...
 *     tool_result_free(&r);
 *
 * Every file access goes through the path policy (tools/policy.h) and
 * run_shell through the sandbox (tools/sandbox.h) with the SAME policy
 * (engineering-style.md §B1 (a)). Limits live in the context, set by the
 * app; tool arguments can only narrow them (a timeout above the maximum is
 * clamped), never widen them (§B1 (b)).
 *
 * Bad arguments, refusals and failures are results for the model
 * (is_error = 1 and a one-line message), never crashes.
 */
#ifndef LODE_TOOLS_REGISTRY_H
#define LODE_TOOLS_REGISTRY_H

#include "common/buf.h"
#include "tools/policy.h"
#include "tools/sandbox.h"

#include <stddef.h>

struct cJSON;

struct tool_ctx {
    struct pol *pol;             /* required, borrowed */
    const struct sbx_caps *caps; /* run_shell only, borrowed (NULL: run_shell refuses) */
    int network;                 /* sandbox.network from the configuration */
    int approved;                /* the user approved running below L3 (app decision) */
    size_t read_max_bytes;       /* read_file: bytes of text returned */
    size_t read_max_lines;       /* read_file: lines returned when no limit is given */
    size_t line_max;             /* read_file: characters shown per line */
    size_t file_max;             /* edit_file: largest file edited; read_file scans */
    size_t list_max;             /* list_dir: entries shown */
    size_t diff_max;             /* edit_file: bytes of diff returned */
    size_t match_max;            /* grep: matching lines shown; glob: paths shown */
    size_t walk_max;             /* grep, glob: directory entries visited */
    double shell_timeout_s;      /* run_shell default timeout */
    double shell_timeout_max_s;  /* run_shell: largest timeout the model may ask for */
    size_t shell_output_cap;     /* run_shell: output kept (head + tail) */
    size_t fetch_max_bytes;      /* web_fetch: bytes of text returned (head kept) */
    size_t fetch_download_max;   /* web_fetch: bytes downloaded before it stops */
    double fetch_timeout_s;      /* web_fetch: whole transfer, redirects included */
};

/* Defaults: 64 KiB / 2000 lines / 2000 chars per line read, 16 MiB files,
 * 1000 entries, 16 KiB diff, 200 matches, 100000 entries walked, shell 120 s
 * (max 600 s), 32 KiB output, web_fetch 32 KiB of text from at most 8 MiB
 * downloaded in 30 s. */
struct tool_ctx tool_ctx_defaults(void);

struct tool_result {
    int is_error;    /* 1: text is an error message for the model */
    struct buf text; /* owned; what the model sees */
};

/* Appends the OpenAI-style tools array
 * [{"type":"function","function":{"name","description","parameters"}},...]
 * to out. Returns 0 or ERR_NOMEM. */
int tool_schemas_json(struct buf *out);

/* The number of tools and the i-th tool's name (static), NULL past the end. */
int tool_count(void);
const char *tool_name(int i);

/* Runs tool `name` with `args` (a JSON object; NULL counts as {}). Always
 * fills r (free with tool_result_free, also after an error). Returns 0 when
 * the tool produced a result (possibly is_error = 1 for an unknown tool, bad
 * arguments, a refusal or a failure) and ERR_NOMEM only when even the error
 * message could not be stored. */
int tool_run(const struct tool_ctx *ctx, const char *name, const struct cJSON *args,
             struct tool_result *r);
void tool_result_free(struct tool_result *r);

/* A configuration list (JSON array of strings as text, as cfg_str gives
 * sandbox.read_only / sandbox.hidden; NULL or "" = empty) as a
 * NULL-terminated array for pol_opts. *out is owned (tool_list_free, NULL ok).
 * ERR_INVAL names key. */
int tool_list_parse(const char *json, const char *key, char ***out);
void tool_list_free(char **list);

/* ---- For the handlers (tools/fs_tools.c, tools/shell_tool.c) ---- */

/* Replaces r's text with the formatted message, sets is_error; returns 0
 * (or ERR_NOMEM), so a handler can `return tool_fail(r, ...)`. */
int tool_fail(struct tool_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Argument readers. Each returns 0 and sets *out, or fills r with an error
 * naming the argument and returns 1 (so handlers `if (tool_arg_...) return 0`).
 * Optional arguments that are absent (or JSON null) leave *out unchanged. */
int tool_arg_str(const struct cJSON *args, const char *key, int required, const char **out,
                 struct tool_result *r);
int tool_arg_int(const struct cJSON *args, const char *key, long long min, long long max,
                 long long *out, struct tool_result *r);
int tool_arg_bool(const struct cJSON *args, const char *key, int *out, struct tool_result *r);
int tool_arg_num(const struct cJSON *args, const char *key, double min, double max, double *out,
                 struct tool_result *r);

#endif
