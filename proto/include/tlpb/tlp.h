/* Structured PCIe transaction layer packets and the helpers that work on them:
 * conversion to and from the on-link header format, request and completion
 * splitting, the tag allocator with completion reassembly, and validation. */
#ifndef TLPB_TLP_H
#define TLPB_TLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tlpb_tlp_kind {
    TLPB_TLP_INVALID = 0,
    TLPB_TLP_MRD = 1,
    TLPB_TLP_MWR = 2,
    TLPB_TLP_CFGRD0 = 3,
    TLPB_TLP_CFGWR0 = 4,
    TLPB_TLP_CPL = 5,
    TLPB_TLP_CPLD = 6,
};

enum tlpb_cpl_status {
    TLPB_CPL_SC = 0,
    TLPB_CPL_UR = 1,
    TLPB_CPL_CRS = 2,
    TLPB_CPL_CA = 4,
};

#define TLPB_ATTR_NO_SNOOP 0x1u
#define TLPB_ATTR_RELAXED_ORDERING 0x2u
#define TLPB_ATTR_ID_ORDERING 0x4u

#define TLPB_MAX_PAYLOAD_DW 1024u
#define TLPB_PAGE_BYTES 4096u /* requests never cross this boundary */
#define TLPB_NO_BAR (-1)

/* hlsim fast mode: DMA moves in one TLP of up to this many bytes, crossing
 * 4 KiB boundaries. Never used on a link that claims PCIe fidelity. */
#define TLPB_UNSPLIT_MAX_BYTES (1024u * 1024u + 8u)

/* What a receiver accepts. */
struct tlpb_tlp_limits {
    uint32_t max_payload_bytes; /* 128..4096; 0 means 4096 */
    bool unsplit;               /* fast mode: lengths up to TLPB_UNSPLIT_MAX_BYTES,
                                 * 4 KiB crossing allowed */
};

/* Values match the proto enums, so conversion is a cast. The payload is not
 * owned: it points into whatever buffer the TLP was decoded from or built in. */
struct tlpb_tlp {
    enum tlpb_tlp_kind kind;
    uint16_t requester_id;
    uint8_t tag;
    uint8_t traffic_class;   /* 0..7 */
    uint8_t attributes;      /* TLPB_ATTR_* */
    bool poisoned;           /* EP */
    uint32_t length_dw;      /* 1..1024 (more only in unsplit fast mode); 0 on a
                              * Cpl, whose Length field is reserved */
    uint8_t first_be;        /* 4 bits */
    uint8_t last_be;         /* 4 bits; 0 when length_dw == 1 */
    uint64_t address;        /* memory requests: DW-aligned byte address */
    uint16_t completer_id;   /* completions: completer; config: target BDF */
    uint16_t cfg_register;   /* config requests: DW-aligned byte offset 0..4092 */
    enum tlpb_cpl_status status;
    uint32_t byte_count;     /* completions: remaining bytes incl. this TLP, 1..4096
                              * (more only in unsplit fast mode) */
    uint8_t lower_address;   /* completions: 7 bits */
    bool bcm;
    int8_t bar_hint;         /* TLPB_NO_BAR or 0..5 */
    uint32_t payload_bytes;  /* length_dw * 4 for MWr/CfgWr0/CplD, else 0 */
    const uint8_t *payload;
    uint64_t sim_time_ps;    /* coupled time: the sender's clock in ps (the
                              * wire's sim_time_ps); 0 = not stamped */
};

static inline bool tlpb_tlp_has_data(enum tlpb_tlp_kind kind)
{
    return kind == TLPB_TLP_MWR || kind == TLPB_TLP_CFGWR0 || kind == TLPB_TLP_CPLD;
}

static inline bool tlpb_tlp_is_completion(enum tlpb_tlp_kind kind)
{
    return kind == TLPB_TLP_CPL || kind == TLPB_TLP_CPLD;
}

/* Non-posted: the requester waits for a completion. */
static inline bool tlpb_tlp_is_non_posted(enum tlpb_tlp_kind kind)
{
    return kind == TLPB_TLP_MRD || kind == TLPB_TLP_CFGRD0 || kind == TLPB_TLP_CFGWR0;
}

const char *tlpb_tlp_kind_name(enum tlpb_tlp_kind kind);
const char *tlpb_cpl_status_name(enum tlpb_cpl_status status);

/* One-line human-readable rendering (for logs and the trace printer).
 * Returns the number of characters written, as snprintf. */
int tlpb_tlp_format(const struct tlpb_tlp *tlp, char *buf, size_t buf_size);

/* ---- Building TLPs ---------------------------------------------------- */

/* Fill length_dw, first_be, last_be and the DW-aligned address for a memory
 * request covering [addr, addr + len_bytes). len_bytes == 0 makes the PCIe
 * zero-length read/write form (1 DW, first_be 0). Returns 0, or -EINVAL
 * (tlp untouched) if the range needs more than TLPB_UNSPLIT_MAX_BYTES or
 * wraps past the top of the address space. Other fields are left alone.
 * (Whether more than 1024 DW is acceptable is the validator's call.) */
