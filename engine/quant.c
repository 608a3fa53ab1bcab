/* quant.c - compressed-tensors quantization_config, module matching, pack/unpack. */
#include "engine/quant.h"
#include "common/err.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cJSON.h>
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

/* ---- scalar conversions ---- */

float quant_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t quant_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);          /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float quant_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0x1f)
        u = sign | 0x7f800000u | (m << 13);
    else if (e)
        u = sign | ((e + 112) << 23) | (m << 13);
    else if (!m)
        u = sign;
    else { /* subnormal: normalise */
        e = 113;
        while (!(m & 0x400)) {
            m <<= 1;
            e--;
        }
        u = sign | (e << 23) | ((m & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float quant_load_f(const void *p, enum st_dtype d, int64_t i)
{
    const uint8_t *b = p;
    uint16_t h;
    float f;
    switch (d) {
    case ST_BF16: memcpy(&h, b + 2 * i, 2); return quant_bf16_to_f32(h);
    case ST_F16: memcpy(&h, b + 2 * i, 2); return quant_f16_to_f32(h);
    case ST_F32: memcpy(&f, b + 4 * i, 4); return f;
    default: return NAN;
    }
}

/* ---- pack / unpack ---- */

void quant_pack_row(const int8_t *q, int64_t in, int bits, int32_t *words)
{
    int per = 32 / bits;
    uint32_t mask = (1u << bits) - 1, bias = 1u << (bits - 1);
    for (int64_t j = 0; j < in / per; j++) {
        uint32_t w = 0;
        for (int k = 0; k < per; k++)
            w |= ((uint32_t)(q[j * per + k] + (int)bias) & mask) << (bits * k);
        memcpy(&words[j], &w, 4);
    }
}

void quant_dequant_row(const struct quant_linear *w, int64_t r, float *out)
{
    if (w->bits == 16) {
        for (int64_t c = 0; c < w->in; c++)
            out[c] = quant_load_f(w->data, w->dtype, r * w->in + c);
        return;
    }
    int per = 32 / w->bits;
    uint32_t mask = (1u << w->bits) - 1;
    int bias = 1 << (w->bits - 1);
    int64_t ngroups = w->in / w->group;
    const uint8_t *row = (const uint8_t *)w->data + (size_t)(r * (w->in / per)) * 4;
    for (int64_t c = 0; c < w->in; c++) {
        uint32_t word;
        memcpy(&word, row + (c / per) * 4, 4);
        int q = (int)((word >> (w->bits * (c % per))) & mask) - bias;
        float s = quant_load_f(w->scale, w->scale_dtype, r * ngroups + c / w->group);
        out[c] = (float)q * s;
    }
}

uint64_t quant_linear_bytes(const struct quant_linear *w)
{
    if (w->bits == 16)
        return (uint64_t)w->out * (uint64_t)w->in * (uint64_t)(st_dtype_bits(w->dtype) / 8);
    return (uint64_t)w->out * (uint64_t)w->in * (uint64_t)w->bits / 8 +
           (uint64_t)w->out * (uint64_t)(w->in / w->group) *
               (uint64_t)(st_dtype_bits(w->scale_dtype) / 8);
}

/* ---- config parsing ---- */

static void target_free(struct quant_target *t)
{
    free(t->s);
    pcre2_code_free(t->re);
}

void quant_free(struct quant_cfg *q)
{
    if (!q)
        return;
    for (int i = 0; i < q->n_targets; i++)
        target_free(&q->targets[i]);
    for (int i = 0; i < q->n_ignore; i++)
        target_free(&q->ignore[i]);
    free(q->targets);
    free(q->ignore);
    free(q->schemes);
    free(q->ign_exact);
    pcre2_match_data_free(q->md);
    memset(q, 0, sizeof *q);
}

static int add_target(struct quant_target **arr, int *n, const char *s, int scheme,
                      const char *label, const char *where)
{
    if (*n >= 100000)
        return err_set(ERR_INVAL, "%s: too many targets in %s", label, where);
    struct quant_target *na = realloc(*arr, (size_t)(*n + 1) * sizeof *na);
    if (!na)
        return err_set(ERR_NOMEM, "out of memory");
    *arr = na;
    struct quant_target *t = &na[*n];
    memset(t, 0, sizeof *t);
    t->scheme = scheme;
    if (!(t->s = strdup(s)))
        return err_set(ERR_NOMEM, "out of memory");
    (*n)++;
    if (!strncmp(s, "re:", 3)) {
        int ec;
        PCRE2_SIZE eo;
        t->kind = QT_REGEX;
        t->re = pcre2_compile((PCRE2_SPTR)(s + 3), PCRE2_ZERO_TERMINATED,
                              PCRE2_ANCHORED | PCRE2_UTF, &ec, &eo, NULL);
        if (!t->re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof msg);
            return err_set(ERR_INVAL, "%s: %s: regex '%s' does not compile at offset %zu: %s",
                           label, where, s, (size_t)eo, (const char *)msg);
        }
    } else if (strchr(s, '.') || !strcmp(s, "lm_head")) {
        t->kind = QT_EXACT; /* a dotted module path (lm_head is the one undotted name) */
    } else {
        t->kind = QT_CLASS;
    }
    return 0;
}

static int str_is(const cJSON *j, const char *s)
{
    return cJSON_IsString(j) && !strcmp(j->valuestring, s);
}

/* Parses a QuantizationArgs for weights into s; `where` names the group. */
static int parse_weights(struct quant_scheme *s, const cJSON *w, const char *label,
                         const char *where)
{
    const cJSON *nb = cJSON_GetObjectItemCaseSensitive(w, "num_bits");
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(w, "type");
    const cJSON *sy = cJSON_GetObjectItemCaseSensitive(w, "symmetric");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(w, "strategy");
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(w, "group_size");
    const cJSON *dy = cJSON_GetObjectItemCaseSensitive(w, "dynamic");
    const cJSON *ao = cJSON_GetObjectItemCaseSensitive(w, "actorder");
    double bits = nb ? (cJSON_IsNumber(nb) ? nb->valuedouble : -1) : 8;
    if (bits != 4 && bits != 8)
        return err_set(ERR_UNSUPPORTED, "%s: %s: weights num_bits must be 4 or 8", label, where);
    s->bits = (int)bits;
    if (ty && !str_is(ty, "int"))
        return err_set(ERR_UNSUPPORTED, "%s: %s: weights type must be \"int\"", label, where);
    if (sy && !cJSON_IsTrue(sy))
        return err_set(ERR_UNSUPPORTED, "%s: %s: only symmetric weights are supported", label,
                       where);
    if (dy && !cJSON_IsFalse(dy) && !cJSON_IsNull(dy))
        return err_set(ERR_UNSUPPORTED, "%s: %s: dynamic weight quantization is not supported",
                       label, where);
    if (ao && !cJSON_IsNull(ao) && !str_is(ao, "weight") && !str_is(ao, "static"))
        return err_set(ERR_UNSUPPORTED,
                       "%s: %s: actorder must be null or \"weight\" (group order needs g_idx)",
                       label, where);
    double g = 0;
    if (gs && !cJSON_IsNull(gs)) {
        if (!cJSON_IsNumber(gs) || floor(gs->valuedouble) != gs->valuedouble ||
            gs->valuedouble < -1 || gs->valuedouble == 0 || gs->valuedouble > (1 << 20))
            return err_set(ERR_INVAL, "%s: %s: group_size must be -1 or a positive integer", label,
                           where);
        g = gs->valuedouble;
    }
    if (st && !cJSON_IsNull(st) && !cJSON_IsString(st))
        return err_set(ERR_INVAL, "%s: %s: strategy must be a string", label, where);
    const char *strat = cJSON_IsString(st) ? st->valuestring
                        : g > 0            ? "group"
                        : g == -1          ? "channel"
                                           : "tensor";
    if (!strcmp(strat, "group")) {
        if (g <= 0)
            return err_set(ERR_INVAL, "%s: %s: strategy \"group\" needs a positive group_size",
                           label, where);
        s->group_size = (int)g;
    } else if (!strcmp(strat, "channel")) {
        s->group_size = 0;
    } else {
        return err_set(ERR_UNSUPPORTED,
                       "%s: %s: weight strategy '%s' is not supported (group, channel)", label,
                       where, strat);
    }
    return 0;
}

static int parse_group(struct quant_cfg *q, const cJSON *g, const char *top_fmt, const char *label)
{
    char where[128];
    snprintf(where, sizeof where, "quantization_config.config_groups.%s", g->string);
    struct quant_scheme *ns = realloc(q->schemes, (size_t)(q->n_schemes + 1) * sizeof *ns);
    if (!ns)
        return err_set(ERR_NOMEM, "out of memory");
    q->schemes = ns;
    struct quant_scheme *s = &ns[q->n_schemes];
    memset(s, 0, sizeof *s);
    snprintf(s->group, sizeof s->group, "%s", g->string);
    int idx = q->n_schemes++, rc;
    const cJSON *targets;
    if (cJSON_IsArray(g)) {
        /* preset form: "W4A16": ["Linear"] */
        targets = g;
        if (!strcmp(g->string, "W4A16"))
            s->bits = 4, s->group_size = 128;
        else if (!strcmp(g->string, "W8A16"))
            s->bits = 8, s->group_size = 0;
        else
            return err_set(ERR_UNSUPPORTED, "%s: %s: preset scheme not supported (W4A16, W8A16)",
                           label, where);
        if (top_fmt && strcmp(top_fmt, "pack-quantized"))
            return err_set(ERR_UNSUPPORTED, "%s: %s: format '%s' (expected pack-quantized)", label,
                           where, top_fmt);
    } else if (cJSON_IsObject(g)) {
        targets = cJSON_GetObjectItemCaseSensitive(g, "targets");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(g, "weights");
        const cJSON *ia = cJSON_GetObjectItemCaseSensitive(g, "input_activations");
        const cJSON *fm = cJSON_GetObjectItemCaseSensitive(g, "format");
        if (!cJSON_IsObject(w))
            return err_set(ERR_UNSUPPORTED, "%s: %s: 'weights' must be an object", label, where);
        if (ia && !cJSON_IsNull(ia))
            return err_set(ERR_UNSUPPORTED,
                           "%s: %s: input_activations are quantized (only weight-only schemes are "
                           "supported)",
                           label, where);
        const char *fmt = cJSON_IsString(fm) ? fm->valuestring : top_fmt;
        if (!fmt || strcmp(fmt, "pack-quantized"))
            return err_set(ERR_UNSUPPORTED, "%s: %s: format '%s' is not supported (pack-quantized)",
                           label, where, fmt ? fmt : "(none)");
        if ((rc = parse_weights(s, w, label, where)) < 0)
            return rc;
    } else {
        return err_set(ERR_INVAL, "%s: %s must be an object or a list", label, where);
    }
    if (!cJSON_IsArray(targets) || !targets->child)
        return err_set(ERR_INVAL, "%s: %s: 'targets' must be a non-empty list", label, where);
    for (const cJSON *t = targets->child; t; t = t->next) {
        if (!cJSON_IsString(t))
            return err_set(ERR_INVAL, "%s: %s: targets must be strings", label, where);
        if ((rc = add_target(&q->targets, &q->n_targets, t->valuestring, idx, label, where)) < 0)
            return rc;
    }
    return 0;
}

/* qsort has no context argument: the config being sorted, per thread */
static _Thread_local const struct quant_cfg *sort_ctx;

static int ign_cmp(const void *a, const void *b)
{
    return strcmp(sort_ctx->ignore[*(const int *)a].s, sort_ctx->ignore[*(const int *)b].s);
}

int quant_parse(struct quant_cfg *q, const char *json, size_t n, const char *label)
{
    memset(q, 0, sizeof *q);
    cJSON *root = cJSON_ParseWithLength(json, n);
    if (!root)
        return err_set(ERR_INVAL, "%s: not valid JSON", label);
    int rc = 0;
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    if (!qc) {
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
        qc = cJSON_GetObjectItemCaseSensitive(tc, "quantization_config");
    }
    if (!qc || cJSON_IsNull(qc))
        goto out;
    q->present = 1;
    if (!cJSON_IsObject(qc)) {
        rc = err_set(ERR_INVAL, "%s: quantization_config must be an object", label);
        goto out;
    }
    const cJSON *qm = cJSON_GetObjectItemCaseSensitive(qc, "quant_method");
    if (!str_is(qm, "compressed-tensors")) {
        rc = err_set(ERR_UNSUPPORTED,
                     "%s: quantization_config.quant_method must be \"compressed-tensors\"", label);
        goto out;
    }
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(qc, "quantization_status");
    if (qs && !cJSON_IsNull(qs) && !str_is(qs, "compressed")) {
        rc = err_set(ERR_UNSUPPORTED,
                     "%s: quantization_config.quantization_status must be \"compressed\"", label);
        goto out;
    }
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(qc, "sparsity_config");
    if (cJSON_IsObject(sp) && sp->child) {
        rc = err_set(ERR_UNSUPPORTED, "%s: quantization_config.sparsity_config is not supported",
                     label);
        goto out;
    }
    const cJSON *fm = cJSON_GetObjectItemCaseSensitive(qc, "format");
    if (fm && !cJSON_IsNull(fm) && !cJSON_IsString(fm)) {
        rc = err_set(ERR_INVAL, "%s: quantization_config.format must be a string", label);
        goto out;
    }
    const char *top_fmt = cJSON_IsString(fm) ? fm->valuestring : NULL;
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(qc, "config_groups");
    if (!cJSON_IsObject(groups) || !groups->child) {
        rc = err_set(ERR_INVAL, "%s: quantization_config.config_groups must be a non-empty object",
                     label);
        goto out;
    }
    for (const cJSON *g = groups->child; g; g = g->next)
        if ((rc = parse_group(q, g, top_fmt, label)) < 0)
            goto out;
    const cJSON *ig = cJSON_GetObjectItemCaseSensitive(qc, "ignore");
    if (ig && !cJSON_IsNull(ig)) {
        if (!cJSON_IsArray(ig)) {
            rc = err_set(ERR_INVAL, "%s: quantization_config.ignore must be a list", label);
            goto out;
        }
        for (const cJSON *t = ig->child; t; t = t->next) {
            if (!cJSON_IsString(t)) {
                rc = err_set(ERR_INVAL, "%s: quantization_config.ignore entries must be strings",
                             label);
                goto out;
            }
            if ((rc = add_target(&q->ignore, &q->n_ignore, t->valuestring, -1, label,
                                 "quantization_config.ignore")) < 0)
                goto out;
        }
    }
    const cJSON *kv = cJSON_GetObjectItemCaseSensitive(qc, "kv_cache_scheme");
    if (cJSON_IsObject(kv)) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(kv, "type");
        const cJSON *nb = cJSON_GetObjectItemCaseSensitive(kv, "num_bits");
        if (!str_is(ty, "float") || !cJSON_IsNumber(nb) || nb->valuedouble != 8) {
            rc = err_set(ERR_UNSUPPORTED,
                         "%s: quantization_config.kv_cache_scheme must be 8-bit float", label);
            goto out;
        }
        q->kv_fp8 = 1;
    }
    if (!(q->md = pcre2_match_data_create(4, NULL))) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto out;
    }
    if (q->n_ignore && !(q->ign_exact = malloc((size_t)q->n_ignore * sizeof *q->ign_exact))) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < q->n_ignore; i++)
        if (q->ignore[i].kind == QT_EXACT)
            q->ign_exact[q->n_ign_exact++] = i;
    sort_ctx = q;
    if (q->n_ign_exact)
        qsort(q->ign_exact, (size_t)q->n_ign_exact, sizeof *q->ign_exact, ign_cmp);
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- matching ---- */

