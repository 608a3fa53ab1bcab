/* config.c - layered, typed configuration (see config.h). */
#include "config/config.h"

#include "common/err.h"
#include "common/fs.h"
#include "common/text.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_FILE_MAX (1 << 20) /* a config file larger than 1 MiB is a mistake */

struct cfg_key {
    const char *name;
    enum cfg_type type;
    const char *def;
    const char *choices; /* CFG_ENUM: "a|b|c" */
    long min, max;       /* CFG_INT */
    const char *help;
    int flags; /* CFGK_* */
};

/* Not settable from the project file (it could widen what tools may do). */
#define CFGK_NO_PROJECT 1
/* A list the project file adds to instead of replacing (it only narrows). */
#define CFGK_PROJECT_ADDS 2

#define CFG_LIST_MAX 1000 /* items in one list */

/* CFGK_NO_PROJECT on backend (a cloned repository must not send the session
 * elsewhere), log.file, cache.path (lode would write to any file they name)
 * and cache.budget (it must not fill the disk), besides everything that
 * widens what tools may do. */
static const struct cfg_key keys[CFG_NKEYS] = {
    [CFG_MODEL] = { "model", CFG_STR, "", 0, 0, 0, "checkpoint directory", 0 },
    [CFG_BACKEND] = { "backend", CFG_STR, "auto", 0, 0, 0,
                      "auto, cpu, cuda, script:FILE or openai:URL", CFGK_NO_PROJECT },
    [CFG_THREADS] = { "threads", CFG_INT, "0", 0, 0, 1024, "CPU threads (0 = all cores)", 0 },
    [CFG_THINKING] = { "thinking", CFG_BOOL, "true", 0, 0, 0, "start with thinking on", 0 },
    [CFG_APPROVAL] = { "approval", CFG_ENUM, "default", "plan|default|auto-edit|yolo", 0, 0,
                       "tool approval mode", CFGK_NO_PROJECT },
    [CFG_CONTEXT] = { "context", CFG_INT, "262144", 0, 512, 1048576, "maximum context tokens", 0 },
    [CFG_KV_CACHE] = { "kv_cache", CFG_ENUM, "fp8", "fp8|bf16|f32", 0, 0, "KV-cache precision", 0 },
    [CFG_SANDBOX_NETWORK] = { "sandbox.network", CFG_BOOL, "false", 0, 0, 0,
                              "allow network access in run_shell and web_fetch", CFGK_NO_PROJECT },
    [CFG_UI_MOUSE] = { "ui.mouse", CFG_BOOL, "true", 0, 0, 0, "mouse-wheel scrolling", 0 },
    [CFG_UI_COLOR] = { "ui.color", CFG_ENUM, "auto", "auto|always|never", 0, 0, "colours", 0 },
    [CFG_LOG_LEVEL] = { "log.level", CFG_ENUM, "warn", "error|warn|info|debug", 0, 0,
                        "diagnostic log level", 0 },
    [CFG_LOG_FILE] = { "log.file", CFG_STR, "", 0, 0, 0, "diagnostic log file", CFGK_NO_PROJECT },
    [CFG_TOOLS_ALLOW] = { "tools.allow", CFG_LIST, "[]", 0, 0, 0,
                          "tool patterns run without asking: TOOL or TOOL(GLOB)", CFGK_NO_PROJECT },
    [CFG_TOOLS_DENY] = { "tools.deny", CFG_LIST, "[]", 0, 0, 0,
                         "tool patterns always denied: TOOL or TOOL(GLOB)", CFGK_PROJECT_ADDS },
    [CFG_SANDBOX_TIMEOUT] = { "sandbox.timeout", CFG_INT, "120", 0, 1, 86400,
                              "run_shell default timeout (seconds)", CFGK_NO_PROJECT },
    [CFG_SANDBOX_MAX_TIMEOUT] = { "sandbox.max_timeout", CFG_INT, "600", 0, 1, 86400,
                                  "largest run_shell timeout the model may ask for (seconds)",
                                  CFGK_NO_PROJECT },
    [CFG_SANDBOX_READ_ONLY] = { "sandbox.read_only", CFG_LIST, "[]", 0, 0, 0,
                                "extra paths tools and the shell may read but not write",
                                CFGK_NO_PROJECT },
    [CFG_SANDBOX_HIDDEN] = { "sandbox.hidden", CFG_LIST, "[]", 0, 0, 0,
                             "paths hidden from tools and the shell (e.g. ~/.ssh)",
                             CFGK_NO_PROJECT },
    [CFG_CACHE_ENABLED] = { "cache.enabled", CFG_BOOL, "true", 0, 0, 0,
                            "keep model states in the persistent prefix cache", 0 },
    [CFG_CACHE_BUDGET] = { "cache.budget", CFG_STR, "", 0, 0, 0,
                           "prefix cache size (\"20G\"; \"\" = a share of free disk)",
                           CFGK_NO_PROJECT },
    [CFG_CACHE_EVERY] = { "cache.every", CFG_INT, "4096", 0, 256, 1048576,
                          "prefix cache: a snapshot every N prefilled tokens", 0 },
    [CFG_CACHE_PATH] = { "cache.path", CFG_STR, "", 0, 0, 0,
                         "prefix cache file (\"\" = $XDG_CACHE_HOME/lode/cache.db)",
                         CFGK_NO_PROJECT },
};

