/*
 * test_backend.c - the agent backends: the engine backend's context reuse
 * (common prefix, snapshots at assistant turns, state files) on a tiny
 * generated checkpoint with the real tokenizer and the official template,
 * and the script backend.
 */
#include "app/backend.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/text.h"
#include "engine/mkmodel.h"
#include "engine/template.h"
#include "engine/tokenizer.h"
#include "kernels/kernels.h"
#include "testhelp.h"

#include <cjson/cJSON.h>

#define REAL_TOK "../shared/reference/qwen3-tokenizer/tokenizer.json"

static char model_a[128], model_b[128];
static struct tok *tk;
static struct tpl *tp;

/* ------------------------------------------------------------ helpers */

static int make_model_seed(char *dir, size_t cap, const char *tag, int text_layout, uint64_t seed);

/* The other model uses the other layout (t_model_id_weights checks weights alone). */
static int make_model(char *dir, size_t cap, const char *tag, int text_layout)
{
    return make_model_seed(dir, cap, tag, text_layout, 1);
}

static int make_model_seed(char *dir, size_t cap, const char *tag, int text_layout, uint64_t seed)
{
    snprintf(dir, cap, "/tmp/lode-backend-%d-%s", (int)getpid(), tag);
    struct mk_opts mo = { .out = dir,
                          .preset = MK_TINY,
                          .text_layout = text_layout,
                          .seed = seed,
                          .tokenizer = REAL_TOK,
                          .shards = 1 };
    return mk_write(&mo);
}

static struct backend *open_engine(const char *dir)
{
    struct be_config c = be_config_default();
    c.model = dir;
    c.threads = 1; /* bit-identical logits need the same threads */
    struct backend *b = NULL;
    if (be_open(&b, "cpu", &c) < 0)
        printf("    be_open: %s\n", err_msg());
    return b;
}

static void add_msg(cJSON *arr, const char *role, const char *content, const char *reasoning)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", content);
    if (reasoning)
        cJSON_AddStringToObject(m, "reasoning_content", reasoning);
    cJSON_AddItemToArray(arr, m);
}

/* The official template's rendering with the generation prompt. */
static char *render(const cJSON *msgs, int thinking)
{
    struct tpl_opts o = { .add_generation_prompt = 1,
                          .enable_thinking = thinking ? TPL_TRUE : TPL_FALSE };
    char *out = NULL;
    size_t n;
    if (tpl_render(tp, msgs, NULL, &o, &out, &n) < 0)
        printf("    render: %s\n", err_msg());
    return out;
}

static struct tok_ids encode(const char *s)
{
    struct tok_ids ids = { 0 };
    if (tok_encode(tk, s, strlen(s), 0, &ids) < 0)
        printf("    encode: %s\n", err_msg());
    return ids;
}

/* Index of the last <|im_start|> in ids. */
static long last_im_start(const struct tok_ids *ids)
{
    int32_t im = tok_find(tk, "<|im_start|>", 12);
    long k = (long)ids->n - 1;
    while (k > 0 && ids->v[k] != im)
        k--;
    return k;
}

static long common_prefix(const int32_t *a, long na, const int32_t *b, long nb)
{
    long L = 0;
    while (L < na && L < nb && a[L] == b[L])
        L++;
    return L;
}

struct collect {
    struct buf text;
    int pieces, max_piece, bad_utf8;
    int quit_after; /* callback returns 1 after this many RAW pieces (0: never) */
    int intr_after; /* sets *flag after this many events (0: never) */
    volatile int *flag;
    int events, prefill_events;
};

static int on_event(void *ud, const struct be_event *ev)
{
    struct collect *c = ud;
    c->events++;
    if (c->intr_after && c->events >= c->intr_after && c->flag)
        *c->flag = 1;
    if (ev->kind == BE_EV_PREFILL) {
        c->prefill_events++;
        return 0;
    }
    if (ev->kind != BE_EV_RAW)
        return 0;
    c->pieces++;
    if ((int)ev->len > c->max_piece)
        c->max_piece = (int)ev->len;
    size_t bad;
    if (!utf8_valid(ev->text, ev->len, &bad))
        c->bad_utf8 = 1;
    buf_append(&c->text, ev->text, ev->len);
    return c->quit_after && c->pieces >= c->quit_after;
}

