/*
 * test_toolcall.c - the Qwen3 XML tool-call parser (tools/toolcall.h).
 *
 * A table of model outputs (every malformed and adversarial case vLLM's
 * qwen3_coder/qwen3_xml tests try, engineering-style.md B4 and model-spec.md
 * 5.2, plus lode's own choices), each with the expected reasoning, content,
 * calls and rejected calls; then the split-point property on every case: fed
 * whole, byte by byte, cut at every single point,
 * one line per chunk and in random chunks, the result and the event stream
 * must be identical.
 *
 * `test_toolcall --write-seeds DIR` writes the table's inputs as the fuzz
 * seed corpus (tests/fuzz/fuzz_toolcall/), in the fuzz target's format.
 */
#include "testhelp.h"

#include "common/err.h"
#include "common/text.h"
#include "tests/unit/toolcall_fixture.h"

#include <errno.h>
#include <sys/stat.h>

/* ---- building blocks of model output ---- */
#define TCALL(name) "<tool_call>\n<function=" name ">\n"
#define PARAM(k, v) "<parameter=" k ">\n" v "\n</parameter>\n"
#define ENDC "</function>\n</tool_call>"

struct tcase {
    const char *name;
    int think;    /* opts.starts_in_reasoning */
    int no_tools; /* parse without a tool list */
    const char *in;
    const char *reasoning;
    const char *content;
    const char *calls;  /* JSON array of {"name", "arguments"} */
    const char *errors; /* JSON array of the rejected calls' names, NULL = none */
    const char *errmsg; /* a substring of the first error's message */
};

