/*
 * forward.c - the Qwen3.5/3.6-MoE forward pass on the CPU (model-spec.md §3),
 * in fp32, over a chunk of T tokens at a time:
 *
 *   x = embed[tokens]                                   [T, H]
 *   per layer:  x += mixer(rmsnorm(x) (1 + w))          gated attention or Gated DeltaNet
 *               x += moe(rmsnorm(x) (1 + w))            top-k routed + gated shared expert
 *   logits = lm_head(rmsnorm(x) (1 + w))                [T, V] or the last row
 *
 * Prefill and decode are the same code; T = 1 is a decode step. Long inputs
 * are processed in chunks of o.chunk tokens so activation memory is bounded.
 */
#include "engine/model_cuda.h"
#include "engine/model_impl.h"

#include "common/ckd.h"
#include "common/err.h"
#include "common/text.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Scratch layout for one chunk of T tokens (floats). */
struct fwd_bufs {
    float *x;      /* [T, H] residual stream */
    float *h;      /* [T, H] normed input of a block */
    float *y;      /* [T, H] block output */
    float *big;    /* [T, max(q_out, conv_dim)] attention qg or DeltaNet mixed qkv */
    float *aux;    /* [T, max(kv_out * 2, conv_dim)] k|v or the conv output */
    float *z;      /* [T, max(n_h*hd, n_v*dv)] attention output or DeltaNet z */
    float *o;      /* [T, n_v*dv] DeltaNet core output */
    float *ab;     /* [T, 2 * n_v] DeltaNet a and b, then g and beta */
    float *gb;     /* [T, 2 * n_v] */
    float *router; /* [T, E] */
    int *idx;      /* [T, k] */
    float *wt;     /* [T, k] */
    float *sgate;  /* [T] */
    float *sh;     /* [T, H] shared expert output when computed apart */
    float *tmp;    /* [T, max(Is, 1) * 2] shared expert intermediates */
};

static long lmax(long a, long b) { return a > b ? a : b; }

/* ---------------------------------------------------------------- profile */

/* Opt-in (LODE_PROFILE=1), decode steps only (T == 1): the time since *t0 and `bytes` are
 * charged to op, and *t0 moves on. Off, it costs one branch per op. */
static void prof(struct eng *e, int op, double *t0, double bytes)
{
    if (!e->prof.active)
        return;
    double now = time_s();
    e->prof.t[op] += now - *t0;
    e->prof.bytes[op] += bytes;
    *t0 = now;
}

static double prof_start(const struct eng *e) { return e->prof.active ? time_s() : 0; }

static double wbytes(const struct kern_weight *w) { return (double)kern_weight_bytes(w); }

static double expert_bytes(const struct kern_expert *x)
{
    return wbytes(&x->gate) + wbytes(&x->up) + wbytes(&x->down);
}

void eng_prof_print(const struct eng *e)
{
    static const char *names[PROF_N] = { "embedding", "norms",     "GDN projections",
                                         "GDN core",  "attn proj", "attn core",
                                         "router",    "experts",   "shared expert",
                                         "lm_head",   "other" };
    const struct eng_prof *p = &e->prof;
    if (!p->on || p->steps == 0)
        return;
    double sum = 0, bsum = 0, n = (double)p->steps;
    fprintf(stderr,
            "lode profile: %ld decode steps, %.3f ms/token (the shared expert runs apart while "
            "profiling)\n",
            p->steps, 1e3 * p->total / n);
    fprintf(stderr, "%-16s %9s %6s %9s %8s\n", "op", "ms/token", "%", "MB/token", "GB/s");
    for (int i = 0; i < PROF_N; i++) {
        sum += p->t[i];
        bsum += p->bytes[i];
        fprintf(stderr, "%-16s %9.3f %6.1f %9.2f %8.2f\n", names[i], 1e3 * p->t[i] / n,
                p->total > 0 ? 100 * p->t[i] / p->total : 0, p->bytes[i] / n / 1e6,
                p->t[i] > 0 ? p->bytes[i] / p->t[i] / 1e9 : 0);
    }
    fprintf(stderr, "%-16s %9.3f %6.1f %9.2f %8.2f\n", "total", 1e3 * sum / n,
            p->total > 0 ? 100 * sum / p->total : 0, bsum / n / 1e6,
            sum > 0 ? bsum / sum / 1e9 : 0);
}

