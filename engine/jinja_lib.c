/*
 * jinja_lib.c - what templates call: filters, tests, attribute access
 * (dict keys, `loop.*`, bound str/dict methods) and global functions
 * (namespace, raise_exception, range, dict, strftime_now), each with the
 * Python/Jinja2 behaviour chat templates depend on.
 */
#include "engine/jinja.h"

#include "common/err.h"
#include "common/text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

/* ---------------------------------------------------------------- names */

enum {
    F_TRIM,
    F_TOJSON,
    F_STRING,
    F_ITEMS,
    F_LENGTH,
    F_COUNT,
    F_SAFE,
    F_LOWER,
    F_UPPER,
    F_DEFAULT,
    F_D,
    F_FIRST,
    F_LAST,
    F_JOIN,
    F_LIST,
    F_REPLACE,
    F_INT,
    F_FLOAT,
    F_ABS,
    F_CAPITALIZE,
    F_TITLE,
    F_REVERSE,
    F_MAP,
    F_SELECTATTR,
    F_REJECTATTR,
    F_E,
    F_ESCAPE,
    F_INDENT,
    F_SUM,
    F_DICTSORT,
    F_SORT,
    F_N
};
static const char *const filter_names[F_N] = {
    "trim",       "tojson",  "string", "items",      "length", "count",    "safe", "lower",
    "upper",      "default", "d",      "first",      "last",   "join",     "list", "replace",
    "int",        "float",   "abs",    "capitalize", "title",  "reverse",  "map",  "selectattr",
    "rejectattr", "e",       "escape", "indent",     "sum",    "dictsort", "sort",
};

enum {
    T_DEFINED,
    T_UNDEFINED,
    T_NONE,
    T_TRUE,
    T_FALSE,
    T_STRING,
    T_NUMBER,
    T_INTEGER,
    T_FLOAT,
    T_BOOLEAN,
    T_MAPPING,
    T_ITERABLE,
    T_SEQUENCE,
    T_CALLABLE,
    T_EQ,
    T_EQUALTO,
    T_EQEQ,
    T_NE,
    T_NEQ,
    T_LT,
    T_LESSTHAN,
    T_GT,
    T_GREATERTHAN,
    T_LE,
    T_GE,
    T_IN,
    T_ODD,
    T_EVEN,
    T_DIVISIBLEBY,
    T_LOWER,
    T_UPPER,
    T_SAMEAS,
    T_N
};
static const char *const test_names[T_N] = {
    "defined",     "undefined",   "none",    "true",    "false",    "string",   "number",
    "integer",     "float",       "boolean", "mapping", "iterable", "sequence", "callable",
    "eq",          "equalto",     "==",      "ne",      "!=",       "lt",       "lessthan",
    "gt",          "greaterthan", "le",      "ge",      "in",       "odd",      "even",
    "divisibleby", "lower",       "upper",   "sameas",
};

enum { FN_NAMESPACE, FN_RAISE, FN_RANGE, FN_DICT, FN_STRFTIME, FN_N };
static const char *const func_names[FN_N] = { "namespace", "raise_exception", "range", "dict",
                                              "strftime_now" };

enum {
    M_STARTSWITH,
    M_ENDSWITH,
    M_SPLIT,
    M_RSPLIT,
    M_STRIP,
    M_LSTRIP,
    M_RSTRIP,
    M_UPPER,
    M_LOWER,
    M_REPLACE,
    M_TITLE,
    M_CAPITALIZE,
    M_FIND,
    M_COUNT,
    M_JOIN,
    M_ISDIGIT,
    M_ISSPACE,
    M_STR_N,
    /* dict */
    M_ITEMS = M_STR_N,
    M_KEYS,
    M_VALUES,
    M_GET,
    M_COPY,
    /* loop */
    M_CYCLE,
};
static const char *const str_methods[M_STR_N] = {
    "startswith", "endswith", "split", "rsplit",  "strip",   "lstrip",
    "rstrip",     "upper",    "lower", "replace", "title",   "capitalize",
    "find",       "count",    "join",  "isdigit", "isspace",
};
static const char *const dict_methods[] = { "items", "keys", "values", "get", "copy", NULL };

static int find_name(const char *const *names, int n, const char *s, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && !memcmp(names[i], s, len))
            return i;
    return -1;
}

int jinja_filter_id(const char *name, size_t n) { return find_name(filter_names, F_N, name, n); }
int jinja_test_id(const char *name, size_t n) { return find_name(test_names, T_N, name, n); }
int jinja_func_id(const char *name) { return find_name(func_names, FN_N, name, strlen(name)); }

/* ---------------------------------------------------------------- helpers */

/* Finds keyword argument `name`, or positional argument `pos`; NULL if absent. */
static struct jv *arg(struct jv *args, const char **kw, size_t n, size_t pos, const char *name)
{
    size_t npos = 0;
    for (size_t i = 0; i < n; i++) {
        if (kw && kw[i]) {
            if (name && !strcmp(kw[i], name))
                return &args[i];
        } else if (npos++ == pos)
            return &args[i];
    }
    return NULL;
}

static int check_args(const struct jnode *at, const char *what, const char **kw, size_t n,
                      size_t maxpos, const char *const *names)
{
    size_t npos = 0;
    for (size_t i = 0; i < n; i++) {
        if (kw && kw[i]) {
            int ok = 0;
            for (int k = 0; names && names[k]; k++)
                ok |= !strcmp(names[k], kw[i]);
            if (!ok)
                return jinja_err(at, "%s() got an unexpected keyword argument '%s'", what, kw[i]);
        } else
            npos++;
    }
    if (npos > maxpos)
        return jinja_err(at, "%s() takes at most %zu argument(s) (%zu given)", what, maxpos, npos);
    return 0;
}

static int mkstr(struct jctx *cx, const char *s, size_t n, struct jv *out)
{
    return jv_str(jinja_ctx_arena(cx), s, n, out);
}

static int buf_to_str(struct jctx *cx, struct buf *b, int rc, struct jv *out)
{
    if (rc == 0)
        rc = mkstr(cx, b->p ? b->p : "", b->len, out);
    buf_free(b);
    return rc;
}

static int str_of(struct jctx *cx, struct jv v, struct jv *out)
{
    return jv_stringify(jinja_ctx_arena(cx), v, out);
}

/* Is code point cp in the strip set (NULL = whitespace)? */
static int in_set(uint32_t cp, const struct jstr *set)
{
    if (!set)
        return jv_is_space(cp);
    for (size_t i = 0; i < set->len;) {
        uint32_t c;
        int l = utf8_decode(set->p + i, set->len - i, &c);
        if (l <= 0)
            return 0;
        if (c == cp)
            return 1;
        i += (size_t)l;
    }
    return 0;
}

