// gcc: -static
// For the emulate-bpf-devices test: what a container runtime does to filter its inner
// containers' devices, and what it must not be able to do.
//
//   bpf_dev run OWN OTHER    as the container (root in a user namespace), OWN its own cgroup
//                            v2 directory, OTHER a cgroup outside it; prints `step=RC errno=E`
//                            lines and, for the device checks, `null=E zero=E` (0: opened)
//   bpf_dev override DIR     as host root: attach an allow-all device program to DIR with
//                            BPF_F_ALLOW_OVERRIDE (what the handler must not let a program
//                            below it override)
//   bpf_dev show DIR         as host root: what is attached to DIR (`show=RC count=N …`)
//   bpf_dev exists ID        as host root: whether program ID is still loaded (`exists=0|1`)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long sys_bpf(int cmd, union bpf_attr *a) {
    return syscall(SYS_bpf, cmd, a, sizeof(*a));
}

static void report(const char *step, long rc) {
    printf("%s=%ld errno=%d\n", step, rc, rc < 0 ? errno : 0);
    fflush(stdout);
}

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

// Deny /dev/null (1:3), allow every other device.
static struct bpf_insn deny_null[] = {
    INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 4, 0),   // r2 = ctx->major
    INSN(BPF_LDX | BPF_MEM | BPF_W, 3, 1, 8, 0),   // r3 = ctx->minor
    INSN(BPF_JMP | BPF_JNE | BPF_K, 2, 0, 3, 1),   // if major != 1 goto allow
    INSN(BPF_JMP | BPF_JNE | BPF_K, 3, 0, 2, 3),   // if minor != 3 goto allow
    INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0), // r0 = 0
    INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1), // allow: r0 = 1
    INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
};

static struct bpf_insn allow_all[] = {
    INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1),
    INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
};

static long load(int type, struct bpf_insn *insns, unsigned cnt) {
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.prog_type = type;
    a.insns = (uint64_t)(uintptr_t)insns;
    a.insn_cnt = cnt;
    a.license = (uint64_t)(uintptr_t)"Apache";
    return sys_bpf(BPF_PROG_LOAD, &a);
}

static long attach(int cg, int prog, unsigned flags) {
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.target_fd = cg;
    a.attach_bpf_fd = prog;
    a.attach_type = BPF_CGROUP_DEVICE;
    a.attach_flags = flags;
    return sys_bpf(BPF_PROG_ATTACH, &a);
}

static long detach(int cg, int prog) {
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.target_fd = cg;
    a.attach_bpf_fd = prog;
    a.attach_type = BPF_CGROUP_DEVICE;
    return sys_bpf(BPF_PROG_DETACH, &a);
}

// BPF_PROG_QUERY: prints the count, the flags and the first id; returns the first id.
static uint32_t query(const char *step, int cg) {
    uint32_t ids[8] = {0};
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.query.target_fd = cg;
    a.query.attach_type = BPF_CGROUP_DEVICE;
    a.query.prog_ids = (uint64_t)(uintptr_t)ids;
    a.query.prog_cnt = 8;
    long rc = sys_bpf(BPF_PROG_QUERY, &a);
    printf("%s=%ld errno=%d count=%u flags=%u id=%u\n", step, rc, rc < 0 ? errno : 0,
           a.query.prog_cnt, a.query.attach_flags, ids[0]);
    fflush(stdout);
    return ids[0];
}

