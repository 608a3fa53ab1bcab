/*
 * tui.c - the interactive interface's glue (see tui.h).
 *
 * Two threads. The UI thread owns curses (ui/ui.h) and never blocks on the
 * model; the worker thread owns the backend, the store and the agent, and
 * runs jobs (open the model, send a message, resume, export, ...) one at a
 * time. The worker's agent events become messages in a queue; the first
 * message written to an empty queue writes one byte to a pipe, which wakes
 * the UI's poll; the UI drains the whole queue and redraws at most once a
 * frame, so tokens never cost one redraw each. An approval question is a
 * message too: the worker then waits on a condition variable until the UI
 * thread answers.
 *
 * This file is the UI thread's half (keys, slash commands, turning messages
 * into transcript blocks); tui_worker.c is the worker's (the queue, the
 * agent's hooks, the jobs); tui_int.h what they share.
 */
#include "app/tui.h"
#include "app/tui_int.h"

#include "app/agent.h"
#include "app/backend.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/text.h"
#include "tools/approval.h"
#include "tools/registry.h"
#include "tools/sandbox.h"
#include "ui/ui.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ UI side */

static void status_sync(struct tui *t)
{
    struct ui_status s = *ui_status(t->u);
    s.thinking = t->thinking;
    snprintf(s.mode, sizeof s.mode, "%s", appr_mode_name(t->mode));
    snprintf(s.sandbox, sizeof s.sandbox, "%s", t->sandbox);
    s.busy = t->sending || t->opening;
    if (!s.busy) {
        s.activity[0] = 0;
        s.prefill_total = 0;
    } else if (t->opening) {
        snprintf(s.activity, sizeof s.activity, "opening the model…");
    }
    ui_set_status(t->u, &s);
}

static void set_activity(struct tui *t, const char *a)
{
    struct ui_status s = *ui_status(t->u);
    snprintf(s.activity, sizeof s.activity, "%s", a);
    ui_set_status(t->u, &s);
}

/* A one-line summary of a call's arguments for its card. */
static void args_summary(const char *json, char *out, size_t cap)
{
    out[0] = 0;
    cJSON *a = json ? cJSON_Parse(json) : NULL;
    static const char *const keys[] = {
        "command", "path", "pattern", "url", "query", "file", NULL
    };
    const char *v = NULL;
    for (int i = 0; keys[i] && !v; i++)
        v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, keys[i]));
    char *txt = NULL;
    if (!v && a) {
        txt = cJSON_PrintUnformatted(a);
        v = txt;
    }
    if (!v)
        v = json ? json : "";
    size_t k = 0;
    for (size_t i = 0; v[i] && k + 4 < cap; i++) {
        if (v[i] == '\n') {
            static const char nl[] = " ⏎ "; /* 5 bytes */
            if (k + sizeof nl >= cap)
                break;
            memcpy(out + k, nl, sizeof nl - 1);
            k += sizeof nl - 1;
            continue;
        }
        out[k++] = v[i];
    }
    /* never cut inside a UTF-8 sequence */
    k = utf8_complete_prefix(out, k);
    out[k] = 0;
    if (k > 100)
        strcpy(out + utf8_complete_prefix(out, 97), "…");
    cJSON_free(txt);
    cJSON_Delete(a);
}

static void show_todo(struct tui *t, const char *json)
{
    cJSON *a = cJSON_Parse(json ? json : "[]"), *it;
    struct buf b = { 0 };
    buf_puts(&b, "**Tasks**\n\n");
    cJSON_ArrayForEach(it, a)
    {
        const char *c = cJSON_IsString(it)
                            ? it->valuestring
                            : cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "content"));
        const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "status"));
        const char *mark = st && !strcmp(st, "completed")     ? "[x]"
                           : st && !strcmp(st, "in_progress") ? "[~]"
                                                              : "[ ]";
        buf_printf(&b, "- %s %s\n", mark, c ? c : "?");
    }
    cJSON_Delete(a);
    tr_add(ui_transcript(t->u), TR_NOTICE, b.p ? b.p : "", b.len);
    buf_free(&b);
}

