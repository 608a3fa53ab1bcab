/*
 * policy.h - the one path policy (pol_): every file tool and the sandbox ask it.
 *
 * A policy is opened for a workspace (the project root). It owns a private
 * temporary directory and knows which paths are never writable. Tools never
 * open a path themselves: they call pol_open_file() / pol_open_dir(), which
 * resolve the path, decide, and hand back an open descriptor for exactly the
 * object that was checked, so there is no window between check and use.
 *
 *     struct pol_opts o = { .workspace = root };
 *     struct pol *p;
 *     if (pol_open(&p, &o) < 0) ...                        // err_msg() says why
 *     int fd;
 *     char real[POL_PATH_MAX];
 *     if (pol_open_file(p, "src/a.c", O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd, real, sizeof real) <
 * 0)
 *         ...                                              // ERR_DENIED: one line with the reason
 *     pol_close(p);
 *
 * ---- Semantics ----
 *
 * Paths. Relative paths are relative to the workspace; absolute paths are
 *   taken as they are. Symlinks are followed to the object they name and the
 *   decision is made on that object's real path (never on the spelling). With
 *   openat2() (Linux 5.6) writes resolve with RESOLVE_BENEATH |
 *   RESOLVE_NO_MAGICLINKS from the workspace, so a symlink or ".." that leaves
 *   it fails inside the kernel; everything else (and every path when openat2
 *   is missing) uses a component-by-component walk on O_PATH descriptors with
 *   O_NOFOLLOW, reading each symlink itself, so nothing is resolved twice.
 *   /proc magic links (/proc/self/fd/N, /proc/PID/root) are refused.
 *
 * Decisions, first match wins:
 *   1. hidden   configured hidden paths (and everything under them): neither
 *               read nor written ("hidden by configuration").
 *   2. protected  never writable, even inside the workspace: any ".git/hooks"
 *               and ".git/config" (by component, at any depth), the workspace's
 *               ".lode/", shell start-up files (POL_RC_NAMES) in $HOME or at
 *               the top of a writable root, lode's XDG config, data and cache
 *               directories, configured read-only paths. Readable.
 *   3. writable  the workspace and the private temp directory.
 *   4. read-only  everything else.
 *   A write also needs a regular file with a single link (a hard link could
 *   name a file outside the workspace) and creates the final component with
 *   O_NOFOLLOW inside the already-checked parent directory.
 *
 * The same lists drive the sandbox (tools/sandbox.c): writable roots become
 * Landlock write rules, protected paths read-only bind mounts, hidden paths
 * empty mounts. pol_root()/pol_protected()/pol_hidden() expose them.
 */
#ifndef LODE_TOOLS_POLICY_H
#define LODE_TOOLS_POLICY_H

#include <stddef.h>

#define POL_PATH_MAX 4096

/* Shell and tool start-up files that run later, outside any sandbox. */
#define POL_RC_NAMES                                                                               \
    ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile", ".zshrc", ".zprofile",  \
        ".zshenv", ".zlogin", ".zlogout", ".cshrc", ".tcshrc", ".login", ".kshrc", ".mkshrc",      \
        ".inputrc", ".gitconfig", ".envrc"

struct pol_opts {
    const char *workspace; /* required: the project root (made absolute and real) */
    const char *home;      /* $HOME for the start-up files; NULL: getenv("HOME") */
    const char *tmp_base;  /* where the private temp dir is made; NULL: $TMPDIR or /tmp */
    /* NULL-terminated lists of extra paths (relative = to the workspace, "~/"
     * = $HOME); missing paths are fine. Configuration keys: sandbox.read_only,
     * sandbox.hidden (tool_list_parse in tools/registry.h turns their JSON text
     * into such a list). */
    const char *const *read_only;
    const char *const *hidden;
    int no_openat2; /* test hook: force the checked walk even where openat2 exists */
};

struct pol;

enum pol_access { POL_READ = 1, POL_WRITE = 2 };

/* Opens a policy: resolves the workspace, creates the private temp dir (0700).
 * On success *out is owned by the caller (pol_close). Returns 0, ERR_INVAL
 * (workspace missing or not a directory), ERR_IO or ERR_NOMEM. */
int pol_open(struct pol **out, const struct pol_opts *o);

/* Removes the private temp dir and its contents, frees everything. NULL ok. */
void pol_close(struct pol *p);

/* Decides whether `path` may be accessed as `want` (POL_READ and/or
 * POL_WRITE). On 0, real (if not NULL) gets the resolved absolute path (for a
 * path that does not exist yet: its real parent plus the final name). Returns
 * ERR_DENIED with the reason in err_msg(), ERR_NOTFOUND when a directory on
 * the way is missing, ERR_INVAL for a malformed path. Advisory only: to act,
 * use the pol_open_* functions, which decide on the object they open. */
int pol_check(struct pol *p, const char *path, int want, char *real, size_t cap);

/* Opens a regular file for a tool. flags are open(2) flags: O_RDONLY,
 * O_WRONLY or O_RDWR, plus O_CREAT, O_EXCL, O_TRUNC, O_APPEND (others are
 * ignored; O_NOFOLLOW and O_CLOEXEC are always added). Any write access or
 * O_CREAT/O_TRUNC needs POL_WRITE. On 0, *fd is a new descriptor owned by the
 * caller and real (if not NULL) the file's real path. Errors as pol_check,
 * plus ERR_INVAL when the object is not a regular file. */
int pol_open_file(struct pol *p, const char *path, int flags, unsigned mode, int *fd, char *real,
                  size_t cap);

/* Opens a directory for reading (list_dir, glob, grep): *fd is an O_RDONLY |
 * O_DIRECTORY descriptor owned by the caller. NULL or "" means the workspace. */
int pol_open_dir(struct pol *p, const char *path, int *fd, char *real, size_t cap);

/* mkdir -p under the policy: every directory created needs POL_WRITE on its
 * real path and is made with mkdirat() in its checked parent. Existing
 * directories are fine. Returns 0 or an error as pol_check. */
int pol_mkdirs(struct pol *p, const char *path, unsigned mode);

/* Classifies an already-real absolute path without touching the filesystem:
 * POL_READ | POL_WRITE, POL_READ, or 0 (hidden). why (if not NULL) gets the
 * reason when POL_WRITE is missing. */
int pol_classify(const struct pol *p, const char *real, char *why, size_t cap);

/* Borrowed strings, valid until pol_close. */
const char *pol_workspace(const struct pol *p);
const char *pol_tmpdir(const struct pol *p);
/* The i-th writable root (0 = workspace, 1 = private tmp), NULL past the end. */
const char *pol_root(const struct pol *p, int i);
/* The i-th protected absolute path that lies inside a writable root and needs
 * a read-only mount in the sandbox (it may not exist), NULL past the end. */
const char *pol_protected(const struct pol *p, int i);
/* The i-th hidden absolute path, NULL past the end. */
const char *pol_hidden(const struct pol *p, int i);
/* 1 when openat2 is in use (not forced off and supported by the kernel). */
int pol_uses_openat2(const struct pol *p);

#endif
