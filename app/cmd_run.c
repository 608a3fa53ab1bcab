/*
 * cmd_run.c - `lode run`: the agent without the interface. One task (-p or
 * stdin) runs to its final answer under an approval mode in which calls that
 * would need a question are denied (the model is told why); the answer goes
 * to stdout as text, one JSON object, or a stream of JSON lines.
 */
#include "app/agent.h"
#include "app/commands.h"
#include "app/engine_opts.h"
#include "app/load.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "db/store.h"
#include "tools/approval.h"
#include "tools/toolcall.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROMPT_MAX ((size_t)16 << 20) /* a task read from stdin */

static const struct cli_opt opts[] = {
    { "prompt", 'p', 1, "TEXT", "the task (default: read from stdin)" },
    { "output-format", 0, 1, "FORMAT", "text, json or stream-json (default text)" },
    { "approval", 0, 1, "MODE", "plan|default|auto-edit|yolo (default: config key approval)" },
    { "max-turns", 0, 1, "N", "stop after N generations (exit 3); 0 = no limit (default 50)" },
    { "thinking", 0, 1, "on|off", "thinking preset (default: config key thinking)" },
    { "continue", 'c', 0, NULL, "continue the last session of this project" },
    { "resume", 'r', 1, "ID", "continue session ID (or a unique prefix)" },
    { "model", 'm', 1, "DIR", "checkpoint directory (default: config key model)" },
    { "cwd", 'C', 1, "DIR", "workspace (default: the project root of the current directory)" },
    { "max-tokens", 0, 1, "N", "tokens per generation (default: up to the context)" },
    { "seed", 0, 1, "N", "sampling seed (default 0)" },
    { "remote-model", 0, 1, "NAME", "openai backend: the model name sent" },
    { "api-key", 0, 1, "KEY", "openai backend: bearer token (default: $LODE_API_KEY)" },
    { "load", 0, 1, "DIR", "put the files `lode load DIR` chooses in front of the conversation" },
    ENGINE_CLI_OPTS,
    { 0 },
};
enum {
    O_PROMPT,
    O_FORMAT,
    O_APPROVAL,
    O_MAXTURNS,
    O_THINKING,
    O_CONTINUE,
    O_RESUME,
    O_MODEL,
    O_CWD,
    O_MAXTOK,
    O_SEED,
    O_RMODEL,
    O_APIKEY,
    O_LOAD,
    O_ENGINE /* ENGINE_CLI_OPTS from here */
};

enum fmt { F_TEXT, F_JSON, F_STREAM };

struct run {
    enum fmt fmt;
    const char *workspace;
    int approval, thinking, restored, resumed;
    struct buf tool_args; /* text mode: the arguments of the call in flight */
    struct ag_stats prev; /* per-turn deltas */
    char error[512];
    struct agent *ag;
};

/* --------------------------------------------------------------- output */

static const char *status_name(int st)
{
    switch (st) {
    case AG_DONE: return "done";
    case AG_TURN_LIMIT: return "turn_limit";
    case AG_INTERRUPTED: return "interrupted";
    default: return "error";
    }
}

static void print_json(cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    cJSON_free(s);
    cJSON_Delete(o);
}

static cJSON *event(const char *type)
{
    cJSON *o = cJSON_CreateObject();
    if (o)
        cJSON_AddStringToObject(o, "type", type);
    return o;
}

/* Model and tool text is bytes; JSON needs valid UTF-8 (bad bytes become U+FFFD). */
static void add_text(cJSON *o, const char *key, const char *s, size_t n)
{
    struct buf t = { 0 };
    tc_utf8_fix(&t, s ? s : "", s ? n : 0);
    cJSON_AddStringToObject(o, key, t.p ? t.p : "");
    buf_free(&t);
}

static double rate(long n, double s) { return s > 0 ? (double)n / s : 0; }

static void add_usage(cJSON *o, long in, long cached, long restored, long prefill, long out)
{
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    if (!u)
        return;
    cJSON_AddNumberToObject(u, "input_tokens", (double)in);
    cJSON_AddNumberToObject(u, "cached_tokens", (double)cached);
    cJSON_AddNumberToObject(u, "restored_tokens", (double)restored);
    cJSON_AddNumberToObject(u, "prefill_tokens", (double)prefill);
    cJSON_AddNumberToObject(u, "output_tokens", (double)out);
}

/* --load DIR: the files `lode load DIR` would choose, for the context less room for the
 * conversation (a quarter, at most 32768 tokens), in front of the system prompt. */
