/*
 * agent.h - the agent loop (ag_): a conversation with the model, tools run
 * under the approval mode and the sandbox, every message committed to the
 * session store as it happens.
 *
 *     struct ag_opts o = ag_opts_default();
 *     o.approval = APPR_DEFAULT; o.max_turns = 20; o.cwd = root;
 *     struct ag_hooks h = { .event = on_event, .approve = ask_user, .ud = ui };
 *     struct agent *a;
 *     if (ag_open(&a, backend, db, &cfg, &o, &h) < 0) fail(err_msg());
 *     ag_resume(a, id);                 // optional: an earlier session (--resume/--continue)
 *     int st = ag_send(a, "fix the failing test");   // runs until the final answer
 *     ag_close(a);
 *
 * One user message runs turns (a generation, then the tool calls it made,
 * their results appended) until a turn makes no call (AG_DONE), max_turns
 * is reached (AG_TURN_LIMIT), ag_interrupt() (AG_INTERRUPTED; the partial
 * answer is kept in the conversation) or an error (AG_ERROR).
 *
 * Threads: ag_send runs on the caller's thread and calls the hooks there.
 * ag_interrupt may be called from any thread or a signal handler. The
 * setters (thinking, approval) are for the user, between ag_send calls;
 * nothing the model produces can reach them.
 */
#ifndef LODE_APP_AGENT_H
#define LODE_APP_AGENT_H

#include "app/backend.h"

#include <stddef.h>

struct db;
struct cfg;

enum ag_status { AG_DONE = 0, AG_ERROR = 1, AG_TURN_LIMIT = 3, AG_INTERRUPTED = 4 };

struct ag_stats {
    int turns;          /* generations so far in this ag_send */
    long prompt_tokens; /* summed over the turns of this ag_send (be_usage fields) */
    long cached_tokens;
    long restored_tokens; /* of cached_tokens, from the persistent prefix cache */
    long prefill_tokens;
    long gen_tokens;
    double prefill_s, gen_s, tool_s, wall_s;
    long context_tokens; /* tokens in the context now (0 when unknown) */
    long context_max;
};

enum ag_ev_kind {
    AG_EV_INIT,        /* text: session id; name: backend; detail: model description */
    AG_EV_USER,        /* text: the user message being sent */
    AG_EV_PREFILL,     /* done, total: prompt tokens processed */
    AG_EV_REASONING,   /* text, len: reasoning delta */
    AG_EV_TEXT,        /* text, len: content delta */
    AG_EV_TOOL_USE,    /* id, name, detail (arguments JSON): a call about to be decided/run */
    AG_EV_TOOL_RESULT, /* id, name, text (the result the model sees), is_error, elapsed_s */
    AG_EV_TODO,        /* detail: the model's task list (JSON array) after a todo call */
    AG_EV_TURN_END,    /* stats: after each generation and its tool calls */
    AG_EV_ERROR,       /* text: one line (also non-fatal ones: a malformed tool call) */
    AG_EV_RESULT,      /* status, stats, text: the final answer */
};

struct ag_event {
    enum ag_ev_kind kind;
    const char *text; /* everything borrowed for the callback */
    size_t len;
    const char *id;     /* tool-call id ("call_1", ...) */
    const char *name;   /* tool name */
    const char *detail; /* JSON text */
    int is_error;
    double elapsed_s;
    long done, total;
    int status; /* enum ag_status */
    const struct ag_stats *stats;
};

enum ag_decision { AG_DENY = 0, AG_ALLOW = 1, AG_ALLOW_ALWAYS = 2 /* this tool, this session */ };

struct ag_hooks {
    void (*event)(void *ud, const struct ag_event *ev); /* may be NULL */
    /* A call the approval mode says to ask about. NULL: denied (headless),
     * and the model is told why. reason says what the call would do. */
    enum ag_decision (*approve)(void *ud, const char *tool, const char *args_json,
                                const char *reason);
    void *ud;
};

struct ag_opts {
    int thinking;      /* thinking preset (else non-thinking) */
    int approval;      /* enum appr_mode (tools/approval.h) */
    int max_turns;     /* generations per ag_send; 0: unlimited */
    long max_tokens;   /* per generation; 0: up to the context */
    const char *cwd;   /* workspace root (project root); NULL: the current directory */
    uint64_t seed;     /* sampling seed */
    int samp_override; /* 1: use samp instead of the thinking/non-thinking preset */
    struct samp_params samp;
    int save_state; /* save the backend state with the session after each ag_send (default 1) */
};
struct ag_opts ag_opts_default(void);

struct agent;

/* Borrows be, db (may be NULL: nothing persisted) and cfg (tool limits,
 * sandbox and rules) until ag_close. Creates a new session in db. */
int ag_open(struct agent **out, struct backend *be, struct db *db, const struct cfg *cfg,
            const struct ag_opts *o, const struct ag_hooks *h);
void ag_close(struct agent *a);

/* Replaces the conversation with session id's (an id or unique prefix) and,
 * when one was saved for this backend's model, restores its state (so the
 * next prompt costs nothing to re-read). *restored (may be NULL) says
 * whether a state was restored; otherwise the next ag_send prefills the whole
 * conversation and reports it. */
int ag_resume(struct agent *a, const char *id, int *restored);

/* Loaded files (app/load.h): block (the files rendered as "<files>\n...</files>\n\n", see
 * ld_block; NULL or "": none) goes in front of the system prompt, replacing what was loaded
 * before, and the session records a "context" message with dir, the files (a JSON array of
 * paths) and the block, so a resume rebuilds the same prompt. */
int ag_set_context(struct agent *a, const char *dir, const char *block, const struct cJSON *files);

/* Sends a user message and runs the loop. Returns enum ag_status (errors
 * also set err_msg()). */
int ag_send(struct agent *a, const char *text);

void ag_interrupt(struct agent *a);
void ag_set_thinking(struct agent *a, int on);
void ag_set_approval(struct agent *a, int mode);
int ag_thinking(const struct agent *a);
int ag_approval(const struct agent *a);

const char *ag_session_id(const struct agent *a);
/* Whether the session holds anything yet (a message, or loaded files). */
int ag_session_used(const struct agent *a);
/* The conversation so far (OpenAI-style messages; borrowed). */
const struct cJSON *ag_messages(const struct agent *a);
/* The model's task list from the last todo call (JSON array text or NULL). */
const char *ag_todo(const struct agent *a);
/* Stats of the last ag_send. */
const struct ag_stats *ag_last_stats(const struct agent *a);
/* The full prompt the agent would send now (system prompt, tools,
 * conversation, generation prompt) as the template renders it. Caller frees. */
int ag_render(struct agent *a, struct buf *out);

#endif
