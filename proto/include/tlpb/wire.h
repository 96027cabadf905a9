/* Framing and messages: length-prefixed protobuf envelopes on a stream
 * socket, conversion between structured TLPs and their protobuf form, and
 * the client side of the handshake. */
#ifndef TLPB_WIRE_H
#define TLPB_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tlpbridge.pb-c.h"
#include "tlpb/devdesc.h"
#include "tlpb/tlp.h"

#define TLPB_PROTOCOL_MAJOR 1
#define TLPB_PROTOCOL_MINOR 0

#define TLPB_FRAME_PREFIX_BYTES 4u
/* Room for the largest fast-mode TLP plus its envelope. */
#define TLPB_DEFAULT_MAX_FRAME_BYTES (TLPB_UNSPLIT_MAX_BYTES + 4096u)
/* Smallest max frame a peer may announce: one 4 KiB TLP and its envelope. */
#define TLPB_MIN_MAX_FRAME_BYTES 8192u
/* Nobody may announce more than this. */
#define TLPB_HARD_MAX_FRAME_BYTES (16u * 1024u * 1024u)

/* ---- Outbound: frames appended to a bounded buffer ----------------------- */

struct tlpb_obuf {
    uint8_t *data;
    size_t start;          /* first unsent byte */
    size_t end;            /* one past the last queued byte */
    size_t capacity;
    size_t limit_bytes;    /* queued bytes above this are refused (-ENOBUFS) */
    uint32_t max_frame_bytes;
};

void tlpb_obuf_init(struct tlpb_obuf *ob, size_t limit_bytes, uint32_t max_frame_bytes);
void tlpb_obuf_free(struct tlpb_obuf *ob);
static inline size_t tlpb_obuf_pending(const struct tlpb_obuf *ob) { return ob->end - ob->start; }
static inline const uint8_t *tlpb_obuf_head(const struct tlpb_obuf *ob) { return ob->data + ob->start; }
void tlpb_obuf_consume(struct tlpb_obuf *ob, size_t bytes);

/* Append one framed envelope. force ignores limit_bytes (completions and
 * control replies must not be refused: the requester is waiting). Returns 0,
 * -ENOBUFS (over the limit: try later), -EMSGSIZE (bigger than the
 * negotiated max frame) or -ENOMEM. */
int tlpb_obuf_append(struct tlpb_obuf *ob, const Tlpb__Envelope *env, bool force);
int tlpb_obuf_append_tlp(struct tlpb_obuf *ob, const struct tlpb_tlp *tlp, bool force);
/* env carrying irq, filled with kind and vector (a frame or a trace record). */
void tlpb_interrupt_envelope(Tlpb__Envelope *env, Tlpb__Interrupt *irq, Tlpb__InterruptKind kind,
                             uint32_t vector);
int tlpb_obuf_append_interrupt(struct tlpb_obuf *ob, Tlpb__InterruptKind kind, uint32_t vector);
/* The same, stamped with the device's clock (coupled time; 0 = unstamped). */
int tlpb_obuf_append_interrupt_at(struct tlpb_obuf *ob, Tlpb__InterruptKind kind, uint32_t vector,
                                  uint64_t sim_time_ps);
/* env carrying ts (a frame or a trace record); ts stays the caller's. */
void tlpb_time_sync_envelope(Tlpb__Envelope *env, const Tlpb__TimeSync *ts);
/* Always queued (like interrupts): a TimeSync keeps its place behind the
 * TLPs queued before it. */
int tlpb_obuf_append_time_sync(struct tlpb_obuf *ob, const Tlpb__TimeSync *ts);
int tlpb_obuf_append_error(struct tlpb_obuf *ob, const char *reason);
/* An Error that reports a device DMA the host refused (docs/protocol.md,
 * "DMA faults"); bytes 0 makes it a plain Error. */
int tlpb_obuf_append_dma_fault(struct tlpb_obuf *ob, const char *reason, uint64_t address,
                               uint32_t bytes);
/* That Error in env (err holds it; the strings are not copied): what the host
 * sends, and what the bridge's trace records for a DMA fault. */
