/* web_tool.c - web_fetch over libcurl, and HTML reduced to text (see web_tool.h). */
#include "tools/web_tool.h"

#include "common/err.h"
#include "common/text.h"

#include <cjson/cJSON.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* ---- HTML to text */

/* The text writer: collapses whitespace outside <pre>, keeps at most one
 * blank line, never starts with a line break. */
struct tw {
    struct buf *b;
    size_t start; /* where this document's text begins in b */
    int nl;       /* line breaks just written */
    int sp;       /* a space is pending */
    int pre;      /* inside <pre>: whitespace is kept */
    int rc;
};

static void tw_put(struct tw *w, char c)
{
    if (w->rc == 0)
        w->rc = buf_putc(w->b, c);
}

static void tw_char(struct tw *w, char c)
{
    if (c == '\r')
        return;
    if (!w->pre && (c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\v')) {
        w->sp = 1;
        return;
    }
    if (w->pre && c == '\n') {
        tw_put(w, '\n');
        w->nl++;
        w->sp = 0;
        return;
    }
    if (w->sp && !w->nl && w->b->len > w->start)
        tw_put(w, ' ');
    w->sp = 0;
    w->nl = 0;
    tw_put(w, c);
}

static void tw_break(struct tw *w, int lines)
{
    w->sp = 0;
    if (w->b->len == w->start)
        return;
    while (w->nl < lines) {
        tw_put(w, '\n');
        w->nl++;
    }
}

static const struct {
    const char *name, *text;
} entities[] = {
    { "amp", "&" },         { "lt", "<" },         { "gt", ">" },          { "quot", "\"" },
    { "apos", "'" },        { "nbsp", " " },       { "mdash", "\u2014" },  { "ndash", "\u2013" },
    { "hellip", "\u2026" }, { "copy", "\u00a9" },  { "reg", "\u00ae" },    { "trade", "\u2122" },
    { "laquo", "\u00ab" },  { "raquo", "\u00bb" }, { "lsquo", "\u2018" },  { "rsquo", "\u2019" },
    { "ldquo", "\u201c" },  { "rdquo", "\u201d" }, { "middot", "\u00b7" }, { "bull", "\u2022" },
    { "times", "\u00d7" },  { "larr", "\u2190" },  { "rarr", "\u2192" },   { "deg", "\u00b0" },
};

/* Decodes the entity at s ('&'), writes it, returns the bytes consumed (0:
 * not an entity, the '&' is literal). */
static size_t entity(struct tw *w, const char *s, size_t n)
{
    size_t semi = 1;
    while (semi < n && semi < 12 && s[semi] != ';')
        semi++;
    if (semi >= n || s[semi] != ';' || semi < 2)
        return 0;
    char out[4];
    int len = 0;
    if (s[1] == '#') {
        uint32_t cp = 0;
        int hex = s[2] == 'x' || s[2] == 'X';
        size_t i = hex ? 3 : 2;
        if (i >= semi)
            return 0;
        for (; i < semi; i++) {
            int d = hex ? hex_digit((unsigned char)s[i])
                        : (s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : -1);
            if (d < 0 || cp > 0x10ffff)
                return 0;
            cp = cp * (hex ? 16 : 10) + (uint32_t)d;
        }
        if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            cp = 0xfffd;
        if (cp == 0xa0)
            cp = ' ';
        len = utf8_encode(cp, out);
        if (len == 1) {
            tw_char(w, out[0]);
            return semi + 1;
        }
    } else {
        for (size_t k = 0; k < sizeof entities / sizeof entities[0]; k++) {
            size_t nl = strlen(entities[k].name);
            if (nl == semi - 1 && !memcmp(s + 1, entities[k].name, nl)) {
                for (const char *t = entities[k].text; *t; t++)
                    tw_char(w, *t);
                return semi + 1;
            }
        }
        return 0;
    }
    for (int i = 0; i < len; i++)
        tw_char(w, out[i]);
    return semi + 1;
}

/* Elements whose content is dropped, and block elements that break lines
 * (value: 1 = line, 2 = paragraph). */
static const char *const skipped[] = { "script", "style",  "noscript", "template",
                                       "svg",    "iframe", "object",   NULL };
static const struct {
    const char *name;
    int lines;
} blocks[] = {
    { "p", 2 },          { "div", 1 },     { "br", 1 },       { "li", 1 },      { "ul", 1 },
    { "ol", 1 },         { "tr", 1 },      { "table", 2 },    { "h1", 2 },      { "h2", 2 },
    { "h3", 2 },         { "h4", 2 },      { "h5", 2 },       { "h6", 2 },      { "pre", 2 },
    { "blockquote", 2 }, { "hr", 2 },      { "section", 2 },  { "article", 2 }, { "header", 1 },
    { "footer", 1 },     { "nav", 1 },     { "main", 1 },     { "aside", 1 },   { "dl", 1 },
    { "dt", 1 },         { "dd", 1 },      { "title", 2 },    { "form", 1 },    { "figure", 1 },
    { "figcaption", 1 }, { "details", 1 }, { "summary", 1 },  { "body", 1 },    { "html", 1 },
    { "caption", 1 },    { "address", 1 }, { "fieldset", 1 }, { "legend", 1 },
};

/* Case-insensitive search for "</name" at or after s; returns its offset or n. */
static size_t find_close(const char *s, size_t n, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i + 2 + len <= n; i++)
        if (s[i] == '<' && s[i + 1] == '/' && !strncasecmp(s + i + 2, name, len))
            return i;
    return n;
}

