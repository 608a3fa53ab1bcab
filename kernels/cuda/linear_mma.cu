/*
 * linear_mma.cu - y = x W^T for many tokens (prefill) on tensor cores.
 *
 * A block computes a 64-token x 64-row tile with 4 warps (2 x 2, 32 x 32 each) in k-steps of 32:
 * the activations are rounded to bf16 and the weights dequantized in registers (16-byte chunks,
 * codes and scale as in linear.cuh, then rounded to bf16) into padded shared-memory tiles, and
 * each warp runs mma.sync m16n8k16 (bf16 in, fp32 accumulate). The next k-step's global loads are
 * issued before the current step's MMAs, so loads overlap the math. Rounding both operands to
 * bf16 is what W4A16 kernels (Marlin) do; the tests allow for it (a few 1e-3 of the RMS).
 * Shapes the kernel does not take (k not a multiple of 32, rows not whole 16-byte chunks) use the
 * decode kernel over blocks of 16 tokens (kcu_matmul_blocks).
 */
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/linear.cuh"

#include <cuda_bf16.h>

int kcu_matmul_blocks(const struct kcu_weight *w, const float *x, long T, float *y,
                      cudaStream_t s); /* linear.cu */

#define GM 64   /* tokens per block */
#define GN 64   /* weight rows per block */
#define GK 32   /* k per step */
#define GPAD 40 /* shared row stride in bf16: 80 bytes, conflict-free fragment loads */

template <int WT, int ST>
__global__ void __launch_bounds__(128)
    k_gemm_mma(const uint8_t *W, size_t rb, const uint8_t *S, long ng, long group, long n, long k,
               const float *x, long T, float *y)
{
    constexpr int V = kcu_vpc(WT);
    constexpr int P = GK / V;                /* chunks per row per step */
    constexpr int BL = (GN * P + 127) / 128; /* chunks per thread */
    constexpr bool Q = WT == KERN_I4 || WT == KERN_I8;
    constexpr size_t ssz = ST == KERN_F32 ? 4 : 2;
    __shared__ __align__(16) uint32_t As[GM][GPAD / 2];
    __shared__ __align__(16) uint32_t Bs[GN][GPAD / 2];
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const long m0 = (long)blockIdx.y * GM, n0 = (long)blockIdx.x * GN;
    const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;
    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int q = 0; q < 4; q++)
                acc[i][j][q] = 0.f;

    float4 xr[4];
    uint4 wr[BL];
    float wsc[BL];
    /* global -> registers for step k0 */
    auto load = [&](long k0) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int f = tid + 128 * i, row = f / 8, c4 = f % 8;
            long m = m0 + row;
            xr[i] = m < T ? __ldg((const float4 *)(x + m * k + k0) + c4)
                          : make_float4(0.f, 0.f, 0.f, 0.f);
        }
#pragma unroll
        for (int i = 0; i < BL; i++) {
            int q = tid + 128 * i, row = q / P, part = q % P;
            long nn = n0 + row;
            bool ok = q < GN * P && nn < n;
            wr[i] =
                ok ? __ldg((const uint4 *)(W + nn * rb) + k0 / V + part) : make_uint4(0, 0, 0, 0);
            wsc[i] = 0.f;
            if (ok)
                wsc[i] =
                    Q ? kcu_scale<ST>(S + (size_t)nn * ng * ssz, (k0 + part * V) / group) : 1.0f;
        }
    };
    /* registers -> bf16 shared tiles */
    auto store = [&]() {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int f = tid + 128 * i, row = f / 8, c4 = f % 8;
            As[row][c4 * 2] = kcu_pack_bf16(xr[i].x, xr[i].y);
            As[row][c4 * 2 + 1] = kcu_pack_bf16(xr[i].z, xr[i].w);
        }
#pragma unroll
        for (int i = 0; i < BL; i++) {
            int q = tid + 128 * i, row = q / P, part = q % P;
            if (q < GN * P) {
                float v[V];
                kcu_unpack<WT>(wr[i], v);
#pragma unroll
                for (int j = 0; j < V / 2; j++)
                    Bs[row][part * (V / 2) + j] =
                        kcu_pack_bf16(v[2 * j] * wsc[i], v[2 * j + 1] * wsc[i]);
            }
        }
    };

    load(0);
    for (long k0 = 0; k0 < k; k0 += GK) {
        store();
        __syncthreads();
        if (k0 + GK < k)
            load(k0 + GK);
#pragma unroll
        for (int ks = 0; ks < GK; ks += 16) {
            const int c = ks / 2 + (lane & 3); /* in uint32 units: columns ks + 2*(lane&3) */
            uint32_t a[2][4], b[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                int r = wm + mi * 16 + (lane >> 2);
                a[mi][0] = As[r][c];
                a[mi][1] = As[r + 8][c];
                a[mi][2] = As[r][c + 4];
                a[mi][3] = As[r + 8][c + 4];
            }
#pragma unroll
            for (int ni = 0; ni < 4; ni++) {
                int r = wn + ni * 8 + (lane >> 2);
                b[ni][0] = Bs[r][c];
                b[ni][1] = Bs[r][c + 4];
            }
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++)
                    kcu_mma_bf16(acc[mi][ni], a[mi], b[ni]);
        }
        __syncthreads();
    }
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
