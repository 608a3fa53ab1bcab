/* mkmodel.c - deterministic random checkpoints in the real layout (see mkmodel.h). */
#include "engine/mkmodel.h"
#include "common/buf.h"
#include "common/ckd.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hash.h"

#include <cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- presets and recipe ---- */

void mk_preset_cfg(struct mcfg *m, int preset, int text_layout)
{
    memset(m, 0, sizeof *m);
    m->vl = !text_layout;
    snprintf(m->arch, sizeof m->arch, "%s",
             text_layout ? "Qwen3_5MoeForCausalLM" : "Qwen3_5MoeForConditionalGeneration");
    snprintf(m->prefix, sizeof m->prefix, "%s", text_layout ? "model." : "model.language_model.");
    snprintf(m->dtype, sizeof m->dtype, "bfloat16");
    m->attn_output_gate = 1;
    m->conv_kernel = 4;
    m->rms_eps = 1e-6;
    m->rope_type = MCFG_ROPE_DEFAULT;
    m->rope_theta = 10000000.0;
    m->partial_rotary = 0.25;
    m->yarn_factor = 1;
    m->bos = -1;
    m->pad = -1;
    if (preset == MK_FULL) {
        /* the real Qwen3.6-35B-A3B text model (model-spec.md §1) */
        m->vocab = 248320, m->hidden = 2048, m->n_layers = 40;
        m->n_heads = 16, m->n_kv_heads = 2, m->head_dim = 256;
        m->lin_k_heads = 16, m->lin_v_heads = 32, m->lin_k_dim = 128, m->lin_v_dim = 128;
        m->n_experts = 256, m->top_k = 8, m->moe_inter = 512, m->shared_inter = 512;
        m->max_pos = 262144, m->mtp_layers = 1;
        m->bos = 248044, m->eos[0] = 248044, m->n_eos = 1;
    } else if (preset == MK_SMALL) {
        /* a few hundred MB: realistic head sizes, fewer layers and experts */
        m->vocab = 32768, m->hidden = 1024, m->n_layers = 8;
        m->n_heads = 8, m->n_kv_heads = 2, m->head_dim = 128;
        m->lin_k_heads = 8, m->lin_v_heads = 16, m->lin_k_dim = 128, m->lin_v_dim = 128;
        m->n_experts = 32, m->top_k = 8, m->moe_inter = 256, m->shared_inter = 256;
        m->max_pos = 262144;
        m->eos[0] = 32767, m->n_eos = 1;
    } else {
        /* tiny: every structural feature (both layer types, GQA, partial RoPE, Hv = 2 Hk,
         * 8 experts top-2, shared expert, in-features multiples of 32), and a small vocabulary
         * (ids 0..511; --tokenizer raises it to cover the tokenizer) */
        m->vocab = 512, m->hidden = 64, m->n_layers = 8;
        m->n_heads = 4, m->n_kv_heads = 2, m->head_dim = 32;
        m->lin_k_heads = 2, m->lin_v_heads = 4, m->lin_k_dim = 16, m->lin_v_dim = 16;
        m->n_experts = 8, m->top_k = 2, m->moe_inter = 32, m->shared_inter = 32;
        m->max_pos = 4096;
        m->eos[0] = 511, m->n_eos = 1;
    }
    for (int64_t i = 0; i < m->n_layers; i++) {
        m->layer_type[i] = (i + 1) % 4 ? MCFG_LINEAR_ATTN : MCFG_FULL_ATTN;
        m->n_full += m->layer_type[i];
    }
    m->rotary_dim = (int64_t)((double)m->head_dim * m->partial_rotary);
}

/* Which real layers a checkpoint holds: its layer i is real layer first + i of a model of
 * `total` layers (--layers/--first-layer; the whole model: first 0, total n_layers). The recipe
 * (boundary layers, super-experts) and the random streams follow the real index, so a slice
 * has the precision and the very bytes of those layers in the whole model. */
struct span {
    int64_t first, total;
};

static struct span whole(const struct mcfg *m) { return (struct span){ 0, m->n_layers }; }

static int boundary_layer(struct span sp, int64_t l)
{
    int64_t r = sp.first + l;
    return r == 0 || r == 1 || r == sp.total - 1;
}

/* The super-expert of layer l (one per quantized layer). */
static int64_t super_expert(const struct mcfg *m, struct span sp, int64_t l)
{
    return ((sp.first + l) * 5 + 1) % m->n_experts;
}

static int recipe_bits(const struct mcfg *m, struct span sp, int mixed, int64_t layer, int kind,
                       int64_t expert)
{
    if (!mixed || boundary_layer(sp, layer) || kind == 2)
        return 16;
    if (kind == 1)
        return 8;
    return expert == super_expert(m, sp, layer) ? 8 : 4;
}

int mk_recipe_bits(const struct mcfg *m, int mixed, int64_t layer, int kind, int64_t expert)
{
    return recipe_bits(m, whole(m), mixed, layer, kind, expert);
}

/* ---- random numbers and quantization ---- */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [-amp, amp): a 24-bit integer times amp * 2^-23, one rounding */
static float rng_uniform(struct rng *r, float amp)
{
    int32_t u = (int32_t)(rng_next(r) >> 40) - (1 << 23);
    return (float)u * (amp * 0x1p-23f);
}

static void rng_seed(struct rng *r, uint64_t seed, const char *name)
{
    r->s = hash64(name, strlen(name), seed ^ 0x6c6f6465ull);
}

void mk_quantize_row(const float *w, int64_t in, int bits, int64_t group, int8_t *codes,
                     uint16_t *scales)
{
    float qmax = bits == 4 ? 7.0f : 127.0f, qmin = bits == 4 ? -8.0f : -128.0f;
    float half_range = bits == 4 ? 7.5f : 127.5f;
    for (int64_t g = 0; g < in / group; g++) {
        const float *x = w + g * group;
        float amax = 0;
        for (int64_t i = 0; i < group; i++)
            amax = fmaxf(amax, fabsf(x[i]));
        float s = amax / half_range;
        if (!(s >= FLT_EPSILON))
            s = FLT_EPSILON;
        uint16_t sb = quant_f32_to_bf16(s);
        scales[g] = sb;
        float sf = quant_bf16_to_f32(sb);
        for (int64_t i = 0; i < group; i++) {
            float q = nearbyintf(x[i] / sf);
            q = q < qmin ? qmin : q > qmax ? qmax : q;
            codes[g * group + i] = (int8_t)q;
        }
    }
}