static int gen(struct backend *b, const char *prompt, long max_tokens, struct collect *c,
               struct be_usage *u, enum be_stop *stop, const volatile int *intr)
{
    struct be_request rq = { 0 };
    rq.prompt = prompt;
    rq.prompt_len = strlen(prompt);
    rq.samp = samp_preset(SAMP_GREEDY);
    rq.max_tokens = max_tokens;
    rq.interrupt = intr;
    int rc = b->ops->generate(b, &rq, on_event, c, u, stop);
    if (rc < 0)
        printf("    generate: %s\n", err_msg());
    return rc;
}

/* Copies the backend's held tokens. */
static struct tok_ids held(struct backend *b)
{
    struct tok_ids ids = { 0 };
    const int32_t *t;
    long n, max;
    if (b->ops->context(b, &t, &n, &max) == 0 && n > 0) {
        ids.v = malloc((size_t)n * sizeof *t);
        memcpy(ids.v, t, (size_t)n * sizeof *t);
        ids.n = ids.cap = (size_t)n;
    }
    return ids;
}

static float *logits_copy(struct backend *b, long *n)
{
    const float *lg;
    if (b->ops->last_logits(b, &lg, n) < 0)
        return NULL;
    float *c = malloc((size_t)*n * sizeof *c);
    memcpy(c, lg, (size_t)*n * sizeof *c);
    return c;
}

static int same_logits(struct backend *b, const float *want, long n)
{
    const float *lg;
    long m;
    return want && b->ops->last_logits(b, &lg, &m) == 0 && m == n &&
           !memcmp(lg, want, (size_t)n * sizeof *lg);
}

#define NEED_MODEL()                                                                               \
    do {                                                                                           \
        if (!tk)                                                                                   \
            SKIP("no tokenizer at %s", REAL_TOK);                                                  \
    } while (0)

/* ------------------------------------------------------------ engine backend */

/* A non-thinking conversation: after every turn the held tokens are the prompt's tokens
 * followed by the generated ones (whose text is what streamed), and the next turn reuses
 * everything up to the first difference or the snapshot at the previous assistant turn. */
static void t_multiturn(void)
{
    NEED_MODEL();
    struct backend *b = open_engine(model_a);
    REQUIRE(b);
    CHECK(b->caps == (BE_CAP_PROMPT | BE_CAP_STATE | BE_CAP_TOKENS));
    CHECK_STR(b->name, "cpu");
    cJSON *msgs = cJSON_CreateArray();
    add_msg(msgs, "system", "You are a careful assistant.", NULL);
    add_msg(msgs, "user", "Say hello.", NULL);
    struct tok_ids prev = { 0 };
    long prev_snap = -1;
    for (int turn = 0; turn < 3; turn++) {
        char *p = render(msgs, 0);
        REQUIRE(p);
        struct tok_ids want = encode(p), before = held(b);
        struct collect c = { 0 };
        struct be_usage u;
        enum be_stop stop;
        REQUIRE(gen(b, p, 6, &c, &u, &stop, NULL) == 0);
        struct tok_ids h = held(b);
        CHECK_INT(u.prompt_tokens, (long)want.n);
        /* the held tokens: the prompt token for token, then what was generated */
        CHECK(h.n == want.n + (size_t)u.gen_tokens);
        CHECK(h.n >= want.n && !memcmp(h.v, want.v, want.n * sizeof *h.v));
        CHECK(u.gen_tokens <= 6);
        CHECK(stop == BE_STOP_END || (stop == BE_STOP_LENGTH && u.gen_tokens == 6));
        struct buf dec = { 0 };
        if (h.n > want.n)
            CHECK(tok_decode(tk, h.v + want.n, h.n - want.n, 0, &dec) == 0);
        CHECK((dec.len == c.text.len && !memcmp(dec.p, c.text.p, dec.len)) || c.bad_utf8);
        CHECK(!c.bad_utf8);
        CHECK(c.prefill_events >= 2);
        /* reuse: all of the earlier context up to the first difference, else the snapshot at
         * the previous prompt's last <|im_start|> (non-thinking history drops the empty think
         * block right after it) */
        if (turn == 0) {
            CHECK_INT(u.cached_tokens, 0);
        } else {
            long L = common_prefix(before.v, (long)before.n, want.v, (long)want.n);
            long exp = L == (long)before.n ? L : prev_snap;
            CHECK(L < (long)before.n); /* the template drops the think block */
            CHECKF(u.cached_tokens == exp, "turn %d: cached %ld, want %ld (L %ld)", turn,
                   u.cached_tokens, exp, L);
        }
        CHECK_INT(u.prefill_tokens, (long)want.n - u.cached_tokens);
        prev_snap = last_im_start(&want);
        add_msg(msgs, "assistant", c.text.p ? c.text.p : "", NULL);
        add_msg(msgs, "user", turn == 0 ? "And now in French?" : "Thanks. Once more.", NULL);
        tok_ids_free(&prev);
        prev = want;
        tok_ids_free(&before);
        tok_ids_free(&h);
        buf_free(&dec);
        buf_free(&c.text);
        free(p);
    }
    tok_ids_free(&prev);
    cJSON_Delete(msgs);
    be_close(b);
}

