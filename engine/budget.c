/* budget.c - the GPU memory plan: see budget.h. */
#include "engine/budget.h"

#include "common/ckd.h"
#include "common/err.h"
#include "kernels/kernels.h"

static long lmax(long a, long b) { return a > b ? a : b; }

void budget_act_floats(const struct mcfg *c, long T, size_t n[BUDGET_N_ACTS])
{
    long H = (long)c->hidden, qo = (long)mcfg_q_out(c), kvo = (long)mcfg_kv_out(c);
    long cd = (long)mcfg_conv_dim(c), vd = (long)mcfg_lin_val_dim(c);
    long nv = (long)c->lin_v_heads, ao = (long)(c->n_heads * c->head_dim), k = (long)c->top_k;
    /* x, h, y, big, aux, z, o, ab, gb, sgate, logits, tok, argmax, idx, wt, ye, zeros */
    long per[BUDGET_N_ACTS] = { H,
                                H,
                                H,
                                lmax(qo, cd),
                                lmax(2 * kvo, cd),
                                lmax(ao, vd),
                                vd,
                                2 * nv,
                                2 * nv,
                                1,
                                (long)c->vocab,
                                1,
                                0,
                                k,
                                k,
                                H,
                                1 };
    for (int i = 0; i < BUDGET_N_ACTS; i++)
        n[i] = (size_t)per[i] * (size_t)T;
    n[12] = 1; /* argmax result */
}

uint64_t budget_act_bytes(const struct mcfg *c, long T)
{
    size_t n[BUDGET_N_ACTS];
    uint64_t total = 0;
    budget_act_floats(c, T, n);
    for (int i = 0; i < BUDGET_N_ACTS; i++)
        total += ((uint64_t)n[i] * 4 + 255) & ~(uint64_t)255;
    return total;
}

/* kcs_attention splits the context into about 2 * SMs / (T * n_kv) chunks (at least one), each
 * leaving n_q partial rows of head_dim + 2 floats per token: T * nch <= 2 * SMs / n_kv + T. */
uint64_t budget_attn_work_bytes(const struct mcfg *c, long T)
{
    uint64_t rows =
        (uint64_t)(2 * BUDGET_SMS / (c->n_kv_heads > 0 ? c->n_kv_heads : 1)) + (uint64_t)T;
    return rows * (uint64_t)c->n_heads * (uint64_t)(c->head_dim + 2) * sizeof(float);
}

static uint64_t kv_elem(int kv_type)
{
    return kv_type == KERN_F32 ? 4 : kv_type == KERN_BF16 ? 2 : 1;
}

uint64_t budget_kv_per_token(const struct mcfg *c, int kv_type)
{
    return (uint64_t)c->n_full * 2 * (uint64_t)c->n_kv_heads * (uint64_t)c->head_dim *
           kv_elem(kv_type);
}

uint64_t budget_gdn_per_seq(const struct mcfg *c)
{
    uint64_t conv = (uint64_t)mcfg_conv_dim(c) * (uint64_t)(c->conv_kernel - 1);
    uint64_t rec = (uint64_t)c->lin_v_heads * (uint64_t)c->lin_k_dim * (uint64_t)c->lin_v_dim;
    return (uint64_t)(c->n_layers - c->n_full) * (conv + rec) * sizeof(float);
}

/* a*b + acc with overflow reported */
static int mad(uint64_t *acc, uint64_t a, uint64_t b)
{
    uint64_t p;
    return ckd_mul_u64(&p, a, b) || ckd_add_u64(acc, *acc, p);
}

