/* ckpt.c - open a checkpoint directory and bind every expected tensor (see ckpt.h). */
#include "engine/ckpt.h"
#include "common/buf.h"
#include "common/ckd.h"
#include "common/err.h"
#include "common/fs.h"

#include <cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INDEX_FILE "model.safetensors.index.json"
#define INDEX_MAX_BYTES (256u << 20)
#define MAX_SHARDS 4096

/* ---- lifetime ---- */

const char *ckpt_strdup(struct ckpt *c, const char *s)
{
    if (c->n_strs == c->cap_strs) {
        size_t nc = c->cap_strs ? c->cap_strs * 2 : 256;
        char **n = realloc(c->strs, nc * sizeof *n);
        if (!n)
            return NULL;
        c->strs = n;
        c->cap_strs = nc;
    }
    char *d = strdup(s);
    if (d)
        c->strs[c->n_strs++] = d;
    return d;
}

void ckpt_close(struct ckpt *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n_shards; i++)
        st_close(&c->shards[i]);
    free(c->shards);
    free(c->idx);
    if (c->layers)
        for (int64_t l = 0; l < c->cfg.n_layers; l++)
            free(c->layers[l].experts);
    free(c->layers);
    for (size_t i = 0; i < c->n_strs; i++)
        free(c->strs[i]);
    free(c->strs);
    quant_free(&c->q);
    free(c->dir);
    memset(c, 0, sizeof *c);
}

/* ---- the global name index ---- */

static int ent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ckpt_entry *)a)->t->name, ((const struct ckpt_entry *)b)->t->name);
}

static struct ckpt_entry *lookup(const struct ckpt *c, const char *name)
{
    size_t lo = 0, hi = c->n_idx;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(c->idx[mid].t->name, name);
        if (!r)
            return &c->idx[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const struct st_tensor *ckpt_find(const struct ckpt *c, const char *name)
{
    struct ckpt_entry *e = lookup(c, name);
    return e ? e->t : NULL;
}

static const char *shard_name(const struct ckpt *c, const struct ckpt_entry *e)
{
    const char *p = c->shards[e->shard].path, *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int add_shard(struct ckpt *c, const char *file)
{
    char path[4096];
    int rc;
    if (c->n_shards >= MAX_SHARDS)
        return err_set(ERR_INVAL, "%s: more than %d shards", INDEX_FILE, MAX_SHARDS);
    if ((rc = fs_join(path, sizeof path, c->dir, file)) < 0)
        return rc;
    struct st_file *n = realloc(c->shards, (size_t)(c->n_shards + 1) * sizeof *n);
    if (!n)
        return err_set(ERR_NOMEM, "out of memory");
    c->shards = n;
    if ((rc = st_open(&c->shards[c->n_shards], path)) < 0)
        return rc;
    c->n_shards++;
    return 0;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A shard file name from the index: a plain file name inside the directory. */
static int check_shard_name(const char *f, const char *tensor)
{
    size_t n = strlen(f);
    if (!n || strchr(f, '/') || !strcmp(f, ".") || !strcmp(f, "..") || n > 255 || n < 12 ||
        strcmp(f + n - 12, ".safetensors"))
        return err_set(ERR_INVAL,
                       "%s: tensor '%s': shard '%s' is not a .safetensors file name in "
                       "the checkpoint directory",
                       INDEX_FILE, tensor, f);
    return 0;
}

static int load_index(struct ckpt *c, const char *path)
{
    struct buf b = { 0 };
    cJSON *root = NULL;
    int rc = fs_read_file(path, INDEX_MAX_BYTES, &b);
    if (rc < 0)
        return rc;
    root = cJSON_ParseWithLength(b.p ? b.p : "", b.len);
    if (!root) {
        rc = err_set(ERR_INVAL, "%s: not valid JSON", path);
        goto out;
    }
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm) || !wm->child) {
        rc = err_set(ERR_INVAL, "%s: 'weight_map' must be a non-empty object", path);
        goto out;
    }
    /* open each distinct shard once (in first-mention order) */
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e)) {
            rc = err_set(ERR_INVAL, "%s: weight_map['%s'] is not a file name", path, e->string);
            goto out;
        }
        if ((rc = check_shard_name(e->valuestring, e->string)) < 0)
            goto out;
        int seen = 0;
        for (int i = 0; i < c->n_shards && !seen; i++) {
            const char *p = c->shards[i].path, *s = strrchr(p, '/');
            seen = !strcmp(s ? s + 1 : p, e->valuestring);
        }
        if (!seen && (rc = add_shard(c, e->valuestring)) < 0) {
            if (rc == ERR_IO)
                rc = err_prefix(ERR_INVAL, "%s: shard named for '%s' cannot be opened", INDEX_FILE,
                                e->string);
            goto out;
        }
    }
    /* every name must be in its shard's header; every shard tensor must be in the index */
    size_t total = 0;
    for (int i = 0; i < c->n_shards; i++)
        total += c->shards[i].n;
    size_t listed = 0;
    for (const cJSON *e = wm->child; e; e = e->next) {
        listed++;
        const struct st_tensor *t = NULL;
        for (int i = 0; i < c->n_shards && !t; i++) {
            const char *p = c->shards[i].path, *s = strrchr(p, '/');
            if (!strcmp(s ? s + 1 : p, e->valuestring) &&
                !(t = st_find(&c->shards[i], e->string))) {
                rc = err_set(ERR_INVAL,
                             "%s: tensor '%s' is listed in shard '%s' but that shard's "
                             "header does not hold it",
                             INDEX_FILE, e->string, e->valuestring);
                goto out;
            }
        }
    }
    if (listed != total) {
        /* a name listed twice, or a shard tensor the index does not list: sort the listed
         * names once (no quadratic search on a hostile index) */
        const char **names = malloc(listed * sizeof *names);
        if (!names) {
            rc = err_set(ERR_NOMEM, "out of memory");
            goto out;
        }
        size_t k = 0;
        for (const cJSON *e = wm->child; e; e = e->next)
            names[k++] = e->string;
        qsort(names, listed, sizeof *names, str_cmp);
        rc = 0;
        for (k = 1; k < listed && !rc; k++)
            if (!strcmp(names[k - 1], names[k]))
                rc = err_set(ERR_INVAL, "%s: weight_map lists '%s' twice", INDEX_FILE, names[k]);
        for (int i = 0; i < c->n_shards && !rc; i++)
            for (size_t t = 0; t < c->shards[i].n && !rc; t++) {
                const char *n = c->shards[i].t[t].name;
                if (!bsearch(&n, names, listed, sizeof *names, str_cmp))
                    rc = err_set(ERR_INVAL, "%s: tensor '%s' is not listed in %s",
                                 c->shards[i].path, n, INDEX_FILE);
            }
        free(names);
        if (!rc)
            rc = err_set(ERR_INVAL, "%s: weight_map lists %zu names for %zu tensors", INDEX_FILE,
                         listed, total);
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    buf_free(&b);
    return rc;
}

