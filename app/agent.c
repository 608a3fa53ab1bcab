/*
 * agent.c - the agent loop (see agent.h): render the conversation with the
 * chat template, generate, parse the tool calls, decide each under the
 * approval mode, run it, append the results, and go on until a turn makes no
 * call. Every message is committed to the session as it happens
 * (agent_session.c); the system prompt comes from agent_prompt.c.
 */
#include "app/agent_int.h"
#include "app/chat.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/text.h"
#include "config/config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ag_opts ag_opts_default(void)
{
    struct ag_opts o = { 0 };
    o.thinking = 1;
    o.approval = APPR_DEFAULT;
    o.save_state = 1;
    return o;
}

static void emit(struct agent *a, const struct ag_event *ev)
{
    if (a->h.event)
        a->h.event(a->h.ud, ev);
}

static void emit_error(struct agent *a, const char *msg)
{
    struct ag_event ev = { .kind = AG_EV_ERROR, .text = msg, .len = strlen(msg) };
    emit(a, &ev);
}

static int open_tools(struct agent *a)
{
    struct buf s = { 0 };
    int rc = tool_schemas_json(&s);
    if (rc == 0) {
        a->tools = cJSON_Parse(s.p ? s.p : "[]");
        if (!a->tools)
            rc = err_set(ERR_INTERNAL, "agent: the tool schemas are not valid JSON");
    }
    buf_free(&s);
    if (rc == 0)
        rc = tc_tools_new(&a->tct, a->tools);
    return rc;
}

/* The path policy, the sandbox and the approval rules, from the configuration
 * as `lode tool` sets them up (the same keys give the same confinement). */
static int open_policy(struct agent *a)
{
    const struct cfg *c = a->cfg;
    int rc = 0;
    if (c &&
        ((rc = tool_list_parse(cfg_str(c, CFG_SANDBOX_READ_ONLY), "sandbox.read_only", &a->ro)) <
             0 ||
         (rc = tool_list_parse(cfg_str(c, CFG_SANDBOX_HIDDEN), "sandbox.hidden", &a->hidden)) < 0))
        return rc;
    struct pol_opts po = { 0 };
    po.workspace = a->workspace;
    po.read_only = (const char *const *)a->ro;
    po.hidden = (const char *const *)a->hidden;
    if ((rc = pol_open(&a->pol, &po)) < 0)
        return rc;
    sbx_probe(&a->caps, getenv("LODE_SANDBOX_DISABLE"));
    a->tctx = tool_ctx_defaults();
    a->tctx.pol = a->pol;
    a->tctx.caps = &a->caps;
    if (c) {
        a->tctx.network = cfg_bool(c, CFG_SANDBOX_NETWORK);
        a->tctx.shell_timeout_max_s = (double)cfg_int(c, CFG_SANDBOX_MAX_TIMEOUT);
        a->tctx.shell_timeout_s = (double)cfg_int(c, CFG_SANDBOX_TIMEOUT);
        if (a->tctx.shell_timeout_s > a->tctx.shell_timeout_max_s) /* the maximum wins */
            a->tctx.shell_timeout_s = a->tctx.shell_timeout_max_s;
    }
    return appr_rules_new(&a->rules, c ? cfg_str(c, CFG_TOOLS_ALLOW) : NULL,
                          c ? cfg_str(c, CFG_TOOLS_DENY) : NULL);
}

int ag_open(struct agent **out, struct backend *be, struct db *db, const struct cfg *cfg,
            const struct ag_opts *o, const struct ag_hooks *h)
{
    *out = NULL;
    struct agent *a = calloc(1, sizeof *a);
    if (!a)
        return err_set(ERR_NOMEM, "agent: out of memory");
    a->be = be;
    a->db = db;
    a->cfg = cfg;
    a->o = o ? *o : ag_opts_default();
    if (h)
        a->h = *h;
    a->next_call = 1;
    int rc = 0;
    char here[PATH_MAX];
    if (a->o.cwd) {
        if (!realpath(a->o.cwd, a->workspace))
            rc = err_errno("agent: workspace %s", a->o.cwd);
    } else if (!getcwd(here, sizeof here)) {
        rc = err_errno("agent: the current directory");
    } else {
        rc = fs_project_root(here, a->workspace, sizeof a->workspace);
    }
    const char *from;
    if (rc == 0 && !(a->msgs = cJSON_CreateArray()))
        rc = err_set(ERR_NOMEM, "agent: out of memory");
    if (rc == 0)
        rc = open_tools(a);
    if (rc == 0)
        rc = chat_template_open(be->model_dir, &a->tpl, &from);
    if (rc == 0)
        rc = open_policy(a);
    if (rc == 0 && db)
        rc = db_session_new(db, a->workspace, be->model_desc, a->sid);
    if (rc < 0) {
        ag_close(a);
        return rc;
    }
    *out = a;
    return 0;
}

