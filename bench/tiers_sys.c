/* SPDX-License-Identifier: MIT */
/* `farpool-bench tiers`: namespace, its farpoold, disk file, cleanup; see tiers_sys.h. */
#include "tiers_sys.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "common/time.h"

#define PFX              "farpool-bench tiers: "
#define NS_PREFIX        "farpool-tiers-"
#define FILE_PREFIX      "farpool-tiers"      /* FILE_PREFIX.PID.XXXXXX: the disk file */
#define TMP_PREFIX       "/tmp/farpool-tiers" /* TMP_PREFIX.PID.XXXXXX: port and secret */
#define SUBNET_BASE      0x0AD50000u          /* 10.213.0.0/16: the /30s tried */
#define SUBNET_COUNT     16384u
#define IP_TIMEOUT_MS    10000
#define NODE_START_MS    15000
#define NODE_STOP_MS     5000
#define MAX_NETS         256
#define IP_MAX_ARGS      24
#define DISK_WRITE_CHUNK (8 * MIB)

extern char **environ;

/* What must be undone on exit. Read by the signal handlers, hence static. */
static struct tiers_sys {
    char ip[64];             /* path of ip(8); "" if not found */
    char ns[32];             /* namespace to delete; "" if none */
    char veth_host[16];      /* root end of the veth pair to delete; "" if none */
    volatile pid_t node_pid; /* farpoold in the namespace; -1 if none */
    char dir[64];            /* temporary directory; "" if none */
    char secret[128];        /* files in it; "" if none */
    char port_file[128];
    char port_tmp[136];   /* farpoold writes port_file through it */
    char disk_file[4096]; /* the disk tier's file; "" if none */
} sys = {"", "", "", -1, "", "", "", "", ""};

/* ------------------------------------------------------------------------ */
/* Signal-safe helpers                                                      */
/* ------------------------------------------------------------------------ */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void signals_block(sigset_t *old)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, old);
}

/*
 * Run ip(8) with @argv (argv[0] "ip", NULL-terminated), bounded by
 * IP_TIMEOUT_MS; with @quiet its output goes to /dev/null. Returns its exit
 * code, or -1. Async-signal-safe.
 */
static int ip_exec(char *const *argv, bool quiet)
{
    pid_t pid;
    int st;

    if (sys.ip[0] == '\0')
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        bench_child_reset_signals();
        if (quiet) {
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0) {
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
            }
        }
        execve(sys.ip, argv, environ);
        _exit(127);
    }
    st = bench_wait_bounded(pid, IP_TIMEOUT_MS);
    return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * ip_exec() with the arguments after "ip" given inline, NULL-terminated. If
 * it fails and @why is not NULL, *@why says which command failed and how.
 */
static int ip_run(bool quiet, char *why, size_t why_len, ...)
{
    char *argv[IP_MAX_ARGS];
    unsigned n = 0;
    va_list ap;
    int rc;

    argv[n++] = "ip";
    va_start(ap, why_len);
    while (n < IP_MAX_ARGS - 1) {
        char *arg = va_arg(ap, char *);
        if (arg == NULL)
            break;
        argv[n++] = arg;
    }
    va_end(ap);
    argv[n] = NULL;
    rc = ip_exec(argv, quiet);
    if (rc != 0 && why != NULL) {
        size_t len = 0;

        len += (size_t)snprintf(why, why_len, "'");
        for (unsigned i = 0; i < n && len < why_len; i++)
            len += (size_t)snprintf(why + len, why_len - len, "%s%s", i ? " " : "", argv[i]);
        if (len < why_len)
            snprintf(why + len, why_len - len, "' failed (exit %d)", rc);
    }
    return rc;
}

/* Everything tiers_sys.h says cleanup undoes, but bench_cleanup(). Async-signal-safe. */
static void sys_undo(void)
{
    pid_t pid = sys.node_pid;

    if (pid > 0) {
        kill(pid, SIGTERM);
        bench_wait_bounded(pid, NODE_STOP_MS); /* SIGKILL after that; reaped either way */
        sys.node_pid = -1;
    }
    if (sys.veth_host[0] != '\0') {
        char *argv[] = {"ip", "link", "del", sys.veth_host, NULL};
        ip_exec(argv, true);
        sys.veth_host[0] = '\0';
    }
    if (sys.ns[0] != '\0') {
        char *argv[] = {"ip", "netns", "del", sys.ns, NULL};
        ip_exec(argv, true);
        sys.ns[0] = '\0';
    }
    if (sys.port_file[0] != '\0') {
        unlink(sys.port_file);
        unlink(sys.port_tmp);
        sys.port_file[0] = '\0';
    }
    if (sys.secret[0] != '\0') {
        unlink(sys.secret);
        sys.secret[0] = '\0';
    }
    if (sys.dir[0] != '\0') {
        rmdir(sys.dir);
        sys.dir[0] = '\0';
    }
    if (sys.disk_file[0] != '\0') {
        unlink(sys.disk_file);
        sys.disk_file[0] = '\0';
    }
}

