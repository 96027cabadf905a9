/* libtlpbsim: the simulator side of the tlpbridge protocol, for a device
 * simulator written in C that attaches to tlpbridged as role SIMULATOR of
 * one device (docs/simulator-api.md). hlsim-run and the RTL adapter use it.
 *
 * The library owns the connection: connect, the handshake with the device
 * description, frame reassembly, validation of every TLP from the bridge
 * (a request that breaks a PCIe rule is answered with UR and an Error
 * here; a malformed TLP or an unknown Reset kind is a protocol error: an
 * Error, then the connection ends), bounded output. It owns
 * no event loop: the simulator watches tlpb_sim_fd() in its own loop (or
 * sleeps in tlpb_sim_wait()) and calls tlpb_sim_read_input() and
 * tlpb_sim_flush(). What arrives is handed to the callbacks.
 *
 * Functions that can fail return 0 or a negative errno. Single-threaded:
 * all calls for one connection come from one thread. Callbacks may send
 * (tlpb_sim_send_*) but must not close the connection. */
#ifndef TLPB_SIM_H
#define TLPB_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tlpb/cfgspace.h"
#include "tlpb/devdesc.h"
#include "tlpb/log.h"
#include "tlpb/tlp.h"
#include "tlpb/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tlpb_sim tlpb_sim;

/* A validated TLP from the bridge: a host request (CfgRd0, CfgWr0, MRd,
 * MWr) or a completion for one of the device's DMA reads. The payload is
 * valid only during the call. */
typedef void (*tlpb_sim_tlp_cb)(void *arg, const struct tlpb_tlp *tlp);
/* A function-level or hot reset from the host (any other kind is a
 * protocol error: the library ends the connection). */
typedef void (*tlpb_sim_reset_cb)(void *arg, Tlpb__ResetKind kind);
/* Output refused with -EAGAIN has room again. */
typedef void (*tlpb_sim_output_ready_cb)(void *arg);
/* The function's current bus/device/function, the completer of the UR the
 * library sends for a request that breaks a PCIe rule. */
typedef uint16_t (*tlpb_sim_bdf_cb)(void *arg);
typedef void (*tlpb_sim_log_cb)(void *arg, enum tlpb_log_level level, const char *message);

/* Coupled time (docs/protocol.md "Simulated time"): a TimeSync from the
 * bridge. COUPLED: from now on advance only as granted; the clock joins the
 * host's: the library has set tlpb_sim_time_ps to sim_time_ps (free-running
 * time before does not count; a COUPLED while coupled only moves it up).
 * FREE:
 * run free again. GRANT: simulate up to grant_until_ps (plus what host
 * non-posted requests need), then answer with tlpb_sim_send_reached(). */
struct tlpb_sim_time_sync {
    Tlpb__TimeSyncKind kind;  /* COUPLED, FREE or GRANT; nothing else reaches the callback */
    uint64_t sim_time_ps;     /* COUPLED, GRANT: the host's time */
    uint64_t sync_id;         /* GRANT: echo it in the REACHED */
    uint64_t grant_until_ps;  /* GRANT */
};
typedef void (*tlpb_sim_time_cb)(void *arg, const struct tlpb_sim_time_sync *ts);

/* Every callback gets the arg given to tlpb_sim_connect. */
struct tlpb_sim_callbacks {
    tlpb_sim_tlp_cb tlp;                   /* required */
    tlpb_sim_reset_cb reset;               /* required */
    tlpb_sim_output_ready_cb output_ready; /* optional */
    tlpb_sim_bdf_cb bus_device_function;   /* optional: 0 when absent */
    tlpb_sim_log_cb log;                   /* optional: see log_name */
    tlpb_sim_time_cb time_sync;            /* required with options.time_sync */
};

struct tlpb_sim_options {
    const char *device_name;               /* the device in the bridge's configuration */
    const char *peer_name;                 /* shown in the bridge's log and status */
    const struct tlpb_devdesc *description;/* what the simulator implements */
    bool unsplit_dma;                      /* ask for CAP_UNSPLIT_DMA (fast mode) */
    uint32_t completion_timeout_ms;        /* for host requests; 0: the bridge's default */
    int handshake_timeout_ms;              /* 0: 5000 */
    size_t output_limit_bytes;             /* queued output above this refuses DMA
                                            * requests with -EAGAIN; 0: 8 MiB */
    bool time_sync;                        /* offer CAP_TIME_SYNC (coupled time) */
    bool guest_memory;                     /* with unsplit_dma on a unix socket: offer
                                            * CAP_GUEST_MEMORY (tlpb_sim_guest_memory) */
    uint64_t clock_period_ps;              /* cycle-based simulator: its clock period */
    /* Without a log callback the library writes "LOG_NAME[DEVICE] LEVEL:
     * message" lines to stderr, up to log_level. */
    const char *log_name;                  /* NULL: "tlpb-sim" */
    enum tlpb_log_level log_level;
};