static const struct tcase cases[] = {
    /* ---- no call, plain text ---- */
    { "plain text stays content", 0, 0, "The weather is nice.\nNo tools needed.", "",
      "The weather is nice.\nNo tools needed.", "[]", NULL, NULL },
    { "empty output", 0, 0, "", "", "", "[]", NULL, NULL },
    { "text mentioning tags mid-line", 0, 0,
      "Use <function=x> and <parameter=y> tags; </function> closes.", "",
      "Use <function=x> and <parameter=y> tags; </function> closes.", "[]", NULL, NULL },
    { "inline empty tool_call keeps narrative", 0, 0,
      "Wrap calls in <tool_call>example</tool_call> tags.\n\n" TCALL("get_weather")
          PARAM("city", "Paris") ENDC,
      "", "Wrap calls in <tool_call>example</tool_call> tags.",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}]", NULL, NULL },
    { "hermes json inside tool_call is text", 0, 0,
      "<tool_call>\n{\"name\": \"get_weather\"}\n</tool_call>", "",
      "<tool_call>\n{\"name\": \"get_weather\"}\n</tool_call>", "[]", NULL, NULL },
    { "line-start function tag followed by prose is text", 0, 0,
      "Syntax:\n<function=get_weather> starts a call.", "",
      "Syntax:\n<function=get_weather> starts a call.", "[]", NULL, NULL },
    { "line-start function tag with a bad name is text", 0, 0, "Syntax:\n<function=NAME here>\nok",
      "", "Syntax:\n<function=NAME here>\nok", "[]", NULL, NULL },

    /* ---- the normal shapes ---- */
    { "one call", 0, 0, TCALL("get_weather") PARAM("city", "Dallas") PARAM("days", "3") ENDC, "",
      "", "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Dallas\",\"days\":3}}]", NULL,
      NULL },
    { "string args are not double-serialized", 0, 0,
      TCALL("get_weather") PARAM("city", "hello world") ENDC, "", "",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"hello world\"}}]", NULL, NULL },
    { "content before the call", 0, 0,
      "Sure! Let me check the weather.\n\n" TCALL("get_weather") PARAM("city", "Dallas") ENDC, "",
      "Sure! Let me check the weather.",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Dallas\"}}]", NULL, NULL },
    { "two parallel calls", 0, 0,
      TCALL("get_weather") PARAM("city", "Dallas") ENDC "\n" TCALL("get_weather")
          PARAM("city", "Orlando") ENDC,
      "", "",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Dallas\"}},"
      "{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Orlando\"}}]",
      NULL, NULL },
    { "text between and after calls", 0, 0,
      "First.\n" TCALL("get_weather") PARAM("city", "A") ENDC "\nThen.\n" TCALL("get_weather")
          PARAM("city", "B") ENDC "\nDone.",
      "", "First.\nThen.\nDone.",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"A\"}},"
      "{\"name\":\"get_weather\",\"arguments\":{\"city\":\"B\"}}]",
      NULL, NULL },
    { "trailing text right after the final close", 0, 0,
      TCALL("get_weather") PARAM("city", "A") ENDC "Anything else?", "", "Anything else?",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"A\"}}]", NULL, NULL },
    { "function without tool_call wrapper", 0, 0,
      "<function=get_weather>\n<parameter=city>\nDallas\n</parameter>\n</function>", "", "",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Dallas\"}}]", NULL, NULL },
    { "unwrapped call after text", 0, 0,
      "Checking.\n<function=get_weather>\n<parameter=city>\nRome\n</parameter>\n</function>\nOk.",
      "", "Checking.\nOk.", "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Rome\"}}]", NULL,
      NULL },
    { "call with no parameters", 0, 0, TCALL("todo") ENDC, "", "",
      "[{\"name\":\"todo\",\"arguments\":{}}]", NULL, NULL },
    { "all on one line", 0, 0,
      "<tool_call><function=get_weather><parameter=city>Dallas</parameter><parameter=days>2"
      "</parameter></function></tool_call>",
      "", "", "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Dallas\",\"days\":2}}]", NULL,
      NULL },
    { "empty value", 0, 0,
      TCALL("write_file") PARAM("path", "a") "<parameter=content>\n"
                                             "</parameter>\n" ENDC,
      "", "", "[{\"name\":\"write_file\",\"arguments\":{\"path\":\"a\",\"content\":\"\"}}]", NULL,
      NULL },
    { "only one leading and trailing newline stripped", 0, 0,
      TCALL("write_file") PARAM("path", "a") PARAM("content", "\n  x\n\n") ENDC, "", "",
      "[{\"name\":\"write_file\",\"arguments\":{\"path\":\"a\",\"content\":\"\\n  x\\n\\n\"}}]",
      NULL, NULL },
    { "multi-line code value kept verbatim", 0, 0,
      TCALL("write_file") PARAM("path", "m.c")
          PARAM("content", "int main(void)\n{\n\treturn a < b && c > d;\n}") ENDC,
      "", "",
      "[{\"name\":\"write_file\",\"arguments\":{\"path\":\"m.c\",\"content\":"
      "\"int main(void)\\n{\\n\\treturn a < b && c > d;\\n}\"}}]",
      NULL, NULL },
    { "repeating the current parameter's tag is value text (as qwen3_xml)", 0, 0,
      TCALL("get_weather") PARAM("city", "A") PARAM("city", "B") ENDC, "", "",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"A\\n</parameter>\\n"
      "<parameter=city>\\nB\"}}]",
      NULL, NULL },
    { "parameter not in the schema is a string", 0, 0,
      TCALL("get_weather") PARAM("extra", "5") PARAM("city", "A") ENDC, "", "",
      "[{\"name\":\"get_weather\",\"arguments\":{\"extra\":\"5\",\"city\":\"A\"}}]", NULL, NULL },

    { "calls back to back on one line", 0, 0,
      TCALL("get_weather") PARAM("city", "A") ENDC TCALL("get_weather") PARAM("city", "B") ENDC, "",
      "",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"A\"}},"
      "{\"name\":\"get_weather\",\"arguments\":{\"city\":\"B\"}}]",
      NULL, NULL },
    { "html and a partial tag at the end stay content", 0, 0, "a < b <c> <tool", "",
      "a < b <c> <tool", "[]", NULL, NULL },
    { "a bare <tool_call> at the end is content", 0, 0, "text\n<tool_call>\n", "",
      "text\n<tool_call>", "[]", NULL, NULL },
    { "overlong function name is rejected", 0, 0,
      "<tool_call>\n<function="
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      ">\n" ENDC,
      "", "", "[]",
      "[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]",
      "malformed function tag" },

    /* ---- missing closers ---- */
    { "missing </parameter> before the next parameter", 0, 0,
      TCALL("get_weather") "<parameter=city>\nDallas\n<parameter=unit>\nf\n</parameter>\n" ENDC, "",
      "", "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Dallas\",\"unit\":\"f\"}}]", NULL,
      NULL },
    { "missing </parameter> before </function>", 0, 0,
      TCALL("get_weather") "<parameter=city>\nDallas\n" ENDC, "", "",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Dallas\"}}]", NULL, NULL },
    { "missing </parameter> and </function>", 0, 0,
      TCALL("get_weather") "<parameter=city>\nDallas\n</tool_call>", "", "",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Dallas\"}}]", NULL, NULL },
    { "missing </function>", 0, 0, TCALL("get_weather") PARAM("city", "Dallas") "</tool_call>\nok",
      "", "ok", "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Dallas\"}}]", NULL, NULL },
    { "missing </tool_call> at the end", 0, 0,
      TCALL("get_weather") PARAM("city", "Dallas") "</function>", "", "",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Dallas\"}}]", NULL, NULL },
    { "missing </function></tool_call> at the end", 0, 0,
      TCALL("get_weather") PARAM("city", "Dallas"), "", "",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Dallas\"}}]", NULL, NULL },
    { "next call starts without closers", 0, 0,
      TCALL("get_weather") PARAM("city", "A") TCALL("get_weather") PARAM("city", "B") ENDC, "", "",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"A\"}},"
      "{\"name\":\"get_weather\",\"arguments\":{\"city\":\"B\"}}]",
      NULL, NULL },
    { "value cut off by the end is not run", 0, 0,
      TCALL("write_file") PARAM("path", "a") "<parameter=content>\nhalf a fi", "", "", "[]",
      "[\"write_file\"]", "ended inside parameter 'content'" },
    { "</parameter> then the end closes the value", 0, 0,
      TCALL("write_file") PARAM("path", "a") "<parameter=content>\nabc\n</parameter>", "", "",
      "[{\"name\":\"write_file\",\"arguments\":{\"path\":\"a\",\"content\":\"abc\"}}]", NULL,
      NULL },
    { "parameter tag cut off", 0, 0, TCALL("write_file") "<parameter=pa", "", "", "[]",
      "[\"write_file\"]", "ended inside" },
    { "function tag cut off", 0, 0, "<tool_call>\n<function=get_wea", "", "", "[]", "[\"get_wea\"]",
      "ended inside the function tag" },
    { "unwrapped function tag cut off is text", 0, 0, "See:\n<function=get_wea", "",
      "See:\n<function=get_wea", "[]", NULL, NULL },

    /* ---- malformed and rejected calls ---- */
    { "function tag without > is rejected, the good call survives", 0, 0,
      "<tool_call>\n<function=get_weather\n<parameter=city>\nX\n</parameter>\n" ENDC
      "\n" TCALL("get_weather") PARAM("city", "Y") ENDC,
      "", "", "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Y\"}}]", "[\"get_weather\"]",
      "malformed function tag" },
    { "phantom call from an unrendered template", 0, 0,
      "<tool_call>\n<function={{ tc.name }}>\n<parameter=x>\n1\n</parameter>\n" ENDC
      "\n" TCALL("write_file") PARAM("path", "a.txt") PARAM("content", "hi") ENDC,
      "", "", "[{\"name\":\"write_file\",\"arguments\":{\"path\":\"a.txt\",\"content\":\"hi\"}}]",
      "[\"\"]", "malformed function tag" },
    { "unknown tool is an error, never a call", 0, 0, TCALL("rm_rf") PARAM("path", "/") ENDC, "",
      "", "[]", "[\"rm_rf\"]", "unknown tool 'rm_rf'" },
    { "name with a space is rejected", 0, 0,
      "<tool_call>\n<function=get weather>\n" PARAM("city", "A") ENDC, "", "", "[]", "[\"get\"]",
      "malformed" },
    { "empty function name is rejected", 0, 0, "<tool_call>\n<function=>\n" ENDC, "", "", "[]",
      "[\"\"]", "malformed" },
    { "malformed parameter tag rejects the call", 0, 0,
      TCALL("get_weather") "<parameter=ci ty>\nA\n</parameter>\n" ENDC, "", "", "[]",
      "[\"get_weather\"]", "malformed parameter tag" },
    { "whitespace run too long after <tool_call> is text", 0, 0,
      "<tool_call>                                                                            "
      "                                                                                       "
      "                                                                                       "
      "                                                                                       "
      "<function=get_weather>\n",
      "",
      "<tool_call>                                                                            "
      "                                                                                       "
      "                                                                                       "
      "                                                                                       "
      "<function=get_weather>",
      "[]", NULL, NULL },

    /* ---- structural tags inside values ---- */
    { "literal tags mid-line in a string value", 0, 0,
      TCALL("write_file") PARAM("path", "t.md")
          PARAM("content", "Use <tool_call> then <parameter=query> ... </parameter> and "
                           "</function> inline.") ENDC,
      "", "",
      "[{\"name\":\"write_file\",\"arguments\":{\"path\":\"t.md\",\"content\":\"Use <tool_call> "
      "then <parameter=query> ... </parameter> and </function> inline.\"}}]",
      NULL, NULL },
    { "closer and out-of-schema parameter on their own lines stay text", 0, 0,
      TCALL("write_file") PARAM("path", "x.py")
          PARAM("content", "a = 1\n</parameter>\n<parameter=new_string>\nb = 2") ENDC,
      "", "",
      "[{\"name\":\"write_file\",\"arguments\":{\"path\":\"x.py\",\"content\":\"a = 1\\n"
      "</parameter>\\n<parameter=new_string>\\nb = 2\"}}]",
      NULL, NULL },
    { "literal parameter named like a given real parameter", 0, 0,
      TCALL("write_file") PARAM("path", "f.xml")
          PARAM("content", "<parameter=path>\nother\n</parameter>\nend") ENDC,
      "", "",
      "[{\"name\":\"write_file\",\"arguments\":{\"path\":\"f.xml\",\"content\":"
      "\"<parameter=path>\\nother\\n</parameter>\\nend\"}}]",
      NULL, NULL },
    { "nested literal tool call gives exactly one call", 0, 0,
      TCALL("write_file") PARAM("path", "fixture.txt")
          PARAM("content", TCALL("get_weather") PARAM("city", "Nested") ENDC) ENDC,
      "", "",
      "[{\"name\":\"write_file\",\"arguments\":{\"path\":\"fixture.txt\",\"content\":"
      "\"<tool_call>\\n<function=get_weather>\\n<parameter=city>\\nNested\\n</parameter>\\n"
      "</function>\\n</tool_call>\"}}]",
      NULL, NULL },
    { "nested literal with the current parameter's name", 0, 0,
      TCALL("write_file") PARAM("path", "p") PARAM(
          "content", TCALL("write_file") PARAM("path", "q") PARAM("content", "inner") ENDC) ENDC,
      "", "",
      "[{\"name\":\"write_file\",\"arguments\":{\"path\":\"p\",\"content\":"
      "\"<tool_call>\\n<function=write_file>\\n<parameter=path>\\nq\\n</parameter>\\n"
      "<parameter=content>\\ninner\\n</parameter>\\n</function>\\n</tool_call>\"}}]",
      NULL, NULL },
    { "qwen-code freeze: second call embeds a nested call", 0, 0,
      TCALL("write_file") PARAM("path", "a.txt") PARAM("content", "hello") ENDC
      "\n" TCALL("write_file") PARAM("path", "b.txt")
          PARAM("content", TCALL("run_shell") PARAM("cmd", "ls") ENDC) ENDC,
      "", "",
      "[{\"name\":\"write_file\",\"arguments\":{\"path\":\"a.txt\",\"content\":\"hello\"}},"
      "{\"name\":\"write_file\",\"arguments\":{\"path\":\"b.txt\",\"content\":"
      "\"<tool_call>\\n<function=run_shell>\\n<parameter=cmd>\\nls\\n</parameter>\\n"
      "</function>\\n</tool_call>\"}}]",
      NULL, NULL },
    { "unbalanced literal block still ends at the final closers", 0, 0,
      TCALL("write_file") PARAM("path", "doc.md")
          PARAM("content", "Calls start with\n<function=NAME>\nand never close here.") ENDC,
      "", "",
      "[{\"name\":\"write_file\",\"arguments\":{\"path\":\"doc.md\",\"content\":"
      "\"Calls start with\\n<function=NAME>\\nand never close here.\"}}]",
      NULL, NULL },
    { "edit_file with tool-call syntax in old and new strings", 0, 0,
      TCALL("edit_file") PARAM("path", "p.txt") PARAM("old_string", "</parameter>")
          PARAM("new_string", "</parameter>\n</function>") PARAM("replace_all", "true") ENDC,
      "", "",
      "[{\"name\":\"edit_file\",\"arguments\":{\"path\":\"p.txt\",\"old_string\":"
      "\"</parameter>\",\"new_string\":\"</parameter>\\n</function>\",\"replace_all\":true}}]",
      NULL, NULL },

    /* ---- type conversion by schema ---- */
    { "int float bool string object", 0, 0,
      TCALL("calc") PARAM("x", "2.5") PARAM("n", "-42") PARAM("flag", "True")
          PARAM("opts", "{\"a\": [1, 2], \"b\": null}") ENDC,
      "", "",
      "[{\"name\":\"calc\",\"arguments\":{\"x\":2.5,\"n\":-42,\"flag\":true,"
      "\"opts\":{\"a\":[1,2],\"b\":null}}}]",
      NULL, NULL },
    { "integral float becomes an integer, bad int stays a string", 0, 0,
      TCALL("calc") PARAM("x", "3.0") PARAM("n", "four") PARAM("flag", "yes") ENDC, "", "",
      "[{\"name\":\"calc\",\"arguments\":{\"x\":3,\"n\":\"four\",\"flag\":false}}]", NULL, NULL },
    { "object as a Python repr", 0, 0,
      TCALL("calc") PARAM("opts", "{'key': 'value', 'n': 1, 'ok': True, 'none': None}") ENDC, "",
      "",
      "[{\"name\":\"calc\",\"arguments\":{\"opts\":{\"key\":\"value\",\"n\":1,\"ok\":true,"
      "\"none\":null}}}]",
      NULL, NULL },
    { "object double-encoded as a JSON string of a Python repr", 0, 0,
      TCALL("calc") PARAM("opts", "\"{'key': 'value', 'n': 1}\"") ENDC, "", "",
      "[{\"name\":\"calc\",\"arguments\":{\"opts\":{\"key\":\"value\",\"n\":1}}}]", NULL, NULL },
    { "array with JSON true and null", 0, 0,
      TCALL("calc") PARAM("items", "[true, null, \"x\", 1.5]") ENDC, "", "",
      "[{\"name\":\"calc\",\"arguments\":{\"items\":[true,null,\"x\",1.5]}}]", NULL, NULL },
    { "array as a Python tuple-ish list", 0, 0,
      TCALL("calc") PARAM("items", "['a', (1, 2), False]") ENDC, "", "",
      "[{\"name\":\"calc\",\"arguments\":{\"items\":[\"a\",[1,2],false]}}]", NULL, NULL },
    { "string parameter with text null stays a string", 0, 0,
      TCALL("get_weather") PARAM("city", "null") ENDC, "", "",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"null\"}}]", NULL, NULL },
    { "anyOf string,null: 42 stays a string, null and None are null", 0, 0,
      TCALL("calc") PARAM("maybe", "42") ENDC "\n" TCALL("calc") PARAM("maybe", "null") ENDC
      "\n" TCALL("calc") PARAM("maybe", "None") ENDC,
      "", "",
      "[{\"name\":\"calc\",\"arguments\":{\"maybe\":\"42\"}},"
      "{\"name\":\"calc\",\"arguments\":{\"maybe\":null}},"
      "{\"name\":\"calc\",\"arguments\":{\"maybe\":null}}]",
      NULL, NULL },
    { "anyOf integer,null parses 42, None is null", 0, 0,
      TCALL("calc") PARAM("count", "42") ENDC "\n" TCALL("calc") PARAM("count", "None") ENDC, "",
      "",
      "[{\"name\":\"calc\",\"arguments\":{\"count\":42}},"
      "{\"name\":\"calc\",\"arguments\":{\"count\":null}}]",
      NULL, NULL },
    { "anyOf object,null is not double-encoded", 0, 0,
      TCALL("calc") PARAM("cfg", "{\"a\": 1}") ENDC, "", "",
      "[{\"name\":\"calc\",\"arguments\":{\"cfg\":{\"a\":1}}}]", NULL, NULL },
    { "type list [array, null]", 0, 0, TCALL("calc") PARAM("lst", "NULL") ENDC, "", "",
      "[{\"name\":\"calc\",\"arguments\":{\"lst\":null}}]", NULL, NULL },
    { "no type means string; unknown type tries a Python literal", 0, 0,
      TCALL("calc") PARAM("any", "{\"a\": 1}") PARAM("lit", "(1, 'two')") ENDC, "", "",
      "[{\"name\":\"calc\",\"arguments\":{\"any\":\"{\\\"a\\\": 1}\",\"lit\":[1,\"two\"]}}]", NULL,
      NULL },
    { "bad object stays the raw string", 0, 0, TCALL("calc") PARAM("opts", "{oops") ENDC, "", "",
      "[{\"name\":\"calc\",\"arguments\":{\"opts\":\"{oops\"}}]", NULL, NULL },
    { "big integer keeps its digits", 0, 0, TCALL("calc") PARAM("n", "123456789012345678901") ENDC,
      "", "", "[{\"name\":\"calc\",\"arguments\":{\"n\":123456789012345678901}}]", NULL, NULL },
    { "no tool list: any name, string values", 0, 1,
      TCALL("anything.v2") PARAM("n", "1") PARAM("o", "{}") ENDC, "", "",
      "[{\"name\":\"anything.v2\",\"arguments\":{\"n\":\"1\",\"o\":\"{}\"}}]", NULL, NULL },
    { "invalid UTF-8 in a value becomes U+FFFD", 0, 0,
      TCALL("get_weather") PARAM("city", "Z\xff\xfe\xc3") ENDC, "", "",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":"
      "\"Z\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"}}]",
      NULL, NULL },

    /* ---- reasoning ---- */
    { "reasoning then content", 1, 0, "Let me think.\nHmm.\n</think>\n\nThe answer is 4.",
      "Let me think.\nHmm.", "The answer is 4.", "[]", NULL, NULL },
    { "reasoning then a call", 1, 0,
      "I should query weather.\n</think>\n\n" TCALL("get_weather") PARAM("city", "Paris") ENDC,
      "I should query weather.", "",
      "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}]", NULL, NULL },
    { "tool-call syntax inside reasoning is reasoning", 1, 0,
      "Maybe " TCALL("get_weather") PARAM("city", "X") ENDC "\n</think>\n\nNo call.",
      "Maybe " TCALL("get_weather") PARAM("city", "X") ENDC, "No call.", "[]", NULL, NULL },
    { "no </think>: everything is content, no call taken", 1, 0,
      "Thinking about " TCALL("get_weather") PARAM("city", "X") ENDC, "",
      "Thinking about " TCALL("get_weather") PARAM("city", "X") ENDC, "[]", NULL, NULL },
    { "partial </think> at the end: all content", 1, 0, "abc </thi", "", "abc </thi", "[]", NULL,
      NULL },
    { "stray <think> at the start", 0, 0, "<think>\nhmm\n</think>\n\nhello", "hmm", "hello", "[]",
      NULL, NULL },
    { "stray <think> with thinking on", 1, 0, "  <think>hmm</think>hello", "hmm", "hello", "[]",
      NULL, NULL },
    { "a second </think> is content", 1, 0, "a</think>b</think>c", "a", "b</think>c", "[]", NULL,
      NULL },
    { "thinking off: </think> is text", 0, 0, "x</think>y", "", "x</think>y", "[]", NULL, NULL },
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

