/* The shared-memory ring between a host and the bridge (docs/protocol.md,
 * "Shared-memory ring").
 *
 * One memfd holds two single-producer single-consumer byte rings, one per
 * direction, each with its own control block (producer index, consumer
 * index, and the consumer's and producer's "I sleep" flags on separate cache
 * lines). Each side has an eventfd it sleeps on; the other side writes it
 * only when the flag says the sleeper really sleeps, so a busy pair makes no
 * system call at all.
 *
 * Records are 8-byte aligned: an 8-byte record header (length, type, padding),
 * then the body and up to 7 zero bytes. A TLP and an Interrupt have a fixed binary body (no protobuf on
 * the hot path); every other message is its serialized Envelope. A record
 * never wraps: the producer pads to the end of the ring.
 *
 * The peer is not trusted: the indices and every record are checked, and a
 * record is copied out of the shared memory before it is decoded, so a peer
 * changing it meanwhile cannot make the decoder read out of bounds or see a
 * different record than it validated. Any inconsistency is a protocol error
 * with a reason; the caller drops the connection.
 *
 * Not thread-safe: one thread per side. */
#ifndef TLPB_RING_H
#define TLPB_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tlpb/tlp.h"
#include "tlpbridge.pb-c.h"

/* 8 MiB: the largest record is a quarter of it, room for the largest
 * fast-mode TLP (1 MiB + 8 bytes of payload). Pages are only touched as
 * used. */
#define TLPB_RING_DEFAULT_BYTES (8u * 1024u * 1024u)
#define TLPB_RING_MIN_BYTES (1u * 1024u * 1024u)
#define TLPB_RING_MAX_BYTES (64u * 1024u * 1024u)
/* The descriptors of RingSetup, in this order. */
enum { TLPB_RING_FD_MEMORY = 0, TLPB_RING_FD_WAKE_BRIDGE = 1, TLPB_RING_FD_WAKE_HOST = 2,
       TLPB_RING_FD_COUNT = 3 };

/* The memory's layout (docs/protocol.md, "Ring layout and records"): a
 * header page, then per direction (host -> bridge first) a control page and
 * ring_bytes of data. Offsets in bytes; all integers little-endian. */
#define TLPB_RING_MAGIC 0x474e495242504c54ull /* "TLPBRING" */
#define TLPB_RING_VERSION 1u
#define TLPB_RING_PAGE_BYTES 4096u
#define TLPB_RING_CTL_PRODUCER 0u         /* u64: bytes produced (head) */
#define TLPB_RING_CTL_CONSUMER 64u        /* u64: bytes consumed (tail) */
#define TLPB_RING_CTL_CONSUMER_ASLEEP 128u /* u32: consumer sleeps on its eventfd */
#define TLPB_RING_CTL_PRODUCER_WAITING 192u /* u32: producer waits for room */
#define TLPB_RING_RECORD_HEADER_BYTES 8u  /* u32 length (whole record, 8-aligned),
                                           * u16 type, u16 padding (0..7 zero
                                           * bytes after the body) */
#define TLPB_RING_RECORD_PAD 0xFFu       /* filler up to the end of the data */
#define TLPB_RING_TLP_BODY_BYTES 48u      /* fixed part, then the payload */
#define TLPB_RING_INTERRUPT_BODY_BYTES 16u
/* Total memory size for ring_bytes, and where a direction's control page
 * and data start (direction 0: host -> bridge, 1: bridge -> host). */
static inline uint64_t tlpb_ring_memory_bytes(uint64_t ring_bytes)
{
    return TLPB_RING_PAGE_BYTES + 2 * (TLPB_RING_PAGE_BYTES + ring_bytes);
}
static inline uint64_t tlpb_ring_control_offset(uint64_t ring_bytes, unsigned direction)
{
    return TLPB_RING_PAGE_BYTES + direction * (TLPB_RING_PAGE_BYTES + ring_bytes);
}
static inline uint64_t tlpb_ring_data_offset(uint64_t ring_bytes, unsigned direction)
{
    return tlpb_ring_control_offset(ring_bytes, direction) + TLPB_RING_PAGE_BYTES;
}

/* How a side waits for the other (RingSetup.host_policy, tlpbridged --ring). */
enum tlpb_ring_policy {
    TLPB_RING_OFF = 0,        /* no ring: the socket carries everything */
    TLPB_RING_ADAPTIVE = 1,   /* poll for spin_us after the last activity, then sleep */
    TLPB_RING_BUSY_POLL = 2,  /* never sleep (give this side a core) */
};
#define TLPB_RING_DEFAULT_SPIN_US 50u
const char *tlpb_ring_policy_name(enum tlpb_ring_policy policy);
/* "adaptive", "busy-poll", "off". Returns 0 or -EINVAL. */
int tlpb_ring_policy_from_name(const char *name, enum tlpb_ring_policy *policy);

enum tlpb_ring_side { TLPB_RING_SIDE_HOST = 0, TLPB_RING_SIDE_BRIDGE = 1 };

struct tlpb_ring;

