/* hlsim: the SDK for behavioural PCIe device models.
 *
 * A model is a shared object exporting `const struct hlsim_model_ops
 * hlsim_model`. The SDK owns config space (built from the model's
 * description), tag allocation and TLP splitting; the
 * model sees register accesses, config changes and resets, and asks for DMA,
 * interrupts and timers. The same model runs loaded into tlpbridged or in its
 * own process (hlsim-run) attached over the socket. */
#ifndef HLSIM_H
#define HLSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tlpb/cfgspace.h"
#include "tlpb/devdesc.h"
#include "tlpb/log.h"

#define HLSIM_ABI_VERSION 1
#define HLSIM_MODEL_SYMBOL "hlsim_model"

/* The calls below are the only symbols tlpbridged and hlsim-run export to
 * the models they load (both are built with hidden visibility): a model's
 * own functions never bind to the daemon's internals, whatever their
 * names. */
#define HLSIM_EXPORT __attribute__((visibility("default")))

typedef struct hlsim_device hlsim_device; /* one device instance, SDK-owned */
typedef struct hlsim_timer hlsim_timer;

enum hlsim_reset_kind {
    HLSIM_RESET_POWER_ON = 0,      /* before the first access */
    HLSIM_RESET_FUNCTION_LEVEL = 1,
    HLSIM_RESET_HOT = 2,
};

/* DMA outcome: a PCIe completion status, or a local failure. */
enum hlsim_dma_status {
    HLSIM_DMA_OK = 0,          /* SC */
    HLSIM_DMA_UR = 1,          /* unsupported request (e.g. not guest memory) */
    HLSIM_DMA_CRS = 2,
    HLSIM_DMA_CA = 4,          /* completer abort */
    HLSIM_DMA_TIMEOUT = 16,    /* completion timeout */
    HLSIM_DMA_LINK_DOWN = 17,  /* host went away */
};

typedef void (*hlsim_dma_cb)(void *arg, enum hlsim_dma_status status);
typedef void (*hlsim_timer_cb)(void *arg);

struct hlsim_model_ops {
    uint32_t abi_version;            /* HLSIM_ABI_VERSION */
    const char *name;
    struct tlpb_devdesc description;

    /* Allocate model state. args is the "model_args" string from the
     * configuration (may be empty). Return NULL with err filled to refuse. */
    void *(*create)(hlsim_device *dev, const char *args, char *err, size_t err_size);
    void (*destroy)(void *model);

    /* Power-on, function-level or hot reset. Outstanding DMA has already
     * been abandoned by the SDK: no callback of it will run. */
    void (*reset)(void *model, enum hlsim_reset_kind kind);

    /* Register access to a memory BAR, naturally within one DW: size is 1, 2
     * or 4 and offset + size does not cross a DW boundary. Accesses to the
     * MSI-X table and PBA never reach the model. */
    uint32_t (*mmio_read)(void *model, unsigned bar, uint64_t offset, unsigned size);
    void (*mmio_write)(void *model, unsigned bar, uint64_t offset, uint32_t value,
                       unsigned size);

    /* Config space changed (enum tlpb_cfg_change bits): bus mastering turned
     * on or off, MSI-X enabled, max payload size changed... Optional. */
    void (*config_changed)(void *model, unsigned changes);
};

/* ---- Calls for models ---------------------------------------------------- */

/* Read len bytes of host memory at bus address addr into buf (which must stay
 * valid until cb runs). Split into PCIe requests by the max read request size
 * and 4 KiB (strict mode) or sent unsplit (fast mode). cb runs once, from the
 * event loop, never from inside this call. Returns 0, or -EPERM when bus
 * mastering is disabled, -EINVAL for len > 16 MiB. */
HLSIM_EXPORT int hlsim_dma_read(hlsim_device *dev, uint64_t addr, void *buf, uint32_t len,
                   hlsim_dma_cb cb, void *arg);

/* Write len bytes to host memory. buf is copied before return. Writes are
 * posted; when cb is not NULL the SDK follows them with a zero-length read
 * to the last written address (the PCIe way to learn that posted writes have
 * landed), and cb reports that read's status. Returns as hlsim_dma_read. */
HLSIM_EXPORT int hlsim_dma_write(hlsim_device *dev, uint64_t addr, const void *buf, uint32_t len,
                    hlsim_dma_cb cb, void *arg);