static void on_signal(int sig)
{
    sys_undo();
    bench_cleanup();
    _exit(128 + sig);
}

static void on_sigbus(int sig)
{
    static const char msg[] = "\n" PFX "SIGBUS: an access to a mapped region failed (a fetch "
                              "from the node could not be served; see the log above)\n";
    ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);

    (void)n;
    (void)sig;
    sys_undo();
    bench_cleanup();
    _exit(1);
}

static void find_ip(void)
{
    static const char *const paths[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (access(paths[i], X_OK) == 0) {
            snprintf(sys.ip, sizeof(sys.ip), "%s", paths[i]);
            return;
        }
    }
}

void tiers_sys_init(void)
{
    struct sigaction sa;

    find_ip();
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGHUP);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_sigbus;
    sigaction(SIGBUS, &sa, NULL);
}

void tiers_sys_cleanup(void)
{
    signals_block(NULL);
    sys_undo();
    bench_cleanup();
}

/* ------------------------------------------------------------------------ */
/* The namespace                                                            */
/* ------------------------------------------------------------------------ */

typedef struct net4 {
    uint32_t addr, mask; /* host order */
} net4_t;

/* Networks of this machine: interface addresses and routes (but the default route). */
static unsigned nets_collect(net4_t *nets, unsigned max)
{
    struct ifaddrs *ifa_list = NULL;
    unsigned n = 0;
    char line[512];
    FILE *f;

    if (getifaddrs(&ifa_list) == 0) {
        for (struct ifaddrs *ifa = ifa_list; ifa != NULL && n < max; ifa = ifa->ifa_next) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)(void *)ifa->ifa_addr;
            const struct sockaddr_in *m = (const struct sockaddr_in *)(void *)ifa->ifa_netmask;

            if (a == NULL || a->sin_family != AF_INET)
                continue;
            nets[n].addr = ntohl(a->sin_addr.s_addr);
            nets[n].mask = m != NULL ? ntohl(m->sin_addr.s_addr) : 0xFFFFFFFFu;
            n++;
        }
        freeifaddrs(ifa_list);
    }
    f = fopen("/proc/net/route", "r");
    if (f != NULL) {
        if (fgets(line, sizeof(line), f) != NULL) { /* the header */
            while (n < max && fgets(line, sizeof(line), f) != NULL) {
                char iface[64];
                unsigned dest, gw, flags, refcnt, use, metric, mask;

                if (sscanf(line, "%63s %x %x %x %u %u %u %x", iface, &dest, &gw, &flags, &refcnt,
                           &use, &metric, &mask) != 8 ||
                    mask == 0)
                    continue;
                /* The kernel prints the network-order word as a native integer. */
                nets[n].addr = ntohl(dest);
                nets[n].mask = ntohl(mask);
                n++;
            }
        }
        fclose(f);
    }
    return n;
}

static bool nets_overlap(const net4_t *a, const net4_t *b)
{
    uint32_t m = a->mask & b->mask; /* the shorter prefix */

    return (a->addr & m) == (b->addr & m);
}

/* A 10.213.x.y/30 that overlaps nothing of this machine's; 0 if there is none. */
static uint32_t subnet_pick(void)
{
    net4_t nets[MAX_NETS];
    unsigned n = nets_collect(nets, MAX_NETS);
    unsigned start = (unsigned)getpid() % SUBNET_COUNT;

    for (unsigned i = 0; i < SUBNET_COUNT; i++) {
        net4_t cand = {SUBNET_BASE + 4 * ((start + i) % SUBNET_COUNT), 0xFFFFFFFCu};
        bool clash = false;

        for (unsigned k = 0; k < n && !clash; k++)
            clash = nets_overlap(&cand, &nets[k]);
        if (!clash)
            return cand.addr;
    }
    return 0;
}

