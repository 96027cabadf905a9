/* libtlpbhost: the root complex side of one device (see tlpb_host.h).
 *
 * The path of one MMIO read: tlpb_host_mem_read builds an MRd TLP, queues it
 * behind any posted writes (PCIe ordering: a read must not pass writes), sends
 * the batch in one write, then wait_for_completion reads frames, serving DMA
 * requests and interrupts that arrive first, until the CplD with its tag.
 *
 * With the shared-memory ring (docs/protocol.md, "Shared-memory ring") the
 * same messages are ring records instead of socket frames: a TLP is put
 * straight into the ring when nothing is queued before it, anything else is
 * queued in ob as a frame and moved into the ring in order (send_queued);
 * incoming records are taken from the ring (the socket only says the bridge
 * hung up). A wait polls the ring for ring_spin_us, then sleeps on the
 * wake-host eventfd; before returning to its caller the library arms its
 * "asleep" flag so the bridge wakes the caller's main loop (tlpb_host_fd). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tlpb/byteorder.h"
#include "tlpb/cfgspace.h"
#include "tlpb/dma.h"
#include "tlpb/msix.h"
#include "tlpb/ring.h"
#include "tlpb/wire.h"
#include "tlpb_host.h"

#define HOST_MAX_GUEST_REGIONS 32u /* GuestMemory.fd_count's bound (tlpbridge.proto) */

/* The public kinds are the protocol's, value for value. */
#define SAME_VALUE(a, b) _Static_assert((int)(a) == (int)(b), #a " is " #b)
SAME_VALUE(TLPB_HOST_IRQ_MSIX, TLPB__INTERRUPT_KIND__IRQ_MSIX);
SAME_VALUE(TLPB_HOST_IRQ_MSI, TLPB__INTERRUPT_KIND__IRQ_MSI);
SAME_VALUE(TLPB_HOST_IRQ_INTX_ASSERT, TLPB__INTERRUPT_KIND__IRQ_INTX_ASSERT);
SAME_VALUE(TLPB_HOST_IRQ_INTX_DEASSERT, TLPB__INTERRUPT_KIND__IRQ_INTX_DEASSERT);
SAME_VALUE(TLPB_HOST_RESET_FUNCTION_LEVEL, TLPB__RESET_KIND__RESET_FUNCTION_LEVEL);
SAME_VALUE(TLPB_HOST_RESET_HOT, TLPB__RESET_KIND__RESET_HOT);

struct tlpb_host {
    struct tlpb_host_config cfg;
    char address[512];
    char device_name[64];
    char token[TLPB_TOKEN_MAX_BYTES + 1];
    struct tlpb_host_ops ops;
    void *opaque;

    int fd;
    bool connected;
    bool simulator_attached;
    bool unsplit_dma;
    uint64_t next_reconnect_ns;
    bool logged_absent;
    bool ever_connected;

    struct tlpb_devdesc desc;
    bool have_desc;
    /* Mirror of the config writes this host made: BAR addresses for MSI-X
     * table decode, MSI-X enable and mask, max payload size for splitting the
     * completions of the device's DMA reads. */
    struct tlpb_cfgspace shadow;

    struct tlpb_frame_reader rd;
    struct tlpb_obuf ob;
    uint8_t next_tag;

    /* the one request a blocking call waits for */
    struct {
        bool active;
        bool done;
        uint8_t tag;
        int status;
        uint32_t total_bytes;
        uint32_t received_bytes;
        uint8_t data[16];
    } wait;

    struct tlpb_dma_scratch dma_scratch;  /* DMA read data, reused */

    /* the MSI-X table and PBA, unless the caller keeps them
     * (msix_table_external) */
    struct tlpb_msix msix;

    /* coupled simulated time (docs/protocol.md, "Simulated time") */
    bool time_coupled;           /* offered, granted, and not refused */
    bool logged_time_free;       /* the one "running free" line was logged */
    char time_mode[128];         /* HelloReply.time_mode */
    uint64_t time_ps;            /* the caller's clock: stamp of what is sent */
    uint64_t last_completion_ps; /* stamp of the last request's final completion */
    bool device_busy;
    uint64_t last_sync_id;
    struct {
        bool active;
        bool done;
        int status;
        uint64_t sync_id;
        struct tlpb_host_reached reached;
    } grant;

    /* Shared guest memory: the caller's map, with our own duplicates of its
     * descriptors (sent again after every reconnect). */
    struct {
        bool set;        /* tlpb_host_set_guest_memory was called */
        unsigned n;
        struct tlpb_host_memory_region regions[HOST_MAX_GUEST_REGIONS];
    } guest_memory;
    bool unix_socket;            /* this connection can carry descriptors */
    bool guest_memory_granted;   /* CAP_GUEST_MEMORY on this connection */

    /* The shared-memory ring of this connection, or NULL (socket only). */
    struct tlpb_ring *ring;
    bool ring_armed;             /* the asleep flag was left set for the caller */
    size_t ring_unnotified_bytes; /* put since the last notify (a write batch) */
    uint64_t ring_wakeups_before; /* wakeups of the rings of earlier connections */
    int epoll_fd;                /* tlpb_host_fd: the socket and the wake-host eventfd */
    bool ring_refused;           /* the bridge refused our RingSetup: not offered again */

    struct tlpb_host_stats stats;
};

