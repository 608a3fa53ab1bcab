/*
 * toolcall.c - the push-style parser for Qwen3's XML tool calls. The format
 * and every rule are in toolcall.h; this file is the state machine.
 *
 * How split-invariance is kept: input bytes wait in p->in until a state can
 * decide what they are. Each state looks only at the unconsumed bytes and the
 * eof flag, and answers "need more" whenever more bytes could change its
 * decision (the lit()/skip_ws() helpers return MORE for a partial match). So a
 * decision taken after any chunk is the one the whole input would give, and
 * the output is the same for every way of cutting the input. Text is emitted
 * in pieces whose concatenation does not depend on the cutting either.
 *
 * States:
 *   START    decide whether a stray "<think>" opens the output
 *   REASON   reasoning text until "</think>"
 *   CONTENT  content text; "<tool_call>" + "<function=" or line-start "<function=" start a call
 *   FNAME    the name after "<function=", up to ">"
 *   BODY     between parameters: "<parameter=", "</function>", "</tool_call>" ...
 *   PNAME    the name after "<parameter=", up to ">"
 *   VALUE    a parameter value, until a closer decided by lookahead
 *   AFTER_FN after "</function>": an optional "</tool_call>"
 */
#include "tools/toolcall.h"

#include "common/err.h"
#include "common/text.h"

#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#define TC_MAX_PARAMS_STR STR(TC_MAX_PARAMS)
#define HOLD_CAP 4096 /* trailing whitespace held back from a text stream */

enum st { ST_START, ST_REASON, ST_CONTENT, ST_FNAME, ST_BODY, ST_PNAME, ST_VALUE, ST_AFTER_FN };
enum { NO = 0, YES = 1, MORE = 2 };

struct tool {
    char *name;
    cJSON *params;      /* owned copy of "parameters", or NULL */
    const cJSON *props; /* params->properties when it is an object */
};

struct tc_tools {
    struct tool *v;
    int n;
};

/* the call being parsed */
struct cur {
    int wrapped;   /* opened by <tool_call> */
    int confirmed; /* structural: wrapped, or a body token followed the header */
    int valid;     /* 0 after the first problem (err says which) */
    int begun;     /* TC_EV_CALL_BEGIN sent */
    int tool;      /* index in tools, -1 when unknown or no tool list */
    char name[TC_MAX_NAME + 1];
    size_t nlen;
    struct buf raw; /* the header as written, given back if it was prose */
    struct buf err;
    cJSON *args;
    char pname[TC_MAX_NAME + 1];
    size_t plen;
    struct buf val;
    int val_over;  /* the value passed max_value_bytes */
    int val_first; /* no value byte seen yet (one leading \n is stripped) */
    int nparams;
    int nest_tc, nest_fn, nest_param; /* open literal blocks inside the value */
};

struct tc_parser {
    const struct tc_tools *tools;
    struct tc_opts o;
    tc_event_fn cb;
    void *ud;
    char *in; /* unconsumed input is in[off..len) */
    size_t len, off, cap;
    int eof, finished, failed;
    enum st st;
    int bol;         /* the last consumed byte was \n (or a line starts here) */
    int lead_strip;  /* drop whitespace at the start of reasoning / content */
    struct buf hold; /* trailing whitespace of the current text stream, not yet emitted */
    struct cur c;
    struct tc_result res;
};

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* Does s[0..n) start with the literal l? MORE when s is a proper prefix of l
 * and more input may come. */
static int lit(const char *s, size_t n, const char *l, size_t ll, int eof)
{
    size_t k = n < ll ? n : ll;
    if (memcmp(s, l, k))
        return NO;
    if (n >= ll)
        return YES;
    return eof ? NO : MORE;
}
#define LIT(s, n, L) lit((s), (n), L, sizeof L - 1, p->eof)

/* Skips whitespace from s[*j]. YES: a non-space byte is at *j, or *j == n at
 * the end of the output. MORE: the input ran out first. NO: more than
 * TC_WS_LOOKAHEAD bytes of whitespace. */
static int skip_ws(const char *s, size_t n, size_t *j, int eof)
{
    size_t st = *j;
    while (*j < n && is_ws(s[*j])) {
        (*j)++;
        if (*j - st > TC_WS_LOOKAHEAD)
            return NO;
    }
    if (*j < n)
        return YES;
    return eof ? YES : MORE;
}

/* Whitespace from s[*j], then the literal l: YES with *j just past it, MORE
 * when the input ran out before that was decided, NO otherwise (*j then at
 * the first non-space byte, or unchanged after too much whitespace). */
static int ws_lit(const char *s, size_t n, size_t *j, const char *l, size_t ll, int eof)
{
    int r = skip_ws(s, n, j, eof);
    if (r != YES)
        return r;
    if (*j == n)
        return NO;
    int m = lit(s + *j, n - *j, l, ll, eof);
    if (m == YES)
        *j += ll;
    return m;
}
#define WS_LIT(s, n, j, L) ws_lit((s), (n), (j), L, sizeof L - 1, p->eof)