static void ip4_format(uint32_t addr, char *buf, size_t len)
{
    snprintf(buf, len, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 255, (addr >> 8) & 255,
             addr & 255);
}

/* The PID in "@prefix@sep PID[.rest]" if it names a process that is gone; else 0. */
static pid_t dead_owner(const char *name, const char *prefix, char sep)
{
    size_t plen = strlen(prefix);
    char *end;
    long pid;

    if (strncmp(name, prefix, plen) != 0 || name[plen] != sep)
        return 0;
    errno = 0;
    pid = strtol(name + plen + 1, &end, 10);
    if (errno != 0 || end == name + plen + 1 || (*end != '\0' && *end != '.') || pid <= 0 ||
        pid > 0x7FFFFFFF || pid == (long)getpid())
        return 0;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
        return 0;
    return (pid_t)pid;
}

/* Namespaces of killed runs, with their veth pairs. */
static void stale_namespaces(void)
{
    DIR *d;
    struct dirent *e;

    if (geteuid() != 0 || sys.ip[0] == '\0')
        return;
    d = opendir("/run/netns");
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        char name[64], veth[32];
        pid_t pid = dead_owner(e->d_name, "farpool-tiers", '-');

        if (pid == 0)
            continue;
        snprintf(name, sizeof(name), "%.40s", e->d_name);
        snprintf(veth, sizeof(veth), "fpt%da", (int)pid);
        ip_run(true, NULL, 0, "link", "del", veth, (char *)NULL);
        if (ip_run(true, NULL, 0, "netns", "del", name, (char *)NULL) == 0)
            fprintf(stderr, PFX "deleted namespace %s, left by a run that was killed\n", name);
    }
    closedir(d);
}

/* Temporary directories (port and secret files) of killed runs. */
static void stale_tmpdirs(void)
{
    const char *base = strrchr(TMP_PREFIX, '/') + 1;
    DIR *d = opendir("/tmp");
    struct dirent *e;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        static const char *const files[] = {"port", "port.tmp", "secret"};
        char path[320];

        if (dead_owner(e->d_name, base, '.') == 0)
            continue;
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            snprintf(path, sizeof(path), "/tmp/%.200s/%s", e->d_name, files[i]);
            unlink(path);
        }
        snprintf(path, sizeof(path), "/tmp/%.200s", e->d_name);
        if (rmdir(path) == 0)
            fprintf(stderr, PFX "removed %s, left by a run that was killed\n", path);
    }
    closedir(d);
}

/* Disk files of killed runs in @dir. */
static void stale_disk_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        char path[4352];
        struct stat st;

        if (dead_owner(e->d_name, FILE_PREFIX, '.') == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && unlink(path) == 0)
            fprintf(stderr, PFX "removed %s, left by a run that was killed\n", path);
    }
    closedir(d);
}

void tiers_sys_stale(const char *disk_dir)
{
    stale_namespaces();
    stale_tmpdirs();
    if (disk_dir != NULL)
        stale_disk_files(disk_dir);
}

