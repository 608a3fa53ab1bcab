/*
 * jinja_eval.c - runs the syntax tree.
 *
 * Scopes follow Jinja2: a for loop gets its own frame (assignments inside do
 * not leak out; the loop variable and `loop` live there); if/else do not; a
 * macro call gets a frame whose parent is the template's top-level frame.
 * Names not found in any frame come from the render variables, then the
 * global functions, else they are Undefined.
 *
 * Limits make hostile templates fail cleanly: output bytes, arena bytes
 * (jarena.limit), steps (loop iterations + calls) and nesting depth (macro
 * recursion and expression evaluation share one counter).
 */
#include "engine/jinja.h"

#include "common/ckd.h"
#include "common/err.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { JX_OK = 0, JX_BREAK = 1, JX_CONTINUE = 2 };

struct jframe {
    struct jframe *parent;
    struct jvar *v;
    size_t n, cap;
};

struct jctx {
    struct jarena *a;
    struct buf *out;
    const struct jlimits *lim;
    uint64_t steps;
    int depth;
    struct jframe *root;
    const struct jvar *vars;
    size_t nvars;
};

struct jarena *jinja_ctx_arena(struct jctx *cx) { return cx->a; }

int jinja_err(const struct jnode *at, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!at)
        return err_set(ERR_INVAL, "template: %s", msg);
    return err_set(ERR_INVAL, "template:%d:%d: %s", at->line, at->col, msg);
}

/* Adds the position to a message set by a lower layer (jv_*, arena). */
static int at_err(const struct jnode *at, int rc)
{
    if ((rc == ERR_INVAL || rc == ERR_NOMEM) && strncmp(err_msg(), "template:", 9) != 0)
        return err_prefix(rc, "template:%d:%d", at->line, at->col);
    return rc;
}

static int step(struct jctx *cx, const struct jnode *at)
{
    if (++cx->steps > cx->lim->max_steps)
        return jinja_err(at, "step limit reached (%llu loop iterations and calls)",
                         (unsigned long long)cx->lim->max_steps);
    return 0;
}

static int emit(struct jctx *cx, const struct jnode *at, const char *s, size_t n)
{
    if (n > cx->lim->max_output || cx->out->len > cx->lim->max_output - n)
        return jinja_err(at, "output limit reached (%zu bytes)", cx->lim->max_output);
    return buf_append(cx->out, s, n);
}

/* ---------------------------------------------------------------- frames */

static int frame_set(struct jctx *cx, struct jframe *f, const char *name, struct jv v)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->v[i].name, name)) {
            f->v[i].val = v;
            return 0;
        }
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 8;
        struct jvar *nv = jinja_alloc(cx->a, nc * sizeof *nv);
        if (!nv)
            return ERR_NOMEM;
        if (f->n)
            memcpy(nv, f->v, f->n * sizeof *nv);
        f->v = nv;
        f->cap = nc;
    }
    f->v[f->n].name = name;
    f->v[f->n].val = v;
    f->n++;
    return 0;
}

static int make_undef_named(struct jctx *cx, const char *fmt, const char *a, const char *b,
                            struct jv *out)
{
    char msg[300];
    snprintf(msg, sizeof msg, fmt, a, b);
    struct jv s;
    *out = jv_undef();
    if (jv_str(cx->a, msg, strlen(msg), &s) == 0)
        out->u.s = s.u.s;
    return 0;
}

static int lookup(struct jctx *cx, struct jframe *f, const char *name, struct jv *out)
{
    for (; f; f = f->parent)
        for (size_t i = f->n; i-- > 0;)
            if (!strcmp(f->v[i].name, name)) {
                *out = f->v[i].val;
                return 1;
            }
    for (size_t i = 0; i < cx->nvars; i++)
        if (!strcmp(cx->vars[i].name, name)) {
            *out = cx->vars[i].val;
            return 1;
        }
    int fn = jinja_func_id(name);
    if (fn >= 0) {
        *out = (struct jv){ .t = JV_FUNC, .u.i = fn };
        return 1;
    }
    /* keep the name for "'x' is undefined" messages */
    make_undef_named(cx, "'%s' is undefined%s", name, "", out);
    return 0;
}

/* ---------------------------------------------------------------- expressions */

static int ev(struct jctx *cx, struct jframe *f, const struct jnode *n, struct jv *out);
static int exec_body(struct jctx *cx, struct jframe *f, const struct jnode *body);