/* Say what the DMA the model asks for next is for, printf-style, e.g.
 * hlsim_dma_set_context(dev, "copying descriptor %u (src 0x%llx ...)", ...).
 * Every hlsim_dma_read/write call from now on carries this text until it is
 * changed; NULL (or "") clears it, and so does a reset. When the host refuses
 * one of those DMAs (a DMA fault: not guest memory, or not mapped by the
 * guest's IOMMU) the bridge's fault report ends with " while <text>".
 * Longer texts are cut to HLSIM_DMA_CONTEXT_MAX - 1 bytes. Loaded in the
 * bridge or run by hlsim-run alike (which passes it on in a DmaContext
 * message; the bridge keeps its first 120 bytes, escaped: docs/hlsim.md). */
#define HLSIM_DMA_CONTEXT_MAX 160
HLSIM_EXPORT void hlsim_dma_set_context(hlsim_device *dev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Abandon all outstanding DMA of this device: no callback of it will run
 * (for a device's own soft reset). */
HLSIM_EXPORT void hlsim_dma_cancel_all(hlsim_device *dev);

/* Signal MSI-X vector. The host owns the MSI-X table and PBA (as QEMU
 * does): vector masking and pending bits are applied there, so the SDK sends
 * the vector whenever MSI-X is enabled in config space, and table/PBA
 * accesses never reach the device. Returns -EINVAL for a bad vector, -ENODEV
 * when MSI-X is not enabled. */
HLSIM_EXPORT int hlsim_msix_notify(hlsim_device *dev, unsigned vector);

/* Signal MSI vector (-ENODEV when MSI is not enabled). */
HLSIM_EXPORT int hlsim_msi_notify(hlsim_device *dev, unsigned vector);

/* Drive the INTx line (level). Suppressed on the wire while INTx is disabled
 * in the command register; the status register's interrupt bit follows. */
HLSIM_EXPORT void hlsim_intx_set(hlsim_device *dev, bool asserted);

HLSIM_EXPORT bool hlsim_msix_enabled(const hlsim_device *dev);
HLSIM_EXPORT bool hlsim_bus_master_enabled(const hlsim_device *dev);
HLSIM_EXPORT const struct tlpb_cfgspace *hlsim_config(const hlsim_device *dev);

/* One-shot timer: cb(arg) after delay_ns. A timer is owned by the model;
 * re-arming a running timer moves it. */
HLSIM_EXPORT hlsim_timer *hlsim_timer_create(hlsim_device *dev, hlsim_timer_cb cb, void *arg);
HLSIM_EXPORT void hlsim_timer_start(hlsim_timer *timer, uint64_t delay_ns);
HLSIM_EXPORT void hlsim_timer_stop(hlsim_timer *timer);
HLSIM_EXPORT void hlsim_timer_destroy(hlsim_timer *timer);

/* ---- Simulated time (docs/hlsim.md "Simulated time") ---------------------
 * Free-running (the default) the device's time is wall time and the calls
 * below cost nothing. Coupled to a guest's virtual clock, time passes only
 * as the model's timers, register latency and DMA throughput say. */

/* The device's time in ns: simulated when coupled, wall-derived otherwise;
 * never goes back (timers count on the same clock). */
HLSIM_EXPORT uint64_t hlsim_now_ns(hlsim_device *dev);

/* Completions to the host's memory reads leave this much simulated time
 * after the request arrived (the register's value is the one at arrival).
 * Default 0. Applied only when coupled. */
HLSIM_EXPORT void hlsim_set_access_latency_ns(hlsim_device *dev, uint64_t latency_ns);

/* DMA throughput of the device's link: each DMA TLP (and each interrupt,
 * which queues behind the data) leaves no earlier than the link is free,
 * and a write keeps it busy for its payload bytes / bytes_per_ns. 0 or a
 * negative value: unlimited (the default). Applied only when coupled. */
HLSIM_EXPORT void hlsim_dma_set_rate(hlsim_device *dev, double bytes_per_ns);

/* The project's log levels (tlpb/log.h) under the SDK's names. */
#define hlsim_log_level tlpb_log_level
#define HLSIM_LOG_ERROR TLPB_LOG_ERROR
#define HLSIM_LOG_WARN TLPB_LOG_WARN
#define HLSIM_LOG_INFO TLPB_LOG_INFO
#define HLSIM_LOG_DEBUG TLPB_LOG_DEBUG
HLSIM_EXPORT void hlsim_log(hlsim_device *dev, enum hlsim_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