static void send_next(struct tui *t)
{
    if (!t->ready || t->sending || !t->npending)
        return;
    char *text = t->pending[0];
    memmove(t->pending, t->pending + 1, sizeof *t->pending * (size_t)(t->npending - 1));
    t->npending--;
    t->sending = 1;
    t->prev = (struct ag_stats){ 0 };
    tui_push_job(t, J_SEND, 0, text);
    free(text);
    set_activity(t, "waiting for the model…");
    status_sync(t);
}

static const char open_failed[] = "The model did not open. Type a checkpoint directory, `/demo` "
                                  "for a tiny random-weight model, or `/quit`.";

static void handle_msg(struct tui *t, struct msg *m)
{
    struct transcript *tr = ui_transcript(t->u);
    const char *txt = m->text.p ? m->text.p : "";
    struct ui_status s = *ui_status(t->u);
    switch (m->kind) {
    case AG_EV_INIT: snprintf(t->session, sizeof t->session, "%s", txt); break;
    case AG_EV_PREFILL:
        if (m->done == 0 || t->prefill_t0 == 0)
            t->prefill_t0 = time_s();
        s.prefill_done = m->done;
        s.prefill_total = m->total;
        s.prefill_eta_s = -1;
        if (m->done > 0 && m->total > m->done) {
            double el = time_s() - t->prefill_t0;
            s.prefill_eta_s = el / (double)m->done * (double)(m->total - m->done);
        }
        snprintf(s.activity, sizeof s.activity, "reading the prompt");
        ui_set_status(t->u, &s);
        break;
    case AG_EV_REASONING:
        tr_stream(tr, TR_REASONING, txt, m->text.len);
        if (t->sending && strcmp(s.activity, "thinking"))
            set_activity(t, "thinking");
        break;
    case AG_EV_TEXT:
        tr_stream(tr, TR_ANSWER, txt, m->text.len);
        if (t->sending && strcmp(s.activity, "answering"))
            set_activity(t, "answering");
        break;
    case AG_EV_TOOL_USE: {
        char sum[512];
        if (m->detail)
            args_summary(m->detail, sum, sizeof sum);
        else
            snprintf(sum, sizeof sum, "%s", txt);
        tr_tool(tr, m->id, m->name, sum);
        if (t->sending) {
            char a[96];
            snprintf(a, sizeof a, "running %s", m->name ? m->name : "a tool");
            set_activity(t, a);
        }
        break;
    }
    case AG_EV_TOOL_RESULT: {
        int st = m->is_error ? (!strncmp(txt, "denied", 6) ? TR_DENIED : TR_FAILED) : TR_OK;
        tr_tool_done(tr, m->id, st, m->elapsed_s, txt, m->text.len);
        break;
    }
    case AG_EV_TODO: show_todo(t, m->detail); break;
    case AG_EV_TURN_END:
        if (m->has_stats) {
            long out = m->stats.gen_tokens - t->prev.gen_tokens;
            double gs = m->stats.gen_s - t->prev.gen_s;
            s.tok_s = gs > 0 && out > 0 ? out / gs : s.tok_s;
            s.reused = m->stats.cached_tokens - t->prev.cached_tokens;
            s.ctx_used = m->stats.context_tokens;
            if (m->stats.context_max)
                s.ctx_max = m->stats.context_max;
            s.prefill_total = 0;
            t->prev = m->stats;
            ui_set_status(t->u, &s);
        }
        tr_close(tr);
        break;
    case AG_EV_ERROR: tr_add(tr, TR_ERROR, txt, m->text.len); break;
    case AG_EV_RESULT:
        tr_close(tr);
        if (m->text.len) {
            free(t->last_answer);
            t->last_answer = strdup(txt);
        }
        if (m->status == AG_INTERRUPTED)
            tr_add(tr, TR_NOTICE, "interrupted (the partial answer is kept)", 40);
        else if (m->status == AG_TURN_LIMIT)
            tr_add(tr, TR_NOTICE, "stopped at the turn limit", 25);
        break;
    case M_OPENED:
        t->ready = 1;
        snprintf(t->session, sizeof t->session, "%s", m->id ? m->id : "");
        /* what a remote server cannot give is said where the backend is named */
        snprintf(s.backend, sizeof s.backend, "%s%s", m->name ? m->name : "",
                 m->status & BE_CAP_PROMPT ? "" : " (no snapshots)");
        {
            /* the model's last path component is enough for the status line */
            const char *d = txt;
            size_t n = strlen(d);
            while (n > 1 && d[n - 1] == '/')
                n--;
            const char *b = d + n;
            while (b > d && b[-1] != '/')
                b--;
            snprintf(s.model, sizeof s.model, "%.*s", (int)(d + n - b), b);
        }
        ui_set_status(t->u, &s);
        if (t->caps_probed) {
            const char *ln = sbx_level_name(sbx_level(&t->caps));
            snprintf(t->sandbox, sizeof t->sandbox, "%.*s", (int)strcspn(ln, ":"), ln);
        }
        break;
    case M_OPEN_FAILED:
        tr_add(tr, TR_ERROR, txt, m->text.len);
        tr_add(tr, TR_NOTICE, open_failed, strlen(open_failed));
        t->setup = 1;
        break;
    case M_ASK: {
        char q[512];
        snprintf(q, sizeof q, "Allow %s? %s", m->name ? m->name : "this call", txt);
        /* details: the arguments, pretty-printed */
        cJSON *a = cJSON_Parse(m->detail ? m->detail : "{}");
        char *pretty = a ? cJSON_Print(a) : NULL;
        ui_ask(t->u, q, pretty ? pretty : m->detail);
        cJSON_free(pretty);
        cJSON_Delete(a);
        set_activity(t, "waiting for your answer");
        break;
    }
    case M_NOTICE: tr_add(tr, TR_NOTICE, txt, m->text.len); break;
    case M_ERROR: tr_add(tr, TR_ERROR, txt, m->text.len); break;
    case M_REPLAY_USER: tr_add(tr, TR_USER, txt, m->text.len); break;
    case M_CLEAR: tr_clear(tr); break;
    case M_IDLE:
        if (m->status == J_SEND)
            t->sending = 0;
        if (m->status == J_OPEN || m->status == J_DEMO || m->status == J_MODEL)
            t->opening = 0;
        status_sync(t);
        send_next(t);
        break;
    }
    ui_dirty(t->u);
}

