/*
 * sandbox.c - run one shell command confined (see sandbox.h for the order of
 * steps, the levels and the fail-closed rules).
 *
 * Everything between fork() and execve() runs in the child and only uses
 * async-signal-safe calls plus our own formatting into stack buffers; a
 * failing step writes one line to a close-on-exec pipe and exits, so the
 * parent can tell "set-up failed: <step>: <reason>" from the command's own
 * exit status (the pipe is empty when execve succeeded).
 */
#include "tools/sandbox.h"

#include "common/err.h"
#include "common/fs.h"
#include "common/text.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- Landlock ABI, declared here so older headers build (kernel uapi) ---- */

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net; /* ABI 4 */
    uint64_t scoped;             /* ABI 6 */
};
struct ll_path_beneath {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_ABI1 ((1ULL << 13) - 1) /* EXECUTE .. MAKE_SYM */
#define LL_FS_REFER (1ULL << 13)      /* ABI 2 */
#define LL_FS_TRUNCATE (1ULL << 14)   /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15)  /* ABI 5 */
#define LL_NET_BIND_TCP (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#if defined(__x86_64__)
#define SBX_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SBX_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* ---- levels ---- */

int sbx_level(const struct sbx_caps *c)
{
    if (c->userns && c->mountns && c->pidns && c->netns && c->landlock_abi > 0 && c->seccomp)
        return 3;
    if (c->landlock_abi > 0 && c->seccomp)
        return 2;
    if (c->seccomp)
        return 1;
    return 0;
}

const char *sbx_level_name(int level)
{
    switch (level) {
    case 3: return "L3: namespaces (user, mount, pid, net) + Landlock + seccomp";
    case 2: return "L2: Landlock + seccomp (protected paths in the workspace not enforced)";
    case 1: return "L1: seccomp only (no filesystem confinement)";
    default: return "L0: no confinement available";
    }
}

const char *sbx_nproc_mechanism(const struct sbx_caps *c)
{
    if (c->pids_cgroup == 1)
        return "pids cgroup (v1)";
    if (c->pids_cgroup == 2)
        return "pids cgroup (v2)";
    if (geteuid() != 0 && sbx_level(c) >= 3)
        return "RLIMIT_NPROC (per user namespace)";
    return NULL;
}

/* ---- small child-safe helpers ---- */

/* Writes "step: message[: strerror]" to fd and exits the child. */
static void die(int fd, int with_errno, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void die(int fd, int with_errno, const char *fmt, ...)
{
    int e = errno;
    char m[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof m)
        n = sizeof m - 1;
    if (with_errno)
        n += snprintf(m + n, sizeof m - (size_t)n, ": %s", strerror(e));
    if ((size_t)n >= sizeof m)
        n = sizeof m - 1;
    if (write(fd, m, (size_t)n) < 0) {
    }
    _exit(126);
}

static int write_file(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, s, strlen(s));
    close(fd);
    return n == (ssize_t)strlen(s) ? 0 : -1;
}

static int map_ids(uid_t uid, gid_t gid)
{
    char m[64];
    if (write_file("/proc/self/setgroups", "deny") < 0 && errno != ENOENT)
        return -1;
    snprintf(m, sizeof m, "%u %u 1\n", (unsigned)uid, (unsigned)gid);
    if (write_file("/proc/self/uid_map", m) < 0)
        return -1;
    snprintf(m, sizeof m, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
    return write_file("/proc/self/gid_map", m);
}

static void close_from(int lowfd, int have_close_range)
{
    if (have_close_range && syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0)
        return;
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                   ? (long)rl.rlim_cur
                   : 65536;
    if (max > 65536)
        max = 65536;
    for (long fd = lowfd; fd < max; fd++)
        close((int)fd);
}

/* ---- seccomp ---- */

#ifdef SBX_AUDIT_ARCH
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + (i) * sizeof(uint64_t))
#define RET_ERRNO(e) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((e)&SECCOMP_RET_DATA))
#define RET_ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

/* Always denied: debugging other processes, kernel attack surface, and
 * everything that could undo the sandbox (mounts, namespaces, keys). */
static const int deny_always[] = {
    __NR_ptrace,
    __NR_process_vm_readv,
    __NR_process_vm_writev,
    __NR_bpf,
    __NR_perf_event_open,
    __NR_userfaultfd,
    __NR_keyctl,
    __NR_add_key,
    __NR_request_key,
    __NR_mount,
    __NR_umount2,
    __NR_pivot_root,
    __NR_unshare,
    __NR_setns,
    __NR_init_module,
    __NR_finit_module,
    __NR_delete_module,
    __NR_kexec_load,
    __NR_reboot,
    __NR_swapon,
    __NR_swapoff,
    __NR_acct,
#ifdef __NR_kexec_file_load
    __NR_kexec_file_load,
#endif
#ifdef __NR_io_uring_setup
    __NR_io_uring_setup,
    __NR_io_uring_enter,
    __NR_io_uring_register,
#endif
#ifdef __NR_open_tree
    __NR_open_tree,
    __NR_move_mount,
    __NR_fsopen,
    __NR_fsconfig,
    __NR_fsmount,
    __NR_fspick,
#endif
#ifdef __NR_mount_setattr
    __NR_mount_setattr,
#endif
#ifdef __NR_iopl
    __NR_iopl,
    __NR_ioperm,
#endif
};

/* Without network: no sockets of any family (a pathname unix socket such as
 * docker.sock is a way out too); socketpair(AF_UNIX) stays for pipelines. */
static const int deny_net[] = { __NR_socket, __NR_connect, __NR_bind,
                                __NR_listen, __NR_accept,  __NR_accept4 };

#define NS_FLAGS                                                                                   \
    (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC |     \
     CLONE_NEWCGROUP)

/* Builds the filter into f (cap entries); returns the count. */
static int build_filter(struct sock_filter *f, int cap, int network)
{
    int n = 0;
#define EMIT(x) (n < cap ? (void)(f[n++] = (struct sock_filter)x) : (void)0)
    EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
    EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SBX_AUDIT_ARCH, 1, 0));
    EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
    EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
