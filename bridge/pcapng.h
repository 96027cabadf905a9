/* A minimal pcapng writer (one section, one interface) for exporting
 * traces to Wireshark. Block layout: docs/protocol.md, "Trace export
 * (pcapng)". */
#ifndef TLPB_PCAPNG_H
#define TLPB_PCAPNG_H

#include <stdint.h>
#include <stdio.h>

/* LINKTYPE_USER0: the link type of a tlpbridge pcapng (private use). */
#define TLPB_PCAPNG_LINKTYPE 147u

/* Block types (pcapng specification). */
#define PCAPNG_BT_SHB 0x0A0D0D0Au
#define PCAPNG_BT_IDB 0x00000001u
#define PCAPNG_BT_EPB 0x00000006u
#define PCAPNG_BYTE_ORDER_MAGIC 0x1A2B3C4Du

/* Our packet header (all little-endian), before the record body. */
#define TLPB_PCAPNG_VERSION 1u
enum tlpb_pcapng_record_kind {
    TLPB_PCAPNG_KIND_TLP = 1,       /* body: the TLP as on the link */
    TLPB_PCAPNG_KIND_INTERRUPT = 2, /* body: u8 kind, u32 vector */
    TLPB_PCAPNG_KIND_OTHER = 3,     /* body: u16 length + text */
};

/* Write the Section Header Block and one Interface Description Block of
 * link type linktype with nanosecond timestamps. 0, or -1 on a write
 * error (errno set). */
int pcapng_write_header(FILE *out, uint16_t linktype);

/* Write one Enhanced Packet Block on interface 0: len captured bytes of
 * a packet that was orig_len bytes long (orig_len >= len; larger when the
 * capture was cut short). 0, or -1 on a write error or orig_len < len. */
int pcapng_write_packet(FILE *out, uint64_t time_ns, const uint8_t *data, uint32_t len,
                        uint32_t orig_len);

#endif