static void host_log(struct tlpb_host *h, enum tlpb_host_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_log(struct tlpb_host *h, enum tlpb_host_log_level level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (h->ops.log)
        h->ops.log(h->opaque, level, msg);
    else if (level <= TLPB_HOST_LOG_WARN)
        fprintf(stderr, "tlpbhost[%s]: %s\n", h->device_name, msg);
}

static uint32_t fallback_value(const struct tlpb_host *h)
{
    return h->cfg.fallback_value_set ? h->cfg.fallback_read_value : 0xFFFFFFFFu;
}

static void fill_fallback(const struct tlpb_host *h, void *buf, unsigned len)
{
    uint8_t bytes[8];
    tlpb_put_le32(bytes, fallback_value(h));
    tlpb_put_le32(bytes + 4, fallback_value(h));
    memcpy(buf, bytes, len > 8 ? 8 : len);
}

/* ---- Connection ------------------------------------------------------------ */

static int drain_frames(struct tlpb_host *h);
static int flush_output(struct tlpb_host *h);
static int send_guest_memory(struct tlpb_host *h);
static int ring_start(struct tlpb_host *h);
static void ring_stop(struct tlpb_host *h);
static int pump(struct tlpb_host *h, int timeout_ms);
static int send_queued(struct tlpb_host *h);

/* The stamp of what is sent now: the caller's clock on a coupled
 * connection, else 0 (unstamped). */
static uint64_t stamp(const struct tlpb_host *h)
{
    return h->time_coupled ? h->time_ps : 0;
}

/* Something went to the device (or is queued for it): it may be working. */
static void mark_busy(struct tlpb_host *h)
{
    if (h->time_coupled)
        h->device_busy = true;
}

/* Coupled time is off for this connection: the device is never waited for. */
static void time_run_free(struct tlpb_host *h, const char *why)
{
    h->time_coupled = false;
    h->device_busy = false;
    if (!h->logged_time_free) {
        h->logged_time_free = true;
        host_log(h, TLPB_HOST_LOG_WARN, "coupled time not available (%s): running free", why);
    }
}

/* The ring goes with its connection; a new one is set up after a reconnect. */
static void ring_stop(struct tlpb_host *h)
{
    if (!h->ring)
        return;
    struct tlpb_ring_stats rs;
    tlpb_ring_get_stats(h->ring, &rs);
    h->ring_wakeups_before += rs.wakeups_sent;
    if (h->epoll_fd >= 0)
        epoll_ctl(h->epoll_fd, EPOLL_CTL_DEL, tlpb_ring_wake_fd(h->ring), NULL);
    tlpb_ring_destroy(h->ring);
    h->ring = NULL;
    h->ring_armed = false;
    h->ring_unnotified_bytes = 0;
    h->stats.ring_active = false;
}

static void disconnect(struct tlpb_host *h, const char *why)
{
    if (!h->connected)
        return;
    host_log(h, TLPB_HOST_LOG_WARN, "bridge connection lost: %s; answering locally until it returns",
             why);
    ring_stop(h);
    if (h->epoll_fd >= 0)
        epoll_ctl(h->epoll_fd, EPOLL_CTL_DEL, h->fd, NULL);
    close(h->fd);
    h->fd = -1;
    h->connected = false;
    h->simulator_attached = false;
    h->guest_memory_granted = false;
    h->stats.guest_memory_shared = false;
    h->logged_absent = true;
    tlpb_reader_free(&h->rd);
    tlpb_obuf_free(&h->ob);
    h->next_reconnect_ns = tlpb_now_ns() + (uint64_t)h->cfg.reconnect_interval_ms * 1000000u;
    if (h->wait.active && !h->wait.done) { /* a request already answered keeps its answer */
        h->wait.done = true;
        h->wait.status = -ENOTCONN;
    }
    if (h->grant.active && !h->grant.done) {
        h->grant.done = true;
        h->grant.status = -ENOTCONN;
    }
    h->device_busy = false;
    if (h->ops.link_changed)
        h->ops.link_changed(h->opaque, false, false);
}

static void msix_alloc(struct tlpb_host *h)
{
    tlpb_msix_fini(&h->msix);
    if (h->cfg.msix_table_external)
        return;
    if (tlpb_msix_init(&h->msix, &h->desc) != 0)
        host_log(h, TLPB_HOST_LOG_ERROR, "no memory for the MSI-X table: MSI-X vectors dropped");
}

static int try_connect(struct tlpb_host *h)
{
    char err[512];
    int fd = tlpb_connect(h->address, err, sizeof(err));
    if (fd < 0) {
        if (!h->logged_absent) {
            host_log(h, TLPB_HOST_LOG_WARN,
                     "bridge not reachable (%s); reads return 0x%08x, writes are dropped, retrying"
                     " every %u ms", err, fallback_value(h), h->cfg.reconnect_interval_ms);
            h->logged_absent = true;
        }
        h->next_reconnect_ns = tlpb_now_ns() + (uint64_t)h->cfg.reconnect_interval_ms * 1000000u;
        return fd;
    }
    tlpb_reader_init(&h->rd, TLPB_DEFAULT_MAX_FRAME_BYTES);
    struct sockaddr_storage sa;
    socklen_t sa_len = sizeof(sa);
    h->unix_socket = getsockname(fd, (struct sockaddr *)&sa, &sa_len) == 0 && sa.ss_family == AF_UNIX;
    Tlpb__Hello hello;
    tlpb_hello_init(&hello, TLPB__ROLE__ROLE_HOST, h->device_name, "libtlpbhost");
    hello.capabilities = h->cfg.offer_unsplit_dma ? TLPB__CAPABILITY__CAP_UNSPLIT_DMA : 0;
    if (h->cfg.time_sync) {
        hello.capabilities |= TLPB__CAPABILITY__CAP_TIME_SYNC;
        hello.quantum_ps = h->cfg.quantum_ps;
    }
    /* Descriptors travel only on a unix socket. */
    if (h->unix_socket)
        hello.capabilities |= TLPB__CAPABILITY__CAP_GUEST_MEMORY;
    if (h->unix_socket && h->cfg.ring_policy != TLPB_HOST_RING_OFF && !h->ring_refused)
        hello.capabilities |= TLPB__CAPABILITY__CAP_SHM_RING;
    hello.token = h->token; /* empty: tlpb_handshake takes it from the environment */
    Tlpb__Envelope *reply = tlpb_handshake(fd, &h->rd, &hello, 5000, err, sizeof(err));
    if (!reply) {
        host_log(h, TLPB_HOST_LOG_ERROR, "handshake with %s failed: %s", h->address, err);
        close(fd);
        tlpb_reader_free(&h->rd);
        h->logged_absent = true;
        h->next_reconnect_ns = tlpb_now_ns() + (uint64_t)h->cfg.reconnect_interval_ms * 1000000u;
        return -ECONNREFUSED;
    }
    const Tlpb__HelloReply *hr = reply->hello_reply;
    struct tlpb_devdesc desc;
    const char *reason = NULL;
    if (!hr->description || tlpb_devdesc_from_pb(&desc, hr->description, &reason) != 0) {
        host_log(h, TLPB_HOST_LOG_ERROR, "bridge sent no usable device description (%s)",
                 reason ? reason : "missing");
        tlpb_envelope_free(reply);
        close(fd);
        tlpb_reader_free(&h->rd);
        h->next_reconnect_ns = tlpb_now_ns() + (uint64_t)h->cfg.reconnect_interval_ms * 1000000u;
        return -EPROTO;
    }
    if (!h->have_desc || memcmp(&desc, &h->desc, sizeof(desc)) != 0) {
        h->desc = desc;
        h->have_desc = true;
        tlpb_cfgspace_init(&h->shadow, &desc);
        msix_alloc(h);
    }
    h->unsplit_dma = (hr->capabilities & TLPB__CAPABILITY__CAP_UNSPLIT_DMA) != 0;
    h->simulator_attached = hr->simulator_attached;
    h->guest_memory_granted =
        h->unix_socket && (hr->capabilities & TLPB__CAPABILITY__CAP_GUEST_MEMORY) != 0;
    bool ring_granted = h->unix_socket && h->cfg.ring_policy != TLPB_HOST_RING_OFF &&
                        (hr->capabilities & TLPB__CAPABILITY__CAP_SHM_RING) != 0;
    if (h->cfg.time_sync) {
        snprintf(h->time_mode, sizeof(h->time_mode), "%s", hr->time_mode ? hr->time_mode : "");
        h->device_busy = false;
        if (hr->capabilities & TLPB__CAPABILITY__CAP_TIME_SYNC) {
            h->time_coupled = true;
            host_log(h, TLPB_HOST_LOG_INFO, "time: %s", h->time_mode[0] ? h->time_mode : "coupled");
        } else {
            time_run_free(h, "the bridge did not grant CAP_TIME_SYNC");
        }
    }
    tlpb_obuf_init(&h->ob, SIZE_MAX, hr->max_frame_bytes);
    host_log(h, TLPB_HOST_LOG_INFO, "connected to %s as host of %s (backend %s)", h->address,
             h->device_name, hr->backend);
    tlpb_envelope_free(reply);
    h->fd = fd;
    if (h->ever_connected)
        h->stats.reconnects++;
    h->ever_connected = true;
    h->connected = true;
    h->logged_absent = false;
    if (h->epoll_fd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    }
    /* The map first: DMA the bridge can serve itself never reaches us. */
    if (send_guest_memory(h) != 0)
        return -ECONNRESET;
    if (ring_granted && ring_start(h) != 0)
        return -ECONNRESET;
    if (h->ops.link_changed)
        h->ops.link_changed(h->opaque, true, h->simulator_attached);
    /* Messages that came in the same read as the HelloReply (an event, a
     * DMA request) would otherwise wait for the socket's next wake-up. */
    if (drain_frames(h) > 0)
        send_queued(h);
    return h->connected ? 0 : -ECONNRESET;
}

/* Send env on the socket with fds (GuestMemory, RingSetup), behind
 * everything queued before it. Returns 0, or -ENOTCONN when the connection
 * had to be dropped. */
static int send_with_fds(struct tlpb_host *h, const Tlpb__Envelope *env, const int *fds,
                         unsigned n)
{
    if (flush_output(h) != 0)
        return -ENOTCONN;
    struct tlpb_obuf frame;
    tlpb_obuf_init(&frame, SIZE_MAX, h->ob.max_frame_bytes);
    int rc = tlpb_obuf_append(&frame, env, true);
    if (rc == 0)
        rc = tlpb_send_with_fds(h->fd, tlpb_obuf_head(&frame), tlpb_obuf_pending(&frame), fds, n);
    tlpb_obuf_free(&frame);
    if (rc) {
        disconnect(h, strerror(-rc));
        return -ENOTCONN;
    }
    return 0;
}

/* The current guest memory map to the bridge, when this connection can take
 * it (docs/protocol.md, "Shared guest memory"). */
static int send_guest_memory(struct tlpb_host *h)
{
    if (!h->connected || !h->guest_memory_granted || !h->guest_memory.set)
        return 0;
    unsigned n = h->guest_memory.n;
    Tlpb__GuestMemoryRegion region_pb[HOST_MAX_GUEST_REGIONS];
    Tlpb__GuestMemoryRegion *region_ptr[HOST_MAX_GUEST_REGIONS];
    int fds[HOST_MAX_GUEST_REGIONS];
    for (unsigned i = 0; i < n; i++) {
        const struct tlpb_host_memory_region *r = &h->guest_memory.regions[i];
        tlpb__guest_memory_region__init(&region_pb[i]);
        region_pb[i].bus_address = r->bus_address;
        region_pb[i].size_bytes = r->size_bytes;
        region_pb[i].fd_index = i; /* one descriptor per region */
        region_pb[i].fd_offset = r->fd_offset;
        region_ptr[i] = &region_pb[i];
        fds[i] = r->fd;
    }
    Tlpb__GuestMemory gm = TLPB__GUEST_MEMORY__INIT;
    gm.n_regions = n;
    gm.regions = region_ptr;
    gm.fd_count = n;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_GUEST_MEMORY;
    env.guest_memory = &gm;
    int rc = send_with_fds(h, &env, fds, n);
    if (rc == 0) {
        h->stats.guest_memory_shared = true;
        host_log(h, TLPB_HOST_LOG_INFO, "guest memory shared with the bridge: %u region(s)", n);
    }
    return rc;
}

static void close_guest_memory(struct tlpb_host *h)
{
    for (unsigned i = 0; i < h->guest_memory.n; i++)
        close(h->guest_memory.regions[i].fd);
    h->guest_memory.n = 0;
}

static const char *ring_policy_name(enum tlpb_host_ring_policy policy)
{
    return policy == TLPB_HOST_RING_BUSY_POLL ? "busy-poll" : "adaptive";
}

/* Create this connection's ring and hand it to the bridge (RingSetup with
 * its three descriptors); from then on every message goes through it.
 * Returns 0 (also when no ring could be made: the socket carries on), or
 * -ENOTCONN when the connection had to be dropped. */
static int ring_start(struct tlpb_host *h)
{
    struct tlpb_ring *ring;
    int fds[TLPB_RING_FD_COUNT];
    char err[256];
    if (tlpb_ring_create(&ring, TLPB_RING_DEFAULT_BYTES, fds, err, sizeof(err)) != 0) {
        host_log(h, TLPB_HOST_LOG_WARN, "no shared-memory ring (%s): messages stay on the socket",
                 err);
        return 0;
    }
    Tlpb__RingSetup rs = TLPB__RING_SETUP__INIT;
    rs.ring_bytes = TLPB_RING_DEFAULT_BYTES;
    rs.host_policy = (char *)ring_policy_name(h->cfg.ring_policy);
    rs.host_spin_us = h->cfg.ring_spin_us;
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_RING_SETUP;
    env.ring_setup = &rs;
    /* Sent on the socket behind everything queued; only then is the ring ours. */
    if (send_with_fds(h, &env, fds, TLPB_RING_FD_COUNT) != 0) {
        tlpb_ring_destroy(ring);
        return -ENOTCONN;
    }
    h->ring = ring;
    h->ring_armed = false;
    h->ring_unnotified_bytes = 0;
    h->stats.ring_active = true;
    if (h->epoll_fd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = tlpb_ring_wake_fd(ring)};
        epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, tlpb_ring_wake_fd(ring), &ev);
    }
    host_log(h, TLPB_HOST_LOG_INFO, "messages go through the shared-memory ring (%s)",
             rs.host_policy);
    return 0;
}