/* ---- the tensor plan ---- */

enum { G_PLAIN, G_PACKED, G_SCALE, G_SHAPE };
enum { S_UNIFORM, S_ALOG };

struct ptensor {
    char *name;   /* owned */
    char *module; /* owned, quantized tensors: the stream is seeded by the module */
    char *key;    /* owned or NULL: the name (module) the stream is seeded by when it differs */
    enum st_dtype dtype;
    int ndim;
    int64_t shape[3];
    uint64_t nbytes, begin;
    int kind, special, bits, shard;
    float amp, base;
    int64_t out, in, group;
};

struct plan {
    struct ptensor *t;
    size_t n, cap;
    uint64_t seed;
};

static void plan_free(struct plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->t[i].name);
        free(p->t[i].module);
        free(p->t[i].key);
    }
    free(p->t);
    memset(p, 0, sizeof *p);
}

static struct ptensor *plan_add(struct plan *p, const char *name, enum st_dtype dt, int nd,
                                int64_t d0, int64_t d1, int64_t d2)
{
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 256;
        struct ptensor *n = realloc(p->t, nc * sizeof *n);
        if (!n)
            return NULL;
        p->t = n;
        p->cap = nc;
    }
    struct ptensor *t = &p->t[p->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name)))
        return NULL;
    p->n++;
    t->dtype = dt;
    t->ndim = nd;
    int64_t d[3] = { d0, d1, d2 };
    uint64_t ne = 1;
    for (int i = 0; i < nd; i++) {
        t->shape[i] = d[i];
        ne *= (uint64_t)d[i];
    }
    t->nbytes = ne * (uint64_t)(st_dtype_bits(dt) / 8);
    return t;
}

static int add_plain(struct plan *p, const char *name, int nd, int64_t d0, int64_t d1, int64_t d2,
                     float amp, float base, enum st_dtype dt)
{
    struct ptensor *t = plan_add(p, name, dt, nd, d0, d1, d2);
    if (!t)
        return err_set(ERR_NOMEM, "out of memory");
    t->kind = G_PLAIN;
    t->amp = amp;
    t->base = base;
    return 0;
}

/* A linear module: BF16 .weight or pack-quantized triple. amp: uniform half-width. */
static int add_linear(struct plan *p, const char *mod, int64_t out, int64_t in, int bits, float amp)
{
    char n[512];
    if (bits == 16) {
        snprintf(n, sizeof n, "%s.weight", mod);
        return add_plain(p, n, 2, out, in, 0, amp, 0, ST_BF16);
    }
    int64_t group = bits == 4 ? 32 : in;
    static const char *const suf[3] = { "weight_packed", "weight_scale", "weight_shape" };
    for (int k = 0; k < 3; k++) {
        snprintf(n, sizeof n, "%s.%s", mod, suf[k]);
        struct ptensor *t = k == 0   ? plan_add(p, n, ST_I32, 2, out, in * bits / 32, 0)
                            : k == 1 ? plan_add(p, n, ST_BF16, 2, out, in / group, 0)
                                     : plan_add(p, n, ST_I64, 1, 2, 0, 0);
        if (!t || !(t->module = strdup(mod)))
            return err_set(ERR_NOMEM, "out of memory");
        t->kind = k == 0 ? G_PACKED : k == 1 ? G_SCALE : G_SHAPE;
        t->bits = bits;
        t->out = out;
        t->in = in;
        t->group = group;
        t->amp = amp;
    }
    return 0;
}

/* uniform half-width so that std = gain / sqrt(fan_in): a = gain * sqrt(3 / fan_in) */
static float amp_for(int64_t fan_in, float gain) { return gain * sqrtf(3.0f / (float)fan_in); }

/* "...layers.R.rest" -> "...layers.(R - first).rest", the old string kept in *key. */
static int relabel(char **s, char **key, const char *prefix, int64_t real, int64_t local)
{
    char from[64];
    int n = snprintf(from, sizeof from, "layers.%lld.", (long long)real);
    size_t pl = strlen(prefix);
    if (strncmp(*s, prefix, pl) || strncmp(*s + pl, from, (size_t)n))
        return 0; /* not under this layer (cannot happen: every tensor of a layer is) */
    size_t len = strlen(*s) + 32;
    char *t = malloc(len);
    if (!t)
        return err_set(ERR_NOMEM, "out of memory");
    snprintf(t, len, "%slayers.%lld.%s", prefix, (long long)local, *s + pl + n);
    *key = *s;
    *s = t;
    return 0;
}

