/* One external device driven by hand for the checker's integration tests:
 * a raw host and a raw simulator on a running bridge (raw_peer.h), with
 * the questions those tests ask of the bridge afterwards: the device's
 * checker counts in the status, the log line naming a rule. */
#ifndef TLPB_IT_CHECKER_PAIR_H
#define TLPB_IT_CHECKER_PAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raw_peer.h"
#include "tlpb/tlp.h"

/* The bus/device/function the host's config writes give the device. */
#define CHECKER_PAIR_BDF 0x0100u

/* A host address for the device's DMA (the raw host answers for it). */
#define CHECKER_PAIR_HOST_MEM 0x10000u

struct checker_pair {
    const char *dev;
    struct raw h, s;
};

/* Host attached, BARs programmed (DMACOPY_BAR0_ADDR, DMACOPY_BAR2_ADDR),
 * Command as given (0x6: memory space and bus master), each completed SC
 * by the fallback (the bridge's shadow keeps them and replays them to the
 * simulator); no simulator yet. */
void checker_pair_open_host(struct checker_pair *p, const char *dev, uint32_t command);
/* The same, then the simulator attached. */
void checker_pair_open(struct checker_pair *p, const char *dev, uint32_t command);
/* The same, with one more config write (reg, value: Device Control, MSI-X
 * Message Control...) before the simulator attaches (a config write after
 * that would wait for the simulator's answer). */
void checker_pair_open_cfg(struct checker_pair *p, const char *dev, uint32_t command,
                           uint16_t reg, uint32_t value);
void checker_pair_close(struct checker_pair *p);

/* A DMA write from the device (requester CHECKER_PAIR_BDF, no BAR, zeros
 * as data, at most 4 KiB) of bytes at addr, with attributes (TLPB_ATTR_*). */
void checker_device_write(struct tlpb_tlp *t, uint64_t addr, uint32_t bytes, uint8_t attributes);
/* A DMA read from the device of bytes at addr, under tag. */
void checker_device_read(struct tlpb_tlp *t, uint64_t addr, uint32_t bytes, uint8_t tag,
                         uint8_t attributes);
/* A host read of bytes at the start of BAR0 (DMACOPY_BAR0_ADDR), under tag. */
void checker_host_read(struct tlpb_tlp *t, uint32_t bytes, uint8_t tag, uint8_t attributes);

/* Wait for the next message of kind body on r (others skipped): what the
 * bridge sends after it handled what the test sent orders a status query
 * after the check. */
bool checker_wait_message(struct raw *r, Tlpb__Envelope__BodyCase body, const char *what);
/* The device's violations in all, and of rule (NULL: none asked); false
 * when the status has no checker object for dev. */
bool checker_counts(const char *dev, const char *rule, unsigned long long *total,
                    unsigned long long *of_rule);
/* Whether a checker line of dev in the bridge log has what in it. */
bool checker_log_names(const char *dev, const char *what);
/* Exactly one violation on dev, of rule, and the bridge log names it. */
void checker_expect_only(const char *dev, const char *rule);
/* No violation on dev. */
void checker_expect_none(const char *dev);

#endif