void ag_close(struct agent *a)
{
    if (!a)
        return;
    /* An agent that never said anything leaves no empty session behind. */
    if (a->db && a->sid[0] && !a->session_used) {
        db_session_rm(a->db, a->sid);
        err_clear();
    }
    cJSON_Delete(a->msgs);
    free(a->ctx);
    ag_context_free(a);
    cJSON_Delete(a->tools);
    tc_tools_free(a->tct);
    tpl_close(a->tpl);
    appr_rules_free(a->rules);
    pol_close(a->pol);
    tool_list_free(a->ro);
    tool_list_free(a->hidden);
    for (int i = 0; i < a->nalways; i++)
        free(a->always[i]);
    free(a->todo);
    free(a);
}

int ag_resume(struct agent *a, const char *id, int *restored)
{
    int rc = ag_load_session(a, id, restored);
    if (rc < 0)
        return rc;
    /* "allow always" and the task list belong to the session left behind */
    for (int i = 0; i < a->nalways; i++)
        free(a->always[i]);
    a->nalways = 0;
    free(a->todo);
    a->todo = NULL;
    return 0;
}

void ag_interrupt(struct agent *a)
{
    if (a)
        a->intr = 1; /* a plain store: safe from a signal handler */
}
void ag_set_thinking(struct agent *a, int on) { a->o.thinking = on != 0; }
void ag_set_approval(struct agent *a, int mode)
{
    if (mode >= 0 && mode < APPR_NMODES)
        a->o.approval = mode;
}
int ag_thinking(const struct agent *a) { return a->o.thinking; }
int ag_approval(const struct agent *a) { return a->o.approval; }
const char *ag_session_id(const struct agent *a) { return a->sid; }
int ag_session_used(const struct agent *a) { return a->session_used; }
const struct cJSON *ag_messages(const struct agent *a) { return a->msgs; }
const char *ag_todo(const struct agent *a) { return a->todo; }
const struct ag_stats *ag_last_stats(const struct agent *a) { return &a->stats; }

int ag_render_msgs(struct agent *a, const cJSON *msgs, int gen_prompt, struct buf *out)
{
    struct tpl_opts to = { 0 };
    to.add_generation_prompt = gen_prompt;
    to.enable_thinking = a->o.thinking ? TPL_TRUE : TPL_FALSE;
    char *text = NULL;
    size_t n = 0;
    int rc = tpl_render(a->tpl, msgs, a->tools, &to, &text, &n);
    if (rc == 0)
        rc = buf_append(out, text, n);
    free(text);
    return rc < 0 ? err_prefix(rc, "agent: rendering the conversation") : 0;
}

int ag_render(struct agent *a, struct buf *out) { return ag_render_msgs(a, a->msgs, 1, out); }

/* ---------------------------------------------------------------- messages */

/* Adds a string of model, tool or user bytes: records are JSON, so invalid
 * UTF-8 becomes U+FFFD here, once, and the conversation and the stored
 * record stay the same text. */
static int add_str(cJSON *o, const char *key, const char *s, size_t n)
{
    struct buf t = { 0 };
    int ok = tc_utf8_fix(&t, s ? s : "", s ? n : 0) == 0 &&
             cJSON_AddStringToObject(o, key, t.p ? t.p : "") != NULL;
    buf_free(&t);
    return ok;
}

