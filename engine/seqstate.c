/* seqstate.c - sequence state: KV cache, DeltaNet states, snapshots, serialization. */
#include "engine/seqstate.h"

#include "common/ckd.h"
#include "common/err.h"
#include "common/hash.h"
#include "kernels/kernels.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char seq_magic[8] = { 'L', 'O', 'D', 'E', 'S', 'E', 'Q', 0 };

enum { SEC_K = 1, SEC_V = 2, SEC_CONV = 3, SEC_STATE = 4 };

static int kv_elsize(int kv_type)
{
    switch (kv_type) {
    case KERN_F32: return 4;
    case KERN_BF16: return 2;
    case KERN_FP8: return 1;
    }
    return 0;
}

int seq_dims_check(const struct seq_dims *d)
{
    if (d->n_layers < 1 || d->n_layers > SEQ_MAX_LAYERS)
        return err_set(ERR_INVAL, "state: %d layers (1..%d)", d->n_layers, SEQ_MAX_LAYERS);
    int full = 0;
    for (int l = 0; l < d->n_layers; l++)
        full += d->is_full[l] != 0;
    if (full && (d->n_kv < 1 || d->n_kv > 1024 || d->head_dim < 1 || d->head_dim > 4096))
        return err_set(ERR_INVAL, "state: bad attention dims (%d kv heads of %d)", d->n_kv,
                       d->head_dim);
    if (full < d->n_layers &&
        (d->conv_ch < 1 || d->conv_ch > (1 << 20) || d->conv_k < 2 || d->conv_k > 64 ||
         d->n_v < 1 || d->n_v > 4096 || d->dk < 1 || d->dk > 4096 || d->dv < 1 || d->dv > 4096))
        return err_set(ERR_INVAL, "state: bad DeltaNet dims (conv %d x %d, %d heads %dx%d)",
                       d->conv_ch, d->conv_k, d->n_v, d->dk, d->dv);
    return 0;
}

/* Floats of one DeltaNet layer's conv and recurrent state. */
static size_t conv_floats(const struct seq_dims *d) { return (size_t)d->conv_ch * (d->conv_k - 1); }
static size_t rec_floats(const struct seq_dims *d) { return (size_t)d->n_v * d->dk * d->dv; }
static size_t kv_row_bytes(const struct seq_state *s)
{
    return (size_t)s->d.n_kv * s->d.head_dim * kv_elsize(s->kv_type);
}

size_t seq_kv_bytes_per_token(const struct seq_dims *d, int kv_type)
{
    size_t n = 0;
    for (int l = 0; l < d->n_layers; l++)
        if (d->is_full[l])
            n += 2 * (size_t)d->n_kv * d->head_dim * kv_elsize(kv_type);
    return n;
}

size_t seq_gdn_bytes(const struct seq_dims *d)
{
    size_t n = 0;
    for (int l = 0; l < d->n_layers; l++)
        if (!d->is_full[l])
            n += (conv_floats(d) + rec_floats(d)) * sizeof(float);
    return n;
}

/* ---------------------------------------------------------------- device residency */

int seq_host_sync(struct seq_state *s)
{
    if (!s->dev_ops || (s->host_kv >= s->written && s->host_gdn))
        return 0;
    int rc = s->dev_ops->pull(s->dev, s);
    if (rc < 0)
        return err_prefix(rc, "state: copying it from the device");
    s->host_kv = LONG_MAX;
    s->host_gdn = 1;
    return 0;
}

/* The host overwrote every DeltaNet state: the device's are stale (no copy needed). */
static void host_wrote_gdn(struct seq_state *s)
{
    s->host_gdn = 1;
    s->dev_gdn = 0;
}

int seq_host_write(struct seq_state *s, long from, int gdn)
{
    int rc = seq_host_sync(s);
    if (rc < 0 || !s->dev_ops)
        return rc;
    if (from < s->dev_kv)
        s->dev_kv = from < 0 ? 0 : from;
    if (gdn)
        s->dev_gdn = 0;
    return 0;
}

/* Readers of host memory take a const state: materialising the host copy does not change what
 * the state is, only where it is. */
static int host_sync_const(const struct seq_state *s)
{
    return s->dev_ops ? seq_host_sync((struct seq_state *)s) : 0;
}

void seq_free(struct seq_state *s)
{
    if (!s)
        return;
    if (s->dev_ops)
        s->dev_ops->unbind(s->dev, s);
    for (int l = 0; l < SEQ_MAX_LAYERS; l++) {
        free(s->layer[l].k);
        free(s->layer[l].v);
        free(s->layer[l].conv);
        free(s->layer[l].state);
    }
    free(s->floor);
    free(s);
}

