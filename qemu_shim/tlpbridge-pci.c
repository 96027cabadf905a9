/*
 * tlpbridge-pci: a PCIe endpoint whose MMIO, config writes, DMA and
 * interrupts are carried as PCIe TLPs over a socket to the tlpbridge daemon,
 * which hands them to a behavioural C model, an RTL simulation, or its
 * fallback responder.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The protocol lives in libtlpbhost (the root-complex side, independent of
 * QEMU); this file maps it onto QEMU:
 *
 *  - Config space is QEMU's, built from the device description (from the
 *    bridge, or from properties when no bridge answers at realize), with the
 *    capabilities at the offsets the model side uses: PCI Express at 0x40,
 *    MSI at 0x80, MSI-X at 0xA0. Every config write is also forwarded, so
 *    the model sees bus mastering, BAR addresses, MSI-X enable, MPS/MRRS
 *    and initiate-FLR.
 *  - MMIO reads block the vCPU until the completion arrives; while waiting,
 *    the library serves the device's DMA and interrupts through the callbacks
 *    below (with the BQL held, as for any other device). MMIO writes are
 *    posted: queued, and sent from a bottom half so that a burst of writes
 *    becomes one send; a read is ordered after queued writes by the library.
 *  - The MSI-X table and PBA are QEMU's (msix_init); the rest of the BAR
 *    that holds them is forwarded.
 *  - With no bridge, or after it went away, reads return the fallback value
 *    and writes are dropped (counted, logged once); the library reconnects
 *    from a timer, and QEMU keeps running.
 *  - Guest RAM on a shareable backend (-object memory-backend-memfd,
 *    share=on) is handed to the bridge (docs/protocol.md, "Shared guest
 *    memory"), kept current by a memory listener, so the bridge serves the
 *    device's DMA from it without a message to QEMU. Only when the device
 *    reaches memory without an IOMMU: behind a vIOMMU every DMA is
 *    translated here, as messages.
 *  - On a unix socket, messages go through a shared-memory ring with an
 *    adaptive wait (ring=adaptive, default), busy polling (ring=busy-poll)
 *    or not at all (ring=off).
 *  - time=coupled (docs/protocol.md, "Simulated time"; QEMU with
 *    -icount shift=0,sleep=off, or the qtest accelerator): every request is
 *    stamped with the guest's virtual time; after a read or config write the
 *    vCPU is stalled until the completion's stamp, so the guest sees the
 *    device's latency; while the device is busy, a virtual-clock timer at
 *    each quantum boundary grants it time up to the guest's clock and waits
 *    for it there, applying its DMA and interrupts. An idle device costs
 *    nothing. Device output is applied only in those waits, at points that
 *    depend on guest instructions alone, never from the main loop while the
 *    device is busy.
 *
 * Written against QEMU 10.0 (hw/misc/edu.c style). Porting notes:
 *  - QEMU >= 10.1: class_init takes (ObjectClass *, const void *data).
 *  - Property arrays are const and have no DEFINE_PROP_END_OF_LIST (>= 9.2).
 *
 * Usage:
 *   -device pcie-root-port,id=rp0,chassis=1
 *   -device tlpbridge-pci,bus=rp0,socket=/run/tlpbridge.sock,device=dmacopy0
 *   -device tlpbridge-pci,bus=rp0,socket=tcp:127.0.0.1:7700,device=dmacopy0
 *
 * A bridge that wants a token over TCP gets it from a QEMU secret object
 * (never on the command line, where ps shows it):
 *   -object secret,id=tlpbtok,file=/run/tlpbridge.token
 *   -device tlpbridge-pci,...,token-secret=tlpbtok
 * Without token-secret, libtlpbhost takes $TLPB_TOKEN or $TLPB_TOKEN_FILE.
 */

#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qemu/units.h"
#include "qemu/host-utils.h"
#include "qemu/module.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "qemu/error-report.h"
#include "qapi/error.h"
#include "crypto/secret_common.h"
#include "exec/memory.h"
#include "exec/ramblock.h"
#include "hw/pci/pci.h"
#include "hw/pci/pci_device.h"
#include "hw/pci/pcie.h"
#include "hw/pci/msi.h"
#include "hw/pci/msix.h"
#include "hw/qdev-properties.h"
#include "hw/resettable.h"
#include "hw/core/cpu.h"
#include "qom/object.h"
#include "qapi/visitor.h"
#include "qemu/config-file.h"
#include "qemu/option.h"
#include "system/cpu-timers.h"
#include "system/cpus.h"
#include "system/qtest.h"
#include "system/replay.h"
#include "system/runstate.h"
#include "system/system.h"
#include "trace.h"

/*
 * libtlpbhost and the description/config-space definitions it shares with
 * the model side (include dirs added after QEMU's own by build-qemu.sh).
 */
#include "tlpb_host.h"
#include "tlpb/cfgspace.h"
#include "tlpb/devdesc.h"

#define TYPE_TLPBRIDGE_PCI "tlpbridge-pci"
OBJECT_DECLARE_SIMPLE_TYPE(TlpbridgePciState, TLPBRIDGE_PCI)

/* Capability offsets: the same as in the model's config space. */
#define TLPBRIDGE_PCIE_CAP_OFFSET TLPB_CFG_PCIE_CAP /* 0x40 */
#define TLPBRIDGE_MSI_CAP_OFFSET  TLPB_CFG_MSI_CAP  /* 0x80 */
#define TLPBRIDGE_MSIX_CAP_OFFSET TLPB_CFG_MSIX_CAP /* 0xA0 */

/* Reset kinds of tlpb_host_reset (the protocol's ResetKind). */
#define TLPBRIDGE_RESET_FUNCTION_LEVEL 1
#define TLPBRIDGE_RESET_HOT            2

typedef struct TlpbridgeBar {
    TlpbridgePciState *dev;
    int index;
    MemoryRegion container; /* what is registered as the BAR */
    MemoryRegion forward;   /* the whole BAR, forwarded to the bridge */
} TlpbridgeBar;

struct TlpbridgePciState {
    PCIDevice parent_obj;

    /* properties: the bridge */
    char *socket;              /* unix path, "unix:PATH" or "tcp:HOST:PORT" */
    char *device;              /* device name at the bridge */
    char *token_secret;        /* id of a secret object holding the bridge's token */
    uint32_t read_timeout_ms;
    uint32_t fallback_value;
    uint32_t reconnect_ms;
    bool fast_dma;
    char *time;                /* "free" (default) or "coupled" */
    uint64_t quantum_ns;
    char *ring;                /* "adaptive" (default), "busy-poll", "off" */
    uint32_t ring_spin_us;

    /* properties: the description used when no bridge answers at realize */
    uint16_t prop_vendor_id;
    uint16_t prop_device_id;
    uint32_t prop_class_code;
    uint8_t prop_revision;
    uint64_t prop_bar_size[TLPB_BAR_COUNT];
    uint8_t prop_bar_64bit;    /* bit n: BAR n is 64-bit (uses slot n + 1) */
    uint16_t prop_msix_vectors;
    uint8_t prop_msix_bar;
    uint32_t prop_msix_table_offset;
    uint32_t prop_msix_pba_offset;
    uint8_t prop_msi_vectors;
    uint8_t prop_intx_pin;

    struct tlpb_host *host;
    struct tlpb_devdesc desc;  /* what the device was realized from */
    bool realized;
    bool desc_mismatch_logged;

    TlpbridgeBar bars[TLPB_BAR_COUNT];

    int watched_fd;            /* the bridge socket in the main loop, or -1 */
    QEMUTimer *reconnect_timer;
    QEMUBH *flush_bh;          /* sends queued posted writes */
    QEMUBH *memmap_bh;         /* tells the library the guest RAM map */
    MemoryListener mem_listener;  /* guest RAM changes (no vIOMMU only) */
    bool mem_listener_registered;
    unsigned shared_regions;   /* as last told to the library */
    bool in_host_call;         /* inside libtlpbhost: it is not reentrant */