#ifdef __x86_64__
    /* x32 system calls share the architecture value: refuse them */
    EMIT(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1));
    EMIT(RET_ERRNO(EPERM));
#endif
    for (size_t i = 0; i < sizeof deny_always / sizeof deny_always[0]; i++) {
        EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)deny_always[i], 0, 1));
        EMIT(RET_ERRNO(EPERM));
    }
    if (!network)
        for (size_t i = 0; i < sizeof deny_net / sizeof deny_net[0]; i++) {
            EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)deny_net[i], 0, 1));
            EMIT(RET_ERRNO(EPERM));
        }
#ifdef __NR_clone3
    /* clone3's flags are behind a pointer: make libc fall back to clone */
    EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1));
    EMIT(RET_ERRNO(ENOSYS));
#endif
    /* ioctl: no terminal input injection (CVE-2017-5226) */
    EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 5));
    EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(1)));
    EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 2, 0));
    EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 1, 0));
    EMIT(RET_ALLOW);
    EMIT(RET_ERRNO(EPERM));
    /* clone: no new namespaces */
    EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4));
    EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(0)));
    EMIT(BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NS_FLAGS, 1, 0));
    EMIT(RET_ALLOW);
    EMIT(RET_ERRNO(EPERM));
    if (!network) {
        EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socketpair, 0, 4));
        EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(0)));
        EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 0, 1));
        EMIT(RET_ALLOW);
        EMIT(RET_ERRNO(EPERM));
    }
    EMIT(RET_ALLOW);
#undef EMIT
    return n <= cap ? n : -1;
}

static int install_filter(int network)
{
    struct sock_filter f[128];
    int n = build_filter(f, 128, network);
    if (n < 0) {
        errno = E2BIG;
        return -1;
    }
    struct sock_fprog prog = { (unsigned short)n, f };
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}
#else
static int install_filter(int network)
{
    errno = ENOSYS;
    return -1;
}
#endif

/* ---- Landlock ---- */

static int ll_add(int rfd, const char *path, uint64_t access)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct ll_path_beneath pb = { access, fd };
    long r = syscall(SYS_landlock_add_rule, rfd, LL_RULE_PATH_BENEATH, &pb, 0);
    int e = errno;
    close(fd);
    errno = e;
    return r < 0 ? -1 : 0;
}

/* Read + execute everywhere, everything in the writable roots, read/write
 * /dev/null; best effort over the rights this kernel's ABI knows. */
static void apply_landlock(int errfd, int abi, struct pol *pol, int network)
{
    uint64_t fs = LL_FS_ABI1;
    if (abi >= 2)
        fs |= LL_FS_REFER;
    if (abi >= 3)
        fs |= LL_FS_TRUNCATE;
    if (abi >= 5)
        fs |= LL_FS_IOCTL_DEV;
    struct ll_ruleset_attr attr = { fs, 0, 0 };
    size_t sz = sizeof attr.handled_access_fs;
    if (abi >= 4) {
        sz += sizeof attr.handled_access_net;
        if (!network)
            attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
    }
    if (abi >= 6) {
        sz += sizeof attr.scoped;
        attr.scoped = LL_SCOPE_SIGNAL | (network ? 0 : LL_SCOPE_ABSTRACT_UNIX);
    }
    int rfd = (int)syscall(SYS_landlock_create_ruleset, &attr, sz, 0);
    if (rfd < 0)
        die(errfd, 1, "sandbox: landlock_create_ruleset (ABI %d)", abi);
    if (ll_add(rfd, "/", LL_FS_EXECUTE | LL_FS_READ_FILE | LL_FS_READ_DIR) < 0)
        die(errfd, 1, "sandbox: landlock rule for /");
    for (int i = 0; pol_root(pol, i); i++)
        if (ll_add(rfd, pol_root(pol, i), fs) < 0)
            die(errfd, 1, "sandbox: landlock rule for %s", pol_root(pol, i));
    uint64_t devnull =
        LL_FS_READ_FILE | LL_FS_WRITE_FILE | (fs & (LL_FS_TRUNCATE | LL_FS_IOCTL_DEV));
    if (ll_add(rfd, "/dev/null", devnull) < 0)
        die(errfd, 1, "sandbox: landlock rule for /dev/null");
    if (syscall(SYS_landlock_restrict_self, rfd, 0) < 0)
        die(errfd, 1, "sandbox: landlock_restrict_self");
    close(rfd);
}

/* ---- mounts (L3, inside the new user + mount namespace) ---- */

static unsigned long locked_flags(const char *path)
{
    struct statvfs sv;
    unsigned long f = 0;
    if (statvfs(path, &sv) < 0)
        return 0;
    if (sv.f_flag & ST_NOSUID)
        f |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV)
        f |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC)
        f |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME)
        f |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME)
        f |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME)
        f |= MS_RELATIME;
    return f;
}

/* The path must name itself: no symlink anywhere in it (checked on an
 * O_PATH descriptor via /proc), so the mount lands where we mean. */
static int path_is_exact(const char *path)
{
    int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char link[64], real[POL_PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, real, sizeof real - 1);
    close(fd);
    if (n <= 0)
        return -1;
    real[n] = 0;
    return strcmp(real, path) ? -1 : 0;
}

static void bind_ro(int errfd, const char *src, const char *path)
{
    if (mount(src, path, NULL, MS_BIND, NULL) < 0)
        die(errfd, 1, "sandbox: bind-mount %s", path);
    if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags(path), NULL) < 0)
        die(errfd, 1, "sandbox: read-only remount of %s", path);
}