static int load_files(struct run *r, struct backend *be, const char *model, const char *dir)
{
    const int32_t *t;
    long n = 0, max = 0;
    if (!(be->caps & BE_CAP_TOKENS) || be->ops->context(be, &t, &n, &max) < 0 || max <= 0)
        max = 262144;
    long room = max / 4 < 32768 ? max / 4 : 32768;
    struct buf block = { 0 };
    cJSON *files = NULL;
    int rc = ld_context(dir, be->model_dir ? be->model_dir : model, max - room, &block, &files);
    if (rc == 0)
        rc = ag_set_context(r->ag, dir, block.p, files);
    if (rc == 0 && r->fmt == F_TEXT)
        fprintf(stderr, "loaded %d files from %s (%zu bytes)\n", cJSON_GetArraySize(files), dir,
                block.len);
    cJSON_Delete(files);
    buf_free(&block);
    return rc < 0 ? err_prefix(rc, "--load %s", dir) : 0;
}

static void print_result(struct run *r, int status, const struct ag_stats *s, const char *text)
{
    if (r->fmt == F_TEXT) {
        if (text && *text) {
            fputs(text, stdout);
            if (text[strlen(text) - 1] != '\n')
                fputc('\n', stdout);
        }
        fflush(stdout);
        return;
    }
    static const struct ag_stats none;
    if (!s)
        s = &none;
    cJSON *o = event("result");
    if (!o)
        return;
    cJSON_AddStringToObject(o, "status", status_name(status));
    cJSON_AddBoolToObject(o, "is_error", status == AG_ERROR);
    add_text(o, "result", text, text ? strlen(text) : 0);
    const char *sid = r->ag ? ag_session_id(r->ag) : NULL;
    if (sid && *sid)
        cJSON_AddStringToObject(o, "session_id", sid);
    else
        cJSON_AddNullToObject(o, "session_id");
    cJSON_AddNumberToObject(o, "turns", s->turns);
    add_usage(o, s->prompt_tokens, s->cached_tokens, s->restored_tokens, s->prefill_tokens,
              s->gen_tokens);
    cJSON_AddNumberToObject(o, "duration_s", s->wall_s);
    cJSON_AddNumberToObject(o, "prefill_s", s->prefill_s);
    cJSON_AddNumberToObject(o, "gen_s", s->gen_s);
    cJSON_AddNumberToObject(o, "tool_s", s->tool_s);
    cJSON_AddNumberToObject(o, "tokens_per_s", rate(s->gen_tokens, s->gen_s));
    cJSON_AddNumberToObject(o, "context_tokens", (double)s->context_tokens);
    cJSON_AddBoolToObject(o, "state_restored", r->restored);
    if (status == AG_ERROR)
        cJSON_AddStringToObject(o, "error", r->error[0] ? r->error : "error");
    print_json(o);
}

/* One line of a tool's activity for stderr: the first line of text, cut. */
static void first_line(const char *s, char *out, size_t cap)
{
    size_t n = strcspn(s, "\n");
    if (n >= cap)
        n = cap - 4;
    snprintf(out, cap, "%.*s%s", (int)n, s, s[n] && n == cap - 4 ? "..." : "");
}