int budget_plan(const struct mcfg *c, const struct budget_req *r, struct budget *b)
{
    *b = (struct budget){ 0 };
    if (r->ctx < 1 || r->ctx > (1L << 40))
        return err_set(ERR_INVAL, "budget: context %ld out of range", r->ctx);
    if (r->seqs < 1 || r->seqs > 65536)
        return err_set(ERR_INVAL, "budget: %ld sequences out of range", r->seqs);
    if (r->snaps < 0 || r->snaps > 65536)
        return err_set(ERR_INVAL, "budget: %ld snapshots out of range", r->snaps);
    if (r->chunk < 1 || r->chunk > (1L << 20))
        return err_set(ERR_INVAL, "budget: chunk %ld out of range", r->chunk);
    if (r->kv_type != KERN_FP8 && r->kv_type != KERN_BF16 && r->kv_type != KERN_F32)
        return err_set(ERR_INVAL, "budget: KV type %d", r->kv_type);
    b->kv_per_token = budget_kv_per_token(c, r->kv_type);
    b->gdn_per_seq = budget_gdn_per_seq(c);
    b->snap_bytes = b->gdn_per_seq;
    b->weights = r->weight_bytes;
    b->act = budget_act_bytes(c, r->chunk);
    b->attn_work = budget_attn_work_bytes(c, r->seqs);
    b->graphs = BUDGET_GRAPHS;
    b->runtime = BUDGET_RUNTIME;
    uint64_t fixed = b->weights + b->act + b->attn_work + b->graphs + b->runtime;
    uint64_t per_seq = 0, kvseq = 0;
    if (mad(&b->kv, b->kv_per_token, (uint64_t)r->ctx) ||
        mad(&kvseq, b->kv_per_token, (uint64_t)r->ctx) ||
        ckd_mul_u64(&b->kv, b->kv, (uint64_t)r->seqs) ||
        mad(&b->gdn, b->gdn_per_seq, (uint64_t)r->seqs) ||
        mad(&b->snaps, b->snap_bytes * (uint64_t)r->snaps, (uint64_t)r->seqs) ||
        ckd_add_u64(&b->required, fixed, b->kv) || ckd_add_u64(&b->required, b->required, b->gdn) ||
        ckd_add_u64(&b->total, b->required, b->snaps) ||
        mad(&per_seq, b->snap_bytes, (uint64_t)r->snaps) ||
        ckd_add_u64(&per_seq, per_seq, kvseq + b->gdn_per_seq))
        return err_set(ERR_INVAL, "budget: size overflow (context %ld x %ld sequences)", r->ctx,
                       r->seqs);
    b->fits = b->total <= r->gpu_bytes;
    b->over = b->fits ? 0 : b->total - r->gpu_bytes;
    /* snapshots take what is left once everything else has its place */
    if (b->required <= r->gpu_bytes) {
        uint64_t left = r->gpu_bytes - b->required, per = b->snap_bytes * (uint64_t)r->seqs;
        uint64_t n = per ? left / per : (uint64_t)r->snaps;
        b->snaps_fit = n > (uint64_t)r->snaps ? r->snaps : (long)n;
    }
    /* the largest context at these sequences, and the most sequences at this context */
    uint64_t others = fixed + b->gdn + b->snaps, kv_row = b->kv_per_token * (uint64_t)r->seqs;
    if (others < r->gpu_bytes && kv_row) {
        uint64_t m = (r->gpu_bytes - others) / kv_row;
        b->max_ctx = m > (uint64_t)(1L << 40) ? (1L << 40) : (long)m;
    }
    if (fixed < r->gpu_bytes && per_seq) {
        uint64_t m = (r->gpu_bytes - fixed) / per_seq;
        b->max_seqs = m > 65536 ? 65536 : (long)m;
    }
    return 0;
}

int budget_check_open(uint64_t weight_bytes, uint64_t act_bytes, long chunk, uint64_t free_bytes,
                      uint64_t total_bytes)
{
    if (weight_bytes + act_bytes + BUDGET_RUNTIME <= free_bytes)
        return 0;
    return err_set(ERR_NOMEM,
                   "cuda engine: the model needs %.2f GiB of weights + %.2f GiB of "
                   "activations (chunk %ld) + %.1f GiB, the device has %.2f GiB free of %.2f",
                   weight_bytes / 1073741824.0, act_bytes / 1073741824.0, chunk,
                   BUDGET_RUNTIME / 1073741824.0, free_bytes / 1073741824.0,
                   total_bytes / 1073741824.0);
}
