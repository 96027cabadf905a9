/* libtlpbhost's shared guest memory and shared-memory ring against a
 * scripted bridge (a thread playing the bridge by hand: recvmsg for the
 * descriptors, the ring attached as the bridge attaches it), for what the
 * real bridge cannot be made to show on cue:
 * - the GuestMemory frame arrives with its descriptors, and they map to the
 *   caller's bytes; an empty map withdraws it; a reconnect sends it again;
 * - a bridge that does not grant the capabilities gets no descriptors;
 * - no descriptor of the caller's is kept after close. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dmacopy_suite.h"
#include "harness.h"
#include "raw_peer.h"
#include "tlpb/byteorder.h"
#include "tlpb/wire.h"

#define MAX_CONNS 2
#define MAX_MAPS 4
#define MEMFD_BYTES (2u * 1024u * 1024u)
#define READ_VALUE 0x5A17C0DEu

/* The byte the test stores at offset off of its guest-RAM memfd. */
static uint8_t pattern_byte(uint64_t off) { return (uint8_t)(off * 7u + 3u + (off >> 12)); }

/* One connection as the scripted bridge saw it. */
struct conn_seen {
    uint64_t offered;           /* Hello.capabilities */
    unsigned maps;              /* GuestMemory frames */
    unsigned map_regions[MAX_MAPS];
    bool map_bytes_ok[MAX_MAPS]; /* every region's fd mapped to the caller's bytes */
    bool map_fds_ok[MAX_MAPS];   /* fd_count descriptors came with the frame */
    unsigned fds_total;          /* descriptors received on this connection */
    unsigned reads;              /* MRd answered */
    bool map_before_read;        /* the first GuestMemory came before the first MRd */
};

struct fake_bridge {
    int listen_fd;
    uint64_t grant;             /* capabilities granted (of those offered) */
    unsigned conns;             /* connections to accept */
    bool drop_after_first_read; /* close the first connection after its first read */
    struct conn_seen seen[MAX_CONNS];
};

/* The bridge's side of one connection: frames from a stream that also
 * carries descriptors. */
struct fake_conn {
    int fd;
    struct tlpb_frame_reader rd;
    int fds[64];
    unsigned nfds;
};

/* Next message, collecting every descriptor that arrives; NULL at EOF or
 * after IT_DEADLINE_MS of silence. */
static Tlpb__Envelope *fake_next(struct fake_conn *fc)
{
    for (;;) {
        const uint8_t *frame;
        size_t len;
        const char *reason = NULL;
        int rc = tlpb_reader_next(&fc->rd, &frame, &len, &reason);
        if (rc > 0)
            return tlpb_envelope_decode(frame, len, &reason);
        if (rc < 0)
            return NULL;
        struct pollfd pfd = {.fd = fc->fd, .events = POLLIN};
        if (poll(&pfd, 1, IT_DEADLINE_MS) <= 0)
            return NULL;
        size_t space;
        uint8_t *dst = tlpb_reader_space(&fc->rd, 4096, &space);
        if (!dst)
            return NULL;
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int) * 64)];
        } control;
        struct iovec iov = {.iov_base = dst, .iov_len = space};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf)};
        ssize_t n = recvmsg(fc->fd, &msg, MSG_CMSG_CLOEXEC);
        if (n <= 0)
            return NULL;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                continue;
            unsigned k = (unsigned)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (unsigned i = 0; i < k; i++) {
                int got;
                memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                if (fc->nfds < 64)
                    fc->fds[fc->nfds++] = got;
                else
                    close(got);
            }
        }
        tlpb_reader_commit(&fc->rd, (size_t)n);
    }
}

/* Check a GuestMemory against the descriptors that came with it (all
 * descriptors received so far and not yet claimed), then close them. */
