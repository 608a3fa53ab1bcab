/*
 * test_forward.c - the CPU forward pass against transformers (golden files
 * written by tests/ref/ref_model.py into tests/data/golden/), and the
 * engine's own invariants: prefill == token-by-token decode, chunked DeltaNet
 * == recurrent, snapshot/restore and serialize/deserialize continue exactly,
 * identical results for any thread count.
 */
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/hash.h"
#include "engine/mkmodel.h"
#include "engine/model.h"
#include "kernels/kernels.h"
#include "testhelp.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>

#define GOLDEN "tests/data/golden"

struct golden {
    cJSON *j;
    struct buf logits, hidden;
    int nseq;
    long vocab, hidden_size, n_layers;
};

static int golden_load(struct golden *g, const char *name)
{
    memset(g, 0, sizeof *g);
    char path[256];
    struct buf b = { 0 };
    snprintf(path, sizeof path, GOLDEN "/%s/golden.json", name);
    if (fs_read_file(path, 1 << 20, &b) < 0)
        return -1;
    g->j = cJSON_Parse(b.p);
    buf_free(&b);
    if (!g->j)
        return -1;
    g->vocab = (long)cJSON_GetObjectItem(g->j, "vocab_size")->valuedouble;
    g->hidden_size = (long)cJSON_GetObjectItem(g->j, "hidden_size")->valuedouble;
    g->n_layers = (long)cJSON_GetObjectItem(g->j, "num_layers")->valuedouble;
    g->nseq = cJSON_GetArraySize(cJSON_GetObjectItem(g->j, "sequences"));
    snprintf(path, sizeof path, GOLDEN "/%s/logits.f32", name);
    if (fs_read_file(path, 64 << 20, &g->logits) < 0)
        return -1;
    snprintf(path, sizeof path, GOLDEN "/%s/hidden.f32", name);
    if (fs_read_file(path, 64 << 20, &g->hidden) < 0)
        return -1;
    return 0;
}

static void golden_free(struct golden *g)
{
    cJSON_Delete(g->j);
    buf_free(&g->logits);
    buf_free(&g->hidden);
}

/* The checkpoint files must be the ones the golden was computed from. */
static int golden_fresh(struct golden *g, const char *name)
{
    cJSON *h = cJSON_GetObjectItem(g->j, "checkpoint_sha256"), *it;
    int ok = 1;
    cJSON_ArrayForEach(it, h)
    {
        char path[256], hex[65];
        struct buf b = { 0 };
        snprintf(path, sizeof path, GOLDEN "/%s/%s", name, it->string);
        if (fs_read_file(path, 256 << 20, &b) < 0) {
            ok = 0;
            continue;
        }
        sha256_hex(b.p, b.len, hex);
        if (strcmp(hex, it->valuestring)) {
            printf("    stale golden: %s has changed (sha256 %s, golden %s)\n", path, hex,
                   it->valuestring);
            ok = 0;
        }
        buf_free(&b);
    }
    return ok;
}

static int seq_tokens(struct golden *g, int i, int32_t *out, int cap)
{
    cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItem(g->j, "sequences"), i);
    int n = cJSON_GetArraySize(s);
    for (int t = 0; t < n && t < cap; t++)
        out[t] = (int32_t)cJSON_GetArrayItem(s, t)->valuedouble;
    return n;
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > num || isnan(d))
            num = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > den)
            den = fabs(b[i]);
    }
    return den > 0 ? num / den : num;
}

struct trace {
    float *h; /* [n_layers + 1][T][H] */
    long T, H;
};

static void trace_fn(void *ctx, int layer, const float *h, long T, long H)
{
    struct trace *tr = ctx;
    memcpy(tr->h + (size_t)(layer + 1) * tr->T * H, h, (size_t)T * H * sizeof(float));
}

static struct eng *open_model(const char *dir, int threads, int kv)
{
    struct eng_opts o = eng_opts_default();
    o.threads = threads;
    o.kv_type = kv;
    o.chunk = 4096;
    struct eng *e = NULL;
    if (eng_open(&e, dir, &o) < 0) {
        printf("    eng_open(%s): %s\n", dir, err_msg());
        return NULL;
    }
    return e;
}

