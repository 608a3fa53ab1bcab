/*
 * jinja_value.c - values with the Python semantics chat templates rely on:
 * str() and repr() (True, None, float repr), json.dumps(ensure_ascii=False)
 * with its ", " / ": " separators, ==, ordering, truthiness; plus the arena
 * and JSON input (json.loads' int/float distinction, dict insertion order).
 */
#include "engine/jinja.h"

#include "common/ckd.h"
#include "common/err.h"
#include "common/text.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---------------------------------------------------------------- arena */

struct jchunk {
    struct jchunk *next;
    size_t size;
    max_align_t data[];
};

void *jinja_alloc(struct jarena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (a->limit && (n > a->limit || a->used > a->limit - n)) {
        err_set(ERR_NOMEM, "template memory limit reached (%zu MiB)", a->limit >> 20);
        return NULL;
    }
    if (n > a->left) {
        size_t sz = n > 65536 ? n : 65536;
        struct jchunk *c = malloc(sizeof *c + sz);
        if (!c) {
            err_set(ERR_NOMEM, "out of memory (%zu bytes)", sz);
            return NULL;
        }
        c->next = a->head;
        c->size = sz;
        a->head = c;
        a->cur = (char *)c->data;
        a->left = sz;
    }
    void *p = a->cur;
    a->cur += n;
    a->left -= n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

void jinja_arena_free(struct jarena *a)
{
    if (!a)
        return;
    for (struct jchunk *c = a->head, *nx; c; c = nx) {
        nx = c->next;
        free(c);
    }
    a->head = NULL;
    a->cur = NULL;
    a->left = a->used = 0;
}

/* ---------------------------------------------------------------- constructors */

int jv_str(struct jarena *a, const char *s, size_t n, struct jv *out)
{
    size_t sz;
    if (ckd_add_sz(&sz, sizeof(struct jstr) + 1, n))
        return err_set(ERR_NOMEM, "string too long");
    struct jstr *p = jinja_alloc(a, sz);
    if (!p)
        return ERR_NOMEM;
    p->len = n;
    if (n)
        memcpy(p->p, s, n);
    p->p[n] = 0;
    *out = (struct jv){ .t = JV_STR, .u.s = p };
    return 0;
}

int jv_list(struct jarena *a, size_t cap, struct jv *out)
{
    struct jlist *l = jinja_alloc(a, sizeof *l);
    if (!l)
        return ERR_NOMEM;
    if (cap) {
        size_t sz;
        if (ckd_mul_sz(&sz, cap, sizeof(struct jv)) || !(l->v = jinja_alloc(a, sz)))
            return ERR_NOMEM;
        l->cap = cap;
    }
    *out = (struct jv){ .t = JV_LIST, .u.l = l };
    return 0;
}

int jv_dict(struct jarena *a, size_t cap, struct jv *out)
{
    struct jdict *d = jinja_alloc(a, sizeof *d);
    if (!d)
        return ERR_NOMEM;
    if (cap) {
        size_t sz;
        if (ckd_mul_sz(&sz, cap, sizeof(struct jv)) || !(d->k = jinja_alloc(a, sz)) ||
            !(d->v = jinja_alloc(a, sz)))
            return ERR_NOMEM;
        d->cap = cap;
    }
    *out = (struct jv){ .t = JV_DICT, .u.d = d };
    return 0;
}

static int grow(struct jarena *a, struct jv **v, size_t n, size_t *cap)
{
    size_t nc = *cap ? *cap * 2 : 4, sz;
    if (ckd_mul_sz(&sz, nc, sizeof(struct jv)))
        return err_set(ERR_NOMEM, "list too long");
    struct jv *nv = jinja_alloc(a, sz);
    if (!nv)
        return ERR_NOMEM;
    if (n)
        memcpy(nv, *v, n * sizeof(struct jv));
    *v = nv;
    *cap = nc;
    return 0;
}

int jv_list_push(struct jarena *a, struct jlist *l, struct jv v)
{
    if (l->n == l->cap && grow(a, &l->v, l->n, &l->cap) < 0)
        return ERR_NOMEM;
    l->v[l->n++] = v;
    return 0;
}

struct jv *jv_dict_get(const struct jdict *d, const char *k, size_t n)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JV_STR && d->k[i].u.s->len == n && !memcmp(d->k[i].u.s->p, k, n))
            return &d->v[i];
    return NULL;
}