/* Connected, or reconnected if the retry interval has passed. */
static int host_config_write(struct tlpb_host *h, uint16_t reg, uint32_t value, uint8_t be);

/* A bridge that comes back (restarted) has not seen the config writes that
 * matter; the caller says which (ops.config_replay) and they go out before
 * any request does, so the device never sees an access it would refuse
 * (memory space still disabled) from a guest that enabled it long ago. */
static void replay_config(struct tlpb_host *h)
{
    if (!h->ops.config_replay || !h->connected)
        return;
    struct tlpb_host_config_reg regs[TLPB_HOST_MAX_REPLAY_REGS];
    unsigned n = h->ops.config_replay(h->opaque, regs, TLPB_HOST_MAX_REPLAY_REGS);
    if (n > TLPB_HOST_MAX_REPLAY_REGS)
        n = TLPB_HOST_MAX_REPLAY_REGS;
    for (unsigned i = 0; i < n && h->connected; i++)
        host_config_write(h, regs[i].reg, regs[i].value, regs[i].be);
}

static bool ensure_connected(struct tlpb_host *h)
{
    if (h->connected)
        return true;
    if (tlpb_now_ns() < h->next_reconnect_ns)
        return false;
    if (try_connect(h) != 0)
        return false;
    replay_config(h);
    return h->connected;
}

/* Move the frames queued in ob into the ring, in order, as far as it has
 * room. Returns 0 (all moved), -EAGAIN (the ring is full: the rest waits),
 * or -ENOTCONN (the connection had to be dropped). */
static int ring_move_out(struct tlpb_host *h)
{
    while (tlpb_obuf_pending(&h->ob)) {
        const uint8_t *head = tlpb_obuf_head(&h->ob);
        size_t len = tlpb_get_le32(head);
        const char *reason = NULL;
        Tlpb__Envelope *env = tlpb_envelope_decode(head + TLPB_FRAME_PREFIX_BYTES, len, &reason);
        if (!env) { /* we framed it ourselves: cannot happen */
            disconnect(h, reason);
            return -ENOTCONN;
        }
        int rc;
        struct tlpb_tlp tlp;
        if (env->body_case == TLPB__ENVELOPE__BODY_TLP &&
            tlpb_tlp_from_pb(&tlp, env->tlp, &reason) == 0)
            rc = tlpb_ring_put_tlp(h->ring, &tlp);
        else
            rc = tlpb_ring_put_envelope(h->ring, env);
        tlpb_envelope_free(env);
        if (rc == -EAGAIN)
            return -EAGAIN;
        if (rc) {
            disconnect(h, rc == -EPROTO ? tlpb_ring_error(h->ring) : strerror(-rc));
            return -ENOTCONN;
        }
        tlpb_obuf_consume(&h->ob, TLPB_FRAME_PREFIX_BYTES + len);
    }
    return 0;
}

/* Send what is queued without blocking on the ring (used while serving the
 * bridge: what does not fit yet stays queued, in order). On the socket,
 * everything is written. Returns 0 or -ENOTCONN. */
static int send_queued(struct tlpb_host *h)
{
    if (!h->connected)
        return -ENOTCONN;
    if (!h->ring) {
        int rc = tlpb_obuf_write_all(&h->ob, h->fd);
        if (rc) {
            disconnect(h, strerror(-rc));
            return -ENOTCONN;
        }
        return 0;
    }
    if (ring_move_out(h) == -ENOTCONN)
        return -ENOTCONN;
    tlpb_ring_notify(h->ring);
    h->ring_unnotified_bytes = 0;
    return 0;
}

/* Send everything queued. On the ring, wait for room while taking what the
 * bridge sends meanwhile (it may itself wait for room in the other
 * direction), for at most read_timeout_ms without progress. */
static int flush_output(struct tlpb_host *h)
{
    if (send_queued(h) != 0)
        return -ENOTCONN;
    uint64_t deadline = tlpb_now_ns() + (uint64_t)h->cfg.read_timeout_ms * 1000000u;
    while (h->ring && tlpb_obuf_pending(&h->ob)) {
        size_t before = tlpb_obuf_pending(&h->ob);
        uint64_t now = tlpb_now_ns();
        if (now >= deadline) {
            disconnect(h, "the bridge took nothing from the shared-memory ring in time");
            return -ENOTCONN;
        }
        if (pump(h, (int)((deadline - now + 999999u) / 1000000u)) == -ENOTCONN)
            return -ENOTCONN;
        if (send_queued(h) != 0)
            return -ENOTCONN;
        if (tlpb_obuf_pending(&h->ob) < before)
            deadline = tlpb_now_ns() + (uint64_t)h->cfg.read_timeout_ms * 1000000u;
    }
    return 0;
}

/* Queue one TLP for the bridge: straight into the ring when nothing is
 * queued before it (no protobuf on the hot path), else behind the rest. */
static int queue_tlp(struct tlpb_host *h, const struct tlpb_tlp *tlp)
{
    if (h->ring && tlpb_obuf_pending(&h->ob) == 0) {
        int rc = tlpb_ring_put_tlp(h->ring, tlp);
        if (rc == 0) {
            h->ring_unnotified_bytes += 32u + tlp->payload_bytes;
            return 0;
        }
        if (rc == -EPROTO) {
            disconnect(h, tlpb_ring_error(h->ring));
            return -ENOTCONN;
        }
        /* -EAGAIN: full, queued below and moved when room appears */
    }
    return tlpb_obuf_append_tlp(&h->ob, tlp, true);
}

/* Bytes waiting to be sent or put without a wake-up: a write batch. */
static size_t batch_bytes(const struct tlpb_host *h)
{
    return tlpb_obuf_pending(&h->ob) + h->ring_unnotified_bytes;
}

/* ---- Serving the device ----------------------------------------------------- */

