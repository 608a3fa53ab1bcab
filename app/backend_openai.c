/*
 * backend_openai.c - the remote backend: an OpenAI-compatible server's
 * streaming chat-completions API (vLLM, SGLang, llama.cpp's server, ...).
 *
 * One generate() is one POST {base}/chat/completions with "stream": true; the
 * Server-Sent Events are parsed as they arrive (data lines joined until the
 * blank line, "[DONE]" at the end) and each chunk's delta becomes events:
 * reasoning ("reasoning_content" or "reasoning") and content at once, parsed
 * tool calls ("tool_calls" deltas, arguments streamed in pieces) accumulated
 * per index and emitted complete when the stream ends, so a cut stream never
 * yields half a call. Raw tool-call XML in the content is the agent's to parse.
 *
 * Reliability rules: a request is retried with backoff (connection failure,
 * 408/429/5xx, a stream cut short) only while no event has been emitted, so
 * the agent never sees anything twice; a stalled stream (no byte for
 * timeout_s) and an interrupt are noticed in libcurl's progress callback,
 * which runs at least once a second even while no data comes. Redirects are
 * never followed, so the API key only ever goes to the configured host; it is
 * never logged nor put in a message.
 */
#include "app/backend.h"
#include "app/pull.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define OA_ERRBODY_MAX (64u * 1024)      /* error bodies and /models answers kept */
#define OA_MODELS_MAX (4u * 1024 * 1024) /* a /models listing */
#define OA_LINE_MAX (64u * 1024 * 1024)  /* one SSE line (a whole tool call can be one) */
#define OA_MAX_CALLS 256                 /* parsed tool calls in one turn */
#define OA_SHOW 120                      /* bytes of a bad line quoted in a message */

struct oa_backend {
    struct backend base; /* first: be_close frees through ops->close */
    char url[2048];      /* the base URL as given, without a trailing "/" */
    char chat_url[2100]; /* {url}/chat/completions */
    char models_url[2100];
    char model[512];
    char auth[4200]; /* "Authorization: Bearer KEY" or "" */
    char ua[96];
    double timeout_s; /* connect and stall; <= 0: no stall timeout */
    int retries;
    uint64_t retry_base_ms;
};

/* One parsed tool call being accumulated (by the delta's index). */
struct oa_call {
    int index;
    char id[64];
    struct buf name, args;
};