static void drain(struct tui *t)
{
    char tmp[256];
    while (read(t->wake[0], tmp, sizeof tmp) > 0)
        ;
    pthread_mutex_lock(&t->mu);
    struct msg *m = t->msgs;
    t->msgs = t->msgs_tail = NULL;
    pthread_mutex_unlock(&t->mu);
    while (m) {
        struct msg *next = m->next;
        handle_msg(t, m);
        tui_msg_free(m);
        m = next;
    }
}

/* Under the lock, so the agent cannot be closed in between. */
static void interrupt_send(struct tui *t)
{
    pthread_mutex_lock(&t->mu);
    if (t->ag_for_interrupt)
        ag_interrupt(t->ag_for_interrupt);
    pthread_mutex_unlock(&t->mu);
}

static void answer(struct tui *t, int a)
{
    pthread_mutex_lock(&t->mu);
    t->answer = a;
    pthread_cond_signal(&t->acv);
    pthread_mutex_unlock(&t->mu);
    ui_ask_done(t->u);
    set_activity(t, "working");
}

static const char *const slash_names[] = {
    "help",   "think",   "nothink", "mode",    "new",   "sessions", "resume",
    "export", "context", "tools",   "sandbox", "model", "clear",    "find",
    "quit",   "load",    "demo",    "expand",  NULL,
};

static const char help_text[] =
    "**Commands**\n\n"
    "- `/help` this text; `/quit` leave (also Ctrl+D on an empty line, Ctrl+C twice)\n"
    "- `/think`, `/nothink` thinking on or off (Ctrl+T toggles)\n"
    "- `/mode [plan|default|auto-edit|yolo]` approval mode (Shift+Tab cycles)\n"
    "- `/new` a new session (files from `/load` stay loaded); `/clear` clears the screen\n"
    "- `/sessions`, `/resume ID`, `/export [FILE]` saved conversations\n"
    "- `/context` tokens in the context; `/tools` the tools; `/sandbox`\n"
    "- `/model [DIR]` the model, or switch to another checkpoint (the conversation goes on)\n"
    "- `/expand [N]` shows or hides one tool card's output or thinking block (1: the newest)\n"
    "- `/find TEXT` scrolls to the previous row holding TEXT\n"
    "- `/load [DIR]` puts the files `lode load DIR` would choose into the conversation\n"
    "- `!command` runs a shell command in the sandbox\n\n"
    "**Keys**: Enter sends; Ctrl+J, Alt+Enter or a trailing `\\` for a new line; Up/Down "
    "history; Ctrl+R search; Esc stops the answer; PgUp/PgDn scroll; Ctrl+O tool output; "
    "Ctrl+G reasoning; Tab completes /commands and @paths; Ctrl+Z suspends.\n";