struct jv *jv_dict_find(const struct jdict *d, struct jv k)
{
    if (k.t == JV_STR)
        return jv_dict_get(d, k.u.s->p, k.u.s->len);
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(d->k[i], k))
            return &d->v[i];
    return NULL;
}

int jv_dict_set(struct jarena *a, struct jdict *d, struct jv k, struct jv v)
{
    struct jv *p = jv_dict_find(d, k);
    if (p) {
        *p = v;
        return 0;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap;
        if (grow(a, &d->k, d->n, &cap) < 0)
            return ERR_NOMEM;
        cap = d->cap;
        if (grow(a, &d->v, d->n, &cap) < 0)
            return ERR_NOMEM;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    return 0;
}

/* ---------------------------------------------------------------- semantics */

int jv_truthy(struct jv v)
{
    switch (v.t) {
    case JV_UNDEF:
    case JV_NONE: return 0;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0;
    case JV_STR: return v.u.s->len != 0;
    case JV_LIST: return v.u.l->n != 0;
    case JV_DICT: return v.u.d->n != 0;
    default: return 1;
    }
}

static int is_num(struct jv v) { return v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT; }
static double num_f(struct jv v)
{
    return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : (double)v.u.b;
}
static int64_t num_i(struct jv v) { return v.t == JV_INT ? v.u.i : v.u.b; }

int jv_equal(struct jv a, struct jv b)
{
    if (is_num(a) && is_num(b)) {
        if (a.t == JV_FLOAT || b.t == JV_FLOAT)
            return num_f(a) == num_f(b);
        return num_i(a) == num_i(b);
    }
    if (a.t != b.t)
        return 0;
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE: return 1;
    case JV_STR: return a.u.s->len == b.u.s->len && !memcmp(a.u.s->p, b.u.s->p, a.u.s->len);
    case JV_LIST:
        if (a.u.l->n != b.u.l->n || a.u.l->tuple != b.u.l->tuple)
            return 0;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jv_equal(a.u.l->v[i], b.u.l->v[i]))
                return 0;
        return 1;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n)
            return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            struct jv *o = jv_dict_find(b.u.d, a.u.d->k[i]);
            if (!o || !jv_equal(a.u.d->v[i], *o))
                return 0;
        }
        return 1;
    case JV_NS: return a.u.d == b.u.d;
    case JV_MACRO: return a.u.node == b.u.node;
    case JV_FUNC: return a.u.i == b.u.i;
    default: return 0;
    }
}

int jv_compare(struct jv a, struct jv b, int *res)
{
    if (is_num(a) && is_num(b)) {
        if (a.t == JV_FLOAT || b.t == JV_FLOAT) {
            double x = num_f(a), y = num_f(b);
            *res = x < y ? -1 : x > y ? 1 : 0;
        } else {
            int64_t x = num_i(a), y = num_i(b);
            *res = x < y ? -1 : x > y ? 1 : 0;
        }
        return 0;
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        /* byte order of UTF-8 is code point order, as Python compares */
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        int c = memcmp(a.u.s->p, b.u.s->p, n);
        *res = c < 0 ? -1 : c > 0 ? 1 : a.u.s->len < b.u.s->len ? -1 : a.u.s->len > b.u.s->len;
        return 0;
    }
    if (a.t == JV_LIST && b.t == JV_LIST) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (jv_equal(a.u.l->v[i], b.u.l->v[i]))
                continue;
            return jv_compare(a.u.l->v[i], b.u.l->v[i], res);
        }
        *res = a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
        return 0;
    }
    return err_set(ERR_INVAL, "'<' not supported between instances of '%s' and '%s'",
                   jv_type_name(a), jv_type_name(b));
}

const char *jv_type_name(struct jv v)
{
    switch (v.t) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: return v.u.l->tuple ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_MACRO: return "Macro";
    case JV_FUNC: return "function";
    case JV_METHOD: return "method";
    case JV_LOOP: return "LoopContext";
    }
    return "?";
}

size_t jv_utf8_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

int jv_is_space(uint32_t cp)
{
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F) || cp == 0x85 ||
        cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
        cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000)
        return 1;
    return 0;
}

