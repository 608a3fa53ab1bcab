/* test_agent.c - app/agent with the script backend, in-process: the approve
 * hook (asked once, "allow always" remembered per tool, a denial told to the
 * model), the todo event, the event order, the conversation's shape for the
 * template, ag_render, and a store-less agent. tests/e2e/run.sh and
 * agent_session.sh drive the same loop through `lode run`. */
#include "app/agent.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "db/store.h"
#include "testhelp.h"
#include "tools/approval.h"
#include "tools/registry.h"

#include <cjson/cJSON.h>
#include <string.h>

static char dir[64], ws[128], script[128];

static void setup(const char *json)
{
    snprintf(dir, sizeof dir, "/tmp/lode-agent-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(ws, sizeof ws, "%s/ws", dir);
    snprintf(script, sizeof script, "%s/script.json", dir);
    if (fs_mkdir_p(ws, 0700) < 0 || fs_write_atomic(script, json, strlen(json)) < 0)
        abort();
}

static void teardown(void)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
}

struct rec {
    struct buf kinds; /* one letter per event */
    int asked;
    enum ag_decision answer;
    char last_tool[64];
    int todo_events;
    int status;
};

static void on_event(void *ud, const struct ag_event *ev)
{
    struct rec *r = ud;
    /* by enum ag_ev_kind: Init User Prefill Reasoning Text use result toDo End X(error) !result */
    static const char letters[] = "IUPRTurDEX!";
    if (ev->kind == AG_EV_REASONING || ev->kind == AG_EV_TEXT || ev->kind == AG_EV_PREFILL)
        return;
    buf_putc(&r->kinds, letters[ev->kind]);
    if (ev->kind == AG_EV_TODO)
        r->todo_events++;
    if (ev->kind == AG_EV_RESULT)
        r->status = ev->status;
}

static enum ag_decision approve(void *ud, const char *tool, const char *args, const char *reason)
{
    struct rec *r = ud;
    (void)args;
    (void)reason;
    r->asked++;
    snprintf(r->last_tool, sizeof r->last_tool, "%s", tool);
    return r->answer;
}

#define WRITE_CALL(file, text)                                                                     \
    "\"<tool_call>\\n<function=write_file>\\n<parameter=path>\\n" file                             \
    "\\n</parameter>\\n<parameter=content>\\n" text                                                \
    "\\n</parameter>\\n</function>\\n</tool_call>\""

static const char *tool_content(const cJSON *msgs, int i)
{
    const cJSON *m = cJSON_GetArrayItem(msgs, i);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
    return cJSON_IsString(c) ? c->valuestring : "";
}

/* "allow always" is asked once per tool and then remembered. */
static void t_allow_always(void)
{
    setup("[" WRITE_CALL("a.txt", "one") "," WRITE_CALL("b.txt", "two") ", \"done\"]");
    struct backend *be;
    char spec[160];
    snprintf(spec, sizeof spec, "script:%s", script);
    REQUIRE(be_open(&be, spec, NULL) == 0);
    char dbpath[128];
    snprintf(dbpath, sizeof dbpath, "%s/lode.db", dir);
    struct db *db;
    REQUIRE(db_open(&db, dbpath) == 0);
    struct ag_opts o = ag_opts_default();
    o.thinking = 0;
    o.approval = APPR_DEFAULT;
    o.cwd = ws;
    struct rec r = { .answer = AG_ALLOW_ALWAYS };
    struct ag_hooks h = { .event = on_event, .approve = approve, .ud = &r };
    struct agent *a;
    REQUIRE(ag_open(&a, be, db, NULL, &o, &h) == 0);
    CHECK_INT(ag_send(a, "write two files"), AG_DONE);
    CHECK_INT(r.asked, 1);
    CHECK_STR(r.last_tool, "write_file");
    struct buf b = { 0 };
    char p[200];
    snprintf(p, sizeof p, "%s/a.txt", ws);
    CHECK(fs_read_file(p, 100, &b) == 0 && b.p && !strcmp(b.p, "one"));
    snprintf(p, sizeof p, "%s/b.txt", ws);
    CHECK(fs_read_file(p, 100, &b) == 0 && b.p && !strcmp(b.p, "two"));
    /* events: init, user, (tool use, result, turn end) x 2, turn end, result */
    CHECK_STR(r.kinds.p, "IUurEurEE!");
    CHECK_INT(r.status, AG_DONE);
    CHECK_INT(ag_last_stats(a)->turns, 3);
    /* the conversation in the template's shape */
    const cJSON *msgs = ag_messages(a);
    CHECK_INT(cJSON_GetArraySize(msgs),
              7); /* system user assistant tool assistant tool assistant */
    const cJSON *as = cJSON_GetArrayItem(msgs, 2);
    const cJSON *call = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(as, "tool_calls"), 0);
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(call, "id")->valuestring, "call_1");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(call, "type")->valuestring, "function");
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(fn, "name")->valuestring, "write_file");
    CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(fn, "arguments")));
    const cJSON *tm = cJSON_GetArrayItem(msgs, 5);
    CHECK_STR(cJSON_GetObjectItemCaseSensitive(tm, "tool_call_id")->valuestring, "call_2");
    CHECK_STR(tool_content(msgs, 6), "done");
    /* the rendering ends with the generation prompt (thinking off) */
    struct buf rd = { 0 };
    CHECK(ag_render(a, &rd) == 0);
    CHECK(rd.p && strstr(rd.p, "<tool_response>") != NULL);
    const char *gen = "<|im_start|>assistant\n<think>\n\n</think>\n\n";
    CHECK(rd.len > strlen(gen) && !strcmp(rd.p + rd.len - strlen(gen), gen));
    /* the session holds every message */
    struct db_session s;
    CHECK(db_session_get(db, ag_session_id(a), &s) == 0 && s.n_messages == 7);
    CHECK_STR(s.title, "write two files");
    db_session_free(&s);
    buf_free(&rd);
    buf_free(&b);
    buf_free(&r.kinds);
    ag_close(a);
    db_close(db);
    be_close(be);
    teardown();
}

