/*
 * model_cuda.c - the forward pass of engine/forward.c on a CUDA device (model_cuda.h).
 *
 * Weights are uploaded once from the CPU engine's kernel views (kcu_weight / kcu_experts keep
 * int4 and int8 quantized); small fp32 tensors (norms, conv, gates, RoPE frequencies) are copied
 * as the CPU engine converted them. Activations live in one device buffer sized for o.chunk
 * tokens, so prefill memory is bounded by the chunk, not the prompt. Everything is enqueued on
 * the backend's stream; the host waits only for the token upload and the logits download.
 */
#include "engine/model_cuda.h"

#include "common/ckd.h"
#include "common/err.h"
#include "common/log.h"
#include "engine/budget.h"
#include "engine/model_impl.h"

#include <limits.h>
#include <stddef.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ODD 8 /* experts per layer that may differ in precision from the rest */
#define N_ACTS 17
#define N_MIRRORS 4          /* host states held on the device at once (eng_forward dispatch) */
#define DECODE_BUCKET0 1024L /* the smallest attention bound a decode step is planned for */

struct gpu_layer {
    int full;
    float *in_norm, *post_norm;
    struct kcu_weight q, k, v, o;
    float *q_norm, *k_norm;
    struct kcu_weight qkv, z, a, b, out;
    float *conv_w, *neg_exp_a, *dt_bias, *lin_norm;
    struct kcu_weight router, shared_gate;
    struct kcu_experts experts, shared;
    int has_shared;
    /* experts of another precision than the layer's majority (the mixed recipe's int8
     * super-expert among int4 ones): zero placeholders in `experts`, computed apart */
    struct kcu_experts odd[MAX_ODD];
    int odd_id[MAX_ODD], n_odd;
};

/* Activation buffers for one chunk of at most `chunk` tokens (device, 256-byte aligned). */
struct gpu_acts {
    float *x, *h, *y, *big, *aux, *z, *o, *ab, *gb, *sgate, *logits;
    int32_t *tok, *argmax;
    int *idx;       /* [T][k] routing of the odd experts' tokens */
    float *wt, *ye; /* [T][k], [T][H] */
    float *zeros;   /* [T] router logits of a one-expert MoE (always selected, weight 1) */
};

/* A device copy of a host seq_state bound to it (seqstate.h device residency). */
struct mirror {
    struct engc *g;
    struct engc_state *m; /* NULL until first used */
    struct seq_state *s;  /* the bound host state; NULL when free */
    uint64_t used;        /* LRU stamp */
};

/* The per-step scalars of a decode step: pinned on the host, copied to the device by the step
 * itself (so a captured graph reads the new values at every replay). */
struct step_scalars {
    int32_t tok, pad;
    long pos;
};

struct engc {
    struct eng *e;
    void *stream;
    struct gpu_layer *L;
    float *final_norm, *rope_inv;
    void *embed;
    struct kcu_weight lm_head;
    struct kcu_buf *owned; /* small tensors and the embedding */
    size_t n_owned, cap_owned;
    struct kcu_buf act;
    struct gpu_acts A;
    long chunk;
    struct kcu_buf attn_work;
    float *last_row; /* the device row engc_argmax reads; NULL when none */
    /* eng_forward dispatch: host states whose newest copy is on the device */
    struct mirror mir[N_MIRRORS];
    uint64_t tick;
    /* decode steps: scalars (struct step_scalars) on the device and pinned on the host, the
     * last token's logits pinned on the host */
    struct kcu_buf step;
    struct step_scalars *hstep;
    float *hlogits;
    int step_pending; /* a step's copy of hstep may still be queued */
    int graph_on;     /* capture decode steps into CUDA graphs (LODE_CUDA_GRAPH, tests) */
    long n_captures, n_replays;
};

struct rewrite {
    uint64_t gen;
    long start;
};

struct engc_state {
    struct engc *g;
    int kv_type;
    long cap, pos, written;
    size_t row_bytes;                  /* one KV row (n_kv * head_dim elements) */
    struct kcu_buf kv[SEQ_MAX_LAYERS]; /* full layers: K [lcap] rows then V [lcap] rows */
    long lcap[SEQ_MAX_LAYERS];         /* rows of each layer's buffer; cap is the least */
    unsigned long layout;              /* bumped whenever a KV buffer moves */
    float k_scale[SEQ_MAX_LAYERS], v_scale[SEQ_MAX_LAYERS];
    struct kcu_buf gdn; /* every DeltaNet layer's conv then recurrent state, layer order */
    float *conv[SEQ_MAX_LAYERS], *state[SEQ_MAX_LAYERS];
    size_t conv_floats, state_floats;
    /* snapshot validity: every write below `written` is a rewrite event */
    uint64_t gen;
    struct rewrite *ev;
    size_t n_ev, cap_ev;
    /* the decode step captured as a CUDA graph, valid while these stay the same */
    void *graph;
    unsigned long g_layout;
    long g_bucket;
    void *g_work;
    unsigned long long g_epoch;
};

struct engc_snap {
    const struct engc_state *owner;
    long pos;
    uint64_t gen;
    struct kcu_buf data;
};

static long lmax(long a, long b) { return a > b ? a : b; }

static size_t kv_elem_bytes(int t) { return t == KERN_F32 ? 4 : t == KERN_BF16 ? 2 : 1; }

/* ---------------------------------------------------------------- sizes */

static size_t layer_weight_bytes(const struct eng *e, const struct eng_layer *L)
{
    const struct mcfg *c = &e->ck.cfg;
    size_t n = 0;
    if (L->full)
        n += kern_weight_bytes(&L->q) + kern_weight_bytes(&L->k) + kern_weight_bytes(&L->v) +
             kern_weight_bytes(&L->o);
    else
        n += kern_weight_bytes(&L->qkv) + kern_weight_bytes(&L->z) + kern_weight_bytes(&L->a) +
             kern_weight_bytes(&L->b) + kern_weight_bytes(&L->out);
    n += kern_weight_bytes(&L->router);
    for (int64_t x = 0; x < c->n_experts; x++)
        n += kern_weight_bytes(&L->experts[x].gate) + kern_weight_bytes(&L->experts[x].up) +
             kern_weight_bytes(&L->experts[x].down);
    if (c->shared_inter > 0)
        n += kern_weight_bytes(&L->shared.gate) + kern_weight_bytes(&L->shared.up) +
             kern_weight_bytes(&L->shared.down) + kern_weight_bytes(&L->shared_gate);
    return n;
}

/* Floats of each activation buffer for T tokens (the order of struct gpu_acts); the sizes live
 * in engine/budget.c so that `lode inspect --budget` plans with the same numbers. */
_Static_assert(N_ACTS == BUDGET_N_ACTS, "gpu_acts and budget_act_floats disagree");
static void act_floats(const struct mcfg *c, long T, size_t n[N_ACTS])
{
    budget_act_floats(c, T, n);
}

static size_t act_bytes_for(const struct mcfg *c, long T) { return (size_t)budget_act_bytes(c, T); }

void engc_sizes(const struct eng *e, size_t *weight_bytes, size_t *act_bytes)
{
    const struct mcfg *c = &e->ck.cfg;
    size_t w = 0;
    for (int l = 0; l < (int)c->n_layers; l++)
        w += layer_weight_bytes(e, &e->L[l]);
    size_t es = e->embed_type == KERN_F32 ? 4 : 2;
    w += (size_t)c->vocab * (size_t)c->hidden * es + kern_weight_bytes(&e->lm_head);
    if (weight_bytes)
        *weight_bytes = w;
    if (act_bytes)
        *act_bytes = act_bytes_for(c, e->o.chunk > 0 ? e->o.chunk : 256);
}

