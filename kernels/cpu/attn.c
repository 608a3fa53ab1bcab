/*
 * attn.c - causal GQA attention over a KV cache of F32, BF16 or FP8 rows.
 *
 * Reference (ISA scalar): for each query, every score, a max-subtracted softmax and the weighted
 * sum of V, accumulated in double. Fast paths, both the online softmax over blocks of 64
 * positions:
 * - decode (T <= 4): one token against chunks of positions, all query heads of a kv head
 *   together (scores by dot products, P V with the accumulators in registers);
 * - prefill: tiles of up to 64 query rows (a few tokens x the query heads of one kv head)
 *   against 64 positions, S^T = K Q^T and O += P V as register-tiled GEMMs (gdn_simd.h), so each
 *   K/V row is converted and loaded once per tile instead of once per token.
 * Work items are fixed by the shapes, never by the thread count, so results do not depend on it.
 */
#include "kernels/cpu/gdn_simd.h"
#include "kernels/cpu/kern_cpu.h"

#include "common/ckd.h"
#include "common/err.h"
#include "common/pool.h"

#include <math.h>
#include <string.h>

#define ATTN_BLOCK 64

static size_t elem_size(int type) { return type == KERN_F32 ? 4 : type == KERN_BF16 ? 2 : 1; }

static void attn_ref_one(const struct kern_attn *a, long t, int h, float *scr)
{
    long np = a->pos0 + t + 1, hd = a->head_dim;
    int kvh = h / (a->n_q / a->n_kv);
    size_t es = elem_size(a->kv_type), row = (size_t)a->n_kv * (size_t)hd;
    const float *q = a->q + t * a->q_tok + h * a->q_head;
    float *kr = scr, *s = scr + hd; /* s [np] doubles as scores */
    double mx = -INFINITY;
    for (long p = 0; p < np; p++) {
        kern_vec_scalar.load(kr, (const char *)a->k + (p * row + (size_t)kvh * hd) * es, a->kv_type,
                             hd, a->k_scale);
        double d = 0;
        for (long i = 0; i < hd; i++)
            d += (double)q[i] * kr[i];
        s[p] = (float)(d * a->scale);
        if (s[p] > mx)
            mx = s[p];
    }
    double sum = 0;
    for (long p = 0; p < np; p++)
        sum += exp(s[p] - mx);
    float *o = a->out + (t * a->n_q + h) * hd;
    double *acc = (double *)(scr + ((hd + np + 1) & ~1L)); /* 8-byte aligned */
    for (long i = 0; i < hd; i++)
        acc[i] = 0;
    for (long p = 0; p < np; p++) {
        double pr = exp(s[p] - mx) / sum;
        kern_vec_scalar.load(kr, (const char *)a->v + (p * row + (size_t)kvh * hd) * es, a->kv_type,
                             hd, a->v_scale);
        for (long i = 0; i < hd; i++)
            acc[i] += pr * kr[i];
    }
    for (long i = 0; i < hd; i++)
        o[i] = (float)acc[i];
}

/* Fast path, one work item = (token, kv head, chunk of positions) for all the query heads of
 * that kv head, so each K/V row is converted once and used G times. Leaves per head the running
 * max m, the sum l and the unnormalised accumulator acc[hd] in part[h] (hd + 2 floats). */
