/* search_tools.c - grep (PCRE2) and glob over a policy-checked tree (see search_tools.h). */
#include "tools/search_tools.h"

#include "common/ckd.h"
#include "common/err.h"
#include "common/text.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 64
#define LINE_SHOWN 300

/* budget: steps left, so a pattern like "**" "/a*" repeated cannot take
 * exponential time on a deep path (the match then fails). */
static int match_b(const char *pat, const char *path, long *budget)
{
    if (--*budget < 0)
        return 0;
    if (pat[0] == '*' && pat[1] == '*' && (pat[2] == '/' || pat[2] == 0)) {
        const char *rest = pat[2] ? pat + 3 : pat + 2;
        while (rest[0] == '*' && rest[1] == '*' &&
               rest[2] == '/') /* a repeated double star is one */
            rest += 3;
        if (!*rest || (rest[0] == '*' && rest[1] == '*' && !rest[2]))
            return 1;
        for (const char *s = path;; s++) {
            if ((s == path || s[-1] == '/') && match_b(rest, s, budget))
                return 1;
            if (!*s || *budget < 0)
                return 0;
        }
    }
    const char *pe = strchr(pat, '/'), *se = strchr(path, '/');
    size_t pn = pe ? (size_t)(pe - pat) : strlen(pat), sn = se ? (size_t)(se - path) : strlen(path);
    char ps[1024], ss[1024];
    if (pn >= sizeof ps || sn >= sizeof ss)
        return 0;
    memcpy(ps, pat, pn);
    ps[pn] = 0;
    memcpy(ss, path, sn);
    ss[sn] = 0;
    if (fnmatch(ps, ss, 0) != 0)
        return 0;
    if (!pe)
        return !se;
    return se ? match_b(pe + 1, se + 1, budget) : 0;
}

int srch_match(const char *pat, const char *path)
{
    long budget = 100000;
    return match_b(pat, path, &budget);
}

/* ---- the walk ---- */

struct rule {
    char *pat;
    char *base; /* directory of the .gitignore, relative to the walk root ("" = root) */
    char *up;   /* rules from above the walk root: the walk root relative to their
                 * directory ("src/lib"); NULL otherwise */
    int dir_only, anchored, negate;
};

struct walk {
    const struct tool_ctx *c;
    struct tool_result *r;
    char root_real[POL_PATH_MAX];
    const char *shown_prefix; /* what the model gave as path, for the paths we print */
    struct rule *rules;
    size_t nrules, cap;
    size_t visited, listed;
    int stopped; /* a cap was reached */
    int nomem;
    /* per tool */
    int (*on_file)(struct walk *w, int dfd, const char *name, const char *rel);
    const char *glob; /* glob: the pattern; grep: the optional file filter */
    pcre2_code *re;   /* grep */
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    size_t files_searched, match_errors;
};

static int ignored(const struct walk *w, const char *rel, int is_dir)
{
    int ign = 0;
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    for (size_t i = 0; i < w->nrules; i++) {
        const struct rule *u = &w->rules[i];
        if (u->dir_only && !is_dir)
            continue;
        size_t bl = strlen(u->base);
        if (bl && (strncmp(rel, u->base, bl) != 0 || rel[bl] != '/'))
            continue;
        const char *sub = bl ? rel + bl + 1 : rel;
        char upsub[POL_PATH_MAX * 2];
        if (u->up && u->anchored) {
            if (snprintf(upsub, sizeof upsub, "%s/%s", u->up, rel) >= (int)sizeof upsub)
                continue;
            sub = upsub;
        }
        int m = u->anchored ? srch_match(u->pat, sub) : fnmatch(u->pat, base, 0) == 0;
        if (m)
            ign = !u->negate;
    }
    return ign;
}

/* Reads the ignore file `name` in dfd (if any: .gitignore, or
 * .git/info/exclude) and pushes its rules; returns how many. rel: the
 * file's directory below the walk root; up: see struct rule. */
