/*
 * sandbox.h - the sandbox for run_shell (sbx_), built on Linux primitives.
 *
 *     struct sbx_caps caps;
 *     sbx_probe(&caps, getenv("LODE_SANDBOX_DISABLE"));   // once, at start-up
 *     struct sbx_opts o = sbx_defaults();
 *     o.pol = policy; o.caps = &caps;
 *     struct sbx_result r = { 0 };
 *     if (sbx_run(&o, "make test", &r) < 0) ...          // refused or failed: err_msg()
 *     ... r.out.p, r.status ...
 *     sbx_result_free(&r);
 *
 * ---- What sbx_run does, in order (engineering-style.md §B1) ----
 *
 * Parent: a pipe for stdout+stderr, a close-on-exec pipe for set-up errors,
 * fork. Child: PR_SET_PDEATHSIG, setsid() (a new session: no controlling
 * terminal, so TIOCSTI cannot reach ours; its own process group), stdin
 * /dev/null, stdout and stderr the pipe, every other descriptor closed
 * (close_range, else a loop), rlimits (CPU, FSIZE, NOFILE, CORE=0, NPROC, AS
 * when set), then at L3 unshare(user, mount, pid, and net unless the network
 * is allowed) with a 1:1 uid/gid map, mounts made private, the directories
 * between a writable root and a protected path bound onto themselves (a
 * mount point cannot be renamed, so .git cannot be swapped for a fresh one),
 * every protected path inside a writable root bind-mounted read-only
 * (.git/hooks, .lode and lode's XDG dirs inside the workspace are created
 * empty when missing so they can be covered; a protected path that is a
 * symlink refuses the command), hidden paths covered by an empty
 * read-only tmpfs or /dev/null, and a fork so the command is pid 1 of its own
 * pid namespace (everything it starts dies with it). Then capabilities are
 * dropped, no_new_privs set, Landlock applied (read+execute everywhere;
 * write only in the workspace, the private temp dir and /dev/null; TCP
 * bind/connect denied when the network is off on ABI >= 4; abstract unix
 * sockets and signals scoped on ABI >= 6), a seccomp filter installed last
 * (architecture checked, x32 refused; ptrace, process_vm_*, bpf, perf,
 * userfaultfd, keys, mount family, unshare/setns and namespace clone flags,
 * modules, kexec, io_uring, TIOCSTI/TIOCLINUX denied; with the network off
 * every socket() except socketpair(AF_UNIX) denied), and execve("/bin/sh",
 * "-c", command). The parent reads the output keeping the first and last
 * output_cap/2 bytes, and kills the whole process group at the wall-clock
 * timeout (and when the shell exits, so background jobs do not linger).
 *
 * ---- Levels and failing closed ----
 *
 *   L3  user + mount + pid (+ net) namespaces, Landlock, seccomp
 *   L2  Landlock + seccomp: writes confined, network off via seccomp, but
 *       protected paths inside the workspace are not enforced
 *   L1  seccomp only: no filesystem confinement
 *   L0  nothing
 * sbx_run refuses (ERR_DENIED, naming what is missing) when the network must
 * be off and neither a network namespace nor seccomp is available, when
 * hidden paths are configured without a mount namespace, when a process
 * limit is asked for explicitly (nproc_explicit) and nothing can enforce it
 * (no pids cgroup, and lode runs as root, which RLIMIT_NPROC does not bind;
 * the default limit is then reported missing by the probe but not refused,
 * so root in a container without cgroup access can still work), and, unless
 * opts.approved (a per-command user approval owned by the app), below L3.
 *
 * ---- The process limit ----
 *
 * With a pids cgroup (sbx_caps.pids_cgroup) each run gets a child cgroup
 * "lode-sbx-<pid>-<n>" with pids.max = nproc; the child joins it first thing
 * after fork, and the run kills what is left in it and removes it. Without
 * one, RLIMIT_NPROC = nproc is set at L3 (counted per user namespace, so per
 * sandbox), which binds every uid but 0.
 */