static void check_golden(const char *name)
{
    struct golden g;
    REQUIRE(golden_load(&g, name) == 0);
    CHECK(golden_fresh(&g, name));
    char dir[128];
    snprintf(dir, sizeof dir, GOLDEN "/%s", name);
    struct eng *e = open_model(dir, 0, KERN_F32);
    REQUIRE(e);
    long V = g.vocab, H = g.hidden_size, L = g.n_layers;
    CHECK_INT(eng_vocab(e), V);
    size_t off_l = 0, off_h = 0;
    for (int i = 0; i < g.nseq; i++) {
        int32_t tok[512];
        long T = seq_tokens(&g, i, tok, 512);
        struct seq_state *s;
        REQUIRE(eng_state_new(e, &s, T) == 0);
        float *lg = malloc((size_t)T * V * sizeof(float));
        struct trace tr = { malloc((size_t)(L + 1) * T * H * sizeof(float)), T, H };
        eng_set_trace(e, trace_fn, &tr);
        CHECK(eng_forward(e, s, tok, T, lg, 1) == 0);
        eng_set_trace(e, NULL, NULL);
        const float *ref_l = (const float *)g.logits.p + off_l;
        const float *ref_h = (const float *)g.hidden.p + off_h;
        /* per layer first, so a failure names the first layer that diverges */
        for (long l = 0; l <= L; l++) {
            double err = rel_err(tr.h + l * T * H, ref_h + l * T * H, (size_t)T * H);
            CHECKF(err <= 1e-3, "%s seq %d: hidden state %ld (%s) differs: rel err %.3g", name, i,
                   l,
                   l == 0   ? "embedding"
                   : l == L ? "final norm"
                            : "layer output",
                   err);
            if (err > 1e-3)
                break;
        }
        double err = rel_err(lg, ref_l, (size_t)T * V);
        CHECKF(err <= 1e-3, "%s seq %d: logits rel err %.3g", name, i, err);
        int same = 1;
        for (long t = 0; t < T; t++)
            same &= kern_argmax(lg + t * V, V) == kern_argmax(ref_l + t * V, V);
        CHECKF(same, "%s seq %d: argmax differs", name, i);
        printf("    %s seq %d (%ld tokens): logits rel err %.2g\n", name, i, T, err);
        off_l += (size_t)T * V;
        off_h += (size_t)(L + 1) * T * H;
        free(tr.h);
        free(lg);
        seq_free(s);
    }
    eng_close(e);
    golden_free(&g);
}

static void t_golden_text(void) { check_golden("text"); }
static void t_golden_vl(void) { check_golden("vl"); }

/* lode's own generated checkpoints against transformers (tests/ref/mkmodel_golden.sh): the
 * checkpoint is regenerated here by mk_write, must hash to what the golden was computed from,
 * and must give the same logits. */
