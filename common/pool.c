/*
 * pool.c - thread pool (see pool.h).
 *
 * Protocol: the caller publishes (fn, ctx), bumps `gen` and wakes the
 * workers; each worker runs fn once per generation and decrements `pending`;
 * the caller runs its own share as thread 0, then waits for pending == 0.
 */
#include "common/pool.h"

#include "common/err.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define SPIN_ITERS 20000

struct pool {
    int n; /* threads including the caller */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers wait here for a new generation */
    pthread_cond_t done; /* the caller waits here for pending == 0 */
    pool_fn fn;
    void *ctx;
    unsigned gen; /* bumped once per pool_run; read atomically while spinning */
    int pending;  /* workers still running the current generation */
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

static void *worker(void *arg)
{
    struct worker_arg wa = *(struct worker_arg *)arg;
    free(arg);
    struct pool *p = wa.p;
    unsigned seen = 0;
    for (;;) {
        /* spin first: back-to-back regions arrive within microseconds */
        for (int i = 0; i < SPIN_ITERS; i++) {
            if (__atomic_load_n(&p->gen, __ATOMIC_ACQUIRE) != seen)
                break;
            cpu_relax();
        }
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->quit)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->gen;
        pool_fn fn = p->fn;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->mu);

        fn(ctx, wa.tid, p->n);

        if (__atomic_sub_fetch(&p->pending, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
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
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
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

void pool_free(struct pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
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
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->pending = p->n - 1;
    __atomic_add_fetch(&p->gen, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    fn(ctx, 0, p->n);

    for (int i = 0; i < SPIN_ITERS; i++) {
        if (__atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) == 0)
            return;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    while (__atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) != 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
