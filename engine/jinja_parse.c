/*
 * jinja_parse.c - tokens -> syntax tree, by recursive descent with Jinja2's
 * grammar and operator precedence (lowest first):
 *   cond-expr (a if b else c) < or < and < not < comparisons / in / not in
 *   < + - < ~ < * / // % < ** < unary - + < postfix (. [] ()) and filters
 *   (| name, is test)
 * Statements: if/elif/else, for (with loop `if` filter and else), set (also
 * `set ns.attr` and block set), macro, break/continue, generation (the
 * transformers extension, rendered as its body). Unknown filters and tests
 * are errors here, as Jinja2 reports them at compile time.
 */
#include "engine/jinja.h"

#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MAX_NEST 120 /* expression/statement nesting; deeper is an error, not a stack overflow */

struct ps {
    struct jarena *a;
    const struct jtok *t;
    size_t i, n;
    int depth;
    int loops; /* enclosing for loops, for break/continue */
};

static const struct jtok *cur(struct ps *p) { return &p->t[p->i < p->n ? p->i : p->n - 1]; }
static const struct jtok *peek(struct ps *p, size_t k)
{
    size_t j = p->i + k;
    return &p->t[j < p->n ? j : p->n - 1];
}
static void next(struct ps *p)
{
    if (p->i < p->n - 1)
        p->i++;
}

static int tok_is(const struct jtok *t, int type, const char *s)
{
    return t->type == type && strlen(s) == t->len && !memcmp(t->s, s, t->len);
}
static int is_op(struct ps *p, const char *s) { return tok_is(cur(p), JT_OP, s); }
static int is_name(struct ps *p, const char *s) { return tok_is(cur(p), JT_NAME, s); }

static const char *tok_desc(const struct jtok *t, char *buf, size_t cap)
{
    switch (t->type) {
    case JT_EOF: return "end of template";
    case JT_TEXT: return "template data";
    case JT_BLOCK_BEGIN: return "begin of statement block";
    case JT_BLOCK_END: return "end of statement block";
    case JT_VAR_BEGIN: return "begin of print statement";
    case JT_VAR_END: return "end of print statement";
    case JT_STRING: return "string";
    case JT_INT:
    case JT_FLOAT: return "number";
    default: snprintf(buf, cap, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), t->s); return buf;
    }
}

static int perr(const struct jtok *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(const struct jtok *t, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(ERR_INVAL, "template:%d:%d: %s", t->line, t->col, msg);
}

static int unexpected(struct ps *p, const char *want)
{
    char b[64];
    const struct jtok *t = cur(p);
    if (want)
        return perr(t, "expected %s, got %s", want, tok_desc(t, b, sizeof b));
    return perr(t, "unexpected %s", tok_desc(t, b, sizeof b));
}

static struct jnode *mk(struct ps *p, int kind, const struct jtok *at)
{
    struct jnode *n = jinja_alloc(p->a, sizeof *n);
    if (!n)
        return NULL;
    n->kind = kind;
    n->line = at->line;
    n->col = at->col;
    return n;
}

/* A growable array of node pointers in the arena (kids/defs/kw in step). */
struct nvec {
    struct jnode **v;
    struct jnode **d;
    const char **kw;
    size_t n, cap;
};

static int nv_push(struct ps *p, struct nvec *v, struct jnode *x, struct jnode *def, const char *kw)
{
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 4;
        struct jnode **nv = jinja_alloc(p->a, nc * sizeof *nv);
        struct jnode **nd = jinja_alloc(p->a, nc * sizeof *nd);
        const char **nk = jinja_alloc(p->a, nc * sizeof *nk);
        if (!nv || !nd || !nk)
            return ERR_NOMEM;
        if (v->n) {
            memcpy(nv, v->v, v->n * sizeof *nv);
            memcpy(nd, v->d, v->n * sizeof *nd);
            memcpy(nk, v->kw, v->n * sizeof *nk);
        }
        v->v = nv, v->d = nd, v->kw = nk, v->cap = nc;
    }
    v->v[v->n] = x;
    v->d[v->n] = def;
    v->kw[v->n] = kw;
    v->n++;
    return 0;
}

static const char *name_dup(struct ps *p, const struct jtok *t)
{
    struct jv v;
    if (jv_str(p->a, t->s, t->len, &v) < 0)
        return NULL;
    return v.u.s->p;
}

