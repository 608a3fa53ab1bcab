/* test_seqstate.c - engine/seqstate: KV rows, snapshots and their staleness, serialization. */
#include "common/buf.h"
#include "common/err.h"
#include "engine/seqstate.h"
#include "kernels/kernels.h"
#include "seqfix.h"
#include "testhelp.h"

/* Simulates consuming n tokens: writes KV rows and perturbs DeltaNet states. */
static void consume(struct seq_state *s, long n, struct th_rng *r)
{
    seq_will_write(s, s->pos, n);
    REQUIRE(seq_reserve(s, s->pos + n) == 0);
    for (long t = 0; t < n; t++, s->pos++) {
        for (int l = 0; l < s->d.n_layers; l++) {
            if (s->d.is_full[l]) {
                float *k = seq_k_row(s, l, s->pos), *v = seq_v_row(s, l, s->pos);
                for (int i = 0; i < s->d.n_kv * s->d.head_dim; i++)
                    k[i] = th_uniform(r), v[i] = th_uniform(r);
            } else {
                for (int i = 0; i < s->d.conv_ch * (s->d.conv_k - 1); i++)
                    s->layer[l].conv[i] += th_uniform(r);
                for (int i = 0; i < s->d.n_v * s->d.dk * s->d.dv; i++)
                    s->layer[l].state[i] = 0.9f * s->layer[l].state[i] + th_uniform(r);
            }
        }
    }
}

static void t_dims(void)
{
    /* full attention every 4th layer, as in the real model */
    struct seq_dims d = seqfix_dims(0x8);
    CHECK(seq_dims_check(&d) == 0);
    CHECK_INT(seq_kv_bytes_per_token(&d, KERN_FP8), 2 * 2 * 8);
    CHECK_INT(seq_kv_bytes_per_token(&d, KERN_BF16), 2 * 2 * 8 * 2);
    CHECK_INT(seq_gdn_bytes(&d), 3 * (12 * 3 + 2 * 3 * 5) * 4);
    /* the real model: 20 KiB/token in bf16 KV, ~61.4 MiB of DeltaNet state */
    struct seq_dims real;
    memset(&real, 0, sizeof real);
    real.n_layers = 40;
    for (int l = 0; l < 40; l++)
        real.is_full[l] = (l + 1) % 4 == 0;
    real.n_kv = 2, real.head_dim = 256, real.conv_ch = 8192, real.conv_k = 4;
    real.n_v = 32, real.dk = 128, real.dv = 128;
    CHECK_INT(seq_kv_bytes_per_token(&real, KERN_BF16), 20480);
    CHECK_INT(seq_gdn_bytes(&real), 30 * (8192 * 3 + 32 * 128 * 128) * 4);
    d.n_layers = 0;
    CHECK(seq_dims_check(&d) == ERR_INVAL);
    d = seqfix_dims(0x8);
    d.conv_k = 1;
    CHECK(seq_dims_check(&d) == ERR_INVAL);
}

static void t_snapshot_restore(void)
{
    struct th_rng r = { th_seed() };
    struct seq_dims d = seqfix_dims(0x8);
    struct seq_state *s;
    REQUIRE(seq_new(&s, &d, KERN_F32, 4) == 0);
    consume(s, 10, &r);
    struct seq_snap *a, *b;
    REQUIRE(seq_snapshot(s, &a) == 0);
    float saved = s->layer[0].state[3];
    consume(s, 7, &r);
    REQUIRE(seq_snapshot(s, &b) == 0);
    CHECK(s->layer[0].state[3] != saved);
    /* back to a: state equal to what it was, position 10 */
    CHECK(seq_restore(s, a) == 0);
    CHECK_INT(s->pos, 10);
    CHECK(s->layer[0].state[3] == saved);
    /* nothing rewritten yet: b is still reachable */
    CHECK(seq_restore(s, b) == 0);
    CHECK_INT(s->pos, 17);
    /* back to a and write: b is now stale, a is fine */
    CHECK(seq_restore(s, a) == 0);
    consume(s, 2, &r);
    CHECK(seq_restore(s, b) == ERR_INVAL);
    CHECK(strstr(err_msg(), "stale") != NULL);
    CHECK(seq_restore(s, a) == 0);
    /* a snapshot taken in the new timeline works */
    struct seq_snap *c;
    consume(s, 3, &r);
    REQUIRE(seq_snapshot(s, &c) == 0);
    CHECK(seq_restore(s, a) == 0 && seq_restore(s, c) == 0);
    /* reset invalidates everything above 0 */
    seq_reset(s);
    consume(s, 1, &r);
    CHECK(seq_restore(s, a) == ERR_INVAL);
    seq_snap_free(a);
    seq_snap_free(b);
    seq_snap_free(c);
    seq_free(s);
}

static void t_serialize(void)
{
    struct th_rng r = { th_seed() + 1 };
    uint8_t id[32] = { 1, 2, 3 }, other[32] = { 9 };
    int types[3] = { KERN_F32, KERN_BF16, KERN_FP8 };
    for (int ti = 0; ti < 3; ti++) {
        struct seq_dims d = seqfix_dims(0x8);
        struct seq_state *s, *s2;
        REQUIRE(seq_new(&s, &d, types[ti], 1) == 0);
        s->layer[3].k_scale = 0.5f;
        if (types[ti] == KERN_F32)
            consume(s, 33, &r);
        else { /* raw bytes are enough to test the format */
            seq_will_write(s, 0, 33);
            REQUIRE(seq_reserve(s, 33) == 0);
            for (long i = 0; i < 33 * 2 * 8 * (types[ti] == KERN_BF16 ? 2 : 1); i++)
                s->layer[3].k[i] = (uint8_t)th_next(&r), s->layer[3].v[i] = (uint8_t)i;
            s->pos = 33;
        }
        struct buf b = { 0 };
        REQUIRE(seq_serialize(s, id, &b) == 0);
        REQUIRE(seq_deserialize(&s2, id, &d, b.p, b.len) == 0);
        CHECK_INT(s2->pos, 33);
        CHECK(s2->layer[3].k_scale == 0.5f);
        struct buf b2 = { 0 };
        REQUIRE(seq_serialize(s2, id, &b2) == 0);
        CHECK(b.len == b2.len && !memcmp(b.p, b2.p, b.len)); /* bit-identical round trip */
        seq_free(s2);
        CHECK(seq_deserialize(&s2, other, NULL, b.p, b.len) == ERR_INVAL);
        CHECK(strstr(err_msg(), "another model") != NULL);
        /* every single-byte corruption and every truncation is refused */
        for (size_t i = 0; i < b.len; i += 1 + b.len / 97) {
            b.p[i] ^= 0x40;
            CHECK(seq_deserialize(&s2, id, NULL, b.p, b.len) == ERR_INVAL);
            b.p[i] ^= 0x40;
        }
        for (size_t n = 0; n < b.len; n += 1 + b.len / 31)
            CHECK(seq_deserialize(&s2, id, NULL, b.p, n) == ERR_INVAL);
        struct seq_dims wrong = d;
        wrong.dv = 6;
        CHECK(seq_deserialize(&s2, id, &wrong, b.p, b.len) == ERR_INVAL);
        buf_free(&b);
        buf_free(&b2);
        seq_free(s);
    }
}

int main(void)
{
    TEST_RUN(t_dims);
    TEST_RUN(t_snapshot_restore);
    TEST_RUN(t_serialize);
    TEST_END();
}
