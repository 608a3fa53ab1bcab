/*
 * ckd.h - checked integer arithmetic for every number that comes from a file,
 * a config or the model (shapes, offsets, counts). Each returns 1 on overflow
 * and leaves *r unspecified, 0 on success (the C23 <stdckdint.h> convention).
 *
 * Usage:
 *     size_t bytes;
 *     if (ckd_mul_sz(&bytes, rows, cols) || ckd_mul_sz(&bytes, bytes, elsize))
 *         return err_set(ERR_INVAL, "%s: shape too large", name);
 */
#ifndef LODE_COMMON_CKD_H
#define LODE_COMMON_CKD_H

#include <stddef.h>
#include <stdint.h>

static inline int ckd_add_sz(size_t *r, size_t a, size_t b)
{
    return __builtin_add_overflow(a, b, r);
}
static inline int ckd_mul_sz(size_t *r, size_t a, size_t b)
{
    return __builtin_mul_overflow(a, b, r);
}
static inline int ckd_add_u64(uint64_t *r, uint64_t a, uint64_t b)
{
    return __builtin_add_overflow(a, b, r);
}
static inline int ckd_mul_u64(uint64_t *r, uint64_t a, uint64_t b)
{
    return __builtin_mul_overflow(a, b, r);
}
static inline int ckd_add_i64(int64_t *r, int64_t a, int64_t b)
{
    return __builtin_add_overflow(a, b, r);
}
static inline int ckd_mul_i64(int64_t *r, int64_t a, int64_t b)
{
    return __builtin_mul_overflow(a, b, r);
}

/* Product of n dimensions; 1 on overflow or a negative dimension. */
static inline int ckd_prod_u64(uint64_t *r, const int64_t *dims, int n)
{
    uint64_t p = 1;
    for (int i = 0; i < n; i++) {
        if (dims[i] < 0 || ckd_mul_u64(&p, p, (uint64_t)dims[i]))
            return 1;
    }
    *r = p;
    return 0;
}

#endif