static int build_plan(struct plan *p, const struct mcfg *m, struct span sp, int mixed)
{
    const char *P = m->prefix;
    char n[512], mod[512];
    int64_t H = m->hidden, I = m->moe_inter, Is = m->shared_inter, E = m->n_experts;
    int rc;
#define CK(x)                                                                                      \
    do {                                                                                           \
        if ((rc = (x)) < 0)                                                                        \
            return rc;                                                                             \
    } while (0)
    snprintf(n, sizeof n, "%sembed_tokens.weight", P);
    CK(add_plain(p, n, 2, m->vocab, H, 0, 1.0f, 0, ST_BF16));
    for (int64_t l = 0; l < m->n_layers; l++) {
        char L[256];
        size_t first_t = p->n;
        /* named by the real index first (the random streams), renamed below */
        snprintf(L, sizeof L, "%slayers.%lld.", P, (long long)(sp.first + l));
        snprintf(n, sizeof n, "%sinput_layernorm.weight", L);
        CK(add_plain(p, n, 1, H, 0, 0, 0.1f, 0, ST_BF16));
        snprintf(n, sizeof n, "%spost_attention_layernorm.weight", L);
        CK(add_plain(p, n, 1, H, 0, 0, 0.1f, 0, ST_BF16));
        if (m->layer_type[l] == MCFG_FULL_ATTN) {
            int b = recipe_bits(m, sp, mixed, l, 1, 0);
            int64_t ao = m->n_heads * m->head_dim;
            snprintf(mod, sizeof mod, "%sself_attn.q_proj", L);
            CK(add_linear(p, mod, mcfg_q_out(m), H, b, amp_for(H, 1)));
            snprintf(mod, sizeof mod, "%sself_attn.k_proj", L);
            CK(add_linear(p, mod, mcfg_kv_out(m), H, b, amp_for(H, 1)));
            snprintf(mod, sizeof mod, "%sself_attn.v_proj", L);
            CK(add_linear(p, mod, mcfg_kv_out(m), H, b, amp_for(H, 1)));
            snprintf(mod, sizeof mod, "%sself_attn.o_proj", L);
            CK(add_linear(p, mod, H, ao, b, amp_for(ao, 0.5f)));
            snprintf(n, sizeof n, "%sself_attn.q_norm.weight", L);
            CK(add_plain(p, n, 1, m->head_dim, 0, 0, 0.1f, 0, ST_BF16));
            snprintf(n, sizeof n, "%sself_attn.k_norm.weight", L);
            CK(add_plain(p, n, 1, m->head_dim, 0, 0, 0.1f, 0, ST_BF16));
        } else {
            int64_t kd = mcfg_lin_key_dim(m), vd = mcfg_lin_val_dim(m), Hv = m->lin_v_heads;
            snprintf(mod, sizeof mod, "%slinear_attn.in_proj_qkv", L);
            CK(add_linear(p, mod, 2 * kd + vd, H, 16, amp_for(H, 1)));
            snprintf(mod, sizeof mod, "%slinear_attn.in_proj_z", L);
            CK(add_linear(p, mod, vd, H, 16, amp_for(H, 1)));
            snprintf(mod, sizeof mod, "%slinear_attn.in_proj_b", L);
            CK(add_linear(p, mod, Hv, H, 16, amp_for(H, 1)));
            snprintf(mod, sizeof mod, "%slinear_attn.in_proj_a", L);
            CK(add_linear(p, mod, Hv, H, 16, amp_for(H, 1)));
            snprintf(n, sizeof n, "%slinear_attn.conv1d.weight", L);
            CK(add_plain(p, n, 3, mcfg_conv_dim(m), 1, m->conv_kernel,
                         amp_for(m->conv_kernel, 0.5f), 0, ST_BF16));
            snprintf(n, sizeof n, "%slinear_attn.A_log", L);
            CK(add_plain(p, n, 1, Hv, 0, 0, 0, 0, ST_F32));
            p->t[p->n - 1].special = S_ALOG;
            snprintf(n, sizeof n, "%slinear_attn.dt_bias", L);
            CK(add_plain(p, n, 1, Hv, 0, 0, 0.5f, 0, ST_BF16));
            snprintf(n, sizeof n, "%slinear_attn.norm.weight", L);
            CK(add_plain(p, n, 1, m->lin_v_dim, 0, 0, 0.1f, 1.0f, ST_BF16));
            snprintf(mod, sizeof mod, "%slinear_attn.out_proj", L);
            CK(add_linear(p, mod, H, vd, 16, amp_for(vd, 0.5f)));
        }
        snprintf(mod, sizeof mod, "%smlp.gate", L);
        CK(add_linear(p, mod, E, H, 16, amp_for(H, 1)));
        if (!mixed) {
            snprintf(n, sizeof n, "%smlp.experts.gate_up_proj", L);
            CK(add_plain(p, n, 3, E, 2 * I, H, amp_for(H, 1), 0, ST_BF16));
            snprintf(n, sizeof n, "%smlp.experts.down_proj", L);
            CK(add_plain(p, n, 3, E, H, I, amp_for(I, 0.5f), 0, ST_BF16));
        } else {
            for (int64_t e = 0; e < E; e++) {
                int b = recipe_bits(m, sp, mixed, l, 0, e);
                snprintf(mod, sizeof mod, "%smlp.experts.%lld.gate_proj", L, (long long)e);
                CK(add_linear(p, mod, I, H, b, amp_for(H, 1)));
                snprintf(mod, sizeof mod, "%smlp.experts.%lld.up_proj", L, (long long)e);
                CK(add_linear(p, mod, I, H, b, amp_for(H, 1)));
                snprintf(mod, sizeof mod, "%smlp.experts.%lld.down_proj", L, (long long)e);
                CK(add_linear(p, mod, H, I, b, amp_for(I, 0.5f)));
            }
        }
        if (Is > 0) {
            snprintf(mod, sizeof mod, "%smlp.shared_expert.gate_proj", L);
            CK(add_linear(p, mod, Is, H, 16, amp_for(H, 1)));
            snprintf(mod, sizeof mod, "%smlp.shared_expert.up_proj", L);
            CK(add_linear(p, mod, Is, H, 16, amp_for(H, 1)));
            snprintf(mod, sizeof mod, "%smlp.shared_expert.down_proj", L);
            CK(add_linear(p, mod, H, Is, 16, amp_for(Is, 0.5f)));
            snprintf(mod, sizeof mod, "%smlp.shared_expert_gate", L);
            CK(add_linear(p, mod, 1, H, 16, amp_for(H, 1)));
        }
        for (size_t i = first_t; i < p->n && sp.first; i++) {
            struct ptensor *t = &p->t[i];
            char *mkey = NULL;
            CK(relabel(&t->name, t->module ? &mkey : &t->key, P, sp.first + l, l));
            if (t->module) {
                free(mkey); /* quantized: the stream follows the module, not the tensor */
                CK(relabel(&t->module, &t->key, P, sp.first + l, l));
            }
        }
    }
    snprintf(n, sizeof n, "%snorm.weight", P);
    CK(add_plain(p, n, 1, H, 0, 0, 0.1f, 0, ST_BF16));
    CK(add_linear(p, "lm_head", m->vocab, H, 16, amp_for(H, 1)));
#undef CK
    return 0;
}

