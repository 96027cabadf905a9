/* rtl_adapter internals, shared by its files:
 *   adapter.c  the bridge connection (through libtlpbsim), logging
 *   stream.c   the RX queue and its beats, TX beats back into TLPs, DMA tags
 *   config.c   config space, BAR decode, the MSI-X table, resets, interrupts
 *   cycle.c    one clock edge: handshakes, I/O cadence, sleeping when idle,
 *              pacing to --max-cycles-per-s
 *   throttle.c the pacing arithmetic (throttle.h)
 *   dpi.c      the DPI-C entry point of the SystemVerilog wrapper
 *   sim.c      command line and run control of a simulator executable */
#ifndef TLPB_RTL_INTERNAL_H
#define TLPB_RTL_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "tlpb/cfgspace.h"
#include "tlpb/tlp.h"
#include "tlpb/wire.h"
#include "tlpb_rtl.h"
#include "tlpb_sim.h"
#include "throttle.h"

#define RTL_OUTPUT_LIMIT_BYTES (8u * 1024u * 1024u)
#define RTL_INPUT_LIMIT_BYTES (16u * 1024u * 1024u)  /* queued for the design */
#define RTL_READ_BUDGET_BYTES (4u * 1024u * 1024u)   /* per read, for fairness */
#define RTL_MAX_TLP_DWS (4u + TLPB_MAX_PAYLOAD_DW)
#define RTL_QUIET_CYCLES 8u      /* no handshake for this long before sleeping */
#define RTL_READ_EMPTY_CYCLES 16u  /* look at the socket this often when RX is empty */
#define RTL_READ_BUSY_CYCLES 256u  /* ... and when it is not */
#define RTL_FLUSH_CYCLES 64u       /* write queued output at least this often */
#define RTL_FLUSH_BYTES (64u * 1024u)

enum rx_entry_kind {
    RX_TLP,      /* to the design: dws[] in stream format */
    RX_CONFIG,   /* a config request the adapter answers when it reaches the head */
    RX_RESET,    /* a reset from the host, in order with the requests */
    RX_ANSWER,   /* a completion the adapter made for a host request (UR, MSI-X
                  * table): sent when it reaches the head */
    RX_HOST_CPL, /* a completion for a DMA read of the design, in its own queue
                  * (cpl_head): checked against its tag and queued for the
                  * design when due */
};

/* The RX queue is in due-cycle order (arrival order among equals): an entry
 * takes effect when the device's clock reaches its due cycle (coupled time;
 * free-running everything is due at once). */
struct rx_entry {
    struct rx_entry *next;
    enum rx_entry_kind kind;
    uint64_t due_cycle;
    uint8_t bar_hit;        /* RX_TLP: one bit per BAR */
    Tlpb__ResetKind reset_kind; /* RX_RESET */
    struct tlpb_tlp tlp;    /* RX_CONFIG, RX_ANSWER, RX_HOST_CPL: payload in dws[] */
    uint32_t n_dws;         /* dws[] in use */
    uint32_t dws[];         /* RX_TLP: the stream format; others: the payload bytes */
};

struct tlpb_rtl {
    struct tlpb_rtl_options opts;
    char device_name[64];
    char peer_name[96];

    tlpb_sim *sim;               /* the bridge */
    volatile sig_atomic_t stop_requested;

    /* the PCIe function */
    struct tlpb_cfgspace cfg;
    struct tlpb_rtl_cfg cfg_out; /* what the design sees, refreshed on change */
    /* the MSI-X table and PBA, answered here should accesses reach the
     * device (the host owns the real ones); NULL without MSI-X */
    struct tlpb_msix *msix_table;
    unsigned reset_left;         /* cycles of user_reset still to drive */
    bool power_on_reset;         /* the first one: the host is not listened to */

    /* RX: TLPs for the design, in order */
    struct rx_entry *rx_head, *rx_tail;
    size_t rx_bytes;
    uint32_t rx_beat;            /* next beat of rx_head */
    struct rx_entry *cpl_head, *cpl_tail; /* DMA completions, until due */

