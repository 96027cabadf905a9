/* The client of tlpb-bench's peer measurement: speaks the vfio-user
 * protocol (the one QEMU's vfio-user client speaks) to
 * vfio-user-peer-server over its unix socket and measures the same kind of
 * work tlpb-bench measures for tlpbridge:
 *   - a 4-byte BAR0 read, value checked, N times (latency median);
 *   - 64 KiB copies by the device's DMA (read 64 KiB of client memory, write
 *     it back elsewhere), once with the memory shared (DMA_MAP with a memfd:
 *     the device copies through the mapping) and once without (the device's
 *     reads and writes come to this client as VFIO_USER_DMA_READ/WRITE
 *     messages). Each copy's data is checked outside its timed interval;
 *     throughput is bytes copied per second of copy time.
 *
 * usage: vfio-user-peer-client --socket PATH [--iterations N] [--dma-bytes B]
 * Prints one JSON object: read_rtt_us_p50, dma_shm_MBps, dma_msg_MBps. */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench_stats.h"
#include "libvfio-user.h"
#include "peer_regs.h"
#include "tlpb/wire.h"
#include "vfio-user.h"

#define SLOTS 4u                      /* 64 KiB source slots, then as many destinations */
#define REGION_BYTES (2 * SLOTS * PEER_COPY_MAX) /* the client memory of each kind */
#define SHM_IOVA 0x10000000ull        /* shared: passed as a memfd */
#define MSG_IOVA 0x20000000ull        /* not shared: served by messages */
#define MAX_XFER (1u << 20)           /* what the client takes per DMA message */

static int sock;
static uint16_t next_msg_id;
static uint8_t *msg_region;           /* the memory behind MSG_IOVA */
static uint8_t *rx;                   /* one incoming message body */

static void die(const char *what)
{
    fprintf(stderr, "vfio-user-peer-client: %s%s%s\n", what, errno ? ": " : "",
            errno ? strerror(errno) : "");
    exit(1);
}

static void read_all(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = recv(sock, p, len, MSG_WAITALL);
        if (n <= 0) {
            if (n == 0)
                errno = ECONNRESET;
            if (n < 0 && errno == EINTR)
                continue;
            die("receive from the server");
        }
        p += n;
        len -= (size_t)n;
    }
}

