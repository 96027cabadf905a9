/* The bridge's connection handling, from the socket in: a whole tlpbridged
 * (its own sources, its libuv loop) serves up to two peers connected through
 * socketpairs, and the fuzz input is what those peers send. Each input gets
 * a freshly started bridge, so a crash reproduces from its input alone, and
 * the bridge is stopped afterwards with every handle closed (leaks show).
 *
 * Devices: "dev0" (external backend: a peer may attach as its simulator and
 * answer the requests another peer sends as host), "dev1" (fallback, UR
 * reads, fast DMA allowed) and "dev2" (external, zero reads, fast DMA).
 *
 * Input: records of header(1) length(2, little-endian) bytes. Header bit 0
 * picks the peer; bit 1 ends that peer's sending after the record (EOF);
 * bit 2 then lets the bridge's timers due within 100 ms fire (request
 * timeouts: the devices' are 20 ms). The bridge is run until it has consumed
 * each record before the next one is sent, so the two peers' messages
 * interleave as the input says. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"
#include "dmacopy_description.h"
#include "fuzz_check.h"

#define PEERS 2

static uv_loop_t loop;
static struct bridge_config cfg;
static struct bridge bridge;
static char dir[] = "/tmp/tlpb-fuzz-bridge-XXXXXX";

struct peer {
    int fd;           /* our end */
    bool write_shut;
    bool eof;         /* the bridge closed its end */
};

static void remove_dir(void)
{
    unlink(cfg.listen_path);
    rmdir(dir);
}

static void add_device(const char *name, enum backend_kind backend, enum fallback_read rd,
                       bool fast)
{
    struct device_config *dc = &cfg.devices[cfg.device_count++];
    snprintf(dc->name, sizeof(dc->name), "%s", name);
    dc->backend = backend;
    dc->fallback_read = rd;
    dc->fast_dma = fast;
    /* Short: a request a fuzzed simulator never answers times out quickly. */
    dc->timeout_ms = 20;
    dc->has_description = true;
    dc->description = (struct tlpb_devdesc)DMACOPY_DESCRIPTION;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    signal(SIGPIPE, SIG_IGN);
    /* The log is off unless asked for: a fuzz run would write megabytes. */
    bridge_log_level = getenv("TLPB_FUZZ_LOG") ? TLPB_LOG_DEBUG : -1;
    FUZZ_CHECK(mkdtemp(dir) != NULL);
    snprintf(cfg.listen_path, sizeof(cfg.listen_path), "%s/bridge.sock", dir);
    add_device("dev0", BACKEND_EXTERNAL, FALLBACK_READ_ONES, false);
    add_device("dev1", BACKEND_FALLBACK, FALLBACK_READ_UR, true);
    add_device("dev2", BACKEND_EXTERNAL, FALLBACK_READ_ZEROS, true);
    char err[256];
    FUZZ_CHECK(bridge_config_check(&cfg, err, sizeof(err)) == 0);
    FUZZ_CHECK(uv_loop_init(&loop) == 0);
    atexit(remove_dir);
    return 0;
}

/* Read and discard what the bridge sent to our ends. */
static void drain(struct peer *peers)
{
    static char sink[65536];
    for (unsigned i = 0; i < PEERS; i++) {
        while (!peers[i].eof) {
            ssize_t n = read(peers[i].fd, sink, sizeof(sink));
            if (n > 0)
                continue;
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                peers[i].eof = true;
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
    }
}

/* Whether the bridge has read everything sent so far (or will not read on:
 * paused for backpressure, or closing). */
static bool consumed(void)
{
    for (struct conn *c = bridge.conns; c; c = c->next) {
        uv_os_fd_t fd;
        int pending = 0;
        if (c->closing || c->read_paused || uv_fileno(&c->h.handle, &fd) != 0)
            continue;
        if (ioctl(fd, FIONREAD, &pending) == 0 && pending > 0)
            return false;
    }
    return true;
}

static void pump(struct peer *peers)
{
    for (unsigned round = 0; round < 64; round++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        drain(peers);
        if (consumed())
            break;
    }
}

/* Let time pass for what the bridge waits on: timers due soon (a timer a
 * peer set far away, say with a long completion timeout, is not waited
 * for: that would be the fuzzer hanging, not the bridge). */
static void run_timers(struct peer *peers)
{
    for (unsigned round = 0; round < 4; round++) {
        int wait_ms = uv_backend_timeout(&loop);
        if (wait_ms < 0 || wait_ms > 100)
            break;
        drain(peers);
        uv_run(&loop, UV_RUN_ONCE);
    }
    pump(peers);
}

static void send_bytes(struct peer *peers, struct peer *p, const uint8_t *data, size_t len)
{
    while (len > 0 && !p->eof) {
        ssize_t n = write(p->fd, data, len);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return; /* the bridge closed on us */
        pump(peers);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    memset(&bridge, 0, sizeof(bridge));
    FUZZ_CHECK(bridge_start(&bridge, &loop, &cfg, err, sizeof(err)) == 0);

    struct peer peers[PEERS];
    for (unsigned i = 0; i < PEERS; i++) {
        int sv[2];
        FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
        FUZZ_CHECK(bridge_adopt_fd(&bridge, sv[0]) == 0);
        peers[i] = (struct peer){.fd = sv[1]};
    }

    while (size >= 3) {
        unsigned header = data[0];
        size_t len = (size_t)(data[1] | data[2] << 8);
        data += 3;
        size -= 3;
        if (len > size)
            len = size;
        struct peer *p = &peers[header & 1];
        if (!p->write_shut)
            send_bytes(peers, p, data, len);
        data += len;
        size -= len;
        if ((header & 2) && !p->write_shut) {
            shutdown(p->fd, SHUT_WR);
            p->write_shut = true;
        }
        pump(peers);
        if (header & 4)
            run_timers(peers);
    }

    /* Every peer hangs up; the bridge must close both connections. A
     * connection it keeps open with nothing left to do is a hang, which
     * libFuzzer reports (-timeout). */
    for (unsigned i = 0; i < PEERS; i++)
        if (!peers[i].write_shut)
            shutdown(peers[i].fd, SHUT_WR);
    while (bridge.conns) {
        drain(peers);
        uv_run(&loop, UV_RUN_ONCE);
    }
    for (unsigned i = 0; i < PEERS; i++)
        close(peers[i].fd);

    bridge_stop(&bridge);
    for (unsigned round = 0; round < 16 && uv_loop_alive(&loop); round++)
        uv_run(&loop, UV_RUN_NOWAIT);
    /* Nothing of this input may outlive it in the loop. */
    if (uv_loop_alive(&loop)) {
        fprintf(stderr, "handles left active after bridge_stop:\n");
        uv_print_active_handles(&loop, stderr);
    }
    FUZZ_CHECK(!uv_loop_alive(&loop));
    return 0;
}