/* ---------------------------------------------------------------- upload */

static int up_bytes(struct engc *g, const void *src, size_t bytes, const char *what, void **out)
{
    if (g->n_owned == g->cap_owned) {
        size_t cap = g->cap_owned ? g->cap_owned * 2 : 256;
        struct kcu_buf *n = realloc(g->owned, cap * sizeof *n);
        if (!n)
            return err_set(ERR_NOMEM, "out of memory");
        g->owned = n;
        g->cap_owned = cap;
    }
    struct kcu_buf *b = &g->owned[g->n_owned];
    memset(b, 0, sizeof *b);
    int rc = kcu_alloc(b, bytes ? bytes : 4, what);
    if (rc < 0)
        return rc;
    g->n_owned++;
    if ((rc = kcu_upload(b->ptr, src, bytes)) < 0)
        return rc;
    *out = b->ptr;
    return 0;
}

static int up_f32(struct engc *g, const float *src, long n, const char *what, float **out)
{
    return up_bytes(g, src, (size_t)n * sizeof(float), what, (void **)out);
}

static int same_kind(const struct kern_weight *a, const struct kern_weight *b)
{
    int q = a->type == KERN_I4 || a->type == KERN_I8;
    return a->type == b->type && a->n == b->n && a->k == b->k &&
           (!q || (a->group == b->group && a->scale_type == b->scale_type));
}

static int same_expert(const struct kern_expert *a, const struct kern_expert *b)
{
    return same_kind(&a->gate, &b->gate) && same_kind(&a->up, &b->up) &&
           same_kind(&a->down, &b->down);
}

/* The routed experts: the kind most experts share goes into one kcu_experts; the few others
 * (at most MAX_ODD) are uploaded one by one and replaced there by all-zero weights of the
 * majority kind, which add exactly 0 (zero codes times zero scales). */
static int upload_experts(struct gpu_layer *G, const struct kern_expert *ex, int n)
{
    int major = 0, best = 0;
    for (int i = 0; i < n && best * 2 <= n; i++) {
        int cnt = 0;
        for (int j = 0; j < n; j++)
            cnt += same_expert(&ex[i], &ex[j]);
        if (cnt > best) {
            best = cnt;
            major = i;
        }
    }
    if (best == n)
        return kcu_experts_upload(&G->experts, ex, n, "experts");
    if (n - best > MAX_ODD)
        return err_set(ERR_UNSUPPORTED,
                       "cuda upload: %d of %d experts differ in precision (at most %d may)",
                       n - best, n, MAX_ODD);
    const struct kern_expert *m = &ex[major];
    size_t zb = kern_weight_bytes(&m->gate);
    if (kern_weight_bytes(&m->down) > zb)
        zb = kern_weight_bytes(&m->down);
    struct kern_expert *tmp = malloc((size_t)n * sizeof *tmp);
    void *zero = calloc(1, zb);
    int rc = 0;
    if (!tmp || !zero) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        tmp[i] = ex[i];
        if (same_expert(&ex[i], m))
            continue;
        char name[48];
        snprintf(name, sizeof name, "expert %d", i);
        if ((rc = kcu_experts_upload(&G->odd[G->n_odd], &ex[i], 1, name)) < 0)
            goto done;
        G->odd_id[G->n_odd++] = i;
        tmp[i] = *m;
        tmp[i].gate.data = tmp[i].up.data = tmp[i].down.data = zero;
        tmp[i].gate.scale = tmp[i].up.scale = tmp[i].down.scale = zero;
    }
    rc = kcu_experts_upload(&G->experts, tmp, n, "experts");
done:
    free(tmp);
    free(zero);
    return rc;
}

static int upload_layer(struct engc *g, int l)
{
    struct eng *e = g->e;
    const struct mcfg *c = &e->ck.cfg;
    const struct eng_layer *L = &e->L[l];
    struct gpu_layer *G = &g->L[l];
    long H = (long)c->hidden, hd = (long)c->head_dim, nv = (long)c->lin_v_heads;
    char w[64];
    int rc;
    snprintf(w, sizeof w, "layer %d", l);
    G->full = L->full;
    if ((rc = up_f32(g, L->in_norm, H, w, &G->in_norm)) < 0 ||
        (rc = up_f32(g, L->post_norm, H, w, &G->post_norm)) < 0)
        return err_prefix(rc, "%s", w);
    if (L->full) {
        if ((rc = kcu_weight_upload(&G->q, &L->q, "q_proj")) < 0 ||
            (rc = kcu_weight_upload(&G->k, &L->k, "k_proj")) < 0 ||
            (rc = kcu_weight_upload(&G->v, &L->v, "v_proj")) < 0 ||
            (rc = kcu_weight_upload(&G->o, &L->o, "o_proj")) < 0 ||
            (rc = up_f32(g, L->q_norm, hd, w, &G->q_norm)) < 0 ||
            (rc = up_f32(g, L->k_norm, hd, w, &G->k_norm)) < 0)
            return err_prefix(rc, "%s", w);
    } else {
        long cd = (long)mcfg_conv_dim(c);
        if ((rc = kcu_weight_upload(&G->qkv, &L->qkv, "in_proj_qkv")) < 0 ||
            (rc = kcu_weight_upload(&G->z, &L->z, "in_proj_z")) < 0 ||
            (rc = kcu_weight_upload(&G->a, &L->a, "in_proj_a")) < 0 ||
            (rc = kcu_weight_upload(&G->b, &L->b, "in_proj_b")) < 0 ||
            (rc = kcu_weight_upload(&G->out, &L->out, "out_proj")) < 0 ||
            (rc = up_f32(g, L->conv_w, cd * (long)c->conv_kernel, w, &G->conv_w)) < 0 ||
            (rc = up_f32(g, L->neg_exp_a, nv, w, &G->neg_exp_a)) < 0 ||
            (rc = up_f32(g, L->dt_bias, nv, w, &G->dt_bias)) < 0 ||
            (rc = up_f32(g, L->lin_norm, (long)c->lin_v_dim, w, &G->lin_norm)) < 0)
            return err_prefix(rc, "%s", w);
    }
    if ((rc = kcu_weight_upload(&G->router, &L->router, "router")) < 0 ||
        (rc = upload_experts(G, L->experts, (int)c->n_experts)) < 0)
        return err_prefix(rc, "%s", w);
    if (c->shared_inter > 0) {
        if ((rc = kcu_experts_upload(&G->shared, &L->shared, 1, "shared expert")) < 0 ||
            (rc = kcu_weight_upload(&G->shared_gate, &L->shared_gate, "shared_expert_gate")) < 0)
            return err_prefix(rc, "%s", w);
        G->has_shared = 1;
    }
    return 0;
}

static void free_layer(struct gpu_layer *G)
{
    kcu_weight_free(&G->q);
    kcu_weight_free(&G->k);
    kcu_weight_free(&G->v);
    kcu_weight_free(&G->o);
    kcu_weight_free(&G->qkv);
    kcu_weight_free(&G->z);
    kcu_weight_free(&G->a);
    kcu_weight_free(&G->b);
    kcu_weight_free(&G->out);
    kcu_weight_free(&G->router);
    kcu_weight_free(&G->shared_gate);
    kcu_experts_free(&G->experts);
    kcu_experts_free(&G->shared);
    for (int i = 0; i < G->n_odd; i++)
        kcu_experts_free(&G->odd[i]);
}

