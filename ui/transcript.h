/*
 * transcript.h - the conversation as the screen shows it (tr_): blocks of
 * user turns, streamed reasoning and answers, tool cards and notices, laid
 * out into visual rows at a given width. The layout is recomputed from the
 * blocks (never from screen cells), so a resize re-wraps everything; each
 * block caches its rows until it changes or the width does.
 */
#ifndef LODE_UI_TRANSCRIPT_H
#define LODE_UI_TRANSCRIPT_H

#include "common/buf.h"
#include "ui/sline.h"

enum tr_kind { TR_USER, TR_REASONING, TR_ANSWER, TR_TOOL, TR_NOTICE, TR_ERROR };
enum tr_tool_status { TR_RUNNING, TR_OK, TR_FAILED, TR_DENIED };

struct tr_row {
    int line;         /* index into the block's lines */
    struct uw_line v; /* the part of that line this row shows */
};

struct tr_block {
    enum tr_kind kind;
    struct buf text; /* user text, reasoning, answer, notice, error; tool: result */
    char id[64];     /* tool-call id */
    char name[64];   /* tool name */
    char *summary;   /* tool: one-line arguments summary */
    int status;      /* enum tr_tool_status */
    double elapsed_s;
    int flip; /* tool output / reasoning shown the other way from the global toggle */
    /* layout cache */
    struct sl_list lines;
    struct tr_row *rows;
    int nrows;
    int width; /* the width rows were made for; 0: stale */
};

struct transcript {
    struct tr_block *b;
    int n, cap;
    int open;           /* the last block still receives streamed text */
    int show_reasoning; /* reasoning expanded (else one summary line) */
    int expand_tools;   /* tool output in full (else its first lines) */
    long total_rows;    /* at the last tr_layout */
};

void tr_init(struct transcript *t);
void tr_free(struct transcript *t);
void tr_clear(struct transcript *t);

int tr_add(struct transcript *t, enum tr_kind kind, const char *text, size_t n);
/* Appends streamed text to the open block of that kind, or starts one. */
int tr_stream(struct transcript *t, enum tr_kind kind, const char *text, size_t n);
/* Ends streaming: the next tr_stream starts a new block. */
void tr_close(struct transcript *t);
int tr_tool(struct transcript *t, const char *id, const char *name, const char *summary);
/* Finds the card of id (the newest) and records its outcome. */
int tr_tool_done(struct transcript *t, const char *id, int status, double elapsed_s,
                 const char *result, size_t n);
/* Marks every block stale (after toggling what is shown). */
void tr_invalidate(struct transcript *t);

/* Toggles one tool card's output or one reasoning block: the nth of them
 * counted from the newest (1). ERR_NOTFOUND when there are fewer. */
int tr_toggle(struct transcript *t, int nth);
/* Ctrl+O (TR_TOOL) / Ctrl+G (TR_REASONING): toggles all of that kind. */
void tr_toggle_all(struct transcript *t, enum tr_kind kind);
/* Lays out every block for width; returns the total number of rows. */
long tr_layout(struct transcript *t, int width);
/* Calls fn for rows [first, first + count) of the last layout. */
typedef void (*tr_row_fn)(void *ud, int y, const struct sline *l, const struct uw_line *v);
void tr_rows(const struct transcript *t, long first, int count, tr_row_fn fn, void *ud);
/* The rows as plain text, one per line (tests and snapshots). */
int tr_dump(const struct transcript *t, struct buf *out);

/* The last answer block's text ("" when none). */
const char *tr_last_answer(const struct transcript *t);

#endif
