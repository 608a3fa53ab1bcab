/*
 * pool.c - thread pool (see pool.h).
 *
 * Protocol: the caller publishes (fn, ctx) and `pending`, bumps `gen` and wakes the workers
 * that sleep; each worker runs fn once per generation and decrements `pending`; the caller runs
 * its own share as thread 0, then waits for pending == 0.
 *
 * Waiting is a bounded spin (a decode step runs dozens of short regions back to back, and a
 * futex round trip costs more than many of them), then a futex sleep, so an idle pool costs no
 * CPU. Sleepers announce themselves (`sleepers`, `caller_sleeps`) before they re-check the
 * word they sleep on, and the other side checks that announcement after changing the word,
 * both sequentially consistent, so a wake-up is never lost and never a syscall when nobody
 * sleeps.
 */
#include "common/pool.h"

#include "common/err.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Spin budget before sleeping: longer than the serial gap between two regions of a decode step
 * (norms, routing: microseconds), far shorter than a scheduler tick. */
#define SPIN_NS 100000

struct pool {
    int n; /* threads including the caller */
    pthread_t *th;
    pool_fn fn;
    void *ctx;
    unsigned gen;      /* futex word: bumped once per pool_run */
    int pending;       /* futex word: workers still running the current generation */
    int sleepers;      /* workers asleep (or about to be) on gen */
    int caller_sleeps; /* the caller is asleep (or about to be) on pending */
    int quit;
};

struct worker_arg {
    struct pool *p;
    int tid;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void futex_wait(void *addr, unsigned val)
{
    /* returns at once when *addr != val; spurious returns are fine: callers loop */
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(void *addr, int n)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Spins until *word != val or SPIN_NS pass; 1 when it changed. */
static int spin_while(const unsigned *word, unsigned val)
{
    long long t0 = 0;
    for (unsigned i = 1;; i++) {
        if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != val)
            return 1;
        cpu_relax();
        if ((i & 255) == 0) {
            long long t = now_ns();
            if (!t0)
                t0 = t;
            else if (t - t0 > SPIN_NS)
                return 0;
        }
    }
}

static void *worker(void *arg)
{
    struct worker_arg wa = *(struct worker_arg *)arg;
    free(arg);
    struct pool *p = wa.p;
    unsigned seen = 0;
    for (;;) {
        if (!spin_while(&p->gen, seen)) {
            while (__atomic_load_n(&p->gen, __ATOMIC_SEQ_CST) == seen) {
                __atomic_add_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
                if (__atomic_load_n(&p->gen, __ATOMIC_SEQ_CST) == seen)
                    futex_wait(&p->gen, seen);
                __atomic_sub_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
            }
        }
        seen = __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE);
        if (__atomic_load_n(&p->quit, __ATOMIC_ACQUIRE))
            return NULL;
        p->fn(p->ctx, wa.tid, p->n);
        if (__atomic_sub_fetch(&p->pending, 1, __ATOMIC_SEQ_CST) == 0 &&
            __atomic_load_n(&p->caller_sleeps, __ATOMIC_SEQ_CST))
            futex_wake(&p->pending, 1);
    }
}

int pool_ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int pool_new(struct pool **out, int nthreads)
{
    *out = NULL;
    if (nthreads <= 0)
        nthreads = pool_ncpu();
    if (nthreads > 1024)
        return err_set(ERR_INVAL, "%d threads is too many (at most 1024)", nthreads);
    struct pool *p = calloc(1, sizeof *p);
    if (!p || !(p->th = calloc((size_t)nthreads, sizeof *p->th))) {
        free(p);
        return err_set(ERR_NOMEM, "out of memory creating a thread pool");
    }
    p->n = nthreads;
    for (int i = 1; i < nthreads; i++) {
        struct worker_arg *wa = malloc(sizeof *wa);
        if (!wa || (wa->p = p, wa->tid = i, pthread_create(&p->th[i], NULL, worker, wa)) != 0) {
            free(wa);
            p->n = i; /* only threads 1..i-1 exist */
            pool_free(p);
            return err_set(ERR_NOMEM, "cannot start thread %d of %d", i, nthreads);
        }
    }
    *out = p;
    return 0;
}

/* Starts a generation: workers see fn, ctx and pending once they see the new gen. */
static void publish(struct pool *p)
{
    __atomic_add_fetch(&p->gen, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&p->sleepers, __ATOMIC_SEQ_CST))
        futex_wake(&p->gen, p->n);
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    __atomic_store_n(&p->quit, 1, __ATOMIC_RELEASE);
    publish(p);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->th[i], NULL);
    free(p->th);
    free(p);
}

int pool_size(const struct pool *p) { return p ? p->n : 1; }

void pool_run(struct pool *p, pool_fn fn, void *ctx)
{
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    __atomic_store_n(&p->pending, p->n - 1, __ATOMIC_RELAXED);
    publish(p);

    fn(ctx, 0, p->n);

    long long t0 = 0;
    for (unsigned i = 1; __atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) != 0; i++) {
        cpu_relax();
        if ((i & 255) == 0) {
            long long t = now_ns();
            if (!t0)
                t0 = t;
            else if (t - t0 > SPIN_NS)
                break;
        }
    }
    int left;
    while ((left = __atomic_load_n(&p->pending, __ATOMIC_SEQ_CST)) != 0) {
        __atomic_store_n(&p->caller_sleeps, 1, __ATOMIC_SEQ_CST);
        if ((left = __atomic_load_n(&p->pending, __ATOMIC_SEQ_CST)) != 0)
            futex_wait(&p->pending, (unsigned)left);
        __atomic_store_n(&p->caller_sleeps, 0, __ATOMIC_SEQ_CST);
    }
}
