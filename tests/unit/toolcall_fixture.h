/*
 * toolcall_fixture.h - shared by tests/unit/test_toolcall.c and
 * tests/fuzz/fuzz_toolcall.c: the tool list the cases use, and a runner that
 * parses one input with a given chunking and returns a canonical record of
 * the result and the event stream (text events merged), so two runs can be
 * compared byte for byte.
 */
#ifndef LODE_TEST_TOOLCALL_FIXTURE_H
#define LODE_TEST_TOOLCALL_FIXTURE_H

#include "common/buf.h"
#include "tools/toolcall.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Both tool shapes: OpenAI {"type","function"} and bare {"name","parameters"}. */
static const char tcf_tools_json[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"w\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"city\":{\"type\":\"string\"},\"unit\":{\"type\":\"string\",\"enum\":[\"c\",\"f\"]},"
    "\"days\":{\"type\":\"integer\"}},\"required\":[\"city\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"write_file\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"content\":{\"type\":"
    "\"string\"}}}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"edit_file\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"old_string\":{\"type\":"
    "\"string\"},\"new_string\":{\"type\":\"string\"},\"replace_all\":{\"type\":\"boolean\"}}}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"calc\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"x\":{\"type\":\"number\"},\"n\":{\"type\":\"integer\"},"
    "\"flag\":{\"type\":\"boolean\"},\"opts\":{\"type\":\"object\"},\"items\":{\"type\":"
    "\"array\"},\"maybe\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]},"
    "\"count\":{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"null\"}]},"
    "\"cfg\":{\"anyOf\":[{\"type\":\"object\"},{\"type\":\"null\"}]},"
    "\"lst\":{\"type\":[\"array\",\"null\"]},\"any\":{\"description\":\"no type\"},"
    "\"lit\":{\"type\":\"tuple\"}}}}},"
    "{\"name\":\"run_shell\",\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"command\":{\"type\":\"string\"},\"timeout\":{\"type\":\"integer\"}}}},"
    "{\"name\":\"todo\"}]";

struct tcf_rec {
    struct buf ev; /* canonical event record */
    int last_kind; /* kind of the last text event, -1 after a non-text one */
    struct buf recon_reasoning, recon_content; /* text rebuilt from events */
};

static void tcf_on_event(void *ud, const struct tc_event *e)
{
    struct tcf_rec *r = ud;
    if (e->kind == TC_EV_REASONING || e->kind == TC_EV_CONTENT) {
        if (r->last_kind != (int)e->kind)
            buf_puts(&r->ev, e->kind == TC_EV_REASONING ? "\n[R]" : "\n[C]");
        buf_append(&r->ev, e->text, e->len);
        buf_append(e->kind == TC_EV_REASONING ? &r->recon_reasoning : &r->recon_content, e->text,
                   e->len);
        r->last_kind = (int)e->kind;
        return;
    }
    r->last_kind = -1;
    if (e->kind == TC_EV_REASONING_TO_CONTENT) {
        buf_puts(&r->ev, "\n[R->C]");
        struct buf t = r->recon_content;
        r->recon_content = r->recon_reasoning;
        r->recon_reasoning = t;
        buf_reset(&r->recon_reasoning);
        return;
    }
    static const char *const k[] = { "R", "C", "RC", "BEGIN", "ARG", "END", "ERROR" };
    buf_printf(&r->ev, "\n[%s %d %s %s", k[e->kind], e->index, e->name ? e->name : "-",
               e->arg ? e->arg : "-");
    if (e->text) {
        buf_puts(&r->ev, " ");
        buf_append(&r->ev, e->text, e->len);
    }
    if (e->value) {
        char *v = cJSON_PrintUnformatted(e->value);
        buf_printf(&r->ev, " %s", v ? v : "?");
        free(v);
    }
    buf_puts(&r->ev, "]");
}

/* Chunk boundaries: whole (mode 0), byte by byte (1), one split at `arg`
 * (2), random sizes 1..arg from seed (3), one line per chunk (4). */
struct tcf_split {
    int mode;
    size_t arg;
    uint64_t seed;
};

static uint64_t tcf_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Parses in[0..n) and writes into *out the result JSON, a line, and the
 * event record. Returns 0, or -1 when something is inconsistent (the text
 * rebuilt from events differs from the result) or an API call failed;
 * *why says what. */
static int tcf_run(const struct tc_tools *tools, const struct tc_opts *o, const char *in, size_t n,
                   struct tcf_split sp, struct buf *out, const char **why)
{
    struct tcf_rec r;
    memset(&r, 0, sizeof r);
    r.last_kind = -1;
    struct tc_parser *p = NULL;
    int rc = -1;
    *why = "tc_new failed";
    if (tc_new(&p, tools, o, tcf_on_event, &r) < 0)
        goto done;
    *why = "tc_feed failed";
    size_t off = 0;
    uint64_t seed = sp.seed;
    while (off < n) {
        size_t k = n - off;
        if (sp.mode == 1)
            k = 1;
        else if (sp.mode == 2 && off < sp.arg)
            k = sp.arg - off;
        else if (sp.mode == 3)
            k = 1 + (size_t)(tcf_rand(&seed) % (sp.arg ? sp.arg : 1));
        else if (sp.mode == 4) { /* every line in its own delta, as vLLM's hardest case */
            const char *nl = memchr(in + off, '\n', n - off);
            k = nl ? (size_t)(nl - (in + off)) + 1 : n - off;
        }
        if (k > n - off)
            k = n - off;
        if (tc_feed(p, in + off, k) < 0)
            goto done;
        off += k;
    }
    *why = "tc_finish failed";
    if (tc_finish(p) < 0)
        goto done;
    const struct tc_result *res = tc_result(p);
    *why = "tc_result_json failed";
    if (tc_result_json(res, out) < 0)
        goto done;
    buf_puts(out, "\n--- events");
    buf_append(out, r.ev.p ? r.ev.p : "", r.ev.len);
    *why = "content rebuilt from events differs from the result";
    if (r.recon_content.len != res->content.len ||
        (res->content.len && memcmp(r.recon_content.p, res->content.p, res->content.len)))
        goto done;
    *why = "reasoning rebuilt from events differs from the result";
    if (r.recon_reasoning.len != res->reasoning.len ||
        (res->reasoning.len && memcmp(r.recon_reasoning.p, res->reasoning.p, res->reasoning.len)))
        goto done;
    *why = NULL;
    rc = 0;
done:
    tc_free(p);
    buf_free(&r.ev);
    buf_free(&r.recon_content);
    buf_free(&r.recon_reasoning);
    return rc;
}

#endif
