/*
 * workspace.h - the temporary workspace the tool, policy and sandbox tests
 * build their trees in: $TMPDIR/lode-test-<tag>.XXXXXX holding ws/ (the
 * workspace) and outside/ (what must stay out of reach), plus small helpers
 * to put files, directories and links in it. Setup failures other than the
 * temporary directory itself are left to the tests' checks to find.
 */
#ifndef LODE_TESTS_WORKSPACE_H
#define LODE_TESTS_WORKSPACE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WSP_BASE 512 /* the size of base[] */
#define WSP_PATH 600 /* the size of ws[] and out[] */

/* Makes the temporary directory (into base) with ws/ and outside/ in it;
 * aborts when there is no temporary directory to be had. */
static inline void wsp_create(const char *tag, char base[WSP_BASE], char ws[WSP_PATH],
                              char out[WSP_PATH])
{
    snprintf(base, WSP_BASE, "%s/lode-test-%s.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             tag);
    if (!mkdtemp(base))
        abort();
    snprintf(ws, WSP_PATH, "%s/ws", base);
    snprintf(out, WSP_PATH, "%s/outside", base);
    mkdir(ws, 0755);
    mkdir(out, 0755);
}

/* dir/rel as a path, in p (of cap bytes). */
static inline char *wsp_path(char *p, size_t cap, const char *dir, const char *rel)
{
    snprintf(p, cap, "%s/%s", dir, rel);
    return p;
}

static inline void wsp_mkdir(const char *dir, const char *rel)
{
    char p[1200];
    mkdir(wsp_path(p, sizeof p, dir, rel), 0755);
}

/* Writes n bytes of text to dir/rel. */
static inline void wsp_put(const char *dir, const char *rel, const char *text, size_t n)
{
    char p[1200];
    FILE *f = fopen(wsp_path(p, sizeof p, dir, rel), "w");
    if (f) {
        fwrite(text, 1, n, f);
        fclose(f);
    }
}

static inline void wsp_puts(const char *dir, const char *rel, const char *text)
{
    wsp_put(dir, rel, text, strlen(text));
}

/* dir/rel -> target (a failure shows in the tests that use the link). */
static inline void wsp_symlink(const char *target, const char *dir, const char *rel)
{
    char p[1200];
    if (symlink(target, wsp_path(p, sizeof p, dir, rel))) {
    }
}

static inline int wsp_exists(const char *dir, const char *rel)
{
    char p[1200];
    struct stat st;
    return lstat(wsp_path(p, sizeof p, dir, rel), &st) == 0;
}

/* Removes the whole temporary directory. */
static inline void wsp_remove(const char *base)
{
    char cmd[WSP_BASE + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", base);
}

#endif
