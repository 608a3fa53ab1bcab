/*
 * backend.h - where assistant turns come from (be_): the in-process engine
 * ("cpu", "cuda", "auto"), a script of canned outputs ("script:FILE", for
 * tests and demos) or a remote OpenAI-compatible server ("openai:URL").
 *
 *     struct be_config bc = be_config_default();
 *     bc.model = dir;                                   // borrowed
 *     struct backend *b;
 *     if (be_open(&b, "cpu", &bc) < 0) fail(err_msg());
 *     struct be_request rq = { .messages = msgs, .tools = tools,
 *                              .prompt = text, .prompt_len = n, ... };
 *     struct be_usage u;
 *     b->ops->generate(b, &rq, on_event, ud, &u);     // streams BE_EV_* events
 *     be_close(b);
 *
 * Two kinds of backend, told apart by caps:
 *  - BE_CAP_PROMPT (engine, script): the agent renders the conversation with
 *    the chat template into rq.prompt (ending with the generation prompt) and
 *    the backend streams the raw text the model produces after it
 *    (BE_EV_RAW: reasoning ending in "</think>" when thinking is on, content,
 *    tool-call XML); the agent parses it with tools/toolcall.
 *  - otherwise (openai): the backend sends rq.messages and rq.tools and
 *    streams BE_EV_REASONING / BE_EV_CONTENT deltas and BE_EV_TOOL_CALL
 *    (already parsed by the server); raw tool-call XML in the content is
 *    parsed by the agent the same way.
 *
 * The engine backend keeps the model's context as an append-only token
 * sequence: it tokenizes rq.prompt, keeps the longest common prefix with
 * what the state already holds, restores the newest snapshot at or before
 * the first difference when there is one (a snapshot is taken at the start
 * of every assistant turn: the position of the last "<|im_start|>" of each
 * prompt), and prefills only the rest. usage says what was reused.
 * A stop token the model samples (<|im_end|>, eos) is not fed to the model:
 * the next prompt renders it and it is prefilled then, so context() is
 * always exactly what the model consumed (also after an interrupt). Up to 16
 * snapshots are kept (also one at the end of the first message).
 *
 * With cfg.cache the engine backend also uses the persistent prefix cache
 * (app/prefix_cache.h): before prefilling it restores the longest cached
 * prefix that goes beyond what the state holds, and while prefilling it
 * saves blocks and snapshots at the same points as the in-memory ones, at
 * rq.cache_mark and every cache_every tokens. usage.restored_tokens counts
 * what came from it. A cache failure is logged, never fails the turn.
 */
#ifndef LODE_APP_BACKEND_H
#define LODE_APP_BACKEND_H

#include "common/buf.h"
#include "engine/sample.h"

#include <stddef.h>
#include <stdint.h>

struct cJSON;

struct be_config {
    const char *model;        /* checkpoint directory (engine backends), borrowed */
    int threads;              /* engine: <= 0 all cores */
    int kv_type;              /* engine: enum kern_dtype */
    double yarn;              /* engine: > 1 forces YaRN */
    long context;             /* engine: maximum context tokens (0: the model's) */
    int isa;                  /* engine: enum kern_isa (default KERN_ISA_AUTO) */
    const char *remote_model; /* openai: the "model" field sent ("" or NULL: the server's first) */
    const char *api_key;      /* openai: bearer token or NULL, borrowed */
    double timeout_s;         /* openai: connect and stall timeout */
    int cache;                /* engine: use the persistent prefix cache (default 0: off) */
    const char *cache_path;   /* engine: the cache file (NULL: the default), borrowed */
    uint64_t cache_budget;    /* engine: cache size in bytes (0: a share of free disk) */
    long cache_every;         /* engine: a cache snapshot every N prefilled tokens (0: 4096) */
};
struct be_config be_config_default(void);
struct cfg;
/* Sets the cache fields from the configuration (cache.enabled, cache.path, cache.budget,
 * cache.every; the strings stay borrowed from c). ERR_INVAL for a malformed cache.budget. */
int be_config_cache(struct be_config *bc, const struct cfg *c);

enum be_cap {
    BE_CAP_PROMPT = 1, /* wants rq.prompt (the template's rendering) */
    BE_CAP_STATE = 2,  /* state_save / state_load work */
    BE_CAP_TOKENS = 4, /* context() works (token-level context) */
};

struct be_usage {
    long prompt_tokens;   /* tokens of the prompt of this generation */
    long cached_tokens;   /* of those, already in the state (not computed again) */
    long prefill_tokens;  /* computed: prompt - cached, plus history re-prefilled after a restore */
    long restored_tokens; /* of cached_tokens, restored from the persistent prefix cache */
    long gen_tokens;      /* generated */
    double prefill_s;     /* wall time of the prefill */
    double gen_s;         /* wall time of the generation */
};
/* The script backend has no tokenizer: its token counts are all 0. */

