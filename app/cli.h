/*
 * cli.h - the command table, exit codes and option parsing shared by every
 * subcommand.
 *
 * A subcommand is `int cmd_x(struct app *a, int argc, char **argv)` where
 * argv[0] is the command's name; it returns an exit code. Register it in the
 * table in app/main.c (one line) and give it a usage text.
 *
 * Option parsing, getopt_long-like but with one-line errors that exit 2, and
 * -h/--help answered here (the command's usage from the table in main.c, or
 * c.usage followed by the options table for sub-commands):
 *
 *     static const struct cli_opt opts[] = {
 *         {"tokenizer", 't', 1, "FILE", "tokenizer.json to load"},
 *         {"decode", 0, 0, NULL, "read ids, print text"},
 *         {0},
 *     };
 *     struct cli c;
 *     cli_init(&c, argc, argv);
 *     for (int o; (o = cli_next(&c, opts)) != CLI_END;) {
 *         if (o == CLI_EXIT) return c.exit;          // help shown, or a usage error printed
 *         if (o == CLI_POS) { positional: c.arg; continue; }
 *         switch (o) { case 0: path = c.arg; break; case 1: decode = 1; break; }
 *     }
 */
#ifndef LODE_APP_CLI_H
#define LODE_APP_CLI_H

#include "config/config.h"

#include <stdio.h>

enum {
    EXIT_OK = 0,
    EXIT_ERROR = 1, /* the work failed: bad input file, I/O error, model error */
    EXIT_USAGE = 2, /* bad command line or configuration */
    EXIT_TURNS = 3, /* lode run: the turn limit was reached */
};

struct app {
    struct cfg cfg;
    char cwd[4096];
};

struct cli_opt {
    const char *name; /* long name without "--" */
    char short_name;  /* 0 for none */
    int has_arg;
    const char *arg_name; /* for help: "FILE" */
    const char *help;
};

enum { CLI_END = -1, CLI_POS = -2, CLI_EXIT = -3 };

struct cli {
    int argc;
    char **argv;
    int i;             /* next argv index */
    int no_more;       /* after "--": everything is positional */
    const char *arg;   /* value of the last option or positional */
    const char *cmd;   /* argv[0], for messages and help */
    const char *usage; /* optional: help text for a sub-command that is not in the table */
    int exit;          /* with CLI_EXIT: EXIT_OK after help, EXIT_USAGE after an error */
};

void cli_init(struct cli *c, int argc, char **argv);
/* Index of the matched option, CLI_POS (c->arg holds it), CLI_END, or
 * CLI_EXIT with c->exit set: EXIT_OK after printing the help for -h/--help,
 * EXIT_USAGE after printing "lode CMD: ..." on stderr. */
int cli_next(struct cli *c, const struct cli_opt *opts);

/* Prints the options table (for usage texts). */
void cli_print_opts(FILE *fp, const struct cli_opt *opts);

/* Prints "lode: <message>" for the current error and returns EXIT_ERROR. */
int cli_fail(void);
/* Prints "lode CMD: <formatted>" and returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Applies a flag that maps to a configuration key (--model DIR, --threads N):
 * origin "flag --name". Returns EXIT_OK or, after a message, EXIT_USAGE. */
int cli_cfg_flag(struct app *a, const char *cmd, const char *key, const char *flag,
                 const char *value);

/* Prints the usage of a command by name (lode help CMD). */
int app_print_usage(const char *name, FILE *fp);

#endif
