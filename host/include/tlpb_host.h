/* libtlpbhost: the root-complex side of tlpbridge, independent of QEMU.
 *
 * It connects to tlpbridged as the host of one device, issues config and
 * memory requests as TLPs, serves the device's DMA from a guest-memory
 * callback, and delivers its interrupts to a callback. Blocking calls (reads,
 * config accesses) keep serving DMA and interrupts while they wait, so a
 * device that is mid-DMA while the driver polls a register cannot deadlock.
 *
 * When the bridge is absent or goes away the library keeps answering: reads
 * return the fallback value, posted writes are dropped and counted (logged
 * once), and it reconnects when the bridge is back.
 *
 * Coupled simulated time (docs/protocol.md, "Simulated time"): with
 * time_sync set the host offers CAP_TIME_SYNC; once the bridge grants it,
 * every request, posted write, reset and grant carries the time given by
 * tlpb_host_set_time_ps, completions carry the device's time
 * (tlpb_host_last_completion_ps), and the caller keeps the device's clock
 * within a quantum of its own with tlpb_host_time_grant while
 * tlpb_host_device_busy says the device may still be working.
 *
 * Not thread-safe: one thread at a time (QEMU's BQL provides this). Callbacks
 * must not call back into the library's request functions. */
#ifndef TLPB_HOST_H
#define TLPB_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tlpb/devdesc.h"
#include "tlpb/log.h"

struct tlpb_host;

/* The protocol's InterruptKind and ResetKind (tlpbridge.proto), by the same
 * values, for callers that do not include the protobuf-c headers (the QEMU
 * shim). */
enum tlpb_host_irq_kind {
    TLPB_HOST_IRQ_MSIX = 1,
    TLPB_HOST_IRQ_MSI = 2,
    TLPB_HOST_IRQ_INTX_ASSERT = 3,
    TLPB_HOST_IRQ_INTX_DEASSERT = 4,
};

enum tlpb_host_reset_kind {
    TLPB_HOST_RESET_FUNCTION_LEVEL = 1,
    TLPB_HOST_RESET_HOT = 2, /* hot reset, secondary bus reset, system reset */
};

/* How the host waits for the bridge on the shared-memory ring
 * (docs/protocol.md, "Shared-memory ring"). The ring is used on a unix
 * socket when the bridge grants it; over TCP, or when refused, everything
 * stays on the socket. $TLPB_RING ("adaptive", "busy-poll", "off")
 * overrides the configured policy. */
enum tlpb_host_ring_policy {
    TLPB_HOST_RING_ADAPTIVE = 0,  /* default: poll briefly, then sleep */
    TLPB_HOST_RING_BUSY_POLL = 1, /* never sleep while waiting for the bridge */
    TLPB_HOST_RING_OFF = 2,       /* the socket only */
};

/* One range of guest RAM the device reaches directly (no IOMMU between
 * them): bus addresses [bus_address, bus_address + size_bytes) are bytes
 * [fd_offset, fd_offset + size_bytes) of the shareable file fd (memfd,
 * share=on). */
struct tlpb_host_memory_region {
    uint64_t bus_address;
    uint64_t size_bytes;
    int fd;
    uint64_t fd_offset;
};

/* The project's log levels (tlpb/log.h) under this library's names. */
#define tlpb_host_log_level tlpb_log_level
#define TLPB_HOST_LOG_ERROR TLPB_LOG_ERROR
#define TLPB_HOST_LOG_WARN TLPB_LOG_WARN
#define TLPB_HOST_LOG_INFO TLPB_LOG_INFO
#define TLPB_HOST_LOG_DEBUG TLPB_LOG_DEBUG

/* One config write to replay after a reconnect (tlpb_host_ops.config_replay). */
struct tlpb_host_config_reg {
    uint16_t reg;     /* DW-aligned byte offset */
    uint32_t value;
    uint8_t be;       /* byte enables, 4 bits */
};
#define TLPB_HOST_MAX_REPLAY_REGS 32

struct tlpb_host_ops {
    /* Guest memory for the device's DMA. Return 0, or a PCIe completion
     * status (1 = UR, 4 = CA) when [addr, addr + len) is not accessible.
     * len may be 0 (a zero-length read: report whether addr is memory). */
    int (*dma_read)(void *opaque, uint64_t addr, void *buf, uint32_t len);
    /* Return 0, or nonzero when the write could not be done (counted and
     * logged; posted writes get no completion). */
    int (*dma_write)(void *opaque, uint64_t addr, const void *buf, uint32_t len);
    void (*interrupt)(void *opaque, enum tlpb_host_irq_kind kind, unsigned vector);
    /* Optional: the connection came up or went down, or a simulator
     * attached/detached at the bridge (the fd to watch may have changed). */
    void (*link_changed)(void *opaque, bool connected, bool simulator_attached);
    /* Optional: a connection to the bridge came up again (a reconnect, not
     * the first connection made by tlpb_host_open): fill regs with the
     * config writes the bridge must see again (the guest's BARs, Device
     * Control, MSI/MSI-X control, the command register last) and return how
     * many (at most max). The library sends them, waiting for each, before
     * the request that found the bridge back. Called from inside a library
     * call: it must not call the library. */
    unsigned (*config_replay)(void *opaque, struct tlpb_host_config_reg *regs, unsigned max);
    /* Optional: a log line (no trailing newline). Default: stderr. */
    void (*log)(void *opaque, enum tlpb_host_log_level level, const char *message);
};

