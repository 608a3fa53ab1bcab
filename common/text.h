/*
 * text.h - UTF-8 primitives, line/column lookup for error messages, and the
 * monotonic clock.
 */
#ifndef LODE_COMMON_TEXT_H
#define LODE_COMMON_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Returns 1 when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF); otherwise 0 and, if bad_off is non-NULL, the
 * offset of the first bad byte. */
int utf8_valid(const char *s, size_t n, size_t *bad_off);

/* Decodes one code point at s (n bytes available). Returns its length 1..4,
 * or 0 when the bytes there are not a valid sequence. */
int utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Encodes cp into out (4 bytes room); returns the length, 0 if cp is invalid. */
int utf8_encode(uint32_t cp, char out[4]);

/* Length of the longest prefix of s[0..n) that ends on a code point boundary
 * (drops a trailing incomplete sequence, for streaming output). */
size_t utf8_complete_prefix(const char *s, size_t n);

/* 1-based line and column (in bytes) of byte offset off within text. */
void text_line_col(const char *text, size_t off, int *line, int *col);

/* Value of a hexadecimal digit (0-9, a-f, A-F), or -1. */
int hex_digit(int c);

/* Monotonic time in nanoseconds and seconds. */
uint64_t time_ns(void);
double time_s(void);

#endif