/* Appends a message to the conversation and commits it as a record of kind. */
static int add_message(struct agent *a, const char *kind, cJSON *record)
{
    int rc = ag_commit(a, kind, record);
    cJSON *m = ag_record_to_message(kind, record);
    if (!m || !cJSON_AddItemToArray(a->msgs, m)) {
        cJSON_Delete(m);
        return rc < 0 ? rc : err_set(ERR_NOMEM, "agent: out of memory");
    }
    return rc;
}

static int add_text_message(struct agent *a, const char *kind, const char *text)
{
    cJSON *r = cJSON_CreateObject();
    int rc = r && add_str(r, "content", text, strlen(text))
                 ? add_message(a, kind, r)
                 : err_set(ERR_NOMEM, "agent: out of memory");
    cJSON_Delete(r);
    return rc;
}

static int add_tool_message(struct agent *a, const char *id, const char *name, const char *text,
                            int is_error, double elapsed)
{
    cJSON *r = cJSON_CreateObject();
    int rc = ERR_NOMEM;
    if (r && cJSON_AddStringToObject(r, "tool_call_id", id) &&
        cJSON_AddStringToObject(r, "name", name) && add_str(r, "content", text, strlen(text)) &&
        cJSON_AddBoolToObject(r, "is_error", is_error))
        rc = add_message(a, "tool", r);
    else
        err_set(ERR_NOMEM, "agent: out of memory");
    cJSON_Delete(r);
    struct ag_event ev = { .kind = AG_EV_TOOL_RESULT,
                           .id = id,
                           .name = name,
                           .text = text,
                           .len = strlen(text),
                           .is_error = is_error,
                           .elapsed_s = elapsed };
    emit(a, &ev);
    return rc;
}

/* ---------------------------------------------------------------- one generation */

struct call {
    char id[32];
    char *name;
    cJSON *args; /* object */
    char *error; /* a rejected call: the message for the model */
};

struct gen {
    struct agent *a;
    struct tc_parser *p;
    struct buf reasoning, content;
    int to_content;     /* the parser re-labelled the reasoning as content */
    struct call *calls; /* remote (already parsed) calls */
    int ncalls;
    int failed; /* out of memory in a callback */
};

static void on_tc(void *ud, const struct tc_event *ev)
{
    struct gen *g = ud;
    struct ag_event out = { 0 };
    switch (ev->kind) {
    case TC_EV_REASONING:
        if (buf_append(&g->reasoning, ev->text, ev->len) < 0)
            g->failed = 1;
        out.kind = AG_EV_REASONING;
        break;
    case TC_EV_CONTENT:
        if (buf_append(&g->content, ev->text, ev->len) < 0)
            g->failed = 1;
        out.kind = AG_EV_TEXT;
        break;
    case TC_EV_REASONING_TO_CONTENT: g->to_content = 1; return;
    default: return; /* calls are taken from the result at the end */
    }
    out.text = ev->text;
    out.len = ev->len;
    emit(g->a, &out);
}

static int add_remote_call(struct gen *g, const char *name, const char *args, size_t n)
{
    struct call *v = realloc(g->calls, ((size_t)g->ncalls + 1) * sizeof *v);
    if (!v)
        return ERR_NOMEM;
    g->calls = v;
    struct call *c = &v[g->ncalls++];
    memset(c, 0, sizeof *c);
    c->name = strdup(name ? name : "");
    c->args = n ? cJSON_ParseWithLength(args, n) : cJSON_CreateObject();
    if (!c->name)
        return ERR_NOMEM;
    if (!cJSON_IsObject(c->args)) {
        cJSON_Delete(c->args);
        c->args = NULL;
        c->error = strdup("the arguments are not a JSON object");
    } else if (!tc_tools_params(g->a->tct, c->name)) {
        int known = 0;
        for (int i = 0; i < tool_count(); i++)
            known |= !strcmp(tool_name(i), c->name);
        if (!known)
            c->error = strdup("unknown tool");
    }
    return 0;
}

