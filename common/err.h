/*
 * err.h - status codes and the per-thread error message.
 *
 * Every fallible function in lode returns an int status: 0 on success, one of
 * the negative ERR_* codes on failure, after setting a one-line message with
 * err_set(). Callers that add context (a file name, a tensor name) call
 * err_prefix() and pass the status up. Nothing aborts on bad input; ASSERT is
 * only for broken invariants inside our own code.
 *
 * Usage:
 *     if (n > cap)
 *         return err_set(ERR_INVAL, "tensor %s: %zu elements, at most %zu", name, n, cap);
 *     ...
 *     if ((rc = tok_open(&t, path)) < 0) {
 *         fprintf(stderr, "lode: %s\n", err_msg());
 *         return 1;
 *     }
 */
#ifndef LODE_COMMON_ERR_H
#define LODE_COMMON_ERR_H

#include <stdio.h>
#include <stdlib.h>

enum {
    ERR_OK = 0,
    ERR_INVAL = -1,       /* malformed input: file, JSON, config, tool call */
    ERR_IO = -2,          /* open/read/write/mmap failed (errno is in the message) */
    ERR_NOMEM = -3,       /* allocation failed or a size does not fit */
    ERR_UNSUPPORTED = -4, /* valid input we do not handle (yet) */
    ERR_NOTFOUND = -5,    /* a named thing does not exist */
    ERR_INTERRUPTED = -6, /* the user or a signal stopped the work */
    ERR_DENIED = -7,      /* refused by policy (path policy, sandbox, approval) */
    ERR_INTERNAL = -8,    /* a bug in lode; the message says where */
};

/* Formats a message into the calling thread's error buffer (it replaces any
 * earlier one) and returns `code`, so `return err_set(...)` reads naturally. */
int err_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like err_set(ERR_IO, ...) with ": strerror(errno)" appended. */
int err_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prepends "prefix: " to the current message; returns `code` unchanged. */
int err_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The current thread's message; "" when none. Borrowed until the next err_*. */
const char *err_msg(void);

/* A short name for a status code ("invalid input", "I/O error", ...). */
const char *err_name(int code);

void err_clear(void);

/* Invariant checks for our own code: log file:line and abort. Never use on
 * anything derived from input. */
#define ASSERT(x)                                                                                  \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "lode: internal error: ASSERT(%s) failed at %s:%d\n", #x, __FILE__,    \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