static int undefined_err(const struct jnode *at, struct jv u)
{
    if (u.u.s)
        return jinja_err(at, "%s", u.u.s->p);
    return jinja_err(at, "value is undefined");
}

/* obj[key] with Jinja2's fallbacks: missing -> Undefined, never an error
 * (except on Undefined itself). */
static int getitem(struct jctx *cx, const struct jnode *at, struct jv obj, struct jv key,
                   struct jv *out)
{
    if (obj.t == JV_UNDEF)
        return undefined_err(at, obj);
    if ((obj.t == JV_LIST || obj.t == JV_STR) && (key.t == JV_INT || key.t == JV_BOOL)) {
        int64_t i = key.t == JV_INT ? key.u.i : key.u.b;
        if (obj.t == JV_LIST) {
            int64_t n = (int64_t)obj.u.l->n;
            if (i < 0)
                i += n;
            if (i < 0 || i >= n)
                return make_undef_named(cx, "%s object has no element %s", "list", "", out);
            *out = obj.u.l->v[i];
            return 0;
        }
        /* strings index by code point */
        const char *s = obj.u.s->p;
        size_t len = obj.u.s->len;
        int64_t n = (int64_t)jv_utf8_len(s, len);
        if (i < 0)
            i += n;
        if (i < 0 || i >= n)
            return make_undef_named(cx, "%s index out of range%s", "string", "", out);
        size_t off = 0;
        for (int64_t k = 0; k < i; k++) {
            off++;
            while (off < len && ((unsigned char)s[off] & 0xC0) == 0x80)
                off++;
        }
        size_t e = off + 1;
        while (e < len && ((unsigned char)s[e] & 0xC0) == 0x80)
            e++;
        return jv_str(cx->a, s + off, e - off, out);
    }
    if (obj.t == JV_DICT) {
        struct jv *v = jv_dict_find(obj.u.d, key);
        if (v) {
            *out = *v;
            return 0;
        }
    }
    if (key.t == JV_STR)
        return jinja_getattr(cx, at, obj, key.u.s->p, key.u.s->len, out);
    *out = jv_undef();
    return 0;
}

static int slice_index(struct jv v, int64_t n, int64_t step, int is_start, int64_t *out,
                       const struct jnode *at)
{
    if (v.t == JV_UNDEF || v.t == JV_NONE) {
        if (step > 0)
            *out = is_start ? 0 : n;
        else
            *out = is_start ? n - 1 : -1;
        return 0;
    }
    if (v.t != JV_INT && v.t != JV_BOOL)
        return jinja_err(at, "slice indices must be integers or None");
    int64_t i = v.t == JV_INT ? v.u.i : v.u.b;
    if (i < 0) {
        i += n;
        if (i < 0)
            i = step > 0 ? 0 : -1;
    } else if (i >= n)
        i = step > 0 ? n : n - 1;
    *out = i;
    return 0;
}

static int do_slice(struct jctx *cx, const struct jnode *at, struct jv obj, struct jv a,
                    struct jv b, struct jv c, struct jv *out)
{
    int64_t st = 1;
    if (c.t != JV_UNDEF && c.t != JV_NONE) {
        if (c.t != JV_INT)
            return jinja_err(at, "slice indices must be integers or None");
        st = c.u.i;
        if (st == 0)
            return jinja_err(at, "slice step cannot be zero");
    }
    if (obj.t == JV_UNDEF)
        return undefined_err(at, obj);
    size_t *offs = NULL;
    int64_t n;
    if (obj.t == JV_LIST)
        n = (int64_t)obj.u.l->n;
    else if (obj.t == JV_STR) {
        /* code point boundaries: offs[i] = byte offset of code point i */
        n = (int64_t)jv_utf8_len(obj.u.s->p, obj.u.s->len);
        offs = malloc(((size_t)n + 1) * sizeof *offs);
        if (!offs)
            return err_set(ERR_NOMEM, "out of memory");
        size_t k = 0;
        for (size_t i = 0; i < obj.u.s->len; i++)
            if (((unsigned char)obj.u.s->p[i] & 0xC0) != 0x80)
                offs[k++] = i;
        offs[k] = obj.u.s->len;
    } else
        return jinja_err(at, "'%s' object is not subscriptable", jv_type_name(obj));
    int64_t i0 = 0, i1 = 0;
    int rc = slice_index(a, n, st, 1, &i0, at);
    if (rc == 0)
        rc = slice_index(b, n, st, 0, &i1, at);
    if (rc < 0) {
        free(offs);
        return rc;
    }
    if (obj.t == JV_LIST) {
        if ((rc = jv_list(cx->a, 0, out)) < 0)
            return rc;
        out->u.l->tuple = obj.u.l->tuple;
        for (int64_t i = i0; st > 0 ? i < i1 : i > i1; i += st)
            if ((rc = jv_list_push(cx->a, out->u.l, obj.u.l->v[i])) < 0)
                return rc;
        return 0;
    }
    struct buf sb = { 0 };
    for (int64_t i = i0; rc == 0 && (st > 0 ? i < i1 : i > i1); i += st)
        rc = buf_append(&sb, obj.u.s->p + offs[i], offs[i + 1] - offs[i]);
    free(offs);
    if (rc == 0)
        rc = jv_str(cx->a, sb.p ? sb.p : "", sb.len, out);
    buf_free(&sb);
    return rc;
}

