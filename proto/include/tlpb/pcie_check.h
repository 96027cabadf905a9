/* The stateful PCIe checker of one device: every TLP in both directions,
 * checked against the configuration software programmed (read from the
 * config space shadow at check time) and against the requests still
 * outstanding. It adds the rules that need state to tlpb_tlp_validate's
 * per-TLP ones. Pure C: no I/O, no allocation; it only reports, and the
 * owner acts on the violations under the stored policy.
 * The rules and their PCIe Base Specification sections: docs/checker.md. */
#ifndef TLPB_PCIE_CHECK_H
#define TLPB_PCIE_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tlpb/cfgspace.h"
#include "tlpb/tlp.h"

/* Stable ids; the names in the rule table are what status and tests use. */
enum tlpb_check_rule {
    TLPB_CHECK_MWR_EXCEEDS_MPS = 0,
    TLPB_CHECK_MRD_EXCEEDS_MRRS,
    TLPB_CHECK_CROSSES_4K,
    TLPB_CHECK_BUS_MASTER_DISABLED,
    TLPB_CHECK_MEMORY_SPACE_DISABLED,
    TLPB_CHECK_REQUESTER_ID,
    TLPB_CHECK_COMPLETER_ID,
    TLPB_CHECK_UNEXPECTED_COMPLETION,
    TLPB_CHECK_CPL_STATUS_WITH_DATA,
    TLPB_CHECK_CPL_BYTE_COUNT,
    TLPB_CHECK_CPL_LOWER_ADDRESS,
    TLPB_CHECK_CPL_LENGTH,
    TLPB_CHECK_CPL_EXCEEDS_MPS,
    TLPB_CHECK_CPL_RCB,
    TLPB_CHECK_CPL_AFTER_LAST_BYTE,
    TLPB_CHECK_COMPLETION_TIMEOUT,
    TLPB_CHECK_MSIX_VECTOR_RANGE,
    TLPB_CHECK_MSIX_DISABLED,
    TLPB_CHECK_MSI_DISABLED,
    TLPB_CHECK_MSI_VECTOR_RANGE,
    TLPB_CHECK_INTX_DISABLED,
    TLPB_CHECK_TAG_REUSE,
    TLPB_CHECK_RELAXED_ORDERING_DISABLED,
    TLPB_CHECK_NO_SNOOP_DISABLED,
    TLPB_CHECK_ID_ORDERING_DISABLED,
    TLPB_CHECK_RULE_COUNT
};

struct tlpb_check_rule_info {
    enum tlpb_check_rule id;
    const char *name;        /* snake_case, stable */
    const char *spec_section; /* PCIe Base Specification 5.0/6.0 numbering */
    const char *description; /* one line */
};

/* Indexed by enum tlpb_check_rule. */
extern const struct tlpb_check_rule_info tlpb_check_rules[TLPB_CHECK_RULE_COUNT];

/* The rule's entry, or NULL for an id out of range. */
const struct tlpb_check_rule_info *tlpb_check_rule(enum tlpb_check_rule rule);
/* The rule named name, or -1. */
int tlpb_check_rule_by_name(const char *name);

/* What the owner does with a violating TLP or interrupt. */
enum tlpb_check_policy {
    TLPB_CHECK_POLICY_WARN = 0, /* count and log, deliver anyway */
    TLPB_CHECK_POLICY_REJECT,   /* drop it; a request gets an error completion */
    TLPB_CHECK_POLICY_STOP,     /* stop the device; the guest keeps running */
};

const char *tlpb_check_policy_name(enum tlpb_check_policy policy);
/* "warn", "reject" or "stop": 0 with *policy set, else -EINVAL. */
int tlpb_check_policy_parse(const char *name, enum tlpb_check_policy *policy);

enum tlpb_check_direction {
    TLPB_CHECK_HOST_TO_DEVICE = 0,
    TLPB_CHECK_DEVICE_TO_HOST,
};

enum tlpb_check_interrupt {
    TLPB_CHECK_INTX_ASSERT = 0,
    TLPB_CHECK_INTX_DEASSERT,
    TLPB_CHECK_MSI,
    TLPB_CHECK_MSIX,
};

enum tlpb_check_reset_kind {
    TLPB_CHECK_RESET_FLR = 0, /* the function forgets its outstanding requests */
    TLPB_CHECK_RESET_HOT,     /* also its captured bus/device number */
};

struct tlpb_check_config {
    /* The config space shadow the owner keeps current with every config
     * write the device sees: Command, Device Control, MSI and MSI-X control
     * and the device description are read from it. Required. */
    const struct tlpb_cfgspace *cfgspace;
    /* The device's bus/device/function when the owner knows it; otherwise
     * it is learnt from the target ID of each config request. */
    bool device_id_known;
    uint16_t device_id;
    /* Fast mode (unsplit DMA granted to this device): the MPS, MRRS, 4 KiB
     * and completion size and split rules do not apply. */
    bool unsplit;
    /* An outstanding request not completed within this long is reported by
     * tlpb_check_expire; 0 turns completion timeouts off. */
    uint64_t completion_timeout_ns;
    enum tlpb_check_policy policy;
};