/* After a thinking turn a new user message makes the template drop the reasoning: the
 * backend goes back to the snapshot at that turn's <|im_start|> and prefills only from
 * there. */
static void t_thinking_snapshot(void)
{
    NEED_MODEL();
    struct backend *b = open_engine(model_a);
    REQUIRE(b);
    cJSON *msgs = cJSON_CreateArray();
    add_msg(msgs, "system", "You are a careful assistant.", NULL);
    add_msg(msgs, "user", "What is 2 + 2?", NULL);
    char *p1 = render(msgs, 1);
    REQUIRE(p1);
    struct tok_ids t1 = encode(p1);
    struct collect c = { 0 };
    struct be_usage u;
    enum be_stop stop;
    REQUIRE(gen(b, p1, 5, &c, &u, &stop, NULL) == 0);
    CHECK_INT(u.cached_tokens, 0);
    CHECK_INT(u.prefill_tokens, (long)t1.n);
    long s1 = last_im_start(&t1);
    add_msg(msgs, "assistant", "It is 4.", "Two plus two is four.");
    add_msg(msgs, "user", "And 3 + 3?", NULL);
    char *p2 = render(msgs, 1);
    REQUIRE(p2);
    struct tok_ids t2 = encode(p2);
    REQUIRE(t2.n > t1.n);
    CHECK(!memcmp(t2.v, t1.v, (size_t)s1 * sizeof *t1.v));
    struct be_usage u2;
    REQUIRE(gen(b, p2, 3, &c, &u2, &stop, NULL) == 0);
    CHECK_INT(u2.prompt_tokens, (long)t2.n);
    CHECK_INT(u2.cached_tokens, s1);
    CHECK_INT(u2.prefill_tokens, (long)t2.n - s1);
    struct tok_ids h = held(b);
    CHECK(h.n >= t2.n && !memcmp(h.v, t2.v, t2.n * sizeof *h.v));
    tok_ids_free(&h);
    tok_ids_free(&t1);
    tok_ids_free(&t2);
    free(p1);
    free(p2);
    buf_free(&c.text);
    cJSON_Delete(msgs);
    be_close(b);
}

/* Within a tool loop the template keeps the turn's reasoning: the held tokens plus the
 * pending <|im_end|> (sampled, never fed) are exactly the start of the next rendering, so the
 * next prompt reuses all of them and prefills the stop token with the tool result. */
static void t_tool_loop_reuse(void)
{
    NEED_MODEL();
    struct backend *b = open_engine(model_a);
    REQUIRE(b);
    cJSON *msgs = cJSON_CreateArray();
    add_msg(msgs, "system", "You are a coding agent.", NULL);
    add_msg(msgs, "user", "What files are here?", NULL);
    char *p1 = render(msgs, 1);
    REQUIRE(p1);
    /* the model's turn as it would stream: reasoning, "</think>", content; then <|im_end|> */
    struct buf turn = { 0 };
    buf_puts(&turn, p1);
    buf_puts(&turn, "I should look.\n</think>\n\nLet me check.");
    struct collect c = { 0 };
    struct be_usage u;
    enum be_stop stop;
    REQUIRE(gen(b, turn.p, -1, &c, &u, &stop, NULL) == 0);
    struct tok_ids h = held(b);
    add_msg(msgs, "assistant", "Let me check.", "I should look.");
    add_msg(msgs, "tool", "a.c b.c", NULL);
    char *p2 = render(msgs, 1);
    REQUIRE(p2);
    struct tok_ids t2 = encode(p2);
    int32_t im_end = tok_find(tk, "<|im_end|>", 10);
    REQUIRE(t2.n > h.n + 1);
    CHECKF(!memcmp(t2.v, h.v, h.n * sizeof *h.v) && t2.v[h.n] == im_end,
           "held + <|im_end|> is not a prefix of the next rendering:\n%s", p2);
    REQUIRE(gen(b, p2, -1, &c, &u, &stop, NULL) == 0);
    CHECK_INT(u.cached_tokens, (long)h.n);
    CHECK_INT(u.prefill_tokens, (long)(t2.n - h.n));
    tok_ids_free(&h);
    tok_ids_free(&t2);
    buf_free(&turn);
    buf_free(&c.text);
    free(p1);
    free(p2);
    cJSON_Delete(msgs);
    be_close(b);
}

