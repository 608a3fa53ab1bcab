/* test_sandbox.c - the run_shell sandbox (tools/sandbox.c): probe, levels,
 * fail-closed refusals (forced through the probe's test hook), output capping,
 * timeouts, descriptors, and each boundary at the level this kernel reaches
 * (boundaries whose mechanism is missing are skipped with the reason). */
#include "testhelp.h"
#include "workspace.h"

#include "common/err.h"
#include "tools/policy.h"
#include "tools/sandbox.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char base[WSP_BASE], ws[WSP_PATH], out[WSP_PATH];
static struct sbx_caps caps;
static struct pol *pol;

static void setup(void)
{
    wsp_create("sbx", base, ws, out);
    wsp_mkdir(ws, ".git"); /* a repository without hooks/: the sandbox creates it to cover it */
    wsp_puts(ws, ".git/config", "[core]\n");
    wsp_mkdir(ws, "secret");
    wsp_puts(ws, "secret/key", "k\n");
    wsp_symlink(out, ws, "link");
    struct pol_opts o = { 0 };
    o.workspace = ws;
    if (pol_open(&pol, &o) < 0)
        printf("# pol_open: %s\n", err_msg());
    sbx_probe(&caps, getenv("LODE_SANDBOX_DISABLE")); /* replay other levels */
    printf("# %s%s%s\n", sbx_level_name(sbx_level(&caps)), caps.why[0] ? "; missing: " : "",
           caps.why);
}

static struct sbx_opts opts(void)
{
    struct sbx_opts o = sbx_defaults();
    o.pol = pol;
    o.caps = &caps;
    o.timeout_s = 10;
    o.approved = 1;
    return o;
}

static void t_probe_and_hook(void)
{
    struct sbx_caps c;
    CHECK_INT(sbx_probe(&c, "all"), 0);
    CHECK_INT(sbx_level(&c), 0);
    CHECK(strstr(c.why, "Landlock") && strstr(c.why, "seccomp") && strstr(c.why, "namespaces"));
    CHECK_INT(sbx_probe(&c, "userns"), 0);
    CHECK(sbx_level(&c) <= 2 && !c.userns);
    CHECK_INT(sbx_probe(&c, "pids"), 0);
    CHECK(!c.pids_cgroup && !c.pids_base[0] && strstr(c.why, "pids cgroup"));
    struct sbx_caps l3;
    memset(&l3, 0, sizeof l3);
    l3.userns = l3.mountns = l3.netns = l3.pidns = l3.seccomp = l3.close_range = 1;
    l3.landlock_abi = 6;
    CHECK_INT(sbx_level(&l3), 3);
    l3.netns = 0;
    CHECK_INT(sbx_level(&l3), 2);
    l3.landlock_abi = 0;
    CHECK_INT(sbx_level(&l3), 1);
}

/* Failing closed, whatever this kernel has: the probe is forced down. */
static void t_fail_closed(void)
{
    REQUIRE(pol);
    struct sbx_caps none;
    sbx_probe(&none, "all");
    struct sbx_opts o = opts();
    o.caps = &none;
    struct sbx_result r;
    CHECK_INT(sbx_run(&o, "touch ran", &r), ERR_DENIED);
    CHECKF(strstr(err_msg(), "network") != NULL, "%s", err_msg());
    sbx_result_free(&r);
    CHECK(!wsp_exists(ws, "ran"));
    /* network allowed, but no confinement and no approval: refused too */
    o.network = 1;
    o.approved = 0;
    o.nproc = 0; /* else root is refused for the process limit first (t_nproc) */
    CHECK_INT(sbx_run(&o, "touch ran", &r), ERR_DENIED);
    CHECKF(strstr(err_msg(), "approval") != NULL, "%s", err_msg());
    sbx_result_free(&r);
    CHECK(!wsp_exists(ws, "ran"));
    /* below L3 without approval: refused, and the message names the level */
    struct sbx_caps l2;
    sbx_probe(&l2, "userns");
    o = opts();
    o.caps = &l2;
    o.approved = 0;
    o.nproc = 0;
    CHECK_INT(sbx_run(&o, "touch ran", &r), ERR_DENIED);
    CHECKF(strstr(err_msg(), "without approval") != NULL, "%s", err_msg());
    sbx_result_free(&r);
    CHECK(!wsp_exists(ws, "ran"));
    /* hidden paths need a mount namespace: refused even with approval */
    struct pol *hp = NULL;
    const char *hidden[] = { "secret", NULL };
    struct pol_opts po = { 0 };
    po.workspace = ws;
    po.hidden = hidden;
    REQUIRE(pol_open(&hp, &po) == 0);
    o.pol = hp;
    o.approved = 1;
    CHECK_INT(sbx_run(&o, "touch ran", &r), ERR_DENIED);
    CHECKF(strstr(err_msg(), "hidden") != NULL, "%s", err_msg());
    sbx_result_free(&r);
    pol_close(hp);
    CHECK(!wsp_exists(ws, "ran"));
}