static int get_bufs(struct eng *e, long T, struct fwd_bufs *b)
{
    const struct mcfg *c = &e->ck.cfg;
    long H = (long)c->hidden, qo = (long)mcfg_q_out(c), kvo = (long)mcfg_kv_out(c);
    long cd = (long)mcfg_conv_dim(c), vd = (long)mcfg_lin_val_dim(c);
    long nv = (long)c->lin_v_heads, E = (long)c->n_experts, k = (long)c->top_k;
    long ao = (long)(c->n_heads * c->head_dim), Is = (long)lmax(c->shared_inter, 1);
    long sizes[15] = {
        H, H, H, lmax(qo, cd), lmax(2 * kvo, cd), lmax(ao, vd), vd, 2 * nv, 2 * nv, E, k,
        k, 1, H, 2 * Is
    };
    size_t total = 0;
    for (int i = 0; i < 15; i++) {
        size_t n;
        if (ckd_mul_sz(&n, (size_t)sizes[i], (size_t)T) || ckd_add_sz(&total, total, n + 16))
            return err_set(ERR_NOMEM, "forward: scratch size overflow");
    }
    if (total > e->work_floats) {
        float *w = realloc(e->work, total * sizeof(float));
        if (!w)
            return err_set(ERR_NOMEM, "forward: out of memory for %zu bytes of activations",
                           total * sizeof(float));
        e->work = w;
        e->work_floats = total;
    }
    float *p = e->work;
    float **dst[15] = { &b->x,  &b->h,      &b->y, &b->big, &b->aux,   &b->z,  &b->o,  &b->ab,
                        &b->gb, &b->router, NULL,  &b->wt,  &b->sgate, &b->sh, &b->tmp };
    for (int i = 0; i < 15; i++) {
        if (dst[i])
            *dst[i] = p;
        else
            b->idx = (int *)p;
        /* keep every buffer 64-byte aligned for the SIMD kernels */
        p += ((size_t)sizes[i] * (size_t)T + 15) & ~(size_t)15;
    }
    return 0;
}

/* ---------------------------------------------------------------- blocks */

