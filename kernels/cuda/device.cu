/* device.cu - CUDA device discovery (see kernels.h). */
#include "kernels/cuda/cuda_check.cuh"

extern "C" {
#include "common/err.h"
#include "kernels/kernels.h"
}

#include <cstdio>
#include <cstring>

extern "C" int kern_cuda_built(void) { return 1; }

extern "C" int kern_cuda_device_count(const char **why)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why)
            *why = cudaGetErrorString(e);
        cudaGetLastError(); /* clear the sticky error for later calls */
        return 0;
    }
    if (n == 0 && why)
        *why = "no CUDA device found";
    return n;
}

extern "C" int kern_cuda_device_info(int dev, struct kern_gpu_info *info)
{
    int n = kern_cuda_device_count(NULL);
    if (dev < 0 || dev >= n)
        return err_set(ERR_NOTFOUND, "CUDA device %d does not exist (%d found)", dev, n);
    cudaDeviceProp p;
    CUDA_TRY(cudaGetDeviceProperties(&p, dev));
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", p.name);
    info->cc_major = p.major;
    info->cc_minor = p.minor;
    info->sm_count = p.multiProcessorCount;
    CUDA_TRY(cudaSetDevice(dev));
    CUDA_TRY(cudaMemGetInfo(&info->free_bytes, &info->total_bytes));
    return 0;
}

/* ------------------------------------------------------------------ backend context */

/* One device and one stream per process: the engine drives the GPU from one thread. */
static struct {
    int dev; /* -1 before kcu_init */
    cudaStream_t stream;
    void *scratch;
    size_t scratch_bytes;
} g_kcu = { -1, NULL, NULL, 0 };

static const char *mib(size_t bytes, char *buf, size_t n)
{
    snprintf(buf, n, "%.1f MiB", (double)bytes / 1048576.0);
    return buf;
}

extern "C" int kcu_init(int dev)
{
    if (g_kcu.dev == dev)
        return 0;
    if (g_kcu.dev >= 0)
        return err_set(ERR_UNSUPPORTED, "cuda: already using device %d, not %d", g_kcu.dev, dev);
    const char *why = NULL;
    int n = kern_cuda_device_count(&why);
    if (n == 0)
        return err_set(ERR_NOTFOUND, "cuda: no usable GPU (%s)", why ? why : "none found");
    if (dev < 0 || dev >= n)
        return err_set(ERR_NOTFOUND, "cuda: device %d does not exist (%d found)", dev, n);
    cudaDeviceProp p;
    CUDA_TRY(cudaGetDeviceProperties(&p, dev));
    if (p.major < 8)
        return err_set(ERR_UNSUPPORTED, "cuda: %s has compute capability %d.%d, lode needs 8.0",
                       p.name, p.major, p.minor);
    CUDA_TRY(cudaSetDevice(dev));
    CUDA_TRY(cudaStreamCreateWithFlags(&g_kcu.stream, cudaStreamNonBlocking));
    g_kcu.dev = dev;
    return 0;
}

extern "C" void kcu_shutdown(void)
{
    if (g_kcu.dev < 0)
        return;
    cudaDeviceSynchronize();
    cudaFree(g_kcu.scratch);
    cudaStreamDestroy(g_kcu.stream);
    cudaGetLastError();
    g_kcu.dev = -1;
    g_kcu.stream = NULL;
    g_kcu.scratch = NULL;
    g_kcu.scratch_bytes = 0;
}

extern "C" void *kcu_stream(void) { return (void *)g_kcu.stream; }

extern "C" int kcu_sync(void)
{
    CUDA_TRY(cudaDeviceSynchronize());
    CUDA_TRY(cudaGetLastError());
    return 0;
}

extern "C" int kcu_mem_info(size_t *free_bytes, size_t *total_bytes)
{
    CUDA_TRY(cudaMemGetInfo(free_bytes, total_bytes));
    return 0;
}

extern "C" int kcu_alloc(struct kcu_buf *b, size_t bytes, const char *what)
{
    b->ptr = NULL;
    b->bytes = 0;
    if (g_kcu.dev < 0) {
        int rc = kcu_init(0);
        if (rc < 0)
            return err_prefix(rc, "cuda: allocating %s", what ? what : "a buffer");
    }
    if (bytes == 0)
        bytes = 1; /* a valid, distinct pointer for empty tensors */
    cudaError_t e = cudaMalloc(&b->ptr, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();
        b->ptr = NULL;
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        cudaGetLastError();
        char a[32], f[32], t[32];
        return err_set(e == cudaErrorMemoryAllocation ? ERR_NOMEM : ERR_IO,
                       "cuda: cannot allocate %s for %s: %s free of %s on the device (%s)",
                       mib(bytes, a, sizeof a), what ? what : "a buffer", mib(fr, f, sizeof f),
                       mib(tot, t, sizeof t), cudaGetErrorName(e));
    }
    b->bytes = bytes;
    return 0;
}

extern "C" void kcu_free(struct kcu_buf *b)
{
    if (!b || !b->ptr)
        return;
    /* fails only after an earlier fault on the device, which the caller has already seen */
    cudaError_t e = cudaFree(b->ptr);
    if (e != cudaSuccess) {
        fprintf(stderr, "lode: CUDA error %s freeing %zu bytes at %s:%d\n", cudaGetErrorName(e),
                b->bytes, __FILE__, __LINE__);
        cudaGetLastError();
    }
    b->ptr = NULL;
    b->bytes = 0;
}

