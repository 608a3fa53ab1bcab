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
 */
#include "app/tui.h"

#include "app/agent.h"
#include "app/backend.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/text.h"
#include "db/store.h"
#include "engine/mkmodel.h"
#include "tools/approval.h"
#include "tools/policy.h"
#include "tools/registry.h"
#include "tools/sandbox.h"
#include "ui/ui.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum job_kind {
    J_OPEN,
    J_DEMO,
    J_SEND,
    J_NEW,
    J_RESUME,
    J_SHELL,
    J_SESSIONS,
    J_EXPORT,
    J_CONTEXT,
    J_THINK,
    J_MODE,
    J_QUIT
};

struct job {
    struct job *next;
    enum job_kind kind;
    int ival;
    char *text;
};

/* Worker -> UI messages: the agent's events (enum ag_ev_kind) and these. */
enum { M_OPENED = 100, M_OPEN_FAILED, M_ASK, M_NOTICE, M_ERROR, M_IDLE, M_REPLAY_USER, M_CLEAR };

struct msg {
    struct msg *next;
    int kind;
    struct buf text;
    char *id, *name, *detail;
    int is_error, status;
    double elapsed_s;
    long done, total;
    struct ag_stats stats;
    int has_stats;
};

struct tui {
    struct app *app;
    struct ui *u;
    char workspace[PATH_MAX];
    char spec[PATH_MAX + 16];
    char model[PATH_MAX];
    char resume[64];
    pthread_t th;
    int th_started;
    pthread_mutex_t mu;
    pthread_cond_t jcv, acv;
    struct job *jobs, *jobs_tail; /* UI -> worker */
    struct msg *msgs, *msgs_tail; /* worker -> UI */
    int wake[2];
    int answer; /* approval: -1 until the UI answers */
    /* owned by the worker */
    struct backend *be;
    struct db *db;
    struct agent *ag;
    struct pol *pol;
    struct sbx_caps caps;
    int caps_probed;
    int shell_n;
    /* UI thread state */
    struct agent *ag_for_interrupt; /* under mu: set while a send runs */
    int ready;                      /* the model is open */
    int opening;                    /* J_OPEN / J_DEMO queued or running */
    int sending;                    /* a J_SEND is queued or running */
    int setup;                      /* first-run screen: no model configured */
    int thinking, mode;
    char session[DB_ID_MAX];
    char sandbox[32];
    char **pending; /* messages typed while the model loads or works */
    int npending;
    double prefill_t0;
    struct ag_stats prev;
    char *last_answer; /* printed on exit */
    int quitting;      /* under mu: a question asked now is denied at once */
};

/* ------------------------------------------------------------ messages */

static struct msg *msg_new(int kind)
{
    struct msg *m = calloc(1, sizeof *m);
    if (m)
        m->kind = kind;
    return m;
}

static void msg_free(struct msg *m)
{
    buf_free(&m->text);
    free(m->id);
    free(m->name);
    free(m->detail);
    free(m);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void post(struct tui *t, struct msg *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&t->mu);
    int was_empty = !t->msgs;
    if (t->msgs_tail)
        t->msgs_tail->next = m;
    else
        t->msgs = m;
    t->msgs_tail = m;
    pthread_mutex_unlock(&t->mu);
    if (was_empty) {
        char c = 1;
        while (write(t->wake[1], &c, 1) < 0 && errno == EINTR)
            ;
    }
}

/* Streamed text: appended to the last queued message of the same kind when
 * the UI has not taken it yet (fewer allocations under a fast stream). */
static void post_delta(struct tui *t, int kind, const char *s, size_t n)
{
    pthread_mutex_lock(&t->mu);
    if (t->msgs_tail && t->msgs_tail->kind == kind) {
        buf_append(&t->msgs_tail->text, s, n);
        pthread_mutex_unlock(&t->mu);
        return;
    }
    pthread_mutex_unlock(&t->mu);
    struct msg *m = msg_new(kind);
    if (m && buf_append(&m->text, s, n) < 0) {
        msg_free(m);
        return;
    }
    post(t, m);
}

static void post_text(struct tui *t, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void post_text(struct tui *t, int kind, const char *fmt, ...)
{
    struct msg *m = msg_new(kind);
    if (!m)
        return;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&m->text, fmt, ap);
    va_end(ap);
    post(t, m);
}