static int expect_op(struct ps *p, const char *op)
{
    if (!is_op(p, op)) {
        char w[16];
        snprintf(w, sizeof w, "'%s'", op);
        return unexpected(p, w);
    }
    next(p);
    return 0;
}

static int expect_type(struct ps *p, int type, const char *what)
{
    if (cur(p)->type != type)
        return unexpected(p, what);
    next(p);
    return 0;
}

/* ---------------------------------------------------------------- expressions */

static int p_expr(struct ps *p, struct jnode **out);
static int p_or(struct ps *p, struct jnode **out);
static int p_unary(struct ps *p, int with_filter, struct jnode **out);
static int p_primary(struct ps *p, struct jnode **out);
static int p_postfix(struct ps *p, struct jnode **node);

/* Comma-separated expressions; a tuple when there is a comma (or none
 * inside explicit parentheses). condexpr=0 parses `or` level only (the
 * iterable of a for loop, where `if` starts the filter). */
static int p_tuple(struct ps *p, int condexpr, int parens, struct jnode **out)
{
    const struct jtok *at = cur(p);
    struct nvec v = { 0 };
    int comma = 0, rc;
    for (;;) {
        if (v.n && !comma)
            break;
        if (parens && is_op(p, ")"))
            break;
        if (!parens && v.n &&
            (cur(p)->type == JT_VAR_END || cur(p)->type == JT_BLOCK_END || is_name(p, "in") ||
             is_op(p, ")")))
            break;
        struct jnode *e;
        if ((rc = condexpr ? p_expr(p, &e) : p_or(p, &e)) < 0)
            return rc;
        if ((rc = nv_push(p, &v, e, NULL, NULL)) < 0)
            return rc;
        comma = is_op(p, ",");
        if (comma)
            next(p);
        else
            break;
    }
    if (v.n == 1 && !comma) {
        *out = v.v[0];
        return 0;
    }
    if (v.n == 0 && !parens)
        return unexpected(p, "an expression");
    struct jnode *t = mk(p, JN_TUPLE, at);
    if (!t)
        return ERR_NOMEM;
    t->kids = v.v;
    t->nkids = v.n;
    *out = t;
    return 0;
}

static int p_expr(struct ps *p, struct jnode **out)
{
    if (++p->depth > MAX_NEST)
        return perr(cur(p), "expression nested too deeply");
    int rc = p_or(p, out);
    while (rc == 0 && is_name(p, "if")) {
        const struct jtok *at = cur(p);
        next(p);
        struct jnode *c = mk(p, JN_COND, at);
        if (!c)
            return ERR_NOMEM;
        c->b = *out;
        if ((rc = p_or(p, &c->a)) < 0)
            return rc;
        if (is_name(p, "else")) {
            next(p);
            if ((rc = p_expr(p, &c->c)) < 0)
                return rc;
        }
        *out = c;
    }
    p->depth--;
    return rc;
}

static int binop(struct ps *p, int kind, int op, const struct jtok *at, struct jnode *l,
                 struct jnode *r, struct jnode **out)
{
    struct jnode *n = mk(p, kind, at);
    if (!n)
        return ERR_NOMEM;
    n->op = op;
    n->a = l;
    n->b = r;
    *out = n;
    return 0;
}

static int p_not(struct ps *p, struct jnode **out);
static int p_and(struct ps *p, struct jnode **out)
{
    int rc = p_not(p, out);
    while (rc == 0 && is_name(p, "and")) {
        const struct jtok *at = cur(p);
        next(p);
        struct jnode *r;
        if ((rc = p_not(p, &r)) == 0)
            rc = binop(p, JN_AND, 0, at, *out, r, out);
    }
    return rc;
}

static int p_or(struct ps *p, struct jnode **out)
{
    int rc = p_and(p, out);
    while (rc == 0 && is_name(p, "or")) {
        const struct jtok *at = cur(p);
        next(p);
        struct jnode *r;
        if ((rc = p_and(p, &r)) == 0)
            rc = binop(p, JN_OR, 0, at, *out, r, out);
    }
    return rc;
}

