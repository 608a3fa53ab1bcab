/*
 * test_seqdev.c - engine/seqstate's device residency (issue #8) without a GPU: a fake device
 * (a second host state) bound through struct seq_dev_ops, driven by the protocol
 * engine/model_cuda.c follows (upload what the device lacks, step there, leave the host stale).
 * Every observable result (serialized bytes, exported pieces) must equal a plain host state
 * that took the same steps; snapshots of a bound state stay on the device.
 */
#include "common/buf.h"
#include "common/err.h"
#include "engine/seqstate.h"
#include "kernels/kernels.h"
#include "seqfix.h"
#include "testhelp.h"

#include <limits.h>

struct fdev {
    struct seq_state *d; /* the "device" copy */
    struct seq_state *bound;
    int pulls, snaps, restores, reads, unbinds;
};

struct fsnap {
    float *data;
    size_t n;
};

static size_t conv_n(const struct seq_dims *d) { return (size_t)d->conv_ch * (d->conv_k - 1); }
static size_t rec_n(const struct seq_dims *d) { return (size_t)d->n_v * d->dk * d->dv; }
static size_t row_bytes(const struct seq_state *s)
{
    return (size_t)s->d.n_kv * s->d.head_dim * sizeof(float); /* F32 KV */
}

/* KV rows [from, to) and optionally the DeltaNet states from a to b. */
static void copy_state(struct seq_state *b, const struct seq_state *a, long from, long to, int gdn)
{
    size_t rb = row_bytes(a);
    for (int l = 0; l < a->d.n_layers; l++) {
        if (a->d.is_full[l]) {
            if (to > from) {
                memcpy(b->layer[l].k + from * rb, a->layer[l].k + from * rb, (to - from) * rb);
                memcpy(b->layer[l].v + from * rb, a->layer[l].v + from * rb, (to - from) * rb);
            }
        } else if (gdn) {
            memcpy(b->layer[l].conv, a->layer[l].conv, conv_n(&a->d) * sizeof(float));
            memcpy(b->layer[l].state, a->layer[l].state, rec_n(&a->d) * sizeof(float));
        }
    }
}

static int f_pull(void *dev, struct seq_state *s)
{
    struct fdev *f = dev;
    f->pulls++;
    long from = s->host_kv < s->written ? s->host_kv : s->written;
    if (from < s->written && s->dev_kv < s->written)
        return err_set(ERR_INVAL, "fake device: rows missing on both sides");
    copy_state(s, f->d, from, s->written, !s->host_gdn);
    return 0;
}

static size_t gdn_floats(const struct seq_state *s)
{
    size_t n = 0;
    for (int l = 0; l < s->d.n_layers; l++)
        n += s->d.is_full[l] ? 0 : conv_n(&s->d) + rec_n(&s->d);
    return n;
}

static void gdn_get(const struct seq_state *s, float *p)
{
    for (int l = 0; l < s->d.n_layers; l++) {
        if (s->d.is_full[l])
            continue;
        memcpy(p, s->layer[l].conv, conv_n(&s->d) * sizeof(float));
        p += conv_n(&s->d);
        memcpy(p, s->layer[l].state, rec_n(&s->d) * sizeof(float));
        p += rec_n(&s->d);
    }
}

static void gdn_put(struct seq_state *s, const float *p)
{
    for (int l = 0; l < s->d.n_layers; l++) {
        if (s->d.is_full[l])
            continue;
        memcpy(s->layer[l].conv, p, conv_n(&s->d) * sizeof(float));
        p += conv_n(&s->d);
        memcpy(s->layer[l].state, p, rec_n(&s->d) * sizeof(float));
        p += rec_n(&s->d);
    }
}

static int f_snap(void *dev, struct seq_state *s, void **h)
{
    struct fdev *f = dev;
    struct fsnap *sn = calloc(1, sizeof *sn);
    if (!sn || !(sn->data = malloc(gdn_floats(f->d) * sizeof(float) + 1))) {
        free(sn);
        return err_set(ERR_NOMEM, "out of memory");
    }
    sn->n = gdn_floats(f->d);
    gdn_get(f->d, sn->data);
    f->snaps++;
    *h = sn;
    return 0;
}

static int f_restore(void *dev, struct seq_state *s, const void *h)
{
    struct fdev *f = dev;
    gdn_put(f->d, ((const struct fsnap *)h)->data);
    f->restores++;
    return 0;
}

static int g_reads;