    /* coupled simulated time */
    bool time_coupled;         /* time=coupled was asked for */
    uint64_t time_ps;          /* the guest's time last given to the library */
    uint64_t next_event_ps;    /* an idle device's self-timed event, 0: none */
    QEMUTimer *barrier_timer;  /* the next sync point (quantum boundary) */
    QEMUTimer *stall_timer;    /* ends a stall at the completion's stamp */
    CPUState *stalled_cpu;
    VMChangeStateEntry *vm_state;
    Notifier exit_notifier;    /* the counters on stderr when QEMU exits */
    bool exit_notifier_added;
    uint64_t stalls;
    uint64_t stall_ns;
};

/* ---- libtlpbhost callbacks ----------------------------------------------- */

/*
 * The device reads guest memory (or asks with a zero-length read whether its
 * posted writes landed). Returns 0, or 1 (Unsupported Request).
 */
static int tlpbridge_dma_read(void *opaque, uint64_t addr, void *buf,
                              uint32_t len)
{
    TlpbridgePciState *s = opaque;
    PCIDevice *pdev = PCI_DEVICE(s);
    int result;

    if (len == 0) {
        result = address_space_access_valid(pci_get_address_space(pdev), addr,
                                            1, false,
                                            MEMTXATTRS_UNSPECIFIED) ? 0 : 1;
    } else {
        result = pci_dma_read(pdev, addr, buf, len) == MEMTX_OK ? 0 : 1;
    }
    trace_tlpbridge_dma_read(addr, len, result);
    return result;
}

static int tlpbridge_dma_write(void *opaque, uint64_t addr, const void *buf,
                               uint32_t len)
{
    TlpbridgePciState *s = opaque;
    int result = pci_dma_write(PCI_DEVICE(s), addr, buf, len) == MEMTX_OK ?
                 0 : 1;

    trace_tlpbridge_dma_write(addr, len, result);
    return result;
}

static unsigned tlpbridge_msi_vectors_enabled(PCIDevice *pdev)
{
    uint16_t flags = pci_get_word(pdev->config + pdev->msi_cap +
                                  PCI_MSI_FLAGS);

    return 1u << ((flags & PCI_MSI_FLAGS_QSIZE) >> 4);
}

static void tlpbridge_interrupt(void *opaque, enum tlpb_host_irq_kind kind,
                                unsigned vector)
{
    TlpbridgePciState *s = opaque;
    PCIDevice *pdev = PCI_DEVICE(s);

    trace_tlpbridge_interrupt(kind, vector);
    switch (kind) {
    case TLPB_HOST_IRQ_MSIX:
        /* msix_notify holds a masked vector pending, as hardware does. */
        if (msix_enabled(pdev) && vector < msix_nr_vectors_allocated(pdev)) {
            msix_notify(pdev, vector);
        }
        break;
    case TLPB_HOST_IRQ_MSI:
        /* Only vectors the guest enabled (Multiple Message Enable). */
        if (msi_enabled(pdev) && vector < tlpbridge_msi_vectors_enabled(pdev)) {
            msi_notify(pdev, vector);
        }
        break;
    case TLPB_HOST_IRQ_INTX_ASSERT:
    case TLPB_HOST_IRQ_INTX_DEASSERT:
        if (pci_intx(pdev) >= 0) {
            pci_set_irq(pdev, kind == TLPB_HOST_IRQ_INTX_ASSERT);
        }
        break;
    }
}

static void tlpbridge_fd_read(void *opaque);

/* ---- Coupled simulated time ---------------------------------------------- */

/* Coupled asked for, and the bridge runs this connection coupled. */
static bool tlpbridge_time_active(TlpbridgePciState *s)
{
    return s->time_coupled && s->host && tlpb_host_time_coupled(s->host);
}

/*
 * The socket is watched from the main loop, except while a coupled device
 * is busy: what it sends is then taken at the next sync point, at a guest
 * time that depends on guest instructions only, not on when it arrived.
 */
static void tlpbridge_watch_update(TlpbridgePciState *s)
{
    int fd = s->host ? tlpb_host_fd(s->host) : -1;

    if (fd >= 0 && tlpbridge_time_active(s) && tlpb_host_device_busy(s->host)) {
        fd = -1;
    }
    if (fd != s->watched_fd) {
        if (s->watched_fd >= 0) {
            qemu_set_fd_handler(s->watched_fd, NULL, NULL, NULL);
        }
        if (fd >= 0) {
            qemu_set_fd_handler(fd, tlpbridge_fd_read, NULL, s);
        }
        s->watched_fd = fd;
    }
}

/*
 * The guest's time, in ps. Read only where the virtual clock is legal to
 * read: MMIO and config callbacks (the I/O instruction) and timer callbacks,
 * where it is exact, and the main loop (current_cpu is NULL), where it may
 * trail a running vCPU (stamps never go back: the library keeps the
 * largest). Anywhere else in a vCPU thread icount aborts ("Bad icount
 * read").
 */
static uint64_t tlpbridge_time_begin(TlpbridgePciState *s)
{
    uint64_t now;

    if (!s->time_coupled) {
        return 0;
    }
    now = (uint64_t)qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) * 1000;
    if (now > s->time_ps) {
        s->time_ps = now;
    }
    tlpb_host_set_time_ps(s->host, s->time_ps);
    return s->time_ps;
}

/*
 * The next sync point: the next quantum boundary while the device is busy,
 * its self-timed event when it is idle with one, none when it is idle.
 * Boundaries are multiples of the quantum, so where the guest stops for them
 * does not depend on when a message was sent.
 */
static void tlpbridge_barrier_update(TlpbridgePciState *s)
{
    uint64_t quantum_ps = s->quantum_ns * 1000;
    uint64_t boundary_ns = (s->time_ps / quantum_ps + 1) * s->quantum_ns;

    if (!s->barrier_timer) {
        return;
    }
    if (!tlpbridge_time_active(s)) {
        timer_del(s->barrier_timer);
    } else if (tlpb_host_device_busy(s->host)) {
        timer_mod_ns(s->barrier_timer, boundary_ns);
    } else if (s->next_event_ps > s->time_ps) {
        timer_mod_ns(s->barrier_timer, DIV_ROUND_UP(s->next_event_ps, 1000));
    } else if (s->next_event_ps) {
        /* an event the device should already have reached: look again */
        timer_mod_ns(s->barrier_timer, boundary_ns);
    } else {
        timer_del(s->barrier_timer);
    }
}

/* After every call into the library: it may have sent something. */
static void tlpbridge_time_end(TlpbridgePciState *s)
{
    if (s->time_coupled) {
        tlpbridge_barrier_update(s);
        tlpbridge_watch_update(s);
    }
}

/*
 * The sync point. Runs with the BQL in the vCPU thread between TBs (icount)
 * or in the main loop (qtest): raising interrupts and DMA here is legal.
 */
static void tlpbridge_barrier_cb(void *opaque)
{
    TlpbridgePciState *s = opaque;
    struct tlpb_host_reached reached;
    uint64_t now;
    int rc;

    if (s->in_host_call) {
        /* cannot happen (the library runs no timers); never reenter it */
        tlpbridge_barrier_update(s);
        return;
    }
    if (!tlpbridge_time_active(s)) {
        tlpbridge_watch_update(s);
        return;
    }
    now = tlpbridge_time_begin(s);
    s->in_host_call = true;
    rc = tlpb_host_time_grant(s->host, now, &reached);
    s->in_host_call = false;
    s->next_event_ps = rc == 0 && reached.idle ? reached.next_event_ps : 0;
    trace_tlpbridge_time_grant(now, reached.sim_time_ps, reached.idle,
                               reached.next_event_ps, rc);
    tlpbridge_time_end(s);
}

/*
 * A read or config write completed at the device's time t_cpl: the guest
 * must not run past it before it has the data. The vCPU is paused (the
 * I/O instruction retires with its value, once) and resumed by a
 * virtual-clock timer at t_cpl; the stopped vCPU lets the clock warp there.
 * Only in an MMIO/config callback of a vCPU (current_cpu; qtest has none).
 */
