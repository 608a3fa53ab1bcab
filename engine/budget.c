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

/* The request fields both plans share, checked the same way. */
static int check_req(long ctx, long seqs, long snaps, long chunk, int kv_type)
{
    if (ctx < 1 || ctx > (1L << 40))
        return err_set(ERR_INVAL, "budget: context %ld out of range", ctx);
    if (seqs < 1 || seqs > 65536)
        return err_set(ERR_INVAL, "budget: %ld sequences out of range", seqs);
    if (snaps < 0 || snaps > 65536)
        return err_set(ERR_INVAL, "budget: %ld snapshots out of range", snaps);
    if (chunk < 1 || chunk > (1L << 20))
        return err_set(ERR_INVAL, "budget: chunk %ld out of range", chunk);
    if (kv_type != KERN_FP8 && kv_type != KERN_BF16 && kv_type != KERN_F32)
        return err_set(ERR_INVAL, "budget: KV type %d", kv_type);
    return 0;
}

int budget_plan(const struct mcfg *c, const struct budget_req *r, struct budget *b)
{
    *b = (struct budget){ 0 };
    int rc = check_req(r->ctx, r->seqs, r->snaps, r->chunk, r->kv_type);
    if (rc < 0)
        return rc;
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

/* ---------------------------------------------------------------- the CPU plan */

static uint64_t page_up(uint64_t n) { return (n + 4095) & ~(uint64_t)4095; }

uint64_t budget_cpu_act_bytes(const struct mcfg *c, long T)
{
    /* forward.c get_bufs: 15 buffers of sizes[i] * T floats, each padded by 16 */
    long H = (long)c->hidden, qo = (long)mcfg_q_out(c), kvo = (long)mcfg_kv_out(c);
    long cd = (long)mcfg_conv_dim(c), vd = (long)mcfg_lin_val_dim(c);
    long nv = (long)c->lin_v_heads, E = (long)c->n_experts, k = (long)c->top_k;
    long ao = (long)(c->n_heads * c->head_dim), Is = lmax((long)c->shared_inter, 1);
    long sizes[15] = {
        H, H, H, lmax(qo, cd), lmax(2 * kvo, cd), lmax(ao, vd), vd, 2 * nv, 2 * nv, E, k,
        k, 1, H, 2 * Is
    };
    uint64_t floats = 0;
    for (int i = 0; i < 15; i++)
        floats += (uint64_t)sizes[i] * (uint64_t)T + 16;
    return (floats + (uint64_t)c->vocab) * sizeof(float);
}

/* kernels/cpu/matmul.c kern_mm_scratch: a 16-row dequantized block, an activation row, the
 * scales of 4 rows and the prefill partial sums (test_budget checks it against the engine) */
static uint64_t mm_scratch(long k)
{
    uint64_t kp = ((uint64_t)k + 127) & ~(uint64_t)127;
    return (16 * kp + kp + 256 + kp / 4 + 64 + 64 * 16 * 16) * sizeof(float);
}

uint64_t budget_cpu_scratch_bytes(const struct mcfg *c, long ctx)
{
    long H = (long)c->hidden, ao = (long)(c->n_heads * c->head_dim);
    long kmax = lmax(lmax(H, ao), lmax((long)mcfg_lin_val_dim(c),
                                       lmax((long)c->moe_inter, (long)c->shared_inter)));
    uint64_t need = mm_scratch(kmax);
    if (c->n_full > 0) {
        /* kernels/cpu/attn.c: the reference row over the whole context, or the fast path's
         * query group, block scores and partials (ATTN_BLOCK 64) */
        uint64_t hd = (uint64_t)c->head_dim,
                 G = (uint64_t)(c->n_kv_heads > 0 ? c->n_heads / c->n_kv_heads : 1);
        uint64_t ref = (hd * 4 + (uint64_t)ctx + 64) * sizeof(float);
        uint64_t fast = ((G + 1 + 64) * hd + G * 64 + 16 + G * (hd + 2)) * sizeof(float);
        need = need > ref ? need : ref;
        need = need > fast ? need : fast;
    }
    if (c->n_full < c->n_layers) {
        /* kernels/cpu/gdn.c gdn_run: chunked Q, K, W [C][dk], U, Vn [C][dv], five [C][C]
         * blocks and three [C] vectors; recurrent groups of 64 tokens' q and k */
        uint64_t C = BUDGET_CPU_GDN_CHUNK, dk = (uint64_t)c->lin_k_dim, dv = (uint64_t)c->lin_v_dim;
        uint64_t g = (3 * C * dk + 2 * C * dv + 5 * C * C + 3 * C + 16) * sizeof(float);
        uint64_t rec = (2 * 64 * dk + 2 * 64 + 2 * dv + 16) * sizeof(float);
        need = need > g ? need : g;
        need = need > rec ? need : rec;
    }
    return page_up(need);
}

uint64_t budget_cpu_work_bytes(const struct mcfg *c, long chunk, long ctx)
{
    /* kernels/cpu/moe.c: order and positions [T k], X, D [T k + T][H], G, U [T k + T][I]
     * (the shared expert's rows counted: an upper bound when it runs apart) */
    uint64_t T = (uint64_t)chunk, k = (uint64_t)c->top_k, H = (uint64_t)c->hidden,
             I = (uint64_t)lmax((long)c->moe_inter, (long)c->shared_inter);
    uint64_t moe = ((T * k + T) * (2 * H + 2 * I) + 2 * T * k + 64) * sizeof(float);
    uint64_t attn = 0;
    if (c->n_full > 0) {
        /* kernels/cpu/attn.c split mode (steps of at most 4 tokens): one 32-byte item and
         * G partial rows of head_dim + 2 floats per kv head and 512-position piece */
        uint64_t G = (uint64_t)(c->n_kv_heads > 0 ? c->n_heads / c->n_kv_heads : 1);
        uint64_t n = 4 * (uint64_t)c->n_kv_heads * (((uint64_t)ctx + 512) / 512);
        attn = n * (32 + G * ((uint64_t)c->head_dim + 2) * sizeof(float)) + 64;
    }
    return page_up(moe > attn ? moe : attn);
}

uint64_t budget_cpu_tables_bytes(const struct mcfg *c)
{
    uint64_t n = (uint64_t)c->hidden; /* final norm */
    for (int64_t l = 0; l < c->n_layers; l++) {
        n += 2 * (uint64_t)c->hidden;
        if (c->layer_type[l] == MCFG_FULL_ATTN)
            n += 2 * (uint64_t)c->head_dim;
        else
            n += (uint64_t)(mcfg_conv_dim(c) * c->conv_kernel + 2 * c->lin_v_heads + c->lin_v_dim);
    }
    return n * sizeof(float) +
           (uint64_t)c->n_layers * (uint64_t)c->n_experts * sizeof(struct kern_expert);
}

/* Everything at ctx x seqs; -1 on overflow. */
static int cpu_fill(const struct mcfg *c, const struct budget_cpu_req *r, long ctx, long seqs,
                    struct budget_cpu *b)
{
    uint64_t S = (uint64_t)seqs, T = (uint64_t)(r->chunk < ctx ? r->chunk : ctx);
    b->kv_per_token = budget_kv_per_token(c, r->kv_type);
    b->gdn_per_seq = budget_gdn_per_seq(c);
    b->snap_bytes = b->gdn_per_seq;
    b->ids_per_token = sizeof(int32_t);
    b->weights = r->weight_bytes;
    b->act = budget_cpu_act_bytes(c, (long)T);
    b->scratch_per_thread = budget_cpu_scratch_bytes(c, ctx);
    b->work = budget_cpu_work_bytes(c, (long)T, ctx);
    b->tables = budget_cpu_tables_bytes(c);
    b->runtime = BUDGET_CPU_RUNTIME;
    b->kv = b->gdn = b->snaps = b->ids = 0;
    uint64_t kvs = 0, once = 0;
    if (ckd_mul_u64(&b->scratch, b->scratch_per_thread, (uint64_t)r->threads) ||
        mad(&kvs, b->kv_per_token, (uint64_t)ctx) || ckd_mul_u64(&b->kv, kvs, S) ||
        mad(&b->gdn, b->gdn_per_seq, S) || mad(&b->ids, b->ids_per_token * S, (uint64_t)ctx) ||
        mad(&b->snaps, b->snap_bytes * (uint64_t)r->snaps, S) ||
        ckd_add_u64(&once, b->act + b->work + b->tables + b->runtime, b->scratch) ||
        ckd_add_u64(&b->required, once, b->weights) ||
        ckd_add_u64(&b->required, b->required, b->kv) ||
        ckd_add_u64(&b->required, b->required, b->gdn + b->ids) ||
        ckd_add_u64(&b->total, b->required, b->snaps))
        return -1;
    return 0;
}

int budget_plan_cpu(const struct mcfg *c, const struct budget_cpu_req *r, struct budget_cpu *b)
{
    *b = (struct budget_cpu){ 0 };
    int rc = check_req(r->ctx, r->seqs, r->snaps, r->chunk, r->kv_type);
    if (rc < 0)
        return rc;
    if (r->threads < 1 || r->threads > 4096)
        return err_set(ERR_INVAL, "budget: %d threads out of range", r->threads);
    if (cpu_fill(c, r, r->ctx, r->seqs, b) < 0)
        return err_set(ERR_INVAL, "budget: size overflow (context %ld x %ld sequences)", r->ctx,
                       r->seqs);
    b->fits = b->total <= r->mem_bytes;
    b->over = b->fits ? 0 : b->total - r->mem_bytes;
    if (b->required <= r->mem_bytes) {
        uint64_t left = r->mem_bytes - b->required, per = b->snap_bytes * (uint64_t)r->seqs;
        uint64_t n = per ? left / per : (uint64_t)r->snaps;
        b->snaps_fit = n > (uint64_t)r->snaps ? r->snaps : (long)n;
    }
    /* the largest context at these sequences and the most sequences at this context, all
     * snapshots kept: every term grows with both, so a bisection finds them */
    struct budget_cpu t;
    long lo = 0, hi = 1L << 40;
    while (lo < hi) {
        long mid = lo + (hi - lo + 1) / 2;
        if (cpu_fill(c, r, mid, r->seqs, &t) == 0 && t.total <= r->mem_bytes)
            lo = mid;
        else
            hi = mid - 1;
    }
    b->max_ctx = lo;
    lo = 0, hi = 65536;
    while (lo < hi) {
        long mid = lo + (hi - lo + 1) / 2;
        if (cpu_fill(c, r, r->ctx, mid, &t) == 0 && t.total <= r->mem_bytes)
            lo = mid;
        else
            hi = mid - 1;
    }
    b->max_seqs = lo;
    return 0;
}
