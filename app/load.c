/* load.c - walk, filter, order, render and tokenize a codebase (see load.h). */
#include "app/load.h"
#include "app/chat.h"

#include "common/err.h"
#include "common/fs.h"
#include "common/text.h"
#include "tools/registry.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LD_MIN_MARK_GAP 8192 /* tokens between group snapshots, at least */

/* ---------------------------------------------------------------- globs */

static int match_class(const char **pp, char c)
{
    const char *p = *pp + 1;
    int neg = *p == '!' || *p == '^', hit = 0;
    if (neg)
        p++;
    for (int first = 1; *p && (first || *p != ']'); first = 0, p++) {
        char lo = *p, hi = *p;
        if (p[1] == '-' && p[2] && p[2] != ']')
            hi = p[2], p += 2;
        if (c >= lo && c <= hi)
            hit = 1;
    }
    if (*p != ']')
        return -1; /* no closing bracket: the '[' is literal */
    *pp = p + 1;
    return hit != neg;
}

int ld_glob(const char *p, const char *s)
{
    for (; *p; p++, s++) {
        if (p[0] == '*' && p[1] == '*') {
            /* "**" spans directories; "**" followed by "/" may also match nothing */
            const char *rest = p + 2;
            if (*rest == '/')
                rest++;
            for (const char *t = s;; t++) {
                if ((t == s || t[-1] == '/') && ld_glob(rest, t))
                    return 1;
                if (!*t)
                    return !*rest;
            }
        }
        if (*p == '*') {
            for (const char *t = s;; t++) {
                if (ld_glob(p + 1, t))
                    return 1;
                if (!*t || *t == '/')
                    return 0;
            }
        }
        if (!*s)
            return 0;
        if (*p == '?') {
            if (*s == '/')
                return 0;
            continue;
        }
        if (*p == '[') {
            const char *q = p;
            int m = match_class(&q, *s);
            if (m >= 0) {
                if (!m || *s == '/')
                    return 0;
                p = q - 1;
                continue;
            }
        }
        if (*p == '\\' && p[1])
            p++;
        if (*p != *s)
            return 0;
    }
    return !*s;
}

/* ---------------------------------------------------------------- ignore rules */

struct rule {
    char *pat;
    size_t base_len; /* the rule's directory: a prefix of the paths it applies to */
    int neg, dir_only, anchored;
};

struct rules {
    struct rule *v;
    int n, cap;
};

static int rules_add_file(struct rules *r, const char *abs_dir, const char *rel, const char *name)
{
    char path[PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", abs_dir, name);
    struct buf b = { 0 };
    if (fs_read_file(path, 1u << 20, &b) < 0) {
        buf_free(&b);
        return 0; /* absent or unreadable: no rules */
    }
    char *save = NULL;
    for (char *line = strtok_r(b.p ? b.p : (char *)"", "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\r' || (line[n - 1] == ' ' && (n < 2 || line[n - 2] != '\\'))))
            line[--n] = 0;
        if (!n || line[0] == '#')
            continue;
        struct rule ru = { .base_len = strlen(rel) };
        if (*line == '!')
            ru.neg = 1, line++;
        else if (*line == '\\' && (line[1] == '!' || line[1] == '#'))
            line++;
        n = strlen(line);
        if (n && line[n - 1] == '/')
            ru.dir_only = 1, line[--n] = 0;
        if (*line == '/')
            ru.anchored = 1, line++;
        if (strchr(line, '/'))
            ru.anchored = 1;
        if (!*line)
            continue;
        if (r->n == r->cap) {
            int cap = r->cap ? r->cap * 2 : 32;
            struct rule *v = realloc(r->v, (size_t)cap * sizeof *v);
            if (!v) {
                buf_free(&b);
                return err_set(ERR_NOMEM, "out of memory");
            }
            r->v = v, r->cap = cap;
        }
        if (!(ru.pat = strdup(line))) {
            buf_free(&b);
            return err_set(ERR_NOMEM, "out of memory");
        }
        r->v[r->n++] = ru;
    }
    buf_free(&b);
    return 0;
}

static void rules_pop(struct rules *r, int n)
{
    while (r->n > n)
        free(r->v[--r->n].pat);
}

static int ignored(const struct rules *r, const char *rel, int is_dir)
{
    int ign = 0;
    const char *slash = strrchr(rel, '/'), *name = slash ? slash + 1 : rel;
    for (int i = 0; i < r->n; i++) {
        const struct rule *ru = &r->v[i];
        if (ru->dir_only && !is_dir)
            continue;
        const char *sub = rel + ru->base_len + (ru->base_len ? 1 : 0);
        if (ld_glob(ru->pat, ru->anchored ? sub : name))
            ign = !ru->neg;
    }
    return ign;
}

/* ---------------------------------------------------------------- walk */

struct walk {
    struct rules rules;
    struct ld_file *v;
    int n, cap;
    const struct ld_opts *o;
};

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_file(struct walk *w, const char *rel, const struct stat *st)
{
    if (w->n == w->cap) {
        int cap = w->cap ? w->cap * 2 : 256;
        struct ld_file *v = realloc(w->v, (size_t)cap * sizeof *v);
        if (!v)
            return err_set(ERR_NOMEM, "out of memory");
        w->v = v, w->cap = cap;
    }
    struct ld_file *f = &w->v[w->n];
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(rel)))
        return err_set(ERR_NOMEM, "out of memory");
    f->bytes = (size_t)st->st_size;
    f->mtime = (int64_t)st->st_mtime;
    w->n++;
    return 0;
}

