/* cmd_config.c - `lode config`: the effective configuration and where each value came from. */
#include "app/commands.h"
#include "common/buf.h"
#include "common/err.h"

#include <stdio.h>

static const struct cli_opt opts[] = {
    { "json", 0, 0, NULL, "print a JSON object {key: {value, origin}}" },
    { 0 },
};

static int run(struct app *a, int argc, char **argv)
{
    int json = 0;
    struct cli c;
    cli_init(&c, argc, argv);
    for (int o; (o = cli_next(&c, opts)) != CLI_END;) {
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS)
            return cli_usage_error("config", "unexpected argument '%s'", c.arg);
        json = 1;
    }
    struct buf out = { 0 };
    if (cfg_dump(&a->cfg, &out, json) < 0) {
        buf_free(&out);
        return cli_fail();
    }
    fwrite(out.p, 1, out.len, stdout);
    if (!json)
        printf("\nfiles: %s (user), %s (project)\n", a->cfg.user_file[0] ? a->cfg.user_file : "-",
               a->cfg.project_file[0] ? a->cfg.project_file : "-");
    buf_free(&out);
    return EXIT_OK;
}

const struct command cmd_config = {
    "config",
    run,
    "print the effective configuration and where each value came from",
    "usage: lode config [--json]\n"
    "\n"
    "Configuration is JSON, read in this order (later wins):\n"
    "  $XDG_CONFIG_HOME/lode/config.json   (default ~/.config/lode/config.json)\n"
    "  <project>/.lode/config.json         (project = nearest folder with .lode/ or .git)\n"
    "  environment LODE_<KEY>              (dots as underscores: LODE_UI_MOUSE=false)\n"
    "  flags: -c key=value before the command, and command flags such as --model\n"
    "Nested objects name dotted keys: {\"ui\": {\"mouse\": false}} sets ui.mouse.\n",
    opts,
};