/* The end of the tag starting at s[0] == '<': the offset after its '>'
 * (quotes in attributes respected), or n. */
static size_t tag_end(const char *s, size_t n)
{
    char q = 0;
    for (size_t i = 1; i < n; i++) {
        if (q) {
            if (s[i] == q)
                q = 0;
        } else if (s[i] == '"' || s[i] == '\'')
            q = s[i];
        else if (s[i] == '>')
            return i + 1;
    }
    return n;
}

int web_html_to_text(const char *s, size_t n, struct buf *out)
{
    struct tw w = { out, out->len, 0, 0, 0, 0 };
    size_t i = 0;
    while (i < n && w.rc == 0) {
        if (s[i] == '&') {
            size_t k = entity(&w, s + i, n - i);
            if (k) {
                i += k;
                continue;
            }
        }
        if (s[i] != '<') {
            tw_char(&w, s[i++]);
            continue;
        }
        if (n - i >= 4 && !memcmp(s + i, "<!--", 4)) {
            const char *e = memmem(s + i + 4, n - i - 4, "-->", 3);
            i = e ? (size_t)(e - s) + 3 : n;
            continue;
        }
        size_t j = i + 1;
        int closing = j < n && s[j] == '/';
        if (closing)
            j++;
        char name[16];
        size_t k = 0;
        while (j < n && (isalnum((unsigned char)s[j])) && k < sizeof name - 1)
            name[k++] = (char)tolower((unsigned char)s[j++]);
        name[k] = 0;
        if (!k && !(j < n && (s[j] == '!' || s[j] == '?'))) {
            tw_char(&w, s[i++]); /* a lone '<' in text */
            continue;
        }
        i += tag_end(s + i, n - i);
        if (!closing) {
            int skip = 0;
            for (int m = 0; skipped[m] && !skip; m++)
                skip = !strcmp(name, skipped[m]);
            if (skip) {
                i += find_close(s + i, n - i, name);
                if (i < n)
                    i += tag_end(s + i, n - i);
                continue;
            }
        }
        if (!strcmp(name, "pre"))
            w.pre = closing ? 0 : 1;
        if (!strcmp(name, "td") || !strcmp(name, "th")) {
            w.sp = 1;
            if (!closing && w.nl == 0 && w.b->len > w.start)
                tw_put(&w, '\t'), w.sp = 0;
            continue;
        }
        for (size_t m = 0; m < sizeof blocks / sizeof blocks[0]; m++)
            if (!strcmp(name, blocks[m].name)) {
                tw_break(&w, blocks[m].lines);
                if (!closing && !strcmp(name, "li")) {
                    tw_put(&w, '-');
                    tw_put(&w, ' ');
                    w.nl = 0;
                }
                break;
            }
    }
    /* no trailing blank lines */
    while (out->len > w.start && (out->p[out->len - 1] == '\n' || out->p[out->len - 1] == ' '))
        out->p[--out->len] = 0;
    return w.rc;
}

