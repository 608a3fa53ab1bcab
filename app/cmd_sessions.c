/*
 * cmd_sessions.c - `lode sessions list|show|rm|export`: the saved conversations.
 *
 * Message bodies are JSON objects. The kinds this lode renders specially:
 *   user       {"content": "..."}
 *   assistant  {"reasoning_content": "...", "content": "...", "interrupted": true?,
 *               "tool_calls": [{"id", "type": "function", "function": {"name", "arguments"}}]}
 *   tool       {"tool_call_id": "...", "name": "...", "content": "...", "is_error": bool}
 * (the agent's shapes, app/agent_session.c; the older "reasoning" and flat
 * {"name", "arguments"} calls are read too).
 *   system     {"content": "..."}
 * Any other kind (written by a newer lode) is shown as its raw JSON, never hidden.
 */
#include "app/commands.h"
#include "common/buf.h"
#include "common/err.h"
#include "db/store.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const struct cli_opt opts[] = {
    { "all", 'a', 0, NULL, "list: sessions of every project, not only this one" },
    { "format", 0, 1, "md|json", "export: Markdown (default) or JSON" },
    { "db", 0, 1, "FILE", "the store to use (default $XDG_DATA_HOME/lode/lode.db)" },
    { 0 },
};

static void fmt_time(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%d %H:%M", &tm);
}

static int list(struct db *db, const char *project)
{
    struct db_session *v;
    int n;
    if (db_session_list(db, project, &v, &n) < 0)
        return cli_fail();
    if (n == 0)
        printf("no sessions%s%s\n", project ? " in " : "", project ? project : "");
    for (int i = 0; i < n; i++) {
        char when[32];
        fmt_time(v[i].updated, when, sizeof when);
        printf("%s  %s  %4lld msgs  %s%s%s\n", v[i].id, when, (long long)v[i].n_messages,
               v[i].title[0] ? v[i].title : "(untitled)", project ? "" : "  ",
               project ? "" : v[i].project);
    }
    db_session_list_free(v, n);
    return EXIT_OK;
}

struct render {
    struct buf out;
    int json;
    int first;
};

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int render_md(void *ctx, int64_t seq, const char *kind, const char *body, int64_t created)
{
    struct render *r = ctx;
    cJSON *o = cJSON_Parse(body);
    const char *content = o ? jstr(o, "content") : NULL;
    if (!o || (strcmp(kind, "user") && strcmp(kind, "assistant") && strcmp(kind, "tool") &&
               strcmp(kind, "system"))) {
        buf_printf(&r->out, "### %s (record %lld, shown raw)\n\n```json\n%s\n```\n\n", kind,
                   (long long)seq, body);
    } else if (!strcmp(kind, "assistant")) {
        const char *reasoning = jstr(o, "reasoning_content");
        if (!reasoning)
            reasoning = jstr(o, "reasoning");
        buf_puts(&r->out, "### assistant\n\n");
        if (reasoning && *reasoning)
            buf_printf(&r->out, "<details><summary>thinking</summary>\n\n%s\n\n</details>\n\n",
                       reasoning);
        if (content && *content)
            buf_printf(&r->out, "%s\n\n", content);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "interrupted")))
            buf_puts(&r->out, "*(interrupted)*\n\n");
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(o, "tool_calls"), *c;
        cJSON_ArrayForEach(c, calls)
        {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
            if (!cJSON_IsObject(fn))
                fn = c;
            const char *name = jstr(fn, "name");
            char *args = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(fn, "arguments"));
            buf_printf(&r->out, "→ `%s` `%s`\n\n", name ? name : "?", args ? args : "{}");
            cJSON_free(args);
        }
    } else if (!strcmp(kind, "tool")) {
        const char *name = jstr(o, "name");
        int bad = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "is_error"));
        buf_printf(&r->out, "### tool result: %s%s\n\n```\n%s\n```\n\n", name ? name : "?",
                   bad ? " (error)" : "", content ? content : "");
    } else {
        buf_printf(&r->out, "### %s\n\n%s\n\n", kind, content ? content : "");
    }
    cJSON_Delete(o);
    return 0;
}