/* The ancestor of protected path p at `depth` components below its writable
 * root, into out; 0 when there is one strictly between the root and p. */
static int ancestor_at(struct pol *pol, const char *p, int depth, char *out, size_t cap)
{
    const char *root = NULL;
    for (int k = 0; pol_root(pol, k); k++) {
        size_t n = strlen(pol_root(pol, k));
        if (!strncmp(p, pol_root(pol, k), n) && p[n] == '/')
            root = pol_root(pol, k);
    }
    if (!root)
        return -1;
    const char *s = p + strlen(root);
    for (int d = 0; d < depth; d++) {
        s = strchr(s + 1, '/');
        if (!s)
            return -1; /* p itself, or shallower */
    }
    if ((size_t)(s - p) >= cap)
        return -1;
    memcpy(out, p, (size_t)(s - p));
    out[s - p] = 0;
    return 0;
}

static int protected_usable(struct pol *pol, int i)
{
    struct stat st;
    return lstat(pol_protected(pol, i), &st) == 0 && !S_ISLNK(st.st_mode) &&
           path_is_exact(pol_protected(pol, i)) == 0;
}

/* Pins every directory between a writable root and a protected path by
 * binding it onto itself: a mount point cannot be renamed or removed, so
 * `mv .git .git-old && mkdir -p .git/hooks` cannot swap in a fresh, writable
 * .git under the protected one. Shallow first, each directory once; no
 * allocation (we may be the child of a threaded process). */
static void pin_ancestors(int errfd, struct pol *pol)
{
    char a[POL_PATH_MAX], b[POL_PATH_MAX];
    for (int depth = 1; depth < 64; depth++) {
        int any = 0;
        for (int i = 0; pol_protected(pol, i); i++) {
            if (!protected_usable(pol, i) ||
                ancestor_at(pol, pol_protected(pol, i), depth, a, sizeof a) < 0)
                continue;
            any = 1;
            int seen = 0;
            for (int j = 0; j < i && !seen; j++)
                seen = protected_usable(pol, j) &&
                       ancestor_at(pol, pol_protected(pol, j), depth, b, sizeof b) == 0 &&
                       !strcmp(a, b);
            if (!seen && mount(a, a, NULL, MS_BIND | MS_REC, NULL) < 0)
                die(errfd, 1, "sandbox: pinning %s", a);
        }
        if (!any)
            break;
    }
}

static void setup_mounts(int errfd, struct pol *pol)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        die(errfd, 1, "sandbox: making mounts private");
    pin_ancestors(errfd, pol);
    for (int i = 0; pol_protected(pol, i); i++) {
        const char *p = pol_protected(pol, i);
        struct stat st;
        if (lstat(p, &st) < 0)
            continue; /* missing: see README (in-process tools refuse it) */
        if (S_ISLNK(st.st_mode))
            die(errfd, 0, "sandbox: protected path %s is a symlink; refusing to run", p);
        if (path_is_exact(p) < 0)
            die(errfd, 0, "sandbox: protected path %s goes through a symlink; refusing to run", p);
        bind_ro(errfd, p, p);
    }
    for (int i = 0; pol_hidden(pol, i); i++) {
        const char *p = pol_hidden(pol, i);
        struct stat st;
        if (lstat(p, &st) < 0)
            continue;
        if (S_ISLNK(st.st_mode) || path_is_exact(p) < 0)
            die(errfd, 0, "sandbox: hidden path %s is or goes through a symlink; refusing", p);
        if (S_ISDIR(st.st_mode)) {
            if (mount("none", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "size=4k,mode=000") < 0)
                die(errfd, 1, "sandbox: hiding %s", p);
        } else
            bind_ro(errfd, "/dev/null", p);
    }
}

/* Drops every capability for good (the user namespace gave us all of them in
 * it; root outside keeps them otherwise). Best effort outside a namespace. */
static int drop_caps(void)
{
    for (int c = 0; c < 64; c++)
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno == EINVAL)
            break;
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    int bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
               SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED;
    int r = prctl(PR_SET_SECUREBITS, bits, 0, 0, 0);
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    if (syscall(SYS_capset, &h, d) < 0)
        r = -1;
    return r;
}

/* ---- the pids cgroup (bounds the process count, root included) ----
 *
 * RLIMIT_NPROC does not bind the global root user (the kernel exempts
 * INIT_USER, also inside a user namespace whose 0 maps to 0), so a fork bomb
 * run by root would reach thousands of processes before the timeout. A pids
 * cgroup bounds every task (processes and threads) in it whoever runs it.
 * Each run gets a child "lode-sbx-<lode pid>-<n>" of the cgroup lode runs in
 * (cgroup v1's pids hierarchy, or a v2 cgroup whose subtree has the pids
 * controller); the child joins it before anything else, and the run removes
 * it after killing what is left. Leftovers of crashed runs (dead owner pid)
 * are removed by the probe. */

#define CG_PREFIX "lode-sbx-"

/* A small text file (procfs, cgroupfs) as a malloc'd string, or NULL. */
static char *read_text(const char *path, size_t max)
{
    struct buf b = { 0 };
    if (fs_read_file(path, max, &b) < 0) {
        buf_free(&b);
        return NULL;
    }
    return b.p ? b.p : calloc(1, 1);
}

/* The cgroup path of this process in the hierarchy named by `key` ("pids"
 * for v1, "" for the v2 line "0::"), from /proc/self/cgroup, into out. */
