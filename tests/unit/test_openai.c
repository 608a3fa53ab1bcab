/*
 * test_openai.c - the remote backend (app/backend_openai.c) against the
 * imitation server tests/ref/openai_server.py on 127.0.0.1: streamed
 * reasoning and content, parsed and raw-XML tool calls, stream errors,
 * timeouts, authentication, retries, interrupts and the request body sent.
 * The server's scenario is the request's model name (see the script).
 */
#include "app/backend.h"
#include "common/buf.h"
#include "common/err.h"
#include "testhelp.h"

#include <cjson/cJSON.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

static pid_t srv_pid;
static char srv_dir[64], srv_log[128];
static int srv_port;

static int server_start(void)
{
    snprintf(srv_dir, sizeof srv_dir, "/tmp/lode-openai.XXXXXX");
    if (!mkdtemp(srv_dir))
        return -1;
    char portf[128];
    snprintf(portf, sizeof portf, "%s/port", srv_dir);
    snprintf(srv_log, sizeof srv_log, "%s/log.jsonl", srv_dir);
    srv_pid = fork();
    if (srv_pid < 0)
        return -1;
    if (srv_pid == 0) {
        /* Off our stdout, so a reader of it never waits on the server. */
        char errf[128];
        snprintf(errf, sizeof errf, "%s/server.err", srv_dir);
        if (!freopen("/dev/null", "w", stdout) || !freopen(errf, "w", stderr))
            _exit(127);
        execlp("python3", "python3", "tests/ref/openai_server.py", "--port-file", portf, "--log",
               srv_log, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 3000; i++) { /* up to 30 s on a loaded machine */
        FILE *f = fopen(portf, "r");
        if (f) {
            int ok = fscanf(f, "%d", &srv_port) == 1;
            fclose(f);
            if (ok)
                return 0;
        }
        int st;
        if (waitpid(srv_pid, &st, WNOHANG) == srv_pid) {
            srv_pid = 0;
            return -1;
        }
        usleep(10000);
    }
    return -1;
}

static void server_stop(void)
{
    if (srv_pid > 0) {
        kill(srv_pid, SIGTERM);
        waitpid(srv_pid, NULL, 0);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", srv_dir);
    if (srv_dir[0] && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", srv_dir);
}

/* ---- collecting events */

struct coll {
    struct buf reasoning, content, calls; /* calls: "name args\n" each */
    int nev;                              /* read by another thread in t_interrupt_thread */
    volatile int intr;
    int intr_on_content; /* set intr at the first content */
    int stop_on_content; /* return non-zero at the first content */
};

static int on_event(void *ud, const struct be_event *ev)
{
    struct coll *c = ud;
    __atomic_add_fetch(&c->nev, 1, __ATOMIC_SEQ_CST);
    switch (ev->kind) {
    case BE_EV_REASONING: buf_append(&c->reasoning, ev->text, ev->len); break;
    case BE_EV_CONTENT:
        buf_append(&c->content, ev->text, ev->len);
        if (c->intr_on_content)
            c->intr = 1;
        if (c->stop_on_content)
            return 1;
        break;
    case BE_EV_TOOL_CALL:
        buf_printf(&c->calls, "%s %.*s\n", ev->name, (int)ev->len, ev->text);
        break;
    default: break;
    }
    return 0;
}

static void coll_free(struct coll *c)
{
    buf_free(&c->reasoning);
    buf_free(&c->content);
    buf_free(&c->calls);
}

static const char *S(const struct buf *b) { return b->p ? b->p : ""; }

static struct be_config config(const char *model, const char *key, double timeout)
{
    struct be_config c;
    memset(&c, 0, sizeof c);
    c.remote_model = model;
    c.api_key = key;
    c.timeout_s = timeout;
    return c;
}

static void url_for(char *out, size_t cap, const char *prefix)
{
    snprintf(out, cap, "http://127.0.0.1:%d%s/v1", srv_port, prefix);
}

/* Opens a backend for scenario `model` under `prefix` and runs one generation. */
static int gen(const char *prefix, const char *model, const char *key, double timeout,
               struct coll *c, enum be_stop *stop, struct be_usage *u, const cJSON *msgs,
               const cJSON *tools)
{
    char url[128];
    url_for(url, sizeof url, prefix);
    struct be_config cfg = config(model, key, timeout);
    struct backend *b;
    int rc = be_openai_open(&b, url, &cfg);
    if (rc < 0)
        return rc;
    cJSON *def = NULL;
    if (!msgs) {
        def = cJSON_Parse("[{\"role\":\"user\",\"content\":\"hi\"}]");
        msgs = def;
    }
    struct be_request rq = { .messages = msgs, .tools = tools, .thinking = 1 };
    rq.samp.temperature = 0.6f;
    rq.samp.top_p = 0.95f;
    rq.samp.top_k = 20;
    rq.samp.repetition_penalty = 1.0f;
    rq.interrupt = &c->intr;
    struct be_usage uu;
    enum be_stop ss;
    rc = b->ops->generate(b, &rq, on_event, c, u ? u : &uu, stop ? stop : &ss);
    b->ops->close(b);
    cJSON_Delete(def);
    return rc;
}

/* Requests the server logged: POSTs for model `model` (NULL: all requests). */
static int count_requests(const char *model)
{
    FILE *f = fopen(srv_log, "r");
    if (!f)
        return 0;
    char line[65536];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "body"), "model");
        if (!model || (cJSON_IsString(m) && !strcmp(m->valuestring, model)))
            n++;
        cJSON_Delete(j);
    }
    fclose(f);
    return n;
}