static int selected(const struct ld_opts *o, const char *rel)
{
    for (int i = 0; i < o->nexclude; i++)
        if (ld_glob(o->exclude[i], rel))
            return 0;
    if (!o->ninclude)
        return 1;
    for (int i = 0; i < o->ninclude; i++)
        if (ld_glob(o->include[i], rel))
            return 1;
    return 0;
}

static int walk_dir(struct walk *w, const char *abs, const char *rel, int depth)
{
    if (depth > 64)
        return 0;
    int mark = w->rules.n, rc;
    if ((rc = rules_add_file(&w->rules, abs, rel, ".gitignore")) < 0 ||
        (rc = rules_add_file(&w->rules, abs, rel, ".lodeignore")) < 0)
        return rc;
    DIR *d = opendir(abs);
    if (!d) {
        rules_pop(&w->rules, mark);
        return depth ? 0 : err_errno("%s", abs);
    }
    char **names = NULL;
    int n = 0, cap = 0;
    rc = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, ".git"))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **v = realloc(names, (size_t)cap * sizeof *v);
            if (!v) {
                rc = err_set(ERR_NOMEM, "out of memory");
                break;
            }
            names = v;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = err_set(ERR_NOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    for (int i = 0; i < n && rc == 0; i++) {
        char a2[PATH_MAX], r2[PATH_MAX];
        if ((size_t)snprintf(a2, sizeof a2, "%s/%s", abs, names[i]) >= sizeof a2 ||
            (size_t)snprintf(r2, sizeof r2, "%s%s%s", rel, *rel ? "/" : "", names[i]) >= sizeof r2)
            continue;
        struct stat st;
        if (lstat(a2, &st) < 0 || S_ISLNK(st.st_mode))
            continue;
        int is_dir = S_ISDIR(st.st_mode);
        if (ignored(&w->rules, r2, is_dir))
            continue;
        if (is_dir)
            rc = walk_dir(w, a2, r2, depth + 1);
        else if (S_ISREG(st.st_mode) && selected(w->o, r2))
            rc = add_file(w, r2, &st);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    rules_pop(&w->rules, mark);
    return rc;
}

/* ---------------------------------------------------------------- classify, order */

static int generated_name(const char *path)
{
    static const char *const pats[] = {
        "*.min.js",   "*.min.css",   "*.map",  "package-lock.json", "yarn.lock", "pnpm-lock.yaml",
        "Cargo.lock", "poetry.lock", "go.sum", "*.pb.go",           "*_pb2.py",  "*.pb.h",
        "*.pb.cc",    "uv.lock",
    };
    const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++)
        if (ld_glob(pats[i], name))
            return 1;
    return 0;
}

/* Why a file is skipped (NULL: it is loadable); reads it. */
static const char *classify(const char *root, struct ld_file *f, size_t max_file, struct buf *b)
{
    if (f->bytes > max_file)
        return "huge";
    if (generated_name(f->path))
        return "generated";
    char path[PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", root, f->path);
    if (fs_read_file(path, max_file, b) < 0)
        return "unreadable";
    f->bytes = b->len;
    if (b->len && memchr(b->p, 0, b->len < 8000 ? b->len : 8000))
        return "binary";
    if (!utf8_valid(b->p ? b->p : "", b->len, NULL))
        return "binary";
    /* a marker in the first few lines: "DO NOT EDIT", "@generated", "Code generated" */
    size_t head = b->len < 1024 ? b->len : 1024;
    char save = head < b->len ? b->p[head] : 0;
    if (head < b->len)
        b->p[head] = 0;
    int gen = head && (strstr(b->p, "DO NOT EDIT") || strstr(b->p, "@generated") ||
                       strstr(b->p, "Code generated"));
    if (head < b->len)
        b->p[head] = save;
    return gen ? "generated" : NULL;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const struct ld_file *)a)->path, ((const struct ld_file *)b)->path);
}

