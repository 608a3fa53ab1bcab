/*
 * toolcall.h - the streaming parser for Qwen3's XML tool calls (tc_).
 *
 * The model's output is pushed in with tc_feed() in pieces of any size and
 * ended with tc_finish(). The parser emits events (reasoning text, content
 * text, tool-call begin, argument complete, call complete, errors) as soon as
 * they are decided, and builds the final result. Every decision depends only
 * on the bytes seen so far and is deferred until more bytes cannot change it,
 * so feeding an input whole, byte by byte or in any chunks gives the same
 * result and the same concatenated event stream (tested at every split point).
 *
 *     struct tc_tools *tools;          // from the OpenAI-style tool list
 *     if (tc_tools_new(&tools, json) < 0) ...
 *     struct tc_parser *p;
 *     tc_new(&p, tools, NULL, on_event, ctx);
 *     while (generating) tc_feed(p, piece, n);
 *     tc_finish(p);
 *     const struct tc_result *r = tc_result(p);   // calls, errors, content, reasoning
 *     tc_free(p); tc_tools_free(tools);
 *
 * ---- Format and exact semantics (vLLM's qwen3_coder behaviour, plus choices) ----
 *
 * Output: [reasoning] "</think>" content { "<tool_call>\n<function=NAME>\n"
 *         { "<parameter=P>\nVALUE\n</parameter>\n" } "</function>\n</tool_call>" } content
 *
 * Reasoning. With opts.starts_in_reasoning (thinking on: the prompt ends with
 *   "<think>\n"), everything up to the first "</think>" is reasoning. A stray
 *   "<think>" at the very start of the output (after whitespace) is dropped and
 *   also starts reasoning. If the output ends without "</think>", the whole
 *   reasoning is re-labelled as content at tc_finish (TC_EV_REASONING_TO_CONTENT)
 *   and no tool call is taken from it: a truncated thought is not a call.
 *   After "</think>", "</think>" is ordinary text.
 *
 * Content. Text outside calls. Whitespace right before a call, leading
 *   whitespace of the content and trailing whitespace at the end are dropped;
 *   everything else is kept verbatim, including text between and after calls.
 *   A call starts at:
 *   - "<tool_call>" anywhere, but only when followed by optional whitespace and
 *     "<function=" (so an inline "<tool_call>example</tool_call>" stays text);
 *   - "<function=" at the start of a line (the unwrapped form). If what follows
 *     is not a call (a bad name, or text right after the tag before any
 *     parameter), the tag is given back as content: prose that mentions the
 *     syntax is not lost.
 *
 * Function name: [A-Za-z0-9_.-]{1,128} then ">". In a wrapped call, a bad name
 *   (e.g. "<function={{ tc.name }}>" from an unrendered template, or a missing
 *   ">") makes the call an error entry; its body is still parsed so the next
 *   call is found. A name that is not in the tool list is an error entry
 *   ("unknown tool"), never a call.
 *
 * Call body: whitespace and stray text are skipped; "<parameter=NAME>" starts
 *   a value; "</function>" ends the call (an optional "</tool_call>" after it is
 *   consumed); "</tool_call>", "<tool_call>" or a line-start "<function=" also
 *   end it (missing closers). At most TC_MAX_PARAMS parameters per call.
 *
 * Values. One leading and one trailing "\n" are stripped. Inside a value,
 *   "line start" means the value's first byte or the byte after "\n". A value
 *   ends only at one of these (otherwise every byte is value text):
 *   1. "</parameter>" anywhere, followed (after whitespace) by "<parameter=K>",
 *      "</function>", "</tool_call>", "<tool_call>" or the end of the output,
 *      where K is a parameter of this tool (its schema's properties; any name
 *      when the tool has no properties or is unknown) that has no value yet
 *      and is not the current one (so a repeated tag is text, as in vLLM's
 *      qwen3_xml). In a wrapped call the "</function>" must itself be
 *      followed by "</tool_call>", "<tool_call>" or the end, so an edit's
 *      new_string "</parameter>\n</function>" stays text;
 *   2. a line-start "<parameter=K>" with K as above (missing "</parameter>");
 *   3. a line-start "</function>" followed by "</tool_call>", "<tool_call>" or
 *      the end (missing "</parameter>");
 *   4. a line-start "</tool_call>" followed by "<tool_call>" or the end.
 *   Literal tool-call syntax in a value (a file being written that contains
 *   calls) is depth-counted: a line-start "<tool_call>" followed by
 *   "<function=", a line-start "<function=NAME>" followed by "<parameter=" or
 *   "</function>", or a line-start "<parameter=NAME>" that does not close the
 *   value opens a literal block, and its matching line-start "</tool_call>",
 *   line-start "</function>" or "</parameter>" closes it as text.
 *   While a literal block is open, rules 1-4 are off; only the final closers
 *   "</parameter>" ["</function>" ["</tool_call>"]] followed by nothing but
 *   whitespace to the end of the output end the value, so an unbalanced
 *   literal cannot swallow the last call. Whitespace looked ahead over is
 *   capped at TC_WS_LOOKAHEAD bytes.
 *   A value not closed when the output ends (truncated generation) makes the
 *   call an error entry: a half-written file is never written. A call whose
 *   values are all closed but which lacks "</function>" at the end is kept.
 *
 * Events. Text is emitted as soon as it cannot be the start of a tag: only a
 *   possible tag prefix ("<tool_c", "<function", "</thi", "<tool_call>" plus
 *   whitespace before "<function=") and trailing whitespace are held back.
 *   TC_EV_CALL_BEGIN comes when the function tag is complete (for an unwrapped
 *   call, at its first parameter or "</function>"); TC_EV_ARG when a value's
 *   closer is decided, which may need the next tag after "</parameter>".
 *
 * Conversion by the tool's JSON schema (tc_convert): see below.
 *
 * Caps (struct tc_opts): a value over max_value_bytes (8 MiB) or a call past
 *   max_calls (64) per turn becomes an error entry; reasoning and content keep
 *   at most max_text_bytes each (the rest is dropped); at most TC_MAX_ERRORS
 *   error entries are kept (the rest counted). Held-back input is bounded by
 *   the longest tag plus TC_WS_LOOKAHEAD, so memory is bounded by the caps.
 *
 * Errors (struct tc_error) are for the model: "name" is the tool name as
 * written (possibly empty or cut), "message" says what was wrong.
 */