static struct tc_tools *g_tools;

static const struct tc_tools *case_tools(const struct tcase *c)
{
    return c->no_tools ? NULL : g_tools;
}

static void case_opts(const struct tcase *c, struct tc_opts *o)
{
    tc_opts_default(o);
    o->starts_in_reasoning = c->think;
}

/* Parses whole and checks the expected fields. */
static void check_case(const struct tcase *c)
{
    struct tc_opts o;
    case_opts(c, &o);
    struct tc_parser *p;
    REQUIRE(tc_new(&p, case_tools(c), &o, NULL, NULL) == 0);
    CHECK(tc_feed(p, c->in, strlen(c->in)) == 0);
    CHECK(tc_finish(p) == 0);
    const struct tc_result *r = tc_result(p);
    struct buf js = { 0 };
    CHECK(tc_result_json(r, &js) == 0);
    cJSON *got = cJSON_Parse(js.p);
    CHECKF(got != NULL, "%s: result is not JSON: %s", c->name, js.p);
    const char *reasoning = r->reasoning.p ? r->reasoning.p : "";
    const char *content = r->content.p ? r->content.p : "";
    CHECKF(!strcmp(reasoning, c->reasoning),
           "%s: reasoning\n      got:  \"%s\"\n      want: \"%s\"", c->name, reasoning,
           c->reasoning);
    CHECKF(!strcmp(content, c->content), "%s: content\n      got:  \"%s\"\n      want: \"%s\"",
           c->name, content, c->content);
    cJSON *want = cJSON_Parse(c->calls);
    CHECKF(want != NULL, "%s: bad expected JSON", c->name);
    cJSON *calls = cJSON_GetObjectItemCaseSensitive(got, "tool_calls");
    CHECKF(cJSON_Compare(calls, want, 1), "%s: calls\n      got:  %s\n      want: %s", c->name,
           js.p, c->calls);
    cJSON_Delete(want);
    /* rejected calls: names, and the first message */
    cJSON *wante = cJSON_Parse(c->errors ? c->errors : "[]");
    CHECK(wante != NULL);
    CHECKF(r->nerrors == cJSON_GetArraySize(wante), "%s: %d errors, want %d: %s", c->name,
           r->nerrors, cJSON_GetArraySize(wante), js.p);
    for (int i = 0; i < r->nerrors && i < cJSON_GetArraySize(wante); i++)
        CHECKF(!strcmp(r->errors[i].name, cJSON_GetArrayItem(wante, i)->valuestring),
               "%s: error %d names '%s'", c->name, i, r->errors[i].name);
    if (c->errmsg && r->nerrors)
        CHECKF(strstr(r->errors[0].message, c->errmsg) != NULL, "%s: message '%s' lacks '%s'",
               c->name, r->errors[0].message, c->errmsg);
    cJSON_Delete(wante);
    cJSON_Delete(got);
    buf_free(&js);
    tc_free(p);
}

