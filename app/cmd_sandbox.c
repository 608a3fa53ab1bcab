/*
 * cmd_sandbox.c - `lode sandbox`: the sandbox level, a self-test of every
 * boundary (--verify), one command run exactly as run_shell runs it (run),
 * and the path policy's decision for a path (check).
 *
 * The self-test and the e2e tests need a few probes that must run *inside*
 * the sandbox with no other program to rely on; they are hidden actions of
 * this command (selftest-connect PORT, selftest-tty, selftest-syscalls).
 */
#include "app/commands.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "tools/policy.h"
#include "tools/sandbox.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const struct cli_opt opts[] = {
    { "verify", 0, 0, NULL, "self-test every boundary and print a table" },
    { "workspace", 'w', 1, "DIR", "workspace (default: the project root of the current dir)" },
    { "network", 0, 0, NULL, "allow network (sets sandbox.network for this run)" },
    { "timeout", 't', 1, "S", "wall-clock limit in seconds (default 120)" },
    { "approve", 0, 0, NULL, "approve running below L3 (what run_shell asks the user)" },
    { "write", 0, 0, NULL, "check: ask for write access" },
    { "fsize", 0, 1, "BYTES", "largest file the command may write (default 1 GiB)" },
    { "nproc", 0, 1, "N", "process limit (pids cgroup, else RLIMIT_NPROC; 0: none)" },
    { "cpu", 0, 1, "S", "CPU-time limit in seconds (default 600)" },
    { "output-cap", 0, 1, "BYTES", "output kept, head and tail (default 65536)" },
    { "read-only", 0, 1, "PATH", "an extra never-writable path (repeatable)" },
    { "hidden", 0, 1, "PATH", "an extra hidden path (repeatable)" },
    { 0 },
};
enum {
    O_VERIFY,
    O_WS,
    O_NET,
    O_TIMEOUT,
    O_APPROVE,
    O_WRITE,
    O_FSIZE,
    O_NPROC,
    O_CPU,
    O_OCAP,
    O_RO,
    O_HIDDEN
};

/* ---- probes that run inside the sandbox ---- */

static int selftest_connect(const char *port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) {
        printf("blocked: socket: %s\n", strerror(errno));
        return 0;
    }
    struct sockaddr_in a = { 0 };
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
        printf("blocked: connect: %s\n", strerror(errno));
        close(s);
        return 0;
    }
    printf("CONNECTED to 127.0.0.1:%s\n", port);
    close(s);
    return 3;
}

static int selftest_tty(void)
{
    int bad = 0;
    int fd = open("/dev/tty", O_RDONLY | O_NOCTTY); /* ENXIO: no controlling terminal */
    if (fd >= 0) {
        printf("HAS a controlling terminal\n");
        close(fd);
        bad = 1;
    } else
        printf("no controlling terminal: /dev/tty: %s\n", strerror(errno));
    for (int i = 0; i < 3; i++) {
        char c = ' ';
        if (ioctl(i, TIOCSTI, &c) == 0) {
            printf("TIOCSTI on fd %d WORKED\n", i);
            bad = 1;
        } else
            printf("TIOCSTI on fd %d: %s\n", i, strerror(errno));
    }
    return bad ? 3 : 0;
}

static int selftest_syscalls(void)
{
    int bad = 0;
    if (unshare(CLONE_NEWUSER) == 0)
        printf("unshare(CLONE_NEWUSER) ALLOWED\n"), bad = 1;
    else
        printf("unshare: %s\n", strerror(errno));
    if (mount("none", "/tmp", "tmpfs", 0, NULL) == 0)
        printf("mount ALLOWED\n"), bad = 1;
    else
        printf("mount: %s\n", strerror(errno));
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0)
        printf("ptrace ALLOWED\n"), bad = 1;
    else
        printf("ptrace: %s\n", strerror(errno));
    return bad ? 3 : 0;
}

/* Counts the processes of its own pid namespace in /proc for `secs` seconds
 * (1 ms steps, no fork: it must work while a fork bomb fills the sandbox)
 * and keeps the largest count in `file`, rewritten at each new maximum (the
 * sandbox may kill it at any time). An independent check of the pids cgroup:
 * processes are counted by the kernel's /proc, not by the cgroup. */