/* Python str.strip/lstrip/rstrip: which: 1 left, 2 right, 3 both. */
static int do_strip(struct jctx *cx, const struct jstr *s, const struct jstr *set, int which,
                    struct jv *out)
{
    size_t st = 0, en = s->len;
    if (which & 1)
        while (st < en) {
            uint32_t c;
            int l = utf8_decode(s->p + st, en - st, &c);
            if (l <= 0 || !in_set(c, set))
                break;
            st += (size_t)l;
        }
    if (which & 2)
        while (en > st) {
            size_t b = en - 1;
            while (b > st && ((unsigned char)s->p[b] & 0xC0) == 0x80)
                b--;
            uint32_t c;
            int l = utf8_decode(s->p + b, en - b, &c);
            if (l <= 0 || !in_set(c, set))
                break;
            en = b;
        }
    return mkstr(cx, s->p + st, en - st, out);
}

static int strip_arg(const struct jnode *at, struct jv *a, const struct jstr **set)
{
    *set = NULL;
    if (!a || a->t == JV_NONE)
        return 0;
    if (a->t != JV_STR)
        return jinja_err(at, "strip arg must be None or str");
    *set = a->u.s;
    return 0;
}

/* Case mapping per code point (mode 0 lower, 1 upper, 2 title, 3 capitalize). */
static int do_case(struct jctx *cx, const struct jstr *s, int mode, struct jv *out)
{
    struct buf b = { 0 };
    int rc = 0, prev_cased = 0, first = 1;
    for (size_t i = 0; i < s->len && rc == 0;) {
        uint32_t c;
        int l = utf8_decode(s->p + i, s->len - i, &c);
        if (l <= 0)
            break;
        i += (size_t)l;
        uint32_t o = c;
        if (mode == 0)
            o = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
        else if (mode == 1)
            o = (uint32_t)utf8proc_toupper((utf8proc_int32_t)c);
        else if (mode == 2) {
            o = prev_cased ? (uint32_t)utf8proc_tolower((utf8proc_int32_t)c)
                           : (uint32_t)utf8proc_totitle((utf8proc_int32_t)c);
            const utf8proc_property_t *pr = utf8proc_get_property((utf8proc_int32_t)c);
            prev_cased = pr->category == UTF8PROC_CATEGORY_LU ||
                         pr->category == UTF8PROC_CATEGORY_LL ||
                         pr->category == UTF8PROC_CATEGORY_LT;
        } else
            o = first ? (uint32_t)utf8proc_toupper((utf8proc_int32_t)c)
                      : (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
        first = 0;
        char u[4];
        int ul = utf8_encode(o, u);
        rc = buf_append(&b, u, (size_t)(ul ? ul : 0));
    }
    return buf_to_str(cx, &b, rc, out);
}

static int do_replace(struct jctx *cx, const struct jstr *s, const struct jstr *old,
                      const struct jstr *rep, int64_t count, struct jv *out)
{
    struct buf b = { 0 };
    int rc = 0;
    size_t i = 0;
    int64_t done = 0;
    if (old->len == 0) {
        /* Python inserts rep between every character and at both ends */
        for (size_t k = 0; k <= s->len && rc == 0;) {
            if (count < 0 || done < count) {
                rc = buf_append(&b, rep->p, rep->len);
                done++;
            }
            if (k == s->len)
                break;
            size_t e = k + 1;
            while (e < s->len && ((unsigned char)s->p[e] & 0xC0) == 0x80)
                e++;
            rc |= buf_append(&b, s->p + k, e - k);
            k = e;
        }
        return buf_to_str(cx, &b, rc, out);
    }
    while (rc == 0 && (count < 0 || done < count)) {
        const char *f = memmem(s->p + i, s->len - i, old->p, old->len);
        if (!f)
            break;
        size_t at = (size_t)(f - s->p);
        rc = buf_append(&b, s->p + i, at - i) | buf_append(&b, rep->p, rep->len);
        i = at + old->len;
        done++;
    }
    if (rc == 0)
        rc = buf_append(&b, s->p + i, s->len - i);
    return buf_to_str(cx, &b, rc, out);
}

/* Python str.split(sep=None, maxsplit=-1) / rsplit (from the right). */
static int do_split(struct jctx *cx, const struct jnode *at, const struct jstr *s,
                    const struct jstr *sep, int64_t maxsplit, int right, struct jv *out)
{
    struct jarena *a = jinja_ctx_arena(cx);
    int rc = jv_list(a, 0, out);
    if (rc < 0)
        return rc;
    struct jv piece;
    if (sep && sep->len == 0)
        return jinja_err(at, "empty separator");
    /* collect [start,end) pairs, then build in order */
    size_t cap = 16, n = 0;
    size_t *pr = malloc(cap * 2 * sizeof *pr);
    if (!pr)
        return err_set(ERR_NOMEM, "out of memory");
    int64_t splits = 0;
#define ADD(st_, en_)                                                                              \
    do {                                                                                           \
        if (n == cap) {                                                                            \
            size_t *np_ = realloc(pr, cap * 4 * sizeof *pr);                                       \
            if (!np_) {                                                                            \
                free(pr);                                                                          \
                return err_set(ERR_NOMEM, "out of memory");                                        \
            }                                                                                      \
            pr = np_;                                                                              \
            cap *= 2;                                                                              \
        }                                                                                          \
        pr[2 * n] = (st_);                                                                         \
        pr[2 * n + 1] = (en_);                                                                     \
        n++;                                                                                       \
    } while (0)
    if (sep && !right) {
        size_t i = 0;
        for (;;) {
            const char *f = (maxsplit < 0 || splits < maxsplit)
                                ? memmem(s->p + i, s->len - i, sep->p, sep->len)
                                : NULL;
            if (!f) {
                ADD(i, s->len);
                break;
            }
            ADD(i, (size_t)(f - s->p));
            i = (size_t)(f - s->p) + sep->len;
            splits++;
        }
    } else if (sep) {
        size_t en = s->len;
        for (;;) {
            const char *f = NULL;
            if (maxsplit < 0 || splits < maxsplit)
                for (size_t k = en >= sep->len ? en - sep->len + 1 : 0; k-- > 0;)
                    if (!memcmp(s->p + k, sep->p, sep->len)) {
                        f = s->p + k;
                        break;
                    }
            if (!f) {
                ADD(0, en);
                break;
            }
            ADD((size_t)(f - s->p) + sep->len, en);
            en = (size_t)(f - s->p);
            splits++;
        }
        /* reverse into left-to-right order */
        for (size_t k = 0; k < n / 2; k++) {
            size_t t0 = pr[2 * k], t1 = pr[2 * k + 1];
            pr[2 * k] = pr[2 * (n - 1 - k)], pr[2 * k + 1] = pr[2 * (n - 1 - k) + 1];
            pr[2 * (n - 1 - k)] = t0, pr[2 * (n - 1 - k) + 1] = t1;
        }
    } else {
        /* whitespace runs; leading/trailing ignored (left split only for rsplit too,
         * except maxsplit, which rsplit counts from the right: rare, not handled) */
        size_t i = 0;
        for (;;) {
            uint32_t c;
            int l;
            while (i < s->len && (l = utf8_decode(s->p + i, s->len - i, &c)) > 0 && jv_is_space(c))
                i += (size_t)l;
            if (i >= s->len)
                break;
            if (maxsplit >= 0 && splits >= maxsplit) {
                /* the rest, with trailing whitespace stripped */
                size_t en = s->len;
                while (en > i) {
                    size_t b = en - 1;
                    while (b > i && ((unsigned char)s->p[b] & 0xC0) == 0x80)
                        b--;
                    if (utf8_decode(s->p + b, en - b, &c) <= 0 || !jv_is_space(c))
                        break;
                    en = b;
                }
                ADD(i, en);
                break;
            }
            size_t st = i;
            while (i < s->len && (l = utf8_decode(s->p + i, s->len - i, &c)) > 0 && !jv_is_space(c))
                i += (size_t)l;
            ADD(st, i);
            splits++;
        }
    }
#undef ADD
    for (size_t k = 0; k < n; k++) {
        if ((rc = mkstr(cx, s->p + pr[2 * k], pr[2 * k + 1] - pr[2 * k], &piece)) < 0 ||
            (rc = jv_list_push(a, out->u.l, piece)) < 0)
            break;
    }
    free(pr);
    return rc;
}

static int items_of(struct jctx *cx, const struct jnode *at, struct jv v, struct jv *out)
{
    struct jarena *a = jinja_ctx_arena(cx);
    int rc;
    if (v.t == JV_UNDEF)
        return jv_list(a, 0, out);
    if (v.t != JV_DICT)
        return jinja_err(at, "Can only get item pairs from a mapping.");
    if ((rc = jv_list(a, v.u.d->n, out)) < 0)
        return rc;
    for (size_t i = 0; i < v.u.d->n; i++) {
        struct jv pair;
        if ((rc = jv_list(a, 2, &pair)) < 0)
            return rc;
        pair.u.l->tuple = 1;
        pair.u.l->v[0] = v.u.d->k[i];
        pair.u.l->v[1] = v.u.d->v[i];
        pair.u.l->n = 2;
        out->u.l->v[out->u.l->n++] = pair;
    }
    return 0;
}

/* list(v) */
static int to_list(struct jctx *cx, const struct jnode *at, struct jv v, struct jlist **out)
{
    struct jarena *a = jinja_ctx_arena(cx);
    struct jv l;
    int rc;
    if (v.t == JV_LIST) {
        *out = v.u.l;
        return 0;
    }
    if ((rc = jv_list(a, 0, &l)) < 0)
        return rc;
    *out = l.u.l;
    if (v.t == JV_UNDEF)
        return 0;
    if (v.t == JV_DICT) {
        for (size_t i = 0; i < v.u.d->n; i++)
            if ((rc = jv_list_push(a, l.u.l, v.u.d->k[i])) < 0)
                return rc;
        return 0;
    }
    if (v.t == JV_STR) {
        for (size_t i = 0; i < v.u.s->len;) {
            size_t e = i + 1;
            while (e < v.u.s->len && ((unsigned char)v.u.s->p[e] & 0xC0) == 0x80)
                e++;
            struct jv ch;
            if ((rc = mkstr(cx, v.u.s->p + i, e - i, &ch)) < 0 ||
                (rc = jv_list_push(a, l.u.l, ch)) < 0)
                return rc;
            i = e;
        }
        return 0;
    }
    return jinja_err(at, "'%s' object is not iterable", jv_type_name(v));
}

/* ---------------------------------------------------------------- attributes */

int jinja_getattr(struct jctx *cx, const struct jnode *at, struct jv obj, const char *name,
                  size_t n, struct jv *out)
{
    struct jarena *a = jinja_ctx_arena(cx);
    int id = -1;
    switch (obj.t) {
    case JV_UNDEF:
        if (obj.u.s)
            return jinja_err(at, "%s", obj.u.s->p);
        return jinja_err(at, "undefined value has no attribute '%.*s'", (int)n, name);
    case JV_DICT: {
        /* Python getattr first: dict methods shadow keys of the same name */
        for (int k = 0; dict_methods[k]; k++)
            if (strlen(dict_methods[k]) == n && !memcmp(dict_methods[k], name, n))
                id = M_ITEMS + k;
        if (id < 0) {
            struct jv *v = jv_dict_get(obj.u.d, name, n);
            if (v) {
                *out = *v;
                return 0;
            }
        }
        break;
    }
    case JV_NS: {
        struct jv *v = jv_dict_get(obj.u.d, name, n);
        if (v) {
            *out = *v;
            return 0;
        }
        break;
    }
    case JV_STR: id = find_name(str_methods, M_STR_N, name, n); break;
    case JV_LOOP: {
        const struct jloop *lp = obj.u.lp;
        int64_t len = (int64_t)lp->items->n, i0 = (int64_t)lp->index0;
#define IS(s) (n == strlen(s) && !memcmp(name, s, n))
        if (IS("index0"))
            *out = jv_int(i0);
        else if (IS("index"))
            *out = jv_int(i0 + 1);
        else if (IS("revindex"))
            *out = jv_int(len - i0);
        else if (IS("revindex0"))
            *out = jv_int(len - i0 - 1);
        else if (IS("first"))
            *out = jv_bool(i0 == 0);
        else if (IS("last"))
            *out = jv_bool(i0 == len - 1);
        else if (IS("length"))
            *out = jv_int(len);
        else if (IS("depth"))
            *out = jv_int(1);
        else if (IS("depth0"))
            *out = jv_int(0);
        else if (IS("previtem"))
            *out = i0 > 0 ? lp->items->v[i0 - 1] : jv_undef();
        else if (IS("nextitem"))
            *out = i0 + 1 < len ? lp->items->v[i0 + 1] : jv_undef();
        else if (IS("cycle"))
            id = M_CYCLE;
        else
            break;
#undef IS
        if (id < 0)
            return 0;
        break;
    }
    default: break;
    }
    if (id >= 0) {
        struct jmethod *m = jinja_alloc(a, sizeof *m);
        if (!m)
            return ERR_NOMEM;
        m->self = obj;
        m->id = id;
        *out = (struct jv){ .t = JV_METHOD, .u.me = m };
        return 0;
    }
    /* missing: Undefined that remembers what was asked for */
    char msg[200];
    snprintf(msg, sizeof msg, "'%s object' has no attribute '%.*s'", jv_type_name(obj),
             (int)(n > 80 ? 80 : n), name);
    struct jv s;
    *out = jv_undef();
    if (mkstr(cx, msg, strlen(msg), &s) == 0)
        out->u.s = s.u.s;
    return 0;
}

/* ---------------------------------------------------------------- methods */

static int need_str(const struct jnode *at, struct jv *v, const char *what)
{
    if (!v)
        return jinja_err(at, "%s() missing a required argument", what);
    if (v->t != JV_STR)
        return jinja_err(at, "%s() argument must be str, not %s", what, jv_type_name(*v));
    return 0;
}

static int affix(const struct jnode *at, const struct jstr *s, struct jv *x, int end, int *res)
{
    if (x && x->t == JV_LIST && x->u.l->tuple) {
        *res = 0;
        for (size_t i = 0; i < x->u.l->n && !*res; i++) {
            int rc = affix(at, s, &x->u.l->v[i], end, res);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    int rc = need_str(at, x, end ? "endswith" : "startswith");
    if (rc < 0)
        return rc;
    const struct jstr *p = x->u.s;
    *res = p->len <= s->len && !memcmp(s->p + (end ? s->len - p->len : 0), p->p, p->len);
    return 0;
}

static int64_t int_arg(struct jv *v, int64_t def)
{
    if (!v || v->t == JV_NONE)
        return def;
    if (v->t == JV_INT)
        return v->u.i;
    if (v->t == JV_BOOL)
        return v->u.b;
    return def;
}

int jinja_call_method(struct jctx *cx, const struct jnode *at, struct jmethod *m, struct jv *args,
                      const char **kw, size_t nargs, struct jv *out)
{
    struct jarena *a = jinja_ctx_arena(cx);
    struct jv self = m->self;
    struct jv *a0 = arg(args, kw, nargs, 0, NULL), *a1 = arg(args, kw, nargs, 1, NULL);
    int rc, r;
    const struct jstr *set;
    switch (m->id) {
    case M_STARTSWITH:
    case M_ENDSWITH:
        if ((rc = affix(at, self.u.s, a0, m->id == M_ENDSWITH, &r)) < 0)
            return rc;
        *out = jv_bool(r);
        return 0;
    case M_SPLIT:
    case M_RSPLIT: {
        struct jv *sep = arg(args, kw, nargs, 0, "sep"), *mx = arg(args, kw, nargs, 1, "maxsplit");
        if (sep && sep->t != JV_NONE && (rc = need_str(at, sep, "split")) < 0)
            return rc;
        return do_split(cx, at, self.u.s, sep && sep->t == JV_STR ? sep->u.s : NULL,
                        int_arg(mx, -1), m->id == M_RSPLIT, out);
    }
    case M_STRIP:
    case M_LSTRIP:
    case M_RSTRIP:
        if ((rc = strip_arg(at, a0, &set)) < 0)
            return rc;
        return do_strip(cx, self.u.s, set, m->id == M_STRIP ? 3 : m->id == M_LSTRIP ? 1 : 2, out);
    case M_UPPER: return do_case(cx, self.u.s, 1, out);
    case M_LOWER: return do_case(cx, self.u.s, 0, out);
    case M_TITLE: return do_case(cx, self.u.s, 2, out);
    case M_CAPITALIZE: return do_case(cx, self.u.s, 3, out);
    case M_REPLACE:
        if ((rc = need_str(at, a0, "replace")) < 0 || (rc = need_str(at, a1, "replace")) < 0)
            return rc;
        return do_replace(cx, self.u.s, a0->u.s, a1->u.s,
                          int_arg(arg(args, kw, nargs, 2, "count"), -1), out);
    case M_FIND:
    case M_COUNT: {
        if ((rc = need_str(at, a0, m->id == M_FIND ? "find" : "count")) < 0)
            return rc;
        const struct jstr *s = self.u.s, *p = a0->u.s;
        if (m->id == M_FIND) {
            const char *f = p->len ? memmem(s->p, s->len, p->p, p->len) : s->p;
            *out = jv_int(f ? (int64_t)jv_utf8_len(s->p, (size_t)(f - s->p)) : -1);
            return 0;
        }
        int64_t c = 0;
        if (!p->len)
            c = (int64_t)jv_utf8_len(s->p, s->len) + 1;
        else
            for (const char *f = s->p; (f = memmem(f, s->len - (size_t)(f - s->p), p->p, p->len));
                 f += p->len)
                c++;
        *out = jv_int(c);
        return 0;
    }
    case M_JOIN: {
        struct jlist *l;
        if (!a0)
            return jinja_err(at, "join() takes exactly one argument");
        if ((rc = to_list(cx, at, *a0, &l)) < 0)
            return rc;
        struct buf b = { 0 };
        rc = 0;
        for (size_t i = 0; i < l->n && rc == 0; i++) {
            if (l->v[i].t != JV_STR) {
                buf_free(&b);
                return jinja_err(at, "sequence item %zu: expected str instance, %s found", i,
                                 jv_type_name(l->v[i]));
            }
            if (i)
                rc = buf_append(&b, self.u.s->p, self.u.s->len);
            rc |= buf_append(&b, l->v[i].u.s->p, l->v[i].u.s->len);
        }
        return buf_to_str(cx, &b, rc, out);
    }
    case M_ISDIGIT:
    case M_ISSPACE: {
        const struct jstr *s = self.u.s;
        r = s->len > 0;
        for (size_t i = 0; i < s->len && r;) {
            uint32_t c;
            int l = utf8_decode(s->p + i, s->len - i, &c);
            if (l <= 0)
                break;
            r = m->id == M_ISSPACE ? jv_is_space(c) : (c >= '0' && c <= '9');
            i += (size_t)l;
        }
        *out = jv_bool(r);
        return 0;
    }
    case M_ITEMS: return items_of(cx, at, self, out);
    case M_KEYS:
    case M_VALUES: {
        if ((rc = jv_list(a, self.u.d->n, out)) < 0)
            return rc;
        memcpy(out->u.l->v, m->id == M_KEYS ? self.u.d->k : self.u.d->v,
               self.u.d->n * sizeof(struct jv));
        out->u.l->n = self.u.d->n;
        return 0;
    }
    case M_GET: {
        if (!a0)
            return jinja_err(at, "get expected at least 1 argument, got 0");
        struct jv *v = jv_dict_find(self.u.d, *a0);
        *out = v ? *v : a1 ? *a1 : jv_none();
        return 0;
    }
    case M_COPY: {
        if ((rc = jv_dict(a, self.u.d->n, out)) < 0)
            return rc;
        for (size_t i = 0; i < self.u.d->n; i++)
            if ((rc = jv_dict_set(a, out->u.d, self.u.d->k[i], self.u.d->v[i])) < 0)
                return rc;
        return 0;
    }
    case M_CYCLE:
        if (!nargs)
            return jinja_err(at, "no items for cycling given");
        *out = args[self.u.lp->index0 % nargs];
        return 0;
    }
    return jinja_err(at, "unknown method");
}

/* ---------------------------------------------------------------- functions */

int jinja_call_func(struct jctx *cx, const struct jnode *at, int fn, struct jv *args,
                    const char **kw, size_t nargs, struct jv *out)
{
    struct jarena *a = jinja_ctx_arena(cx);
    int rc;
    switch (fn) {
    case FN_NAMESPACE:
    case FN_DICT: {
        if ((rc = jv_dict(a, nargs, out)) < 0)
            return rc;
        for (size_t i = 0; i < nargs; i++) {
            if (!kw || !kw[i]) {
                /* namespace({...}) / dict({...}): copy a mapping */
                if (args[i].t != JV_DICT && args[i].t != JV_NS)
                    return jinja_err(at, "%s() positional argument must be a mapping",
                                     func_names[fn]);
                for (size_t k = 0; k < args[i].u.d->n; k++)
                    if ((rc = jv_dict_set(a, out->u.d, args[i].u.d->k[k], args[i].u.d->v[k])) < 0)
                        return rc;
                continue;
            }
            struct jv k;
            if ((rc = mkstr(cx, kw[i], strlen(kw[i]), &k)) < 0 ||
                (rc = jv_dict_set(a, out->u.d, k, args[i])) < 0)
                return rc;
        }
        if (fn == FN_NAMESPACE) {
            out->t = JV_NS;
            for (size_t k = 0; k < out->u.d->n; k++)
                if (out->u.d->k[k].t == JV_STR && out->u.d->k[k].u.s->p[0] == '_')
                    return jinja_err(at, "cannot store underscore-prefixed attributes on a "
                                         "namespace");
        }
        return 0;
    }
    case FN_RAISE: {
        struct jv msg = jv_undef();
        if (nargs)
            msg = args[0];
        struct buf b = { 0 };
        rc = jv_to_str(&b, msg);
        rc = jinja_err(at, "raise_exception: %s", rc == 0 && b.p ? b.p : "");
        buf_free(&b);
        return rc;
    }
    case FN_RANGE: {
        int64_t st = 0, en, sp = 1;
        for (size_t i = 0; i < nargs; i++)
            if ((kw && kw[i]) || (args[i].t != JV_INT && args[i].t != JV_BOOL))
                return jinja_err(at, "range() arguments must be integers");
        if (nargs == 1)
            en = int_arg(&args[0], 0);
        else if (nargs == 2 || nargs == 3) {
            st = int_arg(&args[0], 0);
            en = int_arg(&args[1], 0);
            if (nargs == 3)
                sp = int_arg(&args[2], 1);
        } else
            return jinja_err(at, "range expected 1 to 3 arguments, got %zu", nargs);
        if (sp == 0)
            return jinja_err(at, "range() arg 3 must not be zero");
        /* the sandbox caps ranges at 100000 items */
        double cnt = sp > 0 ? ceil(((double)en - (double)st) / (double)sp)
                            : ceil(((double)st - (double)en) / (double)-sp);
        if (cnt > 100000)
            return jinja_err(at, "Range too big. The sandbox blocks ranges larger than MAX_RANGE "
                                 "(100000).");
        if ((rc = jv_list(a, cnt > 0 ? (size_t)cnt : 0, out)) < 0)
            return rc;
        for (int64_t i = st; sp > 0 ? i < en : i > en; i += sp)
            out->u.l->v[out->u.l->n++] = jv_int(i);
        return 0;
    }
    case FN_STRFTIME: {
        if (!nargs || args[0].t != JV_STR)
            return jinja_err(at, "strftime_now() needs a format string");
        char tb[256];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        size_t l = strftime(tb, sizeof tb, args[0].u.s->p, &tm);
        return mkstr(cx, tb, l, out);
    }
    }
    return jinja_err(at, "unknown function");
}

/* ---------------------------------------------------------------- tests */

static int num_kind(struct jv v) { return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL; }

int jinja_call_test(struct jctx *cx, const struct jnode *at, struct jv v, struct jv *args,
                    size_t nargs, int *res)
{
    struct jv *a0 = nargs ? &args[0] : NULL;
    int rc, c;
    switch (at->op) {
    case T_DEFINED: *res = v.t != JV_UNDEF; return 0;
    case T_UNDEFINED: *res = v.t == JV_UNDEF; return 0;
    case T_NONE: *res = v.t == JV_NONE; return 0;
    case T_TRUE: *res = v.t == JV_BOOL && v.u.b; return 0;
    case T_FALSE: *res = v.t == JV_BOOL && !v.u.b; return 0;
    case T_STRING: *res = v.t == JV_STR; return 0;
    case T_NUMBER: *res = num_kind(v); return 0;
    case T_INTEGER: *res = v.t == JV_INT; return 0;
    case T_FLOAT: *res = v.t == JV_FLOAT; return 0;
    case T_BOOLEAN: *res = v.t == JV_BOOL; return 0;
    case T_MAPPING: *res = v.t == JV_DICT; return 0;
    case T_ITERABLE:
        *res = v.t == JV_LIST || v.t == JV_DICT || v.t == JV_STR || v.t == JV_UNDEF;
        return 0;
    case T_SEQUENCE:
        *res = v.t == JV_LIST || v.t == JV_DICT || v.t == JV_STR || v.t == JV_UNDEF;
        return 0;
    case T_CALLABLE: *res = v.t == JV_MACRO || v.t == JV_FUNC || v.t == JV_METHOD; return 0;
    case T_SAMEAS:
        if (!a0)
            return jinja_err(at, "test 'sameas' needs an argument");
        /* identity: singletons and the same container */
        *res = v.t == a0->t &&
               (v.t == JV_NONE || v.t == JV_UNDEF || (v.t == JV_BOOL && v.u.b == a0->u.b) ||
                ((v.t == JV_LIST || v.t == JV_DICT) && v.u.l == a0->u.l) ||
                (v.t == JV_INT && v.u.i == a0->u.i));
        return 0;
    case T_ODD:
    case T_EVEN:
    case T_DIVISIBLEBY: {
        if (v.t != JV_INT && v.t != JV_BOOL)
            return jinja_err(at, "test '%s' needs an integer", test_names[at->op]);
        int64_t x = v.t == JV_INT ? v.u.i : v.u.b;
        if (at->op == T_DIVISIBLEBY) {
            if (!a0 || a0->t != JV_INT || a0->u.i == 0)
                return jinja_err(at, "divisibleby needs a non-zero integer");
            *res = a0->u.i == -1 || x % a0->u.i == 0;
        } else
            *res = ((x % 2) != 0) == (at->op == T_ODD);
        return 0;
    }
    case T_LOWER:
    case T_UPPER: {
        if (v.t != JV_STR) {
            *res = 0;
            return 0;
        }
        struct jv conv;
        if ((rc = do_case(cx, v.u.s, at->op == T_LOWER ? 0 : 1, &conv)) < 0)
            return rc;
        *res = jv_equal(conv, v);
        return 0;
    }
    case T_IN:
        if (!a0)
            return jinja_err(at, "test 'in' needs an argument");
        if (a0->t == JV_STR) {
            if (v.t != JV_STR)
                return jinja_err(at, "'in <string>' requires string as left operand");
            *res = !v.u.s->len || memmem(a0->u.s->p, a0->u.s->len, v.u.s->p, v.u.s->len);
        } else if (a0->t == JV_LIST) {
            *res = 0;
            for (size_t i = 0; i < a0->u.l->n && !*res; i++)
                *res = jv_equal(a0->u.l->v[i], v);
        } else if (a0->t == JV_DICT)
            *res = jv_dict_find(a0->u.d, v) != NULL;
        else
            return jinja_err(at, "argument of type '%s' is not iterable", jv_type_name(*a0));
        return 0;
    }
    if (!a0)
        return jinja_err(at, "test '%s' needs an argument", test_names[at->op]);
    switch (at->op) {
    case T_EQ:
    case T_EQUALTO:
    case T_EQEQ: *res = jv_equal(v, *a0); return 0;
    case T_NE:
    case T_NEQ: *res = !jv_equal(v, *a0); return 0;
    }
    if ((rc = jv_compare(v, *a0, &c)) < 0)
        return jinja_err(at, "%s", err_msg());
    switch (at->op) {
    case T_LT:
    case T_LESSTHAN: *res = c < 0; return 0;
    case T_GT:
    case T_GREATERTHAN: *res = c > 0; return 0;
    case T_LE: *res = c <= 0; return 0;
    case T_GE: *res = c >= 0; return 0;
    }
    return jinja_err(at, "unknown test");
}

/* ---------------------------------------------------------------- sorting */

/* Python's sorted(items, key=keys[i], reverse=rev): a stable merge sort of
 * the index array `ix` by keys; fails (TypeError) on keys that do not
 * compare. */
static int msort(const struct jnode *at, const struct jv *keys, size_t *ix, size_t *tmp, size_t n,
                 int rev)
{
    if (n < 2)
        return 0;
    size_t h = n / 2;
    int rc;
    if ((rc = msort(at, keys, ix, tmp, h, rev)) < 0 ||
        (rc = msort(at, keys, ix + h, tmp, n - h, rev)) < 0)
        return rc;
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int c;
        if (jv_compare(keys[ix[j]], keys[ix[i]], &c) < 0)
            return jinja_err(at, "%s", err_msg());
        /* take from the right half only when strictly before: keeps equal keys in order */
        if (rev ? c > 0 : c < 0)
            tmp[k++] = ix[j++];
        else
            tmp[k++] = ix[i++];
    }
    while (i < h)
        tmp[k++] = ix[i++];
    while (j < n)
        tmp[k++] = ix[j++];
    memcpy(ix, tmp, n * sizeof *ix);
    return 0;
}

/* Sorts vals[0..n) by keys (lowercased strings unless case_sensitive) into out. */
static int sorted_by(struct jctx *cx, const struct jnode *at, const struct jv *vals,
                     struct jv *keys, size_t n, int case_sensitive, int rev, struct jv *out)
{
    int rc;
    for (size_t i = 0; i < n; i++)
        if (!case_sensitive && keys[i].t == JV_STR &&
            (rc = do_case(cx, keys[i].u.s, 0, &keys[i])) < 0)
            return rc;
    size_t *ix = malloc((n + 1) * 2 * sizeof *ix);
    if (!ix)
        return err_set(ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        ix[i] = i;
    rc = msort(at, keys, ix, ix + n + 1, n, rev);
    if (rc == 0 && (rc = jv_list(jinja_ctx_arena(cx), n, out)) == 0)
        for (size_t i = 0; i < n; i++)
            out->u.l->v[out->u.l->n++] = vals[ix[i]];
    free(ix);
    return rc;
}

/* ---------------------------------------------------------------- filters */

static int test_by_name(struct jctx *cx, const struct jnode *at, struct jv v, struct jv *name,
                        struct jv *targ, int *res)
{
    if (!name) {
        *res = jv_truthy(v);
        return 0;
    }
    if (name->t != JV_STR)
        return jinja_err(at, "test name must be a string");
    int id = jinja_test_id(name->u.s->p, name->u.s->len);
    if (id < 0)
        return jinja_err(at, "unknown test '%s'", name->u.s->p);
    struct jnode tn = *at;
    tn.op = id;
    return jinja_call_test(cx, &tn, v, targ, targ ? 1 : 0, res);
}

int jinja_call_filter(struct jctx *cx, const struct jnode *n, struct jv in, struct jv *args,
                      const char **kw, size_t nargs, struct jv *out)
{
    struct jarena *a = jinja_ctx_arena(cx);
    const char *fname = filter_names[n->op];
    int rc;
    struct jv s;
    switch (n->op) {
    case F_TRIM: {
        static const char *const names[] = { "chars", NULL };
        const struct jstr *set;
        if ((rc = check_args(n, fname, kw, nargs, 1, names)) < 0 ||
            (rc = strip_arg(n, arg(args, kw, nargs, 0, "chars"), &set)) < 0 ||
            (rc = str_of(cx, in, &s)) < 0)
            return rc;
        return do_strip(cx, s.u.s, set, 3, out);
    }
    case F_TOJSON: {
        static const char *const names[] = { "ensure_ascii", "indent", "separators", "sort_keys",
                                             NULL };
        if ((rc = check_args(n, fname, kw, nargs, 4, names)) < 0)
            return rc;
        struct jv *ea = arg(args, kw, nargs, 0, "ensure_ascii");
        struct jv *ind = arg(args, kw, nargs, 1, "indent");
        struct jv *sep = arg(args, kw, nargs, 2, "separators");
        struct jv *sk = arg(args, kw, nargs, 3, "sort_keys");
        if (ea && jv_truthy(*ea))
            return jinja_err(n, "tojson: ensure_ascii=True is not supported");
        if (sep && sep->t != JV_NONE)
            return jinja_err(n, "tojson: custom separators are not supported");
        if (ind && ind->t != JV_NONE && ind->t != JV_INT)
            return jinja_err(n, "tojson: indent must be an integer");
        int indent = ind && ind->t == JV_INT ? (int)(ind->u.i < 0    ? 0
                                                     : ind->u.i > 64 ? 64
                                                                     : ind->u.i)
                                             : -1;
        struct buf b = { 0 };
        rc = jv_tojson(&b, in, indent, sk ? jv_truthy(*sk) : 0);
        if (rc < 0) {
            buf_free(&b);
            return jinja_err(n, "%s", err_msg());
        }
        return buf_to_str(cx, &b, rc, out);
    }
    case F_STRING:
    case F_SAFE:
    case F_E:
    case F_ESCAPE:
        /* autoescape is off, so escape/safe only turn values into strings */
        if ((rc = check_args(n, fname, kw, nargs, 0, NULL)) < 0)
            return rc;
        return str_of(cx, in, out);
    case F_ITEMS: return items_of(cx, n, in, out);
    case F_LENGTH:
    case F_COUNT:
        switch (in.t) {
        case JV_STR: *out = jv_int((int64_t)jv_utf8_len(in.u.s->p, in.u.s->len)); return 0;
        case JV_LIST: *out = jv_int((int64_t)in.u.l->n); return 0;
        case JV_DICT:
        case JV_NS: *out = jv_int((int64_t)in.u.d->n); return 0;
        case JV_UNDEF: *out = jv_int(0); return 0;
        default: return jinja_err(n, "object of type '%s' has no len()", jv_type_name(in));
        }
    case F_LOWER:
    case F_UPPER:
    case F_CAPITALIZE:
    case F_TITLE:
        if ((rc = str_of(cx, in, &s)) < 0)
            return rc;
        return do_case(cx, s.u.s,
                       n->op == F_LOWER   ? 0
                       : n->op == F_UPPER ? 1
                       : n->op == F_TITLE ? 2
                                          : 3,
                       out);
    case F_DEFAULT:
    case F_D: {
        struct jv *dv = arg(args, kw, nargs, 0, "default_value");
        struct jv *bo = arg(args, kw, nargs, 1, "boolean");
        int use = in.t == JV_UNDEF || (bo && jv_truthy(*bo) && !jv_truthy(in));
        if (!use) {
            *out = in;
            return 0;
        }
        if (dv) {
            *out = *dv;
            return 0;
        }
        return mkstr(cx, "", 0, out);
    }
    case F_FIRST:
    case F_LAST: {
        struct jlist *l;
        if ((rc = to_list(cx, n, in, &l)) < 0)
            return rc;
        if (!l->n) {
            *out = jv_undef();
            return 0;
        }
        *out = l->v[n->op == F_FIRST ? 0 : l->n - 1];
        return 0;
    }
    case F_JOIN: {
        struct jv *d = arg(args, kw, nargs, 0, "d"), *attr = arg(args, kw, nargs, 1, "attribute");
        struct jlist *l;
        if ((rc = to_list(cx, n, in, &l)) < 0)
            return rc;
        struct buf b = { 0 };
        rc = 0;
        for (size_t i = 0; i < l->n && rc == 0; i++) {
            struct jv item = l->v[i];
            if (attr && attr->t == JV_STR &&
                (rc = jinja_getattr(cx, n, item, attr->u.s->p, attr->u.s->len, &item)) < 0)
                break;
            if (i && d)
                rc = jv_to_str(&b, *d);
            if (rc == 0)
                rc = jv_to_str(&b, item);
        }
        return buf_to_str(cx, &b, rc, out);
    }
    case F_LIST: {
        struct jlist *l;
        if ((rc = to_list(cx, n, in, &l)) < 0)
            return rc;
        if (in.t == JV_LIST) {
            /* a copy, as list() makes */
            if ((rc = jv_list(a, l->n, out)) < 0)
                return rc;
            memcpy(out->u.l->v, l->v, l->n * sizeof(struct jv));
            out->u.l->n = l->n;
            return 0;
        }
        *out = (struct jv){ .t = JV_LIST, .u.l = l };
        return 0;
    }
    case F_REPLACE: {
        struct jv *o = arg(args, kw, nargs, 0, "old"), *r = arg(args, kw, nargs, 1, "new");
        struct jv os, rs;
        if (!o || !r)
            return jinja_err(n, "replace() needs old and new");
        if ((rc = str_of(cx, in, &s)) < 0 || (rc = str_of(cx, *o, &os)) < 0 ||
            (rc = str_of(cx, *r, &rs)) < 0)
            return rc;
        return do_replace(cx, s.u.s, os.u.s, rs.u.s, int_arg(arg(args, kw, nargs, 2, "count"), -1),
                          out);
    }
    case F_INT:
    case F_FLOAT: {
        struct jv *dv = arg(args, kw, nargs, 0, "default");
        int isint = n->op == F_INT;
        double f = 0;
        int ok = 1;
        if (in.t == JV_INT || in.t == JV_BOOL)
            f = (double)(in.t == JV_INT ? in.u.i : in.u.b);
        else if (in.t == JV_FLOAT)
            f = in.u.f;
        else if (in.t == JV_STR) {
            char *end;
            const char *p = in.u.s->p;
            f = strtod(p, &end);
            while (*end == ' ' || *end == '\t' || *end == '\n')
                end++;
            ok = end != p && *end == 0;
        } else
            ok = 0;
        if (!ok || !isfinite(f)) {
            if (dv) {
                *out = *dv;
                return 0;
            }
            *out = isint ? jv_int(0) : jv_float(0.0);
            return 0;
        }
        if (isint) {
            if (in.t == JV_INT) {
                *out = in;
                return 0;
            }
            if (fabs(f) >= 9.2e18)
                return jinja_err(n, "int(): value out of range");
            *out = jv_int((int64_t)f);
        } else
            *out = jv_float(f);
        return 0;
    }
    case F_ABS:
        if (in.t == JV_INT)
            *out = in.u.i == INT64_MIN ? jv_float(9.2233720368547758e18)
                                       : jv_int(in.u.i < 0 ? -in.u.i : in.u.i);
        else if (in.t == JV_BOOL)
            *out = jv_int(in.u.b);
        else if (in.t == JV_FLOAT)
            *out = jv_float(fabs(in.u.f));
        else
            return jinja_err(n, "bad operand type for abs(): '%s'", jv_type_name(in));
        return 0;
    case F_REVERSE: {
        if (in.t == JV_STR) {
            struct jlist *l;
            if ((rc = to_list(cx, n, in, &l)) < 0)
                return rc;
            struct buf b = { 0 };
            rc = 0;
            for (size_t i = l->n; i-- > 0 && rc == 0;)
                rc = buf_append(&b, l->v[i].u.s->p, l->v[i].u.s->len);
            return buf_to_str(cx, &b, rc, out);
        }
        struct jlist *l;
        if ((rc = to_list(cx, n, in, &l)) < 0 || (rc = jv_list(a, l->n, out)) < 0)
            return rc;
        for (size_t i = l->n; i-- > 0;)
            out->u.l->v[out->u.l->n++] = l->v[i];
        return 0;
    }
    case F_MAP:
    case F_SELECTATTR:
    case F_REJECTATTR: {
        struct jlist *l;
        if ((rc = to_list(cx, n, in, &l)) < 0 || (rc = jv_list(a, 0, out)) < 0)
            return rc;
        struct jv *attr =
            n->op == F_MAP ? arg(args, kw, nargs, 99, "attribute") : arg(args, kw, nargs, 0, NULL);
        struct jv *fnm = n->op == F_MAP && !attr ? arg(args, kw, nargs, 0, NULL) : NULL;
        struct jv *dflt = n->op == F_MAP ? arg(args, kw, nargs, 99, "default") : NULL;
        if (!attr && !fnm)
            return jinja_err(n, "%s() needs an attribute or a filter name", fname);
        if ((attr && attr->t != JV_STR) || (fnm && fnm->t != JV_STR))
            return jinja_err(n, "%s(): the name must be a string", fname);
        int fid = -1;
        if (fnm && (fid = jinja_filter_id(fnm->u.s->p, fnm->u.s->len)) < 0)
            return jinja_err(n, "unknown filter '%s'", fnm->u.s->p);
        for (size_t i = 0; i < l->n; i++) {
            struct jv v = l->v[i], r;
            if (fid >= 0) {
                struct jnode fn = *n;
                fn.op = fid;
                rc = jinja_call_filter(cx, &fn, v, NULL, NULL, 0, &r);
            } else {
                /* dotted attribute paths: "function.name" */
                const char *p = attr->u.s->p;
                r = v;
                rc = 0;
                while (rc == 0) {
                    const char *dot = strchr(p, '.');
                    size_t len = dot ? (size_t)(dot - p) : strlen(p);
                    if (r.t == JV_UNDEF) {
                        break;
                    }
                    struct jv key = jv_undef();
                    if ((rc = mkstr(cx, p, len, &key)) < 0)
                        break;
                    struct jv *hit = (r.t == JV_DICT) ? jv_dict_find(r.u.d, key) : NULL;
                    if (hit)
                        r = *hit;
                    else if ((rc = jinja_getattr(cx, n, r, p, len, &r)) < 0)
                        break;
                    if (!dot)
                        break;
                    p = dot + 1;
                }
            }
            if (rc < 0)
                return rc;
            if (n->op == F_MAP) {
                if (r.t == JV_UNDEF && dflt)
                    r = *dflt;
                if ((rc = jv_list_push(a, out->u.l, r)) < 0)
                    return rc;
                continue;
            }
            int t;
            if ((rc = test_by_name(cx, n, r, arg(args, kw, nargs, 1, NULL),
                                   arg(args, kw, nargs, 2, NULL), &t)) < 0)
                return rc;
            if (t == (n->op == F_SELECTATTR) && (rc = jv_list_push(a, out->u.l, v)) < 0)
                return rc;
        }
        return 0;
    }
    case F_INDENT: {
        struct jv *w = arg(args, kw, nargs, 0, "width"), *first = arg(args, kw, nargs, 1, "first"),
                  *blank = arg(args, kw, nargs, 2, "blank");
        struct buf pad = { 0 };
        if (w && w->t == JV_STR)
            rc = buf_append(&pad, w->u.s->p, w->u.s->len);
        else {
            int64_t k = int_arg(w, 4);
            rc = 0;
            for (int64_t i = 0; i < k && i < 256 && rc == 0; i++)
                rc = buf_putc(&pad, ' ');
        }
        if (rc == 0)
            rc = str_of(cx, in, &s);
        if (rc < 0) {
            buf_free(&pad);
            return rc;
        }
        struct buf b = { 0 };
        const char *p = s.u.s->p, *e = p + s.u.s->len;
        int lineno = 0;
        while (rc == 0 && p <= e) {
            const char *nl = memchr(p, '\n', (size_t)(e - p));
            const char *le = nl ? nl : e;
            int is_blank = le == p;
            if ((lineno > 0 || (first && jv_truthy(*first))) &&
                (!is_blank || (blank && jv_truthy(*blank))))
                rc = buf_append(&b, pad.p ? pad.p : "", pad.len);
            rc |= buf_append(&b, p, (size_t)(le - p));
            if (!nl)
                break;
            rc |= buf_putc(&b, '\n');
            p = nl + 1;
            lineno++;
        }
        buf_free(&pad);
        return buf_to_str(cx, &b, rc, out);
    }
    case F_SUM: {
        struct jlist *l;
        if ((rc = to_list(cx, n, in, &l)) < 0)
            return rc;
        int64_t si = 0;
        double sf = 0;
        int isf = 0;
        for (size_t i = 0; i < l->n; i++) {
            struct jv v = l->v[i];
            if (v.t == JV_FLOAT)
                isf = 1, sf += v.u.f;
            else if (v.t == JV_INT || v.t == JV_BOOL)
                si += v.t == JV_INT ? v.u.i : v.u.b;
            else
                return jinja_err(n, "sum(): unsupported operand type '%s'", jv_type_name(v));
        }
        *out = isf ? jv_float(sf + (double)si) : jv_int(si);
        return 0;
    }
    case F_DICTSORT: {
        struct jv *cs = arg(args, kw, nargs, 0, "case_sensitive"),
                  *by = arg(args, kw, nargs, 1, "by"), *rv = arg(args, kw, nargs, 2, "reverse");
        int pos = 0;
        if (by &&
            !(by->t == JV_STR && (!strcmp(by->u.s->p, "key") || !strcmp(by->u.s->p, "value"))))
            return jinja_err(n, "You can only sort by either \"key\" or \"value\"");
        if (by && !strcmp(by->u.s->p, "value"))
            pos = 1;
        struct jv items;
        if ((rc = items_of(cx, n, in, &items)) < 0)
            return rc;
        size_t cnt = items.u.l->n;
        struct jv *keys = jinja_alloc(a, (cnt + 1) * sizeof *keys);
        if (!keys)
            return ERR_NOMEM;
        for (size_t i = 0; i < cnt; i++)
            keys[i] = items.u.l->v[i].u.l->v[pos];
        return sorted_by(cx, n, items.u.l->v, keys, cnt, cs && jv_truthy(*cs), rv && jv_truthy(*rv),
                         out);
    }
    case F_SORT: {
        struct jv *rv = arg(args, kw, nargs, 0, "reverse"),
                  *cs = arg(args, kw, nargs, 1, "case_sensitive"),
                  *attr = arg(args, kw, nargs, 2, "attribute");
        struct jlist *l;
        if ((rc = to_list(cx, n, in, &l)) < 0)
            return rc;
        struct jv *keys = jinja_alloc(a, (l->n + 1) * sizeof *keys);
        if (!keys)
            return ERR_NOMEM;
        for (size_t i = 0; i < l->n; i++) {
            keys[i] = l->v[i];
            if (attr && attr->t == JV_STR) {
                struct jv *hit = keys[i].t == JV_DICT
                                     ? jv_dict_get(keys[i].u.d, attr->u.s->p, attr->u.s->len)
                                     : NULL;
                if (hit)
                    keys[i] = *hit;
                else if ((rc = jinja_getattr(cx, n, keys[i], attr->u.s->p, attr->u.s->len,
                                             &keys[i])) < 0)
                    return rc;
            }
        }
        return sorted_by(cx, n, l->v, keys, l->n, cs && jv_truthy(*cs), rv && jv_truthy(*rv), out);
    }
    }
    return jinja_err(n, "unknown filter '%s'", fname);
}
