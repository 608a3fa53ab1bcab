/*
 * config.h - lode's configuration: a fixed table of typed keys, each value
 * remembering where it came from. Layers, later ones winning:
 *
 *   default -> $XDG_CONFIG_HOME/lode/config.json -> <project>/.lode/config.json
 *           -> environment (LODE_<KEY>, dots as underscores) -> flags
 *
 * Files are JSON objects; nested objects name dotted keys ({"ui": {"mouse":
 * false}} sets ui.mouse). An unknown key, a wrong type or an out-of-range
 * value is an error naming the file, the line and the key (ERR_INVAL).
 *
 * Lists (CFG_LIST) are JSON arrays of strings in files; from the environment
 * and -c either a JSON array or comma-separated items ("a,b"; a comma inside
 * parentheses stays in its item: "run_shell(make a,b)"). cfg_str gives the
 * list as compact JSON array text, cfg_int its length.
 *
 * The project file lies inside the workspace, which anyone who hands us a
 * repository controls, so it may only narrow: the keys marked project-denied
 * below (approval, sandbox.*, tools.allow) are an error there, naming the file
 * and the key, and its tools.deny is added to the user's instead of
 * replacing it.
 *
 * Adding a key: append to enum cfg_id and to the table in config.c.
 */
#ifndef LODE_CONFIG_H
#define LODE_CONFIG_H

#include "common/buf.h"

#include <limits.h>

enum cfg_id {
    CFG_MODEL,               /* str: checkpoint directory */
    CFG_BACKEND,             /* str: auto | cpu | cuda | script:FILE | openai:URL */
    CFG_THREADS,             /* int: CPU threads, 0 = all cores */
    CFG_THINKING,            /* bool: thinking preset on */
    CFG_APPROVAL,            /* enum: plan | default | auto-edit | yolo */
    CFG_CONTEXT,             /* int: maximum context tokens */
    CFG_KV_CACHE,            /* enum: fp8 | bf16 | f32 */
    CFG_SANDBOX_NETWORK,     /* bool: allow network inside run_shell */
    CFG_UI_MOUSE,            /* bool: mouse-wheel scrolling */
    CFG_UI_COLOR,            /* enum: auto | always | never */
    CFG_LOG_LEVEL,           /* enum: error | warn | info | debug */
    CFG_LOG_FILE,            /* str: log file, "" = stderr (or the data dir in the UI) */
    CFG_TOOLS_ALLOW,         /* list: tool patterns that need no approval (project-denied) */
    CFG_TOOLS_DENY,          /* list: tool patterns always denied (project adds to it) */
    CFG_SANDBOX_TIMEOUT,     /* int: run_shell default timeout, seconds (project-denied) */
    CFG_SANDBOX_MAX_TIMEOUT, /* int: largest run_shell timeout the model may ask for */
    CFG_SANDBOX_READ_ONLY,   /* list: extra paths tools and the shell may not write */
    CFG_SANDBOX_HIDDEN,      /* list: paths hidden from tools and the shell */
    CFG_CACHE_ENABLED,       /* bool: the persistent prefix/state cache */
    CFG_CACHE_BUDGET,        /* str: cache size budget ("20G"; "" = a share of free disk) */
    CFG_CACHE_EVERY,         /* int: a cache snapshot every N prefilled tokens */
    CFG_CACHE_PATH,          /* str: cache file, "" = the default (project-denied) */
    CFG_NKEYS
};

enum cfg_type { CFG_BOOL, CFG_INT, CFG_STR, CFG_ENUM, CFG_LIST };

enum cfg_src { CFG_SRC_DEFAULT, CFG_SRC_USER, CFG_SRC_PROJECT, CFG_SRC_ENV, CFG_SRC_FLAG };

struct cfg_val {
    char *s; /* owned; the value as text (every type keeps its text form) */
    long i;  /* CFG_INT, CFG_BOOL (0/1), CFG_ENUM (choice index), CFG_LIST (length) */
    enum cfg_src src;
    char origin[PATH_MAX + 32]; /* "default", a file path, "environment LODE_X", "flag --x" */
};

struct cfg {
    struct cfg_val v[CFG_NKEYS];
    char project_root[PATH_MAX]; /* where .lode/ lives (or would) */
    char user_file[PATH_MAX];    /* "" when no XDG/HOME */
    char project_file[PATH_MAX];
};

/* Fills c with defaults, then the user file, the project file (project root
 * found from cwd) and the environment. On error c is still valid (defaults
 * and whatever loaded before the error) and must be freed. */
int cfg_load(struct cfg *c, const char *cwd);
void cfg_free(struct cfg *c);

/* Sets one key from text ("threads", "8") with the given source and origin
 * label. ERR_NOTFOUND for an unknown key, ERR_INVAL for a bad value. */
int cfg_set(struct cfg *c, const char *key, const char *value, enum cfg_src src,
            const char *origin);

/* Parses "key=value" as given to -c. */
int cfg_set_arg(struct cfg *c, const char *kv, const char *origin);

const char *cfg_str(const struct cfg *c, enum cfg_id id);
long cfg_int(const struct cfg *c, enum cfg_id id);
int cfg_bool(const struct cfg *c, enum cfg_id id);
const char *cfg_key_name(enum cfg_id id);

/* Appends the effective configuration: "key = value  (origin)" lines, or a
 * JSON object {"key": {"value": v, "origin": "..."}} when json is set. */
int cfg_dump(const struct cfg *c, struct buf *out, int json);

#endif
