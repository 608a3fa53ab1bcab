/*
 * policy.c - the one path policy: resolution with symlinks, decisions, and
 * descriptor-returning opens (see policy.h for the semantics).
 *
 * Resolution never lets the kernel follow a symlink we have not looked at in
 * the checked walk: each component is opened with O_PATH | O_NOFOLLOW relative
 * to the previous descriptor, a symlink is read from its own descriptor and
 * its text spliced into the rest of the path (at most POL_MAX_HOPS times). The
 * real path is built alongside, so it always names what the descriptors hold.
 * With openat2 the kernel does the same walk (RESOLVE_NO_MAGICLINKS, and
 * RESOLVE_BENEATH for writes) and the real path is read back from /proc.
 */
#include "tools/policy.h"

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <dirent.h>
#include <strings.h>

#define POL_MAX_HOPS 40

/* openat2(2): declared here so old headers still build (Linux 5.6 ABI). */
struct pol_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};
#define POL_RESOLVE_NO_MAGICLINKS 0x02
#define POL_RESOLVE_BENEATH 0x08
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

struct plist {
    char **v;
    int n, cap;
};

struct pol {
    char ws[POL_PATH_MAX];  /* real path of the workspace */
    char tmp[POL_PATH_MAX]; /* real path of the private temp dir ("" until made) */
    char home[POL_PATH_MAX];
    int ws_fd, tmp_fd;   /* O_PATH | O_DIRECTORY */
    struct plist prot;   /* protected absolute paths (never writable) */
    struct plist inroot; /* the subset inside a writable root (sandbox mounts) */
    struct plist hidden;
    int openat2; /* 1: use openat2 */
};

static const char *const rc_names[] = { POL_RC_NAMES };
#define N_RC (int)(sizeof rc_names / sizeof rc_names[0])

/* ---- small path helpers ---- */

static int plist_add(struct plist *l, const char *s)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s))
            return 0;
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 16;
        char **nv = realloc(l->v, (size_t)nc * sizeof *nv);
        if (!nv)
            return err_set(ERR_NOMEM, "path policy: out of memory");
        l->v = nv;
        l->cap = nc;
    }
    if (!(l->v[l->n] = strdup(s)))
        return err_set(ERR_NOMEM, "path policy: out of memory");
    l->n++;
    return 0;
}

static void plist_free(struct plist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* 1 when path equals prefix or lies below it. */
static int under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    if (n == 1 && prefix[0] == '/')
        return path[0] == '/';
    return !strncmp(path, prefix, n) && (path[n] == 0 || path[n] == '/');
}

/* Appends "/name" to a real path in place (cap bytes). */
static int path_push(char *real, size_t cap, const char *name, size_t n)
{
    size_t len = strlen(real);
    if (len == 1 && real[0] == '/')
        len = 0;
    if (len + 1 + n + 1 > cap)
        return err_set(ERR_INVAL, "path too long");
    real[len] = '/';
    memcpy(real + len + 1, name, n);
    real[len + 1 + n] = 0;
    return 0;
}

static void path_pop(char *real)
{
    char *s = strrchr(real, '/');
    if (!s || s == real)
        strcpy(real, "/");
    else
        *s = 0;
}

/* A lexical absolute form of `path` (relative = to base): "." and ".." and
 * repeated slashes folded, no filesystem access. */
static int lexical_abs(const char *base, const char *path, char *out, size_t cap)
{
    char tmp[POL_PATH_MAX];
    strcpy(tmp, "/");
    if (path[0] != '/') {
        if (strlen(base) >= sizeof tmp)
            return err_set(ERR_INVAL, "path too long");
        strcpy(tmp, base);
    }
    for (const char *s = path; *s;) {
        while (*s == '/')
            s++;
        const char *e = s;
        while (*e && *e != '/')
            e++;
        size_t n = (size_t)(e - s);
        if (n == 0 || (n == 1 && s[0] == '.')) {
        } else if (n == 2 && s[0] == '.' && s[1] == '.')
            path_pop(tmp);
        else if (path_push(tmp, sizeof tmp, s, n) < 0)
            return ERR_INVAL;
        s = e;
    }
    if (strlen(tmp) >= cap)
        return err_set(ERR_INVAL, "path too long");
    strcpy(out, tmp);
    return 0;
}