static void tlpbridge_stall_after(TlpbridgePciState *s, uint64_t now_ps,
                                  uint64_t t_cpl_ps)
{
    int64_t until_ns;

    if (!tlpbridge_time_active(s) || t_cpl_ps <= now_ps || !current_cpu ||
        s->stalled_cpu) {
        return;
    }
    until_ns = DIV_ROUND_UP(t_cpl_ps, 1000);
    s->stalls++;
    s->stall_ns += until_ns - now_ps / 1000;
    trace_tlpbridge_stall(now_ps, t_cpl_ps);
    s->stalled_cpu = current_cpu;
    timer_mod_ns(s->stall_timer, until_ns);
    cpu_pause(current_cpu);
}

static void tlpbridge_stall_cb(void *opaque)
{
    TlpbridgePciState *s = opaque;
    CPUState *cpu = s->stalled_cpu;

    /* cleared first: a resume with it set would be stalled again */
    s->stalled_cpu = NULL;
    if (cpu) {
        cpu_resume(cpu);
    }
}

static void tlpbridge_restall(CPUState *cpu, run_on_cpu_data data)
{
    TlpbridgePciState *s = data.host_ptr;

    if (s->stalled_cpu == cpu && !cpu->stopped) {
        cpu_pause(cpu);
    }
    object_unref(OBJECT(s));
}

/*
 * Monitor stop/cont resumes every vCPU, a stalled one too, which would let
 * the guest run before the completion's time. Runs under the BQL before
 * the vCPUs resume; the work item runs before the vCPU's next instruction.
 * The stall timer stays armed through stop/cont.
 */
static void tlpbridge_vm_state_change(void *opaque, bool running,
                                      RunState state)
{
    TlpbridgePciState *s = opaque;

    if (running && s->stalled_cpu) {
        object_ref(OBJECT(s));
        async_run_on_cpu(s->stalled_cpu, tlpbridge_restall,
                         RUN_ON_CPU_HOST_PTR(s));
    }
}

/*
 * time=coupled needs a guest clock that follows executed instructions only:
 * precise icount without sleep (or qtest, where the test moves the clock).
 */
static bool tlpbridge_check_time(TlpbridgePciState *s, Error **errp)
{
    QemuOptsList *list;
    QemuOpts *opts;
    bool sleep = true;

    s->time_coupled = false;
    if (!s->time || !strcmp(s->time, "free")) {
        return true;
    }
    if (strcmp(s->time, "coupled") != 0) {
        error_setg(errp, "tlpbridge-pci: time must be 'free' or 'coupled', "
                   "not '%s'", s->time);
        return false;
    }
    if (s->quantum_ns == 0 || s->quantum_ns > NANOSECONDS_PER_SECOND) {
        error_setg(errp, "tlpbridge-pci: quantum-ns must be 1 to %llu",
                   (unsigned long long)NANOSECONDS_PER_SECOND);
        return false;
    }
    if (!qtest_enabled()) {
        list = qemu_find_opts("icount");
        opts = list ? qemu_opts_find(list, NULL) : NULL;
        if (opts) {
            sleep = qemu_opt_get_bool(opts, "sleep", true);
        }
        if (icount_enabled() != ICOUNT_PRECISE || sleep ||
            replay_mode != REPLAY_MODE_NONE) {
            error_setg(errp, "tlpbridge-pci: device '%s': time=coupled needs "
                       "the guest clock to follow executed instructions: run "
                       "QEMU with -accel tcg -icount shift=0,sleep=off "
                       "(precise icount, sleep off, no record/replay)",
                       s->device);
            return false;
        }
    }
    s->time_coupled = true;
    return true;
}

/*
 * Do two descriptions give the guest the same function (IDs, BARs,
 * interrupt capabilities)?
 */
static bool tlpbridge_same_layout(const struct tlpb_devdesc *a,
                                  const struct tlpb_devdesc *b)
{
    for (int i = 0; i < TLPB_BAR_COUNT; i++) {
        if (a->bars[i].size_bytes != b->bars[i].size_bytes ||
            a->bars[i].is_64bit != b->bars[i].is_64bit ||
            a->bars[i].prefetchable != b->bars[i].prefetchable ||
            a->bars[i].is_io != b->bars[i].is_io) {
            return false;
        }
    }
    return a->vendor_id == b->vendor_id && a->device_id == b->device_id &&
           a->revision == b->revision && a->class_code == b->class_code &&
           a->msix_vectors == b->msix_vectors &&
           (!a->msix_vectors ||
            (a->msix_table_bar == b->msix_table_bar &&
             a->msix_table_offset == b->msix_table_offset &&
             a->msix_pba_bar == b->msix_pba_bar &&
             a->msix_pba_offset == b->msix_pba_offset)) &&
           a->msi_vectors == b->msi_vectors &&
           (!a->msi_vectors || a->msi_64bit == b->msi_64bit) &&
           a->intx_pin == b->intx_pin;
}

/*
 * The connection came up or went down: watch the new socket, or retry from a
 * timer while there is none.
 */
static void tlpbridge_link_changed(void *opaque, bool connected,
                                   bool simulator_attached)
{
    TlpbridgePciState *s = opaque;
    const struct tlpb_devdesc *desc;
    int fd;

    if (!s->host) {
        return; /* still inside tlpb_host_open; synced right after it */
    }
    fd = tlpb_host_fd(s->host);
    trace_tlpbridge_link_changed(connected, simulator_attached, fd);
    tlpbridge_watch_update(s);
    if (!connected) {
        timer_mod(s->reconnect_timer,
                  qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + s->reconnect_ms);
        return;
    }
    timer_del(s->reconnect_timer);
    if (!s->realized) {
        return;
    }

    /* BARs and capabilities cannot change under a running guest. */
    desc = tlpb_host_description(s->host);
    if (desc && !tlpbridge_same_layout(desc, &s->desc) &&
        !s->desc_mismatch_logged) {
        s->desc_mismatch_logged = true;
        warn_report("tlpbridge-pci: device '%s': the bridge describes the "
                    "device differently from how it was realized "
                    "(%04x:%04x); keeping the realized layout",
                    s->device, desc->vendor_id, desc->device_id);
    }
}

static void tlpbridge_log(void *opaque, enum tlpb_host_log_level level,
                          const char *message)
{
    TlpbridgePciState *s = opaque;

    switch (level) {
    case TLPB_HOST_LOG_ERROR:
        error_report("tlpbridge-pci: device '%s': %s", s->device, message);
        break;
    case TLPB_HOST_LOG_WARN:
        warn_report("tlpbridge-pci: device '%s': %s", s->device, message);
        break;
    case TLPB_HOST_LOG_INFO:
        info_report("tlpbridge-pci: device '%s': %s", s->device, message);
        break;
    default:
        trace_tlpbridge_log(message);
        break;
    }
}

static unsigned tlpbridge_config_replay(void *opaque,
                                        struct tlpb_host_config_reg *regs,
                                        unsigned max);

static const struct tlpb_host_ops tlpbridge_host_ops = {
    .dma_read = tlpbridge_dma_read,
    .dma_write = tlpbridge_dma_write,
    .interrupt = tlpbridge_interrupt,
    .link_changed = tlpbridge_link_changed,
    .config_replay = tlpbridge_config_replay,
    .log = tlpbridge_log,
};

/*
 * libtlpbhost must not be entered from its own callbacks: a DMA the device
 * aims at its own BAR (or at config space) would do that. Such an access is
 * ignored: reads get all-ones.
 */
static bool tlpbridge_enter(TlpbridgePciState *s)
{
    if (s->in_host_call) {
        qemu_log_mask(LOG_GUEST_ERROR, "tlpbridge-pci: device '%s': "
                      "its own DMA reached it back: ignored\n", s->device);
        return false;
    }
    s->in_host_call = true;
    return true;
}

static void tlpbridge_leave(TlpbridgePciState *s)
{
    s->in_host_call = false;
}

/* ---- Main-loop work ------------------------------------------------------ */

/* Traffic while no vCPU waits: DMA, interrupts, events, a lost connection. */
static void tlpbridge_fd_read(void *opaque)
{
    TlpbridgePciState *s = opaque;

    if (tlpbridge_enter(s)) {
        tlpb_host_poll(s->host);
        tlpbridge_leave(s);
        tlpbridge_time_end(s);
    }
}

