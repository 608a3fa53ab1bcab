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
 */
#include "app/agent_int.h"
#include "common/err.h"

#include <stdlib.h>
#include <string.h>

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

int ag_set_context(struct agent *a, const char *dir, const char *block, const cJSON *files)
{
    cJSON *rec = cJSON_CreateObject();
    int rc = 0;
    if (!rec || !cJSON_AddStringToObject(rec, "dir", dir ? dir : "") ||
        !cJSON_AddItemToObject(rec, "files",
                               files ? cJSON_Duplicate(files, 1) : cJSON_CreateArray()) ||
        !cJSON_AddStringToObject(rec, "content", block ? block : ""))
        rc = err_set(ERR_NOMEM, "agent: out of memory for the loaded files");
    if (rc == 0)
        rc = ag_apply_context(a, block);
    if (rc == 0)
        rc = ag_commit(a, "context", rec);
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
