/*
 * agent_session.c - the agent's persistence: every message committed to the
 * session as it happens, the conversation rebuilt from the records on
 * resume, and the backend's state saved beside them.
 *
 * Records (db_message_append kinds and JSON bodies):
 *   "system"    {content}
 *   "user"      {content}
 *   "assistant" {content, reasoning_content, tool_calls, interrupted?}
 *   "tool"      {tool_call_id, name, content, is_error}
 *   "context"   {dir, files, content}: the loaded files' block (agent_context.c)
 *   "file-updates" {content, files}: loaded files changed since, a user message
 * Other kinds (from a newer lode) stay in the store and are skipped here.
 *
 * The state blob (kind "state", only the newest kept) is
 *   "LODEAGS1" | u64 LE: seq of the last record it covers | backend bytes
 * and the backend's bytes carry the model identity, so loading another
 * model's state is refused there.
 */
#include "app/agent_int.h"
#include "common/err.h"

#include <stdlib.h>
#include <string.h>

static const char STATE_MAGIC[8] = { 'L', 'O', 'D', 'E', 'A', 'G', 'S', '1' };
#define STATE_HDR 16
/* A state larger than this is not read back (a defective row cannot make us
 * allocate without bound); the engine's states for long contexts fit. */
#define STATE_MAX ((size_t)64 << 30)

int ag_commit(struct agent *a, const char *kind, const cJSON *body)
{
    if (!a->db)
        return 0;
    char *text = cJSON_PrintUnformatted(body);
    if (!text)
        return err_set(ERR_NOMEM, "agent: encoding a %s record", kind);
    int rc = db_message_append(a->db, a->sid, kind, text, NULL);
    cJSON_free(text);
    if (rc < 0)
        return err_prefix(rc, "agent: saving a %s message to session %s", kind, a->sid);
    a->session_used = 1;
    return 0;
}

static cJSON *dup_item(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return v ? cJSON_Duplicate(v, 1) : NULL;
}

cJSON *ag_record_to_message(const char *kind, const cJSON *body)
{
    if (!cJSON_IsObject(body))
        return NULL;
    static const char *const roles[] = { "system", "user", "assistant", "tool" };
    int r = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(kind, roles[i]))
            r = i;
    if (!strcmp(kind, "file-updates"))
        r = 1; /* the model reads it as a user message at the tail */
    if (r < 0)
        return NULL;
    cJSON *m = cJSON_CreateObject();
    if (!m || !cJSON_AddStringToObject(m, "role", roles[r]))
        goto nomem;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(body, "content");
    if (!cJSON_AddItemToObject(m, "content",
                               cJSON_IsString(c) ? cJSON_CreateString(c->valuestring)
                                                 : cJSON_CreateString("")))
        goto nomem;
    /* The fields the template reads; anything else in the record stays in
     * the store only. */
    static const char *const extra[2][2] = { { "reasoning_content", "tool_calls" },
                                             { "tool_call_id", "name" } };
    if (r >= 2) {
        for (int i = 0; i < 2; i++) {
            cJSON *v = dup_item(body, extra[r - 2][i]);
            if (v && !cJSON_AddItemToObject(m, extra[r - 2][i], v)) {
                cJSON_Delete(v);
                goto nomem;
            }
        }
    }
    return m;
nomem:
    cJSON_Delete(m);
    return NULL;
}

/* ---------------------------------------------------------------- resume */

struct load {
    cJSON *msgs;
    int64_t last_seq;
    long max_call;
    int rc;
    cJSON *ctx; /* the newest "context" record's body, then the "file-updates" after it */
};

static long call_number(const char *id)
{
    if (!id || strncmp(id, "call_", 5))
        return 0;
    char *end;
    long n = strtol(id + 5, &end, 10);
    return *end || n < 0 ? 0 : n;
}

