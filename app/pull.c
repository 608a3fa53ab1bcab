/*
 * pull.c - the Hugging Face Hub client behind `lode pull` (see pull.h).
 *
 * A download of one file is a small state machine driven by the curl multi
 * loop in download_all():
 *
 *   WAIT --start--> ACTIVE --200/206 complete--> VERIFY --ok--> rename --> DONE
 *     ^               |  3xx: follow by hand (auth only to the endpoint's origin)
 *     |               |  CDN 401/403/410: back to the resolve URL (fresh signature)
 *     +--backoff------+  network error, short body, 408/429/5xx: resume from the offset
 *                     |  200 to a range request, bad Content-Range, 416: restart at 0
 *                     +--401/403/404, disk full, checksum, too many tries--> FAILED
 *
 * VERIFY runs on its own thread (fsync, then SHA-256 of the whole part file,
 * still in the page cache): one core hashes ~200 MB/s, so hashing inside the
 * network loop would cap a multi-file pull at that; this way each finished
 * shard is checked while the others keep downloading, and a resumed file
 * needs no hashing of its old bytes before the download starts.
 *
 * Invariants: `<path>.incomplete` holds exactly x->off bytes; a file appears
 * under its final name only after its size and checksum matched and it was
 * fsync'ed. Sizes come from the listing
 * (each <= 2^53, checked by the parser); their sums are checked here.
 */
#include "app/pull.h"

#include "common/ckd.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hash.h"
#include "common/text.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define API_BODY_MAX (64u << 20) /* one page of a listing; real ones are a few hundred KB */
#define MAX_HOPS 10              /* redirects in one chain */
#define MAX_REFRESH 5            /* fresh signed URLs per file after expiry */

static volatile sig_atomic_t cancelled;
static int aborting; /* a download failed: verification threads stop early (atomic) */

void pull_cancel(void) { cancelled = 1; }

/* ------------------------------------------------------------ settings */

struct hub {
    const char *endpoint;
    const char *token;
    char auth[4200]; /* "Authorization: Bearer ..." or "" */
    char ua[96];
    int retries;
    uint64_t retry_base_ms;
    long stall_s, connect_s;
    double progress_s;
    int tty;
};

static long env_long(const char *name, long def, long lo, long hi)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    long x = strtol(v, &end, 10);
    return *end || x < lo || x > hi ? def : x;
}

static int hub_init(struct hub *h, const struct pull_opts *o)
{
    memset(h, 0, sizeof *h);
    h->endpoint = o->endpoint ? o->endpoint : PULL_DEFAULT_ENDPOINT;
    if (strncmp(h->endpoint, "http://", 7) && strncmp(h->endpoint, "https://", 8))
        return err_set(ERR_INVAL, "HF_ENDPOINT '%s' is not an http(s) URL", h->endpoint);
    if (o->token && *o->token) {
        for (const char *p = o->token; *p; p++)
            if ((unsigned char)*p <= 0x20 || *p == 0x7f)
                return err_set(ERR_INVAL, "HF_TOKEN contains spaces or control characters");
        if (snprintf(h->auth, sizeof h->auth, "Authorization: Bearer %s", o->token) >=
            (int)sizeof h->auth)
            return err_set(ERR_INVAL, "HF_TOKEN is too long");
        h->token = o->token;
    }
    snprintf(h->ua, sizeof h->ua, "lode/0.1 (pull) libcurl/%s",
             curl_version_info(CURLVERSION_NOW)->version);
    h->retries = (int)env_long("LODE_PULL_RETRIES", 5, 0, 1000);
    h->retry_base_ms = (uint64_t)env_long("LODE_PULL_RETRY_BASE_MS", 1000, 0, 600000);
    h->stall_s = env_long("LODE_PULL_STALL_S", 60, 1, 86400);
    h->connect_s = env_long("LODE_PULL_CONNECT_TIMEOUT_S", 30, 1, 3600);
    h->progress_s = (double)env_long("LODE_PULL_PROGRESS_S", 10, 0, 86400);
    h->tty = isatty(2);
    return 0;
}

static int on_xferinfo(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    return cancelled ? 1 : 0;
}

/* Options shared by every request; auth only for the endpoint's origin. */
static int easy_setup(struct hub *h, CURL *e, const char *url, struct curl_slist **hdrs,
                      const char *range)
{
    struct curl_slist *l = NULL, *t;
    if (h->auth[0] && pull_same_origin(url, h->endpoint)) {
        if (!(t = curl_slist_append(l, h->auth)))
            goto nomem;
        l = t;
    }
    if (range) {
        if (!(t = curl_slist_append(l, range)))
            goto nomem;
        l = t;
    }
    *hdrs = l;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(e, CURLOPT_USERAGENT, h->ua);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* redirects are ours: see the header */
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, h->connect_s);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, h->stall_s);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024); /* fewer callbacks and writes */
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_xferinfo); /* Ctrl-C stops a request */
    return 0;
nomem:
    curl_slist_free_all(l);
    return err_set(ERR_NOMEM, "out of memory");
}

/* Checks a redirect target: http(s) only, no https -> http downgrade. */
static int redirect_ok(const char *from, const char *to)
{
    if (strncmp(to, "http://", 7) && strncmp(to, "https://", 8))
        return err_set(ERR_INVAL, "redirect to a non-HTTP URL '%.200s'", to);
    if (!strncmp(from, "https://", 8) && !strncmp(to, "http://", 7))
        return err_set(ERR_DENIED, "refusing a redirect from https to plain http (%.200s)", to);
    return 0;
}

static int transient_status(long st)
{
    return st == 408 || st == 429 || st == 500 || st == 502 || st == 503 || st == 504;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !cancelled)
        ;
}

/* ------------------------------------------------------------ API requests */

struct resp {
    struct buf body;
    char link[4096];
    char errmsg[256]; /* X-Error-Message from the Hub */
    int too_big;
};

static size_t on_api_body(char *p, size_t sz, size_t nm, void *ud)
{
    struct resp *r = ud;
    size_t n = sz * nm;
    if (r->body.len + n > API_BODY_MAX) {
        r->too_big = 1;
        return 0;
    }
    return buf_append(&r->body, p, n) < 0 ? 0 : n;
}