#ifndef LODE_TOOLS_SANDBOX_H
#define LODE_TOOLS_SANDBOX_H

#include "common/buf.h"
#include "tools/policy.h"

#include <stddef.h>

struct sbx_caps {
    int userns;       /* unprivileged user namespace with a uid map */
    int mountns;      /* mount namespace inside it (read-only binds work) */
    int netns;        /* network namespace */
    int pidns;        /* pid namespace */
    int landlock_abi; /* 0 = unavailable */
    int seccomp;      /* seccomp-bpf filters */
    int close_range;  /* close_range(2) */
    int pids_cgroup;  /* 1: cgroup v1 pids hierarchy, 2: cgroup v2 pids controller, 0: none */
    char pids_base[POL_PATH_MAX]; /* the cgroup per-run children are made in */
    char why[512];                /* what is missing, one line ("" when nothing) */
};

/* Probes the kernel in a throw-away child, and looks for a pids cgroup we can
 * make children in (removing leftovers of crashed runs there). disable: test
 * hook, a comma list of mechanisms to report as unavailable
 * ("userns,landlock,seccomp,pids,all"), or NULL. Always returns 0 (missing
 * mechanisms are results, not errors). */
int sbx_probe(struct sbx_caps *c, const char *disable);

/* The level 0..3 the capabilities reach. */
int sbx_level(const struct sbx_caps *c);
/* A one-line description of a level ("L3: namespaces + Landlock + seccomp"). */
const char *sbx_level_name(int level);
/* What bounds the process count ("pids cgroup (v1)", "RLIMIT_NPROC (per user
 * namespace)"), or NULL when nothing does (root without a pids cgroup, or
 * below L3 without one). Static string. */
const char *sbx_nproc_mechanism(const struct sbx_caps *c);

struct sbx_opts {
    struct pol *pol;             /* required: workspace, temp dir, protected/hidden paths */
    const struct sbx_caps *caps; /* required: from sbx_probe */
    int network;                 /* 1: the configuration allows network (sandbox.network) */
    int approved;                /* 1: the user approved running below L3 */
    double timeout_s;            /* wall clock; <= 0: none */
    size_t output_cap;           /* bytes of output kept (head + tail) */
    unsigned long cpu_s;         /* RLIMIT_CPU seconds (0: unlimited) */
    unsigned long long fsize;    /* RLIMIT_FSIZE bytes (0: unlimited) */
    unsigned long nofile;        /* RLIMIT_NOFILE */
    unsigned long nproc;         /* tasks (processes + threads) per sandbox (0: unlimited) */
    int nproc_explicit;          /* 1: the user asked for nproc: refuse when nothing enforces it */
    unsigned long long as;       /* RLIMIT_AS bytes (0: unlimited; breaks ASan/Go/JITs) */
    const char *cwd;             /* NULL: the workspace; else relative to it */
};

/* Defaults: timeout 120 s, output 64 KiB, CPU 600 s, file size 1 GiB, 1024 files,
 * 1024 processes, no address-space limit. */
struct sbx_opts sbx_defaults(void);

struct sbx_result {
    struct buf out;   /* combined stdout+stderr, head and tail kept; owned */
    size_t out_total; /* bytes the command wrote */
    int truncated;    /* 1 when out_total > output_cap */
    int exited;       /* 1: exit code in status; 0: killed by signal `status` */
    int status;
    int timed_out;  /* the wall-clock limit killed it */
    int level;      /* the level it ran at */
    long pids_peak; /* most tasks alive at once in the run's pids cgroup; -1: no cgroup */
    double wall_s;
};

/* Runs `command` with /bin/sh -c inside the sandbox. 0 when it ran (whatever
 * its exit status); ERR_DENIED when the policy refuses to run it (message says
 * what is missing); ERR_IO when set-up failed. r is filled; free with
 * sbx_result_free (also after an error). */
int sbx_run(const struct sbx_opts *o, const char *command, struct sbx_result *r);
void sbx_result_free(struct sbx_result *r);

#endif
