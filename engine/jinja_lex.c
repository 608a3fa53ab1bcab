/*
 * jinja_lex.c - template source -> tokens, following Jinja2 3.1's lexer with
 * the environment transformers uses (trim_blocks, lstrip_blocks, default
 * delimiters, keep_trailing_newline off):
 *   - \r\n and \r become \n, and one trailing newline of the source is dropped;
 *   - "{%-" / "{{-" / "{#-" strip all whitespace before the tag, "-%}" / "-}}"
 *     / "-#}" all whitespace after it;
 *   - trim_blocks: a block or comment tag eats the one newline after it;
 *   - lstrip_blocks: spaces and tabs from the line start up to a block or
 *     comment tag are dropped ("{%+" keeps them, "+%}" keeps the newline);
 *   - inside tags, "%}" / "}}" close the tag only outside brackets;
 *   - string literals are unescaped as Python's unicode-escape does.
 */
#include "engine/jinja.h"

#include "common/err.h"
#include "common/text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lx {
    struct jarena *a;
    const char *s; /* normalized source */
    size_t n;
    struct jtoks *out;
    size_t p_off; /* position cache: offsets mostly grow, so walk on from the last one */
    int p_line, p_col;
};

static void pos_of(struct lx *l, size_t off, int *line, int *col)
{
    if (l->p_line == 0 || off < l->p_off) {
        l->p_off = 0;
        l->p_line = l->p_col = 1;
    }
    for (size_t i = l->p_off; i < off && i < l->n; i++) {
        if (l->s[i] == '\n')
            l->p_line++, l->p_col = 1;
        else if (((unsigned char)l->s[i] & 0xC0) != 0x80)
            l->p_col++;
    }
    l->p_off = off;
    *line = l->p_line;
    *col = l->p_col;
}

static int lx_err(struct lx *l, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int lx_err(struct lx *l, size_t off, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line, col;
    pos_of(l, off, &line, &col);
    return err_set(ERR_INVAL, "template:%d:%d: %s", line, col, msg);
}

static int push(struct lx *l, int type, size_t off, const char *s, size_t len, struct jtok **tp)
{
    struct jtoks *t = l->out;
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 256;
        struct jtok *nv = realloc(t->v, nc * sizeof *nv);
        if (!nv)
            return err_set(ERR_NOMEM, "out of memory");
        t->v = nv;
        t->cap = nc;
    }
    struct jtok *k = &t->v[t->n++];
    memset(k, 0, sizeof *k);
    k->type = type;
    k->s = s;
    k->len = len;
    pos_of(l, off, &k->line, &k->col);
    if (tp)
        *tp = k;
    return 0;
}

/* Whitespace in Python's sense (str.isspace / \s), decoded at s[i]; returns
 * its byte length or 0. */
static int ws_at(const char *s, size_t n, size_t i)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80)
        return jv_is_space(c) ? 1 : 0;
    uint32_t cp;
    int len = utf8_decode(s + i, n - i, &cp);
    return len > 0 && jv_is_space(cp) ? len : 0;
}

/* Length of s[0..n) without its trailing whitespace (Python rstrip()). */
static size_t rstrip_len(const char *s, size_t n)
{
    size_t end = n;
    while (end > 0) {
        size_t st = end - 1;
        while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80)
            st--;
        if (!ws_at(s, end, st))
            break;
        end = st;
    }
    return end;
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    int l;
    while (i < n && (l = ws_at(s, n, i)) > 0)
        i += (size_t)l;
    return i;
}

/* Emits data s[st..en) with lstrip/rstrip decisions for the tag that follows
 * (kind: '%', '{', '#'; sign: '-', '+' or 0). */
static int emit_text(struct lx *l, size_t st, size_t en, char kind, char sign, int line_starting)
{
    size_t len = en - st;
    const char *t = l->s + st;
    if (sign == '-')
        len = rstrip_len(t, len);
    else if (sign != '+' && kind != '{') {
        /* lstrip_blocks: only whitespace between the last newline and the tag */
        size_t lpos = 0;
        for (size_t i = len; i > 0; i--)
            if (t[i - 1] == '\n') {
                lpos = i;
                break;
            }
        if ((lpos > 0 || line_starting) && lpos < len) {
            size_t j = skip_ws(t, len, lpos);
            if (j == len)
                len = lpos;
        }
    }
    if (len == 0)
        return 0;
    return push(l, JT_TEXT, st, t, len, NULL);
}

/* Python's `s.encode("ascii", "backslashreplace").decode("unicode-escape")`,
 * what Jinja2 does to the inside of a string literal. */