void tlpb_dma_fault_envelope(Tlpb__Envelope *env, Tlpb__Error *err, const char *reason,
                             uint64_t address, uint32_t bytes);
/* A simulator's DmaContext in env (ctx holds it; text is not copied): what
 * the DMA whose requests follow is for (docs/protocol.md, "DMA faults"). */
void tlpb_dma_context_envelope(Tlpb__Envelope *env, Tlpb__DmaContext *ctx, bool write,
                               uint64_t address, uint32_t length_bytes, const char *text);

/* Write everything pending to a blocking fd (retrying on EINTR, partial
 * writes). Returns 0 or -errno. */
int tlpb_obuf_write_all(struct tlpb_obuf *ob, int fd);

/* ---- Inbound: frame reassembly from a byte stream ------------------------ */

struct tlpb_frame_reader {
    uint8_t *data;
    size_t start;          /* first unparsed byte */
    size_t end;            /* one past the last received byte */
    size_t capacity;
    uint32_t max_frame_bytes;
};

void tlpb_reader_init(struct tlpb_frame_reader *rd, uint32_t max_frame_bytes);
void tlpb_reader_free(struct tlpb_frame_reader *rd);

/* Where to receive into: at least min_bytes of space (compacts and grows as
 * needed, bounded by the max frame). Returns NULL on allocation failure. */
uint8_t *tlpb_reader_space(struct tlpb_frame_reader *rd, size_t min_bytes, size_t *space);
void tlpb_reader_commit(struct tlpb_frame_reader *rd, size_t bytes);

/* Next complete frame: returns 1 with frame and len set (valid until the next
 * tlpb_reader_space call), 0 when more bytes are needed, or -EMSGSIZE with
 * *reason when the length prefix exceeds the max frame (the connection must
 * be dropped: the stream cannot be resynchronised). */
int tlpb_reader_next(struct tlpb_frame_reader *rd, const uint8_t **frame, size_t *len,
                     const char **reason);

/* Read from a blocking fd until one frame is available; returns 1 with the
 * frame, 0 on orderly EOF, or -errno (-EMSGSIZE for an oversize prefix,
 * -ETIMEDOUT when timeout_ms >= 0 expires first). */
int tlpb_reader_read_frame(struct tlpb_frame_reader *rd, int fd, int timeout_ms,
                           const uint8_t **frame, size_t *len, const char **reason);

/* ---- Messages ------------------------------------------------------------ */

/* Unpack a frame. Returns NULL with *reason when the bytes are not a valid
 * Envelope or it carries no body. Free with tlpb_envelope_free. */
Tlpb__Envelope *tlpb_envelope_decode(const uint8_t *frame, size_t len, const char **reason);
void tlpb_envelope_free(Tlpb__Envelope *env);

/* Structured TLP <-> protobuf. from_pb range-checks every field (values that
 * do not fit their PCIe width are rejected with *reason, never truncated);
 * the payload aliases pb's bytes. to_pb aliases tlp's payload. */
int tlpb_tlp_from_pb(struct tlpb_tlp *tlp, const Tlpb__Tlp *pb, const char **reason);
void tlpb_tlp_to_pb(Tlpb__Tlp *pb, const struct tlpb_tlp *tlp);

/* Device description <-> protobuf. to_pb fills storage that must outlive pb. */
struct tlpb_devdesc_pb {
    Tlpb__DeviceDescription msg;
    Tlpb__Bar bars[TLPB_BAR_COUNT];
    Tlpb__Bar *bar_ptrs[TLPB_BAR_COUNT];
};
void tlpb_devdesc_to_pb(struct tlpb_devdesc_pb *out, const struct tlpb_devdesc *desc);
int tlpb_devdesc_from_pb(struct tlpb_devdesc *desc, const Tlpb__DeviceDescription *pb,
                         const char **reason);

const char *tlpb_role_name(Tlpb__Role role);
/* "Tlp", "Reset", "ControlRequest", ...: for logs and Error reasons. */
const char *tlpb_message_name(Tlpb__Envelope__BodyCase body);
/* "FLR", "hot reset"; "Interrupt" kinds "MSI-X", "MSI", "INTx assert",
 * "INTx deassert"; "simulator attached", "simulator detached", "backend
 * changed". Out-of-range kinds: "unknown ... kind". */
