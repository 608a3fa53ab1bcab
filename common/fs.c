/* fs.c - files and paths (see fs.h). */
#include "common/fs.h"

#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_read_fd(int fd, size_t max_bytes, struct buf *out)
{
    buf_reset(out);
    for (;;) {
        if (buf_reserve(out, 65536) < 0)
            return ERR_NOMEM;
        ssize_t r = read(fd, out->p + out->len, out->cap - out->len - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return err_errno("read failed");
        }
        if (r == 0)
            break;
        out->len += (size_t)r;
        out->p[out->len] = 0;
        if (out->len > max_bytes)
            return err_set(ERR_INVAL, "input larger than %zu bytes", max_bytes);
    }
    return 0;
}

int fs_read_file(const char *path, size_t max_bytes, struct buf *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_errno("%s", path);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return err_errno("%s", path);
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return err_set(ERR_INVAL, "%s: is a directory", path);
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max_bytes) {
        close(fd);
        return err_set(ERR_INVAL, "%s: %lld bytes, larger than the %zu-byte limit", path,
                       (long long)st.st_size, max_bytes);
    }
    if (S_ISREG(st.st_mode) && buf_reserve(out, (size_t)st.st_size + 1) < 0) {
        close(fd);
        return ERR_NOMEM;
    }
    int rc = fs_read_fd(fd, max_bytes, out);
    close(fd);
    if (rc < 0)
        return err_prefix(rc, "%s", path);
    return 0;
}

int fs_map_open(struct fs_map *m, const char *path)
{
    m->p = NULL;
    m->n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_errno("%s", path);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return err_errno("%s", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(ERR_INVAL, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return err_errno("%s: mmap", path);
        }
        m->p = p;
        m->n = (size_t)st.st_size;
    }
    close(fd); /* the mapping outlives the descriptor */
    return 0;
}

void fs_map_close(struct fs_map *m)
{
    if (m->p)
        munmap((void *)m->p, m->n);
    m->p = NULL;
    m->n = 0;
}

static int fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else if ((size_t)(slash - path) < sizeof dir) {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = 0;
    } else
        return err_set(ERR_INVAL, "path too long: %s", path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_errno("%s", dir);
    int rc = fsync(fd) < 0 && errno != EINVAL ? err_errno("fsync %s", dir) : 0;
    close(fd);
    return rc;
}

int fs_write_atomic(const char *path, const void *data, size_t n)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return err_set(ERR_INVAL, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_errno("%s", tmp);
    const char *p = data;
    size_t left = n;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int rc = err_errno("write %s", tmp);
            close(fd);
            unlink(tmp);
            return rc;
        }
        p += w, left -= (size_t)w;
    }
    if (fsync(fd) < 0) {
        int rc = err_errno("fsync %s", tmp);
        close(fd);
        unlink(tmp);
        return rc;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        int rc = err_errno("rename %s", path);
        unlink(tmp);
        return rc;
    }
    return fsync_dir_of(path);
}

int fs_mkdir_p(const char *path, unsigned mode)
{
    char p[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof p)
        return err_set(ERR_INVAL, "bad directory path '%s'", path);
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0)
            continue;
        char c = p[i];
        p[i] = 0;
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            return err_errno("mkdir %s", p);
        p[i] = c;
    }
    if (!fs_is_dir(path))
        return err_set(ERR_IO, "%s exists and is not a directory", path);
    return 0;
}

int fs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int fs_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int fs_join(char *out, size_t cap, const char *a, const char *b)
{
    size_t la = strlen(a);
    while (la > 1 && a[la - 1] == '/')
        la--;
    int n = snprintf(out, cap, "%.*s/%s", (int)la, a, b);
    if (n < 0 || (size_t)n >= cap)
        return err_set(ERR_INVAL, "path too long: %s/%s", a, b);
    return 0;
}

int fs_xdg_dir(enum fs_xdg which, char *out, size_t cap)
{
    static const char *vars[] = { "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME" };
    static const char *defs[] = { ".config", ".local/share", ".cache" };
    const char *v = getenv(vars[which]);
    char base[PATH_MAX];
    /* The XDG spec says relative values are invalid and must be ignored. */
    if (v && v[0] == '/') {
        if (snprintf(base, sizeof base, "%s", v) >= (int)sizeof base)
            return err_set(ERR_INVAL, "%s too long", vars[which]);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home)
            return err_set(ERR_NOTFOUND, "neither %s nor HOME is set", vars[which]);
        if (fs_join(base, sizeof base, home, defs[which]) < 0)
            return ERR_INVAL;
    }
    return fs_join(out, cap, base, "lode");
}

int fs_project_root(const char *dir, char *out, size_t cap)
{
    char cur[PATH_MAX];
    if (!realpath(dir, cur))
        return err_errno("%s", dir);
    char probe[PATH_MAX + 8];
    for (;;) {
        snprintf(probe, sizeof probe, "%s/.lode", cur);
        int found = fs_is_dir(probe);
        snprintf(probe, sizeof probe, "%s/.git", cur);
        found = found || fs_exists(probe);
        if (found)
            break;
        char *slash = strrchr(cur, '/');
        if (!slash || slash == cur) { /* reached / without a marker */
            if (!realpath(dir, cur))
                return err_errno("%s", dir);
            break;
        }
        *slash = 0;
    }
    if (strlen(cur) >= cap)
        return err_set(ERR_INVAL, "path too long: %s", cur);
    strcpy(out, cur);
    return 0;
}