static void push_job(struct tui *t, enum job_kind kind, int ival, const char *text)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->kind = kind;
    j->ival = ival;
    j->text = dup_or_null(text);
    pthread_mutex_lock(&t->mu);
    if (t->jobs_tail)
        t->jobs_tail->next = j;
    else
        t->jobs = j;
    t->jobs_tail = j;
    pthread_cond_signal(&t->jcv);
    pthread_mutex_unlock(&t->mu);
}

/* ------------------------------------------------------------ worker */

static void on_event(void *ud, const struct ag_event *ev)
{
    struct tui *t = ud;
    if (ev->kind == AG_EV_REASONING || ev->kind == AG_EV_TEXT) {
        post_delta(t, ev->kind, ev->text ? ev->text : "", ev->text ? ev->len : 0);
        return;
    }
    if (ev->kind == AG_EV_USER)
        return; /* the UI showed it when it was typed */
    struct msg *m = msg_new(ev->kind);
    if (!m)
        return;
    if (ev->text)
        buf_append(&m->text, ev->text, ev->len ? ev->len : strlen(ev->text));
    m->id = dup_or_null(ev->id);
    m->name = dup_or_null(ev->name);
    m->detail = dup_or_null(ev->detail);
    m->is_error = ev->is_error;
    m->status = ev->status;
    m->elapsed_s = ev->elapsed_s;
    m->done = ev->done;
    m->total = ev->total;
    if (ev->stats) {
        m->stats = *ev->stats;
        m->has_stats = 1;
    }
    post(t, m);
}

static enum ag_decision on_approve(void *ud, const char *tool, const char *args, const char *reason)
{
    struct tui *t = ud;
    struct msg *m = msg_new(M_ASK);
    if (!m)
        return AG_DENY;
    m->name = dup_or_null(tool);
    m->detail = dup_or_null(args);
    buf_puts(&m->text, reason ? reason : tool);
    pthread_mutex_lock(&t->mu);
    t->answer = -1;
    int quitting = t->quitting;
    pthread_mutex_unlock(&t->mu);
    if (quitting) {
        msg_free(m);
        return AG_DENY;
    }
    post(t, m);
    pthread_mutex_lock(&t->mu);
    while (t->answer < 0 && !t->quitting)
        pthread_cond_wait(&t->acv, &t->mu);
    int a = t->quitting ? AG_DENY : t->answer;
    pthread_mutex_unlock(&t->mu);
    return (enum ag_decision)a;
}

static int open_agent(struct tui *t)
{
    struct ag_opts o = ag_opts_default();
    o.thinking = t->thinking;
    o.approval = t->mode;
    o.max_turns = 50;
    o.cwd = t->workspace;
    struct ag_hooks h = { .event = on_event, .approve = on_approve, .ud = t };
    if (ag_open(&t->ag, t->be, t->db, &t->app->cfg, &o, &h) < 0)
        return -1;
    struct msg *m = msg_new(M_OPENED);
    if (m) {
        buf_puts(&m->text, t->be->model_desc);
        m->name = strdup(t->be->name);
        m->id = strdup(ag_session_id(t->ag) ? ag_session_id(t->ag) : "");
        post(t, m);
    }
    return 0;
}

/* Shows a saved conversation again (after /resume). */
static void replay(struct tui *t)
{
    const cJSON *msgs = ag_messages(t->ag), *m;
    post(t, msg_new(M_CLEAR));
    cJSON_ArrayForEach(m, msgs)
    {
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
        const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "content"));
        if (!role)
            continue;
        if (!strcmp(role, "user")) {
            post_text(t, M_REPLAY_USER, "%s", content ? content : "");
        } else if (!strcmp(role, "assistant")) {
            const char *r =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "reasoning_content"));
            if (r && *r)
                post_delta(t, AG_EV_REASONING, r, strlen(r));
            if (content && *content)
                post_delta(t, AG_EV_TEXT, content, strlen(content));
            const cJSON *c;
            cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
            {
                const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "function");
                struct msg *u = msg_new(AG_EV_TOOL_USE);
                if (!u)
                    continue;
                u->id =
                    dup_or_null(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "id")));
                u->name =
                    dup_or_null(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name")));
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(f, "arguments");
                u->detail = cJSON_IsString(a) ? strdup(a->valuestring)
                                              : (a ? cJSON_PrintUnformatted(a) : NULL);
                post(t, u);
            }
        } else if (!strcmp(role, "tool")) {
            struct msg *r = msg_new(AG_EV_TOOL_RESULT);
            if (!r)
                continue;
            r->id = dup_or_null(
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "tool_call_id")));
            r->name =
                dup_or_null(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "name")));
            r->is_error = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "is_error"));
            buf_puts(&r->text, content ? content : "");
            post(t, r);
        }
    }
    post(t, msg_new(AG_EV_RESULT)); /* ends the replayed stream */
}