const char *tlpb_reset_kind_name(Tlpb__ResetKind kind);
const char *tlpb_interrupt_kind_name(Tlpb__InterruptKind kind);
const char *tlpb_event_kind_name(Tlpb__EventKind kind);
/* The Error reason for a malformed TLP, naming the kind and the tag as the
 * peer sent them and the field: "malformed TLP (MRd, tag 256): tag wider
 * than 8 bits" (an unknown kind by its number). Returns dst. */
const char *tlpb_malformed_tlp_reason(char *dst, size_t dst_size, const Tlpb__Tlp *pb,
                                      const char *field);

/* ---- Transport ----------------------------------------------------------- */

/* Connect to a bridge address: "unix:PATH", "tcp:HOST:PORT", or a plain
 * path. Blocking, close-on-exec, TCP_NODELAY for TCP. Returns the fd, or
 * -errno with err filled in. */
int tlpb_connect(const char *address, char *err, size_t err_size);

/* Send frame (one encoded envelope, prefix included) on a blocking unix
 * socket with n descriptors attached to its first byte as one SCM_RIGHTS
 * message (GuestMemory, RingSetup); the rest follows in further writes if the
 * socket takes less. Returns 0, or -EINVAL (more than TLPB_MAX_SEND_FDS, an
 * empty frame), or -errno. */
#define TLPB_MAX_SEND_FDS 64u
int tlpb_send_with_fds(int sock, const uint8_t *frame, size_t len, const int *fds, unsigned n);

/* The receiving side: recvmsg of up to len bytes into buf (flags such as
 * MSG_DONTWAIT; descriptors are always received close-on-exec), keeping the
 * descriptors that came with them in fds, at most max_fds (*nfds of them,
 * in order). Any beyond max_fds, or beyond TLPB_MAX_SEND_FDS in one call,
 * are closed and *truncated is set. Returns what recvmsg returns (-1 with
 * errno; no descriptor is kept then). */
ssize_t tlpb_recv_with_fds(int sock, uint8_t *buf, size_t len, int flags, int *fds,
                           unsigned max_fds, unsigned *nfds, bool *truncated);

/* A Hello of this protocol version for role, with the default max frame
 * (device_name may be NULL for a control peer). The strings are not copied:
 * they must outlive hello. Callers add capabilities, a description, a
 * token. */
void tlpb_hello_init(Tlpb__Hello *hello, Tlpb__Role role, const char *device_name,
                     const char *peer_name);

/* Client handshake on a connected blocking fd: send Hello, wait up to
 * timeout_ms for HelloReply. Returns the reply (caller frees with
 * tlpb_envelope_free; check ->hello_reply->accepted), or NULL with err.
 *
 * The bridge's shared token: when hello->token is empty, it comes from the
 * environment, TLPB_TOKEN or else the first line of the file named by
 * TLPB_TOKEN_FILE (tlpb_token_from_env), so every client can present one
 * without it appearing on a command line. A token is one line: a given one
 * is sent up to its first CR or LF (at most TLPB_TOKEN_MAX_BYTES). */
Tlpb__Envelope *tlpb_handshake(int fd, struct tlpb_frame_reader *rd, const Tlpb__Hello *hello,
                               int timeout_ms, char *err, size_t err_size);

/* The largest token a Hello may carry (the bridge compares whole tokens). */
#define TLPB_TOKEN_MAX_BYTES 127u

/* Read a token from the first line of a file (a trailing newline or CR is
 * dropped). Returns 0, or -1 with err: unreadable, empty or too long. */
int tlpb_token_read_file(const char *path, char *token, size_t token_size, char *err,
                         size_t err_size);
/* The token from TLPB_TOKEN, else from the file named by TLPB_TOKEN_FILE,
 * else "". Returns 0, or -1 with err when TLPB_TOKEN_FILE cannot be used. */
int tlpb_token_from_env(char *token, size_t token_size, char *err, size_t err_size);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t tlpb_now_ns(void);

#endif