int seq_reserve(struct seq_state *s, long cap)
{
    if (cap <= s->cap)
        return 0;
    size_t bytes;
    if (cap < 0 || ckd_mul_sz(&bytes, (size_t)cap, kv_row_bytes(s)))
        return err_set(ERR_NOMEM, "state: %ld positions do not fit in memory", cap);
    for (int l = 0; l < s->d.n_layers; l++) {
        if (!s->d.is_full[l])
            continue;
        uint8_t *k = realloc(s->layer[l].k, bytes ? bytes : 1);
        if (k)
            s->layer[l].k = k;
        uint8_t *v = k ? realloc(s->layer[l].v, bytes ? bytes : 1) : NULL;
        if (v)
            s->layer[l].v = v;
        if (!k || !v)
            return err_set(ERR_NOMEM, "state: out of memory for a %zu-byte KV cache", bytes);
    }
    s->cap = cap;
    return 0;
}

int seq_grow(struct seq_state *s, long need)
{
    if (need <= s->cap)
        return 0;
    long cap = need <= LONG_MAX / 2 ? (need + need / 4 + 255) & ~255L : need;
    if (seq_reserve(s, cap) == 0)
        return 0;
    return seq_reserve(s, need);
}

void seq_reset(struct seq_state *s)
{
    for (int l = 0; l < s->d.n_layers; l++) {
        if (s->d.is_full[l])
            continue;
        memset(s->layer[l].conv, 0, conv_floats(&s->d) * sizeof(float));
        memset(s->layer[l].state, 0, rec_floats(&s->d) * sizeof(float));
    }
    host_wrote_gdn(s);
    seq_will_write(s, 0, 0);
    s->pos = 0;
}

int seq_new(struct seq_state **out, const struct seq_dims *d, int kv_type, long cap)
{
    *out = NULL;
    int rc = seq_dims_check(d);
    if (rc < 0)
        return rc;
    if (!kv_elsize(kv_type))
        return err_set(ERR_INVAL, "state: KV type must be f32, bf16 or fp8");
    struct seq_state *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(ERR_NOMEM, "out of memory");
    s->d = *d;
    s->kv_type = kv_type;
    s->host_kv = LONG_MAX;
    s->host_gdn = 1;
    s->floor_cap = 16;
    s->floor = malloc(s->floor_cap * sizeof *s->floor);
    if (!s->floor)
        goto nomem;
    s->floor[0] = 0;
    for (int l = 0; l < d->n_layers; l++) {
        s->layer[l].k_scale = s->layer[l].v_scale = 1.0f;
        if (d->is_full[l])
            continue;
        s->layer[l].conv = calloc(conv_floats(d), sizeof(float));
        s->layer[l].state = calloc(rec_floats(d), sizeof(float));
        if (!s->layer[l].conv || !s->layer[l].state)
            goto nomem;
    }
    if ((rc = seq_reserve(s, cap > 0 ? cap : 1)) < 0) {
        seq_free(s);
        return rc;
    }
    *out = s;
    return 0;
nomem:
    seq_free(s);
    return err_set(ERR_NOMEM, "out of memory allocating a sequence state");
}

void *seq_k_row(struct seq_state *s, int l, long pos)
{
    if (l < 0 || l >= s->d.n_layers || !s->d.is_full[l] || pos < 0 || pos >= s->cap)
        return NULL;
    return s->layer[l].k + (size_t)pos * kv_row_bytes(s);
}

void *seq_v_row(struct seq_state *s, int l, long pos)
{
    if (l < 0 || l >= s->d.n_layers || !s->d.is_full[l] || pos < 0 || pos >= s->cap)
        return NULL;
    return s->layer[l].v + (size_t)pos * kv_row_bytes(s);
}

/* ---------------------------------------------------------------- snapshots */

void seq_will_write(struct seq_state *s, long pos, long n)
{
    if (pos < s->written) {
        /* rows from pos on are about to change: a new epoch whose floor is pos */
        if (s->epoch + 1 >= s->floor_cap) {
            long *f = realloc(s->floor, (size_t)s->floor_cap * 2 * sizeof *f);
            if (!f) {
                /* cannot track: conservatively make every older snapshot stale */
                for (uint32_t e = 1; e <= s->epoch; e++)
                    s->floor[e] = 0;
                s->written = pos + n;
                return;
            }
            s->floor = f;
            s->floor_cap *= 2;
        }
        s->epoch++;
        s->floor[s->epoch] = pos;
    }
    s->written = pos + n;
}