struct be_request {
    const struct cJSON *messages; /* OpenAI-style messages, borrowed */
    const struct cJSON *tools;    /* OpenAI-style tools array or NULL, borrowed */
    const char *prompt;           /* BE_CAP_PROMPT: the rendering with the generation prompt */
    size_t prompt_len;
    int thinking;            /* the thinking preset is on (prompt ends with "<think>\n") */
    struct samp_params samp; /* sampling */
    long max_tokens;         /* generation cap (0: up to the context; < 0: prefill only, the
                              * turn ends at once with BE_STOP_LENGTH and gen_tokens 0) */
    /* Set to non-zero from any thread (or a signal handler) to stop soon; what
     * was generated so far is kept and generate returns 0 with stop = BE_STOP_INTERRUPT. */
    const volatile int *interrupt;
    /* Engine: a byte offset in prompt (0: none) where a prefix-cache snapshot is worth
     * keeping (the end of the loaded files), so a later prompt sharing that much restores it. */
    size_t cache_mark;
};

enum be_ev_kind {
    BE_EV_PREFILL,   /* done, total: prefill progress (tokens) */
    BE_EV_RAW,       /* text, len: raw model output (BE_CAP_PROMPT backends) */
    BE_EV_REASONING, /* text, len: a reasoning delta (remote) */
    BE_EV_CONTENT,   /* text, len: a content delta (remote; may hold raw tool-call XML) */
    BE_EV_TOOL_CALL, /* name, text (arguments as JSON text), len: a parsed call (remote) */
};
struct be_event {
    enum be_ev_kind kind;
    const char *text; /* borrowed for the callback */
    size_t len;
    const char *name;
    long done, total;
};
/* Returns 0 to go on; non-zero stops generation (as an interrupt). */
typedef int (*be_event_fn)(void *ud, const struct be_event *ev);

enum be_stop {
    BE_STOP_END,       /* the model ended its turn (<|im_end|>, eos, end of script) */
    BE_STOP_LENGTH,    /* max_tokens or the context is full */
    BE_STOP_INTERRUPT, /* rq.interrupt or the callback */
};

struct backend;
struct be_ops {
    /* Prefills rq and generates one assistant turn, streaming events. On
     * success *stop says why it ended and u is filled. Errors: ERR_* with a
     * one-line message (connection, context overflow, ...). */
    int (*generate)(struct backend *b, const struct be_request *rq, be_event_fn fn, void *ud,
                    struct be_usage *u, enum be_stop *stop);
    /* BE_CAP_STATE: the whole context (tokens and model state) as bytes
     * tagged with the model identity, and back. load refuses another model or
     * format (ERR_INVAL) and leaves the context as it was. */
    int (*state_save)(struct backend *b, struct buf *out);
    int (*state_load)(struct backend *b, const void *data, size_t n);
    /* BE_CAP_TOKENS: the tokens the state holds now (borrowed until the next
     * call) and the maximum. */
    int (*context)(struct backend *b, const int32_t **tokens, long *n, long *max);
    /* BE_CAP_TOKENS (NULL elsewhere): the logits [*n] of the token after the
     * last prefill or decode step (borrowed until the next call); ERR_NOTFOUND
     * when none are known (a fresh or just loaded state). For tests: a
     * restored state must give the uninterrupted session's logits. */
    int (*last_logits)(struct backend *b, const float **logits, long *n);
    void (*close)(struct backend *b);
};

struct backend {
    const struct be_ops *ops;
    int caps;              /* enum be_cap */
    char name[32];         /* "cpu", "cuda", "script", "openai" */
    char model_desc[256];  /* for the UI and the init event: checkpoint dir, script file, URL */
    const char *model_dir; /* the checkpoint dir for the chat template, or NULL (built-in) */
};

/* Opens the backend named by spec: "auto" | "cpu" | "cuda" | "script:FILE" |
 * "openai:URL". Caller owns *out (be_close). Errors name the spec. */
int be_open(struct backend **out, const char *spec, const struct be_config *cfg);
void be_close(struct backend *b);

/* Constructors behind be_open (one file each: backend_engine.c,
 * backend_script.c, backend_openai.c). */
int be_engine_open(struct backend **out, const char *kind, const struct be_config *cfg);
int be_script_open(struct backend **out, const char *file, const struct be_config *cfg);
int be_openai_open(struct backend **out, const char *url, const struct be_config *cfg);

#endif