static void notice(struct tui *t, const char *s)
{
    tr_add(ui_transcript(t->u), TR_NOTICE, s, strlen(s));
    ui_dirty(t->u);
}

static void error_line(struct tui *t, const char *s)
{
    tr_add(ui_transcript(t->u), TR_ERROR, s, strlen(s));
    ui_dirty(t->u);
}

static void set_thinking(struct tui *t, int on)
{
    t->thinking = on;
    tui_push_job(t, J_THINK, on, NULL);
    ui_hint(t->u, "thinking %s%s", on ? "on" : "off", t->sending ? " from the next message" : "");
    status_sync(t);
}

static void set_mode(struct tui *t, int mode)
{
    t->mode = mode;
    tui_push_job(t, J_MODE, mode, NULL);
    ui_hint(t->u, "approval mode: %s", appr_mode_name(mode));
    status_sync(t);
}

static void show_tools(struct tui *t)
{
    struct buf s = { 0 };
    if (tool_schemas_json(&s) < 0) {
        error_line(t, err_msg());
        return;
    }
    cJSON *a = cJSON_Parse(s.p ? s.p : "[]"), *it;
    struct buf b = { 0 };
    buf_puts(&b, "**Tools**\n\n");
    cJSON_ArrayForEach(it, a)
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(it, "function");
        const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"));
        const char *d = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "description"));
        buf_printf(&b, "- `%s` %.*s\n", n ? n : "?", d ? (int)strcspn(d, ".\n") : 0, d ? d : "");
    }
    cJSON_Delete(a);
    notice(t, b.p ? b.p : "");
    buf_free(&b);
    buf_free(&s);
}

/* /model: shows the model, or switches the checkpoint (job_model). */
static void model_command(struct tui *t, const char *arg)
{
    char b[PATH_MAX * 2 + 256];
    if (!*arg) {
        snprintf(b, sizeof b, "**Model**: %s (backend %s). `/model DIR` opens another checkpoint.",
                 t->model[0] ? t->model : "(none)", t->spec);
        notice(t, b);
    } else if (!tui_engine_spec(t->spec)) {
        snprintf(b, sizeof b,
                 "/model: the %.40s backend has no checkpoint to switch; restart with "
                 "`lode --backend SPEC`",
                 t->spec);
        error_line(t, b);
    } else if (!fs_is_dir(arg)) {
        snprintf(b, sizeof b, "/model: %s is not a directory", arg);
        error_line(t, b);
    } else if (!t->ready || t->sending || t->opening) {
        error_line(t, "/model: wait until the model is open and the answer has ended");
    } else {
        char abs[PATH_MAX];
        if (!realpath(arg, abs))
            snprintf(abs, sizeof abs, "%s", arg);
        t->opening = 1;
        t->ready = 0;
        tui_push_job(t, J_MODEL, 0, abs);
        status_sync(t);
    }
}

static int only_space(const char *s) { return !s[strspn(s, " \t\r\n")]; }