static int selftest_peak(const char *file, const char *secs)
{
    struct stat me;
    if (stat("/proc/self/ns/pid", &me) < 0) {
        printf("selftest-peak: /proc/self/ns/pid: %s\n", strerror(errno));
        return 1;
    }
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        printf("selftest-peak: %s: %s\n", file, strerror(errno));
        return 1;
    }
    struct timespec t0, now, step = { 0, 1000000 };
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double limit = atof(secs);
    int max = 0;
    for (now = t0; (double)(now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9 < limit;
         clock_gettime(CLOCK_MONOTONIC, &now)) {
        DIR *d = opendir("/proc");
        int n = 0;
        for (struct dirent *e; d && (e = readdir(d));) {
            if (e->d_name[0] < '1' || e->d_name[0] > '9')
                continue;
            char p[300];
            struct stat st;
            snprintf(p, sizeof p, "/proc/%s/ns/pid", e->d_name);
            if (stat(p, &st) == 0 ? st.st_ino == me.st_ino && st.st_dev == me.st_dev
                                  : errno != ENOENT)
                n++; /* unreadable: counted, to err on the strict side */
        }
        if (d)
            closedir(d);
        if (n > max) {
            char b[32];
            int len = snprintf(b, sizeof b, "%d\n", n);
            max = n;
            if (pwrite(fd, b, (size_t)len, 0) != len || ftruncate(fd, len) < 0) {
            }
        }
        nanosleep(&step, NULL);
    }
    close(fd);
    printf("at most %d processes\n", max);
    return 0;
}

/* ---- shared set-up ---- */

struct setup {
    const char *ws;
    int network, approved;
    struct sbx_opts so;
    const char *ro[17], *hidden[17];
    int nro, nhidden;
};

static int open_policy(struct app *a, struct setup *s, struct pol **pol)
{
    char root[POL_PATH_MAX];
    const char *ws = s->ws;
    if (!ws) {
        if (fs_project_root(a->cwd, root, sizeof root) < 0)
            return cli_fail();
        ws = root;
    }
    struct pol_opts po = { 0 };
    po.workspace = ws;
    po.read_only = s->ro;
    po.hidden = s->hidden;
    if (pol_open(pol, &po) < 0)
        return cli_fail();
    return EXIT_OK;
}

static int parse_num(const char *v, unsigned long long *out, const char *what)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-')
        return cli_usage_error("sandbox", "%s: expected a non-negative integer, got '%s'", what, v);
    *out = x;
    return EXIT_OK;
}

/* ---- run and check ---- */

static int do_run(struct app *a, struct setup *s, int argc, char **argv)
{
    if (argc == 0)
        return cli_usage_error("sandbox", "run: no command (lode sandbox run -- CMD...)");
    struct buf cmd = { 0 };
    for (int i = 0; i < argc; i++)
        if ((i && buf_putc(&cmd, ' ') < 0) || buf_puts(&cmd, argv[i]) < 0) {
            buf_free(&cmd);
            return cli_fail();
        }
    struct pol *pol = NULL;
    int ec = open_policy(a, s, &pol);
    if (ec != EXIT_OK) {
        buf_free(&cmd);
        return ec;
    }
    struct sbx_caps caps;
    sbx_probe(&caps, getenv("LODE_SANDBOX_DISABLE"));
    s->so.pol = pol;
    s->so.caps = &caps;
    s->so.network = s->network;
    s->so.approved = s->approved;
    struct sbx_result r;
    int rc = sbx_run(&s->so, cmd.p, &r);
    buf_free(&cmd);
    if (rc < 0) {
        ec = cli_fail();
    } else {
        fwrite(r.out.p ? r.out.p : "", 1, r.out.len, stdout);
        fflush(stdout);
        if (r.timed_out)
            fprintf(stderr, "lode sandbox: killed after the %.0f s timeout (L%d, %.2f s)\n",
                    s->so.timeout_s, r.level, r.wall_s);
        else if (r.exited)
            fprintf(stderr, "lode sandbox: exit %d (L%d, %.2f s)\n", r.status, r.level, r.wall_s);
        else
            fprintf(stderr, "lode sandbox: killed by signal %d (L%d, %.2f s)\n", r.status, r.level,
                    r.wall_s);
        if (r.truncated)
            fprintf(stderr, "lode sandbox: output was %zu bytes, head and tail kept\n",
                    r.out_total);
        if (r.pids_peak >= 0)
            fprintf(stderr, "lode sandbox: at most %ld tasks at once (limit %lu)\n", r.pids_peak,
                    s->so.nproc);
        ec = r.exited ? r.status : 128 + r.status;
    }
    sbx_result_free(&r);
    pol_close(pol);
    return ec;
}