/* Connect to a bridge address ("unix:PATH", a plain path, or
 * "tcp:HOST:PORT") and attach. On failure err says why. */
int tlpb_sim_connect(tlpb_sim **out, const char *address, const struct tlpb_sim_options *opts,
                     const struct tlpb_sim_callbacks *cbs, void *arg, char *err,
                     size_t err_size);
/* Attach over a connected stream socket (taken over: closed on failure and
 * by tlpb_sim_close). */
int tlpb_sim_attach_fd(tlpb_sim **out, int fd, const struct tlpb_sim_options *opts,
                       const struct tlpb_sim_callbacks *cbs, void *arg, char *err,
                       size_t err_size);
/* Close the connection (without writing what is still queued: see
 * tlpb_sim_drain) and free. NULL is accepted. */
void tlpb_sim_close(tlpb_sim *sim);

/* The non-blocking socket, for the simulator's event loop: readable means
 * call tlpb_sim_read_input, writable (wanted while tlpb_sim_output_pending)
 * means call tlpb_sim_flush. Stays open until tlpb_sim_close. */
int tlpb_sim_fd(const tlpb_sim *sim);
/* What the handshake settled. */
bool tlpb_sim_unsplit_dma(const tlpb_sim *sim);
uint32_t tlpb_sim_max_frame_bytes(const tlpb_sim *sim);
/* Whether the bridge granted CAP_GUEST_MEMORY. */
bool tlpb_sim_guest_memory_negotiated(const tlpb_sim *sim);

/* Shared guest memory (docs/simulator-api.md): the bytes [addr, addr +
 * bytes) of guest memory (bus addresses; bytes 0 as 1) mapped into this
 * process when the bridge shared a map with it and the whole range lies in
 * one region of it, else NULL: then DMA goes as messages. A pointer is good
 * until the library next reads input (a new map, or its withdrawal, may
 * come in any read). Fast-mode DMA only: such a copy is seen by no checker
 * or trace. */
uint8_t *tlpb_sim_guest_memory(const tlpb_sim *sim, uint64_t addr, uint64_t bytes);

/* ---- from the bridge ----------------------------------------------------- */

/* Hand the frames already received to the callbacks, then read what the
 * socket has, up to about max_bytes (fairness; 0 only dispatches what is
 * buffered), dispatching as it goes. Returns 0, or a negative errno when
 * the connection is lost (tlpb_sim_lost_reason says why). */
int tlpb_sim_read_input(tlpb_sim *sim, size_t max_bytes);

/* Idle wait: sleep until the socket is readable, or writable while output
 * is queued, at most timeout_ms; write what the socket takes. Returns 1
 * when input waits (call tlpb_sim_read_input), 0 otherwise (timeout, a
 * signal, or only output moved), or a negative errno when lost. */
int tlpb_sim_wait(tlpb_sim *sim, int timeout_ms);

/* ---- to the bridge ------------------------------------------------------- */

/* Queue one TLP. Completions are always taken (a requester waits); a
 * request is refused with -EAGAIN while the output is over its limit
 * (output_ready tells when to retry). -ENOTCONN once the connection is
 * lost, -EMSGSIZE when it exceeds the negotiated max frame. */
int tlpb_sim_send_tlp(tlpb_sim *sim, const struct tlpb_tlp *tlp);
/* Queue an MSI-X/MSI vector or an INTx level change. */
int tlpb_sim_send_interrupt(tlpb_sim *sim, Tlpb__InterruptKind kind, uint32_t vector);
/* Queue an Error message: the bridge logs the reason. */
int tlpb_sim_send_error(tlpb_sim *sim, const char *reason);
/* Queue a DmaContext: the DMA of length_bytes at address in this direction,
 * whose requests the simulator sends next, is for text (what a DMA fault on
 * it is reported with, docs/protocol.md "DMA faults"). */