// In a child moved into cgroup DIR: can /dev/null and /dev/zero be opened?
static void devices(const char *step, const char *dir) {
    pid_t p = fork();
    if (p == 0) {
        char path[4096], pid[32];
        snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
        snprintf(pid, sizeof(pid), "%d\n", getpid());
        int f = open(path, O_WRONLY);
        if (f < 0 || write(f, pid, strlen(pid)) < 0) {
            printf("%s: cannot join %s: %s\n", step, path, strerror(errno));
            _exit(1);
        }
        close(f);
        int n = open("/dev/null", O_RDONLY);
        int en = n < 0 ? errno : 0;
        int z = open("/dev/zero", O_RDONLY);
        int ez = z < 0 ? errno : 0;
        printf("%s null=%d zero=%d\n", step, en, ez);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "override") == 0) {
        int cg = open(argv[2], O_RDONLY | O_DIRECTORY);
        long prog = load(BPF_PROG_TYPE_CGROUP_DEVICE, allow_all, 2);
        long rc = prog < 0 ? prog : attach(cg, (int)prog, BPF_F_ALLOW_OVERRIDE);
        report("override", rc);
        return rc < 0;
    }
    if (argc == 3 && strcmp(argv[1], "show") == 0) {
        query("show", open(argv[2], O_RDONLY | O_DIRECTORY));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "exists") == 0) {
        union bpf_attr a;
        memset(&a, 0, sizeof(a));
        a.prog_id = (uint32_t)strtoul(argv[2], NULL, 10);
        long fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
        printf("exists=%d errno=%d\n", fd >= 0, fd < 0 ? errno : 0);
        return 0;
    }
    if (argc != 4 || strcmp(argv[1], "run") != 0) {
        fprintf(stderr, "usage: bpf_dev run OWN OTHER | bpf_dev override DIR\n");
        return 2;
    }
    const char *own = argv[2], *other = argv[3];
    char inner[4096];
    snprintf(inner, sizeof(inner), "%s/inner", own);
    report("mkdir", mkdir(inner, 0755));
    int cg = open(inner, O_RDONLY | O_DIRECTORY);
    int owncg = open(own, O_RDONLY | O_DIRECTORY);
    int othercg = open(other, O_RDONLY | O_DIRECTORY);

    // Refused: other program types, malformed loads, fds inside instructions.
    report("load_socket_filter", load(BPF_PROG_TYPE_SOCKET_FILTER, allow_all, 2));
    // runc's library probes for BPF_PROG_ATTACH with a constant cgroup_skb program: loaded;
    // any other cgroup_skb program is not.
    long probe = load(BPF_PROG_TYPE_CGROUP_SKB, allow_all, 2);
    report("load_skb_probe", probe);
    if (probe >= 0) close((int)probe);
    report("load_skb_program", load(BPF_PROG_TYPE_CGROUP_SKB, deny_null, sizeof(deny_null) / sizeof(deny_null[0])));
    report("load_zero_insns", load(BPF_PROG_TYPE_CGROUP_DEVICE, allow_all, 0));
    report("load_huge_count", load(BPF_PROG_TYPE_CGROUP_DEVICE, allow_all, 100000));
    report("load_bad_pointer", load(BPF_PROG_TYPE_CGROUP_DEVICE, (struct bpf_insn *)8, 2));
    struct bpf_insn map_ref[] = {
        INSN(BPF_LD | BPF_IMM | BPF_DW, 1, BPF_PSEUDO_MAP_FD, 0, 3),
        INSN(0, 0, 0, 0, 0),
        allow_all[0],
        allow_all[1],
    };
    report("load_map_fd", load(BPF_PROG_TYPE_CGROUP_DEVICE, map_ref, 4));
    {
        union bpf_attr a;
        memset(&a, 0, sizeof(a));
        a.map_type = BPF_MAP_TYPE_ARRAY;
        a.key_size = 4;
        a.value_size = 4;
        a.max_entries = 1;
        report("map_create", sys_bpf(BPF_MAP_CREATE, &a));
    }

    // What runc does: ask what is attached, load, attach, and (next time) swap.
    query("query_empty", cg);
    long prog = load(BPF_PROG_TYPE_CGROUP_DEVICE, deny_null, sizeof(deny_null) / sizeof(deny_null[0]));
    report("load", prog);
    if (prog < 0) return 0;  // what a runtime in a user namespace sees without auditor
    report("attach_other", attach(othercg, (int)prog, BPF_F_ALLOW_MULTI));
    report("attach_own", attach(owncg, (int)prog, BPF_F_ALLOW_MULTI));
    // The caller asks for ALLOW_OVERRIDE: auditor attaches with ALLOW_MULTI.
    report("attach", attach(cg, (int)prog, BPF_F_ALLOW_OVERRIDE));
    uint32_t id = query("query", cg);
    {
        // Information about a program it holds: the kernel answers (no privilege needed).
        struct bpf_prog_info info;
        memset(&info, 0, sizeof(info));
        union bpf_attr a;
        memset(&a, 0, sizeof(a));
        a.info.bpf_fd = (int)prog;
        a.info.info_len = sizeof(info);
        a.info.info = (uint64_t)(uintptr_t)&info;
        long r = sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a);
        printf("info=%ld errno=%d id=%u type=%u\n", r, r < 0 ? errno : 0, info.id, info.type);
        fflush(stdout);
    }
    devices("filtered", inner);
    {
        union bpf_attr a;
        memset(&a, 0, sizeof(a));
        a.prog_id = id;
        long fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
        report("get_fd_by_id", fd);
        // Swap the program for itself, as runc does with BPF_F_REPLACE.
        long again = load(BPF_PROG_TYPE_CGROUP_DEVICE, deny_null, sizeof(deny_null) / sizeof(deny_null[0]));
        union bpf_attr r;
        memset(&r, 0, sizeof(r));
        r.target_fd = cg;
        r.attach_bpf_fd = (int)again;
        r.attach_type = BPF_CGROUP_DEVICE;
        r.attach_flags = BPF_F_ALLOW_MULTI | BPF_F_REPLACE;
        r.replace_bpf_fd = (int)fd;
        report("replace", sys_bpf(BPF_PROG_ATTACH, &r));
        query("query_replaced", cg);
        devices("replaced", inner);
        report("detach", detach(cg, (int)again));
    }
    devices("detached", inner);

    // A link: the program is attached as long as the link fd is open.
    {
        union bpf_attr a;
        memset(&a, 0, sizeof(a));
        a.link_create.prog_fd = (int)prog;
        a.link_create.target_fd = cg;
        a.link_create.attach_type = BPF_CGROUP_DEVICE;
        long link = sys_bpf(BPF_LINK_CREATE, &a);
        report("link_create", link);
        devices("linked", inner);
        if (link >= 0) close((int)link);
        devices("unlinked", inner);
    }
    return 0;
}
