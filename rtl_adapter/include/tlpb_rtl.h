/* The RTL adapter: plays the PCIe hard IP for a design in an RTL simulator,
 * attached to tlpbridged as the simulator of one device.
 *
 * The adapter owns config space (built from the device description),
 * answers configuration requests and MSI-X table accesses itself, and
 * passes everything else to the design as raw TLPs on an AXI4-Stream (RX);
 * the design's TLPs come back on another (TX), are validated and sent to
 * the bridge. An interrupt request port turns MSI-X requests and the INTx
 * level into Interrupt messages. docs/rtl-interface.md describes every
 * signal.
 *
 * The adapter is stepped once per clock edge with what the design drives
 * (sampled before the edge) and returns what it drives for the next cycle.
 * The SystemVerilog wrapper (sv/tlpb_rtl_pcie.sv) does that through DPI-C;
 * tests call tlpb_rtl_cycle() directly. */
#ifndef TLPB_RTL_H
#define TLPB_RTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tlpb/devdesc.h"
#include "tlpb/log.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TLPB_RTL_MAX_LANES 16 /* 512-bit streams; one lane is one DW */

/* The project's log levels (tlpb/log.h) under the adapter's names. */
#define tlpb_rtl_log_level tlpb_log_level
#define TLPB_RTL_LOG_ERROR TLPB_LOG_ERROR
#define TLPB_RTL_LOG_WARN TLPB_LOG_WARN
#define TLPB_RTL_LOG_INFO TLPB_LOG_INFO
#define TLPB_RTL_LOG_DEBUG TLPB_LOG_DEBUG

/* What the design drives, sampled before a clock edge. */
struct tlpb_rtl_from_design {
    unsigned lanes;                         /* DWs per beat: DATA_W / 32 */
    bool rx_tready;
    uint32_t tx_tdata[TLPB_RTL_MAX_LANES];  /* lane i = tdata[32*i +: 32] */
    uint64_t tx_tkeep;                      /* one bit per byte */
    bool tx_tlast;
    bool tx_tvalid;
    bool irq_msix_req;
    uint16_t irq_msix_vector;
    bool irq_intx;                          /* INTx level */
    bool idle;                              /* the design waits for input only */
    bool trigger;                           /* waveform window trigger */
};

/* Configuration the design sees (cfg_* signals). */
struct tlpb_rtl_cfg {
    uint16_t completer_id;       /* bus[15:8] device[7:3] function[2:0] */
    bool bus_master_enable;
    bool memory_enable;
    uint8_t max_payload;         /* 128 << code bytes */
    uint8_t max_read_request;    /* 128 << code bytes */
    bool msix_enable;
    bool msix_function_mask;
    bool intx_disable;
    bool extended_tag_enable;
};

/* What the adapter drives for the next cycle. */
struct tlpb_rtl_to_design {
    bool reset;                             /* user_reset, active high */
    bool link_up;
    uint32_t rx_tdata[TLPB_RTL_MAX_LANES];
    uint64_t rx_tkeep;
    bool rx_tlast;
    bool rx_tvalid;
    uint8_t rx_bar_hit;                     /* one bit per BAR, held for the whole TLP */
    bool tx_tready;
    bool irq_msix_ack;
    struct tlpb_rtl_cfg cfg;
};

struct tlpb_rtl_options {
    const char *socket;              /* bridge address: path, unix:PATH or tcp:HOST:PORT */
    const char *device_name;
    const char *peer_name;           /* for the bridge's logs */
    struct tlpb_devdesc description;
    uint32_t completion_timeout_ms;  /* announced to the bridge; 0: 60000 */
    int log_level;                   /* enum tlpb_rtl_log_level */
    unsigned reset_cycles;           /* user_reset length; 0: 16 */
    unsigned idle_wait_ms;           /* longest single sleep on the socket; 0: 200 */
    /* Pace clocked cycles to at most this many per wall second, as a large
     * design would simulate (0: as fast as the simulator goes). Cycles
     * asleep idle on the socket do not count. */
    uint64_t max_cycles_per_s;
    /* Coupled time (docs/rtl-guide.md "Coupled time"): the design's clock
     * period, announced in the Hello (0: 4000 ps, 250 MHz), and the time a
     * DMA read of the design takes to complete in device time (0: 250 ns). */
    uint64_t clock_period_ps;
    uint32_t dma_read_latency_ns;
    /* Tests: drop tx_tready for random stretches (percent of cycles). */
    unsigned tx_stall_percent;
    uint32_t stall_seed;
};

struct tlpb_rtl_stats {
    uint64_t cycles;                 /* clocked: edges the design saw */
    uint64_t skipped_cycles;         /* coupled: device time jumped over while idle */
    uint64_t time_cycle;             /* the device's clock in cycles (clocked + skipped) */
    uint64_t reached;                /* coupled: grants answered with REACHED */
    uint64_t reached_idle;           /* ... of them idle */
    uint64_t idle_waits;             /* times the adapter slept on the socket */
    uint64_t idle_wait_ns;           /* time spent there */
    uint64_t pacing_sleeps;          /* sleeps to keep max_cycles_per_s */
    uint64_t pacing_sleep_ns;        /* time spent there */
    uint64_t tlps_to_design;
    uint64_t tlps_from_design;
    uint64_t bad_tlps_from_design;   /* failed validation: dropped (requests get UR) */
    uint64_t config_requests;
    uint64_t msix_messages;
    uint64_t intx_changes;
    uint64_t resets;
    uint64_t dropped_completions;    /* stale or unexpected completions from the host */
};

