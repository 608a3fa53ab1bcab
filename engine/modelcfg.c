/* modelcfg.c - config.json / generation_config.json into a validated struct mcfg. */
#include "engine/modelcfg.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define CFG_MAX_BYTES (16u << 20)

/* ---- typed field access: every read names the file and key on error ---- */

static int get_int(const cJSON *o, const char *key, int64_t lo, int64_t hi, int required,
                   int64_t def, int64_t *out, const char *label)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        if (required)
            return err_set(ERR_INVAL, "%s: missing required key '%s'", label, key);
        *out = def;
        return 0;
    }
    double d = j->valuedouble;
    if (!cJSON_IsNumber(j) || floor(d) != d || !(d >= (double)lo) || !(d <= (double)hi))
        return err_set(ERR_INVAL, "%s: '%s' must be an integer in [%lld, %lld]", label, key,
                       (long long)lo, (long long)hi);
    *out = (int64_t)d;
    return 0;
}

static int get_num(const cJSON *o, const char *key, double lo, double hi, double def, double *out,
                   const char *label)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= lo) || !(j->valuedouble <= hi))
        return err_set(ERR_INVAL, "%s: '%s' must be a number in [%g, %g]", label, key, lo, hi);
    *out = j->valuedouble;
    return 0;
}

static int get_bool(const cJSON *o, const char *key, int def, int *out, const char *label)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(j))
        return err_set(ERR_INVAL, "%s: '%s' must be true or false", label, key);
    *out = cJSON_IsTrue(j);
    return 0;
}

/* An integer or a list of integers (eos_token_id). */
static int get_ids(const cJSON *o, const char *key, int64_t *ids, int *n, const char *label)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j))
        return 0;
    const cJSON *one = cJSON_IsArray(j) ? j->child : j;
    int k = 0;
    for (; one; one = cJSON_IsArray(j) ? one->next : NULL) {
        double d = one->valuedouble;
        if (!cJSON_IsNumber(one) || floor(d) != d || d < 0 || d > (double)(1 << 30))
            return err_set(ERR_INVAL, "%s: '%s' must be token ids", label, key);
        if (k == MCFG_MAX_EOS)
            return err_set(ERR_INVAL, "%s: '%s' lists more than %d ids", label, key, MCFG_MAX_EOS);
        ids[k++] = (int64_t)d;
    }
    *n = k;
    return 0;
}

static int parse_rope(struct mcfg *c, const cJSON *t, const char *label)
{
    int rc;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(t, "rope_parameters");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(t, "rope_scaling");
    if (rp && !cJSON_IsNull(rp) && !cJSON_IsObject(rp))
        return err_set(ERR_INVAL, "%s: 'rope_parameters' must be an object", label);
    if (rs && !cJSON_IsNull(rs) && !cJSON_IsObject(rs))
        return err_set(ERR_INVAL, "%s: 'rope_scaling' must be an object", label);
    const cJSON *r = cJSON_IsObject(rp) ? rp : cJSON_IsObject(rs) ? rs : NULL;
    double theta_top;
    if ((rc = get_num(t, "rope_theta", 1, 1e12, 10000000.0, &theta_top, label)) < 0 ||
        (rc = get_num(t, "partial_rotary_factor", 1e-6, 1, 0.25, &c->partial_rotary, label)) < 0)
        return rc;
    c->rope_theta = theta_top;
    c->rope_type = MCFG_ROPE_DEFAULT;
    c->yarn_factor = 1;
    if (r) {
        if ((rc = get_num(r, "rope_theta", 1, 1e12, theta_top, &c->rope_theta, label)) < 0 ||
            (rc = get_num(r, "partial_rotary_factor", 1e-6, 1, c->partial_rotary,
                          &c->partial_rotary, label)) < 0)
            return err_prefix(rc, "rope parameters");
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(r, "rope_type");
        if (!ty)
            ty = cJSON_GetObjectItemCaseSensitive(r, "type");
        if (ty && !cJSON_IsString(ty))
            return err_set(ERR_INVAL, "%s: 'rope_type' must be a string", label);
        const char *s = ty ? ty->valuestring : "default";
        if (!strcmp(s, "yarn")) {
            c->rope_type = MCFG_ROPE_YARN;
            if ((rc = get_num(r, "factor", 1, 1024, 1, &c->yarn_factor, label)) < 0 ||
                (rc = get_num(r, "beta_fast", 0, 1e6, 32, &c->yarn_beta_fast, label)) < 0 ||
                (rc = get_num(r, "beta_slow", 0, 1e6, 1, &c->yarn_beta_slow, label)) < 0 ||
                (rc = get_num(r, "attention_factor", 0, 100, 0, &c->yarn_attn_factor, label)) < 0 ||
                (rc = get_int(r, "original_max_position_embeddings", 1, 1LL << 32, 0, 0,
                              &c->yarn_orig_max_pos, label)) < 0)
                return err_prefix(rc, "yarn");
            if (!cJSON_GetObjectItemCaseSensitive(r, "factor"))
                return err_set(ERR_INVAL, "%s: yarn rope parameters need 'factor'", label);
        } else if (strcmp(s, "default")) {
            return err_set(ERR_UNSUPPORTED, "%s: rope_type '%s' is not supported (default, yarn)",
                           label, s);
        }
    }
    double rd = (double)c->head_dim * c->partial_rotary;
    c->rotary_dim = (int64_t)rd;
    if ((double)c->rotary_dim != rd || c->rotary_dim < 2 || c->rotary_dim % 2)
        return err_set(ERR_INVAL,
                       "%s: head_dim %lld x partial_rotary_factor %g is not an even integer", label,
                       (long long)c->head_dim, c->partial_rotary);
    if (c->rope_type == MCFG_ROPE_YARN && !c->yarn_orig_max_pos)
        c->yarn_orig_max_pos = c->max_pos;
    return 0;
}