static void attn_fast_item(const struct kern_attn *a, const struct kern_vec *vo, long t, int g,
                           long p_lo, long p_hi, float *part, float *scr)
{
    long hd = a->head_dim;
    int G = a->n_q / a->n_kv;
    size_t es = elem_size(a->kv_type), row = (size_t)a->n_kv * (size_t)hd;
    const char *kb = (const char *)a->k + (size_t)g * hd * es;
    const char *vb = (const char *)a->v + (size_t)g * hd * es;
    /* q [G][hd], buf [hd], s [G][BLOCK], vbuf [BLOCK][hd] */
    float *q = scr, *buf = q + G * hd, *s = buf + hd, *vbuf = s + G * ATTN_BLOCK;
    for (int h = 0; h < G; h++) {
        /* q pre-scaled by the logit scale and the K scale, so K rows load unscaled */
        vo->load(q + h * hd, a->q + t * a->q_tok + (g * G + h) * a->q_head, KERN_F32, hd,
                 a->scale * a->k_scale);
        float *ph = part + h * (hd + 2);
        ph[0] = -INFINITY;
        ph[1] = 0;
        memset(ph + 2, 0, (size_t)hd * sizeof(float));
    }
    for (long p0 = p_lo; p0 < p_hi; p0 += ATTN_BLOCK) {
        long nb = p_hi - p0 < ATTN_BLOCK ? p_hi - p0 : ATTN_BLOCK;
        for (long i = 0; i < nb; i++) {
            const char *kr = kb + (size_t)(p0 + i) * row * es;
            const float *kf = (const float *)kr;
            if (a->kv_type != KERN_F32) {
                vo->load(buf, kr, a->kv_type, hd, 1.0f);
                kf = buf;
            }
            for (int h = 0; h < G; h++)
                s[h * ATTN_BLOCK + i] = vo->dot(q + h * hd, kf, hd);
        }
        for (int h = 0; h < G; h++) {
            float *ph = part + h * (hd + 2), bm = -INFINITY;
            for (long i = 0; i < nb; i++)
                bm = s[h * ATTN_BLOCK + i] > bm ? s[h * ATTN_BLOCK + i] : bm;
            if (bm > ph[0]) {
                if (ph[1] > 0) {
                    float corr = expf(ph[0] - bm);
                    vo->scale(ph + 2, corr, hd);
                    ph[1] *= corr;
                }
                ph[0] = bm;
            }
            for (long i = 0; i < nb; i++) { /* s becomes the weights e^(s - m) */
                float e = expf(s[h * ATTN_BLOCK + i] - ph[0]);
                s[h * ATTN_BLOCK + i] = e;
                ph[1] += e;
            }
        }
        /* P V: the block's V rows (converted once into vbuf when not f32), each head's
         * accumulator in registers across the rows */
        const float *vrows = (const float *)(vb + (size_t)p0 * row * es);
        long vld = (long)row;
        if (a->kv_type != KERN_F32) {
            for (long i = 0; i < nb; i++)
                vo->load(vbuf + i * hd, vb + (size_t)(p0 + i) * row * es, a->kv_type, hd, 1.0f);
            vrows = vbuf;
            vld = hd;
        }
        for (int h = 0; h < G; h++)
            vo->axpy_rows(part + h * (hd + 2) + 2, s + h * ATTN_BLOCK, vrows, vld, nb, hd);
    }
}

/* Prefill tiles: query rows (tokens x query heads of one kv head) and positions per tile. */
#define ATTN_TILE_ROWS 64
#define ATTN_TILE_POS 64

static long tile_tokens(int G) { return G >= ATTN_TILE_ROWS ? 1 : ATTN_TILE_ROWS / G; }

/* scratch floats of one prefill tile */
static size_t tile_scratch(long hd, int G)
{
    size_t R = (size_t)tile_tokens(G) * (size_t)G, P = ATTN_TILE_POS;
    return 2 * R * (size_t)hd + 2 * P * (size_t)hd + P * R + 3 * R + 16;
}

/* Tokens t0 .. t0+nt-1, kv head g: row r of the tile is token t0 + r / G, query head
 * g G + r % G. Q is held transposed (Qt [hd][R]) so that a block's scores come out as
 * S^T [positions][R] = K Qt with K's rows as the broadcast operand, read in place when F32. */