static void tlpbridge_reconnect(void *opaque)
{
    TlpbridgePciState *s = opaque;

    if (!tlpbridge_enter(s)) {
        return;
    }
    tlpb_host_poll(s->host);  /* retries the connection when it is due */
    tlpbridge_leave(s);
    tlpbridge_time_end(s);
    if (!tlpb_host_connected(s->host)) {
        timer_mod(s->reconnect_timer,
                  qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + s->reconnect_ms);
    }
}

/*
 * A bridge that was restarted, or that comes up after the guest programmed
 * the device, has not seen the config writes that matter: the library sends
 * these again from QEMU's config space, before any request (the command
 * register last, as the bridge does when it brings up a new backend).
 */
static unsigned tlpbridge_config_replay(void *opaque,
                                        struct tlpb_host_config_reg *regs,
                                        unsigned max)
{
    TlpbridgePciState *s = opaque;
    PCIDevice *pdev = PCI_DEVICE(s);
    static const struct { uint16_t offset; uint8_t be; } header[] = {
        { PCI_BASE_ADDRESS_0, 0xf }, { PCI_BASE_ADDRESS_1, 0xf },
        { PCI_BASE_ADDRESS_2, 0xf }, { PCI_BASE_ADDRESS_3, 0xf },
        { PCI_BASE_ADDRESS_4, 0xf }, { PCI_BASE_ADDRESS_5, 0xf },
        { PCI_INTERRUPT_LINE, 0x1 },
    };
    unsigned n = 0;

    if (!s->realized || max < 16) {
        return 0;
    }
    for (unsigned i = 0; i < ARRAY_SIZE(header); i++) {
        regs[n].reg = header[i].offset;
        regs[n++].be = header[i].be;
    }
    if (pdev->exp.exp_cap) {
        /* Device Control (MPS, MRRS, extended tags) */
        regs[n].reg = pdev->exp.exp_cap + PCI_EXP_DEVCTL;
        regs[n++].be = 0x3;
    }
    if (msi_present(pdev)) {
        /* address, upper address, data; the flags (enable) after them */
        for (unsigned off = 4; off < 16; off += 4) {
            regs[n].reg = pdev->msi_cap + off;
            regs[n++].be = 0xf;
        }
        regs[n].reg = pdev->msi_cap;
        regs[n++].be = 0xc;
    }
    if (msix_present(pdev)) {
        regs[n].reg = pdev->msix_cap;
        regs[n++].be = 0xc;
    }
    regs[n].reg = PCI_COMMAND;
    regs[n++].be = 0x3;
    for (unsigned i = 0; i < n; i++) {
        regs[i].value = pci_get_long(pdev->config + regs[i].reg);
        trace_tlpbridge_config_write(regs[i].reg, regs[i].value, regs[i].be, 0);
    }
    return n;
}

static void tlpbridge_flush(void *opaque)
{
    TlpbridgePciState *s = opaque;

    if (tlpbridge_enter(s)) {
        tlpb_host_flush(s->host);
        tlpbridge_leave(s);
        tlpbridge_time_end(s);
    }
}

/* ---- MMIO ---------------------------------------------------------------- */

static uint64_t tlpbridge_bus_address(TlpbridgeBar *bar, hwaddr offset)
{
    pcibus_t base = pci_get_bar_addr(PCI_DEVICE(bar->dev), bar->index);

    return (base == PCI_BAR_UNMAPPED ? 0 : base) + offset;
}

static uint64_t tlpbridge_mmio_read(void *opaque, hwaddr offset,
                                    unsigned size)
{
    TlpbridgeBar *bar = opaque;
    TlpbridgePciState *s = bar->dev;
    uint64_t addr = tlpbridge_bus_address(bar, offset);
    uint8_t data[8] = { 0 };
    uint64_t val, now;
    int rc;

    if (!tlpbridge_enter(s)) {
        return MAKE_64BIT_MASK(0, size * 8);
    }
    now = tlpbridge_time_begin(s);
    rc = tlpb_host_mem_read(s->host, bar->index, addr, data, size);
    tlpbridge_leave(s);
    val = ldn_le_p(data, size);
    trace_tlpbridge_mmio_read(bar->index, addr, size, val, rc);
    tlpbridge_stall_after(s, now, tlpb_host_last_completion_ps(s->host));
    tlpbridge_time_end(s);
    return val;
}

static void tlpbridge_mmio_write(void *opaque, hwaddr offset, uint64_t val,
                                 unsigned size)
{
    TlpbridgeBar *bar = opaque;
    TlpbridgePciState *s = bar->dev;
    uint64_t addr = tlpbridge_bus_address(bar, offset);
    uint8_t data[8];
    int rc;

    if (!tlpbridge_enter(s)) {
        return;
    }
    stn_le_p(data, size, val);
    tlpbridge_time_begin(s);
    rc = tlpb_host_mem_write(s->host, bar->index, addr, data, size);
    tlpbridge_leave(s);
    trace_tlpbridge_mmio_write(bar->index, addr, size, val, rc);
    tlpbridge_time_end(s);
    if (rc == 0) {
        qemu_bh_schedule(s->flush_bh);
    }
}

static const MemoryRegionOps tlpbridge_mmio_ops = {
    .read = tlpbridge_mmio_read,
    .write = tlpbridge_mmio_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 1,
        .max_access_size = 8,
        .unaligned = false,
    },
    .impl = {
        .min_access_size = 1,
        .max_access_size = 8,
        .unaligned = false,
    },
};

/* ---- Config space -------------------------------------------------------- */

static void tlpbridge_config_write(PCIDevice *pdev, uint32_t address,
                                   uint32_t value, int len)
{
    TlpbridgePciState *s = TLPBRIDGE_PCI(pdev);
    uint32_t addr = address, val = value, end = address + len;
    uint64_t now, t_cpl = 0;

    pci_default_write_config(pdev, address, value, len);

    /*
     * Forward what the guest wrote, one DW at a time with byte enables: the
     * model applies its own register semantics (RW1C, BAR sizing), exactly
     * as for a configuration write on a link.
     */
    if (tlpbridge_enter(s)) {
        now = tlpbridge_time_begin(s);
        while (addr < end) {
            uint32_t reg = addr & ~3u;
            uint32_t shift = addr & 3u;
            uint32_t n = MIN(end - addr, 4 - shift);
            uint8_t be = ((1u << n) - 1) << shift;
            uint32_t dw = (uint32_t)(val << (shift * 8));
            int rc = tlpb_host_config_write(s->host, reg, dw, be);

            trace_tlpbridge_config_write(reg, dw, be, rc);
            t_cpl = MAX(t_cpl, tlpb_host_last_completion_ps(s->host));
            val = n < 4 ? val >> (n * 8) : 0;
            addr += n;
        }
        tlpbridge_leave(s);
        tlpbridge_stall_after(s, now, t_cpl);
        tlpbridge_time_end(s);
    }

    /*
     * An initiate-FLR reached the model with the write above; this resets
     * QEMU's side of the function.
     */
    pcie_cap_flr_write_config(pdev, address, value, len);
}

/* ---- Device description -------------------------------------------------- */

static void tlpbridge_desc_from_properties(TlpbridgePciState *s,
                                           struct tlpb_devdesc *d)
{
    memset(d, 0, sizeof(*d));
    d->vendor_id = s->prop_vendor_id;
    d->device_id = s->prop_device_id;
    d->revision = s->prop_revision;
    d->class_code = s->prop_class_code;
    for (int i = 0; i < TLPB_BAR_COUNT; i++) {
        d->bars[i].size_bytes = s->prop_bar_size[i];
        d->bars[i].is_64bit = s->prop_bar_size[i] &&
                              (s->prop_bar_64bit & (1u << i));
    }
    d->msix_vectors = s->prop_msix_vectors;
    if (d->msix_vectors) {
        d->msix_table_bar = s->prop_msix_bar;
        d->msix_table_offset = s->prop_msix_table_offset;
        d->msix_pba_bar = s->prop_msix_bar;
        d->msix_pba_offset = s->prop_msix_pba_offset;
    }
    d->msi_vectors = s->prop_msi_vectors;
    d->msi_64bit = true;
    d->intx_pin = s->prop_intx_pin;
    d->max_payload_supported_bytes = 128;
}