/* The last request the server logged (caller frees). */
static cJSON *last_request(void)
{
    FILE *f = fopen(srv_log, "r");
    if (!f)
        return NULL;
    static char line[1 << 20], last[1 << 20];
    last[0] = 0;
    while (fgets(line, sizeof line, f))
        memcpy(last, line, sizeof line);
    fclose(f);
    return cJSON_Parse(last);
}

static int has(const char *msg, const char *needle)
{
    if (strstr(msg, needle))
        return 1;
    printf("    message lacks '%s': %s\n", needle, msg);
    return 0;
}

/* ---- tests */

static void t_basic(void)
{
    struct coll c = { 0 };
    enum be_stop stop;
    struct be_usage u;
    int rc = gen("", "basic", NULL, 10, &c, &stop, &u, NULL, NULL);
    CHECKF(rc == 0, "%s", err_msg());
    CHECK_STR(S(&c.reasoning), "Let me think.");
    CHECK_STR(S(&c.content), "Hello, world");
    CHECK_STR(S(&c.calls), "");
    CHECK_INT(stop, BE_STOP_END);
    CHECK_INT(u.prompt_tokens, 120);
    CHECK_INT(u.cached_tokens, 100);
    CHECK_INT(u.prefill_tokens, 20);
    CHECK_INT(u.gen_tokens, 9);
    coll_free(&c);
}

static void t_open_props(void)
{
    char url[128];
    url_for(url, sizeof url, "");
    struct be_config cfg = config("", NULL, 10); /* no model: the server's first */
    struct backend *b = NULL;
    int rc = be_openai_open(&b, url, &cfg);
    REQUIRE(rc == 0);
    CHECK_INT(b->caps, 0);
    CHECK_STR(b->name, "openai");
    CHECK(strstr(b->model_desc, "basic") != NULL);
    CHECK(b->model_dir == NULL);
    b->ops->close(b);
    /* the endpoint itself and a trailing slash name the same base */
    char full[160];
    snprintf(full, sizeof full, "%s/chat/completions/", url);
    cfg.remote_model = "m";
    REQUIRE(be_openai_open(&b, full, &cfg) == 0);
    CHECK(strstr(b->model_desc, "/chat/completions") == NULL);
    b->ops->close(b);

    url_for(url, sizeof url, "/nomodels");
    cfg.remote_model = NULL;
    rc = be_openai_open(&b, url, &cfg);
    CHECK(rc == ERR_NOTFOUND && has(err_msg(), "--remote-model"));
    url_for(url, sizeof url, "/gone");
    rc = be_openai_open(&b, url, &cfg);
    CHECK(rc == ERR_NOTFOUND && has(err_msg(), "wrong URL"));
    rc = be_openai_open(&b, "ftp://example.invalid/v1", &cfg);
    CHECK(rc == ERR_INVAL && has(err_msg(), "http"));
    cfg.remote_model = "m";
    cfg.api_key = "bad key";
    rc = be_openai_open(&b, "http://127.0.0.1:1/v1", &cfg);
    CHECK(rc == ERR_INVAL && has(err_msg(), "API key"));
    CHECK(strstr(err_msg(), "bad key") == NULL);
}