static int contains(const struct jnode *at, struct jv item, struct jv seq, int *res)
{
    switch (seq.t) {
    case JV_STR:
        if (item.t != JV_STR)
            return jinja_err(at, "'in <string>' requires string as left operand, not %s",
                             jv_type_name(item));
        *res = item.u.s->len == 0 ||
               memmem(seq.u.s->p, seq.u.s->len, item.u.s->p, item.u.s->len) != NULL;
        return 0;
    case JV_LIST:
        *res = 0;
        for (size_t i = 0; i < seq.u.l->n && !*res; i++)
            *res = jv_equal(seq.u.l->v[i], item);
        return 0;
    case JV_DICT:
    case JV_NS: *res = jv_dict_find(seq.u.d, item) != NULL; return 0;
    case JV_UNDEF: *res = 0; return 0;
    default: return jinja_err(at, "argument of type '%s' is not iterable", jv_type_name(seq));
    }
}

static int num_of(struct jv v, double *f, int64_t *i)
{
    if (v.t == JV_INT || v.t == JV_BOOL) {
        *i = v.t == JV_INT ? v.u.i : v.u.b;
        *f = (double)*i;
        return 1; /* int */
    }
    if (v.t == JV_FLOAT) {
        *f = v.u.f;
        return 2;
    }
    return 0;
}