static int p_math1(struct ps *p, struct jnode **out);
static int p_compare(struct ps *p, struct jnode **out)
{
    int rc = p_math1(p, out);
    for (; rc == 0;) {
        const struct jtok *at = cur(p);
        int op = -1;
        static const char *const cmp[] = { "==", "!=", "<", "<=", ">", ">=" };
        static const int cmpop[] = { JO_EQ, JO_NE, JO_LT, JO_LE, JO_GT, JO_GE };
        for (int k = 0; k < 6; k++)
            if (is_op(p, cmp[k]))
                op = cmpop[k];
        if (op >= 0)
            next(p);
        else if (is_name(p, "in")) {
            op = JO_IN;
            next(p);
        } else if (is_name(p, "not") && tok_is(peek(p, 1), JT_NAME, "in")) {
            op = JO_NOTIN;
            next(p);
            next(p);
        } else
            break;
        struct jnode *r;
        if ((rc = p_math1(p, &r)) == 0)
            rc = binop(p, JN_BINOP, op, at, *out, r, out);
    }
    return rc;
}

static int p_not(struct ps *p, struct jnode **out)
{
    if (is_name(p, "not")) {
        const struct jtok *at = cur(p);
        next(p);
        if (++p->depth > MAX_NEST)
            return perr(at, "expression nested too deeply");
        struct jnode *n = mk(p, JN_NOT, at);
        if (!n)
            return ERR_NOMEM;
        int rc = p_not(p, &n->a);
        p->depth--;
        *out = n;
        return rc;
    }
    return p_compare(p, out);
}

static int p_pow(struct ps *p, struct jnode **out)
{
    int rc = p_unary(p, 1, out);
    while (rc == 0 && is_op(p, "**")) {
        const struct jtok *at = cur(p);
        next(p);
        struct jnode *r;
        if ((rc = p_unary(p, 1, &r)) == 0)
            rc = binop(p, JN_BINOP, JO_POW, at, *out, r, out);
    }
    return rc;
}

static int p_math2(struct ps *p, struct jnode **out)
{
    int rc = p_pow(p, out);
    for (; rc == 0;) {
        const struct jtok *at = cur(p);
        int op = is_op(p, "*")    ? JO_MUL
                 : is_op(p, "/")  ? JO_DIV
                 : is_op(p, "//") ? JO_FLOORDIV
                 : is_op(p, "%")  ? JO_MOD
                                  : -1;
        if (op < 0)
            break;
        next(p);
        struct jnode *r;
        if ((rc = p_pow(p, &r)) == 0)
            rc = binop(p, JN_BINOP, op, at, *out, r, out);
    }
    return rc;
}

static int p_concat(struct ps *p, struct jnode **out)
{
    int rc = p_math2(p, out);
    while (rc == 0 && is_op(p, "~")) {
        const struct jtok *at = cur(p);
        next(p);
        struct jnode *r;
        if ((rc = p_math2(p, &r)) == 0)
            rc = binop(p, JN_BINOP, JO_CONCAT, at, *out, r, out);
    }
    return rc;
}

static int p_math1(struct ps *p, struct jnode **out)
{
    int rc = p_concat(p, out);
    for (; rc == 0;) {
        const struct jtok *at = cur(p);
        int op = is_op(p, "+") ? JO_ADD : is_op(p, "-") ? JO_SUB : -1;
        if (op < 0)
            break;
        next(p);
        struct jnode *r;
        if ((rc = p_concat(p, &r)) == 0)
            rc = binop(p, JN_BINOP, op, at, *out, r, out);
    }
    return rc;
}

/* Call arguments after '(' up to ')': positional, then name=value. */
static int p_args(struct ps *p, struct nvec *v)
{
    int rc;
    if ((rc = expect_op(p, "(")) < 0)
        return rc;
    while (!is_op(p, ")")) {
        if (v->n && (rc = expect_op(p, ",")) < 0)
            return rc;
        if (is_op(p, ")"))
            break;
        const char *kw = NULL;
        if (is_op(p, "*") || is_op(p, "**"))
            return perr(cur(p), "*args and **kwargs in calls are not supported");
        if (cur(p)->type == JT_NAME && tok_is(peek(p, 1), JT_OP, "=")) {
            if (!(kw = name_dup(p, cur(p))))
                return ERR_NOMEM;
            next(p);
            next(p);
        } else if (v->n && v->kw[v->n - 1])
            return perr(cur(p), "positional argument follows keyword argument");
        struct jnode *e;
        if ((rc = p_expr(p, &e)) < 0 || (rc = nv_push(p, v, e, NULL, kw)) < 0)
            return rc;
    }
    next(p);
    return 0;
}