static void send_completion(struct tlpb_host *h, struct tlpb_tlp *cpl)
{
    cpl->sim_time_ps = stamp(h);
    mark_busy(h);
    int rc = queue_tlp(h, cpl);
    if (rc)
        host_log(h, TLPB_HOST_LOG_ERROR, "cannot queue completion: %s", strerror(-rc));
}

struct dma_read_ctx {
    struct tlpb_host *h;
    int status;    /* what ops.dma_read said */
};

static int dma_read_guest(void *opaque, uint64_t addr, void *dst, uint32_t bytes)
{
    struct dma_read_ctx *ctx = opaque;
    ctx->status = ctx->h->ops.dma_read(ctx->h->opaque, addr, dst, bytes);
    return ctx->status == 0 ? 0 : ctx->status == TLPB_CPL_CA ? TLPB_CPL_CA : TLPB_CPL_UR;
}

static void dma_emit_completion(void *opaque, struct tlpb_tlp *cpl)
{
    struct dma_read_ctx *ctx = opaque;
    send_completion(ctx->h, cpl);
}

/* Completions built as tlpbridged builds them from shared guest memory
 * (tlpb/dma.h): one implementation of the root complex's splitting. */
static void serve_dma_read(struct tlpb_host *h, const struct tlpb_tlp *req)
{
    uint32_t bytes = tlpb_tlp_request_bytes(req);
    uint64_t addr = tlpb_tlp_first_byte_address(req);
    struct dma_read_ctx ctx = {.h = h, .status = 0};
    h->stats.dma_reads++;
    enum tlpb_cpl_status st = tlpb_dma_serve_read(
        &h->dma_scratch, req, h->cfg.requester_id, tlpb_cfg_max_payload_bytes(&h->shadow),
        h->unsplit_dma, dma_read_guest, &ctx, dma_emit_completion, &ctx);
    if (st == TLPB_CPL_SC) {
        h->stats.dma_read_bytes += bytes;
    } else if (ctx.status != 0) {
        h->stats.dma_errors++;
        host_log(h, TLPB_HOST_LOG_DEBUG, "DMA read of %u bytes at 0x%llx: not guest memory", bytes,
                 (unsigned long long)addr);
    }
}

static bool be_contiguous(uint8_t first_be, uint8_t last_be, uint32_t length_dw)
{
    if (length_dw == 1)
        return first_be == 0x1 || first_be == 0x3 || first_be == 0x7 || first_be == 0xF ||
               first_be == 0x2 || first_be == 0x6 || first_be == 0xE || first_be == 0x4 ||
               first_be == 0xC || first_be == 0x8;
    bool first_ok = first_be == 0xF || first_be == 0xE || first_be == 0xC || first_be == 0x8;
    bool last_ok = last_be == 0x1 || last_be == 0x3 || last_be == 0x7 || last_be == 0xF;
    return first_ok && last_ok;
}

static void serve_dma_write(struct tlpb_host *h, const struct tlpb_tlp *req)
{
    h->stats.dma_writes++;
    uint32_t bytes = tlpb_tlp_request_bytes(req);
    if (bytes == 0)
        return; /* zero-length write: nothing to do */
    int st = 0;
    if (be_contiguous(req->first_be, req->last_be, req->length_dw)) {
        uint64_t addr = tlpb_tlp_first_byte_address(req);
        st = h->ops.dma_write(h->opaque, addr, req->payload + (addr - req->address), bytes);
    } else {
        /* Sparse byte enables (1-2 DW writes only): byte by byte. */
        for (uint32_t i = 0; i < req->length_dw * 4u && st == 0; i++) {
            uint8_t be = i < 4 ? req->first_be : (i >= (req->length_dw - 1) * 4u ? req->last_be : 0xF);
            if (be & (1u << (i & 3)))
                st = h->ops.dma_write(h->opaque, req->address + i, req->payload + i, 1);
        }
    }
    if (st != 0) {
        h->stats.dma_errors++;
        host_log(h, TLPB_HOST_LOG_DEBUG, "DMA write of %u bytes at 0x%llx: not guest memory",
                 bytes, (unsigned long long)req->address);
        /* A posted write has no completion: the bridge hears of the fault
         * from us (docs/protocol.md, "DMA faults"). */
        tlpb_obuf_append_dma_fault(&h->ob,
                                   "DMA write refused: not guest memory or not mapped for the device",
                                   tlpb_tlp_first_byte_address(req), bytes);
    } else {
        h->stats.dma_write_bytes += bytes;
    }
}

static void deliver_interrupt(struct tlpb_host *h, enum tlpb_host_irq_kind kind, unsigned vector)
{
    h->stats.interrupts++;
    if (kind == TLPB_HOST_IRQ_MSIX && h->cfg.msix_table_external) {
        if (vector >= h->desc.msix_vectors) {
            host_log(h, TLPB_HOST_LOG_WARN, "MSI-X vector %u out of range: dropped", vector);
            return;
        }
    } else if (kind == TLPB_HOST_IRQ_MSIX) {
        if (vector >= h->msix.vectors) {
            host_log(h, TLPB_HOST_LOG_WARN, "MSI-X vector %u out of range: dropped", vector);
            return;
        }
        if (!tlpb_cfg_msix_enabled(&h->shadow)) {
            host_log(h, TLPB_HOST_LOG_WARN, "MSI-X vector %u while MSI-X is disabled: dropped",
                     vector);
            return;
        }
        if (tlpb_cfg_msix_function_masked(&h->shadow) || tlpb_msix_vector_masked(&h->msix, vector)) {
            tlpb_msix_set_pending(&h->msix, vector);
            return;
        }
    }
    h->ops.interrupt(h->opaque, kind, vector);
}

/* Unmasking delivers what was held pending. */
static void msix_deliver_pending(struct tlpb_host *h)
{
    if (!tlpb_cfg_msix_enabled(&h->shadow) || tlpb_cfg_msix_function_masked(&h->shadow))
        return;
    int v;
    while ((v = tlpb_msix_take_deliverable(&h->msix)) >= 0)
        h->ops.interrupt(h->opaque, TLPB_HOST_IRQ_MSIX, (unsigned)v);
}

static void take_completion(struct tlpb_host *h, const struct tlpb_tlp *cpl)
{
    if (!h->wait.active || h->wait.done || cpl->tag != h->wait.tag) {
        host_log(h, TLPB_HOST_LOG_WARN, "completion for tag %u matches no request: dropped", cpl->tag);
        return;
    }
    /* Every completion of the request carries the device's clock; the
     * final one's is when the data is all there. */
    h->last_completion_ps = cpl->sim_time_ps;
    if (cpl->status != TLPB_CPL_SC || cpl->kind == TLPB_TLP_CPL) {
        h->wait.status = (int)cpl->status;
        h->wait.done = true;
        return;
    }
    uint32_t total = h->wait.total_bytes;
    if (cpl->byte_count > total || cpl->byte_count == 0) {
        h->wait.status = TLPB_CPL_CA;
        h->wait.done = true;
        return;
    }
    uint32_t offset = total - cpl->byte_count;
    uint32_t lead = cpl->lower_address & 3u;
    uint32_t avail = cpl->payload_bytes > lead ? cpl->payload_bytes - lead : 0;
    uint32_t n = avail < cpl->byte_count ? avail : cpl->byte_count;
    if (offset + n > sizeof(h->wait.data))
        n = (uint32_t)sizeof(h->wait.data) - offset;
    memcpy(h->wait.data + offset, cpl->payload + lead, n);
    h->wait.received_bytes += n;
    if (n >= cpl->byte_count) {
        h->wait.status = 0;
        h->wait.done = true;
    }
}

static void take_time_sync(struct tlpb_host *h, const Tlpb__TimeSync *ts)
{
    if (ts->kind == TLPB__TIME_SYNC_KIND__TIME_SYNC_PROGRESS)
        return; /* a slow simulator lives: the frame itself ends the silence */
    if (ts->kind != TLPB__TIME_SYNC_KIND__TIME_SYNC_REACHED) {
        host_log(h, TLPB_HOST_LOG_WARN, "TimeSync of kind %d is not for a host: ignored",
                 (int)ts->kind);
        return;
    }
    if (!h->grant.active || h->grant.done || ts->sync_id != h->grant.sync_id) {
        /* e.g. the answer to a grant that timed out */
        host_log(h, TLPB_HOST_LOG_DEBUG, "REACHED %llu answers no pending grant: ignored",
                 (unsigned long long)ts->sync_id);
        return;
    }
    h->grant.reached.sim_time_ps = ts->sim_time_ps;
    h->grant.reached.idle = ts->idle;
    h->grant.reached.next_event_ps = ts->idle ? ts->next_event_ps : 0;
    h->grant.status = 0;
    h->grant.done = true;
}

