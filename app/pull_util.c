/*
 * pull_util.c - the parts of the Hub client without I/O on the network:
 * checksums (SHA-256 from common/, git blob SHA-1 here), URL and path
 * checks, the tree-listing parser, progress formatting and the manifest.
 * See pull.h.
 */
#include "app/pull.h"

#include "common/err.h"
#include "common/fs.h"
#include "common/hash.h"
#include "common/text.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_FILES 100000
#define MAX_SIZE (1ull << 53) /* sizes travel as JSON numbers (doubles) */
#define MANIFEST_MAX (64u << 20)

void pull_sums_init(struct pull_sums *s, const struct pull_file *f)
{
    char hdr[32];
    int n = snprintf(hdr, sizeof hdr, "blob %llu", (unsigned long long)f->size);
    /* only the checksum that will be compared: hashing costs at 28 GB */
    s->use_sha256 = f->sha256[0] != 0;
    sha256_init(&s->sha);
    sha1_init(&s->s1);
    sha1_update(&s->s1, hdr, (size_t)n + 1); /* the header includes its NUL */
}

void pull_sums_update(struct pull_sums *s, const void *p, size_t n)
{
    if (s->use_sha256)
        sha256_update(&s->sha, p, n);
    else
        sha1_update(&s->s1, p, n);
}

/* Compares the final sums with f's expected ones; 0 or ERR_INVAL naming
 * both values. */
int pull_sums_check(struct pull_sums *s, const struct pull_file *f)
{
    uint8_t d[32];
    char hex[65];
    if (f->sha256[0]) {
        sha256_final(&s->sha, d);
        hash_to_hex(d, 32, hex);
        if (strcmp(hex, f->sha256))
            return err_set(ERR_INVAL, "%s: SHA-256 mismatch (expected %s, got %s)", f->path,
                           f->sha256, hex);
    } else if (f->git_oid[0]) {
        sha1_final(&s->s1, d);
        hash_to_hex(d, 20, hex);
        if (strcmp(hex, f->git_oid))
            return err_set(ERR_INVAL, "%s: git blob id mismatch (expected %s, got %s)", f->path,
                           f->git_oid, hex);
    }
    return 0;
}

void pull_git_oid(const void *data, size_t n, char hex[41])
{
    struct pull_sums s;
    struct pull_file f = { .size = n };
    uint8_t d[20];
    pull_sums_init(&s, &f);
    sha1_update(&s.s1, data, n);
    sha1_final(&s.s1, d);
    hash_to_hex(d, 20, hex);
}

/* ------------------------------------------------------------ pure helpers */

int pull_hex_ok(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int pull_path_ok(const char *path)
{
    size_t n = strlen(path);
    if (n == 0 || n > 1024 || path[0] == '/')
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f || path[i] == '\\')
            return 0;
    if (!utf8_valid(path, n, NULL))
        return 0;
    for (const char *p = path; *p;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        if (!slash)
            break;
        p = slash + 1;
    }
    if (path[n - 1] == '/')
        return 0;
    static const char suffix[] = ".incomplete";
    if (n >= sizeof suffix - 1 && !strcmp(path + n - (sizeof suffix - 1), suffix))
        return 0;
    if (!strcmp(path, PULL_MANIFEST) || !strcmp(path, ".lode-pull.lock"))
        return 0;
    return 1;
}

