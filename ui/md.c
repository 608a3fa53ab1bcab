/*
 * md.c - Markdown to styled lines (see md.h). Line-oriented on purpose: a
 * terminal needs the common block forms, not CommonMark's corner cases.
 */
#include "ui/md.h"

#include "common/err.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static int is_word(char c)
{
    return isalnum((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80;
}

/* The closing delimiter d (len dl) after i, on the same line, not directly
 * after a space (so "a * b" is not emphasis). */
static size_t find_close(const char *t, size_t n, size_t i, const char *d, size_t dl)
{
    for (size_t j = i; j + dl <= n; j++) {
        if (!memcmp(t + j, d, dl) && j > i && t[j - 1] != ' ')
            return j;
    }
    return (size_t)-1;
}

int md_inline(struct sline *l, const char *t, size_t n, int base)
{
    size_t i = 0, run = 0;
#define FLUSH()                                                                                    \
    do {                                                                                           \
        if (i > run && sl_put(l, t + run, i - run, base) < 0)                                      \
            return ERR_NOMEM;                                                                      \
    } while (0)
    while (i < n) {
        char c = t[i];
        if (c == '`') {
            size_t e = i + 1;
            while (e < n && t[e] != '`')
                e++;
            if (e < n) {
                FLUSH();
                if (sl_put(l, t + i + 1, e - i - 1, ST_CODE) < 0)
                    return ERR_NOMEM;
                i = run = e + 1;
                continue;
            }
        } else if ((c == '*' || c == '_') && i + 1 < n && t[i + 1] == c && i + 2 < n &&
                   t[i + 2] != ' ') {
            char d[2] = { c, c };
            size_t e = find_close(t, n, i + 2, d, 2);
            if (e != (size_t)-1) {
                FLUSH();
                if (md_inline(l, t + i + 2, e - i - 2, base == ST_HEAD ? ST_HEAD : ST_BOLD) < 0)
                    return ERR_NOMEM;
                i = run = e + 2;
                continue;
            }
        } else if ((c == '*' || c == '_') && i + 1 < n && t[i + 1] != ' ' && t[i + 1] != c &&
                   (c == '*' || i == 0 || !is_word(t[i - 1]))) {
            size_t e = find_close(t, n, i + 1, &c, 1);
            if (e != (size_t)-1 && (c == '*' || e + 1 >= n || !is_word(t[e + 1]))) {
                FLUSH();
                if (md_inline(l, t + i + 1, e - i - 1, base == ST_HEAD ? ST_HEAD : ST_ITALIC) < 0)
                    return ERR_NOMEM;
                i = run = e + 1;
                continue;
            }
        } else if (c == '[') {
            size_t e = i + 1;
            while (e < n && t[e] != ']')
                e++;
            if (e + 1 < n && t[e + 1] == '(') {
                size_t u = e + 2;
                while (u < n && t[u] != ')')
                    u++;
                if (u < n) {
                    FLUSH();
                    if (sl_put(l, t + i + 1, e - i - 1, ST_BOLD) < 0 ||
                        sl_puts(l, " (", ST_DIM) < 0 ||
                        sl_put(l, t + e + 2, u - e - 2, ST_DIM) < 0 || sl_puts(l, ")", ST_DIM) < 0)
                        return ERR_NOMEM;
                    i = run = u + 1;
                    continue;
                }
            }
        }
        i++;
    }
    FLUSH();
#undef FLUSH
    return 0;
}

/* ---- code colouring */

static const char *const keywords[] = {
    "if",       "else",   "for",       "while",   "do",     "return",   "break",   "continue",
    "switch",   "case",   "default",   "struct",  "enum",   "union",    "typedef", "static",
    "const",    "void",   "int",       "char",    "long",   "unsigned", "float",   "double",
    "size_t",   "sizeof", "goto",      "def",     "class",  "import",   "from",    "as",
    "with",     "try",    "except",    "finally", "raise",  "yield",    "lambda",  "None",
    "True",     "False",  "and",       "or",      "not",    "in",       "is",      "pass",
    "function", "let",    "var",       "new",     "this",   "true",     "false",   "null",
    "fn",       "pub",    "use",       "mut",     "impl",   "match",    "then",    "fi",
    "done",     "esac",   "elif",      "local",   "export", "async",    "await",   "package",
    "func",     "type",   "interface", NULL,
};

static int is_keyword(const char *w, size_t n)
{
    for (int k = 0; keywords[k]; k++)
        if (strlen(keywords[k]) == n && !memcmp(keywords[k], w, n))
            return 1;
    return 0;
}

static int hash_comments(const char *lang)
{
    static const char *const l[] = { "python",   "py",   "sh",   "bash",       "shell", "zsh",
                                     "ruby",     "rb",   "yaml", "yml",        "toml",  "make",
                                     "makefile", "perl", "r",    "dockerfile", "conf",  NULL };
    for (int k = 0; l[k]; k++)
        if (!strcasecmp(lang, l[k]))
            return 1;
    return 0;
}

int md_code_line(struct sline *l, const char *t, size_t n, const char *lang)
{
    if (!strcasecmp(lang, "diff") || !strcasecmp(lang, "patch")) {
        int st = ST_CODE;
        if (n && t[0] == '+')
            st = ST_ADD;
        else if (n && t[0] == '-')
            st = ST_DEL;
        else if (n > 1 && t[0] == '@' && t[1] == '@')
            st = ST_HUNK;
        return sl_put(l, t, n, st);
    }
    int hash = hash_comments(lang);
    size_t i = 0;
    while (i < n) {
        char c = t[i];
        if ((c == '/' && i + 1 < n && t[i + 1] == '/') || (hash && c == '#') ||
            (!strcasecmp(lang, "sql") && c == '-' && i + 1 < n && t[i + 1] == '-'))
            return sl_put(l, t + i, n - i, ST_COMMENT);
        if (c == '"' || c == '\'') {
            size_t e = i + 1;
            while (e < n && t[e] != c) {
                if (t[e] == '\\')
                    e++;
                e++;
            }
            if (e > n)
                e = n;
            size_t end = e < n ? e + 1 : n;
            if (sl_put(l, t + i, end - i, ST_STRING) < 0)
                return ERR_NOMEM;
            i = end;
            continue;
        }
        if (isalpha((unsigned char)c) || c == '_') {
            size_t e = i;
            while (e < n && (isalnum((unsigned char)t[e]) || t[e] == '_'))
                e++;
            if (sl_put(l, t + i, e - i, is_keyword(t + i, e - i) ? ST_KEYWORD : ST_CODE) < 0)
                return ERR_NOMEM;
            i = e;
            continue;
        }
        size_t e = i + 1;
        while (e < n && !isalpha((unsigned char)t[e]) && t[e] != '_' && t[e] != '"' &&
               t[e] != '\'' && t[e] != '/' && t[e] != '#' && t[e] != '-')
            e++;
        if (sl_put(l, t + i, e - i, ST_CODE) < 0)
            return ERR_NOMEM;
        i = e;
    }
    return 0;
}

/* ---- blocks */

static size_t lead_spaces(const char *t, size_t n)
{
    size_t i = 0;
    while (i < n && t[i] == ' ')
        i++;
    return i;
}

static int is_fence(const char *t, size_t n, size_t *after)
{
    size_t i = lead_spaces(t, n);
    if (i > 3 || i + 3 > n)
        return 0;
    if (!(!memcmp(t + i, "```", 3) || !memcmp(t + i, "~~~", 3)))
        return 0;
    *after = i + 3;
    return 1;
}

static int is_rule(const char *t, size_t n)
{
    size_t i = lead_spaces(t, n);
    if (i >= n)
        return 0;
    char c = t[i];
    if (c != '-' && c != '*' && c != '_')
        return 0;
    int k = 0;
    for (; i < n; i++) {
        if (t[i] == c)
            k++;
        else if (t[i] != ' ')
            return 0;
    }
    return k >= 3;
}

/* A table row: "| a | b |" or "a | b" with a leading pipe required (simpler
 * and never confused with prose). */
static int is_row(const char *t, size_t n)
{
    size_t i = lead_spaces(t, n);
    return i < n && t[i] == '|';
}

static int is_sep_row(const char *t, size_t n)
{
    if (!is_row(t, n))
        return 0;
    int dash = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '-')
            dash = 1;
        else if (t[i] != '|' && t[i] != ':' && t[i] != ' ')
            return 0;
    }
    return dash;
}

