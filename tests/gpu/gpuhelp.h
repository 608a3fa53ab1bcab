/*
 * gpuhelp.h - helpers the GPU tests share: device buffers (filled, copied,
 * poisoned), random host data, comparisons against the CPU reference.
 * Header-only (static inline): each test is one file. The benchmarks'
 * clock, copy-bandwidth yardstick and timing loop are in app/bench_cuda.c.
 *
 * Include testhelp.h first (random data, gh_gpu_ready).
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

#endif