/* ---- emitting tensor data ---- */

static int put(FILE *f, const void *p, size_t n, const char *path)
{
    if (fwrite(p, 1, n, f) != n)
        return err_errno("%s: write", path);
    return 0;
}

static float plain_value(const struct ptensor *t, struct rng *r)
{
    if (t->special == S_ALOG) /* A = exp(A_log) in [1, e^2.5]: k/6 for k in 0..15 */
        return (float)(rng_next(r) >> 60) / 6.0f;
    volatile float v = rng_uniform(r, t->amp); /* volatile: no fused multiply-add with base */
    return t->base + v;
}

static int emit(FILE *f, const struct ptensor *t, uint64_t seed, const char *path)
{
    struct rng r;
    int rc = 0;
    if (t->kind == G_SHAPE) {
        int64_t s[2] = { t->out, t->in };
        return put(f, s, sizeof s, path);
    }
    if (t->kind == G_PLAIN) {
        rng_seed(&r, seed, t->key ? t->key : t->name);
        enum { CH = 1 << 15 };
        uint8_t buf[CH * 4];
        uint64_t ne = t->nbytes / (uint64_t)(st_dtype_bits(t->dtype) / 8);
        for (uint64_t i = 0; i < ne && !rc;) {
            size_t k = 0;
            for (; k < CH && i < ne; k++, i++) {
                float v = plain_value(t, &r);
                if (t->dtype == ST_F32) {
                    memcpy(buf + 4 * k, &v, 4);
                } else {
                    uint16_t h = quant_f32_to_bf16(v);
                    memcpy(buf + 2 * k, &h, 2);
                }
            }
            rc = put(f, buf, k * (size_t)(st_dtype_bits(t->dtype) / 8), path);
        }
        return rc;
    }
    /* quantized: regenerate the module's rows (bf16-rounded) and quantize each */
    rng_seed(&r, seed, t->key ? t->key : t->module);
    float *w = malloc((size_t)t->in * sizeof *w);
    int8_t *q = malloc((size_t)t->in);
    uint16_t *s = malloc((size_t)(t->in / t->group) * sizeof *s);
    int32_t *words = malloc((size_t)t->in * sizeof *words);
    if (!w || !q || !s || !words) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int64_t row = 0; row < t->out && !rc; row++) {
        for (int64_t c = 0; c < t->in; c++)
            w[c] = quant_bf16_to_f32(quant_f32_to_bf16(rng_uniform(&r, t->amp)));
        mk_quantize_row(w, t->in, t->bits, t->group, q, s);
        if (t->kind == G_PACKED) {
            quant_pack_row(q, t->in, t->bits, words);
            rc = put(f, words, (size_t)(t->in * t->bits / 32) * 4, path);
        } else {
            rc = put(f, s, (size_t)(t->in / t->group) * 2, path);
        }
    }
out:
    free(w);
    free(q);
    free(s);
    free(words);
    return rc;
}

/* official writer order inside a file: larger element size first, then name */
static int align_name_cmp(const void *a, const void *b)
{
    const struct ptensor *x = *(const struct ptensor *const *)a,
                         *y = *(const struct ptensor *const *)b;
    int ax = st_dtype_bits(x->dtype), ay = st_dtype_bits(y->dtype);
    if (ax != ay)
        return ay - ax;
    return strcmp(x->name, y->name);
}