static int do_check(struct app *a, struct setup *s, int write, int argc, char **argv)
{
    if (argc != 1)
        return cli_usage_error("sandbox", "check: expected one PATH");
    struct pol *pol = NULL;
    int ec = open_policy(a, s, &pol);
    if (ec != EXIT_OK)
        return ec;
    char real[POL_PATH_MAX];
    int rc = pol_check(pol, argv[0], POL_READ | (write ? POL_WRITE : 0), real, sizeof real);
    if (rc < 0)
        ec = cli_fail();
    else
        printf("%s: %s allowed (%s)\n", argv[0], write ? "write" : "read", real);
    pol_close(pol);
    return ec;
}

/* ---- --verify ---- */

struct vctx {
    struct sbx_opts so;
    struct sbx_caps caps;
    struct pol *pol;
    char base[POL_PATH_MAX], ws[POL_PATH_MAX], out[POL_PATH_MAX], home[POL_PATH_MAX];
    char exe[PATH_MAX];
    int fails;
};

static void row(struct vctx *v, const char *name, const char *result, const char *detail)
{
    printf("%-34s %-12s %s\n", name, result, detail);
    if (!strcmp(result, "FAIL"))
        v->fails++;
}

/* Runs cmd; returns its exit status, -1 if refused/failed (msg in err). */
static int vrun(struct vctx *v, const char *cmd, struct sbx_result *r)
{
    int rc = sbx_run(&v->so, cmd, r);
    if (rc < 0)
        return -1;
    return r->exited ? r->status : 128 + r->status;
}

static void first_line(const char *s, char *out, size_t cap)
{
    snprintf(out, cap, "%s", s ? s : "");
    char *nl = strchr(out, '\n');
    if (nl)
        *nl = 0;
}

/* A write attempt that must fail: passes when `target` is unchanged. */
static void v_deny_write(struct vctx *v, const char *name, const char *target, const char *mech,
                         int have)
{
    char cmd[POL_PATH_MAX * 2], d[600];
    if (!have) {
        row(v, name, "unavailable", mech);
        return;
    }
    struct stat before, after;
    int existed = lstat(target, &before) == 0;
    snprintf(cmd, sizeof cmd, "echo escaped >> '%s'", target);
    struct sbx_result r;
    int st = vrun(v, cmd, &r);
    int changed = lstat(target, &after) == 0 && (!existed || after.st_size != before.st_size);
    first_line(st < 0 ? err_msg() : r.out.p, d, sizeof d);
    row(v, name, changed ? "FAIL" : "pass", changed ? "the write went through" : d);
    sbx_result_free(&r);
}

