/*
 * agent_context.c - loaded files in the conversation (ag_set_context): a
 * block "<files>\n=== path ===\n...</files>\n\n" placed at the very start of
 * the system message's content. The template renders the tool schemas, then
 * the system content, so the block comes right after text that does not
 * change between turns, sessions or days (the system prompt carries the
 * date and the workspace, and comes after it): `lode load` prefills the same
 * prefix, and every turn's prompt starts with it, so it is restored from the
 * prefix cache instead of computed.
 *
 * The session records a "context" message {"dir", "files", "content"} (the
 * block exactly as the model saw it), so a resume rebuilds the same prompt;
 * the "system" record keeps the system prompt without the block.
 *
 * Files edited after they were loaded do not touch the block (that would
 * recompute everything after the first edited file): before each user
 * message, every loaded file whose rendering differs from the version the
 * model has is appended at the tail as a user message "<file-updates>...",
 * recorded as kind "file-updates" {"content", "files": {path: rendering or
 * null when deleted}}, so the prefix stays cached, each change is sent once,
 * and a resume rebuilds the same prompt and the same notion of "current".
 */
#include "app/agent_int.h"
#include "app/load.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/text.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char BLOCK_END[] = "</files>\n\n";

/* The system content without the block currently in front of it. */
static const char *base_of(const struct agent *a, const char *content)
{
    size_t n = a->ctx ? strlen(a->ctx) : 0;
    return n && !strncmp(content, a->ctx, n) ? content + n : content;
}

/* Puts block (may be NULL: none) in front of the system message, replacing the one there. */
static int put_block(struct agent *a, const char *block)
{
    cJSON *sys = cJSON_GetArrayItem(a->msgs, 0);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(sys, "role");
    cJSON *content = cJSON_GetObjectItemCaseSensitive(sys, "content");
    if (!cJSON_IsString(role) || strcmp(role->valuestring, "system") || !cJSON_IsString(content))
        return 0; /* no system message yet: start() applies it */
    const char *base = base_of(a, content->valuestring);
    size_t nb = block ? strlen(block) : 0, n = strlen(base);
    char *text = malloc(nb + n + 1);
    if (!text)
        return err_set(ERR_NOMEM, "agent: out of memory for the loaded files");
    memcpy(text, block ? block : "", nb);
    memcpy(text + nb, base, n + 1);
    cJSON *v = cJSON_CreateString(text);
    free(text);
    if (!v || !cJSON_ReplaceItemInObjectCaseSensitive(sys, "content", v)) {
        cJSON_Delete(v);
        return err_set(ERR_NOMEM, "agent: out of memory for the loaded files");
    }
    return 0;
}

int ag_apply_context(struct agent *a, const char *block)
{
    int rc = put_block(a, block);
    if (rc < 0)
        return rc;
    char *c = block && *block ? strdup(block) : NULL;
    if (block && *block && !c)
        return err_set(ERR_NOMEM, "agent: out of memory for the loaded files");
    free(a->ctx);
    a->ctx = c;
    return 0;
}

void ag_context_free(struct agent *a)
{
    free(a->ctx_dir);
    a->ctx_dir = NULL;
    cJSON_Delete(a->ctx_seen);
    a->ctx_seen = NULL;
}

/* Adds key -> the text [p, e) to o. */
static int add_span(cJSON *o, const char *key, const char *p, const char *e)
{
    char *t = strndup(p, (size_t)(e - p));
    cJSON *v = t ? cJSON_CreateString(t) : NULL;
    free(t);
    if (!v || !cJSON_AddItemToObject(o, key, v)) {
        cJSON_Delete(v);
        return ERR_NOMEM;
    }
    return 0;
}

/* The versions in block: path -> its rendering "=== path ===\n...", cut at the next file's
 * header (files are in block order). A path not found is left out (never compared). */