/* The real form of a configured path that may not exist: realpath of the
 * longest existing prefix, the rest appended lexically. */
static int real_or_lexical(const char *base, const char *path, char *out, size_t cap)
{
    char lex[POL_PATH_MAX], probe[POL_PATH_MAX], rp[PATH_MAX];
    if (lexical_abs(base, path, lex, sizeof lex) < 0)
        return ERR_INVAL;
    strcpy(probe, lex);
    while (!realpath(probe, rp)) {
        if (!strcmp(probe, "/"))
            return snprintf(out, cap, "%s", lex) < (int)cap ? 0 : ERR_INVAL;
        path_pop(probe);
    }
    const char *rest = lex + (strcmp(probe, "/") ? strlen(probe) : 0);
    if (snprintf(out, cap, "%s%s", strcmp(rp, "/") ? rp : "", rest) >= (int)cap)
        return err_set(ERR_INVAL, "path too long");
    if (!out[0])
        strcpy(out, "/");
    return 0;
}

/* A configured path (sandbox.read_only, sandbox.hidden): "~" and "~/x" are
 * under $HOME, relative paths under the workspace. */
static int config_path(const struct pol *p, const char *key, const char *path, char *out,
                       size_t cap)
{
    char exp[POL_PATH_MAX];
    if (path[0] == '~' && (path[1] == '/' || !path[1])) {
        if (!p->home[0])
            return err_set(ERR_INVAL, "%s: %s: no home directory to expand ~", key, path);
        if (snprintf(exp, sizeof exp, "%s%s", p->home, path + 1) >= (int)sizeof exp)
            return err_set(ERR_INVAL, "%s: %s: path too long", key, path);
        path = exp;
    }
    if (!path[0])
        return err_set(ERR_INVAL, "%s: empty path", key);
    int rc = real_or_lexical(p->ws, path, out, cap);
    return rc < 0 ? err_set(rc, "%s: %s: path too long", key, path) : 0;
}

/* ---- decisions ---- */

static int is_rc_name(const char *name)
{
    for (int i = 0; i < N_RC; i++)
        if (!strcmp(name, rc_names[i]))
            return 1;
    return 0;
}

/* Whether the component starting at s (ending at '/' or NUL) equals name. */
static int comp_is(const char *s, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(s, name, n) && (s[n] == 0 || s[n] == '/');
}

/* git's later-executed files in a git directory: "hooks" (and below) and
 * "config" / "config.worktree", directly in a .git directory or in the
 * per-submodule and per-worktree directories inside it
 * (.git/modules/NAME/..., nested, and .git/worktrees/NAME/...). */
static int git_protected(const char *real)
{
    for (const char *s = strstr(real, "/.git/"); s; s = strstr(s + 1, "/.git/")) {
        const char *t = s + 6; /* a component directly in a git directory */
        for (;;) {
            if (comp_is(t, "hooks") || comp_is(t, "config") || comp_is(t, "config.worktree"))
                return 1;
            if (!comp_is(t, "modules") && !comp_is(t, "worktrees"))
                break;
            const char *name = strchr(t, '/'); /* modules/NAME/ is a git directory again */
            if (!name || !(t = strchr(name + 1, '/')))
                break;
            t++;
        }
    }
    return 0;
}

int pol_classify(const struct pol *p, const char *real, char *why, size_t cap)
{
    char dummy[8];
    if (!why)
        why = dummy, cap = sizeof dummy;
    why[0] = 0;
    for (int i = 0; i < p->hidden.n; i++)
        if (under(real, p->hidden.v[i])) {
            snprintf(why, cap, "%s is hidden by configuration (sandbox.hidden)", real);
            return 0;
        }
    if (git_protected(real)) {
        snprintf(why, cap,
                 "%s is protected: .git/hooks and .git/config are never writable "
                 "(git runs them later, outside the sandbox)",
                 real);
        return POL_READ;
    }
    const char *slash = strrchr(real, '/');
    if (slash && is_rc_name(slash + 1)) {
        char parent[POL_PATH_MAX];
        snprintf(parent, sizeof parent, "%.*s", (int)(slash - real), real);
        if (!parent[0])
            strcpy(parent, "/");
        if ((p->home[0] && !strcmp(parent, p->home)) || !strcmp(parent, p->ws) ||
            (p->tmp[0] && !strcmp(parent, p->tmp))) {
            snprintf(why, cap, "%s is protected: shell start-up files are never writable", real);
            return POL_READ;
        }
    }
    for (int i = 0; i < p->prot.n; i++)
        if (under(real, p->prot.v[i])) {
            snprintf(why, cap,
                     "%s is protected: lode's own configuration, data and cache, git's "
                     "hooks directory (core.hooksPath) and configured read-only paths are "
                     "never writable",
                     real);
            return POL_READ;
        }
    if (under(real, p->ws) || (p->tmp[0] && under(real, p->tmp)))
        return POL_READ | POL_WRITE;
    snprintf(why, cap,
             "%s is outside the workspace %s (writable: the workspace and lode's private temp dir)",
             real, p->ws);
    return POL_READ;
}