void seq_snap_free(struct seq_snap *sn)
{
    if (!sn)
        return;
    if (sn->dh)
        sn->ops->snap_free(sn->dh);
    free(sn->data);
    free(sn);
}

int seq_snapshot(struct seq_state *s, struct seq_snap **out)
{
    *out = NULL;
    size_t per = conv_floats(&s->d) + rec_floats(&s->d), n = 0;
    for (int l = 0; l < s->d.n_layers; l++)
        n += s->d.is_full[l] ? 0 : per;
    if (s->dev_ops && s->dev_gdn) {
        /* the states are current on the device: the snapshot stays there (a device copy) */
        struct seq_snap *sn = calloc(1, sizeof *sn);
        if (!sn)
            return err_set(ERR_NOMEM, "out of memory taking a snapshot");
        int rc = s->dev_ops->snap(s->dev, s, &sn->dh);
        if (rc < 0) {
            free(sn);
            return rc;
        }
        sn->ops = s->dev_ops;
        sn->n = n;
        sn->pos = s->pos;
        sn->epoch = s->epoch;
        *out = sn;
        return 0;
    }
    struct seq_snap *sn = calloc(1, sizeof *sn);
    if (!sn || !(sn->data = malloc(n ? n * sizeof(float) : 1))) {
        free(sn);
        return err_set(ERR_NOMEM, "out of memory taking a snapshot");
    }
    float *p = sn->data;
    for (int l = 0; l < s->d.n_layers; l++) {
        if (s->d.is_full[l])
            continue;
        memcpy(p, s->layer[l].conv, conv_floats(&s->d) * sizeof(float));
        p += conv_floats(&s->d);
        memcpy(p, s->layer[l].state, rec_floats(&s->d) * sizeof(float));
        p += rec_floats(&s->d);
    }
    sn->n = n;
    sn->pos = s->pos;
    sn->epoch = s->epoch;
    *out = sn;
    return 0;
}

int seq_restore(struct seq_state *s, const struct seq_snap *sn)
{
    size_t per = conv_floats(&s->d) + rec_floats(&s->d), n = 0;
    for (int l = 0; l < s->d.n_layers; l++)
        n += s->d.is_full[l] ? 0 : per;
    if (sn->n != n || sn->epoch > s->epoch)
        return err_set(ERR_INVAL, "snapshot belongs to another state");
    /* every epoch since the snapshot must have kept KV rows below its position */
    for (uint32_t e = sn->epoch + 1; e <= s->epoch; e++)
        if (s->floor[e] < sn->pos)
            return err_set(ERR_INVAL,
                           "snapshot at %ld is stale: the cache was rewritten from position %ld",
                           sn->pos, s->floor[e]);
    float *tmp = NULL;
    if (sn->dh && s->dev_ops == sn->ops) {
        /* device to device */
        int rc = s->dev_ops->restore(s->dev, s, sn->dh);
        if (rc < 0)
            return rc;
        s->host_gdn = 0;
        s->dev_gdn = 1;
        s->pos = sn->pos;
        return 0;
    }
    if (sn->dh) {
        /* a device snapshot into a state the device no longer holds */
        int rc;
        if (!(tmp = malloc(n ? n * sizeof(float) : 1)))
            return err_set(ERR_NOMEM, "out of memory restoring a snapshot");
        if ((rc = sn->ops->snap_read(sn->dh, tmp, n)) < 0) {
            free(tmp);
            return rc;
        }
    }
    const float *p = tmp ? tmp : sn->data;
    for (int l = 0; l < s->d.n_layers; l++) {
        if (s->d.is_full[l])
            continue;
        memcpy(s->layer[l].conv, p, conv_floats(&s->d) * sizeof(float));
        p += conv_floats(&s->d);
        memcpy(s->layer[l].state, p, rec_floats(&s->d) * sizeof(float));
        p += rec_floats(&s->d);
    }
    free(tmp);
    host_wrote_gdn(s);
    s->pos = sn->pos;
    return 0;
}

/* ---------------------------------------------------------------- serialization */

static int put32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    return buf_append(b, x, 4);
}

static int put64(struct buf *b, uint64_t v)
{
    return put32(b, (uint32_t)v) | put32(b, (uint32_t)(v >> 32));
}

static int putf(struct buf *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return put32(b, u);
}

static int section(struct buf *b, int l, int kind, const void *data, size_t n)
{
    int rc = put32(b, (uint32_t)l) | put32(b, (uint32_t)kind) | put64(b, n);
    rc |= buf_append(b, data, n);
    rc |= put32(b, crc32c(0, data, n));
    return rc < 0 ? ERR_NOMEM : 0;
}

