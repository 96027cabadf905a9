/* tlpb-rtl-bench: the RTL backend's numbers, in one run, as one JSON
 * object (built with -DTLPB_BUILD_RTL=ON; see docs/performance.md):
 *   - simulated cycles per second of dmacopy-rtl-sim attached and idle, and
 *     the CPU it uses meanwhile (the adapter sleeps on its socket);
 *   - the same under continuous 64 KiB copies, with the DMA throughput;
 *   - MMIO read round trip (p50, p99) with the RTL simulator attached;
 *   - with --max-cycles-per-s N, the copies and the round trips again with
 *     the simulator capped at N cycles per wall second (as a large design
 *     would simulate), side by side with the uncapped numbers.
 * Each phase runs its own simulator process; its cycle count comes from the
 * report it prints when it exits. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dmacopy_host.h"
#include "harness.h"
#include "tlpb/wire.h"

static int iterations = 2000;
static unsigned idle_seconds = 2;
static unsigned dma_mib = 16;
static unsigned long long max_cycles_per_s; /* 0: no capped phases */
#define CAPPED_MMIO_ITERATIONS 100
#define CAPPED_LOAD_SECONDS 3

struct paths {
    char bridge[PATH_MAX];
    char model[PATH_MAX];
    char sim[PATH_MAX];
    char dir[64];
};

static pid_t children[2]; /* the bridge and the simulator, killed on failure */