struct cell {
    const char *p;
    size_t n;
};

#define MAX_COLS 32

static int split_row(const char *t, size_t n, struct cell *c)
{
    size_t i = lead_spaces(t, n);
    if (i < n && t[i] == '|')
        i++;
    int k = 0;
    while (i < n && k < MAX_COLS) {
        size_t s = i;
        while (i < n && !(t[i] == '|' && (i == 0 || t[i - 1] != '\\')))
            i++;
        size_t a = s, b = i;
        while (a < b && t[a] == ' ')
            a++;
        while (b > a && t[b - 1] == ' ')
            b--;
        if (i >= n && a == b)
            break; /* trailing pipe */
        c[k].p = t + a;
        c[k].n = b - a;
        k++;
        if (i < n)
            i++;
    }
    return k;
}

struct span {
    const char *p;
    size_t n;
};

static int render_table(const struct span *rows, int nrows, int width, int base,
                        struct sl_list *out)
{
    struct cell cells[MAX_COLS];
    int w[MAX_COLS] = { 0 }, ncols = 0;
    struct sline tmp = { 0 };
    for (int r = 0; r < nrows; r++) {
        if (r == 1)
            continue; /* the separator */
        int k = split_row(rows[r].p, rows[r].n, cells);
        if (k > ncols)
            ncols = k;
        for (int c = 0; c < k; c++) {
            tmp.len = 0;
            if (md_inline(&tmp, cells[c].p, cells[c].n, base) < 0) {
                sl_free(&tmp);
                return ERR_NOMEM;
            }
            int cw = uw_width(tmp.t ? tmp.t : "", tmp.len);
            if (cw > w[c])
                w[c] = cw;
        }
    }
    long total = 1;
    for (int c = 0; c < ncols; c++)
        total += w[c] + 3;
    if (ncols == 0 || total > width) {
        /* does not fit: as written, so nothing is lost */
        sl_free(&tmp);
        for (int r = 0; r < nrows; r++) {
            struct sline *l = sl_add(out);
            if (!l || sl_put(l, rows[r].p, rows[r].n, base) < 0)
                return ERR_NOMEM;
        }
        return 0;
    }
    for (int r = 0; r < nrows; r++) {
        struct sline *l = sl_add(out);
        if (!l)
            goto oom;
        if (r == 1) {
            for (int c = 0; c < ncols; c++) {
                if (sl_puts(l, c ? "┼" : "├", ST_DIM) < 0)
                    goto oom;
                for (int k = 0; k < w[c] + 2; k++)
                    if (sl_puts(l, "─", ST_DIM) < 0)
                        goto oom;
            }
            if (sl_puts(l, "┤", ST_DIM) < 0)
                goto oom;
            continue;
        }
        int k = split_row(rows[r].p, rows[r].n, cells);
        for (int c = 0; c < ncols; c++) {
            if (sl_puts(l, "│ ", ST_DIM) < 0)
                goto oom;
            size_t before = l->len;
            if (c < k && md_inline(l, cells[c].p, cells[c].n, r == 0 ? ST_BOLD : base) < 0)
                goto oom;
            int cw = uw_width(l->t + before, l->len - before);
            for (int p = cw; p < w[c] + 1; p++)
                if (sl_puts(l, " ", base) < 0)
                    goto oom;
        }
        if (sl_puts(l, "│", ST_DIM) < 0)
            goto oom;
    }
    sl_free(&tmp);
    return 0;
oom:
    sl_free(&tmp);
    return ERR_NOMEM;
}

