/* chat.c - the chat template of a checkpoint (see chat.h). */
#include "app/chat.h"

#include "common/err.h"
#include "common/fs.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEMPLATE_MAX (4u << 20)

/* The chat_template of a tokenizer_config.json: a string, or a list of
 * {"name", "template"} where "default" is the chat one. NULL when absent. */
static char *template_from_tokenizer_config(const char *text, size_t n)
{
    cJSON *root = cJSON_ParseWithLength(text, n), *t;
    char *out = NULL;
    if (!root)
        return NULL;
    t = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (cJSON_IsString(t))
        out = strdup(t->valuestring);
    else if (cJSON_IsArray(t)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, t)
        {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
            const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(it, "template");
            if (cJSON_IsString(name) && !strcmp(name->valuestring, "default") &&
                cJSON_IsString(tpl))
                out = strdup(tpl->valuestring);
        }
    }
    cJSON_Delete(root);
    return out;
}

int chat_template_open(const char *dir, struct tpl **out, const char **from)
{
    static char where[PATH_MAX + 64];
    char path[PATH_MAX];
    struct buf b = { 0 };
    int rc;
    *out = NULL;
    if (dir && fs_join(path, sizeof path, dir, "chat_template.jinja") == 0 && fs_exists(path)) {
        if ((rc = fs_read_file(path, TEMPLATE_MAX, &b)) == 0 &&
            (rc = tpl_open(out, b.p ? b.p : "", b.len)) < 0)
            err_prefix(rc, "%s", path);
        buf_free(&b);
        snprintf(where, sizeof where, "%s", path);
        *from = where;
        return rc;
    }
    if (dir && fs_join(path, sizeof path, dir, "tokenizer_config.json") == 0 && fs_exists(path)) {
        if ((rc = fs_read_file(path, 64u << 20, &b)) < 0)
            return rc;
        char *text = template_from_tokenizer_config(b.p ? b.p : "", b.len);
        buf_free(&b);
        if (text) {
            if ((rc = tpl_open(out, text, strlen(text))) < 0)
                err_prefix(rc, "%s: chat_template", path);
            free(text);
            snprintf(where, sizeof where, "%s (chat_template)", path);
            *from = where;
            return rc;
        }
    }
    *from = "built-in (official Qwen3.6 template)";
    return tpl_open_builtin(out);
}

int chat_render_user(const char *dir, const char *content, int thinking, struct buf *out)
{
    struct tpl *t;
    const char *from;
    int rc = chat_template_open(dir, &t, &from);
    if (rc < 0)
        return rc;
    cJSON *msgs = cJSON_CreateArray(), *m = cJSON_CreateObject();
    if (!msgs || !m) {
        cJSON_Delete(msgs);
        cJSON_Delete(m);
        tpl_close(t);
        return err_set(ERR_NOMEM, "out of memory");
    }
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", content);
    cJSON_AddItemToArray(msgs, m);
    struct tpl_opts o = { 0 };
    o.add_generation_prompt = 1;
    o.enable_thinking = thinking ? TPL_TRUE : TPL_FALSE;
    char *text = NULL;
    size_t len = 0;
    rc = tpl_render(t, msgs, NULL, &o, &text, &len);
    if (rc == 0)
        rc = buf_append(out, text, len);
    free(text);
    cJSON_Delete(msgs);
    tpl_close(t);
    return rc;
}