static int attention(struct eng *e, struct eng_layer *L, int l, struct seq_state *s, long T,
                     struct fwd_bufs *b)
{
    const struct mcfg *c = &e->ck.cfg;
    int nh = (int)c->n_heads, nkv = (int)c->n_kv_heads, hd = (int)c->head_dim;
    long qo = (long)mcfg_q_out(c), kvo = (long)mcfg_kv_out(c);
    long qstride = c->attn_output_gate ? 2L * hd : hd; /* per head: [query | gate] */
    float *qg = b->big, *k = b->aux, *v = b->aux + T * kvo;
    int rc;
    double t0 = prof_start(e);
    /* q, k and v of the same input in one parallel region */
    const struct kern_weight *w3[3] = { &L->q, &L->k, &L->v };
    float *y3[3] = { qg, k, v };
    if ((rc = kern_matmul_n(e->kc, 3, w3, b->h, T, y3)) < 0)
        return rc;
    prof(e, PROF_ATTN_PROJ, &t0, wbytes(&L->q) + wbytes(&L->k) + wbytes(&L->v));
    float eps = (float)c->rms_eps;
    /* per-head RMSNorm (1 + w) on queries and keys, then RoPE on their first rotary_dim dims */
    kern_rmsnorm_on(e->kc, qg, qstride, qg, qstride, L->q_norm, T * nh, hd, eps);
    kern_rmsnorm_on(e->kc, k, hd, k, hd, L->k_norm, T * nkv, hd, eps);
    for (long t = 0; t < T; t++) {
        long pos = s->pos + t;
        kern_rope(qg + t * qo, qstride, nh, (int)c->rotary_dim, e->rope_inv, e->rope_mscale, pos);
        kern_rope(k + t * kvo, hd, nkv, (int)c->rotary_dim, e->rope_inv, e->rope_mscale, pos);
        /* the cache holds post-norm, post-RoPE keys and raw values */
        void *kr = seq_k_row(s, l, pos), *vr = seq_v_row(s, l, pos);
        if (!kr || !vr)
            return err_set(ERR_INTERNAL, "KV row %ld out of range", pos);
        if ((rc = kern_convert(kr, s->kv_type, k + t * kvo, KERN_F32, (size_t)kvo,
                               s->layer[l].k_scale)) < 0 ||
            (rc = kern_convert(vr, s->kv_type, v + t * kvo, KERN_F32, (size_t)kvo,
                               s->layer[l].v_scale)) < 0)
            return rc;
    }
    struct kern_attn a = {
        .n_q = nh,
        .n_kv = nkv,
        .head_dim = hd,
        .T = T,
        .pos0 = s->pos,
        .q = qg,
        .q_tok = qo,
        .q_head = qstride,
        .kv_type = s->kv_type,
        .k = s->layer[l].k,
        .v = s->layer[l].v,
        .k_scale = s->layer[l].k_scale,
        .v_scale = s->layer[l].v_scale,
        .scale = 1.0f / sqrtf((float)hd),
        .out = b->z,
    };
    if ((rc = kern_attention(e->kc, &a)) < 0)
        return rc;
    double kv_elt = s->kv_type == KERN_F32 ? 4 : s->kv_type == KERN_FP8 ? 1 : 2;
    if (c->attn_output_gate) {
        /* o = attention * sigmoid(gate), the gate being the second half of each q_proj head */
        for (long t = 0; t < T; t++)
            for (int h = 0; h < nh; h++)
                kern_mul_sigmoid_on(e->kc, b->z + (t * nh + h) * hd, qg + t * qo + h * qstride + hd,
                                    hd);
    }
    prof(e, PROF_ATTN_CORE, &t0, 2.0 * kv_elt * (double)kvo * (double)(s->pos + T));
    rc = kern_matmul(e->kc, &L->o, b->z, T, b->y);
    prof(e, PROF_ATTN_PROJ, &t0, wbytes(&L->o));
    return rc;
}

static int deltanet(struct eng *e, struct eng_layer *L, int l, struct seq_state *s, long T,
                    struct fwd_bufs *b)
{
    const struct mcfg *c = &e->ck.cfg;
    long cd = (long)mcfg_conv_dim(c), nv = (long)c->lin_v_heads, nk = (long)c->lin_k_heads;
    long dk = (long)c->lin_k_dim, dv = (long)c->lin_v_dim;
    float *a = b->ab, *bb = b->ab + T * nv, *g = b->gb, *beta = b->gb + T * nv;
    int rc;
    double t0 = prof_start(e);
    const struct kern_weight *w4[4] = { &L->qkv, &L->z, &L->a, &L->b };
    float *y4[4] = { b->big, b->z, a, bb };
    if ((rc = kern_matmul_n(e->kc, 4, w4, b->h, T, y4)) < 0)
        return rc;
    prof(e, PROF_GDN_PROJ, &t0, wbytes(&L->qkv) + wbytes(&L->z) + wbytes(&L->a) + wbytes(&L->b));
    /* causal depthwise conv + SiLU over the q|k|v channels (not z, a, b) */
    if ((rc = kern_conv1d_silu_on(e->kc, b->aux, b->big, cd, s->layer[l].conv, L->conv_w, T, cd,
                                  (int)c->conv_kernel)) < 0)
        return rc;
    for (long t = 0; t < T; t++)
        for (long h = 0; h < nv; h++) {
            beta[t * nv + h] = kern_sigmoid1(bb[t * nv + h]);
            g[t * nv + h] = L->neg_exp_a[h] * kern_softplus1(a[t * nv + h] + L->dt_bias[h]);
        }
    struct kern_gdn gd = {
        .n_k = (int)nk,
        .n_v = (int)nv,
        .dk = (int)dk,
        .dv = (int)dv,
        .T = T,
        .q = b->aux,
        .k = b->aux + nk * dk,
        .v = b->aux + 2 * nk * dk,
        .ld_qk = cd,
        .ld_v = cd,
        .g = g,
        .beta = beta,
        .state = s->layer[l].state,
        .out = b->o,
    };
    /* the chunked form's matrix products beat the recurrence from a few tokens on (1.5x at
     * T = 4, 2x at 16: lode bench kernels --only gdn); decode (T = 1) stays recurrent */
    int chunked = e->gdn_mode == 2 || (e->gdn_mode == 0 && T >= 4);
    rc = chunked ? kern_gdn_chunked(e->kc, &gd, 64) : kern_gdn_recurrent(e->kc, &gd);
    if (rc < 0)
        return rc;
    /* gated RMSNorm per value head (plain w), times SiLU(z) */
    kern_rmsnorm_gated_on(e->kc, b->o, b->o, b->z, L->lin_norm, T * nv, dv, (float)c->rms_eps);
    /* the recurrent state is read and written once per token */
    prof(e, PROF_GDN_CORE, &t0, 2.0 * 4.0 * (double)(nv * dk * dv));
    rc = kern_matmul(e->kc, &L->out, b->o, T, b->y);
    prof(e, PROF_GDN_PROJ, &t0, wbytes(&L->out));
    return rc;
}