static void t_table(void)
{
    for (int i = 0; i < NCASES; i++)
        check_case(&cases[i]);
}

/* Compares one chunking of an input with the whole-feed reference. */
static int same_split(const struct tcase *c, const char *ref, struct tcf_split sp)
{
    struct tc_opts o;
    case_opts(c, &o);
    struct buf out = { 0 };
    const char *why;
    size_t n = strlen(c->in);
    int ok = tcf_run(case_tools(c), &o, c->in, n, sp, &out, &why) == 0;
    if (!ok)
        printf("    %s: split mode %d at %zu: %s\n", c->name, sp.mode, sp.arg, why);
    else if (strcmp(out.p, ref)) {
        ok = 0;
        printf("    %s: split mode %d arg %zu seed %llu differs:\n--- whole\n%s\n--- split\n%s\n",
               c->name, sp.mode, sp.arg, (unsigned long long)sp.seed, ref, out.p);
    }
    buf_free(&out);
    return ok;
}

static void t_split_property(void)
{
    uint64_t seed = th_seed();
    struct th_rng rng = { seed };
    for (int i = 0; i < NCASES; i++) {
        const struct tcase *c = &cases[i];
        struct tc_opts o;
        case_opts(c, &o);
        struct buf ref = { 0 };
        const char *why;
        struct tcf_split whole = { 0, 0, 0 };
        size_t n = strlen(c->in);
        int ok = tcf_run(case_tools(c), &o, c->in, n, whole, &ref, &why) == 0;
        CHECKF(ok, "%s: %s", c->name, why);
        if (!ok) {
            buf_free(&ref);
            continue;
        }
        ok = same_split(c, ref.p, (struct tcf_split){ 1, 0, 0 });
        if (ok)
            ok = same_split(c, ref.p, (struct tcf_split){ 4, 0, 0 });
        for (size_t k = 1; ok && k < n; k++)
            ok = same_split(c, ref.p, (struct tcf_split){ 2, k, 0 });
        for (int k = 0; ok && k < 40; k++)
            ok = same_split(c, ref.p,
                            (struct tcf_split){ 3, 1 + th_next(&rng) % 24, th_next(&rng) });
        CHECKF(ok, "case '%s' depends on how the input is cut", c->name);
        buf_free(&ref);
    }
}