/* A dotted name (filters and tests may be named "a.b"). */
static int p_dotted(struct ps *p, const struct jtok **first, size_t *len)
{
    if (cur(p)->type != JT_NAME)
        return unexpected(p, "a name");
    *first = cur(p);
    const char *end = cur(p)->s + cur(p)->len;
    next(p);
    while (is_op(p, ".") && peek(p, 1)->type == JT_NAME) {
        next(p);
        end = cur(p)->s + cur(p)->len;
        next(p);
    }
    *len = (size_t)(end - (*first)->s);
    return 0;
}

static int p_filter_expr(struct ps *p, struct jnode **node)
{
    int rc = 0;
    for (;;) {
        if (is_op(p, "|")) {
            next(p);
            const struct jtok *nt;
            size_t len;
            if ((rc = p_dotted(p, &nt, &len)) < 0)
                return rc;
            struct jnode *f = mk(p, JN_FILTER, nt);
            if (!f)
                return ERR_NOMEM;
            f->s = nt->s;
            f->len = len;
            if ((f->op = jinja_filter_id(nt->s, len)) < 0)
                return perr(nt, "unknown filter '%.*s'", (int)len, nt->s);
            f->a = *node;
            if (is_op(p, "(")) {
                struct nvec v = { 0 };
                if ((rc = p_args(p, &v)) < 0)
                    return rc;
                f->kids = v.v, f->kw = v.kw, f->nkids = v.n;
            }
            *node = f;
        } else if (is_name(p, "is")) {
            const struct jtok *at = cur(p);
            next(p);
            int neg = 0;
            if (is_name(p, "not")) {
                neg = 1;
                next(p);
            }
            const struct jtok *nt;
            size_t len;
            if ((rc = p_dotted(p, &nt, &len)) < 0)
                return rc;
            struct jnode *t = mk(p, JN_TEST, nt);
            if (!t)
                return ERR_NOMEM;
            t->s = nt->s;
            t->len = len;
            /* Jinja2 names a few tests after keywords */
            if ((t->op = jinja_test_id(nt->s, len)) < 0)
                return perr(nt, "unknown test '%.*s'", (int)len, nt->s);
            t->a = *node;
            const struct jtok *c = cur(p);
            if (is_op(p, "(")) {
                struct nvec v = { 0 };
                if ((rc = p_args(p, &v)) < 0)
                    return rc;
                t->kids = v.v, t->kw = v.kw, t->nkids = v.n;
            } else if ((c->type == JT_NAME || c->type == JT_STRING || c->type == JT_INT ||
                        c->type == JT_FLOAT || tok_is(c, JT_OP, "[") || tok_is(c, JT_OP, "{")) &&
                       !tok_is(c, JT_NAME, "else") && !tok_is(c, JT_NAME, "or") &&
                       !tok_is(c, JT_NAME, "and")) {
                if (tok_is(c, JT_NAME, "is"))
                    return perr(c, "You cannot chain multiple tests with is");
                struct jnode *arg;
                if ((rc = p_primary(p, &arg)) < 0 || (rc = p_postfix(p, &arg)) < 0)
                    return rc;
                if (!(t->kids = jinja_alloc(p->a, sizeof *t->kids)))
                    return ERR_NOMEM;
                t->kids[0] = arg;
                t->nkids = 1;
            }
            if (neg) {
                struct jnode *n = mk(p, JN_NOT, at);
                if (!n)
                    return ERR_NOMEM;
                n->a = t;
                t = n;
            }
            *node = t;
        } else if (is_op(p, "(")) {
            if ((rc = p_postfix(p, node)) < 0)
                return rc;
        } else
            return 0;
    }
}

