/*
 * model.c - opening a checkpoint for the CPU engine: every weight of the
 * checkpoint (engine/ckpt.h) becomes a kernel view (kernels/kernels.h) that
 * points into the mmap; small tensors (norms, conv, gates) become fp32 arrays.
 */
#include "engine/model_cuda.h"
#include "engine/model_impl.h"

#include "common/err.h"
#include "common/fs.h"
#include "common/hash.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct eng_opts eng_opts_default(void)
{
    struct eng_opts o = { 0 };
    o.threads = 0;
    o.isa = KERN_ISA_AUTO;
    o.kv_type = KERN_FP8;
    o.chunk = 256;
    o.yarn = 0;
    return o;
}

static void *own(struct eng *e, size_t bytes)
{
    if (e->n_owned == e->cap_owned) {
        size_t cap = e->cap_owned ? e->cap_owned * 2 : 64;
        void **n = realloc(e->owned, cap * sizeof *n);
        if (!n)
            return NULL;
        e->owned = n;
        e->cap_owned = cap;
    }
    void *p = calloc(1, bytes ? bytes : 1);
    if (p)
        e->owned[e->n_owned++] = p;
    return p;
}

static int kern_type_of(enum st_dtype d)
{
    switch (d) {
    case ST_F32: return KERN_F32;
    case ST_BF16: return KERN_BF16;
    case ST_F16: return KERN_F16;
    default: return -1;
    }
}

/* A small tensor as an owned fp32 array of exactly n elements. */
static int small_f32(struct eng *e, const struct ckpt_tensor *t, int64_t n, const char *what,
                     float **out)
{
    *out = NULL;
    if (!t->data)
        return err_set(ERR_INVAL, "%s: tensor missing", what);
    int64_t numel = 1;
    for (int i = 0; i < t->ndim; i++)
        numel *= t->shape[i];
    if (numel != n)
        return err_set(ERR_INVAL, "%s (%s): %lld elements, expected %lld", what,
                       t->name ? t->name : "?", (long long)numel, (long long)n);
    int kt = kern_type_of(t->dtype);
    if (kt < 0)
        return err_set(ERR_UNSUPPORTED, "%s (%s): dtype %s", what, t->name ? t->name : "?",
                       st_dtype_name(t->dtype));
    float *p = own(e, (size_t)n * sizeof(float));
    if (!p)
        return err_set(ERR_NOMEM, "out of memory");
    int rc = kern_convert(p, KERN_F32, t->data, kt, (size_t)n, 1.0f);
    if (rc < 0)
        return rc;
    *out = p;
    return 0;
}

/* A linear layer's view for the kernels, checked against the expected shape. */
static int bind_linear(struct eng *e, const struct quant_linear *q, int64_t out, int64_t in,
                       const char *what, struct kern_weight *w)
{
    memset(w, 0, sizeof *w);
    const char *name = q->name ? q->name : what;
    if (!q->data)
        return err_set(ERR_INVAL, "%s: weight missing", name);
    if (q->out != out || q->in != in)
        return err_set(ERR_INVAL, "%s: shape [%lld, %lld], expected [%lld, %lld]", name,
                       (long long)q->out, (long long)q->in, (long long)out, (long long)in);
    w->n = (long)out;
    w->k = (long)in;
    if (q->bits == 16) {
        int kt = kern_type_of(q->dtype);
        if (kt == KERN_F16) {
            /* The kernels stream BF16/F32; an F16 checkpoint is converted once.
             * (The published checkpoint has no F16 weights.) */
            float *p = own(e, (size_t)out * (size_t)in * sizeof(float));
            if (!p)
                return err_set(ERR_NOMEM, "%s: out of memory converting F16", name);
            kern_convert(p, KERN_F32, q->data, KERN_F16, (size_t)out * (size_t)in, 1.0f);
            w->type = KERN_F32;
            w->data = p;
        } else if (kt >= 0) {
            w->type = kt;
            w->data = q->data;
        } else {
            return err_set(ERR_UNSUPPORTED, "%s: dtype %s", name, st_dtype_name(q->dtype));
        }
    } else if (q->bits == 4 || q->bits == 8) {
        w->type = q->bits == 4 ? KERN_I4 : KERN_I8;
        w->data = q->data;
        w->scale = q->scale;
        w->scale_type = kern_type_of(q->scale_dtype);
        w->group = (long)q->group;
        if (w->scale_type < 0)
            return err_set(ERR_UNSUPPORTED, "%s: scale dtype %s", name,
                           st_dtype_name(q->scale_dtype));
    } else {
        return err_set(ERR_UNSUPPORTED, "%s: %d-bit weights", name, q->bits);
    }
    int rc = kern_weight_check(w);
    return rc < 0 ? err_prefix(rc, "%s", name) : 0;
}

