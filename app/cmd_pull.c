/*
 * cmd_pull.c - `lode pull [REPO] [--revision R] [--dir DIR] [--check]`: fetch
 * the checkpoint from the Hugging Face Hub (app/pull.c does the work), then
 * make it the default model by writing `model` into the user configuration
 * file (other keys kept, replaced atomically).
 */
#include "app/commands.h"
#include "app/pull.h"
#include "common/err.h"
#include "common/fs.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cli_opt opts[] = {
    { "revision", 'r', 1, "R", "branch, tag or commit (default main)" },
    { "dir", 'd', 1, "DIR", "target directory (default $XDG_DATA_HOME/lode/models/OWNER--NAME)" },
    { "check", 0, 0, NULL, "verify an existing directory (sizes and checksums) instead" },
    { "jobs", 'j', 1, "N", "files downloaded at once (default 4)" },
    { 0 },
};

/* The first Ctrl-C stops the pull cleanly (partial files kept). */
static void on_sigint(int sig) { pull_cancel(); }

/* Sets "model" in the user configuration file, keeping every other key. */
static int set_default_model(const char *file, const char *dir)
{
    struct buf b = { 0 };
    cJSON *root = NULL;
    int rc = 0;
    if (fs_exists(file)) {
        if ((rc = fs_read_file(file, 1 << 20, &b)) < 0)
            return rc;
        root = cJSON_ParseWithLength(b.p ? b.p : "", b.len);
        buf_free(&b);
        if (!cJSON_IsObject(root)) {
            cJSON_Delete(root);
            return err_set(ERR_INVAL, "%s: not a JSON object; not changing it", file);
        }
    } else {
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", file);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
            *slash = 0;
            if ((rc = fs_mkdir_p(parent, 0755)) < 0)
                return rc;
        }
        root = cJSON_CreateObject();
    }
    cJSON *v = cJSON_CreateString(dir);
    if (!root || !v) {
        cJSON_Delete(v);
        cJSON_Delete(root);
        return err_set(ERR_NOMEM, "out of memory");
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "model"))
        cJSON_ReplaceItemInObjectCaseSensitive(root, "model", v);
    else
        cJSON_AddItemToObject(root, "model", v);
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    if (!txt)
        return err_set(ERR_NOMEM, "out of memory");
    size_t n = strlen(txt);
    char *t2 = realloc(txt, n + 2);
    if (!t2) {
        free(txt);
        return err_set(ERR_NOMEM, "out of memory");
    }
    t2[n] = '\n';
    t2[n + 1] = 0;
    rc = fs_write_atomic(file, t2, n + 1);
    free(t2);
    return rc;
}

/* $XDG_DATA_HOME/lode/models/owner--name */
static int default_dir(const char *repo, char *out, size_t cap)
{
    char data[PATH_MAX], name[256];
    int rc = fs_xdg_dir(FS_XDG_DATA, data, sizeof data);
    if (rc < 0)
        return rc;
    const char *slash = strchr(repo, '/');
    snprintf(name, sizeof name, "models/%.*s--%s", (int)(slash - repo), repo, slash + 1);
    return fs_join(out, cap, data, name);
}