static int verify(struct app *a)
{
    struct vctx v;
    memset(&v, 0, sizeof v);
    const char *tb = getenv("TMPDIR");
    snprintf(v.base, sizeof v.base, "%s/lode-verify.XXXXXX", tb && tb[0] == '/' ? tb : "/tmp");
    if (!mkdtemp(v.base))
        return err_errno("sandbox --verify: temp dir"), cli_fail();
    snprintf(v.ws, sizeof v.ws, "%s/ws", v.base);
    snprintf(v.out, sizeof v.out, "%s/outside", v.base);
    snprintf(v.home, sizeof v.home, "%s/ws/home", v.base);
    char p[POL_PATH_MAX + 64], data[POL_PATH_MAX + 64];
    mkdir(v.ws, 0755);
    mkdir(v.out, 0755);
    mkdir(v.home, 0755);
    snprintf(p, sizeof p, "%s/.git", v.ws);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/.git/hooks", v.ws);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/.bashrc", v.home);
    fs_write_atomic(p, "# rc\n", 5);
    snprintf(data, sizeof data, "%s/ws/data", v.base);
    setenv("XDG_DATA_HOME", data, 1);
    snprintf(p, sizeof p, "%s/lode", data);
    fs_mkdir_p(p, 0755);
    snprintf(p, sizeof p, "%s/link", v.ws);
    if (symlink(v.out, p) < 0) {
    }
    ssize_t en = readlink("/proc/self/exe", v.exe, sizeof v.exe - 1);
    v.exe[en > 0 ? en : 0] = 0;

    struct pol_opts po = { 0 };
    po.workspace = v.ws;
    po.home = v.home;
    if (pol_open(&v.pol, &po) < 0) {
        int ec = cli_fail();
        return ec;
    }
    sbx_probe(&v.caps, getenv("LODE_SANDBOX_DISABLE"));
    int level = sbx_level(&v.caps);
    v.so = sbx_defaults();
    v.so.pol = v.pol;
    v.so.caps = &v.caps;
    v.so.approved = 1; /* measure every level; run_shell itself asks below L3 */
    v.so.timeout_s = 10;

    printf("sandbox level: %s\n", sbx_level_name(level));
    printf("kernel: user ns %s, mount ns %s, net ns %s, pid ns %s, Landlock ABI %d, seccomp %s, "
           "close_range %s, openat2 %s, pids cgroup %s\n",
           v.caps.userns ? "yes" : "no", v.caps.mountns ? "yes" : "no", v.caps.netns ? "yes" : "no",
           v.caps.pidns ? "yes" : "no", v.caps.landlock_abi, v.caps.seccomp ? "yes" : "no",
           v.caps.close_range ? "yes" : "no", pol_uses_openat2(v.pol) ? "yes" : "no",
           v.caps.pids_cgroup ? v.caps.pids_base : "no");
    printf("process limit: %s\n", sbx_nproc_mechanism(&v.caps)
                                      ? sbx_nproc_mechanism(&v.caps)
                                      : "none (root ignores RLIMIT_NPROC): an explicit limit "
                                        "(--nproc) is refused");
    if (v.caps.why[0])
        printf("missing: %s\n", v.caps.why);
    printf("running as uid %u%s\n\n", (unsigned)getuid(),
           getuid() == 0 ? " (root: write protection comes from Landlock and read-only mounts, "
                           "not file modes)"
                         : "");
    printf("%-34s %-12s %s\n", "boundary", "result", "detail");

    struct sbx_result r;
    char d[600], cmd[POL_PATH_MAX * 2];
    int st = vrun(&v, "echo ok > made-here && cat made-here", &r);
    first_line(st < 0 ? err_msg() : r.out.p, d, sizeof d);
    row(&v, "write in the workspace works", st == 0 && strstr(d, "ok") ? "pass" : "FAIL", d);
    sbx_result_free(&r);

    int ll = v.caps.landlock_abi > 0, mnt = level >= 3;
    snprintf(p, sizeof p, "%s/f", v.out);
    v_deny_write(&v, "write outside the workspace", p, "needs Landlock", ll);
    snprintf(p, sizeof p, "%s/link/g", v.ws);
    v_deny_write(&v, "write through a symlink out", p, "needs Landlock", ll);
    snprintf(p, sizeof p, "%s/.git/hooks/pre-commit", v.ws);
    v_deny_write(&v, "write to .git/hooks", p, "needs a mount namespace", mnt);
    snprintf(p, sizeof p, "%s/.bashrc", v.home);
    v_deny_write(&v, "write to ~/.bashrc (in the ws)", p, "needs a mount namespace", mnt);
    snprintf(p, sizeof p, "%s/lode/lode.db", data);
    v_deny_write(&v, "write to lode's database dir", p, "needs a mount namespace", mnt);

    /* network: a listener here, a connect attempt in there */
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { 0 };
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (ls >= 0 && bind(ls, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(ls, 4) == 0 &&
        getsockname(ls, (struct sockaddr *)&sa, &sl) == 0) {
        snprintf(cmd, sizeof cmd, "'%s' sandbox selftest-connect %u", v.exe,
                 (unsigned)ntohs(sa.sin_port));
        st = vrun(&v, cmd, &r);
        first_line(st < 0 ? err_msg() : r.out.p, d, sizeof d);
        row(&v, "connect() to 127.0.0.1", st == 0 ? "pass" : "FAIL", d);
        sbx_result_free(&r);
    } else
        row(&v, "connect() to 127.0.0.1", "unavailable", "no loopback listener here");
    if (ls >= 0)
        close(ls);

    snprintf(cmd, sizeof cmd, "'%s' sandbox selftest-tty", v.exe);
    st = vrun(&v, cmd, &r);
    first_line(st < 0 ? err_msg() : r.out.p, d, sizeof d);
    row(&v, "TIOCSTI / controlling terminal", st == 0 ? "pass" : "FAIL", d);
    sbx_result_free(&r);

    snprintf(cmd, sizeof cmd, "'%s' sandbox selftest-syscalls", v.exe);
    if (v.caps.seccomp) {
        st = vrun(&v, cmd, &r);
        first_line(st < 0 ? err_msg() : r.out.p, d, sizeof d);
        row(&v, "unshare/mount/ptrace denied", st == 0 ? "pass" : "FAIL", d);
        sbx_result_free(&r);
    } else
        row(&v, "unshare/mount/ptrace denied", "unavailable", "needs seccomp");

    st = vrun(&v, "ls /proc/self/fd", &r);
    int extra = 0;
    for (char *t = r.out.p ? r.out.p : ""; *t; t++)
        if ((t == r.out.p || t[-1] == '\n') && atoi(t) > 3)
            extra = 1;
    row(&v, "descriptors closed", st == 0 && !extra ? "pass" : "FAIL",
        st == 0 ? "only 0-2 reach the command" : err_msg());
    sbx_result_free(&r);

    struct sbx_opts keep = v.so;
    v.so.fsize = 1 << 20;
    st = vrun(&v, "dd if=/dev/zero of=big bs=1M count=10240 2>/dev/null; wc -c < big", &r);
    snprintf(p, sizeof p, "%s/big", v.ws);
    struct stat bst;
    long long sz = stat(p, &bst) == 0 ? (long long)bst.st_size : -1;
    snprintf(d, sizeof d, "a 10 GB write stopped at %lld bytes (limit 1 MiB)", sz);
    row(&v, "file size limit", sz >= 0 && sz <= (1 << 20) ? "pass" : "FAIL", d);
    sbx_result_free(&r);
    unlink(p);
    v.so = keep;

    v.so.timeout_s = 1;
    st = vrun(&v, "sleep 30", &r);
    snprintf(d, sizeof d, "sleep 30 killed after %.2f s", r.wall_s);
    row(&v, "wall-clock timeout", st >= 0 && r.timed_out && r.wall_s < 5 ? "pass" : "FAIL", d);
    sbx_result_free(&r);
    v.so = keep;

    st = vrun(&v, "sleep 30 & echo started", &r);
    snprintf(d, sizeof d, "a background sleep 30 ended with the shell (%.2f s)", r.wall_s);
    row(&v, "no processes left behind", st == 0 && r.wall_s < 5 ? "pass" : "FAIL", d);
    sbx_result_free(&r);

    if (!sbx_nproc_mechanism(&v.caps)) {
        row(&v, "fork bomb bounded", "unavailable",
            getuid() == 0 ? "root ignores RLIMIT_NPROC and there is no pids cgroup"
                          : "no pids cgroup and no user namespace");
        if (geteuid() == 0) {
            /* an explicit limit nothing can enforce must be refused */
            v.so.nproc = 64;
            v.so.nproc_explicit = 1;
            snprintf(p, sizeof p, "%s/ran-unbounded", v.ws);
            st = vrun(&v, "touch ran-unbounded", &r);
            first_line(st < 0 ? err_msg() : "it ran", d, sizeof d);
            row(&v, "fails closed (--nproc unenforced)", st < 0 && !fs_exists(p) ? "pass" : "FAIL",
                d);
            sbx_result_free(&r);
            v.so = keep;
        }
    } else {
        /* 2 s timeout; with a pids cgroup the kernel's own count (pids.peak)
         * must stay at the limit, whatever the machine's speed */
        v.so.timeout_s = 2;
        v.so.nproc = 64;
        v.so.cpu_s = 2;
        st = vrun(&v, "f() { f | f & }; f; sleep 1", &r);
        int bounded = st >= 0 && r.wall_s < 10 && r.pids_peak <= (long)v.so.nproc;
        char peak[64] = "";
        if (r.pids_peak >= 0)
            snprintf(peak, sizeof peak, ", at most %ld tasks (limit 64)", r.pids_peak);
        snprintf(d, sizeof d, "%s after %.2f s%s",
                 st < 0        ? err_msg()
                 : r.timed_out ? "killed at the timeout"
                               : "ended",
                 r.wall_s, peak);
        row(&v, "fork bomb bounded", bounded ? "pass" : "FAIL", d);
        sbx_result_free(&r);
        v.so = keep;
    }

    /* the file tools' side: the same policy, in process */
    const char *pol_cases[][2] = {
        { "link/x", "file tools: symlink out" },
        { "../outside/x", "file tools: .. out" },
        { ".git/hooks/pre-commit", "file tools: .git/hooks" },
        { "home/.bashrc", "file tools: ~/.bashrc" },
        { "data/lode/lode.db", "file tools: lode's database" },
    };
    for (size_t i = 0; i < sizeof pol_cases / sizeof pol_cases[0]; i++) {
        int fd = -1;
        int prc = pol_open_file(v.pol, pol_cases[i][0], O_WRONLY | O_CREAT, 0644, &fd, NULL, 0);
        if (fd >= 0)
            close(fd);
        first_line(prc == ERR_DENIED ? err_msg() : "the write was allowed", d, sizeof d);
        row(&v, pol_cases[i][1], prc == ERR_DENIED ? "pass" : "FAIL", d);
    }

    /* failing closed: with every mechanism reported missing, nothing runs */
    struct sbx_caps none;
    sbx_probe(&none, "all");
    v.so.caps = &none;
    v.so.approved = 0;
    st = vrun(&v, "touch ran-unconfined", &r);
    snprintf(p, sizeof p, "%s/ran-unconfined", v.ws);
    first_line(st < 0 ? err_msg() : "it ran", d, sizeof d);
    row(&v, "fails closed (mechanisms missing)", st < 0 && !fs_exists(p) ? "pass" : "FAIL", d);
    sbx_result_free(&r);
    v.so = keep;

    printf("\n%s\n", v.fails ? "some boundaries FAILED" : "every available boundary holds");
    pol_close(v.pol);
    /* clean up the scratch tree (the policy's own temp dir is already gone) */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", v.base);
    if (system(cmd) != 0) {
    }
    return v.fails ? EXIT_ERROR : EXIT_OK;
}