/* PCIe size code (Max_Payload_Size, Max_Read_Request_Size) of a size. */
static uint32_t tlpbridge_size_code(uint32_t bytes)
{
    uint32_t code = 0;

    while (code < 5 && (128u << code) < bytes) {
        code++;
    }
    return code;
}

/*
 * Device Control at power-on, as on the model side: MPS 128, MRRS 512,
 * relaxed ordering and no snoop enabled.
 */
static void tlpbridge_devctl_reset(PCIDevice *pdev)
{
    uint8_t *devctl = pdev->config + pdev->exp.exp_cap + PCI_EXP_DEVCTL;

    pci_set_word(devctl, (pci_get_word(devctl) & PCI_EXP_DEVCTL_BCR_FLR) |
                 PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_NOSNOOP_EN |
                 PCI_EXP_DEVCTL_READRQ_512B);
}

/*
 * The PCI Express endpoint capability, matching the model's: max payload
 * supported from the description, MPS/MRRS/extended tags writable (so what
 * the guest reads back is what the model uses), error reporting, FLR.
 */
static int tlpbridge_pcie_cap_init(TlpbridgePciState *s, Error **errp)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    uint32_t pos;
    int ret;

    ret = pcie_endpoint_cap_init(pdev, TLPBRIDGE_PCIE_CAP_OFFSET);
    if (ret < 0) {
        error_setg(errp, "tlpbridge-pci: cannot add the PCI Express "
                   "capability (%d)", ret);
        return ret;
    }
    pos = pdev->exp.exp_cap;
    pci_long_test_and_set_mask(pdev->config + pos + PCI_EXP_DEVCAP,
                               tlpbridge_size_code(
                                   s->desc.max_payload_supported_bytes) |
                               PCI_EXP_DEVCAP_EXT_TAG);
    pci_word_test_and_set_mask(pdev->wmask + pos + PCI_EXP_DEVCTL,
                               PCI_EXP_DEVCTL_RELAX_EN |
                               PCI_EXP_DEVCTL_PAYLOAD |
                               PCI_EXP_DEVCTL_EXT_TAG |
                               PCI_EXP_DEVCTL_NOSNOOP_EN |
                               PCI_EXP_DEVCTL_READRQ);
    pcie_cap_deverr_init(pdev);
    pcie_cap_flr_init(pdev);
    tlpbridge_devctl_reset(pdev);
    return 0;
}

static void tlpbridge_init_bars(TlpbridgePciState *s)
{
    PCIDevice *pdev = PCI_DEVICE(s);

    for (int i = 0; i < TLPB_BAR_COUNT; i++) {
        const struct tlpb_bar_desc *bd = &s->desc.bars[i];
        TlpbridgeBar *bar = &s->bars[i];
        g_autofree char *name = g_strdup_printf("tlpbridge-bar%d", i);
        g_autofree char *fwd_name = g_strdup_printf("tlpbridge-bar%d-mmio", i);
        uint8_t type;

        bar->dev = s;
        bar->index = i;
        if (!bd->size_bytes) {
            continue;
        }
        if (bd->is_io) {
            warn_report("tlpbridge-pci: device '%s': I/O BAR %d is not "
                        "supported; left unimplemented", s->device, i);
            continue;
        }
        /*
         * MSI-X table and PBA, when described in this BAR, are added on top
         * of the forwarded region by msix_init.
         */
        memory_region_init(&bar->container, OBJECT(s), name, bd->size_bytes);
        memory_region_init_io(&bar->forward, OBJECT(s), &tlpbridge_mmio_ops,
                              bar, fwd_name, bd->size_bytes);
        memory_region_add_subregion_overlap(&bar->container, 0, &bar->forward,
                                            -1);
        type = PCI_BASE_ADDRESS_SPACE_MEMORY;
        if (bd->is_64bit) {
            type |= PCI_BASE_ADDRESS_MEM_TYPE_64;
        }
        if (bd->prefetchable) {
            type |= PCI_BASE_ADDRESS_MEM_PREFETCH;
        }
        pci_register_bar(pdev, i, type, &bar->container);
    }
}

static bool tlpbridge_bar_usable(TlpbridgePciState *s, unsigned i)
{
    return i < TLPB_BAR_COUNT && s->desc.bars[i].size_bytes &&
           !s->desc.bars[i].is_io;
}

/*
 * A subregion holds a reference on its owner: the forwarded regions must
 * leave their containers, or the device would never be freed (unplug).
 */
static void tlpbridge_uninit_bars(TlpbridgePciState *s)
{
    for (int i = 0; i < TLPB_BAR_COUNT; i++) {
        if (tlpbridge_bar_usable(s, i)) {
            memory_region_del_subregion(&s->bars[i].container,
                                        &s->bars[i].forward);
        }
    }
}

/* ---- Shared guest memory ------------------------------------------------- */

#define TLPBRIDGE_MAX_SHARED_REGIONS 32

typedef struct TlpbridgeMemMap {
    struct tlpb_host_memory_region r[TLPBRIDGE_MAX_SHARED_REGIONS];
    unsigned n;
    unsigned skipped;          /* shareable ranges beyond the limit */
} TlpbridgeMemMap;

/* One range of the flat view: guest RAM with a file behind it is shared;
 * ROM, read-only RAM, MMIO and anonymous RAM are not (their DMA goes as
 * messages). Ranges that continue each other in the same file merge (the
 * PAM windows below 1 MiB alias the same RAM). */
static bool tlpbridge_memmap_range(Int128 start, Int128 len,
                                   const MemoryRegion *cmr,
                                   hwaddr offset_in_region, void *opaque)
{
    TlpbridgeMemMap *map = opaque;
    MemoryRegion *mr = (MemoryRegion *)cmr;
    struct tlpb_host_memory_region *last;
    uint64_t bus = int128_get64(start);
    uint64_t size = int128_get64(len);
    uint64_t offset;
    int fd;

    if (!memory_region_is_ram(mr) || memory_region_is_ram_device(mr) ||
        memory_region_is_rom(mr) || mr->readonly || !mr->ram_block) {
        return false;
    }
    fd = memory_region_get_fd(mr);
    if (fd < 0) {
        return false;
    }
    offset = offset_in_region + mr->ram_block->fd_offset;
    last = map->n ? &map->r[map->n - 1] : NULL;
    if (last && last->fd == fd && last->bus_address + last->size_bytes == bus &&
        last->fd_offset + last->size_bytes == offset) {
        last->size_bytes += size;
        return false;
    }
    if (map->n == TLPBRIDGE_MAX_SHARED_REGIONS) {
        map->skipped++;
        return false;
    }
    map->r[map->n++] = (struct tlpb_host_memory_region){
        .bus_address = bus, .size_bytes = size, .fd = fd, .fd_offset = offset,
    };
    return false;
}

static void tlpbridge_memmap_update(void *opaque)
{
    TlpbridgePciState *s = opaque;
    TlpbridgeMemMap map = { .n = 0 };
    FlatView *fv;
    int rc;

    if (!s->host || !s->mem_listener_registered) {
        return;
    }
    if (s->in_host_call) {
        /* Not reentrant: after the call in progress. */
        qemu_bh_schedule(s->memmap_bh);
        return;
    }
    RCU_READ_LOCK_GUARD();
    fv = address_space_to_flatview(&address_space_memory);
    flatview_for_each_range(fv, tlpbridge_memmap_range, &map);
    s->in_host_call = true;
    rc = tlpb_host_set_guest_memory(s->host, map.r, map.n);
    s->in_host_call = false;
    if (rc < 0) {
        warn_report("tlpbridge-pci: device '%s': guest memory not shared: "
                    "%s; DMA goes as messages", s->device, strerror(-rc));
    } else if (map.n != s->shared_regions) {
        info_report("tlpbridge-pci: device '%s': %u guest RAM range(s) shared "
                    "with the bridge%s", s->device, map.n,
                    map.skipped ? " (more than the limit: the rest by "
                    "messages)" : "");
    }
    s->shared_regions = rc < 0 ? 0 : map.n;
}