/* ---- fetching */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ok;
static void curl_init_once(void) { curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }

struct dl {
    struct buf body;
    size_t cap;   /* bytes kept */
    size_t total; /* bytes received (up to where we stopped) */
    int stopped;  /* the cap was reached: we ended the transfer */
    int nomem;
    char refused[96]; /* the address the pre-request check refused */
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
    struct dl *d = ud;
    size_t n = size * nmemb;
    size_t room = d->cap > d->body.len ? d->cap - d->body.len : 0;
    size_t take = n < room ? n : room;
    if (take && buf_append(&d->body, p, take) < 0) {
        d->nomem = 1;
        return 0;
    }
    d->total += take;
    if (take < n) {
        d->stopped = 1;
        return 0; /* ends the transfer (CURLE_WRITE_ERROR, expected) */
    }
    return n;
}

/* Opens each connection's socket, refusing link-local addresses first
 * (169.254/16 holds cloud metadata services; fe80::/10), for the first
 * request and every redirect, before anything is sent. */
static curl_socket_t on_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct dl *d = ud;
    const unsigned char *ip = NULL;
    if (a->family == AF_INET && a->addrlen >= sizeof(struct sockaddr_in))
        ip = (const unsigned char *)&((const struct sockaddr_in *)&a->addr)->sin_addr;
    else if (a->family == AF_INET6 && a->addrlen >= sizeof(struct sockaddr_in6)) {
        const unsigned char *v6 =
            (const unsigned char *)&((const struct sockaddr_in6 *)&a->addr)->sin6_addr;
        static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        if (v6[0] == 0xfe && (v6[1] & 0xc0) == 0x80) {
            snprintf(d->refused, sizeof d->refused, "an IPv6 address");
            return CURL_SOCKET_BAD;
        }
        if (!memcmp(v6, mapped, 12))
            ip = v6 + 12;
    }
    if (ip && ip[0] == 169 && ip[1] == 254) {
        snprintf(d->refused, sizeof d->refused, "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static int http_url(const char *url)
{
    return !strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8);
}

static int texty(const char *ct)
{
    if (!ct || !ct[0])
        return -1; /* unknown: sniff */
    return !strncasecmp(ct, "text/", 5) || strcasestr(ct, "json") || strcasestr(ct, "xml") ||
           strcasestr(ct, "javascript") || strcasestr(ct, "ecmascript") || strcasestr(ct, "x-sh") ||
           strcasestr(ct, "yaml") || strcasestr(ct, "toml");
}

static int looks_html(const char *ct, const char *body, size_t n)
{
    if (ct && ct[0])
        return strcasestr(ct, "html") != NULL;
    size_t i = 0;
    while (i < n && isspace((unsigned char)body[i]))
        i++;
    return n - i >= 5 && (!strncasecmp(body + i, "<!doc", 5) || !strncasecmp(body + i, "<html", 5));
}

/* Appends s[0..n) with invalid UTF-8 and control bytes (but \n, \t) replaced,
 * so the model never sees raw binary. */
static int put_clean(struct buf *out, const char *s, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            rc = buf_putc(out, (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f ? '?' : (char)c);
            i++;
            continue;
        }
        uint32_t cp;
        int len = utf8_decode(s + i, n - i, &cp);
        if (len <= 0) {
            rc = buf_puts(out, "\xef\xbf\xbd");
            i++;
        } else {
            rc = buf_append(out, s + i, (size_t)len);
            i += (size_t)len;
        }
    }
    return rc;
}