/* ---- resolution ---- */

/* The real path of a descriptor, from /proc. 0 or -1. */
static int fd_real(int fd, char *out, size_t cap)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1 || out[0] != '/')
        return -1;
    out[n] = 0;
    return 0;
}

/* The checked walk: resolves `path` (relative = to the workspace) as a
 * directory, following every symlink by reading it ourselves. On 0 *fd is an
 * O_PATH directory descriptor and real its path. */
static int walk_dir(struct pol *p, const char *path, int *fd, char *real, size_t cap)
{
    char rest[2 * POL_PATH_MAX];
    if (strlen(path) >= sizeof rest)
        return err_set(ERR_INVAL, "%s: path too long", path);
    strcpy(rest, path);
    int cur = path[0] == '/' ? open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)
                             : fcntl(p->ws_fd, F_DUPFD_CLOEXEC, 0);
    if (cur < 0)
        return err_errno("%s", path);
    snprintf(real, cap, "%s", path[0] == '/' ? "/" : p->ws);
    int hops = 0;
    size_t pos = 0;
    while (rest[pos]) {
        while (rest[pos] == '/')
            pos++;
        size_t b = pos;
        while (rest[pos] && rest[pos] != '/')
            pos++;
        size_t n = pos - b;
        if (n == 0 || (n == 1 && rest[b] == '.'))
            continue;
        char comp[NAME_MAX + 1];
        if (n > NAME_MAX) {
            close(cur);
            return err_set(ERR_INVAL, "%s: a component is longer than %d bytes", path, NAME_MAX);
        }
        memcpy(comp, rest + b, n);
        comp[n] = 0;
        if (!strcmp(comp, "..")) {
            int up = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (up < 0) {
                close(cur);
                return err_errno("%s", path);
            }
            close(cur);
            cur = up;
            path_pop(real);
            continue;
        }
        int nfd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0) {
            int e = errno;
            close(cur);
            if (e == ENOENT)
                return err_set(ERR_NOTFOUND, "%s: %s/%s does not exist", path, real, comp);
            errno = e;
            return err_errno("%s", path);
        }
        struct stat st;
        if (fstat(nfd, &st) < 0) {
            close(nfd);
            close(cur);
            return err_errno("%s", path);
        }
        if (S_ISLNK(st.st_mode)) {
            char target[POL_PATH_MAX];
            ssize_t tn = readlinkat(nfd, "", target, sizeof target - 1);
            close(nfd);
            if (tn <= 0 || ++hops > POL_MAX_HOPS) {
                close(cur);
                return err_set(ERR_INVAL, "%s: too many or unreadable symlinks", path);
            }
            target[tn] = 0;
            /* splice: target + rest-after-this-component */
            char nrest[2 * POL_PATH_MAX];
            if (snprintf(nrest, sizeof nrest, "%s/%s", target, rest + pos) >= (int)sizeof nrest) {
                close(cur);
                return err_set(ERR_INVAL, "%s: path too long", path);
            }
            strcpy(rest, nrest);
            pos = 0;
            if (target[0] == '/') {
                close(cur);
                if ((cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
                    return err_errno("/");
                strcpy(real, "/");
            }
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            close(nfd);
            close(cur);
            return err_set(ERR_INVAL, "%s: %s/%s is not a directory", path, real, comp);
        }
        close(cur);
        cur = nfd;
        if (path_push(real, cap, comp, n) < 0) {
            close(cur);
            return err_prefix(ERR_INVAL, "%s", path);
        }
    }
    *fd = cur;
    return 0;
}