static void t_run_basics(void)
{
    REQUIRE(pol);
    if (sbx_level(&caps) < 1)
        SKIP("no seccomp: %s", caps.why);
    struct sbx_opts o = opts();
    struct sbx_result r;
    REQUIRE(sbx_run(&o, "echo hello; echo err >&2; pwd", &r) == 0);
    char want[700];
    snprintf(want, sizeof want, "hello\nerr\n%s\n", ws);
    CHECK_STR(r.out.p, want);
    CHECK(r.exited && r.status == 0 && !r.timed_out && !r.truncated);
    sbx_result_free(&r);
    REQUIRE(sbx_run(&o, "exit 7", &r) == 0);
    CHECK(r.exited && r.status == 7);
    sbx_result_free(&r);
    REQUIRE(sbx_run(&o, "sh -c 'kill -9 $$'", &r) == 0);
    CHECK((!r.exited && r.status == 9) || (r.exited && r.status == 137)); /* sh reports it */
    sbx_result_free(&r);
    /* stdin is /dev/null; TMPDIR is the private temp dir */
    REQUIRE(sbx_run(&o, "cat; echo \"$TMPDIR\"", &r) == 0);
    snprintf(want, sizeof want, "%s\n", pol_tmpdir(pol));
    CHECK_STR(r.out.p, want);
    sbx_result_free(&r);
    /* a working directory inside the workspace, but not outside */
    o.cwd = ".git";
    REQUIRE(sbx_run(&o, "pwd", &r) == 0);
    CHECK(r.out.p && strstr(r.out.p, "/ws/.git"));
    sbx_result_free(&r);
    o.cwd = "../outside";
    CHECK(sbx_run(&o, "pwd", &r) == 0); /* reading there is allowed: cwd is not a write */
    sbx_result_free(&r);
    o.cwd = "nope";
    CHECK_INT(sbx_run(&o, "pwd", &r), ERR_NOTFOUND);
    sbx_result_free(&r);
}

static void t_output_cap(void)
{
    REQUIRE(pol);
    if (sbx_level(&caps) < 1)
        SKIP("no seccomp: %s", caps.why);
    struct sbx_opts o = opts();
    o.output_cap = 1000;
    struct sbx_result r;
    REQUIRE(sbx_run(&o, "seq 1 20000", &r) == 0);
    CHECK(r.truncated);
    CHECK(r.out_total > 100000);
    CHECK(r.out.p && !strncmp(r.out.p, "1\n2\n3\n", 6));
    CHECK(r.out.len > 20 && !strcmp(r.out.p + r.out.len - 12, "19999\n20000\n"));
    CHECK(r.out.p && strstr(r.out.p, "bytes omitted"));
    CHECK(r.out.len < 1100);
    sbx_result_free(&r);
}

static void t_timeout_and_leftovers(void)
{
    REQUIRE(pol);
    if (sbx_level(&caps) < 1)
        SKIP("no seccomp: %s", caps.why);
    struct sbx_opts o = opts();
    o.timeout_s = 0.5;
    struct sbx_result r;
    REQUIRE(sbx_run(&o, "echo before; sleep 20; echo after", &r) == 0);
    CHECK(r.timed_out && !r.exited && r.wall_s < 15); /* not the 20 s sleep */
    CHECK_STR(r.out.p, "before\n");
    sbx_result_free(&r);
    o = opts();
    REQUIRE(sbx_run(&o, "sleep 20 & echo started", &r) == 0);
    CHECK(r.exited && r.status == 0 && r.wall_s < 15); /* did not wait for the background sleep */
    sbx_result_free(&r);
}

static void t_descriptors(void)
{
    REQUIRE(pol);
    if (sbx_level(&caps) < 1)
        SKIP("no seccomp: %s", caps.why);
    int leak = open("/dev/null", O_RDONLY); /* not close-on-exec on purpose */
    struct sbx_opts o = opts();
    struct sbx_result r;
    REQUIRE(sbx_run(&o, "ls /proc/self/fd | tr '\\n' ' '", &r) == 0);
    CHECK_STR(r.out.p, "0 1 2 3 ");
    sbx_result_free(&r);
    close(leak);
}

