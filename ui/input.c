/*
 * input.c - the input editor (see input.h).
 */
#include "ui/input.h"

#include "common/ckd.h"
#include "common/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void in_init(struct input *in, int chip_lines)
{
    memset(in, 0, sizeof *in);
    in->hit = -1;
    in->chip_lines = chip_lines;
}

static void drop_chips(struct input *in)
{
    for (int i = 0; i < in->nchips; i++)
        free(in->chips[i].text);
    free(in->chips);
    in->chips = NULL;
    in->nchips = 0;
}

void in_free(struct input *in)
{
    buf_free(&in->b);
    buf_free(&in->query);
    for (int i = 0; i < in->nhist; i++)
        free(in->hist[i]);
    free(in->hist);
    free(in->draft);
    drop_chips(in);
    memset(in, 0, sizeof *in);
}

const char *in_text(const struct input *in) { return in->b.p ? in->b.p : ""; }

int in_empty(const struct input *in) { return in->b.len == 0; }

static int set_text(struct input *in, const char *s)
{
    buf_reset(&in->b);
    if (buf_puts(&in->b, s) < 0)
        return ERR_NOMEM;
    in->cur = in->b.len;
    return 0;
}

int in_insert(struct input *in, const char *s, size_t n)
{
    if (buf_reserve(&in->b, n) < 0)
        return ERR_NOMEM;
    if (!in->b.p && buf_puts(&in->b, "") < 0)
        return ERR_NOMEM;
    memmove(in->b.p + in->cur + n, in->b.p + in->cur, in->b.len - in->cur + 1);
    memcpy(in->b.p + in->cur, s, n);
    in->b.len += n;
    in->cur += n;
    return 0;
}

int in_paste(struct input *in, const char *s, size_t n)
{
    /* terminals send \r for newlines inside a paste (\r\n: one newline) */
    char *copy = malloc(n + 1);
    if (!copy)
        return err_set(ERR_NOMEM, "in_paste: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
            continue;
        copy[k++] = s[i] == '\r' ? '\n' : s[i];
    }
    copy[k] = 0;
    n = k;
    int lines = 1;
    for (size_t i = 0; i + 1 < n; i++)
        if (copy[i] == '\n')
            lines++;
    if (in->chip_lines <= 0 || lines <= in->chip_lines) {
        int rc = in_insert(in, copy, n);
        free(copy);
        return rc;
    }
    size_t bytes;
    if (ckd_mul_sz(&bytes, (size_t)in->nchips + 1, sizeof *in->chips)) {
        free(copy);
        return err_set(ERR_NOMEM, "in_paste: too many pastes");
    }
    struct in_chip *v = realloc(in->chips, bytes);
    if (!v) {
        free(copy);
        return err_set(ERR_NOMEM, "in_paste: out of memory");
    }
    in->chips = v;
    struct in_chip *c = &in->chips[in->nchips++];
    if (in->nchips == 1)
        snprintf(c->tag, sizeof c->tag, "[pasted %d lines]", lines);
    else
        snprintf(c->tag, sizeof c->tag, "[pasted %d lines #%d]", lines, in->nchips);
    c->text = copy;
    return in_insert(in, c->tag, strlen(c->tag));
}

/* Start of the code point before byte offset i. */
static size_t prev_cp(const char *s, size_t i)
{
    if (i == 0)
        return 0;
    i--;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    return i;
}

static size_t next_cp(const char *s, size_t n, size_t i)
{
    if (i >= n)
        return n;
    uint32_t cp;
    return i + (size_t)uw_next(s + i, n - i, &cp);
}

static void cut(struct input *in, size_t a, size_t b)
{
    if (b <= a)
        return;
    memmove(in->b.p + a, in->b.p + b, in->b.len - b + 1);
    in->b.len -= b - a;
    if (in->cur >= b)
        in->cur -= b - a;
    else if (in->cur > a)
        in->cur = a;
}

void in_backspace(struct input *in)
{
    if (in->cur == 0)
        return;
    for (int i = 0; i < in->nchips; i++) {
        size_t tl = strlen(in->chips[i].tag);
        if (in->cur >= tl && !memcmp(in->b.p + in->cur - tl, in->chips[i].tag, tl)) {
            cut(in, in->cur - tl, in->cur);
            return;
        }
    }
    cut(in, prev_cp(in->b.p, in->cur), in->cur);
}