static int p_postfix(struct ps *p, struct jnode **node)
{
    int rc;
    for (;;) {
        const struct jtok *at = cur(p);
        if (is_op(p, ".")) {
            next(p);
            const struct jtok *t = cur(p);
            if (t->type == JT_NAME) {
                struct jnode *n = mk(p, JN_ATTR, at);
                if (!n || !(n->s = name_dup(p, t)))
                    return ERR_NOMEM;
                n->len = t->len;
                n->a = *node;
                *node = n;
            } else if (t->type == JT_INT) {
                struct jnode *n = mk(p, JN_ITEM, at), *k = mk(p, JN_CONST, t);
                if (!n || !k)
                    return ERR_NOMEM;
                k->val = jv_int(t->i);
                n->a = *node;
                n->b = k;
                *node = n;
            } else
                return unexpected(p, "an attribute name");
            next(p);
        } else if (is_op(p, "[")) {
            next(p);
            struct jnode *parts[3] = { 0 };
            int nparts = 1;
            for (int k = 0; k < 3; k++) {
                if (!is_op(p, ":") && !is_op(p, "]"))
                    if ((rc = p_expr(p, &parts[k])) < 0)
                        return rc;
                if (k < 2 && is_op(p, ":")) {
                    next(p);
                    nparts++;
                    continue;
                }
                break;
            }
            if ((rc = expect_op(p, "]")) < 0)
                return rc;
            struct jnode *n = mk(p, nparts == 1 ? JN_ITEM : JN_SLICE, at);
            if (!n)
                return ERR_NOMEM;
            n->a = *node;
            if (nparts == 1) {
                if (!parts[0])
                    return perr(at, "expected an index");
                n->b = parts[0];
            } else {
                n->b = parts[0];
                n->c = parts[1];
                n->d = parts[2];
            }
            *node = n;
        } else if (is_op(p, "(")) {
            struct nvec v = { 0 };
            if ((rc = p_args(p, &v)) < 0)
                return rc;
            struct jnode *n = mk(p, JN_CALL, at);
            if (!n)
                return ERR_NOMEM;
            /* errors in a call point at the callee, as in "raise_exception(...)" */
            n->line = (*node)->line;
            n->col = (*node)->col;
            n->a = *node;
            n->kids = v.v, n->kw = v.kw, n->nkids = v.n;
            *node = n;
        } else
            return 0;
    }
}

static int p_primary(struct ps *p, struct jnode **out)
{
    const struct jtok *t = cur(p);
    int rc;
    struct jnode *n;
    switch (t->type) {
    case JT_NAME:
        if (!(n = mk(p, JN_CONST, t)))
            return ERR_NOMEM;
        if (tok_is(t, JT_NAME, "true") || tok_is(t, JT_NAME, "True"))
            n->val = jv_bool(1);
        else if (tok_is(t, JT_NAME, "false") || tok_is(t, JT_NAME, "False"))
            n->val = jv_bool(0);
        else if (tok_is(t, JT_NAME, "none") || tok_is(t, JT_NAME, "None"))
            n->val = jv_none();
        else {
            n->kind = JN_NAME;
            if (!(n->s = name_dup(p, t)))
                return ERR_NOMEM;
            n->len = t->len;
        }
        next(p);
        break;
    case JT_STRING: {
        /* adjacent literals concatenate */
        struct buf b = { 0 };
        rc = 0;
        while (cur(p)->type == JT_STRING && rc == 0) {
            rc = buf_append(&b, cur(p)->s, cur(p)->len);
            next(p);
        }
        if (!(n = mk(p, JN_CONST, t)) || rc || jv_str(p->a, b.p ? b.p : "", b.len, &n->val) < 0) {
            buf_free(&b);
            return ERR_NOMEM;
        }
        buf_free(&b);
        break;
    }
    case JT_INT:
    case JT_FLOAT:
        if (!(n = mk(p, JN_CONST, t)))
            return ERR_NOMEM;
        n->val = t->type == JT_INT ? jv_int(t->i) : jv_float(t->f);
        next(p);
        break;
    case JT_OP:
        if (tok_is(t, JT_OP, "(")) {
            next(p);
            if ((rc = p_tuple(p, 1, 1, &n)) < 0 || (rc = expect_op(p, ")")) < 0)
                return rc;
            break;
        }
        if (tok_is(t, JT_OP, "[") || tok_is(t, JT_OP, "{")) {
            int dict = t->s[0] == '{';
            const char *close = dict ? "}" : "]";
            next(p);
            struct nvec v = { 0 };
            while (!is_op(p, close)) {
                if (v.n && (rc = expect_op(p, ",")) < 0)
                    return rc;
                if (is_op(p, close))
                    break;
                struct jnode *k, *val = NULL;
                if ((rc = p_expr(p, &k)) < 0)
                    return rc;
                if (dict && ((rc = expect_op(p, ":")) < 0 || (rc = p_expr(p, &val)) < 0))
                    return rc;
                if ((rc = nv_push(p, &v, k, val, NULL)) < 0)
                    return rc;
            }
            next(p);
            if (!(n = mk(p, dict ? JN_DICT : JN_LIST, t)))
                return ERR_NOMEM;
            n->kids = v.v, n->defs = v.d, n->nkids = v.n;
            break;
        }
        return unexpected(p, NULL);
    default: return unexpected(p, NULL);
    }
    *out = n;
    return 0;
}

