/* test_tools.c - the tool registry and the file and shell tools (tools/registry.c,
 * tools/fs_tools.c, tools/shell_tool.c) in a temporary workspace. */
#include "testhelp.h"
#include "workspace.h"

#include "common/buf.h"
#include "common/err.h"
#include "tools/registry.h"
#include "tools/search_tools.h"
#include "tools/todo_tool.h"
#include "tools/web_tool.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[WSP_BASE], ws[WSP_PATH], out[WSP_PATH];
static struct pol *pol;
static struct sbx_caps caps;
static struct tool_ctx ctx;
static struct tool_result res;
static const char *const hidden[] = { "hid", NULL };

/* The file's content ("" when missing), in a static buffer. */
static const char *slurp(const char *dir, const char *rel)
{
    static char data[65536];
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    data[0] = 0;
    FILE *f = fopen(p, "r");
    if (f) {
        size_t n = fread(data, 1, sizeof data - 1, f);
        data[n] = 0;
        fclose(f);
    }
    return data;
}

static void setup(void)
{
    wsp_create("tools", base, ws, out);
    wsp_mkdir(ws, ".git");
    wsp_mkdir(ws, ".git/hooks");
    wsp_mkdir(ws, "src");
    wsp_puts(out, "secret.txt", "outside\n");
    wsp_puts(ws, "a.txt", "one\ntwo\nthree\n");
    wsp_mkdir(ws, "hid"); /* hidden by configuration */
    wsp_puts(ws, "hid/h.txt", "hiddenword\n");
    wsp_symlink(out, ws, "escape");     /* a symlink out of the workspace */
    wsp_symlink("a.txt", ws, "inlink"); /* a symlink inside it */
    struct pol_opts o = { 0 };
    o.workspace = ws;
    o.home = base;
    o.hidden = hidden;
    if (pol_open(&pol, &o) < 0)
        printf("# pol_open: %s\n", err_msg());
    sbx_probe(&caps, getenv("LODE_SANDBOX_DISABLE"));
    ctx = tool_ctx_defaults();
    ctx.pol = pol;
    ctx.caps = &caps;
    ctx.approved = 1; /* the tests stand in for the user's approval below L3 */
}

/* Runs a tool with arguments given as JSON text; returns is_error. */
static int run(const char *name, const char *json)
{
    cJSON *a = json ? cJSON_Parse(json) : NULL;
    if (json && !a) {
        printf("    bad test JSON: %s\n", json);
        return -1;
    }
    tool_result_free(&res);
    int rc = tool_run(&ctx, name, a, &res);
    cJSON_Delete(a);
    if (rc < 0)
        return -1;
    return res.is_error;
}

static const char *text(void) { return res.text.p ? res.text.p : ""; }

#define HAS(s) CHECKF(strstr(text(), (s)) != NULL, "no \"%s\" in: %s", (s), text())

static void t_schemas(void)
{
    struct buf b = { 0 };
    REQUIRE(tool_schemas_json(&b) == 0);
    cJSON *j = cJSON_Parse(b.p);
    REQUIRE(j && cJSON_IsArray(j));
    CHECK_INT(cJSON_GetArraySize(j), tool_count());
    for (int i = 0; i < cJSON_GetArraySize(j); i++) {
        cJSON *t = cJSON_GetArrayItem(j, i);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(t, "type")), "function");
        cJSON *f = cJSON_GetObjectItem(t, "function");
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(f, "name")), tool_name(i));
        CHECK(cJSON_IsString(cJSON_GetObjectItem(f, "description")));
        cJSON *pr = cJSON_GetObjectItem(f, "parameters");
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(pr, "type")), "object");
    }
    cJSON_Delete(j);
    buf_free(&b);
}

static void t_bad_calls(void)
{
    CHECK_INT(run("no_such_tool", "{}"), 1);
    HAS("unknown tool");
    CHECK_INT(run("read_file", "{}"), 1);
    HAS("missing required argument \"path\"");
    CHECK_INT(run("read_file", "{\"path\":5}"), 1);
    HAS("must be a string");
    CHECK_INT(run("read_file", "[1,2]"), 1);
    CHECK_INT(run("read_file", "{\"path\":\"a.txt\",\"offset\":1.5}"), 1);
    HAS("integer");
    CHECK_INT(run("read_file", "{\"path\":\"a.txt\",\"offset\":0}"), 1);
    CHECK_INT(run("edit_file", "{\"path\":\"a.txt\",\"old_string\":\"one\",\"new_string\":\"x\","
                               "\"replace_all\":\"yes\"}"),
              1);
    HAS("true or false");
    CHECK_INT(run(NULL, NULL), 1);
}

static void t_read(void)
{
    CHECK_INT(run("read_file", "{\"path\":\"a.txt\"}"), 0);
    CHECK_STR(text(), "     1\tone\n     2\ttwo\n     3\tthree\n");
    CHECK_INT(run("read_file", "{\"path\":\"a.txt\",\"offset\":2,\"limit\":1}"), 0);
    HAS("     2\ttwo\n");
    CHECK(!strstr(text(), "three"));
    HAS("use offset=3");
    CHECK_INT(run("read_file", "{\"path\":\"a.txt\",\"offset\":9}"), 1);
    HAS("past the end");
    CHECK_INT(run("read_file", "{\"path\":\"inlink\"}"), 0); /* symlink inside: fine */
    HAS("two");
    char abs[1200];
    snprintf(abs, sizeof abs, "{\"path\":\"%s/a.txt\"}", ws);
    CHECK_INT(run("read_file", abs), 0);
    CHECK_INT(run("read_file", "{\"path\":\"missing.txt\"}"), 1);
    HAS("does not exist");
    CHECK_INT(run("read_file", "{\"path\":\"src\"}"), 1);
    wsp_puts(ws, "empty.txt", "");
    CHECK_INT(run("read_file", "{\"path\":\"empty.txt\"}"), 0);
    HAS("empty file");
}