static int key_find(const char *name)
{
    for (int i = 0; i < CFG_NKEYS; i++)
        if (!strcmp(keys[i].name, name))
            return i;
    return -1;
}

const char *cfg_key_name(enum cfg_id id) { return keys[id].name; }

/* Index of `s` among "a|b|c", or -1. */
static int choice_index(const char *choices, const char *s)
{
    size_t n = strlen(s);
    int idx = 0;
    for (const char *p = choices; *p; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, s, n))
            return idx;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

static int parse_bool(const char *s, long *out)
{
    static const char *t[] = { "true", "1", "yes", "on" }, *f[] = { "false", "0", "no", "off" };
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, t[i]))
            return *out = 1, 0;
        if (!strcasecmp(s, f[i]))
            return *out = 0, 0;
    }
    return -1;
}

/* Adds the trimmed item s[0..n) to the array a (empty items are skipped). */
static int list_add_item(cJSON *a, const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (!n)
        return 0;
    char *item = strndup(s, n);
    cJSON *str = item ? cJSON_CreateString(item) : NULL;
    free(item);
    if (!str || !cJSON_AddItemToArray(a, str)) {
        cJSON_Delete(str);
        return ERR_NOMEM;
    }
    return 0;
}

/* The list value of text s for key k as compact JSON array text (*canon,
 * malloc'ed) and its length (*count). s is a JSON array of strings, or
 * comma-separated items where a comma inside parentheses stays in its item
 * ("run_shell(make a,b)"). */
static int list_canon(const struct cfg_key *k, const char *s, char **canon, long *count)
{
    const char *p = s;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    cJSON *a = NULL;
    if (*p == '[') {
        a = cJSON_Parse(p);
        if (!a || !cJSON_IsArray(a)) {
            cJSON_Delete(a);
            return err_set(ERR_INVAL, "%s: expected a JSON array of strings, got '%s'", k->name, s);
        }
        for (const cJSON *it = a->child; it; it = it->next)
            if (!cJSON_IsString(it)) {
                cJSON_Delete(a);
                return err_set(ERR_INVAL, "%s: every item must be a string", k->name);
            }
    } else {
        if (!(a = cJSON_CreateArray()))
            return err_set(ERR_NOMEM, "out of memory");
        int depth = 0, rc = 0;
        const char *start = p;
        for (const char *q = p;; q++) {
            if (*q == '(')
                depth++;
            else if (*q == ')' && depth > 0)
                depth--;
            else if ((*q == ',' && depth == 0) || !*q) {
                if ((rc = list_add_item(a, start, (size_t)(q - start))) < 0)
                    break;
                start = q + 1;
            }
            if (!*q)
                break;
        }
        if (rc < 0) {
            cJSON_Delete(a);
            return err_set(ERR_NOMEM, "out of memory");
        }
    }
    int n = cJSON_GetArraySize(a);
    if (n > CFG_LIST_MAX) {
        cJSON_Delete(a);
        return err_set(ERR_INVAL, "%s: more than %d items", k->name, CFG_LIST_MAX);
    }
    *canon = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    if (!*canon)
        return err_set(ERR_NOMEM, "out of memory");
    *count = n;
    return 0;
}

/* Validates text for key k; on success fills *i. Message names only the
 * problem; callers prefix the place. */