/* Host: create the memory (memfd, ring_bytes per direction, a power of two
 * within the limits) and both eventfds. fds[] receives the three descriptors
 * to send with RingSetup; they stay owned by the ring (closed by
 * tlpb_ring_destroy), the caller only sends them. Returns 0 or -errno with
 * err filled. */
int tlpb_ring_create(struct tlpb_ring **out, uint64_t ring_bytes, int fds[TLPB_RING_FD_COUNT],
                     char *err, size_t err_size);
/* Bridge: map the descriptors received with a RingSetup. Takes ownership of
 * the three descriptors whatever the outcome (closed on failure). Checks the
 * memory's size and header against ring_bytes and that the eventfds are
 * eventfds. Returns 0 or -errno with err filled. */
int tlpb_ring_attach(struct tlpb_ring **out, const int fds[TLPB_RING_FD_COUNT],
                     uint64_t ring_bytes, char *err, size_t err_size);
void tlpb_ring_destroy(struct tlpb_ring *r);

/* The largest record body this ring accepts (a quarter of ring_bytes). */
size_t tlpb_ring_max_record(const struct tlpb_ring *r);

/* ---- Producing -----------------------------------------------------------
 * Each put either writes the whole record or nothing. Returns 0; -EAGAIN when
 * the ring has no room now (retry after the consumer ran: the producer's
 * "waiting for room" flag is set, so the consumer wakes this side when it
 * frees space); -EMSGSIZE when the record exceeds tlpb_ring_max_record;
 * -EPROTO when the consumer's index is corrupt (reason from
 * tlpb_ring_error). Records become visible to the consumer at once, but it
 * is only woken by tlpb_ring_notify. */
int tlpb_ring_put_tlp(struct tlpb_ring *r, const struct tlpb_tlp *tlp);
int tlpb_ring_put_interrupt(struct tlpb_ring *r, Tlpb__InterruptKind kind, uint32_t vector,
                            uint64_t sim_time_ps);
int tlpb_ring_put_envelope(struct tlpb_ring *r, const Tlpb__Envelope *env);
/* Wake the other side if it sleeps (it is waiting for records that were put,
 * or for room this side freed by consuming). Cheap when it does not sleep:
 * no system call. Call after each batch of puts and gets. */
void tlpb_ring_notify(struct tlpb_ring *r);

/* ---- Consuming -----------------------------------------------------------*/
enum tlpb_ring_msg_type { TLPB_RING_MSG_TLP = 1, TLPB_RING_MSG_INTERRUPT = 2,
                          TLPB_RING_MSG_ENVELOPE = 3 };
struct tlpb_ring_msg {
    enum tlpb_ring_msg_type type;
    struct tlpb_tlp tlp;                 /* TLP: payload points into the ring's
                                          * private copy, valid until the next get */
    Tlpb__InterruptKind irq_kind;        /* INTERRUPT */
    uint32_t irq_vector;
    uint64_t irq_sim_time_ps;
    Tlpb__Envelope *env;                 /* ENVELOPE: free with tlpb_envelope_free */
};
/* Take the next record. Returns 1 with *m filled, 0 when the ring is empty,
 * or -EPROTO (bad indices, length, type, or body; reason from
 * tlpb_ring_error): the ring is unusable from then on. A TLP record's body is
 * decoded into m->tlp with its fields range-checked as tlpb_tlp_from_pb does
 * (the caller still applies tlpb_tlp_validate with its limits). */
int tlpb_ring_get(struct tlpb_ring *r, struct tlpb_ring_msg *m);
/* Whether a record is waiting (no decode, no side effects). */
bool tlpb_ring_pending(const struct tlpb_ring *r);
const char *tlpb_ring_error(const struct tlpb_ring *r);

/* ---- Sleeping -------------------------------------------------------------
 * A side about to sleep calls tlpb_ring_prepare_sleep: it sets its "asleep"
 * flag, then looks again. true: nothing arrived, sleep on
 * tlpb_ring_wake_fd (poll/epoll/uv_poll for readability) until it is
 * readable; false: records arrived meanwhile, the flag is cleared, do not
 * sleep. After waking (or deciding not to sleep) call tlpb_ring_woken, which
 * clears the flag and drains the eventfd. */
bool tlpb_ring_prepare_sleep(struct tlpb_ring *r);
void tlpb_ring_woken(struct tlpb_ring *r);
/* Clear the asleep flag without draining the eventfd, for a side that
 * armed it and polls the ring now anyway. Returns true when the other side
 * had already cleared it, i.e. it wrote (or is about to write) the eventfd:
 * call tlpb_ring_woken then, and drain again whenever the eventfd is found
 * readable later. false: nobody woke this side, no system call needed. */
bool tlpb_ring_cancel_sleep(struct tlpb_ring *r);
int tlpb_ring_wake_fd(const struct tlpb_ring *r);

struct tlpb_ring_stats {
    uint64_t records_out;
    uint64_t records_in;
    uint64_t bytes_out;
    uint64_t bytes_in;
    uint64_t wakeups_sent;    /* eventfd writes to the other side */
    uint64_t sleeps;          /* prepare_sleep that returned true */
    uint64_t full;            /* puts refused for want of room */
};
void tlpb_ring_get_stats(const struct tlpb_ring *r, struct tlpb_ring_stats *stats);

#endif
