/*
 * md.h - Markdown for the terminal (md_): the model's answers turned into
 * styled logical lines (ui/sline.h) - headings, emphasis, inline code,
 * lists, quotes, rules, tables that fit the width (else shown as written),
 * fenced code with light colouring (keywords, strings, comments; diffs
 * coloured by line). Text that is still streaming renders as far as it
 * goes: an unclosed fence is code to the end.
 */
#ifndef LODE_UI_MD_H
#define LODE_UI_MD_H

#include "ui/sline.h"

/* Appends the rendering of text[0..n) at the given width to out. base is
 * the style of plain text (ST_NORMAL for answers). */
int md_render(const char *text, size_t n, int width, int base, struct sl_list *out);

/* Appends text[0..n) to l with inline Markdown (`code`, **bold**, *italic*,
 * [link](url)) resolved; markers are dropped. */
int md_inline(struct sline *l, const char *text, size_t n, int base);

/* Colours one line of code in language lang ("" for unknown) into l. */
int md_code_line(struct sline *l, const char *text, size_t n, const char *lang);

#endif