static int moe(struct eng *e, struct eng_layer *L, long T, struct fwd_bufs *b)
{
    const struct mcfg *c = &e->ck.cfg;
    int E = (int)c->n_experts, k = (int)c->top_k;
    long H = (long)c->hidden, Is = (long)c->shared_inter;
    int rc;
    double t0 = prof_start(e);
    /* the router and the shared expert's gate logit in one parallel region */
    const struct kern_weight *w2[2] = { &L->router, &L->shared_gate };
    float *y2[2] = { b->router, b->sgate };
    if ((rc = kern_matmul_n(e->kc, Is > 0 ? 2 : 1, w2, b->h, T, y2)) < 0)
        return rc;
    for (long t = 0; t < T; t++)
        if ((rc = kern_moe_route(b->router + t * E, E, k, b->idx + t * k, b->wt + t * k)) < 0)
            return rc;
    prof(e, PROF_ROUTER, &t0, wbytes(&L->router) + (Is > 0 ? wbytes(&L->shared_gate) : 0));
    /* profiling runs the shared expert apart (below) to time it: the same sums in the same
     * order, so the same logits */
    int shared_inline = Is > 0 && Is == c->moe_inter && !e->prof.active;
    struct kern_moe m = {
        .n_experts = E,
        .k = k,
        .T = T,
        .hidden = H,
        .inter = (long)c->moe_inter,
        .experts = L->experts,
        .idx = b->idx,
        .wt = b->wt,
        .shared = shared_inline ? &L->shared : NULL,
        .shared_gate = shared_inline ? b->sgate : NULL,
        .x = b->h,
        .y = b->y,
    };
    if ((rc = kern_moe(e->kc, &m)) < 0)
        return rc;
    if (e->prof.active) {
        double eb = 0;
        for (long i = 0; i < T * k; i++)
            if (b->idx[i] >= 0 && b->idx[i] < E)
                eb += expert_bytes(&L->experts[b->idx[i]]);
        prof(e, PROF_EXPERTS, &t0, eb);
    }
    if (Is > 0 && !shared_inline) {
        /* a shared expert of another width than the routed ones: on its own */
        float *gt = b->tmp, *up = b->tmp + T * Is;
        if ((rc = kern_matmul(e->kc, &L->shared.gate, b->h, T, gt)) < 0 ||
            (rc = kern_matmul(e->kc, &L->shared.up, b->h, T, up)) < 0)
            return rc;
        kern_swiglu_on(e->kc, gt, gt, up, T * Is);
        if ((rc = kern_matmul(e->kc, &L->shared.down, gt, T, b->sh)) < 0)
            return rc;
        for (long t = 0; t < T; t++) {
            float sg = kern_sigmoid1(b->sgate[t]);
            for (long i = 0; i < H; i++)
                b->y[t * H + i] += sg * b->sh[t * H + i];
        }
        prof(e, PROF_SHARED, &t0, expert_bytes(&L->shared));
    }
    return 0;
}

static void add(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
}

static void embed_rows(struct eng *e, const int32_t *tok, long T, float *x)
{
    long H = (long)e->ck.cfg.hidden;
    size_t es = e->embed_type == KERN_F32 ? 4 : 2;
    for (long t = 0; t < T; t++)
        kern_convert(x + t * H, KERN_F32, (const char *)e->embed + (size_t)tok[t] * H * es,
                     e->embed_type, (size_t)H, 1.0f);
}