static void attn_tile_item(const struct kern_attn *a, const struct gdn_ops *op,
                           const struct kern_vec *vo, long t0, long nt, int g, float *scr)
{
    long hd = a->head_dim;
    int G = a->n_q / a->n_kv;
    long R = nt * G;
    size_t es = elem_size(a->kv_type), row = (size_t)a->n_kv * (size_t)hd;
    const char *kb = (const char *)a->k + (size_t)g * hd * es;
    const char *vb = (const char *)a->v + (size_t)g * hd * es;
    float *Qt = scr, *Kb = Qt + hd * R, *Vb = Kb + ATTN_TILE_POS * hd,
          *ST = Vb + ATTN_TILE_POS * hd;
    float *acc = ST + ATTN_TILE_POS * R, *m = acc + R * hd, *l = m + R, *corr = l + R;
    float qs = a->scale * a->k_scale; /* K rows then load unscaled */
    /* the query rows, scaled, into acc (free until the loop), then transposed with sequential
     * stores */
    for (long r = 0; r < R; r++) {
        vo->load(acc + r * hd, a->q + (t0 + r / G) * a->q_tok + (g * G + r % G) * a->q_head,
                 KERN_F32, hd, qs);
        m[r] = -INFINITY;
        l[r] = 0;
    }
    for (long d = 0; d < hd; d++)
        for (long r = 0; r < R; r++)
            Qt[d * R + r] = acc[r * hd + d];
    memset(acc, 0, (size_t)(R * hd) * sizeof(float));
    long p_end = a->pos0 + t0 + nt; /* the last token sees positions < p_end */
    for (long p0 = 0; p0 < p_end; p0 += ATTN_TILE_POS) {
        long nb = p_end - p0 < ATTN_TILE_POS ? p_end - p0 : ATTN_TILE_POS;
        const float *K = (const float *)(kb + (size_t)p0 * row * es), *V;
        long ldk = (long)row, ldv = (long)row;
        if (a->kv_type != KERN_F32) {
            for (long i = 0; i < nb; i++)
                vo->load(Kb + i * hd, kb + (size_t)(p0 + i) * row * es, a->kv_type, hd, 1.0f);
            K = Kb, ldk = hd;
        }
        op->gemm(ST, R, K, ldk, Qt, R, nb, R, hd, 0, GDN_TRI_NONE);
        /* causal: row r sees positions <= pos0 + t0 + r / G; only the last blocks cross it */
        if (p0 + nb - 1 > a->pos0 + t0)
            for (long r = 0; r < R; r++) {
                long c = a->pos0 + t0 + r / G + 1 - p0; /* the row's first hidden position */
                for (c = c > 0 ? c : 0; c < nb; c++)
                    ST[c * R + r] = -INFINITY;
            }
        op->softmax_cols(ST, R, nb, R, m, l, corr);
        for (long r = 0; r < R; r++)
            if (corr[r] != 1.0f)
                vo->scale(acc + r * hd, corr[r], hd);
        V = (const float *)(vb + (size_t)p0 * row * es);
        if (a->kv_type != KERN_F32) {
            for (long i = 0; i < nb; i++)
                vo->load(Vb + i * hd, vb + (size_t)(p0 + i) * row * es, a->kv_type, hd, 1.0f);
            V = Vb, ldv = hd;
        }
        op->gemm(acc, hd, ST, R, V, ldv, R, hd, nb, 1.0f, GDN_A_T);
    }
    for (long r = 0; r < R; r++) {
        float *o = a->out + ((t0 + r / G) * a->n_q + g * G + r % G) * hd;
        vo->load(o, acc + r * hd, KERN_F32, hd, a->v_scale / l[r]);
    }
}

/* Positions per work item when few tokens are queried (decode): the split is a fixed function
 * of the position count, never of the thread count, and partial results are merged in chunk
 * order, so the result is the same for any number of threads. */
#define ATTN_CHUNK 512
#define ATTN_SPLIT_T 4

struct attn_item {
    long t;
    int g;
    long p_lo, p_hi;
};

struct attn_job {
    const struct kern_attn *a;
    struct kern_cpu *c;
    const struct kern_vec *v;
    const struct gdn_ops *op;      /* prefill tiles */
    const struct attn_item *items; /* split mode */
    long nitems;
    float *parts; /* split mode: [nitems][G][hd + 2] */
};

static void finish(const struct kern_attn *a, const float *ph, float *o)
{
    float inv = a->v_scale / ph[1];
    for (long i = 0; i < a->head_dim; i++)
        o[i] = ph[2 + i] * inv;
}

static void attn_part(void *ctx, int tid, int nth)
{
    struct attn_job *j = ctx;
    const struct kern_attn *a = j->a;
    float *scr = j->c->scratch[tid];
    int G = a->n_q / a->n_kv;
    long hd = a->head_dim, lo, hi;
    if (j->c->isa == KERN_ISA_SCALAR) {
        pool_range(a->T * a->n_q, tid, nth, &lo, &hi);
        for (long it = lo; it < hi; it++)
            attn_ref_one(a, it / a->n_q, (int)(it % a->n_q), scr);
        return;
    }
    if (j->items) {
        pool_range(j->nitems, tid, nth, &lo, &hi);
        for (long it = lo; it < hi; it++) {
            const struct attn_item *w = &j->items[it];
            attn_fast_item(a, j->v, w->t, w->g, w->p_lo, w->p_hi, j->parts + it * G * (hd + 2),
                           scr);
        }
        return;
    }
    /* many tokens: tiles of tokens x kv heads; the token blocks are taken from both ends in
     * turn (0, last, 1, last - 1, ...) so that contiguous ranges of items cost about the same */
    long nt = tile_tokens(G), nblk = (a->T + nt - 1) / nt;
    pool_range(nblk * a->n_kv, tid, nth, &lo, &hi);
    for (long it = lo; it < hi; it++) {
        long k = it / a->n_kv, b = k % 2 ? nblk - 1 - k / 2 : k / 2;
        long t0 = b * nt, n = a->T - t0 < nt ? a->T - t0 : nt;
        attn_tile_item(a, j->op, j->v, t0, n, (int)(it % a->n_kv), scr);
    }
}