/* ---- the command ---- */

static int run(struct app *a, int argc, char **argv)
{
    /* hidden probes used by --verify and the tests, run inside the sandbox */
    if (argc == 3 && !strcmp(argv[1], "selftest-connect"))
        return selftest_connect(argv[2]);
    if (argc == 2 && !strcmp(argv[1], "selftest-tty"))
        return selftest_tty();
    if (argc == 2 && !strcmp(argv[1], "selftest-syscalls"))
        return selftest_syscalls();
    if (argc == 4 && !strcmp(argv[1], "selftest-peak"))
        return selftest_peak(argv[2], argv[3]);

    struct setup s;
    memset(&s, 0, sizeof s);
    s.so = sbx_defaults();
    s.network = cfg_bool(&a->cfg, CFG_SANDBOX_NETWORK);
    int do_verify = 0, write = 0;
    const char *action = NULL;
    char **rest = NULL;
    int nrest = 0;
    struct cli c;
    cli_init(&c, argc, argv);
    for (int o; (o = cli_next(&c, opts)) != CLI_END;) {
        unsigned long long n = 0;
        if (o == CLI_EXIT)
            return c.exit;
        if (o == CLI_POS) {
            if (!action) {
                action = c.arg;
                if (strcmp(action, "run") && strcmp(action, "check"))
                    return cli_usage_error("sandbox", "unknown action '%s' (run, check, --verify)",
                                           action);
                /* everything after the action (after "--" for run) is its argument */
                continue;
            }
            if (!rest) {
                rest = argv + c.i - 1;
                nrest = argc - (c.i - 1);
                /* with "--" already consumed, the rest is all positional */
                if (!c.no_more && !strcmp(action, "run"))
                    return cli_usage_error("sandbox", "run: put the command after -- "
                                                      "(lode sandbox run -- CMD...)");
                break;
            }
            continue;
        }
        switch (o) {
        case O_VERIFY: do_verify = 1; break;
        case O_WS: s.ws = c.arg; break;
        case O_NET: s.network = 1; break;
        case O_APPROVE: s.approved = 1; break;
        case O_WRITE: write = 1; break;
        case O_TIMEOUT: {
            char *end;
            double t = strtod(c.arg, &end);
            if (end == c.arg || *end || !(t > 0) || t > 86400)
                return cli_usage_error(
                    "sandbox", "--timeout: expected seconds in (0, 86400], got '%s'", c.arg);
            s.so.timeout_s = t;
            break;
        }
        case O_FSIZE:
        case O_NPROC:
        case O_CPU:
        case O_OCAP:
            if (parse_num(c.arg, &n, opts[o].name) != EXIT_OK)
                return EXIT_USAGE;
            if (o == O_FSIZE)
                s.so.fsize = n;
            else if (o == O_NPROC) {
                s.so.nproc = (unsigned long)n;
                s.so.nproc_explicit = 1;
            } else if (o == O_CPU)
                s.so.cpu_s = (unsigned long)n;
            else if (n < 64 || n > (1ull << 30))
                return cli_usage_error("sandbox", "--output-cap: 64 bytes to 1 GiB");
            else
                s.so.output_cap = (size_t)n;
            break;
        case O_RO:
        case O_HIDDEN:
            if ((o == O_RO ? s.nro : s.nhidden) >= 16)
                return cli_usage_error("sandbox", "--%s: at most 16", opts[o].name);
            if (o == O_RO)
                s.ro[s.nro++] = c.arg;
            else
                s.hidden[s.nhidden++] = c.arg;
            break;
        }
    }
    if (do_verify) {
        if (action)
            return cli_usage_error("sandbox", "--verify takes no action");
        return verify(a);
    }
    if (!action) {
        struct sbx_caps caps;
        sbx_probe(&caps, getenv("LODE_SANDBOX_DISABLE"));
        printf("%s\n", sbx_level_name(sbx_level(&caps)));
        printf("process limit: %s\n",
               sbx_nproc_mechanism(&caps)
                   ? sbx_nproc_mechanism(&caps)
                   : "none (root ignores RLIMIT_NPROC; --nproc N is refused)");
        if (caps.why[0])
            printf("missing: %s\n", caps.why);
        return EXIT_OK;
    }
    if (!strcmp(action, "check"))
        return do_check(a, &s, write, nrest, rest);
    return do_run(a, &s, nrest, rest);
}

const struct command cmd_sandbox = {
    "sandbox",
    run,
    "the sandbox: level, self-test (--verify), run one command as run_shell would",
    "usage: lode sandbox [--verify]\n"
    "       lode sandbox run [--workspace DIR] [--network] [--timeout S] [--approve] -- CMD...\n"
    "       lode sandbox check [--workspace DIR] [--write] PATH\n"
    "\n"
    "With no action, prints the sandbox level this kernel allows (L0-L3).\n"
    "--verify runs a self-test of every boundary in a scratch workspace and prints a\n"
    "table (pass / FAIL / unavailable); it exits 1 when a boundary fails.\n"
    "run: the arguments after -- are joined with spaces and run by /bin/sh -c inside the\n"
    "sandbox, exactly as the run_shell tool does; its output goes to stdout, a status line\n"
    "to stderr, and lode exits with the command's status (128+N for signal N). A refusal\n"
    "(the kernel cannot enforce the policy) exits 1 and says what is missing.\n"
    "check: the path policy's decision for PATH (exit 1 with the reason when refused).\n",
    opts,
};