static int load_fn(void *ctx, int64_t seq, const char *kind, const char *body, int64_t created)
{
    (void)created;
    struct load *l = ctx;
    l->last_seq = seq;
    cJSON *o = cJSON_Parse(body);
    cJSON *m = o ? ag_record_to_message(kind, o) : NULL;
    if (o && !strcmp(kind, "context")) {
        cJSON_Delete(l->ctx);
        l->ctx = cJSON_CreateArray(); /* NULL (out of memory): resumed without it */
    }
    if (o && l->ctx && (!strcmp(kind, "context") || !strcmp(kind, "file-updates"))) {
        cJSON_AddItemToArray(l->ctx, o);
        o = NULL;
    }
    if (m) {
        /* A system record only counts at the start, where the template wants it. */
        if (!strcmp(kind, "system") && cJSON_GetArraySize(l->msgs) > 0) {
            cJSON_Delete(m);
        } else {
            cJSON_AddItemToArray(l->msgs, m);
            const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls"), *c;
            cJSON_ArrayForEach(c, calls)
            {
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
                long n = call_number(cJSON_IsString(id) ? id->valuestring : NULL);
                if (n > l->max_call)
                    l->max_call = n;
            }
            const cJSON *tid = cJSON_GetObjectItemCaseSensitive(m, "tool_call_id");
            long n = call_number(cJSON_IsString(tid) ? tid->valuestring : NULL);
            if (n > l->max_call)
                l->max_call = n;
        }
    }
    cJSON_Delete(o);
    return 0;
}

/* Loads the newest saved state of the session into the backend. 1 when it
 * was restored, 0 when there is none or it does not fit this backend. */
static int load_state(struct agent *a)
{
    if (!a->db || !(a->be->caps & BE_CAP_STATE) || !a->be->ops->state_load)
        return 0;
    int64_t bid;
    if (db_blob_latest(a->db, a->sid, "state", &bid) < 0) {
        err_clear();
        return 0;
    }
    struct buf b = { 0 };
    int ok = 0;
    if (db_blob_read(a->db, bid, &b) == 0 && b.len > STATE_HDR && b.len <= STATE_MAX &&
        !memcmp(b.p, STATE_MAGIC, 8) &&
        a->be->ops->state_load(a->be, b.p + STATE_HDR, b.len - STATE_HDR) == 0)
        ok = 1;
    if (!ok)
        err_clear(); /* another model's state, or damaged: the next turn prefills */
    buf_free(&b);
    return ok;
}

int ag_load_session(struct agent *a, const char *id, int *restored)
{
    if (restored)
        *restored = 0;
    if (!a->db)
        return err_set(ERR_NOTFOUND, "agent: no session store to resume %s from", id);
    struct db_session s;
    int rc = db_session_get(a->db, id, &s);
    if (rc < 0)
        return err_prefix(rc, "agent: resuming %s", id);
    struct load l = { .msgs = cJSON_CreateArray() };
    if (!l.msgs) {
        db_session_free(&s);
        return err_set(ERR_NOMEM, "agent: resuming %s", id);
    }
    rc = db_messages(a->db, s.id, load_fn, &l);
    if (rc < 0) {
        cJSON_Delete(l.msgs);
        cJSON_Delete(l.ctx);
        db_session_free(&s);
        return err_prefix(rc, "agent: reading session %s", id);
    }
    /* The session this agent opened with is dropped when nothing was said
     * in it, so --continue does not leave an empty session behind. */
    if (!a->session_used && strcmp(a->sid, s.id)) {
        db_session_rm(a->db, a->sid);
        err_clear();
    }
    snprintf(a->sid, sizeof a->sid, "%s", s.id);
    a->session_used = 1;
    db_session_free(&s);
    cJSON_Delete(a->msgs);
    a->msgs = l.msgs;
    a->next_call = l.max_call + 1;
    free(a->ctx);
    a->ctx = NULL;
    rc = ag_context_restore(a, l.ctx);
    cJSON_Delete(l.ctx);
    if (rc < 0)
        return rc;
    int ok = load_state(a);
    if (restored)
        *restored = ok;
    return 0;
}