static int cg_self_path(const char *key, char *out, size_t cap)
{
    char *text = read_text("/proc/self/cgroup", 1 << 16);
    if (!text)
        return -1;
    int rc = -1;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2) {
            *c2 = 0;
            const char *ctl = c1 + 1;
            int match = !*key ? !strcmp(line, "0") && !*ctl : 0;
            for (const char *t = ctl; *key && *t;) {
                size_t n = strcspn(t, ",");
                if (n == strlen(key) && !strncmp(t, key, n))
                    match = 1;
                t += n + (t[n] == ',');
            }
            if (match && strlen(c2 + 1) < cap) {
                snprintf(out, cap, "%s", c2 + 1);
                rc = 0;
                break;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return rc;
}

/* The mount point (and mount root) of the cgroup hierarchy: fstype "cgroup2"
 * when key is "", else "cgroup" with `key` among the super options. */
static int cg_mount(const char *key, char *mnt, size_t mcap, char *root, size_t rcap)
{
    char *text = read_text("/proc/self/mountinfo", 1 << 20);
    if (!text)
        return -1;
    int rc = -1;
    for (char *line = text; line && *line && rc < 0;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        /* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
        char *f[6] = { 0 };
        char *save = NULL, *tok = strtok_r(line, " ", &save);
        for (int i = 0; tok && i < 6; i++, tok = i < 6 ? strtok_r(NULL, " ", &save) : tok)
            f[i] = tok;
        while (tok && strcmp(tok, "-"))
            tok = strtok_r(NULL, " ", &save);
        char *fstype = tok ? strtok_r(NULL, " ", &save) : NULL;
        char *src = fstype ? strtok_r(NULL, " ", &save) : NULL;
        char *super = src ? strtok_r(NULL, " ", &save) : NULL;
        int match = 0;
        if (fstype && f[4] && !strchr(f[4], '\\')) {
            if (!*key)
                match = !strcmp(fstype, "cgroup2");
            else if (!strcmp(fstype, "cgroup") && super)
                for (const char *t = super; *t;) {
                    size_t n = strcspn(t, ",");
                    if (n == strlen(key) && !strncmp(t, key, n))
                        match = 1;
                    t += n + (t[n] == ',');
                }
        }
        if (match && strlen(f[4]) < mcap && strlen(f[3]) < rcap) {
            snprintf(mnt, mcap, "%s", f[4]);
            snprintf(root, rcap, "%s", f[3]);
            rc = 0;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return rc;
}

/* mount point + (our cgroup path relative to the mount's root) */
static int cg_base(const char *key, char *out, size_t cap)
{
    char mnt[POL_PATH_MAX], root[POL_PATH_MAX], self[POL_PATH_MAX];
    if (cg_mount(key, mnt, sizeof mnt, root, sizeof root) < 0 ||
        cg_self_path(key, self, sizeof self) < 0)
        return -1;
    const char *rel = self;
    size_t rn = strlen(root);
    if (strcmp(root, "/") && !strncmp(self, root, rn) && (self[rn] == '/' || !self[rn]))
        rel = self + rn;
    int n = snprintf(out, cap, "%s%s", mnt, strcmp(rel, "/") ? rel : "");
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

static int cg_has_word(const char *file, const char *word)
{
    char *text = read_text(file, 4096);
    if (!text)
        return 0;
    int found = 0;
    for (char *save = NULL, *t = strtok_r(text, " \n", &save); t && !found;
         t = strtok_r(NULL, " \n", &save))
        found = !strcmp(t, word);
    free(text);
    return found;
}

/* SIGKILLs every process in the cgroup once (cgroup.kill where the kernel has
 * it): also those that left the process group with setsid(). */
static void cg_kill_all(const char *dir)
{
    char p[POL_PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/cgroup.kill", dir);
    if (write_file(p, "1") == 0)
        return;
    snprintf(p, sizeof p, "%s/cgroup.procs", dir);
    char *text = read_text(p, 1 << 20);
    for (char *save = NULL, *t = text ? strtok_r(text, "\n", &save) : NULL; t;
         t = strtok_r(NULL, "\n", &save))
        if (atoi(t) > 0)
            kill((pid_t)atoi(t), SIGKILL);
    free(text);
}

/* Kills every task in the cgroup and removes it; waits up to ~2 s for the
 * tasks to go. 0 when it is gone. */
static int cg_destroy(const char *dir)
{
    for (int tries = 0; tries < 200; tries++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY)
            return -1;
        cg_kill_all(dir); /* again each time: a fork may have raced the last pass */
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* Removes the cgroups of lode processes that are gone (a crash or SIGKILL
 * skipped their clean-up). */
static void cg_sweep(const char *base)
{
    DIR *d = opendir(base);
    if (!d)
        return;
    char p[POL_PATH_MAX + 300];
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, CG_PREFIX, strlen(CG_PREFIX)))
            continue;
        long owner = strtol(e->d_name + strlen(CG_PREFIX), NULL, 10);
        if (owner <= 0 || (kill((pid_t)owner, 0) < 0 && errno == ESRCH)) {
            snprintf(p, sizeof p, "%s/%s", base, e->d_name);
            cg_destroy(p);
        }
    }
    closedir(d);
}

/* Finds a pids cgroup we can create children in: v1's pids hierarchy, else
 * v2 (enabling pids in our cgroup's subtree if it is not yet, which only
 * works where the cgroup has no processes of its own, or is the root). Tries
 * a child for real. Returns 1 (v1), 2 (v2) or 0. */
static int cg_probe(char *base, size_t cap)
{
    int ver = 0;
    char p[POL_PATH_MAX + 64];
    if (cg_base("pids", base, cap) == 0) {
        ver = 1;
    } else if (cg_base("", base, cap) == 0) {
        snprintf(p, sizeof p, "%s/cgroup.controllers", base);
        if (cg_has_word(p, "pids")) {
            snprintf(p, sizeof p, "%s/cgroup.subtree_control", base);
            if (cg_has_word(p, "pids") || write_file(p, "+pids") == 0)
                ver = 2;
        }
    }
    if (!ver)
        return 0;
    cg_sweep(base);
    snprintf(p, sizeof p, "%s/" CG_PREFIX "%ld-probe", base, (long)getpid());
    if (mkdir(p, 0700) < 0 && errno != EEXIST)
        return 0;
    char f[POL_PATH_MAX + 96];
    snprintf(f, sizeof f, "%s/pids.max", p);
    int ok = write_file(f, "max") == 0;
    snprintf(f, sizeof f, "%s/cgroup.procs", p);
    ok = ok && access(f, W_OK) == 0;
    rmdir(p);
    return ok ? ver : 0;
}

/* Creates this run's cgroup with pids.max = nproc; dir receives its path and
 * *procs_fd an open cgroup.procs for the child to write "0" to. */
static int cg_create(const char *base, unsigned long nproc, char *dir, size_t cap, int *procs_fd)
{
    static unsigned seq;
    unsigned n = __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED);
    int w = snprintf(dir, cap, "%s/" CG_PREFIX "%ld-%u", base, (long)getpid(), n);
    if (w < 0 || (size_t)w >= cap)
        return err_set(ERR_IO, "sandbox: cgroup path too long");
    if (mkdir(dir, 0700) < 0)
        return err_errno("sandbox: creating the pids cgroup %s", dir);
    char p[POL_PATH_MAX + 64], v[32];
    snprintf(p, sizeof p, "%s/pids.max", dir);
    snprintf(v, sizeof v, "%lu", nproc);
    if (write_file(p, v) < 0) {
        int rc = err_errno("sandbox: writing %s", p);
        rmdir(dir);
        return rc;
    }
    snprintf(p, sizeof p, "%s/cgroup.procs", dir);
    *procs_fd = open(p, O_WRONLY | O_CLOEXEC);
    if (*procs_fd < 0) {
        int rc = err_errno("sandbox: opening %s", p);
        rmdir(dir);
        return rc;
    }
    return 0;
}

static long cg_read_num(const char *dir, const char *name)
{
    char p[POL_PATH_MAX + 64], b[32];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    if (n <= 0)
        return -1;
    b[n] = 0;
    return strtol(b, NULL, 10);
}

/* ---- probe ---- */

enum { P_USERNS = 1, P_MOUNTNS = 2, P_NETNS = 4, P_PIDNS = 8, P_SECCOMP = 16 };

int sbx_probe(struct sbx_caps *c, const char *disable)
{
    memset(c, 0, sizeof *c);
    c->close_range = syscall(SYS_close_range, ~0U - 1, ~0U, 0) == 0;
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    c->landlock_abi = abi > 0 ? (int)abi : 0;

    /* namespaces and seccomp are tried in a child we throw away */
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) == 0) {
        uid_t uid = getuid();
        gid_t gid = getgid();
        pid_t pid = fork();
        if (pid == 0) {
            close(pfd[0]);
            unsigned char got = 0;
            if (unshare(CLONE_NEWUSER) == 0 && map_ids(uid, gid) == 0) {
                got |= P_USERNS;
                if (unshare(CLONE_NEWNS) == 0 &&
                    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
                    got |= P_MOUNTNS;
                if (unshare(CLONE_NEWNET) == 0)
                    got |= P_NETNS;
                if (unshare(CLONE_NEWPID) == 0)
                    got |= P_PIDNS;
            }
            if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && install_filter(0) == 0)
                got |= P_SECCOMP;
            if (write(pfd[1], &got, 1) < 0) {
            }
            _exit(0);
        }
        close(pfd[1]);
        unsigned char got = 0;
        if (pid > 0) {
            if (read(pfd[0], &got, 1) != 1)
                got = 0;
            int st;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
            }
        }
        close(pfd[0]);
        c->userns = !!(got & P_USERNS);
        c->mountns = !!(got & P_MOUNTNS);
        c->netns = !!(got & P_NETNS);
        c->pidns = !!(got & P_PIDNS);
        c->seccomp = !!(got & P_SECCOMP);
    }

    c->pids_cgroup = cg_probe(c->pids_base, sizeof c->pids_base);
    if (!c->pids_cgroup)
        c->pids_base[0] = 0;

    /* the test hook: pretend mechanisms are missing */
    int hook_ns = 0, hook_ll = 0, hook_sc = 0, hook_pids = 0;
    if (disable && *disable) {
        int all = strstr(disable, "all") != NULL;
        hook_ns = all || strstr(disable, "userns");
        hook_ll = all || strstr(disable, "landlock");
        hook_sc = all || strstr(disable, "seccomp");
        hook_pids = all || strstr(disable, "pids");
        if (hook_pids) {
            c->pids_cgroup = 0;
            c->pids_base[0] = 0;
        }
        if (hook_ns)
            c->userns = c->mountns = c->netns = c->pidns = 0;
        if (hook_ll)
            c->landlock_abi = 0;
        if (hook_sc)
            c->seccomp = 0;
    }

    struct buf w = { 0 };
    if (hook_ns)
        buf_puts(&w, "user namespaces disabled by LODE_SANDBOX_DISABLE; ");
    else if (!c->userns)
        buf_puts(&w, "user namespaces unavailable (kernel.unprivileged_userns_clone, "
                     "user.max_user_namespaces or AppArmor); ");
    else if (!c->mountns || !c->netns || !c->pidns)
        buf_printf(&w, "namespaces partly unavailable (%s%s%s); ", c->mountns ? "" : "mount ",
                   c->netns ? "" : "net ", c->pidns ? "" : "pid");
    if (hook_ll)
        buf_puts(&w, "Landlock disabled by LODE_SANDBOX_DISABLE; ");
    else if (!c->landlock_abi)
        buf_puts(&w, "Landlock unavailable (kernel < 5.13 or not enabled in lsm=); ");
    if (hook_sc)
        buf_puts(&w, "seccomp disabled by LODE_SANDBOX_DISABLE; ");
    else if (!c->seccomp)
        buf_puts(&w, "seccomp filters unavailable; ");
    if (hook_pids)
        buf_puts(&w, "pids cgroup disabled by LODE_SANDBOX_DISABLE; ");
    else if (!c->pids_cgroup)
        buf_puts(&w, "no pids cgroup we can create children in (the process limit falls back to "
                     "RLIMIT_NPROC, which root ignores); ");
    snprintf(c->why, sizeof c->why, "%s", w.p ? w.p : "");
    size_t n = strlen(c->why);
    if (n >= 2)
        c->why[n - 2] = 0;
    buf_free(&w);
    return 0;
}