static int bind_layer(struct eng *e, int l)
{
    const struct mcfg *c = &e->ck.cfg;
    const struct ckpt_layer *cl = &e->ck.layers[l];
    struct eng_layer *L = &e->L[l];
    int64_t H = c->hidden, hd = c->head_dim;
    char what[64];
    int rc;
    L->full = cl->type == MCFG_FULL_ATTN;
    snprintf(what, sizeof what, "layer %d", l);
    if ((rc = small_f32(e, &cl->input_norm, H, "input_layernorm", &L->in_norm)) < 0 ||
        (rc = small_f32(e, &cl->post_norm, H, "post_attention_layernorm", &L->post_norm)) < 0)
        return err_prefix(rc, "%s", what);
    if (L->full) {
        int64_t qo = mcfg_q_out(c), kvo = mcfg_kv_out(c);
        if ((rc = bind_linear(e, &cl->q_proj, qo, H, "q_proj", &L->q)) < 0 ||
            (rc = bind_linear(e, &cl->k_proj, kvo, H, "k_proj", &L->k)) < 0 ||
            (rc = bind_linear(e, &cl->v_proj, kvo, H, "v_proj", &L->v)) < 0 ||
            (rc = bind_linear(e, &cl->o_proj, H, c->n_heads * hd, "o_proj", &L->o)) < 0 ||
            (rc = small_f32(e, &cl->q_norm, hd, "q_norm", &L->q_norm)) < 0 ||
            (rc = small_f32(e, &cl->k_norm, hd, "k_norm", &L->k_norm)) < 0)
            return err_prefix(rc, "%s", what);
        L->k_scale = L->v_scale = 1.0f;
        float *sc;
        if (cl->k_scale.data && small_f32(e, &cl->k_scale, 1, "k_scale", &sc) == 0)
            L->k_scale = sc[0];
        if (cl->v_scale.data && small_f32(e, &cl->v_scale, 1, "v_scale", &sc) == 0)
            L->v_scale = sc[0];
    } else {
        int64_t nv = c->lin_v_heads, cd = mcfg_conv_dim(c), vd = mcfg_lin_val_dim(c);
        float *a_log;
        if ((rc = bind_linear(e, &cl->in_proj_qkv, cd, H, "in_proj_qkv", &L->qkv)) < 0 ||
            (rc = bind_linear(e, &cl->in_proj_z, vd, H, "in_proj_z", &L->z)) < 0 ||
            (rc = bind_linear(e, &cl->in_proj_a, nv, H, "in_proj_a", &L->a)) < 0 ||
            (rc = bind_linear(e, &cl->in_proj_b, nv, H, "in_proj_b", &L->b)) < 0 ||
            (rc = bind_linear(e, &cl->out_proj, H, vd, "out_proj", &L->out)) < 0 ||
            (rc = small_f32(e, &cl->conv1d, cd * c->conv_kernel, "conv1d", &L->conv_w)) < 0 ||
            (rc = small_f32(e, &cl->A_log, nv, "A_log", &a_log)) < 0 ||
            (rc = small_f32(e, &cl->dt_bias, nv, "dt_bias", &L->dt_bias)) < 0 ||
            (rc = small_f32(e, &cl->lin_norm, c->lin_v_dim, "linear_attn.norm", &L->lin_norm)) < 0)
            return err_prefix(rc, "%s", what);
        /* g = -exp(A_log) * softplus(a + dt_bias): the constant factor once */
        L->neg_exp_a = a_log;
        for (int64_t i = 0; i < nv; i++)
            L->neg_exp_a[i] = -expf(a_log[i]);
    }
    int64_t E = c->n_experts, I = c->moe_inter, Is = c->shared_inter;
    if ((rc = bind_linear(e, &cl->router, E, H, "router", &L->router)) < 0)
        return err_prefix(rc, "%s", what);
    L->experts = own(e, (size_t)E * sizeof *L->experts);
    if (!L->experts)
        return err_set(ERR_NOMEM, "out of memory");
    for (int64_t x = 0; x < E; x++) {
        struct kern_expert *ex = &L->experts[x];
        if ((rc = bind_linear(e, &cl->experts[x * 3], I, H, "expert gate", &ex->gate)) < 0 ||
            (rc = bind_linear(e, &cl->experts[x * 3 + 1], I, H, "expert up", &ex->up)) < 0 ||
            (rc = bind_linear(e, &cl->experts[x * 3 + 2], H, I, "expert down", &ex->down)) < 0)
            return err_prefix(rc, "%s expert %lld", what, (long long)x);
    }
    if (Is > 0) {
        if ((rc = bind_linear(e, &cl->sh_gate, Is, H, "shared gate", &L->shared.gate)) < 0 ||
            (rc = bind_linear(e, &cl->sh_up, Is, H, "shared up", &L->shared.up)) < 0 ||
            (rc = bind_linear(e, &cl->sh_down, H, Is, "shared down", &L->shared.down)) < 0 ||
            (rc = bind_linear(e, &cl->sh_expert_gate, 1, H, "shared_expert_gate",
                              &L->shared_gate)) < 0)
            return err_prefix(rc, "%s", what);
    }
    return 0;
}

