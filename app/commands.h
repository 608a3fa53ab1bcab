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

extern const struct command cmd_bench;
extern const struct command cmd_cache;
extern const struct command cmd_config;
extern const struct command cmd_generate;
extern const struct command cmd_inspect;
extern const struct command cmd_load;
extern const struct command cmd_logits;
extern const struct command cmd_mkmodel;
extern const struct command cmd_pull;
extern const struct command cmd_run;
extern const struct command cmd_sandbox;
extern const struct command cmd_sessions;
extern const struct command cmd_template;
extern const struct command cmd_tokenize;
extern const struct command cmd_tool;
extern const struct command cmd_toolcalls;
extern const struct command cmd_version;

#endif