    unsigned out_lanes;          /* DWs per beat of both streams */

    /* TX: the TLP being received from the design */
    uint32_t tx_dws[RTL_MAX_TLP_DWS];
    uint8_t tx_bytes[RTL_MAX_TLP_DWS * 4];
    uint32_t tx_count;
    bool tx_malformed;
    const char *tx_malformed_reason;
    bool held;                   /* a DMA read waits for a free tag */
    struct tlpb_tlp held_read;

    /* DMA reads of the design: link tags, mapped back to the design's */
    struct tlpb_tag_table tags;
    uint8_t design_tag[TLPB_TAGS_MAX];
    bool tag_stale[TLPB_TAGS_MAX]; /* abandoned by a reset: drop its completions */

    /* interrupts */
    bool intx_design;            /* level the design drives */
    bool intx_wire;              /* level the host was told */

    /* cadence */
    uint64_t last_activity;
    uint64_t last_read;
    uint64_t last_flush;
    bool trigger_prev;
    bool trigger_pending;
    uint32_t stall_rng;
    unsigned stall_left;
    /* pacing to opts.max_cycles_per_s, set up on the first cycle */
    bool pacing_started;
    struct rtl_throttle throttle;
    uint64_t (*pacing_now_ns)(void);   /* monotonic clock; tests inject one */
    void (*pacing_sleep)(uint64_t ns); /* clock_nanosleep; tests inject one */

    /* coupled time (docs/protocol.md "Simulated time") */
    uint64_t period_ps;
    uint64_t time_cycle;         /* the device's clock, in cycles */
    uint64_t edge_cycle;         /* time_cycle of the last edge, before any jump */
    uint64_t wave_offset_cycles; /* waveform time minus device time: cycles the
                                  * clock went back joining the host's */
    bool coupled;
    uint64_t coupled_cycles_base; /* stats.cycles at COUPLED: REACHED counts from it */
    uint64_t allowance_cycle;    /* the largest grant, in cycles (rounded up) */
    bool grant_pending;
    bool waiting_for_host;       /* in the coupled wait: read past the input limit */
    bool input_full_logged;
    uint64_t grant_sync_id;
    /* host non-posted requests not completed yet (the implicit grant) */
    unsigned host_np_outstanding;
    bool host_mrd_tag[TLPB_TAGS_MAX]; /* an MRd with this tag waits for the design */
    /* DMA reads of the design: completion due cycle per link tag, and the
     * reads whose completions have not all arrived (the clock holds) */
    uint64_t dma_latency_cycles;
    uint64_t dma_due[TLPB_TAGS_MAX];
    bool dma_waiting[TLPB_TAGS_MAX];
    unsigned dma_waiting_count;
    /* Tests: called whenever the adapter is about to wait on the socket in
     * coupled time (playing the bridge, by message order) */
    void (*coupled_wait_hook)(struct tlpb_rtl *a, void *arg);
    void *coupled_wait_arg;

    struct tlpb_rtl_to_design out; /* what is driven now */
    struct tlpb_rtl_stats stats;
};

#define RTL_DEFAULT_CLOCK_PERIOD_PS 4000u   /* 250 MHz */
#define RTL_DEFAULT_DMA_READ_LATENCY_NS 250u
#define RTL_COUPLED_WAIT_MS 100             /* slice of a wait for the host */

/* adapter.c */
void rtl_send_tlp(struct tlpb_rtl *a, const struct tlpb_tlp *tlp);
void rtl_send_interrupt(struct tlpb_rtl *a, Tlpb__InterruptKind kind, uint32_t vector);
void rtl_read_input(struct tlpb_rtl *a);
void rtl_flush_output(struct tlpb_rtl *a);
/* Sleep until the socket is readable (or writable with output queued), at
 * most timeout_ms, then service it. */
void rtl_wait_socket(struct tlpb_rtl *a, int timeout_ms);

