/*
 * transcript.c - the transcript model and its layout (see transcript.h).
 */
#include "ui/transcript.h"

#include "common/ckd.h"
#include "common/err.h"
#include "ui/md.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOOL_PREVIEW_LINES 4

void tr_init(struct transcript *t)
{
    memset(t, 0, sizeof *t);
    t->show_reasoning = 1;
}

static void block_free(struct tr_block *b)
{
    buf_free(&b->text);
    free(b->summary);
    sl_list_free(&b->lines);
    free(b->rows);
}

void tr_clear(struct transcript *t)
{
    for (int i = 0; i < t->n; i++)
        block_free(&t->b[i]);
    t->n = 0;
    t->open = 0;
    t->total_rows = 0;
}

void tr_free(struct transcript *t)
{
    tr_clear(t);
    free(t->b);
    t->b = NULL;
    t->cap = 0;
}

static struct tr_block *new_block(struct transcript *t, enum tr_kind kind)
{
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 32;
        size_t bytes;
        if (cap < t->cap || ckd_mul_sz(&bytes, (size_t)cap, sizeof *t->b)) {
            err_set(ERR_NOMEM, "transcript: too many blocks");
            return NULL;
        }
        struct tr_block *v = realloc(t->b, bytes);
        if (!v) {
            err_set(ERR_NOMEM, "transcript: out of memory");
            return NULL;
        }
        t->b = v;
        t->cap = cap;
    }
    struct tr_block *b = &t->b[t->n++];
    memset(b, 0, sizeof *b);
    b->kind = kind;
    t->open = 0;
    return b;
}

int tr_add(struct transcript *t, enum tr_kind kind, const char *text, size_t n)
{
    struct tr_block *b = new_block(t, kind);
    if (!b || buf_append(&b->text, text, n) < 0)
        return ERR_NOMEM;
    return 0;
}

int tr_stream(struct transcript *t, enum tr_kind kind, const char *text, size_t n)
{
    struct tr_block *b = t->n && t->open ? &t->b[t->n - 1] : NULL;
    if (!b || b->kind != kind) {
        if (!(b = new_block(t, kind)))
            return ERR_NOMEM;
        t->open = 1;
    }
    b->width = 0;
    return buf_append(&b->text, text, n);
}

void tr_close(struct transcript *t) { t->open = 0; }

int tr_tool(struct transcript *t, const char *id, const char *name, const char *summary)
{
    struct tr_block *b = new_block(t, TR_TOOL);
    if (!b)
        return ERR_NOMEM;
    snprintf(b->id, sizeof b->id, "%s", id ? id : "");
    snprintf(b->name, sizeof b->name, "%s", name ? name : "?");
    if (!(b->summary = strdup(summary ? summary : "")))
        return err_set(ERR_NOMEM, "tr_tool: out of memory");
    b->status = TR_RUNNING;
    return 0;
}

int tr_tool_done(struct transcript *t, const char *id, int status, double elapsed_s,
                 const char *result, size_t n)
{
    for (int i = t->n - 1; i >= 0; i--) {
        struct tr_block *b = &t->b[i];
        if (b->kind != TR_TOOL || strcmp(b->id, id ? id : ""))
            continue;
        b->status = status;
        b->elapsed_s = elapsed_s;
        b->width = 0;
        buf_reset(&b->text);
        return buf_append(&b->text, result ? result : "", result ? n : 0);
    }
    return 0;
}

void tr_invalidate(struct transcript *t)
{
    for (int i = 0; i < t->n; i++)
        t->b[i].width = 0;
}

/* ---- building a block's logical lines */

static int plain_lines(struct sl_list *L, const char *text, size_t n, const char *first_prefix,
                       const char *prefix, int style, int pstyle, int max_lines, int *more)
{
    size_t i = 0;
    int k = 0;
    if (more)
        *more = 0;
    while (i <= n) {
        size_t e = i;
        while (e < n && text[e] != '\n')
            e++;
        if (e >= n && e == i && i > 0 && k > 0)
            break; /* a trailing newline */
        if (max_lines > 0 && k >= max_lines) {
            /* count the rest for the "… N more lines" hint */
            int rest = 0;
            for (size_t z = i; z < n; z++)
                if (text[z] == '\n' && z + 1 < n)
                    rest++;
            if (more)
                *more = rest + 1;
            break;
        }
        struct sline *l = sl_add(L);
        const char *p = k == 0 ? first_prefix : prefix;
        if (!l || sl_puts(l, p, pstyle) < 0)
            return ERR_NOMEM;
        int st = style;
        /* diffs inside tool results are coloured by line */
        if (style == ST_CODE && e > i) {
            if (text[i] == '+' && !(e - i >= 3 && !memcmp(text + i, "+++", 3)))
                st = ST_ADD;
            else if (text[i] == '-' && !(e - i >= 3 && !memcmp(text + i, "---", 3)))
                st = ST_DEL;
            else if (e - i >= 2 && !memcmp(text + i, "@@", 2))
                st = ST_HUNK;
            else
                st = ST_DIM;
        }
        if (sl_put(l, text + i, e - i, st) < 0)
            return ERR_NOMEM;
        l->indent = uw_width(p, strlen(p));
        k++;
        if (e >= n)
            break;
        i = e + 1;
    }
    return 0;
}