static int write_shard(const struct plan *p, int shard, const char *path)
{
    struct ptensor **v = NULL;
    struct buf h = { 0 };
    FILE *f = NULL;
    size_t n = 0;
    int rc = 0;
    if (!(v = malloc((p->n ? p->n : 1) * sizeof *v)))
        return err_set(ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < p->n; i++)
        if (p->t[i].shard == shard)
            v[n++] = &p->t[i];
    qsort(v, n, sizeof *v, align_name_cmp);
    uint64_t off = 0;
    rc = buf_puts(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < n && !rc; i++) {
        v[i]->begin = off;
        rc = buf_putc(&h, ',') || buf_json_str(&h, v[i]->name, strlen(v[i]->name)) ||
             buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(v[i]->dtype));
        for (int d = 0; d < v[i]->ndim && !rc; d++)
            rc = buf_printf(&h, "%s%lld", d ? "," : "", (long long)v[i]->shape[d]);
        if (!rc)
            rc = buf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                            (unsigned long long)(off + v[i]->nbytes));
        off += v[i]->nbytes;
    }
    if (!rc)
        rc = buf_putc(&h, '}');
    while (!rc && h.len % 8) /* pad so the data starts 8-aligned, as the official writer does */
        rc = buf_putc(&h, ' ');
    if (rc) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto out;
    }
    if (!(f = fopen(path, "wb"))) {
        rc = err_errno("%s", path);
        goto out;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    if ((rc = put(f, len8, 8, path)) < 0 || (rc = put(f, h.p, h.len, path)) < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if ((rc = emit(f, v[i], p->seed, path)) < 0)
            goto out;
out:
    if (f && fclose(f) && !rc)
        rc = err_errno("%s: close", path);
    buf_free(&h);
    free(v);
    return rc;
}

/* ---- config files ---- */

static cJSON *num(double v) { return cJSON_CreateNumber(v); }

static cJSON *text_config(const struct mcfg *m, int with_arch)
{
    cJSON *t = cJSON_CreateObject();
    if (with_arch)
        cJSON_AddItemToObject(t, "architectures",
                              cJSON_CreateStringArray((const char *[]){ m->arch }, 1));
    cJSON_AddItemToObject(t, "attention_bias", cJSON_CreateFalse());
    cJSON_AddItemToObject(t, "attention_dropout", num(0));
    cJSON_AddItemToObject(t, "attn_output_gate", cJSON_CreateTrue());
    cJSON_AddItemToObject(t, "bos_token_id",
                          m->bos >= 0 ? num((double)m->bos) : cJSON_CreateNull());
    cJSON_AddItemToObject(t, "dtype", cJSON_CreateString("bfloat16"));
    cJSON_AddItemToObject(t, "eos_token_id", num((double)m->eos[0]));
    cJSON_AddItemToObject(t, "full_attention_interval", num(4));
    cJSON_AddItemToObject(t, "head_dim", num((double)m->head_dim));
    cJSON_AddItemToObject(t, "hidden_act", cJSON_CreateString("silu"));
    cJSON_AddItemToObject(t, "hidden_size", num((double)m->hidden));
    cJSON_AddItemToObject(t, "initializer_range", num(0.02));
    cJSON *lt = cJSON_CreateArray();
    for (int64_t i = 0; i < m->n_layers; i++)
        cJSON_AddItemToArray(lt, cJSON_CreateString(m->layer_type[i] == MCFG_FULL_ATTN
                                                        ? "full_attention"
                                                        : "linear_attention"));
    cJSON_AddItemToObject(t, "layer_types", lt);
    cJSON_AddItemToObject(t, "linear_conv_kernel_dim", num((double)m->conv_kernel));
    cJSON_AddItemToObject(t, "linear_key_head_dim", num((double)m->lin_k_dim));
    cJSON_AddItemToObject(t, "linear_num_key_heads", num((double)m->lin_k_heads));
    cJSON_AddItemToObject(t, "linear_num_value_heads", num((double)m->lin_v_heads));
    cJSON_AddItemToObject(t, "linear_value_head_dim", num((double)m->lin_v_dim));
    cJSON_AddItemToObject(t, "mamba_ssm_dtype", cJSON_CreateString("float32"));
    cJSON_AddItemToObject(t, "max_position_embeddings", num((double)m->max_pos));
    cJSON_AddItemToObject(t, "model_type", cJSON_CreateString("qwen3_5_moe_text"));
    cJSON_AddItemToObject(t, "moe_intermediate_size", num((double)m->moe_inter));
    cJSON_AddItemToObject(t, "mtp_num_hidden_layers", num((double)m->mtp_layers));
    cJSON_AddItemToObject(t, "mtp_use_dedicated_embeddings", cJSON_CreateFalse());
    cJSON_AddItemToObject(t, "num_attention_heads", num((double)m->n_heads));
    cJSON_AddItemToObject(t, "num_experts", num((double)m->n_experts));
    cJSON_AddItemToObject(t, "num_experts_per_tok", num((double)m->top_k));
    cJSON_AddItemToObject(t, "num_hidden_layers", num((double)m->n_layers));
    cJSON_AddItemToObject(t, "num_key_value_heads", num((double)m->n_kv_heads));
    cJSON_AddItemToObject(t, "output_router_logits", cJSON_CreateFalse());
    cJSON_AddItemToObject(t, "pad_token_id", cJSON_CreateNull());
    cJSON_AddItemToObject(t, "partial_rotary_factor", num(m->partial_rotary));
    cJSON_AddItemToObject(t, "rms_norm_eps", num(m->rms_eps));
    cJSON *rp = cJSON_CreateObject();
    cJSON_AddItemToObject(rp, "partial_rotary_factor", num(m->partial_rotary));
    cJSON_AddItemToObject(rp, "rope_theta", num(m->rope_theta));
    cJSON_AddItemToObject(rp, "rope_type", cJSON_CreateString("default"));
    cJSON_AddItemToObject(t, "rope_parameters", rp);
    cJSON_AddItemToObject(t, "router_aux_loss_coef", num(0.001));
    cJSON_AddItemToObject(t, "shared_expert_intermediate_size", num((double)m->shared_inter));
    cJSON_AddItemToObject(t, "tie_word_embeddings", cJSON_CreateFalse());
    cJSON_AddItemToObject(t, "use_cache", cJSON_CreateTrue());
    cJSON_AddItemToObject(t, "vocab_size", num((double)m->vocab));
    return t;
}

static cJSON *weights_args(int bits, int group)
{
    cJSON *w = cJSON_CreateObject();
    cJSON_AddItemToObject(w, "actorder", cJSON_CreateNull());
    cJSON_AddItemToObject(w, "block_structure", cJSON_CreateNull());
    cJSON_AddItemToObject(w, "dynamic", cJSON_CreateFalse());
    cJSON_AddItemToObject(w, "group_size", group ? num(group) : cJSON_CreateNull());
    cJSON_AddItemToObject(w, "num_bits", num(bits));
    cJSON_AddItemToObject(w, "observer", cJSON_CreateString("minmax"));
    cJSON_AddItemToObject(w, "observer_kwargs", cJSON_CreateObject());
    cJSON_AddItemToObject(w, "scale_dtype", cJSON_CreateNull());
    cJSON_AddItemToObject(w, "strategy", cJSON_CreateString(group ? "group" : "channel"));
    cJSON_AddItemToObject(w, "symmetric", cJSON_CreateTrue());
    cJSON_AddItemToObject(w, "type", cJSON_CreateString("int"));
    cJSON_AddItemToObject(w, "zp_dtype", cJSON_CreateNull());
    return w;
}

static cJSON *scheme(cJSON *targets, int bits, int group)
{
    cJSON *g = cJSON_CreateObject();
    cJSON_AddItemToObject(g, "format", cJSON_CreateString("pack-quantized"));
    cJSON_AddItemToObject(g, "input_activations", cJSON_CreateNull());
    cJSON_AddItemToObject(g, "output_activations", cJSON_CreateNull());
    cJSON_AddItemToObject(g, "targets", targets);
    cJSON_AddItemToObject(g, "weights", weights_args(bits, group));
    return g;
}

/* The recipe as compressed-tensors writes it. The int8 group comes first so that vLLM's
 * config-order matching and compressed-tensors' exact-before-regex order agree on the
 * super-experts. */
static cJSON *quant_config(const struct mcfg *m, struct span sp)
{
    /* a target that matches no module is an error to loaders, so a slice without quantized
     * attention (or without any quantized layer) leaves those targets out */
    int q_attn = 0, q_any = 0;
    for (int64_t l = 0; l < m->n_layers; l++) {
        q_any |= !boundary_layer(sp, l);
        q_attn |= !boundary_layer(sp, l) && m->layer_type[l] == MCFG_FULL_ATTN;
    }
    if (!q_any)
        return NULL;
    cJSON *q = cJSON_CreateObject(), *groups = cJSON_CreateObject();
    cJSON *t8 = cJSON_CreateArray(), *t4 = cJSON_CreateArray(), *ig = cJSON_CreateArray();
    if (q_attn)
        cJSON_AddItemToArray(t8, cJSON_CreateString("re:.*self_attn\\.(q|k|v|o)_proj$"));
    char n[512];
    for (int64_t l = 0; l < m->n_layers; l++) {
        if (boundary_layer(sp, l))
            continue;
        static const char *const pr[3] = { "gate_proj", "up_proj", "down_proj" };
        for (int k = 0; k < 3; k++) {
            snprintf(n, sizeof n, "%slayers.%lld.mlp.experts.%lld.%s", m->prefix, (long long)l,
                     (long long)super_expert(m, sp, l), pr[k]);
            cJSON_AddItemToArray(t8, cJSON_CreateString(n));
        }
    }
    cJSON_AddItemToArray(t4,
                         cJSON_CreateString("re:.*mlp\\.experts\\.\\d+\\.(gate|up|down)_proj$"));
    cJSON_AddItemToObject(groups, "group_0", scheme(t8, 8, 0));
    cJSON_AddItemToObject(groups, "group_1", scheme(t4, 4, 32));
    cJSON_AddItemToObject(q, "config_groups", groups);
    cJSON_AddItemToObject(q, "format", cJSON_CreateString("pack-quantized"));
    cJSON_AddItemToObject(q, "global_compression_ratio", cJSON_CreateNull());
    cJSON_AddItemToArray(ig, cJSON_CreateString("lm_head"));
    cJSON_AddItemToArray(ig, cJSON_CreateString("re:.*visual.*"));
    cJSON_AddItemToArray(ig, cJSON_CreateString("re:.*mlp\\.gate$"));
    cJSON_AddItemToArray(ig, cJSON_CreateString("re:.*shared_expert_gate$"));
    cJSON_AddItemToArray(ig, cJSON_CreateString("re:.*shared_expert\\..*"));
    cJSON_AddItemToArray(ig, cJSON_CreateString("re:.*linear_attn\\..*"));
    /* the BF16 boundary layers this checkpoint holds, by its own index (none in a slice of
     * middle layers) */
    size_t k = (size_t)snprintf(n, sizeof n, "re:.*layers\\.(");
    int nb = 0;
    for (int64_t l = 0; l < m->n_layers && k < sizeof n - 64; l++)
        if (boundary_layer(sp, l))
            k += (size_t)snprintf(n + k, sizeof n - k, "%s%lld", nb++ ? "|" : "", (long long)l);
    snprintf(n + k, sizeof n - k, ")\\..*");
    if (nb)
        cJSON_AddItemToArray(ig, cJSON_CreateString(n));
    cJSON_AddItemToObject(q, "ignore", ig);
    cJSON_AddItemToObject(q, "kv_cache_scheme", cJSON_CreateNull());
    cJSON_AddItemToObject(q, "quant_method", cJSON_CreateString("compressed-tensors"));
    cJSON_AddItemToObject(q, "quantization_status", cJSON_CreateString("compressed"));
    cJSON_AddItemToObject(q, "sparsity_config", cJSON_CreateObject());
    cJSON_AddItemToObject(q, "transform_config", cJSON_CreateObject());
    cJSON_AddItemToObject(q, "version", cJSON_CreateString("0.20.0"));
    return q;
}

static int write_json(const char *dir, const char *file, cJSON *j)
{
    char path[4096];
    int rc;
    if ((rc = fs_join(path, sizeof path, dir, file)) < 0)
        return rc;
    char *s = j ? cJSON_Print(j) : NULL;
    if (!s)
        return err_set(ERR_NOMEM, "out of memory");
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return err_set(ERR_NOMEM, "out of memory");
    }
    t[n] = '\n';
    rc = fs_write_atomic(path, t, n + 1);
    free(t);
    return rc;
}

