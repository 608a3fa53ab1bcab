/*
 * pull.h - the Hugging Face Hub client behind `lode pull`: resolve a
 * revision to a commit, list the repository's files (size, SHA-256 of LFS
 * files, git blob id of the others), download what is missing into
 * `<file>.incomplete` with HTTP range resume, several files at once on the
 * curl multi interface, verify, fsync and rename.
 *
 * Hub endpoints used (checkpoint-format.md §6):
 *   GET  {endpoint}/api/models/{repo}/revision/{rev}            -> {"sha": commit}
 *   GET  {endpoint}/api/models/{repo}/tree/{commit}?recursive=true
 *        (pages linked by `Link: <url>; rel="next"`)            -> [{type, path, size, oid, lfs}]
 *   GET  {endpoint}/{repo}/resolve/{commit}/{path}               -> file or 302 to a CDN
 *
 * Redirects are followed by hand, never by libcurl: the Authorization header
 * goes only to URLs with the endpoint's scheme, host and port; a signed CDN
 * URL (another origin) gets none, and when it expires (401/403/410 from the
 * CDN) the resolve URL is asked again for a fresh one.
 *
 * The target directory keeps `.lode-pull.json` (repo, revision, commit and
 * the listing of verified files) so `lode pull --check` works offline and a
 * second pull skips files already verified.
 *
 * Environment knobs (mostly for tests): LODE_PULL_RETRIES (5),
 * LODE_PULL_RETRY_BASE_MS (1000, doubled per attempt, capped at 30 s),
 * LODE_PULL_STALL_S (60: a transfer receiving nothing this long is retried),
 * LODE_PULL_CONNECT_TIMEOUT_S (30), LODE_PULL_PROGRESS_S (10: the interval of
 * plain progress lines when stderr is not a terminal).
 */
#ifndef LODE_APP_PULL_H
#define LODE_APP_PULL_H

#include "common/buf.h"
#include "common/hash.h"

#include <stddef.h>
#include <stdint.h>

#define PULL_DEFAULT_REPO "88plug/Qwen3.6-35B-A3B-W4A16"
#define PULL_DEFAULT_ENDPOINT "https://huggingface.co"
#define PULL_MANIFEST ".lode-pull.json"

struct pull_file {
    char *path;       /* owned; relative, validated by pull_path_ok */
    uint64_t size;    /* bytes of the real content (the LFS object for LFS files) */
    char sha256[65];  /* LFS files: lowercase hex SHA-256 of the content; "" otherwise */
    char git_oid[41]; /* git blob id: SHA-1 of "blob <size>\0" + content; "" if unknown */
};

struct pull_listing {
    char commit[41]; /* resolved commit ("" until known) */
    struct pull_file *files;
    int n, cap;
};

/* Frees the files; the listing is empty and reusable afterwards. Accepts a
 * zeroed or half-filled listing. */
void pull_listing_free(struct pull_listing *l);

/* Parses one page of the tree listing (a JSON array of {type, path, size,
 * oid, lfs: {oid, size}}) and appends its files to l. Directories are
 * skipped; a bad item is ERR_INVAL naming its index and path. `what` names
 * the source in messages ("tree listing", a manifest path). */
int pull_parse_tree(const char *json, size_t n, const char *what, struct pull_listing *l);

/* 1 when a listed path is safe to create under the target directory:
 * relative, no empty, "." or ".." components, no backslash or control
 * characters, not ending in ".incomplete", not our manifest. */
int pull_path_ok(const char *path);

/* 1 when repo looks like "owner/name" ([A-Za-z0-9._-], no "..", <= 96 each). */
int pull_repo_ok(const char *repo);

/* Appends s percent-encoded (RFC 3986 unreserved kept; '/' kept when
 * keep_slash). */
int pull_url_escape(struct buf *out, const char *s, int keep_slash);

/* The "next" URL of a Link header value into out (""), resolved against
 * base when relative. Returns 1 when found, 0 when none, <0 on error. */
int pull_link_next(const char *link, const char *base, char *out, size_t cap);

/* 1 when URLs a and b share scheme, host and port (default ports filled
 * in); 0 otherwise or when either does not parse. */