/* Prefill only (max_tokens < 0), the snapshot path and the state file give the logits of
 * the uninterrupted run bit for bit. */
static void t_restore_logits(void)
{
    NEED_MODEL();
    struct backend *a = open_engine(model_a), *b2 = NULL;
    REQUIRE(a);
    cJSON *m1 = cJSON_CreateArray(), *m2 = cJSON_CreateArray();
    add_msg(m1, "system", "You are terse.", NULL);
    add_msg(m1, "user", "List three colors.", NULL);
    add_msg(m2, "system", "You are terse.", NULL);
    add_msg(m2, "user", "List three colors.", NULL);
    add_msg(m2, "assistant", "Red, green, blue.", "Easy.");
    add_msg(m2, "user", "Now three animals.", NULL);
    char *p1 = render(m1, 1), *q = render(m2, 1);
    REQUIRE(p1 && q);
    struct tok_ids t1 = encode(p1), tq = encode(q);
    long s1 = last_im_start(&t1), n = 0;
    struct collect c = { 0 };
    struct be_usage u;
    enum be_stop stop;

    const float *lg;
    long nl;
    CHECK(a->ops->last_logits(a, &lg, &nl) == ERR_NOTFOUND); /* nothing computed yet */
    REQUIRE(gen(a, p1, -1, &c, &u, &stop, NULL) == 0);
    CHECK(stop == BE_STOP_LENGTH);
    CHECK_INT(u.gen_tokens, 0);
    CHECK_INT(c.text.len, 0);
    CHECK_INT(u.prefill_tokens, (long)t1.n);
    struct tok_ids h = held(a);
    CHECK(h.n == t1.n && !memcmp(h.v, t1.v, t1.n * sizeof *h.v));
    tok_ids_free(&h);
    float *x1 = logits_copy(a, &n);
    REQUIRE(x1);

    /* the same prompt again: nothing to compute, the logits are still those */
    REQUIRE(gen(a, p1, -1, &c, &u, &stop, NULL) == 0);
    CHECK_INT(u.cached_tokens, (long)t1.n);
    CHECK_INT(u.prefill_tokens, 0);
    CHECK(same_logits(a, x1, n));

    /* diverge after the assistant turn's <|im_start|>, then come back */
    REQUIRE(gen(a, q, -1, &c, &u, &stop, NULL) == 0);
    CHECK_INT(u.cached_tokens, s1);
    CHECK_INT(u.prefill_tokens, (long)tq.n - s1);
    REQUIRE(gen(a, p1, -1, &c, &u, &stop, NULL) == 0);
    CHECK_INT(u.cached_tokens, s1);
    CHECK_INT(u.prefill_tokens, (long)t1.n - s1);
    CHECK(same_logits(a, x1, n));

    /* a prompt that is a prefix of the context: computed again from the newest snapshot */
    struct buf shorter = { 0 };
    buf_append(&shorter, p1, strlen(p1) - strlen("<think>\n"));
    struct tok_ids ts = encode(shorter.p);
    REQUIRE(gen(a, shorter.p, -1, &c, &u, &stop, NULL) == 0);
    CHECK_INT(u.cached_tokens, s1);
    CHECK_INT(u.prefill_tokens, (long)ts.n - s1);
    REQUIRE(gen(a, p1, -1, &c, &u, &stop, NULL) == 0);
    CHECK_INT(u.cached_tokens, (long)ts.n);
    CHECK_INT(u.prefill_tokens, (long)(t1.n - ts.n));

    /* state file round trip into a fresh backend: extending the prompt gives the same
     * logits as the backend that never stopped */
    struct buf st = { 0 };
    REQUIRE(a->ops->state_save(a, &st) == 0);
    b2 = open_engine(model_a);
    REQUIRE(b2);
    REQUIRE(b2->ops->state_load(b2, st.p, st.len) == 0);
    struct tok_ids ha = held(a), hb = held(b2);
    CHECK(ha.n == hb.n && !memcmp(ha.v, hb.v, ha.n * sizeof *ha.v));
    struct buf ext = { 0 };
    buf_puts(&ext, p1);
    buf_puts(&ext, "</think>\n\nRed.<|im_end|>\n<|im_start|>user\nMore.<|im_end|>\n"
                   "<|im_start|>assistant\n");
    struct tok_ids te = encode(ext.p);
    REQUIRE(te.n > t1.n && !memcmp(te.v, t1.v, t1.n * sizeof *te.v));
    REQUIRE(gen(a, ext.p, -1, &c, &u, &stop, NULL) == 0);
    CHECK_INT(u.cached_tokens, (long)t1.n);
    float *xe = logits_copy(a, &n);
    REQUIRE(gen(b2, ext.p, -1, &c, &u, &stop, NULL) == 0);
    CHECK_INT(u.cached_tokens, (long)t1.n);
    CHECK_INT(u.prefill_tokens, (long)(te.n - t1.n));
    CHECK(same_logits(b2, xe, n));
    /* and sampling from there agrees */
    struct collect ca = { 0 }, cb = { 0 };
    REQUIRE(gen(a, ext.p, 4, &ca, &u, &stop, NULL) == 0);
    REQUIRE(gen(b2, ext.p, 4, &cb, &u, &stop, NULL) == 0);
    CHECK(ca.text.len == cb.text.len && !memcmp(ca.text.p, cb.text.p, ca.text.len));

    free(x1);
    free(xe);
    buf_free(&ca.text);
    buf_free(&cb.text);
    buf_free(&c.text);
    buf_free(&st);
    buf_free(&ext);
    buf_free(&shorter);
    tok_ids_free(&ha);
    tok_ids_free(&hb);
    tok_ids_free(&t1);
    tok_ids_free(&tq);
    tok_ids_free(&ts);
    tok_ids_free(&te);
    free(p1);
    free(q);
    cJSON_Delete(m1);
    cJSON_Delete(m2);
    be_close(a);
    be_close(b2);
}