/* Returns 1 when the user asked to quit. */
static int command(struct tui *t, char *text)
{
    char *arg = text + 1 + strcspn(text + 1, " \t\n");
    if (*arg)
        *arg++ = 0;
    arg += strspn(arg, " \t");
    const char *c = text + 1;
    if (!strcmp(c, "quit") || !strcmp(c, "exit"))
        return 1;
    if (!strcmp(c, "help")) {
        notice(t, help_text);
    } else if (!strcmp(c, "think")) {
        set_thinking(t, 1);
    } else if (!strcmp(c, "nothink")) {
        set_thinking(t, 0);
    } else if (!strcmp(c, "mode")) {
        if (!*arg) {
            set_mode(t, appr_mode_next(t->mode));
        } else {
            int m = appr_mode_parse(arg);
            if (m < 0)
                error_line(t, "/mode: expected plan, default, auto-edit or yolo");
            else
                set_mode(t, m);
        }
    } else if (!strcmp(c, "new")) {
        tr_clear(ui_transcript(t->u));
        tui_push_job(t, J_NEW, 0, NULL);
        notice(t, "a new session");
    } else if (!strcmp(c, "clear")) {
        tr_clear(ui_transcript(t->u));
        ui_dirty(t->u);
    } else if (!strcmp(c, "sessions")) {
        tui_push_job(t, J_SESSIONS, 0, NULL);
    } else if (!strcmp(c, "resume")) {
        if (!*arg)
            tui_push_job(t, J_SESSIONS, 0, NULL);
        else
            tui_push_job(t, J_RESUME, 0, arg);
    } else if (!strcmp(c, "export")) {
        tui_push_job(t, J_EXPORT, 0, arg);
    } else if (!strcmp(c, "context")) {
        tui_push_job(t, J_CONTEXT, 0, NULL);
    } else if (!strcmp(c, "tools")) {
        show_tools(t);
    } else if (!strcmp(c, "sandbox")) {
        char b[256];
        snprintf(b, sizeof b, "**Sandbox**: %s. `lode sandbox --verify` checks it.",
                 t->caps_probed ? sbx_level_name(sbx_level(&t->caps)) : "not probed yet");
        notice(t, b);
    } else if (!strcmp(c, "model")) {
        model_command(t, arg);
    } else if (!strcmp(c, "expand")) {
        char *end;
        long nth = *arg ? strtol(arg, &end, 10) : 1;
        if ((*arg && (*end || nth < 1 || nth > INT_MAX)) ||
            tr_toggle(ui_transcript(t->u), (int)nth) < 0) {
            err_clear();
            error_line(
                t, "/expand N: N counts the tool cards and thinking blocks from the newest (1)");
        } else {
            ui_dirty(t->u);
        }
    } else if (!strcmp(c, "find")) {
        if (!ui_find(t->u, arg))
            ui_hint(t->u, "no earlier row holds '%.60s'", arg);
        else
            ui_hint(t->u, "found '%.60s' (/find again for an older one, PgDn back)", arg);
    } else if (!strcmp(c, "load")) {
        tui_push_job(t, J_LOAD, 0, *arg ? arg : ".");
    } else if (!strcmp(c, "demo")) {
        if (t->ready) {
            notice(t, "a model is already open");
        } else if (!t->opening) {
            t->opening = 1;
            t->setup = 0;
            tui_push_job(t, J_DEMO, 0, NULL);
            status_sync(t);
        }
    } else {
        char b[128];
        snprintf(b, sizeof b, "unknown command /%.60s (see /help)", c);
        error_line(t, b);
    }
    return 0;
}

/* Returns 1 to quit. */
static int submitted(struct tui *t, char *text)
{
    if (only_space(text))
        return 0;
    /* "/usr/src/x is broken" is a message (or, on the first-run screen, a
     * path), not a command: command names hold no '/' */
    size_t w = strcspn(text + 1, " \t\n");
    if (text[0] == '/' && text[1] && !memchr(text + 1, '/', w))
        return command(t, text);
    if (text[0] == '!' && text[1]) {
        tui_push_job(t, J_SHELL, 0, text + 1);
        return 0;
    }
    if (t->setup) {
        /* first-run screen: a checkpoint directory */
        char *p = text + strspn(text, " \t");
        p[strcspn(p, "\r\n")] = 0;
        if (!fs_is_dir(p)) {
            char b[PATH_MAX + 64];
            snprintf(b, sizeof b, "%s: not a directory", p);
            error_line(t, b);
            return 0;
        }
        snprintf(t->model, sizeof t->model, "%s", p);
        if (!strcmp(t->spec, "auto") || !t->spec[0])
            snprintf(t->spec, sizeof t->spec, "auto");
        t->setup = 0;
        t->opening = 1;
        tui_push_job(t, J_OPEN, 0, NULL);
        status_sync(t);
        return 0;
    }
    tr_add(ui_transcript(t->u), TR_USER, text, strlen(text));
    char **v = realloc(t->pending, sizeof *v * (size_t)(t->npending + 1));
    char *copy = strdup(text);
    if (!v || !copy) {
        free(copy);
        if (v)
            t->pending = v;
        error_line(t, "out of memory");
        return 0;
    }
    t->pending = v;
    t->pending[t->npending++] = copy;
    if (!t->ready)
        ui_hint(t->u, "the message waits until the model is open");
    else if (t->sending)
        ui_hint(t->u, "queued until the current answer ends");
    send_next(t);
    ui_dirty(t->u);
    return 0;
}