static void on_event(void *ud, const struct ag_event *ev)
{
    struct run *r = ud;
    cJSON *o = NULL;
    switch (ev->kind) {
    case AG_EV_INIT:
        if (r->fmt != F_STREAM)
            return;
        o = event("init");
        cJSON_AddStringToObject(o, "session_id", ev->text);
        cJSON_AddStringToObject(o, "backend", ev->name);
        cJSON_AddStringToObject(o, "model", ev->detail ? ev->detail : "");
        cJSON_AddStringToObject(o, "cwd", r->workspace);
        cJSON_AddStringToObject(o, "approval", appr_mode_name(r->approval));
        cJSON_AddBoolToObject(o, "thinking", r->thinking);
        cJSON_AddBoolToObject(o, "resumed", r->resumed);
        cJSON_AddBoolToObject(o, "state_restored", r->restored);
        break;
    case AG_EV_REASONING:
    case AG_EV_TEXT:
        if (r->fmt != F_STREAM)
            return;
        o = event(ev->kind == AG_EV_TEXT ? "text" : "reasoning");
        add_text(o, "text", ev->text, ev->len);
        break;
    case AG_EV_TOOL_USE:
        if (r->fmt == F_TEXT) {
            buf_reset(&r->tool_args);
            buf_puts(&r->tool_args, ev->detail ? ev->detail : "{}");
            return;
        }
        if (r->fmt != F_STREAM)
            return;
        o = event("tool_use");
        cJSON_AddStringToObject(o, "id", ev->id);
        cJSON_AddStringToObject(o, "name", ev->name);
        {
            cJSON *in = cJSON_Parse(ev->detail ? ev->detail : "{}");
            cJSON_AddItemToObject(o, "input", in ? in : cJSON_CreateObject());
        }
        break;
    case AG_EV_TOOL_RESULT:
        if (r->fmt == F_TEXT) {
            char line[200], args[120];
            first_line(ev->text ? ev->text : "", line, sizeof line);
            first_line(r->tool_args.p ? r->tool_args.p : "{}", args, sizeof args);
            fprintf(stderr, "tool %s %s: %s%s\n", ev->name, args, ev->is_error ? "error: " : "ok",
                    ev->is_error ? line : "");
            return;
        }
        if (r->fmt != F_STREAM)
            return;
        o = event("tool_result");
        cJSON_AddStringToObject(o, "id", ev->id);
        cJSON_AddStringToObject(o, "name", ev->name);
        add_text(o, "content", ev->text, ev->len);
        cJSON_AddBoolToObject(o, "is_error", ev->is_error);
        cJSON_AddNumberToObject(o, "elapsed_s", ev->elapsed_s);
        break;
    case AG_EV_TODO:
        if (r->fmt != F_STREAM)
            return;
        o = event("todo");
        {
            cJSON *items = cJSON_Parse(ev->detail ? ev->detail : "[]");
            cJSON_AddItemToObject(o, "items", items ? items : cJSON_CreateArray());
        }
        break;
    case AG_EV_ERROR:
        snprintf(r->error, sizeof r->error, "%s", ev->text ? ev->text : "");
        if (r->fmt != F_STREAM) {
            fprintf(stderr, "lode run: %s\n", ev->text ? ev->text : "error");
            return;
        }
        o = event("error");
        cJSON_AddStringToObject(o, "message", ev->text ? ev->text : "");
        break;
    case AG_EV_TURN_END: {
        const struct ag_stats *s = ev->stats;
        long in = s->prompt_tokens - r->prev.prompt_tokens;
        long cached = s->cached_tokens - r->prev.cached_tokens;
        long restored = s->restored_tokens - r->prev.restored_tokens;
        long pre = s->prefill_tokens - r->prev.prefill_tokens;
        long out = s->gen_tokens - r->prev.gen_tokens;
        double gs = s->gen_s - r->prev.gen_s, ps = s->prefill_s - r->prev.prefill_s;
        r->prev = *s;
        if (r->fmt == F_TEXT) {
            fprintf(stderr,
                    "turn %d: %ld prompt tokens (%ld cached), %ld generated, %.1f tokens/s\n",
                    s->turns, in, cached, out, rate(out, gs));
            return;
        }
        if (r->fmt != F_STREAM)
            return;
        o = event("turn");
        cJSON_AddNumberToObject(o, "turn", s->turns);
        add_usage(o, in, cached, restored, pre, out);
        cJSON_AddNumberToObject(o, "prefill_s", ps);
        cJSON_AddNumberToObject(o, "gen_s", gs);
        cJSON_AddNumberToObject(o, "tokens_per_s", rate(out, gs));
        cJSON_AddNumberToObject(o, "context_tokens", (double)s->context_tokens);
        break;
    }
    case AG_EV_RESULT: print_result(r, ev->status, ev->stats, ev->text); return;
    default: return;
    }
    print_json(o);
}

/* --------------------------------------------------------------- signals */

static struct agent *volatile g_agent;