/* state_load refuses another model's state and damaged bytes, leaving the context as it was. */
static void t_state_refused(void)
{
    NEED_MODEL();
    struct backend *a = open_engine(model_a), *o = open_engine(model_b);
    REQUIRE(a && o);
    const char *p = "<|im_start|>user\nHello there.<|im_end|>\n<|im_start|>assistant\n";
    struct collect c = { 0 };
    struct be_usage u;
    enum be_stop stop;
    REQUIRE(gen(a, p, -1, &c, &u, &stop, NULL) == 0);
    REQUIRE(gen(o, "<|im_start|>user\nOther.<|im_end|>\n", -1, &c, &u, &stop, NULL) == 0);
    long n;
    float *x = logits_copy(a, &n);
    struct tok_ids before = held(a);
    struct buf mine = { 0 }, other = { 0 };
    REQUIRE(a->ops->state_save(a, &mine) == 0);
    REQUIRE(o->ops->state_save(o, &other) == 0);

    CHECK(a->ops->state_load(a, other.p, other.len) == ERR_INVAL);
    CHECK(strstr(err_msg(), "another model") != NULL);
    CHECK(a->ops->state_load(a, mine.p, mine.len - 1) == ERR_INVAL);
    CHECK(a->ops->state_load(a, mine.p, 20) == ERR_INVAL);
    CHECK(a->ops->state_load(a, mine.p, 0) == ERR_INVAL);
    for (size_t off = 0; off < mine.len; off += mine.len / 7 + 1) {
        mine.p[off] ^= 0x40;
        CHECKF(a->ops->state_load(a, mine.p, mine.len) == ERR_INVAL, "flipped byte %zu", off);
        CHECK(!strchr(err_msg(), '\n'));
        mine.p[off] ^= 0x40;
    }
    struct tok_ids after = held(a);
    CHECK(after.n == before.n && !memcmp(after.v, before.v, before.n * sizeof *before.v));
    CHECK(same_logits(a, x, n));
    REQUIRE(gen(a, p, -1, &c, &u, &stop, NULL) == 0);
    CHECK_INT(u.prefill_tokens, 0);
    /* the intact bytes still load */
    CHECK(a->ops->state_load(a, mine.p, mine.len) == 0);
    free(x);
    tok_ids_free(&before);
    tok_ids_free(&after);
    buf_free(&mine);
    buf_free(&other);
    buf_free(&c.text);
    be_close(a);
    be_close(o);
}