static int binop(struct jctx *cx, const struct jnode *n, struct jv a, struct jv b, struct jv *out)
{
    int op = n->op, rc, r;
    switch (op) {
    case JO_EQ: *out = jv_bool(jv_equal(a, b)); return 0;
    case JO_NE: *out = jv_bool(!jv_equal(a, b)); return 0;
    case JO_LT:
    case JO_LE:
    case JO_GT:
    case JO_GE:
        if ((rc = jv_compare(a, b, &r)) < 0)
            return at_err(n, rc);
        *out = jv_bool(op == JO_LT ? r < 0 : op == JO_LE ? r <= 0 : op == JO_GT ? r > 0 : r >= 0);
        return 0;
    case JO_IN:
    case JO_NOTIN:
        if ((rc = contains(n, a, b, &r)) < 0)
            return rc;
        *out = jv_bool(op == JO_IN ? r : !r);
        return 0;
    case JO_CONCAT: {
        struct buf s = { 0 };
        rc = jv_to_str(&s, a);
        if (rc == 0)
            rc = jv_to_str(&s, b);
        if (rc == 0)
            rc = jv_str(cx->a, s.p ? s.p : "", s.len, out);
        buf_free(&s);
        return at_err(n, rc);
    }
    }
    if (a.t == JV_UNDEF)
        return undefined_err(n, a);
    if (b.t == JV_UNDEF)
        return undefined_err(n, b);
    double fa = 0, fb = 0;
    int64_t ia = 0, ib = 0;
    int ka = num_of(a, &fa, &ia), kb = num_of(b, &fb, &ib);
    if (ka && kb) {
        int isint = ka == 1 && kb == 1;
        int64_t ri;
        switch (op) {
        case JO_ADD:
            if (!isint) {
                *out = jv_float(fa + fb);
                return 0;
            }
            if (ckd_add_i64(&ri, ia, ib))
                return jinja_err(n, "integer overflow");
            *out = jv_int(ri);
            return 0;
        case JO_SUB:
            if (!isint) {
                *out = jv_float(fa - fb);
                return 0;
            }
            if (ckd_add_i64(&ri, ia, -ib) || ib == INT64_MIN)
                return jinja_err(n, "integer overflow");
            *out = jv_int(ri);
            return 0;
        case JO_MUL:
            if (!isint) {
                *out = jv_float(fa * fb);
                return 0;
            }
            if (ckd_mul_i64(&ri, ia, ib))
                return jinja_err(n, "integer overflow");
            *out = jv_int(ri);
            return 0;
        case JO_DIV:
            if (fb == 0)
                return jinja_err(n, "division by zero");
            *out = jv_float(fa / fb);
            return 0;
        case JO_FLOORDIV:
        case JO_MOD:
            if (fb == 0)
                return jinja_err(n, "integer division or modulo by zero");
            if (isint) {
                if (ia == INT64_MIN && ib == -1)
                    return jinja_err(n, "integer overflow");
                int64_t q = ia / ib, m = ia % ib;
                if (m != 0 && ((m < 0) != (ib < 0)))
                    q--, m += ib; /* Python floors */
                *out = jv_int(op == JO_MOD ? m : q);
            } else {
                double q = floor(fa / fb), m = fmod(fa, fb);
                if (m != 0 && ((m < 0) != (fb < 0)))
                    m += fb;
                *out = jv_float(op == JO_MOD ? m : q);
            }
            return 0;
        case JO_POW:
            if (isint && ib >= 0) {
                int64_t res = 1;
                for (int64_t k = 0; k < ib; k++) {
                    if (ckd_mul_i64(&res, res, ia))
                        return jinja_err(n, "integer overflow");
                    if (res == 0 || res == 1)
                        break;
                }
                *out = jv_int(res);
            } else
                *out = jv_float(pow(fa, fb));
            return 0;
        }
    }
    if (op == JO_ADD && a.t == JV_STR && b.t == JV_STR) {
        size_t len;
        if (ckd_add_sz(&len, a.u.s->len, b.u.s->len))
            return jinja_err(n, "string too long");
        struct jstr *s = jinja_alloc(cx->a, sizeof *s + len + 1);
        if (!s)
            return at_err(n, ERR_NOMEM);
        s->len = len;
        memcpy(s->p, a.u.s->p, a.u.s->len);
        memcpy(s->p + a.u.s->len, b.u.s->p, b.u.s->len);
        s->p[len] = 0;
        *out = (struct jv){ .t = JV_STR, .u.s = s };
        return 0;
    }
    if (op == JO_ADD && a.t == JV_LIST && b.t == JV_LIST) {
        if ((rc = jv_list(cx->a, a.u.l->n + b.u.l->n, out)) < 0)
            return at_err(n, rc);
        for (size_t i = 0; i < a.u.l->n; i++)
            out->u.l->v[out->u.l->n++] = a.u.l->v[i];
        for (size_t i = 0; i < b.u.l->n; i++)
            out->u.l->v[out->u.l->n++] = b.u.l->v[i];
        out->u.l->tuple = a.u.l->tuple;
        return 0;
    }
    if (op == JO_MUL && ((a.t == JV_STR && kb == 1) || (b.t == JV_STR && ka == 1))) {
        struct jv s = a.t == JV_STR ? a : b;
        int64_t k = a.t == JV_STR ? ib : ia;
        struct buf sb = { 0 };
        rc = 0;
        for (int64_t i = 0; i < k && rc == 0; i++) {
            if (sb.len + s.u.s->len > cx->lim->max_output)
                rc = jinja_err(n, "string repetition too large");
            else
                rc = buf_append(&sb, s.u.s->p, s.u.s->len);
        }
        if (rc == 0)
            rc = jv_str(cx->a, sb.p ? sb.p : "", sb.len, out);
        buf_free(&sb);
        return at_err(n, rc);
    }
    static const char *const sym[] = { "+", "-", "*", "/", "//", "%", "**" };
    return jinja_err(n, "unsupported operand type(s) for %s: '%s' and '%s'", sym[op],
                     jv_type_name(a), jv_type_name(b));
}