static int p_unary(struct ps *p, int with_filter, struct jnode **out)
{
    const struct jtok *at = cur(p);
    int rc;
    if (++p->depth > MAX_NEST)
        return perr(at, "expression nested too deeply");
    if (is_op(p, "-") || is_op(p, "+")) {
        struct jnode *n = mk(p, is_op(p, "-") ? JN_NEG : JN_POS, at);
        if (!n)
            return ERR_NOMEM;
        next(p);
        if ((rc = p_unary(p, 0, &n->a)) < 0)
            return rc;
        *out = n;
    } else if ((rc = p_primary(p, out)) < 0)
        return rc;
    if ((rc = p_postfix(p, out)) < 0)
        return rc;
    if (with_filter && (rc = p_filter_expr(p, out)) < 0)
        return rc;
    p->depth--;
    return 0;
}

/* ---------------------------------------------------------------- statements */

/* Assignment target: name, name.attr (namespace), or names separated by
 * commas (optionally in parentheses). */
static int p_target(struct ps *p, int allow_attr, struct jnode **out)
{
    const struct jtok *at = cur(p);
    int parens = 0;
    if (is_op(p, "(")) {
        parens = 1;
        next(p);
    }
    struct nvec v = { 0 };
    int rc;
    for (;;) {
        const struct jtok *t = cur(p);
        if (t->type != JT_NAME)
            return unexpected(p, "a variable name");
        struct jnode *n = mk(p, JN_NAME, t);
        if (!n || !(n->s = name_dup(p, t)))
            return ERR_NOMEM;
        n->len = t->len;
        next(p);
        if (allow_attr && is_op(p, ".") && peek(p, 1)->type == JT_NAME) {
            next(p);
            struct jnode *a = mk(p, JN_ATTR, t);
            if (!a || !(a->s = name_dup(p, cur(p))))
                return ERR_NOMEM;
            a->len = cur(p)->len;
            a->a = n;
            n = a;
            next(p);
        }
        if ((rc = nv_push(p, &v, n, NULL, NULL)) < 0)
            return rc;
        if (!is_op(p, ","))
            break;
        next(p);
    }
    if (parens && (rc = expect_op(p, ")")) < 0)
        return rc;
    if (v.n == 1) {
        *out = v.v[0];
        return 0;
    }
    struct jnode *t = mk(p, JN_TUPLE, at);
    if (!t)
        return ERR_NOMEM;
    for (size_t k = 0; k < v.n; k++)
        if (v.v[k]->kind != JN_NAME)
            return perr(at, "can't assign to a namespace attribute in a tuple");
    t->kids = v.v, t->nkids = v.n;
    *out = t;
    return 0;
}

/* Parses statements until a block whose first name is one of `ends`
 * (NULL-terminated; NULL = until the end of the template). On return the
 * stream is at that name; *which gets its index. */
static int p_body(struct ps *p, const char *const *ends, int *which, struct jnode **out);

static int end_block(struct ps *p)
{
    return expect_type(p, JT_BLOCK_END, "end of statement block");
}

