/* libtlpbhost's shared guest memory and shared-memory ring against a
 * scripted bridge (a thread playing the bridge by hand: recvmsg for the
 * descriptors, the ring attached as the bridge attaches it), for what the
 * real bridge cannot be made to show on cue:
 * - the GuestMemory frame arrives with its descriptors, and they map to the
 *   caller's bytes; an empty map withdraws it; a reconnect sends it again;
 * - a bridge that does not grant the capabilities gets no descriptors;
 * - no descriptor of the caller's is kept after close;
 * - with CAP_SHM_RING, RingSetup brings the ring, and reads, posted writes,
 *   device DMA and interrupts all go through it (nothing more on the
 *   socket), with both the adaptive and the busy-poll policy;
 * - an interrupt sent while the caller is away makes tlpb_host_fd readable;
 * - both directions full at once (a bridge that waits for room without
 *   reading) does not deadlock the host;
 * - coupled time: a grant and its REACHED go through the ring;
 * - TLPB_RING=off keeps the socket; a bad TLPB_RING is refused;
 * - over TCP neither capability is offered;
 * - a bridge that refuses the RingSetup (Error, hang-up) is not offered the
 *   ring again: the next connection works on the socket. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dmacopy_suite.h"
#include "harness.h"
#include "raw_peer.h"
#include "tlpb/byteorder.h"
#include "tlpb/ring.h"
#include "tlpb/wire.h"

#define MAX_CONNS 2
#define MAX_MAPS 4
#define MEMFD_BYTES (2u * 1024u * 1024u)
#define READ_VALUE 0x5A17C0DEu
/* Registers of the scripted device (BAR0 offsets) and what writing them does. */
#define REG_DMA_TRIGGER 0x10u /* DMA-write the value to RAM+0x100, read it back, MSI 3 */
#define REG_COUNT 0x20u       /* only counted */
#define REG_FLOOD 0x30u       /* FLOOD_WRITES DMA writes of 4 KiB, without reading meanwhile */
#define FLOOD_WRITES 3000u    /* about three rings full */
#define HOST_WRITES 200000u   /* about three rings full the other way */
#define DMA_TAG 7u
#define RAM_BYTES (64u * 1024u)

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
    unsigned ring_setups;        /* RingSetup frames with 3 descriptors, attached */
    unsigned ring_records;       /* messages taken from the ring */
    unsigned socket_after_ring;  /* frames other than GuestMemory on the socket after it */
    unsigned counted_writes;     /* MWr to REG_COUNT */
    unsigned grants;             /* TimeSync GRANT records answered */
    unsigned flood_put;          /* flood writes put into the ring */
    bool stuck;                  /* waited IT_DEADLINE_MS for room */
    char ring_policy[16];        /* RingSetup.host_policy */
};

struct fake_bridge {
    int listen_fd;
    int ctl[2];                 /* the test tells the bridge to send an interrupt now */
    uint64_t grant;             /* capabilities granted (of those offered) */
    unsigned conns;             /* connections to accept */
    bool drop_after_first_read; /* close the first connection after its first read */
    bool refuse_ring;           /* answer RingSetup with an Error and hang up */
    struct conn_seen seen[MAX_CONNS];
};

/* The bridge's side of one connection: frames from a stream that also
 * carries descriptors. */