/* ---------------------------------------------------------------- state */

static int64_t last_seq(struct agent *a)
{
    struct load l = { .msgs = cJSON_CreateArray() };
    if (!l.msgs)
        return 0;
    db_messages(a->db, a->sid, load_fn, &l);
    cJSON_Delete(l.msgs);
    cJSON_Delete(l.ctx);
    return l.last_seq;
}

static int ignore_event(void *ud, const struct be_event *ev)
{
    (void)ud;
    (void)ev;
    return 0;
}

/* The prompt the next user message will start with: the conversation as it
 * is rendered once another user message follows it (the template then drops
 * the reasoning of the turns before it), up to that message. Prefilling it
 * before saving makes the saved state a prefix of the next prompt, so a
 * resumed session re-reads nothing. */
static int prime_next(struct agent *a)
{
    if (!a->be->ops->generate || !(a->be->caps & BE_CAP_PROMPT))
        return 0;
    cJSON *msgs = cJSON_Duplicate(a->msgs, 1);
    cJSON *u = cJSON_CreateObject();
    if (!msgs || !u || !cJSON_AddStringToObject(u, "role", "user") ||
        !cJSON_AddStringToObject(u, "content", "next")) {
        cJSON_Delete(msgs);
        cJSON_Delete(u);
        return ERR_NOMEM;
    }
    cJSON_AddItemToArray(msgs, u);
    struct buf p = { 0 };
    int rc = ag_render_msgs(a, msgs, 0, &p);
    cJSON_Delete(msgs);
    if (rc == 0 && p.p) {
        const char *tag = "<|im_start|>user\n", *last = NULL;
        for (const char *q = p.p; (q = strstr(q, tag)); q++)
            last = q;
        if (last && last > p.p) {
            struct be_request rq = { 0 };
            rq.messages = a->msgs;
            rq.tools = a->tools;
            rq.prompt = p.p;
            rq.prompt_len = (size_t)(last - p.p);
            rq.thinking = a->o.thinking;
            rq.samp = a->o.samp;
            rq.max_tokens = -1; /* prefill only */
            struct be_usage us = { 0 };
            enum be_stop stop;
            rq.interrupt = &a->intr;
            rc = a->be->ops->generate(a->be, &rq, ignore_event, NULL, &us, &stop);
        }
    }
    buf_free(&p);
    return rc;
}

int ag_save_state(struct agent *a)
{
    if (!a->db || !a->o.save_state || !(a->be->caps & BE_CAP_STATE) || !a->be->ops->state_save ||
        cJSON_GetArraySize(a->msgs) == 0)
        return 0;
    if (prime_next(a) < 0)
        err_clear(); /* the state is still a usable prefix without it */
    struct buf b = { 0 };
    int64_t seq = last_seq(a);
    unsigned char hdr[STATE_HDR];
    memcpy(hdr, STATE_MAGIC, 8);
    for (int i = 0; i < 8; i++)
        hdr[8 + i] = (unsigned char)((uint64_t)seq >> (8 * i));
    int rc = buf_append(&b, hdr, sizeof hdr);
    if (rc == 0)
        rc = a->be->ops->state_save(a->be, &b);
    struct db_blob_writer *w = NULL;
    int64_t bid = 0;
    if (rc == 0)
        rc = db_blob_begin(a->db, a->sid, "state", &w);
    if (rc == 0 && (rc = db_blob_write(w, b.p, b.len)) < 0)
        db_blob_abort(w);
    else if (rc == 0)
        rc = db_blob_commit(w, &bid);
    if (rc == 0)
        rc = db_blob_prune(a->db, a->sid, "state", bid);
    buf_free(&b);
    return rc < 0 ? err_prefix(rc, "agent: saving the model state of session %s", a->sid) : 0;
}