static int unescape(struct lx *l, size_t off, const char *s, size_t n, struct jtok *tok)
{
    struct buf b = { 0 };
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        if (s[i] != '\\') {
            size_t st = i;
            while (i < n && s[i] != '\\')
                i++;
            rc = buf_append(&b, s + st, i - st);
            continue;
        }
        if (i + 1 >= n) {
            rc = lx_err(l, off, "\\ at end of string");
            break;
        }
        unsigned char e = (unsigned char)s[i + 1];
        i += 2;
        const char *rep = NULL;
        switch (e) {
        case '\n': rep = ""; break;
        case '\\': rep = "\\"; break;
        case '\'': rep = "'"; break;
        case '"': rep = "\""; break;
        case 'a': rep = "\a"; break;
        case 'b': rep = "\b"; break;
        case 'f': rep = "\f"; break;
        case 'n': rep = "\n"; break;
        case 'r': rep = "\r"; break;
        case 't': rep = "\t"; break;
        case 'v': rep = "\v"; break;
        }
        if (rep) {
            rc = buf_puts(&b, rep);
            continue;
        }
        uint32_t cp = 0;
        if (e >= '0' && e <= '7') {
            cp = e - '0';
            for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++, i++)
                cp = cp * 8 + (uint32_t)(s[i] - '0');
        } else if (e == 'x' || e == 'u' || e == 'U') {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            for (int k = 0; k < nd; k++, i++) {
                int h = i < n ? hex_digit((unsigned char)s[i]) : -1;
                if (h < 0) {
                    rc = lx_err(l, off, "truncated \\%c escape in string", e);
                    break;
                }
                cp = cp * 16 + (uint32_t)h;
            }
            if (rc)
                break;
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) {
                rc = lx_err(l, off, "invalid code point escape in string");
                break;
            }
        } else if (e == 'N') {
            rc = lx_err(l, off, "\\N{...} escapes are not supported");
            break;
        } else if (e >= 0x80) {
            /* a backslash before a non-ASCII character: backslashreplace
             * turned the character into "\xe9"/"\u2028", whose backslash the
             * decoder pairs with this one, leaving the escape's text */
            uint32_t c;
            int len = utf8_decode(s + i - 1, n - (i - 1), &c);
            if (len <= 0) {
                rc = lx_err(l, off, "invalid UTF-8 in string");
                break;
            }
            i = i - 1 + (size_t)len;
            if (c < 0x100)
                rc = buf_printf(&b, "\\x%02x", c);
            else if (c < 0x10000)
                rc = buf_printf(&b, "\\u%04x", c);
            else
                rc = buf_printf(&b, "\\U%08x", c);
            continue;
        } else {
            /* unknown escapes stay as they are */
            rc = buf_putc(&b, '\\') | buf_putc(&b, (char)e);
            continue;
        }
        char u[4];
        int ul = utf8_encode(cp, u);
        rc = buf_append(&b, u, (size_t)ul);
    }
    if (rc == 0) {
        struct jv v;
        rc = jv_str(l->a, b.p ? b.p : "", b.len, &v);
        if (rc == 0) {
            tok->s = v.u.s->p;
            tok->len = v.u.s->len;
        }
    }
    buf_free(&b);
    return rc;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_name0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

/* Digits with single '_' separators ((\d+_)*\d+); returns the end or st. */
static size_t digits_(const char *s, size_t n, size_t st)
{
    size_t i = st;
    if (i >= n || !is_digit(s[i]))
        return st;
    for (;;) {
        while (i < n && is_digit(s[i]))
            i++;
        if (i + 1 < n && s[i] == '_' && is_digit(s[i + 1])) {
            i++;
            continue;
        }
        return i;
    }
}

static int lex_number(struct lx *l, size_t *pi, size_t end)
{
    const char *s = l->s;
    size_t st = *pi, i = digits_(s, end, st);
    int isf = 0;
    size_t j = i;
    if (j + 1 < end && s[j] == '.' && is_digit(s[j + 1])) {
        j = digits_(s, end, j + 1);
        isf = 1;
    }
    if (j < end && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < end && (s[k] == '+' || s[k] == '-'))
            k++;
        size_t e2 = digits_(s, end, k);
        if (e2 > k) {
            j = e2;
            isf = 1;
        }
    }
    char tmp[128];
    size_t o = 0;
    size_t stop = isf ? j : i;
    for (size_t k = st; k < stop && o < sizeof tmp - 1; k++)
        if (s[k] != '_')
            tmp[o++] = s[k];
    tmp[o] = 0;
    struct jtok *t;
    int rc = push(l, isf ? JT_FLOAT : JT_INT, st, s + st, stop - st, &t);
    if (rc < 0)
        return rc;
    if (isf)
        t->f = strtod(tmp, NULL);
    else {
        /* Python ints are unbounded; ours stop at 64 bits */
        errno = 0;
        t->i = strtoll(tmp, NULL, 10);
        if (errno == ERANGE)
            return lx_err(l, st, "integer literal too large");
    }
    *pi = stop;
    return 0;
}

