/*
 * test_ui_polish.c - more pure parts of the interface: the input history
 * file (ui/history), the status line's prefill indicator (ui/sline) and
 * toggling one tool card or thinking block (ui/transcript).
 */
#include "tests/unit/testhelp.h"
#include "common/buf.h"
#include "common/fs.h"
#include "ui/history.h"
#include "ui/input.h"
#include "ui/sline.h"
#include "ui/transcript.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static void t_escape(void)
{
    const char *cases[] = { "plain", "two\nlines", "back\\slash\\n not a newline", "cr\r\n",
                            "ünïcode 🎉" };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf e = { 0 }, u = { 0 };
        REQUIRE(hist_escape(cases[i], &e) == 0);
        /* one line per entry */
        CHECK(memchr(e.p, '\n', e.len) == e.p + e.len - 1);
        REQUIRE(hist_unescape(e.p, e.len - 1, &u) == 0);
        CHECK_STR(u.p, cases[i]);
        buf_free(&e);
        buf_free(&u);
    }
}

static void t_history_file(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/history", tmpdir);
    struct input in;
    in_init(&in, 10);
    CHECK_INT(hist_load(&in, path), 0); /* missing file: empty history */
    CHECK_INT(in.nhist, 0);
    CHECK_INT(hist_append(path, "first"), 0);
    CHECK_INT(hist_append(path, "a\nmulti-line one"), 0);
    CHECK_INT(hist_append(path, " a secret with a leading space"), 0);
    CHECK_INT(hist_append(path, ""), 0);
    char *big = malloc(HIST_ENTRY_MAX + 2);
    REQUIRE(big);
    memset(big, 'x', HIST_ENTRY_MAX + 1);
    big[HIST_ENTRY_MAX + 1] = 0;
    CHECK_INT(hist_append(path, big), 0); /* too long: not written */
    free(big);
    CHECK_INT(hist_load(&in, path), 0);
    REQUIRE(in.nhist == 2);
    CHECK_STR(in.hist[0], "first");
    CHECK_STR(in.hist[1], "a\nmulti-line one");
    /* up recalls the newest */
    in_up(&in);
    CHECK_STR(in_text(&in), "a\nmulti-line one");
    in_free(&in);

    /* a torn last line (a crash mid-append) is dropped */
    FILE *f = fopen(path, "a");
    REQUIRE(f);
    fputs("torn", f);
    fclose(f);
    in_init(&in, 10);
    CHECK_INT(hist_load(&in, path), 0);
    CHECK_INT(in.nhist, 2);
    in_free(&in);
}

static void t_history_bound(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/history2", tmpdir);
    struct buf b = { 0 };
    for (int i = 0; i < 2 * HIST_KEEP + 5; i++)
        buf_printf(&b, "entry %d\n", i);
    REQUIRE(fs_write_atomic(path, b.p, b.len) == 0);
    buf_free(&b);
    struct input in;
    in_init(&in, 10);
    CHECK_INT(hist_load(&in, path), 0);
    CHECK_INT(in.nhist, HIST_KEEP);
    CHECK_STR(in.hist[0], "entry 1005");
    CHECK_STR(in.hist[HIST_KEEP - 1], "entry 2004");
    in_free(&in);
    /* the file was cut to the newest HIST_KEEP entries */
    REQUIRE(fs_read_file(path, 1 << 20, &b) == 0);
    long lines = 0;
    for (size_t i = 0; i < b.len; i++)
        lines += b.p[i] == '\n';
    CHECK_INT(lines, HIST_KEEP);
    CHECK(!strncmp(b.p, "entry 1005\n", 11));
    buf_free(&b);
}