struct tlpb_host_config {
    const char *address;            /* "unix:PATH", "tcp:HOST:PORT" or a path */
    const char *device_name;        /* the device's name at the bridge */
    const char *token;              /* the bridge's shared token (TCP); NULL or
                                     * empty: $TLPB_TOKEN, else the first line
                                     * of the file named by $TLPB_TOKEN_FILE */
    uint16_t requester_id;          /* the root complex's ID, default 0 */
    uint16_t device_bdf;            /* target ID for config requests, default 01:00.0 */
    uint32_t read_timeout_ms;       /* host-side bound on one read; 0 = 30000.
                                     * The bridge completes earlier on its own
                                     * timeouts; this only guards against a
                                     * bridge that stops answering. */
    uint32_t fallback_read_value;   /* read data when absent; default 0xFFFFFFFF */
    bool fallback_value_set;        /* use fallback_read_value (else all-ones) */
    uint32_t write_batch_bytes;     /* posted writes are sent when this much is
                                     * queued or at the next read/flush/poll;
                                     * 0 = 64 KiB; 1 = send each write at once.
                                     * On the shared-memory ring every write
                                     * reaches the bridge at once (no system
                                     * call while it polls) */
    uint32_t reconnect_interval_ms; /* 0 = 1000 */
    bool offer_unsplit_dma;         /* accept oversized DMA TLPs (hlsim fast mode) */
    bool msix_table_external;       /* the caller owns the MSI-X table and PBA
                                     * (QEMU: msix_init): MSI-X interrupts are
                                     * passed on unfiltered, and table/PBA
                                     * accesses are not intercepted */
    bool time_sync;                 /* offer CAP_TIME_SYNC (coupled simulated
                                     * time). On a coupled connection
                                     * read_timeout_ms bounds silence (no
                                     * frame at all for that long), not a
                                     * whole read or grant: a slow simulator
                                     * is not a dead one */
    uint64_t quantum_ps;            /* with time_sync: the caller's sync
                                     * quantum, told to the bridge (status) */
    enum tlpb_host_ring_policy ring_policy;
    uint32_t ring_spin_us;          /* adaptive: how long to poll before
                                     * sleeping; 0 = 50 */
};

/* Create the host and try to connect. A missing bridge is not an error: the
 * host starts disconnected (fallback) and reconnects later. Returns 0, or
 * -EINVAL with err filled for a bad configuration. */
int tlpb_host_open(struct tlpb_host **out, const struct tlpb_host_config *cfg,
                   const struct tlpb_host_ops *ops, void *opaque, char *err, size_t err_size);
void tlpb_host_close(struct tlpb_host *host);

bool tlpb_host_connected(const struct tlpb_host *host);
bool tlpb_host_simulator_attached(const struct tlpb_host *host);
/* The descriptor to watch for readability (QEMU: qemu_set_fd_handler):
 * readable when the bridge sent something, on the socket or on the
 * shared-memory ring (then call tlpb_host_poll). An epoll descriptor over
 * both, the same for the host's whole life, also while disconnected; -1
 * only if it could not be created and no connection is up (then it is the
 * socket's, which changes on reconnect). Every library call returns with
 * the ring's "asleep" flag set, so the bridge wakes it for what it sends
 * next. */
int tlpb_host_fd(const struct tlpb_host *host);
/* The description received from the bridge, or NULL if never connected. */
const struct tlpb_devdesc *tlpb_host_description(const struct tlpb_host *host);

/* Config space, one DW at byte offset reg, through the bridge. Returns 0
 * (SC), a positive completion status (UR/CA/CRS: *value is all-ones), or
 * -ENOTCONN / -ETIMEDOUT (*value is the fallback value). */
int tlpb_host_config_read(struct tlpb_host *host, uint16_t reg, uint32_t *value);
int tlpb_host_config_write(struct tlpb_host *host, uint16_t reg, uint32_t value, uint8_t be);

/* Memory read of len (1..8) bytes at bus address addr, which the host
 * decoded to BAR bar (passed on as a hint; -1 if unknown). addr + len must not
 * cross an 8-byte boundary... it may: the request becomes 2 DWs with the
 * right byte enables, as long as it stays within 8 bytes of DW-aligned span.
 * Returns as tlpb_host_config_read; on failure buf holds the fallback value. */
int tlpb_host_mem_read(struct tlpb_host *host, int bar, uint64_t addr, void *buf, unsigned len);
/* Posted memory write of len (1..8) bytes: queued (see write_batch_bytes).
 * Returns 0, or -ENOTCONN when dropped because the bridge is absent. */
int tlpb_host_mem_write(struct tlpb_host *host, int bar, uint64_t addr, const void *buf,
                        unsigned len);