/* The identity states are saved under: config.json's bytes, every shard's
 * header and size, and ID_SAMPLES pages of weights spread evenly over each
 * shard. Headers carry every tensor's name, dtype, shape and offsets; the
 * sampled pages tell apart two checkpoints of the same shapes (another seed,
 * a fine-tune) without reading 28 GB at every open (16 x 4 KiB per shard). */
#define ID_SAMPLES 16
#define ID_PAGE 4096
static int model_identity(struct eng *e)
{
    char path[4096];
    struct buf cfg = { 0 };
    int rc;
    if ((rc = fs_join(path, sizeof path, e->ck.dir, "config.json")) < 0 ||
        (rc = fs_read_file(path, 16u << 20, &cfg)) < 0)
        return rc;
    struct sha256 h;
    sha256_init(&h);
    sha256_update(&h, "lode-model-v2", 13);
    sha256_update(&h, cfg.p ? cfg.p : "", cfg.len);
    buf_free(&cfg);
    for (int i = 0; i < e->ck.n_shards; i++) {
        const struct st_file *f = &e->ck.shards[i];
        uint64_t hl = f->header_len + 8, sz = f->map.n;
        uint8_t le[8];
        if (f->map.p && hl <= f->map.n)
            sha256_update(&h, f->map.p, hl);
        for (int b = 0; b < 8; b++)
            le[b] = (uint8_t)(sz >> (8 * b));
        sha256_update(&h, le, 8);
        if (!f->map.p || hl >= f->map.n)
            continue;
        uint64_t span = f->map.n - hl;
        for (uint64_t k = 0; k < ID_SAMPLES; k++) {
            uint64_t off = hl + span / ID_SAMPLES * k;
            uint64_t n = f->map.n - off < ID_PAGE ? f->map.n - off : ID_PAGE;
            sha256_update(&h, (const uint8_t *)f->map.p + off, n);
        }
    }
    sha256_final(&h, e->id);
    return 0;
}

void eng_close(struct eng *e)
{
    if (!e)
        return;
    eng_prof_print(e);
    engc_detach(e);
    for (size_t i = 0; i < e->n_owned; i++)
        free(e->owned[i]);
    free(e->owned);
    free(e->L);
    free(e->work);
    kern_cpu_free(e->kc);
    ckpt_close(&e->ck);
    free(e);
}

