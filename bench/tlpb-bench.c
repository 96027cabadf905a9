/* tlpb-bench: the project's benchmark. Measures, in one run, the floors
 * (raw unix-socket ping-pong, the same through one relay process) and the
 * bridge's figures (MMIO read latency and CPU per read over the shared-memory
 * ring in each wait policy and over the socket, external-simulator read
 * latency, posted write rate, DMA throughput fast and strict, with guest
 * memory shared and as messages, MSI-X rate), then the same kind of work on
 * the peer, libvfio-user (bench/peer/), and prints one JSON object.
 * See docs/performance.md. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_stats.h"
#include "dmacopy_host.h"
#include "harness.h"
#include "tlpb/wire.h"

static int iterations = 20000;

/* Processes this run started: stopped on any exit, so a failure leaves
 * nothing running. */
static pid_t children[8];
static unsigned child_count;

static void die(const char *what)
{
    fprintf(stderr, "tlpb-bench: %s\n", what);
    for (unsigned i = 0; i < child_count; i++) {
        kill(children[i], SIGKILL);
        waitpid(children[i], NULL, 0);
    }
    exit(1);
}

static pid_t track(pid_t pid)
{
    if (pid > 0 && child_count < sizeof(children) / sizeof(children[0]))
        children[child_count++] = pid;
    return pid;
}

/* ---- floors ---------------------------------------------------------------- */

#define MSG_BYTES 64

static void echo_loop(int fd)
{
    char buf[MSG_BYTES];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            _exit(0);
        if (write(fd, buf, (size_t)n) != n)
            _exit(1);
    }
}

static void relay_loop(int a, int b)
{
    char buf[4096];
    struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0)
            _exit(1);
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP)))
                continue;
            ssize_t n = read(p[i].fd, buf, sizeof(buf));
            if (n <= 0)
                _exit(0);
            if (write(p[1 - i].fd, buf, (size_t)n) != n)
                _exit(1);
        }
    }
}

static double ping_pong_p50(int fd)
{
    uint64_t *lat = calloc((size_t)iterations, sizeof(*lat));
    char buf[MSG_BYTES] = {1};
    for (int i = 0; i < iterations + 1000; i++) {
        uint64_t t0 = tlpb_now_ns();
        if (write(fd, buf, sizeof(buf)) != sizeof(buf))
            die("ping write");
        size_t got = 0;
        while (got < sizeof(buf)) {
            ssize_t n = read(fd, buf + got, sizeof(buf) - got);
            if (n <= 0)
                die("ping read");
            got += (size_t)n;
        }
        if (i >= 1000) /* warm-up excluded */
            lat[i - 1000] = tlpb_now_ns() - t0;
    }
    double p50 = bench_percentile_us(lat, iterations, 0.5);
    free(lat);
    return p50;
}

static double socket_rtt_p50(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        die("socketpair");
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        echo_loop(sv[1]);
    }
    close(sv[1]);
    double r = ping_pong_p50(sv[0]);
    close(sv[0]);
    waitpid(pid, NULL, 0);
    return r;
}

static double relay_rtt_p50(void)
{
    int ar[2], rb[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, ar) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, rb) != 0)
        die("socketpair");
    pid_t relay = fork();
    if (relay == 0) {
        close(ar[0]);
        close(rb[1]);
        relay_loop(ar[1], rb[0]);
    }
    pid_t echo = fork();
    if (echo == 0) {
        close(ar[0]);
        close(ar[1]);
        close(rb[0]);
        echo_loop(rb[1]);
    }
    close(ar[1]);
    close(rb[0]);
    close(rb[1]);
    double r = ping_pong_p50(ar[0]);
    close(ar[0]);
    waitpid(relay, NULL, 0);
    waitpid(echo, NULL, 0);
    return r;
}

/* ---- processes under test ---------------------------------------------------- */

struct paths {
    char bridge[PATH_MAX];
    char runner[PATH_MAX];
    char model[PATH_MAX];
    char dir[PATH_MAX];
    char peer_server[PATH_MAX];
    char peer_client[PATH_MAX];
};

/* How the host and the bridge wait for each other (docs/protocol.md,
 * "Shared-memory ring"): both sides get the same policy. */