static void t_read_caps(void)
{
    struct buf b = { 0 };
    for (int i = 1; i <= 5000; i++)
        buf_printf(&b, "line %d\n", i);
    wsp_put(ws, "big.txt", b.p, b.len);
    CHECK_INT(run("read_file", "{\"path\":\"big.txt\"}"), 0);
    HAS("  2000\tline 2000\n");
    CHECK(!strstr(text(), "line 2001\n"));
    HAS("of 5000; use offset=2001");
    size_t saved = ctx.read_max_bytes;
    ctx.read_max_bytes = 100;
    CHECK_INT(run("read_file", "{\"path\":\"big.txt\"}"), 0);
    HAS("byte cap");
    CHECK(res.text.len < 400);
    ctx.read_max_bytes = saved;
    buf_reset(&b);
    for (int i = 0; i < 5000; i++)
        buf_putc(&b, 'x');
    wsp_put(ws, "long.txt", b.p, b.len);
    CHECK_INT(run("read_file", "{\"path\":\"long.txt\"}"), 0);
    HAS("[line cut at 2000 bytes]");
    CHECK(res.text.len < 2100);
    buf_free(&b);
}

static void t_binary(void)
{
    wsp_put(ws, "bin.dat", "ab\0cd", 5);
    CHECK_INT(run("read_file", "{\"path\":\"bin.dat\"}"), 0);
    HAS("binary file (5 bytes)");
    wsp_put(ws, "latin1.txt", "caf\xe9\n", 5);
    CHECK_INT(run("read_file", "{\"path\":\"latin1.txt\"}"), 0);
    HAS("binary file");
    wsp_puts(ws, "utf8.txt", "caf\xc3\xa9\n");
    CHECK_INT(run("read_file", "{\"path\":\"utf8.txt\"}"), 0);
    HAS("caf\xc3\xa9");
    CHECK_INT(run("edit_file", "{\"path\":\"bin.dat\",\"old_string\":\"ab\",\"new_string\":\"x\"}"),
              1);
    HAS("binary");
}

static void t_refusals(void)
{
    char js[1400];
    /* outside the workspace: readable (read-only) but never writable */
    snprintf(js, sizeof js, "{\"path\":\"%s/secret.txt\",\"content\":\"x\"}", out);
    CHECK_INT(run("write_file", js), 1);
    HAS("refused");
    CHECK_STR(slurp(out, "secret.txt"), "outside\n");
    CHECK_INT(run("write_file", "{\"path\":\"../outside/new.txt\",\"content\":\"x\"}"), 1);
    CHECK(access(out, F_OK) == 0 && slurp(out, "new.txt")[0] == 0);
    /* a symlink leaving the workspace */
    CHECK_INT(run("write_file", "{\"path\":\"escape/secret.txt\",\"content\":\"x\"}"), 1);
    CHECK_STR(slurp(out, "secret.txt"), "outside\n");
    CHECK_INT(run("edit_file", "{\"path\":\"escape/secret.txt\",\"old_string\":\"outside\","
                               "\"new_string\":\"pwned\"}"),
              1);
    CHECK_STR(slurp(out, "secret.txt"), "outside\n");
    CHECK_INT(run("write_file", "{\"path\":\"escape/made.txt\",\"content\":\"x\"}"), 1);
    CHECK(slurp(out, "made.txt")[0] == 0);
    /* .git/hooks and .git/config are protected */
    CHECK_INT(run("write_file", "{\"path\":\".git/hooks/pre-commit\",\"content\":\"#!/bin/sh\"}"),
              1);
    HAS("refused");
    CHECK(slurp(ws, ".git/hooks/pre-commit")[0] == 0);
    wsp_puts(ws, ".git/config", "[core]\n");
    CHECK_INT(run("edit_file", "{\"path\":\".git/config\",\"old_string\":\"[core]\","
                               "\"new_string\":\"[x]\"}"),
              1);
    CHECK_STR(slurp(ws, ".git/config"), "[core]\n");
    CHECK_INT(run("write_file", "{\"path\":\"src/../.git/hooks/x\",\"content\":\"x\"}"), 1);
    /* a hard link could name a file outside */
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s/secret.txt", out);
    snprintf(b, sizeof b, "%s/hard.txt", ws);
    if (link(a, b) == 0) {
        CHECK_INT(run("write_file", "{\"path\":\"hard.txt\",\"content\":\"x\"}"), 1);
        HAS("hard link");
        CHECK_STR(slurp(out, "secret.txt"), "outside\n");
    }
    /* hidden paths: not read, not listed, not searched */
    CHECK_INT(run("read_file", "{\"path\":\"hid/h.txt\"}"), 1);
    CHECK_INT(run("list_dir", "{\"path\":\"hid\"}"), 1);
    CHECK_INT(run("grep", "{\"pattern\":\"hiddenword\"}"), 0);
    HAS("no matches");
    CHECK_INT(run("glob", "{\"pattern\":\"h.txt\"}"), 0);
    HAS("no files match");
    CHECK_INT(run("write_file", "{\"path\":\"hid/h.txt\",\"content\":\"x\"}"), 1);
    CHECK_STR(slurp(ws, "hid/h.txt"), "hiddenword\n");
    /* list_dir outside is read-only, so allowed; a missing directory is not */
    CHECK_INT(run("list_dir", "{\"path\":\"nope\"}"), 1);
}