#ifndef LODE_TOOLS_TOOLCALL_H
#define LODE_TOOLS_TOOLCALL_H

#include "common/buf.h"

#include <cjson/cJSON.h>
#include <stddef.h>

#define TC_MAX_NAME 128     /* function and parameter names */
#define TC_WS_LOOKAHEAD 256 /* whitespace skipped while looking for a closer */
#define TC_MAX_ERRORS 64    /* error entries kept */
#define TC_MAX_PARAMS 256   /* parameters in one call */
#define TC_MAX_PY_DEPTH 64  /* nesting of Python literals */

/* ---- the tool list ---- */

struct tc_tools;

/* Reads an OpenAI tool list: an array of {"type":"function","function":{"name",
 * "description","parameters"}} or of bare {"name","parameters"} objects.
 * Copies what it needs (the JSON may be freed afterwards). On success *out is
 * a new object owned by the caller (tc_tools_free). ERR_INVAL names the entry
 * that is malformed. */
int tc_tools_new(struct tc_tools **out, const cJSON *tools);
/* Parses a JSON text and calls tc_tools_new. Messages start with `origin`
 * (a file name; NULL: "tools"): "FILE:LINE:COL: malformed JSON" or
 * "FILE: tools[2]: ...". */
int tc_tools_parse(struct tc_tools **out, const char *json, size_t n, const char *origin);
void tc_tools_free(struct tc_tools *t);
int tc_tools_count(const struct tc_tools *t);
/* The "parameters" schema of a tool, or NULL. Borrowed from t. */
const cJSON *tc_tools_params(const struct tc_tools *t, const char *name);

/* ---- the parser ---- */

struct tc_opts {
    int starts_in_reasoning; /* the prompt ended with "<think>\n" (default 0) */
    size_t max_value_bytes;  /* per parameter value (default 8 MiB) */
    int max_calls;           /* per turn (default 64) */
    size_t max_text_bytes;   /* reasoning and content each (default 64 MiB) */
};
void tc_opts_default(struct tc_opts *o);

