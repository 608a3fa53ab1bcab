/* err.c - per-thread error message (see err.h). */
#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#define ERR_MAX 1024

static _Thread_local char err_buf[ERR_MAX];

int err_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    return code;
}

int err_errno(const char *fmt, ...)
{
    int e = errno;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof err_buf)
        snprintf(err_buf + n, sizeof err_buf - (size_t)n, ": %s", strerror(e));
    return ERR_IO;
}

int err_prefix(int code, const char *fmt, ...)
{
    char old[ERR_MAX];
    memcpy(old, err_buf, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof err_buf)
        snprintf(err_buf + n, sizeof err_buf - (size_t)n, ": %s", old);
    return code;
}

const char *err_msg(void) { return err_buf; }

void err_clear(void) { err_buf[0] = 0; }

const char *err_name(int code)
{
    switch (code) {
    case ERR_OK: return "ok";
    case ERR_INVAL: return "invalid input";
    case ERR_IO: return "I/O error";
    case ERR_NOMEM: return "out of memory";
    case ERR_UNSUPPORTED: return "unsupported";
    case ERR_NOTFOUND: return "not found";
    case ERR_INTERRUPTED: return "interrupted";
    case ERR_DENIED: return "denied";
    case ERR_INTERNAL: return "internal error";
    }
    return "error";
}