/* Copies the value of header `name` from a raw header line into out. */
static int header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) || line[k] != ':')
        return 0;
    const char *v = line + k + 1;
    size_t vn = n - k - 1;
    while (vn && (*v == ' ' || *v == '\t'))
        v++, vn--;
    while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' '))
        vn--;
    if (vn >= cap)
        vn = cap - 1;
    memcpy(out, v, vn);
    out[vn] = 0;
    return 1;
}

static size_t on_api_header(char *p, size_t sz, size_t nm, void *ud)
{
    struct resp *r = ud;
    size_t n = sz * nm;
    header_value(p, n, "link", r->link, sizeof r->link);
    header_value(p, n, "x-error-message", r->errmsg, sizeof r->errmsg);
    return n;
}

/* Message for an HTTP failure of an API call about `what`. */
static int http_error(struct hub *h, const char *what, long st, const char *hubmsg)
{
    const char *extra = hubmsg && *hubmsg ? hubmsg : "";
    const char *sep = *extra ? ": " : "";
    if (st == 401)
        return err_set(ERR_DENIED, "%s: 401 Unauthorized%s%s (%s)", what, sep, extra,
                       h->token ? "HF_TOKEN was rejected; check that it is valid"
                                : "the repository is private, gated or does not exist; set "
                                  "HF_TOKEN to a token with access");
    if (st == 403)
        return err_set(ERR_DENIED, "%s: 403 Forbidden%s%s (%s)", what, sep, extra,
                       h->token ? "the token has no access; for a gated model accept its "
                                  "conditions on the model page"
                                : "set HF_TOKEN to a token with access");
    if (st == 404)
        return err_set(ERR_NOTFOUND, "%s: 404 Not Found%s%s", what, sep, extra);
    return err_set(ERR_IO, "%s: HTTP %ld%s%s", what, st, sep, extra);
}

/* GET url (an API call) with retries; redirects followed by hand. On 200
 * fills r (body, Link); on failure a message naming `what`. */
static int api_get(struct hub *h, const char *url0, const char *what, struct resp *r,
                   char *final_url, size_t final_cap)
{
    char url[4096];
    char errbuf[CURL_ERROR_SIZE];
    if (snprintf(url, sizeof url, "%s", url0) >= (int)sizeof url)
        return err_set(ERR_INVAL, "%s: URL too long", what);
    int hops = 0;
    for (int attempt = 1;; attempt++) {
        if (cancelled)
            return err_set(ERR_INTERRUPTED, "interrupted");
        CURL *e = curl_easy_init();
        if (!e)
            return err_set(ERR_NOMEM, "curl_easy_init failed");
        struct curl_slist *hdrs = NULL;
        buf_reset(&r->body);
        r->link[0] = r->errmsg[0] = 0;
        r->too_big = 0;
        int rc = easy_setup(h, e, url, &hdrs, NULL);
        if (rc < 0) {
            curl_easy_cleanup(e);
            return rc;
        }
        errbuf[0] = 0;
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* JSON compresses well */
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 300L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_api_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_api_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
        CURLcode cc = curl_easy_perform(e);
        long st = 0;
        char *loc = NULL;
        char next[4096] = "";
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
        if (cc == CURLE_OK && st >= 300 && st < 400 &&
            curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc)
            snprintf(next, sizeof next, "%s", loc);
        curl_easy_cleanup(e);
        curl_slist_free_all(hdrs);
        if (r->too_big)
            return err_set(ERR_INVAL, "%s: response larger than %u bytes", what, API_BODY_MAX);
        int transient = 0;
        if (cc != CURLE_OK) {
            transient = 1;
            rc = err_set(ERR_IO, "%s: %s", what, errbuf[0] ? errbuf : curl_easy_strerror(cc));
        } else if (st >= 300 && st < 400) {
            if (!next[0])
                return err_set(ERR_IO, "%s: HTTP %ld without a Location", what, st);
            if (++hops > MAX_HOPS)
                return err_set(ERR_IO, "%s: too many redirects", what);
            if ((rc = redirect_ok(url, next)) < 0)
                return err_prefix(rc, "%s", what);
            strcpy(url, next);
            attempt--;
            continue;
        } else if (st == 200) {
            if (final_url)
                snprintf(final_url, final_cap, "%s", url);
            return 0;
        } else if (transient_status(st)) {
            transient = 1;
            rc = http_error(h, what, st, r->errmsg);
        } else
            return http_error(h, what, st, r->errmsg);
        if (!transient || attempt > h->retries)
            return rc;
        uint64_t ms = pull_backoff_ms(attempt, h->retry_base_ms);
        fprintf(stderr, "lode pull: %s; retrying in %.1f s\n", err_msg(), (double)ms / 1000.0);
        sleep_ms(ms);
    }
}

static int resolve_commit(struct hub *h, const char *repo, const char *rev, char commit[41])
{
    struct buf url = { 0 };
    struct resp r = { 0 };
    char what[512];
    snprintf(what, sizeof what, "%s@%s", repo, rev);
    int rc = buf_printf(&url, "%s/api/models/%s/revision/", h->endpoint, repo);
    if (rc == 0)
        rc = pull_url_escape(&url, rev, 0);
    if (rc == 0)
        rc = api_get(h, url.p, what, &r, NULL, 0);
    if (rc == 0) {
        cJSON *root = cJSON_ParseWithLength(r.body.p ? r.body.p : "", r.body.len);
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(root, "sha");
        if (!cJSON_IsString(sha) || !pull_hex_ok(sha->valuestring, 40))
            rc = err_set(ERR_INVAL, "%s: the Hub's answer has no commit (\"sha\")", what);
        else
            strcpy(commit, sha->valuestring);
        cJSON_Delete(root);
    }
    buf_free(&url);
    buf_free(&r.body);
    return rc;
}

static int list_tree(struct hub *h, const char *repo, struct pull_listing *l)
{
    struct buf url = { 0 };
    struct resp r = { 0 };
    char what[512], next[4096], cur[4096];
    snprintf(what, sizeof what, "%s@%.12s: tree listing", repo, l->commit);
    int rc =
        buf_printf(&url, "%s/api/models/%s/tree/%s?recursive=true", h->endpoint, repo, l->commit);
    if (rc == 0 && (size_t)snprintf(next, sizeof next, "%s", url.p) >= sizeof next)
        rc = err_set(ERR_INVAL, "URL too long");
    for (int page = 0; rc == 0 && next[0]; page++) {
        if (page > 100000) {
            rc = err_set(ERR_INVAL, "%s: too many pages", what);
            break;
        }
        if ((rc = api_get(h, next, what, &r, cur, sizeof cur)) < 0)
            break;
        if ((rc = pull_parse_tree(r.body.p ? r.body.p : "", r.body.len, what, l)) < 0)
            break;
        next[0] = 0;
        if (r.link[0] && (rc = pull_link_next(r.link, cur, next, sizeof next)) < 0)
            break;
        rc = 0;
    }
    buf_free(&url);
    buf_free(&r.body);
    return rc;
}