/* ---- running ---- */

struct sbx_opts sbx_defaults(void)
{
    struct sbx_opts o;
    memset(&o, 0, sizeof o);
    o.timeout_s = 120;
    o.output_cap = 64 * 1024;
    o.cpu_s = 600;
    o.fsize = 1ULL << 30;
    o.nofile = 1024;
    o.nproc = 1024;
    return o;
}

void sbx_result_free(struct sbx_result *r)
{
    if (r)
        buf_free(&r->out);
}

static void set_limit(int errfd, int res, unsigned long long v, const char *name)
{
    struct rlimit rl = { (rlim_t)v, (rlim_t)v };
    if (setrlimit(res, &rl) < 0)
        die(errfd, 1, "sandbox: setrlimit(%s)", name);
}

/* The child: everything up to execve. Never returns. */
static void child(const struct sbx_opts *o, const char *command, char **envp, int outfd, int errfd,
                  int level, const char *cwd, uid_t uid, gid_t gid, int cg_procs)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    /* join the run's pids cgroup before anything can fork ("0": ourselves;
     * still root outside any namespace, so allowed) */
    if (cg_procs >= 0 && write(cg_procs, "0", 1) != 1)
        die(errfd, 1, "sandbox: joining the pids cgroup");
    if (setsid() < 0)
        die(errfd, 1, "sandbox: setsid");
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0 || dup2(nullfd, 0) < 0 || dup2(outfd, 1) < 0 || dup2(outfd, 2) < 0)
        die(errfd, 1, "sandbox: standard descriptors");
    /* keep only 0-2 and the error pipe (moved to 3, close-on-exec) */
    if (errfd != 3) {
        if (dup3(errfd, 3, O_CLOEXEC) < 0)
            die(errfd, 1, "sandbox: error pipe");
        errfd = 3;
    }
    close_from(4, o->caps->close_range);

    set_limit(errfd, RLIMIT_CORE, 0, "CORE");
    if (o->cpu_s)
        set_limit(errfd, RLIMIT_CPU, o->cpu_s, "CPU");
    if (o->fsize)
        set_limit(errfd, RLIMIT_FSIZE, o->fsize, "FSIZE");
    if (o->nofile)
        set_limit(errfd, RLIMIT_NOFILE, o->nofile, "NOFILE");
    /* RLIMIT_NPROC counts per user namespace (Linux >= 5.14), so inside our
     * own namespace it bounds this command alone; outside one it would count
     * every process of the uid. The global root user is exempt everywhere
     * (copy_process skips the check for INIT_USER, and our namespace maps 0
     * to 0): for root only the pids cgroup bounds a fork bomb */
    if (o->nproc && level >= 3)
        set_limit(errfd, RLIMIT_NPROC, o->nproc, "NPROC");
    if (o->as)
        set_limit(errfd, RLIMIT_AS, o->as, "AS");

    if (level >= 3) {
        int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | (o->network ? 0 : CLONE_NEWNET);
        if (unshare(flags) < 0)
            die(errfd, 1, "sandbox: unshare(user, mount, pid%s)", o->network ? "" : ", net");
        if (map_ids(uid, gid) < 0)
            die(errfd, 1, "sandbox: writing the uid/gid map");
        setup_mounts(errfd, o->pol);
        /* the command becomes pid 1 of the new pid namespace: when it exits
         * the kernel kills everything it left behind */
        pid_t pid = fork();
        if (pid < 0)
            die(errfd, 1, "sandbox: fork into the pid namespace");
        if (pid > 0) {
            close(errfd);
            int dn = open("/dev/null", O_WRONLY);
            if (dn >= 0) {
                dup2(dn, 1);
                dup2(dn, 2);
                close(dn);
            }
            int st;
            while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                    _exit(126);
            if (WIFEXITED(st))
                _exit(WEXITSTATUS(st));
            signal(WTERMSIG(st), SIG_DFL);
            kill(getpid(), WTERMSIG(st));
            _exit(128 + WTERMSIG(st));
        }
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        /* a /proc of our own pid namespace hides lode and the rest of the
         * machine's processes; best effort (a container may mask /proc) */
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        if (drop_caps() < 0)
            die(errfd, 1, "sandbox: dropping capabilities");
    } else if (geteuid() == 0) {
        drop_caps(); /* root without namespaces: best effort, Landlock still binds root */
    }

    if (chdir(cwd) < 0)
        die(errfd, 1, "sandbox: chdir %s", cwd);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        die(errfd, 1, "sandbox: no_new_privs");
    if (o->caps->landlock_abi > 0)
        apply_landlock(errfd, o->caps->landlock_abi, o->pol, o->network);
    if (o->caps->seccomp && install_filter(o->network) < 0)
        die(errfd, 1, "sandbox: installing the seccomp filter");

    char *argv[] = { "sh", "-c", (char *)command, NULL };
    execve("/bin/sh", argv, envp);
    die(errfd, 1, "sandbox: execve /bin/sh");
}