static int by_stability(const void *pa, const void *pb)
{
    const struct ld_file *a = pa, *b = pb;
    if ((a->why != NULL) != (b->why != NULL))
        return a->why ? 1 : -1;
    if (a->changes != b->changes)
        return a->changes < b->changes ? -1 : 1;
    if (a->mtime != b->mtime)
        return a->mtime < b->mtime ? -1 : 1;
    return strcmp(a->path, b->path);
}

/* Counts commits per path from git history (files sorted by path). 1 when git answered. */
static int git_changes(const char *dir, struct ld_file *v, int n)
{
    if (strchr(dir, '\''))
        return 0;
    char cmd[PATH_MAX + 200];
    snprintf(cmd, sizeof cmd,
             "git -C '%s' log --format= --name-only --relative -n 5000 -- . 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    if (!p)
        return 0;
    char line[PATH_MAX + 8];
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        if (!*line)
            continue;
        struct ld_file key = { .path = line };
        struct ld_file *f = bsearch(&key, v, (size_t)n, sizeof *v, by_path);
        if (f)
            f->changes++;
    }
    return pclose(p) == 0;
}

/* ---------------------------------------------------------------- plan */

static const char *group_of(const char *path, size_t *len)
{
    const char *slash = strchr(path, '/');
    *len = slash ? (size_t)(slash - path) : 0;
    return path;
}

int ld_render(const char *dir, const struct ld_file *f, struct buf *out)
{
    char path[PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", dir, f->path);
    struct buf b = { 0 };
    int rc = fs_read_file(path, f->bytes + 1, &b);
    if (rc == 0) {
        rc = buf_printf(out, "=== %s ===\n", f->path);
        if (rc == 0 && b.len)
            rc = buf_append(out, b.p, b.len);
        if (rc == 0 && (!b.len || b.p[b.len - 1] != '\n'))
            rc = buf_putc(out, '\n');
    }
    buf_free(&b);
    return rc;
}

void ld_plan_free(struct ld_plan *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->files[i].path);
    free(p->files);
    tok_ids_free(&p->ids);
    free(p->marks);
    memset(p, 0, sizeof *p);
}

int ld_plan_build(struct ld_plan *p, const char *dir, struct tok *t, const struct ld_opts *o)
{
    memset(p, 0, sizeof *p);
    struct walk w = { .o = o };
    int rc = walk_dir(&w, dir, "", 0);
    rules_pop(&w.rules, 0);
    free(w.rules.v);
    p->files = w.v;
    p->n = w.n;
    if (rc < 0) {
        ld_plan_free(p);
        return rc;
    }
    struct buf b = { 0 };
    for (int i = 0; i < p->n; i++)
        p->files[i].why = classify(dir, &p->files[i], o->max_file, &b);
    qsort(p->files, (size_t)p->n, sizeof *p->files, by_path);
    p->used_git = !o->no_git && git_changes(dir, p->files, p->n);
    qsort(p->files, (size_t)p->n, sizeof *p->files, by_stability);
    while (p->n_cand < p->n && !p->files[p->n_cand].why)
        p->n_cand++;
    p->marks = malloc((size_t)(p->n_cand + 1) * sizeof *p->marks);
    if (!p->marks)
        rc = err_set(ERR_NOMEM, "out of memory");
    long last_mark = 0;
    for (int i = 0; i < p->n_cand && rc == 0; i++) {
        struct ld_file *f = &p->files[i];
        buf_reset(&b);
        size_t before = p->ids.n;
        if ((rc = ld_render(dir, f, &b)) < 0 || (rc = tok_encode(t, b.p, b.len, 0, &p->ids)) < 0) {
            rc = err_prefix(rc, "%s", f->path);
            break;
        }
        f->tokens = (long)(p->ids.n - before);
        if ((long)p->ids.n > o->budget) {
            p->ids.n = before; /* this one and everything after it is left out */
            f->tokens = 0;
            break;
        }
        p->n_in = i + 1;
        size_t l1, l2;
        const char *g1 = group_of(f->path, &l1);
        const char *g2 = i + 1 < p->n_cand ? group_of(p->files[i + 1].path, &l2) : NULL;
        int ends = !g2 || l1 != l2 || memcmp(g1, g2, l1);
        if (ends && (long)p->ids.n - last_mark >= LD_MIN_MARK_GAP) {
            p->marks[p->nmarks++] = (long)p->ids.n;
            last_mark = (long)p->ids.n;
        }
    }
    buf_free(&b);
    if (rc < 0)
        ld_plan_free(p);
    return rc;
}