/* The demo model needs a tokenizer and none ships with lode: a byte-level
 * one (every byte a token, no merges, the chat template's special tokens)
 * is enough for random weights. */
static int write_demo_tokenizer(const char *path)
{
    static const char *const special[] = {
        "<|endoftext|>", "<|im_start|>", "<|im_end|>",      "<think>",          "</think>",
        "<tool_call>",   "</tool_call>", "<tool_response>", "</tool_response>",
    };
    struct buf b = { 0 };
    buf_puts(&b, "{\"version\": \"1.0\", \"added_tokens\": [");
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        buf_printf(&b,
                   "%s{\"id\": %zu, \"content\": \"%s\", \"single_word\": false, "
                   "\"lstrip\": false, \"rstrip\": false, \"normalized\": false, "
                   "\"special\": %s}",
                   i ? ", " : "", 256 + i, special[i], i < 3 ? "true" : "false");
    buf_puts(&b, "], \"normalizer\": null, \"pre_tokenizer\": {\"type\": \"ByteLevel\", "
                 "\"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": false}, "
                 "\"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
                 "\"trim_offsets\": false, \"use_regex\": false}, "
                 "\"model\": {\"type\": \"BPE\", \"vocab\": {");
    /* GPT-2's bytes_to_unicode: printable bytes stand for themselves, the
     * others map to U+0100 upwards in byte order */
    int extra = 0;
    for (int c = 0; c < 256; c++) {
        int printable = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174;
        uint32_t cp = printable ? (uint32_t)c : (uint32_t)(256 + extra++);
        char u[4];
        int n = utf8_encode(cp, u);
        buf_puts(&b, c ? ", " : "");
        buf_json_str(&b, u, (size_t)n);
        buf_printf(&b, ": %d", c);
    }
    buf_puts(&b, "}, \"merges\": []}}"); /* HF's order: vocab, then merges */
    int rc = b.p ? fs_write_atomic(path, b.p, b.len) : err_set(ERR_NOMEM, "demo: out of memory");
    buf_free(&b);
    return rc;
}

static void job_open(struct tui *t, int demo)
{
    if (demo) {
        char dir[PATH_MAX], out[PATH_MAX];
        if (fs_xdg_dir(FS_XDG_DATA, dir, sizeof dir) < 0 ||
            fs_join(out, sizeof out, dir, "demo-model") < 0) {
            post_text(t, M_OPEN_FAILED, "demo model: %s", err_msg());
            return;
        }
        if (!fs_is_dir(out)) {
            post_text(t, M_NOTICE, "making the tiny demo model in %s (random weights)…", out);
            char tok[PATH_MAX];
            struct mk_opts mo = {
                .out = out, .preset = MK_TINY, .mixed = 1, .seed = 1, .shards = 1, .tokenizer = tok
            };
            if (fs_mkdir_p(dir, 0700) < 0 ||
                fs_join(tok, sizeof tok, dir, "demo-tokenizer.json") < 0 ||
                write_demo_tokenizer(tok) < 0 || mk_write(&mo) < 0) {
                post_text(t, M_OPEN_FAILED, "demo model: %s", err_msg());
                return;
            }
        }
        snprintf(t->model, sizeof t->model, "%s", out);
        snprintf(t->spec, sizeof t->spec, "cpu");
    }
    struct be_config bc = be_config_default();
    bc.model = t->model[0] ? t->model : NULL;
    bc.threads = (int)cfg_int(&t->app->cfg, CFG_THREADS);
    bc.context = cfg_int(&t->app->cfg, CFG_CONTEXT);
    bc.api_key = getenv("LODE_API_KEY");
    if (!t->caps_probed) {
        sbx_probe(&t->caps, getenv("LODE_SANDBOX_DISABLE"));
        t->caps_probed = 1;
    }
    if (be_open(&t->be, t->spec, &bc) < 0) {
        post_text(t, M_OPEN_FAILED, "%s", err_msg());
        return;
    }
    if (!t->db && db_open(&t->db, NULL) < 0) {
        post_text(t, M_NOTICE, "sessions are not saved: %s", err_msg());
        t->db = NULL;
    }
    if (open_agent(t) < 0) {
        post_text(t, M_OPEN_FAILED, "%s", err_msg());
        be_close(t->be);
        t->be = NULL;
        return;
    }
    if (t->resume[0]) {
        int restored = 0;
        if (ag_resume(t->ag, t->resume, &restored) < 0) {
            post_text(t, M_ERROR, "resume %s: %s", t->resume, err_msg());
        } else {
            replay(t);
            post_text(t, M_NOTICE, "resumed session %s%s", ag_session_id(t->ag),
                      restored ? " (model state restored)" : "");
        }
    }
}