int eng_open(struct eng **out, const char *dir, const struct eng_opts *o)
{
    *out = NULL;
    struct eng *e = calloc(1, sizeof *e);
    if (!e)
        return err_set(ERR_NOMEM, "out of memory");
    e->o = o ? *o : eng_opts_default();
    const char *prof = getenv("LODE_PROFILE");
    e->prof.on = prof && *prof && strcmp(prof, "0") != 0;
    if (e->o.chunk <= 0)
        e->o.chunk = 256;
    if (e->o.kv_type != KERN_FP8 && e->o.kv_type != KERN_BF16 && e->o.kv_type != KERN_F32) {
        free(e);
        return err_set(ERR_INVAL, "KV cache type must be fp8, bf16 or f32");
    }
    int rc = ckpt_open(&e->ck, dir);
    if (rc < 0) {
        free(e);
        return rc;
    }
    const struct mcfg *c = &e->ck.cfg;
    if ((rc = kern_cpu_new(&e->kc, e->o.threads, e->o.isa)) < 0)
        goto fail;
    if (c->n_layers > SEQ_MAX_LAYERS) {
        rc = err_set(ERR_UNSUPPORTED, "%lld layers (at most %d)", (long long)c->n_layers,
                     SEQ_MAX_LAYERS);
        goto fail;
    }
    if (!(e->L = calloc((size_t)c->n_layers, sizeof *e->L))) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int l = 0; l < c->n_layers; l++)
        if ((rc = bind_layer(e, l)) < 0)
            goto fail;
    if ((rc = small_f32(e, &e->ck.final_norm, c->hidden, "norm", &e->final_norm)) < 0 ||
        (rc = bind_linear(e, &e->ck.lm_head, c->vocab, c->hidden, "lm_head", &e->lm_head)) < 0)
        goto fail;
    e->embed_type = kern_type_of(e->ck.embed.dtype);
    e->embed = e->ck.embed.data;
    if (e->embed_type < 0 || !e->embed || e->ck.embed.ndim != 2 ||
        e->ck.embed.shape[0] != c->vocab || e->ck.embed.shape[1] != c->hidden) {
        rc = err_set(ERR_INVAL, "embed_tokens: expected a [%lld, %lld] float tensor",
                     (long long)c->vocab, (long long)c->hidden);
        goto fail;
    }
    /* RoPE inverse frequencies (YaRN when configured or forced) */
    double yarn = e->o.yarn > 1 ? e->o.yarn : c->rope_type == MCFG_ROPE_YARN ? c->yarn_factor : 0;
    long orig = c->yarn_orig_max_pos > 0 ? (long)c->yarn_orig_max_pos : (long)c->max_pos;
    if (!(e->rope_inv = own(e, (size_t)c->rotary_dim / 2 * sizeof(float))) ||
        (rc = kern_rope_freqs(e->rope_inv, &e->rope_mscale, (int)c->rotary_dim, c->rope_theta, yarn,
                              orig)) < 0) {
        if (!e->rope_inv)
            rc = err_set(ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((rc = model_identity(e)) < 0)
        goto fail;
    if (e->o.backend != ENG_BACKEND_CPU && (rc = engc_attach(e)) < 0)
        goto fail;
    *out = e;
    return 0;
fail:
    eng_close(e);
    return rc;
}

const struct mcfg *eng_cfg(const struct eng *e) { return &e->ck.cfg; }
const struct ckpt *eng_ckpt(const struct eng *e) { return &e->ck; }
long eng_vocab(const struct eng *e) { return (long)e->ck.cfg.vocab; }
void eng_model_id(const struct eng *e, uint8_t id[32]) { memcpy(id, e->id, 32); }

void eng_state_dims(const struct eng *e, struct seq_dims *d)
{
    const struct mcfg *c = &e->ck.cfg;
    memset(d, 0, sizeof *d);
    d->n_layers = (int)c->n_layers;
    for (int l = 0; l < d->n_layers; l++)
        d->is_full[l] = c->layer_type[l] == MCFG_FULL_ATTN;
    d->n_kv = (int)c->n_kv_heads;
    d->head_dim = (int)c->head_dim;
    d->conv_ch = (int)mcfg_conv_dim(c);
    d->conv_k = (int)c->conv_kernel;
    d->n_v = (int)c->lin_v_heads;
    d->dk = (int)c->lin_k_dim;
    d->dv = (int)c->lin_v_dim;
}

int eng_state_new(struct eng *e, struct seq_state **out, long cap)
{
    struct seq_dims d;
    eng_state_dims(e, &d);
    int rc = seq_new(out, &d, e->o.kv_type, cap);
    if (rc < 0)
        return rc;
    for (int l = 0; l < d.n_layers; l++) {
        (*out)->layer[l].k_scale = e->L[l].full ? e->L[l].k_scale : 1.0f;
        (*out)->layer[l].v_scale = e->L[l].full ? e->L[l].v_scale : 1.0f;
    }
    return 0;
}

void eng_set_trace(struct eng *e, eng_trace_fn fn, void *ctx)
{
    e->trace = fn;
    e->trace_ctx = ctx;
}

void eng_set_gdn_mode(struct eng *e, int mode) { e->gdn_mode = mode; }
