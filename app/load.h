/*
 * load.h - a codebase rendered as one prompt (ld_): `lode load [DIR]`.
 *
 * The walk honours .gitignore and .lodeignore in every directory (gitignore
 * syntax: `#`, `!`, trailing `/`, anchoring `/`, `*`, `?`, `[...]`, `**`;
 * the last matching pattern wins) and skips `.git`, symlinks, binary files
 * (a NUL byte or invalid UTF-8), generated files (lock files, minified
 * files, "DO NOT EDIT" / "@generated" markers near the top) and files over
 * max_file bytes, plus --include / --exclude globs on the relative path.
 *
 * Order: deterministic, the least likely to change first, so an edit
 * invalidates as little of the cached prefix as possible: by the number of
 * commits that touched the file in git history (when DIR is in a git work
 * tree and git is installed), then by modification time (oldest first),
 * then by path.
 *
 * Rendering, one file after another: "=== path ===\n" then the content,
 * ending with "\n". Files are tokenized one by one and appended until the
 * token budget; the rest is listed as left out.
 */
#ifndef LODE_APP_LOAD_H
#define LODE_APP_LOAD_H

#include "common/buf.h"
#include "engine/tokenizer.h"

struct cJSON;

#include <stddef.h>
#include <stdint.h>

struct ld_opts {
    long budget;                /* tokens */
    size_t max_file;            /* bytes; bigger files are skipped as huge */
    const char *const *include; /* globs on the relative path; none: everything */
    int ninclude;
    const char *const *exclude;
    int nexclude;
    int no_git; /* do not ask git for history */
};

struct ld_file {
    char *path; /* relative to the root; owned */
    size_t bytes;
    long tokens;     /* of its rendering; 0 for skipped files */
    long changes;    /* commits that touched it (0 without git) */
    int64_t mtime;   /* seconds */
    const char *why; /* NULL: loaded or left out for the budget; else why it was skipped */
};

struct ld_plan {
    struct ld_file *files; /* loaded [0, n_in), left out for the budget [n_in, n_cand),
                            * skipped [n_cand, n) */
    int n, n_in, n_cand;
    int used_git;
    struct tok_ids ids; /* the loaded files' tokens */
    long *marks;        /* token positions where a directory group ends */
    int nmarks;
};

/* Walks dir and builds the plan. t tokenizes (borrowed). */
int ld_plan_build(struct ld_plan *p, const char *dir, struct tok *t, const struct ld_opts *o);
void ld_plan_free(struct ld_plan *p);

/* Renders file f of the plan (re-reading it) into out, as it was tokenized. */
int ld_render(const char *dir, const struct ld_file *f, struct buf *out);

/* gitignore-style glob match of a relative path (exposed for tests). */
int ld_glob(const char *pat, const char *path);

/* ---- loaded files in a conversation (the agent: `lode run --load`, the UI's /load) */

/* The block the agent puts in front of its system prompt: "<files>\n", every loaded file of
 * p rendered as ld_render does, "</files>\n\n". *files (may be NULL) gets a JSON array of
 * their paths (caller frees with cJSON_Delete). */
int ld_block(const char *dir, const struct ld_plan *p, struct buf *out, struct cJSON **files);

/* Builds the plan for dir with the defaults of `lode load` (tokenizer <model_dir>/tokenizer.json,
 * the given budget) and its block. */
int ld_context(const char *dir, const char *model_dir, long budget, struct buf *block,
               struct cJSON **files);

/* The text every agent prompt with this block starts with: the chat template of model_dir
 * (NULL: built-in) rendered with lode's tools and a system message opening with block, cut
 * right after the block. `lode load` prefills it so the agent's prefill is a cache restore. */
int ld_agent_prefix(const char *model_dir, const char *block, struct buf *out);

#endif