int web_fetch_tool(const struct tool_ctx *c, const struct cJSON *args, struct tool_result *r)
{
    const char *url = NULL;
    long long max = (long long)c->fetch_max_bytes;
    if (tool_arg_str(args, "url", 1, &url, r) ||
        tool_arg_int(args, "max_bytes", 1, 1LL << 40, &max, r))
        return 0;
    if (!c->network)
        return tool_fail(r, "web_fetch: network is disabled: sandbox.network is false");
    if (!http_url(url))
        return tool_fail(r, "web_fetch: only http:// and https:// URLs are allowed");
    if (strlen(url) > 8192)
        return tool_fail(r, "web_fetch: the URL is longer than 8192 bytes");
    /* §B1 (b): the model may ask for less, never for more */
    if (max > (long long)c->fetch_max_bytes)
        max = (long long)c->fetch_max_bytes;
    if (max < 256)
        max = 256;
    pthread_once(&curl_once, curl_init_once);
    if (!curl_ok)
        return tool_fail(r, "web_fetch: libcurl could not be initialised");
    CURL *h = curl_easy_init();
    if (!h)
        return tool_fail(r, "web_fetch: libcurl could not be initialised");
    struct dl d = { { 0 }, c->fetch_download_max, 0, 0, 0, "" };
    char errbuf[CURL_ERROR_SIZE] = "";
    long ms = c->fetch_timeout_s > 0 ? (long)(c->fetch_timeout_s * 1000) : 30000;
    curl_easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms < 15000 ? ms : 15000L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "lode-web-fetch/1");
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* decoded bytes still count to the cap */
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &d);
    CURLcode cc = curl_easy_perform(h);
    int rc = 0;
    if (d.nomem) {
        rc = err_set(ERR_NOMEM, "web_fetch: out of memory");
        goto out;
    }
    if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && d.stopped)) {
        if (d.refused[0])
            rc = tool_fail(r, "web_fetch: %s: refused to connect to %s (link-local)", url,
                           d.refused);
        else
            rc =
                tool_fail(r, "web_fetch: %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    long status = 0;
    char *ct = NULL, *eff = NULL;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff);
    const char *body = d.body.p ? d.body.p : "";
    size_t n = d.body.len;
    struct buf txt = { 0 };
    int kind = texty(ct);
    if (kind < 0) /* no content type: text unless it has NUL bytes near the start */
        kind = !memchr(body, 0, n < 4096 ? n : 4096);
    rc = buf_printf(&r->text, "%s (%ld, %s)\n\n", eff ? eff : url, status,
                    ct && ct[0] ? ct : "no content-type");
    if (rc == 0 && !kind)
        rc = buf_printf(&r->text, "[binary content, %zu%s bytes, not shown]\n", n,
                        d.stopped ? "+" : "");
    else if (rc == 0 && looks_html(ct, body, n))
        rc = web_html_to_text(body, n, &txt);
    else if (rc == 0)
        rc = buf_append(&txt, body, n);
    if (rc == 0 && kind) {
        /* keep the head: cut at a UTF-8 boundary, say how much is left */
        size_t head = r->text.len, room = (size_t)max > head ? (size_t)max - head : 0;
        size_t keep = txt.len <= room ? txt.len : utf8_complete_prefix(txt.p, room);
        rc = put_clean(&r->text, txt.p ? txt.p : "", keep);
        if (rc == 0 && (keep < txt.len || d.stopped))
            rc = buf_printf(&r->text, "\n[truncated: %zu of %zu%s bytes of text shown]\n", keep,
                            txt.len, d.stopped ? "+" : "");
        else if (rc == 0 && (!r->text.len || r->text.p[r->text.len - 1] != '\n'))
            rc = buf_putc(&r->text, '\n');
    }
    buf_free(&txt);
    r->is_error = status >= 400;
out:
    curl_easy_cleanup(h);
    buf_free(&d.body);
    return rc;
}