static int need_setup(struct tui *t)
{
    return tui_engine_spec(t->spec) && !t->model[0]; /* script: and openai: need no checkpoint */
}

static const char first_run[] =
    "# Welcome to lode\n\n"
    "No model is configured. Either:\n\n"
    "1. type the path of a checkpoint directory (Qwen3.6-35B-A3B W4A16, see `lode pull`), or\n"
    "2. type `/demo` for a tiny demo model made with `lode mkmodel` - **random weights**: it "
    "answers gibberish, but shows how everything works, or\n"
    "3. `/quit`, then `lode pull` (about 28 GB) and start `lode` again.\n";

/* While the UI runs, stray writes to stderr (a library, a log line) would
 * scribble over the screen: they go to a log file in the data directory. */
static int redirect_stderr(void)
{
    char dir[PATH_MAX], path[PATH_MAX];
    if (fs_xdg_dir(FS_XDG_DATA, dir, sizeof dir) < 0 || fs_mkdir_p(dir, 0700) < 0 ||
        fs_join(path, sizeof path, dir, "lode.log") < 0) {
        err_clear();
        return -1;
    }
    int saved = dup(STDERR_FILENO);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || saved < 0) {
        if (fd >= 0)
            close(fd);
        if (saved >= 0)
            close(saved);
        return -1;
    }
    dup2(fd, STDERR_FILENO);
    close(fd);
    return saved;
}

int tui_main(struct app *a, const struct tui_args *args)
{
    struct tui *t = calloc(1, sizeof *t);
    if (!t) {
        fprintf(stderr, "lode: out of memory\n");
        return EXIT_ERROR;
    }
    t->app = a;
    t->wake[0] = t->wake[1] = -1;
    const char *spec = args && args->backend ? args->backend : cfg_str(&a->cfg, CFG_BACKEND);
    const char *model = args && args->model ? args->model : cfg_str(&a->cfg, CFG_MODEL);
    snprintf(t->spec, sizeof t->spec, "%s", spec && *spec ? spec : "auto");
    snprintf(t->model, sizeof t->model, "%s", model ? model : "");
    if (args && args->resume)
        snprintf(t->resume, sizeof t->resume, "%s", args->resume);
    t->continue_last = args && args->continue_last;
    t->thinking = cfg_bool(&a->cfg, CFG_THINKING);
    t->mode = appr_mode_parse(cfg_str(&a->cfg, CFG_APPROVAL));
    if (t->mode < 0)
        t->mode = APPR_DEFAULT;
    if (fs_project_root(a->cwd, t->workspace, sizeof t->workspace) < 0)
        snprintf(t->workspace, sizeof t->workspace, "%s", a->cwd);
    int rc = EXIT_OK;
    if (pipe2(t->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, "lode: pipe: %s\n", strerror(errno));
        free(t);
        return EXIT_ERROR;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->jcv, NULL);
    pthread_cond_init(&t->acv, NULL);

    const char *col = cfg_str(&a->cfg, CFG_UI_COLOR);
    struct ui_opts uo = { .color = !strcmp(col, "always")  ? 1
                                   : !strcmp(col, "never") ? 0
                                                           : -1,
                          .mouse = cfg_bool(&a->cfg, CFG_UI_MOUSE),
                          .chip_lines = 10 };
    char hdir[PATH_MAX], hist[PATH_MAX];
    if (fs_xdg_dir(FS_XDG_DATA, hdir, sizeof hdir) == 0 && fs_mkdir_p(hdir, 0700) == 0 &&
        fs_join(hist, sizeof hist, hdir, "history") == 0)
        uo.history = hist;
    err_clear();
    int saved_err = -1;
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "lode: the interactive interface needs a terminal; "
                        "use `lode run -p TASK` for scripts\n");
        rc = EXIT_USAGE;
        goto out;
    }
    saved_err = redirect_stderr();
    if (ui_open(&t->u, &uo) < 0) {
        if (saved_err >= 0)
            dup2(saved_err, STDERR_FILENO);
        fprintf(stderr, "lode: %s\n", err_msg());
        rc = EXIT_ERROR;
        goto out;
    }
    ui_set_commands(t->u, slash_names);
    status_sync(t);
    /* the prompt is on screen before anything slow starts */
    ui_draw(t->u);

    /* the worker must not take the terminal's signals: they belong to the UI
     * thread's poll (SIGWINCH interrupts it so a resize is seen at once) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int th = pthread_create(&t->th, NULL, tui_worker, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (th != 0) {
        ui_close(t->u);
        t->u = NULL;
        if (saved_err >= 0)
            dup2(saved_err, STDERR_FILENO);
        fprintf(stderr, "lode: cannot start the worker thread\n");
        rc = EXIT_ERROR;
        goto out;
    }
    t->th_started = 1;
    if (need_setup(t)) {
        t->setup = 1;
        notice(t, first_run);
    } else {
        t->opening = 1;
        tui_push_job(t, J_OPEN, 0, NULL);
        status_sync(t);
    }

    for (;;) {
        struct ui_ev ev;
        if (ui_wait(t->u, t->wake[0], -1, &ev) < 0)
            break;
        int quit = 0;
        switch (ev.kind) {
        case UI_EV_FD: drain(t); break;
        case UI_EV_SUBMIT:
            quit = submitted(t, ev.text);
            free(ev.text);
            break;
        case UI_EV_STOP:
            interrupt_send(t);
            /* messages queued behind the stopped one are dropped too */
            for (int i = 0; i < t->npending; i++)
                free(t->pending[i]);
            t->npending = 0;
            ui_hint(t->u, "stopping…");
            break;
        case UI_EV_QUIT: quit = 1; break;
        case UI_EV_MODE: set_mode(t, appr_mode_next(t->mode)); break;
        case UI_EV_THINK: set_thinking(t, !t->thinking); break;
        case UI_EV_ANSWER:
            answer(t, ev.answer == 'y' ? AG_ALLOW : ev.answer == 'a' ? AG_ALLOW_ALWAYS : AG_DENY);
            break;
        case UI_EV_NONE: break;
        }
        if (quit)
            break;
    }