int seq_serialize(const struct seq_state *s, const uint8_t model_id[32], struct buf *out)
{
    size_t start = out->len;
    const struct seq_dims *d = &s->d;
    struct buf h = { 0 };
    int rc = host_sync_const(s);
    if (rc < 0)
        return rc;
    rc = buf_append(&h, model_id, 32);
    rc |= put32(&h, (uint32_t)d->n_layers);
    for (int l = 0; l < d->n_layers; l++)
        rc |= buf_putc(&h, (char)d->is_full[l]);
    rc |= put32(&h, (uint32_t)d->n_kv) | put32(&h, (uint32_t)d->head_dim);
    rc |= put32(&h, (uint32_t)d->conv_ch) | put32(&h, (uint32_t)d->conv_k);
    rc |= put32(&h, (uint32_t)d->n_v) | put32(&h, (uint32_t)d->dk) | put32(&h, (uint32_t)d->dv);
    rc |= put32(&h, (uint32_t)s->kv_type) | put64(&h, (uint64_t)s->pos);
    for (int l = 0; l < d->n_layers; l++)
        rc |= putf(&h, s->layer[l].k_scale) | putf(&h, s->layer[l].v_scale);
    rc |= buf_append(out, seq_magic, 8);
    rc |= put32(out, SEQ_FORMAT_VERSION) | put32(out, (uint32_t)h.len);
    rc |= buf_append(out, h.p, h.len);
    buf_free(&h);
    if (rc < 0)
        return err_set(ERR_NOMEM, "out of memory serializing a state");
    size_t kvn = (size_t)s->pos * kv_row_bytes(s);
    for (int l = 0; l < d->n_layers && rc == 0; l++) {
        if (d->is_full[l]) {
            rc = section(out, l, SEC_K, s->layer[l].k, kvn);
            if (rc == 0)
                rc = section(out, l, SEC_V, s->layer[l].v, kvn);
        } else {
            rc = section(out, l, SEC_CONV, s->layer[l].conv, conv_floats(d) * sizeof(float));
            if (rc == 0)
                rc = section(out, l, SEC_STATE, s->layer[l].state, rec_floats(d) * sizeof(float));
        }
    }
    if (rc < 0)
        return err_set(ERR_NOMEM, "out of memory serializing a state");
    uint8_t digest[32];
    struct sha256 sh;
    sha256_init(&sh);
    sha256_update(&sh, out->p + start, out->len - start);
    sha256_final(&sh, digest);
    return buf_append(out, digest, 32);
}

/* A bounds-checked little-endian reader over the serialized bytes. */
struct rd {
    const uint8_t *p;
    size_t n, off;
    int bad;
};