static void job_send(struct tui *t, const char *text)
{
    if (!t->ag) {
        post_text(t, M_ERROR, "no model is open");
        return;
    }
    pthread_mutex_lock(&t->mu);
    t->ag_for_interrupt = t->ag;
    pthread_mutex_unlock(&t->mu);
    int st = ag_send(t->ag, text);
    pthread_mutex_lock(&t->mu);
    t->ag_for_interrupt = NULL;
    pthread_mutex_unlock(&t->mu);
    if (st == AG_ERROR && err_msg()[0])
        log_warn("tui: %s", err_msg());
}

static void job_shell(struct tui *t, const char *cmd)
{
    char id[32];
    snprintf(id, sizeof id, "shell_%d", ++t->shell_n);
    struct msg *m = msg_new(AG_EV_TOOL_USE);
    if (m) {
        m->id = strdup(id);
        m->name = strdup("!");
        m->detail = NULL;
        buf_puts(&m->text, cmd);
        post(t, m);
    }
    if (!t->pol) {
        struct pol_opts po = { .workspace = t->workspace };
        if (pol_open(&t->pol, &po) < 0) {
            post_text(t, M_ERROR, "!%s: %s", cmd, err_msg());
            return;
        }
    }
    if (!t->caps_probed) {
        sbx_probe(&t->caps, getenv("LODE_SANDBOX_DISABLE"));
        t->caps_probed = 1;
    }
    struct tool_ctx c = tool_ctx_defaults();
    c.pol = t->pol;
    c.caps = &t->caps;
    c.network = cfg_bool(&t->app->cfg, CFG_SANDBOX_NETWORK);
    c.approved = 1; /* the user typed it */
    cJSON *args = cJSON_CreateObject();
    struct tool_result r = { 0 };
    double t0 = time_s();
    int rc = args && cJSON_AddStringToObject(args, "command", cmd)
                 ? tool_run(&c, "run_shell", args, &r)
                 : err_set(ERR_NOMEM, "!: out of memory");
    cJSON_Delete(args);
    struct msg *res = msg_new(AG_EV_TOOL_RESULT);
    if (res) {
        res->id = strdup(id);
        res->is_error = rc < 0 || r.is_error;
        res->elapsed_s = time_s() - t0;
        buf_puts(&res->text, rc < 0 ? err_msg() : r.text.p ? r.text.p : "");
        post(t, res);
    }
    tool_result_free(&r);
}

static void job_sessions(struct tui *t)
{
    if (!t->db) {
        post_text(t, M_ERROR, "/sessions: no session store");
        return;
    }
    struct db_session *v;
    int n;
    if (db_session_list(t->db, t->workspace, &v, &n) < 0) {
        post_text(t, M_ERROR, "/sessions: %s", err_msg());
        return;
    }
    struct buf b = { 0 };
    buf_printf(&b, "**Sessions in %s** (newest first; `/resume ID`)\n\n", t->workspace);
    for (int i = 0; i < n && i < 30; i++)
        buf_printf(&b, "- `%s` %lld msgs  %s\n", v[i].id, (long long)v[i].n_messages,
                   v[i].title[0] ? v[i].title : "(untitled)");
    if (n == 0)
        buf_puts(&b, "no sessions yet\n");
    db_session_list_free(v, n);
    post_text(t, M_NOTICE, "%s", b.p ? b.p : "");
    buf_free(&b);
}