static void t_tool_calls(void)
{
    struct coll c = { 0 };
    enum be_stop stop;
    struct be_usage u;
    int rc = gen("", "tools", NULL, 10, &c, &stop, &u, NULL, NULL);
    CHECKF(rc == 0, "%s", err_msg());
    CHECK_STR(S(&c.content), "Reading.");
    CHECK_STR(S(&c.calls), "read {\"path\": \"a.c\"}\ngrep {\"pattern\": \"main\"}\n");
    CHECK_INT(stop, BE_STOP_END);
    CHECK_INT(u.prompt_tokens, 50);
    CHECK_INT(u.cached_tokens, 0);
    CHECK_INT(u.gen_tokens, 20);
    coll_free(&c);
}

static void t_tool_calls_unindexed(void)
{
    struct coll c = { 0 };
    int rc = gen("", "wholecalls", NULL, 10, &c, NULL, NULL, NULL, NULL);
    CHECKF(rc == 0, "%s", err_msg());
    CHECK_STR(S(&c.calls), "read {\"path\": \"x\"}\ntodo {}\n");
    coll_free(&c);
}

static void t_xml_in_content(void)
{
    struct coll c = { 0 };
    int rc = gen("", "xml", NULL, 10, &c, NULL, NULL, NULL, NULL);
    CHECKF(rc == 0, "%s", err_msg());
    CHECK_STR(S(&c.content), "I will look.\n<tool_call>\n<function=read>\n<parameter=path>\n"
                             "src/a.c\n</parameter>\n</function>\n</tool_call>");
    CHECK_STR(S(&c.calls), "");
    coll_free(&c);
}

static void t_length_and_nodone(void)
{
    struct coll c = { 0 };
    enum be_stop stop;
    int rc = gen("", "length", NULL, 10, &c, &stop, NULL, NULL, NULL);
    CHECKF(rc == 0, "%s", err_msg());
    CHECK_INT(stop, BE_STOP_LENGTH);
    coll_free(&c);
    struct coll d = { 0 };
    rc = gen("", "nodone", NULL, 10, &d, &stop, NULL, NULL, NULL);
    CHECKF(rc == 0, "%s", err_msg());
    CHECK_STR(S(&d.content), "x");
    CHECK_INT(stop, BE_STOP_END);
    coll_free(&d);
}

static void t_stream_errors(void)
{
    struct coll c = { 0 };
    int rc = gen("", "error", NULL, 10, &c, NULL, NULL, NULL, NULL);
    CHECK(rc < 0 && has(err_msg(), "out of KV cache"));
    CHECK_STR(S(&c.content), "partial");
    CHECK_INT(count_requests("error"), 1); /* output started: never retried */
    coll_free(&c);

    struct coll d = { 0 };
    rc = gen("", "llamaerror", NULL, 10, &d, NULL, NULL, NULL, NULL);
    CHECK(rc < 0 && has(err_msg(), "slot unavailable"));
    coll_free(&d);

    struct coll e = { 0 };
    rc = gen("", "malformed", NULL, 10, &e, NULL, NULL, NULL, NULL);
    CHECK(rc == ERR_INVAL && has(err_msg(), "protocol error at stream line 3") &&
          has(err_msg(), "this is not sse"));
    coll_free(&e);

    struct coll f = { 0 };
    rc = gen("", "badjson", NULL, 10, &f, NULL, NULL, NULL, NULL);
    CHECK(rc == ERR_INVAL && has(err_msg(), "line 3") && has(err_msg(), "malformed JSON"));
    coll_free(&f);

    struct coll g = { 0 };
    rc = gen("", "nostream", NULL, 10, &g, NULL, NULL, NULL, NULL);
    CHECK(rc == ERR_INVAL && has(err_msg(), "event stream"));
    coll_free(&g);
}