/* The state of one transfer (one attempt). */
struct oa_xfer {
    struct oa_backend *b;
    CURL *e;
    const struct be_request *rq; /* NULL for GET /models */
    be_event_fn fn;
    void *ud;
    long status;     /* HTTP status, read at the first body byte */
    int sse;         /* the body is an event stream (status 200, right type) */
    int started;     /* the first body byte was seen */
    struct buf body; /* non-stream bodies (errors, /models), capped */
    int body_cut;    /* body exceeded its cap */
    size_t body_cap;
    /* SSE */
    struct buf line; /* the current line, without its end */
    long lineno;     /* lines of the stream so far (1-based for messages) */
    struct buf data; /* data lines of the current event */
    long data_line;  /* line where the current event's data started */
    int has_data;
    int done;        /* "[DONE]" seen */
    char finish[32]; /* the last finish_reason */
    /* outcome */
    int emitted;     /* events sent to fn (no retry after that) */
    int rc;          /* a protocol or stream error (message set) */
    int interrupted; /* rq->interrupt or fn asked to stop */
    int stalled;
    int nomem;
    double t_start, t_first, t_last_byte;
    struct oa_call *calls;
    int ncalls;
    long prompt_tokens, completion_tokens, cached_tokens;
    int have_usage;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long env_long(const char *name, long def, long lo, long hi)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    long x = strtol(v, &end, 10);
    return *end || x < lo || x > hi ? def : x;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ok;
static void curl_init_once(void) { curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }

/* ------------------------------------------------------------ the SSE stream */

/* A short, printable quote of a line for a message. */
static void quote(char *out, size_t cap, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k + 4 >= cap) {
            memcpy(out + k, "...", 3);
            k += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        out[k++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    out[k] = 0;
}

static int emit(struct oa_xfer *x, enum be_ev_kind kind, const char *text, size_t len,
                const char *name)
{
    if (x->interrupted)
        return 0;
    struct be_event ev = { .kind = kind, .text = text, .len = len, .name = name };
    x->emitted = 1;
    if (x->fn && x->fn(x->ud, &ev))
        x->interrupted = 1;
    return 0;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The text of an OpenAI error object (or string) for a message. */
static void error_text(const cJSON *err, char *out, size_t cap)
{
    const char *m = NULL;
    if (cJSON_IsString(err))
        m = err->valuestring;
    else if (cJSON_IsObject(err))
        m = json_str(err, "message");
    if (m) {
        quote(out, cap, m, strlen(m));
        return;
    }
    char *s = err ? cJSON_PrintUnformatted(err) : NULL;
    quote(out, cap, s ? s : "", s ? strlen(s) : 0);
    free(s);
}

static struct oa_call *call_at(struct oa_xfer *x, int index)
{
    for (int i = 0; i < x->ncalls; i++)
        if (x->calls[i].index == index)
            return &x->calls[i];
    if (x->ncalls >= OA_MAX_CALLS)
        return NULL;
    struct oa_call *c = realloc(x->calls, (size_t)(x->ncalls + 1) * sizeof *c);
    if (!c)
        return NULL;
    x->calls = c;
    c = &x->calls[x->ncalls++];
    memset(c, 0, sizeof *c);
    c->index = index;
    return c;
}

static int tool_call_delta(struct oa_xfer *x, const cJSON *tcs)
{
    const cJSON *tc;
    cJSON_ArrayForEach(tc, tcs)
    {
        const cJSON *ix = cJSON_GetObjectItemCaseSensitive(tc, "index");
        const char *id = json_str(tc, "id");
        struct oa_call *last = x->ncalls ? &x->calls[x->ncalls - 1] : NULL;
        /* Servers that send each call whole may leave out "index": then a new
         * id starts a new call and a missing or repeated one continues the last. */
        int index;
        if (cJSON_IsNumber(ix) && ix->valuedouble >= 0 && ix->valuedouble < 1e6)
            index = (int)ix->valuedouble;
        else if (!last)
            index = 0;
        else if (id && *id && strcmp(id, last->id)) {
            index = 0;
            for (int i = 0; i < x->ncalls; i++)
                if (x->calls[i].index >= index)
                    index = x->calls[i].index + 1;
        } else
            index = last->index;
        struct oa_call *c = call_at(x, index);
        if (!c)
            return err_set(ERR_NOMEM, "more than %d tool calls in one answer", OA_MAX_CALLS);
        if (id && *id && !c->id[0])
            snprintf(c->id, sizeof c->id, "%s", id);
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        const char *name = json_str(fn, "name");
        /* The name comes once; a server repeating it whole is not extending it. */
        if (name && !(c->name.len && !strcmp(c->name.p, name)) && buf_puts(&c->name, name) < 0)
            return ERR_NOMEM;
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
        if (cJSON_IsString(args)) {
            if (buf_puts(&c->args, args->valuestring) < 0)
                return ERR_NOMEM;
        } else if (cJSON_IsObject(args)) { /* not the API, but unambiguous */
            char *s = cJSON_PrintUnformatted(args);
            int rc = s ? buf_puts(&c->args, s) : err_set(ERR_NOMEM, "out of memory");
            free(s);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* One chunk object of the stream. */
static int on_chunk(struct oa_xfer *x, const cJSON *j, long line)
{
    char msg[512];
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (err && !cJSON_IsNull(err)) {
        error_text(err, msg, sizeof msg);
        return err_set(ERR_IO, "openai: %s: the server reported an error (stream line %ld): %s",
                       x->b->chat_url, line, msg);
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
    if (cJSON_IsObject(u)) {
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens_details");
        const cJSON *cached = cJSON_GetObjectItemCaseSensitive(d, "cached_tokens");
        x->have_usage = 1;
        x->prompt_tokens = cJSON_IsNumber(pt) ? (long)pt->valuedouble : 0;
        x->completion_tokens = cJSON_IsNumber(ct) ? (long)ct->valuedouble : 0;
        x->cached_tokens = cJSON_IsNumber(cached) ? (long)cached->valuedouble : 0;
    }
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    if (choices && !cJSON_IsArray(choices))
        return err_set(ERR_INVAL,
                       "openai: %s: protocol error at stream line %ld: \"choices\" "
                       "is not an array",
                       x->b->chat_url, line);
    const cJSON *ch;
    cJSON_ArrayForEach(ch, choices)
    {
        const cJSON *ix = cJSON_GetObjectItemCaseSensitive(ch, "index");
        if (cJSON_IsNumber(ix) && ix->valuedouble != 0)
            continue; /* we ask for one choice */
        const char *fin = json_str(ch, "finish_reason");
        if (fin)
            snprintf(x->finish, sizeof x->finish, "%s", fin);
        const cJSON *delta = cJSON_GetObjectItemCaseSensitive(ch, "delta");
        if (!cJSON_IsObject(delta))
            continue;
        if (x->t_first == 0)
            x->t_first = now_s(); /* the end of the prefill, as near as we can tell */
        /* vLLM has used both names; a server sending both sends the same text. */
        const char *r = json_str(delta, "reasoning_content");
        if (!r || !*r)
            r = json_str(delta, "reasoning");
        if (r && *r)
            emit(x, BE_EV_REASONING, r, strlen(r), NULL);
        const char *c = json_str(delta, "content");
        if (c && *c)
            emit(x, BE_EV_CONTENT, c, strlen(c), NULL);
        const cJSON *tcs = cJSON_GetObjectItemCaseSensitive(delta, "tool_calls");
        if (cJSON_IsArray(tcs)) {
            int rc = tool_call_delta(x, tcs);
            if (rc < 0)
                return err_prefix(rc, "openai: %s: stream line %ld", x->b->chat_url, line);
        }
    }
    return 0;
}

/* Dispatches the event collected so far (at a blank line or the end). */
static int sse_dispatch(struct oa_xfer *x)
{
    if (!x->has_data)
        return 0;
    x->has_data = 0;
    const char *d = x->data.p ? x->data.p : "";
    size_t n = x->data.len;
    long line = x->data_line;
    int rc = 0;
    if (x->done) {
        /* Anything after [DONE] is ignored: the answer is complete. */
    } else if (n == 6 && !memcmp(d, "[DONE]", 6)) {
        x->done = 1;
    } else {
        cJSON *j = cJSON_ParseWithLength(d, n);
        if (!cJSON_IsObject(j)) {
            char q[OA_SHOW + 8];
            quote(q, sizeof q, d, n);
            rc = err_set(ERR_INVAL,
                         "openai: %s: protocol error at stream line %ld: malformed "
                         "JSON in data: %s",
                         x->b->chat_url, line, q);
        } else
            rc = on_chunk(x, j, line);
        cJSON_Delete(j);
    }
    buf_reset(&x->data);
    return rc;
}

/* One complete line of the stream (without its end of line). */
static int sse_line(struct oa_xfer *x, const char *s, size_t n)
{
    x->lineno++;
    if (n == 0)
        return sse_dispatch(x);
    if (s[0] == ':')
        return 0; /* a comment (keep-alive) */
    const char *colon = memchr(s, ':', n);
    size_t fl = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    size_t vn = colon ? n - fl - 1 : 0;
    if (vn && *v == ' ')
        v++, vn--;
    if (fl == 4 && !memcmp(s, "data", 4)) {
        if (!x->has_data) {
            x->has_data = 1;
            x->data_line = x->lineno;
        } else if (buf_putc(&x->data, '\n') < 0)
            return ERR_NOMEM;
        return buf_append(&x->data, v, vn);
    }
    if (fl == 5 && !memcmp(s, "error", 5)) {
        /* llama.cpp's server reports a failure as an "error:" line. */
        char msg[512];
        cJSON *j = cJSON_ParseWithLength(v, vn);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        if (j && !e)
            e = j;
        if (e)
            error_text(e, msg, sizeof msg);
        else
            quote(msg, sizeof msg, v, vn);
        cJSON_Delete(j);
        return err_set(ERR_IO, "openai: %s: the server reported an error (stream line %ld): %s",
                       x->b->chat_url, x->lineno, msg);
    }
    if ((fl == 5 && !memcmp(s, "event", 5)) || (fl == 2 && !memcmp(s, "id", 2)) ||
        (fl == 5 && !memcmp(s, "retry", 5)))
        return 0;
    char q[OA_SHOW + 8];
    quote(q, sizeof q, s, n);
    return err_set(ERR_INVAL, "openai: %s: protocol error at stream line %ld: not an SSE field: %s",
                   x->b->chat_url, x->lineno, q);
}

/* Feeds body bytes to the line splitter. */
static int sse_feed(struct oa_xfer *x, const char *p, size_t n)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) : n;
        if (x->line.len + k > OA_LINE_MAX)
            return err_set(ERR_INVAL,
                           "openai: %s: protocol error at stream line %ld: a line "
                           "longer than %u bytes",
                           x->b->chat_url, x->lineno + 1, OA_LINE_MAX);
        if (buf_append(&x->line, p, k) < 0)
            return ERR_NOMEM;
        if (!nl)
            break;
        const char *l = x->line.p ? x->line.p : "";
        size_t ln = x->line.len;
        if (ln && l[ln - 1] == '\r')
            ln--;
        int rc = sse_line(x, l, ln);
        buf_reset(&x->line);
        if (rc < 0)
            return rc;
        if (x->interrupted || x->done)
            return 0;
        p += k + 1;
        n -= k + 1;
    }
    return 0;
}

/* ------------------------------------------------------------ libcurl callbacks */

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    struct oa_xfer *x = ud;
    size_t n = sz * nm;
    x->t_last_byte = now_s();
    if (!x->started) {
        /* Decided at the first body byte, when the status and headers are known. */
        char *ct = NULL;
        x->started = 1;
        curl_easy_getinfo(x->e, CURLINFO_RESPONSE_CODE, &x->status);
        curl_easy_getinfo(x->e, CURLINFO_CONTENT_TYPE, &ct);
        x->sse = x->rq && x->status == 200 && !(ct && !strncasecmp(ct, "application/json", 16));
    }
    if (!x->sse) {
        if (x->body.len + n > x->body_cap) {
            x->body_cut = 1;
            n = x->body_cap - x->body.len;
        }
        if (buf_append(&x->body, p, n) < 0) {
            x->nomem = 1;
            return 0;
        }
        return sz * nm;
    }
    int rc = sse_feed(x, p, n);
    if (rc < 0) {
        x->rc = rc;
        return 0; /* aborts the transfer */
    }
    if (x->done)
        return 0; /* the answer is complete: no need to wait for the server to close */
    if (x->interrupted || (x->rq && x->rq->interrupt && *x->rq->interrupt)) {
        x->interrupted = 1;
        return 0;
    }
    return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    struct oa_xfer *x = ud;
    x->t_last_byte = now_s();
    return sz * nm;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct oa_xfer *x = ud;
    if (x->rq && x->rq->interrupt && *x->rq->interrupt) {
        x->interrupted = 1;
        return 1;
    }
    if (x->b->timeout_s > 0 && now_s() - x->t_last_byte > x->b->timeout_s) {
        x->stalled = 1;
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ requests */

static int transient_status(long st) { return st == 408 || st == 429 || (st >= 500 && st <= 599); }

/* The message for an HTTP failure; body is the server's answer. */
static int http_error(struct oa_backend *b, const char *url, long st, const struct buf *body)
{
    char msg[600] = "";
    cJSON *j = body->len ? cJSON_ParseWithLength(body->p, body->len) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (!e)
        e = cJSON_GetObjectItemCaseSensitive(j, "detail"); /* FastAPI */
    if (!e)
        e = cJSON_GetObjectItemCaseSensitive(j, "message");
    if (e)
        error_text(e, msg, sizeof msg);
    else if (body->len)
        quote(msg, sizeof msg, body->p, body->len);
    cJSON_Delete(j);
    const char *sep = msg[0] ? ": " : "";
    if (st == 401 || st == 403)
        return err_set(ERR_DENIED, "openai: %s: HTTP %ld (authentication)%s%s (%s)", url, st, sep,
                       msg,
                       b->auth[0] ? "the API key was refused; check --api-key or LODE_API_KEY"
                                  : "no API key was sent; pass --api-key or set LODE_API_KEY");
    if (st == 404 && b->model[0])
        return err_set(ERR_NOTFOUND,
                       "openai: %s: HTTP 404%s%s (wrong URL or model: the URL should be the API "
                       "base such as http://host:8000/v1, and --remote-model '%s' one the server "
                       "serves)",
                       url, sep, msg, b->model);
    if (st == 404)
        return err_set(ERR_NOTFOUND,
                       "openai: %s: HTTP 404%s%s (wrong URL: it should be the API base such as "
                       "http://host:8000/v1)",
                       url, sep, msg);
    if (st >= 300 && st < 400)
        return err_set(ERR_IO, "openai: %s: HTTP %ld redirect, not followed (give the final URL)",
                       url, st);
    if (st >= 500)
        return err_set(ERR_IO, "openai: %s: HTTP %ld (server error)%s%s", url, st, sep, msg);
    return err_set(ERR_IO, "openai: %s: HTTP %ld%s%s", url, st, sep, msg);
}

static void sleep_ms(uint64_t ms, const volatile int *interrupt)
{
    /* In slices, so an interrupt during a backoff is noticed soon. */
    while (ms && !(interrupt && *interrupt)) {
        uint64_t k = ms < 100 ? ms : 100;
        struct timespec ts = { 0, (long)k * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        ms -= k;
    }
}

static void xfer_reset(struct oa_xfer *x)
{
    for (int i = 0; i < x->ncalls; i++) {
        buf_free(&x->calls[i].name);
        buf_free(&x->calls[i].args);
    }
    free(x->calls);
    buf_free(&x->body);
    buf_free(&x->line);
    buf_free(&x->data);
    struct oa_backend *b = x->b;
    const struct be_request *rq = x->rq;
    be_event_fn fn = x->fn;
    void *ud = x->ud;
    memset(x, 0, sizeof *x);
    x->b = b, x->rq = rq, x->fn = fn, x->ud = ud;
}

/* One attempt: GET (body NULL) or POST the JSON body; *transient says whether
 * a failure may be retried. The response is in x. */
static int perform(struct oa_xfer *x, const char *url, const char *body, int *transient)
{
    struct oa_backend *b = x->b;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *h = NULL, *t;
    *transient = 0;
    CURL *e = curl_easy_init();
    if (!e)
        return err_set(ERR_NOMEM, "openai: curl_easy_init failed");
    /* "Expect:" off: no wait for a "100 Continue" some servers never send. */
    static const char *const fixed[] = { "Content-Type: application/json",
                                         "Accept: text/event-stream, application/json",
                                         "Expect:", NULL };
    for (int i = 0; fixed[i]; i++) {
        if (!(t = curl_slist_append(h, fixed[i])))
            goto nomem;
        h = t;
    }
    if (b->auth[0]) {
        if (!(t = curl_slist_append(h, b->auth)))
            goto nomem;
        h = t;
    }
    x->body_cap = body ? OA_ERRBODY_MAX : OA_MODELS_MAX;
    x->t_start = x->t_last_byte = now_s();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_USERAGENT, b->ua);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* the key goes to this host only */
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (b->timeout_s > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)ceil(b->timeout_s * 1000.0));
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    x->e = e;
    CURLcode cc = curl_easy_perform(e);
    long st = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    x->e = NULL;
    x->status = st;

    if (x->rc < 0)
        return x->rc; /* a protocol or stream error: its message is set */
    if (x->interrupted || (x->sse && x->done))
        return 0;
    if (x->stalled)
        return err_set(ERR_IO, "openai: %s: %s for %g s (timeout; the server stalled)", url,
                       x->started ? "no data" : "no answer", b->timeout_s);
    if (x->nomem)
        return err_set(ERR_NOMEM, "openai: %s: out of memory", url);
    if (cc != CURLE_OK) {
        *transient = !x->emitted;
        const char *what = cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
                                   (cc == CURLE_OPERATION_TIMEDOUT && !x->started)
                               ? "cannot connect"
                               : "connection failed";
        return err_set(ERR_IO, "openai: %s: %s: %s", url, what,
                       errbuf[0] ? errbuf : curl_easy_strerror(cc));
    }
    if (st != 200) {
        *transient = transient_status(st);
        return http_error(b, url, st, &x->body);
    }
    if (!x->sse && x->rq) {
        /* A 200 that is not an event stream: an error object, or a server that
         * ignored "stream". */
        cJSON *j = x->body.len ? cJSON_ParseWithLength(x->body.p, x->body.len) : NULL;
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
        char msg[512];
        int rc;
        if (err) {
            error_text(err, msg, sizeof msg);
            rc = err_set(ERR_IO, "openai: %s: the server reported an error: %s", url, msg);
        } else {
            quote(msg, sizeof msg, x->body.p ? x->body.p : "", x->body.len);
            rc = err_set(ERR_INVAL,
                         "openai: %s: protocol error: expected an event stream "
                         "(text/event-stream), got: %s",
                         url, msg);
        }
        cJSON_Delete(j);
        return rc;
    }
    if (x->sse && !x->done) {
        /* The last event may lack its blank line. */
        int rc = 0;
        if (x->line.len)
            rc = sse_line(x, x->line.p, x->line.len);
        if (rc == 0)
            rc = sse_dispatch(x);
        if (rc < 0)
            return rc;
        if (!x->done && !x->finish[0]) {
            *transient = !x->emitted;
            return err_set(ERR_IO,
                           "openai: %s: the stream ended early (no [DONE] and no "
                           "finish_reason, after %ld lines)",
                           url, x->lineno);
        }
    }
    return 0;
nomem:
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    return err_set(ERR_NOMEM, "out of memory");
}

/* Attempts a request until it succeeds, fails for good, or output started. */
static int request(struct oa_xfer *x, const char *url, const char *body)
{
    struct oa_backend *b = x->b;
    const volatile int *intr = x->rq ? x->rq->interrupt : NULL;
    for (int attempt = 1;; attempt++) {
        if (intr && *intr) {
            x->interrupted = 1;
            return 0;
        }
        xfer_reset(x);
        int transient, rc = perform(x, url, body, &transient);
        if (rc == 0 || !transient || x->emitted || attempt > b->retries)
            return rc;
        uint64_t ms = pull_backoff_ms(attempt, b->retry_base_ms);
        log_warn("%s; retrying in %.1f s", err_msg(), (double)ms / 1000.0);
        sleep_ms(ms, intr);
    }
}

/* ------------------------------------------------------------ the request body */

/* A float as the short decimal it was written as (0.95f, not 0.949999988). */
static double shortest(float f)
{
    char s[32];
    snprintf(s, sizeof s, "%.6g", (double)f);
    return strtod(s, NULL);
}

/* Arguments as the JSON text the API wants (lode keeps them as objects). */
static int args_to_string(cJSON *fn)
{
    cJSON *a = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
    if (cJSON_IsString(a))
        return 0;
    char *s = a ? cJSON_PrintUnformatted(a) : NULL;
    if (a && !s)
        return ERR_NOMEM;
    cJSON *str = cJSON_CreateString(s ? s : "{}");
    free(s);
    if (!str)
        return ERR_NOMEM;
    if (a)
        cJSON_ReplaceItemInObjectCaseSensitive(fn, "arguments", str);
    else
        cJSON_AddItemToObject(fn, "arguments", str);
    return 0;
}

/* lode's conversation -> the API's messages: every tool call as {"id",
 * "type": "function", "function": {"name", "arguments": "<JSON text>"}}, the
 * tool results answering them with "tool_call_id" (ids made up in order
 * where the conversation has none), "reasoning" under the name chat
 * templates read ("reasoning_content"). */
static int convert_messages(const cJSON *in, cJSON **out)
{
    cJSON *msgs = in ? cJSON_Duplicate(in, 1) : cJSON_CreateArray();
    if (!msgs)
        return err_set(ERR_NOMEM, "out of memory");
    if (!cJSON_IsArray(msgs)) {
        cJSON_Delete(msgs);
        return err_set(ERR_INVAL, "openai: the conversation is not an array of messages");
    }
    char pending[OA_MAX_CALLS][48]; /* ids of calls not answered yet, in order */
    int npend = 0, head = 0, next_id = 1;
    cJSON *m;
    int rc = 0, mi = 0;
    cJSON_ArrayForEach(m, msgs)
    {
        const char *role = json_str(m, "role");
        if (!role) {
            rc = err_set(ERR_INVAL, "openai: message %d has no role", mi);
            break;
        }
        if (!strcmp(role, "assistant")) {
            cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "reasoning");
            if (r && !cJSON_GetObjectItemCaseSensitive(m, "reasoning_content")) {
                cJSON_DetachItemViaPointer(m, r);
                cJSON_AddItemToObject(m, "reasoning_content", r);
            }
            cJSON *tcs = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
            npend = head = 0;
            cJSON *tc;
            cJSON_ArrayForEach(tc, tcs)
            {
                cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
                if (!cJSON_IsObject(fn)) { /* the bare {"name", "arguments"} form */
                    fn = cJSON_CreateObject();
                    cJSON *nm = cJSON_DetachItemFromObjectCaseSensitive(tc, "name");
                    cJSON *ar = cJSON_DetachItemFromObjectCaseSensitive(tc, "arguments");
                    if (!fn) {
                        cJSON_Delete(nm);
                        cJSON_Delete(ar);
                        rc = ERR_NOMEM;
                        break;
                    }
                    if (nm)
                        cJSON_AddItemToObject(fn, "name", nm);
                    if (ar)
                        cJSON_AddItemToObject(fn, "arguments", ar);
                    cJSON_AddItemToObject(tc, "function", fn);
                }
                if (!cJSON_GetObjectItemCaseSensitive(tc, "type"))
                    cJSON_AddStringToObject(tc, "type", "function");
                const char *id = json_str(tc, "id");
                char made[48];
                if (!id || !*id) {
                    snprintf(made, sizeof made, "call_%d", next_id++);
                    cJSON_DeleteItemFromObjectCaseSensitive(tc, "id");
                    if (!cJSON_AddStringToObject(tc, "id", made)) {
                        rc = ERR_NOMEM;
                        break;
                    }
                    id = made;
                }
                if (npend < OA_MAX_CALLS)
                    snprintf(pending[npend++], sizeof pending[0], "%s", id);
                if ((rc = args_to_string(fn)) < 0)
                    break;
            }
            if (rc < 0)
                break;
        } else if (!strcmp(role, "tool")) {
            const char *id = json_str(m, "tool_call_id");
            if ((!id || !*id) && head < npend) {
                cJSON_DeleteItemFromObjectCaseSensitive(m, "tool_call_id");
                if (!cJSON_AddStringToObject(m, "tool_call_id", pending[head])) {
                    rc = ERR_NOMEM;
                    break;
                }
            }
            head++;
        }
        mi++;
    }
    if (rc < 0) {
        cJSON_Delete(msgs);
        return rc == ERR_NOMEM ? err_set(ERR_NOMEM, "out of memory") : rc;
    }
    *out = msgs;
    return 0;
}

/* Tools in the API's form ({"type": "function", "function": {...}}). */
static cJSON *convert_tools(const cJSON *in)
{
    cJSON *tools = cJSON_CreateArray();
    const cJSON *t;
    cJSON_ArrayForEach(t, in)
    {
        cJSON *c;
        if (cJSON_GetObjectItemCaseSensitive(t, "function")) {
            c = cJSON_Duplicate(t, 1);
            if (c && !cJSON_GetObjectItemCaseSensitive(c, "type"))
                cJSON_AddStringToObject(c, "type", "function");
        } else {
            c = cJSON_CreateObject();
            cJSON *f = cJSON_Duplicate(t, 1);
            if (c && f && cJSON_AddStringToObject(c, "type", "function"))
                cJSON_AddItemToObject(c, "function", f);
            else
                cJSON_Delete(f);
        }
        if (!c || !cJSON_AddItemToArray(tools, c)) {
            cJSON_Delete(c);
            cJSON_Delete(tools);
            return NULL;
        }
    }
    return tools;
}

static int build_body(struct oa_backend *b, const struct be_request *rq, char **out)
{
    cJSON *msgs = NULL;
    int rc = convert_messages(rq->messages, &msgs);
    if (rc < 0)
        return rc;
    cJSON *j = cJSON_CreateObject();
    if (!j) {
        cJSON_Delete(msgs);
        return err_set(ERR_NOMEM, "out of memory");
    }
    cJSON_AddStringToObject(j, "model", b->model);
    cJSON_AddItemToObject(j, "messages", msgs);
    if (cJSON_GetArraySize(rq->tools) > 0) {
        cJSON *tools = convert_tools(rq->tools);
        if (tools)
            cJSON_AddItemToObject(j, "tools", tools);
        else
            rc = ERR_NOMEM;
    }
    cJSON_AddBoolToObject(j, "stream", 1);
    cJSON *so = cJSON_AddObjectToObject(j, "stream_options");
    cJSON_AddBoolToObject(so, "include_usage", 1);
    const struct samp_params *s = &rq->samp;
    cJSON_AddNumberToObject(j, "temperature", shortest(s->temperature));
    cJSON_AddNumberToObject(j, "top_p", shortest(s->top_p));
    if (s->top_k > 0)
        cJSON_AddNumberToObject(j, "top_k", s->top_k);
    cJSON_AddNumberToObject(j, "min_p", shortest(s->min_p));
    cJSON_AddNumberToObject(j, "presence_penalty", shortest(s->presence_penalty));
    cJSON_AddNumberToObject(j, "repetition_penalty",
                            s->repetition_penalty > 0 ? shortest(s->repetition_penalty) : 1.0);
    if (rq->max_tokens > 0)
        cJSON_AddNumberToObject(j, "max_tokens", (double)rq->max_tokens);
    cJSON *kw = cJSON_AddObjectToObject(j, "chat_template_kwargs");
    cJSON_AddBoolToObject(kw, "enable_thinking", rq->thinking != 0);
    char *text = rc == 0 && so && kw ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!text)
        return err_set(ERR_NOMEM, "out of memory");
    *out = text;
    return 0;
}

/* ------------------------------------------------------------ the backend */

static int by_index(const void *a, const void *b)
{
    const struct oa_call *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

static int oa_generate(struct backend *bb, const struct be_request *rq, be_event_fn fn, void *ud,
                       struct be_usage *u, enum be_stop *stop)
{
    struct oa_backend *b = (struct oa_backend *)bb;
    struct be_usage zero = { 0 };
    *u = zero;
    *stop = BE_STOP_END;
    char *body = NULL;
    int rc = build_body(b, rq, &body);
    if (rc < 0)
        return rc;
    log_debug("openai: POST %s (%zu bytes, model %s)", b->chat_url, strlen(body), b->model);
    struct oa_xfer x = { .b = b, .rq = rq, .fn = fn, .ud = ud };
    rc = request(&x, b->chat_url, body);
    free(body);
    double t_end = now_s();
    if (rc == 0 && !x.interrupted) {
        /* Complete calls only now: a stream cut in the middle of one gave none. */
        if (x.ncalls > 1)
            qsort(x.calls, (size_t)x.ncalls, sizeof *x.calls, by_index);
        for (int i = 0; i < x.ncalls && !x.interrupted; i++) {
            struct oa_call *c = &x.calls[i];
            const char *args = c->args.len ? c->args.p : "{}";
            emit(&x, BE_EV_TOOL_CALL, args, strlen(args), c->name.p ? c->name.p : "");
        }
    }
    if (rc == 0)
        *stop = x.interrupted                 ? BE_STOP_INTERRUPT
                : !strcmp(x.finish, "length") ? BE_STOP_LENGTH
                                              : BE_STOP_END;
    if (x.have_usage) {
        u->prompt_tokens = x.prompt_tokens;
        u->cached_tokens = x.cached_tokens;
        u->prefill_tokens =
            x.prompt_tokens > x.cached_tokens ? x.prompt_tokens - x.cached_tokens : 0;
        u->gen_tokens = x.completion_tokens;
    }
    if (x.t_start > 0) {
        double first = x.t_first > 0 ? x.t_first : t_end;
        u->prefill_s = first - x.t_start;
        u->gen_s = t_end - first;
    }
    xfer_reset(&x);
    return rc;
}

/* The server's first model (GET {base}/models), when none was named. */
static int fetch_model(struct oa_backend *b)
{
    struct oa_xfer x = { .b = b };
    int rc = request(&x, b->models_url, NULL);
    if (rc == 0) {
        cJSON *j = cJSON_ParseWithLength(x.body.p ? x.body.p : "", x.body.len);
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
        const char *id = json_str(cJSON_GetArrayItem(data, 0), "id");
        if (!j || x.body_cut)
            rc = err_set(ERR_INVAL, "openai: %s: protocol error: the model list is not JSON",
                         b->models_url);
        else if (!id || !*id || strlen(id) >= sizeof b->model)
            rc = err_set(ERR_NOTFOUND,
                         "openai: %s: the server lists no model; name one with "
                         "--remote-model",
                         b->models_url);
        else
            snprintf(b->model, sizeof b->model, "%s", id);
        cJSON_Delete(j);
    }
    xfer_reset(&x);
    return rc;
}

static void oa_close(struct backend *bb)
{
    struct oa_backend *b = (struct oa_backend *)bb;
    if (!b)
        return;
    /* The key must not linger in freed memory. */
    memset(b->auth, 0, sizeof b->auth);
    free(b);
}

static const struct be_ops oa_ops = {
    .generate = oa_generate,
    .close = oa_close,
};

static int url_ok(const char *s)
{
    if (strncasecmp(s, "http://", 7) && strncasecmp(s, "https://", 8))
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

int be_openai_open(struct backend **out, const char *url, const struct be_config *cfg)
{
    *out = NULL;
    if (!url || !url_ok(url))
        return err_set(ERR_INVAL,
                       "backend openai:%.200s: not an http:// or https:// URL "
                       "(e.g. openai:http://localhost:8000/v1)",
                       url ? url : "");
    pthread_once(&curl_once, curl_init_once);
    if (!curl_ok)
        return err_set(ERR_INTERNAL, "backend openai: curl_global_init failed");
    struct oa_backend *b = calloc(1, sizeof *b);
    if (!b)
        return err_set(ERR_NOMEM, "out of memory");
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    static const char suffix[] = "/chat/completions"; /* the full endpoint given: keep its base */
    if (n > sizeof suffix - 1 && !strncmp(url + n - (sizeof suffix - 1), suffix, sizeof suffix - 1))
        n -= sizeof suffix - 1;
    if (n >= sizeof b->url) {
        free(b);
        return err_set(ERR_INVAL, "backend openai: URL too long (%zu bytes)", strlen(url));
    }
    memcpy(b->url, url, n);
    snprintf(b->chat_url, sizeof b->chat_url, "%s/chat/completions", b->url);
    snprintf(b->models_url, sizeof b->models_url, "%s/models", b->url);
    const char *key = cfg ? cfg->api_key : NULL;
    if (key && *key) {
        for (const char *p = key; *p; p++)
            if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
                free(b);
                return err_set(ERR_INVAL, "backend openai: the API key contains spaces or control "
                                          "characters");
            }
        if (snprintf(b->auth, sizeof b->auth, "Authorization: Bearer %s", key) >=
            (int)sizeof b->auth) {
            oa_close(&b->base);
            return err_set(ERR_INVAL, "backend openai: the API key is too long");
        }
    }
    snprintf(b->ua, sizeof b->ua, "lode/0.1 (openai) libcurl/%s",
             curl_version_info(CURLVERSION_NOW)->version);
    b->timeout_s = cfg ? cfg->timeout_s : 0;
    b->retries = (int)env_long("LODE_OPENAI_RETRIES", 2, 0, 100);
    b->retry_base_ms = (uint64_t)env_long("LODE_OPENAI_RETRY_BASE_MS", 1000, 0, 600000);
    b->base.ops = &oa_ops;
    b->base.caps = 0; /* no prompt, state or tokens remotely: said, not faked */
    snprintf(b->base.name, sizeof b->base.name, "openai");
    const char *m = cfg ? cfg->remote_model : NULL;
    if (m && *m) {
        if (strlen(m) >= sizeof b->model) {
            oa_close(&b->base);
            return err_set(ERR_INVAL, "backend openai: the model name is too long");
        }
        snprintf(b->model, sizeof b->model, "%s", m);
    } else {
        int rc = fetch_model(b);
        if (rc < 0) {
            oa_close(&b->base);
            return rc;
        }
    }
    snprintf(b->base.model_desc, sizeof b->base.model_desc, "%.150s (%.100s)", b->url, b->model);
    b->base.model_dir = NULL;
    *out = &b->base;
    return 0;
}
