/* test_pool.c - common/pool.c: every thread runs every region exactly once, whether the workers
 * are spinning (regions back to back) or asleep on the futex (a pause longer than the spin), and
 * the caller sees all of a region's writes when pool_run returns. */
#include "common/pool.h"

#include "testhelp.h"

struct count {
    int nth;
    long gen;      /* region number, set by the caller before pool_run */
    long seen[8];  /* per thread: the last region it ran */
    long runs[8];  /* per thread: how many regions it ran */
    long work[8];  /* per thread: a result the caller checks after pool_run */
    int wrong_gen; /* a thread ran with a stale region number */
    int wrong_nth; /* nth differed from the pool size */
};

static void part(void *ctx, int tid, int nth)
{
    struct count *c = ctx;
    if (nth != c->nth)
        c->wrong_nth = 1;
    if (c->seen[tid] != c->gen - 1)
        c->wrong_gen = 1;
    c->seen[tid] = c->gen;
    c->runs[tid]++;
    /* uneven work, so that threads finish in varying order */
    long acc = 0;
    for (long i = 0; i < (c->gen * 7 + tid * 13) % 300; i++)
        acc += i ^ c->gen;
    c->work[tid] = acc + c->gen;
}

static void regions(struct pool *p, struct count *c, long n, int pause_us)
{
    for (long r = 0; r < n; r++) {
        c->gen++;
        pool_run(p, part, c);
        for (int t = 0; t < c->nth; t++)
            if (c->seen[t] != c->gen || c->work[t] < c->gen)
                c->wrong_gen = 1;
        if (pause_us)
            usleep((useconds_t)pause_us);
    }
}

static void t_every_region_once(void)
{
    for (int nt = 1; nt <= 4; nt++) {
        struct pool *p;
        REQUIRE(pool_new(&p, nt) == 0);
        struct count c = { .nth = nt };
        regions(p, &c, 3000, 0); /* workers spinning */
        regions(p, &c, 20, 300); /* workers asleep between regions (spin is 100 us) */
        regions(p, &c, 1000, 0);
        CHECKF(!c.wrong_gen, "%d threads: a region was missed, repeated or not finished", nt);
        CHECKF(!c.wrong_nth, "%d threads: wrong nth", nt);
        for (int t = 0; t < nt; t++)
            CHECKF(c.runs[t] == c.gen, "%d threads: thread %d ran %ld of %ld regions", nt, t,
                   c.runs[t], c.gen);
        pool_free(p);
    }
}

/* a pool freed while its workers sleep, and one freed right after a region */
static void t_free(void)
{
    struct pool *p;
    REQUIRE(pool_new(&p, 3) == 0);
    struct count c = { .nth = 3 };
    regions(p, &c, 1, 0);
    usleep(2000);
    pool_free(p);
    REQUIRE(pool_new(&p, 2) == 0);
    struct count d = { .nth = 2 };
    regions(p, &d, 3, 0);
    pool_free(p);
    CHECK(!c.wrong_gen && !d.wrong_gen);
}

int main(void)
{
    TEST_RUN(t_every_region_once);
    TEST_RUN(t_free);
    TEST_END();
}
