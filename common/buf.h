/*
 * buf.h - a growable byte buffer, always NUL-terminated (like sds, but a plain
 * struct the caller owns). A zeroed struct buf is a valid empty buffer.
 *
 * Usage:
 *     struct buf b = {0};
 *     if (buf_printf(&b, "%d tokens", n) < 0 || buf_append(&b, s, len) < 0)
 *         goto fail;
 *     puts(b.p ? b.p : "");
 *     buf_free(&b);
 *
 * Every appending function returns 0 or ERR_NOMEM (with a message); on failure
 * the buffer keeps its previous contents.
 */
#ifndef LODE_COMMON_BUF_H
#define LODE_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *p;    /* owned; NULL until the first append; p[len] == 0 after any append */
    size_t len; /* bytes used, excluding the terminating NUL */
    size_t cap; /* bytes allocated */
};

/* Makes room for `extra` more bytes plus the NUL. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Appends s as a JSON string literal with quotes (control chars escaped,
 * UTF-8 passed through). */
int buf_json_str(struct buf *b, const char *s, size_t n);

/* Empties the buffer, keeping its allocation. */
void buf_reset(struct buf *b);
/* Frees the allocation; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);
/* Returns the string (caller owns it, free()) and leaves the buffer empty.
 * Never NULL unless allocation fails: an empty buffer yields "". */
char *buf_detach(struct buf *b);

#endif
