/* safetensors.c - validated safetensors reader (see safetensors.h for the rules). */
#include "engine/safetensors.h"
#include "common/ckd.h"
#include "common/err.h"
#include "common/text.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int bits;
} dtypes[ST_NDTYPE] = {
    [ST_BOOL] = { "BOOL", 8 },
    [ST_U8] = { "U8", 8 },
    [ST_I8] = { "I8", 8 },
    [ST_I16] = { "I16", 16 },
    [ST_U16] = { "U16", 16 },
    [ST_F16] = { "F16", 16 },
    [ST_BF16] = { "BF16", 16 },
    [ST_I32] = { "I32", 32 },
    [ST_U32] = { "U32", 32 },
    [ST_F32] = { "F32", 32 },
    [ST_F64] = { "F64", 64 },
    [ST_I64] = { "I64", 64 },
    [ST_U64] = { "U64", 64 },
    [ST_C64] = { "C64", 64 },
    [ST_F8_E5M2] = { "F8_E5M2", 8 },
    [ST_F8_E4M3] = { "F8_E4M3", 8 },
    [ST_F8_E8M0] = { "F8_E8M0", 8 },
    [ST_F8_E4M3FNUZ] = { "F8_E4M3FNUZ", 8 },
    [ST_F8_E5M2FNUZ] = { "F8_E5M2FNUZ", 8 },
    [ST_F6_E2M3] = { "F6_E2M3", 6 },
    [ST_F6_E3M2] = { "F6_E3M2", 6 },
    [ST_F4] = { "F4", 4 },
};

const char *st_dtype_name(enum st_dtype d)
{
    return (unsigned)d < ST_NDTYPE ? dtypes[d].name : "?";
}

int st_dtype_bits(enum st_dtype d) { return (unsigned)d < ST_NDTYPE ? dtypes[d].bits : 0; }

int st_dtype_parse(const char *s, enum st_dtype *out)
{
    for (int i = 0; i < ST_NDTYPE; i++)
        if (!strcmp(s, dtypes[i].name)) {
            *out = (enum st_dtype)i;
            return 0;
        }
    return ERR_INVAL;
}

void st_close(struct st_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->t[i].name);
    free(f->t);
    free(f->path);
    fs_map_close(&f->map);
    memset(f, 0, sizeof *f);
}

/* A JSON number that is a non-negative integer exactly representable in a
 * double (<= 2^53): offsets and dims of any real file fit. */
static int json_u64(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return -1;
    double d = j->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d)
        return -1;
    *out = (uint64_t)d;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct st_tensor *)a)->name, ((const struct st_tensor *)b)->name);
}