/* A TLP from the device, from a frame or a ring record (decoded: its fields
 * fit their PCIe widths; else reason says why not). */
static void handle_tlp(struct tlpb_host *h, const struct tlpb_tlp *tlp, bool decoded,
                       const char *reason)
{
    struct tlpb_tlp_limits lim = {.max_payload_bytes = 4096, .unsplit = h->unsplit_dma};
    if (!decoded || tlpb_tlp_validate(tlp, &lim, &reason) != 0) {
        host_log(h, TLPB_HOST_LOG_WARN, "malformed TLP from the device dropped: %s", reason);
        if (tlp->kind == TLPB_TLP_MRD) {
            struct tlpb_tlp cpl;
            tlpb_completion_error_for(&cpl, tlp, h->cfg.requester_id, TLPB_CPL_UR);
            send_completion(h, &cpl);
        }
        return;
    }
    switch (tlp->kind) {
    case TLPB_TLP_MRD:
        serve_dma_read(h, tlp);
        break;
    case TLPB_TLP_MWR:
        serve_dma_write(h, tlp);
        break;
    case TLPB_TLP_CPL:
    case TLPB_TLP_CPLD:
        take_completion(h, tlp);
        break;
    default:
        host_log(h, TLPB_HOST_LOG_WARN, "%s from the device: UR", tlpb_tlp_kind_name(tlp->kind));
        break;
    }
}

static void handle_envelope(struct tlpb_host *h, const Tlpb__Envelope *env)
{
    switch (env->body_case) {
    case TLPB__ENVELOPE__BODY_TLP: {
        struct tlpb_tlp tlp;
        const char *reason = NULL;
        bool decoded = tlpb_tlp_from_pb(&tlp, env->tlp, &reason) == 0;
        handle_tlp(h, &tlp, decoded, reason);
        break;
    }
    case TLPB__ENVELOPE__BODY_INTERRUPT:
        deliver_interrupt(h, (enum tlpb_host_irq_kind)env->interrupt->kind, env->interrupt->vector);
        break;
    case TLPB__ENVELOPE__BODY_EVENT: {
        const Tlpb__Event *ev = env->event;
        h->simulator_attached = strcmp(ev->backend, "fallback") != 0;
        host_log(h, TLPB_HOST_LOG_INFO, "bridge: %s (backend %s)", ev->detail, ev->backend);
        if (h->ops.link_changed)
            h->ops.link_changed(h->opaque, true, h->simulator_attached);
        break;
    }
    case TLPB__ENVELOPE__BODY_ERROR:
        /* A bridge that grants the capability but does not take TimeSync
         * from a host (it names the message it refused): run free rather
         * than wait for a REACHED that never comes. */
        if (h->grant.active && !h->grant.done && strstr(env->error->reason, "TimeSync")) {
            h->grant.done = true;
            h->grant.status = -EPROTONOSUPPORT;
            time_run_free(h, env->error->reason);
            break;
        }
        host_log(h, TLPB_HOST_LOG_WARN, "bridge reports: %s", env->error->reason);
        /* A bridge that cannot use our ring drops the connection after
         * saying so: the next connections stay on the socket rather than
         * fail the same way every reconnect interval. */
        if (h->ring && strstr(env->error->reason, "RingSetup") && !h->ring_refused) {
            h->ring_refused = true;
            host_log(h, TLPB_HOST_LOG_WARN, "the bridge refused the shared-memory ring: messages"
                                            " stay on the socket from the next connection on");
        }
        break;
    case TLPB__ENVELOPE__BODY_TIME_SYNC:
        take_time_sync(h, env->time_sync);
        break;
    default:
        break;
    }
}

/* Handle every complete frame buffered. Returns frames handled or -1 when
 * the connection had to be dropped. */
static int drain_frames(struct tlpb_host *h)
{
    int handled = 0;
    const uint8_t *frame;
    size_t len;
    const char *reason = NULL;
    while (h->connected) {
        int rc = tlpb_reader_next(&h->rd, &frame, &len, &reason);
        if (rc == 0)
            break;
        if (rc < 0) {
            disconnect(h, reason);
            return -1;
        }
        Tlpb__Envelope *env = tlpb_envelope_decode(frame, len, &reason);
        if (!env) {
            disconnect(h, reason);
            return -1;
        }
        handle_envelope(h, env);
        tlpb_envelope_free(env);
        handled++;
    }
    return handled;
}

/* Read what the socket has (without waiting) and handle it. Returns frames
 * handled, or -ENOTCONN when the bridge hung up or sent garbage. */
static int socket_read(struct tlpb_host *h)
{
    size_t space;
    uint8_t *dst = tlpb_reader_space(&h->rd, 256 * 1024, &space);
    if (!dst) {
        disconnect(h, "out of memory");
        return -ENOTCONN;
    }
    ssize_t n = recv(h->fd, dst, space, MSG_DONTWAIT);
    if (n == 0) {
        disconnect(h, "bridge closed the connection");
        return -ENOTCONN;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        disconnect(h, strerror(errno));
        return -ENOTCONN;
    }
    tlpb_reader_commit(&h->rd, (size_t)n);
    int handled = drain_frames(h);
    return handled < 0 ? -ENOTCONN : handled;
}

/* Handle the records waiting in the ring (a bounded number: a bridge that
 * keeps sending cannot keep the caller here). Returns records handled, or
 * -ENOTCONN when the ring held garbage (the connection is dropped). */
static int ring_serve(struct tlpb_host *h)
{
    int handled = 0;
    while (h->ring && handled < 4096) {
        struct tlpb_ring_msg m;
        int rc = tlpb_ring_get(h->ring, &m);
        if (rc == 0)
            break;
        if (rc < 0) {
            disconnect(h, tlpb_ring_error(h->ring));
            return -ENOTCONN;
        }
        handled++;
        switch (m.type) {
        case TLPB_RING_MSG_TLP:
            handle_tlp(h, &m.tlp, true, NULL);
            break;
        case TLPB_RING_MSG_INTERRUPT:
            deliver_interrupt(h, (enum tlpb_host_irq_kind)m.irq_kind, m.irq_vector);
            break;
        case TLPB_RING_MSG_ENVELOPE:
            handle_envelope(h, m.env);
            tlpb_envelope_free(m.env);
            break;
        }
    }
    return h->connected ? handled : -ENOTCONN;
}

static int ring_then_socket(struct tlpb_host *h);

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* Serve what arrived (socket frames already buffered, ring records); then
 * send what that produced. Returns messages handled or -ENOTCONN. */
static int serve_arrived(struct tlpb_host *h)
{
    /* Frames that arrived together with an earlier one are already in the
     * buffer; the socket will not signal them again. */
    int handled = drain_frames(h);
    if (handled < 0)
        return -ENOTCONN;
    int records = ring_serve(h);
    if (records < 0)
        return -ENOTCONN;
    handled += records;
    if (handled > 0 || tlpb_obuf_pending(&h->ob))
        if (send_queued(h) != 0)
            return -ENOTCONN;
    return handled;
}

/* The ring's wait: poll it (and retry what is queued for want of room) for
 * ring_spin_us (adaptive) or until timeout_ms (busy-poll, looking at the
 * socket about every millisecond for a hang-up), then sleep on the wake-host
 * eventfd and the socket. Returns messages handled, 0 on timeout (or room
 * freed), or -ENOTCONN. */