static int on_be(void *ud, const struct be_event *ev)
{
    struct gen *g = ud;
    struct agent *a = g->a;
    switch (ev->kind) {
    case BE_EV_PREFILL: {
        struct ag_event out = { .kind = AG_EV_PREFILL, .done = ev->done, .total = ev->total };
        emit(a, &out);
        break;
    }
    case BE_EV_RAW:
    case BE_EV_CONTENT:
        if (tc_feed(g->p, ev->text, ev->len) < 0)
            g->failed = 1;
        break;
    case BE_EV_REASONING: {
        if (buf_append(&g->reasoning, ev->text, ev->len) < 0)
            g->failed = 1;
        struct ag_event out = { .kind = AG_EV_REASONING, .text = ev->text, .len = ev->len };
        emit(a, &out);
        break;
    }
    case BE_EV_TOOL_CALL:
        if (add_remote_call(g, ev->name, ev->text, ev->len) < 0)
            g->failed = 1;
        break;
    }
    return a->intr || g->failed;
}

static void free_calls(struct call *v, int n)
{
    for (int i = 0; i < n; i++) {
        free(v[i].name);
        cJSON_Delete(v[i].args);
        free(v[i].error);
    }
    free(v);
}

/* Gathers the turn's calls (parsed from raw text, or the remote ones) into
 * one list with ids; rejected ones carry an error. */
static int collect_calls(struct agent *a, struct gen *g, struct call **out, int *n)
{
    const struct tc_result *r = tc_result(g->p);
    int total = r->ncalls + r->nerrors + g->ncalls;
    struct call *v = total ? calloc((size_t)total, sizeof *v) : NULL;
    if (total && !v)
        return ERR_NOMEM;
    int k = 0, rc = 0;
    for (int i = 0; i < g->ncalls; i++) {
        v[k] = g->calls[i];
        memset(&g->calls[i], 0, sizeof g->calls[i]);
        k++;
    }
    for (int i = 0; i < r->ncalls; i++, k++) {
        v[k].name = strdup(r->calls[i].name);
        v[k].args = cJSON_Duplicate(r->calls[i].args, 1);
        if (!v[k].name || !v[k].args)
            rc = ERR_NOMEM;
    }
    for (int i = 0; i < r->nerrors; i++, k++) {
        v[k].name = strdup(r->errors[i].name ? r->errors[i].name : "");
        v[k].error = strdup(r->errors[i].message ? r->errors[i].message : "malformed call");
        if (!v[k].name || !v[k].error)
            rc = ERR_NOMEM;
    }
    for (int i = 0; i < k; i++)
        snprintf(v[i].id, sizeof v[i].id, "call_%ld", a->next_call++);
    *out = v;
    *n = k;
    return rc;
}

/* The assistant record: {content, reasoning_content, tool_calls?, interrupted?}. */
static int add_assistant(struct agent *a, struct gen *g, struct call *calls, int ncalls,
                         int interrupted)
{
    cJSON *r = cJSON_CreateObject();
    int ok = r && add_str(r, "content", g->content.p, g->content.len) &&
             add_str(r, "reasoning_content", g->reasoning.p, g->reasoning.len);
    /* Rejected calls are left out of the rendered turn, except for a remote
     * server: there every tool message needs its call in the assistant turn. */
    int remote = !(a->be->caps & BE_CAP_PROMPT), nlisted = 0;
    for (int i = 0; i < ncalls; i++)
        nlisted += !calls[i].error || (remote && calls[i].name[0]);
    if (ok && nlisted) {
        cJSON *arr = cJSON_AddArrayToObject(r, "tool_calls");
        ok = arr != NULL;
        for (int i = 0; ok && i < ncalls; i++) {
            if (calls[i].error && !(remote && calls[i].name[0]))
                continue;
            cJSON *c = cJSON_CreateObject(), *f = cJSON_CreateObject();
            cJSON *args = calls[i].args ? cJSON_Duplicate(calls[i].args, 1) : cJSON_CreateObject();
            ok = c && f && args && cJSON_AddStringToObject(c, "id", calls[i].id) &&
                 cJSON_AddStringToObject(c, "type", "function") &&
                 cJSON_AddStringToObject(f, "name", calls[i].name) &&
                 cJSON_AddItemToObject(f, "arguments", args);
            if (ok) {
                args = NULL;
                ok = cJSON_AddItemToObject(c, "function", f);
                if (ok)
                    f = NULL;
            }
            if (ok)
                ok = cJSON_AddItemToArray(arr, c);
            if (ok)
                c = NULL;
            cJSON_Delete(c);
            cJSON_Delete(f);
            cJSON_Delete(args);
        }
    }
    if (ok && interrupted)
        ok = cJSON_AddBoolToObject(r, "interrupted", 1) != NULL;
    int rc = ok ? add_message(a, "assistant", r) : err_set(ERR_NOMEM, "agent: out of memory");
    cJSON_Delete(r);
    return rc;
}