int tlpb_tlp_set_mem_range(struct tlpb_tlp *tlp, uint64_t addr, uint32_t len_bytes);

/* Bytes a request touches, from length_dw and byte enables (0 for a
 * zero-length request), and the byte address of its first enabled byte
 * (for config requests, the offset in config space). */
uint32_t tlpb_tlp_request_bytes(const struct tlpb_tlp *tlp);
uint64_t tlpb_tlp_first_byte_address(const struct tlpb_tlp *tlp);
/* Byte enables of DW dw_index of a request: first_be, last_be, or all four
 * for the DWs in between. */
uint8_t tlpb_tlp_dw_byte_enables(const struct tlpb_tlp *tlp, uint32_t dw_index);

/* ---- PCIe wire format (3DW/4DW headers, as on the link) -------------- */

#define TLPB_WIRE_HEADER_MAX 16

/* Encode the header of tlp into hdr (12 or 16 bytes, byte 0 first on the
 * link, DWs big-endian as in the PCIe specification figures). Memory requests
 * use the 4DW form only for addresses at or above 4 GiB. Returns the header
 * length in bytes, or -EINVAL if the TLP is not encodable. The payload follows
 * the header on the link unchanged (byte at the lowest address first). */
int tlpb_tlp_encode_header(const struct tlpb_tlp *tlp, uint8_t hdr[TLPB_WIRE_HEADER_MAX]);

/* Decode one TLP from buf (header then payload): buf holds exactly one TLP,
 * and bytes beyond what its Length field says are an error. On success
 * returns the number of bytes consumed (len) and fills *tlp, with
 * tlp->payload pointing into buf. On failure returns -EINVAL (or -EMSGSIZE
 * if buf is too short) and sets *reason to a static string; *tlp is left
 * alone. bar_hint is set to TLPB_NO_BAR. Fields the structured form cannot
 * carry are refused (digest, prefixes, 10-bit tags, TPH, LN, AT); reserved
 * fields are ignored, as PCIe requires of receivers. */
int tlpb_tlp_decode_wire(const uint8_t *buf, size_t len, struct tlpb_tlp *tlp,
                         const char **reason);

/* ---- Splitting --------------------------------------------------------- */

/* Size of the next request TLP when moving [addr, addr + remaining): at most
 * max_bytes (max payload size for writes, max read request size for reads;
 * a power of two from 128 to 4096; 0 means 4096) and never crossing a 4 KiB
 * boundary. Returns 0 only when remaining == 0. */
uint32_t tlpb_split_request_bytes(uint64_t addr, uint32_t remaining, uint32_t max_bytes);

/* Size of the next completion when returning [addr, addr + remaining) for a
 * read request: at most max_payload_bytes (0 means 4096) and, when the
 * completion is not the last, ending on a read completion boundary
 * (rcb_bytes, 64 or 128) so that every completion but the first starts
 * RCB-aligned. Returns 0 when remaining == 0, and also when the parameters
 * cannot be satisfied (rcb_bytes not 64 or 128, or max_payload_bytes smaller
 * than rcb_bytes): callers must not loop on a 0. */
uint32_t tlpb_split_completion_bytes(uint64_t addr, uint32_t remaining,
                                     uint32_t max_payload_bytes, uint32_t rcb_bytes);

/* Build the completion header for returning chunk_bytes of a read of the
 * request `req` starting at byte address addr, with remaining bytes (this
 * chunk included) still owed. Sets kind, ids, tag, tc, attr, status SC,
 * byte_count, lower_address, length_dw and payload_bytes; payload must be
 * set by the caller (it needs length_dw * 4 bytes, data starting at offset
 * addr & 3). chunk_bytes == 0 is a zero-length read: a CplD of 1 DW with
 * byte_count 1. For a config request, addr, chunk_bytes and remaining are
 * ignored: byte_count 4, lower_address 0, a CplD of 1 DW for CfgRd0 and a
 * Cpl for CfgWr0. */
void tlpb_completion_for(struct tlpb_tlp *cpl, const struct tlpb_tlp *req,
                         uint16_t completer_id, uint64_t addr, uint32_t chunk_bytes,
                         uint32_t remaining);

/* A completion without data carrying a non-SC status (UR, CA, CRS) for req.
 * For a memory read, byte_count is the whole request (1 if zero-length) and
 * lower_address its first byte; for a config request, 4 and 0. */
void tlpb_completion_error_for(struct tlpb_tlp *cpl, const struct tlpb_tlp *req,
                               uint16_t completer_id, enum tlpb_cpl_status status);

/* ---- Tag allocation and completion reassembly ------------------------- */

#define TLPB_TAGS_MAX 256

struct tlpb_tag_slot {
    bool in_use;
    uint64_t address;        /* first byte address */
    uint32_t length_bytes;   /* total requested */
    uint32_t received_bytes;
    uint8_t *buffer;         /* where reassembled data goes; may be NULL */
    uint64_t deadline_ns;
    void *context;
};