/* "<parameter=NAME>" at s: YES with the name's length and the tag's length. */
static int param_tag(const char *s, size_t n, int eof, size_t *nl, size_t *tl)
{
    static const char pre[] = "<parameter=";
    int r = lit(s, n, pre, sizeof pre - 1, eof);
    if (r != YES)
        return r;
    size_t i = sizeof pre - 1;
    while (i < n && is_name_char(s[i])) {
        if (i - (sizeof pre - 1) >= TC_MAX_NAME)
            return NO;
        i++;
    }
    if (i == n)
        return eof ? NO : MORE;
    if (s[i] != '>' || i == sizeof pre - 1)
        return NO;
    *nl = i - (sizeof pre - 1);
    *tl = i + 1;
    return YES;
}

static const char *unconsumed(struct tc_parser *p, size_t *n)
{
    *n = p->len - p->off;
    return p->in ? p->in + p->off : ""; /* nothing fed yet */
}

static void consume(struct tc_parser *p, size_t k)
{
    if (k) {
        p->bol = p->in[p->off + k - 1] == '\n';
        p->off += k;
    }
}

static int fail_nomem(struct tc_parser *p)
{
    p->failed = 1;
    return err_set(ERR_NOMEM, "tool-call parser: out of memory");
}

static void emit(struct tc_parser *p, const struct tc_event *ev)
{
    if (p->cb)
        p->cb(p->ud, ev);
}

/* ------------------------------------------------------------------------ */
/* text streams (reasoning, content)                                        */

/* Appends to the stored text (up to the cap) and emits what was stored. */
static int text_emit(struct tc_parser *p, int reasoning, const char *s, size_t n)
{
    struct buf *b = reasoning ? &p->res.reasoning : &p->res.content;
    size_t room = b->len < p->o.max_text_bytes ? p->o.max_text_bytes - b->len : 0;
    if (n > room)
        n = room;
    if (!n)
        return 0;
    if (buf_append(b, s, n) < 0)
        return fail_nomem(p);
    struct tc_event ev = { reasoning ? TC_EV_REASONING : TC_EV_CONTENT, s, n, -1, 0, 0, 0 };
    emit(p, &ev);
    return 0;
}

/* Text for a stream: trailing whitespace is held back (it is dropped before a
 * call and at the end), the rest is emitted. The hold keeps at most the last
 * HOLD_CAP bytes of a whitespace run, so what is emitted does not depend on
 * how the run arrived. */
