/*
 * fs.h - files and paths: whole-file reads with a size cap, read-only maps,
 * crash-safe replacement, directory creation and the XDG locations.
 */
#ifndef LODE_COMMON_FS_H
#define LODE_COMMON_FS_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

/* Reads a whole file into out (replacing its contents). Files larger than
 * max_bytes are refused with ERR_INVAL so a hostile input cannot make us
 * allocate without bound. Returns 0, ERR_IO, ERR_INVAL or ERR_NOMEM. */
int fs_read_file(const char *path, size_t max_bytes, struct buf *out);

/* Reads all of a descriptor (stdin) with the same cap. */
int fs_read_fd(int fd, size_t max_bytes, struct buf *out);

/* A read-only private mapping of a whole file. The descriptor is closed once
 * mapped (the mapping stays valid). A zero-length file maps to p == NULL. */
struct fs_map {
    const uint8_t *p;
    size_t n;
};
int fs_map_open(struct fs_map *m, const char *path);
void fs_map_close(struct fs_map *m);

/* Writes data to path atomically: a temporary file in the same directory,
 * fsync, rename, fsync of the directory. Readers see the old or the new file,
 * never a torn one. */
int fs_write_atomic(const char *path, const void *data, size_t n);

/* mkdir -p with the given mode for created directories. */
int fs_mkdir_p(const char *path, unsigned mode);

int fs_exists(const char *path);
int fs_is_dir(const char *path);

/* XDG base directories with lode's subfolder: "$XDG_CONFIG_HOME/lode" (else
 * ~/.config/lode), "$XDG_DATA_HOME/lode" (~/.local/share/lode),
 * "$XDG_CACHE_HOME/lode" (~/.cache/lode). Writes into out (cap bytes).
 * Returns 0, or ERR_NOTFOUND when neither the variable nor HOME is set. */
enum fs_xdg { FS_XDG_CONFIG, FS_XDG_DATA, FS_XDG_CACHE };
int fs_xdg_dir(enum fs_xdg which, char *out, size_t cap);

/* The project root for a directory: the nearest ancestor (or itself) that
 * holds `.lode/` or `.git`; the directory itself when none does. out gets an
 * absolute path. */
int fs_project_root(const char *dir, char *out, size_t cap);

/* Joins a and b with one '/'; ERR_INVAL when it does not fit. */
int fs_join(char *out, size_t cap, const char *a, const char *b);

#endif