/* ------------------------------------------------------------ progress */

struct progress {
    struct hub *h;
    uint64_t total, done;
    uint64_t received; /* monotonic: bytes that came over the network */
    uint64_t t0, last_draw, last_line;
    uint64_t st[20], sb[20]; /* samples (ns, received) for a sliding-window rate */
    int ns, si;
    int drawn;
    const char *label;
};

static double progress_rate(struct progress *p, uint64_t now)
{
    if (now - (p->ns ? p->st[(p->si + 20 - 1) % 20] : 0) >= 250000000ull || !p->ns) {
        p->st[p->si] = now, p->sb[p->si] = p->received;
        p->si = (p->si + 1) % 20;
        if (p->ns < 20)
            p->ns++;
    }
    int oldest = p->ns < 20 ? 0 : p->si;
    double dt = (double)(now - p->st[oldest]) / 1e9;
    if (dt < 0.5)
        return 0;
    return (double)(p->received - p->sb[oldest]) / dt;
}

static int term_width(void)
{
    struct winsize ws;
    if (ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
        return ws.ws_col;
    return 80;
}

static void progress_draw(struct progress *p, int force)
{
    uint64_t now = time_ns();
    double rate = progress_rate(p, now);
    char line[512];
    if (p->h->tty) {
        if (!force && now - p->last_draw < 200000000ull)
            return;
        int w = term_width() - 1;
        int lw = (int)strlen(p->label) + 2;
        pull_format_progress(line, sizeof line, p->done, p->total, rate, w - lw);
        fprintf(stderr, "\r%s: %s\033[K", p->label, line);
        p->drawn = 1;
    } else {
        if (!force &&
            (p->h->progress_s <= 0 || (double)(now - p->last_line) / 1e9 < p->h->progress_s))
            return;
        pull_format_progress(line, sizeof line, p->done, p->total, rate, 0);
        fprintf(stderr, "%s: %s\n", p->label, line);
        p->last_line = now;
    }
    p->last_draw = now;
    fflush(stderr);
}

/* Prints a message line without tearing the bar. */
static void progress_say(struct progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void progress_say(struct progress *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (p && p->h->tty && p->drawn)
        fputs("\r\033[K", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (p && p->h->tty && p->drawn)
        progress_draw(p, 1);
}

static void progress_end(struct progress *p)
{
    if (p->h->tty && p->drawn) {
        progress_draw(p, 1);
        fputc('\n', stderr);
    }
    p->drawn = 0;
}

/* ------------------------------------------------------------ files */

static int path_in(char *out, size_t cap, const char *dir, const char *rel, const char *suffix)
{
    int n = snprintf(out, cap, "%s/%s%s", dir, rel, suffix);
    if (n < 0 || (size_t)n >= cap)
        return err_set(ERR_INVAL, "path too long: %s/%s", dir, rel);
    return 0;
}

static int mkdir_parent(const char *path)
{
    char d[PATH_MAX];
    snprintf(d, sizeof d, "%s", path);
    char *slash = strrchr(d, '/');
    if (!slash || slash == d)
        return 0;
    *slash = 0;
    return fs_mkdir_p(d, 0755);
}

static int fsync_parent(const char *path)
{
    char d[PATH_MAX];
    snprintf(d, sizeof d, "%s", path);
    char *slash = strrchr(d, '/');
    if (slash)
        *slash = 0;
    int fd = open(slash ? d : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_errno("%s", d);
    int rc = fsync(fd) < 0 && errno != EINVAL ? err_errno("fsync %s", d) : 0;
    close(fd);
    return rc;
}

/* Hashes the first len bytes of fd into s. Progress: p (one thread: it
 * draws) or count (worker threads: an atomic counter), either may be NULL. */
static int hash_fd(int fd, uint64_t len, struct pull_sums *s, struct progress *p, uint64_t *count,
                   const char *name)
{
    size_t cap = 1 << 20;
    uint8_t *b = malloc(cap);
    if (!b)
        return err_set(ERR_NOMEM, "out of memory");
    uint64_t off = 0;
    int rc = 0;
    while (off < len) {
        if (cancelled || __atomic_load_n(&aborting, __ATOMIC_RELAXED)) {
            rc = err_set(ERR_INTERRUPTED, "interrupted");
            break;
        }
        size_t want = len - off < cap ? (size_t)(len - off) : cap;
        ssize_t r = pread(fd, b, want, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = err_errno("read %s", name);
            break;
        }
        if (r == 0) {
            rc = err_set(ERR_IO, "%s: shorter than expected", name);
            break;
        }
        pull_sums_update(s, b, (size_t)r);
        off += (uint64_t)r;
        if (p) {
            p->done += (uint64_t)r;
            progress_draw(p, 0);
        }
        if (count)
            __atomic_fetch_add(count, (uint64_t)r, __ATOMIC_RELAXED);
    }
    free(b);
    return rc;
}

/* 1 when path holds f's content, 0 when not (why gets a line naming the
 * file), <0 when it could not be read. */
static int verify_file(const char *path, const struct pull_file *f, struct progress *p,
                       uint64_t *count, char *why, size_t whycap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            snprintf(why, whycap, "%s: missing", f->path);
            return 0;
        }
        return err_errno("%s", path);
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int rc = err_errno("%s", path);
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size) {
        snprintf(why, whycap, "%s: %lld bytes, expected %llu", f->path, (long long)st.st_size,
                 (unsigned long long)f->size);
        close(fd);
        return 0;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    struct pull_sums s;
    pull_sums_init(&s, f);
    int rc = hash_fd(fd, f->size, &s, p, count, path);
    close(fd);
    if (rc < 0)
        return rc;
    if (pull_sums_check(&s, f) < 0) {
        snprintf(why, whycap, "%s", err_msg());
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ downloads */

enum xstate { X_WAIT, X_ACTIVE, X_VERIFY, X_DONE, X_FAILED };

struct dl;

struct xfer {
    struct dl *d;
    const struct pull_file *f;
    int idx; /* in the listing */
    char final_path[PATH_MAX], part_path[PATH_MAX + 16];
    char resolve_url[8192], url[8192]; /* url: the next request's target */
    int fd;
    uint64_t off; /* bytes in the part file */
    int on_cdn;   /* url is of another origin (a signed redirect target) */
    int resumed;  /* the part file came from an earlier run */
    int restarted_full;
    int hops, attempts, refreshes;
    uint64_t next_try_ns;
    enum xstate state;
    /* the request in flight */
    CURL *e;
    struct curl_slist *hdrs;
    long status;
    int body_started, sink, bad_range, too_long, werr;
    uint64_t req_off, got;
    uint64_t last_rx_ns; /* our own stall clock: curl's low-speed check averages over ~5 s */
    char content_range[128], errmsg[256], retry_after[32];
    char errbuf[CURL_ERROR_SIZE];
    /* the verification thread (X_VERIFY); v_done is set last, atomically */
    pthread_t vt;
    int v_started, v_done, v_res; /* v_res: 1 match, 0 mismatch, <0 error */
    char v_msg[1024];
};

struct dl {
    struct hub *h;
    struct progress *p;
    CURLM *m;
    struct xfer *x;
    int nx, active, jobs;
    const char *dir, *repo, *rev;
    char manifest[PATH_MAX]; /* dir/.lode-pull.json */
    struct pull_listing *l;
    char *ok;
    int rc;
    char msg[1024];
    int nfetched;
};

static size_t on_dl_header(char *p, size_t sz, size_t nm, void *ud)
{
    struct xfer *x = ud;
    size_t n = sz * nm;
    x->last_rx_ns = time_ns();
    header_value(p, n, "content-range", x->content_range, sizeof x->content_range);
    header_value(p, n, "x-error-message", x->errmsg, sizeof x->errmsg);
    header_value(p, n, "retry-after", x->retry_after, sizeof x->retry_after);
    return n;
}

static int xfer_truncate(struct xfer *x)
{
    if (ftruncate(x->fd, 0) < 0)
        return err_errno("truncate %s", x->part_path);
    x->d->p->done -= x->off;
    x->off = 0;
    x->resumed = 0;
    return 0;
}

static size_t on_dl_body(char *p, size_t sz, size_t nm, void *ud)
{
    struct xfer *x = ud;
    size_t n = sz * nm;
    if (!x->body_started) {
        x->body_started = 1;
        curl_easy_getinfo(x->e, CURLINFO_RESPONSE_CODE, &x->status);
        if (x->status == 206) {
            unsigned long long a;
            if (sscanf(x->content_range, "bytes %llu-", &a) != 1 || a != x->off) {
                x->bad_range = 1;
                return 0;
            }
        } else if (x->status == 200) {
            /* the server ignored our Range: the body starts at byte 0 */
            if (x->off > 0 && xfer_truncate(x) < 0) {
                x->werr = errno ? errno : EIO;
                return 0;
            }
        } else
            x->sink = 1;
    }
    if (x->sink)
        return n; /* an error or redirect body: the status says enough */
    if (x->off + n > x->f->size) {
        x->too_long = 1;
        return 0;
    }
    for (size_t w = 0; w < n;) {
        ssize_t r = pwrite(x->fd, p + w, n - w, (off_t)(x->off + w));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            x->werr = r < 0 ? errno : EIO;
            return 0;
        }
        w += (size_t)r;
    }
    x->last_rx_ns = time_ns();
    x->off += n;
    x->got += n;
    x->d->p->done += n;
    x->d->p->received += n;
    return n;
}

static void xfer_fail(struct xfer *x, int rc)
{
    struct dl *d = x->d;
    x->state = X_FAILED;
    if (!d->rc) {
        d->rc = rc;
        snprintf(d->msg, sizeof d->msg, "%s", err_msg());
    }
}

static int xfer_start(struct dl *d, struct xfer *x)
{
    char range[64];
    snprintf(range, sizeof range, "Range: bytes=%llu-", (unsigned long long)x->off);
    x->status = 0;
    x->body_started = x->sink = x->bad_range = x->too_long = x->werr = 0;
    x->req_off = x->off;
    x->got = 0;
    x->last_rx_ns = time_ns();
    x->content_range[0] = x->errmsg[0] = x->errbuf[0] = x->retry_after[0] = 0;
    if (!(x->e = curl_easy_init()))
        return err_set(ERR_NOMEM, "curl_easy_init failed");
    int rc = easy_setup(d->h, x->e, x->url, &x->hdrs, x->off ? range : NULL);
    if (rc < 0)
        return rc;
    curl_easy_setopt(x->e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(x->e, CURLOPT_WRITEFUNCTION, on_dl_body);
    curl_easy_setopt(x->e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->e, CURLOPT_HEADERFUNCTION, on_dl_header);
    curl_easy_setopt(x->e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(x->e, CURLOPT_PRIVATE, x);
    if (curl_multi_add_handle(d->m, x->e) != CURLM_OK)
        return err_set(ERR_INTERNAL, "curl_multi_add_handle failed");
    x->state = X_ACTIVE;
    d->active++;
    return 0;
}

static void xfer_release(struct dl *d, struct xfer *x)
{
    if (x->e) {
        curl_multi_remove_handle(d->m, x->e);
        curl_easy_cleanup(x->e);
        d->active--;
    }
    curl_slist_free_all(x->hdrs);
    x->e = NULL;
    x->hdrs = NULL;
}

/* A transient failure (the message is set): retry after a backoff. */
static void xfer_retry(struct dl *d, struct xfer *x)
{
    if (x->got >= (1u << 20)) /* it made progress: a flaky link, not a dead one */
        x->attempts = 0;
    if (++x->attempts > d->h->retries) {
        xfer_fail(x, err_prefix(ERR_IO, "giving up after %d attempts", x->attempts));
        return;
    }
    uint64_t ms = pull_backoff_ms(x->attempts, d->h->retry_base_ms);
    /* 429/503 may say how long to wait (seconds; the date form is ignored) */
    char *end;
    unsigned long ra = strtoul(x->retry_after, &end, 10);
    if (x->retry_after[0] && !*end && ra <= 120 && ra * 1000 > ms)
        ms = ra * 1000;
    progress_say(d->p, "lode pull: %s; retrying in %.1f s", err_msg(), (double)ms / 1000.0);
    x->next_try_ns = time_ns() + ms * 1000000ull;
    x->state = X_WAIT;
}

static void *verify_main(void *arg)
{
    struct xfer *x = arg;
    int rc;
    if (fsync(x->fd) < 0)
        rc = err_errno("fsync %s", x->part_path);
    else
        rc = verify_file(x->part_path, x->f, NULL, NULL, x->v_msg, sizeof x->v_msg);
    if (rc < 0)
        snprintf(x->v_msg, sizeof x->v_msg, "%s", err_msg());
    x->v_res = rc;
    __atomic_store_n(&x->v_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* All bytes are in: check them on a thread of their own. */
static void xfer_verify(struct dl *d, struct xfer *x)
{
    x->v_done = 0;
    x->v_res = 0;
    x->v_msg[0] = 0;
    x->state = X_VERIFY;
    if (pthread_create(&x->vt, NULL, verify_main, x) == 0)
        x->v_started = 1;
    else
        verify_main(x); /* no thread to be had: check it here */
}

/* The verification finished (v_done): rename into place, or start over. */
static void xfer_finish(struct dl *d, struct xfer *x)
{
    int rc;
    if (x->v_started)
        pthread_join(x->vt, NULL);
    x->v_started = 0;
    if (x->v_res < 0)
        return xfer_fail(x, err_set(x->v_res, "%s", x->v_msg));
    if (x->v_res == 0) {
        if (x->resumed && !x->restarted_full) {
            /* the bytes kept from an earlier run may be the bad ones */
            progress_say(d->p, "lode pull: %s; downloading it again from the start", x->v_msg);
            x->restarted_full = 1;
            if ((rc = xfer_truncate(x)) < 0)
                return xfer_fail(x, rc);
            x->state = X_WAIT;
            x->next_try_ns = 0;
            return;
        }
        unlink(x->part_path);
        return xfer_fail(x, err_set(ERR_INVAL, "%s; the download was deleted", x->v_msg));
    }
    close(x->fd);
    x->fd = -1;
    if (rename(x->part_path, x->final_path) < 0)
        return xfer_fail(x, err_errno("rename %s", x->final_path));
    if ((rc = fsync_parent(x->final_path)) < 0)
        return xfer_fail(x, rc);
    x->state = X_DONE;
    d->ok[x->idx] = 1;
    d->nfetched++;
    char sz[32];
    pull_format_bytes(x->f->size, sz, sizeof sz);
    progress_say(d->p, "lode pull: fetched %s (%s)", x->f->path, sz);
    /* record it now, so an interrupted pull does not hash it again */
    if (pull_manifest_write(d->manifest, d->repo, d->rev, d->l, d->ok, 0) < 0)
        progress_say(d->p, "lode pull: warning: %s", err_msg());
}

static void xfer_done(struct dl *d, struct xfer *x, CURLcode cc)
{
    long st = x->status;
    if (!x->body_started)
        curl_easy_getinfo(x->e, CURLINFO_RESPONSE_CODE, &st);
    char loc[8192] = "";
    char *l = NULL;
    if (st >= 300 && st < 400 && curl_easy_getinfo(x->e, CURLINFO_REDIRECT_URL, &l) == CURLE_OK &&
        l)
        snprintf(loc, sizeof loc, "%s", l);
    xfer_release(d, x);
    const char *name = x->f->path;
    int rc;
    if (x->werr) {
        if (x->werr == ENOSPC || x->werr == EDQUOT)
            return xfer_fail(x,
                             err_set(ERR_IO, "%s: disk full while writing %s", name, x->part_path));
        return xfer_fail(x, err_set(ERR_IO, "write %s: %s", x->part_path, strerror(x->werr)));
    }
    if (x->too_long)
        return xfer_fail(x, err_set(ERR_IO, "%s: the server sent more than the listed %llu bytes",
                                    name, (unsigned long long)x->f->size));
    if (x->bad_range) {
        if ((rc = xfer_truncate(x)) < 0)
            return xfer_fail(x, rc);
        err_set(ERR_IO, "%s: the server answered a range request with the wrong range '%s'", name,
                x->content_range);
        return xfer_retry(d, x);
    }
    if (cc != CURLE_OK && cancelled) {
        x->state = X_WAIT; /* the loop stops; the part file stays for the next run */
        return;
    }
    if (cc != CURLE_OK) {
        err_set(ERR_IO, "%s: %s (at byte %llu of %llu)", name,
                x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc), (unsigned long long)x->off,
                (unsigned long long)x->f->size);
        return xfer_retry(d, x);
    }
    if (st >= 300 && st < 400) {
        if (!loc[0])
            return xfer_fail(x, err_set(ERR_IO, "%s: HTTP %ld without a Location", name, st));
        if (++x->hops > MAX_HOPS)
            return xfer_fail(x, err_set(ERR_IO, "%s: too many redirects", name));
        if ((rc = redirect_ok(x->url, loc)) < 0)
            return xfer_fail(x, err_prefix(rc, "%s", name));
        x->on_cdn = !pull_same_origin(loc, d->h->endpoint);
        strcpy(x->url, loc);
        x->state = X_WAIT;
        x->next_try_ns = 0;
        return;
    }
    if (st == 200 || st == 206) {
        x->hops = 0;
        if (st == 200 && x->req_off > 0 && !x->body_started && (rc = xfer_truncate(x)) < 0)
            return xfer_fail(x, rc);
        if (x->off == x->f->size)
            return xfer_verify(d, x);
        err_set(ERR_IO, "%s: the connection ended at byte %llu of %llu", name,
                (unsigned long long)x->off, (unsigned long long)x->f->size);
        return xfer_retry(d, x);
    }
    if (st == 416) {
        if (x->off == x->f->size)
            return xfer_verify(d, x);
        if ((rc = xfer_truncate(x)) < 0)
            return xfer_fail(x, rc);
        err_set(ERR_IO, "%s: 416 Range Not Satisfiable; restarting the file", name);
        return xfer_retry(d, x);
    }
    if (x->on_cdn && (st == 401 || st == 403 || st == 410)) {
        /* a signed URL that expired: ask the resolve URL for a fresh one */
        if (++x->refreshes > MAX_REFRESH)
            return xfer_fail(
                x, err_set(ERR_IO, "%s: the download URL keeps failing (HTTP %ld)", name, st));
        progress_say(d->p, "lode pull: %s: HTTP %ld from the download host; fetching a fresh URL",
                     name, st);
        strcpy(x->url, x->resolve_url);
        x->on_cdn = 0;
        x->hops = 0;
        x->state = X_WAIT;
        x->next_try_ns = 0;
        return;
    }
    if (transient_status(st)) {
        http_error(d->h, name, st, x->errmsg);
        return xfer_retry(d, x);
    }
    return xfer_fail(x, http_error(d->h, name, st, x->errmsg));
}

static int by_size(const void *a, const void *b)
{
    const struct xfer *x = a, *y = b;
    return x->f->size < y->f->size ? -1 : x->f->size > y->f->size;
}

static int download_all(struct dl *d)
{
    if (!(d->m = curl_multi_init()))
        return err_set(ERR_NOMEM, "curl_multi_init failed");
    /* one connection per file: HTTP/2 multiplexing would squeeze every
     * shard through one TCP window */
    curl_multi_setopt(d->m, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    /* small files first: configs and the tokenizer are usable early */
    qsort(d->x, (size_t)d->nx, sizeof *d->x, by_size);
    for (int i = 0; i < d->nx; i++)
        d->x[i].d = d;
    for (;;) {
        if (cancelled && !d->rc) {
            d->rc = err_set(ERR_INTERRUPTED, "interrupted; run lode pull again to resume");
            snprintf(d->msg, sizeof d->msg, "%s", err_msg());
        }
        if (d->rc)
            break;
        uint64_t now = time_ns(), wake = now + 100000000ull;
        int waiting = 0, verifying = 0;
        /* finished verifications first: a mismatch puts the file back to WAIT */
        for (int i = 0; i < d->nx && !d->rc; i++)
            if (d->x[i].state == X_VERIFY && __atomic_load_n(&d->x[i].v_done, __ATOMIC_ACQUIRE))
                xfer_finish(d, &d->x[i]);
        for (int i = 0; i < d->nx && !d->rc; i++) {
            struct xfer *x = &d->x[i];
            if (x->state == X_VERIFY) {
                verifying++;
                continue;
            }
            if (x->state != X_WAIT)
                continue;
            if (d->active < d->jobs && x->next_try_ns <= now) {
                int rc = xfer_start(d, x);
                if (rc < 0) {
                    xfer_release(d, x);
                    xfer_fail(x, rc);
                }
            } else {
                waiting++;
                if (x->next_try_ns > now && x->next_try_ns < wake)
                    wake = x->next_try_ns;
            }
        }
        if (d->rc)
            break;
        if (!d->active && !waiting && !verifying)
            break;
        int running;
        curl_multi_perform(d->m, &running);
        CURLMsg *msg;
        int q;
        while ((msg = curl_multi_info_read(d->m, &q))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct xfer *x = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            if (x)
                xfer_done(d, x, msg->data.result);
        }
        /* a transfer that received nothing for stall_s: drop it, resume later */
        now = time_ns();
        for (int i = 0; i < d->nx && !d->rc; i++) {
            struct xfer *x = &d->x[i];
            if (x->state != X_ACTIVE ||
                now - x->last_rx_ns < (uint64_t)d->h->stall_s * 1000000000ull)
                continue;
            xfer_release(d, x);
            err_set(ERR_IO, "%s: no data for %ld s (at byte %llu of %llu)", x->f->path,
                    d->h->stall_s, (unsigned long long)x->off, (unsigned long long)x->f->size);
            xfer_retry(d, x);
        }
        progress_draw(d->p, 0);
        if (d->active)
            curl_multi_poll(d->m, NULL, 0, 100, NULL);
        else if (waiting) {
            uint64_t t = time_ns(); /* `now` may be older than wake by now: no wrap-around */
            sleep_ms(wake > t ? (wake - t) / 1000000ull + 1 : 1);
        } else
            sleep_ms(20); /* only verifications left */
    }
    __atomic_store_n(&aborting, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < d->nx; i++) {
        xfer_release(d, &d->x[i]);
        if (d->x[i].v_started) { /* a failure elsewhere: wait for it (cancelled stops it early) */
            pthread_join(d->x[i].vt, NULL);
            d->x[i].v_started = 0;
        }
    }
    curl_multi_cleanup(d->m);
    d->m = NULL;
    if (d->rc)
        return err_set(d->rc, "%s", d->msg);
    return 0;
}

/* ------------------------------------------------------------ pull */

/* Decides per file: present (verified), or to fetch (an xfer with its part
 * file opened and hashed). Checks the free space before anything is
 * written. */
static int plan(struct dl *d, const struct pull_listing *old)
{
    struct pull_listing *l = d->l;
    uint64_t need = 0;
    int rc;
    if (!(d->x = calloc((size_t)l->n + 1, sizeof *d->x)))
        return err_set(ERR_NOMEM, "out of memory");
    for (int i = 0; i < l->n; i++) {
        const struct pull_file *f = &l->files[i];
        struct xfer *x = &d->x[d->nx];
        x->fd = -1;
        if ((rc = path_in(x->final_path, sizeof x->final_path, d->dir, f->path, "")) < 0 ||
            (rc = path_in(x->part_path, sizeof x->part_path, d->dir, f->path, ".incomplete")) < 0)
            return rc;
        struct stat st;
        if (stat(x->final_path, &st) == 0 && S_ISREG(st.st_mode) &&
            (uint64_t)st.st_size == f->size) {
            const struct pull_file *o = old ? pull_listing_find(old, f->path) : NULL;
            if (o && o->size == f->size && !strcmp(o->sha256, f->sha256) &&
                !strcmp(o->git_oid, f->git_oid)) {
                d->ok[i] = 1; /* verified when it was fetched */
                continue;
            }
            char why[512];
            if ((rc = verify_file(x->final_path, f, d->p, NULL, why, sizeof why)) < 0)
                return rc;
            if (rc == 1) {
                d->ok[i] = 1;
                continue;
            }
        }
        x->f = f;
        x->idx = i;
        d->nx++;
        uint64_t have = 0;
        if (stat(x->part_path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size <= f->size)
            have = (uint64_t)st.st_size;
        if (ckd_add_u64(&need, need, f->size - have))
            return err_set(ERR_INVAL, "the listing's sizes add up to more than 2^64 bytes");
    }
    if (d->nx) {
        struct statvfs vs;
        if (statvfs(d->dir, &vs) < 0)
            return err_errno("statvfs %s", d->dir);
        uint64_t avail = (uint64_t)vs.f_bavail * (uint64_t)vs.f_frsize;
        if (need > avail) {
            char a[32], b[32];
            pull_format_bytes(need, a, sizeof a);
            pull_format_bytes(avail, b, sizeof b);
            return err_set(ERR_IO, "not enough disk space in %s: %s needed, %s free", d->dir, a, b);
        }
    }
    d->p->done = 0;
    for (int i = 0; i < l->n; i++)
        if (d->ok[i])
            d->p->done += l->files[i].size;
    for (int i = 0; i < d->nx; i++) {
        struct xfer *x = &d->x[i];
        struct buf u = { 0 };
        rc = buf_printf(&u, "%s/%s/resolve/%s/", d->h->endpoint, d->repo, l->commit);
        if (rc == 0)
            rc = pull_url_escape(&u, x->f->path, 1);
        if (rc == 0 && u.len >= sizeof x->resolve_url)
            rc = err_set(ERR_INVAL, "%s: URL too long", x->f->path);
        if (rc == 0) {
            strcpy(x->resolve_url, u.p);
            strcpy(x->url, u.p);
        }
        buf_free(&u);
        if (rc < 0 || (rc = mkdir_parent(x->final_path)) < 0)
            return rc;
        x->fd = open(x->part_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (x->fd < 0)
            return err_errno("%s", x->part_path);
        struct stat st;
        if (fstat(x->fd, &st) < 0)
            return err_errno("%s", x->part_path);
        uint64_t have = (uint64_t)st.st_size;
        if (have > x->f->size) {
            if (ftruncate(x->fd, 0) < 0)
                return err_errno("truncate %s", x->part_path);
            have = 0;
        }
        x->off = have;
        x->resumed = have > 0;
        d->p->done += have;
    }
    return 0;
}

static int lock_dir(const char *dir, int *fd)
{
    char path[PATH_MAX];
    int rc = path_in(path, sizeof path, dir, ".lode-pull.lock", "");
    if (rc < 0)
        return rc;
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0)
        return err_errno("%s", path);
    if (flock(*fd, LOCK_EX | LOCK_NB) < 0)
        return err_set(ERR_IO, "another lode pull is writing into %s", dir);
    return 0;
}

static int listing_total(const struct pull_listing *l, uint64_t *total)
{
    *total = 0;
    for (int i = 0; i < l->n; i++)
        if (ckd_add_u64(total, *total, l->files[i].size))
            return err_set(ERR_INVAL, "the listing's sizes add up to more than 2^64 bytes");
    return 0;
}

/* Resolves the revision and lists the files: the part both commands share. */
static int fetch_listing(struct hub *h, const char *repo, const char *rev, struct pull_listing *l)
{
    int rc = resolve_commit(h, repo, rev, l->commit);
    if (rc == 0)
        rc = list_tree(h, repo, l);
    if (rc == 0 && l->n == 0)
        rc = err_set(ERR_NOTFOUND, "%s@%s has no files", repo, rev);
    return rc;
}

int pull_run(const struct pull_opts *o, struct pull_stats *st)
{
    memset(st, 0, sizeof *st);
    const char *rev = o->revision ? o->revision : "main";
    if (!pull_repo_ok(o->repo))
        return err_set(ERR_INVAL, "'%s' is not a repository name of the form owner/name", o->repo);
    struct hub h;
    int rc = hub_init(&h, o);
    if (rc < 0)
        return rc;
    uint64_t t0 = time_ns();
    struct pull_listing l = { 0 }, old = { 0 };
    struct progress p = { .h = &h, .label = "lode pull" };
    struct dl d = { .h = &h, .p = &p, .dir = o->dir, .repo = o->repo, .rev = rev, .l = &l };
    d.jobs = o->jobs > 0 ? o->jobs : 4;
    __atomic_store_n(&aborting, 0, __ATOMIC_RELAXED);
    int lockfd = -1, have_old = 0, old_complete = 0;
    char old_repo[256] = "";
    cancelled = 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return err_set(ERR_INTERNAL, "curl_global_init failed");
    if ((rc = path_in(d.manifest, sizeof d.manifest, o->dir, PULL_MANIFEST, "")) < 0 ||
        (rc = fs_mkdir_p(o->dir, 0755)) < 0 || (rc = lock_dir(o->dir, &lockfd)) < 0)
        goto out;
    if ((rc = fetch_listing(&h, o->repo, rev, &l)) < 0)
        goto out;
    if ((rc = listing_total(&l, &p.total)) < 0)
        goto out;
    char tot[32];
    pull_format_bytes(p.total, tot, sizeof tot);
    fprintf(stderr, "lode pull: %s@%s is commit %s: %d files, %s\n", o->repo, rev, l.commit, l.n,
            tot);
    /* a manifest of another repository (or a broken one) vouches for nothing */
    char old_rev[256];
    have_old = pull_manifest_read(d.manifest, &old, old_repo, sizeof old_repo, old_rev,
                                  sizeof old_rev, &old_complete);
    if (have_old < 0)
        fprintf(stderr, "lode pull: ignoring %s\n", err_msg());
    if (have_old != 1 || strcmp(old_repo, o->repo))
        pull_listing_free(&old), have_old = 0;
    if (!(d.ok = calloc((size_t)l.n + 1, 1))) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = plan(&d, have_old ? &old : NULL)) < 0)
        goto out;
    p.t0 = p.last_line = time_ns();
    if (d.nx && (rc = download_all(&d)) < 0)
        goto out;
    progress_end(&p);
    for (int i = 0; i < l.n; i++)
        if (!d.ok[i]) { /* the loop ended with work left: a bug, never a silent success */
            rc = err_set(ERR_INTERNAL, "internal error: %s was not fetched", l.files[i].path);
            goto out;
        }
    rc = pull_manifest_write(d.manifest, o->repo, rev, &l, d.ok, 1);
out:
    progress_end(&p);
    if (d.x)
        for (int i = 0; i < d.nx; i++)
            if (d.x[i].fd >= 0)
                close(d.x[i].fd);
    free(d.x);
    free(d.ok);
    memcpy(st->commit, l.commit, sizeof st->commit);
    st->nfiles = l.n;
    st->nfetched = d.nfetched;
    st->total = p.total;
    st->fetched = p.received;
    st->seconds = (double)(time_ns() - t0) / 1e9;
    pull_listing_free(&l);
    pull_listing_free(&old);
    if (lockfd >= 0)
        close(lockfd);
    curl_global_cleanup();
    return rc;
}

/* --check hashes several files at once: one thread reads at ~200 MB/s,
 * a 28 GB checkpoint in shards goes as fast as the disk. */
struct check {
    const char *dir;
    const struct pull_listing *l;
    char *ok;
    char (*why)[512];
    int next, finished;
    uint64_t done;
    pthread_mutex_t mu;
    int rc;
    char msg[1024];
};

static void *check_worker(void *arg)
{
    struct check *c = arg;
    for (;;) {
        int i = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
        if (i >= c->l->n || cancelled)
            break;
        char path[PATH_MAX];
        int rc = path_in(path, sizeof path, c->dir, c->l->files[i].path, "");
        if (rc == 0)
            rc = verify_file(path, &c->l->files[i], NULL, &c->done, c->why[i], sizeof c->why[i]);
        if (rc < 0) {
            pthread_mutex_lock(&c->mu);
            if (!c->rc) {
                c->rc = rc;
                snprintf(c->msg, sizeof c->msg, "%s", err_msg());
            }
            pthread_mutex_unlock(&c->mu);
            break;
        }
        c->ok[i] = (char)rc;
        if (!rc) {
            pthread_mutex_lock(&c->mu);
            fprintf(stderr, "%slode pull --check: %s\n", isatty(2) ? "\r\033[K" : "", c->why[i]);
            pthread_mutex_unlock(&c->mu);
        }
    }
    __atomic_fetch_add(&c->finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int check_files(const char *dir, const struct pull_listing *l, char *ok, struct progress *p)
{
    struct check c = { .dir = dir, .l = l, .ok = ok };
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nth = (int)(ncpu < 1 ? 1 : ncpu > 8 ? 8 : ncpu);
    if (nth > l->n)
        nth = l->n;
    pthread_t tids[8];
    int started = 0;
    if (l->n == 0)
        return 0;
    if (!(c.why = calloc((size_t)l->n, sizeof *c.why)))
        return err_set(ERR_NOMEM, "out of memory");
    pthread_mutex_init(&c.mu, NULL);
    for (; started < nth; started++)
        if (pthread_create(&tids[started], NULL, check_worker, &c) != 0)
            break;
    if (started == 0)
        check_worker(&c); /* no threads to be had: do it here */
    while (started && __atomic_load_n(&c.finished, __ATOMIC_ACQUIRE) < started) {
        p->done = __atomic_load_n(&c.done, __ATOMIC_RELAXED);
        pthread_mutex_lock(&c.mu);
        progress_draw(p, 0);
        pthread_mutex_unlock(&c.mu);
        sleep_ms(50);
    }
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    p->done = c.done;
    pthread_mutex_destroy(&c.mu);
    free(c.why);
    if (c.rc)
        return err_set(c.rc, "%s", c.msg);
    if (cancelled)
        return err_set(ERR_INTERRUPTED, "interrupted");
    return 0;
}

int pull_check(const struct pull_opts *o, struct pull_stats *st)
{
    memset(st, 0, sizeof *st);
    const char *rev = o->revision ? o->revision : "main";
    struct hub h;
    int rc = hub_init(&h, o);
    if (rc < 0)
        return rc;
    uint64_t t0 = time_ns();
    if (!fs_is_dir(o->dir))
        return err_set(ERR_NOTFOUND, "%s: no such directory (run lode pull first)", o->dir);
    struct pull_listing l = { 0 };
    struct progress p = { .h = &h, .label = "lode pull --check" };
    char repo[256] = "";
    int complete = 0;
    char *ok = NULL;
    cancelled = 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return err_set(ERR_INTERNAL, "curl_global_init failed");
    char mrev[256];
    char mpath[PATH_MAX];
    if ((rc = path_in(mpath, sizeof mpath, o->dir, PULL_MANIFEST, "")) < 0)
        goto out;
    int from_manifest =
        pull_manifest_read(mpath, &l, repo, sizeof repo, mrev, sizeof mrev, &complete);
    if (from_manifest < 0) {
        rc = from_manifest;
        goto out;
    }
    if (!from_manifest) {
        if (!pull_repo_ok(o->repo)) {
            rc =
                err_set(ERR_INVAL, "'%s' is not a repository name of the form owner/name", o->repo);
            goto out;
        }
        fprintf(stderr, "lode pull: %s has no %s; checking against %s@%s on the Hub\n", o->dir,
                PULL_MANIFEST, o->repo, rev);
        if ((rc = fetch_listing(&h, o->repo, rev, &l)) < 0)
            goto out;
    } else if (!complete)
        fprintf(stderr, "lode pull: %s: an unfinished pull; checking the files it verified\n",
                o->dir);
    if (!(ok = calloc((size_t)l.n + 1, 1))) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = listing_total(&l, &p.total)) < 0)
        goto out;
    if ((rc = check_files(o->dir, &l, ok, &p)) < 0)
        goto out;
    for (int i = 0; i < l.n; i++)
        st->nbad += !ok[i];
    progress_end(&p);
    rc = 0;
    if (st->nbad) {
        /* forget the bad files so the next pull fetches them again */
        if (from_manifest && pull_manifest_write(mpath, repo, mrev, &l, ok, 0) < 0)
            fprintf(stderr, "lode pull: warning: %s\n", err_msg());
        rc = err_set(ERR_INVAL,
                     "%d of %d files in %s are missing or damaged; run lode pull to "
                     "fetch them again",
                     st->nbad, l.n, o->dir);
    }
out:
    progress_end(&p);
    memcpy(st->commit, l.commit, sizeof st->commit);
    st->nfiles = l.n;
    st->total = p.total;
    st->seconds = (double)(time_ns() - t0) / 1e9;
    free(ok);
    pull_listing_free(&l);
    curl_global_cleanup();
    return rc;
}
