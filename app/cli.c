/* cli.c - option parsing and error reporting for subcommands (see cli.h). */
#include "app/cli.h"

#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void cli_init(struct cli *c, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    c->argc = argc;
    c->argv = argv;
    c->i = 1;
    c->cmd = argc > 0 ? argv[0] : "lode";
}

int cli_next(struct cli *c, const struct cli_opt *opts)
{
    if (c->i >= c->argc)
        return CLI_END;
    const char *a = c->argv[c->i++];
    if (c->no_more || a[0] != '-' || !strcmp(a, "-")) {
        c->arg = a;
        return CLI_POS;
    }
    if (!strcmp(a, "--")) {
        c->no_more = 1;
        return cli_next(c, opts);
    }
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
        if (c->usage) {
            fputs(c->usage, stdout);
            fputs("\noptions:\n", stdout);
            cli_print_opts(stdout, opts);
        } else if (app_print_usage(c->cmd, stdout) < 0) {
            printf("usage: lode %s [OPTIONS]\n\noptions:\n", c->cmd);
            cli_print_opts(stdout, opts);
        }
        c->exit = EXIT_OK;
        return CLI_EXIT;
    }
    int idx = -1;
    const char *inline_val = NULL;
    if (a[1] == '-') {
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        for (int k = 0; opts && opts[k].name; k++)
            if (strlen(opts[k].name) == n && !strncmp(opts[k].name, name, n))
                idx = k;
        if (idx >= 0 && eq)
            inline_val = eq + 1;
    } else if (a[1] && !a[2]) {
        for (int k = 0; opts && opts[k].name; k++)
            if (opts[k].short_name && opts[k].short_name == a[1])
                idx = k;
    } else if (a[1] && a[2]) { /* -pVALUE */
        for (int k = 0; opts && opts[k].name; k++)
            if (opts[k].short_name == a[1] && opts[k].has_arg)
                idx = k, inline_val = a + 2;
    }
    if (idx < 0) {
        fprintf(stderr, "lode %s: unknown option '%s' (see lode help %s)\n", c->cmd, a, c->cmd);
        c->exit = EXIT_USAGE;
        return CLI_EXIT;
    }
    if (!opts[idx].has_arg) {
        if (inline_val) {
            fprintf(stderr, "lode %s: option '--%s' takes no value\n", c->cmd, opts[idx].name);
            c->exit = EXIT_USAGE;
            return CLI_EXIT;
        }
        c->arg = NULL;
        return idx;
    }
    if (inline_val) {
        c->arg = inline_val;
        return idx;
    }
    if (c->i >= c->argc) {
        fprintf(stderr, "lode %s: option '%s' needs a value (%s)\n", c->cmd, a,
                opts[idx].arg_name ? opts[idx].arg_name : "VALUE");
        c->exit = EXIT_USAGE;
        return CLI_EXIT;
    }
    c->arg = c->argv[c->i++];
    return idx;
}

void cli_print_opts(FILE *fp, const struct cli_opt *opts)
{
    for (int k = 0; opts && opts[k].name; k++) {
        char left[80];
        char sh[8] = "    ";
        if (opts[k].short_name)
            snprintf(sh, sizeof sh, "-%c, ", opts[k].short_name);
        snprintf(left, sizeof left, "%s--%s%s%s", sh, opts[k].name, opts[k].has_arg ? " " : "",
                 opts[k].has_arg ? (opts[k].arg_name ? opts[k].arg_name : "VALUE") : "");
        fprintf(fp, "  %-30s %s\n", left, opts[k].help);
    }
}

int cli_fail(void)
{
    fprintf(stderr, "lode: %s\n", err_msg());
    return EXIT_ERROR;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lode %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_cfg_flag(struct app *a, const char *cmd, const char *key, const char *flag,
                 const char *value)
{
    char origin[64];
    snprintf(origin, sizeof origin, "flag --%s", flag);
    if (cfg_set(&a->cfg, key, value, CFG_SRC_FLAG, origin) < 0)
        return cli_usage_error(cmd, "--%s: %s", flag, err_msg());
    return EXIT_OK;
}