/* Resolves the directory part of a path. beneath: the write case, where the
 * kernel must keep the walk inside the workspace (openat2 only; the walk's
 * result is checked by pol_classify either way). */
static int open_dirpart(struct pol *p, const char *dir, int beneath, int *fd, char *real,
                        size_t cap)
{
    if (p->openat2) {
        const char *rel = dir;
        int base = p->ws_fd;
        if (beneath && dir[0] == '/') {
            /* absolute: only spellings under the workspace can be beneath it */
            if (under(dir, p->ws)) {
                rel = dir + strlen(p->ws);
                while (*rel == '/')
                    rel++;
            } else if (p->tmp[0] && under(dir, p->tmp)) {
                rel = dir + strlen(p->tmp);
                while (*rel == '/')
                    rel++;
                base = p->tmp_fd;
            } else
                beneath = 0; /* decided by classification on the real path */
        }
        if (!*rel)
            rel = ".";
        struct pol_open_how how = { O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                                    POL_RESOLVE_NO_MAGICLINKS |
                                        (beneath ? POL_RESOLVE_BENEATH : 0) };
        long r;
        /* EAGAIN: a concurrent rename was seen during a RESOLVE_BENEATH walk */
        for (int tries = 0;; tries++) {
            r = syscall(SYS_openat2, base, rel, &how, sizeof how);
            if (r >= 0 || errno != EAGAIN || tries == 64)
                break;
        }
        if (r >= 0) {
            if (fd_real((int)r, real, cap) == 0) {
                *fd = (int)r;
                return 0;
            }
            close((int)r); /* no /proc: fall back to the walk */
        } else if (errno == EXDEV) {
            return err_set(ERR_DENIED,
                           "%s resolves outside the workspace %s (through .. or a symlink)", dir,
                           base == p->ws_fd ? p->ws : p->tmp);
        } else if (errno == ELOOP) {
            return err_set(ERR_DENIED, "%s: refused (a /proc magic link or a symlink loop)", dir);
        } else if (errno != ENOSYS && errno != EINVAL && errno != EPERM) {
            if (errno == ENOENT)
                return err_set(ERR_NOTFOUND, "%s does not exist", dir);
            if (errno == ENOTDIR)
                return err_set(ERR_INVAL, "%s: not a directory", dir);
            return err_errno("%s", dir);
        }
    }
    return walk_dir(p, dir, fd, real, cap);
}

/* Resolves a path to (parent dir fd, its real path, final name). Final
 * symlinks are followed here by re-resolving their target; name is "" when
 * the path names a directory through ".", ".." or a trailing slash. */
struct target {
    int dfd;
    char dreal[POL_PATH_MAX];
    char name[NAME_MAX + 1];
    char real[POL_PATH_MAX];
    struct stat st;
    int exists;
};