static int f_snap_read(const void *h, float *dst, size_t n)
{
    const struct fsnap *sn = h;
    if (n != sn->n)
        return err_set(ERR_INVAL, "fake snapshot: size");
    memcpy(dst, sn->data, n * sizeof(float));
    g_reads++;
    return 0;
}

static void f_snap_free(void *h)
{
    struct fsnap *sn = h;
    free(sn->data);
    free(sn);
}

static void f_unbind(void *dev, struct seq_state *s)
{
    struct fdev *f = dev;
    if (f->bound == s)
        f->bound = NULL;
    f->unbinds++;
}

static const struct seq_dev_ops fops = { f_pull,      f_snap,      f_restore,
                                         f_snap_read, f_snap_free, f_unbind };

/* One token's worth of writes at row p0: KV rows and DeltaNet states from tok. */
static void step_on(struct seq_state *x, long p0, int tok)
{
    size_t nr = row_bytes(x) / sizeof(float);
    for (int l = 0; l < x->d.n_layers; l++) {
        if (x->d.is_full[l]) {
            float *k = seq_k_row(x, l, p0), *v = seq_v_row(x, l, p0);
            for (size_t i = 0; i < nr; i++)
                k[i] = (float)(tok * 100 + l * 10) + (float)i, v[i] = -(float)tok - (float)i;
        } else {
            for (size_t i = 0; i < conv_n(&x->d); i++)
                x->layer[l].conv[i] = 0.5f * x->layer[l].conv[i] + (float)tok;
            for (size_t i = 0; i < rec_n(&x->d); i++)
                x->layer[l].state[i] = 0.25f * x->layer[l].state[i] + (float)(tok + l);
        }
    }
}

/* The CPU engine: the host writes (seq_host_write first, as engine/forward.c does). */
static void host_step(struct seq_state *s, int tok)
{
    REQUIRE(seq_host_write(s, s->pos, 1) == 0);
    REQUIRE(seq_reserve(s, s->pos + 1) == 0);
    seq_will_write(s, s->pos, 1);
    step_on(s, s->pos, tok);
    s->pos++;
}

/* engc_eng_forward's protocol on the fake device. */
static void dev_step(struct fdev *f, struct seq_state *s, int tok)
{
    if (s->dev_ops != &fops) {
        REQUIRE(f->bound == NULL);
        f->bound = s;
        s->dev_ops = &fops;
        s->dev = f;
        s->dev_kv = 0;
        s->dev_gdn = 0;
    }
    long p0 = s->pos;
    REQUIRE(seq_reserve(s, p0 + 1) == 0 && seq_reserve(f->d, p0 + 1) == 0);
    if (s->dev_kv < p0 || !s->dev_gdn) {
        long from = s->dev_kv < p0 ? s->dev_kv : p0;
        REQUIRE(!(from < p0 && s->host_kv < p0) && (s->dev_gdn || s->host_gdn));
        copy_state(f->d, s, from, p0, !s->dev_gdn);
        s->dev_kv = p0;
        s->dev_gdn = 1;
    }
    seq_will_write(s, p0, 1);
    s->host_gdn = 0;
    if (s->host_kv > p0)
        s->host_kv = p0;
    step_on(f->d, p0, tok);
    s->dev_kv = p0 + 1;
    s->pos = p0 + 1;
}

/* model_cuda.c's release: completes s on the host and unbinds it. */
static void dev_release(struct seq_state *s)
{
    REQUIRE(seq_host_sync(s) == 0);
    s->dev_ops->unbind(s->dev, s);
    s->dev_ops = NULL;
    s->dev = NULL;
    s->host_kv = LONG_MAX;
    s->host_gdn = 1;
}

static const uint8_t g_id[32] = { 1, 2, 3 };

/* Serialized bytes of a and b are equal (serializing a bound state completes its host copy). */
static int same(struct seq_state *a, struct seq_state *b)
{
    struct buf x = { 0 }, y = { 0 };
    int ok = seq_serialize(a, g_id, &x) == 0 && seq_serialize(b, g_id, &y) == 0 && x.len == y.len &&
             memcmp(x.p, y.p, x.len) == 0;
    buf_free(&x);
    buf_free(&y);
    return ok;
}