/*
 * kcu_upload / kcu_download / kcu_fill are synchronous with respect to every stream. The plain
 * cudaMemcpy / cudaMemset run on the legacy default stream, which the backend's non-blocking
 * stream is NOT ordered with: a kernel enqueued on kcu_stream() right after a kcu_fill could run
 * before (or under) the memset, a pageable cudaMemcpy to the device may return before its DMA has
 * landed, and a download could read what a kernel on kcu_stream() has not written yet. So the
 * device is drained before and after (a few microseconds; these are load-time and test calls).
 */
static int drain(void)
{
    CUDA_TRY(cudaDeviceSynchronize());
    return 0;
}

extern "C" int kcu_upload(void *dst_dev, const void *src_host, size_t bytes)
{
    if (!bytes)
        return 0;
    int rc = drain();
    if (rc < 0)
        return rc;
    CUDA_TRY(cudaMemcpy(dst_dev, src_host, bytes, cudaMemcpyHostToDevice));
    return drain();
}

extern "C" int kcu_download(void *dst_host, const void *src_dev, size_t bytes)
{
    if (!bytes)
        return 0;
    int rc = drain();
    if (rc < 0)
        return rc;
    CUDA_TRY(cudaMemcpy(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int kcu_fill(void *dst_dev, int byte, size_t bytes)
{
    if (!bytes)
        return 0;
    int rc = drain();
    if (rc < 0)
        return rc;
    CUDA_TRY(cudaMemset(dst_dev, byte, bytes));
    return drain();
}

static unsigned long long g_epoch;

extern "C" void kcu_epoch_bump(void) { g_epoch++; }
extern "C" unsigned long long kcu_alloc_epoch(void) { return g_epoch; }

extern "C" int kcu_scratch(size_t bytes, void **out)
{
    if (bytes > g_kcu.scratch_bytes) {
        /* the old buffer may still be read by queued kernels */
        CUDA_TRY(cudaDeviceSynchronize());
        CUDA_TRY(cudaFree(g_kcu.scratch));
        g_kcu.scratch = NULL;
        g_kcu.scratch_bytes = 0;
        size_t want = bytes + bytes / 4; /* grow geometrically: fewer syncs */
        struct kcu_buf b;
        int rc = kcu_alloc(&b, want, "backend scratch");
        if (rc < 0)
            return rc;
        g_kcu.scratch = b.ptr;
        g_kcu.scratch_bytes = want;
        kcu_epoch_bump(); /* CUDA graphs that captured the old pointer are stale */
    }
    *out = g_kcu.scratch;
    return 0;
}

extern "C" int kcu_copy(void *dst_dev, const void *src_dev, size_t bytes, void *stream)
{
    if (bytes)
        CUDA_TRY(cudaMemcpyAsync(dst_dev, src_dev, bytes, cudaMemcpyDeviceToDevice,
                                 (cudaStream_t)stream));
    return 0;
}

extern "C" double kcu_peak_gbps(void)
{
    int dev = g_kcu.dev < 0 ? 0 : g_kcu.dev, khz = 0, bits = 0;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&bits, cudaDevAttrGlobalMemoryBusWidth, dev) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    /* double data rate: two transfers per clock */
    return 2.0 * khz * 1e3 * (bits / 8.0) / 1e9;
}

/* ------------------------------------------------------------------ asynchronous copies, graphs */

extern "C" int kcu_host_alloc(void **out, size_t bytes)
{
    *out = NULL;
    cudaError_t e = cudaMallocHost(out, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *out = NULL;
        return err_set(e == cudaErrorMemoryAllocation ? ERR_NOMEM : ERR_IO,
                       "cuda: cannot allocate %zu bytes of pinned host memory (%s)", bytes,
                       cudaGetErrorName(e));
    }
    return 0;
}

extern "C" void kcu_host_free(void *p)
{
    if (p && cudaFreeHost(p) != cudaSuccess)
        cudaGetLastError();
}

extern "C" int kcu_copy_async(void *dst, const void *src, size_t bytes, void *stream)
{
    if (bytes)
        CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, (cudaStream_t)stream));
    return 0;
}

extern "C" int kcu_stream_sync(void *stream)
{
    CUDA_TRY(cudaStreamSynchronize((cudaStream_t)stream));
    return 0;
}

extern "C" int kcu_capture_begin(void *stream)
{
    /* thread-local: other threads of the process may use the runtime meanwhile */
    CUDA_TRY(cudaStreamBeginCapture((cudaStream_t)stream, cudaStreamCaptureModeThreadLocal));
    return 0;
}

extern "C" int kcu_capture_end(void *stream, int ok, void **exec)
{
    *exec = NULL;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture((cudaStream_t)stream, &graph);
    if (!ok) {
        /* the caller's launch failed half-way: end the capture, keep its error */
        if (graph)
            cudaGraphDestroy(graph);
        cudaGetLastError();
        return -1;
    }
    if (e != cudaSuccess || !graph) {
        cudaGetLastError();
        if (graph)
            cudaGraphDestroy(graph);
        return err_set(ERR_IO, "cuda graph: capture failed (%s)", cudaGetErrorName(e));
    }
    cudaGraphExec_t ge = NULL;
    e = cudaGraphInstantiate(&ge, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return err_set(ERR_IO, "cuda graph: instantiate failed (%s)", cudaGetErrorName(e));
    }
    *exec = (void *)ge;
    return 0;
}

extern "C" int kcu_graph_launch(void *exec, void *stream)
{
    CUDA_TRY(cudaGraphLaunch((cudaGraphExec_t)exec, (cudaStream_t)stream));
    return 0;
}

extern "C" void kcu_graph_free(void *exec)
{
    if (exec && cudaGraphExecDestroy((cudaGraphExec_t)exec) != cudaSuccess)
        cudaGetLastError();
}