static int text_out(struct tc_parser *p, int reasoning, const char *s, size_t n)
{
    struct buf *b = reasoning ? &p->res.reasoning : &p->res.content;
    if (!b->len) { /* leading whitespace of a stream is dropped */
        buf_reset(&p->hold);
        while (n && is_ws(*s))
            s++, n--;
    }
    size_t k = n;
    while (k && is_ws(s[k - 1]))
        k--;
    if (k) {
        if (p->hold.len && text_emit(p, reasoning, p->hold.p, p->hold.len) < 0)
            return -1;
        buf_reset(&p->hold);
        if (text_emit(p, reasoning, s, k) < 0)
            return -1;
    }
    if (n > k && buf_append(&p->hold, s + k, n - k) < 0)
        return fail_nomem(p);
    if (p->hold.len > HOLD_CAP) {
        size_t over = p->hold.len - HOLD_CAP;
        if (text_emit(p, reasoning, p->hold.p, over) < 0)
            return -1;
        memmove(p->hold.p, p->hold.p + over, HOLD_CAP);
        p->hold.len = HOLD_CAP;
        p->hold.p[HOLD_CAP] = 0;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* calls                                                                    */

static int add_error(struct tc_parser *p, const char *name, const char *msg)
{
    struct tc_result *r = &p->res;
    if (r->nerrors >= TC_MAX_ERRORS) {
        r->errors_dropped++;
        return 0;
    }
    if (!r->errors && !(r->errors = calloc(TC_MAX_ERRORS, sizeof *r->errors)))
        return fail_nomem(p);
    struct tc_error *e = &r->errors[r->nerrors];
    e->name = strdup(name);
    e->message = strdup(msg);
    if (!e->name || !e->message) {
        free(e->name);
        free(e->message);
        e->name = e->message = NULL;
        return fail_nomem(p);
    }
    r->nerrors++;
    return 0;
}

static void cur_reset(struct tc_parser *p)
{
    struct cur *c = &p->c;
    buf_free(&c->raw);
    buf_free(&c->err);
    buf_free(&c->val);
    cJSON_Delete(c->args);
    memset(c, 0, sizeof *c);
    c->tool = -1;
}

/* Marks the call rejected with its first reason. */
static int cur_invalid(struct tc_parser *p, const char *fmt, const char *arg)
{
    struct cur *c = &p->c;
    if (!c->valid)
        return 0;
    c->valid = 0;
    if (buf_printf(&c->err, fmt, arg) < 0)
        return fail_nomem(p);
    return 0;
}

static int begin_call(struct tc_parser *p, int wrapped)
{
    cur_reset(p);
    p->c.wrapped = wrapped;
    p->c.valid = 1;
    if (!(p->c.args = cJSON_CreateObject()))
        return fail_nomem(p);
    if (buf_puts(&p->c.raw, "<function=") < 0)
        return fail_nomem(p);
    p->st = ST_FNAME;
    return 0;
}

static void confirm(struct tc_parser *p)
{
    struct cur *c = &p->c;
    if (c->confirmed)
        return;
    c->confirmed = 1;
    if (c->valid) {
        c->begun = 1;
        struct tc_event ev = { TC_EV_CALL_BEGIN, 0, 0, p->res.ncalls, c->name, 0, 0 };
        emit(p, &ev);
    }
}

/* The name is complete: look the tool up and apply the call cap. */
static int header_done(struct tc_parser *p)
{
    struct cur *c = &p->c;
    const struct tc_tools *t = p->tools;
    if (c->valid && t) {
        for (int i = 0; i < t->n; i++)
            if (!strcmp(t->v[i].name, c->name))
                c->tool = i;
        if (c->tool < 0) {
            struct buf m = { 0 };
            int rc = buf_printf(&m, "unknown tool '%s'; available tools:", c->name);
            for (int i = 0; rc == 0 && i < t->n && m.len < 400; i++)
                rc = buf_printf(&m, "%s %s", i ? "," : "", t->v[i].name);
            if (rc == 0 && m.len >= 400)
                rc = buf_puts(&m, ", ...");
            if (rc == 0 && t->n == 0)
                rc = buf_puts(&m, " none");
            if (rc < 0 || cur_invalid(p, "%s", m.p) < 0) {
                buf_free(&m);
                return fail_nomem(p);
            }
            buf_free(&m);
        }
    }
    if (c->valid && p->res.ncalls >= p->o.max_calls) {
        char m[96];
        snprintf(m, sizeof m, "too many tool calls in one turn (at most %d)", p->o.max_calls);
        if (cur_invalid(p, "%s", m) < 0)
            return -1;
    }
    if (c->wrapped)
        confirm(p);
    return 0;
}

/* Ends the current call: into the result, or an error entry. The held
 * whitespace before it is dropped. */
static int end_call(struct tc_parser *p)
{
    struct cur *c = &p->c;
    struct tc_result *r = &p->res;
    buf_reset(&p->hold);
    if (c->valid) {
        if (!(r->ncalls & (r->ncalls - 1))) { /* full at 0, 1, 2, 4, 8...: double */
            size_t n = r->ncalls ? (size_t)r->ncalls * 2 : 1;
            struct tc_call *nc = realloc(r->calls, n * sizeof *nc);
            if (!nc)
                return fail_nomem(p);
            r->calls = nc;
        }
        struct tc_call *k = &r->calls[r->ncalls];
        if (!(k->name = strdup(c->name)))
            return fail_nomem(p);
        k->args = c->args;
        c->args = NULL;
        r->ncalls++;
        struct tc_event ev = { TC_EV_CALL_END, 0, 0, r->ncalls - 1, k->name, 0, k->args };
        emit(p, &ev);
    } else {
        const char *msg = c->err.p ? c->err.p : "malformed tool call";
        if (add_error(p, c->name, msg) < 0)
            return -1;
        struct tc_event ev = { TC_EV_ERROR, msg, strlen(msg), c->begun ? r->ncalls : -1, c->name,
                               0,           0 };
        emit(p, &ev);
    }
    cur_reset(p);
    return 0;
}

/* An unwrapped "<function=..." that turned out to be prose: its text and the
 * whitespace after it go back to the content. */
static int revert_call(struct tc_parser *p, const char *ws, size_t wn)
{
    struct buf raw = p->c.raw;
    memset(&p->c.raw, 0, sizeof p->c.raw);
    cur_reset(p);
    int rc = text_out(p, 0, raw.p ? raw.p : "", raw.len);
    buf_free(&raw);
    if (rc < 0 || (wn && text_out(p, 0, ws, wn) < 0))
        return -1;
    p->st = ST_CONTENT;
    return 0;
}

static const cJSON *tool_props(struct tc_parser *p)
{
    return p->c.tool >= 0 ? p->tools->v[p->c.tool].props : NULL;
}

/* Does "<parameter=K>" (K = s[0..n)) close the current value? K must be a
 * parameter of the tool without a value yet, and not the current one. */
static int param_closes(struct tc_parser *p, const char *s, size_t n)
{
    char k[TC_MAX_NAME + 1];
    memcpy(k, s, n);
    k[n] = 0;
    const cJSON *props = tool_props(p);
    if (props && !cJSON_GetObjectItemCaseSensitive(props, k))
        return 0;
    if (cJSON_GetObjectItemCaseSensitive(p->c.args, k))
        return 0;
    return strcmp(k, p->c.pname) != 0;
}

static int close_value(struct tc_parser *p)
{
    struct cur *c = &p->c;
    if (c->val_over) {
        char m[256];
        snprintf(m, sizeof m, "the value of parameter '%s' is longer than %zu bytes", c->pname,
                 p->o.max_value_bytes);
        if (cur_invalid(p, "%s", m) < 0)
            return -1;
    }
    size_t n = c->val.len;
    if (n && c->val.p[n - 1] == '\n')
        n--;
    const cJSON *props = tool_props(p);
    const cJSON *schema = props ? cJSON_GetObjectItemCaseSensitive(props, c->pname) : NULL;
    cJSON *v = tc_convert(schema, c->val.p ? c->val.p : "", n);
    if (!v)
        return fail_nomem(p);
    if (cJSON_GetObjectItemCaseSensitive(c->args, c->pname))
        cJSON_ReplaceItemInObjectCaseSensitive(c->args, c->pname, v);
    else
        cJSON_AddItemToObject(c->args, c->pname, v);
    if (c->valid && c->begun) {
        struct tc_event ev = { TC_EV_ARG, 0, 0, p->res.ncalls, c->name, c->pname, v };
        emit(p, &ev);
    }
    buf_free(&c->val);
    c->val_over = 0;
    p->st = ST_BODY;
    return 0;
}

static int value_append(struct tc_parser *p, const char *s, size_t n)
{
    struct cur *c = &p->c;
    if (c->val_over)
        return 0;
    if (c->val.len + n > p->o.max_value_bytes) {
        c->val_over = 1;
        buf_free(&c->val);
        return 0;
    }
    if (buf_append(&c->val, s, n) < 0)
        return fail_nomem(p);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* states                                                                   */

/* Each returns 1 after progress, 0 when it needs more input (or, at the end,
 * when the input is used up), <0 on failure. */

static int st_start(struct tc_parser *p)
{
    size_t n, j = 0;
    const char *s = unconsumed(p, &n);
    int m = WS_LIT(s, n, &j, "<think>");
    if (m == MORE)
        return 0;
    if (m == YES) {
        consume(p, j);
        p->st = ST_REASON;
        p->lead_strip = 1;
        return 1;
    }
    p->st = p->o.starts_in_reasoning ? ST_REASON : ST_CONTENT;
    p->lead_strip = 1;
    p->bol = 1;
    return 1;
}

/* Leading whitespace of a stream is dropped; returns 1 if bytes remain. */
static int strip_lead(struct tc_parser *p)
{
    size_t n, k = 0;
    const char *s = unconsumed(p, &n);
    while (k < n && is_ws(s[k]))
        k++;
    consume(p, k);
    if (k < n)
        p->lead_strip = 0;
    return k < n;
}

/* length of the run of text bytes that cannot start a tag */
static size_t text_run(const char *s, size_t n)
{
    const char *lt = memchr(s, '<', n);
    return lt ? (size_t)(lt - s) : n;
}

static int st_reason(struct tc_parser *p)
{
    if (p->lead_strip && !strip_lead(p))
        return 0;
    size_t n;
    const char *s = unconsumed(p, &n);
    if (!n)
        return 0;
    if (s[0] == '<') {
        int m = LIT(s, n, "</think>");
        if (m == MORE)
            return 0;
        if (m == YES) {
            buf_reset(&p->hold);
            consume(p, 8);
            p->st = ST_CONTENT;
            p->lead_strip = 1;
            p->bol = 1;
            return 1;
        }
        if (text_out(p, 1, s, 1) < 0)
            return -1;
        consume(p, 1);
        return 1;
    }
    size_t k = text_run(s, n);
    if (text_out(p, 1, s, k) < 0)
        return -1;
    consume(p, k);
    return 1;
}

static int st_content(struct tc_parser *p)
{
    if (p->lead_strip && !strip_lead(p))
        return 0;
    size_t n;
    const char *s = unconsumed(p, &n);
    if (!n)
        return 0;
    if (s[0] == '<') {
        int m = LIT(s, n, "<tool_call>");
        if (m == MORE)
            return 0;
        if (m == YES) {
            size_t j = 11;
            int f = WS_LIT(s, n, &j, "<function=");
            if (f == MORE)
                return 0;
            if (f == YES) {
                consume(p, j);
                return begin_call(p, 1) < 0 ? -1 : 1;
            }
        } else if (p->bol) {
            m = LIT(s, n, "<function=");
            if (m == MORE)
                return 0;
            if (m == YES) {
                consume(p, 10);
                return begin_call(p, 0) < 0 ? -1 : 1;
            }
        }
        if (text_out(p, 0, s, 1) < 0)
            return -1;
        consume(p, 1);
        return 1;
    }
    size_t k = text_run(s, n);
    if (text_out(p, 0, s, k) < 0)
        return -1;
    consume(p, k);
    return 1;
}

static int st_fname(struct tc_parser *p)
{
    struct cur *c = &p->c;
    size_t n, i = 0;
    const char *s = unconsumed(p, &n);
    while (i < n && is_name_char(s[i]) && c->nlen < TC_MAX_NAME)
        c->name[c->nlen++] = s[i++];
    c->name[c->nlen] = 0;
    if (i && buf_append(&c->raw, s, i) < 0)
        return fail_nomem(p);
    consume(p, i);
    if (i == n)
        return i > 0;
    if (s[i] == '>' && c->nlen > 0) {
        if (buf_putc(&c->raw, '>') < 0)
            return fail_nomem(p);
        consume(p, 1);
        p->st = ST_BODY;
        return header_done(p) < 0 ? -1 : 1;
    }
    /* a bad character, an empty or overlong name, or no '>' */
    if (!c->wrapped) {
        if (revert_call(p, NULL, 0) < 0)
            return -1;
        p->bol = 0;
        return 1;
    }
    if (cur_invalid(p,
                    "malformed function tag '<function=%s...': a name is [A-Za-z0-9_.-]+ "
                    "followed by '>'",
                    c->name) < 0)
        return -1;
    p->st = ST_BODY;
    return header_done(p) < 0 ? -1 : 1;
}

static int st_body(struct tc_parser *p)
{
    struct cur *c = &p->c;
    size_t n, j = 0;
    const char *s = unconsumed(p, &n);
    int r = skip_ws(s, n, &j, p->eof);
    if (r == MORE)
        return 0;
    if (r == YES && j == n) { /* the end of the output: the values are all closed */
        if (!c->confirmed)
            return revert_call(p, s, j) < 0 ? -1 : (consume(p, j), 1);
        consume(p, j);
        p->st = ST_CONTENT;
        return end_call(p) < 0 ? -1 : 1;
    }
    if (r == YES && s[j] == '<') {
        const char *t = s + j;
        size_t tn = n - j;
        int m;
        if ((m = LIT(t, tn, "<parameter=")) == MORE)
            return 0;
        if (m == YES) {
            confirm(p);
            consume(p, j + 11);
            if (++c->nparams > TC_MAX_PARAMS &&
                cur_invalid(p, "more than %s parameters in one call", TC_MAX_PARAMS_STR) < 0)
                return -1;
            c->plen = 0;
            c->pname[0] = 0;
            p->st = ST_PNAME;
            return 1;
        }
        if ((m = LIT(t, tn, "</function>")) == MORE)
            return 0;
        if (m == YES) {
            confirm(p);
            consume(p, j + 11);
            p->st = ST_AFTER_FN;
            return end_call(p) < 0 ? -1 : 1;
        }
        if ((m = LIT(t, tn, "</tool_call>")) == MORE)
            return 0;
        if (m == YES) {
            confirm(p);
            consume(p, j + 12);
            p->st = ST_CONTENT;
            p->bol = 0;
            return end_call(p) < 0 ? -1 : 1;
        }
        if ((m = LIT(t, tn, "</parameter>")) == MORE)
            return 0;
        if (m == YES && c->confirmed) { /* a stray closer */
            consume(p, j + 12);
            return 1;
        }
        int m1 = LIT(t, tn, "<tool_call>"), m2 = LIT(t, tn, "<function=");
        if (m1 == MORE || m2 == MORE)
            return 0;
        if ((m1 == YES || m2 == YES) && c->confirmed) {
            /* the next call starts: this one lacked its closers */
            consume(p, j);
            p->st = ST_CONTENT;
            p->bol = 1;
            return end_call(p) < 0 ? -1 : 1;
        }
    }
    /* stray text (or too much whitespace) */
    if (!c->confirmed) {
        if (revert_call(p, s, j) < 0)
            return -1;
        consume(p, j);
        return 1;
    }
    if (r == NO) {
        consume(p, j);
        return 1;
    }
    size_t k = j + 1;
    while (k < n && s[k] != '<' && !is_ws(s[k]))
        k++;
    consume(p, k);
    return 1;
}

static int st_pname(struct tc_parser *p)
{
    struct cur *c = &p->c;
    size_t n, i = 0;
    const char *s = unconsumed(p, &n);
    while (i < n && is_name_char(s[i]) && c->plen < TC_MAX_NAME)
        c->pname[c->plen++] = s[i++];
    c->pname[c->plen] = 0;
    consume(p, i);
    if (i == n)
        return i > 0;
    int ok = s[i] == '>' && c->plen > 0;
    if (ok)
        consume(p, 1);
    else if (cur_invalid(p, "malformed parameter tag '<parameter=%s...'", c->pname) < 0)
        return -1;
    buf_reset(&c->val);
    c->val_over = 0;
    c->val_first = 1;
    c->nest_tc = c->nest_fn = c->nest_param = 0;
    p->bol = 1;
    p->st = ST_VALUE;
    return 1;
}

/* After "</parameter>" inside a literal block: only the final closers, then
 * nothing but whitespace to the end, end the value. `fn`: "</function>" may
 * still come; `tc`: "</tool_call>" may still come. */
static int la_final(struct tc_parser *p, const char *s, size_t n, int fn, int tc)
{
    size_t j = 0;
    int r = skip_ws(s, n, &j, p->eof);
    if (r != YES)
        return r;
    if (j == n)
        return YES;
    int m;
    if (fn && (m = LIT(s + j, n - j, "</function>")) != NO)
        return m == MORE ? MORE : la_final(p, s + j + 11, n - j - 11, 0, 1);
    if (tc && (m = LIT(s + j, n - j, "</tool_call>")) != NO)
        return m == MORE ? MORE : la_final(p, s + j + 12, n - j - 12, 0, 0);
    return NO;
}

/* After a closer with no literal block open: is the next token (after
 * whitespace) one of the listed ones, or the end? */
static int la_next(struct tc_parser *p, const char *s, size_t n, int param, int fn, int tc_close,
                   int tc_open)
{
    size_t j = 0;
    int r = skip_ws(s, n, &j, p->eof);
    if (r != YES)
        return r;
    if (j == n)
        return YES;
    const char *t = s + j;
    size_t tn = n - j, nl, tl;
    int m, more = 0;
    if (param) {
        m = param_tag(t, tn, p->eof, &nl, &tl);
        if (m == YES && param_closes(p, t + 11, nl))
            return YES;
        more |= m == MORE;
    }
    if (fn) {
        /* in a wrapped call, "</function>" must itself be followed by
         * "</tool_call>", a next call or the end: "</parameter>\n</function>"
         * inside an edit's new_string is then still text */
        m = LIT(t, tn, "</function>");
        if (m == YES && p->c.wrapped)
            m = la_next(p, t + 11, tn - 11, 0, 0, 1, 1);
        if (m == YES)
            return YES;
        more |= m == MORE;
    }
    if (tc_close) {
        m = LIT(t, tn, "</tool_call>");
        if (m == YES)
            return YES;
        more |= m == MORE;
    }
    if (tc_open) {
        m = LIT(t, tn, "<tool_call>");
        if (m == YES)
            return YES;
        more |= m == MORE;
    }
    return more ? MORE : NO;
}

/* "<function=NAME>" at s followed (after whitespace) by "<parameter=" or
 * "</function>": the header of a literal call inside a value. */
static int fn_tag_opens(struct tc_parser *p, const char *s, size_t n)
{
    size_t i = 10;
    while (i < n && is_name_char(s[i])) {
        if (i - 10 >= TC_MAX_NAME)
            return NO;
        i++;
    }
    if (i == n)
        return p->eof ? NO : MORE;
    if (s[i] != '>' || i == 10)
        return NO;
    size_t j = i + 1;
    int r = skip_ws(s, n, &j, p->eof);
    if (r != YES || j == n)
        return r == MORE ? MORE : NO;
    int m1 = LIT(s + j, n - j, "<parameter="), m2 = LIT(s + j, n - j, "</function>");
    if (m1 == YES || m2 == YES)
        return YES;
    return m1 == MORE || m2 == MORE ? MORE : NO;
}

/* A '<' inside a value: a closer, a literal block's open/close, or text. */
static int value_tag(struct tc_parser *p, const char *s, size_t n)
{
    struct cur *c = &p->c;
    int nest = c->nest_tc + c->nest_fn + c->nest_param;
    size_t lit_len = 1;
    int m, r;

    if ((m = LIT(s, n, "</parameter>")) == MORE)
        return 0;
    if (m == YES) {
        lit_len = 12;
        /* with a literal block open, only the final closers count (even when
         * this would close a literal <parameter=>: an unbalanced literal
         * must not swallow the real end) */
        r = nest ? la_final(p, s + 12, n - 12, 1, 1) : la_next(p, s + 12, n - 12, 1, 1, 1, 1);
        if (r == MORE)
            return 0;
        if (r == YES) {
            if (close_value(p) < 0)
                return -1;
            consume(p, 12);
            return 1;
        }
        if (c->nest_param > 0)
            c->nest_param--;
        goto literal;
    }
    if (!p->bol)
        goto literal;

    size_t nl, tl;
    if ((m = param_tag(s, n, p->eof, &nl, &tl)) == MORE)
        return 0;
    if (m == YES) {
        if (!nest && param_closes(p, s + 11, nl))
            return close_value(p) < 0 ? -1 : 1;
        c->nest_param++;
        lit_len = tl;
        goto literal;
    }
    if ((m = LIT(s, n, "</function>")) == MORE)
        return 0;
    if (m == YES) {
        lit_len = 11;
        if (c->nest_fn > 0) {
            c->nest_fn--;
            goto literal;
        }
        r = nest ? la_final(p, s + 11, n - 11, 0, 1) : la_next(p, s + 11, n - 11, 0, 0, 1, 1);
        if (r == MORE)
            return 0;
        if (r == YES)
            return close_value(p) < 0 ? -1 : 1;
        goto literal;
    }
    if ((m = LIT(s, n, "</tool_call>")) == MORE)
        return 0;
    if (m == YES) {
        lit_len = 12;
        if (c->nest_tc > 0) {
            c->nest_tc--;
            goto literal;
        }
        r = nest ? la_final(p, s + 12, n - 12, 0, 0) : la_next(p, s + 12, n - 12, 0, 0, 0, 1);
        if (r == MORE)
            return 0;
        if (r == YES)
            return close_value(p) < 0 ? -1 : 1;
        goto literal;
    }
    /* literal blocks open only where a real call would: "<tool_call>" before
     * "<function=", and "<function=NAME>" before a parameter or its closer;
     * "<function=x> in prose" does not open one that never closes */
    if ((m = LIT(s, n, "<tool_call>")) == MORE)
        return 0;
    if (m == YES) {
        size_t j = 11;
        lit_len = 11;
        if ((r = skip_ws(s, n, &j, p->eof)) == MORE)
            return 0;
        if (r == YES && j < n && (m = LIT(s + j, n - j, "<function=")) == MORE)
            return 0;
        if (r == YES && j < n && m == YES)
            c->nest_tc++;
        goto literal;
    }
    if ((m = LIT(s, n, "<function=")) == MORE)
        return 0;
    if (m == YES) {
        lit_len = 10;
        if ((r = fn_tag_opens(p, s, n)) == MORE)
            return 0;
        if (r == YES)
            c->nest_fn++;
    }
literal:
    if (value_append(p, s, lit_len) < 0)
        return -1;
    consume(p, lit_len);
    return 1;
}

static int st_value(struct tc_parser *p)
{
    struct cur *c = &p->c;
    size_t n;
    const char *s = unconsumed(p, &n);
    if (!n)
        return 0;
    if (c->val_first) {
        c->val_first = 0;
        if (s[0] == '\n') {
            consume(p, 1);
            return 1;
        }
    }
    if (s[0] == '<')
        return value_tag(p, s, n);
    size_t k = text_run(s, n);
    if (value_append(p, s, k) < 0)
        return -1;
    consume(p, k);
    return 1;
}

static int st_after_fn(struct tc_parser *p)
{
    size_t n, j = 0;
    const char *s = unconsumed(p, &n);
    int m = WS_LIT(s, n, &j, "</tool_call>");
    if (m == MORE)
        return 0;
    if (m == YES)
        consume(p, j);
    p->st = ST_CONTENT;
    p->bol = 0;
    return 1;
}

static int step(struct tc_parser *p)
{
    switch (p->st) {
    case ST_START: return st_start(p);
    case ST_REASON: return st_reason(p);
    case ST_CONTENT: return st_content(p);
    case ST_FNAME: return st_fname(p);
    case ST_BODY: return st_body(p);
    case ST_PNAME: return st_pname(p);
    case ST_VALUE: return st_value(p);
    case ST_AFTER_FN: return st_after_fn(p);
    }
    return err_set(ERR_INTERNAL, "tool-call parser: bad state %d", (int)p->st);
}

static int run(struct tc_parser *p)
{
    int r;
    while ((r = step(p)) > 0)
        ;
    if (r < 0) {
        p->failed = 1;
        return r;
    }
    /* drop what was consumed once it is most of the buffer */
    if (p->off && p->off * 2 >= p->len) {
        memmove(p->in, p->in + p->off, p->len - p->off);
        p->len -= p->off;
        p->off = 0;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* public API                                                               */

void tc_opts_default(struct tc_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_value_bytes = 8u << 20;
    o->max_calls = 64;
    o->max_text_bytes = 64u << 20;
}

int tc_new(struct tc_parser **out, const struct tc_tools *tools, const struct tc_opts *opts,
           tc_event_fn cb, void *ud)
{
    struct tc_parser *p = calloc(1, sizeof *p);
    *out = NULL;
    if (!p)
        return err_set(ERR_NOMEM, "tool-call parser: out of memory");
    if (opts)
        p->o = *opts;
    else
        tc_opts_default(&p->o);
    p->tools = tools;
    p->cb = cb;
    p->ud = ud;
    p->st = ST_START;
    p->bol = 1;
    p->c.tool = -1;
    *out = p;
    return 0;
}

void tc_free(struct tc_parser *p)
{
    if (!p)
        return;
    cur_reset(p);
    free(p->in);
    buf_free(&p->hold);
    struct tc_result *r = &p->res;
    buf_free(&r->reasoning);
    buf_free(&r->content);
    for (int i = 0; i < r->ncalls; i++) {
        free(r->calls[i].name);
        cJSON_Delete(r->calls[i].args);
    }
    free(r->calls);
    for (int i = 0; i < r->nerrors; i++) {
        free(r->errors[i].name);
        free(r->errors[i].message);
    }
    free(r->errors);
    free(p);
}

int tc_feed(struct tc_parser *p, const char *bytes, size_t n)
{
    if (p->failed)
        return err_set(ERR_NOMEM, "tool-call parser: failed earlier (out of memory)");
    if (p->eof)
        return err_set(ERR_INVAL, "tool-call parser: feed after finish");
    if (!n)
        return 0;
    if (p->len + n > p->cap) {
        size_t cap = p->cap ? p->cap : 256;
        while (cap < p->len + n) {
            if (cap > ((size_t)-1) / 2)
                return fail_nomem(p);
            cap *= 2;
        }
        char *ni = realloc(p->in, cap);
        if (!ni)
            return fail_nomem(p);
        p->in = ni;
        p->cap = cap;
    }
    memcpy(p->in + p->len, bytes, n);
    p->len += n;
    return run(p);
}

int tc_finish(struct tc_parser *p)
{
    if (p->failed)
        return err_set(ERR_NOMEM, "tool-call parser: failed earlier (out of memory)");
    if (p->finished)
        return 0;
    p->eof = 1;
    p->finished = 1;
    if (run(p) < 0)
        return -1;
    struct cur *c = &p->c;
    switch (p->st) {
    case ST_REASON: {
        /* no "</think>": the reasoning was content all along, but a truncated
         * thought is never a call, so it stays text */
        struct tc_result *r = &p->res;
        buf_free(&r->content);
        r->content = r->reasoning;
        memset(&r->reasoning, 0, sizeof r->reasoning);
        struct tc_event ev = { TC_EV_REASONING_TO_CONTENT, 0, 0, -1, 0, 0, 0 };
        emit(p, &ev);
        break;
    }
    case ST_FNAME:
        if (!c->wrapped) {
            if (revert_call(p, NULL, 0) < 0)
                return -1;
            break;
        }
        if (cur_invalid(p, "the output ended inside the function tag '<function=%s'", c->name) <
                0 ||
            end_call(p) < 0)
            return -1;
        break;
    case ST_PNAME:
    case ST_VALUE:
        if (cur_invalid(p,
                        "the output ended inside parameter '%s' (no </parameter>): the call "
                        "was cut off and is not run",
                        c->pname) < 0 ||
            end_call(p) < 0)
            return -1;
        break;
    default: break;
    }
    buf_reset(&p->hold); /* trailing whitespace */
    p->st = ST_CONTENT;
    return 0;
}

const struct tc_result *tc_result(const struct tc_parser *p) { return &p->res; }

static int json_str(struct buf *out, const char *s, size_t n)
{
    struct buf fixed = { 0 };
    int rc = tc_utf8_fix(&fixed, s ? s : "", s ? n : 0);
    if (rc == 0)
        rc = buf_json_str(out, fixed.p, fixed.len);
    buf_free(&fixed);
    return rc;
}

int tc_result_json(const struct tc_result *r, struct buf *out)
{
    int rc = buf_puts(out, "{\"reasoning\": ");
    if (!rc)
        rc = json_str(out, r->reasoning.p, r->reasoning.len);
    if (!rc)
        rc = buf_puts(out, ", \"content\": ");
    if (!rc)
        rc = json_str(out, r->content.p, r->content.len);
    if (!rc)
        rc = buf_puts(out, ", \"tool_calls\": [");
    for (int i = 0; !rc && i < r->ncalls; i++) {
        char *args = cJSON_PrintUnformatted(r->calls[i].args);
        if (!args)
            return err_set(ERR_NOMEM, "tool-call result: out of memory");
        rc = buf_puts(out, i ? ", {\"name\": " : "{\"name\": ");
        if (!rc)
            rc = json_str(out, r->calls[i].name, strlen(r->calls[i].name));
        if (!rc)
            rc = buf_printf(out, ", \"arguments\": %s}", args);
        free(args);
    }
    if (!rc)
        rc = buf_puts(out, "]");
    if (!rc && r->nerrors) {
        rc = buf_puts(out, ", \"errors\": [");
        for (int i = 0; !rc && i < r->nerrors; i++) {
            rc = buf_puts(out, i ? ", {\"name\": " : "{\"name\": ");
            if (!rc)
                rc = json_str(out, r->errors[i].name, strlen(r->errors[i].name));
            if (!rc)
                rc = buf_puts(out, ", \"message\": ");
            if (!rc)
                rc = json_str(out, r->errors[i].message, strlen(r->errors[i].message));
            if (!rc)
                rc = buf_puts(out, "}");
        }
        if (!rc)
            rc = buf_puts(out, "]");
    }
    if (!rc)
        rc = buf_puts(out, "}");
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the tool list                                                            */

void tc_tools_free(struct tc_tools *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n; i++) {
        free(t->v[i].name);
        cJSON_Delete(t->v[i].params);
    }
    free(t->v);
    free(t);
}

int tc_tools_new(struct tc_tools **out, const cJSON *json)
{
    *out = NULL;
    if (!cJSON_IsArray(json))
        return err_set(ERR_INVAL, "tools: expected a JSON array of tools");
    int n = cJSON_GetArraySize(json);
    struct tc_tools *t = calloc(1, sizeof *t);
    if (!t || (n && !(t->v = calloc((size_t)n, sizeof *t->v)))) {
        free(t);
        return err_set(ERR_NOMEM, "tools: out of memory");
    }
    int i = 0, rc = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, json)
    {
        if (!cJSON_IsObject(e)) {
            rc = err_set(ERR_INVAL, "tools[%d]: expected an object", i);
            break;
        }
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, "function");
        if (!f)
            f = e;
        else if (!cJSON_IsObject(f)) {
            rc = err_set(ERR_INVAL, "tools[%d].function: expected an object", i);
            break;
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
        if (!cJSON_IsString(name)) {
            rc = err_set(ERR_INVAL, "tools[%d]: \"name\" must be a string", i);
            break;
        }
        size_t nl = strlen(name->valuestring), k = 0;
        while (k < nl && is_name_char(name->valuestring[k]))
            k++;
        if (!nl || k < nl || nl > TC_MAX_NAME) {
            rc = err_set(ERR_INVAL, "tools[%d]: name '%.*s' is not [A-Za-z0-9_.-]{1,%d}", i,
                         (int)(nl > 200 ? 200 : nl), name->valuestring, TC_MAX_NAME);
            break;
        }
        for (int j = 0; j < t->n; j++)
            if (!strcmp(t->v[j].name, name->valuestring)) {
                rc =
                    err_set(ERR_INVAL, "tools[%d]: duplicate tool name '%s'", i, name->valuestring);
                break;
            }
        if (rc)
            break;
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(f, "parameters");
        if (params && !cJSON_IsObject(params)) {
            rc = err_set(ERR_INVAL, "tools[%d] (%s): \"parameters\" must be an object", i,
                         name->valuestring);
            break;
        }
        struct tool *tl = &t->v[t->n];
        tl->name = strdup(name->valuestring);
        tl->params = params ? cJSON_Duplicate(params, 1) : NULL;
        if (!tl->name || (params && !tl->params)) {
            free(tl->name);
            cJSON_Delete(tl->params);
            rc = err_set(ERR_NOMEM, "tools: out of memory");
            break;
        }
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(tl->params, "properties");
        if (props && !cJSON_IsObject(props)) {
            free(tl->name);
            cJSON_Delete(tl->params);
            rc = err_set(ERR_INVAL, "tools[%d] (%s): \"properties\" must be an object", i,
                         name->valuestring);
            break;
        }
        tl->props = props;
        t->n++;
        i++;
    }
    if (rc) {
        tc_tools_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int tc_tools_parse(struct tc_tools **out, const char *json, size_t n, const char *origin)
{
    *out = NULL;
    if (!origin)
        origin = "tools";
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(json, n, &end, 0);
    if (!j) {
        size_t off = end && end >= json && end <= json + n ? (size_t)(end - json) : 0;
        int line, col;
        text_line_col(json, off, &line, &col);
        return err_set(ERR_INVAL, "%s:%d:%d: malformed JSON", origin, line, col);
    }
    int rc = tc_tools_new(out, j);
    cJSON_Delete(j);
    if (rc < 0)
        err_prefix(rc, "%s", origin);
    return rc;
}

int tc_tools_count(const struct tc_tools *t) { return t ? t->n : 0; }

const cJSON *tc_tools_params(const struct tc_tools *t, const char *name)
{
    for (int i = 0; t && i < t->n; i++)
        if (!strcmp(t->v[i].name, name))
            return t->v[i].params;
    return NULL;
}