enum tc_event_kind {
    TC_EV_REASONING,            /* text, len: more reasoning */
    TC_EV_CONTENT,              /* text, len: more content */
    TC_EV_REASONING_TO_CONTENT, /* at finish: no "</think>"; all reasoning so far is content */
    TC_EV_CALL_BEGIN,           /* index, name: a call to a known tool started */
    TC_EV_ARG,                  /* index, name, arg, value: one argument complete */
    TC_EV_CALL_END,             /* index, name, value (the arguments object): call complete */
    TC_EV_ERROR,                /* index (-1 if no CALL_BEGIN was sent), name, text: rejected */
};

/* Everything in an event is borrowed for the duration of the callback. A call
 * that got TC_EV_CALL_BEGIN ends with TC_EV_CALL_END or TC_EV_ERROR with the
 * same index; a rejected call's index is reused by the next call. */
struct tc_event {
    enum tc_event_kind kind;
    const char *text;
    size_t len;
    int index;
    const char *name;
    const char *arg;
    const cJSON *value;
};
typedef void (*tc_event_fn)(void *ud, const struct tc_event *ev);

struct tc_call {
    char *name;
    cJSON *args; /* object */
};
struct tc_error {
    char *name;
    char *message;
};
struct tc_result {
    struct buf reasoning, content;
    struct tc_call *calls;
    int ncalls;
    struct tc_error *errors;
    int nerrors;
    int errors_dropped; /* beyond TC_MAX_ERRORS */
};

struct tc_parser;

/* A new parser in *out, owned by the caller (tc_free). Borrows `tools` (may be
 * NULL: then every well-formed name is accepted and values stay strings) until
 * tc_free. opts and cb may be NULL. */
int tc_new(struct tc_parser **out, const struct tc_tools *tools, const struct tc_opts *opts,
           tc_event_fn cb, void *ud);
void tc_free(struct tc_parser *p);
/* Pushes n more bytes of model output. Returns 0, or ERR_NOMEM (the parser
 * is then stuck in that error), or ERR_INVAL after tc_finish. */
int tc_feed(struct tc_parser *p, const char *bytes, size_t n);
/* Ends the output: resolves everything held back. */
int tc_finish(struct tc_parser *p);
/* The result so far (complete after tc_finish). Borrowed from p. */
const struct tc_result *tc_result(const struct tc_parser *p);
/* Appends the result as {"reasoning": ..., "content": ..., "tool_calls":
 * [{"name": ..., "arguments": {...}}], "errors": [{"name": ..., "message": ...}]}
 * ("errors" only when there are some). Invalid UTF-8 is replaced by U+FFFD. */
int tc_result_json(const struct tc_result *r, struct buf *out);

/* ---- value conversion (toolcall_conv.c) ----
 *
 * tc_convert turns a raw parameter value into JSON by its property schema:
 * - no schema (unknown parameter or no tool list) -> string;
 * - the type is "type" (a string or a list), else the first non-null type in
 *   "anyOf"/"oneOf", else "string"; "null" among the types or
 *   "nullable": true makes exactly "null"/"none" (any case) -> null;
 * - string, str, text, varchar, char, enum -> the raw string (even "null");
 * - other types: "null"/"none" (surrounding whitespace allowed) -> null; then
 *   int*, uint*, long*, short*, unsigned* -> an integer (Python int()), else the string;
 *   num*, float* -> a number, integral values as integers, else the string;
 *   boolean, bool, binary -> true iff the lowercased value is "true";
 *   object, array, dict*, list* -> JSON; a JSON string result is parsed again as a
 *   Python literal; failing JSON, a Python literal; else the string;
 *   anything else -> a Python literal, else the string.
 * Strings with invalid UTF-8 get U+FFFD. Numbers outside double precision keep
 * their digits (cJSON raw). Returns a new cJSON owned by the caller, NULL only
 * when memory runs out. */
cJSON *tc_convert(const cJSON *prop_schema, const char *raw, size_t n);

/* Parses a Python literal (ast.literal_eval subset: dict, list, tuple,
 * str with ' or " and escapes, int, float, True, False, None; set, bytes and
 * complex are refused because JSON cannot hold them) into JSON. Returns a new
 * cJSON owned by the caller, or NULL when s is not such a literal. */
cJSON *tc_py_literal(const char *s, size_t n);

/* Appends s[0..n) to out with every invalid UTF-8 byte and every NUL replaced
 * by U+FFFD (cJSON strings are NUL-terminated). 0 or ERR_NOMEM. */
int tc_utf8_fix(struct buf *out, const char *s, size_t n);

#endif