static int has_diff(const char *s, size_t n)
{
    for (size_t i = 0; i + 3 <= n; i++)
        if ((i == 0 || s[i - 1] == '\n') && !memcmp(s + i, "@@ ", 3))
            return 1;
    return 0;
}

static int count_lines(const char *s, size_t n)
{
    int k = n ? 1 : 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '\n')
            k++;
    return k;
}

static int build(const struct transcript *t, struct tr_block *b, int width)
{
    struct sl_list *L = &b->lines;
    const char *s = b->text.p ? b->text.p : "";
    size_t n = b->text.len;
    char tmp[160];
    switch (b->kind) {
    case TR_USER: return plain_lines(L, s, n, "› ", "  ", ST_USER, ST_USER, 0, NULL);
    case TR_REASONING: {
        struct sline *l = sl_add(L);
        int show = t->show_reasoning ^ b->flip;
        snprintf(tmp, sizeof tmp, "%s thinking (%zu chars, ~%zu tokens)%s", show ? "▾" : "▸", n,
                 (n + 3) / 4, show ? "" : "  Ctrl+G shows it");
        if (!l || sl_puts(l, tmp, ST_DIM) < 0)
            return ERR_NOMEM;
        if (!show)
            return 0;
        /* skip the blank lines the model starts its reasoning with */
        while (n && (*s == '\n' || *s == ' ')) {
            s++;
            n--;
        }
        return n ? plain_lines(L, s, n, "│ ", "│ ", ST_DIM, ST_DIM, 0, NULL) : 0;
    }
    case TR_ANSWER: {
        while (n && *s == '\n') {
            s++;
            n--;
        }
        return md_render(s, n, width, ST_NORMAL, L);
    }
    case TR_NOTICE: return md_render(s, n, width, ST_DIM, L);
    case TR_ERROR: return plain_lines(L, s, n, "✗ ", "  ", ST_ERR, ST_ERR, 0, NULL);
    case TR_TOOL: {
        struct sline *l = sl_add(L);
        if (!l || sl_puts(l, "⏺ ", b->status == TR_FAILED ? ST_ERR : ST_TOOL) < 0 ||
            sl_puts(l, b->name, ST_TOOL) < 0)
            return ERR_NOMEM;
        if (b->summary && b->summary[0] &&
            (sl_puts(l, " ", ST_NORMAL) < 0 || sl_puts(l, b->summary, ST_NORMAL) < 0))
            return ERR_NOMEM;
        switch (b->status) {
        case TR_RUNNING: snprintf(tmp, sizeof tmp, "  running…"); break;
        case TR_OK: snprintf(tmp, sizeof tmp, "  ✓ %.1fs", b->elapsed_s); break;
        case TR_FAILED: snprintf(tmp, sizeof tmp, "  ✗ failed %.1fs", b->elapsed_s); break;
        default: snprintf(tmp, sizeof tmp, "  ⊘ denied"); break;
        }
        if (sl_puts(l, tmp,
                    b->status == TR_OK        ? ST_OK
                    : b->status == TR_RUNNING ? ST_DIM
                                              : ST_ERR) < 0)
            return ERR_NOMEM;
        l->indent = 2;
        if (b->status == TR_RUNNING || !n)
            return 0;
        int more = 0, diff = has_diff(s, n);
        int max = t->expand_tools ^ b->flip ? 0 : diff ? 24 : TOOL_PREVIEW_LINES;
        if (plain_lines(L, s, n, "  ⎿ ", "    ", diff ? ST_CODE : ST_DIM, ST_DIM, max, &more) < 0)
            return ERR_NOMEM;
        if (more) {
            snprintf(tmp, sizeof tmp, "    … %d more lines (%d in all, Ctrl+O expands)", more,
                     count_lines(s, n));
            if (!(l = sl_add(L)) || sl_puts(l, tmp, ST_DIM) < 0)
                return ERR_NOMEM;
            l->indent = 4;
        }
        return 0;
    }
    }
    return 0;
}