static void die(const char *what)
{
    fprintf(stderr, "tlpb-rtl-bench: %s\n", what);
    for (unsigned i = 0; i < 2; i++)
        if (children[i] > 0)
            kill(children[i], SIGKILL);
    exit(1);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static pid_t spawn_bridge(const struct paths *p, const char *socket_path, const char *spec)
{
    const char *argv[] = {p->bridge, "--listen", socket_path, "--device", spec,
                          "--log-level", "warn", NULL};
    bool ready;
    pid_t pid = it_spawn_ready(argv, NULL, NULL, IT_DEADLINE_MS, &ready);
    if (pid < 0)
        die("fork");
    children[0] = pid;
    if (!ready)
        die("tlpbridged did not start");
    return pid;
}

/* The simulator's stderr goes to log_path: its exit report is parsed.
 * cap: --max-cycles-per-s, 0 for none. */
static pid_t spawn_sim(const struct paths *p, const char *socket_path, const char *log_path,
                       unsigned long long cap)
{
    char cap_text[32];
    snprintf(cap_text, sizeof(cap_text), "%llu", cap);
    const char *argv[] = {p->sim, "--socket", socket_path, "--device", "rtl0",
                          cap ? "--max-cycles-per-s" : NULL, cap_text, NULL};
    pid_t pid = it_spawn(argv, NULL, log_path, -1);
    if (pid < 0)
        die("fork");
    children[1] = pid;
    return pid;
}

struct sim_report {
    unsigned long long cycles;
    double seconds;
    double asleep_seconds;
    double cpu_seconds;
};

/* cap: the --max-cycles-per-s the simulator must report, 0 for none. */
static void stop_sim(pid_t pid, const char *log_path, unsigned long long cap,
                     struct sim_report *r)
{
    struct rusage ru;
    int status;
    kill(pid, SIGTERM);
    if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("the RTL simulator did not exit cleanly");
    children[1] = 0;
    r->cpu_seconds = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    FILE *f = fopen(log_path, "r");
    char line[2048];
    bool found = false;
    while (f && fgets(line, sizeof(line), f)) {
        const char *at = strstr(line, "simulated ");
        if (!at)
            continue;
        const char *in = strstr(at, " in ");
        const char *asleep = strstr(at, "cycles/s while not asleep (");
        if (!in || !asleep)
            continue;
        r->cycles = strtoull(at + strlen("simulated "), NULL, 10);
        r->seconds = strtod(in + 4, NULL);
        r->asleep_seconds = strtod(asleep + strlen("cycles/s while not asleep ("), NULL);
        const char *capped = strstr(at, "; capped at ");
        found = cap ? capped && strtoull(capped + strlen("; capped at "), NULL, 10) == cap
                    : !capped;
    }
    if (f)
        fclose(f);
    if (!found)
        die(cap ? "no report of the cycle cap in the RTL simulator's log"
                : "no report in the RTL simulator's log");
}

static void open_device(struct dmacopy_host *dc, const char *socket_path)
{
    struct dmacopy_host_options o = {.socket = socket_path, .device = "rtl0",
                                     .ram_bytes = 64u << 20, .ring_size = 256,
                                     .max_payload = 128, .max_read_request = 512};
    char err[512];
    if (dmacopy_host_open(dc, &o, err, sizeof(err)) != 0)
        die(err);
}

static int no_dma_read(void *opaque, uint64_t addr, void *buf, uint32_t len)
{
    return 1; /* UR: nothing is guest memory while waiting */
}

static int no_dma_write(void *opaque, uint64_t addr, const void *buf, uint32_t len)
{
    return 1;
}

static void no_interrupt(void *opaque, enum tlpb_host_irq_kind kind, unsigned vector)
{
}

/* Wait (as a bare host, before any register access) until the simulator
 * is attached, then set the device up against it. */
static void attach(struct dmacopy_host *dc, const char *socket_path)
{
    struct tlpb_host_config cfg = {.address = socket_path, .device_name = "rtl0",
                                   .read_timeout_ms = 30000, .reconnect_interval_ms = 100};
    struct tlpb_host_ops ops = {.dma_read = no_dma_read, .dma_write = no_dma_write,
                                .interrupt = no_interrupt};
    struct tlpb_host *h;
    char err[256];
    if (tlpb_host_open(&h, &cfg, &ops, NULL, err, sizeof(err)) != 0)
        die(err);
    uint64_t deadline = tlpb_now_ns() + 30000000000ull;
    while (!tlpb_host_simulator_attached(h) && tlpb_now_ns() < deadline)
        tlpb_host_wait(h, 100);
    if (!tlpb_host_simulator_attached(h))
        die("the RTL simulator did not attach");
    tlpb_host_close(h);
    open_device(dc, socket_path);
}

/* `reads` reads timed, after `warmup` untimed ones */
static void mmio_latency(struct dmacopy_host *dc, int reads, int warmup, double *p50,
                         double *p99)
{
    uint64_t *lat = calloc((size_t)reads, sizeof(*lat));
    if (!lat)
        die("out of memory");
    dmacopy_write32(dc, DMACOPY_REG_SCRATCH, 0x5A5A0000u);
    for (int i = 0; i < reads + warmup; i++) {
        uint64_t t0 = tlpb_now_ns();
        uint32_t v = dmacopy_read32(dc, DMACOPY_REG_SCRATCH);
        uint64_t dt = tlpb_now_ns() - t0;
        if (v != 0x5A5A0000u)
            die("SCRATCH read back wrong");
        if (i >= warmup)
            lat[i - warmup] = dt;
    }
    qsort(lat, (size_t)reads, sizeof(*lat), cmp_u64);
    *p50 = (double)lat[reads / 2] / 1e3;
    *p99 = (double)lat[(int)(0.99 * (reads - 1))] / 1e3;
    free(lat);
}

/* 64 KiB copies, up to 8 queued, checked by CRC and data. Returns bytes/s. */
static double dma_throughput(struct dmacopy_host *dc, uint64_t total)
{
    const uint32_t len = 64 * 1024;
    char err[256];
    double seconds;
    if (dmacopy_copy_stream(dc, len, 16, 8, total / len, &seconds, err, sizeof(err)) != 0)
        die(err);
    return (double)(total / len * len) / seconds;
}

static void locate(struct paths *p, const char *build_dir)
{
    if (strlen(build_dir) > PATH_MAX - 64)
        die("build directory path too long");
    snprintf(p->bridge, sizeof(p->bridge), "%.*s/bridge/tlpbridged", PATH_MAX - 64, build_dir);
    snprintf(p->model, sizeof(p->model), "%.*s/examples/libdmacopy.so", PATH_MAX - 64, build_dir);
    snprintf(p->sim, sizeof(p->sim), "%.*s/examples/dmacopy/rtl/dmacopy-rtl-sim", PATH_MAX - 64,
             build_dir);
    if (access(p->bridge, X_OK) || access(p->model, R_OK) || access(p->sim, X_OK)) {
        fprintf(stderr, "tlpb-rtl-bench: cannot find tlpbridged, libdmacopy.so and "
                        "dmacopy-rtl-sim under %s (build with -DTLPB_BUILD_RTL=ON, or give "
                        "--build-dir)\n", build_dir);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    const char *build_dir = NULL;
    static const struct option opts[] = {{"build-dir", required_argument, NULL, 'b'},
                                         {"iterations", required_argument, NULL, 'n'},
                                         {"idle-seconds", required_argument, NULL, 'i'},
                                         {"dma-mib", required_argument, NULL, 'm'},
                                         {"max-cycles-per-s", required_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "b:n:i:m:c:", opts, NULL)) != -1) {
        if (ch == 'b')
            build_dir = optarg;
        else if (ch == 'n')
            iterations = atoi(optarg) > 100 ? atoi(optarg) : 100;
        else if (ch == 'i')
            idle_seconds = atoi(optarg) > 0 ? (unsigned)atoi(optarg) : 1;
        else if (ch == 'm')
            dma_mib = atoi(optarg) > 0 ? (unsigned)atoi(optarg) : 1;
        else if (ch == 'c') {
            char *end;
            errno = 0;
            max_cycles_per_s = strtoull(optarg, &end, 10);
            /* the simulator refuses what it cannot pace; 0 would be no cap */
            if (optarg[0] < '1' || optarg[0] > '9' || *end || errno) {
                fprintf(stderr, "tlpb-rtl-bench: --max-cycles-per-s takes a cycle count per"
                                " wall second above 0, not '%s'\n", optarg);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: tlpb-rtl-bench [--build-dir DIR] [--iterations N]"
                            " [--idle-seconds S] [--dma-mib M] [--max-cycles-per-s N]\n");
            return 2;
        }
    }
    char self_dir[PATH_MAX];
    if (!build_dir) {
        ssize_t n = readlink("/proc/self/exe", self_dir, sizeof(self_dir) - 1);
        if (n <= 0)
            die("cannot locate the build directory; give --build-dir");
        self_dir[n] = '\0';
        *strrchr(self_dir, '/') = '\0'; /* .../build/bench */
        *strrchr(self_dir, '/') = '\0'; /* .../build */
        build_dir = self_dir;
    }
    signal(SIGPIPE, SIG_IGN);
    struct paths p;
    locate(&p, build_dir);
    snprintf(p.dir, sizeof(p.dir), "/tmp/tlpb-rtl-bench.XXXXXX");
    if (!mkdtemp(p.dir))
        die("mkdtemp");
    char sock[PATH_MAX], log[PATH_MAX], spec[PATH_MAX + 32];
    snprintf(sock, sizeof(sock), "%s/bridge.sock", p.dir);
    snprintf(log, sizeof(log), "%s/sim.log", p.dir);
    snprintf(spec, sizeof(spec), "rtl0:external=%s", p.model);
    pid_t bridge = spawn_bridge(&p, sock, spec);
    struct dmacopy_host dc;
    struct sim_report idle, load, mmio;

    /* 1: attached and idle (the benchmark sleeps: nothing is asked of the
     * device meanwhile). */
    pid_t sim = spawn_sim(&p, sock, log, 0);
    attach(&dc, sock);
    struct timespec ts = {.tv_sec = idle_seconds};
    nanosleep(&ts, NULL);
    dmacopy_host_close(&dc);
    stop_sim(sim, log, 0, &idle);

    /* 2: MMIO read round trips. */
    sim = spawn_sim(&p, sock, log, 0);
    attach(&dc, sock);
    double p50, p99;
    mmio_latency(&dc, iterations, 100, &p50, &p99);
    dmacopy_host_close(&dc);
    stop_sim(sim, log, 0, &mmio);

    /* 3: continuous 64 KiB copies. */
    sim = spawn_sim(&p, sock, log, 0);
    attach(&dc, sock);
    double dma = dma_throughput(&dc, (uint64_t)dma_mib << 20);
    dmacopy_host_close(&dc);
    stop_sim(sim, log, 0, &load);
    double bytes_per_cycle = (double)((uint64_t)dma_mib << 20) / (double)load.cycles;

    /* 4, 5 (with a cap): round trips and copies again, capped. The copies
     * are sized from the uncapped bytes per cycle to last about
     * CAPPED_LOAD_SECONDS at the cap (whole 64 KiB copies, at most
     * --dma-mib). */
    struct sim_report capped_load = {0}, capped_mmio = {0};
    double capped_p50 = 0, capped_p99 = 0, capped_dma = 0;
    uint64_t capped_bytes = 0;
    if (max_cycles_per_s) {
        sim = spawn_sim(&p, sock, log, max_cycles_per_s);
        attach(&dc, sock);
        mmio_latency(&dc, CAPPED_MMIO_ITERATIONS, 10, &capped_p50, &capped_p99);
        dmacopy_host_close(&dc);
        stop_sim(sim, log, max_cycles_per_s, &capped_mmio);

        double want = bytes_per_cycle * (double)max_cycles_per_s * CAPPED_LOAD_SECONDS;
        uint64_t copies = (uint64_t)(want / (64 * 1024)) + 1;
        if (copies > ((uint64_t)dma_mib << 20) / (64 * 1024))
            copies = ((uint64_t)dma_mib << 20) / (64 * 1024);
        capped_bytes = copies * 64 * 1024;
        sim = spawn_sim(&p, sock, log, max_cycles_per_s);
        attach(&dc, sock);
        capped_dma = dma_throughput(&dc, capped_bytes);
        dmacopy_host_close(&dc);
        stop_sim(sim, log, max_cycles_per_s, &capped_load);
    }

    kill(bridge, SIGTERM);
    waitpid(bridge, NULL, 0);
    children[0] = 0;
    unlink(log);
    rmdir(p.dir);

    printf("{\n"
           "  \"rtl_simulator\": \"dmacopy-rtl-sim (Verilator, 128-bit streams)\",\n"
           "  \"idle_seconds\": %.2f,\n"
           "  \"idle_cycles_per_s\": %.0f,\n"
           "  \"idle_cpu_percent\": %.1f,\n"
           "  \"load_dma_MiB\": %u,\n"
           "  \"load_cycles_per_s\": %.0f,\n"
           "  \"load_cycles_per_s_awake\": %.0f,\n"
           "  \"load_cpu_percent\": %.1f,\n"
           "  \"dma_MBps\": %.2f,\n"
           "  \"dma_bytes_per_cycle\": %.2f,\n"
           "  \"mmio_iterations\": %d,\n"
           "  \"mmio_read_rtt_us_p50\": %.2f,\n"
           "  \"mmio_read_rtt_us_p99\": %.2f%s\n",
           idle.seconds, idle.cycles / idle.seconds, 100.0 * idle.cpu_seconds / idle.seconds,
           dma_mib, load.cycles / load.seconds,
           load.cycles / (load.seconds - load.asleep_seconds),
           100.0 * load.cpu_seconds / load.seconds, dma / 1e6,
           bytes_per_cycle, iterations, p50, p99, max_cycles_per_s ? "," : "");
    if (max_cycles_per_s)
        printf("  \"capped\": {\n"
               "    \"max_cycles_per_s\": %llu,\n"
               "    \"load_dma_KiB\": %llu,\n"
               "    \"load_cycles_per_s\": %.0f,\n"
               "    \"load_cycles_per_s_awake\": %.0f,\n"
               "    \"load_cpu_percent\": %.1f,\n"
               "    \"dma_MBps\": %.3f,\n"
               "    \"dma_bytes_per_cycle\": %.2f,\n"
               "    \"mmio_iterations\": %d,\n"
               "    \"mmio_read_rtt_us_p50\": %.2f,\n"
               "    \"mmio_read_rtt_us_p99\": %.2f\n"
               "  }\n",
               max_cycles_per_s, (unsigned long long)(capped_bytes >> 10),
               capped_load.cycles / capped_load.seconds,
               capped_load.cycles / (capped_load.seconds - capped_load.asleep_seconds),
               100.0 * capped_load.cpu_seconds / capped_load.seconds, capped_dma / 1e6,
               (double)capped_bytes / (double)capped_load.cycles, CAPPED_MMIO_ITERATIONS,
               capped_p50, capped_p99);
    printf("}\n");
    return 0;
}
