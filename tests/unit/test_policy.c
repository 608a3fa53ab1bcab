/* test_policy.c - the path policy: resolution, decisions, race safety (tools/policy.c).
 * Every test runs twice: with openat2 (where the kernel has it) and with the checked walk. */
#include "testhelp.h"
#include "workspace.h"

#include "common/err.h"
#include "tools/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[WSP_BASE], ws[WSP_PATH], out[WSP_PATH], home[600], data[600];
static int walk_mode;

static void setup_tree(void)
{
    wsp_create("policy", base, ws, out);
    snprintf(home, sizeof home, "%s/home", base);
    snprintf(data, sizeof data, "%s/ws/xdgdata", base);
    mkdir(home, 0755);
    const char *dirs[] = { ".git",
                           ".git/hooks",
                           "src",
                           "sub",
                           "sub/.git",
                           "sub/.git/hooks",
                           "secret",
                           "ro",
                           "xdgdata",
                           "xdgdata/lode",
                           ".husky",
                           ".git/modules",
                           ".git/modules/m",
                           ".git/modules/m/hooks",
                           ".git/refs",
                           ".git/refs/heads",
                           "sub/.git/worktrees" };
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
        wsp_mkdir(ws, dirs[i]);
    wsp_puts(ws, "src/a.c", "int a;\n");
    wsp_puts(ws, ".git/config", "[core]\n\tbare = false\n\thooksPath = .husky\n");
    wsp_puts(ws, "secret/key", "k\n");
    wsp_puts(ws, "ro/file", "r\n");
    wsp_puts(out, "passwd", "root\n");
    wsp_puts(home, ".bashrc", "# rc\n");
    wsp_symlink(out, ws, "link_out");
    char p[1200], t[700];
    wsp_symlink(wsp_path(t, sizeof t, out, "passwd"), ws, "link_file_out");
    wsp_symlink("src/a.c", ws, "link_in");
    wsp_symlink(".git/hooks", ws, "link_hooks");
    wsp_symlink("secret/key", ws, "link_secret");
    if (link(t, wsp_path(p, sizeof p, ws, "hard"))) {
    }
    mkfifo(wsp_path(p, sizeof p, ws, "fifo"), 0644);
    setenv("XDG_DATA_HOME", data, 1);
}

static struct pol *open_pol(void)
{
    const char *ro[] = { "ro", NULL };
    const char *hidden[] = { "secret", NULL };
    struct pol_opts o = { 0 };
    o.workspace = ws;
    o.home = home;
    o.read_only = ro;
    o.hidden = hidden;
    o.no_openat2 = walk_mode;
    struct pol *p = NULL;
    if (pol_open(&p, &o) < 0)
        printf("    pol_open: %s\n", err_msg());
    return p;
}

/* write attempt: expect rc and (on refusal) a reason containing `why` */
static void expect_write(struct pol *p, const char *path, int want_rc, const char *why)
{
    int fd = -1;
    char real[POL_PATH_MAX];
    int rc = pol_open_file(p, path, O_WRONLY | O_CREAT | O_APPEND, 0644, &fd, real, sizeof real);
    CHECKF(rc == want_rc, "write %s: rc %d, wanted %d (%s)", path, rc, want_rc, err_msg());
    if (rc == 0) {
        CHECKF(fd >= 0, "write %s: no fd", path);
        close(fd);
    } else if (why)
        CHECKF(strstr(err_msg(), why) != NULL, "write %s: message '%s' lacks '%s'", path, err_msg(),
               why);
}

static void expect_read(struct pol *p, const char *path, int want_rc)
{
    int fd = -1;
    int rc = pol_open_file(p, path, O_RDONLY, 0, &fd, NULL, 0);
    CHECKF(rc == want_rc, "read %s: rc %d, wanted %d (%s)", path, rc, want_rc, err_msg());
    if (fd >= 0)
        close(fd);
}