fp_status_t tiers_netns_create(tiers_netns_t *netns_p, char *why, size_t why_len)
{
    tiers_netns_t n;
    uint32_t net;
    char host_cidr[24], node_cidr[24];
    sigset_t old;

    if (geteuid() != 0) {
        snprintf(why, why_len, "not root: creating a network namespace needs CAP_NET_ADMIN");
        return FP_ERR_PERMISSION;
    }
    if (sys.ip[0] == '\0') {
        snprintf(why, why_len, "ip(8) not found (install iproute2)");
        return FP_ERR_UNSUPPORTED;
    }
    net = subnet_pick();
    if (net == 0) {
        snprintf(why, why_len, "no free /30 in 10.213.0.0/16 for the veth pair");
        return FP_ERR_NO_SPACE;
    }
    memset(&n, 0, sizeof(n));
    snprintf(n.ns, sizeof(n.ns), NS_PREFIX "%d", (int)getpid());
    snprintf(n.veth_host, sizeof(n.veth_host), "fpt%da", (int)getpid());
    snprintf(n.veth_node, sizeof(n.veth_node), "fpt%db", (int)getpid());
    ip4_format(net + 1, n.host_ip, sizeof(n.host_ip));
    ip4_format(net + 2, n.node_ip, sizeof(n.node_ip));
    snprintf(host_cidr, sizeof(host_cidr), "%s/30", n.host_ip);
    snprintf(node_cidr, sizeof(node_cidr), "%s/30", n.node_ip);

    /* Recorded before they exist, so that a signal at any point deletes them. */
    signals_block(&old);
    memcpy(sys.ns, n.ns, sizeof(sys.ns));
    memcpy(sys.veth_host, n.veth_host, sizeof(sys.veth_host));
    sigprocmask(SIG_SETMASK, &old, NULL);

    if (ip_run(false, why, why_len, "netns", "add", n.ns, (char *)NULL) != 0 ||
        ip_run(false, why, why_len, "link", "add", n.veth_host, "type", "veth", "peer", "name",
               n.veth_node, "netns", n.ns, (char *)NULL) != 0 ||
        ip_run(false, why, why_len, "addr", "add", host_cidr, "dev", n.veth_host, (char *)NULL) !=
            0 ||
        ip_run(false, why, why_len, "link", "set", n.veth_host, "up", (char *)NULL) != 0 ||
        ip_run(false, why, why_len, "-n", n.ns, "addr", "add", node_cidr, "dev", n.veth_node,
               (char *)NULL) != 0 ||
        ip_run(false, why, why_len, "-n", n.ns, "link", "set", n.veth_node, "up", (char *)NULL) !=
            0 ||
        ip_run(false, why, why_len, "-n", n.ns, "link", "set", "lo", "up", (char *)NULL) != 0)
        goto err_undo;
    *netns_p = n;
    return FP_OK;

err_undo:
    signals_block(&old);
    sys_undo();
    sigprocmask(SIG_SETMASK, &old, NULL);
    return FP_ERR_IO;
}

/* ------------------------------------------------------------------------ */
/* farpoold in the namespace                                                */
/* ------------------------------------------------------------------------ */

/* A fresh secret file, mode 0600: 64 hex digits. */
static fp_status_t secret_write(const char *path)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[32];
    char text[2 * sizeof(raw) + 1];
    int fd;

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        fprintf(stderr, PFX "getrandom: %s\n", strerror(errno));
        return FP_ERR_IO;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        text[2 * i] = hex[raw[i] >> 4];
        text[2 * i + 1] = hex[raw[i] & 15];
    }
    text[2 * sizeof(raw)] = '\n';
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, text, sizeof(text)) != (ssize_t)sizeof(text)) {
        fprintf(stderr, PFX "cannot write %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return FP_ERR_IO;
    }
    close(fd);
    return FP_OK;
}

static void close_inherited_fds(void)
{
    long max = sysconf(_SC_OPEN_MAX);

    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = 3; fd < max; fd++)
        close(fd);
}