/* Output kept as head + tail: the first half of the cap, then a ring with the
 * last half. */
struct capture {
    size_t cap, head_cap, tail_cap, total;
    struct buf head;
    char *tail;
    size_t tail_pos;
};

static void capture_add(struct capture *c, const char *p, size_t n)
{
    c->total += n;
    if (c->head.len < c->head_cap) {
        size_t k = c->head_cap - c->head.len;
        if (k > n)
            k = n;
        buf_append(&c->head, p, k);
        p += k;
        n -= k;
    }
    for (size_t i = 0; i < n && c->tail_cap; i++) {
        c->tail[c->tail_pos % c->tail_cap] = p[i];
        c->tail_pos++;
    }
}

static int capture_finish(struct capture *c, struct sbx_result *r)
{
    int rc = buf_append(&r->out, c->head.p ? c->head.p : "", c->head.len);
    size_t kept = c->tail_pos < c->tail_cap ? c->tail_pos : c->tail_cap;
    if (c->total > c->cap && rc == 0)
        rc = buf_printf(&r->out, "\n[... %zu bytes omitted ...]\n", c->total - c->head.len - kept);
    size_t start = c->tail_pos - kept;
    for (size_t i = 0; i < kept && rc == 0; i++)
        rc = buf_putc(&r->out, c->tail[(start + i) % c->tail_cap]);
    r->out_total = c->total;
    r->truncated = c->total > c->cap;
    return rc;
}