static void t_workspace_work(void)
{
    struct pol *p = open_pol();
    REQUIRE(p);
    expect_write(p, "src/a.c", 0, NULL);
    expect_write(p, "src/new.c", 0, NULL);
    expect_write(p, "./src/../src/new2.c", 0, NULL);
    expect_read(p, "src/a.c", 0);
    expect_write(p, "link_in", 0, NULL); /* a symlink that stays inside */
    char real[POL_PATH_MAX], want[POL_PATH_MAX];
    CHECK_INT(pol_check(p, "link_in", POL_WRITE, real, sizeof real), 0);
    snprintf(want, sizeof want, "%s/src/a.c", ws);
    CHECK_STR(real, want);
    char abs[POL_PATH_MAX];
    snprintf(abs, sizeof abs, "%s/src/abs.c", ws);
    expect_write(p, abs, 0, NULL);
    /* the private temp dir is writable, 0700, and removed on close */
    char tf[POL_PATH_MAX], tdir[POL_PATH_MAX];
    snprintf(tdir, sizeof tdir, "%s", pol_tmpdir(p));
    snprintf(tf, sizeof tf, "%s/scratch", tdir);
    expect_write(p, tf, 0, NULL);
    struct stat st;
    CHECK(stat(tdir, &st) == 0 && (st.st_mode & 0777) == 0700);
    int dfd = -1;
    CHECK_INT(pol_open_dir(p, "", &dfd, NULL, 0), 0);
    if (dfd >= 0)
        close(dfd);
    CHECK_INT(pol_open_dir(p, "src/a.c", &dfd, NULL, 0), ERR_INVAL);
    CHECK_INT(pol_open_file(p, "src", O_RDONLY, 0, &dfd, NULL, 0), ERR_INVAL);
    CHECK_INT(pol_open_file(p, "missing/x", O_WRONLY | O_CREAT, 0644, &dfd, NULL, 0), ERR_NOTFOUND);
    CHECK_INT(pol_open_file(p, "nope.c", O_RDONLY, 0, &dfd, NULL, 0), ERR_NOTFOUND);
    CHECK_INT(pol_mkdirs(p, "deep/er/est", 0755), 0);
    CHECK_INT(pol_mkdirs(p, "deep/er/est", 0755), 0);
    CHECK_INT(pol_open_file(p, "deep/er/est/f", O_WRONLY | O_CREAT, 0644, &dfd, NULL, 0), 0);
    if (dfd >= 0)
        close(dfd);
    CHECK_INT(pol_mkdirs(p, "link_out/made", 0755), ERR_DENIED);
    CHECK_INT(pol_mkdirs(p, ".git/hooks/x", 0755), ERR_DENIED);
    CHECK_INT(pol_mkdirs(p, "src/a.c/x", 0755), ERR_INVAL);
    char made[800];
    snprintf(made, sizeof made, "%s/made", out);
    CHECK(stat(made, &st) < 0);
    pol_close(p);
    CHECK(stat(tdir, &st) < 0 && errno == ENOENT);
}

static void t_escapes(void)
{
    struct pol *p = open_pol();
    REQUIRE(p);
    char abs[POL_PATH_MAX];
    snprintf(abs, sizeof abs, "%s/passwd", out);
    expect_write(p, abs, ERR_DENIED, "outside the workspace");
    expect_read(p, abs, 0); /* reads outside are allowed, read-only */
    expect_write(p, "../outside/passwd", ERR_DENIED, "outside the workspace");
    expect_write(p, "src/../../outside/new", ERR_DENIED, "outside the workspace");
    expect_write(p, "link_out/passwd", ERR_DENIED, "outside the workspace");
    expect_write(p, "link_out/new", ERR_DENIED, "outside the workspace");
    expect_write(p, "link_file_out", ERR_DENIED, "outside the workspace");
    expect_write(p, "/etc/lode-test-never", ERR_DENIED, "outside the workspace");
    expect_write(p, "/proc/self/root/etc/lode-test-never", ERR_DENIED, NULL);
    expect_write(p, "hard", ERR_DENIED, "hard links");
    struct stat st;
    snprintf(abs, sizeof abs, "%s/new", out);
    CHECK(stat(abs, &st) < 0);
    int fd = -1;
    /* a FIFO is refused without blocking */
    CHECK_INT(pol_open_file(p, "fifo", O_RDONLY, 0, &fd, NULL, 0), ERR_INVAL);
    char lng[POL_PATH_MAX + 10];
    memset(lng, 'a', sizeof lng - 1);
    lng[sizeof lng - 1] = 0;
    CHECK_INT(pol_open_file(p, lng, O_RDONLY, 0, &fd, NULL, 0), ERR_INVAL);
    pol_close(p);
}

