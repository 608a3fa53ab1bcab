/*
 * agent_prompt.c - the system prompt: lode's own instructions (workspace,
 * date, OS, how to work), then the project's instruction files: AGENTS.md
 * (else QWEN.md, else CLAUDE.md) and .lode/instructions.md. The tool schemas
 * are not here: the chat template renders them from the tools array.
 */
#include "app/agent_int.h"
#include "common/err.h"
#include "common/fs.h"

#include <string.h>
#include <sys/utsname.h>
#include <time.h>

/* An instruction file larger than this is cut: it is read into every prompt. */
#define INSTR_MAX (64u << 10)

static const char intro[] =
    "You are lode, a coding agent working in a terminal on the user's project. You read, search "
    "and edit files and run commands with the tools you are given, then answer.\n"
    "\n"
    "How to work:\n"
    "- Use the tools to look at the code before you change it; never guess file contents.\n"
    "- Paths are relative to the workspace root unless you have a reason to use an absolute "
    "path.\n"
    "- Prefer small, precise edits (edit_file) over rewriting whole files; keep the project's "
    "style.\n"
    "- After changing code, build or run the tests when you can, and fix what you broke.\n"
    "- A tool call may be denied by the user's approval mode: do not retry it unchanged; say "
    "what you would have done instead.\n"
    "- For work of several steps, keep a task list with the todo tool.\n"
    "- Be concise: the user reads your answer in a terminal. Use Markdown sparingly; show code "
    "only when it helps.\n"
    "- When you are done, answer with a short summary of what you did and what remains.\n";

/* Appends the first instruction file of names[] that exists in dir. */
static int append_file(struct buf *out, const char *dir, const char *const *names, int n)
{
    char path[4096];
    for (int i = 0; i < n; i++) {
        if (fs_join(path, sizeof path, dir, names[i]) < 0 || !fs_exists(path) || fs_is_dir(path))
            continue;
        struct buf b = { 0 };
        /* Read a little more than we keep so a big file is cut, not refused. */
        int rc = fs_read_file(path, (size_t)16 << 20, &b);
        if (rc < 0) {
            buf_free(&b);
            err_clear(); /* an unreadable instruction file is not fatal */
            continue;
        }
        size_t keep = b.len > INSTR_MAX ? INSTR_MAX : b.len;
        rc = buf_printf(out, "\n# Instructions from %s\n\n", names[i]);
        if (rc == 0)
            rc = buf_append(out, b.p ? b.p : "", keep);
        if (rc == 0 && keep < b.len)
            rc = buf_puts(out, "\n[... cut: the file is larger than 64 KiB]");
        if (rc == 0 && (keep == 0 || b.p[keep - 1] != '\n'))
            rc = buf_putc(out, '\n');
        buf_free(&b);
        return rc;
    }
    return 0;
}

int ag_system_prompt(const char *workspace, struct buf *out)
{
    char date[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm))
        strftime(date, sizeof date, "%Y-%m-%d", &tm);
    struct utsname u;
    const char *os = "Linux";
    char osbuf[160];
    if (uname(&u) == 0) {
        snprintf(osbuf, sizeof osbuf, "%s %s (%s)", u.sysname, u.release, u.machine);
        os = osbuf;
    }
    int rc = buf_puts(out, intro);
    if (rc == 0)
        rc = buf_printf(out, "\nWorkspace: %s\nDate: %s\nOS: %s\n", workspace, date, os);
    static const char *const project[] = { "AGENTS.md", "QWEN.md", "CLAUDE.md" };
    static const char *const local[] = { ".lode/instructions.md" };
    if (rc == 0)
        rc = append_file(out, workspace, project, 3);
    if (rc == 0)
        rc = append_file(out, workspace, local, 1);
    return rc < 0 ? err_set(ERR_NOMEM, "agent: building the system prompt") : 0;
}