static int write_configs(const struct mcfg *m, struct span sp, int mixed, const char *dir)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "architectures",
                          cJSON_CreateStringArray((const char *[]){ m->arch }, 1));
    if (m->vl) {
        cJSON_AddItemToObject(root, "dtype", cJSON_CreateString("bfloat16"));
        cJSON_AddItemToObject(root, "image_token_id", num(248056));
        cJSON_AddItemToObject(root, "model_type", cJSON_CreateString("qwen3_5_moe"));
        cJSON *qc = mixed ? quant_config(m, sp) : NULL;
        if (qc)
            cJSON_AddItemToObject(root, "quantization_config", qc);
        cJSON_AddItemToObject(root, "text_config", text_config(m, 0));
        cJSON_AddItemToObject(root, "tie_word_embeddings", cJSON_CreateFalse());
        cJSON *v = cJSON_CreateObject();
        cJSON_AddItemToObject(v, "depth", num(1));
        cJSON_AddItemToObject(v, "hidden_size", num(32));
        cJSON_AddItemToObject(v, "model_type", cJSON_CreateString("qwen3_5_moe_vision"));
        cJSON_AddItemToObject(v, "out_hidden_size", num((double)m->hidden));
        cJSON_AddItemToObject(root, "video_token_id", num(248057));
        cJSON_AddItemToObject(root, "vision_config", v);
        cJSON_AddItemToObject(root, "vision_end_token_id", num(248054));
        cJSON_AddItemToObject(root, "vision_start_token_id", num(248053));
    } else {
        cJSON_Delete(root);
        root = text_config(m, 1);
        cJSON *qc = mixed ? quant_config(m, sp) : NULL;
        if (qc)
            cJSON_AddItemToObject(root, "quantization_config", qc);
    }
    int rc = write_json(dir, "config.json", root);
    cJSON_Delete(root);
    if (rc < 0)
        return rc;
    cJSON *g = cJSON_CreateObject();
    cJSON_AddItemToObject(g, "bos_token_id",
                          m->bos >= 0 ? num((double)m->bos) : cJSON_CreateNull());
    cJSON_AddItemToObject(g, "do_sample", cJSON_CreateTrue());
    cJSON_AddItemToObject(g, "eos_token_id", num((double)m->eos[0]));
    cJSON_AddItemToObject(g, "temperature", num(0.6));
    cJSON_AddItemToObject(g, "top_k", num(20));
    cJSON_AddItemToObject(g, "top_p", num(0.95));
    rc = write_json(dir, "generation_config.json", g);
    cJSON_Delete(g);
    return rc;
}