struct fake_conn {
    int fd;
    struct tlpb_frame_reader rd;
    int fds[64];
    unsigned nfds;
    struct tlpb_ring *ring;
    bool refuse_ring;
    struct conn_seen *cs;
    uint32_t read_value;        /* what an MRd of BAR0 returns */
    bool dma_read_outstanding;  /* our MRd to the host waits for its CplD */
    bool host_read_deferred;    /* the host's MRd waits for that */
    struct tlpb_tlp deferred;
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
        unsigned got;
        bool truncated; /* beyond what fds holds: closed (the checks on nfds see it) */
        ssize_t n = tlpb_recv_with_fds(fc->fd, dst, space, 0, fc->fds + fc->nfds,
                                       (unsigned)(sizeof(fc->fds) / sizeof(fc->fds[0])) - fc->nfds,
                                       &got, &truncated);
        if (n <= 0)
            return NULL;
        fc->nfds += got;
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

/* To the host: over the ring once it is set up, else on the socket. A full
 * ring is waited for WITHOUT reading what the host sends meanwhile (the
 * worst a bridge may do): the host must keep taking records to unblock it. */
static void fake_send_tlp(struct fake_conn *fc, const struct tlpb_tlp *tlp)
{
    if (!fc->ring) {
        struct tlpb_obuf ob;
        tlpb_obuf_init(&ob, SIZE_MAX, TLPB_HARD_MAX_FRAME_BYTES);
        tlpb_obuf_append_tlp(&ob, tlp, true);
        tlpb_obuf_write_all(&ob, fc->fd);
        tlpb_obuf_free(&ob);
        return;
    }
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    while (tlpb_ring_put_tlp(fc->ring, tlp) == -EAGAIN) {
        tlpb_ring_notify(fc->ring);
        struct pollfd pfd = {.fd = tlpb_ring_wake_fd(fc->ring), .events = POLLIN};
        uint64_t now = it_now_ms();
        if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0) {
            fc->cs->stuck = true;
            return;
        }
        tlpb_ring_woken(fc->ring);
    }
}

static void fake_send_interrupt(struct fake_conn *fc, uint32_t vector)
{
    if (fc->ring) {
        tlpb_ring_put_interrupt(fc->ring, TLPB__INTERRUPT_KIND__IRQ_MSI, vector, 0);
        tlpb_ring_notify(fc->ring);
        return;
    }
    struct tlpb_obuf ob;
    tlpb_obuf_init(&ob, SIZE_MAX, TLPB_HARD_MAX_FRAME_BYTES);
    tlpb_obuf_append_interrupt(&ob, TLPB__INTERRUPT_KIND__IRQ_MSI, vector);
    tlpb_obuf_write_all(&ob, fc->fd);
    tlpb_obuf_free(&ob);
}

static void fake_answer_read(struct fake_conn *fc, const struct tlpb_tlp *req)
{
    struct tlpb_tlp cpl;
    uint8_t data[4];
    tlpb_put_le32(data, fc->read_value);
    tlpb_completion_for(&cpl, req, 0x0100, tlpb_tlp_first_byte_address(req), 4, 4);
    cpl.payload = data;
    cpl.payload_bytes = 4;
    fake_send_tlp(fc, &cpl);
}

static void fake_dma_write(struct fake_conn *fc, uint64_t addr, const uint8_t *data, uint32_t len)
{
    struct tlpb_tlp w = {.kind = TLPB_TLP_MWR, .requester_id = 0x0100, .bar_hint = TLPB_NO_BAR};
    tlpb_tlp_set_mem_range(&w, addr, len);
    w.payload = data;
    w.payload_bytes = w.length_dw * 4u;
    fake_send_tlp(fc, &w);
}

