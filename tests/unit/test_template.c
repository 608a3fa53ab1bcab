/*
 * test_template.c - the chat template API and the Jinja interpreter's Python
 * semantics (expected strings checked against Python 3 / Jinja2 3.1.6 as
 * transformers sets it up), error positions, limits, and both input paths
 * (cJSON and JSON text).
 */
#include "common/err.h"
#include "engine/template.h"
#include "testhelp.h"

#include <cjson/cJSON.h>

/* Renders src over messages JSON text; returns the output (free) or NULL with err_msg(). */
static char *render(const char *src, const char *msgs, const struct tpl_opts *o)
{
    struct tpl *t;
    if (tpl_open(&t, src, strlen(src)) < 0)
        return NULL;
    char *out = (char *)0x1; /* poisoned: must be replaced or NULLed */
    size_t n = 12345;
    struct tpl_opts def = { 0 };
    int rc = tpl_render_json(t, msgs ? msgs : "[]", strlen(msgs ? msgs : "[]"), "m", NULL, 0, NULL,
                             o ? o : &def, &out, &n);
    tpl_close(t);
    if (rc < 0) {
        CHECK(out == NULL);
        return NULL;
    }
    CHECK(out && strlen(out) == n);
    return out;
}

#define EXPECT(src, msgs, want)                                                                    \
    do {                                                                                           \
        char *got_ = render(src, msgs, NULL);                                                      \
        if (!got_)                                                                                 \
            printf("    error: %s\n", err_msg());                                                  \
        CHECK_STR(got_, want);                                                                     \
        free(got_);                                                                                \
    } while (0)

#define EXPECT_ERR(src, msgs, needle)                                                              \
    do {                                                                                           \
        char *got_ = render(src, msgs, NULL);                                                      \
        CHECKF(!got_, "rendered '%s'", got_);                                                      \
        CHECKF(strstr(err_msg(), needle), "error '%s' lacks '%s'", err_msg(), needle);             \
        free(got_);                                                                                \
    } while (0)

static void t_python_str(void)
{
    EXPECT("{{ 1.0 }} {{ 1e16 }} {{ 1e-5 }} {{ 0.1+0.2 }} {{ 10/4 }} {{ -7//2 }} {{ -7%3 }}", NULL,
           "1.0 1e+16 1e-05 0.30000000000000004 2.5 -4 2");
    EXPECT("{{ True }} {{ none }} {{ [1,'a',none,true,{'k':'v'}] }} {{ ('a',) }}", NULL,
           "True None [1, 'a', None, True, {'k': 'v'}] ('a',)");
    EXPECT("{{ \"it's\"|list }}", NULL, "['i', 't', \"'\", 's']");
}

static void t_tojson(void)
{
    EXPECT("{{ {'a':1,'b':[1.5,{'c':none}],'d':'é\\n\"\\x01'}|tojson }}", NULL,
           "{\"a\": 1, \"b\": [1.5, {\"c\": null}], \"d\": \"é\\n\\\"\\u0001\"}");
    EXPECT("{{ [1,2]|tojson(indent=2) }}", NULL, "[\n  1,\n  2\n]");
    /* JSON text input keeps 1.0 a float and key order as written */
    EXPECT("{{ messages[0]|tojson }}", "[{\"z\": 1.0, \"a\": 2, \"u\": \"\\u00fc\"}]",
           "{\"z\": 1.0, \"a\": 2, \"u\": \"ü\"}");
}

static void t_strings(void)
{
    EXPECT("{{ 'abc'[::-1] }}|{{ 'héllo'[1:3] }}|{{ [1,2,3,4][1::2] }}|{{ 'abc'[-1] }}", NULL,
           "cba|él|[2, 4]|c");
    EXPECT("{{ '  x  '|trim }}|{{ 'xxhixx'.strip('x') }}|{{ '\\n\\nab\\n'.lstrip('\\n') }}|", NULL,
           "x|hi|ab\n|");
    EXPECT("{{ 'a b  c'.split() }} {{ 'a,b,,c'.split(',') }} {{ 'abc'.endswith(('x','c')) }}", NULL,
           "['a', 'b', 'c'] ['a', 'b', '', 'c'] True");
    EXPECT("{{ 'a' ~ 1 ~ none ~ x }}|{{ 'a' in 'cat' }}|{{ 'héllo'|length }}", NULL,
           "a1None|True|5");
}

static void t_control(void)
{
    EXPECT("{% for x in [1,2,3] %}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}"
           "{{ loop.previtem }};{% endfor %}",
           NULL, "0TrueFalse;1FalseFalse1;2FalseTrue2;");
    EXPECT("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}", NULL,
           "21");
    EXPECT("{% set ns = namespace(a=1) %}{% for i in range(3) %}{% set ns.a = ns.a * 2 %}"
           "{% endfor %}{{ ns.a }}",
           NULL, "8");
    EXPECT("{% macro f(a, b='d') %}[{{ a }}|{{ b }}]{% endmacro %}{{ f(1) }}{{ f(b=2, a=3) }}",
           NULL, "[1|d][3|2]");
    EXPECT("{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}"
           "{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}",
           NULL, "13");
    EXPECT("{{ x is defined }} {{ [] is iterable }} {{ {} is mapping }} {{ 1 is true }}", NULL,
           "False True True False");
}

