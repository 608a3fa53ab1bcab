/*
 * sline.c - styled lines and column-aware wrapping (see sline.h).
 */
#include "ui/sline.h"

#include "common/ckd.h"
#include "common/err.h"
#include "common/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

static int sl_grow(struct sline *l, size_t extra)
{
    size_t need;
    if (ckd_add_sz(&need, l->len, extra) || ckd_add_sz(&need, need, 1))
        return err_set(ERR_NOMEM, "sl_put: line too long");
    if (need <= l->cap)
        return 0;
    size_t cap = l->cap ? l->cap : 64;
    while (cap < need)
        if (ckd_mul_sz(&cap, cap, 2))
            return err_set(ERR_NOMEM, "sl_put: line too long");
    char *t = realloc(l->t, cap);
    if (!t)
        return err_set(ERR_NOMEM, "sl_put: out of memory");
    l->t = t;
    unsigned char *s = realloc(l->s, cap);
    if (!s)
        return err_set(ERR_NOMEM, "sl_put: out of memory");
    l->s = s;
    l->cap = cap;
    return 0;
}

int sl_put(struct sline *l, const char *t, size_t n, int style)
{
    /* a tab may grow to 4 bytes */
    size_t room;
    if (ckd_mul_sz(&room, n, 4))
        return err_set(ERR_NOMEM, "sl_put: line too long");
    if (sl_grow(l, room) < 0)
        return ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '\t') {
            for (int k = 0; k < 4; k++) {
                l->t[l->len] = ' ';
                l->s[l->len++] = (unsigned char)style;
            }
            continue;
        }
        l->t[l->len] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
        l->s[l->len++] = (unsigned char)style;
    }
    l->t[l->len] = 0;
    return 0;
}

int sl_puts(struct sline *l, const char *t, int style) { return sl_put(l, t, strlen(t), style); }

void sl_free(struct sline *l)
{
    free(l->t);
    free(l->s);
    memset(l, 0, sizeof *l);
}

struct sline *sl_add(struct sl_list *L)
{
    if (L->n == L->cap) {
        int cap = L->cap ? L->cap * 2 : 16;
        size_t bytes;
        if (cap < L->cap || ckd_mul_sz(&bytes, (size_t)cap, sizeof *L->v)) {
            err_set(ERR_NOMEM, "sl_add: too many lines");
            return NULL;
        }
        struct sline *v = realloc(L->v, bytes);
        if (!v) {
            err_set(ERR_NOMEM, "sl_add: out of memory");
            return NULL;
        }
        L->v = v;
        L->cap = cap;
    }
    struct sline *l = &L->v[L->n++];
    memset(l, 0, sizeof *l);
    /* an empty line is still a valid string */
    if (sl_grow(l, 0) < 0) {
        L->n--;
        return NULL;
    }
    l->t[0] = 0;
    return l;
}

void sl_list_reset(struct sl_list *L)
{
    for (int i = 0; i < L->n; i++)
        sl_free(&L->v[i]);
    L->n = 0;
}

void sl_list_free(struct sl_list *L)
{
    sl_list_reset(L);
    free(L->v);
    memset(L, 0, sizeof *L);
}

int uw_next(const char *s, size_t n, uint32_t *cp)
{
    int k = utf8_decode(s, n, cp);
    if (k <= 0) {
        *cp = 0xFFFD;
        return 1;
    }
    return k;
}

int uw_cp_width(uint32_t cp)
{
    if (cp < 0x20 || cp == 0x7f)
        return 1;
    if (cp < 0x7f)
        return 1;
    /* zero-width joiner and variation selectors glue emoji sequences */
    if (cp == 0x200d || (cp >= 0xfe00 && cp <= 0xfe0f))
        return 0;
    int w = wcwidth((wchar_t)cp);
    if (w < 0)
        return 1;
    return w > 2 ? 2 : w;
}

int uw_width(const char *s, size_t n)
{
    int cols = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += (size_t)uw_next(s + i, n - i, &cp);
        cols += uw_cp_width(cp);
    }
    return cols;
}

size_t uw_fit(const char *s, size_t n, int cols, int *used)
{
    size_t i = 0;
    int w = 0;
    while (i < n) {
        uint32_t cp;
        int k = uw_next(s + i, n - i, &cp);
        int cw = uw_cp_width(cp);
        if (w + cw > cols)
            break;
        w += cw;
        i += (size_t)k;
    }
    if (used)
        *used = w;
    return i;
}

