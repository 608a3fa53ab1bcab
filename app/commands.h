/*
 * commands.h - every subcommand, one `const struct command` each, defined in
 * its own app/cmd_*.c and listed in the table in app/main.c.
 */
#ifndef LODE_APP_COMMANDS_H
#define LODE_APP_COMMANDS_H

#include "app/cli.h"

struct command {
    const char *name;
    int (*fn)(struct app *a, int argc, char **argv);
    const char *summary;        /* one line for lode --help */
    const char *usage;          /* full text for lode help NAME, starting "usage: lode NAME ..." */
    const struct cli_opt *opts; /* printed after the usage text; may be NULL */
};

extern const struct command cmd_config;
extern const struct command cmd_sessions;
extern const struct command cmd_version;

#endif