static const char *const ops[] = { "//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                   "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                   "=",  ".",  ":",  "|",  ",",  ";",  ">", "<", NULL };

/* Tokens of one tag from *pi; stops after the closing delimiter. kind is '%'
 * or '{'. */
static int lex_tag(struct lx *l, size_t *pi, char kind, int *line_starting)
{
    const char *s = l->s;
    size_t n = l->n, i = *pi;
    char stack[256];
    int depth = 0;
    for (;;) {
        i = skip_ws(s, n, i);
        if (i >= n)
            return lx_err(l, i, "unexpected end of template, expected '%s'",
                          kind == '%' ? "%}" : "}}");
        if (depth == 0) {
            /* closing delimiter */
            char c1 = kind == '%' ? '%' : '}';
            size_t at = i;
            char sign = 0;
            if ((s[i] == '-' || s[i] == '+') && i + 2 < n + 0 && s[i + 1] == c1 && s[i + 2] == '}')
                sign = s[i], at = i + 1;
            if (kind == '{' && sign == '+')
                sign = 0, at = i; /* "+}}" is not a variable end */
            if (at + 1 < n && s[at] == c1 && s[at + 1] == '}') {
                int rc = push(l, kind == '%' ? JT_BLOCK_END : JT_VAR_END, i, s + i, 0, NULL);
                if (rc < 0)
                    return rc;
                size_t e = at + 2;
                if (sign == '-')
                    e = skip_ws(s, n, e);
                else if (kind == '%' && sign != '+' && e < n && s[e] == '\n')
                    e++;
                *line_starting = e > 0 && s[e - 1] == '\n';
                *pi = e;
                return 0;
            }
        }
        char c = s[i];
        int rc = 0;
        if (is_digit(c)) {
            rc = lex_number(l, &i, n);
        } else if (is_name0(c)) {
            size_t st = i;
            while (i < n && (is_name0(s[i]) || is_digit(s[i])))
                i++;
            rc = push(l, JT_NAME, st, s + st, i - st, NULL);
        } else if (c == '\'' || c == '"') {
            size_t st = i++;
            while (i < n && s[i] != c) {
                if (s[i] == '\\' && i + 1 < n)
                    i++;
                i++;
            }
            if (i >= n)
                return lx_err(l, st, "unexpected end of string");
            struct jtok *t;
            rc = push(l, JT_STRING, st, NULL, 0, &t);
            if (rc == 0)
                rc = unescape(l, st, s + st + 1, i - st - 1, t);
            i++;
        } else {
            const char *op = NULL;
            for (int k = 0; ops[k]; k++) {
                size_t ol = strlen(ops[k]);
                if (i + ol <= n && !memcmp(s + i, ops[k], ol)) {
                    op = ops[k];
                    break;
                }
            }
            if (!op) {
                if ((unsigned char)c >= 0x80 || (unsigned char)c < 0x20)
                    return lx_err(l, i, "unexpected byte 0x%02x", (unsigned char)c);
                return lx_err(l, i, "unexpected char '%c'", c);
            }
            size_t ol = strlen(op);
            if (op[0] == '(' || op[0] == '[' || op[0] == '{') {
                if (depth >= (int)sizeof stack)
                    return lx_err(l, i, "brackets nested too deeply");
                stack[depth++] = op[0] == '(' ? ')' : op[0] == '[' ? ']' : '}';
            } else if (ol == 1 && (op[0] == ')' || op[0] == ']' || op[0] == '}')) {
                if (depth == 0)
                    return lx_err(l, i, "unexpected '%c'", op[0]);
                if (stack[depth - 1] != op[0])
                    return lx_err(l, i, "unexpected '%c', expected '%c'", op[0], stack[depth - 1]);
                depth--;
            }
            rc = push(l, JT_OP, i, s + i, ol, NULL);
            i += ol;
        }
        if (rc < 0)
            return rc;
    }
}

/* Start of the next "{%", "{{" or "{#" at or after i; n when none. */
static size_t next_tag(const char *s, size_t n, size_t i)
{
    for (; i + 1 < n; i++) {
        const char *p = memchr(s + i, '{', n - i - 1);
        if (!p)
            return n;
        i = (size_t)(p - s);
        char c = s[i + 1];
        if (c == '%' || c == '{' || c == '#')
            return i;
    }
    return n;
}