static int resolve(struct pol *p, const char *path, int want, struct target *t)
{
    char cur[2 * POL_PATH_MAX];
    t->dfd = -1;
    if (!path)
        return err_set(ERR_INVAL, "missing path");
    if (strlen(path) >= POL_PATH_MAX)
        return err_set(ERR_INVAL, "path too long (%zu bytes)", strlen(path));
    strcpy(cur, path[0] ? path : ".");
    for (int hops = 0;; hops++) {
        if (hops > POL_MAX_HOPS)
            return err_set(ERR_INVAL, "%s: too many symlinks", path);
        /* split off the last component lexically */
        size_t len = strlen(cur);
        while (len > 1 && cur[len - 1] == '/')
            len--;
        int trailing = len < strlen(cur);
        cur[len] = 0;
        char *slash = strrchr(cur, '/');
        const char *last = slash ? slash + 1 : cur;
        char dir[2 * POL_PATH_MAX];
        if (!strcmp(last, ".") || !strcmp(last, "..") || !strcmp(cur, "/") || trailing) {
            strcpy(dir, cur);
            t->name[0] = 0;
        } else {
            if (strlen(last) > NAME_MAX)
                return err_set(ERR_INVAL, "%s: a component is longer than %d bytes", path,
                               NAME_MAX);
            strcpy(t->name, last);
            if (!slash)
                strcpy(dir, ".");
            else if (slash == cur)
                strcpy(dir, "/");
            else
                snprintf(dir, sizeof dir, "%.*s", (int)(slash - cur), cur);
        }
        int rc = open_dirpart(p, dir, (want & POL_WRITE) != 0, &t->dfd, t->dreal, sizeof t->dreal);
        if (rc < 0)
            return err_prefix(rc, "%s", path);
        if (!t->name[0]) {
            snprintf(t->real, sizeof t->real, "%s", t->dreal);
            t->exists = fstat(t->dfd, &t->st) == 0;
            return 0;
        }
        strcpy(t->real, t->dreal);
        if (path_push(t->real, sizeof t->real, t->name, strlen(t->name)) < 0)
            return err_prefix(ERR_INVAL, "%s", path);
        if (fstatat(t->dfd, t->name, &t->st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT)
                return err_errno("%s", path);
            t->exists = 0;
            return 0;
        }
        t->exists = 1;
        if (!S_ISLNK(t->st.st_mode))
            return 0;
        /* a final symlink: continue with its target, relative to its directory */
        char target[POL_PATH_MAX];
        ssize_t n = readlinkat(t->dfd, t->name, target, sizeof target - 1);
        close(t->dfd);
        t->dfd = -1;
        if (n <= 0)
            return err_errno("%s: reading symlink", path);
        target[n] = 0;
        if (target[0] == '/')
            strcpy(cur, target);
        else if (snprintf(cur, sizeof cur, "%s/%s", t->dreal, target) >= (int)sizeof cur)
            return err_set(ERR_INVAL, "%s: path too long", path);
    }
}

static int decide(struct pol *p, const char *path, const struct target *t, int want)
{
    char why[POL_PATH_MAX + 200];
    int cls = pol_classify(p, t->real, why, sizeof why);
    if (!(cls & POL_READ))
        return err_set(ERR_DENIED, "%s: refused: %s", path, why);
    if ((want & POL_WRITE) && !(cls & POL_WRITE))
        return err_set(ERR_DENIED, "%s: write refused: %s", path, why);
    return 0;
}

int pol_check(struct pol *p, const char *path, int want, char *real, size_t cap)
{
    struct target t;
    int rc = resolve(p, path, want, &t);
    if (rc == 0 && !t.exists && !(want & POL_WRITE))
        rc = err_set(ERR_NOTFOUND, "%s: %s does not exist", path, t.real);
    if (rc == 0)
        rc = decide(p, path, &t, want);
    if (rc == 0 && real)
        snprintf(real, cap, "%s", t.real);
    if (t.dfd >= 0)
        close(t.dfd);
    return rc;
}

int pol_open_file(struct pol *p, const char *path, int flags, unsigned mode, int *fd, char *real,
                  size_t cap)
{
    int acc = flags & O_ACCMODE;
    int want = POL_READ;
    if (acc != O_RDONLY || (flags & (O_CREAT | O_TRUNC | O_APPEND)))
        want |= POL_WRITE;
    int oflags = acc | (flags & (O_CREAT | O_EXCL | O_APPEND)) | O_NOFOLLOW | O_CLOEXEC |
                 O_NONBLOCK | O_NOCTTY;
    *fd = -1;
    /* a final component swapped for a symlink after resolve() shows up as
     * ELOOP from O_NOFOLLOW: resolve again (bounded) */
    for (int attempt = 0; attempt < 8; attempt++) {
        struct target t;
        int rc = resolve(p, path, want, &t);
        if (rc == 0 && !t.name[0])
            rc = err_set(ERR_INVAL, "%s: is a directory", path);
        if (rc == 0 && !t.exists && !(flags & O_CREAT))
            rc = err_set(ERR_NOTFOUND, "%s: %s does not exist", path, t.real);
        if (rc == 0)
            rc = decide(p, path, &t, want);
        if (rc < 0) {
            if (t.dfd >= 0)
                close(t.dfd);
            return rc;
        }
        int f = openat(t.dfd, t.name, oflags, (mode_t)mode);
        int e = errno;
        close(t.dfd);
        if (f < 0) {
            if (e == ELOOP)
                continue;
            errno = e;
            return err_errno("%s", path);
        }
        struct stat st;
        if (fstat(f, &st) < 0 || !S_ISREG(st.st_mode)) {
            close(f);
            return err_set(ERR_INVAL, "%s: not a regular file", path);
        }
        if ((want & POL_WRITE) && st.st_nlink > 1) {
            close(f);
            return err_set(ERR_DENIED,
                           "%s: write refused: the file has %lu hard links (one may be outside "
                           "the workspace)",
                           path, (unsigned long)st.st_nlink);
        }
        if ((flags & O_TRUNC) && ftruncate(f, 0) < 0) {
            close(f);
            return err_errno("%s: truncate", path);
        }
        int fl = fcntl(f, F_GETFL);
        if (fl >= 0)
            fcntl(f, F_SETFL, fl & ~O_NONBLOCK);
        *fd = f;
        if (real)
            snprintf(real, cap, "%s", t.real);
        return 0;
    }
    return err_set(ERR_DENIED, "%s: refused: the path keeps changing into a symlink", path);
}