static size_t push_ignore_file(struct walk *w, int dfd, const char *name, const char *rel,
                               const char *up)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return 0;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return 0;
    }
    char text[65536];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return 0;
    text[n] = 0;
    size_t added = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = 0;
        if (!len || line[0] == '#')
            continue;
        struct rule u = { 0 };
        if (line[0] == '!')
            u.negate = 1, line++, len--;
        if (len && line[len - 1] == '/')
            u.dir_only = 1, line[--len] = 0;
        if (line[0] == '/')
            u.anchored = 1, line++, len--;
        if (!len)
            continue;
        if (strchr(line, '/'))
            u.anchored = 1;
        if (w->nrules == w->cap) {
            size_t ncap = w->cap ? w->cap * 2 : 32, bytes;
            struct rule *nr;
            if (ckd_mul_sz(&bytes, ncap, sizeof *nr) || !(nr = realloc(w->rules, bytes))) {
                w->nomem = 1;
                break;
            }
            w->rules = nr;
            w->cap = ncap;
        }
        u.pat = strdup(line);
        u.base = strdup(rel);
        u.up = up ? strdup(up) : NULL;
        if (!u.pat || !u.base || (up && !u.up)) {
            free(u.pat);
            free(u.base);
            free(u.up);
            w->nomem = 1;
            break;
        }
        w->rules[w->nrules++] = u;
        added++;
    }
    return added;
}

static void pop_rules(struct walk *w, size_t n)
{
    while (n-- && w->nrules) {
        w->nrules--;
        free(w->rules[w->nrules].pat);
        free(w->rules[w->nrules].base);
        free(w->rules[w->nrules].up);
    }
}

/* Reads the first line of the small text file `name` in dfd into out (without the newline);
 * 0, or -1 when it is missing, not a regular file or empty. */
static int read_line_at(int dfd, const char *name, char *out, size_t cap)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct stat st;
    ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, out, cap - 1) : -1;
    close(fd);
    if (n <= 0)
        return -1;
    out[n] = 0;
    out[strcspn(out, "\r\n")] = 0;
    return out[0] ? 0 : -1;
}

/* The info directory of the repository whose working tree is dfd, opened (caller closes), or
 * -1. `.git` is a directory in a plain clone; in a worktree or a submodule checkout it is a file
 * "gitdir: PATH" (relative to the working tree or absolute), and a worktree's git directory names
 * the shared one in its "commondir" file: info/exclude lives there. Only ignore rules are read
 * from it, never file contents. */
static int open_git_info(int dfd)
{
    int dirflags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    int g = openat(dfd, ".git/info", dirflags | O_NOFOLLOW);
    if (g >= 0)
        return g;
    char line[POL_PATH_MAX];
    if (read_line_at(dfd, ".git", line, sizeof line) < 0 || strncmp(line, "gitdir:", 7))
        return -1;
    const char *path = line + 7;
    path += strspn(path, " \t");
    int gd = openat(dfd, path, dirflags);
    if (gd < 0)
        return -1;
    char common[POL_PATH_MAX];
    if (read_line_at(gd, "commondir", common, sizeof common) == 0) {
        int cd = openat(gd, common, dirflags);
        close(gd);
        if (cd < 0)
            return -1;
        gd = cd;
    }
    g = openat(gd, "info", dirflags | O_NOFOLLOW);
    close(gd);
    return g;
}

/* Before a walk: the rules that apply from above its root, as git applies
 * them, lowest precedence first: the repository's .git/info/exclude, then
 * each .gitignore from the repository root (or the workspace root when
 * there is no repository) down to the walk root's parent. The walk root's
 * own .gitignore and those below it are read by walk_dir. Only directories
 * inside the workspace are considered. */
