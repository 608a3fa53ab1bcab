/*
 * template.h - chat templates: load a Jinja chat template (the checkpoint's
 * chat_template.jinja, or the built-in copy of the official Qwen3.6 one) and
 * render a conversation into the prompt text, byte-identical to what
 * transformers' apply_chat_template renders with Python's Jinja2.
 *
 * Usage:
 *     struct tpl *t;
 *     if (tpl_open(&t, text, len) < 0) ...            // syntax errors: "template:L:C: ..."
 *     struct tpl_opts o = { .add_generation_prompt = 1, .enable_thinking = 1 };
 *     char *prompt; size_t n;
 *     if (tpl_render(t, messages, tools, &o, &prompt, &n) < 0) ...  // err_msg() says where
 *     ...; free(prompt); tpl_close(t);
 *
 * Errors (bad template, raise_exception, a limit reached) return ERR_INVAL or
 * ERR_NOMEM with a one-line message "template:LINE:COL: what".
 */
#ifndef LODE_ENGINE_TEMPLATE_H
#define LODE_ENGINE_TEMPLATE_H

#include <stddef.h>

struct tpl;
struct cJSON;

/* A flag the template sees as a variable: unset (Undefined, as when the
 * caller does not pass it), false or true. */
enum tpl_flag { TPL_UNSET = 0, TPL_FALSE = 1, TPL_TRUE = 2 };

struct tpl_opts {
    int add_generation_prompt;       /* always passed (transformers' default: false) */
    enum tpl_flag enable_thinking;   /* `enable_thinking` */
    enum tpl_flag preserve_thinking; /* `preserve_thinking` */
    /* limits; 0 = defaults (64 MiB output, 512 MiB memory, 10M steps, depth 400) */
    size_t max_output, max_memory;
    unsigned long long max_steps;
    int max_depth;
};

/* Parses a template. *out is owned by the caller (tpl_close). The text is
 * copied. */
int tpl_open(struct tpl **out, const char *text, size_t len);
/* The built-in template (the official Qwen3.6 chat template). */
int tpl_open_builtin(struct tpl **out);
/* Text of the built-in template (static, NUL-terminated). */
const char *tpl_builtin_text(void);
void tpl_close(struct tpl *t);

/* Renders with `messages` (a JSON array of message objects) and `tools` (a
 * JSON array or NULL: the template sees None). Messages go through the same
 * preparation as in transformers: a non-null `reasoning_content`, `thinking`
 * or `reasoning` field fills both `thinking` and `reasoning_content`.
 * *out (NUL-terminated, length *len) is owned by the caller: free(). Borrows
 * everything else. */
int tpl_render(const struct tpl *t, const struct cJSON *messages, const struct cJSON *tools,
               const struct tpl_opts *o, char **out, size_t *len);
/* The same from JSON text, keeping Python's int/float distinction (1.0
 * stays 1.0): `json` is either an array of messages or an object with
 * "messages" and optionally "tools"; tools_json (may be NULL) overrides the
 * latter. `what` names the input in errors ("messages.json:3:7: ..."). */
int tpl_render_json(const struct tpl *t, const char *json, size_t json_len, const char *what,
                    const char *tools_json, size_t tools_len, const char *tools_what,
                    const struct tpl_opts *o, char **out, size_t *len);

#endif