fp_status_t tiers_netns_node_start(const tiers_netns_t *netns, const char *farpoold,
                                   const char *capacity, char *addr, size_t addr_len,
                                   const char **secret_file_p)
{
    char listen_addr[32];
    uint64_t deadline;
    pid_t parent = getpid(), pid;
    sigset_t old;
    fp_status_t status;

    if (access(farpoold, X_OK) != 0) {
        fprintf(stderr, PFX "cannot run farpoold at %s: %s (use --farpoold PATH)\n", farpoold,
                strerror(errno));
        return FP_ERR_INVALID_PARAM;
    }
    signals_block(&old);
    snprintf(sys.dir, sizeof(sys.dir), "%s.%d.XXXXXX", TMP_PREFIX, (int)getpid());
    if (mkdtemp(sys.dir) == NULL) {
        fprintf(stderr, PFX "mkdtemp: %s\n", strerror(errno));
        sys.dir[0] = '\0';
        sigprocmask(SIG_SETMASK, &old, NULL);
        return FP_ERR_IO;
    }
    snprintf(sys.secret, sizeof(sys.secret), "%s/secret", sys.dir);
    snprintf(sys.port_file, sizeof(sys.port_file), "%s/port", sys.dir);
    snprintf(sys.port_tmp, sizeof(sys.port_tmp), "%s.tmp", sys.port_file);
    sigprocmask(SIG_SETMASK, &old, NULL);
    status = secret_write(sys.secret);
    if (status != FP_OK)
        return status;
    snprintf(listen_addr, sizeof(listen_addr), "%s:0", netns->node_ip);

    fflush(NULL);
    signals_block(&old);
    pid = fork();
    if (pid < 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        fprintf(stderr, PFX "fork: %s\n", strerror(errno));
        return FP_ERR_IO;
    }
    if (pid == 0) {
        char *argv[] = {
            "ip",       "netns",      "exec",           (char *)netns->ns, (char *)farpoold,
            "--listen", listen_addr,  "--port-file",    sys.port_file,     "--secret-file",
            sys.secret, "--capacity", (char *)capacity, "--log-level",     "warn",
            NULL};

        bench_child_reset_signals();
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* kept across both execs: ip, then farpoold */
        if (getppid() != parent)
            _exit(1);
        close_inherited_fds();
        execve(sys.ip, argv, environ);
        fprintf(stderr, PFX "exec %s: %s\n", sys.ip, strerror(errno));
        _exit(127);
    }
    sys.node_pid = pid;
    sigprocmask(SIG_SETMASK, &old, NULL);

    deadline = fp_time_ns() + NODE_START_MS * FP_NS_PER_MS;
    for (;;) {
        FILE *f = fopen(sys.port_file, "r");
        int st;

        if (f != NULL) {
            bool ok = fgets(addr, (int)addr_len, f) != NULL && strchr(addr, '\n') != NULL;
            fclose(f);
            if (ok) {
                addr[strcspn(addr, "\r\n")] = '\0';
                *secret_file_p = sys.secret;
                return FP_OK;
            }
        }
        if (waitpid(pid, &st, WNOHANG) == pid) {
            sys.node_pid = -1;
            fprintf(stderr, PFX "farpoold in namespace %s exited before listening (status %d)\n",
                    netns->ns, st);
            return FP_ERR_IO;
        }
        if (fp_time_ns() > deadline) {
            fprintf(stderr, PFX "farpoold in namespace %s wrote no port file within %d ms\n",
                    netns->ns, NODE_START_MS);
            return FP_ERR_TIMED_OUT;
        }
        sleep_ms(5);
    }
}

void tiers_netns_node_pin(int cpu)
{
    cpu_set_t set;

    if (cpu < 0 || sys.node_pid <= 0)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(sys.node_pid, sizeof(set), &set) != 0)
        fprintf(stderr, PFX "cannot pin farpoold to CPU %d: %s\n", cpu, strerror(errno));
}

/* ------------------------------------------------------------------------ */
/* The disk file                                                            */
/* ------------------------------------------------------------------------ */

fp_status_t tiers_disk_file_create(const char *dir, const uint8_t *src, uint64_t size, char *path,
                                   size_t path_len)
{
    sigset_t old;
    int fd;

    signals_block(&old);
    if ((size_t)snprintf(sys.disk_file, sizeof(sys.disk_file), "%s/%s.%d.XXXXXX", dir, FILE_PREFIX,
                         (int)getpid()) >= sizeof(sys.disk_file)) {
        sys.disk_file[0] = '\0';
        sigprocmask(SIG_SETMASK, &old, NULL);
        fprintf(stderr, PFX "--dir path too long\n");
        return FP_ERR_INVALID_PARAM;
    }
    fd = mkostemp(sys.disk_file, O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, PFX "cannot create a file in %s: %s\n", dir, strerror(errno));
        sys.disk_file[0] = '\0';
        sigprocmask(SIG_SETMASK, &old, NULL);
        return FP_ERR_IO;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    for (uint64_t off = 0; off < size;) {
        size_t len = size - off < DISK_WRITE_CHUNK ? (size_t)(size - off) : DISK_WRITE_CHUNK;
        ssize_t n = pwrite(fd, src + off, len, (off_t)off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, PFX "write %s: %s\n", sys.disk_file, n < 0 ? strerror(errno) : "short");
            goto err_unlink;
        }
        off += (uint64_t)n;
    }
    if (fdatasync(fd) != 0) {
        fprintf(stderr, PFX "fdatasync %s: %s\n", sys.disk_file, strerror(errno));
        goto err_unlink;
    }
    close(fd);
    snprintf(path, path_len, "%s", sys.disk_file);
    return FP_OK;

err_unlink:
    close(fd);
    signals_block(&old);
    unlink(sys.disk_file);
    sys.disk_file[0] = '\0';
    sigprocmask(SIG_SETMASK, &old, NULL);
    return FP_ERR_IO;
}