int tlpb_sim_send_dma_context(tlpb_sim *sim, bool write, uint64_t address, uint32_t length_bytes,
                              const char *text);

/* Answer a CfgRd0 or CfgWr0 from config space cfg (tlpb/cfgspace.h, built
 * from the device's description): a read completes with the register, a
 * write updates cfg, takes the function's bus/device number from the
 * request and completes; a poisoned write is discarded and completed with
 * UR (so is a config request to a bad register): all as
 * tlpb_cfgspace_complete_request(). *changes gets the write's TLPB_CFG_*
 * bits (0 for a read): the caller
 * reacts, and on TLPB_CFG_FLR_REQUESTED resets the function (the completion
 * is already queued, as PCIe wants). Returns as tlpb_sim_send_tlp, or
 * -EINVAL for a TLP that is no config request. */
int tlpb_sim_complete_config(tlpb_sim *sim, struct tlpb_cfgspace *cfg,
                             const struct tlpb_tlp *req, unsigned *changes);

/* Write what is queued, as far as the socket takes it without blocking.
 * Returns 0, or a negative errno when the connection is lost. */
int tlpb_sim_flush(tlpb_sim *sim);
/* Write what is queued, waiting up to timeout_ms for the socket (on the
 * way out). Returns 0 when everything went, -ETIMEDOUT, or -errno. */
int tlpb_sim_drain(tlpb_sim *sim, int timeout_ms);
/* Bytes queued and not yet written. */
size_t tlpb_sim_output_pending(const tlpb_sim *sim);
/* The output limit in effect (at least two max frames). */
size_t tlpb_sim_output_limit(const tlpb_sim *sim);
/* Something queued has a waiter (a completion, read request, interrupt,
 * error): write it soon rather than batching on. */
bool tlpb_sim_output_urgent(const tlpb_sim *sim);

/* ---- coupled time (docs/protocol.md "Simulated time") ------------------- */

/* CAP_TIME_SYNC was granted; coupled: between COUPLED and FREE. While
 * coupled every TLP sent with sim_time_ps 0 and every interrupt is stamped
 * with tlpb_sim_time_ps(). */
bool tlpb_sim_time_negotiated(const tlpb_sim *sim);
bool tlpb_sim_time_coupled(const tlpb_sim *sim);
/* The simulator's clock as the library stamps output with it (ps). The
 * simulator sets it as it advances; while coupled a value below the present
 * one is ignored (stamps never decrease). */
void tlpb_sim_set_time_ps(tlpb_sim *sim, uint64_t t_ps);
uint64_t tlpb_sim_time_ps(const tlpb_sim *sim);
/* The stamp of the message being delivered to a callback (a TLP's is also
 * in tlp->sim_time_ps; a Reset's only here); 0 when unstamped. */
uint64_t tlpb_sim_input_time_ps(const tlpb_sim *sim);
/* Answer GRANT sync_id: the clock is at t_ps and everything stamped up to
 * it is queued before this. idle: nothing to do until the next host
 * message, except a self-timed event at next_event_ps (0: none).
 * clocked_cycles: cycles really clocked (cycle-based simulators, status). */
int tlpb_sim_send_reached(tlpb_sim *sim, uint64_t sync_id, uint64_t t_ps, bool idle,
                          uint64_t next_event_ps, uint64_t clocked_cycles);
/* Keep-alive during a long grant: sends PROGRESS (and flushes) when
 * TLPB_SIM_PROGRESS_INTERVAL_NS of wall time passed since the last TimeSync
 * sent; otherwise does nothing. Cheap: call it often while simulating. */
#define TLPB_SIM_PROGRESS_INTERVAL_NS 200000000ull
int tlpb_sim_send_progress(tlpb_sim *sim, uint64_t t_ps, uint64_t clocked_cycles);
/* Tests: the monotonic clock (ns) the PROGRESS rate limit reads (NULL: the
 * system's, tlpb_now_ns). */
void tlpb_sim_set_wall_clock(tlpb_sim *sim, uint64_t (*now_ns)(void));

/* ---- connection state ---------------------------------------------------- */

bool tlpb_sim_connected(const tlpb_sim *sim);
/* Why the connection was lost ("" while connected). */
const char *tlpb_sim_lost_reason(const tlpb_sim *sim);

#ifdef __cplusplus
}
#endif

#endif
