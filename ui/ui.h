/*
 * ui.h - the terminal interface (ui_): one thread owns curses and calls
 * everything here. The caller (app/tui.c) feeds the transcript and the
 * status, and runs the loop:
 *
 *     struct ui *u;
 *     ui_open(&u, &opts);              // alternate screen, colours, signals
 *     for (;;) {
 *         struct ui_ev ev;
 *         ui_wait(u, wake_fd, &ev);    // draws (batched), reads keys
 *         switch (ev.kind) { case UI_EV_FD: drain the worker's queue ... }
 *     }
 *     ui_close(u);                     // the terminal as it was
 *
 * ui/ knows nothing about agents: texts in, key events out. The terminal is
 * restored on every exit path (ui_close, exit via atexit, fatal signals).
 */
#ifndef LODE_UI_UI_H
#define LODE_UI_UI_H

#include "ui/transcript.h"

#include <stddef.h>

struct ui_opts {
    int color;           /* -1 auto (NO_COLOR and the terminal decide), 0 never, 1 always */
    int mouse;           /* wheel scrolling (captures the mouse) */
    int chip_lines;      /* pastes longer than this collapse to a chip */
    const char *history; /* the history file (ui/history.h; copied), or NULL: none kept */
};

struct ui_status {
    char model[128]; /* short model name */
    char backend[32];
    int thinking;
    char mode[16];    /* approval mode */
    char sandbox[32]; /* sandbox level */
    long ctx_used, ctx_max;
    double tok_s; /* decode speed of the last generation */
    long reused;  /* cached tokens of the last prompt */
    long prefill_done, prefill_total;
    double prefill_eta_s; /* < 0 unknown */
    int busy;             /* a message is running */
    char activity[96];    /* "loading model…", "generating", ... ("" none) */
};

enum ui_ev_kind {
    UI_EV_NONE,
    UI_EV_FD,     /* the wake fd is readable */
    UI_EV_SUBMIT, /* text: a message or a /command (owned: free it) */
    UI_EV_STOP,   /* Esc (or Ctrl+C) while busy */
    UI_EV_QUIT,   /* Ctrl+C twice, Ctrl+D on empty input */
    UI_EV_MODE,   /* Shift+Tab: next approval mode */
    UI_EV_THINK,  /* Ctrl+T */
    UI_EV_ANSWER, /* the approval prompt: answer 'y', 'n' or 'a' */
};

struct ui_ev {
    enum ui_ev_kind kind;
    char *text;
    int answer;
};

struct ui;

int ui_open(struct ui **out, const struct ui_opts *o);
/* Leaves curses and restores the terminal; frees u (NULL is fine). */
void ui_close(struct ui *u);

struct transcript *ui_transcript(struct ui *u); /* add blocks, then ui_dirty */
void ui_dirty(struct ui *u);
void ui_set_status(struct ui *u, const struct ui_status *st);
const struct ui_status *ui_status(const struct ui *u);
/* A one-line hint above the input ("" clears it). */
void ui_hint(struct ui *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The approval prompt: question (one line) and details (shown on 'd'). */
int ui_ask(struct ui *u, const char *question, const char *details);
void ui_ask_done(struct ui *u);
/* Words Tab completes after a leading '/' (NULL-terminated, borrowed). */
void ui_set_commands(struct ui *u, const char *const *names);
/* Puts text into the input (a message typed before the model was ready). */
int ui_set_input(struct ui *u, const char *text);

/* Scrolls to the previous (older) row holding needle, starting above the
 * rows shown; returns 1 when found (the row is shown at the top). */
int ui_find(struct ui *u, const char *needle);

/* Draws if due (at most ~60 frames a second), waits for a key, the fd (-1:
 * none) or timeout_ms (-1: none), handles editing, scrolling, resizing and
 * suspending itself, and returns what the caller must act on (UI_EV_NONE
 * after a timeout or a key handled here). */
int ui_wait(struct ui *u, int fd, int timeout_ms, struct ui_ev *ev);
/* Draws now. */
void ui_draw(struct ui *u);

/* Leaves curses for an external program (shell command output) and back. */
void ui_leave(struct ui *u);
void ui_enter(struct ui *u);

/* Restores the terminal (async-signal-tolerant; safe to call twice). */
void ui_restore_terminal(void);

#endif