/* One TLP from the host, from a frame or a ring record. */
static void fake_take_tlp(struct fake_conn *fc, const struct tlpb_tlp *t)
{
    struct conn_seen *cs = fc->cs;
    if (t->kind == TLPB_TLP_MRD) {
        if (cs->reads++ == 0)
            cs->map_before_read = cs->maps > 0;
        if (fc->dma_read_outstanding) {
            fc->deferred = *t;
            fc->host_read_deferred = true;
        } else {
            fake_answer_read(fc, t);
        }
    } else if (t->kind == TLPB_TLP_MWR && t->payload_bytes >= 4) {
        uint64_t reg = t->address - DMACOPY_BAR0_ADDR;
        uint32_t value = tlpb_get_le32(t->payload);
        if (reg == REG_COUNT) {
            cs->counted_writes++;
        } else if (reg == REG_DMA_TRIGGER) {
            uint8_t data[4];
            tlpb_put_le32(data, value);
            fake_dma_write(fc, GUEST_RAM_BASE + 0x100, data, 4);
            struct tlpb_tlp r = {.kind = TLPB_TLP_MRD, .requester_id = 0x0100, .tag = DMA_TAG,
                                 .bar_hint = TLPB_NO_BAR};
            tlpb_tlp_set_mem_range(&r, GUEST_RAM_BASE + 0x100, 4);
            fc->dma_read_outstanding = true;
            fake_send_tlp(fc, &r);
            fake_send_interrupt(fc, 3);
        } else if (reg == REG_FLOOD) {
            static uint8_t page[4096];
            memset(page, (int)(value & 0xFF), sizeof(page));
            for (unsigned i = 0; i < FLOOD_WRITES && !cs->stuck; i++) {
                fake_dma_write(fc, GUEST_RAM_BASE, page, sizeof(page));
                if (!cs->stuck)
                    cs->flood_put++;
            }
        }
    } else if (t->kind == TLPB_TLP_CPLD && t->tag == DMA_TAG && fc->dma_read_outstanding) {
        fc->dma_read_outstanding = false;
        fc->read_value = tlpb_get_le32(t->payload + (t->lower_address & 3u));
        if (fc->host_read_deferred) {
            fc->host_read_deferred = false;
            fake_answer_read(fc, &fc->deferred);
        }
    }
}

/* A GRANT is answered at once: the device reached the grant, idle. */
static void fake_take_ring_envelope(struct fake_conn *fc, const Tlpb__Envelope *env)
{
    if (env->body_case != TLPB__ENVELOPE__BODY_TIME_SYNC ||
        env->time_sync->kind != TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT)
        return;
    fc->cs->grants++;
    Tlpb__TimeSync ts = TLPB__TIME_SYNC__INIT;
    ts.kind = TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED;
    ts.sync_id = env->time_sync->sync_id;
    ts.sim_time_ps = env->time_sync->grant_until_ps;
    ts.idle = true;
    Tlpb__Envelope reply;
    tlpb_time_sync_envelope(&reply, &ts);
    tlpb_ring_put_envelope(fc->ring, &reply);
}

static void fake_take_ring_setup(struct fake_conn *fc, const Tlpb__RingSetup *rs)
{
    if (fc->nfds != TLPB_RING_FD_COUNT)
        return;
    char err[256];
    snprintf(fc->cs->ring_policy, sizeof(fc->cs->ring_policy), "%s", rs->host_policy);
    fc->cs->fds_total += fc->nfds;
    fc->nfds = 0; /* tlpb_ring_attach owns them now */
    if (tlpb_ring_attach(&fc->ring, fc->fds, rs->ring_bytes, err, sizeof(err)) == 0)
        fc->cs->ring_setups++;
    else
        printf("  [bridge] ring refused: %s\n", err);
}

/* A frame from the socket; false when the host hung up. */
static bool fake_take_frame(struct fake_conn *fc)
{
    Tlpb__Envelope *env = fake_next(fc);
    if (!env)
        return false;
    if (env->body_case == TLPB__ENVELOPE__BODY_GUEST_MEMORY) {
        fake_take_map(fc, env->guest_memory, fc->cs);
    } else {
        if (fc->ring)
            fc->cs->socket_after_ring++;
        if (env->body_case == TLPB__ENVELOPE__BODY_RING_SETUP && fc->refuse_ring) {
            fc->cs->fds_total += fc->nfds;
            for (unsigned i = 0; i < fc->nfds; i++)
                close(fc->fds[i]);
            fc->nfds = 0;
            struct tlpb_obuf ob;
            tlpb_obuf_init(&ob, SIZE_MAX, TLPB_HARD_MAX_FRAME_BYTES);
            tlpb_obuf_append_error(&ob, "RingSetup refused: this scripted bridge has no ring");
            tlpb_obuf_write_all(&ob, fc->fd);
            tlpb_obuf_free(&ob);
            tlpb_envelope_free(env);
            return false; /* hang up */
        } else if (env->body_case == TLPB__ENVELOPE__BODY_RING_SETUP) {
            fake_take_ring_setup(fc, env->ring_setup);
        } else if (env->body_case == TLPB__ENVELOPE__BODY_TLP) {
            struct tlpb_tlp t;
            const char *reason = NULL;
            if (tlpb_tlp_from_pb(&t, env->tlp, &reason) == 0)
                fake_take_tlp(fc, &t);
        }
    }
    tlpb_envelope_free(env);
    return true;
}