static void fake_take_map(struct fake_conn *fc, const Tlpb__GuestMemory *gm, struct conn_seen *cs)
{
    unsigned m = cs->maps++;
    if (m >= MAX_MAPS)
        return;
    cs->map_regions[m] = (unsigned)gm->n_regions;
    cs->map_fds_ok[m] = fc->nfds == gm->fd_count;
    bool bytes_ok = cs->map_fds_ok[m];
    for (size_t i = 0; bytes_ok && i < gm->n_regions; i++) {
        const Tlpb__GuestMemoryRegion *r = gm->regions[i];
        if (r->fd_index >= fc->nfds || r->size_bytes == 0 || r->size_bytes > MEMFD_BYTES) {
            bytes_ok = false;
            break;
        }
        uint8_t *p = mmap(NULL, r->fd_offset + r->size_bytes, PROT_READ, MAP_SHARED,
                          fc->fds[r->fd_index], 0);
        if (p == MAP_FAILED) {
            bytes_ok = false;
            break;
        }
        /* the test's regions: bus address 0x80000000 + fd offset */
        if (r->bus_address != GUEST_RAM_BASE + r->fd_offset)
            bytes_ok = false;
        for (uint64_t off = r->fd_offset; bytes_ok && off < r->fd_offset + r->size_bytes; off++)
            bytes_ok = p[off] == pattern_byte(off);
        munmap(p, r->fd_offset + r->size_bytes);
    }
    cs->map_bytes_ok[m] = bytes_ok;
    cs->fds_total += fc->nfds;
    for (unsigned i = 0; i < fc->nfds; i++)
        close(fc->fds[i]);
    fc->nfds = 0;
}

static void fake_answer_read(int fd, const Tlpb__Tlp *pb)
{
    struct tlpb_tlp req, cpl;
    const char *reason = NULL;
    if (tlpb_tlp_from_pb(&req, pb, &reason) != 0)
        return;
    uint8_t data[4];
    tlpb_put_le32(data, READ_VALUE);
    tlpb_completion_for(&cpl, &req, 0x0100, tlpb_tlp_first_byte_address(&req), 4, 4);
    cpl.payload = data;
    cpl.payload_bytes = 4;
    struct tlpb_obuf ob;
    tlpb_obuf_init(&ob, SIZE_MAX, TLPB_HARD_MAX_FRAME_BYTES);
    tlpb_obuf_append_tlp(&ob, &cpl, true);
    tlpb_obuf_write_all(&ob, fd);
    tlpb_obuf_free(&ob);
}