static int check_value(const struct cfg_key *k, const char *s, long *i)
{
    *i = 0;
    switch (k->type) {
    case CFG_BOOL:
        if (parse_bool(s, i) < 0)
            return err_set(ERR_INVAL, "%s: expected true or false, got '%s'", k->name, s);
        return 0;
    case CFG_INT: {
        errno = 0;
        char *end;
        long v = strtol(s, &end, 10);
        if (!*s || *end || errno)
            return err_set(ERR_INVAL, "%s: expected an integer, got '%s'", k->name, s);
        if (v < k->min || v > k->max)
            return err_set(ERR_INVAL, "%s: %ld is outside %ld..%ld", k->name, v, k->min, k->max);
        *i = v;
        return 0;
    }
    case CFG_ENUM: {
        int idx = choice_index(k->choices, s);
        if (idx < 0) {
            char list[256];
            size_t n = 0;
            for (const char *p = k->choices; *p && n < sizeof list - 3; p++) {
                if (*p == '|')
                    list[n++] = ',', list[n++] = ' ';
                else
                    list[n++] = *p;
            }
            list[n] = 0;
            return err_set(ERR_INVAL, "%s: '%s' is not one of %s", k->name, s, list);
        }
        *i = idx;
        return 0;
    }
    case CFG_STR: return 0;
    case CFG_LIST: {
        char *canon = NULL;
        int rc = list_canon(k, s, &canon, i);
        free(canon);
        return rc;
    }
    }
    return err_set(ERR_INTERNAL, "bad key type");
}

static int store(struct cfg *c, int id, const char *s, long i, enum cfg_src src, const char *origin)
{
    char *dup = NULL;
    if (keys[id].type == CFG_LIST) {
        int rc = list_canon(&keys[id], s, &dup, &i);
        if (rc < 0)
            return rc;
    } else if (!(dup = strdup(s)))
        return err_set(ERR_NOMEM, "out of memory");
    free(c->v[id].s);
    c->v[id].s = dup;
    c->v[id].i = i;
    c->v[id].src = src;
    snprintf(c->v[id].origin, sizeof c->v[id].origin, "%s", origin);
    return 0;
}

int cfg_set(struct cfg *c, const char *key, const char *value, enum cfg_src src, const char *origin)
{
    int id = key_find(key);
    if (id < 0)
        return err_set(ERR_NOTFOUND, "%s: unknown key", key);
    long i;
    int rc = check_value(&keys[id], value, &i);
    if (rc < 0)
        return rc;
    return store(c, id, value, i, src, origin);
}

int cfg_set_arg(struct cfg *c, const char *kv, const char *origin)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return err_set(ERR_INVAL, "'%s': expected key=value", kv);
    char key[128];
    if ((size_t)(eq - kv) >= sizeof key)
        return err_set(ERR_INVAL, "'%s': key too long", kv);
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = 0;
    return cfg_set(c, key, eq + 1, CFG_SRC_FLAG, origin);
}

/* ---- JSON files */

/* The project's items appended to the list already set (user, default), so
 * the project can add deny rules but never drop the user's. */
static int list_append(struct cfg *c, int id, const char *items, const char *path)
{
    cJSON *have = cJSON_Parse(cfg_str(c, (enum cfg_id)id));
    cJSON *add = cJSON_Parse(items);
    int rc = 0;
    if (!cJSON_IsArray(have) || !cJSON_IsArray(add))
        rc = err_set(ERR_INTERNAL, "%s: stored list is not an array", keys[id].name);
    while (rc == 0 && add->child) {
        cJSON *it = cJSON_DetachItemViaPointer(add, add->child);
        if (!cJSON_AddItemToArray(have, it)) {
            cJSON_Delete(it);
            rc = err_set(ERR_NOMEM, "out of memory");
        }
    }
    char *text = rc == 0 ? cJSON_PrintUnformatted(have) : NULL;
    if (rc == 0 && !text)
        rc = err_set(ERR_NOMEM, "out of memory");
    if (rc == 0) {
        char origin[sizeof c->v[id].origin];
        if (c->v[id].src == CFG_SRC_DEFAULT)
            snprintf(origin, sizeof origin, "%s", path);
        else
            snprintf(origin, sizeof origin, "%s + %s", c->v[id].origin, path);
        rc = store(c, id, text, 0, CFG_SRC_PROJECT, origin);
    }
    free(text);
    cJSON_Delete(have);
    cJSON_Delete(add);
    return rc;
}

/* Byte offset of the member `"name"` (as a key, followed by ':') at or after
 * `from` in the raw text; used only to point error messages at a line. */