static int run(struct app *a, int argc, char **argv)
{
    struct pull_opts o = { 0 };
    const char *repo = NULL, *dir = NULL;
    int check = 0;
    struct cli c;
    cli_init(&c, argc, argv);
    for (int opt; (opt = cli_next(&c, opts)) != CLI_END;) {
        if (opt == CLI_EXIT)
            return c.exit;
        if (opt == CLI_POS) {
            if (repo)
                return cli_usage_error("pull", "unexpected argument '%s'", c.arg);
            repo = c.arg;
            continue;
        }
        switch (opt) {
        case 0: o.revision = c.arg; break;
        case 1: dir = c.arg; break;
        case 2: check = 1; break;
        case 3: {
            char *end;
            long j = strtol(c.arg, &end, 10);
            if (*end || j < 1 || j > 64)
                return cli_usage_error("pull", "--jobs: expected 1..64, got '%s'", c.arg);
            o.jobs = (int)j;
            break;
        }
        }
    }
    o.repo = repo ? repo : PULL_DEFAULT_REPO;
    if (!pull_repo_ok(o.repo))
        return cli_usage_error("pull", "'%s' is not a repository name of the form owner/name",
                               o.repo);
    if (o.revision && (!*o.revision || strlen(o.revision) > 255))
        return cli_usage_error("pull", "--revision: expected a branch, tag or commit");

    /* HF_ENDPOINT as huggingface_hub reads it; a trailing slash is dropped */
    char endpoint[2048];
    const char *ep = getenv("HF_ENDPOINT");
    snprintf(endpoint, sizeof endpoint, "%s", ep && *ep ? ep : PULL_DEFAULT_ENDPOINT);
    for (size_t n = strlen(endpoint); n > 0 && endpoint[n - 1] == '/'; n--)
        endpoint[n - 1] = 0;
    o.endpoint = endpoint;
    const char *tok = getenv("HF_TOKEN");
    o.token = tok && *tok ? tok : NULL;

    char dbuf[PATH_MAX], abs[PATH_MAX];
    if (!dir) {
        if (default_dir(o.repo, dbuf, sizeof dbuf) < 0)
            return cli_fail();
        dir = dbuf;
    }
    /* the path recorded in the configuration must not depend on the cwd */
    if (dir[0] != '/') {
        if (fs_join(abs, sizeof abs, a->cwd, dir) < 0)
            return cli_fail();
        dir = abs;
    }
    o.dir = dir;

    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C stops at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    struct pull_stats st;
    int rc = check ? pull_check(&o, &st) : pull_run(&o, &st);
    sigaction(SIGINT, &old, NULL);
    if (rc < 0)
        return cli_fail();

    char tot[32];
    pull_format_bytes(st.total, tot, sizeof tot);
    if (check) {
        printf("%s: %d files verified (%s)\n", dir, st.nfiles, tot);
        return EXIT_OK;
    }
    if (st.nfetched == 0)
        printf("%s: up to date (%s, %d files, %s)\n", dir, st.commit, st.nfiles, tot);
    else {
        char got[32];
        pull_format_bytes(st.fetched, got, sizeof got);
        printf("%s: pulled %s at %s (%d files, %s; %d fetched, %s in %.1f s)\n", dir, o.repo,
               st.commit, st.nfiles, tot, st.nfetched, got, st.seconds);
    }
    const char *cfgfile = a->cfg.user_file;
    if (!cfgfile[0]) {
        fprintf(stderr, "lode: no configuration directory (HOME unset); pass --model %s\n", dir);
        return EXIT_OK;
    }
    if (set_default_model(cfgfile, dir) < 0) {
        fprintf(stderr, "lode: the model is in %s, but %s\n", dir, err_msg());
        return EXIT_ERROR;
    }
    printf("model = %s (set in %s)\n", dir, cfgfile);
    const struct cfg_val *mv = &a->cfg.v[CFG_MODEL];
    if (mv->src > CFG_SRC_USER && strcmp(mv->s ? mv->s : "", dir))
        fprintf(stderr, "lode: note: model is also set by %s, which takes precedence\n",
                mv->origin);
    return EXIT_OK;
}

const struct command cmd_pull = {
    "pull",
    run,
    "download the model from the Hugging Face Hub (or verify it)",
    "usage: lode pull [REPO] [--revision R] [--dir DIR] [--jobs N]\n"
    "       lode pull [REPO] --check [--dir DIR]\n"
    "\n"
    "Downloads REPO (default " PULL_DEFAULT_REPO ") into DIR, resuming\n"
    "partial files (<file>.incomplete), verifying every file's size and SHA-256,\n"
    "then makes DIR the default model (`model` in the user config.json).\n"
    "--check verifies DIR against the listing recorded by the pull (offline), or\n"
    "against the Hub when there is none.\n"
    "\n"
    "environment: HF_TOKEN (sent only to the Hub's own host), HF_ENDPOINT\n"
    "(default " PULL_DEFAULT_ENDPOINT ").\n",
    opts,
};