static int push(struct uw_line **v, int *n, int *cap, size_t off, size_t len, int indent, int cols)
{
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        size_t bytes;
        if (nc < *cap || ckd_mul_sz(&bytes, (size_t)nc, sizeof **v))
            return err_set(ERR_NOMEM, "uw_wrap: too many lines");
        struct uw_line *p = realloc(*v, bytes);
        if (!p)
            return err_set(ERR_NOMEM, "uw_wrap: out of memory");
        *v = p;
        *cap = nc;
    }
    (*v)[(*n)++] = (struct uw_line){ off, len, indent, cols };
    return 0;
}

int uw_wrap(const char *s, size_t n, int width, int indent, struct uw_line **out, int *nout)
{
    *out = NULL;
    *nout = 0;
    if (width < 1)
        width = 1;
    if (indent < 0)
        indent = 0;
    if (indent > width / 2)
        indent = width / 2;
    struct uw_line *v = NULL;
    int nv = 0, cap = 0;
    size_t i = 0;
    int first = 1;
    do {
        int avail = first ? width : width - indent;
        int ind = first ? 0 : indent;
        /* continuation lines do not start with the spaces we broke at */
        if (!first) {
            while (i < n && s[i] == ' ')
                i++;
            if (i == n)
                break;
        }
        int used;
        size_t fit = uw_fit(s + i, n - i, avail, &used);
        if (fit == 0 && i < n) {
            /* a character wider than the line: take it anyway so we advance */
            uint32_t cp;
            fit = (size_t)uw_next(s + i, n - i, &cp);
            used = uw_cp_width(cp);
        }
        size_t take = fit;
        if (i + fit < n) {
            /* break after the last space inside the fitting part, if any */
            size_t sp = fit;
            while (sp > 0 && s[i + sp - 1] != ' ')
                sp--;
            if (sp > 0 && s[i + fit] != ' ')
                take = sp;
            else if (s[i + fit] == ' ')
                take = fit;
        }
        int cols = uw_width(s + i, take);
        /* trailing spaces at a break are not drawn */
        size_t shown = take;
        if (i + take < n)
            while (shown > 0 && s[i + shown - 1] == ' ')
                shown--;
        if (shown != take)
            cols = uw_width(s + i, shown);
        if (push(&v, &nv, &cap, i, shown, ind, cols) < 0) {
            free(v);
            return ERR_NOMEM;
        }
        i += take;
        first = 0;
    } while (i < n);
    *out = v;
    *nout = nv;
    return 0;
}

void sl_fmt_count(char *out, size_t cap, long n)
{
    if (n >= 1000000)
        snprintf(out, cap, "%.1fM", n / 1e6);
    else if (n >= 10000)
        snprintf(out, cap, "%ldk", n / 1000);
    else if (n >= 1000)
        snprintf(out, cap, "%.1fk", n / 1e3);
    else
        snprintf(out, cap, "%ld", n);
}

void sl_bar(char *out, size_t cap, double frac, int cells)
{
    size_t k = 0;
    if (!(frac >= 0)) /* also NaN */
        frac = 0;
    if (frac > 1)
        frac = 1;
    int full = (int)(frac * cells + 0.5);
    for (int i = 0; i < cells && k + 4 <= cap; i++) {
        memcpy(out + k, i < full ? "█" : "░", 3);
        k += 3;
    }
    if (cap)
        out[k] = 0;
}

int sl_fmt_prefill(char *out, size_t cap, long done, long total, double eta_s)
{
    if (!cap)
        return 0;
    out[0] = 0;
    if (total <= 0 || done >= total || done < 0)
        return 0;
    char br[64], a[32], b[32], e[32] = "";
    sl_bar(br, sizeof br, (double)done / (double)total, 12);
    sl_fmt_count(a, sizeof a, done);
    sl_fmt_count(b, sizeof b, total);
    if (eta_s >= 0 && eta_s < 1e6) {
        long s = (long)(eta_s + 0.5);
        if (s >= 90)
            snprintf(e, sizeof e, " ETA %ldm%02lds", s / 60, s % 60);
        else
            snprintf(e, sizeof e, " ETA %lds", s);
    }
    snprintf(out, cap, " · prefill %s %s/%s%s", br, a, b, e);
    return (int)strlen(out);
}
