/* test_sample.c - engine/sample: greedy, filters, penalties, seeded draws, distributions. */
#include "common/err.h"
#include "engine/sample.h"
#include "testhelp.h"

#include <math.h>

static int32_t draw(struct sampler *s, const float *lg, int32_t n)
{
    float tmp[64];
    memcpy(tmp, lg, (size_t)n * sizeof(float));
    return samp_sample(s, tmp, n);
}

static void t_greedy_and_masking(void)
{
    struct samp_params p = samp_preset(SAMP_GREEDY);
    struct sampler *s;
    REQUIRE(samp_new(&s, &p, 5) == 0);
    float lg[8] = { 0.1f, 2.0f, 2.0f, -1, 0, 9, 9, 9 }; /* ids 5..7 are padding rows */
    CHECK_INT(draw(s, lg, 8), 1);                       /* first of the tied maxima */
    samp_free(s);
}

static void t_filters(void)
{
    float lg[6] = { 5, 4, 3, 2, 1, 0 };
    struct samp_params p = samp_preset(SAMP_GREEDY);
    p.temperature = 1.0f;
    p.top_k = 1;
    struct sampler *s;
    REQUIRE(samp_new(&s, &p, 6) == 0);
    for (int i = 0; i < 50; i++)
        CHECK_INT(draw(s, lg, 6), 0);
    samp_free(s);
    /* top-p 0.5: only the first token carries >= 0.5 of the mass (e^0/(sum) ~ 0.63) */
    p.top_k = 0;
    p.top_p = 0.5f;
    REQUIRE(samp_new(&s, &p, 6) == 0);
    for (int i = 0; i < 50; i++)
        CHECK_INT(draw(s, lg, 6), 0);
    samp_free(s);
    /* min-p 0.3: keeps p_i >= 0.3 p_0, i.e. ids 0 and 1 (e^-1 = 0.37) */
    p.top_p = 1;
    p.min_p = 0.3f;
    REQUIRE(samp_new(&s, &p, 6) == 0);
    int seen[6] = { 0 };
    for (int i = 0; i < 400; i++)
        seen[draw(s, lg, 6)]++;
    CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] == 0 && seen[5] == 0);
    samp_free(s);
}

static void t_distribution(void)
{
    /* with temperature 1 and no filters, frequencies follow the softmax */
    float lg[4] = { 1.0f, 0.0f, -1.0f, 0.5f };
    struct samp_params p = samp_preset(SAMP_GREEDY);
    p.temperature = 1.0f;
    p.seed = th_seed();
    struct sampler *s;
    REQUIRE(samp_new(&s, &p, 4) == 0);
    int n = 40000, cnt[4] = { 0 };
    for (int i = 0; i < n; i++)
        cnt[draw(s, lg, 4)]++;
    double z = 0;
    for (int i = 0; i < 4; i++)
        z += exp(lg[i]);
    for (int i = 0; i < 4; i++) {
        double want = exp(lg[i]) / z, got = (double)cnt[i] / n;
        CHECKF(fabs(got - want) < 0.015, "id %d: %.4f, expected %.4f", i, got, want);
    }
    samp_free(s);
    /* temperature 0.5 sharpens: p ~ exp(2 l) */
    p.temperature = 0.5f;
    REQUIRE(samp_new(&s, &p, 4) == 0);
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < n; i++)
        cnt[draw(s, lg, 4)]++;
    z = 0;
    for (int i = 0; i < 4; i++)
        z += exp(2 * lg[i]);
    CHECK(fabs((double)cnt[0] / n - exp(2.0) / z) < 0.015);
    samp_free(s);
}

static void t_seeded(void)
{
    float lg[16];
    for (int i = 0; i < 16; i++)
        lg[i] = (float)(i % 5) * 0.3f;
    struct samp_params p = samp_preset(SAMP_THINKING);
    p.seed = 42;
    struct sampler *a, *b;
    REQUIRE(samp_new(&a, &p, 16) == 0 && samp_new(&b, &p, 16) == 0);
    int same = 1;
    for (int i = 0; i < 200; i++)
        same &= draw(a, lg, 16) == draw(b, lg, 16);
    CHECK(same);
    samp_free(b);
    p.seed = 43;
    REQUIRE(samp_new(&b, &p, 16) == 0);
    int diff = 0;
    for (int i = 0; i < 200; i++)
        diff += draw(a, lg, 16) != draw(b, lg, 16);
    CHECK(diff > 0);
    samp_free(a);
    samp_free(b);
}

static void t_penalties(void)
{
    float lg[3] = { 2.0f, 1.9f, -1.0f };
    struct samp_params p = samp_preset(SAMP_GREEDY);
    p.repetition_penalty = 1.5f; /* 2.0 -> 1.33 < 1.9 */
    struct sampler *s;
    REQUIRE(samp_new(&s, &p, 3) == 0);
    CHECK_INT(draw(s, lg, 3), 0);
    samp_accept(s, 0);
    CHECK_INT(draw(s, lg, 3), 1);
    samp_free(s);
    p.repetition_penalty = 1;
    p.presence_penalty = 0.5f;
    REQUIRE(samp_new(&s, &p, 3) == 0);
    samp_accept(s, 0);
    CHECK_INT(draw(s, lg, 3), 1); /* 2.0 - 0.5 < 1.9 */
    samp_free(s);
}

static void t_bad_params(void)
{
    struct samp_params p = samp_preset(SAMP_THINKING);
    struct sampler *s;
    p.top_p = 0;
    CHECK(samp_new(&s, &p, 4) == ERR_INVAL && strstr(err_msg(), "top_p"));
    p = samp_preset(SAMP_THINKING);
    p.temperature = -1;
    CHECK(samp_new(&s, &p, 4) == ERR_INVAL && strstr(err_msg(), "temperature"));
    CHECK_INT(samp_preset_parse("non-thinking"), SAMP_NON_THINKING);
    CHECK_INT(samp_preset_parse("creative"), -1);
    struct samp_params t = samp_preset(SAMP_THINKING), nt = samp_preset(SAMP_NON_THINKING);
    CHECK(t.temperature == 0.6f && t.top_p == 0.95f && t.top_k == 20 && t.min_p == 0);
    CHECK(nt.temperature == 0.7f && nt.top_p == 0.8f && nt.top_k == 20 && nt.min_p == 0);
}

int main(void)
{
    TEST_RUN(t_greedy_and_masking);
    TEST_RUN(t_filters);
    TEST_RUN(t_distribution);
    TEST_RUN(t_seeded);
    TEST_RUN(t_penalties);
    TEST_RUN(t_bad_params);
    TEST_END();
}