/* ---- caps ---- */

static void t_value_cap(void)
{
    struct tc_opts o;
    tc_opts_default(&o);
    o.max_value_bytes = 16;
    struct tc_parser *p;
    REQUIRE(tc_new(&p, g_tools, &o, NULL, NULL) == 0);
    const char *in = TCALL("write_file") PARAM("path", "short")
        PARAM("content", "this value is longer than sixteen bytes") ENDC "\n" TCALL("get_weather")
            PARAM("city", "ok") ENDC;
    CHECK(tc_feed(p, in, strlen(in)) == 0);
    CHECK(tc_finish(p) == 0);
    const struct tc_result *r = tc_result(p);
    CHECK_INT(r->ncalls, 1);
    CHECK_INT(r->nerrors, 1);
    if (r->nerrors)
        CHECK(strstr(r->errors[0].message, "longer than 16 bytes") != NULL);
    if (r->ncalls)
        CHECK_STR(r->calls[0].name, "get_weather");
    tc_free(p);
}

static void t_call_cap(void)
{
    struct tc_opts o;
    tc_opts_default(&o);
    struct buf in = { 0 };
    for (int i = 0; i < 70; i++)
        buf_printf(&in, TCALL("get_weather") PARAM("city", "c%d") ENDC "\n", i);
    struct tc_parser *p;
    REQUIRE(tc_new(&p, g_tools, &o, NULL, NULL) == 0);
    CHECK(tc_feed(p, in.p, in.len) == 0);
    CHECK(tc_finish(p) == 0);
    const struct tc_result *r = tc_result(p);
    CHECK_INT(r->ncalls, 64);
    CHECK_INT(r->nerrors, 6);
    if (r->nerrors)
        CHECK(strstr(r->errors[0].message, "too many tool calls") != NULL);
    tc_free(p);
    buf_free(&in);
}

