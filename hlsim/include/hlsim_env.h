/* The side of the hlsim SDK that faces its environment: tlpbridged (model
 * loaded in-process) or hlsim-run (model in its own process, attached over a
 * socket). Models never include this. */
#ifndef HLSIM_ENV_H
#define HLSIM_ENV_H

#include <stdarg.h>

#include "hlsim.h"
#include "tlpb/tlp.h"
#include "tlpb/wire.h"

struct hlsim_env_ops {
    /* Send one TLP from the device towards the host (a completion for a
     * host request, or a DMA request). Returns 0, or -EAGAIN when the
     * outbound queue is full: the SDK stops emitting DMA requests and resumes
     * when the environment calls hlsim_device_output_ready(). Completions are
     * always accepted. The payload is copied before return. Must not call
     * back into the SDK (deliver the answer later, from the event loop). */
    int (*send_tlp)(void *env, const struct tlpb_tlp *tlp);

    /* MSI-X/MSI vector, or INTx level change. */
    void (*send_interrupt)(void *env, Tlpb__InterruptKind kind, unsigned vector);

    uint64_t (*now_ns)(void *env); /* monotonic */

    /* Timers: the environment owns the clock and the event loop. */
    void *(*timer_create)(void *env, void (*fire)(void *arg), void *arg);
    void (*timer_start)(void *timer, uint64_t delay_ns);
    void (*timer_stop)(void *timer);
    void (*timer_destroy)(void *timer);

    /* Run fn(arg) soon from the event loop, not from inside the caller (used
     * to deliver DMA callbacks and to continue queued DMA). Calls still
     * pending when the device is destroyed must be dropped, not run. */
    void (*defer)(void *env, void (*fn)(void *arg), void *arg);

    void (*log)(void *env, int level, const char *message);

    /* Optional. Called with the name of a model operation ("mmio_read",
     * "dma_callback", ...) just before the SDK calls into the model, and
     * with the name it interrupted (NULL when none) once the call returns:
     * an environment that runs the model in its own process can then name
     * the operation that crashed it. */
    void (*model_callback)(void *env, const char *callback);

    /* Optional. The model said (hlsim_dma_set_context) that the DMA it just
     * asked for (length_bytes at address; the zero-length read after a
     * write comes as the 4 bytes of the DW it reads) is for text. Called
     * before any request of that DMA is sent: an environment that runs the
     * model in its own process passes it on to the bridge (hlsim-run:
     * DmaContext). */
    void (*dma_context)(void *env, bool write, uint64_t address, uint32_t length_bytes,
                        const char *text);
};

struct hlsim_device_options {
    bool unsplit_dma;            /* fast mode: DMA as single oversized TLPs */
    uint16_t bus_device_function;/* requester ID until config writes say otherwise */
    uint64_t dma_timeout_ns;     /* completion timeout; 0 = 1 s */
};

/* Instantiate ops' model. Returns NULL with err filled on failure (bad
 * description, ABI mismatch, create refused). Runs the power-on reset. */
hlsim_device *hlsim_device_create(const struct hlsim_model_ops *ops, const char *model_args,
                                  const struct hlsim_device_options *opts,
                                  const struct hlsim_env_ops *env_ops, void *env,
                                  char *err, size_t err_size);
void hlsim_device_destroy(hlsim_device *dev);

const struct tlpb_devdesc *hlsim_device_description(const hlsim_device *dev);
/* The env given to hlsim_device_create. */
void *hlsim_device_env(const hlsim_device *dev);

/* A validated TLP from the host: a request (MRd/MWr/CfgRd0/CfgWr0), answered
 * through send_tlp, or a completion for one of the device's DMA reads. */
void hlsim_device_receive_tlp(hlsim_device *dev, const struct tlpb_tlp *tlp);

void hlsim_device_reset(hlsim_device *dev, enum hlsim_reset_kind kind);

/* The outbound queue has room again. */
void hlsim_device_output_ready(hlsim_device *dev);

/* The host went away: outstanding DMA reads complete with LINK_DOWN. */
void hlsim_device_link_down(hlsim_device *dev);

/* Check completion timeouts. The SDK arms an environment timer for them
 * itself when timer ops are given; otherwise the environment calls this
 * from a periodic timer or when hlsim_device_next_deadline_ns() passes. */
void hlsim_device_poll_timeouts(hlsim_device *dev);

/* Coupled simulated time (the environment's clock says when): the
 * model's access latency and DMA rate apply only then. */
void hlsim_device_set_time_coupled(hlsim_device *dev, bool coupled);
/* What the model said (hlsim_dma_set_context) its most recent DMA in this
 * direction covering address was for, or NULL when it said nothing. For a
 * DMA fault report: the host names the refused TLP's address. */
const char *hlsim_device_dma_context(const hlsim_device *dev, bool write, uint64_t address);
/* One of the device's DMA reads waits for its completion (abandoned reads
 * not counted): a coupled clock holds still meanwhile. */
bool hlsim_device_dma_reads_outstanding(const hlsim_device *dev);
/* The SDK holds work: DMA queued or outstanding, completions or interrupts
 * not sent yet, callbacks to run. */
bool hlsim_device_busy(const hlsim_device *dev);

/* Earliest completion deadline of the device's outstanding DMA reads
 * (monotonic ns, as now_ns), or UINT64_MAX when none is outstanding. */
uint64_t hlsim_device_next_deadline_ns(const hlsim_device *dev);

#endif