static int parse_layer_types(struct mcfg *c, const cJSON *t, const char *label)
{
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(t, "layer_types");
    c->n_full = 0;
    if (lt && !cJSON_IsNull(lt)) {
        if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != c->n_layers)
            return err_set(ERR_INVAL, "%s: 'layer_types' must list %lld entries", label,
                           (long long)c->n_layers);
        int i = 0;
        for (const cJSON *e = lt->child; e; e = e->next, i++) {
            if (cJSON_IsString(e) && !strcmp(e->valuestring, "linear_attention"))
                c->layer_type[i] = MCFG_LINEAR_ATTN;
            else if (cJSON_IsString(e) && !strcmp(e->valuestring, "full_attention"))
                c->layer_type[i] = MCFG_FULL_ATTN;
            else
                return err_set(
                    ERR_INVAL,
                    "%s: layer_types[%d] must be \"linear_attention\" or \"full_attention\"", label,
                    i);
        }
    } else {
        int64_t k;
        int rc = get_int(t, "full_attention_interval", 1, MCFG_MAX_LAYERS, 0, 4, &k, label);
        if (rc < 0)
            return rc;
        for (int64_t i = 0; i < c->n_layers; i++)
            c->layer_type[i] = (i + 1) % k ? MCFG_LINEAR_ATTN : MCFG_FULL_ATTN;
    }
    for (int64_t i = 0; i < c->n_layers; i++)
        c->n_full += c->layer_type[i] == MCFG_FULL_ATTN;
    return 0;
}

