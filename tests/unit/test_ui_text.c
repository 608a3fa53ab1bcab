/*
 * test_ui.c - the pure parts of the interface: display widths and wrapping
 * (ui/sline), Markdown (ui/md), the input editor (ui/input) and the
 * transcript layout (ui/transcript). No terminal needed.
 */
#include "tests/unit/testhelp.h"
#include "ui/input.h"
#include "ui/md.h"
#include "ui/sline.h"
#include "ui/transcript.h"

#include <locale.h>

/* The visual lines of s at width w joined with '|'. */
static void wrap_str(const char *s, int w, int indent, char *out, size_t cap)
{
    struct uw_line *v;
    int n;
    out[0] = 0;
    if (uw_wrap(s, strlen(s), w, indent, &v, &n) < 0)
        return;
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        k += (size_t)snprintf(out + k, cap - k, "%s%*s%.*s", i ? "|" : "", v[i].indent, "",
                              (int)v[i].len, s + v[i].off);
        if (k >= cap)
            break;
    }
    free(v);
}

static void t_width(void)
{
    CHECK_INT(uw_width("abc", 3), 3);
    CHECK_INT(uw_width("世界", 6), 4);      /* CJK: 2 columns each */
    CHECK_INT(uw_width("🎉", 4), 2);         /* emoji */
    CHECK_INT(uw_width("e\xcc\x81", 3), 1); /* e + combining acute */
    CHECK_INT(uw_width("\xff", 1), 1);      /* invalid byte: one replacement column */
    int used;
    CHECK_INT((int)uw_fit("a世b", 5, 2, &used), 1); /* the wide char does not fit in 1 more */
    CHECK_INT(used, 1);
    CHECK_INT((int)uw_fit("ae\xcc\x81x", 5, 2, &used), 4); /* the mark stays with its base */
}

static void t_wrap(void)
{
    char out[512];
    wrap_str("hello world foo", 11, 0, out, sizeof out);
    CHECK_STR(out, "hello world|foo");
    wrap_str("hello world foo", 5, 0, out, sizeof out);
    CHECK_STR(out, "hello|world|foo");
    wrap_str("abcdefghij", 4, 0, out, sizeof out);
    CHECK_STR(out, "abcd|efgh|ij");
    wrap_str("", 10, 0, out, sizeof out);
    CHECK_STR(out, "");
    wrap_str("世界世界世", 5, 0, out, sizeof out); /* never split a wide char */
    CHECK_STR(out, "世界|世界|世");
    wrap_str("• one two three four", 10, 2, out, sizeof out);
    CHECK_STR(out, "• one two|  three|  four");
    wrap_str("abc   ", 3, 0, out, sizeof out); /* trailing spaces add no line */
    CHECK_STR(out, "abc");
    /* every byte is covered exactly once, whatever the width */
    const char *s = "Lorem ipsum dolor 世界 sit 🎉 amet, consectetur adipiscing elit";
    for (int w = 1; w < 30; w++) {
        struct uw_line *v;
        int n;
        REQUIRE(uw_wrap(s, strlen(s), w, 0, &v, &n) == 0);
        size_t pos = 0;
        int okw = 1;
        for (int i = 0; i < n; i++) {
            while (pos < v[i].off && s[pos] == ' ')
                pos++;
            if (v[i].off != pos || (v[i].cols > w && v[i].len > 4))
                okw = 0;
            pos = v[i].off + v[i].len;
        }
        while (pos < strlen(s) && s[pos] == ' ')
            pos++;
        CHECKF(okw && pos == strlen(s), "width %d", w);
        free(v);
    }
}

