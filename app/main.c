/*
 * main.c - the `lode` binary: global options, configuration, and dispatch to
 * the git-style subcommands listed below.
 *
 *   lode [-c key=value]... [COMMAND [ARGS...]]
 *
 * With no command it starts the interactive interface.
 */
#include "app/commands.h"
#include "app/tui.h"
#include "common/err.h"
#include "common/log.h"

#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LODE_VERSION "0.1.0"

static int help_run(struct app *a, int argc, char **argv);

static const struct command cmd_help = {
    "help", help_run, "show help for a command", "usage: lode help [COMMAND]\n", NULL,
};

/* One line per command, in the order --help lists them. */
/* clang-format off */
static const struct command *const commands[] = {
    &cmd_bench,
    &cmd_cache,
    &cmd_config,
    &cmd_generate,
    &cmd_help,
    &cmd_inspect,
    &cmd_load,
    &cmd_logits,
    &cmd_mkmodel,
    &cmd_pull,
    &cmd_run,
    &cmd_sandbox,
    &cmd_sessions,
    &cmd_template,
    &cmd_tokenize,
    &cmd_tool,
    &cmd_toolcalls,
    &cmd_version,
};
/* clang-format on */
#define NCOMMANDS (int)(sizeof commands / sizeof commands[0])

static const struct command *find_command(const char *name)
{
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(commands[i]->name, name))
            return commands[i];
    return NULL;
}

static void print_main_help(FILE *fp)
{
    fprintf(fp,
            "lode %s - a terminal coding agent with its own engine for Qwen3.6-35B-A3B\n\n"
            "usage: lode [-c key=value]... [--backend SPEC] [--model DIR] [COMMAND [ARGS...]]\n"
            "       lode [options] --resume ID | --continue\n\n"
            "With no command, lode starts the interactive interface.\n\n"
            "commands:\n",
            LODE_VERSION);
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(fp, "  %-12s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(fp, "\nglobal options:\n"
                "  -c key=value     set a configuration key for this run (see lode config)\n"
                "  --backend SPEC   auto|cpu|cuda|script:FILE|openai:URL (config key backend)\n"
                "  --model DIR      the checkpoint directory (config key model)\n"
                "  --resume ID      open the interface on an earlier session (ID or prefix)\n"
                "  --continue       open the interface on the newest session of this project\n"
                "  -h, --help       this help; lode help COMMAND for one command\n"
                "  --version        print the version\n\n"
                "exit codes: 0 done, 1 error, 2 usage or configuration error, 3 turn limit\n");
}

int app_print_usage(const char *name, FILE *fp)
{
    const struct command *cmd = find_command(name);
    if (!cmd)
        return -1;
    fputs(cmd->usage, fp);
    if (cmd->opts) {
        fputs("\noptions:\n", fp);
        cli_print_opts(fp, cmd->opts);
    }
    return 0;
}

static int help_run(struct app *a, int argc, char **argv)
{
    if (argc < 2) {
        print_main_help(stdout);
        return EXIT_OK;
    }
    if (app_print_usage(argv[1], stdout) < 0) {
        fprintf(stderr, "lode: unknown command '%s' (see lode --help)\n", argv[1]);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static int version_run(struct app *a, int argc, char **argv)
{
    printf("lode %s\n", LODE_VERSION);
    return EXIT_OK;
}

const struct command cmd_version = {
    "version", version_run, "print the version", "usage: lode version\n", NULL,
};

/* The interactive interface (app/tui.c); --backend/--model are already in the configuration. */
static int start_ui(struct app *a, const char *resume, int cont)
{
    struct tui_args ta = { .resume = resume, .continue_last = cont };
    return tui_main(a, &ta);
}

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    struct app a;
    memset(&a, 0, sizeof a);
    if (!getcwd(a.cwd, sizeof a.cwd))
        strcpy(a.cwd, ".");

    /* global options come before the command; -c values are applied after
     * the files and the environment are loaded, so they win */
    int i = 1;
    const char *sets[64];
    int nsets = 0;
    const char *gl[2][2];
    int ngl = 0;
    const char *resume = NULL; /* --resume ID / --continue: the interface on a session */
    int cont = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--version")) {
            printf("lode %s\n", LODE_VERSION);
            return EXIT_OK;
        }
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            print_main_help(stdout);
            return EXIT_OK;
        }
        if (!strcmp(o, "-c") && i + 1 < argc && nsets < 64) {
            sets[nsets++] = argv[++i];
            continue;
        }
        if (!strncmp(o, "-c", 2) && o[2] && nsets < 64) {
            sets[nsets++] = o + 2;
            continue;
        }
        /* --backend SPEC / --model DIR: the config keys backend and model for this run */
        if ((!strcmp(o, "--backend") || !strcmp(o, "--model")) && i + 1 < argc && ngl < 2) {
            gl[ngl][0] = o + 2;
            gl[ngl++][1] = argv[++i];
            continue;
        }
        if (!strcmp(o, "--resume") && i + 1 < argc) {
            resume = argv[++i];
            continue;
        }
        if (!strcmp(o, "--continue")) {
            cont = 1;
            continue;
        }
        fprintf(stderr, "lode: unknown option '%s' (see lode --help)\n", o);
        return EXIT_USAGE;
    }

    const struct command *cmd = NULL;
    if (i < argc && !(cmd = find_command(argv[i]))) {
        fprintf(stderr, "lode: unknown command '%s' (see lode --help)\n", argv[i]);
        return EXIT_USAGE;
    }
    if ((resume || cont) && cmd) {
        fprintf(stderr, "lode: --resume and --continue open the interface; for a command use "
                        "its own option (lode run --resume ID)\n");
        return EXIT_USAGE;
    }
    /* help and version need no configuration: a broken file must not hide them */
    if (cmd == &cmd_help || cmd == &cmd_version)
        return cmd->fn(&a, argc - i, argv + i);

    int rc = cfg_load(&a.cfg, a.cwd);
    for (int k = 0; rc == 0 && k < ngl; k++) {
        char origin[32];
        snprintf(origin, sizeof origin, "flag --%s", gl[k][0]);
        if ((rc = cfg_set(&a.cfg, gl[k][0], gl[k][1], CFG_SRC_FLAG, origin)) < 0)
            err_prefix(rc, "--%s %s", gl[k][0], gl[k][1]);
    }
    for (int k = 0; rc == 0 && k < nsets; k++)
        if ((rc = cfg_set_arg(&a.cfg, sets[k], "flag -c")) < 0)
            err_prefix(rc, "-c %s", sets[k]);
    if (rc < 0) {
        fprintf(stderr, "lode: %s\n", err_msg());
        cfg_free(&a.cfg);
        return EXIT_USAGE;
    }
    log_init((enum log_level)cfg_int(&a.cfg, CFG_LOG_LEVEL), NULL);
    if (cfg_str(&a.cfg, CFG_LOG_FILE)[0] &&
        log_init((enum log_level)cfg_int(&a.cfg, CFG_LOG_LEVEL), cfg_str(&a.cfg, CFG_LOG_FILE)) < 0)
        fprintf(stderr, "lode: %s (logging to stderr)\n", err_msg());

    rc = cmd ? cmd->fn(&a, argc - i, argv + i) : start_ui(&a, resume, cont);
    log_close();
    cfg_free(&a.cfg);
    return rc;
}
