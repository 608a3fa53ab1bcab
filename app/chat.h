/*
 * chat.h - the chat template of a checkpoint: chat_template.jinja in the
 * checkpoint directory, else the chat_template of its tokenizer_config.json,
 * else lode's built-in copy of the official Qwen3.6 template.
 */
#ifndef LODE_APP_CHAT_H
#define LODE_APP_CHAT_H

#include "common/buf.h"
#include "engine/template.h"

/* Opens the template for the checkpoint in dir (NULL: the built-in one). *from gets a
 * description of where it came from (static or borrowed until the next call). Caller owns
 * *out (tpl_close). */
int chat_template_open(const char *dir, struct tpl **out, const char **from);

/* Renders one user message followed by the generation prompt, with thinking on or off, for
 * the checkpoint in dir. Appends to out. */
int chat_render_user(const char *dir, const char *content, int thinking, struct buf *out);

#endif
