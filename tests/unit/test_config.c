/* test_config.c - configuration lists and the project file's limits (config/config.c). */
#include "testhelp.h"

#include "common/buf.h"
#include "common/err.h"
#include "config/config.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>

static char base[512], proj[600], xdg[600];

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void user_file(const char *text)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/lode/config.json", xdg);
    if (text)
        put(p, text);
    else
        unlink(p);
}

static void project_file(const char *text)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/.lode/config.json", proj);
    if (text)
        put(p, text);
    else
        unlink(p);
}

static void setup(void)
{
    snprintf(base, sizeof base, "%s/lode-test-config.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(base))
        abort();
    char p[1200];
    snprintf(proj, sizeof proj, "%s/proj", base);
    snprintf(xdg, sizeof xdg, "%s/xdg", base);
    mkdir(proj, 0755);
    mkdir(xdg, 0755);
    snprintf(p, sizeof p, "%s/.lode", proj);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/lode", xdg);
    mkdir(p, 0755);
    setenv("XDG_CONFIG_HOME", xdg, 1);
    /* the environment layer must not leak in from the caller */
    static const char *const vars[] = {
        "LODE_TOOLS_ALLOW",         "LODE_TOOLS_DENY",        "LODE_APPROVAL",
        "LODE_SANDBOX_HIDDEN",      "LODE_SANDBOX_READ_ONLY", "LODE_SANDBOX_TIMEOUT",
        "LODE_SANDBOX_MAX_TIMEOUT", "LODE_SANDBOX_NETWORK"
    };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static void t_defaults(void)
{
    struct cfg c;
    REQUIRE(cfg_load(&c, proj) == 0);
    CHECK_STR(cfg_str(&c, CFG_TOOLS_ALLOW), "[]");
    CHECK_STR(cfg_str(&c, CFG_TOOLS_DENY), "[]");
    CHECK_STR(cfg_str(&c, CFG_SANDBOX_HIDDEN), "[]");
    CHECK_STR(cfg_str(&c, CFG_SANDBOX_READ_ONLY), "[]");
    CHECK_INT(cfg_int(&c, CFG_SANDBOX_TIMEOUT), 120);
    CHECK_INT(cfg_int(&c, CFG_SANDBOX_MAX_TIMEOUT), 600);
    CHECK_INT(cfg_int(&c, CFG_TOOLS_ALLOW), 0);
    cfg_free(&c);
}

static void t_lists(void)
{
    struct cfg c;
    user_file("{\"tools\": {\"allow\": [\"run_shell(make *)\", \"read_file\"]},\n"
              " \"sandbox\": {\"hidden\": [\"~/.ssh\"], \"timeout\": 30}}\n");
    REQUIRE(cfg_load(&c, proj) == 0);
    CHECK_STR(cfg_str(&c, CFG_TOOLS_ALLOW), "[\"run_shell(make *)\",\"read_file\"]");
    CHECK_INT(cfg_int(&c, CFG_TOOLS_ALLOW), 2);
    CHECK_STR(cfg_str(&c, CFG_SANDBOX_HIDDEN), "[\"~/.ssh\"]");
    CHECK_INT(cfg_int(&c, CFG_SANDBOX_TIMEOUT), 30);
    /* -c / environment: comma-separated, commas inside parentheses kept */
    CHECK_INT(cfg_set_arg(&c, "tools.deny=run_shell(rm *), web_fetch ,grep(a,b)", "flag -c"), 0);
    CHECK_STR(cfg_str(&c, CFG_TOOLS_DENY), "[\"run_shell(rm *)\",\"web_fetch\",\"grep(a,b)\"]");
    CHECK_INT(cfg_int(&c, CFG_TOOLS_DENY), 3);
    CHECK_INT(cfg_set_arg(&c, "tools.deny=[\"a,b\"]", "flag -c"), 0);
    CHECK_STR(cfg_str(&c, CFG_TOOLS_DENY), "[\"a,b\"]");
    CHECK_INT(cfg_set_arg(&c, "tools.deny=", "flag -c"), 0);
    CHECK_STR(cfg_str(&c, CFG_TOOLS_DENY), "[]");
    CHECK_INT(cfg_set_arg(&c, "tools.deny=[1]", "flag -c"), ERR_INVAL);
    CHECKF(strstr(err_msg(), "tools.deny") != NULL, "%s", err_msg());
    CHECK_INT(cfg_set_arg(&c, "tools.deny=[\"x\"", "flag -c"), ERR_INVAL);
    CHECK_INT(cfg_set_arg(&c, "sandbox.timeout=0", "flag -c"), ERR_INVAL);
    /* the JSON dump carries lists as arrays */
    struct buf b = { 0 };
    REQUIRE(cfg_dump(&c, &b, 1) == 0);
    cJSON *j = cJSON_Parse(b.p);
    REQUIRE(j);
    cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "tools.allow"), "value");
    CHECK(cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2);
    cJSON_Delete(j);
    buf_reset(&b);
    REQUIRE(cfg_dump(&c, &b, 0) == 0);
    CHECKF(strstr(b.p, "tools.allow") && strstr(b.p, "[\"run_shell(make *)\",\"read_file\"]"), "%s",
           b.p);
    buf_free(&b);
    cfg_free(&c);
    /* the environment */
    setenv("LODE_TOOLS_ALLOW", "glob,grep", 1);
    REQUIRE(cfg_load(&c, proj) == 0);
    CHECK_STR(cfg_str(&c, CFG_TOOLS_ALLOW), "[\"glob\",\"grep\"]");
    cfg_free(&c);
    unsetenv("LODE_TOOLS_ALLOW");
    /* files: wrong types name the file, line and key */
    user_file("{\n\"tools\": {\"allow\": \"read_file\"}}\n");
    CHECK_INT(cfg_load(&c, proj), ERR_INVAL);
    CHECKF(strstr(err_msg(), "config.json:2: tools.allow: expected an array of strings"), "%s",
           err_msg());
    cfg_free(&c);
    user_file("{\"sandbox\": {\"hidden\": [\"a\", 3]}}\n");
    CHECK_INT(cfg_load(&c, proj), ERR_INVAL);
    CHECKF(strstr(err_msg(), "sandbox.hidden") != NULL, "%s", err_msg());
    cfg_free(&c);
    user_file(NULL);
}