/* Creates missing mount points for protected directories that matter when
 * absent (.git/hooks in a repository, the workspace's .lode/). */
static int prepare_protected(struct pol *pol)
{
    char b[POL_PATH_MAX];
    const char *ws = pol_workspace(pol);
    if (fs_join(b, sizeof b, ws, ".git") == 0 && fs_is_dir(b) &&
        fs_join(b, sizeof b, ws, ".git/hooks") == 0 && !fs_exists(b) && mkdir(b, 0755) < 0 &&
        errno != EEXIST)
        return err_errno("sandbox: creating %s", b);
    if (fs_join(b, sizeof b, ws, ".lode") == 0 && !fs_exists(b) && mkdir(b, 0755) < 0 &&
        errno != EEXIST)
        return err_errno("sandbox: creating %s", b);
    /* lode's own directories when they live inside the workspace ($HOME is
     * the workspace): lode would create them anyway */
    enum fs_xdg kinds[] = { FS_XDG_CONFIG, FS_XDG_DATA, FS_XDG_CACHE };
    size_t wn = strlen(ws);
    for (int i = 0; i < 3; i++)
        if (fs_xdg_dir(kinds[i], b, sizeof b) == 0 && !strncmp(b, ws, wn) && b[wn] == '/' &&
            !fs_exists(b) && fs_mkdir_p(b, 0700) < 0)
            return err_prefix(ERR_IO, "sandbox: creating %s", b);
    return 0;
}