static void push_ancestors(struct walk *w)
{
    const char *ws = pol_workspace(w->c->pol);
    size_t wl = strlen(ws);
    if (strncmp(w->root_real, ws, wl) || (w->root_real[wl] && w->root_real[wl] != '/'))
        return; /* outside the workspace: only the tree's own .gitignore files */
    const char *below = w->root_real[wl] ? w->root_real + wl + 1 : ""; /* root below ws */
    /* the repository root: the deepest directory from ws to the walk root with a .git dir */
    char dir[POL_PATH_MAX];
    size_t git_at = (size_t)-1; /* length of the repository root's path below ws */
    size_t blen = strlen(below);
    for (size_t len = 0;;) {
        struct stat st;
        if (snprintf(dir, sizeof dir, "%s%s%.*s/.git", ws, len ? "/" : "", (int)len, below) <
                (int)sizeof dir &&
            lstat(dir, &st) == 0 && (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
            git_at = len; /* a .git file: a worktree or submodule checkout */
        if (len == blen)
            break;
        const char *next = strchr(below + len + (len ? 1 : 0), '/');
        len = next ? (size_t)(next - below) : blen;
    }
    size_t start = git_at == (size_t)-1 ? 0 : git_at;
    /* up: the walk root relative to a directory at below[0..len) */
    for (size_t len = start;;) {
        const char *up = below[len] == '/' ? below + len + 1 : below + len;
        if (!*up)
            break; /* the walk root itself: walk_dir reads it */
        if (snprintf(dir, sizeof dir, "%s%s%.*s", ws, len ? "/" : "", (int)len, below) >=
            (int)sizeof dir)
            break;
        if (!(pol_classify(w->c->pol, dir, NULL, 0) & POL_READ))
            break;
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
            break;
        if (len == start && git_at != (size_t)-1) {
            int g = open_git_info(dfd);
            if (g >= 0) {
                push_ignore_file(w, g, "exclude", "", up);
                close(g);
            }
        }
        push_ignore_file(w, dfd, ".gitignore", "", up);
        close(dfd);
        const char *next = strchr(up, '/');
        len = (size_t)((next ? next : up + strlen(up)) - below);
    }
    /* the walk root is the repository root: its exclude file, before its .gitignore */
    if (git_at == blen) {
        int g = openat(AT_FDCWD, w->root_real, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = g >= 0 ? open_git_info(g) : -1;
        if (e >= 0) {
            push_ignore_file(w, e, "exclude", "", NULL);
            close(e);
        }
        if (g >= 0)
            close(g);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Visits the directory dfd (rel: its path below the walk root) in sorted order. */
static void walk_dir(struct walk *w, int dfd, const char *rel, int depth)
{
    if (depth > MAX_DEPTH || w->stopped || w->nomem)
        return;
    size_t pushed = push_ignore_file(w, dfd, ".gitignore", rel, NULL);
    int dup = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
    if (!d) {
        if (dup >= 0)
            close(dup);
        pop_rules(w, pushed);
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, ".git"))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64, bytes;
            char **nn;
            if (ckd_mul_sz(&bytes, ncap, sizeof *nn) || !(nn = realloc(names, bytes))) {
                w->nomem = 1;
                break;
            }
            names = nn;
            cap = ncap;
        }
        if (!(names[n] = strdup(e->d_name))) {
            w->nomem = 1;
            break;
        }
        n++;
    }
    closedir(d);
    if (names)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !w->stopped && !w->nomem; i++) {
        if (++w->visited > w->c->walk_max) {
            w->stopped = 1;
            break;
        }
        char crel[POL_PATH_MAX], real[POL_PATH_MAX * 2];
        int k = snprintf(crel, sizeof crel, "%s%s%s", rel, rel[0] ? "/" : "", names[i]);
        if (k < 0 || (size_t)k >= sizeof crel)
            continue;
        struct stat st;
        if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISLNK(st.st_mode))
            continue; /* symlinks are not followed: the walk stays in the checked tree */
        int is_dir = S_ISDIR(st.st_mode);
        if (ignored(w, crel, is_dir))
            continue;
        /* hidden paths (configuration) are skipped like the policy hides them */
        snprintf(real, sizeof real, "%s/%s", w->root_real, crel);
        if (!(pol_classify(w->c->pol, real, NULL, 0) & POL_READ))
            continue;
        if (is_dir) {
            int sub = openat(dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                walk_dir(w, sub, crel, depth + 1);
                close(sub);
            }
        } else if (S_ISREG(st.st_mode)) {
            if (w->on_file(w, dfd, names[i], crel) < 0)
                w->nomem = 1;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    pop_rules(w, pushed);
}

static int put_path(struct walk *w, const char *rel)
{
    if (w->shown_prefix)
        return buf_printf(&w->r->text, "%s/%s", w->shown_prefix, rel);
    return buf_puts(&w->r->text, rel);
}

/* The prefix printed before relative paths: none for the workspace itself. */
static const char *prefix_of(const char *path)
{
    if (!path || !path[0] || !strcmp(path, ".") || !strcmp(path, "./"))
        return NULL;
    return path;
}

static void walk_free(struct walk *w)
{
    pop_rules(w, w->nrules);
    free(w->rules);
    pcre2_match_data_free(w->md);
    pcre2_match_context_free(w->mctx);
    pcre2_code_free(w->re);
}

/* ---- glob ---- */

static int glob_file(struct walk *w, int dfd, const char *name, const char *rel)
{
    (void)dfd;
    (void)name;
    int m = strchr(w->glob, '/')
                ? srch_match(w->glob, rel)
                : fnmatch(w->glob, strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel, 0) == 0;
    if (!m)
        return 0;
    if (w->listed >= w->c->match_max) {
        w->stopped = 1;
        return 0;
    }
    w->listed++;
    int rc = put_path(w, rel);
    return rc ? rc : buf_putc(&w->r->text, '\n');
}

int srch_glob(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r)
{
    const char *pat = NULL, *path = NULL;
    if (tool_arg_str(args, "pattern", 1, &pat, r) || tool_arg_str(args, "path", 0, &path, r))
        return 0;
    if (!pat[0])
        return tool_fail(r, "glob: the pattern is empty");
    struct walk w = { 0 };
    w.c = c;
    w.r = r;
    w.glob = pat[0] == '/' ? pat + 1 : pat;
    w.on_file = glob_file;
    w.shown_prefix = prefix_of(path);
    int dfd;
    if (pol_open_dir(c->pol, path, &dfd, w.root_real, sizeof w.root_real) < 0)
        return tool_fail(r, "glob: %s", err_msg());
    push_ancestors(&w);
    walk_dir(&w, dfd, "", 0);
    close(dfd);
    int rc = 0;
    if (w.nomem)
        rc = err_set(ERR_NOMEM, "out of memory in glob");
    else if (w.listed == 0)
        rc = buf_printf(&r->text, "no files match %s\n", pat);
    else if (w.stopped)
        rc = buf_printf(&r->text, "[stopped after %zu paths or %zu entries; narrow the pattern]\n",
                        w.listed, c->walk_max);
    walk_free(&w);
    return rc;
}

/* ---- grep ---- */

static int grep_fd(struct walk *w, int fd, const char *rel)
{
    struct stat st;
    FILE *f = NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > w->c->file_max ||
        !(f = fdopen(fd, "r"))) {
        close(fd); /* this function owns fd */
        return 0;
    }
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    long long lineno = 0;
    int rc = 0;
    w->files_searched++;
    while (rc == 0 && !w->stopped && (n = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        if (memchr(line, 0, len))
            break; /* binary file: skip the rest */
        if (len && line[len - 1] == '\n')
            len--;
        int m = pcre2_match(w->re, (PCRE2_SPTR)line, len, 0, 0, w->md, w->mctx);
        if (m < 0) {
            if (m != PCRE2_ERROR_NOMATCH)
                w->match_errors++; /* match limit, bad UTF-8: the line is skipped */
            continue;
        }
        if (w->listed >= w->c->match_max) {
            w->stopped = 1;
            break;
        }
        w->listed++;
        rc = put_path(w, rel);
        size_t show = len > LINE_SHOWN ? utf8_complete_prefix(line, LINE_SHOWN) : len;
        if (rc == 0)
            rc = buf_printf(&w->r->text, ":%lld:", lineno);
        if (rc == 0)
            rc = buf_append(&w->r->text, line, show);
        if (rc == 0)
            rc = buf_puts(&w->r->text, show < len ? " [...]\n" : "\n");
    }
    free(line);
    fclose(f);
    return rc;
}

static int grep_file(struct walk *w, int dfd, const char *name, const char *rel)
{
    if (w->glob &&
        !(strchr(w->glob, '/') ? srch_match(w->glob, rel) : fnmatch(w->glob, name, 0) == 0))
        return 0;
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return 0;
    char probe[8192];
    ssize_t n = pread(fd, probe, sizeof probe, 0);
    if (n < 0 || memchr(probe, 0, (size_t)n)) {
        close(fd);
        return 0; /* binary files are skipped */
    }
    return grep_fd(w, fd, rel);
}

int srch_grep(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r)
{
    const char *pat = NULL, *path = NULL, *glob = NULL;
    if (tool_arg_str(args, "pattern", 1, &pat, r) || tool_arg_str(args, "path", 0, &path, r) ||
        tool_arg_str(args, "glob", 0, &glob, r))
        return 0;
    struct walk w = { 0 };
    w.c = c;
    w.r = r;
    w.glob = glob && glob[0] ? glob : NULL;
    w.on_file = grep_file;
    w.shown_prefix = prefix_of(path);
    int ecode;
    PCRE2_SIZE eoff;
    w.re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                         PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ecode, &eoff, NULL);
    if (!w.re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ecode, msg, sizeof msg);
        return tool_fail(r, "grep: bad pattern at offset %zu: %s", (size_t)eoff, (char *)msg);
    }
    w.md = pcre2_match_data_create_from_pattern(w.re, NULL);
    w.mctx = pcre2_match_context_create(NULL);
    if (!w.md || !w.mctx) {
        walk_free(&w);
        return err_set(ERR_NOMEM, "out of memory in grep");
    }
    /* bounded backtracking: a pathological pattern fails per line, never hangs */
    pcre2_set_match_limit(w.mctx, 1000000);
    pcre2_set_depth_limit(w.mctx, 10000);
    int dfd, rc = pol_open_dir(c->pol, path, &dfd, w.root_real, sizeof w.root_real);
    if (rc == ERR_INVAL && path) { /* a single file */
        int fd;
        if (pol_open_file(c->pol, path, O_RDONLY, 0, &fd, NULL, 0) < 0) {
            walk_free(&w);
            return tool_fail(r, "grep: %s", err_msg());
        }
        w.shown_prefix = NULL;
        rc = grep_fd(&w, fd, path);
    } else if (rc < 0) {
        walk_free(&w);
        return tool_fail(r, "grep: %s", err_msg());
    } else {
        push_ancestors(&w);
        walk_dir(&w, dfd, "", 0);
        close(dfd);
        rc = 0;
    }
    if (rc == 0 && w.nomem)
        rc = err_set(ERR_NOMEM, "out of memory in grep");
    if (rc == 0 && w.listed == 0)
        rc = buf_printf(&r->text, "no matches (%zu files searched)\n", w.files_searched);
    else if (rc == 0 && w.stopped)
        rc = buf_printf(&r->text,
                        "[stopped after %zu matches or %zu entries; narrow the pattern, path or "
                        "glob]\n",
                        w.listed, c->walk_max);
    if (rc == 0 && w.match_errors)
        rc = buf_printf(&r->text, "[%zu lines skipped: match limit or invalid UTF-8]\n",
                        w.match_errors);
    walk_free(&w);
    return rc;
}
