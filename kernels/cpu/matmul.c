/*
 * matmul.c - y = x W^T for the checkpoint's weight layouts: validation, the scalar reference
 * (the oracle every fast path is tested against) and kern_matmul.
 *
 * Work is split over output rows in blocks of KERN_MM_ROWS, handed out by the scheduler in
 * moe.c (kern_matmul is kern_matmul_n of one weight); each ISA kernel processes its rows the
 * same way whatever block range it gets, so results do not depend on the thread count.
 */
#include "kernels/cpu/kern_cpu.h"

#include "common/ckd.h"
#include "common/err.h"

#include <string.h>

int kern_weight_check(const struct kern_weight *w)
{
    if (!w || !w->data)
        return err_set(ERR_INVAL, "weight: no data");
    if (w->n < 1 || w->k < 1 || w->n > (1L << 40) || w->k > (1L << 30))
        return err_set(ERR_INVAL, "weight: bad shape [%ld, %ld]", w ? w->n : 0, w ? w->k : 0);
    switch (w->type) {
    case KERN_F32:
    case KERN_BF16: return 0;
    case KERN_I4:
    case KERN_I8: {
        long pack = w->type == KERN_I4 ? 8 : 4;
        if (w->k % pack)
            return err_set(ERR_INVAL, "weight %s: k = %ld is not a multiple of %ld",
                           kern_dtype_name(w->type), w->k, pack);
        if (w->group < pack || w->group % pack || w->k % w->group)
            return err_set(ERR_INVAL, "weight %s: group %ld does not divide k = %ld in whole words",
                           kern_dtype_name(w->type), w->group, w->k);
        if (!w->scale)
            return err_set(ERR_INVAL, "weight %s: no scales", kern_dtype_name(w->type));
        if (w->scale_type != KERN_BF16 && w->scale_type != KERN_F16 && w->scale_type != KERN_F32)
            return err_set(ERR_INVAL, "weight %s: scale type %s not supported",
                           kern_dtype_name(w->type), kern_dtype_name(w->scale_type));
        return 0;
    }
    default: return err_set(ERR_INVAL, "weight: type %s not supported", kern_dtype_name(w->type));
    }
}

size_t kern_weight_bytes(const struct kern_weight *w)
{
    size_t n = (size_t)w->n, k = (size_t)w->k;
    switch (w->type) {
    case KERN_F32: return n * k * 4;
    case KERN_BF16: return n * k * 2;
    case KERN_I4:
    case KERN_I8:
        return n * k / (w->type == KERN_I4 ? 2 : 1) +
               n * (k / (size_t)w->group) * (w->scale_type == KERN_F32 ? 4 : 2);
    default: return 0;
    }
}

float kern_scale_at(const struct kern_weight *w, long idx)
{
    switch (w->scale_type) {
    case KERN_F32: return ((const float *)w->scale)[idx];
    case KERN_F16: return kern_f16_to_f32(((const uint16_t *)w->scale)[idx]);
    default: return kern_bf16f(((const uint16_t *)w->scale)[idx]);
    }
}

void kern_dequant_row(const struct kern_weight *w, long r, float *out)
{
    long k = w->k;
    switch (w->type) {
    case KERN_F32: memcpy(out, (const float *)w->data + r * k, (size_t)k * 4); return;
    case KERN_BF16: {
        const uint16_t *p = (const uint16_t *)w->data + r * k;
        for (long i = 0; i < k; i++)
            out[i] = kern_bf16f(p[i]);
        return;
    }
    case KERN_I4:
    case KERN_I8: {
        int bits = w->type == KERN_I4 ? 4 : 8, per = 32 / bits;
        uint32_t mask = (1u << bits) - 1, bias = 1u << (bits - 1);
        const uint32_t *p = (const uint32_t *)w->data + r * (k / per);
        long ng = k / w->group;
        for (long i = 0; i < k; i++) {
            uint32_t code = (p[i / per] >> ((i % per) * bits)) & mask;
            float s = kern_scale_at(w, r * ng + i / w->group);
            out[i] = (float)((int)code - (int)bias) * s;
        }
        return;
    }
    }
}

size_t kern_mm_scratch(long k)
{
    size_t kp = ((size_t)k + 127) & ~(size_t)127;
    /* dequantized row block + a permuted/padded activation row + the scales of 4 rows (int8
     * group 16: 4 x k / 16) + the prefill kernels' partial sums (64 tokens x 16 rows x 16
     * lanes) */
    return (KERN_MM_ROWS * kp + kp + 256 + kp / 4 + 64 + 64 * 16 * 16) * sizeof(float);
}

/* The oracle: exact dequantization, double accumulation. */
void kern_mm_scalar(const struct kern_weight *w, const float *x, long T, float *y, long r0, long r1,
                    void *scratch)
{
    float *row = scratch;
    long k = w->k, n = w->n;
    for (long r = r0; r < r1; r++) {
        kern_dequant_row(w, r, row);
        for (long t = 0; t < T; t++) {
            const float *xt = x + t * k;
            double s = 0;
            for (long i = 0; i < k; i++)
                s += (double)row[i] * xt[i];
            y[t * n + r] = (float)s;
        }
    }
}

kern_mm_fn kern_mm_for(int isa)
{
    return isa == KERN_ISA_AVX512 ? kern_mm_avx512
           : isa == KERN_ISA_AVX2 ? kern_mm_avx2
                                  : kern_mm_scalar;
}

int kern_matmul(struct kern_cpu *c, const struct kern_weight *w, const float *x, long T, float *y)
{
    int rc = kern_weight_check(w);
    if (rc < 0)
        return rc;
    if (T < 0 || (T > 0 && (!x || !y)))
        return err_set(ERR_INVAL, "matmul: %ld tokens", T);
    /* one task of the scheduler in moe.c (claimed row blocks, see there) */
    return kern_matmul_n(c, 1, &w, x, T, &y);
}
