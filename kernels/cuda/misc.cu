/*
 * misc.cu - the small kernels of the whole-model forward pass (kernels_cuda_misc.h): embedding
 * gather, RMSNorm (1 + w), residual add, argmax, stream-ordered host copies.
 */
#include "kernels/cuda/cuda_check.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

extern "C" {
#include "common/err.h"
#include "kernels/kernels.h"
#include "kernels/kernels_cuda_misc.h"
}

#define LAUNCH_CHECK(what)                                                                         \
    do {                                                                                           \
        cudaError_t launch_e = cudaGetLastError();                                                 \
        if (launch_e != cudaSuccess)                                                               \
            return err_set(ERR_IO, "%s: launch failed: %s", what, cudaGetErrorName(launch_e));     \
    } while (0)

static cudaStream_t st(void *s) { return (cudaStream_t)s; }

/* ---- embedding: one block per token, threads stride over the row */
__global__ void embed_kernel(float *x, const void *table, int type, long vocab, long hidden,
                             const int32_t *tok)
{
    long t = blockIdx.x;
    int id = tok[t];
    float *row = x + t * hidden;
    if (id < 0 || (long)id >= vocab) {
        for (long i = threadIdx.x; i < hidden; i += blockDim.x)
            row[i] = __int_as_float(0x7fc00000);
        return;
    }
    size_t base = (size_t)id * (size_t)hidden;
    for (long i = threadIdx.x; i < hidden; i += blockDim.x) {
        float v;
        if (type == KERN_BF16)
            v = __bfloat162float(((const __nv_bfloat16 *)table)[base + i]);
        else if (type == KERN_F16)
            v = __half2float(((const __half *)table)[base + i]);
        else
            v = ((const float *)table)[base + i];
        row[i] = v;
    }
}

extern "C" int kcm_embed(float *x, const void *table, int type, long vocab, long hidden,
                         const int32_t *tok, long T, void *stream)
{
    if (T <= 0)
        return T == 0 ? 0 : err_set(ERR_INVAL, "cuda embed: T %ld", T);
    if (!x || !table || !tok || vocab <= 0 || hidden <= 0 || T > 0x7fffffffL)
        return err_set(ERR_INVAL, "cuda embed: bad arguments (vocab %ld, hidden %ld)", vocab,
                       hidden);
    if (type != KERN_F32 && type != KERN_BF16 && type != KERN_F16)
        return err_set(ERR_UNSUPPORTED, "cuda embed: table type %s", kern_dtype_name(type));
    embed_kernel<<<(unsigned)T, 256, 0, st(stream)>>>(x, table, type, vocab, hidden, tok);
    LAUNCH_CHECK("cuda embed");
    return 0;
}

/* ---- RMSNorm: one block per row; the sum of squares in fp32 by a block reduction */
#define NORM_THREADS 256
__device__ float block_sum(float v, float *red)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    int nw = blockDim.x / 32;
    v = lane < nw ? red[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads(); /* red is reused by the caller's next reduction */
    return v;
}

__global__ void rmsnorm_kernel(float *y, long ldy, const float *x, long ldx, const float *w, long n,
                               float eps)
{
    __shared__ float red[32];
    long r = blockIdx.x;
    const float *xr = x + r * ldx;
    float *yr = y + r * ldy;
    float ss = 0.0f;
    for (long i = threadIdx.x; i < n; i += blockDim.x)
        ss += xr[i] * xr[i];
    ss = block_sum(ss, red);
    float inv = rsqrtf(ss / (float)n + eps);
    /* every thread reads its own elements before writing them, so y == x is safe */
    for (long i = threadIdx.x; i < n; i += blockDim.x)
        yr[i] = xr[i] * inv * (1.0f + w[i]);
}

extern "C" int kcm_rmsnorm(float *y, long ldy, const float *x, long ldx, const float *w, long rows,
                           long n, float eps, void *stream)
{
    if (rows <= 0)
        return rows == 0 ? 0 : err_set(ERR_INVAL, "cuda rmsnorm: rows %ld", rows);
    if (!y || !x || !w || n <= 0 || ldx < n || ldy < n || rows > 0x7fffffffL)
        return err_set(ERR_INVAL, "cuda rmsnorm: bad arguments (n %ld, ldx %ld, ldy %ld)", n, ldx,
                       ldy);
    rmsnorm_kernel<<<(unsigned)rows, NORM_THREADS, 0, st(stream)>>>(y, ldy, x, ldx, w, n, eps);
    LAUNCH_CHECK("cuda rmsnorm");
    return 0;
}