static void t_protocol(void)
{
    struct seq_dims d = seqfix_dims(0x5);
    struct seq_state *s, *ref, *t = NULL;
    struct fdev f = { 0 };
    REQUIRE(seq_new(&s, &d, KERN_F32, 2) == 0);
    REQUIRE(seq_new(&ref, &d, KERN_F32, 2) == 0);
    REQUIRE(seq_new(&f.d, &d, KERN_F32, 2) == 0);
    for (int i = 0; i < 5; i++) {
        dev_step(&f, s, 10 + i);
        host_step(ref, 10 + i);
    }
    /* the device holds it: the host copy is stale and nothing was copied back */
    CHECK_INT(s->host_gdn, 0);
    CHECK_INT(s->host_kv, 0);
    CHECK_INT(f.pulls, 0);

    /* a snapshot stays on the device; restored device to device */
    struct seq_snap *sn, *rs;
    REQUIRE(seq_snapshot(s, &sn) == 0 && seq_snapshot(ref, &rs) == 0);
    CHECK(sn->dh != NULL && sn->data == NULL);
    CHECK_INT(f.snaps, 1);
    for (int i = 0; i < 3; i++) {
        dev_step(&f, s, 20 + i);
        host_step(ref, 20 + i);
    }
    REQUIRE(seq_restore(s, sn) == 0 && seq_restore(ref, rs) == 0);
    CHECK_INT(f.restores, 1);
    CHECK_INT(s->pos, 5);
    CHECK_INT(f.pulls, 0);
    for (int i = 0; i < 2; i++) {
        dev_step(&f, s, 30 + i);
        host_step(ref, 30 + i);
    }
    CHECK(same(s, ref));
    CHECK_INT(f.pulls, 1);
    CHECK(same(s, ref)); /* complete already: no second copy */
    CHECK_INT(f.pulls, 1);

    /* the CPU engine takes a step in between, then the device again (it uploads that row) */
    dev_step(&f, s, 40);
    host_step(ref, 40);
    host_step(s, 41);
    host_step(ref, 41);
    CHECK_INT(s->dev_gdn, 0);
    dev_step(&f, s, 42);
    host_step(ref, 42);
    CHECK(same(s, ref));

    /* exported pieces of the bound state rebuild it in a fresh host state */
    dev_step(&f, s, 43);
    host_step(ref, 43);
    struct buf kv = { 0 }, gd = { 0 };
    REQUIRE(seq_export_kv(s, g_id, 0, s->pos, &kv) == 0 && seq_export_gdn(s, g_id, &gd) == 0);
    REQUIRE(seq_new(&t, &d, KERN_F32, 2) == 0);
    REQUIRE(seq_import_kv(t, g_id, kv.p, kv.len, NULL, NULL) == 0 &&
            seq_import_gdn(t, g_id, gd.p, gd.len) == 0);
    CHECK(same(t, ref));

    /* reset + import into the bound state: the next device step uploads all of it */
    seq_reset(s);
    REQUIRE(seq_import_kv(s, g_id, kv.p, kv.len, NULL, NULL) == 0 &&
            seq_import_gdn(s, g_id, gd.p, gd.len) == 0);
    CHECK_INT(s->dev_kv, 0);
    CHECK_INT(s->dev_gdn, 0);
    dev_step(&f, s, 44);
    host_step(ref, 44);
    CHECK(same(s, ref));
    buf_free(&kv);
    buf_free(&gd);

    /* a device snapshot restored into a state the device no longer holds */
    struct seq_snap *sn2, *rs2;
    dev_step(&f, s, 45);
    host_step(ref, 45);
    REQUIRE(seq_snapshot(s, &sn2) == 0 && seq_snapshot(ref, &rs2) == 0);
    CHECK(sn2->dh != NULL);
    dev_step(&f, s, 46);
    host_step(ref, 46);
    dev_release(s);
    CHECK(s->dev_ops == NULL);
    int reads = g_reads;
    REQUIRE(seq_restore(s, sn2) == 0 && seq_restore(ref, rs2) == 0);
    CHECK_INT(g_reads, reads + 1);
    host_step(s, 47);
    host_step(ref, 47);
    CHECK(same(s, ref));

    /* a stale device snapshot is refused like a host one */
    dev_step(&f, s, 48);
    host_step(ref, 48);
    CHECK(seq_restore(s, sn) == ERR_INVAL);

    /* freeing a bound state unbinds it */
    int unb = f.unbinds;
    seq_snap_free(sn);
    seq_snap_free(rs);
    seq_snap_free(sn2);
    seq_snap_free(rs2);
    seq_free(s);
    CHECK_INT(f.unbinds, unb + 1);
    CHECK(f.bound == NULL);
    seq_free(ref);
    seq_free(t);
    seq_free(f.d);
}

int main(void)
{
    th_seed();
    TEST_RUN(t_protocol);
    TEST_END();
}