static cJSON *seen_of(const char *block, const cJSON *files)
{
    cJSON *seen = cJSON_CreateObject();
    if (!seen)
        return NULL;
    size_t n = strlen(block), ke = sizeof BLOCK_END - 1;
    const char *end = n >= ke && !strcmp(block + n - ke, BLOCK_END) ? block + n - ke : block + n;
    const char *cur = block, *start = NULL, *prev = NULL;
    char hdr[PATH_MAX + 16];
    const cJSON *f;
    int rc = 0;
    cJSON_ArrayForEach(f, files)
    {
        if (!cJSON_IsString(f))
            continue;
        snprintf(hdr, sizeof hdr, "=== %s ===\n", f->valuestring);
        const char *at = strstr(cur, hdr);
        if (!at || at >= end)
            continue;
        if (prev && (rc = add_span(seen, prev, start, at)) < 0)
            break;
        prev = f->valuestring;
        start = at;
        cur = at + strlen(hdr);
    }
    if (rc == 0 && prev)
        rc = add_span(seen, prev, start, end);
    if (rc < 0) {
        cJSON_Delete(seen);
        return NULL;
    }
    return seen;
}

/* Folds a "file-updates" record's files into seen. */
static int merge_updates(cJSON *seen, const cJSON *changes)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, changes)
    {
        cJSON *v = cJSON_Duplicate(c, 1);
        if (!v)
            return ERR_NOMEM;
        if (cJSON_GetObjectItemCaseSensitive(seen, c->string)) {
            if (!cJSON_ReplaceItemInObjectCaseSensitive(seen, c->string, v)) {
                cJSON_Delete(v);
                return ERR_NOMEM;
            }
        } else if (!cJSON_AddItemToObject(seen, c->string, v)) {
            cJSON_Delete(v);
            return ERR_NOMEM;
        }
    }
    return 0;
}

int ag_context_restore(struct agent *a, const cJSON *recs)
{
    ag_context_free(a);
    const cJSON *ctx = cJSON_GetArrayItem(recs, 0);
    const cJSON *blk = cJSON_GetObjectItemCaseSensitive(ctx, "content");
    const cJSON *dir = cJSON_GetObjectItemCaseSensitive(ctx, "dir");
    int rc = ag_apply_context(a, cJSON_IsString(blk) ? blk->valuestring : NULL);
    if (rc < 0 || !cJSON_IsString(blk) || !cJSON_IsString(dir) || !*dir->valuestring)
        return rc;
    a->ctx_dir = strdup(dir->valuestring);
    a->ctx_seen = seen_of(blk->valuestring, cJSON_GetObjectItemCaseSensitive(ctx, "files"));
    if (!a->ctx_dir || !a->ctx_seen)
        rc = ERR_NOMEM;
    const cJSON *r = ctx ? ctx->next : NULL;
    for (; r && rc == 0; r = r->next)
        rc = merge_updates(a->ctx_seen, cJSON_GetObjectItemCaseSensitive(r, "files"));
    if (rc < 0) {
        ag_context_free(a);
        return err_set(ERR_NOMEM, "agent: out of memory for the loaded files");
    }
    return 0;
}

/* The rendering of dir/path now (as ld_render makes it); *gone: deleted or unreadable. */
static int render_now(const char *dir, const char *path, struct buf *out, int *gone)
{
    char full[PATH_MAX + 300];
    struct stat st;
    *gone = 0;
    snprintf(full, sizeof full, "%s/%s", dir, path);
    if (stat(full, &st) < 0 || !S_ISREG(st.st_mode)) {
        *gone = 1;
        return 0;
    }
    struct ld_file f = { .path = (char *)path, .bytes = (size_t)st.st_size };
    if (ld_render(dir, &f, out) < 0) {
        err_clear();
        *gone = 1;
    } else if (out->len && (memchr(out->p, 0, out->len) || !utf8_valid(out->p, out->len, NULL))) {
        *gone = 1; /* no longer text (the walk would skip it): JSON records could not hold it */
    }
    return 0;
}

