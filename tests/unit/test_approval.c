/* test_approval.c - approval modes and tools.allow / tools.deny rules (tools/approval.c). */
#include "testhelp.h"

#include "common/err.h"
#include "tools/approval.h"

#include <cjson/cJSON.h>

enum { A = APPR_ALLOW, Q = APPR_ASK, D = APPR_DENY };

static enum appr_verdict decide(int mode, const struct appr_rules *r, const char *tool,
                                const char *json, const char **why)
{
    cJSON *a = json ? cJSON_Parse(json) : NULL;
    if (json && !a) {
        printf("    bad test JSON: %s\n", json);
        return (enum appr_verdict) - 1;
    }
    enum appr_verdict v = appr_decide(mode, r, tool, a, why);
    cJSON_Delete(a);
    return v;
}

static void t_modes_names(void)
{
    CHECK_INT(appr_mode_parse("plan"), APPR_PLAN);
    CHECK_INT(appr_mode_parse("default"), APPR_DEFAULT);
    CHECK_INT(appr_mode_parse("auto-edit"), APPR_AUTO_EDIT);
    CHECK_INT(appr_mode_parse("yolo"), APPR_YOLO);
    CHECK_INT(appr_mode_parse("YOLO"), -1);
    CHECK_INT(appr_mode_parse(""), -1);
    CHECK_INT(appr_mode_parse(NULL), -1);
    for (int m = 0; m < APPR_NMODES; m++)
        CHECK_INT(appr_mode_parse(appr_mode_name(m)), m);
    CHECK_STR(appr_mode_name(99), "unknown");
    CHECK_INT(appr_mode_next(APPR_PLAN), APPR_DEFAULT);
    CHECK_INT(appr_mode_next(APPR_DEFAULT), APPR_AUTO_EDIT);
    CHECK_INT(appr_mode_next(APPR_AUTO_EDIT), APPR_YOLO);
    CHECK_INT(appr_mode_next(APPR_YOLO), APPR_PLAN);
    CHECK_INT(appr_mode_next(-5), APPR_PLAN);
}