/* stream.c */
/* Queue for the design, due at once (the adapter's own answers). */
void rtl_rx_push_tlp(struct tlpb_rtl *a, const struct tlpb_tlp *tlp, uint8_t bar_hit);
/* Host messages, due at due_cycle (rtl_due_cycle of their stamp). */
void rtl_rx_push_host_tlp(struct tlpb_rtl *a, const struct tlpb_tlp *tlp, uint8_t bar_hit,
                          uint64_t due_cycle);
void rtl_rx_push_config(struct tlpb_rtl *a, const struct tlpb_tlp *tlp, uint64_t due_cycle);
void rtl_rx_push_answer(struct tlpb_rtl *a, const struct tlpb_tlp *cpl, uint64_t due_cycle);
void rtl_rx_push_host_completion(struct tlpb_rtl *a, const struct tlpb_tlp *cpl);
void rtl_rx_push_reset(struct tlpb_rtl *a, Tlpb__ResetKind reset_kind, uint64_t due_cycle);
/* The head entry is not due yet (coupled time): its due cycle, else 0. */
uint64_t rtl_rx_head_future_due(const struct tlpb_rtl *a);
/* The same for the first DMA completion waiting for its cycle. */
uint64_t rtl_cpl_head_future_due(const struct tlpb_rtl *a);
void rtl_rx_free_all(struct tlpb_rtl *a);
/* Drive the next RX beat (handling config and reset entries at the head). */
void rtl_rx_present(struct tlpb_rtl *a);
void rtl_rx_beat_taken(struct tlpb_rtl *a);
void rtl_tx_beat(struct tlpb_rtl *a, const struct tlpb_rtl_from_design *in);
void rtl_tx_retry_held(struct tlpb_rtl *a);
void rtl_host_completion(struct tlpb_rtl *a, const struct tlpb_tlp *cpl);
/* A completion the design sent, or the adapter sent for it: the end of a
 * host request's implicit grant when it is the last one. */
void rtl_host_request_completed(struct tlpb_rtl *a, const struct tlpb_tlp *cpl);
/* The last completion of a request: a failed one, or one carrying all the
 * bytes still owed. */
bool rtl_completion_is_last(const struct tlpb_tlp *cpl);
void rtl_tags_abandon(struct tlpb_rtl *a);
/* Encode a TLP in the design's stream format: header DWs as in the PCIe
 * figures, payload DWs little-endian. Returns the DW count or -EINVAL. */
int tlpb_rtl_encode_dws(const struct tlpb_tlp *tlp, uint32_t *dws, size_t max_dws);
/* Decode DWs in the stream format; payload points into buf (>= n*4 bytes). */
int tlpb_rtl_decode_dws(const uint32_t *dws, uint32_t n, uint8_t *buf, struct tlpb_tlp *tlp,
                        const char **reason);

/* cycle.c: coupled time */
/* The cycle a host message stamped t_ps takes effect: ceil(t / period), not
 * before the present one (free-running: the present one). */
uint64_t rtl_due_cycle(const struct tlpb_rtl *a, uint64_t t_ps);
void rtl_time_sync(struct tlpb_rtl *a, const struct tlpb_sim_time_sync *ts);

/* config.c */
void rtl_config_init(struct tlpb_rtl *a);
void rtl_config_fini(struct tlpb_rtl *a);
void rtl_config_request(struct tlpb_rtl *a, const struct tlpb_tlp *tlp);
/* A memory request from the host: answered here (no BAR, MSI-X table, PBA)
 * or queued for the design. */
void rtl_memory_request(struct tlpb_rtl *a, const struct tlpb_tlp *tlp, uint64_t due_cycle);
void rtl_reset(struct tlpb_rtl *a, Tlpb__ResetKind reset_kind);
void rtl_refresh_cfg(struct tlpb_rtl *a);
void rtl_intx_update(struct tlpb_rtl *a);
void rtl_msix_request(struct tlpb_rtl *a, unsigned vector);

#endif