static int by_begin(const void *a, const void *b)
{
    const struct st_tensor *x = *(const struct st_tensor *const *)a;
    const struct st_tensor *y = *(const struct st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    /* empty tensors share a begin with the next one: order them first */
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int parse_tensor(struct st_tensor *t, const cJSON *e, const char *label)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return err_set(ERR_INVAL, "%s: tensor '%s': entry is not an object", label, name);
    const cJSON *jd = NULL, *js = NULL, *jo = NULL;
    for (const cJSON *k = e->child; k; k = k->next) {
        if (!strcmp(k->string, "dtype") && !jd)
            jd = k;
        else if (!strcmp(k->string, "shape") && !js)
            js = k;
        else if (!strcmp(k->string, "data_offsets") && !jo)
            jo = k;
        else
            return err_set(ERR_INVAL, "%s: tensor '%s': unexpected or repeated key '%s'", label,
                           name, k->string);
    }
    if (!jd || !js || !jo)
        return err_set(ERR_INVAL, "%s: tensor '%s': missing '%s'", label, name,
                       !jd   ? "dtype"
                       : !js ? "shape"
                             : "data_offsets");
    if (!cJSON_IsString(jd) || st_dtype_parse(jd->valuestring, &t->dtype) < 0)
        return err_set(ERR_INVAL, "%s: tensor '%s': unknown dtype %s%s%s", label, name,
                       cJSON_IsString(jd) ? "'" : "(not a string)",
                       cJSON_IsString(jd) ? jd->valuestring : "", cJSON_IsString(jd) ? "'" : "");
    if (!cJSON_IsArray(js))
        return err_set(ERR_INVAL, "%s: tensor '%s': shape is not an array", label, name);
    int nd = cJSON_GetArraySize(js);
    if (nd > ST_MAX_DIMS)
        return err_set(ERR_INVAL, "%s: tensor '%s': %d dimensions, at most %d", label, name, nd,
                       ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    int i = 0;
    for (const cJSON *d = js->child; d; d = d->next, i++) {
        uint64_t v;
        if (json_u64(d, &v) < 0 || v > INT64_MAX)
            return err_set(ERR_INVAL, "%s: tensor '%s': shape[%d] is not a non-negative integer",
                           label, name, i);
        t->shape[i] = (int64_t)v;
        if (ckd_mul_u64(&numel, numel, v))
            return err_set(ERR_INVAL, "%s: tensor '%s': shape overflows 64 bits", label, name);
    }
    t->numel = numel;
    uint64_t nbits;
    if (ckd_mul_u64(&nbits, numel, (uint64_t)st_dtype_bits(t->dtype)))
        return err_set(ERR_INVAL, "%s: tensor '%s': byte size overflows 64 bits", label, name);
    if (nbits % 8)
        return err_set(ERR_INVAL, "%s: tensor '%s': %llu elements of %s are not whole bytes", label,
                       name, (unsigned long long)numel, st_dtype_name(t->dtype));
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || json_u64(jo->child, &t->begin) < 0 ||
        json_u64(jo->child->next, &t->end) < 0)
        return err_set(ERR_INVAL, "%s: tensor '%s': data_offsets must be [BEGIN, END] integers",
                       label, name);
    if (t->end < t->begin)
        return err_set(ERR_INVAL, "%s: tensor '%s': data_offsets end %llu < begin %llu", label,
                       name, (unsigned long long)t->end, (unsigned long long)t->begin);
    if (t->end - t->begin != nbits / 8)
        return err_set(ERR_INVAL,
                       "%s: tensor '%s': data_offsets span %llu bytes, but %s %s needs %llu", label,
                       name, (unsigned long long)(t->end - t->begin), st_dtype_name(t->dtype),
                       nd ? "shape" : "scalar", (unsigned long long)(nbits / 8));
    return 0;
}

static int parse_file(struct st_file *f, const uint8_t *p, size_t n, const char *label)
{
    int rc;
    cJSON *root = NULL;
    struct st_tensor **order = NULL;
    if (!f->path && !(f->path = strdup(label)))
        return err_set(ERR_NOMEM, "out of memory");
    label = f->path;
    if (n < 8)
        return err_set(ERR_INVAL, "%s: %zu bytes, too short for a safetensors header", label, n);
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = hn << 8 | p[i];
    if (hn > ST_MAX_HEADER)
        return err_set(ERR_INVAL, "%s: header length %llu exceeds the %u-byte cap", label,
                       (unsigned long long)hn, ST_MAX_HEADER);
    if (hn > n - 8)
        return err_set(ERR_INVAL, "%s: header length %llu runs past the end of the %zu-byte file",
                       label, (unsigned long long)hn, n);
    if (hn < 2 || p[8] != '{')
        return err_set(ERR_INVAL, "%s: header does not begin with '{'", label);
    const char *h = (const char *)p + 8;
    size_t bad;
    if (!utf8_valid(h, hn, &bad))
        return err_set(ERR_INVAL, "%s: header is not valid UTF-8 (byte %zu)", label, bad);
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(h, hn, &end, 0);
    if (!root) {
        size_t off =
            cJSON_GetErrorPtr() && cJSON_GetErrorPtr() >= h ? (size_t)(cJSON_GetErrorPtr() - h) : 0;
        return err_set(ERR_INVAL, "%s: header is not valid JSON (near byte %zu)", label, off);
    }
    for (; end && end < h + hn; end++)
        if (*end != ' ' && *end != '\0') {
            rc = err_set(ERR_INVAL, "%s: trailing bytes after the header JSON", label);
            goto fail;
        }
    if (!cJSON_IsObject(root)) {
        rc = err_set(ERR_INVAL, "%s: header is not a JSON object", label);
        goto fail;
    }
    size_t count = 0;
    int have_meta = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (have_meta++) {
                rc = err_set(ERR_INVAL, "%s: duplicate '__metadata__'", label);
                goto fail;
            }
            if (!cJSON_IsObject(e)) {
                rc = err_set(ERR_INVAL, "%s: '__metadata__' is not an object", label);
                goto fail;
            }
            for (const cJSON *m = e->child; m; m = m->next)
                if (!cJSON_IsString(m)) {
                    rc = err_set(ERR_INVAL, "%s: '__metadata__' value '%s' is not a string", label,
                                 m->string);
                    goto fail;
                }
            continue;
        }
        if (++count > ST_MAX_TENSORS) {
            rc = err_set(ERR_INVAL, "%s: more than %u tensors", label, ST_MAX_TENSORS);
            goto fail;
        }
    }
    f->t = calloc(count ? count : 1, sizeof *f->t);
    order = calloc(count ? count : 1, sizeof *order);
    if (!f->t || !order) {
        rc = err_set(ERR_NOMEM, "%s: out of memory for %zu tensors", label, count);
        goto fail;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__"))
            continue;
        size_t len = strlen(e->string);
        if (len == 0 || len > ST_MAX_NAME) {
            rc = err_set(ERR_INVAL, "%s: tensor name of %zu bytes (1..%d allowed)", label, len,
                         ST_MAX_NAME);
            goto fail;
        }
        struct st_tensor *t = &f->t[f->n];
        if (!(t->name = strdup(e->string))) {
            rc = err_set(ERR_NOMEM, "out of memory");
            goto fail;
        }
        f->n++;
        if ((rc = parse_tensor(t, e, label)) < 0)
            goto fail;
    }
    qsort(f->t, f->n, sizeof *f->t, by_name);
    for (size_t i = 1; i < f->n; i++)
        if (!strcmp(f->t[i - 1].name, f->t[i].name)) {
            rc = err_set(ERR_INVAL, "%s: duplicate tensor '%s'", label, f->t[i].name);
            goto fail;
        }
    /* contiguity: sorted by offset, each tensor starts where the previous ended */
    for (size_t i = 0; i < f->n; i++)
        order[i] = &f->t[i];
    qsort(order, f->n, sizeof *order, by_begin);
    uint64_t pos = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (order[i]->begin != pos) {
            rc = err_set(ERR_INVAL, "%s: tensor '%s': data_offsets begin %llu, expected %llu (%s)",
                         label, order[i]->name, (unsigned long long)order[i]->begin,
                         (unsigned long long)pos,
                         order[i]->begin < pos ? "overlaps the previous tensor"
                                               : "leaves a hole in the buffer");
            goto fail;
        }
        pos = order[i]->end;
    }
    f->header_len = hn;
    f->data_bytes = (uint64_t)n - 8 - hn;
    if (pos != f->data_bytes) {
        rc = err_set(
            ERR_INVAL,
            "%s: tensors cover %llu bytes of data but the file holds %llu after the header%s",
            label, (unsigned long long)pos, (unsigned long long)f->data_bytes,
            pos > f->data_bytes ? " (truncated or offsets out of range)" : "");
        goto fail;
    }
    for (size_t i = 0; i < f->n; i++)
        f->t[i].data = p + 8 + hn + f->t[i].begin;
    free(order);
    cJSON_Delete(root);
    return 0;
fail:
    free(order);
    cJSON_Delete(root);
    st_close(f);
    return rc;
}

int st_parse(struct st_file *f, const uint8_t *p, size_t n, const char *label)
{
    int rc = parse_file(f, p, n, label);
    if (rc < 0)
        st_close(f); /* also the early returns: f->path is already owned */
    return rc;
}

int st_open(struct st_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    int rc = fs_map_open(&f->map, path);
    if (rc < 0)
        return rc;
    /* on failure st_parse closes f, which also drops the mapping */
    return st_parse(f, f->map.p, f->map.n, path);
}

const struct st_tensor *st_find(const struct st_file *f, const char *name)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->t[mid].name, name);
        if (!c)
            return &f->t[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
