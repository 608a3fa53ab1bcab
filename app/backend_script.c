/*
 * backend_script.c - "script:FILE": canned model outputs for tests and demos.
 *
 * FILE is a JSON array; element k is generation k: a string (the raw text
 * the model would produce after the prompt) or {"text": "...", "delay_ms": N}
 * (N milliseconds between the streamed pieces, so interrupt and UI tests can
 * catch a turn mid-stream). Each generation streams its text as BE_EV_RAW in
 * pieces of at most PIECE bytes cut on UTF-8 boundaries, checking the
 * interrupt flag and the callback between pieces. Past the end of the array
 * every generation is empty (BE_STOP_END).
 *
 * When LODE_SCRIPT_PROMPTS names a file, every prompt received is appended to
 * it as one JSON line {"prompt": "..."} so tests can check what was sent.
 * There is no tokenizer: the usage token counts stay 0.
 */
#include "app/backend.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/text.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PIECE 16
#define MAX_SCRIPT (64u << 20)
#define MAX_DELAY_MS 600000

struct gen {
    char *text; /* owned, NUL-terminated */
    size_t len;
    long delay_ms;
};

struct script_be {
    struct backend b;
    struct gen *g;
    size_t n, next;
};

static void script_close(struct backend *b)
{
    struct script_be *s = (struct script_be *)b;
    for (size_t i = 0; i < s->n; i++)
        free(s->g[i].text);
    free(s->g);
    free(s);
}

static int log_prompt(const struct be_request *rq)
{
    const char *path = getenv("LODE_SCRIPT_PROMPTS");
    if (!path || !*path)
        return 0;
    struct buf line = { 0 };
    int rc = buf_puts(&line, "{\"prompt\": ");
    if (rc == 0)
        rc = buf_json_str(&line, rq->prompt ? rq->prompt : "", rq->prompt ? rq->prompt_len : 0);
    if (rc == 0)
        rc = buf_puts(&line, "}\n");
    if (rc < 0) {
        buf_free(&line);
        return rc;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        buf_free(&line);
        return err_errno("backend script: LODE_SCRIPT_PROMPTS %s", path);
    }
    /* one write per line: O_APPEND keeps lines whole even with several writers */
    ssize_t w = write(fd, line.p, line.len);
    int saved = errno, short_write = w < 0 || (size_t)w != line.len;
    close(fd);
    buf_free(&line);
    if (short_write) {
        errno = w < 0 ? saved : EIO;
        return err_errno("backend script: writing %s", path);
    }
    return 0;
}

static int stopped(const struct be_request *rq) { return rq->interrupt && *rq->interrupt; }

/* Sleeps ms milliseconds in short steps so an interrupt is seen soon; 1 when interrupted. */
static int pause_ms(const struct be_request *rq, long ms)
{
    while (ms > 0) {
        long step = ms < 10 ? ms : 10;
        struct timespec ts = { 0, step * 1000000L };
        nanosleep(&ts, NULL);
        ms -= step;
        if (stopped(rq))
            return 1;
    }
    return 0;
}

static int script_generate(struct backend *b, const struct be_request *rq, be_event_fn fn, void *ud,
                           struct be_usage *u, enum be_stop *stop)
{
    struct script_be *s = (struct script_be *)b;
    memset(u, 0, sizeof *u);
    *stop = BE_STOP_END;
    int rc = log_prompt(rq);
    if (rc < 0)
        return rc;
    if (s->next >= s->n)
        return 0;
    const struct gen *g = &s->g[s->next++];
    double t0 = time_s();
    size_t off = 0;
    while (off < g->len) {
        if (stopped(rq) || (off > 0 && pause_ms(rq, g->delay_ms))) {
            *stop = BE_STOP_INTERRUPT;
            break;
        }
        size_t n = g->len - off < PIECE ? g->len - off : PIECE;
        size_t cut = off + n < g->len ? utf8_complete_prefix(g->text + off, n) : n;
        if (cut > 0)
            n = cut;
        struct be_event ev = { .kind = BE_EV_RAW, .text = g->text + off, .len = n };
        off += n;
        if (fn && fn(ud, &ev)) {
            *stop = BE_STOP_INTERRUPT;
            break;
        }
    }
    u->gen_s = time_s() - t0;
    return 0;
}