int pol_open_dir(struct pol *p, const char *path, int *fd, char *real, size_t cap)
{
    struct target t;
    *fd = -1;
    int rc = resolve(p, path && path[0] ? path : ".", POL_READ, &t);
    if (rc == 0 && !t.exists)
        rc = err_set(ERR_NOTFOUND, "%s: %s does not exist", path, t.real);
    if (rc == 0)
        rc = decide(p, path ? path : ".", &t, POL_READ);
    if (rc == 0) {
        int f = openat(t.dfd, t.name[0] ? t.name : ".",
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (f < 0)
            rc = errno == ENOTDIR || errno == ELOOP
                     ? err_set(ERR_INVAL, "%s: not a directory", path)
                     : err_errno("%s", path);
        *fd = f;
    }
    if (rc == 0 && real)
        snprintf(real, cap, "%s", t.real);
    if (t.dfd >= 0)
        close(t.dfd);
    return rc;
}

int pol_mkdirs(struct pol *p, const char *path, unsigned mode)
{
    for (int depth = 0; depth < 256; depth++) {
        struct target t;
        int rc = resolve(p, path, POL_WRITE, &t);
        if (rc == ERR_NOTFOUND) {
            /* a missing directory on the way: make the parent first */
            char parent[POL_PATH_MAX];
            snprintf(parent, sizeof parent, "%s", path);
            size_t n = strlen(parent);
            while (n > 1 && parent[n - 1] == '/')
                parent[--n] = 0;
            char *slash = strrchr(parent, '/');
            if (!slash || slash == parent)
                return rc;
            *slash = 0;
            if ((rc = pol_mkdirs(p, parent, mode)) < 0)
                return rc;
            continue;
        }
        if (rc == 0)
            rc = decide(p, path, &t, POL_WRITE);
        if (rc == 0 && t.name[0] && !t.exists && mkdirat(t.dfd, t.name, (mode_t)mode) < 0 &&
            errno != EEXIST)
            rc = err_errno("%s", path);
        else if (rc == 0 && t.exists && !S_ISDIR(t.st.st_mode))
            rc = err_set(ERR_INVAL, "%s: exists and is not a directory", path);
        if (t.dfd >= 0)
            close(t.dfd);
        return rc;
    }
    return err_set(ERR_INVAL, "%s: too deep", path);
}

/* ---- lifetime ---- */

/* Removes everything below dirfd without following symlinks. */
static void rm_tree_at(int dirfd, int depth)
{
    if (depth > 64)
        return;
    int dup = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
    if (!d) {
        if (dup >= 0)
            close(dup);
        return;
    }
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlinkat(dirfd, e->d_name, 0) == 0)
            continue;
        int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0) {
            rm_tree_at(sub, depth + 1);
            close(sub);
            unlinkat(dirfd, e->d_name, AT_REMOVEDIR);
        }
    }
    closedir(d);
}

void pol_close(struct pol *p)
{
    if (!p)
        return;
    if (p->tmp[0]) {
        int fd = open(p->tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            rm_tree_at(fd, 0);
            close(fd);
        }
        rmdir(p->tmp);
    }
    if (p->ws_fd >= 0)
        close(p->ws_fd);
    if (p->tmp_fd >= 0)
        close(p->tmp_fd);
    plist_free(&p->prot);
    plist_free(&p->inroot);
    plist_free(&p->hidden);
    free(p);
}