struct ring_mode {
    const char *name;           /* in the JSON field names */
    const char *bridge_ring;    /* tlpbridged --ring */
    const char *bridge_spin_us; /* tlpbridged --ring-spin-us, NULL: its default */
    enum tlpb_host_ring_policy policy;
    uint32_t spin_us;           /* 0: the library's default */
    bool ring;                  /* the connection must use the ring */
};

static const struct ring_mode ring_adaptive = {"adaptive", "adaptive", NULL,
                                               TLPB_HOST_RING_ADAPTIVE, 0, true};
static const struct ring_mode ring_off = {"socket", "off", NULL, TLPB_HOST_RING_OFF, 0, false};
static const struct ring_mode ring_busy_poll = {"busy_poll", "busy-poll", NULL,
                                                TLPB_HOST_RING_BUSY_POLL, 0, true};
/* Adaptive with a 1 us spin: both sides sleep on their eventfd almost at
 * once, so the CPU per read is the hot path's own cost without polling. */
static const struct ring_mode ring_sleep = {"sleep", "adaptive", "1", TLPB_HOST_RING_ADAPTIVE, 1,
                                            true};

/* The processes' messages go to this program's stderr. */
static pid_t spawn_bridge(const struct paths *p, const char *socket_path, const char *device_spec,
                          const char *dma, const struct ring_mode *mode)
{
    const char *argv[16] = {p->bridge, "--listen", socket_path, "--device", device_spec,
                            "--dma", dma, "--log-level", "warn", "--ring", mode->bridge_ring};
    unsigned argc = 11;
    if (mode->bridge_spin_us) {
        argv[argc++] = "--ring-spin-us";
        argv[argc++] = mode->bridge_spin_us;
    }
    argv[argc] = NULL;
    bool ready;
    pid_t pid = track(it_spawn_ready(argv, NULL, NULL, IT_DEADLINE_MS, &ready));
    if (pid < 0)
        die("fork");
    if (!ready)
        die("tlpbridged did not start (see its messages above)");
    return pid;
}

static pid_t spawn_runner(const struct paths *p, const char *socket_path, const char *device)
{
    const char *argv[] = {p->runner, "--socket", socket_path, "--device", device,
                          "--model", p->model, NULL};
    return track(it_spawn(argv, NULL, NULL, -1));
}

static void stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    for (unsigned i = 0; i < child_count; i++)
        if (children[i] == pid)
            children[i] = children[--child_count];
}

#define GUEST_RAM_BYTES (96u << 20)

/* Guest RAM the bridge maps, as QEMU's memory-backend-memfd,share=on gives
 * it: a memfd sealed against shrinking and growing. */
struct shared_ram {
    uint8_t *mem;
    int fd;
};