static int script_state_save(struct backend *b, struct buf *out)
{
    return err_set(ERR_UNSUPPORTED, "backend script: no model state to save");
}

static int script_state_load(struct backend *b, const void *data, size_t n)
{
    return err_set(ERR_UNSUPPORTED, "backend script: no model state to load");
}

static int script_context(struct backend *b, const int32_t **tokens, long *n, long *max)
{
    return err_set(ERR_UNSUPPORTED, "backend script: no token context");
}

static const struct be_ops script_ops = {
    .generate = script_generate,
    .state_save = script_state_save,
    .state_load = script_state_load,
    .context = script_context,
    .last_logits = NULL,
    .close = script_close,
};

/* Fills g from element k of the script; ERR_INVAL naming file and element. */
static int parse_gen(const char *file, size_t k, const cJSON *e, struct gen *g)
{
    const cJSON *text = e, *delay = NULL;
    if (cJSON_IsObject(e)) {
        text = cJSON_GetObjectItemCaseSensitive(e, "text");
        delay = cJSON_GetObjectItemCaseSensitive(e, "delay_ms");
        for (const cJSON *f = e->child; f; f = f->next)
            if (strcmp(f->string, "text") && strcmp(f->string, "delay_ms"))
                return err_set(ERR_INVAL,
                               "%s: element %zu: unknown key \"%s\" (expected text, "
                               "delay_ms)",
                               file, k, f->string);
    }
    if (!cJSON_IsString(text))
        return err_set(ERR_INVAL,
                       "%s: element %zu: expected a string or {\"text\": \"...\", \"delay_ms\": N}",
                       file, k);
    if (delay &&
        (!cJSON_IsNumber(delay) || !(delay->valuedouble >= 0) || delay->valuedouble > MAX_DELAY_MS))
        return err_set(ERR_INVAL, "%s: element %zu: delay_ms must be a number in 0..%d", file, k,
                       MAX_DELAY_MS);
    g->len = strlen(text->valuestring);
    if (!(g->text = strdup(text->valuestring)))
        return err_set(ERR_NOMEM, "%s: out of memory", file);
    g->delay_ms = delay ? (long)delay->valuedouble : 0;
    return 0;
}

static int load_script(struct script_be *s, const char *file)
{
    struct buf b = { 0 };
    int rc = fs_read_file(file, MAX_SCRIPT, &b);
    if (rc < 0) {
        buf_free(&b);
        return rc;
    }
    const char *text = b.p ? b.p : "";
    size_t bad;
    int line, col;
    if (!utf8_valid(text, b.len, &bad)) {
        text_line_col(text, bad, &line, &col);
        buf_free(&b);
        return err_set(ERR_INVAL, "%s:%d:%d: invalid UTF-8", file, line, col);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, b.len, &end, 0);
    if (!root) {
        size_t off = end && end >= text && end <= text + b.len ? (size_t)(end - text) : 0;
        text_line_col(text, off, &line, &col);
        buf_free(&b);
        return err_set(ERR_INVAL, "%s:%d:%d: malformed JSON", file, line, col);
    }
    buf_free(&b);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return err_set(ERR_INVAL, "%s: expected a JSON array of generations", file);
    }
    size_t n = (size_t)cJSON_GetArraySize(root);
    if (n && !(s->g = calloc(n, sizeof *s->g))) {
        cJSON_Delete(root);
        return err_set(ERR_NOMEM, "%s: out of memory", file);
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        if ((rc = parse_gen(file, s->n, e, &s->g[s->n])) < 0)
            break;
        s->n++;
    }
    cJSON_Delete(root);
    return rc;
}

int be_script_open(struct backend **out, const char *file, const struct be_config *cfg)
{
    *out = NULL;
    struct script_be *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(ERR_NOMEM, "backend script: out of memory");
    s->b.ops = &script_ops;
    s->b.caps = BE_CAP_PROMPT;
    snprintf(s->b.name, sizeof s->b.name, "script");
    snprintf(s->b.model_desc, sizeof s->b.model_desc, "%s", file);
    s->b.model_dir = NULL;
    int rc = load_script(s, file);
    if (rc < 0) {
        script_close(&s->b);
        return rc;
    }
    *out = &s->b;
    return 0;
}