/* Evaluates call arguments into arena arrays. */
static int eval_args(struct jctx *cx, struct jframe *f, const struct jnode *n, struct jv **args)
{
    *args = NULL;
    if (!n->nkids)
        return 0;
    if (!(*args = jinja_alloc(cx->a, n->nkids * sizeof **args)))
        return at_err(n, ERR_NOMEM);
    for (size_t i = 0; i < n->nkids; i++) {
        int rc = ev(cx, f, n->kids[i], &(*args)[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int call_macro(struct jctx *cx, const struct jnode *at, const struct jnode *m,
                      struct jv *args, const char **kw, size_t nargs, struct jv *out)
{
    int rc;
    if ((rc = step(cx, at)) < 0)
        return rc;
    struct jframe mf = { .parent = cx->root };
    size_t np = m->nkids;
    unsigned char *set = jinja_alloc(cx->a, np + 1);
    if (!set)
        return at_err(at, ERR_NOMEM);
    size_t pos = 0;
    for (size_t i = 0; i < nargs; i++) {
        size_t k;
        if (!kw || !kw[i]) {
            if (pos >= np)
                return jinja_err(at, "macro '%s' takes not more than %zu argument(s)", m->s, np);
            k = pos++;
        } else {
            for (k = 0; k < np; k++)
                if (!strcmp(m->kids[k]->s, kw[i]))
                    break;
            if (k == np)
                return jinja_err(at, "macro '%s' takes no keyword argument '%s'", m->s, kw[i]);
            if (set[k])
                return jinja_err(at, "macro '%s' got multiple values for argument '%s'", m->s,
                                 kw[i]);
        }
        set[k] = 1;
        if ((rc = frame_set(cx, &mf, m->kids[k]->s, args[i])) < 0)
            return at_err(at, rc);
    }
    for (size_t k = 0; k < np; k++) {
        if (set[k])
            continue;
        struct jv v = jv_undef();
        if (m->defs[k] && (rc = ev(cx, &mf, m->defs[k], &v)) < 0)
            return rc;
        if ((rc = frame_set(cx, &mf, m->kids[k]->s, v)) < 0)
            return at_err(at, rc);
    }
    struct buf mb = { 0 }, *saved = cx->out;
    cx->out = &mb;
    rc = exec_body(cx, &mf, m->c);
    cx->out = saved;
    if (rc >= 0)
        rc = jv_str(cx->a, mb.p ? mb.p : "", mb.len, out);
    buf_free(&mb);
    return rc < 0 ? rc : 0;
}

static int ev_inner(struct jctx *cx, struct jframe *f, const struct jnode *n, struct jv *out)
{
    int rc;
    struct jv a, b, c;
    switch (n->kind) {
    case JN_CONST: *out = n->val; return 0;
    case JN_NAME: lookup(cx, f, n->s, out); return 0;
    case JN_ATTR:
        if ((rc = ev(cx, f, n->a, &a)) < 0)
            return rc;
        return jinja_getattr(cx, n, a, n->s, n->len, out);
    case JN_ITEM:
        if ((rc = ev(cx, f, n->a, &a)) < 0 || (rc = ev(cx, f, n->b, &b)) < 0)
            return rc;
        return getitem(cx, n, a, b, out);
    case JN_SLICE: {
        struct jv s[3] = { jv_undef(), jv_undef(), jv_undef() };
        if ((rc = ev(cx, f, n->a, &a)) < 0)
            return rc;
        const struct jnode *parts[3] = { n->b, n->c, n->d };
        for (int k = 0; k < 3; k++)
            if (parts[k] && (rc = ev(cx, f, parts[k], &s[k])) < 0)
                return rc;
        return do_slice(cx, n, a, s[0], s[1], s[2], out);
    }
    case JN_CALL: {
        struct jv *args;
        if ((rc = ev(cx, f, n->a, &a)) < 0 || (rc = eval_args(cx, f, n, &args)) < 0)
            return rc;
        switch (a.t) {
        case JV_MACRO: return call_macro(cx, n, a.u.node, args, n->kw, n->nkids, out);
        case JV_FUNC: return jinja_call_func(cx, n, (int)a.u.i, args, n->kw, n->nkids, out);
        case JV_METHOD: return jinja_call_method(cx, n, a.u.me, args, n->kw, n->nkids, out);
        case JV_UNDEF: return undefined_err(n, a.u.s ? a : a);
        default: return jinja_err(n, "'%s' object is not callable", jv_type_name(a));
        }
    }
    case JN_FILTER: {
        struct jv *args;
        if ((rc = ev(cx, f, n->a, &a)) < 0 || (rc = eval_args(cx, f, n, &args)) < 0)
            return rc;
        return jinja_call_filter(cx, n, a, args, n->kw, n->nkids, out);
    }
    case JN_TEST: {
        struct jv *args;
        int r;
        if ((rc = ev(cx, f, n->a, &a)) < 0 || (rc = eval_args(cx, f, n, &args)) < 0)
            return rc;
        if ((rc = jinja_call_test(cx, n, a, args, n->nkids, &r)) < 0)
            return rc;
        *out = jv_bool(r);
        return 0;
    }
    case JN_BINOP:
        if ((rc = ev(cx, f, n->a, &a)) < 0 || (rc = ev(cx, f, n->b, &b)) < 0)
            return rc;
        return binop(cx, n, a, b, out);
    case JN_NEG:
    case JN_POS:
        if ((rc = ev(cx, f, n->a, &a)) < 0)
            return rc;
        if (a.t == JV_INT || a.t == JV_BOOL) {
            int64_t i = a.t == JV_INT ? a.u.i : a.u.b;
            if (n->kind == JN_NEG && i == INT64_MIN)
                return jinja_err(n, "integer overflow");
            *out = jv_int(n->kind == JN_NEG ? -i : i);
        } else if (a.t == JV_FLOAT)
            *out = jv_float(n->kind == JN_NEG ? -a.u.f : a.u.f);
        else if (a.t == JV_UNDEF)
            return undefined_err(n, a);
        else
            return jinja_err(n, "bad operand type for unary %s: '%s'",
                             n->kind == JN_NEG ? "-" : "+", jv_type_name(a));
        return 0;
    case JN_NOT:
        if ((rc = ev(cx, f, n->a, &a)) < 0)
            return rc;
        *out = jv_bool(!jv_truthy(a));
        return 0;
    case JN_AND:
    case JN_OR:
        if ((rc = ev(cx, f, n->a, &a)) < 0)
            return rc;
        if (jv_truthy(a) == (n->kind == JN_OR)) {
            *out = a;
            return 0;
        }
        return ev(cx, f, n->b, out);
    case JN_COND:
        if ((rc = ev(cx, f, n->a, &c)) < 0)
            return rc;
        if (jv_truthy(c))
            return ev(cx, f, n->b, out);
        if (n->c)
            return ev(cx, f, n->c, out);
        *out = jv_undef();
        return 0;
    case JN_LIST:
    case JN_TUPLE:
        if ((rc = jv_list(cx->a, n->nkids, out)) < 0)
            return at_err(n, rc);
        out->u.l->tuple = n->kind == JN_TUPLE;
        for (size_t i = 0; i < n->nkids; i++) {
            if ((rc = ev(cx, f, n->kids[i], &out->u.l->v[i])) < 0)
                return rc;
            out->u.l->n++;
        }
        return 0;
    case JN_DICT:
        if ((rc = jv_dict(cx->a, n->nkids, out)) < 0)
            return at_err(n, rc);
        for (size_t i = 0; i < n->nkids; i++) {
            if ((rc = ev(cx, f, n->kids[i], &a)) < 0 || (rc = ev(cx, f, n->defs[i], &b)) < 0)
                return rc;
            if (a.t == JV_LIST && !a.u.l->tuple)
                return jinja_err(n, "unhashable type: 'list'");
            if (a.t == JV_DICT)
                return jinja_err(n, "unhashable type: 'dict'");
            if ((rc = jv_dict_set(cx->a, out->u.d, a, b)) < 0)
                return at_err(n, rc);
        }
        return 0;
    }
    return jinja_err(n, "cannot evaluate this node (kind %d)", n->kind);
}

static int ev(struct jctx *cx, struct jframe *f, const struct jnode *n, struct jv *out)
{
    if (++cx->depth > cx->lim->max_depth) {
        cx->depth--;
        return jinja_err(n, "nesting limit reached (%d)", cx->lim->max_depth);
    }
    int rc = ev_inner(cx, f, n, out);
    cx->depth--;
    return at_err(n, rc);
}

/* ---------------------------------------------------------------- statements */

/* Iterating a value like Python's iter(): lists, dict keys, string
 * characters, Undefined (empty). */
static int iter_list(struct jctx *cx, const struct jnode *at, struct jv v, struct jlist **out)
{
    struct jv l;
    int rc;
    switch (v.t) {
    case JV_LIST: *out = v.u.l; return 0;
    case JV_DICT:
        if ((rc = jv_list(cx->a, v.u.d->n, &l)) < 0)
            return rc;
        memcpy(l.u.l->v, v.u.d->k, v.u.d->n * sizeof(struct jv));
        l.u.l->n = v.u.d->n;
        *out = l.u.l;
        return 0;
    case JV_STR: {
        if ((rc = jv_list(cx->a, 0, &l)) < 0)
            return rc;
        const char *s = v.u.s->p;
        size_t n = v.u.s->len;
        for (size_t i = 0; i < n;) {
            size_t e = i + 1;
            while (e < n && ((unsigned char)s[e] & 0xC0) == 0x80)
                e++;
            struct jv ch;
            if ((rc = jv_str(cx->a, s + i, e - i, &ch)) < 0 ||
                (rc = jv_list_push(cx->a, l.u.l, ch)) < 0)
                return rc;
            i = e;
        }
        *out = l.u.l;
        return 0;
    }
    case JV_UNDEF:
        if ((rc = jv_list(cx->a, 0, &l)) < 0)
            return rc;
        *out = l.u.l;
        return 0;
    default: return jinja_err(at, "'%s' object is not iterable", jv_type_name(v));
    }
}

static int assign(struct jctx *cx, struct jframe *f, const struct jnode *target, struct jv v)
{
    int rc;
    if (target->kind == JN_NAME)
        return frame_set(cx, f, target->s, v);
    if (target->kind == JN_ATTR) {
        struct jv ns;
        lookup(cx, f, target->a->s, &ns);
        if (ns.t != JV_NS)
            return jinja_err(target, "cannot assign attribute on non-namespace object");
        if (target->s[0] == '_')
            return jinja_err(target, "cannot store underscore-prefixed attributes on a namespace");
        struct jv k;
        if ((rc = jv_str(cx->a, target->s, target->len, &k)) < 0)
            return rc;
        return jv_dict_set(cx->a, ns.u.d, k, v);
    }
    /* tuple unpacking */
    struct jlist *l;
    if ((rc = iter_list(cx, target, v, &l)) < 0)
        return rc;
    if (l->n != target->nkids)
        return jinja_err(target, "%s values to unpack (expected %zu, got %zu)",
                         l->n > target->nkids ? "too many" : "not enough", target->nkids, l->n);
    for (size_t i = 0; i < l->n; i++)
        if ((rc = assign(cx, f, target->kids[i], l->v[i])) < 0)
            return rc;
    return 0;
}

static int exec_for(struct jctx *cx, struct jframe *f, const struct jnode *n)
{
    struct jv it;
    struct jlist *items;
    int rc;
    if ((rc = ev(cx, f, n->b, &it)) < 0 || (rc = iter_list(cx, n, it, &items)) < 0)
        return at_err(n, rc);
    struct jframe lf = { .parent = f };
    if (n->e) {
        /* `for x in xs if cond`: filter first, so loop.length/last see the result */
        struct jv fl;
        if ((rc = jv_list(cx->a, 0, &fl)) < 0)
            return at_err(n, rc);
        for (size_t i = 0; i < items->n; i++) {
            struct jv c;
            if ((rc = step(cx, n)) < 0 || (rc = assign(cx, &lf, n->a, items->v[i])) < 0 ||
                (rc = ev(cx, &lf, n->e, &c)) < 0)
                return at_err(n, rc);
            if (jv_truthy(c) && (rc = jv_list_push(cx->a, fl.u.l, items->v[i])) < 0)
                return at_err(n, rc);
        }
        items = fl.u.l;
        lf.n = 0;
    }
    if (items->n == 0)
        return n->d ? exec_body(cx, f, n->d) : 0;
    struct jloop *lp = jinja_alloc(cx->a, sizeof *lp);
    if (!lp)
        return at_err(n, ERR_NOMEM);
    lp->items = items;
    for (size_t i = 0; i < items->n; i++) {
        lp->index0 = i;
        /* Jinja2: what the body assigns lives for one iteration; the next one
         * sees the outer values again */
        lf.n = 0;
        if ((rc = step(cx, n)) < 0 || (rc = assign(cx, &lf, n->a, items->v[i])) < 0 ||
            (rc = frame_set(cx, &lf, "loop", (struct jv){ .t = JV_LOOP, .u.lp = lp })) < 0)
            return at_err(n, rc);
        rc = exec_body(cx, &lf, n->c);
        if (rc < 0)
            return rc;
        if (rc == JX_BREAK)
            break;
    }
    return 0;
}

static int exec_stmt(struct jctx *cx, struct jframe *f, const struct jnode *n)
{
    int rc;
    struct jv v;
    switch (n->kind) {
    case JN_BODY: return exec_body(cx, f, n);
    case JN_TEXT: return emit(cx, n, n->s, n->len);
    case JN_OUTPUT: {
        if ((rc = ev(cx, f, n->a, &v)) < 0)
            return rc;
        if (v.t == JV_STR)
            return emit(cx, n, v.u.s->p, v.u.s->len);
        struct buf s = { 0 };
        rc = jv_to_str(&s, v);
        if (rc == 0)
            rc = emit(cx, n, s.p ? s.p : "", s.len);
        buf_free(&s);
        return at_err(n, rc);
    }
    case JN_IF:
        for (const struct jnode *c = n; c; c = c->c) {
            if (c->kind != JN_IF)
                return exec_body(cx, f, c);
            if ((rc = ev(cx, f, c->a, &v)) < 0)
                return rc;
            if (jv_truthy(v))
                return exec_body(cx, f, c->b);
        }
        return 0;
    case JN_FOR: return exec_for(cx, f, n);
    case JN_SET:
        if ((rc = ev(cx, f, n->b, &v)) < 0)
            return rc;
        return at_err(n, assign(cx, f, n->a, v));
    case JN_SETBLOCK: {
        struct buf sb = { 0 }, *saved = cx->out;
        cx->out = &sb;
        rc = exec_body(cx, f, n->c);
        cx->out = saved;
        if (rc >= 0)
            rc = jv_str(cx->a, sb.p ? sb.p : "", sb.len, &v);
        buf_free(&sb);
        if (rc < 0)
            return at_err(n, rc);
        if (n->b) {
            /* the filter chain ends in the hole n->e: evaluate it with the body text */
            const struct jnode *chain[64];
            int nc = 0;
            for (const struct jnode *c = n->b; c && c != n->e && nc < 64; c = c->a)
                chain[nc++] = c;
            for (int k = nc - 1; k >= 0; k--) {
                struct jv *args, r;
                if ((rc = eval_args(cx, f, chain[k], &args)) < 0 ||
                    (rc = jinja_call_filter(cx, chain[k], v, args, chain[k]->kw, chain[k]->nkids,
                                            &r)) < 0)
                    return rc;
                v = r;
            }
        }
        return at_err(n, assign(cx, f, n->a, v));
    }
    case JN_MACRO:
        return at_err(n, frame_set(cx, f, n->s, (struct jv){ .t = JV_MACRO, .u.node = n }));
    case JN_BREAK: return JX_BREAK;
    case JN_CONTINUE: return JX_CONTINUE;
    }
    return jinja_err(n, "cannot execute this node (kind %d)", n->kind);
}

static int exec_body(struct jctx *cx, struct jframe *f, const struct jnode *body)
{
    if (!body)
        return 0;
    if (body->kind != JN_BODY)
        return exec_stmt(cx, f, body);
    if (++cx->depth > cx->lim->max_depth) {
        cx->depth--;
        return jinja_err(body, "nesting limit reached (%d)", cx->lim->max_depth);
    }
    int rc = 0;
    for (size_t i = 0; i < body->nkids && rc == 0; i++)
        rc = exec_stmt(cx, f, body->kids[i]);
    cx->depth--;
    return rc;
}

int jinja_render(struct jarena *a, const struct jnode *root, const struct jvar *vars, size_t nvars,
                 const struct jlimits *lim, struct buf *out)
{
    struct jframe rootf = { 0 };
    struct jctx cx = {
        .a = a, .out = out, .lim = lim, .root = &rootf, .vars = vars, .nvars = nvars
    };
    int rc = exec_body(&cx, &rootf, root);
    return rc < 0 ? rc : 0;
}