/* Every change of the memory map ends in a commit: rebuild the whole map
 * then, from a bottom half (not inside a memory transaction). */
static void tlpbridge_mem_commit(MemoryListener *listener)
{
    TlpbridgePciState *s = container_of(listener, TlpbridgePciState,
                                        mem_listener);

    qemu_bh_schedule(s->memmap_bh);
}

static void tlpbridge_memmap_init(TlpbridgePciState *s)
{
    PCIDevice *pdev = PCI_DEVICE(s);

    s->memmap_bh = qemu_bh_new_guarded(tlpbridge_memmap_update, s,
                                       &DEVICE(pdev)->mem_reentrancy_guard);
    if (pci_device_iommu_address_space(pdev) != &address_space_memory) {
        info_report("tlpbridge-pci: device '%s': behind an IOMMU: guest "
                    "memory is not shared, DMA goes as messages", s->device);
        return;
    }
    s->mem_listener = (MemoryListener){
        .name = "tlpbridge-pci",
        .commit = tlpbridge_mem_commit,
        .priority = MEMORY_LISTENER_PRIORITY_DEV_BACKEND,
    };
    memory_listener_register(&s->mem_listener, &address_space_memory);
    s->mem_listener_registered = true;
    tlpbridge_memmap_update(s);
}

static void tlpbridge_memmap_fini(TlpbridgePciState *s)
{
    if (s->mem_listener_registered) {
        memory_listener_unregister(&s->mem_listener);
        s->mem_listener_registered = false;
    }
    qemu_bh_delete(s->memmap_bh);
    s->memmap_bh = NULL;
}

/* ---- Realize / unrealize ------------------------------------------------- */

/* The coupled-time counters, once: at unplug or when QEMU exits. */
static void tlpbridge_time_report(TlpbridgePciState *s)
{
    struct tlpb_host_stats st;

    if (!s->time_coupled || !s->host || !s->exit_notifier_added) {
        return;
    }
    qemu_remove_exit_notifier(&s->exit_notifier);
    s->exit_notifier_added = false;
    tlpb_host_get_stats(s->host, &st);
    info_report("tlpbridge-pci: device '%s': coupled time: %" PRIu64
                " syncs (%" PRIu64 " us of wall time, longest %" PRIu64
                " us), %" PRIu64 " stalls (%" PRIu64 " ns of guest time)",
                s->device, st.syncs, st.sync_wall_ns / 1000,
                st.sync_wall_ns_max / 1000, s->stalls, s->stall_ns);
}

static void tlpbridge_time_exit_notify(Notifier *notifier, void *data)
{
    tlpbridge_time_report(container_of(notifier, TlpbridgePciState,
                                       exit_notifier));
}

/* A stalled vCPU is let go: the device that would resume it is leaving. */
static void tlpbridge_time_fini(TlpbridgePciState *s)
{
    CPUState *cpu = s->stalled_cpu;

    if (s->exit_notifier_added) {
        qemu_remove_exit_notifier(&s->exit_notifier);
        s->exit_notifier_added = false;
    }
    s->stalled_cpu = NULL;
    if (cpu) {
        cpu_resume(cpu);
    }
    if (s->vm_state) {
        qemu_del_vm_change_state_handler(s->vm_state);
        s->vm_state = NULL;
    }
    timer_free(s->barrier_timer);
    s->barrier_timer = NULL;
    timer_free(s->stall_timer);
    s->stall_timer = NULL;
}

static bool tlpbridge_check_properties(TlpbridgePciState *s, Error **errp)
{
    if (!s->socket || !*s->socket) {
        error_setg(errp, "tlpbridge-pci: property 'socket' is required "
                   "(a unix socket path, unix:PATH or tcp:HOST:PORT)");
        return false;
    }
    if (!s->device || !*s->device) {
        error_setg(errp, "tlpbridge-pci: property 'device' (the device name "
                   "at the bridge) is required");
        return false;
    }
    if (s->reconnect_ms == 0) {
        error_setg(errp, "tlpbridge-pci: reconnect-ms must be at least 1");
        return false;
    }
    if (s->ring && strcmp(s->ring, "adaptive") && strcmp(s->ring, "busy-poll") &&
        strcmp(s->ring, "off")) {
        error_setg(errp, "tlpbridge-pci: ring '%s': expected adaptive, "
                   "busy-poll or off", s->ring);
        return false;
    }
    return true;
}

static int tlpbridge_open(TlpbridgePciState *s, Error **errp)
{
    ERRP_GUARD();
    struct tlpb_host_config cfg = {
        .address = s->socket,
        .device_name = s->device,
        .read_timeout_ms = s->read_timeout_ms,
        .fallback_read_value = s->fallback_value,
        .fallback_value_set = true,
        .reconnect_interval_ms = s->reconnect_ms,
        .offer_unsplit_dma = s->fast_dma,
        .msix_table_external = true,
        .time_sync = s->time_coupled,
        .quantum_ps = s->quantum_ns * 1000,
        .ring_policy = !s->ring || !strcmp(s->ring, "adaptive") ?
                       TLPB_HOST_RING_ADAPTIVE :
                       !strcmp(s->ring, "busy-poll") ?
                       TLPB_HOST_RING_BUSY_POLL : TLPB_HOST_RING_OFF,
        .ring_spin_us = s->ring_spin_us,
    };
    g_autofree char *token = NULL;
    char err[256];
    int ret;

    if (s->token_secret && *s->token_secret) {
        token = qcrypto_secret_lookup_as_utf8(s->token_secret, errp);
        if (!token) {
            error_prepend(errp, "tlpbridge-pci: token-secret '%s': ",
                          s->token_secret);
            return -EINVAL;
        }
        cfg.token = token;
    }
    s->in_host_call = true;
    ret = tlpb_host_open(&s->host, &cfg, &tlpbridge_host_ops, s, err,
                         sizeof(err));
    s->in_host_call = false;
    if (ret < 0) {
        error_setg(errp, "tlpbridge-pci: %s", err);
        s->host = NULL;
        return ret;
    }
    /* Callbacks made while connecting came before s->host was set. */
    tlpbridge_link_changed(s, tlpb_host_connected(s->host),
                           tlpb_host_simulator_attached(s->host));
    return 0;
}