static void job_export(struct tui *t, const char *path)
{
    if (!t->ag) {
        post_text(t, M_ERROR, "/export: no conversation yet");
        return;
    }
    char def[PATH_MAX];
    if (!path || !*path) {
        snprintf(def, sizeof def, "lode-%s.md", ag_session_id(t->ag));
        path = def;
    }
    struct buf b = { 0 };
    const cJSON *m;
    cJSON_ArrayForEach(m, ag_messages(t->ag))
    {
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
        const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "content"));
        if (!role || !strcmp(role, "system"))
            continue;
        buf_printf(&b, "## %s\n\n%s\n\n", role, content ? content : "");
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
        {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "function");
            char *a = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(f, "arguments"));
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"));
            buf_printf(&b, "- tool call `%s` `%s`\n\n", name ? name : "?", a ? a : "{}");
            cJSON_free(a);
        }
    }
    if (fs_write_atomic(path, b.p ? b.p : "", b.len) < 0)
        post_text(t, M_ERROR, "/export: %s", err_msg());
    else
        post_text(t, M_NOTICE, "exported the conversation to %s", path);
    buf_free(&b);
}

static void job_context(struct tui *t)
{
    if (!t->ag) {
        post_text(t, M_ERROR, "/context: no model is open");
        return;
    }
    const struct ag_stats *s = ag_last_stats(t->ag);
    long n = 0, max = 0;
    const int32_t *tok;
    if ((t->be->caps & BE_CAP_TOKENS) && t->be->ops->context &&
        t->be->ops->context(t->be, &tok, &n, &max) < 0) {
        n = max = 0;
        err_clear();
    }
    if (!n && s) {
        n = s->context_tokens;
        max = s->context_max;
    }
    int nmsg = cJSON_GetArraySize(ag_messages(t->ag));
    post_text(t, M_NOTICE,
              "**Context**: %ld tokens of %ld%s, %d messages. Last message: %ld prompt tokens "
              "(%ld reused, %ld computed), %ld generated.",
              n, max, max ? "" : " (unknown maximum)", nmsg, s ? s->prompt_tokens : 0,
              s ? s->cached_tokens : 0, s ? s->prefill_tokens : 0, s ? s->gen_tokens : 0);
}

static void *worker(void *p)
{
    struct tui *t = p;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        while (!t->jobs)
            pthread_cond_wait(&t->jcv, &t->mu);
        struct job *j = t->jobs;
        t->jobs = j->next;
        if (!t->jobs)
            t->jobs_tail = NULL;
        pthread_mutex_unlock(&t->mu);
        enum job_kind k = j->kind;
        err_clear();
        switch (k) {
        case J_OPEN:
        case J_DEMO: job_open(t, k == J_DEMO); break;
        case J_SEND: job_send(t, j->text); break;
        case J_NEW:
            if (t->ag) {
                ag_close(t->ag);
                t->ag = NULL;
                if (open_agent(t) < 0)
                    post_text(t, M_ERROR, "/new: %s", err_msg());
            }
            break;
        case J_RESUME:
            if (!t->ag) {
                post_text(t, M_ERROR, "/resume: no model is open");
            } else {
                int restored = 0;
                if (ag_resume(t->ag, j->text, &restored) < 0) {
                    post_text(t, M_ERROR, "/resume %s: %s", j->text, err_msg());
                } else {
                    replay(t);
                    post_text(t, M_NOTICE, "resumed session %s%s", ag_session_id(t->ag),
                              restored ? " (model state restored)" : "");
                }
            }
            break;
        case J_SHELL: job_shell(t, j->text); break;
        case J_SESSIONS: job_sessions(t); break;
        case J_EXPORT: job_export(t, j->text); break;
        case J_CONTEXT: job_context(t); break;
        case J_THINK:
            if (t->ag)
                ag_set_thinking(t->ag, j->ival);
            break;
        case J_MODE:
            if (t->ag)
                ag_set_approval(t->ag, j->ival);
            break;
        case J_QUIT: break;
        }
        struct msg *m = msg_new(M_IDLE);
        if (m) {
            m->status = (int)k;
            post(t, m);
        }
        free(j->text);
        free(j);
        if (k == J_QUIT)
            break;
    }
    if (t->ag)
        ag_close(t->ag);
    if (t->be)
        be_close(t->be);
    if (t->db)
        db_close(t->db);
    if (t->pol)
        pol_close(t->pol);
    t->ag = NULL;
    t->be = NULL;
    t->db = NULL;
    t->pol = NULL;
    return NULL;
}

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
    push_job(t, J_SEND, 0, text);
    free(text);
    set_activity(t, "waiting for the model…");
    status_sync(t);
}

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
        snprintf(s.backend, sizeof s.backend, "%s", m->name ? m->name : "");
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
        tr_add(tr, TR_NOTICE,
               "The model did not open. Type a checkpoint directory, `/demo` for a tiny "
               "random-weight model, or `/quit`.",
               strlen("The model did not open. Type a checkpoint directory, `/demo` for a tiny "
                      "random-weight model, or `/quit`."));
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
        if (m->status == J_OPEN || m->status == J_DEMO)
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
        msg_free(m);
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
    "help",  "think",   "nothink", "mode",  "new",  "sessions", "resume", "export", "context",
    "tools", "sandbox", "model",   "clear", "find", "quit",     "load",   "demo",   NULL,
};