static int alloc_acts(struct engc *g)
{
    const struct mcfg *c = &g->e->ck.cfg;
    size_t n[N_ACTS];
    act_floats(c, g->chunk, n);
    int rc = kcu_alloc(&g->act, act_bytes_for(c, g->chunk), "activations");
    if (rc < 0)
        return rc;
    char *p = g->act.ptr;
    void **dst[N_ACTS] = { (void **)&g->A.x,      (void **)&g->A.h,      (void **)&g->A.y,
                           (void **)&g->A.big,    (void **)&g->A.aux,    (void **)&g->A.z,
                           (void **)&g->A.o,      (void **)&g->A.ab,     (void **)&g->A.gb,
                           (void **)&g->A.sgate,  (void **)&g->A.logits, (void **)&g->A.tok,
                           (void **)&g->A.argmax, (void **)&g->A.idx,    (void **)&g->A.wt,
                           (void **)&g->A.ye,     (void **)&g->A.zeros };
    for (int i = 0; i < N_ACTS; i++) {
        *dst[i] = p;
        /* 256-byte alignment: kcu_moe and the 16-byte loads need at least 16 */
        p += (n[i] * 4 + 255) & ~(size_t)255;
    }
    return kcu_fill(g->A.zeros, 0, n[16] * sizeof(float));
}

static int release(struct seq_state *s);

void engc_close(struct engc *g)
{
    if (!g)
        return;
    /* host states the device still holds come back to the host first */
    for (int i = 0; i < N_MIRRORS; i++) {
        if (g->mir[i].s && release(g->mir[i].s) < 0)
            log_msg(LOG_WARN, "cuda engine: a sequence state is lost: %s", err_msg());
        if (g->mir[i].s) { /* the copy failed: the state is left empty on the host */
            struct seq_state *hs = g->mir[i].s;
            hs->dev_ops = NULL;
            hs->dev = NULL;
            hs->host_kv = LONG_MAX;
            hs->host_gdn = 1;
            seq_reset(hs);
            g->mir[i].s = NULL;
        }
    }
    kcu_sync(); /* nothing may still use what is freed below */
    for (int i = 0; i < N_MIRRORS; i++)
        engc_state_free(g->mir[i].m);
    kcu_free(&g->step);
    kcu_host_free(g->hstep);
    kcu_host_free(g->hlogits);
    if (g->L)
        for (int l = 0; l < (int)g->e->ck.cfg.n_layers; l++)
            free_layer(&g->L[l]);
    free(g->L);
    kcu_weight_free(&g->lm_head);
    for (size_t i = 0; i < g->n_owned; i++)
        kcu_free(&g->owned[i]);
    free(g->owned);
    kcu_free(&g->act);
    kcu_free(&g->attn_work);
    free(g);
}

int engc_open(struct engc **out, struct eng *e, int dev)
{
    *out = NULL;
    int rc = kcu_init(dev);
    if (rc < 0)
        return err_prefix(rc, "cuda engine");
    const struct mcfg *c = &e->ck.cfg;
    size_t wb, ab, fr = 0, tot = 0;
    engc_sizes(e, &wb, &ab);
    if ((rc = kcu_mem_info(&fr, &tot)) < 0)
        return rc;
    /* weights + one chunk of activations + a margin for the KV cache, scratch and the runtime */
    if ((rc = budget_check_open(wb, ab, e->o.chunk, fr, tot)) < 0)
        return rc;
    struct engc *g = calloc(1, sizeof *g);
    if (!g)
        return err_set(ERR_NOMEM, "out of memory");
    g->e = e;
    g->stream = kcu_stream();
    g->chunk = e->o.chunk > 0 ? e->o.chunk : 256;
    if (!(g->L = calloc((size_t)c->n_layers, sizeof *g->L))) {
        free(g);
        return err_set(ERR_NOMEM, "out of memory");
    }
    for (int l = 0; l < (int)c->n_layers; l++)
        if ((rc = upload_layer(g, l)) < 0)
            goto fail;
    size_t es = e->embed_type == KERN_F32 ? 4 : 2, eb;
    if (ckd_mul_sz(&eb, (size_t)c->vocab * es, (size_t)c->hidden)) {
        rc = err_set(ERR_INVAL, "cuda engine: embedding size overflow");
        goto fail;
    }
    if ((rc = up_bytes(g, e->embed, eb, "embed_tokens", &g->embed)) < 0 ||
        (rc = up_f32(g, e->final_norm, (long)c->hidden, "norm", &g->final_norm)) < 0 ||
        (rc = up_f32(g, e->rope_inv, (long)c->rotary_dim / 2, "rope", &g->rope_inv)) < 0 ||
        (rc = kcu_weight_upload(&g->lm_head, &e->lm_head, "lm_head")) < 0 ||
        (rc = alloc_acts(g)) < 0 ||
        (rc = kcu_alloc(&g->step, sizeof(struct step_scalars), "decode step")) < 0 ||
        (rc = kcu_host_alloc((void **)&g->hstep, sizeof *g->hstep)) < 0 ||
        (rc = kcu_host_alloc((void **)&g->hlogits, (size_t)c->vocab * sizeof(float))) < 0)
        goto fail;
    memset(g->hstep, 0, sizeof *g->hstep);
    const char *ge = getenv("LODE_CUDA_GRAPH");
    g->graph_on = !(ge && !strcmp(ge, "0"));
    /* kcu_upload / kcu_fill drain the device themselves; this also reports a fault of any
     * earlier asynchronous work before the engine is handed out */
    if ((rc = kcu_sync()) < 0)
        goto fail;
    *out = g;
    return 0;
fail:
    engc_close(g);
    return err_prefix(rc, "cuda engine");
}

struct eng *engc_eng(const struct engc *g) { return g->e; }

/* ---------------------------------------------------------------- state */

static int record_write(struct engc_state *s, long pos, long n)
{
    if (pos < s->written) {
        if (s->n_ev == s->cap_ev) {
            size_t cap = s->cap_ev ? s->cap_ev * 2 : 16;
            struct rewrite *r = realloc(s->ev, cap * sizeof *r);
            if (!r)
                return err_set(ERR_NOMEM, "out of memory");
            s->ev = r;
            s->cap_ev = cap;
        }
        s->gen++;
        s->ev[s->n_ev].gen = s->gen;
        s->ev[s->n_ev].start = pos;
        s->n_ev++;
    }
    s->written = pos + n;
    return 0;
}

/* Grows every full layer's K/V to at least cap rows, keeping rows [0, written). Layer by layer
 * (the peak is one layer's old and new buffers); a failure half-way leaves the grown layers
 * consistent (each knows its own rows) and a retry continues from there. */
static int state_reserve(struct engc_state *s, long cap)
{
    if (cap <= s->cap)
        return 0;
    long nc = lmax(cap, s->cap + s->cap / 2);
    size_t half;
    if (ckd_mul_sz(&half, (size_t)nc, s->row_bytes))
        return err_set(ERR_NOMEM, "cuda state: KV size overflow (%ld rows)", nc);
    struct seq_dims d;
    eng_state_dims(s->g->e, &d);
    int rc;
    for (int l = 0; l < d.n_layers; l++) {
        if (!d.is_full[l] || s->lcap[l] >= cap)
            continue;
        struct kcu_buf nb = { 0 };
        char what[48];
        snprintf(what, sizeof what, "layer %d KV cache (%ld tokens)", l, nc);
        if ((rc = kcu_alloc(&nb, 2 * half, what)) < 0)
            return rc;
        size_t keep = (size_t)s->written * s->row_bytes;
        size_t old_half = (size_t)s->lcap[l] * s->row_bytes;
        if (keep && s->kv[l].ptr &&
            ((rc = kcu_copy(nb.ptr, s->kv[l].ptr, keep, s->g->stream)) < 0 ||
             (rc = kcu_copy((char *)nb.ptr + half, (char *)s->kv[l].ptr + old_half, keep,
                            s->g->stream)) < 0)) {
            kcu_free(&nb);
            return rc;
        }
        if ((rc = kcu_sync()) < 0) {
            kcu_free(&nb);
            return rc;
        }
        kcu_free(&s->kv[l]);
        s->kv[l] = nb;
        s->lcap[l] = nc;
        s->layout++;
    }
    long least = nc;
    for (int l = 0; l < d.n_layers; l++)
        if (d.is_full[l] && s->lcap[l] < least)
            least = s->lcap[l];
    s->cap = least;
    return 0;
}