static int build_index(struct ckpt *c)
{
    size_t total = 0;
    for (int i = 0; i < c->n_shards; i++)
        total += c->shards[i].n;
    if (!total)
        return err_set(ERR_INVAL, "%s: the checkpoint holds no tensors", c->dir);
    if (!(c->idx = calloc(total, sizeof *c->idx)))
        return err_set(ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->n_shards; i++)
        for (size_t k = 0; k < c->shards[i].n; k++)
            c->idx[c->n_idx++] = (struct ckpt_entry){ &c->shards[i].t[k], i, 0 };
    qsort(c->idx, c->n_idx, sizeof *c->idx, ent_cmp);
    for (size_t i = 1; i < c->n_idx; i++)
        if (!strcmp(c->idx[i - 1].t->name, c->idx[i].t->name))
            return err_set(ERR_INVAL, "tensor '%s' appears in both %s and %s", c->idx[i].t->name,
                           shard_name(c, &c->idx[i - 1]), shard_name(c, &c->idx[i]));
    return 0;
}

/* ---- binding ---- */

static int is_float(enum st_dtype d) { return d == ST_BF16 || d == ST_F16 || d == ST_F32; }

static int shape_str(char *out, size_t cap, int nd, const int64_t *s)
{
    size_t o = 0;
    o += (size_t)snprintf(out + o, cap - o, "[");
    for (int i = 0; i < nd && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (o < cap)
        snprintf(out + o, cap - o, "]");
    return 0;
}

static int same_shape(const struct st_tensor *t, int nd, const int64_t *s)
{
    if (t->ndim != nd)
        return 0;
    for (int i = 0; i < nd; i++)
        if (t->shape[i] != s[i])
            return 0;
    return 1;
}

static int shape_err(const struct ckpt *c, const struct ckpt_entry *e, int nd, const int64_t *s)
{
    char want[128], got[128];
    shape_str(want, sizeof want, nd, s);
    shape_str(got, sizeof got, e->t->ndim, e->t->shape);
    return err_set(ERR_INVAL, "%s: tensor '%s': shape %s, expected %s", shard_name(c, e),
                   e->t->name, got, want);
}

/* Binds a plain float tensor `name` with the given shape. optional: absent is fine. */
static int bind_plain(struct ckpt *c, struct ckpt_tensor *v, const char *name, int nd,
                      const int64_t *shape, int optional)
{
    struct ckpt_entry *e = lookup(c, name);
    memset(v, 0, sizeof *v);
    if (!e) {
        if (optional)
            return 0;
        return err_set(ERR_INVAL, "%s: missing tensor '%s' (expected a float tensor)", c->dir,
                       name);
    }
    if (!is_float(e->t->dtype))
        return err_set(ERR_INVAL, "%s: tensor '%s': dtype %s, expected BF16, F16 or F32",
                       shard_name(c, e), name, st_dtype_name(e->t->dtype));
    if (!same_shape(e->t, nd, shape))
        return shape_err(c, e, nd, shape);
    e->used = 1;
    if (!(v->name = ckpt_strdup(c, name)))
        return err_set(ERR_NOMEM, "out of memory");
    v->data = e->t->data;
    v->dtype = e->t->dtype;
    v->ndim = nd;
    memcpy(v->shape, shape, (size_t)nd * sizeof *shape);
    return 0;
}

static int bindf_plain(struct ckpt *c, struct ckpt_tensor *v, int optional, int nd,
                       const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int bindf_plain(struct ckpt *c, struct ckpt_tensor *v, int optional, int nd,
                       const int64_t *shape, const char *fmt, ...)
{
    char name[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return bind_plain(c, v, name, nd, shape, optional);
}

static const char *const qsuffix[] = { "weight_zero_point", "weight_g_idx" };

/* Binds module `mod` as a linear weight [out, in] of class `cls`; the precision is decided by
 * quantization_config and confirmed against the tensors present. */
static int bind_linear(struct ckpt *c, struct quant_linear *w, const char *mod, const char *cls,
                       int64_t out, int64_t in)
{
    char n_w[1100], n_p[1100], n_s[1100], n_sh[1100];
    snprintf(n_w, sizeof n_w, "%s.weight", mod);
    snprintf(n_p, sizeof n_p, "%s.weight_packed", mod);
    snprintf(n_s, sizeof n_s, "%s.weight_scale", mod);
    snprintf(n_sh, sizeof n_sh, "%s.weight_shape", mod);
    memset(w, 0, sizeof *w);
    if (!(w->name = ckpt_strdup(c, mod)))
        return err_set(ERR_NOMEM, "out of memory");
    w->out = out;
    w->in = in;
    int ignored;
    int sc = quant_match(&c->q, mod, cls, &ignored);
    struct ckpt_entry *ew = lookup(c, n_w), *ep = lookup(c, n_p), *es = lookup(c, n_s),
                      *esh = lookup(c, n_sh);
    if (sc < 0) {
        if (ep)
            return err_set(
                ERR_INVAL,
                "%s: unexpected quantized tensor '%s': quantization_config %s this module",
                shard_name(c, ep), n_p, ignored ? "ignores" : "has no target for");
        if (!ew)
            return err_set(ERR_INVAL, "%s: missing tensor '%s' (expected unquantized [%lld, %lld])",
                           c->dir, n_w, (long long)out, (long long)in);
        if (!is_float(ew->t->dtype))
            return err_set(ERR_INVAL, "%s: tensor '%s': dtype %s, expected BF16, F16 or F32",
                           shard_name(c, ew), n_w, st_dtype_name(ew->t->dtype));
        int64_t sh[2] = { out, in };
        if (!same_shape(ew->t, 2, sh))
            return shape_err(c, ew, 2, sh);
        ew->used = 1;
        w->bits = 16;
        w->dtype = ew->t->dtype;
        w->data = ew->t->data;
        return 0;
    }
    const struct quant_scheme *s = &c->q.schemes[sc];
    char desc[64];
    if (s->group_size)
        snprintf(desc, sizeof desc, "int%d group %d", s->bits, s->group_size);
    else
        snprintf(desc, sizeof desc, "int%d channel", s->bits);
    if (!ep)
        return err_set(ERR_INVAL,
                       "%s: missing tensor '%s': quantization_config group '%s' makes this module "
                       "%s%s",
                       c->dir, n_p, s->group, desc,
                       ew ? ", but the checkpoint stores it unquantized (.weight)" : "");
    if (ew)
        return err_set(ERR_INVAL, "%s: module '%s' has both .weight and .weight_packed",
                       shard_name(c, ew), mod);
    if (!es)
        return err_set(ERR_INVAL, "%s: missing tensor '%s' (%s scales for '%s')", c->dir, n_s, desc,
                       n_p);
    if (!esh)
        return err_set(ERR_INVAL, "%s: missing tensor '%s' (I64 [2] = {%lld, %lld})", c->dir, n_sh,
                       (long long)out, (long long)in);
    for (size_t i = 0; i < sizeof qsuffix / sizeof *qsuffix; i++) {
        char n[1100];
        snprintf(n, sizeof n, "%s.%s", mod, qsuffix[i]);
        struct ckpt_entry *x = lookup(c, n);
        if (x)
            return err_set(ERR_UNSUPPORTED,
                           "%s: tensor '%s': zero points / g_idx are not expected for symmetric "
                           "%s without group actorder",
                           shard_name(c, x), n, desc);
    }
    /* weight_shape: I64 [2] == {out, in} */
    int64_t two = 2;
    if (esh->t->dtype != ST_I64 || !same_shape(esh->t, 1, &two))
        return err_set(ERR_INVAL, "%s: tensor '%s': %s %s, expected I64 [2]", shard_name(c, esh),
                       n_sh, st_dtype_name(esh->t->dtype), esh->t->ndim == 1 ? "1-D" : "not [2]");
    int64_t ws[2];
    memcpy(ws, esh->t->data, sizeof ws);
    if (ws[0] != out || ws[1] != in)
        return err_set(ERR_INVAL, "%s: tensor '%s' = {%lld, %lld}, expected {%lld, %lld}",
                       shard_name(c, esh), n_sh, (long long)ws[0], (long long)ws[1], (long long)out,
                       (long long)in);
    /* packed: I32 [out, in*bits/32]; cross-check the bit width the tensor implies */
    int per = 32 / s->bits;
    if (in % per)
        return err_set(ERR_INVAL, "%s: module '%s': in-features %lld not a multiple of %d (%s)",
                       c->dir, mod, (long long)in, per, desc);
    if (ep->t->dtype != ST_I32)
        return err_set(ERR_INVAL, "%s: tensor '%s': dtype %s, expected I32", shard_name(c, ep), n_p,
                       st_dtype_name(ep->t->dtype));
    int64_t psh[2] = { out, in / per };
    if (!same_shape(ep->t, 2, psh)) {
        if (ep->t->ndim == 2 && ep->t->shape[0] == out && ep->t->shape[1] > 0 &&
            (in * 32) % (ep->t->shape[1] * 32) == 0 && in / ep->t->shape[1] != per)
            return err_set(
                ERR_INVAL,
                "%s: tensor '%s' holds int%lld codes, but quantization_config group '%s' "
                "says %s",
                shard_name(c, ep), n_p, (long long)(ep->t->shape[1] * 32 / in), s->group, desc);
        return shape_err(c, ep, 2, psh);
    }
    /* scale: [out, in/group] (channel: [out, 1]) of a float dtype */
    int64_t group = s->group_size ? s->group_size : in;
    if (in % group)
        return err_set(ERR_INVAL,
                       "%s: module '%s': in-features %lld not a multiple of group size %lld",
                       c->dir, mod, (long long)in, (long long)group);
    if (!is_float(es->t->dtype))
        return err_set(ERR_INVAL, "%s: tensor '%s': dtype %s, expected BF16, F16 or F32",
                       shard_name(c, es), n_s, st_dtype_name(es->t->dtype));
    int64_t ssh[2] = { out, in / group };
    if (!same_shape(es->t, 2, ssh)) {
        if (es->t->ndim == 2 && es->t->shape[0] == out && es->t->shape[1] > 0 &&
            in % es->t->shape[1] == 0)
            return err_set(ERR_INVAL,
                           "%s: tensor '%s' implies group size %lld, but quantization_config group "
                           "'%s' says %s",
                           shard_name(c, es), n_s, (long long)(in / es->t->shape[1]), s->group,
                           desc);
        return shape_err(c, es, 2, ssh);
    }
    ep->used = es->used = esh->used = 1;
    w->bits = s->bits;
    w->dtype = ST_I32;
    w->data = ep->t->data;
    w->scale = es->t->data;
    w->scale_dtype = es->t->dtype;
    w->group = group;
    return 0;
}

static int bindf_linear(struct ckpt *c, struct quant_linear *w, const char *cls, int64_t out,
                        int64_t in, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int bindf_linear(struct ckpt *c, struct quant_linear *w, const char *cls, int64_t out,
                        int64_t in, const char *fmt, ...)
{
    char mod[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mod, sizeof mod, fmt, ap);
    va_end(ap);
    return bind_linear(c, w, mod, cls, out, in);
}

static int bind_experts(struct ckpt *c, struct ckpt_layer *L, const char *p)
{
    const struct mcfg *m = &c->cfg;
    int64_t E = m->n_experts, I = m->moe_inter, H = m->hidden;
    size_t n;
    if (ckd_mul_sz(&n, (size_t)E, 3) || !(L->experts = calloc(n, sizeof *L->experts)))
        return err_set(ERR_NOMEM, "out of memory");
    char gu[1024], dn[1024], mod[1024];
    snprintf(gu, sizeof gu, "%smlp.experts.gate_up_proj", p);
    snprintf(dn, sizeof dn, "%smlp.experts.down_proj", p);
    snprintf(mod, sizeof mod, "%smlp.experts", p);
    struct ckpt_entry *egu = lookup(c, gu), *edn = lookup(c, dn);
    if (!egu && !edn) {
        for (int64_t e = 0; e < E; e++) {
            int rc;
            if ((rc = bindf_linear(c, &L->experts[e * 3 + 0], "Linear", I, H,
                                   "%smlp.experts.%lld.gate_proj", p, (long long)e)) < 0 ||
                (rc = bindf_linear(c, &L->experts[e * 3 + 1], "Linear", I, H,
                                   "%smlp.experts.%lld.up_proj", p, (long long)e)) < 0 ||
                (rc = bindf_linear(c, &L->experts[e * 3 + 2], "Linear", H, I,
                                   "%smlp.experts.%lld.down_proj", p, (long long)e)) < 0)
                return rc;
        }
        return 0;
    }
    if (!egu || !edn)
        return err_set(ERR_INVAL,
                       "%s: missing tensor '%s' (fused experts need both gate_up_proj "
                       "and down_proj)",
                       c->dir, egu ? dn : gu);
    char e0[1100];
    snprintf(e0, sizeof e0, "%s.0.gate_proj.weight", mod);
    if (lookup(c, e0))
        return err_set(ERR_INVAL, "%s: layer has both fused and per-expert tensors ('%s')", c->dir,
                       e0);
    int ignored;
    if (quant_match(&c->q, mod, NULL, &ignored) >= 0 || quant_match(&c->q, gu, NULL, &ignored) >= 0)
        return err_set(ERR_UNSUPPORTED,
                       "%s: quantization_config targets fused experts '%s' (only per-expert Linear "
                       "modules can be quantized)",
                       c->dir, mod);
    int64_t sgu[3] = { E, 2 * I, H }, sdn[3] = { E, H, I };
    if (!is_float(egu->t->dtype) || egu->t->dtype != edn->t->dtype)
        return err_set(ERR_INVAL,
                       "%s: tensor '%s': dtype %s, expected BF16, F16 or F32 (same as '%s')",
                       shard_name(c, egu), gu, st_dtype_name(egu->t->dtype), dn);
    if (!same_shape(egu->t, 3, sgu))
        return shape_err(c, egu, 3, sgu);
    if (!same_shape(edn->t, 3, sdn))
        return shape_err(c, edn, 3, sdn);
    egu->used = edn->used = 1;
    L->experts_fused = 1;
    size_t es = (size_t)st_dtype_bits(egu->t->dtype) / 8;
    const char *ngu = ckpt_strdup(c, gu), *ndn = ckpt_strdup(c, dn);
    if (!ngu || !ndn)
        return err_set(ERR_NOMEM, "out of memory");
    for (int64_t e = 0; e < E; e++) {
        const uint8_t *g = (const uint8_t *)egu->t->data + (size_t)(e * 2 * I * H) * es;
        const uint8_t *d = (const uint8_t *)edn->t->data + (size_t)(e * H * I) * es;
        L->experts[e * 3 + 0] = (struct quant_linear){
            .name = ngu, .out = I, .in = H, .bits = 16, .dtype = egu->t->dtype, .data = g
        };
        L->experts[e * 3 + 1] = L->experts[e * 3 + 0];
        L->experts[e * 3 + 1].data = g + (size_t)(I * H) * es;
        L->experts[e * 3 + 2] = (struct quant_linear){
            .name = ndn, .out = H, .in = I, .bits = 16, .dtype = edn->t->dtype, .data = d
        };
    }
    return 0;
}

/* Optional FP8 KV-cache scale: self_attn.k_scale (new compressed-tensors) or
 * self_attn.k_proj.output_scale (older llm-compressor); [1] (tensor strategy) or
 * [n_kv_heads, 1, 1] / [n_kv_heads] (attn_head strategy). Absent: data NULL (scale 1.0). */
static int bind_kv_scale(struct ckpt *c, struct ckpt_tensor *v, const char *p, const char *kv)
{
    char n1[512], n2[512];
    snprintf(n1, sizeof n1, "%sself_attn.%s_scale", p, kv);
    snprintf(n2, sizeof n2, "%sself_attn.%s_proj.output_scale", p, kv);
    struct ckpt_entry *e = lookup(c, n1);
    const char *name = n1;
    if (!e && (e = lookup(c, n2)))
        name = n2;
    memset(v, 0, sizeof *v);
    if (!e)
        return 0;
    uint64_t numel = e->t->numel;
    if (!is_float(e->t->dtype) || e->t->ndim > 3 ||
        (numel != 1 && numel != (uint64_t)c->cfg.n_kv_heads))
        return err_set(ERR_INVAL,
                       "%s: tensor '%s': %s with %llu elements, expected a float scale of 1 or "
                       "%lld (one per KV head)",
                       shard_name(c, e), name, st_dtype_name(e->t->dtype),
                       (unsigned long long)numel, (long long)c->cfg.n_kv_heads);
    e->used = 1;
    if (!(v->name = ckpt_strdup(c, name)))
        return err_set(ERR_NOMEM, "out of memory");
    v->data = e->t->data;
    v->dtype = e->t->dtype;
    v->ndim = e->t->ndim;
    for (int i = 0; i < e->t->ndim; i++)
        v->shape[i] = e->t->shape[i];
    return 0;
}

static int bind_layer(struct ckpt *c, int64_t l)
{
    const struct mcfg *m = &c->cfg;
    struct ckpt_layer *L = &c->layers[l];
    char p[256];
    int rc;
    snprintf(p, sizeof p, "%slayers.%lld.", m->prefix, (long long)l);
    int64_t H = m->hidden, hd = m->head_dim;
    int64_t sH[1] = { H };
    L->type = m->layer_type[l];
    if ((rc = bindf_plain(c, &L->input_norm, 0, 1, sH, "%sinput_layernorm.weight", p)) < 0 ||
        (rc = bindf_plain(c, &L->post_norm, 0, 1, sH, "%spost_attention_layernorm.weight", p)) < 0)
        return rc;
    if (L->type == MCFG_FULL_ATTN) {
        int64_t shd[1] = { hd };
        int64_t qo = mcfg_q_out(m), kv = mcfg_kv_out(m), ao = m->n_heads * hd;
        if ((rc = bindf_linear(c, &L->q_proj, "Linear", qo, H, "%sself_attn.q_proj", p)) < 0 ||
            (rc = bindf_linear(c, &L->k_proj, "Linear", kv, H, "%sself_attn.k_proj", p)) < 0 ||
            (rc = bindf_linear(c, &L->v_proj, "Linear", kv, H, "%sself_attn.v_proj", p)) < 0 ||
            (rc = bindf_linear(c, &L->o_proj, "Linear", H, ao, "%sself_attn.o_proj", p)) < 0 ||
            (rc = bindf_plain(c, &L->q_norm, 0, 1, shd, "%sself_attn.q_norm.weight", p)) < 0 ||
            (rc = bindf_plain(c, &L->k_norm, 0, 1, shd, "%sself_attn.k_norm.weight", p)) < 0 ||
            (rc = bind_kv_scale(c, &L->k_scale, p, "k")) < 0 ||
            (rc = bind_kv_scale(c, &L->v_scale, p, "v")) < 0)
            return rc;
    } else {
        int64_t kd = mcfg_lin_key_dim(m), vd = mcfg_lin_val_dim(m), cd = mcfg_conv_dim(m);
        int64_t Hv = m->lin_v_heads;
        int64_t sconv[3] = { cd, 1, m->conv_kernel }, sHv[1] = { Hv }, sdv[1] = { m->lin_v_dim };
        if ((rc = bindf_linear(c, &L->in_proj_qkv, "Linear", 2 * kd + vd, H,
                               "%slinear_attn.in_proj_qkv", p)) < 0 ||
            (rc = bindf_linear(c, &L->in_proj_z, "Linear", vd, H, "%slinear_attn.in_proj_z", p)) <
                0 ||
            (rc = bindf_linear(c, &L->in_proj_a, "Linear", Hv, H, "%slinear_attn.in_proj_a", p)) <
                0 ||
            (rc = bindf_linear(c, &L->in_proj_b, "Linear", Hv, H, "%slinear_attn.in_proj_b", p)) <
                0 ||
            (rc = bindf_linear(c, &L->out_proj, "Linear", H, vd, "%slinear_attn.out_proj", p)) <
                0 ||
            (rc = bindf_plain(c, &L->conv1d, 0, 3, sconv, "%slinear_attn.conv1d.weight", p)) < 0 ||
            (rc = bindf_plain(c, &L->A_log, 0, 1, sHv, "%slinear_attn.A_log", p)) < 0 ||
            (rc = bindf_plain(c, &L->dt_bias, 0, 1, sHv, "%slinear_attn.dt_bias", p)) < 0 ||
            (rc = bindf_plain(c, &L->lin_norm, 0, 1, sdv, "%slinear_attn.norm.weight", p)) < 0)
            return rc;
    }
    int64_t Is = m->shared_inter;
    if ((rc = bindf_linear(c, &L->router, "TopKRouter", m->n_experts, H, "%smlp.gate", p)) < 0 ||
        (rc = bind_experts(c, L, p)) < 0)
        return rc;
    if (Is > 0 &&
        ((rc = bindf_linear(c, &L->sh_gate, "Linear", Is, H, "%smlp.shared_expert.gate_proj", p)) <
             0 ||
         (rc = bindf_linear(c, &L->sh_up, "Linear", Is, H, "%smlp.shared_expert.up_proj", p)) < 0 ||
         (rc = bindf_linear(c, &L->sh_down, "Linear", H, Is, "%smlp.shared_expert.down_proj", p)) <
             0 ||
         (rc = bindf_linear(c, &L->sh_expert_gate, "Linear", 1, H, "%smlp.shared_expert_gate", p)) <
             0))
        return rc;
    return 0;
}

/* Sweeps names no binding claimed: mtp / visual are indexed; everything else is foreign. */
static int sweep(struct ckpt *c)
{
    for (size_t i = 0; i < c->n_idx; i++) {
        struct ckpt_entry *e = &c->idx[i];
        if (e->used)
            continue;
        const char *n = e->t->name;
        if (!strncmp(n, "mtp.", 4) || !strncmp(n, "model.visual.", 13)) {
            e->used = 1;
            if (n[0] == 'm' && n[1] == 't')
                c->n_mtp++;
            else
                c->n_visual++;
            /* a quantized unbound module must still agree with the config */
            size_t len = strlen(n);
            if (len > 14 && !strcmp(n + len - 14, ".weight_packed")) {
                char mod[1100];
                snprintf(mod, sizeof mod, "%.*s", (int)(len - 14), n);
                if (quant_match(&c->q, mod, "Linear", NULL) < 0)
                    return err_set(ERR_INVAL,
                                   "%s: unexpected quantized tensor '%s': quantization_config does "
                                   "not quantize this module",
                                   shard_name(c, e), n);
            }
            continue;
        }
        return err_set(ERR_INVAL, "%s: unexpected tensor '%s' (not part of a %s checkpoint)",
                       shard_name(c, e), n, c->cfg.arch);
    }
    const struct quant_target *t = quant_unused_target(&c->q);
    if (t)
        return err_set(
            ERR_INVAL,
            "%s/config.json: quantization_config group '%s' target '%s' matches no module "
            "of the checkpoint",
            c->dir, c->q.schemes[t->scheme].group, t->s);
    return 0;
}

int ckpt_open(struct ckpt *c, const char *dir)
{
    memset(c, 0, sizeof *c);
    char path[4096];
    struct buf cfgtext = { 0 };
    int rc;
    if (!(c->dir = strdup(dir)))
        return err_set(ERR_NOMEM, "out of memory");
    if (!fs_is_dir(dir)) {
        rc = err_set(ERR_NOTFOUND, "%s: not a checkpoint directory", dir);
        goto fail;
    }
    if ((rc = mcfg_load(&c->cfg, dir)) < 0)
        goto fail;
    /* config.json again for quantization_config (same bytes mcfg_load validated) */
    if ((rc = fs_join(path, sizeof path, dir, "config.json")) < 0 ||
        (rc = fs_read_file(path, 16u << 20, &cfgtext)) < 0 ||
        (rc = quant_parse(&c->q, cfgtext.p ? cfgtext.p : "", cfgtext.len, path)) < 0)
        goto fail;
    if ((rc = fs_join(path, sizeof path, dir, INDEX_FILE)) < 0)
        goto fail;
    if (fs_exists(path)) {
        if ((rc = load_index(c, path)) < 0)
            goto fail;
    } else if ((rc = add_shard(c, "model.safetensors")) < 0) {
        if (rc == ERR_IO)
            rc = err_prefix(ERR_INVAL, "%s: neither %s nor model.safetensors is readable", dir,
                            INDEX_FILE);
        goto fail;
    }
    if ((rc = build_index(c)) < 0)
        goto fail;
    const struct mcfg *m = &c->cfg;
    int64_t sVH[2] = { m->vocab, m->hidden }, sH[1] = { m->hidden };
    char n[512];
    snprintf(n, sizeof n, "%sembed_tokens", m->prefix);
    int ign;
    if (quant_match(&c->q, n, "Embedding", &ign) >= 0) {
        rc = err_set(ERR_UNSUPPORTED,
                     "%s/config.json: quantized embeddings ('%s') are not supported", dir, n);
        goto fail;
    }
    if ((rc = bindf_plain(c, &c->embed, 0, 2, sVH, "%sembed_tokens.weight", m->prefix)) < 0 ||
        (rc = bindf_plain(c, &c->final_norm, 0, 1, sH, "%snorm.weight", m->prefix)) < 0)
        goto fail;
    if (m->tie_embeddings && !lookup(c, "lm_head.weight") && !lookup(c, "lm_head.weight_packed")) {
        c->lm_head = (struct quant_linear){ .name = c->embed.name,
                                            .out = m->vocab,
                                            .in = m->hidden,
                                            .bits = 16,
                                            .dtype = c->embed.dtype,
                                            .data = c->embed.data };
    } else if ((rc = bind_linear(c, &c->lm_head, "lm_head", "Linear", m->vocab, m->hidden)) < 0) {
        goto fail;
    }
    if (!(c->layers = calloc((size_t)m->n_layers, sizeof *c->layers))) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int64_t l = 0; l < m->n_layers; l++)
        if ((rc = bind_layer(c, l)) < 0)
            goto fail;
    if ((rc = sweep(c)) < 0)
        goto fail;
    buf_free(&cfgtext);
    return 0;
fail:
    buf_free(&cfgtext);
    ckpt_close(c);
    return rc;
}

/* ---- statistics ---- */

static const char *const class_names[CK_NCLASS] = {
    [CK_ROUTED_W4] = "routed experts W4",
    [CK_ROUTED_W8] = "routed experts W8 (super-experts)",
    [CK_ROUTED_BF16] = "routed experts 16-bit",
    [CK_ATTN_W8] = "attention W8",
    [CK_ATTN_W4] = "attention W4",
    [CK_ATTN_BF16] = "attention 16-bit",
    [CK_GDN_Q] = "DeltaNet projections quantized",
    [CK_GDN_BF16] = "DeltaNet projections 16-bit",
    [CK_SHARED_Q] = "shared experts quantized",
    [CK_SHARED_BF16] = "shared experts 16-bit",
    [CK_ROUTER] = "routers + shared gates",
    [CK_EMBED] = "embedding",
    [CK_LM_HEAD] = "lm_head",
    [CK_SMALL] = "norms, conv, A_log, dt_bias",
};

const char *ckpt_class_name(int cls)
{
    return cls >= 0 && cls < CK_NCLASS ? class_names[cls] : "?";
}

static uint64_t tensor_bytes(const struct ckpt_tensor *t)
{
    if (!t->name)
        return 0;
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (uint64_t)t->shape[i];
    return n * (uint64_t)(st_dtype_bits(t->dtype) / 8);
}

static void add_lin(struct ckpt_stats *s, const struct quant_linear *w, int q_cls, int bf_cls,
                    int dense)
{
    if (!w->name)
        return;
    int cls = w->bits == 16 ? bf_cls : q_cls;
    uint64_t b = quant_linear_bytes(w);
    s->count[cls]++;
    s->bytes[cls] += b;
    s->total_bytes += b;
    if (dense)
        s->per_token_bytes += b;
}

static void add_small(struct ckpt_stats *s, const struct ckpt_tensor *t)
{
    if (!t->name)
        return;
    uint64_t b = tensor_bytes(t);
    s->count[CK_SMALL]++;
    s->bytes[CK_SMALL] += b;
    s->total_bytes += b;
    s->per_token_bytes += b;
}

void ckpt_stats(const struct ckpt *c, struct ckpt_stats *s)
{
    const struct mcfg *m = &c->cfg;
    memset(s, 0, sizeof *s);
    uint64_t eb = tensor_bytes(&c->embed);
    s->count[CK_EMBED] = 1;
    s->bytes[CK_EMBED] = eb;
    s->total_bytes = eb;
    s->per_token_bytes = eb / (uint64_t)m->vocab; /* one row */
    if (c->lm_head.data != c->embed.data || !c->lm_head.data)
        add_lin(s, &c->lm_head, CK_LM_HEAD, CK_LM_HEAD, 1);
    else
        s->per_token_bytes += eb;
    add_small(s, &c->final_norm);
    for (int64_t l = 0; l < m->n_layers && c->layers; l++) {
        const struct ckpt_layer *L = &c->layers[l];
        add_small(s, &L->input_norm);
        add_small(s, &L->post_norm);
        if (L->type == MCFG_FULL_ATTN) {
            const struct quant_linear *a[4] = { &L->q_proj, &L->k_proj, &L->v_proj, &L->o_proj };
            for (int i = 0; i < 4; i++)
                add_lin(s, a[i], a[i]->bits == 4 ? CK_ATTN_W4 : CK_ATTN_W8, CK_ATTN_BF16, 1);
            add_small(s, &L->q_norm);
            add_small(s, &L->k_norm);
            add_small(s, &L->k_scale);
            add_small(s, &L->v_scale);
        } else {
            const struct quant_linear *a[5] = { &L->in_proj_qkv, &L->in_proj_z, &L->in_proj_a,
                                                &L->in_proj_b, &L->out_proj };
            for (int i = 0; i < 5; i++)
                add_lin(s, a[i], CK_GDN_Q, CK_GDN_BF16, 1);
            add_small(s, &L->conv1d);
            add_small(s, &L->A_log);
            add_small(s, &L->dt_bias);
            add_small(s, &L->lin_norm);
        }
        add_lin(s, &L->router, CK_ROUTER, CK_ROUTER, 1);
        add_lin(s, &L->sh_expert_gate, CK_ROUTER, CK_ROUTER, 1);
        add_lin(s, &L->sh_gate, CK_SHARED_Q, CK_SHARED_BF16, 1);
        add_lin(s, &L->sh_up, CK_SHARED_Q, CK_SHARED_BF16, 1);
        add_lin(s, &L->sh_down, CK_SHARED_Q, CK_SHARED_BF16, 1);
        /* routed: top_k experts of this layer's average size are read per token */
        uint64_t layer_exp = 0;
        for (int64_t e = 0; L->experts && e < m->n_experts * 3; e++) {
            const struct quant_linear *w = &L->experts[e];
            add_lin(s, w, w->bits == 8 ? CK_ROUTED_W8 : CK_ROUTED_W4, CK_ROUTED_BF16, 0);
            layer_exp += quant_linear_bytes(w);
        }
        s->per_token_bytes += layer_exp / (uint64_t)m->n_experts * (uint64_t)m->top_k;
    }
    /* KV: K and V, n_kv_heads x head_dim per full-attention layer */
    s->kv_bytes_fp8 = (uint64_t)(m->n_full * 2 * m->n_kv_heads * m->head_dim);
    s->kv_bytes_bf16 = 2 * s->kv_bytes_fp8;
    /* DeltaNet: fp32 state [Hv, dk, dv] + bf16 conv state [conv_dim, kernel-1] per layer */
    uint64_t n_lin = (uint64_t)(m->n_layers - m->n_full);
    s->gdn_state_bytes = n_lin * ((uint64_t)(m->lin_v_heads * m->lin_k_dim * m->lin_v_dim) * 4 +
                                  (uint64_t)(mcfg_conv_dim(m) * (m->conv_kernel - 1)) * 2);
    for (size_t i = 0; i < c->n_idx; i++)
        if (!strncmp(c->idx[i].t->name, "mtp.", 4) ||
            !strncmp(c->idx[i].t->name, "model.visual.", 13))
            s->extra_bytes += c->idx[i].t->end - c->idx[i].t->begin;
}
