/*
 * tui_int.h - what the two halves of the interface's glue share: tui.c (the
 * UI thread: curses, keys, slash commands) and tui_worker.c (the worker
 * thread: backend, store, agent, and the queue of messages between them).
 * See tui.c for how the threads talk.
 */
#ifndef LODE_APP_TUI_INT_H
#define LODE_APP_TUI_INT_H

#include "app/agent.h"
#include "app/tui.h"
#include "common/buf.h"
#include "db/store.h"
#include "tools/sandbox.h"

#include <limits.h>
#include <pthread.h>

enum job_kind {
    J_OPEN,
    J_DEMO,
    J_SEND,
    J_NEW,
    J_RESUME,
    J_SHELL,
    J_SESSIONS,
    J_EXPORT,
    J_CONTEXT,
    J_LOAD,
    J_THINK,
    J_MODE,
    J_MODEL,
    J_QUIT
};

struct job {
    struct job *next;
    enum job_kind kind;
    int ival;
    char *text;
};

/* Worker -> UI messages: the agent's events (enum ag_ev_kind) and these. */
enum { M_OPENED = 100, M_OPEN_FAILED, M_ASK, M_NOTICE, M_ERROR, M_IDLE, M_REPLAY_USER, M_CLEAR };

struct msg {
    struct msg *next;
    int kind;
    struct buf text;
    char *id, *name, *detail;
    int is_error, status;
    double elapsed_s;
    long done, total;
    struct ag_stats stats;
    int has_stats;
};

struct tui {
    struct app *app;
    struct ui *u;
    char workspace[PATH_MAX];
    char spec[PATH_MAX + 16];
    char model[PATH_MAX];
    char resume[64];
    char load_dir[PATH_MAX]; /* the last /load that worked (worker thread): /new and /model keep it
                              */
    int continue_last;       /* --continue: resume the newest session of the workspace */
    pthread_t th;
    int th_started;
    pthread_mutex_t mu;
    pthread_cond_t jcv, acv;
    struct job *jobs, *jobs_tail; /* UI -> worker */
    struct msg *msgs, *msgs_tail; /* worker -> UI */
    int wake[2];
    int answer; /* approval: -1 until the UI answers */
    /* owned by the worker */
    struct backend *be;
    struct db *db;
    struct agent *ag;
    struct pol *pol;
    struct sbx_caps caps;
    int caps_probed;
    int shell_n;
    /* UI thread state */
    struct agent *ag_for_interrupt; /* under mu: set while a send runs */
    int ready;                      /* the model is open */
    int opening;                    /* J_OPEN / J_DEMO queued or running */
    int sending;                    /* a J_SEND is queued or running */
    int setup;                      /* first-run screen: no model configured */
    int thinking, mode;
    char session[DB_ID_MAX];
    char sandbox[32];
    char **pending; /* messages typed while the model loads or works */
    int npending;
    double prefill_t0;
    struct ag_stats prev;
    char *last_answer; /* printed on exit */
    int quitting;      /* under mu: a question asked now is denied at once */
};

/* Messages (worker -> UI) and jobs (UI -> worker). */
void tui_msg_free(struct msg *m);
void tui_push_job(struct tui *t, enum job_kind kind, int ival, const char *text);
/* The worker thread's body: runs jobs until J_QUIT, then closes everything. */
void *tui_worker(void *p);
/* The backends that read a checkpoint directory (not script: or openai:). */
int tui_engine_spec(const char *spec);

#endif