struct tlpb_rtl;

/* Connect to the bridge and attach as the simulator of opts->device_name.
 * Returns 0 with *out set, or a negative errno with err filled in. */
int tlpb_rtl_open(struct tlpb_rtl **out, const struct tlpb_rtl_options *opts, char *err,
                  size_t err_size);
/* The same on a connected stream socket (tests). The adapter owns fd. */
int tlpb_rtl_open_fd(struct tlpb_rtl **out, int fd, const struct tlpb_rtl_options *opts,
                     char *err, size_t err_size);
/* Flush what is queued (bounded wait) and close. NULL is fine. */
void tlpb_rtl_close(struct tlpb_rtl *a);

/* One clock edge. May sleep on the socket when the design is idle and
 * nothing is queued. */
void tlpb_rtl_cycle(struct tlpb_rtl *a, const struct tlpb_rtl_from_design *in,
                    struct tlpb_rtl_to_design *out);

/* What the adapter drives before the first edge (reset asserted). */
void tlpb_rtl_initial_outputs(const struct tlpb_rtl *a, struct tlpb_rtl_to_design *out);

/* The connection is gone (or a stop was requested): the simulation should
 * end. *exit_code: 0 for a requested stop, 1 for a lost connection. */
bool tlpb_rtl_finished(const struct tlpb_rtl *a, int *exit_code);
/* Ask the adapter to finish (from a signal handler: async-signal-safe). */
void tlpb_rtl_request_stop(struct tlpb_rtl *a);

/* A waveform trigger since the last call: the design's trigger input rose,
 * or the design sent a TLP that failed validation. */
bool tlpb_rtl_take_trigger(struct tlpb_rtl *a);

void tlpb_rtl_get_stats(const struct tlpb_rtl *a, struct tlpb_rtl_stats *stats);

/* Log through the adapter's logger (level and device prefix). */
void tlpb_rtl_log(const struct tlpb_rtl *a, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The adapter the DPI-C entry point (tlpb_rtl_dpi_cycle) steps: one per
 * simulator process. */
void tlpb_rtl_dpi_bind(struct tlpb_rtl *a);

/* ---- simulator executables ---------------------------------------------------
 * A simulator binary is the Verilated design, the C++ main of this folder and
 * one C file naming the device (see examples/dmacopy/rtl/dmacopy_device.c). */

struct tlpb_rtl_device {
    const char *name;                /* for logs and the bridge's status */
    struct tlpb_devdesc description;
};
extern const struct tlpb_rtl_device tlpb_rtl_device;

struct tlpb_rtl_sim_options {
    const char *trace_path;          /* --trace FILE, or NULL */
    uint64_t trace_window_cycles;    /* --trace-window N: 0 = whole run */
    double cycles_per_ns;            /* --cycles-per-ns F (clock for waveforms and reports) */
    uint64_t clock_period_ps;        /* --clock-period-ps N (or 1000 / F): what counts */
    uint32_t dma_read_latency_ns;    /* --dma-read-latency-ns N (coupled time) */
    uint64_t max_cycles;             /* --max-cycles N: 0 = unlimited */
    uint64_t max_cycles_per_s;       /* --max-cycles-per-s N: 0 = no cap (the adapter paces) */
};

/* What this executable can write (call before tlpb_rtl_sim_start, so bad
 * options are refused before attaching). */
enum tlpb_rtl_waveforms {
    TLPB_RTL_WAVEFORMS_NONE = 0,  /* built without --trace */
    TLPB_RTL_WAVEFORMS_VCD = 1,   /* whole runs and windows */
    TLPB_RTL_WAVEFORMS_FST = 2,   /* whole runs only */
};
void tlpb_rtl_sim_set_waveforms(enum tlpb_rtl_waveforms kind);

/* Parse the command line, connect and attach; installs SIGINT/SIGTERM
 * handlers that end the run cleanly. Returns -1 to go on, or an exit code
 * (0 after --help). */
int tlpb_rtl_sim_start(int argc, char **argv, struct tlpb_rtl_sim_options *opts);
/* Keep simulating? */
bool tlpb_rtl_sim_running(void);
bool tlpb_rtl_sim_take_trigger(void);
uint64_t tlpb_rtl_sim_cycles(void);
/* Device time of the last clock edge in ps (its cycle times the period):
 * waveforms are dumped at it, so their time is the time of the stamps
 * (plus the free-running time dropped when the clock joined the host's at
 * COUPLED, which the log states: waveform time never goes back). */
uint64_t tlpb_rtl_sim_edge_time_ps(void);
void tlpb_rtl_sim_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Report cycles simulated and cycles/s, detach, and return the exit code. */
int tlpb_rtl_sim_finish(void);

#ifdef __cplusplus
}
#endif

#endif
