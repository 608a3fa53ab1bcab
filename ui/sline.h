/*
 * sline.h - styled text for the terminal (sl_, uw_): a logical line is UTF-8
 * text with one style byte per text byte; wrapping cuts it into visual lines
 * by display columns (wide characters take 2, combining marks 0), so the
 * transcript can be re-wrapped from its own model at any width.
 *
 *     struct sl_list L = {0};
 *     struct sline *l = sl_add(&L);
 *     sl_put(l, "hello ", 6, ST_NORMAL); sl_put(l, "world", 5, ST_BOLD);
 *     struct uw_line *v; int n;
 *     uw_wrap(l->t, l->len, 80, l->indent, &v, &n);   // caller frees v
 *     sl_list_free(&L);
 *
 * Nothing here calls curses: it is the pure half the unit tests check.
 */
#ifndef LODE_UI_SLINE_H
#define LODE_UI_SLINE_H

#include <stddef.h>
#include <stdint.h>

/* The palette every part of the UI draws with; ui/term.c maps it to colours
 * or, without colours, to attributes. */
enum ui_style {
    ST_NORMAL,
    ST_DIM, /* reasoning, hints */
    ST_BOLD,
    ST_ITALIC,
    ST_CODE, /* inline and fenced code */
    ST_HEAD, /* Markdown headings */
    ST_QUOTE,
    ST_USER, /* the user's turns */
    ST_ADD,  /* diff + lines */
    ST_DEL,  /* diff - lines */
    ST_HUNK, /* diff @@ lines */
    ST_ERR,
    ST_OK,
    ST_TOOL,    /* tool card titles */
    ST_KEYWORD, /* code colouring */
    ST_STRING,
    ST_COMMENT,
    ST_WARN, /* approval prompt */
    ST_BAR,  /* the status line */
    ST_NSTYLES
};

struct sline {
    char *t;          /* owned text, NUL-terminated */
    unsigned char *s; /* one ui_style per byte of t */
    size_t len, cap;
    int indent; /* columns continuation lines are indented by */
};

struct sl_list {
    struct sline *v;
    int n, cap;
};

/* Appends n bytes in one style (tabs become spaces, other control bytes '?',
 * so what is stored is what is drawn). */
int sl_put(struct sline *l, const char *t, size_t n, int style);
int sl_puts(struct sline *l, const char *t, int style);
void sl_free(struct sline *l);
/* A new empty line at the end of L (NULL when out of memory). */
struct sline *sl_add(struct sl_list *L);
void sl_list_reset(struct sl_list *L);
void sl_list_free(struct sl_list *L);

/* Decodes one code point at s (n > 0 bytes available); returns its length.
 * Invalid bytes decode as U+FFFD with length 1, so any input advances. */
int uw_next(const char *s, size_t n, uint32_t *cp);
/* Columns one code point takes: 0 combining / zero-width, 2 wide (CJK,
 * emoji), 1 otherwise (also unprintable ones, drawn as a replacement). */
int uw_cp_width(uint32_t cp);
/* Columns of s[0..n). */
int uw_width(const char *s, size_t n);
/* The longest prefix of s[0..n) that fits in cols columns (never splitting
 * a character or detaching its combining marks); *used gets its width. */
size_t uw_fit(const char *s, size_t n, int cols, int *used);

struct uw_line {
    size_t off, len; /* bytes of the source line */
    int indent;      /* columns to leave blank before it */
    int cols;        /* its width (without indent) */
};
/* Cuts s[0..n) (one logical line, no newlines) into visual lines of at most
 * width columns, breaking after spaces where it can, continuation lines
 * indented by indent columns (clamped so at least half the width remains).
 * An empty line gives one empty visual line. Caller frees *out. */
int uw_wrap(const char *s, size_t n, int width, int indent, struct uw_line **out, int *nout);

/* Status-line pieces: a count ("950", "1.2k", "35k", "1.5M"); a bar of
 * cells "█"/"░" (3 bytes each) for frac in [0, 1]; the prefill indicator
 * " · prefill ████░░░░ 1.2k/4.0k ETA 12s" ("" when no prefill runs: total
 * <= 0 or done >= total; no ETA when eta_s < 0). Return: bytes written. */
void sl_fmt_count(char *out, size_t cap, long n);
void sl_bar(char *out, size_t cap, double frac, int cells);
int sl_fmt_prefill(char *out, size_t cap, long done, long total, double eta_s);

#endif
