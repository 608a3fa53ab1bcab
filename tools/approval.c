/* approval.c - approval modes and tools.allow / tools.deny rules (see approval.h).
 *
 * The decision is a pure function of the mode, the user's rules, the tool
 * name and its arguments: no I/O, no state besides the thread-local reason.
 * Deny rules are checked generously (several spellings of the argument) and
 * allow rules strictly (one canonical spelling, whole command), so a clever
 * spelling can make a deny rule match more, never an allow rule. */
#include "tools/approval.h"

#include "common/err.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longer main arguments are not matched against glob rules (a deny rule with a
 * glob then denies outright); also bounds the matcher's O(n*m) work. */
#define APPR_ARG_MAX (16 * 1024)
#define APPR_RULES_MAX 1000
#define APPR_PATTERN_MAX 4096
#define APPR_SEGS_MAX 256

enum tool_class { TC_READ, TC_EDIT, TC_SHELL, TC_FETCH };

struct tool_info {
    const char *name;
    enum tool_class cls;
    const char *arg; /* the main argument rules match against; NULL: none */
    int is_path;     /* the main argument is a file path (normalized first) */
    const char *def; /* the main argument's value when it is absent; NULL: none */
};

static const struct tool_info tool_tab[] = {
    { "read_file", TC_READ, "path", 1, NULL },
    { "list_dir", TC_READ, "path", 1, "." }, /* no path: the workspace */
    { "glob", TC_READ, "pattern", 0, NULL },
    { "grep", TC_READ, "pattern", 0, NULL },
    { "todo", TC_READ, NULL, 0, NULL },
    { "write_file", TC_EDIT, "path", 1, NULL },
    { "edit_file", TC_EDIT, "path", 1, NULL },
    { "run_shell", TC_SHELL, "command", 0, NULL },
    { "web_fetch", TC_FETCH, "url", 0, NULL },
};
#define NTOOL ((int)(sizeof tool_tab / sizeof tool_tab[0]))

/* Verdict by mode (rows) and class (columns), before any rule. */
static const enum appr_verdict mode_tab[APPR_NMODES][4] = {
    [APPR_PLAN] = { APPR_ALLOW, APPR_DENY, APPR_DENY, APPR_DENY },
    [APPR_DEFAULT] = { APPR_ALLOW, APPR_ASK, APPR_ASK, APPR_ASK },
    [APPR_AUTO_EDIT] = { APPR_ALLOW, APPR_ALLOW, APPR_ASK, APPR_ASK },
    [APPR_YOLO] = { APPR_ALLOW, APPR_ALLOW, APPR_ALLOW, APPR_ALLOW },
};

static const char *const mode_names[APPR_NMODES] = { "plan", "default", "auto-edit", "yolo" };

int appr_mode_parse(const char *s)
{
    for (int i = 0; s && i < APPR_NMODES; i++)
        if (!strcmp(s, mode_names[i]))
            return i;
    return -1;
}

const char *appr_mode_name(int mode)
{
    return mode >= 0 && mode < APPR_NMODES ? mode_names[mode] : "unknown";
}

int appr_mode_next(int mode) { return mode >= 0 && mode < APPR_NMODES - 1 ? mode + 1 : 0; }

static int tool_find(const char *name, size_t n)
{
    for (int i = 0; i < NTOOL; i++)
        if (strlen(tool_tab[i].name) == n && !strncmp(tool_tab[i].name, name, n))
            return i;
    return -1;
}

/* ---- rules */

struct rule {
    int tool;
    char *glob; /* NULL: every call of the tool */
    char *text; /* the pattern as written, for reasons */
};

struct rule_list {
    struct rule *v;
    int n;
};

struct appr_rules {
    struct rule_list allow, deny;
};