static void t_write(void)
{
    CHECK_INT(run("write_file", "{\"path\":\"new/deep/f.txt\",\"content\":\"hello\\nworld\"}"), 0);
    HAS("created new/deep/f.txt (11 bytes, 2 lines)");
    CHECK_STR(slurp(ws, "new/deep/f.txt"), "hello\nworld");
    char p[1200];
    snprintf(p, sizeof p, "%s/run.sh", ws);
    wsp_puts(ws, "run.sh", "echo a\n");
    chmod(p, 0751);
    CHECK_INT(run("write_file", "{\"path\":\"run.sh\",\"content\":\"echo b\\n\"}"), 0);
    HAS("wrote run.sh");
    struct stat st;
    CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0751);
    CHECK_STR(slurp(ws, "run.sh"), "echo b\n");
    /* writing through a symlink inside the workspace replaces its target, keeps the link */
    wsp_puts(ws, "target.txt", "old\n");
    wsp_symlink("target.txt", ws, "tlink");
    CHECK_INT(run("write_file", "{\"path\":\"tlink\",\"content\":\"new\\n\"}"), 0);
    CHECK_STR(slurp(ws, "target.txt"), "new\n");
    CHECK(lstat(wsp_path(p, sizeof p, ws, "tlink"), &st) == 0 && S_ISLNK(st.st_mode));
    /* no temp files left behind */
    CHECK_INT(run("list_dir", NULL), 0);
    CHECK(!strstr(text(), ".tmp"));
}

static void t_edit(void)
{
    wsp_puts(ws, "e.c", "int a;\nint b;\nint a2;\nint c;\n");
    CHECK_INT(run("edit_file", "{\"path\":\"e.c\",\"old_string\":\"int b;\","
                               "\"new_string\":\"long b;\\nlong bb;\"}"),
              0);
    CHECK_STR(slurp(ws, "e.c"), "int a;\nlong b;\nlong bb;\nint a2;\nint c;\n");
    CHECK_STR(text(), "edited e.c: 1 replacement\n"
                      "--- a/e.c\n+++ b/e.c\n@@ -1,4 +1,5 @@\n"
                      " int a;\n-int b;\n+long b;\n+long bb;\n int a2;\n int c;\n");
    /* ambiguous: the count is in the error, the file is unchanged */
    CHECK_INT(run("edit_file", "{\"path\":\"e.c\",\"old_string\":\"int a\","
                               "\"new_string\":\"int z\"}"),
              1);
    HAS("matches 2 times");
    CHECK_STR(slurp(ws, "e.c"), "int a;\nlong b;\nlong bb;\nint a2;\nint c;\n");
    CHECK_INT(run("edit_file", "{\"path\":\"e.c\",\"old_string\":\"int a\","
                               "\"new_string\":\"int z\",\"replace_all\":true}"),
              0);
    HAS("2 replacements");
    CHECK_STR(slurp(ws, "e.c"), "int z;\nlong b;\nlong bb;\nint z2;\nint c;\n");
    CHECK_INT(run("edit_file", "{\"path\":\"e.c\",\"old_string\":\"nothere\","
                               "\"new_string\":\"x\"}"),
              1);
    HAS("not found");
    CHECK_INT(run("edit_file", "{\"path\":\"e.c\",\"old_string\":\"\",\"new_string\":\"x\"}"), 1);
    CHECK_INT(run("edit_file", "{\"path\":\"e.c\",\"old_string\":\"x\",\"new_string\":\"x\"}"), 1);
    CHECK_INT(run("edit_file", "{\"path\":\"nofile.c\",\"old_string\":\"x\",\"new_string\":\"y\"}"),
              1);
    HAS("does not exist");
    /* no newline at the end */
    wsp_puts(ws, "n.txt", "a\nb");
    CHECK_INT(run("edit_file", "{\"path\":\"n.txt\",\"old_string\":\"b\",\"new_string\":\"c\"}"),
              0);
    HAS("-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n");
    CHECK_STR(slurp(ws, "n.txt"), "a\nc");
}

static void t_list(void)
{
    CHECK_INT(run("list_dir", "{}"), 0);
    HAS("a.txt\n");
    HAS("src/\n");
    HAS("escape@\n");
    HAS(".git/\n");
    CHECK(!strstr(text(), "hid/"));
    CHECK(strstr(text(), "a.txt") < strstr(text(), "src/")); /* sorted */
    size_t saved = ctx.list_max;
    ctx.list_max = 2;
    CHECK_INT(run("list_dir", "{\"path\":\".\"}"), 0);
    HAS("[2 of ");
    ctx.list_max = saved;
    CHECK_INT(run("list_dir", "{\"path\":\"a.txt\"}"), 1);
    HAS("not a directory");
}