/* The project file may only narrow (it lies in the workspace). */
static void t_project_limits(void)
{
    static const char *const denied[] = {
        "{\"approval\": \"yolo\"}",
        "{\"sandbox\": {\"network\": true}}",
        "{\"sandbox.timeout\": 5}",
        "{\"sandbox\": {\"max_timeout\": 86400}}",
        "{\"sandbox\": {\"read_only\": []}}",
        "{\"sandbox\": {\"hidden\": []}}",
        "{\"tools\": {\"allow\": [\"run_shell\"]}}",
        "{\"backend\": \"openai:http://203.0.113.9/v1\"}",
        "{\"log\": {\"file\": \"/tmp/x\"}}",
    };
    static const char *const keys[] = { "approval",          "sandbox.network",
                                        "sandbox.timeout",   "sandbox.max_timeout",
                                        "sandbox.read_only", "sandbox.hidden",
                                        "tools.allow",       "backend",
                                        "log.file" };
    struct cfg c;
    for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
        project_file(denied[i]);
        CHECK_INT(cfg_load(&c, proj), ERR_INVAL);
        CHECKF(strstr(err_msg(), ".lode/config.json:1: ") && strstr(err_msg(), keys[i]) &&
                   strstr(err_msg(), "not allowed in the project file"),
               "%s: %s", denied[i], err_msg());
        CHECK_INT(cfg_int(&c, CFG_APPROVAL), 1); /* still the default */
        CHECK_INT(cfg_bool(&c, CFG_SANDBOX_NETWORK), 0);
        cfg_free(&c);
    }
    /* a bad value is reported as such first */
    project_file("{\"approval\": \"sometimes\"}");
    CHECK_INT(cfg_load(&c, proj), ERR_INVAL);
    CHECKF(strstr(err_msg(), "plan, default, auto-edit, yolo") != NULL, "%s", err_msg());
    cfg_free(&c);
    /* the same keys are fine in the user file, the environment and -c */
    project_file(NULL);
    user_file("{\"approval\": \"auto-edit\", \"sandbox\": {\"network\": true}}");
    REQUIRE(cfg_load(&c, proj) == 0);
    CHECK_STR(cfg_str(&c, CFG_APPROVAL), "auto-edit");
    CHECK_INT(cfg_set_arg(&c, "approval=yolo", "flag -c"), 0);
    cfg_free(&c);
    /* tools.deny from the project adds to the user's, never replaces it */
    user_file("{\"tools\": {\"deny\": [\"run_shell(rm *)\"]}}");
    project_file("{\"tools\": {\"deny\": [\"web_fetch\"]}, \"threads\": 2}");
    REQUIRE(cfg_load(&c, proj) == 0);
    CHECK_STR(cfg_str(&c, CFG_TOOLS_DENY), "[\"run_shell(rm *)\",\"web_fetch\"]");
    CHECK_INT(cfg_int(&c, CFG_TOOLS_DENY), 2);
    CHECKF(strstr(c.v[CFG_TOOLS_DENY].origin, "xdg/lode/config.json + ") &&
               strstr(c.v[CFG_TOOLS_DENY].origin, "proj/.lode/config.json"),
           "%s", c.v[CFG_TOOLS_DENY].origin);
    CHECK_INT(cfg_int(&c, CFG_THREADS), 2);
    cfg_free(&c);
    /* an empty project list removes nothing */
    project_file("{\"tools\": {\"deny\": []}}");
    REQUIRE(cfg_load(&c, proj) == 0);
    CHECK_STR(cfg_str(&c, CFG_TOOLS_DENY), "[\"run_shell(rm *)\"]");
    cfg_free(&c);
    /* without a user list: the project's alone */
    user_file(NULL);
    project_file("{\"tools\": {\"deny\": [\"grep\"]}}");
    REQUIRE(cfg_load(&c, proj) == 0);
    CHECK_STR(cfg_str(&c, CFG_TOOLS_DENY), "[\"grep\"]");
    cfg_free(&c);
    project_file(NULL);
}

int main(void)
{
    setup();
    TEST_RUN(t_defaults);
    TEST_RUN(t_lists);
    TEST_RUN(t_project_limits);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd)) {
    }
    TEST_END();
}