static int p_stmt(struct ps *p, struct jnode **out)
{
    const struct jtok *kw = cur(p);
    int rc, which;
    if (kw->type != JT_NAME)
        return unexpected(p, "a statement name");
    if (++p->depth > MAX_NEST)
        return perr(kw, "statements nested too deeply");
    if (tok_is(kw, JT_NAME, "if")) {
        struct jnode *n = mk(p, JN_IF, kw), *top = n;
        if (!n)
            return ERR_NOMEM;
        next(p);
        static const char *const ends[] = { "elif", "else", "endif", NULL };
        for (;;) {
            if ((rc = p_expr(p, &n->a)) < 0 || (rc = end_block(p)) < 0 ||
                (rc = p_body(p, ends, &which, &n->b)) < 0)
                return rc;
            const struct jtok *at = cur(p);
            next(p);
            if (which == 0) {
                struct jnode *e = mk(p, JN_IF, at);
                if (!e)
                    return ERR_NOMEM;
                n->c = e;
                n = e;
                continue;
            }
            if (which == 1) {
                static const char *const ends2[] = { "endif", NULL };
                if ((rc = end_block(p)) < 0 || (rc = p_body(p, ends2, &which, &n->c)) < 0)
                    return rc;
                next(p);
            }
            break;
        }
        *out = top;
    } else if (tok_is(kw, JT_NAME, "for")) {
        struct jnode *n = mk(p, JN_FOR, kw);
        if (!n)
            return ERR_NOMEM;
        next(p);
        if ((rc = p_target(p, 0, &n->a)) < 0)
            return rc;
        if (!is_name(p, "in"))
            return unexpected(p, "'in'");
        next(p);
        if ((rc = p_tuple(p, 0, 0, &n->b)) < 0)
            return rc;
        if (is_name(p, "if")) {
            next(p);
            if ((rc = p_expr(p, &n->e)) < 0)
                return rc;
        }
        if (is_name(p, "recursive"))
            return perr(cur(p), "recursive loops are not supported");
        static const char *const ends[] = { "else", "endfor", NULL };
        p->loops++;
        if ((rc = end_block(p)) < 0 || (rc = p_body(p, ends, &which, &n->c)) < 0)
            return rc;
        p->loops--;
        next(p);
        if (which == 0) {
            static const char *const ends2[] = { "endfor", NULL };
            if ((rc = end_block(p)) < 0 || (rc = p_body(p, ends2, &which, &n->d)) < 0)
                return rc;
            next(p);
        }
        *out = n;
    } else if (tok_is(kw, JT_NAME, "set")) {
        next(p);
        struct jnode *target;
        if ((rc = p_target(p, 1, &target)) < 0)
            return rc;
        if (is_op(p, "=")) {
            next(p);
            struct jnode *n = mk(p, JN_SET, kw);
            if (!n)
                return ERR_NOMEM;
            n->a = target;
            if ((rc = p_tuple(p, 1, 0, &n->b)) < 0)
                return rc;
            *out = n;
        } else {
            struct jnode *n = mk(p, JN_SETBLOCK, kw);
            if (!n)
                return ERR_NOMEM;
            if (target->kind == JN_TUPLE)
                return perr(kw, "a block set assigns one name");
            n->a = target;
            /* optional filters: {% set x | trim %}; stored as a filter chain on a NULL operand */
            struct jnode *chain = NULL;
            if (is_op(p, "|")) {
                struct jnode *hole = mk(p, JN_CONST, cur(p));
                if (!hole)
                    return ERR_NOMEM;
                hole->val = jv_undef();
                chain = hole;
                if ((rc = p_filter_expr(p, &chain)) < 0)
                    return rc;
                n->e = hole;
            }
            n->b = chain;
            static const char *const ends[] = { "endset", NULL };
            if ((rc = end_block(p)) < 0 || (rc = p_body(p, ends, &which, &n->c)) < 0)
                return rc;
            next(p);
            *out = n;
        }
    } else if (tok_is(kw, JT_NAME, "macro")) {
        next(p);
        struct jnode *n = mk(p, JN_MACRO, kw);
        if (!n)
            return ERR_NOMEM;
        if (cur(p)->type != JT_NAME)
            return unexpected(p, "a macro name");
        if (!(n->s = name_dup(p, cur(p))))
            return ERR_NOMEM;
        n->len = cur(p)->len;
        next(p);
        if ((rc = expect_op(p, "(")) < 0)
            return rc;
        struct nvec v = { 0 };
        while (!is_op(p, ")")) {
            if (v.n && (rc = expect_op(p, ",")) < 0)
                return rc;
            if (cur(p)->type != JT_NAME)
                return unexpected(p, "a parameter name");
            struct jnode *pn = mk(p, JN_NAME, cur(p)), *def = NULL;
            if (!pn || !(pn->s = name_dup(p, cur(p))))
                return ERR_NOMEM;
            pn->len = cur(p)->len;
            next(p);
            if (is_op(p, "=")) {
                next(p);
                if ((rc = p_expr(p, &def)) < 0)
                    return rc;
            } else if (v.n && v.d[v.n - 1])
                return perr(cur(p), "non-default argument follows default argument");
            if ((rc = nv_push(p, &v, pn, def, NULL)) < 0)
                return rc;
        }
        next(p);
        n->kids = v.v, n->defs = v.d, n->nkids = v.n;
        static const char *const ends[] = { "endmacro", NULL };
        int saved = p->loops;
        p->loops = 0;
        if ((rc = end_block(p)) < 0 || (rc = p_body(p, ends, &which, &n->c)) < 0)
            return rc;
        p->loops = saved;
        next(p);
        if (cur(p)->type == JT_NAME)
            next(p); /* {% endmacro name %} */
        *out = n;
    } else if (tok_is(kw, JT_NAME, "break") || tok_is(kw, JT_NAME, "continue")) {
        if (!p->loops)
            return perr(kw, "'%.*s' outside of a loop", (int)kw->len, kw->s);
        struct jnode *n = mk(p, kw->s[0] == 'b' ? JN_BREAK : JN_CONTINUE, kw);
        if (!n)
            return ERR_NOMEM;
        next(p);
        *out = n;
    } else if (tok_is(kw, JT_NAME, "generation")) {
        /* transformers' assistant-mask extension: renders its body */
        next(p);
        static const char *const ends[] = { "endgeneration", NULL };
        if ((rc = end_block(p)) < 0 || (rc = p_body(p, ends, &which, out)) < 0)
            return rc;
        next(p);
    } else
        return perr(kw, "unknown tag '%.*s'", (int)kw->len, kw->s);
    p->depth--;
    return end_block(p);
}