static int name_part_ok(const char *s, size_t n)
{
    if (n == 0 || n > 96 || (n == 2 && s[0] == '.' && s[1] == '.') || (n == 1 && s[0] == '.'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

int pull_repo_ok(const char *repo)
{
    const char *slash = strchr(repo, '/');
    if (!slash || strchr(slash + 1, '/'))
        return 0;
    return name_part_ok(repo, (size_t)(slash - repo)) && name_part_ok(slash + 1, strlen(slash + 1));
}

int pull_url_escape(struct buf *out, const char *s, int keep_slash)
{
    static const char hexd[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
        int rc =
            keep ? buf_putc(out, (char)c) : buf_printf(out, "%%%c%c", hexd[c >> 4], hexd[c & 15]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Resolves a possibly relative URL against base into out. */
static int url_resolve(const char *base, const char *rel, char *out, size_t cap)
{
    CURLU *u = curl_url();
    if (!u)
        return err_set(ERR_NOMEM, "out of memory");
    char *s = NULL;
    int rc = 0;
    if ((base && curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK) ||
        curl_url_set(u, CURLUPART_URL, rel, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK)
        rc = err_set(ERR_INVAL, "bad URL '%.200s'", rel);
    else if (strlen(s) >= cap)
        rc = err_set(ERR_INVAL, "URL too long: %.200s", s);
    else
        strcpy(out, s);
    curl_free(s);
    curl_url_cleanup(u);
    return rc;
}

int pull_link_next(const char *link, const char *base, char *out, size_t cap)
{
    /* Link: <url1>; rel="next", <url2>; rel="last" */
    for (const char *p = link; (p = strchr(p, '<'));) {
        const char *end = strchr(p, '>');
        if (!end)
            return 0;
        const char *params = end + 1;
        const char *stop = strchr(params, ',');
        size_t plen = stop ? (size_t)(stop - params) : strlen(params);
        char pbuf[256];
        snprintf(pbuf, sizeof pbuf, "%.*s", (int)(plen < 255 ? plen : 255), params);
        for (char *c = pbuf; *c; c++)
            *c = (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
        if (strstr(pbuf, "rel=\"next\"") || strstr(pbuf, "rel=next")) {
            char url[4096];
            size_t ulen = (size_t)(end - p - 1);
            if (ulen >= sizeof url)
                return err_set(ERR_INVAL, "Link header URL too long");
            memcpy(url, p + 1, ulen);
            url[ulen] = 0;
            return url_resolve(base, url, out, cap) < 0 ? ERR_INVAL : 1;
        }
        p = end + 1;
    }
    return 0;
}

static int url_origin(const char *url, char *scheme, char *host, long *port)
{
    CURLU *u = curl_url();
    char *s = NULL, *h = NULL, *po = NULL;
    int ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_SCHEME, &s, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_PORT, &po, CURLU_DEFAULT_PORT) == CURLUE_OK &&
             strlen(s) < 16 && strlen(h) < 256;
    if (ok) {
        strcpy(scheme, s);
        strcpy(host, h);
        *port = strtol(po, NULL, 10);
    }
    curl_free(s);
    curl_free(h);
    curl_free(po);
    curl_url_cleanup(u);
    return ok ? 0 : -1;
}

int pull_same_origin(const char *a, const char *b)
{
    char sa[16], sb[16], ha[256], hb[256];
    long pa, pb;
    if (url_origin(a, sa, ha, &pa) < 0 || url_origin(b, sb, hb, &pb) < 0)
        return 0;
    return !strcasecmp(sa, sb) && !strcasecmp(ha, hb) && pa == pb;
}

uint64_t pull_backoff_ms(int attempt, uint64_t base_ms)
{
    uint64_t d = base_ms;
    for (int i = 1; i < attempt && d < 30000; i++)
        d *= 2;
    return d < 30000 ? d : 30000;
}

void pull_format_bytes(uint64_t n, char *out, size_t cap)
{
    static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    if (n < 1024) {
        snprintf(out, cap, "%llu B", (unsigned long long)n);
        return;
    }
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 5)
        v /= 1024, u++;
    snprintf(out, cap, "%.1f %s", v, units[u]);
}

static void format_eta(double s, char *out, size_t cap)
{
    if (!(s >= 0) || s > 99 * 3600.0) {
        snprintf(out, cap, "--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(out, cap, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(out, cap, "%lds", t);
}

void pull_format_progress(char *out, size_t cap, uint64_t done, uint64_t total, double rate,
                          int width)
{
    char d[32], t[32], r[32], eta[32], tail[160];
    pull_format_bytes(done, d, sizeof d);
    pull_format_bytes(total, t, sizeof t);
    int pct = total ? (int)((double)done * 100.0 / (double)total) : 100;
    if (pct > 100)
        pct = 100;
    if (rate > 0) {
        pull_format_bytes((uint64_t)rate, r, sizeof r);
        format_eta(done < total ? (double)(total - done) / rate : 0, eta, sizeof eta);
        snprintf(tail, sizeof tail, "%3d%%  %s / %s  %s/s  ETA %s", pct, d, t, r, eta);
    } else
        snprintf(tail, sizeof tail, "%3d%%  %s / %s", pct, d, t);
    int bar = width - (int)strlen(tail) - 4; /* "[" + bar + "]  " */
    if (cap == 0)
        return;
    if (bar < 10) {
        snprintf(out, cap, "%s", tail);
        return;
    }
    if (bar > 50)
        bar = 50;
    char b[64];
    int fill = (int)((long long)bar * pct / 100);
    for (int i = 0; i < bar; i++)
        b[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    if (fill == bar)
        b[bar - 1] = '=';
    b[bar] = 0;
    snprintf(out, cap, "[%s]  %s", b, tail);
}

/* ------------------------------------------------------------ the listing */

void pull_listing_free(struct pull_listing *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++)
        free(l->files[i].path);
    free(l->files);
    l->files = NULL;
    l->n = l->cap = 0;
}

static int json_u64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d > (double)MAX_SIZE || d != floor(d))
        return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_item(const cJSON *it, int idx, const char *what, struct pull_listing *l)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(it, "path");
    if (!cJSON_IsObject(it))
        return err_set(ERR_INVAL, "%s: item %d: expected an object", what, idx);
    if (!cJSON_IsString(type))
        return err_set(ERR_INVAL, "%s: item %d: missing \"type\"", what, idx);
    if (strcmp(type->valuestring, "file"))
        return 0; /* directories (and kinds we do not know) hold nothing to fetch */
    if (!cJSON_IsString(path) || !pull_path_ok(path->valuestring))
        return err_set(ERR_INVAL, "%s: item %d: unsafe or missing path '%.200s'", what, idx,
                       cJSON_IsString(path) ? path->valuestring : "");
    const char *p = path->valuestring;
    struct pull_file f = { 0 };
    if (json_u64(cJSON_GetObjectItemCaseSensitive(it, "size"), &f.size) < 0)
        return err_set(ERR_INVAL, "%s: %s: size: expected a non-negative integer", what, p);
    const cJSON *oid = cJSON_GetObjectItemCaseSensitive(it, "oid");
    if (cJSON_IsString(oid)) {
        if (!pull_hex_ok(oid->valuestring, 40))
            return err_set(ERR_INVAL, "%s: %s: oid: expected 40 hex digits", what, p);
        strcpy(f.git_oid, oid->valuestring);
    }
    const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(it, "lfs");
    if (lfs && !cJSON_IsNull(lfs)) {
        const cJSON *loid = cJSON_GetObjectItemCaseSensitive(lfs, "oid");
        if (!cJSON_IsObject(lfs) || !cJSON_IsString(loid) || !pull_hex_ok(loid->valuestring, 64))
            return err_set(ERR_INVAL, "%s: %s: lfs.oid: expected 64 hex digits", what, p);
        strcpy(f.sha256, loid->valuestring);
        const cJSON *lsize = cJSON_GetObjectItemCaseSensitive(lfs, "size");
        if (lsize && json_u64(lsize, &f.size) < 0)
            return err_set(ERR_INVAL, "%s: %s: lfs.size: expected a non-negative integer", what, p);
        f.git_oid[0] = 0; /* the blob id is the pointer file's, not the content's */
    }
    if (!f.sha256[0] && !f.git_oid[0])
        return err_set(ERR_INVAL, "%s: %s: no checksum (neither oid nor lfs.oid)", what, p);
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->files[i].path, p))
            return err_set(ERR_INVAL, "%s: %s: listed twice", what, p);
    if (l->n >= MAX_FILES)
        return err_set(ERR_INVAL, "%s: more than %d files", what, MAX_FILES);
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 16;
        struct pull_file *nf = realloc(l->files, (size_t)nc * sizeof *nf);
        if (!nf)
            return err_set(ERR_NOMEM, "out of memory");
        l->files = nf, l->cap = nc;
    }
    if (!(f.path = strdup(p)))
        return err_set(ERR_NOMEM, "out of memory");
    l->files[l->n++] = f;
    return 0;
}

static int parse_array(const cJSON *root, const char *what, struct pull_listing *l)
{
    if (!cJSON_IsArray(root))
        return err_set(ERR_INVAL, "%s: expected a JSON array of files", what);
    int idx = 0, rc = 0;
    for (const cJSON *it = root->child; rc == 0 && it; it = it->next, idx++)
        rc = parse_item(it, idx, what, l);
    return rc;
}

int pull_parse_tree(const char *json, size_t n, const char *what, struct pull_listing *l)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, n, &end, 0);
    if (!root) {
        int line, col;
        size_t off = end && end >= json ? (size_t)(end - json) : 0;
        text_line_col(json, off <= n ? off : n, &line, &col);
        return err_set(ERR_INVAL, "%s:%d:%d: malformed JSON", what, line, col);
    }
    int rc = parse_array(root, what, l);
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------ manifest */

static cJSON *file_json(const struct pull_file *f)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "type", "file") ||
        !cJSON_AddStringToObject(o, "path", f->path) ||
        !cJSON_AddNumberToObject(o, "size", (double)f->size))
        goto fail;
    if (f->git_oid[0] && !cJSON_AddStringToObject(o, "oid", f->git_oid))
        goto fail;
    if (f->sha256[0]) {
        cJSON *lfs = cJSON_AddObjectToObject(o, "lfs");
        if (!lfs || !cJSON_AddStringToObject(lfs, "oid", f->sha256) ||
            !cJSON_AddNumberToObject(lfs, "size", (double)f->size))
            goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* see pull.h */
int pull_manifest_write(const char *path, const char *repo, const char *rev,
                        const struct pull_listing *l, const char *ok, int complete)
{
    int rc = 0;
    cJSON *root = cJSON_CreateObject();
    cJSON *files = NULL;
    if (!root || !cJSON_AddStringToObject(root, "repo", repo) ||
        !cJSON_AddStringToObject(root, "revision", rev) ||
        !cJSON_AddStringToObject(root, "commit", l->commit) ||
        !cJSON_AddBoolToObject(root, "complete", complete) ||
        !(files = cJSON_AddArrayToObject(root, "files")))
        goto nomem;
    for (int i = 0; i < l->n; i++) {
        if (!ok[i])
            continue;
        cJSON *it = file_json(&l->files[i]);
        if (!it)
            goto nomem;
        cJSON_AddItemToArray(files, it);
    }
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    if (!txt)
        return err_set(ERR_NOMEM, "out of memory");
    rc = fs_write_atomic(path, txt, strlen(txt));
    free(txt);
    return rc;
nomem:
    cJSON_Delete(root);
    return err_set(ERR_NOMEM, "out of memory");
}

/* Reads dir's manifest into l (commit and files). Returns 1 when read, 0
 * when there is none, <0 when it is unreadable or malformed. */
int pull_manifest_read(const char *path, struct pull_listing *l, char *repo, size_t repocap,
                       char *rev, size_t revcap, int *complete)
{
    int rc = 0;
    if (!fs_exists(path))
        return 0;
    struct buf b = { 0 };
    if ((rc = fs_read_file(path, MANIFEST_MAX, &b)) < 0)
        return rc;
    cJSON *root = cJSON_ParseWithLength(b.p ? b.p : "", b.len);
    buf_free(&b);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "commit");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "repo");
    if (!cJSON_IsObject(root) || !cJSON_IsString(c) || !pull_hex_ok(c->valuestring, 40) ||
        !cJSON_IsString(r))
        rc = err_set(ERR_INVAL, "%s: not a lode pull manifest", path);
    else {
        strcpy(l->commit, c->valuestring);
        snprintf(repo, repocap, "%s", r->valuestring);
        const cJSON *rv = cJSON_GetObjectItemCaseSensitive(root, "revision");
        snprintf(rev, revcap, "%s", cJSON_IsString(rv) ? rv->valuestring : "main");
        *complete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "complete"));
        rc = parse_array(cJSON_GetObjectItemCaseSensitive(root, "files"), path, l);
    }
    cJSON_Delete(root);
    return rc < 0 ? rc : 1;
}

const struct pull_file *pull_listing_find(const struct pull_listing *l, const char *path)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->files[i].path, path))
            return &l->files[i];
    return NULL;
}