/* An interrupted prefill keeps what it computed; the next call goes on from there. */
static void t_interrupted_prefill(void)
{
    NEED_MODEL();
    struct backend *b = open_engine(model_a);
    REQUIRE(b);
    struct buf p = { 0 };
    buf_puts(&p, "<|im_start|>user\n");
    for (int i = 0; i < 400; i++)
        buf_printf(&p, "word%d ", i);
    buf_puts(&p, "<|im_end|>\n<|im_start|>assistant\n");
    struct tok_ids t = encode(p.p);
    REQUIRE(t.n > 1100);
    volatile int flag = 0;
    struct collect c = { .intr_after = 2, .flag = &flag };
    struct be_usage u;
    enum be_stop stop;
    REQUIRE(gen(b, p.p, 8, &c, &u, &stop, &flag) == 0);
    CHECK(stop == BE_STOP_INTERRUPT);
    CHECK_INT(u.gen_tokens, 0);
    struct tok_ids h = held(b);
    CHECK(h.n > 0 && h.n < t.n && !memcmp(h.v, t.v, h.n * sizeof *h.v));
    CHECK_INT(u.prefill_tokens, (long)h.n);
    struct collect c2 = { 0 };
    REQUIRE(gen(b, p.p, -1, &c2, &u, &stop, NULL) == 0);
    CHECK_INT(u.cached_tokens, (long)h.n);
    CHECK_INT(u.prefill_tokens, (long)(t.n - h.n));
    /* interrupted before anything: nothing generated, the state untouched */
    flag = 1;
    struct collect c3 = { 0 };
    REQUIRE(gen(b, p.p, 8, &c3, &u, &stop, &flag) == 0);
    CHECK(stop == BE_STOP_INTERRUPT);
    CHECK_INT(u.gen_tokens, 0);
    /* the callback stops generation after the first piece */
    struct collect c4 = { .quit_after = 1 };
    REQUIRE(gen(b, p.p, 8, &c4, &u, &stop, NULL) == 0);
    CHECK(u.gen_tokens <= 1);
    CHECK(stop == (u.gen_tokens ? BE_STOP_INTERRUPT : BE_STOP_END));
    tok_ids_free(&h);
    tok_ids_free(&t);
    buf_free(&p);
    buf_free(&c4.text);
    be_close(b);
}

static void t_engine_errors(void)
{
    struct backend *b = NULL;
    struct be_config c = be_config_default();
    /* cuda: refused without a GPU; with one, the missing model is the error */
    int want = kern_cuda_device_count(NULL) > 0 ? ERR_INVAL : ERR_UNSUPPORTED;
    CHECK(be_open(&b, "cuda", &c) == want && !b);
    CHECK(strstr(err_msg(), "cuda") != NULL);
    CHECK(be_open(&b, "cpu", &c) == ERR_INVAL && !b); /* no model */
    c.model = "/nonexistent/lode-model";
    CHECK(be_open(&b, "auto", &c) < 0 && !b);
    CHECK(strstr(err_msg(), "backend cpu") != NULL);
    CHECK(be_open(&b, "tpu", &c) == ERR_INVAL && !b);
    CHECK(strstr(err_msg(), "tpu") != NULL);
    CHECK(be_open(&b, "script:", &c) == ERR_INVAL && !b);
    if (!tk)
        return;
    REQUIRE((b = open_engine(model_a)) != NULL);
    struct collect col = { 0 };
    struct be_usage u;
    enum be_stop stop;
    CHECK(gen(b, "", 4, &col, &u, &stop, NULL) == ERR_INVAL);
    CHECK(gen(b, "\xff", 4, &col, &u, &stop, NULL) == ERR_INVAL);
    be_close(b);
    /* a context limit smaller than the prompt */
    c.model = model_a;
    c.context = 4;
    REQUIRE(be_open(&b, "cpu", &c) == 0);
    CHECK(gen(b, "one two three four five six seven", 4, &col, &u, &stop, NULL) == ERR_INVAL);
    CHECK(gen(b, "one", 0, &col, &u, &stop, NULL) == 0);
    CHECK(stop == BE_STOP_LENGTH || stop == BE_STOP_END);
    const int32_t *t;
    long n, max;
    CHECK(b->ops->context(b, &t, &n, &max) == 0 && max == 4 && n <= 4);
    buf_free(&col.text);
    be_close(b);
}