static void t_search(void)
{
    static const char *const dirs[] = { "g", "g/sub", "g/build", "g/.git" };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        wsp_mkdir(ws, dirs[i]);
    wsp_puts(ws, "g/.gitignore", "build/\n*.log\n!keep.log\n/top.txt\n");
    wsp_puts(ws, "g/one.c", "int needle = 1;\nint other;\n");
    wsp_puts(ws, "g/sub/two.c", "  needle();\n");
    wsp_puts(ws, "g/sub/two.h", "needle\n");
    wsp_puts(ws, "g/sub/top.txt", "needle\n"); /* /top.txt is anchored: not ignored here */
    wsp_puts(ws, "g/top.txt", "needle\n");
    wsp_puts(ws, "g/build/out.c", "needle\n");
    wsp_puts(ws, "g/x.log", "needle\n");
    wsp_puts(ws, "g/keep.log", "needle\n");
    wsp_puts(ws, "g/.git/HEAD", "needle\n");
    wsp_put(ws, "g/blob.bin", "needle\0\n", 8);
    wsp_symlink(out, ws, "g/esc"); /* a symlink out: never followed */
    wsp_puts(out, "out.c", "needle\n");

    CHECK_INT(run("grep", "{\"pattern\":\"needle\",\"path\":\"g\"}"), 0);
    CHECK_STR(text(), "g/keep.log:1:needle\ng/one.c:1:int needle = 1;\n"
                      "g/sub/top.txt:1:needle\ng/sub/two.c:1:  needle();\ng/sub/two.h:1:needle\n");
    CHECK_INT(run("grep", "{\"pattern\":\"needle\\\\(\",\"path\":\"g\",\"glob\":\"*.c\"}"), 0);
    CHECK_STR(text(), "g/sub/two.c:1:  needle();\n");
    CHECK_INT(run("grep", "{\"pattern\":\"nothing_here\",\"path\":\"g\"}"), 0);
    HAS("no matches");
    CHECK_INT(run("grep", "{\"pattern\":\"(\",\"path\":\"g\"}"), 1);
    HAS("bad pattern");
    CHECK_INT(run("grep", "{\"pattern\":\"other\",\"path\":\"g/one.c\"}"), 0); /* one file */
    CHECK_STR(text(), "g/one.c:2:int other;\n");
    size_t saved = ctx.match_max;
    ctx.match_max = 2;
    CHECK_INT(run("grep", "{\"pattern\":\"needle\",\"path\":\"g\"}"), 0);
    HAS("[stopped after 2 matches");
    ctx.match_max = saved;
    CHECK_INT(run("grep", "{\"pattern\":\"needle\",\"path\":\"g/esc\"}"), 0); /* read-only ok */
    HAS("out.c:1:needle");

    CHECK_INT(run("glob", "{\"pattern\":\"*.c\",\"path\":\"g\"}"), 0);
    CHECK_STR(text(), "g/one.c\ng/sub/two.c\n");
    CHECK_INT(run("glob", "{\"pattern\":\"g/**/*.h\"}"), 0);
    CHECK_STR(text(), "g/sub/two.h\n");
    CHECK_INT(run("glob", "{\"pattern\":\"g/*.c\"}"), 0);
    CHECK_STR(text(), "g/one.c\n");
    CHECK_INT(run("glob", "{\"pattern\":\"*.zzz\"}"), 0);
    HAS("no files match");
    CHECK_INT(run("glob", "{\"pattern\":\"*.c\",\"path\":\"nope\"}"), 1);
    CHECK(srch_match("**/a", "a") && srch_match("**/a", "x/y/a") && srch_match("x/**", "x/y/z"));
    CHECK(!srch_match("*.c", "x/a.c") && srch_match("x/*/b", "x/y/b") && !srch_match("x/*", "x"));
    CHECK(srch_match("**/**/a", "x/a") && srch_match("x/**/**", "x/y"));
    /* a pathological pattern on a deep path ends quickly (the step budget) */
    char deep[1200] = "", pat[600] = "";
    for (int i = 0; i < 200; i++)
        strcat(deep, "a/");
    strcat(deep, "b");
    for (int i = 0; i < 60; i++)
        strcat(pat, "**/a*/");
    strcat(pat, "c");
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    CHECK(!srch_match(pat, deep));
    CHECK((double)clock() / CLOCKS_PER_SEC - t0 < 2.0);
}

static void t_shell(void)
{
    CHECK_INT(run("run_shell", "{\"command\":\"\"}"), 1);
    int rc = run("run_shell", "{\"command\":\"echo hi; echo err >&2; exit 3\"}");
    if (rc == 1 && strstr(text(), "refused"))
        SKIP("sandbox refused here: %s", text());
    CHECK_INT(rc, 1);
    HAS("exit code 3\n");
    HAS("hi\n");
    HAS("err\n");
    CHECK_INT(run("run_shell", "{\"command\":\"cat a.txt\"}"), 0); /* runs in the workspace */
    HAS("one\ntwo\n");
    CHECK_INT(run("run_shell", "{\"command\":\"sleep 5\",\"timeout\":0.3}"), 1);
    HAS("timed out");
    /* output capped, head and tail kept */
    size_t saved = ctx.shell_output_cap;
    ctx.shell_output_cap = 1000;
    CHECK_INT(run("run_shell", "{\"command\":\"echo FIRST; seq 1 20000; echo LAST\"}"), 0);
    HAS("FIRST");
    HAS("LAST");
    HAS("only the first and last 500 kept");
    CHECK(res.text.len < 1200);
    ctx.shell_output_cap = saved;
    /* the model cannot raise the timeout above the maximum */
    double max = ctx.shell_timeout_max_s;
    ctx.shell_timeout_max_s = 0.3;
    CHECK_INT(run("run_shell", "{\"command\":\"sleep 5\",\"timeout\":1000}"), 1);
    HAS("timed out after 0.3 s (the maximum)");
    ctx.shell_timeout_max_s = max;
}

