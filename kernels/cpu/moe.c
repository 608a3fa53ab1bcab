/*
 * moe.c - the MoE expert path: tokens grouped by expert, every selected expert's gate and up
 * projections (and the shared expert's) in one parallel region, SwiGLU, all down projections in
 * a second region, then each token's weighted sum in expert-index order plus the gated shared
 * expert. Weights are the caller's views (normally the mmap); the row blocks of all the
 * projections of a phase are one list split over threads, so the pool is woken twice per layer,
 * not once per projection, and each row is still computed the same way for any thread count.
 * kern_matmul_n (and kern_matmul) run the same machinery for dense projections.
 *
 * Threads claim runs of row blocks from a shared counter, long runs first and single blocks at
 * the end (guided scheduling), instead of fixed equal shares: rows of different dtypes cost
 * different times (a bf16 shared expert next to int4 experts), and on a shared machine one
 * thread can be descheduled for a while; with fixed shares the other would wait at the end of
 * every region. Which thread computes a block never changes how it is computed.
 */
#include "kernels/cpu/kern_cpu.h"

#include "common/ckd.h"
#include "common/err.h"
#include "common/pool.h"

#include <string.h>

#define MOE_MAX_TASKS 1024

struct mm_task {
    const struct kern_weight *w;
    const float *x;
    long T;
    float *y;
    long rows; /* rows per block: KERN_MM_ROWS, or two of them for a GEMM (see phase_add) */
    long nblocks;
};

struct moe_phase {
    struct kern_cpu *c;
    kern_mm_fn fn;
    struct mm_task task[MOE_MAX_TASKS];
    int ntask;
    long nblocks;
    long next; /* the first block nobody has claimed (atomic while the region runs) */
};

/* 40 KB of task list: per calling thread, not on its stack */
static __thread struct moe_phase moe_phase_tls;

/* An empty task list (not a memset of the 40 KB: phase_add writes every task it counts). */
static void phase_init(struct moe_phase *ph, struct kern_cpu *c)
{
    ph->c = c;
    ph->fn = kern_mm_for(c->isa);
    ph->ntask = 0;
    ph->nblocks = 0;
    ph->next = 0;
}

static void phase_add(struct moe_phase *ph, const struct kern_weight *w, const float *x, long T,
                      float *y)
{
    struct mm_task *t = &ph->task[ph->ntask++];
    /* a prefill GEMM packs 32-row panels: a claim ending on an odd 16-row block left a
     * half-empty panel (one row vector per FMA tile: half the FMA rate for the same loads) and
     * re-read the tokens for 16 rows; blocks of 32 rows avoid both. Which rows a block holds
     * never changes how a row is computed (each output is one chain over k). */
    long rows = T >= 4 ? 2 * KERN_MM_ROWS : KERN_MM_ROWS;
    *t = (struct mm_task){ w, x, T, y, rows, (w->n + rows - 1) / rows };
    ph->nblocks += t->nblocks;
}

/* Claims blocks [*lo, *hi): a 1/(2 nth) share of what is left, at least one block; 0 when all
 * are taken. */
