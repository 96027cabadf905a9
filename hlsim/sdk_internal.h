/* hlsim SDK internals shared by sdk.c, mmio.c, dma.c and irq.c. */
#ifndef HLSIM_SDK_INTERNAL_H
#define HLSIM_SDK_INTERNAL_H

#include <sys/queue.h>

#include "hlsim.h"
#include "hlsim_env.h"
#include "tlpb/byteorder.h"
#include "tlpb/cfgspace.h"
#include "tlpb/dma_context.h"
#include "tlpb/msix.h"
#include "tlpb/tlp.h"
#include "tlpbridge.pb-c.h"

/* Largest DMA transfer one hlsim_dma_read/write call may ask for. */
#define HLSIM_DMA_MAX_BYTES (16u * 1024u * 1024u)
/* Fast mode moves DMA in pieces of this size (within TLPB_UNSPLIT_MAX_BYTES
 * even when the start is not DW aligned). */
#define HLSIM_UNSPLIT_PIECE_BYTES (1024u * 1024u)
#define HLSIM_DEFAULT_DMA_TIMEOUT_NS 1000000000ull
#define HLSIM_RCB_BYTES 64u
#define HLSIM_TAGS_BASIC 32u

/* Outbound traffic keeps PCIe's ordering rules with three queues:
 * - posted: DMA write data and interrupts (MSI-X is a posted write, INTx
 *   messages are posted too), strictly in order;
 * - non-posted: DMA reads (and the zero-length "flush" read that follows
 *   writes), in order, each held until every posted entry queued before it
 *   has gone out (a read must not pass a write), and by tag availability;
 * - completions to host requests, held only behind earlier posted entries
 *   (a completion must not pass a posted write, but may pass reads).
 * Posted entries carry a sequence number; the others carry the sequence
 * number they must wait for (barrier). */
struct hlsim_posted {
    TAILQ_ENTRY(hlsim_posted) link;
    uint64_t seq;
    bool is_interrupt;
    Tlpb__InterruptKind irq_kind; /* for interrupts */
    unsigned irq_vector;
    uint64_t address;      /* first byte of a write */
    uint32_t length_bytes;
    uint32_t sent_bytes;
    uint8_t *image;        /* write data, DW aligned: image[address & 3] is byte 0 */
};
TAILQ_HEAD(hlsim_posted_list, hlsim_posted);

enum hlsim_op_place { HLSIM_OP_QUEUED, HLSIM_OP_INFLIGHT, HLSIM_OP_DONE };

/* A DMA read, or the flush read that reports whether earlier writes landed. */
struct hlsim_dma_op {
    TAILQ_ENTRY(hlsim_dma_op) link;
    enum hlsim_op_place place;
    uint64_t barrier;
    uint64_t address;
    uint32_t length_bytes;
    uint32_t issued_bytes;
    uint8_t *buffer;       /* caller's; NULL for a flush */
    bool is_flush;
    bool flush_issued;
    bool stop_issuing;     /* failed: the rest is not requested */
    unsigned outstanding;  /* requests (tags) in flight */
    enum hlsim_dma_status status;
    hlsim_dma_cb cb;
    void *cb_arg;
};
TAILQ_HEAD(hlsim_op_list, hlsim_dma_op);

struct hlsim_queued_cpl {
    TAILQ_ENTRY(hlsim_queued_cpl) link;
    uint64_t barrier;
    struct tlpb_tlp tlp;
    uint8_t payload[];
};
TAILQ_HEAD(hlsim_cpl_list, hlsim_queued_cpl);

/* A completion to a host read, held for the access latency. */
struct hlsim_delayed_cpl {
    TAILQ_ENTRY(hlsim_delayed_cpl) link;
    uint64_t due_ns;
    struct tlpb_tlp tlp;
    uint8_t payload[];
};
TAILQ_HEAD(hlsim_delayed_cpl_list, hlsim_delayed_cpl);