static const char help_text[] =
    "**Commands**\n\n"
    "- `/help` this text; `/quit` leave (also Ctrl+D on an empty line, Ctrl+C twice)\n"
    "- `/think`, `/nothink` thinking on or off (Ctrl+T toggles)\n"
    "- `/mode [plan|default|auto-edit|yolo]` approval mode (Shift+Tab cycles)\n"
    "- `/new` a new session; `/clear` clears the screen\n"
    "- `/sessions`, `/resume ID`, `/export [FILE]` saved conversations\n"
    "- `/context` tokens in the context; `/tools` the tools; `/sandbox`; `/model`\n"
    "- `/find TEXT` scrolls to the previous row holding TEXT\n"
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
    push_job(t, J_THINK, on, NULL);
    ui_hint(t->u, "thinking %s%s", on ? "on" : "off", t->sending ? " from the next message" : "");
    status_sync(t);
}

static void set_mode(struct tui *t, int mode)
{
    t->mode = mode;
    push_job(t, J_MODE, mode, NULL);
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
        push_job(t, J_NEW, 0, NULL);
        notice(t, "a new session");
    } else if (!strcmp(c, "clear")) {
        tr_clear(ui_transcript(t->u));
        ui_dirty(t->u);
    } else if (!strcmp(c, "sessions")) {
        push_job(t, J_SESSIONS, 0, NULL);
    } else if (!strcmp(c, "resume")) {
        if (!*arg)
            push_job(t, J_SESSIONS, 0, NULL);
        else
            push_job(t, J_RESUME, 0, arg);
    } else if (!strcmp(c, "export")) {
        push_job(t, J_EXPORT, 0, arg);
    } else if (!strcmp(c, "context")) {
        push_job(t, J_CONTEXT, 0, NULL);
    } else if (!strcmp(c, "tools")) {
        show_tools(t);
    } else if (!strcmp(c, "sandbox")) {
        char b[256];
        snprintf(b, sizeof b, "**Sandbox**: %s. `lode sandbox --verify` checks it.",
                 t->caps_probed ? sbx_level_name(sbx_level(&t->caps)) : "not probed yet");
        notice(t, b);
    } else if (!strcmp(c, "model")) {
        char b[PATH_MAX + 256];
        snprintf(b, sizeof b,
                 "**Model**: %s (backend %s). Another model: restart with `lode --model DIR` "
                 "or `lode --backend SPEC`.",
                 t->model[0] ? t->model : "(none)", t->spec);
        notice(t, b);
    } else if (!strcmp(c, "find")) {
        if (!ui_find(t->u, arg))
            ui_hint(t->u, "no earlier row holds '%.60s'", arg);
        else
            ui_hint(t->u, "found '%.60s' (/find again for an older one, PgDn back)", arg);
    } else if (!strcmp(c, "load")) {
        /* the hook for loading a file or project into the context (later) */
        notice(t, "/load is not available yet");
    } else if (!strcmp(c, "demo")) {
        if (t->ready) {
            notice(t, "a model is already open");
        } else if (!t->opening) {
            t->opening = 1;
            t->setup = 0;
            push_job(t, J_DEMO, 0, NULL);
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
        push_job(t, J_SHELL, 0, text + 1);
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
        push_job(t, J_OPEN, 0, NULL);
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
    if (strncmp(t->spec, "auto", 4) && strcmp(t->spec, "cpu") && strcmp(t->spec, "cuda"))
        return 0; /* script: and openai: need no checkpoint */
    return !t->model[0];
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
    int th = pthread_create(&t->th, NULL, worker, t);
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
        push_job(t, J_OPEN, 0, NULL);
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
        push_job(t, J_QUIT, 0, NULL);
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
            msg_free(m);
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
