/*
 * gdn_simd.h - internal to kernels/cpu: the per-ISA building blocks of the delta rule (gdn.c)
 * and of attention prefill (attn.c): a register-tiled small GEMM, the unit lower-triangular
 * inverse of the chunked form and the column-blocked recurrence. Not for use outside kernels/.
 */
#ifndef LODE_KERNELS_CPU_GDN_SIMD_H
#define LODE_KERNELS_CPU_GDN_SIMD_H

/* gemm tri modes: which part of a square-ish product is needed */
#define GDN_TRI_NONE 0
#define GDN_TRI_N 1 /* row i of the result is only needed at columns <= i */
#define GDN_TRI_K 2 /* row i of a is zero past column i (a lower-triangular left factor) */
#define GDN_A_T 4   /* or'ed in: a is stored transposed, element (i, p) at a[p lda + i] */

#define GDN_INV_MAX 64 /* the largest n tri_inv takes (the chunk size limit) */

struct gdn_ops {
    /* c[m][n] = beta c + a[m][k] b[k][n] (row-major, leading dimensions given; beta 0 does not
     * read c). The result of each element depends only on its row and column, never on m or n,
     * so splitting rows over callers does not change it. */
    void (*gemm)(float *c, long ldc, const float *a, long lda, const float *b, long ldb, long m,
                 long n, long k, float beta, int tri);
    /* t[n][n] = (I + l)^-1 for l strictly lower-triangular (only j < i read), n <= GDN_INV_MAX;
     * t is written in full, zeros above the diagonal. */
    void (*tri_inv)(float *t, const float *l, int n, long ld);
    /* The delta rule for one head over n tokens, column block by column block of the state
     * S [dk][dv]: q, k [n][dk] (normalised), v token t at v + t ld_v, eg = e^g, bt = beta [n],
     * out token t at o + t ld_o. One pass over S per token (update, read-out and the next
     * token's S^T k fused). */
    void (*rec)(float *S, long dk, long dv, const float *q, const float *k, long n, const float *v,
                long ld_v, const float *eg, const float *bt, float *o, long ld_o);
    /* dst[n] = src[n] mul / sqrt(sum src^2 + 1e-6) (q and k's L2 normalisation) */
    void (*norm)(float *dst, const float *src, long n, float mul);
    /* One block of attention's online softmax, by columns: s [nb][ld] holds the scores of nb
     * positions (rows) for nr queries (columns, -inf where masked); per column r, m[r] becomes
     * max(m[r], the block's max), corr[r] = e^(old m - new m), s = e^(s - new m) and
     * l[r] = l[r] corr[r] + the column's sum. e^x for x < -87 is 0. */
    void (*softmax_cols)(float *s, long ld, long nb, long nr, float *m, float *l, float *corr);
};
extern const struct gdn_ops gdn_ops_avx2, gdn_ops_avx512;

#endif
