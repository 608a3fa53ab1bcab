/*
 * sample.h - choosing the next token from logits.
 *
 * Order (as vLLM and transformers apply them): repetition and presence
 * penalties on the tokens already seen, temperature, then top-k, top-p and
 * min-p filtering, then a draw from the remaining distribution with a seeded
 * generator (the same seed, logits and history give the same token on every
 * machine). temperature == 0 is greedy (argmax, lowest id on ties).
 *
 * Presets (the model card): thinking 0.6 / 0.95 / 20 / 0 and non-thinking
 * 0.7 / 0.8 / 20 / 0 as temperature / top_p / top_k / min_p.
 */
#ifndef LODE_ENGINE_SAMPLE_H
#define LODE_ENGINE_SAMPLE_H

#include <stdint.h>

struct samp_params {
    float temperature;        /* 0: greedy */
    int top_k;                /* 0: off */
    float top_p;              /* 1: off */
    float min_p;              /* 0: off */
    float presence_penalty;   /* subtracted once from every seen token's logit; 0: off */
    float repetition_penalty; /* seen tokens: logit > 0 ? logit / r : logit * r; 1: off */
    uint64_t seed;
};

enum samp_preset { SAMP_THINKING, SAMP_NON_THINKING, SAMP_GREEDY };
struct samp_params samp_preset(enum samp_preset p);
/* Parses "thinking" | "non-thinking" | "greedy"; -1 when unknown. */
int samp_preset_parse(const char *s);
/* ERR_INVAL naming the bad field (temperature < 0, top_p outside (0,1], ...). */
int samp_check(const struct samp_params *p);

struct sampler;
/* n_valid: ids >= n_valid are never drawn (the embedding's padding rows).
 * Caller owns *out; samp_free accepts NULL. */
int samp_new(struct sampler **out, const struct samp_params *p, int32_t n_valid);
void samp_free(struct sampler *s);
/* Records a token of the context (prompt or generated) for the penalties. */
void samp_accept(struct sampler *s, int32_t tok);
/* Draws the next token. logits [n] are modified in place (penalties,
 * temperature). n must be >= n_valid. */
int32_t samp_sample(struct sampler *s, float *logits, int32_t n);

#endif