static int ring_wait(struct tlpb_host *h, int timeout_ms)
{
    uint64_t start = tlpb_now_ns();
    uint64_t end = timeout_ms < 0 ? UINT64_MAX : start + (uint64_t)timeout_ms * 1000000u;
    bool busy = h->cfg.ring_policy == TLPB_HOST_RING_BUSY_POLL;
    uint64_t spin_end = busy ? end : start + (uint64_t)h->cfg.ring_spin_us * 1000u;
    if (spin_end > end)
        spin_end = end;
    uint64_t next_socket_look = start + 1000000u;
    for (uint64_t now = start; now < spin_end; now = tlpb_now_ns()) {
        for (int i = 0; i < 64; i++) {
            if (tlpb_ring_pending(h->ring))
                return serve_arrived(h);
            cpu_relax();
        }
        if (tlpb_obuf_pending(&h->ob)) {
            size_t before = tlpb_obuf_pending(&h->ob);
            if (send_queued(h) != 0)
                return -ENOTCONN;
            if (tlpb_obuf_pending(&h->ob) < before)
                return 0; /* room appeared: the caller's flush goes on */
        }
        if (now >= next_socket_look) {
            next_socket_look = now + 1000000u;
            struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
            if (poll(&pfd, 1, 0) > 0)
                return ring_then_socket(h);
        }
    }
    uint64_t now = tlpb_now_ns();
    if (now >= end && timeout_ms >= 0) {
        /* No wait at all (a poll): still notice a bridge that hung up. */
        struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
        return poll(&pfd, 1, 0) > 0 ? ring_then_socket(h) : 0;
    }
    if (!tlpb_ring_prepare_sleep(h->ring)) {
        tlpb_ring_woken(h->ring);
        return serve_arrived(h);
    }
    h->stats.ring_sleeps++;
    struct pollfd pfd[2] = {{.fd = tlpb_ring_wake_fd(h->ring), .events = POLLIN},
                            {.fd = h->fd, .events = POLLIN}};
    int wait_ms = timeout_ms < 0 ? -1 : (int)((end - now + 999999u) / 1000000u);
    int prc = poll(pfd, 2, wait_ms);
    tlpb_ring_woken(h->ring);
    if (prc < 0)
        return errno == EINTR ? 0 : -errno;
    /* The ring first: what the bridge put there before it hung up is still
     * valid (a completion, its last Error). */
    int handled = serve_arrived(h);
    if (handled < 0 || prc == 0 || !pfd[1].revents)
        return handled;
    int n = socket_read(h);
    return n < 0 ? (handled > 0 ? handled : n) : handled + n;
}

/* The socket said something (data or a hang-up): take the ring's records
 * first, then the socket. */
static int ring_then_socket(struct tlpb_host *h)
{
    int handled = serve_arrived(h);
    if (handled < 0)
        return handled;
    int n = socket_read(h);
    return n < 0 ? (handled > 0 ? handled : n) : handled + n;
}

/* Wait up to timeout_ms for something from the bridge, handle what came,
 * and send what that produced. */
static int pump(struct tlpb_host *h, int timeout_ms)
{
    if (!h->connected)
        return -ENOTCONN;
    if (h->ring_armed) { /* the caller's asleep flag is of no use while we are here */
        h->ring_armed = false;
        /* Drain the eventfd only if the bridge wrote it: no system call on
         * a request made while nothing arrived. A wake-up written after this
         * look leaves the fd readable; tlpb_host_poll drains it then. */
        if (tlpb_ring_cancel_sleep(h->ring))
            tlpb_ring_woken(h->ring);
    }
    int handled = serve_arrived(h);
    if (handled != 0)
        return handled;
    if (h->ring)
        return ring_wait(h, timeout_ms);
    struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
    int prc = poll(&pfd, 1, timeout_ms);
    if (prc < 0)
        return errno == EINTR ? 0 : -errno;
    if (prc == 0)
        return 0;
    handled = socket_read(h);
    if (handled > 0 && send_queued(h) != 0)
        return -ENOTCONN;
    return handled;
}

/* Before returning to the caller: set the asleep flag, so that the bridge
 * wakes the caller's main loop (tlpb_host_fd) for what it sends next. If
 * records arrived meanwhile, serve them first; a bridge that keeps sending
 * gets the caller's fd made readable instead. */
static void ring_arm(struct tlpb_host *h)
{
    for (int i = 0; i < 8 && h->ring; i++) {
        if (tlpb_ring_prepare_sleep(h->ring)) {
            h->ring_armed = true;
            return;
        }
        tlpb_ring_woken(h->ring);
        if (serve_arrived(h) < 0)
            return;
    }
    if (h->ring) {
        uint64_t one = 1;
        ssize_t ignored = write(tlpb_ring_wake_fd(h->ring), &one, sizeof(one));
        (void)ignored;
    }
}

/* Send req and serve everything else until its completion arrives. */
static int request_and_wait(struct tlpb_host *h, struct tlpb_tlp *req, uint32_t total_bytes)
{
    req->tag = h->next_tag++;
    req->requester_id = h->cfg.requester_id;
    req->sim_time_ps = stamp(h);
    h->last_completion_ps = 0;
    int rc = queue_tlp(h, req);
    if (rc)
        return rc;
    mark_busy(h);
    h->wait.active = true;
    h->wait.done = false;
    h->wait.tag = req->tag;
    h->wait.status = 0;
    h->wait.total_bytes = total_bytes;
    h->wait.received_bytes = 0;
    memset(h->wait.data, 0, sizeof(h->wait.data));
    if (flush_output(h) != 0) {
        h->wait.active = false;
        return -ENOTCONN;
    }
    uint64_t deadline = tlpb_now_ns() + (uint64_t)h->cfg.read_timeout_ms * 1000000u;
    while (!h->wait.done) {
        uint64_t now = tlpb_now_ns();
        if (now >= deadline) {
            host_log(h, TLPB_HOST_LOG_ERROR, "%s tag %u: no completion within %u ms",
                     tlpb_tlp_kind_name(req->kind), req->tag, h->cfg.read_timeout_ms);
            h->wait.active = false;
            return -ETIMEDOUT;
        }
        int prc = pump(h, (int)((deadline - now + 999999u) / 1000000u));
        if (prc == -ENOTCONN)
            break;
        /* Coupled, a slow simulator is still alive while it sends. */
        if (prc > 0 && h->time_coupled)
            deadline = tlpb_now_ns() + (uint64_t)h->cfg.read_timeout_ms * 1000000u;
    }
    h->wait.active = false;
    return h->wait.done ? h->wait.status : -ENOTCONN;
}

/* ---- Public API -------------------------------------------------------------- */

int tlpb_host_open(struct tlpb_host **out, const struct tlpb_host_config *cfg,
                   const struct tlpb_host_ops *ops, void *opaque, char *err, size_t err_size)
{
    if (!cfg || !cfg->address || !cfg->device_name || !ops || !ops->dma_read || !ops->dma_write ||
        !ops->interrupt) {
        snprintf(err, err_size, "address, device name and the dma_read, dma_write and interrupt"
                                " callbacks are required");
        return -EINVAL;
    }
    if (strlen(cfg->address) >= sizeof(((struct tlpb_host *)0)->address) ||
        strlen(cfg->device_name) >= sizeof(((struct tlpb_host *)0)->device_name) ||
        !cfg->device_name[0]) {
        snprintf(err, err_size, "address or device name too long or empty");
        return -EINVAL;
    }
    if (cfg->token && strlen(cfg->token) > TLPB_TOKEN_MAX_BYTES) {
        snprintf(err, err_size, "token longer than %u bytes", TLPB_TOKEN_MAX_BYTES);
        return -EINVAL;
    }
    enum tlpb_host_ring_policy ring_policy = cfg->ring_policy;
    if (ring_policy != TLPB_HOST_RING_ADAPTIVE && ring_policy != TLPB_HOST_RING_BUSY_POLL &&
        ring_policy != TLPB_HOST_RING_OFF) {
        snprintf(err, err_size, "unknown ring policy %d", (int)ring_policy);
        return -EINVAL;
    }
    const char *ring_env = getenv("TLPB_RING");
    if (ring_env && ring_env[0]) {
        enum tlpb_ring_policy p;
        if (tlpb_ring_policy_from_name(ring_env, &p) != 0) {
            snprintf(err, err_size, "TLPB_RING=%s: not a ring policy (adaptive, busy-poll or off)",
                     ring_env);
            return -EINVAL;
        }
        ring_policy = p == TLPB_RING_BUSY_POLL ? TLPB_HOST_RING_BUSY_POLL
                      : p == TLPB_RING_OFF     ? TLPB_HOST_RING_OFF
                                               : TLPB_HOST_RING_ADAPTIVE;
    }
    struct tlpb_host *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, err_size, "out of memory");
        return -ENOMEM;
    }
    h->cfg = *cfg;
    strcpy(h->address, cfg->address);
    strcpy(h->device_name, cfg->device_name);
    snprintf(h->token, sizeof(h->token), "%s", cfg->token ? cfg->token : "");
    h->cfg.token = h->token;
    h->cfg.address = h->address;
    h->cfg.device_name = h->device_name;
    if (!h->cfg.read_timeout_ms)
        h->cfg.read_timeout_ms = 30000;
    if (!h->cfg.write_batch_bytes)
        h->cfg.write_batch_bytes = 64 * 1024;
    if (!h->cfg.reconnect_interval_ms)
        h->cfg.reconnect_interval_ms = 1000;
    if (!h->cfg.device_bdf)
        h->cfg.device_bdf = 0x0100;
    h->cfg.ring_policy = ring_policy;
    if (!h->cfg.ring_spin_us)
        h->cfg.ring_spin_us = TLPB_RING_DEFAULT_SPIN_US;
    /* One descriptor for the caller to watch, whatever the connection and
     * its ring; without it, the socket's (which changes on reconnect). */
    h->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    h->ops = *ops;
    h->opaque = opaque;
    h->fd = -1;
    try_connect(h);
    ring_arm(h);
    *out = h;
    return 0;
}