/* ---------------------------------------------------------------- tools */

static int is_always(struct agent *a, const char *name)
{
    for (int i = 0; i < a->nalways; i++)
        if (!strcmp(a->always[i], name))
            return 1;
    return 0;
}

/* Keeps the model's task list after a todo call and tells the UI. */
static void note_todo(struct agent *a, const cJSON *args)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(args, "items");
    char *text = items ? cJSON_PrintUnformatted(items) : NULL;
    if (!text)
        return;
    free(a->todo);
    a->todo = strdup(text);
    cJSON_free(text);
    if (!a->todo)
        return;
    struct ag_event ev = { .kind = AG_EV_TODO, .detail = a->todo };
    emit(a, &ev);
}

/* Decides and runs one call; appends its tool message. */
static int run_call(struct agent *a, struct call *c)
{
    char *args_text = c->args ? cJSON_PrintUnformatted(c->args) : NULL;
    struct ag_event use = {
        .kind = AG_EV_TOOL_USE, .id = c->id, .name = c->name, .detail = args_text ? args_text : "{}"
    };
    emit(a, &use);
    struct buf msg = { 0 };
    int rc = 0;
    const char *reason = NULL;
    enum appr_verdict v = appr_decide(a->o.approval, a->rules, c->name, c->args, &reason);
    int approved = a->o.approval == APPR_YOLO;
    if (v == APPR_ASK && is_always(a, c->name)) {
        v = APPR_ALLOW;
        approved = 1;
    } else if (v == APPR_ASK && a->h.approve) {
        enum ag_decision d =
            a->h.approve(a->h.ud, c->name, args_text ? args_text : "{}", reason ? reason : c->name);
        if (d == AG_ALLOW_ALWAYS && a->nalways < AG_MAX_ALWAYS &&
            (a->always[a->nalways] = strdup(c->name)))
            a->nalways++;
        if (d != AG_DENY) {
            v = APPR_ALLOW;
            approved = 1;
        } else {
            buf_printf(&msg, "denied by the user (%s); do not retry it unchanged",
                       reason ? reason : c->name);
        }
    } else if (v == APPR_ASK) {
        buf_printf(&msg,
                   "denied: needs approval (%s), and nobody can be asked in this headless run; "
                   "the user runs lode with --approval auto-edit or yolo (or allows it with "
                   "tools.allow) to permit it. Do not retry it; say what you would have done.",
                   reason ? reason : c->name);
    } else if (v == APPR_DENY) {
        buf_printf(&msg, "denied: %s (approval mode %s)", reason ? reason : c->name,
                   appr_mode_name(a->o.approval));
    }
    if (v == APPR_ALLOW) {
        struct tool_ctx ctx = a->tctx;
        ctx.approved = approved;
        struct tool_result r = { 0 };
        double t0 = time_s();
        rc = tool_run(&ctx, c->name, c->args, &r);
        double dt = time_s() - t0;
        a->stats.tool_s += dt;
        if (rc == 0) {
            if (!r.is_error && !strcmp(c->name, "todo"))
                note_todo(a, c->args);
            rc = add_tool_message(a, c->id, c->name, r.text.p ? r.text.p : "", r.is_error, dt);
        }
        tool_result_free(&r);
    } else {
        rc = add_tool_message(a, c->id, c->name, msg.p ? msg.p : "denied", 1, 0);
    }
    buf_free(&msg);
    cJSON_free(args_text);
    return rc;
}

/* ---------------------------------------------------------------- the loop */

enum { TURN_DONE, TURN_MORE, TURN_INTERRUPTED, TURN_ERROR };