static int layout_block(const struct transcript *t, struct tr_block *b, int width)
{
    sl_list_reset(&b->lines);
    free(b->rows);
    b->rows = NULL;
    b->nrows = 0;
    if (build(t, b, width) < 0)
        return ERR_NOMEM;
    int cap = 0;
    for (int i = 0; i < b->lines.n; i++) {
        struct sline *l = &b->lines.v[i];
        struct uw_line *v;
        int nv;
        if (uw_wrap(l->t, l->len, width, l->indent, &v, &nv) < 0)
            return ERR_NOMEM;
        for (int k = 0; k < nv; k++) {
            if (b->nrows == cap) {
                int nc = cap ? cap * 2 : 16;
                size_t bytes;
                struct tr_row *r = NULL;
                if (nc > cap && !ckd_mul_sz(&bytes, (size_t)nc, sizeof *r))
                    r = realloc(b->rows, bytes);
                if (!r) {
                    free(v);
                    return err_set(ERR_NOMEM, "transcript: out of memory");
                }
                b->rows = r;
                cap = nc;
            }
            b->rows[b->nrows++] = (struct tr_row){ i, v[k] };
        }
        free(v);
    }
    b->width = width;
    return 0;
}

long tr_layout(struct transcript *t, int width)
{
    long total = 0;
    for (int i = 0; i < t->n; i++) {
        struct tr_block *b = &t->b[i];
        if (b->width != width && layout_block(t, b, width) < 0)
            b->width = 0; /* out of memory: shown empty, tried again next frame */
        /* one blank row between blocks */
        total += b->nrows + (i > 0);
    }
    t->total_rows = total;
    return total;
}

void tr_rows(const struct transcript *t, long first, int count, tr_row_fn fn, void *ud)
{
    long row = 0;
    int y = 0;
    for (int i = 0; i < t->n && y < count; i++) {
        const struct tr_block *b = &t->b[i];
        if (i > 0) {
            if (row >= first)
                fn(ud, y++, NULL, NULL);
            row++;
        }
        if (row + b->nrows <= first) {
            row += b->nrows;
            continue;
        }
        for (int k = 0; k < b->nrows && y < count; k++, row++) {
            if (row < first)
                continue;
            fn(ud, y++, &b->lines.v[b->rows[k].line], &b->rows[k].v);
        }
    }
}

static void dump_row(void *ud, int y, const struct sline *l, const struct uw_line *v)
{
    struct buf *out = ud;
    if (l) {
        for (int k = 0; k < v->indent; k++)
            buf_putc(out, ' ');
        buf_append(out, l->t + v->off, v->len);
    }
    buf_putc(out, '\n');
}

int tr_dump(const struct transcript *t, struct buf *out)
{
    size_t before = out->len;
    tr_rows(t, 0, t->total_rows > 0x7fffffff ? 0x7fffffff : (int)t->total_rows, dump_row, out);
    return buf_puts(out, "") < 0 || out->len < before ? ERR_NOMEM : 0;
}

const char *tr_last_answer(const struct transcript *t)
{
    for (int i = t->n - 1; i >= 0; i--)
        if (t->b[i].kind == TR_ANSWER)
            return t->b[i].text.p ? t->b[i].text.p : "";
    return "";
}

int tr_toggle(struct transcript *t, int nth)
{
    int want = nth;
    for (int i = t->n - 1; i >= 0 && nth > 0; i--) {
        struct tr_block *b = &t->b[i];
        if ((b->kind == TR_TOOL || b->kind == TR_REASONING) && --nth == 0) {
            b->flip = !b->flip;
            b->width = 0;
            return 0;
        }
    }
    return err_set(ERR_NOTFOUND, "tr_toggle: no tool card or reasoning block %d", want);
}

void tr_toggle_all(struct transcript *t, enum tr_kind kind)
{
    if (kind == TR_TOOL)
        t->expand_tools = !t->expand_tools;
    else
        t->show_reasoning = !t->show_reasoning;
    /* one key for all: the cards toggled one by one follow it again */
    for (int i = 0; i < t->n; i++)
        if (t->b[i].kind == kind)
            t->b[i].flip = 0;
    tr_invalidate(t);
}