static void shared_ram_create(struct shared_ram *r)
{
    r->fd = memfd_create("tlpb-bench-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (r->fd < 0 || ftruncate(r->fd, GUEST_RAM_BYTES) != 0 ||
        fcntl(r->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0)
        die("cannot create the sealed memfd for guest RAM");
    r->mem = mmap(NULL, GUEST_RAM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (r->mem == MAP_FAILED)
        die("cannot map the guest RAM memfd");
}

static void shared_ram_destroy(struct shared_ram *r)
{
    munmap(r->mem, GUEST_RAM_BYTES);
    close(r->fd);
}

/* Open the device with the host in `mode`; with `shm`, guest RAM is that
 * memfd, registered with the bridge. Refuses to measure a mode the
 * connection did not get. */
static void open_device(struct dmacopy_host *dc, const char *socket_path, const char *device,
                        bool unsplit, uint32_t mps, uint32_t mrrs, const struct ring_mode *mode,
                        struct shared_ram *shm)
{
    struct dmacopy_host_options o = {.socket = socket_path, .device = device,
                                     .ram_bytes = GUEST_RAM_BYTES, .ring_size = 256,
                                     .max_payload = mps, .max_read_request = mrrs,
                                     .offer_unsplit_dma = unsplit,
                                     .ram = shm ? shm->mem : NULL,
                                     .ring_policy = mode->policy, .ring_spin_us = mode->spin_us};
    char err[512];
    if (dmacopy_host_open(dc, &o, err, sizeof(err)) != 0)
        die(err);
    if (shm) {
        struct tlpb_host_memory_region region = {.bus_address = dc->ram_base,
                                                 .size_bytes = dc->ram_bytes, .fd = shm->fd};
        if (tlpb_host_set_guest_memory(dc->host, &region, 1) != 0)
            die("tlpb_host_set_guest_memory refused the guest RAM memfd");
        /* a read is answered after the map (sent before it) was taken */
        dmacopy_read32(dc, DMACOPY_REG_ID);
    }
    struct tlpb_host_stats st;
    tlpb_host_get_stats(dc->host, &st);
    if (st.ring_active != mode->ring) {
        snprintf(err, sizeof(err), "ring mode %s: the connection %s the shared-memory ring",
                 mode->name, st.ring_active ? "uses" : "does not use");
        die(err);
    }
    if (shm && !st.guest_memory_shared)
        die("the bridge did not take the shared guest memory");
}

static void mmio_read_latency(struct dmacopy_host *dc, double *p50, double *p99)
{
    uint64_t *lat = calloc((size_t)iterations, sizeof(*lat));
    dmacopy_write32(dc, DMACOPY_REG_SCRATCH, 0x5A5A0000u);
    for (int i = 0; i < iterations + 1000; i++) {
        uint64_t t0 = tlpb_now_ns();
        uint32_t v = dmacopy_read32(dc, DMACOPY_REG_SCRATCH);
        uint64_t dt = tlpb_now_ns() - t0;
        if (v != 0x5A5A0000u)
            die("SCRATCH read back wrong");
        if (i >= 1000)
            lat[i - 1000] = dt;
    }
    *p50 = bench_percentile_us(lat, iterations, 0.5);
    if (p99)
        *p99 = bench_percentile_us(lat, iterations, 0.99);
    free(lat);
}

/* User and system CPU of a process so far, from /proc/PID/stat (clock
 * ticks: sampled, so only long runs give a per-operation figure). */
static void proc_cpu_ns(pid_t pid, uint64_t *user_ns, uint64_t *sys_ns)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    /* Fields 14 and 15 (utime, stime) after the ")" that ends the name. */
    const char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        die("cannot read /proc/PID/stat");
    long tick = sysconf(_SC_CLK_TCK);
    *user_ns = ut * (1000000000ull / (uint64_t)tick);
    *sys_ns = st * (1000000000ull / (uint64_t)tick);
}

/* CPU one MMIO read costs across both processes (this host library and the
 * bridge with the model in it), user and system, over many reads. */
static void mmio_read_cpu(struct dmacopy_host *dc, pid_t bridge, double *user_us, double *total_us)
{
    /* At least 2 s of reads: CPU time comes in clock ticks (10 ms), so a
     * shorter run would measure the tick, not the read. */
    uint64_t n = 0, min_n = (uint64_t)iterations * 5 / 2;
    uint64_t bu0, bs0, bu1, bs1, su0, ss0, su1, ss1;
    proc_cpu_ns(bridge, &bu0, &bs0);
    proc_cpu_ns(getpid(), &su0, &ss0);
    uint64_t end = tlpb_now_ns() + 2000000000ull;
    while (n < min_n || (n % 1024 != 0 || tlpb_now_ns() < end)) {
        if (dmacopy_read32(dc, DMACOPY_REG_SCRATCH) != 0x5A5A0000u)
            die("SCRATCH read back wrong");
        n++;
    }
    proc_cpu_ns(bridge, &bu1, &bs1);
    proc_cpu_ns(getpid(), &su1, &ss1);
    uint64_t user = (bu1 - bu0) + (su1 - su0), sys = (bs1 - bs0) + (ss1 - ss0);
    *user_us = (double)user / 1e3 / n;
    *total_us = (double)(user + sys) / 1e3 / n;
}

struct mmio_figures {
    double p50, p99, user_cpu_us, cpu_us;
};

/* MMIO read latency and CPU per read on a bridge of its own started in
 * `mode`, the host in the same mode. */
static void mmio_in_mode(const struct paths *p, const char *dir, const struct ring_mode *mode,
                         struct mmio_figures *f)
{
    char sock[PATH_MAX], spec[PATH_MAX + 64];
    snprintf(sock, sizeof(sock), "%.*s/mmio-%s.sock", PATH_MAX - 64, dir, mode->name);
    snprintf(spec, sizeof(spec), "bench3:hlsim=%s", p->model);
    pid_t bridge = spawn_bridge(p, sock, spec, "strict", mode);
    struct dmacopy_host dc;
    open_device(&dc, sock, "bench3", false, 128, 512, mode, NULL);
    mmio_read_latency(&dc, &f->p50, &f->p99);
    mmio_read_cpu(&dc, bridge, &f->user_cpu_us, &f->cpu_us);
    dmacopy_host_close(&dc);
    stop(bridge);
}

static double posted_writes_per_s(struct dmacopy_host *dc)
{
    int n = iterations * 10;
    uint64_t t0 = tlpb_now_ns();
    for (int i = 0; i < n; i++)
        dmacopy_write32(dc, DMACOPY_REG_SCRATCH, (uint32_t)i);
    /* A read cannot pass the writes before it: when it returns, all of them
     * have reached the model. */
    uint32_t last = dmacopy_read32(dc, DMACOPY_REG_SCRATCH);
    uint64_t dt = tlpb_now_ns() - t0;
    if (last != (uint32_t)(n - 1))
        die("posted writes lost or reordered");
    return (double)n / ((double)dt / 1e9);
}

/* Copy `total` bytes in 64 KiB descriptors, keeping up to `depth` queued.
 * Returns bytes per second; every copy's CRC is checked as it completes and
 * the destination data after the clock stops. With `shared`, none of the
 * device's DMA may have reached this host as messages. */
static double dma_throughput(struct dmacopy_host *dc, uint64_t total, unsigned depth, bool shared)
{
    const uint32_t len = 64 * 1024;
    char err[256];
    double seconds;
    struct tlpb_host_stats before, after;
    tlpb_host_get_stats(dc->host, &before);
    if (dmacopy_copy_stream(dc, len, 32, depth, total / len, &seconds, err, sizeof(err)) != 0)
        die(err);
    tlpb_host_get_stats(dc->host, &after);
    if (shared && (after.dma_read_bytes != before.dma_read_bytes ||
                   after.dma_write_bytes != before.dma_write_bytes))
        die("guest memory is shared, yet the bridge sent DMA to the host as messages");
    return (double)(total / len * len) / seconds;
}

static double msix_per_s(struct dmacopy_host *dc)
{
    uint64_t n = (uint64_t)iterations / 2;
    uint64_t start = dc->msix_count[0];
    uint64_t src = dc->ram_base + (1u << 20), dst = src + 4096;
    uint64_t t0 = tlpb_now_ns();
    uint64_t posted = 0;
    while (dc->msix_count[0] - start < n) {
        unsigned batch = 0;
        while (posted < n && posted - (dc->msix_count[0] - start) < 64) {
            dmacopy_post(dc, src, dst, 4, true);
            posted++;
            batch++;
        }
        if (batch)
            dmacopy_ring_doorbell(dc);
        if (dmacopy_wait_msix(dc, 0, dc->msix_count[0] + 1, 30000) != 0)
            die("completion interrupt missing");
        /* the driver's half of the handshake: acknowledge the cause */
        dmacopy_write32(dc, DMACOPY_REG_IRQ_STATUS, 1);
    }
    uint64_t dt = tlpb_now_ns() - t0;
    return (double)(dc->msix_count[0] - start) / ((double)dt / 1e9);
}

static int no_dma(void *opaque, uint64_t addr, void *buf, uint32_t len) { return 1; }
static int no_dma_write(void *opaque, uint64_t addr, const void *buf, uint32_t len) { return 1; }
static void no_irq(void *opaque, enum tlpb_host_irq_kind kind, unsigned vector) {}

/* Connect as the host and let the bridge's event say when the simulator has
 * attached: no guessing how long the runner takes to start. */
static void wait_for_simulator(const char *socket_path, const char *device)
{
    struct tlpb_host_config cfg = {.address = socket_path, .device_name = device};
    struct tlpb_host_ops ops = {.dma_read = no_dma, .dma_write = no_dma_write, .interrupt = no_irq};
    struct tlpb_host *h;
    char err[256];
    if (tlpb_host_open(&h, &cfg, &ops, NULL, err, sizeof(err)) != 0 || !tlpb_host_connected(h))
        die("cannot connect to the bridge");
    uint64_t deadline = tlpb_now_ns() + 30000000000ull;
    while (!tlpb_host_simulator_attached(h) && tlpb_now_ns() < deadline)
        tlpb_host_wait(h, 1000);
    if (!tlpb_host_simulator_attached(h))
        die("hlsim-run did not attach");
    tlpb_host_close(h);
}

/* The wall cost of one coupled-time sync: a host GRANT to an idle device
 * and its REACHED, through the bridge (docs/protocol.md, "Simulated time").
 * The shim pays this at each quantum boundary while the device is busy. */
static double grant_rtt_p50(const char *socket_path, const char *device, double *p99)
{
    struct tlpb_host_config cfg = {.address = socket_path, .device_name = device,
                                   .time_sync = true, .quantum_ps = 10000000};
    struct tlpb_host_ops ops = {.dma_read = no_dma, .dma_write = no_dma_write, .interrupt = no_irq};
    struct tlpb_host *h;
    char err[256];
    if (tlpb_host_open(&h, &cfg, &ops, NULL, err, sizeof(err)) != 0 || !tlpb_host_connected(h))
        die("cannot connect to the bridge");
    if (!tlpb_host_time_coupled(h))
        die("the bridge did not grant coupled time");
    uint64_t *lat = calloc((size_t)iterations, sizeof(*lat));
    uint64_t t_ps = 1000000;
    for (int i = 0; i < iterations + 1000; i++) {
        struct tlpb_host_reached r;
        t_ps += 10000000; /* one 10 us quantum */
        tlpb_host_set_time_ps(h, t_ps);
        uint64_t t0 = tlpb_now_ns();
        if (tlpb_host_time_grant(h, t_ps, &r) != 0 || r.sim_time_ps < t_ps)
            die("grant not reached");
        uint64_t dt = tlpb_now_ns() - t0;
        if (i >= 1000)
            lat[i - 1000] = dt;
    }
    double p50 = bench_percentile_us(lat, iterations, 0.5);
    *p99 = bench_percentile_us(lat, iterations, 0.99);
    free(lat);
    tlpb_host_close(h);
    return p50;
}

/* ---- the peer: libvfio-user (bench/peer/) ------------------------------------- */

struct peer_result {
    char status[256]; /* what was measured, or why nothing was */
    bool measured;
    double read_p50, dma_shm, dma_msg;
};

/* The libvfio-user server as a child, the client as another; the client
 * prints its figures as one JSON object. */
static void run_peer(const struct paths *p, const char *dir, struct peer_result *r)
{
    memset(r, 0, sizeof(*r));
#ifdef TLPB_PEER_NOT_BUILT
    (void)p;
    (void)dir;
    snprintf(r->status, sizeof(r->status), "not built: %s", TLPB_PEER_NOT_BUILT);
#else
    char sock[PATH_MAX], out[PATH_MAX], iters[32];
    snprintf(sock, sizeof(sock), "%.*s/vfio-user.sock", PATH_MAX - 32, dir);
    snprintf(out, sizeof(out), "%.*s/peer-client.json", PATH_MAX - 32, dir);
    snprintf(iters, sizeof(iters), "%d", iterations);
    const char *server_argv[] = {p->peer_server, "--socket", sock, NULL};
    bool ready;
    pid_t server = track(it_spawn_ready(server_argv, NULL, NULL, IT_DEADLINE_MS, &ready));
    if (server < 0 || !ready) {
        stop(server);
        snprintf(r->status, sizeof(r->status), "failed: vfio-user-peer-server did not start");
        return;
    }
    const char *client_argv[] = {p->peer_client, "--socket", sock, "--iterations", iters, NULL};
    pid_t client = track(it_spawn(client_argv, out, NULL, -1));
    int status = -1;
    if (client > 0 && waitpid(client, &status, 0) == client) {
        for (unsigned i = 0; i < child_count; i++)
            if (children[i] == client)
                children[i] = children[--child_count];
    }
    /* the server exits once its client has gone; it_reap kills a hung one */
    bool server_killed;
    int server_status = it_reap(server, &server_killed);
    for (unsigned i = 0; i < child_count; i++)
        if (children[i] == server)
            children[i] = children[--child_count];
    char line[512] = "";
    FILE *f = fopen(out, "r");
    if (f) {
        if (!fgets(line, sizeof(line), f))
            line[0] = '\0';
        fclose(f);
    }
    unlink(out);
    unlink(sock);
    if (status != 0 || sscanf(line, "{\"read_rtt_us_p50\": %lf, \"dma_shm_MBps\": %lf, "
                                    "\"dma_msg_MBps\": %lf}",
                              &r->read_p50, &r->dma_shm, &r->dma_msg) != 3) {
        snprintf(r->status, sizeof(r->status), "failed: vfio-user-peer-client exit status %d"
                 " (its messages are above)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return;
    }
    if (server_killed || !WIFEXITED(server_status) || WEXITSTATUS(server_status) != 0) {
        snprintf(r->status, sizeof(r->status), "failed: vfio-user-peer-server did not exit cleanly");
        return;
    }
    r->measured = true;
    snprintf(r->status, sizeof(r->status), "%s", TLPB_PEER_SOURCE);
#endif
}

static void print_peer_number(const char *key, bool measured, double v, int decimals, bool last)
{
    printf("  \"%s\": ", key);
    if (measured)
        printf("%.*f", decimals, v);
    else
        printf("null");
    printf(last ? "\n" : ",\n");
}

static void locate(struct paths *p, const char *build_dir)
{
    if (strlen(build_dir) > PATH_MAX - 64)
        die("build directory path too long");
    snprintf(p->bridge, sizeof(p->bridge), "%.*s/bridge/tlpbridged", PATH_MAX - 64, build_dir);
    snprintf(p->runner, sizeof(p->runner), "%.*s/hlsim/hlsim-run", PATH_MAX - 64, build_dir);
    snprintf(p->model, sizeof(p->model), "%.*s/examples/libdmacopy.so", PATH_MAX - 64, build_dir);
    snprintf(p->peer_server, sizeof(p->peer_server), "%.*s/bench/peer/vfio-user-peer-server",
             PATH_MAX - 64, build_dir);
    snprintf(p->peer_client, sizeof(p->peer_client), "%.*s/bench/peer/vfio-user-peer-client",
             PATH_MAX - 64, build_dir);
    if (access(p->bridge, X_OK) || access(p->runner, X_OK) || access(p->model, R_OK)) {
        fprintf(stderr, "tlpb-bench: cannot find tlpbridged, hlsim-run and libdmacopy.so under %s"
                        " (give --build-dir)\n", build_dir);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    const char *build_dir = NULL;
    static const struct option opts[] = {{"build-dir", required_argument, NULL, 'b'},
                                         {"iterations", required_argument, NULL, 'n'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "b:n:", opts, NULL)) != -1) {
        if (ch == 'b')
            build_dir = optarg;
        else if (ch == 'n')
            iterations = atoi(optarg) > 1000 ? atoi(optarg) : 1000;
        else {
            fprintf(stderr, "usage: tlpb-bench [--build-dir DIR] [--iterations N]\n");
            return 2;
        }
    }
    char self_dir[PATH_MAX];
    if (!build_dir) {
        ssize_t n = readlink("/proc/self/exe", self_dir, sizeof(self_dir) - 1);
        if (n <= 0)
            die("cannot locate the build directory; give --build-dir");
        self_dir[n] = '\0';
        *strrchr(self_dir, '/') = '\0';        /* .../build/bench */
        *strrchr(self_dir, '/') = '\0';        /* .../build */
        build_dir = self_dir;
    }
    signal(SIGPIPE, SIG_IGN);
    /* each measurement sets its own wait policy */
    unsetenv("TLPB_RING");
    struct paths p;
    locate(&p, build_dir);
    char tmpl[] = "/tmp/tlpb-bench.XXXXXX";
    if (!mkdtemp(tmpl))
        die("mkdtemp");
    char sock_in[PATH_MAX], sock_ext[PATH_MAX], sock_fast[PATH_MAX];
    snprintf(sock_in, sizeof(sock_in), "%s/inproc.sock", tmpl);
    snprintf(sock_ext, sizeof(sock_ext), "%s/external.sock", tmpl);
    snprintf(sock_fast, sizeof(sock_fast), "%s/fast.sock", tmpl);
    char spec[PATH_MAX + 64];

    double socket_p50 = socket_rtt_p50();
    double relay_p50 = relay_rtt_p50();

    /* in-process hlsim, strict DMA */
    snprintf(spec, sizeof(spec), "bench0:hlsim=%s", p.model);
    pid_t bridge_strict = spawn_bridge(&p, sock_in, spec, "strict", &ring_adaptive);
    struct dmacopy_host dc;
    open_device(&dc, sock_in, "bench0", false, 128, 512, &ring_adaptive, NULL);
    double mmio_p50, mmio_p99;
    mmio_read_latency(&dc, &mmio_p50, &mmio_p99);
    double read_user_cpu_us, read_cpu_us;
    mmio_read_cpu(&dc, bridge_strict, &read_user_cpu_us, &read_cpu_us);
    double writes = posted_writes_per_s(&dc);
    struct tlpb_host_stats before, after;
    tlpb_host_get_stats(dc.host, &before);
    uint64_t t0 = tlpb_now_ns();
    double strict = dma_throughput(&dc, 64u << 20, 32, false);
    double strict_s = (double)(tlpb_now_ns() - t0) / 1e9;
    tlpb_host_get_stats(dc.host, &after);
    /* TLPs on the link during the strict copies: the device's read requests,
     * the host's completions (one per 128 bytes returned) and the device's
     * writes. */
    double dma_read_tlps = (double)(after.dma_reads - before.dma_reads);
    double cpl_tlps = (double)(after.dma_read_bytes - before.dma_read_bytes) / 128.0;
    double write_tlps = (double)(after.dma_writes - before.dma_writes);
    double strict_tlps = (dma_read_tlps + cpl_tlps + write_tlps) / strict_s;
    double msix = msix_per_s(&dc);
    dmacopy_host_close(&dc);
    struct shared_ram shm;
    shared_ram_create(&shm);
    open_device(&dc, sock_in, "bench0", false, 128, 512, &ring_adaptive, &shm);
    double strict_shm = dma_throughput(&dc, 64u << 20, 32, true);
    dmacopy_host_close(&dc);
    shared_ram_destroy(&shm);
    double sync_p99, sync_p50 = grant_rtt_p50(sock_in, "bench0", &sync_p99);
    stop(bridge_strict);

    /* MMIO reads with the host and the bridge in the other wait policies */
    struct mmio_figures off, busy, sleeping;
    mmio_in_mode(&p, tmpl, &ring_off, &off);
    mmio_in_mode(&p, tmpl, &ring_busy_poll, &busy);
    mmio_in_mode(&p, tmpl, &ring_sleep, &sleeping);

    /* in-process hlsim, fast (unsplit) DMA: guest memory shared, then as
     * messages */
    snprintf(spec, sizeof(spec), "bench1:hlsim=%s", p.model);
    pid_t bridge_fast = spawn_bridge(&p, sock_fast, spec, "fast", &ring_adaptive);
    shared_ram_create(&shm);
    open_device(&dc, sock_fast, "bench1", true, 128, 512, &ring_adaptive, &shm);
    double fast = dma_throughput(&dc, 1024u << 20, 32, true);
    dmacopy_host_close(&dc);
    shared_ram_destroy(&shm);
    open_device(&dc, sock_fast, "bench1", true, 128, 512, &ring_adaptive, NULL);
    double fast_msg = dma_throughput(&dc, 512u << 20, 32, false);
    dmacopy_host_close(&dc);
    stop(bridge_fast);

    /* dmacopy as its own simulator process */
    snprintf(spec, sizeof(spec), "bench2:external=%s", p.model);
    pid_t bridge_ext = spawn_bridge(&p, sock_ext, spec, "strict", &ring_adaptive);
    pid_t runner = spawn_runner(&p, sock_ext, "bench2");
    wait_for_simulator(sock_ext, "bench2");
    open_device(&dc, sock_ext, "bench2", false, 128, 512, &ring_adaptive, NULL);
    double ext_p50;
    mmio_read_latency(&dc, &ext_p50, NULL);
    dmacopy_host_close(&dc);
    double sync_ext_p99, sync_ext_p50 = grant_rtt_p50(sock_ext, "bench2", &sync_ext_p99);
    stop(runner);
    stop(bridge_ext);

    struct peer_result peer;
    run_peer(&p, tmpl, &peer);
    rmdir(tmpl);

    printf("{\n"
           "  \"iterations\": %d,\n"
           "  \"socket_rtt_us_p50\": %.2f,\n"
           "  \"relay_rtt_us_p50\": %.2f,\n"
           "  \"mmio_read_rtt_us_p50\": %.2f,\n"
           "  \"mmio_read_rtt_us_p99\": %.2f,\n"
           "  \"mmio_read_rtt_ext_us_p50\": %.2f,\n"
           "  \"mmio_read_user_cpu_us\": %.2f,\n"
           "  \"mmio_read_cpu_us\": %.2f,\n"
           "  \"posted_writes_per_s\": %.0f,\n"
           "  \"dma_mode\": \"fast (unsplit TLPs, hlsim in-process, guest memory shared)\",\n"
           "  \"dma_MBps\": %.1f,\n"
           "  \"dma_msg_MBps\": %.1f,\n"
           "  \"dma_strict_MBps\": %.1f,\n"
           "  \"dma_strict_shm_MBps\": %.1f,\n"
           "  \"dma_strict_tlps_per_s\": %.0f,\n"
           "  \"msix_per_s\": %.0f,\n"
           "  \"sync_rtt_us_p50\": %.2f,\n"
           "  \"sync_rtt_us_p99\": %.2f,\n"
           "  \"sync_rtt_ext_us_p50\": %.2f,\n"
           "  \"sync_rtt_ext_us_p99\": %.2f,\n"
           "  \"ratio_sync_to_mmio\": %.2f,\n"
           "  \"ratio_mmio_to_socket\": %.2f,\n"
           "  \"ratio_mmio_ext_to_relay\": %.2f,\n"
           "  \"ratio_posted_writes_to_socket_rate\": %.2f,\n",
           iterations, socket_p50, relay_p50, mmio_p50, mmio_p99, ext_p50, read_user_cpu_us, read_cpu_us, writes, fast / 1e6,
           fast_msg / 1e6, strict / 1e6, strict_shm / 1e6, strict_tlps, msix, sync_p50, sync_p99,
           sync_ext_p50, sync_ext_p99,
           sync_p50 / mmio_p50, mmio_p50 / socket_p50, ext_p50 / relay_p50,
           writes / (1e6 / socket_p50));
    const struct {
        const struct ring_mode *mode;
        const struct mmio_figures *f;
    } modes[] = {{&ring_off, &off}, {&ring_busy_poll, &busy}, {&ring_sleep, &sleeping}};
    for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        const char *m = modes[i].mode->name;
        printf("  \"mmio_read_rtt_us_p50_%s\": %.2f,\n"
               "  \"mmio_read_rtt_us_p99_%s\": %.2f,\n"
               "  \"mmio_read_user_cpu_us_%s\": %.2f,\n"
               "  \"mmio_read_cpu_us_%s\": %.2f,\n",
               m, modes[i].f->p50, m, modes[i].f->p99, m, modes[i].f->user_cpu_us, m,
               modes[i].f->cpu_us);
    }
    printf("  \"peer_vfio_user\": \"%s\",\n", peer.status);
    print_peer_number("peer_vfio_user_read_rtt_us_p50", peer.measured, peer.read_p50, 2, false);
    print_peer_number("peer_vfio_user_dma_shm_MBps", peer.measured, peer.dma_shm, 1, false);
    print_peer_number("peer_vfio_user_dma_msg_MBps", peer.measured, peer.dma_msg, 1, false);
    print_peer_number("ratio_mmio_to_peer_read", peer.measured,
                      peer.measured ? mmio_p50 / peer.read_p50 : 0, 2, false);
    print_peer_number("ratio_mmio_busy_to_peer_read", peer.measured,
                      peer.measured ? busy.p50 / peer.read_p50 : 0, 2, true);
    printf("}\n");
    return 0;
}