static void check_mkmodel(const char *name)
{
    char path[512], dir[128];
    struct buf b = { 0 };
    snprintf(path, sizeof path, GOLDEN "/mkmodel/%s/golden.json", name);
    REQUIRE(fs_read_file(path, 1 << 20, &b) == 0);
    cJSON *j = cJSON_Parse(b.p);
    buf_free(&b);
    REQUIRE(j);
    cJSON *mk = cJSON_GetObjectItem(j, "mkmodel"), *toks = cJSON_GetObjectItem(j, "tokens"), *it;
    snprintf(dir, sizeof dir, "/tmp/lode-mkgolden-%d-%s", (int)getpid(), name);
    struct mk_opts mo = {
        .out = dir,
        .preset = MK_TINY,
        .mixed = !strcmp(cJSON_GetObjectItem(mk, "quant")->valuestring, "mixed"),
        .text_layout = !strcmp(cJSON_GetObjectItem(mk, "layout")->valuestring, "text"),
        .seed = (uint64_t)cJSON_GetObjectItem(mk, "seed")->valuedouble,
        .tokenizer = NULL,
        .shards = 1,
    };
    REQUIRE(mk_write(&mo) == 0);
    int fresh = 1;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "checkpoint_sha256"))
    {
        char hex[65];
        snprintf(path, sizeof path, "%s/%s", dir, it->string);
        if (fs_read_file(path, 256 << 20, &b) < 0) {
            fresh = 0;
            continue;
        }
        sha256_hex(b.p, b.len, hex);
        if (strcmp(hex, it->valuestring)) {
            printf("    stale golden: mkmodel now writes a different %s for %s; regenerate with "
                   "tests/ref/mkmodel_golden.sh\n",
                   it->string, name);
            fresh = 0;
        }
        buf_free(&b);
    }
    CHECK(fresh);
    long T = cJSON_GetArraySize(toks);
    int32_t tok[64];
    for (long t = 0; t < T && t < 64; t++)
        tok[t] = (int32_t)cJSON_GetArrayItem(toks, (int)t)->valuedouble;
    struct eng *e = open_model(dir, 0, KERN_F32);
    struct buf ref = { 0 };
    snprintf(path, sizeof path, GOLDEN "/mkmodel/%s/logits.f32", name);
    if (e && fs_read_file(path, 64 << 20, &ref) == 0) {
        long V = eng_vocab(e);
        CHECK(ref.len == (size_t)T * V * sizeof(float));
        float *lg = malloc((size_t)T * V * sizeof(float));
        struct seq_state *s;
        REQUIRE(eng_state_new(e, &s, T) == 0);
        CHECK(eng_forward(e, s, tok, T, lg, 1) == 0);
        const float *r = (const float *)ref.p;
        double err = rel_err(lg, r, (size_t)T * V);
        int same = 1;
        for (long t = 0; t < T; t++)
            same &= kern_argmax(lg + t * V, V) == kern_argmax(r + t * V, V);
        CHECKF(err <= 1e-3 && same, "%s: rel err %.3g, argmax %s", name, err,
               same ? "identical" : "differs");
        printf("    mkmodel %s: logits rel err %.2g vs transformers\n", name, err);
        seq_free(s);
        free(lg);
    }
    CHECK(e != NULL);
    buf_free(&ref);
    eng_close(e);
    cJSON_Delete(j);
    /* the generated checkpoint is a few files in one directory */
    DIR *dd = opendir(dir);
    struct dirent *de;
    while (dd && (de = readdir(dd)))
        if (de->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
        }
    if (dd)
        closedir(dd);
    rmdir(dir);
}

static void t_golden_mkmodel(void)
{
    check_mkmodel("tiny-bf16-text");
    check_mkmodel("tiny-mixed-text");
    check_mkmodel("tiny-mixed-vl");
}

/* Runs the long golden sequence one way and returns logits [T][V] (owned). */
static float *run_split(struct eng *e, const int32_t *tok, long T, const long *splits, int nsplit)
{
    long V = eng_vocab(e);
    struct seq_state *s;
    if (eng_state_new(e, &s, 1) < 0)
        return NULL;
    float *lg = malloc((size_t)T * V * sizeof(float));
    long done = 0;
    for (int i = 0; i <= nsplit; i++) {
        long end = i < nsplit ? splits[i] : T;
        if (eng_forward(e, s, tok + done, end - done, lg + done * V, 1) < 0) {
            printf("    forward: %s\n", err_msg());
            free(lg);
            seq_free(s);
            return NULL;
        }
        done = end;
    }
    seq_free(s);
    return lg;
}

static void t_prefill_equals_decode(void)
{
    struct golden g;
    REQUIRE(golden_load(&g, "text") == 0);
    struct eng *e = open_model(GOLDEN "/text", 0, KERN_F32);
    REQUIRE(e);
    int32_t tok[512];
    long T = seq_tokens(&g, 2, tok, 512), V = eng_vocab(e);
    long none[1] = { 0 };
    float *whole = run_split(e, tok, T, none, 0);
    long every[512];
    for (long t = 0; t < T - 1; t++)
        every[t] = t + 1;
    float *steps = run_split(e, tok, T, every, (int)T - 1);
    long mixed[3] = { 5, 40, 71 };
    float *some = run_split(e, tok, T, mixed, 3);
    REQUIRE(whole && steps && some);
    CHECKF(rel_err(steps, whole, (size_t)T * V) <= 1e-4, "token by token vs prefill: %.3g",
           rel_err(steps, whole, (size_t)T * V));
    CHECKF(rel_err(some, whole, (size_t)T * V) <= 1e-4, "pieces vs prefill: %.3g",
           rel_err(some, whole, (size_t)T * V));
    /* the DeltaNet paths: chunked and recurrent over the same prefill */
    eng_set_gdn_mode(e, 1);
    float *rec = run_split(e, tok, T, none, 0);
    eng_set_gdn_mode(e, 2);
    float *chk = run_split(e, tok, T, none, 0);
    eng_set_gdn_mode(e, 0);
    REQUIRE(rec && chk);
    CHECKF(rel_err(chk, rec, (size_t)T * V) <= 1e-4, "chunked vs recurrent: %.3g",
           rel_err(chk, rec, (size_t)T * V));
    free(whole);
    free(steps);
    free(some);
    free(rec);
    free(chk);
    eng_close(e);
    golden_free(&g);
}