/* The vocabulary a tokenizer.json needs: 1 + the largest id (model.vocab, added_tokens). */
static int tokenizer_vocab(const char *path, struct buf *text, int64_t *need)
{
    int rc = fs_read_file(path, 256u << 20, text);
    if (rc < 0)
        return rc;
    cJSON *j = cJSON_ParseWithLength(text->p ? text->p : "", text->len);
    if (!j)
        return err_set(ERR_INVAL, "%s: not valid JSON", path);
    int64_t mx = -1;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    for (const cJSON *e = v ? v->child : NULL; e; e = e->next)
        if (cJSON_IsNumber(e) && e->valuedouble > (double)mx && e->valuedouble < (1 << 24))
            mx = (int64_t)e->valuedouble;
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
    for (const cJSON *e = at ? at->child : NULL; e; e = e->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (cJSON_IsNumber(id) && id->valuedouble > (double)mx && id->valuedouble < (1 << 24))
            mx = (int64_t)id->valuedouble;
    }
    cJSON_Delete(j);
    if (mx < 0)
        return err_set(ERR_INVAL, "%s: no token ids in model.vocab or added_tokens", path);
    *need = mx + 1;
    return 0;
}

int mk_synthetic(const char *name, struct mk_opts *o)
{
    static const struct {
        const char *name;
        int preset, layers, first;
    } tab[] = {
        { "tiny", MK_TINY, 0, 0 },
        { "small", MK_SMALL, 0, 0 },
        /* one full-attention group of real mid-model layers: 4, 5, 6 DeltaNet, 7 attention,
         * none of them a BF16 boundary layer */
        { "full-layers", MK_FULL, 4, 4 },
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(name, tab[i].name)) {
            if (o) {
                o->preset = tab[i].preset;
                o->layers = tab[i].layers;
                o->first_layer = tab[i].first;
            }
            return 0;
        }
    return err_set(ERR_INVAL, "no synthetic checkpoint named '%s' (tiny, small, full-layers)",
                   name);
}

int mk_write(const struct mk_opts *o)
{
    struct mcfg m;
    struct plan p = { 0 };
    struct buf tok = { 0 };
    int rc;
    mk_preset_cfg(&m, o->preset, o->text_layout);
    if (o->shards < 1 || o->shards > 999)
        return err_set(ERR_INVAL, "--shards must be in 1..999");
    struct span sp = whole(&m);
    if (o->layers > 0 || o->first_layer > 0) {
        int64_t n = o->layers > 0 ? o->layers : m.n_layers - o->first_layer;
        if (o->first_layer < 0 || n < 1 || o->first_layer + n > m.n_layers)
            return err_set(ERR_INVAL,
                           "mkmodel: layers %lld..%lld are not within the preset's %lld layers",
                           (long long)o->first_layer, (long long)(o->first_layer + n - 1),
                           (long long)m.n_layers);
        /* real layers first..first+n-1: their kinds, renumbered from 0 */
        sp.first = o->first_layer;
        m.n_layers = n;
        m.n_full = 0;
        for (int64_t i = 0; i < n; i++) {
            m.layer_type[i] = m.layer_type[sp.first + i];
            m.n_full += m.layer_type[i] == MCFG_FULL_ATTN;
        }
    }
    if (o->tokenizer) {
        int64_t need = 0;
        if ((rc = tokenizer_vocab(o->tokenizer, &tok, &need)) < 0)
            goto out;
        if (need > m.vocab)
            m.vocab = (need + 63) / 64 * 64; /* padded like the real 248320 rows */
        for (int i = 0; i < m.n_eos; i++)
            if (m.eos[i] >= m.vocab)
                m.eos[i] = m.vocab - 1;
    }
    if ((rc = fs_mkdir_p(o->out, 0755)) < 0)
        goto out;
    p.seed = o->seed;
    if ((rc = build_plan(&p, &m, sp, o->mixed)) < 0)
        goto out;
    if ((size_t)o->shards > p.n) {
        rc = err_set(ERR_INVAL, "--shards %d exceeds the %zu tensors", o->shards, p.n);
        goto out;
    }
    /* shards: split the plan (in order) into runs of about equal bytes */
    uint64_t total = 0, acc = 0;
    for (size_t i = 0; i < p.n; i++)
        total += p.t[i].nbytes;
    int sh = 0;
    for (size_t i = 0; i < p.n; i++) {
        size_t left = p.n - i;
        /* move on when this shard has its share, keeping one tensor for each later shard */
        if (sh < o->shards - 1 &&
            (acc >= total / (uint64_t)o->shards * (uint64_t)(sh + 1) ||
             left == (size_t)(o->shards - 1 - sh)) &&
            i > 0 && p.t[i - 1].shard == sh)
            sh++;
        p.t[i].shard = sh;
        acc += p.t[i].nbytes;
    }
    if ((rc = write_configs(&m, sp, o->mixed, o->out)) < 0)
        goto out;
    char path[4096], file[64];
    for (int s = 0; s < o->shards; s++) {
        if (o->shards == 1)
            snprintf(file, sizeof file, "model.safetensors");
        else
            snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, o->shards);
        if ((rc = fs_join(path, sizeof path, o->out, file)) < 0 ||
            (rc = write_shard(&p, s, path)) < 0)
            goto out;
    }
    if (o->shards > 1) {
        cJSON *idx = cJSON_CreateObject(), *meta = cJSON_CreateObject(), *wm = cJSON_CreateObject();
        cJSON_AddItemToObject(meta, "total_size", num((double)total));
        cJSON_AddItemToObject(idx, "metadata", meta);
        for (size_t i = 0; i < p.n; i++) {
            snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", p.t[i].shard + 1,
                     o->shards);
            cJSON_AddItemToObject(wm, p.t[i].name, cJSON_CreateString(file));
        }
        cJSON_AddItemToObject(idx, "weight_map", wm);
        rc = write_json(o->out, "model.safetensors.index.json", idx);
        cJSON_Delete(idx);
        if (rc < 0)
            goto out;
    }
    if (o->tokenizer) {
        if ((rc = fs_join(path, sizeof path, o->out, "tokenizer.json")) < 0 ||
            (rc = fs_write_atomic(path, tok.p, tok.len)) < 0)
            goto out;
    }
    rc = 0;