static int entry_matches(struct quant_cfg *q, struct quant_target *t, const char *name,
                         const char *cls)
{
    switch (t->kind) {
    case QT_EXACT: return !strcmp(t->s, name);
    case QT_CLASS: return cls && !strcmp(t->s, cls);
    default:
        return pcre2_match(t->re, (PCRE2_SPTR)name, strlen(name), 0, PCRE2_ANCHORED, q->md, NULL) >=
               0;
    }
}

int quant_match(struct quant_cfg *q, const char *name, const char *cls, int *ignored)
{
    int ign = 0, best = -1, best_rank = 3;
    if (ignored)
        *ignored = 0;
    if (!q->present)
        return -1;
    /* exact names by binary search, then the regex and class entries */
    size_t lo = 0, hi = (size_t)q->n_ign_exact;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        struct quant_target *t = &q->ignore[q->ign_exact[mid]];
        int c = strcmp(t->s, name);
        if (!c) {
            t->hits++;
            ign = 1;
            break;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (int i = 0; i < q->n_ignore; i++)
        if (q->ignore[i].kind != QT_EXACT && entry_matches(q, &q->ignore[i], name, cls)) {
            q->ignore[i].hits++;
            ign = 1;
        }
    /* rank 0 exact, 1 regex, 2 class; first in config order within a rank */
    for (int i = 0; i < q->n_targets; i++) {
        struct quant_target *t = &q->targets[i];
        if (!entry_matches(q, t, name, cls))
            continue;
        t->hits++;
        int rank = t->kind == QT_EXACT ? 0 : t->kind == QT_REGEX ? 1 : 2;
        if (rank < best_rank)
            best_rank = rank, best = t->scheme;
    }
    if (ign) {
        if (ignored)
            *ignored = 1;
        return -1;
    }
    return best;
}

const struct quant_target *quant_unused_target(const struct quant_cfg *q)
{
    for (int i = 0; i < q->n_targets; i++)
        if (!q->targets[i].hits)
            return &q->targets[i];
    return NULL;
}