static void on_signal(int sig)
{
    (void)sig;
    struct agent *a = g_agent;
    if (a)
        ag_interrupt(a); /* one store: async-signal-safe */
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* A second Ctrl-C ends lode at once. */
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* --------------------------------------------------------------- main */

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int fail_early(struct run *r, int code)
{
    /* Machine-readable formats still end with a result object. */
    snprintf(r->error, sizeof r->error, "%s", err_msg());
    if (r->fmt != F_TEXT)
        print_result(r, AG_ERROR, NULL, "");
    fprintf(stderr, "lode run: %s\n", err_msg());
    return code;
}

static int run_main(struct app *a, int argc, char **argv)
{
    struct run r = { .fmt = F_TEXT };
    struct engine_args ea;
    engine_args_init(&ea, a);
    const char *prompt = NULL, *resume = NULL, *cwd = NULL, *rmodel = NULL, *key = NULL;
    const char *spec = NULL;
    int cont = 0;
    long max_turns = 50, max_tokens = 0, seed = 0;
    const char *load = NULL;
    r.approval = appr_mode_parse(cfg_str(&a->cfg, CFG_APPROVAL));
    r.thinking = cfg_bool(&a->cfg, CFG_THINKING);
    struct cli c;
    cli_init(&c, argc, argv);
    for (int o; (o = cli_next(&c, opts)) != CLI_END;) {
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS)
            return cli_usage_error("run", "unexpected argument '%s' (the task goes in -p)", c.arg);
        int rc = EXIT_OK;
        switch (o) {
        case O_PROMPT: prompt = c.arg; break;
        case O_FORMAT:
            if (!strcmp(c.arg, "text"))
                r.fmt = F_TEXT;
            else if (!strcmp(c.arg, "json"))
                r.fmt = F_JSON;
            else if (!strcmp(c.arg, "stream-json"))
                r.fmt = F_STREAM;
            else
                return cli_usage_error("run",
                                       "--output-format: expected text, json or "
                                       "stream-json, got '%s'",
                                       c.arg);
            break;
        case O_APPROVAL:
            if ((r.approval = appr_mode_parse(c.arg)) < 0)
                return cli_usage_error("run",
                                       "--approval: expected plan, default, auto-edit or "
                                       "yolo, got '%s'",
                                       c.arg);
            break;
        case O_MAXTURNS:
            if (parse_long(c.arg, 0, 1000000, &max_turns) < 0)
                return cli_usage_error("run", "--max-turns: expected a number >= 0, got '%s'",
                                       c.arg);
            break;
        case O_THINKING:
            if (strcmp(c.arg, "on") && strcmp(c.arg, "off"))
                return cli_usage_error("run", "--thinking: expected on or off, got '%s'", c.arg);
            r.thinking = !strcmp(c.arg, "on");
            break;
        case O_CONTINUE: cont = 1; break;
        case O_RESUME: resume = c.arg; break;
        case O_MODEL: rc = engine_args_opt(&ea, a, "run", "model", c.arg); break;
        case O_CWD: cwd = c.arg; break;
        case O_MAXTOK:
            if (parse_long(c.arg, 1, LONG_MAX, &max_tokens) < 0)
                return cli_usage_error("run", "--max-tokens: expected a number > 0, got '%s'",
                                       c.arg);
            break;
        case O_SEED:
            if (parse_long(c.arg, 0, LONG_MAX, &seed) < 0)
                return cli_usage_error("run", "--seed: expected a number >= 0, got '%s'", c.arg);
            break;
        case O_RMODEL: rmodel = c.arg; break;
        case O_APIKEY: key = c.arg; break;
        case O_LOAD: load = c.arg; break;
        default:
            if (!strcmp(opts[o].name, "backend")) {
                /* every backend, not only the engine's (engine_args_opt) */
                spec = c.arg;
                rc = cli_cfg_flag(a, "run", "backend", "backend", c.arg);
            } else {
                rc = engine_args_opt(&ea, a, "run", opts[o].name, c.arg);
            }
            break;
        }
        if (rc != EXIT_OK)
            return rc;
    }
    if (cont && resume)
        return cli_usage_error("run", "--continue and --resume exclude each other");

    /* The task. */
    struct buf task = { 0 };
    if (prompt) {
        buf_puts(&task, prompt);
    } else if (isatty(STDIN_FILENO)) {
        return cli_usage_error("run", "no task: pass -p TEXT or pipe it on stdin");
    } else if (fs_read_fd(STDIN_FILENO, PROMPT_MAX, &task) < 0) {
        buf_free(&task);
        return cli_fail();
    }
    if (!task.p || !task.p[strspn(task.p, " \t\r\n")]) {
        buf_free(&task);
        return cli_usage_error("run", "the task is empty");
    }

    /* The workspace. */
    char ws[PATH_MAX];
    if (cwd) {
        if (!realpath(cwd, ws) || !fs_is_dir(ws)) {
            buf_free(&task);
            return cli_usage_error("run", "--cwd %s: not a directory", cwd);
        }
    } else if (fs_project_root(a->cwd, ws, sizeof ws) < 0) {
        buf_free(&task);
        return cli_fail();
    }
    r.workspace = ws;

    if (!spec)
        spec = cfg_str(&a->cfg, CFG_BACKEND);
    struct be_config bc = be_config_default();
    const char *model = ea.model ? ea.model : cfg_str(&a->cfg, CFG_MODEL);
    bc.model = model && *model ? model : NULL;
    bc.threads = ea.o.threads;
    bc.kv_type = ea.o.kv_type;
    bc.yarn = ea.o.yarn;
    bc.isa = ea.o.isa;
    bc.context = cfg_int(&a->cfg, CFG_CONTEXT);
    bc.remote_model = rmodel;
    bc.api_key = key ? key : getenv("LODE_API_KEY");
    if (be_config_cache(&bc, &a->cfg) < 0) {
        buf_free(&task);
        return cli_fail();
    }

    int ec = EXIT_ERROR;
    struct backend *be = NULL;
    struct db *db = NULL;
    if (be_open(&be, spec, &bc) < 0) {
        ec = fail_early(&r, EXIT_ERROR);
        goto out;
    }
    if (db_open(&db, NULL) < 0) {
        ec = fail_early(&r, EXIT_ERROR);
        goto out;
    }
    char latest[DB_ID_MAX];
    if (cont) {
        if (db_session_latest(db, ws, latest) < 0) {
            ec = fail_early(&r, EXIT_ERROR);
            goto out;
        }
        resume = latest;
    }
    struct ag_opts o = ag_opts_default();
    o.thinking = r.thinking;
    o.approval = r.approval;
    o.max_turns = (int)max_turns;
    o.max_tokens = max_tokens;
    o.cwd = ws;
    o.seed = (uint64_t)seed;
    struct ag_hooks h = { .event = on_event, .approve = NULL, .ud = &r };
    if (ag_open(&r.ag, be, db, &a->cfg, &o, &h) < 0) {
        ec = fail_early(&r, EXIT_ERROR);
        goto out;
    }
    if (resume) {
        if (ag_resume(r.ag, resume, &r.restored) < 0) {
            ec = fail_early(&r, EXIT_ERROR);
            goto out;
        }
        r.resumed = 1;
        if (r.fmt == F_TEXT)
            fprintf(stderr, "resuming session %s (%s)\n", ag_session_id(r.ag),
                    r.restored                  ? "model state restored"
                    : (be->caps & BE_CAP_STATE) ? "no saved state: the conversation is re-read"
                                                : "conversation restored");
    }
    if (load && load_files(&r, be, bc.model, load) < 0) {
        ec = fail_early(&r, EXIT_ERROR);
        goto out;
    }
    g_agent = r.ag;
    catch_signals();
    int st = ag_send(r.ag, task.p);
    g_agent = NULL;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    switch (st) {
    case AG_DONE: ec = EXIT_OK; break;
    case AG_TURN_LIMIT:
        if (r.fmt == F_TEXT)
            fprintf(stderr,
                    "lode run: stopped at the turn limit (%ld); continue with "
                    "lode run --resume %s\n",
                    max_turns, ag_session_id(r.ag));
        ec = EXIT_TURNS;
        break;
    case AG_INTERRUPTED:
        if (r.fmt == F_TEXT)
            fprintf(stderr, "lode run: interrupted; the partial answer is kept in session %s\n",
                    ag_session_id(r.ag));
        ec = 130;
        break;
    default: ec = EXIT_ERROR; break;
    }
out:
    ag_close(r.ag);
    db_close(db);
    be_close(be);
    buf_free(&task);
    buf_free(&r.tool_args);
    return ec;
}

const struct command cmd_run = {
    "run",
    run_main,
    "run the agent on one task without the interface (headless)",
    "usage: lode run [-p TASK] [--output-format text|json|stream-json] [--approval MODE]\n"
    "                [--max-turns N] [--thinking on|off] [--continue | --resume ID]\n"
    "                [--model DIR] [--backend SPEC] [--cwd DIR] [engine options]\n"
    "\n"
    "Runs the agent on TASK (-p, or stdin) until its final answer. Calls that the\n"
    "approval mode would ask about are denied and the model is told why. The session\n"
    "is saved as it goes; --continue/--resume pick it up again.\n"
    "\n"
    "Output: text prints the final answer on stdout and one line per tool call and\n"
    "per turn on stderr; json prints one result object at the end; stream-json prints\n"
    "one JSON object per line (init, reasoning, text, tool_use, tool_result, todo,\n"
    "error, turn, result). See README.md, \"Headless: lode run\".\n"
    "\n"
    "Exit codes: 0 done, 1 error, 2 usage, 3 the turn limit was reached,\n"
    "130 interrupted (SIGINT or SIGTERM; a second one ends lode at once).\n",
    opts,
};
