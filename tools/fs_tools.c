/* fs_tools.c - read_file, write_file, edit_file, list_dir (see fs_tools.h).
 *
 * Results are kept small: read_file returns numbered lines up to byte and
 * line caps and says which offset continues; edit_file returns a unified
 * diff of the change (capped); list_dir caps the entry count. Every open goes
 * through the policy; writes go to a temp file in the target's checked
 * directory and are renamed over the target (atomic, mode preserved). */
#include "tools/fs_tools.h"

#include "common/ckd.h"
#include "common/err.h"
#include "common/text.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BINARY_PROBE 8192

/* Turns a policy/IO failure into a result for the model. */
static int fail_err(struct tool_result *r, const char *tool, const char *path)
{
    const char *m = err_msg();
    size_t n = strlen(path);
    if (n && strncmp(m, path, n) == 0 && m[n] == ':') /* the policy already names it */
        return tool_fail(r, "%s %s", tool, m);
    return tool_fail(r, "%s %s: %s", tool, path, m);
}

/* Reads an open descriptor fully, at most cap bytes (ERR_NOMEM-free: caller
 * checks the size first). Returns 0 or ERR_IO. */
static int read_all(int fd, size_t cap, struct buf *out, int *too_big)
{
    char tmp[65536];
    *too_big = 0;
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_errno("read");
        }
        if (n == 0)
            return 0;
        if (out->len + (size_t)n > cap) {
            *too_big = 1;
            return 0;
        }
        if (buf_append(out, tmp, (size_t)n) < 0)
            return ERR_NOMEM;
    }
}

/* 1 when the bytes look binary: a NUL, or invalid UTF-8 (a sequence cut at
 * the end of the probe does not count). */
static int looks_binary(const char *s, size_t n, int cut)
{
    if (memchr(s, 0, n))
        return 1;
    size_t m = cut ? utf8_complete_prefix(s, n) : n;
    return !utf8_valid(s, m, NULL);
}

static int write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return err_errno("write");
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- read_file ---- */

int fstool_read_file(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r)
{
    const char *path = NULL;
    long long offset = 1, limit = (long long)c->read_max_lines;
    if (tool_arg_str(args, "path", 1, &path, r) ||
        tool_arg_int(args, "offset", 1, 1LL << 40, &offset, r) ||
        tool_arg_int(args, "limit", 1, 1LL << 40, &limit, r))
        return 0;
    int fd;
    int rc = pol_open_file(c->pol, path, O_RDONLY, 0, &fd, NULL, 0);
    if (rc < 0)
        return fail_err(r, "read_file", path);
    struct stat st;
    char probe[BINARY_PROBE];
    ssize_t np = fstat(fd, &st) == 0 ? pread(fd, probe, sizeof probe, 0) : -1;
    if (np < 0) {
        err_errno("read");
        close(fd);
        return fail_err(r, "read_file", path);
    }
    if (looks_binary(probe, (size_t)np, (size_t)np == sizeof probe)) {
        close(fd);
        return buf_printf(&r->text, "%s: binary file (%lld bytes), not shown", path,
                          (long long)st.st_size);
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        err_errno("fdopen");
        close(fd);
        return fail_err(r, "read_file", path);
    }
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    long long lineno = 0, shown = 0, next = 0; /* next: first line not shown, 0 = none */
    int bytes_cut = 0;
    rc = 0;
    while ((n = getline(&line, &lcap, f)) >= 0 && rc == 0) {
        lineno++;
        if (lineno < offset || next)
            continue;
        if (shown >= limit || r->text.len >= c->read_max_bytes) {
            next = lineno;
            bytes_cut = shown < limit;
            continue;
        }
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n')
            len--;
        if (len && line[len - 1] == '\r')
            len--;
        int long_line = len > c->line_max;
        if (long_line)
            len = utf8_complete_prefix(line, c->line_max);
        size_t bad;
        rc = buf_printf(&r->text, "%6lld\t", lineno);
        /* invalid UTF-8 past the probe: show the valid part, mark the rest */
        if (rc == 0 && !utf8_valid(line, len, &bad)) {
            rc = buf_append(&r->text, line, bad);
            if (rc == 0)
                rc = buf_puts(&r->text, "[invalid UTF-8 ...]");
        } else if (rc == 0) {
            rc = buf_append(&r->text, line, len);
        }
        if (rc == 0 && long_line)
            rc = buf_printf(&r->text, " [line cut at %zu bytes]", c->line_max);
        if (rc == 0)
            rc = buf_putc(&r->text, '\n');
        shown++;
    }
    int ioerr = ferror(f);
    free(line);
    fclose(f);
    if (rc < 0)
        return rc;
    if (ioerr)
        return tool_fail(r, "read_file %s: read error", path);
    if (lineno == 0)
        return buf_printf(&r->text, "%s: empty file", path);
    if (offset > lineno)
        return tool_fail(r, "read_file %s: offset %lld is past the end (%lld lines)", path, offset,
                         lineno);
    if (next)
        return buf_printf(&r->text,
                          "[truncated at %s: showed lines %lld-%lld of %lld; use offset=%lld to "
                          "continue]\n",
                          bytes_cut ? "the byte cap" : "the line limit", offset, next - 1, lineno,
                          next);
    return 0;
}