out:
    plan_free(&p);
    buf_free(&tok);
    return rc;
}

/* ---- config-only views ---- */

static int synth_lin(struct ckpt *c, struct quant_linear *w, const char *mod, int64_t out,
                     int64_t in, int bits)
{
    if (!(w->name = ckpt_strdup(c, mod)))
        return err_set(ERR_NOMEM, "out of memory");
    w->out = out;
    w->in = in;
    w->bits = bits;
    w->dtype = bits == 16 ? ST_BF16 : ST_I32;
    w->scale_dtype = ST_BF16;
    w->group = bits == 4 ? 32 : in;
    return 0;
}

static int synth_t(struct ckpt *c, struct ckpt_tensor *t, const char *name, enum st_dtype dt,
                   int nd, int64_t d0, int64_t d1, int64_t d2)
{
    if (!(t->name = ckpt_strdup(c, name)))
        return err_set(ERR_NOMEM, "out of memory");
    t->dtype = dt;
    t->ndim = nd;
    t->shape[0] = d0, t->shape[1] = d1, t->shape[2] = d2;
    return 0;
}

int mk_synth(struct ckpt *c, const struct mcfg *m, int mixed)
{
    memset(c, 0, sizeof *c);
    c->cfg = *m;
    int64_t H = m->hidden, I = m->moe_inter, Is = m->shared_inter, E = m->n_experts;
    int rc = 0;
    if (!(c->layers = calloc((size_t)m->n_layers, sizeof *c->layers)))
        return err_set(ERR_NOMEM, "out of memory");
    if ((rc = synth_t(c, &c->embed, "embed_tokens", ST_BF16, 2, m->vocab, H, 0)) < 0 ||
        (rc = synth_t(c, &c->final_norm, "norm", ST_BF16, 1, H, 0, 0)) < 0 ||
        (rc = synth_lin(c, &c->lm_head, "lm_head", m->vocab, H, 16)) < 0)
        goto fail;
    for (int64_t l = 0; l < m->n_layers && !rc; l++) {
        struct ckpt_layer *L = &c->layers[l];
        L->type = m->layer_type[l];
        rc = synth_t(c, &L->input_norm, "input_layernorm", ST_BF16, 1, H, 0, 0) ||
             synth_t(c, &L->post_norm, "post_attention_layernorm", ST_BF16, 1, H, 0, 0);
        if (!rc && L->type == MCFG_FULL_ATTN) {
            int b = mk_recipe_bits(m, mixed, l, 1, 0);
            rc = synth_lin(c, &L->q_proj, "q_proj", mcfg_q_out(m), H, b) ||
                 synth_lin(c, &L->k_proj, "k_proj", mcfg_kv_out(m), H, b) ||
                 synth_lin(c, &L->v_proj, "v_proj", mcfg_kv_out(m), H, b) ||
                 synth_lin(c, &L->o_proj, "o_proj", H, m->n_heads * m->head_dim, b) ||
                 synth_t(c, &L->q_norm, "q_norm", ST_BF16, 1, m->head_dim, 0, 0) ||
                 synth_t(c, &L->k_norm, "k_norm", ST_BF16, 1, m->head_dim, 0, 0);
        } else if (!rc) {
            int64_t kd = mcfg_lin_key_dim(m), vd = mcfg_lin_val_dim(m), Hv = m->lin_v_heads;
            rc =
                synth_lin(c, &L->in_proj_qkv, "in_proj_qkv", 2 * kd + vd, H, 16) ||
                synth_lin(c, &L->in_proj_z, "in_proj_z", vd, H, 16) ||
                synth_lin(c, &L->in_proj_a, "in_proj_a", Hv, H, 16) ||
                synth_lin(c, &L->in_proj_b, "in_proj_b", Hv, H, 16) ||
                synth_lin(c, &L->out_proj, "out_proj", H, vd, 16) ||
                synth_t(c, &L->conv1d, "conv1d", ST_BF16, 3, mcfg_conv_dim(m), 1, m->conv_kernel) ||
                synth_t(c, &L->A_log, "A_log", ST_F32, 1, Hv, 0, 0) ||
                synth_t(c, &L->dt_bias, "dt_bias", ST_BF16, 1, Hv, 0, 0) ||
                synth_t(c, &L->lin_norm, "norm", ST_BF16, 1, m->lin_v_dim, 0, 0);
        }
        if (!rc)
            rc = synth_lin(c, &L->router, "gate", E, H, 16) ||
                 (Is > 0 && (synth_lin(c, &L->sh_gate, "shared_expert.gate_proj", Is, H, 16) ||
                             synth_lin(c, &L->sh_up, "shared_expert.up_proj", Is, H, 16) ||
                             synth_lin(c, &L->sh_down, "shared_expert.down_proj", H, Is, 16) ||
                             synth_lin(c, &L->sh_expert_gate, "shared_expert_gate", 1, H, 16)));
        if (!rc && !(L->experts = calloc((size_t)E * 3, sizeof *L->experts)))
            rc = 1;
        for (int64_t e = 0; e < E && !rc; e++) {
            int b = mk_recipe_bits(m, mixed, l, 0, e);
            rc = synth_lin(c, &L->experts[e * 3], "gate_proj", I, H, b) ||
                 synth_lin(c, &L->experts[e * 3 + 1], "up_proj", I, H, b) ||
                 synth_lin(c, &L->experts[e * 3 + 2], "down_proj", H, I, b);
        }
    }
    if (rc) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto fail;
    }
    return 0;
fail:
    ckpt_close(c);
    return rc;
}