static size_t key_offset(const char *text, size_t from, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text + from; (p = strchr(p, '"')); p++) {
        if (!strncmp(p + 1, name, n) && p[n + 1] == '"') {
            const char *q = p + n + 2;
            while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
                q++;
            if (*q == ':')
                return (size_t)(p - text);
        }
    }
    return from;
}

static int load_object(struct cfg *c, const cJSON *obj, const char *prefix, const char *path,
                       const char *text, size_t from, enum cfg_src src)
{
    for (const cJSON *m = obj->child; m; m = m->next) {
        char key[256];
        snprintf(key, sizeof key, "%s%s", prefix, m->string);
        size_t off = key_offset(text, from, m->string);
        int line, col;
        text_line_col(text, off, &line, &col);
        if (cJSON_IsObject(m)) {
            char sub[260];
            snprintf(sub, sizeof sub, "%s.", key);
            int rc = load_object(c, m, sub, path, text, off, src);
            if (rc < 0)
                return rc;
            continue;
        }
        int id = key_find(key);
        if (id < 0)
            return err_set(ERR_INVAL, "%s:%d: %s: unknown key", path, line, key);
        const struct cfg_key *k = &keys[id];
        char tmp[64];
        const char *s = NULL;
        if (k->type == CFG_BOOL && cJSON_IsBool(m))
            s = cJSON_IsTrue(m) ? "true" : "false";
        else if (k->type == CFG_INT && cJSON_IsNumber(m)) {
            double d = m->valuedouble;
            if (d != (double)(long)d)
                return err_set(ERR_INVAL, "%s:%d: %s: expected an integer, got %g", path, line, key,
                               d);
            snprintf(tmp, sizeof tmp, "%ld", (long)d);
            s = tmp;
        } else if ((k->type == CFG_STR || k->type == CFG_ENUM) && cJSON_IsString(m))
            s = m->valuestring;
        char *list = NULL; /* CFG_LIST: the array as JSON text */
        if (k->type == CFG_LIST && cJSON_IsArray(m)) {
            if (!(list = cJSON_PrintUnformatted(m)))
                return err_set(ERR_NOMEM, "out of memory");
            s = list;
        }
        if (!s) {
            static const char *want[] = { "true or false", "an integer", "a string", "a string",
                                          "an array of strings" };
            const char *got = cJSON_IsString(m)   ? "a string"
                              : cJSON_IsNumber(m) ? "a number"
                              : cJSON_IsBool(m)   ? "a boolean"
                              : cJSON_IsArray(m)  ? "an array"
                                                  : "null";
            return err_set(ERR_INVAL, "%s:%d: %s: expected %s, got %s", path, line, key,
                           want[k->type], got);
        }
        long iv;
        int rc = check_value(k, s, &iv);
        if (rc == 0 && src == CFG_SRC_PROJECT && (k->flags & CFGK_NO_PROJECT))
            rc = err_set(ERR_INVAL,
                         "%s: not allowed in the project file (it could widen what tools may "
                         "do); set it in the user configuration, LODE_* or -c",
                         key);
        if (rc == 0 && src == CFG_SRC_PROJECT && (k->flags & CFGK_PROJECT_ADDS))
            rc = list_append(c, id, s, path);
        else if (rc == 0)
            rc = store(c, id, s, iv, src, path);
        free(list);
        if (rc < 0)
            return rc == ERR_NOMEM ? rc : err_prefix(rc, "%s:%d", path, line);
    }
    return 0;
}

static int load_file(struct cfg *c, const char *path, enum cfg_src src)
{
    if (!fs_exists(path))
        return 0;
    struct buf b = { 0 };
    int rc = fs_read_file(path, CFG_FILE_MAX, &b);
    if (rc < 0) {
        buf_free(&b);
        return rc;
    }
    const char *text = b.p ? b.p : "";
    size_t bad;
    if (!utf8_valid(text, b.len, &bad)) {
        int line, col;
        text_line_col(text, bad, &line, &col);
        buf_free(&b);
        return err_set(ERR_INVAL, "%s:%d:%d: invalid UTF-8", path, line, col);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, b.len, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        size_t off = end ? (size_t)(end - text) : 0;
        if (!root && cJSON_GetErrorPtr())
            off = (size_t)(cJSON_GetErrorPtr() - text);
        int line, col;
        text_line_col(text, off, &line, &col);
        rc = err_set(ERR_INVAL, "%s:%d:%d: %s", path, line, col,
                     root ? "expected a JSON object" : "malformed JSON");
        cJSON_Delete(root);
        buf_free(&b);
        return rc;
    }
    rc = load_object(c, root, "", path, text, 0, src);
    cJSON_Delete(root);
    buf_free(&b);
    return rc;
}