static void t_snapshot_and_serialize(void)
{
    struct golden g;
    REQUIRE(golden_load(&g, "text") == 0);
    int kvs[2] = { KERN_F32, KERN_FP8 };
    for (int ki = 0; ki < 2; ki++) {
        struct eng *e = open_model(GOLDEN "/text", 0, kvs[ki]);
        REQUIRE(e);
        int32_t tok[512];
        long T = seq_tokens(&g, 2, tok, 512), V = eng_vocab(e), cut = 50;
        float *a = malloc((size_t)V * sizeof(float)), *b = malloc((size_t)V * sizeof(float));
        struct seq_state *s, *s2;
        REQUIRE(eng_state_new(e, &s, 8) == 0);
        REQUIRE(eng_forward(e, s, tok, cut, NULL, 0) == 0);
        struct seq_snap *sn;
        REQUIRE(seq_snapshot(s, &sn) == 0);
        uint8_t id[32];
        eng_model_id(e, id);
        struct buf ser = { 0 };
        REQUIRE(seq_serialize(s, id, &ser) == 0);
        /* uninterrupted */
        REQUIRE(eng_forward(e, s, tok + cut, T - cut, a, 0) == 0);
        /* a detour, then back to the snapshot */
        int32_t junk[7] = { 3, 1, 4, 1, 5, 9, 2 };
        CHECK(seq_restore(s, sn) == 0);
        REQUIRE(eng_forward(e, s, junk, 7, NULL, 0) == 0);
        CHECK(seq_restore(s, sn) == 0);
        REQUIRE(eng_forward(e, s, tok + cut, T - cut, b, 0) == 0);
        CHECK(!memcmp(a, b, (size_t)V * sizeof(float)));
        /* from the serialized bytes, in a fresh state */
        struct seq_dims d;
        eng_state_dims(e, &d);
        REQUIRE(seq_deserialize(&s2, id, &d, ser.p, ser.len) == 0);
        REQUIRE(eng_forward(e, s2, tok + cut, T - cut, b, 0) == 0);
        CHECKF(!memcmp(a, b, (size_t)V * sizeof(float)), "deserialized state continues exactly");
        seq_free(s2);
        seq_free(s);
        seq_snap_free(sn);
        buf_free(&ser);
        free(a);
        free(b);
        eng_close(e);
    }
    golden_free(&g);
}

static void t_threads_deterministic(void)
{
    struct golden g;
    REQUIRE(golden_load(&g, "text") == 0);
    int32_t tok[512];
    long T = seq_tokens(&g, 2, tok, 512);
    float *ref = NULL;
    long V = 0;
    for (int th = 1; th <= 3; th++) {
        struct eng *e = open_model(GOLDEN "/text", th, KERN_F32);
        REQUIRE(e);
        V = eng_vocab(e);
        long none[1] = { 0 };
        float *lg = run_split(e, tok, T, none, 0);
        REQUIRE(lg);
        if (!ref)
            ref = lg;
        else {
            CHECKF(!memcmp(ref, lg, (size_t)T * V * sizeof(float)), "%d threads differ", th);
            free(lg);
        }
        eng_close(e);
    }
    free(ref);
    golden_free(&g);
}

static void t_bad_tokens(void)
{
    struct eng *e = open_model(GOLDEN "/text", 1, KERN_F32);
    REQUIRE(e);
    struct seq_state *s;
    REQUIRE(eng_state_new(e, &s, 4) == 0);
    int32_t bad[2] = { 1, 256 };
    CHECK(eng_forward(e, s, bad, 2, NULL, 0) == ERR_INVAL);
    CHECK(strstr(err_msg(), "outside the vocabulary") != NULL);
    CHECK_INT(s->pos, 0);
    seq_free(s);
    eng_close(e);
}

int main(void)
{
    TEST_RUN(t_golden_text);
    TEST_RUN(t_golden_vl);
    TEST_RUN(t_golden_mkmodel);
    TEST_RUN(t_prefill_equals_decode);
    TEST_RUN(t_snapshot_and_serialize);
    TEST_RUN(t_threads_deterministic);
    TEST_RUN(t_bad_tokens);
    TEST_END();
}