/* The rendering of md as plain text lines joined with '|'. */
static void md_str(const char *md, int width, char *out, size_t cap)
{
    struct sl_list L = { 0 };
    out[0] = 0;
    if (md_render(md, strlen(md), width, ST_NORMAL, &L) < 0)
        return;
    size_t k = 0;
    for (int i = 0; i < L.n && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%s", i ? "|" : "", L.v[i].t);
    sl_list_free(&L);
}

static int style_at(const char *md, const char *needle)
{
    struct sl_list L = { 0 };
    int st = -1;
    if (md_render(md, strlen(md), 80, ST_NORMAL, &L) < 0)
        return -1;
    for (int i = 0; i < L.n && st < 0; i++) {
        const char *p = strstr(L.v[i].t, needle);
        if (p)
            st = L.v[i].s[p - L.v[i].t];
    }
    sl_list_free(&L);
    return st;
}

static void t_markdown(void)
{
    char out[1024];
    md_str("# Title\nsome **bold** and `code` and *it*", 80, out, sizeof out);
    CHECK_STR(out, "Title|some bold and code and it");
    CHECK_INT(style_at("# Title", "Title"), ST_HEAD);
    CHECK_INT(style_at("a **bold** b", "bold"), ST_BOLD);
    CHECK_INT(style_at("a `x1` b", "x1"), ST_CODE);
    CHECK_INT(style_at("a *it* b", "it"), ST_ITALIC);
    CHECK_INT(style_at("2 * 3 * 4", "3"), ST_NORMAL); /* not emphasis */
    CHECK_INT(style_at("snake_case_name", "case"), ST_NORMAL);
    md_str("- one\n- two\n1. first", 80, out, sizeof out);
    CHECK_STR(out, "• one|• two|1. first");
    md_str("> quoted", 80, out, sizeof out);
    CHECK_STR(out, "│ quoted");
    md_str("```python\nx = 'a' # c\n```\nafter", 80, out, sizeof out);
    CHECK_STR(out, "python|  x = 'a' # c|after");
    CHECK_INT(style_at("```python\nif x: 'str' # note\n```", "if"), ST_KEYWORD);
    CHECK_INT(style_at("```python\nif x: 'str' # note\n```", "str"), ST_STRING);
    CHECK_INT(style_at("```python\nif x: 'str' # note\n```", "note"), ST_COMMENT);
    CHECK_INT(style_at("```diff\n+added\n-gone\n```", "added"), ST_ADD);
    CHECK_INT(style_at("```diff\n+added\n-gone\n```", "gone"), ST_DEL);
    md_str("```\nunclosed code", 80, out, sizeof out); /* streaming: code to the end */
    CHECK_STR(out, "code|  unclosed code");
    md_str("| a | bb |\n|---|---|\n| 1 | 2 |", 80, out, sizeof out);
    CHECK_STR(out, "│ a │ bb │|├───┼────┤|│ 1 │ 2  │");
    /* a table that does not fit stays as written */
    md_str("| aaaaaaaaaa | bbbbbbbbbb |\n|---|---|\n| 1 | 2 |", 12, out, sizeof out);
    CHECK_STR(out, "| aaaaaaaaaa | bbbbbbbbbb |||---|---||| 1 | 2 |");
    md_str("[lode](https://x.y)", 80, out, sizeof out);
    CHECK_STR(out, "lode (https://x.y)");
    md_str("a\n\nb\n", 80, out, sizeof out);
    CHECK_STR(out, "a||b");
}

static void t_input_edit(void)
{
    struct input in;
    in_init(&in, 3);
    in_insert(&in, "héllo", strlen("héllo"));
    in_left(&in);
    in_left(&in);
    in_left(&in);
    in_left(&in); /* after 'h' */
    in_insert(&in, "X", 1);
    CHECK_STR(in_text(&in), "hXéllo");
    in_right(&in); /* over the 2-byte é */
    in_backspace(&in);
    CHECK_STR(in_text(&in), "hXllo");
    in_end(&in);
    in_insert(&in, " world", 6);
    in_kill_word(&in);
    CHECK_STR(in_text(&in), "hXllo ");
    in_home(&in);
    in_kill_end(&in);
    CHECK_STR(in_text(&in), "");
    /* multi-line: up/down move between lines before touching history */
    in_insert(&in, "line1\nline2", 11);
    in_up(&in);
    in_insert(&in, "!", 1);
    CHECK_STR(in_text(&in), "line1!\nline2");
    char *msg;
    REQUIRE(in_take(&in, &msg) == 0);
    CHECK_STR(msg, "line1!\nline2");
    free(msg);
    CHECK(in_empty(&in));
    /* history */
    in_insert(&in, "second", 6);
    REQUIRE(in_take(&in, &msg) == 0);
    free(msg);
    in_insert(&in, "draft", 5);
    in_up(&in);
    CHECK_STR(in_text(&in), "second");
    in_up(&in);
    in_up(&in); /* first line of a 2-line entry: moves within it, then to older (none) */
    in_down(&in);
    in_down(&in);
    in_down(&in);
    CHECK_STR(in_text(&in), "draft");
    /* reverse search */
    in_clear(&in);
    in_search_start(&in);
    in_search_type(&in, "line", 4);
    CHECK(in_search_match(&in) && !strcmp(in_search_match(&in), "line1!\nline2"));
    in_search_accept(&in);
    CHECK_STR(in_text(&in), "line1!\nline2");
    in_free(&in);
}

static void t_input_paste(void)
{
    struct input in;
    in_init(&in, 3);
    in_insert(&in, "see ", 4);
    in_paste(&in, "a\r\nb", 4); /* short: literal, \r\n one newline */
    CHECK_STR(in_text(&in), "see a\nb");
    in_clear(&in);
    in_insert(&in, "x ", 2);
    in_paste(&in, "1\r2\r3\r4\r5", 9);
    CHECK_STR(in_text(&in), "x [pasted 5 lines]");
    in_insert(&in, " y", 2);
    char *msg;
    REQUIRE(in_take(&in, &msg) == 0);
    CHECK_STR(msg, "x 1\n2\n3\n4\n5 y");
    free(msg);
    /* backspace removes a whole chip */
    in_paste(&in, "1\n2\n3\n4\n", 8);
    in_backspace(&in);
    CHECK_STR(in_text(&in), "");
    in_free(&in);
}

static void t_input_layout(void)
{
    struct input in;
    in_init(&in, 0);
    in_insert(&in, "abcdef\n世界", strlen("abcdef\n世界"));
    struct uw_line *v;
    int n, row, col;
    REQUIRE(in_layout(&in, 4, &v, &n, &row, &col) == 0);
    CHECK_INT(n, 3);   /* "abcd" "ef" "世界" */
    CHECK_INT(row, 3); /* the line is full: the cursor starts the next row */
    CHECK_INT(col, 0);
    free(v);
    in_home(&in);
    REQUIRE(in_layout(&in, 4, &v, &n, &row, &col) == 0);
    CHECK_INT(row, 2);
    CHECK_INT(col, 0);
    free(v);
    in_free(&in);
}

static void t_transcript(void)
{
    struct transcript t;
    tr_init(&t);
    tr_add(&t, TR_USER, "hi there", 8);
    tr_stream(&t, TR_REASONING, "think", 5);
    tr_stream(&t, TR_REASONING, "ing", 3);
    tr_stream(&t, TR_ANSWER, "Hello **you**", 13);
    tr_tool(&t, "call_1", "read_file", "a.txt");
    tr_tool_done(&t, "call_1", TR_OK, 0.25, "1\n2\n3\n4\n5\n6", 11);
    tr_tool(&t, "call_2", "edit_file", "b.txt");
    const char *diff = "--- a/b\n+++ b/b\n@@ -1 +1 @@\n-x\n+y";
    tr_tool_done(&t, "call_2", TR_OK, 0.5, diff, strlen(diff));
    long rows = tr_layout(&t, 60);
    CHECK(rows > 0);
    struct buf b = { 0 };
    REQUIRE(tr_dump(&t, &b) == 0);
    CHECK_STR(b.p, "› hi there\n"
                   "\n"
                   "▾ thinking (8 chars, ~2 tokens)\n"
                   "│ thinking\n"
                   "\n"
                   "Hello you\n"
                   "\n"
                   "⏺ read_file a.txt  ✓ 0.2s\n"
                   "  ⎿ 1\n"
                   "    2\n"
                   "    3\n"
                   "    4\n"
                   "    … 2 more lines (6 in all, Ctrl+O expands)\n"
                   "\n"
                   "⏺ edit_file b.txt  ✓ 0.5s\n"
                   "  ⎿ --- a/b\n"
                   "    +++ b/b\n"
                   "    @@ -1 +1 @@\n"
                   "    -x\n"
                   "    +y\n");
    /* re-wrapped at another width from the same blocks */
    t.show_reasoning = 0;
    tr_invalidate(&t);
    tr_layout(&t, 20);
    buf_reset(&b);
    tr_dump(&t, &b);
    CHECK(strstr(b.p, "▸ thinking (8 chars,\n") != NULL);
    CHECK(strstr(b.p, "│ thinking") == NULL);
    CHECK(strstr(b.p, "› hi there\n") == b.p);
    CHECK_STR(tr_last_answer(&t), "Hello **you**");
    buf_free(&b);
    tr_free(&t);
}

int main(void)
{
    if (!setlocale(LC_CTYPE, "C.UTF-8") && !setlocale(LC_CTYPE, "en_US.UTF-8")) {
        printf("skip test_ui (no UTF-8 locale)\n# summary: 0 passed, 0 failed, 1 skipped\n");
        return 0;
    }
    TEST_RUN(t_width);
    TEST_RUN(t_wrap);
    TEST_RUN(t_markdown);
    TEST_RUN(t_input_edit);
    TEST_RUN(t_input_paste);
    TEST_RUN(t_input_layout);
    TEST_RUN(t_transcript);
    TEST_END();
}