static void t_param_cap(void)
{
    struct buf in = { 0 };
    buf_puts(&in, "<tool_call>\n<function=todo>\n");
    for (int i = 0; i < TC_MAX_PARAMS + 1; i++)
        buf_printf(&in, "<parameter=p%d>\nv\n</parameter>\n", i);
    buf_puts(&in, ENDC);
    struct tc_parser *p;
    REQUIRE(tc_new(&p, g_tools, NULL, NULL, NULL) == 0);
    CHECK(tc_feed(p, in.p, in.len) == 0);
    CHECK(tc_finish(p) == 0);
    const struct tc_result *r = tc_result(p);
    CHECK_INT(r->ncalls, 0);
    CHECK_INT(r->nerrors, 1);
    if (r->nerrors)
        CHECK(strstr(r->errors[0].message, "more than 256 parameters") != NULL);
    tc_free(p);
    buf_free(&in);
}

static void t_error_cap_and_text_cap(void)
{
    struct tc_opts o;
    tc_opts_default(&o);
    o.max_text_bytes = 10;
    struct buf in = { 0 };
    buf_puts(&in, "0123456789ABCDEF\n");
    for (int i = 0; i < 100; i++)
        buf_puts(&in, TCALL("nope") ENDC "\n");
    struct tc_parser *p;
    REQUIRE(tc_new(&p, g_tools, &o, NULL, NULL) == 0);
    CHECK(tc_feed(p, in.p, in.len) == 0);
    CHECK(tc_finish(p) == 0);
    const struct tc_result *r = tc_result(p);
    CHECK_INT(r->nerrors, TC_MAX_ERRORS);
    CHECK_INT(r->errors_dropped, 100 - TC_MAX_ERRORS);
    CHECK_STR(r->content.p, "0123456789");
    tc_free(p);
    buf_free(&in);
}

/* A long value streamed in small pieces is held, not re-scanned: a 4 MiB
 * value byte-chunked in 1000-byte pieces stays fast (linear). */
static void t_big_value_streaming(void)
{
    size_t big = 4u << 20;
    struct buf in = { 0 };
    buf_puts(&in, TCALL("write_file") PARAM("path", "big") "<parameter=content>\n");
    for (size_t i = 0; i < big / 64; i++)
        buf_puts(&in, "line with </parameter mid <tool_call text and <b>tags</b>......\n");
    buf_puts(&in, "</parameter>\n" ENDC);
    struct tc_parser *p;
    REQUIRE(tc_new(&p, g_tools, NULL, NULL, NULL) == 0);
    double t0 = time_s();
    for (size_t off = 0; off < in.len; off += 1000)
        CHECK(tc_feed(p, in.p + off, in.len - off < 1000 ? in.len - off : 1000) == 0);
    CHECK(tc_finish(p) == 0);
    double dt = time_s() - t0;
    const struct tc_result *r = tc_result(p);
    CHECK_INT(r->ncalls, 1);
    if (r->ncalls) {
        cJSON *ct = cJSON_GetObjectItemCaseSensitive(r->calls[0].args, "content");
        CHECK(cJSON_IsString(ct) && strlen(ct->valuestring) == big - 1);
    }
    CHECKF(dt < 2.0, "4 MiB took %.2f s", dt);
    printf("    4 MiB value in 1000-byte pieces: %.3f s\n", dt);
    tc_free(p);
    buf_free(&in);
}

/* ---- conversion and Python literals ---- */

static int conv_is(const char *schema, const char *raw, const char *want)
{
    cJSON *s = schema ? cJSON_Parse(schema) : NULL;
    cJSON *v = tc_convert(s, raw, strlen(raw));
    char *got = v ? cJSON_PrintUnformatted(v) : NULL;
    int ok = got && !strcmp(got, want);
    if (!ok)
        printf("    convert(%s, '%s') = %s, want %s\n", schema ? schema : "NULL", raw,
               got ? got : "NULL", want);
    free(got);
    cJSON_Delete(v);
    cJSON_Delete(s);
    return ok;
}