/* One message: header, then up to two body parts, with an fd if fd >= 0. */
static void send_msg(uint16_t msg_id, uint16_t cmd, bool reply, const void *a, size_t alen,
                     const void *b, size_t blen, int fd)
{
    struct vfio_user_header h = {.msg_id = msg_id, .cmd = cmd,
                                 .msg_size = (uint32_t)(sizeof(h) + alen + blen)};
    h.flags.type = reply ? VFIO_USER_F_TYPE_REPLY : VFIO_USER_F_TYPE_COMMAND;
    struct iovec iov[3] = {{&h, sizeof(h)}, {(void *)a, alen}, {(void *)b, blen}};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 3};
    if (fd >= 0) {
        m.msg_control = control.buf;
        m.msg_controllen = sizeof(control.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    size_t total = h.msg_size;
    ssize_t n = sendmsg(sock, &m, MSG_NOSIGNAL);
    if (n < 0 || (size_t)n != total)
        die("send to the server"); /* a unix stream socket sends it whole or fails */
}

/* The server's DMA through messages: serve it from msg_region. */
static void serve_dma(const struct vfio_user_header *h, size_t body)
{
    struct vfio_user_dma_region_access a;
    if (body < sizeof(a))
        die("short DMA message");
    memcpy(&a, rx, sizeof(a));
    if (a.addr < MSG_IOVA || a.count > REGION_BYTES || a.addr - MSG_IOVA > REGION_BYTES - a.count)
        die("DMA outside the client's message region");
    uint8_t *mem = msg_region + (a.addr - MSG_IOVA);
    if (h->cmd == VFIO_USER_DMA_WRITE) {
        if (body != sizeof(a) + a.count)
            die("DMA write with a wrong length");
        memcpy(mem, rx + sizeof(a), a.count);
        send_msg(h->msg_id, h->cmd, true, &a, sizeof(a), NULL, 0, -1);
    } else {
        send_msg(h->msg_id, h->cmd, true, &a, sizeof(a), mem, a.count, -1);
    }
}

/* Send a command and wait for its reply, serving the server's DMA messages
 * that come first. Returns the reply body's length (in rx). */
static size_t call(uint16_t cmd, const void *a, size_t alen, const void *b, size_t blen, int fd)
{
    uint16_t id = next_msg_id++;
    send_msg(id, cmd, false, a, alen, b, blen, fd);
    for (;;) {
        struct vfio_user_header h;
        read_all(&h, sizeof(h));
        if (h.msg_size < sizeof(h) || h.msg_size - sizeof(h) > sizeof(struct vfio_user_dma_region_access) + MAX_XFER)
            die("message of a wrong size from the server");
        size_t body = h.msg_size - sizeof(h);
        read_all(rx, body);
        if (h.flags.type == VFIO_USER_F_TYPE_COMMAND &&
            (h.cmd == VFIO_USER_DMA_READ || h.cmd == VFIO_USER_DMA_WRITE)) {
            serve_dma(&h, body);
            continue;
        }
        if (h.flags.type != VFIO_USER_F_TYPE_REPLY || h.msg_id != id || h.cmd != cmd)
            die("unexpected message from the server");
        if (h.flags.error) {
            errno = (int)h.error_no;
            die("the server answered with an error");
        }
        return body;
    }
}

static void negotiate(void)
{
    struct vfio_user_version v = {.major = LIB_VFIO_USER_MAJOR, .minor = LIB_VFIO_USER_MINOR};
    char caps[128];
    int n = snprintf(caps, sizeof(caps),
                     "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":%u}}", MAX_XFER);
    call(VFIO_USER_VERSION, &v, sizeof(v), caps, (size_t)n + 1, -1);
}

static void dma_map(uint64_t iova, uint64_t size, int fd)
{
    struct vfio_user_dma_map m = {.argsz = sizeof(m), .offset = 0, .addr = iova, .size = size,
                                  .flags = VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE};
    call(VFIO_USER_DMA_MAP, &m, sizeof(m), NULL, 0, fd);
}

static uint32_t bar0_read32(uint64_t offset)
{
    struct vfio_user_region_access a = {.offset = offset, .region = VFU_PCI_DEV_BAR0_REGION_IDX,
                                        .count = 4};
    size_t body = call(VFIO_USER_REGION_READ, &a, sizeof(a), NULL, 0, -1);
    if (body != sizeof(a) + 4)
        die("region read reply of a wrong length");
    uint32_t v;
    memcpy(&v, rx + sizeof(a), 4);
    return v;
}

static void bar0_write(uint64_t offset, const void *data, uint32_t len)
{
    struct vfio_user_region_access a = {.offset = offset, .region = VFU_PCI_DEV_BAR0_REGION_IDX,
                                        .count = len};
    call(VFIO_USER_REGION_WRITE, &a, sizeof(a), data, len, -1);
}

static double read_rtt_p50(int iterations)
{
    const uint32_t value = 0x5A5A0000u;
    bar0_write(PEER_REG_SCRATCH, &value, 4);
    uint64_t *lat = calloc((size_t)iterations, sizeof(*lat));
    if (!lat)
        die("calloc");
    for (int i = 0; i < iterations + 1000; i++) {
        uint64_t t0 = tlpb_now_ns();
        uint32_t v = bar0_read32(PEER_REG_SCRATCH);
        uint64_t dt = tlpb_now_ns() - t0;
        if (v != value)
            die("BAR0 SCRATCH read back wrong");
        if (i >= 1000) /* warm-up excluded */
            lat[i - 1000] = dt;
    }
    double p50 = bench_percentile_us(lat, iterations, 0.5);
    free(lat);
    return p50;
}