/* ---------------------------------------------------------------- str / repr */

int jv_float_repr(struct buf *b, double f)
{
    if (isnan(f))
        return buf_puts(b, "nan");
    if (isinf(f))
        return buf_puts(b, f < 0 ? "-inf" : "inf");
    /* shortest digits that round-trip, then Python's layout: exponent form
     * when the decimal point falls outside (-4, 16] */
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    /* tmp: [-]d[.ddd]e[+-]XX */
    char digits[24];
    int nd = 0, neg = 0;
    const char *p = tmp;
    if (*p == '-')
        neg = 1, p++;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            digits[nd++] = *p;
    int exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = 0;
    int decpt = exp10 + 1; /* value = 0.digits * 10^decpt */
    int rc = 0;
    if (neg)
        rc |= buf_putc(b, '-');
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            rc |= buf_puts(b, "0.");
            for (int i = 0; i < -decpt; i++)
                rc |= buf_putc(b, '0');
            rc |= buf_puts(b, digits);
        } else if (decpt >= nd) {
            rc |= buf_puts(b, digits);
            for (int i = nd; i < decpt; i++)
                rc |= buf_putc(b, '0');
            rc |= buf_puts(b, ".0");
        } else {
            rc |= buf_append(b, digits, (size_t)decpt);
            rc |= buf_putc(b, '.');
            rc |= buf_puts(b, digits + decpt);
        }
    } else {
        rc |= buf_putc(b, digits[0]);
        if (nd > 1) {
            rc |= buf_putc(b, '.');
            rc |= buf_puts(b, digits + 1);
        }
        rc |= buf_printf(b, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
    return rc ? ERR_NOMEM : 0;
}

/* Python's str.isprintable() for one code point (repr escapes the others). */
static int py_printable(uint32_t cp)
{
    if (cp == ' ')
        return 1;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    switch (c) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: return 0;
    default: return 1;
    }
}

static int str_repr(struct buf *b, const char *s, size_t n)
{
    char q = '\'';
    if (memchr(s, '\'', n) && !memchr(s, '"', n))
        q = '"';
    int rc = buf_putc(b, q);
    for (size_t i = 0; i < n && !rc;) {
        uint32_t cp;
        int l = utf8_decode(s + i, n - i, &cp);
        if (l <= 0)
            cp = (unsigned char)s[i], l = 1;
        if (cp == (uint32_t)q || cp == '\\')
            rc = buf_putc(b, '\\') | buf_putc(b, (char)cp);
        else if (cp == '\n')
            rc = buf_puts(b, "\\n");
        else if (cp == '\r')
            rc = buf_puts(b, "\\r");
        else if (cp == '\t')
            rc = buf_puts(b, "\\t");
        else if (cp < 0x80 ? (cp < 0x20 || cp == 0x7f) : !py_printable(cp)) {
            if (cp < 0x100)
                rc = buf_printf(b, "\\x%02x", cp);
            else if (cp < 0x10000)
                rc = buf_printf(b, "\\u%04x", cp);
            else
                rc = buf_printf(b, "\\U%08x", cp);
        } else
            rc = buf_append(b, s + i, (size_t)l);
        i += (size_t)l;
    }
    return rc | buf_putc(b, q) ? ERR_NOMEM : 0;
}

static int repr_depth(struct buf *b, struct jv v, int depth);

static int to_str_depth(struct buf *b, struct jv v, int depth)
{
    switch (v.t) {
    case JV_UNDEF: return 0;
    case JV_NONE: return buf_puts(b, "None");
    case JV_BOOL: return buf_puts(b, v.u.b ? "True" : "False");
    case JV_INT: return buf_printf(b, "%lld", (long long)v.u.i);
    case JV_FLOAT: return jv_float_repr(b, v.u.f);
    case JV_STR: return buf_append(b, v.u.s->p, v.u.s->len);
    default: return repr_depth(b, v, depth);
    }
}