/* ---- todo ---- */

static void t_todo(void)
{
    CHECK_INT(run("todo", "{\"items\":[{\"content\":\"read the code\",\"status\":\"completed\"},"
                          "{\"content\":\"fix\\nthe bug\",\"status\":\"in_progress\"},"
                          "{\"content\":\"run tests\",\"status\":\"pending\"}]}"),
              0);
    CHECK_STR(text(), "[x] read the code\n[>] fix the bug\n[ ] run tests\n");
    CHECK_INT(run("todo", "{\"items\":[]}"), 0);
    HAS("empty");
    /* bad calls are errors naming the problem */
    CHECK_INT(run("todo", "{}"), 1);
    HAS("missing required argument \"items\"");
    CHECK_INT(run("todo", "{\"items\":\"a, b\"}"), 1);
    HAS("must be an array");
    CHECK_INT(run("todo", "{\"items\":[\"a\"]}"), 1);
    HAS("item 1 must be an object");
    CHECK_INT(run("todo", "{\"items\":[{\"content\":\"a\",\"status\":\"done\"}]}"), 1);
    HAS("pending, in_progress or completed");
    CHECK_INT(run("todo", "{\"items\":[{\"content\":\"a\"}]}"), 1);
    CHECK_INT(run("todo", "{\"items\":[{\"content\":5,\"status\":\"pending\"}]}"), 1);
    HAS("\"content\" must be a string");
    CHECK_INT(run("todo", "{\"items\":[{\"content\":\"\",\"status\":\"pending\"}]}"), 1);
    CHECK_INT(run("todo", "{\"items\":[{\"content\":\"ok\",\"status\":\"pending\"},null]}"), 1);
    HAS("item 2");
    /* caps: items and content length */
    struct buf b = { 0 };
    buf_puts(&b, "{\"items\":[");
    for (int i = 0; i <= TODO_MAX_ITEMS; i++)
        buf_printf(&b, "%s{\"content\":\"t%d\",\"status\":\"pending\"}", i ? "," : "", i);
    buf_puts(&b, "]}");
    CHECK_INT(run("todo", b.p), 1);
    HAS("at most 100");
    buf_reset(&b);
    buf_puts(&b, "{\"items\":[{\"status\":\"pending\",\"content\":\"");
    for (int i = 0; i <= TODO_MAX_CONTENT; i++)
        buf_putc(&b, 'x');
    buf_puts(&b, "\"}]}");
    CHECK_INT(run("todo", b.p), 1);
    HAS("at most 500");
    buf_free(&b);
}

/* ---- web_fetch against a server on 127.0.0.1 run by this test ---- */

static int srv_fd = -1, srv_port;
static pthread_t srv_th;

static void srv_send(int c, int status, const char *extra, const char *ctype, const char *body,
                     size_t n)
{
    char head[1024];
    int k = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\n%s%s%s%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, extra ? extra : "", ctype ? "Content-Type: " : "", ctype ? ctype : "",
                     ctype ? "\r\n" : "", n);
    if (send(c, head, (size_t)k, MSG_NOSIGNAL) < 0)
        return;
    for (size_t off = 0; off < n;) {
        ssize_t w = send(c, body + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the client stopped reading (the download cap) */
        off += (size_t)w;
    }
}

static const char page_html[] =
    "<!DOCTYPE html><html><head><title>Test &amp; page</title>"
    "<style>body { color: red }</style><script>var x = '<p>no</p>';</script></head>"
    "<body><h1>Hello&nbsp;world</h1><p>First   para\n  with <b>bold</b> &lt;tag&gt; "
    "&#8364; &#x41; &copy; &bogus; a&b</p><!-- a comment --><ul><li>one</li><li>two</li></ul>"
    "<pre>  keep\n    spaces</pre><table><tr><td>c1</td><td>c2</td></tr></table>"
    "<SCRIPT type=\"x\">alert(1)</SCRIPT><div>end</div></body></html>";