void in_delete(struct input *in)
{
    if (in->cur < in->b.len)
        cut(in, in->cur, next_cp(in->b.p, in->b.len, in->cur));
}

void in_left(struct input *in)
{
    if (in->cur)
        in->cur = prev_cp(in->b.p, in->cur);
}

void in_right(struct input *in) { in->cur = next_cp(in->b.p, in->b.len, in->cur); }

static size_t line_start(const struct input *in, size_t i)
{
    while (i > 0 && in->b.p[i - 1] != '\n')
        i--;
    return i;
}

static size_t line_end(const struct input *in, size_t i)
{
    while (i < in->b.len && in->b.p[i] != '\n')
        i++;
    return i;
}

void in_home(struct input *in) { in->cur = line_start(in, in->cur); }

void in_end(struct input *in) { in->cur = line_end(in, in->cur); }

void in_kill_end(struct input *in)
{
    size_t e = line_end(in, in->cur);
    if (e == in->cur && e < in->b.len)
        e++; /* at the end of a line: join the next one */
    cut(in, in->cur, e);
}

void in_kill_start(struct input *in) { cut(in, line_start(in, in->cur), in->cur); }

void in_kill_word(struct input *in)
{
    size_t i = in->cur;
    while (i > 0 && (in->b.p[i - 1] == ' ' || in->b.p[i - 1] == '\n'))
        i--;
    while (i > 0 && in->b.p[i - 1] != ' ' && in->b.p[i - 1] != '\n')
        i--;
    cut(in, i, in->cur);
}

void in_clear(struct input *in)
{
    buf_reset(&in->b);
    in->cur = 0;
    in->hpos = in->nhist;
    drop_chips(in);
}

static void hist_go(struct input *in, int pos)
{
    if (pos < 0 || pos > in->nhist || pos == in->hpos)
        return;
    if (in->hpos == in->nhist) {
        free(in->draft);
        in->draft = strdup(in_text(in));
    }
    in->hpos = pos;
    set_text(in, pos == in->nhist ? (in->draft ? in->draft : "") : in->hist[pos]);
}

void in_up(struct input *in)
{
    size_t s = line_start(in, in->cur);
    if (s > 0) {
        /* same column (in bytes, good enough for a prompt) on the line above */
        size_t col = in->cur - s, ps = line_start(in, s - 1);
        size_t pe = s - 1;
        in->cur = ps + col < pe ? ps + col : pe;
        while (in->cur > 0 && ((unsigned char)in->b.p[in->cur] & 0xC0) == 0x80)
            in->cur--;
        return;
    }
    hist_go(in, in->hpos - 1);
}

void in_down(struct input *in)
{
    size_t e = line_end(in, in->cur);
    if (e < in->b.len) {
        size_t col = in->cur - line_start(in, in->cur), ns = e + 1;
        size_t ne = line_end(in, ns);
        in->cur = ns + col < ne ? ns + col : ne;
        while (in->cur > 0 && in->cur < in->b.len &&
               ((unsigned char)in->b.p[in->cur] & 0xC0) == 0x80)
            in->cur--;
        return;
    }
    hist_go(in, in->hpos + 1);
}

int in_hist_add(struct input *in, const char *s)
{
    if (!s[0] || (in->nhist && !strcmp(in->hist[in->nhist - 1], s)))
        return 0;
    if (in->nhist == in->hcap) {
        int cap = in->hcap ? in->hcap * 2 : 32;
        size_t bytes;
        if (ckd_mul_sz(&bytes, (size_t)cap, sizeof *in->hist))
            return err_set(ERR_NOMEM, "in_hist_add: too many entries");
        char **v = realloc(in->hist, bytes);
        if (!v)
            return err_set(ERR_NOMEM, "in_hist_add: out of memory");
        in->hist = v;
        in->hcap = cap;
    }
    if (!(in->hist[in->nhist] = strdup(s)))
        return err_set(ERR_NOMEM, "in_hist_add: out of memory");
    in->nhist++;
    return 0;
}