/* One violation. tlp is a copy of the offending TLP's header (payload
 * NULL: the TLP's buffer is not the checker's); for an interrupt or a
 * timeout it holds what is known (kind INVALID for an interrupt). */
struct tlpb_check_violation {
    enum tlpb_check_rule rule;
    enum tlpb_check_direction direction;
    struct tlpb_tlp tlp;
    enum tlpb_check_interrupt interrupt; /* when tlp.kind is INVALID */
    uint32_t vector;
    uint64_t expected;       /* rule-dependent: the limit or value expected */
    uint64_t actual;         /* and what was seen */
};

#define TLPB_CHECK_VIOLATIONS_MAX 8u

struct tlpb_check_result {
    unsigned count;
    struct tlpb_check_violation violations[TLPB_CHECK_VIOLATIONS_MAX];
};

/* One outstanding non-posted request, by tag, in one direction. */
struct tlpb_check_request {
    bool in_use;
    bool finished;           /* completed; kept to tell a late completion */
    enum tlpb_tlp_kind kind;
    uint16_t requester_id;
    uint64_t address;        /* first byte (memory reads) */
    uint32_t length_bytes;   /* 0 for a zero-length read */
    uint32_t received_bytes;
    uint64_t deadline_ns;    /* UINT64_MAX: none */
    struct tlpb_tlp header;  /* for the timeout report (payload NULL) */
};

struct tlpb_check {
    struct tlpb_check_config config;
    uint16_t device_id;
    bool device_id_known;
    bool device_id_captured; /* a config write told the function its number */
    /* host requests to the device (MMIO reads, config), and device reads
     * of host memory (DMA) */
    struct tlpb_check_request host_requests[TLPB_TAGS_MAX];
    struct tlpb_check_request device_requests[TLPB_TAGS_MAX];
    uint64_t counts[TLPB_CHECK_RULE_COUNT];
    uint64_t total;
};

/* config->cfgspace must stay valid for the checker's life. */
void tlpb_check_init(struct tlpb_check *chk, const struct tlpb_check_config *config);

/* Check a TLP the host sent to the device / the device sent to the host,
 * at now_ns (the owner's clock, for completion timeouts). result (may be
 * NULL) receives the violations; returns how many there were. Counters
 * are updated whatever result is. TLPs that break tlpb_tlp_validate's
 * rules are the validator's: the owner validates first. */
unsigned tlpb_check_host_tlp(struct tlpb_check *chk, const struct tlpb_tlp *tlp,
                             uint64_t now_ns, struct tlpb_check_result *result);
unsigned tlpb_check_device_tlp(struct tlpb_check *chk, const struct tlpb_tlp *tlp,
                               uint64_t now_ns, struct tlpb_check_result *result);

/* An interrupt the device signals: INTx assert/deassert (vector ignored),
 * MSI vector (0..31) or MSI-X vector (table entry). */
unsigned tlpb_check_device_interrupt(struct tlpb_check *chk, enum tlpb_check_interrupt kind,
                                     uint32_t vector, struct tlpb_check_result *result);

/* A TLP its owner refused before checking it (tlpb_tlp_validate_rule),
 * in direction dir, for one of the rules the checker has too (refused not
 * TLPB_TLP_RULE_OTHER): counted and listed as that rule's violation, with
 * the values the checker's own check reports; nothing is tracked (the TLP
 * goes nowhere). Returns 1, or 0 for TLPB_TLP_RULE_OTHER. */
unsigned tlpb_check_refused_tlp(struct tlpb_check *chk, enum tlpb_check_direction dir,
                                const struct tlpb_tlp *tlp, enum tlpb_tlp_rule refused,
                                struct tlpb_check_result *result);

/* Report every outstanding request whose deadline is <= now_ns as a
 * completion timeout, and forget it. Returns how many. Violations beyond
 * TLPB_CHECK_VIOLATIONS_MAX are counted but not listed. */
unsigned tlpb_check_expire(struct tlpb_check *chk, uint64_t now_ns,
                           struct tlpb_check_result *result);

/* Earliest completion deadline, or UINT64_MAX. */
uint64_t tlpb_check_next_deadline(const struct tlpb_check *chk);

/* The device was reset: outstanding requests are forgotten (their late
 * completions are then unexpected). Counters are kept. */
void tlpb_check_reset(struct tlpb_check *chk, enum tlpb_check_reset_kind kind);

/* "rule_name (PCIe 2.2.2): description [expected E, got A]: <decoded TLP>",
 * as snprintf. */
int tlpb_check_format(const struct tlpb_check_violation *violation, char *buf,
                      size_t buf_size);

#endif