struct tlpb_tag_table {
    unsigned tag_count;      /* tags 0..tag_count-1 are usable */
    unsigned in_use;
    unsigned next_hint;
    struct tlpb_tag_slot slots[TLPB_TAGS_MAX];
};

/* tag_count 1..256 (32 for devices without extended tags); values outside
 * that range are clamped into it. */
void tlpb_tags_init(struct tlpb_tag_table *tags, unsigned tag_count);

/* Allocate a tag for a read of length_bytes at address (the request's
 * tlpb_tlp_request_bytes and tlpb_tlp_first_byte_address; 0 bytes for a
 * zero-length read); completion data is assembled into buffer (length_bytes
 * long, or NULL to discard). Returns the tag, -EAGAIN when every tag is
 * outstanding, or -EINVAL for a range longer than TLPB_UNSPLIT_MAX_BYTES or
 * wrapping the address space. Tags are handed out round-robin. */
int tlpb_tags_alloc(struct tlpb_tag_table *tags, uint64_t address, uint32_t length_bytes,
                    uint8_t *buffer, uint64_t deadline_ns, void *context);

struct tlpb_tag_done {
    uint8_t tag;
    enum tlpb_cpl_status status;
    void *context;
    uint32_t length_bytes;
};

/* Feed a completion. Returns 1 when it finished its request (done filled in:
 * the tag is free again), 0 when more completions are expected, or -EINVAL
 * with *reason set when it does not match an outstanding request (unknown
 * tag, byte count or lower address inconsistent with what is owed, more data
 * than requested, data on a non-SC completion, a completion that is not the
 * last and does not end on a 64-byte boundary). Completions must arrive in
 * address order, as PCIe requires for one request. A non-SC status finishes
 * the request with that status; a poisoned completion finishes it with CA
 * (its data is not copied). A zero-length read accepts a CplD of 1 DW with
 * byte_count 1, or a Cpl. */
int tlpb_tags_complete(struct tlpb_tag_table *tags, const struct tlpb_tlp *cpl,
                       struct tlpb_tag_done *done, const char **reason);

/* Release every tag whose deadline is <= now_ns, reporting each through
 * expired(done, arg) with status CA. Returns how many expired. */
unsigned tlpb_tags_expire(struct tlpb_tag_table *tags, uint64_t now_ns,
                          void (*expired)(const struct tlpb_tag_done *done, void *arg),
                          void *arg);

/* Release one tag without completing it (e.g. its requester went away). */
void tlpb_tags_release(struct tlpb_tag_table *tags, uint8_t tag);

/* Earliest deadline among outstanding tags, or UINT64_MAX. */
uint64_t tlpb_tags_next_deadline(const struct tlpb_tag_table *tags);

/* ---- Validation -------------------------------------------------------- */

/* Check tlp against the PCIe rules that apply to its kind: length range,
 * payload size matches length, byte-enable rules, DW alignment, no 4 KiB
 * crossing for memory requests, config requests are 1 DW with last_be 0, a
 * register in range, TC 0 and no RO/NS attributes, completion fields in
 * range, no data on non-SC completions and no more CplD data than its
 * byte_count needs, TC 0..7, write and completion payloads within
 * limits->max_payload_bytes (reads may ask up to 4096 bytes). With
 * limits->unsplit, memory requests and completions may be up to
 * TLPB_UNSPLIT_MAX_BYTES and cross 4 KiB. A Cpl's length_dw is ignored (its
 * Length field is reserved). limits may be NULL (4096, not unsplit); reason
 * may be NULL. Returns 0; -ERANGE when a field does not fit its PCIe width
 * (an unknown kind, TC above 7, attributes or byte enables too wide, a BAR
 * hint past 5, lower address or config register out of range, Length above
 * 1024 DW or Byte Count above 4096 without unsplit): a malformed TLP, which
 * the bridge treats as a protocol error; or -EINVAL when a well-formed TLP
 * breaks a rule. *reason is set to a static string naming the field or rule. */
int tlpb_tlp_validate(const struct tlpb_tlp *tlp, const struct tlpb_tlp_limits *limits,
                      const char **reason);

/* The rules of tlpb_tlp_validate the PCIe checker has too (docs/checker.md):
 * a TLP refused for one of them is that rule's violation, which the bridge
 * counts as the checker's (tlpb_check_refused_tlp). */
enum tlpb_tlp_rule {
    TLPB_TLP_RULE_OTHER = 0,             /* valid, or refused for another reason */
    TLPB_TLP_RULE_CROSSES_4K,            /* a memory request crosses 4 KiB: crosses_4k */
    TLPB_TLP_RULE_CPLD_STATUS,           /* a CplD not SC: cpl_status_with_data */
    TLPB_TLP_RULE_CPLD_BEYOND_BYTE_COUNT, /* more CplD data than byte count: cpl_length */
};

/* tlpb_tlp_validate, also saying in *rule (may be NULL) which of the rules
 * above a refused TLP broke. */
int tlpb_tlp_validate_rule(const struct tlpb_tlp *tlp, const struct tlpb_tlp_limits *limits,
                           const char **reason, enum tlpb_tlp_rule *rule);

#endif