static int render_json(void *ctx, int64_t seq, const char *kind, const char *body, int64_t created)
{
    struct render *r = ctx;
    buf_printf(&r->out, "%s\n    {\"seq\": %lld, \"kind\": ", r->first ? "" : ",", (long long)seq);
    buf_json_str(&r->out, kind, strlen(kind));
    buf_printf(&r->out, ", \"created\": %lld, \"body\": %s}", (long long)created, body);
    r->first = 0;
    return 0;
}

static int show(struct db *db, const char *id, int json)
{
    struct db_session s;
    if (db_session_get(db, id, &s) < 0)
        return cli_fail();
    struct render r = { .json = json, .first = 1 };
    char when[32];
    fmt_time(s.created, when, sizeof when);
    if (json) {
        buf_puts(&r.out, "{\"id\": ");
        buf_json_str(&r.out, s.id, strlen(s.id));
        buf_puts(&r.out, ", \"project\": ");
        buf_json_str(&r.out, s.project, strlen(s.project));
        buf_puts(&r.out, ", \"title\": ");
        buf_json_str(&r.out, s.title, strlen(s.title));
        buf_puts(&r.out, ", \"model\": ");
        buf_json_str(&r.out, s.model, strlen(s.model));
        buf_printf(&r.out, ", \"created\": %lld, \"updated\": %lld, \"messages\": [",
                   (long long)s.created, (long long)s.updated);
    } else {
        buf_printf(&r.out, "# %s\n\nsession %s, %s, project %s%s%s\n\n",
                   s.title[0] ? s.title : "lode session", s.id, when, s.project,
                   s.model[0] ? ", model " : "", s.model);
    }
    int rc = db_messages(db, s.id, json ? render_json : render_md, &r);
    if (json)
        buf_puts(&r.out, "\n]}\n");
    if (rc == 0)
        fwrite(r.out.p, 1, r.out.len, stdout);
    buf_free(&r.out);
    db_session_free(&s);
    return rc < 0 ? cli_fail() : EXIT_OK;
}

static int run(struct app *a, int argc, char **argv)
{
    const char *words[2] = { 0 };
    int nwords = 0, all = 0, json = 0;
    const char *dbpath = NULL;
    struct cli c;
    cli_init(&c, argc, argv);
    for (int o; (o = cli_next(&c, opts)) != CLI_END;) {
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS) {
            if (nwords == 2)
                return cli_usage_error("sessions", "unexpected argument '%s'", c.arg);
            words[nwords++] = c.arg;
        } else if (o == 0) {
            all = 1;
        } else if (o == 1) {
            if (strcmp(c.arg, "md") && strcmp(c.arg, "json"))
                return cli_usage_error("sessions", "--format: expected md or json, got '%s'",
                                       c.arg);
            json = !strcmp(c.arg, "json");
        } else if (o == 2) {
            dbpath = c.arg;
        }
    }
    const char *verb = nwords ? words[0] : "list";
    int needs_id = !strcmp(verb, "show") || !strcmp(verb, "rm") || !strcmp(verb, "export");
    if (!needs_id && strcmp(verb, "list"))
        return cli_usage_error("sessions", "unknown subcommand '%s' (list, show, rm, export)",
                               verb);
    if (needs_id && nwords < 2)
        return cli_usage_error("sessions", "%s needs a session id", verb);
    struct db *db;
    if (db_open(&db, dbpath) < 0)
        return cli_fail();
    int rc;
    if (!strcmp(verb, "list"))
        rc = list(db, all ? NULL : a->cfg.project_root);
    else if (!strcmp(verb, "rm")) {
        rc = db_session_rm(db, words[1]) < 0 ? cli_fail() : EXIT_OK;
        if (rc == EXIT_OK)
            printf("removed session %s\n", words[1]);
    } else
        rc = show(db, words[1], json);
    db_close(db);
    return rc;
}

const struct command cmd_sessions = {
    "sessions",
    run,
    "list, show, remove or export saved sessions",
    "usage: lode sessions [list [--all]]\n"
    "       lode sessions show ID [--format md|json]\n"
    "       lode sessions export ID [--format md|json]\n"
    "       lode sessions rm ID\n"
    "\n"
    "Sessions live in $XDG_DATA_HOME/lode/lode.db (SQLite, WAL, every message committed as it\n"
    "happens). IDs may be abbreviated to any unique prefix. `list` shows this project's\n"
    "sessions, newest first; --all shows every project's.\n",
    opts,
};