static void *k_rows(const struct engc_state *s, int l) { return s->kv[l].ptr; }
static void *v_rows(const struct engc_state *s, int l)
{
    return (char *)s->kv[l].ptr + (size_t)s->lcap[l] * s->row_bytes;
}

void engc_state_free(struct engc_state *s)
{
    if (!s)
        return;
    kcu_sync();
    kcu_graph_free(s->graph);
    for (int l = 0; l < SEQ_MAX_LAYERS; l++)
        kcu_free(&s->kv[l]);
    kcu_free(&s->gdn);
    free(s->ev);
    free(s);
}

int engc_state_reset(struct engc_state *s)
{
    int rc = kcu_sync();
    if (rc < 0 || (s->gdn.ptr && (rc = kcu_fill(s->gdn.ptr, 0, s->gdn.bytes)) < 0))
        return rc;
    /* kcu_fill is complete when it returns (device.cu); kept as the place that reports an
     * asynchronous fault before the state is reused */
    if ((rc = kcu_sync()) < 0)
        return rc;
    s->pos = 0;
    return 0;
}

static int state_new(struct engc *g, struct engc_state **out, long cap, int kv_type)
{
    *out = NULL;
    struct eng *e = g->e;
    struct seq_dims d;
    eng_state_dims(e, &d);
    int rc = seq_dims_check(&d);
    if (rc < 0)
        return rc;
    struct engc_state *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(ERR_NOMEM, "out of memory");
    s->g = g;
    if (kv_type != KERN_FP8 && kv_type != KERN_BF16 && kv_type != KERN_F32) {
        free(s);
        return err_set(ERR_INVAL, "cuda state: KV type %s", kern_dtype_name(kv_type));
    }
    s->kv_type = kv_type;
    s->row_bytes = (size_t)d.n_kv * (size_t)d.head_dim * kv_elem_bytes(s->kv_type);
    s->conv_floats = (size_t)d.conv_ch * (size_t)(d.conv_k - 1);
    s->state_floats = (size_t)d.n_v * (size_t)d.dk * (size_t)d.dv;
    size_t n_gdn = 0;
    for (int l = 0; l < d.n_layers; l++) {
        s->k_scale[l] = d.is_full[l] ? e->L[l].k_scale : 1.0f;
        s->v_scale[l] = d.is_full[l] ? e->L[l].v_scale : 1.0f;
        if (!d.is_full[l])
            n_gdn++;
    }
    if (n_gdn) {
        size_t per = (s->conv_floats + s->state_floats) * sizeof(float);
        if ((rc = kcu_alloc(&s->gdn, n_gdn * per, "DeltaNet states")) < 0)
            goto fail;
        char *p = s->gdn.ptr;
        for (int l = 0; l < d.n_layers; l++) {
            if (d.is_full[l])
                continue;
            s->conv[l] = (float *)p;
            s->state[l] = (float *)(p + s->conv_floats * sizeof(float));
            p += per;
        }
    }
    if ((rc = state_reserve(s, cap > 0 ? cap : 256)) < 0 || (rc = engc_state_reset(s)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    engc_state_free(s);
    return rc;
}

int engc_state_new(struct engc *g, struct engc_state **out, long cap)
{
    return state_new(g, out, cap, g->e->o.kv_type);
}

long engc_state_pos(const struct engc_state *s) { return s->pos; }

/* ---------------------------------------------------------------- forward */

static int attn_work(struct engc *g, const struct kern_attn *a, void **work, size_t *bytes)
{
    size_t need = kcs_attention_work_bytes(a);
    if (need > g->attn_work.bytes) {
        int rc = kcu_sync();
        if (rc < 0)
            return rc;
        kcu_free(&g->attn_work);
        /* grow geometrically so a long decode does not reallocate every step */
        if ((rc = kcu_alloc(&g->attn_work, need + need / 2, "attention work")) < 0)
            return rc;
    }
    *work = g->attn_work.ptr;
    *bytes = g->attn_work.bytes;
    return 0;
}

/* A decode step (dpos non-NULL) reads its position from the device and plans the attention
 * split for `bound` positions, so that one captured launch serves every position below it. */
static int attention(struct engc *g, struct gpu_layer *G, int l, struct engc_state *s, long T,
                     const long *dpos, long bound)
{
    const struct mcfg *c = &g->e->ck.cfg;
    struct gpu_acts *A = &g->A;
    int nh = (int)c->n_heads, nkv = (int)c->n_kv_heads, hd = (int)c->head_dim;
    long qo = (long)mcfg_q_out(c), kvo = (long)mcfg_kv_out(c);
    long qstride = c->attn_output_gate ? 2L * hd : hd;
    float *qg = A->big, *k = A->aux, *v = A->aux + T * kvo;
    int rc;
    if ((rc = kcu_matmul(&G->q, A->h, T, qg, g->stream)) < 0 ||
        (rc = kcu_matmul(&G->k, A->h, T, k, g->stream)) < 0 ||
        (rc = kcu_matmul(&G->v, A->h, T, v, g->stream)) < 0)
        return rc;
    struct kcs_attn_prep p = {
        .n_q = nh,
        .n_kv = nkv,
        .head_dim = hd,
        .rot_dim = (int)c->rotary_dim,
        .T = T,
        .pos0 = s->pos,
        .q = qg,
        .q_tok = qo,
        .q_head = qstride,
        .k = k,
        .v = v,
        .kv_tok = kvo,
        .q_norm = G->q_norm,
        .k_norm = G->k_norm,
        .eps = (float)c->rms_eps,
        .rope_inv = g->rope_inv,
        .mscale = g->e->rope_mscale,
        .kv_type = s->kv_type,
        .k_cache = k_rows(s, l),
        .v_cache = v_rows(s, l),
        .cap = s->lcap[l],
        .k_scale = s->k_scale[l],
        .v_scale = s->v_scale[l],
        .dpos = dpos,
    };
    if ((rc = kcs_attn_prep(&p, g->stream)) < 0)
        return rc;
    struct kern_attn a = {
        .n_q = nh,
        .n_kv = nkv,
        .head_dim = hd,
        .T = T,
        .pos0 = dpos ? bound - 1 : s->pos,
        .q = qg,
        .q_tok = qo,
        .q_head = qstride,
        .kv_type = s->kv_type,
        .k = k_rows(s, l),
        .v = v_rows(s, l),
        .k_scale = s->k_scale[l],
        .v_scale = s->v_scale[l],
        .scale = 1.0f / sqrtf((float)hd),
        .out = A->z,
    };
    void *work;
    size_t wbytes;
    if ((rc = attn_work(g, &a, &work, &wbytes)) < 0)
        return rc;
    /* the output gate is the second half of each q_proj head, fused into the epilogue */
    const float *gate = c->attn_output_gate ? qg + hd : NULL;
    rc = dpos ? kcs_attention_dpos(&a, dpos, gate, qo, qstride, work, wbytes, g->stream)
              : kcs_attention(&a, gate, qo, qstride, work, wbytes, g->stream);
    if (rc < 0)
        return rc;
    return kcu_matmul(&G->o, A->z, T, A->y, g->stream);
}

static int deltanet(struct engc *g, struct gpu_layer *G, int l, struct engc_state *s, long T)
{
    const struct mcfg *c = &g->e->ck.cfg;
    struct gpu_acts *A = &g->A;
    long cd = (long)mcfg_conv_dim(c), nv = (long)c->lin_v_heads, nk = (long)c->lin_k_heads;
    long dk = (long)c->lin_k_dim, dv = (long)c->lin_v_dim;
    float *a = A->ab, *bb = A->ab + T * nv, *gg = A->gb, *beta = A->gb + T * nv;
    int rc;
    if ((rc = kcu_matmul(&G->qkv, A->h, T, A->big, g->stream)) < 0 ||
        (rc = kcu_matmul(&G->z, A->h, T, A->z, g->stream)) < 0 ||
        (rc = kcu_matmul(&G->a, A->h, T, a, g->stream)) < 0 ||
        (rc = kcu_matmul(&G->b, A->h, T, bb, g->stream)) < 0)
        return rc;
    if (T == 1) {
        /* decode: conv, gates, delta rule and gated norm in one kernel */
        struct kcs_gdn_step st = {
            .n_k = (int)nk,
            .n_v = (int)nv,
            .dk = (int)dk,
            .dv = (int)dv,
            .conv_k = (int)c->conv_kernel,
            .qkv = A->big,
            .z = A->z,
            .a = a,
            .b = bb,
            .conv_w = G->conv_w,
            .neg_exp_a = G->neg_exp_a,
            .dt_bias = G->dt_bias,
            .norm_w = G->lin_norm,
            .eps = (float)c->rms_eps,
            .conv_state = s->conv[l],
            .state = s->state[l],
            .out = A->o,
        };
        if ((rc = kcs_gdn_decode(&st, g->stream)) < 0)
            return rc;
        return kcu_matmul(&G->out, A->o, T, A->y, g->stream);
    }
    if ((rc = kcs_conv1d_silu(A->aux, A->big, cd, s->conv[l], G->conv_w, T, cd, (int)c->conv_kernel,
                              g->stream)) < 0 ||
        (rc = kcs_gdn_gates(gg, beta, a, bb, G->neg_exp_a, G->dt_bias, T, (int)nv, g->stream)) < 0)
        return rc;
    struct kern_gdn gd = {
        .n_k = (int)nk,
        .n_v = (int)nv,
        .dk = (int)dk,
        .dv = (int)dv,
        .T = T,
        .q = A->aux,
        .k = A->aux + nk * dk,
        .v = A->aux + 2 * nk * dk,
        .ld_qk = cd,
        .ld_v = cd,
        .g = gg,
        .beta = beta,
        .state = s->state[l],
        .out = A->o,
    };
    int mode = g->e->gdn_mode;
    int chunked = mode == 2 || (mode == 0 && T >= 16);
    rc = chunked ? kcs_gdn_chunked(&gd, g->stream) : kcs_gdn_recurrent(&gd, g->stream);
    if (rc < 0 || (rc = kcs_rmsnorm_gated(A->o, A->o, A->z, G->lin_norm, T * nv, dv,
                                          (float)c->rms_eps, g->stream)) < 0)
        return rc;
    return kcu_matmul(&G->out, A->o, T, A->y, g->stream);
}

static int moe(struct engc *g, struct gpu_layer *G, long T)
{
    const struct mcfg *c = &g->e->ck.cfg;
    struct gpu_acts *A = &g->A;
    int rc;
    if (G->has_shared && (rc = kcu_matmul(&G->shared_gate, A->h, T, A->sgate, g->stream)) < 0)
        return rc;
    struct kcu_moe m = {
        .k = (int)c->top_k,
        .T = T,
        .experts = &G->experts,
        .router = &G->router,
        .shared = G->has_shared ? &G->shared : NULL,
        .shared_gate = G->has_shared ? A->sgate : NULL,
        .x = A->h,
        .y = A->y,
        .idx = G->n_odd ? A->idx : NULL,
        .wt = G->n_odd ? A->wt : NULL,
    };
    if ((rc = kcu_moe(&m, g->stream)) < 0)
        return rc;
    for (int i = 0; i < G->n_odd; i++) {
        /* the odd expert on every token (a one-expert MoE: always picked with weight 1), mixed
         * in with the routing weight of the tokens that picked it */
        struct kcu_moe one = {
            .k = 1,
            .T = T,
            .experts = &G->odd[i],
            .logits = A->zeros,
            .x = A->h,
            .y = A->ye,
        };
        if ((rc = kcu_moe(&one, g->stream)) < 0 ||
            (rc = kcm_expert_mix(A->y, A->ye, A->idx, A->wt, T, (int)c->top_k, G->odd_id[i],
                                 (long)c->hidden, g->stream)) < 0)
            return rc;
    }
    return 0;
}

/* Enqueues the layers for T tokens whose ids are on the device at dtok, at the state's position
 * (or, for a decode step, at the position in device word dpos, below `bound`), then the final
 * norm and the head into dlogits (NULL: no head). Nothing here synchronises or allocates once the
 * attention work is sized, so a decode step can be captured. */
static int enqueue_forward(struct engc *g, struct engc_state *s, const int32_t *dtok, long T,
                           const long *dpos, long bound, float *dlogits, int all)
{
    const struct mcfg *c = &g->e->ck.cfg;
    struct gpu_acts *A = &g->A;
    long H = (long)c->hidden;
    float eps = (float)c->rms_eps;
    int rc;
    if ((rc = kcm_embed(A->x, g->embed, g->e->embed_type, (long)c->vocab, H, dtok, T, g->stream)) <
        0)
        return rc;
    for (int l = 0; l < (int)c->n_layers; l++) {
        struct gpu_layer *G = &g->L[l];
        if ((rc = kcm_rmsnorm(A->h, H, A->x, H, G->in_norm, T, H, eps, g->stream)) < 0)
            return err_prefix(rc, "layer %d", l);
        rc = G->full ? attention(g, G, l, s, T, dpos, bound) : deltanet(g, G, l, s, T);
        if (rc < 0 || (rc = kcm_add(A->x, A->y, (size_t)T * H, g->stream)) < 0 ||
            (rc = kcm_rmsnorm(A->h, H, A->x, H, G->post_norm, T, H, eps, g->stream)) < 0)
            return err_prefix(rc, "layer %d", l);
        if ((rc = moe(g, G, T)) < 0 || (rc = kcm_add(A->x, A->y, (size_t)T * H, g->stream)) < 0)
            return err_prefix(rc, "layer %d moe", l);
    }
    if (!dlogits)
        return 0;
    long r0 = all ? 0 : T - 1, nr = T - r0;
    if ((rc = kcm_rmsnorm(A->h, H, A->x + r0 * H, H, g->final_norm, nr, H, eps, g->stream)) < 0)
        return rc;
    return kcu_matmul(&g->lm_head, A->h, nr, dlogits, g->stream);
}

static int forward_chunk(struct engc *g, struct engc_state *s, const int32_t *tok, long T,
                         float *dlogits, int all)
{
    int rc;
    if ((rc = state_reserve(s, s->pos + T)) < 0 || (rc = record_write(s, s->pos, T)) < 0)
        return rc;
    /* the previous chunk's kernels may still read the token buffer: ordered on the stream */
    if ((rc = kcm_h2d(g->A.tok, tok, (size_t)T * sizeof *tok, g->stream)) < 0 ||
        (rc = enqueue_forward(g, s, g->A.tok, T, NULL, 0, dlogits, all)) < 0)
        return rc;
    s->pos += T;
    return 0;
}

/* ---------------------------------------------------------------- decode step (CUDA graph) */

/* The attention bound a decode step at `pos` is planned for: powers of two from
 * DECODE_BUCKET0, so a long generation re-captures its graph a handful of times. */
static long decode_bound(long pos)
{
    long b = DECODE_BUCKET0;
    while (b < pos + 1 && b <= LONG_MAX / 2)
        b *= 2;
    return b;
}

/* Sizes the attention work for `bound` before anything is captured (growing synchronises). */
static int decode_work(struct engc *g, const struct engc_state *s, long bound)
{
    const struct mcfg *c = &g->e->ck.cfg;
    struct kern_attn a = {
        .n_q = (int)c->n_heads,
        .n_kv = (int)c->n_kv_heads,
        .head_dim = (int)c->head_dim,
        .T = 1,
        .pos0 = bound - 1,
        .kv_type = s->kv_type,
        .k_scale = 1,
        .v_scale = 1,
    };
    void *work;
    size_t bytes;
    return attn_work(g, &a, &work, &bytes);
}

/* One decode step as the graph holds it: the step's scalars to the device, the layers, the
 * logits to pinned host memory. */
static int enqueue_step(struct engc *g, struct engc_state *s, long bound, int head)
{
    const struct mcfg *c = &g->e->ck.cfg;
    const int32_t *dtok = g->step.ptr;
    const long *dpos = (const long *)((char *)g->step.ptr + offsetof(struct step_scalars, pos));
    int rc;
    if ((rc = kcu_copy_async(g->step.ptr, g->hstep, sizeof *g->hstep, g->stream)) < 0 ||
        (rc = enqueue_forward(g, s, dtok, 1, dpos, bound, head ? g->A.logits : NULL, 0)) < 0)
        return rc;
    if (head)
        rc = kcu_copy_async(g->hlogits, g->A.logits, (size_t)c->vocab * sizeof(float), g->stream);
    return rc;
}

/* Records the decode step of s at bound into s->graph. A failure is not an error of the step
 * (it already ran eagerly): graphs are switched off with a warning. */
static void capture(struct engc *g, struct engc_state *s, long bound)
{
    kcu_graph_free(s->graph);
    s->graph = NULL;
    unsigned long long epoch = kcu_alloc_epoch();
    void *exec = NULL;
    int rc = kcu_capture_begin(g->stream);
    if (rc == 0)
        rc = kcu_capture_end(g->stream, enqueue_step(g, s, bound, 1) == 0, &exec);
    if (rc == 0 && epoch != kcu_alloc_epoch())
        rc = err_set(ERR_IO, "a buffer was reallocated during the capture");
    if (rc < 0) {
        kcu_graph_free(exec);
        log_msg(LOG_WARN, "cuda graph: %s; decoding without graphs", err_msg());
        g->graph_on = 0;
        return;
    }
    s->graph = exec;
    s->g_layout = s->layout;
    s->g_bucket = bound;
    s->g_work = g->attn_work.ptr;
    s->g_epoch = epoch;
    g->n_captures++;
}

/* One token at s->pos with no host synchronisation but the logits copy: the position and the
 * token travel as device scalars, so the step replays as a CUDA graph (captured the first time
 * a shape is seen: the state's KV capacity, the attention bound, the scratch buffers). Graph
 * and eager steps run the same launches, so their results are identical. */
static int decode_step(struct engc *g, struct engc_state *s, int32_t tok, float *logits)
{
    long V = (long)g->e->ck.cfg.vocab;
    int rc;
    if ((rc = state_reserve(s, s->pos + 1)) < 0 || (rc = record_write(s, s->pos, 1)) < 0)
        return rc;
    long bound = decode_bound(s->pos);
    if ((rc = decode_work(g, s, bound)) < 0)
        return rc;
    /* the previous step's copy from hstep may still be queued (a step without logits) */
    if (g->step_pending && (rc = kcu_stream_sync(g->stream)) < 0)
        return rc;
    g->step_pending = 0;
    g->hstep->tok = tok;
    g->hstep->pos = s->pos;
    int head = logits != NULL, graph = head && g->graph_on;
    if (graph && s->graph && s->g_layout == s->layout && s->g_bucket == bound &&
        s->g_work == g->attn_work.ptr && s->g_epoch == kcu_alloc_epoch()) {
        rc = kcu_graph_launch(s->graph, g->stream);
        g->n_replays++;
    } else {
        rc = enqueue_step(g, s, bound, head);
        if (rc == 0 && graph)
            capture(g, s, bound);
    }
    if (rc < 0)
        return rc;
    g->step_pending = 1;
    s->pos++;
    g->last_row = head ? g->A.logits : NULL;
    if (!head)
        return 0;
    if ((rc = kcu_stream_sync(g->stream)) < 0)
        return rc;
    g->step_pending = 0;
    memcpy(logits, g->hlogits, (size_t)V * sizeof(float));
    return 0;
}

int engc_forward(struct engc *g, struct engc_state *s, const int32_t *tokens, long T, float *logits,
                 int all)
{
    long V = (long)g->e->ck.cfg.vocab;
    if (s->g != g)
        return err_set(ERR_INVAL, "cuda forward: the state belongs to another engine");
    for (long t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= V)
            return err_set(ERR_INVAL, "token %ld: id %d is outside the vocabulary (0..%ld)", t,
                           tokens[t], V - 1);
    g->last_row = NULL;
    if (T == 1)
        return decode_step(g, s, tokens[0], logits);
    long done = 0;
    while (done < T) {
        long n = T - done < g->chunk ? T - done : g->chunk;
        int last = done + n == T;
        int head = logits && (all || last);
        int rc = forward_chunk(g, s, tokens + done, n, head ? g->A.logits : NULL, all);
        if (rc < 0)
            return rc;
        if (head) {
            /* one copy per chunk (all) or per call (the last row) */
            long rows = all ? n : 1;
            float *dst = all ? logits + done * V : logits;
            if ((rc = kcm_d2h(dst, g->A.logits, (size_t)rows * V * sizeof(float), g->stream)) < 0)
                return rc;
            g->last_row = g->A.logits + (rows - 1) * V;
        }
        done += n;
    }
    return 0;
}

void engc_set_graph(struct engc *g, int on) { g->graph_on = on != 0; }

void engc_graph_stats(const struct engc *g, long *captures, long *replays)
{
    if (captures)
        *captures = g->n_captures;
    if (replays)
        *replays = g->n_replays;
}

int engc_argmax(struct engc *g, int32_t *tok)
{
    if (!g->last_row)
        return err_set(ERR_INVAL, "cuda argmax: no logits computed by the last forward");
    int rc = kcm_argmax(g->A.argmax, g->last_row, 1, (long)g->e->ck.cfg.vocab, g->stream);
    if (rc < 0 || (rc = kcm_d2h(tok, g->A.argmax, sizeof *tok, g->stream)) < 0)
        return rc;
    return 0;
}

/* ---------------------------------------------------------------- transfer */

static int same_shape(struct engc *g, const struct engc_state *s, const struct seq_state *h,
                      const char *what)
{
    struct seq_dims d;
    eng_state_dims(g->e, &d);
    const struct seq_dims *o = &h->d;
    int same = d.n_layers == o->n_layers && d.n_kv == o->n_kv && d.head_dim == o->head_dim &&
               d.conv_ch == o->conv_ch && d.conv_k == o->conv_k && d.n_v == o->n_v &&
               d.dk == o->dk && d.dv == o->dv;
    for (int l = 0; same && l < d.n_layers; l++)
        same = !d.is_full[l] == !o->is_full[l];
    if (!same)
        return err_set(ERR_INVAL, "%s: the CPU state has other dimensions than the model", what);
    if (h->kv_type != s->kv_type)
        return err_set(ERR_INVAL, "%s: KV type %s on the CPU, %s on the device", what,
                       kern_dtype_name(h->kv_type), kern_dtype_name(s->kv_type));
    return 0;
}

/* Moves KV rows [from, to) of every full layer, and the DeltaNet states when gdn, between the
 * device state s and the host state h (up: host to device). Both hold at least `to` rows. */
static int xfer(struct engc *g, struct engc_state *s, struct seq_state *h, long from, long to,
                int gdn, int up)
{
    int rc;
    size_t off = (size_t)from * s->row_bytes;
    size_t rows = to > from ? (size_t)(to - from) * s->row_bytes : 0;
    for (int l = 0; l < h->d.n_layers; l++) {
        struct seq_layer *L = &h->layer[l];
        if (h->d.is_full[l]) {
            char *dk = (char *)k_rows(s, l) + off, *dv = (char *)v_rows(s, l) + off;
            if (!rows)
                continue;
            rc = up ? kcm_h2d(dk, L->k + off, rows, g->stream)
                    : kcm_d2h(L->k + off, dk, rows, g->stream);
            if (rc == 0)
                rc = up ? kcm_h2d(dv, L->v + off, rows, g->stream)
                        : kcm_d2h(L->v + off, dv, rows, g->stream);
        } else if (gdn) {
            size_t cb = s->conv_floats * 4, sb = s->state_floats * 4;
            rc = up ? kcm_h2d(s->conv[l], L->conv, cb, g->stream)
                    : kcm_d2h(L->conv, s->conv[l], cb, g->stream);
            if (rc == 0)
                rc = up ? kcm_h2d(s->state[l], L->state, sb, g->stream)
                        : kcm_d2h(L->state, s->state[l], sb, g->stream);
        } else {
            rc = 0;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The host state's FP8 scales on the device state (a deserialized state brings its own). */
static void take_scales(struct engc_state *s, const struct seq_state *h)
{
    for (int l = 0; l < h->d.n_layers; l++) {
        if (!h->d.is_full[l])
            continue;
        if (s->k_scale[l] != h->layer[l].k_scale || s->v_scale[l] != h->layer[l].v_scale) {
            kcu_graph_free(s->graph); /* the scales are launch parameters */
            s->graph = NULL;
        }
        s->k_scale[l] = h->layer[l].k_scale;
        s->v_scale[l] = h->layer[l].v_scale;
    }
}

int engc_state_download(struct engc *g, const struct engc_state *s, struct seq_state *out)
{
    int rc = same_shape(g, s, out, "cuda state download");
    /* out's host copy is overwritten whole: a device that held it keeps nothing of use */
    if (rc < 0 || (rc = seq_host_write(out, 0, 1)) < 0)
        return rc;
    seq_reset(out);
    if ((rc = seq_reserve(out, s->pos > 0 ? s->pos : 1)) < 0 ||
        (rc = xfer(g, (struct engc_state *)s, out, 0, s->pos, 1, 0)) < 0)
        return rc;
    for (int l = 0; l < out->d.n_layers; l++) {
        out->layer[l].k_scale = s->k_scale[l];
        out->layer[l].v_scale = s->v_scale[l];
    }
    /* the rows [0, pos) are a new timeline for out: older host snapshots go stale */
    seq_will_write(out, 0, s->pos);
    out->pos = s->pos;
    return 0;
}

int engc_state_upload(struct engc *g, struct engc_state *s, const struct seq_state *in)
{
    int rc = same_shape(g, s, in, "cuda state upload");
    /* a state some device holds is completed on the host first (not a change of its contents) */
    if (rc < 0 || (in->dev_ops && (rc = seq_host_sync((struct seq_state *)in)) < 0) ||
        (rc = state_reserve(s, in->pos > 0 ? in->pos : 1)) < 0 ||
        (rc = record_write(s, 0, in->pos)) < 0)
        return rc;
    take_scales(s, in);
    if ((rc = xfer(g, s, (struct seq_state *)in, 0, in->pos, 1, 1)) < 0)
        return rc;
    s->pos = in->pos;
    return 0;
}

/* ---------------------------------------------------------------- snapshots */

int engc_snapshot(struct engc_state *s, struct engc_snap **out)
{
    *out = NULL;
    struct engc_snap *sn = calloc(1, sizeof *sn);
    if (!sn)
        return err_set(ERR_NOMEM, "out of memory");
    sn->owner = s;
    sn->pos = s->pos;
    sn->gen = s->gen;
    int rc = 0;
    if (s->gdn.bytes &&
        ((rc = kcu_alloc(&sn->data, s->gdn.bytes, "snapshot")) < 0 ||
         (rc = kcu_copy(sn->data.ptr, s->gdn.ptr, s->gdn.bytes, s->g->stream)) < 0)) {
        engc_snap_free(sn);
        return rc;
    }
    *out = sn;
    return 0;
}

int engc_restore(struct engc_state *s, const struct engc_snap *sn)
{
    if (sn->owner != s || sn->data.bytes != s->gdn.bytes)
        return err_set(ERR_INVAL, "cuda restore: the snapshot belongs to another state");
    if (sn->pos > s->written)
        return err_set(ERR_INVAL, "cuda restore: snapshot at %ld is beyond the written rows (%ld)",
                       sn->pos, s->written);
    for (size_t i = 0; i < s->n_ev; i++)
        if (s->ev[i].gen > sn->gen && s->ev[i].start < sn->pos)
            return err_set(ERR_INVAL,
                           "cuda restore: snapshot at %ld is stale: the cache was rewritten from "
                           "position %ld",
                           sn->pos, s->ev[i].start);
    int rc;
    if (s->gdn.bytes && (rc = kcu_copy(s->gdn.ptr, sn->data.ptr, s->gdn.bytes, s->g->stream)) < 0)
        return rc;
    s->pos = sn->pos;
    return 0;
}

void engc_snap_free(struct engc_snap *sn)
{
    if (!sn)
        return;
    if (sn->data.ptr)
        kcu_sync(); /* a pending copy may still read it */
    kcu_free(&sn->data);
    free(sn);
}

/* ---------------------------------------------------------------- device residency
 *
 * eng_forward on the device binds the host seq_state to a mirror (seqstate.h: dev_ops, dev):
 * from then on the newest KV rows and DeltaNet states are on the device, the host copy is
 * completed only when the host reads it (mir_pull), snapshots are device copies (mir_snap), and
 * a state the device forgets (another state needs the mirror, the engine closes) is completed on
 * the host first. */

struct dsnap {
    struct kcu_buf b;
};

static int mir_pull(void *dev, struct seq_state *s)
{
    struct mirror *mr = dev;
    struct engc_state *m = mr->m;
    long from = s->host_kv, to = s->written;
    if (from < to && (s->dev_kv < to || to > m->cap || to > s->cap))
        return err_set(ERR_INVAL, "cuda state: KV rows %ld..%ld are held neither here nor there",
                       from, to - 1);
    return xfer(mr->g, m, s, from < to ? from : 0, from < to ? to : 0, !s->host_gdn, 0);
}

static int mir_snap(void *dev, struct seq_state *s, void **h)
{
    struct mirror *mr = dev;
    struct engc_state *m = mr->m;
    struct dsnap *d = calloc(1, sizeof *d);
    if (!d)
        return err_set(ERR_NOMEM, "out of memory");
    int rc = 0;
    if (m->gdn.bytes && ((rc = kcu_alloc(&d->b, m->gdn.bytes, "snapshot")) < 0 ||
                         (rc = kcu_copy(d->b.ptr, m->gdn.ptr, m->gdn.bytes, mr->g->stream)) < 0)) {
        kcu_free(&d->b);
        free(d);
        return err_prefix(rc, "cuda snapshot");
    }
    *h = d;
    return 0;
}

static int mir_restore(void *dev, struct seq_state *s, const void *h)
{
    struct mirror *mr = dev;
    struct engc_state *m = mr->m;
    const struct dsnap *d = h;
    if (d->b.bytes != m->gdn.bytes)
        return err_set(ERR_INVAL, "cuda restore: the snapshot has %zu bytes, the state %zu",
                       d->b.bytes, m->gdn.bytes);
    return kcu_copy(m->gdn.ptr, d->b.ptr, m->gdn.bytes, mr->g->stream);
}

static int mir_snap_read(const void *h, float *dst, size_t n)
{
    const struct dsnap *d = h;
    if (n * sizeof(float) != (d->b.ptr ? d->b.bytes : 0))
        return err_set(ERR_INVAL, "cuda snapshot: %zu floats wanted, %zu bytes held", n,
                       d->b.bytes);
    return n ? kcm_d2h(dst, d->b.ptr, n * sizeof(float), kcu_stream()) : 0;
}

static void mir_snap_free(void *h)
{
    struct dsnap *d = h;
    if (d->b.ptr)
        kcu_sync(); /* a queued copy may still read or write it */
    kcu_free(&d->b);
    free(d);
}

static void mir_unbind(void *dev, struct seq_state *s)
{
    struct mirror *mr = dev;
    if (mr->s == s)
        mr->s = NULL;
}

static const struct seq_dev_ops mir_ops = {
    .pull = mir_pull,
    .snap = mir_snap,
    .restore = mir_restore,
    .snap_read = mir_snap_read,
    .snap_free = mir_snap_free,
    .unbind = mir_unbind,
};

/* Completes s on the host and unbinds it from its device. */
static int release(struct seq_state *s)
{
    int rc = seq_host_sync(s);
    if (rc < 0)
        return rc;
    if (s->dev_ops)
        s->dev_ops->unbind(s->dev, s);
    s->dev_ops = NULL;
    s->dev = NULL;
    s->host_kv = LONG_MAX;
    s->host_gdn = 1;
    s->dev_kv = 0;
    s->dev_gdn = 0;
    return 0;
}

/* Out of device memory: the other mirrors' states go back to the host and their device copies
 * are freed. Answers how many were freed. */
static int drop_others(struct engc *g, const struct mirror *keep)
{
    int n = 0;
    for (int i = 0; i < N_MIRRORS; i++) {
        struct mirror *x = &g->mir[i];
        if (x == keep || !x->m || (x->s && release(x->s) < 0))
            continue;
        engc_state_free(x->m);
        x->m = NULL;
        n++;
    }
    return n;
}

/* Binds s to a mirror of g: a free one (of s's KV type first), else the least recently used one,
 * whose state goes back to the host. */
static int bind(struct engc *g, struct seq_state *s, struct mirror **out)
{
    int rc;
    if (s->dev_ops && (rc = release(s)) < 0) /* another engine held it */
        return rc;
    struct mirror *mr = NULL;
    for (int pass = 0; pass < 3 && !mr; pass++)
        for (int i = 0; i < N_MIRRORS && !mr; i++) {
            struct mirror *x = &g->mir[i];
            if (!x->s && (pass == 0 ? x->m && x->m->kv_type == s->kv_type : pass == 1 ? !x->m : 1))
                mr = x;
        }
    if (!mr) {
        mr = &g->mir[0];
        for (int i = 1; i < N_MIRRORS; i++)
            if (g->mir[i].used < mr->used)
                mr = &g->mir[i];
        if ((rc = release(mr->s)) < 0)
            return rc;
    }
    if (mr->m && mr->m->kv_type != s->kv_type) {
        engc_state_free(mr->m);
        mr->m = NULL;
    }
    if (!mr->m) {
        rc = state_new(g, &mr->m, lmax(s->cap, 256), s->kv_type);
        if (rc == ERR_NOMEM && drop_others(g, mr) > 0)
            rc = state_new(g, &mr->m, lmax(s->cap, 256), s->kv_type);
        if (rc < 0)
            return rc;
    }
    struct engc_state *m = mr->m;
    m->pos = 0;
    m->written = 0;
    m->n_ev = 0;
    take_scales(m, s);
    mr->g = g;
    mr->s = s;
    s->dev_ops = &mir_ops;
    s->dev = mr;
    s->dev_kv = 0;
    s->dev_gdn = 0;
    *out = mr;
    return 0;
}

int engc_attach(struct eng *e)
{
    if (e->o.backend == ENG_BACKEND_CUDA)
        return engc_open(&e->gpu, e, e->o.device);
    const char *why = NULL;
    if (kern_cuda_device_count(&why) <= 0)
        return 0;
    if (engc_open(&e->gpu, e, e->o.device) < 0) {
        log_msg(LOG_WARN, "backend auto: running on the CPU: %s", err_msg());
        e->gpu = NULL;
    }
    return 0;
}

int engc_backend_of(const struct eng *e) { return e->gpu ? ENG_BACKEND_CUDA : ENG_BACKEND_CPU; }

void engc_detach(struct eng *e)
{
    engc_close(e->gpu);
    e->gpu = NULL;
}

int engc_eng_forward(struct eng *e, struct seq_state *s, const int32_t *tokens, long T,
                     float *logits, int all)
{
    struct engc *g = e->gpu;
    long V = (long)e->ck.cfg.vocab;
    int rc;
    for (long t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= V)
            return err_set(ERR_INVAL, "token %ld: id %d is outside the vocabulary (0..%ld)", t,
                           tokens[t], V - 1);
    if (T == 0)
        return 0;
    struct mirror *mr = s->dev_ops == &mir_ops ? s->dev : NULL;
    if (mr && mr->g != g)
        mr = NULL; /* another engine's: bind() moves it */
    if (!mr && (rc = bind(g, s, &mr)) < 0)
        return rc;
    mr->used = ++g->tick;
    struct engc_state *m = mr->m;
    long p0 = s->pos;
    if ((rc = seq_grow(s, p0 + T)) < 0)
        return rc;
    rc = state_reserve(m, p0 + T);
    if (rc == ERR_NOMEM && drop_others(g, mr) > 0)
        rc = state_reserve(m, p0 + T);
    if (rc < 0)
        return rc;
    /* what the device lacks of rows [0, p0) and the DeltaNet states comes from the host */
    if (s->dev_kv < p0 || !s->dev_gdn) {
        long from = s->dev_kv < p0 ? s->dev_kv : p0;
        if ((from < p0 && s->host_kv < p0) || (!s->dev_gdn && !s->host_gdn))
            return err_set(ERR_INVAL, "cuda forward: the state is held neither here nor there");
        if ((rc = xfer(g, m, s, from, p0, !s->dev_gdn, 1)) < 0)
            return rc;
        s->dev_kv = p0;
        s->dev_gdn = 1;
    }
    m->pos = p0;
    m->written = p0;
    m->n_ev = 0;
    seq_will_write(s, p0, T);
    /* from here on the device holds the newest states (a failed step leaves them undefined, as
     * on the CPU) */
    s->host_gdn = 0;
    if (s->host_kv > p0)
        s->host_kv = p0;
    if ((rc = engc_forward(g, m, tokens, T, logits, all)) < 0)
        return rc;
    s->dev_kv = p0 + T;
    s->pos = m->pos;
    return 0;
}

struct engc *engc_of(const struct eng *e) { return e->gpu; }
