/*
 * genstop.h - the token ids that end a generation: the chat end markers
 * <|im_end|> and <|endoftext|> (when the tokenizer has them) and every eos id
 * of the checkpoint's config.json / generation_config.json.
 */
#ifndef LODE_APP_GENSTOP_H
#define LODE_APP_GENSTOP_H

#include "engine/modelcfg.h"
#include "engine/tokenizer.h"

#include <stdint.h>

#define GENSTOP_MAX (2 + MCFG_MAX_EOS)

/* Fills ids[GENSTOP_MAX]; returns how many. */
int genstop_ids(const struct tok *t, const struct mcfg *mc, int32_t ids[GENSTOP_MAX]);
/* 1 when id is one of ids[0..n). */
int genstop_is(const int32_t *ids, int n, int32_t id);

#endif