/* ---- residual add */
__global__ void add_kernel(float *x, const float *y, size_t n)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        x[i] += y[i];
}

extern "C" int kcm_add(float *x, const float *y, size_t n, void *stream)
{
    if (n == 0)
        return 0;
    if (!x || !y)
        return err_set(ERR_INVAL, "cuda add: NULL pointer");
    size_t blocks = (n + 255) / 256;
    if (blocks > 65535)
        blocks = 65535;
    add_kernel<<<(unsigned)blocks, 256, 0, st(stream)>>>(x, y, n);
    LAUNCH_CHECK("cuda add");
    return 0;
}

/* ---- one expert computed apart, mixed in with its routing weight */
__global__ void expert_mix_kernel(float *y, const float *ye, const int *idx, const float *wt, int k,
                                  int expert, long hidden)
{
    long t = blockIdx.x;
    float w = 0.0f;
    for (int j = 0; j < k; j++)
        if (idx[t * k + j] == expert)
            w += wt[t * k + j];
    if (w == 0.0f)
        return;
    for (long i = threadIdx.x; i < hidden; i += blockDim.x)
        y[t * hidden + i] += w * ye[t * hidden + i];
}

extern "C" int kcm_expert_mix(float *y, const float *ye, const int *idx, const float *wt, long T,
                              int k, int expert, long hidden, void *stream)
{
    if (T <= 0)
        return T == 0 ? 0 : err_set(ERR_INVAL, "cuda expert mix: T %ld", T);
    if (!y || !ye || !idx || !wt || k < 1 || hidden <= 0 || T > 0x7fffffffL)
        return err_set(ERR_INVAL, "cuda expert mix: bad arguments (k %d, hidden %ld)", k, hidden);
    expert_mix_kernel<<<(unsigned)T, 256, 0, st(stream)>>>(y, ye, idx, wt, k, expert, hidden);
    LAUNCH_CHECK("cuda expert mix");
    return 0;
}

/* ---- argmax: one block per row; (value, index) pairs reduced keeping the first maximum */
__device__ void better(float &bv, long &bi, float v, long i)
{
    /* NaN never wins; the lower index wins ties */
    if (v != v)
        return;
    if (bi < 0 || v > bv || (v == bv && i < bi)) {
        bv = v;
        bi = i;
    }
}

__global__ void argmax_kernel(int32_t *out, const float *x, long n)
{
    __shared__ float sv[32];
    __shared__ long si[32];
    const float *xr = x + (long)blockIdx.x * n;
    float bv = 0.0f;
    long bi = -1;
    for (long i = threadIdx.x; i < n; i += blockDim.x)
        better(bv, bi, xr[i], i);
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        long oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (oi >= 0)
            better(bv, bi, ov, oi);
    }
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) {
        sv[warp] = bv;
        si[warp] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float fv = 0.0f;
        long fi = -1;
        for (int k = 0; k < (int)(blockDim.x / 32); k++)
            if (si[k] >= 0)
                better(fv, fi, sv[k], si[k]);
        out[blockIdx.x] = (int32_t)fi;
    }
}

extern "C" int kcm_argmax(int32_t *out, const float *x, long rows, long n, void *stream)
{
    if (rows <= 0)
        return rows == 0 ? 0 : err_set(ERR_INVAL, "cuda argmax: rows %ld", rows);
    if (!out || !x || n <= 0 || n > 0x7fffffffL || rows > 0x7fffffffL)
        return err_set(ERR_INVAL, "cuda argmax: bad arguments (n %ld)", n);
    argmax_kernel<<<(unsigned)rows, 1024, 0, st(stream)>>>(out, x, n);
    LAUNCH_CHECK("cuda argmax");
    return 0;
}

/* ---- host copies ordered on the stream (the backend's stream is non-blocking, so a plain
 * cudaMemcpy would not wait for the kernels enqueued on it) */
extern "C" int kcm_h2d(void *dst_dev, const void *src_host, size_t bytes, void *stream)
{
    if (!bytes)
        return 0;
    CUDA_TRY(cudaMemcpyAsync(dst_dev, src_host, bytes, cudaMemcpyHostToDevice, st(stream)));
    CUDA_TRY(cudaStreamSynchronize(st(stream)));
    return 0;
}

extern "C" int kcm_d2h(void *dst_host, const void *src_dev, size_t bytes, void *stream)
{
    if (!bytes)
        return 0;
    CUDA_TRY(cudaMemcpyAsync(dst_host, src_dev, bytes, cudaMemcpyDeviceToHost, st(stream)));
    CUDA_TRY(cudaStreamSynchronize(st(stream)));
    return 0;
}