/* One chunk: T tokens at s->pos. */
static int forward_chunk(struct eng *e, struct seq_state *s, const int32_t *tok, long T,
                         float *logits, int all)
{
    const struct mcfg *c = &e->ck.cfg;
    long H = (long)c->hidden;
    float eps = (float)c->rms_eps;
    struct fwd_bufs b;
    int rc;
    if ((rc = get_bufs(e, T, &b)) < 0)
        return rc;
    if ((rc = seq_grow(s, s->pos + T)) < 0)
        return rc;
    seq_will_write(s, s->pos, T);
    e->prof.active = e->prof.on && T == 1;
    double tstep = prof_start(e), t0 = tstep;
    embed_rows(e, tok, T, b.x);
    prof(e, PROF_EMBED, &t0, (double)H * (e->embed_type == KERN_F32 ? 4 : 2));
    if (e->trace)
        e->trace(e->trace_ctx, -1, b.x, T, H);
    for (int l = 0; l < (int)c->n_layers; l++) {
        struct eng_layer *L = &e->L[l];
        kern_rmsnorm_on(e->kc, b.h, H, b.x, H, L->in_norm, T, H, eps);
        prof(e, PROF_NORM, &t0, 0);
        rc = L->full ? attention(e, L, l, s, T, &b) : deltanet(e, L, l, s, T, &b);
        if (rc < 0)
            return err_prefix(rc, "layer %d", l);
        t0 = prof_start(e);
        add(b.x, b.y, (size_t)T * H);
        kern_rmsnorm_on(e->kc, b.h, H, b.x, H, L->post_norm, T, H, eps);
        prof(e, PROF_NORM, &t0, 0);
        if ((rc = moe(e, L, T, &b)) < 0)
            return err_prefix(rc, "layer %d moe", l);
        t0 = prof_start(e);
        add(b.x, b.y, (size_t)T * H);
        prof(e, PROF_OTHER, &t0, 0);
        if (e->trace && l + 1 < (int)c->n_layers)
            e->trace(e->trace_ctx, l, b.x, T, H);
    }
    s->pos += T;
    /* final norm; the head on every row (all) or the last one */
    long r0 = all ? 0 : T - 1, nr = T - r0;
    kern_rmsnorm(b.h, H, b.x + r0 * H, H, e->final_norm, nr, H, eps);
    if (e->trace) {
        kern_rmsnorm(b.y, H, b.x, H, e->final_norm, T, H, eps);
        e->trace(e->trace_ctx, (int)c->n_layers - 1, b.y, T, H);
    }
    prof(e, PROF_NORM, &t0, 0);
    if (logits && (rc = kern_matmul(e->kc, &e->lm_head, b.h, nr, logits)) < 0)
        return rc;
    prof(e, PROF_LM_HEAD, &t0, logits ? wbytes(&e->lm_head) : 0);
    if (e->prof.active) {
        e->prof.total += time_s() - tstep;
        e->prof.steps++;
        e->prof.active = 0;
    }
    return 0;
}

int eng_forward(struct eng *e, struct seq_state *s, const int32_t *tokens, long T, float *logits,
                int all)
{
    if (e->gpu)
        return engc_eng_forward(e, s, tokens, T, logits, all);
    long V = (long)e->ck.cfg.vocab;
    for (long t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= V)
            return err_set(ERR_INVAL, "token %ld: id %d is outside the vocabulary (0..%ld)", t,
                           tokens[t], V - 1);
    /* a state a device holds (engine/model_cuda.c) comes back to the host first */
    int src = seq_host_write(s, s->pos, 1);
    if (src < 0)
        return src;
    long done = 0;
    while (done < T) {
        long n = T - done < e->o.chunk ? T - done : e->o.chunk;
        int last = done + n == T;
        float *lg = NULL;
        if (logits && all)
            lg = logits + done * V;
        else if (logits && last)
            lg = logits;
        int rc = forward_chunk(e, s, tokens + done, n, lg, all);
        if (rc < 0)
            return rc;
        done += n;
    }
    return 0;
}