static void t_writes(void)
{
    REQUIRE(pol);
    if (!caps.landlock_abi || !caps.seccomp)
        SKIP("needs Landlock and seccomp: %s", caps.why);
    struct sbx_opts o = opts();
    struct sbx_result r;
    REQUIRE(sbx_run(&o, "echo ok > inside && mkdir -p d/e && echo $TMPDIR > \"$TMPDIR/t\"", &r) ==
            0);
    CHECKF(r.exited && r.status == 0, "%s", r.out.p);
    CHECK(wsp_exists(ws, "inside") && wsp_exists(ws, "d/e"));
    sbx_result_free(&r);
    char cmd[900];
    snprintf(cmd, sizeof cmd,
             "echo x > '%s/f'; echo x > link/g; ln -s /etc/passwd pw; echo x >> pw", out);
    REQUIRE(sbx_run(&o, cmd, &r) == 0);
    CHECK(!wsp_exists(out, "f") && !wsp_exists(out, "g"));
    CHECKF(r.out.p && strstr(r.out.p, "ermission denied"), "%s", r.out.p);
    sbx_result_free(&r);
    /* no new hard link from outside into the workspace (Landlock REFER) */
    snprintf(cmd, sizeof cmd, "ln '%s/../outside' hl 2>&1; ln /etc/hostname hl2", ws);
    REQUIRE(sbx_run(&o, cmd, &r) == 0);
    CHECK(!wsp_exists(ws, "hl2"));
    sbx_result_free(&r);
}

static void t_level3(void)
{
    REQUIRE(pol);
    if (sbx_level(&caps) < 3)
        SKIP("needs L3 (namespaces): %s", caps.why);
    struct sbx_opts o = opts();
    o.approved = 0; /* L3 needs no approval */
    struct sbx_result r;
    REQUIRE(sbx_run(&o, "echo x > .git/hooks/pre-commit; echo x >> .git/config; mkdir .lode/x",
                    &r) == 0);
    CHECK(wsp_exists(ws, ".git/hooks") && !wsp_exists(ws, ".git/hooks/pre-commit"));
    CHECK(!wsp_exists(ws, ".lode/x"));
    CHECKF(r.out.p && strstr(r.out.p, "Read-only file system"), "%s", r.out.p);
    sbx_result_free(&r);
    char p[800];
    snprintf(p, sizeof p, "%s/.git/config", ws);
    struct stat st;
    CHECK(stat(p, &st) == 0 && st.st_size == 7);
    /* the directories above protected paths are pinned: no swapping .git */
    REQUIRE(sbx_run(&o,
                    "mv .git .git-old; mv .git/hooks .git/h; rm -rf .git/hooks; "
                    "mkdir -p .git/hooks; echo x > .git/hooks/post-merge",
                    &r) == 0);
    CHECK(!wsp_exists(ws, ".git-old") && !wsp_exists(ws, ".git/h") &&
          !wsp_exists(ws, ".git/hooks/post-merge"));
    CHECKF(r.out.p && strstr(r.out.p, "busy"), "%s", r.out.p);
    sbx_result_free(&r);
    /* the mounts do not leak into lode's own namespace */
    REQUIRE(sbx_run(&o, "true", &r) == 0);
    sbx_result_free(&r);
    int fd = open(p, O_WRONLY | O_APPEND);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    /* a protected path that is a symlink (a decoy) refuses the command */
    char hooks[800], moved[800];
    snprintf(hooks, sizeof hooks, "%s/.git/hooks", ws);
    snprintf(moved, sizeof moved, "%s/decoy", ws);
    REQUIRE(rename(hooks, moved) == 0);
    REQUIRE(symlink(moved, hooks) == 0);
    CHECK_INT(sbx_run(&o, "echo x > .git/hooks/pre-commit", &r), ERR_IO);
    CHECKF(strstr(err_msg(), "symlink"), "%s", err_msg());
    sbx_result_free(&r);
    CHECK(!wsp_exists(ws, "decoy/pre-commit"));
    unlink(hooks);
    REQUIRE(rename(moved, hooks) == 0);
    /* hidden paths are empty inside */
    struct pol *hp = NULL;
    const char *hidden[] = { "secret", NULL };
    struct pol_opts po = { 0 };
    po.workspace = ws;
    po.hidden = hidden;
    REQUIRE(pol_open(&hp, &po) == 0);
    o.pol = hp;
    REQUIRE(sbx_run(&o, "cat secret/key; ls secret", &r) == 0);
    CHECKF(!r.out.p || !strstr(r.out.p, "k\n"), "%s", r.out.p);
    sbx_result_free(&r);
    pol_close(hp);
    o.pol = pol;
    /* the network is gone: not even a socket */
    REQUIRE(sbx_run(&o, "cat /proc/net/dev | wc -l", &r) == 0);
    CHECKF(r.out.p && atoi(r.out.p) <= 3, "interfaces: %s", r.out.p); /* header x2 + lo */
    sbx_result_free(&r);
    /* 10 GB write stopped by RLIMIT_FSIZE */
    o = opts();
    o.fsize = 1 << 20;
    REQUIRE(sbx_run(&o, "dd if=/dev/zero of=big bs=1M count=10240", &r) == 0);
    snprintf(p, sizeof p, "%s/big", ws);
    CHECK(stat(p, &st) == 0 && st.st_size <= (1 << 20));
    CHECK(!r.exited || r.status != 0);
    sbx_result_free(&r);
    unlink(p);
}