static void add_usage(struct agent *a, const struct be_usage *u)
{
    a->stats.prompt_tokens += u->prompt_tokens;
    a->stats.cached_tokens += u->cached_tokens;
    a->stats.restored_tokens += u->restored_tokens;
    a->stats.prefill_tokens += u->prefill_tokens;
    a->stats.gen_tokens += u->gen_tokens;
    a->stats.prefill_s += u->prefill_s;
    a->stats.gen_s += u->gen_s;
    if ((a->be->caps & BE_CAP_TOKENS) && a->be->ops->context) {
        const int32_t *t;
        long n = 0, max = 0;
        if (a->be->ops->context(a->be, &t, &n, &max) == 0) {
            a->stats.context_tokens = n;
            a->stats.context_max = max;
        }
    }
}

static int turn(struct agent *a, struct buf *answer)
{
    struct gen g = { .a = a };
    struct buf prompt = { 0 };
    int raw = (a->be->caps & BE_CAP_PROMPT) != 0;
    int rc = 0;
    if (raw)
        rc = ag_render_msgs(a, a->msgs, 1, &prompt);
    struct tc_opts to;
    tc_opts_default(&to);
    to.starts_in_reasoning = raw && a->o.thinking;
    if (rc == 0)
        rc = tc_new(&g.p, a->tct, &to, on_tc, &g);
    if (rc < 0) {
        buf_free(&prompt);
        return TURN_ERROR;
    }
    struct be_request rq = { 0 };
    rq.messages = a->msgs;
    rq.tools = a->tools;
    rq.prompt = prompt.p;
    rq.prompt_len = prompt.len;
    rq.thinking = a->o.thinking;
    if (a->o.samp_override) {
        rq.samp = a->o.samp;
    } else {
        rq.samp = samp_preset(a->o.thinking ? SAMP_THINKING : SAMP_NON_THINKING);
        rq.samp.seed = a->o.seed;
    }
    rq.max_tokens = a->o.max_tokens;
    rq.interrupt = &a->intr;
    rq.cache_mark = ag_context_mark(a, prompt.p, prompt.len);
    struct be_usage u = { 0 };
    enum be_stop stop = BE_STOP_END;
    int grc = a->be->ops->generate(a->be, &rq, on_be, &g, &u, &stop);
    buf_free(&prompt);
    int interrupted = grc == 0 && (stop == BE_STOP_INTERRUPT || a->intr);
    if (grc < 0 && a->intr)
        interrupted = 1, err_clear();
    char errmsg[512] = "";
    if (grc < 0 && !interrupted)
        snprintf(errmsg, sizeof errmsg, "%s", err_msg());
    if (tc_finish(g.p) < 0)
        g.failed = 1;
    /* Without "</think>" the parser calls everything content; a thought cut
     * short by the user stays a thought. */
    if (g.to_content && !interrupted) {
        struct buf c = { 0 };
        if (buf_append(&c, g.reasoning.p ? g.reasoning.p : "", g.reasoning.len) < 0 ||
            buf_append(&c, g.content.p ? g.content.p : "", g.content.len) < 0)
            g.failed = 1;
        buf_free(&g.content);
        g.content = c;
        buf_reset(&g.reasoning);
    }
    add_usage(a, &u);
    a->stats.turns++;
    struct call *calls = NULL;
    int ncalls = 0, st = TURN_DONE;
    if (!g.failed && (interrupted || grc < 0)) {
        /* keep the partial answer; its calls are not run */
    } else if (g.failed || collect_calls(a, &g, &calls, &ncalls) < 0) {
        err_set(ERR_NOMEM, "agent: out of memory");
        st = TURN_ERROR;
    }
    if (st == TURN_DONE && ((g.content.len || g.reasoning.len || ncalls || grc == 0)) &&
        add_assistant(a, &g, calls, ncalls, interrupted || grc < 0) < 0)
        st = TURN_ERROR;
    buf_reset(answer);
    if (g.content.len)
        buf_append(answer, g.content.p, g.content.len);
    if (st == TURN_DONE && interrupted) {
        st = TURN_INTERRUPTED;
    } else if (st == TURN_DONE && grc < 0) {
        err_set(grc, "%s", errmsg);
        st = TURN_ERROR;
    }
    for (int i = 0; st == TURN_DONE && i < ncalls; i++) {
        struct call *c = &calls[i];
        if (c->error) {
            char line[600];
            snprintf(line, sizeof line, "malformed tool call %s%s%s: %s", c->name[0] ? "'" : "",
                     c->name, c->name[0] ? "'" : "", c->error);
            emit_error(a, line);
            struct buf m = { 0 };
            buf_printf(&m,
                       "error: %s. Nothing was run. Write the call again in the format the "
                       "system prompt shows, with a known tool name and every value closed by "
                       "</parameter>.",
                       line);
            int arc = add_tool_message(a, c->id, c->name, m.p ? m.p : "error", 1, 0);
            buf_free(&m);
            if (arc < 0)
                st = TURN_ERROR;
        } else if (a->intr) {
            if (add_tool_message(a, c->id, c->name, "not run: the user interrupted", 1, 0) < 0)
                st = TURN_ERROR;
        } else if (run_call(a, c) < 0) {
            st = TURN_ERROR;
        }
    }
    if (st == TURN_DONE && ncalls)
        st = a->intr ? TURN_INTERRUPTED : TURN_MORE;
    struct ag_event ev = { .kind = AG_EV_TURN_END, .stats = &a->stats };
    emit(a, &ev);
    free_calls(calls, ncalls);
    free_calls(g.calls, g.ncalls);
    tc_free(g.p);
    buf_free(&g.reasoning);
    buf_free(&g.content);
    return st;
}