static void t_http_errors(void)
{
    struct coll c = { 0 };
    int rc = gen("", "notfound", NULL, 10, &c, NULL, NULL, NULL, NULL);
    CHECK(rc == ERR_NOTFOUND && has(err_msg(), "404") && has(err_msg(), "does not exist") &&
          has(err_msg(), "wrong URL or model"));
    rc = gen("", "boom", NULL, 10, &c, NULL, NULL, NULL, NULL);
    CHECK(rc == ERR_IO && has(err_msg(), "HTTP 500") && has(err_msg(), "internal failure"));
    CHECK_INT(count_requests("boom"), 2); /* LODE_OPENAI_RETRIES=1 */
    CHECK_INT(c.nev, 0);
    coll_free(&c);
}

static void t_auth(void)
{
    struct coll c = { 0 };
    int rc = gen("/auth", "basic", NULL, 10, &c, NULL, NULL, NULL, NULL);
    CHECK(rc == ERR_DENIED && has(err_msg(), "401") && has(err_msg(), "--api-key") &&
          has(err_msg(), "LODE_API_KEY") && has(err_msg(), "no API key"));
    rc = gen("/auth", "basic", "sk-wrong", 10, &c, NULL, NULL, NULL, NULL);
    CHECK(rc == ERR_DENIED && has(err_msg(), "refused") && !strstr(err_msg(), "sk-wrong"));
    CHECK_INT(c.nev, 0);
    rc = gen("/auth", "basic", "sk-good", 10, &c, NULL, NULL, NULL, NULL);
    CHECKF(rc == 0, "%s", err_msg());
    CHECK_STR(S(&c.content), "Hello, world");
    cJSON *j = last_request();
    const cJSON *auth = cJSON_GetObjectItem(j, "auth");
    CHECK(cJSON_IsString(auth) && !strcmp(auth->valuestring, "Bearer sk-good"));
    cJSON_Delete(j);
    /* the model list at open needs the key too */
    char url[128];
    url_for(url, sizeof url, "/auth");
    struct be_config cfg = config(NULL, NULL, 10);
    struct backend *b;
    rc = be_openai_open(&b, url, &cfg);
    CHECK(rc == ERR_DENIED && has(err_msg(), "LODE_API_KEY"));
    coll_free(&c);
}

static void t_refused(void)
{
    /* A port nobody listens on: bound, then closed. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    REQUIRE(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(s, (struct sockaddr *)&a, &al) == 0);
    close(s);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", ntohs(a.sin_port));
    struct be_config cfg = config("basic", NULL, 10);
    struct backend *b;
    REQUIRE(be_openai_open(&b, url, &cfg) == 0); /* a named model needs no request yet */
    cJSON *msgs = cJSON_Parse("[{\"role\":\"user\",\"content\":\"hi\"}]");
    struct be_request rq = { .messages = msgs };
    struct coll c = { 0 };
    struct be_usage u;
    enum be_stop stop;
    int rc = b->ops->generate(b, &rq, on_event, &c, &u, &stop);
    CHECK(rc == ERR_IO && has(err_msg(), "cannot connect") && has(err_msg(), url));
    b->ops->close(b);
    cfg.remote_model = NULL;
    rc = be_openai_open(&b, url, &cfg);
    CHECK(rc == ERR_IO && has(err_msg(), "cannot connect"));
    cJSON_Delete(msgs);
    coll_free(&c);
}

static void t_stall(void)
{
    struct coll c = { 0 };
    int rc = gen("", "stall", NULL, 1, &c, NULL, NULL, NULL, NULL);
    CHECK(rc == ERR_IO && has(err_msg(), "timeout") && has(err_msg(), "no data"));
    CHECK_STR(S(&c.content), "so far");
    CHECK_INT(count_requests("stall"), 1);
    coll_free(&c);
    struct coll d = { 0 };
    rc = gen("", "stallfirst", NULL, 1, &d, NULL, NULL, NULL, NULL);
    CHECK(rc == ERR_IO && has(err_msg(), "timeout"));
    CHECK_INT(count_requests("stallfirst"), 1); /* a stall is not retried */
    coll_free(&d);
}