static void list_free(struct rule_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->v[i].glob);
        free(l->v[i].text);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void appr_rules_free(struct appr_rules *r)
{
    if (!r)
        return;
    list_free(&r->allow);
    list_free(&r->deny);
    free(r);
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* One pattern "TOOL" or "TOOL(GLOB)" (surrounding blanks ignored). */
static int rule_parse(struct rule *out, const char *key, const char *pat)
{
    size_t n = strlen(pat);
    if (n > APPR_PATTERN_MAX)
        return err_set(ERR_INVAL, "%s: pattern longer than %d bytes", key, APPR_PATTERN_MAX);
    const char *s = pat, *e = pat + n;
    while (s < e && is_space(*s))
        s++;
    while (e > s && is_space(e[-1]))
        e--;
    const char *open = memchr(s, '(', (size_t)(e - s));
    const char *name_end = open ? open : e;
    int t = tool_find(s, (size_t)(name_end - s));
    if (t < 0)
        return err_set(ERR_INVAL, "%s: \"%s\": unknown tool \"%.*s\"", key, pat,
                       (int)(name_end - s), s);
    out->tool = t;
    out->glob = NULL;
    if (open) {
        if (e - open < 3 || e[-1] != ')')
            return err_set(ERR_INVAL, "%s: \"%s\": expected TOOL or TOOL(GLOB)", key, pat);
        if (!tool_tab[t].arg)
            return err_set(ERR_INVAL, "%s: \"%s\": %s takes no argument pattern", key, pat,
                           tool_tab[t].name);
        out->glob = strndup(open + 1, (size_t)(e - 1 - (open + 1)));
        if (!out->glob)
            return err_set(ERR_NOMEM, "%s: out of memory", key);
    }
    out->text = strndup(s, (size_t)(e - s));
    if (!out->text) {
        free(out->glob);
        return err_set(ERR_NOMEM, "%s: out of memory", key);
    }
    return 0;
}

static int list_parse(struct rule_list *l, const char *key, const char *json)
{
    if (!json || !json[0])
        return 0;
    cJSON *a = cJSON_Parse(json);
    if (!a || !cJSON_IsArray(a)) {
        cJSON_Delete(a);
        return err_set(ERR_INVAL, "%s: expected a JSON array of strings", key);
    }
    int n = cJSON_GetArraySize(a), rc = 0;
    if (n > APPR_RULES_MAX) {
        cJSON_Delete(a);
        return err_set(ERR_INVAL, "%s: more than %d patterns", key, APPR_RULES_MAX);
    }
    l->v = n ? calloc((size_t)n, sizeof *l->v) : NULL;
    if (n && !l->v) {
        cJSON_Delete(a);
        return err_set(ERR_NOMEM, "%s: out of memory", key);
    }
    for (const cJSON *it = a->child; it && rc == 0; it = it->next) {
        if (!cJSON_IsString(it) || !it->valuestring)
            rc = err_set(ERR_INVAL, "%s: every pattern must be a string", key);
        else if ((rc = rule_parse(&l->v[l->n], key, it->valuestring)) == 0)
            l->n++;
    }
    cJSON_Delete(a);
    return rc;
}

int appr_rules_new(struct appr_rules **out, const char *allow_json, const char *deny_json)
{
    *out = NULL;
    struct appr_rules *r = calloc(1, sizeof *r);
    if (!r)
        return err_set(ERR_NOMEM, "approval rules: out of memory");
    int rc = list_parse(&r->allow, "tools.allow", allow_json);
    if (rc == 0)
        rc = list_parse(&r->deny, "tools.deny", deny_json);
    if (rc < 0) {
        appr_rules_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ---- glob matching: '*' (any run, '/' included), '?', "[...]" / "[!...]"
 * with ranges, '\' escapes. Iterative with one backtrack point, so the
 * work is at most len(glob) * len(text) whatever the pattern. */

/* Matches the bracket expression at *pp against c; advances *pp past it.
 * Returns 1/0, or -1 when the bracket is not closed (then '[' is literal). */
static int bracket(const char **pp, char c)
{
    const char *p = *pp + 1;
    int neg = 0, hit = 0;
    if (*p == '!' || *p == '^')
        neg = 1, p++;
    const char *first = p;
    while (*p && (*p != ']' || p == first)) {
        char lo = *p, hi;
        if (lo == '\\' && p[1])
            lo = *++p;
        hi = lo;
        if (p[1] == '-' && p[2] && p[2] != ']') {
            p += 2;
            if (*p == '\\' && p[1])
                p++;
            hi = *p;
        }
        if ((unsigned char)c >= (unsigned char)lo && (unsigned char)c <= (unsigned char)hi)
            hit = 1;
        p++;
    }
    if (*p != ']')
        return -1;
    *pp = p + 1;
    return hit != neg;
}

static int glob_match(const char *g, const char *t)
{
    const char *star_g = NULL, *star_t = NULL;
    while (*t) {
        if (*g == '*') {
            while (*g == '*')
                g++;
            star_g = g, star_t = t;
            continue;
        }
        int ok = 0;
        const char *next = g + 1;
        if (*g == '?')
            ok = 1;
        else if (*g == '[') {
            const char *p = g;
            int b = bracket(&p, *t);
            if (b >= 0)
                ok = b, next = p;
            else
                ok = *t == '[';
        } else if (*g == '\\' && g[1]) {
            ok = g[1] == *t;
            next = g + 2;
        } else
            ok = *g && *g == *t;
        if (ok) {
            g = next, t++;
            continue;
        }
        if (!star_g)
            return 0;
        g = star_g, t = ++star_t;
    }
    while (*g == '*')
        g++;
    return *g == 0;
}

/* ---- the main argument, in the spellings rules see */

/* Lexical normalization of a path: no "." components, no repeated '/',
 * "a/../" folded. Not resolved on disk: the path policy does that later. */
static void path_norm(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    int abs = in[0] == '/';
    if (abs)
        out[n++] = '/';
    size_t base = n;
    for (const char *p = in; *p;) {
        while (*p == '/')
            p++;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - s);
        if (len == 0 || (len == 1 && s[0] == '.'))
            continue;
        if (len == 2 && s[0] == '.' && s[1] == '.') {
            /* drop the previous component unless it is itself ".." */
            size_t k = n;
            while (k > base && out[k - 1] != '/')
                k--;
            int prev_dotdot = n - k == 2 && out[k] == '.' && out[k + 1] == '.';
            if (n > base && !prev_dotdot) {
                n = k > base ? k - 1 : base;
                continue;
            }
            if (abs)
                continue; /* "/.." is "/" */
        }
        if (n + (n > base) + len + 1 > cap)
            break; /* cannot happen below APPR_ARG_MAX; cut rather than overflow */
        if (n > base)
            out[n++] = '/';
        memcpy(out + n, s, len);
        n += len;
    }
    if (n == 0)
        out[n++] = '.';
    out[n] = 0;
}

/* Splits a shell command at ; & | newlines and parentheses/backquotes into
 * trimmed segments (in place, in buf). Returns the count, or -1 when there
 * are more than max (the caller must then not trust a partial check). */
static int shell_split(char *buf, char **seg, int max)
{
    int n = 0;
    char *p = buf;
    while (*p) {
        char *s = p;
        while (*p && !strchr(";&|\n()`", *p))
            p++;
        char *e = p;
        if (*p)
            *p++ = 0;
        while (is_space(*s))
            s++;
        while (e > s && is_space(e[-1]))
            *--e = 0;
        if (*s == '$' && !s[1])
            continue; /* the '$' of "$(" */
        if (*s && n == max)
            return -1;
        if (*s)
            seg[n++] = s;
    }
    return n;
}

/* Skips the words that run another command (sudo, env X=1, timeout 5, ...)
 * so a deny rule "rm *" also sees "sudo rm -rf x". */
static const char *unwrap(const char *s)
{
    static const char *const wrappers[] = { "sudo",    "env",     "nohup",  "nice",   "time",
                                            "timeout", "command", "exec",   "xargs",  "builtin",
                                            "doas",    "stdbuf",  "ionice", "setsid", NULL };
    for (;;) {
        const char *w = s;
        while (*w && !is_space(*w))
            w++;
        size_t len = (size_t)(w - s);
        int skip = len && (s[0] == '-' || memchr(s, '=', len) || (s[0] >= '0' && s[0] <= '9'));
        for (int i = 0; !skip && wrappers[i]; i++)
            skip = strlen(wrappers[i]) == len && !strncmp(wrappers[i], s, len);
        if (!skip || !*w)
            return s;
        while (is_space(*w))
            w++;
        s = w;
    }
}

/* ---- the decision */

static _Thread_local char reason_buf[320];

/* "run_shell: make test" with the argument shortened to one line. */
static const char *say_call(const char *tool, const char *arg, const char *suffix)
{
    char shown[120];
    size_t n = 0;
    for (const char *p = arg ? arg : ""; *p && n < sizeof shown - 4; p++)
        shown[n++] = (*p == '\n' || *p == '\t' || *p == '\r') ? ' ' : *p;
    if (arg && strlen(arg) > n)
        memcpy(shown + n, "...", 3), n += 3;
    shown[n] = 0;
    if (arg)
        snprintf(reason_buf, sizeof reason_buf, "%s: %s%s", tool, shown, suffix ? suffix : "");
    else
        snprintf(reason_buf, sizeof reason_buf, "%s%s", tool, suffix ? suffix : "");
    return reason_buf;
}

/* Does any rule of l for tool t match? For deny (generous) every spelling in
 * alts counts; for allow only alts[0] (or, for run_shell, every segment). */
static const struct rule *find_rule(const struct rule_list *l, int t, const char *const *alts,
                                    int nalts)
{
    for (int i = 0; i < l->n; i++) {
        const struct rule *r = &l->v[i];
        if (r->tool != t)
            continue;
        if (!r->glob)
            return r;
        for (int k = 0; k < nalts; k++)
            if (alts[k] && glob_match(r->glob, alts[k]))
                return r;
    }
    return NULL;
}

static int has_glob_rule(const struct rule_list *l, int t)
{
    for (int i = 0; i < l->n; i++)
        if (l->v[i].tool == t && l->v[i].glob)
            return 1;
    return 0;
}

/* The deny check: 1 and *hit when a deny rule matches the call; -1 when a
 * command has too many parts to check. */
static int denied(const struct rule_list *l, int t, const char *arg, const char *norm, char *work,
                  const struct rule **hit)
{
    *hit = find_rule(l, t, NULL, 0); /* a bare "TOOL" rule */
    if (*hit)
        return 1;
    const char *two[2] = { arg, norm };
    if ((*hit = find_rule(l, t, two, 2)))
        return 1;
    /* every tail after a '/': "write_file(.env)" also denies "sub/.env", "/ws/.env" */
    for (const char *p = norm ? strchr(norm, '/') : NULL; p; p = strchr(p + 1, '/')) {
        const char *tail = p + 1;
        if (*tail && (*hit = find_rule(l, t, &tail, 1)))
            return 1;
    }
    if (work) {
        char *seg[APPR_SEGS_MAX];
        int ns = shell_split(work, seg, APPR_SEGS_MAX);
        if (ns < 0)
            return -1;
        for (int i = 0; i < ns; i++) {
            const char *alts[2] = { seg[i], unwrap(seg[i]) };
            if ((*hit = find_rule(l, t, alts, 2)))
                return 1;
        }
    }
    return 0;
}

/* The allow check: every part of the call must be covered by an allow rule. */
static const struct rule *allowed(const struct rule_list *l, int t, const char *arg,
                                  const char *norm, char *work)
{
    const char *one = norm ? norm : arg;
    if (!work)
        return find_rule(l, t, &one, 1);
    /* run_shell: a bare "run_shell" rule allows everything; otherwise a
     * command substitution is never pre-approved, and each chained command
     * must match a rule on its own ("make *" must not allow "make; rm -rf ~") */
    const struct rule *bare = find_rule(l, t, NULL, 0);
    if (bare)
        return bare;
    if (strstr(arg, "$(") || strchr(arg, '`') || strstr(arg, "<(") || strstr(arg, ">("))
        return NULL;
    char *seg[APPR_SEGS_MAX];
    int ns = shell_split(work, seg, APPR_SEGS_MAX);
    const struct rule *r = NULL;
    if (ns < 0)
        return NULL;
    for (int i = 0; i < ns; i++) {
        const char *s = seg[i];
        if (!(r = find_rule(l, t, &s, 1)))
            return NULL;
    }
    return ns ? r : NULL;
}

enum appr_verdict appr_decide(int mode, const struct appr_rules *r, const char *name,
                              const struct cJSON *args, const char **reason)
{
    const char *dummy;
    if (!reason)
        reason = &dummy;
    int t = name ? tool_find(name, strlen(name)) : -1;
    if (t < 0) {
        snprintf(reason_buf, sizeof reason_buf, "unknown tool \"%.64s\"", name ? name : "");
        *reason = reason_buf;
        return APPR_DENY;
    }
    if (mode < 0 || mode >= APPR_NMODES) {
        *reason = "unknown approval mode";
        return APPR_DENY;
    }
    const struct tool_info *ti = &tool_tab[t];
    const char *arg = NULL;
    if (ti->arg && (!args || cJSON_IsObject(args))) {
        const cJSON *v = args ? cJSON_GetObjectItemCaseSensitive(args, ti->arg) : NULL;
        if (cJSON_IsString(v) && v->valuestring)
            arg = v->valuestring;
        else if (!v || cJSON_IsNull(v))
            arg = ti->def;
    }
    int too_long = arg && strlen(arg) > APPR_ARG_MAX;
    char norm[APPR_ARG_MAX + 2];
    char work[APPR_ARG_MAX + 1];
    const char *normp = NULL;
    if (arg && !too_long && ti->is_path) {
        path_norm(arg, norm, sizeof norm);
        normp = norm;
    }
    int shell = ti->cls == TC_SHELL && arg && !too_long;

    if (r) {
        const struct rule *hit;
        if (too_long && has_glob_rule(&r->deny, t)) {
            *reason = say_call(ti->name, NULL, ": argument too long to check against tools.deny");
            return APPR_DENY;
        }
        if (shell)
            strcpy(work, arg);
        int d = denied(&r->deny, t, too_long ? NULL : arg, normp, shell ? work : NULL, &hit);
        if (d < 0 && has_glob_rule(&r->deny, t)) {
            *reason = say_call(ti->name, NULL, ": too many commands to check against tools.deny");
            return APPR_DENY;
        }
        if (d > 0 && hit) {
            char sfx[160];
            snprintf(sfx, sizeof sfx, " (denied by tools.deny \"%s\")", hit->text);
            *reason = say_call(ti->name, arg, sfx);
            return APPR_DENY;
        }
    }
    enum appr_verdict v = mode_tab[mode][ti->cls];
    if (v == APPR_DENY) {
        *reason = say_call(ti->name, arg, " (plan mode is read-only)");
        return v;
    }
    if (v == APPR_ASK && r && !too_long) {
        if (shell)
            strcpy(work, arg);
        /* no main argument: only a bare "TOOL" rule can apply */
        const struct rule *hit = arg ? allowed(&r->allow, t, arg, normp, shell ? work : NULL)
                                     : find_rule(&r->allow, t, NULL, 0);
        if (hit) {
            char sfx[160];
            snprintf(sfx, sizeof sfx, " (allowed by tools.allow \"%s\")", hit->text);
            *reason = say_call(ti->name, arg, sfx);
            return APPR_ALLOW;
        }
    }
    *reason = say_call(ti->name, arg, NULL);
    return v;
}