/* The process limit: a pids cgroup where there is one (root included),
 * else RLIMIT_NPROC in our user namespace; nothing enforcing it refuses. */
static void t_nproc(void)
{
    REQUIRE(pol);
    struct sbx_result r;
    struct sbx_opts o = opts();
    /* root without a pids cgroup: a limit cannot be enforced, so refused */
    struct sbx_caps nopids;
    sbx_probe(&nopids, "pids");
    o.caps = &nopids;
    o.nproc = 64;
    o.nproc_explicit = 1;
    if (geteuid() == 0) {
        CHECK_INT(sbx_run(&o, "touch ran", &r), ERR_DENIED);
        CHECKF(strstr(err_msg(), "process limit"), "%s", err_msg());
        sbx_result_free(&r);
        CHECK(!wsp_exists(ws, "ran"));
        /* the default limit (not asked for) is not refused, nor is 0 */
        o.nproc_explicit = 0;
        if (sbx_level(&nopids) >= 1) {
            CHECK_INT(sbx_run(&o, "true", &r), 0);
            sbx_result_free(&r);
            o.nproc = 0;
            o.nproc_explicit = 1;
            CHECK_INT(sbx_run(&o, "true", &r), 0);
            sbx_result_free(&r);
        }
    }
    o = opts();
    if (!sbx_nproc_mechanism(&caps))
        SKIP("nothing bounds the process count here: %s", caps.why);
    /* a fork bomb: bounded, and ended by the 2 s timeout or the shell's exit.
     * The peak is the kernel's count in the run's cgroup (pids.peak, or
     * pids.current sampled), so it does not depend on the machine's speed */
    o.nproc = 64;
    o.timeout_s = 2;
    REQUIRE(sbx_run(&o, "f() { f | f & }; f; sleep 1; echo survived", &r) == 0);
    CHECKF(r.wall_s < 30, "fork bomb ran %.1f s", r.wall_s); /* slack for loaded machines */
    if (caps.pids_cgroup) {
        CHECKF(r.pids_peak > 1 && r.pids_peak <= 64, "peak %ld tasks, limit 64", r.pids_peak);
        printf("# fork bomb: at most %ld tasks (limit 64), %.2f s\n", r.pids_peak, r.wall_s);
    } else {
        CHECK(r.pids_peak == -1);
    }
    sbx_result_free(&r);
    if (!caps.pids_cgroup)
        return;
    /* the run's cgroup is gone afterwards */
    char p[POL_PATH_MAX + 64];
    snprintf(p, sizeof p, "ls -d '%s'/lode-sbx-%ld-* 2>/dev/null | grep -v probe | wc -l",
             caps.pids_base, (long)getpid());
    FILE *f = popen(p, "r");
    int left = -1;
    if (f) {
        if (fscanf(f, "%d", &left) != 1)
            left = -1;
        pclose(f);
    }
    CHECK_INT(left, 0);
    /* a leftover of a crashed run (its owner is dead) is removed by the probe */
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    REQUIRE(dead > 0);
    waitpid(dead, NULL, 0);
    snprintf(p, sizeof p, "%s/lode-sbx-%ld-7", caps.pids_base, (long)dead);
    REQUIRE(mkdir(p, 0700) == 0);
    struct sbx_caps again;
    sbx_probe(&again, NULL);
    struct stat st;
    CHECKF(stat(p, &st) < 0, "%s is still there", p);
    rmdir(p);
    /* a small limit is exact: 8 tasks, the namespace's waiter and the shell
     * among them, so 10 background sleeps cannot all start (dash gives up
     * with "Cannot fork", bash retries until the timeout) */
    o.nproc = 8;
    o.timeout_s = 3;
    REQUIRE(sbx_run(&o, "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 2 & done; echo done", &r) == 0);
    CHECKF(r.pids_peak >= 2 && r.pids_peak <= 8, "peak %ld, limit 8", r.pids_peak);
    CHECKF(r.out.p && strstr(r.out.p, "fork"), "%s", r.out.p);
    sbx_result_free(&r);
}

int main(void)
{
    setup();
    TEST_RUN(t_probe_and_hook);
    TEST_RUN(t_fail_closed);
    TEST_RUN(t_run_basics);
    TEST_RUN(t_output_cap);
    TEST_RUN(t_timeout_and_leftovers);
    TEST_RUN(t_descriptors);
    TEST_RUN(t_writes);
    TEST_RUN(t_level3);
    TEST_RUN(t_nproc);
    pol_close(pol);
    wsp_remove(base);
    TEST_END();
}