static void t_interrupt(void)
{
    /* The flag set mid-stream while the server sends nothing more: the
     * progress callback notices it (no timeout is set). */
    struct coll c = { .intr_on_content = 1 };
    enum be_stop stop;
    int rc = gen("", "stall", NULL, 0, &c, &stop, NULL, NULL, NULL);
    CHECKF(rc == 0, "%s", err_msg());
    CHECK_INT(stop, BE_STOP_INTERRUPT);
    CHECK_STR(S(&c.content), "so far");
    coll_free(&c);
    /* The callback asking to stop: no tool call from a cut answer. */
    struct coll d = { .stop_on_content = 1 };
    rc = gen("", "tools", NULL, 0, &d, &stop, NULL, NULL, NULL);
    CHECKF(rc == 0, "%s", err_msg());
    CHECK_INT(stop, BE_STOP_INTERRUPT);
    CHECK_STR(S(&d.calls), "");
    CHECK_INT(d.nev, 1);
    coll_free(&d);
}

static void *waker_main(void *arg)
{
    struct coll *c = arg;
    while (!__atomic_load_n(&c->nev, __ATOMIC_SEQ_CST))
        usleep(1000);
    c->intr = 1;
    return NULL;
}

/* The flag set from another thread while the stream is silent. */
static void t_interrupt_thread(void)
{
    struct coll c = { 0 };
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, waker_main, &c) == 0);
    enum be_stop stop;
    int rc = gen("", "stall", NULL, 0, &c, &stop, NULL, NULL, NULL);
    pthread_join(th, NULL);
    CHECKF(rc == 0, "%s", err_msg());
    CHECK_INT(stop, BE_STOP_INTERRUPT);
    CHECK_STR(S(&c.content), "so far");
    coll_free(&c);
}

static void t_retry(void)
{
    struct coll c = { 0 };
    int rc = gen("", "flaky", NULL, 10, &c, NULL, NULL, NULL, NULL);
    CHECKF(rc == 0, "%s", err_msg());
    CHECK_STR(S(&c.content), "second try");
    CHECK_INT(count_requests("flaky"), 2);
    coll_free(&c);
    /* cut after output: an error, not a retry (that would repeat "half") */
    struct coll d = { 0 };
    rc = gen("", "drop", NULL, 10, &d, NULL, NULL, NULL, NULL);
    CHECK(rc == ERR_IO && has(err_msg(), "ended early"));
    CHECK_STR(S(&d.content), "half");
    CHECK_INT(count_requests("drop"), 1);
    coll_free(&d);
}

