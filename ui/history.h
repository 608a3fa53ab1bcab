/*
 * history.h - the input history kept between runs (hist_): one entry per
 * line of a text file ("\\" and "\n" escaped), appended as each message is
 * sent and read back at start. The file is bounded: when it holds more than
 * twice HIST_KEEP entries, loading rewrites it (atomically) with the newest
 * HIST_KEEP. Entries that start with a space or are longer than HIST_ENTRY_MAX
 * bytes are not written (a way to keep a line out of the file, as in shells).
 */
#ifndef LODE_UI_HISTORY_H
#define LODE_UI_HISTORY_H

#include "ui/input.h"

#define HIST_KEEP 1000
#define HIST_ENTRY_MAX 16384

/* Adds the newest HIST_KEEP entries of path to in's history; a missing file
 * is an empty history. */
int hist_load(struct input *in, const char *path);
/* Appends one entry (one write on an O_APPEND descriptor, so two lode
 * processes never interleave inside a line). */
int hist_append(const char *path, const char *entry);

/* The escaping, exposed for the unit tests: one entry <-> one line. */
int hist_escape(const char *entry, struct buf *out);
int hist_unescape(const char *line, size_t n, struct buf *out);

#endif
