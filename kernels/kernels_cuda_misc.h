/*
 * kernels_cuda_misc.h - the small CUDA kernels the whole-model forward pass needs besides the
 * linear, MoE and sequence kernels (issue #8): embedding gather, zero-centred RMSNorm (1 + w),
 * residual add, argmax, and host<->device copies ordered on the backend's stream.
 *
 * Same conventions as kernels_cuda.h: device pointers, enqueued on `stream` (a cudaStream_t,
 * NULL the default stream), 0 or a negative ERR_* with err_set(). Each computes exactly what its
 * CPU counterpart computes (kern_convert of an embedding row, kern_rmsnorm, the residual loop of
 * engine/forward.c, kern_argmax). Built without CUDA, kernels/backend.c answers ERR_UNSUPPORTED.
 *
 * File: kernels/cuda/misc.cu.
 */
#ifndef LODE_KERNELS_CUDA_MISC_H
#define LODE_KERNELS_CUDA_MISC_H

#include <stddef.h>
#include <stdint.h>

/* x[t][:] = table[tok[t]][:] as fp32 for t < T; table [vocab][hidden] of type KERN_F32, KERN_BF16
 * or KERN_F16; tok on the device. Ids outside [0, vocab) give a row of NaN (the host checks ids
 * before the launch). */
int kcm_embed(float *x, const void *table, int type, long vocab, long hidden, const int32_t *tok,
              long T, void *stream);

/* kern_rmsnorm on device: y = x * rsqrt(mean(x^2) + eps) * (1 + w) over rows of n, row r at
 * x + r*ldx / y + r*ldy (y may equal x). */
int kcm_rmsnorm(float *y, long ldy, const float *x, long ldx, const float *w, long rows, long n,
                float eps, void *stream);

/* x[i] += y[i] for i < n. */
int kcm_add(float *x, const float *y, size_t n, void *stream);

/* Adds one expert computed apart (an expert of another precision than the rest of its layer,
 * e.g. the int8 super-expert among int4 ones): y[t][i] += w * ye[t][i] with w the sum of wt[t][j]
 * over the j < k where idx[t][j] == expert (0 when the token did not pick it). */
int kcm_expert_mix(float *y, const float *ye, const int *idx, const float *wt, long T, int k,
                   int expert, long hidden, void *stream);

/* out[r] = kern_argmax(x + r*n, n) for r < rows (first index on ties, NaN never wins; -1 when all
 * are NaN); out on the device. */
int kcm_argmax(int32_t *out, const float *x, long rows, long n, void *stream);

/* Copies ordered after the work already enqueued on stream; they return when the copy is done
 * (host memory may be pageable). */
int kcm_h2d(void *dst_dev, const void *src_host, size_t bytes, void *stream);
int kcm_d2h(void *dst_host, const void *src_dev, size_t bytes, void *stream);

#endif