static void t_convert(void)
{
    CHECK(conv_is(NULL, "42", "\"42\""));
    CHECK(conv_is("{\"type\":\"integer\"}", " 1_000 ", "1000"));
    CHECK(conv_is("{\"type\":\"integer\"}", "+7", "7"));
    CHECK(conv_is("{\"type\":\"integer\"}", "1.5", "\"1.5\""));
    CHECK(conv_is("{\"type\":\"integer\"}", "0x10", "\"0x10\""));
    CHECK(conv_is("{\"type\":\"integer\"}", "none", "null"));
    CHECK(conv_is("{\"type\":\"int64\"}", "-9", "-9"));
    CHECK(conv_is("{\"type\":\"number\"}", "1e3", "1000"));
    CHECK(conv_is("{\"type\":\"number\"}", "-0.25", "-0.25"));
    CHECK(conv_is("{\"type\":\"number\"}", "inf", "\"inf\""));
    CHECK(conv_is("{\"type\":\"float\"}", "nan", "\"nan\""));
    CHECK(conv_is("{\"type\":\"boolean\"}", "TRUE", "true"));
    CHECK(conv_is("{\"type\":\"boolean\"}", "false", "false"));
    CHECK(conv_is("{\"type\":\"bool\"}", "1", "false"));
    CHECK(conv_is("{\"type\":\"string\"}", " None ", "\" None \""));
    CHECK(conv_is("{\"type\":\"string\",\"nullable\":true}", "None", "null"));
    CHECK(conv_is("{\"type\":\"array\"}", "[1, 'a', None, True]", "[1,\"a\",null,true]"));
    CHECK(conv_is("{\"type\":\"array\"}", "\"[1, 2]\"", "[1,2]"));
    CHECK(conv_is("{\"type\":\"object\"}", "{1: 'x', None: 2, 2.5: 3, False: 4}",
                  "{\"1\":\"x\",\"null\":2,\"2.5\":3,\"false\":4}"));
    CHECK(conv_is("{\"type\":\"object\"}", "{'a': 1, 'a': 2}", "{\"a\":2}"));
    CHECK(conv_is("{\"type\":\"object\"}", "{1, 2}", "\"{1, 2}\"")); /* a set */
    CHECK(conv_is("{\"type\":\"dict\"}", "{'k': b'x'}", "\"{'k': b'x'}\""));
    CHECK(conv_is("{\"type\":\"list\"}", "[1j]", "\"[1j]\""));
    CHECK(conv_is("{\"type\":\"null\"}", "None", "null"));
    CHECK(conv_is("{\"anyOf\":[{\"type\":\"null\"},{\"type\":\"integer\"}]}", "5", "5"));
    CHECK(conv_is("{\"oneOf\":[{\"type\":\"number\"},{\"type\":\"string\"}]}", "2.5", "2.5"));
    CHECK(conv_is("{\"properties\":{}}", "{\"a\":1}", "{\"a\":1}"));
    CHECK(conv_is("{\"type\":\"tuple\"}", "()", "[]"));
    CHECK(conv_is("{\"type\":\"tuple\"}", "(1,)", "[1]"));
    CHECK(conv_is("{\"type\":\"tuple\"}", "(1)", "1"));
    CHECK(conv_is("{\"type\":\"any\"}", "not python", "\"not python\""));
}

static int py_is(const char *src, const char *want)
{
    cJSON *v = tc_py_literal(src, strlen(src));
    char *got = v ? cJSON_PrintUnformatted(v) : NULL;
    int ok = want ? got && !strcmp(got, want) : !got;
    if (!ok)
        printf("    py_literal(%s) = %s, want %s\n", src, got ? got : "NULL", want ? want : "NULL");
    free(got);
    cJSON_Delete(v);
    return ok;
}

static void t_py_literal(void)
{
    CHECK(py_is("'a\\'b'", "\"a'b\""));
    CHECK(py_is("\"tab\\there\"", "\"tab\\there\""));
    CHECK(py_is("'\\x41\\u00e9\\U0001F600\\101'", "\"A\xc3\xa9\xf0\x9f\x98\x80"
                                                  "A\""));
    CHECK(py_is("r'\\d+'", "\"\\\\d+\""));
    CHECK(py_is("'''multi\nline'''", "\"multi\\nline\""));
    CHECK(py_is("'a' \"b\"", "\"ab\""));
    CHECK(py_is("'unterminated", NULL));
    CHECK(py_is("'new\nline'", NULL));
    CHECK(py_is("b'bytes'", NULL));
    CHECK(py_is("f'{x}'", NULL));
    CHECK(py_is("[1, 2,]", "[1,2]"));
    CHECK(py_is("[1 2]", NULL));
    CHECK(py_is("{'a': [1, {'b': (2, 3)}], }", "{\"a\":[1,{\"b\":[2,3]}]}"));
    CHECK(py_is("- 5", "-5"));
    CHECK(py_is("0b101", "5"));
    CHECK(py_is("0o17", "15"));
    CHECK(py_is("0xff", "255"));
    CHECK(py_is("007", NULL));
    CHECK(py_is("1_000_000", "1000000"));
    CHECK(py_is("1__0", NULL));
    CHECK(py_is("1.5e-3", "0.0015"));
    CHECK(py_is(".5", "0.5"));
    CHECK(py_is("True False None", NULL));
    CHECK(py_is("Truex", NULL));
    CHECK(py_is("[True, False, None]", "[true,false,null]"));
    CHECK(py_is("x", NULL));
    CHECK(py_is("", NULL));
    CHECK(py_is("[\n  1,  # one\n  2\n]", "[1,2]"));
    CHECK(py_is("{(1, 2): 3}", NULL));
    CHECK(py_is("'\\ud800'", "\"\xef\xbf\xbd\""));
    CHECK(py_is("-12345678901234567890", "-12345678901234567890"));
    /* nesting is capped: deep input is refused, not a stack overflow */
    struct buf deep = { 0 };
    for (int i = 0; i < 10000; i++)
        buf_putc(&deep, '[');
    CHECK(tc_py_literal(deep.p, deep.len) == NULL);
    buf_free(&deep);
}

/* ---- the tool list ---- */

