/* sample.c - penalties, temperature, top-k/top-p/min-p and a seeded draw (see sample.h). */
#include "engine/sample.h"

#include "common/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sampler {
    struct samp_params p;
    int32_t n_valid;
    uint8_t *seen;   /* [n_valid]: token appeared in the context */
    int32_t *cand;   /* [n_valid] candidate ids */
    float *prob;     /* [n_valid] */
    uint64_t rng[4]; /* xoshiro256** */
};

struct samp_params samp_preset(enum samp_preset p)
{
    struct samp_params s = { 0 };
    s.repetition_penalty = 1.0f;
    switch (p) {
    case SAMP_THINKING: s.temperature = 0.6f, s.top_p = 0.95f, s.top_k = 20, s.min_p = 0; break;
    case SAMP_NON_THINKING: s.temperature = 0.7f, s.top_p = 0.8f, s.top_k = 20, s.min_p = 0; break;
    case SAMP_GREEDY: s.temperature = 0, s.top_p = 1, s.top_k = 0; break;
    }
    return s;
}

int samp_preset_parse(const char *s)
{
    if (!strcmp(s, "thinking"))
        return SAMP_THINKING;
    if (!strcmp(s, "non-thinking"))
        return SAMP_NON_THINKING;
    if (!strcmp(s, "greedy"))
        return SAMP_GREEDY;
    return -1;
}

int samp_check(const struct samp_params *p)
{
    if (!(p->temperature >= 0 && p->temperature <= 100))
        return err_set(ERR_INVAL, "temperature %g: expected 0..100", p->temperature);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return err_set(ERR_INVAL, "top_p %g: expected a value in (0, 1]", p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return err_set(ERR_INVAL, "min_p %g: expected 0..1", p->min_p);
    if (p->top_k < 0)
        return err_set(ERR_INVAL, "top_k %d: expected >= 0", p->top_k);
    if (!(p->repetition_penalty > 0 && p->repetition_penalty <= 10))
        return err_set(ERR_INVAL, "repetition_penalty %g: expected (0, 10]", p->repetition_penalty);
    if (!(p->presence_penalty >= -10 && p->presence_penalty <= 10))
        return err_set(ERR_INVAL, "presence_penalty %g: expected -10..10", p->presence_penalty);
    return 0;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static double next_unit(uint64_t s[4]) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }

int samp_new(struct sampler **out, const struct samp_params *p, int32_t n_valid)
{
    *out = NULL;
    int rc = samp_check(p);
    if (rc < 0)
        return rc;
    if (n_valid < 1)
        return err_set(ERR_INVAL, "sampler: empty vocabulary");
    struct sampler *s = calloc(1, sizeof *s);
    if (!s || !(s->seen = calloc((size_t)n_valid, 1)) ||
        !(s->cand = malloc((size_t)n_valid * sizeof *s->cand)) ||
        !(s->prob = malloc((size_t)n_valid * sizeof *s->prob))) {
        samp_free(s);
        return err_set(ERR_NOMEM, "out of memory");
    }
    s->p = *p;
    s->n_valid = n_valid;
    /* seed the generator through splitmix64 so nearby seeds diverge */
    uint64_t z = p->seed;
    for (int i = 0; i < 4; i++) {
        z += 0x9e3779b97f4a7c15ull;
        uint64_t x = z;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        s->rng[i] = x ^ (x >> 31);
    }
    *out = s;
    return 0;
}

void samp_free(struct sampler *s)
{
    if (!s)
        return;
    free(s->seen);
    free(s->cand);
    free(s->prob);
    free(s);
}

void samp_accept(struct sampler *s, int32_t tok)
{
    if (tok >= 0 && tok < s->n_valid)
        s->seen[tok] = 1;
}

static int32_t argmax(const float *x, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best] || (isnan(x[best]) && !isnan(x[i])))
            best = i;
    return best;
}

/* candidates sorted by logit, descending; ties by id (deterministic) */
static int cmp_desc(const void *a, const void *b, void *ctx)
{
    const float *lg = ctx;
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    float x = lg[i], y = lg[j];
    if (x != y)
        return x > y ? -1 : 1;
    return i < j ? -1 : i > j;
}

/* Moves the k best candidates (by cmp_desc) to the front, sorted: O(n) for the
 * usual small k instead of sorting all 248k ids. */
static void select_top(int32_t *c, int32_t n, int32_t k, float *lg)
{
    if (k >= n) {
        qsort_r(c, (size_t)n, sizeof *c, cmp_desc, lg);
        return;
    }
    qsort_r(c, (size_t)k, sizeof *c, cmp_desc, lg);
    for (int32_t i = k; i < n; i++) {
        if (cmp_desc(&c[i], &c[k - 1], lg) >= 0)
            continue;
        int32_t v = c[i], j = k - 1;
        while (j > 0 && cmp_desc(&v, &c[j - 1], lg) < 0) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = v;
    }
}

int32_t samp_sample(struct sampler *s, float *logits, int32_t n)
{
    int32_t nv = s->n_valid < n ? s->n_valid : n;
    const struct samp_params *p = &s->p;
    for (int32_t i = 0; i < nv; i++) {
        if (!s->seen[i])
            continue;
        if (p->repetition_penalty != 1.0f)
            logits[i] = logits[i] > 0 ? logits[i] / p->repetition_penalty
                                      : logits[i] * p->repetition_penalty;
        logits[i] -= p->presence_penalty;
    }
    if (p->temperature <= 0)
        return argmax(logits, nv);
    for (int32_t i = 0; i < nv; i++)
        logits[i] = isnan(logits[i]) ? -INFINITY : logits[i] / p->temperature;
    int32_t k = p->top_k > 0 && p->top_k < nv ? p->top_k : nv;
    /* Beyond ~1000 candidates a full sort of 248k ids per token would dominate; when top-k is
     * off but top-p/min-p are on, prefilter by a generous threshold first. */
    int32_t nc = 0;
    float mx = logits[argmax(logits, nv)];
    float lo = k == nv ? mx - 30.0f : -INFINITY; /* exp(-30) ~ 1e-13: negligible mass */
    for (int32_t i = 0; i < nv; i++)
        if (logits[i] >= lo && logits[i] > -INFINITY)
            s->cand[nc++] = i;
    if (nc == 0)
        return argmax(logits, nv);
    if (k > nc)
        k = nc;
    select_top(s->cand, nc, k, logits);
    nc = k;
    double sum = 0;
    for (int32_t i = 0; i < nc; i++) {
        s->prob[i] = expf(logits[s->cand[i]] - mx);
        sum += s->prob[i];
    }
    /* top-p: the smallest prefix whose mass reaches p (at least one token) */
    if (p->top_p < 1.0f) {
        double acc = 0;
        int32_t keep = nc;
        for (int32_t i = 0; i < nc; i++) {
            acc += s->prob[i] / sum;
            if (acc >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        nc = keep;
    }
    /* min-p: drop tokens below min_p times the top probability */
    if (p->min_p > 0) {
        float lim = p->min_p * s->prob[0];
        int32_t keep = 1;
        while (keep < nc && s->prob[keep] >= lim)
            keep++;
        nc = keep;
    }
    sum = 0;
    for (int32_t i = 0; i < nc; i++)
        sum += s->prob[i];
    double r = next_unit(s->rng) * sum, acc = 0;
    for (int32_t i = 0; i < nc; i++) {
        acc += s->prob[i];
        if (r < acc)
            return s->cand[i];
    }
    return s->cand[nc - 1];
}