static int p_body(struct ps *p, const char *const *ends, int *which, struct jnode **out)
{
    const struct jtok *at = cur(p);
    struct nvec v = { 0 };
    int rc;
    for (;;) {
        const struct jtok *t = cur(p);
        struct jnode *n = NULL;
        if (t->type == JT_EOF) {
            if (ends)
                return perr(t, "unexpected end of template, expected '%s'", ends[0]);
            break;
        }
        if (t->type == JT_TEXT) {
            if (!(n = mk(p, JN_TEXT, t)))
                return ERR_NOMEM;
            n->s = t->s;
            n->len = t->len;
            next(p);
        } else if (t->type == JT_VAR_BEGIN) {
            next(p);
            if (!(n = mk(p, JN_OUTPUT, t)))
                return ERR_NOMEM;
            if ((rc = p_tuple(p, 1, 0, &n->a)) < 0 ||
                (rc = expect_type(p, JT_VAR_END, "end of print statement")) < 0)
                return rc;
        } else if (t->type == JT_BLOCK_BEGIN) {
            next(p);
            const struct jtok *kw = cur(p);
            int found = -1;
            for (int k = 0; ends && ends[k]; k++)
                if (tok_is(kw, JT_NAME, ends[k]))
                    found = k;
            if (found >= 0) {
                *which = found;
                break;
            }
            if (kw->type == JT_NAME &&
                (tok_is(kw, JT_NAME, "endif") || tok_is(kw, JT_NAME, "endfor") ||
                 tok_is(kw, JT_NAME, "else") || tok_is(kw, JT_NAME, "elif") ||
                 tok_is(kw, JT_NAME, "endmacro") || tok_is(kw, JT_NAME, "endset")))
                return perr(kw, "unexpected '%.*s'%s%s%s", (int)kw->len, kw->s,
                            ends ? ", expected '" : "", ends ? ends[0] : "", ends ? "'" : "");
            if ((rc = p_stmt(p, &n)) < 0)
                return rc;
        } else
            return unexpected(p, NULL);
        if ((rc = nv_push(p, &v, n, NULL, NULL)) < 0)
            return rc;
    }
    struct jnode *b = mk(p, JN_BODY, at);
    if (!b)
        return ERR_NOMEM;
    b->kids = v.v;
    b->nkids = v.n;
    *out = b;
    return 0;
}

int jinja_parse(struct jarena *a, const struct jtoks *toks, struct jnode **out)
{
    if (!toks->n)
        return err_set(ERR_INVAL, "template: no tokens");
    struct ps p = { .a = a, .t = toks->v, .n = toks->n };
    int which;
    return p_body(&p, NULL, &which, out);
}