static int repr_depth(struct buf *b, struct jv v, int depth)
{
    if (depth > 200)
        return err_set(ERR_INVAL, "value nested too deeply");
    int rc = 0;
    switch (v.t) {
    case JV_STR: return str_repr(b, v.u.s->p, v.u.s->len);
    case JV_LIST:
        rc |= buf_putc(b, v.u.l->tuple ? '(' : '[');
        for (size_t i = 0; i < v.u.l->n && !rc; i++) {
            if (i)
                rc |= buf_puts(b, ", ");
            rc |= repr_depth(b, v.u.l->v[i], depth + 1);
        }
        if (v.u.l->tuple && v.u.l->n == 1)
            rc |= buf_putc(b, ',');
        rc |= buf_putc(b, v.u.l->tuple ? ')' : ']');
        return rc ? (rc < 0 ? rc : ERR_NOMEM) : 0;
    case JV_DICT:
    case JV_NS:
        if (v.t == JV_NS)
            rc |= buf_puts(b, "<Namespace ");
        rc |= buf_putc(b, '{');
        for (size_t i = 0; i < v.u.d->n && !rc; i++) {
            if (i)
                rc |= buf_puts(b, ", ");
            rc |= repr_depth(b, v.u.d->k[i], depth + 1);
            rc |= buf_puts(b, ": ");
            rc |= repr_depth(b, v.u.d->v[i], depth + 1);
        }
        rc |= buf_putc(b, '}');
        if (v.t == JV_NS)
            rc |= buf_putc(b, '>');
        return rc ? (rc < 0 ? rc : ERR_NOMEM) : 0;
    case JV_UNDEF: return 0;
    case JV_MACRO: return buf_puts(b, "<Macro>");
    case JV_FUNC:
    case JV_METHOD: return buf_puts(b, "<function>");
    case JV_LOOP: return buf_puts(b, "<LoopContext>");
    default: return to_str_depth(b, v, depth);
    }
}

int jv_to_str(struct buf *b, struct jv v) { return to_str_depth(b, v, 0); }
int jv_repr(struct buf *b, struct jv v) { return repr_depth(b, v, 0); }

int jv_stringify(struct jarena *a, struct jv v, struct jv *out)
{
    if (v.t == JV_STR) {
        *out = v;
        return 0;
    }
    struct buf b = { 0 };
    int rc = jv_to_str(&b, v);
    if (rc == 0)
        rc = jv_str(a, b.p ? b.p : "", b.len, out);
    buf_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- json.dumps */

static int json_str(struct buf *b, const char *s, size_t n)
{
    int rc = buf_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rc |= buf_append(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': rc |= buf_puts(b, "\\\""); break;
        case '\\': rc |= buf_puts(b, "\\\\"); break;
        case '\n': rc |= buf_puts(b, "\\n"); break;
        case '\r': rc |= buf_puts(b, "\\r"); break;
        case '\t': rc |= buf_puts(b, "\\t"); break;
        case '\b': rc |= buf_puts(b, "\\b"); break;
        case '\f': rc |= buf_puts(b, "\\f"); break;
        default: rc |= buf_printf(b, "\\u%04x", c);
        }
    }
    rc |= buf_append(b, s + run, n - run);
    return rc | buf_putc(b, '"') ? ERR_NOMEM : 0;
}

static int json_newline(struct buf *b, int indent, int level)
{
    int rc = buf_putc(b, '\n');
    for (int i = 0; i < indent * level && !rc; i++)
        rc = buf_putc(b, ' ');
    return rc;
}

static int key_cmp(const void *x, const void *y)
{
    const struct jv *a = *(const struct jv *const *)x, *b = *(const struct jv *const *)y;
    int r = 0;
    if (jv_compare(*a, *b, &r) < 0)
        return 0;
    return r;
}

