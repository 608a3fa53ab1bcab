/*
 * agent_int.h - what the agent's files (agent.c: the loop, agent_prompt.c:
 * the system prompt, agent_session.c: persistence and resume) share. Not an
 * API: everything outside app/agent*.c goes through app/agent.h.
 */
#ifndef LODE_APP_AGENT_INT_H
#define LODE_APP_AGENT_INT_H

#include "app/agent.h"
#include "db/store.h"
#include "tools/approval.h"
#include "tools/registry.h"
#include "tools/toolcall.h"

#include <cjson/cJSON.h>
#include <stdint.h>

#define AG_MAX_ALWAYS 64 /* tools remembered as "allow always" */

struct agent {
    struct backend *be;
    struct db *db; /* may be NULL */
    const struct cfg *cfg;
    struct ag_opts o;
    struct ag_hooks h;
    char workspace[4096];

    char sid[DB_ID_MAX];
    int session_used; /* a message was written to sid (else ag_resume drops it) */
    cJSON *msgs;      /* the conversation: OpenAI-style messages, [0] the system message */
    cJSON *tools;     /* the tools array shown to the model */
    struct tc_tools *tct;
    struct tpl *tpl;
    long next_call; /* the next "call_N" */

    char **ro, **hidden; /* sandbox.read_only, sandbox.hidden */
    struct pol *pol;
    struct sbx_caps caps;
    struct tool_ctx tctx;
    struct appr_rules *rules;
    char *always[AG_MAX_ALWAYS]; /* tool names the user allowed for the session */
    int nalways;

    volatile int intr; /* ag_interrupt: polled by the backend and between tools */
    char *todo;
    struct ag_stats stats;
    char *ctx;       /* the loaded files' block in front of the system prompt, or NULL */
    char *ctx_dir;   /* the directory it was loaded from */
    cJSON *ctx_seen; /* path -> the rendering the model has as current; null: shown deleted;
                      * false: not shown yet (agent_context.c) */
};

/* agent_prompt.c: lode's system prompt for the workspace, with the project's
 * instruction files appended. Appends to out. */
int ag_system_prompt(const char *workspace, struct buf *out);

/* agent_session.c */
/* Appends a record to the session (no-op without a db). */
int ag_commit(struct agent *a, const char *kind, const cJSON *body);
/* The conversation message for a stored record: a new object, or NULL for a
 * kind this lode does not use in the conversation (kept in the store). */
cJSON *ag_record_to_message(const char *kind, const cJSON *body);
/* Saves the backend's state as the session's "state" blob (when possible). */
int ag_save_state(struct agent *a);
/* Loads the stored conversation of session id into a (see ag_resume). */
int ag_load_session(struct agent *a, const char *id, int *restored);

/* agent_context.c: puts block (NULL: none) in front of the system message (now, or when it
 * is created) without recording it; the byte offset of the block's end in a rendered prompt
 * (0: not there). */
int ag_apply_context(struct agent *a, const char *block);
/* Rebuilds the loaded files' state from a session's "context" record followed by its
 * "file-updates" records (recs: their bodies in order; NULL or empty: none). */
int ag_context_restore(struct agent *a, const cJSON *recs);
/* Before a user message: the loaded files changed on disk since the model saw them are
 * appended as a "file-updates" message (recorded), once per change. */
int ag_context_refresh(struct agent *a);
void ag_context_free(struct agent *a);
size_t ag_context_mark(const struct agent *a, const char *prompt, size_t n);

/* agent.c: renders the conversation (+ generation prompt) into out. */
int ag_render_msgs(struct agent *a, const cJSON *msgs, int gen_prompt, struct buf *out);

#endif