static void t_whitespace(void)
{
    EXPECT("  {% if true %}\n    yes\n  {% endif %}\n  {%- if true %} a {% endif -%}  \n  b\n",
           NULL, "    yes\n a b");
    EXPECT("a\r\nb\n", NULL, "a\nb");
    EXPECT("<{{- '  x  ' -}}>\n{# c #}\n  {% raw %}{{ y }}{% endraw %}", NULL, "<  x  >\n{{ y }}");
}

static void t_errors(void)
{
    EXPECT_ERR("ok\n  {{ x | nosuch }}", NULL, "template:2:10: unknown filter 'nosuch'");
    EXPECT_ERR("{% if x %}", NULL, "template:1:11: unexpected end of template");
    EXPECT_ERR("{{ 1 +* 2 }}", NULL, "template:1:7:");
    EXPECT_ERR("\n{{ raise_exception('bad ' ~ 1) }}", NULL, "template:2:4: raise_exception: bad 1");
    EXPECT_ERR("{{ 'a' + 1 }}", NULL, "unsupported operand");
    EXPECT_ERR("{{ x.y }}", NULL, "'x' is undefined");
    EXPECT_ERR("{{ 1 }}", "[1, ", "m:1:5:");
    EXPECT_ERR("{{ 1 }}", "{\"tools\": []}", "messages");
    EXPECT_ERR("\xff", NULL, "invalid UTF-8");
}

static void t_limits(void)
{
    struct tpl_opts o = { .max_output = 1000, .max_steps = 5000, .max_depth = 50 };
    char *s = render("{% for i in range(10000) %}x{% endfor %}", NULL, &o);
    CHECK(!s);
    CHECK(strstr(err_msg(), "limit"));
    s = render("{% macro r() %}{{ r() }}{% endmacro %}{{ r() }}", NULL, &o);
    CHECK(!s);
    CHECK(strstr(err_msg(), "nesting limit"));
    o.max_output = 0;
    o.max_memory = 1 << 20;
    s = render("{% set ns = namespace(s='x') %}{% for i in range(4000) %}"
               "{% set ns.s = ns.s + ns.s %}{% endfor %}",
               NULL, &o);
    CHECK(!s);
    /* deep nesting in the source is a parse error, not a stack overflow */
    char deep[4000];
    size_t k = 0;
    k += (size_t)snprintf(deep, sizeof deep, "{{ ");
    for (int i = 0; i < 1000; i++)
        deep[k++] = '(';
    deep[k] = 0;
    s = render(deep, NULL, NULL);
    CHECK(!s);
}

static void t_builtin_and_cjson(void)
{
    struct tpl *t;
    REQUIRE(tpl_open_builtin(&t) == 0);
    cJSON *m = cJSON_Parse("[{\"role\":\"user\",\"content\":\"hi\"},"
                           "{\"role\":\"assistant\",\"content\":\"ok\",\"reasoning\":\"why\"}]");
    REQUIRE(m);
    struct tpl_opts o = { .add_generation_prompt = 1,
                          .enable_thinking = TPL_FALSE,
                          .preserve_thinking = TPL_TRUE };
    char *out;
    size_t n;
    REQUIRE(tpl_render(t, m, NULL, &o, &out, &n) == 0);
    /* `reasoning` is aliased to reasoning_content, as transformers does */
    CHECK_STR(out,
              "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\nwhy\n</think>\n\n"
              "ok<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
    free(out);
    cJSON_Delete(m);
    tpl_close(t);
    tpl_close(NULL);
}

/* The built-in template is the official Qwen3.6 one, byte for byte (the
 * committed copy in the fuzz seeds is the file from the checkpoint). */
static void t_builtin_text(void)
{
    FILE *f = fopen("tests/fuzz/fuzz_template/qwen36.jinja", "rb");
    if (!f) {
        SKIP("tests/fuzz/fuzz_template/qwen36.jinja not found (run from the repository root)");
    }
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    CHECK_INT(strlen(tpl_builtin_text()), n);
    CHECK(strcmp(tpl_builtin_text(), buf) == 0);
}

int main(void)
{
    TEST_RUN(t_python_str);
    TEST_RUN(t_tojson);
    TEST_RUN(t_strings);
    TEST_RUN(t_control);
    TEST_RUN(t_whitespace);
    TEST_RUN(t_errors);
    TEST_RUN(t_limits);
    TEST_RUN(t_builtin_and_cjson);
    TEST_RUN(t_builtin_text);
    TEST_END();
}