/* ---------------------------------------------------------------- in a conversation */

int ld_block(const char *dir, const struct ld_plan *p, struct buf *out, struct cJSON **files)
{
    cJSON *list = files ? cJSON_CreateArray() : NULL;
    int rc = files && !list ? ERR_NOMEM : buf_puts(out, "<files>\n");
    for (int i = 0; i < p->n_in && rc == 0; i++) {
        if ((rc = ld_render(dir, &p->files[i], out)) < 0)
            break;
        if (list && !cJSON_AddItemToArray(list, cJSON_CreateString(p->files[i].path)))
            rc = ERR_NOMEM;
    }
    if (rc == 0)
        rc = buf_puts(out, "</files>\n\n");
    if (rc < 0) {
        cJSON_Delete(list);
        return err_set(rc == ERR_NOMEM ? ERR_NOMEM : rc, "load %s: rendering the files: %s", dir,
                       err_msg());
    }
    if (files)
        *files = list;
    return 0;
}

int ld_context(const char *dir, const char *model_dir, long budget, struct buf *block,
               struct cJSON **files)
{
    char tp[PATH_MAX];
    if (!model_dir || !*model_dir)
        return err_set(ERR_INVAL, "load %s: no model (its tokenizer counts the budget)", dir);
    if (fs_join(tp, sizeof tp, model_dir, "tokenizer.json") < 0)
        return err_set(ERR_INVAL, "load %s: model path too long", dir);
    struct tok *t = NULL;
    struct ld_plan p = { 0 };
    struct ld_opts o = { .budget = budget, .max_file = 256 * 1024 };
    int rc = tok_open(&t, tp);
    if (rc == 0)
        rc = ld_plan_build(&p, dir, t, &o);
    if (rc == 0)
        rc = ld_block(dir, &p, block, files);
    ld_plan_free(&p);
    tok_close(t);
    return rc;
}

int ld_agent_prefix(const char *model_dir, const char *block, struct buf *out)
{
    /* The system content is block + the system prompt; any text after the block renders the
     * same prefix, as the template puts the tools first and the content after them. */
    static const char tail[] = "You are lode.";
    struct tpl *tp = NULL;
    const char *from;
    struct buf tools = { 0 }, content = { 0 };
    cJSON *msgs = NULL, *tl = NULL;
    char *text = NULL;
    size_t n = 0;
    int rc = chat_template_open(model_dir, &tp, &from);
    if (rc == 0)
        rc = tool_schemas_json(&tools);
    if (rc == 0 && (rc = buf_puts(&content, block)) == 0)
        rc = buf_puts(&content, tail);
    if (rc == 0) {
        tl = cJSON_Parse(tools.p ? tools.p : "[]");
        msgs = cJSON_CreateArray();
        cJSON *m = cJSON_CreateObject(), *q = cJSON_CreateObject();
        /* a user message too: the template wants one */
        if (!tl || !msgs || !m || !cJSON_AddItemToArray(msgs, m) || !q ||
            !cJSON_AddItemToArray(msgs, q) || !cJSON_AddStringToObject(m, "role", "system") ||
            !cJSON_AddStringToObject(m, "content", content.p) ||
            !cJSON_AddStringToObject(q, "role", "user") ||
            !cJSON_AddStringToObject(q, "content", "hi"))
            rc = err_set(ERR_NOMEM, "load: out of memory rendering the prompt");
    }
    struct tpl_opts to = { .add_generation_prompt = 0, .enable_thinking = TPL_TRUE };
    if (rc == 0)
        rc = tpl_render(tp, msgs, tl, &to, &text, &n);
    const char *at = NULL;
    if (rc == 0) {
        size_t k = strlen(block);
        at = k <= n ? memmem(text, n, block, k) : NULL;
        if (!at)
            rc = err_set(ERR_INVAL, "load: the chat template does not show the system message");
        else
            rc = buf_append(out, text, (size_t)(at - text) + k);
    }
    free(text);
    cJSON_Delete(msgs);
    cJSON_Delete(tl);
    buf_free(&tools);
    buf_free(&content);
    tpl_close(tp);
    return rc < 0 ? err_prefix(rc, "load: the agent's prompt") : 0;
}