void tlpb_host_close(struct tlpb_host *h)
{
    if (!h)
        return;
    if (h->connected) {
        flush_output(h);
        ring_stop(h);
        close(h->fd);
    }
    if (h->epoll_fd >= 0)
        close(h->epoll_fd);
    tlpb_reader_free(&h->rd);
    tlpb_obuf_free(&h->ob);
    tlpb_dma_scratch_free(&h->dma_scratch);
    tlpb_msix_fini(&h->msix);
    close_guest_memory(h);
    free(h);
}

static int host_set_guest_memory(struct tlpb_host *h, const struct tlpb_host_memory_region *regions,
                               unsigned n)
{
    if (n > HOST_MAX_GUEST_REGIONS || (n > 0 && !regions))
        return -EINVAL;
    for (unsigned i = 0; i < n; i++) {
        const struct tlpb_host_memory_region *r = &regions[i];
        if (r->fd < 0 || r->size_bytes == 0 || r->bus_address + r->size_bytes < r->bus_address ||
            r->fd_offset + r->size_bytes < r->fd_offset)
            return -EINVAL;
    }
    struct tlpb_host_memory_region copy[HOST_MAX_GUEST_REGIONS];
    for (unsigned i = 0; i < n; i++) {
        copy[i] = regions[i];
        copy[i].fd = fcntl(regions[i].fd, F_DUPFD_CLOEXEC, 0);
        if (copy[i].fd < 0) {
            int e = errno;
            while (i-- > 0)
                close(copy[i].fd);
            return -e;
        }
    }
    close_guest_memory(h);
    memcpy(h->guest_memory.regions, copy, sizeof(copy[0]) * n);
    h->guest_memory.n = n;
    h->guest_memory.set = true;
    h->stats.guest_memory_shared = false;
    if (h->connected)
        send_guest_memory(h); /* a failure drops the connection: sent again on reconnect */
    return 0;
}

bool tlpb_host_connected(const struct tlpb_host *h) { return h->connected; }
bool tlpb_host_simulator_attached(const struct tlpb_host *h) { return h->connected && h->simulator_attached; }
int tlpb_host_fd(const struct tlpb_host *h)
{
    if (h->epoll_fd >= 0)
        return h->epoll_fd;
    return h->connected ? h->fd : -1;
}

const struct tlpb_devdesc *tlpb_host_description(const struct tlpb_host *h)
{
    return h->have_desc ? &h->desc : NULL;
}

static int host_config_read(struct tlpb_host *h, uint16_t reg, uint32_t *value)
{
    h->last_completion_ps = 0; /* a local answer has no device time */
    h->stats.reads++;
    *value = fallback_value(h);
    if (reg >= TLPB_CFG_SIZE || (reg & 3u))
        return -EINVAL;
    if (!ensure_connected(h)) {
        h->stats.fallback_reads++;
        return -ENOTCONN;
    }
    struct tlpb_tlp req = {.kind = TLPB_TLP_CFGRD0, .length_dw = 1, .first_be = 0xF,
                           .completer_id = h->cfg.device_bdf, .cfg_register = reg,
                           .bar_hint = TLPB_NO_BAR};
    int rc = request_and_wait(h, &req, 4);
    if (rc == 0) {
        memcpy(value, h->wait.data, 4);
    } else if (rc > 0) {
        *value = 0xFFFFFFFFu;
    } else {
        h->stats.fallback_reads++;
    }
    return rc;
}

static int host_config_write(struct tlpb_host *h, uint16_t reg, uint32_t value, uint8_t be)
{
    h->last_completion_ps = 0; /* a local answer has no device time */
    h->stats.writes++;
    if (reg >= TLPB_CFG_SIZE || (reg & 3u) || be > 0xF)
        return -EINVAL;
    unsigned changes = 0;
    if (h->have_desc) {
        changes = tlpb_cfgspace_write(&h->shadow, reg, value, be);
        if (changes & TLPB_CFG_FLR_REQUESTED)
            tlpb_cfgspace_reset(&h->shadow);
    }
    if (changes & (TLPB_CFG_CHANGED_MSIX | TLPB_CFG_CHANGED_COMMAND))
        msix_deliver_pending(h);
    if (!ensure_connected(h)) {
        h->stats.dropped_writes++;
        return -ENOTCONN;
    }
    uint8_t payload[4];
    tlpb_put_le32(payload, value);
    struct tlpb_tlp req = {.kind = TLPB_TLP_CFGWR0, .length_dw = 1, .first_be = be,
                           .completer_id = h->cfg.device_bdf, .cfg_register = reg,
                           .bar_hint = TLPB_NO_BAR, .payload_bytes = 4, .payload = payload};
    return request_and_wait(h, &req, 4);
}

/* The MSI-X table and PBA live here, as in QEMU. Returns true if handled. */
static bool msix_access(struct tlpb_host *h, int bar, uint64_t addr, void *buf, unsigned len,
                        bool is_write)
{
    if (h->msix.vectors == 0 || bar < 0)
        return false;
    uint64_t base = tlpb_cfg_bar_address(&h->shadow, (unsigned)bar);
    if (addr < base)
        return false;
    uint64_t off = addr - base;
    if (!tlpb_msix_hit(&h->msix, (unsigned)bar, off) ||
        !tlpb_msix_hit(&h->msix, (unsigned)bar, off + len - 1))
        return false;
    if (is_write) {
        tlpb_msix_write(&h->msix, (unsigned)bar, off, buf, len);
        msix_deliver_pending(h);
    } else {
        tlpb_msix_read(&h->msix, (unsigned)bar, off, buf, len);
    }
    return true;
}

static int host_mem_read(struct tlpb_host *h, int bar, uint64_t addr, void *buf, unsigned len)
{
    h->last_completion_ps = 0; /* a local answer has no device time */
    h->stats.reads++;
    if (len == 0 || len > 8 || ((addr & 3u) + len > 8)) {
        fill_fallback(h, buf, len > 8 ? 8 : len);
        return -EINVAL;
    }
    if (msix_access(h, bar, addr, buf, len, false))
        return 0;
    if (!ensure_connected(h)) {
        h->stats.fallback_reads++;
        fill_fallback(h, buf, len);
        return -ENOTCONN;
    }
    struct tlpb_tlp req = {.kind = TLPB_TLP_MRD, .bar_hint = (int8_t)(bar >= 0 && bar < 6 ? bar : TLPB_NO_BAR)};
    tlpb_tlp_set_mem_range(&req, addr, len);
    int rc = request_and_wait(h, &req, len);
    if (rc == 0) {
        memcpy(buf, h->wait.data, len);
    } else if (rc > 0) {
        memset(buf, 0xFF, len);
    } else {
        h->stats.fallback_reads++;
        fill_fallback(h, buf, len);
    }
    return rc;
}

static int host_mem_write(struct tlpb_host *h, int bar, uint64_t addr, const void *buf, unsigned len)
{
    h->stats.writes++;
    if (len == 0 || len > 8 || ((addr & 3u) + len > 8))
        return -EINVAL;
    if (msix_access(h, bar, addr, (void *)buf, len, true))
        return 0;
    if (!ensure_connected(h)) {
        if (h->stats.dropped_writes++ == 0)
            host_log(h, TLPB_HOST_LOG_WARN, "bridge absent: posted writes are dropped (counted)");
        return -ENOTCONN;
    }
    uint8_t payload[8] = {0};
    struct tlpb_tlp req = {.kind = TLPB_TLP_MWR, .requester_id = h->cfg.requester_id,
                           .bar_hint = (int8_t)(bar >= 0 && bar < 6 ? bar : TLPB_NO_BAR)};
    tlpb_tlp_set_mem_range(&req, addr, len);
    memcpy(payload + (addr & 3u), buf, len);
    req.payload = payload;
    req.payload_bytes = req.length_dw * 4u;
    req.tag = 0; /* posted requests need no tag */
    req.sim_time_ps = stamp(h); /* the guest's time of the write, not of the batch's send */
    int rc = queue_tlp(h, &req);
    if (rc)
        return rc;
    mark_busy(h);
    if (h->ring && !tlpb_obuf_pending(&h->ob)) {
        /* In the ring the write is visible to the bridge at once, and
         * telling a sleeping bridge costs one eventfd write per sleep: a
         * batch saves nothing, and a doorbell held for the caller's flush
         * would wait for its main loop. */
        tlpb_ring_notify(h->ring);
        h->ring_unnotified_bytes = 0;
        return 0;
    }
    if (batch_bytes(h) >= h->cfg.write_batch_bytes)
        return flush_output(h);
    return 0;
}

