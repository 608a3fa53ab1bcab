/*
 * pool.h - a fixed thread pool running one parallel region at a time, in the
 * style of an OpenMP `parallel` block: pool_run() calls fn on every thread
 * (the caller is thread 0) and returns when all have finished. Each call
 * splits its own work by tid. Workers spin briefly before sleeping, so the
 * many short regions of a decode step do not pay a futex wake each.
 *
 * Usage:
 *     struct pool *p;
 *     if (pool_new(&p, 0) < 0) ...             // 0 = one thread per core
 *     pool_run(p, matvec_part, &args);          // matvec_part(ctx, tid, nth)
 *     pool_free(p);
 *
 * Not re-entrant: fn must not call pool_run on the same pool.
 */
#ifndef LODE_COMMON_POOL_H
#define LODE_COMMON_POOL_H

struct pool;

typedef void (*pool_fn)(void *ctx, int tid, int nthreads);

/* nthreads <= 0 means the number of online CPUs. Caller owns *out. */
int pool_new(struct pool **out, int nthreads);
void pool_free(struct pool *p);
int pool_size(const struct pool *p);
void pool_run(struct pool *p, pool_fn fn, void *ctx);

/* Splits [0, n) into nth nearly equal parts; part tid is [*lo, *hi). */
static inline void pool_range(long n, int tid, int nth, long *lo, long *hi)
{
    long q = n / nth, r = n % nth;
    *lo = tid * q + (tid < r ? tid : r);
    *hi = *lo + q + (tid < r);
}

int pool_ncpu(void);

#endif