int sbx_run(const struct sbx_opts *o, const char *command, struct sbx_result *r)
{
    memset(r, 0, sizeof *r);
    if (!o || !o->pol || !o->caps || !command)
        return err_set(ERR_INVAL, "sandbox: missing policy, capabilities or command");
    const struct sbx_caps *c = o->caps;
    int level = sbx_level(c);
    r->level = level;

    /* fail closed: say what the kernel cannot enforce */
    if (!o->network && !c->netns && !c->seccomp)
        return err_set(ERR_DENIED,
                       "sandbox: refusing to run: the network must be off but neither a network "
                       "namespace nor seccomp is available (%s)",
                       c->why);
    if (pol_hidden(o->pol, 0) && level < 3)
        return err_set(ERR_DENIED,
                       "sandbox: refusing to run: hidden paths are configured but mount namespaces "
                       "are unavailable (%s)",
                       c->why);
    if (o->nproc && o->nproc_explicit && !sbx_nproc_mechanism(c) && geteuid() == 0)
        return err_set(ERR_DENIED,
                       "sandbox: refusing to run: a process limit of %lu is configured but root "
                       "ignores RLIMIT_NPROC and there is no pids cgroup (%s); run lode as a "
                       "non-root user, give it a writable pids cgroup, or set the limit to 0",
                       o->nproc, c->why);
    if (level < 3 && !o->approved)
        return err_set(ERR_DENIED,
                       "sandbox: refusing to run without approval at %s: %s; protected paths%s%s "
                       "are not enforced",
                       sbx_level_name(level), c->why, level < 2 ? ", workspace confinement" : "",
                       o->nproc && !sbx_nproc_mechanism(c) ? " and the process limit" : "");
    if (strlen(command) > 1u << 20)
        return err_set(ERR_INVAL, "sandbox: command longer than 1 MiB");

    char cwd[POL_PATH_MAX];
    snprintf(cwd, sizeof cwd, "%s", pol_workspace(o->pol));
    if (o->cwd && o->cwd[0]) {
        int dfd;
        int rc = pol_open_dir(o->pol, o->cwd, &dfd, cwd, sizeof cwd);
        if (rc < 0)
            return err_prefix(rc, "sandbox: working directory");
        close(dfd);
    }
    if (level >= 3) {
        int rc = prepare_protected(o->pol);
        if (rc < 0)
            return rc;
    }

    /* the environment is built here: the child of a threaded process must
     * not allocate */
    char tmpenv[POL_PATH_MAX + 8];
    snprintf(tmpenv, sizeof tmpenv, "TMPDIR=%s", pol_tmpdir(o->pol));
    size_t nenv = 0;
    while (environ && environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 3, sizeof *envp);
    if (!envp)
        return err_set(ERR_NOMEM, "sandbox: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "TMPDIR=", 7) && strncmp(environ[i], "LODE_SANDBOX=", 13))
            envp[k++] = environ[i];
    envp[k++] = tmpenv;
    envp[k++] = "LODE_SANDBOX=1";

    int outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
    if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
        int rc = err_errno("sandbox: pipe");
        free(envp);
        for (int i = 0; i < 2; i++) {
            if (outp[i] >= 0)
                close(outp[i]);
            if (errp[i] >= 0)
                close(errp[i]);
        }
        return rc;
    }
    /* the run's pids cgroup; when it cannot be made and nothing else bounds
     * the process count, refuse (fail closed) */
    char cgdir[POL_PATH_MAX + 64];
    int cg_procs = -1;
    cgdir[0] = 0;
    r->pids_peak = -1;
    if (o->nproc && c->pids_cgroup &&
        cg_create(c->pids_base, o->nproc, cgdir, sizeof cgdir, &cg_procs) < 0) {
        cgdir[0] = 0;
        if (o->nproc_explicit && (geteuid() == 0 || level < 3)) {
            int rc = err_prefix(ERR_DENIED, "sandbox: refusing to run without the process limit");
            free(envp);
            close(outp[0]), close(outp[1]), close(errp[0]), close(errp[1]);
            return rc;
        }
    }
    uid_t uid = getuid();
    gid_t gid = getgid();
    uint64_t t0 = time_ns();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int rc = err_errno("sandbox: fork");
        free(envp);
        close(outp[0]), close(outp[1]), close(errp[0]), close(errp[1]);
        if (cg_procs >= 0)
            close(cg_procs);
        if (cgdir[0])
            cg_destroy(cgdir);
        return rc;
    }
    if (pid == 0) {
        close(outp[0]);
        close(errp[0]);
        child(o, command, envp, outp[1], errp[1], level, cwd, uid, gid, cg_procs);
        _exit(126);
    }
    close(outp[1]);
    close(errp[1]);
    if (cg_procs >= 0)
        close(cg_procs);
    free(envp);

    /* set-up errors: the pipe closes empty on a successful execve */
    char emsg[640];
    size_t elen = 0;
    for (;;) {
        ssize_t n = read(errp[0], emsg + elen, sizeof emsg - 1 - elen);
        if (n > 0 && elen + (size_t)n < sizeof emsg - 1) {
            elen += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    close(errp[0]);
    emsg[elen] = 0;

    struct capture cap = { 0 };
    cap.cap = o->output_cap ? o->output_cap : 64 * 1024;
    cap.head_cap = cap.cap / 2;
    cap.tail_cap = cap.cap - cap.head_cap;
    cap.tail = malloc(cap.tail_cap ? cap.tail_cap : 1);
    int rc = cap.tail ? 0 : err_set(ERR_NOMEM, "sandbox: out of memory");

    uint64_t deadline = o->timeout_s > 0 ? t0 + (uint64_t)(o->timeout_s * 1e9) : 0;
    /* a pidfd wakes the poll when the child exits; without one, poll in 20 ms steps */
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int exited = 0, eof = 0, st = 0;
    uint64_t drain_until = 0;
    long sampled_peak = 0; /* pids.current sampled, for kernels without pids.peak */
    for (;;) {
        uint64_t now = time_ns();
        if (cgdir[0]) {
            long cur = cg_read_num(cgdir, "pids.current");
            if (cur > sampled_peak)
                sampled_peak = cur;
        }
        if (!r->timed_out && !exited && deadline && now >= deadline) {
            kill(-pid, SIGKILL);
            if (cgdir[0])
                cg_kill_all(cgdir);
            r->timed_out = 1;
        }
        if (!exited && waitpid(pid, &st, WNOHANG) == pid) {
            exited = 1;
            /* background jobs may still hold the pipe: end them, then drain */
            kill(-pid, SIGKILL);
            if (cgdir[0])
                cg_kill_all(cgdir);
            drain_until = now + 500000000ull;
        }
        if ((exited && eof) || (drain_until && now >= drain_until))
            break;
        struct pollfd pf[2];
        int np = 0, ms = pidfd >= 0 && !cgdir[0] ? 1000 : 20;
        if (!eof)
            pf[np++] = (struct pollfd){ outp[0], POLLIN, 0 };
        if (pidfd >= 0 && !exited)
            pf[np++] = (struct pollfd){ pidfd, POLLIN, 0 };
        uint64_t until = drain_until ? drain_until : deadline;
        if (until) {
            uint64_t left_ms = until > now ? (until - now) / 1000000 + 1 : 0;
            if (left_ms < (uint64_t)ms)
                ms = (int)left_ms;
        }
        int pr = poll(pf, (nfds_t)np, ms);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr > 0 && !eof && (pf[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            char b[16384];
            ssize_t n = read(outp[0], b, sizeof b);
            if (n > 0) {
                if (rc == 0)
                    capture_add(&cap, b, (size_t)n);
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN))
                eof = 1;
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    close(outp[0]);
    kill(-pid, SIGKILL);
    if (!exited)
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
    r->wall_s = (double)(time_ns() - t0) / 1e9;
    if (cgdir[0]) {
        long peak = cg_read_num(cgdir, "pids.peak"); /* recent kernels only */
        r->pids_peak = peak >= 0 ? peak : sampled_peak;
        cg_destroy(cgdir); /* a failure leaves it for the next start's sweep */
    }
    if (rc == 0)
        rc = capture_finish(&cap, r);
    buf_free(&cap.head);
    free(cap.tail);
    if (WIFEXITED(st)) {
        r->exited = 1;
        r->status = WEXITSTATUS(st);
    } else if (WIFSIGNALED(st)) {
        r->status = WTERMSIG(st);
    }
    if (elen)
        return err_set(ERR_IO, "%s", emsg);
    return rc;
}