/* ---- writing through the policy ---- */

/* Writes content to path atomically: a temp file in the target's real
 * directory (opened through the policy, O_EXCL), fsync, renameat over the
 * target through the checked directory descriptor. An existing target is
 * opened for writing through the policy first (so protected files, hard
 * links and non-regular files are refused on the object itself) and its mode
 * is kept. *created is set to 1 when the file did not exist. */
static int write_through_policy(struct pol *p, const char *path, const char *content, size_t n,
                                int *created)
{
    char real[POL_PATH_MAX];
    unsigned mode = 0644;
    int fd, rc;
    *created = 0;
    rc = pol_open_file(p, path, O_WRONLY, 0, &fd, real, sizeof real);
    if (rc == ERR_NOTFOUND || (rc < 0 && strstr(err_msg(), "No such file"))) {
        /* new file: make the parent directories, then decide on the name */
        const char *slash = strrchr(path, '/');
        if (slash && slash != path) {
            char dir[POL_PATH_MAX];
            size_t dl = (size_t)(slash - path);
            if (dl >= sizeof dir)
                return err_set(ERR_INVAL, "path too long");
            memcpy(dir, path, dl);
            dir[dl] = 0;
            if ((rc = pol_mkdirs(p, dir, 0755)) < 0)
                return rc;
        }
        if ((rc = pol_check(p, path, POL_WRITE, real, sizeof real)) < 0)
            return rc;
        *created = 1;
    } else if (rc < 0) {
        return rc;
    } else {
        struct stat st;
        if (fstat(fd, &st) == 0)
            mode = st.st_mode & 07777;
        close(fd);
    }
    char *slash = strrchr(real, '/');
    if (!slash || !slash[1])
        return err_set(ERR_INVAL, "not a file path");
    char dir[POL_PATH_MAX], name[POL_PATH_MAX], tmp[POL_PATH_MAX], dreal[POL_PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - real) ? (int)(slash - real) : 1, real);
    snprintf(name, sizeof name, "%s", slash + 1);
    int dfd;
    if ((rc = pol_open_dir(p, dir, &dfd, dreal, sizeof dreal)) < 0)
        return rc;
    if (strcmp(dreal, dir) != 0) { /* the directory moved between the two decisions */
        close(dfd);
        return err_set(ERR_DENIED, "%s changed while writing", dir);
    }
    int tfd = -1;
    char tname[POL_PATH_MAX];
    for (int i = 0; i < 100 && tfd < 0; i++) {
        snprintf(tname, sizeof tname, ".%.200s.lode-%ld-%d.tmp", name, (long)getpid(), i);
        int n1 = snprintf(tmp, sizeof tmp, "%s/%s", dir, tname);
        if (n1 < 0 || (size_t)n1 >= sizeof tmp) {
            close(dfd);
            return err_set(ERR_INVAL, "path too long");
        }
        rc = pol_open_file(p, tmp, O_WRONLY | O_CREAT | O_EXCL, mode, &tfd, NULL, 0);
        if (rc < 0 && !strstr(err_msg(), "exists")) {
            close(dfd);
            return rc;
        }
    }
    if (tfd < 0) {
        close(dfd);
        return err_set(ERR_IO, "cannot create a temporary file in %s", dir);
    }
    rc = write_all(tfd, content, n);
    if (rc == 0 && fchmod(tfd, mode) < 0)
        rc = err_errno("chmod");
    if (rc == 0 && fsync(tfd) < 0)
        rc = err_errno("fsync");
    if (close(tfd) < 0 && rc == 0)
        rc = err_errno("close");
    if (rc == 0 && renameat(dfd, tname, dfd, name) < 0)
        rc = err_errno("rename");
    if (rc < 0)
        unlinkat(dfd, tname, 0);
    close(dfd);
    return rc;
}

int fstool_write_file(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r)
{
    const char *path = NULL, *content = NULL;
    if (tool_arg_str(args, "path", 1, &path, r) || tool_arg_str(args, "content", 1, &content, r))
        return 0;
    size_t n = strlen(content);
    int created;
    if (write_through_policy(c->pol, path, content, n, &created) < 0)
        return fail_err(r, "write_file", path);
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += content[i] == '\n';
    if (n && content[n - 1] != '\n')
        lines++;
    return buf_printf(&r->text, "%s %s (%zu bytes, %zu lines)", created ? "created" : "wrote", path,
                      n, lines);
}