static int host_flush(struct tlpb_host *h)
{
    if (!h->connected)
        return tlpb_obuf_pending(&h->ob) ? -ENOTCONN : 0;
    return flush_output(h);
}

static int host_reset(struct tlpb_host *h, enum tlpb_host_reset_kind kind)
{
    if (kind != TLPB_HOST_RESET_FUNCTION_LEVEL && kind != TLPB_HOST_RESET_HOT)
        return -EINVAL;
    if (h->have_desc) {
        tlpb_cfgspace_reset(&h->shadow);
        msix_alloc(h);
    }
    if (!ensure_connected(h))
        return -ENOTCONN;
    Tlpb__Reset r = TLPB__RESET__INIT;
    r.kind = (Tlpb__ResetKind)kind;
    r.sim_time_ps = stamp(h);
    Tlpb__Envelope env = TLPB__ENVELOPE__INIT;
    env.body_case = TLPB__ENVELOPE__BODY_RESET;
    env.reset = &r;
    int rc = tlpb_obuf_append(&h->ob, &env, true);
    if (rc)
        return rc;
    mark_busy(h);
    return flush_output(h);
}


static int host_wait(struct tlpb_host *h, int timeout_ms)
{
    if (!ensure_connected(h))
        return -ENOTCONN;
    if (h->ring) {
        /* The caller's main loop woke us (or polls): consume the wake-up,
         * also one the bridge sent just as the flag was cleared. */
        h->ring_armed = false;
        tlpb_ring_woken(h->ring);
    }
    if (batch_bytes(h) && flush_output(h) != 0)
        return -ENOTCONN;
    int total = 0;
    int rc = pump(h, timeout_ms);
    if (rc < 0)
        return rc;
    total += rc;
    /* Take whatever else is already there without waiting again. */
    while (rc > 0 && h->connected) {
        rc = pump(h, 0);
        if (rc > 0)
            total += rc;
    }
    return total;
}

void tlpb_host_get_stats(const struct tlpb_host *h, struct tlpb_host_stats *stats)
{
    *stats = h->stats;
    stats->ring_wakeups_sent = h->ring_wakeups_before;
    if (h->ring) {
        struct tlpb_ring_stats rs;
        tlpb_ring_get_stats(h->ring, &rs);
        stats->ring_wakeups_sent += rs.wakeups_sent;
    }
}

/* ---- Coupled simulated time ------------------------------------------------ */

const char *tlpb_host_time_mode(const struct tlpb_host *h) { return h->time_mode; }
bool tlpb_host_time_coupled(const struct tlpb_host *h) { return h->connected && h->time_coupled; }
uint64_t tlpb_host_last_completion_ps(const struct tlpb_host *h) { return h->last_completion_ps; }
bool tlpb_host_device_busy(const struct tlpb_host *h) { return h->device_busy; }

void tlpb_host_set_time_ps(struct tlpb_host *h, uint64_t t_ps)
{
    if (t_ps > h->time_ps)
        h->time_ps = t_ps;
}

static int host_time_grant(struct tlpb_host *h, uint64_t until_ps, struct tlpb_host_reached *out)
{
    /* What a caller gets whenever the device cannot be waited for. */
    out->sim_time_ps = until_ps;
    out->idle = true;
    out->next_event_ps = 0;
    if (!h->time_coupled)
        return -EINVAL;
    if (!h->connected) {
        h->device_busy = false;
        return -ENOTCONN;
    }
    uint64_t t0 = tlpb_now_ns();
    Tlpb__TimeSync ts = TLPB__TIME_SYNC__INIT;
    ts.kind = TLPB__TIME_SYNC_KIND__TIME_SYNC_GRANT;
    ts.sync_id = ++h->last_sync_id;
    if (ts.sync_id == 0) /* 0 is no id */
        ts.sync_id = ++h->last_sync_id;
    ts.sim_time_ps = h->time_ps;
    ts.grant_until_ps = until_ps;
    /* Behind the queued posted writes: they take effect before the grant. */
    int rc = tlpb_obuf_append_time_sync(&h->ob, &ts);
    if (rc) {
        h->device_busy = false;
        return rc;
    }
    h->device_busy = true;
    h->grant.active = true;
    h->grant.done = false;
    h->grant.status = 0;
    h->grant.sync_id = ts.sync_id;
    if (flush_output(h) != 0) {
        h->grant.active = false;
        h->device_busy = false;
        return -ENOTCONN;
    }
    /* The bound is on silence, not on the grant's length: a slow simulator
     * is alive as long as frames come. */
    uint64_t deadline = tlpb_now_ns() + (uint64_t)h->cfg.read_timeout_ms * 1000000u;
    while (!h->grant.done) {
        uint64_t now = tlpb_now_ns();
        if (now >= deadline) {
            host_log(h, TLPB_HOST_LOG_ERROR,
                     "grant %llu (until %llu ps): no frame from the bridge within %u ms; the device"
                     " is taken as idle", (unsigned long long)ts.sync_id,
                     (unsigned long long)until_ps, h->cfg.read_timeout_ms);
            h->grant.status = -ETIMEDOUT;
            break;
        }
        int prc = pump(h, (int)((deadline - now + 999999u) / 1000000u));
        if (prc == -ENOTCONN && !h->grant.done) {
            h->grant.status = -ENOTCONN;
            break;
        }
        if (prc > 0)
            deadline = tlpb_now_ns() + (uint64_t)h->cfg.read_timeout_ms * 1000000u;
    }
    h->grant.active = false;
    rc = h->grant.status;
    if (rc != 0) {
        h->device_busy = false;
        return rc;
    }
    *out = h->grant.reached;
    h->device_busy = !out->idle;
    uint64_t wall = tlpb_now_ns() - t0;
    h->stats.syncs++;
    h->stats.sync_wall_ns += wall;
    if (wall > h->stats.sync_wall_ns_max)
        h->stats.sync_wall_ns_max = wall;
    return 0;
}

/* ---- Entry points: every call leaves the asleep flag armed ------------------ */

int tlpb_host_config_read(struct tlpb_host *h, uint16_t reg, uint32_t *value)
{
    int rc = host_config_read(h, reg, value);
    ring_arm(h);
    return rc;
}

int tlpb_host_config_write(struct tlpb_host *h, uint16_t reg, uint32_t value, uint8_t be)
{
    int rc = host_config_write(h, reg, value, be);
    ring_arm(h);
    return rc;
}

int tlpb_host_mem_read(struct tlpb_host *h, int bar, uint64_t addr, void *buf, unsigned len)
{
    int rc = host_mem_read(h, bar, addr, buf, len);
    ring_arm(h);
    return rc;
}

int tlpb_host_mem_write(struct tlpb_host *h, int bar, uint64_t addr, const void *buf, unsigned len)
{
    int rc = host_mem_write(h, bar, addr, buf, len);
    ring_arm(h);
    return rc;
}

int tlpb_host_flush(struct tlpb_host *h)
{
    int rc = host_flush(h);
    ring_arm(h);
    return rc;
}

int tlpb_host_reset(struct tlpb_host *h, enum tlpb_host_reset_kind kind)
{
    int rc = host_reset(h, kind);
    ring_arm(h);
    return rc;
}

int tlpb_host_wait(struct tlpb_host *h, int timeout_ms)
{
    int rc = host_wait(h, timeout_ms);
    ring_arm(h);
    return rc;
}

int tlpb_host_time_grant(struct tlpb_host *h, uint64_t until_ps, struct tlpb_host_reached *out)
{
    int rc = host_time_grant(h, until_ps, out);
    ring_arm(h);
    return rc;
}

int tlpb_host_set_guest_memory(struct tlpb_host *h, const struct tlpb_host_memory_region *regions, unsigned n)
{
    int rc = host_set_guest_memory(h, regions, n);
    ring_arm(h);
    return rc;
}

int tlpb_host_poll(struct tlpb_host *h)
{
    return tlpb_host_wait(h, 0);
}