static size_t line_len(const char *text, size_t n, size_t from)
{
    size_t z = from;
    while (z < n && text[z] != '\n')
        z++;
    return z - from;
}

int md_render(const char *text, size_t n, int width, int base, struct sl_list *out)
{
    int in_code = 0;
    char lang[32] = "";
    struct span rows[256];
    int nrows = 0;
    size_t i = 0;
    while (i <= n) {
        size_t e = i;
        while (e < n && text[e] != '\n')
            e++;
        const char *t = text + i;
        size_t len = e - i;
        if (len && t[len - 1] == '\r')
            len--;
        int last = e >= n;
        if (last && len == 0 && i > 0 && nrows == 0)
            break; /* a trailing newline adds no line */
        /* a table ends at the first line that is not a row */
        if (nrows && (!is_row(t, len) || nrows == (int)(sizeof rows / sizeof rows[0]))) {
            if (render_table(rows, nrows, width, base, out) < 0)
                return ERR_NOMEM;
            nrows = 0;
            if (last && len == 0)
                break;
        }
        size_t after;
        if (is_fence(t, len, &after)) {
            if (!in_code) {
                size_t a = after;
                while (a < len && (t[a] == '`' || t[a] == '~' || t[a] == ' '))
                    a++;
                size_t b = a;
                while (b < len && t[b] != ' ' && b - a < sizeof lang - 1)
                    b++;
                memcpy(lang, t + a, b - a);
                lang[b - a] = 0;
                in_code = 1;
                struct sline *l = sl_add(out);
                if (!l || sl_puts(l, lang[0] ? lang : "code", ST_DIM) < 0)
                    return ERR_NOMEM;
            } else {
                in_code = 0;
            }
        } else if (in_code) {
            struct sline *l = sl_add(out);
            if (!l || sl_puts(l, "  ", ST_CODE) < 0 || md_code_line(l, t, len, lang) < 0)
                return ERR_NOMEM;
            l->indent = 2;
        } else if (is_row(t, len) &&
                   (nrows || (!last && is_sep_row(text + e + 1, line_len(text, n, e + 1))))) {
            rows[nrows++] = (struct span){ t, len };
        } else if (is_rule(t, len)) {
            struct sline *l = sl_add(out);
            if (!l)
                return ERR_NOMEM;
            int wdt = width > 40 ? 40 : width;
            for (int k = 0; k < wdt; k++)
                if (sl_puts(l, "─", ST_DIM) < 0)
                    return ERR_NOMEM;
        } else {
            struct sline *l = sl_add(out);
            if (!l)
                return ERR_NOMEM;
            size_t sp = lead_spaces(t, len);
            const char *r = t + sp;
            size_t rn = len - sp;
            size_t h = 0;
            while (h < rn && h < 6 && r[h] == '#')
                h++;
            if (h && h < rn && r[h] == ' ') {
                if (md_inline(l, r + h + 1, rn - h - 1, ST_HEAD) < 0)
                    return ERR_NOMEM;
            } else if (rn && r[0] == '>') {
                size_t k = (rn > 1 && r[1] == ' ') ? 2 : 1;
                if (sl_puts(l, "│ ", ST_QUOTE) < 0 || md_inline(l, r + k, rn - k, ST_QUOTE) < 0)
                    return ERR_NOMEM;
                l->indent = 2;
            } else if (rn > 1 && (r[0] == '-' || r[0] == '*' || r[0] == '+') && r[1] == ' ') {
                for (size_t k = 0; k < sp; k++)
                    if (sl_puts(l, " ", base) < 0)
                        return ERR_NOMEM;
                if (sl_puts(l, "• ", ST_BOLD) < 0 || md_inline(l, r + 2, rn - 2, base) < 0)
                    return ERR_NOMEM;
                l->indent = (int)sp + 2;
            } else {
                size_t d = 0;
                while (d < rn && isdigit((unsigned char)r[d]))
                    d++;
                if (d && d < 10 && d + 1 < rn && (r[d] == '.' || r[d] == ')') && r[d + 1] == ' ') {
                    for (size_t k = 0; k < sp; k++)
                        if (sl_puts(l, " ", base) < 0)
                            return ERR_NOMEM;
                    if (sl_put(l, r, d + 2, ST_BOLD) < 0 ||
                        md_inline(l, r + d + 2, rn - d - 2, base) < 0)
                        return ERR_NOMEM;
                    l->indent = (int)(sp + d + 2);
                } else {
                    if (md_inline(l, t, len, base) < 0)
                        return ERR_NOMEM;
                    l->indent = (int)sp;
                }
            }
        }
        if (last)
            break;
        i = e + 1;
    }
    if (nrows && render_table(rows, nrows, width, base, out) < 0)
        return ERR_NOMEM;
    return 0;
}