static int load_env(struct cfg *c)
{
    for (int id = 0; id < CFG_NKEYS; id++) {
        char var[128] = "LODE_";
        size_t n = 5;
        for (const char *p = keys[id].name; *p && n < sizeof var - 1; p++)
            var[n++] = (*p == '.' || *p == '-') ? '_' : (char)toupper((unsigned char)*p);
        var[n] = 0;
        const char *v = getenv(var);
        if (!v)
            continue;
        char origin[160];
        snprintf(origin, sizeof origin, "environment %s", var);
        int rc = cfg_set(c, keys[id].name, v, CFG_SRC_ENV, origin);
        if (rc < 0)
            return err_prefix(rc, "environment %s", var);
    }
    return 0;
}

int cfg_load(struct cfg *c, const char *cwd)
{
    memset(c, 0, sizeof *c);
    for (int id = 0; id < CFG_NKEYS; id++) {
        long i;
        if (check_value(&keys[id], keys[id].def, &i) < 0)
            return err_set(ERR_INTERNAL, "default of %s is invalid", keys[id].name);
        if (store(c, id, keys[id].def, i, CFG_SRC_DEFAULT, "default") < 0)
            return ERR_NOMEM;
    }
    char dir[PATH_MAX];
    if (fs_xdg_dir(FS_XDG_CONFIG, dir, sizeof dir) == 0)
        fs_join(c->user_file, sizeof c->user_file, dir, "config.json");
    if (fs_project_root(cwd, c->project_root, sizeof c->project_root) == 0)
        fs_join(c->project_file, sizeof c->project_file, c->project_root, ".lode/config.json");
    int rc;
    if (c->user_file[0] && (rc = load_file(c, c->user_file, CFG_SRC_USER)) < 0)
        return rc;
    /* the project file is the same as the user file when run from $HOME/.. */
    if (c->project_file[0] && strcmp(c->project_file, c->user_file) &&
        (rc = load_file(c, c->project_file, CFG_SRC_PROJECT)) < 0)
        return rc;
    return load_env(c);
}

void cfg_free(struct cfg *c)
{
    for (int id = 0; id < CFG_NKEYS; id++) {
        free(c->v[id].s);
        c->v[id].s = NULL;
    }
}

const char *cfg_str(const struct cfg *c, enum cfg_id id) { return c->v[id].s ? c->v[id].s : ""; }
long cfg_int(const struct cfg *c, enum cfg_id id) { return c->v[id].i; }
int cfg_bool(const struct cfg *c, enum cfg_id id) { return c->v[id].i != 0; }

int cfg_dump(const struct cfg *c, struct buf *out, int json)
{
    int rc = 0;
    if (json)
        rc |= buf_puts(out, "{");
    for (int id = 0; id < CFG_NKEYS; id++) {
        const struct cfg_val *v = &c->v[id];
        const char *s = v->s ? v->s : "";
        if (!json) {
            rc |= buf_printf(out, "%-16s = %-12s (%s)\n", keys[id].name, s[0] ? s : "\"\"",
                             v->origin);
            continue;
        }
        rc |= buf_printf(out, "%s\n  ", id ? "," : "");
        rc |= buf_json_str(out, keys[id].name, strlen(keys[id].name));
        rc |= buf_puts(out, ": {\"value\": ");
        if (keys[id].type == CFG_INT)
            rc |= buf_printf(out, "%ld", v->i);
        else if (keys[id].type == CFG_BOOL)
            rc |= buf_puts(out, v->i ? "true" : "false");
        else if (keys[id].type == CFG_LIST)
            rc |= buf_puts(out, s[0] ? s : "[]"); /* already compact JSON */
        else
            rc |= buf_json_str(out, s, strlen(s));
        rc |= buf_puts(out, ", \"origin\": ");
        rc |= buf_json_str(out, v->origin, strlen(v->origin));
        rc |= buf_puts(out, "}");
    }
    if (json)
        rc |= buf_puts(out, "\n}\n");
    return rc < 0 ? ERR_NOMEM : 0;
}
