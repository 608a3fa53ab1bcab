/*
 * linear_mma.cu - y = x W^T for many tokens (prefill) on tensor cores.
 *
 * A block computes a 64-token x 64-row tile with 4 warps (2 x 2, 32 x 32 each) in k-steps of 32:
 * the activations are rounded to bf16 and the weights dequantized in registers (16-byte chunks,
 * codes and scale as in linear.cuh, then rounded to bf16) into padded shared-memory tiles, and
 * each warp runs mma.sync m16n8k16 (bf16 in, fp32 accumulate). The next k-step's global loads are
 * issued before the current step's MMAs, so loads overlap the math. The tile loop is
 * linear.cuh's kcu_tile_gemm, shared with moe_prefill.cu. Rounding both operands to
 * bf16 is what W4A16 kernels (Marlin) do; the tests allow for it (a few 1e-3 of the RMS).
 * Shapes the kernel does not take (k not a multiple of 32, rows not whole 16-byte chunks) use the
 * decode kernel over blocks of 16 tokens (kcu_matmul_blocks).
 */
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/linear.cuh"

#include <cuda_bf16.h>

int kcu_matmul_blocks(const struct kcu_weight *w, const float *x, long T, float *y,
                      cudaStream_t s); /* linear.cu */

#define GM KCU_TM /* tokens per block */
#define GN KCU_TN /* weight rows per block */
#define GK KCU_TK /* k per step */

template <int WT, int ST>
__global__ void __launch_bounds__(128)
    k_gemm_mma(const uint8_t *W, size_t rb, const uint8_t *S, long ng, long group, long n, long k,
               const float *x, long T, float *y)
{
    constexpr bool Q = WT == KERN_I4 || WT == KERN_I8;
    constexpr size_t ssz = ST == KERN_F32 ? 4 : 2;
    __shared__ __align__(16) uint32_t As[GM][KCU_TPAD];
    __shared__ __align__(16) uint32_t Bs[GN][KCU_TPAD];
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const long m0 = (long)blockIdx.y * GM, n0 = (long)blockIdx.x * GN;
    const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
    /* this thread's rows of x (tokens past T: zeros) and of W (rows past n: zeros) */
    kcu_tile_src<WT> src;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        long m = m0 + kcu_tile_arow(tid, i);
        src.a[i] = m < T ? x + m * k : NULL;
    }
#pragma unroll
    for (int i = 0; i < kcu_tile_src<WT>::BL; i++) {
        int r = kcu_tile_brow<WT>(tid, i);
        long nn = n0 + r;
        bool ok = r >= 0 && nn < n;
        src.b[i] = ok ? W + nn * rb : NULL;
        src.s[i] = ok && Q ? S + (size_t)nn * ng * ssz : NULL;
    }
    float acc[2][4][4];
    kcu_tile_gemm<WT, ST>(src, k, group, As, Bs, acc);
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++) {
            long m = m0 + wm + mi * 16 + (lane >> 2);
            long c = n0 + wn + ni * 8 + (lane & 3) * 2;
#pragma unroll
            for (int h = 0; h < 2; h++) {
                long mm = m + h * 8;
                if (mm < T) {
                    if (c < n)
                        y[mm * n + c] = acc[mi][ni][2 * h];
                    if (c + 1 < n)
                        y[mm * n + c + 1] = acc[mi][ni][2 * h + 1];
                }
            }
        }
}

template <int WT, int ST>
static int launch_gemm(const struct kcu_weight *w, const float *x, long T, float *y, cudaStream_t s)
{
    dim3 grid((unsigned)((w->n + GN - 1) / GN), (unsigned)((T + GM - 1) / GM));
    long ng = w->k / w->group;
    k_gemm_mma<WT, ST><<<grid, 128, 0, s>>>((const uint8_t *)w->data, kcu_row_bytes(WT, w->k),
                                            (const uint8_t *)w->scale, ng, w->group, w->n, w->k, x,
                                            T, y);
    CUDA_TRY(cudaGetLastError());
    return 0;
}

int kcu_gemm_prefill(const struct kcu_weight *w, const float *x, long T, float *y, cudaStream_t s)
{
    int v = kcu_vpc(w->type), q = w->type == KERN_I4 || w->type == KERN_I8;
    bool ok = w->k % GK == 0 && !((uintptr_t)x & 15) && !((uintptr_t)w->data & 15) &&
              (!q || w->group % v == 0) && (w->n + GN - 1) / GN <= 2147483647L &&
              (T + GM - 1) / GM <= 65535;
    if (!ok)
        return kcu_matmul_blocks(w, x, T, y, s);
    int f32s = w->scale_type == KERN_F32;
    switch (w->type) {
    case KERN_I4:
        return f32s ? launch_gemm<KERN_I4, KERN_F32>(w, x, T, y, s)
                    : launch_gemm<KERN_I4, KERN_BF16>(w, x, T, y, s);
    case KERN_I8:
        return f32s ? launch_gemm<KERN_I8, KERN_F32>(w, x, T, y, s)
                    : launch_gemm<KERN_I8, KERN_BF16>(w, x, T, y, s);
    case KERN_BF16: return launch_gemm<KERN_BF16, KERN_BF16>(w, x, T, y, s);
    default: return launch_gemm<KERN_F32, KERN_F32>(w, x, T, y, s);
    }
}