out:;
    char *last = t->last_answer;
    t->last_answer = NULL;
    if (t->th_started) {
        /* stop what runs, answer a pending question, and let the worker
         * close the agent (which saves the session) */
        interrupt_send(t);
        pthread_mutex_lock(&t->mu);
        t->quitting = 1;
        t->answer = AG_DENY;
        pthread_cond_signal(&t->acv);
        /* drop queued jobs: only the quit runs */
        while (t->jobs) {
            struct job *j = t->jobs;
            t->jobs = j->next;
            free(j->text);
            free(j);
        }
        t->jobs_tail = NULL;
        pthread_mutex_unlock(&t->mu);
        tui_push_job(t, J_QUIT, 0, NULL);
    }
    ui_close(t->u);
    t->u = NULL;
    if (saved_err >= 0) {
        dup2(saved_err, STDERR_FILENO);
        close(saved_err);
    }
    if (t->th_started) {
        if (t->opening) {
            /* a model still loading cannot be stopped: leave without waiting */
            if (last && *last)
                printf("%s%s", last, last[strlen(last) - 1] == '\n' ? "" : "\n");
            fflush(stdout);
            _exit(rc);
        }
        /* ag_send clears the interrupt flag when it starts: keep asking
         * until the worker is gone */
        for (;;) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            if (pthread_timedjoin_np(t->th, NULL, &ts) != ETIMEDOUT)
                break;
            interrupt_send(t);
        }
    }
    if (last && *last)
        printf("%s%s", last, last[strlen(last) - 1] == '\n' ? "" : "\n");
    if (t->session[0])
        printf("session %s (/resume %s in lode, or lode run --resume %s)\n", t->session, t->session,
               t->session);
    free(last);
    {
        struct msg *m = t->msgs;
        while (m) {
            struct msg *n = m->next;
            tui_msg_free(m);
            m = n;
        }
    }
    for (int i = 0; i < t->npending; i++)
        free(t->pending[i]);
    free(t->pending);
    if (t->wake[0] >= 0)
        close(t->wake[0]);
    if (t->wake[1] >= 0)
        close(t->wake[1]);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->jcv);
    pthread_cond_destroy(&t->acv);
    free(t);
    return rc;
}