static int phase_claim(struct moe_phase *ph, int nth, long *lo, long *hi)
{
    long cur = __atomic_load_n(&ph->next, __ATOMIC_RELAXED);
    for (;;) {
        if (cur >= ph->nblocks)
            return 0;
        long run = (ph->nblocks - cur) / (2L * nth);
        if (run < 1)
            run = 1;
        if (__atomic_compare_exchange_n(&ph->next, &cur, cur + run, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
            *lo = cur;
            *hi = cur + run;
            return 1;
        }
    }
}

static void phase_part(void *ctx, int tid, int nth)
{
    struct moe_phase *ph = ctx;
    long lo, hi;
    int i = 0;
    long base = 0; /* first block of task i; claims only move forward, so the scan does too */
    while (phase_claim(ph, nth, &lo, &hi)) {
        for (; i < ph->ntask && base < hi; i++) {
            struct mm_task *t = &ph->task[i];
            long b0 = lo > base ? lo - base : 0;
            long b1 = hi - base < t->nblocks ? hi - base : t->nblocks;
            if (b0 < b1) {
                long r0 = b0 * t->rows, r1 = b1 * t->rows;
                if (r1 > t->w->n)
                    r1 = t->w->n;
                ph->fn(t->w, t->x, t->T, t->y, r0, r1, ph->c->scratch[tid]);
            }
            if (base + t->nblocks > hi)
                break; /* the task goes on in a later claim */
            base += t->nblocks;
        }
    }
}

static void phase_run(struct moe_phase *ph, int alone)
{
    ph->next = 0;
    kern_cpu_run(ph->c, phase_part, ph, alone);
}

int kern_matmul_n(struct kern_cpu *c, int n, const struct kern_weight *const *w, const float *x,
                  long T, float *const *y)
{
    if (n < 1 || n > 64 || T < 0)
        return err_set(ERR_INVAL, "matmul_n: %d weights, %ld tokens", n, T);
    int rc;
    long kmax = 0;
    double work = 0;
    for (int i = 0; i < n; i++) {
        if ((rc = kern_weight_check(w[i])) < 0)
            return err_prefix(rc, "matmul_n weight %d", i);
        if (w[i]->k != w[0]->k)
            return err_set(ERR_INVAL, "matmul_n: weight %d has %ld columns, weight 0 %ld", i,
                           w[i]->k, w[0]->k);
        kmax = w[i]->k > kmax ? w[i]->k : kmax;
        work += (double)w[i]->n * (double)w[i]->k * (double)T;
    }
    if (T == 0)
        return 0;
    if ((rc = kern_cpu_reserve(c, kern_mm_scratch(kmax))) < 0)
        return rc;
    struct moe_phase *ph = &moe_phase_tls;
    phase_init(ph, c);
    for (int i = 0; i < n; i++)
        phase_add(ph, w[i], x, T, y[i]);
    phase_run(ph, work < 65536.0); /* small products are not worth waking the pool */
    return 0;
}

/* The gather of the selections' rows and the per-token combine, split over threads (tokens
 * are independent: any split gives the same sums). */
struct moe_io {
    const struct kern_moe *m;
    const int *order, *pos;
    float *X;
    const float *D, *SD;
};

static void gather_part(void *ctx, long lo, long hi)
{
    const struct moe_io *io = ctx;
    long H = io->m->hidden;
    for (long i = lo; i < hi; i++)
        memcpy(io->X + i * H, io->m->x + (io->order[i] / io->m->k) * H, (size_t)H * sizeof(float));
}

/* per token, its experts in index order, then the shared expert */
static void combine_part(void *ctx, long lo, long hi)
{
    const struct moe_io *io = ctx;
    const struct kern_moe *m = io->m;
    long H = m->hidden;
    for (long t = lo; t < hi; t++) {
        float *y = m->y + t * H;
        memset(y, 0, (size_t)H * sizeof(float));
        for (int j = 0; j < m->k; j++) {
            /* the j-th smallest expert index among this token's selections */
            long i = -1;
            for (int q = 0, rank = 0; q < m->k; q++, rank = 0) {
                long cand = t * m->k + q;
                for (int r = 0; r < m->k; r++) {
                    long o = t * m->k + r;
                    rank += m->idx[o] < m->idx[cand] || (m->idx[o] == m->idx[cand] && r < q);
                }
                if (rank == j)
                    i = cand;
            }
            /* plain y += w d (no FMA), the same sums engine/forward.c makes when it runs the
             * shared expert apart while profiling */
            const float *d = io->D + (long)io->pos[i] * H;
            float wgt = m->wt[i];
            for (long h = 0; h < H; h++)
                y[h] += wgt * d[h];
        }
        if (m->shared) {
            float sgt = kern_sigmoid1(m->shared_gate[t]);
            for (long h = 0; h < H; h++)
                y[h] += sgt * io->SD[t * H + h];
        }
    }
}

static int check_expert(const struct kern_expert *e, long hidden, long inter, const char *what,
                        int idx)
{
    int rc;
    if ((rc = kern_weight_check(&e->gate)) < 0 || (rc = kern_weight_check(&e->up)) < 0 ||
        (rc = kern_weight_check(&e->down)) < 0)
        return err_prefix(rc, "%s expert %d", what, idx);
    if (e->gate.n != inter || e->gate.k != hidden || e->up.n != inter || e->up.k != hidden ||
        e->down.n != hidden || e->down.k != inter)
        return err_set(ERR_INVAL, "%s expert %d: shapes do not match hidden %ld, intermediate %ld",
                       what, idx, hidden, inter);
    return 0;
}

int kern_moe(struct kern_cpu *c, const struct kern_moe *m)
{
    if (m->n_experts < 1 || m->k < 1 || m->k > m->n_experts || m->T < 0 || m->hidden < 1 ||
        m->inter < 1)
        return err_set(ERR_INVAL, "moe: %d experts, top-%d, hidden %ld, intermediate %ld",
                       m->n_experts, m->k, m->hidden, m->inter);
    if (m->T == 0)
        return 0;
    long T = m->T, H = m->hidden, I = m->inter, nsel = T * m->k;
    int rc;
    /* the selections sorted by expert (stable: token order within an expert) */
    int nact = 0, active[MOE_MAX_TASKS / 3];
    size_t words = 0;
    for (long i = 0; i < nsel; i++)
        if (m->idx[i] < 0 || m->idx[i] >= m->n_experts)
            return err_set(ERR_INVAL, "moe: token %ld selects expert %d of %d", i / m->k, m->idx[i],
                           m->n_experts);
    /* work: order[nsel] (as floats), X [nsel][H], G, U [nsel][I], D [nsel][H], shared SG, SU
     * [T][I], SD [T][H] */
    long sh = m->shared ? T : 0;
    if (ckd_mul_sz(&words, (size_t)nsel + (size_t)sh, (size_t)(2 * H + 2 * I)) ||
        ckd_add_sz(&words, words, (size_t)nsel * 2 + 64))
        return err_set(ERR_NOMEM, "moe: %ld tokens too many", T);
    float *work;
    if ((rc = kern_cpu_work(c, words * sizeof(float), &work)) < 0)
        return rc;
    if ((rc = kern_cpu_reserve(c, kern_mm_scratch(H > I ? H : I))) < 0)
        return rc;
    int *order = (int *)work; /* [nsel] selection indices, sorted by expert */
    int *pos = order + nsel;  /* [nsel] position of selection i in `order` */
    float *X = work + 2 * nsel + 32, *G = X + nsel * H, *U = G + nsel * I, *D = U + nsel * I;
    float *SG = D + nsel * H, *SU = SG + sh * I, *SD = SU + sh * I;
    long n = 0;
    for (int e = 0; e < m->n_experts; e++) {
        long first = n;
        for (long i = 0; i < nsel; i++)
            if (m->idx[i] == e) {
                pos[i] = (int)n;
                order[n++] = (int)i;
            }
        if (n > first) {
            if (nact >= MOE_MAX_TASKS / 3 - 1)
                return err_set(ERR_UNSUPPORTED, "moe: more than %d experts in one call",
                               MOE_MAX_TASKS / 3 - 1);
            if ((rc = check_expert(&m->experts[e], H, I, "routed", e)) < 0)
                return rc;
            active[nact++] = e;
        }
    }
    if (m->shared && (rc = check_expert(m->shared, H, I, "shared", 0)) < 0)
        return rc;
    struct moe_io io = { m, order, pos, X, D, SD };
    long rows_grain = H < 4096 ? 4096 / H : 1; /* pieces of >= 16 KB */
    kern_cpu_par(c, nsel, rows_grain, gather_part, &io);

    struct moe_phase *ph = &moe_phase_tls;
    /* phase 1: gate and up of every active expert (and the shared expert) */
    phase_init(ph, c);
    long off = 0;
    for (int a = 0; a < nact; a++) {
        const struct kern_expert *ex = &m->experts[active[a]];
        long cnt = 0;
        while (off + cnt < nsel && m->idx[order[off + cnt]] == active[a])
            cnt++;
        phase_add(ph, &ex->gate, X + off * H, cnt, G + off * I);
        phase_add(ph, &ex->up, X + off * H, cnt, U + off * I);
        off += cnt;
    }
    if (m->shared) {
        phase_add(ph, &m->shared->gate, m->x, T, SG);
        phase_add(ph, &m->shared->up, m->x, T, SU);
    }
    phase_run(ph, 0);
    kern_swiglu_on(c, G, G, U, nsel * I);
    if (m->shared)
        kern_swiglu_on(c, SG, SG, SU, T * I);
    /* phase 2: down projections */
    ph->ntask = 0;
    ph->nblocks = 0;
    off = 0;
    for (int a = 0; a < nact; a++) {
        long cnt = 0;
        while (off + cnt < nsel && m->idx[order[off + cnt]] == active[a])
            cnt++;
        phase_add(ph, &m->experts[active[a]].down, G + off * I, cnt, D + off * H);
        off += cnt;
    }
    if (m->shared)
        phase_add(ph, &m->shared->down, SG, T, SD);
    phase_run(ph, 0);
    kern_cpu_par(c, T, rows_grain, combine_part, &io);
    return 0;
}