static void t_protected(void)
{
    struct pol *p = open_pol();
    REQUIRE(p);
    expect_write(p, ".git/hooks/pre-commit", ERR_DENIED, ".git/hooks");
    expect_write(p, ".git/config", ERR_DENIED, ".git/config");
    expect_write(p, "sub/.git/hooks/post-checkout", ERR_DENIED, ".git/hooks");
    expect_write(p, "link_hooks/pre-push", ERR_DENIED, ".git/hooks");
    expect_write(p, ".git/HEAD", 0, NULL);             /* the rest of .git stays writable */
    expect_write(p, ".git/refs/heads/hooks", 0, NULL); /* a branch named "hooks" */
    expect_write(p, ".git/modules/m/hooks/pre-commit", ERR_DENIED, ".git/hooks");
    expect_write(p, ".git/modules/m/config", ERR_DENIED, ".git/config");
    expect_write(p, "sub/.git/worktrees/w/config.worktree", ERR_NOTFOUND, NULL);
    CHECK_INT(pol_check(p, "sub/.git/worktrees/w", POL_WRITE, NULL, 0), 0);
    CHECK_INT(pol_check(p, "sub/.git/worktrees/w/config.worktree", POL_WRITE, NULL, 0),
              ERR_NOTFOUND);
    expect_write(p, ".husky/pre-commit", ERR_DENIED, "hooksPath");
    expect_read(p, ".git/config", 0);
    char abs[POL_PATH_MAX];
    snprintf(abs, sizeof abs, "%s/.bashrc", home);
    expect_write(p, abs, ERR_DENIED, "start-up");
    expect_read(p, abs, 0);
    expect_write(p, ".bashrc", ERR_DENIED, "start-up");
    expect_write(p, ".profile", ERR_DENIED, "start-up");
    expect_write(p, "src/.bashrc", 0, NULL); /* only at the top of a root or in $HOME */
    expect_write(p, ".lode/config.json", ERR_NOTFOUND, NULL);
    char real[POL_PATH_MAX];
    CHECK_INT(pol_check(p, ".lode", POL_WRITE, real, sizeof real), ERR_DENIED);
    expect_write(p, "xdgdata/lode/lode.db", ERR_DENIED, "lode's own");
    expect_write(p, "ro/file", ERR_DENIED, "read-only");
    expect_read(p, "ro/file", 0);
    expect_read(p, "secret/key", ERR_DENIED);
    expect_read(p, "link_secret", ERR_DENIED);
    int fd = -1;
    CHECK_INT(pol_open_dir(p, "secret", &fd, NULL, 0), ERR_DENIED);
    CHECK(strstr(err_msg(), "hidden") != NULL);
    /* the sandbox's list: protected paths inside writable roots */
    int saw_hooks = 0, saw_data = 0, saw_husky = 0, saw_mod = 0;
    for (int i = 0; pol_protected(p, i); i++) {
        saw_husky |= strstr(pol_protected(p, i), "/ws/.husky") != NULL;
        saw_mod |= strstr(pol_protected(p, i), "/ws/.git/modules/m/hooks") != NULL;
        saw_hooks |= strstr(pol_protected(p, i), "/ws/.git/hooks") != NULL;
        saw_data |= strstr(pol_protected(p, i), "/xdgdata/lode") != NULL;
    }
    CHECK(saw_hooks && saw_data && saw_husky && saw_mod);
    CHECK(pol_hidden(p, 0) && strstr(pol_hidden(p, 0), "/ws/secret"));
    pol_close(p);
}

/* A path whose directory is swapped for a symlink to outside, over and over,
 * while we keep writing through it: no write may ever land outside. */
static atomic_int stop_flag, swaps;
static void *flipper(void *arg)
{
    /* race is a directory, race.alt a symlink to outside; swap them atomically */
    char d[700], alt[720];
    snprintf(d, sizeof d, "%s/race", ws);
    snprintf(alt, sizeof alt, "%s/race.alt", ws);
    while (!atomic_load(&stop_flag)) {
        renameat2(AT_FDCWD, d, AT_FDCWD, alt, RENAME_EXCHANGE);
        atomic_fetch_add(&swaps, 1);
    }
    return NULL;
}