static const uint8_t *take(struct rd *r, size_t n)
{
    if (r->bad || n > r->n - r->off) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

static uint32_t get32(struct rd *r)
{
    const uint8_t *p = take(r, 4);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
             : 0;
}

static uint64_t get64(struct rd *r)
{
    uint64_t lo = get32(r);
    return lo | (uint64_t)get32(r) << 32;
}

static float getf(struct rd *r)
{
    uint32_t u = get32(r);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int seq_deserialize(struct seq_state **out, const uint8_t model_id[32], const struct seq_dims *want,
                    const void *data, size_t n)
{
    *out = NULL;
    struct rd r = { data, n, 0, 0 };
    if (n < 8 + 8 + 32 || memcmp(data, seq_magic, 8))
        return err_set(ERR_INVAL, "state: not a lode state (bad magic)");
    /* the trailing SHA-256 covers everything before it: check it first */
    uint8_t digest[32];
    struct sha256 sh;
    sha256_init(&sh);
    sha256_update(&sh, data, n - 32);
    sha256_final(&sh, digest);
    if (memcmp(digest, (const uint8_t *)data + n - 32, 32))
        return err_set(ERR_INVAL, "state: checksum mismatch (damaged or truncated)");
    r.n = n - 32;
    take(&r, 8);
    uint32_t version = get32(&r), hlen = get32(&r);
    if (version != SEQ_FORMAT_VERSION)
        return err_set(ERR_INVAL, "state: format version %u, this lode reads %d", version,
                       SEQ_FORMAT_VERSION);
    size_t hend = r.off + hlen;
    if (hlen > r.n - r.off)
        return err_set(ERR_INVAL, "state: header runs past the end");
    const uint8_t *id = take(&r, 32);
    if (!id || memcmp(id, model_id, 32))
        return err_set(ERR_INVAL, "state: saved by another model (checkpoint identity differs)");
    struct seq_dims d;
    memset(&d, 0, sizeof d);
    d.n_layers = (int)get32(&r);
    if (d.n_layers < 1 || d.n_layers > SEQ_MAX_LAYERS)
        return err_set(ERR_INVAL, "state: %d layers", d.n_layers);
    for (int l = 0; l < d.n_layers; l++) {
        const uint8_t *b = take(&r, 1);
        if (b && *b > 1)
            return err_set(ERR_INVAL, "state: layer %d has an unknown type %d", l, *b);
        d.is_full[l] = b && *b;
    }
    d.n_kv = (int)get32(&r);
    d.head_dim = (int)get32(&r);
    d.conv_ch = (int)get32(&r);
    d.conv_k = (int)get32(&r);
    d.n_v = (int)get32(&r);
    d.dk = (int)get32(&r);
    d.dv = (int)get32(&r);
    int kv_type = (int)get32(&r);
    uint64_t pos = get64(&r);
    float scales[2 * SEQ_MAX_LAYERS];
    for (int l = 0; l < 2 * d.n_layers; l++)
        scales[l] = getf(&r);
    if (r.bad || r.off != hend)
        return err_set(ERR_INVAL, "state: malformed header");
    int rc = seq_dims_check(&d);
    if (rc < 0)
        return rc;
    if (want && memcmp(want, &d, sizeof d))
        return err_set(ERR_INVAL, "state: shape differs from this model's");
    if (pos > (1u << 30))
        return err_set(ERR_INVAL, "state: position %llu is implausible", (unsigned long long)pos);
    /* the sections must exactly fill the rest: check before allocating anything */
    int es = kv_elsize(kv_type);
    size_t row, kvn, need = 0, sec = 4 + 4 + 8 + 4;
    if (!es || ckd_mul_sz(&row, (size_t)d.n_kv * d.head_dim, (size_t)es) ||
        ckd_mul_sz(&kvn, (size_t)pos, row))
        return err_set(ERR_INVAL, "state: bad KV type or size");
    for (int l = 0; l < d.n_layers; l++) {
        size_t a = d.is_full[l] ? kvn : conv_floats(&d) * sizeof(float);
        size_t b = d.is_full[l] ? kvn : rec_floats(&d) * sizeof(float);
        if (ckd_add_sz(&need, need, a) || ckd_add_sz(&need, need, b) ||
            ckd_add_sz(&need, need, 2 * sec))
            return err_set(ERR_INVAL, "state: sizes overflow");
    }
    if (need != r.n - r.off)
        return err_set(ERR_INVAL, "state: %zu bytes of layer data, the header implies %zu",
                       r.n - r.off, need);
    struct seq_state *s;
    if ((rc = seq_new(&s, &d, kv_type, (long)pos + 1)) < 0)
        return rc;
    s->pos = s->written = (long)pos;
    for (int l = 0; l < d.n_layers; l++) {
        s->layer[l].k_scale = scales[2 * l];
        s->layer[l].v_scale = scales[2 * l + 1];
        int kinds[2] = { SEC_K, SEC_V };
        void *dst[2] = { s->layer[l].k, s->layer[l].v };
        size_t sz[2] = { kvn, kvn };
        if (!d.is_full[l]) {
            kinds[0] = SEC_CONV, kinds[1] = SEC_STATE;
            dst[0] = s->layer[l].conv, dst[1] = s->layer[l].state;
            sz[0] = conv_floats(&d) * sizeof(float), sz[1] = rec_floats(&d) * sizeof(float);
        }
        for (int j = 0; j < 2; j++) {
            uint32_t sl = get32(&r), kind = get32(&r);
            uint64_t bytes = get64(&r);
            if (r.bad || sl != (uint32_t)l || kind != (uint32_t)kinds[j] || bytes != sz[j]) {
                seq_free(s);
                return err_set(ERR_INVAL, "state: layer %d section %d malformed", l, j);
            }
            const uint8_t *src = take(&r, sz[j]);
            uint32_t crc = get32(&r);
            if (!src || r.bad || crc != crc32c(0, src, sz[j])) {
                seq_free(s);
                return err_set(ERR_INVAL, "state: layer %d section %d damaged", l, j);
            }
            memcpy(dst[j], src, sz[j]);
        }
    }
    if (r.off != r.n) {
        seq_free(s);
        return err_set(ERR_INVAL, "state: %zu unexpected trailing bytes", r.n - r.off);
    }
    *out = s;
    return 0;
}

/* ---------------------------------------------------------------- pieces */

static const char kvr_magic[8] = { 'L', 'O', 'D', 'E', 'K', 'V', 'R', 0 };
static const char gdn_magic[8] = { 'L', 'O', 'D', 'E', 'G', 'D', 'N', 0 };

/* The shape header shared by both pieces: what a state must match to take them. */
static int shape_put(struct buf *b, const struct seq_state *s, const uint8_t model_id[32])
{
    const struct seq_dims *d = &s->d;
    int rc = buf_append(b, model_id, 32) | put32(b, (uint32_t)d->n_layers);
    for (int l = 0; l < d->n_layers; l++)
        rc |= buf_putc(b, (char)d->is_full[l]);
    rc |= put32(b, (uint32_t)d->n_kv) | put32(b, (uint32_t)d->head_dim);
    rc |= put32(b, (uint32_t)d->conv_ch) | put32(b, (uint32_t)d->conv_k);
    rc |= put32(b, (uint32_t)d->n_v) | put32(b, (uint32_t)d->dk) | put32(b, (uint32_t)d->dv);
    rc |= put32(b, (uint32_t)s->kv_type);
    for (int l = 0; l < d->n_layers; l++)
        rc |= putf(b, s->layer[l].k_scale) | putf(b, s->layer[l].v_scale);
    return rc < 0 ? ERR_NOMEM : 0;
}

/* Reads the magic, version and shape header and checks them against s. */
static int shape_check(struct rd *r, const char magic[8], const struct seq_state *s,
                       const uint8_t model_id[32], const char *what)
{
    const struct seq_dims *d = &s->d;
    const uint8_t *m = take(r, 8);
    if (!m || memcmp(m, magic, 8))
        return err_set(ERR_INVAL, "%s: not a lode state piece (bad magic)", what);
    uint32_t version = get32(r);
    if (version != SEQ_FORMAT_VERSION)
        return err_set(ERR_INVAL, "%s: format version %u, this lode reads %d", what, version,
                       SEQ_FORMAT_VERSION);
    const uint8_t *id = take(r, 32);
    if (!id || memcmp(id, model_id, 32))
        return err_set(ERR_INVAL, "%s: saved by another model (checkpoint identity differs)", what);
    int bad = (int)get32(r) != d->n_layers;
    for (int l = 0; !bad && l < d->n_layers; l++) {
        const uint8_t *f = take(r, 1);
        bad = !f || *f != (d->is_full[l] ? 1 : 0);
    }
    if (bad || (int)get32(r) != d->n_kv || (int)get32(r) != d->head_dim ||
        (int)get32(r) != d->conv_ch || (int)get32(r) != d->conv_k || (int)get32(r) != d->n_v ||
        (int)get32(r) != d->dk || (int)get32(r) != d->dv)
        return err_set(ERR_INVAL, "%s: shape differs from this model's", what);
    if ((int)get32(r) != s->kv_type)
        return err_set(ERR_INVAL, "%s: stored with another KV cache type", what);
    for (int l = 0; l < d->n_layers; l++) {
        float k = getf(r), v = getf(r);
        /* exact, every layer: a piece is accepted only as this state would write it */
        if (k != s->layer[l].k_scale || v != s->layer[l].v_scale)
            return err_set(ERR_INVAL, "%s: layer %d FP8 scales differ", what, l);
    }
    return r->bad ? err_set(ERR_INVAL, "%s: truncated header", what) : 0;
}

/* Checks the trailing CRC-32C and returns a reader over what it covers. */
static int crc_open(struct rd *r, const void *data, size_t n, const char *what)
{
    if (n < 8 + 4) {
        r->bad = 1;
        return err_set(ERR_INVAL, "%s: %zu bytes is too short", what, n);
    }
    const uint8_t *p = data;
    uint32_t want = (uint32_t)p[n - 4] | (uint32_t)p[n - 3] << 8 | (uint32_t)p[n - 2] << 16 |
                    (uint32_t)p[n - 1] << 24;
    if (crc32c(0, p, n - 4) != want)
        return err_set(ERR_INVAL, "%s: checksum mismatch (damaged or truncated)", what);
    *r = (struct rd){ p, n - 4, 0, 0 };
    return 0;
}

int seq_export_kv(const struct seq_state *s, const uint8_t model_id[32], long from, long to,
                  struct buf *out)
{
    if (from < 0 || to < from || to > s->pos || to > s->written)
        return err_set(ERR_INVAL, "state: cannot export KV rows [%ld, %ld) of %ld", from, to,
                       s->pos);
    size_t start = out->len, row = kv_row_bytes(s), n = (size_t)(to - from) * row;
    int rc = host_sync_const(s);
    if (rc < 0)
        return rc;
    rc = buf_append(out, kvr_magic, 8) | put32(out, SEQ_FORMAT_VERSION);
    rc |= shape_put(out, s, model_id);
    rc |= put64(out, (uint64_t)from) | put64(out, (uint64_t)to);
    for (int l = 0; l < s->d.n_layers && rc == 0; l++) {
        if (!s->d.is_full[l])
            continue;
        rc |= buf_append(out, s->layer[l].k + (size_t)from * row, n);
        rc |= buf_append(out, s->layer[l].v + (size_t)from * row, n);
    }
    if (rc == 0)
        rc = put32(out, crc32c(0, out->p + start, out->len - start));
    if (rc < 0) {
        out->len = start;
        return err_set(ERR_NOMEM, "state: out of memory exporting KV rows");
    }
    return 0;
}

int seq_import_kv(struct seq_state *s, const uint8_t model_id[32], const void *data, size_t n,
                  long *from_out, long *to_out)
{
    struct rd r;
    int rc = crc_open(&r, data, n, "KV rows");
    if (rc < 0 || (rc = shape_check(&r, kvr_magic, s, model_id, "KV rows")) < 0)
        return rc;
    uint64_t from = get64(&r), to = get64(&r);
    if (r.bad || from > to || to > (1u << 30))
        return err_set(ERR_INVAL, "KV rows: bad range [%llu, %llu)", (unsigned long long)from,
                       (unsigned long long)to);
    size_t row = kv_row_bytes(s), len = (size_t)(to - from) * row, full = 0, need;
    for (int l = 0; l < s->d.n_layers; l++)
        full += s->d.is_full[l] != 0;
    if (ckd_mul_sz(&need, len, 2 * full) || need != r.n - r.off)
        return err_set(ERR_INVAL, "KV rows: %zu bytes of rows, the header implies %zu", r.n - r.off,
                       need);
    if ((rc = seq_reserve(s, (long)to)) < 0 || (rc = seq_host_write(s, (long)from, 0)) < 0)
        return rc;
    seq_will_write(s, (long)from, (long)(to - from));
    for (int l = 0; l < s->d.n_layers; l++) {
        if (!s->d.is_full[l])
            continue;
        memcpy(s->layer[l].k + from * row, take(&r, len), len);
        memcpy(s->layer[l].v + from * row, take(&r, len), len);
    }
    if (from_out)
        *from_out = (long)from;
    if (to_out)
        *to_out = (long)to;
    return 0;
}

int seq_export_gdn(const struct seq_state *s, const uint8_t model_id[32], struct buf *out)
{
    size_t start = out->len;
    int rc = host_sync_const(s);
    if (rc < 0)
        return rc;
    rc = buf_append(out, gdn_magic, 8) | put32(out, SEQ_FORMAT_VERSION);
    rc |= shape_put(out, s, model_id);
    rc |= put64(out, (uint64_t)s->pos);
    for (int l = 0; l < s->d.n_layers && rc == 0; l++) {
        if (s->d.is_full[l])
            continue;
        rc |= buf_append(out, s->layer[l].conv, conv_floats(&s->d) * sizeof(float));
        rc |= buf_append(out, s->layer[l].state, rec_floats(&s->d) * sizeof(float));
    }
    if (rc == 0)
        rc = put32(out, crc32c(0, out->p + start, out->len - start));
    if (rc < 0) {
        out->len = start;
        return err_set(ERR_NOMEM, "state: out of memory exporting DeltaNet states");
    }
    return 0;
}

int seq_import_gdn(struct seq_state *s, const uint8_t model_id[32], const void *data, size_t n)
{
    struct rd r;
    int rc = crc_open(&r, data, n, "DeltaNet states");
    if (rc < 0 || (rc = shape_check(&r, gdn_magic, s, model_id, "DeltaNet states")) < 0)
        return rc;
    uint64_t pos = get64(&r);
    if (r.bad || pos > (uint64_t)s->written)
        return err_set(ERR_INVAL, "DeltaNet states: position %llu beyond the %ld KV rows held",
                       (unsigned long long)pos, s->written);
    size_t cb = conv_floats(&s->d) * sizeof(float), sb = rec_floats(&s->d) * sizeof(float);
    size_t need = 0;
    for (int l = 0; l < s->d.n_layers; l++)
        need += s->d.is_full[l] ? 0 : cb + sb;
    if (need != r.n - r.off)
        return err_set(ERR_INVAL, "DeltaNet states: %zu bytes, the header implies %zu", r.n - r.off,
                       need);
    host_wrote_gdn(s);
    for (int l = 0; l < s->d.n_layers; l++) {
        if (s->d.is_full[l])
            continue;
        memcpy(s->layer[l].conv, take(&r, cb), cb);
        memcpy(s->layer[l].state, take(&r, sb), sb);
    }
    s->pos = (long)pos;
    return 0;
}

/* ---------------------------------------------------------------- in-place import */

/* shape_put's size: model id, layer count and kinds, seven dims, KV type, two scales a layer */
static size_t shape_bytes(const struct seq_state *s)
{
    return 32 + 4 + (size_t)s->d.n_layers + 7 * 4 + 4 + 8 * (size_t)s->d.n_layers;
}

size_t seq_kv_header_bytes(const struct seq_state *s) { return 8 + 4 + shape_bytes(s) + 16; }
size_t seq_gdn_header_bytes(const struct seq_state *s) { return 8 + 4 + shape_bytes(s) + 8; }

int seq_import_kv_spans(struct seq_state *s, const uint8_t model_id[32], const void *hdr, size_t n,
                        long want_from, long want_to, struct seq_span *sp, int *nsp)
{
    *nsp = 0;
    size_t hn = seq_kv_header_bytes(s);
    struct rd r = { hdr, hn, 0, 0 };
    int rc = shape_check(&r, kvr_magic, s, model_id, "KV rows");
    if (rc < 0)
        return rc;
    uint64_t from = get64(&r), to = get64(&r);
    /* the range is checked before s is touched: the bytes are not checked yet (the reader's
     * CRCs come after), and a damaged range must neither move `written` below rows s holds
     * nor make s reserve rows nobody asked for */
    if (r.bad || want_from < 0 || want_to < want_from || from != (uint64_t)want_from ||
        to != (uint64_t)want_to)
        return err_set(ERR_INVAL, "KV rows: range [%llu, %llu) stored for [%ld, %ld)",
                       (unsigned long long)from, (unsigned long long)to, want_from, want_to);
    size_t row = kv_row_bytes(s), len = 0, full = 0, need = 0;
    for (int l = 0; l < s->d.n_layers; l++)
        full += s->d.is_full[l] != 0;
    if (ckd_mul_sz(&len, (size_t)(to - from), row) || ckd_mul_sz(&need, len, 2 * full) ||
        n < hn + 4 || need != n - hn - 4)
        return err_set(ERR_INVAL, "KV rows: %zu bytes in all, the header implies %zu", n,
                       need + hn + 4);
    if ((rc = seq_reserve(s, (long)to)) < 0 || (rc = seq_host_write(s, (long)from, 0)) < 0)
        return rc;
    seq_will_write(s, (long)from, (long)(to - from));
    for (int l = 0; l < s->d.n_layers; l++) {
        if (!s->d.is_full[l])
            continue;
        sp[(*nsp)++] = (struct seq_span){ s->layer[l].k + from * row, len };
        sp[(*nsp)++] = (struct seq_span){ s->layer[l].v + from * row, len };
    }
    return 0;
}

int seq_import_gdn_spans(struct seq_state *s, const uint8_t model_id[32], const void *hdr, size_t n,
                         long *pos_out, struct seq_span *sp, int *nsp)
{
    *nsp = 0;
    size_t hn = seq_gdn_header_bytes(s);
    struct rd r = { hdr, hn, 0, 0 };
    int rc = shape_check(&r, gdn_magic, s, model_id, "DeltaNet states");
    if (rc < 0)
        return rc;
    uint64_t pos = get64(&r);
    if (r.bad || pos > (uint64_t)s->written)
        return err_set(ERR_INVAL, "DeltaNet states: position %llu beyond the %ld KV rows held",
                       (unsigned long long)pos, s->written);
    size_t cb = conv_floats(&s->d) * sizeof(float), sb = rec_floats(&s->d) * sizeof(float);
    size_t need = 0;
    for (int l = 0; l < s->d.n_layers; l++)
        need += s->d.is_full[l] ? 0 : cb + sb;
    if (n < hn + 4 || need != n - hn - 4)
        return err_set(ERR_INVAL, "DeltaNet states: %zu bytes in all, the header implies %zu", n,
                       need + hn + 4);
    host_wrote_gdn(s); /* the caller writes them next */
    for (int l = 0; l < s->d.n_layers; l++) {
        if (s->d.is_full[l])
            continue;
        sp[(*nsp)++] = (struct seq_span){ s->layer[l].conv, cb };
        sp[(*nsp)++] = (struct seq_span){ s->layer[l].state, sb };
    }
    *pos_out = (long)pos;
    return 0;
}

int seq_import_gdn_finish(struct seq_state *s, long pos)
{
    if (pos < 0 || pos > s->written)
        return err_set(ERR_INVAL, "DeltaNet states: position %ld beyond the %ld KV rows held", pos,
                       s->written);
    s->pos = pos;
    return 0;
}