static int parse_text(struct mcfg *c, const cJSON *t, const char *label)
{
    int rc;
    int64_t mtp;
    if ((rc = get_int(t, "vocab_size", 1, 1 << 24, 1, 0, &c->vocab, label)) < 0 ||
        (rc = get_int(t, "hidden_size", 1, 65536, 1, 0, &c->hidden, label)) < 0 ||
        (rc = get_int(t, "num_hidden_layers", 1, MCFG_MAX_LAYERS, 1, 0, &c->n_layers, label)) < 0 ||
        (rc = get_int(t, "num_attention_heads", 1, 1024, 1, 0, &c->n_heads, label)) < 0 ||
        (rc = get_int(t, "num_key_value_heads", 1, 1024, 1, 0, &c->n_kv_heads, label)) < 0 ||
        (rc = get_int(t, "head_dim", 2, 4096, 1, 0, &c->head_dim, label)) < 0 ||
        (rc = get_int(t, "linear_num_key_heads", 1, 1024, 1, 0, &c->lin_k_heads, label)) < 0 ||
        (rc = get_int(t, "linear_num_value_heads", 1, 4096, 1, 0, &c->lin_v_heads, label)) < 0 ||
        (rc = get_int(t, "linear_key_head_dim", 1, 4096, 1, 0, &c->lin_k_dim, label)) < 0 ||
        (rc = get_int(t, "linear_value_head_dim", 1, 4096, 1, 0, &c->lin_v_dim, label)) < 0 ||
        (rc = get_int(t, "linear_conv_kernel_dim", 1, 64, 1, 0, &c->conv_kernel, label)) < 0 ||
        (rc = get_int(t, "num_experts", 1, 4096, 1, 0, &c->n_experts, label)) < 0 ||
        (rc = get_int(t, "num_experts_per_tok", 1, 4096, 1, 0, &c->top_k, label)) < 0 ||
        (rc = get_int(t, "moe_intermediate_size", 1, 1 << 20, 1, 0, &c->moe_inter, label)) < 0 ||
        (rc = get_int(t, "shared_expert_intermediate_size", 0, 1 << 20, 1, 0, &c->shared_inter,
                      label)) < 0 ||
        (rc = get_int(t, "max_position_embeddings", 1, 1LL << 32, 0, 262144, &c->max_pos, label)) <
            0 ||
        (rc = get_int(t, "mtp_num_hidden_layers", 0, 16, 0, 0, &mtp, label)) < 0 ||
        (rc = get_num(t, "rms_norm_eps", 1e-12, 1, 1e-6, &c->rms_eps, label)) < 0 ||
        (rc = get_bool(t, "attn_output_gate", 1, &c->attn_output_gate, label)) < 0)
        return rc;
    c->mtp_layers = mtp;
    if (c->n_heads % c->n_kv_heads)
        return err_set(ERR_INVAL,
                       "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld",
                       label, (long long)c->n_heads, (long long)c->n_kv_heads);
    if (c->lin_v_heads % c->lin_k_heads)
        return err_set(
            ERR_INVAL,
            "%s: linear_num_value_heads %lld is not a multiple of linear_num_key_heads %lld", label,
            (long long)c->lin_v_heads, (long long)c->lin_k_heads);
    if (c->top_k > c->n_experts)
        return err_set(ERR_INVAL, "%s: num_experts_per_tok %lld exceeds num_experts %lld", label,
                       (long long)c->top_k, (long long)c->n_experts);
    /* products the engine sizes buffers from: bounded well inside int64 by the caps above,
     * but keep each under 2^31 so 32-bit kernel indices stay valid */
    if (mcfg_q_out(c) > (1LL << 31) || mcfg_conv_dim(c) > (1LL << 31) ||
        c->vocab * c->hidden > (1LL << 40))
        return err_set(ERR_INVAL, "%s: dimensions too large", label);
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(t, "hidden_act");
    if (hs && !(cJSON_IsString(hs) && !strcmp(hs->valuestring, "silu")))
        return err_set(ERR_UNSUPPORTED, "%s: hidden_act must be \"silu\"", label);
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(t, "attention_bias");
    if (cJSON_IsTrue(ab))
        return err_set(ERR_UNSUPPORTED, "%s: attention_bias true is not supported", label);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    if (!dt)
        dt = cJSON_GetObjectItemCaseSensitive(t, "torch_dtype");
    snprintf(c->dtype, sizeof c->dtype, "%s", cJSON_IsString(dt) ? dt->valuestring : "bfloat16");
    if ((rc = parse_layer_types(c, t, label)) < 0 || (rc = parse_rope(c, t, label)) < 0)
        return rc;
    int64_t one = -1;
    int n1 = 0;
    if ((rc = get_ids(t, "bos_token_id", &one, &n1, label)) < 0)
        return rc;
    c->bos = n1 ? one : -1;
    n1 = 0;
    one = -1;
    if ((rc = get_ids(t, "pad_token_id", &one, &n1, label)) < 0)
        return rc;
    c->pad = n1 ? one : -1;
    return get_ids(t, "eos_token_id", c->eos, &c->n_eos, label);
}