/* Serve one connection until the host hangs up (or the script drops it). */
static void fake_serve(struct fake_bridge *fb, int fd, struct conn_seen *cs, bool drop_after_read)
{
    struct fake_conn fc = {.fd = fd};
    tlpb_reader_init(&fc.rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    Tlpb__Envelope *hello = fake_next(&fc);
    if (!hello || hello->body_case != TLPB__ENVELOPE__BODY_HELLO) {
        tlpb_envelope_free(hello);
        goto out;
    }
    cs->offered = hello->hello->capabilities;
    struct tlpb_devdesc_pb desc_pb;
    Tlpb__HelloReply hr;
    raw_hello_reply_init(&hr, &desc_pb, dmacopy_description());
    hr.backend = (char *)"external";
    hr.capabilities = hello->hello->capabilities & fb->grant;
    tlpb_envelope_free(hello);
    Tlpb__Envelope reply = TLPB__ENVELOPE__INIT;
    reply.body_case = TLPB__ENVELOPE__BODY_HELLO_REPLY;
    reply.hello_reply = &hr;
    struct tlpb_obuf ob;
    tlpb_obuf_init(&ob, SIZE_MAX, TLPB_HARD_MAX_FRAME_BYTES);
    tlpb_obuf_append(&ob, &reply, true);
    tlpb_obuf_write_all(&ob, fd);
    tlpb_obuf_free(&ob);

    Tlpb__Envelope *env;
    while ((env = fake_next(&fc)) != NULL) {
        if (env->body_case == TLPB__ENVELOPE__BODY_GUEST_MEMORY) {
            fake_take_map(&fc, env->guest_memory, cs);
        } else if (env->body_case == TLPB__ENVELOPE__BODY_TLP &&
                   env->tlp->kind == TLPB__TLP_KIND__TLP_MRD) {
            if (cs->reads++ == 0)
                cs->map_before_read = cs->maps > 0;
            fake_answer_read(fd, env->tlp);
            if (drop_after_read) {
                tlpb_envelope_free(env);
                break;
            }
        }
        tlpb_envelope_free(env);
    }
out:
    cs->fds_total += fc.nfds;
    for (unsigned i = 0; i < fc.nfds; i++)
        close(fc.fds[i]);
    tlpb_reader_free(&fc.rd);
    close(fd);
}

static void *fake_bridge_run(void *arg)
{
    struct fake_bridge *fb = arg;
    for (unsigned c = 0; c < fb->conns; c++) {
        struct pollfd pfd = {.fd = fb->listen_fd, .events = POLLIN};
        if (poll(&pfd, 1, IT_DEADLINE_MS) <= 0)
            return NULL;
        int fd = accept4(fb->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            return NULL;
        fake_serve(fb, fd, &fb->seen[c], c == 0 && fb->drop_after_first_read);
    }
    return NULL;
}

/* ---- The host under test ------------------------------------------------- */

static int cb_dma_read(void *opaque, uint64_t addr, void *buf, uint32_t len)
{
    (void)opaque, (void)addr, (void)buf, (void)len;
    return 1; /* UR: nothing here is memory the scripted bridge may reach */
}
static int cb_dma_write(void *opaque, uint64_t addr, const void *buf, uint32_t len)
{
    (void)opaque, (void)addr, (void)buf, (void)len;
    return 1;
}
static void cb_interrupt(void *opaque, enum tlpb_host_irq_kind kind, unsigned vector)
{
    (void)opaque, (void)kind, (void)vector;
}
static void cb_log(void *opaque, enum tlpb_host_log_level level, const char *message)
{
    (void)opaque;
    if (level <= TLPB_HOST_LOG_INFO)
        printf("  [host] %s\n", message);
}

static struct fake_bridge fb;
static pthread_t fb_thread;
static struct tlpb_host *host;
static int guest_ram_fd = -1;

static unsigned open_fds(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void start(uint64_t grant, unsigned conns, bool drop_after_first_read)
{
    memset(fb.seen, 0, sizeof(fb.seen));
    fb.grant = grant;
    fb.conns = conns;
    fb.drop_after_first_read = drop_after_first_read;
    REQUIRE(pthread_create(&fb_thread, NULL, fake_bridge_run, &fb) == 0, "pthread_create");
    struct tlpb_host_config cfg = {
        .address = it.socket_path,
        .device_name = "dmacopy0",
        .read_timeout_ms = IT_DEADLINE_MS,
        .reconnect_interval_ms = 1,
    };
    struct tlpb_host_ops ops = {.dma_read = cb_dma_read, .dma_write = cb_dma_write,
                                .interrupt = cb_interrupt, .log = cb_log};
    char err[256];
    REQUIRE(tlpb_host_open(&host, &cfg, &ops, NULL, err, sizeof(err)) == 0, "open: %s", err);
    REQUIRE(tlpb_host_connected(host), "the host did not connect to the scripted bridge");
}

static void finish(void)
{
    tlpb_host_close(host);
    host = NULL;
    pthread_join(fb_thread, NULL);
}

/* Two regions of the memfd: 1 MiB at its start, 64 KiB at 1 MiB + 4 KiB. */
static void share_two_regions(void)
{
    struct tlpb_host_memory_region regions[2] = {
        {.bus_address = GUEST_RAM_BASE, .size_bytes = 1u << 20, .fd = guest_ram_fd, .fd_offset = 0},
        {.bus_address = GUEST_RAM_BASE + (1u << 20) + 4096u, .size_bytes = 64u * 1024u,
         .fd = guest_ram_fd, .fd_offset = (1u << 20) + 4096u},
    };
    int rc = tlpb_host_set_guest_memory(host, regions, 2);
    CHECK(rc == 0, "tlpb_host_set_guest_memory: %d", rc);
}

static void read_once(const char *what)
{
    uint32_t v = 0;
    int rc = tlpb_host_mem_read(host, 0, DMACOPY_BAR0_ADDR, &v, 4);
    CHECK(rc == 0 && v == READ_VALUE, "%s: read rc %d value 0x%x", what, rc, v);
}

static void case_map_sent(void)
{
    unsigned fds_before = open_fds();
    start(TLPB__CAPABILITY__CAP_GUEST_MEMORY, 1, false);
    share_two_regions();
    read_once("after sharing");
    struct tlpb_host_stats st;
    tlpb_host_get_stats(host, &st);
    CHECK(st.guest_memory_shared, "stats: guest memory not shared although granted");
    CHECK(tlpb_host_set_guest_memory(host, NULL, 0) == 0, "empty map refused");
    read_once("after withdrawing");
    finish();
    struct conn_seen *cs = &fb.seen[0];
    CHECK(cs->offered & TLPB__CAPABILITY__CAP_GUEST_MEMORY, "CAP_GUEST_MEMORY not offered on unix");
    CHECK(cs->maps == 2, "GuestMemory frames: %u, want 2", cs->maps);
    CHECK(cs->map_regions[0] == 2 && cs->map_fds_ok[0], "first map: %u regions, fds %s",
          cs->map_regions[0], cs->map_fds_ok[0] ? "ok" : "missing");
    CHECK(cs->map_bytes_ok[0], "the shared descriptors do not map to the caller's bytes");
    CHECK(cs->map_regions[1] == 0 && cs->map_fds_ok[1], "empty map: %u regions", cs->map_regions[1]);
    CHECK(cs->map_before_read, "the map came after the read queued behind it");
    CHECK(open_fds() == fds_before, "descriptors leaked: %u open before, %u after", fds_before,
          open_fds());
}

static void case_reconnect_resends(void)
{
    unsigned fds_before = open_fds();
    start(TLPB__CAPABILITY__CAP_GUEST_MEMORY, 2, true);
    share_two_regions();
    read_once("before the bridge drops the connection");
    /* The scripted bridge hangs up after that read: serve until the host
     * noticed and reconnected. */
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    while (fb.seen[1].offered == 0 || !tlpb_host_connected(host)) {
        REQUIRE(it_now_ms() < deadline, "the host never reconnected");
        tlpb_host_wait(host, 10);
    }
    read_once("after the reconnect");
    struct tlpb_host_stats st;
    tlpb_host_get_stats(host, &st);
    CHECK(st.reconnects == 1 && st.guest_memory_shared, "reconnects %llu, shared %d",
          (unsigned long long)st.reconnects, st.guest_memory_shared);
    finish();
    CHECK(fb.seen[0].maps == 1, "first connection: %u maps", fb.seen[0].maps);
    CHECK(fb.seen[1].maps == 1 && fb.seen[1].map_regions[0] == 2 && fb.seen[1].map_bytes_ok[0],
          "after the reconnect: %u maps, %u regions, bytes %s", fb.seen[1].maps,
          fb.seen[1].map_regions[0], fb.seen[1].map_bytes_ok[0] ? "ok" : "wrong");
    CHECK(fb.seen[1].map_before_read, "the map was not resent before the first read");
    CHECK(open_fds() == fds_before, "descriptors kept after close: %u open before, %u after",
          fds_before, open_fds());
}

static void case_not_granted(void)
{
    start(0, 1, false);
    share_two_regions();
    read_once("not granted");
    struct tlpb_host_stats st;
    tlpb_host_get_stats(host, &st);
    CHECK(!st.guest_memory_shared && !st.ring_active, "shared %d ring %d without a grant",
          st.guest_memory_shared, st.ring_active);
    finish();
    CHECK(fb.seen[0].maps == 0 && fb.seen[0].fds_total == 0,
          "a bridge that granted nothing got %u maps and %u descriptors", fb.seen[0].maps,
          fb.seen[0].fds_total);
}

static void case_bad_maps(void)
{
    start(0, 1, false);
    struct tlpb_host_memory_region r = {.bus_address = GUEST_RAM_BASE, .size_bytes = 4096,
                                        .fd = guest_ram_fd};
    struct tlpb_host_memory_region bad[33];
    for (unsigned i = 0; i < 33; i++)
        bad[i] = r;
    CHECK(tlpb_host_set_guest_memory(host, bad, 33) == -EINVAL, "33 regions accepted");
    bad[0].size_bytes = 0;
    CHECK(tlpb_host_set_guest_memory(host, bad, 1) == -EINVAL, "an empty region accepted");
    bad[0] = r;
    bad[0].bus_address = ~0ull - 100;
    CHECK(tlpb_host_set_guest_memory(host, bad, 1) == -EINVAL, "an overflowing range accepted");
    bad[0] = r;
    bad[0].fd = -1;
    CHECK(tlpb_host_set_guest_memory(host, bad, 1) == -EINVAL, "a negative fd accepted");
    finish();
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "test_host_ring");
    fb.listen_fd = raw_listen(it.socket_path);
    guest_ram_fd = memfd_create("test-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    REQUIRE(guest_ram_fd >= 0 && ftruncate(guest_ram_fd, MEMFD_BYTES) == 0, "memfd");
    uint8_t *ram = mmap(NULL, MEMFD_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, guest_ram_fd, 0);
    REQUIRE(ram != MAP_FAILED, "mmap of the memfd");
    for (uint64_t off = 0; off < MEMFD_BYTES; off++)
        ram[off] = pattern_byte(off);
    munmap(ram, MEMFD_BYTES);

    IT_RUN("the map and its descriptors reach the bridge", case_map_sent());
    IT_RUN("a reconnect sends the map again", case_reconnect_resends());
    IT_RUN("a bridge that grants nothing gets nothing", case_not_granted());
    IT_RUN("bad maps are refused", case_bad_maps());

    close(guest_ram_fd);
    close(fb.listen_fd);
    return it_finish();
}
