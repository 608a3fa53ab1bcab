/*
 * testhelp.h - the unit-test harness (in the spirit of redis' testhelp.h).
 *
 * A test file is a program: static test functions, run from main() with
 * TEST_RUN, ending with TEST_END. Inside a test, CHECK records a failure and
 * carries on; REQUIRE records a failure and leaves the test; SKIP leaves it
 * as skipped with a reason. Every test prints one line (ok / FAIL / skip) and
 * TEST_END prints the summary line tests/run parses:
 *     # summary: P passed, F failed, S skipped
 *
 *     static void t_sum(void) { CHECK(1 + 1 == 2); }
 *     int main(void) { TEST_RUN(t_sum); TEST_END(); }
 *
 * Random tests take their seed from th_seed(): fresh per run (printed) unless
 * LODE_TEST_SEED is set, so a failure can be replayed.
 */
#ifndef LODE_TESTHELP_H
#define LODE_TESTHELP_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int th_passed, th_failed, th_skipped;
static int th_cur_failed, th_cur_skipped;
static char th_skip_reason[256];

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stdout, "    %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);           \
            th_cur_failed = 1;                                                                     \
        }                                                                                          \
    } while (0)

/* CHECK with a printf-style explanation printed on failure. */
#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stdout, "    %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);           \
            fprintf(stdout, __VA_ARGS__);                                                          \
            fputc('\n', stdout);                                                                   \
            th_cur_failed = 1;                                                                     \
        }                                                                                          \
    } while (0)

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stdout, "    %s:%d: REQUIRE(%s) failed\n", __FILE__, __LINE__, #cond);         \
            th_cur_failed = 1;                                                                     \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *th_a = (a), *th_b = (b);                                                       \
        if (!th_a || !th_b || strcmp(th_a, th_b)) {                                                \
            fprintf(stdout,                                                                        \
                    "    %s:%d: %s == %s failed:\n      got:  \"%s\"\n      want: \"%s\"\n",       \
                    __FILE__, __LINE__, #a, #b, th_a ? th_a : "(null)", th_b ? th_b : "(null)");   \
            th_cur_failed = 1;                                                                     \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long th_a = (long long)(a), th_b = (long long)(b);                                    \
        if (th_a != th_b) {                                                                        \
            fprintf(stdout, "    %s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a,  \
                    #b, th_a, th_b);                                                               \
            th_cur_failed = 1;                                                                     \
        }                                                                                          \
    } while (0)

#define SKIP(...)                                                                                  \
    do {                                                                                           \
        snprintf(th_skip_reason, sizeof th_skip_reason, __VA_ARGS__);                              \
        th_cur_skipped = 1;                                                                        \
        return;                                                                                    \
    } while (0)

static inline void th_run(const char *name, void (*fn)(void))
{
    th_cur_failed = th_cur_skipped = 0;
    th_skip_reason[0] = 0;
    fn();
    if (th_cur_failed) {
        th_failed++;
        printf("FAIL %s\n", name);
    } else if (th_cur_skipped) {
        th_skipped++;
        printf("skip %s (%s)\n", name, th_skip_reason);
    } else {
        th_passed++;
        printf("ok   %s\n", name);
    }
    fflush(stdout);
}

#define TEST_RUN(fn) th_run(#fn, fn)

#define TEST_END()                                                                                 \
    do {                                                                                           \
        printf("# summary: %d passed, %d failed, %d skipped\n", th_passed, th_failed, th_skipped); \
        return th_failed ? 1 : 0;                                                                  \
    } while (0)

/* The seed for this run's random tests (printed once). */
static inline uint64_t th_seed(void)
{
    static uint64_t seed;
    static int have;
    if (!have) {
        const char *e = getenv("LODE_TEST_SEED");
        if (e && *e)
            seed = strtoull(e, NULL, 0);
        else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
        }
        have = 1;
        printf("# seed: LODE_TEST_SEED=%llu\n", (unsigned long long)seed);
    }
    return seed;
}

/* A small deterministic generator (splitmix64) for test data. */
struct th_rng {
    uint64_t s;
};
static inline uint64_t th_next(struct th_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* uniform in [-1, 1) */
static inline float th_uniform(struct th_rng *r)
{
    return (float)((double)(th_next(r) >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

/* Normalised mean squared error, as ggml's test-backend-ops compares
 * backends: sum((a-b)^2) / sum(b^2). */
static inline double th_nmse(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? num / den : num;
}

#endif
