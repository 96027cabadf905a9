/* A minimal coupled-time bridge for the qtest of tlpbridge-pci with
 * time=coupled: a thread that accepts one host on the harness's socket,
 * grants CAP_TIME_SYNC, plays a device with a simulated clock and records
 * every message with its stamp.
 *
 * The device it plays: every message from the host (a request, a posted
 * write, a reset) keeps it busy for the next `busy_grants` grants, after
 * which its REACHED says idle. Config writes are completed at once; a
 * memory read is completed with read_value, stamped read_latency_ps after
 * the request's stamp. A posted write to doorbell_address makes it raise
 * MSI-X vector 0 in its next grant, stamped with that grant's time; one to
 * eager_doorbell_address makes it raise MSI-X vector 1 at once, as an idle
 * device whose clock jumped to the write's stamp may (the host must not
 * apply it before its next sync point).
 *
 * Records are taken before the answer is sent, so once QEMU answered the
 * qtest command that caused a message, its record is there. */
#ifndef TLPB_QTEST_COUPLED_BRIDGE_H
#define TLPB_QTEST_COUPLED_BRIDGE_H

#include <stdbool.h>
#include <stdint.h>

enum cb_kind { CB_CFGWR, CB_MRD, CB_MWR, CB_RESET, CB_GRANT, CB_OTHER };

struct cb_record {
    enum cb_kind kind;
    uint64_t stamp_ps;      /* the message's sim_time_ps (GRANT: host time) */
    uint64_t address;       /* MRd/MWr: address; CfgWr0: register */
    uint64_t sync_id;       /* GRANT */
    uint64_t until_ps;      /* GRANT */
};

#define CB_MAX_RECORDS 256

struct coupled_bridge {
    /* set before cb_start */
    const char *socket_path;
    unsigned busy_grants;
    uint64_t read_latency_ps;
    uint32_t read_value;
    uint64_t doorbell_address;
    uint64_t eager_doorbell_address;
    uint16_t vendor_id, device_id; /* 0: dmacopy's (0x1234, 0x7a11) */

    /* what the host's Hello said */
    bool hello_offered_time;
    uint64_t hello_quantum_ps;
};

void cb_start(struct coupled_bridge *cb);
/* Wait for the host to hang up (QEMU gone), then end the thread. */
void cb_join(struct coupled_bridge *cb);
/* Wait (bounded by the harness deadline) until there are at least n
 * records; returns whether there are. */
bool cb_wait_records(struct coupled_bridge *cb, unsigned n);
/* A copy of the records so far; returns their number. */
unsigned cb_records(struct coupled_bridge *cb, struct cb_record *out, unsigned max);

#endif