/* ---- edit_file ---- */

struct lines {
    const char **s; /* start of each line */
    size_t *n;      /* its length including the '\n' (if any) */
    size_t count;
};

static int split_lines(const char *s, size_t len, struct lines *l)
{
    size_t count = 0;
    for (size_t i = 0; i < len; i++)
        count += s[i] == '\n';
    count += len && s[len - 1] != '\n';
    l->count = 0;
    l->s = calloc(count ? count : 1, sizeof *l->s);
    l->n = calloc(count ? count : 1, sizeof *l->n);
    if (!l->s || !l->n)
        return err_set(ERR_NOMEM, "out of memory splitting lines");
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n' || i + 1 == len) {
            l->s[l->count] = s + start;
            l->n[l->count++] = i + 1 - start;
            start = i + 1;
        }
    }
    return 0;
}

static void lines_free(struct lines *l)
{
    free(l->s);
    free(l->n);
}

static int same_line(const struct lines *a, size_t i, const struct lines *b, size_t j)
{
    return a->n[i] == b->n[j] && memcmp(a->s[i], b->s[j], a->n[i]) == 0;
}

static int diff_line(struct buf *d, char tag, const char *s, size_t n)
{
    int rc = buf_putc(d, tag);
    if (rc == 0)
        rc = buf_append(d, s, n);
    if (rc == 0 && (n == 0 || s[n - 1] != '\n'))
        rc = buf_puts(d, "\n\\ No newline at end of file\n");
    return rc;
}

/* A unified diff of one hunk: the common leading and trailing lines are
 * trimmed and 3 lines of context kept around the changed middle. (Several
 * far-apart replacements give one large hunk; the diff is capped anyway.) */
static int unified_diff(const char *path, const char *a, size_t an, const char *b, size_t bn,
                        struct buf *d)
{
    struct lines la = { 0 }, lb = { 0 };
    int rc = split_lines(a, an, &la);
    if (rc == 0)
        rc = split_lines(b, bn, &lb);
    if (rc < 0)
        goto out;
    size_t head = 0, tail = 0;
    while (head < la.count && head < lb.count && same_line(&la, head, &lb, head))
        head++;
    while (tail < la.count - head && tail < lb.count - head &&
           same_line(&la, la.count - 1 - tail, &lb, lb.count - 1 - tail))
        tail++;
    size_t ctx0 = head < 3 ? head : 3, ctx1 = tail < 3 ? tail : 3;
    size_t a0 = head - ctx0, a1 = la.count - tail + ctx1; /* [a0, a1) of old */
    size_t b0 = head - ctx0, b1 = lb.count - tail + ctx1;
    rc = buf_printf(d, "--- a/%s\n+++ b/%s\n@@ -%zu,%zu +%zu,%zu @@\n", path, path,
                    a1 > a0 ? a0 + 1 : a0, a1 - a0, b1 > b0 ? b0 + 1 : b0, b1 - b0);
    for (size_t i = a0; i < head && rc == 0; i++)
        rc = diff_line(d, ' ', la.s[i], la.n[i]);
    for (size_t i = head; i < la.count - tail && rc == 0; i++)
        rc = diff_line(d, '-', la.s[i], la.n[i]);
    for (size_t i = head; i < lb.count - tail && rc == 0; i++)
        rc = diff_line(d, '+', lb.s[i], lb.n[i]);
    for (size_t i = la.count - tail; i < a1 && rc == 0; i++)
        rc = diff_line(d, ' ', la.s[i], la.n[i]);
out:
    lines_free(&la);
    lines_free(&lb);
    return rc;
}

