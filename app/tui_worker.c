/*
 * tui_worker.c - the worker half of the interface's glue (see tui.c): the
 * queue of messages to the UI thread, the agent's hooks, and the jobs the UI
 * asks for (open the model, send, resume, /model, /load, !cmd, ...), run one
 * at a time on the worker thread, which owns the backend, store and agent.
 */
#include "app/tui_int.h"

#include "app/agent.h"
#include "app/backend.h"
#include "common/fs.h"
#include "tools/policy.h"

#include "app/load.h"
#include "common/err.h"
#include "common/log.h"
#include "common/text.h"
#include "engine/mkmodel.h"
#include "tools/registry.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ messages */

static struct msg *msg_new(int kind)
{
    struct msg *m = calloc(1, sizeof *m);
    if (m)
        m->kind = kind;
    return m;
}

void tui_msg_free(struct msg *m)
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
        tui_msg_free(m);
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

void tui_push_job(struct tui *t, enum job_kind kind, int ival, const char *text)
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
        tui_msg_free(m);
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
        m->status = t->be->caps;
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

/* Replaces the conversation with session id's and shows it (--resume,
 * --continue, /resume). */
static void resume_session(struct tui *t, const char *id)
{
    int restored = 0;
    if (ag_resume(t->ag, id, &restored) < 0) {
        post_text(t, M_ERROR, "resume %s: %s", id, err_msg());
        return;
    }
    replay(t);
    post_text(t, AG_EV_INIT, "%s", ag_session_id(t->ag));
    post_text(t, M_NOTICE, "resumed session %s%s", ag_session_id(t->ag),
              restored ? " (model state restored)"
                       : " (the model reads the conversation again with the next message)");
}

/* --continue: the newest session of this workspace into t->resume. */
static int newest_session(struct tui *t)
{
    if (!t->db)
        return err_set(ERR_NOTFOUND, "no session store");
    struct db_session *v;
    int n;
    if (db_session_list(t->db, t->workspace, &v, &n) < 0)
        return -1;
    /* the list is newest first; the session ag_open just made is empty */
    int rc = err_set(ERR_NOTFOUND, "no earlier session in %s", t->workspace);
    for (int i = 0; i < n; i++) {
        if (v[i].n_messages > 0 && strcmp(v[i].id, ag_session_id(t->ag))) {
            snprintf(t->resume, sizeof t->resume, "%s", v[i].id);
            err_clear();
            rc = 0;
            break;
        }
    }
    db_session_list_free(v, n);
    return rc;
}

/* Test-only (documented in the README): the model opens slowly, so a test
 * can type while it loads. LODE_TEST_LOAD_DELAY_MS waits that long;
 * LODE_TEST_LOAD_GATE=FILE waits until FILE exists (at most a minute), which
 * lets a test decide when loading ends without depending on speed. */
