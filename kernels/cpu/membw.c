/*
 * membw.c - the memory read bandwidth a decode step cannot beat: the best of
 * several multi-threaded streaming reads of a buffer far larger than the
 * caches, with the same threads and instruction set the kernels use. Model
 * benchmarks measure it in the same run and report their ratio to it.
 */
#include "kernels/cpu/kern_cpu.h"

#include "common/pool.h"
#include "common/text.h"

#include <stdlib.h>
#include <string.h>

struct bw_job {
    const float *buf;
    long n;
    const struct kern_vec *v;
    float sink[64];
};

static void bw_part(void *ctx, int tid, int nth)
{
    struct bw_job *j = ctx;
    long blocks = j->n / 64, lo, hi;
    pool_range(blocks, tid, nth, &lo, &hi);
    j->sink[tid % 64] += j->v->sum(j->buf + lo * 64, (hi - lo) * 64);
}

double kern_mem_bandwidth_on(struct kern_cpu *c, const float *buf, long n)
{
    struct bw_job j = { buf, n, kern_vec_for(c->isa), { 0 } };
    double best = 0;
    for (int r = 0; r < 5; r++) {
        uint64_t t0 = time_ns();
        pool_run(c->pool, bw_part, &j);
        double s = (double)(time_ns() - t0) * 1e-9;
        if ((double)n * 4 / s / 1e9 > best)
            best = (double)n * 4 / s / 1e9;
    }
    return best;
}

double kern_mem_bandwidth(int threads, int isa)
{
    struct kern_cpu *c;
    if (kern_cpu_new(&c, threads, isa) < 0)
        return 0;
    long n = (1L << 30) / 4; /* 1 GiB */
    float *buf = malloc((size_t)n * sizeof(float));
    double bw = 0;
    if (buf) {
        memset(buf, 1, (size_t)n * sizeof(float)); /* fault every page in first */
        bw = kern_mem_bandwidth_on(c, buf, n);
        free(buf);
    }
    kern_cpu_free(c);
    return bw;
}