int pull_same_origin(const char *a, const char *b);

/* Retry delay for a 1-based attempt: base * 2^(attempt-1), capped at 30 s. */
uint64_t pull_backoff_ms(int attempt, uint64_t base_ms);

/* "1.5 GiB", "512 B", "12.0 MiB". */
void pull_format_bytes(uint64_t n, char *out, size_t cap);

/* One progress line of at most `width` columns (no newline):
 *   "[=====>    ]  45%  12.3 GiB / 28.0 GiB  85.1 MiB/s  ETA 3m05s"
 * A bar only when width leaves room for it; rate <= 0 prints no rate/ETA. */
void pull_format_progress(char *out, size_t cap, uint64_t done, uint64_t total, double rate,
                          int width);

/* The git blob id of content (lowercase hex). For tests and verification. */
void pull_git_oid(const void *data, size_t n, char hex[41]);

/* 1 when s is exactly n lowercase hex digits. */
int pull_hex_ok(const char *s, size_t n);

/* The running checksums of one file: SHA-256 (LFS files) and the git blob
 * SHA-1 with its "blob <size>\0" header (the others). */
struct pull_sums {
    int use_sha256; /* the file has a SHA-256: only that is computed */
    struct sha256 sha;
    struct sha1 s1;
};
/* Starts the checksum f will be verified with (SHA-256 when known). */
void pull_sums_init(struct pull_sums *s, const struct pull_file *f);
void pull_sums_update(struct pull_sums *s, const void *p, size_t n);
/* Finalizes s and compares with f's checksum: 0, or ERR_INVAL naming the
 * file, the expected and the actual value. */
int pull_sums_check(struct pull_sums *s, const struct pull_file *f);

/* The file of that path in l, or NULL. Borrowed from l. */
const struct pull_file *pull_listing_find(const struct pull_listing *l, const char *path);

/* The manifest (PULL_MANIFEST in the model directory): {"repo", "revision",
 * "commit", "complete", "files": [tree items]} listing the files with ok[i]
 * set. Written atomically. */
int pull_manifest_write(const char *path, const char *repo, const char *rev,
                        const struct pull_listing *l, const char *ok, int complete);
/* Reads a manifest into l (commit and files), repo and rev (truncated to
 * their caps). Returns 1 when read, 0 when the file does not exist, <0 when
 * it is unreadable or malformed. */
int pull_manifest_read(const char *path, struct pull_listing *l, char *repo, size_t repocap,
                       char *rev, size_t revcap, int *complete);

struct pull_opts {
    const char *endpoint; /* no trailing slash; PULL_DEFAULT_ENDPOINT when NULL */
    const char *token;    /* HF token or NULL: sent only to the endpoint's origin */
    const char *repo;     /* "owner/name" */
    const char *revision; /* branch, tag or commit; "main" when NULL */
    const char *dir;      /* target directory (created) */
    int jobs;             /* files downloaded at once; 4 when <= 0 */
};

struct pull_stats {
    char commit[41];
    int nfiles;       /* files in the listing */
    int nfetched;     /* files downloaded this run */
    int nbad;         /* --check: files missing or not matching */
    uint64_t total;   /* bytes of all listed files */
    uint64_t fetched; /* bytes received this run */
    double seconds;
};

/* Pulls opts->repo at opts->revision into opts->dir. Returns 0 when every
 * listed file is present and verified, else a negative ERR_* with a one-line
 * message naming the file and the HTTP status or error. Progress goes to
 * stderr. Partial downloads are kept for the next run. */
int pull_run(const struct pull_opts *o, struct pull_stats *st);

/* Verifies opts->dir against its manifest, or, when it has none, against
 * the Hub listing of opts->repo at opts->revision. Prints one line per bad
 * file on stderr. Returns 0 when all match; ERR_INVAL (st->nbad set) when
 * some do not; another ERR_* when the check could not run. */
int pull_check(const struct pull_opts *o, struct pull_stats *st);

/* Async-signal-safe: asks a running pull_run/pull_check to stop (partial
 * files are kept); it then returns ERR_INTERRUPTED. */
void pull_cancel(void);

#endif
