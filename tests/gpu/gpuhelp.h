/*
 * gpuhelp.h - helpers the GPU tests and benchmarks share: device buffers
 * (filled, copied, poisoned), random host data, comparisons against the CPU
 * reference, and for the benchmarks a clock, the copy-bandwidth yardstick
 * and a timing loop. Header-only (static inline): each test is one file.
 *
 * Include testhelp.h first for the test part (random data, gh_gpu_ready);
 * a benchmark defines GH_PROG (its name, for messages) before including.
 */
#ifndef LODE_TESTS_GPUHELP_H
#define LODE_TESTS_GPUHELP_H

#include "common/err.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Device memory of bytes (+16 slack for kernels that read whole vectors),
 * every byte set to fill; NULL on failure. */
static inline void *gh_dalloc(size_t bytes, int fill)
{
    struct kcu_buf b = { 0 };
    if (kcu_alloc(&b, bytes + 16, "test") < 0)
        return NULL;
    if (kcu_fill(b.ptr, fill, bytes) < 0) {
        kcu_free(&b);
        return NULL;
    }
    return b.ptr;
}

/* A device copy of bytes of host, or, when host is NULL, bytes poisoned with
 * 0xff (NaN as floats) so an output the kernel fails to write shows. */
static inline void *gh_dev(const void *host, size_t bytes)
{
    if (!host)
        return gh_dalloc(bytes, 0xff);
    struct kcu_buf b = { 0 };
    if (kcu_alloc(&b, bytes + 16, "test") < 0)
        return NULL;
    if (kcu_upload(b.ptr, host, bytes) < 0) {
        kcu_free(&b);
        return NULL;
    }
    return b.ptr;
}

/* Frees what gh_dalloc / gh_dev returned; accepts NULL. */
static inline void gh_dfree(void *p)
{
    struct kcu_buf b = { p, 0 };
    if (p)
        kcu_free(&b);
}

/* A host copy (malloc'd, +16 slack) of bytes of device memory d; NULL on failure. */
static inline void *gh_back(const void *d, size_t bytes)
{
    void *h = malloc(bytes + 16);
    if (h && kcu_download(h, d, bytes) < 0) {
        free(h);
        return NULL;
    }
    return h;
}

/* |got - ref| <= atol + rtol * |ref| everywhere (NaN fails); prints the worst element. */
static inline int gh_close_to(const float *got, const float *ref, size_t n, float atol, float rtol,
                              const char *what)
{
    size_t bad = 0, worst = 0;
    double wd = -1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= atol + rtol * fabs(ref[i]))) {
            bad++;
            if (!(d <= wd))
                wd = d, worst = i;
        }
    }
    if (bad)
        printf("    %s: %zu of %zu differ, worst [%zu] got %.9g want %.9g\n", what, bad, n, worst,
               got[worst], ref[worst]);
    return bad == 0;
}

/* max |a - b| / rms(b) over n values; NaN anywhere gives infinity */
static inline double gh_rel_err(const float *a, const float *b, size_t n)
{
    double ss = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i]))
            return INFINITY;
        ss += (double)b[i] * b[i];
        double d = fabs((double)a[i] - b[i]);
        mx = d > mx ? d : mx;
    }
    double rms = sqrt(ss / (double)(n ? n : 1));
    return mx / (rms > 1e-20 ? rms : 1e-20);
}

#ifdef LODE_TESTHELP_H
/* Built with CUDA, a device present and initialised: the GPU cases run (else they skip). */
static inline int gh_gpu_ready(void)
{
    if (!kern_cuda_built())
        return 0;
    const char *why = NULL;
    if (kern_cuda_device_count(&why) == 0)
        return 0;
    return kcu_init(0) == 0;
}

/* A test's start: seeds rng (th_seed prints the seed), sees whether the GPU
 * cases run, and creates the CPU context the results are checked against;
 * -1 after a message when that cannot be had. */
static inline int gh_start(struct th_rng *rng, struct kern_cpu **cpu, int *have_gpu)
{
    rng->s = th_seed();
    *have_gpu = gh_gpu_ready();
    if (kern_cpu_new(cpu, 0, KERN_ISA_AUTO) < 0) {
        printf("cannot create the CPU context: %s\n", err_msg());
        return -1;
    }
    return 0;
}

static inline void gh_finish(struct kern_cpu *cpu, int have_gpu)
{
    kern_cpu_free(cpu);
    if (have_gpu)
        kcu_shutdown();
}

/* n floats uniform in [lo, hi) (+16 bytes slack); NULL when out of memory. */
static inline float *gh_rnd(struct th_rng *rng, size_t n, float lo, float hi)
{
    float *p = malloc(n * sizeof(float) + 16);
    if (p)
        for (size_t i = 0; i < n; i++)
            p[i] = lo + (hi - lo) * (th_uniform(rng) * 0.5f + 0.5f);
    return p;
}
#endif

#ifdef GH_PROG
static inline double gh_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reports a failed step with the error message; the benchmark's exit status. */
static inline int gh_fail(const char *what)
{
    fprintf(stderr, GH_PROG ": %s: %s\n", what, err_msg());
    return 1;
}

/* The device-to-device copy bandwidth (GB/s, read + write) of this run, the
 * yardstick the kernels' figures are shown against; prints its line. */
static inline int gh_bench_copy(double *gbps)
{
    size_t bytes = (size_t)1 << 30;
    void *a = gh_dalloc(bytes, 1), *b = gh_dalloc(bytes, 0);
    if (!a || !b)
        return gh_fail("copy");
    double best = 1e30;
    for (int i = 0; i < 6; i++) {
        kcu_sync();
        double t0 = gh_now();
        if (kcu_copy(b, a, bytes, NULL) < 0 || kcu_sync() < 0)
            return gh_fail("copy");
        double dt = gh_now() - t0;
        best = i && dt < best ? dt : best; /* the first one warms up */
    }
    *gbps = 2.0 * bytes / best / 1e9;
    printf("%-52s %10.1f us %9.1f GB/s\n", "D2D copy 1 GiB (read + write)", best * 1e6, *gbps);
    gh_dfree(a);
    gh_dfree(b);
    return 0;
}

/* Times round(ctx) (some kernel launches, returning how many, < 0 on
 * failure), syncing after each round: one warm-up pass, then rounds until
 * secs have passed. *calls and *dt get the launches and seconds measured. */
static inline int gh_time_rounds(long (*round)(void *ctx), void *ctx, double secs, long *calls,
                                 double *dt)
{
    for (int warm = 1; warm >= 0; warm--) {
        *calls = 0;
        double t0 = gh_now();
        do {
            long n = round(ctx);
            if (n < 0 || kcu_sync() < 0)
                return -1;
            *calls += n;
            *dt = gh_now() - t0;
        } while (!warm && *dt < secs);
    }
    return 0;
}
#endif

#endif