static void t_tools(void)
{
    struct tc_tools *t;
    CHECK_INT(tc_tools_count(g_tools), 6);
    CHECK(tc_tools_params(g_tools, "run_shell") != NULL);
    CHECK(tc_tools_params(g_tools, "todo") == NULL);
    const char *bad[][2] = {
        { "{}", "expected a JSON array" },
        { "[1]", "tools[0]: expected an object" },
        { "[{\"type\":\"function\",\"function\":3}]", "tools[0].function" },
        { "[{\"name\":5}]", "\"name\" must be a string" },
        { "[{\"name\":\"a b\"}]", "is not [A-Za-z0-9_.-]" },
        { "[{\"name\":\"\"}]", "is not" },
        { "[{\"name\":\"a\"},{\"name\":\"a\"}]", "tools[1]: duplicate tool name 'a'" },
        { "[{\"name\":\"a\",\"parameters\":[]}]", "\"parameters\" must be an object" },
        { "[{\"name\":\"a\",\"parameters\":{\"properties\":1}}]", "\"properties\" must be" },
        { "[\n{\"name\": }", "f.json:2:" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = (struct tc_tools *)1;
        int rc = tc_tools_parse(&t, bad[i][0], strlen(bad[i][0]), "f.json");
        CHECKF(rc == ERR_INVAL && t == NULL, "%s: rc %d", bad[i][0], rc);
        CHECKF(strstr(err_msg(), bad[i][1]) != NULL, "%s: message '%s' lacks '%s'", bad[i][0],
               err_msg(), bad[i][1]);
    }
    CHECK(tc_tools_parse(&t, "[]", 2, NULL) == 0);
    CHECK_INT(tc_tools_count(t), 0);
    struct tc_parser *p;
    REQUIRE(tc_new(&p, t, NULL, NULL, NULL) == 0);
    const char *in = TCALL("x") ENDC;
    tc_feed(p, in, strlen(in));
    tc_finish(p);
    CHECK_INT(tc_result(p)->nerrors, 1);
    if (tc_result(p)->nerrors)
        CHECK(strstr(tc_result(p)->errors[0].message, "available tools: none") != NULL);
    tc_free(p);
    tc_tools_free(t);
    tc_tools_free(NULL);
    tc_free(NULL);
}

/* Events: CALL_BEGIN comes as soon as the header is complete, ARG as soon as
 * a value closes, and content is not held back beyond a possible tag. */
struct ev_log {
    int kinds[64];
    int n;
    struct buf content;
};
static void log_ev(void *ud, const struct tc_event *e)
{
    struct ev_log *l = ud;
    if (l->n < 64)
        l->kinds[l->n++] = e->kind;
    if (e->kind == TC_EV_CONTENT)
        buf_append(&l->content, e->text, e->len);
}

static void t_streaming_events(void)
{
    struct ev_log l;
    memset(&l, 0, sizeof l);
    struct tc_parser *p;
    REQUIRE(tc_new(&p, g_tools, NULL, log_ev, &l) == 0);
    const char *a = "Hello <b>world</b> <tool_";
    CHECK(tc_feed(p, a, strlen(a)) == 0);
    CHECK_STR(l.content.p, "Hello <b>world</b>"); /* " <tool_" may still be a call */
    const char *b = "call>\n<function=get_weather>\n";
    CHECK(tc_feed(p, b, strlen(b)) == 0);
    CHECK(l.n > 0 && l.kinds[l.n - 1] == TC_EV_CALL_BEGIN);
    const char *c = "<parameter=city>\nParis\n</parameter>\n";
    CHECK(tc_feed(p, c, strlen(c)) == 0);
    /* "</parameter>" then "\n" is not decisive yet: the next token decides */
    CHECK(l.n > 0 && l.kinds[l.n - 1] == TC_EV_CALL_BEGIN);
    const char *d = "<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>";
    CHECK(tc_feed(p, d, strlen(d)) == 0);
    int args = 0, ends = 0;
    for (int i = 0; i < l.n; i++)
        args += l.kinds[i] == TC_EV_ARG, ends += l.kinds[i] == TC_EV_CALL_END;
    CHECK_INT(args, 2);
    CHECK_INT(ends, 1);
    CHECK(tc_finish(p) == 0);
    CHECK(tc_feed(p, "x", 1) == ERR_INVAL);
    tc_free(p);
    buf_free(&l.content);
}

/* ---- seeds for the fuzzer ---- */

static int write_seeds(const char *dir)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        perror(dir);
        return 1;
    }
    for (int i = 0; i < NCASES; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/case%03d", dir, i);
        FILE *f = fopen(path, "wb");
        if (!f) {
            perror(path);
            return 1;
        }
        /* the fuzz target's format: flags byte, chunk byte, then the output */
        unsigned char hdr[2] = { (unsigned char)((cases[i].think ? 1 : 0) |
                                                 (cases[i].no_tools ? 0 : 2)),
                                 (unsigned char)(7 + i % 13) };
        fwrite(hdr, 1, 2, f);
        fwrite(cases[i].in, 1, strlen(cases[i].in), f);
        fclose(f);
        if (i % 4)
            continue;
        /* every fourth case again with tiny caps and the converters on */
        snprintf(path, sizeof path, "%s/case%03d-caps", dir, i);
        if (!(f = fopen(path, "wb"))) {
            perror(path);
            return 1;
        }
        hdr[0] |= 4 | 8;
        fwrite(hdr, 1, 2, f);
        fwrite(cases[i].in, 1, strlen(cases[i].in), f);
        fclose(f);
    }
    printf("wrote %d seeds to %s\n", NCASES, dir);
    return 0;
}

int main(int argc, char **argv)
{
    if (tc_tools_parse(&g_tools, tcf_tools_json, strlen(tcf_tools_json), NULL) < 0) {
        printf("FAIL fixture tools: %s\n# summary: 0 passed, 1 failed, 0 skipped\n", err_msg());
        return 1;
    }
    if (argc == 3 && !strcmp(argv[1], "--write-seeds")) {
        int rc = write_seeds(argv[2]);
        tc_tools_free(g_tools);
        return rc;
    }
    TEST_RUN(t_table);
    TEST_RUN(t_split_property);
    TEST_RUN(t_value_cap);
    TEST_RUN(t_call_cap);
    TEST_RUN(t_param_cap);
    TEST_RUN(t_error_cap_and_text_cap);
    TEST_RUN(t_big_value_streaming);
    TEST_RUN(t_convert);
    TEST_RUN(t_py_literal);
    TEST_RUN(t_tools);
    TEST_RUN(t_streaming_events);
    tc_tools_free(g_tools);
    TEST_END();
}