/* Adds a protected path; also to inroot when it lies in a writable root. */
static int add_prot(struct pol *p, const char *abs)
{
    char r[POL_PATH_MAX];
    if (real_or_lexical("/", abs, r, sizeof r) < 0)
        return err_prefix(ERR_INVAL, "protected path %s", abs);
    if (plist_add(&p->prot, r) < 0)
        return ERR_NOMEM;
    if (under(r, p->ws) || under(r, p->tmp))
        return plist_add(&p->inroot, r);
    return 0;
}

/* core.hooksPath from the workspace's .git/config (husky and friends point
 * git at a hooks directory in the work tree: those scripts run later too). */
static int add_hooks_path(struct pol *p, const char *gitdir)
{
    char cfg[POL_PATH_MAX], b[POL_PATH_MAX];
    if (fs_join(cfg, sizeof cfg, gitdir, "config") < 0)
        return 0;
    struct buf text = { 0 };
    if (fs_read_file(cfg, 1 << 20, &text) < 0) {
        buf_free(&text);
        return 0; /* no readable config: nothing to add */
    }
    int rc = 0;
    for (char *line = text.p; line && *line && rc == 0;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        while (*line == ' ' || *line == '\t')
            line++;
        if (!strncasecmp(line, "hookspath", 9)) {
            char *v = strchr(line + 9, '=');
            if (v) {
                v++;
                while (*v == ' ' || *v == '\t' || *v == '"')
                    v++;
                size_t n = strlen(v);
                while (n &&
                       (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '"' || v[n - 1] == '\r'))
                    v[--n] = 0;
                if (n && v[0] != '~' && real_or_lexical(p->ws, v, b, sizeof b) == 0)
                    rc = add_prot(p, b);
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    buf_free(&text);
    return rc;
}

/* Submodule git directories inside .git/modules (nested), and hooksPath. */
static int add_git_modules(struct pol *p, const char *gitdir, int depth)
{
    char mods[POL_PATH_MAX], b[POL_PATH_MAX];
    int rc = add_hooks_path(p, gitdir);
    if (rc < 0 || depth > 4 || fs_join(mods, sizeof mods, gitdir, "modules") < 0)
        return rc;
    DIR *d = opendir(mods);
    if (!d)
        return 0;
    int n = 0;
    for (struct dirent *e; rc == 0 && n < 256 && (e = readdir(d)); n++) {
        if (e->d_name[0] == '.' || fs_join(b, sizeof b, mods, e->d_name) < 0 || !fs_is_dir(b))
            continue;
        char h[POL_PATH_MAX];
        if (fs_join(h, sizeof h, b, "hooks") == 0 && (rc = add_prot(p, h)) < 0)
            break;
        if (fs_join(h, sizeof h, b, "config") == 0 && (rc = add_prot(p, h)) < 0)
            break;
        rc = add_git_modules(p, b, depth + 1);
    }
    closedir(d);
    return rc;
}

static int add_git_extras(struct pol *p)
{
    char g[POL_PATH_MAX];
    if (fs_join(g, sizeof g, p->ws, ".git") < 0 || !fs_is_dir(g))
        return 0;
    return add_git_modules(p, g, 0);
}

int pol_open(struct pol **out, const struct pol_opts *o)
{
    *out = NULL;
    if (!o || !o->workspace || !o->workspace[0])
        return err_set(ERR_INVAL, "path policy: no workspace");
    struct pol *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(ERR_NOMEM, "path policy: out of memory");
    p->ws_fd = p->tmp_fd = -1;
    char rp[PATH_MAX];
    int rc = 0;
    if (!realpath(o->workspace, rp)) {
        rc = err_errno("workspace %s", o->workspace);
        goto fail;
    }
    snprintf(p->ws, sizeof p->ws, "%s", rp);
    if (!strcmp(p->ws, "/")) {
        rc = err_set(ERR_INVAL, "the workspace cannot be / (everything would be writable)");
        goto fail;
    }
    if ((p->ws_fd = open(p->ws, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = errno == ENOTDIR ? err_set(ERR_INVAL, "workspace %s is not a directory", p->ws)
                              : err_errno("workspace %s", p->ws);
        goto fail;
    }
    const char *home = o->home ? o->home : getenv("HOME");
    if (home && home[0] == '/' && real_or_lexical("/", home, p->home, sizeof p->home) < 0)
        p->home[0] = 0;

    /* the private temp dir: mkdtemp makes it 0700 with a fresh name */
    const char *tb = o->tmp_base ? o->tmp_base : getenv("TMPDIR");
    if (!tb || tb[0] != '/')
        tb = "/tmp";
    char tmpl[POL_PATH_MAX];
    if (snprintf(tmpl, sizeof tmpl, "%s/lode-tmp.XXXXXX", tb) >= (int)sizeof tmpl ||
        !mkdtemp(tmpl)) {
        rc = err_errno("private temp dir in %s", tb);
        goto fail;
    }
    if (!realpath(tmpl, rp)) {
        rmdir(tmpl);
        rc = err_errno("private temp dir %s", tmpl);
        goto fail;
    }
    snprintf(p->tmp, sizeof p->tmp, "%s", rp);
    if ((p->tmp_fd = open(p->tmp, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = err_errno("private temp dir %s", p->tmp);
        goto fail;
    }

    char b[POL_PATH_MAX];
    /* later-executed files in the workspace and in $HOME */
    const char *ws_fixed[] = { ".git/hooks", ".git/config", ".lode" };
    for (int i = 0; i < 3; i++)
        if (fs_join(b, sizeof b, p->ws, ws_fixed[i]) < 0 || (rc = add_prot(p, b)) < 0)
            goto fail_rc;
    for (int i = 0; i < N_RC; i++) {
        if (fs_join(b, sizeof b, p->ws, rc_names[i]) < 0 || (rc = add_prot(p, b)) < 0)
            goto fail_rc;
        if (p->home[0] &&
            (fs_join(b, sizeof b, p->home, rc_names[i]) < 0 || (rc = add_prot(p, b)) < 0))
            goto fail_rc;
    }
    if ((rc = add_git_extras(p)) < 0)
        goto fail;
    /* lode's own configuration, database and cache */
    enum fs_xdg kinds[] = { FS_XDG_CONFIG, FS_XDG_DATA, FS_XDG_CACHE };
    for (int i = 0; i < 3; i++)
        if (fs_xdg_dir(kinds[i], b, sizeof b) == 0 && b[0] == '/' && (rc = add_prot(p, b)) < 0)
            goto fail;
    for (int i = 0; o->read_only && o->read_only[i]; i++) {
        if ((rc = config_path(p, "sandbox.read_only", o->read_only[i], b, sizeof b)) < 0 ||
            (rc = add_prot(p, b)) < 0)
            goto fail;
    }
    for (int i = 0; o->hidden && o->hidden[i]; i++) {
        if ((rc = config_path(p, "sandbox.hidden", o->hidden[i], b, sizeof b)) < 0 ||
            (rc = plist_add(&p->hidden, b)) < 0)
            goto fail;
    }

    if (!o->no_openat2) {
        struct pol_open_how how = { O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                                    POL_RESOLVE_NO_MAGICLINKS | POL_RESOLVE_BENEATH };
        long r = syscall(SYS_openat2, p->ws_fd, ".", &how, sizeof how);
        if (r >= 0) {
            char chk[POL_PATH_MAX];
            p->openat2 = fd_real((int)r, chk, sizeof chk) == 0;
            close((int)r);
        }
    }
    *out = p;
    return 0;
fail_rc:
    if (rc >= 0)
        rc = err_set(ERR_INVAL, "path policy: path too long");
fail:
    pol_close(p);
    return rc;
}

const char *pol_workspace(const struct pol *p) { return p->ws; }
const char *pol_tmpdir(const struct pol *p) { return p->tmp; }
const char *pol_root(const struct pol *p, int i) { return i == 0 ? p->ws : i == 1 ? p->tmp : NULL; }
const char *pol_protected(const struct pol *p, int i)
{
    return i >= 0 && i < p->inroot.n ? p->inroot.v[i] : NULL;
}
const char *pol_hidden(const struct pol *p, int i)
{
    return i >= 0 && i < p->hidden.n ? p->hidden.v[i] : NULL;
}
int pol_uses_openat2(const struct pol *p) { return p->openat2; }