/* "{%" ["-"|"+"] \s* "raw" \s* ["-"] "%}" at i? Sets *end after it. */
static int raw_tag(const char *s, size_t n, size_t i, const char *word, size_t *end, char *sign)
{
    if (i + 2 > n || s[i] != '{' || s[i + 1] != '%')
        return 0;
    size_t j = i + 2;
    *sign = 0;
    if (j < n && (s[j] == '-' || s[j] == '+'))
        *sign = s[j++];
    j = skip_ws(s, n, j);
    size_t wl = strlen(word);
    if (j + wl > n || memcmp(s + j, word, wl))
        return 0;
    j = skip_ws(s, n, j + wl);
    if (j + 3 <= n && s[j] == '-' && s[j + 1] == '%' && s[j + 2] == '}') {
        *end = skip_ws(s, n, j + 3);
        return 1;
    }
    if (j + 3 <= n && s[j] == '+' && s[j + 1] == '%' && s[j + 2] == '}') {
        *end = j + 3;
        return 1;
    }
    if (j + 2 <= n && s[j] == '%' && s[j + 1] == '}') {
        *end = j + 2;
        if (*end < n && s[*end] == '\n')
            (*end)++;
        return 1;
    }
    return 0;
}

int jinja_lex(struct jarena *a, const char *src, size_t n, struct jtoks *out)
{
    memset(out, 0, sizeof *out);
    size_t bad;
    if (!utf8_valid(src, n, &bad)) {
        int line, col;
        struct lx tmp = { .s = src, .n = bad };
        pos_of(&tmp, bad, &line, &col);
        return err_set(ERR_INVAL, "template:%d:%d: invalid UTF-8", line, col);
    }
    /* normalize newlines; drop one trailing newline */
    char *s = jinja_alloc(a, n + 1);
    if (!s)
        return ERR_NOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            s[m++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n')
                i++;
        } else
            s[m++] = src[i];
    }
    if (m > 0 && s[m - 1] == '\n')
        m--;
    s[m] = 0;
    struct lx l = { .a = a, .s = s, .n = m, .out = out };
    size_t i = 0;
    int line_starting = 1, rc = 0;
    while (i < m && rc == 0) {
        size_t t = next_tag(s, m, i);
        if (t >= m) {
            rc = push(&l, JT_TEXT, i, s + i, m - i, NULL);
            break;
        }
        char kind = s[t + 1];
        char sign = (t + 2 < m && (s[t + 2] == '-' || s[t + 2] == '+')) ? s[t + 2] : 0;
        size_t rend;
        char rsign;
        if (kind == '%' && raw_tag(s, m, t, "raw", &rend, &rsign)) {
            if ((rc = emit_text(&l, i, t, '%', rsign, line_starting)) < 0)
                break;
            /* find {% endraw %} */
            size_t j = rend, eend = 0;
            char esign = 0;
            for (; j < m; j++)
                if (s[j] == '{' && raw_tag(s, m, j, "endraw", &eend, &esign))
                    break;
            if (j >= m) {
                rc = lx_err(&l, t, "Missing end of raw directive");
                break;
            }
            if ((rc = emit_text(&l, rend, j, '%', esign, 0)) < 0)
                break;
            line_starting = eend > 0 && s[eend - 1] == '\n';
            i = eend;
            continue;
        }
        if ((rc = emit_text(&l, i, t, kind, sign, line_starting)) < 0)
            break;
        size_t body = t + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            /* comment: up to the first "+#}", "-#}" or "#}" */
            size_t j = body, e = 0;
            int found = 0;
            for (; j + 1 < m; j++) {
                if ((s[j] == '+' || s[j] == '-') && j + 2 < m && s[j + 1] == '#' &&
                    s[j + 2] == '}') {
                    e = j + 3;
                    if (s[j] == '-')
                        e = skip_ws(s, m, e);
                    found = 1;
                    break;
                }
                if (s[j] == '#' && s[j + 1] == '}') {
                    e = j + 2;
                    if (e < m && s[e] == '\n')
                        e++;
                    found = 1;
                    break;
                }
            }
            if (!found) {
                rc = lx_err(&l, t, "Missing end of comment tag");
                break;
            }
            line_starting = s[e - 1] == '\n';
            i = e;
            continue;
        }
        if ((rc = push(&l, kind == '%' ? JT_BLOCK_BEGIN : JT_VAR_BEGIN, t, s + t, 2, NULL)) < 0)
            break;
        i = body;
        rc = lex_tag(&l, &i, kind, &line_starting);
    }
    if (rc == 0)
        rc = push(&l, JT_EOF, m, s + m, 0, NULL);
    if (rc < 0)
        jinja_toks_free(out);
    return rc;
}

void jinja_toks_free(struct jtoks *t)
{
    if (!t)
        return;
    free(t->v);
    memset(t, 0, sizeof *t);
}