/* ------------------------------------------------------------ script backend */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void t_script(void)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/lode-backend-%d-script.json", (int)getpid());
    const char *long_text = "<think>\nLet me think about ünïcödé ✓ — carefully.\n</think>\n\n"
                            "Here is the answer, which is long enough to need several pieces.";
    struct buf js = { 0 };
    buf_puts(&js, "[");
    buf_json_str(&js, long_text, strlen(long_text));
    buf_puts(&js, ", {\"text\": \"second one\", \"delay_ms\": 1}, \"third\"]");
    write_file(path, js.p);
    buf_free(&js);
    char spec[160];
    snprintf(spec, sizeof spec, "script:%s", path);
    struct backend *b = NULL;
    REQUIRE(be_open(&b, spec, NULL) == 0);
    CHECK_STR(b->name, "script");
    CHECK(b->caps == BE_CAP_PROMPT);
    CHECK(strstr(b->model_desc, "script.json") != NULL);

    char log[128];
    snprintf(log, sizeof log, "/tmp/lode-backend-%d-prompts.jsonl", (int)getpid());
    unlink(log);
    setenv("LODE_SCRIPT_PROMPTS", log, 1);
    struct collect c = { 0 };
    struct be_usage u;
    enum be_stop stop;
    REQUIRE(gen(b, "first \"prompt\"\n", 0, &c, &u, &stop, NULL) == 0);
    CHECK(stop == BE_STOP_END);
    CHECK(c.text.len == strlen(long_text) && !memcmp(c.text.p, long_text, c.text.len));
    CHECK(c.pieces > 3);
    CHECK(c.max_piece <= 16);
    CHECK(!c.bad_utf8);
    CHECK(u.prompt_tokens == 0 && u.gen_tokens == 0 && u.cached_tokens == 0);

    /* interrupted by the callback after one piece */
    struct collect c2 = { .quit_after = 1 };
    REQUIRE(gen(b, "second", 0, &c2, &u, &stop, NULL) == 0);
    CHECK(stop == BE_STOP_INTERRUPT);
    CHECK_INT(c2.pieces, 1);
    /* by the flag (set in the callback: seen before the next piece) */
    volatile int flag = 0;
    struct collect c3 = { .intr_after = 1, .flag = &flag };
    REQUIRE(gen(b, "third", 0, &c3, &u, &stop, &flag) == 0);
    CHECK(stop == BE_STOP_END); /* "third" is one piece: done before the check */
    CHECK_STR(c3.text.p, "third");
    /* past the end: empty generations */
    struct collect c4 = { 0 };
    REQUIRE(gen(b, "fourth", 0, &c4, &u, &stop, NULL) == 0);
    CHECK(stop == BE_STOP_END);
    CHECK_INT(c4.events, 0);
    be_close(b);
    unsetenv("LODE_SCRIPT_PROMPTS");

    /* the prompts, one JSON line each */
    struct buf lb = { 0 };
    REQUIRE(fs_read_file(log, 1 << 20, &lb) == 0);
    int lines = 0;
    for (char *s = lb.p, *nl; s && (nl = strchr(s, '\n')); s = nl + 1, lines++) {
        *nl = 0;
        cJSON *j = cJSON_Parse(s);
        cJSON *pr = cJSON_GetObjectItem(j, "prompt");
        CHECK(cJSON_IsString(pr));
        if (lines == 0 && cJSON_IsString(pr))
            CHECK_STR(pr->valuestring, "first \"prompt\"\n");
        cJSON_Delete(j);
    }
    CHECK_INT(lines, 4);
    buf_free(&lb);
    unlink(log);

    /* a delayed generation interrupted by the flag mid-stream */
    write_file(path, "[{\"text\": \"aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbcccccccccccccccc\", "
                     "\"delay_ms\": 5}]");
    REQUIRE(be_open(&b, spec, NULL) == 0);
    flag = 0;
    struct collect c5 = { .intr_after = 2, .flag = &flag };
    REQUIRE(gen(b, "x", 0, &c5, &u, &stop, &flag) == 0);
    CHECK(stop == BE_STOP_INTERRUPT);
    CHECK_INT(c5.pieces, 2);
    CHECK_STR(c5.text.p, "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb");
    be_close(b);
    buf_free(&c.text);
    buf_free(&c2.text);
    buf_free(&c3.text);
    buf_free(&c5.text);
    unlink(path);
}

