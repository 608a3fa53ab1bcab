/*
 * input.h - the multi-line input editor (in_): UTF-8 text with a cursor,
 * history (up/down at the first/last line), reverse search (Ctrl+R), and
 * pasted blocks longer than a threshold shown as a "[pasted N lines]" chip
 * that expands back to the pasted text when the message is taken. Pure
 * logic; ui/term.c draws it and maps keys to these calls.
 */
#ifndef LODE_UI_INPUT_H
#define LODE_UI_INPUT_H

#include "common/buf.h"
#include "ui/sline.h"

struct in_chip {
    char tag[48]; /* the placeholder in the text */
    char *text;   /* what it stands for (owned) */
};

struct input {
    struct buf b; /* the text being edited (b.p may be NULL when empty) */
    size_t cur;   /* cursor, a byte offset on a code point boundary */
    char **hist;  /* oldest first */
    int nhist, hcap;
    int hpos;      /* == nhist: editing the draft */
    char *draft;   /* the text being edited before browsing history */
    int searching; /* Ctrl+R mode */
    struct buf query;
    int hit; /* history index of the current match, -1 none */
    struct in_chip *chips;
    int nchips;
    int chip_lines; /* pastes with more lines than this become chips (0: never) */
};

void in_init(struct input *in, int chip_lines);
void in_free(struct input *in);

const char *in_text(const struct input *in); /* "" when empty */
int in_empty(const struct input *in);

int in_insert(struct input *in, const char *s, size_t n);
/* A bracketed paste: inserted literally (newlines included), or as a chip. */
int in_paste(struct input *in, const char *s, size_t n);
void in_backspace(struct input *in); /* removes a whole chip tag before the cursor */
void in_delete(struct input *in);
void in_left(struct input *in);
void in_right(struct input *in);
void in_home(struct input *in); /* start of the current line */
void in_end(struct input *in);
void in_kill_end(struct input *in);   /* Ctrl+K */
void in_kill_start(struct input *in); /* Ctrl+U */
void in_kill_word(struct input *in);  /* Ctrl+W */
void in_clear(struct input *in);
/* Up/down: move between lines of the text; at the first (last) line, the
 * previous (next) history entry. */
void in_up(struct input *in);
void in_down(struct input *in);

/* Takes the message: chips expanded, added to history, editor cleared.
 * Caller frees *out. */
int in_take(struct input *in, char **out);
int in_hist_add(struct input *in, const char *s);

/* Reverse search over history: start, type (query grows), again (older
 * match), accept (match becomes the text), cancel (text as before). */
void in_search_start(struct input *in);
int in_search_type(struct input *in, const char *s, size_t n);
void in_search_backspace(struct input *in);
void in_search_again(struct input *in);
void in_search_accept(struct input *in);
void in_search_cancel(struct input *in);
const char *in_search_match(const struct input *in); /* NULL when none */

/* Wraps the text at width columns: *lines cover in->b (caller frees), and
 * the cursor's visual row and column. */
int in_layout(const struct input *in, int width, struct uw_line **lines, int *n, int *cur_row,
              int *cur_col);

#endif
