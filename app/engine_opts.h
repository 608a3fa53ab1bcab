/*
 * engine_opts.h - the engine options every model command shares (--model,
 * --backend, --threads, --kv, --yarn, --isa) and opening the engine from them.
 */
#ifndef LODE_APP_ENGINE_OPTS_H
#define LODE_APP_ENGINE_OPTS_H

#include "app/cli.h"
#include "engine/model.h"

/* Append to a command's option table (before the {0} terminator). */
#define ENGINE_CLI_OPTS                                                                            \
    { "backend", 0, 1, "cpu", "inference backend (cpu; cuda when built and present)" },            \
        { "threads", 0, 1, "N", "CPU threads (default: config key threads, 0 = all cores)" },      \
        { "kv", 0, 1, "fp8|bf16|f32", "KV-cache precision (default: config key kv_cache)" },       \
        { "yarn", 0, 1, "FACTOR", "YaRN context extension factor (4 for 1M tokens)" },             \
    {                                                                                              \
        "isa", 0, 1, "auto|scalar|avx2|avx512", "CPU instruction set for the kernels"              \
    }

struct engine_args {
    struct eng_opts o;
    const char *model; /* borrowed: from the flag or the configuration */
};

void engine_args_init(struct engine_args *ea, struct app *a);
/* Handles --model and the ENGINE_CLI_OPTS options; returns EXIT_OK, or EXIT_USAGE after a
 * message, or -1 when name is not an engine option. */
int engine_args_opt(struct engine_args *ea, struct app *a, const char *cmd, const char *name,
                    const char *value);
/* Opens the engine; EXIT_OK, or EXIT_USAGE (no model) / EXIT_ERROR after a message. */
int engine_args_open(struct engine_args *ea, struct app *a, const char *cmd, struct eng **out);

#endif