static void t_prefill(void)
{
    char s[256];
    CHECK_INT(sl_fmt_prefill(s, sizeof s, 0, 0, -1), 0); /* none running */
    CHECK_STR(s, "");
    CHECK_INT(sl_fmt_prefill(s, sizeof s, 10, 10, -1), 0); /* done */
    sl_fmt_prefill(s, sizeof s, 500, 2000, 12.4);
    CHECK_STR(s, " · prefill ███░░░░░░░░░ 500/2.0k ETA 12s");
    sl_fmt_prefill(s, sizeof s, 30000, 40000, 125);
    CHECK_STR(s, " · prefill █████████░░░ 30k/40k ETA 2m05s");
    sl_fmt_prefill(s, sizeof s, 1, 3, -1);
    CHECK_STR(s, " · prefill ████░░░░░░░░ 1/3");
    /* a small buffer: cut, still terminated */
    char t[12];
    sl_fmt_prefill(t, sizeof t, 1, 3, 5);
    CHECK(strlen(t) < sizeof t);
    char c[32];
    sl_fmt_count(c, sizeof c, 1500000);
    CHECK_STR(c, "1.5M");
    sl_bar(c, sizeof c, 2.0, 4);
    CHECK_STR(c, "████");
}

static void t_toggle(void)
{
    struct transcript t;
    tr_init(&t);
    tr_add(&t, TR_USER, "hi", 2);
    tr_stream(&t, TR_REASONING, "thinking A", 10);
    tr_close(&t);
    tr_tool(&t, "c1", "run_shell", "seq 9");
    tr_tool_done(&t, "c1", TR_OK, 0.1, "1\n2\n3\n4\n5\n6\n7\n8\n9", 17);
    tr_tool(&t, "c2", "run_shell", "seq 8");
    tr_tool_done(&t, "c2", TR_OK, 0.1, "1\n2\n3\n4\n5\n6\n7\n8", 15);
    struct buf b = { 0 };
    tr_layout(&t, 60);
    tr_dump(&t, &b);
    CHECK(strstr(b.p, "… 5 more lines (9 in all") != NULL);
    CHECK(strstr(b.p, "… 4 more lines (8 in all") != NULL);
    /* the newest card (1) expands alone */
    CHECK_INT(tr_toggle(&t, 1), 0);
    tr_layout(&t, 60);
    buf_reset(&b);
    tr_dump(&t, &b);
    CHECK(strstr(b.p, "… 5 more lines (9 in all") != NULL);
    CHECK(strstr(b.p, "(8 in all") == NULL);
    CHECK(strstr(b.p, "    8\n") != NULL);
    /* 3: the thinking block collapses alone */
    CHECK_INT(tr_toggle(&t, 3), 0);
    tr_layout(&t, 60);
    buf_reset(&b);
    tr_dump(&t, &b);
    CHECK(strstr(b.p, "▸ thinking (10 chars") != NULL);
    CHECK(tr_toggle(&t, 4) < 0); /* only three */
    /* Ctrl+O toggles all cards: every card expanded, the single flips reset */
    tr_toggle_all(&t, TR_TOOL);
    tr_layout(&t, 60);
    buf_reset(&b);
    tr_dump(&t, &b);
    CHECK(strstr(b.p, "more lines") == NULL);
    CHECK(strstr(b.p, "    9\n") != NULL);
    tr_toggle_all(&t, TR_REASONING);
    tr_toggle_all(&t, TR_REASONING);
    tr_layout(&t, 60);
    buf_reset(&b);
    tr_dump(&t, &b);
    CHECK(strstr(b.p, "▾ thinking (10 chars") != NULL);
    buf_free(&b);
    tr_free(&t);
}

int main(void)
{
    if (!setlocale(LC_CTYPE, "C.UTF-8") && !setlocale(LC_CTYPE, "en_US.UTF-8")) {
        printf("skip test_ui_polish (no UTF-8 locale)\n# summary: 0 passed, 0 failed, 1 skipped\n");
        return 0;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lode-test-uipolish-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("cannot make a temporary directory\n");
        return 1;
    }
    TEST_RUN(t_escape);
    TEST_RUN(t_history_file);
    TEST_RUN(t_history_bound);
    TEST_RUN(t_prefill);
    TEST_RUN(t_toggle);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        printf("could not remove %s\n", tmpdir);
    TEST_END();
}