static void t_swap_race(void)
{
    struct pol *p = open_pol();
    REQUIRE(p);
    atomic_store(&stop_flag, 0);
    atomic_store(&swaps, 0);
    char d[700], alt[720];
    snprintf(d, sizeof d, "%s/race", ws);
    snprintf(alt, sizeof alt, "%s/race.alt", ws);
    mkdir(d, 0755);
    if (symlink(out, alt)) {
    }
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, flipper, NULL) == 0);
    while (atomic_load(&swaps) < 100)
        usleep(100);
    int ok = 0, denied = 0;
    /* at least 3000 tries, more (bounded) until both outcomes were seen */
    for (int i = 0; i < 3000 || (i < 30000 && (ok < 50 || denied < 50)); i++) {
        int fd = -1;
        int rc = pol_open_file(p, "race/f", O_WRONLY | O_CREAT, 0644, &fd, NULL, 0);
        if (rc == 0) {
            ok++;
            close(fd);
        } else {
            if (!denied)
                printf("    first refusal: %s\n", err_msg());
            denied++;
        }
    }
    atomic_store(&stop_flag, 1);
    pthread_join(th, NULL);
    char f[700];
    snprintf(f, sizeof f, "%s/f", out);
    struct stat st;
    CHECKF(stat(f, &st) < 0, "a write landed outside the workspace (%d ok, %d refused)", ok,
           denied);
    printf("    race: %d writes inside, %d refused, none outside\n", ok, denied);
    pol_close(p);
}

/* Random paths from a small alphabet: whenever a write is allowed, the file
 * opened is inside the workspace or the temp dir, and is what `real` says. */
static void t_random_paths(void)
{
    struct pol *p = open_pol();
    REQUIRE(p);
    struct th_rng r = { th_seed() };
    const char *parts[] = { "..",    ".", "src", "link_out", "link_in", "link_hooks", ".git",
                            "hooks", "x", "",    "sub",      "/",       "ws",         "outside" };
    int allowed = 0;
    for (int i = 0; i < 3000; i++) {
        char path[512] = "";
        int n = 1 + (int)(th_next(&r) % 5);
        if (th_next(&r) % 4 == 0)
            snprintf(path, sizeof path, "%s/", base);
        for (int k = 0; k < n; k++) {
            strncat(path, parts[th_next(&r) % (sizeof parts / sizeof *parts)],
                    sizeof path - strlen(path) - 2);
            if (k + 1 < n)
                strncat(path, "/", sizeof path - strlen(path) - 1);
        }
        int fd = -1;
        char real[POL_PATH_MAX];
        int rc = pol_open_file(p, path, O_WRONLY | O_CREAT, 0644, &fd, real, sizeof real);
        if (rc == 0) {
            allowed++;
            char link[64], got[POL_PATH_MAX];
            snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
            ssize_t m = readlink(link, got, sizeof got - 1);
            got[m > 0 ? m : 0] = 0;
            CHECKF(!strcmp(got, real), "%s: opened %s, policy said %s", path, got, real);
            CHECKF(!strncmp(got, ws, strlen(ws)) ||
                       !strncmp(got, pol_tmpdir(p), strlen(pol_tmpdir(p))),
                   "%s: wrote %s", path, got);
            CHECKF(!strstr(got, ".git/hooks"), "%s: wrote %s", path, got);
            close(fd);
            unlink(got);
        }
    }
    printf("    %d of 3000 random writes allowed, all inside\n", allowed);
    pol_close(p);
}

static void t_bad_open(void)
{
    struct pol *p = NULL;
    struct pol_opts o = { 0 };
    CHECK_INT(pol_open(&p, &o), ERR_INVAL);
    o.workspace = "/nonexistent/lode-ws";
    CHECK(pol_open(&p, &o) < 0 && p == NULL);
    char f[700];
    snprintf(f, sizeof f, "%s/src/a.c", ws);
    o.workspace = f;
    CHECK(pol_open(&p, &o) < 0 && p == NULL);
    pol_close(NULL);
}

int main(void)
{
    setup_tree();
    for (walk_mode = 0; walk_mode < 2; walk_mode++) {
        struct pol *p = open_pol();
        int have = p && pol_uses_openat2(p);
        pol_close(p);
        printf("# mode: %s\n", walk_mode ? "checked walk" : "openat2");
        if (!walk_mode && !have) {
            printf("skip openat2 mode (the kernel has no openat2 or /proc)\n");
            th_skipped++;
            continue;
        }
        TEST_RUN(t_workspace_work);
        TEST_RUN(t_escapes);
        TEST_RUN(t_protected);
        TEST_RUN(t_swap_race);
        TEST_RUN(t_random_paths);
    }
    TEST_RUN(t_bad_open);
    wsp_remove(base);
    TEST_END();
}