/* Two checkpoints of the same layout and other weights (another seed) have
 * different identities: one's saved state is refused by the other. */
static void t_model_id_weights(void)
{
    NEED_MODEL();
    char dir[128];
    REQUIRE(make_model_seed(dir, sizeof dir, "seed2", 0, 2) == 0);
    struct backend *a = open_engine(model_a), *o = open_engine(dir);
    REQUIRE(a && o);
    struct collect c = { 0 };
    struct be_usage u;
    enum be_stop stop;
    REQUIRE(gen(o, "<|im_start|>user\nOther.<|im_end|>\n", -1, &c, &u, &stop, NULL) == 0);
    struct buf other = { 0 };
    REQUIRE(o->ops->state_save(o, &other) == 0);
    CHECK(a->ops->state_load(a, other.p, other.len) == ERR_INVAL);
    CHECK(strstr(err_msg(), "another model") != NULL);
    buf_free(&other);
    buf_free(&c.text);
    be_close(a);
    be_close(o);
    char cmd[192];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

static void t_script_malformed(void)
{
    char path[128], spec[160];
    unsetenv("LODE_SCRIPT_PROMPTS"); /* in case t_script left early */
    snprintf(path, sizeof path, "/tmp/lode-backend-%d-bad.json", (int)getpid());
    snprintf(spec, sizeof spec, "script:%s", path);
    static const char *bad[][2] = {
        { "[\"a\",\n  nope]", ":2:" },
        { "{\"text\": \"a\"}", "JSON array" },
        { "[1]", "element 0" },
        { "[\"a\", {\"txt\": \"b\"}]", "element 1" },
        { "[{\"text\": \"a\", \"delay_ms\": -1}]", "delay_ms" },
        { "[\"\xff\"]", "UTF-8" },
        { "", ":1:1:" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i][0]);
        struct backend *b = NULL;
        CHECKF(be_open(&b, spec, NULL) == ERR_INVAL && !b, "case %zu", i);
        const char *m = err_msg();
        CHECKF(strstr(m, path) && strstr(m, bad[i][1]) && !strchr(m, '\n'), "case %zu: %s", i, m);
    }
    unlink(path);
    struct backend *b = NULL;
    CHECK(be_open(&b, spec, NULL) < 0 && !b);
    CHECK(strstr(err_msg(), path) != NULL);
    /* an empty array: every generation is empty */
    write_file(path, "[]");
    REQUIRE(be_open(&b, spec, NULL) == 0);
    struct collect c = { 0 };
    struct be_usage u;
    enum be_stop stop;
    CHECK(gen(b, "hi", 0, &c, &u, &stop, NULL) == 0 && stop == BE_STOP_END && c.events == 0);
    be_close(b);
    unlink(path);
}

static void rm_model(const char *dir)
{
    static const char *files[] = { "config.json", "generation_config.json", "model.safetensors",
                                   "tokenizer.json" };
    char p[256];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

int main(void)
{
    if (fs_exists(REAL_TOK) && make_model(model_a, sizeof model_a, "a", 0) == 0 &&
        make_model(model_b, sizeof model_b, "b", 1) == 0 && tok_open(&tk, REAL_TOK) == 0 &&
        tpl_open_builtin(&tp) == 0) {
    } else {
        printf("# engine tests skipped: %s\n", err_msg());
        tok_close(tk);
        tk = NULL;
    }
    TEST_RUN(t_multiturn);
    TEST_RUN(t_thinking_snapshot);
    TEST_RUN(t_tool_loop_reuse);
    TEST_RUN(t_restore_logits);
    TEST_RUN(t_state_refused);
    TEST_RUN(t_model_id_weights);
    TEST_RUN(t_interrupted_prefill);
    TEST_RUN(t_engine_errors);
    TEST_RUN(t_script);
    TEST_RUN(t_script_malformed);
    tok_close(tk);
    tpl_close(tp);
    if (model_a[0])
        rm_model(model_a);
    if (model_b[0])
        rm_model(model_b);
    TEST_END();
}