static void tlpbridge_realize(PCIDevice *pdev, Error **errp)
{
    ERRP_GUARD();
    TlpbridgePciState *s = TLPBRIDGE_PCI(pdev);
    const struct tlpb_devdesc *bridge_desc;
    const char *reason = NULL;
    const char *source;
    int ret;

    if (!tlpbridge_check_properties(s, errp) ||
        !tlpbridge_check_time(s, errp)) {
        return;
    }

    /* Before connecting: the link_changed callback uses them. */
    s->watched_fd = -1;
    if (s->time_coupled) {
        /* Attributes 0: the icount warp of an idle guest stops at them. */
        s->barrier_timer = timer_new_ns(QEMU_CLOCK_VIRTUAL,
                                        tlpbridge_barrier_cb, s);
        s->stall_timer = timer_new_ns(QEMU_CLOCK_VIRTUAL, tlpbridge_stall_cb,
                                      s);
        s->vm_state = qemu_add_vm_change_state_handler(
            tlpbridge_vm_state_change, s);
    }
    s->reconnect_timer = timer_new_ms(QEMU_CLOCK_REALTIME, tlpbridge_reconnect,
                                      s);
    s->flush_bh = qemu_bh_new_guarded(tlpbridge_flush, s,
                                      &DEVICE(pdev)->mem_reentrancy_guard);

    if (tlpbridge_open(s, errp) < 0) {
        goto fail;
    }
    bridge_desc = tlpb_host_description(s->host);
    if (bridge_desc) {
        s->desc = *bridge_desc;
        source = "the bridge";
    } else {
        tlpbridge_desc_from_properties(s, &s->desc);
        source = "properties (no bridge reachable)";
        if (tlpb_devdesc_validate(&s->desc, &reason) < 0) {
            error_setg(errp, "tlpbridge-pci: device '%s': the description "
                       "given by properties is invalid: %s", s->device,
                       reason ? reason : "?");
            goto fail;
        }
    }
    trace_tlpbridge_realize(s->device, source);
    info_report("tlpbridge-pci: device '%s': %04x:%04x rev %u class %06x, "
                "description from %s", s->device, s->desc.vendor_id,
                s->desc.device_id, s->desc.revision, s->desc.class_code,
                source);

    pci_config_set_vendor_id(pdev->config, s->desc.vendor_id);
    pci_config_set_device_id(pdev->config, s->desc.device_id);
    pci_config_set_revision(pdev->config, s->desc.revision);
    pci_config_set_prog_interface(pdev->config, s->desc.class_code & 0xff);
    pci_config_set_class(pdev->config, s->desc.class_code >> 8);
    pci_set_word(pdev->config + PCI_SUBSYSTEM_VENDOR_ID,
                 s->desc.subsystem_vendor_id);
    pci_set_word(pdev->config + PCI_SUBSYSTEM_ID, s->desc.subsystem_id);
    pci_config_set_interrupt_pin(pdev->config, s->desc.intx_pin);

    tlpbridge_init_bars(s);

    /*
     * Capabilities are prepended to the list: add them last to first, so
     * that it reads 0x40 (PCIe) -> 0x80 (MSI) -> 0xA0 (MSI-X).
     */
    if (s->desc.msix_vectors) {
        if (!tlpbridge_bar_usable(s, s->desc.msix_table_bar) ||
            !tlpbridge_bar_usable(s, s->desc.msix_pba_bar)) {
            error_setg(errp, "tlpbridge-pci: device '%s': MSI-X table or PBA "
                       "in an unimplemented BAR", s->device);
            goto fail_bars;
        }
        ret = msix_init(pdev, s->desc.msix_vectors,
                        &s->bars[s->desc.msix_table_bar].container,
                        s->desc.msix_table_bar, s->desc.msix_table_offset,
                        &s->bars[s->desc.msix_pba_bar].container,
                        s->desc.msix_pba_bar, s->desc.msix_pba_offset,
                        TLPBRIDGE_MSIX_CAP_OFFSET, errp);
        if (ret < 0) {
            goto fail_bars;
        }
        for (unsigned v = 0; v < s->desc.msix_vectors; v++) {
            msix_vector_use(pdev, v);
        }
    }
    if (s->desc.msi_vectors) {
        ret = msi_init(pdev, TLPBRIDGE_MSI_CAP_OFFSET, s->desc.msi_vectors,
                       s->desc.msi_64bit, false, errp);
        if (ret < 0) {
            goto fail_msix;
        }
    }
    if (tlpbridge_pcie_cap_init(s, errp) < 0) {
        goto fail_msi;
    }
    tlpbridge_memmap_init(s);
    s->realized = true;
    if (s->time_coupled) {
        s->exit_notifier.notify = tlpbridge_time_exit_notify;
        qemu_add_exit_notifier(&s->exit_notifier);
        s->exit_notifier_added = true;
        info_report("tlpbridge-pci: device '%s': time coupled, quantum %" PRIu64
                    " ns; the bridge says: %s", s->device, s->quantum_ns,
                    !tlpb_host_connected(s->host) ? "(not connected yet)" :
                    tlpb_host_time_coupled(s->host) ?
                    (*tlpb_host_time_mode(s->host) ?
                     tlpb_host_time_mode(s->host) : "coupled") :
                    "free-running (no coupled time at the bridge)");
    }
    return;

fail_msi:
    msi_uninit(pdev);
fail_msix:
    if (s->desc.msix_vectors) {
        msix_unuse_all_vectors(pdev);
        msix_uninit(pdev, &s->bars[s->desc.msix_table_bar].container,
                    &s->bars[s->desc.msix_pba_bar].container);
    }
fail_bars:
    tlpbridge_uninit_bars(s);
fail:
    if (s->watched_fd >= 0) {
        qemu_set_fd_handler(s->watched_fd, NULL, NULL, NULL);
        s->watched_fd = -1;
    }
    tlpb_host_close(s->host);
    s->host = NULL;
    timer_free(s->reconnect_timer);
    s->reconnect_timer = NULL;
    qemu_bh_delete(s->flush_bh);
    s->flush_bh = NULL;
    tlpbridge_time_fini(s);
}

static void tlpbridge_exit(PCIDevice *pdev)
{
    TlpbridgePciState *s = TLPBRIDGE_PCI(pdev);

    if (s->watched_fd >= 0) {
        qemu_set_fd_handler(s->watched_fd, NULL, NULL, NULL);
        s->watched_fd = -1;
    }
    timer_free(s->reconnect_timer);
    s->reconnect_timer = NULL;
    qemu_bh_delete(s->flush_bh);
    s->flush_bh = NULL;
    s->realized = false;
    tlpbridge_memmap_fini(s);
    tlpbridge_time_report(s);
    tlpbridge_time_fini(s);

    /* Sends what is still queued, then closes the connection. */
    tlpb_host_close(s->host);
    s->host = NULL;

    pcie_cap_exit(pdev);
    msi_uninit(pdev);
    if (s->desc.msix_vectors) {
        msix_unuse_all_vectors(pdev);
        msix_uninit(pdev, &s->bars[s->desc.msix_table_bar].container,
                    &s->bars[s->desc.msix_pba_bar].container);
    }
    tlpbridge_uninit_bars(s);
}

/* ---- Reset --------------------------------------------------------------- */

static void tlpbridge_reset_hold(Object *obj, ResetType type)
{
    TlpbridgePciState *s = TLPBRIDGE_PCI(obj);
    PCIDevice *pdev = PCI_DEVICE(obj);
    uint8_t *devctl = pdev->config + pdev->exp.exp_cap + PCI_EXP_DEVCTL;
    bool flr = pdev->exp.exp_cap &&
               (pci_get_word(devctl) & PCI_EXP_DEVCTL_BCR_FLR);
    int rc = 0;

    if (!s->host) {
        return;
    }
    if (pdev->exp.exp_cap) {
        tlpbridge_devctl_reset(pdev);
    }
    /*
     * A function-level reset was initiated by the config write that the
     * model has already received (and acted on); anything else is a hot
     * reset of the link the device sits on.
     */
    if (!flr && tlpbridge_enter(s)) {
        /*
         * A system reset runs in the main loop with the vCPUs paused (the
         * clock is exact); in a vCPU (an FLR's config write) the write's
         * time is already set.
         */
        if (!current_cpu) {
            tlpbridge_time_begin(s);
        }
        rc = tlpb_host_reset(s->host, TLPBRIDGE_RESET_HOT);
        tlpbridge_leave(s);
        tlpbridge_time_end(s);
    }
    trace_tlpbridge_reset(flr ? TLPBRIDGE_RESET_FUNCTION_LEVEL :
                          TLPBRIDGE_RESET_HOT, rc);
}

/* ---- Type ---------------------------------------------------------------- */