/* Send queued posted writes now. */
int tlpb_host_flush(struct tlpb_host *host);

/* Function-level or hot reset of the device. Returns -EINVAL for any other
 * kind. */
int tlpb_host_reset(struct tlpb_host *host, enum tlpb_host_reset_kind kind);

/* Serve whatever arrived (DMA requests, interrupts, events) without
 * blocking; also flushes posted writes and retries the connection when due.
 * Returns the number of messages handled, or -errno. */
int tlpb_host_poll(struct tlpb_host *host);
/* Like poll, but wait up to timeout_ms for at least one message. */
int tlpb_host_wait(struct tlpb_host *host, int timeout_ms);

/* Share guest RAM with the bridge (docs/protocol.md, "Shared guest
 * memory"): replaces the previous map; n = 0 shares nothing (every DMA goes
 * as messages, as with an IOMMU). The library dup()s the descriptors (the
 * caller keeps its own), sends the map at once when connected over a unix
 * socket and the bridge granted CAP_GUEST_MEMORY, and again after every
 * reconnect. DMA the bridge serves from shared memory never reaches
 * ops.dma_read / ops.dma_write; everything else still does. Returns 0, or
 * -EINVAL (more than 32 regions, an empty or overflowing range, a negative
 * fd), or -errno from dup. */
int tlpb_host_set_guest_memory(struct tlpb_host *host,
                               const struct tlpb_host_memory_region *regions, unsigned n);

/* ---- Coupled simulated time ------------------------------------------------
 *
 * Times are picoseconds on the caller's clock (QEMU: the guest's virtual
 * clock). All of it is inert unless the connection is coupled. */

/* The bridge's HelloReply.time_mode: "coupled", or why the device runs free
 * (e.g. "free-running (simulator has no CAP_TIME_SYNC)"); "" when time_sync
 * was not offered or no bridge answered yet. */
const char *tlpb_host_time_mode(const struct tlpb_host *host);
/* Whether this connection is coupled: time_sync offered, CAP_TIME_SYNC
 * granted, and the bridge accepts TimeSync. When it is not, the library
 * behaves exactly as free-running (no stamps, no grants). */
bool tlpb_host_time_coupled(const struct tlpb_host *host);
/* The caller's clock now: the stamp of every request, posted write (stamped
 * when queued, even if sent later in a batch), reset and grant issued from
 * now on. The clock never goes back: a smaller t is ignored. */
void tlpb_host_set_time_ps(struct tlpb_host *host, uint64_t t_ps);
/* The stamp of the final completion of the last memory read or config
 * request (the device's clock when it answered), 0 if unstamped. A caller
 * does not let its clock run past it before the requester sees the data. */
uint64_t tlpb_host_last_completion_ps(const struct tlpb_host *host);

struct tlpb_host_reached {
    uint64_t sim_time_ps;   /* the device's clock (at least the grant) */
    bool idle;              /* nothing to do until the next host message */
    uint64_t next_event_ps; /* with idle: a self-timed event then (0: none) */
};
/* Let the device simulate up to until_ps: sends the queued posted writes,
 * then GRANT (stamped with the time set), and serves the device's DMA and
 * interrupts (as a read wait does) until its REACHED. Returns 0 with *out
 * filled; or -ENOTCONN (link lost), -ETIMEDOUT (no frame for
 * read_timeout_ms), -EPROTONOSUPPORT (the bridge refuses TimeSync: the
 * connection runs free from now on, logged once), -EINVAL (not coupled).
 * On every error *out says idle at until_ps, so a caller never waits on a
 * device it cannot reach. */
int tlpb_host_time_grant(struct tlpb_host *host, uint64_t until_ps, struct tlpb_host_reached *out);
/* Whether the device may be working: true once anything was sent to it (a
 * request, a posted write, even queued, a reset, a completion, a grant),
 * false after a REACHED that said idle, until the next message. Always
 * false when not coupled. */
bool tlpb_host_device_busy(const struct tlpb_host *host);

struct tlpb_host_stats {
    uint64_t reads;
    uint64_t writes;
    uint64_t fallback_reads;        /* answered locally: bridge absent or timed out */
    uint64_t dropped_writes;        /* bridge absent */
    uint64_t dma_reads;             /* device read requests served */
    uint64_t dma_read_bytes;
    uint64_t dma_writes;
    uint64_t dma_write_bytes;
    uint64_t dma_errors;            /* requests outside guest memory */
    uint64_t interrupts;
    uint64_t reconnects;
    uint64_t syncs;                 /* grants answered (REACHED) */
    uint64_t sync_wall_ns;          /* wall time spent in grants, total */
    uint64_t sync_wall_ns_max;      /* the longest one */
    bool ring_active;               /* this connection uses the shared-memory ring */
    bool guest_memory_shared;       /* the bridge granted CAP_GUEST_MEMORY and
                                     * has the current map */
    uint64_t ring_wakeups_sent;     /* eventfd writes to the bridge */
    uint64_t ring_sleeps;           /* times the host slept on the ring */
};
void tlpb_host_get_stats(const struct tlpb_host *host, struct tlpb_host_stats *stats);

#endif