static void t_request_body(void)
{
    cJSON *msgs = cJSON_Parse(
        "[{\"role\":\"system\",\"content\":\"be brief\"},"
        "{\"role\":\"user\",\"content\":\"look\"},"
        "{\"role\":\"assistant\",\"content\":\"\",\"reasoning\":\"hmm\",\"tool_calls\":["
        "{\"name\":\"read\",\"arguments\":{\"path\":\"a.c\"}},"
        "{\"id\":\"x9\",\"type\":\"function\",\"function\":{\"name\":\"grep\",\"arguments\":"
        "{\"pattern\":\"m\"}}}]},"
        "{\"role\":\"tool\",\"content\":\"int main;\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"x9\",\"content\":\"1 match\"}]");
    cJSON *tools = cJSON_Parse("[{\"name\":\"read\",\"description\":\"d\",\"parameters\":"
                               "{\"type\":\"object\"}},{\"type\":\"function\",\"function\":"
                               "{\"name\":\"grep\",\"parameters\":{\"type\":\"object\"}}}]");
    REQUIRE(msgs && tools);
    struct coll c = { 0 };
    int rc = gen("/auth", "basic", "sk-good", 10, &c, NULL, NULL, msgs, tools);
    CHECKF(rc == 0, "%s", err_msg());
    cJSON *j = last_request();
    const cJSON *body = cJSON_GetObjectItem(j, "body");
    REQUIRE(cJSON_IsObject(body));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(j, "path")), "/auth/v1/chat/completions");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(body, "model")), "basic");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(body, "stream")));
    CHECK(cJSON_IsTrue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(body, "stream_options"), "include_usage")));
    CHECK(cJSON_IsTrue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(body, "chat_template_kwargs"), "enable_thinking")));
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(body, "temperature")) == 0.6);
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(body, "top_p")) == 0.95);
    CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(body, "top_k")), 20);
    CHECK(cJSON_GetObjectItem(body, "max_tokens") == NULL);
    const cJSON *m = cJSON_GetObjectItem(body, "messages");
    CHECK_INT(cJSON_GetArraySize(m), 5);
    const cJSON *as = cJSON_GetArrayItem(m, 2);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(as, "reasoning_content")), "hmm");
    const cJSON *tcs = cJSON_GetObjectItem(as, "tool_calls");
    const cJSON *t0 = cJSON_GetArrayItem(tcs, 0), *t1 = cJSON_GetArrayItem(tcs, 1);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(t0, "type")), "function");
    const char *id0 = cJSON_GetStringValue(cJSON_GetObjectItem(t0, "id"));
    CHECK(id0 && *id0);
    const cJSON *f0 = cJSON_GetObjectItem(t0, "function");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(f0, "name")), "read");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(f0, "arguments")), "{\"path\":\"a.c\"}");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(t1, "id")), "x9");
    CHECK_STR(
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(t1, "function"), "arguments")),
        "{\"pattern\":\"m\"}");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 3), "tool_call_id")),
              id0 ? id0 : "?");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 4), "tool_call_id")),
              "x9");
    const cJSON *tl = cJSON_GetObjectItem(body, "tools");
    CHECK_INT(cJSON_GetArraySize(tl), 2);
    for (int i = 0; i < 2; i++) {
        const cJSON *t = cJSON_GetArrayItem(tl, i);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(t, "type")), "function");
        CHECK_STR(
            cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "function"), "name")),
            i ? "grep" : "read");
    }
    cJSON_Delete(j);
    /* unthinking, with a cap */
    char url[128];
    url_for(url, sizeof url, "");
    struct be_config cfg = config("basic", NULL, 10);
    struct backend *b;
    REQUIRE(be_openai_open(&b, url, &cfg) == 0);
    struct be_request rq = { .messages = msgs, .thinking = 0, .max_tokens = 100 };
    rq.samp.temperature = 0.7f;
    rq.samp.top_p = 0.8f;
    struct be_usage u;
    enum be_stop stop;
    REQUIRE(b->ops->generate(b, &rq, on_event, &c, &u, &stop) == 0);
    b->ops->close(b);
    j = last_request();
    body = cJSON_GetObjectItem(j, "body");
    CHECK(cJSON_IsFalse(
        cJSON_GetObjectItem(cJSON_GetObjectItem(body, "chat_template_kwargs"), "enable_thinking")));
    CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(body, "max_tokens")), 100);
    CHECK(cJSON_GetObjectItem(body, "top_k") == NULL); /* 0: off, not sent */
    CHECK(cJSON_GetObjectItem(body, "tools") == NULL);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "auth")));
    cJSON_Delete(j);
    cJSON_Delete(msgs);
    cJSON_Delete(tools);
    coll_free(&c);
}

int main(void)
{
    /* Only 127.0.0.1 is ever contacted, never through a proxy. */
    static const char *const proxies[] = { "http_proxy",  "HTTP_PROXY", "https_proxy",
                                           "HTTPS_PROXY", "all_proxy",  "ALL_PROXY" };
    for (size_t i = 0; i < sizeof proxies / sizeof *proxies; i++)
        unsetenv(proxies[i]);
    setenv("NO_PROXY", "*", 1);
    setenv("LODE_OPENAI_RETRIES", "1", 1);
    setenv("LODE_OPENAI_RETRY_BASE_MS", "1", 1);
    if (server_start() < 0) {
        printf("skip openai backend tests (python3 tests/ref/openai_server.py did not start)\n");
        printf("# summary: 0 passed, 0 failed, 1 skipped\n");
        server_stop();
        return 0;
    }
    TEST_RUN(t_basic);
    TEST_RUN(t_open_props);
    TEST_RUN(t_tool_calls);
    TEST_RUN(t_tool_calls_unindexed);
    TEST_RUN(t_xml_in_content);
    TEST_RUN(t_length_and_nodone);
    TEST_RUN(t_stream_errors);
    TEST_RUN(t_http_errors);
    TEST_RUN(t_auth);
    TEST_RUN(t_refused);
    TEST_RUN(t_stall);
    TEST_RUN(t_interrupt);
    TEST_RUN(t_interrupt_thread);
    TEST_RUN(t_retry);
    TEST_RUN(t_request_body);
    server_stop();
    TEST_END();
}