int ag_context_refresh(struct agent *a)
{
    if (!a->ctx || !a->ctx_dir || !a->ctx_seen)
        return 0;
    cJSON *changes = cJSON_CreateObject(), *rec = NULL;
    struct buf text = { 0 }, now = { 0 };
    int rc = changes ? 0 : ERR_NOMEM, n = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, a->ctx_seen)
    {
        if (rc < 0)
            break;
        int gone;
        now.len = 0;
        render_now(a->ctx_dir, s->string, &now, &gone);
        if (gone ? !cJSON_IsString(s)
                 : cJSON_IsString(s) && strlen(s->valuestring) == now.len &&
                       !memcmp(s->valuestring, now.p ? now.p : "", now.len))
            continue; /* the model has this version */
        if (n++ == 0)
            rc = buf_puts(&text, "<file-updates>\n");
        if (rc == 0 && gone)
            rc = buf_printf(&text, "=== %s (deleted) ===\n", s->string);
        else if (rc == 0)
            rc = buf_append(&text, now.p, now.len);
        cJSON *v = NULL;
        if (rc == 0 && gone)
            v = cJSON_CreateNull();
        else if (rc == 0 && buf_putc(&now, 0) == 0)
            v = cJSON_CreateString(now.p);
        if (!v || !cJSON_AddItemToObject(changes, s->string, v)) {
            cJSON_Delete(v);
            rc = ERR_NOMEM;
        }
    }
    if (rc == 0 && n)
        rc = buf_puts(&text, "(These files changed since they were loaded above: the versions "
                             "here are current and replace the earlier ones.)\n"
                             "</file-updates>");
    cJSON *m = NULL;
    if (rc == 0 && n) {
        rec = cJSON_CreateObject();
        if (!rec || !cJSON_AddStringToObject(rec, "content", text.p) ||
            !cJSON_AddItemReferenceToObject(rec, "files", changes))
            rc = ERR_NOMEM;
        if (rc == 0 && (!(m = ag_record_to_message("file-updates", rec)) ||
                        !cJSON_AddItemToArray(a->msgs, m))) {
            cJSON_Delete(m);
            rc = ERR_NOMEM;
        }
        if (rc == 0)
            rc = merge_updates(a->ctx_seen, changes);
        if (rc == 0)
            rc = ag_commit(a, "file-updates", rec);
    }
    cJSON_Delete(rec);
    cJSON_Delete(changes);
    buf_free(&text);
    buf_free(&now);
    if (rc == ERR_NOMEM)
        return err_set(ERR_NOMEM, "agent: out of memory for the loaded files' updates");
    return rc;
}

/* The same directory again in a conversation under way: the block stays as the model saw it
 * (its prefix stays cached); files new to it are shown at the tail with the next message. */
static int reload(struct agent *a, const cJSON *files)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        if (!cJSON_IsString(f) || cJSON_GetObjectItemCaseSensitive(a->ctx_seen, f->valuestring))
            continue;
        if (!cJSON_AddItemToObject(a->ctx_seen, f->valuestring, cJSON_CreateFalse()))
            return err_set(ERR_NOMEM, "agent: out of memory for the loaded files");
    }
    return 0;
}

int ag_set_context(struct agent *a, const char *dir, const char *block, const cJSON *files)
{
    if (a->ctx && a->ctx_dir && a->ctx_seen && dir && !strcmp(dir, a->ctx_dir) &&
        cJSON_GetArraySize(a->msgs) > 1)
        return reload(a, files);
    cJSON *rec = cJSON_CreateObject();
    int rc = 0;
    if (!rec || !cJSON_AddStringToObject(rec, "dir", dir ? dir : "") ||
        !cJSON_AddItemToObject(rec, "files",
                               files ? cJSON_Duplicate(files, 1) : cJSON_CreateArray()) ||
        !cJSON_AddStringToObject(rec, "content", block ? block : ""))
        rc = err_set(ERR_NOMEM, "agent: out of memory for the loaded files");
    cJSON *recs = rc == 0 ? cJSON_CreateArray() : NULL;
    if (rc == 0 && (!recs || !cJSON_AddItemReferenceToArray(recs, rec)))
        rc = err_set(ERR_NOMEM, "agent: out of memory for the loaded files");
    if (rc == 0)
        rc = ag_context_restore(a, recs);
    if (rc == 0)
        rc = ag_commit(a, "context", rec);
    cJSON_Delete(recs);
    cJSON_Delete(rec);
    return rc;
}

size_t ag_context_mark(const struct agent *a, const char *prompt, size_t n)
{
    if (!a->ctx || !prompt)
        return 0;
    size_t k = strlen(a->ctx);
    const char *p = k <= n ? memmem(prompt, n, a->ctx, k) : NULL;
    return p ? (size_t)(p - prompt) + k : 0;
}