int in_take(struct input *in, char **out)
{
    struct buf r = { 0 };
    const char *t = in_text(in);
    size_t n = in->b.len, i = 0;
    while (i < n) {
        int hit = -1;
        if (t[i] == '[')
            for (int k = 0; k < in->nchips && hit < 0; k++) {
                size_t tl = strlen(in->chips[k].tag);
                if (i + tl <= n && !memcmp(t + i, in->chips[k].tag, tl))
                    hit = k;
            }
        if (hit >= 0) {
            if (buf_puts(&r, in->chips[hit].text) < 0)
                goto oom;
            i += strlen(in->chips[hit].tag);
        } else {
            if (buf_putc(&r, t[i]) < 0)
                goto oom;
            i++;
        }
    }
    if (buf_puts(&r, "") < 0)
        goto oom;
    /* history keeps what was typed (chips stay short there) */
    if (in_hist_add(in, t) < 0)
        goto oom;
    in_clear(in);
    *out = buf_detach(&r);
    return 0;
oom:
    buf_free(&r);
    return ERR_NOMEM;
}

/* ---- reverse search */

static void search_from(struct input *in, int start)
{
    in->hit = -1;
    for (int k = start; k >= 0; k--)
        if (strstr(in->hist[k], in->query.p ? in->query.p : "")) {
            in->hit = k;
            return;
        }
}

void in_search_start(struct input *in)
{
    in->searching = 1;
    buf_reset(&in->query);
    in->hit = in->nhist ? in->nhist - 1 : -1;
}

int in_search_type(struct input *in, const char *s, size_t n)
{
    if (buf_append(&in->query, s, n) < 0)
        return ERR_NOMEM;
    search_from(in, in->hit >= 0 ? in->hit : in->nhist - 1);
    return 0;
}

void in_search_backspace(struct input *in)
{
    if (in->query.len) {
        in->query.len = prev_cp(in->query.p, in->query.len);
        in->query.p[in->query.len] = 0;
    }
    search_from(in, in->nhist - 1);
}

void in_search_again(struct input *in)
{
    if (in->hit > 0)
        search_from(in, in->hit - 1);
}

void in_search_accept(struct input *in)
{
    if (in->hit >= 0 && in->hit < in->nhist)
        set_text(in, in->hist[in->hit]);
    in->searching = 0;
}

void in_search_cancel(struct input *in)
{
    in->searching = 0;
    in->hit = -1;
}

const char *in_search_match(const struct input *in)
{
    return in->hit >= 0 && in->hit < in->nhist ? in->hist[in->hit] : NULL;
}

/* ---- layout */

int in_layout(const struct input *in, int width, struct uw_line **lines, int *n, int *cur_row,
              int *cur_col)
{
    const char *t = in_text(in);
    size_t len = in->b.len, i = 0;
    struct uw_line *all = NULL;
    int na = 0;
    *cur_row = *cur_col = 0;
    for (;;) {
        size_t e = i;
        while (e < len && t[e] != '\n')
            e++;
        struct uw_line *v;
        int nv;
        if (uw_wrap(t + i, e - i, width, 0, &v, &nv) < 0) {
            free(all);
            return ERR_NOMEM;
        }
        size_t bytes;
        if (ckd_mul_sz(&bytes, (size_t)na + (size_t)nv, sizeof *all)) {
            free(v);
            free(all);
            return err_set(ERR_NOMEM, "in_layout: too many lines");
        }
        struct uw_line *p = realloc(all, bytes ? bytes : sizeof *all);
        if (!p) {
            free(v);
            free(all);
            return err_set(ERR_NOMEM, "in_layout: out of memory");
        }
        all = p;
        for (int k = 0; k < nv; k++) {
            v[k].off += i;
            all[na + k] = v[k];
            /* the cursor is on the visual line whose range holds it (the
             * last one when it sits at the end of the logical line) */
            size_t a = v[k].off, b = k + 1 < nv ? v[k + 1].off : e;
            if (in->cur >= a && (in->cur < b || (k + 1 == nv && in->cur <= e))) {
                *cur_row = na + k;
                *cur_col = uw_width(t + a, in->cur - a);
                if (*cur_col >= width) {
                    /* exactly at the edge: the cursor goes to a new row */
                    *cur_col = 0;
                    *cur_row = na + k + 1;
                }
            }
        }
        na += nv;
        free(v);
        if (e >= len)
            break;
        i = e + 1;
    }
    *lines = all;
    *n = na;
    return 0;
}