static void test_load_delay(void)
{
    const char *d = getenv("LODE_TEST_LOAD_DELAY_MS");
    const char *gate = getenv("LODE_TEST_LOAD_GATE");
    long ms = d ? strtol(d, NULL, 10) : 0;
    if (gate && *gate)
        ms = 60000;
    for (long waited = 0; waited < ms && ms <= 60000; waited += 50) {
        if (gate && *gate && fs_exists(gate))
            break;
        struct timespec ts = { 0, 50 * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
}

static int open_backend(struct tui *t)
{
    struct be_config bc = be_config_default();
    bc.model = t->model[0] ? t->model : NULL;
    bc.threads = (int)cfg_int(&t->app->cfg, CFG_THREADS);
    bc.context = cfg_int(&t->app->cfg, CFG_CONTEXT);
    bc.api_key = getenv("LODE_API_KEY");
    if (be_config_cache(&bc, &t->app->cfg) < 0)
        return -1;
    test_load_delay();
    return be_open(&t->be, t->spec, &bc);
}

int tui_engine_spec(const char *spec)
{
    return !strncmp(spec, "auto", 4) || !strcmp(spec, "cpu") || !strcmp(spec, "cuda");
}

static void job_load(struct tui *t, const char *dir);

/* /model DIR: closes the agent (which saves the session) and the backend,
 * opens DIR and resumes the same session on it, so the conversation goes on
 * and the new model prefills it with the next message. When DIR does not
 * open, the previous model is opened again. */
static void job_model(struct tui *t, const char *dir)
{
    if (!t->ag || !t->be) {
        post_text(t, M_ERROR, "/model: no model is open");
        return;
    }
    char sid[DB_ID_MAX], old[PATH_MAX];
    snprintf(sid, sizeof sid, "%s", ag_session_id(t->ag) ? ag_session_id(t->ag) : "");
    int had = t->db && ag_session_used(t->ag); /* messages, or only loaded files */
    snprintf(old, sizeof old, "%s", t->model);
    post_text(t, M_NOTICE, "opening %s…", dir);
    ag_close(t->ag);
    t->ag = NULL;
    be_close(t->be);
    t->be = NULL;
    snprintf(t->model, sizeof t->model, "%s", dir);
    int rc = open_backend(t);
    if (rc < 0) {
        post_text(t, M_ERROR, "/model %s: %s; back to %s", dir, err_msg(), old);
        snprintf(t->model, sizeof t->model, "%s", old);
        if (open_backend(t) < 0) {
            post_text(t, M_OPEN_FAILED, "%s", err_msg());
            return;
        }
    }
    if (open_agent(t) < 0) {
        post_text(t, M_OPEN_FAILED, "%s", err_msg());
        be_close(t->be);
        t->be = NULL;
        return;
    }
    int restored = 0;
    if (had && sid[0] && ag_resume(t->ag, sid, &restored) < 0) {
        post_text(t, M_ERROR, "/model: the conversation could not be carried over: %s", err_msg());
        return;
    }
    if (had && sid[0])
        post_text(t, AG_EV_INIT, "%s", ag_session_id(t->ag));
    else if (t->load_dir[0])
        job_load(t, t->load_dir); /* nothing saved to carry them: load them again */
    if (rc == 0)
        post_text(t, M_NOTICE, "model %s open; the conversation continues%s", t->model,
                  had && !restored ? " (the new model reads it with the next message)" : "");
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
    if (!t->caps_probed) {
        sbx_probe(&t->caps, getenv("LODE_SANDBOX_DISABLE"));
        t->caps_probed = 1;
    }
    if (open_backend(t) < 0) {
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
    if (!(t->be->caps & BE_CAP_PROMPT))
        post_text(t, M_NOTICE,
                  "Remote backend %s: no state snapshots (a resumed conversation is sent again "
                  "in full and the server prefills it), no token-level `/context`; token counts "
                  "are the server's.",
                  t->be->model_desc);
    if (t->continue_last && !t->resume[0] && newest_session(t) < 0)
        post_text(t, M_ERROR, "--continue: %s", err_msg());
    t->continue_last = 0;
    if (t->resume[0]) {
        resume_session(t, t->resume);
        t->resume[0] = 0;
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

/* /load DIR: the files `lode load DIR` chooses (the context less a quarter, at most 32768
 * tokens, for the conversation) go in front of the system prompt (agent_context.c); the next
 * message prefills them, from the prefix cache when `lode load DIR` ran before. */
static void job_load(struct tui *t, const char *dir)
{
    if (!t->ag) {
        post_text(t, M_ERROR, "/load: no model is open");
        return;
    }
    const int32_t *tok;
    long n = 0, max = 0;
    if (!(t->be->caps & BE_CAP_TOKENS) || t->be->ops->context(t->be, &tok, &n, &max) < 0 ||
        max <= 0)
        max = cfg_int(&t->app->cfg, CFG_CONTEXT);
    long room = max / 4 < 32768 ? max / 4 : 32768;
    struct buf block = { 0 };
    cJSON *files = NULL;
    const char *md = t->be->model_dir ? t->be->model_dir : t->model;
    if (ld_context(dir, md, max - room, &block, &files) < 0 ||
        ag_set_context(t->ag, dir, block.p, files) < 0)
        post_text(t, M_ERROR, "/load: %s", err_msg());
    else {
        if (dir != t->load_dir) /* /new and /model load it again */
            snprintf(t->load_dir, sizeof t->load_dir, "%s", dir);
        post_text(t, M_NOTICE,
                  "**Loaded** %d files from %s (%zu bytes): the next message reads them.",
                  cJSON_GetArraySize(files), dir, block.len);
    }
    cJSON_Delete(files);
    buf_free(&block);
}

void *tui_worker(void *p)
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
                else if (t->load_dir[0])
                    job_load(t, t->load_dir); /* the loaded files stay: read them again */
            }
            break;
        case J_RESUME:
            if (!t->ag)
                post_text(t, M_ERROR, "/resume: no model is open");
            else
                resume_session(t, j->text);
            break;
        case J_MODEL: job_model(t, j->text); break;
        case J_SHELL: job_shell(t, j->text); break;
        case J_SESSIONS: job_sessions(t); break;
        case J_EXPORT: job_export(t, j->text); break;
        case J_CONTEXT: job_context(t); break;
        case J_LOAD: job_load(t, j->text); break;
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
