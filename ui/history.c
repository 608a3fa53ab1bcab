/*
 * history.c - the input history file (see history.h).
 */
#include "ui/history.h"

#include "common/err.h"
#include "common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bigger files are not read (a corrupt or foreign file must not stall start-up). */
#define HIST_FILE_MAX (64u << 20)

int hist_escape(const char *entry, struct buf *out)
{
    for (const char *p = entry; *p; p++) {
        int rc = *p == '\\'   ? buf_puts(out, "\\\\")
                 : *p == '\n' ? buf_puts(out, "\\n")
                 : *p == '\r' ? buf_puts(out, "\\r")
                              : buf_putc(out, *p);
        if (rc < 0)
            return rc;
    }
    return buf_putc(out, '\n');
}

int hist_unescape(const char *line, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        char c = line[i];
        if (c == '\\' && i + 1 < n) {
            char e = line[++i];
            c = e == 'n' ? '\n' : e == 'r' ? '\r' : e;
        }
        if (buf_putc(out, c) < 0)
            return ERR_NOMEM;
    }
    return buf_puts(out, ""); /* NUL-terminated even when empty */
}

int hist_load(struct input *in, const char *path)
{
    struct buf f = { 0 }, e = { 0 };
    int rc = fs_read_file(path, HIST_FILE_MAX, &f);
    if (rc < 0 && !fs_exists(path)) {
        err_clear();
        return 0;
    }
    if (rc < 0)
        return rc;
    const char *s = f.p ? f.p : "";
    size_t n = f.len;
    /* count the entries, then skip all but the newest HIST_KEEP */
    long lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += s[i] == '\n';
    long skip = lines > HIST_KEEP ? lines - HIST_KEEP : 0;
    size_t i = 0, keep_from = 0;
    for (long k = 0; k < skip && i < n; i++)
        if (s[i] == '\n' && ++k == skip)
            keep_from = i + 1;
    i = keep_from;
    while (i < n) {
        size_t end = i;
        while (end < n && s[end] != '\n')
            end++;
        if (end == n)
            break; /* a torn last line (a crash while appending): dropped */
        e.len = 0;
        if ((rc = hist_unescape(s + i, end - i, &e)) < 0 || (rc = in_hist_add(in, e.p)) < 0)
            goto out;
        i = end + 1;
    }
    in->hpos = in->nhist; /* editing a new draft below the loaded entries */
    rc = 0;
    if (lines > 2 * HIST_KEEP && fs_write_atomic(path, s + keep_from, i - keep_from) < 0)
        err_clear(); /* only a size bound: the next start tries again */
out:
    buf_free(&f);
    buf_free(&e);
    return rc;
}

int hist_append(const char *path, const char *entry)
{
    if (!entry[0] || entry[0] == ' ' || strlen(entry) > HIST_ENTRY_MAX)
        return 0;
    struct buf b = { 0 };
    int rc = hist_escape(entry, &b);
    if (rc < 0) {
        buf_free(&b);
        return err_set(ERR_NOMEM, "history: out of memory");
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = err_set(ERR_IO, "history %s: %s", path, strerror(errno));
        buf_free(&b);
        return rc;
    }
    ssize_t w;
    while ((w = write(fd, b.p, b.len)) < 0 && errno == EINTR)
        ;
    if (w != (ssize_t)b.len)
        rc = err_set(ERR_IO, "history %s: short write", path);
    close(fd);
    buf_free(&b);
    return rc;
}