int fstool_edit_file(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r)
{
    const char *path = NULL, *olds = NULL, *news = NULL;
    int all = 0;
    if (tool_arg_str(args, "path", 1, &path, r) || tool_arg_str(args, "old_string", 1, &olds, r) ||
        tool_arg_str(args, "new_string", 1, &news, r) ||
        tool_arg_bool(args, "replace_all", &all, r))
        return 0;
    size_t on = strlen(olds), nn = strlen(news);
    if (on == 0)
        return tool_fail(r, "edit_file %s: old_string is empty (use write_file to create a file)",
                         path);
    if (strcmp(olds, news) == 0)
        return tool_fail(r, "edit_file %s: old_string and new_string are identical", path);
    int fd;
    if (pol_open_file(c->pol, path, O_RDONLY, 0, &fd, NULL, 0) < 0)
        return fail_err(r, "edit_file", path);
    struct buf text = { 0 }, out = { 0 }, diff = { 0 };
    int too_big, rc = read_all(fd, c->file_max, &text, &too_big);
    close(fd);
    if (rc < 0) {
        buf_free(&text);
        return rc == ERR_NOMEM ? rc : fail_err(r, "edit_file", path);
    }
    if (too_big) {
        buf_free(&text);
        return tool_fail(r, "edit_file %s: file larger than %zu bytes", path, c->file_max);
    }
    const char *s = text.p ? text.p : "";
    if (memchr(s, 0, text.len)) {
        buf_free(&text);
        return tool_fail(r, "edit_file %s: binary file (contains NUL bytes)", path);
    }
    size_t count = 0;
    for (const char *q = s; (q = strstr(q, olds)) != NULL; q += on)
        count++;
    if (count == 0) {
        buf_free(&text);
        return tool_fail(r,
                         "edit_file %s: old_string not found (it must match exactly, "
                         "whitespace included)",
                         path);
    }
    if (count > 1 && !all) {
        buf_free(&text);
        return tool_fail(r,
                         "edit_file %s: old_string must match exactly once but matches %zu times; "
                         "add surrounding context or set replace_all",
                         path, count);
    }
    const char *q = s, *hit;
    rc = 0;
    while (rc == 0 && (hit = strstr(q, olds)) != NULL) {
        rc = buf_append(&out, q, (size_t)(hit - q));
        if (rc == 0)
            rc = buf_append(&out, news, nn);
        q = hit + on;
    }
    if (rc == 0)
        rc = buf_puts(&out, q);
    int created;
    if (rc == 0 && write_through_policy(c->pol, path, out.p ? out.p : "", out.len, &created) < 0) {
        rc = fail_err(r, "edit_file", path);
        goto done;
    }
    if (rc == 0)
        rc = unified_diff(path, s, text.len, out.p ? out.p : "", out.len, &diff);
    if (rc == 0)
        rc = buf_printf(&r->text, "edited %s: %zu replacement%s\n", path, count,
                        count == 1 ? "" : "s");
    if (rc == 0 && diff.len > c->diff_max) {
        size_t keep = utf8_complete_prefix(diff.p, c->diff_max);
        rc = buf_append(&r->text, diff.p, keep);
        if (rc == 0)
            rc = buf_printf(&r->text, "\n[diff truncated: %zu of %zu bytes shown]\n", keep,
                            diff.len);
    } else if (rc == 0) {
        rc = buf_append(&r->text, diff.p ? diff.p : "", diff.len);
    }
done:
    buf_free(&text);
    buf_free(&out);
    buf_free(&diff);
    return rc;
}

/* ---- list_dir ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fstool_list_dir(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r)
{
    const char *path = NULL;
    if (tool_arg_str(args, "path", 0, &path, r))
        return 0;
    int fd;
    char dreal[POL_PATH_MAX], ereal[POL_PATH_MAX * 2];
    if (pol_open_dir(c->pol, path, &fd, dreal, sizeof dreal) < 0)
        return fail_err(r, "list_dir", path && *path ? path : ".");
    DIR *d = fdopendir(fd);
    if (!d) {
        err_errno("opendir");
        close(fd);
        return fail_err(r, "list_dir", path && *path ? path : ".");
    }
    char **names = NULL;
    size_t n = 0, cap = 0, total = 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        /* hidden paths (configuration) are not shown, as the policy hides them */
        snprintf(ereal, sizeof ereal, "%s/%s", strcmp(dreal, "/") ? dreal : "", e->d_name);
        if (!(pol_classify(c->pol, ereal, NULL, 0) & POL_READ))
            continue;
        total++;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64, bytes;
            char **nn;
            if (ckd_mul_sz(&bytes, ncap, sizeof *names) || !(nn = realloc(names, bytes))) {
                rc = err_set(ERR_NOMEM, "out of memory listing a directory");
                break;
            }
            names = nn;
            cap = ncap;
        }
        struct stat st;
        const char *suffix = "";
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            suffix = S_ISDIR(st.st_mode) ? "/" : S_ISLNK(st.st_mode) ? "@" : "";
        size_t len = strlen(e->d_name);
        char *s = malloc(len + 2);
        if (!s) {
            rc = err_set(ERR_NOMEM, "out of memory listing a directory");
            break;
        }
        memcpy(s, e->d_name, len);
        strcpy(s + len, suffix);
        names[n++] = s;
    }
    closedir(d);
    if (rc == 0) {
        qsort(names, n, sizeof *names, cmp_str);
        size_t show = n < c->list_max ? n : c->list_max;
        for (size_t i = 0; i < show && rc == 0; i++)
            rc = buf_printf(&r->text, "%s\n", names[i]);
        if (rc == 0 && n == 0)
            rc = buf_puts(&r->text, "(empty directory)\n");
        if (rc == 0 && show < total)
            rc = buf_printf(&r->text, "[%zu of %zu entries shown]\n", show, total);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}