static int tojson_depth(struct buf *b, struct jv v, int indent, int sort, int level)
{
    if (level > 200)
        return err_set(ERR_INVAL, "tojson: value nested too deeply");
    int rc = 0;
    switch (v.t) {
    case JV_NONE: return buf_puts(b, "null");
    case JV_BOOL: return buf_puts(b, v.u.b ? "true" : "false");
    case JV_INT: return buf_printf(b, "%lld", (long long)v.u.i);
    case JV_FLOAT:
        if (isnan(v.u.f))
            return buf_puts(b, "NaN");
        if (isinf(v.u.f))
            return buf_puts(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        return jv_float_repr(b, v.u.f);
    case JV_STR: return json_str(b, v.u.s->p, v.u.s->len);
    case JV_LIST:
        if (v.u.l->n == 0)
            return buf_puts(b, "[]");
        rc |= buf_putc(b, '[');
        for (size_t i = 0; i < v.u.l->n && rc == 0; i++) {
            if (i)
                rc |= buf_puts(b, indent >= 0 ? "," : ", ");
            if (indent >= 0)
                rc |= json_newline(b, indent, level + 1);
            if (rc == 0)
                rc = tojson_depth(b, v.u.l->v[i], indent, sort, level + 1);
        }
        if (indent >= 0 && rc == 0)
            rc |= json_newline(b, indent, level);
        return rc < 0 ? rc : rc | buf_putc(b, ']') ? ERR_NOMEM : 0;
    case JV_DICT: {
        if (v.u.d->n == 0)
            return buf_puts(b, "{}");
        size_t n = v.u.d->n;
        /* with sort_keys, visit keys through a sorted index (stable, like sorted()) */
        const struct jv **order = malloc(n * sizeof *order);
        if (!order)
            return err_set(ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
            order[i] = &v.u.d->k[i];
        if (sort)
            qsort(order, n, sizeof *order, key_cmp);
        rc |= buf_putc(b, '{');
        for (size_t j = 0; j < n && rc == 0; j++) {
            size_t i = (size_t)(order[j] - v.u.d->k);
            struct jv k = v.u.d->k[i];
            if (j)
                rc |= buf_puts(b, indent >= 0 ? "," : ", ");
            if (indent >= 0)
                rc |= json_newline(b, indent, level + 1);
            /* json.dumps turns scalar keys into strings */
            if (k.t == JV_STR)
                rc |= json_str(b, k.u.s->p, k.u.s->len);
            else if (k.t == JV_INT || k.t == JV_FLOAT || k.t == JV_BOOL || k.t == JV_NONE) {
                struct buf kb = { 0 };
                rc |= tojson_depth(&kb, k, -1, 0, level + 1);
                rc |= json_str(b, kb.p ? kb.p : "", kb.len);
                buf_free(&kb);
            } else {
                free(order);
                return err_set(ERR_INVAL,
                               "tojson: keys must be str, int, float, bool or None, "
                               "not %s",
                               jv_type_name(k));
            }
            rc |= buf_puts(b, ": ");
            if (rc == 0)
                rc = tojson_depth(b, v.u.d->v[i], indent, sort, level + 1);
        }
        free(order);
        if (indent >= 0 && rc == 0)
            rc |= json_newline(b, indent, level);
        return rc < 0 ? rc : rc | buf_putc(b, '}') ? ERR_NOMEM : 0;
    }
    default:
        return err_set(ERR_INVAL, "tojson: Object of type %s is not JSON serializable",
                       jv_type_name(v));
    }
}

int jv_tojson(struct buf *b, struct jv v, int indent, int sort_keys)
{
    return tojson_depth(b, v, indent, sort_keys, 0);
}

/* ---------------------------------------------------------------- JSON input */

struct jp {
    struct jarena *a;
    const char *s, *what;
    size_t n, i;
    int depth;
};

static int jp_err(struct jp *p, const char *msg)
{
    int line, col;
    /* text_line_col reads up to off; clamp */
    size_t off = p->i < p->n ? p->i : p->n;
    char *tmp = strndup(p->s, off);
    if (!tmp)
        return err_set(ERR_NOMEM, "out of memory");
    text_line_col(tmp, off, &line, &col);
    free(tmp);
    return err_set(ERR_INVAL, "%s:%d:%d: %s", p->what, line, col, msg);
}

static void jp_ws(struct jp *p)
{
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int jp_string(struct jp *p, struct jv *out)
{
    p->i++; /* opening quote */
    struct buf b = { 0 };
    int rc = 0;
    for (;;) {
        if (p->i >= p->n) {
            rc = jp_err(p, "unterminated string");
            break;
        }
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            break;
        }
        if (c < 0x20) {
            rc = jp_err(p, "control character in string");
            break;
        }
        if (c != '\\') {
            size_t st = p->i;
            while (p->i < p->n && p->s[p->i] != '"' && p->s[p->i] != '\\' &&
                   (unsigned char)p->s[p->i] >= 0x20)
                p->i++;
            if (buf_append(&b, p->s + st, p->i - st) < 0) {
                rc = ERR_NOMEM;
                break;
            }
            continue;
        }
        if (p->i + 1 >= p->n) {
            rc = jp_err(p, "unterminated string");
            break;
        }
        char e = p->s[p->i + 1];
        const char *rep = NULL;
        switch (e) {
        case '"': rep = "\""; break;
        case '\\': rep = "\\"; break;
        case '/': rep = "/"; break;
        case 'b': rep = "\b"; break;
        case 'f': rep = "\f"; break;
        case 'n': rep = "\n"; break;
        case 'r': rep = "\r"; break;
        case 't': rep = "\t"; break;
        }
        if (rep) {
            p->i += 2;
            if (buf_puts(&b, rep) < 0) {
                rc = ERR_NOMEM;
                break;
            }
            continue;
        }
        uint32_t cp;
        if (e != 'u' || p->i + 6 > p->n || hex4(p->s + p->i + 2, &cp) < 0) {
            rc = jp_err(p, "invalid escape in string");
            break;
        }
        p->i += 6;
        if (cp >= 0xD800 && cp < 0xDC00 && p->i + 6 <= p->n && p->s[p->i] == '\\' &&
            p->s[p->i + 1] == 'u') {
            uint32_t lo;
            if (hex4(p->s + p->i + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p->i += 6;
            }
        }
        if (cp >= 0xD800 && cp < 0xE000) {
            /* a lone surrogate has no UTF-8 form */
            rc = jp_err(p, "lone surrogate \\u escape in string");
            break;
        }
        char u[4];
        int l = utf8_encode(cp, u);
        if (buf_append(&b, u, (size_t)l) < 0) {
            rc = ERR_NOMEM;
            break;
        }
    }
    if (rc == 0)
        rc = jv_str(p->a, b.p ? b.p : "", b.len, out);
    buf_free(&b);
    return rc;
}

static int jp_number(struct jp *p, struct jv *out)
{
    size_t st = p->i;
    int isf = 0;
    if (p->s[p->i] == '-')
        p->i++;
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
        return jp_err(p, "invalid number");
    if (p->s[p->i] == '0')
        p->i++;
    else
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
            p->i++;
    if (p->i < p->n && p->s[p->i] == '.') {
        isf = 1;
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
            return jp_err(p, "invalid number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
            p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        isf = 1;
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
            p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9')
            return jp_err(p, "invalid number");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
            p->i++;
    }
    char tmp[64];
    size_t len = p->i - st;
    if (len >= sizeof tmp) {
        if (!isf)
            return jp_err(p, "integer too long");
        len = sizeof tmp - 1; /* mantissa digits beyond 60 cannot change a double much */
    }
    memcpy(tmp, p->s + st, len);
    tmp[len] = 0;
    if (!isf) {
        errno = 0;
        long long v = strtoll(tmp, NULL, 10);
        if (errno == ERANGE) {
            p->i = st;
            return jp_err(p, "integer out of the 64-bit range");
        }
        *out = jv_int(v);
    } else
        *out = jv_float(strtod(tmp, NULL));
    return 0;
}

static int jp_value(struct jp *p, struct jv *out)
{
    jp_ws(p);
    if (p->i >= p->n)
        return jp_err(p, "unexpected end of JSON");
    if (++p->depth > 200)
        return jp_err(p, "JSON nested too deeply");
    char c = p->s[p->i];
    int rc = 0;
    if (c == '"')
        rc = jp_string(p, out);
    else if (c == '-' || (c >= '0' && c <= '9'))
        rc = jp_number(p, out);
    else if (p->n - p->i >= 4 && !memcmp(p->s + p->i, "true", 4))
        p->i += 4, *out = jv_bool(1);
    else if (p->n - p->i >= 5 && !memcmp(p->s + p->i, "false", 5))
        p->i += 5, *out = jv_bool(0);
    else if (p->n - p->i >= 4 && !memcmp(p->s + p->i, "null", 4))
        p->i += 4, *out = jv_none();
    else if (c == '[') {
        p->i++;
        if ((rc = jv_list(p->a, 0, out)) < 0)
            return rc;
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == ']')
            p->i++;
        else
            for (;;) {
                struct jv item;
                if ((rc = jp_value(p, &item)) < 0 || (rc = jv_list_push(p->a, out->u.l, item)) < 0)
                    return rc;
                jp_ws(p);
                if (p->i < p->n && p->s[p->i] == ',') {
                    p->i++;
                    continue;
                }
                if (p->i < p->n && p->s[p->i] == ']') {
                    p->i++;
                    break;
                }
                return jp_err(p, "expected ',' or ']' in array");
            }
    } else if (c == '{') {
        p->i++;
        if ((rc = jv_dict(p->a, 0, out)) < 0)
            return rc;
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == '}')
            p->i++;
        else
            for (;;) {
                struct jv k, v;
                jp_ws(p);
                if (p->i >= p->n || p->s[p->i] != '"')
                    return jp_err(p, "expected a string key in object");
                if ((rc = jp_string(p, &k)) < 0)
                    return rc;
                jp_ws(p);
                if (p->i >= p->n || p->s[p->i] != ':')
                    return jp_err(p, "expected ':' in object");
                p->i++;
                if ((rc = jp_value(p, &v)) < 0 || (rc = jv_dict_set(p->a, out->u.d, k, v)) < 0)
                    return rc;
                jp_ws(p);
                if (p->i < p->n && p->s[p->i] == ',') {
                    p->i++;
                    continue;
                }
                if (p->i < p->n && p->s[p->i] == '}') {
                    p->i++;
                    break;
                }
                return jp_err(p, "expected ',' or '}' in object");
            }
    } else
        return jp_err(p, "unexpected character");
    p->depth--;
    return rc;
}

int jv_parse_json(struct jarena *a, const char *text, size_t n, const char *what, struct jv *out)
{
    struct jp p = { .a = a, .s = text, .n = n, .what = what };
    size_t bad;
    if (!utf8_valid(text, n, &bad)) {
        p.i = bad;
        return jp_err(&p, "invalid UTF-8");
    }
    int rc = jp_value(&p, out);
    if (rc < 0)
        return rc;
    jp_ws(&p);
    if (p.i != n)
        return jp_err(&p, "extra data after the JSON value");
    return 0;
}

static int from_cjson(struct jarena *a, const cJSON *j, struct jv *out, int depth)
{
    if (depth > 200)
        return err_set(ERR_INVAL, "JSON nested too deeply");
    if (!j || cJSON_IsNull(j)) {
        *out = jv_none();
        return 0;
    }
    if (cJSON_IsBool(j)) {
        *out = jv_bool(cJSON_IsTrue(j));
        return 0;
    }
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0)
            *out = jv_int((int64_t)d);
        else
            *out = jv_float(d);
        return 0;
    }
    if (cJSON_IsString(j)) {
        const char *s = j->valuestring ? j->valuestring : "";
        size_t n = strlen(s);
        if (!utf8_valid(s, n, NULL))
            return err_set(ERR_INVAL, "invalid UTF-8 in a JSON string");
        return jv_str(a, s, n, out);
    }
    int rc;
    if (cJSON_IsArray(j)) {
        if ((rc = jv_list(a, 0, out)) < 0)
            return rc;
        for (const cJSON *c = j->child; c; c = c->next) {
            struct jv v;
            if ((rc = from_cjson(a, c, &v, depth + 1)) < 0 ||
                (rc = jv_list_push(a, out->u.l, v)) < 0)
                return rc;
        }
        return 0;
    }
    if (cJSON_IsObject(j)) {
        if ((rc = jv_dict(a, 0, out)) < 0)
            return rc;
        for (const cJSON *c = j->child; c; c = c->next) {
            struct jv k, v;
            const char *ks = c->string ? c->string : "";
            if ((rc = jv_str(a, ks, strlen(ks), &k)) < 0 ||
                (rc = from_cjson(a, c, &v, depth + 1)) < 0 ||
                (rc = jv_dict_set(a, out->u.d, k, v)) < 0)
                return rc;
        }
        return 0;
    }
    return err_set(ERR_INVAL, "unsupported JSON value");
}

int jv_from_cjson(struct jarena *a, const void *cj, struct jv *out)
{
    return from_cjson(a, cj, out, 0);
}
