/* web_tool.h - the web_fetch tool (web_): one http(s) GET, reduced to text.
 *
 * web_fetch(url, max_bytes?): refused unless tool_ctx.network (the
 * configuration's sandbox.network); only http and https, also for each of at
 * most 5 redirects; link-local addresses (cloud metadata services) refused before connecting;
 * the context's timeout and download cap apply. HTML is reduced to text
 * (script/style dropped, block elements become line breaks, common entities
 * decoded, whitespace collapsed). The result is
 * "FINAL-URL (STATUS, CONTENT-TYPE)\n\ntext", its head kept within max_bytes
 * (never more than tool_ctx.fetch_max_bytes). A status >= 400 is an error
 * result with the same text. web_fetch runs in lode's process, not in the
 * sandbox: it reads nothing from disk and writes nothing. */
#ifndef LODE_TOOLS_WEB_TOOL_H
#define LODE_TOOLS_WEB_TOOL_H

#include "common/buf.h"
#include "tools/registry.h"

int web_fetch_tool(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r);

/* HTML to text as described above, appended to out. Returns 0 or ERR_NOMEM. */
int web_html_to_text(const char *html, size_t n, struct buf *out);

#endif