struct hlsim_timer {
    TAILQ_ENTRY(hlsim_timer) link;
    hlsim_device *dev;
    hlsim_timer_cb cb;
    void *arg;
    void *env_timer;
};
TAILQ_HEAD(hlsim_timer_list, hlsim_timer);

struct hlsim_device {
    const struct hlsim_model_ops *ops;
    void *model;
    struct hlsim_device_options opts;
    const struct hlsim_env_ops *env_ops;
    void *env;
    struct tlpb_cfgspace cfg;

    /* The MSI-X table and PBA, only for accesses a host might forward: the
     * host owns the real ones. */
    struct tlpb_msix msix;
    bool intx_level;       /* what the model drives */
    bool intx_wire;        /* what the host has been told */

    struct tlpb_tag_table tags;
    struct hlsim_posted_list posted;
    struct hlsim_op_list nonposted;
    struct hlsim_op_list inflight;
    struct hlsim_op_list done;
    struct hlsim_cpl_list cpls;
    uint64_t posted_seq;   /* next posted sequence number */
    bool output_blocked;   /* send_tlp said -EAGAIN; wait for output_ready */
    bool pumping;
    uint64_t dma_timeout_ns;
    void *timeout_timer;
    bool timeout_armed;

    /* simulated time (coupled only) */
    bool time_coupled;
    uint64_t access_latency_ns;
    struct hlsim_delayed_cpl_list delayed_cpls;
    void *latency_timer;
    double dma_bytes_per_ns;  /* 0: unlimited */
    uint64_t link_free_ps;    /* model time when the link takes the next TLP */
    void *link_timer;
    bool link_timer_armed;

    /* hlsim_dma_set_context: the current text, and the last DMAs with one
     * (so a DMA fault the host reports later can be named). */
    char dma_context[HLSIM_DMA_CONTEXT_MAX];
    struct tlpb_dma_context_history dma_history;
    const char *model_callback; /* the model operation running now, or NULL */
    bool defer_pending;    /* a deferred_run is queued in the environment */
    bool destroying;
    struct hlsim_timer_list timers;
};

/* sdk.c */
void sdk_schedule(hlsim_device *dev);
/* Every call into the model goes through SDK_CALL_MODEL, so the
 * environment knows which model operation runs (see model_callback). */
const char *sdk_model_enter(hlsim_device *dev, const char *callback);
void sdk_model_leave(hlsim_device *dev, const char *outer);
#define SDK_CALL_MODEL(dev, callback, call)                                                    \
    do {                                                                                       \
        const char *outer_ = sdk_model_enter((dev), (callback));                               \
        call;                                                                                  \
        sdk_model_leave((dev), outer_);                                                        \
    } while (0)
uint16_t sdk_bdf(const hlsim_device *dev);
uint64_t sdk_now(hlsim_device *dev);

/* mmio.c: host memory requests */
void mmio_init(hlsim_device *dev);
void mmio_fini(hlsim_device *dev);
void mmio_receive_request(hlsim_device *dev, const struct tlpb_tlp *tlp);

/* dma.c */
void dma_init(hlsim_device *dev);
void dma_fini(hlsim_device *dev);
void dma_pump(hlsim_device *dev);
void dma_receive_completion(hlsim_device *dev, const struct tlpb_tlp *cpl);
void dma_deliver_callbacks(hlsim_device *dev);
void dma_link_down(hlsim_device *dev);
void dma_clear_context(hlsim_device *dev);
void upstream_send_completion(hlsim_device *dev, const struct tlpb_tlp *cpl);
void upstream_send_interrupt(hlsim_device *dev, Tlpb__InterruptKind kind, unsigned vector);

/* irq.c */
int irq_init(hlsim_device *dev);
void irq_fini(hlsim_device *dev);
void irq_reset(hlsim_device *dev);
void irq_config_changed(hlsim_device *dev, unsigned changes);

#endif