static void *srv_main(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(srv_fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char req[8192];
        size_t n = 0;
        while (n < sizeof req - 1) {
            ssize_t k = recv(c, req + n, sizeof req - 1 - n, 0);
            if (k <= 0)
                break;
            n += (size_t)k;
            req[n] = 0;
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        req[n] = 0;
        char path[256] = "";
        sscanf(req, "GET %255s", path);
        if (!strcmp(path, "/page.html"))
            srv_send(c, 200, NULL, "text/html; charset=utf-8", page_html, strlen(page_html));
        else if (!strcmp(path, "/plain"))
            srv_send(c, 200, NULL, "text/plain", "hello plain\n", 12);
        else if (!strcmp(path, "/redir"))
            srv_send(c, 302, "Location: /page.html\r\n", NULL, "", 0);
        else if (!strcmp(path, "/redir-file"))
            srv_send(c, 302, "Location: file:///etc/passwd\r\n", NULL, "", 0);
        else if (!strcmp(path, "/redir-meta"))
            srv_send(c, 302, "Location: http://169.254.169.254/latest/meta-data/\r\n", NULL, "", 0);
        else if (!strncmp(path, "/loop", 5)) {
            char loc[300];
            snprintf(loc, sizeof loc, "Location: %s1\r\n", path);
            srv_send(c, 302, loc, NULL, "", 0);
        } else if (!strcmp(path, "/big")) {
            size_t bn = 300 * 1024;
            char *big = malloc(bn);
            if (big) {
                for (size_t i = 0; i < bn; i++)
                    big[i] = i % 64 == 63 ? '\n' : (char)('a' + i % 26);
                srv_send(c, 200, NULL, "text/plain", big, bn);
                free(big);
            }
        } else if (!strcmp(path, "/bin"))
            srv_send(c, 200, NULL, "application/octet-stream",
                     "\x7f"
                     "ELF\0\0\1\2",
                     8);
        else if (!strcmp(path, "/notype"))
            srv_send(c, 200, NULL, NULL, "just text", 9);
        else if (!strcmp(path, "/bad-utf8"))
            srv_send(c, 200, NULL, "text/plain", "ok \xff\xfe bytes\x01", 13);
        else
            srv_send(c, 404, NULL, "text/html", "<h1>Not here</h1>", 17);
        close(c);
    }
}

static int srv_start(void)
{
    srv_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { 0 };
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (srv_fd < 0 || bind(srv_fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(srv_fd, 16) < 0 ||
        getsockname(srv_fd, (struct sockaddr *)&a, &al) < 0)
        return -1;
    srv_port = ntohs(a.sin_port);
    return pthread_create(&srv_th, NULL, srv_main, NULL) == 0 ? 0 : -1;
}

static void srv_stop(void)
{
    shutdown(srv_fd, SHUT_RDWR);
    pthread_join(srv_th, NULL);
    close(srv_fd);
}

static int fetch(const char *path, const char *extra)
{
    char js[600];
    snprintf(js, sizeof js, "{\"url\":\"http://127.0.0.1:%d%s\"%s}", srv_port, path,
             extra ? extra : "");
    return run("web_fetch", js);
}

static void t_html(void)
{
    struct buf b = { 0 };
    REQUIRE(web_html_to_text(page_html, strlen(page_html), &b) == 0);
    CHECK_STR(b.p, "Test & page\n\nHello world\n\nFirst para with bold <tag> \xe2\x82\xac A "
                   "\xc2\xa9 &bogus; a&b\n\n- one\n- two\n\n  keep\n    spaces\n\nc1\tc2\n\nend");
    buf_reset(&b);
    REQUIRE(web_html_to_text("", 0, &b) == 0);
    CHECK(b.len == 0);
    /* malformed input ends cleanly */
    static const char *const bad[] = {
        "<",    "<p",        "<script>never closed",  "&#",  "&#xffffffff;",
        "<!--", "a < b > c", "<a href=\"x>y\">t</a>", "&#0;"
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf_reset(&b);
        CHECK(web_html_to_text(bad[i], strlen(bad[i]), &b) == 0);
    }
    buf_reset(&b);
    web_html_to_text("a < b > c", 9, &b);
    CHECK_STR(b.p, "a < b > c");
    buf_free(&b);
}

static void t_web(void)
{
    /* off unless the configuration allows the network; checked before anything else */
    ctx.network = 0;
    CHECK_INT(run("web_fetch", "{\"url\":\"http://127.0.0.1:1/\"}"), 1);
    CHECK_STR(text(), "web_fetch: network is disabled: sandbox.network is false");
    ctx.network = 1;
    CHECK_INT(run("web_fetch", "{}"), 1);
    HAS("missing required argument \"url\"");
    CHECK_INT(run("web_fetch", "{\"url\":\"file:///etc/passwd\"}"), 1);
    HAS("only http:// and https://");
    CHECK_INT(run("web_fetch", "{\"url\":\"ftp://127.0.0.1/\"}"), 1);
    CHECK_INT(run("web_fetch", "{\"url\":\"http://127.0.0.1/\",\"max_bytes\":\"x\"}"), 1);
    /* link-local (cloud metadata) is refused before connecting */
    CHECK_INT(run("web_fetch", "{\"url\":\"http://169.254.169.254/latest/meta-data/\"}"), 1);
    HAS("refused to connect to 169.254.169.254");
    if (srv_start() < 0) {
        ctx.network = 0;
        SKIP("cannot listen on 127.0.0.1");
    }
    CHECK_INT(fetch("/page.html", NULL), 0);
    char want[200];
    snprintf(want, sizeof want,
             "http://127.0.0.1:%d/page.html (200, text/html; charset=utf-8)\n\n"
             "Test & page\n\nHello world\n",
             srv_port);
    CHECKF(!strncmp(text(), want, strlen(want)), "%s", text());
    CHECK(!strstr(text(), "alert") && !strstr(text(), "color") && !strstr(text(), "no</p>"));
    CHECK_INT(fetch("/plain", NULL), 0);
    HAS("(200, text/plain)\n\nhello plain\n");
    /* redirects: followed (at most 5), each checked to be http(s) */
    CHECK_INT(fetch("/redir", NULL), 0);
    HAS("/page.html (200,");
    HAS("Hello world");
    CHECK_INT(fetch("/redir-file", NULL), 1);
    CHECK(!strstr(text(), "root:"));
    CHECK_INT(fetch("/loop", NULL), 1);
    HAS("redirects");
    CHECK_INT(fetch("/redir-meta", NULL), 1);
    HAS("refused to connect to 169.254.169.254");
    /* 404: an error result with the page */
    CHECK_INT(fetch("/nope", NULL), 1);
    HAS("(404, text/html)\n\nNot here");
    /* binary content is not shown; no content type: sniffed */
    CHECK_INT(fetch("/bin", NULL), 0);
    HAS("[binary content, 8 bytes, not shown]");
    CHECK_INT(fetch("/notype", NULL), 0);
    HAS("(200, no content-type)\n\njust text");
    CHECK_INT(fetch("/bad-utf8", NULL), 0);
    HAS("ok \xef\xbf\xbd\xef\xbf\xbd bytes?");
    /* size caps: the text keeps its head; the model can ask for less, never more */
    CHECK_INT(fetch("/big", ",\"max_bytes\":1000"), 0);
    HAS("abcdefghij");
    HAS("[truncated: ");
    CHECK(res.text.len < 1200);
    size_t saved_max = ctx.fetch_max_bytes, saved_dl = ctx.fetch_download_max;
    ctx.fetch_max_bytes = 2000;
    CHECK_INT(fetch("/big", ",\"max_bytes\":100000000"), 0);
    CHECK(res.text.len < 2200);
    /* the download stops at its cap */
    ctx.fetch_max_bytes = 1 << 20;
    ctx.fetch_download_max = 10000;
    CHECK_INT(fetch("/big", NULL), 0);
    HAS("of 10000+ bytes");
    CHECK(res.text.len < 11000);
    ctx.fetch_max_bytes = saved_max;
    ctx.fetch_download_max = saved_dl;
    srv_stop();
    ctx.network = 0;
}

/* ---- ignore files: .git/info/exclude, nested and parent .gitignore ---- */

static void t_ignore_files(void)
{
    static const char *const dirs[] = { "ig",     "ig/.git",     "ig/.git/info",
                                        "ig/src", "ig/src/deep", "ig/gen" };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        wsp_mkdir(ws, dirs[i]);
    wsp_puts(ws, "ig/.git/info/exclude", "# local excludes\n*.local\nsrc/deep/x.c\n");
    wsp_puts(ws, "ig/.gitignore", "gen/\n");
    wsp_puts(ws, "ig/src/.gitignore", "*.tmp\n!keep.local\n");
    wsp_puts(ws, "ig/a.c", "word\n");
    wsp_puts(ws, "ig/b.local", "word\n");
    wsp_puts(ws, "ig/gen/g.c", "word\n");
    wsp_puts(ws, "ig/src/s.c", "word\n");
    wsp_puts(ws, "ig/src/s.tmp", "word\n");
    wsp_puts(ws, "ig/src/keep.local", "word\n"); /* re-included by the nested .gitignore */
    wsp_puts(ws, "ig/src/deep/x.c", "word\n");
    wsp_puts(ws, "ig/src/deep/y.c", "word\n");
    wsp_puts(ws, "ig/src/deep/z.tmp", "word\n");
    /* from the repository root */
    CHECK_INT(run("grep", "{\"pattern\":\"word\",\"path\":\"ig\"}"), 0);
    CHECK_STR(text(), "ig/a.c:1:word\nig/src/deep/y.c:1:word\nig/src/keep.local:1:word\n"
                      "ig/src/s.c:1:word\n");
    CHECK_INT(run("glob", "{\"pattern\":\"*\",\"path\":\"ig\"}"), 0);
    CHECK_STR(text(), "ig/.gitignore\nig/a.c\nig/src/.gitignore\nig/src/deep/y.c\n"
                      "ig/src/keep.local\nig/src/s.c\n");
    /* from below it: the exclude file and the parents' .gitignore still apply */
    CHECK_INT(run("grep", "{\"pattern\":\"word\",\"path\":\"ig/src/deep\"}"), 0);
    CHECK_STR(text(), "ig/src/deep/y.c:1:word\n");
    CHECK_INT(run("glob", "{\"pattern\":\"*.c\",\"path\":\"ig/src\"}"), 0);
    CHECK_STR(text(), "ig/src/deep/y.c\nig/src/s.c\n");
    /* the workspace root walk sees the nested repository's .gitignore files */
    CHECK_INT(run("glob", "{\"pattern\":\"ig/**/*.tmp\"}"), 0);
    HAS("no files match");
}

/* A worktree (or submodule) checkout: `.git` is a file "gitdir: PATH"; a worktree's git
 * directory points at the shared one with "commondir", where info/exclude lives. */
static void t_ignore_worktree(void)
{
    static const char *const dirs[] = { "wt",
                                        "wt/main",
                                        "wt/main/.git",
                                        "wt/main/.git/info",
                                        "wt/main/.git/worktrees",
                                        "wt/main/.git/worktrees/feat",
                                        "wt/feat",
                                        "wt/sub",
                                        "wt/main/.git/modules",
                                        "wt/main/.git/modules/sub",
                                        "wt/main/.git/modules/sub/info" };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        wsp_mkdir(ws, dirs[i]);
    wsp_puts(ws, "wt/main/.git/info/exclude", "*.local\n");
    wsp_puts(ws, "wt/main/.git/worktrees/feat/commondir", "../..\n");
    wsp_puts(ws, "wt/feat/.git", "gitdir: ../main/.git/worktrees/feat\n");
    wsp_puts(ws, "wt/feat/a.c", "word\n");
    wsp_puts(ws, "wt/feat/b.local", "word\n");
    /* a submodule: relative gitdir, no commondir, its own info/exclude */
    wsp_puts(ws, "wt/main/.git/modules/sub/info/exclude", "*.gen\n");
    wsp_puts(ws, "wt/sub/.git", "gitdir: ../main/.git/modules/sub\n");
    wsp_puts(ws, "wt/sub/c.c", "word\n");
    wsp_puts(ws, "wt/sub/d.gen", "word\n");
    CHECK_INT(run("grep", "{\"pattern\":\"word\",\"path\":\"wt/feat\"}"), 0);
    CHECK_STR(text(), "wt/feat/a.c:1:word\n");
    CHECK_INT(run("grep", "{\"pattern\":\"word\",\"path\":\"wt/sub\"}"), 0);
    CHECK_STR(text(), "wt/sub/c.c:1:word\n");
    /* a broken .git file is not an error: nothing extra is ignored */
    wsp_puts(ws, "wt/sub/.git", "gitdir: ../nowhere\n");
    CHECK_INT(run("grep", "{\"pattern\":\"word\",\"path\":\"wt/sub\"}"), 0);
    CHECK_STR(text(), "wt/sub/c.c:1:word\nwt/sub/d.gen:1:word\n");
}

/* ---- lode's own files and the project configuration ---- */

static void t_lode_files(void)
{
    /* the project configuration is never writable to tools: the model cannot
     * raise its own approval mode or sandbox through it */
    CHECK_INT(run("write_file", "{\"path\":\".lode/config.json\",\"content\":\"{}\"}"), 1);
    HAS("refused");
    char p[1200];
    snprintf(p, sizeof p, "%s/.lode", ws);
    mkdir(p, 0755);
    wsp_puts(ws, ".lode/config.json", "{\"threads\": 2}\n");
    CHECK_INT(run("edit_file", "{\"path\":\".lode/config.json\",\"old_string\":\"2\","
                               "\"new_string\":\"3\"}"),
              1);
    CHECK_INT(run("write_file", "{\"path\":\"./src/../.lode/config.json\",\"content\":\"{}\"}"), 1);
    CHECK_STR(slurp(ws, ".lode/config.json"), "{\"threads\": 2}\n");
    CHECK_INT(run("write_file", "{\"path\":\".lode/other\",\"content\":\"x\"}"), 1);
    /* readable, though */
    CHECK_INT(run("read_file", "{\"path\":\".lode/config.json\"}"), 0);
    /* lode's XDG config directory (user configuration) */
    const char *xdg = getenv("XDG_CONFIG_HOME");
    if (xdg && xdg[0] == '/') {
        char js[1400];
        snprintf(js, sizeof js, "{\"path\":\"%s/lode/config.json\",\"content\":\"{}\"}", xdg);
        CHECK_INT(run("write_file", js), 1);
    }
}

static void t_list_parse(void)
{
    char **l = NULL;
    CHECK_INT(tool_list_parse("[\"a\",\"~/.ssh\"]", "sandbox.hidden", &l), 0);
    REQUIRE(l);
    CHECK_STR(l[0], "a");
    CHECK_STR(l[1], "~/.ssh");
    CHECK(l[2] == NULL);
    tool_list_free(l);
    CHECK_INT(tool_list_parse(NULL, "k", &l), 0);
    CHECK(l && !l[0]);
    tool_list_free(l);
    CHECK_INT(tool_list_parse("", "k", &l), 0);
    tool_list_free(l);
    CHECK_INT(tool_list_parse("[1]", "sandbox.hidden", &l), ERR_INVAL);
    CHECK(l == NULL && strstr(err_msg(), "sandbox.hidden"));
    CHECK_INT(tool_list_parse("{}", "k", &l), ERR_INVAL);
    tool_list_free(NULL);
    /* "~/" in sandbox.hidden is under $HOME (here: the test's home, base) */
    char hd[1200];
    snprintf(hd, sizeof hd, "%s/.ssh", base);
    mkdir(hd, 0700);
    wsp_puts(hd, "id", "KEY\n");
    const char *const hid2[] = { "~/.ssh", NULL };
    struct pol_opts o = { 0 };
    o.workspace = ws;
    o.home = base;
    o.hidden = hid2;
    struct pol *p2 = NULL;
    REQUIRE(pol_open(&p2, &o) == 0);
    struct pol *keep = ctx.pol;
    ctx.pol = p2;
    char js[1400];
    snprintf(js, sizeof js, "{\"path\":\"%s/id\"}", hd);
    CHECK_INT(run("read_file", js), 1);
    HAS("hidden");
    ctx.pol = keep;
    pol_close(p2);
}

int main(void)
{
    setup();
    TEST_RUN(t_schemas);
    TEST_RUN(t_bad_calls);
    TEST_RUN(t_read);
    TEST_RUN(t_read_caps);
    TEST_RUN(t_binary);
    TEST_RUN(t_refusals);
    TEST_RUN(t_write);
    TEST_RUN(t_edit);
    TEST_RUN(t_list);
    TEST_RUN(t_search);
    TEST_RUN(t_shell);
    TEST_RUN(t_todo);
    TEST_RUN(t_html);
    TEST_RUN(t_web);
    TEST_RUN(t_ignore_files);
    TEST_RUN(t_ignore_worktree);
    TEST_RUN(t_lode_files);
    TEST_RUN(t_list_parse);
    /* the refusals again with the policy's checked walk instead of openat2 */
    pol_close(pol);
    struct pol_opts o = { 0 };
    o.workspace = ws;
    o.home = base;
    o.hidden = hidden;
    o.no_openat2 = 1;
    if (pol_open(&pol, &o) < 0)
        printf("# pol_open: %s\n", err_msg());
    ctx.pol = pol;
    printf("# checked walk (no openat2)\n");
    TEST_RUN(t_read);
    TEST_RUN(t_refusals);
    TEST_RUN(t_search);
    TEST_RUN(t_ignore_files);
    TEST_RUN(t_lode_files);
    tool_result_free(&res);
    pol_close(pol);
    wsp_remove(base);
    TEST_END();
}