static int start(struct agent *a, const char *text)
{
    if (cJSON_GetArraySize(a->msgs) == 0) {
        struct buf sp = { 0 };
        int rc = ag_system_prompt(a->workspace, &sp);
        if (rc == 0)
            rc = add_text_message(a, "system", sp.p ? sp.p : "");
        if (rc == 0 && a->ctx)
            rc = ag_apply_context(a, a->ctx);
        buf_free(&sp);
        if (rc < 0)
            return rc;
        /* A new session is titled after the first line of its first task. */
        if (a->db) {
            char title[81];
            const char *t = text + strspn(text, " \t\r\n");
            snprintf(title, sizeof title, "%.*s", (int)strcspn(t, "\r\n"), t);
            if (db_session_set_title(a->db, a->sid, title) < 0)
                err_clear(); /* cosmetic */
        }
    }
    struct ag_event init = {
        .kind = AG_EV_INIT, .text = a->sid, .name = a->be->name, .detail = a->be->model_desc
    };
    emit(a, &init);
    struct ag_event ev = { .kind = AG_EV_USER, .text = text, .len = strlen(text) };
    emit(a, &ev);
    int rc = ag_context_refresh(a); /* edited loaded files go at the tail, before the message */
    return rc < 0 ? rc : add_text_message(a, "user", text);
}

int ag_send(struct agent *a, const char *text)
{
    memset(&a->stats, 0, sizeof a->stats);
    a->intr = 0;
    double t0 = time_s();
    struct buf answer = { 0 };
    int status = AG_DONE;
    if (start(a, text ? text : "") < 0) {
        status = AG_ERROR;
    } else {
        for (;;) {
            if (a->intr) {
                status = AG_INTERRUPTED;
                break;
            }
            if (a->o.max_turns > 0 && a->stats.turns >= a->o.max_turns) {
                status = AG_TURN_LIMIT;
                break;
            }
            int st = turn(a, &answer);
            if (st == TURN_MORE)
                continue;
            status = st == TURN_DONE ? AG_DONE : st == TURN_INTERRUPTED ? AG_INTERRUPTED : AG_ERROR;
            break;
        }
    }
    char errmsg[512] = "";
    if (status == AG_ERROR) {
        snprintf(errmsg, sizeof errmsg, "%s", err_msg());
        emit_error(a, errmsg);
    }
    if (ag_save_state(a) < 0) {
        emit_error(a, err_msg()); /* the conversation itself is saved */
        err_clear();
    }
    if (status == AG_ERROR)
        err_set(ERR_INVAL, "%s", errmsg);
    a->stats.wall_s = time_s() - t0;
    struct ag_event ev = { .kind = AG_EV_RESULT,
                           .status = status,
                           .stats = &a->stats,
                           .text = answer.p ? answer.p : "",
                           .len = answer.len };
    emit(a, &ev);
    buf_free(&answer);
    return status;
}