/* A denial from the user is told to the model; nothing is written. No store. */
static void t_user_denies(void)
{
    setup("[" WRITE_CALL("a.txt", "one") ", \"ok\"]");
    struct backend *be;
    char spec[160];
    snprintf(spec, sizeof spec, "script:%s", script);
    REQUIRE(be_open(&be, spec, NULL) == 0);
    struct ag_opts o = ag_opts_default();
    o.thinking = 0;
    o.cwd = ws;
    struct rec r = { .answer = AG_DENY };
    struct ag_hooks h = { .event = on_event, .approve = approve, .ud = &r };
    struct agent *a;
    REQUIRE(ag_open(&a, be, NULL, NULL, &o, &h) == 0);
    CHECK_INT(ag_send(a, "write"), AG_DONE);
    CHECK_INT(r.asked, 1);
    char p[200];
    snprintf(p, sizeof p, "%s/a.txt", ws);
    CHECK(!fs_exists(p));
    CHECK(strstr(tool_content(ag_messages(a), 3), "denied by the user") != NULL);
    CHECK_STR(ag_session_id(a), "");
    /* plan mode never asks */
    ag_set_approval(a, APPR_PLAN);
    CHECK_INT(ag_approval(a), APPR_PLAN);
    buf_free(&r.kinds);
    ag_close(a);
    be_close(be);
    teardown();
}

/* A todo call updates the task list and tells the UI. */
static void t_todo(void)
{
    setup("[\"<tool_call>\\n<function=todo>\\n<parameter=items>\\n[{\\\"content\\\": \\\"read\\\", "
          "\\\"status\\\": \\\"in_progress\\\"}]\\n</parameter>\\n</function>\\n</tool_call>\", "
          "\"ok\"]");
    struct backend *be;
    char spec[160];
    snprintf(spec, sizeof spec, "script:%s", script);
    REQUIRE(be_open(&be, spec, NULL) == 0);
    struct ag_opts o = ag_opts_default();
    o.thinking = 0;
    o.approval = APPR_PLAN;
    o.cwd = ws;
    struct rec r = { 0 };
    struct ag_hooks h = { .event = on_event, .ud = &r };
    struct agent *a;
    REQUIRE(ag_open(&a, be, NULL, NULL, &o, &h) == 0);
    CHECK(ag_todo(a) == NULL);
    CHECK_INT(ag_send(a, "plan"), AG_DONE);
    int has_todo = 0;
    for (int i = 0; i < tool_count(); i++)
        has_todo |= !strcmp(tool_name(i), "todo");
    if (has_todo) {
        CHECK_INT(r.todo_events, 1);
        CHECK(ag_todo(a) && strstr(ag_todo(a), "\"in_progress\""));
    }
    buf_free(&r.kinds);
    ag_close(a);
    be_close(be);
    teardown();
}

int main(void)
{
    TEST_RUN(t_allow_always);
    TEST_RUN(t_user_denies);
    TEST_RUN(t_todo);
    TEST_END();
}
