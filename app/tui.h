/*
 * tui.h - `lode` with no command: the interactive interface. The glue
 * between ui/ (the terminal) and the agent: the agent runs on a worker
 * thread; its events come back through a queue and a wake pipe to the one
 * thread that owns curses; approvals are asked there and answered back.
 */
#ifndef LODE_APP_TUI_H
#define LODE_APP_TUI_H

#include "app/cli.h"

struct tui_args {
    const char *backend; /* NULL: config key backend */
    const char *model;   /* NULL: config key model */
    const char *resume;  /* a session to continue, or NULL */
    int continue_last;   /* continue the newest session of the project (--continue) */
};

/* Runs the interface until the user quits; returns an exit code. */
int tui_main(struct app *a, const struct tui_args *args);

#endif