/* 64 KiB copies from the source slots to the destination slots of the
 * region at iova (client memory mem), `copies` of them. Before each copy
 * the source slot gets a new stamp, so a copy that moved stale data fails
 * the check. */
static double copy_MBps(uint64_t iova, uint8_t *mem, uint64_t copies)
{
    const uint64_t len = PEER_COPY_MAX;
    for (uint64_t i = 0; i < REGION_BYTES; i++)
        mem[i] = (uint8_t)(i * 7 + 3);
    uint64_t busy_ns = 0;
    for (uint64_t i = 0; i < copies; i++) {
        uint64_t slot = i % SLOTS;
        uint8_t *src = mem + slot * len, *dst = mem + (SLOTS + slot) * len;
        memcpy(src, &i, sizeof(i));
        memcpy(src + len - sizeof(i), &i, sizeof(i));
        struct peer_copy_desc d = {.src = iova + slot * len, .dst = iova + (SLOTS + slot) * len,
                                   .len = len};
        uint64_t t0 = tlpb_now_ns();
        bar0_write(PEER_REG_COPY, &d, sizeof(d));
        busy_ns += tlpb_now_ns() - t0;
        if (memcmp(src, dst, len) != 0)
            die("DMA copy data wrong");
    }
    return (double)(copies * len) / ((double)busy_ns / 1e9) / 1e6;
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL;
    int iterations = 20000;
    unsigned long long dma_bytes = 256ull << 20;
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"iterations", required_argument, NULL, 'n'},
                                         {"dma-bytes", required_argument, NULL, 'd'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "s:n:d:", opts, NULL)) != -1) {
        if (ch == 's')
            socket_path = optarg;
        else if (ch == 'n')
            iterations = atoi(optarg);
        else if (ch == 'd')
            dma_bytes = strtoull(optarg, NULL, 0);
        else
            socket_path = NULL, optind = argc + 1;
    }
    if (!socket_path || optind > argc || iterations < 1 || dma_bytes < PEER_COPY_MAX ||
        strlen(socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "usage: vfio-user-peer-client --socket PATH [--iterations N>0]"
                        " [--dma-bytes B>=65536]\n");
        return 2;
    }
    rx = malloc(sizeof(struct vfio_user_dma_region_access) + MAX_XFER);
    msg_region = malloc(REGION_BYTES);
    if (!rx || !msg_region)
        die("malloc");
    int shm_fd = memfd_create("vfio-user-peer-dma", MFD_CLOEXEC);
    if (shm_fd < 0 || ftruncate(shm_fd, REGION_BYTES) != 0)
        die("memfd for the shared DMA region");
    uint8_t *shm = mmap(NULL, REGION_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
    if (shm == MAP_FAILED)
        die("mmap the shared DMA region");

    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, socket_path);
    sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof(addr)) != 0)
        die("connect to the server");
    negotiate();
    dma_map(SHM_IOVA, REGION_BYTES, shm_fd);
    /* One region per slot: this libvfio-user's message DMA (vfu_dma_transfer)
     * sends the region's start address, not the transfer's, so a transfer
     * lands right only at the start of a region. */
    for (uint64_t slot = 0; slot < 2 * SLOTS; slot++)
        dma_map(MSG_IOVA + slot * PEER_COPY_MAX, PEER_COPY_MAX, -1);

    double read_p50 = read_rtt_p50(iterations);
    uint64_t copies = dma_bytes / PEER_COPY_MAX;
    double shm_MBps = copy_MBps(SHM_IOVA, shm, copies);
    double msg_MBps = copy_MBps(MSG_IOVA, msg_region, copies);
    close(sock);
    printf("{\"read_rtt_us_p50\": %.2f, \"dma_shm_MBps\": %.1f, \"dma_msg_MBps\": %.1f}\n",
           read_p50, shm_MBps, msg_MBps);
    return 0;
}