/* Every mode x every tool, without rules. */
static void t_mode_table(void)
{
    static const struct {
        const char *tool, *args;
        int v[APPR_NMODES]; /* plan, default, auto-edit, yolo */
    } tab[] = {
        { "read_file", "{\"path\":\"a.c\"}", { A, A, A, A } },
        { "list_dir", "{}", { A, A, A, A } },
        { "glob", "{\"pattern\":\"*.c\"}", { A, A, A, A } },
        { "grep", "{\"pattern\":\"x\"}", { A, A, A, A } },
        { "todo", "{\"items\":[]}", { A, A, A, A } },
        { "write_file", "{\"path\":\"a.c\",\"content\":\"\"}", { D, Q, A, A } },
        { "edit_file", "{\"path\":\"a.c\"}", { D, Q, A, A } },
        { "run_shell", "{\"command\":\"make test\"}", { D, Q, Q, A } },
        { "web_fetch", "{\"url\":\"http://x/\"}", { D, Q, Q, A } },
        { "rm_rf", "{}", { D, D, D, D } },
        { "", "{}", { D, D, D, D } },
        { "Read_File", "{}", { D, D, D, D } },
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        for (int m = 0; m < APPR_NMODES; m++) {
            const char *why = NULL;
            int v = (int)decide(m, NULL, tab[i].tool, tab[i].args, &why);
            CHECKF(v == tab[i].v[m], "%s in %s: got %d want %d (%s)", tab[i].tool,
                   appr_mode_name(m), v, tab[i].v[m], why ? why : "(null)");
            CHECK(why != NULL && why[0]);
        }
    const char *why;
    CHECK_INT(appr_decide(APPR_YOLO, NULL, NULL, NULL, &why), D);
    CHECK_INT(appr_decide(APPR_DEFAULT, NULL, "read_file", NULL, NULL), A);
    CHECK_INT(appr_decide(42, NULL, "read_file", NULL, &why), D);
    CHECK_INT(appr_decide(-1, NULL, "read_file", NULL, &why), D);
}

static void t_reasons(void)
{
    const char *why = NULL;
    CHECK_INT(decide(APPR_DEFAULT, NULL, "run_shell", "{\"command\":\"make test\"}", &why), Q);
    CHECK_STR(why, "run_shell: make test");
    CHECK_INT(decide(APPR_DEFAULT, NULL, "write_file", "{\"path\":\"src/a.c\"}", &why), Q);
    CHECK_STR(why, "write_file: src/a.c");
    CHECK_INT(decide(APPR_PLAN, NULL, "write_file", "{\"path\":\"a.c\"}", &why), D);
    CHECKF(strstr(why, "plan mode is read-only") != NULL, "%s", why);
    CHECK_INT(decide(APPR_PLAN, NULL, "nope", "{}", &why), D);
    CHECK_STR(why, "unknown tool \"nope\"");
    /* multi-line and long arguments become one short line */
    CHECK_INT(decide(APPR_DEFAULT, NULL, "run_shell", "{\"command\":\"a\\nb\"}", &why), Q);
    CHECK_STR(why, "run_shell: a b");
    char big[2000] = "{\"command\":\"";
    memset(big + strlen(big), 'x', 1000);
    strcpy(big + strlen(big), "\"}");
    CHECK_INT(decide(APPR_DEFAULT, NULL, "run_shell", big, &why), Q);
    CHECK(strlen(why) < 200 && strstr(why, "...") != NULL);
}

static void t_rules_parse(void)
{
    struct appr_rules *r = (struct appr_rules *)1;
    CHECK_INT(appr_rules_new(&r, NULL, NULL), 0);
    appr_rules_free(r);
    CHECK_INT(appr_rules_new(&r, "", ""), 0);
    appr_rules_free(r);
    CHECK_INT(appr_rules_new(&r, "[]", "[\"run_shell\", \" read_file(*.env) \"]"), 0);
    appr_rules_free(r);
    appr_rules_free(NULL);
    static const char *const bad[] = {
        "{}",
        "\"run_shell\"",
        "[1]",
        "[\"\"]",
        "[\"rm\"]",
        "[\"run_shell(\"]",
        "[\"run_shell()\"]",
        "[\"run_shell(x\"]",
        "[\"todo(x)\"]",
        "[null]",
        "[\"run_shell(x)y\"]",
        "not json",
        "[\"(x)\"]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = (struct appr_rules *)1;
        int rc = appr_rules_new(&r, bad[i], NULL);
        CHECKF(rc == ERR_INVAL && r == NULL, "allow %s: rc %d", bad[i], rc);
        CHECKF(strstr(err_msg(), "tools.allow") != NULL, "%s", err_msg());
        rc = appr_rules_new(&r, NULL, bad[i]);
        CHECKF(rc == ERR_INVAL && r == NULL, "deny %s: rc %d", bad[i], rc);
        CHECKF(strstr(err_msg(), "tools.deny") != NULL, "%s", err_msg());
    }
    /* the message names the bad pattern */
    CHECK_INT(appr_rules_new(&r, "[\"read_file\", \"bash(ls)\"]", NULL), ERR_INVAL);
    CHECKF(strstr(err_msg(), "bash(ls)") != NULL, "%s", err_msg());
    /* too many patterns, too long a pattern */
    char *many = malloc(20000);
    REQUIRE(many);
    strcpy(many, "[");
    for (int i = 0; i < 1001; i++)
        strcat(many, i ? ",\"todo\"" : "\"todo\"");
    strcat(many, "]");
    CHECK_INT(appr_rules_new(&r, many, NULL), ERR_INVAL);
    snprintf(many, 20000, "[\"run_shell(%05000d)\"]", 0);
    CHECK_INT(appr_rules_new(&r, many, NULL), ERR_INVAL);
    free(many);
}

/* Rules over modes x tools, adversarial arguments included. */
static void t_rules_table(void)
{
    static const struct {
        const char *allow, *deny, *tool, *args;
        int v[APPR_NMODES]; /* plan, default, auto-edit, yolo */
    } tab[] = {
        /* allow turns ask into allow, never in plan mode */
        { "[\"run_shell(make *)\"]",
          0,
          "run_shell",
          "{\"command\":\"make test\"}",
          { D, A, A, A } },
        { "[\"run_shell(make *)\"]", 0, "run_shell", "{\"command\":\"makefoo\"}", { D, Q, Q, A } },
        { "[\"run_shell\"]", 0, "run_shell", "{\"command\":\"rm -rf /\"}", { D, A, A, A } },
        { "[\"write_file\"]", 0, "write_file", "{\"path\":\"a\"}", { D, A, A, A } },
        { "[\"write_file(src/*)\"]", 0, "write_file", "{\"path\":\"src/a.c\"}", { D, A, A, A } },
        { "[\"write_file(src/*)\"]", 0, "write_file", "{\"path\":\"./src//a.c\"}", { D, A, A, A } },
        /* allow is strict: a path leaving src/ lexically is not covered */
        { "[\"write_file(src/*)\"]", 0, "write_file", "{\"path\":\"src/../b.c\"}", { D, Q, A, A } },
        { "[\"web_fetch(https://docs.example.com/*)\"]",
          0,
          "web_fetch",
          "{\"url\":\"https://docs.example.com/a\"}",
          { D, A, A, A } },
        { "[\"web_fetch(https://docs.example.com/*)\"]",
          0,
          "web_fetch",
          "{\"url\":\"https://evil.com/?https://docs.example.com/\"}",
          { D, Q, Q, A } },
        /* chained commands: each part needs its own rule; substitutions never pre-approved */
        { "[\"run_shell(make *)\"]",
          0,
          "run_shell",
          "{\"command\":\"make a; rm -rf ~\"}",
          { D, Q, Q, A } },
        { "[\"run_shell(make *)\"]",
          0,
          "run_shell",
          "{\"command\":\"make a && make b\"}",
          { D, A, A, A } },
        { "[\"run_shell(make *)\"]",
          0,
          "run_shell",
          "{\"command\":\"make $(rm -rf ~)\"}",
          { D, Q, Q, A } },
        { "[\"run_shell(make *)\"]",
          0,
          "run_shell",
          "{\"command\":\"make `id`\"}",
          { D, Q, Q, A } },
        { "[\"run_shell(make *)\"]",
          0,
          "run_shell",
          "{\"command\":\"make a | sh\"}",
          { D, Q, Q, A } },
        { "[\"run_shell(make *)\"]",
          0,
          "run_shell",
          "{\"command\":\"make a\\nrm x\"}",
          { D, Q, Q, A } },
        /* deny wins always, read-only tools and yolo included */
        { 0, "[\"run_shell\"]", "run_shell", "{\"command\":\"ls\"}", { D, D, D, D } },
        { "[\"run_shell\"]",
          "[\"run_shell(rm *)\"]",
          "run_shell",
          "{\"command\":\"rm -rf x\"}",
          { D, D, D, D } },
        { "[\"run_shell\"]",
          "[\"run_shell(rm *)\"]",
          "run_shell",
          "{\"command\":\"ls\"}",
          { D, A, A, A } },
        { 0, "[\"read_file(*.env)\"]", "read_file", "{\"path\":\".env\"}", { D, D, D, D } },
        { 0, "[\"read_file(*.env)\"]", "read_file", "{\"path\":\"a.c\"}", { A, A, A, A } },
        { 0, "[\"grep\"]", "grep", "{\"pattern\":\"x\"}", { D, D, D, D } },
        { 0, "[\"todo\"]", "todo", "{}", { D, D, D, D } },
        /* deny is generous: other spellings and wrappers still match */
        { 0, "[\"read_file(.env)\"]", "read_file", "{\"path\":\"./.env\"}", { D, D, D, D } },
        { 0, "[\"read_file(.env)\"]", "read_file", "{\"path\":\"sub/../.env\"}", { D, D, D, D } },
        { 0, "[\"read_file(.env)\"]", "read_file", "{\"path\":\"/ws/.env\"}", { D, D, D, D } },
        { 0,
          "[\"write_file(secrets/*)\"]",
          "write_file",
          "{\"path\":\"/abs/ws/secrets/k\"}",
          { D, D, D, D } },
        { 0,
          "[\"run_shell(rm *)\"]",
          "run_shell",
          "{\"command\":\"ls; rm -rf x\"}",
          { D, D, D, D } },
        { 0,
          "[\"run_shell(rm *)\"]",
          "run_shell",
          "{\"command\":\"sudo rm -rf x\"}",
          { D, D, D, D } },
        { 0,
          "[\"run_shell(rm *)\"]",
          "run_shell",
          "{\"command\":\"env A=1 timeout 5 rm x\"}",
          { D, D, D, D } },
        { 0,
          "[\"run_shell(rm *)\"]",
          "run_shell",
          "{\"command\":\"echo $(rm x)\"}",
          { D, D, D, D } },
        { 0,
          "[\"run_shell(rm *)\"]",
          "run_shell",
          "{\"command\":\"ls | xargs rm -f\"}",
          { D, D, D, D } },
        { 0,
          "[\"run_shell(git push*)\"]",
          "run_shell",
          "{\"command\":\"git status\"}",
          { D, Q, Q, A } },
        /* adversarial arguments: missing, non-string, wrong container */
        { "[\"run_shell(make *)\"]", 0, "run_shell", "{}", { D, Q, Q, A } },
        { "[\"run_shell(make *)\"]", 0, "run_shell", "{\"command\":42}", { D, Q, Q, A } },
        { "[\"run_shell(*)\"]", 0, "run_shell", "{\"command\":[\"make\"]}", { D, Q, Q, A } },
        { "[\"run_shell(*)\"]", 0, "run_shell", "[\"make\"]", { D, Q, Q, A } },
        { "[\"run_shell(*)\"]", 0, "run_shell", "{\"command\":null}", { D, Q, Q, A } },
        { "[\"run_shell(*)\"]", 0, "run_shell", "{\"command\":\"\"}", { D, Q, Q, A } },
        { 0, "[\"run_shell(rm*)\"]", "run_shell", "{\"command\":{\"x\":\"rm\"}}", { D, Q, Q, A } },
        { 0, "[\"run_shell\"]", "run_shell", "{\"command\":7}", { D, D, D, D } },
        { "[\"list_dir(.)\"]", "[\"list_dir(secret*)\"]", "list_dir", "{}", { A, A, A, A } },
        { 0, "[\"list_dir(.)\"]", "list_dir", "{}", { D, D, D, D } },
        { 0, "[\"list_dir(.)\"]", "list_dir", "{\"path\":\"./\"}", { D, D, D, D } },
        /* rules of another tool do not apply */
        { "[\"write_file\"]", "[\"read_file\"]", "edit_file", "{\"path\":\"a\"}", { D, Q, A, A } },
        /* globs: ?, classes, escapes */
        { "[\"run_shell(make [a-c]?)\"]",
          0,
          "run_shell",
          "{\"command\":\"make b1\"}",
          { D, A, A, A } },
        { "[\"run_shell(make [!a-c]?)\"]",
          0,
          "run_shell",
          "{\"command\":\"make b1\"}",
          { D, Q, Q, A } },
        { "[\"run_shell(echo \\\\*)\"]",
          0,
          "run_shell",
          "{\"command\":\"echo *\"}",
          { D, A, A, A } },
        { "[\"run_shell(echo \\\\*)\"]",
          0,
          "run_shell",
          "{\"command\":\"echo x\"}",
          { D, Q, Q, A } },
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        struct appr_rules *r = NULL;
        int rc = appr_rules_new(&r, tab[i].allow, tab[i].deny);
        CHECKF(rc == 0, "row %zu: %s", i, err_msg());
        if (rc < 0)
            continue;
        for (int m = 0; m < APPR_NMODES; m++) {
            const char *why = NULL;
            int v = (int)decide(m, r, tab[i].tool, tab[i].args, &why);
            CHECKF(v == tab[i].v[m], "row %zu %s %s in %s: got %d want %d (%s)", i, tab[i].tool,
                   tab[i].args, appr_mode_name(m), v, tab[i].v[m], why ? why : "(null)");
        }
        appr_rules_free(r);
    }
}

static void t_rule_reasons(void)
{
    struct appr_rules *r = NULL;
    REQUIRE(appr_rules_new(&r, "[\"run_shell(make *)\"]", "[\"run_shell(rm *)\"]") == 0);
    const char *why;
    CHECK_INT(decide(APPR_DEFAULT, r, "run_shell", "{\"command\":\"make test\"}", &why), A);
    CHECK_STR(why, "run_shell: make test (allowed by tools.allow \"run_shell(make *)\")");
    CHECK_INT(decide(APPR_YOLO, r, "run_shell", "{\"command\":\"rm -rf /\"}", &why), D);
    CHECK_STR(why, "run_shell: rm -rf / (denied by tools.deny \"run_shell(rm *)\")");
    appr_rules_free(r);
}

/* Huge arguments: bounded work, and a deny rule with a glob cannot be dodged
 * by making the argument too long to check. */
static void t_huge(void)
{
    size_t n = 1 << 20;
    char *cmd = malloc(n + 64);
    REQUIRE(cmd);
    memset(cmd, 'a', n);
    strcpy(cmd + n, "; rm -rf x");
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "command", cmd);
    struct appr_rules *r = NULL;
    REQUIRE(appr_rules_new(&r, "[\"run_shell(*)\"]", "[\"run_shell(rm *)\"]") == 0);
    const char *why;
    CHECK_INT(appr_decide(APPR_YOLO, r, "run_shell", a, &why), D);
    CHECKF(strstr(why, "too long") != NULL, "%s", why);
    appr_rules_free(r);
    /* no deny glob: the mode decides, allow globs do not apply */
    REQUIRE(appr_rules_new(&r, "[\"run_shell(*)\"]", NULL) == 0);
    CHECK_INT(appr_decide(APPR_DEFAULT, r, "run_shell", a, &why), Q);
    CHECK_INT(appr_decide(APPR_YOLO, r, "run_shell", a, &why), A);
    appr_rules_free(r);
    cJSON_Delete(a);
    /* a pathological glob against a long (but checkable) argument stays fast */
    memset(cmd, 'a', 16000);
    cmd[16000] = 0;
    a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "command", cmd);
    REQUIRE(appr_rules_new(&r, "[\"run_shell(*a*a*a*a*a*a*a*a*a*a*b)\"]", NULL) == 0);
    CHECK_INT(appr_decide(APPR_DEFAULT, r, "run_shell", a, &why), Q);
    appr_rules_free(r);
    /* many separators: too many parts to check means no allow, and deny */
    for (int i = 0; i < 16000; i++)
        cmd[i] = i % 2 ? ';' : 'x';
    cJSON_SetValuestring(cJSON_GetObjectItem(a, "command"), cmd);
    REQUIRE(appr_rules_new(&r, "[\"run_shell(x)\"]", NULL) == 0);
    CHECK_INT(appr_decide(APPR_DEFAULT, r, "run_shell", a, &why), Q);
    appr_rules_free(r);
    REQUIRE(appr_rules_new(&r, "[\"run_shell(x)\"]", "[\"run_shell(rm*)\"]") == 0);
    CHECK_INT(appr_decide(APPR_DEFAULT, r, "run_shell", a, &why), D);
    CHECKF(strstr(why, "too many") != NULL, "%s", why);
    appr_rules_free(r);
    /* a few hundred parts are still checked one by one */
    strcpy(cmd, "x");
    for (int i = 0; i < 200; i++)
        strcat(cmd, ";x");
    cJSON_SetValuestring(cJSON_GetObjectItem(a, "command"), cmd);
    REQUIRE(appr_rules_new(&r, "[\"run_shell(x)\"]", NULL) == 0);
    CHECK_INT(appr_decide(APPR_DEFAULT, r, "run_shell", a, &why), A);
    appr_rules_free(r);
    cJSON_Delete(a);
    /* a deep path: every tail is still checked by a deny rule */
    cmd[0] = 0;
    for (int i = 0; i < 7000; i++)
        strcat(cmd + 2 * i, "a/");
    strcat(cmd, ".env");
    a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "path", cmd);
    REQUIRE(appr_rules_new(&r, "[\"read_file(*a*a*a*b)\"]", "[\"read_file(.env)\"]") == 0);
    CHECK_INT(appr_decide(APPR_YOLO, r, "read_file", a, &why), D);
    appr_rules_free(r);
    cJSON_Delete(a);
    free(cmd);
}

int main(void)
{
    TEST_RUN(t_modes_names);
    TEST_RUN(t_mode_table);
    TEST_RUN(t_reasons);
    TEST_RUN(t_rules_parse);
    TEST_RUN(t_rules_table);
    TEST_RUN(t_rule_reasons);
    TEST_RUN(t_huge);
    TEST_END();
}