/* Serve one connection until the host hangs up, or (drop_after_read) the
 * script drops it once it has seen a read and the map (the map comes on the
 * socket, the read through the ring: either may be first). */
static void fake_serve(struct fake_bridge *fb, int fd, struct conn_seen *cs, bool drop_after_read)
{
    struct fake_conn fc = {.fd = fd, .cs = cs, .read_value = READ_VALUE,
                           .refuse_ring = fb->refuse_ring};
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
    hr.time_mode = (char *)"coupled";
    tlpb_envelope_free(hello);
    Tlpb__Envelope reply = TLPB__ENVELOPE__INIT;
    reply.body_case = TLPB__ENVELOPE__BODY_HELLO_REPLY;
    reply.hello_reply = &hr;
    struct tlpb_obuf ob;
    tlpb_obuf_init(&ob, SIZE_MAX, TLPB_HARD_MAX_FRAME_BYTES);
    tlpb_obuf_append(&ob, &reply, true);
    tlpb_obuf_write_all(&ob, fd);
    tlpb_obuf_free(&ob);

    for (;;) {
        if (fc.ring) {
            /* everything the ring holds, then sleep on {wake fd, socket, test} */
            struct tlpb_ring_msg m;
            int rc;
            bool any = false;
            while ((rc = tlpb_ring_get(fc.ring, &m)) == 1) {
                any = true;
                cs->ring_records++;
                if (m.type == TLPB_RING_MSG_TLP)
                    fake_take_tlp(&fc, &m.tlp);
                else if (m.type == TLPB_RING_MSG_ENVELOPE) {
                    fake_take_ring_envelope(&fc, m.env);
                    tlpb_envelope_free(m.env);
                }
            }
            tlpb_ring_notify(fc.ring);
            if (rc < 0) {
                printf("  [bridge] ring: %s\n", tlpb_ring_error(fc.ring));
                break;
            }
            if (drop_after_read && cs->reads > 0 && cs->maps > 0)
                break;
            if (any || !tlpb_ring_prepare_sleep(fc.ring)) {
                tlpb_ring_woken(fc.ring);
                continue;
            }
        }
        struct pollfd pfd[3] = {{.fd = fd, .events = POLLIN},
                                {.fd = fb->ctl[0], .events = POLLIN},
                                {.fd = fc.ring ? tlpb_ring_wake_fd(fc.ring) : -1, .events = POLLIN}};
        if (poll(pfd, 3, IT_DEADLINE_MS) <= 0)
            break;
        if (fc.ring)
            tlpb_ring_woken(fc.ring);
        if (pfd[1].revents) {
            char c;
            if (read(fb->ctl[0], &c, 1) == 1)
                fake_send_interrupt(&fc, 5);
        }
        if (pfd[0].revents) {
            if (!fake_take_frame(&fc))
                break;
            /* frames that came in the same read */
            while (fc.rd.end > fc.rd.start) {
                const uint8_t *frame;
                size_t len;
                const char *reason;
                struct tlpb_frame_reader peek = fc.rd;
                if (tlpb_reader_next(&peek, &frame, &len, &reason) != 1 || !fake_take_frame(&fc))
                    break;
            }
            if (drop_after_read && cs->reads > 0 && cs->maps > 0)
                break;
        }
    }
out:
    if (fc.ring)
        tlpb_ring_destroy(fc.ring);
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

/* The guest RAM the DMA callbacks serve (the memfd is only shared). */
static uint8_t host_ram[RAM_BYTES];
static unsigned msi_seen[8];

static bool in_ram(uint64_t addr, uint32_t len)
{
    return addr >= GUEST_RAM_BASE && addr - GUEST_RAM_BASE <= RAM_BYTES &&
           len <= RAM_BYTES - (addr - GUEST_RAM_BASE);
}
static int cb_dma_read(void *opaque, uint64_t addr, void *buf, uint32_t len)
{
    (void)opaque;
    if (!in_ram(addr, len))
        return 1; /* UR */
    memcpy(buf, host_ram + (addr - GUEST_RAM_BASE), len);
    return 0;
}
static int cb_dma_write(void *opaque, uint64_t addr, const void *buf, uint32_t len)
{
    (void)opaque;
    if (!in_ram(addr, len))
        return 1;
    memcpy(host_ram + (addr - GUEST_RAM_BASE), buf, len);
    return 0;
}
static void cb_interrupt(void *opaque, enum tlpb_host_irq_kind kind, unsigned vector)
{
    (void)opaque;
    if (kind == TLPB_HOST_IRQ_MSI && vector < 8)
        msi_seen[vector]++;
}
static void cb_log(void *opaque, enum tlpb_host_log_level level, const char *message)
{
    (void)opaque;
    if (level <= TLPB_HOST_LOG_INFO)
        printf("  [host] %s\n", message);
}

static struct fake_bridge fb;
static const char *start_address; /* NULL: the harness's unix socket */
static bool start_connected = true; /* require the first connection to stay up */
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

static enum tlpb_host_ring_policy start_policy = TLPB_HOST_RING_ADAPTIVE;
static uint32_t start_write_batch_bytes;
static bool start_time_sync;

static void start(uint64_t grant, unsigned conns, bool drop_after_first_read)
{
    memset(host_ram, 0, sizeof(host_ram));
    memset(msi_seen, 0, sizeof(msi_seen));
    memset(fb.seen, 0, sizeof(fb.seen));
    fb.grant = grant;
    fb.conns = conns;
    fb.drop_after_first_read = drop_after_first_read;
    REQUIRE(pthread_create(&fb_thread, NULL, fake_bridge_run, &fb) == 0, "pthread_create");
    struct tlpb_host_config cfg = {
        .address = start_address ? start_address : it.socket_path,
        .device_name = "dmacopy0",
        .read_timeout_ms = IT_DEADLINE_MS,
        .reconnect_interval_ms = 1,
        .ring_policy = start_policy,
        .write_batch_bytes = start_write_batch_bytes,
        .time_sync = start_time_sync,
    };
    struct tlpb_host_ops ops = {.dma_read = cb_dma_read, .dma_write = cb_dma_write,
                                .interrupt = cb_interrupt, .log = cb_log};
    char err[256];
    REQUIRE(tlpb_host_open(&host, &cfg, &ops, NULL, err, sizeof(err)) == 0, "open: %s", err);
    if (start_connected)
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

/* Serve the host until the scripted bridge saw its second connection and
 * the host is connected again; bounded. */
static void serve_until_reconnected(void)
{
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    while (fb.seen[1].offered == 0 || !tlpb_host_connected(host)) {
        REQUIRE(it_now_ms() < deadline, "the host never reconnected");
        tlpb_host_wait(host, 10);
    }
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
    start(TLPB__CAPABILITY__CAP_GUEST_MEMORY | TLPB__CAPABILITY__CAP_SHM_RING, 2, true);
    share_two_regions();
    read_once("before the bridge drops the connection");
    /* The scripted bridge hangs up after that read: serve until the host
     * noticed and reconnected. */
    serve_until_reconnected();
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
    CHECK(fb.seen[0].ring_setups == 1 && fb.seen[1].ring_setups == 1,
          "rings set up: %u on the first connection, %u after the reconnect",
          fb.seen[0].ring_setups, fb.seen[1].ring_setups);
    CHECK(fb.seen[1].reads == 1 && fb.seen[1].ring_records >= 1,
          "after the reconnect the read did not come through the new ring");
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

#define CAPS_ALL (TLPB__CAPABILITY__CAP_GUEST_MEMORY | TLPB__CAPABILITY__CAP_SHM_RING)

static void write_reg(uint32_t reg, uint32_t value)
{
    int rc = tlpb_host_mem_write(host, 0, DMACOPY_BAR0_ADDR + reg, &value, 4);
    CHECK(rc == 0, "posted write to 0x%x: %d", reg, rc);
}

/* Reads, posted writes, a device DMA write and read, and an MSI, all in
 * one exchange: the read returns what the device read back from RAM. */
static void round_trip(const char *policy)
{
    start(CAPS_ALL, 1, false);
    struct tlpb_host_stats st;
    tlpb_host_get_stats(host, &st);
    CHECK(st.ring_active, "%s: no ring although granted", policy);
    read_once("over the ring");
    for (unsigned i = 0; i < 100; i++)
        write_reg(REG_COUNT, i);
    write_reg(REG_DMA_TRIGGER, 0xCAFEF00Du);
    uint32_t v = 0;
    int rc = tlpb_host_mem_read(host, 0, DMACOPY_BAR0_ADDR, &v, 4);
    CHECK(rc == 0 && v == 0xCAFEF00Du, "%s: read after the DMA: rc %d value 0x%x", policy, rc, v);
    CHECK(tlpb_get_le32(host_ram + 0x100) == 0xCAFEF00Du, "%s: the device's DMA write missing",
          policy);
    /* The MSI was sent right after the DMA read, before the read's answer. */
    CHECK(msi_seen[3] == 1, "%s: MSI 3 seen %u times", policy, msi_seen[3]);
    tlpb_host_get_stats(host, &st);
    CHECK(st.dma_reads == 1 && st.dma_writes == 1, "%s: dma reads %llu writes %llu", policy,
          (unsigned long long)st.dma_reads, (unsigned long long)st.dma_writes);
    if (strcmp(policy, "busy-poll") == 0)
        CHECK(st.ring_sleeps == 0, "busy-poll slept %llu times", (unsigned long long)st.ring_sleeps);

    /* Away from the library, an interrupt must wake the caller's loop. */
    int fd = tlpb_host_fd(host);
    CHECK(fd >= 0, "no descriptor to watch");
    char c = 'i';
    CHECK(write(fb.ctl[1], &c, 1) == 1, "cannot tell the bridge");
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int prc = poll(&pfd, 1, IT_DEADLINE_MS);
    CHECK(prc == 1, "%s: tlpb_host_fd not readable for an interrupt sent while idle", policy);
    uint64_t deadline = it_now_ms() + IT_DEADLINE_MS;
    while (msi_seen[5] == 0 && it_now_ms() < deadline)
        tlpb_host_poll(host);
    CHECK(msi_seen[5] == 1, "%s: the idle-time MSI was not delivered", policy);
    pfd.revents = 0;
    CHECK(poll(&pfd, 1, 0) == 0, "%s: tlpb_host_fd still readable after the poll", policy);
    finish();
    struct conn_seen *cs = &fb.seen[0];
    CHECK(cs->offered & TLPB__CAPABILITY__CAP_SHM_RING, "CAP_SHM_RING not offered");
    CHECK(cs->ring_setups == 1 && strcmp(cs->ring_policy, policy) == 0,
          "ring setups %u, policy '%s'", cs->ring_setups, cs->ring_policy);
    CHECK(cs->counted_writes == 100, "%s: %u of 100 posted writes arrived", policy,
          cs->counted_writes);
    CHECK(cs->socket_after_ring == 0, "%s: %u messages still on the socket", policy,
          cs->socket_after_ring);
}

static void case_ring_adaptive(void) { round_trip("adaptive"); }

static void case_ring_busy_poll(void)
{
    start_policy = TLPB_HOST_RING_BUSY_POLL;
    round_trip("busy-poll");
    start_policy = TLPB_HOST_RING_ADAPTIVE;
}

/* The host fills its ring with posted writes (one batch: the bridge sees
 * none of them before the flush); the bridge, on the first, fills the host's
 * ring with DMA writes and waits for room without reading: the host, in the
 * flush, must keep taking records while it waits for room. */
static void case_both_full(void)
{
    start_write_batch_bytes = 64u * 1024u * 1024u;
    start(CAPS_ALL, 1, false);
    start_write_batch_bytes = 0;
    write_reg(REG_FLOOD, 0xA5);
    for (unsigned i = 0; i < HOST_WRITES; i++) {
        uint32_t v = i;
        if (tlpb_host_mem_write(host, 0, DMACOPY_BAR0_ADDR + REG_COUNT, &v, 4) != 0)
            break;
    }
    CHECK(tlpb_host_flush(host) == 0, "the flush with both directions full failed");
    read_once("after both directions were full");
    struct tlpb_host_stats st;
    tlpb_host_get_stats(host, &st);
    finish();
    struct conn_seen *cs = &fb.seen[0];
    CHECK(!cs->stuck && cs->flood_put == FLOOD_WRITES, "the bridge got stuck: %u of %u put",
          cs->flood_put, FLOOD_WRITES);
    CHECK(st.dma_writes == FLOOD_WRITES, "the host took %llu of %u DMA writes",
          (unsigned long long)st.dma_writes, FLOOD_WRITES);
    CHECK(cs->counted_writes == HOST_WRITES, "%u of %u posted writes arrived", cs->counted_writes,
          HOST_WRITES);
    CHECK(host_ram[4095] == 0xA5, "the flood's data is not in RAM");
}

static void case_time_over_ring(void)
{
    start_time_sync = true;
    start(CAPS_ALL | TLPB__CAPABILITY__CAP_TIME_SYNC, 1, false);
    start_time_sync = false;
    CHECK(tlpb_host_time_coupled(host), "not coupled although granted");
    tlpb_host_set_time_ps(host, 1000);
    write_reg(REG_COUNT, 1); /* queued: it goes before the grant */
    struct tlpb_host_reached r;
    int rc = tlpb_host_time_grant(host, 5000, &r);
    CHECK(rc == 0 && r.sim_time_ps == 5000 && r.idle, "grant: rc %d, reached %llu idle %d", rc,
          (unsigned long long)r.sim_time_ps, r.idle);
    finish();
    CHECK(fb.seen[0].grants == 1 && fb.seen[0].counted_writes == 1,
          "through the ring: %u grants, %u writes", fb.seen[0].grants, fb.seen[0].counted_writes);
    CHECK(fb.seen[0].socket_after_ring == 0, "%u messages on the socket",
          fb.seen[0].socket_after_ring);
}

static void case_ring_off(void)
{
    setenv("TLPB_RING", "off", 1);
    start(CAPS_ALL, 1, false);
    unsetenv("TLPB_RING");
    read_once("TLPB_RING=off");
    write_reg(REG_DMA_TRIGGER, 0x600DF00Du);
    uint32_t v = 0;
    int rc = tlpb_host_mem_read(host, 0, DMACOPY_BAR0_ADDR, &v, 4);
    CHECK(rc == 0 && v == 0x600DF00Du, "TLPB_RING=off: read after DMA rc %d 0x%x", rc, v);
    struct tlpb_host_stats st;
    tlpb_host_get_stats(host, &st);
    CHECK(!st.ring_active, "a ring although TLPB_RING=off");
    finish();
    CHECK(!(fb.seen[0].offered & TLPB__CAPABILITY__CAP_SHM_RING), "CAP_SHM_RING offered with off");
    CHECK(fb.seen[0].ring_setups == 0 && fb.seen[0].ring_records == 0, "a ring was set up");
}

static void case_tcp(void)
{
    int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    REQUIRE(tcp >= 0 && bind(tcp, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(tcp, 4) == 0 &&
                getsockname(tcp, (struct sockaddr *)&sa, &len) == 0,
            "TCP listener: %s", strerror(errno));
    char address[64];
    snprintf(address, sizeof(address), "tcp:127.0.0.1:%u", ntohs(sa.sin_port));
    int unix_fd = fb.listen_fd;
    fb.listen_fd = tcp;
    start_address = address;
    start(CAPS_ALL, 1, false);
    start_address = NULL;
    share_two_regions();
    read_once("over TCP");
    struct tlpb_host_stats st;
    tlpb_host_get_stats(host, &st);
    CHECK(!st.ring_active && !st.guest_memory_shared, "over TCP: ring %d shared %d",
          st.ring_active, st.guest_memory_shared);
    finish();
    fb.listen_fd = unix_fd;
    close(tcp);
    CHECK(!(fb.seen[0].offered & CAPS_ALL), "over TCP the host offered 0x%llx",
          (unsigned long long)fb.seen[0].offered);
    CHECK(fb.seen[0].maps == 0 && fb.seen[0].ring_setups == 0, "maps %u rings %u over TCP",
          fb.seen[0].maps, fb.seen[0].ring_setups);
}

static void case_ring_refused(void)
{
    fb.refuse_ring = true;
    start_connected = false;
    start(CAPS_ALL, 2, false);
    start_connected = true;
    /* the first connection ends at its RingSetup; the host reconnects */
    serve_until_reconnected();
    read_once("after the ring was refused");
    struct tlpb_host_stats st;
    tlpb_host_get_stats(host, &st);
    CHECK(!st.ring_active, "a ring after the bridge refused it");
    finish();
    fb.refuse_ring = false;
    CHECK(fb.seen[0].offered & TLPB__CAPABILITY__CAP_SHM_RING, "first connection: no ring offered");
    CHECK(!(fb.seen[1].offered & TLPB__CAPABILITY__CAP_SHM_RING),
          "the ring was offered again after the bridge refused it");
    CHECK(fb.seen[1].reads == 1, "the read did not reach the bridge on the socket");
}

static void case_bad_env(void)
{
    setenv("TLPB_RING", "sometimes", 1);
    struct tlpb_host_config cfg = {.address = it.socket_path, .device_name = "dmacopy0"};
    struct tlpb_host_ops ops = {.dma_read = cb_dma_read, .dma_write = cb_dma_write,
                                .interrupt = cb_interrupt, .log = cb_log};
    char err[256] = "";
    struct tlpb_host *h = NULL;
    int rc = tlpb_host_open(&h, &cfg, &ops, NULL, err, sizeof(err));
    unsetenv("TLPB_RING");
    CHECK(rc == -EINVAL && strstr(err, "TLPB_RING") && strstr(err, "sometimes"),
          "bad TLPB_RING: rc %d, '%s'", rc, err);
    if (rc == 0)
        tlpb_host_close(h);
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
    REQUIRE(pipe(fb.ctl) == 0, "pipe");
    unsetenv("TLPB_RING"); /* the cases set it themselves */
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
    IT_RUN("everything over the ring (adaptive)", case_ring_adaptive());
    IT_RUN("everything over the ring (busy-poll)", case_ring_busy_poll());
    IT_RUN("both directions full at once", case_both_full());
    IT_RUN("coupled time over the ring", case_time_over_ring());
    IT_RUN("TLPB_RING=off keeps the socket", case_ring_off());
    IT_RUN("a bad TLPB_RING is refused", case_bad_env());
    IT_RUN("over TCP nothing is offered", case_tcp());
    IT_RUN("a refused ring is not offered again", case_ring_refused());

    close(guest_ram_fd);
    close(fb.listen_fd);
    return it_finish();
}