static const Property tlpbridge_properties[] = {
    DEFINE_PROP_STRING("socket", TlpbridgePciState, socket),
    DEFINE_PROP_STRING("device", TlpbridgePciState, device),
    DEFINE_PROP_STRING("token-secret", TlpbridgePciState, token_secret),
    DEFINE_PROP_UINT32("read-timeout-ms", TlpbridgePciState, read_timeout_ms,
                       30000),
    DEFINE_PROP_UINT32("fallback-value", TlpbridgePciState, fallback_value,
                       0xffffffff),
    DEFINE_PROP_UINT32("reconnect-ms", TlpbridgePciState, reconnect_ms, 1000),
    DEFINE_PROP_BOOL("fast-dma", TlpbridgePciState, fast_dma, true),
    DEFINE_PROP_STRING("time", TlpbridgePciState, time),
    DEFINE_PROP_UINT64("quantum-ns", TlpbridgePciState, quantum_ns, 10000),
    DEFINE_PROP_STRING("ring", TlpbridgePciState, ring),
    DEFINE_PROP_UINT32("ring-spin-us", TlpbridgePciState, ring_spin_us, 0),
    /* The description when no bridge answers at realize: dmacopy's. */
    DEFINE_PROP_UINT16("vendor-id", TlpbridgePciState, prop_vendor_id, 0x1234),
    DEFINE_PROP_UINT16("device-id", TlpbridgePciState, prop_device_id, 0x7a11),
    DEFINE_PROP_UINT32("class-code", TlpbridgePciState, prop_class_code,
                       0x088000),
    DEFINE_PROP_UINT8("revision", TlpbridgePciState, prop_revision, 1),
    DEFINE_PROP_UINT64("bar0-size", TlpbridgePciState, prop_bar_size[0],
                       4 * KiB),
    DEFINE_PROP_UINT64("bar1-size", TlpbridgePciState, prop_bar_size[1], 0),
    DEFINE_PROP_UINT64("bar2-size", TlpbridgePciState, prop_bar_size[2],
                       4 * KiB),
    DEFINE_PROP_UINT64("bar3-size", TlpbridgePciState, prop_bar_size[3], 0),
    DEFINE_PROP_UINT64("bar4-size", TlpbridgePciState, prop_bar_size[4], 0),
    DEFINE_PROP_UINT64("bar5-size", TlpbridgePciState, prop_bar_size[5], 0),
    DEFINE_PROP_UINT8("bar-64bit", TlpbridgePciState, prop_bar_64bit, 0),
    DEFINE_PROP_UINT16("msix-vectors", TlpbridgePciState, prop_msix_vectors,
                       2),
    DEFINE_PROP_UINT8("msix-bar", TlpbridgePciState, prop_msix_bar, 2),
    DEFINE_PROP_UINT32("msix-table-offset", TlpbridgePciState,
                       prop_msix_table_offset, 0),
    DEFINE_PROP_UINT32("msix-pba-offset", TlpbridgePciState,
                       prop_msix_pba_offset, 0x800),
    DEFINE_PROP_UINT8("msi-vectors", TlpbridgePciState, prop_msi_vectors, 0),
    DEFINE_PROP_UINT8("intx-pin", TlpbridgePciState, prop_intx_pin, 1),
};

static const struct {
    const char *name;
    const char *description;
} tlpbridge_property_help[] = {
    { "socket", "the bridge: unix socket path, unix:PATH or tcp:HOST:PORT "
      "(required)" },
    { "device", "the device's name at the bridge (required)" },
    { "read-timeout-ms", "longest wait for one MMIO read completion" },
    { "fallback-value", "MMIO read data while no bridge answers" },
    { "reconnect-ms", "retry interval while the bridge is unreachable" },
    { "fast-dma", "serve DMA TLPs of any size (the bridge grants it only to "
      "devices in fast DMA mode; off: the device's DMA must be split)" },
    { "time", "free (default): the device runs at its own speed; coupled: "
      "the guest's clock and the device's simulated clock advance together "
      "(needs -accel tcg -icount shift=0,sleep=off)" },
    { "quantum-ns", "time=coupled: longest guest time between syncs with a "
      "busy device (default 10000)" },
    { "ring", "on a unix socket, how QEMU waits for the bridge on the "
      "shared-memory ring: adaptive (default: poll, then sleep), busy-poll, "
      "or off (the socket only)" },
    { "ring-spin-us", "ring=adaptive: how long to poll before sleeping "
      "(0 = 50)" },
    { "vendor-id", "without a bridge at realize: vendor ID" },
    { "device-id", "without a bridge at realize: device ID" },
    { "class-code", "without a bridge at realize: 24-bit class code" },
    { "revision", "without a bridge at realize: revision ID" },
    { "bar0-size", "without a bridge at realize: BAR0 bytes (0 = absent)" },
    { "bar1-size", "without a bridge at realize: BAR1 bytes (0 = absent)" },
    { "bar2-size", "without a bridge at realize: BAR2 bytes (0 = absent)" },
    { "bar3-size", "without a bridge at realize: BAR3 bytes (0 = absent)" },
    { "bar4-size", "without a bridge at realize: BAR4 bytes (0 = absent)" },
    { "bar5-size", "without a bridge at realize: BAR5 bytes (0 = absent)" },
    { "bar-64bit", "without a bridge at realize: bit n makes BAR n 64-bit" },
    { "msix-vectors", "without a bridge at realize: MSI-X vectors "
      "(0 = no MSI-X)" },
    { "msix-bar", "without a bridge at realize: BAR of MSI-X table and PBA" },
    { "msix-table-offset", "without a bridge at realize: MSI-X table "
      "offset" },
    { "msix-pba-offset", "without a bridge at realize: MSI-X PBA offset" },
    { "msi-vectors", "without a bridge at realize: MSI vectors "
      "(0 = no MSI)" },
    { "intx-pin", "without a bridge at realize: INTx pin (0 none, 1 = INTA "
      ".. 4 = INTD)" },
};

/*
 * Read-only counters for QMP (qom-get): time-syncs, time-sync-wall-ns,
 * time-stalls, time-stall-ns.
 */
static void tlpbridge_get_time_stat(Object *obj, Visitor *v, const char *name,
                                    void *opaque, Error **errp)
{
    TlpbridgePciState *s = TLPBRIDGE_PCI(obj);
    struct tlpb_host_stats st = { 0 };
    uint64_t value = 0;

    if (s->host) {
        tlpb_host_get_stats(s->host, &st);
    }
    if (!strcmp(name, "time-syncs")) {
        value = st.syncs;
    } else if (!strcmp(name, "time-sync-wall-ns")) {
        value = st.sync_wall_ns;
    } else if (!strcmp(name, "time-stalls")) {
        value = s->stalls;
    } else if (!strcmp(name, "time-stall-ns")) {
        value = s->stall_ns;
    }
    visit_type_uint64(v, name, &value, errp);
}

/* "free", or what the bridge says of a coupled device ("coupled", ...). */
static char *tlpbridge_get_time_status(Object *obj, Error **errp)
{
    TlpbridgePciState *s = TLPBRIDGE_PCI(obj);

    if (!s->time_coupled || !s->host) {
        return g_strdup("free");
    }
    if (tlpb_host_time_coupled(s->host)) {
        return g_strdup(*tlpb_host_time_mode(s->host) ?
                        tlpb_host_time_mode(s->host) : "coupled");
    }
    return g_strdup(tlpb_host_connected(s->host) ?
                    "free-running (no coupled time at the bridge)" :
                    "free-running (not connected)");
}

static void tlpbridge_class_init(ObjectClass *klass, void *data)
{
    static const char *const time_stats[] = {
        "time-syncs", "time-sync-wall-ns", "time-stalls", "time-stall-ns",
    };
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);

    k->realize = tlpbridge_realize;
    k->exit = tlpbridge_exit;
    k->config_write = tlpbridge_config_write;
    /* Overwritten at realize from the device description. */
    k->vendor_id = 0x1234;
    k->device_id = 0x7a11;
    k->revision = 1;
    k->class_id = PCI_CLASS_OTHERS;
    rc->phases.hold = tlpbridge_reset_hold;

    dc->desc = "PCIe endpoint forwarding TLPs to a tlpbridge daemon";
    dc->hotpluggable = true;
    device_class_set_props(dc, tlpbridge_properties);
    for (unsigned i = 0; i < ARRAY_SIZE(tlpbridge_property_help); i++) {
        object_class_property_set_description(
            klass, tlpbridge_property_help[i].name,
            tlpbridge_property_help[i].description);
    }
    for (unsigned i = 0; i < ARRAY_SIZE(time_stats); i++) {
        object_class_property_add(klass, time_stats[i], "uint64",
                                  tlpbridge_get_time_stat, NULL, NULL, NULL);
    }
    object_class_property_add_str(klass, "time-status",
                                  tlpbridge_get_time_status, NULL);
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
}

static const TypeInfo tlpbridge_info = {
    .name          = TYPE_TLPBRIDGE_PCI,
    .parent        = TYPE_PCI_DEVICE,
    .instance_size = sizeof(TlpbridgePciState),
    .class_init    = tlpbridge_class_init,
    .interfaces    = (InterfaceInfo[]) {
        { INTERFACE_PCIE_DEVICE },
        { }
    },
};

static void tlpbridge_register_types(void)
{
    type_register_static(&tlpbridge_info);
}

type_init(tlpbridge_register_types)