int mcfg_parse(struct mcfg *c, const char *json, size_t n, const char *label)
{
    memset(c, 0, sizeof *c);
    cJSON *root = cJSON_ParseWithLength(json, n);
    if (!root)
        return err_set(ERR_INVAL, "%s: not valid JSON", label);
    int rc;
    if (!cJSON_IsObject(root)) {
        rc = err_set(ERR_INVAL, "%s: not a JSON object", label);
        goto out;
    }
    const cJSON *ar = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (!cJSON_IsArray(ar) || !cJSON_IsString(ar->child)) {
        rc = err_set(ERR_INVAL, "%s: 'architectures' must be a list of names", label);
        goto out;
    }
    snprintf(c->arch, sizeof c->arch, "%s", ar->child->valuestring);
    const cJSON *t = root;
    if (!strcmp(c->arch, "Qwen3_5MoeForConditionalGeneration")) {
        c->vl = 1;
        t = cJSON_GetObjectItemCaseSensitive(root, "text_config");
        if (!cJSON_IsObject(t)) {
            rc = err_set(ERR_INVAL, "%s: 'text_config' object missing", label);
            goto out;
        }
        snprintf(c->prefix, sizeof c->prefix, "model.language_model.");
    } else if (!strcmp(c->arch, "Qwen3_5MoeForCausalLM")) {
        snprintf(c->prefix, sizeof c->prefix, "model.");
    } else {
        rc =
            err_set(ERR_UNSUPPORTED,
                    "%s: architecture '%s' is not supported (Qwen3_5MoeForConditionalGeneration or "
                    "Qwen3_5MoeForCausalLM)",
                    label, c->arch);
        goto out;
    }
    if ((rc = parse_text(c, t, label)) < 0)
        goto out;
    /* the wrapper holds tie_word_embeddings at top level; the text part may repeat it */
    int tie_top = 0;
    if ((rc = get_bool(root, "tie_word_embeddings", 0, &tie_top, label)) < 0 ||
        (rc = get_bool(t, "tie_word_embeddings", tie_top, &c->tie_embeddings, label)) < 0)
        goto out;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int mcfg_parse_gen(struct mcfg *c, const char *json, size_t n, const char *label)
{
    cJSON *root = cJSON_ParseWithLength(json, n);
    if (!root)
        return err_set(ERR_INVAL, "%s: not valid JSON", label);
    int rc;
    int64_t eos[MCFG_MAX_EOS];
    int neos = 0;
    if (!cJSON_IsObject(root)) {
        rc = err_set(ERR_INVAL, "%s: not a JSON object", label);
        goto out;
    }
    if ((rc = get_num(root, "temperature", 0, 100, 1.0, &c->temperature, label)) < 0 ||
        (rc = get_num(root, "top_p", 0, 1, 1.0, &c->top_p, label)) < 0 ||
        (rc = get_int(root, "top_k", 0, 1 << 24, 0, 0, &c->gen_top_k, label)) < 0 ||
        (rc = get_bool(root, "do_sample", 0, &c->do_sample, label)) < 0 ||
        (rc = get_ids(root, "eos_token_id", eos, &neos, label)) < 0)
        goto out;
    /* generation_config's eos list wins: it names every stop token */
    if (neos) {
        memcpy(c->eos, eos, sizeof eos);
        c->n_eos = neos;
    }
    c->have_gen = 1;
out:
    cJSON_Delete(root);
    return rc;
}

int mcfg_load(struct mcfg *c, const char *dir)
{
    char path[4096];
    struct buf b = { 0 };
    int rc;
    if ((rc = fs_join(path, sizeof path, dir, "config.json")) < 0 ||
        (rc = fs_read_file(path, CFG_MAX_BYTES, &b)) < 0 ||
        (rc = mcfg_parse(c, b.p ? b.p : "", b.len, path)) < 0)
        goto out;
    c->temperature = 1.0;
    c->top_p = 1.0;
    if ((rc = fs_join(path, sizeof path, dir, "generation_config.json")) < 0)
        goto out;
    if (fs_exists(path)) {
        if ((rc = fs_read_file(path, CFG_MAX_BYTES, &b)) < 0 ||
            (rc = mcfg_parse_gen(c, b.p ? b.p : "", b.len, path)) < 0)
            goto out;
    }
out:
    buf_free(&b);
    return rc;
}

int64_t mcfg_q_out(const struct mcfg *c)
{
    return c->n_heads * c->head_dim * (c->attn_output_gate ? 2 : 1);
}
int64_t mcfg_kv_out(const struct mcfg *c) { return c->n_kv_heads * c->head_dim; }
int64_t mcfg_lin_key_dim(const struct mcfg *c) { return c->lin_k_heads * c->lin_k_dim; }
int64_t mcfg_lin_val_dim(const struct mcfg *c) { return c->lin_v_heads * c->lin_v_dim; }
int64_t mcfg_conv_dim(const struct mcfg *c)
{
    return 2 * mcfg_lin_key_dim(c) + mcfg_lin_val_dim(c);
}