int kern_attention(struct kern_cpu *c, const struct kern_attn *a)
{
    if (a->n_q < 1 || a->n_kv < 1 || a->n_q % a->n_kv || a->head_dim < 1 || a->T < 0 || a->pos0 < 0)
        return err_set(ERR_INVAL, "attention: %d query heads, %d kv heads, head_dim %d", a->n_q,
                       a->n_kv, a->head_dim);
    if (a->kv_type != KERN_F32 && a->kv_type != KERN_BF16 && a->kv_type != KERN_FP8)
        return err_set(ERR_INVAL, "attention: KV type %s not supported",
                       kern_dtype_name(a->kv_type));
    if (!(a->k_scale > 0) || !(a->v_scale > 0))
        return err_set(ERR_INVAL, "attention: KV scales must be positive");
    if (a->T == 0)
        return 0;
    long np = a->pos0 + a->T, hd = a->head_dim;
    int G = a->n_q / a->n_kv;
    /* reference: kr[hd] + scores[np] + double acc[hd]; fast: q [G][hd], a row, block scores and
     * one item's partials [G][hd + 2] */
    size_t need = ((size_t)hd * 4 + (size_t)np + 64) * sizeof(float);
    size_t fast =
        ((size_t)(G + 1 + ATTN_BLOCK) * hd + (size_t)G * ATTN_BLOCK + 16 + (size_t)G * (hd + 2)) *
        sizeof(float);
    size_t tile = tile_scratch(hd, G) * sizeof(float);
    fast = fast > tile ? fast : tile;
    int rc = kern_cpu_reserve(c, need > fast ? need : fast);
    if (rc < 0)
        return rc;
    const struct gdn_ops *op = c->isa == KERN_ISA_AVX512 ? &gdn_ops_avx512
                               : c->isa == KERN_ISA_AVX2 ? &gdn_ops_avx2
                                                         : NULL;
    struct attn_job j = { a, c, kern_vec_for(c->isa), op, NULL, 0, NULL };
    long nwork = a->T * a->n_q;
    if (c->isa != KERN_ISA_SCALAR && a->T <= ATTN_SPLIT_T) {
        long n = 0;
        for (long t = 0; t < a->T; t++)
            n += a->n_kv * ((a->pos0 + t + ATTN_CHUNK) / ATTN_CHUNK);
        size_t bytes = 0;
        if (ckd_mul_sz(&bytes, (size_t)n, sizeof(struct attn_item) + (size_t)G * (hd + 2) * 4))
            return err_set(ERR_NOMEM, "attention: %ld positions too many", np);
        float *work;
        if ((rc = kern_cpu_work(c, bytes + 64, &work)) < 0)
            return rc;
        /* items first: they need 8-byte alignment, the float parts do not */
        struct attn_item *items = (struct attn_item *)work;
        float *parts = (float *)(items + n);
        long k = 0;
        for (long t = 0; t < a->T; t++)
            for (int g = 0; g < a->n_kv; g++)
                for (long p = 0; p < a->pos0 + t + 1; p += ATTN_CHUNK) {
                    long e = p + ATTN_CHUNK < a->pos0 + t + 1 ? p + ATTN_CHUNK : a->pos0 + t + 1;
                    items[k++] = (struct attn_item){ t, g, p, e };
                }
        j.items = items;
        j.nitems = n;
        j.parts = parts;
        nwork = n;
    } else if (c->isa != KERN_ISA_SCALAR) {
        nwork = (a->T + tile_tokens(G) - 1) / tile_tokens(G) * a->n_kv;
    }
    kern_cpu_run(c, attn_part, &j, nwork == 1);
    if (j.items) {
        /* merge the chunks of each (token, kv head) in order */
        for (long it = 0; it < j.nitems;) {
            long t = j.items[it].t;
            int g = j.items[it].g;
            long e = it;
            while (e < j.nitems && j.items[e].t == t && j.items[e].g == g)
                e++;
            for (int h = 0; h < G; h++) {
                float *first = j.parts + (it * G + h) * (hd + 2);
                float M = -INFINITY;
                for (long q = it; q < e; q++)
                    M = fmaxf(M, j.parts[(q * G + h) * (hd + 2)]);
                float l = 0;
                for (long q = it; q < e; q++) {
                    float *ph = j.parts + (q * G + h) * (hd + 2);
                    float f = expf(ph[0] - M);
                    l += ph[1] * f;
                    if (q == it)
                        j.v->scale(first + 2, f, hd);
                    else
                        j.v->axpy(first + 2, f, ph + 2, hd);
                }
                first[1] = l;
                finish(a, first, a->out + (t * a->n_q + g * G + h) * hd);
            }
            it = e;
        }
    }
    return 0;
}
